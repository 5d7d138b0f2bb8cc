//! `Recorder`: records one capture to fragmented MP4 files, on its own thread.
//!
//! It subscribes to its capture like any viewer (`Delivery::Original`: the source's H.264
//! and AAC, untouched) and hands frames to the pure `pullcast::mp4` writer, appending each
//! fragment to the file as it closes (and syncing it), so a crash loses at most about one
//! fragment. A file starts at the first video keyframe — or, when the source has no video
//! after a few seconds, as audio-only with the audio held so far — and every track the
//! source has is recorded. A codec change closes the file and the next one starts. Disk
//! trouble stops the recording with a reason; the capture and its viewers go on.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

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
}

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
            if self.held.len() > MAX_HELD {
                self.held.remove(0);
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
            self.report(None);
        }
        Ok(())
    }

    fn start(&mut self) -> Result<(), String> {
        let folder = PathBuf::from(&self.settings.folder);
        std::fs::create_dir_all(&folder).map_err(|e| {
            format!(
                "cannot create the recordings folder {}: {e}",
                folder.display()
            )
        })?;
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
        if let Some(hook) = run_hook(&self.settings.hook, &self.fields.stream_name, &path) {
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

/// Runs the hook with the stream name and the file's absolute path, on a thread of its own;
/// a failure is logged, never fatal.
fn run_hook(
    hook: &str,
    stream: &str,
    path: &std::path::Path,
) -> Option<std::thread::JoinHandle<()>> {
    if hook.is_empty() {
        return None;
    }
    let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let (hook, stream) = (hook.to_string(), stream.to_string());
    let handle = std::thread::spawn(move || {
        match std::process::Command::new(&hook)
            .arg(&stream)
            .arg(&absolute)
            .status()
        {
            Ok(status) if status.success() => {
                info!("recording hook {hook} ran for {}", absolute.display())
            }
            Ok(status) => warn!(
                "recording hook {hook} failed ({status}) for {}",
                absolute.display()
            ),
            Err(e) => warn!("recording hook {hook} could not run: {e}"),
        }
    });
    Some(handle)
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
