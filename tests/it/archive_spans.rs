//! Daily objects (`object_span = "1d"`): one object per partition-day, keys in ID order when a
//! topic's span changes, replays that seek into the middle of a day, compaction of a day.

use std::time::Duration;

use streamtier_archiver::compact::{compact_partition, CompactOptions};
use streamtier_archiver::settings::Retention;
use streamtier_archiver::{Mode, PartitionWorker};
use streamtier_replayer::{Ids, JobState};
use streamtier_schemas::{layout, Entry, ObjectSpan, StreamId};
use tokio_util::sync::CancellationToken;

use crate::harness::archiver::{context, keep_nothing, partition, system_context, test_settings, TestClock};
use crate::harness::replay::{request, Fixture};
use crate::harness::stream::{add_twice_named, archived_entries, object_keys, xadd, xrange_all};

const H: u64 = 3_600_000;
const D: u64 = 24 * H;
/// 2025-03-01T00:00:00Z
const BASE: u64 = 1_740_787_200_000;

/// Adds three entries in each of the given hours of day `day`, with binary values and a
/// repeated name, and returns them.
fn produce(con: &mut redis::Connection, day: u64, hours: &[u64]) -> Vec<Entry> {
    let mut out = Vec::new();
    for &h in hours {
        for k in 0..3u64 {
            let id = StreamId::new(BASE + day * D + h * H + k * 1_000, k);
            out.push(add_twice_named(con, "orders:0", id, b"k", &[0xfe, k as u8]));
        }
    }
    out
}

/// Archives orders/0 with `span` in `mode`, the clock at `now_ms`, keeping nothing in Redis.
async fn archive(f: &Fixture, span: ObjectSpan, mode: Mode, now_ms: u64) {
    let ctx = context(
        f.hot.clone(),
        f.store.clone(),
        &test_settings(),
        TestClock::at(now_ms),
        "t",
    );
    let retention = Retention {
        retain_entries: 0,
        retain_for: Duration::ZERO,
        retain_max_entries: None,
    };
    let mut p = partition("orders", 0, "orders:0", retention);
    p.span = span;
    PartitionWorker::new(ctx, p)
        .pass(mode, None, &CancellationToken::new())
        .await
        .expect("archive");
}

