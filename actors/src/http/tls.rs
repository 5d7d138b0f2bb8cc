//! The rustls server configuration for the https listener: the configured certificate, or a
//! self-signed one for `tls.host_names` generated at start (and reused from
//! `tls.self_signed_dir` while it names the same hosts), whose location is logged. The
//! generated key is private: mode 0600 in a 0700 folder, written atomically.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use log::{info, warn};
use pullcast::config::TlsSettings;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// Builds the TLS configuration, generating a certificate when none is configured.
pub fn server_config(settings: &TlsSettings) -> Result<ServerConfig, String> {
    let (cert_path, key_path) = if settings.cert_file.is_empty() {
        self_signed(Path::new(&settings.self_signed_dir), &settings.host_names)?
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

/// Writes (or reuses) `cert.pem` and `key.pem` in `dir` for `names`; returns their paths.
///
/// The folder is made private (0700), the key is written with mode 0600 to a temporary file
/// and renamed into place (never readable by others, never half-written); `names.txt`
/// records the names the certificate was made for, and a change of names makes a new one.
fn self_signed(dir: &Path, names: &[String]) -> Result<(String, String), String> {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let names_file = dir.join("names.txt");
    let wanted = names.join("\n");
    let current = fs::read_to_string(&names_file).unwrap_or_default();
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("cannot make {} private: {e}", dir.display()))?;
    if cert.is_file() && key.is_file() && current.trim_end() == wanted {
        // A key left readable by others (an older version, a copy) is made private.
        let mode = fs::metadata(&key).map(|m| m.permissions().mode() & 0o777);
        if mode.is_ok_and(|m| m & 0o077 != 0) {
            warn!("{} was readable by others; now 0600", key.display());
            fs::set_permissions(&key, fs::Permissions::from_mode(0o600))
                .map_err(|e| format!("cannot make {} private: {e}", key.display()))?;
        }
        info!("using the self-signed TLS certificate {}", absolute(&cert));
    } else {
        if names.is_empty() {
            return Err("tls.host_names is empty: the certificate would name no host".into());
        }
        let generated = rcgen::generate_simple_self_signed(names.to_vec())
            .map_err(|e| format!("cannot generate a self-signed certificate: {e}"))?;
        write_atomically(&key, generated.key_pair.serialize_pem().as_bytes(), 0o600)?;
        write_atomically(&cert, generated.cert.pem().as_bytes(), 0o644)?;
        write_atomically(&names_file, wanted.as_bytes(), 0o644)?;
        info!(
            "generated a self-signed TLS certificate for {}: {}",
            names.join(", "),
            absolute(&cert)
        );
    }
    Ok((
        cert.to_string_lossy().into_owned(),
        key.to_string_lossy().into_owned(),
    ))
}

/// Writes `bytes` to a new temporary file beside `path` with `mode`, syncs it, and renames
/// it over `path`.
fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temporary)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&temporary, path));
    written.map_err(|e| {
        let _ = fs::remove_file(&temporary);
        format!("cannot write {}: {e}", path.display())
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).map_or(0, |m| m.permissions().mode() & 0o777)
    }

    #[test]
    fn the_generated_key_is_private_and_new_names_make_a_new_certificate() {
        let dir = std::env::temp_dir().join(format!("pullcast-tls-{}", uuid::Uuid::new_v4()));
        let names = vec!["localhost".to_string(), "media.example".to_string()];
        let (cert, key) = self_signed(&dir, &names).expect("generated");
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(Path::new(&key)), 0o600);
        let first = fs::read(&cert).expect("cert");
        assert!(read_certs(&cert).is_ok() && read_key(&key).is_ok());
        // Reused while the names are the same; a key made readable is made private again.
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).expect("chmod");
        self_signed(&dir, &names).expect("reused");
        assert_eq!(fs::read(&cert).expect("cert"), first);
        assert_eq!(mode(Path::new(&key)), 0o600);
        // Other names: a new certificate.
        self_signed(&dir, &["203.0.113.7".to_string()]).expect("regenerated");
        assert_ne!(fs::read(&cert).expect("cert"), first);
        assert!(self_signed(&dir, &[]).is_err());
        let leftovers = fs::read_dir(&dir)
            .expect("dir")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("tmp-"))
            .count();
        assert_eq!(leftovers, 0);
        let _ = fs::remove_dir_all(dir);
    }
}
