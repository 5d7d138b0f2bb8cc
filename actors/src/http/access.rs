//! The gate every way in goes through: REST, WHEP, WebSocket signalling, recording
//! downloads, HTTP-FLV, HLS, RTMP play and publish, /metrics. It runs the decisions of `pullcast::access`
//! — who the caller is, whether it may do a thing — with what they need from outside:
//! the TCP peer address, the clock, the failed-login throttle's lock, the hook's socket.
//!
//! - [`Authenticated`] is the extractor: the caller from the [`Client`] (its address and
//!   whether its `Host` names this server) and the `Authorization` header (401 for wrong
//!   credentials, 429 while throttled).
//! - [`Gate::allow`] decides one action on one stream (401, 403, or the hook's answer).
//! - [`guard`] is the `/rest-api` middleware for CORS (preflights, headers).
//!
//! The client address is the TCP peer's, or, from a proxy in `http.trusted_proxies`, the
//! one its `X-Forwarded-For` names. Trust by address (`auth.trusted_networks`) also needs a
//! `Host` that names this server (DNS rebinding). Nothing here reads bodies.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use log::{debug, info, warn};
use pullcast::access::forwarded::client_address;
use pullcast::access::hook::{canonical, HookQuestion};
use pullcast::access::host_check::names_this_server;
use pullcast::access::origin::origin_allowed;
use pullcast::access::{
    Caller, Credentials, Decision, Identity, LoginThrottle, Permission, Policy,
};
use pullcast::config::Settings;
use pullcast::net::cidr::Cidr;
use pullcast::rtmp::RtmpUrl;

use super::auth_hook::HookClient;
use super::dto::error;

/// One action to decide: what, on which stream, through which way in.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    pub permission: Permission,
    /// The name the client used (a local stream name or a uri), if the action is about a
    /// stream.
    pub stream: Option<&'a str>,
    /// The capture's local stream name, when known and different.
    pub local_name: Option<&'a str>,
    /// The capture's uri, when known.
    pub uri: Option<&'a str>,
    /// `rest`, `whep`, `websocket`, `download`, `flv`, `hls`, `rtmp`, `metrics`: told to
    /// the hook.
    pub protocol: &'static str,
}

impl<'a> Ask<'a> {
    /// An action on no stream in particular.
    pub fn new(permission: Permission, protocol: &'static str) -> Self {
        Self {
            permission,
            stream: None,
            local_name: None,
            uri: None,
            protocol,
        }
    }

    /// The same action on the stream the client called `name`.
    pub fn on(mut self, name: &'a str) -> Self {
        self.stream = Some(name);
        self
    }

    /// The capture's own names, when it was found.
    pub fn capture(mut self, local_name: &'a str, uri: &'a str) -> Self {
        self.local_name = Some(local_name);
        self.uri = Some(uri);
        self
    }

    fn names(&self) -> Vec<&'a str> {
        let mut names: Vec<&str> = Vec::with_capacity(3);
        for name in [self.stream, self.local_name, self.uri]
            .into_iter()
            .flatten()
        {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 401: no or wrong credentials.
    Unauthenticated(String),
    /// 403: not allowed, whoever the caller is.
    Forbidden(String),
    /// 429: too many failed logins from this address.
    Throttled { retry_after_s: u64 },
}

impl Refusal {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Refusal::Forbidden(_) => StatusCode::FORBIDDEN,
            Refusal::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The sentence for the client.
    pub fn reason(&self) -> String {
        match self {
            Refusal::Unauthenticated(r) | Refusal::Forbidden(r) => r.clone(),
            Refusal::Throttled { retry_after_s } => {
                format!("too many failed logins from this address; try again in {retry_after_s} s")
            }
        }
    }

    /// The JSON answer with its headers (`WWW-Authenticate`, `Retry-After`).
    pub fn response(&self) -> HttpResponse {
        self.response_saying(&self.reason())
    }

