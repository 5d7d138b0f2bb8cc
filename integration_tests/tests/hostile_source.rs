//! pullcast pulling from a hostile RTMP server of our own ([`HostileRtmpServer`]), one
//! attack per test: garbage, an endless handshake, a huge chunk size, interleaved partial
//! messages, lying lengths, AMF bombs, a parameter-set flood, codec flapping, a slowloris
//! trickle, an aggregate bomb, timestamp jumps. For each: the capture ends FAILED or
//! RECONNECTING with a reason that names the problem, the process lives and its control
//! plane answers (find_all, pull, terminate), and its resident memory — sampled from
//! `/proc` every 50 ms, and its high-water mark — stays under baseline + [`ALLOWANCE`].
//! One more test keeps a good capture (ffmpeg → nginx-rtmp → pullcast) playing in Chromium
//! while every attack runs at once.
//!
//! Attacks run one at a time in this test process (clean memory figures on a two-core
//! machine). A memory guard stops an attack whose victim passes baseline + 512 MiB and
//! kills the victim past baseline + 2 GiB, so a server that does not defend itself fails the
//! test without taking the machine down.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pullcast_integration_tests::browser::{exclusive, play_on_player_page};
use pullcast_integration_tests::hostile_rtmp::Scenario;
use pullcast_integration_tests::http::{agent, parse_body, send};
use pullcast_integration_tests::memory::{resident, Guard, MemoryReport, MemorySampler, MIB};
use pullcast_integration_tests::probe::{probe_streams, stream_of};
use pullcast_integration_tests::process::is_alive;
use pullcast_integration_tests::{HostileRtmpServer, NginxRtmp, Publisher, Pullcast};
use serde_json::{json, Value};

/// How much resident memory one hostile capture may add to the server: 64 MiB.
///
/// Why: the largest RTMP message is 16 MiB (its 24-bit length). A server that bounds its
/// buffers holds at most a few copies of one at a time — the chunk decoder's partial
/// message, the assembled message, what a parser makes of it (an AVC configuration, an
/// AMF0 value tree) — about 3 × 16 = 48 MiB; the rest (16 MiB) is room for a capture's own
/// working set, which for a healthy 320x180 capture measures a few MiB
/// (`a_healthy_capture_of_the_hostile_servers_valid_stream_costs_little_memory` prints it)
/// and for a healthy 720p one about a second of video. Anything above means something a
/// peer controls grows without bound.
const ALLOWANCE: u64 = 64 * MIB;
/// Past baseline + this the attack is stopped (the test fails on [`ALLOWANCE`] anyway).
const GUARD: u64 = 512 * MIB;
/// Past baseline + this the server is killed, to protect the machine.
const HARD_LIMIT: u64 = 2048 * MIB;
/// Resident memory is read this often.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// The slowest a find_all may answer while an attack runs.
const CONTROL_PLANE_LIMIT: Duration = Duration::from_secs(2);
/// How long an attack may take to end the capture's first connection. The slowest script
/// ends within 12 s (a second of media, a 10 s flood); the rest is room for a busy machine.
const ATTACK_DEADLINE: Duration = Duration::from_secs(60);
/// Most recording files a codec-flapping source (80 switches of both codecs in 8 s) may
/// make: a source changing its configuration now and then (a new encoder setting, a
/// publisher restart) is normal and gets a new file; one file per switch is a disk-filling
/// machine.
const MAX_FILES_WHILE_FLAPPING: usize = 10;

/// Shorter watchdogs than the defaults, so a capture that waits for a silent or trickling
/// source gives up within seconds; retries start within half a second.
const WATCHDOGS: [(&str, &str); 5] = [
    ("PULLCAST_CAPTURE__HANDSHAKE_TIMEOUT_MS", "3000"),
    ("PULLCAST_CAPTURE__PLAY_TIMEOUT_MS", "3000"),
    ("PULLCAST_CAPTURE__MEDIA_TIMEOUT_MS", "3000"),
    ("PULLCAST_CAPTURE__STALL_TIMEOUT_MS", "3000"),
    ("PULLCAST_CAPTURE__RECONNECT_INITIAL_MS", "500"),
];

