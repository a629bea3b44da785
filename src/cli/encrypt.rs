//! `sealmail encrypt`: the offline S/MIME filter, standard input to
//! standard output, with the same code the encrypt-at-rest hook runs.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context as _;

use super::{EncryptArgs, EXIT_USER};
use crate::certs::{self, Fingerprint, Policy};
use crate::smime::{Envelope, Recipient, Sealed};

pub(super) fn run(args: &EncryptArgs) -> anyhow::Result<ExitCode> {
    let envelope = match envelope_for(args) {
        Ok(envelope) => envelope,
        Err(reason) => {
            eprintln!("sealmail encrypt: {}", crate::text::escape(&reason));
            return Ok(ExitCode::from(EXIT_USER));
        }
    };
    let mut input = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut input)
        .context("reading the message from standard input")?;
    if input.is_empty() {
        eprintln!(
            "sealmail encrypt: standard input is empty; pipe a message (RFC 5322) into the command"
        );
        return Ok(ExitCode::from(EXIT_USER));
    }
    let output = match envelope.seal(&input) {
        Ok(Sealed::Encrypted(bytes)) => bytes,
        Ok(Sealed::AlreadyEncrypted(kind)) => {
            eprintln!("sealmail encrypt: message is already encrypted ({kind:?}); passed through unchanged");
            input
        }
        Err(e) => {
            eprintln!("sealmail encrypt: {}", crate::text::escape(&e.to_string()));
            return Ok(ExitCode::from(EXIT_USER));
        }
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&output)
        .context("writing to standard output")?;
    stdout.flush().context("writing to standard output")?;
    Ok(ExitCode::SUCCESS)
}

/// Reads every `--cert` file and checks each certificate against the
/// rules (except the e-mail address rule, which needs an account).
/// Certificates named twice are used once.
fn envelope_for(args: &EncryptArgs) -> Result<Envelope, String> {
    let now = SystemTime::now();
    let mut seen: Vec<Fingerprint> = Vec::new();
    let mut recipients = Vec::new();
    for path in &args.certs {
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let policy = Policy {
            now,
            addresses: None,
            existing: &[],
        };
        let accepted =
            certs::recipients(&bytes, &policy).map_err(|e| format!("{}: {e}", path.display()))?;
        for cert in accepted {
            if seen.contains(&cert.fingerprint()) {
                continue;
            }
            seen.push(cert.fingerprint());
            recipients.push(
                Recipient::from_certificate(cert.certificate())
                    .map_err(|e| format!("{}: {e}", path.display()))?,
            );
        }
    }
    Envelope::new(recipients, args.algorithm.into())
        .map(|e| e.with_key_transport(args.key_transport.into()))
        .map_err(|e| e.to_string())
}
