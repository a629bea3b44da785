//! Arbitrary bytes into an LMTP [`Session`] (RFC 2033 / RFC 5321 command
//! and DATA parsing), split into chunks where the input says so: no panic,
//! and every reply line is `3DIGIT (SP / "-") printable-text CRLF`.
//!
//! The first byte picks where the session starts (fresh, after LHLO, or
//! inside DATA) so the fuzzer reaches the DATA reader quickly; every
//! each address of CheckRecipients is answered 250 and every Deliver with 250s.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealmail::lmtp::{Event, LmtpConfig, Reply, Session};

const PREFIXES: [&[u8]; 3] = [
    b"",
    b"LHLO fuzz\r\n",
    b"LHLO fuzz\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n",
];

fuzz_target!(|input: &[u8]| {
    let Some((&selector, rest)) = input.split_first() else {
        return;
    };
    let config = LmtpConfig {
        max_message_bytes: 4096,
        max_recipients: 5,
        ..LmtpConfig::default()
    };
    let mut session = Session::new(&config);
    let mut output = Vec::new();
    pump(&mut session, &mut output);
    session.feed(PREFIXES[usize::from(selector) % PREFIXES.len()]);
    pump(&mut session, &mut output);
    // why: 0xFF bytes mark chunk boundaries, so the fuzzer also explores
    // how TCP might split the same stream.
    for chunk in rest.split(|&b| b == 0xFF) {
        session.feed(chunk);
        if !pump(&mut session, &mut output) {
            break;
        }
    }
    check_replies(&output);
});

/// Runs the session until it wants input (true) or closes (false).
fn pump(session: &mut Session, output: &mut Vec<u8>) -> bool {
    loop {
        match session.poll() {
            Event::Send(bytes) => output.extend(bytes),
            Event::CheckRecipients(addresses) => {
                let replies = addresses
                    .iter()
                    .map(|_| Reply::new(250, "2.1.5", "ok"))
                    .collect();
                session
                    .recipients_checked(replies)
                    .expect("answering a request is never misuse");
            }
            Event::Deliver(tx) => {
                let replies = tx
                    .recipients
                    .iter()
                    .map(|_| Reply::new(250, "2.0.0", "ok"))
                    .collect();
                session
                    .delivered(replies)
                    .expect("answering a request is never misuse");
            }
            Event::NeedInput => return true,
            Event::Close => return false,
        }
    }
}

fn check_replies(output: &[u8]) {
    assert!(output.is_empty() || output.ends_with(b"\r\n"));
    for line in output.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let line = line.strip_suffix(b"\r").expect("LF without CR");
        assert!(line.len() >= 4 && line.len() <= 512, "{line:?}");
        assert!(line[..3].iter().all(u8::is_ascii_digit), "{line:?}");
        assert!(matches!(line[3], b' ' | b'-'), "{line:?}");
        assert!(
            line.iter().all(|&b| b == b' ' || b.is_ascii_graphic()),
            "{line:?}"
        );
    }
}
