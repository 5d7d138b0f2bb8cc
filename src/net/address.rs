//! Which addresses a pull must not reach without permission: loopback, private networks,
//! link-local (cloud metadata at 169.254.169.254), carrier-grade NAT, multicast, the
//! unspecified address (which Linux connects to as loopback), and the reserved,
//! documentation and benchmarking ranges no public RTMP server lives in.
//!
//! IPv6 spellings that carry an IPv4 address — IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible
//! `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d` and 6to4 `2002:aabb:ccdd::` — are judged by the IPv4
//! address inside, so `::ffff:127.0.0.1` is as much loopback as `127.0.0.1`. Everything
//! outside the IPv6 global unicast block 2000::/3 that is not listed by name is reserved.
//!
//! Pure table look-ups: no resolving, no policy (that is [`super::pull_guard`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const LOOPBACK: &str = "a loopback address";
const PRIVATE: &str = "a private address (RFC 1918)";
const LINK_LOCAL: &str = "a link-local address";
const MULTICAST: &str = "a multicast address";
const UNSPECIFIED: &str = "an unspecified address";
const DOCUMENTATION: &str = "a documentation address";
const BENCHMARKING: &str = "a benchmarking address";

/// IPv4 ranges by network, prefix length and name; the first match names the address.
const V4_RANGES: &[(u32, u8, &str)] = &[
    (0xffff_ffff, 32, "the broadcast address"),
    (0x0000_0000, 8, UNSPECIFIED),
    (0x0a00_0000, 8, PRIVATE),
    (
        0x6440_0000,
        10,
        "a carrier-grade NAT address (100.64.0.0/10)",
    ),
    (0x7f00_0000, 8, LOOPBACK),
    (0xa9fe_0000, 16, LINK_LOCAL),
    (0xac10_0000, 12, PRIVATE),
    (0xc000_0000, 24, "an IETF protocol address (192.0.0.0/24)"),
    (0xc000_0200, 24, DOCUMENTATION),
    (
        0xc058_6300,
        24,
        "a 6to4 relay anycast address (192.88.99.0/24)",
    ),
    (0xc0a8_0000, 16, PRIVATE),
    (0xc612_0000, 15, BENCHMARKING),
    (0xc633_6400, 24, DOCUMENTATION),
    (0xcb00_7100, 24, DOCUMENTATION),
    (0xe000_0000, 4, MULTICAST),
    (0xf000_0000, 4, "a reserved address (240.0.0.0/4)"),
];

/// IPv6 ranges that carry no IPv4 address, by network, prefix length and name.
const V6_RANGES: &[(u128, u8, &str)] = &[
    (0, 128, UNSPECIFIED),
    (1, 128, LOOPBACK),
    (
        0x0100_0000_0000_0000 << 64,
        64,
        "a discard-only address (100::/64)",
    ),
    (
        0x0064_ff9b_0001_u128 << 80,
        48,
        "a local-use NAT64 address (64:ff9b:1::/48)",
    ),
    (0x2001_0002_u128 << 96, 48, BENCHMARKING),
    (0x2001_0db8_u128 << 96, 32, DOCUMENTATION),
    (0x3fff_u128 << 112, 20, DOCUMENTATION),
    (0xfc00_u128 << 112, 7, "a unique local address (fc00::/7)"),
    (0xfe80_u128 << 112, 10, LINK_LOCAL),
    (0xfec0_u128 << 112, 10, "a site-local address (fec0::/10)"),
    (0xff00_u128 << 112, 8, MULTICAST),
];

/// Names the range `ip` is in when a pull must not reach it without permission; `None`
/// for an ordinary public address.
pub fn special_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_range(v4),
        IpAddr::V6(v6) => v6_range(v6),
    }
}

