//! The notice a list member without a usable certificate receives instead
//! of a message that arrived encrypted to the list (Sympa's
//! `x509-user-cert-missing`). It carries nothing of the original but its
//! Subject and Message-ID.
//!
//! Both come from a sender and are hostile: a CR, LF or NUL copied into a
//! header field would add fields of the sender's choosing (a `Bcc:`, a
//! second `Content-Type:`) to a message the server signs with the list
//! owner's name. So the Message-ID reaches `In-Reply-To`/`References` only
//! when it is a syntactically valid `msg-id` (RFC 5322 §3.6.4), and what
//! the body quotes of either is one line of text without controls, bounded
//! in length ([`one_line`]).

use rand::RngCore as _;

/// The notice's marker, also in an `X-Sealmail-Notice` field for filters.
pub(crate) const CERT_MISSING: &str = "x509-user-cert-missing";

/// The body when `[lists] notice_template` is not set. Placeholders:
/// `{list}`, `{member}`, `{subject}`, `{message_id}`, `{marker}`.
pub(crate) const DEFAULT_TEMPLATE: &str = "\
A message was sent encrypted to the list {list}. It was not delivered to you
because you have no usable S/MIME certificate on this server, and an
encrypted message is never stored in clear.

Subject:    {subject}
Message-ID: {message_id}

To receive encrypted list mail, upload your certificate: in a JMAP client
(Certificate/set), or ask your mail operator to run
`sealmail cert add {member} YOUR-CERT.pem`.

({marker})
";

/// Longest quotation of the original's Subject or Message-ID, in
/// characters: enough to recognise the message, short of RFC 5322's
/// 998-octet line limit whatever the template puts around it.
const MAX_QUOTED_CHARS: usize = 200;

/// Longest `msg-id` copied into a header field (RFC 5322 §2.1.1: a line
/// "SHOULD" stay within 78 characters; real ids are far shorter than this).
const MAX_MSG_ID_OCTETS: usize = 250;

/// `value` when it is one RFC 5322 `msg-id` (`"<" id-left "@" id-right
/// ">"`, printable US-ASCII without whitespace, no `<`/`>` inside), after
/// the surrounding whitespace of the field value is trimmed.
pub(crate) fn valid_msg_id(value: &str) -> Option<&str> {
    let value = value.trim_matches([' ', '\t', '\r', '\n']);
    let inner = value.strip_prefix('<')?.strip_suffix('>')?;
    let (left, right) = inner.split_once('@')?;
    let atext = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'@'))
    };
    (value.len() <= MAX_MSG_ID_OCTETS && atext(left) && atext(right)).then_some(value)
}

/// `value` as one line of text: folds undone, every control, bidi and
/// line-separator character ([`crate::text::is_control`]) dropped (a TAB
/// becomes a space), at most [`MAX_QUOTED_CHARS`] characters.
pub(crate) fn one_line(value: &str) -> String {
    let mut out = String::with_capacity(value.len().min(MAX_QUOTED_CHARS * 4));
    let mut chars = 0;
    for c in value.chars() {
        let c = match c {
            '\t' => ' ',
            c if crate::text::is_control(c) => continue,
            c => c,
        };
        if chars == MAX_QUOTED_CHARS {
            out.push('…');
            break;
        }
        out.push(c);
        chars += 1;
    }
    out.trim().to_string()
}

/// `template` with each `{name}` of `values` replaced, in one pass: text
/// that came in through a value is never read as a placeholder again.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let (before, from_brace) = rest.split_at(open);
        out.push_str(before);
        let hit = values.iter().find(|(name, _)| {
            from_brace
                .strip_prefix('{')
                .and_then(|r| r.strip_prefix(name))
                .is_some_and(|r| r.starts_with('}'))
        });
        match hit {
            Some((name, value)) => {
                out.push_str(value);
                rest = from_brace.get(name.len() + 2..).unwrap_or_default();
            }
            None => {
                out.push('{');
                rest = from_brace.get(1..).unwrap_or_default();
            }
        }
    }
    out.push_str(rest);
    out
}

