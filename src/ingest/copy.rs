//! One recipient copy: load what the hooks need about the account, add
//! the trace fields, run the hook chain, check that an opted-in copy came
//! out encrypted, store it. The blocking half runs on the blocking pool.

use std::borrow::Cow;
use std::sync::Arc;

use sealmail_plugin_api::{
    DeliveryMeta, EncryptionSettings, IncomingMessage, Recipient, RecipientCertificate, Source,
};

use super::budget::Claim;
use super::error::DeliverError;
use super::{Delivered, Envelope, HookChain, Ingest};
use crate::smime::{already_encrypted, into_crlf, Split};
use crate::store::{
    AccountId, AuditKind, Certificate, DeliveryView, Flags, HeaderFields, MailStore, MailboxId,
    NewMessage,
};

/// What the hook chain is told about the account of one copy.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The account's primary address.
    pub(crate) address: String,
    pub(crate) mailbox: MailboxId,
    pub(crate) settings: EncryptionSettings,
    pub(crate) certificates: Vec<Certificate>,
}

impl Target {
    /// The account `id` with its INBOX, settings and active certificates
    /// (through the store's delivery views: one read when unchanged).
    pub(crate) fn load(store: &MailStore, id: AccountId) -> Result<Self, crate::store::MailError> {
        Ok(Self::of_view(&*store.delivery_view(id)?))
    }

    /// The target a delivery view describes.
    pub(crate) fn of_view(view: &DeliveryView) -> Self {
        Self {
            address: view.address.clone(),
            mailbox: view.inbox,
            settings: view.settings.to_hook(),
            certificates: view.certificates.clone(),
        }
    }

    /// Whether the account has at least one active certificate.
    pub(crate) fn has_certificates(&self) -> bool {
        !self.certificates.is_empty()
    }
}

/// A copy ready to store.
#[derive(Debug)]
pub(crate) struct Sealed {
    pub(crate) raw: Vec<u8>,
    pub(crate) encrypted: bool,
    /// Encrypted by the hook chain just now (a new random content key):
    /// equal to no other message.
    pub(crate) fresh: bool,
}

impl Sealed {
    /// The store's record of this copy.
    pub(crate) fn new_message(&self, internal_date: i64) -> NewMessage<'_> {
        NewMessage {
            raw: &self.raw,
            flags: Flags::default(),
            internal_date,
            headers: header_fields(&self.raw),
            encrypted: self.encrypted,
            unique: self.fresh,
        }
    }
}

/// `Return-Path` and `Delivered-To` (RFC 5321 §4.4, RFC 9228), then the message.
pub(crate) fn with_trace_fields(envelope: &Envelope, delivered_to: &str, data: &[u8]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(data.len() + 128);
    raw.extend_from_slice(
        format!(
            "Return-Path: <{}>\r\nDelivered-To: {}\r\n",
            envelope.mail_from, delivered_to
        )
        .as_bytes(),
    );
    // why: a message that starts with a continuation line would fold it
    // into Delivered-To, which stays in clear; a strict reader drops that
    // line and the header ends there for us, so an empty line says so.
    if matches!(data.first(), Some(b' ' | b'\t')) {
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(data);
    raw
}

/// Runs `chain` on `raw` for `target`. With `must_encrypt` (mail that
/// arrived encrypted to a list) the copy is encrypted whatever the
/// account's own setting. Fails closed when an opted-in copy comes out in
/// clear.
pub(crate) fn seal(
    chain: &HookChain,
    target: &Target,
    envelope: &Envelope,
    rcpt: &str,
    raw: &[u8],
    must_encrypt: bool,
    source: Source,
) -> Result<Sealed, DeliverError> {
    let settings = if must_encrypt && !target.settings.enabled {
        EncryptionSettings::enabled(target.settings.cipher)
            .with_key_transport(target.settings.key_transport)
    } else {
        target.settings
    };
    let certificates = target
        .certificates
        .iter()
        .map(|c| RecipientCertificate {
            der: Cow::Borrowed(&c.der),
            fingerprint: Cow::Owned(c.fingerprint.to_string()),
        })
        .collect();
    let mut recipient = Recipient::new(&target.address).with_encryption(settings, certificates);
    recipient.envelope_to = rcpt;
    let mut msg = IncomingMessage::new(recipient, raw);
    msg.meta = meta(envelope, source);
    let out = chain.run(msg).map_err(|source| DeliverError::Refused {
        rcpt: rcpt.to_string(),
        source,
    })?;
    let split = Split::new(&out);
    let encrypted = already_encrypted(&out, &split).is_some();
    if settings.enabled && !encrypted {
        return Err(DeliverError::NotEncrypted {
            rcpt: rcpt.to_string(),
        });
    }
    // why compare: a message that arrived encrypted passes the chain
    // unchanged, and two deliveries of it may share one blob.
    let fresh = encrypted && out.as_slice() != raw;
    Ok(Sealed {
        raw: out,
        encrypted,
        fresh,
    })
}

fn meta<'a>(envelope: &'a Envelope, source: Source) -> DeliveryMeta<'a> {
    let mut meta = DeliveryMeta::default();
    meta.mail_from = &envelope.mail_from;
    meta.lhlo = Some(&envelope.lhlo);
    meta.source = source;
    meta
}

