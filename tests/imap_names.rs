//! One folder name everywhere (issue #17, item 3): names are stored in
//! UTF-8; IMAP clients see and send them in modified UTF-7 (RFC 3501
//! §5.1.3), JMAP clients in UTF-8. Driven with Python's imaplib and the
//! JMAP API against the real server binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use support::server::Server;
use support::tools::python;

const USER: &str = "names@example.org";
const PASSWORD: &str = "names-password-1";

/// Runs IMAP commands (one per argument, `VERB ARGS` as sent) and prints
/// each one's status, text and untagged LIST/STATUS lines as JSON.
const IMAP_SCRIPT: &str = r#"
import imaplib, json, sys
port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
m = imaplib.IMAP4('127.0.0.1', port)
m.login(user, password)
out = []
for line in sys.argv[4:]:
    verb, _, args = line.partition(' ')
    tag = m._new_tag().decode()
    m.send(f'{tag} {verb} {args}\r\n'.encode())
    untagged = []
    while True:
        resp = m._get_line().decode('utf-8', 'replace')
        if resp.startswith(tag + ' '):
            status, _, text = resp[len(tag) + 1:].partition(' ')
            out.append({'status': status, 'text': text, 'untagged': untagged})
            break
        untagged.append(resp)
print(json.dumps(out))
"#;

fn imap(server: &Server, commands: &[&str]) -> Vec<serde_json::Value> {
    let port = server.imap_port.to_string();
    let mut args = vec![port.as_str(), USER, PASSWORD];
    args.extend_from_slice(commands);
    let out = python(IMAP_SCRIPT, &args);
    serde_json::from_str::<Vec<serde_json::Value>>(out.lines().last().unwrap()).unwrap()
}

fn jmap_names(server: &Server) -> Vec<String> {
    server.jmap(USER, PASSWORD).mailbox_names()
}

#[test]
fn a_folder_made_over_imap_in_modified_utf7_is_utf8_over_jmap() {
    let server = Server::start();
    server.account_with_password(USER, PASSWORD);
    let replies = imap(
        &server,
        &[
            "CREATE Entw&APw-rfe",
            r#"CREATE "Tom &- Jerry""#,
            r#"LIST "" *"#,
            "SELECT Entw&APw-rfe",
            "STATUS Entw&APw-rfe (MESSAGES)",
        ],
    );
    for r in &replies {
        assert_eq!(r["status"], "OK", "{replies:?}");
    }
    let list = replies[2]["untagged"].to_string();
    assert!(list.contains("Entw&APw-rfe"), "{list}");
    assert!(list.contains("Tom &- Jerry"), "{list}");
    assert!(
        !list.contains('ü'),
        "8-bit name sent to a client that did not enable UTF-8: {list}"
    );
    assert!(
        replies[4]["untagged"].to_string().contains("Entw&APw-rfe"),
        "{replies:?}"
    );
    let names = jmap_names(&server);
    assert!(names.contains(&"Entwürfe".to_string()), "{names:?}");
    assert!(names.contains(&"Tom & Jerry".to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("&APw-")), "{names:?}");
}

#[test]
fn a_folder_made_over_jmap_is_listed_in_modified_utf7_and_opens_by_that_name() {
    let server = Server::start();
    server.account_with_password(USER, PASSWORD);
    let jmap = server.jmap(USER, PASSWORD);
    let created = jmap.call(
        "Mailbox/set",
        json!({ "create": { "o": { "name": "Ordner ü" }, "j": { "name": "日本語" } } }),
    );
    assert!(created["created"]["o"]["id"].is_string(), "{created}");
    let replies = imap(
        &server,
        &[
            r#"LIST "" *"#,
            r#"SELECT "Ordner &APw-""#,
            "SELECT &ZeVnLIqe-",
        ],
    );
    let list = replies[0]["untagged"].to_string();
    assert!(list.contains("Ordner &APw-"), "{list}");
    assert!(list.contains("&ZeVnLIqe-"), "{list}");
    assert!(!list.contains('ü') && !list.contains('日'), "{list}");
    assert_eq!(replies[1]["status"], "OK", "{replies:?}");
    assert_eq!(replies[2]["status"], "OK", "{replies:?}");
}

#[test]
fn names_that_are_not_modified_utf7_are_refused_and_create_nothing() {
    let server = Server::start();
    server.account_with_password(USER, PASSWORD);
    let before = jmap_names(&server);
    // Unterminated shift, ASCII spelled in base64 (a second spelling of
    // "a"), leftover bits.
    let replies = imap(&server, &["CREATE &APw", "CREATE &AGE-", "CREATE x&A-"]);
    for r in &replies {
        // NO, not BAD: the command is well formed, the name names nothing
        // (imaptest's atoms script, as Dovecot answers).
        assert_eq!(r["status"], "NO", "{replies:?}");
        assert!(
            r["text"].as_str().unwrap().contains("modified UTF-7"),
            "{replies:?}"
        );
    }
    assert_eq!(jmap_names(&server), before);
}
