//! Loading the configuration: built-in defaults, then a TOML file, then environment
//! overrides `PULLCAST_<SECTION>__<KEY>` (e.g. `PULLCAST_SERVER__REST_HTTP_PORT=9081`).
//!
//! The file is `--config PATH` when given (it must exist), else `conf/pullcast.toml` if it
//! exists, else none: the server runs on its defaults. Unknown keys are errors, so a typo
//! never silently does nothing. The schema itself is `pullcast::config::Settings`.

use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};
pub use pullcast::config::Settings;

/// The file read when no `--config` is given, relative to the working directory.
pub const DEFAULT_CONFIG_FILE: &str = "conf/pullcast.toml";

/// Where the settings came from, for the start-up log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    BuiltIn,
    File(PathBuf),
}

/// Loads the settings. `explicit` is the `--config` argument; `env` the environment
/// variables to consider (the process environment in production, a fixed list in tests).
pub fn load(
    explicit: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(Settings, Source), String> {
    let defaults =
        Config::try_from(&Settings::default()).map_err(|e| format!("built-in defaults: {e}"))?;
    let mut builder = Config::builder().add_source(defaults);
    let source = match explicit {
        Some(path) => {
            if !path.is_file() {
                return Err(format!("config file {} does not exist", path.display()));
            }
            Source::File(path.to_path_buf())
        }
        None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
            Source::File(PathBuf::from(DEFAULT_CONFIG_FILE))
        }
        None => Source::BuiltIn,
    };
    if let Source::File(path) = &source {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        builder = builder.add_source(File::from_str(&text, FileFormat::Toml));
    }
    // Only PULLCAST_<SECTION>__<KEY> names are overrides; other PULLCAST_* variables (a
    // script's own PULLCAST_BIN, say) are not ours to refuse.
    let overrides: config::Map<String, String> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("PULLCAST_") && k.contains("__"))
        .collect();
    builder = builder.add_source(
        Environment::with_prefix("PULLCAST")
            .prefix_separator("_")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("rest.cors_allowed_origins")
            .with_list_parse_key("webrtc.public_ips")
            .with_list_parse_key("webrtc.advertise")
            .with_list_parse_key("http.allowed_origins")
            .with_list_parse_key("http.trusted_proxies")
            .with_list_parse_key("http.host_names")
            .with_list_parse_key("auth.trusted_networks")
            .with_list_parse_key("auth.anonymous")
            .with_list_parse_key("pull.allow")
            .with_list_parse_key("pull.deny")
            .with_list_parse_key("tls.host_names")
            .source(Some(overrides)),
    );
    let settings = builder
        .build()
        .and_then(|c| c.try_deserialize::<Settings>())
        .map_err(|e| match &source {
            Source::File(p) => format!("invalid configuration ({}): {e}", p.display()),
            Source::BuiltIn => format!("invalid configuration: {e}"),
        })?;
    validate(&settings)?;
    Ok((settings, source))
}

