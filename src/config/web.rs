//! The two JMAP-listener keys that are more than a scalar:
//! `jmap.public_url` ([`PublicUrl`]) and `jmap.trusted_proxies`
//! ([`ProxyNet`]). Both are checked when the configuration loads, with an
//! error that names the key, so that a typo stops the server at start
//! rather than making it advertise a wrong URL or trust the whole
//! internet.

use std::fmt;
use std::net::IpAddr;

use serde::Deserialize;

/// `jmap.public_url`: the `scheme://host[:port]` clients reach the JMAP
/// server at (e.g. `https://mail.example.org`), kept without a trailing
/// slash. Only `http` and `https`, no user, path, query or fragment:
/// the session object appends its own paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(String);

impl PublicUrl {
    /// `text` checked, as the configuration takes it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!("jmap.public_url {text:?} {why}; write e.g. \"https://mail.example.org\"")
        };
        let (scheme, rest) = text.split_once("://").ok_or_else(|| bad("has no scheme"))?;
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return Err(bad("must start with https:// or http://"));
        }
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#']) {
            return Err(bad("must not have a path, query or fragment"));
        }
        if !valid_authority(authority) {
            return Err(bad("has no valid host[:port]"));
        }
        Ok(Self(format!(
            "{}://{authority}",
            scheme.to_ascii_lowercase()
        )))
    }

    /// `scheme://host[:port]`, no trailing slash.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for PublicUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Longest `host[:port]` taken from a request or the configuration: a
/// DNS name is at most 253 bytes, plus a port.
const MAX_AUTHORITY: usize = 260;

/// Whether `text` is a plain `host[:port]`: a DNS name or IPv4 address
/// (letters, digits, `-`, `.`) or a bracketed IPv6 address, and an
/// optional decimal port. Nothing else (spaces, `@`, `/`, controls, ...)
/// may be echoed back into a URL.
pub fn valid_authority(text: &str) -> bool {
    if text.is_empty() || text.len() > MAX_AUTHORITY {
        return false;
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return false;
        };
        if inside.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return false,
            },
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(text), None),
        }
    };
    let host_ok = host.is_none_or(|h| {
        !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    });
    let port_ok = port.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u16>().is_ok()
    });
    host_ok && port_ok
}

/// One entry of `jmap.trusted_proxies`: an address (`127.0.0.1`, `::1`)
/// or a network in CIDR notation (`10.0.0.0/8`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyNet {
    network: IpAddr,
    prefix: u8,
}

impl ProxyNet {
    /// `text` checked.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: String| {
            format!(
                "jmap.trusted_proxies entry {text:?} {why}; write an address or a network, e.g. \"127.0.0.1\", \"10.0.0.0/8\", \"::1\""
            )
        };
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.trim(), None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| bad("is not an IP address".into()))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| bad(format!("has a prefix length that is not 0 to {max}")))?,
        };
        Ok(Self { network, prefix })
    }

    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address
    /// counts as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_matches(&n.octets(), &a.octets(), self.prefix),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_matches(&n.octets(), &a.octets(), self.prefix),
            _ => false,
        }
    }
}

fn prefix_matches(net: &[u8], addr: &[u8], prefix: u8) -> bool {
    let mut bits = usize::from(prefix);
    for (n, a) in net.iter().zip(addr) {
        if bits == 0 {
            return true;
        }
        let take = bits.min(8);
        let mask = 0xffu8 << (8 - take);
        if n & mask != a & mask {
            return false;
        }
        bits -= take;
    }
    true
}

impl fmt::Display for ProxyNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl<'de> Deserialize<'de> for ProxyNet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Whether `ip` is one of `proxies`.
pub fn is_trusted(proxies: &[ProxyNet], ip: IpAddr) -> bool {
    proxies.iter().any(|p| p.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies_match_addresses_and_networks() {
        let lo = ProxyNet::parse("127.0.0.1").unwrap();
        assert!(lo.contains("127.0.0.1".parse().unwrap()));
        assert!(!lo.contains("127.0.0.2".parse().unwrap()));
        assert!(lo.contains("::ffff:127.0.0.1".parse().unwrap()), "mapped");
        let ten = ProxyNet::parse("10.0.0.0/8").unwrap();
        assert!(ten.contains("10.200.3.4".parse().unwrap()));
        assert!(!ten.contains("11.0.0.1".parse().unwrap()));
        let odd = ProxyNet::parse("192.168.4.0/22").unwrap();
        assert!(odd.contains("192.168.7.255".parse().unwrap()));
        assert!(!odd.contains("192.168.8.0".parse().unwrap()));
        let v6 = ProxyNet::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        let all = ProxyNet::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn bad_proxies_are_refused_naming_the_key() {
        for bad in ["localhost", "10.0.0.0/33", "::1/129", "10.0.0.0/x", ""] {
            let err = ProxyNet::parse(bad).unwrap_err();
            assert!(err.contains("jmap.trusted_proxies"), "{err}");
        }
    }

    #[test]
    fn public_urls_are_origins_only() {
        assert_eq!(
            PublicUrl::parse("https://mail.example.org/")
                .unwrap()
                .as_str(),
            "https://mail.example.org"
        );
        assert_eq!(
            PublicUrl::parse("HTTP://[::1]:8080").unwrap().as_str(),
            "http://[::1]:8080"
        );
        for bad in [
            "mail.example.org",
            "ftp://mail.example.org",
            "https://mail.example.org/jmap",
            "https://user@mail.example.org",
            "https://",
            "https://a b",
            "https://mail.example.org:99999",
        ] {
            let err = PublicUrl::parse(bad).unwrap_err();
            assert!(err.contains("jmap.public_url"), "{bad}: {err}");
        }
    }

    #[test]
    fn authorities_refuse_what_must_not_reach_a_url() {
        for good in [
            "mail.example.org",
            "mail:8443",
            "127.0.0.1:80",
            "[::1]:1",
            "[::1]",
        ] {
            assert!(valid_authority(good), "{good}");
        }
        let long = "a".repeat(300);
        for bad in [
            "",
            "a b",
            "evil.org/x",
            "u@evil.org",
            "evil.org\r\nX: y",
            "evil.org:",
            "evil.org:80:80",
            "[::1",
            "[nothex]:1",
            "evil.org?x",
            long.as_str(),
        ] {
            assert!(!valid_authority(bad), "{bad:?}");
        }
    }
}
