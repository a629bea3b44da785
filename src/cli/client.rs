//! The CLI's side of the management API: HTTP/1.1 over `admin.sock`.

use std::path::{Path, PathBuf};

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::admin::api::ErrorBody;
use crate::server::ADMIN_SOCKET;

/// How a management call failed; decides the exit code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    /// The server is not running or the socket is not reachable (exit 2).
    #[error("sealmail server is not running: cannot connect to {path} ({source}); start it with `sealmail serve` (same --config / --data-dir)")]
    Unreachable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The server refused the request: the message says why (exit 1).
    #[error("{0}")]
    Refused(String),
    /// The server failed or answered something unreadable (exit 2).
    #[error("{0}")]
    Server(String),
}

impl ClientError {
    /// The exit code of the CLI for this error.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::Refused(_) => super::EXIT_USER,
            Self::Unreachable { .. } | Self::Server(_) => super::EXIT_INTERNAL,
        }
    }
}

/// A connection-per-call client of the management API.
#[derive(Debug)]
pub(crate) struct AdminClient {
    socket: PathBuf,
    runtime: tokio::runtime::Runtime,
}

impl AdminClient {
    /// A client for the server whose data directory is `data_dir`.
    pub(crate) fn new(data_dir: &Path) -> Result<Self, ClientError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ClientError::Server(format!("cannot start the client runtime: {e}")))?;
        Ok(Self {
            socket: data_dir.join(ADMIN_SOCKET),
            runtime,
        })
    }

    /// Calls `method path` with an optional JSON body and decodes the JSON answer.
    pub(crate) fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let bytes = self.call(method, path, body)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Server(format!("unreadable answer from the server: {e}")))
    }

    /// Calls `method path` and returns the raw body of a 2xx answer.
    pub(crate) fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<Vec<u8>, ClientError> {
        let payload = match body {
            Some(b) => serde_json::to_vec(b)
                .map_err(|e| ClientError::Server(format!("cannot encode the request: {e}")))?,
            None => Vec::new(),
        };
        let (status, bytes) = self.runtime.block_on(self.send(method, path, payload))?;
        if status.is_success() {
            return Ok(bytes);
        }
        let message = serde_json::from_slice::<ErrorBody>(&bytes)
            .map(|e| e.error)
            .unwrap_or_else(|_| format!("server answered {status}"));
        if status.is_client_error() {
            Err(ClientError::Refused(message))
        } else {
            Err(ClientError::Server(message))
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        payload: Vec<u8>,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|source| ClientError::Unreachable {
                path: self.socket.clone(),
                source,
            })?;
        let io_error =
            |e: hyper::Error| ClientError::Server(format!("management API connection failed: {e}"));
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(io_error)?;
        tokio::spawn(conn);
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "sealmail")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(payload)))
            .map_err(|e| ClientError::Server(format!("cannot build the request: {e}")))?;
        let response = sender.send_request(request).await.map_err(io_error)?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(io_error)?
            .to_bytes();
        Ok((status, body.to_vec()))
    }
}

/// Percent-encodes one path segment (addresses, mailbox names).
pub(crate) fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' | b'+' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