fn validate(s: &Settings) -> Result<(), String> {
    if s.tls.cert_file.is_empty() != s.tls.key_file.is_empty() {
        return Err("tls.cert_file and tls.key_file must be given together".to_string());
    }
    // The access model: users, networks, patterns, the token secret, the hook's URL.
    pullcast::access::Policy::new(&s.auth, &s.rest)?;
    if !s.auth.hook_url.trim().is_empty() {
        pullcast::access::hook::HookUrl::parse(&s.auth.hook_url)?;
        if s.auth.hook_timeout_ms == 0 || s.auth.hook_max_in_flight == 0 {
            return Err(
                "auth.hook_timeout_ms and auth.hook_max_in_flight must be at least 1".to_string(),
            );
        }
    }
    if s.limits.max_request_body == 0 {
        return Err("limits.max_request_body must be at least 1".to_string());
    }
    if !(128..=65536).contains(&s.capture.chunk_size) {
        return Err("capture.chunk_size must be between 128 and 65536".to_string());
    }
    if s.capture.subscriber_queue_frames == 0 {
        return Err("capture.subscriber_queue_frames must be at least 1".to_string());
    }
    if s.capture.max_media_messages_per_second < 100 {
        return Err(
            "capture.max_media_messages_per_second must be at least 100 (a real stream sends 50-200)"
                .to_string(),
        );
    }
    for (key, value) in [
        ("subscriber_queue_bytes", s.capture.subscriber_queue_bytes),
        ("ingest_queue_bytes", s.capture.ingest_queue_bytes),
        ("keyframe_cache_bytes", s.capture.keyframe_cache_bytes),
        ("transcoder_queue_bytes", s.capture.transcoder_queue_bytes),
        ("memory_budget_bytes", s.capture.memory_budget_bytes),
    ] {
        if value < 65536 {
            return Err(format!("capture.{key} must be at least 65536 (64 KiB)"));
        }
    }
    if s.webrtc.udp_port == 0 {
        return Err("webrtc.udp_port must be at least 1".to_string());
    }
    if let Some(bad) = s
        .webrtc
        .public_ips
        .iter()
        .find(|ip| ip.parse::<std::net::IpAddr>().is_err())
    {
        return Err(format!("webrtc.public_ips: {bad:?} is not an IP address"));
    }
    for entry in &s.webrtc.advertise {
        pullcast::media_port::parse_advertised(entry, s.webrtc.udp_port)?;
    }
    pullcast::net::pull_guard::PullGuard::new(&s.pull.allow, &s.pull.deny)?;
    let max_workers = crate::webrtc::media_port::MAX_WORKERS;
    if s.webrtc.port_workers > max_workers {
        return Err(format!(
            "webrtc.port_workers is {}: at most {max_workers} (0: one per core)",
            s.webrtc.port_workers
        ));
    }
    if s.webrtc.connect_timeout_ms == 0 {
        return Err("webrtc.connect_timeout_ms must be at least 1".to_string());
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn shipped_file() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf/pullcast.toml")
    }

    #[test]
    fn an_older_configuration_with_retired_keys_still_loads_and_names_them() {
        let dir = std::env::temp_dir().join(format!("pullcast-retired-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("old.toml");
        let old = "[webrtc]\nudp_port = 9000\nudp_port_count = 1000\none_port = false\nreplay_rate_kbps = 20000\n";
        std::fs::write(&file, old).expect("write");
        let loaded = load(Some(file.as_path()), std::iter::empty());
        let _ = std::fs::remove_dir_all(&dir);
        let (settings, _) = loaded.expect("an older configuration loads");
        assert_eq!(settings.webrtc.udp_port, 9000);
        assert_eq!(
            settings.webrtc.retired_keys(),
            [
                "webrtc.udp_port_count",
                "webrtc.one_port",
                "webrtc.replay_rate_kbps"
            ]
        );
        assert!(Settings::default().webrtc.retired_keys().is_empty());
    }

    /// The shipped file documents every key with exactly the built-in default.
    #[test]
    fn shipped_config_equals_the_built_in_defaults() {
        let text = std::fs::read_to_string(shipped_file()).unwrap();
        let file: toml::Value = toml::from_str(&text).unwrap();
        let defaults = toml::Value::try_from(Settings::default()).unwrap();
        assert_eq!(
            file, defaults,
            "conf/pullcast.toml differs from Settings::default()"
        );
        let (loaded, _) = load(Some(&shipped_file()), Vec::new()).unwrap();
        assert_eq!(loaded, Settings::default());
    }

    #[test]
    fn runs_on_defaults_without_a_file() {
        let (s, source) = load(None, Vec::new()).unwrap();
        // The test runs in actors/, where conf/pullcast.toml does not exist.
        assert_eq!(source, Source::BuiltIn);
        assert_eq!(s.server.rest_http_port, 8081);
        assert_eq!(s.server.rest_https_port, 8444);
    }

    #[test]
    fn environment_overrides_the_file() {
        let env = vec![
            (
                "PULLCAST_SERVER__REST_HTTP_PORT".to_string(),
                "9081".to_string(),
            ),
            (
                "PULLCAST_CAPTURE__MEDIA_TIMEOUT_MS".to_string(),
                "2500".to_string(),
            ),
            ("PULLCAST_SERVER__BIND".to_string(), "127.0.0.1".to_string()),
            ("HOME".to_string(), "/root".to_string()),
            ("PULLCAST_BIN".to_string(), "/usr/bin/pullcast".to_string()),
            (
                "PULLCAST_REST__CORS_ALLOWED_ORIGINS".to_string(),
                "https://a.example,https://b.example".to_string(),
            ),
        ];
        let (s, _) = load(Some(&shipped_file()), env).unwrap();
        assert_eq!(s.server.rest_http_port, 9081);
        assert_eq!(s.capture.media_timeout_ms, 2500);
        assert_eq!(s.server.bind, "127.0.0.1");
        assert_eq!(
            s.rest.cors_allowed_origins,
            vec!["https://a.example", "https://b.example"]
        );
    }

    #[test]
    fn access_lists_from_the_environment_and_mistakes_refused() {
        let env = vec![
            (
                "PULLCAST_AUTH__TRUSTED_NETWORKS".to_string(),
                "10.0.0.0/8,fd00::/8".to_string(),
            ),
            (
                "PULLCAST_AUTH__ANONYMOUS".to_string(),
                "play,records".to_string(),
            ),
            (
                "PULLCAST_HTTP__ALLOWED_ORIGINS".to_string(),
                "https://app.example".to_string(),
            ),
        ];
        let (s, _) = load(None, env).unwrap();
        assert_eq!(s.auth.trusted_networks, vec!["10.0.0.0/8", "fd00::/8"]);
        assert_eq!(s.auth.anonymous, vec!["play", "records"]);
        assert_eq!(s.http.allowed_origins, vec!["https://app.example"]);
        for (key, value, words) in [
            (
                "PULLCAST_AUTH__TRUSTED_NETWORKS",
                "10.0.0.1/8",
                "auth.trusted_networks",
            ),
            ("PULLCAST_AUTH__ANONYMOUS", "play,watch", "auth.anonymous"),
            ("PULLCAST_AUTH__HOOK_URL", "https://h/auth", "http://"),
            ("PULLCAST_AUTH__TOKEN_SECRET", "short", "token_secret"),
            ("PULLCAST_REST__BASIC_AUTH_USER", "a:b", "basic_auth_user"),
        ] {
            let err = load(None, vec![(key.to_string(), value.to_string())]).unwrap_err();
            assert!(err.contains(words), "{key}={value}: {err}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_clear_errors() {
        let env = vec![("PULLCAST_SERVER__RESTPORT".to_string(), "1".to_string())];
        let err = load(None, env).unwrap_err();
        assert!(err.contains("restport"), "{err}");
        let env = vec![(
            "PULLCAST_SERVER__REST_HTTP_PORT".to_string(),
            "eighty".to_string(),
        )];
        assert!(load(None, env).is_err());
        let err = load(Some(Path::new("/nonexistent/p.toml")), Vec::new()).unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
    }

    #[test]
    fn pull_lists_come_from_the_environment_and_are_checked() {
        let env = vec![
            (
                "PULLCAST_PULL__ALLOW".to_string(),
                "192.168.10.0/24,*.studio.lan".to_string(),
            ),
            ("PULLCAST_PULL__DENY".to_string(), "10.0.0.0/8".to_string()),
        ];
        let (s, _) = load(None, env).unwrap();
        assert_eq!(s.pull.allow, vec!["192.168.10.0/24", "*.studio.lan"]);
        assert_eq!(s.pull.deny, vec!["10.0.0.0/8"]);
        let env = vec![("PULLCAST_PULL__DENY".to_string(), "10.0.0.1/8".to_string())];
        let err = load(None, env).unwrap_err();
        assert!(
            err.contains("pull.deny") && err.contains("10.0.0.0/8"),
            "{err}"
        );
    }
}
