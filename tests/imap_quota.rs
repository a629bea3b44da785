//! IMAP QUOTA (RFC 9208) against the real binary, driven by Python's
//! `imaplib` (`getquotaroot`, `getquota`, `setquota`): the account's one
//! quota root `""` with the STORAGE resource in KiB, usage that follows
//! deliveries, a limit that follows `sealmail account quota`, no root for
//! an account without a quota, and a COPY over quota that copies nothing
//! even across the store's write batches (RFC 9208 §4.2).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;

use support::server::Server;
use support::tools::python;

const USER: &str = "alice@example.org";
const PASSWORD: &str = "pw";

/// Runs `body` with `m` an `imaplib.IMAP4` logged in as alice; `out` is
/// printed as JSON at the end and returned.
fn imap(server: &Server, body: &str) -> Value {
    let script = format!(
        "import imaplib, json, sys\n\
         m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))\n\
         m.login('{USER}', '{PASSWORD}')\n\
         out = {{}}\n\
         def s(x):\n    \
             if isinstance(x, bytes): return x.decode()\n    \
             if isinstance(x, (list, tuple)): return [s(i) for i in x]\n    \
             return x\n\
         {body}\n\
         m.logout()\n\
         print(json.dumps(out))\n"
    );
    let stdout = python(&script, &[&server.imap_port.to_string()]);
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

fn server_with_quota(bytes: &str) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(dir.path(), &[("SEALMAIL_LIMITS_ACCOUNT_QUOTA", bytes)]);
    server.account_with_password(USER, PASSWORD);
    (dir, server)
}

/// The numbers of `"" (STORAGE used limit)`.
fn storage(quota: &Value) -> (u64, u64) {
    let text = quota.as_str().unwrap();
    let inner = text
        .strip_prefix("\"\" (STORAGE ")
        .and_then(|t| t.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not a STORAGE quota of root \"\": {text}"));
    let (used, limit) = inner.split_once(' ').unwrap();
    (used.parse().unwrap(), limit.parse().unwrap())
}