    /// The same answer with another sentence (e.g. with stream keys hidden).
    pub fn response_saying(&self, reason: &str) -> HttpResponse {
        let mut response = error(self.status(), reason);
        let headers = response.headers_mut();
        match self {
            Refusal::Unauthenticated(_) => {
                headers.append(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"pullcast\", charset=\"UTF-8\""),
                );
                headers.append(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"pullcast\""),
                );
            }
            Refusal::Throttled { retry_after_s } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after_s.to_string()) {
                    headers.insert(header::RETRY_AFTER, v);
                }
            }
            Refusal::Forbidden(_) => {}
        }
        response
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason())
    }
}

impl ResponseError for Refusal {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        self.response()
    }
}

/// The access model with what it needs from the outside world. Cheap to clone.
#[derive(Clone)]
pub struct Gate {
    policy: Arc<Policy>,
    throttle: Arc<Mutex<LoginThrottle>>,
    hook: Option<HookClient>,
    cors_origins: Arc<Vec<String>>,
    websocket_origins: Arc<Vec<String>>,
    epoch: Instant,
    /// Where pulls may go (checked again by the reader at every connection).
    pull_guard: Arc<pullcast::net::pull_guard::PullGuard>,
    /// DNS lookup time allowed when a pull target is checked before it is registered.
    pull_check_timeout: std::time::Duration,
    /// `http.trusted_proxies`: whose `X-Forwarded-For` is believed.
    trusted_proxies: Arc<Vec<Cidr>>,
    /// `http.host_names` and `tls.host_names`: the names a trusted request may use in `Host`.
    host_names: Arc<Vec<String>>,
}

/// Where a request comes from, as far as trust goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The TCP peer, or the address a trusted proxy forwards for.
    pub address: IpAddr,
    /// Whether the request's `Host` names this server: trust by address needs it.
    pub names_this_server: bool,
}

impl Gate {
    /// Builds the gate from the settings (the same checks as loading them).
    pub fn new(settings: &Settings) -> Result<Gate, String> {
        let policy = Policy::new(&settings.auth, &settings.rest)?;
        if !settings.rest.basic_auth_user.is_empty() {
            info!(
                "rest.basic_auth_user '{}' is the old spelling of an [[auth.users]] entry with every permission on every stream",
                settings.rest.basic_auth_user
            );
        }
        let trusted_proxies =
            Cidr::parse_list(&settings.http.trusted_proxies, "http.trusted_proxies")?;
        let host_names = settings
            .http
            .host_names
            .iter()
            .chain(&settings.tls.host_names)
            .cloned()
            .collect();
        Ok(Gate {
            policy: Arc::new(policy),
            throttle: Arc::new(Mutex::new(LoginThrottle::new(
                settings.auth.max_failed_logins,
                settings.auth.failed_login_window_ms,
            ))),
            hook: HookClient::new(&settings.auth)?,
            cors_origins: Arc::new(settings.rest.cors_allowed_origins.clone()),
            websocket_origins: Arc::new(settings.http.allowed_origins.clone()),
            epoch: Instant::now(),
            pull_guard: crate::stream::connect::pull_guard(&settings.pull)?,
            pull_check_timeout: std::time::Duration::from_millis(
                settings.capture.connect_timeout_ms,
            ),
            trusted_proxies: Arc::new(trusted_proxies),
            host_names: Arc::new(host_names),
        })
    }

