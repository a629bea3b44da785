//! Arbitrary bytes as the body of a JMAP API request (RFC 8620 §3.3),
//! posted to the real router in process with valid credentials: the
//! answer is never a 5xx and the server never panics.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{header, Request};
use libfuzzer_sys::fuzz_target;
use sealmail::ingest::{HookChain, Ingest};
use sealmail::jmap::{router, JmapContext};
use sealmail::notify::Notifier;
use sealmail::store::MailStore;
use tower::ServiceExt as _;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(MailStore::open(dir.path()).expect("store"));
        store.add_account("fuzz@example.org", Some("pw"), &[]).expect("account");
        let notifier = Arc::new(Notifier::new());
        let chain = HookChain::from_names(&["encrypt-at-rest".into()]).expect("chain");
        let ingest = Arc::new(Ingest::new(Arc::clone(&store), chain, Arc::clone(&notifier)));
        let ctx = Arc::new(JmapContext {
            store,
            ingest,
            notifier,
            max_upload_bytes: 1 << 20,
            urls: sealmail::jmap::UrlPolicy::default(),
            keyring: Arc::default(),
        });
        Fixture {
            runtime: tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime"),
            router: router(ctx),
            _dir: dir,
        }
    })
}

fuzz_target!(|body: &[u8]| {
    let f = fixture();
    let request = Request::post("/jmap/api")
        .header(header::HOST, "localhost")
        .header(header::CONTENT_TYPE, "application/json")
        // base64("fuzz@example.org:pw")
        .header(header::AUTHORIZATION, "Basic ZnV6ekBleGFtcGxlLm9yZzpwdw==")
        .body(Body::from(body.to_vec()))
        .expect("request");
    let response = f.runtime.block_on(f.router.clone().oneshot(request)).expect("infallible");
    assert!(response.status().as_u16() < 500, "{} for {:?}", response.status(), String::from_utf8_lossy(body));
});
