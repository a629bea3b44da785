//! Text that crossed a trust boundary: what counts as a control character,
//! and how such text is shown on a terminal.
//!
//! Strings a mail user or a sender chose (certificate descriptions and
//! subjects, addresses, mailbox and list names, error messages relayed
//! from the server) reach an operator's terminal through the CLI. A raw
//! ESC there starts an escape sequence (colours, cursor moves, a window
//! title, on some terminals even clipboard writes), a CR overwrites the
//! line, an LF fakes a table row, and a bidi override (U+202E) makes
//! `evil\u{202e}gpj.exe` read as `evilexe.jpg`. One predicate,
//! [`is_control`], decides which characters are dangerous; every printer
//! goes through [`escape`] (or [`escape_json`] for `--json`), and the
//! places that refuse such text at input (certificate descriptions) ask
//! the same predicate, so what is refused and what is escaped never drift
//! apart.

use std::borrow::Cow;
use std::fmt::Write as _;

/// C0 controls (including TAB, CR, LF, ESC, BEL, NUL), DEL, C1 controls
/// (U+0080–U+009F: U+009B is a one-character CSI on terminals that honour
/// 8-bit controls) and the Unicode bidi controls (embeddings, overrides
/// and isolates U+202A–U+202E, U+2066–U+2069, and the marks U+200E,
/// U+200F, U+061C), and the line and paragraph separators U+2028/U+2029.
pub fn is_control(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `s` as it can be printed on a terminal: every [`is_control`]
/// character as a visible escape (`\e`, `\r`, `\n`, `\t`, `\0`, `\a`,
/// otherwise `\u{202e}`), and a backslash doubled so that an escape in
/// the output always means the character, never text that looked like it.
/// Borrowed when nothing needed escaping (the common case).
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c == '\\' || is_control(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\u{1b}' => out.push_str("\\e"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            '\u{7}' => out.push_str("\\a"),
            c if is_control(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A JSON document written by `serde_json` made safe for a terminal
/// without changing what it means: serde writes C0 controls inside
/// strings as `\u00XX`, but DEL, C1 and the bidi controls pass through
/// raw; they are written as `\uXXXX` too. Outside strings the grammar
/// allows only the whitespace LF, CR, TAB (the layout of pretty output,
/// left alone) and no other such character, so rewriting the rest
/// anywhere in the text is the same as rewriting them in the strings,
/// and a JSON reader decodes exactly the value it decoded before.
pub fn escape_json(json: &str) -> Cow<'_, str> {
    let rewrite = |c: char| is_control(c) && !matches!(c, '\n' | '\r' | '\t');
    if !json.chars().any(rewrite) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if rewrite(c) {
            // why one \uXXXX suffices: every is_control char is in the BMP.
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_controls_become_visible() {
        let hostile = "\u{1b}]0;pwned\u{7}\r\nfake row\u{1b}[31m";
        let shown = escape(hostile);
        assert_eq!(shown, "\\e]0;pwned\\a\\r\\nfake row\\e[31m");
        assert!(!shown.chars().any(is_control));
        assert_eq!(escape("evil\u{202e}gpj.exe"), "evil\\u{202e}gpj.exe");
        assert_eq!(escape("\u{9b}31m\u{7f}"), "\\u{9b}31m\\u{7f}");
        assert_eq!(escape("a\\e"), "a\\\\e");
        assert!(matches!(escape("Grüße ✓"), Cow::Borrowed(_)));
    }

    #[test]
    fn json_stays_json_with_the_same_value() {
        let value = serde_json::json!({ "d": "x\u{202e}y\u{9b}z\u{1b}" });
        let text = serde_json::to_string_pretty(&value).unwrap_or_default();
        let safe = escape_json(&text);
        assert!(!safe.chars().any(|c| is_control(c) && c != '\n'), "{safe}");
        assert_eq!(safe.lines().count(), text.lines().count(), "layout kept");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap_or_default();
        assert_eq!(back, value);
    }
}
