//! Janus's HTTP API, as a viewer of one streaming-plugin mountpoint (`--janus ID`): the
//! peer that `bench/fanout.sh` runs side by side with pullcast, watched by the same lean
//! viewers ([`crate::lean`]).
//!
//! Janus offers and the viewer answers (WHEP is the other way round): create a session,
//! attach the streaming plugin, `watch` the mountpoint, long-poll the session for the event
//! that carries the offer (every candidate in it), then `start` with the answer. A session
//! that hears nothing for 60 s is reaped, so a keepalive goes out every
//! [`KEEPALIVE_EVERY`]. `destroy` at the end. All calls are blocking HTTP on the blocking pool.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::viewer::{Config, Shared};

/// Well under Janus's default 60 s session timeout.
pub const KEEPALIVE_EVERY: Duration = Duration::from_secs(20);
/// Long-polls for the offer before giving up (each returns after at most 30 s).
const OFFER_POLLS: usize = 3;

/// One viewer's Janus session and plugin handle.
pub struct JanusViewer {
    /// `{server}/{session}`.
    pub session_url: String,
    /// `{server}/{session}/{handle}`.
    handle_url: String,
}

fn post(http: &ureq::Agent, url: &str, body: Value) -> Result<Value, String> {
    let response = http
        .post(url)
        .set("Content-Type", "application/json")
        .send_string(&body.to_string())
        .map_err(|e| format!("POST {url}: {e}"))?;
    let text = response
        .into_string()
        .map_err(|e| format!("POST {url}: reading the reply: {e}"))?;
    let reply: Value =
        serde_json::from_str(&text).map_err(|e| format!("POST {url}: not JSON: {e}"))?;
    match reply["janus"].as_str() {
        Some("success") | Some("ack") => Ok(reply),
        _ => Err(format!("POST {url}: {text}")),
    }
}

fn id_of(reply: &Value, what: &str) -> Result<u64, String> {
    reply["data"]["id"]
        .as_u64()
        .ok_or_else(|| format!("no {what} id in {reply}"))
}

/// Creates the session and handle, asks to watch `mountpoint` and waits for the offer. The
/// viewer's clock starts as the watch request is sent.
pub async fn watch(
    config: &Config,
    shared: &Arc<Shared>,
    mountpoint: u64,
) -> Result<(JanusViewer, String), String> {
    let http = config.http.clone();
    let server = config.server.clone();
    let shared = Arc::clone(shared);
    tokio::task::spawn_blocking(move || -> Result<(JanusViewer, String), String> {
        let session = post(
            &http,
            &server,
            json!({"janus": "create", "transaction": "c"}),
        )?;
        let session_url = format!("{server}/{}", id_of(&session, "session")?);
        let attach =
            json!({"janus": "attach", "plugin": "janus.plugin.streaming", "transaction": "a"});
        let handle = post(&http, &session_url, attach)?;
        let handle_url = format!("{session_url}/{}", id_of(&handle, "handle")?);
        let request = json!({
            "janus": "message",
            "transaction": "w",
            "body": {"request": "watch", "id": mountpoint},
        });
        shared.posted_now();
        post(&http, &handle_url, request)?;
        let viewer = JanusViewer {
            session_url,
            handle_url,
        };
        for _ in 0..OFFER_POLLS {
            let url = format!("{}?maxev=1", viewer.session_url);
            let text = http
                .get(&url)
                .call()
                .map_err(|e| format!("GET {url}: {e}"))?
                .into_string()
                .map_err(|e| format!("GET {url}: {e}"))?;
            let event: Value =
                serde_json::from_str(&text).map_err(|e| format!("GET {url}: not JSON: {e}"))?;
            if let Some(sdp) = event["jsep"]["sdp"].as_str() {
                shared.mark(|t, ms| t.answer_ms = Some(ms));
                return Ok((viewer, sdp.to_string()));
            }
            if event["plugindata"]["data"]["error"].is_string() {
                return Err(format!("watch {mountpoint}: {text}"));
            }
        }
        Err(format!("no offer for mountpoint {mountpoint}"))
    })
    .await
    .map_err(|e| format!("watch task: {e}"))?
}

impl JanusViewer {
    /// Sends the answer with `start`.
    pub async fn start(&self, http: ureq::Agent, answer_sdp: String) -> Result<(), String> {
        let url = self.handle_url.clone();
        let body = json!({
            "janus": "message",
            "transaction": "s",
            "body": {"request": "start"},
            "jsep": {"type": "answer", "sdp": answer_sdp},
        });
        tokio::task::spawn_blocking(move || post(&http, &url, body).map(drop))
            .await
            .map_err(|e| format!("start task: {e}"))?
    }
}

/// Keeps `session_url` alive until the task is aborted.
pub async fn keep_alive(http: ureq::Agent, session_url: String) {
    loop {
        tokio::time::sleep(KEEPALIVE_EVERY).await;
        let (http, url) = (http.clone(), session_url.clone());
        let body = json!({"janus": "keepalive", "transaction": "k"});
        let _ = tokio::task::spawn_blocking(move || post(&http, &url, body)).await;
    }
}

/// Destroys the session (and its handle and connection).
pub fn destroy(http: &ureq::Agent, session_url: &str) -> Result<(), String> {
    post(
        http,
        session_url,
        json!({"janus": "destroy", "transaction": "d"}),
    )
    .map(drop)
}
