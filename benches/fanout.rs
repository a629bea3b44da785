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
//! SEALMAIL_BENCH_STORE_URL=postgres://USER@HOST:PORT   PostgreSQL instead
//!                                     of RocksDB, a new database per run
//!                                     (benches/engines.py)
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

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509Builder, X509Name, X509NameBuilder, X509};
use sealmail::store::MailStore;

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

#[path = "fanout/child.rs"]
mod child;
#[path = "fanout/parent.rs"]
mod parent;

use child::child;

// ----------------------------------------------------------------- child

/// The store under test: RocksDB in `dir`, or a fresh database on the
/// PostgreSQL server `SEALMAIL_BENCH_STORE_URL` names
/// (`postgres://USER@HOST:PORT`, no database: each child creates its own
/// with `psql`, so every run starts empty), opened as `sealmail serve`
/// opens it. `benches/engines.py` starts such a server.
fn open_store(dir: &Path) -> MailStore {
    let Ok(server) = std::env::var("SEALMAIL_BENCH_STORE_URL") else {
        return MailStore::open(&dir.join("db")).unwrap();
    };
    let name = format!(
        "fanout_{}_{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let created = Command::new("psql")
        .args([server.as_str(), "-qc", &format!("CREATE DATABASE {name}")])
        .status()
        .unwrap();
    assert!(created.success(), "psql CREATE DATABASE on {server}");
    let url = format!("{}/{name}", server.trim_end_matches('/'));
    MailStore::new(
        sealmail::store::open_engine_url(&url, 16).unwrap(),
        sealmail::store::MasterKey::from_bytes([7; 32]),
    )
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
