//! Flow control against a real Redis: a replay waits while its target's consumer group lags
//! too far behind and goes on when the group reads again; a Redis with a small `maxmemory` is
//! never pushed past the bound while producers keep writing; an operator pauses and resumes a
//! job over HTTP.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use streamtier_replayer::{Ids, JobRecord, JobState, MemoryBound, PauseReason, ReplayLimits, Replayer};
use streamtier_schemas::Entry;

use crate::harness::api::{ApiSetup, InProcessApi};
use crate::harness::groups::deliver;
use crate::harness::redis::RedisServer;
use crate::harness::replay::{request, Fixture};
use crate::harness::stream::{xadd, xrange_all};

/// Waits (at most 60 s) until the job's saved record satisfies `done`.
async fn wait_job(replayer: &Replayer, id: &str, what: &str, done: impl Fn(&JobRecord) -> bool) -> JobRecord {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = replayer.jobs().get(id).await.expect("job record");
        if done(&r) {
            return r;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {r:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn lag(con: &mut redis::Connection, key: &str) -> u64 {
    let groups: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(key)
        .query(con)
        .expect("XINFO");
    let redis::Value::Array(fields) = &groups[0] else {
        panic!("XINFO GROUPS")
    };
    let at = fields
        .iter()
        .position(|f| matches!(f, redis::Value::BulkString(b) if b == b"lag"))
        .expect("lag");
    match &fields[at + 1] {
        redis::Value::Int(n) => *n as u64,
        other => panic!("lag {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_waits_for_a_lagging_group_and_finishes_once_it_reads() {
    let f = Fixture::new().await;
    let mut con = f.redis.con();
    for i in 0..3_000u64 {
        xadd(
            &mut con,
            "orders:0",
            &format!("{}-0", 1_700_000_000_000 + i),
            &[(b"n", i.to_string().as_bytes())],
        );
    }
    let source = xrange_all(&mut con, "orders:0");
    // Most of it comes from the archive.
    f.archive(0, "orders:0", 500).await;
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("flow:0")
        .arg("g")
        .arg("$")
        .arg("MKSTREAM")
        .query(&mut con)
        .expect("XGROUP");
    let replayer = f.replayer(1_000_000);
    let mut req = request("flow:{partition}", Ids::New);
    req.max_target_backlog = Some(500);
    let record = f.job(&replayer, req, 1).await.expect("job");
    let id = record.id.clone();
    let run = tokio::spawn({
        let replayer = replayer.clone();
        async move { replayer.run(record, |_| {}).await }
    });
    let paused = wait_job(&replayer, &id, "a pause for the backlog", |r| {
        r.state == JobState::Paused
    })
    .await;
    assert_eq!(paused.partitions[0].paused, Some(PauseReason::TargetBacklog));
    tokio::time::sleep(Duration::from_millis(600)).await;
    let held = lag(&mut con, "flow:0");
    assert!(
        (460..=500).contains(&held),
        "the group lags {held} entries (bound 500, batches of 40: the next one would pass it)"
    );
    assert_eq!(lag(&mut con, "flow:0"), held, "nothing written while paused");

    // The group reads again: the replay goes on, never more than the bound ahead of it.
    let mut delivered = Vec::new();
    let mut most = 0;
    while !run.is_finished() || delivered.len() < source.len() {
        most = most.max(lag(&mut con, "flow:0"));
        delivered.extend(deliver(&mut con, "flow:0", b"g", "c", 100));
        assert!(
            delivered.len() <= source.len(),
            "more entries than the source holds"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let done = run.await.expect("task").expect("run");
    assert_eq!(done.state, JobState::Succeeded, "{:?}", done.error);
    assert!(most <= 500, "the group lagged {most} entries, bound 500");
    let target: Vec<Vec<(bytes::Bytes, bytes::Bytes)>> = xrange_all(&mut con, "flow:0")
        .into_iter()
        .map(|e| e.fields)
        .collect();
    let want: Vec<Vec<(bytes::Bytes, bytes::Bytes)>> =
        source.iter().map(|e: &Entry| e.fields.clone()).collect();
    assert_eq!(target, want, "every entry once, in order");
    assert!(
        replayer.metrics().paused.get(PauseReason::TargetBacklog) >= 500,
        "paused time counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_maxmemory_is_never_passed_and_producers_keep_writing() {
    let f = Fixture::new().await;
    let mut con = f.redis.con();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("96mb")
        .query(&mut con)
        .expect("CONFIG");
    // 48,000 entries of 1 KiB, archived and trimmed from Redis as they come.
    let value = vec![b'x'; 1024];
    for round in 0..6u64 {
        for i in 0..8_000u64 {
            let n = round * 8_000 + i;
            xadd(
                &mut con,
                "orders:0",
                &format!("{}-0", 1_700_000_000_000 + n),
                &[(b"v", &value)],
            );
        }
        f.archive(0, "orders:0", 0).await;
    }
    let used = |con: &mut redis::Connection| -> u64 {
        let info: String = redis::cmd("INFO").arg("memory").query(con).expect("INFO");
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("used_memory")
    };
    let bound = 32u64 << 20;
    assert!(used(&mut con) < bound / 2, "room to start");
    let replayer = f.replayer_with(ReplayLimits {
        batch_entries: 200,
        max_redis_memory: MemoryBound::Bytes(bound),
        ..ReplayLimits::default()
    });
    let mut req = request("big:{partition}", Ids::New);
    req.max_target_backlog = Some(0);
    let record = f.job(&replayer, req, 1).await.expect("job");
    let id = record.id.clone();

    // A producer writes into its own stream throughout; a sampler watches Redis' memory.
    let stop = Arc::new(AtomicBool::new(false));
    let (most, errors, produced) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let producer = {
        let (stop, most, errors, produced) = (stop.clone(), most.clone(), errors.clone(), produced.clone());
        let mut con = f.redis.con();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let added: redis::RedisResult<String> = redis::cmd("XADD")
                    .arg("live:0")
                    .arg("*")
                    .arg("k")
                    .arg("v")
                    .query(&mut con);
                match added {
                    Ok(_) => produced.fetch_add(1, Ordering::Relaxed),
                    Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                };
                let info: String = redis::cmd("INFO").arg("memory").query(&mut con).expect("INFO");
                let now = info
                    .lines()
                    .find_map(|l| l.strip_prefix("used_memory:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                most.fetch_max(now, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let run = tokio::spawn({
        let replayer = replayer.clone();
        async move { replayer.run(record, |_| {}).await }
    });
    let paused = wait_job(&replayer, &id, "a pause for memory", |r| {
        r.state == JobState::Paused
    })
    .await;
    assert_eq!(paused.partitions[0].paused, Some(PauseReason::RedisMemory));
    let produced_then = produced.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        produced.load(Ordering::Relaxed) > produced_then,
        "producers go on while the replay waits"
    );
    // Make room again and again: the replay goes on and ends, each entry written once.
    let mut trimmed = 0u64;
    while !run.is_finished() {
        if used(&mut con) > bound / 2 {
            let n: u64 = redis::cmd("XTRIM")
                .arg("big:0")
                .arg("MAXLEN")
                .arg(0)
                .query(&mut con)
                .expect("XTRIM");
            trimmed += n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    producer.join().expect("producer");
    let done = run.await.expect("task").expect("run");
    assert_eq!(done.state, JobState::Succeeded, "{:?}", done.error);
    let left: u64 = redis::cmd("XLEN").arg("big:0").query(&mut con).expect("XLEN");
    assert_eq!((trimmed + left, done.entries_replayed), (48_000, 48_000));
    assert_eq!(errors.load(Ordering::Relaxed), 0, "no producer write was refused");
    let most = most.load(Ordering::Relaxed);
    assert!(
        most <= bound + (1 << 20),
        "Redis used {most} bytes, bound {bound}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_pauses_and_resumes_a_replay_over_http() {
    let redis = RedisServer::start();
    let mut con = redis.con();
    for i in 0..2_000u64 {
        xadd(
            &mut con,
            "orders:0",
            &format!("{}-0", 1_700_000_000_000 + i),
            &[(b"n", b"1")],
        );
    }
    let api = InProcessApi::start(&redis, ApiSetup::default()).await;
    let body = json!({"topic": "orders", "partitions": [0], "target": "held:{partition}", "rate_limit": 400});
    let created = api
        .request("POST", "/v1/replays", body.to_string().as_bytes())
        .await;
    assert_eq!(created.status, 202, "{}", created.text());
    let id = created.json()["id"].as_str().expect("id").to_owned();
    let job = format!("/v1/replays/{id}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = api.request("POST", &format!("{job}/pause"), b"").await;
    assert_eq!(r.status, 202, "{}", r.text());
    let deadline = Instant::now() + Duration::from_secs(30);
    let paused = loop {
        let j = api.get_json(&job).await;
        if j["state"] == "paused" {
            break j;
        }
        assert!(Instant::now() < deadline, "not paused: {j}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(paused["partitions"][0]["paused"], "operator", "{paused}");
    let at: u64 = redis::cmd("XLEN").arg("held:0").query(&mut con).expect("XLEN");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let still: u64 = redis::cmd("XLEN").arg("held:0").query(&mut con).expect("XLEN");
    assert_eq!(still, at, "nothing written while held");
    assert!(at < 2_000, "held before the end");

    let r = api.request("POST", &format!("{job}/resume"), b"").await;
    assert_eq!(r.status, 202, "{}", r.text());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let j = api.get_json(&job).await;
        if j["state"] == "succeeded" {
            assert_eq!(j["entries_replayed"], 2_000, "{j}");
            break;
        }
        assert!(Instant::now() < deadline, "not finished: {j}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = api.get("/metrics").await.text();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("streamtier_replay_paused_seconds_total{reason=\"operator\"}"))
        .expect("paused seconds");
    let secs: f64 = line
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a number");
    assert!(secs >= 1.0, "{line}");
    let r = api
        .request("POST", "/v1/replays/0123456789abcdef0123/pause", b"")
        .await;
    assert_eq!(r.status, 404);
}
