//! The HTTP API of `streamtier run` (archiver and API in one process) over real TCP and a real
//! Redis: the topic view after archiving, a replay with original ids restoring the produced bytes,
//! dry runs, listing, cancelling, and Prometheus metrics.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use streamtier_schemas::Entry;

use crate::harness::http::{api_config, Deadline, Server};
use crate::harness::redis::RedisServer;
use crate::harness::stream::{xadd, xrange_all};

/// Entries kept in Redis after archiving.
const RETAIN: u64 = 5;

/// `[archive]` and `[[topics]]` for a quick daemon: objects of at most 50 entries, written at
/// most 200 ms after their entries.
const RUN_CONFIG: &str = "[archive]\nflush_after = \"200ms\"\npoll_interval = \"50ms\"\nmax_object_entries = 50\n\
    [[topics]]\nname = \"orders\"\nstreams = \"orders:{partition}\"\npartitions = 2\nretain_entries = 5\nretain_for = \"0s\"\n";

/// Adds `n` entries with binary values, an empty value and a repeated field name; returns the
/// stream as Redis holds it.
fn produce(con: &mut redis::Connection, stream: &str, n: usize) -> Vec<Entry> {
    for i in 0..n {
        let text = format!("{stream}/{i}");
        xadd(
            con,
            stream,
            "*",
            &[
                (b"n", text.as_bytes()),
                (b"bin", &[0xff, 0, (i % 256) as u8]),
                (b"empty", b""),
                (b"n", b"again"),
            ],
        );
    }
    xrange_all(con, stream)
}

/// Polls a job until it is final.
async fn wait_final(server: &mut Server, location: &str) -> Value {
    let deadline = Deadline::secs(60);
    loop {
        let job = server.get_json(location).await;
        if matches!(job["state"].as_str(), Some("succeeded" | "failed" | "cancelled")) {
            return job;
        }
        server.tick(&deadline, &format!("job {location} to finish")).await;
    }
}

/// POSTs a replay, asserts 202 and a `Location` naming the job; returns the location.
async fn submit(server: &Server, request: Value) -> String {
    let r = server.post("/v1/replays", &request).await;
    assert_eq!(r.status, 202, "{request}: {}", r.text());
    let job = r.json();
    let location = r.header("location").expect("Location header").to_string();
    assert_eq!(
        location,
        format!("/v1/replays/{}", job["id"].as_str().expect("id"))
    );
    assert!(
        matches!(job["state"].as_str(), Some("queued" | "running")),
        "{job}"
    );
    location
}

fn xlen(con: &mut redis::Connection, key: &str) -> u64 {
    redis::cmd("XLEN").arg(key).query(con).expect("XLEN")
}

