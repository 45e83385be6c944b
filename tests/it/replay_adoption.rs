//! Jobs whose runner died are adopted by a live `streamtier serve`, without restarting it, once
//! the runner's lease has run out, and finish with every entry exactly once: a `streamtier
//! replay` killed with `kill -9` (two servers look; one adopts), and one of two servers killed
//! while it runs a job.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use streamtier_schemas::Entry;

use crate::harness::archiver::{binary, write_config};
use crate::harness::http::{api_config, Deadline, Server};
use crate::harness::redis::RedisServer;
use crate::harness::stream::{xadd, xrange_all};

/// Entries replayed; at [`RATE`] a run takes about five seconds.
const N: u64 = 6000;
/// Entries per second of the jobs.
const RATE: u64 = 1000;
/// The job lease (`JOB_LEASE_TTL`), the look for orphans (a fifth of it), and what is left of
/// the job at its rate, with room for a slow machine.
const ADOPTED_WITHIN: u64 = 5 + 1 + N / RATE + 20;

const TOPICS: &str = "[[topics]]\nname = \"orders\"\nstreams = \"orders:{partition}\"\npartitions = 1\n";

fn produce(con: &mut redis::Connection) -> Vec<Entry> {
    for i in 0..N {
        xadd(con, "orders:0", "*", &[(b"i", i.to_string().as_bytes())]);
    }
    xrange_all(con, "orders:0")
}

/// `streamtier serve` over `redis` and the store at `root`, with its own configuration in `dir`.
async fn serve(redis: &RedisServer, root: &Path, dir: &Path) -> Server {
    Server::start("serve", dir, |port| api_config(redis, root, port, TOPICS)).await
}

/// The target holds the source's entries once each, in order (with fresh ids).
fn assert_exactly_once(con: &mut redis::Connection, source: &[Entry], target: &str) {
    let written = xrange_all(con, target);
    assert_eq!(written.len(), source.len(), "{target}: duplicates or holes");
    for (got, want) in written.iter().zip(source) {
        assert_eq!(got.fields, want.fields, "{target}");
    }
}

/// Polls job `id` through `server` until it succeeded; panics if it fails, is cancelled, or
/// takes longer than [`ADOPTED_WITHIN`] seconds. Answers the record.
async fn wait_succeeded(server: &mut Server, id: &str) -> Value {
    let deadline = Deadline::secs(ADOPTED_WITHIN);
    loop {
        let job = server.get_json(&format!("/v1/replays/{id}")).await;
        match job["state"].as_str() {
            Some("succeeded") => return job,
            Some("failed" | "cancelled") => panic!("{job}"),
            _ => {}
        }
        server
            .tick(&deadline, &format!("job {id} to be adopted and finish: {job}"))
            .await;
    }
}

/// Waits until `target` holds entries (the job runs), at most 30 s.
async fn wait_writing(con: &mut redis::Connection, target: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while xrange_all(con, target).is_empty() {
        assert!(Instant::now() < deadline, "nothing was written to {target}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn kill9(child: &mut Child) {
    child.kill().expect("kill -9");
    child.wait().expect("reap");
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

fn adoptions(servers: &[&Server]) -> usize {
    servers
        .iter()
        .map(|s| s.log().matches("adopting replay job").count())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_command_killed_with_kill_9_is_finished_once_by_a_running_server() {
    let redis = RedisServer::start();
    let mut con = redis.con();
    let source = produce(&mut con);
    let (dir, a, b) = (tempdir(), tempdir(), tempdir());
    let root = dir.path().join("archive");
    // Two servers already running: they know nothing of the job when it starts.
    let mut first = serve(&redis, &root, a.path()).await;
    let mut second = serve(&redis, &root, b.path()).await;

    let config = write_config(
        dir.path(),
        &format!(
            "[redis]\nurl = \"{}\"\n[store]\nurl = \"{}\"\n{TOPICS}",
            redis.url(),
            root.display()
        ),
    );
    let mut replay = Command::new(binary())
        .args(["replay", "--topic", "orders", "--target", "copy:{partition}"])
        .args(["--rate-limit", &RATE.to_string(), "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start streamtier replay");
    wait_writing(&mut con, "copy:0").await;
    kill9(&mut replay);
    let jobs = first.get_json("/v1/replays").await;
    let job = &jobs["jobs"][0];
    assert!(
        matches!(job["state"].as_str(), Some("queued" | "running")),
        "{jobs}"
    );
    let id = job["id"].as_str().expect("job id").to_string();
    assert!(
        (xrange_all(&mut con, "copy:0").len() as u64) < N,
        "the command finished before it was killed; slow it down"
    );

    let done = wait_succeeded(&mut first, &id).await;
    assert_eq!(done["entries_replayed"], json!(N), "{done}");
    assert_exactly_once(&mut con, &source, "copy:0");
    first.assert_running();
    second.assert_running();
    assert_eq!(
        adoptions(&[&first, &second]),
        1,
        "one server adopts the job; logs:\n{}\n---\n{}",
        first.log(),
        second.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_of_a_server_killed_with_kill_9_is_finished_once_by_the_other() {
    let redis = RedisServer::start();
    let mut con = redis.con();
    let source = produce(&mut con);
    let (dir, a, b) = (tempdir(), tempdir(), tempdir());
    let root = dir.path().join("archive");
    let mut doomed = serve(&redis, &root, a.path()).await;
    let mut survivor = serve(&redis, &root, b.path()).await;

    let r = doomed
        .post(
            "/v1/replays",
            &json!({"topic": "orders", "target": "copy:{partition}", "rate_limit": RATE}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().expect("job id").to_string();
    wait_writing(&mut con, "copy:0").await;
    doomed.kill9();
    assert!(
        (xrange_all(&mut con, "copy:0").len() as u64) < N,
        "the job finished before its server was killed; slow it down"
    );

    let done = wait_succeeded(&mut survivor, &id).await;
    assert_eq!(done["entries_replayed"], json!(N), "{done}");
    assert_exactly_once(&mut con, &source, "copy:0");
    assert_eq!(adoptions(&[&survivor]), 1, "{}", survivor.log());
}
