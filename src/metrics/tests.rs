use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt as _;

use super::*;
use crate::store::{
    Batch, Cf, EnginePair, Expect, KeyRange, KeyValue, MailStore, MasterKey, Order, Store,
    StoreError,
};

/// The value of the sample `line_start` (name and labels) in `scrape`.
fn value(scrape: &str, line_start: &str) -> u64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(line_start)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {line_start} in\n{scrape}"))
        .parse()
        .unwrap()
}

#[test]
fn reply_codes_fall_in_their_class() {
    assert_eq!(class_of(250), 0);
    assert_eq!(class_of(299), 0);
    assert_eq!(class_of(451), 1);
    assert_eq!(class_of(452), 1);
    assert_eq!(class_of(550), 2);
    assert_eq!(class_of(552), 2);
    // What the LMTP layer repairs to 451 counts as 4xx.
    assert_eq!(class_of(0), 1);
    assert_eq!(class_of(999), 1);
}

#[test]
fn an_observation_lands_in_the_first_bucket_that_holds_it() {
    let h = Histogram::new();
    h.observe(Duration::from_micros(100)); // <= 0.0005
    h.observe(Duration::from_millis(1)); // == 0.001, bound included
    h.observe(Duration::from_millis(7)); // <= 0.01
    h.observe(Duration::from_secs(60)); // above every bound
    let counts: Vec<u64> = h.counts.iter().map(|c| c.load(Relaxed)).collect();
    let mut expected = vec![0; BUCKETS];
    expected[0] = 1;
    expected[1] = 1;
    expected[4] = 1;
    expected[BUCKETS - 1] = 1;
    assert_eq!(counts, expected);
    assert_eq!(h.sum_nanos.load(Relaxed), 60_008_100_000);
}

#[test]
fn an_unused_histogram_writes_nothing_a_used_one_its_buckets() {
    let h = Histogram::new();
    let mut out = Exposition::default();
    h.write(&mut out, "x_seconds", &[("command", "NOOP")]);
    assert_eq!(out.finish(), "");
    h.observe(Duration::from_millis(30));
    h.observe(Duration::from_millis(20));
    let mut out = Exposition::default();
    h.write(&mut out, "x_seconds", &[("command", "NOOP")]);
    let text = out.finish();
    assert_eq!(
        value(&text, "x_seconds_bucket{command=\"NOOP\",le=\"0.01\"}"),
        0
    );
    assert_eq!(
        value(&text, "x_seconds_bucket{command=\"NOOP\",le=\"0.025\"}"),
        1
    );
    assert_eq!(
        value(&text, "x_seconds_bucket{command=\"NOOP\",le=\"0.05\"}"),
        2
    );
    assert_eq!(
        value(&text, "x_seconds_bucket{command=\"NOOP\",le=\"+Inf\"}"),
        2
    );
    assert_eq!(value(&text, "x_seconds_count{command=\"NOOP\"}"), 2);
    assert!(
        text.contains("x_seconds_sum{command=\"NOOP\"} 0.05\n"),
        "{text}"
    );
}

// The registry is one per process and other tests deliver mail in
// parallel: these tests look at how much their own events added, at least.

#[test]
fn recorded_events_show_in_the_scrape() {
    let before = scrape();
    lmtp_delivery(250);
    lmtp_delivery(451);
    lmtp_rcpt_refused(550);
    auth_failure("imap");
    encryption(Encryption::Failed, ContentCipher::Aes128Gcm);
    let after = scrape();
    for line in [
        "sealmail_lmtp_deliveries_total{class=\"2xx\"}",
        "sealmail_lmtp_deliveries_total{class=\"4xx\"}",
        "sealmail_lmtp_rcpt_refusals_total{class=\"5xx\"}",
        "sealmail_auth_failures_total{protocol=\"imap\"}",
        "sealmail_encryptions_total{outcome=\"failed\",cipher=\"AES-128-GCM\"}",
    ] {
        assert!(value(&after, line) > value(&before, line), "{line}");
    }
}

