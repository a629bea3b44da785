//! The progress marker a copy keeps in the target: which source, how far
//! (column family and last key copied) and how many keys are done.
//!
//! Stored as a small JSON object, so an operator looking at the target
//! (`SELECT` in PostgreSQL) can read where an interrupted migration stands;
//! the last key is hex, as keys are binary.

use serde::{Deserialize, Serialize};

use super::super::Cf;

/// The `meta` key of the marker. No key of the mail layer has this name.
pub const MARKER_KEY: &[u8] = b"migrate_progress";

/// Format version of the marker.
const VERSION: u32 = 1;

/// Where a copy stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Marker {
    /// The source's label (`CopyOptions::source_label`).
    pub(super) source: String,
    /// The column family of the last chunk written.
    pub(super) cf: Cf,
    /// The last key of that chunk.
    pub(super) last_key: Vec<u8>,
    /// Keys copied in all runs so far.
    pub(super) done: u64,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    version: u32,
    source: String,
    cf: String,
    last_key: String,
    done: u64,
}

impl Marker {
    /// The stored form.
    pub(super) fn encode(&self) -> Vec<u8> {
        let wire = Wire {
            version: VERSION,
            source: self.source.clone(),
            cf: self.cf.name().to_string(),
            last_key: to_hex(&self.last_key),
            done: self.done,
        };
        // why no error path: serialising a struct of strings and integers
        // to a Vec cannot fail; an empty marker would be refused on read.
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// Parses a stored marker; the error says what is wrong.
    pub(super) fn decode(raw: &[u8]) -> Result<Self, String> {
        let wire: Wire = serde_json::from_slice(raw).map_err(|e| e.to_string())?;
        if wire.version != VERSION {
            return Err(format!(
                "version {} (this sealmail writes {VERSION}); finish with the sealmail that started the migration",
                wire.version
            ));
        }
        let cf = Cf::ALL
            .into_iter()
            .find(|cf| cf.name() == wire.cf)
            .ok_or_else(|| format!("unknown column family {:?}", wire.cf))?;
        let last_key = from_hex(&wire.last_key).ok_or("last key is not hex")?;
        Ok(Self {
            source: wire.source,
            cf,
            last_key,
            done: wire.done,
        })
    }
}

fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let m = Marker {
            source: "/var/lib/sealmail".into(),
            cf: Cf::Messages,
            last_key: vec![0, 1, 0xfe, 0xff],
            done: 1234,
        };
        assert_eq!(Marker::decode(&m.encode()).unwrap(), m);
        assert!(Marker::decode(b"").is_err());
        assert!(Marker::decode(
            br#"{"version":1,"source":"s","cf":"nope","last_key":"","done":0}"#
        )
        .is_err());
        assert!(Marker::decode(
            br#"{"version":1,"source":"s","cf":"meta","last_key":"0g","done":0}"#
        )
        .is_err());
        assert!(Marker::decode(
            br#"{"version":2,"source":"s","cf":"meta","last_key":"","done":0}"#
        )
        .is_err());
    }
}
