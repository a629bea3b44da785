//! Unit tests of the session: whole conversations with a scripted
//! delivery (`unknown*` recipients refused at RCPT, `tempfail*` ones
//! refused at DATA) fed in one piece unless the test is about chunking.

use super::*;

/// The scripted answer to a RCPT check.
pub(super) fn check(addresses: &[String]) -> Vec<Reply> {
    addresses
        .iter()
        .map(|address| match address.starts_with("unknown") {
            true => Reply::new(550, "5.1.1", "no such user"),
            false => Reply::new(250, "2.1.5", "recipient ok"),
        })
        .collect()
}

/// The scripted per-recipient delivery result.
pub(super) fn deliver(tx: &Transaction) -> Vec<Reply> {
    let rcpt = |r: &String| {
        if r.starts_with("tempfail") {
            Reply::new(451, "4.3.0", "try later")
        } else {
            Reply::new(250, "2.0.0", "delivered")
        }
    };
    tx.recipients.iter().map(rcpt).collect()
}

/// Everything a session produced for one input.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub(super) output: Vec<u8>,
    pub(super) transactions: Vec<Transaction>,
    pub(super) closed: bool,
}

impl Outcome {
    pub(super) fn text(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }

    /// Reply lines, without CRLF.
    pub(super) fn lines(&self) -> Vec<String> {
        self.text()
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// Runs `session` until it wants input, answering its requests.
pub(super) fn pump(session: &mut Session, outcome: &mut Outcome) {
    loop {
        match session.poll() {
            Event::Send(bytes) => outcome.output.extend(bytes),
            Event::CheckRecipients(a) => session.recipients_checked(check(&a)).unwrap(),
            Event::Deliver(tx) => {
                session.delivered(deliver(&tx)).unwrap();
                outcome.transactions.push(tx);
            }
            Event::NeedInput => return,
            Event::Close => {
                outcome.closed = true;
                return;
            }
        }
    }
}

/// Feeds `chunks` one by one to a fresh session with `config`.
pub(super) fn run_chunks<'a>(
    config: &LmtpConfig,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Outcome {
    let mut session = Session::new(config);
    let mut outcome = Outcome::default();
    pump(&mut session, &mut outcome);
    for chunk in chunks {
        session.feed(chunk);
        pump(&mut session, &mut outcome);
    }
    outcome
}

/// Code and enhanced status of each reply line from line `skip` on.
fn codes(out: &Outcome, skip: usize) -> Vec<String> {
    out.lines()
        .iter()
        .skip(skip)
        .map(|l| l.chars().take(9).collect())
        .collect()
}

fn run(input: &[u8]) -> Outcome {
    run_chunks(&LmtpConfig::default(), [input])
}

fn small(max_message_bytes: u64) -> LmtpConfig {
    LmtpConfig {
        max_message_bytes,
        max_recipients: 3,
        ..LmtpConfig::default()
    }
}

const HEAD: &str = "LHLO mta.example\r\nMAIL FROM:<s@x>\r\n";

#[test]
fn greeting_and_lhlo_advertise_the_extensions() {
    let out = run(b"LHLO mta.example\r\nQUIT\r\n");
    assert_eq!(
        out.lines(),
        [
            "220 localhost LMTP sealmail ready",
            "250-localhost",
            "250-PIPELINING",
            "250-ENHANCEDSTATUSCODES",
            "250-8BITMIME",
            "250 SIZE 52428800",
            "221 2.0.0 localhost closing connection",
        ]
    );
    assert!(out.closed);
}

#[test]
fn one_reply_per_recipient_after_data() {
    let input = format!("{HEAD}RCPT TO:<a@x>\r\nRCPT TO:<unknown@x>\r\nRCPT TO:<tempfail@x>\r\nDATA\r\nHi\r\n..dot\r\n.\r\nQUIT\r\n");
    let out = run(input.as_bytes());
    let lines = out.lines();
    assert_eq!(
        lines[6..],
        [
            "250 2.1.0 sender ok",
            "250 2.1.5 recipient ok",
            "550 5.1.1 no such user",
            "250 2.1.5 recipient ok",
            "354 end data with <CR><LF>.<CR><LF>",
            "250 2.0.0 delivered",
            "451 4.3.0 try later",
            "221 2.0.0 localhost closing connection",
        ]
    );
    let tx = &out.transactions[0];
    assert_eq!(
        (tx.mail_from.as_str(), tx.lhlo.as_str()),
        ("s@x", "mta.example")
    );
    assert_eq!(tx.recipients, ["a@x", "tempfail@x"]);
    assert_eq!(tx.data, b"Hi\r\n.dot\r\n");
}

#[test]
fn helo_and_ehlo_are_refused_as_not_lmtp() {
    let out = run(b"HELO x\r\nEHLO x\r\n");
    assert!(out.lines()[1].starts_with("500 5.5.1 this is an LMTP server"));
    assert!(out.lines()[2].starts_with("500 5.5.1 "));
}

#[test]
fn bad_sequences_get_503() {
    let out = run(b"MAIL FROM:<s@x>\r\nLHLO h\r\nRCPT TO:<a@x>\r\nDATA\r\nMAIL FROM:<s@x>\r\nDATA\r\nRCPT TO:<unknown@x>\r\nDATA\r\nMAIL FROM:<t@x>\r\n");
    assert_eq!(codes(&out, 1)[..1], ["503 5.5.1"]);
    let expected = [
        "503 5.5.1",
        "503 5.5.1",
        "250 2.1.0",
        "503 5.5.1",
        "550 5.1.1",
        "503 5.5.1",
        "503 5.5.1",
    ];
    assert_eq!(codes(&out, 7), expected);
}

#[test]
fn syntax_errors_get_501_or_555() {
    let out = run(b"LHLO h\r\nMAIL FROM:s@x\r\nMAIL FROM:<s@x> SIZE=abc\r\nMAIL FROM:<s@x> FOO=1\r\nMAIL FROM:<s@x> BODY=8BITMIME SIZE=10\r\nRCPT TO:<>\r\nRCPT TO:<a@x> NOTIFY=NEVER\r\nDATA x\r\nLHLO\r\n");
    assert_eq!(
        codes(&out, 6),
        [
            "501 5.1.7",
            "501 5.5.4",
            "555 5.5.4",
            "250 2.1.0",
            "501 5.1.3",
            "555 5.5.4",
            "501 5.5.4",
            "501 5.5.4"
        ]
    );
}

#[test]
fn other_commands() {
    let out = run(b"NOOP\r\nnoop anything\r\nVRFY bob\r\nRSET\r\nEXPN list\r\nXYZZY\r\n\r\n");
    assert_eq!(
        codes(&out, 1),
        [
            "250 2.0.0",
            "250 2.0.0",
            "252 2.5.0",
            "250 2.0.0",
            "502 5.5.1",
            "500 5.5.2",
            "500 5.5.2"
        ]
    );
}

#[test]
fn bare_lf_ends_command_lines() {
    let out = run(b"LHLO h\nMAIL FROM:<s@x>\nRCPT TO:<a@x>\nDATA\n.\r\n");
    assert_eq!(out.transactions.len(), 1);
    assert!(out.transactions[0].data.is_empty());
}

#[test]
fn long_line_gets_500_5_5_6_and_session_continues() {
    let long = format!("NOOP {}\r\n", "a".repeat(600));
    let exact = format!("NOOP {}\r\n", "a".repeat(512 - 7)); // 512 octets with CRLF
    let over = format!("NOOP {}\r\n", "a".repeat(512 - 6)); // 513
    let input = format!("{long}{exact}{over}NOOP\r\n");
    let lines = run(input.as_bytes()).lines();
    assert!(lines[1].starts_with("500 5.5.6 line too long"), "{lines:?}");
    assert!(lines[2].starts_with("250 2.0.0"));
    assert!(lines[3].starts_with("500 5.5.6"));
    assert!(lines[4].starts_with("250 2.0.0"));
}

#[test]
fn long_line_split_across_feeds_is_not_buffered() {
    let mut session = Session::new(&LmtpConfig::default());
    let mut out = Outcome::default();
    for _ in 0..1000 {
        session.feed(&[b'x'; 1000]);
        pump(&mut session, &mut out);
        assert!(session.input_buffered() < 2 * MAX_COMMAND_LINE);
    }
    session.feed(b"\r\nNOOP\r\n");
    pump(&mut session, &mut out);
    assert_eq!(
        out.lines()[1..],
        [
            "500 5.5.6 line too long: command lines are limited to 512 octets (RFC 5321 4.5.3.1.4)",
            "250 2.0.0 ok"
        ]
    );
}

#[test]
fn size_parameter_over_limit_is_refused_at_mail() {
    let lines = run_chunks(
        &small(100),
        [&b"LHLO h\r\nMAIL FROM:<s@x> SIZE=101\r\nMAIL FROM:<s@x> SIZE=100\r\n"[..]],
    )
    .lines();
    assert!(
        lines[6].starts_with("552 5.3.4 message is 101 bytes"),
        "{lines:?}"
    );
    assert!(lines[7].starts_with("250 2.1.0"));
}

#[test]
fn oversized_data_is_discarded_and_next_transaction_works() {
    let mut session = Session::new(&small(100));
    let mut out = Outcome::default();
    session.feed(format!("{HEAD}RCPT TO:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n").as_bytes());
    pump(&mut session, &mut out);
    for _ in 0..100 {
        session.feed(&[b'y'; 1000]);
        pump(&mut session, &mut out);
        assert_eq!(session.data_buffered(), 0, "nothing kept past the limit");
    }
    session.feed(b"\r\n.\r\nMAIL FROM:<s@x>\r\nRCPT TO:<a@x>\r\nDATA\r\nsmall\r\n.\r\n");
    pump(&mut session, &mut out);
    let lines = out.lines();
    assert_eq!(
        lines[10..12],
        ["552 5.3.4 message is 100002 bytes, over the limit of 100 bytes; send a smaller message";
            2]
    );
    assert_eq!(
        lines[12..],
        [
            "250 2.1.0 sender ok",
            "250 2.1.5 recipient ok",
            "354 end data with <CR><LF>.<CR><LF>",
            "250 2.0.0 delivered"
        ]
    );
    assert_eq!(out.transactions.len(), 1);
    assert_eq!(out.transactions[0].data, b"small\r\n");
}

#[test]
fn message_exactly_at_limit_is_accepted() {
    let input = format!("{HEAD}RCPT TO:<a@x>\r\nDATA\r\n{}\r\n.\r\n", "z".repeat(98));
    let out = run_chunks(&small(100), [input.as_bytes()]);
    assert_eq!(out.transactions[0].data.len(), 100);
}

#[test]
fn too_many_recipients_get_452_without_counting_as_errors() {
    let mut input = String::from(HEAD);
    for i in 0..30 {
        input.push_str(&format!("RCPT TO:<r{i}@x>\r\n"));
    }
    let out = run_chunks(&small(1000), [input.as_bytes()]);
    let lines = out.lines();
    assert!(lines[9].starts_with("250 2.1.5"));
    assert!(lines[10].starts_with("452 4.5.3 too many recipients: at most 3"));
    assert_eq!(lines.len(), 37);
    assert!(!out.closed);
}

#[test]
fn twenty_consecutive_errors_close_with_421() {
    let out = run(&b"BOGUS\r\n".repeat(25));
    let lines = out.lines();
    assert_eq!(lines.len(), 1 + 20 + 1);
    assert!(lines[21].starts_with("421 4.7.0 too many errors"));
    assert!(out.closed);
}

#[test]
fn a_good_command_resets_the_error_count() {
    let input = [
        b"BOGUS\r\n".repeat(15),
        b"NOOP\r\n".to_vec(),
        b"BOGUS\r\n".repeat(15),
    ]
    .concat();
    assert!(!run(&input).closed);
}

#[test]
fn eight_bit_nul_and_bare_cr_lf_survive_byte_for_byte() {
    let body: Vec<u8> = (0..=255u8)
        .chain(b"\r\n\n.\n\r.\r\r\n".iter().copied())
        .chain(b"\r\n".iter().copied())
        .collect();
    let mut input = format!("{HEAD}RCPT TO:<a@x>\r\nDATA\r\n").into_bytes();
    input.extend(&body);
    input.extend(b".\r\n");
    let out = run(&input);
    assert_eq!(out.transactions[0].data, body);
}

#[test]
fn idle_timeout_and_shutdown_send_421_and_close() {
    for (stop, expected) in [
        (Session::idle_timeout as fn(&mut Session), "421 4.4.2"),
        (Session::shutdown, "421 4.3.2"),
    ] {
        let mut session = Session::new(&LmtpConfig::default());
        let mut out = Outcome::default();
        pump(&mut session, &mut out);
        stop(&mut session);
        pump(&mut session, &mut out);
        assert!(out.lines()[1].starts_with(expected));
        assert!(out.closed);
    }
}

#[test]
fn wrong_reply_count_from_delivery_is_padded_with_451() {
    let input = format!("{HEAD}RCPT TO:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n.\r\n");
    let one_reply = |_: &Transaction| vec![Reply::new(250, "2.0.0", "ok")];
    let (_, output) = run_answering(&LmtpConfig::default(), &input, check, one_reply);
    assert!(output.ends_with(
        "250 2.0.0 ok\r\n451 4.3.0 no delivery status for this recipient; try again later\r\n"
    ));
}

#[test]
fn answers_without_a_request_are_refused() {
    let mut session = Session::new(&LmtpConfig::default());
    assert_eq!(
        session.recipients_checked(check(&["a".into()])),
        Err(UnexpectedAnswer)
    );
    assert_eq!(session.delivered(vec![]), Err(UnexpectedAnswer));
}

#[test]
fn replies_from_delivery_are_repaired_on_the_wire() {
    let cases = [
        (Reply::new(250, "2.1.5", "fine"), "250 2.1.5 fine\r\n"),
        (Reply::new(99, "2.0.0", "x"), "451 4.3.0 x\r\n"),
        (Reply::new(550, "2.0.0", "x"), "550 x\r\n"),
        (
            Reply::new(550, "5.1.1", "a\r\nb\x07"),
            "550-5.1.1 a\r\n550 5.1.1 b?\r\n",
        ),
    ];
    for (reply, wire) in cases {
        assert_eq!(String::from_utf8(reply.to_bytes()).unwrap(), wire);
    }
}

#[test]
fn debug_output_does_not_show_the_body() {
    let tx = Transaction {
        mail_from: "s".into(),
        recipients: vec![],
        lhlo: "h".into(),
        data: b"secret".to_vec(),
    };
    assert!(!format!("{tx:?}").contains("secret"));
    let mut session = Session::new(&LmtpConfig::default());
    session.feed(format!("{HEAD}RCPT TO:<a@x>\r\nDATA\r\nsecret body").as_bytes());
    pump(&mut session, &mut Outcome::default());
    assert!(!format!("{session:?}").contains("secret"), "{session:?}");
}

#[test]
fn source_routes_and_quoted_local_parts() {
    let out = run(b"LHLO h\r\nMAIL FROM:<@relay.example:s@x>\r\nRCPT TO:<\"odd > name\"@x>\r\nRCPT TO: <b@x>\r\nDATA\r\n.\r\n");
    let tx = &out.transactions[0];
    assert_eq!(tx.mail_from, "s@x");
    assert_eq!(tx.recipients, ["\"odd > name\"@x", "b@x"]);
}

/// The address batches a session asks about for `input`, fed at once,
/// and the replies it sends; `rcpt` and `data` answer its requests.
fn run_answering(
    config: &LmtpConfig,
    input: &str,
    rcpt: impl Fn(&[String]) -> Vec<Reply>,
    data: impl Fn(&Transaction) -> Vec<Reply>,
) -> (Vec<Vec<String>>, String) {
    let mut session = Session::new(config);
    session.feed(input.as_bytes());
    let (mut batches, mut output) = (Vec::new(), Vec::new());
    loop {
        match session.poll() {
            Event::Send(b) => output.extend(b),
            Event::CheckRecipients(a) => {
                session.recipients_checked(rcpt(&a)).unwrap();
                batches.push(a);
            }
            Event::Deliver(tx) => session.delivered(data(&tx)).unwrap(),
            _ => break,
        }
    }
    (batches, String::from_utf8(output).unwrap())
}

/// [`run_answering`] with the scripted answers.
fn rcpt_batches(config: &LmtpConfig, input: &str) -> (Vec<Vec<String>>, String) {
    run_answering(config, input, check, deliver)
}

#[test]
fn pipelined_rcpts_are_checked_together_and_answered_in_order() {
    let input = format!(
        "{HEAD}RCPT TO:<a@x>\r\nRCPT TO:<unknown@x>\r\nrcpt to:<b@x>\r\nRCPT TO:<c@x>\r\nDATA\r\nhi\r\n.\r\n"
    );
    let (batches, output) = rcpt_batches(&LmtpConfig::default(), &input);
    assert_eq!(batches, vec![vec!["a@x", "unknown@x", "b@x", "c@x"]]);
    let lines: Vec<&str> = output.lines().collect();
    let rcpt_replies: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("recipient ok") || l.contains("no such user"))
        .collect();
    assert_eq!(
        rcpt_replies,
        [
            "250 2.1.5 recipient ok",
            "550 5.1.1 no such user",
            "250 2.1.5 recipient ok",
            "250 2.1.5 recipient ok"
        ]
    );
    // one delivery reply per accepted recipient, the refused one left out
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("250 2.0.0")).count(),
        3
    );
}

