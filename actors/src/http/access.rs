//! Who may call the REST API: optional HTTP Basic authentication (off by default, as in
//! the commercial product) and CORS for browser pages on other origins.
//!
//! [`guard`] is an actix-web middleware on the `/rest-api` scope. It answers CORS
//! preflights itself, refuses unauthenticated calls with 401 when authentication is on, and
//! adds `Access-Control-Allow-Origin` to answers for allowed origins. It never looks at bodies.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use pullcast::config::RestSettings;

use super::rest::error;

/// The access rules, built once from the settings.
#[derive(Debug, Clone)]
pub struct Access {
    credentials: Option<(String, String)>,
    origins: Vec<String>,
}

impl Access {
    pub fn new(settings: &RestSettings) -> Self {
        Self {
            credentials: (!settings.basic_auth_user.is_empty()).then(|| {
                (
                    settings.basic_auth_user.clone(),
                    settings.basic_auth_password.clone(),
                )
            }),
            origins: settings.cors_allowed_origins.clone(),
        }
    }

    /// Whether an `Authorization` header value lets the caller in.
    pub fn authorized(&self, authorization: Option<&str>) -> bool {
        let Some((user, password)) = &self.credentials else {
            return true;
        };
        let Some(encoded) = authorization.and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        }) else {
            return false;
        };
        let Some(decoded) = decode_base64(encoded.trim()) else {
            return false;
        };
        let expected = format!("{user}:{password}");
        constant_time_eq(&decoded, expected.as_bytes())
    }

    /// The `Access-Control-Allow-Origin` value for `origin`, if it is allowed.
    pub fn allow_origin(&self, origin: &str) -> Option<HeaderValue> {
        if self.origins.iter().any(|o| o == "*") {
            return Some(HeaderValue::from_static("*"));
        }
        self.origins
            .iter()
            .any(|o| o.trim_end_matches('/') == origin)
            .then(|| HeaderValue::from_str(origin).ok())
            .flatten()
    }
}

/// The middleware: preflight, authentication, CORS headers.
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let access = req
        .app_data::<web::Data<Access>>()
        .map(|a| a.get_ref().clone())
        .unwrap_or_else(|| Access::new(&RestSettings::default()));
    let allowed = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .and_then(|o| access.allow_origin(o));

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

    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !access.authorized(authorization) {
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            "authentication required (HTTP Basic)",
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"pullcast\", charset=\"UTF-8\""),
        );
        add_cors(response.headers_mut(), &allowed);
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Standard base64 (RFC 4648 §4) with optional padding; `None` for anything else.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (bits < 6).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(user: &str, password: &str, origins: &[&str]) -> Access {
        Access::new(&RestSettings {
            basic_auth_user: user.to_string(),
            basic_auth_password: password.to_string(),
            cors_allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
        })
    }

    #[test]
    fn base64_vectors() {
        // RFC 4648 §10.
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(decode_base64(encoded).as_deref(), Some(plain.as_bytes()));
        }
        assert_eq!(decode_base64("Zm9v!"), None);
        assert_eq!(decode_base64("Z"), None);
    }

    #[test]
    fn basic_auth() {
        let open = access("", "", &[]);
        assert!(open.authorized(None));
        let locked = access("admin", "s3cret", &[]);
        assert!(!locked.authorized(None));
        // admin:s3cret
        assert!(locked.authorized(Some("Basic YWRtaW46czNjcmV0")));
        // admin:wrong
        assert!(!locked.authorized(Some("Basic YWRtaW46d3Jvbmc=")));
        assert!(!locked.authorized(Some("Bearer YWRtaW46czNjcmV0")));
        assert!(!locked.authorized(Some("Basic %%%")));
    }

    #[test]
    fn origins() {
        let none = access("", "", &[]);
        assert!(none.allow_origin("https://a.example").is_none());
        let some = access("", "", &["https://a.example/"]);
        assert_eq!(
            some.allow_origin("https://a.example"),
            Some(HeaderValue::from_static("https://a.example"))
        );
        assert!(some.allow_origin("https://evil.example").is_none());
        let any = access("", "", &["*"]);
        assert_eq!(
            any.allow_origin("https://x.example"),
            Some(HeaderValue::from_static("*"))
        );
    }
}
