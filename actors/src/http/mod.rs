//! The HTTP side: the REST API on the http and https ports.
//!
//! [`serve`] binds both listeners and returns the running server; [`rest`] holds the
//! handlers, [`dto`] the JSON, [`tls`] the certificate handling. Nothing here touches media.

pub mod access;
pub mod dto;
pub mod rest;
pub mod tls;

use actix::Addr;
use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use pullcast::config::Settings;

use crate::registry::Registry;

/// Binds the REST listeners (http and https) and returns the server to await.
pub fn serve(settings: &Settings, registry: Addr<Registry>) -> Result<Server, String> {
    let tls = tls::server_config(&settings.tls)?;
    let state = rest::ApiState {
        registry,
        max_body: settings.limits.max_request_body,
    };
    let bind = settings.server.bind.as_str();
    let http_port = settings.server.rest_http_port;
    let https_port = settings.server.rest_https_port;
    let access = access::Access::new(&settings.rest);
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .app_data(web::Data::new(access.clone()))
            .configure(rest::configure)
            .default_service(web::to(rest::not_found))
    });
    if settings.server.http_workers > 0 {
        server = server.workers(settings.server.http_workers);
    }
    let server = server
        .bind((bind, http_port))
        .map_err(|e| format!("cannot listen on http {bind}:{http_port}: {e}"))?
        .bind_rustls_0_23((bind, https_port), tls)
        .map_err(|e| format!("cannot listen on https {bind}:{https_port}: {e}"))?;
    Ok(server.run())
}
