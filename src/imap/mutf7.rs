//! Modified UTF-7 mailbox names (RFC 3501 §5.1.3, RFC 9051 §5.1.3): how
//! IMAP clients that did not enable UTF-8 spell non-ASCII names. The store
//! keeps names in UTF-8, so a folder made as `Entw&APw-rfe` over IMAP is
//! `Entwürfe` over JMAP, and the reverse.
//!
//! Decoding is strict, as Dovecot's: a name that is not canonical modified
//! UTF-7 (an unterminated shift, a base64 run that spells printable ASCII,
//! leftover bits, a lone surrogate) is refused rather than guessed at, so
//! that two spellings can never name one folder.

/// The modified base64 alphabet (`,` instead of `/`).
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// Why a name is not modified UTF-7.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Invalid(pub(crate) &'static str);

/// `name` in modified UTF-7.
pub(crate) fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut run: Vec<u16> = Vec::new();
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut out, &mut run);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut units = [0u16; 2];
            run.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush(&mut out, &mut run);
    out
}

/// Writes a pending run of UTF-16 units as `&...-`.
fn flush(out: &mut String, run: &mut Vec<u16>) {
    if run.is_empty() {
        return;
    }
    let bytes: Vec<u8> = run.drain(..).flat_map(u16::to_be_bytes).collect();
    out.push('&');
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            let index = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    out.push('-');
}

/// The UTF-8 name that `wire` spells in modified UTF-7.
pub(crate) fn decode(wire: &str) -> Result<String, Invalid> {
    let mut out = String::with_capacity(wire.len());
    let mut rest = wire;
    while let Some(at) = rest.find('&') {
        let (plain, shifted) = rest.split_at(at);
        check_plain(plain)?;
        out.push_str(plain);
        let shifted = &shifted[1..];
        let end = shifted
            .find('-')
            .ok_or(Invalid("a '&' shift is not closed by '-'"))?;
        if end == 0 {
            out.push('&');
        } else {
            decode_run(&shifted[..end], &mut out)?;
        }
        rest = &shifted[end + 1..];
    }
    check_plain(rest)?;
    out.push_str(rest);
    Ok(out)
}

// why control characters pass: they are not an encoding question; the
// store's naming rules refuse them with their own message (NO [CANNOT]).
fn check_plain(plain: &str) -> Result<(), Invalid> {
    if plain.is_ascii() {
        Ok(())
    } else {
        Err(Invalid("characters outside ASCII must be encoded"))
    }
}

/// Decodes one base64 run (between `&` and `-`) into `out`.
fn decode_run(run: &str, out: &mut String) -> Result<(), Invalid> {
    let mut bits = 0u32;
    let mut nbits = 0u32;
    let mut units = Vec::new();
    for b in run.bytes() {
        let v = ALPHABET
            .iter()
            .position(|&a| a == b)
            .ok_or(Invalid("not a modified base64 character"))?;
        bits = (bits << 6) | u32::try_from(v).map_err(|_| Invalid("base64"))?;
        nbits += 6;
        if nbits >= 16 {
            nbits -= 16;
            units.push(u16::try_from((bits >> nbits) & 0xffff).map_err(|_| Invalid("base64"))?);
            bits &= (1 << nbits) - 1;
        }
    }
    if nbits >= 6 || bits != 0 {
        return Err(Invalid("a base64 run ends with leftover bits"));
    }
    let text: String = char::decode_utf16(units)
        .collect::<Result<_, _>>()
        .map_err(|_| Invalid("a base64 run holds an unpaired UTF-16 surrogate"))?;
    if text.is_empty() || text.chars().any(|c| (' '..='~').contains(&c)) {
        return Err(Invalid("printable ASCII must not be base64-encoded"));
    }
    out.push_str(&text);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_examples_and_round_trips() {
        // RFC 3501 §5.1.3's example.
        assert_eq!(
            encode("~peter/mail/台北/日本語"),
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        );
        assert_eq!(
            decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-").unwrap(),
            "~peter/mail/台北/日本語"
        );
        assert_eq!(encode("Entwürfe"), "Entw&APw-rfe");
        assert_eq!(encode("Tom & Jerry"), "Tom &- Jerry");
        assert_eq!(decode("Tom &- Jerry").unwrap(), "Tom & Jerry");
        for name in [
            "Ordner ü",
            "p\u{e4}\u{e4}",
            "a😀b",
            "日本語&x",
            "INBOX",
            "",
            "&",
        ] {
            assert_eq!(decode(&encode(name)).unwrap(), name, "{name}");
        }
    }

    #[test]
    fn non_canonical_and_broken_names_are_refused() {
        for bad in [
            "&AGE-",     // 'a' encoded
            "&APw",      // unterminated
            "&A-",       // leftover bits
            "&APw&APw-", // '&' inside a run is not base64
            "&2D0-",     // lone high surrogate
            "&APx-",     // non-zero leftover bits
            "caf\u{e9}", // raw 8-bit character
        ] {
            assert!(decode(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
