//! Failure scenarios: racing archivers, S3 faults, kill -9, bad configuration.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use streamtier_archiver::{Mode, PartitionWorker};
use streamtier_tiers::store::{LocalStore, Store};
use tokio_util::sync::CancellationToken;

use crate::harness::archiver::{
    archive_flush, binary, keep_nothing, partition, system_context, test_settings, write_config,
};
use crate::harness::redis::RedisServer;
use crate::harness::s3::{Fault, S3Sandbox};
use crate::harness::stream::{archived_entries, assert_exactly_once, xadd, xrange_all};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_archivers_on_the_same_partitions_leave_no_duplicate_and_no_hole() {
    let redis = RedisServer::start();
    let s3 = S3Sandbox::start().await;
    let store = s3.store("race");
    let hot = redis.hot().await;
    let streams: Vec<String> = (0..3).map(|p| format!("race:{p}")).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (url, streams, stop) = (redis.url(), streams.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
            let mut produced = vec![BTreeSet::new(); streams.len()];
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) || i < 300 {
                let p = (i % streams.len() as u64) as usize;
                produced[p].insert(xadd(
                    &mut con,
                    &streams[p],
                    "*",
                    &[(b"i", i.to_string().as_bytes())],
                ));
                i += 1;
                if i % 50 == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            produced
        })
    };
    let mut tasks = Vec::new();
    let mut metrics = Vec::new();
    for owner in ["a", "b"] {
        for (p, stream) in streams.iter().enumerate() {
            let ctx = system_context(hot.clone(), store.clone(), &test_settings(), owner);
            metrics.push(ctx.metrics.clone());
            let mut worker = PartitionWorker::new(ctx, partition("race", p as u32, stream, keep_nothing()));
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                // No lease on purpose: the chain must stay exact when both work at once.
                while !stop.load(Ordering::SeqCst) {
                    worker
                        .pass(Mode::Flush, None, &CancellationToken::new())
                        .await
                        .expect("pass");
                }
            }));
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.expect("worker task");
    }
    let produced = producer.join().expect("producer");
    // The archivers really collided: one adopted the other's object, or removed its own after
    // the chain moved under it.
    let sum = |f: fn(&streamtier_archiver::Metrics) -> &std::sync::atomic::AtomicU64| {
        metrics.iter().map(|m| f(m).load(Ordering::Relaxed)).sum::<u64>()
    };
    let (adopted, removed) = (sum(|m| &m.adopted_objects), sum(|m| &m.removed_objects));
    assert!(adopted + removed > 0, "no collision: nothing adopted or removed");
    for (p, stream) in streams.iter().enumerate() {
        let ctx = system_context(hot.clone(), store.clone(), &test_settings(), "final");
        let mut worker = PartitionWorker::new(ctx, partition("race", p as u32, stream, keep_nothing()));
        worker
            .pass(Mode::Flush, None, &CancellationToken::new())
            .await
            .expect("final pass");
        assert_exactly_once(&redis, &store, "race", p as u32, stream, &produced[p]).await;
        assert!(
            xrange_all(&mut redis.con(), stream).is_empty(),
            "everything archived is trimmed"
        );
    }
}

#[tokio::test]
async fn s3_faults_never_trim_before_the_upload_succeeded() {
    let redis = RedisServer::start();
    let s3 = S3Sandbox::start().await;
    let store = s3.store("faults");
    let mut con = redis.con();
    let mut produced = BTreeSet::new();
    for i in 0..120u64 {
        produced.insert(xadd(&mut con, "f:0", "*", &[(b"i", i.to_string().as_bytes())]));
    }
    let ctx = system_context(redis.hot().await, store.clone(), &test_settings(), "t");
    let mut worker = PartitionWorker::new(ctx, partition("f", 0, "f:0", keep_nothing()));
    // Every PUT fails with 503 SlowDown, more often than the SDK retries.
    s3.faults().inject("PUT", ".parquet", Fault::Status(503), 1000);
    let err = worker.pass(Mode::Flush, None, &CancellationToken::new()).await;
    assert!(err.is_err(), "a pass whose uploads all fail must fail");
    assert_eq!(
        xrange_all(&mut con, "f:0").len(),
        120,
        "nothing may be trimmed while uploads fail"
    );
    s3.faults().clear();
    // A reply lost after the write happened: the retry sees the object exists and adopts it.
    s3.faults().inject("PUT", ".parquet", Fault::DropAfterWrite, 1);
    // A few 503s the SDK retries by itself.
    s3.faults().inject("PUT", ".parquet", Fault::Status(503), 2);
    worker
        .pass(Mode::Flush, None, &CancellationToken::new())
        .await
        .expect("pass after faults");
    assert_exactly_once(&redis, &store, "f", 0, "f:0", &produced).await;
    assert_eq!(archived_entries(&store, "f", 0).await.len(), 120);
    assert!(xrange_all(&mut con, "f:0").is_empty());
}

