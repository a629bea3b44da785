//! Accounts: primary address, aliases, password, quota; the address
//! directory that RCPT TO resolves against.
//!
//! Addresses are lowercased and live in one namespace with list
//! addresses, so one address delivers to exactly one thing. Passwords are
//! stored as argon2id PHC strings; hashing happens before any lock is
//! taken and outside the transaction (which may run again), because it
//! is deliberately slow. Every change of addresses is a transaction of
//! the directory scope (`txn`), so two processes creating the same
//! address cannot both succeed. Removing an account is one batch
//! of range deletes over every account-scoped column family.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};

use super::error::{bug, corrupt, MailError};
use super::keys::{self, Key};
use super::log::{AuditKind, ChangeKind, ChangedObject};
use super::mail::{now_secs, MailStore};
use super::records::{Account, AccountId, MailboxRole, Record};
use super::txn::{Scope, Tx};
use super::{Cf, KeyRange, Order};

const MAX_ADDRESS_LEN: usize = 320;

/// The stored account: profile plus the counters that serialise changes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AccountRecord {
    pub(crate) address: String,
    pub(crate) aliases: Vec<String>,
    pub(crate) password_hash: Option<String>,
    pub(crate) quota_bytes: Option<u64>,
    pub(crate) used_bytes: u64,
    pub(crate) created: i64,
    pub(crate) next_mailbox_id: u32,
    pub(crate) next_uid_validity: u32,
    pub(crate) modseq: u64,
    pub(crate) audit_seq: u64,
}

impl Record for AccountRecord {
    const VERSION: u8 = 1;
}

impl AccountRecord {
    fn view(&self, id: AccountId) -> Account {
        Account {
            id,
            address: self.address.clone(),
            aliases: self.aliases.clone(),
            has_password: self.password_hash.is_some(),
            quota_bytes: self.quota_bytes,
            used_bytes: self.used_bytes,
            created: self.created,
            modseq: self.modseq,
        }
    }
}

/// What an address delivers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// An account (by its primary address or an alias).
    Account(AccountId),
    /// A mailing list, by its address.
    List(String),
}

impl MailStore {
    pub(crate) fn account_record(&self, id: AccountId) -> Result<AccountRecord, MailError> {
        self.load(&Key::Account(id))?
            .ok_or_else(|| MailError::AccountNotFound {
                account: format!("#{id}"),
            })
    }

    /// What `address` (as given in RCPT TO, any case) delivers to.
    pub fn resolve_address(&self, address: &str) -> Result<Option<Recipient>, MailError> {
        let Ok(address) = normalize_address(address) else {
            return Ok(None);
        };
        if let Some(id) = self.load::<AccountIdRecord>(&Key::Address(address.clone()))? {
            return Ok(Some(Recipient::Account(id.0)));
        }
        if self
            .store
            .get(Cf::Lists, &Key::List(address.clone()).encode())?
            .is_some()
        {
            return Ok(Some(Recipient::List(address)));
        }
        Ok(None)
    }

    /// The accounts `addresses` (primary or alias, any case) belong to,
    /// in their order, read in one engine call; `None` for an address
    /// that is not an account's (a list's, someone else's, malformed).
    pub fn resolve_accounts(
        &self,
        addresses: &[String],
    ) -> Result<Vec<Option<AccountId>>, MailError> {
        let valid: Vec<Option<String>> = addresses
            .iter()
            .map(|a| normalize_address(a).ok())
            .collect();
        let keys: Vec<Key> = valid.iter().flatten().cloned().map(Key::Address).collect();
        let mut found = self.load_many::<AccountIdRecord>(&keys)?.into_iter();
        Ok(valid
            .iter()
            .map(|v| {
                v.as_ref()
                    .and_then(|_| found.next().flatten())
                    .map(|id| id.0)
            })
            .collect())
    }

    /// The account `address` (primary or alias) belongs to.
    pub fn account_by_address(&self, address: &str) -> Result<Account, MailError> {
        match self.resolve_address(address)? {
            Some(Recipient::Account(id)) => self.account(id),
            _ => Err(MailError::AccountNotFound {
                account: address.to_string(),
            }),
        }
    }

    /// The account `id`.
    pub fn account(&self, id: AccountId) -> Result<Account, MailError> {
        Ok(self.account_record(id)?.view(id))
    }

