//! The pull-target policy (SSRF guard): may the server pull from this host, which resolved
//! to these addresses?
//!
//! - `pull.deny` always wins: a host matching a deny pattern, or any resolved address in a
//!   deny range, is refused — whatever the caller's permissions and `pull.allow` say.
//! - Otherwise every resolved address must be public (see [`super::address`]), unless the
//!   caller has the `pull_private` permission, or the host matches an allow pattern, or the
//!   address is in an allow range.
//! - No address at all is refused too.
//!
//! Entries are CIDR ranges (`10.0.0.0/8`, `fd00::/8`, a bare address) or host patterns
//! (`cams.example.com`, `*.example.com`, `cam-?.local`): `*` is any run of characters, dots
//! included, `?` one character; case-insensitive; a trailing dot is ignored on both sides.
//! Ranges are also matched against the IPv4 address an IPv6 address carries (mapped,
//! compatible, NAT64, 6to4), so `deny = ["10.0.0.0/8"]` also stops `64:ff9b::a00:1`.
//!
//! Pure: the caller resolves and connects only to the addresses it checked here (no second
//! lookup, so no DNS rebinding). A refusal's [`Refusal::detail`] is for callers who may see
//! why (the `api` permission); everyone else gets [`GENERIC_REFUSAL`], the same text as for
//! an unreachable or silent source, so the server cannot be used as a port scanner.

use crate::access::StreamPattern;
use std::fmt;
use std::net::IpAddr;

use super::address::{embedded_ipv4, special_range};
use super::cidr::Cidr;
use super::host::numeric_host;

/// What a caller without the `api` permission is told for any pull that failed before
/// media arrived: refused by policy, unresolvable, refused connection, timeout alike.
pub const GENERIC_REFUSAL: &str = "the source could not be pulled";

/// Why a pull target was refused, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub detail: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

/// The checked form of `pull.allow` and `pull.deny`.
#[derive(Debug, Clone, Default)]
pub struct PullGuard {
    allow: Rules,
    deny: Rules,
}

/// One list: its ranges and its host patterns.
#[derive(Debug, Clone, Default)]
struct Rules {
    ranges: Vec<Cidr>,
    /// Lower-case, without a trailing dot.
    patterns: Vec<String>,
}

impl PullGuard {
    /// Reads the `pull.allow` and `pull.deny` entries; an entry that is neither a CIDR range
    /// nor a host pattern is an error naming the list and the entry.
    pub fn new(allow: &[String], deny: &[String]) -> Result<PullGuard, String> {
        Ok(PullGuard {
            allow: Rules::parse("pull.allow", allow)?,
            deny: Rules::parse("pull.deny", deny)?,
        })
    }

