//! List fan-out: one 64 KiB plaintext message delivered to a mailing list
//! of N members (1 000 and 10 000 by default), every member an account
//! with encryption enabled and its own RSA-2048 certificate, stored in a
//! real RocksDB store. Reports stored copies per second, the time of the
//! `Ingest::deliver` call and the resident memory, and, in the same run,
//! "the Sympa way": `openssl cms -encrypt` run once per recipient.
//!
//! A plain `main` that prints figures (criterion's repetition would take
//! far too long at this size). Results and method: `benches/RESULTS.md`,
//! section "List fan-out".
//!
//! ```text
//! cargo bench --bench fanout
//! SEALMAIL_BENCH_MEMBERS=1000,10000   list sizes, one child process each
//! SEALMAIL_BENCH_SYMPA=300            recipients for the Sympa way
//! SEALMAIL_BENCH_DIR=/path            where the temporary store goes
//! ```
//!
//! Why this shape:
//! - Each list size runs in a fresh child process (this binary re-run
//!   with `--child N`), so that its peak RSS (`VmHWM`) is its own. The
//!   child also resets the peak (`5` into `/proc/self/clear_refs`) just
//!   before `deliver`, so the deliver-window peak is separate from the
//!   set-up's.
//! - Generating 10 000 RSA keys would take far longer than the bench; 16
//!   key pairs are made and each member gets its own certificate (own
//!   serial, subject and SAN) for one of them, issued by one in-process
//!   CA. The per-copy work (one RSA public-key operation per member
//!   certificate, one AES content key per copy) is the same as with
//!   distinct keys.
//! - Only `deliver` is timed. Set-up (accounts, certificates, settings,
//!   list) and the checks after it (every member has one copy; three
//!   copies decrypt with `openssl cms` under their member's key and not
//!   under another member's) are not.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509Builder, X509Name, X509NameBuilder, X509};
use sealmail::ingest::{Delivered, Envelope, HookChain, Ingest};
use sealmail::notify::Notifier;
use sealmail::store::{AccountId, Cipher, HeaderFields, MailStore, NewMessage};

/// Size of the message body.
// The allocator of the `sealmail` binary, so the figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BODY: usize = 64 * 1024;
/// Distinct RSA key pairs the members' certificates rotate over.
const KEYS: usize = 16;
/// Threads that set the accounts up (each account is a few synced
/// RocksDB writes; concurrent writers share the WAL syncs).
const SETUP_THREADS: usize = 4;
/// Iterations of each single-threaded part measurement.
const PARTS: usize = 200;
const LIST: &str = "big@example.org";
const MARKER: &str = "sealmail-fanout-bench-marker";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--child") {
        let members: usize = args[pos + 1].parse().expect("--child <members>");
        child(members);
        return;
    }
    parent::run();
}

#[path = "fanout/parent.rs"]
mod parent;

// ----------------------------------------------------------------- child

