//! Structure-aware: the input is read as a sequence of line kinds (a
//! well-formed field, a `Content-*` field, a continuation, an empty line,
//! and malformed lines: no colon, a blank before the colon, a space in the
//! name, a `From ` line, a leading colon, a control character), each with
//! its own line end (CRLF, LF, CR, CR CR LF) and a unique marker, then an
//! arbitrary tail once the header is over. The message is normalised
//! (`to_crlf`), split, sealed for a key made at start-up, and (one input in
//! 32) decrypted again.
//!
//! The at-rest property, checked against what the generator built rather
//! than against the splitter: the marker of every line that belongs to a
//! well-formed non-`Content-*` field before the first malformed or empty
//! line is in the clear outer header and nowhere else; every other marker
//! is nowhere in the sealed message and in the inner entity.
//! Every clear field of the sealed message is well-formed, and the
//! splitter loses no byte.
#![no_main]

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sealmail::smime::{to_crlf, Decryptor, Envelope, Recipient, Sealed, Split};

/// Inputs run so far.
static RUNS: AtomicUsize = AtomicUsize::new(0);

struct Keys {
    envelope: Envelope,
    decryptor: Decryptor,
}

/// An RSA key and a self-signed certificate made with the `openssl` CLI.
fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.der"));
        let status = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=fuzz", "-outform", "DER", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("the openssl CLI is needed to make the fuzz key");
        assert!(status.status.success(), "openssl req failed");
        let pem = std::fs::read_to_string(&key).expect("key");
        let der = std::fs::read(&cert).expect("certificate");
        let recipient = Recipient::from_der(&der).expect("recipient");
        Keys {
            envelope: Envelope::new(vec![recipient], Default::default()).expect("envelope"),
            decryptor: Decryptor::from_pem(&pem, None).expect("decryptor"),
        }
    })
}

/// One generated line: its text (without line end) and whether the
/// generator meant it to stay in clear.
struct Built {
    raw: Vec<u8>,
    /// `(marker, clear)` for every line.
    markers: Vec<(Vec<u8>, bool)>,
}

const NAMES: [&[u8]; 6] = [b"Subject", b"X-Tag", b"From", b"Received", b"To", b"X-8bit"];
const EOLS: [&[u8]; 5] = [b"\r\n", b"\r\n", b"\n", b"\r", b"\r\r\n"];

/// Field text from fuzz bytes: no CR, LF or other control except HTAB,
/// and no `Q`, so that no text spells another line's marker.
fn clean(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .map(|&b| match b {
            b'\t' => b,
            0..=0x1f | 0x7f | b'Q' => b'.',
            _ => b,
        })
        .collect()
}

