//! Text as a reader sees it, for search: IMAP SEARCH (RFC 9051 §6.4.4)
//! and JMAP `Email/query` filters (RFC 8621 §4.4.1) both go through here,
//! so the two protocols find the same messages.
//!
//! What is compared is what a mail client shows, not the bytes on the
//! wire: RFC 2047 encoded words in header fields are decoded
//! (`=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=` is "Grüße"), body parts are taken out
//! of their transfer encoding (base64, quoted-printable) and their
//! charset, HTML parts are reduced to their text, and comparison ignores
//! case for every script (`KÖLN` finds "Köln"), not only ASCII.
//!
//! For an encrypted message only the header fields stored in clear can
//! be searched: the body is S/MIME ciphertext that the server cannot
//! read, by design, and [`body_text`] is not asked for it.

use mail_parser::decoders::html::html_to_text;
use mail_parser::{Addr, HeaderName, Message, MessageParser, PartType};

use super::MAX_DEPTH;

/// What is searched for, folded once for every comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needle(String);

impl Needle {
    /// A needle from a client's bytes (UTF-8; anything else is read
    /// lossily, which can only make it match less).
    pub fn new(bytes: &[u8]) -> Self {
        Needle(fold(&String::from_utf8_lossy(bytes)))
    }

    /// Whether `haystack` contains the needle, ignoring case; an empty
    /// needle is in every text.
    pub fn is_in(&self, haystack: &str) -> bool {
        self.0.is_empty() || fold(haystack).contains(&self.0)
    }

    /// Whether the decoded value of a raw header field contains the
    /// needle (see [`decode_field`]).
    pub fn is_in_field(&self, raw: &[u8]) -> bool {
        self.is_in(&decode_field(raw))
    }
}

/// `s` with case folded for comparison: lower case for every script.
/// Characters whose lower case is longer (`İ`) fold the same way in the
/// needle and in the text, so a match is still a match.
pub fn fold(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    s.chars().flat_map(char::to_lowercase).collect()
}

/// The value of a header field as a reader sees it: unfolded, and with
/// RFC 2047 encoded words decoded in their charset. A value without an
/// encoded word is returned as it is (read as UTF-8, lossily: RFC 6532
/// allows UTF-8 in header fields).
pub fn decode_field(raw: &[u8]) -> String {
    let unfolded: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    if !unfolded.windows(2).any(|w| w == b"=?") {
        return String::from_utf8_lossy(&unfolded).trim().to_string();
    }
    let mut field = b"Subject: ".to_vec();
    field.extend_from_slice(&unfolded);
    field.extend_from_slice(b"\r\n\r\n");
    let parser = MessageParser::new().header_text(HeaderName::Subject);
    super::parse_headers(&parser, &field)
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(&unfolded).trim().to_string())
}

/// Every header field of `raw` (the message's own header, not those of
/// its parts) as `Name: decoded value` lines: what TEXT looks in besides
/// the body.
pub fn header_text(raw: &[u8]) -> String {
    let split = crate::smime::Split::new(raw);
    let mut out = String::new();
    for field in split.outer.iter().chain(split.content_fields.iter()) {
        let (name, value) = match field.iter().position(|&b| b == b':') {
            Some(colon) => (&field[..colon], &field[colon + 1..]),
            None => (&field[..], &[][..]),
        };
        out.push_str(&String::from_utf8_lossy(name));
        out.push_str(": ");
        out.push_str(&decode_field(value));
        out.push('\n');
    }
    out
}

