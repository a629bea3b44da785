//! The ingest pipeline as the LMTP server's [`Delivery`]: the one place
//! where delivery outcomes become LMTP replies.

use std::sync::Arc;

use super::{DeliverError, Delivered, Envelope, Ingest};
use crate::lmtp::{Delivery, Reply, Transaction};

impl Delivery for Ingest {
    async fn check_recipients(&self, addresses: &[String]) -> Vec<Reply> {
        self.resolve_all(addresses)
            .await
            .into_iter()
            .zip(addresses)
            .map(|(found, address)| match found {
                Ok(_) => Reply::new(250, "2.1.5", format!("<{address}> ok")),
                Err(e) => error_reply(&e),
            })
            .collect()
    }

    async fn deliver(&self, tx: Transaction) -> Vec<Reply> {
        let envelope = Envelope {
            mail_from: tx.mail_from,
            lhlo: tx.lhlo,
        };
        let data = Arc::new(tx.data);
        let results = Ingest::deliver(self, &envelope, &tx.recipients, data).await;
        tx.recipients
            .iter()
            .zip(results)
            .map(|(rcpt, result)| match result {
                Ok(delivered) => success_reply(rcpt, &delivered),
                Err(e) => error_reply(&e),
            })
            .collect()
    }
}

fn success_reply(rcpt: &str, delivered: &Delivered) -> Reply {
    let text = match delivered {
        Delivered::Account { encrypted: true } => format!("<{rcpt}> delivered, stored encrypted"),
        Delivered::Account { .. } => format!("<{rcpt}> delivered"),
        Delivered::List {
            copies,
            notices,
            skipped,
        } => {
            format!("<{rcpt}> delivered to {copies} members ({notices} notices, {skipped} skipped)")
        }
    };
    Reply::new(250, "2.0.0", text)
}

/// The LMTP reply for a delivery error (codes from [`DeliverError::code`]).
fn error_reply(e: &DeliverError) -> Reply {
    let (code, status) = e.code();
    if code >= 500 {
        tracing::info!(error = %e, "recipient refused");
    } else {
        tracing::warn!(error = %e, "delivery deferred");
    }
    Reply::new(code, status, e.to_string())
}
