#![doc = include_str!("../README.md")]
//!
//! # Data flow
//!
//! Mail arrives over LMTP, is expanded per recipient (lists fan out), passes
//! the storage-hook chain (`sealmail-plugin-api`; the built-in
//! encrypt-at-rest hook turns each copy into S/MIME for the account's
//! certificates) and lands in the store. IMAP and JMAP serve it back as
//! stored. The modules below follow that flow:
//!
//! - [`smime`]: split a message into clear outer header and inner entity,
//!   envelope it as CMS EnvelopedData, detect what is already encrypted,
//!   decrypt (list keys, tests). Synchronous, no I/O.
//! - [`certs`]: parse PEM / DER / PKCS#7 certificates, apply the rules a
//!   certificate must pass to be used for encryption, fingerprints.
//! - [`store`]: the `Store` trait (the one swap point for storage
//!   engines), its RocksDB implementation and the typed mail layer
//!   (accounts, mailboxes, messages, certificates, lists, logs).
//! - [`lmtp`]: the LMTP server (RFC 2033) through which the MTA delivers:
//!   a sans-I/O session and its tokio driver.
//! - [`mime`]: the depth limit every MIME walker (IMAP, JMAP) keeps, and
//!   the guarded way to run mail-parser on stored bytes.
//! - [`imap`]: the IMAP server (IMAP4rev1/rev2, IDLE, UIDPLUS, MOVE, STARTTLS)
//!   on imap-next, serving messages exactly as stored.
//! - [`config`]: TOML configuration, environment overrides, defaults.
//! - [`ingest`]: hook chain, encrypt-at-rest hook, list fan-out, storing copies.
//! - [`notify`]: new-mail notifications for IMAP IDLE and JMAP.
//! - [`jmap`]: the JMAP server (RFC 8620, RFC 8621) with the encryption
//!   extension (certificates, encryption settings).
//! - [`manage`]: account operations shared by the management API and JMAP.
//! - [`admin`]: the management API on `admin.sock`.
//! - `nofollow`: directory trees walked and written without following a
//!   link below the directory the operator named (export, import, backup).
//! - [`metrics`]: Prometheus series recorded at the protocol edges,
//!   `/metrics`, `/healthz` and `/readyz`.
//! - [`server`]: listeners, data directory lock, shutdown.
//! - [`cli`]: the `sealmail` command line.

pub mod admin;
pub mod certs;
pub mod cli;
pub mod config;
pub mod imap;
pub mod ingest;
pub mod jmap;
pub mod lmtp;
pub(crate) mod login_throttle;
pub mod manage;
pub(crate) mod memory;
pub mod metrics;
pub mod mime;
pub mod net;
pub(crate) mod nofollow;
pub mod notify;
pub(crate) mod periodic;
pub mod reading;
pub mod server;
pub mod smime;
pub mod store;
pub mod submission;
pub mod text;
