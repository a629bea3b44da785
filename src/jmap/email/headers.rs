//! `header:{name}[:as{Form}][:all]` properties (RFC 8621 §4.1.2, §4.1.3)
//! and the `headers` list, over the header fields of a message or of one
//! of its parts.
//!
//! A field's value is read from the raw bytes between its colon and its
//! line end (mail-parser's per-field offsets) and parsed in the asked
//! form with mail-parser's own field parsers: the same bytes the IMAP
//! side serves, never a re-serialisation. A form the RFC does not allow
//! for a field it defines is `invalidArguments`, as §4.1.2 asks.

use mail_parser::parsers::MessageStream;
use mail_parser::{Address, Header, HeaderValue};
use serde_json::{json, Value};

use super::super::error::Error;

/// Most `header:` properties one list (`properties` or
/// `bodyProperties`) may ask. why 64: each is looked up in the fields of
/// every part shown, and a hostile message has thousands of parts;
/// clients ask a handful.
pub(crate) const MAX_HEADER_PROPERTIES: usize = 64;

/// `MAX_HEADER_PROPERTIES` as the error for a list that asks more.
pub(crate) fn check_count(count: usize) -> Result<(), Error> {
    if count > MAX_HEADER_PROPERTIES {
        return Err(Error::InvalidArguments(format!(
            "{count} header: properties; at most {MAX_HEADER_PROPERTIES} in one list"
        )));
    }
    Ok(())
}

/// A parsed form of a header field value (RFC 8621 §4.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Raw,
    Text,
    Addresses,
    GroupedAddresses,
    MessageIds,
    Date,
    Urls,
}

/// One `header:` property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderProperty {
    /// The property as asked (the key of the answer).
    pub(crate) key: String,
    /// The field name, lower case.
    name: String,
    form: Form,
    all: bool,
}

/// Fields RFC 5322 and RFC 2369 define, with the forms each allows
/// besides `Raw`; any other field allows every form.
const DEFINED: &[(&str, &[Form])] = &[
    ("subject", &[Form::Text]),
    ("comments", &[Form::Text]),
    ("keywords", &[Form::Text]),
    ("list-id", &[Form::Text]),
    ("date", &[Form::Date]),
    ("resent-date", &[Form::Date]),
    ("message-id", &[Form::MessageIds]),
    ("in-reply-to", &[Form::MessageIds]),
    ("references", &[Form::MessageIds]),
    ("resent-message-id", &[Form::MessageIds]),
    ("list-help", &[Form::Urls]),
    ("list-unsubscribe", &[Form::Urls]),
    ("list-subscribe", &[Form::Urls]),
    ("list-post", &[Form::Urls]),
    ("list-owner", &[Form::Urls]),
    ("list-archive", &[Form::Urls]),
    ("return-path", &[]),
    ("received", &[]),
];

const ADDRESS_FIELDS: &[&str] = &[
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "bcc",
    "resent-from",
    "resent-sender",
    "resent-reply-to",
    "resent-to",
    "resent-cc",
    "resent-bcc",
];

impl HeaderProperty {
    /// The `header:` property `s`: `Ok(None)` when `s` is not one,
    /// `invalidArguments` when it is malformed or asks a form the field
    /// does not allow.
    pub(crate) fn parse(s: &str) -> Result<Option<Self>, Error> {
        let Some(rest) = s.strip_prefix("header:") else {
            return Ok(None);
        };
        let bad = |why: &str| Error::InvalidArguments(format!("property {s:?}: {why}"));
        let mut fields = rest.split(':');
        let name = fields.next().unwrap_or_default();
        let printable = |b: u8| b.is_ascii_graphic() && b != b':';
        if name.is_empty() || name.len() > 200 || !name.bytes().all(printable) {
            return Err(bad("no valid header field name"));
        }
        let (mut form, mut all) = (Form::Raw, false);
        let mut next = fields.next();
        if let Some(f) = next.and_then(|f| f.strip_prefix("as")) {
            form = match f {
                "Raw" => Form::Raw,
                "Text" => Form::Text,
                "Addresses" => Form::Addresses,
                "GroupedAddresses" => Form::GroupedAddresses,
                "MessageIds" => Form::MessageIds,
                "Date" => Form::Date,
                "URLs" => Form::Urls,
                _ => return Err(bad("unknown form")),
            };
            next = fields.next();
        }
        if next == Some("all") {
            all = true;
            next = fields.next();
        }
        if next.is_some() {
            return Err(bad("expected header:{name}[:as{Form}][:all]"));
        }
        let name = name.to_ascii_lowercase();
        if !allowed(&name, form) {
            return Err(bad(
                "the RFC 8621 §4.1.2 form is not allowed for this field",
            ));
        }
        Ok(Some(Self {
            key: s.to_string(),
            name,
            form,
            all,
        }))
    }

