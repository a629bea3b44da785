//! Key encoding: every key the mail layer writes, as one typed [`Key`].
//!
//! The layout table is in the parent module's documentation. Integers are
//! big-endian so byte order is numeric order; a variable-length string
//! that is followed by more key material (a list address) carries a u16
//! length prefix, so `decode(encode(k)) == k` and prefixes never collide.
//! Property-tested below, including that byte order follows UID order.

use super::records::{AccountId, BlobHash, MailboxId, Uid};
use super::{Cf, KeyRange};
use crate::certs::Fingerprint;

/// Key of [`Cf::Meta`] holding the next account id.
const NEXT_ACCOUNT_ID: &[u8] = b"next_account_id";
/// Key of [`Cf::Meta`] holding the version of the address directory.
const DIRECTORY_VERSION: &[u8] = b"rev_directory";
/// Prefix of the [`Cf::Meta`] keys holding one account's version; the
/// account id follows. `rev` + 4 bytes is 7 bytes long, so it never
/// equals the two fixed keys above.
const ACCOUNT_VERSION: &[u8] = b"rev";
/// Prefix of the [`Cf::Meta`] keys holding the version of what a delivery
/// view of one account holds (`delivery_view`); the account id follows.
const VIEW_VERSION: &[u8] = b"view";
/// Key of [`Cf::Meta`] holding the version of the stored data's shape
/// (`upgrade`; absent: 0, a store written before data versions).
const DATA_VERSION: &[u8] = b"data_version";
/// Suffix of an account's server-side reading record in `settings`.
const READING: &[u8] = b"reading";
/// Suffix of an account's subscriptions without a mailbox in `settings`.
const SUBSCRIPTIONS: &[u8] = b"subscriptions";

/// Every key of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Key {
    Account(AccountId),
    Address(String),
    Mailbox(AccountId, MailboxId),
    MailboxName(AccountId, String),
    Message(AccountId, MailboxId, Uid),
    Blob(AccountId, BlobHash),
    BlobRef(AccountId, BlobHash),
    Cert(AccountId, Fingerprint),
    Settings(AccountId),
    /// The account's server-side reading record (`reading`): in the
    /// settings column family, after the account's settings.
    Reading(AccountId),
    /// The names the account subscribed whose mailbox is gone
    /// (`subscriptions`): in the settings column family too.
    Subscriptions(AccountId),
    Change(AccountId, u64),
    Audit(AccountId, u64),
    List(String),
    ListMember(String, String),
    ListKeyPair(String, Fingerprint),
    /// A message `sealmail import` stored, by the SHA-256 of its source.
    Import(AccountId, BlobHash),
    /// An app token of the account, by its id.
    AppToken(AccountId, u64),
    /// Where the Email with this id is (`acct email_id`).
    Email(AccountId, u64),
    /// One member of a thread (`acct thread_id email_id`).
    ThreadMember(AccountId, u64, u64),
    /// The thread of a Message-ID, by its SHA-256 (`acct hash`).
    MessageIdRef(AccountId, [u8; 32]),
    /// The next account id (u32).
    NextAccountId,
    /// The version of the address directory (u64; absent: 0), see `txn`.
    DirectoryVersion,
    /// The version of one account's records (u64; absent: 0), see `txn`.
    AccountVersion(AccountId),
    /// The version of the records a delivery view of the account holds
    /// (random bytes, new on every change of them), see `delivery_view`.
    ViewVersion(AccountId),
    /// The version of the stored data's shape (u32), see `upgrade`.
    DataVersion,
}

impl Key {
    /// The column family the key lives in.
    pub(crate) fn cf(&self) -> Cf {
        match self {
            Key::Account(_) => Cf::Accounts,
            Key::Address(_) => Cf::Addresses,
            Key::Mailbox(..) => Cf::Mailboxes,
            Key::MailboxName(..) => Cf::MailboxNames,
            Key::Message(..) => Cf::Messages,
            Key::Blob(..) => Cf::Blobs,
            Key::BlobRef(..) => Cf::BlobRefs,
            Key::Cert(..) => Cf::Certs,
            Key::Settings(_) | Key::Reading(_) | Key::Subscriptions(_) => Cf::Settings,
            Key::Change(..) => Cf::Changes,
            Key::Audit(..) => Cf::Audit,
            Key::List(_) => Cf::Lists,
            Key::ListMember(..) => Cf::ListMembers,
            Key::ListKeyPair(..) => Cf::ListKeys,
            Key::Import(..) => Cf::Imports,
            Key::AppToken(..) => Cf::AppTokens,
            Key::Email(..) => Cf::Emails,
            Key::ThreadMember(..) => Cf::Threads,
            Key::MessageIdRef(..) => Cf::MessageIds,
            Key::NextAccountId
            | Key::DirectoryVersion
            | Key::AccountVersion(_)
            | Key::ViewVersion(_)
            | Key::DataVersion => Cf::Meta,
        }
    }

