//! The REST API of SPEC §2: `POST /rest-api/pull/rtmp/{pull,find_all,terminate}`.
//!
//! Plus `POST /rest-api/auth/token` (issue a signed token) and the recordings listing.
//!
//! Each handler first learns who calls (`access::Authenticated`: 401, 429) and asks the
//! gate (`api` for find_all and terminate, `pull` for pull: 401, 403); then it reads the
//! body (bounded: 413 past `limits.max_request_body`; a non-empty body must be
//! `application/json`: 415, so a plain HTML form cannot call the API), lets `dto` parse
//! it, asks the `Registry`, and maps the answer to the spec's status codes. Every error is
//! JSON `{"error": "..."}`: 400 bad body, 404 unknown method or capture, 405 wrong verb,
//! 409 already pulled, 413 too large, 415 not JSON, 500 could not start.

use actix::Addr;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use log::warn;

use pullcast::access::{Permission, TokenClaims};

use super::access::{self, Ask, Authenticated, Gate};
use super::dto;
use super::dto::error;
use crate::messages::{CaptureSnapshot, FindAll, Pull, PullError, Terminate, TerminateError};
use crate::registry::Registry;

/// What every handler needs.
#[derive(Clone)]
pub struct ApiState {
    pub registry: Addr<Registry>,
    pub max_body: usize,
    /// `record.by_default`: whether a pull that does not say `record` records.
    pub record_default: bool,
}

/// Mounts the API under `/rest-api`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/rest-api")
            .wrap(actix_web::middleware::from_fn(access::guard))
            .service(
                web::resource("/pull/rtmp/pull")
                    .route(web::post().to(pull))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/pull/rtmp/find_all")
                    .route(web::post().to(find_all))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/pull/rtmp/terminate")
                    .route(web::post().to(terminate))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/auth/token")
                    .route(web::post().to(issue_token))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/records/find_all")
                    .route(web::post().to(super::recordings::find_all))
                    .default_service(web::to(method_not_allowed)),
            )
            .default_service(web::to(not_found)),
    );
}

/// 404 for any path we do not serve.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    error(
        StatusCode::NOT_FOUND,
        &format!(
            "no such method: {} {} (the REST API is POST /rest-api/pull/rtmp/{{pull,find_all,terminate}})",
            req.method(),
            req.path()
        ),
    )
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!(
            "{} is not allowed on {}; use POST",
            req.method(),
            req.path()
        ),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
    response
}

/// Reads the whole body, refusing more than `limit` bytes.
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Bytes, HttpResponse> {
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the body is larger than {limit} bytes (limits.max_request_body)"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the body: {e}"),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Reads the body (see [`read_body`]) and parses it with `parse`; a parse error is a 400.
/// A body with content must say `Content-Type: application/json` (415 otherwise: an HTML
/// form or a `text/plain` fetch from another site cannot call the API); an empty body (a
/// bare `find_all`) may say anything.
async fn parse_body<T>(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    parse: impl FnOnce(&[u8]) -> Result<T, String>,
) -> Result<T, HttpResponse> {
    let body = read_body(req, payload, limit).await?;
    if !body.iter().all(u8::is_ascii_whitespace) && !is_json(req) {
        let given = req.headers().get(header::CONTENT_TYPE).map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .chars()
                .take(80)
                .collect::<String>()
        });
        return Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &match given {
                Some(t) => format!("the body must be Content-Type: application/json, not {t:?}"),
                None => {
                    "the body must be Content-Type: application/json (none was given)".to_string()
                }
            },
        ));
    }
    parse(&body).map_err(|e| error(StatusCode::BAD_REQUEST, &e))
}

/// Whether the request says its body is JSON (`application/json`, parameters allowed).
fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

async fn pull(
    state: web::Data<ApiState>,
    gate: web::Data<Gate>,
    Authenticated(caller): Authenticated,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    if let Err(refusal) = gate.precheck(&caller, Permission::Pull) {
        return refusal.response();
    }
    let record_default = state.record_default;
    let parsed = parse_body(&req, payload, state.max_body, |body| {
        dto::parse_pull(body, record_default)
    });
    let mut request = match parsed.await {
        Ok(r) => r,
        Err(response) => return response,
    };
    request.may_pull_private = gate.policy().holds(&caller, Permission::PullPrivate);
    let ask = Ask::new(Permission::Pull, "rest")
        .on(&request.local_stream_name)
        .capture(&request.local_stream_name, &request.uri);
    if let Err(refusal) = gate.allow(&caller, ask).await {
        return refusal.response();
    }
    if let Err(refusal) = gate.check_pull_target(&caller, &request.url).await {
        return refusal.response();
    }
    let show_uris = gate.shows_uris(&caller);
    match state.registry.send(Pull { request }).await {
        Ok(Ok(snapshot)) => HttpResponse::Ok().json(snapshot_for(&snapshot, show_uris)),
        Ok(Err(PullError::Conflict(e))) => error(StatusCode::CONFLICT, &e),
        Ok(Err(PullError::CannotStart(e))) => error(StatusCode::INTERNAL_SERVER_ERROR, &e),
        Err(e) => registry_unavailable(e),
    }
}

