//! Nothing escapes its directory (issue 13, item 3), against the real
//! server binary: a mail user's mailbox names that are path steps (`..`,
//! `/abs`, NUL, CR) are refused by IMAP CREATE/RENAME and JMAP
//! Mailbox/set; `sealmail export` (as root, in practice) writes only below
//! its DIR and never through a link found there; `sealmail import` never
//! follows a link below the PATH it was given and never reads (or waits
//! on) anything but a regular file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::fs::{symlink, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::json;
use support::server::Server;
use support::tools::{python, run, run_unchecked};

const USER: &str = "mallory@example.org";
const PASSWORD: &str = "hostile paths";

/// One IMAP command per connection (a refused name must not depend on
/// what came before); prints `[name, status, text]` per attempt as JSON.
/// `args`: port, user, password, then `verb|first-arg|literal-hex` lines.
const IMAP_ATTEMPTS: &str = r#"
import imaplib, json, sys
port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
results = []
for spec in sys.argv[4:]:
    verb, first, literal = spec.split("|")
    m = imaplib.IMAP4("127.0.0.1", port)
    m.login(user, password)
    m.literal = bytes.fromhex(literal) if literal else None
    try:
        args = (first,) if first else ()
        typ, data = m._simple_command(verb, *args)
        text = data[0].decode("utf-8", "replace") if data and data[0] else ""
    except imaplib.IMAP4.error as e:
        typ, text = "BAD", str(e)
    results.append([spec, typ, text])
    try:
        m.logout()
    except Exception:
        pass
print(json.dumps(results))
"#;

/// LIST "" "*" as one sorted list of names.
const IMAP_LIST: &str = r#"
import imaplib, json, sys, re
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
m.login(sys.argv[2], sys.argv[3])
typ, data = m.list('""', "*")
names = sorted(re.match(rb'\(.*?\) "/" (.*)', d).group(1).decode() for d in data if d)
print(json.dumps(names))
"#;

fn server_with_user() -> Server {
    let server = Server::start();
    server.account_with_password(USER, PASSWORD);
    server
}

/// `verb|first|hex(literal)` for [`IMAP_ATTEMPTS`].
fn attempt(verb: &str, first: &str, literal: &[u8]) -> String {
    let hex: String = literal.iter().map(|b| format!("{b:02x}")).collect();
    format!("{verb}|{first}|{hex}")
}

fn imap_attempts(server: &Server, specs: &[String]) -> Vec<(String, String, String)> {
    let port = server.imap_port.to_string();
    let mut args = vec![port.as_str(), USER, PASSWORD];
    args.extend(specs.iter().map(String::as_str));
    serde_json::from_str(&python(IMAP_ATTEMPTS, &args)).unwrap()
}

fn imap_names(server: &Server) -> Vec<String> {
    let port = server.imap_port.to_string();
    serde_json::from_str(&python(IMAP_LIST, &[&port, USER, PASSWORD])).unwrap()
}

/// Every path under `dir` (directories and files, links not followed).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            }
            out.push(entry.path());
        }
    }
    out.sort();
    out
}

#[test]
fn imap_create_and_rename_refuse_path_steps_and_create_nothing() {
    let server = server_with_user();
    let ok = imap_attempts(&server, &[attempt("CREATE", "Folder", b"")]);
    assert_eq!(ok[0].1, "OK", "{ok:?}");
    let before = imap_names(&server);

    let hostile: [&[u8]; 8] = [
        b"../../../../../tmp/x",
        b"..",
        b"/abs",
        b"a/../../b",
        b"a//b",
        b"Folder/./x",
        b"x\ry",
        b"x\x01y",
    ];
    let mut specs: Vec<String> = hostile.iter().map(|n| attempt("CREATE", "", n)).collect();
    specs.extend(hostile.iter().map(|n| attempt("RENAME", "Folder", n)));
    for (spec, status, text) in imap_attempts(&server, &specs) {
        assert_eq!(status, "NO", "{spec}: {text}");
        assert!(text.starts_with("[CANNOT]"), "{spec}: {text}");
        assert!(text.contains("is not allowed"), "{spec}: {text}");
    }
    // NUL cannot even be sent in an IMAP literal (RFC 9051 CHAR8): refused
    // either by the parser (BAD) or by the name rules (NO).
    let nul = imap_attempts(&server, &[attempt("CREATE", "", b"x\0y")]);
    assert_ne!(nul[0].1, "OK", "{nul:?}");

    assert_eq!(imap_names(&server), before);
}

