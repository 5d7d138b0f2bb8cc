//! An LL-HLS media playlist read back and checked against the rules of RFC 8216bis that a
//! player relies on, independently of the server's own writer: the tests' second opinion.

/// One `EXT-X-PART`.
#[derive(Debug, Clone, PartialEq)]
pub struct PartLine {
    pub duration: f64,
    pub uri: String,
    pub independent: bool,
}

/// One segment with what stands before its URI.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentLine {
    pub msn: u64,
    pub duration: f64,
    pub uri: String,
    /// `EXT-X-PROGRAM-DATE-TIME` in ms since the Unix epoch.
    pub pdt_ms: Option<i64>,
    pub parts: Vec<PartLine>,
}

/// A media playlist.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Playlist {
    pub version: u32,
    pub target_duration: u64,
    pub part_target: f64,
    pub part_hold_back: f64,
    pub can_skip_until: f64,
    pub can_block_reload: bool,
    pub media_sequence: u64,
    pub map: Option<String>,
    pub skipped: u64,
    pub segments: Vec<SegmentLine>,
    /// Parts after the last segment (the open one).
    pub open_parts: Vec<PartLine>,
    pub preload_hint: Option<String>,
}

impl Playlist {
    /// The msn of the open segment (the one after the last listed).
    pub fn next_msn(&self) -> u64 {
        self.media_sequence + self.skipped + self.segments.len() as u64
    }

    /// Every part URI listed, in order.
    pub fn part_uris(&self) -> Vec<&str> {
        self.segments
            .iter()
            .flat_map(|s| s.parts.iter())
            .chain(self.open_parts.iter())
            .map(|p| p.uri.as_str())
            .collect()
    }
}

fn attributes(list: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = list;
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            let next = quoted.get(end + 1..).unwrap_or("");
            (&quoted[..end], next.strip_prefix(',').unwrap_or(next))
        } else {
            match after.split_once(',') {
                Some((v, n)) => (v, n),
                None => (after, ""),
            }
        };
        out.push((key.trim().to_string(), value.to_string()));
        rest = next;
    }
    out
}

fn attribute<'a>(attrs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn number(text: Option<&str>) -> f64 {
    text.and_then(|t| t.parse().ok()).unwrap_or(f64::NAN)
}

/// `2026-12-06T10:00:00.123Z` → ms since the epoch.
fn parse_time(text: &str) -> Option<i64> {
    let (date, time) = text.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<i64>());
    let (h, min, s) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    let ms: i64 = format!("{frac:0<3}").get(..3)?.parse().ok()?;
    // Days from civil (H. Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + min) * 60_000 + s * 1000 + ms)
}

/// Reads a media playlist.
pub fn parse(text: &str) -> Result<Playlist, String> {
    let mut lines = text.lines();
    if lines.next() != Some("#EXTM3U") {
        return Err("does not start with #EXTM3U".into());
    }
    let mut p = Playlist::default();
    let mut pending_parts = Vec::new();
    let mut pending_pdt = None;
    let mut pending_duration = None;
    for line in lines {
        if let Some(v) = line.strip_prefix("#EXT-X-VERSION:") {
            p.version = v.parse().map_err(|_| format!("bad version {v}"))?;
        } else if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            p.target_duration = v.parse().map_err(|_| format!("bad target duration {v}"))?;
        } else if let Some(v) = line.strip_prefix("#EXT-X-SERVER-CONTROL:") {
            let a = attributes(v);
            p.can_block_reload = attribute(&a, "CAN-BLOCK-RELOAD") == Some("YES");
            p.part_hold_back = number(attribute(&a, "PART-HOLD-BACK"));
            p.can_skip_until = number(attribute(&a, "CAN-SKIP-UNTIL"));
        } else if let Some(v) = line.strip_prefix("#EXT-X-PART-INF:") {
            p.part_target = number(attribute(&attributes(v), "PART-TARGET"));
        } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            p.media_sequence = v.parse().map_err(|_| format!("bad media sequence {v}"))?;
        } else if let Some(v) = line.strip_prefix("#EXT-X-MAP:") {
            p.map = attribute(&attributes(v), "URI").map(str::to_string);
        } else if let Some(v) = line.strip_prefix("#EXT-X-SKIP:") {
            p.skipped = number(attribute(&attributes(v), "SKIPPED-SEGMENTS")) as u64;
        } else if let Some(v) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            pending_pdt = Some(parse_time(v).ok_or_else(|| format!("bad date {v}"))?);
        } else if let Some(v) = line.strip_prefix("#EXT-X-PART:") {
            let a = attributes(v);
            pending_parts.push(PartLine {
                duration: number(attribute(&a, "DURATION")),
                uri: attribute(&a, "URI")
                    .ok_or("a part without URI")?
                    .to_string(),
                independent: attribute(&a, "INDEPENDENT") == Some("YES"),
            });
        } else if let Some(v) = line.strip_prefix("#EXT-X-PRELOAD-HINT:") {
            p.preload_hint = attribute(&attributes(v), "URI").map(str::to_string);
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            pending_duration = Some(number(v.split(',').next()));
        } else if !line.starts_with('#') && !line.is_empty() {
            let duration = pending_duration.take().ok_or("a URI without #EXTINF")?;
            let msn = p.media_sequence + p.skipped + p.segments.len() as u64;
            p.segments.push(SegmentLine {
                msn,
                duration,
                uri: line.to_string(),
                pdt_ms: pending_pdt.take(),
                parts: std::mem::take(&mut pending_parts),
            });
        }
    }
    p.open_parts = pending_parts;
    Ok(p)
}

