//! The HTTP API as a real process: `streamtier serve` / `streamtier run` on a free port, and a
//! minimal HTTP/1.1 client over a raw TCP connection (one request per connection).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::archiver::{binary, write_config};

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// The body (chunked encoding removed).
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("status {}: body is not JSON ({e}): {}", self.status, self.text()))
    }
}

/// Sends one request to `addr` (`127.0.0.1:PORT`) with `Connection: close` and reads the whole
/// response. `Err` when the connection or the response is broken.
pub async fn try_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        if !body.is_empty() {
            head.push_str("Content-Type: application/json\r\n");
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        parse_response(&raw)
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request timed out"))?
}

/// [`try_request`] that panics on a broken connection.
pub async fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    try_request(addr, method, path, headers, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

fn broken(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

fn parse_response(raw: &[u8]) -> std::io::Result<Response> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| broken("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| broken("headers are not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| broken("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body)?;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| broken("bad chunk"))?;
        let size_text = std::str::from_utf8(&rest[..line_end]).map_err(|_| broken("bad chunk"))?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| broken("bad chunk size"))?;
        if size == 0 {
            return Ok(out);
        }
        let data = rest
            .get(line_end + 2..line_end + 2 + size)
            .ok_or_else(|| broken("short chunk"))?;
        out.extend_from_slice(data);
        rest = rest
            .get(line_end + 4 + size..)
            .ok_or_else(|| broken("short chunk"))?;
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

/// A deadline for polling loops.
pub struct Deadline {
    at: Instant,
    secs: u64,
}

impl Deadline {
    /// `secs` seconds from now.
    pub fn secs(secs: u64) -> Deadline {
        Deadline {
            at: Instant::now() + Duration::from_secs(secs),
            secs,
        }
    }
}

/// A `streamtier serve` or `streamtier run` process with its stderr in a file; killed on drop.
pub struct Server {
    child: Child,
    log: PathBuf,
    /// `127.0.0.1:PORT`
    pub addr: String,
}

impl Server {
    /// Writes the configuration `toml(port)` into `dir`, starts `streamtier <command>` with it
    /// and waits until `/healthz` answers 200. Retries with another port when the chosen one was
    /// taken meanwhile.
    pub async fn start(command: &str, dir: &Path, toml: impl Fn(u16) -> String) -> Server {
        for attempt in 0..5 {
            let port = free_port();
            let config = write_config(dir, &toml(port));
            let log = dir.join(format!("{command}-{attempt}.log"));
            let stderr = std::fs::File::create(&log).expect("create server log");
            let child = Command::new(binary())
                .arg(command)
                .arg("--config")
                .arg(&config)
                .env("RUST_LOG", "debug")
                .env("NO_COLOR", "1")
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .expect("start streamtier");
            let mut server = Server {
                child,
                log,
                addr: format!("127.0.0.1:{port}"),
            };
            let deadline = Deadline::secs(60);
            loop {
                if server.child.try_wait().expect("try_wait").is_some() {
                    break;
                }
                if let Ok(r) = try_request(&server.addr, "GET", "/healthz", &[], b"").await {
                    if r.status == 200 {
                        return server;
                    }
                }
                server.tick(&deadline, "/healthz").await;
            }
            let log = server.log();
            assert!(
                log.contains("cannot listen"),
                "streamtier {command} exited before it was healthy; its log:\n{log}"
            );
        }
        panic!("streamtier {command} found no free port in 5 attempts");
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics with the log when the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!("server exited with {status}; its log:\n{}", self.log());
        }
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill9(&mut self) {
        self.assert_running();
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }

    /// One step of a polling loop: panics (with the log) when the server died or `deadline`
    /// passed while waiting for `what`, else sleeps 50 ms.
    pub async fn tick(&mut self, deadline: &Deadline, what: &str) {
        self.assert_running();
        if Instant::now() > deadline.at {
            panic!(
                "timed out after {} s waiting for {what}; server log:\n{}",
                deadline.secs,
                self.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    /// A request with extra headers.
    pub async fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        request(&self.addr, method, path, headers, body).await
    }

    /// `GET path`
    pub async fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], b"").await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> Response {
        self.request("POST", path, &[], body.to_string().as_bytes()).await
    }

    /// `GET path`, asserting 200 and a JSON body.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let r = self.get(path).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r.json()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A configuration for the API on `127.0.0.1:port` over `redis` and the local-directory store
/// `store`; `extra` follows the `[api]` line (more `[api]` keys first, then other sections).
pub fn api_config(
    redis: &crate::harness::redis::RedisServer,
    store: &Path,
    port: u16,
    extra: &str,
) -> String {
    format!(
        "[redis]\nurl = \"{}\"\n[store]\nurl = \"{}\"\n[api]\nlisten = \"127.0.0.1:{port}\"\n{extra}",
        redis.url(),
        store.display()
    )
}
