//! The `pullcast` binary: reads the configuration, starts the registry and the REST API,
//! and runs until SIGINT/SIGTERM.
//!
//! `pullcast [--config PATH]` — with no file it runs on the built-in defaults.

use std::path::PathBuf;
use std::process::ExitCode;

use actix::Actor;
use std::time::Duration;

use log::{error, info, warn};
use pullcast_server::messages::Shutdown;
use pullcast_server::registry::Registry;
use pullcast_server::settings::{self, Settings, Source};
use pullcast_server::webrtc::WebRtcEngine;
use pullcast_server::{http, rtmp_serve, stream};

const USAGE: &str = "usage: pullcast [--config PATH]
       pullcast --hash-password < password.txt

Pulls live RTMP streams on REST calls and re-serves them.
  --config PATH     TOML configuration (default: conf/pullcast.toml if present, else built-in)
  --hash-password   read a password (one line) from stdin, print its argon2id PHC string
                    for [[auth.users]] password_hash, and exit
  -h, --help        this text
  -V, --version   the version
Environment: PULLCAST_<SECTION>__<KEY> overrides any key, RUST_LOG the log filter.";

/// Modules whose warnings say nothing to an operator, kept at error level unless RUST_LOG
/// says otherwise.
const QUIET_MODULES: &str = "rtc_dtls::config=error";

fn main() -> ExitCode {
    let mut config: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" | "-c" => match args.next() {
                Some(path) => config = Some(PathBuf::from(path)),
                None => return usage_error("--config needs a path"),
            },
            "--hash-password" => return hash_password(),
            "-h" | "--help" => {
                eprintln!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "-V" | "--version" => {
                eprintln!("pullcast {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            other => return usage_error(&format!("unknown argument '{other}'")),
        }
    }
    let loaded = settings::load(config.as_deref(), std::env::vars());
    let level = match &loaded {
        Ok((s, _)) => s.log.level.clone(),
        Err(_) => "info".to_string(),
    };
    // rtc's DTLS client warns on every connection that it has no server name for SNI, which
    // WebRTC does not use; one line per viewer would drown the log.
    let filter = format!("{level},{QUIET_MODULES}");
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(filter)).init();
    pullcast_server::panic_guard::install_hook();
    let (settings, source) = match loaded {
        Ok(v) => v,
        Err(e) => {
            error!("{e}");
            return ExitCode::from(2);
        }
    };
    match &source {
        Source::BuiltIn => info!("configuration: built-in defaults"),
        Source::File(p) => info!("configuration: {}", p.display()),
    }
    match actix::System::new().block_on(run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `--hash-password`: one line from stdin → its argon2id PHC string on stdout (the only
/// thing this binary writes to stdout; the server itself logs).
fn hash_password() -> ExitCode {
    use std::io::{BufRead, Write};
    let mut line = String::new();
    if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
        eprintln!("pullcast: cannot read the password from stdin: {e}");
        return ExitCode::from(2);
    }
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        eprintln!("pullcast: the password is empty");
        return ExitCode::from(2);
    }
    // 16 random bytes (uuid v4 comes from the OS's random source) as the salt.
    let salt = uuid::Uuid::new_v4();
    match pullcast::access::password::hash_password(password, salt.as_bytes()) {
        Ok(phc) => match writeln!(std::io::stdout(), "{phc}") {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("pullcast: cannot write the hash: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("pullcast: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("pullcast: {message}\n\n{USAGE}");
    ExitCode::from(2)
}

async fn run(settings: Settings) -> Result<(), String> {
    let pull_guard = stream::connect::pull_guard(&settings.pull)?;
    let registry = Registry::new(settings.clone(), stream::rtmp_source(pull_guard), 0).start();
    let webrtc = WebRtcEngine::new(&settings)?;
    let gate = http::access::Gate::new(&settings)?;
    let admission = http::admission::Admission::new(&settings.limits);
    rtmp_serve::serve(
        &settings,
        rtmp_serve::RtmpDeps {
            settings: settings.rtmp.clone(),
            gate: gate.clone(),
            admission: admission.clone(),
            registry: registry.clone(),
            engine: webrtc.clone(),
            queue_bytes: settings.capture.subscriber_queue_bytes,
            mailbox_frames: settings.capture.subscriber_queue_frames,
            capture: settings.capture.clone(),
            record_by_default: settings.record.by_default,
        },
    )
    .await?;
    let server = http::serve(&settings, registry.clone(), webrtc, gate, admission)?;
    let s = &settings.server;
    if s.plain_http {
        info!(
            "REST API on http://{}:{}/rest-api and https://{}:{}/rest-api",
            s.bind, s.rest_http_port, s.bind, s.rest_https_port
        );
    } else {
        info!(
            "REST API on https://{}:{}/rest-api (plain HTTP is off: server.plain_http)",
            s.bind, s.rest_https_port
        );
    }
    let handle = server.handle();
    let mut server = actix::spawn(server);
    tokio::select! {
        signal = stop_signal() => info!("{signal}: shutting down"),
        ended = &mut server => {
            return match ended {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("the HTTP server stopped: {e}")),
                Err(e) => Err(format!("the HTTP server failed: {e}")),
            };
        }
    }
    // Stop accepting, tell viewers STOPPED and close recordings, then stop serving.
    handle.pause().await;
    let limit = Duration::from_millis(settings.server.shutdown_timeout_ms);
    let shutdown = registry.send(Shutdown {
        reason: "the server is shutting down".to_string(),
    });
    match tokio::time::timeout(limit, shutdown).await {
        Ok(_) => info!("every capture stopped"),
        Err(_) => warn!("captures still stopping after {limit:?}; exiting anyway"),
    }
    handle.stop(true).await;
    let _ = server.await;
    info!("stopped");
    Ok(())
}

/// Waits for SIGINT or SIGTERM; says which.
async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            warn!("cannot listen for SIGTERM ({e}); only SIGINT stops the server");
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}