#[test]
fn jmap_mailbox_set_refuses_path_steps_alone_and_through_a_parent() {
    let server = server_with_user();
    let jmap = server.jmap(USER, PASSWORD);
    let created = jmap.call(
        "Mailbox/set",
        json!({ "create": {
            "dots": { "name": ".." },
            "dotslash": { "name": "../x" },
            "parent": { "name": "parent" },
            "child": { "name": "..", "parentId": "#parent" },
            "dot": { "name": ".", "parentId": "#parent" },
            "nul": { "name": "x\u{0}y" },
        } }),
    );
    assert!(created["created"]["parent"]["id"].is_string(), "{created}");
    for refused in ["dots", "dotslash", "child", "dot", "nul"] {
        let err = &created["notCreated"][refused];
        assert_eq!(err["type"], "invalidProperties", "{refused}: {created}");
        assert!(
            err["description"].as_str().unwrap().contains("name"),
            "{refused}: {created}"
        );
    }
    let parent = created["created"]["parent"]["id"].as_str().unwrap();
    let updated = jmap.call(
        "Mailbox/set",
        json!({ "update": { parent: { "name": ".." } } }),
    );
    assert_eq!(
        updated["notUpdated"][parent]["type"], "invalidProperties",
        "{updated}"
    );
    let names = jmap.mailbox_names();
    assert!(names.contains(&"parent".to_string()), "{names:?}");
    assert!(names.iter().all(|n| !n.contains('.')), "{names:?}");
}

#[test]
fn export_writes_only_below_its_directory_with_encoded_names() {
    let server = server_with_user();
    let specs: Vec<String> = ["../canary/x", ".hidden", "..x", "INBOX/cur", "a\\b"]
        .iter()
        .map(|n| attempt("CREATE", "", n.as_bytes()))
        .collect();
    imap_attempts(&server, &specs);
    let message = "From: a@example.org\r\nSubject: hidden\r\n\r\nin a dot mailbox\r\n";
    python(
        r#"
import imaplib, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
m.login(sys.argv[2], sys.argv[3])
typ, data = m.append('".hidden"', None, None, sys.argv[4].encode())
assert typ == "OK", data
"#,
        &[&server.imap_port.to_string(), USER, PASSWORD, message],
    );

    let parent = tempfile::tempdir().unwrap();
    let canary = parent.path().join("canary");
    std::fs::create_dir(&canary).unwrap();
    let out_dir = parent.path().join("out");
    server.ok(&["export", USER, "--to", out_dir.to_str().unwrap()]);

    assert_eq!(walk(&canary), Vec::<PathBuf>::new(), "canary touched");
    let all = walk(parent.path());
    for path in &all {
        assert!(path == &canary || path.starts_with(&out_dir), "{path:?}");
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(!name.starts_with('.'), "{path:?}");
    }
    assert!(out_dir.join("INBOX/cur").is_dir(), "{all:?}");
    assert!(out_dir.join("INBOX/%63ur/cur").is_dir(), "{all:?}");
    assert!(out_dir.join("%2E%2Ex/new").is_dir(), "{all:?}");
    assert!(out_dir.join("a%5Cb/tmp").is_dir(), "{all:?}");
    let hidden: Vec<_> = std::fs::read_dir(out_dir.join("%2Ehidden/cur"))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(hidden, vec![message.as_bytes().to_vec()]);
}

