//! The REST API of SPEC §2: `POST /rest-api/pull/rtmp/{pull,find_all,terminate}`.
//!
//! Handlers read the body (bounded: 413 past `limits.max_request_body`), let `dto` parse
//! it, ask the `Registry`, and map the answer to the spec's status codes. Every error is
//! JSON `{"error": "..."}`: 400 bad body, 404 unknown method or capture, 405 wrong verb,
//! 409 already pulled, 413 too large, 500 could not start.

use actix::Addr;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use log::warn;

use super::{access, dto};
use crate::messages::{FindAll, Pull, PullError, Terminate, TerminateError};
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
                web::resource("/records/find_all")
                    .route(web::post().to(super::recordings::find_all))
                    .default_service(web::to(method_not_allowed)),
            )
            .default_service(web::to(not_found)),
    );
}

/// JSON error response.
pub fn error(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(dto::error_body(message))
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
async fn parse_body<T>(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    parse: impl FnOnce(&[u8]) -> Result<T, String>,
) -> Result<T, HttpResponse> {
    let body = read_body(req, payload, limit).await?;
    parse(&body).map_err(|e| error(StatusCode::BAD_REQUEST, &e))
}

async fn pull(state: web::Data<ApiState>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let record_default = state.record_default;
    let parsed = parse_body(&req, payload, state.max_body, |body| {
        dto::parse_pull(body, record_default)
    });
    let request = match parsed.await {
        Ok(r) => r,
        Err(response) => return response,
    };
    match state.registry.send(Pull { request }).await {
        Ok(Ok(snapshot)) => HttpResponse::Ok().json(dto::snapshot_json(&snapshot)),
        Ok(Err(PullError::Conflict(e))) => error(StatusCode::CONFLICT, &e),
        Ok(Err(PullError::CannotStart(e))) => error(StatusCode::INTERNAL_SERVER_ERROR, &e),
        Err(e) => registry_unavailable(e),
    }
}

async fn find_all(
    state: web::Data<ApiState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    if let Err(response) = parse_body(&req, payload, state.max_body, dto::parse_find_all).await {
        return response;
    }
    match state.registry.send(FindAll).await {
        Ok(list) if list.is_empty() => error(StatusCode::NOT_FOUND, "no pulled streams"),
        Ok(list) => {
            HttpResponse::Ok().json(list.iter().map(dto::snapshot_json).collect::<Vec<_>>())
        }
        Err(e) => registry_unavailable(e),
    }
}

async fn terminate(
    state: web::Data<ApiState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let uri = match parse_body(&req, payload, state.max_body, dto::parse_terminate).await {
        Ok(uri) => uri,
        Err(response) => return response,
    };
    match state.registry.send(Terminate { uri: uri.clone() }).await {
        Ok(Ok(())) => HttpResponse::Ok().json(serde_json::json!({ "terminated": uri })),
        Ok(Err(TerminateError::NotFound(e))) => error(StatusCode::NOT_FOUND, &e),
        Ok(Err(TerminateError::Internal(e))) => error(StatusCode::INTERNAL_SERVER_ERROR, &e),
        Err(e) => registry_unavailable(e),
    }
}

fn registry_unavailable(e: actix::MailboxError) -> HttpResponse {
    warn!("the registry did not answer: {e}");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the server is shutting down or overloaded; try again",
    )
}
