//! Arbitrary bytes to a real IMAP session over loopback (RFC 9051), after
//! an optional login: the server answers or closes, never panics, and a
//! fresh connection still gets its greeting afterwards.
#![no_main]

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use sealmail::imap::{serve, ImapConfig, ImapContext};
use sealmail::ingest::{HookChain, Ingest};
use sealmail::notify::Notifier;
use sealmail::store::MailStore;

fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let dir = tempfile::tempdir().expect("temp dir");
            let store = Arc::new(MailStore::open(dir.path()).expect("store"));
            store.add_account("fuzz@example.org", Some("pw"), &[]).expect("account");
            let notifier = Arc::new(Notifier::new());
            let chain = HookChain::from_names(&["encrypt-at-rest".into()]).expect("chain");
            let ingest = Arc::new(Ingest::new(Arc::clone(&store), chain, Arc::clone(&notifier)));
            let mut config = ImapConfig::new("fuzz");
            config.failed_login_delay = Duration::ZERO;
            config.idle_timeout = Duration::from_secs(2);
            config.max_literal_bytes = 1 << 16;
            let ctx = Arc::new(ImapContext { store, ingest, notifier, config });
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
                tx.send(listener.local_addr().expect("addr")).expect("send");
                serve(listener, ctx, false, std::future::pending()).await;
            });
            drop(dir);
        });
        rx.recv().expect("server address")
    })
}

fn session(input: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(server()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let _ = s.write_all(input);
    let _ = s.shutdown(Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

fuzz_target!(|input: &[u8]| {
    let Some((&selector, rest)) = input.split_first() else { return };
    let mut bytes = Vec::new();
    if selector & 1 == 1 {
        bytes.extend_from_slice(b"a LOGIN fuzz@example.org pw\r\nb SELECT INBOX\r\n");
    }
    bytes.extend_from_slice(rest);
    let out = session(&bytes);
    assert!(out.starts_with(b"* OK"), "no greeting: {:?}", String::from_utf8_lossy(&out));
    assert!(session(b"").starts_with(b"* OK"), "the server stopped answering");
});
