//! Structure-aware input for the guarded MIME parse (`sealmail::mime`):
//! each input byte is an instruction that opens a multipart (with or
//! without its boundary ever coming), opens a `message/rfc822`, writes a
//! leaf or raw bytes, or closes a multipart, so deep and wide nestings,
//! missing and stray boundaries come quickly; the raw input is parsed too.
//! No panic, and what is parsed stays within the bounds the walkers rely
//! on: at most as many multiparts as the pre-scan counted, depth at most
//! twice that, one opaque part over the limit.
#![no_main]

use std::sync::Once;

use libfuzzer_sys::fuzz_target;
use mail_parser::MessageParser;
use sealmail::mime::{containers, header_end, nesting, parse, parse_headers, MAX_CONTAINERS};

/// Builds a message from `ops`.
fn build(ops: &[u8]) -> Vec<u8> {
    let mut out = b"From: a@example.org\r\nSubject: fuzz\r\n".to_vec();
    let mut open: Vec<usize> = Vec::new();
    let mut next = 0usize;
    let mut ops = ops.iter();
    while let Some(&op) = ops.next() {
        match op % 8 {
            0 | 1 => {
                next += 1;
                out.extend_from_slice(
                    format!("Content-Type: multipart/mixed; boundary=b{next}\r\n\r\n").as_bytes(),
                );
                if op % 8 == 0 {
                    out.extend_from_slice(format!("--b{next}\r\n").as_bytes());
                    open.push(next);
                }
            }
            2 => out.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n"),
            3 => out.extend_from_slice(b"Content-Type: text/plain\r\n\r\nhello\r\n"),
            4 => {
                if let Some(b) = open.last() {
                    out.extend_from_slice(format!("--b{b}\r\n").as_bytes());
                }
            }
            5 => {
                if let Some(b) = open.pop() {
                    out.extend_from_slice(format!("--b{b}--\r\n").as_bytes());
                }
            }
            6 => out.extend_from_slice(
                b"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\n",
            ),
            _ => {
                let n = usize::from(op / 8);
                out.extend(ops.by_ref().take(n).copied());
            }
        }
    }
    out
}

fn check(raw: &[u8]) {
    let parser = MessageParser::default();
    let counted = containers(raw);
    if let Some(msg) = parse(&parser, raw) {
        let n = nesting(&msg);
        if counted > MAX_CONTAINERS {
            assert_eq!(msg.parts.len(), 1, "over the limit the body is one part");
        }
        assert!(n.multiparts <= counted, "{n:?}, {counted} counted");
        assert!(n.depth <= 2 * counted, "{n:?}, {counted} counted");
    }
    assert!(header_end(raw) <= raw.len());
    if let Some(msg) = parse_headers(&parser, raw) {
        assert!(msg.parts.len() == 1);
    }
}

/// Replaces libfuzzer-sys's abort-on-any-panic hook with one that only
/// prints. why: this build has debug assertions, so mail-parser's own
/// `debug_assert!`s fire on hostile input; `parse` catches those by design
/// (the message is served opaque). A panic that escapes the target still
/// aborts: libfuzzer-sys runs each input under `catch_unwind` and aborts
/// when it unwinds.
fn print_panics_only() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        drop(std::panic::take_hook());
        std::panic::set_hook(Box::new(|info| eprintln!("{info}")));
    });
}

fuzz_target!(|input: &[u8]| {
    print_panics_only();
    check(input);
    check(&build(input));
});
