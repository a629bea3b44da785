use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_match_the_contract() {
    let c = Config::load(None, env(&[])).unwrap();
    assert_eq!(c.data_dir, PathBuf::from("./sealmail-data"));
    assert_eq!(c.lmtp.listen.to_string(), "127.0.0.1:2424");
    assert_eq!(c.imap.listen.to_string(), "127.0.0.1:1143");
    assert_eq!(c.jmap.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.limits.max_message_size, 52_428_800);
    assert_eq!(c.limits.fanout_bytes, 268_435_456);
    assert_eq!(c.hooks.chain, vec!["encrypt-at-rest"]);
    assert_eq!(c.imap.tls_listen, None);
    assert_eq!(c.lmtp.max_connections_per_source, 100);
    assert_eq!(c.jmap.header_timeout, Duration::from_secs(30));
    assert_eq!(c.limits.reserved_files, 1024);
    assert_eq!(c.metrics.listen, None);
}

#[test]
fn durations_are_text_or_seconds() {
    let c = Config::load(None, env(&[("SEALMAIL_JMAP_HEADER_TIMEOUT", "1500ms")])).unwrap();
    assert_eq!(c.jmap.header_timeout, Duration::from_millis(1500));
    let c = Config::load(None, env(&[("SEALMAIL_JMAP_HEADER_TIMEOUT", "7")])).unwrap();
    assert_eq!(c.jmap.header_timeout, Duration::from_secs(7));
    let err = Config::load(None, env(&[("SEALMAIL_JMAP_HEADER_TIMEOUT", "soon")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("soon") && err.contains("30s"), "{err}");
}

#[test]
fn the_example_file_is_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sealmail.toml");
    assert_eq!(
        Config::load(Some(&path), env(&[])).unwrap(),
        Config::default()
    );
}

#[test]
fn environment_overrides_file() {
    let c = Config::load(
        None,
        env(&[
            ("SEALMAIL_LMTP_LISTEN", "0.0.0.0:24"),
            ("SEALMAIL_IMAP_TLS_LISTEN", "0.0.0.0:993"),
            ("SEALMAIL_LIMITS_MAX_MESSAGE_SIZE", "1000"),
            ("SEALMAIL_LIMITS_FANOUT_BYTES", "1048576"),
            ("SEALMAIL_DATA_DIR", "/var/lib/sealmail"),
            ("SEALMAIL_HOOKS_CHAIN", "[]"),
            ("SEALMAIL_METRICS_LISTEN", "127.0.0.1:9280"),
            ("OTHER", "x"),
            ("SEALMAIL_LOG", "debug"),
        ]),
    )
    .unwrap();
    assert_eq!(c.lmtp.listen.to_string(), "0.0.0.0:24");
    assert_eq!(c.imap.tls_listen.unwrap().to_string(), "0.0.0.0:993");
    assert_eq!(c.limits.max_message_size, 1000);
    assert_eq!(c.limits.fanout_bytes, 1_048_576);
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/sealmail"));
    assert!(c.hooks.chain.is_empty());
    assert_eq!(c.metrics.listen.unwrap().to_string(), "127.0.0.1:9280");
}

#[test]
fn store_engine_and_url() {
    let c = Config::load(None, env(&[])).unwrap();
    assert_eq!(c.store.engine, StoreEngine::Rocksdb);
    assert_eq!(c.store.pool_size, 16);
    assert!(c.store.url.is_none());
    let c = Config::load(
        None,
        env(&[
            ("SEALMAIL_STORE_ENGINE", "postgres"),
            (
                "SEALMAIL_STORE_URL",
                "postgres://mail:hunter2@db.example:5432/sealmail",
            ),
            ("SEALMAIL_STORE_POOL_SIZE", "4"),
        ]),
    )
    .unwrap();
    assert_eq!(c.store.engine, StoreEngine::Postgres);
    assert_eq!(c.store.pool_size, 4);
    let url = c.store.url.clone().unwrap();
    assert_eq!(
        url.expose(),
        "postgres://mail:hunter2@db.example:5432/sealmail"
    );
    let shown = format!("{c:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(
        shown.contains("postgres://mail@db.example:5432/sealmail"),
        "{shown}"
    );

    let err = Config::load(None, env(&[("SEALMAIL_STORE_ENGINE", "postgres")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("store.url"), "{err}");
    let err = Config::load(None, env(&[("SEALMAIL_STORE_URL", "postgres://x@h/db")]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("store.engine") && err.contains("rocksdb"),
        "{err}"
    );
    let err = Config::load(None, env(&[("SEALMAIL_STORE_ENGINE", "mysql")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("mysql") && err.contains("postgres"), "{err}");
    let err = Config::load(None, env(&[("SEALMAIL_STORE_POOL_SIZE", "0")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("pool_size"), "{err}");
}

#[test]
fn unknown_keys_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[lmtp]\nlisen = \"127.0.0.1:1\"\n").unwrap();
    let err = Config::load(Some(&path), env(&[])).unwrap_err().to_string();
    assert!(err.contains("lisen"), "{err}");
    let err = Config::load(None, env(&[("SEALMAIL_LMTP_PORT", "1")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("port"), "{err}");
    let err = Config::load(None, env(&[("SEALMAIL_FOO", "1")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("SEALMAIL_FOO"), "{err}");
    std::fs::write(&path, "colour = \"blue\"\n").unwrap();
    let err = Config::load(Some(&path), env(&[])).unwrap_err().to_string();
    assert!(err.contains("colour"), "{err}");
}

#[test]
fn jmap_url_and_proxies_are_checked_naming_the_key() {
    let c = Config::load(
        None,
        env(&[
            (
                "SEALMAIL_JMAP_TRUSTED_PROXIES",
                r#"["127.0.0.1", "10.0.0.0/8"]"#,
            ),
            ("SEALMAIL_JMAP_PUBLIC_URL", "https://mail.example.org"),
            ("SEALMAIL_JMAP_TLS_LISTEN", "127.0.0.1:8443"),
        ]),
    )
    .unwrap();
    assert_eq!(c.jmap.trusted_proxies.len(), 2);
    assert_eq!(
        c.jmap.public_url.as_ref().map(PublicUrl::as_str),
        Some("https://mail.example.org")
    );
    assert_eq!(c.jmap.tls_listen.map(|a| a.port()), Some(8443));
    for (var, value, key) in [
        (
            "SEALMAIL_JMAP_TRUSTED_PROXIES",
            r#"["10.0.0.0/99"]"#,
            "jmap.trusted_proxies",
        ),
        (
            "SEALMAIL_JMAP_TRUSTED_PROXIES",
            r#"["proxy.local"]"#,
            "jmap.trusted_proxies",
        ),
        (
            "SEALMAIL_JMAP_PUBLIC_URL",
            "https://mail.example.org/jmap",
            "jmap.public_url",
        ),
    ] {
        let err = Config::load(None, env(&[(var, value)]))
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{var}={value}: {err}");
    }
}