#[test]
fn export_refuses_a_link_inside_its_directory() {
    let server = server_with_user();
    let parent = tempfile::tempdir().unwrap();
    let canary = parent.path().join("canary");
    std::fs::create_dir(&canary).unwrap();
    let out_dir = parent.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    symlink(&canary, out_dir.join("INBOX")).unwrap();

    let out = server.cli(&["export", USER, "--to", out_dir.to_str().unwrap()], b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("INBOX\" is a symbolic link") && stderr.contains("never follows"),
        "{stderr}"
    );
    assert_eq!(
        walk(&canary),
        Vec::<PathBuf>::new(),
        "written through the link"
    );
}

/// Runs `sealmail import` under `timeout`, so a read that waits forever
/// (a FIFO) fails the test instead of hanging it.
fn import_with_timeout(server: &Server, path: &Path) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.arg("120")
        .arg(env!("CARGO_BIN_EXE_sealmail"))
        .args(["import", USER])
        .arg(path)
        .arg("--data-dir")
        .arg(&server.data_dir);
    let out = run_unchecked(&mut cmd, b"");
    assert_ne!(out.status.code(), Some(124), "import hung: {out:?}");
    out
}

fn mkfifo(path: &Path) {
    run(Command::new("mkfifo").arg(path), b"");
}

#[test]
fn import_skips_links_and_fifos_below_its_path() {
    let server = server_with_user();
    let tmp = tempfile::tempdir().unwrap();
    let secret_dir = tmp.path().join("secret");
    std::fs::create_dir(&secret_dir).unwrap();
    let secret = secret_dir.join("1700000000.root.host:2,S");
    std::fs::write(&secret, "Subject: root\r\n\r\nROOT-ONLY-8c1f\r\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let outside = tmp.path().join("outside.eml");
    std::fs::write(&outside, "Subject: outside\r\n\r\nOUTSIDE-5d2e\r\n").unwrap();

    let md = tmp.path().join("Maildir");
    std::fs::create_dir_all(md.join("new")).unwrap();
    symlink(&secret_dir, md.join("cur")).unwrap();
    std::fs::write(
        md.join("new/1700000001.ok.host"),
        "Subject: ok\r\n\r\nREGULAR-41a0\r\n",
    )
    .unwrap();
    symlink(&outside, md.join("new/1700000002.link.host")).unwrap();
    mkfifo(&md.join("new/1700000003.fifo.host"));
    // The operator may name the Maildir through a link of their own.
    let given = tmp.path().join("given");
    symlink(&md, &given).unwrap();

    let out = import_with_timeout(&server, &given);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        stdout.contains("imported 1, already there 0, refused 0, skipped 3"),
        "{stdout}\n{stderr}"
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for named in [
        "/cur\" is a symbolic link",
        "1700000002.link.host\" is a symbolic link",
        "1700000003.fifo.host\" is a FIFO",
    ] {
        assert!(stderr.contains(named), "{named}: {stderr}");
    }
    let stored = server.inbox(USER);
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(String::from_utf8_lossy(&stored[0]).contains("REGULAR-41a0"));
}

#[test]
fn import_refuses_a_fifo_given_as_mbox_without_waiting() {
    let server = server_with_user();
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("mbox");
    mkfifo(&fifo);
    let out = import_with_timeout(&server, &fifo);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is a FIFO, not a regular file"), "{stderr}");
}

#[test]
fn import_into_a_path_step_mailbox_is_refused() {
    let server = server_with_user();
    let tmp = tempfile::tempdir().unwrap();
    let mbox = tmp.path().join("mbox");
    std::fs::write(
        &mbox,
        "From a@x Sat Jan  3 01:05:34 1996\nSubject: 1\n\none\n",
    )
    .unwrap();
    let out = server.cli(
        &[
            "import",
            USER,
            mbox.to_str().unwrap(),
            "--mailbox",
            "../escape",
        ],
        b"",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is not allowed"), "{stderr}");
    assert!(!imap_names(&server).iter().any(|n| n.contains("escape")));
}
