//! `SearchSnippet/get` (RFC 8621 §5.1): for each Email asked about, its
//! subject and a piece of its body with the text the filter searched for
//! marked, so that a client can show why a message matched.
//!
//! The terms are those of the filter's `text`, `subject` and `body`
//! conditions, wherever they sit in it except under a `NOT`; `text` and
//! `subject` terms are marked in the subject, `text` and `body` terms in
//! the body. Terms match as `Email/query` matches them: as a substring,
//! case ignored in every script, in the decoded text (RFC 2047 words,
//! transfer encodings, charsets, HTML reduced to text; `mime::search`).
//! Both values are HTML: `&`, `<` and `>` escaped, then each match in
//! `<mark></mark>`. `subject` is null when no term is in it; `preview`
//! is null when no term is in the body, and is at most
//! [`PREVIEW_BYTES`] octets, starting a little before the first match,
//! white space collapsed.
//!
//! The body of an encrypted message is ciphertext: its preview is null,
//! unless server-side reading presents the message decrypted
//! (`email::source`). Another account's ids, and ids of no Email, are in
//! `notFound`; more ids than `maxObjectsInGet` is `requestTooLarge`.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::super::super::call::{parse as parse_args, Call};
use super::super::super::error::Error;
use super::super::super::limits;
use super::super::{find_many, source};
use super::{own_account, Filter, Op, Spec};
use crate::mime::search::{body_text, decode_field, fold};

/// Most octets of a `preview` (RFC 8621 §5.1: "MUST NOT be bigger than
/// 255 octets").
const PREVIEW_BYTES: usize = 255;

/// Characters of context kept before the first match in a preview.
const LEAD_CHARS: usize = 40;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Args {
    account_id: String,
    email_ids: Vec<String>,
}

/// The folded terms to mark in the subject and in the body.
#[derive(Debug, Default, Clone)]
struct Terms {
    subject: Vec<String>,
    body: Vec<String>,
}

impl Terms {
    fn of(filter: Option<&Filter>) -> Terms {
        let mut t = Terms::default();
        if let Some(f) = filter {
            t.collect(f);
        }
        t
    }

    fn collect(&mut self, f: &Filter) {
        match f {
            Filter::Operator {
                operator: Op::Not, ..
            } => {}
            Filter::Operator { conditions, .. } => conditions.iter().for_each(|c| self.collect(c)),
            Filter::Condition(c) => {
                let push = |to: &mut Vec<String>, term: &Option<String>| {
                    if let Some(t) = term.as_deref().map(fold).filter(|t| !t.is_empty()) {
                        to.push(t);
                    }
                };
                push(&mut self.subject, &c.text);
                push(&mut self.subject, &c.subject);
                push(&mut self.body, &c.text);
                push(&mut self.body, &c.body);
            }
        }
    }
}

/// `SearchSnippet/get`.
pub(crate) async fn snippet_get(call: &mut Call, args: Map<String, Value>) -> Result<Value, Error> {
    own_account(call, &args)?;
    let spec = Spec::parse(&args)?;
    let args: Args = parse_args(args)?;
    let account_id = call.check_account(&args.account_id)?;
    if args.email_ids.len() > limits::OBJECTS_IN_GET {
        return Err(Error::RequestTooLarge(format!(
            "at most {} emailIds per SearchSnippet/get",
            limits::OBJECTS_IN_GET
        )));
    }
    let terms = Terms::of(spec.filter.as_ref());
    let keys = call.reading.clone();
    let wanted = args.email_ids;
    let (list, not_found) = call
        .blocking(move |s, id| {
            let (mut list, mut missing) = (Vec::new(), Vec::new());
            for (e, m) in wanted.iter().zip(find_many(s, id, &wanted)?) {
                let Some(m) = m else {
                    missing.push(e.clone());
                    continue;
                };
                let subject = m
                    .headers
                    .subject
                    .as_deref()
                    .and_then(|raw| mark(&decode_field(raw.as_bytes()), &terms.subject, None));
                let readable = !m.encrypted || keys.is_some();
                let preview = if terms.body.is_empty() || !readable {
                    None
                } else {
                    // why the record as served: ciphertext no held key
                    // opens has no preview.
                    source::presented(s, id, m.clone(), keys.as_deref())?
                        .filter(|(shown, _)| !shown.encrypted)
                        .and_then(|(_, raw)| preview(&body_text(&raw), &terms.body))
                };
                list.push(json!({ "emailId": e, "subject": subject, "preview": preview }));
            }
            Ok((list, missing))
        })
        .await?;
    // why null: RFC 8621 §5.1 "or null if all ids were found".
    let not_found = (!not_found.is_empty()).then_some(not_found);
    Ok(json!({
        "accountId": account_id,
        "list": list,
        "notFound": not_found,
    }))
}

