//! The AAC source matrix (issue 5, item 2): every AAC flavour a publisher may send reaches a
//! browser as the right sound. Sources: AAC-LC at 48000, 44100, 22050 and 11025 Hz, mono and
//! stereo (ffmpeg's native encoder), and HE-AAC v1 / v2 with explicit and implicit SBR/PS
//! signalling (the FDK encoder at test time, see `aac_vectors`), and one source whose AAC
//! configuration changes mid-stream (HE-AAC v2 48 kHz, then a new sequence header: HE-AAC
//! v1 44.1 kHz; measured after the change, and the capture's log must show both
//! configurations), each a 1 kHz sine at −18 dBFS peak, published to nginx-rtmp, pulled by pullcast (REST), transcoded to Opus and
//! played in one headless Chromium page over WHEP, one viewer per stream, four streams at a
//! time.
//!
//! The page (`browser/audio_driver.js`) analyses what it receives with WebAudio: the spectral
//! peak (fftSize 32768 at 48 kHz, parabolic interpolation), the level, a zero-crossing
//! frequency, quiet windows in the waveform, and the inbound-rtp counters. This test decides:
//! pitch 1000 Hz ± 2 % (wrong resampling ratio, wrong channel interleaving and wrong SBR rate
//! all move it), level within ± 3 dB of the source, no quiet gap, and media arriving at real
//! speed with little concealment (a wrong speed shows as starved or overflowing jitter
//! buffers). It also checks what `find_all` says of each source's audio (profile, rate,
//! channels), which proves the ASC survived ffmpeg `-c copy` and nginx.
//!
//! To look at some rows only: `AAC_MATRIX_ONLY=lc11m,he2imp` (stream names, see
//! [`variants`]; the `switch` row is measured after its change only when batches before it
//! take the time).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use pullcast_integration_tests::aac_vectors::{
    he_aac_sine, publish_flv_track, publish_flv_tracks, HeAacSine, HeProfile, Signalling,
    SINE_AMPLITUDE, SINE_HZ,
};
use pullcast_integration_tests::browser::{exclusive, run_driver};
use pullcast_integration_tests::cpu_load::CpuLoad;
use pullcast_integration_tests::{NginxRtmp, Publisher, Pullcast};
use serde_json::{json, Value};

const DRIVER_TIMEOUT: Duration = Duration::from_secs(90);
const PROCESSED: Duration = Duration::from_secs(15);
/// Pitch tolerance, as a fraction of [`SINE_HZ`].
const PITCH_TOLERANCE: f64 = 0.02;
/// Level tolerance around the source's level, dB (peak and RMS). Measured deviations are
/// under 0.5 dB; a channel lost on the way (a mono signal left in one channel of two) is
/// −6 dB after the analyser's (L + R) / 2 downmix and must not pass.
const LEVEL_TOLERANCE_DB: f64 = 3.0;
/// Longest run of quiet 5 ms windows (20 dB under the snapshot's median) allowed, ms.
const MAX_QUIET_MS: f64 = 10.0;
/// Received media time over wall time during the measurement (Opus packets are 20 ms).
const SPEED_RANGE: (f64, f64) = (0.9, 1.1);
/// Largest share of the played samples that the jitter buffer had to conceal.
const MAX_CONCEALED: f64 = 0.05;
/// Analyser snapshots per stream, one analyser window (32768 samples, 683 ms) apart.
const SNAPSHOTS: usize = 6;
/// Streams played at once. Each WebRTC-viewed capture costs the debug-build server 5–13 %
/// of a core (Opus encode, resampling below 48 kHz, SRTP) and Chromium about 10 %: all twelve
/// at once would take both cores of the test machine and starve the audio paths.
const BATCH_SIZE: usize = 4;

/// Where a source comes from.
enum Source {
    /// ffmpeg's native AAC-LC encoder on a lavfi sine.
    Lc { rate: u32, channels: u32 },
    /// FDK HE-AAC frames in our FLV file, re-published with `-c copy`.
    He(HeAacSine),
    /// `from` for [`SWITCH_AFTER_S`], then a new AAC sequence header and `to`, in one FLV
    /// file (the mid-stream "type 0" packet the commercial product drops).
    Switch { from: HeAacSine, to: HeAacSine },
}

/// Where the AAC configuration of the switching source changes: after the pulls, before the
/// browser measures it (the sources start together; the last batch plays 20–40 s in).
const SWITCH_AFTER_S: f64 = 10.0;

