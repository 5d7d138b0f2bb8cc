//! The Prometheus text exposition format, version 0.0.4: families and samples in, one scrape
//! body out.
//!
//! What the writer guarantees, whatever the caller hands it:
//! - every line ends with `\n`, and so does the output (unless it is empty);
//! - a family's `# HELP name text` and `# TYPE name kind` come once, just before its first
//!   sample; a family without samples writes nothing;
//! - a family's samples are contiguous (a [`Family`] borrows the writer, so a second one
//!   cannot be opened while it is in use);
//! - metric names match `[a-zA-Z_:][a-zA-Z0-9_:]*`, label names `[a-zA-Z_][a-zA-Z0-9_]*`
//!   without a leading `__`, and no label name appears twice in one sample;
//! - help text escapes `\` and newline, label values escape `\`, `"` and newline; anything
//!   else (non-ASCII included) is kept as UTF-8;
//! - values are spelled as Prometheus reads them: `3`, `1.5`, `0.0000001`, `NaN`, `+Inf`,
//!   `-Inf` (Rust's shortest round-trip decimal, never an exponent);
//! - a histogram `x` writes `x_bucket{…,le="B"}` with cumulative counts in increasing `B`,
//!   `x_bucket{…,le="+Inf"}` equal to `x_count`, then `x_sum` and `x_count`.
//!
//! A mistake — an invalid or repeated family name (a histogram also claims its `_bucket`,
//! `_sum` and `_count` names), an invalid label name, a label set repeated within a family,
//! a sample of the wrong kind, a malformed histogram snapshot — never panics and never
//! reaches the output: that family or sample is left out and counted in
//! [`TextWriter::skipped`]. Samples handed to a family that was left out are dropped
//! without being counted again.
//!
//! Timestamps are not written (the scrape time is used). Counters should be named with
//! `_total` by the caller; that is not enforced. Nothing here does I/O or reads a clock.

use std::collections::HashSet;

use super::histogram::HistogramSnapshot;

/// The `# TYPE` of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Only goes up (reset on restart); name it `…_total`.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Buckets, sum and count; fed with [`Family::histogram`].
    Histogram,
}

impl Kind {
    /// The word used on the `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// The suffixes a histogram's sample lines add to its family name.
const HISTOGRAM_SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];

/// A label set as the duplicate check sees it: sorted by name, empty values left out (to
/// Prometheus an empty label value is the same as the label being absent).
type SeriesKey = Vec<(String, String)>;

/// Builds one scrape body. See the module documentation for the rules it enforces.
#[derive(Debug, Default)]
pub struct TextWriter {
    out: String,
    /// Every name a family has claimed so far (a histogram claims four).
    names: HashSet<String>,
    /// The family being written, or `None` after a family was left out.
    current: Option<Current>,
    skipped: usize,
}

#[derive(Debug)]
struct Current {
    name: String,
    help: String,
    kind: Kind,
    header_written: bool,
    series: HashSet<SeriesKey>,
}

impl TextWriter {
    /// An empty exposition.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the family `name`; the previous family, if any, is finished. The returned
    /// [`Family`] takes the samples. An invalid name, or one that an earlier family already
    /// claimed, leaves the whole family out (counted once in [`skipped`](Self::skipped)).
    pub fn family(&mut self, name: &str, help: &str, kind: Kind) -> Family<'_> {
        self.current = None;
        let mut claimed = vec![name.to_owned()];
        if kind == Kind::Histogram {
            claimed.extend(HISTOGRAM_SUFFIXES.iter().map(|s| format!("{name}{s}")));
        }
        if !is_metric_name(name) || claimed.iter().any(|n| self.names.contains(n)) {
            self.skipped += 1;
        } else {
            self.names.extend(claimed);
            self.current = Some(Current {
                name: name.to_owned(),
                help: help.to_owned(),
                kind,
                header_written: false,
                series: HashSet::new(),
            });
        }
        Family { writer: self }
    }

    /// How many families and samples were left out because of a caller's mistake.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// The exposition text (`text/plain; version=0.0.4`).
    pub fn finish(self) -> String {
        self.out
    }
}

/// One family being written; obtained from [`TextWriter::family`].
#[derive(Debug)]
pub struct Family<'a> {
    writer: &'a mut TextWriter,
}

