//! App tokens: per-account secrets that log in instead of the password
//! (JMAP `Authorization: Bearer`, the IMAP password), ARCHITECTURE.md
//! "Outside contracts" (`urn:sealmail:params:jmap:auth`, `sealmail token`).
//!
//! # Secret and storage
//!
//! A secret is [`TOKEN_PREFIX`] followed by base64url (no padding) of the
//! account id (4 bytes), the token id (8 bytes) and 32 bytes from the
//! operating system's CSPRNG: 256 bits no one can guess. The ids in it
//! let a Bearer request, which names no user, find its one record with a
//! single read of that account's scope; they are not secret.
//!
//! The store keeps only the SHA-256 of the whole secret ([`Cf::AppTokens`],
//! keyed by account then token id, so that removing the account removes
//! its tokens). A fast hash is enough: the secret has 256 bits of
//! entropy, so unlike a password it cannot be found by guessing from the
//! hash. The hash is compared in constant time. The secret is returned
//! once, when it is made, and never again.
//!
//! # lastUsed
//!
//! A successful check writes `last_used` only when the stored value is
//! [`LAST_USED_EVERY`] old or more, so a client that sends a request a
//! second costs one write a minute, not one per request.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use rand_core::{OsRng, RngCore as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::error::MailError;
use super::keys::{self, Key};
use super::log::{AuditKind, ChangeKind, ChangedObject};
use super::mail::{now_secs, MailStore};
use super::records::{Account, AccountId, Record};
use super::{Cf, Order};

/// What every secret starts with, so that a leaked one is recognisable
/// (secret scanners, logs) and the IMAP login knows to try it as a token.
pub const TOKEN_PREFIX: &str = "smt_";
/// Tokens one account may hold. why 50: a phone, a laptop and a few
/// scripts need a handful; the bound keeps a listing and the record
/// count small.
pub const MAX_APP_TOKENS: usize = 50;
/// Longest token name, in characters.
const MAX_NAME_CHARS: usize = 100;
/// `last_used` is rewritten at most this often (seconds).
const LAST_USED_EVERY: i64 = 60;
/// Random bytes of a secret.
const SECRET_BYTES: usize = 32;

/// A token's id: 16 lowercase hex digits outside, a u64 inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TokenId(pub u64);

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl FromStr for TokenId {
    type Err = MailError;

    fn from_str(s: &str) -> Result<Self, MailError> {
        let not_found = || MailError::AppTokenNotFound { id: s.to_string() };
        if s.len() != 16 {
            return Err(not_found());
        }
        u64::from_str_radix(s, 16)
            .map(TokenId)
            .map_err(|_| not_found())
    }
}

/// An app token as shown: never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppToken {
    /// Its id.
    pub id: TokenId,
    /// What the user called it.
    pub name: String,
    /// When it was made, unix seconds.
    pub created: i64,
    /// When it last logged in (to the minute), unix seconds.
    pub last_used: Option<i64>,
}

/// A token just made, with the secret shown this once.
#[derive(Debug)]
#[non_exhaustive]
pub struct NewAppToken {
    /// The token.
    pub token: AppToken,
    /// The secret (`smt_...`); the store keeps only its hash.
    pub secret: String,
}

/// Value of [`Cf::AppTokens`].
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TokenRecord {
    name: String,
    created: i64,
    last_used: Option<i64>,
    /// SHA-256 of the whole secret.
    hash: [u8; 32],
}

impl Record for TokenRecord {
    const VERSION: u8 = 1;
}

impl TokenRecord {
    fn view(&self, id: TokenId) -> AppToken {
        AppToken {
            id,
            name: self.name.clone(),
            created: self.created,
            last_used: self.last_used,
        }
    }
}

fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The account and token a secret names, if it has the shape of one.
pub(crate) fn parse_secret(secret: &str) -> Option<(AccountId, TokenId)> {
    let body = secret.strip_prefix(TOKEN_PREFIX)?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .ok()?;
    if raw.len() != 4 + 8 + SECRET_BYTES {
        return None;
    }
    let account = u32::from_be_bytes(raw.get(..4)?.try_into().ok()?);
    let token = u64::from_be_bytes(raw.get(4..12)?.try_into().ok()?);
    Some((AccountId(account), TokenId(token)))
}

fn make_secret(account: AccountId, token: TokenId) -> String {
    let mut raw = Vec::with_capacity(4 + 8 + SECRET_BYTES);
    raw.extend(account.0.to_be_bytes());
    raw.extend(token.0.to_be_bytes());
    let mut random = [0u8; SECRET_BYTES];
    OsRng.fill_bytes(&mut random);
    raw.extend(random);
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    )
}

