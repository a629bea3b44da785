//! The operator's migration doors into the pipeline: `sealmail import`
//! ([`Ingest::import`]) and `sealmail reencrypt` ([`Ingest::reencrypt`]).
//!
//! Both run the message through the configured hook chain with
//! [`Source::Migration`], exactly like a delivery, so an opted-in
//! account's copy is encrypted by the same `encrypt-at-rest` code and
//! fails closed the same way. Both are idempotent, so an interrupted run
//! can simply be started again: an import records the SHA-256 of the
//! source bytes in the same batch as the message
//! ([`MailStore::append_imported`]), and a re-encryption skips messages
//! already encrypted and swaps content only if it is still the blob that
//! was encrypted ([`MailStore::replace_content`]).
//!
//! Both give the message CRLF line ends first, as every door does. An
//! import records the hash of the source bytes as they were, so a re-run
//! over the same files still finds them. A re-encryption normalises the
//! stored clear copy too: its bytes are replaced by the sealed ones anyway,
//! and the splitter must see the lines a strict reader sees, or text after
//! a bare CR could stay in the clear header.

use std::sync::Arc;

use sealmail_plugin_api::Source;

use super::{no_envelope, refused, seal, seal_append, Append, Claim, Target};
use crate::ingest::{DeliverError, HookChain, Ingest};
use crate::smime::{into_crlf, to_crlf};
use crate::store::{AccountId, BlobHash, MailError, MailStore, MailboxId, Message, Uid};

impl Ingest {
    /// Stores `raw` as [`Ingest::append`] does, through the hook chain as
    /// a migration (whatever `append.source` says), at most once per
    /// account and source: returns `None`, storing nothing, when a message
    /// with the same bytes was imported into the account before.
    pub async fn import(
        &self,
        mut append: Append,
        raw: Vec<u8>,
    ) -> Result<Option<Message>, DeliverError> {
        append.source = Source::Migration;
        let store = Arc::clone(&self.store);
        let chain = self.chain.clone();
        let id = append.account;
        let stored = self
            .bounded(&id.to_string(), id, move |claim| {
                import_blocking(&store, &chain, &append, &raw, claim)
            })
            .await?;
        Ok(stored)
    }

    /// Encrypts the stored message `uid` in place for the account's
    /// current certificates: its content goes through the hook chain as a
    /// migration and replaces the old content in one batch (UID, flags,
    /// internal date and mailbox kept). Returns `None` when there was
    /// nothing to do: the message is already encrypted, gone, changed
    /// meanwhile, or the account no longer has encryption enabled.
    pub async fn reencrypt(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        uid: Uid,
    ) -> Result<Option<Message>, DeliverError> {
        let store = Arc::clone(&self.store);
        let chain = self.chain.clone();
        let replaced = self
            .bounded(&account.to_string(), account, move |claim| {
                reencrypt_blocking(&store, &chain, account, mailbox, uid, claim)
            })
            .await?;
        Ok(replaced)
    }
}

fn import_blocking(
    store: &MailStore,
    chain: &HookChain,
    append: &Append,
    raw: &[u8],
    claim: &Claim,
) -> Result<Option<Message>, DeliverError> {
    let source = BlobHash::of(raw);
    let seen = store
        .is_imported(append.account, source)
        .map_err(|e| DeliverError::store("", e))?;
    if seen {
        return Ok(None);
    }
    let raw = to_crlf(raw);
    let (rcpt, sealed) = seal_append(store, chain, append, &raw, claim)?;
    claim.commit(&rcpt)?;
    let mut message = sealed.new_message(append.internal_date);
    message.flags = append.flags.clone();
    store
        .append_imported(append.account, append.mailbox, source, message)
        .map_err(|e| DeliverError::store(&rcpt, e))
}

fn reencrypt_blocking(
    store: &MailStore,
    chain: &HookChain,
    id: AccountId,
    mailbox: MailboxId,
    uid: Uid,
    claim: &Claim,
) -> Result<Option<Message>, DeliverError> {
    let target = Target::load(store, id).map_err(|e| DeliverError::store("", e))?;
    let rcpt = target.address.clone();
    let msg = match store.get_message(id, mailbox, uid) {
        Ok(m) if !m.encrypted => m,
        Ok(_) | Err(MailError::MessageNotFound { .. }) => return Ok(None),
        Err(e) => return Err(DeliverError::store(&rcpt, e)),
    };
    if !target.settings.enabled {
        return Ok(None);
    }
    let raw = match store.get_blob(id, msg.blob) {
        Ok(Some(raw)) => raw,
        // why: expunged (with its last reference) between the two reads.
        Ok(None) => return Ok(None),
        Err(e) => return Err(DeliverError::store(&rcpt, e)),
    };
    let raw = into_crlf(raw);
    let sealed = seal(
        chain,
        &target,
        &no_envelope(),
        &rcpt,
        &raw,
        false,
        Source::Migration,
    )
    .inspect_err(|e| refused(store, id, e, claim))?;
    claim.commit(&rcpt)?;
    match store.replace_content(id, mailbox, uid, msg.blob, &sealed.raw, sealed.encrypted) {
        Ok(m) => Ok(Some(m)),
        Err(MailError::ContentChanged { .. } | MailError::MessageNotFound { .. }) => Ok(None),
        Err(e) => Err(DeliverError::store(&rcpt, e)),
    }
}
