//! Crash safety: four LMTP clients deliver 64 KiB messages with unique
//! markers while the real server is SIGKILLed at random moments, ten
//! times, and restarted on the same data directory. Afterwards every
//! message that got a 250 is stored once and decrypts with the account's
//! key, and nothing half-written is visible.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use sealmail::smime::Decryptor;
use support::pki::{pair, tempdir};
use support::server::Server;
use support::tools::openssl_decrypt;
use x509_cert::der::DecodePem;

/// Delivers one 64 KiB message with `marker` to alice; `Ok(true)` when it
/// got a 250 after DATA, `Ok(false)` on another reply, `Err` when the
/// connection broke.
fn deliver(port: u16, marker: &str) -> std::io::Result<bool> {
    let filler = "x".repeat(76);
    let mut body = format!("From: load@example.net\r\nSubject: {marker}\r\n\r\n{marker}\r\n");
    while body.len() < 64 * 1024 {
        body.push_str(&filler);
        body.push_str("\r\n");
    }
    support::lmtp::deliver_raw(port, "alice@example.org", body.as_bytes())
}

#[test]
fn acknowledged_mail_survives_ten_sigkills() {
    let dir = tempdir();
    let alice = pair("alice@example.org", 2048);
    let mut server = Server::start_on(dir.path());
    server.ok(&["account", "add", "alice@example.org"]);
    server.ok(&[
        "cert",
        "add",
        "alice@example.org",
        alice.cert.to_str().unwrap(),
    ]);
    server.ok(&["encryption", "enable", "alice@example.org"]);

    let port = Arc::new(AtomicU16::new(server.lmtp_port));
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (port, stop, acked) = (Arc::clone(&port), Arc::clone(&stop), Arc::clone(&acked));
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let marker = format!("CRASH-MARKER-{c}-{n:05}");
                    n += 1;
                    match deliver(port.load(Ordering::Relaxed), &marker) {
                        Ok(true) => {
                            acked.lock().unwrap().insert(marker);
                        }
                        _ => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
        })
        .collect();

    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5ea1);
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(rng.gen_range(150..900)));
        server.kill();
        server = Server::start_on(dir.path());
        port.store(server.lmtp_port, Ordering::Relaxed);
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 10,
        "the load barely ran: {} acknowledged",
        acked.len()
    );

    let files = server.inbox("alice@example.org");
    let cert = x509_cert::Certificate::from_pem(alice.cert_pem()).unwrap();
    let decryptor =
        Decryptor::from_pem(&String::from_utf8(alice.key_pem()).unwrap(), Some(&cert)).unwrap();
    let mut stored = Vec::new();
    for (i, bytes) in files.iter().enumerate() {
        let inner = decryptor
            .decrypt_message(bytes)
            .unwrap_or_else(|e| panic!("message {i} does not decrypt: {e}"));
        let text = String::from_utf8(inner).unwrap();
        let marker = text
            .lines()
            .find(|l| l.starts_with("CRASH-MARKER-"))
            .expect("marker in body")
            .to_string();
        if i < 3 {
            assert!(
                String::from_utf8_lossy(&openssl_decrypt(bytes, &alice.cert, &alice.key))
                    .contains(&marker)
            );
        }
        stored.push(marker);
    }
    let unique: BTreeSet<String> = stored.iter().cloned().collect();
    assert_eq!(unique.len(), stored.len(), "a message is stored twice");
    let lost: Vec<&String> = acked.difference(&unique).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged messages lost after SIGKILLs: {lost:?}",
        lost.len()
    );
}
