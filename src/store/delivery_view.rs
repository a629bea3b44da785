//! What a delivery needs to know of an account — its address, its INBOX,
//! its encryption settings and active certificates — kept per node for
//! the accounts mail recently went to, and checked against the account's
//! *view version* before each use.
//!
//! # Why this is as fresh as reading every time
//!
//! Every batch that writes, deletes or range-deletes a certificate, the
//! settings or a mailbox name of an account also writes a new random
//! view version for it (`Key::ViewVersion`), in the same atomic batch:
//! `txn` does it for every commit by looking at the batch, so no write
//! site can forget. (The account's own version key would not do: every
//! delivery bumps it.) The rest of the view does not change while the
//! account exists: the primary address is fixed, and removing the account
//! range-deletes its certificates. A view is read version first, records
//! after, and kept with the version it was read at. Before each use the
//! version is read again: unchanged, nothing the view holds has changed
//! since it was read (a certificate removed or deactivated, encryption
//! turned on or off, the INBOX renamed); changed, the view is read anew.
//! A write racing the first read can only make the records newer than
//! the version they are kept with, and then the next check reads again.
//! So a delivery sees what a delivery reading everything would have seen
//! at its version check, on every node: the versions are in the shared
//! store.
//!
//! What it saves: a delivery's own reads (the account, the INBOX's name
//! and record, the settings, a scan of the certificates) were five round
//! trips on PostgreSQL per copy; the check is one read per copy, or one
//! per chunk of a list fan-out for all its members.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::error::MailError;
use super::keys::Key;
use super::mail::MailStore;
use super::records::{AccountId, MailboxId};
use super::{Certificate, Cf, EncryptionSettings};

/// Views kept at most; when full, all are dropped and the cache fills
/// again. 16,384 covers a list of 10,000 members in one pass, at a few
/// KiB each (certificates are about 1 KiB of DER).
const CAPACITY: usize = 16_384;

/// What a delivery to an account's INBOX reads about the account.
#[derive(Debug, Clone)]
pub struct DeliveryView {
    /// The account's primary address (fixed for its life).
    pub address: String,
    /// Its INBOX.
    pub inbox: MailboxId,
    /// Its encryption settings.
    pub settings: EncryptionSettings,
    /// Its active certificates, in fingerprint order.
    pub certificates: Vec<Certificate>,
}

/// A kept view with the raw view version it was read at (`None`: the
/// account had no view version yet).
type Kept = (Option<Vec<u8>>, Arc<DeliveryView>);

/// Views by account.
#[derive(Debug, Default)]
pub(crate) struct ViewCache(Mutex<HashMap<AccountId, Kept>>);

impl ViewCache {
    fn cached(&self, id: AccountId, version: &Option<Vec<u8>>) -> Option<Arc<DeliveryView>> {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match map.get(&id) {
            Some((read_at, view)) if read_at == version => Some(Arc::clone(view)),
            _ => None,
        }
    }

    fn keep(&self, id: AccountId, version: Option<Vec<u8>>, view: &Arc<DeliveryView>) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= CAPACITY && !map.contains_key(&id) {
            map.clear();
        }
        map.insert(id, (version, Arc::clone(view)));
    }
}

impl MailStore {
    /// The delivery view of account `id`: see the module doc.
    pub fn delivery_view(&self, id: AccountId) -> Result<Arc<DeliveryView>, MailError> {
        self.delivery_views(&[id]).and_then(|mut all| {
            all.pop()
                .unwrap_or_else(|| Err(super::error::bug("one view per account").into()))
        })
    }

    /// The delivery views of `ids`, in their order: the versions of all
    /// of them in one read, then the records of those whose version
    /// moved since their view was kept. An account that cannot be read
    /// (removed, no INBOX) gets its own error; the outer error is the
    /// engine's, for all.
    pub fn delivery_views(
        &self,
        ids: &[AccountId],
    ) -> Result<Vec<Result<Arc<DeliveryView>, MailError>>, MailError> {
        let keys: Vec<Vec<u8>> = ids
            .iter()
            .map(|&id| Key::ViewVersion(id).encode())
            .collect();
        let versions = self.store.get_many(Cf::Meta, &keys)?;
        Ok(ids
            .iter()
            .zip(versions)
            .map(|(&id, version)| {
                if let Some(view) = self.views.cached(id, &version) {
                    return Ok(view);
                }
                let view = Arc::new(self.read_delivery_view(id)?);
                self.views.keep(id, version, &view);
                Ok(view)
            })
            .collect())
    }

    /// The view's records, read now (after the version: module doc).
    fn read_delivery_view(&self, id: AccountId) -> Result<DeliveryView, MailError> {
        let address = self.account(id)?.address;
        let inbox = self.mailbox_by_name(id, "INBOX")?.id;
        let settings = self.encryption_settings(id)?;
        let certificates = self
            .list_certificates(id)?
            .into_iter()
            .filter(|c| c.is_active)
            .collect();
        Ok(DeliveryView {
            address,
            inbox,
            settings,
            certificates,
        })
    }
}
