//! `Registry`: the single owner of all captures. It answers `Pull`, `FindAll` and
//! `Terminate`, refuses a second capture of the same uri or local stream name, enforces
//! the capture limit, and spreads captures over a small pool of arbiters (one thread per
//! core) so captures use every core.
//!
//! It holds addresses, never media; a capture's state lives in its `StreamSupervisor`.
//!
//! Nothing can replace it, so it must never be lost: every handler runs inside
//! [`panic_guard::catch`]. A bug that panics while answering one request answers that request
//! with an error (500) and leaves the capture list as it was before the request.

use actix::prelude::*;
use futures_util::future::join_all;
use log::info;
use pullcast::config::Settings;
use uuid::Uuid;

use crate::messages::{
    CaptureEnd, CaptureEnded, CaptureHandle, CaptureSnapshot, FindAll, GetSnapshot, InjectPanic,
    PanicTarget, Publish, Publishing, Pull, PullError, PullRequest, SharedPayloads, Shutdown,
    StopCapture, Terminate, TerminateError, Watch, WatchError,
};
use crate::panic_guard::{self, Panic};
use crate::stream::published::PublishSlot;
use crate::stream::supervisor::StreamSupervisor;
use crate::stream::SourceStarter;
use crate::telemetry::SharedTelemetry;
use pullcast::access::redact_uri;
use pullcast::rtmp::RtmpUrl;

#[derive(Clone)]
struct Entry {
    id: Uuid,
    uri: String,
    local_stream_name: String,
    addr: Addr<StreamSupervisor>,
    telemetry: SharedTelemetry,
    end: CaptureEnd,
    payloads: SharedPayloads,
    /// A published capture's meeting point with its publishers.
    publish: Option<PublishSlot>,
}

/// Owns every capture.
pub struct Registry {
    settings: Settings,
    starter: SourceStarter,
    captures: Vec<Entry>,
    arbiters: Vec<Arbiter>,
    next_arbiter: usize,
}

impl Registry {
    /// `threads` capture threads (0: one per core); `starter` opens each capture's source.
    pub fn new(settings: Settings, starter: SourceStarter, threads: usize) -> Self {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        let arbiters = (0..threads).map(|_| Arbiter::new()).collect();
        Self::with_arbiters(settings, starter, arbiters)
    }
}

impl Registry {
    /// A Registry whose captures run on the arbiter it is started on, not on capture
    /// threads of their own: for tests that drive the clock of that one runtime.
    pub fn on_this_arbiter(settings: Settings, starter: SourceStarter) -> Self {
        Self::with_arbiters(settings, starter, Vec::new())
    }

    /// Captures on `arbiters` in turn (none: on the Registry's own).
    fn with_arbiters(settings: Settings, starter: SourceStarter, arbiters: Vec<Arbiter>) -> Self {
        Self {
            settings,
            starter,
            captures: Vec::new(),
            arbiters,
            next_arbiter: 0,
        }
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
    }
}

impl Registry {
    /// Checks the request against the captures and limits, then starts its supervisor.
    fn register(
        &mut self,
        request: PullRequest,
        ctx: &mut Context<Self>,
    ) -> Result<Entry, PullError> {
        self.register_with(request, None, ctx)
    }

    /// [`register`](Self::register) with the source of a published capture.
    fn register_with(
        &mut self,
        request: PullRequest,
        publish: Option<PublishSlot>,
        ctx: &mut Context<Self>,
    ) -> Result<Entry, PullError> {
        if self.captures.iter().any(|c| c.uri == request.uri) {
            return Err(PullError::Conflict(format!(
                "{} is already being pulled; play the existing stream",
                request.uri
            )));
        }
        if let Some(other) = self
            .captures
            .iter()
            .find(|c| c.local_stream_name == request.local_stream_name)
        {
            return Err(PullError::Conflict(format!(
                "the local stream name '{}' is already used by the capture of {}",
                request.local_stream_name, other.uri
            )));
        }
        if self.captures.len() >= self.settings.limits.max_captures {
            return Err(PullError::CannotStart(format!(
                "the capture limit of {} is reached (limits.max_captures)",
                self.settings.limits.max_captures
            )));
        }
        let id = Uuid::new_v4();
        let settings = self.settings.capture.clone();
        let starter = match &publish {
            Some(slot) => slot.starter(),
            None => self.starter.clone(),
        };
        let registry = ctx.address().recipient();
        let supervisor =
            StreamSupervisor::new(id, request.clone(), settings, starter, Some(registry))
                .with_record_settings(self.settings.record.clone());
        let telemetry = supervisor.telemetry();
        let end = supervisor.end();
        let supervisor = move |_: &mut Context<StreamSupervisor>| supervisor;
        let addr = match self
            .arbiters
            .get(self.next_arbiter % self.arbiters.len().max(1))
        {
            Some(arbiter) => StreamSupervisor::start_in_arbiter(&arbiter.handle(), supervisor),
            None => StreamSupervisor::create(supervisor),
        };
        self.next_arbiter += 1;
        info!(
            "registered {}capture {id} of {}",
            if request.on_demand { "on-demand " } else { "" },
            redact_uri(&request.uri)
        );
        let entry = Entry {
            id,
            uri: request.uri,
            local_stream_name: request.local_stream_name,
            addr,
            telemetry,
            end,
            payloads: SharedPayloads::default(),
            publish,
        };
        self.captures.push(entry.clone());
        Ok(entry)
    }
}