    /// The key's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48);
        match self {
            Key::Account(a) | Key::Settings(a) => out.extend(a.0.to_be_bytes()),
            Key::Reading(a) => {
                out.extend(a.0.to_be_bytes());
                out.extend(READING);
            }
            Key::Subscriptions(a) => {
                out.extend(a.0.to_be_bytes());
                out.extend(SUBSCRIPTIONS);
            }
            Key::Address(s) | Key::List(s) => out.extend(s.as_bytes()),
            Key::Mailbox(a, m) => out.extend(mailbox_prefix(*a, *m)),
            Key::MailboxName(a, name) => {
                out.extend(a.0.to_be_bytes());
                out.extend(name.as_bytes());
            }
            Key::Message(a, m, uid) => {
                out.extend(mailbox_prefix(*a, *m));
                out.extend(uid.get().to_be_bytes());
            }
            Key::Blob(a, h) | Key::BlobRef(a, h) | Key::Import(a, h) => {
                out.extend(a.0.to_be_bytes());
                out.extend(h.0);
            }
            Key::Cert(a, fp) => {
                out.extend(a.0.to_be_bytes());
                out.extend(fp.as_bytes());
            }
            Key::Change(a, n) | Key::Audit(a, n) | Key::AppToken(a, n) | Key::Email(a, n) => {
                out.extend(a.0.to_be_bytes());
                out.extend(n.to_be_bytes());
            }
            Key::ListMember(list, member) => {
                out.extend(list_prefix(list));
                out.extend(member.as_bytes());
            }
            Key::ListKeyPair(list, fp) => {
                out.extend(list_prefix(list));
                out.extend(fp.as_bytes());
            }
            Key::ThreadMember(a, t, e) => {
                out.extend(a.0.to_be_bytes());
                out.extend(t.to_be_bytes());
                out.extend(e.to_be_bytes());
            }
            Key::MessageIdRef(a, h) => {
                out.extend(a.0.to_be_bytes());
                out.extend(h);
            }
            Key::NextAccountId => out.extend(NEXT_ACCOUNT_ID),
            Key::DataVersion => out.extend(DATA_VERSION),
            Key::DirectoryVersion => out.extend(DIRECTORY_VERSION),
            Key::AccountVersion(a) => {
                out.extend(ACCOUNT_VERSION);
                out.extend(a.0.to_be_bytes());
            }
            Key::ViewVersion(a) => {
                out.extend(VIEW_VERSION);
                out.extend(a.0.to_be_bytes());
            }
        }
        out
    }

    /// Parses a key read from `cf`; `None` if it is not a key we write.
    pub(crate) fn decode(cf: Cf, bytes: &[u8]) -> Option<Key> {
        let key = match cf {
            Cf::Accounts | Cf::Settings => {
                let (a, rest) = acct(bytes)?;
                match (cf, rest) {
                    (Cf::Accounts, []) => Key::Account(a),
                    (Cf::Settings, []) => Key::Settings(a),
                    (Cf::Settings, READING) => Key::Reading(a),
                    (Cf::Settings, SUBSCRIPTIONS) => Key::Subscriptions(a),
                    _ => return None,
                }
            }
            Cf::Addresses => Key::Address(String::from_utf8(bytes.to_vec()).ok()?),
            Cf::Lists => Key::List(String::from_utf8(bytes.to_vec()).ok()?),
            Cf::Mailboxes => {
                let (a, rest) = acct(bytes)?;
                Key::Mailbox(a, MailboxId(u32::from_be_bytes(exact::<4>(rest)?)))
            }
            Cf::MailboxNames => {
                let (a, rest) = acct(bytes)?;
                Key::MailboxName(a, String::from_utf8(rest.to_vec()).ok()?)
            }
            Cf::Messages => {
                let (a, rest) = acct(bytes)?;
                let (m, rest) = split::<4>(rest)?;
                let uid = Uid::new(u32::from_be_bytes(exact::<4>(rest)?))?;
                Key::Message(a, MailboxId(u32::from_be_bytes(m)), uid)
            }
            Cf::Blobs | Cf::BlobRefs | Cf::Imports => {
                let (a, rest) = acct(bytes)?;
                let h = BlobHash(exact::<32>(rest)?);
                match cf {
                    Cf::Blobs => Key::Blob(a, h),
                    Cf::BlobRefs => Key::BlobRef(a, h),
                    _ => Key::Import(a, h),
                }
            }
            Cf::Certs => {
                let (a, rest) = acct(bytes)?;
                Key::Cert(a, Fingerprint::from(exact::<32>(rest)?))
            }
            Cf::Changes | Cf::Audit | Cf::AppTokens | Cf::Emails => {
                let (a, rest) = acct(bytes)?;
                let n = u64::from_be_bytes(exact::<8>(rest)?);
                match cf {
                    Cf::Changes => Key::Change(a, n),
                    Cf::Audit => Key::Audit(a, n),
                    Cf::Emails => Key::Email(a, n),
                    _ => Key::AppToken(a, n),
                }
            }
            Cf::Threads => {
                let (a, rest) = acct(bytes)?;
                let (t, rest) = split::<8>(rest)?;
                let e = u64::from_be_bytes(exact::<8>(rest)?);
                Key::ThreadMember(a, u64::from_be_bytes(t), e)
            }
            Cf::MessageIds => {
                let (a, rest) = acct(bytes)?;
                Key::MessageIdRef(a, exact::<32>(rest)?)
            }
            Cf::ListMembers | Cf::ListKeys => {
                let (len, rest) = split::<2>(bytes)?;
                let len = usize::from(u16::from_be_bytes(len));
                let list = String::from_utf8(rest.get(..len)?.to_vec()).ok()?;
                let tail = rest.get(len..)?;
                if cf == Cf::ListMembers {
                    Key::ListMember(list, String::from_utf8(tail.to_vec()).ok()?)
                } else {
                    Key::ListKeyPair(list, Fingerprint::from(exact::<32>(tail)?))
                }
            }
            Cf::Meta => meta(bytes)?,
        };
        Some(key)
    }
}

