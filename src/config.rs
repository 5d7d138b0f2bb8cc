//! The configuration schema and its built-in defaults.
//!
//! These types are what `conf/pullcast.toml` describes, key for key; `Settings::default()`
//! is the server's behaviour with no file at all. Loading (files, `PULLCAST_…` environment
//! overrides) happens in the server crate; this module only defines shapes and defaults.

use serde::{Deserialize, Serialize};

/// Everything the server can be told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub tls: TlsSettings,
    pub rest: RestSettings,
    pub http: HttpSettings,
    pub auth: AuthSettings,
    pub limits: LimitSettings,
    pub capture: CaptureSettings,
    pub pull: PullSettings,
    pub record: RecordSettings,
    pub webrtc: WebRtcSettings,
    pub hls: HlsSettings,
    pub rtmp: RtmpSettings,
    pub metrics: MetricsSettings,
    pub log: LogSettings,
}

/// Listening addresses and ports (SPEC §4b).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Address every listener binds to.
    pub bind: String,
    /// REST API over HTTP.
    pub rest_http_port: u16,
    /// REST API over HTTPS.
    pub rest_https_port: u16,
    /// WebSocket signalling (ws://HOST:8080/); serves the player page and REST too.
    pub ws_port: u16,
    /// WebSocket signalling over TLS (wss://HOST:8443/).
    pub wss_port: u16,
    /// HLS (http://HOST:8082/STREAM/STREAM.m3u8); like every listener it serves every route.
    pub hls_http_port: u16,
    /// HLS over TLS (https://HOST:8445/STREAM/STREAM.m3u8).
    pub hls_https_port: u16,
    /// RTMP players (and publishers): rtmp://HOST:1935/live/STREAM.
    pub rtmp_port: u16,
    /// HTTP worker threads; 0 means one per core.
    pub http_workers: usize,
    /// Serve the plain-HTTP listeners (`rest_http_port`, `ws_port`); false leaves only the
    /// TLS ones.
    pub plain_http: bool,
    /// On SIGINT/SIGTERM: how long captures get to tell their viewers and close their
    /// recordings before the process exits.
    pub shutdown_timeout_ms: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            bind: "0.0.0.0".to_string(),
            rest_http_port: 8081,
            rest_https_port: 8444,
            ws_port: 8080,
            wss_port: 8443,
            hls_http_port: 8082,
            hls_https_port: 8445,
            rtmp_port: 1935,
            http_workers: 0,
            plain_http: true,
            shutdown_timeout_ms: 10000,
        }
    }
}

/// TLS for the https/wss listeners.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain. Empty: generate a self-signed certificate.
    pub cert_file: String,
    /// PEM private key for `cert_file`.
    pub key_file: String,
    /// Where a generated self-signed certificate (`cert.pem`, `key.pem`) is written.
    pub self_signed_dir: String,
    /// The host names and addresses a generated certificate names (its subject alternative
    /// names); a change makes the server generate a new one.
    pub host_names: Vec<String>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            cert_file: String::new(),
            key_file: String::new(),
            self_signed_dir: "tls".to_string(),
            host_names: vec![
                "localhost".to_string(),
                "127.0.0.1".to_string(),
                "::1".to_string(),
            ],
        }
    }
}

/// The REST API's older settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct RestSettings {
    /// The old spelling of one `[[auth.users]]` entry with every permission on every stream:
    /// a user of this name (empty: none) whose password is `basic_auth_password`.
    pub basic_auth_user: String,
    /// The password of `basic_auth_user`.
    pub basic_auth_password: String,
    /// Browser origins allowed to call the API (CORS), e.g. `["https://ops.example.com"]`;
    /// `["*"]` allows any origin; empty sends no CORS headers.
    pub cors_allowed_origins: Vec<String>,
}