fn build(input: &[u8]) -> Built {
    let mut raw = Vec::new();
    let mut markers = Vec::new();
    // `Some(clear)` while in the header: whether the current field is clear.
    let mut field: Option<bool> = None;
    let mut in_header = true;
    let mut chunks = input.chunks(4).enumerate();
    for (n, chunk) in chunks.by_ref() {
        let [kind, eol, len, pick] = *chunk else {
            break;
        };
        let marker = format!("QZ{n:08x}QZ").into_bytes();
        let text = clean(&input[..usize::from(len % 16).min(input.len())]);
        let eol = EOLS[usize::from(eol) % EOLS.len()];
        let mut line: Vec<u8> = Vec::new();
        // `Some(clear)` for a line that keeps the header going.
        let keeps: Option<bool> = match kind % 12 {
            0..=3 => {
                line.extend_from_slice(NAMES[usize::from(pick) % NAMES.len()]);
                line.extend_from_slice(b": ");
                Some(true)
            }
            4 => {
                line.extend_from_slice(b"Content-Type: text/plain; x=");
                Some(false)
            }
            5 | 6 => {
                line.push(if pick % 2 == 0 { b' ' } else { b'\t' });
                // A continuation belongs to its field; a first line
                // that is a continuation is malformed.
                field
            }
            7 => {
                line.extend_from_slice(match pick % 6 {
                    0 => &b"no colon here "[..],
                    1 => b"Subject : ",
                    2 => b"Bad Name: ",
                    3 => b"From someone@example.net Mon Jan  1 00:00:00 2024 ",
                    4 => b": ",
                    _ => b"\xc3\xa9: ",
                });
                None
            }
            8 => {
                line.extend_from_slice(b"X-Ctl: ");
                line.push([0u8, 0x1b, 0x0b, 0x0c, 0x7f][usize::from(pick) % 5]);
                None
            }
            9 => {
                // The empty line: what follows is the body. An LF right
                // after a CR line end would only complete that CRLF.
                let eol = if raw.ends_with(b"\r") && eol == b"\n" {
                    b"\r\n"
                } else {
                    eol
                };
                raw.extend_from_slice(eol);
                in_header = false;
                field = None;
                continue;
            }
            _ => {
                line.extend_from_slice(b"X-Folded: ");
                Some(true)
            }
        };
        line.extend_from_slice(&marker);
        line.extend_from_slice(&text);
        let clear = in_header && keeps == Some(true);
        field = keeps;
        // A CR CR LF end is a line end and then an empty line.
        in_header &= keeps.is_some() && eol != b"\r\r\n";
        raw.extend_from_slice(&line);
        raw.extend_from_slice(eol);
        markers.push((marker, clear));
    }
    if !in_header {
        let tail = chunks.flat_map(|(_, c)| c.iter().copied());
        raw.extend(tail.map(|b| if b == b'Q' { b'.' } else { b }));
    }
    Built { raw, markers }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A well-formed field: `name ":"` on the first line, continuation lines
/// starting with SP or HTAB, CRLF line ends, no other control character.
fn well_formed(field: &[u8]) -> bool {
    let name_len = field.iter().position(|&b| !matches!(b, 33..=57 | 59..=126));
    if !matches!(name_len, Some(n) if n > 0 && field.get(n) == Some(&b':')) {
        return false;
    }
    field
        .split_inclusive(|&b| b == b'\n')
        .enumerate()
        .all(|(i, line)| {
            let Some(text) = line.strip_suffix(b"\r\n") else {
                return false;
            };
            (i == 0 || matches!(text.first(), Some(b' ' | b'\t')))
                && !text.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
        })
}

fuzz_target!(|input: &[u8]| {
    let built = build(input);
    let normal = to_crlf(&built.raw);
    let split = Split::new(&normal);
    let kept: usize = split
        .outer
        .iter()
        .chain(&split.content_fields)
        .map(|f| f.len())
        .sum();
    assert_eq!(
        kept + split.separator.len() + split.body.len(),
        normal.len()
    );
    let Sealed::Encrypted(sealed) = keys().envelope.seal(&normal).expect("seal") else {
        // why: an arbitrary tail may look like one armoured PGP block;
        // what the detector trusts is fuzzed with the detector.
        return;
    };
    let outer = Split::new(&sealed);
    for f in &outer.outer {
        assert!(
            well_formed(f),
            "malformed clear field {:?}",
            String::from_utf8_lossy(f)
        );
    }
    let clear: Vec<u8> = outer.outer.concat();
    let inner = split.inner_entity();
    // why not every input: the RSA private-key operation under coverage
    // instrumentation costs ~50 ms; the first input of a run (so a saved
    // crash input, run alone) and every 32nd after it are decrypted.
    if RUNS.fetch_add(1, Ordering::Relaxed) % 32 == 0 {
        let opened = keys().decryptor.decrypt_message(&sealed).expect("decrypt");
        assert_eq!(opened, inner);
    }
    for (marker, meant_clear) in &built.markers {
        if *meant_clear {
            assert!(
                contains(&clear, marker),
                "{} not in the clear header",
                String::from_utf8_lossy(marker)
            );
            assert!(
                !contains(&inner, marker),
                "{} twice",
                String::from_utf8_lossy(marker)
            );
        } else {
            assert!(
                !contains(&sealed, marker),
                "{} in clear",
                String::from_utf8_lossy(marker)
            );
            assert!(
                contains(&inner, marker),
                "{} lost",
                String::from_utf8_lossy(marker)
            );
        }
    }
});
