//! The child process of the fan-out bench: one list size, one run. Sets
//! up the members, delivers to the list once, checks the copies and
//! prints its `FANOUT` line and the per-copy parts.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sealmail::ingest::{Delivered, Envelope, HookChain, Ingest};
use sealmail::notify::Notifier;
use sealmail::store::{AccountId, Cipher, HeaderFields, MailStore, NewMessage};

use super::{
    contains, cpu_secs, member, message, openssl_decrypt, status_kib, Pki, LIST, MARKER, PARTS,
    SETUP_THREADS,
};

pub(crate) fn child(n: usize) {
    // As `sealmail serve` does at start.
    sealmail::server::no_transparent_huge_pages();
    let dir = match std::env::var_os("SEALMAIL_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .unwrap();
    let setup = Instant::now();
    let pki = Pki::new();
    let store = Arc::new(super::open_store(dir.path()));
    let ids = add_members(&store, &pki, n);
    let members: Vec<String> = (0..n).map(member).collect();
    store
        .create_list(LIST, "owner-big@example.org", &members)
        .unwrap();
    let ingest = Ingest::new(
        Arc::clone(&store),
        HookChain::from_names(&["encrypt-at-rest".to_string()]).unwrap(),
        Arc::new(Notifier::new()),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let data = Arc::new(message());
    let envelope = Envelope {
        mail_from: "s@example.net".into(),
        lhlo: "bench".into(),
    };
    let setup_secs = setup.elapsed().as_secs_f64();
    eprintln!("fanout child {n}: set-up {setup_secs:.1} s");

    let hwm_setup = status_kib("VmHWM");
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let rss_before = status_kib("VmRSS");
    let cpu = cpu_secs().0;
    let start = Instant::now();
    let results = runtime.block_on(ingest.deliver(&envelope, &[LIST.to_string()], data));
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_secs().0 - cpu;
    let rss_after = status_kib("VmRSS");
    let hwm_deliver = status_kib("VmHWM");

    assert_eq!(results.len(), 1);
    match &results[0] {
        Ok(Delivered::List {
            copies,
            notices: 0,
            skipped: 0,
        }) => assert_eq!(*copies, n),
        other => panic!("unexpected delivery result {other:?}"),
    }
    verify(&store, &pki, &ids, dir.path());
    let parts = parts(&store, &pki, &ids);

    let hwm = if reset {
        hwm_deliver.to_string()
    } else {
        "n/a".into()
    };
    println!(
        "FANOUT members={n} copies={n} secs={secs:.3} setup_secs={setup_secs:.1} hwm_setup_kib={hwm_setup} rss_before_kib={rss_before} rss_after_kib={rss_after} hwm_deliver_kib={hwm} cpu_secs={cpu:.3}"
    );
    println!("{parts}");
}

/// Accounts `m00000@example.org`.. with encryption on and their own
/// certificate, set up from several threads.
fn add_members(store: &MailStore, pki: &Pki, n: usize) -> Vec<AccountId> {
    let mut ids = vec![AccountId(0); n];
    std::thread::scope(|s| {
        for (t, slot) in ids.chunks_mut(n.div_ceil(SETUP_THREADS).max(1)).enumerate() {
            let first = t * n.div_ceil(SETUP_THREADS).max(1);
            s.spawn(move || {
                for (j, id) in slot.iter_mut().enumerate() {
                    let i = first + j;
                    let email = member(i);
                    let (cert, _) = pki.issue(i, &email);
                    let parsed = sealmail::certs::parse(&cert.to_der().unwrap())
                        .unwrap()
                        .remove(0);
                    let account = store.add_account(&email, None, &[]).unwrap();
                    store
                        .add_certificate(
                            account.id,
                            sealmail::manage::new_certificate(&parsed, "bench"),
                        )
                        .unwrap();
                    sealmail::manage::update_encryption(store, &account, Some(true), None, None)
                        .unwrap();
                    *id = account.id;
                }
            });
        }
    });
    ids
}

/// Every member has exactly one message; three copies open with their
/// member's key and carry the body; a copy does not open with another
/// member's key pair.
fn verify(store: &MailStore, pki: &Pki, ids: &[AccountId], scratch: &Path) {
    let copy_of = |id: AccountId| {
        let inbox = store.mailbox_by_name(id, "INBOX").unwrap();
        let msgs = store.list_messages(id, inbox.id, None, usize::MAX).unwrap();
        assert_eq!(msgs.len(), 1, "account {id} has {} messages", msgs.len());
        assert!(msgs[0].encrypted);
        store.get_blob(id, msgs[0].blob).unwrap().unwrap()
    };
    for &id in ids {
        copy_of(id);
    }
    let n = ids.len();
    for i in [0, n / 2, n - 1] {
        let raw = copy_of(ids[i]);
        assert!(!contains(&raw, MARKER.as_bytes()), "plaintext in a copy");
        let (cert, key) = pki.issue(i, &member(i));
        let plain = openssl_decrypt(&raw, &cert.to_pem().unwrap(), &pki.keys[key], scratch)
            .unwrap_or_else(|| panic!("member {i}'s copy does not open with its key"));
        assert!(contains(&plain, MARKER.as_bytes()));
        // another member on another key pair
        let other = if i + 1 < n { i + 1 } else { i - 1 };
        let (ocert, okey) = pki.issue(other, &member(other));
        assert_ne!(okey, key);
        assert!(
            openssl_decrypt(&raw, &ocert.to_pem().unwrap(), &pki.keys[okey], scratch).is_none(),
            "member {i}'s copy opens with member {other}'s key"
        );
    }
}

/// Single-threaded cost of the parts of one member's copy, for "where the
/// time goes". Runs after `verify` (it appends extra messages).
fn parts(store: &MailStore, pki: &Pki, ids: &[AccountId]) -> String {
    let per = |d: Duration, k: usize| d.as_secs_f64() * 1e6 / k as f64;
    let k = PARTS.min(ids.len());
    let mut out = String::new();

    // As a fan-out chunk reads them (`ingest::lists`): the addresses and
    // delivery views of 64 members at a time, views kept from the
    // delivery before (the steady state of a list).
    let start = Instant::now();
    let addresses: Vec<String> = (0..k).map(member).collect();
    for chunk in addresses.chunks(64) {
        let found = store.resolve_accounts(chunk).unwrap();
        let local: Vec<AccountId> = found.into_iter().flatten().collect();
        std::hint::black_box(store.delivery_views(&local).unwrap());
    }
    let lookups = per(start.elapsed(), k);

    let ders: Vec<Vec<u8>> = (0..k)
        .map(|i| pki.issue(i, &member(i)).0.to_der().unwrap())
        .collect();
    let start = Instant::now();
    let envelopes: Vec<_> = ders
        .iter()
        .map(|der| {
            let cert: x509_cert::Certificate = der::Decode::from_der(der).unwrap();
            let r = sealmail::smime::Recipient::from_certificate(&cert).unwrap();
            sealmail::smime::Envelope::new(vec![r], Cipher::Aes256Cbc.into()).unwrap()
        })
        .collect();
    let prepare = per(start.elapsed(), k);

    let raw = {
        let mut r =
            b"Return-Path: <s@example.net>\r\nDelivered-To: m00000@example.org\r\n".to_vec();
        r.extend_from_slice(&message());
        r
    };
    let start = Instant::now();
    let sealed: Vec<Vec<u8>> = envelopes
        .iter()
        .map(|e| match e.seal(&raw).unwrap() {
            sealmail::smime::Sealed::Encrypted(b) => b,
            other => panic!("{other:?}"),
        })
        .collect();
    let seal = per(start.elapsed(), k);

    let inboxes: Vec<_> = ids[..k]
        .iter()
        .map(|&id| store.mailbox_by_name(id, "INBOX").unwrap().id)
        .collect();
    let start = Instant::now();
    for chunk in (0..k).collect::<Vec<_>>().chunks(128) {
        let batch = chunk
            .iter()
            .map(|&i| {
                let msg = NewMessage {
                    raw: &sealed[i],
                    flags: Default::default(),
                    internal_date: 1_700_000_000,
                    headers: HeaderFields::default(),
                    encrypted: true,
                    unique: true,
                };
                (ids[i], inboxes[i], msg)
            })
            .collect();
        store.append_many(batch).unwrap();
    }
    let append = per(start.elapsed(), k);

    let size = sealed[0].len();
    for (name, us) in [
        (
            "store lookups (addresses, delivery views; per chunk of 64)",
            lookups,
        ),
        ("certificate parse + Recipient + Envelope", prepare),
        (
            "Envelope::seal (split, RSA, AES-256-CBC, DER, base64)",
            seal,
        ),
        ("append_many, batches of 128 (synced write)", append),
    ] {
        writeln!(out, "  part {name}: {us:.0} µs").unwrap();
    }
    write!(out, "  part sealed copy size: {size} bytes").unwrap();
    out
}
