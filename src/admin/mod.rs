//! The management API: JSON over HTTP/1.1 on the unix socket
//! `data_dir/admin.sock` (mode 0600, so only the server's user and root can
//! reach it and local operators need no password). The `sealmail` CLI is
//! its client; [`api`] holds the wire types both sides share.

pub mod api;
mod routes;

pub use routes::router;
