use super::encode::*;
use super::*;

#[test]
fn non_ascii_header_text_becomes_encoded_words_that_decode_back() {
    let text = "Grüße aus Köln — ein ziemlich langer Betreff mit Umlauten äöü";
    let encoded = encoded_words(text, "subject").unwrap_or_default();
    assert!(encoded.is_ascii());
    assert!(encoded.lines().all(|l| l.len() <= 76), "{encoded}");
    let raw = format!("Subject: {encoded}\r\n\r\n");
    let parsed = mail_parser::MessageParser::default().parse(raw.as_bytes());
    assert_eq!(parsed.as_ref().and_then(|m| m.subject()), Some(text));
}

#[test]
fn header_values_cannot_start_new_fields() {
    for bad in ["a\r\nBcc: x@y.z", "a\nX: y", "a\rb"] {
        assert!(encoded_words(bad, "subject").is_err(), "{bad:?}");
    }
    let list = serde_json::json!([{"name": "Eve\r\nBcc: x@y.z", "email": "eve@example.org"}]);
    assert!(addresses("from", &list).is_err());
    let list = serde_json::json!([{"email": "eve@example.org>\r\nBcc: <x@y.z"}]);
    assert!(addresses("to", &list).is_err());
    assert!(message_ids("messageId", &serde_json::json!(["a@b>\r\nX: y"])).is_err());
}

#[test]
fn display_names_are_quoted_when_they_hold_specials() {
    assert_eq!(
        display_name("Alice Example", "from").ok(),
        Some("Alice Example".into())
    );
    assert_eq!(
        display_name("Doe, John", "from").ok(),
        Some("\"Doe, John\"".into())
    );
    assert_eq!(
        display_name("a \"b\"", "from").ok(),
        Some("\"a \\\"b\\\"\"".into())
    );
}

#[test]
fn quoted_printable_round_trips_and_keeps_lines_short() {
    let text = format!(
        "{}\r\nzweite Zeile mit ümlaut = und Leerzeichen am Ende \r\n",
        "x".repeat(200)
    );
    let (cte, body) = text_body(text.as_bytes());
    assert_eq!(cte, "quoted-printable");
    assert!(body.split(|&b| b == b'\n').all(|l| l.len() <= 77));
    let raw = [b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n".as_slice(), &body].concat();
    let parsed = mail_parser::MessageParser::default().parse(&raw);
    let decoded = parsed
        .as_ref()
        .and_then(|m| m.body_text(0))
        .unwrap_or_default();
    assert_eq!(decoded.replace("\r\n", "\n"), text.replace("\r\n", "\n"));
}

#[test]
fn short_ascii_text_stays_seven_bit() {
    assert_eq!(text_body(b"hello\nworld").0, "7bit");
    assert_eq!(text_body(b"hello\nworld").1, b"hello\r\nworld\r\n");
}

#[test]
fn dates_keep_their_offset() {
    let d = parse_date("2024-03-05T10:20:30+01:00").map(|d| d.unix_timestamp());
    assert_eq!(
        d,
        parse_date("2024-03-05T09:20:30Z").map(|d| d.unix_timestamp())
    );
    assert!(parse_date("yesterday").is_none());
}

#[test]
fn non_ascii_file_names_use_rfc_2231() {
    assert_eq!(
        parameter("name", "a.txt").ok(),
        Some("name=\"a.txt\"".into())
    );
    assert_eq!(
        parameter("name", "ü.txt").ok(),
        Some("name*=utf-8''%C3%BC.txt".into())
    );
}
