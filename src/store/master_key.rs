//! The server master key: seals secrets at rest (list private keys).
//!
//! 32 random bytes in `data_dir/master.key`, mode 0600, created at first
//! open. Secrets are sealed with AES-256-GCM under a fresh 96-bit random
//! nonce, with associated data that names the slot the secret belongs to,
//! so a sealed value copied to another key does not open. The key and
//! every opened secret are zeroised on drop and print as `<redacted>`.

use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use zeroize::Zeroizing;

use super::error::MailError;

const NONCE_LEN: usize = 12;

/// A secret byte string: zeroised on drop, `Debug` prints `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Wraps `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The secret itself. Do not log it.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The 256-bit server master key.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// A key from its bytes (e.g. supplied by a secret manager).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Loads the key from `path`, or creates it (mode 0600) if missing.
    ///
    /// `path` comes from the operator's configuration. Refuses a file of
    /// the wrong size or one readable by group or others.
    pub fn load_or_create(path: &Path) -> Result<Self, MailError> {
        let err = |reason: String| MailError::MasterKey {
            path: path.to_path_buf(),
            reason,
        };
        match std::fs::OpenOptions::new().read(true).open(path) {
            Ok(mut file) => {
                let mode = file
                    .metadata()
                    .map_err(|e| err(e.to_string()))?
                    .permissions()
                    .mode();
                if mode & 0o077 != 0 {
                    return Err(err(format!(
                        "mode is {:o}, readable by others; run `chmod 600` on it",
                        mode & 0o777
                    )));
                }
                let mut bytes = Zeroizing::new(Vec::with_capacity(33));
                file.read_to_end(&mut bytes)
                    .map_err(|e| err(e.to_string()))?;
                let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    err(format!(
                        "is {} bytes, a master key is 32; restore it from backup",
                        bytes.len()
                    ))
                })?;
                Ok(Self::from_bytes(key))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Self::create(path).map_err(err),
            Err(e) => Err(err(e.to_string())),
        }
    }

    fn create(path: &Path) -> Result<Self, String> {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| format!("cannot create: {e}"))?;
        file.write_all(key.as_ref())
            .and_then(|()| file.sync_all())
            .map_err(|e| format!("cannot write: {e}"))?;
        if let Some(dir) = path.parent() {
            // why: make the new directory entry durable too.
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
        tracing::info!(path = %path.display(), "created master key");
        Ok(Self(key))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.0.as_ref().into())
    }

    /// Seals `secret` for the slot named by `aad`: nonce ‖ ciphertext ‖ tag.
    pub(crate) fn seal(&self, aad: &[u8], secret: &[u8]) -> Result<Vec<u8>, MailError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher()
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: secret, aad })
            .map_err(|_| super::error::bug("AES-GCM seal failed"))?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Ok(out)
    }

    /// Opens what [`MasterKey::seal`] made for `aad`; `None` if it does
    /// not authenticate (other key, other slot, or tampered).
    pub(crate) fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<SecretBytes> {
        let (nonce, ct) = sealed.split_at_checked(NONCE_LEN)?;
        self.cipher()
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .ok()
            .map(SecretBytes::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_with_mode_0600_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let a = MasterKey::load_or_create(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), 32);
        let b = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(a.0, b.0);
    }

    #[test]
    fn refuses_wrong_size_and_loose_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        std::fs::write(&path, [0u8; 16]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = MasterKey::load_or_create(&path).unwrap_err().to_string();
        assert!(e.contains("16 bytes"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = MasterKey::load_or_create(&path).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
    }

    #[test]
    fn seal_binds_key_and_slot() {
        let k = MasterKey::from_bytes([7; 32]);
        let sealed = k.seal(b"slot-a", b"secret").unwrap();
        assert_eq!(k.open(b"slot-a", &sealed).unwrap().expose(), b"secret");
        assert!(k.open(b"slot-b", &sealed).is_none());
        assert!(MasterKey::from_bytes([8; 32])
            .open(b"slot-a", &sealed)
            .is_none());
        assert!(k.open(b"slot-a", &sealed[..5]).is_none());
        assert_eq!(format!("{k:?}"), "MasterKey(<redacted>)");
    }
}
