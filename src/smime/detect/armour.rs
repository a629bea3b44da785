//! Proving that text is exactly one ASCII-armoured OpenPGP encrypted
//! message (RFC 4880 §6.2, §4.2, §5.1, §5.3, §5.7, §5.13) and nothing else.
//!
//! The armour must hold only radix-64 lines and an optional checksum
//! (which must match), with no armour header but `Version`, `Hash` and
//! `Charset` (a `Comment` is free text). What the radix-64 decodes to must
//! be a sequence of session-key packets ending in one encrypted-data
//! packet: a "PGP MESSAGE" can also be signed or compressed clear text,
//! which is not encrypted.

use base64::Engine as _;

const BEGIN: &[u8] = b"-----BEGIN PGP MESSAGE-----";
const END: &[u8] = b"-----END PGP MESSAGE-----";
const ALLOWED_HEADERS: [&[u8]; 3] = [b"version", b"hash", b"charset"];

/// Packet tags (RFC 4880 §4.3, RFC 9580 §5).
const PKESK: u8 = 1;
const SKESK: u8 = 3;
const MARKER: u8 = 10;
const SED: u8 = 9;
const SEIPD: u8 = 18;
const AEAD: u8 = 20;

/// Whether `body` is one armoured PGP MESSAGE block with only whitespace
/// around it.
pub(super) fn is_one_message(body: &[u8]) -> bool {
    let mut lines = body
        .trim_ascii()
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l).trim_ascii_end());
    if lines.next() != Some(BEGIN) {
        return false;
    }
    for line in lines.by_ref() {
        if line.is_empty() {
            break;
        }
        if !is_allowed_header(line) {
            return false;
        }
    }
    let mut radix64 = Vec::new();
    let mut checksum = None;
    let mut ended = false;
    for line in lines {
        if ended || checksum.is_some() && line != END {
            return false;
        }
        if line == END {
            ended = true;
        } else if let Some(sum) = line.strip_prefix(b"=").filter(|s| s.len() == 4) {
            checksum = Some(sum);
        } else if is_radix64_line(line) && !radix64.ends_with(b"=") {
            radix64.extend_from_slice(line);
        } else {
            return false;
        }
    }
    let Ok(data) = base64::engine::general_purpose::STANDARD.decode(&radix64) else {
        return false;
    };
    ended && checksum_matches(&data, checksum) && is_encrypted_message(&data)
}

fn is_allowed_header(line: &[u8]) -> bool {
    let Some(colon) = line.windows(2).position(|w| w == b": ") else {
        return false;
    };
    let key = line.get(..colon).unwrap_or_default();
    ALLOWED_HEADERS.iter().any(|k| key.eq_ignore_ascii_case(k))
        && line.iter().all(|b| (32..=126).contains(b))
}

/// Base64 alphabet, with `=` padding only at the end.
fn is_radix64_line(line: &[u8]) -> bool {
    let data = line.trim_ascii_end();
    let unpadded = data
        .strip_suffix(b"==")
        .or_else(|| data.strip_suffix(b"="))
        .unwrap_or(data);
    !data.is_empty()
        && unpadded
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// The CRC-24 of RFC 4880 §6.1, when a checksum line was given.
fn checksum_matches(data: &[u8], checksum: Option<&[u8]>) -> bool {
    let Some(sum) = checksum else {
        return true;
    };
    let Ok(expected) = base64::engine::general_purpose::STANDARD.decode(sum) else {
        return false;
    };
    let mut crc: u32 = 0x00b7_04ce;
    for &b in data {
        crc ^= u32::from(b) << 16;
        for _ in 0..8 {
            crc <<= 1;
            if crc & 0x0100_0000 != 0 {
                crc ^= 0x0186_4cfb;
            }
        }
    }
    expected == (crc & 0x00ff_ffff).to_be_bytes()[1..]
}

/// Session-key (and marker) packets, then exactly one encrypted-data
/// packet that ends the data.
fn is_encrypted_message(data: &[u8]) -> bool {
    let mut pos = 0;
    while pos < data.len() {
        let Some((tag, end)) = packet(data, pos) else {
            return false;
        };
        match tag {
            PKESK | SKESK | MARKER => {}
            SED | SEIPD | AEAD => return end == data.len(),
            _ => return false,
        }
        pos = end;
    }
    false
}

/// The tag of the packet at `pos` and where it ends (RFC 4880 §4.2).
fn packet(data: &[u8], pos: usize) -> Option<(u8, usize)> {
    let first = *data.get(pos)?;
    if first & 0x80 == 0 {
        return None;
    }
    if first & 0x40 == 0 {
        let tag = (first >> 2) & 0x0f;
        let octets = match first & 0x03 {
            0 => 1,
            1 => 2,
            2 => 4,
            // Indeterminate: to the end of the data.
            _ => return Some((tag, data.len())),
        };
        let len = be_number(data.get(pos + 1..pos + 1 + octets)?);
        return Some((tag, end_at(data, pos + 1 + octets, len)?));
    }
    let tag = first & 0x3f;
    let mut at = pos + 1;
    loop {
        let o1 = usize::from(*data.get(at)?);
        let (len, header, partial) = match o1 {
            0..=191 => (o1, 1, false),
            192..=223 => (
                ((o1 - 192) << 8) + usize::from(*data.get(at + 1)?) + 192,
                2,
                false,
            ),
            255 => (be_number(data.get(at + 1..at + 5)?), 5, false),
            _ => (1usize << (o1 & 0x1f), 1, true),
        };
        at = end_at(data, at + header, len)?;
        if !partial {
            return Some((tag, at));
        }
        if !matches!(tag, SED | SEIPD | AEAD) {
            return None;
        }
    }
}

fn be_number(octets: &[u8]) -> usize {
    octets
        .iter()
        .fold(0usize, |n, &b| (n << 8) | usize::from(b))
}

fn end_at(data: &[u8], start: usize, len: usize) -> Option<usize> {
    start.checked_add(len).filter(|&e| e <= data.len())
}