/// `name` trimmed, or why it is refused.
fn check_name(name: &str) -> Result<String, MailError> {
    let bad = |reason| MailError::InvalidAppTokenName {
        name: name.to_string(),
        reason,
    };
    let name = name.trim();
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(bad("longer than 100 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(bad("contains a control character"));
    }
    Ok(name.to_string())
}

impl MailStore {
    /// Makes an app token named `name` for the account; the secret is in
    /// the result and nowhere else.
    pub fn add_app_token(&self, id: AccountId, name: &str) -> Result<NewAppToken, MailError> {
        let name = check_name(name)?;
        let created = now_secs();
        self.update_account(id, |tx| {
            let mut rec = self.account_record(id)?;
            let held = self
                .store
                .scan(
                    Cf::AppTokens,
                    &keys::account_range(id),
                    Order::Forward,
                    MAX_APP_TOKENS,
                )?
                .len();
            if held >= MAX_APP_TOKENS {
                return Err(MailError::TooManyAppTokens {
                    limit: MAX_APP_TOKENS,
                });
            }
            let token = TokenId(OsRng.next_u64());
            let key = Key::AppToken(id, token.0);
            if self.store.get(Cf::AppTokens, &key.encode())?.is_some() {
                // why: two ids in 2^64 colliding is a broken generator.
                return Err(super::error::bug("app token id collision").into());
            }
            let secret = make_secret(id, token);
            let record = TokenRecord {
                name: name.clone(),
                created,
                last_used: None,
                hash: hash(&secret),
            };
            tx.put(&key, &record)?;
            tx.change(id, &mut rec, ChangeKind::Updated, ChangedObject::Account)?;
            let details = format!("{token} {name:?}");
            tx.audit(id, &mut rec, created, AuditKind::AppTokenAdded, details)?;
            tx.put(&Key::Account(id), &rec)?;
            Ok(NewAppToken {
                token: record.view(token),
                secret,
            })
        })
    }

    /// Every app token of the account, in id order.
    pub fn list_app_tokens(&self, id: AccountId) -> Result<Vec<AppToken>, MailError> {
        let range = keys::account_range(id);
        let rows =
            self.scan_records::<TokenRecord>(Cf::AppTokens, &range, Order::Forward, usize::MAX)?;
        Ok(rows
            .into_iter()
            .filter_map(|(key, rec)| match key {
                Key::AppToken(_, t) => Some(rec.view(TokenId(t))),
                _ => None,
            })
            .collect())
    }

    /// Removes an app token: the next login with it fails.
    pub fn remove_app_token(&self, id: AccountId, token: TokenId) -> Result<(), MailError> {
        let key = Key::AppToken(id, token.0);
        self.update_account(id, |tx| {
            let mut rec = self.account_record(id)?;
            let Some(found) = self.load::<TokenRecord>(&key)? else {
                return Err(MailError::AppTokenNotFound {
                    id: token.to_string(),
                });
            };
            tx.delete(&key);
            self.drop_token_reading_copy(tx, id, token)?;
            tx.change(id, &mut rec, ChangeKind::Updated, ChangedObject::Account)?;
            let details = format!("{token} {:?}", found.name);
            tx.audit(
                id,
                &mut rec,
                now_secs(),
                AuditKind::AppTokenRemoved,
                details,
            )?;
            tx.put(&Key::Account(id), &rec)
        })
    }

    /// The account `secret` logs in to, with the token's id; `None` for
    /// anything that is not a current token's secret. Updates `lastUsed`
    /// (see the module doc); failing to is logged, not a failed login.
    pub fn check_app_token(&self, secret: &str) -> Result<Option<(Account, TokenId)>, MailError> {
        let Some((id, token)) = parse_secret(secret) else {
            return Ok(None);
        };
        let key = Key::AppToken(id, token.0);
        let Some(record) = self.load::<TokenRecord>(&key)? else {
            return Ok(None);
        };
        if !bool::from(record.hash.ct_eq(&hash(secret))) {
            return Ok(None);
        }
        let account = match self.account(id) {
            Ok(a) => a,
            Err(MailError::AccountNotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let now = now_secs();
        if record
            .last_used
            .is_none_or(|t| now.saturating_sub(t) >= LAST_USED_EVERY)
        {
            if let Err(e) = self.touch_app_token(id, token, now) {
                tracing::warn!(error = %e, token = %token, "could not record an app token's last use");
            }
        }
        Ok(Some((account, token)))
    }

    /// Whether the token still exists (a session that logged in with it
    /// asks before each command).
    pub fn app_token_exists(&self, id: AccountId, token: TokenId) -> Result<bool, MailError> {
        Ok(self
            .store
            .get(Cf::AppTokens, &Key::AppToken(id, token.0).encode())?
            .is_some())
    }

    fn touch_app_token(&self, id: AccountId, token: TokenId, now: i64) -> Result<(), MailError> {
        let key = Key::AppToken(id, token.0);
        self.update_account(id, |tx| {
            // why read again: a removal meanwhile must not be undone, and
            // a concurrent login may have written it already.
            let Some(mut record) = self.load::<TokenRecord>(&key)? else {
                return Ok(());
            };
            if record
                .last_used
                .is_some_and(|t| now.saturating_sub(t) < LAST_USED_EVERY)
            {
                return Ok(());
            }
            record.last_used = Some(now);
            tx.put(&key, &record)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, MailStore, Account, Account) {
        let dir = tempfile::tempdir().unwrap();
        let store = MailStore::open(dir.path()).unwrap();
        let a = store.add_account("a@example.org", None, &[]).unwrap();
        let b = store.add_account("b@example.org", None, &[]).unwrap();
        (dir, store, a, b)
    }

    #[test]
    fn a_token_logs_in_to_its_own_account_only_until_removed() {
        let (_dir, store, a, b) = store();
        let made = store.add_app_token(a.id, "phone").unwrap();
        assert!(made.secret.starts_with(TOKEN_PREFIX));
        assert!(
            made.secret.len() > TOKEN_PREFIX.len() + 43,
            "{}",
            made.secret
        );
        let (who, token) = store.check_app_token(&made.secret).unwrap().unwrap();
        assert_eq!((who.id, token), (a.id, made.token.id));
        assert_ne!(who.id, b.id);
        // A different secret for the same ids is refused.
        let forged = make_secret(a.id, made.token.id);
        assert!(store.check_app_token(&forged).unwrap().is_none());
        assert!(store.check_app_token("smt_").unwrap().is_none());
        assert!(store.check_app_token("password").unwrap().is_none());
        store.remove_app_token(a.id, made.token.id).unwrap();
        assert!(store.check_app_token(&made.secret).unwrap().is_none());
        let again = store.remove_app_token(a.id, made.token.id).unwrap_err();
        assert!(
            matches!(again, MailError::AppTokenNotFound { .. }),
            "{again}"
        );
    }

    #[test]
    fn last_used_is_written_once_a_minute() {
        let (_dir, store, a, _) = store();
        let made = store.add_app_token(a.id, "laptop").unwrap();
        assert_eq!(store.list_app_tokens(a.id).unwrap()[0].last_used, None);
        store.check_app_token(&made.secret).unwrap().unwrap();
        let first = store.list_app_tokens(a.id).unwrap()[0].last_used.unwrap();
        let version = store.account(a.id).unwrap().modseq;
        store.check_app_token(&made.secret).unwrap().unwrap();
        assert_eq!(
            store.list_app_tokens(a.id).unwrap()[0].last_used,
            Some(first)
        );
        assert_eq!(store.account(a.id).unwrap().modseq, version);
    }

    #[test]
    fn tokens_go_with_their_account_and_are_bounded() {
        let (_dir, store, a, _) = store();
        let made = store.add_app_token(a.id, "x").unwrap();
        for _ in 1..MAX_APP_TOKENS {
            store.add_app_token(a.id, "more").unwrap();
        }
        let over = store.add_app_token(a.id, "one too many").unwrap_err();
        assert!(matches!(over, MailError::TooManyAppTokens { .. }), "{over}");
        let bad = store.add_app_token(a.id, "a\nb").unwrap_err();
        assert!(
            matches!(bad, MailError::InvalidAppTokenName { .. }),
            "{bad}"
        );
        store.remove_account(a.id).unwrap();
        assert!(store.check_app_token(&made.secret).unwrap().is_none());
        assert!(store.list_app_tokens(a.id).unwrap().is_empty());
    }

    #[test]
    fn token_ids_read_back() {
        let id = TokenId(0x00ab_cdef_0123_4567);
        assert_eq!(id.to_string(), "00abcdef01234567");
        assert_eq!("00abcdef01234567".parse::<TokenId>().unwrap(), id);
        assert!("xyz".parse::<TokenId>().is_err());
    }
}
