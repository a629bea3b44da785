//! `mbsync` (isync), a real synchronising client: a 1,000-message mailbox
//! goes down to a Maildir with identical content, then mail added to the
//! Maildir goes up; no errors either way.
//!
//! mbsync stores Maildir files with LF line endings (it converts on the
//! way down and back on the way up) and adds its own `X-TUID:` line, so
//! contents are compared after normalising CRLF to LF and dropping that
//! line: every other byte must be identical.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use support::imap::{message, ImapServer};
use support::tools::{lf, require};

fn config(dir: &Path, port: u16) -> std::path::PathBuf {
    let maildir = dir.join("mail");
    std::fs::create_dir_all(&maildir).unwrap();
    // isync 1.4 spells it SSLType (TLSType from 1.5 on).
    let text = format!(
        "IMAPAccount test\nHost 127.0.0.1\nPort {port}\nUser alice@example.org\nPass alice-pw\nSSLType None\nAuthMechs LOGIN\n\n\
         IMAPStore remote\nAccount test\n\n\
         MaildirStore local\nPath {m}/\nInbox {m}/INBOX\nSubFolders Verbatim\n\n\
         Channel sync\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Both\nExpunge Both\nSyncState *\n",
        m = maildir.display()
    );
    let path = dir.join("mbsyncrc");
    std::fs::write(&path, text).unwrap();
    path
}

fn mbsync(config: &Path) {
    require("mbsync");
    let out = Command::new("mbsync")
        .arg("-c")
        .arg(config)
        .arg("-a")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "mbsync failed: {stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!stderr.to_ascii_lowercase().contains("error"), "{stderr}");
}

fn maildir_messages(dir: &Path) -> BTreeSet<Vec<u8>> {
    let mut out = BTreeSet::new();
    for sub in ["cur", "new"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            let text = lf(&std::fs::read(entry.unwrap().path()).unwrap());
            out.insert(without_tuid(text));
        }
    }
    out
}

/// mbsync marks every message it propagates with an `X-TUID:` header
/// line (its crash-recovery tag, isync's `drv_maildir`); that line is
/// mbsync's, not ours.
fn without_tuid(text: Vec<u8>) -> Vec<u8> {
    let Some(start) = text.windows(8).position(|w| w == b"\nX-TUID:") else {
        return text;
    };
    let end = text[start + 1..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(text.len(), |n| start + 1 + n);
    [&text[..start], &text[end..]].concat()
}

#[test]
fn mbsync_syncs_a_thousand_messages_down_and_new_ones_up() {
    let s = ImapServer::start();
    let id = s.account("alice@example.org", "alice-pw");
    for i in 0..1000 {
        let body = format!("message number {i}\r\n{}", "filler line\r\n".repeat(i % 7));
        s.append(
            id,
            "INBOX",
            &message(
                "bob@example.net",
                "alice@example.org",
                &format!("msg {i}"),
                &body,
            ),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = config(dir.path(), s.port);
    mbsync(&conf);
    let inbox = dir.path().join("mail/INBOX");
    let local = maildir_messages(&inbox);
    let remote: BTreeSet<Vec<u8>> = s.stored(id, "INBOX").iter().map(|m| lf(m)).collect();
    assert_eq!(local.len(), 1000);
    if let Some(diff) = local.difference(&remote).next() {
        let near = remote.iter().next().unwrap();
        panic!(
            "Maildir content differs from the store, e.g.\n{:?}\nvs stored\n{:?}",
            String::from_utf8_lossy(diff),
            String::from_utf8_lossy(near)
        );
    }

    for i in 0..3 {
        let name = inbox.join(format!("new/{}.local{i}.host", 1_700_000_000 + i));
        let text = format!("From: alice@example.org\nTo: bob@example.net\nSubject: local {i}\n\nwritten locally {i}\n");
        std::fs::write(name, text).unwrap();
    }
    mbsync(&conf);
    let stored = s.stored(id, "INBOX");
    assert_eq!(stored.len(), 1003);
    for i in 0..3 {
        let wanted = format!("Subject: local {i}\n\nwritten locally {i}\n");
        assert!(
            stored
                .iter()
                .any(|m| String::from_utf8_lossy(&without_tuid(lf(m))).contains(&wanted)),
            "local {i} not uploaded"
        );
    }
    // A second run with nothing new changes nothing.
    mbsync(&conf);
    assert_eq!(s.stored(id, "INBOX").len(), 1003);
    assert_eq!(maildir_messages(&inbox).len(), 1003);
}
