//! Property tests: chunking never changes the outcome, dot-stuffing round
//! trips, commands round trip through their wire form, and arbitrary bytes
//! never panic and only ever produce well-formed replies (the stable-Rust
//! twin of `fuzz/fuzz_targets/lmtp_session.rs`).

use proptest::prelude::*;

use super::command::{Body, Command};
use super::tests::{run_chunks, Outcome};
use super::LmtpConfig;

/// RFC 5321 §4.5.2 dot-stuffing plus the end-of-data line; `body` must
/// be empty or end with CRLF.
fn stuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 8);
    let mut line_start = true;
    for (i, &b) in body.iter().enumerate() {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = b == b'\n' && i > 0 && body.get(i - 1) == Some(&b'\r');
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Arbitrary bytes ending in CRLF, rich in dots, CRs and LFs.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![Just(b'.'), Just(b'\r'), Just(b'\n'), any::<u8>()];
    prop::collection::vec(byte, 0..300).prop_map(|mut v| {
        v.extend_from_slice(b"\r\n");
        v
    })
}

fn address() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9._+-]{1,12}@[a-z0-9.-]{1,12}",
        "unknown[a-z]{0,4}@x",
        "tempfail@x",
        "\"[a-z >@]{1,8}\"@q",
    ]
}

/// Several transactions, with noise in between, as one byte string.
fn conversation() -> impl Strategy<Value = Vec<u8>> {
    let noise = prop::sample::select(vec![
        "NOOP\r\n",
        "RSET\r\n",
        "BOGUS\r\n",
        "VRFY x\r\n",
        "RCPT TO:<a@x>\r\n",
        "\n",
    ]);
    let tx = (
        address(),
        prop::collection::vec(address(), 1..5),
        body(),
        noise,
    );
    prop::collection::vec(tx, 1..4).prop_map(|txs| {
        let mut input = b"LHLO client.example\r\n".to_vec();
        for (from, rcpts, body, noise) in txs {
            input.extend(format!("MAIL FROM:<{from}>\r\n").bytes());
            for r in rcpts {
                input.extend(format!("RCPT TO:<{r}>\r\n").bytes());
            }
            input.extend(b"DATA\r\n");
            input.extend(stuff(&body));
            input.extend(noise.bytes());
        }
        input.extend(b"QUIT\r\n");
        input
    })
}

/// Splits `input` at the given (unsorted, possibly out-of-range) points.
fn chunks(input: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.sort_unstable();
    let mut pieces = Vec::new();
    let mut from = 0;
    for cut in cuts.into_iter().chain([input.len()]) {
        pieces.push(input[from..cut].to_vec());
        from = cut;
    }
    pieces
}

/// Sender, recipients and data of one transaction.
type TxSummary = (String, Vec<String>, Vec<u8>);

fn summary(out: &Outcome) -> (Vec<u8>, Vec<TxSummary>, bool) {
    let txs = out
        .transactions
        .iter()
        .map(|t| (t.mail_from.clone(), t.recipients.clone(), t.data.clone()))
        .collect();
    (out.output.clone(), txs, out.closed)
}

/// Every line is `3DIGIT (SP / "-") text CRLF`, no bare CR or LF.
fn assert_well_formed(output: &[u8]) {
    assert!(
        output.is_empty() || output.ends_with(b"\r\n"),
        "unterminated reply"
    );
    for line in output.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let line = line.strip_suffix(b"\r").expect("LF without CR");
        assert!(line.len() >= 4 && line.len() <= 512, "bad length: {line:?}");
        assert!(
            line[..3].iter().all(u8::is_ascii_digit),
            "no code: {line:?}"
        );
        assert!(matches!(line[3], b' ' | b'-'), "bad separator: {line:?}");
        assert!(
            line.iter().all(|&b| b == b' ' || b.is_ascii_graphic()),
            "unprintable: {line:?}"
        );
    }
}

fn config() -> LmtpConfig {
    LmtpConfig {
        max_message_bytes: 200,
        max_recipients: 3,
        ..LmtpConfig::default()
    }
}

proptest! {
    #[test]
    fn chunking_does_not_change_replies_or_transactions(
        input in conversation(),
        cuts in prop::collection::vec(any::<usize>(), 0..40),
    ) {
        let whole = run_chunks(&config(), [input.as_slice()]);
        let pieces = chunks(&input, &cuts);
        let chunked = run_chunks(&config(), pieces.iter().map(Vec::as_slice));
        let bytewise = run_chunks(&config(), input.chunks(1));
        prop_assert_eq!(summary(&whole), summary(&chunked));
        prop_assert_eq!(summary(&whole), summary(&bytewise));
        prop_assert!(whole.closed);
        assert_well_formed(&whole.output);
    }

    #[test]
    fn dot_stuffing_round_trips(data in body(), cuts in prop::collection::vec(any::<usize>(), 0..10)) {
        let mut input = b"LHLO h\r\nMAIL FROM:<>\r\nRCPT TO:<a@x>\r\nDATA\r\n".to_vec();
        input.extend(stuff(&data));
        let out = run_chunks(&LmtpConfig::default(), chunks(&input, &cuts).iter().map(Vec::as_slice));
        prop_assert_eq!(out.transactions.len(), 1);
        prop_assert_eq!(&out.transactions[0].data, &data);
    }

    #[test]
    fn commands_round_trip(command in command()) {
        let line = command.to_line();
        prop_assert_eq!(Command::parse(line.as_bytes()), Ok(command));
    }

    #[test]
    fn garbage_never_panics_and_replies_are_well_formed(
        prefix in prop::sample::select(vec!["", "LHLO h\r\n", "LHLO h\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"]),
        bytes in prop::collection::vec(any::<u8>(), 0..2000),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let mut input = prefix.as_bytes().to_vec();
        input.extend(bytes);
        let out = run_chunks(&config(), chunks(&input, &cuts).iter().map(Vec::as_slice));
        assert_well_formed(&out.output);
    }
}

fn command() -> impl Strategy<Value = Command> {
    let body = prop::option::of(prop_oneof![Just(Body::SevenBit), Just(Body::EightBitMime)]);
    let from = prop_oneof![Just(String::new()), address()];
    prop_oneof![
        "[a-z0-9.-]{1,20}".prop_map(Command::Lhlo),
        (from, prop::option::of(any::<u64>()), body).prop_map(|(from, size, body)| Command::Mail {
            from,
            size,
            body
        }),
        address().prop_map(Command::Rcpt),
        Just(Command::Data),
        Just(Command::Rset),
        Just(Command::Noop),
        Just(Command::Quit),
        Just(Command::Vrfy),
    ]
}