    /// The decisions.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn throttle(&self) -> std::sync::MutexGuard<'_, LoginThrottle> {
        self.throttle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where `req` comes from: its client's address (behind trusted proxies) and whether
    /// its `Host` names this server.
    pub fn client(&self, req: &HttpRequest) -> Client {
        let peer = req
            .peer_addr()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| canonical(a.ip()));
        // Several X-Forwarded-For headers are one list, in order.
        let forwarded: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .map(header_text)
            .collect();
        let forwarded = (!forwarded.is_empty()).then(|| forwarded.join(","));
        Client {
            address: client_address(peer, forwarded.as_deref(), &self.trusted_proxies),
            names_this_server: names_this_server(
                req.headers().get(header::HOST).map(header_text),
                &self.host_names,
            ),
        }
    }

    /// Who `client` is, given what it presented (`Err` for credentials that could not even
    /// be read). Failed logins are counted per address; past the limit the answer is 429
    /// until the window ends. Trusted clients are never throttled.
    pub async fn authenticate(
        &self,
        client: Client,
        credentials: Result<Option<Credentials>, String>,
    ) -> Result<Caller, Refusal> {
        let address = canonical(client.address);
        if self.policy.is_trusted(address) {
            if client.names_this_server {
                return Ok(Caller {
                    address,
                    identity: Identity::Trusted,
                });
            }
            debug!("{address}: in trusted_networks, but its Host is not a name of this server: not trusted");
        }
        let credentials = match credentials {
            Ok(None) => {
                return Ok(Caller {
                    address,
                    identity: Identity::Anonymous,
                })
            }
            Ok(Some(c)) => Ok(c),
            Err(e) => Err(e),
        };
        if let Err(retry_after_s) = self.throttle().check(address, self.now_ms()) {
            return Err(Refusal::Throttled { retry_after_s });
        }
        let checked = match credentials {
            Err(e) => Err(e),
            Ok(credentials) => {
                let now_unix_s = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                if self.policy.is_slow_to_check(&credentials) {
                    let policy = self.policy.clone();
                    web::block(move || policy.authenticate(address, Some(&credentials), now_unix_s))
                        .await
                        .unwrap_or_else(|e| Err(format!("cannot check the password: {e}")))
                } else {
                    self.policy
                        .authenticate(address, Some(&credentials), now_unix_s)
                }
            }
        };
        match checked {
            Ok(caller) => {
                self.throttle().record_success(address, self.now_ms());
                Ok(caller)
            }
            Err(reason) => {
                let blocked = self.throttle().record_failure(address, self.now_ms());
                info!("failed login from {address}: {reason}");
                if let Some(s) = blocked {
                    warn!("{address}: too many failed logins; refusing logins from it for {s} s");
                }
                Err(Refusal::Unauthenticated(reason))
            }
        }
    }

    /// Refuses at once a caller that cannot have `permission` on any stream (before a
    /// stream is looked up, so its existence is not revealed). Asks no hook.
    pub fn precheck(&self, caller: &Caller, permission: Permission) -> Result<(), Refusal> {
        match self.policy.decide(caller, permission, &[]) {
            Decision::Allow | Decision::AskHook => Ok(()),
            refused => Err(self.refusal(caller, refused)),
        }
    }

    /// The refusal for a decision that refuses; one to a client of a trusted network that
    /// was not trusted for its `Host` says why.
    fn refusal(&self, caller: &Caller, decision: Decision) -> Refusal {
        let hint = |reason: String| {
            if !caller.is_trusted() && self.policy.is_trusted(caller.address) {
                format!("{reason} (a client of auth.trusted_networks is trusted only when its Host header is an IP address, localhost or one of http.host_names)")
            } else {
                reason
            }
        };
        match decision {
            Decision::Unauthenticated(r) => Refusal::Unauthenticated(hint(r)),
            Decision::Forbidden(r) => Refusal::Forbidden(hint(r)),
            Decision::Allow | Decision::AskHook => {
                Refusal::Forbidden("refused (internal: an allowing decision)".to_string())
            }
        }
    }

    /// The policy's decision on `ask` without the hook (which `allow` asks later): refuses
    /// early what the rules refuse, so the hook is asked only about what they allow.
    pub fn check(&self, caller: &Caller, ask: Ask<'_>) -> Result<(), Refusal> {
        match self.policy.decide(caller, ask.permission, &ask.names()) {
            Decision::Allow | Decision::AskHook => Ok(()),
            refused => Err(self.refusal(caller, refused)),
        }
    }

    /// Whether `caller` may do `ask`: the policy's decision, and the hook's answer when the
    /// policy asks for it.
    pub async fn allow(&self, caller: &Caller, ask: Ask<'_>) -> Result<(), Refusal> {
        match self.policy.decide(caller, ask.permission, &ask.names()) {
            Decision::Allow => Ok(()),
            refused @ (Decision::Unauthenticated(_) | Decision::Forbidden(_)) => {
                Err(self.refusal(caller, refused))
            }
            Decision::AskHook => {
                let Some(hook) = &self.hook else {
                    return Err(Refusal::Forbidden(
                        "no authorization hook is configured".to_string(),
                    ));
                };
                let question = HookQuestion {
                    action: ask.permission,
                    stream: ask.stream.map(str::to_string),
                    uri: ask.uri.map(str::to_string),
                    user: caller.user_name().map(str::to_string),
                    address: caller.address,
                    protocol: ask.protocol,
                    token: match &caller.identity {
                        Identity::Foreign { token } => Some(token.clone()),
                        _ => None,
                    },
                };
                hook.ask(&question).await.map_err(|reason| {
                    info!(
                        "{} {} by {}: refused by the hook ({reason})",
                        ask.protocol, ask.permission, caller.address
                    );
                    Refusal::Forbidden(format!("refused by the authorization hook: {reason}"))
                })
            }
        }
    }

    /// Whether `caller` may see uris as they are (query and user information included):
    /// callers with `api`. Everybody else gets them through `pullcast::access::redact_*`.
    pub fn shows_uris(&self, caller: &Caller) -> bool {
        self.policy.holds(caller, Permission::Api)
    }

    /// Checks where a pull of `url` would connect before the capture is registered: a
    /// target the pull guard refuses for this caller is a 403 at once (with the precise
    /// reason for `api` callers, a generic one for others: no port-scan oracle). A host that
    /// does not resolve is left to the capture, which reports and retries as before.
    pub async fn check_pull_target(&self, caller: &Caller, url: &RtmpUrl) -> Result<(), Refusal> {
        let may_pull_private = self.policy.holds(caller, Permission::PullPrivate);
        match crate::stream::connect::precheck(
            url,
            &self.pull_guard,
            may_pull_private,
            self.pull_check_timeout,
        )
        .await
        {
            Err(refused) if refused.by_policy => Err(Refusal::Forbidden(
                refused.reason_for(self.shows_uris(caller)).to_string(),
            )),
            _ => Ok(()),
        }
    }

    /// The `Access-Control-Allow-Origin` value for `origin`, if `rest.cors_allowed_origins`
    /// allows it.
    pub fn cors_origin(&self, origin: &str) -> Option<HeaderValue> {
        if self.cors_origins.iter().any(|o| o == "*") {
            return Some(HeaderValue::from_static("*"));
        }
        self.cors_origins
            .iter()
            .any(|o| o.trim_end_matches('/') == origin)
            .then(|| HeaderValue::from_str(origin).ok())
            .flatten()
    }

    /// Whether the page that opens a WebSocket may: no `Origin` (not a browser), the same
    /// origin, or one of `http.allowed_origins`.
    pub fn websocket_origin_allowed(&self, req: &HttpRequest) -> bool {
        let text = |name| req.headers().get(name).map(header_text);
        origin_allowed(
            text(header::ORIGIN),
            text(header::HOST),
            &self.websocket_origins,
        )
    }
}

