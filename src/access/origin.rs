//! Which web pages may open the WebSocket signalling (browsers send `Origin` on the upgrade;
//! a WebSocket is not covered by CORS, so without this check any page a user visits could
//! play streams with the user's network position).
//!
//! Allowed: no `Origin` at all (not a browser), the same origin as the request's `Host`, or
//! an origin listed in `http.allowed_origins` (`"*"` for any).

/// Whether an upgrade whose `Origin` header is `origin` and `Host` header is `host` may
/// proceed, given `http.allowed_origins`.
pub fn origin_allowed(origin: Option<&str>, host: Option<&str>, allowed: &[String]) -> bool {
    let Some(origin) = origin.map(str::trim) else {
        return true;
    };
    if allowed.iter().any(|a| a.trim() == "*") {
        return true;
    }
    let Some((scheme, authority)) = split_origin(origin) else {
        return false;
    };
    if allowed.iter().any(|a| {
        split_origin(a.trim().trim_end_matches('/'))
            .is_some_and(|(s, h)| s == scheme && h == authority)
    }) {
        return true;
    }
    host.is_some_and(|host| normalize_authority(&scheme, host) == authority)
}

/// `("https", "example.com")` from `https://Example.com:443`: lower case, default port
/// dropped; `None` for anything that is not `http(s)://authority`.
fn split_origin(origin: &str) -> Option<(String, String)> {
    let (scheme, authority) = origin.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if !(scheme == "http" || scheme == "https") || authority.is_empty() || authority.contains('/') {
        return None;
    }
    let authority = normalize_authority(&scheme, authority);
    Some((scheme, authority))
}

fn normalize_authority(scheme: &str, authority: &str) -> String {
    let lower = authority.trim().to_ascii_lowercase();
    let default_port = if scheme == "https" { ":443" } else { ":80" };
    match lower.strip_suffix(default_port) {
        Some(stripped) => stripped.to_string(),
        None => lower,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn table() {
        let none = list(&[]);
        let app = list(&["https://app.example/"]);
        let any = list(&["*"]);
        for (origin, host, allowed, want) in [
            (None, Some("h:8080"), &none, true),
            (None, None, &none, true),
            (Some("http://h:8080"), Some("h:8080"), &none, true),
            (Some("http://H:8080"), Some("h:8080"), &none, true),
            (Some("http://h"), Some("h:80"), &none, true),
            (Some("https://h:443"), Some("h"), &none, true),
            (
                Some("http://127.0.0.1:8080"),
                Some("127.0.0.1:8080"),
                &none,
                true,
            ),
            (Some("http://[::1]:8080"), Some("[::1]:8080"), &none, true),
            (Some("http://evil.example"), Some("h:8080"), &none, false),
            (Some("http://h:8081"), Some("h:8080"), &none, false),
            (Some("null"), Some("h:8080"), &none, false),
            (Some("http://h:8080"), None, &none, false),
            (Some("https://app.example"), Some("h:8080"), &app, true),
            (Some("http://app.example"), Some("h:8080"), &app, false),
            (Some("https://evil.example"), Some("h:8080"), &app, false),
            (Some("https://evil.example"), Some("h:8080"), &any, true),
            (Some("https://直播.example"), Some("h"), &none, false),
            (Some("ftp://h"), Some("h"), &none, false),
        ] {
            assert_eq!(
                origin_allowed(origin, host, allowed),
                want,
                "{origin:?} {host:?} {allowed:?}"
            );
        }
    }
}