/// The clear header fields the store indexes, unfolded.
pub(crate) fn header_fields(raw: &[u8]) -> HeaderFields {
    let split = Split::new(raw);
    let get = |name: &[u8]| split.field_value(name).map(unfold);
    HeaderFields {
        from: get(b"from"),
        to: get(b"to"),
        cc: get(b"cc"),
        subject: get(b"subject"),
        date: get(b"date"),
        message_id: get(b"message-id"),
        in_reply_to: get(b"in-reply-to"),
        references: get(b"references"),
    }
}

/// A raw field value without its folding line breaks (RFC 5322 §2.2.3).
fn unfold(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    text.replace("\r\n", "").replace('\n', "")
}

/// Seconds since the epoch, now.
pub(crate) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Ingest {
    /// One account's copy, end to end.
    pub(crate) async fn deliver_to_account(
        &self,
        envelope: &Envelope,
        rcpt: &str,
        id: AccountId,
        data: Arc<Vec<u8>>,
    ) -> Result<Delivered, DeliverError> {
        let store = Arc::clone(&self.store);
        let chain = self.chain.clone();
        let envelope = envelope.clone();
        let rcpt_owned = rcpt.to_string();
        let encrypted = self
            .bounded(rcpt, id, move |claim| {
                store_copy(&store, &chain, &envelope, &rcpt_owned, id, &data, claim)
            })
            .await?;
        Ok(Delivered::Account { encrypted })
    }
}

/// Blocking: load, seal, store and audit one account's copy.
fn store_copy(
    store: &MailStore,
    chain: &HookChain,
    envelope: &Envelope,
    rcpt: &str,
    id: AccountId,
    data: &[u8],
    claim: &Claim,
) -> Result<bool, DeliverError> {
    let copy = seal_lmtp_copy(store, chain, envelope, rcpt, id, None, data, claim)?;
    claim.commit(rcpt)?;
    // why in the same batch: a second synced write per delivery only for
    // the audit line cost as much as the copy's own write.
    let audits: &[_] = if copy.audited {
        &[(id, AuditKind::DeliveryEncrypted, STORED_ENCRYPTED)]
    } else {
        &[]
    };
    store
        .append_many_audited(
            vec![(id, copy.mailbox, copy.sealed.new_message(now()))],
            audits,
        )
        .map_err(|e| DeliverError::store(rcpt, e))?;
    Ok(copy.sealed.encrypted)
}

/// One account's sealed copy of an LMTP delivery, not stored yet.
#[derive(Debug)]
pub(crate) struct LmtpCopy {
    pub(crate) id: AccountId,
    pub(crate) mailbox: MailboxId,
    pub(crate) sealed: Sealed,
    /// Whether its "stored encrypted" audit line goes with it.
    pub(crate) audited: bool,
}

/// Blocking: seals account `id`'s copy of an LMTP delivery (trace fields
/// added) for the target `view` describes, or, without one, the target
/// loaded now; a refusal is audited. Nothing is stored yet.
#[allow(clippy::too_many_arguments)]
pub(crate) fn seal_lmtp_copy(
    store: &MailStore,
    chain: &HookChain,
    envelope: &Envelope,
    rcpt: &str,
    id: AccountId,
    view: Option<Arc<DeliveryView>>,
    data: &[u8],
    claim: &Claim,
) -> Result<LmtpCopy, DeliverError> {
    let target = match view {
        Some(view) => Target::of_view(&view),
        None => Target::load(store, id).map_err(|e| DeliverError::store(rcpt, e))?,
    };
    let raw = with_trace_fields(envelope, rcpt, data);
    let sealed = seal(chain, &target, envelope, rcpt, &raw, false, Source::Lmtp)
        .inspect_err(|e| refused(store, id, e, claim))?;
    Ok(LmtpCopy {
        id,
        mailbox: target.mailbox,
        audited: sealed.encrypted && target.settings.enabled,
        sealed,
    })
}

/// The audit line of a delivery stored encrypted.
pub(crate) const STORED_ENCRYPTED: &str = "delivery over LMTP stored as S/MIME";

/// Audits a refused copy, unless the waiter gave up on it and audited
/// it already.
pub(crate) fn refused(store: &MailStore, id: AccountId, e: &DeliverError, claim: &Claim) {
    if !claim.is_abandoned() {
        audit(store, id, AuditKind::DeliveryRefused, &e.to_string());
    }
}

