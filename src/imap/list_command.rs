//! The extended LIST command: LIST-EXTENDED (RFC 5258 §3), with the
//! STATUS return option of LIST-STATUS (RFC 5819 §2) and the SPECIAL-USE
//! options of RFC 6154 §4.
//!
//! ```abnf
//! list             = "LIST" [SP list-select-opts] SP mailbox SP mbox-or-pat
//!                    [SP list-return-opts]
//! list-select-opts = "(" [list-select-opt *(SP list-select-opt)] ")"
//! list-select-opt  = "SUBSCRIBED" / "REMOTE" / "RECURSIVEMATCH"
//!                    / "SPECIAL-USE"                       ; RFC 6154
//! mbox-or-pat      = list-mailbox / patterns
//! patterns         = "(" list-mailbox *(SP list-mailbox) ")"
//! list-return-opts = "RETURN" SP "(" [return-option *(SP return-option)] ")"
//! return-option    = "SUBSCRIBED" / "CHILDREN" / "SPECIAL-USE"
//!                    / "STATUS" SP "(" status-att *(SP status-att) ")"
//! ```
//!
//! why a parser of our own: imap-codec 2.0.0-alpha.10 parses LIST only as
//! `"LIST" SP mailbox SP list-mailbox` (its `ext_list_extended` feature
//! has the response items, not the command), and no published crate
//! parses the server side of RFC 5258. So the session hands a LIST that
//! imap-codec refused (the whole message, literals included, as
//! imap-next collected it) to [`parse`]; it has a proptest round trip
//! below and `fuzz/fuzz_targets/list_command.rs`. Options this server
//! does not know, RECURSIVEMATCH alone (RFC 5258 §3) and options given
//! twice are errors, which the session answers with a tagged BAD.

use std::fmt::Write as _;

use imap_next::imap_types::status::StatusDataItemName;

use super::scan::{self, atom_char, Expected};

/// Patterns one command may carry: far above what a client sends (one
/// per folder it wants), low enough that matching stays cheap.
pub const MAX_PATTERNS: usize = 64;

/// Bytes of one pattern (reference included): twice the longest mailbox
/// name, room for wildcards; the matcher's work grows with this.
pub const MAX_PATTERN_BYTES: usize = 2048;

/// A parsed LIST command (after the tag).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListCommand {
    /// The selection options, `None` when the command had no `(...)`
    /// before the reference.
    pub select: Option<Selection>,
    /// The reference name as sent (modified UTF-7 or UTF-8).
    pub reference: Vec<u8>,
    /// The patterns as sent, at least one.
    pub patterns: Vec<Vec<u8>>,
    /// Whether the patterns came in parentheses.
    pub pattern_list: bool,
    /// The return options, `None` without `RETURN`.
    pub returns: Option<Returns>,
}

impl ListCommand {
    /// Whether any RFC 5258 syntax was used: then an empty pattern is an
    /// ordinary pattern, not RFC 3501's "tell me the delimiter".
    pub fn is_extended(&self) -> bool {
        self.select.is_some() || self.pattern_list || self.returns.is_some()
    }
}

/// Selection options (RFC 5258 §3, RFC 6154 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Selection {
    /// `SUBSCRIBED`: list subscribed names.
    pub subscribed: bool,
    /// `REMOTE`: also remote mailboxes (this server has none).
    pub remote: bool,
    /// `RECURSIVEMATCH`: also parents of what the other options select.
    pub recursive_match: bool,
    /// `SPECIAL-USE`: only mailboxes with a special use.
    pub special_use: bool,
}

/// Return options (RFC 5258 §3, RFC 5819 §2, RFC 6154 §4).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Returns {
    /// `SUBSCRIBED`: `\Subscribed` on subscribed names.
    pub subscribed: bool,
    /// `CHILDREN`: `\HasChildren` / `\HasNoChildren`.
    pub children: bool,
    /// `SPECIAL-USE`: the special-use attributes.
    pub special_use: bool,
    /// `STATUS (...)`: a STATUS response after each selectable mailbox.
    pub status: Option<Vec<StatusDataItemName>>,
}

