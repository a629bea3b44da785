//! Many recipients in one LMTP transaction, against the real server: the
//! copies of a 100-RCPT delivery are sealed together and written in one
//! batch (`src/ingest/recipients/batch.rs`), and still every recipient
//! gets its own reply after DATA (read on a raw socket: smtplib.LMTP
//! reads only one), its own copy that only its own key opens with
//! `openssl cms -decrypt`, and nothing in clear for an opted-in account.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::lmtp::{transaction, transaction_pipelined};
use support::pki::{self_signed, smime_extensions, KeyPair};
use support::server::Server;
use support::tools::{found_in_files, lf, openssl_decrypt, require, run_unchecked};

const MARKER: &str = "MANY-RCPT-MARKER-4b1d93";

fn message() -> Vec<u8> {
    let mut body = String::new();
    // ~40 KiB: long enough that copies go to blob segments.
    for i in 0..500 {
        body.push_str(&format!(
            "line {i:04} of the body, {MARKER} ......................\r\n"
        ));
    }
    format!(
        "From: sender@example.net\r\nTo: everyone@example.org\r\nSubject: many\r\n\
         Message-ID: <many@example.net>\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{body}"
    )
    .into_bytes()
}

/// `n` fresh RSA-2048 key pairs for `prefix001@example.org`.., made with
/// `openssl req`, two processes at a time.
fn key_pairs(dir: &std::path::Path, prefix: &str, n: usize) -> Vec<KeyPair> {
    require("openssl");
    let emails: Vec<String> = (1..=n)
        .map(|i| format!("{prefix}{i:03}@example.org"))
        .collect();
    let mut out: Vec<KeyPair> = Vec::with_capacity(n);
    for batch in emails.chunks(2) {
        let made: Vec<KeyPair> = std::thread::scope(|s| {
            let handles: Vec<_> = batch
                .iter()
                .map(|email| {
                    s.spawn(move || {
                        let name = email.replace(['@', '.'], "_");
                        self_signed(
                            dir,
                            &name,
                            "rsa:2048",
                            &format!("/CN={email}/emailAddress={email}"),
                            &smime_extensions(email),
                        )
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        out.extend(made);
    }
    out
}

fn opt_in(server: &Server, keys: &KeyPair) {
    server.ok(&["account", "add", &keys.email]);
    server.ok(&["cert", "add", &keys.email, keys.cert.to_str().unwrap()]);
    server.ok(&["encryption", "enable", &keys.email]);
}

/// Whether `openssl cms -decrypt` with `keys` opens `smime`.
fn opens_with(smime: &[u8], keys: &KeyPair) -> bool {
    let out = run_unchecked(
        std::process::Command::new("openssl")
            .args(["cms", "-decrypt", "-binary", "-recip"])
            .arg(&keys.cert)
            .arg("-inkey")
            .arg(&keys.key),
        smime,
    );
    out.status.success()
}

#[test]
fn a_hundred_opted_in_recipients_each_get_a_reply_and_a_copy_only_their_key_opens() {
    let dir = tempfile::tempdir().unwrap();
    let keys = key_pairs(dir.path(), "enc", 100);
    let server = Server::start();
    for k in &keys {
        opt_in(&server, k);
    }
    let rcpts: Vec<&str> = keys.iter().map(|k| k.email.as_str()).collect();
    let msg = message();
    let replies = transaction(server.lmtp_port, &rcpts, &msg);
    assert!(
        replies.rcpt.iter().all(|r| r.starts_with("250")),
        "{replies:?}"
    );
    assert_eq!(replies.data.len(), 100, "one reply per RCPT: {replies:?}");
    for (reply, rcpt) in replies.data.iter().zip(&rcpts) {
        assert!(
            reply.starts_with("250 2.0.0") && reply.contains(&format!("<{rcpt}>")),
            "{rcpt}: {reply}"
        );
        assert!(reply.contains("stored encrypted"), "{rcpt}: {reply}");
    }
    let inner = lf(&msg[msg
        .windows(14)
        .position(|w| w == b"Content-Type: ")
        .unwrap()..]);
    for (i, k) in keys.iter().enumerate() {
        let inbox = server.inbox(&k.email);
        assert_eq!(inbox.len(), 1, "{} got {} copies", k.email, inbox.len());
        let stored = &inbox[0];
        assert!(
            !stored.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()),
            "{}'s copy holds the plaintext",
            k.email
        );
        let opened = openssl_decrypt(stored, &k.cert, &k.key);
        assert_eq!(
            lf(&opened),
            inner,
            "{}'s copy opens to the message",
            k.email
        );
        // Every copy names only its own recipient: the next account's key
        // does not open it (a sample of ten keeps the test quick).
        if i % 10 == 0 {
            let other = &keys[(i + 1) % keys.len()];
            assert!(
                !opens_with(stored, other),
                "{}'s copy opens with {}'s key",
                k.email,
                other.email
            );
        }
    }
    let leaks = found_in_files(&server.data_dir, MARKER.as_bytes());
    assert!(leaks.is_empty(), "plaintext on disk: {leaks:?}");
}

#[test]
fn a_mix_of_opted_in_plain_unknown_and_over_quota_recipients_gets_the_right_reply_each() {
    let dir = tempfile::tempdir().unwrap();
    let keys = key_pairs(dir.path(), "mix", 6);
    let server = Server::start();
    for k in &keys {
        opt_in(&server, k);
    }
    let plain: Vec<String> = (1..=6)
        .map(|i| format!("plain{i:03}@example.org"))
        .collect();
    for p in &plain {
        server.ok(&["account", "add", p]);
    }
    server.ok(&["account", "add", "full@example.org"]);
    server.ok(&["account", "quota", "full@example.org", "1KiB"]);
    // Interleaved: opted in, plain, unknown, and one over its quota (which
    // makes the shared batch fail and the copies go one by one).
    let mut rcpts: Vec<String> = Vec::new();
    for i in 0..6 {
        rcpts.push(keys[i].email.clone());
        rcpts.push(plain[i].clone());
        if i % 2 == 0 {
            rcpts.push(format!("nobody{i}@example.org"));
        }
        if i == 3 {
            rcpts.push("full@example.org".into());
        }
    }
    let rcpt_refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    let msg = message();
    // why pipelined: the RCPTs then reach the server in one read and are
    // checked in one batch (`lmtp::session`), whose replies must still
    // be each recipient's own, in order.
    let replies = transaction_pipelined(server.lmtp_port, &rcpt_refs, &msg);
    let accepted: Vec<&str> = rcpt_refs
        .iter()
        .zip(&replies.rcpt)
        .filter(|(r, reply)| {
            if r.starts_with("nobody") {
                assert!(reply.starts_with("550 5.1.1"), "{r}: {reply}");
                false
            } else {
                assert!(reply.starts_with("250"), "{r}: {reply}");
                true
            }
        })
        .map(|(r, _)| *r)
        .collect();
    assert_eq!(
        replies.data.len(),
        accepted.len(),
        "one reply per accepted RCPT: {replies:?}"
    );
    for (rcpt, reply) in accepted.iter().zip(&replies.data) {
        assert!(reply.contains(&format!("<{rcpt}>")), "{rcpt}: {reply}");
        if rcpt.starts_with("mix") {
            assert!(
                reply.starts_with("250 2.0.0") && reply.contains("stored encrypted"),
                "{rcpt}: {reply}"
            );
        } else if rcpt.starts_with("plain") {
            assert!(
                reply.starts_with("250 2.0.0") && !reply.contains("encrypted"),
                "{rcpt}: {reply}"
            );
        } else {
            assert!(reply.starts_with("552 5.2.2"), "{rcpt}: {reply}");
        }
    }
    for k in &keys {
        let inbox = server.inbox(&k.email);
        assert_eq!(inbox.len(), 1, "{}", k.email);
        assert!(
            !inbox[0]
                .windows(MARKER.len())
                .any(|w| w == MARKER.as_bytes()),
            "{}'s copy holds the plaintext",
            k.email
        );
        assert!(opens_with(&inbox[0], k), "{}", k.email);
    }
    for p in &plain {
        let inbox = server.inbox(p);
        assert_eq!(inbox.len(), 1, "{p}");
        assert!(inbox[0]
            .windows(MARKER.len())
            .any(|w| w == MARKER.as_bytes()));
    }
    assert!(server.inbox("full@example.org").is_empty());
}
