//! The HTTP API against a real Redis: refused requests as `application/problem+json` naming the
//! field and the OpenAPI document (through the router in this process), bearer-token auth and
//! the refusal of an open listen address without a token (against `streamtier serve` over TCP).

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use streamtier_replayer::ReplayLimits;

use crate::harness::api::{ApiSetup, InProcessApi};
use crate::harness::archiver::{binary, write_config};
use crate::harness::http::{api_config, free_port, Response, Server};
use crate::harness::redis::RedisServer;
use crate::harness::stream::xadd;

/// Two partitions, default retention.
const ORDERS: &str = "[[topics]]\nname = \"orders\"\nstreams = \"orders:{partition}\"\npartitions = 2\n";

/// Checks an RFC 9457 problem: the status, the content type, `type`, `title`, `status`,
/// `detail`, and `field` naming the field at fault (absent when `field` is `None`).
fn check_problem(r: &Response, status: u16, field: Option<&str>) -> Result<Value, String> {
    let text = r.text();
    if r.status != status {
        return Err(format!("status {} instead of {status}: {text}", r.status));
    }
    if r.header("content-type") != Some("application/problem+json") {
        return Err(format!("content type {:?}: {text}", r.header("content-type")));
    }
    let p: Value = serde_json::from_slice(&r.body).map_err(|e| format!("not JSON ({e}): {text}"))?;
    for key in ["type", "title", "detail"] {
        if p[key].as_str().is_none_or(str::is_empty) {
            return Err(format!("`{key}` missing: {p}"));
        }
    }
    if p["status"] != status {
        return Err(format!("`status` is not {status}: {p}"));
    }
    match field {
        Some(field) if p["field"] != field => Err(format!("`field` is not `{field}`: {p}")),
        None if p.get("field").is_some() => Err(format!("`field` where no field is at fault: {p}")),
        _ => Ok(p),
    }
}

/// [`check_problem`], panicking.
fn assert_problem(what: &str, r: &Response, status: u16, field: Option<&str>) -> Value {
    check_problem(r, status, field).unwrap_or_else(|e| panic!("{what}: {e}"))
}

