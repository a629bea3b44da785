#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::{
    parse, AppendCommand, AppendData, AppendSyntaxError as E, CatPart, MAX_CATENATE_PARTS,
    MAX_MESSAGES,
};

fn lit(bytes: &[u8]) -> AppendData {
    AppendData::Literal {
        bytes: bytes.to_vec(),
        binary: false,
    }
}

#[test]
fn rfc3502_multiappend() {
    let c = parse(b"APPEND saved-messages (\\Seen) {3}\r\nabc (\\Seen $x) \"7-Feb-1994 21:52:25 -0800\" {2+}\r\nde {1}\r\nf\r\n").unwrap();
    assert_eq!(c.mailbox, b"saved-messages");
    assert_eq!(c.messages.len(), 3);
    assert_eq!(c.messages[0].options, b"(\\Seen) ");
    assert_eq!(c.messages[0].data, lit(b"abc"));
    assert_eq!(
        c.messages[1].options,
        b"(\\Seen $x) \"7-Feb-1994 21:52:25 -0800\" "
    );
    assert_eq!(c.messages[1].data, lit(b"de"));
    assert_eq!(c.messages[2].options, b"");
    assert_eq!(
        c.messages[2].codec_form(&c.mailbox),
        b"x APPEND saved-messages {0}\r\n\r\n"
    );
}

#[test]
fn rfc4469_catenate_and_literal8() {
    let c = parse(b"append {5}\r\nINBOX catenate (URL \"/INBOX;UIDVALIDITY=385759045/;UID=20\" text ~{3}\r\n\0\x01\x02 url /Drafts/;UID=1) ~{1+}\r\n\0\n").unwrap();
    assert_eq!(c.mailbox, b"{5}\r\nINBOX");
    let AppendData::Catenate(parts) = &c.messages[0].data else {
        panic!("not CATENATE");
    };
    assert_eq!(
        parts,
        &vec![
            CatPart::Url(b"/INBOX;UIDVALIDITY=385759045/;UID=20".to_vec()),
            CatPart::Text {
                bytes: b"\0\x01\x02".to_vec(),
                binary: true
            },
            CatPart::Url(b"/Drafts/;UID=1".to_vec()),
        ]
    );
    assert_eq!(
        c.messages[1].data,
        AppendData::Literal {
            bytes: b"\0".to_vec(),
            binary: true
        }
    );
}

#[test]
fn malformed_commands_are_refused() {
    let bad: &[&[u8]] = &[
        b"APPEND INBOX\r\n",
        b"APPEND INBOX {3}\r\nab",
        b"APPEND INBOX {3}\r\nabc{1}\r\nd\r\n",
        b"APPEND INBOX (\\Seen {1}\r\na\r\n",
        b"APPEND INBOX CATENATE (TEXT {1}\r\na\r\n",
        b"APPEND INBOX CATENATE ()\r\n",
        b"APPEND INBOX CATENATE (FOO x)\r\n",
        b"APPEND INBOX {99999999999}\r\nab\r\n",
        b"APPEND INBOX \"unterminated {1}\r\na\r\n",
        b"APPEND INBOX {1}\r\na trailing\r\n",
    ];
    for input in bad {
        assert!(
            matches!(parse(input), Err(E::Expected { .. })),
            "{:?}: {:?}",
            String::from_utf8_lossy(input),
            parse(input)
        );
    }
    assert_eq!(parse(b"LIST \"\" *\r\n"), Err(E::NotAppend));
    assert_eq!(parse(b"APPEND INBOX {2}\r\na\0\r\n"), Err(E::NulInLiteral));
    assert_eq!(
        parse(b"APPEND INBOX CATENATE (TEXT {1}\r\n\0)\r\n"),
        Err(E::NulInLiteral)
    );
}

#[test]
fn counts_are_bounded() {
    let mut many = b"APPEND INBOX".to_vec();
    for _ in 0..=MAX_MESSAGES {
        many.extend_from_slice(b" {0}\r\n");
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(parse(&many), Err(E::TooManyMessages));
    let mut parts = b"APPEND INBOX CATENATE (".to_vec();
    for _ in 0..=MAX_CATENATE_PARTS {
        parts.extend_from_slice(b"URL /INBOX/;UID=1 ");
    }
    parts.extend_from_slice(b")\r\n");
    assert_eq!(parse(&parts), Err(E::TooManyParts));
}

fn encode(c: &AppendCommand) -> Vec<u8> {
    let mut out = b"APPEND ".to_vec();
    out.extend_from_slice(&c.mailbox);
    for m in &c.messages {
        out.push(b' ');
        out.extend_from_slice(&m.options);
        match &m.data {
            AppendData::Literal { bytes, binary } => literal(&mut out, bytes, *binary),
            AppendData::Catenate(parts) => {
                out.extend_from_slice(b"CATENATE (");
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    match p {
                        CatPart::Text { bytes, binary } => {
                            out.extend_from_slice(b"TEXT ");
                            literal(&mut out, bytes, *binary);
                        }
                        CatPart::Url(url) => {
                            out.extend_from_slice(b"URL ");
                            literal(&mut out, url, false);
                        }
                    }
                }
                out.push(b')');
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn literal(out: &mut Vec<u8>, bytes: &[u8], binary: bool) {
    let tilde = if binary { "~" } else { "" };
    out.extend_from_slice(format!("{tilde}{{{}}}\r\n", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
}

fn data() -> impl Strategy<Value = AppendData> {
    let text = prop::collection::vec(1u8..=255, 0..20);
    let binary = prop::collection::vec(any::<u8>(), 0..20);
    let part = prop_oneof![
        text.clone().prop_map(|b| CatPart::Text {
            bytes: b,
            binary: false
        }),
        binary.clone().prop_map(|b| CatPart::Text {
            bytes: b,
            binary: true
        }),
        text.clone().prop_map(CatPart::Url),
    ];
    prop_oneof![
        text.prop_map(|b| AppendData::Literal {
            bytes: b,
            binary: false
        }),
        binary.prop_map(|b| AppendData::Literal {
            bytes: b,
            binary: true
        }),
        prop::collection::vec(part, 1..4).prop_map(AppendData::Catenate),
    ]
}

proptest! {
    #[test]
    fn round_trip(
        datas in prop::collection::vec(data(), 1..5),
        flagged in any::<bool>(),
    ) {
        let options = if flagged { b"(\\Seen) ".to_vec() } else { Vec::new() };
        let cmd = AppendCommand {
            mailbox: b"INBOX".to_vec(),
            messages: datas
                .into_iter()
                .map(|data| super::AppendMessage { options: options.clone(), data })
                .collect(),
        };
        prop_assert_eq!(parse(&encode(&cmd)), Ok(cmd));
    }

    #[test]
    fn never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut input = b"APPEND ".to_vec();
        input.extend_from_slice(&bytes);
        let _ = parse(&input);
    }
}
