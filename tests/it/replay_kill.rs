//! `kill -9` of `streamtier serve` in the middle of large replays, in both id modes, several
//! times and with a second server resuming the same jobs: the jobs finish and every source entry
//! is in its target exactly once. Also the `streamtier replay` command.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use streamtier_archiver::settings::Retention;
use streamtier_archiver::PartitionWorker;
use streamtier_schemas::Entry;
use streamtier_tiers::store::{LocalStore, Store};
use tokio_util::sync::CancellationToken;

use crate::harness::archiver::partition;
use crate::harness::archiver::{binary, system_context, test_settings, write_config};
use crate::harness::redis::RedisServer;
use crate::harness::stream::{xadd, xrange_all};

const PER_PARTITION: u64 = 6000;

/// A minimal HTTP/1.1 exchange; returns the status and the whole response text.
fn http(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, out))
}

async fn serve(config: &std::path::Path, port: u16) -> Child {
    let child = Command::new(binary())
        .args(["serve", "--config"])
        .arg(config)
        .env("STREAMTIER_API__LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start serve");
    let deadline = Instant::now() + Duration::from_secs(20);
    while http(port, "GET", "/healthz", "").is_none() {
        assert!(Instant::now() < deadline, "serve did not come up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child
}

fn kill9(child: &mut Child) {
    let _ = Command::new("kill")
        .arg("-9")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
}

fn job_state(redis: &RedisServer, id: &str) -> serde_json::Value {
    let json: String = redis::cmd("GET")
        .arg(format!("streamtier:replay:job:{id}"))
        .query(&mut redis.con())
        .expect("job record");
    serde_json::from_str(&json).expect("job json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_serve_mid_replay_writes_every_entry_exactly_once() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("archive");
    let store = Store::Local(LocalStore::new(&root).expect("store"));
    let hot = redis.hot().await;
    let mut con = redis.con();
    let mut sources: Vec<Vec<Entry>> = Vec::new();
    for p in 0..2u32 {
        let stream = format!("orders:{p}");
        for i in 0..PER_PARTITION {
            let value = format!("{p}-{i}");
            xadd(
                &mut con,
                &stream,
                &format!("{}-{}", 1_700_000_000_000 + i * 10, i % 2),
                &[
                    (b"v", value.as_bytes()),
                    (b"bin", &[0, 0xff, (i % 251) as u8]),
                    (b"v", b"repeat"),
                ],
            );
            // Archive the first part, keeping 500 archived entries in Redis: the seam is crossed.
            if i == PER_PARTITION - 1001 {
                let ctx = system_context(hot.clone(), store.clone(), &test_settings(), "t");
                let retention = Retention {
                    retain_entries: 500,
                    retain_for: Duration::ZERO,
                    retain_max_entries: None,
                };
                let mut worker = PartitionWorker::new(ctx, partition("orders", p, &stream, retention));
                let stop = CancellationToken::new();
                worker
                    .pass(streamtier_archiver::Mode::Flush, None, &stop)
                    .await
                    .expect("archive");
            }
        }
        sources.push(xrange_all(&mut con, &stream));
    }
    // Redis no longer holds the oldest entries: they must come from the archive.
    assert!(xrange_all(&mut con, "orders:0").len() < PER_PARTITION as usize);
    let full: Vec<Vec<Entry>> = (0..2u32)
        .map(|p| {
            let archived = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current()
                    .block_on(crate::harness::stream::archived_entries(&store, "orders", p))
            });
            let mut all = archived;
            let last = all.last().map(|e| e.id).expect("archived");
            all.extend(sources[p as usize].iter().filter(|e| e.id > last).cloned());
            all
        })
        .collect();
    assert_eq!(full[0].len() as u64, PER_PARTITION);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let config = write_config(
        dir.path(),
        &format!(
            "[redis]\nurl = \"{}\"\n[store]\nurl = \"{}\"\n[api]\nlisten = \"127.0.0.1:{port}\"\n\
             [replay]\ndefault_rate = 1000\n\
             [[topics]]\nname = \"orders\"\nstreams = \"orders:{{partition}}\"\npartitions = 2\n",
            redis.url(),
            root.display()
        ),
    );
    let mut child = serve(&config, port).await;
    let mut jobs = Vec::new();
    for body in [
        r#"{"topic": "orders", "target": "fresh:{partition}", "ids": "new", "origin_field": "_origin"}"#,
        r#"{"topic": "orders", "target": "restored:{partition}", "ids": "original"}"#,
    ] {
        let (status, response) = http(port, "POST", "/v1/replays", body).expect("POST");
        assert_eq!(status, 202, "{response}");
        let location = response
            .lines()
            .find_map(|l| l.strip_prefix("location: "))
            .expect("Location header");
        jobs.push(location.trim().trim_start_matches("/v1/replays/").to_string());
    }
    // A second server resumes the same unfinished jobs: the job lease keeps one runner per job,
    // and the cursor check would stop a second one anyway.
    let port2 = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut second = serve(&config, port2).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..900))).await;
        kill9(&mut child);
        child = serve(&config, port).await;
    }
    // The kills landed while the jobs were still running.
    assert!(
        jobs.iter()
            .all(|id| job_state(&redis, id)["state"] != "succeeded"),
        "a job finished before the last kill; slow it down"
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let states: Vec<String> = jobs
            .iter()
            .map(|id| {
                job_state(&redis, id)["state"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        if states.iter().all(|s| s == "succeeded") {
            break;
        }
        assert!(
            !states.iter().any(|s| s == "failed" || s == "cancelled"),
            "{states:?}: {:?}",
            jobs.iter()
                .map(|id| job_state(&redis, id)["error"].clone())
                .collect::<Vec<_>>()
        );
        assert!(Instant::now() < deadline, "jobs did not finish: {states:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    kill9(&mut child);
    kill9(&mut second);

    for (p, source) in full.iter().enumerate() {
        let restored = xrange_all(&mut con, &format!("restored:{p}"));
        assert_eq!(restored.len(), source.len(), "restored:{p}: duplicates or holes");
        assert_eq!(restored, *source, "restored:{p} differs from the source");
        let fresh = xrange_all(&mut con, &format!("fresh:{p}"));
        assert_eq!(fresh.len(), source.len(), "fresh:{p}: duplicates or holes");
        for (got, want) in fresh.iter().zip(source) {
            let mut fields = want.fields.clone();
            fields.push((
                Bytes::from_static(b"_origin"),
                Bytes::from(format!("orders:{p}/{}", want.id)),
            ));
            assert_eq!(got.fields, fields);
        }
    }
    for id in &jobs {
        let record = job_state(&redis, id);
        assert_eq!(
            record["entries_replayed"],
            serde_json::json!(2 * PER_PARTITION),
            "{record}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_command_plans_runs_and_reports() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("archive");
    let mut con = redis.con();
    for p in 0..3u32 {
        for i in 0..40u64 {
            xadd(
                &mut con,
                &format!("orders:{p}"),
                "*",
                &[(b"i", i.to_string().as_bytes())],
            );
        }
    }
    let config = write_config(
        dir.path(),
        &format!(
            "[redis]\nurl = \"{}\"\n[store]\nurl = \"{}\"\n\
             [[topics]]\nname = \"orders\"\nstreams = \"orders:{{partition}}\"\npartitions = 3\n\
             retain_entries = 10\nretain_for = \"0s\"\n",
            redis.url(),
            root.display()
        ),
    );
    let run = |args: &[&str]| {
        let out = Command::new(binary())
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .expect("run");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let (code, text) = run(&["archive", "--once", "--flush"]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = run(&["replay", "--topic", "orders", "--partitions", "0-1", "--dry-run"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("orders:replay:0") && !text.contains("orders:replay:2"),
        "{text}"
    );
    assert_eq!(
        xrange_all(&mut con, "orders:replay:0").len(),
        0,
        "a dry run writes nothing"
    );
    let (code, text) = run(&[
        "replay",
        "--topic",
        "orders",
        "--partitions",
        "0-1",
        "--target",
        "copy:{partition}",
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("Succeeded") && text.contains("80 entries"),
        "{text}"
    );
    for p in 0..2 {
        assert_eq!(xrange_all(&mut con, &format!("copy:{p}")).len(), 40);
    }
    assert!(xrange_all(&mut con, "copy:2").is_empty());
    // A bad request is refused with the field and exit code 2.
    let (code, text) = run(&["replay", "--topic", "orders", "--from", "soon"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("`from`"), "{text}");
    let (code, text) = run(&["replay", "--topic", "orders", "--target", "orders:{partition}"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("target"), "{text}");
}
