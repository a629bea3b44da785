//! Fairness of the CPU pool in the real server (issue #14, items 3 and
//! 5): while deliveries to a big list keep every core busy encrypting
//! member copies, a small delivery to another account must not wait for
//! them. Deliveries to the list (two per core, each 64 members with
//! encryption, 1 MiB) start first; three seconds later one small message
//! goes to an unrelated account; its reply must come before every list
//! reply. Order only, no timing thresholds: with a first-come pool the
//! small delivery queued behind the list's queued chunks and came after
//! at least two of the list deliveries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::fanout::{deliver_concurrently, members, populate, text_message, Delivery};
use support::server::Server;

const LIST: &str = "busy-list@example.org";
const SOLO: &str = "solo@example.org";

#[test]
fn a_small_delivery_is_not_held_behind_a_busy_list() {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let dir = tempfile::tempdir().unwrap();
    let list_members = members("f", 64);
    let mut accounts = list_members.clone();
    accounts.push(SOLO.to_string());
    populate(dir.path(), &accounts, LIST, &list_members);
    let server = Server::start_on(dir.path());

    let big = server.scratch.path().join("big.eml");
    std::fs::write(&big, text_message("busy", 1024 * 1024)).unwrap();
    let small = server.scratch.path().join("small.eml");
    std::fs::write(&small, text_message("solo", 2 * 1024)).unwrap();
    let mut deliveries: Vec<Delivery<'_>> = (0..2 * cores)
        .map(|i| Delivery {
            name: format!("list-{i}"),
            to: LIST,
            file: &big,
            delay_s: 0.0,
        })
        .collect();
    deliveries.push(Delivery {
        name: "solo".into(),
        to: SOLO,
        file: &small,
        delay_s: 3.0,
    });
    let order = deliver_concurrently(server.lmtp_port, &deliveries);
    eprintln!("replies in order: {order:?}");
    assert_eq!(order.len(), deliveries.len());
    for (name, code, text) in &order {
        assert_eq!(*code, 250, "{name}: {code} {text}");
    }
    let names: Vec<&str> = order.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(
        names.first(),
        Some(&"solo"),
        "the small delivery waited behind the list: {names:?}"
    );
    assert_eq!(server.inbox(SOLO).len(), 1);
    assert_eq!(server.inbox(&list_members[63]).len(), 2 * cores);
}
