//! Numeric host spellings: which host strings are an address rather than a DNS name, and
//! which address.
//!
//! A resolver reads more than dotted quads as IPv4 — `inet_aton` takes one to four parts,
//! each decimal, octal (leading `0`) or hex (`0x`), the last part filling the remaining
//! bytes: `2130706433`, `0x7f000001`, `0177.0.0.1`, `127.1` and `127.0.1` are all
//! 127.0.0.1. [`numeric_host`] reads them the same way, so the server uses the address
//! itself instead of asking DNS about a name that is not one. IPv6 literals may be bracketed
//! and carry a zone id (`fe80::1%eth0`, `%25` as in a URL); the zone is dropped (a
//! link-local address is refused without permission anyway). A trailing dot is accepted.
//!
//! Anything else is a DNS name: `None`. Never panics, whatever the input (every part is
//! bounded before it is added up).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The address `host` spells, or `None` when it is a DNS name.
pub fn numeric_host(host: &str) -> Option<IpAddr> {
    let unbracketed = match host.strip_prefix('[') {
        Some(inner) => return inner.strip_suffix(']').and_then(ipv6).map(IpAddr::V6),
        None => host,
    };
    if unbracketed.contains(':') {
        return ipv6(unbracketed).map(IpAddr::V6);
    }
    let without_dot = unbracketed.strip_suffix('.').unwrap_or(unbracketed);
    ipv4(without_dot).map(IpAddr::V4)
}

/// An IPv6 literal, optionally with a zone id (dropped).
fn ipv6(text: &str) -> Option<Ipv6Addr> {
    let (address, zone) = match text.split_once('%') {
        Some((address, zone)) => (address, Some(zone)),
        None => (text, None),
    };
    if let Some(zone) = zone {
        // RFC 6874 writes the '%' of a zone as "%25" inside a URL.
        let zone = zone
            .strip_prefix("25")
            .filter(|z| !z.is_empty())
            .unwrap_or(zone);
        let valid = !zone.is_empty()
            && zone
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !valid {
            return None;
        }
    }
    address.parse().ok()
}

/// `inet_aton`'s reading: one to four parts separated by dots.
fn ipv4(text: &str) -> Option<Ipv4Addr> {
    if text.is_empty() || text.len() > 64 {
        return None;
    }
    let mut parts = [0u32; 4];
    let mut count = 0;
    for piece in text.split('.') {
        let slot = parts.get_mut(count)?;
        *slot = part(piece)?;
        count += 1;
    }
    let [a, b, c, d] = parts;
    let value = match count {
        1 => a,
        2 if a <= 0xff && b <= 0xff_ffff => a << 24 | b,
        3 if a <= 0xff && b <= 0xff && c <= 0xffff => a << 24 | b << 16 | c,
        4 if a <= 0xff && b <= 0xff && c <= 0xff && d <= 0xff => a << 24 | b << 16 | c << 8 | d,
        _ => return None,
    };
    Some(Ipv4Addr::from(value))
}