    /// The value of this property over `headers`, whose offsets point
    /// into `raw`: the last instance, or with `:all` every instance.
    pub(crate) fn value(&self, raw: &[u8], headers: &[Header<'_>]) -> Value {
        let mut values = headers
            .iter()
            .filter(|h| h.name.as_str().eq_ignore_ascii_case(&self.name))
            .map(|h| self.parse_value(raw_value(raw, h)));
        if self.all {
            Value::Array(values.collect())
        } else {
            values.next_back().unwrap_or(Value::Null)
        }
    }

    fn parse_value(&self, bytes: &[u8]) -> Value {
        // why the line end: mail-parser's field parsers read up to it.
        let mut line = bytes.to_vec();
        line.extend_from_slice(b"\r\n");
        let parsed = || {
            let mut stream = MessageStream::new(&line);
            match self.form {
                Form::Text => stream.parse_unstructured(),
                Form::MessageIds => stream.parse_id(),
                Form::Date => stream.parse_date(),
                _ => stream.parse_address(),
            }
        };
        match self.form {
            Form::Raw => json!(String::from_utf8_lossy(bytes)),
            Form::Text => match parsed() {
                HeaderValue::Text(t) => json!(t.trim()),
                _ => json!(""),
            },
            Form::MessageIds => match parsed() {
                HeaderValue::Text(t) => json!([t]),
                HeaderValue::TextList(l) => json!(l),
                _ => Value::Null,
            },
            Form::Date => match parsed() {
                HeaderValue::DateTime(d) => json!(d.to_rfc3339()),
                _ => Value::Null,
            },
            Form::Addresses => match parsed() {
                HeaderValue::Address(a) => addresses(&a),
                _ => json!([]),
            },
            Form::GroupedAddresses => match parsed() {
                HeaderValue::Address(a) => grouped(&a),
                _ => json!([]),
            },
            Form::Urls => match parsed() {
                HeaderValue::Address(a) => {
                    let urls: Vec<&str> = a.iter().filter_map(|x| x.address()).collect();
                    json!(urls)
                }
                _ => Value::Null,
            },
        }
    }
}

fn allowed(name: &str, form: Form) -> bool {
    if form == Form::Raw {
        return true;
    }
    if ADDRESS_FIELDS.contains(&name) {
        return matches!(form, Form::Addresses | Form::GroupedAddresses);
    }
    match DEFINED.iter().find(|(n, _)| *n == name) {
        Some((_, forms)) => forms.contains(&form),
        None => true,
    }
}

/// The raw value of field `h`: the bytes after its colon, up to (not
/// including) its line end.
pub(crate) fn raw_value<'a>(raw: &'a [u8], h: &Header<'_>) -> &'a [u8] {
    let (start, end) = (h.offset_start as usize, h.offset_end as usize);
    let value = raw.get(start..end.max(start)).unwrap_or_default();
    let value = value.strip_suffix(b"\n").unwrap_or(value);
    value.strip_suffix(b"\r").unwrap_or(value)
}

/// The `headers` list (RFC 8621 §4.1.3): every field, in order, raw.
pub(crate) fn all_headers(raw: &[u8], headers: &[Header<'_>]) -> Value {
    let list: Vec<Value> = headers
        .iter()
        .map(|h| {
            let value = String::from_utf8_lossy(raw_value(raw, h));
            json!({ "name": h.name.as_str(), "value": value })
        })
        .collect();
    json!(list)
}

/// EmailAddress objects (RFC 8621 §4.1.2.3), groups flattened.
pub(crate) fn addresses(a: &Address<'_>) -> Value {
    let list: Vec<Value> = a
        .iter()
        .map(|addr| json!({ "name": addr.name(), "email": addr.address() }))
        .collect();
    json!(list)
}

/// EmailAddressGroup objects (RFC 8621 §4.1.2.4).
fn grouped(a: &Address<'_>) -> Value {
    match a {
        Address::List(_) => json!([{ "name": null, "addresses": addresses(a) }]),
        Address::Group(groups) => {
            let list: Vec<Value> = groups
                .iter()
                .map(|g| {
                    let members: Vec<Value> = g
                        .addresses
                        .iter()
                        .map(|addr| json!({ "name": addr.name(), "email": addr.address() }))
                        .collect();
                    json!({ "name": g.name, "addresses": members })
                })
                .collect();
            json!(list)
        }
    }
}
