//! The notice a list member without a usable certificate receives instead
//! of a message that arrived encrypted to the list (Sympa's
//! `x509-user-cert-missing`). It carries nothing of the original but its
//! Subject and Message-ID.

use rand::RngCore as _;

/// The notice's marker, also in an `X-Sealmail-Notice` field for filters.
pub(crate) const CERT_MISSING: &str = "x509-user-cert-missing";

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
    let body = format!(
        "A message was sent encrypted to the list {list}. It was not delivered to you\r\n\
         because you have no usable S/MIME certificate on this server, and an\r\n\
         encrypted message is never stored in clear.\r\n\
         \r\n\
         Subject:    {subject}\r\n\
         Message-ID: {message_id}\r\n\
         \r\n\
         To receive encrypted list mail, upload your certificate: in a JMAP client\r\n\
         (Certificate/set), or ask your mail operator to run\r\n\
         `sealmail cert add {member} YOUR-CERT.pem`.\r\n\
         \r\n\
         ({CERT_MISSING})\r\n"
    );
    let mut raw = fields.join("\r\n").into_bytes();
    raw.extend_from_slice(b"\r\n\r\n");
    raw.extend_from_slice(body.as_bytes());
    raw
}
