//! The archive pipeline against a real Redis and both stores: round trips, trimming, gaps.

use std::time::Duration;

use proptest::prelude::*;
use streamtier_archiver::settings::Retention;
use streamtier_archiver::{Mode, PartitionWorker};
use streamtier_schemas::StreamId;
use streamtier_tiers::store::{LocalStore, Store};
use tokio_util::sync::CancellationToken;

use crate::harness::archiver::partition;
use crate::harness::archiver::{context, keep_nothing, system_context, test_settings, TestClock};
use crate::harness::redis::RedisServer;
use crate::harness::s3::S3Sandbox;
use crate::harness::stream::{archived_entries, gap_records, object_keys, xadd, xrange_all};

fn local_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::Local(LocalStore::new(dir.path()).expect("local store"));
    (dir, store)
}

async fn once(worker: &mut PartitionWorker) -> streamtier_archiver::PassStats {
    worker
        .pass(Mode::Flush, None, &CancellationToken::new())
        .await
        .expect("archive pass")
}

fn entry_strategy() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    let bytes = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..12),
        "[a-z]{1,3}".prop_map(String::into_bytes),
    ];
    proptest::collection::vec((bytes.clone(), bytes), 1..6)
}

#[test]
fn round_trip_is_byte_exact_for_random_entries() {
    let redis = RedisServer::start();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let hot = rt.block_on(redis.hot());
    let con = std::cell::RefCell::new(redis.con());
    let case = std::cell::Cell::new(0u32);
    let config = ProptestConfig {
        cases: 24,
        ..ProptestConfig::default()
    };
    proptest!(config, |(entries in proptest::collection::vec(entry_strategy(), 1..120))| {
        case.set(case.get() + 1);
        let case = case.get();
        let mut con = con.borrow_mut();
        let stream = format!("prop:{case}");
        for fields in &entries {
            let f: Vec<(&[u8], &[u8])> = fields.iter().map(|(n, v)| (n.as_slice(), v.as_slice())).collect();
            xadd(&mut con, &stream, "*", &f);
        }
        let source = xrange_all(&mut con, &stream);
        let (_dir, store) = local_store();
        let ctx = system_context(hot.clone(), store.clone(), &test_settings(), "t");
        let mut worker = PartitionWorker::new(ctx, partition("prop", case, &stream, keep_nothing()));
        let stats = rt.block_on(once(&mut worker));
        prop_assert_eq!(stats.entries, entries.len() as u64);
        let archived = rt.block_on(archived_entries(&store, "prop", case));
        prop_assert_eq!(&archived, &source);
        // Everything was archived and nothing is retained: the stream is empty now.
        prop_assert!(xrange_all(&mut con, &stream).is_empty());
    });
}

#[tokio::test]
async fn large_and_binary_values_survive_on_s3() {
    let redis = RedisServer::start();
    let s3 = S3Sandbox::start().await;
    let store = s3.store("archive");
    let mut con = redis.con();
    let big = vec![0xA5u8; 10 * 1024 * 1024];
    xadd(
        &mut con,
        "big:0",
        "*",
        &[(b"payload", &big), (b"k", b"\xff\xfe"), (b"k", b"")],
    );
    xadd(&mut con, "big:0", "*", &[(b"empty", b"")]);
    let source = xrange_all(&mut con, "big:0");
    let ctx = system_context(redis.hot().await, store.clone(), &test_settings(), "t");
    let mut worker = PartitionWorker::new(ctx, partition("big", 0, "big:0", keep_nothing()));
    once(&mut worker).await;
    assert_eq!(archived_entries(&store, "big", 0).await, source);
}

#[tokio::test]
async fn objects_are_split_by_count_and_hour_and_named_by_first_id() {
    let redis = RedisServer::start();
    let (_dir, store) = local_store();
    let mut con = redis.con();
    let hour = 3_600_000u64;
    let base = 1_763_780_400_000u64 - 1_763_780_400_000 % hour; // an hour boundary
    for i in 0..120u64 {
        // 60 entries in one hour, 60 in the next
        let ms = if i < 60 { base + i } else { base + hour + i };
        xadd(
            &mut con,
            "h:0",
            &format!("{ms}-0"),
            &[(b"i", i.to_string().as_bytes())],
        );
    }
    let ctx = system_context(redis.hot().await, store.clone(), &test_settings(), "t");
    let mut worker = PartitionWorker::new(ctx, partition("h", 0, "h:0", keep_nothing()));
    let stats = once(&mut worker).await;
    // 50 + 10 in the first hour, 50 + 10 in the second
    assert_eq!(stats.objects, 4);
    let keys = object_keys(&store, "h", 0).await;
    assert!(keys[0].contains("/dt=2025-11-22/hour=03/"), "{keys:?}");
    assert!(keys[2].contains("/hour=04/"), "{keys:?}");
    assert!(keys[0].ends_with(&format!("{}.parquet", StreamId::new(base, 0).object_name())));
    assert_eq!(archived_entries(&store, "h", 0).await.len(), 120);
}

