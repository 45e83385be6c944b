//! Object shapes on realistic traffic: a trickle makes one object per partition-hour, a sparse
//! backlog is read from Redis once, and a small hot window stays small.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use streamtier_archiver::settings::{ArchiveSettings, Retention, Topic};
use streamtier_archiver::{Mode, PartitionWorker, Source};
use streamtier_schemas::{layout, ObjectSpan, StreamId};
use streamtier_tiers::store::{LocalStore, Store};
use tokio_util::sync::CancellationToken;

use crate::harness::archiver::partition;
use crate::harness::archiver::{
    archive_flush, archive_once, context, system_context, test_settings, write_config, TestClock,
};
use crate::harness::redis::RedisServer;
use crate::harness::stream::assert_exactly_once;
use crate::harness::stream::{archived_entries, object_keys, xadd};

const H: u64 = 3_600_000;
/// 2025-03-01T00:00:00Z
const BASE: u64 = 1_740_787_200_000;

fn local_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::Local(LocalStore::new(dir.path()).expect("local store"));
    (dir, store)
}

/// Waits until `cond` holds, polling every 20 ms, or panics after `secs` naming `what`.
async fn wait_for<F, Fut>(what: &str, secs: u64, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn topic(name: &str, partitions: u32, retention: Retention) -> Topic {
    Topic {
        name: name.into(),
        streams: (0..partitions).map(|p| format!("{name}:{p}")).collect(),
        retention,
        columns: Vec::new(),
        span: ObjectSpan::Hour,
    }
}

fn entry(i: u64) -> Vec<(&'static [u8], Vec<u8>)> {
    vec![(b"n".as_slice(), i.to_string().into_bytes())]
}

/// Adds entry `i` under `id` (`*` for an id from Redis' clock).
fn add(con: &mut redis::Connection, stream: &str, id: &str, i: u64) -> StreamId {
    let fields = entry(i);
    let f: Vec<(&[u8], &[u8])> = fields.iter().map(|(n, v)| (*n, v.as_slice())).collect();
    xadd(con, stream, id, &f)
}

/// The hour of each object of a partition, in chain order.
async fn object_hours(store: &Store, topic: &str, p: u32) -> Vec<u64> {
    object_keys(store, topic, p)
        .await
        .iter()
        .map(|k| layout::hour_of(layout::parse_object_key(k).expect("object key").first_id))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickle_over_ten_closed_hours_makes_one_object_per_partition_hour() {
    let redis = RedisServer::start();
    let (_dir, store) = local_store();
    let clock = TestClock::at(BASE);
    let settings = ArchiveSettings {
        poll_interval: "20ms".into(),
        ..ArchiveSettings::default()
    };
    // Nothing is kept by count; the default time window (1h) decides what stays in Redis.
    let retention = Retention {
        retain_entries: 0,
        ..Retention::default()
    };
    let ctx = context(
        redis.hot().await,
        store.clone(),
        &settings,
        clock.clone(),
        "trickle",
    );
    let metrics = ctx.metrics.clone();
    let shutdown = CancellationToken::new();
    let parts = 2u32;
    let daemon = tokio::spawn(streamtier_archiver::run(
        ctx,
        Source::Topics(vec![topic("t", parts, retention)]),
        shutdown.clone(),
    ));
    let mut con = redis.con();
    let mut produced = vec![BTreeSet::new(); parts as usize];
    let mut i = 0u64;
    for hour in 0..10u64 {
        // Six visits per hour, the daemon polling many times in between: a few entries each.
        for tenth in 0..6u64 {
            let at = BASE + hour * H + tenth * 600_000;
            clock.0.store(at + 60_000, Ordering::SeqCst);
            for p in 0..parts {
                for k in 0..2 {
                    let id = StreamId::new(at + k * 1000 + u64::from(p), 0);
                    produced[p as usize].insert(add(&mut con, &format!("t:{p}"), &id.to_string(), i));
                    i += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(80)).await;
        }
        // Trimming is never held back: nothing older than the time window stays in Redis once
        // the daemon has looked (the hour before is closed by this hour's entries).
        let window_start = clock.0.load(Ordering::SeqCst) - H;
        for p in 0..parts {
            let stream = format!("t:{p}");
            wait_for("trimming to the time window", 10, || {
                let old: Vec<redis::Value> = redis::cmd("XRANGE")
                    .arg(&stream)
                    .arg("-")
                    .arg(format!("({window_start}-0"))
                    .query(&mut redis.con())
                    .expect("XRANGE");
                async move { old.is_empty() }
            })
            .await;
        }
    }
    // One entry in hour 10 closes hour 9.
    clock.0.store(BASE + 10 * H + 120_000, Ordering::SeqCst);
    for p in 0..parts {
        let id = StreamId::new(BASE + 10 * H + 60_000, 0);
        produced[p as usize].insert(add(&mut con, &format!("t:{p}"), &id.to_string(), i));
    }
    for p in 0..parts {
        wait_for("ten hour objects", 20, || {
            let store = store.clone();
            async move { object_hours(&store, "t", p).await.len() >= 10 }
        })
        .await;
    }
    // A few more polls: hour 10 is open (no later entry, the clock inside it), so it waits.
    tokio::time::sleep(Duration::from_millis(300)).await;
    shutdown.cancel();
    daemon.await.expect("daemon task").expect("daemon");
    let first_hour = layout::hour_of(StreamId::new(BASE, 0));
    for p in 0..parts {
        let hours = object_hours(&store, "t", p).await;
        assert_eq!(
            hours,
            (first_hour..first_hour + 10).collect::<Vec<_>>(),
            "partition {p}: one object for each closed hour, none for the open one"
        );
        let archived = archived_entries(&store, "t", p).await;
        assert_eq!(
            archived.len(),
            120,
            "partition {p}: every entry of the closed hours"
        );
        assert_exactly_once(&redis, &store, "t", p, &format!("t:{p}"), &produced[p as usize]).await;
    }
    assert_eq!(metrics.archived_objects.load(Ordering::Relaxed), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sparse_backlog_is_read_from_redis_once_in_one_object_per_hour() {
    let redis = RedisServer::start();
    let (_dir, store) = local_store();
    let mut con = redis.con();
    // 500 hours, 0 to 4 entries each (about two), ids from the entries' own times.
    let mut produced = BTreeSet::new();
    let mut hours = BTreeSet::new();
    let mut seed = 7u64;
    for hour in 0..500u64 {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        for k in 0..(seed >> 61) % 5 {
            let id = StreamId::new(BASE + hour * H + k * 7_000 + 13, 0);
            produced.insert(add(&mut con, "sparse:0", &id.to_string(), hour));
            hours.insert(layout::hour_of(id));
        }
    }
    let ctx = context(
        redis.hot().await,
        store.clone(),
        &ArchiveSettings::default(),
        TestClock::at(BASE + 600 * H),
        "sparse",
    );
    let metrics = ctx.metrics.clone();
    let retention = Retention {
        retain_entries: 0,
        retain_for: Duration::ZERO,
        retain_max_entries: None,
    };
    let mut worker = PartitionWorker::new(ctx, partition("sparse", 0, "sparse:0", retention));
    let stats = worker
        .pass(Mode::Once, None, &CancellationToken::new())
        .await
        .expect("pass");
    let n = produced.len() as u64;
    assert_eq!(stats.entries, n);
    assert_eq!(
        metrics.read_entries.load(Ordering::Relaxed),
        n,
        "every entry is read from Redis once"
    );
    let reads = metrics.reads.load(Ordering::Relaxed);
    assert!(reads <= 3, "{reads} reads for {n} small entries");
    assert_eq!(
        object_hours(&store, "sparse", 0).await,
        hours.into_iter().collect::<Vec<_>>()
    );
    let trims = metrics.trims.load(Ordering::Relaxed);
    // After the first object, when the entries read ahead run out, and once a second.
    assert!(
        trims * 10 <= stats.objects,
        "{trims} trims for {} objects",
        stats.objects
    );
    assert_exactly_once(&redis, &store, "sparse", 0, "sparse:0", &produced).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_hot_window_stays_within_window_plus_slack_under_a_steady_producer() {
    let redis = RedisServer::start();
    let (_dir, store) = local_store();
    let (window, slack) = (20u64, 100u64);
    let settings = ArchiveSettings {
        retention_slack: slack,
        max_object_entries: 1_000_000,
        ..test_settings()
    };
    let retention = Retention {
        retain_entries: window,
        retain_for: Duration::ZERO,
        retain_max_entries: None,
    };
    let ctx = system_context(redis.hot().await, store.clone(), &settings, "window");
    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn(streamtier_archiver::run(
        ctx,
        Source::Topics(vec![topic("w", 1, retention)]),
        shutdown.clone(),
    ));
    let mut con = redis.con();
    let mut produced = BTreeSet::new();
    let mut longest = 0u64;
    // About 2,000 entries a second for three seconds, in the current (open) hour.
    for i in 0..300u64 {
        for k in 0..20 {
            produced.insert(add(&mut con, "w:0", "*", i * 20 + k));
        }
        let len: u64 = redis::cmd("XLEN").arg("w:0").query(&mut con).expect("XLEN");
        longest = longest.max(len);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    daemon.await.expect("daemon task").expect("daemon");
    // Besides window and slack, what arrives while one pass runs (a pass every 50 ms).
    let bound = window + slack + 400;
    assert!(
        longest <= bound,
        "redis held {longest} entries, more than window {window} + slack {slack} + one pass"
    );
    assert!(
        !object_keys(&store, "w", 0).await.is_empty(),
        "the open hour was archived for retention"
    );
    assert_exactly_once(&redis, &store, "w", 0, "w:0", &produced).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_archives_closed_hours_and_flush_the_open_one_too() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("archive");
    let config = write_config(
        dir.path(),
        &format!(
            "[redis]\nurl = \"{}\"\n[store]\nurl = \"{}\"\n[[topics]]\nname = \"c\"\nstreams = \"c\"\n",
            redis.url(),
            archive.display()
        ),
    );
    let mut con = redis.con();
    let mut produced = BTreeSet::new();
    for k in 0..3 {
        produced.insert(add(&mut con, "c", &format!("{}-0", BASE + k), k));
    }
    // An entry of the current hour (Redis' clock): it closes the old hour and stays open.
    produced.insert(add(&mut con, "c", "*", 3));
    let store = Store::Local(LocalStore::new(&archive).expect("local store"));
    let out = archive_once(&config, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        archived_entries(&store, "c", 0).await.len(),
        3,
        "the closed hour only"
    );
    let out = archive_flush(&config, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ids: BTreeSet<StreamId> = archived_entries(&store, "c", 0)
        .await
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, produced, "--flush archives the open hour too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_of_a_past_hour_stays_one_object_until_the_stream_is_quiet() {
    let redis = RedisServer::start();
    let (_dir, store) = local_store();
    // The clock is long past the hours being written: only a later entry, or the stream
    // staying quiet for close_grace, may close them.
    let clock = TestClock::at(BASE + 1000 * H);
    let settings = ArchiveSettings {
        poll_interval: "20ms".into(),
        ..ArchiveSettings::default()
    };
    let grace = settings.check().expect("settings").close_grace.as_millis() as u64;
    let ctx = context(
        redis.hot().await,
        store.clone(),
        &settings,
        clock.clone(),
        "backfill",
    );
    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn(streamtier_archiver::run(
        ctx,
        Source::Topics(vec![topic("b", 1, Retention::default())]),
        shutdown.clone(),
    ));
    let mut con = redis.con();
    let mut produced = BTreeSet::new();
    // Hour 0 in five visits, the daemon polling in between; then one entry of hour 1.
    for visit in 0..5u64 {
        for k in 0..3 {
            let id = StreamId::new(BASE + visit * 600_000 + k * 1000, 0);
            produced.insert(add(&mut con, "b:0", &id.to_string(), visit * 3 + k));
        }
        tokio::time::sleep(Duration::from_millis(80)).await;
    }
    produced.insert(add(&mut con, "b:0", &format!("{}-0", BASE + H + 5), 99));
    let hour0 = layout::hour_of(StreamId::new(BASE, 0));
    wait_for("the object of hour 0", 10, || {
        let store = store.clone();
        async move { !object_hours(&store, "b", 0).await.is_empty() }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        object_hours(&store, "b", 0).await,
        vec![hour0],
        "hour 0 in one object; hour 1 waits while the stream may still be written"
    );
    // Quiet for close_grace by the clock: hour 1 closes too.
    clock.0.fetch_add(grace, Ordering::SeqCst);
    wait_for("the object of hour 1", 10, || {
        let store = store.clone();
        async move { object_hours(&store, "b", 0).await.len() == 2 }
    })
    .await;
    shutdown.cancel();
    daemon.await.expect("daemon task").expect("daemon");
    assert_eq!(object_hours(&store, "b", 0).await, vec![hour0, hour0 + 1]);
    assert_exactly_once(&redis, &store, "b", 0, "b:0", &produced).await;
}