/// The partition's objects in listing order: (first id, span).
async fn objects(f: &Fixture) -> Vec<(StreamId, ObjectSpan)> {
    object_keys(&f.store, "orders", 0)
        .await
        .iter()
        .map(|k| {
            let k = layout::parse_object_key(k).expect("object key");
            (k.first_id, k.span)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_topic_makes_one_object_per_day_and_replays_from_the_middle_of_one() {
    let f = Fixture::new().await;
    let mut con = f.redis.con();
    let hours = [0, 3, 6, 9, 12, 15];
    let mut produced: Vec<Entry> = (0..4).flat_map(|day| produce(&mut con, day, &hours)).collect();
    assert_eq!(xrange_all(&mut con, "orders:0"), produced);

    // Day 3 is still open at 20:00 (no later entry, the clock inside it): three objects.
    archive(&f, ObjectSpan::Day, Mode::Once, BASE + 3 * D + 20 * H).await;
    let days: Vec<(StreamId, ObjectSpan)> = (0..3)
        .map(|d| (StreamId::new(BASE + d * D, 0), ObjectSpan::Day))
        .collect();
    assert_eq!(objects(&f).await, days, "one daily object per closed day");
    assert_eq!(xrange_all(&mut con, "orders:0").len(), 18, "day 3 waits in Redis");

    // Daily to hourly takes effect at once; back to daily only on the next day, so that
    // keys keep sorting in id order.
    archive(&f, ObjectSpan::Day, Mode::Flush, BASE + 3 * D + 20 * H).await;
    produced.extend(produce(&mut con, 3, &[20]));
    archive(&f, ObjectSpan::Hour, Mode::Flush, BASE + 3 * D + 21 * H).await;
    produced.extend(produce(&mut con, 3, &[21]));
    archive(&f, ObjectSpan::Day, Mode::Flush, BASE + 3 * D + 22 * H).await;
    produced.extend(produce(&mut con, 4, &[1, 2]));
    archive(&f, ObjectSpan::Day, Mode::Flush, BASE + 4 * D + 3 * H).await;
    let mut expected = days;
    expected.extend([
        (StreamId::new(BASE + 3 * D, 0), ObjectSpan::Day),
        (StreamId::new(BASE + 3 * D + 20 * H, 0), ObjectSpan::Hour),
        (StreamId::new(BASE + 3 * D + 21 * H, 0), ObjectSpan::Hour),
        (StreamId::new(BASE + 4 * D + H, 0), ObjectSpan::Day),
    ]);
    assert_eq!(objects(&f).await, expected);
    assert_eq!(archived_entries(&f.store, "orders", 0).await, produced);
    assert!(xrange_all(&mut con, "orders:0").is_empty());

    // Everything back, in order, each entry once.
    f.restore_partition_0(&produced).await;

    // From 03:00 on day 1: the seek must not skip day 1's object, which starts at 00:00.
    let replayer = f.replayer(1_000_000);
    let mut req = request("mid:{partition}", Ids::Original);
    req.from = Some("2025-03-02T03:00:00Z".into());
    let record = f.job(&replayer, req, 1).await.expect("job");
    let done = replayer.run(record, |_| {}).await.expect("run");
    assert_eq!(done.state, JobState::Succeeded, "{:?}", done.error);
    let from = StreamId::new(BASE + D + 3 * H, 0);
    let want: Vec<Entry> = produced.iter().filter(|e| e.id >= from).cloned().collect();
    assert_eq!(want.len(), 72 - 18 - 3 + 12);
    assert_eq!(xrange_all(&mut con, "mid:0"), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_from_an_hour_opens_no_object_of_the_hours_before() {
    let f = Fixture::new().await;
    let mut con = f.redis.con();
    // Entries from half a second into each hour: the next object's first id then says
    // nothing about where the one before ends.
    for h in 0..6 {
        for k in 0..3u64 {
            let id = StreamId::new(BASE + h * H + 500 + k * 1_000, 0);
            xadd(&mut con, "orders:0", &id.to_string(), &[(b"k", b"v")]);
        }
    }
    let produced = xrange_all(&mut con, "orders:0");
    archive(&f, ObjectSpan::Hour, Mode::Flush, BASE + 6 * H).await;
    assert_eq!(objects(&f).await.len(), 6);
    let replayer = f.replayer(1_000_000);
    let mut req = request("from3:{partition}", Ids::Original);
    req.from = Some("2025-03-01T03:00:00Z".into());
    let done = replayer
        .run(f.job(&replayer, req, 1).await.expect("job"), |_| {})
        .await
        .expect("run");
    assert_eq!(done.state, JobState::Succeeded, "{:?}", done.error);
    let want: Vec<Entry> = produced.into_iter().skip(9).collect();
    assert_eq!(xrange_all(&mut con, "from3:0"), want);
    // Listings start at the day; the hours before 03:00 are skipped by their keys.
    assert_eq!(done.objects_read, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_merges_the_objects_of_a_closed_day_into_one() {
    let f = Fixture::new().await;
    let mut con = f.redis.con();
    let mut produced = Vec::new();
    // Three days, three `--flush` passes a day: three daily objects each.
    for day in 0..3 {
        for hours in [[1, 2], [5, 6], [9, 10]] {
            produced.extend(produce(&mut con, day, &hours));
            archive(&f, ObjectSpan::Day, Mode::Flush, BASE + day * D + 12 * H).await;
        }
    }
    assert_eq!(objects(&f).await.len(), 9);
    let ctx = system_context(f.hot.clone(), f.store.clone(), &test_settings(), "compactor");
    let p = partition("orders", 0, "orders:0", keep_nothing());
    let stats = compact_partition(&ctx, &p, &CompactOptions::default(), &CancellationToken::new())
        .await
        .expect("compact");
    // Days 0 and 1 are merged (18 entries each, within max_object_entries = 50); day 2 holds
    // the chain end.
    assert_eq!((stats.written, stats.merged, stats.entries), (2, 6, 36));
    let keys = object_keys(&f.store, "orders", 0).await;
    let merged: Vec<_> = keys
        .iter()
        .filter_map(|k| layout::parse_object_key(k))
        .filter(|k| k.merged_last.is_some())
        .collect();
    assert_eq!(merged.len(), 2);
    assert!(merged.iter().all(|k| k.span == ObjectSpan::Day), "{keys:?}");
    assert_eq!(keys.len(), 2 + 3);
    assert_eq!(archived_entries(&f.store, "orders", 0).await, produced);
    f.restore_partition_0(&produced).await;
}
