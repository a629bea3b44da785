//! Shared helpers for the integration tests: test PKI made with the `openssl`
//! command line, and runners for the real peers (`openssl`, `gpgsm`).
#![allow(dead_code, unreachable_pub)]

pub mod cert_corpus;
pub mod cms_bomb;
pub mod fanout;
pub mod gpgsm;
pub mod http;
pub mod imap;
pub mod imaptest;
pub mod jmap;
pub mod lmtp;
pub mod mailstore;
pub mod messages;
pub mod net;
pub mod pki;
pub mod postfix;
pub mod postgres;
pub mod prometheus;
pub mod push;
pub mod secrets;
pub mod server;
pub mod strict_reader;
pub mod tools;
