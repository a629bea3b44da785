//! Address fields (RFC 5322 §3.4) as IMAP shows them: the address lists
//! of ENVELOPE with RFC 3501 §7.4.2 group syntax, and the text that the
//! FROM, TO, CC and BCC search keys look in (RFC 3501 §6.4.4).
//!
//! Both come from mail-parser's reading of the field, so comments,
//! folding, quoting and RFC 2047 encoded words are resolved the same way
//! for the envelope and for search: `<user (comment)@ (comment) host>`
//! is found by `FROM user@host`, and a group's name and members by
//! their own names.

use base64::Engine;
use imap_next::imap_types::core::{IString, NString};
use imap_next::imap_types::envelope::Address;
use mail_parser::{Addr, MessageParser};

/// The ENVELOPE address list of a parsed field. RFC 3501 §7.4.2: a group
/// starts with `(NIL NIL "name" NIL)` and ends with `(NIL NIL NIL NIL)`;
/// an address without an `@` (a bare local part) has a NIL host.
pub(crate) fn envelope_list(field: &mail_parser::Address<'_>) -> Vec<Address<'static>> {
    let mut out = Vec::new();
    match field {
        mail_parser::Address::List(list) => out.extend(list.iter().filter_map(envelope_address)),
        mail_parser::Address::Group(groups) => {
            for group in groups {
                // why: mail-parser keeps addresses outside any group in a
                // group without a name, between the named ones.
                let Some(name) = group.name.as_deref() else {
                    out.extend(group.addresses.iter().filter_map(envelope_address));
                    continue;
                };
                out.push(Address {
                    name: NString(None),
                    adl: NString(None),
                    mailbox: nstring(Some(name)),
                    host: NString(None),
                });
                out.extend(group.addresses.iter().filter_map(envelope_address));
                out.push(Address {
                    name: NString(None),
                    adl: NString(None),
                    mailbox: NString(None),
                    host: NString(None),
                });
            }
        }
    }
    out
}

fn envelope_address(a: &Addr<'_>) -> Option<Address<'static>> {
    let email = a.address.as_deref()?;
    // An obsolete source route (RFC 5322 §4.4, `<@route:user@host>`) is
    // the address's "at-domain-list" (RFC 3501 §7.4.2).
    let (adl, email) = match email.split_once(':') {
        Some((route, rest)) if route.starts_with('@') => (Some(route), rest),
        _ => (None, email),
    };
    let (local, host) = email.rsplit_once('@').unwrap_or((email, ""));
    Some(Address {
        name: nstring(a.name.as_deref().map(encode_name).as_deref()),
        adl: nstring(adl),
        mailbox: nstring(Some(local)),
        host: nstring((!host.is_empty()).then_some(host)),
    })
}

/// What an address search looks in for the raw field `value`: each
/// address as `name <local@host>`, each group as `name: ...;`, comma
/// separated. A value mail-parser finds no address in is searched as it
/// is, so that nothing a client can see in the header is unfindable.
pub(crate) fn search_text(value: &[u8]) -> String {
    parse_value(value).unwrap_or_else(|| String::from_utf8_lossy(value).into_owned())
}

fn parse_value(value: &[u8]) -> Option<String> {
    let mut field = b"To: ".to_vec();
    field.extend_from_slice(value);
    field.extend_from_slice(b"\r\n\r\n");
    let parser = MessageParser::new().with_address_headers();
    let msg = crate::mime::parse_headers(&parser, &field)?;
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

fn nstring(s: Option<&str>) -> NString<'static> {
    NString(s.map(|s| {
        IString::try_from(s.to_string()).unwrap_or_else(|_| {
            IString::Literal(imap_next::imap_types::core::Literal::unvalidated(
                s.as_bytes().to_vec(),
            ))
        })
    }))
}

/// RFC 2047 encoded-word for a display name that is not ASCII.
fn encode_name(name: &str) -> String {
    if name.is_ascii() {
        return name.to_string();
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(name.as_bytes());
    format!("=?utf-8?b?{b64}?=")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_text_resolves_comments_and_groups() {
        let t = search_text(b"<user-from (comment)@ (comment) domain.org>");
        assert!(t.contains("user-from@domain.org"), "{t}");
        let t = search_text(b"user@domain.org (Real Name)");
        assert!(
            t.contains("Real Name") && t.contains("user@domain.org"),
            "{t}"
        );
        let t = search_text(b"team: a@x.org, b@x.org;, other: c@x.org;");
        assert!(
            t.contains("team:") && t.contains("other:") && t.contains("c@x.org"),
            "{t}"
        );
        assert_eq!(search_text(b"undisclosed"), "undisclosed");
    }

    #[test]
    fn envelope_lists_mark_groups() {
        let parser = MessageParser::new().with_address_headers();
        let raw = b"To: a@x.org, team: b@x.org;\r\n\r\n";
        let msg = crate::mime::parse_headers(&parser, raw).unwrap();
        let field = msg.root_part().headers[0].value.as_address().unwrap();
        let list = envelope_list(field);
        let shape: Vec<(bool, bool)> = list
            .iter()
            .map(|a| (a.mailbox.0.is_some(), a.host.0.is_some()))
            .collect();
        assert_eq!(
            shape,
            vec![(true, true), (true, false), (true, true), (false, false)]
        );
    }
}
