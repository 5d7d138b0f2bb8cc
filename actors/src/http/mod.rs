//! The HTTP side: one actix-web application on six listeners — REST http/https (8081/8444),
//! WebSocket ws/wss (8080/8443) and HLS http/https (8082/8445). Every listener serves every
//! route: the REST API ([`rest`], JSON in [`dto`]), WHEP ([`whep`]), WebSocket signalling
//! ([`ws`], JSON in [`ws_protocol`]), HTTP-FLV ([`flv`]: its players' actors write the
//! stream with `pullcast::flv::write`), LL-HLS ([`hls`]: playlists and parts of the muxers in
//! `crate::hls`), Prometheus ([`metrics`]) and the player page ([`page`]); [`tls`] makes the
//! certificate.
//! Nothing else here touches media.
//!
//! Every way in goes through [`access`] (the `Gate`: who calls, may it do this, the hook in
//! [`auth_hook`]); every play through [`play::find_capture`].

pub mod access;
pub mod admission;
pub mod auth_hook;
pub mod dto;
pub mod flv;
pub mod hls;
pub mod metrics;
pub mod page;
pub mod play;
pub mod recordings;
pub mod rest;
pub mod tls;
pub mod whep;
pub mod ws;
pub mod ws_protocol;

use actix::Addr;
use actix_web::dev::Server;
use actix_web::http::header;
use actix_web::{web, App, HttpServer};
use pullcast::config::Settings;

use crate::registry::Registry;
use crate::webrtc::WebRtcEngine;

/// Binds the HTTP listeners and returns the server to await. `gate` and `admission` are
/// shared with the other ways in (RTMP).
pub fn serve(
    settings: &Settings,
    registry: Addr<Registry>,
    webrtc: WebRtcEngine,
    gate: access::Gate,
    admission: admission::Admission,
) -> Result<Server, String> {
    let tls = tls::server_config(&settings.tls)?;
    let whep_state = whep::WhepState::new(
        registry.clone(),
        webrtc.clone(),
        settings.limits.max_request_body,
    );
    let flv_state = flv::FlvState {
        registry: registry.clone(),
        engine: webrtc.clone(),
        mailbox_frames: settings.capture.subscriber_queue_frames,
    };
    let hls_state = hls::HlsState {
        registry: registry.clone(),
        directory: crate::hls::HlsDirectory::new(
            &settings.hls,
            settings.capture.subscriber_queue_frames,
        ),
    };
    let metrics_state = metrics::MetricsState {
        registry: registry.clone(),
        hls: hls_state.directory.clone(),
        settings: settings.metrics.clone(),
    };
    let signalling = ws::SignallingState {
        registry: registry.clone(),
        engine: webrtc.clone(),
        plays_per_session: settings.limits.plays_per_session,
    };
    let state = rest::ApiState {
        registry,
        max_body: settings.limits.max_request_body,
        record_default: settings.record.by_default,
    };
    let bind = settings.server.bind.as_str();
    let http_port = settings.server.rest_http_port;
    let https_port = settings.server.rest_https_port;
    let ws_port = settings.server.ws_port;
    let wss_port = settings.server.wss_port;
    let hls_port = settings.server.hls_http_port;
    let hls_tls_port = settings.server.hls_https_port;
    let recordings = recordings::RecordingsState {
        folder: std::path::PathBuf::from(&settings.record.folder),
    };
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(
                actix_web::middleware::DefaultHeaders::new()
                    .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                    .add((header::REFERRER_POLICY, "no-referrer")),
            )
            .app_data(web::Data::new(state.clone()))
            .app_data(web::Data::new(gate.clone()))
            .app_data(web::Data::new(admission.clone()))
            .configure(rest::configure)
            .app_data(web::Data::new(whep_state.clone()))
            .configure(whep::configure)
            .app_data(web::Data::new(signalling.clone()))
            .configure(page::configure)
            .app_data(web::Data::new(recordings.clone()))
            .configure(recordings::configure)
            .app_data(web::Data::new(flv_state.clone()))
            .configure(flv::configure)
            .app_data(web::Data::new(hls_state.clone()))
            .configure(hls::configure)
            .app_data(web::Data::new(metrics_state.clone()))
            .configure(metrics::configure)
            .default_service(web::to(rest::not_found))
    });
    // Signals are the binary's business (graceful shutdown of captures first); open
    // connections (WebSockets) get a short grace when the server finally stops.
    server = server.disable_signals().shutdown_timeout(2);
    if settings.server.http_workers > 0 {
        server = server.workers(settings.server.http_workers);
    }
    if settings.server.plain_http {
        server = server
            .bind((bind, http_port))
            .map_err(|e| format!("cannot listen on http {bind}:{http_port}: {e}"))?
            .bind((bind, ws_port))
            .map_err(|e| format!("cannot listen on ws {bind}:{ws_port}: {e}"))?
            .bind((bind, hls_port))
            .map_err(|e| format!("cannot listen on HLS http {bind}:{hls_port}: {e}"))?;
    }
    let server = server
        .bind_rustls_0_23((bind, https_port), tls.clone())
        .map_err(|e| format!("cannot listen on https {bind}:{https_port}: {e}"))?
        .bind_rustls_0_23((bind, wss_port), tls.clone())
        .map_err(|e| format!("cannot listen on wss {bind}:{wss_port}: {e}"))?
        .bind_rustls_0_23((bind, hls_tls_port), tls)
        .map_err(|e| format!("cannot listen on HLS https {bind}:{hls_tls_port}: {e}"))?;
    Ok(server.run())
}
