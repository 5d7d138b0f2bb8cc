//! Hiding the secrets a stream uri may carry — the query (`?key=…`, where RTMP services put
//! stream keys) and user information (`user:password@`) — from callers without the `api`
//! permission and from log lines.
//!
//! `redact_uri` works on one uri, `redact_text` on every uri inside a sentence (a failure
//! reason, a log line). Both work on characters, never split one, and return the input
//! unchanged (borrowed) when there is nothing to hide.

use std::borrow::Cow;

/// What a hidden value becomes.
pub const HIDDEN: &str = "***";

/// `uri` with its query values and user information replaced by `***`:
/// `rtmp://u:p@h/live/s?key=abc&x` → `rtmp://***@h/live/s?key=***&***`.
pub fn redact_uri(uri: &str) -> Cow<'_, str> {
    let (before_query, query) = match uri.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (uri, None),
    };
    let (before_query, fragment) = match (query, before_query.split_once('#')) {
        (None, Some((b, f))) => (b, Some(f)),
        _ => (before_query, None),
    };
    let userinfo = before_query.find("://").and_then(|scheme_end| {
        let authority_start = scheme_end + 3;
        let rest = before_query.get(authority_start..)?;
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let at = rest.get(..authority_end)?.rfind('@')?;
        Some((authority_start, authority_start + at))
    });
    if query.is_none() && fragment.is_none() && userinfo.is_none() {
        return Cow::Borrowed(uri);
    }
    let mut out = String::with_capacity(uri.len());
    match userinfo {
        Some((start, at)) => {
            out.push_str(before_query.get(..start).unwrap_or(""));
            out.push_str(HIDDEN);
            out.push_str(before_query.get(at..).unwrap_or(""));
        }
        None => out.push_str(before_query),
    }
    if let Some(query) = query {
        out.push('?');
        let (query, _fragment) = query.split_once('#').unwrap_or((query, ""));
        let parts: Vec<String> = query
            .split('&')
            .map(|part| match part.split_once('=') {
                Some((name, _)) => format!("{name}={HIDDEN}"),
                None if part.is_empty() => String::new(),
                None => HIDDEN.to_string(),
            })
            .collect();
        out.push_str(&parts.join("&"));
    } else if fragment.is_some() {
        out.push('#');
        out.push_str(HIDDEN);
    }
    Cow::Owned(out)
}

/// `text` with every uri in it (`scheme://…` up to a space, a quote, `<`, `>` or a
/// backtick) passed through [`redact_uri`].
pub fn redact_text(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(marker) = rest.find("://") {
        // The scheme: the letters, digits, '+', '-', '.' right before "://".
        let head = rest.get(..marker).unwrap_or("");
        let scheme_len: usize = head
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            .map(char::len_utf8)
            .sum();
        let start = marker - scheme_len;
        let tail = rest.get(start..).unwrap_or("");
        let end = tail
            .char_indices()
            .find(|(_, c)| c.is_whitespace() || matches!(c, '\'' | '"' | '<' | '>' | '`'))
            .map_or(tail.len(), |(i, _)| i);
        let uri = tail.get(..end).unwrap_or("");
        out.push_str(rest.get(..start).unwrap_or(""));
        let redacted = redact_uri(uri);
        changed |= matches!(redacted, Cow::Owned(_));
        out.push_str(&redacted);
        // `end` is at least 3 ("://" has no terminator), so the loop always moves on.
        rest = tail.get(end..).unwrap_or("");
    }
    out.push_str(rest);
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        for (uri, want) in [
            ("rtmp://h/live/s", "rtmp://h/live/s"),
            ("cam1", "cam1"),
            ("rtmp://h/live/s?key=abc", "rtmp://h/live/s?key=***"),
            (
                "rtmp://h/live/s?key=abc&x=1&flag",
                "rtmp://h/live/s?key=***&x=***&***",
            ),
            ("rtmp://h/live/s?", "rtmp://h/live/s?"),
            ("rtmp://user:pw@h:1935/live/s", "rtmp://***@h:1935/live/s"),
            ("rtmp://u:p@h/live/s?k=v", "rtmp://***@h/live/s?k=***"),
            ("rtmp://h/live/a@b", "rtmp://h/live/a@b"),
            ("rtmp://h/live/s#frag", "rtmp://h/live/s#***"),
            ("rtmp://h/直播/流?密钥=秘密", "rtmp://h/直播/流?密钥=***"),
            (
                "rtmp://h/live/s?key=Ёлка&café=1",
                "rtmp://h/live/s?key=***&café=***",
            ),
        ] {
            assert_eq!(redact_uri(uri), want, "{uri}");
        }
        assert!(matches!(redact_uri("rtmp://h/a/b"), Cow::Borrowed(_)));
    }

    #[test]
    fn text() {
        for (text, want) in [
            ("no uri here", "no uri here"),
            (
                "cannot pull 'rtmp://h/live/s?key=abc': refused",
                "cannot pull 'rtmp://h/live/s?key=***': refused",
            ),
            (
                "capture of rtmp://h/a/b?k=1 and rtmps://u:p@h/a/c?t=2 failed",
                "capture of rtmp://h/a/b?k=*** and rtmps://***@h/a/c?t=*** failed",
            ),
            (
                "直播 rtmp://h/直播/流?key=秘密 流",
                "直播 rtmp://h/直播/流?key=*** 流",
            ),
            ("odd :// marker ://x?y=1", "odd :// marker ://x?y=***"),
            ("rtmp://h/a/b", "rtmp://h/a/b"),
        ] {
            assert_eq!(redact_text(text), want, "{text}");
        }
        assert!(matches!(
            redact_text("rtmp://h/a/b is fine"),
            Cow::Borrowed(_)
        ));
        let long = format!("x{}", "://?a=1 ".repeat(2000));
        assert!(redact_text(&long).contains("://?a=***"));
    }
}