/// One attack at a time in this test process.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Words of which the reason a capture ends with must contain one (lower case): what the
/// attack is, or the symptom it left: a protocol error, a limit the message went over (a
/// bounded server refuses a 16 MiB command or video message by its size), a memory
/// budget, a stall, or the source closing after its script when the server took the
/// attack in its stride.
fn reason_words(scenario: Scenario) -> &'static [&'static str] {
    match scenario {
        Scenario::Valid => &[],
        Scenario::GarbageInsteadOfHandshake | Scenario::EndlessHandshake => &["handshake"],
        Scenario::GarbageAfterHandshake => &["protocol", "chunk", "limit", "did not answer", "amf"],
        Scenario::HugeChunkSize => &["chunk size", "limit", "stalled", "no media"],
        Scenario::InterleavedPartialMessages => &[
            "chunk", "partial", "limit", "stalled", "no media", "memory", "budget",
        ],
        Scenario::LyingMessageLength => &["protocol", "chunk"],
        Scenario::AmfDeepNesting => &["connect", "amf", "nest", "limit"],
        Scenario::AmfHugeCounts => &[
            "closed the connection",
            "amf",
            "metadata",
            "limit",
            "memory",
            "budget",
        ],
        Scenario::AmfGiantStrings => &["connect", "amf", "string", "limit"],
        // Tiny keyframes as fast as TCP takes them: read no faster than
        // capture.max_media_messages_per_second, then dropped as a flood.
        Scenario::ParameterSetFloodUnderMessageCap | Scenario::KeyframeFloodAfterValidSets => {
            &["flood"]
        }
        Scenario::ParameterSetFlood => &[
            "parameter set",
            "sps",
            "pps",
            "avc",
            "configuration",
            "limit",
            "memory",
            "budget",
            "closed the connection",
        ],
        Scenario::CodecFlapping => &["closed the connection", "codec", "configuration", "record"],
        Scenario::Slowloris => &["stalled", "no media"],
        Scenario::AggregateBomb => &[
            "aggregate",
            "limit",
            "memory",
            "budget",
            "closed the connection",
        ],
        Scenario::TimestampJumps => &["closed the connection", "timestamp"],
    }
}

/// Milliseconds since the epoch (the browser driver's clock).
fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The server's resident memory once it has settled: two readings 200 ms apart within
/// 1 MiB of each other (at most 3 s).
fn settled_rss(pid: u32) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut last = resident(pid).map_or(0, |r| r.rss);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = resident(pid).map_or(0, |r| r.rss);
        if now.abs_diff(last) < MIB || Instant::now() >= deadline {
            return now;
        }
        last = now;
    }
}

/// The REST API, without panicking on transport errors (the server may be dead), timed.
struct ControlPlane {
    base: String,
    agent: ureq::Agent,
    slowest: Duration,
    errors: Vec<String>,
}

impl ControlPlane {
    fn new(pc: &Pullcast) -> Self {
        ControlPlane {
            base: pc.http_base(),
            agent: agent(),
            slowest: Duration::ZERO,
            errors: Vec::new(),
        }
    }