/// One row of the matrix.
struct Variant {
    /// Stream name on nginx and in pullcast (`live/<name>`, `/whep/<name>`).
    name: &'static str,
    /// What the failure messages and the table call it.
    label: &'static str,
    source: Source,
    /// What `find_all` must say of the audio track: profile, sampleRate, channels.
    expect: (&'static str, u64, u64),
}

impl Variant {
    /// Peak amplitude of the source's sine in each channel. ffmpeg's `sine` is mono, and
    /// `-ac 2` mixes it into both channels as a front centre at −3 dB; the FDK vectors put
    /// the same sine at full [`SINE_AMPLITUDE`] in each channel. (The analyser's stereo
    /// downmix, (L + R) / 2, keeps the per-channel level.)
    fn source_peak(&self) -> f64 {
        match self.source {
            Source::Lc { channels: 2, .. } => SINE_AMPLITUDE * std::f64::consts::FRAC_1_SQRT_2,
            _ => SINE_AMPLITUDE,
        }
    }
}

fn he(profile: HeProfile, signalling: Signalling, rate: u32, bitrate: u32) -> Source {
    Source::He(HeAacSine {
        profile,
        signalling,
        sample_rate: rate,
        channels: 2,
        bitrate,
        // Longer than the test runs, even slowed down (normally 25–30 s): the loop point
        // (encoder priming) is never heard.
        seconds: 120.0,
    })
}

fn only_he(source: Source) -> HeAacSine {
    match source {
        Source::He(spec) => spec,
        _ => unreachable!("he() makes Source::He"),
    }
}

fn variants() -> Vec<Variant> {
    let lc = |name, label, rate, channels| Variant {
        name,
        label,
        source: Source::Lc { rate, channels },
        expect: ("AAC-LC", u64::from(rate), u64::from(channels)),
    };
    vec![
        lc("lc48m", "AAC-LC 48000 Hz mono", 48_000, 1),
        lc("lc48s", "AAC-LC 48000 Hz stereo", 48_000, 2),
        lc("lc44m", "AAC-LC 44100 Hz mono", 44_100, 1),
        lc("lc44s", "AAC-LC 44100 Hz stereo", 44_100, 2),
        lc("lc22m", "AAC-LC 22050 Hz mono", 22_050, 1),
        lc("lc22s", "AAC-LC 22050 Hz stereo", 22_050, 2),
        lc("lc11m", "AAC-LC 11025 Hz mono", 11_025, 1),
        lc("lc11s", "AAC-LC 11025 Hz stereo", 11_025, 2),
        Variant {
            name: "he1",
            label: "HE-AAC v1 44100 Hz stereo (explicit SBR)",
            source: he(HeProfile::V1, Signalling::Explicit, 44_100, 64_000),
            expect: ("HE-AAC", 44_100, 2),
        },
        Variant {
            name: "he2",
            label: "HE-AAC v2 48000 Hz stereo (explicit SBR+PS)",
            source: he(HeProfile::V2, Signalling::Explicit, 48_000, 32_000),
            expect: ("HE-AACv2", 48_000, 2),
        },
        // Implicit signalling: the ASC says AAC-LC at the core rate, so that is what
        // find_all can report; the decoder finds SBR (and PS) in the frames.
        Variant {
            name: "he1imp",
            label: "HE-AAC v1 48000 Hz stereo (implicit: ASC says AAC-LC 24000 Hz stereo)",
            source: he(HeProfile::V1, Signalling::Implicit, 48_000, 64_000),
            expect: ("AAC-LC", 24_000, 2),
        },
        Variant {
            name: "he2imp",
            label: "HE-AAC v2 44100 Hz stereo (implicit: ASC says AAC-LC 22050 Hz mono)",
            source: he(HeProfile::V2, Signalling::Implicit, 44_100, 32_000),
            expect: ("AAC-LC", 22_050, 1),
        },
        // A new sequence header mid-stream: measured, and reported, after the change.
        Variant {
            name: "switch",
            label: "HE-AAC v2 48000 Hz, then a new sequence header: HE-AAC v1 44100 Hz",
            source: Source::Switch {
                from: HeAacSine {
                    seconds: SWITCH_AFTER_S,
                    ..only_he(he(HeProfile::V2, Signalling::Explicit, 48_000, 32_000))
                },
                to: only_he(he(HeProfile::V1, Signalling::Explicit, 44_100, 64_000)),
            },
            expect: ("HE-AAC", 44_100, 2),
        },
    ]
}

/// A publisher of either kind, kept alive for the test.
enum Running {
    Ffmpeg(Publisher),
    File(Publisher),
}

impl Running {
    fn log_tail(&self) -> String {
        match self {
            Running::Ffmpeg(p) => p.log_tail(),
            Running::File(p) => p.log_tail(),
        }
    }
}

fn start_source(nginx: &NginxRtmp, v: &Variant) -> (Running, String) {
    match &v.source {
        Source::Lc { rate, channels } => {
            let builder = Publisher::builder().audio(*rate, *channels).audio_only();
            let (p, uri) = nginx.publish(v.name, builder);
            (Running::Ffmpeg(p), uri)
        }
        Source::He(spec) => {
            let track = he_aac_sine(spec)
                .unwrap_or_else(|e| panic!("{}: cannot make the test vector: {e}", v.label));
            eprintln!(
                "[aac] {}: ASC {:02x?}, {} FDK frames of {} samples, encoder delay {} samples",
                v.label,
                track.asc,
                track.frames.len(),
                track.frame_samples,
                track.delay_samples
            );
            let (p, uri) = publish_flv_track(nginx, v.name, &track);
            (Running::File(p), uri)
        }
        Source::Switch { from, to } => {
            let make = |spec| {
                he_aac_sine(spec)
                    .unwrap_or_else(|e| panic!("{}: cannot make the test vector: {e}", v.label))
            };
            let tracks = [make(from), make(to)];
            eprintln!(
                "[aac] {}: ASC {:02x?} for {} ms, then ASC {:02x?}",
                v.label,
                tracks[0].asc,
                tracks[0].duration_ms(),
                tracks[1].asc
            );
            let (p, uri) = publish_flv_tracks(nginx, v.name, &tracks);
            (Running::File(p), uri)
        }
    }
}

fn db(x: f64) -> f64 {
    20.0 * x.log10()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs.get(xs.len() / 2).copied().unwrap_or(f64::NAN)
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// What one stream measured, summarised for the table, plus its failures.
struct Verdict {
    line: String,
    failures: Vec<String>,
}

fn judge(v: &Variant, capture: &Value, s: &Value) -> Verdict {
    let mut failures = Vec::new();
    let mut fail = |what: String| failures.push(format!("{}: {what}", v.label));
    let audio = &capture["audio"];
    let (profile, rate, channels) = v.expect;
    if audio["profile"] != profile || audio["sampleRate"] != rate || audio["channels"] != channels {
        fail(format!(
            "find_all audio is {audio}, expected profile {profile}, sampleRate {rate}, channels {channels}"
        ));
    }
    if s["postStatus"] != 201 || s["connectedMs"].as_u64().is_none() {
        fail(format!(
            "WHEP viewer did not connect: POST {} errors {} body {}",
            s["postStatus"], s["errors"], s["postBody"]
        ));
    }
    if s["errors"].as_array().is_some_and(|e| !e.is_empty()) {
        fail(format!("page errors {}", s["errors"]));
    }
    let snaps = s["snapshots"].as_array().cloned().unwrap_or_default();
    if snaps.len() != SNAPSHOTS {
        fail(format!("{} analyser snapshots of {SNAPSHOTS}", snaps.len()));
    }
    let want_peak = db(v.source_peak());
    let want_rms = db(v.source_peak() * std::f64::consts::FRAC_1_SQRT_2);
    for (i, snap) in snaps.iter().enumerate() {
        let peak_hz = f(&snap["peakHz"]);
        let (peak_db, rms_db) = (f(&snap["peakDbfs"]), f(&snap["rmsDbfs"]));
        let quiet = f(&snap["longestQuietMs"]);
        let pitch_ok = (peak_hz - SINE_HZ).abs() <= SINE_HZ * PITCH_TOLERANCE;
        let level_ok = (peak_db - want_peak).abs() <= LEVEL_TOLERANCE_DB
            && (rms_db - want_rms).abs() <= LEVEL_TOLERANCE_DB;
        if !pitch_ok || !level_ok || quiet.is_nan() || quiet > MAX_QUIET_MS {
            fail(format!(
                "snapshot {i}: peak {peak_hz:.1} Hz (want {SINE_HZ} ± {:.0}), zero crossings {} Hz, \
                 level {peak_db:.1} dBFS peak / {rms_db:.1} dBFS RMS (source {want_peak:.1} / \
                 {want_rms:.1} ± {LEVEL_TOLERANCE_DB}), tone fraction {}, strongest other bin {} Hz at {} dB, \
                 longest quiet {quiet} ms (max {MAX_QUIET_MS}), quietest 5 ms window {} dB under the median",
                SINE_HZ * PITCH_TOLERANCE,
                snap["zeroCrossHz"],
                snap["toneFraction"],
                snap["spurHz"],
                snap["spurDb"],
                snap["minWindowDb"],
            ));
        }
    }
    let (a, b) = (&s["statsStart"], &s["statsEnd"]);
    let wall_ms = f(&b["wall"]) - f(&a["wall"]);
    let packets = f(&b["packetsReceived"]) - f(&a["packetsReceived"]);
    let speed = packets * 20.0 / wall_ms;
    let played = f(&b["totalSamplesReceived"]) - f(&a["totalSamplesReceived"]);
    let concealed = (f(&b["concealedSamples"]) - f(&a["concealedSamples"])) / played.max(1.0);
    let accel = f(&b["removedSamplesForAcceleration"]) - f(&a["removedSamplesForAcceleration"]);
    let decel = f(&b["insertedSamplesForDeceleration"]) - f(&a["insertedSamplesForDeceleration"]);
    if !(SPEED_RANGE.0..=SPEED_RANGE.1).contains(&speed)
        || concealed.is_nan()
        || concealed > MAX_CONCEALED
    {
        fail(format!(
            "media speed {speed:.3} (Opus packets × 20 ms / wall time over {wall_ms:.0} ms; want \
             {}..{}), concealed {:.1} % of {played} played samples (max {:.0} %), accelerate \
             removed {accel}, decelerate inserted {decel}",
            SPEED_RANGE.0,
            SPEED_RANGE.1,
            concealed * 100.0,
            MAX_CONCEALED * 100.0
        ));
    }
    let col = |key: &str| median(snaps.iter().map(|x| f(&x[key])).collect());
    let range = |key: &str| {
        let xs: Vec<f64> = snaps.iter().map(|x| f(&x[key])).collect();
        let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!("{lo:.2}..{hi:.2}")
    };
    let channel = |c: usize| median(snaps.iter().map(|x| f(&x["channelRmsDbfs"][c])).collect());
    let line = format!(
        "{:<70} | {:<8} {:>5} {} | peak {:>7.2} Hz ({}) zc {:>7.1} Hz | {:>5.1} dBFS pk {:>5.1} rms \
         (src {:>5.1} / {:>5.1}; ch {:.1} / {:.1}) | tone {:.3} spur {:>5.1} dB | quiet {:>2} ms | \
         speed {speed:.3} concealed {:.2} %",
        v.label,
        audio["profile"].as_str().unwrap_or("?"),
        audio["sampleRate"],
        audio["channels"],
        col("peakHz"),
        range("peakHz"),
        col("zeroCrossHz"),
        col("peakDbfs"),
        col("rmsDbfs"),
        want_peak,
        want_rms,
        channel(0),
        channel(1),
        col("toneFraction"),
        col("spurDb"),
        snaps
            .iter()
            .map(|x| f(&x["longestQuietMs"]))
            .fold(0.0, f64::max),
        concealed * 100.0,
    );
    Verdict { line, failures }
}

/// Every AAC flavour of the matrix plays in Chromium as a 1 kHz sine at the source's level,
/// without gaps, at real speed; `find_all` reports each source's AAC profile, rate and
/// channels as its AudioSpecificConfig says.
#[test]
fn aac_matrix_plays_in_chromium() {
    let _browser = exclusive();
    let nginx = NginxRtmp::start();
    let pc = Pullcast::start(&[]);
    let started = Instant::now();
    let matrix: Vec<Variant> = match std::env::var("AAC_MATRIX_ONLY") {
        Ok(only) if !only.trim().is_empty() => {
            let names: Vec<&str> = only.split(',').map(str::trim).collect();
            eprintln!("[aac] AAC_MATRIX_ONLY={only}: running only these variants");
            variants()
                .into_iter()
                .filter(|v| names.contains(&v.name))
                .collect()
        }
        _ => variants(),
    };
    assert!(!matrix.is_empty(), "AAC_MATRIX_ONLY names no variant");

    let sources: Vec<(Running, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = matrix
            .iter()
            .map(|v| {
                let nginx = &nginx;
                scope.spawn(move || start_source(nginx, v))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    eprintln!(
        "[aac] {} sources publishing after {:.1} s",
        sources.len(),
        started.elapsed().as_secs_f64()
    );

    for (v, (_, uri)) in matrix.iter().zip(&sources) {
        let (status, body) = pc.pull(&json!({ "uri": uri, "localStreamName": v.name }));
        assert_eq!(
            status,
            200,
            "{}: pull {uri}: {body}\n{}",
            v.label,
            pc.log_tail()
        );
    }
    let captures: Vec<Value> = matrix
        .iter()
        .zip(&sources)
        .map(|(v, (running, uri))| {
            let mut last = None;
            let found = pullcast_integration_tests::wait::poll_until(
                PROCESSED,
                Duration::from_millis(100),
                || {
                    let c = pc.capture(uri);
                    let done = c.as_ref().is_some_and(|c| {
                        c["status"] == "PROCESSED_REMOTE" && c["audio"]["profile"].is_string()
                    });
                    last = c.clone();
                    done.then_some(c).flatten()
                },
            );
            found.unwrap_or_else(|| {
                panic!(
                    "{}: capture of {uri} did not reach PROCESSED_REMOTE with audio within \
                     {PROCESSED:?}; last seen {last:?}\n{}\n{}",
                    v.label,
                    running.log_tail(),
                    pc.log_tail()
                )
            })
        })
        .collect();
    eprintln!(
        "[aac] {} captures processed after {:.1} s",
        captures.len(),
        started.elapsed().as_secs_f64()
    );

    let spec = json!({
        "pageUrl": format!("{}/", pc.http_root()),
        "streams": matrix
            .iter()
            .map(|v| json!({ "label": v.label, "whepPath": format!("/whep/{}", v.name) }))
            .collect::<Vec<_>>(),
        "sampleRate": 48_000,
        "fftSize": 32_768,
        "warmupMs": 2_000,
        "batchSize": BATCH_SIZE,
        "snapshots": SNAPSHOTS,
        "windowMs": 5,
        "quietRatio": 0.1,
        "timeoutMs": 80_000,
    });
    let load = CpuLoad::start(pc.pid());
    let result = run_driver("audio_driver.js", &spec, DRIVER_TIMEOUT);
    let load = load.report();
    let context = &result["context"];
    eprintln!(
        "[aac] browser {} AudioContext {context}; during the browser run: {load}; matrix done \
         after {:.1} s",
        result["chromium"],
        started.elapsed().as_secs_f64()
    );

    let mut failures = Vec::new();
    if context["sampleRate"] != 48_000 {
        failures.push(format!(
            "the page's AudioContext does not run at 48000 Hz: {context}"
        ));
    }
    for b in context["batches"].as_array().cloned().unwrap_or_default() {
        // The analysers only see what the audio thread rendered: it must keep real time.
        let (measured, advanced) = (f(&b["measuredMs"]), f(&b["contextAdvancedMs"]));
        if b["state"] != "running" || advanced.is_nan() || advanced < 0.9 * measured {
            failures.push(format!(
                "the page's AudioContext did not run in real time in batch {b}: \
                 currentTime advanced {advanced} ms in {measured} ms"
            ));
        }
    }
    let streams = result["streams"].as_array().cloned().unwrap_or_default();
    if let Some(first) = streams.first() {
        eprintln!(
            "[aac] the WHEP answer's audio lines (first stream): {}",
            first["answerAudio"]
        );
    }
    // What find_all says after the measurement (the switching source has changed by then).
    let finals: Vec<Value> = matrix
        .iter()
        .zip(&sources)
        .zip(&captures)
        .map(|((_, (_, uri)), first)| pc.capture(uri).unwrap_or_else(|| first.clone()))
        .collect();
    let log = std::fs::read_to_string(pc.dir().join("pullcast.log")).unwrap_or_default();
    for v in &matrix {
        if let Source::Switch { .. } = v.source {
            // The capture saw both configurations, the new one mid-stream.
            let seen: Vec<&str> = log
                .lines()
                .filter(|l| l.contains(&format!("capture {} (", v.name)))
                .filter_map(|l| l.split_once("codec configuration ").map(|(_, c)| c))
                .collect();
            if seen != ["HE-AACv2 48000 Hz 2 ch", "HE-AAC 44100 Hz 2 ch"] {
                failures.push(format!(
                    "{}: the capture's codec configurations were {seen:?}, expected HE-AACv2 \
                     48000 Hz 2 ch, then HE-AAC 44100 Hz 2 ch",
                    v.label
                ));
            }
        }
    }
    let mut table = Vec::new();
    for (i, (v, capture)) in matrix.iter().zip(&finals).enumerate() {
        let s = streams.get(i).cloned().unwrap_or(Value::Null);
        let verdict = judge(v, capture, &s);
        table.push(verdict.line);
        failures.extend(verdict.failures);
    }
    eprintln!("[aac] matrix:\n{}", table.join("\n"));
    for (v, (running, _)) in matrix.iter().zip(&sources) {
        if failures.iter().any(|f| f.starts_with(v.label)) {
            eprintln!("[aac] {}:\n{}", v.label, running.log_tail());
        }
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}\n\nmatrix:\n{}\nduring the browser run: {load}\n{}",
        failures.len(),
        failures.join("\n"),
        table.join("\n"),
        pc.log_tail()
    );
}