#[test]
fn names_from_outside_the_lists_count_as_other() {
    jmap_method("Evil/method\"} 1\nsealmail_fake", Duration::from_millis(1));
    imap_command("XYZZY", Duration::from_millis(1));
    auth_failure("smtp");
    let text = scrape();
    assert!(!text.contains("Evil") && !text.contains("XYZZY"), "{text}");
    assert!(!text.contains("sealmail_fake"), "{text}");
    assert!(
        value(
            &text,
            "sealmail_jmap_method_duration_seconds_count{method=\"other\"}"
        ) >= 1
    );
    assert!(
        value(
            &text,
            "sealmail_imap_command_duration_seconds_count{command=\"other\"}"
        ) >= 1
    );
    assert!(!text.contains("protocol=\"smtp\""), "{text}");
}

#[test]
fn every_sample_belongs_to_a_declared_family() {
    store_write(Duration::from_millis(3), 1000);
    let text = scrape();
    let mut declared: Vec<(&str, &str)> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            declared.push((name, kind));
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let name = line.split(['{', ' ']).next().unwrap();
        let family = declared.iter().find(|(n, kind)| {
            name == *n
                || (*kind == "histogram"
                    && ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name.strip_suffix(s) == Some(n)))
        });
        assert!(family.is_some(), "{line} has no # TYPE before it");
        let (_, kind) = family.unwrap();
        if *kind == "counter" {
            assert!(name.ends_with("_total"), "{line}");
        }
        if *kind == "histogram" {
            assert!(name.contains("_seconds"), "{line}");
        }
    }
    assert!(value(&text, "sealmail_store_write_duration_seconds_count") >= 1);
    assert!(value(&text, "sealmail_blob_stored_bytes_total") >= 1000);
}

#[test]
fn an_open_connection_counts_until_dropped() {
    // why no assertion on the gauge: other tests open connections at the
    // same time; the accepted counter only grows.
    let line = "sealmail_connections_accepted_total{protocol=\"jmap\"}";
    let before = value(&scrape(), line);
    let open = connection_opened(Protocol::Jmap);
    assert!(value(&scrape(), line) > before);
    drop(open);
}

/// An engine whose every read fails, naming a path that must not reach
/// the HTTP answer.
#[derive(Debug)]
struct Broken;

impl Store for Broken {
    fn get(&self, _: Cf, _: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Err(StoreError::Engine {
            op: "get",
            message: "IO error: /secret/place/db/000123.sst".into(),
        })
    }

    fn scan(&self, _: Cf, _: &KeyRange, _: Order, _: usize) -> Result<Vec<KeyValue>, StoreError> {
        self.get(Cf::Meta, b"").map(|_| Vec::new())
    }

    fn write_if(&self, _: &[Expect], _: Batch) -> Result<(), StoreError> {
        self.get(Cf::Meta, b"").map(|_| ())
    }
}

async fn get(router: axum::Router, path: &str) -> (StatusCode, String) {
    let request = Request::get(path).body(Body::empty()).unwrap();
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn readyz_reads_the_store_and_says_in_one_line_when_it_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let good = Arc::new(MailStore::open(dir.path()).unwrap());
    assert_eq!(
        get(router(Arc::clone(&good)), "/readyz").await,
        (StatusCode::OK, "ready\n".into())
    );
    let pair = EnginePair {
        store: Arc::new(Broken),
        blobs: Arc::clone(good.blob_store()),
    };
    let broken = Arc::new(MailStore::new(pair, MasterKey::from_bytes([7; 32])));
    let (status, body) = get(router(Arc::clone(&broken)), "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "not ready: the store read failed\n");
    // Alive all the same.
    assert_eq!(
        get(router(broken), "/healthz").await,
        (StatusCode::OK, "ok\n".into())
    );
}

#[tokio::test]
async fn metrics_are_served_in_the_text_format() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MailStore::open(dir.path()).unwrap());
    let request = Request::get("/metrics").body(Body::empty()).unwrap();
    let response = router(store).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
}
