//! Address fields (RFC 5322 §3.4) as IMAP shows them: the address lists
//! of ENVELOPE with RFC 3501 §7.4.2 group syntax, and the text that the
//! FROM, TO, CC and BCC search keys look in (RFC 3501 §6.4.4).
//!
//! Both come from mail-parser's reading of the field, so comments,
//! folding, quoting and RFC 2047 encoded words are resolved the same way
//! for the envelope and for search ([`crate::mime::search::address_text`]):
//! `<user (comment)@ (comment) host>` is found by `FROM user@host`, and a
//! group's name and members by their own names.

use base64::Engine;
use imap_next::imap_types::core::NString;
use imap_next::imap_types::envelope::Address;
use mail_parser::Addr;
#[cfg(test)]
use mail_parser::MessageParser;

use super::mime::nstring;

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
