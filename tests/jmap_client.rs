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
