//! A bare HTTP/1.0 client over `std::net`, for plain-text endpoints (the
//! metrics listener, health checks, Prometheus' API). HTTP/1.0 so that
//! the body comes whole until the server closes, never chunked.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

/// `GET path` on 127.0.0.1:`port`: the status code and the body.
pub fn get(port: u16, path: &str) -> (u16, String) {
    let (status, _, body) = get_with_headers(port, path);
    (status, body)
}

/// `GET path` on 127.0.0.1:`port`: the status code, the header fields
/// (names in lower case, in order) and the body.
pub fn get_with_headers(port: u16, path: &str) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer to GET {path}: {text:?}"));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

/// `s` with every byte outside `[A-Za-z0-9_.~-]` percent-encoded, for a
/// query string.
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'~' | b'-' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
