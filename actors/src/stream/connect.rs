//! Resolving and connecting to a pull's source through the pull guard (SSRF protection).
//!
//! A numeric host in any spelling a resolver accepts (`2130706433`, `127.1`,
//! `::ffff:127.0.0.1`) is used as the address it spells, without DNS; any other name is
//! looked up once. Every address is checked with [`PullGuard::check`] before anything
//! connects, and the connection goes only to those checked addresses, in turn: there is no
//! second lookup a DNS server could answer differently (no rebinding).
//!
//! The error says whether the policy refused the target or the source could not be reached;
//! its sentence is for callers with the `api` permission — others get
//! [`pullcast::net::pull_guard::GENERIC_REFUSAL`] (see [`ConnectRefused::reason_for`]).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use pullcast::config::PullSettings;
use pullcast::net::host::numeric_host;
use pullcast::net::pull_guard::{PullGuard, GENERIC_REFUSAL};
use pullcast::rtmp::RtmpUrl;
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

/// Why a pull target was not connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRefused {
    /// The precise sentence: the policy's reason, or why the source was unreachable.
    pub detail: String,
    /// True when the pull guard refused the target (403 material); false when the name did
    /// not resolve or no address answered in time.
    pub by_policy: bool,
}

impl ConnectRefused {
    /// The sentence a caller may see: the detail for callers with the `api` permission
    /// (`detailed`), the same generic sentence for every failure otherwise.
    pub fn reason_for(&self, detailed: bool) -> &str {
        if detailed {
            &self.detail
        } else {
            GENERIC_REFUSAL
        }
    }

    fn unreachable(detail: String) -> Self {
        Self {
            detail,
            by_policy: false,
        }
    }
}

impl fmt::Display for ConnectRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

/// The guard the configuration's `[pull]` section describes, built once at start.
pub fn pull_guard(settings: &PullSettings) -> Result<Arc<PullGuard>, String> {
    PullGuard::new(&settings.allow, &settings.deny).map(Arc::new)
}

/// Resolves `host` (a numeric spelling without DNS) and checks every address; returns them
/// with `port`, all allowed, in resolver order.
pub async fn resolve_checked(
    host: &str,
    port: u16,
    guard: &PullGuard,
    may_pull_private: bool,
    deadline: Instant,
) -> Result<Vec<SocketAddr>, ConnectRefused> {
    let budget = deadline.saturating_duration_since(Instant::now());
    resolve_within(host, port, guard, may_pull_private, deadline, budget).await
}

/// Resolves and checks `host` (as [`resolve_checked`]), then connects to the checked
/// addresses in turn until one accepts, all within `limit`. Returns the connection and the
/// address it went to.
pub async fn connect_checked(
    host: &str,
    port: u16,
    guard: &PullGuard,
    may_pull_private: bool,
    limit: Duration,
) -> Result<(TcpStream, SocketAddr), ConnectRefused> {
    let deadline = Instant::now() + limit;
    let addrs = resolve_within(host, port, guard, may_pull_private, deadline, limit).await?;
    let mut last_error = String::new();
    for addr in addrs {
        match timeout_at(deadline, TcpStream::connect(addr)).await {
            Err(_) => {
                return Err(ConnectRefused::unreachable(format!(
                    "connection to {addr} timed out after {} ms",
                    limit.as_millis()
                )))
            }
            Ok(Ok(stream)) => return Ok((stream, addr)),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                last_error = format!("connection refused by {addr} (nothing listens there)");
            }
            Ok(Err(e)) => last_error = format!("cannot connect to {addr}: {e}"),
        }
    }
    Err(ConnectRefused::unreachable(last_error))
}

/// Resolves and checks the uri's host without connecting: what the HTTP layer asks before
/// it registers a pull, so a refused target is answered at once (403 when `by_policy`).
pub async fn precheck(
    url: &RtmpUrl,
    guard: &PullGuard,
    may_pull_private: bool,
    timeout: Duration,
) -> Result<(), ConnectRefused> {
    let deadline = Instant::now() + timeout;
    resolve_within(
        &url.host,
        url.port,
        guard,
        may_pull_private,
        deadline,
        timeout,
    )
    .await
    .map(|_| ())
}

