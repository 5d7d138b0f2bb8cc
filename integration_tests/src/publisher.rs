//! ffmpeg as the source of a live stream: publishing to an RTMP server (nginx), or being the
//! RTMP server itself (`-listen 1`).
//!
//! The base source: 1280x720 at 30 fps H.264 Constrained Baseline
//! (`testsrc2`, GOP 60, no B-frames) + AAC-LC 48 kHz stereo (a 1 kHz sine), sent in real time.

use std::process::{Child, Command};
use std::time::Duration;

use crate::ports::is_listening;
use crate::process::{kill_tree, require_tool, spawn_logged, tail, wait_exit};
use crate::tempdir::TempDir;
use crate::wait::poll_until;

/// Video settings of a [`PublisherBuilder`].
#[derive(Clone, Debug)]
struct Video {
    width: u32,
    height: u32,
    fps: u32,
    gop: u32,
    bframes: u32,
    /// H.264 profile: "baseline" unless asked otherwise (B-frames need "high").
    profile: &'static str,
    bitrate_kbps: Option<u32>,
}

/// Audio settings of a [`PublisherBuilder`].
#[derive(Clone, Debug)]
struct Audio {
    sample_rate: u32,
    channels: u32,
    bitrate_kbps: u32,
}

/// What ffmpeg sends. Start from [`Publisher::builder`] (the base source) and change what a
/// test needs.
#[derive(Clone, Debug)]
pub struct PublisherBuilder {
    video: Option<Video>,
    audio: Option<Audio>,
    /// Black frames with a white flash, and silence with a 1 kHz beep, for 100 ms at the
    /// start of every second (lip-sync tests) instead of the test pattern and the sine.
    flash_and_beep: bool,
    /// Encode this many seconds to a file first, then publish the file in real time
    /// (`-c copy`): the same stream without a live encoder competing for the CPU.
    pre_encoded_s: Option<u32>,
}

impl Default for PublisherBuilder {
    fn default() -> Self {
        PublisherBuilder {
            video: Some(Video {
                width: 1280,
                height: 720,
                fps: 30,
                gop: 60,
                bframes: 0,
                profile: "baseline",
                bitrate_kbps: None,
            }),
            audio: Some(Audio {
                sample_rate: 48_000,
                channels: 2,
                bitrate_kbps: 128,
            }),
            flash_and_beep: false,
            pre_encoded_s: None,
        }
    }
}

impl PublisherBuilder {
    /// Video frame size (default 1280x720).
    pub fn size(mut self, width: u32, height: u32) -> Self {
        let v = self.video.as_mut().expect("size() on an audio-only source");
        v.width = width;
        v.height = height;
        self
    }

    /// Video frame rate (default 30); the GOP stays two seconds.
    pub fn fps(mut self, fps: u32) -> Self {
        let v = self.video.as_mut().expect("fps() on an audio-only source");
        v.fps = fps;
        v.gop = fps * 2;
        self
    }

    /// A keyframe every `frames` frames (default: every 2 s).
    pub fn gop(mut self, frames: u32) -> Self {
        let v = self.video.as_mut().expect("gop() on an audio-only source");
        v.gop = frames.max(1);
        self
    }

    /// A white flash and a 1 kHz beep together for 100 ms at the start of every second, on
    /// black and silence (sample-exact beep from `aevalsrc`, flash drawn by `drawbox`).
    pub fn flash_and_beep(mut self) -> Self {
        self.flash_and_beep = true;
        self
    }

    /// Encodes `seconds` of the source to a file before publishing, then sends that file in
    /// real time with `-c copy` (the stream ends after `seconds`). For measurements that need
    /// the CPU for the server and the browser rather than for x264 and the test pattern
    /// (a 720p lip-sync source costs ~0.3 of a core live).
    pub fn pre_encoded(mut self, seconds: u32) -> Self {
        self.pre_encoded_s = Some(seconds.max(1));
        self
    }

    /// Constant-ish video bitrate: `-b:v Nk -maxrate Nk -bufsize 2Nk`.
    pub fn video_bitrate_kbps(mut self, kbps: u32) -> Self {
        let v = self
            .video
            .as_mut()
            .expect("video_bitrate_kbps() on an audio-only source");
        v.bitrate_kbps = Some(kbps);
        self
    }

    /// `n` B-frames (High profile; `-tune zerolatency` is dropped because it disables them).
    pub fn bframes(mut self, n: u32) -> Self {
        let v = self
            .video
            .as_mut()
            .expect("bframes() on an audio-only source");
        v.bframes = n;
        if n > 0 {
            v.profile = "high";
        }
        self
    }