/// A header's value as text; one that is not ASCII reads as a value no rule matches.
fn header_text(value: &HeaderValue) -> &str {
    value.to_str().unwrap_or("\u{0}invalid")
}

/// The credentials of the `Authorization` header: none, or what it says, or why it cannot
/// be read.
pub fn credentials(req: &HttpRequest) -> Result<Option<Credentials>, String> {
    match req.headers().get(header::AUTHORIZATION) {
        None => Ok(None),
        Some(value) => {
            let text = value
                .to_str()
                .map_err(|_| "the Authorization header is not ASCII".to_string())?;
            Credentials::from_header(text).map(Some)
        }
    }
}

/// The extractor: the authenticated caller of this request (401/429 as a JSON answer).
pub struct Authenticated(pub Caller);

impl FromRequest for Authenticated {
    type Error = Refusal;
    type Future = Pin<Box<dyn Future<Output = Result<Authenticated, Refusal>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let gate = req.app_data::<web::Data<Gate>>().cloned();
        let client = gate.as_ref().map(|gate| gate.client(req));
        let credentials = credentials(req);
        Box::pin(async move {
            let (Some(gate), Some(client)) = (gate, client) else {
                // A wiring mistake: fail closed.
                return Err(Refusal::Forbidden(
                    "the server has no access configuration".to_string(),
                ));
            };
            gate.authenticate(client, credentials)
                .await
                .map(Authenticated)
        })
    }
}

