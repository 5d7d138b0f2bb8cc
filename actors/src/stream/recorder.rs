//! `Recorder`: records one capture to fragmented MP4 files, on its own thread.
//!
//! It subscribes to its capture like any viewer (`Delivery::Original`: the source's H.264
//! and AAC, untouched) and hands frames to the pure `pullcast::mp4` writer, appending each
//! fragment to the file as it closes (and syncing it), so a crash loses at most about one
//! fragment. A file starts at the first video keyframe — or, when the source has no video
//! after a few seconds, as audio-only with the audio held so far — and every track the
//! source has is recorded. A codec change closes the file and the next one starts. Disk
//! trouble stops the recording with a reason; the capture and its viewers go on.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use log::{info, warn};
use pullcast::config::RecordSettings;
use pullcast::media::{CodecSet, MediaFrame, Track};
use pullcast::mp4::{FragmentedMp4Writer, Mp4Options};
use pullcast::record::naming::{needs_final_rename, render, NameFields};
use uuid::Uuid;

use crate::messages::{FinishRecording, RecordingStatus, SubscriberMedia};
use crate::records::{self, Sidecar};

/// How long (source ms of held media) a file waits for a track whose configuration has not
/// arrived before it starts without it.
const WAIT_FOR_TRACKS_MS: i64 = 3000;
/// Most frames held while waiting (a few seconds of 60 fps video and audio).
const MAX_HELD: usize = 1024;
/// Most bytes held while waiting (frame cost: payload + overhead); the oldest go first.
const MAX_HELD_BYTES: usize = 16 << 20;

/// One open recording file.
struct Open {
    writer: FragmentedMp4Writer,
    file: File,
    path: PathBuf,
    fields: NameFields,
    codecs: CodecSet,
    bytes: u64,
}

/// Records one capture.
pub struct Recorder {
    label: String,
    settings: RecordSettings,
    fields: NameFields,
    codecs: CodecSet,
    open: Option<Open>,
    /// Frames held while waiting for every track's configuration (see `on_frame`).
    held: Vec<MediaFrame>,
    status: Recipient<RecordingStatus>,
    failed: bool,
    /// Hooks still running.
    hooks: Vec<std::thread::JoinHandle<()>>,
    /// Tracks the capture may carry (its request's hasAudio / hasVideo).
    expect_audio: bool,
    expect_video: bool,
    /// When the files of the last minute started (`record.max_files_per_minute`).
    file_starts: VecDeque<Instant>,
}

/// Hooks running now, over every capture (`record.max_running_hooks`).
static RUNNING_HOOKS: AtomicUsize = AtomicUsize::new(0);

impl Recorder {
    pub fn new(
        label: String,
        stream_name: String,
        session: Uuid,
        settings: RecordSettings,
        status: Recipient<RecordingStatus>,
    ) -> Self {
        Self {
            label,
            settings,
            fields: NameFields {
                stream_name,
                media_session_id: session.to_string(),
                ..NameFields::default()
            },
            codecs: CodecSet::default(),
            open: None,
            held: Vec::new(),
            status,
            failed: false,
            hooks: Vec::new(),
            expect_audio: true,
            expect_video: true,
            file_starts: VecDeque::new(),
        }
    }

    /// Tracks the capture was asked to carry: a file does not wait for one it never will.
    pub fn expecting(mut self, audio: bool, video: bool) -> Self {
        self.expect_audio = audio;
        self.expect_video = video;
        self
    }

