//! CIDR ranges (`10.0.0.0/8`, `fd00::/8`, a bare address) as written in the configuration,
//! and whether an address falls inside one.
//!
//! An IPv4 range also matches the IPv4-mapped IPv6 spelling of its addresses
//! (`::ffff:10.1.2.3` is in `10.0.0.0/8`), and an IPv6 range matches an IPv4 address by its
//! mapped spelling (`10.1.2.3` is in `::ffff:0:0/96`), so a range cannot be stepped around by
//! writing the same address the other way. A range whose host bits are set
//! (`192.168.1.5/24`) is refused rather than silently widened: it is usually a typo, and the
//! error names the network that was probably meant.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One address range: a network address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses a configured list of ranges (see [`Cidr::parse`]); blank entries are skipped,
    /// and an error names the configuration `key`.
    pub fn parse_list(entries: &[String], key: &str) -> Result<Vec<Cidr>, String> {
        entries
            .iter()
            .filter(|t| !t.trim().is_empty())
            .map(|t| Cidr::parse(t).map_err(|e| format!("{key}: {e}")))
            .collect()
    }

    /// Parses `ADDRESS/PREFIX` or a bare `ADDRESS` (a single host: /32 for IPv4, /128 for
    /// IPv6). Surrounding whitespace is ignored. IPv6 zone ids (`%eth0`) are not accepted.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("an empty string is not a CIDR range (expected e.g. 10.0.0.0/8)".into());
        }
        let (address_text, prefix_text) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address_text.parse().map_err(|_| {
            format!("{text:?} is not a CIDR range: {address_text:?} is not an IPv4 or IPv6 address")
        })?;
        let max_prefix = max_prefix(network);
        let prefix = match prefix_text {
            None => max_prefix,
            Some(p) => {
                if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!(
                        "{text:?} is not a CIDR range: the prefix length {p:?} is not a number from 0 to {max_prefix}"
                    ));
                }
                let value: u16 = p.parse().map_err(|_| {
                    format!("{text:?} is not a CIDR range: the prefix length {p:?} is not a number")
                })?;
                if value > u16::from(max_prefix) {
                    return Err(format!(
                        "{text:?} is not a CIDR range: the prefix length {value} is larger than {max_prefix}"
                    ));
                }
                value as u8
            }
        };
        let masked = mask(network, prefix);
        if masked != network {
            return Err(format!(
                "{text:?} has bits set after the first {prefix}; the network is {masked}/{prefix}"
            ));
        }
        Ok(Cidr { network, prefix })
    }

    /// The range's first address.
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The number of leading bits that every address in the range shares.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in this range, IPv4-mapped IPv6 addresses counting as the IPv4 address
    /// they carry (and IPv4 addresses as their mapped spelling against an IPv6 range).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => v4_in(net, self.prefix, ip),
            (IpAddr::V4(net), IpAddr::V6(ip)) => match ip.to_ipv4_mapped() {
                Some(v4) => v4_in(net, self.prefix, v4),
                None => false,
            },
            (IpAddr::V6(net), IpAddr::V6(ip)) => v6_in(net, self.prefix, ip),
            (IpAddr::V6(net), IpAddr::V4(ip)) => v6_in(net, self.prefix, ip.to_ipv6_mapped()),
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// The mask with the first `prefix` bits set (`prefix` at most 32).
fn v4_mask(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

/// The mask with the first `prefix` bits set (`prefix` at most 128).
fn v6_mask(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & v4_mask(prefix))),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & v6_mask(prefix))),
    }
}

fn v4_in(net: Ipv4Addr, prefix: u8, ip: Ipv4Addr) -> bool {
    let m = v4_mask(prefix);
    u32::from(ip) & m == u32::from(net) & m
}

