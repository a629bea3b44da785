//! A sender's CMS envelope built to make a list's key work: 8,000
//! RecipientInfos (about 3 MB), half of them naming the list's certificate
//! with garbage keys. Parsing is linear and the list key is tried once,
//! so the real server answers within the sender's patience and the
//! members get the message intact (it is not decryptable by the list).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::cms_bomb::hostile_message;
use support::pki::pair;
use support::server::Server;

#[test]
fn eight_thousand_recipient_infos_do_not_hold_the_list() {
    let server = Server::start();
    let team = pair("team@example.org", 2048);
    let other = pair("other@example.org", 2048);
    server.ok(&["account", "add", "bob@example.org"]);
    server.list_with_key("team@example.org", &["bob@example.org"], &team);
    let message = hostile_message("team@example.org", &team, &other);
    // why the sender's 60 s timeout suffices: the old quadratic parse and
    // 4,000 RSA attempts took over 70 s; a linear parse with one attempt
    // takes well under a second.
    let reply = server.lmtp_send("team@example.org", message.as_bytes());
    assert!(reply.starts_with("250"), "{reply}");
    let inbox = server.inbox("bob@example.org");
    assert_eq!(inbox.len(), 1);
    let body = support::tools::body_of(&inbox[0]);
    assert_eq!(
        support::tools::lf(body),
        support::tools::lf(message.split_once("\r\n\r\n").unwrap().1.as_bytes()),
        "not decryptable by the list: delivered intact"
    );
}