fn child(n: usize) {
    // As `sealmail serve` does at start.
    sealmail::server::no_transparent_huge_pages();
    let dir = match std::env::var_os("SEALMAIL_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .unwrap();
    let setup = Instant::now();
    let pki = Pki::new();
    let store = Arc::new(MailStore::open(&dir.path().join("db")).unwrap());
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

    let start = Instant::now();
    for (i, &id) in ids[..k].iter().enumerate() {
        std::hint::black_box(store.resolve_address(&member(i)).unwrap());
        let acc = store.account(id).unwrap();
        let mb = store.mailbox_by_name(id, "INBOX").unwrap();
        let st = store.encryption_settings(id).unwrap();
        let certs = store.list_certificates(id).unwrap();
        std::hint::black_box((acc, mb, st, certs));
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
            "store lookups (resolve, account, INBOX, settings, certs)",
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

// ------------------------------------------------------------- shared

/// `m00000@example.org`, ...
fn member(i: usize) -> String {
    format!("m{i:05}@example.org")
}

/// The message: a few header fields and a 64 KiB body of printable CRLF
/// lines with a marker in its first line.
fn message() -> Vec<u8> {
    let mut m = format!(
        "From: sender <s@example.net>\r\nTo: {LIST}\r\nSubject: fan-out bench\r\n\
         Date: Thu, 26 Nov 2026 15:00:00 +0000\r\nMessage-ID: <fanout@example.net>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{MARKER}\r\n"
    )
    .into_bytes();
    let header_end = m.len() - MARKER.len() - 2;
    let line = b"The quick brown fox jumps over the lazy dog 0123456789 abcdefghij\r\n";
    while m.len() - header_end < BODY {
        let room = BODY - (m.len() - header_end);
        m.extend_from_slice(&line[..room.min(line.len())]);
    }
    m
}

/// The CA and the key pairs members' certificates rotate over.
struct Pki {
    ca_key: PKey<Private>,
    ca_name: X509Name,
    keys: Vec<PKey<Private>>,
    not_before: Asn1Time,
    not_after: Asn1Time,
}

impl Pki {
    fn new() -> Self {
        let key = || PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let ca_key = key();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "sealmail bench CA")
            .unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let now = i64::try_from(now).unwrap();
        Self {
            ca_key,
            ca_name: name.build(),
            keys: (0..KEYS).map(|_| key()).collect(),
            not_before: Asn1Time::from_unix(now - 3600).unwrap(),
            not_after: Asn1Time::from_unix(now + 365 * 86_400).unwrap(),
        }
    }

    /// Member `i`'s certificate and the index of its key pair. Issuing
    /// again gives the same certificate (same serial, key and validity;
    /// RSA PKCS#1 v1.5 signatures are deterministic), so the checks
    /// re-issue instead of keeping 10 000 certificates around.
    fn issue(&self, i: usize, email: &str) -> (X509, usize) {
        let key = i % KEYS;
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        let serial = BigNum::from_u32(u32::try_from(i + 2).unwrap()).unwrap();
        b.set_serial_number(&Asn1Integer::from_bn(&serial).unwrap())
            .unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", email).unwrap();
        name.append_entry_by_text("emailAddress", email).unwrap();
        b.set_subject_name(&name.build()).unwrap();
        b.set_issuer_name(&self.ca_name).unwrap();
        b.set_not_before(&self.not_before).unwrap();
        b.set_not_after(&self.not_after).unwrap();
        b.set_pubkey(&self.keys[key]).unwrap();
        let ctx = b.x509v3_context(None, None);
        let san = SubjectAlternativeName::new()
            .email(email)
            .build(&ctx)
            .unwrap();
        b.append_extension(san).unwrap();
        b.append_extension(
            KeyUsage::new()
                .critical()
                .digital_signature()
                .key_encipherment()
                .build()
                .unwrap(),
        )
        .unwrap();
        b.append_extension(ExtendedKeyUsage::new().email_protection().build().unwrap())
            .unwrap();
        b.append_extension(BasicConstraints::new().critical().build().unwrap())
            .unwrap();
        b.sign(&self.ca_key, MessageDigest::sha256()).unwrap();
        (b.build(), key)
    }
}

/// `openssl cms -decrypt -recip cert -inkey key` of an S/MIME message;
/// `None` when it does not open.
fn openssl_decrypt(
    smime: &[u8],
    cert_pem: &[u8],
    key: &PKey<Private>,
    scratch: &Path,
) -> Option<Vec<u8>> {
    let dir = tempfile::tempdir_in(scratch).unwrap();
    let (m, c, k) = (
        dir.path().join("m.eml"),
        dir.path().join("c.pem"),
        dir.path().join("k.pem"),
    );
    std::fs::write(&m, smime).unwrap();
    std::fs::write(&c, cert_pem).unwrap();
    std::fs::write(&k, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    let out = Command::new("openssl")
        .args(["cms", "-decrypt", "-in"])
        .arg(&m)
        .arg("-recip")
        .arg(&c)
        .arg("-inkey")
        .arg(&k)
        .output()
        .unwrap();
    out.status.success().then_some(out.stdout)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A field of `/proc/self/status`, in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU seconds (user + system) of this process's threads, and of its
/// waited-for children, from `/proc/self/stat`.
fn cpu_secs() -> (f64, f64) {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let ticks = *TICKS.get_or_init(|| {
        let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(100.0)
    });
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // why: field 2 (comm) may hold spaces; fields are counted after its ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // utime, stime, cutime, cstime are fields 14–17, i.e. 11–14 here.
    ((f[11] + f[12]) / ticks, (f[13] + f[14]) / ticks)
}
