//! CATENATE's URL parts (RFC 4469 §5): IMAP URLs (RFC 5092) naming a
//! message or a section of one in the logged-in account, resolved to
//! the bytes `BODY.PEEK[section]<partial>` would give.
//!
//! ```abnf
//! url        = ["imap://" [enc-user "@"] host ["/"]] "/" imessagepart
//! imessagepart = enc-mailbox [";UIDVALIDITY=" nz-number]
//!                "/;UID=" nz-number ["/;SECTION=" enc-section]
//!                ["/;PARTIAL=" number ["." nz-number]]
//! ```
//!
//! Only the session's own account is reachable: an absolute URL naming
//! another user, URLAUTH (RFC 4467, not offered), a missing mailbox,
//! UID or section, or a UIDVALIDITY that does not match is a `BADURL`,
//! and the text never says whether another account's mailbox exists.
//! A message stored encrypted that this session cannot read (no
//! server-side reading) cannot give its sections: `BADURL` saying so.

use imap_codec::decode::Decoder;
use imap_codec::CommandCodec;
use imap_next::imap_types::command::CommandBody;
use imap_next::imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItemName, Section};

use crate::reading::Unlocked;
use crate::store::{AccountId, MailError, MailStore, Uid};

/// Longest section text accepted (`HEADER.FIELDS (...)` with a few
/// dozen names fits).
const MAX_SECTION: usize = 1024;

/// A parsed URL part.
#[derive(Debug, Clone)]
pub(crate) struct ImapUrl {
    /// The mailbox (UTF-8, as the store names it).
    pub(crate) mailbox: String,
    pub(crate) uid_validity: Option<u32>,
    pub(crate) uid: Uid,
    pub(crate) section: Option<Section<'static>>,
    /// `<start.length>`: the length is to the end when absent.
    pub(crate) partial: Option<(u32, Option<u32>)>,
}

/// Parses `url` for the account `user` (its address); `Err` with the
/// reason for `BADURL`.
pub(crate) fn parse(url: &[u8], user: &str) -> Result<ImapUrl, String> {
    let text = std::str::from_utf8(url).map_err(|_| "the URL is not ASCII".to_string())?;
    let path = match strip_prefix_ci(text, "imap://") {
        Some(rest) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            if let Some((userinfo, _host)) = authority.rsplit_once('@') {
                let name = userinfo.split(';').next().unwrap_or_default();
                let name = String::from_utf8(decode(name)?).unwrap_or_default();
                if !name.eq_ignore_ascii_case(user) {
                    return Err(
                        "the URL names another user; only this account's mail can be used".into(),
                    );
                }
            }
            path
        }
        None => text,
    };
    let path = path
        .strip_prefix('/')
        .ok_or("the URL must be absolute or start with /")?;
    let mut segments = path.split("/;");
    let (name, uid_validity) = mailbox_ref(segments.next().unwrap_or_default())?;
    let mut out = ImapUrl {
        mailbox: name,
        uid_validity,
        uid: Uid::FIRST,
        section: None,
        partial: None,
    };
    let mut uid = None;
    for segment in segments {
        let (key, value) = segment.split_once('=').ok_or("a URL part without =")?;
        if value.contains(';') {
            return Err("URLAUTH and other URL parameters are not supported".into());
        }
        match key.to_ascii_uppercase().as_str() {
            "UID" if uid.is_none() => uid = Some(nz_number(value)?),
            "SECTION" if out.section.is_none() && uid.is_some() => {
                out.section = Some(section(value)?);
            }
            "PARTIAL" if out.partial.is_none() && uid.is_some() => {
                out.partial = Some(partial(value)?);
            }
            _ => return Err(format!("unexpected URL part ;{key}=")),
        }
    }
    let uid = uid.ok_or("the URL names no message (;UID=)")?;
    out.uid = Uid::new(uid).ok_or("UID 0")?;
    Ok(out)
}

fn strip_prefix_ci<'t>(text: &'t str, prefix: &str) -> Option<&'t str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| text.get(prefix.len()..))
        .flatten()
}

/// `enc-mailbox [";UIDVALIDITY=" nz-number]`.
fn mailbox_ref(segment: &str) -> Result<(String, Option<u32>), String> {
    let (name, validity) = match segment.split_once(';') {
        Some((name, rest)) => {
            let value =
                strip_prefix_ci(rest, "UIDVALIDITY=").ok_or("unexpected ; after the mailbox")?;
            (name, Some(nz_number(value)?))
        }
        None => (segment, None),
    };
    let name = String::from_utf8(decode(name)?).map_err(|_| "the mailbox name is not UTF-8")?;
    if name.is_empty() {
        return Err("the URL names no mailbox".into());
    }
    let name = if name.eq_ignore_ascii_case("INBOX") {
        "INBOX".to_string()
    } else {
        name
    };
    Ok((name, validity))
}

fn nz_number(value: &str) -> Result<u32, String> {
    value
        .parse::<u32>()
        .ok()
        .filter(|&n| n > 0 && value.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| format!("{:?} is not a number from 1 to 4294967295", shown(value)))
}

