//! The encodings `compose` writes: RFC 2047 encoded words and RFC 5322
//! phrases for header text, RFC 2231 parameters, quoted-printable and
//! base64 bodies, CRLF line ends and part boundaries.

use base64::Engine as _;
use rand::RngCore as _;

use super::super::super::error::Error;
use serde_json::Value;

use super::{bad, LINE};
use crate::submission::is_envelope_address;

/// A display name as an atom phrase, a quoted string or encoded words.
pub(super) fn display_name(name: &str, prop: &str) -> Result<String, Error> {
    if name.chars().any(char::is_control) {
        return Err(bad(prop, "a name holds a control character"));
    }
    if !name.is_ascii() {
        return encoded_words(name, prop);
    }
    let atom = |c: char| c.is_ascii_alphanumeric() || " !#$%&'*+-/=?^_`{|}~".contains(c);
    if name.chars().all(atom) {
        return Ok(name.to_string());
    }
    Ok(format!(
        "\"{}\"",
        name.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

/// Text for an unstructured field: as it is when it is printable ASCII,
/// otherwise RFC 2047 `B` words of UTF-8, folded.
pub(super) fn encoded_words(text: &str, prop: &str) -> Result<String, Error> {
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(bad(
            prop,
            "the text holds a line break or control character",
        ));
    }
    if text.is_ascii() && !text.contains("=?") {
        return Ok(text.to_string());
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in text.chars() {
        // why 45 bytes: 60 base64 characters, a 72-character word.
        if chunk.len() + c.len_utf8() > 45 {
            words.push(format!("=?UTF-8?B?{}?=", b64.encode(chunk.as_bytes())));
            chunk.clear();
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(format!("=?UTF-8?B?{}?=", b64.encode(chunk.as_bytes())));
    }
    Ok(words.join("\r\n "))
}

pub(super) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 127
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
}

pub(super) fn is_media_type(s: &str) -> bool {
    s.split_once('/')
        .is_some_and(|(t, st)| is_token(t) && is_token(st))
}

/// `name="value"`, or RFC 2231 `name*=utf-8''…` for other text.
pub(super) fn parameter(name: &str, value: &str) -> Result<String, Error> {
    if value.chars().any(char::is_control) {
        return Err(bad("bodyStructure", "a name holds a control character"));
    }
    if value.is_ascii() && !value.contains(['"', '\\']) {
        return Ok(format!("{name}=\"{value}\""));
    }
    let mut enc = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            enc.push(char::from(b));
        } else {
            enc.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(format!("{name}*=utf-8''{enc}"))
}

pub(super) fn boundary() -> String {
    let mut r = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut r);
    let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
    // why `=_`: can never occur in quoted-printable or base64 content.
    format!("=_sealmail_{hex}")
}

/// `content` with every line ended by CRLF.
pub(super) fn crlf(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 2);
    let mut i = 0;
    while i < content.len() {
        match content[i] {
            b'\r' if content.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 1;
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A text body: 7bit when it is short-lined ASCII, else quoted-printable.
pub(super) fn text_body(content: &[u8]) -> (&'static str, Vec<u8>) {
    let lines = crlf(content);
    let plain = lines.is_ascii()
        && lines
            .split(|&b| b == b'\n')
            .all(|l| l.len() <= LINE && !l.starts_with(b"--=_sealmail_"))
        && !lines.iter().any(|&b| b < 32 && !b"\r\n\t".contains(&b));
    if plain {
        return ("7bit", lines);
    }
    ("quoted-printable", quoted_printable(&lines))
}

/// RFC 2045 §6.7, lines of at most 76 characters.
pub(super) fn quoted_printable(lines: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lines.len() * 11 / 10);
    for line in lines.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut width = 0;
        for (i, &b) in line.iter().enumerate() {
            let last = i + 1 == line.len();
            let literal =
                (33..=126).contains(&b) && b != b'=' || (b == b' ' || b == b'\t') && !last;
            let piece_len = if literal { 1 } else { 3 };
            if width + piece_len > LINE - 1 {
                out.extend_from_slice(b"=\r\n");
                width = 0;
            }
            if literal {
                out.push(b);
            } else {
                out.extend_from_slice(format!("={b:02X}").as_bytes());
            }
            width += piece_len;
        }
        out.extend_from_slice(b"\r\n");
    }
    // why: split yields an empty piece after the final LF.
    out.truncate(out.len() - 2);
    out
}

pub(super) fn base64_lines(content: &[u8]) -> Vec<u8> {
    let text = base64::engine::general_purpose::STANDARD.encode(content);
    let mut out = Vec::with_capacity(text.len() + text.len() / 38 + 2);
    for chunk in text.as_bytes().chunks(LINE) {
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// `EmailAddress[]` as address texts.
pub(super) fn addresses(prop: &str, v: &Value) -> Result<Vec<String>, Error> {
    let Value::Array(list) = v else {
        return Err(bad(prop, format!("{prop} is a list of {{name, email}}")));
    };
    let mut out = Vec::with_capacity(list.len());
    for a in list {
        let email = a.get("email").and_then(Value::as_str).unwrap_or("");
        if !is_envelope_address(email) || !email.is_ascii() {
            return Err(bad(
                prop,
                format!("{email:?} in {prop} is not an address this server writes (local@domain, ASCII, no spaces or quotes)"),
            ));
        }
        match a
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            Some(name) => out.push(format!("{} <{email}>", display_name(name, prop)?)),
            None => out.push(email.to_string()),
        }
    }
    Ok(out)
}

/// `String[]` of message ids (without brackets) as `<a> <b>`.
pub(super) fn message_ids(prop: &str, v: &Value) -> Result<String, Error> {
    let list = v
        .as_array()
        .ok_or_else(|| bad(prop, format!("{prop} is a list of message ids")))?;
    let mut out = Vec::with_capacity(list.len());
    for id in list {
        let id = id.as_str().unwrap_or("");
        let ok = id.contains('@')
            && id.len() <= 250
            && id
                .bytes()
                .all(|b| (33..=126).contains(&b) && !b"<>\"\\()".contains(&b));
        if !ok {
            return Err(bad(
                prop,
                format!("{id:?} is not a message id (local@domain, without <>)"),
            ));
        }
        out.push(format!("<{id}>"));
    }
    if out.is_empty() {
        return Err(bad(prop, format!("{prop} is empty; leave it out instead")));
    }
    Ok(out.join("\r\n "))
}
