//! `EncryptionSettings/sendTest` of the encryption extension: delivers a
//! short test message to the caller's own account, so that a user can
//! check that their mail program opens what the server stores.
//!
//! The message goes through [`Ingest::deliver`](crate::ingest::Ingest::deliver),
//! the path LMTP deliveries take, so it is sealed by the same hook chain
//! for the same active certificates with the same cipher as the next mail
//! from outside. It is refused while encryption is off (the point is to
//! test the encryption) and at most once per [`INTERVAL`] per account, so
//! that the button cannot be used to fill a mailbox.
//!
//! Arguments: `accountId`. Response: `accountId`, `subject`, `messageId`
//! (without angle brackets) and `encrypted` (whether the stored copy is
//! S/MIME; always true unless the operator took `encrypt-at-rest` out of
//! the hook chain).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::RngCore as _;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::call::{parse, Call};
use super::error::Error;
use crate::ingest::{Delivered, Envelope};
use crate::store::AccountId;

/// Shortest time between two test messages of one account. why a minute:
/// a user checking their client needs one, perhaps a second after fixing
/// something; more than that is a mailbox being filled.
pub(crate) const INTERVAL: Duration = Duration::from_secs(60);

/// The subject every test message carries.
const SUBJECT: &str = "sealmail test message";

/// When each account last sent a test message (on this node).
#[derive(Debug, Default)]
pub(crate) struct SendTestLimit {
    // why: a std Mutex, held for one map operation, never across an await.
    last: Mutex<HashMap<AccountId, Instant>>,
}

impl SendTestLimit {
    /// Takes `id`'s turn, or says how long until it has one.
    fn take(&self, id: AccountId, now: Instant) -> Result<(), Duration> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = last.get(&id) {
            let since = now.saturating_duration_since(*at);
            if since < INTERVAL {
                return Err(INTERVAL - since);
            }
        }
        // why prune here: the map then holds only the accounts of the last
        // minute, however many accounts used the button over time.
        last.retain(|_, at| now.saturating_duration_since(*at) < INTERVAL);
        last.insert(id, now);
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Args {
    account_id: String,
}

/// `EncryptionSettings/sendTest`.
pub(crate) async fn send_test(call: &mut Call, args: Map<String, Value>) -> Result<Value, Error> {
    let args: Args = parse(args)?;
    let account_id = call.check_account(&args.account_id)?;
    let (enabled, algorithm) = call
        .blocking(|s, id| {
            let settings = s.encryption_settings(id)?;
            let cipher = sealmail_plugin_api::ContentCipher::from(settings.algorithm);
            Ok((settings.enabled, cipher.to_string()))
        })
        .await?;
    if !enabled {
        return Err(Error::Forbidden(
            "encryption is off for this account, so a test message would be stored in clear; \
             turn encryption on (EncryptionSettings isEnabled), then send the test message"
                .into(),
        ));
    }
    if let Err(wait) = call.server.test_sends.take(call.account.id, Instant::now()) {
        return Err(Error::Forbidden(format!(
            "a test message was sent less than {} seconds ago; wait {} seconds and try again",
            INTERVAL.as_secs(),
            wait.as_secs().max(1)
        )));
    }
    let address = call.account.address.clone();
    let (message_id, data) = message(&address, &algorithm, time::OffsetDateTime::now_utc());
    let envelope = Envelope {
        mail_from: String::new(),
        lhlo: "sealmail-account-page".into(),
    };
    let ingest = Arc::clone(&call.server.ctx.ingest);
    let mut results = ingest
        .deliver(&envelope, std::slice::from_ref(&address), Arc::new(data))
        .await;
    let encrypted = match results.pop() {
        Some(Ok(Delivered::Account { encrypted })) => encrypted,
        Some(Err(e)) => return Err(e.into()),
        _ => {
            return Err(Error::Forbidden(format!(
            "{address} is not an account's own address here; a test message goes to accounts only"
        )))
        }
    };
    tracing::info!(account = %call.account.id, encrypted, "test message delivered");
    Ok(json!({
        "accountId": account_id,
        "subject": SUBJECT,
        "messageId": message_id,
        "encrypted": encrypted,
    }))
}

/// The test message for `address` (its Message-ID, its bytes in CRLF).
fn message(address: &str, algorithm: &str, now: time::OffsetDateTime) -> (String, Vec<u8>) {
    let date = now
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_else(|_| now.unix_timestamp().to_string());
    let mut id = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut id);
    let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let domain = address
        .rsplit_once('@')
        .map(|(_, d)| d)
        .filter(|d| {
            !d.is_empty()
                && d.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c))
        })
        .unwrap_or("localhost");
    let message_id = format!("{id}.test@{domain}");
    let text = format!(
        "From: sealmail <{address}>\n\
         To: <{address}>\n\
         Subject: {SUBJECT}\n\
         Date: {date}\n\
         Message-ID: <{message_id}>\n\
         Auto-Submitted: auto-generated\n\
         MIME-Version: 1.0\n\
         Content-Type: text/plain; charset=utf-8\n\
         \n\
         If you can read this, your mail program holds the private key of one\n\
         of the certificates on your account: the server stored this message\n\
         encrypted ({algorithm}) for your active certificates, as it stores all\n\
         new mail.\n\
         \n\
         If your mail program shows an error or an attachment named smime.p7m\n\
         instead, import your private key (with its certificate) into it, or\n\
         check on the account page that the active certificate is the one\n\
         your mail program uses.\n"
    );
    (message_id, text.replace('\n', "\r\n").into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_test_message_per_interval_per_account() {
        let limit = SendTestLimit::default();
        let start = Instant::now();
        assert_eq!(limit.take(AccountId(1), start), Ok(()));
        assert_eq!(limit.take(AccountId(2), start), Ok(()), "per account");
        let later = start + Duration::from_secs(20);
        assert_eq!(
            limit.take(AccountId(1), later),
            Err(Duration::from_secs(40))
        );
        assert_eq!(limit.take(AccountId(1), start + INTERVAL), Ok(()));
    }

    #[test]
    fn the_message_is_crlf_and_names_the_account() {
        let now = time::macros::datetime!(2025-01-02 03:04:05 UTC);
        let (id, bytes) = message("alice@example.org", "AES-256-CBC", now);
        let text = String::from_utf8(bytes).unwrap_or_default();
        assert!(id.ends_with(".test@example.org"));
        assert!(text.contains("To: <alice@example.org>\r\n"));
        assert!(text.contains(&format!("Message-ID: <{id}>\r\n")));
        assert!(text.contains("Date: Thu, 02 Jan 2025 03:04:05 +0000\r\n"));
        assert!(!text.replace("\r\n", "").contains('\n'), "bare LF");
    }
}
