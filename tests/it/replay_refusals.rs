//! Targets that are not streams: refused by the plan (HTTP, dry run, restore, the command
//! line) before anything is written, and a job whose target stops being a stream fails at once
//! with the reason instead of retrying, as does one whose Redis user may not write.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use streamtier_replayer::{Ids, JobRecord, JobState, Replayer};
use streamtier_tiers::hot::{self, RedisSettings};
use tokio_util::sync::CancellationToken;

use crate::harness::api::{ApiSetup, InProcessApi};
use crate::harness::archiver::{binary, write_config};
use crate::harness::redis::RedisServer;
use crate::harness::replay::{request, Fixture};
use crate::harness::stream::{xadd, xrange_all};

fn produce(con: &mut redis::Connection, stream: &str, n: u64) {
    for i in 0..n {
        xadd(con, stream, "*", &[(b"i", i.to_string().as_bytes())]);
    }
}

/// Keys under streamtier's replay prefix (job records, cursors).
/// Runs `record` and checks that it failed within 3 s (not retried as if transient) with an
/// error holding every one of `wants`.
async fn fails_at_once(replayer: &Replayer, record: JobRecord, wants: &[&str]) -> JobRecord {
    let started = Instant::now();
    let done = tokio::time::timeout(Duration::from_secs(60), replayer.run(record, |_| {}))
        .await
        .expect("the job ended")
        .expect("run");
    assert_eq!(done.state, JobState::Failed, "{done:?}");
    let error = done.error.clone().unwrap_or_default();
    assert!(wants.iter().all(|w| error.contains(w)), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "failed only after {:?}: retried as if transient",
        started.elapsed()
    );
    done
}