/// One part: decimal, octal after a leading `0`, hex after `0x` (at least one hex digit, as
/// glibc 2.36 wants). Values past 32 bits are refused.
fn part(piece: &str) -> Option<u32> {
    let (digits, radix) = if let Some(hex) = piece
        .strip_prefix("0x")
        .or_else(|| piece.strip_prefix("0X"))
    {
        (hex, 16)
    } else if piece.len() > 1 && piece.starts_with('0') {
        (piece.get(1..)?, 8)
    } else {
        (piece, 10)
    };
    if digits.is_empty() || !digits.bytes().all(|b| (b as char).is_digit(radix)) {
        return None;
    }
    // from_str_radix refuses overflow; leading zeros are harmless ("0x0000007f").
    u32::from_str_radix(digits, radix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
    }

    #[test]
    fn every_spelling_of_loopback() {
        for spelling in [
            "127.0.0.1",
            "127.0.0.1.",
            "2130706433",
            "2130706433.",
            "0x7f000001",
            "0X7F000001",
            "0x7F000001",
            "0x0000007f000001",
            "017700000001",
            "0177.0.0.1",
            "0177.0.0.01",
            "0x7f.0.0.1",
            "0x7f.0x0.0x0.0x1",
            "0177.0x0.0.1",
            "127.1",
            "127.0.1",
            "0x7f.1",
            "0177.1",
            "127.0x1",
            "127.0.0x1",
            "127.00.000.0001",
            "[::ffff:127.0.0.1]",
            "::ffff:127.0.0.1",
            "[::ffff:7f00:1]",
            "[::127.0.0.1]",
            "::127.0.0.1",
            "[0:0:0:0:0:ffff:127.0.0.1]",
        ] {
            let got = numeric_host(spelling);
            let Some(ip) = got else {
                panic!("{spelling}: not read as an address");
            };
            let as_v4 = match ip {
                IpAddr::V4(a) => a,
                IpAddr::V6(a) => match crate::net::address::embedded_ipv4(a) {
                    Some(a) => a,
                    None => panic!("{spelling}: {a} carries no IPv4"),
                },
            };
            assert_eq!(as_v4, Ipv4Addr::LOCALHOST, "{spelling}");
        }
    }

    #[test]
    fn every_spelling_of_cloud_metadata() {
        for spelling in [
            "169.254.169.254",
            "169.254.169.254.",
            "2852039166",
            "0xa9fea9fe",
            "0xA9FEA9FE",
            "025177524776",
            "0251.0376.0251.0376",
            "0xa9.0xfe.0xa9.0xfe",
            "169.16689662",
            "169.254.43518",
            "0251.0xfe.43518",
            "0xa9.0376.0xa9fe",
        ] {
            assert_eq!(numeric_host(spelling), v4(169, 254, 169, 254), "{spelling}");
        }
        for spelling in [
            "[::ffff:169.254.169.254]",
            "::ffff:a9fe:a9fe",
            "[::169.254.169.254]",
        ] {
            let Some(IpAddr::V6(a)) = numeric_host(spelling) else {
                panic!("{spelling}: not read as IPv6");
            };
            assert_eq!(
                crate::net::address::embedded_ipv4(a),
                Some(Ipv4Addr::new(169, 254, 169, 254)),
                "{spelling}"
            );
        }
    }

    #[test]
    fn ipv6_literals_brackets_and_zones() {
        let loopback = Some(IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(numeric_host("::1"), loopback);
        assert_eq!(numeric_host("[::1]"), loopback);
        assert_eq!(numeric_host("0:0:0:0:0:0:0:1"), loopback);
        let fe80 = "fe80::1".parse::<IpAddr>().ok();
        assert_eq!(numeric_host("fe80::1%eth0"), fe80);
        assert_eq!(numeric_host("[fe80::1%eth0]"), fe80);
        assert_eq!(numeric_host("[fe80::1%25eth0]"), fe80);
        assert_eq!(numeric_host("fe80::1%25"), fe80, "zone named 25");
        assert_eq!(numeric_host("fe80::1%"), None);
        assert_eq!(numeric_host("fe80::1%eth 0"), None);
        assert_eq!(numeric_host("[::1"), None);
        assert_eq!(numeric_host("::1]"), None);
        assert_eq!(numeric_host("[::1]:1935"), None);
        assert_eq!(numeric_host("[127.0.0.1]"), None);
        assert_eq!(numeric_host("::1."), None);
        assert_eq!(numeric_host(":::1"), None);
    }

    #[test]
    fn boundaries_of_each_short_form() {
        assert_eq!(numeric_host("4294967295"), v4(255, 255, 255, 255));
        assert_eq!(numeric_host("0xffffffff"), v4(255, 255, 255, 255));
        assert_eq!(numeric_host("037777777777"), v4(255, 255, 255, 255));
        assert_eq!(numeric_host("4294967296"), None);
        assert_eq!(numeric_host("0x100000000"), None);
        assert_eq!(numeric_host("040000000000"), None);
        assert_eq!(numeric_host("1.16777215"), v4(1, 255, 255, 255));
        assert_eq!(numeric_host("1.16777216"), None);
        assert_eq!(numeric_host("256.1"), None);
        assert_eq!(numeric_host("1.2.65535"), v4(1, 2, 255, 255));
        assert_eq!(numeric_host("1.2.65536"), None);
        assert_eq!(numeric_host("1.256.1"), None);
        assert_eq!(numeric_host("255.255.255.255"), v4(255, 255, 255, 255));
        assert_eq!(numeric_host("1.2.3.256"), None);
        assert_eq!(numeric_host("0"), v4(0, 0, 0, 0));
        assert_eq!(numeric_host("00"), v4(0, 0, 0, 0));
        assert_eq!(numeric_host("0x0"), v4(0, 0, 0, 0));
    }

    #[test]
    fn names_and_malformed_numbers_are_not_addresses() {
        for name in [
            "",
            ".",
            "localhost",
            "example.com",
            "1.2.3.4.5",
            "1.2.3.4..",
            "1..2",
            ".1.2.3",
            "08.0.0.1",
            "0189",
            "0x",
            "0x.",
            "0x.0.0.1",
            "0x.1",
            "1.0x",
            "0xg",
            "1e3",
            "+1",
            "-1",
            " 127.0.0.1",
            "127.0.0.1 ",
            "127.0.0.1\0",
            "127.0.0.1x",
            "127.0.0.1.com",
            "1.2.3.4/8",
            "١٢٧.0.0.1",
            "１２７.0.0.1",
            "直播",
            "99999999999999999999999999999999999999999999999999999999",
            "0x99999999999999999999999999999999999999999999999999999999",
            "0777777777777777777777777777777777777777777777777777777777777",
            "1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1",
        ] {
            assert_eq!(numeric_host(name), None, "{name:?}");
        }
    }

    #[test]
    fn never_panics_on_any_short_input() {
        // Every string of up to four characters from an alphabet that reaches each branch.
        let alphabet = [
            '0', '1', '7', '8', '9', 'x', 'X', 'f', '.', ':', '[', ']', '%', 'é',
        ];
        let mut buf = String::new();
        let mut seen = 0usize;
        fn walk(buf: &mut String, depth: usize, alphabet: &[char], seen: &mut usize) {
            let _ = numeric_host(buf);
            *seen += 1;
            if depth == 0 {
                return;
            }
            for &c in alphabet {
                buf.push(c);
                walk(buf, depth - 1, alphabet, seen);
                buf.pop();
            }
        }
        walk(&mut buf, 4, &alphabet, &mut seen);
        assert_eq!(seen, 1 + 14 + 14 * 14 + 14 * 14 * 14 + 14 * 14 * 14 * 14);
    }
}
