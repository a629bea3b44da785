//! Mailing lists: address, owner, members and list key pairs.
//!
//! A list address shares the address namespace with accounts (one address
//! delivers to one thing). A list key pair decrypts mail sent encrypted to
//! the list (ARCHITECTURE.md, "Mailing lists"); its private key is sealed
//! with the server master key (AES-256-GCM, bound to the list and the
//! certificate's fingerprint) and is opened only by [`MailStore::list_keys`].
//!
//! Lists, their members and keys are records of the directory scope
//! (`txn`): every change is a directory transaction, so a member added
//! while another process removes the list cannot outlive it.

use serde::{Deserialize, Serialize};

use super::accounts::normalize_address;
use super::error::MailError;
use super::keys::{self, Key};
use super::mail::{now_secs, MailStore};
use super::master_key::SecretBytes;
use super::records::{fp_bytes, Record};
use super::{Cf, KeyRange, Order};
use crate::certs::Fingerprint;

/// A mailing list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MailingList {
    /// The list address, lowercased.
    pub address: String,
    /// The owner address (sender of notices), lowercased.
    pub owner: String,
    /// Creation time, unix seconds.
    pub created: i64,
}

impl Record for MailingList {
    const VERSION: u8 = 1;
}

/// A list key pair as listed, without its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListKeyInfo {
    /// SHA-256 of the certificate's DER.
    pub fingerprint: Fingerprint,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// When it was added, unix seconds.
    pub added: i64,
}

/// A list key pair with its private key opened.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ListKeyPair {
    /// The certificate and its metadata.
    pub info: ListKeyInfo,
    /// The private key PEM, as given to [`MailStore::add_list_key`].
    pub private_key_pem: SecretBytes,
}

/// Value of [`Cf::ListKeys`].
#[derive(Debug, Serialize, Deserialize)]
struct ListKeyRecord {
    #[serde(with = "fp_bytes")]
    fingerprint: Fingerprint,
    cert_der: Vec<u8>,
    /// nonce ‖ AES-256-GCM ciphertext ‖ tag of the private key PEM.
    sealed_key: Vec<u8>,
    added: i64,
}

impl Record for ListKeyRecord {
    const VERSION: u8 = 1;
}

impl ListKeyRecord {
    fn info(&self) -> ListKeyInfo {
        ListKeyInfo {
            fingerprint: self.fingerprint,
            cert_der: self.cert_der.clone(),
            added: self.added,
        }
    }
}

/// Associated data binding a sealed key to its list and certificate.
fn key_aad(list: &str, fp: &Fingerprint) -> Vec<u8> {
    let mut aad = b"sealmail list key v1\0".to_vec();
    aad.extend(list.as_bytes());
    aad.push(0);
    aad.extend(fp.as_bytes());
    aad
}

impl MailStore {
    /// Creates a list. Its address must not belong to an account or list.
    pub fn create_list(
        &self,
        address: &str,
        owner: &str,
        members: &[String],
    ) -> Result<MailingList, MailError> {
        let address = normalize_address(address)?;
        let owner = normalize_address(owner)?;
        let members = members
            .iter()
            .map(|m| normalize_address(m))
            .collect::<Result<Vec<_>, _>>()?;
        let list = MailingList {
            address: address.clone(),
            owner,
            created: now_secs(),
        };
        self.update_directory(&[], |tx| {
            self.ensure_address_free(&address)?;
            tx.put(&Key::List(address.clone()), &list)?;
            for m in &members {
                let key = Key::ListMember(address.clone(), m.clone());
                tx.batch.put(Cf::ListMembers, key.encode(), Vec::new());
            }
            Ok(())
        })?;
        Ok(list)
    }

    /// The list `address`.
    pub fn get_list(&self, address: &str) -> Result<MailingList, MailError> {
        let not_found = || MailError::ListNotFound {
            list: address.to_string(),
        };
        let address = normalize_address(address).map_err(|_| not_found())?;
        self.load(&Key::List(address))?.ok_or_else(not_found)
    }

    /// Every list, in address order.
    pub fn list_lists(&self) -> Result<Vec<MailingList>, MailError> {
        let all = KeyRange::prefix(&[]);
        let rows = self.scan_records::<MailingList>(Cf::Lists, &all, Order::Forward, usize::MAX)?;
        Ok(rows.into_iter().map(|(_, l)| l).collect())
    }

    /// Removes a list with its members and keys.
    pub fn remove_list(&self, address: &str) -> Result<(), MailError> {
        self.update_directory(&[], |tx| {
            let list = self.get_list(address)?;
            tx.delete(&Key::List(list.address.clone()));
            let range = keys::list_range(&list.address);
            tx.batch.delete_range(Cf::ListMembers, range.clone());
            tx.batch.delete_range(Cf::ListKeys, range);
            Ok(())
        })
    }

