//! `host:port` addresses as operators write them: an IPv4 address, a bracketed IPv6 address or a
//! DNS name, and a port.
//!
//! Node and agent addresses may be host names (`node1.lan:7341`). They are stored and sent as the
//! text the operator wrote and resolved by the client at each new connection, so a changed DNS
//! record is picked up without restarting anything. What this module decides is only what the
//! text means before any lookup: is it well formed, is it a wildcard (`0.0.0.0`, `[::]`) that no
//! other host can connect to, is it loopback (then no other host can reach it either).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// A parsed `host:port`; `host` keeps IPv6 brackets, so `to_string` gives back a connectable text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// `10.0.0.1`, `[fe80::1]` or `node1.lan`.
    pub host: String,
    pub port: u16,
}

/// Why a text is not a `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a host:port address ({reason}); write e.g. 10.0.0.1:7340, [fe80::1]:7340 or node1.lan:7340")]
pub struct AddressError {
    pub text: String,
    pub reason: &'static str,
}

/// Longest DNS name (RFC 1035), and of one label.
const NAME_BYTES_MAX: usize = 253;
const LABEL_BYTES_MAX: usize = 63;

impl HostPort {
    /// Parses `host:port`; the host is an IP address or a DNS name (letters, digits, `-`, `.`).
    pub fn parse(text: &str) -> Result<HostPort, AddressError> {
        let bad = |reason| AddressError { text: text.to_string(), reason };
        if let Ok(sa) = text.parse::<SocketAddr>() {
            return Ok(HostPort::from(sa));
        }
        let (host, port) = text.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        let port: u16 = port.parse().map_err(|_| bad("the port is not a number from 0 to 65535"))?;
        if host.starts_with('[') || host.contains(':') {
            return Err(bad("not a valid IPv6 address"));
        }
        if !is_dns_name(host) {
            return Err(bad("the host is neither an IP address nor a DNS name"));
        }
        Ok(HostPort { host: host.to_ascii_lowercase(), port })
    }

    /// The host as an IP address, when it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.trim_start_matches('[').trim_end_matches(']').parse().ok()
    }

    /// `0.0.0.0` or `[::]`: a bind address that accepts on every interface but that no other
    /// host can connect to.
    pub fn is_wildcard(&self) -> bool {
        self.ip().is_some_and(|ip| ip.is_unspecified())
    }

    /// Reachable from this machine only (`127.0.0.0/8`, `[::1]`, `localhost`).
    pub fn is_loopback(&self) -> bool {
        match self.ip() {
            Some(ip) => ip.is_loopback(),
            None => self.host == "localhost" || self.host.ends_with(".localhost"),
        }
    }

    /// The same host with another port (the embedded agent's address from the node's).
    pub fn with_port(&self, port: u16) -> HostPort {
        HostPort { host: self.host.clone(), port }
    }
}

impl From<SocketAddr> for HostPort {
    fn from(sa: SocketAddr) -> Self {
        let host = match sa.ip() {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        };
        HostPort { host, port: sa.port() }
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// A DNS name: dot-separated labels of letters, digits and inner hyphens, not all-numeric (so a
/// mistyped IPv4 address such as `10.0.0.256` is not taken for a name).
fn is_dns_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > NAME_BYTES_MAX {
        return false;
    }
    let labels_ok = host.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= LABEL_BYTES_MAX
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    let numeric = host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    labels_ok && !numeric
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ips_and_names_parse_and_keep_a_connectable_form() {
        let cases = [
            ("10.0.0.1:7340", "10.0.0.1:7340"),
            ("[::1]:7341", "[::1]:7341"),
            ("Node1.LAN:7341", "node1.lan:7341"),
            ("localhost:0", "localhost:0"),
            ("db-1.example.com.:80", "db-1.example.com.:80"),
        ];
        for (text, shown) in cases {
            assert_eq!(HostPort::parse(text).unwrap().to_string(), shown, "{text}");
        }
    }

    #[test]
    fn malformed_addresses_say_what_is_wrong() {
        let cases = [
            ("10.0.0.1", "no port"),
            ("node1:http", "port"),
            ("node1:70000", "port"),
            ("10.0.0.256:1", "neither"),
            ("bad_name:1", "neither"),
            ("-x.lan:1", "neither"),
            ("[::1:1", "IPv6"),
            (":7340", "neither"),
        ];
        for (text, reason) in cases {
            let err = HostPort::parse(text).unwrap_err().to_string();
            assert!(err.contains(reason), "{text}: {err}");
        }
    }

    #[test]
    fn wildcard_and_loopback_are_told_apart() {
        let w = |t: &str| HostPort::parse(t).unwrap().is_wildcard();
        let l = |t: &str| HostPort::parse(t).unwrap().is_loopback();
        assert!(w("0.0.0.0:1") && w("[::]:1"));
        assert!(!w("10.0.0.1:1") && !w("node1.lan:1"));
        assert!(l("127.0.0.2:1") && l("[::1]:1") && l("localhost:1"));
        assert!(!l("10.0.0.1:1") && !l("node1.lan:1") && !l("0.0.0.0:1"));
    }
}
