//! Runs `benches/imap_fetch.py` against the in-process server over a
//! 10,000-message INBOX. Ignored by default (it measures, it does not
//! check); run with
//! `cargo test --release --test imap_bench -- --ignored --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use support::imap::{message, ImapServer};
use support::tools::require;

#[test]
#[ignore = "benchmark: run explicitly with --ignored --nocapture"]
fn fetch_throughput_over_ten_thousand_messages() {
    require("python3");
    let s = ImapServer::start();
    let id = s.account("bench@example.org", "bench-pw");
    let filler = format!("{}\r\n", "x".repeat(76)).repeat(52); // ~4 KiB
    for i in 0..10_000 {
        let body = format!("bench {i}\r\n{filler}");
        s.append(
            id,
            "INBOX",
            &message(
                "b@example.net",
                "bench@example.org",
                &format!("bench {i}"),
                &body,
            ),
        );
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/imap_fetch.py");
    let out = Command::new("python3")
        .args([
            script,
            "127.0.0.1",
            &s.port.to_string(),
            "bench@example.org",
            "bench-pw",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{}", String::from_utf8_lossy(&out.stdout));
}
