use imap_next::imap_types::status::StatusDataItemName as S;
use proptest::prelude::*;

use super::{encode, parse, ListCommand, ListSyntaxError as E, Returns, Selection};

fn p(line: &str) -> Result<ListCommand, E> {
    parse(format!("{line}\r\n").as_bytes())
}

#[test]
fn rfc5258_section_3_forms() {
    let c = p(r#"LIST (SUBSCRIBED RECURSIVEMATCH) "" ("a" b/% {3}
c/*) RETURN (CHILDREN STATUS (MESSAGES size))"#)
    .unwrap();
    let select = c.select.unwrap();
    assert!(select.subscribed && select.recursive_match && !select.remote);
    assert_eq!(c.reference, b"");
    assert_eq!(
        c.patterns,
        vec![b"a".to_vec(), b"b/%".to_vec(), b"c/*".to_vec()]
    );
    let r = c.returns.unwrap();
    assert!(r.children && !r.subscribed);
    assert_eq!(r.status, Some(vec![S::Messages, S::Size]));
    let plain = p(r#"list "" *"#).unwrap();
    assert!(!plain.is_extended());
    assert!(p("LIST () \"\" x RETURN ()").unwrap().is_extended());
    assert!(
        p("LIST (special-use) \"\" *")
            .unwrap()
            .select
            .unwrap()
            .special_use
    );
}

#[test]
fn refusals_name_the_problem() {
    assert_eq!(
        p(r#"LIST (imaptest) "" """#),
        Err(E::UnknownSelection("imaptest".into()))
    );
    assert_eq!(
        p(r#"LIST (recursivematch) "" """#),
        Err(E::LoneRecursiveMatch)
    );
    assert_eq!(
        p(r#"LIST (recursivematch remote) "" """#),
        Err(E::LoneRecursiveMatch)
    );
    assert_eq!(
        p(r#"LIST "" "" RETURN (imaptest)"#),
        Err(E::UnknownReturn("imaptest".into()))
    );
    assert_eq!(
        p(r#"LIST "" * RETURN (CHILDREN children)"#),
        Err(E::Repeated("CHILDREN"))
    );
    assert_eq!(
        p(r#"LIST "" * RETURN (STATUS (MESSAGES) STATUS (UNSEEN))"#),
        Err(E::Repeated("STATUS"))
    );
    assert_eq!(
        p(r#"LIST "" * RETURN (STATUS (MESSAGES BOGUS))"#),
        Err(E::UnknownStatus("BOGUS".into()))
    );
    assert!(matches!(
        p(r#"LIST "" * RETURN (STATUS ())"#),
        Err(E::Expected { .. })
    ));
    assert!(matches!(p(r#"LIST "" ()"#), Err(E::Expected { .. })));
    assert!(matches!(p(r#"LIST "" * "#), Err(E::Expected { .. })));
    assert!(matches!(p("LIST \"\" {99}"), Err(E::Expected { .. })));
    assert_eq!(p("SELECT INBOX"), Err(E::NotList));
    let many = vec!["x"; super::MAX_PATTERNS + 1].join(" ");
    assert_eq!(p(&format!("LIST \"\" ({many})")), Err(E::TooManyPatterns));
    let long = "*".repeat(super::MAX_PATTERN_BYTES + 1);
    assert_eq!(p(&format!("LIST \"\" {long}")), Err(E::PatternTooLong));
}

fn command() -> impl Strategy<Value = ListCommand> {
    let bytes = || proptest::collection::vec(any::<u8>(), 0..12);
    let select = proptest::option::of((any::<[bool; 4]>()).prop_map(|[a, b, c, d]| Selection {
        subscribed: a,
        remote: b,
        // RECURSIVEMATCH alone is refused by design (RFC 5258 §3).
        recursive_match: c && (a || d),
        special_use: d,
    }));
    let items = proptest::sample::subsequence(
        vec![
            S::Messages,
            S::Recent,
            S::UidNext,
            S::UidValidity,
            S::Unseen,
            S::Deleted,
            S::DeletedStorage,
            S::Size,
            S::HighestModSeq,
        ],
        1..=9,
    );
    let returns = proptest::option::of((any::<[bool; 3]>(), proptest::option::of(items)).prop_map(
        |([a, b, c], status)| Returns {
            subscribed: a,
            children: b,
            special_use: c,
            status,
        },
    ));
    (
        select,
        bytes(),
        proptest::collection::vec(bytes(), 1..4),
        any::<bool>(),
        returns,
    )
        .prop_map(|(select, reference, patterns, list, returns)| ListCommand {
            select,
            reference,
            pattern_list: list || patterns.len() > 1,
            patterns,
            returns,
        })
}

proptest! {
    #[test]
    fn round_trip(cmd in command()) {
        prop_assert_eq!(parse(&encode(&cmd)), Ok(cmd));
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut input = b"LIST ".to_vec();
        input.extend_from_slice(&bytes);
        let _ = parse(&input);
    }
}
