//! The data upgrade to Email ids and threads: messages written the way
//! sealmail wrote them before (version 1 records, change-log entries by
//! `mailbox uid`, no indexes, no data version) get ids and threads when
//! the store opens, on RocksDB and on PostgreSQL, also with two nodes
//! upgrading one database at once.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::super::keys::{self, Key};
use super::super::log::{Change, ChangedObject};
use super::super::message_record::MessageV1;
use super::super::records::encode;
use super::super::test_fixtures::message;
use super::super::*;
use super::DATA_VERSION;

fn headers(subject: &str, id: &str, parent: Option<&str>) -> HeaderFields {
    HeaderFields {
        subject: Some(subject.into()),
        message_id: Some(format!("<{id}>")),
        in_reply_to: parent.map(|p| format!("<{p}>")),
        references: parent.map(|p| format!("<{p}>")),
        ..HeaderFields::default()
    }
}

/// Accounts with mail in two mailboxes: a thread (parent in the INBOX, a
/// reply in Archive, stored in that order) and a namesake of the parent.
fn fill(mail: &MailStore) -> Vec<AccountId> {
    let mut ids = Vec::new();
    for who in ["alice@example.org", "bob@example.org"] {
        let id = mail.add_account(who, None, &[]).unwrap().id;
        let inbox = mail.mailbox_by_name(id, "INBOX").unwrap().id;
        let archive = mail.mailbox_by_name(id, "Archive").unwrap().id;
        for (mailbox, raw, h) in [
            (inbox, &b"parent"[..], headers("Plans", "p@x", None)),
            (archive, b"reply", headers("Re: Plans", "r@x", Some("p@x"))),
            (inbox, b"namesake", headers("Plans", "n@x", None)),
        ] {
            let mut m = message(raw);
            m.headers = h;
            mail.append(id, mailbox, m).unwrap();
        }
        ids.push(id);
    }
    ids
}

/// Leaves the account as sealmail before Email ids did: version 1
/// records, log entries by `mailbox uid`, no `emails`, `threads` or
/// `message_ids`, no data version.
fn downgrade(mail: &MailStore, id: AccountId) {
    let mut batch = Batch::new();
    for mb in mail.list_mailboxes(id).unwrap() {
        for m in mail.list_messages(id, mb.id, None, usize::MAX).unwrap() {
            let old = MessageV1 {
                mailbox: m.mailbox,
                uid: m.uid,
                modseq: m.modseq,
                flags: m.flags,
                internal_date: m.internal_date,
                size: m.size,
                headers: m.headers,
                blob: m.blob,
                encrypted: m.encrypted,
            };
            let key = Key::Message(id, m.mailbox, m.uid).encode();
            batch.put(Cf::Messages, key, encode(&old).unwrap());
        }
    }
    for c in mail.changes_since(id, 0, usize::MAX).unwrap() {
        if let ChangedObject::Email(e) = &c.object {
            let legacy = Change {
                id: c.id,
                kind: c.kind,
                object: ChangedObject::Message {
                    mailbox: e.mailbox,
                    uid: e.uid,
                },
            };
            batch.put(
                Cf::Changes,
                Key::Change(id, c.id).encode(),
                encode(&legacy).unwrap(),
            );
        }
    }
    for cf in [Cf::Emails, Cf::Threads, Cf::MessageIds] {
        batch.delete_range(cf, keys::account_range(id));
    }
    batch.delete(Cf::Meta, Key::DataVersion.encode());
    mail.engine().write(batch).unwrap();
}

fn all(mail: &MailStore, id: AccountId) -> Vec<Message> {
    let mut out = Vec::new();
    for mb in mail.list_mailboxes(id).unwrap() {
        out.extend(mail.list_messages(id, mb.id, None, usize::MAX).unwrap());
    }
    out
}

/// What the upgraded store must show for the accounts of [`fill`].
fn check_upgraded(mail: &MailStore, accounts: &[AccountId]) {
    assert_eq!(
        mail.load::<u32>(&Key::DataVersion).unwrap(),
        Some(DATA_VERSION)
    );
    for &id in accounts {
        let msgs = all(mail, id);
        assert_eq!(msgs.len(), 3);
        let emails: BTreeSet<u64> = msgs.iter().map(|m| m.email_id).collect();
        assert_eq!(emails.len(), 3, "every message has an id of its own");
        let found = mail
            .get_emails(id, &emails.iter().copied().collect::<Vec<_>>())
            .unwrap();
        assert!(found.iter().all(Option::is_some), "the index finds each");
        let by_id = |mid: &str| {
            msgs.iter()
                .find(|m| m.headers.message_id.as_deref() == Some(mid))
                .unwrap()
        };
        let (parent, reply, namesake) = (by_id("<p@x>"), by_id("<r@x>"), by_id("<n@x>"));
        assert_eq!(
            reply.thread_id, parent.thread_id,
            "a reply joins its parent"
        );
        assert_ne!(namesake.thread_id, parent.thread_id, "a namesake does not");
        let members: Vec<u64> = mail
            .thread_members(id, parent.thread_id)
            .unwrap()
            .into_iter()
            .map(|(e, _)| e)
            .collect();
        assert_eq!(members, vec![parent.email_id, reply.email_id]);
        // New mail gets ids after every upgraded one.
        let inbox = mail.mailbox_by_name(id, "INBOX").unwrap().id;
        let fresh = mail.append(id, inbox, message(b"later")).unwrap();
        assert!(emails.iter().all(|&e| e < fresh.email_id));
    }
}

fn downgraded(mail: &MailStore) -> Vec<AccountId> {
    let accounts = fill(mail);
    for &id in &accounts {
        downgrade(mail, id);
        let inbox = mail.mailbox_by_name(id, "INBOX").unwrap().id;
        assert!(
            mail.list_messages(id, inbox, None, 1).is_err(),
            "the records are in the old shape"
        );
    }
    accounts
}

#[test]
fn rocksdb_messages_stored_before_email_ids_get_them_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let accounts = downgraded(&MailStore::open(dir.path()).unwrap());
    let mail = MailStore::open(dir.path()).unwrap();
    check_upgraded(&mail, &accounts);
    // A second open changes nothing.
    let before: Vec<Vec<Message>> = accounts.iter().map(|&id| all(&mail, id)).collect();
    drop(mail);
    let mail = MailStore::open(dir.path()).unwrap();
    let after: Vec<Vec<Message>> = accounts.iter().map(|&id| all(&mail, id)).collect();
    assert_eq!(before, after);
}

fn pg_store(url: &str) -> MailStore {
    MailStore::new(
        open_engine_url(url, 4).unwrap(),
        MasterKey::from_bytes([1; 32]),
    )
}

#[test]
fn postgres_messages_stored_before_email_ids_get_them_at_open() {
    let db = super::super::postgres::test_server::test_db();
    let accounts = downgraded(&pg_store(&db.url));
    let mail = pg_store(&db.url);
    mail.upgrade().unwrap();
    check_upgraded(&mail, &accounts);
}

#[test]
fn postgres_two_nodes_upgrading_at_once_give_each_message_one_id() {
    let db = super::super::postgres::test_server::test_db();
    let accounts = downgraded(&pg_store(&db.url));
    let nodes: Vec<_> = (0..2)
        .map(|_| {
            let mail = Arc::new(pg_store(&db.url));
            std::thread::spawn(move || mail.upgrade().unwrap())
        })
        .collect();
    for n in nodes {
        n.join().unwrap();
    }
    check_upgraded(&pg_store(&db.url), &accounts);
}