impl Handler<Pull> for Registry {
    type Result = ResponseFuture<Result<CaptureSnapshot, PullError>>;

    fn handle(&mut self, msg: Pull, ctx: &mut Self::Context) -> Self::Result {
        let registered = panic_guard::catch(|| self.register(msg.request, ctx))
            .unwrap_or_else(|p| Err(PullError::CannotStart(self.survived(p))));
        Box::pin(async move {
            registered?
                .addr
                .send(GetSnapshot)
                .await
                .map_err(|e| PullError::CannotStart(format!("the capture did not start: {e}")))
        })
    }
}

impl Handler<Publish> for Registry {
    type Result = Result<Publishing, PullError>;

    fn handle(&mut self, msg: Publish, ctx: &mut Self::Context) -> Self::Result {
        panic_guard::catch(|| self.publish(msg.request, ctx))
            .unwrap_or_else(|p| Err(PullError::CannotStart(self.survived(p))))
    }
}

impl Registry {
    fn publish(
        &mut self,
        request: PullRequest,
        ctx: &mut Context<Self>,
    ) -> Result<Publishing, PullError> {
        let name = &request.local_stream_name;
        if let Some(entry) = self.captures.iter().find(|c| &c.local_stream_name == name) {
            return match &entry.publish {
                Some(slot) if slot.is_waiting() => Ok(Publishing {
                    id: entry.id,
                    slot: slot.clone(),
                    resumed: true,
                }),
                Some(_) => Err(PullError::Conflict(format!(
                    "'{name}' is being published already"
                ))),
                None => Err(PullError::Conflict(format!(
                    "the name '{name}' is used by the capture of {}",
                    redact_uri(&entry.uri)
                ))),
            };
        }
        let slot = PublishSlot::default();
        let entry = self.register_with(request, Some(slot.clone()), ctx)?;
        Ok(Publishing {
            id: entry.id,
            slot,
            resumed: false,
        })
    }
}

impl Handler<Watch> for Registry {
    type Result = Result<CaptureHandle, WatchError>;

    fn handle(&mut self, msg: Watch, ctx: &mut Self::Context) -> Self::Result {
        panic_guard::catch(|| self.watch(msg, ctx))
            .unwrap_or_else(|p| Err(WatchError::CannotStart(self.survived(p))))
    }
}

impl Registry {
    /// The capture a viewer asks for; an rtmp:// name with none yet is pulled on demand.
    fn watch(&mut self, msg: Watch, ctx: &mut Context<Self>) -> Result<CaptureHandle, WatchError> {
        let name = msg.name.trim();
        let found = self
            .captures
            .iter()
            .find(|c| c.local_stream_name == name)
            .or_else(|| self.captures.iter().find(|c| c.uri == name))
            .cloned();
        let entry = match found {
            Some(entry) => entry,
            None if msg.may_start_pull && is_rtmp_url(name) => {
                // SPEC §3: an rtmp:// name is pulled on demand, as /pull/rtmp/pull would.
                let url = RtmpUrl::parse(name).map_err(|e| {
                    WatchError::CannotStart(format!("cannot pull '{name}': {e}"))
                })?;
                let request = PullRequest {
                    uri: name.to_string(),
                    url,
                    local_stream_name: name.to_string(),
                    record: false,
                    has_audio: true,
                    has_video: true,
                    on_demand: true,
                    published: false,
                    publish_grace_ms: 0,
                    may_pull_private: msg.may_pull_private,
                };
                self.register(request, ctx).map_err(|e| match e {
                    PullError::Conflict(e) | PullError::CannotStart(e) => {
                        WatchError::CannotStart(e)
                    }
                })?
            }
            None => {
                return Err(WatchError::NotFound(format!(
                    "Stream not found: no capture is named '{name}' (pull it first, or play an rtmp:// URL)"
                )))
            }
        };
        Ok(CaptureHandle {
            id: entry.id,
            uri: entry.uri,
            local_stream_name: entry.local_stream_name,
            subscribe: entry.addr.clone().recipient(),
            subscribe_on_port: entry.addr.clone().recipient(),
            unsubscribe: entry.addr.clone().recipient(),
            keyframe: entry.addr.recipient(),
            telemetry: entry.telemetry,
            end: entry.end,
            payloads: entry.payloads,
        })
    }
}