#[tokio::test]
async fn bad_requests_are_problems_naming_the_field() {
    let redis = RedisServer::start();
    let mut con = redis.con();
    // orders:0 starts in 2025; `ahead:0` already holds an id from now.
    xadd(&mut con, "orders:0", "1761955200000-0", &[(b"k", b"v")]);
    xadd(&mut con, "ahead:0", "*", &[(b"k", b"v")]);
    let setup = ApiSetup {
        max_body_bytes: 1024,
        limits: ReplayLimits {
            max_rate: 1000,
            default_rate: 500,
            ..ReplayLimits::default()
        },
        ..ApiSetup::default()
    };
    let server = InProcessApi::start(&redis, setup).await;

    let too_large = json!({"topic": "orders", "target": "x".repeat(4096)}).to_string();
    let original_ahead =
        r#"{"topic":"orders","partitions":[0],"ids":"original","target":"ahead:{partition}"}"#;
    let restore_ahead = r#"{"topic":"orders","partitions":[0],"ids":"original","restore_groups":true,"target":"ahead:{partition}"}"#;
    let backwards = r#"{"topic":"orders","from":"2025-11-02T00:00:00Z","to":"2025-11-01T00:00:00Z"}"#;
    #[rustfmt::skip]
    let cases: Vec<(&str, &str, u16, Option<&str>)> = vec![
        ("unknown field", r#"{"topic":"orders","form":"x"}"#, 400, Some("form")),
        ("missing topic", r#"{"partitions":[0]}"#, 400, Some("topic")),
        ("empty topic", r#"{"topic":""}"#, 400, Some("topic")),
        ("wrong type in partitions", r#"{"topic":"orders","partitions":[0,"1"]}"#, 400, Some("partitions[1]")),
        ("partition listed twice", r#"{"topic":"orders","partitions":[1,1]}"#, 400, Some("partitions[1]")),
        ("malformed from", r#"{"topic":"orders","from":"yesterday"}"#, 400, Some("from")),
        ("malformed to", r#"{"topic":"orders","to":"1-2-3"}"#, 400, Some("to")),
        ("unknown ids mode", r#"{"topic":"orders","ids":"old"}"#, 400, Some("ids")),
        ("negative rate_limit", r#"{"topic":"orders","rate_limit":-1}"#, 400, Some("rate_limit")),
        ("unknown topic", r#"{"topic":"nope"}"#, 404, Some("topic")),
        ("unknown partition", r#"{"topic":"orders","partitions":[0,7]}"#, 404, Some("partitions[1]")),
        ("no partitions", r#"{"topic":"orders","partitions":[]}"#, 422, Some("partitions")),
        ("from not before to", backwards, 422, Some("from")),
        ("empty target template", r#"{"topic":"orders","target":""}"#, 422, Some("target")),
        ("target is a source stream", r#"{"topic":"orders","target":"orders:{partition}"}"#, 422, Some("target")),
        ("target is an internal key", r#"{"topic":"orders","target":"streamtier:x:{partition}"}"#, 422, Some("target")),
        ("rate_limit above max_rate", r#"{"topic":"orders","rate_limit":1001}"#, 422, Some("rate_limit")),
        ("rate_limit 0", r#"{"topic":"orders","rate_limit":0}"#, 422, Some("rate_limit")),
        ("original ids into a target ahead", original_ahead, 409, Some("target")),
        ("restore without original ids", r#"{"topic":"orders","restore_groups":true}"#, 422, Some("restore_groups")),
        ("restore with a range", r#"{"topic":"orders","ids":"original","restore_groups":true,"from":"2025-01-01T00:00:00Z"}"#, 422, Some("from")),
        ("at without restore", r#"{"topic":"orders","at":"2025-01-01T00:00:00Z"}"#, 422, Some("at")),
        ("malformed at", r#"{"topic":"orders","ids":"original","restore_groups":true,"target":"r:{partition}","at":"soon"}"#, 400, Some("at")),
        ("restore into a stream in use", restore_ahead, 409, Some("target")),
        ("filter syntax", r#"{"topic":"orders","filter":"fields.a == 'x'"}"#, 400, Some("filter")),
        ("filter on a time that is not one", r#"{"topic":"orders","filter":"ts > 'yesterday'"}"#, 422, Some("filter")),
        ("filtered restore", r#"{"topic":"orders","ids":"original","restore_groups":true,"target":"r:{partition}","filter":"a = 1"}"#, 422, Some("filter")),
        ("body too large", &too_large, 413, None),
        ("body not JSON", "topic=orders", 400, None),
        ("empty body", "", 400, None),
        ("JSON array", "[]", 400, None),
    ];
    let mut failures = Vec::new();
    for (what, body, status, field) in &cases {
        let r = server.request("POST", "/v1/replays", body.as_bytes()).await;
        if let Err(e) = check_problem(&r, *status, *field) {
            failures.push(format!("{what}: {e}"));
        }
    }
    assert!(failures.is_empty(), "cases that failed:\n{}", failures.join("\n"));

    let gets = [
        ("unknown job", "/v1/replays/0123456789abcdef0123"),
        ("job id with a dot segment", "/v1/replays/../x"),
        ("job id with an encoded slash", "/v1/replays/..%2Fx"),
        ("upper-case job id", "/v1/replays/0123456789ABCDEF0123"),
        ("unknown route", "/v1/nope"),
        ("unknown top-level route", "/nope"),
        ("unknown topic", "/v1/topics/nope"),
    ];
    for (what, path) in gets {
        let r = server.get(path).await;
        assert_problem(what, &r, 404, None);
    }
    let r = server
        .request("POST", "/v1/replays/0123456789abcdef0123/cancel", b"")
        .await;
    assert_problem("cancel of an unknown job", &r, 404, None);
    let r = server.get("/v1/replays?limit=501").await;
    assert_problem("page too large", &r, 400, Some("limit"));
    let r = server.get("/v1/replays?bogus=1").await;
    assert_problem("unknown query parameter", &r, 400, Some("bogus"));

    // Nothing refused left a job or a key behind.
    let page = server.get_json("/v1/replays").await;
    assert_eq!(page["total"], 0, "{page}");
    assert_eq!(page["jobs"], json!([]), "{page}");
    let keys: BTreeSet<String> = redis::cmd("KEYS")
        .arg("*")
        .query::<Vec<String>>(&mut con)
        .expect("KEYS")
        .into_iter()
        .filter(|k| !k.starts_with("streamtier:"))
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["ahead:0".to_string(), "orders:0".to_string()])
    );
}

#[tokio::test]
async fn a_token_guards_v1_and_never_reaches_the_log() {
    const TOKEN: &str = "s3cret-Token-0123456789";
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("archive");
    let extra = format!("token = \"{TOKEN}\"\n{ORDERS}");
    let mut server = Server::start("serve", dir.path(), |port| {
        api_config(&redis, &store, port, &extra)
    })
    .await;

    let bearer = format!("Bearer {TOKEN}");
    let wrong = format!("Bearer {TOKEN}x");
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>);
    let refused: [Case; 5] = [
        ("no header", "/v1/topics", vec![]),
        (
            "wrong token",
            "/v1/topics",
            vec![("Authorization", wrong.as_str())],
        ),
        (
            "token without scheme",
            "/v1/topics",
            vec![("Authorization", TOKEN)],
        ),
        (
            "basic scheme",
            "/v1/replays",
            vec![("Authorization", "Basic dXNlcjpwYXNz")],
        ),
        ("job without header", "/v1/replays/0123456789abcdef0123", vec![]),
    ];
    for (what, path, headers) in &refused {
        let r = server.request("GET", path, headers, b"").await;
        assert_problem(what, &r, 401, None);
        assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{what}");
        assert!(!r.text().contains(TOKEN), "{what}: the token is in the answer");
    }
    // A refused POST never reaches the handler: no job.
    let body = json!({"topic": "orders"}).to_string();
    let r = server.request("POST", "/v1/replays", &[], body.as_bytes()).await;
    assert_problem("POST without header", &r, 401, None);

    let auth = [("Authorization", bearer.as_str())];
    let r = server.request("GET", "/v1/topics", &auth, b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"topics": [{"topic": "orders", "partitions": 2}]})
    );
    let r = server.request("GET", "/v1/replays", &auth, b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["total"], 0, "the refused POST created a job");

    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        let r = server.get(path).await;
        assert_eq!(r.status, 200, "{path} without a token: {}", r.text());
    }
    let metrics = server.get("/metrics").await.text();
    assert!(
        metrics.contains("\nstreamtier_replay_entries_total 0\n"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("streamtier_archived_entries_total"),
        "`serve` runs no archiver:\n{metrics}"
    );

    server.assert_running();
    let log = server.log();
    assert!(log.contains("API listening"), "{log}");
    assert!(!log.contains(TOKEN), "the token is in the server log:\n{log}");
}

#[tokio::test]
async fn an_open_listen_address_without_a_token_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let toml = format!(
        "[redis]\nurl = \"redis://127.0.0.1:1\"\n[store]\nurl = \"{}\"\n[api]\nlisten = \"0.0.0.0:{port}\"\n{ORDERS}",
        dir.path().join("archive").display()
    );
    let config = write_config(dir.path(), &toml);
    let mut child = Command::new(binary())
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start streamtier");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "`serve` kept running on 0.0.0.0 without a token:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("api.listen"), "{stderr}");
    assert!(!stderr.contains("API listening"), "{stderr}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "something listens on {port}"
    );
}

/// Every `$ref` in `value`.
fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_openapi_document_lists_every_route_and_resolves() {
    let redis = RedisServer::start();
    let server = InProcessApi::start(&redis, ApiSetup::default()).await;
    let r = server.get("/openapi.json").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{:?}",
        r.headers
    );
    let doc = r.json();
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")),
        "openapi = {}",
        doc["openapi"]
    );

    let served: BTreeSet<(String, String)> = [
        ("/v1/replays", "post"),
        ("/v1/replays", "get"),
        ("/v1/replays/{id}", "get"),
        ("/v1/replays/{id}/cancel", "post"),
        ("/v1/replays/{id}/pause", "post"),
        ("/v1/replays/{id}/resume", "post"),
        ("/v1/topics/{topic}/partitions/{partition}/entries", "get"),
        ("/v1/topics", "get"),
        ("/v1/topics/{topic}", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
    ]
    .into_iter()
    .map(|(p, m)| (p.to_string(), m.to_string()))
    .collect();
    let paths = doc["paths"].as_object().expect("paths");
    let methods = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];
    let documented: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(p, item)| {
            methods
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(move |m| (p.clone(), m.to_string()))
        })
        .collect();
    assert_eq!(
        documented, served,
        "documented routes differ from the served ones"
    );

    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty(), "no $ref at all");
    let dangling: Vec<&str> = all
        .into_iter()
        .filter(|r| !r.starts_with("#/components/") || doc.pointer(&r[1..]).is_none_or(Value::is_null))
        .collect();
    assert!(dangling.is_empty(), "unresolved $refs: {dangling:?}");

    // Operations that name a security scheme name one that is defined.
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (path, item) in paths {
        for (method, op) in item.as_object().into_iter().flatten() {
            for requirement in op["security"].as_array().into_iter().flatten() {
                for name in requirement.as_object().into_iter().flatten().map(|(n, _)| n) {
                    assert!(
                        schemes.contains_key(name),
                        "{method} {path}: scheme `{name}` undefined"
                    );
                }
            }
        }
    }
    assert!(
        paths["/v1/replays"]["post"]["security"].is_array(),
        "POST /v1/replays documents no security"
    );
}