/// Browser-facing HTTP rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Pages on other origins (e.g. `"https://app.example.com"`) that may open the WebSocket
    /// signalling; a page served by pullcast itself (same origin) always may, and a client
    /// that sends no `Origin` (not a browser) is not asked. `["*"]` allows every origin.
    pub allowed_origins: Vec<String>,
    /// Reverse proxies (CIDR ranges) whose `X-Forwarded-For` is believed: a request from one
    /// stands for the right-most address in that header that is not itself a trusted proxy
    /// (`pullcast::access::forwarded`). Empty: the TCP peer is the client.
    pub trusted_proxies: Vec<String>,
    /// Names this server is reached by, besides IP addresses, `localhost` and
    /// `tls.host_names`. A request from `auth.trusted_networks` is trusted only when its
    /// `Host` is one of them (against DNS rebinding: `pullcast::access::host_check`).
    pub host_names: Vec<String>,
}

/// Who may do what: the access model (`pullcast::access`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Clients from these CIDR ranges may do everything without credentials.
    pub trusted_networks: Vec<String>,
    /// What everybody else may do without credentials: permission names (`api`, `pull`,
    /// `pull_private`, `play`, `records`).
    pub anonymous: Vec<String>,
    /// When not empty, an `http://` URL asked about every request from outside the trusted
    /// networks that the rules allow (and every bearer token pullcast did not issue): a JSON
    /// POST; a 2xx answer allows, anything else (or no answer in time) refuses.
    pub hook_url: String,
    /// How long the hook may take to answer, in ms; later is a refusal.
    pub hook_timeout_ms: u64,
    /// Most hook requests at once; a request beyond it is refused.
    pub hook_max_in_flight: usize,
    /// Secret (at least 32 bytes) that signs the tokens `POST /rest-api/auth/token` issues;
    /// empty: no tokens are issued or accepted.
    pub token_secret: String,
    /// Failed logins (wrong password, bad token) from one address within
    /// `failed_login_window_ms` before further attempts from it get 429.
    pub max_failed_logins: u32,
    /// The window of `max_failed_logins`, and how long an address is then refused, in ms.
    pub failed_login_window_ms: u64,
    /// Named users with their credentials, permissions and streams (`[[auth.users]]`; left
    /// out of the shipped file, where it is an example in comments).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<UserSettings>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            trusted_networks: vec!["127.0.0.0/8".to_string(), "::1/128".to_string()],
            anonymous: vec!["play".to_string()],
            hook_url: String::new(),
            hook_timeout_ms: 2000,
            hook_max_in_flight: 32,
            token_secret: String::new(),
            max_failed_logins: 10,
            failed_login_window_ms: 60000,
            users: Vec::new(),
        }
    }
}

/// One `[[auth.users]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserSettings {
    /// The user name of HTTP Basic authentication (no `:`).
    pub name: String,
    /// The password in clear; give this or `password_hash`.
    pub password: String,
    /// An argon2 PHC string (`$argon2id$v=19$m=…`); give this or `password`.
    pub password_hash: String,
    /// What the user may do: `api`, `pull`, `pull_private`, `play`, `records`.
    pub permissions: Vec<String>,
    /// Glob patterns (`*` any run of characters, `?` one character, `\` escapes) over local
    /// stream names and uris the user may act on.
    pub streams: Vec<String>,
}

impl Default for UserSettings {
    fn default() -> Self {
        Self {
            name: String::new(),
            password: String::new(),
            password_hash: String::new(),
            permissions: Vec::new(),
            streams: vec!["*".to_string()],
        }
    }
}

/// Limits that protect the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Most captures at once; a pull beyond it is refused with 500.
    pub max_captures: usize,
    /// Largest REST request body in bytes; larger gets 413.
    pub max_request_body: usize,
    /// Most viewers at once (WebRTC and HTTP-FLV), over all captures; past it a new viewer
    /// gets 503.
    pub max_viewers: usize,
    /// Most viewers of one capture (WebRTC and HTTP-FLV); past it a new viewer of it gets 503.
    pub max_viewers_per_capture: usize,
    /// Viewer starts (WHEP offers, WebSocket plays, FLV plays) one address may make per
    /// second on average (trusted networks: unlimited); past it 429 / `FAILED` with a retry
    /// time.
    pub viewer_starts_per_second: u32,
    /// ... and at once.
    pub viewer_start_burst: u32,
    /// WebSocket sessions one address may hold open (trusted networks: unlimited).
    pub ws_sessions_per_address: usize,
    /// Streams one WebSocket session may play at once.
    pub plays_per_session: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            max_captures: 64,
            max_request_body: 65536,
            max_viewers: 1000,
            max_viewers_per_capture: 500,
            viewer_starts_per_second: 5,
            viewer_start_burst: 20,
            ws_sessions_per_address: 16,
            plays_per_session: 16,
        }
    }
}

