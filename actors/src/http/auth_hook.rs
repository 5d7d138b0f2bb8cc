//! The authorization hook's client: one HTTP/1.1 POST per question to `auth.hook_url`, a
//! 2xx answer allows. It fails closed: no answer within `auth.hook_timeout_ms`, a refused
//! connection, anything but 2xx, or more than `auth.hook_max_in_flight` questions already
//! waiting — each is a refusal with a reason. Only the status line is read (at most 8 KiB).
//! The wire format is `pullcast::access::hook`'s.

use std::sync::Arc;
use std::time::Duration;

use pullcast::access::hook::{parse_status, HookQuestion, HookUrl};
use pullcast::config::AuthSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// The most of an answer read while looking for its status line.
const MAX_HEAD_BYTES: usize = 8192;

/// Asks the hook.
#[derive(Clone)]
pub struct HookClient {
    url: HookUrl,
    timeout: Duration,
    permits: Arc<Semaphore>,
}

impl HookClient {
    /// `None` when no hook is configured.
    pub fn new(auth: &AuthSettings) -> Result<Option<HookClient>, String> {
        if auth.hook_url.trim().is_empty() {
            return Ok(None);
        }
        if auth.hook_timeout_ms == 0 || auth.hook_max_in_flight == 0 {
            return Err(
                "auth.hook_timeout_ms and auth.hook_max_in_flight must be at least 1".to_string(),
            );
        }
        Ok(Some(HookClient {
            url: HookUrl::parse(&auth.hook_url)?,
            timeout: Duration::from_millis(auth.hook_timeout_ms),
            permits: Arc::new(Semaphore::new(auth.hook_max_in_flight)),
        }))
    }

    /// `Ok` when the hook answers 2xx in time; `Err(reason)` otherwise.
    pub async fn ask(&self, question: &HookQuestion) -> Result<(), String> {
        let _permit = self.permits.clone().try_acquire_owned().map_err(|_| {
            "too many authorization hook requests at once (auth.hook_max_in_flight)".to_string()
        })?;
        let request = question.request(&self.url);
        let exchange = exchange(&self.url, request);
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(status)) if (200..300).contains(&status) => Ok(()),
            Ok(Ok(status)) => Err(format!("the authorization hook answered {status}")),
            Ok(Err(e)) => Err(format!("the authorization hook failed: {e}")),
            Err(_) => Err(format!(
                "the authorization hook did not answer within {} ms",
                self.timeout.as_millis()
            )),
        }
    }
}

async fn exchange(url: &HookUrl, request: Vec<u8>) -> Result<u16, String> {
    let mut stream = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| format!("cannot connect to {}:{}: {e}", url.host, url.port))?;
    stream
        .write_all(&request)
        .await
        .map_err(|e| format!("cannot send the request: {e}"))?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 1024];
    loop {
        if let Some(status) = parse_status(&head) {
            return Ok(status);
        }
        if head.len() >= MAX_HEAD_BYTES || head.windows(2).any(|w| w == b"\r\n") {
            return Err("the answer has no HTTP status line".to_string());
        }
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("cannot read the answer: {e}"))?;
        if n == 0 {
            return Err("the connection closed before an HTTP status line".to_string());
        }
        head.extend_from_slice(buf.get(..n).unwrap_or(&[]));
    }
}
