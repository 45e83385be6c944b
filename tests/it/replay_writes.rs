//! The replay write (entries and cursor together, one `WATCH`/`MULTI` transaction) under
//! contention, on a single server and on a cluster: exactly once, nothing written on a refusal,
//! wide entries, and the direct connections' authentication and database selection.

use bytes::Bytes;
use streamtier_schemas::{Entry, StreamId};
use streamtier_tiers::hot::{self, Hot, IdMode, RedisSettings, ReplayBatch, ReplayWrite};

use crate::harness::redis::{RedisCluster, RedisServer};
use crate::harness::stream::xrange_all;

const BATCHES: u64 = 40;
const PER_BATCH: u64 = 25;

async fn connect(url: String) -> Hot {
    hot::connect(&RedisSettings {
        url,
        ..RedisSettings::default()
    })
    .await
    .expect("connect")
}

/// Batch `b` of a job: source ids `b*PER_BATCH+1 ..`, a binary value and a repeated name.
fn batch_entries(b: u64) -> Vec<Entry> {
    (b * PER_BATCH + 1..=(b + 1) * PER_BATCH)
        .map(|i| {
            Entry::new(
                StreamId::new(1_000 + i, 0),
                vec![
                    (Bytes::from_static(b"i"), Bytes::from(i.to_string())),
                    (
                        Bytes::from_static(b"i"),
                        Bytes::from(vec![0xff, 0, (i % 251) as u8]),
                    ),
                ],
            )
        })
        .collect()
}

/// Three writers race on every batch of job `a` (same expected cursor), while job `b` writes its
/// own batches into the same target and so keeps changing the shared cursor hash. Each batch of
/// either job must land exactly once and in order.
async fn race(writers: [Hot; 3], target: &str, ids: IdMode) {
    let writers: Vec<Hot> = writers.into();
    let noise = writers[0].clone();
    let b_target = target.to_string();
    // Job `b`, in new-id mode (original ids of two jobs cannot interleave in one stream).
    let job_b = tokio::spawn(async move {
        let mut cursor = None;
        for b in 0..BATCHES {
            let entries = batch_entries(b);
            let write = noise
                .write_replay_batch(&ReplayBatch {
                    target: &b_target,
                    job: "b",
                    expected: cursor,
                    entries: &entries,
                    ids: IdMode::New,
                    origin: Some(("job", "b/")),
                    through: None,
                })
                .await
                .expect("job b writes");
            assert!(matches!(write, ReplayWrite::Written { .. }), "{write:?}");
            cursor = Some(entries[entries.len() - 1].id);
        }
    });
    let mut cursor = None;
    for b in 0..BATCHES {
        let entries = batch_entries(b);
        let attempts = writers.iter().cloned().map(|hot| {
            let (entries, target) = (entries.clone(), target.to_string());
            tokio::spawn(async move {
                hot.write_replay_batch(&ReplayBatch {
                    target: &target,
                    job: "a",
                    expected: cursor,
                    entries: &entries,
                    ids,
                    origin: Some(("job", "a/")),
                    through: None,
                })
                .await
                .expect("job a writes")
            })
        });
        let outcomes: Vec<ReplayWrite> = futures::future::join_all(attempts)
            .await
            .into_iter()
            .map(|r| r.expect("task"))
            .collect();
        let last = entries[entries.len() - 1].id;
        let won = outcomes
            .iter()
            .filter(|o| matches!(o, ReplayWrite::Written { total } if *total == (b + 1) * PER_BATCH))
            .count();
        assert_eq!(won, 1, "batch {b}: exactly one writer wins: {outcomes:?}");
        for o in &outcomes {
            assert!(
                matches!(o, ReplayWrite::Written { .. })
                    || matches!(o, ReplayWrite::CursorMoved { cursor, total } if *cursor == Some(last) && *total == (b + 1) * PER_BATCH),
                "batch {b}: a loser sees the winner's cursor: {o:?}"
            );
        }
        cursor = Some(last);
    }
    job_b.await.expect("job b");
}

/// What the target holds for `job`, as (source id, fields without the origin field).
fn written(all: &[Entry], job: &str) -> Vec<(String, Vec<(Bytes, Bytes)>)> {
    all.iter()
        .filter_map(|e| {
            let origin = e.first_value(b"job")?;
            let source = std::str::from_utf8(origin)
                .ok()?
                .strip_prefix(&format!("{job}/"))?
                .to_string();
            let fields = e
                .fields
                .iter()
                .filter(|(n, _)| n.as_ref() != b"job")
                .cloned()
                .collect();
            Some((source, fields))
        })
        .collect()
}