/// Records an audit event; a failure to record is logged, not fatal.
pub(crate) fn audit(store: &MailStore, id: AccountId, kind: AuditKind, details: &str) {
    if let Err(e) = store.record_audit(id, kind, details) {
        tracing::error!(account = %id, error = %e, "could not write the audit log");
    }
}

/// A message a client or the operator adds to a mailbox (IMAP APPEND,
/// JMAP `Email/import`, `sealmail import`).
#[derive(Debug, Clone)]
pub struct Append {
    /// The account.
    pub account: AccountId,
    /// The mailbox.
    pub mailbox: MailboxId,
    /// Initial flags.
    pub flags: Flags,
    /// INTERNALDATE, unix seconds.
    pub internal_date: i64,
    /// Which door it came through.
    pub source: Source,
}

impl Ingest {
    /// Stores `raw` as `append` says. The hook chain runs when the account
    /// has encryption with `encryptOnAppend` (the default), or when the
    /// operator migrates mail in; otherwise (no encryption, or the account
    /// opted out with `--append-in-clear`) the client's bytes are stored
    /// as they are, except that bare CR and LF become CRLF. Returns the
    /// stored record.
    pub async fn append(
        &self,
        append: Append,
        raw: Vec<u8>,
    ) -> Result<crate::store::Message, DeliverError> {
        let mut stored = self.append_many(vec![(append, raw)]).await?;
        stored.pop().ok_or_else(|| {
            let lost = crate::store::StoreError::Bug {
                detail: "append_many lost its message".into(),
            };
            DeliverError::store("", lost.into())
        })
    }

    /// Stores each `(append, raw)` as [`Ingest::append`] does, in one
    /// atomic store write: all of them or none (IMAP MULTIAPPEND, RFC
    /// 3502 §6.3.11: quota and every other check hold for the whole
    /// set). Returns the stored records in input order.
    pub async fn append_many(
        &self,
        items: Vec<(Append, Vec<u8>)>,
    ) -> Result<Vec<crate::store::Message>, DeliverError> {
        let Some(id) = items.first().map(|(a, _)| a.account) else {
            return Ok(Vec::new());
        };
        let items: Vec<(Append, Vec<u8>)> = items
            .into_iter()
            .map(|(append, raw)| (append, into_crlf(raw)))
            .collect();
        let store = Arc::clone(&self.store);
        let chain = self.chain.clone();
        self.bounded(&id.to_string(), id, move |claim| {
            append_blocking(&store, &chain, &items, claim)
        })
        .await
    }
}

fn append_blocking(
    store: &MailStore,
    chain: &HookChain,
    items: &[(Append, Vec<u8>)],
    claim: &Claim,
) -> Result<Vec<crate::store::Message>, DeliverError> {
    let mut rcpt = String::new();
    let mut sealed = Vec::with_capacity(items.len());
    for (append, raw) in items {
        let (address, copy) = seal_append(store, chain, append, raw, claim)?;
        rcpt = address;
        sealed.push(copy);
    }
    claim.commit(&rcpt)?;
    let messages = items
        .iter()
        .zip(&sealed)
        .map(|((append, _), copy)| {
            let mut message = copy.new_message(append.internal_date);
            message.flags = append.flags.clone();
            (append.account, append.mailbox, message)
        })
        .collect();
    store
        .append_many(messages)
        .map_err(|e| DeliverError::store(&rcpt, e))
}

/// The bytes to store for `append` (through the hook chain when the
/// account or the source asks for it), with the account's address.
fn seal_append(
    store: &MailStore,
    chain: &HookChain,
    append: &Append,
    raw: &[u8],
    claim: &Claim,
) -> Result<(String, Sealed), DeliverError> {
    let account = store
        .account(append.account)
        .map_err(|e| DeliverError::store("", e))?;
    let rcpt = account.address.clone();
    let settings = store
        .encryption_settings(append.account)
        .map_err(|e| DeliverError::store(&rcpt, e))?;
    let through_hooks =
        append.source == Source::Migration || (settings.enabled && settings.encrypt_on_append);
    let sealed = if through_hooks {
        let mut target =
            Target::load(store, append.account).map_err(|e| DeliverError::store(&rcpt, e))?;
        target.mailbox = append.mailbox;
        seal(
            chain,
            &target,
            &no_envelope(),
            &rcpt,
            raw,
            false,
            append.source,
        )
        .inspect_err(|e| refused(store, append.account, e, claim))?
    } else {
        let encrypted = already_encrypted(raw, &Split::new(raw)).is_some();
        Sealed {
            raw: raw.to_vec(),
            encrypted,
            fresh: false,
        }
    };
    Ok((rcpt, sealed))
}

/// The envelope of mail that did not come over LMTP.
fn no_envelope() -> Envelope {
    Envelope {
        mail_from: String::new(),
        lhlo: String::new(),
    }
}

// why: the two migration doors (`sealmail import`, `sealmail reencrypt`)
// need `seal` and `Target`, which are private to this module.
mod migrate;
