//! Recording file names from a template (SPEC §4c): `{streamName}`, `{mediaSessionId}`,
//! `{startTime}`, `{endTime}`, `{duration}`, `{audioCodec}`, `{videoCodec}`.
//!
//! A name is one safe path component: anything that could make a folder, climb out of the
//! recordings folder or confuse a shell or a file system (`/`, `\`, `:`, control characters,
//! a leading dot, ...) becomes `_`, and the whole name, extension included, is capped at 255
//! bytes on a character boundary. Times are given as Unix milliseconds; no clock is read.

/// What a template can say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameFields {
    pub stream_name: String,
    pub media_session_id: String,
    /// Unix ms.
    pub start_ms: i64,
    /// Unix ms; `None` while recording.
    pub end_ms: Option<i64>,
    pub audio_codec: String,
    pub video_codec: String,
}

/// Longest file name most file systems take, in bytes.
pub const MAX_NAME_BYTES: usize = 255;
/// Extension of recordings.
pub const EXTENSION: &str = ".mp4";

/// Whether the template names something only known at the end (then the file is renamed
/// when the recording finishes).
pub fn needs_final_rename(template: &str) -> bool {
    template.contains("{endTime}") || template.contains("{duration}")
}

/// The file name for `fields` (extension included). While `end_ms` is `None`, `{endTime}`
/// and `{duration}` render as `recording`.
pub fn render(template: &str, fields: &NameFields) -> String {
    let end = fields.end_ms.map(format_time);
    let duration = fields
        .end_ms
        .map(|end| format!("{}", (end - fields.start_ms).max(0) / 1000));
    let text = template
        .replace("{streamName}", &fields.stream_name)
        .replace("{mediaSessionId}", &fields.media_session_id)
        .replace("{startTime}", &format_time(fields.start_ms))
        .replace("{endTime}", end.as_deref().unwrap_or("recording"))
        .replace("{duration}", duration.as_deref().unwrap_or("recording"))
        .replace("{audioCodec}", &fields.audio_codec)
        .replace("{videoCodec}", &fields.video_codec);
    let mut name = sanitize(&text);
    if name.is_empty() {
        name = "recording".to_string();
    }
    cap(&mut name, MAX_NAME_BYTES - EXTENSION.len());
    name.push_str(EXTENSION);
    name
}

/// One safe path component: every character outside `[A-Za-z0-9._-]` and non-ASCII letters
/// becomes `_`; runs of `_` collapse; no leading dot or dash.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let safe = c.is_alphanumeric() || matches!(c, '.' | '-' | '_');
        let c = if safe && !c.is_control() { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    let trimmed = out.trim_start_matches(['.', '-', '_']);
    let trimmed = trimmed.trim_end_matches(['.', '_']);
    trimmed.replace("..", "_")
}

fn cap(name: &mut String, max: usize) {
    if name.len() <= max {
        return;
    }
    let mut end = max;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name.truncate(end);
}

/// `YYYYMMDD-HHMMSS` in UTC.
pub fn format_time(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> NameFields {
        NameFields {
            stream_name: "cam1".into(),
            media_session_id: "5a072377-73c1".into(),
            start_ms: 1_764_253_200_000, // 2025-11-27 14:20:00 UTC
            end_ms: None,
            audio_codec: "aac".into(),
            video_codec: "h264".into(),
        }
    }

    #[test]
    fn default_template() {
        assert_eq!(
            render("stream-{mediaSessionId}", &fields()),
            "stream-5a072377-73c1.mp4"
        );
    }

    #[test]
    fn every_field() {
        let mut f = fields();
        f.end_ms = Some(f.start_ms + 61_500);
        assert_eq!(
            render(
                "{streamName}_{startTime}_{endTime}_{duration}s_{videoCodec}_{audioCodec}",
                &f
            ),
            "cam1_20251127-142000_20251127-142101_61s_h264_aac.mp4"
        );
        assert!(needs_final_rename("{streamName}-{duration}"));
        assert!(!needs_final_rename("{streamName}-{startTime}"));
        let mut f = fields();
        f.end_ms = None;
        assert_eq!(render("{streamName}-{duration}", &f), "cam1-recording.mp4");
    }

    #[test]
    fn rtmp_names_and_traversal_attempts_become_one_safe_component() {
        for stream in [
            "rtmp://myserver.com/live/myStream?token=a&b=c",
            "../../etc/passwd",
            "..\\..\\windows",
            "/absolute/path",
            "a\u{0}b\nc",
            "..",
            ".hidden",
            "-rf",
        ] {
            let mut f = fields();
            f.stream_name = stream.to_string();
            let name = render("{streamName}", &f);
            assert!(
                !name.contains('/') && !name.contains('\\'),
                "{stream} → {name}"
            );
            assert!(!name.contains(".."), "{stream} → {name}");
            assert!(
                !name.starts_with('.') && !name.starts_with('-'),
                "{stream} → {name}"
            );
            assert!(name.chars().all(|c| !c.is_control()), "{stream} → {name}");
            assert!(
                name.ends_with(".mp4") && name.len() > 4,
                "{stream} → {name}"
            );
        }
        let mut f = fields();
        f.stream_name = "rtmp://myserver.com/live/myStream".into();
        assert_eq!(
            render("{streamName}", &f),
            "rtmp_myserver.com_live_myStream.mp4"
        );
    }

    #[test]
    fn names_are_capped_at_255_bytes_on_a_char_boundary() {
        let mut f = fields();
        f.stream_name = "é".repeat(300);
        let name = render("{streamName}", &f);
        assert!(name.len() <= 255, "{}", name.len());
        assert!(name.ends_with(".mp4"));
    }

    #[test]
    fn calendar() {
        assert_eq!(format_time(0), "19700101-000000");
        assert_eq!(format_time(951_782_400_000), "20000229-000000");
        assert_eq!(format_time(1_767_225_599_000), "20251231-235959");
        assert_eq!(format_time(-1000), "19691231-235959");
    }
}
