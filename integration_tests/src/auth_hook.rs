//! An authorization hook for the access tests: a small HTTP/1.1 server on 127.0.0.1 that
//! records every JSON question pullcast POSTs and answers with the status the test's rule
//! gives (`0`: never answer, to prove the hook's timeout). Stopped on drop.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// What the hook answers to a question.
pub type Rule = dyn Fn(&Value) -> u16 + Send + Sync;

/// The running hook.
pub struct HookServer {
    port: u16,
    questions: Arc<Mutex<Vec<Value>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HookServer {
    /// Starts the hook; `rule` gives each question's status (0: hold the connection open
    /// without answering until the hook stops).
    pub fn start(rule: impl Fn(&Value) -> u16 + Send + Sync + 'static) -> HookServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the hook");
        listener
            .set_nonblocking(true)
            .expect("non-blocking hook listener");
        let port = listener.local_addr().expect("hook address").port();
        let questions = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let rule: Arc<Rule> = Arc::new(rule);
        let thread = {
            let (questions, stop) = (questions.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            let (questions, stop, rule) =
                                (questions.clone(), stop.clone(), rule.clone());
                            std::thread::spawn(move || serve(conn, &questions, &stop, &*rule));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        HookServer {
            port,
            questions,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>/auth`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/auth", self.port)
    }

    /// Every question so far, in arrival order.
    pub fn questions(&self) -> Vec<Value> {
        self.questions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for HookServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut conn: TcpStream, questions: &Mutex<Vec<Value>>, stop: &AtomicBool, rule: &Rule) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let body = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim()
                        .eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                break buf[end + 4..end + 4 + length].to_vec();
            }
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let question: Value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).to_string()));
    let status = rule(&question);
    questions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(question);
    if status == 0 {
        // Never answer: hold the connection until the test ends (or 30 s).
        let until = Instant::now() + Duration::from_secs(30);
        while !stop.load(Ordering::SeqCst) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        return;
    }
    let answer =
        format!("HTTP/1.1 {status} Hook\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = conn.write_all(answer.as_bytes());
}