/// Why a LIST command was refused (answered with BAD).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ListSyntaxError {
    /// Not a LIST command at all.
    #[error("not a LIST command")]
    NotList,
    /// The grammar above was not followed.
    #[error("LIST syntax: expected {expected} at byte {at} (RFC 5258 section 3)")]
    Expected {
        /// What the grammar wanted there.
        expected: &'static str,
        /// Offset in the command.
        at: usize,
    },
    /// A selection option this server does not know.
    #[error("unknown LIST selection option {0:?}; known: SUBSCRIBED, REMOTE, RECURSIVEMATCH, SPECIAL-USE")]
    UnknownSelection(String),
    /// A return option this server does not know.
    #[error("unknown LIST RETURN option {0:?}; known: SUBSCRIBED, CHILDREN, SPECIAL-USE, STATUS")]
    UnknownReturn(String),
    /// A STATUS item this server does not know.
    #[error("unknown STATUS item {0:?}; known: MESSAGES, RECENT, UIDNEXT, UIDVALIDITY, UNSEEN, DELETED, DELETED-STORAGE, SIZE, HIGHESTMODSEQ")]
    UnknownStatus(String),
    /// An option given twice.
    #[error("LIST option {0} given twice")]
    Repeated(&'static str),
    /// RECURSIVEMATCH with nothing to recurse on.
    #[error("RECURSIVEMATCH needs SUBSCRIBED or SPECIAL-USE beside it (RFC 5258 section 3)")]
    LoneRecursiveMatch,
    /// Over [`MAX_PATTERNS`].
    #[error("more than {MAX_PATTERNS} LIST patterns in one command")]
    TooManyPatterns,
    /// Over [`MAX_PATTERN_BYTES`].
    #[error("a LIST pattern over {MAX_PATTERN_BYTES} bytes")]
    PatternTooLong,
}

/// Parses `input`, a whole LIST command after its tag and space (line
/// ending and literals included). Never panics, whatever the bytes.
pub fn parse(input: &[u8]) -> Result<ListCommand, ListSyntaxError> {
    let mut c = Cursor::new(input);
    if !c.word().eq_ignore_ascii_case(b"LIST") {
        return Err(ListSyntaxError::NotList);
    }
    c.sp()?;
    let mut cmd = ListCommand::default();
    if c.peek() == Some(b'(') {
        cmd.select = Some(selection(&mut c)?);
        c.sp()?;
    }
    cmd.reference = c.astring()?;
    c.sp()?;
    if c.eat(b'(') {
        cmd.pattern_list = true;
        loop {
            if cmd.patterns.len() == MAX_PATTERNS {
                return Err(ListSyntaxError::TooManyPatterns);
            }
            cmd.patterns.push(c.list_mailbox()?);
            if c.eat(b')') {
                break;
            }
            c.sp()?;
        }
    } else {
        cmd.patterns.push(c.list_mailbox()?);
    }
    if c.eat(b' ') {
        if !c.word().eq_ignore_ascii_case(b"RETURN") {
            return Err(c.expected("RETURN"));
        }
        c.sp()?;
        cmd.returns = Some(returns(&mut c)?);
    }
    c.line_end()?;
    if cmd
        .patterns
        .iter()
        .any(|p| p.len() + cmd.reference.len() > MAX_PATTERN_BYTES)
    {
        return Err(ListSyntaxError::PatternTooLong);
    }
    Ok(cmd)
}