/// How a capture pulls its source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaptureSettings {
    /// TCP connect, including DNS resolution.
    pub connect_timeout_ms: u64,
    /// RTMP handshake (C0/C1 sent → S0/S1/S2 received).
    pub handshake_timeout_ms: u64,
    /// From `connect` sent to the `play` answer (or the first media).
    pub play_timeout_ms: u64,
    /// No media for this long after `play` (or after the source stopped publishing) ends
    /// the connection.
    pub media_timeout_ms: u64,
    /// No media for this long while streaming: the source stalled; the connection is
    /// dropped and the capture reconnects.
    pub stall_timeout_ms: u64,
    /// First delay before re-pulling a dropped source (jittered to ½–1× of it).
    pub reconnect_initial_ms: u64,
    /// Longest delay between re-pull attempts (the delay doubles up to it).
    pub reconnect_max_ms: u64,
    /// An on-demand capture whose source dropped gives up after this long without media;
    /// its viewers get `FAILED`. (REST captures keep trying until terminated.)
    pub on_demand_give_up_ms: u64,
    /// Chunk size we announce for what we send.
    pub chunk_size: u32,
    /// Buffer length we ask the server for (`SetBufferLength`), in ms.
    pub buffer_length_ms: u32,
    /// Frames a subscriber may have queued before it skips to the next keyframe.
    pub subscriber_queue_frames: usize,
    /// Bytes a subscriber may have queued (payload + per-frame overhead) before it skips to
    /// the next keyframe; one message larger than this still goes to an empty queue.
    pub subscriber_queue_bytes: usize,
    /// Media messages a source may send per second (and at once); more are read only as
    /// fast as this (TCP slows the source down), so a flood of tiny messages costs a
    /// capture at most this many messages' work per second.
    pub max_media_messages_per_second: u32,
    /// Bytes of media between the socket and the supervisor (tags and frames in flight);
    /// past this the reader stops reading until the capture catches up (TCP backpressure).
    pub ingest_queue_bytes: usize,
    /// Bytes queued for a transcoder (B-frame video, AAC → Opus); past this, frames are
    /// dropped (video until the next keyframe) instead of queued.
    pub transcoder_queue_bytes: usize,
    /// The frames since the latest keyframe kept for a new viewer's instant start (bytes,
    /// payload + per-frame overhead); past it the cache waits for the next keyframe.
    pub keyframe_cache_bytes: usize,
    /// What one capture may hold in memory: its queues and keyframe caches. A capture over
    /// it ends `FAILED` with the figures; the other captures go on.
    pub memory_budget_bytes: usize,
    /// An on-demand capture (a viewer played an rtmp:// name) stops this long after its
    /// last viewer leaves.
    pub on_demand_linger_ms: u64,
    /// Opus bitrate of the audio sent to WebRTC viewers (bits per second).
    pub opus_bitrate: u32,
    /// Bitrate of the Constrained Baseline video WebRTC viewers get when the source has
    /// B-frames (one transcode per capture), bits per second.
    pub bframe_transcode_bitrate: u32,
}

impl Default for CaptureSettings {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 5000,
            handshake_timeout_ms: 5000,
            play_timeout_ms: 10000,
            media_timeout_ms: 10000,
            stall_timeout_ms: 5000,
            reconnect_initial_ms: 1000,
            reconnect_max_ms: 30000,
            on_demand_give_up_ms: 20000,
            chunk_size: 4096,
            buffer_length_ms: 1000,
            subscriber_queue_frames: 512,
            subscriber_queue_bytes: 8 << 20,
            ingest_queue_bytes: 8 << 20,
            max_media_messages_per_second: 1000,
            transcoder_queue_bytes: 8 << 20,
            keyframe_cache_bytes: crate::gop::DEFAULT_KEYFRAME_CACHE_BYTES,
            memory_budget_bytes: 96 << 20,
            on_demand_linger_ms: 10000,
            opus_bitrate: 96000,
            bframe_transcode_bitrate: 2_500_000,
        }
    }
}

