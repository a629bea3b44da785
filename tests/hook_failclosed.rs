//! The storage-hook chain fails closed, over a real LMTP socket into an
//! in-process server with a custom chain: a hook that panics and a hook
//! that overruns its time budget each get the recipient `451 4.3.0`,
//! store nothing (not even once the slow hook has finished), leave an
//! audit line, and leave the server delivering to others.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sealmail::ingest::HookChain;
use sealmail::store::{AccountId, AuditKind, MailStore};
use sealmail_plugin_api::{HookError, IncomingMessage, StorageHook, Verdict};
use support::lmtp::{transaction, LmtpServer};

/// Panics for `victim@example.org`, accepts everyone else.
#[derive(Debug)]
struct PanicsForVictim;

impl StorageHook for PanicsForVictim {
    fn name(&self) -> &str {
        "panics-for-victim"
    }
    fn before_store(&self, msg: &IncomingMessage<'_>) -> Result<Verdict, HookError> {
        if msg.recipient.account == "victim@example.org" {
            panic!("a plugin bug");
        }
        Ok(Verdict::Accept)
    }
}

/// Sleeps 2 s for `slow@example.org` and then accepts; `done` is set
/// when it returns.
#[derive(Debug, Default)]
struct SlowForOne {
    done: AtomicBool,
}

impl StorageHook for SlowForOne {
    fn name(&self) -> &str {
        "slow-for-one"
    }
    fn before_store(&self, msg: &IncomingMessage<'_>) -> Result<Verdict, HookError> {
        if msg.recipient.account == "slow@example.org" {
            std::thread::sleep(Duration::from_secs(2));
            self.done.store(true, Ordering::SeqCst);
        }
        Ok(Verdict::Accept)
    }
}

const MESSAGE: &[u8] =
    b"From: sender@example.net\r\nTo: someone@example.org\r\nSubject: hooks\r\n\r\nhello\r\n";

fn inbox_len(store: &MailStore, id: AccountId) -> usize {
    let inbox = store.mailbox_by_name(id, "INBOX").unwrap();
    store
        .list_messages(id, inbox.id, None, usize::MAX)
        .unwrap()
        .len()
}

/// The details of the account's "delivery refused" audit lines.
fn refusals(store: &MailStore, id: AccountId) -> Vec<String> {
    store
        .audit_events(id, 100)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == AuditKind::DeliveryRefused)
        .map(|e| e.details)
        .collect()
}

#[test]
fn a_panicking_hook_refuses_its_recipient_and_the_server_carries_on() {
    let server = LmtpServer::start(HookChain::new(vec![Arc::new(PanicsForVictim)]));
    let victim = server.account("victim@example.org");
    let bob = server.account("bob@example.org");

    let replies = transaction(server.port, &["victim@example.org"], MESSAGE);
    assert_eq!(replies.data.len(), 1, "{replies:?}");
    assert!(replies.data[0].starts_with("451 4.3.0"), "{replies:?}");
    assert_eq!(inbox_len(&server.store, victim), 0);
    let audit = refusals(&server.store, victim);
    assert!(
        audit.iter().any(|d| d.contains("panicked")),
        "no audit line for the panic: {audit:?}"
    );

    // The same server, the next transaction: another account is served.
    let replies = transaction(server.port, &["bob@example.org"], MESSAGE);
    assert!(replies.data[0].starts_with("250 2.0.0"), "{replies:?}");
    assert_eq!(inbox_len(&server.store, bob), 1);
}

#[test]
fn a_hook_over_its_budget_refuses_and_its_late_finish_stores_nothing() {
    let hook = Arc::new(SlowForOne::default());
    let chain = HookChain::new(vec![Arc::clone(&hook) as Arc<dyn StorageHook>])
        .with_budget(Duration::from_millis(300));
    let server = LmtpServer::start(chain);
    let slow = server.account("slow@example.org");
    let bob = server.account("bob@example.org");

    let replies = transaction(
        server.port,
        &["slow@example.org", "bob@example.org"],
        MESSAGE,
    );
    assert_eq!(replies.data.len(), 2, "{replies:?}");
    assert!(replies.data[0].starts_with("451 4.3.0"), "{replies:?}");
    assert!(replies.data[1].starts_with("250 2.0.0"), "{replies:?}");

    // Wait until the hook has really returned, then give a write that
    // should not happen the time to happen.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !hook.done.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the slow hook never returned");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        inbox_len(&server.store, slow),
        0,
        "the late finish was stored"
    );
    assert_eq!(inbox_len(&server.store, bob), 1);
    let audit = refusals(&server.store, slow);
    assert_eq!(audit.len(), 1, "one audit line for one refusal: {audit:?}");
    assert!(audit[0].contains("in time"), "{audit:?}");
}