/// [`resolve_checked`], with the budget the timeout message names.
async fn resolve_within(
    host: &str,
    port: u16,
    guard: &PullGuard,
    may_pull_private: bool,
    deadline: Instant,
    budget: Duration,
) -> Result<Vec<SocketAddr>, ConnectRefused> {
    let addrs: Vec<SocketAddr> = match numeric_host(host) {
        Some(ip) => vec![SocketAddr::new(ip, port)],
        None => match timeout_at(deadline, tokio::net::lookup_host((host, port))).await {
            Err(_) => {
                return Err(ConnectRefused::unreachable(format!(
                    "cannot resolve host '{host}': lookup timed out after {} ms",
                    budget.as_millis()
                )))
            }
            Ok(Err(e)) => {
                return Err(ConnectRefused::unreachable(format!(
                    "cannot resolve host '{host}': {e}"
                )))
            }
            Ok(Ok(addrs)) => addrs.collect(),
        },
    };
    if addrs.is_empty() {
        return Err(ConnectRefused::unreachable(format!(
            "cannot resolve host '{host}': no addresses"
        )));
    }
    let ips: Vec<IpAddr> = addrs.iter().map(SocketAddr::ip).collect();
    guard
        .check(host, &ips, may_pull_private)
        .map_err(|refusal| ConnectRefused {
            detail: refusal.detail,
            by_policy: true,
        })?;
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(allow: &[&str], deny: &[&str]) -> PullGuard {
        let s = |l: &[&str]| l.iter().map(|e| e.to_string()).collect::<Vec<_>>();
        match PullGuard::new(&s(allow), &s(deny)) {
            Ok(g) => g,
            Err(e) => panic!("{e}"),
        }
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    async fn refused(host: &str, g: &PullGuard, private: bool) -> ConnectRefused {
        match resolve_checked(host, 1935, g, private, soon()).await {
            Ok(addrs) => panic!("{host} resolved to {addrs:?} and was allowed"),
            Err(e) => e,
        }
    }

    #[tokio::test]
    async fn every_spelling_of_loopback_is_refused_without_dns() {
        let g = guard(&[], &[]);
        for host in [
            "127.0.0.1",
            "2130706433",
            "0x7f000001",
            "0177.0.0.1",
            "127.1",
            "127.0.1",
            "0x7f.1",
            "127.0.0.1.",
            "::1",
            "[::1]",
            "::ffff:127.0.0.1",
            "[::ffff:127.0.0.1]",
            "::127.0.0.1",
            "0:0:0:0:0:ffff:7f00:1",
        ] {
            let e = refused(host, &g, false).await;
            assert!(e.by_policy, "{host}: {e}");
            assert!(e.detail.contains("a loopback address"), "{host}: {e}");
            assert!(e.detail.contains("pull_private"), "{host}: {e}");
            assert_eq!(e.reason_for(false), GENERIC_REFUSAL);
            assert_eq!(e.reason_for(true), e.detail);
        }
        for host in [
            "169.254.169.254",
            "2852039166",
            "0xa9fea9fe",
            "[::ffff:a9fe:a9fe]",
        ] {
            let e = refused(host, &g, false).await;
            assert!(
                e.by_policy && e.detail.contains("link-local"),
                "{host}: {e}"
            );
        }
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused() {
        let g = guard(&[], &[]);
        let e = refused("localhost", &g, false).await;
        assert!(e.by_policy, "{e}");
        assert!(e.detail.starts_with("'localhost' resolves to "), "{e}");
        assert!(e.detail.contains("a loopback address"), "{e}");
        // With the permission the same name resolves, to loopback only, with the port.
        let addrs = match resolve_checked("localhost", 1935, &g, true, soon()).await {
            Ok(a) => a,
            Err(e) => panic!("{e}"),
        };
        assert!(!addrs.is_empty());
        assert!(
            addrs
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 1935),
            "{addrs:?}"
        );
    }

    #[tokio::test]
    async fn numeric_hosts_are_used_as_spelled() {
        let g = guard(&[], &[]);
        let got = resolve_checked("0x7f.1", 1936, &g, true, soon()).await;
        assert_eq!(
            got,
            Ok(vec!["127.0.0.1:1936"
                .parse()
                .unwrap_or_else(|e| panic!("{e}"))])
        );
        let got = resolve_checked("[::1]", 1937, &g, true, soon()).await;
        assert_eq!(
            got,
            Ok(vec!["[::1]:1937".parse().unwrap_or_else(|e| panic!("{e}"))])
        );
        // A public address needs no permission.
        let got = resolve_checked("134744072", 1935, &g, false, soon()).await;
        assert_eq!(
            got,
            Ok(vec!["8.8.8.8:1935"
                .parse()
                .unwrap_or_else(|e| panic!("{e}"))])
        );
    }

    #[tokio::test]
    async fn allow_and_deny_apply() {
        let g = guard(&["127.0.0.0/8"], &["127.0.0.2"]);
        assert!(resolve_checked("127.1", 1935, &g, false, soon())
            .await
            .is_ok());
        let e = refused("127.0.0.2", &g, true).await;
        assert!(e.by_policy && e.detail.contains("pull.deny"), "{e}");
        let g = guard(&["localhost"], &[]);
        assert!(resolve_checked("localhost", 1935, &g, false, soon())
            .await
            .is_ok());
        assert!(resolve_checked("LOCALHOST", 1935, &g, false, soon())
            .await
            .is_ok());
        let g = guard(&[], &["localhost"]);
        let e = refused("localhost", &g, true).await;
        assert!(
            e.by_policy && e.detail.contains("pull.deny entry 'localhost'"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn an_unresolvable_name_is_unreachable_not_policy() {
        let g = guard(&[], &[]);
        // .invalid never resolves (RFC 6761).
        let e = refused("no-such-host.invalid", &g, false).await;
        assert!(!e.by_policy, "{e}");
        assert!(
            e.detail
                .starts_with("cannot resolve host 'no-such-host.invalid'"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn connects_only_when_allowed() {
        let listener = match std::net::TcpListener::bind("127.0.0.1:0") {
            Ok(l) => l,
            Err(e) => panic!("{e}"),
        };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        if let Err(e) = listener.set_nonblocking(true) {
            panic!("{e}");
        }
        let g = guard(&[], &[]);
        let limit = Duration::from_secs(5);

        let refusal = match connect_checked("127.0.0.1", port, &g, false, limit).await {
            Ok((_, addr)) => panic!("connected to {addr}"),
            Err(e) => e,
        };
        assert!(refusal.by_policy, "{refusal}");
        // Nothing reached the listener: a connect would have completed on loopback before
        // connect_checked returned.
        match listener.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
            Ok((_, peer)) => panic!("a refused target was connected to from {peer}"),
        }

        let (stream, addr) = match connect_checked("2130706433", port, &g, true, limit).await {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(addr.to_string(), format!("127.0.0.1:{port}"));
        assert_eq!(stream.peer_addr().ok(), Some(addr));
        assert!(listener.accept().is_ok(), "the listener saw the connection");
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable_with_the_old_sentence() {
        let port = match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
            Ok(a) => a.port(),
            Err(e) => panic!("{e}"),
        };
        // The listener is closed again: nothing listens on the port.
        let g = guard(&[], &[]);
        let e = match connect_checked("127.0.0.1", port, &g, true, Duration::from_secs(5)).await {
            Ok((_, addr)) => panic!("connected to {addr}"),
            Err(e) => e,
        };
        assert!(!e.by_policy, "{e}");
        assert_eq!(
            e.detail,
            format!("connection refused by 127.0.0.1:{port} (nothing listens there)")
        );
        assert_eq!(e.reason_for(false), GENERIC_REFUSAL);
    }

    #[tokio::test]
    async fn precheck_resolves_and_checks_without_connecting() {
        let g = guard(&[], &[]);
        let url = match RtmpUrl::parse("rtmp://2130706433/live/s") {
            Ok(u) => u,
            Err(e) => panic!("{e}"),
        };
        let e = match precheck(&url, &g, false, Duration::from_secs(5)).await {
            Ok(()) => panic!("allowed"),
            Err(e) => e,
        };
        assert!(
            e.by_policy && e.detail.contains("'2130706433' is 127.0.0.1"),
            "{e}"
        );
        // Allowed: nothing listens on 127.0.0.1:1935 here, and precheck does not connect.
        assert_eq!(
            precheck(&url, &g, true, Duration::from_secs(5)).await,
            Ok(())
        );
        let url = match RtmpUrl::parse("rtmp://[::ffff:10.0.0.1]:1935/live/s") {
            Ok(u) => u,
            Err(e) => panic!("{e}"),
        };
        let e = precheck(&url, &g, false, Duration::from_secs(5))
            .await
            .err();
        assert!(e.is_some_and(|e| e.by_policy && e.detail.contains("RFC 1918")));
    }
}
