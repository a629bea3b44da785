//! The notice a list member without a usable certificate receives instead
//! of a message that arrived encrypted to the list (Sympa's
//! `x509-user-cert-missing`). It carries nothing of the original but its
//! Subject and Message-ID.

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
    let domain = list.rsplit_once('@').map_or("localhost", |(_, d)| d);
    let subject = original.subject.as_deref().unwrap_or("(no subject)");
    let message_id = original.message_id.as_deref().unwrap_or("(none)");
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
    if let Some(mid) = &original.message_id {
        fields.push(format!("In-Reply-To: {mid}"));
    }
    let body = template
        .unwrap_or(DEFAULT_TEMPLATE)
        .replace("{list}", list)
        .replace("{member}", member)
        .replace("{subject}", subject)
        .replace("{message_id}", message_id)
        .replace("{marker}", CERT_MISSING);
    let body = crlf(&body);
    let mut raw = fields.join("\r\n").into_bytes();
    raw.extend_from_slice(b"\r\n\r\n");
    raw.extend_from_slice(body.as_bytes());
    raw
}