    /// H.264 High profile (without B-frames unless [`PublisherBuilder::bframes`] asks).
    pub fn high_profile(mut self) -> Self {
        let v = self
            .video
            .as_mut()
            .expect("high_profile() on an audio-only source");
        v.profile = "high";
        self
    }

    /// AAC sample rate and channel count (default 48000 Hz, 2); the bitrate follows
    /// (32 kb/s per channel below 32 kHz, 64 kb/s per channel otherwise).
    pub fn audio(mut self, sample_rate: u32, channels: u32) -> Self {
        let per_channel = if sample_rate < 32_000 { 32 } else { 64 };
        self.audio = Some(Audio {
            sample_rate,
            channels,
            bitrate_kbps: per_channel * channels,
        });
        self
    }

    /// No video track.
    pub fn audio_only(mut self) -> Self {
        self.video = None;
        assert!(self.audio.is_some(), "a source needs audio or video");
        self
    }

    /// No audio track.
    pub fn video_only(mut self) -> Self {
        self.audio = None;
        assert!(self.video.is_some(), "a source needs audio or video");
        self
    }

    /// ffmpeg's arguments up to (not including) the output URL, for a live encode.
    pub fn args(&self) -> Vec<String> {
        self.encode_args(true)
    }

    /// ffmpeg's arguments up to the output: paced in real time (`-re`) or as fast as it can.
    fn encode_args(&self, real_time: bool) -> Vec<String> {
        let mut a: Vec<String> = ["-hide_banner", "-nostdin", "-loglevel", "warning"]
            .map(String::from)
            .to_vec();
        if real_time {
            a.push("-re".into());
        }
        if let Some(v) = &self.video {
            a.push("-f".into());
            a.push("lavfi".into());
            a.push("-i".into());
            a.push(if self.flash_and_beep {
                format!(
                    "color=c=black:s={}x{}:r={},format=yuv420p,drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='lt(mod(t,1),0.1)'",
                    v.width, v.height, v.fps
                )
            } else {
                format!("testsrc2=size={}x{}:rate={}", v.width, v.height, v.fps)
            });
        }
        if let Some(au) = &self.audio {
            a.push("-f".into());
            a.push("lavfi".into());
            a.push("-i".into());
            a.push(if self.flash_and_beep {
                format!(
                    "aevalsrc=exprs='if(lt(mod(t,1),0.1),0.5*sin(2*PI*1000*t),0)':s={}",
                    au.sample_rate
                )
            } else {
                format!("sine=frequency=1000:sample_rate={}", au.sample_rate)
            });
        }
        if let Some(v) = &self.video {
            let gop = v.gop.to_string();
            a.extend(
                [
                    "-c:v", "libx264", "-preset", "veryfast", "-g", &gop, "-pix_fmt", "yuv420p",
                ]
                .map(String::from),
            );
            if v.bframes == 0 {
                // zerolatency disables B-frames, so it only goes with none.
                a.extend(["-tune".into(), "zerolatency".into()]);
            }
            a.extend([
                "-profile:v".into(),
                v.profile.into(),
                "-bf".into(),
                v.bframes.to_string(),
            ]);
            if let Some(kbps) = v.bitrate_kbps {
                a.extend([
                    "-b:v".into(),
                    format!("{kbps}k"),
                    "-maxrate".into(),
                    format!("{kbps}k"),
                    "-bufsize".into(),
                    format!("{}k", kbps * 2),
                ]);
            }
        } else {
            a.push("-vn".into());
        }
        if let Some(au) = &self.audio {
            a.extend([
                "-c:a".into(),
                "aac".into(),
                "-b:a".into(),
                format!("{}k", au.bitrate_kbps),
                "-ar".into(),
                au.sample_rate.to_string(),
                "-ac".into(),
                au.channels.to_string(),
            ]);
        } else {
            a.push("-an".into());
        }
        a.extend(["-f".into(), "flv".into()]);
        a
    }

