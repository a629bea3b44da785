//! The self-service account page at `/account/` (ARCHITECTURE.md, "Web
//! page and metrics"): one HTML file, one style sheet, two scripts and an
//! icon, compiled into the binary, that let a user manage their certificates
//! and encryption settings through the JMAP API
//! (`urn:sealmail:params:jmap:encryption`) from the browser. There is no
//! second backend: these routes only serve the files; everything the page
//! does is a JMAP request with the user's credentials, so it meets the same
//! authentication, failed-login throttling, cross-site guard and limits as
//! any other JMAP client.
//!
//! # Why these headers
//!
//! Every response here carries a Content-Security-Policy that allows
//! nothing but this server's own script, style sheet and API
//! ([`CSP`]): no inline script or style, no other origin, no form
//! submission, no framing (click-jacking), no `<base>` rewriting. The page
//! sets no cookie and the script holds the credentials in memory only,
//! sending them as an `Authorization` header it adds itself (see
//! `assets/page.js`), so a foreign page cannot make the browser act with
//! them: there is no ambient credential to forge a request with, hence no
//! CSRF surface. `nosniff` stops a browser from reading a file as another
//! type; `no-referrer` keeps the page's URL from other sites.
//!
//! # PKCS#12 files
//!
//! `assets/pkcs12.js` opens a .p12/.pfx in the browser (RFC 7292; WebCrypto,
//! plus RC2 and DES written out for the legacy schemes) so that only the
//! certificate in it is sent: the file, its password and its private key
//! stay in the tab, and the server applies its certificate rules to what
//! arrives as to any upload.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

/// Where the page lives; `/` and `/account` redirect here.
pub(crate) const PATH: &str = "/account/";

/// The page's Content-Security-Policy.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; form-action 'none'; frame-ancestors 'none'; \
     base-uri 'none'";

const INDEX_HTML: &str = include_str!("assets/index.html");
const PAGE_CSS: &str = include_str!("assets/page.css");
const PAGE_JS: &str = include_str!("assets/page.js");
const PKCS12_JS: &str = include_str!("assets/pkcs12.js");
const FAVICON_SVG: &str = include_str!("assets/favicon.svg");

/// The page's routes; they need no state and no credentials.
pub(crate) fn routes() -> Router {
    Router::new()
        .route("/", get(|| async { to_page() }))
        .route("/account", get(|| async { to_page() }))
        .route(PATH, get(|| async { asset("text/html", INDEX_HTML) }))
        .route(
            "/account/page.css",
            get(|| async { asset("text/css", PAGE_CSS) }),
        )
        .route(
            "/account/page.js",
            get(|| async { asset("text/javascript", PAGE_JS) }),
        )
        .route(
            "/account/pkcs12.js",
            get(|| async { asset("text/javascript", PKCS12_JS) }),
        )
        .route(
            "/account/favicon.svg",
            get(|| async { asset("image/svg+xml", FAVICON_SVG) }),
        )
}

/// `303 See Other` to the page, with the page's headers.
fn to_page() -> Response {
    secured(Redirect::to(PATH).into_response())
}

/// One embedded file as `content_type` in UTF-8.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let value = match content_type {
        "text/html" => "text/html; charset=utf-8",
        "text/css" => "text/css; charset=utf-8",
        "image/svg+xml" => "image/svg+xml",
        _ => "text/javascript; charset=utf-8",
    };
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
    secured(response)
}

/// `response` with the security headers of the module doc.
fn secured(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let fixed = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // why no-cache: a new binary's page must not meet an old cached
        // script; the files are small.
        (header::CACHE_CONTROL, "no-cache"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_assets_load_nothing_from_elsewhere_and_nothing_inline() {
        for (name, text) in [
            ("index.html", INDEX_HTML),
            ("page.css", PAGE_CSS),
            ("page.js", PAGE_JS),
            ("pkcs12.js", PKCS12_JS),
        ] {
            for banned in ["http://", "https://", "//cdn", "@import"] {
                assert!(!text.contains(banned), "{name} contains {banned:?}");
            }
        }
        let lower = INDEX_HTML.to_ascii_lowercase();
        assert!(!lower.contains("<style"), "inline style element");
        assert!(!lower.contains(" style="), "inline style attribute");
        assert!(!has_event_handler(&lower), "inline event handler");
        assert_eq!(
            lower.matches("<script").count(),
            2,
            "exactly two script elements"
        );
        assert!(
            lower.contains("<script src=\"pkcs12.js\" defer></script>\n<script src=\"page.js\"")
        );
    }

    /// Whether `html` has an attribute `on...=`.
    fn has_event_handler(html: &str) -> bool {
        html.match_indices(" on").any(|(at, _)| {
            let rest = html.get(at + 3..).unwrap_or_default();
            let name_end = rest.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(0);
            name_end > 0 && rest.get(name_end..).is_some_and(|r| r.starts_with('='))
        })
    }

    #[test]
    fn the_scripts_never_write_markup() {
        for (name, script) in [("page.js", PAGE_JS), ("pkcs12.js", PKCS12_JS)] {
            for banned in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "new Function",
            ] {
                assert!(!script.contains(banned), "{name} uses {banned}");
            }
            assert!(
                !script.contains("document.cookie"),
                "{name} touches cookies"
            );
            assert!(!script.contains("localStorage") && !script.contains("sessionStorage"));
        }
    }

    #[test]
    fn the_pkcs12_reader_sends_nothing_itself() {
        // why: it holds the file, its password and (encrypted) the private
        // key; only page.js talks to the server, with what it returns.
        for banned in [
            "fetch(",
            "XMLHttpRequest",
            "WebSocket",
            "sendBeacon",
            "EventSource",
        ] {
            assert!(!PKCS12_JS.contains(banned), "pkcs12.js uses {banned}");
        }
    }
}