fn v6_in(net: Ipv6Addr, prefix: u8, ip: Ipv6Addr) -> bool {
    let m = v6_mask(prefix);
    u128::from(ip) & m == u128::from(net) & m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Cidr {
        match Cidr::parse(text) {
            Ok(c) => c,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    fn ip(text: &str) -> IpAddr {
        match text.parse() {
            Ok(a) => a,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    #[test]
    fn parses_ranges_and_bare_addresses() {
        assert_eq!(cidr("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(cidr(" 192.168.0.0/16 ").to_string(), "192.168.0.0/16");
        assert_eq!(cidr("::1/128").to_string(), "::1/128");
        assert_eq!(cidr("fc00::/7").to_string(), "fc00::/7");
        assert_eq!(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!(cidr("::/0").to_string(), "::/0");
        assert_eq!(cidr("203.0.113.7").to_string(), "203.0.113.7/32");
        assert_eq!(cidr("2001:db8::1").to_string(), "2001:db8::1/128");
        assert_eq!(cidr("2001:db8::1").prefix(), 128);
        assert_eq!(cidr("10.0.0.0/8").network(), ip("10.0.0.0"));
    }

    #[test]
    fn refuses_malformed_text_with_a_sentence() {
        for (text, needle) in [
            ("", "empty"),
            ("   ", "empty"),
            ("10.0.0.0/", "prefix length"),
            ("10.0.0.0/33", "larger than 32"),
            ("::/129", "larger than 128"),
            ("10.0.0.0/+8", "prefix length"),
            ("10.0.0.0/-1", "prefix length"),
            ("10.0.0.0/8/8", "prefix length"),
            ("10.0.0.0/0008", "prefix length"),
            ("10.0.0.0/99999999999999999999", "prefix length"),
            ("10.0.0/8", "not an IPv4 or IPv6 address"),
            ("example.com/8", "not an IPv4 or IPv6 address"),
            ("fe80::1%eth0/64", "not an IPv4 or IPv6 address"),
            ("[::1]/128", "not an IPv4 or IPv6 address"),
            ("直播/8", "not an IPv4 or IPv6 address"),
            ("10.0.0.0/８", "prefix length"),
        ] {
            match Cidr::parse(text) {
                Ok(c) => panic!("{text:?} parsed as {c}"),
                Err(e) => assert!(e.contains(needle), "{text:?}: {e}"),
            }
        }
    }

    #[test]
    fn refuses_host_bits_and_names_the_network() {
        let e = Cidr::parse("192.168.1.5/24").err().unwrap_or_default();
        assert!(e.contains("192.168.1.0/24"), "{e}");
        let e = Cidr::parse("fd00::1/8").err().unwrap_or_default();
        assert!(e.contains("fd00::/8"), "{e}");
        let e = Cidr::parse("10.0.0.1/0").err().unwrap_or_default();
        assert!(e.contains("0.0.0.0/0"), "{e}");
    }

    #[test]
    fn contains_checks_both_edges() {
        let c = cidr("172.16.0.0/12");
        assert!(!c.contains(ip("172.15.255.255")));
        assert!(c.contains(ip("172.16.0.0")));
        assert!(c.contains(ip("172.31.255.255")));
        assert!(!c.contains(ip("172.32.0.0")));

        let c = cidr("fc00::/7");
        assert!(!c.contains(ip("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
        assert!(c.contains(ip("fc00::")));
        assert!(c.contains(ip("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
        assert!(!c.contains(ip("fe00::")));
    }

    #[test]
    fn single_hosts_and_everything() {
        let c = cidr("203.0.113.7");
        assert!(c.contains(ip("203.0.113.7")));
        assert!(!c.contains(ip("203.0.113.6")));
        assert!(!c.contains(ip("203.0.113.8")));
        let all4 = cidr("0.0.0.0/0");
        assert!(all4.contains(ip("0.0.0.0")));
        assert!(all4.contains(ip("255.255.255.255")));
        assert!(!all4.contains(ip("2001:db8::1")));
        let all6 = cidr("::/0");
        assert!(all6.contains(ip("::")));
        assert!(all6.contains(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
    }

    #[test]
    fn ipv4_mapped_addresses_match_ipv4_ranges_and_back() {
        let c = cidr("127.0.0.0/8");
        assert!(c.contains(ip("::ffff:127.0.0.1")));
        assert!(c.contains(ip("::ffff:7f00:1")));
        assert!(!c.contains(ip("::ffff:128.0.0.1")));
        // Not mapped: IPv4-compatible and NAT64 spellings are the address module's business.
        assert!(!c.contains(ip("::127.0.0.1")));
        assert!(!c.contains(ip("::1")));

        let mapped = cidr("::ffff:0:0/96");
        assert!(mapped.contains(ip("8.8.8.8")));
        assert!(mapped.contains(ip("::ffff:8.8.8.8")));
        assert!(!cidr("::1/128").contains(ip("127.0.0.1")));
        assert!(cidr("::ffff:10.0.0.0/104").contains(ip("10.9.8.7")));
        assert!(!cidr("::ffff:10.0.0.0/104").contains(ip("11.9.8.7")));
    }
}