    /// Until a file is open, frames are held: a file starts once every track the source
    /// announced has its configuration and video has a keyframe — or, when a track is still
    /// missing after [`WAIT_FOR_TRACKS_MS`] of held media, with the tracks known by then.
    fn on_frame(&mut self, frame: MediaFrame) -> Result<(), String> {
        if self.open.is_some() {
            return self.write(&frame);
        }
        let video_known = self.codecs.video.is_some();
        let keyframe_held = self
            .held
            .iter()
            .any(|f| f.track == Track::Video && f.keyframe);
        let wanted = match frame.track {
            // Video is only useful from a keyframe on.
            Track::Video => video_known && (frame.keyframe || keyframe_held),
            Track::Audio => self.codecs.audio.is_some(),
        };
        if !wanted {
            return Ok(());
        }
        self.held.push(frame);
        let keyframe_held = keyframe_held
            || self
                .held
                .iter()
                .any(|f| f.keyframe && f.track == Track::Video);
        let span = match (self.held.first(), self.held.last()) {
            (Some(first), Some(last)) => last.dts - first.dts,
            _ => 0,
        };
        let all_tracks = (video_known || !self.expect_video)
            && (self.codecs.audio.is_some() || !self.expect_audio);
        let ready = (all_tracks && (keyframe_held || !video_known)) || span >= WAIT_FOR_TRACKS_MS;
        if !ready || (video_known && !keyframe_held) {
            let mut held_bytes: usize = self.held.iter().map(MediaFrame::cost_bytes).sum();
            while self.held.len() > MAX_HELD || (held_bytes > MAX_HELD_BYTES && self.held.len() > 1)
            {
                held_bytes -= self.held.remove(0).cost_bytes();
            }
            return Ok(());
        }
        self.start()?;
        for held in std::mem::take(&mut self.held) {
            self.write(&held)?;
        }
        Ok(())
    }

    fn write(&mut self, frame: &MediaFrame) -> Result<(), String> {
        let Some(open) = self.open.as_mut() else {
            return Ok(());
        };
        if let Some(fragment) = open.writer.push(frame) {
            append(open, &fragment)?;
            let folder = PathBuf::from(&self.settings.folder);
            enough_free_space(&folder, self.settings.min_free_bytes)?;
            self.report(None);
        }
        Ok(())
    }

    fn start(&mut self) -> Result<(), String> {
        let now = Instant::now();
        while self
            .file_starts
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            self.file_starts.pop_front();
        }
        let most = self.settings.max_files_per_minute as usize;
        if self.file_starts.len() >= most {
            return Err(format!(
                "the source changed its codec configuration so often that {most} files started \
                 within a minute (record.max_files_per_minute); recording stopped"
            ));
        }
        self.file_starts.push_back(now);
        let folder = PathBuf::from(&self.settings.folder);
        std::fs::create_dir_all(&folder).map_err(|e| {
            format!(
                "cannot create the recordings folder {}: {e}",
                folder.display()
            )
        })?;
        enough_free_space(&folder, self.settings.min_free_bytes)?;
        let mut fields = self.fields.clone();
        fields.start_ms = unix_ms();
        fields.end_ms = None;
        fields.video_codec = if self.codecs.video.is_some() {
            "h264"
        } else {
            "none"
        }
        .into();
        fields.audio_codec = if self.codecs.audio.is_some() {
            "aac"
        } else {
            "none"
        }
        .into();
        let name = render(&self.settings.template, &fields);
        let path = records::unused_path(&folder, &name);
        let writer = FragmentedMp4Writer::new(
            self.codecs.video.clone(),
            self.codecs.audio.clone(),
            Mp4Options {
                max_fragment_ms: self.settings.fragment_ms.max(100) as i64,
            },
        )
        .map_err(|e| format!("cannot start the MP4 writer: {e}"))?;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let mut open = Open {
            writer,
            file,
            path,
            fields,
            codecs: self.codecs.clone(),
            bytes: 0,
        };
        let init = open.writer.init_segment();
        append(&mut open, &init)?;
        let _ = records::write_sidecar(&open.path, &sidecar(&open.fields));
        info!("{}: recording to {}", self.label, open.path.display());
        self.open = Some(open);
        self.report(None);
        Ok(())
    }

    /// Closes the open file: last fragment, final name, sidecar, hook.
    fn finish(&mut self) {
        let Some(mut open) = self.open.take() else {
            return;
        };
        if let Some(fragment) = open.writer.finish() {
            if let Err(e) = append(&mut open, &fragment) {
                warn!("{}: {e}", self.label);
            }
        }
        drop(open.file);
        open.fields.end_ms = Some(unix_ms());
        let mut path = open.path.clone();
        if needs_final_rename(&self.settings.template) {
            if let Some(folder) = path.parent() {
                let target =
                    records::unused_path(folder, &render(&self.settings.template, &open.fields));
                match records::rename(&path, &target) {
                    Ok(()) => path = target,
                    Err(e) => warn!("{}: cannot rename {}: {e}", self.label, path.display()),
                }
            }
        }
        if let Err(e) = records::write_sidecar(&path, &sidecar(&open.fields)) {
            warn!(
                "{}: cannot write the description of {}: {e}",
                self.label,
                path.display()
            );
        }
        info!(
            "{}: recording finished: {} ({} bytes)",
            self.label,
            path.display(),
            open.bytes
        );
        self.hooks.retain(|h| !h.is_finished());
        if let Some(hook) = run_hook(&self.settings, &self.fields.stream_name, &path) {
            self.hooks.push(hook);
        }
    }

    fn report(&self, error: Option<String>) {
        let (file, bytes) = match &self.open {
            Some(o) => (
                o.path.file_name().map(|n| n.to_string_lossy().into_owned()),
                o.bytes,
            ),
            None => (None, 0),
        };
        self.status.do_send(RecordingStatus { file, bytes, error });
    }

    fn fail(&mut self, reason: String, ctx: &mut Context<Self>) {
        warn!("{}: recording stopped: {reason}", self.label);
        self.finish();
        self.failed = true;
        self.report(Some(reason));
        ctx.stop();
    }
}

