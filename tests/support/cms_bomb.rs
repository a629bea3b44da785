//! A sender's CMS envelope built to make a list's key work: 8,000
//! KeyTransRecipientInfos (about 3 MB), half of them naming the list's
//! certificate with garbage keys, as a whole S/MIME message.

use base64::Engine as _;
use der::Encode as _;
use x509_cert::der::DecodePem as _;

use super::pki::KeyPair;

/// A DER TLV with a definite length.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(u8::try_from(len).unwrap());
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | u8::try_from(bytes.len()).unwrap());
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

fn oid(dotted: &str) -> Vec<u8> {
    der::asn1::ObjectIdentifier::new_unwrap(dotted)
        .to_der()
        .unwrap()
}

/// KeyTransRecipientInfo naming `cert` by issuer and serial, with 256
/// bytes of garbage as the encrypted key.
fn ktri(cert: &x509_cert::Certificate, filler: u8) -> Vec<u8> {
    let tbs = &cert.tbs_certificate;
    let rid = tlv(
        0x30,
        &[
            tbs.issuer.to_der().unwrap(),
            tbs.serial_number.to_der().unwrap(),
        ]
        .concat(),
    );
    let alg = tlv(
        0x30,
        &[oid("1.2.840.113549.1.1.1"), vec![0x05, 0x00]].concat(),
    );
    let key = tlv(0x04, &[filler; 256]);
    tlv(0x30, &[vec![0x02, 0x01, 0x00], rid, alg, key].concat())
}

pub fn hostile_envelope(list: &x509_cert::Certificate, other: &x509_cert::Certificate) -> Vec<u8> {
    let mut infos = Vec::new();
    for i in 0..4000u32 {
        infos.extend(ktri(list, u8::try_from(i % 251).unwrap()));
        infos.extend(ktri(other, 7));
    }
    let aes256_cbc = tlv(
        0x30,
        &[oid("2.16.840.1.101.3.4.1.42"), tlv(0x04, &[1; 16])].concat(),
    );
    let eci = tlv(
        0x30,
        &[oid("1.2.840.113549.1.7.1"), aes256_cbc, tlv(0x80, &[9; 64])].concat(),
    );
    let enveloped = tlv(
        0x30,
        &[vec![0x02, 0x01, 0x00], tlv(0x31, &infos), eci].concat(),
    );
    tlv(
        0x30,
        &[oid("1.2.840.113549.1.7.3"), tlv(0xa0, &enveloped)].concat(),
    )
}

/// The S/MIME message (headers and base64 body, CRLF) from x@example.net
/// to `to`, carrying [`hostile_envelope`] for `list` and `other`.
pub fn hostile_message(to: &str, list: &KeyPair, other: &KeyPair) -> String {
    let cert = |k: &KeyPair| x509_cert::Certificate::from_pem(k.cert_pem()).unwrap();
    let cms = hostile_envelope(&cert(list), &cert(other));
    assert!(cms.len() > 2_500_000, "{}", cms.len());
    let b64 = base64::engine::general_purpose::STANDARD.encode(&cms);
    let mut message = format!(
        "From: x@example.net\r\nTo: {to}\r\nSubject: many recipients\r\n\
         MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n",
    );
    for line in b64.as_bytes().chunks(76) {
        message.push_str(std::str::from_utf8(line).unwrap());
        message.push_str("\r\n");
    }
    message
}
