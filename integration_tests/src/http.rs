//! HTTP clients for the REST API: plain, HTTPS trusting exactly the server's self-signed
//! certificate, and a raw TCP client for requests ureq would not send as-is.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_name, WebPkiServerVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, Error as TlsError, SignatureScheme};
use serde_json::Value;

/// Timeout of one request (connect, read and write each).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Set once a certificate was accepted by the pinned-bytes fallback rather than by webpki
/// path validation (see [`PinnedCertVerifier`]).
pub static USED_PINNED_FALLBACK: AtomicBool = AtomicBool::new(false);

/// A plain-HTTP agent (no proxy, bounded timeouts).
pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(REQUEST_TIMEOUT).build()
}

/// An HTTPS agent that trusts exactly the certificate in `cert_pem` and nothing else.
pub fn tls_agent(cert_pem: &Path) -> ureq::Agent {
    let cert = CertificateDer::from_pem_file(cert_pem)
        .unwrap_or_else(|e| panic!("cannot read a certificate from {}: {e}", cert_pem.display()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = PinnedCertVerifier::new(cert, provider.clone());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("rustls protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    ureq::AgentBuilder::new()
        .timeout(REQUEST_TIMEOUT)
        .tls_config(Arc::new(config))
        .build()
}

/// Trusts one certificate. First it asks webpki, with that certificate as the only root
/// (full path validation, name, validity period). If webpki refuses a self-signed end-entity
/// certificate as its own anchor (an "unknown issuer" kind of error), the certificate is
/// still accepted when its bytes equal the pinned ones exactly and it is valid for the server
/// name. Name and validity-period errors are never excused. Handshake signatures are always verified.
#[derive(Debug)]
pub struct PinnedCertVerifier {
    pinned: CertificateDer<'static>,
    webpki: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl PinnedCertVerifier {
    /// A verifier trusting `pinned` only.
    pub fn new(pinned: CertificateDer<'static>, provider: Arc<CryptoProvider>) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        let webpki = match roots.add(pinned.clone()) {
            Ok(()) => {
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .ok()
            }
            Err(e) => {
                eprintln!("[harness] webpki cannot use the server certificate as a root ({e}); pinning its bytes");
                None
            }
        };
        PinnedCertVerifier {
            pinned,
            webpki,
            provider,
        }
    }
}

impl ServerCertVerifier for PinnedCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        let webpki_error = match &self.webpki {
            Some(w) => {
                match w.verify_server_cert(
                    end_entity,
                    intermediates,
                    server_name,
                    ocsp_response,
                    now,
                ) {
                    Ok(ok) => return Ok(ok),
                    Err(e) => Some(e),
                }
            }
            None => None,
        };
        if let Some(TlsError::InvalidCertificate(
            CertificateError::NotValidForName
            | CertificateError::NotValidForNameContext { .. }
            | CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. },
        )) = &webpki_error
        {
            return Err(webpki_error.expect("matched Some"));
        }
        if end_entity.as_ref() == self.pinned.as_ref() {
            // webpki may stop at the chain error before looking at the name: check it here.
            let parsed = ParsedCertificate::try_from(end_entity)?;
            verify_server_name(&parsed, server_name)?;
            if !USED_PINNED_FALLBACK.swap(true, Ordering::Relaxed) {
                eprintln!(
                    "[harness] webpki refused the self-signed certificate ({webpki_error:?}); \
                     accepted because it equals the pinned cert.pem byte for byte"
                );
            }
            return Ok(ServerCertVerified::assertion());
        }
        Err(webpki_error.unwrap_or(TlsError::InvalidCertificate(
            CertificateError::ApplicationVerificationFailure,
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Parses a response body: JSON if it is JSON, `Null` if empty, otherwise the raw text as a
/// JSON string (so an assertion on `body["error"]` fails and shows what came back).
pub fn parse_body(text: &str) -> Value {
    if text.trim().is_empty() {
        return Value::Null;
    }
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// Sends `method url` with `body` (sent as `application/json` when given) and returns the
/// status and body text of any HTTP answer, 4xx/5xx included. `Err` only for transport
/// errors (refused, reset, timed out, TLS).
pub fn send(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: Option<&[u8]>,
) -> Result<(u16, String), String> {
    send_with_headers(agent, method, url, body, &[])
}

/// [`send`] with extra request headers (e.g. `Authorization`).
pub fn send_with_headers(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: Option<&[u8]>,
    headers: &[(&str, &str)],
) -> Result<(u16, String), String> {
    let mut req = agent
        .request(method, url)
        .set("Content-Type", "application/json");
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let result = match body {
        Some(bytes) => req.send_bytes(bytes),
        None => req.call(),
    };
    let resp = match result {
        Ok(resp) => resp,
        Err(ureq::Error::Status(_, resp)) => resp,
        Err(ureq::Error::Transport(t)) => return Err(format!("{method} {url}: {t}")),
    };
    let status = resp.status();
    let text = resp
        .into_string()
        .map_err(|e| format!("{method} {url}: reading the body: {e}"))?;
    Ok((status, text))
}

/// One HTTP/1.1 request over a raw TCP connection to 127.0.0.1:`port` (`Connection: close`),
/// for bodies a server may refuse before reading them (413): write errors after the headers
/// are ignored, and the answer is read until the server closes. Returns status and body.
pub fn raw_request(
    port: u16,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<(u16, String), String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(REQUEST_TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(REQUEST_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    let _ = s.write_all(body); // the server may answer and stop reading early
    let _ = s.flush();
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            // A reset after the answer arrived still leaves the answer in `raw`.
            Err(e) if raw.is_empty() => return Err(format!("reading the answer: {e}")),
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP header in answer: {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("no status in answer: {head:?}"))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Ok((status, body))
}

/// Decodes a chunked HTTP body (best effort: stops at the first malformed chunk).
fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size_line, rest)) = s.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
        else {
            break;
        };
        let (Some(chunk), Some(after)) = (rest.get(..size), rest.get(size..)) else {
            break;
        };
        if size == 0 {
            break;
        }
        out.push_str(chunk);
        s = after.trim_start_matches("\r\n");
    }
    out
}
