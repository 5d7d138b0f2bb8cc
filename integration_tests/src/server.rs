//! The pullcast binary under test: built once per test process, started on free loopback
//! ports with its own temporary folder, spoken to over its REST API.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::http::{self, parse_body, send, send_with_headers};
use crate::ports::free_port;
use crate::process::{kill_tree, spawn_logged, tail, wait_exit};
use crate::tempdir::TempDir;
use crate::wait::poll_until;

/// How long the server may take to answer its first REST request.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Upper bound on the one `cargo build` of the server (a cold build, dependencies optimised, took ~13 min on 2 cores).
const BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Builds `pullcast-server`'s `pullcast` binary once per test process and returns its path.
/// Panics (in every test that needs it) with cargo's output if the build fails.
pub fn server_binary() -> PathBuf {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BINARY.get_or_init(|| build_binary("pullcast-server", "pullcast")) {
        Ok(path) => path.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// Builds binary `bin` of workspace package `package` into the tests' own target folder and
/// profile; returns its path.
pub(crate) fn build_binary(package: &str, bin: &str) -> Result<PathBuf, String> {
    // <target>/<profile>/deps/<test>-<hash>  →  <target>/<profile>/pullcast
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("unexpected test executable path {}", exe.display()))?;
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| format!("unexpected test executable path {}", exe.display()))?;
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let tests_dir = crate::package_dir::package_dir();
    let workspace = tests_dir
        .parent()
        .ok_or("integration_tests has no parent folder")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let logs = TempDir::new("cargo-build");
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(workspace)
        .args(["build", "-p", package, "--bin", bin, "--target-dir"])
        .arg(target_dir);
    // The variables cargo sets for this test process are not the caller's: build scripts that
    // watch one (ring's watches CARGO_MANIFEST_DIR) would rebuild with every change between
    // this build and the caller's own `cargo build`/`cargo test`, and all that depends on them.
    for (key, _) in std::env::vars_os() {
        if is_set_by_cargo_for_tests(&key.to_string_lossy()) {
            cmd.env_remove(key);
        }
    }
    if release {
        cmd.arg("--release");
    }
    let started = Instant::now();
    let mut child = spawn_logged(&mut cmd, &logs.join("build.log"));
    let status = wait_exit(&mut child, BUILD_TIMEOUT);
    let Some(status) = status else {
        kill_tree(&mut child);
        return Err(format!(
            "`cargo build -p {package}` did not finish within {BUILD_TIMEOUT:?}:\n{}",
            tail(&logs.join("build.log"), 40)
        ));
    };
    if !status.success() {
        return Err(format!(
            "`cargo build -p {package} --bin {bin}` failed ({status}):\n{}",
            tail(&logs.join("build.log"), 60)
        ));
    }
    let binary = profile_dir.join(bin);
    if !binary.is_file() {
        return Err(format!(
            "cargo built {package} but {} does not exist",
            binary.display()
        ));
    }
    eprintln!(
        "[harness] built {} in {:.1} s",
        binary.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(binary)
}

/// Whether `name` is one of the variables cargo sets for a test (or build script) it runs,
/// rather than one the caller chose (`CARGO_HOME`, `CARGO_TARGET_DIR`, `CARGO_TERM_COLOR`…).
fn is_set_by_cargo_for_tests(name: &str) -> bool {
    const EXACT: [&str; 8] = [
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_CRATE_NAME",
        "CARGO_BIN_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
        "OUT_DIR",
    ];
    EXACT.contains(&name) || name.starts_with("CARGO_PKG_") || name.starts_with("CARGO_BIN_EXE_")
}

/// A running pullcast on 127.0.0.1. Killed on drop (and its log tail printed if the test
/// is failing).
pub struct Pullcast {
    dir: TempDir,
    child: Option<Child>,
    rest_http_port: u16,
    rest_https_port: u16,
    ws_port: u16,
    wss_port: u16,
    /// The HLS listener (`server.hls_http_port`).
    hls_port: u16,
    /// The RTMP listener (`server.rtmp_port`).
    rtmp_port: u16,
    agent: ureq::Agent,
    tls_agent: OnceLock<ureq::Agent>,
    /// `Authorization` sent with every REST call of the harness (`find_all`, `pull`, …).
    authorization: Option<String>,
}

impl Pullcast {
    /// Starts the server with free ports, a temporary self-signed certificate folder,
    /// `RUST_LOG=info,pullcast=debug`, then `extra_env` (which may override any of those),
    /// and waits (≤ 20 s) until `find_all` answers.
    pub fn start(extra_env: &[(&str, &str)]) -> Pullcast {
        Self::start_with_config("", extra_env)
    }

    /// [`Pullcast::start`] with `config` (TOML) as the server's `conf/pullcast.toml`, for
    /// what the environment cannot say (e.g. `[[auth.users]]`). The harness's environment
    /// (ports, bind address, TLS folder) still overrides it.
    pub fn start_with_config(config: &str, extra_env: &[(&str, &str)]) -> Pullcast {
        let binary = server_binary();
        let dir = TempDir::new("pullcast");
        if !config.is_empty() {
            std::fs::create_dir_all(dir.join("conf")).expect("create conf dir");
            std::fs::write(dir.join("conf").join("pullcast.toml"), config)
                .expect("write conf/pullcast.toml");
        }
        let tls_dir = dir.join("tls");
        std::fs::create_dir_all(&tls_dir).expect("create tls dir");
        let (rest_http_port, rest_https_port) = (free_port(), free_port());
        let (ws_port, wss_port) = (free_port(), free_port());
        let (hls_port, hls_tls_port) = (free_port(), free_port());
        let rtmp_port = free_port();
        let mut cmd = Command::new(&binary);
        // Hermetic: no PULLCAST_* leaks in from the caller's environment.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PULLCAST_") {
                cmd.env_remove(key);
            }
        }
        cmd.current_dir(dir.path())
            .env("RUST_LOG", "info,pullcast=debug")
            .env("PULLCAST_SERVER__BIND", "127.0.0.1")
            .env(
                "PULLCAST_SERVER__REST_HTTP_PORT",
                rest_http_port.to_string(),
            )
            .env(
                "PULLCAST_SERVER__REST_HTTPS_PORT",
                rest_https_port.to_string(),
            )
            .env("PULLCAST_SERVER__WS_PORT", ws_port.to_string())
            .env("PULLCAST_SERVER__WSS_PORT", wss_port.to_string())
            .env("PULLCAST_SERVER__HLS_HTTP_PORT", hls_port.to_string())
            .env("PULLCAST_SERVER__HLS_HTTPS_PORT", hls_tls_port.to_string())
            .env("PULLCAST_SERVER__RTMP_PORT", rtmp_port.to_string())
            .env("PULLCAST_TLS__SELF_SIGNED_DIR", &tls_dir)
            .env("PULLCAST_WEBRTC__UDP_PORT", free_port().to_string());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut env_dump: Vec<String> = cmd
            .get_envs()
            .filter_map(|(k, v)| Some(format!("{}={}", k.to_str()?, v?.to_str()?)))
            .collect();
        env_dump.sort();
        std::fs::write(dir.join("env.txt"), env_dump.join("\n")).expect("write env.txt");
        let child = spawn_logged(&mut cmd, &dir.join("pullcast.log"));
        let mut me = Pullcast {
            dir,
            child: Some(child),
            rest_http_port,
            rest_https_port,
            ws_port,
            wss_port,
            hls_port,
            rtmp_port,
            agent: http::agent(),
            tls_agent: OnceLock::new(),
            authorization: None,
        };
        me.wait_ready();
        me
    }

    fn wait_ready(&mut self) {
        let url = format!("{}/pull/rtmp/find_all", self.http_base());
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(1))
            .build();
        let mut last_error = String::new();
        let ready = poll_until(READY_TIMEOUT, Duration::from_millis(50), || {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Some(Err(status));
            }
            match send(&agent, "POST", &url, Some(b"{}")) {
                Ok(_) => Some(Ok(())),
                Err(e) => {
                    last_error = e;
                    None
                }
            }
        });
        match ready {
            Some(Ok(())) => {}
            Some(Err(status)) => panic!(
                "pullcast exited ({status}) before it was ready\n{}",
                self.log_tail()
            ),
            None => panic!(
                "pullcast did not answer POST {url} within {READY_TIMEOUT:?} (last error: {last_error})\n{}",
                self.log_tail()
            ),
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .expect("pullcast was stopped")
    }

    /// True while the server process runs.
    pub fn is_alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// `http://127.0.0.1:<rest_http_port>/rest-api`.
    pub fn http_base(&self) -> String {
        format!("{}/rest-api", self.http_root())
    }

    /// `https://127.0.0.1:<rest_https_port>/rest-api`.
    pub fn https_base(&self) -> String {
        format!("https://127.0.0.1:{}/rest-api", self.rest_https_port)
    }

    /// `ws://127.0.0.1:<ws_port>/` — where browsers open the signalling.
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.ws_port)
    }

    /// REST HTTP port.
    pub fn rest_http_port(&self) -> u16 {
        self.rest_http_port
    }

    /// WebSocket signalling ports (ws, wss).
    pub fn ws_ports(&self) -> (u16, u16) {
        (self.ws_port, self.wss_port)
    }

    /// REST HTTPS port.
    pub fn rest_https_port(&self) -> u16 {
        self.rest_https_port
    }

    /// The folder the server writes its self-signed `cert.pem` and `key.pem` into.
    pub fn self_signed_dir(&self) -> PathBuf {
        self.dir.join("tls")
    }

    /// The server's working folder (its cwd: records land here).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last 80 lines of the server's log, for assertion messages.
    pub fn log_tail(&self) -> String {
        format!(
            "--- pullcast log ({}) ---\n{}",
            self.dir.path().display(),
            tail(&self.dir.join("pullcast.log"), 80)
        )
    }

    /// `method http_base()+path` with a raw body; status and body text. Panics (with the log
    /// tail) on transport errors: the server must always answer.
    pub fn request(&self, method: &str, path: &str, body: Option<&[u8]>) -> (u16, String) {
        self.request_url(method, &format!("{}{path}", self.http_base()), body)
    }

    /// `method url` (a full URL, e.g. outside `/rest-api`) with a raw body; status and body
    /// text. Panics (with the log tail) on transport errors.
    pub fn request_url(&self, method: &str, url: &str, body: Option<&[u8]>) -> (u16, String) {
        let headers: Vec<(&str, &str)> = self
            .authorization
            .as_deref()
            .map(|a| ("Authorization", a))
            .into_iter()
            .collect();
        send_with_headers(&self.agent, method, url, body, &headers)
            .unwrap_or_else(|e| panic!("no HTTP answer: {e}\n{}", self.log_tail()))
    }

    /// Sends `authorization` (an `Authorization` header value) with every REST call the
    /// harness makes from now on — for servers whose clients are not trusted.
    pub fn authorize(&mut self, authorization: &str) {
        self.authorization = Some(authorization.to_string());
    }

    /// `http://127.0.0.1:<rest_http_port>` (no `/rest-api`).
    pub fn http_root(&self) -> String {
        format!("http://127.0.0.1:{}", self.rest_http_port)
    }

    /// `http://127.0.0.1:<hls_http_port>`: where HLS players are sent.
    pub fn hls_root(&self) -> String {
        format!("http://127.0.0.1:{}", self.hls_port)
    }

    /// The RTMP listener's port.
    pub fn rtmp_port(&self) -> u16 {
        self.rtmp_port
    }

    /// `rtmp://127.0.0.1:<rtmp_port>/live/<name>`: where RTMP players are sent.
    pub fn rtmp_url(&self, name: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{name}", self.rtmp_port)
    }

    /// Pulls `uri` as `name` (200 expected) and waits (≤ 10 s) until it has a keyframe, so a
    /// new player starts at once; returns the capture.
    pub fn pull_named(&self, uri: &str, name: &str) -> Value {
        let (status, body) = self.pull(&serde_json::json!({ "uri": uri, "localStreamName": name }));
        assert_eq!(status, 200, "pull {uri}: {body}\n{}", self.log_tail());
        self.wait_for_keyframe(uri, Duration::from_secs(10))
    }

    /// `POST` with raw bytes; status and parsed body (see [`parse_body`]).
    pub fn post_raw(&self, path: &str, body: &[u8]) -> (u16, Value) {
        let (status, text) = self.request("POST", path, Some(body));
        (status, parse_body(&text))
    }

    /// `POST http_base()+path` with `body` as given (it may be malformed on purpose).
    pub fn post(&self, path: &str, body: &str) -> (u16, Value) {
        self.post_raw(path, body.as_bytes())
    }

    /// `POST https_base()+path` trusting exactly `<self_signed_dir>/cert.pem`.
    pub fn post_https(&self, path: &str, body: &str) -> (u16, Value) {
        let agent = self.tls_agent.get_or_init(|| {
            let cert = self.self_signed_dir().join("cert.pem");
            assert!(
                cert.is_file(),
                "the server did not write {}\n{}",
                cert.display(),
                self.log_tail()
            );
            http::tls_agent(&cert)
        });
        let url = format!("{}{path}", self.https_base());
        let (status, text) = send(agent, "POST", &url, Some(body.as_bytes()))
            .unwrap_or_else(|e| panic!("no HTTPS answer: {e}\n{}", self.log_tail()));
        (status, parse_body(&text))
    }

    /// `POST /pull/rtmp/pull` with a JSON body.
    pub fn pull(&self, body: &Value) -> (u16, Value) {
        self.post("/pull/rtmp/pull", &body.to_string())
    }

    /// `POST /pull/rtmp/pull {"uri": uri}`, asserting 200.
    pub fn pull_ok(&self, uri: &str) -> Value {
        let (status, body) = self.pull(&serde_json::json!({ "uri": uri }));
        assert_eq!(status, 200, "pull {uri}: {body}\n{}", self.log_tail());
        body
    }

    /// `POST /pull/rtmp/terminate {"uri": uri}`.
    pub fn terminate(&self, uri: &str) -> (u16, Value) {
        self.post(
            "/pull/rtmp/terminate",
            &serde_json::json!({ "uri": uri }).to_string(),
        )
    }

    /// Terminates the capture of `uri`, waits for its recording `file` (a name from
    /// `find_all`'s `recording.file`) to be complete in the records folder and asserts that
    /// ffmpeg decodes it without an error; returns its path. Panics after 10 s.
    pub fn terminate_and_check_recording(&self, uri: &str, file: &str) -> PathBuf {
        let (status, body) = self.terminate(uri);
        assert_eq!(status, 200, "terminate {uri}: {body}");
        let path = self.dir().join("records").join(file);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !path.exists() {
            assert!(
                Instant::now() < deadline,
                "{} missing\n{}",
                path.display(),
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // Let the writer's last flush land.
        std::thread::sleep(Duration::from_millis(500));
        let errors = crate::probe::decode_errors(&path);
        assert!(
            errors.trim().is_empty(),
            "{}: decode errors: {errors}",
            path.display()
        );
        path
    }

    /// `POST /pull/rtmp/find_all {}`: status and body.
    pub fn find_all(&self) -> (u16, Value) {
        self.post("/pull/rtmp/find_all", "{}")
    }

    /// The captures `find_all` lists: empty on 404, the array on 200; panics on anything else.
    pub fn captures(&self) -> Vec<Value> {
        match self.find_all() {
            (404, _) => Vec::new(),
            (200, Value::Array(list)) => list,
            (status, body) => panic!(
                "find_all answered {status} {body} (want 200 + array or 404)\n{}",
                self.log_tail()
            ),
        }
    }

    /// The capture of `uri` as listed by `find_all`, if any.
    pub fn capture(&self, uri: &str) -> Option<Value> {
        self.captures().into_iter().find(|c| c["uri"] == uri)
    }

    /// Polls `find_all` every 100 ms until the capture of `uri` satisfies `pred`; returns it.
    /// Panics after `timeout` with the last state seen and the server's log tail.
    pub fn wait_for(
        &self,
        uri: &str,
        timeout: Duration,
        what: &str,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Value {
        let mut last = None;
        let found = poll_until(timeout, Duration::from_millis(100), || {
            let c = self.capture(uri);
            let hit = c.as_ref().is_some_and(&mut pred);
            last = c;
            if hit {
                last.clone()
            } else {
                None
            }
        });
        found.unwrap_or_else(|| {
            panic!(
                "capture of {uri} did not reach {what} within {timeout:?}; last seen: {}\n{}",
                last.map_or("(not listed)".to_string(), |v| v.to_string()),
                self.log_tail()
            )
        })
    }

    /// Polls `find_all` every 100 ms until the capture of `uri` has `status`; returns it.
    pub fn wait_for_status(&self, uri: &str, status: &str, timeout: Duration) -> Value {
        self.wait_for(uri, timeout, &format!("status {status}"), |c| {
            c["status"] == status
        })
    }

    /// Waits until the capture of `uri` is `PROCESSED_REMOTE` with its video described and a
    /// keyframe received: from then on a new viewer starts at once from the capture's cache
    /// (nginx-rtmp starts a player mid-GOP, so the first frames may not be decodable).
    pub fn wait_for_keyframe(&self, uri: &str, timeout: Duration) -> Value {
        self.wait_for(
            uri,
            timeout,
            "PROCESSED_REMOTE with a video keyframe",
            |c| {
                c["status"] == "PROCESSED_REMOTE"
                    && c["video"]["width"].as_u64().is_some()
                    && c["videoKeyframes"].as_u64().unwrap_or(0) >= 1
            },
        )
    }

    /// Kills the server. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_tree(&mut child);
        }
    }
}

impl Drop for Pullcast {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::is_set_by_cargo_for_tests;

    #[test]
    fn cargos_test_variables_are_dropped_and_the_callers_kept() {
        for set_by_cargo in [
            "CARGO_MANIFEST_DIR",
            "CARGO_PKG_NAME",
            "CARGO_PKG_VERSION_MAJOR",
            "CARGO_BIN_EXE_pullcast",
            "CARGO_CRATE_NAME",
            "OUT_DIR",
        ] {
            assert!(is_set_by_cargo_for_tests(set_by_cargo), "{set_by_cargo}");
        }
        for callers in [
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_TERM_COLOR",
            "CARGO_BUILD_JOBS",
            "CARGO",
            "PATH",
            "RUSTFLAGS",
        ] {
            assert!(!is_set_by_cargo_for_tests(callers), "{callers}");
        }
    }
}
