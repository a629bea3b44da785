use proptest::prelude::*;

use super::*;

const MESSAGE: &[u8] = b"From: a@example.net\r\n\
To: b@example.org\r\n\
Subject: parts\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
--outer\r\n\
Content-Type: multipart/alternative; boundary=\"alt\"\r\n\
\r\n\
--alt\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Gr=FC=DFe, caf=E9 =3D soft=\r\n\
break.\r\n\
--alt\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p>Hi</p>\r\n\
--alt--\r\n\
--outer\r\n\
Content-Type: application/octet-stream; name=\"b.bin\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
AAECA/8=\r\n\
--outer\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
From: c@example.net\r\n\
Subject: inner\r\n\
Content-Type: text/plain\r\n\
\r\n\
Inner body.\r\n\
--outer--\r\n";

fn ids_of(kind: &str) -> Vec<u32> {
    let parser = MessageParser::default();
    let msg = crate::mime::parse(&parser, MESSAGE).unwrap();
    (0..u32::try_from(msg.parts.len()).unwrap())
        .filter(|&i| {
            let p = msg.part(i).unwrap();
            match kind {
                "text" => matches!(p.body, PartType::Text(_)),
                "html" => matches!(p.body, PartType::Html(_)),
                "binary" => matches!(p.body, PartType::Binary(_)),
                "message" => matches!(p.body, PartType::Message(_)),
                _ => matches!(p.body, PartType::Multipart(_)),
            }
        })
        .collect()
}

#[test]
fn parts_decode_to_their_octets_rfc8621_4_1_4() {
    let text = ids_of("text");
    // The QP text part keeps its charset's octets (no UTF-8 conversion)
    // and loses its soft line break; the CRLF before a boundary is the
    // boundary's (RFC 2046 §5.1.1).
    assert_eq!(
        resolve(MESSAGE, &[text[0]]).unwrap(),
        b"Gr\xfc\xdfe, caf\xe9 = softbreak.".to_vec()
    );
    assert_eq!(resolve(MESSAGE, &ids_of("html")).unwrap(), b"<p>Hi</p>");
    assert_eq!(
        resolve(MESSAGE, &ids_of("binary")).unwrap(),
        vec![0, 1, 2, 3, 255]
    );
    let inner = resolve(MESSAGE, &ids_of("message")).unwrap();
    assert!(inner.starts_with(b"From: c@example.net\r\n"), "{inner:?}");
    assert!(inner.ends_with(b"Inner body."), "{inner:?}");
    // One level down: the root of the forwarded message is its only part.
    let path = [ids_of("message")[0], 0];
    assert_eq!(resolve(MESSAGE, &path).unwrap(), b"Inner body.");
}

#[test]
fn multiparts_missing_parts_and_long_paths_have_no_blob() {
    for id in ids_of("multipart") {
        assert_eq!(resolve(MESSAGE, &[id]), None, "multipart {id}");
    }
    assert_eq!(resolve(MESSAGE, &[99]), None);
    assert_eq!(resolve(MESSAGE, &[u32::MAX]), None);
    assert_eq!(resolve(MESSAGE, &[]), None);
    assert_eq!(resolve(MESSAGE, &[ids_of("message")[0], 7]), None);
    assert_eq!(resolve(MESSAGE, &[0; MAX_PATH + 1]), None);
    assert_eq!(resolve(b"", &[0]), None);
}

#[test]
fn ids_of_other_accounts_and_garbage_parse_as_nothing() {
    let me = AccountId(3);
    let hash = BlobHash::of(b"x");
    let good = PartBlob {
        account: me,
        origin: Origin::Email {
            email: 12,
            blob: hash,
            decrypted: false,
        },
        path: vec![4, 1],
    };
    let id = good.id();
    assert_eq!(id, format!("p3-12-{hash}-4.1"));
    assert_eq!(PartBlob::parse(&id, me), Some(good.clone()));
    assert_eq!(PartBlob::parse(&id, AccountId(4)), None);
    let read = format!("r3-12-{hash}-4.1");
    let parsed = PartBlob::parse(&read, me).unwrap();
    assert!(matches!(
        parsed.origin,
        Origin::Email {
            decrypted: true,
            ..
        }
    ));
    assert_eq!(parsed.id(), read);
    let long = format!("p3-12-{hash}-{}", ["1"; MAX_PATH + 1].join("."));
    for bad in [
        String::new(),
        "p".into(),
        "p3".into(),
        format!("p3-12-{hash}"),
        format!("p3-12-{hash}-"),
        format!("p3-12-{hash}-1..2"),
        format!("p3-12-{hash}-+1"),
        format!("p3-+12-{hash}-1"),
        format!("p3-12-{hash}-1-2"),
        format!("p3-12-{hash}x-1"),
        format!("x3-12-{hash}-1"),
        format!("q3-12-{hash}-1"),
        format!("p3-12-{hash}-99999999999999999999999"),
        format!("é3-12-{hash}-1"),
        long,
        hash.to_string(),
    ] {
        assert_eq!(PartBlob::parse(&bad, me), None, "{bad}");
    }
    assert_eq!(good.child(7).unwrap().path, vec![4, 1, 7]);
    let deep = PartBlob {
        path: vec![0; MAX_PATH],
        ..good
    };
    assert_eq!(deep.child(0), None);
}

