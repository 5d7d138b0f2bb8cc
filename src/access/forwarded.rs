//! The client's address behind a reverse proxy: `X-Forwarded-For` read from the right, and
//! only as far as the proxies in `http.trusted_proxies` wrote it.
//!
//! A proxy appends the address it got a request from, so the list's right end is the most
//! trustworthy. Walking from the right, each address a trusted proxy wrote is skipped; the
//! first one that is not a trusted proxy is the client. Anything left of it was written by
//! the client itself and is never believed. A request whose TCP peer is not a trusted proxy
//! keeps its TCP address, whatever headers it sends. Must not do I/O.

use std::net::IpAddr;

use super::hook::canonical;
use crate::net::cidr::Cidr;

/// The longest `X-Forwarded-For` value read; a longer one is not believed.
pub const MAX_FORWARDED_FOR_BYTES: usize = 4096;

/// The address a request stands for: `peer` (the TCP peer, already canonical) unless it is
/// in `trusted_proxies`, then the right-most address of `forwarded_for` not written by a
/// trusted proxy. A proxy's request without the header stands for the proxy itself; a
/// header that cannot be read (too long, not an address) stands for nobody: the unspecified
/// address, which no sensible trusted network contains.
pub fn client_address(peer: IpAddr, forwarded_for: Option<&str>, proxies: &[Cidr]) -> IpAddr {
    let unknown = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
    if !proxies.iter().any(|p| p.contains(peer)) {
        return peer;
    }
    let Some(list) = forwarded_for else {
        return peer;
    };
    if list.len() > MAX_FORWARDED_FOR_BYTES {
        return unknown;
    }
    let mut hop = peer;
    for entry in list.rsplit(',') {
        let Some(address) = entry_address(entry) else {
            return unknown;
        };
        hop = canonical(address);
        if !proxies.iter().any(|p| p.contains(hop)) {
            return hop;
        }
    }
    // Every hop is a trusted proxy: the left-most one is where the request came from.
    hop
}

/// One `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]`,
/// `[2001:db8::1]:5678`.
fn entry_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(address) = entry.parse::<IpAddr>() {
        return Some(address);
    }
    if let Some(rest) = entry.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || is_port(after.strip_prefix(':')?)) {
            return None;
        }
        return inside.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6);
    }
    let (host, port) = entry.rsplit_once(':')?;
    if !is_port(port) {
        return None;
    }
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|c| Cidr::parse(c).unwrap()).collect()
    }

    #[test]
    fn table() {
        let local = cidrs(&["127.0.0.0/8", "::1/128"]);
        let chain = cidrs(&["127.0.0.1/32", "10.0.0.0/8"]);
        let none = cidrs(&[]);
        for (peer, header, proxies, want) in [
            // Not from a proxy: the header is never read.
            ("203.0.113.9", Some("127.0.0.1"), &local, "203.0.113.9"),
            ("127.0.0.1", Some("203.0.113.9"), &none, "127.0.0.1"),
            // From a proxy: its last hop.
            ("127.0.0.1", Some("203.0.113.9"), &local, "203.0.113.9"),
            ("127.0.0.1", Some(" 203.0.113.9 "), &local, "203.0.113.9"),
            ("127.0.0.1", Some("203.0.113.9:4711"), &local, "203.0.113.9"),
            (
                "127.0.0.1",
                Some("[2001:db8::7]:4711"),
                &local,
                "2001:db8::7",
            ),
            ("127.0.0.1", Some("2001:db8::7"), &local, "2001:db8::7"),
            (
                "127.0.0.1",
                Some("::ffff:203.0.113.9"),
                &local,
                "203.0.113.9",
            ),
            // What the client wrote itself (left of the proxy's entry) is not believed.
            (
                "127.0.0.1",
                Some("127.0.0.1, 203.0.113.9"),
                &local,
                "203.0.113.9",
            ),
            (
                "127.0.0.1",
                Some("garbage, 203.0.113.9"),
                &local,
                "203.0.113.9",
            ),
            // A chain of trusted proxies is walked through.
            (
                "127.0.0.1",
                Some("198.51.100.4, 10.1.2.3"),
                &chain,
                "198.51.100.4",
            ),
            ("127.0.0.1", Some("10.9.9.9, 10.1.2.3"), &chain, "10.9.9.9"),
            // The proxy's own request.
            ("127.0.0.1", None, &local, "127.0.0.1"),
            // Unreadable: nobody.
            ("127.0.0.1", Some(""), &local, "0.0.0.0"),
            ("127.0.0.1", Some("203.0.113.9, "), &local, "0.0.0.0"),
            ("127.0.0.1", Some("unknown"), &local, "0.0.0.0"),
            ("127.0.0.1", Some("2130706433"), &local, "0.0.0.0"),
            ("127.0.0.1", Some("127.1"), &local, "0.0.0.0"),
            ("127.0.0.1", Some("1.2.3.4:99999999"), &local, "0.0.0.0"),
            ("127.0.0.1", Some("[::1"), &local, "0.0.0.0"),
            ("127.0.0.1", Some("直播"), &local, "0.0.0.0"),
        ] {
            assert_eq!(
                client_address(ip(peer), header, proxies),
                ip(want),
                "{peer} {header:?}"
            );
        }
    }

    #[test]
    fn a_header_past_the_limit_is_not_believed() {
        let local = cidrs(&["127.0.0.0/8"]);
        let long = vec!["203.0.113.9"; 400].join(",");
        assert!(long.len() > MAX_FORWARDED_FOR_BYTES);
        assert_eq!(
            client_address(ip("127.0.0.1"), Some(&long), &local),
            ip("0.0.0.0")
        );
    }
}
