//! Cross-site request refusal: a page on another site must not be able to
//! make a logged-in browser change anything here.
//!
//! A browser sends a user's cached HTTP Basic credentials with any request
//! a foreign page makes, and a "simple" cross-site POST (`text/plain`,
//! form-urlencoded or multipart bodies) needs no CORS preflight: before
//! this guard, such a POST to `/jmap/api` turned a user's encryption off.
//! Two independent checks close that:
//!
//! - every request that is not a read (`GET`, `HEAD`, `OPTIONS`) is
//!   refused with 403 when its `Origin` is not this server's own origin,
//!   or when the browser says it is cross-site (`Sec-Fetch-Site`). It is a
//!   layer over the whole router ([`refuse_cross_site`]), so a new
//!   state-changing route is covered without its author thinking of it.
//!   Requests without `Origin` (mail clients, curl, the jmap-client crate)
//!   pass: browsers send `Origin` with every cross-origin POST.
//! - `/jmap/api` takes only `Content-Type: application/json` (RFC 8620
//!   §3.1 says the body is JSON), answered 415 otherwise ([`require_json`]):
//!   a browser cannot send that type cross-site without a preflight, which
//!   this server never grants, so the check holds even where a browser
//!   leaves `Origin` out.
//!
//! "Own origin" is the `Host` the request was sent to: the session object
//! builds its URLs from the same header, so a page of this server and the
//! API it calls share it. The scheme is not compared, because a
//! TLS-terminating proxy in front makes the browser's `https` origin
//! arrive here over plain HTTP; host and port are (an `Origin` without a
//! port means its scheme's default, and so does a `Host` without one).

use axum::extract::Request;
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::Problem;

/// Layer: refuses a state-changing request from a foreign origin.
pub(crate) async fn refuse_cross_site(request: Request, next: Next) -> Response {
    let reads = [Method::GET, Method::HEAD, Method::OPTIONS];
    if !reads.contains(request.method()) {
        // why the advertised origin too: behind a proxy that rewrites
        // `Host` (or with `jmap.public_url`), the server's own pages come
        // from the origin the session object advertises, not from `Host`.
        let advertised = request
            .extensions()
            .get::<super::origin::Origin>()
            .and_then(|o| o.base_url().ok());
        if let Err(problem) = same_origin(request.headers(), advertised.as_deref()) {
            return problem.into_response();
        }
    }
    next.run(request).await
}

/// 403 unless the request came from this server's own origin (its `Host`,
/// or `advertised`, the `scheme://host[:port]` the session object names)
/// or from no browser page at all. The WebSocket handshake (`ws`), a
/// `GET` that opens a connection able to change anything, checks it too.
pub(crate) fn same_origin(headers: &HeaderMap, advertised: Option<&str>) -> Result<(), Problem> {
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    if fetch_site.is_some_and(|s| s.eq_ignore_ascii_case("cross-site")) {
        return Err(Problem::cross_origin(
            "cross-site requests are refused (Sec-Fetch-Site: cross-site); call the API from this server's own pages or from a mail client",
        ));
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or_default().trim();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if origin_matches_host(origin, host) || advertised.is_some_and(|a| same_url_origin(origin, a)) {
        return Ok(());
    }
    Err(Problem::cross_origin(format!(
        "requests from origin {origin:?} are refused: only pages served by this server ({host}) may change anything here"
    )))
}

/// 415 unless the body is declared `application/json` (parameters such as
/// `charset` allowed).
pub(crate) fn require_json(headers: &HeaderMap) -> Result<(), Problem> {
    let given = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    let essence = given.map(|t| t.split(';').next().unwrap_or_default().trim());
    if essence.is_some_and(|e| e.eq_ignore_ascii_case("application/json")) {
        return Ok(());
    }
    Err(Problem::unsupported_media_type(format!(
        "a JMAP request is JSON: send it with Content-Type: application/json (got {})",
        given.map_or_else(|| "no Content-Type".to_string(), |t| format!("{t:?}"))
    )))
}

/// Whether `origin` (`scheme://host[:port]`) names the same host and port
/// as the `Host` header `host`.
fn origin_matches_host(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false; // "null" (sandboxed frames, file: pages) and junk
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return false,
    };
    match (
        split_authority(authority, default_port),
        split_authority(host, default_port),
    ) {
        (Some((oh, op)), Some((hh, hp))) => op == hp && oh.eq_ignore_ascii_case(hh),
        _ => false,
    }
}