fn kill9(child: &mut std::process::Child) {
    let _ = Command::new("kill")
        .arg("-9")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_and_duplicates_nothing() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("archive");
    let config = write_config(
        dir.path(),
        &format!(
            r#"
[redis]
url = "{}"
[store]
url = "{}"
[archive]
flush_after = "0s"
max_object_entries = 40
poll_interval = "20ms"
lease_ttl = "1s"
[[topics]]
name = "k"
streams = "k:{{partition}}"
partitions = 2
retain_entries = 0
retain_for = "0s"
"#,
            redis.url(),
            archive.display()
        ),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (url, stop) = (redis.url(), stop.clone());
        std::thread::spawn(move || {
            let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
            let mut produced = vec![BTreeSet::new(), BTreeSet::new()];
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let p = (i % 2) as usize;
                produced[p].insert(xadd(
                    &mut con,
                    &format!("k:{p}"),
                    "*",
                    &[(b"i", i.to_string().as_bytes())],
                ));
                i += 1;
                if i % 20 == 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            produced
        })
    };
    // Seeded, so that a failure can be replayed; each killed run's log is kept for the message.
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let mut logs = Vec::new();
    for round in 0..20 {
        let log = dir.path().join(format!("archiver-{round}.log"));
        let mut child = Command::new(binary())
            .args(["archive", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start archiver");
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..600))).await;
        kill9(&mut child);
        logs.push(log);
    }
    stop.store(true, Ordering::SeqCst);
    let produced = producer.join().expect("producer");
    let store = Store::Local(LocalStore::new(&archive).expect("store"));
    let killed_runs_archived: usize = {
        let mut n = 0;
        for p in 0..2u32 {
            n += archived_entries(&store, "k", p).await.len();
        }
        n
    };
    let all_logs = || {
        logs.iter()
            .map(|l| std::fs::read_to_string(l).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    assert!(
        killed_runs_archived > 0,
        "the killed runs archived nothing before the final pass; their logs:\n{}",
        all_logs()
    );
    // A restart converges: one last run archives the rest.
    // Leases of the killed processes expire after lease_ttl; --once waits for them.
    let out = archive_flush(&config, &[]);
    assert!(
        out.status.success(),
        "final run failed: {}\nlogs of the killed runs:\n{}",
        String::from_utf8_lossy(&out.stderr),
        all_logs()
    );
    for p in 0..2u32 {
        assert_exactly_once(&redis, &store, "k", p, &format!("k:{p}"), &produced[p as usize]).await;
    }
    let total: usize = produced.iter().map(BTreeSet::len).sum();
    assert!(
        total > 500,
        "the producer kept writing during the kills ({total} entries)"
    );
}

#[test]
fn sigterm_stops_the_daemon_within_seconds() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!(
            "[redis]\nurl = \"{}\"\n[store]\nurl = \"{}\"\n",
            redis.url(),
            dir.path().join("a").display()
        ),
    );
    let mut child = Command::new(binary())
        .args(["archive", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start archiver");
    std::thread::sleep(Duration::from_millis(500));
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "daemon exited with {status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "daemon did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_archives_to_s3_configured_by_environment_and_prints_a_summary() {
    let redis = RedisServer::start();
    let s3 = S3Sandbox::start().await;
    let mut con = redis.con();
    for i in 0..30u64 {
        xadd(
            &mut con,
            &format!("env:{}", i % 3),
            "*",
            &[(b"i", i.to_string().as_bytes())],
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        "[store]\nurl = \"./never-used\"\n[[topics]]\nname = \"env\"\nstreams = \"env:{partition}\"\npartitions = 3\nretain_entries = 0\nretain_for = \"0s\"\n",
    );
    let env: Vec<(&str, String)> = vec![
        ("STREAMTIER_REDIS__URL", redis.url()),
        ("STREAMTIER_STORE__URL", format!("s3://{}/prefix", s3.bucket())),
        ("STREAMTIER_STORE__ENDPOINT", s3.endpoint()),
        ("STREAMTIER_STORE__REGION", "us-east-1".into()),
        ("STREAMTIER_STORE__FORCE_PATH_STYLE", "true".into()),
        ("AWS_ACCESS_KEY_ID", s3.access_key().into()),
        ("AWS_SECRET_ACCESS_KEY", s3.secret_key().into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ];
    // The S3 server runs on this test's runtime: wait for the child off its threads.
    let out = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        archive_flush(&config, &env)
    })
    .await
    .expect("run streamtier");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for p in 0..3 {
        assert!(
            stdout.contains(&format!("env/{p} (env:{p})")),
            "summary: {stdout}"
        );
    }
    let store = s3.store("prefix");
    let total: usize = {
        let mut n = 0;
        for p in 0..3 {
            n += archived_entries(&store, "env", p).await.len();
        }
        n
    };
    assert_eq!(total, 30);
}

#[test]
fn bad_configuration_is_refused_with_the_key_and_exit_code_2() {
    let topic = "[[topics]]\nname = \"o\"\nstreams = \"o:{partition}\"\npartitions = 2\n";
    let cases: Vec<(String, &str)> = vec![
        (
            format!("[archive]\nflush_afterr = \"1s\"\n{topic}"),
            "flush_afterr",
        ),
        (format!("[store]\nurl = \"gs://bucket\"\n{topic}"), "store.url"),
        (format!("[redis]\nurl = \"http://nope\"\n{topic}"), "redis.url"),
        (
            "[[topics]]\nname = \"o\"\nstreams = \"o:{partition}\"\npartitions = 0\n".into(),
            "topics[0].partitions",
        ),
        (
            "[[topics]]\nname = \"o\"\nstreams = \"o\"\npartitions = 4\n".into(),
            "topics[0].streams",
        ),
        (
            format!("[archive]\nflush_after = \"soon\"\n{topic}"),
            "archive.flush_after",
        ),
        (
            format!("[archive]\nmax_object_bytes = \"lots\"\n{topic}"),
            "archive.max_object_bytes",
        ),
        (
            format!("{topic}columns = {{ amount = \"decimal\" }}\n"),
            "topics[0].columns.amount",
        ),
        (
            "[[topics]]\nname = \"a/b\"\nstreams = \"x\"\n".into(),
            "topics[0].name",
        ),
        (
            format!("[archive]\nzstd_level = 99\n{topic}"),
            "archive.zstd_level",
        ),
        (
            format!("[archive]\nrow_group_bytes = \"4KiB\"\n{topic}"),
            "archive.row_group_bytes",
        ),
    ];
    for (toml, key) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = write_config(dir.path(), &toml);
        // Configuration errors come before any connection is made.
        let output = archive_flush(&config, &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "config {toml:?} → {stderr}");
        assert!(
            stderr.contains(key),
            "error for {toml:?} must name `{key}`: {stderr}"
        );
        assert!(
            !dir.path().join("archive").exists(),
            "nothing may be created for a bad configuration"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_once_pass_retried_after_an_object_reports_every_attempts_objects() {
    let redis = RedisServer::start();
    let s3 = S3Sandbox::start().await;
    let store = s3.store("retry");
    let mut con = redis.con();
    // Past hours, so that every object is due; 50 entries per object: three objects.
    let base = 1_600_000_000_000u64;
    for i in 0..120u64 {
        xadd(
            &mut con,
            "rt:0",
            &format!("{}-0", base + i),
            &[(b"i", i.to_string().as_bytes())],
        );
    }
    let topic = streamtier_archiver::settings::TopicSettings {
        name: "rt".into(),
        streams: "rt:{partition}".into(),
        partitions: 1,
        retain_entries: 0,
        retain_for: "0s".into(),
        retain_max_entries: None,
        columns: Default::default(),
        object_span: "1h".into(),
    };
    let source = streamtier_archiver::Source::Topics(vec![topic.check(0).expect("topic")]);
    // The second object's upload fails on every attempt the SDK makes: the first attempt of
    // the pass has stored one object when it fails, the retry stores the other two.
    let second = streamtier_schemas::StreamId::new(base + 50, 0).object_name();
    s3.faults()
        .inject("PUT", &format!("{second}.parquet"), Fault::Status(503), 8);
    let ctx = system_context(redis.hot().await, store.clone(), &test_settings(), "once");
    let metrics = ctx.metrics.clone();
    let reports = streamtier_archiver::run_once(ctx, &source, Mode::Once, CancellationToken::new())
        .await
        .expect("run once");
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    assert_eq!(r.error, None);
    assert_eq!(
        metrics.store_errors.load(Ordering::Relaxed),
        1,
        "the first attempt failed on the store"
    );
    assert_eq!((r.stats.entries, r.stats.objects), (120, 3), "{:?}", r.stats);
    assert_eq!(r.stats.trimmed, 120, "{:?}", r.stats);
    assert_eq!(archived_entries(&store, "rt", 0).await.len(), 120);
}