/// The `/rest-api` middleware: CORS preflights and headers for `rest.cors_allowed_origins`.
/// Authentication is each handler's `Authenticated` extractor.
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let allowed = req
        .app_data::<web::Data<Gate>>()
        .zip(
            req.headers()
                .get(header::ORIGIN)
                .and_then(|o| o.to_str().ok()),
        )
        .and_then(|(gate, origin)| gate.cors_origin(origin));

    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let response = match &allowed {
            Some(origin) => HttpResponse::NoContent()
                .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone()))
                .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "POST, OPTIONS"))
                .insert_header((
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    "Content-Type, Authorization",
                ))
                .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
                .insert_header((header::VARY, "Origin"))
                .finish(),
            None => error(
                StatusCode::FORBIDDEN,
                "this origin is not allowed to call the API (rest.cors_allowed_origins)",
            ),
        };
        return Ok(req.into_response(response).map_into_right_body());
    }

    let mut response = next.call(req).await?;
    add_cors(response.headers_mut(), &allowed);
    Ok(response.map_into_left_body())
}

fn add_cors(headers: &mut actix_web::http::header::HeaderMap, allowed: &Option<HeaderValue>) {
    if let Some(origin) = allowed {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn gate(origins: &[&str]) -> Gate {
        let mut settings = Settings::default();
        settings.rest.cors_allowed_origins = origins.iter().map(|s| s.to_string()).collect();
        Gate::new(&settings).unwrap()
    }

    #[test]
    fn cors_origins() {
        let none = gate(&[]);
        assert!(none.cors_origin("https://a.example").is_none());
        let some = gate(&["https://a.example/"]);
        assert_eq!(
            some.cors_origin("https://a.example"),
            Some(HeaderValue::from_static("https://a.example"))
        );
        assert!(some.cors_origin("https://evil.example").is_none());
        let any = gate(&["*"]);
        assert_eq!(
            any.cors_origin("https://x.example"),
            Some(HeaderValue::from_static("*"))
        );
    }

    #[test]
    fn refusals_carry_their_headers() {
        let r = Refusal::Unauthenticated("who?".into()).response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let schemes: Vec<_> = r
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        assert!(schemes[0].starts_with("Basic") && schemes[1].starts_with("Bearer"));
        let r = Refusal::Throttled { retry_after_s: 42 }.response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers().get(header::RETRY_AFTER).unwrap(), "42");
        assert_eq!(Refusal::Forbidden("no".into()).response().status(), 403);
    }

    fn client(address: &str, names_this_server: bool) -> Client {
        Client {
            address: address.parse().unwrap(),
            names_this_server,
        }
    }

    fn request(peer: &str, headers: &[(&str, &str)]) -> HttpRequest {
        let mut r = actix_web::test::TestRequest::get().peer_addr(peer.parse().unwrap());
        for (name, value) in headers {
            r = r.insert_header((*name, *value));
        }
        r.to_http_request()
    }

    #[test]
    fn the_client_behind_trusted_proxies_and_its_host() {
        let mut settings = Settings::default();
        settings.http.trusted_proxies = vec!["127.0.0.1/32".into()];
        settings.http.host_names = vec!["media.example.com".into()];
        let gate = Gate::new(&settings).unwrap();
        let at = |peer, headers: &[(&str, &str)]| gate.client(&request(peer, headers));
        // Direct: the TCP peer, whatever it claims.
        assert_eq!(
            at("203.0.113.9:4000", &[("x-forwarded-for", "127.0.0.1")]),
            client("203.0.113.9", true)
        );
        // Through the proxy: who it forwards for, several headers read as one list.
        assert_eq!(
            at("127.0.0.1:4000", &[("x-forwarded-for", "203.0.113.9")]).address,
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        let two = actix_web::test::TestRequest::get()
            .peer_addr("127.0.0.1:4000".parse().unwrap())
            .append_header(("x-forwarded-for", "198.51.100.1"))
            .append_header(("x-forwarded-for", "203.0.113.9"))
            .to_http_request();
        assert_eq!(
            gate.client(&two).address,
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            at("[::ffff:127.0.0.1]:4000", &[]),
            client("127.0.0.1", true)
        );
        // Host: addresses, localhost, configured names (http and tls) — not other names.
        for (host, ok) in [
            ("127.0.0.1:8080", true),
            ("localhost:8080", true),
            ("media.example.com", true),
            ("evil.example:8080", false),
        ] {
            assert_eq!(
                at("127.0.0.1:4000", &[("host", host)]).names_this_server,
                ok,
                "{host}"
            );
        }
    }

    #[actix_web::test]
    async fn a_trusted_network_with_a_foreign_host_is_not_trusted() {
        let gate = Gate::new(&Settings::default()).unwrap();
        let rebound = gate
            .authenticate(client("127.0.0.1", false), Ok(None))
            .await
            .unwrap();
        assert!(matches!(rebound.identity, Identity::Anonymous));
        let refusal = gate.precheck(&rebound, Permission::Api).unwrap_err();
        assert_eq!(refusal.status(), StatusCode::UNAUTHORIZED);
        assert!(refusal.reason().contains("http.host_names"), "{refusal}");
        // Anonymous callers may still play; the same address naming this server is trusted.
        assert!(gate.precheck(&rebound, Permission::Play).is_ok());
        let local = gate
            .authenticate(client("127.0.0.1", true), Ok(None))
            .await
            .unwrap();
        assert!(local.is_trusted());
        // A remote anonymous caller's refusal carries no hint.
        let remote = gate
            .authenticate(client("203.0.113.9", false), Ok(None))
            .await
            .unwrap();
        let refusal = gate.precheck(&remote, Permission::Api).unwrap_err();
        assert!(!refusal.reason().contains("host_names"), "{refusal}");
    }

    #[actix_web::test]
    async fn throttles_failed_logins_but_never_trusted_addresses() {
        let mut settings = Settings::default();
        settings.auth.max_failed_logins = 3;
        settings.auth.users.push(pullcast::config::UserSettings {
            name: "ops".into(),
            password: "pw".into(),
            permissions: vec!["api".into()],
            ..Default::default()
        });
        let gate = Gate::new(&settings).unwrap();
        let remote = client("203.0.113.9", true);
        let wrong = || {
            Ok(Some(Credentials::Basic {
                user: "ops".into(),
                password: "nope".into(),
            }))
        };
        for _ in 0..3 {
            let r = gate.authenticate(remote, wrong()).await.unwrap_err();
            assert!(matches!(r, Refusal::Unauthenticated(_)), "{r:?}");
        }
        let right = Ok(Some(Credentials::Basic {
            user: "ops".into(),
            password: "pw".into(),
        }));
        let r = gate.authenticate(remote, right).await.unwrap_err();
        assert!(
            matches!(r, Refusal::Throttled { retry_after_s: 60 }),
            "{r:?}"
        );
        // Without credentials the address may still do what anonymous callers may.
        let anonymous = gate.authenticate(remote, Ok(None)).await.unwrap();
        assert!(matches!(anonymous.identity, Identity::Anonymous));
        let local = client("127.0.0.1", true);
        for _ in 0..10 {
            let c = gate.authenticate(local, wrong()).await.unwrap();
            assert!(c.is_trusted());
        }
        // Malformed credentials count too.
        let other = client("203.0.113.10", true);
        let r = gate
            .authenticate(other, Err("garbage".into()))
            .await
            .unwrap_err();
        assert_eq!(r, Refusal::Unauthenticated("garbage".into()));
    }
}
