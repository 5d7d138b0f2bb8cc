//! Finding and fetching recordings: `POST /rest-api/records/find_all` lists them (name,
//! stream, session, size, start, end, duration), and `GET /records/{file}` serves one with
//! HTTP Range (so a browser `<video>` can seek), refusing any name that is not a plain
//! `.mp4` file directly in the recordings folder.
//!
//! The listing needs `api` and shows the recordings of the streams the caller may use; a
//! download needs `records` on the recording's stream (from its sidecar; a file without one
//! only for callers whose streams are `*`).

use std::path::PathBuf;

use actix_files::NamedFile;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use pullcast::access::Permission;

use super::access::{Ask, Authenticated, Gate};
use super::dto::{self, error};
use crate::records;

/// The recordings folder.
#[derive(Clone)]
pub struct RecordingsState {
    pub folder: PathBuf,
}

/// Mounts `/records/{file}` (the listing is mounted by the REST scope).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/records/{file}")
            .route(web::get().to(download))
            .route(web::head().to(download)),
    );
}

/// `POST /rest-api/records/find_all`.
pub async fn find_all(
    state: web::Data<RecordingsState>,
    gate: web::Data<Gate>,
    Authenticated(caller): Authenticated,
) -> HttpResponse {
    if let Err(refusal) = gate.allow(&caller, Ask::new(Permission::Api, "rest")).await {
        return refusal.response();
    }
    let folder = state.folder.clone();
    let listed = web::block(move || records::list(&folder)).await;
    match listed {
        Ok(Ok(list)) => {
            let visible: Vec<serde_json::Value> = list
                .iter()
                .filter(|l| gate.policy().may_see(&caller, &[stream_of(l)]))
                .map(dto::recording_json)
                .collect();
            if visible.is_empty() {
                error(StatusCode::NOT_FOUND, "no recordings")
            } else {
                HttpResponse::Ok().json(visible)
            }
        }
        Ok(Err(e)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot read the recordings folder: {e}"),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// The stream a listed recording belongs to (its sidecar's), else its file name.
fn stream_of(l: &records::Listed) -> &str {
    l.sidecar
        .as_ref()
        .map_or(l.name.as_str(), |s| s.stream.as_str())
}

async fn download(
    req: HttpRequest,
    file: web::Path<String>,
    state: web::Data<RecordingsState>,
    gate: web::Data<Gate>,
    Authenticated(caller): Authenticated,
) -> HttpResponse {
    if let Err(refusal) = gate.precheck(&caller, Permission::Records) {
        return refusal.response();
    }
    let not_found = || {
        error(
            StatusCode::NOT_FOUND,
            "no such recording (names come from /rest-api/records/find_all)",
        )
    };
    let folder = state.folder.clone();
    let name = file.into_inner();
    let found = web::block(move || {
        records::resolve(&folder, &name).map(|path| {
            let stream = records::read_sidecar(&path).map(|s| s.stream);
            (path, stream)
        })
    })
    .await;
    let Ok(Some((path, stream))) = found else {
        return not_found();
    };
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let ask = Ask::new(Permission::Records, "download").on(stream.as_deref().unwrap_or(&file_name));
    if let Err(refusal) = gate.allow(&caller, ask).await {
        return refusal.response();
    }
    match NamedFile::open_async(&path).await {
        // The content type (video/mp4) is taken from the extension.
        Ok(named) => named
            .use_etag(true)
            .use_last_modified(true)
            .into_response(&req),
        Err(e) => error(
            StatusCode::NOT_FOUND,
            &format!("cannot open the recording: {e}"),
        ),
    }
}
