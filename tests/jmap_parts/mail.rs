//! The messages the body-part tests deliver, parse and download: a
//! multipart/mixed with every transfer encoding a part may have, and a
//! message forwarding it as a `message/rfc822` attachment.

/// Bytes of the base64 attachment: every octet value once.
pub(crate) fn binary() -> Vec<u8> {
    (0..=255u8).collect()
}

/// The octets of the quoted-printable attachment (ISO-8859-1, with a
/// soft line break and an encoded `=`).
pub(crate) const NOTES: &[u8] = b"Gr\xfc\xdfe aus K\xf6ln = 1 long line joined\r\nsecond line\r\n";

/// A multipart/mixed of a multipart/alternative (quoted-printable text,
/// base64 HTML) and two attachments (base64 binary, quoted-printable).
pub(crate) fn mixed() -> Vec<u8> {
    use base64::Engine as _;
    let b64 = |b: &[u8]| {
        let s = base64::engine::general_purpose::STANDARD.encode(b);
        let lines: Vec<&str> = s
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        lines.join("\r\n")
    };
    let mut m = String::from(
        "From: Carol <carol@example.net>\r\nTo: alice@example.org\r\nSubject: parts\r\n\
         Message-ID: <parts@example.net>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"mix\"\r\n\r\n\
         --mix\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n\
         --alt\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\
         Content-Transfer-Encoding: quoted-printable\r\nContent-Language: de\r\n\r\n\
         Sch=F6ne Gr=FC=DFe =3D soft=\r\n break.\r\n\
         --alt\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n",
    );
    m.push_str(&b64("<p>Schöne Grüße</p>".as_bytes()));
    m.push_str(
        "\r\n--alt--\r\n--mix\r\nContent-Type: application/octet-stream; name=\"all.bin\"\r\n\
         Content-Disposition: attachment; filename=\"all.bin\"\r\n\
         Content-ID: <bin@example.net>\r\nContent-Transfer-Encoding: base64\r\n\r\n",
    );
    m.push_str(&b64(&binary()));
    m.push_str(
        "\r\n--mix\r\nContent-Type: text/plain; charset=iso-8859-1; name=\"notes.txt\"\r\n\
         Content-Disposition: attachment; filename=\"notes.txt\"\r\n\
         Content-Transfer-Encoding: quoted-printable\r\n\r\n\
         Gr=FC=DFe aus K=F6ln =3D 1 long line =\r\njoined\r\nsecond line\r\n\r\n--mix--\r\n",
    );
    m.into_bytes()
}

/// A message forwarding `inner` as a `message/rfc822` attachment.
pub(crate) fn forward(inner: &[u8]) -> Vec<u8> {
    let mut m = b"From: dave@example.net\r\nTo: alice@example.org\r\nSubject: Fwd: parts\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"fwd\"\r\n\r\n\
--fwd\r\nContent-Type: text/plain\r\n\r\nSee below.\r\n\
--fwd\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"parts.eml\"\r\n\r\n"
        .to_vec();
    m.extend_from_slice(inner);
    m.extend_from_slice(b"\r\n--fwd--\r\n");
    m
}