proptest! {
    #[test]
    fn ids_round_trip(
        account in any::<u32>(),
        email in any::<u64>(),
        bytes in any::<[u8; 32]>(),
        upload in any::<bool>(),
        decrypted in any::<bool>(),
        path in proptest::collection::vec(any::<u32>(), 1..=MAX_PATH),
    ) {
        let origin = if upload {
            Origin::Upload(BlobHash(bytes))
        } else {
            Origin::Email { email, blob: BlobHash(bytes), decrypted }
        };
        let part = PartBlob { account: AccountId(account), origin, path };
        let id = part.id();
        prop_assert!(id.len() <= 255, "{}", id);
        prop_assert_eq!(PartBlob::parse(&id, AccountId(account)), Some(part));
    }

    #[test]
    fn resolving_garbage_never_panics(
        raw in proptest::collection::vec(any::<u8>(), 0..400),
        path in proptest::collection::vec(0u32..6, 0..4),
    ) {
        let _ = resolve(&raw, &path);
    }
}

#[test]
fn an_encoded_rfc822_part_is_its_decoded_message() {
    use base64::Engine as _;
    let inner = b"Subject: inner\r\nContent-Type: text/plain\r\n\r\nDeep.\r\n";
    let encoded = base64::engine::general_purpose::STANDARD.encode(inner);
    let raw = format!(
        "Subject: outer\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
         Content-Type: text/plain\r\n\r\nHi\r\n--b\r\nContent-Type: message/rfc822\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n--b--\r\n"
    );
    let parser = MessageParser::default();
    let msg = crate::mime::parse(&parser, raw.as_bytes()).unwrap();
    let at = (0..u32::try_from(msg.parts.len()).unwrap())
        .find(|&i| matches!(msg.part(i).unwrap().body, PartType::Message(_)))
        .unwrap();
    assert_eq!(resolve(raw.as_bytes(), &[at]).unwrap(), inner.to_vec());
    assert_eq!(resolve(raw.as_bytes(), &[at, 0]).unwrap(), b"Deep.\r\n");
}

#[test]
fn a_multipart_at_the_depth_limit_is_one_opaque_blob_and_nothing_below() {
    let mut raw = String::from("Subject: deep\r\n");
    for level in 0..=MAX_DEPTH + 1 {
        raw.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=b{level}\r\n\r\n--b{level}\r\n"
        ));
    }
    raw.push_str("Content-Type: text/plain\r\n\r\nbottom\r\n");
    for level in (0..=MAX_DEPTH + 1).rev() {
        raw.push_str(&format!("--b{level}--\r\n"));
    }
    let parser = MessageParser::default();
    let msg = crate::mime::parse(&parser, raw.as_bytes()).unwrap();
    let depths = crate::mime::part_depths(&msg);
    let at = |d: usize| u32::try_from(depths.iter().position(|&x| x == d).unwrap()).unwrap();
    let cut = at(MAX_DEPTH);
    let blob = resolve(raw.as_bytes(), &[cut]).unwrap();
    assert!(
        blob.starts_with(format!("--b{MAX_DEPTH}").as_bytes()),
        "{blob:?}"
    );
    assert_eq!(resolve(raw.as_bytes(), &[at(MAX_DEPTH - 1)]), None);
    assert_eq!(resolve(raw.as_bytes(), &[at(MAX_DEPTH + 1)]), None);
    assert_eq!(resolve(raw.as_bytes(), &[at(MAX_DEPTH + 2)]), None);
}