fn fill(con: &mut redis::Connection, stream: &str, first_ms: u64, n: u64) {
    for i in 0..n {
        xadd(
            con,
            stream,
            &format!("{}-0", first_ms + i),
            &[(b"n", i.to_string().as_bytes())],
        );
    }
}

#[tokio::test]
async fn trimming_keeps_retain_entries_and_retain_for() {
    let redis = RedisServer::start();
    let (_dir, store) = local_store();
    let mut con = redis.con();
    fill(&mut con, "r:0", 1_000, 100);
    fill(&mut con, "r:1", 1_000, 100);
    let hot = redis.hot().await;
    // retain_entries: keep the newest 30
    let clock = TestClock::at(1_000_000);
    let ctx = context(hot.clone(), store.clone(), &test_settings(), clock.clone(), "t");
    let keep30 = Retention {
        retain_entries: 30,
        retain_for: Duration::ZERO,
        retain_max_entries: None,
    };
    once(&mut PartitionWorker::new(
        ctx.clone(),
        partition("r", 0, "r:0", keep30),
    ))
    .await;
    let left = xrange_all(&mut con, "r:0");
    assert_eq!(left.len(), 30);
    assert_eq!(left[0].id, StreamId::new(1_070, 0));
    // retain_for: the clock says 1_000_000 ms; keep entries younger than (1_000_000 - 998_960) = ids >= 1_040
    let window = Retention {
        retain_entries: 0,
        retain_for: Duration::from_millis(998_960),
        retain_max_entries: None,
    };
    once(&mut PartitionWorker::new(ctx, partition("r", 1, "r:1", window))).await;
    let left = xrange_all(&mut con, "r:1");
    assert_eq!(left.first().map(|e| e.id), Some(StreamId::new(1_040, 0)));
    assert_eq!(left.len(), 60);
    // and everything is archived either way
    assert_eq!(archived_entries(&store, "r", 0).await.len(), 100);
    assert_eq!(archived_entries(&store, "r", 1).await.len(), 100);
}

#[tokio::test]
async fn consumer_groups_hold_trimming_back_until_delivered_and_acked() {
    let redis = RedisServer::start();
    let (_dir, store) = local_store();
    let mut con = redis.con();
    fill(&mut con, "g:0", 1_000, 100);
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("g:0")
        .arg("workers")
        .arg("0")
        .query(&mut con)
        .unwrap();
    // deliver 40 entries, ack the first 20: entries 1020.. are pending, 1040.. undelivered
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("workers")
        .arg("c1")
        .arg("COUNT")
        .arg(40)
        .arg("STREAMS")
        .arg("g:0")
        .arg(">")
        .query(&mut con)
        .unwrap();
    for i in 0..20 {
        let _: i64 = redis::cmd("XACK")
            .arg("g:0")
            .arg("workers")
            .arg(format!("{}-0", 1_000 + i))
            .query(&mut con)
            .unwrap();
    }
    let ctx = system_context(redis.hot().await, store.clone(), &test_settings(), "t");
    let mut worker = PartitionWorker::new(ctx.clone(), partition("g", 0, "g:0", keep_nothing()));
    once(&mut worker).await;
    let left = xrange_all(&mut con, "g:0");
    assert_eq!(
        left.first().map(|e| e.id),
        Some(StreamId::new(1_020, 0)),
        "lowest pending entry must stay"
    );
    // ack everything delivered: now the undelivered ones hold it back
    for i in 20..40 {
        let _: i64 = redis::cmd("XACK")
            .arg("g:0")
            .arg("workers")
            .arg(format!("{}-0", 1_000 + i))
            .query(&mut con)
            .unwrap();
    }
    once(&mut worker).await;
    let left = xrange_all(&mut con, "g:0");
    assert_eq!(
        left.first().map(|e| e.id),
        Some(StreamId::new(1_040, 0)),
        "undelivered entries must stay"
    );
    // a hard cap trims past the stalled group, archived entries only, and reports it
    let capped = Retention {
        retain_entries: 0,
        retain_for: Duration::ZERO,
        retain_max_entries: Some(10),
    };
    let mut worker = PartitionWorker::new(ctx.clone(), partition("g", 0, "g:0", capped));
    once(&mut worker).await;
    assert_eq!(xrange_all(&mut con, "g:0").len(), 10);
    let status = ctx.metrics.statuses();
    assert_eq!(
        status[&("g".to_string(), 0)].groups_behind,
        vec!["workers".to_string()]
    );
    assert_eq!(archived_entries(&store, "g", 0).await.len(), 100);
}