/// The part of `body` around the first term, marked; None without one.
fn preview(body: &str, terms: &[String]) -> Option<String> {
    let text = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let folded = fold(&text);
    let first = terms.iter().filter_map(|t| folded.find(t.as_str())).min()?;
    let at = original_offset(&text, first);
    let lead = text
        .get(..at)
        .unwrap_or_default()
        .char_indices()
        .rev()
        .nth(LEAD_CHARS.saturating_sub(1))
        .map_or(0, |(i, _)| i);
    // why a whole word: a cut word at the start reads as a typo.
    let start = match text.get(lead..at).and_then(|s| s.find(' ')) {
        Some(sp) if lead > 0 => lead + sp + 1,
        _ => lead,
    };
    // why 4×: escaping makes the window shrink at most by that much
    // before the byte limit cuts it.
    let end = floor_char(&text, start.saturating_add(PREVIEW_BYTES * 4));
    let window = text.get(start..end)?;
    mark(window, terms, Some(PREVIEW_BYTES))
}

/// The largest char boundary of `s` at or below `i`.
fn floor_char(s: &str, i: usize) -> usize {
    let mut i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The byte offset in `text` of the character whose folded form holds
/// byte `folded_at` of `fold(text)`.
fn original_offset(text: &str, folded_at: usize) -> usize {
    let mut acc = 0usize;
    for (i, c) in text.char_indices() {
        acc += c.to_lowercase().map(char::len_utf8).sum::<usize>();
        if acc > folded_at {
            return i;
        }
    }
    text.len()
}

/// Where the terms occur in `text`: merged byte ranges, in order.
fn matches(text: &str, terms: &[String]) -> Vec<(usize, usize)> {
    // Per character of `text`: where its folded form starts and ends.
    let mut spans: Vec<(usize, usize, usize, usize)> = Vec::new();
    let mut folded = String::new();
    for (i, c) in text.char_indices() {
        let from = folded.len();
        folded.extend(c.to_lowercase());
        spans.push((from, folded.len(), i, i + c.len_utf8()));
    }
    let mut found: Vec<(usize, usize)> = Vec::new();
    for t in terms {
        for (fs, _) in folded.match_indices(t.as_str()) {
            let fe = fs + t.len();
            let first = spans.partition_point(|s| s.1 <= fs);
            let last = spans.partition_point(|s| s.0 < fe);
            if let (Some(a), Some(b)) = (
                spans.get(first),
                last.checked_sub(1).and_then(|l| spans.get(l)),
            ) {
                found.push((a.2, b.3));
            }
        }
    }
    found.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (s, e) in found {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

fn escape(c: char) -> &'static str {
    match c {
        '&' => "&amp;",
        '<' => "&lt;",
        '>' => "&gt;",
        _ => "",
    }
}

/// `text` HTML-escaped with each term in `<mark>`, within `limit` octets
/// (whole characters, every mark closed); None when no term occurs.
fn mark(text: &str, terms: &[String], limit: Option<usize>) -> Option<String> {
    const OPEN: &str = "<mark>";
    const CLOSE: &str = "</mark>";
    let ranges = matches(text, terms);
    if ranges.is_empty() {
        return None;
    }
    let limit = limit.unwrap_or(usize::MAX);
    let mut out = String::new();
    let mut next = ranges.iter().peekable();
    let mut open_until: Option<usize> = None;
    let mut buf = [0u8; 4];
    for (i, c) in text.char_indices() {
        if open_until == Some(i) {
            out.push_str(CLOSE);
            open_until = None;
        }
        let piece = match escape(c) {
            "" => &*c.encode_utf8(&mut buf),
            e => e,
        };
        let mut opening = false;
        if let Some(&&(s, e)) = next.peek() {
            if s == i {
                opening = true;
                open_until = Some(e);
                next.next();
            }
        }
        let extra = if opening { OPEN.len() } else { 0 };
        let closing = if open_until.is_some() { CLOSE.len() } else { 0 };
        if out.len() + extra + piece.len() + closing > limit {
            if opening {
                open_until = None;
            }
            break;
        }
        if opening {
            out.push_str(OPEN);
        }
        out.push_str(piece);
    }
    if open_until.is_some() {
        out.push_str(CLOSE);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| fold(s)).collect()
    }

    #[test]
    fn marks_escape_and_fold() {
        assert_eq!(
            mark("Tom & <Jerry> in KÖLN", &terms(&["köln", "jerry"]), None).as_deref(),
            Some("Tom &amp; &lt;<mark>Jerry</mark>&gt; in <mark>KÖLN</mark>")
        );
        assert_eq!(mark("nothing", &terms(&["x"]), None), None);
        // Overlapping terms are one mark.
        assert_eq!(
            mark("abcdef", &terms(&["abc", "cde"]), None).as_deref(),
            Some("<mark>abcde</mark>f")
        );
        // A character whose lower case is longer still maps back whole.
        assert_eq!(
            mark("İstanbul", &terms(&["i̇stan"]), None).as_deref(),
            Some("<mark>İstan</mark>bul")
        );
    }

    #[test]
    fn previews_stay_within_255_octets_and_close_their_marks() {
        let body = format!("{} needle {}", "lead ".repeat(200), "<&>".repeat(300));
        let p = preview(&body, &terms(&["needle"])).unwrap();
        assert!(p.len() <= PREVIEW_BYTES, "{}", p.len());
        assert!(p.contains("<mark>needle</mark>"), "{p}");
        assert!(p.starts_with("lead"), "{p}");
        let long = format!("x {}", "needle".repeat(100));
        let p = preview(&long, &terms(&["needle"])).unwrap();
        assert!(p.len() <= PREVIEW_BYTES && p.ends_with("</mark>"), "{p}");
        assert_eq!(preview("no match here", &terms(&["needle"])), None);
    }

    fn unmark(s: &str) -> String {
        s.replace("<mark>", "")
            .replace("</mark>", "")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    }

    proptest::proptest! {
        /// Any text and term (any script, case expansions like `İ`):
        /// no panic, the text comes back whole and in order once marks
        /// and escapes are undone, marks are balanced and never nested.
        #[test]
        fn marking_keeps_the_text(text in "[a-zA-Z<>& İıßẞΣσς\\u{300}]{0,40}", term in "[a-zİßσ<&]{1,4}") {
            if let Some(out) = mark(&text, &terms(&[&term]), None) {
                proptest::prop_assert_eq!(unmark(&out), text.clone());
                let mut open = false;
                let mut rest = out.as_str();
                while let Some(i) = rest.find('<') {
                    let tag = rest.get(i..).unwrap_or_default();
                    proptest::prop_assert!(tag.starts_with("<mark>") != tag.starts_with("</mark>"));
                    proptest::prop_assert_eq!(open, tag.starts_with("</mark>"));
                    open = !open;
                    rest = rest.get(i + 1..).unwrap_or_default();
                }
                proptest::prop_assert!(!open);
            }
        }

        /// Any body: a preview within 255 octets whose text is a piece of
        /// the body's.
        #[test]
        fn previews_fit(body in "[a-z<>& İß\\n]{0,2000}", term in "[a-zß]{1,3}") {
            if let Some(p) = preview(&body, &terms(&[&term])) {
                proptest::prop_assert!(p.len() <= PREVIEW_BYTES);
                let flat = body.split_whitespace().collect::<Vec<_>>().join(" ");
                proptest::prop_assert!(flat.contains(&unmark(&p)));
            }
        }
    }
}