/// `text` with every line ended by CRLF.
fn crlf(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.lines() {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out
}

/// What the notice quotes of the original (clear header values, raw).
#[derive(Debug, Clone, Default)]
pub(crate) struct Original {
    pub(crate) subject: Option<String>,
    pub(crate) message_id: Option<String>,
}

/// The notice from `owner` of `list` to `member`.
pub(crate) fn cert_missing(
    list: &str,
    owner: &str,
    member: &str,
    original: &Original,
    now: time::OffsetDateTime,
    template: Option<&str>,
) -> Vec<u8> {
    let date = now
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_else(|_| now.unix_timestamp().to_string());
    let mut id = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut id);
    let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    // why one_line on our own addresses too: they come from the store,
    // where an operator put them; a header is no place to trust that.
    let (list, owner, member) = (one_line(list), one_line(owner), one_line(member));
    let domain = list.rsplit_once('@').map_or("localhost", |(_, d)| d);
    let domain = if valid_msg_id(&format!("<x@{domain}>")).is_some() {
        domain
    } else {
        "localhost"
    };
    let subject = match original.subject.as_deref().map(one_line) {
        Some(s) if !s.is_empty() => s,
        _ => "(no subject)".to_string(),
    };
    let in_reply_to = original.message_id.as_deref().and_then(valid_msg_id);
    let message_id = match (in_reply_to, original.message_id.as_deref()) {
        (Some(id), _) => id.to_string(),
        (None, Some(raw)) => format!("(malformed: {})", one_line(raw)),
        (None, None) => "(none)".to_string(),
    };
    let mut fields = vec![
        format!("From: {owner}"),
        format!("To: {member}"),
        format!("Subject: [{CERT_MISSING}] encrypted message to {list} not delivered"),
        format!("Date: {date}"),
        format!("Message-ID: <{id}.notice@{domain}>"),
        format!("X-Sealmail-Notice: {CERT_MISSING}"),
        "Auto-Submitted: auto-generated".to_string(),
        "MIME-Version: 1.0".to_string(),
        "Content-Type: text/plain; charset=utf-8".to_string(),
        "Content-Transfer-Encoding: 8bit".to_string(),
    ];
    if let Some(mid) = in_reply_to {
        fields.push(format!("In-Reply-To: {mid}"));
        fields.push(format!("References: {mid}"));
    }
    let body = fill(
        template.unwrap_or(DEFAULT_TEMPLATE),
        &[
            ("list", &list),
            ("member", &member),
            ("subject", &subject),
            ("message_id", &message_id),
            ("marker", CERT_MISSING),
        ],
    );
    let body = crlf(&body);
    let mut raw = fields.join("\r\n").into_bytes();
    raw.extend_from_slice(b"\r\n\r\n");
    raw.extend_from_slice(body.as_bytes());
    raw
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(subject: &str, message_id: &str) -> String {
        let original = Original {
            subject: Some(subject.into()),
            message_id: Some(message_id.into()),
        };
        let raw = cert_missing(
            "l@example.org",
            "owner@example.org",
            "m@example.org",
            &original,
            time::OffsetDateTime::UNIX_EPOCH,
            None,
        );
        String::from_utf8(raw).unwrap_or_default()
    }

    #[test]
    fn a_valid_message_id_threads_the_notice() {
        let n = notice("Hello", " <abc.1@example.org>");
        assert!(
            n.contains("\r\nIn-Reply-To: <abc.1@example.org>\r\n"),
            "{n}"
        );
        assert!(n.contains("\r\nReferences: <abc.1@example.org>\r\n"), "{n}");
        assert!(n.contains("Subject:    Hello\r\n"), "{n}");
    }

    #[test]
    fn hostile_values_add_no_field_and_no_bare_line_end() {
        for (subject, id) in [
            ("a\rBcc: x@evil\r\n\tmore\u{0}", "<a@b>\rBcc: x@evil"),
            ("{message_id}\u{202e}", "<a@b>\nX-Evil: 1"),
            (&"s".repeat(5000)[..], "<a b@c>"),
        ] {
            let n = notice(subject, id);
            let (head, body) = n.split_once("\r\n\r\n").unwrap_or_default();
            assert!(!head.contains("In-Reply-To"), "{head}");
            for line in head.split("\r\n").chain(body.split("\r\n")) {
                assert!(!line.contains(['\r', '\n', '\0', '\u{202e}']), "{line:?}");
                assert!(
                    !line.starts_with("Bcc") && !line.starts_with("X-Evil"),
                    "{line}"
                );
                assert!(line.len() < 998, "{}", line.len());
            }
        }
    }

    #[test]
    fn placeholders_are_filled_once() {
        let t = fill("{a}-{b}-{c", &[("a", "{b}"), ("b", "2")]);
        assert_eq!(t, "{b}-2-{c");
    }
}