fn meta(bytes: &[u8]) -> Option<Key> {
    if bytes == NEXT_ACCOUNT_ID {
        return Some(Key::NextAccountId);
    }
    if bytes == DIRECTORY_VERSION {
        return Some(Key::DirectoryVersion);
    }
    if bytes == DATA_VERSION {
        return Some(Key::DataVersion);
    }
    if let Some(rest) = bytes.strip_prefix(VIEW_VERSION) {
        return Some(Key::ViewVersion(AccountId(u32::from_be_bytes(exact::<4>(
            rest,
        )?))));
    }
    let rest = bytes.strip_prefix(ACCOUNT_VERSION)?;
    Some(Key::AccountVersion(AccountId(u32::from_be_bytes(exact::<
        4,
    >(
        rest
    )?))))
}

fn acct(b: &[u8]) -> Option<(AccountId, &[u8])> {
    let (head, rest) = split::<4>(b)?;
    Some((AccountId(u32::from_be_bytes(head)), rest))
}

fn split<const N: usize>(b: &[u8]) -> Option<([u8; N], &[u8])> {
    let head = b.get(..N)?.try_into().ok()?;
    Some((head, b.get(N..)?))
}

fn exact<const N: usize>(b: &[u8]) -> Option<[u8; N]> {
    b.try_into().ok()
}

fn mailbox_prefix(a: AccountId, m: MailboxId) -> [u8; 8] {
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&a.0.to_be_bytes());
    out[4..].copy_from_slice(&m.0.to_be_bytes());
    out
}

/// `lenL list`. List addresses are validated to at most 320 bytes, so the
/// length always fits; a longer one would be truncated in the prefix only
/// and still be unique in the rest of the key.
fn list_prefix(list: &str) -> Vec<u8> {
    let len = u16::try_from(list.len()).unwrap_or(u16::MAX);
    let mut out = len.to_be_bytes().to_vec();
    out.extend(list.as_bytes());
    out
}

/// Every key of one account in an account-scoped column family.
pub(crate) fn account_range(a: AccountId) -> KeyRange {
    KeyRange::prefix(&a.0.to_be_bytes())
}

/// Every message of a mailbox, starting after `after`.
pub(crate) fn messages_range(a: AccountId, m: MailboxId, after: Option<Uid>) -> KeyRange {
    let mut range = KeyRange::prefix(&mailbox_prefix(a, m));
    if let Some(uid) = after {
        range.start = Key::Message(a, m, uid).encode();
        range.start.push(0);
    }
    range
}

/// Every mailbox name of an account under `parent/`.
pub(crate) fn children_range(a: AccountId, parent: &str) -> KeyRange {
    KeyRange::prefix(&Key::MailboxName(a, format!("{parent}/")).encode())
}

/// Every change of an account after `since`.
pub(crate) fn changes_after(a: AccountId, since: u64) -> KeyRange {
    let mut range = account_range(a);
    range.start = Key::Change(a, since).encode();
    range.start.push(0);
    range
}

/// Every member of a thread.
pub(crate) fn thread_range(a: AccountId, thread: u64) -> KeyRange {
    let mut prefix = a.0.to_be_bytes().to_vec();
    prefix.extend(thread.to_be_bytes());
    KeyRange::prefix(&prefix)
}