/// The text of every `text/*` part of a clear message, through nested
/// multiparts and encapsulated messages (down to [`MAX_DEPTH`]): decoded
/// from its transfer encoding and charset, HTML reduced to its text. An
/// encapsulated message's header fields count as its text too (they are
/// what a reader sees of a forwarded message). Non-text attachments are
/// not searched. A message too complex to walk safely
/// ([`super::too_complex`]) is searched as its raw body, undecoded, so
/// that what it says can still be found.
pub fn body_text(raw: &[u8]) -> String {
    if super::too_complex(raw) {
        let body = raw.get(super::header_end(raw)..).unwrap_or_default();
        return String::from_utf8_lossy(body).into_owned();
    }
    let parser = MessageParser::new();
    let Some(msg) = super::parse(&parser, raw) else {
        return String::new();
    };
    let mut out = String::new();
    let mut stack: Vec<(&Message<'_>, usize)> = vec![(&msg, 0)];
    while let Some((m, depth)) = stack.pop() {
        for part in &m.parts {
            match &part.body {
                PartType::Text(t) => push_line(&mut out, t),
                PartType::Html(h) => push_line(&mut out, &html_to_text(h)),
                PartType::Message(inner) if depth < MAX_DEPTH => {
                    let start = usize::try_from(inner.root_part().offset_header).unwrap_or(0);
                    let end = usize::try_from(inner.root_part().offset_body).unwrap_or(0);
                    if let Some(h) = inner.raw_message.get(start..end) {
                        push_line(&mut out, &header_text(h));
                    }
                    stack.push((inner, depth + 1));
                }
                _ => {}
            }
        }
    }
    out
}

/// What an address search looks in for the raw field `value`: each
/// address as `name <local@host>`, each group as `name: ...;`, comma
/// separated. A value mail-parser finds no address in is searched as it
/// is, so that nothing a client can see in the header is unfindable.
pub fn address_text(value: &[u8]) -> String {
    parse_value(value).unwrap_or_else(|| String::from_utf8_lossy(value).into_owned())
}

fn parse_value(value: &[u8]) -> Option<String> {
    let mut field = b"To: ".to_vec();
    field.extend_from_slice(value);
    field.extend_from_slice(b"\r\n\r\n");
    let parser = MessageParser::new().with_address_headers();
    let msg = super::parse_headers(&parser, &field)?;
    let parsed = msg.root_part().headers.first()?.value.as_address()?;
    let mut out = String::new();
    let mut push = |s: &str| {
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(s);
    };
    match parsed {
        mail_parser::Address::List(list) => list.iter().for_each(|a| push(&text_of(a))),
        mail_parser::Address::Group(groups) => {
            for group in groups {
                let members: Vec<String> = group.addresses.iter().map(text_of).collect();
                match group.name.as_deref() {
                    Some(name) => push(&format!("{name}: {};", members.join(", "))),
                    None => members.iter().for_each(|m| push(m)),
                }
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

fn text_of(a: &Addr<'_>) -> String {
    match (a.name.as_deref(), a.address.as_deref()) {
        (Some(name), Some(email)) => format!("{name} <{email}>"),
        (Some(name), None) => name.to_string(),
        (None, Some(email)) => email.to_string(),
        (None, None) => String::new(),
    }
}

fn push_line(out: &mut String, text: &str) {
    out.push_str(text);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_resolve_comments_and_groups() {
        let t = address_text(b"<user-from (comment)@ (comment) domain.org>");
        assert!(t.contains("user-from@domain.org"), "{t}");
        let t = address_text(b"user@domain.org (Real Name)");
        assert!(
            t.contains("Real Name") && t.contains("user@domain.org"),
            "{t}"
        );
        let t = address_text(b"team: a@x.org, b@x.org;, other: c@x.org;");
        assert!(
            t.contains("team:") && t.contains("other:") && t.contains("c@x.org"),
            "{t}"
        );
        assert_eq!(address_text(b"undisclosed"), "undisclosed");
    }

    #[test]
    fn encoded_words_are_decoded_and_case_folded() {
        let n = Needle::new("KÖLN".as_bytes());
        assert!(n.is_in_field(b"=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?="));
        assert!(n.is_in_field(b"=?ISO-8859-1?B?R3L832UgYXVzIEv2bG4=?="));
        assert!(n.is_in_field("Grüße aus Köln".as_bytes()));
        assert!(!n.is_in_field(b"=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_Bonn?="));
        // Adjacent encoded words join without the space between them.
        assert_eq!(
            decode_field(b"=?UTF-8?Q?Gr=C3=BC?=\r\n =?UTF-8?Q?=C3=9Fe?="),
            "Grüße"
        );
        assert!(Needle::new(b"").is_in(""));
    }

    #[test]
    fn bodies_are_decoded_from_transfer_encoding_and_charset() {
        let qp = b"Subject: x\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\
                   Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe aus K=F6ln\r\n";
        assert!(Needle::new("köln".as_bytes()).is_in(&body_text(qp)));
        let b64 = b"Subject: x\r\nMIME-Version: 1.0\r\n\
                    Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n\
                    Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n\
                    PHA+R3LDvMOfZTwvcD4=\r\n--b--\r\n";
        let text = body_text(b64);
        assert!(Needle::new("grüße".as_bytes()).is_in(&text), "{text:?}");
        assert!(!text.contains("<p>"), "{text:?}");
    }

    #[test]
    fn forwarded_messages_are_searched_with_their_header() {
        let raw = b"Subject: fwd\r\nContent-Type: message/rfc822\r\n\r\n\
                    Subject: =?UTF-8?Q?Stra=C3=9Fe?=\r\n\r\ninner body\r\n";
        let text = body_text(raw);
        assert!(Needle::new("straße".as_bytes()).is_in(&text), "{text:?}");
        assert!(Needle::new(b"inner body").is_in(&text), "{text:?}");
    }

    #[test]
    fn header_text_names_every_field_decoded() {
        let raw = b"From: =?UTF-8?Q?J=C3=BCrgen?= <j@example.org>\r\nX-Tag: a\r\n b\r\n\r\nbody";
        let text = header_text(raw);
        assert!(text.contains("From: Jürgen <j@example.org>"), "{text:?}");
        assert!(text.contains("X-Tag: a b"), "{text:?}");
        assert!(!text.contains("body"));
    }
}
