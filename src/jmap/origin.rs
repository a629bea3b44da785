//! Where a request came from, and the URLs to answer it with
//! (ARCHITECTURE.md: `jmap.public_url`, `jmap.trusted_proxies`).
//!
//! The session object (RFC 8620 §2) names the API, upload, download and
//! event-source URLs. They are built from `jmap.public_url` when it is
//! set; otherwise from the scheme of the listener (`https` on
//! `jmap.tls_listen`) and the request's `Host`.
//!
//! A reverse proxy that terminates TLS says what the client used in
//! `Forwarded` (RFC 7239) or `X-Forwarded-Proto` / `-Host` / `-For`.
//! Those are believed only when the connection comes from an address in
//! `jmap.trusted_proxies`: anyone else could send them to make the server
//! advertise a URL of their choosing, or to have their failed logins
//! counted against someone else's address. Of a list of hops the last one
//! counts: it is the one the trusted proxy added itself.
//!
//! A host is echoed into a URL only when it is a plain `host[:port]`
//! (`config::web::valid_authority`); a session request whose host is not
//! gets `400` naming the header, never a URL built from it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Server;
use crate::config::web::{is_trusted, valid_authority};
use crate::config::{ProxyNet, PublicUrl};

/// How the session object's URLs are made (`jmap.public_url`,
/// `jmap.trusted_proxies`).
#[derive(Debug, Clone, Default)]
pub struct UrlPolicy {
    /// `jmap.public_url`.
    pub public_url: Option<PublicUrl>,
    /// `jmap.trusted_proxies`.
    pub trusted_proxies: Vec<ProxyNet>,
}

impl UrlPolicy {
    /// The policy `config` sets.
    pub fn new(config: &crate::config::Jmap) -> Self {
        Self {
            public_url: config.public_url.clone(),
            trusted_proxies: config.trusted_proxies.clone(),
        }
    }
}

/// Put on every request by the listener: whether its connection is TLS.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Secure(pub(crate) bool);

/// A request's origin as far as it can be believed.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    /// The client: the peer, or the address a trusted proxy forwarded.
    pub(crate) client: Option<IpAddr>,
    /// `http` or `https`, as the client used it.
    scheme: &'static str,
    /// `host[:port]` the client asked for, when it is a valid one.
    host: Option<String>,
    /// What the session object advertises, when configured.
    public_url: Option<PublicUrl>,
}

impl Origin {
    /// Works out the origin of a request with `headers` from `peer` on a
    /// connection that is TLS or not.
    fn of(policy: &UrlPolicy, peer: Option<IpAddr>, tls: bool, headers: &HeaderMap) -> Self {
        let mut origin = Self {
            client: peer,
            scheme: if tls { "https" } else { "http" },
            host: header_text(headers, header::HOST.as_str())
                .filter(|h| valid_authority(h))
                .map(str::to_ascii_lowercase),
            public_url: policy.public_url.clone(),
        };
        if peer.is_some_and(|ip| is_trusted(&policy.trusted_proxies, ip)) {
            let said = Forwarded::from_headers(headers);
            if let Some(client) = said.client {
                origin.client = Some(client);
            }
            match said
                .proto
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("https") => origin.scheme = "https",
                Some("http") => origin.scheme = "http",
                _ => {}
            }
            if let Some(host) = said.host.filter(|h| valid_authority(h)) {
                origin.host = Some(host.to_ascii_lowercase());
            }
        }
        origin
    }

    /// `scheme://host[:port]` for the session's URLs, or why the request
    /// names no usable host.
    pub(crate) fn base_url(&self) -> Result<String, BadHost> {
        if let Some(url) = &self.public_url {
            return Ok(url.as_str().to_string());
        }
        match &self.host {
            Some(host) => Ok(format!("{}://{host}", self.scheme)),
            None => Err(BadHost),
        }
    }
}

/// A request whose `Host` is missing or not a plain `host[:port]`: `400`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadHost;

impl IntoResponse for BadHost {
    fn into_response(self) -> Response {
        (
            StatusCode::BAD_REQUEST,
            "the Host header is missing or not a valid host[:port]; send the name you reach this server by (or the operator sets jmap.public_url)\n",
        )
            .into_response()
    }
}

/// The last hop a proxy reported.
#[derive(Debug, Default, PartialEq, Eq)]
struct Forwarded {
    client: Option<IpAddr>,
    proto: Option<String>,
    host: Option<String>,
}

impl Forwarded {
    /// RFC 7239 `Forwarded` when present, else the `X-Forwarded-*` trio.
    fn from_headers(headers: &HeaderMap) -> Self {
        if let Some(last) = last_values(headers, "forwarded").last() {
            return Self::rfc7239(last);
        }
        let last = |name| last_values(headers, name).pop();
        Self {
            client: last("x-forwarded-for").and_then(|v| parse_node(&v)),
            proto: last("x-forwarded-proto"),
            host: last("x-forwarded-host"),
        }
    }

    /// One `forwarded-element`: `for=...;proto=...;host=...`.
    fn rfc7239(element: &str) -> Self {
        let mut out = Self::default();
        for pair in element.split(';') {
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"').to_string();
            match name.trim().to_ascii_lowercase().as_str() {
                "for" => out.client = parse_node(&value),
                "proto" => out.proto = Some(value),
                "host" => out.host = Some(value),
                _ => {}
            }
        }
        out
    }
}

/// The text of header `name`, when there is exactly one.
fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    first.to_str().ok().map(str::trim)
}

