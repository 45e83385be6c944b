//! The replay engine in-process against a real Redis and store: seamless ranges, both id modes,
//! damaged objects, interruption and resume, cancel, conflicts, pacing.

use std::time::{Duration, Instant};

use bytes::Bytes;
use streamtier_replayer::{IdRange, Ids, JobState};
use streamtier_schemas::{Entry, StreamId};
use streamtier_tiers::store::Store;

use crate::harness::replay::{request, Fixture};
use crate::harness::s3::{Fault, S3Sandbox};
use crate::harness::stream::{object_keys, xadd, xrange_all};

/// 2025-11-01T00:00:00Z
const T0: u64 = 1_761_955_200_000;

/// Entries one second apart from `T0 + first` seconds, with binary values and repeated names.
fn produce(con: &mut redis::Connection, stream: &str, first: u64, n: u64) -> Vec<Entry> {
    for i in first..first + n {
        let id = format!("{}-{}", T0 + i * 1000, i % 3);
        let i_text = i.to_string();
        xadd(
            con,
            stream,
            &id,
            &[
                (b"i", i_text.as_bytes()),
                (b"bin", &[0xff, 0, (i % 256) as u8]),
                (b"i", b"again"),
            ],
        );
    }
    xrange_all(con, stream)
        .into_iter()
        .filter(|e| e.id >= StreamId::new(T0 + first * 1000, 0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn original_ids_restore_an_identical_stream_across_the_seam() {
    let f = Fixture::new().await;
    let mut con = f.redis.con();
    // Entries across an hour boundary: several objects, cut at the hour; 40 archived entries
    // stay in Redis and 60 more were never archived.
    let mut produced = produce(&mut con, "orders:0", 3500, 300);
    f.archive(0, "orders:0", 40).await;
    assert_eq!(xrange_all(&mut con, "orders:0").len(), 40);
    produced.extend(produce(&mut con, "orders:0", 3800, 60));
    assert_eq!(produced.len(), 360);

    let done = f.restore_partition_0(&produced).await;
    assert_eq!(done.entries_replayed, 360);
    assert_eq!(
        done.partitions[0].last_source_id,
        Some(produced[359].id.to_string())
    );
    assert!(done.objects_read >= 6, "read {} objects", done.objects_read);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_ids_replay_a_time_range_with_the_origin_field() {
    let f = Fixture::new().await;
    let mut con = f.redis.con();
    let mut produced = produce(&mut con, "orders:0", 0, 200);
    f.archive(0, "orders:0", 10).await;
    produced.extend(produce(&mut con, "orders:0", 200, 100));
    // [T0+150s, T0+250s): half archived, half only in Redis.
    let mut req = request("copy:{stream}", Ids::New);
    req.from = Some("2025-11-01T00:02:30Z".into());
    req.to = Some("2025-11-01T00:04:10Z".into());
    req.origin_field = Some("_origin".into());
    let replayer = f.replayer(1_000_000);
    let record = f.job(&replayer, req, 1).await.expect("job");
    let done = replayer.run(record, |_| {}).await.expect("run");
    assert_eq!(done.state, JobState::Succeeded, "{:?}", done.error);

    let expected: Vec<&Entry> = produced
        .iter()
        .filter(|e| e.id >= StreamId::new(T0 + 150_000, 0) && e.id < StreamId::new(T0 + 250_000, 0))
        .collect();
    assert_eq!(expected.len(), 100);
    let copied = xrange_all(&mut con, "copy:orders:0");
    assert_eq!(copied.len(), expected.len());
    for (got, want) in copied.iter().zip(&expected) {
        let mut fields = want.fields.clone();
        fields.push((
            Bytes::from_static(b"_origin"),
            Bytes::from(format!("orders:0/{}", want.id)),
        ));
        assert_eq!(got.fields, fields);
        assert!(
            got.id > StreamId::new(T0 + 1_000_000, 0),
            "new ids come from the clock"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_object_fails_the_job_naming_it_and_nothing_after_is_written() {
    let f = Fixture::new().await;
    let mut con = f.redis.con();
    let produced = produce(&mut con, "orders:0", 0, 200);
    f.archive(0, "orders:0", 0).await;
    let keys = object_keys(&f.store, "orders", 0).await;
    assert_eq!(keys.len(), 4);
    // Damage the third object's column data (every 7th byte of its first 60 %).
    let path = f.root.join(&keys[2]);
    let mut bytes = std::fs::read(&path).expect("read object");
    let end = bytes.len() * 6 / 10;
    for b in bytes[4..end].iter_mut().step_by(7) {
        *b ^= 0x5a;
    }
    std::fs::write(&path, bytes).expect("write object");

    let replayer = f.replayer(1_000_000);
    let record = f
        .job(&replayer, request("r:{partition}", Ids::Original), 1)
        .await
        .expect("job");
    let done = replayer.run(record, |_| {}).await.expect("run");
    assert_eq!(done.state, JobState::Failed);
    let error = done.error.expect("error");
    assert!(error.contains(&keys[2]), "{error}");
    let written = xrange_all(&mut con, "r:0");
    assert!(
        error.contains(&format!(
            "last entry written: {}",
            written.last().map_or("none".into(), |e| e.id.to_string())
        )),
        "{error}"
    );
    // Only whole blocks before the damage, in order, and nothing from or after the bad object.
    assert_eq!(written[..], produced[..100]);

    // A missing object: the chain's entries-added offsets jump and no gap record explains it.
    // The job fails at the object after the hole, having written exactly what came before.
    let produced = produce(&mut con, "orders:1", 0, 200);
    f.archive(1, "orders:1", 0).await;
    let keys = object_keys(&f.store, "orders", 1).await;
    std::fs::remove_file(f.root.join(&keys[1])).expect("remove");
    let mut req = request("r2:{partition}", Ids::Original);
    req.partitions = Some(vec![1]);
    let record = f.job(&replayer, req, 2).await.expect("job");
    let done = replayer.run(record, |_| {}).await.expect("run");
    assert_eq!(done.state, JobState::Failed);
    let error = done.error.unwrap_or_default();
    assert!(error.contains(&keys[2]) && error.contains("hole"), "{error}");
    assert_eq!(xrange_all(&mut con, "r2:1")[..], produced[..50]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_job_resumes_and_writes_every_entry_once() {
    let f = Fixture::new().await;
    let mut con = f.redis.con();
    let mut produced = Vec::new();
    for p in 0..2 {
        produced.push(produce(&mut con, &format!("orders:{p}"), 0, 400));
        f.archive(p, &format!("orders:{p}"), 100).await;
    }
    for ids in [Ids::New, Ids::Original] {
        let target = format!("{ids:?}:{{partition}}");
        let replayer = f.replayer(100);
        let record = f.job(&replayer, request(&target, ids), 2).await.expect("job");
        let id = record.id.clone();
        // Stop the runner at an arbitrary await point three times, as a crash would.
        for stop_after in [300u64, 450, 200] {
            let (r, rec) = (replayer.clone(), replayer.jobs().get(&id).await.expect("record"));
            let task = tokio::spawn(async move { r.run(rec, |_| {}).await });
            tokio::time::sleep(Duration::from_millis(stop_after)).await;
            task.abort();
            let _ = task.await;
        }
        let mut record = replayer.jobs().get(&id).await.expect("record");
        assert!(
            record.entries_replayed < 800,
            "the job finished before it was interrupted"
        );
        record.rate_limit = 1_000_000;
        let done = f.replayer(1_000_000).run(record, |_| {}).await.expect("resume");
        assert_eq!(done.state, JobState::Succeeded, "{:?}", done.error);
        for (p, source) in produced.iter().enumerate() {
            let written = xrange_all(&mut con, &target.replace("{partition}", &p.to_string()));
            let fields: Vec<_> = written.iter().map(|e| e.fields.clone()).collect();
            let want: Vec<_> = source.iter().map(|e| e.fields.clone()).collect();
            assert_eq!(
                fields.len(),
                want.len(),
                "{ids:?} partition {p}: duplicates or holes"
            );
            assert_eq!(fields, want, "{ids:?} partition {p}");
            if ids == Ids::Original {
                assert_eq!(written, *source);
            }
        }
        assert_eq!(done.entries_replayed, 800);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_conflict_and_pacing() {
    let f = Fixture::new().await;
    let mut con = f.redis.con();
    produce(&mut con, "orders:0", 0, 300);
    f.archive(0, "orders:0", 0).await;

    // Cancel: stops between batches and says so.
    let replayer = f.replayer(50);
    let record = f
        .job(&replayer, request("slow:{partition}", Ids::New), 1)
        .await
        .expect("job");
    let id = record.id.clone();
    let r = replayer.clone();
    let task = tokio::spawn(async move { r.run(record, |_| {}).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    replayer.cancel(&id).await.expect("cancel");
    let done = task.await.expect("join").expect("run");
    assert_eq!(done.state, JobState::Cancelled);
    let written = xrange_all(&mut con, "slow:0").len() as u64;
    assert!(written < 300, "{written}");
    assert_eq!(done.entries_replayed, written);

    // Original ids into a stream that is already ahead: refused before anything is written.
    xadd(
        &mut con,
        "ahead:0",
        &format!("{}-0", T0 + 10_000_000),
        &[(b"x", b"y")],
    );
    let err = f
        .job(&replayer, request("ahead:{partition}", Ids::Original), 1)
        .await
        .unwrap_err();
    assert!(
        matches!(err, streamtier_replayer::Error::Conflict { .. }),
        "{err}"
    );
    assert_eq!(xrange_all(&mut con, "ahead:0").len(), 1);

    // Pacing: 300 entries at 100/s cannot finish in less than about two seconds (the bucket
    // starts with one second's worth).
    let mut req = request("paced:{partition}", Ids::New);
    req.rate_limit = Some(100);
    let replayer = f.replayer(1_000_000);
    let record = f.job(&replayer, req, 1).await.expect("job");
    let start = Instant::now();
    let done = replayer.run(record, |_| {}).await.expect("run");
    assert_eq!(done.state, JobState::Succeeded);
    assert!(
        start.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_from_s3_through_503s_and_timeouts_exactly_once() {
    let s3 = S3Sandbox::start().await;
    let f = Fixture::on_s3(&s3).await;
    let mut con = f.redis.con();
    let mut produced = produce(&mut con, "orders:0", 0, 300);
    f.archive(0, "orders:0", 20).await;
    produced.extend(produce(&mut con, "orders:0", 300, 30));
    // More 503s on one object's reads than the S3 client retries by itself (8 attempts), then
    // a slow answer: the engine retries with backoff and resumes from its cursor. One object,
    // because reads of several run at once and would share the faults out below the client's
    // own retries.
    let listed = f.store.list("", None, None).await.expect("list");
    let object = listed
        .iter()
        .filter_map(|o| o.key.rsplit('/').next())
        .find(|name| name.ends_with(".parquet"))
        .expect("an object")
        .to_owned();
    s3.faults().inject("GET", &object, Fault::Status(503), 40);
    s3.faults()
        .inject("GET", &object, Fault::Delay(Duration::from_secs(3)), 1);
    let replayer = f.replayer(1_000_000);
    let record = f
        .job(&replayer, request("s3r:{partition}", Ids::Original), 1)
        .await
        .expect("job");
    let done = replayer.run(record, |_| {}).await.expect("run");
    assert_eq!(done.state, JobState::Succeeded, "{:?}", done.error);
    assert_eq!(xrange_all(&mut con, "s3r:0"), produced);
    assert!(
        replayer
            .metrics()
            .retries
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0,
        "no retry was needed"
    );
}

/// Writes one object of `ids` (a field each) with the given entries-added offset of its last id.
async fn put_object(store: &Store, ids: &[u64], last_offset: u64) {
    let entries: Vec<Entry> = ids
        .iter()
        .map(|ms| {
            Entry::new(
                StreamId::new(T0 + ms, 0),
                vec![(Bytes::from_static(b"k"), Bytes::from(ms.to_string()))],
            )
        })
        .collect();
    let meta = streamtier_schemas::ObjectMeta {
        topic: "orders".into(),
        partition: 0,
        stream: "orders:0".into(),
        first_id: entries[0].id,
        last_id: entries[entries.len() - 1].id,
        entry_count: entries.len() as u64,
        last_offset: Some(last_offset),
    };
    let body = streamtier_schemas::encode_object(&entries, &meta, &[], &Default::default()).expect("encode");
    let key = streamtier_schemas::layout::object_key("orders", 0, meta.first_id);
    store.put_if_absent(&key, body, &[]).await.expect("put");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_jumps_need_a_gap_record_before_or_inside_the_object() {
    // Object A: ids 1..=3 (offsets 1..=3). Object B: ids 10, 11, 15 with offset 7 at 15: one
    // entry between A and B and two inside B vanished before they were archived.
    let f = Fixture::new().await;
    put_object(&f.store, &[1, 2, 3], 3).await;
    put_object(&f.store, &[10, 11, 15], 7).await;
    let replayer = f.replayer(1_000_000);
    let record = f
        .job(&replayer, request("holed:{partition}", Ids::Original), 1)
        .await
        .expect("job");
    let done = replayer.run(record, |_| {}).await.expect("run");
    assert_eq!(
        done.state,
        JobState::Failed,
        "an unexplained jump is a missing object"
    );
    assert!(done.error.unwrap_or_default().contains("hole"));

    // The archiver records such a gap after the last id it knew exactly; after a concurrent XDEL
    // that id can lie inside the object. Either way the jump is explained.
    let gap = streamtier_schemas::GapRecord {
        topic: "orders".into(),
        partition: 0,
        stream: "orders:0".into(),
        after_id: StreamId::new(T0 + 10, 0),
        before_id: Some(StreamId::new(T0 + 15, 0)),
        count: 3,
        last_offset: 6,
        reason: "deleted".into(),
        detected_at_ms: 0,
    };
    let key = streamtier_schemas::layout::gap_key("orders", 0, gap.after_id);
    f.store
        .put_if_absent(&key, gap.to_json().into(), &[])
        .await
        .expect("put gap");
    let record = f
        .job(&replayer, request("explained:{partition}", Ids::Original), 1)
        .await
        .expect("job");
    let done = replayer.run(record, |_| {}).await.expect("run");
    assert_eq!(done.state, JobState::Succeeded, "{:?}", done.error);
    let ids: Vec<u64> = xrange_all(&mut f.redis.con(), "explained:0")
        .iter()
        .map(|e| e.id.ms - T0)
        .collect();
    assert_eq!(ids, vec![1, 2, 3, 10, 11, 15]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_archived_and_trimmed_while_replaying_are_not_skipped() {
    use streamtier_replayer::source::PartitionSource;
    let f = Fixture::new().await;
    let mut con = f.redis.con();
    let produced = produce(&mut con, "orders:0", 0, 1500);
    // The source finds no archive and starts reading Redis: a first batch of 1,000.
    let mut source = PartitionSource::new(
        f.hot.clone(),
        f.store.clone(),
        "orders",
        0,
        "orders:0",
        IdRange::ALL,
        None,
    );
    let mut read = source.next_batch().await.expect("read").expect("a batch");
    assert_eq!(read.len(), 1000);
    // Meanwhile the archiver archives everything and trims the stream empty.
    f.archive(0, "orders:0", 0).await;
    assert!(xrange_all(&mut con, "orders:0").is_empty());
    while let Some(batch) = source.next_batch().await.expect("read") {
        read.extend(batch);
    }
    assert_eq!(read, produced, "entries skipped or repeated at the seam");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_objects_replay_with_one_read_each_fetched_ahead() {
    let s3 = S3Sandbox::start().await;
    let f = Fixture::on_s3(&s3).await;
    let mut con = f.redis.con();
    // A sparse stream: three entries an hour over 60 hours, one small object per hour.
    let mut produced = Vec::new();
    for hour in 0..60u64 {
        produced.extend(produce(&mut con, "orders:0", hour * 3600, 3));
    }
    f.archive(0, "orders:0", 0).await;
    let objects = object_keys(&f.store, "orders", 0).await.len();
    assert_eq!(objects, 60);
    let before = s3.requests().len();
    let done = f.restore_partition_0(&produced).await;
    let gets = s3.requests()[before..]
        .iter()
        .filter(|(method, path)| method == "GET" && path.contains(".parquet"))
        .count();
    // Each small object is fetched whole in one request, ahead of need (read by footer and
    // pages, each costs two or more).
    assert_eq!(gets, objects, "object reads for {objects} small objects");
    assert_eq!(done.objects_read, 60);
}
