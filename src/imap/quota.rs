//! IMAP QUOTA (RFC 9208): GETQUOTA, GETQUOTAROOT and SETQUOTA, with the
//! STORAGE resource only.
//!
//! Every mailbox of an account is under one quota root, named `""`: the
//! account's storage quota (`limits.account_quota`, or the account's own
//! from `sealmail account quota`). Usage and limit are reported in units
//! of 1024 octets (§5.1): usage rounded up, the limit rounded down, so a
//! client never sees more room than there is. An account without a quota
//! has no quota root, and then no `QUOTA` response at all (§4.3.2:
//! a resource without a limit is not listed). MESSAGE is not offered:
//! the store keeps no per-account message count. Quotas are the
//! operator's to set: SETQUOTA is answered `NO`, as §4.3.3 allows.

use imap_next::imap_types::core::{AString, Vec1};
use imap_next::imap_types::extensions::quota::{QuotaGet, Resource};
use imap_next::imap_types::mailbox::Mailbox as WireMailbox;
use imap_next::imap_types::response::Data;
use imap_next::imap_types::IntoStatic;

use super::error::ImapError;
use super::mailboxes::name_of;
use super::session::{Done, Session};
use crate::store::{AccountId, MailError, MailStore};

/// The name of the account's one quota root.
const ROOT: &str = "";

/// Usage and limit of the STORAGE resource, in octets.
#[derive(Debug, Clone, Copy)]
struct Storage {
    used: u64,
    limit: u64,
}

/// The account's storage quota now, or `None` when it has none.
fn storage(store: &MailStore, id: AccountId) -> Result<Option<Storage>, MailError> {
    let account = store.account(id)?;
    Ok(store.effective_quota(&account).map(|limit| Storage {
        used: account.used_bytes,
        limit,
    }))
}

/// `* QUOTA "" (STORAGE used limit)` in KiB.
fn quota_data(q: Storage) -> Option<Data<'static>> {
    let kib = QuotaGet::new(Resource::Storage, q.used.div_ceil(1024), q.limit / 1024);
    let root = AString::try_from(ROOT).ok()?;
    Some(Data::Quota {
        root,
        quotas: Vec1::from(kib),
    })
}

impl Session {
    /// GETQUOTAROOT (RFC 9208 §4.3.2): the roots of `mailbox` (which must
    /// exist) and the usage of each.
    pub(crate) async fn get_quota_root(
        &mut self,
        mailbox: &WireMailbox<'_>,
    ) -> Result<Done, ImapError> {
        let id = self.account()?.id;
        let name = name_of(mailbox)?;
        let quota = self
            .with_store(move |s| {
                s.mailbox_by_name(id, &name)?;
                storage(s, id)
            })
            .await?;
        let roots = match quota {
            Some(_) => AString::try_from(ROOT).into_iter().collect(),
            None => Vec::new(),
        };
        self.conn.data(Data::QuotaRoot {
            mailbox: mailbox.clone().into_static(),
            roots,
        });
        if let Some(data) = quota.and_then(quota_data) {
            self.conn.data(data);
        }
        Ok(Done::ok("GETQUOTAROOT completed"))
    }

    /// GETQUOTA (RFC 9208 §4.3.1): the usage of root `""`.
    pub(crate) async fn get_quota(&mut self, root: &AString<'_>) -> Result<Done, ImapError> {
        let id = self.account()?.id;
        let name = String::from_utf8_lossy(root.as_ref()).into_owned();
        let quota = if name == ROOT {
            self.with_store(move |s| storage(s, id)).await?
        } else {
            None
        };
        let data = quota
            .and_then(quota_data)
            .ok_or(ImapError::NoQuotaRoot { root: name })?;
        self.conn.data(data);
        Ok(Done::ok("GETQUOTA completed"))
    }
}