    /// Publishes to `url` (e.g. an [`crate::NginxRtmp::rtmp_url`]). Returns once ffmpeg runs;
    /// use [`crate::NginxRtmp::wait_published`] to know that the server has the stream.
    pub fn start(&self, url: &str) -> Publisher {
        let Some(seconds) = self.pre_encoded_s else {
            let mut args = self.args();
            args.push(url.to_string());
            return Publisher::spawn(args, url);
        };
        let dir = TempDir::new("ffmpeg");
        let file = dir.join("source.flv");
        let mut encode = self.encode_args(false);
        encode.extend(["-t".into(), seconds.to_string(), "-y".into()]);
        encode.push(file.display().to_string());
        let log = dir.join("encode.log");
        let mut child = spawn_logged(Command::new(require_tool("ffmpeg")).args(&encode), &log);
        // x264 veryfast makes 720p several times faster than real time here.
        let limit = Duration::from_secs(60 + u64::from(seconds));
        match wait_exit(&mut child, limit) {
            Some(status) if status.success() => {}
            Some(status) => panic!(
                "ffmpeg {} failed ({status}):\n{}",
                encode.join(" "),
                tail(&log, 30)
            ),
            None => {
                kill_tree(&mut child);
                panic!("ffmpeg {} took over {limit:?}", encode.join(" "));
            }
        }
        let mut args: Vec<String> = ["-hide_banner", "-nostdin", "-loglevel", "warning", "-re"]
            .map(String::from)
            .to_vec();
        args.extend(["-i".into(), file.display().to_string()]);
        args.extend(["-c", "copy", "-f", "flv"].map(String::from));
        args.push(url.to_string());
        Publisher::spawn_in(dir, args, url)
    }

    /// ffmpeg as a one-client RTMP server on 127.0.0.1:`port` serving `path` (`live/test`):
    /// `-listen 1`. It sends media on message stream id 0 and exits after its client leaves.
    /// Returns once the port listens (checked in /proc/net/tcp, without connecting).
    pub fn listen(&self, port: u16, path: &str) -> Publisher {
        let url = format!("rtmp://127.0.0.1:{port}/{}", path.trim_start_matches('/'));
        assert!(
            self.pre_encoded_s.is_none(),
            "pre_encoded() is for publishing, not for ffmpeg -listen"
        );
        let mut args = self.args();
        args.extend(["-listen".into(), "1".into(), url.clone()]);
        let mut p = Publisher::spawn(args, &url);
        let up = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
            if let Some(status) = p.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Some(Err(status));
            }
            is_listening(port).then_some(Ok(()))
        });
        match up {
            Some(Ok(())) => p,
            Some(Err(status)) => panic!(
                "ffmpeg -listen exited ({status}) before listening:\n{}",
                p.log_tail()
            ),
            None => panic!(
                "ffmpeg -listen did not listen on {port} within 10 s:\n{}",
                p.log_tail()
            ),
        }
    }
}

/// A running ffmpeg. Killed on drop.
pub struct Publisher {
    dir: TempDir,
    url: String,
    child: Option<Child>,
}

impl Publisher {
    /// The base source (see the module documentation), to be adjusted.
    pub fn builder() -> PublisherBuilder {
        PublisherBuilder::default()
    }

    /// The base source published to `url`.
    pub fn start(url: &str) -> Publisher {
        Publisher::builder().start(url)
    }

    /// The base source served by ffmpeg itself as a one-client RTMP server (`-listen 1`).
    pub fn listen_server(port: u16, path: &str) -> Publisher {
        Publisher::builder().listen(port, path)
    }

    fn spawn(args: Vec<String>, url: &str) -> Publisher {
        Publisher::spawn_in(TempDir::new("ffmpeg"), args, url)
    }

    /// ffmpeg with `args` (the output URL included), its command line and log in `dir`
    /// (which may hold its input files too). Killed on drop; `dir` is kept when a test panics.
    pub fn spawn_in(dir: TempDir, args: Vec<String>, url: &str) -> Publisher {
        let ffmpeg = require_tool("ffmpeg");
        std::fs::write(
            dir.join("cmdline.txt"),
            format!("ffmpeg {}\n", args.join(" ")),
        )
        .expect("write ffmpeg cmdline.txt");
        let child = spawn_logged(Command::new(ffmpeg).args(&args), &dir.join("ffmpeg.log"));
        Publisher {
            dir,
            url: url.to_string(),
            child: Some(child),
        }
    }

    /// The URL it publishes to (or serves).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The ffmpeg process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True while ffmpeg runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// The command line and the last lines ffmpeg logged.
    pub fn log_tail(&self) -> String {
        format!(
            "--- ffmpeg ({}) ---\n{}{}",
            self.dir.path().display(),
            std::fs::read_to_string(self.dir.join("cmdline.txt")).unwrap_or_default(),
            tail(&self.dir.join("ffmpeg.log"), 30)
        )
    }

    /// Kills ffmpeg. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_tree(&mut child);
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
        self.stop();
    }
}