#[test]
fn storage_usage_follows_delivery_and_the_limit_follows_the_cli() {
    let (_dir, server) = server_with_quota("1048576");
    let before = imap(
        &server,
        "out['caps'] = s(m.capabilities)\n\
         typ, data = m.getquotaroot('INBOX')\n\
         out['typ'] = typ\n\
         out['roots'] = s(data[0])\n\
         out['quota'] = s(data[1])",
    );
    let caps: Vec<&str> = before["caps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(caps.contains(&"QUOTA"), "{caps:?}");
    assert!(caps.contains(&"QUOTA=RES-STORAGE"), "{caps:?}");
    assert_eq!(before["typ"], "OK", "{before}");
    assert_eq!(before["roots"][0], "INBOX \"\"", "{before}");
    assert_eq!(storage(&before["quota"][0]), (0, 1024), "{before}");

    let body = "x".repeat(70);
    let message = format!("Subject: fill\r\n\r\n{}", format!("{body}\r\n").repeat(100));
    let reply = server.lmtp_send(USER, message.as_bytes());
    assert!(reply.starts_with("250"), "{reply}");
    let after = imap(
        &server,
        "typ, data = m.getquota('\"\"')\nout['typ'] = typ\nout['quota'] = s(data)",
    );
    assert_eq!(after["typ"], "OK", "{after}");
    let (used, limit) = storage(&after["quota"][0]);
    assert!(
        (8..=10).contains(&used),
        "7.2 KB stored, {used} KiB reported"
    );
    assert_eq!(limit, 1024);

    server.ok(&["account", "quota", USER, "2MiB"]);
    let raised = imap(
        &server,
        "typ, data = m.getquota('\"\"')\nout['quota'] = s(data)",
    );
    assert_eq!(storage(&raised["quota"][0]), (used, 2048), "{raised}");
}

#[test]
fn an_account_without_quota_has_no_quota_root_and_setquota_is_refused() {
    let (_dir, server) = server_with_quota("0");
    let out = imap(
        &server,
        "typ, data = m.getquotaroot('INBOX')\n\
         out['root_typ'] = typ\n\
         out['roots'] = s(data[0])\n\
         out['quota'] = s(data[1])\n\
         typ, data = m.getquota('\"\"')\n\
         out['get'] = [typ, s(data)]\n\
         typ, data = m.setquota('\"\"', '(STORAGE 100)')\n\
         out['set'] = [typ, s(data)]",
    );
    assert_eq!(out["root_typ"], "OK", "{out}");
    assert_eq!(out["roots"][0], "INBOX", "{out}");
    assert_eq!(out["quota"][0], Value::Null, "no QUOTA response: {out}");
    assert_eq!(out["get"][0], "NO", "{out}");
    assert!(
        out["get"][1][0].as_str().unwrap().contains("NONEXISTENT"),
        "{out}"
    );
    assert_eq!(out["set"][0], "NO", "{out}");
    assert!(
        out["set"][1][0]
            .as_str()
            .unwrap()
            .contains("sealmail account quota"),
        "{out}"
    );
}

/// Delivers `count` small messages to alice over one LMTP connection.
const FILL: &str = r#"
import smtplib, sys
lmtp = smtplib.LMTP("127.0.0.1", int(sys.argv[1]), timeout=60)
for i in range(int(sys.argv[3])):
    msg = ("Subject: m%d\r\nMessage-ID: <m%d@example.net>\r\n\r\n" % (i, i)) + "y" * 300 + "\r\n"
    lmtp.sendmail("x@example.net", [sys.argv[2]], msg.encode())
lmtp.quit()
print("done")
"#;

#[test]
fn copy_over_quota_copies_nothing_and_copyuid_is_ranges() {
    let (_dir, server) = server_with_quota("1073741824");
    // why 1,100: more than one write batch of the store (1,000).
    python(FILL, &[&server.lmtp_port.to_string(), USER, "1100"]);
    let out = imap(
        &server,
        "m.create('Archive')\n\
         typ, data = m.select('INBOX')\nout['exists'] = s(data)",
    );
    assert_eq!(out["exists"][0], "1100", "{out}");
    // The limit: what is used now plus half of it, so that copying all
    // 1,100 does not fit and copying 300 does.
    let used = imap(
        &server,
        "typ, data = m.getquota('\"\"')\nout['quota'] = s(data)",
    );
    let (used_kib, _) = storage(&used["quota"][0]);
    let limit = used_kib * 1024 * 3 / 2;
    server.ok(&["account", "quota", USER, &limit.to_string()]);

    let out = imap(
        &server,
        "m.select('INBOX')\n\
         typ, data = m.copy('1:*', 'Archive')\n\
         out['all'] = [typ, s(data)]\n\
         typ, data = m.status('Archive', '(MESSAGES)')\n\
         out['after_all'] = s(data)\n\
         typ, data = m.getquota('\"\"')\n\
         out['quota'] = s(data)\n\
         typ, data = m.copy('1:300', 'Archive')\n\
         out['some'] = [typ, s(data)]\n\
         typ, data = m.status('Archive', '(MESSAGES)')\n\
         out['after_some'] = s(data)",
    );
    assert_eq!(out["all"][0], "NO", "{out}");
    assert!(
        out["all"][1][0].as_str().unwrap().contains("[OVERQUOTA]"),
        "{out}"
    );
    assert!(
        out["after_all"][0]
            .as_str()
            .unwrap()
            .ends_with("(MESSAGES 0)"),
        "{out}"
    );
    assert_eq!(storage(&out["quota"][0]).0, used_kib, "{out}");
    assert_eq!(out["some"][0], "OK", "{out}");
    let copyuid = out["some"][1][0].as_str().unwrap();
    assert!(copyuid.starts_with("[COPYUID "), "{out}");
    assert!(copyuid.contains(" 1:300 1:300]"), "{out}");
    assert!(
        out["after_some"][0]
            .as_str()
            .unwrap()
            .ends_with("(MESSAGES 300)"),
        "{out}"
    );
}

#[test]
fn status_reports_deleted_storage() {
    let (_dir, server) = server_with_quota("1048576");
    for n in 0..3 {
        let message = format!("Subject: s{n}\r\n\r\n{}\r\n", "z".repeat(1000));
        assert!(server
            .lmtp_send(USER, message.as_bytes())
            .starts_with("250"));
    }
    let out = imap(
        &server,
        "m.select('INBOX')\n\
         typ, data = m.fetch('1,3', '(RFC822.SIZE)')\n\
         out['sizes'] = s(data)\n\
         m.store('1,3', '+FLAGS', '(\\\\Deleted)')\n\
         typ, data = m.status('INBOX', '(DELETED DELETED-STORAGE)')\n\
         out['status'] = [typ, s(data)]",
    );
    let sizes: u64 = out["sizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let l = l.as_str().unwrap();
            let n = l.rsplit("RFC822.SIZE ").next().unwrap();
            n.trim_end_matches(')').parse::<u64>().unwrap()
        })
        .sum();
    assert_eq!(out["status"][0], "OK", "{out}");
    let status = out["status"][1][0].as_str().unwrap();
    assert!(
        status.ends_with(&format!("(DELETED 2 DELETED-STORAGE {sizes})")),
        "{out}"
    );
}