/// Which hosts a pull may reach (the SSRF guard, [`crate::net::pull_guard`]). By default a
/// pull may only reach public addresses; callers with the `pull_private` permission may
/// reach any address. Entries are CIDR ranges (`10.0.0.0/8`, `fd00::/8`, `192.0.2.7`) or host
/// patterns (`cams.example.com`, `*.example.com`, `cam-?.local`; case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PullSettings {
    /// Private or reserved targets anybody with the `pull` permission may reach: a host
    /// matching a pattern (whatever it resolves to), or addresses in a range.
    pub allow: Vec<String>,
    /// Targets nobody may reach, whatever their permissions and `allow` say: a host matching
    /// a pattern, or a host with any address in a range.
    pub deny: Vec<String>,
}

/// WebRTC viewers: ICE transport and timeouts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebRtcSettings {
    /// The UDP port every WebRTC viewer's ICE, DTLS and SRTP use (MediaMTX's 8189), and the
    /// TCP port of the same number for ICE-TCP.
    pub udp_port: u16,
    /// Public addresses announced as host candidates instead of the local ones (1:1 NAT,
    /// e.g. a cloud VM's public IP). Empty: announce the local addresses.
    pub public_ips: Vec<String>,
    /// Also offer loopback (127.0.0.1) candidates, for browsers on the same machine.
    pub loopback_candidates: bool,
    /// ICE and DTLS must be up within this time after the answer, else the viewer fails.
    pub connect_timeout_ms: u64,
    /// At most one keyframe request (PLI/FIR) per viewer is answered per this interval.
    pub keyframe_request_interval_ms: u64,
    /// The addresses every answer's candidates name, "ip" (on `udp_port`)
    /// or "ip:port" (a NAT's public address, a forwarded port). Empty: `public_ips` on
    /// `udp_port`, else the bind address, else (a wildcard bind) every non-loopback IPv4
    /// address of the machine; 127.0.0.1 is added when `loopback_candidates` is on.
    pub advertise: Vec<String>,
    /// Threads that protect and send the viewers' packets on `udp_port` (each viewer is one
    /// thread's); 0: one per core.
    pub port_workers: usize,
    /// Retired with the engine that gave each viewer a UDP port of its own: still read, so
    /// an older configuration loads, and ignored with a warning at start
    /// ([`WebRtcSettings::retired_keys`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp_port_count: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub one_port: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_rate_kbps: Option<u64>,
}

impl WebRtcSettings {
    /// The retired keys this configuration sets (each is ignored).
    pub fn retired_keys(&self) -> Vec<&'static str> {
        [
            ("webrtc.udp_port_count", self.udp_port_count.is_some()),
            ("webrtc.one_port", self.one_port.is_some()),
            ("webrtc.replay_rate_kbps", self.replay_rate_kbps.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, set)| set.then_some(key))
        .collect()
    }
}

impl Default for WebRtcSettings {
    fn default() -> Self {
        Self {
            udp_port: 8189,
            public_ips: Vec::new(),
            loopback_candidates: true,
            connect_timeout_ms: 10000,
            keyframe_request_interval_ms: 1000,
            advertise: Vec::new(),
            port_workers: 0,
            udp_port_count: None,
            one_port: None,
            replay_rate_kbps: None,
        }
    }
}

/// Recording (SPEC §4c).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordSettings {
    /// Folder for recordings (created when missing), relative to the working directory.
    pub folder: String,
    /// File name template: `{streamName}`, `{mediaSessionId}`, `{startTime}`, `{endTime}`,
    /// `{duration}`, `{audioCodec}`, `{videoCodec}`; `.mp4` is added.
    pub template: String,
    /// Record every pull that does not say `record` itself.
    pub by_default: bool,
    /// Longest fragment in ms: a crash loses at most about this much.
    pub fragment_ms: u32,
    /// Program run when a recording is finished, with the stream name and the file's
    /// absolute path as its two arguments; empty for none.
    pub hook: String,
    /// A hook still running after this long is killed.
    pub hook_timeout_ms: u64,
    /// Most hooks running at once (all captures); past it a hook is skipped and logged.
    pub max_running_hooks: usize,
    /// A file is not started (and an open one is closed) when the disk has less free space.
    pub min_free_bytes: u64,
    /// Most files one capture may start in a minute: a source flipping between codec
    /// configurations makes a new file at each change; past this its recording stops.
    pub max_files_per_minute: u32,
}