/// `number ["." nz-number]`.
fn partial(value: &str) -> Result<(u32, Option<u32>), String> {
    let bad = || format!("PARTIAL={:?} is not start[.length]", shown(value));
    let (start, len) = match value.split_once('.') {
        Some((s, l)) => (s, Some(nz_number(l).map_err(|_| bad())?)),
        None => (value, None),
    };
    let start = start
        .parse::<u32>()
        .ok()
        .filter(|_| start.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(bad)?;
    Ok((start, len))
}

/// The section text, through imap-codec's FETCH grammar.
fn section(value: &str) -> Result<Section<'static>, String> {
    let text = decode(value)?;
    let bad = || format!("SECTION={:?} is not a message section", shown(value));
    if text.len() > MAX_SECTION
        || text
            .iter()
            .any(|&b| !(0x20..0x7f).contains(&b) || b == b']')
    {
        return Err(bad());
    }
    let mut line = b"x FETCH 1 BODY.PEEK[".to_vec();
    line.extend_from_slice(&text);
    line.extend_from_slice(b"]\r\n");
    let Ok((_, command)) = CommandCodec::default().decode(&line) else {
        return Err(bad());
    };
    let CommandBody::Fetch {
        macro_or_item_names: MacroOrMessageDataItemNames::MessageDataItemNames(names),
        ..
    } = command.body
    else {
        return Err(bad());
    };
    match names.into_iter().next() {
        Some(MessageDataItemName::BodyExt {
            section: Some(section),
            partial: None,
            ..
        }) => Ok(imap_next::imap_types::IntoStatic::into_static(section)),
        _ => Err(bad()),
    }
}

/// Percent-decoding (RFC 3986 §2.1).
fn decode(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("a bad %-escape in the URL")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Ok(out)
}

/// A peer's text for an error message: at most 40 characters.
fn shown(text: &str) -> String {
    text.chars().take(40).collect()
}

/// Blocking: the bytes `url` names in the account `id`, as this session
/// (with server-side reading `keys`, if any) is served them; the inner
/// `Err` is the reason for `BADURL`.
pub(crate) fn resolve(
    s: &MailStore,
    id: AccountId,
    url: &ImapUrl,
    keys: Option<&Unlocked>,
) -> Result<Result<Vec<u8>, String>, MailError> {
    let mailbox = match s.mailbox_by_name(id, &url.mailbox) {
        Err(MailError::MailboxNotFound { .. }) => {
            return Ok(Err(format!("no mailbox {:?}", url.mailbox)))
        }
        other => other?,
    };
    if url
        .uid_validity
        .is_some_and(|v| v != mailbox.uid_validity.get())
    {
        return Ok(Err("UIDVALIDITY does not match the mailbox's".into()));
    }
    let missing = || Ok(Err(format!("no message with UID {}", url.uid.get())));
    let Some(mut msg) = s
        .messages_by_uid(id, mailbox.id, &[url.uid])?
        .into_iter()
        .next()
    else {
        return missing();
    };
    let Some(raw) = s.get_blob(id, msg.blob)? else {
        return missing();
    };
    let raw = crate::reading::present(keys, &mut msg, raw);
    if msg.encrypted {
        return Ok(Err(
            "the message is stored encrypted (S/MIME) and the server cannot read it: server-side reading is off for this account".into(),
        ));
    }
    let data = match &url.section {
        None => raw,
        Some(section) => {
            let parsed = super::mime::parse(&raw, super::mime::has_path(section));
            match parsed.and_then(|p| super::mime::section(&p, Some(section))) {
                Some(data) => data,
                None => return Ok(Err("the message has no such section".into())),
            }
        }
    };
    Ok(Ok(match url.partial {
        None => data,
        Some((start, len)) => {
            let start = start as usize;
            let end = len.map_or(data.len(), |l| start.saturating_add(l as usize));
            data.get(start..end.min(data.len()))
                .map(<[u8]>::to_vec)
                .unwrap_or_default()
        }
    }))
}

/// The `BADURL` response-code text of `url` (RFC 4469 §6:
/// `url-resp-text`, no `]`, no controls), at most 200 bytes.
pub(crate) fn resp_text(url: &[u8]) -> String {
    url.iter()
        .filter(|&&b| (0x21..0x7f).contains(&b) && b != b']' && b != b'\\')
        .take(200)
        .map(|&b| char::from(b))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_of_rfc5092_and_imaptest() {
        let u = parse(
            b"/INBOX;UIDVALIDITY=385759045/;UID=20/;SECTION=1.MIME",
            "a@b",
        )
        .unwrap();
        assert_eq!(u.mailbox, "INBOX");
        assert_eq!(u.uid_validity, Some(385_759_045));
        assert_eq!(u.uid.get(), 20);
        assert!(matches!(u.section, Some(Section::Mime(_))));
        let u = parse(
            b"/box%3Bx/sub/;uid=3/;section=header.fields%20(subject)/;partial=100000.1",
            "a@b",
        )
        .unwrap();
        assert_eq!(u.mailbox, "box;x/sub");
        assert!(matches!(u.section, Some(Section::HeaderFields(None, _))));
        assert_eq!(u.partial, Some((100_000, Some(1))));
        let u = parse(b"imap://A%40B@host/Drafts/;UID=1", "a@b").unwrap();
        assert_eq!(u.mailbox, "Drafts");
    }

    #[test]
    fn bad_urls_are_refused() {
        for url in [
            "imap://other@host/INBOX/;UID=1",
            "INBOX/;UID=1",
            "/INBOX",
            "/INBOX/;UID=0",
            "/INBOX/;UID=99999999999",
            "/INBOX/;UID=1/;SECTION=99999999999999",
            "/INBOX/;UID=1/;SECTION=1]x",
            "/INBOX/;UID=1/;URLAUTH=anonymous",
            "/INBOX/;UID=1;URLAUTH=anonymous:internal",
            "/INBOX;FOO=1/;UID=1",
            "/INBOX/;UID=1/;PARTIAL=x",
            "/%zz/;UID=1",
            "/;UID=1",
        ] {
            assert!(parse(url.as_bytes(), "a@b").is_err(), "{url}");
        }
        assert_eq!(resp_text(b"/a]b\r\n c"), "/abc");
    }
}