    /// Every account, in id order.
    pub fn list_accounts(&self) -> Result<Vec<Account>, MailError> {
        let all = KeyRange::prefix(&[]);
        let rows =
            self.scan_records::<AccountRecord>(Cf::Accounts, &all, Order::Forward, usize::MAX)?;
        rows.into_iter()
            .map(|(key, rec)| match key {
                Key::Account(id) => Ok(rec.view(id)),
                _ => Err(bug("non-account key in accounts").into()),
            })
            .collect()
    }

    /// Creates an account with its default mailboxes (INBOX, Sent,
    /// Drafts, Trash, Junk, Archive). Without a password it receives mail
    /// but cannot log in. Addresses are lowercased.
    pub fn add_account(
        &self,
        address: &str,
        password: Option<&str>,
        aliases: &[String],
    ) -> Result<Account, MailError> {
        let address = normalize_address(address)?;
        let aliases = normalize_aliases(&address, aliases)?;
        let password_hash = password.map(hash_password).transpose()?;
        let (id, rec) = self.update_directory(&[], |tx| {
            for a in std::iter::once(&address).chain(&aliases) {
                self.ensure_address_free(a)?;
            }
            let next: u32 = self.load(&Key::NextAccountId)?.unwrap_or(1);
            let id = AccountId(next);
            // why here: the id is known only now; nothing of the account
            // exists yet to have been read unguarded.
            tx.guard(&*self.store, &[Scope::Account(id)])?;
            let next_id = next
                .checked_add(1)
                .ok_or_else(|| bug("account ids exhausted"))?;
            tx.put(&Key::NextAccountId, &next_id)?;
            let rec = new_account(address.clone(), aliases.clone(), password_hash.clone());
            let rec = self.stage_new_account(tx, id, rec)?;
            Ok((id, rec))
        })?;
        tracing::info!(account = %id, "account added");
        Ok(rec.view(id))
    }

    /// Adds the account record `rec`, its addresses and default mailboxes
    /// to `tx`.
    fn stage_new_account(
        &self,
        tx: &mut Tx,
        id: AccountId,
        mut rec: AccountRecord,
    ) -> Result<AccountRecord, MailError> {
        for a in std::iter::once(&rec.address).chain(&rec.aliases) {
            tx.put(&Key::Address(a.clone()), &AccountIdRecord(id))?;
        }
        let roles = [
            ("INBOX", MailboxRole::Inbox),
            ("Sent", MailboxRole::Sent),
            ("Drafts", MailboxRole::Drafts),
            ("Trash", MailboxRole::Trash),
            ("Junk", MailboxRole::Junk),
            ("Archive", MailboxRole::Archive),
        ];
        for (name, role) in roles {
            self.new_mailbox(tx, id, &mut rec, name.to_string(), None, Some(role))?;
        }
        tx.change(id, &mut rec, ChangeKind::Created, ChangedObject::Account)?;
        tx.put(&Key::Account(id), &rec)?;
        Ok(rec)
    }

    /// Removes the account and everything it owns: addresses, mailboxes,
    /// messages, blobs, certificates, settings, changes, audit log and
    /// import markers.
    pub fn remove_account(&self, id: AccountId) -> Result<(), MailError> {
        self.update_directory(&[id], |tx| {
            let rec = self.account_record(id)?;
            for a in std::iter::once(&rec.address).chain(&rec.aliases) {
                tx.delete(&Key::Address(a.clone()));
            }
            for cf in ACCOUNT_SCOPED {
                tx.batch.delete_range(cf, keys::account_range(id));
            }
            tx.delete_blob_range(keys::account_range(id));
            Ok(())
        })?;
        tracing::info!(account = %id, "account removed");
        Ok(())
    }

    /// Replaces the account's aliases.
    pub fn set_aliases(&self, id: AccountId, aliases: &[String]) -> Result<Account, MailError> {
        self.update_directory(&[id], |tx| {
            let mut rec = self.account_record(id)?;
            let aliases = normalize_aliases(&rec.address, aliases)?;
            for old in rec.aliases.iter().filter(|a| !aliases.contains(a)) {
                tx.delete(&Key::Address(old.clone()));
            }
            for new in aliases.iter().filter(|a| !rec.aliases.contains(a)) {
                self.ensure_address_free(new)?;
                tx.put(&Key::Address(new.clone()), &AccountIdRecord(id))?;
            }
            rec.aliases = aliases;
            tx.change(id, &mut rec, ChangeKind::Updated, ChangedObject::Account)?;
            tx.put(&Key::Account(id), &rec)?;
            Ok(rec.view(id))
        })
    }

