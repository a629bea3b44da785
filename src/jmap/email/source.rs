//! The one way JMAP reads a stored message's bytes for a client:
//! Email/get, body-part downloads, Email/parse of a stored message's
//! attachment and search snippets all go through [`message_bytes`], so
//! that server-side reading (`crate::reading`) presents every one of them
//! decrypted when the account's keys are unlocked.

use crate::reading::{self, Unlocked};
use crate::store::{AccountId, MailError, MailStore, Message};

/// The bytes of `m` as this request presents them; `None` when they are
/// gone (expunged meanwhile).
pub(crate) fn message_bytes(
    s: &MailStore,
    id: AccountId,
    m: &Message,
    keys: Option<&Unlocked>,
) -> Result<Option<Vec<u8>>, MailError> {
    Ok(s.get_blob(id, m.blob)?
        .map(|raw| reading::present(raw, keys)))
}
