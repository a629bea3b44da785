//! Unit and property tests of the pre-scan, the guarded parse and the
//! depth walk.

use mail_parser::{MessageParser, MimeHeaders, PartType};
use proptest::prelude::*;

use super::*;

/// `n` multiparts nested one in the other around one text part.
fn nested_multipart(n: usize) -> Vec<u8> {
    let mut s = String::from("From: a@example.org\r\nSubject: deep\r\n");
    for i in 0..n {
        s.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n"
        ));
    }
    s.push_str("Content-Type: text/plain\r\n\r\nhello\r\n");
    for i in (0..n).rev() {
        s.push_str(&format!("--b{i}--\r\n"));
    }
    s.into_bytes()
}

/// `n` `message/rfc822` parts, each the whole body of the one before.
fn nested_rfc822(n: usize) -> Vec<u8> {
    let mut s = String::from("From: a@example.org\r\nSubject: deep\r\n");
    s.push_str(&"Content-Type: message/rfc822\r\n\r\n".repeat(n));
    s.push_str("Subject: in\r\n\r\nhello\r\n");
    s.into_bytes()
}

fn parser() -> MessageParser {
    MessageParser::default()
}

#[test]
fn containers_counts_what_may_open_one() {
    let text = b"Content-Type: text/plain\r\nCONTENT-TYPE :Application/pdf\n\
        content-type:\tmultipart/mixed; boundary=x\r\nContent-Type: message/rfc822\r\n\
        Content-Type:\r\n multipart/alternative\r\nContent-Type: (c) text/plain\r\n\
        Content-Typo: multipart/mixed\r\nX-Content-Type: multipart/mixed\r\n\
        Content-Type: textual/x\r\nContent-Type: text /plain\r\n";
    // multipart, message, the folded one, the comment and `textual`.
    assert_eq!(containers(text), 5);
    assert_eq!(containers(&nested_multipart(300)), 300);
    // mail-parser reads all of these as Content-Type (the fuzz target
    // found the first); none is a leaf.
    let lenient = b"::Content-Type: multipart/digest; boundary=d\n\
        \t Content - Type\r : multipart/mixed\nContent-Type\r\n: text/plain\n";
    assert_eq!(containers(lenient), 2);
    assert_eq!(containers(b""), 0);
}

#[test]
fn header_end_finds_the_empty_line() {
    assert_eq!(header_end(b"A: b\r\n\r\nbody"), 8);
    assert_eq!(header_end(b"A: b\n\nbody"), 6);
    assert_eq!(header_end(b"\r\nbody"), 2);
    assert_eq!(header_end(b"A: b\r\n"), 6);
    assert_eq!(header_end(b"A: b"), 4);
}

#[test]
fn twenty_thousand_nested_multiparts_parse_opaque() {
    let raw = nested_multipart(20_000);
    let msg = parse(&parser(), &raw).expect("the header parses");
    assert_eq!(msg.parts.len(), 1, "the body is one opaque part");
    let root = msg.root_part();
    let ct = root.content_type().expect("a type");
    assert_eq!(
        (ct.ctype(), ct.subtype()),
        ("application", Some("octet-stream"))
    );
    let body = raw.get(root.offset_body as usize..root.offset_end as usize);
    assert!(body.is_some_and(|b| b.starts_with(b"--b0\r\n") && b.ends_with(b"--b0--\r\n")));
    assert_eq!(msg.subject(), Some("deep"));
    assert_eq!(msg.attachments, vec![0]);
}

#[test]
fn a_rfc822_chain_that_overflows_mail_parser_parses_opaque() {
    // 40,000 levels overflow a 2 MiB stack inside mail-parser (its drop);
    // run on exactly such a thread.
    let worker = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let raw = nested_rfc822(40_000);
            parse(&parser(), &raw).map(|m| (m.parts.len(), nesting(&m)))
        })
        .expect("thread");
    let (parts, n) = worker.join().expect("no overflow").expect("parses");
    assert_eq!(parts, 1);
    assert_eq!(n, Nesting::default());
}

#[test]
fn under_the_limits_the_parts_are_parsed_and_depths_counted() {
    let raw = nested_multipart(100);
    let msg = parse(&parser(), &raw).expect("parses");
    assert_eq!(msg.parts.len(), 101);
    let depths = part_depths(&msg);
    assert_eq!(depths.iter().max(), Some(&100));
    assert_eq!(
        nesting(&msg),
        Nesting {
            multiparts: 100,
            depth: 100
        }
    );
    let chain = nested_rfc822(50);
    let msg = parse(&parser(), &chain).expect("parses");
    assert_eq!(
        nesting(&msg),
        Nesting {
            multiparts: 0,
            depth: 50
        }
    );
}