    fn post(&mut self, path: &str, body: &Value) -> Option<(u16, Value)> {
        let started = Instant::now();
        let result = send(
            &self.agent,
            "POST",
            &format!("{}{path}", self.base),
            Some(body.to_string().as_bytes()),
        );
        self.slowest = self.slowest.max(started.elapsed());
        match result {
            Ok((status, text)) => Some((status, parse_body(&text))),
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }

    /// The captures `find_all` lists (empty on 404), or `None` without an answer.
    fn captures(&mut self) -> Option<Vec<Value>> {
        match self.post("/pull/rtmp/find_all", &json!({}))? {
            (200, Value::Array(list)) => Some(list),
            (404, _) => Some(Vec::new()),
            (status, body) => {
                self.errors
                    .push(format!("find_all answered {status} {body}"));
                None
            }
        }
    }
}

/// The first failure a capture's history shows (FAILED or RECONNECTING, with its reason).
fn first_failure(capture: &Value) -> Option<(String, String)> {
    capture["history"].as_array()?.iter().find_map(|h| {
        let status = h["status"].as_str()?;
        (status == "FAILED" || status == "RECONNECTING").then(|| {
            (
                status.to_string(),
                h["reason"].as_str().unwrap_or("").to_string(),
            )
        })
    })
}

/// What one attack did.
struct Outcome {
    scenario: Scenario,
    /// Status and reason of the capture's first failure, if it came.
    ended: Option<(String, String)>,
    /// Pull → first failure.
    took: Option<Duration>,
    last_seen: Option<Value>,
    alive: bool,
    baseline: u64,
    memory: MemoryReport,
    control_plane_ok: bool,
    slowest_answer: Duration,
    control_errors: Vec<String>,
    connections: usize,
    played: usize,
    attacked: usize,
    bytes_sent: u64,
    hostile_log: Vec<String>,
    record_files: usize,
}

impl Outcome {
    fn summary(&self) -> String {
        let (status, reason) = self
            .ended
            .clone()
            .unwrap_or_else(|| ("(no failure seen)".to_string(), String::new()));
        let killed = self
            .memory
            .killed
            .map(|(rss, at)| {
                format!(
                    ", KILLED at {} MiB after {:.1} s",
                    rss / MIB,
                    at.as_secs_f64()
                )
            })
            .unwrap_or_default();
        let guard = self
            .memory
            .raised
            .map(|(rss, at)| {
                format!(
                    ", attack ABORTED by the memory guard at {} MiB after {:.1} s",
                    rss / MIB,
                    at.as_secs_f64()
                )
            })
            .unwrap_or_default();
        format!(
            "[hostile] {}: {status} \"{reason}\" after {}; peak RSS {} MiB (baseline {} MiB, +{} MiB, bound +{} MiB; sampled peak {} MiB, VmHWM {} MiB, {} samples){guard}{killed}; alive {}; slowest REST answer {} ms; hostile: {} connections, {} played, {} attacked, {:.1} MiB sent; {} record files\n{}",
            self.scenario.name(),
            self.took
                .map_or("-".to_string(), |t| format!("{:.1} s", t.as_secs_f64())),
            self.memory.peak() / MIB,
            self.baseline / MIB,
            self.memory.peak().saturating_sub(self.baseline) / MIB,
            ALLOWANCE / MIB,
            self.memory.peak_rss / MIB,
            self.memory.hwm / MIB,
            self.memory.samples,
            self.alive,
            self.slowest_answer.as_millis(),
            self.connections,
            self.played,
            self.attacked,
            self.bytes_sent as f64 / MIB as f64,
            self.record_files,
            self.hostile_log
                .iter()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n"),
        )
    }
}

/// The `.mp4` files in the server's records folder.
fn record_files(pc: &Pullcast) -> usize {
    std::fs::read_dir(pc.dir().join("records"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".mp4"))
                .count()
        })
        .unwrap_or(0)
}

