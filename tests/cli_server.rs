//! The operator's view: `sealmail serve` and the CLI against it, over the
//! real management socket, with crashes in between.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::fs::PermissionsExt as _;

use support::pki::{pair, self_signed, tempdir};
use support::server::{binary, Server};
use support::tools::run_unchecked;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a user error: exit code 1 and `words` in the message.
fn refused(o: &std::process::Output, words: &str) {
    assert_eq!(o.status.code(), Some(1), "{}", stderr(o));
    assert!(
        stderr(o).contains(words),
        "expected {words:?} in: {}",
        stderr(o)
    );
}

#[test]
fn everything_survives_sigkill_and_restart() {
    let dir = tempdir();
    let alice = pair("alice@example.org", 2048);
    let list_key = pair("news@example.org", 2048);
    let mut server = Server::start_on(dir.path());
    let out = server.cli(
        &[
            "account",
            "add",
            "alice@example.org",
            "--password-stdin",
            "--alias",
            "al@example.org",
        ],
        b"pw\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    server.ok(&["account", "add", "bob@example.org"]);
    server.ok(&[
        "cert",
        "add",
        "alice@example.org",
        alice.cert.to_str().unwrap(),
        "--description",
        "laptop",
    ]);
    server.ok(&[
        "encryption",
        "enable",
        "alice@example.org",
        "--algorithm",
        "aes128",
        "--encrypt-on-append",
    ]);
    server.ok(&[
        "list",
        "add",
        "news@example.org",
        "--member",
        "alice@example.org",
        "--member",
        "bob@example.org",
    ]);
    server.ok(&[
        "list",
        "key",
        "add",
        "news@example.org",
        "--cert",
        list_key.cert.to_str().unwrap(),
        "--key",
        list_key.key.to_str().unwrap(),
    ]);
    server.kill();

    let server = Server::start_on(dir.path());
    let accounts: serde_json::Value =
        serde_json::from_str(&server.ok(&["account", "list", "--json"])).unwrap();
    let emails: Vec<&str> = accounts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["alice@example.org", "bob@example.org"]);
    assert_eq!(accounts[0]["aliases"][0], "al@example.org");
    assert_eq!(accounts[0]["hasPassword"], true);
    assert_eq!(accounts[1]["hasPassword"], false);

    let certs: serde_json::Value =
        serde_json::from_str(&server.ok(&["cert", "list", "alice@example.org", "--json"])).unwrap();
    assert_eq!(certs[0]["description"], "laptop");
    assert_eq!(certs[0]["emailAddresses"][0], "alice@example.org");
    let status: serde_json::Value =
        serde_json::from_str(&server.ok(&["encryption", "status", "alice@example.org", "--json"]))
            .unwrap();
    assert_eq!(status["isEnabled"], true);
    assert_eq!(status["algorithm"], "AES-128-CBC");
    assert_eq!(status["encryptOnAppend"], true);
    let lists: serde_json::Value =
        serde_json::from_str(&server.ok(&["list", "show", "--json"])).unwrap();
    assert_eq!(lists[0]["members"].as_array().unwrap().len(), 2);
    assert_eq!(lists[0]["keys"].as_array().unwrap().len(), 1);
    assert_eq!(lists[0]["owner"], "owner-news@example.org");
}

