//! A reader of the Prometheus text format for the tests: samples (name, labels, value) out
//! of a scrape, to look figures up. Independent of the server's writer; the format's own
//! checker (`promtool`) is run by the tests besides.

use std::collections::BTreeMap;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample of `text` (comments skipped); `Err` names the first line it cannot read.
pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        out.push(parse_line(line).ok_or_else(|| format!("cannot read {line:?}"))?);
    }
    Ok(out)
}

fn parse_line(line: &str) -> Option<Sample> {
    let (name, rest) = match line.find('{') {
        Some(i) => (&line[..i], &line[i..]),
        None => line.split_once(' ')?,
    };
    let mut labels = BTreeMap::new();
    let value_text = if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        let mut key = String::new();
        let end;
        loop {
            let (i, c) = chars.next()?;
            match c {
                '}' => {
                    end = i;
                    break;
                }
                ',' => {}
                '=' => {
                    let (_, quote) = chars.next()?;
                    if quote != '"' {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        let (_, c) = chars.next()?;
                        match c {
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            '"' => break,
                            other => value.push(other),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                other => key.push(other),
            }
        }
        &body[end + 1..]
    } else {
        rest
    };
    let value = match value_text.trim() {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.split_whitespace().next()?.parse().ok()?,
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// The value of the sample `name` whose labels include `labels`.
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_samples() {
        let s = parse(
            "# HELP x y\n# TYPE x counter\nx_total{a=\"q\\\"\\\\\\n\",b=\"é\"} 3\nup 1\nh_bucket{le=\"+Inf\"} 2\n",
        )
        .unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(
            value(&s, "x_total", &[("a", "q\"\\\n"), ("b", "é")]),
            Some(3.0)
        );
        assert_eq!(value(&s, "up", &[]), Some(1.0));
        assert_eq!(value(&s, "h_bucket", &[("le", "+Inf")]), Some(2.0));
        assert!(parse("broken{a=1} 2").is_err());
    }
}
