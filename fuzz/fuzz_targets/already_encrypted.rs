//! Structure-aware: builds a message in one of the encrypted forms the
//! detector recognises (pkcs7-mime and `smime.p7m` octet-stream roots,
//! PGP/MIME, a `multipart/mixed` wrapping one `.p7m`, inline armour),
//! around real encrypted objects, and lets the input choose, for every
//! place outside the encrypted object (before and after the body, the
//! preamble, the epilogue, a blank part, a third part), either blank
//! filler or a clear marker. Asserts that whenever a marker was placed
//! the detector says `None` (the message gets encrypted), that with only
//! blank filler it says the message is encrypted, and that it never
//! panics. The tail of the input is also fed to the detector raw.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealmail::smime::{already_encrypted, Split};

/// `printf x | openssl cms -encrypt -aes128 -binary -outform DER c.pem | base64 -w 76`
/// where `c.pem` is `openssl req -x509 -newkey rsa:1024 -nodes -subj /CN=f`.
const ENVELOPED_DER_B64: &str =
    "MIIBFQYJKoZIhvcNAQcDoIIBBjCCAQICAQAxgb4wgbsCAQAwJDAMMQowCAYDVQQDDAFmAhQC3mBk
wvKoTrtbZFXMMNmM6utbgjANBgkqhkiG9w0BAQEFAASBgFiH1mXvxS2Ul/Iw3r3We8Hcj3R1w9Uo
u8/zKkj17JCp/I1Np5K9tTazmNuXGs42AKhA7NVvOKNOWfgewm8F1616QhE77MaoZZdcXvT6jxSv
IDPpRVriAVoRuPvn284ctBczks7q204+yuqPOUHSqf44RDBAFnCnMGcPhbTzK/BHMDwGCSqGSIb3
DQEHATAdBglghkgBZQMEAQIEEFX/y5z5qB4UmsWDtfoXJwyAEAV+/TR47InGfTSrMCPftK0=";

/// The same with `-stream` added: BER, indefinite lengths.
const ENVELOPED_BER_B64: &str =
    "MIAGCSqGSIb3DQEHA6CAMIACAQAxgb4wgbsCAQAwJDAMMQowCAYDVQQDDAFmAhQC3mBkwvKoTrtb
ZFXMMNmM6utbgjANBgkqhkiG9w0BAQEFAASBgHfRSRbZ2oq0r8kv/6s5yrQYl9/nazt+sweP44vi
RNlaWoi6p741S0wqFfbsfQD9CswFSYr4TlKyhR1wYxoEfmtEbS/iRfmmcblJGPcjMhN4Uq3wND0L
ydZZ9LyGjSZYP+ucHxhk+Zt1pIhyU0wkxuluxt3KCh4JWHC41Sa2WPnFMIAGCSqGSIb3DQEHATAd
BglghkgBZQMEAQIEED6WGem1xNyTMTS6GobZ912ggAQQE9/ruoCuo3wyViB4FzVuOgAAAAAAAAAA
AAA=";

/// `printf x | gpg --batch --trust-model always -e -a -r f@example.org`
/// for a `gpg --quick-gen-key 'f <f@example.org>' rsa1024 encr` key.
const PGP_MESSAGE: &str = "-----BEGIN PGP MESSAGE-----

hIwDAMg/8ekOM8ABA/9GxcP8ZYxqMv0sCozEJrwyiYqHjQgdao4anbXBgp0bbP+Q
xYGPfTCjhWGsxo+qtuZAgrKD/sONKIpB2h4n9HDPgSawTzGPqbqaBQaB9rnmLlBf
OO47xWqEnDgF/3UYhBrV/IIbt6p9qaqW1Pmdhur2En0n3pkHdaE9SwuJIs9C8tI8
AVGLsN0DDxL9QTM6WbbdByqmODwEoNPCDMRGutSzZyHuk7LUPPyVE8Ty8hyV0rIs
xb4TzTWfHF4HcmlL
=NlrJ
-----END PGP MESSAGE-----";