fn append(open: &mut Open, bytes: &[u8]) -> Result<(), String> {
    open.file
        .write_all(bytes)
        .and_then(|()| open.file.sync_data())
        .map_err(|e| format!("cannot write {}: {e}", open.path.display()))?;
    open.bytes += bytes.len() as u64;
    Ok(())
}

fn sidecar(fields: &NameFields) -> Sidecar {
    Sidecar {
        stream: fields.stream_name.clone(),
        media_session_id: fields.media_session_id.clone(),
        start_ms: fields.start_ms,
        end_ms: fields.end_ms,
        video_codec: fields.video_codec.clone(),
        audio_codec: fields.audio_codec.clone(),
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Refuses when the disk holding `folder` has less than `min_free` bytes free.
fn enough_free_space(folder: &Path, min_free: u64) -> Result<(), String> {
    match nix::sys::statvfs::statvfs(folder) {
        Ok(stats) => {
            let free = stats
                .blocks_available()
                .saturating_mul(stats.fragment_size());
            if free < min_free {
                return Err(format!(
                    "only {} MiB free on the disk of {}, under record.min_free_bytes ({} MiB)",
                    free >> 20,
                    folder.display(),
                    min_free >> 20
                ));
            }
            Ok(())
        }
        // Not knowing is no reason to stop recording; the write itself will say.
        Err(_) => Ok(()),
    }
}

/// The stream name as a hook's argument: one that starts with '-' gets '_' in front, so no
/// program takes it for an option (the exact name is in `PULLCAST_STREAM`).
fn hook_argument(stream: &str) -> String {
    if stream.starts_with('-') {
        format!("_{stream}")
    } else {
        stream.to_string()
    }
}

/// Runs the hook with the stream name and the file's absolute path, on a thread of its own,
/// killed after `record.hook_timeout_ms`; skipped when `record.max_running_hooks` are
/// running. A failure is logged, never fatal.
fn run_hook(
    settings: &RecordSettings,
    stream: &str,
    path: &Path,
) -> Option<std::thread::JoinHandle<()>> {
    if settings.hook.is_empty() {
        return None;
    }
    let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if RUNNING_HOOKS.fetch_add(1, Ordering::SeqCst) >= settings.max_running_hooks {
        RUNNING_HOOKS.fetch_sub(1, Ordering::SeqCst);
        warn!(
            "recording hook skipped for {}: {} hooks are running (record.max_running_hooks)",
            absolute.display(),
            settings.max_running_hooks
        );
        return None;
    }
    let hook = settings.hook.clone();
    let stream = stream.to_string();
    let limit = Duration::from_millis(settings.hook_timeout_ms);
    let handle = std::thread::spawn(move || {
        let outcome = std::process::Command::new(&hook)
            .arg(hook_argument(&stream))
            .arg(&absolute)
            .env("PULLCAST_STREAM", &stream)
            .env("PULLCAST_FILE", &absolute)
            .stdin(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("could not run: {e}"))
            .and_then(|mut child| wait_or_kill(&mut child, limit));
        match outcome {
            Ok(status) if status.success() => {
                info!("recording hook {hook} ran for {}", absolute.display())
            }
            Ok(status) => warn!(
                "recording hook {hook} failed ({status}) for {}",
                absolute.display()
            ),
            Err(e) => warn!("recording hook {hook} for {}: {e}", absolute.display()),
        }
        RUNNING_HOOKS.fetch_sub(1, Ordering::SeqCst);
    });
    Some(handle)
}

/// Waits for `child` up to `limit`, then kills it.
fn wait_or_kill(
    child: &mut std::process::Child,
    limit: Duration,
) -> Result<std::process::ExitStatus, String> {
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if started.elapsed() >= limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "killed after {} ms (record.hook_timeout_ms)",
                    limit.as_millis()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("cannot wait for it: {e}")),
        }
    }
}

