//! Duplicate recipients in one LMTP transaction (RFC 2033 §4.2), against
//! the real server: the same address twice (in another letter case), an
//! account and its alias, a list address twice — each target gets one
//! stored copy, and every accepted RCPT still gets its own reply after
//! DATA, read on a raw socket (smtplib.LMTP reads only one).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::lmtp::{transaction, transaction_pipelined};
use support::server::Server;

const MESSAGE: &[u8] =
    b"From: sender@example.net\r\nTo: alice@example.org\r\nSubject: once\r\n\r\nstored once\r\n";

#[test]
fn an_account_named_three_ways_gets_one_copy_and_three_replies() {
    let server = Server::start();
    server.ok(&[
        "account",
        "add",
        "alice@example.org",
        "--alias",
        "al@example.org",
    ]);
    server.ok(&["account", "add", "bob@example.org"]);
    let rcpts = [
        "alice@example.org",
        "ALICE@Example.ORG",
        "al@example.org",
        "bob@example.org",
    ];
    let replies = transaction(server.lmtp_port, &rcpts, MESSAGE);
    assert!(
        replies.rcpt.iter().all(|r| r.starts_with("250")),
        "{replies:?}"
    );
    assert_eq!(replies.data.len(), 4, "one reply per RCPT: {replies:?}");
    for r in &replies.data {
        assert!(r.starts_with("250 2.0.0"), "{replies:?}");
    }
    let alice = server.inbox("alice@example.org");
    assert_eq!(alice.len(), 1, "alice got {} copies", alice.len());
    assert!(String::from_utf8_lossy(&alice[0]).contains("stored once"));
    assert_eq!(server.inbox("bob@example.org").len(), 1);
}

/// A server with the accounts bob and carol and the list team of
/// `members`.
fn bob_carol_and_team(members: &[&str]) -> Server {
    let server = Server::start();
    server.ok(&["account", "add", "bob@example.org"]);
    server.ok(&["account", "add", "carol@example.org"]);
    let mut add = vec!["list", "add", "team@example.org"];
    for m in members {
        add.extend(["--member", m]);
    }
    server.ok(&add);
    server
}

#[test]
fn a_list_named_twice_fans_out_once() {
    let server = bob_carol_and_team(&["bob@example.org", "carol@example.org"]);
    let replies = transaction(
        server.lmtp_port,
        &["team@example.org", "Team@example.org"],
        MESSAGE,
    );
    assert_eq!(replies.data.len(), 2, "{replies:?}");
    for r in &replies.data {
        assert!(
            r.starts_with("250 2.0.0") && r.contains("2 members"),
            "{replies:?}"
        );
    }
    assert_eq!(server.inbox("bob@example.org").len(), 1);
    assert_eq!(server.inbox("carol@example.org").len(), 1);
}

#[test]
fn pipelined_rcpts_of_every_kind_get_their_own_replies_in_order() {
    let server = bob_carol_and_team(&["carol@example.org"]);
    let long = format!("{}@example.org", "x".repeat(240));
    let rcpts = [
        "nobody@example.org",
        "bob@example.org",
        "team@example.org",
        "not an address",
        "BOB@example.org",
        long.as_str(),
        "nobody-else@example.org",
    ];
    let replies = transaction_pipelined(server.lmtp_port, &rcpts, MESSAGE);
    assert_eq!(replies.rcpt.len(), rcpts.len(), "{replies:?}");
    let codes: Vec<&str> = replies.rcpt.iter().map(|r| &r[..3]).collect();
    assert_eq!(
        codes,
        ["550", "250", "250", "501", "250", "550", "550"],
        "{replies:?}"
    );
    assert!(replies.rcpt[1].contains("<bob@example.org>"), "{replies:?}");
    assert!(replies.rcpt[4].contains("<BOB@example.org>"), "{replies:?}");
    // bob named twice: one copy, a reply for each RCPT; the list's member
    // gets hers.
    assert_eq!(replies.data.len(), 3, "{replies:?}");
    assert!(
        replies.data.iter().all(|r| r.starts_with("250 2.0.0")),
        "{replies:?}"
    );
    assert_eq!(server.inbox("bob@example.org").len(), 1);
    assert_eq!(server.inbox("carol@example.org").len(), 1);
}