#[tokio::test]
async fn archived_topics_replay_back_through_http() {
    const N: usize = 120;
    let redis = RedisServer::start();
    let mut con = redis.con();
    let produced = [produce(&mut con, "orders:0", N), produce(&mut con, "orders:1", N)];
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("archive");
    let mut server = Server::start("run", dir.path(), |port| {
        api_config(&redis, &store, port, RUN_CONFIG)
    })
    .await;

    // The daemon archives everything and trims Redis to the newest RETAIN entries.
    let deadline = Deadline::secs(60);
    loop {
        let view = server.get_json("/v1/topics/orders").await;
        let done = view["partitions"].as_array().is_some_and(|ps| {
            ps.iter()
                .all(|p| p["archive"]["entries"] == N && p["redis"]["length"] == RETAIN)
        });
        if done {
            break;
        }
        server.tick(&deadline, "orders archived and trimmed").await;
    }
    // A group that has read nothing holds trimming back: it shows.
    redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("orders:1")
        .arg("laggards")
        .arg("0")
        .query::<()>(&mut con)
        .expect("XGROUP CREATE");
    let list = server.get_json("/v1/topics").await;
    assert_eq!(list, json!({"topics": [{"topic": "orders", "partitions": 2}]}));
    let view = server.get_json("/v1/topics/orders").await;
    assert_eq!(view["topic"], "orders");
    let parts = view["partitions"].as_array().expect("partitions");
    assert_eq!(parts.len(), 2, "{view}");
    for (p, part) in parts.iter().enumerate() {
        let entries = &produced[p];
        assert_eq!(part["partition"], p, "{part}");
        assert_eq!(part["stream"], format!("orders:{p}"), "{part}");
        assert_eq!(part["redis"]["length"], RETAIN, "{part}");
        assert_eq!(
            part["redis"]["first_id"],
            entries[N - RETAIN as usize].id.to_string(),
            "{part}"
        );
        assert_eq!(part["redis"]["last_id"], entries[N - 1].id.to_string(), "{part}");
        assert!(
            part["archive"]["objects"].as_u64().is_some_and(|n| n > 0),
            "{part}"
        );
        assert!(part["archive"]["bytes"].as_u64().is_some_and(|n| n > 0), "{part}");
        assert_eq!(part["archive"]["entries"], N, "{part}");
        assert_eq!(part["archive"]["first_id"], entries[0].id.to_string(), "{part}");
        assert_eq!(
            part["archive"]["last_id"],
            entries[N - 1].id.to_string(),
            "{part}"
        );
        assert_eq!(part["unarchived_entries"], 0, "{part}");
        assert_eq!(part["gaps"], json!([]), "{part}");
    }
    assert_eq!(parts[0]["groups"], json!([]), "{view}");
    let groups = parts[1]["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 1, "{view}");
    assert_eq!(groups[0]["name"], "laggards");
    assert_eq!(groups[0]["last_delivered_id"], "0-0");
    assert_eq!(groups[0]["pending"], 0);

    // A dry run reads the plan and writes nothing.
    let r = server
        .post(
            "/v1/replays",
            &json!({"topic": "orders", "dry_run": true, "target": "dry:{partition}"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let plan = r.json();
    assert_eq!(plan["dry_run"], true, "{plan}");
    assert_eq!(plan["topic"], "orders", "{plan}");
    let plan_parts = plan["partitions"].as_array().expect("partitions");
    assert_eq!(plan_parts.len(), 2, "{plan}");
    for (p, item) in plan_parts.iter().enumerate() {
        assert_eq!(item["partition"], p, "{item}");
        assert_eq!(item["stream"], format!("orders:{p}"), "{item}");
        assert_eq!(item["target"], format!("dry:{p}"), "{item}");
        assert_eq!(item["objects"], parts[p]["archive"]["objects"], "{item}");
        assert_eq!(item["bytes"], parts[p]["archive"]["bytes"], "{item}");
        assert_eq!(item["archived_entries"], N, "{item}");
        assert_eq!(item["redis_entries"], 0, "{item}");
    }
    let sum = |key: &str| {
        parts
            .iter()
            .map(|p| p["archive"][key].as_u64().expect(key))
            .sum::<u64>()
    };
    assert_eq!(plan["objects"], sum("objects"), "{plan}");
    assert_eq!(plan["bytes"], sum("bytes"), "{plan}");
    assert_eq!(plan["entries"], 2 * N, "{plan}");
    let exists: u64 = redis::cmd("EXISTS")
        .arg("dry:0")
        .arg("dry:1")
        .query(&mut con)
        .expect("EXISTS");
    assert_eq!(exists, 0, "a dry run wrote its targets");
    assert_eq!(
        server.get_json("/v1/replays").await["total"],
        0,
        "a dry run made a job"
    );

    // Restore with original ids: the targets end up equal to the sources byte for byte.
    let restore = json!({"topic": "orders", "ids": "original", "target": "restore:{partition}"});
    let location = submit(&server, restore.clone()).await;
    let job = wait_final(&mut server, &location).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["entries_replayed"], 2 * N, "{job}");
    assert!(job["objects_read"].as_u64().is_some_and(|n| n > 0), "{job}");
    assert!(job["error"].is_null(), "{job}");
    assert!(job["finished_at"].is_string(), "{job}");
    for (p, part) in job["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .enumerate()
    {
        assert_eq!(part["target"], format!("restore:{p}"), "{job}");
        assert_eq!(part["entries_replayed"], N, "{job}");
        assert_eq!(part["done"], true, "{job}");
        assert!(
            xrange_all(&mut con, &format!("restore:{p}")) == produced[p],
            "restore:{p} differs from orders:{p} as produced"
        );
    }
    // Again into the same targets: they are now ahead of the first id.
    let r = server.post("/v1/replays", &restore).await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.json()["field"], "target");

    // A slow job, cancelled: it stops before it has written everything.
    let slow = submit(
        &server,
        json!({"topic": "orders", "target": "slow:{partition}", "rate_limit": 5}),
    )
    .await;
    let r = server.request("POST", &format!("{slow}/cancel"), &[], b"").await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(
        format!("/v1/replays/{}", r.json()["id"].as_str().expect("id")),
        slow
    );
    let job = wait_final(&mut server, &slow).await;
    assert_eq!(job["state"], "cancelled", "{job}");
    let replayed = job["entries_replayed"].as_u64().expect("entries_replayed");
    assert!(replayed < 2 * N as u64, "{job}");
    assert_eq!(
        xlen(&mut con, "slow:0") + xlen(&mut con, "slow:1"),
        replayed,
        "{job}"
    );
    // Cancelling a finished job changes nothing.
    let r = server.request("POST", &format!("{slow}/cancel"), &[], b"").await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["state"], "cancelled");

    // Jobs, newest first.
    let page = server.get_json("/v1/replays").await;
    assert_eq!(page["total"], 2, "{page}");
    let ids: Vec<String> = page["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| format!("/v1/replays/{}", j["id"].as_str().expect("id")))
        .collect();
    assert_eq!(ids, vec![slow.clone(), location.clone()], "{page}");
    let page = server.get_json("/v1/replays?offset=1&limit=1").await;
    assert_eq!(
        (
            page["total"].clone(),
            page["offset"].clone(),
            page["limit"].clone()
        ),
        (json!(2), json!(1), json!(1))
    );
    let ids: Vec<&str> = page["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .filter_map(|j| j["id"].as_str())
        .collect();
    assert_eq!(ids, vec![&location["/v1/replays/".len()..]], "{page}");
}

/// Prometheus samples: `name{labels}` → value; asserts every line is a comment or a sample of
/// a metric with a `# TYPE`.
fn samples(text: &str) -> Vec<(String, f64)> {
    let typed: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample `{line}`"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in `{line}`"));
        let name = series.split('{').next().unwrap_or_default();
        assert!(typed.contains(name), "`{name}` has no # TYPE line");
        out.push((series.to_string(), value));
    }
    out
}

fn sample(samples: &[(String, f64)], series: &str) -> Option<f64> {
    samples.iter().find(|(s, _)| s == series).map(|(_, v)| *v)
}

#[tokio::test]
async fn metrics_count_archived_and_replayed_entries() {
    const N: usize = 30;
    let redis = RedisServer::start();
    let mut con = redis.con();
    produce(&mut con, "orders:0", N);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("archive");
    let mut server = Server::start("run", dir.path(), |port| {
        api_config(&redis, &store, port, RUN_CONFIG)
    })
    .await;

    let deadline = Deadline::secs(60);
    loop {
        let r = server.get("/metrics").await;
        assert_eq!(r.status, 200, "{}", r.text());
        if sample(&samples(&r.text()), "streamtier_archived_entries_total") == Some(N as f64) {
            break;
        }
        server
            .tick(
                &deadline,
                "streamtier_archived_entries_total to count the entries",
            )
            .await;
    }

    let location = submit(&server, json!({"topic": "orders", "target": "copy:{partition}"})).await;
    let job = wait_final(&mut server, &location).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(xlen(&mut con, "copy:0"), N as u64);

    let r = server.get("/metrics").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{:?}",
        r.headers
    );
    let text = r.text();
    let s = samples(&text);
    let expect = [
        ("streamtier_archived_entries_total", N as f64),
        ("streamtier_replay_entries_total", N as f64),
        ("streamtier_replay_jobs{state=\"succeeded\"}", 1.0),
        ("streamtier_replay_jobs{state=\"running\"}", 0.0),
        ("streamtier_replay_jobs{state=\"failed\"}", 0.0),
        ("streamtier_archive_errors_total", 0.0),
    ];
    for (series, value) in expect {
        assert_eq!(sample(&s, series), Some(value), "{series} in:\n{text}");
    }
    for series in [
        "streamtier_archived_objects_total",
        "streamtier_archived_bytes_total",
        "streamtier_trimmed_entries_total",
        "streamtier_replay_batches_total",
        "streamtier_replay_objects_total",
        "streamtier_replay_bytes_total",
    ] {
        assert!(
            sample(&s, series).is_some_and(|v| v > 0.0),
            "{series} in:\n{text}"
        );
    }
}