/// What the playlist does against the LL-HLS rules; empty when it keeps them all.
pub fn violations(p: &Playlist) -> Vec<String> {
    let mut v = Vec::new();
    if p.version < 9 {
        v.push(format!("version {} < 9 (EXT-X-SKIP needs 9)", p.version));
    }
    if !p.can_block_reload {
        v.push("no CAN-BLOCK-RELOAD=YES".into());
    }
    if p.part_target.is_nan() || p.part_target <= 0.0 {
        v.push("no PART-TARGET".into());
    }
    if p.part_hold_back.is_nan() || p.part_hold_back < 2.0 * p.part_target {
        v.push(format!(
            "PART-HOLD-BACK {} < 2 × PART-TARGET {}",
            p.part_hold_back, p.part_target
        ));
    }
    if p.can_skip_until.is_nan() || p.can_skip_until < 6.0 * p.target_duration as f64 {
        v.push(format!(
            "CAN-SKIP-UNTIL {} < 6 × TARGETDURATION {}",
            p.can_skip_until, p.target_duration
        ));
    }
    if p.skipped == 0 && p.map.is_none() {
        v.push("no EXT-X-MAP".into());
    }
    if p.preload_hint.is_none() {
        v.push("no EXT-X-PRELOAD-HINT".into());
    }
    if p.segments.is_empty() {
        v.push("no segment".into());
    }
    let target = p.part_target + 1e-9;
    for s in &p.segments {
        if s.duration.round() as u64 > p.target_duration {
            v.push(format!(
                "segment {} of {} s rounds above TARGETDURATION {}",
                s.msn, s.duration, p.target_duration
            ));
        }
        if s.pdt_ms.is_none() {
            v.push(format!("segment {} has no PROGRAM-DATE-TIME", s.msn));
        }
        if s.parts.is_empty() {
            continue;
        }
        if !s.parts[0].independent {
            v.push(format!(
                "segment {} does not start with an independent part",
                s.msn
            ));
        }
        let sum: f64 = s.parts.iter().map(|p| p.duration).sum();
        if (sum - s.duration).abs() > 0.002 {
            v.push(format!(
                "segment {}: parts sum to {sum} s, EXTINF says {}",
                s.msn, s.duration
            ));
        }
        let last = s.parts.len() - 1;
        for (i, part) in s.parts.iter().enumerate() {
            check_part(&mut v, part, target, i == last);
        }
    }
    for part in &p.open_parts {
        check_part(&mut v, part, target, false);
    }
    for w in p.segments.windows(2) {
        if let (Some(a), Some(b)) = (w[0].pdt_ms, w[1].pdt_ms) {
            let expected = a + (w[0].duration * 1000.0).round() as i64;
            if (b - expected).abs() > 5 {
                v.push(format!(
                    "PROGRAM-DATE-TIME of segment {} is {b}, {expected} expected",
                    w[1].msn
                ));
            }
        }
    }
    v
}

fn check_part(v: &mut Vec<String>, part: &PartLine, target: f64, last_of_segment: bool) {
    if part.duration > target {
        v.push(format!(
            "{} lasts {} s > PART-TARGET {target}",
            part.uri, part.duration
        ));
    }
    if !part.independent && !last_of_segment && part.duration < 0.85 * target {
        v.push(format!(
            "{} lasts {} s < 85 % of PART-TARGET {target}",
            part.uri, part.duration
        ));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_checks_a_playlist() {
        let text = "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n\
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.61200,CAN-SKIP-UNTIL=12.00000\n\
#EXT-X-PART-INF:PART-TARGET=0.20400\n#EXT-X-MEDIA-SEQUENCE:4\n#EXT-X-MAP:URI=\"a_init.mp4\"\n\
#EXT-X-PROGRAM-DATE-TIME:2026-12-06T10:00:00.000Z\n#EXTINF:2.00000,\na_seg4.mp4\n\
#EXT-X-PROGRAM-DATE-TIME:2026-12-06T10:00:02.000Z\n\
#EXT-X-PART:DURATION=0.20000,URI=\"a_part0.mp4\",INDEPENDENT=YES\n\
#EXT-X-PART:DURATION=0.10000,URI=\"a_part1.mp4\"\n#EXTINF:0.30000,\na_seg5.mp4\n\
#EXT-X-PART:DURATION=0.20000,URI=\"a_part2.mp4\",INDEPENDENT=YES\n\
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"a_part3.mp4\"\n";
        let p = parse(text).unwrap();
        assert_eq!(p.segments.len(), 2);
        assert_eq!(p.segments[1].msn, 5);
        assert_eq!(p.segments[1].pdt_ms, Some(1_796_551_202_000));
        assert_eq!(p.open_parts.len(), 1);
        assert_eq!(p.next_msn(), 6);
        assert_eq!(p.preload_hint.as_deref(), Some("a_part3.mp4"));
        assert_eq!(
            p.part_uris(),
            vec!["a_part0.mp4", "a_part1.mp4", "a_part2.mp4"]
        );
        // The short last part of a segment is fine; the dates are consistent.
        assert_eq!(violations(&p), Vec::<String>::new());
        // A part over the target is not.
        let bad = text.replace(
            "DURATION=0.20000,URI=\"a_part2",
            "DURATION=0.30000,URI=\"a_part2",
        );
        assert_eq!(violations(&parse(&bad).unwrap()).len(), 1);
    }
}