#[tokio::test]
async fn producer_maxlen_leaves_a_gap_record_with_the_exact_count() {
    let redis = RedisServer::start();
    let (_dir, store) = local_store();
    let mut con = redis.con();
    fill(&mut con, "m:0", 1_000, 30);
    let ctx = system_context(redis.hot().await, store.clone(), &test_settings(), "t");
    let mut worker = PartitionWorker::new(ctx, partition("m", 0, "m:0", keep_nothing()));
    once(&mut worker).await;
    // 100 more entries, but the producer keeps only the newest 25 (exact MAXLEN)
    for i in 0..100u64 {
        let _: String = redis::cmd("XADD")
            .arg("m:0")
            .arg("MAXLEN")
            .arg(25)
            .arg(format!("{}-0", 2_000 + i))
            .arg("n")
            .arg(i)
            .query(&mut con)
            .unwrap();
    }
    let stats = once(&mut worker).await;
    assert_eq!(stats.gaps, 1);
    let gaps = gap_records(&store, "m", 0).await;
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0].count, 75);
    assert_eq!(gaps[0].after_id, StreamId::new(1_029, 0));
    assert_eq!(gaps[0].before_id, Some(StreamId::new(2_075, 0)));
    assert_eq!(archived_entries(&store, "m", 0).await.len(), 55);
}

#[tokio::test]
async fn xdel_and_entries_gone_before_first_seen_are_counted() {
    let redis = RedisServer::start();
    let (_dir, store) = local_store();
    let mut con = redis.con();
    fill(&mut con, "d:0", 1_000, 20);
    // 5 entries trimmed by someone else before streamtier ever saw the stream
    let _: i64 = redis::cmd("XTRIM")
        .arg("d:0")
        .arg("MINID")
        .arg("1005")
        .query(&mut con)
        .unwrap();
    // and 3 deleted in the middle
    for id in ["1010-0", "1011-0", "1012-0"] {
        let _: i64 = redis::cmd("XDEL").arg("d:0").arg(id).query(&mut con).unwrap();
    }
    let ctx = system_context(redis.hot().await, store.clone(), &test_settings(), "t");
    let mut worker = PartitionWorker::new(ctx, partition("d", 0, "d:0", keep_nothing()));
    once(&mut worker).await;
    let gaps = gap_records(&store, "d", 0).await;
    let total: u64 = gaps.iter().map(|g| g.count).sum();
    assert_eq!(total, 8, "{gaps:?}");
    assert!(gaps.iter().all(|g| g.after_id == StreamId::MIN), "{gaps:?}");
    assert_eq!(archived_entries(&store, "d", 0).await.len(), 12);
}

#[tokio::test]
async fn a_recreated_or_regressed_stream_is_reported_and_never_trimmed() {
    let redis = RedisServer::start();
    let (_dir, store) = local_store();
    let mut con = redis.con();
    fill(&mut con, "x:0", 1_000, 30);
    let ctx = system_context(redis.hot().await, store.clone(), &test_settings(), "t");
    let mut worker = PartitionWorker::new(ctx.clone(), partition("x", 0, "x:0", keep_nothing()));
    once(&mut worker).await;
    assert!(xrange_all(&mut con, "x:0").is_empty());
    // Deleted and recreated below the archive (as after a failover to a stale replica).
    let _: i64 = redis::cmd("DEL").arg("x:0").query(&mut con).unwrap();
    fill(&mut con, "x:0", 10, 5);
    let err = worker
        .pass(Mode::Flush, None, &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("x:0"), "{err}");
    assert_eq!(
        xrange_all(&mut con, "x:0").len(),
        5,
        "a regressed stream must not be trimmed"
    );
    // Recreated with new ids above the archive but fewer entries ever added than archived.
    let _: i64 = redis::cmd("DEL").arg("x:0").query(&mut con).unwrap();
    fill(&mut con, "x:0", 5_000, 5);
    let mut worker = PartitionWorker::new(ctx, partition("x", 0, "x:0", keep_nothing()));
    assert!(worker
        .pass(Mode::Flush, None, &CancellationToken::new())
        .await
        .is_err());
    assert_eq!(
        xrange_all(&mut con, "x:0").len(),
        5,
        "a recreated stream must not be trimmed"
    );
    assert_eq!(archived_entries(&store, "x", 0).await.len(), 30);
}