fn selection(c: &mut Cursor<'_>) -> Result<Selection, ListSyntaxError> {
    let mut s = Selection::default();
    for word in c.options()? {
        let (flag, name) = match word.to_ascii_uppercase().as_slice() {
            b"SUBSCRIBED" => (&mut s.subscribed, "SUBSCRIBED"),
            b"REMOTE" => (&mut s.remote, "REMOTE"),
            b"RECURSIVEMATCH" => (&mut s.recursive_match, "RECURSIVEMATCH"),
            b"SPECIAL-USE" => (&mut s.special_use, "SPECIAL-USE"),
            _ => return Err(ListSyntaxError::UnknownSelection(shown(&word))),
        };
        set_once(flag, name)?;
    }
    if s.recursive_match && !s.subscribed && !s.special_use {
        return Err(ListSyntaxError::LoneRecursiveMatch);
    }
    Ok(s)
}

fn returns(c: &mut Cursor<'_>) -> Result<Returns, ListSyntaxError> {
    let mut r = Returns::default();
    if !c.eat(b'(') {
        return Err(c.expected("("));
    }
    if c.eat(b')') {
        return Ok(r);
    }
    loop {
        let word = c.word();
        let (flag, name) = match word.to_ascii_uppercase().as_slice() {
            b"SUBSCRIBED" => (&mut r.subscribed, "SUBSCRIBED"),
            b"CHILDREN" => (&mut r.children, "CHILDREN"),
            b"SPECIAL-USE" => (&mut r.special_use, "SPECIAL-USE"),
            b"STATUS" => {
                if r.status.is_some() {
                    return Err(ListSyntaxError::Repeated("STATUS"));
                }
                c.sp()?;
                r.status = Some(status_items(c)?);
                if c.eat(b')') {
                    return Ok(r);
                }
                c.sp()?;
                continue;
            }
            b"" => return Err(c.expected("a RETURN option")),
            _ => return Err(ListSyntaxError::UnknownReturn(shown(&word))),
        };
        set_once(flag, name)?;
        if c.eat(b')') {
            return Ok(r);
        }
        c.sp()?;
    }
}

fn status_items(c: &mut Cursor<'_>) -> Result<Vec<StatusDataItemName>, ListSyntaxError> {
    let words = c.options()?;
    if words.is_empty() {
        return Err(c.expected("a STATUS item"));
    }
    words
        .iter()
        .map(|w| status_item(w).ok_or_else(|| ListSyntaxError::UnknownStatus(shown(w))))
        .collect()
}

/// The STATUS items (RFC 9051 §6.3.11, RFC 9208 §4.2.1, RFC 8438, RFC
/// 7162) and their names.
const STATUS_ITEMS: [(&str, StatusDataItemName); 9] = [
    ("MESSAGES", StatusDataItemName::Messages),
    ("RECENT", StatusDataItemName::Recent),
    ("UIDNEXT", StatusDataItemName::UidNext),
    ("UIDVALIDITY", StatusDataItemName::UidValidity),
    ("UNSEEN", StatusDataItemName::Unseen),
    ("DELETED", StatusDataItemName::Deleted),
    ("DELETED-STORAGE", StatusDataItemName::DeletedStorage),
    ("SIZE", StatusDataItemName::Size),
    ("HIGHESTMODSEQ", StatusDataItemName::HighestModSeq),
];

fn status_item(word: &[u8]) -> Option<StatusDataItemName> {
    STATUS_ITEMS
        .iter()
        .find(|(name, _)| name.as_bytes().eq_ignore_ascii_case(word))
        .map(|(_, item)| item.clone())
}

fn status_name(item: &StatusDataItemName) -> &'static str {
    STATUS_ITEMS
        .iter()
        .find(|(_, i)| i == item)
        .map_or("MESSAGES", |(name, _)| name)
}

fn set_once(flag: &mut bool, name: &'static str) -> Result<(), ListSyntaxError> {
    if std::mem::replace(flag, true) {
        return Err(ListSyntaxError::Repeated(name));
    }
    Ok(())
}

/// A peer's word for an error text: at most 40 bytes, lossy.
fn shown(word: &[u8]) -> String {
    String::from_utf8_lossy(word.get(..40).unwrap_or(word)).into_owned()
}