/// The IPv4 address an IPv6 address carries, for the spellings that route to it: IPv4-mapped
/// (`::ffff:0:0/96`), IPv4-compatible (`::/96`, except `::` and `::1`), NAT64
/// (`64:ff9b::/96`) and 6to4 (`2002::/16`, the address in bits 16–47).
pub fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    // `as u32` keeps the low 32 bits: that is the point here.
    let low = Ipv4Addr::from(bits as u32);
    if bits >> 32 == 0xffff {
        Some(low)
    } else if bits >> 32 == 0 {
        // :: and ::1 are IPv6's own unspecified and loopback addresses.
        (bits > 1).then_some(low)
    } else if bits >> 32 == 0x0064_ff9b_u128 << 64 {
        Some(low)
    } else if bits >> 112 == 0x2002 {
        Some(Ipv4Addr::from((bits >> 80) as u32))
    } else {
        None
    }
}

fn v4_range(ip: Ipv4Addr) -> Option<&'static str> {
    let bits = u32::from(ip);
    V4_RANGES
        .iter()
        .find(|(net, prefix, _)| in_v4(bits, *net, *prefix))
        .map(|(_, _, name)| *name)
}

fn v6_range(ip: Ipv6Addr) -> Option<&'static str> {
    let bits = u128::from(ip);
    if let Some(name) = V6_RANGES
        .iter()
        .find(|(net, prefix, _)| in_v6(bits, *net, *prefix))
        .map(|(_, _, name)| *name)
    {
        return Some(name);
    }
    if let Some(v4) = embedded_ipv4(ip) {
        return v4_range(v4);
    }
    // Global unicast is 2000::/3; the rest of the space is reserved or unassigned.
    if bits >> 125 != 0b001 {
        return Some("a reserved IPv6 address (outside 2000::/3)");
    }
    None
}

fn in_v4(bits: u32, net: u32, prefix: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    bits & mask == net & mask
}