impl Actor for Recorder {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.finish();
        // The recorder owns its thread.
        Arbiter::current().stop();
    }
}

impl Handler<FinishRecording> for Recorder {
    type Result = ();

    /// Closes the file, waits (a bounded time) for its hook, and stops: for shutdown.
    fn handle(&mut self, _msg: FinishRecording, ctx: &mut Self::Context) {
        self.finish();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        for hook in self.hooks.drain(..) {
            while !hook.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        ctx.stop();
    }
}

impl Handler<SubscriberMedia> for Recorder {
    type Result = ();

    fn handle(&mut self, msg: SubscriberMedia, ctx: &mut Self::Context) {
        if self.failed {
            return;
        }
        match msg {
            SubscriberMedia::Codecs(codecs) => {
                if self.open.as_ref().is_some_and(|o| o.codecs != codecs) {
                    info!("{}: codec change; starting a new file", self.label);
                    self.finish();
                }
                if codecs.video != self.codecs.video || codecs.audio != self.codecs.audio {
                    // Held frames of a replaced configuration cannot go into the new file;
                    // a configuration that merely arrives keeps them.
                    let video_replaced =
                        self.codecs.video.is_some() && codecs.video != self.codecs.video;
                    let audio_replaced =
                        self.codecs.audio.is_some() && codecs.audio != self.codecs.audio;
                    self.held.retain(|f| match f.track {
                        Track::Video => !video_replaced,
                        Track::Audio => !audio_replaced,
                    });
                }
                self.codecs = codecs;
            }
            SubscriberMedia::Frame(frame, _queued) => {
                if let Err(reason) = self.on_frame(frame) {
                    self.fail(reason, ctx);
                }
            }
            SubscriberMedia::Replay(frames, _queued) => {
                for frame in frames {
                    if let Err(reason) = self.on_frame(frame) {
                        self.fail(reason, ctx);
                        break;
                    }
                }
            }
            SubscriberMedia::Stopped { .. } => ctx.stop(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hook_argument_is_never_an_option() {
        assert_eq!(hook_argument("-rf"), "_-rf");
        assert_eq!(hook_argument("--help"), "_--help");
        assert_eq!(hook_argument("直播流"), "直播流");
        assert_eq!(hook_argument("a-b"), "a-b");
    }

    #[test]
    fn a_hook_that_runs_too_long_is_killed() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep runs");
        let started = Instant::now();
        let outcome = wait_or_kill(&mut child, Duration::from_millis(200));
        assert!(matches!(&outcome, Err(e) if e.contains("killed after 200 ms")));
        assert!(started.elapsed() < Duration::from_secs(10));
        let mut quick = std::process::Command::new("true")
            .spawn()
            .expect("true runs");
        assert!(wait_or_kill(&mut quick, Duration::from_secs(10)).is_ok_and(|s| s.success()));
    }

    #[test]
    fn free_space_is_checked_against_the_minimum() {
        assert!(enough_free_space(Path::new("."), 0).is_ok());
        let refused = enough_free_space(Path::new("."), u64::MAX);
        assert!(matches!(&refused, Err(e) if e.contains("record.min_free_bytes")));
    }
}