impl Default for RecordSettings {
    fn default() -> Self {
        Self {
            folder: "records".to_string(),
            template: "stream-{mediaSessionId}".to_string(),
            by_default: false,
            fragment_ms: 1000,
            hook: String::new(),
            hook_timeout_ms: 60_000,
            max_running_hooks: 4,
            min_free_bytes: 256 << 20,
            max_files_per_minute: 10,
        }
    }
}

/// LL-HLS out (one muxer per capture, started by its first HLS request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HlsSettings {
    /// Serve HLS at all (the playlist and media routes answer 404 when off).
    pub enabled: bool,
    /// Asked part length in ms; the part target is whole frames near it (about 200 ms
    /// gives 204 ms at 30 fps).
    pub part_ms: u32,
    /// A segment ends at the first keyframe at least this long (ms) after it began.
    pub segment_min_ms: u32,
    /// A segment ends without a keyframe after this long (ms).
    pub segment_max_ms: u32,
    /// Complete segments in the playlist (at least 7 makes delta updates skip some).
    pub segment_count: usize,
    /// Most bytes one stream's window holds (segments, parts, frames waiting for a cut).
    pub max_window_bytes: usize,
    /// Longest a blocking playlist or preload-hinted part request waits (ms) before it gets
    /// 503; 0 means three target durations.
    pub block_timeout_ms: u64,
    /// Longest the first playlist request waits for the first segment (ms) before 503.
    pub first_segment_timeout_ms: u64,
    /// A stream's muxer stops when no HLS request came for this long (ms).
    pub idle_timeout_ms: u64,
    /// Most requests waiting at once on one stream; past it 503.
    pub max_waiting: usize,
}

impl Default for HlsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            part_ms: 200,
            segment_min_ms: 1000,
            segment_max_ms: 10_000,
            segment_count: 10,
            max_window_bytes: 64 << 20,
            block_timeout_ms: 0,
            first_segment_timeout_ms: 15_000,
            idle_timeout_ms: 30_000,
            max_waiting: 4096,
        }
    }
}

/// The RTMP listener: players (ffmpeg, VLC, nginx-rtmp's `pull`, another pullcast) play any
/// capture from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RtmpSettings {
    /// Listen on `server.rtmp_port` at all.
    pub enabled: bool,
    /// Most RTMP connections at once.
    pub max_connections: usize,
    /// Most RTMP connections one address may hold open (trusted networks: unlimited).
    pub connections_per_address: usize,
    /// A connection that has not started playing (or publishing) this long after it opened
    /// is closed (ms).
    pub start_timeout_ms: u64,
    /// A player that takes in nothing for this long while data waits for it is closed (ms).
    pub send_timeout_ms: u64,
    /// A published stream whose publisher leaves waits this long for it (or another
    /// publisher of the name) to come back before it ends (ms).
    pub publish_grace_ms: u64,
}

impl Default for RtmpSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            max_connections: 2000,
            connections_per_address: 16,
            start_timeout_ms: 10_000,
            send_timeout_ms: 30_000,
            publish_grace_ms: 10_000,
        }
    }
}

/// The Prometheus scrape endpoint (`GET /metrics` on every HTTP listener).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Serve `/metrics` at all.
    pub enabled: bool,
    /// Anyone may scrape it (else it needs the `api` permission, like `find_all`).
    pub public: bool,
    /// Series per capture (labelled with its local stream name) besides the totals.
    pub per_stream: bool,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            public: false,
            per_stream: true,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// env_logger filter used when `RUST_LOG` is not set, e.g. "info" or "info,pullcast=debug".
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: "info".to_string(),
        }
    }
}
