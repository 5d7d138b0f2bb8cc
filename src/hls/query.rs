//! A playlist request's query: the LL-HLS delivery directives (`_HLS_msn`, `_HLS_part`,
//! `_HLS_skip`, RFC 8216bis §6.2.5) and the rest, which is carried into every URI of the
//! playlist so that a token given on the playlist reaches the parts too.
//!
//! Pure parsing; a malformed directive is an error the server answers with 400. It must not
//! decide anything about the stream.

/// The delivery directives of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    /// `_HLS_msn`: wait until this segment (or its part) is in the playlist.
    pub msn: Option<u64>,
    /// `_HLS_part`: the part of `msn` to wait for.
    pub part: Option<u64>,
    /// `_HLS_skip=YES` (or `v2`): a delta update is wanted.
    pub skip: bool,
    /// The other parameters, ready to append to a URI (`?a=b&c=d`, or empty).
    pub passthrough: String,
}

/// Parses a raw query string (without the `?`).
pub fn parse(raw: &str) -> Result<Directives, String> {
    let mut d = Directives::default();
    let mut kept: Vec<String> = Vec::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "_HLS_msn" => d.msn = Some(number(key, value)?),
            "_HLS_part" => d.part = Some(number(key, value)?),
            "_HLS_skip" => match value {
                "YES" | "v2" => d.skip = true,
                other => {
                    return Err(format!(
                        "_HLS_skip must be YES or v2, not '{}'",
                        short(other)
                    ))
                }
            },
            _ if key.starts_with("_HLS_") => {
                return Err(format!("unknown delivery directive '{}'", short(key)))
            }
            _ => kept.push(uri_safe(pair)),
        }
    }
    if d.part.is_some() && d.msn.is_none() {
        return Err("_HLS_part needs _HLS_msn".to_string());
    }
    if !kept.is_empty() {
        d.passthrough = format!("?{}", kept.join("&"));
    }
    Ok(d)
}

fn number(key: &str, value: &str) -> Result<u64, String> {
    if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{key} must be a number, not '{}'", short(value)));
    }
    value
        .parse()
        .map_err(|_| format!("{key} must be a number, not '{}'", short(value)))
}

fn short(text: &str) -> String {
    text.chars().take(40).collect()
}

/// The parameter as it may stand inside a quoted URI of a playlist: every byte outside
/// the unreserved and a few harmless delimiters percent-encoded (so no `"`, `,`, space or
/// line break gets in).
fn uri_safe(pair: &str) -> String {
    let mut out = String::with_capacity(pair.len());
    for b in pair.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~%=+:@/!$'()*;".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn directives_and_passthrough() {
        let d = parse("_HLS_msn=41&token=abc.def&_HLS_part=3&_HLS_skip=YES").unwrap();
        assert_eq!(d.msn, Some(41));
        assert_eq!(d.part, Some(3));
        assert!(d.skip);
        assert_eq!(d.passthrough, "?token=abc.def");
        assert_eq!(parse("").unwrap(), Directives::default());
        assert!(parse("_HLS_skip=v2").unwrap().skip);
        assert_eq!(parse("a=1&&b").unwrap().passthrough, "?a=1&b");
    }

    #[test]
    fn bad_directives_are_errors() {
        for bad in [
            "_HLS_part=1",
            "_HLS_msn=",
            "_HLS_msn=-1",
            "_HLS_msn=1e3",
            "_HLS_msn=99999999999999999999",
            "_HLS_msn=18446744073709551616",
            "_HLS_skip=NO",
            "_HLS_other=1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nothing_can_break_out_of_a_quoted_uri() {
        let d = parse("t=\"a,b c\r\n#EXT").unwrap();
        assert_eq!(d.passthrough, "?t=%22a%2Cb%20c%0D%0A%23EXT");
        let d = parse("n=caf%C3%A9&x=é").unwrap();
        assert_eq!(d.passthrough, "?n=caf%C3%A9&x=%C3%A9");
    }
}
