//! A real JMAP client library (the `jmap-client` crate, as Stalwart's
//! tests use it) against the in-process server: session discovery over
//! `/.well-known/jmap`, Mailbox/query + get, upload + Email/import,
//! Email/get and Email/set keywords. The crate cannot express custom
//! methods; the encryption extension is tested in `jmap_encryption.rs`
//! with raw JSON.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use jmap_client::client::Client;
use jmap_client::email::Property;
use jmap_client::mailbox::{query::Filter as MailboxFilter, Role};

use support::jmap::JmapServer;

const PASSWORD: &str = "client-test password";

async fn connect(server: &JmapServer, email: &str) -> Client {
    Client::new()
        .credentials((email, PASSWORD))
        .follow_redirects(["127.0.0.1"])
        .connect(&server.base)
        .await
        .unwrap()
}

async fn inbox_id(client: &Client) -> String {
    let mut found = client
        .mailbox_query(Some(MailboxFilter::role(Role::Inbox)), None::<Vec<_>>)
        .await
        .unwrap();
    found.take_ids().pop().expect("an inbox")
}

#[tokio::test]
async fn connects_and_lists_mailboxes() {
    let server = JmapServer::start();
    server.account("carol@example.org", PASSWORD);
    let client = connect(&server, "carol@example.org").await;
    let inbox = inbox_id(&client).await;
    let mailbox = client
        .mailbox_get(&inbox, None::<Vec<_>>)
        .await
        .unwrap()
        .expect("inbox exists");
    assert_eq!(mailbox.name(), Some("INBOX"));
    assert_eq!(mailbox.role(), Role::Inbox);
    assert_eq!(mailbox.total_emails(), 0);
}

#[tokio::test]
async fn imports_gets_and_flags_an_email() {
    let server = JmapServer::start();
    server.account("carol@example.org", PASSWORD);
    let client = connect(&server, "carol@example.org").await;
    let inbox = inbox_id(&client).await;
    let raw = b"From: dave@example.net\r\nTo: carol@example.org\r\nSubject: Imported\r\n\r\nHello from jmap-client.\r\n".to_vec();
    let imported = client
        .email_import(raw.clone(), [inbox.as_str()], Some(["$draft"]), None)
        .await
        .unwrap();
    let id = imported.id().unwrap().to_string();

    let email = client
        .email_get(
            &id,
            Some([
                Property::Subject,
                Property::Keywords,
                Property::MailboxIds,
                Property::Preview,
                Property::BlobId,
            ]),
        )
        .await
        .unwrap()
        .expect("imported email");
    assert_eq!(email.subject(), Some("Imported"));
    assert_eq!(email.keywords(), vec!["$draft"]);
    assert_eq!(email.mailbox_ids(), vec![inbox.as_str()]);
    assert_eq!(
        email.preview().map(str::trim),
        Some("Hello from jmap-client.")
    );

    client
        .email_set_keyword(&id, "$flagged", true)
        .await
        .unwrap();
    let email = client
        .email_get(&id, Some([Property::Keywords]))
        .await
        .unwrap()
        .unwrap();
    let mut keywords = email.keywords();
    keywords.sort_unstable();
    assert_eq!(keywords, vec!["$draft", "$flagged"]);

    // The stored bytes are the imported ones (no encryptOnAppend here).
    let blob = client
        .download(email_blob(&client, &id).await.as_str())
        .await
        .unwrap();
    assert_eq!(blob, raw);
}

async fn email_blob(client: &Client, id: &str) -> String {
    let email = client
        .email_get(id, Some([Property::BlobId]))
        .await
        .unwrap()
        .unwrap();
    email.blob_id().unwrap().to_string()
}

/// RFC 8621 §4.1.1 and §3 through the client library: a move keeps the
/// Email's id, `Email/changes` reports it as updated only, and a reply
/// imported after its parent shares the parent's Thread.
#[tokio::test]
async fn a_move_keeps_the_id_and_a_reply_shares_the_thread() {
    let server = JmapServer::start();
    server.account("carol@example.org", PASSWORD);
    let client = connect(&server, "carol@example.org").await;
    let inbox = inbox_id(&client).await;
    let mut found = client
        .mailbox_query(Some(MailboxFilter::role(Role::Archive)), None::<Vec<_>>)
        .await
        .unwrap();
    let archive = found.take_ids().pop().expect("an archive");
    let parent = b"From: dave@example.net\r\nSubject: Plans\r\nMessage-ID: <p@example.net>\r\n\r\nParent.\r\n";
    let reply = b"From: carol@example.org\r\nSubject: Re: Plans\r\nMessage-ID: <r@example.org>\r\nIn-Reply-To: <p@example.net>\r\nReferences: <p@example.net>\r\n\r\nReply.\r\n";
    let mut ids = Vec::new();
    for raw in [&parent[..], &reply[..]] {
        let imported = client
            .email_import(raw.to_vec(), [inbox.as_str()], None::<Vec<&str>>, None)
            .await
            .unwrap();
        ids.push(imported.id().unwrap().to_string());
    }
    let state = client
        .email_changes("0", None)
        .await
        .unwrap()
        .new_state()
        .to_string();

    client
        .email_set_mailboxes(&ids[0], [archive.as_str()])
        .await
        .unwrap();
    let moved = client
        .email_get(&ids[0], Some([Property::MailboxIds, Property::ThreadId]))
        .await
        .unwrap()
        .expect("the id still names the Email");
    assert_eq!(moved.mailbox_ids(), vec![archive.as_str()]);
    let changes = client.email_changes(state, None).await.unwrap();
    assert_eq!(changes.updated(), &ids[..1]);
    assert!(changes.created().is_empty() && changes.destroyed().is_empty());

    let thread = moved.thread_id().unwrap().to_string();
    let replied = client
        .email_get(&ids[1], Some([Property::ThreadId]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replied.thread_id(), Some(thread.as_str()));
    let thread = client.thread_get(&thread).await.unwrap().expect("a thread");
    assert_eq!(thread.email_ids(), &ids[..]);
}
