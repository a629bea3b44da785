#![allow(clippy::unwrap_used)]

use std::num::NonZeroU32;

use super::{decode, decoded_size, item, target, BinaryError, Cte, Target};
use crate::imap::mime;

fn plain(cte: Cte, body: &[u8]) -> Target<'_> {
    Target {
        head: Vec::new(),
        body,
        cte,
    }
}

fn all(cte: Cte, body: &[u8]) -> Vec<u8> {
    decode(&plain(cte, body), 0, None)
}

fn path(p: &[u32]) -> Vec<NonZeroU32> {
    p.iter().map(|&n| NonZeroU32::new(n).unwrap()).collect()
}

/// The part at `p` of `raw`, decoded whole.
fn fetch(raw: &[u8], p: &[u32]) -> Result<Option<Vec<u8>>, BinaryError> {
    let msg = mime::parse(raw, true);
    let t = target(msg.as_ref(), raw, &path(p))?;
    Ok(t.map(|t| decode(&t, 0, None)))
}

const MIXED: &[u8] = b"From: a@b\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\npre\r\n\
--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\naGVs\r\nbG8=\r\n\
--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: Quoted-Printable\r\n\r\na=3Db=\r\nc  \r\nd\r\n\
--b\r\nContent-Type: application/x\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n\
--b\r\nContent-Type: multipart/alternative; boundary=\"c\"\r\n\r\n--c\r\n\r\ninner\r\n--c--\r\n\
--b--\r\n";

#[test]
fn cte_names() {
    assert_eq!(Cte::of(None), Ok(Cte::Identity));
    assert_eq!(Cte::of(Some(" BASE64 ")), Ok(Cte::Base64));
    assert_eq!(Cte::of(Some("8bit")), Ok(Cte::Identity));
    assert_eq!(Cte::of(Some("Binary")), Ok(Cte::Identity));
    assert_eq!(Cte::of(Some("quoted-printable")), Ok(Cte::QuotedPrintable));
    assert_eq!(
        Cte::of(Some("x-uuencode")),
        Err(BinaryError::UnknownCte("x-uuencode".into()))
    );
}

#[test]
fn base64_skips_foreign_characters_and_stops_at_padding() {
    assert_eq!(
        all(
            Cte::Base64,
            b"  aGVs    \r\n bG8g  \r\n d29y\t\r\nbGQ= \r\n"
        ),
        b"hello world"
    );
    assert_eq!(all(Cte::Base64, b"AAEC/w=="), [0, 1, 2, 255]);
    assert_eq!(all(Cte::Base64, b"YWI"), b"ab");
    assert_eq!(all(Cte::Base64, b"YQ=garbage"), b"a");
    assert_eq!(all(Cte::Base64, b"!!!***\x00\xff"), b"");
    // One lone character carries no whole byte.
    assert_eq!(all(Cte::Base64, b"YWJjZ"), b"abc");
}

#[test]
fn quoted_printable_rfc2045_rules() {
    let qp =
        b"hello  \r\nbar=\r\n\r\nfoo\t=\r\nbar\r\nfoo\t \t= \r\n=62\r\nfoo = \t\r\nbar\r\nfoo_bar";
    assert_eq!(
        all(Cte::QuotedPrintable, qp),
        b"hello\r\nbar\r\nfoo\tbar\r\nfoo\t \tb\r\nfoo bar\r\nfoo_bar"
    );
    // Invalid escapes are kept as they are; lowercase hex is accepted.
    assert_eq!(all(Cte::QuotedPrintable, b"a=zzb=4"), b"a=zzb=4");
    assert_eq!(all(Cte::QuotedPrintable, b"=e9=00=FF"), [0xe9, 0, 0xff]);
    // A bare LF line end stays a bare LF.
    assert_eq!(all(Cte::QuotedPrintable, b"a\nb=\n"), b"a\nb");
    assert_eq!(all(Cte::QuotedPrintable, b"="), b"");
}

#[test]
fn partial_decodes_only_the_window() {
    let t = plain(Cte::Base64, b"YWJjZGVmZw1oaWprbA0KbW5vCnBxcnN0dXZxeHl6");
    assert_eq!(decode(&t, 0, Some(7)), b"abcdefg");
    assert_eq!(decode(&t, 10, Some(10)), b"jkl\r\nmno\np");
    assert_eq!(decode(&t, 15, Some(100)), b"mno\npqrstuvqxyz");
    assert_eq!(decode(&t, 1000, Some(10)), b"");
    assert_eq!(decode(&t, 0, Some(0)), b"");
    assert_eq!(decoded_size(&t), 30);
    let id = plain(Cte::Identity, b"0123456789");
    assert_eq!(decode(&id, 8, Some(5)), b"89");
    assert_eq!(decoded_size(&id), 10);
}

#[test]
fn sections_of_a_multipart_message() {
    assert_eq!(fetch(MIXED, &[1]).unwrap().unwrap(), b"hello");
    assert_eq!(fetch(MIXED, &[2]).unwrap().unwrap(), b"a=bc\r\nd");
    assert_eq!(
        fetch(MIXED, &[3]),
        Err(BinaryError::UnknownCte("x-uuencode".into()))
    );
    assert_eq!(fetch(MIXED, &[4]), Err(BinaryError::NotLeaf("4".into())));
    assert_eq!(fetch(MIXED, &[4, 1]).unwrap().unwrap(), b"inner");
    assert_eq!(fetch(MIXED, &[9]), Ok(None));
    assert_eq!(fetch(MIXED, &[4_294_967_295]), Ok(None));
    assert_eq!(fetch(MIXED, &[]).unwrap().unwrap(), MIXED);
}

#[test]
fn sections_of_a_flat_message() {
    let raw = b"Subject: x\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEA\r\n";
    assert_eq!(fetch(raw, &[1]).unwrap().unwrap(), [0, 1, 0]);
    assert_eq!(fetch(raw, &[1; 12]).unwrap().unwrap(), [0, 1, 0]);
    assert_eq!(fetch(raw, &[2]), Ok(None));
    // The whole message: the header says binary, the body is decoded.
    assert_eq!(
        fetch(raw, &[]).unwrap().unwrap(),
        b"Subject: x\r\nContent-Transfer-Encoding: binary\r\n\r\n\0\x01\0"
    );
    let msg = mime::parse(raw, true);
    let t = target(msg.as_ref(), raw, &[]).unwrap().unwrap();
    assert_eq!(decoded_size(&t), 52);
    // Unparsed: only the whole message, as stored.
    assert_eq!(target(None, raw, &path(&[1])), Ok(None));
}

#[test]
fn message_rfc822_part_is_served_as_stored() {
    let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\nbody\r\n--b--\r\n";
    assert_eq!(
        fetch(raw, &[1]).unwrap().unwrap(),
        b"Subject: in\r\n\r\nbody"
    );
}

#[test]
fn items_pick_literal8_only_for_nul() {
    assert_eq!(
        item(&path(&[1, 2]), None, Some(b"ab")),
        b"BINARY[1.2] {2}\r\nab"
    );
    assert_eq!(
        item(&path(&[5]), Some(0), Some(b"a\0")),
        b"BINARY[5]<0> ~{2}\r\na\0"
    );
    assert_eq!(item(&[], None, None), b"BINARY[] NIL");
}