#[test]
fn the_data_dir_is_private_and_a_second_server_is_refused() {
    let mut server = Server::start();
    let mode = |p: &str| {
        std::fs::metadata(server.data_dir.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("admin.sock"), 0o600);
    assert_eq!(mode("master.key"), 0o600);
    assert_eq!(mode("."), 0o700);
    let out = run_unchecked(
        binary().args(["serve", "--data-dir"]).arg(&server.data_dir),
        b"",
    );
    refused(&out, "another sealmail server");
    assert!(server.terminate().success(), "SIGTERM gives a clean exit");
    assert!(
        !server.data_dir.join("admin.sock").exists(),
        "socket removed on clean exit"
    );
}

#[test]
fn a_stale_socket_from_a_killed_server_is_replaced() {
    let dir = tempdir();
    let mut first = Server::start_on(dir.path());
    first.kill();
    assert!(
        dir.path().join("admin.sock").exists(),
        "the killed server left its socket"
    );
    let second = Server::start_on(dir.path());
    second.ok(&["account", "list"]);
}

#[test]
fn server_not_running_exits_2_and_says_so() {
    let dir = tempdir();
    let out = run_unchecked(
        binary()
            .args(["account", "list", "--data-dir"])
            .arg(dir.path()),
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("server is not running"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("sealmail serve"), "{}", stderr(&out));
}

#[test]
fn user_errors_exit_1_with_what_to_do() {
    let server = Server::start();
    let alice = pair("alice@example.org", 2048);
    let out = server.cli(
        &[
            "cert",
            "add",
            "nobody@example.org",
            alice.cert.to_str().unwrap(),
        ],
        b"",
    );
    refused(&out, "no account nobody@example.org");

    server.ok(&["account", "add", "alice@example.org"]);
    let dir = tempdir();
    let ca = self_signed(
        dir.path(),
        "ca",
        "rsa:2048",
        "/CN=CA",
        &["basicConstraints=critical,CA:TRUE".into()],
    );
    let out = server.cli(
        &[
            "cert",
            "add",
            "alice@example.org",
            ca.cert.to_str().unwrap(),
        ],
        b"",
    );
    refused(&out, "CA certificate");

    let bob = pair("bob@example.org", 2048);
    let out = server.cli(
        &[
            "cert",
            "add",
            "alice@example.org",
            bob.cert.to_str().unwrap(),
        ],
        b"",
    );
    refused(&out, "bob@example.org");

    server.ok(&[
        "cert",
        "add",
        "alice@example.org",
        alice.cert.to_str().unwrap(),
    ]);
    let out = server.cli(
        &[
            "cert",
            "add",
            "alice@example.org",
            alice.cert.to_str().unwrap(),
        ],
        b"",
    );
    refused(&out, "already on the account");

    let out = server.cli(&["encryption", "enable", "bob@example.org"], b"");
    assert_eq!(out.status.code(), Some(1));
    let out = server.cli(&["account", "add", "alice@example.org"], b"");
    refused(&out, "already used");
}

#[test]
fn the_last_active_certificate_cannot_be_removed_while_encryption_is_on() {
    let server = Server::start();
    server.encrypted_account("alice@example.org");
    let certs: serde_json::Value =
        serde_json::from_str(&server.ok(&["cert", "list", "alice@example.org", "--json"])).unwrap();
    let fp = certs[0]["fingerprint"].as_str().unwrap().to_uppercase();
    let with_colons: String = fp
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    let out = server.cli(&["cert", "remove", "alice@example.org", &with_colons], b"");
    refused(&out, "disable encryption or add a certificate first");
    server.ok(&["encryption", "disable", "alice@example.org"]);
    server.ok(&["cert", "remove", "alice@example.org", &with_colons]);
    assert!(
        server
            .ok(&["cert", "list", "alice@example.org", "--json"])
            .trim()
            == "[]"
    );
}

#[test]
fn an_unknown_config_key_is_named() {
    let dir = tempdir();
    let config = dir.path().join("sealmail.toml");
    std::fs::write(
        &config,
        "data_dir = \"x\"\n[lmtp]\nlisten_adress = \"127.0.0.1:24\"\n",
    )
    .unwrap();
    let out = run_unchecked(binary().args(["serve", "--config"]).arg(&config), b"");
    refused(&out, "listen_adress");
    let out = run_unchecked(
        binary()
            .args(["account", "list"])
            .env("SEALMAIL_IMAP_PORT", "1"),
        b"",
    );
    refused(&out, "port");
}

#[test]
fn the_master_key_can_live_outside_the_data_dir() {
    let data = tempdir();
    let keys = tempdir();
    let key_path = keys.path().join("sealmail-master.key");
    let list_key = pair("news@example.org", 2048);
    let server = Server::start_with_env(
        data.path(),
        &[("SEALMAIL_STORE_MASTER_KEY", key_path.to_str().unwrap())],
    );
    server.ok(&["list", "add", "news@example.org"]);
    server.ok(&[
        "list",
        "key",
        "add",
        "news@example.org",
        "--cert",
        list_key.cert.to_str().unwrap(),
        "--key",
        list_key.key.to_str().unwrap(),
    ]);
    assert!(
        !data.path().join("master.key").exists(),
        "master key written into the data dir"
    );
    let meta = std::fs::metadata(&key_path).unwrap();
    assert_eq!(meta.len(), 32);
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}