fn in_v6(bits: u128, net: u128, prefix: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    bits & mask == net & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        match text.parse() {
            Ok(a) => a,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    fn range(text: &str) -> Option<&'static str> {
        special_range(ip(text))
    }

    /// Each range: the address before it, its first and last address, the one after it.
    #[test]
    fn every_ipv4_range_at_both_edges() {
        for (before, first, last, after, name) in [
            (
                None,
                "0.0.0.0",
                "0.255.255.255",
                Some("1.0.0.0"),
                UNSPECIFIED,
            ),
            (
                Some("9.255.255.255"),
                "10.0.0.0",
                "10.255.255.255",
                Some("11.0.0.0"),
                PRIVATE,
            ),
            (
                Some("100.63.255.255"),
                "100.64.0.0",
                "100.127.255.255",
                Some("100.128.0.0"),
                "a carrier-grade NAT address (100.64.0.0/10)",
            ),
            (
                Some("126.255.255.255"),
                "127.0.0.0",
                "127.255.255.255",
                Some("128.0.0.0"),
                LOOPBACK,
            ),
            (
                Some("169.253.255.255"),
                "169.254.0.0",
                "169.254.255.255",
                Some("169.255.0.0"),
                LINK_LOCAL,
            ),
            (
                Some("172.15.255.255"),
                "172.16.0.0",
                "172.31.255.255",
                Some("172.32.0.0"),
                PRIVATE,
            ),
            (
                Some("191.255.255.255"),
                "192.0.0.0",
                "192.0.0.255",
                Some("192.0.1.0"),
                "an IETF protocol address (192.0.0.0/24)",
            ),
            (
                Some("192.0.1.255"),
                "192.0.2.0",
                "192.0.2.255",
                Some("192.0.3.0"),
                DOCUMENTATION,
            ),
            (
                Some("192.88.98.255"),
                "192.88.99.0",
                "192.88.99.255",
                Some("192.88.100.0"),
                "a 6to4 relay anycast address (192.88.99.0/24)",
            ),
            (
                Some("192.167.255.255"),
                "192.168.0.0",
                "192.168.255.255",
                Some("192.169.0.0"),
                PRIVATE,
            ),
            (
                Some("198.17.255.255"),
                "198.18.0.0",
                "198.19.255.255",
                Some("198.20.0.0"),
                BENCHMARKING,
            ),
            (
                Some("198.51.99.255"),
                "198.51.100.0",
                "198.51.100.255",
                Some("198.51.101.0"),
                DOCUMENTATION,
            ),
            (
                Some("203.0.112.255"),
                "203.0.113.0",
                "203.0.113.255",
                Some("203.0.114.0"),
                DOCUMENTATION,
            ),
            (
                Some("223.255.255.255"),
                "224.0.0.0",
                "239.255.255.255",
                None,
                MULTICAST,
            ),
            (
                None,
                "240.0.0.0",
                "255.255.255.254",
                None,
                "a reserved address (240.0.0.0/4)",
            ),
        ] {
            assert_eq!(range(first), Some(name), "{first}");
            assert_eq!(range(last), Some(name), "{last}");
            if let Some(before) = before {
                assert_eq!(range(before), None, "{before}");
            }
            if let Some(after) = after {
                assert_eq!(range(after), None, "{after}");
            }
        }
        assert_eq!(range("239.255.255.255"), Some(MULTICAST));
        assert_eq!(range("240.0.0.0"), Some("a reserved address (240.0.0.0/4)"));
        assert_eq!(range("255.255.255.255"), Some("the broadcast address"));
        assert_eq!(range("169.254.169.254"), Some(LINK_LOCAL));
    }

    #[test]
    fn public_ipv4_addresses_pass() {
        for a in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "223.255.255.255",
            "192.0.1.1",
        ] {
            assert_eq!(range(a), None, "{a}");
        }
    }

    #[test]
    fn every_ipv6_range_at_both_edges() {
        for (before, first, last, after, name) in [
            (None, "::", "::", None, UNSPECIFIED),
            (None, "::1", "::1", None, LOOPBACK),
            (
                None,
                "100::",
                "100::ffff:ffff:ffff:ffff",
                None,
                "a discard-only address (100::/64)",
            ),
            (
                None,
                "64:ff9b:1::",
                "64:ff9b:1:ffff:ffff:ffff:ffff:ffff",
                None,
                "a local-use NAT64 address (64:ff9b:1::/48)",
            ),
            (
                Some("2001:1:ffff:ffff:ffff:ffff:ffff:ffff"),
                "2001:2::",
                "2001:2:0:ffff:ffff:ffff:ffff:ffff",
                Some("2001:2:1::"),
                BENCHMARKING,
            ),
            (
                Some("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff"),
                "2001:db8::",
                "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
                Some("2001:db9::"),
                DOCUMENTATION,
            ),
            (
                Some("3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
                "3fff::",
                "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff",
                Some("3fff:1000::"),
                DOCUMENTATION,
            ),
            (
                None,
                "fc00::",
                "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                None,
                "a unique local address (fc00::/7)",
            ),
            (
                None,
                "fe80::",
                "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                None,
                LINK_LOCAL,
            ),
            (
                None,
                "fec0::",
                "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                None,
                "a site-local address (fec0::/10)",
            ),
            (
                None,
                "ff00::",
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                None,
                MULTICAST,
            ),
        ] {
            assert_eq!(range(first), Some(name), "{first}");
            assert_eq!(range(last), Some(name), "{last}");
            if let Some(before) = before {
                assert_eq!(range(before), None, "{before}");
            }
            if let Some(after) = after {
                assert_eq!(range(after), None, "{after}");
            }
        }
    }

    #[test]
    fn outside_global_unicast_is_reserved() {
        let reserved = Some("a reserved IPv6 address (outside 2000::/3)");
        // Just below 2000::/3, just above it, and the neighbours of fc00::/7.
        assert_eq!(range("1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), reserved);
        assert_eq!(range("4000::"), reserved);
        assert_eq!(range("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), reserved);
        assert_eq!(range("fe00::"), reserved);
        assert_eq!(range("1::"), reserved);
        // The neighbours of the discard-only and local NAT64 blocks.
        assert_eq!(range("100:0:0:1::"), reserved);
        assert_eq!(range("64:ff9b:0:ffff:ffff:ffff:ffff:ffff"), reserved);
        assert_eq!(range("64:ff9b:2::"), reserved);
        assert_eq!(range("2000::"), None);
        assert_eq!(range("3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), None);
    }

    #[test]
    fn public_ipv6_addresses_pass() {
        for a in [
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450:4001::1",
        ] {
            assert_eq!(range(a), None, "{a}");
        }
    }

    #[test]
    fn ipv4_mapped_addresses_are_judged_by_their_ipv4() {
        assert_eq!(range("::ffff:127.0.0.1"), Some(LOOPBACK));
        assert_eq!(range("::ffff:7f00:1"), Some(LOOPBACK));
        assert_eq!(range("::ffff:169.254.169.254"), Some(LINK_LOCAL));
        assert_eq!(range("::ffff:10.0.0.1"), Some(PRIVATE));
        assert_eq!(range("::ffff:0.0.0.0"), Some(UNSPECIFIED));
        assert_eq!(
            range("::ffff:255.255.255.255"),
            Some("the broadcast address")
        );
        assert_eq!(range("::ffff:8.8.8.8"), None);
        // The neighbours of ::ffff:0:0/96 are not mapped addresses.
        assert_eq!(
            range("::fffe:7f00:1"),
            Some("a reserved IPv6 address (outside 2000::/3)")
        );
        assert_eq!(
            range("::1:ffff:7f00:1"),
            Some("a reserved IPv6 address (outside 2000::/3)")
        );
    }

    #[test]
    fn ipv4_compatible_addresses_are_judged_by_their_ipv4() {
        assert_eq!(range("::127.0.0.1"), Some(LOOPBACK));
        assert_eq!(range("::169.254.169.254"), Some(LINK_LOCAL));
        assert_eq!(range("::192.168.1.1"), Some(PRIVATE));
        assert_eq!(range("::0.0.0.2"), Some(UNSPECIFIED));
        assert_eq!(range("::8.8.8.8"), None);
        assert_eq!(range("::255.255.255.255"), Some("the broadcast address"));
    }

    #[test]
    fn nat64_addresses_are_judged_by_their_ipv4() {
        assert_eq!(range("64:ff9b::127.0.0.1"), Some(LOOPBACK));
        assert_eq!(range("64:ff9b::a9fe:a9fe"), Some(LINK_LOCAL));
        assert_eq!(range("64:ff9b::8.8.8.8"), None);
        assert_eq!(range("64:ff9b::"), Some(UNSPECIFIED));
        assert_eq!(range("64:ff9b::ffff:ffff"), Some("the broadcast address"));
        // Outside 64:ff9b::/96: reserved space, not NAT64.
        assert_eq!(
            range("64:ff9b:0:0:0:1::"),
            Some("a reserved IPv6 address (outside 2000::/3)")
        );
    }

    #[test]
    fn six_to_four_addresses_are_judged_by_their_ipv4() {
        assert_eq!(range("2002:7f00:1::"), Some(LOOPBACK));
        assert_eq!(range("2002:a9fe:a9fe::1"), Some(LINK_LOCAL));
        assert_eq!(range("2002:c0a8:101:1:2:3:4:5"), Some(PRIVATE));
        assert_eq!(range("2002:808:808::1"), None);
        assert_eq!(range("2002::"), Some(UNSPECIFIED));
        assert_eq!(
            range("2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            Some("the broadcast address")
        );
        // The neighbours of 2002::/16.
        assert_eq!(range("2001:ffff:7f00:1::"), None);
        assert_eq!(range("2003:7f00:1::"), None);
    }

    #[test]
    fn embedded_ipv4_of_each_spelling() {
        let v6 = |t: &str| match t.parse::<Ipv6Addr>() {
            Ok(a) => a,
            Err(e) => panic!("{t}: {e}"),
        };
        let v4 = Some(Ipv4Addr::new(192, 0, 2, 33));
        assert_eq!(embedded_ipv4(v6("::ffff:192.0.2.33")), v4);
        assert_eq!(embedded_ipv4(v6("::192.0.2.33")), v4);
        assert_eq!(embedded_ipv4(v6("64:ff9b::192.0.2.33")), v4);
        assert_eq!(embedded_ipv4(v6("2002:c000:221::")), v4);
        assert_eq!(embedded_ipv4(v6("::")), None);
        assert_eq!(embedded_ipv4(v6("::1")), None);
        assert_eq!(embedded_ipv4(v6("::2")), Some(Ipv4Addr::new(0, 0, 0, 2)));
        assert_eq!(embedded_ipv4(v6("2001:db8::192.0.2.33")), None);
    }
}
