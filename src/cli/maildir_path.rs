//! Mailbox names as directory paths for `sealmail export`.
//!
//! The store refuses names that are path steps (see `store::mailbox_name`),
//! but export encodes every name again whatever is stored: data written by
//! older versions may hold `..` or NUL, and what a mail user chose must
//! never decide where an operator's command writes. The encoding:
//!
//! - the name is split at `/` into hierarchy levels; each level becomes
//!   one directory, so `Archive/2024` is `DIR/Archive/2024` and `INBOX`
//!   stays `DIR/INBOX`;
//! - in a level, ASCII letters and digits, space, `-`, `_`, `+`, `,` and
//!   non-ASCII letters and digits are kept; every other character
//!   (`.`, `/`, `\`, `%`, `:`, control characters, symbols, ...) is
//!   written as `%XX` per byte of its UTF-8, upper-case hex;
//! - a level named `cur`, `new` or `tmp` gets its first letter encoded
//!   (`%63ur`), so a child mailbox never lands in a Maildir's own
//!   subdirectories;
//! - an empty level (only in data from older versions) is written `%`.
//!
//! So no level is empty, `.`, `..` or hidden (a dot is always `%2E`), and
//! the mapping is injective: `%` appears only as the start of an escape or
//! alone, so a file name decodes to exactly one mailbox name. A level
//! whose encoding is over 255 bytes (the file-name limit of common file
//! systems) cannot be written and is reported instead.

use std::fmt::Write as _;

/// Longest file name the encoding may produce. why: `NAME_MAX` of ext4,
/// XFS, Btrfs and ZFS.
pub(super) const MAX_FILE_NAME_BYTES: usize = 255;

/// The directory levels (one file name each) for mailbox `name`; an error
/// says which level is too long to be a file name.
pub(super) fn levels(name: &str) -> Result<Vec<String>, String> {
    name.split('/')
        .map(|level| {
            let encoded = encode_level(level);
            if encoded.len() > MAX_FILE_NAME_BYTES {
                Err(format!(
                    "mailbox {name:?} cannot be written: a level would be a {}-byte file name, over {MAX_FILE_NAME_BYTES}; rename the mailbox (IMAP RENAME) and export again",
                    encoded.len()
                ))
            } else {
                Ok(encoded)
            }
        })
        .collect()
}

/// One hierarchy level as a safe file name.
pub(super) fn encode_level(level: &str) -> String {
    if level.is_empty() {
        return "%".into();
    }
    let mut out = String::with_capacity(level.len());
    for (i, c) in level.char_indices() {
        let maildir_dir = i == 0 && matches!(level, "cur" | "new" | "tmp");
        if is_kept(c) && !maildir_dir {
            out.push(c);
        } else {
            let mut utf8 = [0u8; 4];
            for b in c.encode_utf8(&mut utf8).bytes() {
                // why: writing to a String cannot fail.
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// Characters written as they are.
fn is_kept(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_' | '+' | ',')
    } else {
        c.is_alphanumeric()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inverse of [`encode_level`], to prove the encoding injective.
    fn decode_level(file: &str) -> String {
        if file == "%" {
            return String::new();
        }
        let mut bytes = Vec::new();
        let mut rest = file.as_bytes();
        while let Some((&b, tail)) = rest.split_first() {
            if b == b'%' {
                let hex = std::str::from_utf8(&tail[..2]).unwrap();
                bytes.push(u8::from_str_radix(hex, 16).unwrap());
                rest = &tail[2..];
            } else {
                bytes.push(b);
                rest = tail;
            }
        }
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn hostile_names_stay_one_safe_level_each() {
        for (name, want) in [
            ("..", vec!["%2E%2E"]),
            ("../../x", vec!["%2E%2E", "%2E%2E", "x"]),
            ("a/../b", vec!["a", "%2E%2E", "b"]),
            (".hidden", vec!["%2Ehidden"]),
            ("a\\b", vec!["a%5Cb"]),
            ("x\0y", vec!["x%00y"]),
            ("/abs", vec!["%", "abs"]),
            ("a//b", vec!["a", "%", "b"]),
            ("100%", vec!["100%25"]),
            ("INBOX", vec!["INBOX"]),
            ("INBOX/cur/new", vec!["INBOX", "%63ur", "%6Eew"]),
            ("Entwürfe, alt", vec!["Entwürfe, alt"]),
            ("a:2,S", vec!["a%3A2,S"]),
        ] {
            assert_eq!(levels(name).unwrap(), want, "{name:?}");
        }
    }

    #[test]
    fn no_level_is_a_path_step_or_hidden() {
        for name in [
            ".",
            "..",
            "...",
            ".a",
            "a/.",
            "\u{202e}x",
            "\u{85}",
            "~",
            "-",
        ] {
            for level in levels(name).unwrap() {
                assert!(!level.is_empty() && !level.starts_with('.'), "{name:?}");
                assert!(!level.contains(['/', '\\', '\0']), "{name:?}");
                assert!(level.chars().all(|c| !c.is_control()), "{name:?}");
            }
        }
    }

    #[test]
    fn encoding_is_injective() {
        for level in [
            "",
            "%",
            "%25",
            "cur",
            "%63ur",
            "a.b",
            "x\0y",
            "ü€😀",
            "tmp2",
            "a b",
        ] {
            assert_eq!(decode_level(&encode_level(level)), level, "{level:?}");
        }
        assert_ne!(encode_level("%"), encode_level(""));
        assert_ne!(encode_level("cur"), encode_level("%63ur"));
    }

    #[test]
    fn a_level_too_long_for_a_file_name_is_reported() {
        let err = levels(&".".repeat(100)).unwrap_err();
        assert!(err.contains("300-byte") && err.contains("rename"), "{err}");
        assert!(levels(&"a".repeat(255)).is_ok());
    }
}
