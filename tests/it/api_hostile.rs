//! Hostile clients against the real `streamtier run` process (archiver and API in one): half-sent
//! requests held open, idle connections, deeply nested filters, malformed paths and bodies.
//! Each must get a clear answer or a closed connection, and the process, its `/healthz` and its
//! archiver must go on.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::http::{api_config, Deadline, Response, Server};
use crate::harness::redis::RedisServer;
use crate::harness::stream::{archived_entries, xadd};

/// Whether the server closed `stream` (a read returns end of file or an error) within `wait`.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let until = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(until, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            // A 408 or similar may come before the close.
            Ok(Ok(_)) => {}
        }
    }
}

/// Open file descriptors of process `pid`.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn is_problem(r: &Response) -> bool {
    r.header("content-type") == Some("application/problem+json")
}

#[tokio::test]
async fn half_sent_requests_neither_exhaust_the_process_nor_stop_healthz_or_the_archiver() {
    const HELD: usize = 400;
    const MAX_CONNECTIONS: usize = 64;
    let redis = RedisServer::start();
    let mut con = redis.con();
    let dir = tempfile::tempdir().expect("tempdir");
    let store_dir = dir.path().join("archive");
    let extra = format!(
        "max_connections = {MAX_CONNECTIONS}\nheader_read_timeout = \"3s\"\nidle_timeout = \"2s\"\n\
         [archive]\nflush_after = \"1s\"\npoll_interval = \"100ms\"\n\
         [[topics]]\nname = \"t\"\nstreams = \"t:{{partition}}\"\npartitions = 1\nretain_for = \"0s\"\n"
    );
    let mut server = Server::start("run", dir.path(), |port| {
        api_config(&redis, &store_dir, port, &extra)
    })
    .await;
    let baseline_fds = open_fds(server.pid());

    // Hundreds of connections that send half a request head and wait.
    let mut held = Vec::with_capacity(HELD);
    for _ in 0..HELD {
        let mut s = TcpStream::connect(&server.addr).await.expect("connect");
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("half a head");
        held.push(s);
    }
    // The process holds at most its cap of them; /healthz answers meanwhile, every time.
    let deadline = Deadline::secs(10);
    while open_fds(server.pid()) > baseline_fds + MAX_CONNECTIONS + 8 {
        server
            .tick(&deadline, "connections over the cap to be closed")
            .await;
    }
    for _ in 0..5 {
        let r = server.get("/healthz").await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // The archiver still opens its files: new entries are archived while the connections are held.
    for i in 0..50u32 {
        xadd(&mut con, "t:0", "*", &[(b"i", i.to_string().as_bytes())]);
    }
    let store = streamtier_tiers::store::Store::Local(
        streamtier_tiers::store::LocalStore::new(&store_dir).expect("store"),
    );
    let deadline = Deadline::secs(30);
    while archived_entries(&store, "t", 0).await.len() < 50 {
        server.tick(&deadline, "the archiver to archive 50 entries").await;
    }
    assert!(!server.log().contains("Too many open files"), "{}", server.log());
    // Every half-sent request is closed once its head is late (3 s), evicted or not.
    let started = Instant::now();
    for s in &mut held {
        assert!(
            closed_within(s, Duration::from_secs(10)).await,
            "a half-sent request was still open after {:?}",
            started.elapsed()
        );
    }
    // An idle keep-alive connection is closed after idle_timeout.
    let mut idle = TcpStream::connect(&server.addr).await.expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("request");
    let mut buf = [0u8; 4096];
    let n = idle.read(&mut buf).await.expect("response");
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    let idle_since = Instant::now();
    assert!(
        closed_within(&mut idle, Duration::from_secs(10)).await,
        "an idle connection stayed open"
    );
    assert!(
        idle_since.elapsed() >= Duration::from_millis(1500),
        "closed before idle_timeout"
    );
    server.assert_running();
}

#[tokio::test]
async fn hostile_requests_get_problems_and_the_process_goes_on() {
    let redis = RedisServer::start();
    let mut con = redis.con();
    for i in 0..10u32 {
        xadd(
            &mut con,
            "t:0",
            &format!("{}-0", 1_700_000_000_000u64 + u64::from(i)),
            &[(b"a", b"1")],
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let store_dir = dir.path().join("archive");
    // `u:0` is not a stream: reading it fails before the first entry.
    redis::cmd("SET")
        .arg("u:0")
        .arg("not a stream")
        .exec(&mut con)
        .expect("set");
    let extra = "body_read_timeout = \"1s\"\n\
        [[topics]]\nname = \"t\"\nstreams = \"t:{partition}\"\npartitions = 1\n\
        [[topics]]\nname = \"u\"\nstreams = \"u:{partition}\"\npartitions = 1\n";
    let mut server = Server::start("run", dir.path(), |port| {
        api_config(&redis, &store_dir, port, extra)
    })
    .await;

    let parens = format!("{}a = 1{}", "(".repeat(3000), ")".repeat(3000));
    let nots = format!("{}a = 1", "not ".repeat(15_000));
    for filter in [&parens, &nots] {
        let r = server
            .post("/v1/replays", &json!({"topic": "t", "filter": filter}))
            .await;
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(
            is_problem(&r) && r.text().contains("nested too deeply"),
            "{}",
            r.text()
        );
        // As a form encodes it (`+` for spaces), to stay under the longest URI there is.
        let query = filter
            .replace(' ', "+")
            .replace('(', "%28")
            .replace(')', "%29")
            .replace('=', "%3D");
        let r = server
            .get(&format!("/v1/topics/t/partitions/0/entries?filter={query}"))
            .await;
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(r.text().contains("nested too deeply"), "{}", r.text());
    }
    // A long flat chain is no nesting: it parses and selects.
    let chain = vec!["a = 2"; 2000].join(" or ") + " or a = 1";
    let query: String = chain.bytes().map(|b| format!("%{b:02X}")).collect();
    let r = server
        .get(&format!("/v1/topics/t/partitions/0/entries?filter={query}"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text().lines().count(), 10);

    // Refusals by the router and the extractors are problems too.
    for (method, path, body, status) in [
        ("GET", "/v1/topics/t/partitions/zero/entries", &b""[..], 400),
        ("GET", "/v1/topics/t/partitions/99999999999/entries", b"", 400),
        ("DELETE", "/v1/replays", b"", 405),
        ("POST", "/v1/replays", b"{\"topic\": \"t\"} trailing", 400),
        ("POST", "/v1/replays", b"{\"topic\": \"t\", \"from\"", 400),
        ("POST", "/v1/replays", &[b'['; 100_000][..], 413),
        ("POST", "/v1/replays", &b"[".repeat(60_000), 400),
    ] {
        let r = server.request(method, path, &[], body).await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.text());
        assert!(
            is_problem(&r),
            "{method} {path}: {:?} {}",
            r.header("content-type"),
            r.text()
        );
        let p = r.json();
        assert_ne!(p["field"], "?", "{method} {path}: {p}");
    }
    // A body that trickles in is cut at body_read_timeout with a 408.
    let mut slow = TcpStream::connect(&server.addr).await.expect("connect");
    slow.write_all(b"POST /v1/replays HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"topic\"")
        .await
        .expect("head");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("api.body_read_timeout"), "{answer}");

    // A read that fails before its first entry is a status, not a 200 with an error line.
    let r = server.get("/v1/topics/u/partitions/0/entries").await;
    assert_ne!(r.status, 200, "{}", r.text());
    assert!(is_problem(&r), "{}", r.text());
    server.assert_running();
    assert_eq!(server.get("/healthz").await.status, 200);

    // The command line refuses the same filters with exit 2, before it connects to anything.
    for filter in [&parens, &nots] {
        let out = std::process::Command::new(crate::harness::archiver::binary())
            .args(["read", "--topic", "t", "--partition", "0", "--filter", filter])
            .output()
            .expect("run streamtier read");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("nested too deeply"), "{stderr}");
    }
}

/// Percent-encodes every byte that is not unreserved in a URI.
fn encode(text: &[u8]) -> String {
    text.iter()
        .map(|&b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A random piece of text a hostile or careless client might send.
fn hostile_text(rng: &mut impl rand::Rng) -> Vec<u8> {
    use rand::seq::IndexedRandom;
    let pieces: [&[u8]; 16] = [
        b"orders",
        b"0",
        b"1",
        b"-1",
        b"99999999999999999999",
        b"0-0",
        b"18446744073709551615-18446744073709551615",
        b"2026-11-01T00:00:00Z",
        b"..",
        b"%",
        b"\0",
        b"'",
        b"((((",
        b"not ",
        b"fields.a = 1",
        "é".as_bytes(),
    ];
    let n = rng.random_range(0..4);
    let mut out = Vec::new();
    for _ in 0..n {
        if rng.random_bool(0.2) {
            out.extend((0..rng.random_range(0..12)).map(|_| rng.random::<u8>()));
        } else {
            out.extend_from_slice(pieces.choose(rng).expect("pieces"));
        }
    }
    if rng.random_bool(0.05) && !out.is_empty() {
        out = out.repeat(rng.random_range(1..3000));
    }
    out
}

/// A random JSON value, sometimes of the shape a route expects, sometimes not, sometimes deep.
fn hostile_json(rng: &mut impl rand::Rng, depth: usize) -> serde_json::Value {
    use serde_json::Value;
    let text = || String::from_utf8_lossy(&hostile_text(&mut rand::rng())).into_owned();
    match rng.random_range(0..9) {
        0 => Value::Null,
        1 => json!(rng.random::<i64>()),
        2 => json!(rng.random::<f64>()),
        3 => json!(rng.random_bool(0.5)),
        4 | 5 => json!(text()),
        6 if depth < 6 => Value::Array(
            (0..rng.random_range(0..4))
                .map(|_| hostile_json(rng, depth + 1))
                .collect(),
        ),
        _ if depth < 6 => {
            let keys = [
                "topic",
                "partitions",
                "from",
                "to",
                "target",
                "ids",
                "origin_field",
                "rate_limit",
                "dry_run",
                "filter",
                "restore_groups",
                "at",
                "max_target_backlog",
                "unknown",
            ];
            let mut map = serde_json::Map::new();
            map.insert("topic".into(), json!("orders"));
            for _ in 0..rng.random_range(0..5) {
                let key = keys[rng.random_range(0..keys.len())];
                map.insert(key.into(), hostile_json(rng, depth + 1));
            }
            Value::Object(map)
        }
        _ => json!(text()),
    }
}

/// Every route, with random methods, path segments, queries and bodies: each answer is a status
/// below 500 and, when it refuses, a problem; nothing panics.
#[tokio::test]
async fn any_request_to_any_route_is_answered_without_a_server_error() {
    use crate::harness::api::{ApiSetup, InProcessApi};
    use rand::{Rng, SeedableRng};
    let redis = RedisServer::start();
    let mut con = redis.con();
    xadd(&mut con, "orders:0", "1700000000000-0", &[(b"a", b"1")]);
    let api = InProcessApi::start(
        &redis,
        ApiSetup {
            max_body_bytes: 64 * 1024,
            ..ApiSetup::default()
        },
    )
    .await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];
    for case in 0..400 {
        // Each segment under 2,000 bytes, so that the URI stays under the longest there is.
        let seg = |rng: &mut rand::rngs::StdRng| {
            let mut text = hostile_text(rng);
            text.truncate(2000);
            encode(&text)
        };
        let mut path = match rng.random_range(0..10) {
            0 => "/v1/replays".to_string(),
            1 => format!("/v1/replays/{}", seg(&mut rng)),
            2 => {
                let action = ["cancel", "pause", "resume"][rng.random_range(0..3)];
                format!("/v1/replays/{}/{action}", seg(&mut rng))
            }
            3 => "/v1/topics".to_string(),
            4 => format!("/v1/topics/{}", seg(&mut rng)),
            5 | 6 => format!(
                "/v1/topics/{}/partitions/{}/entries",
                seg(&mut rng),
                seg(&mut rng)
            ),
            7 => ["/healthz", "/readyz", "/metrics", "/openapi.json"][rng.random_range(0..4)].to_string(),
            _ => format!("/{}", seg(&mut rng)),
        };
        if rng.random_bool(0.5) {
            let params = ["from", "after", "to", "limit", "filter", "offset", "x"];
            let query: Vec<String> = (0..rng.random_range(1..4))
                .map(|_| format!("{}={}", params[rng.random_range(0..params.len())], seg(&mut rng)))
                .collect();
            path = format!("{path}?{}", query.join("&"));
        }
        let body: Vec<u8> = match rng.random_range(0..4) {
            0 => Vec::new(),
            1 => hostile_text(&mut rng),
            2 => "[".repeat(rng.random_range(1..5000)).into_bytes(),
            _ => hostile_json(&mut rng, 0).to_string().into_bytes(),
        };
        let method = methods[rng.random_range(0..methods.len())];
        let r = api.request(method, &path, &body).await;
        let shown = || {
            format!(
                "case {case}: {method} {path} {}: {} {}",
                String::from_utf8_lossy(&body[..body.len().min(200)]),
                r.status,
                r.text()
            )
        };
        assert!(r.status < 500, "{}", shown());
        if r.status >= 400 && method != "HEAD" {
            assert!(is_problem(&r), "{}", shown());
            assert_ne!(r.json()["field"], "?", "{}", shown());
        }
    }
}