#[test]
fn parse_headers_spans_the_whole_body() {
    let raw = b"Subject: s\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\nhi\r\n--x--\r\n";
    let msg = parse_headers(&parser(), raw).expect("parses");
    let root = msg.root_part();
    assert_eq!(root.offset_body, 57);
    assert_eq!(root.offset_end as usize, raw.len());
    assert!(matches!(root.body, PartType::Binary(_)));
    assert_eq!(msg.subject(), Some("s"));
}

/// A MIME tree for the property test.
#[derive(Debug, Clone)]
enum Node {
    Leaf(&'static str),
    Multi(Vec<Node>),
    Rfc822(Box<Node>),
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = prop::sample::select(vec![
        "text/plain",
        "text/html",
        "application/pdf",
        "image/png",
        "",
    ])
    .prop_map(Node::Leaf);
    leaf.prop_recursive(6, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Node::Multi),
            inner.prop_map(|n| Node::Rfc822(Box::new(n))),
        ]
    })
}

fn render(node: &Node, next: &mut usize, out: &mut String) {
    match node {
        Node::Leaf("") => out.push_str("\r\nbody\r\n"),
        Node::Leaf(t) => out.push_str(&format!("Content-Type: {t}\r\n\r\nbody\r\n")),
        Node::Multi(children) => {
            *next += 1;
            let b = format!("b{next}");
            out.push_str(&format!(
                "Content-Type: multipart/mixed; boundary={b}\r\n\r\n"
            ));
            for c in children {
                out.push_str(&format!("--{b}\r\n"));
                render(c, next, out);
            }
            out.push_str(&format!("--{b}--\r\n"));
        }
        Node::Rfc822(inner) => {
            out.push_str("Content-Type: message/rfc822\r\n\r\nSubject: in\r\n");
            render(inner, next, out);
        }
    }
}

/// A message: `wrap` multiparts around the tree, cut to `keep` bytes,
/// with bare LF line ends when `lf`.
fn message(tree: &Node, wrap: usize, keep: usize, lf: bool) -> Vec<u8> {
    let mut s = String::from("From: a@example.org\r\n");
    for i in 0..wrap {
        s.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=w{i}\r\n\r\n--w{i}\r\n"
        ));
    }
    render(tree, &mut 0, &mut s);
    for i in (0..wrap).rev() {
        s.push_str(&format!("--w{i}--\r\n"));
    }
    let s = if lf { s.replace("\r\n", "\n") } else { s };
    let mut raw = s.into_bytes();
    raw.truncate(keep.max(1));
    raw
}

/// The case the property test below found: 26 multiparts around two
/// nested `message/rfc822`, cut short. mail-parser trips its own
/// `debug_assert!` on it; `parse` serves the message opaque instead.
#[test]
fn a_message_that_panics_mail_parser_is_served_opaque() {
    let tree = Node::Rfc822(Box::new(Node::Rfc822(Box::new(Node::Leaf(
        "application/pdf",
    )))));
    let full = message(&tree, 26, usize::MAX, false);
    let raw = message(
        &tree,
        26,
        7_741_884_857_697_494_139 % (full.len() + 1),
        false,
    );
    let direct = std::panic::catch_unwind(|| parser().parse(&raw[..]).map(|m| m.parts.len()));
    if cfg!(debug_assertions) {
        assert!(
            direct.is_err(),
            "mail-parser no longer panics here: {direct:?}"
        );
    }
    let msg = parse(&parser(), &raw).expect("the header parses");
    if direct.is_err() {
        assert_eq!(msg.parts.len(), 1);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The pre-scan never counts fewer containers than mail-parser builds,
    /// so a parsed message always stays within the limits; over them the
    /// message is one opaque part.
    #[test]
    fn parse_stays_within_the_limits(
        tree in node(),
        wrap in prop_oneof![0usize..40, 250usize..270],
        keep in any::<usize>(),
        lf in any::<bool>(),
    ) {
        let full = message(&tree, wrap, usize::MAX, lf);
        let raw = message(&tree, wrap, keep % (full.len() + 1), lf);
        let counted = containers(&raw);
        if let Some(msg) = parse(&parser(), &raw) {
            let n = nesting(&msg);
            if counted > MAX_CONTAINERS {
                prop_assert_eq!(msg.parts.len(), 1);
                prop_assert_eq!(n, Nesting::default());
            } else {
                prop_assert!(n.multiparts <= counted, "{n:?} > {counted}");
                prop_assert!(n.depth <= 2 * counted, "{n:?} > 2 * {counted}");
            }
        }
    }

    /// Arbitrary bytes: no panic, and the same bound.
    #[test]
    fn garbage_parses_within_the_limits(raw in prop::collection::vec(any::<u8>(), 0..2048)) {
        let counted = containers(&raw);
        if let Some(msg) = parse(&parser(), &raw) {
            let n = nesting(&msg);
            prop_assert!(n.multiparts <= counted && n.depth <= 2 * counted, "{n:?} {counted}");
        }
        let _ = header_end(&raw);
    }
}