/// Whether `origin` and `base` (both `scheme://host[:port]`) are one
/// origin: same scheme, host and port (a default port written or not).
fn same_url_origin(origin: &str, base: &str) -> bool {
    let scheme = |url: &str| url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    let Some((_, authority)) = base.split_once("://") else {
        return false;
    };
    let authority = authority.trim_end_matches('/');
    scheme(origin).is_some()
        && scheme(origin) == scheme(base)
        && origin_matches_host(origin, authority)
}

/// `host[:port]` or `[v6]:port` into host and port (`default` when none).
fn split_authority(authority: &str, default: u16) -> Option<(&str, u16)> {
    if authority.is_empty() || authority.contains(['/', '@', ' ', '?', '#']) {
        return None;
    }
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority.get(i..)?.contains(']') => {
            (authority.get(..i)?, Some(authority.get(i + 1..)?))
        }
        _ => (authority, None),
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default,
    };
    (!host.is_empty()).then_some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_by_host_and_port() {
        let same = |o, h| origin_matches_host(o, h);
        assert!(same("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(same("https://Mail.Example.org", "mail.example.org"));
        assert!(same("http://[::1]:8080", "[::1]:8080"));
        assert!(!same("https://evil.example", "mail.example.org"));
        assert!(!same("http://127.0.0.1:8081", "127.0.0.1:8080"));
        assert!(!same("null", "127.0.0.1:8080"));
        assert!(!same(
            "http://mail.example.org.evil.example",
            "mail.example.org"
        ));
        assert!(!same("ftp://mail.example.org", "mail.example.org"));
        assert!(!same("http://a@mail.example.org", "mail.example.org"));
    }

    #[test]
    fn the_advertised_origin_counts_as_own() {
        let post = |origin: &str, host: &str, advertised: Option<&str>| {
            let mut h = HeaderMap::new();
            h.insert(header::ORIGIN, origin.parse().unwrap());
            h.insert(header::HOST, host.parse().unwrap());
            same_origin(&h, advertised).is_ok()
        };
        // A proxy that rewrote Host to the backend's address.
        let public = Some("https://mail.example.org");
        assert!(post("https://mail.example.org", "127.0.0.1:8080", public));
        assert!(post(
            "https://MAIL.example.org:443",
            "127.0.0.1:8080",
            public
        ));
        assert!(post(
            "https://mail.example.org",
            "127.0.0.1:8080",
            Some("https://mail.example.org/")
        ));
        assert!(!post("http://mail.example.org", "127.0.0.1:8080", public));
        assert!(!post("https://evil.example", "127.0.0.1:8080", public));
        assert!(!post(
            "https://mail.example.org.evil.example",
            "127.0.0.1:8080",
            public
        ));
        assert!(!post("null", "127.0.0.1:8080", public));
        assert!(!post("https://mail.example.org", "127.0.0.1:8080", None));
        assert!(!post(
            "https://evil.example",
            "127.0.0.1:8080",
            Some("junk")
        ));
    }

    #[test]
    fn only_json_is_an_api_request() {
        let with = |t: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::CONTENT_TYPE,
                t.parse().unwrap_or(header::HeaderValue::from_static("x")),
            );
            require_json(&h).is_ok()
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(!with("text/plain"));
        assert!(!with("application/x-www-form-urlencoded"));
        assert!(!with("multipart/form-data; boundary=x"));
        assert!(!with("application/jsonx"));
        assert!(require_json(&HeaderMap::new()).is_err());
    }
}