/// A capture as JSON, stream keys hidden unless the caller may see them.
fn snapshot_for(snapshot: &CaptureSnapshot, show_uris: bool) -> serde_json::Value {
    let mut json = dto::snapshot_json(snapshot);
    if !show_uris {
        dto::redact_json(&mut json);
    }
    json
}

async fn find_all(
    state: web::Data<ApiState>,
    gate: web::Data<Gate>,
    Authenticated(caller): Authenticated,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    if let Err(refusal) = gate.allow(&caller, Ask::new(Permission::Api, "rest")).await {
        return refusal.response();
    }
    if let Err(response) = parse_body(&req, payload, state.max_body, dto::parse_find_all).await {
        return response;
    }
    let show_uris = gate.shows_uris(&caller);
    match state.registry.send(FindAll).await {
        Ok(list) => {
            let visible: Vec<_> = list
                .iter()
                .filter(|s| {
                    gate.policy()
                        .may_see(&caller, &[&s.local_stream_name, &s.uri])
                })
                .map(|s| snapshot_for(s, show_uris))
                .collect();
            if visible.is_empty() {
                error(StatusCode::NOT_FOUND, "no pulled streams")
            } else {
                HttpResponse::Ok().json(visible)
            }
        }
        Err(e) => registry_unavailable(e),
    }
}

async fn terminate(
    state: web::Data<ApiState>,
    gate: web::Data<Gate>,
    Authenticated(caller): Authenticated,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    if let Err(refusal) = gate.precheck(&caller, Permission::Api) {
        return refusal.response();
    }
    let uri = match parse_body(&req, payload, state.max_body, dto::parse_terminate).await {
        Ok(uri) => uri,
        Err(response) => return response,
    };
    // The capture's local name too: a user's patterns may name it rather than the uri.
    let local_name = if caller.is_trusted() {
        None
    } else {
        match state.registry.send(FindAll).await {
            Ok(list) => list
                .into_iter()
                .find(|s| s.uri == uri)
                .map(|s| s.local_stream_name),
            Err(e) => return registry_unavailable(e),
        }
    };
    let ask = Ask::new(Permission::Api, "rest")
        .on(&uri)
        .capture(local_name.as_deref().unwrap_or(&uri), &uri);
    if let Err(refusal) = gate.allow(&caller, ask).await {
        return refusal.response();
    }
    match state.registry.send(Terminate { uri: uri.clone() }).await {
        Ok(Ok(())) => HttpResponse::Ok().json(dto::terminated_json(&uri)),
        Ok(Err(TerminateError::NotFound(e))) => error(StatusCode::NOT_FOUND, &e),
        Ok(Err(TerminateError::Internal(e))) => error(StatusCode::INTERNAL_SERVER_ERROR, &e),
        Err(e) => registry_unavailable(e),
    }
}

/// `POST /rest-api/auth/token`: a signed token for a subset of the caller's permissions on
/// one stream pattern (by default `play`, one hour). Needs `api` and `auth.token_secret`.
async fn issue_token(
    state: web::Data<ApiState>,
    gate: web::Data<Gate>,
    Authenticated(caller): Authenticated,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    if let Err(refusal) = gate.allow(&caller, Ask::new(Permission::Api, "rest")).await {
        return refusal.response();
    }
    let request = match parse_body(&req, payload, state.max_body, dto::parse_token_request).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    let Some(key) = gate.policy().token_key() else {
        return error(
            StatusCode::NOT_FOUND,
            "tokens are switched off: set auth.token_secret to issue them",
        );
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = TokenClaims {
        permissions: request.permissions,
        stream: request.stream.clone(),
        expires_unix_s: now.saturating_add(request.expires_in_s),
    };
    if let Err(reason) = gate.policy().may_issue(&caller, &claims) {
        return access::Refusal::Forbidden(reason).response();
    }
    let token = key.mint(&claims);
    HttpResponse::Ok().json(dto::token_json(&token, &request, claims.expires_unix_s))
}

fn registry_unavailable(e: actix::MailboxError) -> HttpResponse {
    warn!("the registry did not answer: {e}");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the server is shutting down or overloaded; try again",
    )
}