/// The shared cursor (`scan`) with the LIST grammar's own tokens.
type Cursor<'a> = scan::Tokens<'a, ListSyntaxError>;

impl From<Expected> for ListSyntaxError {
    fn from(e: Expected) -> Self {
        Self::Expected {
            expected: e.what,
            at: e.at,
        }
    }
}

impl Cursor<'_> {
    /// `"(" [word *(SP word)] ")"`.
    fn options(&mut self) -> Result<Vec<Vec<u8>>, ListSyntaxError> {
        if !self.eat(b'(') {
            return Err(self.expected("("));
        }
        let mut words = Vec::new();
        if self.eat(b')') {
            return Ok(words);
        }
        loop {
            let word = self.word();
            if word.is_empty() {
                return Err(self.expected("an option name"));
            }
            words.push(word);
            if self.eat(b')') {
                return Ok(words);
            }
            self.sp()?;
        }
    }

    /// `astring = 1*ASTRING-CHAR / string`.
    fn astring(&mut self) -> Result<Vec<u8>, ListSyntaxError> {
        if let Some(s) = self.string()? {
            return Ok(s);
        }
        let atom = self.take_while(|b| atom_char(b, true)).to_vec();
        if atom.is_empty() {
            return Err(self.expected("a mailbox name"));
        }
        Ok(atom)
    }

    /// `list-mailbox = 1*list-char / string`.
    fn list_mailbox(&mut self) -> Result<Vec<u8>, ListSyntaxError> {
        if let Some(s) = self.string()? {
            return Ok(s);
        }
        let atom = self
            .take_while(|b| atom_char(b, true) || b == b'%' || b == b'*')
            .to_vec();
        if atom.is_empty() {
            return Err(self.expected("a mailbox pattern"));
        }
        Ok(atom)
    }

    /// `string = quoted / literal`, or `None` when neither starts here.
    fn string(&mut self) -> Result<Option<Vec<u8>>, ListSyntaxError> {
        match self.peek() {
            Some(b'"') => Ok(Some(self.quoted()?)),
            Some(b'{') => Ok(Some(self.literal()?)),
            _ => Ok(None),
        }
    }

    fn line_end(&mut self) -> Result<(), ListSyntaxError> {
        self.eat(b'\r');
        if self.eat(b'\n') && self.rest().is_empty() {
            Ok(())
        } else {
            Err(self.expected("the end of the command"))
        }
    }
}

/// The command as a client would send it (after the tag), every string
/// a literal: what the round-trip test and fuzz target feed [`parse`].
pub fn encode(cmd: &ListCommand) -> Vec<u8> {
    let mut out = b"LIST ".to_vec();
    let words = |pairs: &[(bool, &str)]| {
        pairs
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, w)| *w)
            .collect::<Vec<_>>()
            .join(" ")
    };
    if let Some(s) = &cmd.select {
        let list = words(&[
            (s.subscribed, "SUBSCRIBED"),
            (s.remote, "REMOTE"),
            (s.recursive_match, "RECURSIVEMATCH"),
            (s.special_use, "SPECIAL-USE"),
        ]);
        out.extend_from_slice(format!("({list}) ").as_bytes());
    }
    literal(&mut out, &cmd.reference);
    out.push(b' ');
    if cmd.pattern_list {
        out.push(b'(');
    }
    for (i, p) in cmd.patterns.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        literal(&mut out, p);
    }
    if cmd.pattern_list {
        out.push(b')');
    }
    if let Some(r) = &cmd.returns {
        let mut list = words(&[
            (r.subscribed, "SUBSCRIBED"),
            (r.children, "CHILDREN"),
            (r.special_use, "SPECIAL-USE"),
        ]);
        if let Some(items) = &r.status {
            let names: Vec<_> = items.iter().map(status_name).collect();
            if !list.is_empty() {
                list.push(' ');
            }
            let _ = write!(list, "STATUS ({})", names.join(" "));
        }
        out.extend_from_slice(format!(" RETURN ({list})").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn literal(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests;
