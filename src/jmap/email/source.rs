//! The one way JMAP reads a stored message's bytes for a client:
//! Email/get, body-part downloads, Email/parse of a stored message's
//! attachment and search snippets all go through [`message_bytes`] (or
//! [`presented`], which also says what the record looks like as served),
//! so that server-side reading (`crate::reading`) presents every one of
//! them decrypted when the account's keys are unlocked.

use crate::reading::Unlocked;
use crate::store::{AccountId, MailError, MailStore, Message};

/// The bytes of `m` as this request presents them; `None` when they are
/// gone (expunged meanwhile).
pub(crate) fn message_bytes(
    s: &MailStore,
    id: AccountId,
    m: &Message,
    keys: Option<&Unlocked>,
) -> Result<Option<Vec<u8>>, MailError> {
    Ok(presented(s, id, m.clone(), keys)?.map(|(_, raw)| raw))
}

/// `m` and its bytes as this request presents them: a message the keys
/// open is served decrypted, and its record then says so (`encrypted`
/// false, `size` of the bytes served). `None` when the bytes are gone.
pub(crate) fn presented(
    s: &MailStore,
    id: AccountId,
    mut m: Message,
    keys: Option<&Unlocked>,
) -> Result<Option<(Message, Vec<u8>)>, MailError> {
    let Some(raw) = s.get_blob(id, m.blob)? else {
        return Ok(None);
    };
    let raw = crate::reading::present(keys, &mut m, raw);
    Ok(Some((m, raw)))
}
