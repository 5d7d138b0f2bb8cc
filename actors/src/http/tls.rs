//! The rustls server configuration for the https listener: the configured certificate, or a
//! self-signed one for `localhost`/`127.0.0.1` generated at start (and reused from
//! `tls.self_signed_dir` while it is there), whose location is logged.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use log::info;
use pullcast::config::TlsSettings;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// Builds the TLS configuration, generating a certificate when none is configured.
pub fn server_config(settings: &TlsSettings) -> Result<ServerConfig, String> {
    let (cert_path, key_path) = if settings.cert_file.is_empty() {
        self_signed(Path::new(&settings.self_signed_dir))?
    } else {
        (settings.cert_file.clone(), settings.key_file.clone())
    };
    let certs = read_certs(&cert_path)?;
    let key = read_key(&key_path)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("TLS certificate {cert_path} / key {key_path}: {e}"))
}

/// Writes (or reuses) `cert.pem` and `key.pem` in `dir`; returns their paths.
fn self_signed(dir: &Path) -> Result<(String, String), String> {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if !(cert.is_file() && key.is_file()) {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let generated = rcgen::generate_simple_self_signed(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ])
        .map_err(|e| format!("cannot generate a self-signed certificate: {e}"))?;
        fs::write(&cert, generated.cert.pem())
            .map_err(|e| format!("cannot write {}: {e}", cert.display()))?;
        fs::write(&key, generated.key_pair.serialize_pem())
            .map_err(|e| format!("cannot write {}: {e}", key.display()))?;
        info!(
            "generated a self-signed TLS certificate for localhost: {}",
            absolute(&cert)
        );
    } else {
        info!("using the self-signed TLS certificate {}", absolute(&cert));
    }
    Ok((
        cert.to_string_lossy().into_owned(),
        key.to_string_lossy().into_owned(),
    ))
}

fn absolute(path: &Path) -> String {
    fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

fn read_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = fs::read(path).map_err(|e| format!("cannot read TLS certificate {path}: {e}"))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad TLS certificate {path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("no certificate found in {path}"));
    }
    Ok(certs)
}

fn read_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    let pem = fs::read(path).map_err(|e| format!("cannot read TLS key {path}: {e}"))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| format!("bad TLS key {path}: {e}"))?
        .ok_or_else(|| format!("no private key found in {path}"))
}