/// Runs `scenario` against a fresh server: pull, wait for the capture's first failure,
/// then check the control plane (find_all, a pull, terminates) while memory is sampled.
fn run_attack(scenario: Scenario, record: bool) -> (Outcome, Pullcast) {
    let mut pc = Pullcast::start(&WATCHDOGS);
    let hostile = HostileRtmpServer::start(scenario);
    let pid = pc.pid();
    let mut api = ControlPlane::new(&pc);
    api.captures();
    let baseline = settled_rss(pid);
    let sampler = MemorySampler::start(
        pid,
        SAMPLE_EVERY,
        Some(Guard {
            raise_above: baseline + GUARD,
            raise: vec![hostile.abort_flag()],
            kill_above: baseline + HARD_LIMIT,
        }),
    );
    let uri = hostile.url(scenario.name());
    let pulled_at = Instant::now();
    let pulled = api.post("/pull/rtmp/pull", &json!({ "uri": uri, "record": record }));
    assert!(
        matches!(pulled, Some((200, _))),
        "pull {uri}: {pulled:?}\n{}",
        pc.log_tail()
    );

    let mut ended = None;
    let mut took = None;
    let mut last_seen = None;
    while pulled_at.elapsed() < ATTACK_DEADLINE {
        if !pc.is_alive() {
            break;
        }
        if let Some(list) = api.captures() {
            last_seen = list.into_iter().find(|c| c["uri"] == uri);
            if let Some(failure) = last_seen.as_ref().and_then(first_failure) {
                ended = Some(failure);
                took = Some(pulled_at.elapsed());
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    // The control plane, right after the attack: another pull (to a closed port), find_all,
    // terminates.
    let mut control_plane_ok = pc.is_alive();
    if control_plane_ok {
        let other = format!(
            "rtmp://127.0.0.1:{}/app/other",
            pullcast_integration_tests::free_port()
        );
        let checks = [
            ("/pull/rtmp/pull", json!({ "uri": other })),
            ("/pull/rtmp/terminate", json!({ "uri": other })),
            ("/pull/rtmp/terminate", json!({ "uri": uri })),
        ];
        for (path, body) in checks {
            match api.post(path, &body) {
                Some((200, _)) => {}
                answer => {
                    api.errors.push(format!("{path} {body}: {answer:?}"));
                    control_plane_ok = false;
                }
            }
        }
        let gone = pullcast_integration_tests::wait::poll_until(
            Duration::from_secs(10),
            Duration::from_millis(100),
            || {
                api.captures()
                    .filter(|list| list.iter().all(|c| c["uri"] != uri))
                    .map(|_| ())
            },
        );
        if gone.is_none() {
            api.errors
                .push("the terminated capture is still listed after 10 s".to_string());
            control_plane_ok = false;
        }
    }
    hostile.abort();
    let memory = sampler.finish();
    let outcome = Outcome {
        scenario,
        ended,
        took,
        last_seen,
        alive: pc.is_alive(),
        baseline,
        memory,
        control_plane_ok,
        slowest_answer: api.slowest,
        control_errors: api.errors,
        connections: hostile.accepted(),
        played: hostile.played(),
        attacked: hostile.attacked(),
        bytes_sent: hostile.bytes_sent(),
        hostile_log: hostile.log(),
        record_files: record_files(&pc),
    };
    (outcome, pc)
}

/// Runs `scenario` and asserts what every attack must leave: a failure with a reason that
/// names the problem, a live server whose control plane answered, and bounded memory.
/// Returns the outcome for scenario-specific checks.
fn attack(scenario: Scenario, record: bool) -> (Outcome, Pullcast) {
    let _serial = serial();
    let (outcome, pc) = run_attack(scenario, record);
    eprintln!("{}", outcome.summary());
    let context = || {
        format!(
            "{}\nlast seen: {}\ncontrol plane errors: {:?}\n{}",
            outcome.summary(),
            outcome
                .last_seen
                .as_ref()
                .map_or("(not listed)".to_string(), Value::to_string),
            outcome.control_errors,
            pc.log_tail()
        )
    };
    assert!(
        outcome.alive && outcome.memory.killed.is_none() && outcome.memory.gone.is_none(),
        "the server died (or was killed for its memory)\n{}",
        context()
    );
    // The attack was delivered: a capture that failed before it would prove nothing.
    assert!(
        outcome.attacked >= 1,
        "the attack never started\n{}",
        context()
    );
    if scenario.attacks_after_play() {
        assert!(
            outcome.played >= 1,
            "the session never got to play\n{}",
            context()
        );
    }
    // Memory first: an attack stopped by the memory guard ends its capture with the
    // guard's doing (the connection closed), not the server's.
    assert!(
        outcome.memory.peak() <= outcome.baseline + ALLOWANCE,
        "resident memory reached {} MiB, {} MiB over the baseline (bound: {} MiB over)\n{}",
        outcome.memory.peak() / MIB,
        outcome.memory.peak().saturating_sub(outcome.baseline) / MIB,
        ALLOWANCE / MIB,
        context()
    );
    let (status, reason) = outcome.ended.clone().unwrap_or_else(|| {
        panic!(
            "the capture never failed within {ATTACK_DEADLINE:?}\n{}",
            context()
        )
    });
    assert!(
        status == "FAILED" || status == "RECONNECTING",
        "{status}\n{}",
        context()
    );
    let words = reason_words(scenario);
    let lower = reason.to_lowercase();
    assert!(
        words.iter().any(|w| lower.contains(w)),
        "the reason {reason:?} names none of {words:?}\n{}",
        context()
    );
    assert!(
        outcome.control_plane_ok && outcome.control_errors.is_empty(),
        "the control plane did not answer\n{}",
        context()
    );
    assert!(
        outcome.slowest_answer <= CONTROL_PLANE_LIMIT,
        "a REST answer took {} ms (limit {} ms)\n{}",
        outcome.slowest_answer.as_millis(),
        CONTROL_PLANE_LIMIT.as_millis(),
        context()
    );
    (outcome, pc)
}

#[test]
fn hostile_garbage_instead_of_a_handshake() {
    attack(Scenario::GarbageInsteadOfHandshake, false);
}

#[test]
fn hostile_garbage_after_the_handshake() {
    attack(Scenario::GarbageAfterHandshake, false);
}

#[test]
fn hostile_endless_handshake() {
    attack(Scenario::EndlessHandshake, false);
}

#[test]
fn hostile_huge_chunk_size() {
    attack(Scenario::HugeChunkSize, false);
}

#[test]
fn hostile_interleaved_partial_messages() {
    attack(Scenario::InterleavedPartialMessages, false);
}

#[test]
fn hostile_lying_message_length() {
    attack(Scenario::LyingMessageLength, false);
}

#[test]
fn hostile_amf_deep_nesting() {
    attack(Scenario::AmfDeepNesting, false);
}

#[test]
fn hostile_amf_huge_counts() {
    attack(Scenario::AmfHugeCounts, false);
}

#[test]
fn hostile_amf_giant_strings() {
    attack(Scenario::AmfGiantStrings, false);
}

#[test]
fn hostile_parameter_set_flood() {
    attack(Scenario::ParameterSetFlood, false);
}

#[test]
fn hostile_parameter_set_flood_under_the_message_cap() {
    attack(Scenario::ParameterSetFloodUnderMessageCap, false);
}

#[test]
fn hostile_keyframe_flood_after_valid_parameter_sets() {
    attack(Scenario::KeyframeFloodAfterValidSets, false);
}

#[test]
fn hostile_codec_flapping_while_recording() {
    let (outcome, _pc) = attack(Scenario::CodecFlapping, true);
    assert!(
        outcome.record_files <= MAX_FILES_WHILE_FLAPPING,
        "{} recording files for a source flapping between two configurations (limit {MAX_FILES_WHILE_FLAPPING})\n{}",
        outcome.record_files,
        outcome.summary()
    );
}

#[test]
fn hostile_slowloris() {
    attack(Scenario::Slowloris, false);
}

#[test]
fn hostile_aggregate_bomb() {
    attack(Scenario::AggregateBomb, false);
}

/// Longest a recording of [`Scenario::TimestampJumps`] may say it lasts: the source sent
/// 8 s of media; timestamps that jump by hours and days must not make a file of days.
const MAX_RECORDED_SECONDS: f64 = 60.0;

#[test]
fn hostile_timestamp_jumps_while_recording() {
    let (outcome, pc) = attack(Scenario::TimestampJumps, true);
    assert!(
        outcome.record_files >= 1,
        "nothing was recorded\n{}",
        outcome.summary()
    );
    // The files are complete once ffprobe reads them (the recorder finishes after terminate).
    let durations = pullcast_integration_tests::wait::poll_until(
        Duration::from_secs(10),
        Duration::from_millis(200),
        || recording_durations(&pc).ok(),
    )
    .unwrap_or_else(|| {
        panic!(
            "ffprobe cannot read the recordings: {:?}",
            recording_durations(&pc)
        )
    });
    let total: f64 = durations.iter().map(|(_, d)| d).sum();
    eprintln!("[hostile] timestamp-jumps recordings: {durations:?}");
    assert!(
        total <= MAX_RECORDED_SECONDS,
        "the recordings of 8 s of media last {total:.0} s: {durations:?}"
    );
}

/// `(file, duration in s)` of every `.mp4` in the records folder, by ffprobe; `Err` with
/// ffprobe's words if one cannot be read (yet).
fn recording_durations(pc: &Pullcast) -> Result<Vec<(String, f64)>, String> {
    let dir = pc.dir().join("records");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_none_or(|e| e != "mp4") {
            continue;
        }
        let output = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-of", "json", "-show_format"])
            .arg(&path)
            .output()
            .map_err(|e| e.to_string())?;
        let json: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        let duration = json["format"]["duration"]
            .as_str()
            .and_then(|d| d.parse::<f64>().ok())
            .ok_or_else(|| {
                format!(
                    "{}: {}",
                    path.display(),
                    String::from_utf8_lossy(&output.stderr)
                )
            })?;
        out.push((
            path.file_name().unwrap().to_string_lossy().to_string(),
            duration,
        ));
    }
    Ok(out)
}

/// The hostile server's valid session, checked by an independent client: ffprobe connects,
/// gets past play and sees clip A's two streams.
#[test]
fn the_hostile_servers_valid_stream_plays_in_ffprobe() {
    let server = HostileRtmpServer::start(Scenario::Valid);
    let streams = probe_streams(&server.url("valid"), Duration::from_secs(30));
    let video = stream_of(&streams, "video").unwrap_or_else(|| panic!("no video: {streams:?}"));
    assert_eq!(video["codec_name"], "h264", "{video}");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(320), Some(180))
    );
    let audio = stream_of(&streams, "audio").unwrap_or_else(|| panic!("no audio: {streams:?}"));
    assert_eq!(audio["codec_name"], "aac", "{audio}");
    assert_eq!(audio["sample_rate"], "48000", "{audio}");
    assert_eq!(server.played(), 1, "{:?}", server.log());
}

