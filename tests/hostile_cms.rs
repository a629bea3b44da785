//! A sender's CMS envelope built to make a list's key work: 8,000
//! RecipientInfos (about 3 MB), half of them naming the list's certificate
//! with garbage keys. Parsing is linear and the list key is tried once,
//! so the real server answers within the sender's patience and the
//! members get the message intact (it is not decryptable by the list).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use base64::Engine as _;
use der::Encode as _;
use x509_cert::der::DecodePem as _;

use support::pki::pair;
use support::server::Server;

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

fn hostile_envelope(list: &x509_cert::Certificate, other: &x509_cert::Certificate) -> Vec<u8> {
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

#[test]
fn eight_thousand_recipient_infos_do_not_hold_the_list() {
    let server = Server::start();
    let team = pair("team@example.org", 2048);
    let other = pair("other@example.org", 2048);
    server.ok(&["account", "add", "bob@example.org"]);
    server.list_with_key("team@example.org", &["bob@example.org"], &team);
    let cert = |k: &support::pki::KeyPair| x509_cert::Certificate::from_pem(k.cert_pem()).unwrap();
    let cms = hostile_envelope(&cert(&team), &cert(&other));
    assert!(cms.len() > 2_500_000, "{}", cms.len());
    let b64 = base64::engine::general_purpose::STANDARD.encode(&cms);
    let mut message = String::from(
        "From: x@example.net\r\nTo: team@example.org\r\nSubject: many recipients\r\n\
         MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n",
    );
    for line in b64.as_bytes().chunks(76) {
        message.push_str(std::str::from_utf8(line).unwrap());
        message.push_str("\r\n");
    }
    // why the sender's 60 s timeout suffices: the old quadratic parse and
    // 4,000 RSA attempts took over 70 s; a linear parse with one attempt
    // takes well under a second.
    let reply = server.lmtp_send("team@example.org", message.as_bytes());
    assert!(reply.starts_with("250"), "{reply}");
    let inbox = server.inbox("bob@example.org");
    assert_eq!(inbox.len(), 1);
    let body = support::tools::body_of(&inbox[0]);
    assert_eq!(
        support::tools::lf(body),
        support::tools::lf(message.split_once("\r\n\r\n").unwrap().1.as_bytes()),
        "not decryptable by the list: delivered intact"
    );
}