#[test]
fn a_batch_stops_at_any_other_line_and_at_the_recipient_limit() {
    // A bad RCPT, a NOOP and a partial line end the batch; each is then
    // handled on its own, as without pipelining.
    let input = format!(
        "{HEAD}RCPT TO:<a@x>\r\nRCPT TO:<b@x>\r\nRCPT TO: broken\r\nRCPT TO:<c@x>\r\nNOOP\r\nRCPT TO:<d@x>\r\nRCPT TO:<e@"
    );
    let (batches, output) = rcpt_batches(&LmtpConfig::default(), &input);
    assert_eq!(batches, vec![vec!["a@x", "b@x"], vec!["c@x"], vec!["d@x"]]);
    assert!(output.contains("\r\n501 "), "{output}");
    let config = LmtpConfig {
        max_recipients: 3,
        ..LmtpConfig::default()
    };
    let rcpts: String = ["unknown1", "a", "b", "c", "d"]
        .iter()
        .map(|r| format!("RCPT TO:<{r}@x>\r\n"))
        .collect();
    let (batches, output) = rcpt_batches(&config, &format!("{HEAD}{rcpts}"));
    // The refused one leaves room for a third accepted recipient; the
    // fourth is over the limit.
    assert_eq!(batches, vec![vec!["unknown1@x", "a@x", "b@x"], vec!["c@x"]]);
    assert_eq!(output.matches("250 2.1.5").count(), 3, "{output}");
    assert_eq!(output.matches("452 4.5.3").count(), 1, "{output}");
}

#[test]
fn missing_recipient_replies_are_padded_with_451() {
    let input = format!("{HEAD}RCPT TO:<a@x>\r\nRCPT TO:<b@x>\r\n");
    let one_reply = |_: &[String]| vec![Reply::new(250, "2.1.5", "ok")];
    let (batches, output) = run_answering(&LmtpConfig::default(), &input, one_reply, deliver);
    assert_eq!(batches, vec![vec!["a@x", "b@x"]]);
    assert!(
        output.ends_with("250 2.1.5 ok\r\n451 4.3.0 recipient not checked; try again later\r\n")
    );
}
