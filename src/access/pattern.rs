//! Stream patterns: the globs of `[[auth.users]] streams` and of tokens, matched against
//! local stream names and capture uris.
//!
//! `*` matches any run of characters (`/` included), `?` exactly one character, `\` makes
//! the next character literal; everything else matches itself, case-sensitively. Matching
//! works on Unicode characters, never on bytes, so `直播?` matches `直播流`, and it takes
//! time proportional to name × pattern at worst (no backtracking blow-up).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(char),
    AnyOne,
    AnyRun,
}

/// One parsed glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPattern {
    text: String,
    pieces: Vec<Piece>,
}

/// Longest pattern accepted, in bytes.
pub const MAX_PATTERN_BYTES: usize = 4096;

impl StreamPattern {
    /// Parses a glob. Empty patterns, patterns longer than [`MAX_PATTERN_BYTES`] and a
    /// trailing lone `\` are errors.
    pub fn parse(text: &str) -> Result<StreamPattern, String> {
        if text.is_empty() {
            return Err(
                "an empty stream pattern matches nothing; use \"*\" for every stream".into(),
            );
        }
        if text.len() > MAX_PATTERN_BYTES {
            return Err(format!(
                "a stream pattern is at most {MAX_PATTERN_BYTES} bytes long"
            ));
        }
        let mut pieces = Vec::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            pieces.push(match c {
                '*' => {
                    if pieces.last() == Some(&Piece::AnyRun) {
                        continue;
                    }
                    Piece::AnyRun
                }
                '?' => Piece::AnyOne,
                '\\' => match chars.next() {
                    Some(escaped) => Piece::Literal(escaped),
                    None => {
                        return Err(format!(
                        "the stream pattern {:?} ends with a lone \\ (write \\\\ for a backslash)",
                        short(text)
                    ))
                    }
                },
                other => Piece::Literal(other),
            });
        }
        Ok(StreamPattern {
            text: text.to_string(),
            pieces,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern is `*` (every stream).
    pub fn is_everything(&self) -> bool {
        self.pieces == [Piece::AnyRun]
    }

    /// Whether the pattern has no wildcard: it names exactly one stream.
    pub fn is_literal(&self) -> bool {
        self.pieces.iter().all(|p| matches!(p, Piece::Literal(_)))
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        let name: Vec<char> = name.chars().collect();
        let pieces = &self.pieces;
        let (mut p, mut n) = (0usize, 0usize);
        // Where the last `*` was, and the name position it currently absorbs up to.
        let mut star: Option<(usize, usize)> = None;
        while n < name.len() {
            match pieces.get(p) {
                Some(Piece::AnyRun) => {
                    star = Some((p, n));
                    p += 1;
                }
                Some(Piece::AnyOne) => {
                    p += 1;
                    n += 1;
                }
                Some(Piece::Literal(c)) if name.get(n) == Some(c) => {
                    p += 1;
                    n += 1;
                }
                _ => match star {
                    // Let the last `*` absorb one more character and retry after it.
                    Some((star_p, star_n)) => {
                        p = star_p + 1;
                        n = star_n + 1;
                        star = Some((star_p, star_n + 1));
                    }
                    None => return false,
                },
            }
        }
        pieces
            .get(p..)
            .is_some_and(|rest| rest.iter().all(|piece| *piece == Piece::AnyRun))
    }
}

impl fmt::Display for StreamPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn short(text: &str) -> String {
    text.chars().take(60).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        StreamPattern::parse(pattern).unwrap().matches(name)
    }

    #[test]
    fn table() {
        for (pattern, name, want) in [
            ("*", "", true),
            ("*", "anything/at all", true),
            ("cam1", "cam1", true),
            ("cam1", "cam10", false),
            ("cam1", "Cam1", false),
            ("cam*", "cam", true),
            ("cam*", "camera", true),
            ("cam*", "webcam", false),
            ("*cam", "webcam", true),
            ("cam?", "cam1", true),
            ("cam?", "cam", false),
            ("cam?", "cam12", false),
            ("rtmp://h/live/*", "rtmp://h/live/x?key=1", true),
            ("rtmp://h/live/*", "rtmp://h/other/x", false),
            ("*/live/*", "rtmp://h:1935/live/x", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("a*b*c", "abcabc", true),
            ("**", "x", true),
            (r"cam\*", "cam*", true),
            (r"cam\*", "cam1", false),
            (r"a\?", "a?", true),
            (r"a\\b", r"a\b", true),
            // Unicode: characters, not bytes.
            ("直播?", "直播流", true),
            ("直播*", "直播流/高清", true),
            ("?", "流", true),
            ("??", "流", false),
            ("Ёлк?", "Ёлка", true),
            ("caf?", "café", true),
            ("café", "cafe\u{301}", false),
        ] {
            assert_eq!(m(pattern, name), want, "{pattern:?} ~ {name:?}");
        }
    }

    #[test]
    fn bad_patterns() {
        assert!(StreamPattern::parse("").is_err());
        assert!(StreamPattern::parse("abc\\").is_err());
        assert!(StreamPattern::parse(&"x".repeat(MAX_PATTERN_BYTES + 1)).is_err());
    }

    #[test]
    fn kinds() {
        assert!(StreamPattern::parse("*").unwrap().is_everything());
        assert!(StreamPattern::parse("***").unwrap().is_everything());
        assert!(!StreamPattern::parse("*x").unwrap().is_everything());
        assert!(StreamPattern::parse(r"cam\*").unwrap().is_literal());
        assert!(!StreamPattern::parse("cam?").unwrap().is_literal());
    }

    #[test]
    fn long_names_stay_fast() {
        // The worst case of naive backtracking: many stars, a name that almost matches.
        let pattern = StreamPattern::parse(&"a*".repeat(50)).unwrap();
        let name = "a".repeat(10_000) + "b";
        let started = std::time::Instant::now();
        assert!(pattern.matches(&name));
        let miss = StreamPattern::parse(&("a*".repeat(50) + "c")).unwrap();
        assert!(!miss.matches(&name));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}
