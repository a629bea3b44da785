//! The rules every mailbox name obeys, checked where a name enters the
//! store ([`MailStore::create_mailbox`](super::MailStore::create_mailbox)
//! and [`rename_mailbox`](super::MailStore::rename_mailbox)), so that IMAP
//! CREATE/RENAME, JMAP Mailbox/set, `sealmail import --mailbox` and the
//! management API all meet the same rules.
//!
//! A name is a path: hierarchy levels separated by `/` (the IMAP
//! hierarchy delimiter, RFC 9051 §5.1.1). Names leave the server as file
//! paths (`sealmail export` writes one Maildir per mailbox), so a level
//! that a file system would read as a path step is refused: `.`, `..`, an
//! empty level (leading, trailing or doubled `/`), and control characters
//! (C0 including NUL, DEL, C1), which also break IMAP quoting and terminals.
//! `*` and `%` are IMAP LIST wildcards and cannot be matched literally.
//! Export encodes names again on its own (`cli::maildir_path`), because
//! data written by older versions may hold names from before these rules.
//!
//! Lookups ([`fold_inbox`]) apply no rules: asking for a name that cannot
//! exist is just "not found", and a mailbox stored by an older version
//! under a name now refused can still be found, renamed and deleted.

use super::error::MailError;

/// Longest name, in bytes of UTF-8. why: a name is part of store keys and
/// of IMAP lines; 1024 bytes is four times the deepest real-world folder
/// paths seen from Thunderbird/Dovecot migrations and keeps an IMAP LIST
/// reply line far below the command-size limits of common clients.
pub(crate) const MAX_NAME_BYTES: usize = 1024;

/// Longest hierarchy level, in bytes of UTF-8. why: 255 bytes is `NAME_MAX`
/// of ext4, XFS, Btrfs and ZFS, the most a single file name can hold, and
/// Maildir-based servers (Dovecot) inherit the same bound, so a mailbox
/// moved from or to them fits.
pub(crate) const MAX_LEVEL_BYTES: usize = 255;

/// How much of a refused name an error message quotes.
const SHOWN_CHARS: usize = 80;

/// Checks a new mailbox name against the rules above and puts `INBOX` in
/// upper case. The error says which rule and what to do instead.
pub(crate) fn normalize_mailbox_name(name: &str) -> Result<String, MailError> {
    check(name).map_err(|reason| MailError::InvalidMailboxName {
        name: shown(name),
        reason,
    })?;
    Ok(fold_inbox(name))
}

/// Which rule `name` breaks, as the reason of an error.
fn check(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty; give the mailbox a name");
    }
    if name.len() > MAX_NAME_BYTES {
        return Err("it is over 1024 bytes; choose a shorter name or a flatter hierarchy");
    }
    if name.chars().any(char::is_control) {
        return Err(
            "it holds a control character (NUL, CR, LF, TAB, DEL, ...); use printable characters only",
        );
    }
    if name.contains(['*', '%']) {
        return Err("`*` and `%` are IMAP wildcards; choose a name without them");
    }
    for level in name.split('/') {
        match level {
            "" => return Err(
                "it has an empty hierarchy level (a leading, trailing or doubled `/`); `/` separates levels, remove the extra one",
            ),
            "." | ".." => return Err(
                "`.` and `..` cannot be hierarchy levels (they would name other directories on disk); choose another name",
            ),
            l if l.len() > MAX_LEVEL_BYTES => return Err(
                "a hierarchy level is over 255 bytes (the most a file name can hold); shorten it or split it with `/`",
            ),
            _ => {}
        }
    }
    Ok(())
}

/// `name` with a first level spelled `inbox` in any case as `INBOX`
/// (RFC 9051 §5.1: INBOX is case-insensitive); no other checks.
pub(crate) fn fold_inbox(name: &str) -> String {
    let (first, rest) = name
        .split_once('/')
        .map_or((name, None), |(f, r)| (f, Some(r)));
    let first = if first.eq_ignore_ascii_case("INBOX") {
        "INBOX"
    } else {
        first
    };
    match rest {
        Some(rest) => format!("{first}/{rest}"),
        None => first.to_string(),
    }
}

/// The start of `name`, for an error message (a refused name may be huge).
fn shown(name: &str) -> String {
    match name.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => format!("{}...", name.get(..cut).unwrap_or_default()),
        None => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_mailbox_name as norm;

    #[test]
    fn good_names_pass_and_inbox_is_folded() {
        assert_eq!(norm("inbox").unwrap(), "INBOX");
        assert_eq!(norm("Inbox/Sub").unwrap(), "INBOX/Sub");
        assert_eq!(norm("Archive/2024").unwrap(), "Archive/2024");
        for good in [
            "...",
            ".hidden",
            "a.b",
            "a\\b",
            "Entwürfe",
            "..x",
            &"a".repeat(255),
        ] {
            assert!(norm(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn path_steps_controls_and_long_names_are_refused() {
        let long_level = "a".repeat(256);
        let long_name = ["b"; 600].join("/");
        for bad in [
            "",
            "/a",
            "/abs",
            "a/",
            "a//b",
            ".",
            "..",
            "../x",
            "../../../../../tmp/x",
            "a/../../b",
            "a/./b",
            "a/..",
            "x\0y",
            "x\ry",
            "x\ny",
            "x\u{7f}",
            "x\u{85}y",
            "a*",
            "a%b",
            &long_level,
            &long_name,
        ] {
            let err = norm(bad).unwrap_err().to_string();
            assert!(err.contains("is not allowed"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn errors_say_what_to_do_and_quote_only_the_start() {
        let err = norm("a/../b").unwrap_err().to_string();
        assert!(
            err.contains("`..`") && err.contains("choose another name"),
            "{err}"
        );
        let err = norm(&format!("{}\0", "x".repeat(500)))
            .unwrap_err()
            .to_string();
        assert!(
            err.len() < 400 && err.contains("control character"),
            "{err}"
        );
    }
}