impl Family<'_> {
    /// Writes `name{labels} value` for a counter or gauge family. Left out and counted: an
    /// invalid or repeated label name, a label set this family already has, or a histogram
    /// family.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        let TextWriter {
            out,
            current,
            skipped,
            ..
        } = &mut *self.writer;
        let Some(current) = current.as_mut() else {
            return;
        };
        if current.kind == Kind::Histogram || !current.claim_series(labels, false) {
            *skipped += 1;
            return;
        }
        current.write_header(out);
        write_sample(out, &current.name, "", labels, None, &format_value(value));
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines of one histogram for a histogram
    /// family. Left out and counted: an invalid or repeated label name (`le` included), a
    /// label set this family already has, a malformed snapshot (see
    /// [`HistogramSnapshot::is_well_formed`]), or a counter or gauge family.
    pub fn histogram(&mut self, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        let TextWriter {
            out,
            current,
            skipped,
            ..
        } = &mut *self.writer;
        let Some(current) = current.as_mut() else {
            return;
        };
        if current.kind != Kind::Histogram
            || !h.is_well_formed()
            || !current.claim_series(labels, true)
        {
            *skipped += 1;
            return;
        }
        current.write_header(out);
        let name = current.name.as_str();
        let count = h.count();
        let mut cumulative = 0u64;
        for (&bound, &in_bucket) in h.bounds.iter().zip(&h.counts) {
            cumulative = cumulative.saturating_add(in_bucket);
            let le = format_value(bound);
            write_sample(
                out,
                name,
                "_bucket",
                labels,
                Some(("le", &le)),
                &cumulative.to_string(),
            );
        }
        let count = count.to_string();
        write_sample(out, name, "_bucket", labels, Some(("le", "+Inf")), &count);
        write_sample(out, name, "_sum", labels, None, &format_value(h.sum));
        write_sample(out, name, "_count", labels, None, &count);
    }
}

impl Current {
    /// Checks the label names and records the label set; `false` if the names are invalid
    /// or the set was seen before in this family.
    fn claim_series(&mut self, labels: &[(&str, &str)], histogram: bool) -> bool {
        let mut names = HashSet::new();
        for &(label, _) in labels {
            if !is_label_name(label) || (histogram && label == "le") || !names.insert(label) {
                return false;
            }
        }
        let mut key: SeriesKey = labels
            .iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|&(label, value)| (label.to_owned(), value.to_owned()))
            .collect();
        key.sort();
        self.series.insert(key)
    }

    fn write_header(&mut self, out: &mut String) {
        if self.header_written {
            return;
        }
        self.header_written = true;
        // The space after the name is written even for an empty help text, as the Go client
        // does; every parser reads it as an empty text.
        out.push_str("# HELP ");
        out.push_str(&self.name);
        out.push(' ');
        for c in self.help.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('\n');
        out.push_str("# TYPE ");
        out.push_str(&self.name);
        out.push(' ');
        out.push_str(self.kind.as_str());
        out.push('\n');
    }
}