    /// Sets (or with `None` clears) the password, stored as an argon2id
    /// hash. The password is never logged.
    ///
    /// Server-side reading keys are wrapped under the old password, which
    /// the operator setting this one does not know: they are dropped, and
    /// reading with them, in the same transaction (`reading`).
    pub fn set_password(&self, id: AccountId, password: Option<&str>) -> Result<(), MailError> {
        let hash = password.map(hash_password).transpose()?;
        self.update_account(id, |tx| {
            let mut rec = self.account_record(id)?;
            rec.password_hash.clone_from(&hash);
            tx.change(id, &mut rec, ChangeKind::Updated, ChangedObject::Account)?;
            if self.drop_reading_keys(tx, id)? {
                tx.change(id, &mut rec, ChangeKind::Updated, ChangedObject::Settings)?;
                let details = "all: the password was reset".to_string();
                tx.audit(
                    id,
                    &mut rec,
                    now_secs(),
                    AuditKind::ReadingKeyRemoved,
                    details,
                )?;
            }
            tx.put(&Key::Account(id), &rec)
        })
    }

    /// Whether `password` is the account's password (`false` when none is
    /// set). Costs one argon2id evaluation; takes no lock.
    pub fn verify_password(&self, id: AccountId, password: &str) -> Result<bool, MailError> {
        let rec = self.account_record(id)?;
        let Some(stored) = rec.password_hash else {
            return Ok(false);
        };
        verify_hash(&stored, password)
    }

    /// The account `address` names, when `password` is its password.
    ///
    /// Costs exactly one argon2id evaluation whatever the outcome: an
    /// unknown address, a list address or an account without a password
    /// is checked against a fixed hash instead, so that the answer's time
    /// does not tell which addresses exist (IMAP and JMAP both log in
    /// here). The one exception: the same address and password that
    /// succeeded within the last minutes, against the same stored hash,
    /// skip the evaluation (`logins`; only a right password can). Takes
    /// no lock.
    pub fn check_login(&self, address: &str, password: &str) -> Result<Option<Account>, MailError> {
        let found = match self.resolve_address(address) {
            Ok(Some(Recipient::Account(id))) => Some((id, self.account_record(id)?)),
            Ok(_) | Err(MailError::InvalidAddress { .. }) => None,
            Err(e) => return Err(e),
        };
        let stored = found
            .as_ref()
            .and_then(|(_, rec)| rec.password_hash.clone());
        let key = self.logins.key(address, password);
        if let (Some((id, rec)), Some(h)) = (&found, &stored) {
            if self.logins.remembers(&key, *id, &stamp(h)) {
                return Ok(Some(rec.view(*id)));
            }
        }
        let hash = match &stored {
            Some(h) => h.as_str(),
            None => dummy_hash()?,
        };
        let matches = verify_hash(hash, password)?;
        Ok(match (found, stored) {
            (Some((id, rec)), Some(h)) if matches => {
                self.logins.remember(key, id, stamp(&h));
                Some(rec.view(id))
            }
            _ => None,
        })
    }

    /// Waits for a slot for one password check ([`Self::check_login`]),
    /// held until the permit is dropped: take it on the async side before
    /// sending the check to the blocking pool (`logins`).
    pub async fn login_slot(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.logins.slot().await
    }

    /// Sets the quota in bytes (`None`: unlimited).
    pub fn set_quota(&self, id: AccountId, quota_bytes: Option<u64>) -> Result<(), MailError> {
        self.change_account(id, |rec| rec.quota_bytes = quota_bytes)
    }

    /// Applies `f` to the account record and logs the change.
    fn change_account(
        &self,
        id: AccountId,
        f: impl Fn(&mut AccountRecord),
    ) -> Result<(), MailError> {
        self.update_account(id, |tx| {
            let mut rec = self.account_record(id)?;
            f(&mut rec);
            tx.change(id, &mut rec, ChangeKind::Updated, ChangedObject::Account)?;
            tx.put(&Key::Account(id), &rec)
        })
    }