fn expected() -> Vec<(String, Vec<(Bytes, Bytes)>)> {
    (0..BATCHES)
        .flat_map(batch_entries)
        .map(|e| (e.id.to_string(), e.fields))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_write_each_batch_once_on_a_single_server() {
    let redis = RedisServer::start();
    let writers = [redis.hot().await, redis.hot().await, redis.hot().await];
    race(writers, "restored", IdMode::New).await;
    let all = xrange_all(&mut redis.con(), "restored");
    assert_eq!(all.len() as u64, 2 * BATCHES * PER_BATCH);
    assert_eq!(written(&all, "a"), expected());
    assert_eq!(written(&all, "b"), expected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_write_each_batch_once_on_a_cluster() {
    let cluster = tokio::task::spawn_blocking(RedisCluster::start)
        .await
        .expect("cluster");
    let url = cluster.url();
    let writers = [
        connect(url.clone()).await,
        connect(url.clone()).await,
        connect(url).await,
    ];
    assert!(writers[0].is_cluster());
    race(writers, "restored{x}", IdMode::New).await;
    let all = xrange_all(&mut cluster.con(), "restored{x}");
    assert_eq!(all.len() as u64, 2 * BATCHES * PER_BATCH);
    assert_eq!(written(&all, "a"), expected());
    assert_eq!(written(&all, "b"), expected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn original_ids_refusals_write_nothing_and_wide_entries_pass() {
    let redis = RedisServer::start();
    let hot = redis.hot().await;
    let mut con = redis.con();
    let write = |target: &'static str, entries: Vec<Entry>, expected: Option<StreamId>| {
        let hot = hot.clone();
        async move {
            hot.write_replay_batch(&ReplayBatch {
                target,
                job: "j",
                expected,
                entries: &entries,
                ids: IdMode::Original,
                origin: None,
                through: None,
            })
            .await
        }
    };
    // A target that is not a stream: an error naming it, nothing written, no cursor.
    redis::cmd("HSET")
        .arg("hashy")
        .arg("a")
        .arg("1")
        .query::<()>(&mut con)
        .expect("HSET");
    let err = write("hashy", batch_entries(0), None)
        .await
        .expect_err("not a stream");
    assert!(format!("{err:?}").contains("not a stream"), "{err:?}");
    assert_eq!(hot.replay_cursor("hashy", "j").await.expect("cursor"), (None, 0));

    // Original ids that do not ascend past the target: a conflict, nothing written.
    redis::cmd("XADD")
        .arg("taken")
        .arg("5000-0")
        .arg("x")
        .arg("1")
        .query::<()>(&mut con)
        .expect("XADD");
    let outcome = write("taken", batch_entries(0), None).await.expect("write");
    assert_eq!(
        outcome,
        ReplayWrite::IdConflict {
            target_last: StreamId::new(5000, 0)
        }
    );
    assert_eq!(xrange_all(&mut con, "taken").len(), 1);
    assert_eq!(hot.replay_cursor("taken", "j").await.expect("cursor"), (None, 0));

    // An entry with more fields than a Lua call can take is written whole, in order.
    let wide: Vec<(Bytes, Bytes)> = (0..5_000)
        .map(|i| {
            (
                Bytes::from(format!("f{}", i % 7)),
                Bytes::from(vec![(i % 256) as u8; i % 5]),
            )
        })
        .collect();
    let entry = Entry::new(StreamId::new(7, 1), wide);
    let outcome = write("wide", vec![entry.clone()], None).await.expect("write");
    assert_eq!(outcome, ReplayWrite::Written { total: 1 });
    assert_eq!(xrange_all(&mut con, "wide"), vec![entry]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_direct_connections_authenticate_and_select_the_database() {
    let redis = RedisServer::start();
    let mut con = redis.con();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("s3cret")
        .query::<()>(&mut con)
        .expect("CONFIG SET");
    let url = redis.url().replace("redis://", "redis://:s3cret@") + "/3";
    let hot = connect(url.clone()).await;
    let mut db3 = redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .expect("connect db 3");
    redis::cmd("XADD")
        .arg("src")
        .arg("1-1")
        .arg("a")
        .arg("b")
        .query::<()>(&mut db3)
        .expect("XADD");
    // The read transaction sees database 3.
    let batch = hot
        .read_after("src", StreamId::MIN, None, 10)
        .await
        .expect("read");
    assert_eq!(batch.entries.len(), 1);
    // And the replay transaction writes there.
    let entries = batch.entries.to_entries();
    let outcome = hot
        .write_replay_batch(&ReplayBatch {
            target: "dst",
            job: "j",
            expected: None,
            entries: &entries,
            ids: IdMode::Original,
            origin: None,
            through: None,
        })
        .await
        .expect("write");
    assert_eq!(outcome, ReplayWrite::Written { total: 1 });
    assert_eq!(xrange_all(&mut db3, "dst"), entries);
}