impl Handler<FindAll> for Registry {
    type Result = ResponseFuture<Vec<CaptureSnapshot>>;

    fn handle(&mut self, _msg: FindAll, _ctx: &mut Self::Context) -> Self::Result {
        let asks: Vec<_> = panic_guard::catch(|| {
            self.captures
                .iter()
                .map(|c| c.addr.send(GetSnapshot))
                .collect()
        })
        .unwrap_or_else(|p| {
            self.survived(p);
            Vec::new()
        });
        Box::pin(async move {
            join_all(asks)
                .await
                .into_iter()
                .filter_map(Result::ok)
                .collect()
        })
    }
}

impl Handler<Terminate> for Registry {
    type Result = Result<(), TerminateError>;

    fn handle(&mut self, msg: Terminate, _ctx: &mut Self::Context) -> Self::Result {
        panic_guard::catch(|| self.terminate(msg))
            .unwrap_or_else(|p| Err(TerminateError::Internal(self.survived(p))))
    }
}

impl Registry {
    fn terminate(&mut self, msg: Terminate) -> Result<(), TerminateError> {
        let Some(index) = self.captures.iter().position(|c| c.uri == msg.uri) else {
            return Err(TerminateError::NotFound(format!(
                "no capture of {} (find_all lists them)",
                msg.uri
            )));
        };
        let entry = self.captures.remove(index);
        info!(
            "terminating capture {} of {}",
            entry.id,
            redact_uri(&entry.uri)
        );
        entry.addr.do_send(StopCapture {
            reason: "terminated through the REST API".to_string(),
        });
        Ok(())
    }
}

impl Handler<Shutdown> for Registry {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: Shutdown, _ctx: &mut Self::Context) -> Self::Result {
        info!(
            "stopping {} capture(s): {}",
            self.captures.len(),
            msg.reason
        );
        let stops: Vec<_> = self
            .captures
            .drain(..)
            .map(|c| {
                c.addr.send(StopCapture {
                    reason: msg.reason.clone(),
                })
            })
            .collect();
        Box::pin(async move {
            join_all(stops).await;
        })
    }
}

impl Handler<CaptureEnded> for Registry {
    type Result = ();

    fn handle(&mut self, msg: CaptureEnded, _ctx: &mut Self::Context) {
        // Only the capture with this id: a newer capture of the same uri stays.
        self.captures.retain(|c| c.id != msg.id);
    }
}

impl Handler<InjectPanic> for Registry {
    type Result = ();

    fn handle(&mut self, msg: InjectPanic, _ctx: &mut Self::Context) {
        let outcome = panic_guard::catch(|| match &msg.target {
            PanicTarget::Registry => panic!("injected panic (test)"),
            PanicTarget::Capture { name } => {
                if let Some(c) = self
                    .captures
                    .iter()
                    .find(|c| &c.local_stream_name == name || &c.uri == name)
                {
                    c.addr.do_send(msg.clone());
                }
            }
        });
        if let Err(p) = outcome {
            self.survived(p);
        }
    }
}

impl Registry {
    /// Logs a panic caught in a handler; the answer to that one request is this reason.
    fn survived(&self, panic: Panic) -> String {
        log::error!(
            "the registry caught a panic and carries on with {} capture(s): {panic}",
            self.captures.len()
        );
        panic.reason("the registry")
    }
}

/// Whether a stream name asks for an `rtmp://` URL (case-insensitive scheme). Names are user
/// input in any script: compared by characters, never sliced at a byte offset.
fn is_rtmp_url(name: &str) -> bool {
    name.get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("rtmp://"))
}

#[cfg(test)]
mod tests {
    use super::is_rtmp_url;

    #[test]
    fn rtmp_names_in_any_script() {
        assert!(is_rtmp_url("rtmp://h/a/s"));
        assert!(is_rtmp_url("RTMP://h/a/s"));
        for name in [
            "直播流",
            "rtmp:/",
            "",
            "ёлка-ёлка",
            "rtmp\u{fe0f}://",
            "cafés",
            "rtmp:/é/",
        ] {
            assert!(!is_rtmp_url(name), "{name}");
        }
        assert!(!is_rtmp_url("rtmp:/\u{00e9}//x"));
    }
}