/// The comma-separated items of every `name` header, in order.
fn last_values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`,
/// `[2001:db8::1]:4711`, `2001:db8::1`; obfuscated ones (`_hidden`,
/// `unknown`) are none.
fn parse_node(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sock) = text.parse::<SocketAddr>() {
        return Some(sock.ip());
    }
    let inside = text.strip_prefix('[')?.split(']').next()?;
    inside.parse().ok()
}

/// Layer: works out each request's [`Origin`] once, for the session's
/// URLs and for the failed-login throttle (`auth::Peer`).
pub(crate) async fn resolve(
    State(server): State<Arc<Server>>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let tls = request.extensions().get::<Secure>().is_some_and(|s| s.0);
    let origin = Origin::of(&server.ctx.urls, peer, tls, request.headers());
    request.extensions_mut().insert(origin);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn trusting(nets: &[&str]) -> UrlPolicy {
        UrlPolicy {
            public_url: None,
            trusted_proxies: nets.iter().map(|n| ProxyNet::parse(n).unwrap()).collect(),
        }
    }

    const PROXY: &str = "10.0.0.5";

    fn origin(policy: &UrlPolicy, tls: bool, pairs: &[(&str, &str)]) -> Origin {
        Origin::of(policy, Some(PROXY.parse().unwrap()), tls, &headers(pairs))
    }

    #[test]
    fn the_listener_and_host_decide_without_a_proxy() {
        let o = origin(&trusting(&[]), true, &[("host", "Mail.Example.org:8443")]);
        assert_eq!(o.base_url().unwrap(), "https://mail.example.org:8443");
        let o = origin(&trusting(&[]), false, &[("host", "mail.example.org")]);
        assert_eq!(o.base_url().unwrap(), "http://mail.example.org");
    }

    #[test]
    fn forwarded_headers_of_untrusted_peers_change_nothing() {
        let said = [
            ("host", "mail.example.org"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-for", "192.0.2.9"),
            ("forwarded", "for=192.0.2.8;proto=https;host=evil.example"),
        ];
        let o = origin(&trusting(&["10.0.0.6", "192.168.0.0/16"]), false, &said);
        assert_eq!(o.base_url().unwrap(), "http://mail.example.org");
        assert_eq!(o.client, Some(PROXY.parse().unwrap()));
    }

    #[test]
    fn a_trusted_proxy_is_believed_last_hop_first() {
        let policy = trusting(&["10.0.0.0/8"]);
        let o = origin(
            &policy,
            false,
            &[
                ("host", "backend:8080"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "mail.example.org"),
                ("x-forwarded-for", "203.0.113.1, 198.51.100.7"),
            ],
        );
        assert_eq!(o.base_url().unwrap(), "https://mail.example.org");
        assert_eq!(o.client, Some("198.51.100.7".parse().unwrap()));
        let o = origin(
            &policy,
            false,
            &[
                ("host", "backend:8080"),
                ("x-forwarded-proto", "https"),
                (
                    "forwarded",
                    "for=203.0.113.1, for=\"[2001:db8::7]:4711\";proto=https;host=mail.example.org",
                ),
            ],
        );
        assert_eq!(o.base_url().unwrap(), "https://mail.example.org");
        assert_eq!(o.client, Some("2001:db8::7".parse().unwrap()));
    }

    #[test]
    fn garbage_is_never_reflected() {
        let policy = trusting(&["10.0.0.0/8"]);
        for host in [
            "a b",
            "u@evil.example",
            "evil.example/x",
            "evil.example:80:1",
        ] {
            let o = origin(&policy, false, &[("host", host)]);
            assert!(o.base_url().is_err(), "{host}");
            let o = origin(
                &policy,
                false,
                &[("host", "mail.example.org"), ("x-forwarded-host", host)],
            );
            assert_eq!(o.base_url().unwrap(), "http://mail.example.org", "{host}");
        }
        let o = origin(
            &policy,
            false,
            &[
                ("host", "mail.example.org"),
                ("x-forwarded-proto", "javascript"),
            ],
        );
        assert_eq!(o.base_url().unwrap(), "http://mail.example.org");
        let o = origin(&policy, false, &[]);
        assert!(o.base_url().is_err(), "no Host at all");
    }

    proptest::proptest! {
        /// Whatever the headers say, a URL is built only from a plain
        /// `host[:port]` and one of the two schemes.
        #[test]
        fn hostile_headers_never_reach_a_url(
            host in "[ -~]{0,40}",
            fwd_host in "[ -~]{0,40}",
            proto in "[ -~]{0,12}",
            forwarded in "[ -~]{0,60}",
        ) {
            let policy = trusting(&["10.0.0.0/8"]);
            let mut h = HeaderMap::new();
            for (name, value) in [
                ("host", &host),
                ("x-forwarded-host", &fwd_host),
                ("x-forwarded-proto", &proto),
                ("forwarded", &forwarded),
            ] {
                if let Ok(v) = value.parse() {
                    h.insert(name, v);
                }
            }
            let o = Origin::of(&policy, Some(PROXY.parse().unwrap()), false, &h);
            if let Ok(url) = o.base_url() {
                let (scheme, authority) = url.split_once("://").unwrap();
                proptest::prop_assert!(scheme == "http" || scheme == "https");
                proptest::prop_assert!(valid_authority(authority), "{}", url);
            }
        }
    }

    #[test]
    fn public_url_wins_over_everything() {
        let mut policy = trusting(&["10.0.0.0/8"]);
        policy.public_url = Some(PublicUrl::parse("https://mail.example.org").unwrap());
        let o = origin(
            &policy,
            false,
            &[("host", "a b"), ("x-forwarded-host", "evil.example")],
        );
        assert_eq!(o.base_url().unwrap(), "https://mail.example.org");
    }
}