fn replay_keys(con: &mut redis::Connection) -> Vec<String> {
    redis::cmd("KEYS")
        .arg("streamtier:replay*")
        .query(con)
        .expect("KEYS")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_is_not_a_stream_is_refused_naming_it_and_nothing_is_written() {
    let redis = RedisServer::start();
    let mut con = redis.con();
    produce(&mut con, "orders:0", 20);
    produce(&mut con, "orders:1", 20);
    redis::cmd("SET")
        .arg("copy:0")
        .arg("not a stream")
        .query::<()>(&mut con)
        .expect("SET");
    redis::cmd("HSET")
        .arg("copy:1")
        .arg("f")
        .arg("v")
        .query::<()>(&mut con)
        .expect("HSET");

    let api = InProcessApi::start(&redis, ApiSetup::default()).await;
    let one = |extra: serde_json::Value| {
        let mut body = json!({"topic": "orders", "partitions": [1], "target": "copy:{partition}"});
        body.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        body
    };
    for (body, refused) in [
        (
            json!({"topic": "orders", "target": "copy:{partition}"}),
            "`copy:0` is a string, not a stream",
        ),
        (
            json!({"topic": "orders", "target": "copy:{partition}", "dry_run": true}),
            "`copy:0` is a string, not a stream",
        ),
        (
            one(json!({"ids": "original"})),
            "`copy:1` is a hash, not a stream",
        ),
        (
            one(json!({"ids": "original", "restore_groups": true})),
            "`copy:1` is a hash, not a stream",
        ),
        (
            one(json!({"ids": "original", "restore_groups": true, "dry_run": true})),
            "`copy:1` is a hash, not a stream",
        ),
    ] {
        let r = api
            .request("POST", "/v1/replays", body.to_string().as_bytes())
            .await;
        assert_eq!(r.status, 409, "{body}: {}", r.text());
        let problem = r.json();
        assert_eq!(problem["field"], "target", "{body}: {problem}");
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(refused), "{body}: {detail}");
    }

    // The command line refuses the same way, as a bad request (exit code 2).
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!(
            "[redis]\nurl = \"{}\"\n[store]\nurl = \"{}\"\n[replay]\nallowed_targets = [\"copy:*\"]\n\
             [[topics]]\nname = \"orders\"\nstreams = \"orders:{{partition}}\"\npartitions = 2\n",
            redis.url(),
            dir.path().join("archive").display()
        ),
    );
    for (args, refused) in [
        (
            &["replay", "--topic", "orders", "--target", "copy:{partition}"][..],
            "`copy:0` is a string, not a stream",
        ),
        (
            &[
                "restore",
                "--topic",
                "orders",
                "--partitions",
                "1",
                "--target",
                "copy:{partition}",
            ][..],
            "`copy:1` is a hash, not a stream",
        ),
    ] {
        let out = Command::new(binary())
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .expect("run streamtier");
        let text = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {text}");
        assert!(text.contains(refused), "{args:?}: {text}");
    }

    // Nothing was written: no job, no cursor, the keys as they were.
    let jobs = api.get_json("/v1/replays").await;
    assert_eq!(jobs["total"], 0, "{jobs}");
    assert_eq!(replay_keys(&mut con), Vec::<String>::new());
    let value: String = redis::cmd("GET").arg("copy:0").query(&mut con).expect("GET");
    assert_eq!(value, "not a stream");
    let hash: Vec<String> = redis::cmd("HGETALL")
        .arg("copy:1")
        .query(&mut con)
        .expect("HGETALL");
    assert_eq!(hash, ["f", "v"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_stops_being_a_stream_fails_the_job_at_once_naming_it() {
    let f = Fixture::new().await;
    let mut con = f.redis.con();
    produce(&mut con, "orders:0", 400);

    // After planning, before the first write: the target becomes a string.
    let replayer = f.replayer(100);
    let record = f
        .job(&replayer, request("copy:{partition}", Ids::New), 1)
        .await
        .expect("job");
    let id = record.id.clone();
    redis::cmd("SET")
        .arg("copy:0")
        .arg("x")
        .query::<()>(&mut con)
        .expect("SET");
    let done = fails_at_once(&replayer, record, &["WRONGTYPE", "`copy:0` is a string"]).await;
    let error = done.error.clone().unwrap_or_default();
    let stored = replayer.jobs().get(&id).await.expect("record");
    assert_eq!((stored.state, stored.error), (JobState::Failed, Some(error)));
    let value: String = redis::cmd("GET").arg("copy:0").query(&mut con).expect("GET");
    assert_eq!(value, "x");

    // While the job writes: the target is replaced by a hash between two batches.
    let record = f
        .job(&replayer, request("moving:{partition}", Ids::New), 1)
        .await
        .expect("job");
    let r = replayer.clone();
    let task = tokio::spawn(async move { r.run(record, |_| {}).await });
    let deadline = Instant::now() + Duration::from_secs(30);
    while xrange_all(&mut con, "moving:0").is_empty() {
        assert!(Instant::now() < deadline, "the job wrote nothing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    redis::pipe()
        .atomic()
        .cmd("DEL")
        .arg("moving:0")
        .cmd("HSET")
        .arg("moving:0")
        .arg("f")
        .arg("v")
        .query::<()>(&mut con)
        .expect("replace the target");
    let replaced = Instant::now();
    let done = tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("the job ended")
        .expect("join")
        .expect("run");
    assert_eq!(done.state, JobState::Failed, "{done:?}");
    let error = done.error.unwrap_or_default();
    assert!(
        error.contains("WRONGTYPE") && error.contains("`moving:0` is a hash"),
        "{error}"
    );
    assert!(done.entries_replayed < 400, "{}", done.entries_replayed);
    assert!(
        replaced.elapsed() < Duration::from_secs(3),
        "failed only {:?} after the target was replaced",
        replaced.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_redis_user_may_not_write_fails_at_once_naming_noperm() {
    let f = Fixture::new().await;
    let mut con = f.redis.con();
    produce(&mut con, "orders:0", 100);
    redis::cmd("ACL")
        .arg(&["SETUSER", "replayer", "on", ">pw", "~*", "+@all", "-xadd"][..])
        .query::<()>(&mut con)
        .expect("ACL SETUSER");
    let limited = hot::connect(&RedisSettings {
        url: f.redis.url().replace("redis://", "redis://replayer:pw@"),
        ..RedisSettings::default()
    })
    .await
    .expect("connect as replayer");
    let replayer = Replayer::new(
        limited,
        f.store.clone(),
        f.replayer(1_000).limits().clone(),
        CancellationToken::new(),
    );
    let record = f
        .job(&replayer, request("copy:{partition}", Ids::New), 1)
        .await
        .expect("job");
    fails_at_once(&replayer, record, &["NOPERM", "`copy:0`"]).await;
    assert!(xrange_all(&mut con, "copy:0").is_empty());
}
