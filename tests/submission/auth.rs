//! SMTP AUTH at the relay (`submission.username`, `password_file`): a
//! Postfix that takes AUTH only inside TLS (`smtpd_tls_auth_only`) and
//! relays only for authenticated clients, checking passwords against a
//! private Dovecot's auth service (`smtpd_sasl_type = dovecot`), as
//! operators commonly run it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use super::support::server::free_port;
use super::support::tools::require;
use super::{identity, inbox_of, role, setup_in, ALICE, BOB, PASSWORD};

const RELAY_USER: &str = "relay@example.org";
const RELAY_PASSWORD: &str = "relay secret 8d1f";

/// A Dovecot that runs nothing but its auth service, on a loopback port.
struct DovecotAuth {
    config: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl DovecotAuth {
    fn start() -> Self {
        require("dovecot");
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let users = root.join("users");
        std::fs::write(&users, format!("{RELAY_USER}:{{PLAIN}}{RELAY_PASSWORD}\n")).unwrap();
        let port = free_port();
        let config = root.join("dovecot.conf");
        std::fs::write(&config, conf(root, &users, port)).unwrap();
        // why no pipes: the daemon's children inherit them and keep them
        // open, so reading them to the end would wait for ever.
        let status = Command::new("dovecot")
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "dovecot did not start ({status}):\n{}",
            std::fs::read_to_string(root.join("dovecot.log")).unwrap_or_default()
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "dovecot auth did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            config,
            port,
            _dir: dir,
        }
    }
}

impl Drop for DovecotAuth {
    fn drop(&mut self) {
        let _ = Command::new("doveadm")
            .arg("-c")
            .arg(&self.config)
            .arg("stop")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn conf(root: &Path, users: &Path, port: u16) -> String {
    let r = root.display();
    format!(
        "protocols = none\n\
         listen = 127.0.0.1\n\
         instance_name = sealmail-test-auth-{port}\n\
         base_dir = {r}/run\n\
         state_dir = {r}/state\n\
         log_path = {r}/dovecot.log\n\
         ssl = no\n\
         disable_plaintext_auth = no\n\
         auth_mechanisms = plain login\n\
         default_internal_user = dovecot\n\
         default_login_user = dovenull\n\
         passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {users}\n}}\n\
         userdb {{\n  driver = static\n  args = uid=65534 gid=65534 home={r}/home/%u\n}}\n\
         service auth {{\n  inet_listener sasl {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n}}\n",
        users = users.display()
    )
}

/// Postfix settings: SASL through `auth`, AUTH only after STARTTLS, and
/// mail accepted from authenticated clients only.
fn auth_settings(auth: &DovecotAuth) -> Vec<(&'static str, String)> {
    vec![
        ("smtpd_sasl_auth_enable", "yes".into()),
        ("smtpd_sasl_type", "dovecot".into()),
        ("smtpd_sasl_path", format!("inet:127.0.0.1:{}", auth.port)),
        ("smtpd_tls_auth_only", "yes".into()),
        (
            "smtpd_recipient_restrictions",
            "permit_sasl_authenticated, reject".into(),
        ),
    ]
}

#[test]
fn the_relay_password_is_sent_inside_tls_and_a_wrong_one_is_refused() {
    require("openssl");
    let auth = DovecotAuth::start();
    for (password, works) in [(RELAY_PASSWORD, true), ("not the password", false)] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("relay-password");
        std::fs::write(&file, format!("{password}\n")).unwrap();
        let (setup, _keys) = setup_in(
            dir,
            &[
                ("SEALMAIL_SUBMISSION_USERNAME", RELAY_USER),
                ("SEALMAIL_SUBMISSION_PASSWORD_FILE", file.to_str().unwrap()),
            ],
            auth_settings(&auth),
        );
        let alice = setup.server.jmap(ALICE, PASSWORD);
        let me = identity(&alice);
        let got = alice.calls(json!([
            ["Email/set", {"create": {"m": {
                "mailboxIds": {role(&alice, "drafts"): true},
                "from": [{"email": ALICE}], "to": [{"email": BOB}], "subject": "authenticated",
                "textBody": [{"partId": "t"}], "bodyValues": {"t": {"value": "hello"}}}}}, "e"],
            ["EmailSubmission/set", {"create": {"s": {"identityId": me["id"], "emailId": "#m"}}}, "s"],
        ]));
        let log = setup.postfix.log();
        if works {
            assert_eq!(
                got[1][1]["created"]["s"]["undoStatus"], "final",
                "{got:?}\n{log}"
            );
            assert_eq!(inbox_of(&setup, BOB, 1).len(), 1);
            let log = setup.postfix.log();
            assert!(
                log.contains(&format!("sasl_method=PLAIN, sasl_username={RELAY_USER}")),
                "{log}"
            );
        } else {
            let refused = &got[1][1]["notCreated"]["s"];
            assert_eq!(refused["type"], "forbiddenToSend", "{got:?}\n{log}");
            assert!(
                refused["description"].as_str().unwrap().contains("535"),
                "{refused}"
            );
            assert!(setup.server.inbox(BOB).is_empty());
        }
        // The password never reached the data directory or the log.
        let on_disk =
            super::support::tools::found_in_files(&setup.server.data_dir, password.as_bytes());
        assert!(on_disk.is_empty(), "{on_disk:?}");
        let server_log =
            std::fs::read_to_string(setup.server.scratch.path().join("server.log")).unwrap();
        assert!(
            !server_log.contains(password),
            "the relay password is in the server log"
        );
    }
}