/// The same session pulled by pullcast plays (so the attacks that follow it reach a
/// capture that is streaming), and what a healthy capture costs in memory — the figure the
/// [`ALLOWANCE`] is measured against.
#[test]
fn a_healthy_capture_of_the_hostile_servers_valid_stream_costs_little_memory() {
    let _serial = serial();
    let pc = Pullcast::start(&WATCHDOGS);
    let server = HostileRtmpServer::start(Scenario::Valid);
    pc.captures();
    let baseline = settled_rss(pc.pid());
    let sampler = MemorySampler::start(pc.pid(), SAMPLE_EVERY, None);
    let uri = server.url("valid");
    pc.pull_ok(&uri);
    let c = pc.wait_for_keyframe(&uri, Duration::from_secs(15));
    assert_eq!(c["video"]["width"], 320, "{c}");
    assert_eq!(c["audio"]["sampleRate"], 48000, "{c}");
    // Five seconds of media (150 frames at 30 fps).
    let c = pc.wait_for(&uri, Duration::from_secs(20), "150 video frames", |c| {
        c["videoFrames"].as_u64().unwrap_or(0) >= 150
    });
    assert_eq!(c["status"], "PROCESSED_REMOTE", "{c}");
    let memory = sampler.finish();
    let cost = memory.peak().saturating_sub(baseline);
    eprintln!(
        "[hostile] healthy 320x180 capture: baseline {} MiB, peak {} MiB (+{} MiB), {} samples",
        baseline / MIB,
        memory.peak() / MIB,
        cost / MIB,
        memory.samples
    );
    assert!(
        cost <= ALLOWANCE / 4,
        "a healthy capture cost {} MiB, a quarter of the allowance is {} MiB",
        cost / MIB,
        ALLOWANCE / 4 / MIB
    );
    assert_eq!(pc.terminate(&uri).0, 200);
}