    /// Adds a member (no error if already one).
    pub fn add_list_member(&self, list: &str, member: &str) -> Result<(), MailError> {
        self.change_member(list, member, true)
    }

    /// Removes a member (no error if not one).
    pub fn remove_list_member(&self, list: &str, member: &str) -> Result<(), MailError> {
        self.change_member(list, member, false)
    }

    fn change_member(&self, list: &str, member: &str, add: bool) -> Result<(), MailError> {
        let member = normalize_address(member)?;
        // why the directory scope for a member: the change must not land
        // after a concurrent removal of the list (it would come back with
        // the next list of that address).
        self.update_directory(&[], |tx| {
            let list = self.get_list(list)?;
            let key = Key::ListMember(list.address, member.clone()).encode();
            if add {
                tx.batch.put(Cf::ListMembers, key, Vec::new());
            } else {
                tx.batch.delete(Cf::ListMembers, key);
            }
            Ok(())
        })
    }

    /// The members of a list, in address order.
    pub fn list_members(&self, list: &str) -> Result<Vec<String>, MailError> {
        let list = self.get_list(list)?;
        let range = keys::list_range(&list.address);
        let rows = self
            .store
            .scan(Cf::ListMembers, &range, Order::Forward, usize::MAX)?;
        let mut members = Vec::with_capacity(rows.len());
        for (k, _) in rows {
            match Key::decode(Cf::ListMembers, &k) {
                Some(Key::ListMember(_, m)) => members.push(m),
                _ => return Err(super::error::corrupt(Cf::ListMembers, "undecodable key").into()),
            }
        }
        Ok(members)
    }

    /// Adds a key pair to a list: the certificate (DER) and its private
    /// key (PEM, sealed with the master key before it is stored).
    pub fn add_list_key(
        &self,
        list: &str,
        cert_der: &[u8],
        private_key_pem: &SecretBytes,
    ) -> Result<ListKeyInfo, MailError> {
        let fingerprint = Fingerprint::of_der(cert_der);
        let added = now_secs();
        let (address, info) = self.update_directory(&[], |tx| {
            let list = self.get_list(list)?;
            let key = Key::ListKeyPair(list.address.clone(), fingerprint);
            if self.store.get(Cf::ListKeys, &key.encode())?.is_some() {
                return Err(MailError::DuplicateListKey { fingerprint });
            }
            let aad = key_aad(&list.address, &fingerprint);
            let record = ListKeyRecord {
                fingerprint,
                cert_der: cert_der.to_vec(),
                sealed_key: self.master_key.seal(&aad, private_key_pem.expose())?,
                added,
            };
            tx.put(&key, &record)?;
            Ok((list.address, record.info()))
        })?;
        tracing::info!(list = %address, fingerprint = %fingerprint, "list key added");
        Ok(info)
    }

    /// The key pairs of a list with their private keys opened (for
    /// decrypting mail sent to the list; try each: rotation).
    pub fn list_keys(&self, list: &str) -> Result<Vec<ListKeyPair>, MailError> {
        let list = self.get_list(list)?;
        let range = keys::list_range(&list.address);
        let rows =
            self.scan_records::<ListKeyRecord>(Cf::ListKeys, &range, Order::Forward, usize::MAX)?;
        rows.into_iter()
            .map(|(_, rec)| {
                let aad = key_aad(&list.address, &rec.fingerprint);
                let pem = self.master_key.open(&aad, &rec.sealed_key).ok_or(
                    MailError::ListKeyUnreadable {
                        fingerprint: rec.fingerprint,
                    },
                )?;
                Ok(ListKeyPair {
                    info: rec.info(),
                    private_key_pem: pem,
                })
            })
            .collect()
    }

    /// The key pairs of a list without opening the private keys.
    pub fn list_key_infos(&self, list: &str) -> Result<Vec<ListKeyInfo>, MailError> {
        let list = self.get_list(list)?;
        let range = keys::list_range(&list.address);
        let rows =
            self.scan_records::<ListKeyRecord>(Cf::ListKeys, &range, Order::Forward, usize::MAX)?;
        Ok(rows.iter().map(|(_, rec)| rec.info()).collect())
    }

    /// Removes a key pair from a list (no error if absent).
    pub fn remove_list_key(&self, list: &str, fingerprint: Fingerprint) -> Result<(), MailError> {
        self.update_directory(&[], |tx| {
            let list = self.get_list(list)?;
            tx.delete(&Key::ListKeyPair(list.address, fingerprint));
            Ok(())
        })
    }
}
