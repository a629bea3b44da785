//! The HTTP side: `/metrics` on the metrics listener, `/healthz` and
//! `/readyz` there and on the JMAP listener, and the task that keeps the
//! certificate gauges current.
//!
//! The listener itself is the JMAP one's (`jmap::serve`: hyper with a
//! header timeout, connection caps, the descriptor reserve), so junk, a
//! request line of megabytes or a client that never finishes its header
//! cost one connection and end there.
//!
//! - `/healthz`: the process answers HTTP (`200 ok`). A load balancer or
//!   systemd watchdog restarts what fails it.
//! - `/readyz`: the store answers a real read within `READY_TIMEOUT`
//!   (`200 ready`), else `503` with one line saying which part failed.
//!   The line names no path, host or account (the JMAP listener may face
//!   the internet); the log has the detail.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::store::MailStore;

/// Longest wait for the store's answer to `/readyz`. why 5 s: above a
/// synced write under load, below the usual probe timeout of load
/// balancers (Kubernetes: 1 s default, often raised; HAProxy: 2 to 10 s).
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the certificate gauges are computed. why 5 minutes: the
/// gauges look 30 days ahead, and one pass reads every certificate
/// record, which a scrape every few seconds should not pay for.
const CERTIFICATES_EVERY: Duration = Duration::from_secs(5 * 60);

/// How far ahead a certificate counts as expiring (30 days, as the
/// `warnings` of JMAP `EncryptionSettings`).
const EXPIRING_WITHIN_SECS: i64 = 30 * 24 * 60 * 60;

/// The content type of the text format, version 0.0.4.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The routes of `metrics.listen`: `/metrics`, `/healthz`, `/readyz`.
pub fn router(store: Arc<MailStore>) -> Router {
    health_routes(store).route("/metrics", get(metrics))
}

/// `/healthz` and `/readyz` over `store`, for any listener.
pub fn health_routes(store: Arc<MailStore>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(move || readyz(Arc::clone(&store))))
}

async fn metrics() -> Response {
    ([(header::CONTENT_TYPE, TEXT_FORMAT)], super::scrape()).into_response()
}

async fn healthz() -> Response {
    plain(StatusCode::OK, "ok")
}

async fn readyz(store: Arc<MailStore>) -> Response {
    let read = tokio::task::spawn_blocking(move || store.ping());
    match tokio::time::timeout(READY_TIMEOUT, read).await {
        Ok(Ok(Ok(()))) => plain(StatusCode::OK, "ready"),
        Ok(Ok(Err(error))) => {
            tracing::warn!(%error, "readiness check: the store read failed");
            plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: the store read failed",
            )
        }
        Ok(Err(error)) => {
            tracing::error!(%error, "readiness check: the store read task failed");
            plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: the store read did not complete",
            )
        }
        Err(_) => {
            tracing::warn!(timeout = ?READY_TIMEOUT, "readiness check: the store did not answer");
            let text = format!(
                "not ready: the store did not answer within {} s",
                READY_TIMEOUT.as_secs()
            );
            plain(StatusCode::SERVICE_UNAVAILABLE, &text)
        }
    }
}

/// A one-line plain-text answer.
fn plain(status: StatusCode, line: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{line}\n"),
    )
        .into_response()
}

/// Computes the certificate gauges now and every `CERTIFICATES_EVERY`
/// (on the blocking pool: it reads every certificate record) until
/// `stopped` completes. A failed pass is logged and the gauges keep their
/// last values.
pub async fn watch_certificates(store: Arc<MailStore>, stopped: impl Future<Output = ()>) {
    use crate::periodic::{every, First};
    every(CERTIFICATES_EVERY, First::AtOnce, stopped, || {
        let store = Arc::clone(&store);
        async move {
            let counted = tokio::task::spawn_blocking(move || {
                store.count_expiring_certificates(EXPIRING_WITHIN_SECS)
            })
            .await;
            match counted {
                Ok(Ok((expiring, expired))) => super::set_certificates(expiring, expired),
                Ok(Err(error)) => tracing::warn!(%error, "counting expiring certificates failed"),
                Err(error) => tracing::warn!(%error, "counting expiring certificates: task failed"),
            }
        }
    })
    .await;
}
