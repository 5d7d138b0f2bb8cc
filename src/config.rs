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
    pub limits: LimitSettings,
    pub capture: CaptureSettings,
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
    /// HTTP worker threads; 0 means one per core.
    pub http_workers: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            bind: "0.0.0.0".to_string(),
            rest_http_port: 8081,
            rest_https_port: 8444,
            http_workers: 0,
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
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            cert_file: String::new(),
            key_file: String::new(),
            self_signed_dir: "tls".to_string(),
        }
    }
}

/// Who may call the REST API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct RestSettings {
    /// HTTP Basic authentication user; authentication is off while this is empty.
    pub basic_auth_user: String,
    /// HTTP Basic authentication password.
    pub basic_auth_password: String,
    /// Browser origins allowed to call the API (CORS), e.g. `["https://ops.example.com"]`;
    /// `["*"]` allows any origin; empty sends no CORS headers.
    pub cors_allowed_origins: Vec<String>,
}

/// Limits that protect the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Most captures at once; a pull beyond it is refused with 500.
    pub max_captures: usize,
    /// Largest REST request body in bytes; larger gets 413.
    pub max_request_body: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            max_captures: 64,
            max_request_body: 65536,
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
    /// No media for this long after `play` (or mid-stream) fails the capture.
    pub media_timeout_ms: u64,
    /// Chunk size we announce for what we send.
    pub chunk_size: u32,
    /// Buffer length we ask the server for (`SetBufferLength`), in ms.
    pub buffer_length_ms: u32,
    /// Frames a subscriber may have queued before it skips to the next keyframe.
    pub subscriber_queue_frames: usize,
}

impl Default for CaptureSettings {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 5000,
            handshake_timeout_ms: 5000,
            play_timeout_ms: 10000,
            media_timeout_ms: 10000,
            chunk_size: 4096,
            buffer_length_ms: 1000,
            subscriber_queue_frames: 512,
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