    /// May the server pull from `host` (as written in the uri), which resolved to
    /// `resolved`? `may_pull_private` is the caller's `pull_private` permission.
    pub fn check(
        &self,
        host: &str,
        resolved: &[IpAddr],
        may_pull_private: bool,
    ) -> Result<(), Refusal> {
        let name = normalise(host);
        if let Some(pattern) = self.deny.matching_pattern(&name) {
            return Err(Refusal {
                detail: format!("'{host}' is refused by the pull.deny entry '{pattern}'"),
            });
        }
        if resolved.is_empty() {
            return Err(Refusal {
                detail: format!("'{host}' resolves to no address"),
            });
        }
        let literal = numeric_host(host);
        let describe = |ip: IpAddr| match literal {
            Some(l) if host == l.to_string() => format!("{ip} is"),
            Some(_) => format!("'{host}' is {ip},"),
            None => format!("'{host}' resolves to {ip},"),
        };
        for &ip in resolved {
            if let Some(range) = self.deny.matching_range(ip) {
                return Err(Refusal {
                    detail: format!(
                        "{} in the pull.deny range {range}",
                        describe(ip).trim_end_matches(',')
                    ),
                });
            }
        }
        if may_pull_private || self.allow.matching_pattern(&name).is_some() {
            return Ok(());
        }
        for &ip in resolved {
            if let Some(what) = special_range(ip) {
                if self.allow.matching_range(ip).is_none() {
                    return Err(Refusal {
                        detail: format!(
                            "{} {what}; pulling private or reserved addresses needs the pull_private permission or a pull.allow entry",
                            describe(ip)
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

impl Rules {
    fn parse(list: &str, entries: &[String]) -> Result<Rules, String> {
        let mut rules = Rules::default();
        for entry in entries {
            let text = entry.trim();
            if text.contains('/') || text.contains(':') {
                let range = Cidr::parse(text).map_err(|e| format!("{list}: {e}"))?;
                rules.ranges.push(range);
            } else if let Ok(range) = Cidr::parse(text) {
                rules.ranges.push(range);
            } else if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                return Err(format!(
                    "{list}: {entry:?} is not an IPv4 address (write four decimal parts, e.g. 192.0.2.1, or a range such as 192.0.2.0/24)"
                ));
            } else if is_pattern(text) {
                rules.patterns.push(normalise(text));
            } else {
                return Err(format!(
                    "{list}: {entry:?} is neither a CIDR range (10.0.0.0/8, fd00::/8, 192.0.2.1) nor a host pattern (cams.example.com, *.example.com, cam-?.local)"
                ));
            }
        }
        Ok(rules)
    }

    fn matching_pattern(&self, name: &str) -> Option<&str> {
        self.patterns
            .iter()
            .find(|p| glob_matches(p, name))
            .map(String::as_str)
    }

    /// The first range holding `ip`, or the IPv4 address it carries.
    fn matching_range(&self, ip: IpAddr) -> Option<Cidr> {
        let carried = match ip {
            IpAddr::V6(v6) => embedded_ipv4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.ranges
            .iter()
            .find(|r| r.contains(ip) || carried.is_some_and(|c| r.contains(c)))
            .copied()
    }
}

/// A host pattern: host-name characters plus `*` and `?`, with at least one character that
/// is not a wildcard or a dot — or `*` alone (every host).
fn is_pattern(text: &str) -> bool {
    let valid = text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'*' | b'?'));
    let names_something = text
        .bytes()
        .any(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'?'));
    valid && (names_something || text == "*")
}

/// Lower case, one trailing dot removed.
fn normalise(host: &str) -> String {
    let host = host.trim();
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

/// `*` matches any run of characters (none included), `?` exactly one; everything else
/// itself: the globs of stream patterns (`access::StreamPattern`, by characters, at most
/// pattern × name steps). An empty pattern matches only the empty name.
fn glob_matches(pattern: &str, name: &str) -> bool {
    if pattern.is_empty() {
        return name.is_empty();
    }
    StreamPattern::parse(pattern).is_ok_and(|glob| glob.matches(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn guard(allow: &[&str], deny: &[&str]) -> PullGuard {
        match PullGuard::new(&strings(allow), &strings(deny)) {
            Ok(g) => g,
            Err(e) => panic!("{e}"),
        }
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter()
            .map(|s| match s.parse() {
                Ok(a) => a,
                Err(e) => panic!("{s}: {e}"),
            })
            .collect()
    }

    fn refusal(g: &PullGuard, host: &str, resolved: &[&str], private: bool) -> String {
        match g.check(host, &ips(resolved), private) {
            Ok(()) => panic!("{host} -> {resolved:?} was allowed"),
            Err(r) => r.detail,
        }
    }

    fn allowed(g: &PullGuard, host: &str, resolved: &[&str], private: bool) -> bool {
        g.check(host, &ips(resolved), private).is_ok()
    }

    #[test]
    fn public_addresses_pass_with_the_defaults() {
        let g = guard(&[], &[]);
        assert!(allowed(&g, "example.com", &["93.184.216.34"], false));
        assert!(allowed(
            &g,
            "example.com",
            &["93.184.216.34", "2606:2800:220:1::"],
            false
        ));
        assert!(allowed(&g, "8.8.8.8", &["8.8.8.8"], false));
        assert!(allowed(&g, "::ffff:8.8.8.8", &["::ffff:8.8.8.8"], false));
    }

    #[test]
    fn private_addresses_are_refused_with_the_reason() {
        let g = guard(&[], &[]);
        assert_eq!(
            refusal(&g, "localhost", &["127.0.0.1"], false),
            "'localhost' resolves to 127.0.0.1, a loopback address; pulling private or \
             reserved addresses needs the pull_private permission or a pull.allow entry"
        );
        assert_eq!(
            refusal(&g, "127.0.0.1", &["127.0.0.1"], false),
            "127.0.0.1 is a loopback address; pulling private or reserved addresses needs \
             the pull_private permission or a pull.allow entry"
        );
        let d = refusal(&g, "2130706433", &["127.0.0.1"], false);
        assert!(
            d.starts_with("'2130706433' is 127.0.0.1, a loopback address;"),
            "{d}"
        );
        let d = refusal(&g, "169.254.169.254", &["169.254.169.254"], false);
        assert!(
            d.starts_with("169.254.169.254 is a link-local address;"),
            "{d}"
        );
        for (host, ip, what) in [
            ("10.1.2.3", "10.1.2.3", "a private address (RFC 1918)"),
            ("172.16.0.1", "172.16.0.1", "a private address (RFC 1918)"),
            ("192.168.1.1", "192.168.1.1", "a private address (RFC 1918)"),
            ("100.64.0.1", "100.64.0.1", "a carrier-grade NAT address"),
            ("0.0.0.0", "0.0.0.0", "an unspecified address"),
            ("224.0.0.1", "224.0.0.1", "a multicast address"),
            ("::1", "::1", "a loopback address"),
            ("fd00::1", "fd00::1", "a unique local address"),
            ("fe80::1", "fe80::1", "a link-local address"),
            ("::", "::", "an unspecified address"),
            ("ff02::1", "ff02::1", "a multicast address"),
        ] {
            let d = refusal(&g, host, &[ip], false);
            assert!(d.contains(what), "{host}: {d}");
        }
    }

    #[test]
    fn ipv4_in_ipv6_spellings_are_refused() {
        let g = guard(&[], &[]);
        for spelling in [
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
        ] {
            let d = refusal(&g, spelling, &[spelling], false);
            assert!(d.contains("a loopback address"), "{spelling}: {d}");
        }
        for spelling in ["::ffff:169.254.169.254", "::ffff:a9fe:a9fe"] {
            let d = refusal(&g, spelling, &[spelling], false);
            assert!(d.contains("a link-local address"), "{spelling}: {d}");
        }
        // Written differently from how Ipv6Addr displays it: the host is quoted.
        let d = refusal(&g, "0:0:0:0:0:ffff:7f00:1", &["::ffff:127.0.0.1"], false);
        assert!(
            d.starts_with("'0:0:0:0:0:ffff:7f00:1' is ::ffff:127.0.0.1,"),
            "{d}"
        );
    }

    #[test]
    fn one_private_address_among_public_ones_refuses() {
        let g = guard(&[], &[]);
        let d = refusal(&g, "mixed.example", &["93.184.216.34", "10.0.0.1"], false);
        assert!(d.contains("10.0.0.1, a private address"), "{d}");
        let d = refusal(&g, "mixed.example", &["::1", "93.184.216.34"], false);
        assert!(d.contains("::1, a loopback address"), "{d}");
    }

    #[test]
    fn no_address_is_refused() {
        let d = refusal(&guard(&[], &[]), "nothing.example", &[], true);
        assert_eq!(d, "'nothing.example' resolves to no address");
        let d = refusal(&guard(&["*"], &[]), "nothing.example", &[], true);
        assert_eq!(d, "'nothing.example' resolves to no address");
    }

    #[test]
    fn pull_private_allows_private_addresses() {
        let g = guard(&[], &[]);
        assert!(allowed(&g, "localhost", &["127.0.0.1"], true));
        assert!(allowed(
            &g,
            "mixed.example",
            &["10.0.0.1", "8.8.8.8", "::1"],
            true
        ));
    }

    #[test]
    fn allow_ranges_allow_only_what_they_hold() {
        let g = guard(&["10.0.0.0/8", "fd00::/8", "127.0.0.1"], &[]);
        assert!(allowed(&g, "cam.lan", &["10.9.8.7"], false));
        assert!(allowed(&g, "cam.lan", &["10.9.8.7", "8.8.8.8"], false));
        assert!(allowed(&g, "cam.lan", &["fd12::1"], false));
        assert!(allowed(&g, "127.0.0.1", &["127.0.0.1"], false));
        assert!(allowed(&g, "::ffff:10.1.1.1", &["::ffff:10.1.1.1"], false));
        assert!(allowed(&g, "nat64", &["64:ff9b::a01:101"], false));
        let d = refusal(&g, "127.0.0.2", &["127.0.0.2"], false);
        assert!(d.contains("loopback"), "{d}");
        let d = refusal(&g, "cam.lan", &["10.9.8.7", "192.168.0.1"], false);
        assert!(d.contains("192.168.0.1, a private address"), "{d}");
        let d = refusal(&g, "fc00::1", &["fc00::1"], false);
        assert!(d.contains("unique local"), "{d}");
    }

    #[test]
    fn allow_patterns_allow_the_host_whatever_it_resolves_to() {
        let g = guard(&["*.studio.example", "cam-?.local", "Encoder.LAN."], &[]);
        assert!(allowed(&g, "a.studio.example", &["10.0.0.5"], false));
        assert!(allowed(&g, "a.b.studio.example", &["192.168.0.5"], false));
        assert!(allowed(&g, "A.STUDIO.EXAMPLE.", &["127.0.0.1"], false));
        assert!(allowed(&g, "cam-1.local", &["169.254.1.1"], false));
        assert!(allowed(&g, "encoder.lan", &["10.0.0.9", "fd00::9"], false));
        assert!(allowed(&g, "encoder.lan.", &["10.0.0.9"], false));
        refusal(&g, "studio.example", &["10.0.0.5"], false);
        refusal(&g, "cam-12.local", &["10.0.0.5"], false);
        refusal(&g, "cam-.local", &["10.0.0.5"], false);
        refusal(&g, "xencoder.lan", &["10.0.0.5"], false);
        refusal(&g, "a.studio.example.evil", &["10.0.0.5"], false);
    }

    #[test]
    fn deny_beats_allow_and_pull_private() {
        let g = guard(
            &["10.0.0.0/8", "*.example.com", "*"],
            &["10.0.0.0/24", "bad.example.com", "*.internal", "8.8.8.8"],
        );
        let d = refusal(&g, "cam.example.com", &["10.0.0.7"], true);
        assert_eq!(
            d,
            "'cam.example.com' resolves to 10.0.0.7 in the pull.deny range 10.0.0.0/24"
        );
        let d = refusal(&g, "10.0.0.7", &["10.0.0.7"], true);
        assert_eq!(d, "10.0.0.7 is in the pull.deny range 10.0.0.0/24");
        let d = refusal(&g, "BAD.example.com.", &["93.184.216.34"], true);
        assert_eq!(
            d,
            "'BAD.example.com.' is refused by the pull.deny entry 'bad.example.com'"
        );
        let d = refusal(&g, "db.internal", &["93.184.216.34"], true);
        assert!(d.contains("'*.internal'"), "{d}");
        // A public address in a deny range, and one of several addresses.
        refusal(&g, "dns.example", &["8.8.8.8"], false);
        refusal(&g, "mixed.example", &["1.1.1.1", "8.8.8.8"], true);
        // The same addresses in IPv6 spellings.
        for spelling in [
            "::ffff:10.0.0.7",
            "::10.0.0.7",
            "64:ff9b::a00:7",
            "2002:a00:7::1",
        ] {
            let d = refusal(&g, spelling, &[spelling], true);
            assert!(d.contains("pull.deny range 10.0.0.0/24"), "{spelling}: {d}");
        }
        // Outside the deny list, allow and pull_private apply again.
        assert!(allowed(&g, "cam.example.com", &["10.0.1.7"], false));
        assert!(allowed(&g, "other", &["10.0.1.7"], true));
    }

    #[test]
    fn deny_ranges_in_ipv6() {
        let g = guard(&[], &["2001:db8:1::/48", "::ffff:0:0/96"]);
        let d = refusal(&g, "v6.example", &["2001:db8:1::5"], true);
        assert!(d.contains("pull.deny range 2001:db8:1::/48"), "{d}");
        // An IPv6 range of mapped addresses holds the plain IPv4 addresses too.
        let d = refusal(&g, "v4.example", &["93.184.216.34"], true);
        assert!(d.contains("pull.deny range ::ffff:0.0.0.0/96"), "{d}");
    }

    #[test]
    fn bad_entries_are_refused_with_the_list_named() {
        for (allow, deny, needle) in [
            (
                vec!["10.0.0.1/8"],
                vec![],
                "pull.allow: \"10.0.0.1/8\" has bits set",
            ),
            (vec![], vec!["10.0.0.0/33"], "pull.deny:"),
            (vec![], vec!["fe80::1%eth0"], "pull.deny:"),
            (vec!["127.1"], vec![], "is not an IPv4 address"),
            (vec!["256.0.0.1"], vec![], "is not an IPv4 address"),
            (vec!["http://x"], vec![], "pull.allow:"),
            (vec!["a b"], vec![], "neither a CIDR range"),
            (vec![""], vec![], "neither a CIDR range"),
            (vec!["..."], vec![], "is not an IPv4 address"),
            (vec!["*.*"], vec![], "neither a CIDR range"),
            (vec!["直播.example"], vec![], "neither a CIDR range"),
        ] {
            match PullGuard::new(&strings(&allow), &strings(&deny)) {
                Ok(_) => panic!("{allow:?} {deny:?} accepted"),
                Err(e) => assert!(e.contains(needle), "{allow:?} {deny:?}: {e}"),
            }
        }
    }

    #[test]
    fn glob_matching() {
        for (pattern, name, expected) in [
            ("*", "", true),
            ("*", "anything.at.all", true),
            ("*.example.com", "a.example.com", true),
            ("*.example.com", "example.com", false),
            ("*.example.com", "a.example.co", false),
            ("cam-?.local", "cam-1.local", true),
            ("cam-?.local", "cam-.local", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("a**", "a", true),
            ("?", "", false),
            ("", "", true),
            ("", "a", false),
            ("*a", "aaaa", true),
            ("*ab", "aaaaab", true),
            ("*ab", "aaaaba", false),
        ] {
            assert_eq!(glob_matches(pattern, name), expected, "{pattern} ~ {name}");
        }
        // Worst case stays quick: pattern × name steps, not exponential.
        let name = "a".repeat(2000);
        let pattern = format!("{}b", "*a".repeat(50));
        assert!(!glob_matches(&pattern, &name));
    }

    #[test]
    fn generic_refusal_says_nothing_specific() {
        assert_eq!(GENERIC_REFUSAL, "the source could not be pulled");
        let r = Refusal {
            detail: "x".to_string(),
        };
        assert_eq!(r.to_string(), "x");
    }
}