    pub(crate) fn ensure_address_free(&self, address: &str) -> Result<(), MailError> {
        let taken = self
            .store
            .get(Cf::Addresses, &Key::Address(address.to_string()).encode())?;
        let list = self
            .store
            .get(Cf::Lists, &Key::List(address.to_string()).encode())?;
        if taken.is_some() || list.is_some() {
            return Err(MailError::AddressTaken {
                address: address.to_string(),
            });
        }
        Ok(())
    }
}

/// A fresh account record with no mailboxes yet.
fn new_account(
    address: String,
    aliases: Vec<String>,
    password_hash: Option<String>,
) -> AccountRecord {
    let now = now_secs();
    AccountRecord {
        address,
        aliases,
        password_hash,
        quota_bytes: None,
        used_bytes: 0,
        created: now,
        next_mailbox_id: 1,
        next_uid_validity: u32::try_from(now).unwrap_or(1).max(1),
        modseq: 0,
        audit_seq: 0,
    }
}

/// Account-scoped column families: keys start with the account id.
/// (Bodies, `blobs`, are the blob store's: deleted after the commit.)
const ACCOUNT_SCOPED: [Cf; 14] = [
    Cf::Accounts,
    Cf::Mailboxes,
    Cf::MailboxNames,
    Cf::Messages,
    Cf::BlobRefs,
    Cf::Certs,
    Cf::Settings,
    Cf::Changes,
    Cf::Audit,
    Cf::Imports,
    Cf::AppTokens,
    Cf::Emails,
    Cf::Threads,
    Cf::MessageIds,
];

impl Record for u32 {
    const VERSION: u8 = 1;
}

impl Record for u64 {
    const VERSION: u8 = 1;
}

/// Value of [`Cf::Addresses`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AccountIdRecord(pub(crate) AccountId);

impl Record for AccountIdRecord {
    const VERSION: u8 = 1;
}

/// Lowercases and checks an address (local@domain, no spaces or controls).
pub(crate) fn normalize_address(address: &str) -> Result<String, MailError> {
    let bad = |reason| MailError::InvalidAddress {
        address: address.to_string(),
        reason,
    };
    let a = address
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_lowercase();
    if a.len() > MAX_ADDRESS_LEN {
        return Err(bad("longer than 320 bytes"));
    }
    if a.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("contains a space or control character"));
    }
    match a.rsplit_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
        {
            Ok(a)
        }
        _ => Err(bad("expected local-part@domain")),
    }
}

fn normalize_aliases(primary: &str, aliases: &[String]) -> Result<Vec<String>, MailError> {
    let mut out: Vec<String> = Vec::with_capacity(aliases.len());
    for a in aliases {
        let a = normalize_address(a)?;
        if a != primary && !out.contains(&a) {
            out.push(a);
        }
    }
    Ok(out)
}

/// A value that changes whenever the account's password is set or
/// cleared: a hash of the stored PHC string, whose salt is fresh each
/// time. Lets the memory of successful logins (`logins`) drop an entry
/// the moment the password changes.
fn stamp(hash: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(hash.as_bytes()).into()
}

/// The argon2id hash logins of unknown addresses are checked against,
/// made once per process with the same parameters as real ones.
fn dummy_hash() -> Result<&'static str, MailError> {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if let Some(h) = DUMMY.get() {
        return Ok(h);
    }
    let made = hash_password("no account has this password")?;
    Ok(DUMMY.get_or_init(|| made))
}

/// Whether `password` matches the argon2id PHC string `hash`: the one
/// place a password is checked, so every login costs the same.
fn verify_hash(hash: &str, password: &str) -> Result<bool, MailError> {
    #[cfg(test)]
    tests::VERIFICATIONS.with(|n| n.set(n.get() + 1));
    let parsed = PasswordHash::new(hash)
        .map_err(|e| corrupt(Cf::Accounts, format!("password hash: {e}")))?;
    Ok(Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok())
}

fn hash_password(password: &str) -> Result<String, MailError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| bug(format!("argon2: {e}")).into())
}

#[cfg(test)]
mod tests;
