//! A Cabourotte HTTP API emulator on 127.0.0.1 for tests, the demo and benchmarks.
//!
//! It answers like Cabourotte: `GET /api/v1/result/NAME` (generation 2, >= 2.0) or
//! `GET /result/NAME` (generation 1), a 200 with the result JSON, a 404
//! `{"messages":["result not found for healthcheck NAME"]}` for an unknown check, and echo's
//! 404 `{"message":"Not Found"}` for an unknown route. HTTP/1.1 keep-alive. Each check's
//! behaviour is looked up per request, so a test flips it at any time; faults (500, malformed
//! JSON, oversized body, hang) are behaviours too. It counts requests per check and
//! connections, and keeps the time of each request.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What the emulator answers for one check.
#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    /// 200, `success: true`.
    Pass,
    /// 200, `success: false` with this message.
    Fail(String),
    /// 404 "result not found" (Cabourotte has not run it yet, or does not know it).
    NotFound,
    /// 200 with `success: true` but a timestamp this many seconds old.
    Stale(u64),
    /// This HTTP status with an empty JSON body.
    Status(u16),
    /// 200 with a body that is not JSON.
    Malformed,
    /// 200 with a body of this many bytes.
    Oversized(usize),
    /// Never answer (keep the connection open).
    Hang,
    /// Send the head and then one byte of the body every 200 ms (slowloris).
    Slowloris,
}

/// Which API generation the emulated Cabourotte speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    /// `/result/NAME` (1.x).
    V1,
    /// `/api/v1/result/NAME` (2.x).
    V2,
}

/// Where behaviours come from.
pub type Lookup = Arc<dyn Fn(&str) -> Behaviour + Send + Sync>;

/// A running emulator.
pub struct Emulator {
    /// Its address on 127.0.0.1.
    pub addr: SocketAddr,
    behaviours: Arc<Mutex<HashMap<String, Behaviour>>>,
    requests: Arc<Mutex<HashMap<String, Vec<SystemTime>>>>,
    connections: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Emulator {
    /// Start on 127.0.0.1 with an ephemeral port; checks not set answer "result not found".
    pub async fn start(generation: Generation) -> Emulator {
        match TcpListener::bind("127.0.0.1:0").await {
            Ok(listener) => Emulator::serve(listener, generation, None),
            Err(e) => panic!("cannot bind 127.0.0.1:0: {e}"),
        }
    }

    /// Serve on `listener`; `lookup` (if given) decides behaviours instead of the table.
    pub fn serve(
        listener: TcpListener,
        generation: Generation,
        lookup: Option<Lookup>,
    ) -> Emulator {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let behaviours: Arc<Mutex<HashMap<String, Behaviour>>> = Arc::default();
        let requests: Arc<Mutex<HashMap<String, Vec<SystemTime>>>> = Arc::default();
        let connections = Arc::new(AtomicU64::new(0));
        let lookup: Lookup = match lookup {
            Some(lookup) => lookup,
            None => {
                let table = behaviours.clone();
                Arc::new(move |name| {
                    lock(&table)
                        .get(name)
                        .cloned()
                        .unwrap_or(Behaviour::NotFound)
                })
            }
        };
        let (req, conns) = (requests.clone(), connections.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                conns.fetch_add(1, Ordering::Relaxed);
                // As Go's net/http (Cabourotte): no Nagle delay on a response's second write.
                let _ = stream.set_nodelay(true);
                let (lookup, req) = (lookup.clone(), req.clone());
                tokio::spawn(async move {
                    let _ = serve_connection(stream, generation, lookup, req).await;
                });
            }
        });
        Emulator {
            addr,
            behaviours,
            requests,
            connections,
            task,
        }
    }

    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Set what check `name` answers.
    pub fn set(&self, name: &str, behaviour: Behaviour) {
        lock(&self.behaviours).insert(name.to_owned(), behaviour);
    }

    /// Requests seen for check `name` (on any route).
    pub fn requests(&self, name: &str) -> u64 {
        lock(&self.requests)
            .get(name)
            .map_or(0, |times| times.len() as u64)
    }

    /// When each request for check `name` (on any route) arrived, in order.
    pub fn request_times(&self, name: &str) -> Vec<SystemTime> {
        lock(&self.requests).get(name).cloned().unwrap_or_default()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_connection(
    stream: TcpStream,
    generation: Generation,
    lookup: Lookup,
    requests: Arc<Mutex<HashMap<String, Vec<SystemTime>>>>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).await? == 0 {
            return Ok(());
        }
        // Skip headers; requests have no body.
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).await? == 0 {
                return Ok(());
            }
            if header == "\r\n" || header == "\n" {
                break;
            }
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .to_owned();
        let route = match generation {
            Generation::V2 => "/api/v1/result/",
            Generation::V1 => "/result/",
        };
        let name = path
            .rsplit('/')
            .next()
            .map(percent_decode)
            .unwrap_or_default();
        lock(&requests)
            .entry(name.clone())
            .or_default()
            .push(SystemTime::now());
        let (status, body) = match path.strip_prefix(route) {
            Some(encoded) if !encoded.contains('/') => match lookup(&name) {
                Behaviour::Hang => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return Ok(());
                }
                Behaviour::Slowloris => {
                    let body = result_json(&name, true, "success", now_s());
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    write.write_all(head.as_bytes()).await?;
                    for byte in body.bytes() {
                        write.write_all(&[byte]).await?;
                        write.flush().await?;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    continue;
                }
                behaviour => respond(&name, &behaviour),
            },
            _ => (404, r#"{"message":"Not Found"}"#.to_owned()),
        };
        let reason = match status {
            200 => "OK",
            404 => "Not Found",
            500 => "Internal Server Error",
            _ => "Status",
        };
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        write.write_all(head.as_bytes()).await?;
        write.write_all(body.as_bytes()).await?;
        write.flush().await?;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn result_json(name: &str, success: bool, message: &str, timestamp: u64) -> String {
    // The shape of Cabourotte's healthcheck.Result, with echo's trailing newline.
    format!(
        "{{\"name\":{name:?},\"summary\":\"emulated\",\"success\":{success},\"healthcheck-timestamp\":{timestamp},\"message\":{message:?},\"duration\":1,\"source\":\"configuration\"}}\n"
    )
}

fn respond(name: &str, behaviour: &Behaviour) -> (u16, String) {
    match behaviour {
        Behaviour::Pass => (200, result_json(name, true, "success", now_s())),
        Behaviour::Fail(message) => (200, result_json(name, false, message, now_s())),
        Behaviour::Stale(age) => (
            200,
            result_json(name, true, "success", now_s().saturating_sub(*age)),
        ),
        Behaviour::NotFound => (
            404,
            format!("{{\"messages\":[\"result not found for healthcheck {name}\"]}}\n"),
        ),
        Behaviour::Status(code) => (*code, "{}".to_owned()),
        Behaviour::Malformed => (200, "{\"success\": tru".to_owned()),
        Behaviour::Oversized(n) => (200, format!("{{\"pad\":\"{}\"}}", "x".repeat(*n))),
        Behaviour::Hang | Behaviour::Slowloris => (200, String::new()),
    }
}