/// Writes one sample line: `name suffix {labels, extra} value\n` (without the spaces).
fn write_sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(&str, &str)],
    extra: Option<(&str, &str)>,
    value: &str,
) {
    out.push_str(name);
    out.push_str(suffix);
    let mut all = labels.iter().copied().chain(extra).peekable();
    if all.peek().is_some() {
        out.push('{');
        for (i, (label, label_value)) in all.enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(label);
            out.push_str("=\"");
            for c in label_value.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

/// A value as Prometheus (Go's `ParseFloat`) reads it: `NaN`, `+Inf`, `-Inf`, otherwise
/// Rust's shortest round-trip decimal, which has no exponent and no `.0` on integers.
fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        v.to_string()
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__` (reserved for Prometheus itself).
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;
    use crate::metrics::{Histogram, LATENCY_BOUNDS_SECONDS};

    // ---- an independent reader of the text format, to prove the output parses ----

    #[derive(Debug, Clone, PartialEq)]
    struct Sample {
        name: String,
        labels: Vec<(String, String)>,
        value: f64,
    }

    /// Reads an exposition strictly: every line is `# HELP name text`, `# TYPE name kind` or
    /// `name{label="value",…} value`; HELP and TYPE come at most once per family and before
    /// its samples, every sample belongs to a typed family, a family's samples are contiguous
    /// and no series repeats. Returns the samples with their label values unescaped.
    fn parse(text: &str) -> Result<Vec<Sample>, String> {
        if !text.is_empty() && !text.ends_with('\n') {
            return Err("output does not end with a newline".into());
        }
        let mut types: HashMap<String, String> = HashMap::new();
        let mut helps: HashSet<String> = HashSet::new();
        let mut started: HashSet<String> = HashSet::new();
        let mut finished: HashSet<String> = HashSet::new();
        let mut current_family: Option<String> = None;
        let mut series: HashSet<(String, Vec<(String, String)>)> = HashSet::new();
        let mut samples = Vec::new();
        for line in text.lines() {
            let bad = |why: &str| format!("{why}: {line:?}");
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest
                    .split_once(' ')
                    .ok_or_else(|| bad("HELP without text"))?;
                check_metric_name(name).map_err(|e| bad(&e))?;
                unescape(help, false).map_err(|e| bad(&e))?;
                if started.contains(name) || !helps.insert(name.to_owned()) {
                    return Err(bad("HELP repeated or after samples"));
                }
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest
                    .split_once(' ')
                    .ok_or_else(|| bad("TYPE without kind"))?;
                check_metric_name(name).map_err(|e| bad(&e))?;
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                    return Err(bad("unknown type"));
                }
                if started.contains(name) || types.contains_key(name) {
                    return Err(bad("TYPE repeated or after samples"));
                }
                types.insert(name.to_owned(), kind.to_owned());
            } else if line.starts_with('#') {
                return Err(bad("unexpected comment"));
            } else {
                let sample = parse_sample(line).map_err(|e| bad(&e))?;
                let family = family_of(&sample, &types).ok_or_else(|| bad("untyped sample"))?;
                if current_family.as_deref() != Some(family.as_str()) {
                    if finished.contains(&family) {
                        return Err(bad("family's samples are not contiguous"));
                    }
                    if let Some(previous) = current_family.take() {
                        finished.insert(previous);
                    }
                    current_family = Some(family.clone());
                    started.insert(family);
                }
                let mut key = sample.labels.clone();
                key.sort();
                if !series.insert((sample.name.clone(), key)) {
                    return Err(bad("series repeated"));
                }
                samples.push(sample);
            }
        }
        Ok(samples)
    }

    /// The family a sample line belongs to: its own name, or a histogram's base name.
    fn family_of(sample: &Sample, types: &HashMap<String, String>) -> Option<String> {
        if types.contains_key(&sample.name) {
            return Some(sample.name.clone());
        }
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = sample.name.strip_suffix(suffix) {
                if types.get(base).map(String::as_str) == Some("histogram") {
                    let has_le = sample.labels.iter().any(|(l, _)| l == "le");
                    return (has_le == (suffix == "_bucket")).then(|| base.to_owned());
                }
            }
        }
        None
    }

    fn check_metric_name(name: &str) -> Result<(), String> {
        let ok = !name.is_empty()
            && name.bytes().enumerate().all(|(i, b)| {
                b.is_ascii_alphabetic() || b == b'_' || b == b':' || (i > 0 && b.is_ascii_digit())
            });
        ok.then_some(())
            .ok_or_else(|| format!("bad metric name {name:?}"))
    }

    fn parse_sample(line: &str) -> Result<Sample, String> {
        let name_end = line.find(['{', ' ']).ok_or("no value")?;
        let name = &line[..name_end];
        check_metric_name(name)?;
        let mut rest = &line[name_end..];
        let mut labels: Vec<(String, String)> = Vec::new();
        if let Some(after) = rest.strip_prefix('{') {
            rest = after;
            loop {
                if let Some(after) = rest.strip_prefix('}') {
                    rest = after;
                    break;
                }
                if !labels.is_empty() {
                    rest = rest.strip_prefix(',').ok_or("expected , between labels")?;
                }
                let eq = rest.find('=').ok_or("label without =")?;
                let label = &rest[..eq];
                let ok = !label.is_empty()
                    && !label.starts_with("__")
                    && label.bytes().enumerate().all(|(i, b)| {
                        b.is_ascii_alphabetic() || b == b'_' || (i > 0 && b.is_ascii_digit())
                    });
                if !ok {
                    return Err(format!("bad label name {label:?}"));
                }
                if labels.iter().any(|(l, _)| l == label) {
                    return Err(format!("label {label:?} repeated"));
                }
                rest = rest[eq + 1..]
                    .strip_prefix('"')
                    .ok_or("label value not quoted")?;
                // The closing quote is the first `"` not preceded by an escaping backslash.
                let mut end = None;
                let mut escaped = false;
                for (i, c) in rest.char_indices() {
                    match (escaped, c) {
                        (true, _) => escaped = false,
                        (false, '\\') => escaped = true,
                        (false, '"') => {
                            end = Some(i);
                            break;
                        }
                        _ => {}
                    }
                }
                let end = end.ok_or("unterminated label value")?;
                labels.push((label.to_owned(), unescape(&rest[..end], true)?));
                rest = &rest[end + 1..];
            }
        }
        let value = rest
            .strip_prefix(' ')
            .ok_or("expected one space before the value")?;
        let value = match value {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v if !v.is_empty()
                && v.bytes()
                    .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) =>
            {
                v.parse::<f64>()
                    .map_err(|e| format!("bad value {v:?}: {e}"))?
            }
            v => return Err(format!("bad value {v:?}")),
        };
        Ok(Sample {
            name: name.to_owned(),
            labels,
            value,
        })
    }

    /// Undoes the writer's escapes; any other backslash sequence (or a raw `"` in a label
    /// value) is an error.
    fn unescape(s: &str, label_value: bool) -> Result<String, String> {
        let mut out = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('\\') => out.push('\\'),
                    Some('n') => out.push('\n'),
                    Some('"') if label_value => out.push('"'),
                    other => return Err(format!("bad escape \\{other:?} in {s:?}")),
                },
                '"' if label_value => return Err(format!("raw quote in {s:?}")),
                c => out.push(c),
            }
        }
        Ok(out)
    }

    fn parsed(text: &str) -> Vec<Sample> {
        match parse(text) {
            Ok(samples) => samples,
            Err(e) => panic!("unparseable output ({e}):\n{text}"),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|&(l, v)| (l.to_owned(), v.to_owned()))
            .collect()
    }

    // ---- exact text ----

    #[test]
    fn small_exposition_exact_text() {
        let mut w = TextWriter::new();
        let mut f = w.family(
            "pullcast_pull_bytes_total",
            "Bytes read from sources.",
            Kind::Counter,
        );
        f.sample(&[("stream", "cam1"), ("proto", "rtmp")], 1234.0);
        f.sample(&[("stream", "cam2"), ("proto", "rtmp")], 0.0);
        let mut f = w.family("pullcast_viewers", "Connected viewers.", Kind::Gauge);
        f.sample(&[], 3.0);
        let mut f = w.family(
            "pullcast_request_seconds",
            "Time to answer a request.",
            Kind::Histogram,
        );
        let mut h = Histogram::new(&[0.25, 1.0]);
        h.observe(0.125);
        h.observe(0.25);
        h.observe(0.5);
        h.observe(2.0);
        f.histogram(&[("route", "hls")], &h.snapshot());
        f.histogram(
            &[("route", "whep")],
            &Histogram::new(&[0.25, 1.0]).snapshot(),
        );
        assert_eq!(w.skipped(), 0);
        let text = w.finish();
        assert_eq!(
            text,
            "# HELP pullcast_pull_bytes_total Bytes read from sources.\n\
             # TYPE pullcast_pull_bytes_total counter\n\
             pullcast_pull_bytes_total{stream=\"cam1\",proto=\"rtmp\"} 1234\n\
             pullcast_pull_bytes_total{stream=\"cam2\",proto=\"rtmp\"} 0\n\
             # HELP pullcast_viewers Connected viewers.\n\
             # TYPE pullcast_viewers gauge\n\
             pullcast_viewers 3\n\
             # HELP pullcast_request_seconds Time to answer a request.\n\
             # TYPE pullcast_request_seconds histogram\n\
             pullcast_request_seconds_bucket{route=\"hls\",le=\"0.25\"} 2\n\
             pullcast_request_seconds_bucket{route=\"hls\",le=\"1\"} 3\n\
             pullcast_request_seconds_bucket{route=\"hls\",le=\"+Inf\"} 4\n\
             pullcast_request_seconds_sum{route=\"hls\"} 2.875\n\
             pullcast_request_seconds_count{route=\"hls\"} 4\n\
             pullcast_request_seconds_bucket{route=\"whep\",le=\"0.25\"} 0\n\
             pullcast_request_seconds_bucket{route=\"whep\",le=\"1\"} 0\n\
             pullcast_request_seconds_bucket{route=\"whep\",le=\"+Inf\"} 0\n\
             pullcast_request_seconds_sum{route=\"whep\"} 0\n\
             pullcast_request_seconds_count{route=\"whep\"} 0\n"
        );
        let samples = parsed(&text);
        assert_eq!(samples.len(), 13);
        assert_eq!(
            samples[0].labels,
            labels(&[("stream", "cam1"), ("proto", "rtmp")])
        );
        assert_eq!(samples[0].value, 1234.0);
    }

    #[test]
    fn histogram_without_labels() {
        let mut w = TextWriter::new();
        let mut h = Histogram::new(&[1.0]);
        h.observe(1.0);
        w.family("x", "", Kind::Histogram)
            .histogram(&[], &h.snapshot());
        let text = w.finish();
        assert_eq!(
            text,
            "# HELP x \n\
             # TYPE x histogram\n\
             x_bucket{le=\"1\"} 1\n\
             x_bucket{le=\"+Inf\"} 1\n\
             x_sum 1\n\
             x_count 1\n"
        );
        parsed(&text);
    }

    #[test]
    fn empty_writer_and_families_without_samples_write_nothing() {
        assert_eq!(TextWriter::new().finish(), "");
        let mut w = TextWriter::new();
        w.family("a", "nothing yet", Kind::Counter);
        w.family("b", "nothing yet", Kind::Histogram);
        assert_eq!(w.skipped(), 0);
        assert_eq!(w.finish(), "");
    }

    // ---- escaping ----

    #[test]
    fn help_escapes_backslash_and_newline_only() {
        let mut w = TextWriter::new();
        w.family("m", "a\\b\nc \"quoted\" café ☕", Kind::Gauge)
            .sample(&[], 1.0);
        let text = w.finish();
        assert_eq!(
            text,
            "# HELP m a\\\\b\\nc \"quoted\" café ☕\n# TYPE m gauge\nm 1\n"
        );
        parsed(&text);
    }

    #[test]
    fn label_values_escape_backslash_quote_and_newline() {
        let mut w = TextWriter::new();
        let value = "C:\\dir \"x\"\nnext café ☕ {a=\"b\"} #";
        w.family("m", "h", Kind::Gauge)
            .sample(&[("path", value)], 2.0);
        let text = w.finish();
        assert_eq!(
            text,
            "# HELP m h\n# TYPE m gauge\n\
             m{path=\"C:\\\\dir \\\"x\\\"\\nnext café ☕ {a=\\\"b\\\"} #\"} 2\n"
        );
        assert_eq!(text.lines().count(), 3);
        let samples = parsed(&text);
        assert_eq!(samples[0].labels, labels(&[("path", value)]));
    }

    #[test]
    fn histogram_labels_are_escaped_on_every_line() {
        let mut w = TextWriter::new();
        w.family("h", "h", Kind::Histogram)
            .histogram(&[("q", "a\"b")], &Histogram::new(&[1.0]).snapshot());
        let text = w.finish();
        assert_eq!(text.matches("q=\"a\\\"b\"").count(), 4);
        let samples = parsed(&text);
        assert!(samples
            .iter()
            .all(|s| s.labels[0] == ("q".into(), "a\"b".into())));
    }

    // ---- values ----

    #[test]
    fn float_formatting_table() {
        let table: [(f64, &str); 13] = [
            (0.0, "0"),
            (1.0, "1"),
            (1.5, "1.5"),
            (1e-7, "0.0000001"),
            (1e21, "1000000000000000000000"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (-0.25, "-0.25"),
            (-3.0, "-3"),
            (0.1 + 0.2, "0.30000000000000004"),
            (123_456_789.0, "123456789"),
            (2.65, "2.65"),
        ];
        for (v, want) in table {
            assert_eq!(format_value(v), want, "{v:?}");
            let back: f64 = match want {
                "NaN" => f64::NAN,
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                s => s.parse().unwrap(),
            };
            assert!(back.to_bits() == v.to_bits(), "{want} does not round-trip");
        }
        let mut w = TextWriter::new();
        let mut f = w.family("v", "values", Kind::Gauge);
        for (i, (v, _)) in table.iter().enumerate() {
            f.sample(&[("i", &i.to_string())], *v);
        }
        let text = w.finish();
        for (sample, (v, want)) in parsed(&text).iter().zip(table) {
            assert!(
                sample.value.to_bits() == v.to_bits(),
                "{want} read back as {}",
                sample.value
            );
        }
    }

    // ---- mistakes ----

    #[test]
    fn invalid_metric_names_are_skipped_and_counted() {
        let mut w = TextWriter::new();
        for name in ["", "1abc", "a-b", "a b", "é", "a{b}", "a\n"] {
            w.family(name, "h", Kind::Gauge).sample(&[], 1.0);
        }
        assert_eq!(w.skipped(), 7);
        for name in ["a", "_a", ":a", "a:b_c9", "A"] {
            w.family(name, "h", Kind::Gauge).sample(&[], 1.0);
        }
        assert_eq!(w.skipped(), 7);
        let text = w.finish();
        assert_eq!(parsed(&text).len(), 5);
    }

    #[test]
    fn invalid_label_names_are_skipped_and_counted() {
        let mut w = TextWriter::new();
        let mut f = w.family("m", "h", Kind::Gauge);
        f.sample(&[("ok", "1")], 1.0);
        f.sample(&[("", "x")], 1.0);
        f.sample(&[("1a", "x")], 1.0);
        f.sample(&[("a:b", "x")], 1.0);
        f.sample(&[("__name__", "x")], 1.0);
        f.sample(&[("__x", "x")], 1.0);
        f.sample(&[("a-b", "x")], 1.0);
        f.sample(&[("a", "x"), ("a", "y")], 1.0);
        f.sample(&[("_a", "x"), ("le", "1")], 1.0); // `le` is fine outside histograms
        assert_eq!(w.skipped(), 7);
        let mut f = w.family("h", "h", Kind::Histogram);
        let snapshot = Histogram::new(&[1.0]).snapshot();
        f.histogram(&[("le", "1")], &snapshot);
        f.histogram(&[("__x", "1")], &snapshot);
        assert_eq!(w.skipped(), 9);
        let text = w.finish();
        assert_eq!(parsed(&text).len(), 2);
        assert!(!text.contains("# TYPE h"), "a family with no valid sample");
    }

    #[test]
    fn duplicate_families_are_skipped_and_counted() {
        let mut w = TextWriter::new();
        w.family("a", "first", Kind::Counter).sample(&[], 1.0);
        let mut again = w.family("a", "second", Kind::Gauge);
        again.sample(&[], 2.0);
        again.sample(&[("x", "y")], 2.0);
        assert_eq!(
            w.skipped(),
            1,
            "one family left out, its samples not counted again"
        );
        // A histogram claims its suffixed names, in either order.
        w.family("h", "", Kind::Histogram)
            .histogram(&[], &Histogram::new(&[1.0]).snapshot());
        w.family("h_count", "", Kind::Gauge).sample(&[], 1.0);
        w.family("g_sum", "", Kind::Gauge).sample(&[], 1.0);
        w.family("g", "", Kind::Histogram)
            .histogram(&[], &Histogram::new(&[1.0]).snapshot());
        assert_eq!(w.skipped(), 3);
        // A family declared without samples still holds its name.
        w.family("quiet", "", Kind::Gauge);
        w.family("quiet", "", Kind::Gauge).sample(&[], 1.0);
        assert_eq!(w.skipped(), 4);
        let text = w.finish();
        assert_eq!(text.matches("# HELP a ").count(), 1);
        assert!(text.contains("a 1\n") && !text.contains("a 2\n"));
        assert_eq!(parsed(&text).len(), 1 + 4 + 1);
    }

    #[test]
    fn duplicate_label_sets_are_skipped_and_counted() {
        let mut w = TextWriter::new();
        let mut f = w.family("m", "h", Kind::Gauge);
        f.sample(&[("a", "1"), ("b", "2")], 1.0);
        f.sample(&[("b", "2"), ("a", "1")], 2.0); // same set, other order
        f.sample(&[("a", "1"), ("b", "3")], 3.0);
        f.sample(&[], 4.0);
        f.sample(&[("c", "")], 5.0); // an empty value is an absent label
        f.sample(&[], 6.0);
        assert_eq!(w.skipped(), 3);
        let mut f = w.family("h", "h", Kind::Histogram);
        let snapshot = Histogram::new(&[1.0]).snapshot();
        f.histogram(&[("r", "x")], &snapshot);
        f.histogram(&[("r", "x")], &snapshot);
        f.histogram(&[("r", "y")], &snapshot);
        assert_eq!(w.skipped(), 4);
        // The same label set in another family is fine.
        w.family("n", "h", Kind::Gauge)
            .sample(&[("a", "1"), ("b", "2")], 1.0);
        assert_eq!(w.skipped(), 4);
        let samples = parsed(&w.finish());
        let values: Vec<f64> = samples
            .iter()
            .filter(|s| s.name == "m")
            .map(|s| s.value)
            .collect();
        assert_eq!(values, vec![1.0, 3.0, 4.0]);
        assert_eq!(samples.iter().filter(|s| s.name == "h_count").count(), 2);
    }

    #[test]
    fn wrong_kind_and_malformed_snapshots_are_skipped_and_counted() {
        let mut w = TextWriter::new();
        let snapshot = Histogram::new(&[1.0]).snapshot();
        w.family("g", "h", Kind::Gauge).histogram(&[], &snapshot);
        w.family("h", "h", Kind::Histogram).sample(&[], 1.0);
        assert_eq!(w.skipped(), 2);
        let mut f = w.family("h2", "h", Kind::Histogram);
        let malformed = [
            HistogramSnapshot {
                bounds: vec![1.0],
                counts: vec![1],
                sum: 1.0,
            },
            HistogramSnapshot {
                bounds: vec![2.0, 1.0],
                counts: vec![0, 0, 0],
                sum: 0.0,
            },
            HistogramSnapshot {
                bounds: vec![f64::NAN],
                counts: vec![0, 0],
                sum: 0.0,
            },
        ];
        for (i, s) in malformed.iter().enumerate() {
            f.histogram(&[("i", &i.to_string())], s);
        }
        assert_eq!(w.skipped(), 5);
        assert_eq!(w.finish(), "");
    }

    // ---- histograms ----

    #[test]
    fn histogram_buckets_are_cumulative_and_inf_equals_count() {
        let mut h = Histogram::new(&LATENCY_BOUNDS_SECONDS);
        for v in [0.0005, 0.001, 0.003, 0.003, 0.2, 0.7, 3.0, 20.0, 1e9] {
            h.observe(v);
        }
        let snapshot = h.snapshot();
        let mut w = TextWriter::new();
        w.family("lat_seconds", "h", Kind::Histogram)
            .histogram(&[("s", "a")], &snapshot);
        let samples = parsed(&w.finish());
        let buckets: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.name == "lat_seconds_bucket")
            .collect();
        assert_eq!(buckets.len(), LATENCY_BOUNDS_SECONDS.len() + 1);
        let mut previous_bound = f64::NEG_INFINITY;
        let mut previous_count = 0.0;
        for b in &buckets {
            let le = &b.labels.iter().find(|(l, _)| l == "le").unwrap().1;
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            assert!(bound > previous_bound, "bounds increase");
            assert!(b.value >= previous_count, "counts are cumulative");
            assert_eq!(b.labels[0], ("s".into(), "a".into()), "labels before le");
            previous_bound = bound;
            previous_count = b.value;
        }
        let by_name = |n: &str| samples.iter().find(|s| s.name == n).unwrap().value;
        assert_eq!(previous_bound, f64::INFINITY);
        assert_eq!(previous_count, 9.0);
        assert_eq!(by_name("lat_seconds_count"), 9.0);
        assert_eq!(by_name("lat_seconds_count") as u64, snapshot.count());
        // le="0.001" holds 0.0005 and 0.001 (inclusive), le="0.005" adds the two 0.003s.
        assert_eq!(buckets[0].value, 2.0);
        assert_eq!(buckets[1].value, 2.0);
        assert_eq!(buckets[2].value, 4.0);
        assert_eq!(buckets[LATENCY_BOUNDS_SECONDS.len() - 1].value, 7.0);
    }

    #[test]
    fn observe_on_a_bound_is_counted_in_that_bucket() {
        let mut h = Histogram::new(&[0.5, 1.0]);
        h.observe(0.5);
        let mut w = TextWriter::new();
        w.family("x", "", Kind::Histogram)
            .histogram(&[], &h.snapshot());
        let text = w.finish();
        assert!(text.contains("x_bucket{le=\"0.5\"} 1\n"), "{text}");
        assert!(text.contains("x_bucket{le=\"1\"} 1\n"), "{text}");
        assert!(text.contains("x_bucket{le=\"+Inf\"} 1\n"), "{text}");
    }

    // ---- whatever the caller does, the output parses ----

    #[test]
    fn arbitrary_calls_always_produce_parseable_output() {
        // A small deterministic generator (xorshift) over pools of good and bad input.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let names = [
            "a", "b_total", "c", "c_sum", "c_count", "c_bucket", "d:e", "", "9x", "f-g",
        ];
        let label_names = ["l", "le", "k", "_k", "__k", "", "1", "l"];
        let label_values = [
            "", "v", "a\\b", "q\"q", "n\nn", "café", "}", ",x=\"y\"", " ",
        ];
        let values = [
            0.0,
            -1.5,
            1e-300,
            1e300,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        let kinds = [Kind::Counter, Kind::Gauge, Kind::Histogram];
        let (mut written, mut skipped) = (0, 0);
        for _round in 0..200 {
            let mut w = TextWriter::new();
            for _ in 0..next(6) {
                let mut f = w.family(
                    names[next(names.len())],
                    label_values[next(label_values.len())],
                    kinds[next(kinds.len())],
                );
                for _ in 0..next(5) {
                    let pairs: Vec<(&str, &str)> = (0..next(3))
                        .map(|_| {
                            (
                                label_names[next(label_names.len())],
                                label_values[next(label_values.len())],
                            )
                        })
                        .collect();
                    if next(2) == 0 {
                        f.sample(&pairs, values[next(values.len())]);
                    } else {
                        let mut h = Histogram::new(&values);
                        for _ in 0..next(4) {
                            h.observe(values[next(values.len())]);
                        }
                        f.histogram(&pairs, &h.snapshot());
                    }
                }
            }
            skipped += w.skipped();
            let text = w.finish();
            written += parsed(&text).len();
        }
        assert!(
            written > 100 && skipped > 100,
            "{written} written, {skipped} skipped"
        );
    }

    #[test]
    fn the_parser_rejects_what_it_should() {
        for bad in [
            "m 1",                                                      // no final newline
            "m 1\n",                                                    // no TYPE
            "# TYPE m gauge\nm{a=\"b} 1\n",                             // unterminated value
            "# TYPE m gauge\nm{a=\"b\\x\"} 1\n",                        // unknown escape
            "# TYPE m gauge\nm{__a=\"b\"} 1\n",                         // reserved label name
            "# TYPE m gauge\nm 1\nm 2\n",                               // repeated series
            "# TYPE m gauge\n# TYPE m gauge\nm 1\n",                    // repeated TYPE
            "# TYPE m gauge\nm 1\n# HELP m x\n",                        // HELP after samples
            "# TYPE m gauge\n# TYPE n gauge\nm{a=\"1\"} 1\nn 1\nm 2\n", // not contiguous
            "# TYPE m gauge\nm 1.0.0\n",                                // bad value
            "# TYPE m gauge\nm inf\n",                                  // not Go's spelling
            "# TYPE h histogram\nh_bucket 1\n",                         // bucket without le
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
        assert!(parse("# HELP m \n# TYPE m gauge\nm{a=\"\\\"\"} -Inf\n").is_ok());
    }
}
