//! Writing every series of the registry in the text format: one
//! function per group of families, in the order an operator reads them
//! (LMTP, encryption, connections, latency, store).

use std::sync::atomic::Ordering::Relaxed;

use super::text::{Exposition, Kind};
use super::{
    Encryption, Protocol, Registry, CIPHERS, CLASSES, IMAP_COMMANDS, JMAP_METHODS, METRICS, OTHER,
};

/// Every series, in the text format.
pub(crate) fn scrape() -> String {
    let m = &METRICS;
    let mut out = Exposition::default();
    out.family(
        "sealmail_build_info",
        "The running sealmail version (always 1).",
        Kind::Gauge,
    );
    out.sample(
        "sealmail_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    write_lmtp(&mut out, m);
    write_encryptions(&mut out, m);
    write_connections(&mut out, m);
    write_latencies(&mut out, m);
    write_store(&mut out, m);
    out.finish()
}

fn write_lmtp(out: &mut Exposition, m: &Registry) {
    let name = "sealmail_lmtp_deliveries_total";
    out.family(
        name,
        "LMTP replies after DATA, one per recipient, by reply class (2xx: stored).",
        Kind::Counter,
    );
    for (class, c) in CLASSES.iter().zip(&m.lmtp_deliveries) {
        out.sample(name, &[("class", class)], c.get());
    }
    let name = "sealmail_lmtp_rcpt_refusals_total";
    out.family(
        name,
        "Recipients refused at RCPT TO, by reply class.",
        Kind::Counter,
    );
    for (class, c) in CLASSES.iter().zip(&m.lmtp_rcpt_refusals).skip(1) {
        out.sample(name, &[("class", class)], c.get());
    }
    let name = "sealmail_list_fanout_copies_total";
    out.family(
        name,
        "Copies (content or certificate notice) stored for mailing-list members.",
        Kind::Counter,
    );
    out.sample(name, &[], m.fanout_copies.get());
}

fn write_encryptions(out: &mut Exposition, m: &Registry) {
    let name = "sealmail_encryptions_total";
    out.family(
        name,
        "Copies for accounts with encryption on, by what the encrypt-at-rest hook did and the account's cipher.",
        Kind::Counter,
    );
    for (outcome, row) in Encryption::ALL.iter().zip(&m.encryptions) {
        let ciphers = CIPHERS.iter().map(|c| c.jmap_name()).chain([OTHER]);
        for (cipher, c) in ciphers.zip(row) {
            let labels = [("outcome", outcome.label()), ("cipher", cipher)];
            out.sample(name, &labels, c.get());
        }
    }
}

fn write_connections(out: &mut Exposition, m: &Registry) {
    let name = "sealmail_connections_open";
    out.family(name, "Connections being served now.", Kind::Gauge);
    for (p, g) in Protocol::ALL.iter().zip(&m.connections_open) {
        out.sample(name, &[("protocol", p.label())], g.0.load(Relaxed));
    }
    let name = "sealmail_connections_accepted_total";
    out.family(
        name,
        "Connections accepted and served (not those refused at the door).",
        Kind::Counter,
    );
    for (p, c) in Protocol::ALL.iter().zip(&m.connections_accepted) {
        out.sample(name, &[("protocol", p.label())], c.get());
    }
    let name = "sealmail_auth_failures_total";
    out.family(name, "Failed logins, by protocol.", Kind::Counter);
    for (p, c) in Protocol::ALL.iter().zip(&m.auth_failures).skip(1) {
        out.sample(name, &[("protocol", p.label())], c.get());
    }
}

fn write_latencies(out: &mut Exposition, m: &Registry) {
    let name = "sealmail_imap_command_duration_seconds";
    out.family(
        name,
        "Time from an IMAP command read to its tagged reply, by command.",
        Kind::Histogram,
    );
    for (command, h) in IMAP_COMMANDS.iter().chain(&[OTHER]).zip(&m.imap_commands) {
        h.write(out, name, &[("command", command)]);
    }
    let name = "sealmail_jmap_method_duration_seconds";
    out.family(
        name,
        "Time of one JMAP method call, by method.",
        Kind::Histogram,
    );
    for (method, h) in JMAP_METHODS.iter().chain(&[OTHER]).zip(&m.jmap_methods) {
        h.write(out, name, &[("method", method)]);
    }
}

fn write_store(out: &mut Exposition, m: &Registry) {
    let name = "sealmail_store_write_duration_seconds";
    out.family(
        name,
        "Time of one store commit: message bodies, then the synced metadata batch.",
        Kind::Histogram,
    );
    m.store_writes.write(out, name, &[]);
    let name = "sealmail_blob_stored_bytes_total";
    out.family(
        name,
        "Bytes of message bodies (as stored: encrypted for opted-in accounts) written to the blob store.",
        Kind::Counter,
    );
    out.sample(name, &[], m.blob_bytes.get());
    let name = "sealmail_certificates_expiring";
    out.family(
        name,
        "Active certificates whose validity ends within the next 30 days.",
        Kind::Gauge,
    );
    out.sample(name, &[], m.certificates_expiring.0.load(Relaxed));
    let name = "sealmail_certificates_expired";
    out.family(
        name,
        "Active certificates already past their end of validity (no longer used to encrypt).",
        Kind::Gauge,
    );
    out.sample(name, &[], m.certificates_expired.0.load(Relaxed));
}
