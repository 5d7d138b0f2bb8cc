//! nginx with the RTMP module on a free loopback port: the real RTMP server tests pull from.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::ports::{accepts, free_port};
use crate::process::{
    kill_pids, kill_tree, process_tree, require_file, require_tool, spawn_logged, tail, wait_exit,
};
use crate::publisher::{Publisher, PublisherBuilder};
use crate::tempdir::TempDir;
use crate::wait::poll_until;

/// The RTMP module Debian's `libnginx-mod-rtmp` installs.
pub const RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

/// A running nginx-rtmp (`application live { live on; }`) on 127.0.0.1. Stopped on drop.
pub struct NginxRtmp {
    dir: TempDir,
    port: u16,
    nginx: PathBuf,
    child: Option<Child>,
}

impl NginxRtmp {
    /// Writes a minimal nginx-rtmp config (one `live` application) into a fresh folder, starts nginx and waits (≤ 10 s)
    /// until its port accepts connections.
    pub fn start() -> NginxRtmp {
        Self::start_with("")
    }

    /// [`NginxRtmp::start`] with `applications` (nginx-rtmp `application` blocks) added
    /// beside `live`, e.g. an edge that `pull`s from another server.
    pub fn start_with(applications: &str) -> NginxRtmp {
        let nginx = require_tool("nginx");
        require_file(Path::new(RTMP_MODULE), "libnginx-mod-rtmp");
        let dir = TempDir::new("nginx");
        let port = free_port();
        let d = dir.path().display();
        let conf = format!(
            "load_module {RTMP_MODULE};\n\
             daemon off; master_process on; worker_processes 1;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n  \
             application live {{ live on; record off; }}\n{applications}\n}} }}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).expect("write nginx.conf");
        let mut me = NginxRtmp {
            dir,
            port,
            nginx,
            child: None,
        };
        me.run();
        me
    }

    /// Starts nginx with the written config and waits (≤ 10 s) until it accepts.
    fn run(&mut self) {
        let child = spawn_logged(
            Command::new(&self.nginx).args(Self::base_args(&self.dir)),
            &self.dir.join("stdout.log"),
        );
        self.child = Some(child);
        let port = self.port;
        let up = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Some(Err(status));
            }
            accepts(port).then_some(Ok(()))
        });
        match up {
            Some(Ok(())) => {}
            Some(Err(status)) => panic!(
                "nginx exited ({status}) before listening on {port}:\n{}",
                self.log_tail()
            ),
            None => panic!(
                "nginx did not accept on 127.0.0.1:{port} within 10 s:\n{}",
                self.log_tail()
            ),
        }
    }

    /// Stops nginx (every connection drops) and starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    fn base_args(dir: &TempDir) -> Vec<String> {
        vec![
            "-p".into(),
            dir.path().display().to_string(),
            "-e".into(),
            dir.join("error.log").display().to_string(),
            "-c".into(),
            dir.join("nginx.conf").display().to_string(),
        ]
    }

    /// The RTMP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `rtmp://127.0.0.1:<port>/<path>`, e.g. `rtmp_url("live/test")`.
    pub fn rtmp_url(&self, path: &str) -> String {
        format!(
            "rtmp://127.0.0.1:{}/{}",
            self.port,
            path.trim_start_matches('/')
        )
    }

    /// The master process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// How many times nginx has logged a `publish` of stream `name` (the stream key, e.g.
    /// `test` for `live/test`).
    pub fn publish_count(&self, name: &str) -> usize {
        let needle = format!("publish: name='{name}'");
        std::fs::read_to_string(self.dir.join("error.log"))
            .map(|log| log.matches(&needle).count())
            .unwrap_or(0)
    }

    /// Waits until nginx has logged `at_least` publishes of stream `name`. Returns false on
    /// timeout.
    pub fn wait_published_count(&self, name: &str, at_least: usize, timeout: Duration) -> bool {
        poll_until(timeout, Duration::from_millis(20), || {
            (self.publish_count(name) >= at_least).then_some(())
        })
        .is_some()
    }

    /// Waits until nginx has logged a `publish` of stream `name`. Returns false on timeout.
    pub fn wait_published(&self, name: &str, timeout: Duration) -> bool {
        self.wait_published_count(name, 1, timeout)
    }

    /// Starts `source` publishing on `live/<name>` and waits (≤ 10 s) until nginx has it
    /// (also when the name was published before). Returns the publisher (killed on drop) and
    /// the stream's URL.
    pub fn publish(&self, name: &str, source: PublisherBuilder) -> (Publisher, String) {
        let url = self.rtmp_url(&format!("live/{name}"));
        let before = self.publish_count(name);
        let publisher = source.start(&url);
        assert!(
            self.wait_published_count(name, before + 1, Duration::from_secs(10)),
            "ffmpeg did not publish {url}\n{}\n{}",
            self.log_tail(),
            publisher.log_tail()
        );
        (publisher, url)
    }

    /// The last lines of nginx's error log (for assertion messages).
    pub fn log_tail(&self) -> String {
        format!(
            "--- nginx error.log ({}) ---\n{}",
            self.dir.path().display(),
            tail(&self.dir.join("error.log"), 40)
        )
    }

    /// Stops nginx: `nginx -s stop` (fast shutdown, the master stops its workers), then after
    /// 5 s SIGKILL to the master and every worker. Idempotent.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // Collected first: once the master is gone its workers are reparented.
        let tree = process_tree(child.id());
        if child.try_wait().ok().flatten().is_none() {
            let _ = Command::new(&self.nginx)
                .args(Self::base_args(&self.dir))
                .args(["-s", "stop"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if wait_exit(&mut child, Duration::from_secs(5)).is_none() {
                eprintln!("[harness] nginx did not stop within 5 s; killing it");
            }
        }
        kill_tree(&mut child);
        kill_pids(&tree[1..]);
    }
}

impl Drop for NginxRtmp {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
        self.stop();
    }
}