/// Frames decoded by `wall` according to the browser's samples.
fn decoded_at(samples: &[Value], wall: u64) -> u64 {
    samples
        .iter()
        .filter(|s| s["wall"].as_u64().unwrap() <= wall)
        .map(|s| s["framesDecoded"].as_u64().unwrap())
        .next_back()
        .unwrap_or(0)
}

/// The longest stretch within `[from, to]` during which the decoded count did not grow.
fn longest_stall_ms(samples: &[Value], from: u64, to: u64) -> u64 {
    let mut longest = 0;
    let mut since = from;
    let mut count = decoded_at(samples, from);
    for s in samples {
        let wall = s["wall"].as_u64().unwrap();
        if wall <= from || wall > to {
            continue;
        }
        let decoded = s["framesDecoded"].as_u64().unwrap();
        if decoded > count {
            longest = longest.max(wall - since);
            since = wall;
            count = decoded;
        }
    }
    longest.max(to.saturating_sub(since))
}

/// A good capture keeps flowing to a Chromium viewer while every attack runs against the
/// same server at once, and the server's memory stays within baseline + one allowance per
/// hostile capture.
#[test]
fn a_good_capture_keeps_playing_in_chromium_while_every_attack_runs() {
    let _browser = exclusive();
    let _serial = serial();
    let nginx = NginxRtmp::start();
    let (_publisher, good) = nginx.publish("good", Publisher::builder().size(640, 360));
    let pc = Pullcast::start(&WATCHDOGS);
    let (status, body) = pc.pull(&json!({ "uri": good, "localStreamName": "good" }));
    assert_eq!(status, 200, "{body}");
    pc.wait_for_keyframe(&good, Duration::from_secs(15));
    let hostiles: Vec<HostileRtmpServer> = Scenario::ATTACKS
        .iter()
        .map(|s| HostileRtmpServer::start(*s))
        .collect();
    let abort_flags: Vec<Arc<AtomicBool>> = hostiles.iter().map(|h| h.abort_flag()).collect();
    const VIEW_MS: u64 = 50_000;

    let (result, attack) = std::thread::scope(|scope| {
        let attacker = scope.spawn(|| {
            // The viewer plays: its first frame went out, and two seconds of frames since.
            let deadline = Instant::now() + Duration::from_secs(30);
            let frames_then = loop {
                let c = pc.capture(&good).unwrap();
                if c["webrtc"]["firstFrameMs"]["count"].as_u64() >= Some(1) {
                    break c["videoFrames"].as_u64().unwrap();
                }
                assert!(
                    Instant::now() < deadline,
                    "the browser never started playing"
                );
                std::thread::sleep(Duration::from_millis(50));
            };
            pc.wait_for(&good, Duration::from_secs(10), "60 more frames", |c| {
                c["videoFrames"].as_u64().unwrap() >= frames_then + 60
            });
            let baseline = settled_rss(pc.pid());
            let sampler = MemorySampler::start(
                pc.pid(),
                SAMPLE_EVERY,
                Some(Guard {
                    raise_above: baseline + 2 * GUARD,
                    raise: abort_flags.clone(),
                    kill_above: baseline + HARD_LIMIT,
                }),
            );
            let mut api = ControlPlane::new(&pc);
            let started = wall_ms();
            let uris: Vec<String> = hostiles
                .iter()
                .map(|h| h.url(h.scenario().name()))
                .collect();
            for uri in &uris {
                let answer = api.post("/pull/rtmp/pull", &json!({ "uri": uri }));
                assert!(matches!(answer, Some((200, _))), "pull {uri}: {answer:?}");
            }
            // Until every hostile capture has failed once.
            let t0 = Instant::now();
            let mut failures: Vec<Option<(String, String)>> = vec![None; uris.len()];
            while t0.elapsed() < ATTACK_DEADLINE && failures.iter().any(Option::is_none) {
                if !is_alive(pc.pid()) {
                    break;
                }
                if let Some(list) = api.captures() {
                    for (i, uri) in uris.iter().enumerate() {
                        if failures[i].is_none() {
                            failures[i] = list
                                .iter()
                                .find(|c| c["uri"] == *uri)
                                .and_then(first_failure);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let ended = wall_ms();
            for uri in &uris {
                match api.post("/pull/rtmp/terminate", &json!({ "uri": uri })) {
                    Some((200, _)) => {}
                    answer => api.errors.push(format!("terminate {uri}: {answer:?}")),
                }
            }
            for h in &hostiles {
                h.abort();
            }
            let memory = sampler.finish();
            (
                started,
                ended,
                baseline,
                memory,
                failures,
                api.slowest,
                api.errors,
            )
        });
        let result = play_on_player_page(&pc.http_root(), "good", VIEW_MS, true, VIEW_MS + 60_000);
        (result, attacker.join().unwrap())
    });
    let (started, ended, baseline, memory, failures, slowest, errors) = attack;
    let samples = result["samples"].as_array().unwrap();
    let last_wall = samples.last().map_or(0, |s| s["wall"].as_u64().unwrap());
    let decoded = decoded_at(samples, ended).saturating_sub(decoded_at(samples, started));
    let span_ms = ended - started;
    let stall = longest_stall_ms(samples, started, ended.min(last_wall));
    let bound = baseline + ALLOWANCE * Scenario::ATTACKS.len() as u64;
    eprintln!(
        "[hostile] all {} attacks at once for {:.1} s: the viewer decoded {decoded} frames ({:.1} fps), longest stall {stall} ms; peak RSS {} MiB (baseline {} MiB, +{} MiB, bound +{} MiB){}{}; slowest REST answer {} ms",
        Scenario::ATTACKS.len(),
        span_ms as f64 / 1000.0,
        decoded as f64 * 1000.0 / span_ms.max(1) as f64,
        memory.peak() / MIB,
        baseline / MIB,
        memory.peak().saturating_sub(baseline) / MIB,
        bound.saturating_sub(baseline) / MIB,
        memory.raised.map_or(String::new(), |(rss, at)| format!(", attacks ABORTED by the memory guard at {} MiB after {:.1} s", rss / MIB, at.as_secs_f64())),
        memory.killed.map_or(String::new(), |(rss, at)| format!(", server KILLED at {} MiB after {:.1} s", rss / MIB, at.as_secs_f64())),
        slowest.as_millis(),
    );
    for (s, f) in Scenario::ATTACKS.iter().zip(&failures) {
        eprintln!("[hostile]   {}: {f:?}", s.name());
    }
    assert!(
        memory.killed.is_none() && memory.gone.is_none(),
        "the server died (or was killed for its memory) during the attacks\n{}",
        pc.log_tail()
    );
    assert!(
        pc.capture(&good).is_some(),
        "the good capture is gone\n{}",
        pc.log_tail()
    );
    assert!(
        last_wall >= ended,
        "the viewer stopped sampling before the attacks ended ({} ms early): raise VIEW_MS",
        ended - last_wall
    );
    assert!(
        failures.iter().all(Option::is_some),
        "not every hostile capture failed within {ATTACK_DEADLINE:?}: {failures:?}"
    );
    // The viewer kept decoding: half the source's 30 fps at least, never 2 s without a frame.
    assert!(
        decoded * 1000 >= 15 * span_ms,
        "the viewer decoded {decoded} frames in {span_ms} ms of attacks (want ≥ 15 fps)"
    );
    assert!(
        stall <= 2000,
        "the viewer decoded nothing for {stall} ms during the attacks"
    );
    assert!(errors.is_empty(), "control plane errors: {errors:?}");
    assert!(
        slowest <= CONTROL_PLANE_LIMIT,
        "a REST answer took {} ms during the attacks",
        slowest.as_millis()
    );
    assert!(
        memory.peak() <= bound,
        "resident memory reached {} MiB (bound {} MiB)",
        memory.peak() / MIB,
        bound / MIB
    );
}