/// Every member (or key) of a list.
pub(crate) fn list_range(list: &str) -> KeyRange {
    KeyRange::prefix(&list_prefix(list))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_key() -> impl Strategy<Value = Key> {
        let acct = any::<u32>().prop_map(AccountId);
        let mbox = any::<u32>().prop_map(MailboxId);
        let uid = (1..=u32::MAX).prop_map(|n| Uid::new(n).unwrap());
        let hash = any::<[u8; 32]>();
        let text = "[a-z0-9@./\\u{e9}-]{0,40}";
        prop_oneof![
            acct.clone().prop_map(Key::Account),
            text.prop_map(Key::Address),
            (acct.clone(), mbox.clone()).prop_map(|(a, m)| Key::Mailbox(a, m)),
            (acct.clone(), text).prop_map(|(a, n)| Key::MailboxName(a, n)),
            (acct.clone(), mbox, uid).prop_map(|(a, m, u)| Key::Message(a, m, u)),
            (acct.clone(), hash).prop_map(|(a, h)| Key::Blob(a, BlobHash(h))),
            (acct.clone(), hash).prop_map(|(a, h)| Key::BlobRef(a, BlobHash(h))),
            (acct.clone(), hash).prop_map(|(a, h)| Key::Import(a, BlobHash(h))),
            (acct.clone(), hash).prop_map(|(a, h)| Key::Cert(a, h.into())),
            acct.clone().prop_map(Key::Settings),
            acct.clone().prop_map(Key::Reading),
            acct.clone().prop_map(Key::Subscriptions),
            (acct.clone(), any::<u64>()).prop_map(|(a, n)| Key::Change(a, n)),
            (acct.clone(), any::<u64>()).prop_map(|(a, n)| Key::Audit(a, n)),
            (acct.clone(), any::<u64>()).prop_map(|(a, n)| Key::AppToken(a, n)),
            text.prop_map(Key::List),
            (text, text).prop_map(|(l, m)| Key::ListMember(l, m)),
            (text, hash).prop_map(|(l, h)| Key::ListKeyPair(l, h.into())),
            (acct.clone(), any::<u64>()).prop_map(|(a, n)| Key::Email(a, n)),
            (acct.clone(), any::<u64>(), any::<u64>())
                .prop_map(|(a, t, e)| Key::ThreadMember(a, t, e)),
            (acct.clone(), hash).prop_map(|(a, h)| Key::MessageIdRef(a, h)),
            Just(Key::DataVersion),
            Just(Key::NextAccountId),
            Just(Key::DirectoryVersion),
            acct.clone().prop_map(Key::AccountVersion),
            acct.prop_map(Key::ViewVersion),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(key in any_key()) {
            prop_assert_eq!(Key::decode(key.cf(), &key.encode()), Some(key));
        }

        #[test]
        fn message_keys_sort_by_uid(a: u32, m: u32, x in 1..=u32::MAX, y in 1..=u32::MAX) {
            let k = |n| Key::Message(AccountId(a), MailboxId(m), Uid::new(n).unwrap()).encode();
            prop_assert_eq!(x.cmp(&y), k(x).cmp(&k(y)));
        }

        #[test]
        fn changes_after_excludes_since(a: u32, since: u64, n: u64) {
            let range = changes_after(AccountId(a), since);
            prop_assert_eq!(range.contains(&Key::Change(AccountId(a), n).encode()), n > since);
        }

        #[test]
        fn app_token_keys_stay_in_their_account(a: u32, b: u32, n: u64) {
            let key = Key::AppToken(AccountId(a), n).encode();
            prop_assert!(account_range(AccountId(a)).contains(&key));
            prop_assert_eq!(account_range(AccountId(b)).contains(&key), a == b);
        }

        #[test]
        fn thread_members_stay_in_their_thread(a: u32, t: u64, u: u64, e: u64) {
            let key = Key::ThreadMember(AccountId(a), t, e).encode();
            prop_assert!(account_range(AccountId(a)).contains(&key));
            prop_assert_eq!(thread_range(AccountId(a), u).contains(&key), t == u);
        }

        #[test]
        fn import_keys_stay_in_their_account(a: u32, b: u32, h: [u8; 32]) {
            let key = Key::Import(AccountId(a), BlobHash(h)).encode();
            prop_assert!(account_range(AccountId(a)).contains(&key));
            prop_assert_eq!(account_range(AccountId(b)).contains(&key), a == b);
        }

        #[test]
        fn decode_never_panics(cf in 0..Cf::ALL.len(), bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let cf = Cf::ALL[cf];
            if let Some(key) = Key::decode(cf, &bytes) {
                prop_assert_eq!(key.encode(), bytes);
            }
        }
    }

    #[test]
    fn list_members_do_not_leak_into_longer_list_names() {
        let a = Key::ListMember("l@x".into(), "m@y".into()).encode();
        assert!(!list_range("l@x.org").contains(&a));
        assert!(list_range("l@x").contains(&a));
    }
}