/// Blank filler the input may choose for a slot.
const BLANKS: [&str; 4] = ["", "\r\n", " \r\n", "\t\r\n\r\n"];

/// Reads the input as a sequence of choices.
struct Choices<'a> {
    input: &'a [u8],
    marked: bool,
}

impl Choices<'_> {
    fn byte(&mut self) -> u8 {
        let (&b, rest) = self.input.split_first().unwrap_or((&0, &[]));
        self.input = rest;
        b
    }

    /// Blank filler, or (when the choice's top bit is set) a clear marker
    /// with a few input bytes inside it, so it can hold CR, LF, dashes or
    /// base64 letters.
    fn slot(&mut self) -> String {
        let choice = self.byte();
        if choice & 0x80 == 0 {
            return BLANKS[usize::from(choice) % BLANKS.len()].to_owned();
        }
        self.marked = true;
        let inner_len = usize::from(choice & 0x07);
        let inner: Vec<u8> = (0..inner_len).map(|_| self.byte()).collect();
        let lead = BLANKS[usize::from(choice >> 3) % BLANKS.len()];
        format!("{lead}SECRET{}MARK", String::from_utf8_lossy(&inner))
    }
}

fn crlf(text: &str) -> String {
    text.replace('\n', "\r\n")
}

fn build(c: &mut Choices<'_>) -> String {
    let der = if c.byte() & 1 == 0 {
        ENVELOPED_DER_B64
    } else {
        ENVELOPED_BER_B64
    };
    let b64 = crlf(der);
    let armour = crlf(PGP_MESSAGE);
    match c.byte() % 5 {
        0 | 1 => {
            let ctype = if c.byte() & 1 == 0 {
                "application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m"
            } else {
                "application/octet-stream; name=\"smime.p7m\""
            };
            let (before, after) = (c.slot(), c.slot());
            format!("From: a@example.org\r\nContent-Type: {ctype}\r\nContent-Transfer-Encoding: base64\r\n\r\n{before}{b64}\r\n{after}")
        }
        2 => {
            let (pre, epi, third) = (c.slot(), c.slot(), c.slot());
            let (around1, around2) = (c.slot(), c.slot());
            // why trim: a blank third slot means no third part at all.
            let extra = if third.trim().is_empty() {
                String::new()
            } else {
                format!("--b1\r\nContent-Type: text/plain\r\n\r\n{third}\r\n")
            };
            format!("From: a@example.org\r\nContent-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"b1\"\r\n\r\n{pre}--b1\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n--b1\r\nContent-Type: application/octet-stream\r\n\r\n{around1}{armour}\r\n{around2}\r\n{extra}--b1--\r\n{epi}")
        }
        3 => {
            let (pre, epi, blank, after) = (c.slot(), c.slot(), c.slot(), c.slot());
            format!("Content-Type: multipart/mixed; boundary=b\r\n\r\n{pre}--b\r\nContent-Type: text/plain\r\n\r\n{blank}\r\n--b\r\nContent-Type: application/pkcs7-mime; name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n{after}\r\n--b--\r\n{epi}")
        }
        _ => {
            let (before, after) = (c.slot(), c.slot());
            format!("Subject: inline\r\n\r\n{before}{armour}\r\n{after}")
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let mut choices = Choices {
        input,
        marked: false,
    };
    let message = build(&mut choices);
    let raw = message.as_bytes();
    let verdict = already_encrypted(raw, &Split::new(raw));
    if choices.marked {
        assert_eq!(
            verdict, None,
            "clear marker passed as encrypted:\n{message}"
        );
    } else {
        assert!(
            verdict.is_some(),
            "a blank-filled encrypted form was not recognised:\n{message}"
        );
    }
    let rest = choices.input;
    let _ = already_encrypted(rest, &Split::new(rest));
});
