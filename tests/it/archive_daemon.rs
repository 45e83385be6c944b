//! The `streamtier archive` daemon as a real process: discovery, `flush_after`, and two daemons
//! sharing partitions through leases.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use streamtier_schemas::{layout, StreamId};

use crate::harness::daemon::{archived_at_least, ms, Setup};
use crate::harness::redis::RedisServer;
use crate::harness::stream::assert_exactly_once;
use crate::harness::stream::{archived_entries, gap_records, object_keys, xadd, xrange_all};
use crate::wait_until;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_archives_every_stream_key_once_and_skips_internal_keys() {
    let redis = RedisServer::start();
    // No [[topics]]: discovery, with the default retention (nothing is trimmed here).
    let archive = "flush_after = \"200ms\"\npoll_interval = \"50ms\"\ndiscover_interval = \"200ms\"";
    let setup = Setup::new(&redis, archive, "");
    let store = &setup.store;
    let mut con = redis.con();
    for i in 0..5u64 {
        let i = i.to_string();
        for s in ["orders:0", "orders:1", "events.3"] {
            xadd(&mut con, s, "*", &[(b"i", i.as_bytes()), (b"s", s.as_bytes())]);
        }
        // Binary values and a repeated field name must survive too.
        xadd(
            &mut con,
            "single",
            "*",
            &[(b"k", i.as_bytes()), (b"k", b"\xff\x00")],
        );
    }
    // Internal keys (skipped by prefix) and a key that is not a stream.
    xadd(&mut con, "streamtier:chain:{x}", "*", &[(b"a", b"1")]);
    xadd(&mut con, "__lock:app", "*", &[(b"a", b"1")]);
    let _: () = redis::cmd("SET")
        .arg("orders:9")
        .arg("x")
        .query(&mut con)
        .expect("SET");

    let mut daemon = setup.daemon("daemon");
    wait_until!(
        "a first object",
        30,
        [daemon],
        archived_at_least(store, &[("orders", 0, 1)]).await
    );
    // The first discovery is over: only a later scan can find this stream.
    xadd(&mut con, "late:0", "*", &[(b"late", b"1")]);
    xadd(&mut con, "late:0", "*", &[(b"late", b"2")]);

    // partition::split_partition: `<topic><sep><n>` is partition n (`events.3` is events/3); a
    // key without a numeric suffix is partition 0 of the topic named by the whole key.
    let expected = [
        ("events", 3, "events.3"),
        ("late", 0, "late:0"),
        ("orders", 0, "orders:0"),
        ("orders", 1, "orders:1"),
        ("single", 0, "single"),
    ];
    let want: Vec<_> = expected
        .iter()
        .map(|(t, p, s)| (*t, *p, xrange_all(&mut con, s).len()))
        .collect();
    wait_until!(
        "every stream archived",
        30,
        [daemon],
        archived_at_least(store, &want).await
    );
    let status = daemon.terminate().await;
    assert!(status.success(), "daemon exited with {status}:\n{}", daemon.log());

    for (topic, p, stream) in expected {
        // The default retention keeps everything in Redis: the archive must equal the stream.
        let source = xrange_all(&mut con, stream);
        assert!(
            !source.is_empty(),
            "{stream} was trimmed despite the default retention"
        );
        assert_eq!(
            archived_entries(store, topic, p).await,
            source,
            "{stream} as {topic}/{p}"
        );
    }
    // Nothing else at all: no object for the internal keys or `orders:9`, no gap record.
    let mut slots = BTreeSet::new();
    for o in store.list("", None, None).await.expect("list store") {
        let key = layout::parse_object_key(&o.key).unwrap_or_else(|| panic!("unexpected `{}`", o.key));
        slots.insert((key.topic, key.partition));
    }
    let want: BTreeSet<(String, u32)> = expected.iter().map(|(t, p, _)| (t.to_string(), *p)).collect();
    assert_eq!(slots, want, "topics and partitions in the archive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_are_archived_once_their_oldest_is_flush_after_old() {
    const FLUSH_MS: u64 = 1000;
    // For clock granularity (ms ids, coarse file times), not scheduling: both ends of each
    // comparison come from the same machine's clock.
    const SLACK_MS: u64 = 250;
    let redis = RedisServer::start();
    let setup = Setup::new(
        &redis,
        &format!("flush_after = \"{FLUSH_MS}ms\"\nmax_object_entries = 1000000\npoll_interval = \"50ms\""),
        "[[topics]]\nname = \"flush\"\nstreams = \"flush:{partition}\"\nretain_entries = 0\nretain_for = \"0s\"",
    );
    let store = &setup.store;
    let mut daemon = setup.daemon("daemon");
    // The daemon is looking at the partition once it holds the partition's lease.
    let lease = streamtier_tiers::hot::lease_key("flush:0");
    let held = || {
        redis::cmd("EXISTS")
            .arg(&lease)
            .query::<bool>(&mut redis.con())
            .expect("EXISTS")
    };
    wait_until!("the partition lease", 30, [daemon], held());

    let mut con = redis.con();
    let first = xadd(&mut con, "flush:0", "*", &[(b"i", b"0")]);
    xadd(&mut con, "flush:0", "*", &[(b"i", b"1")]);
    xadd(&mut con, "flush:0", "*", &[(b"i", b"2")]);
    let produced = xrange_all(&mut con, "flush:0");
    // Upper bound: everything is archived at most flush_after after it was added (plus a
    // generous allowance for a slow machine).
    let limit = FLUSH_MS / 1000 + 10;
    wait_until!(
        "an object",
        limit,
        [daemon],
        !object_keys(store, "flush", 0).await.is_empty()
    );
    // Lower bound: the object exists now, and `Mode::Daemon` writes an object only once its
    // first entry is flush_after old (`PartitionWorker::due`).
    let seen_ms = ms(SystemTime::now()).saturating_sub(first.ms);
    assert!(
        seen_ms + SLACK_MS >= FLUSH_MS,
        "an object after {seen_ms} ms, before flush_after"
    );
    let n = produced.len();
    let trimmed = || xrange_all(&mut redis.con(), "flush:0").is_empty();
    let done = || async { trimmed() && archived_at_least(store, &[("flush", 0, n)]).await };
    wait_until!("all archived and trimmed", limit, [daemon], done().await);
    assert_eq!(archived_entries(store, "flush", 0).await, produced);
    for key in object_keys(store, "flush", 0).await {
        // Each object was written after its own first entry became due.
        let first_id = layout::parse_object_key(&key).expect("object key").first_id;
        let modified = std::fs::metadata(setup.archive.join(&key)).and_then(|m| m.modified());
        let written_ms = ms(modified.expect("object file time"));
        assert!(
            written_ms + SLACK_MS >= first_id.ms + FLUSH_MS,
            "`{key}` was written {} ms after its first entry, before flush_after",
            written_ms.saturating_sub(first_id.ms)
        );
    }
    let status = daemon.terminate().await;
    assert!(status.success(), "daemon exited with {status}:\n{}", daemon.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_share_partitions_through_leases_and_hand_over_on_sigterm() {
    const PARTITIONS: u32 = 4;
    let redis = RedisServer::start();
    let setup = Setup::new(
        &redis,
        "flush_after = \"100ms\"\nmax_object_entries = 50\npoll_interval = \"50ms\"\nlease_ttl = \"2s\"",
        &format!(
            "[[topics]]\nname = \"shared\"\nstreams = \"shared:{{partition}}\"\npartitions = {PARTITIONS}\n\
             retain_entries = 0\nretain_for = \"0s\""
        ),
    );
    let store = &setup.store;
    let streams: Vec<String> = (0..PARTITIONS).map(|p| format!("shared:{p}")).collect();
    let (mut a, mut b) = (setup.daemon("a"), setup.daemon("b"));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (url, streams, stop) = (redis.url(), streams.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
            let mut produced = vec![BTreeSet::new(); streams.len()];
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let p = (i % streams.len() as u64) as usize;
                let v = i.to_string();
                produced[p].insert(xadd(&mut con, &streams[p], "*", &[(b"i", v.as_bytes())]));
                i += 1;
                if i % 20 == 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            produced
        })
    };
    // Both daemons run beside the producer for a while (the workload, not an assertion).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let some: Vec<_> = (0..PARTITIONS).map(|p| ("shared", p, 1)).collect();
    wait_until!(
        "objects in every partition",
        30,
        [a, b],
        archived_at_least(store, &some).await
    );
    // One daemon stops while the producer goes on: the other must take its partitions over.
    let status = a.terminate().await;
    assert!(status.success(), "daemon a exited with {status}:\n{}", a.log());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut produced = producer.join().expect("producer");
    // Entries added after `a` exited: only `b` can archive these.
    let mut con = redis.con();
    for (p, stream) in streams.iter().enumerate() {
        for i in 0..10u64 {
            let v = i.to_string();
            produced[p].insert(xadd(&mut con, stream, "*", &[(b"after", v.as_bytes())]));
        }
    }
    let all: Vec<_> = (0..PARTITIONS)
        .map(|p| ("shared", p, produced[p as usize].len()))
        .collect();
    wait_until!(
        "everything archived",
        60,
        [b],
        archived_at_least(store, &all).await
    );
    let status = b.terminate().await;
    assert!(status.success(), "daemon b exited with {status}:\n{}", b.log());

    let (mut stored, mut last_objects) = (BTreeSet::new(), Vec::new());
    for (p, stream) in (0..PARTITIONS).zip(&streams) {
        let wanted = &produced[p as usize];
        assert_exactly_once(&redis, store, "shared", p, stream, wanted).await;
        // Contiguous: the chain holds exactly the produced ids, in order; nothing vanished.
        let ids: Vec<StreamId> = archived_entries(store, "shared", p)
            .await
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(
            ids,
            wanted.iter().copied().collect::<Vec<_>>(),
            "chain of {stream}"
        );
        assert!(
            gap_records(store, "shared", p).await.is_empty(),
            "gaps in {stream}"
        );
        assert!(xrange_all(&mut con, stream).is_empty(), "{stream} not trimmed");
        let keys = object_keys(store, "shared", p).await;
        last_objects.push(keys.last().cloned().expect("objects"));
        stored.extend(keys);
    }
    // Each object was created by exactly one daemon (create-if-absent; the other adopts), and
    // the last object of each partition holds entries added after `a` exited.
    let (by_a, by_b) = (a.created_objects(), b.created_objects());
    let twice: Vec<_> = by_a.intersection(&by_b).collect();
    assert!(twice.is_empty(), "objects created twice: {twice:?}");
    let logged: BTreeSet<String> = by_a.union(&by_b).cloned().collect();
    assert_eq!(
        logged, stored,
        "objects in the store vs. objects the daemons logged"
    );
    for key in &last_objects {
        assert!(
            by_b.contains(key),
            "`{key}` holds entries added after `a` exited, but not by `b`"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovered_key_never_takes_over_another_streams_archive() {
    let redis = RedisServer::start();
    let archive = "flush_after = \"100ms\"\npoll_interval = \"50ms\"\ndiscover_interval = \"200ms\"";
    let setup = Setup::new(&redis, archive, "");
    let store = &setup.store;
    let mut con = redis.con();
    for i in 0..3u64 {
        xadd(&mut con, "orders", "*", &[(b"plain", i.to_string().as_bytes())]);
    }
    let mut daemon = setup.daemon("daemon");
    wait_until!(
        "orders archived",
        30,
        [daemon],
        archived_at_least(store, &[("orders", 0, 3)]).await
    );
    // `orders:0` would be orders/0 too: the plain key, whose archive it is, keeps the slot.
    xadd(&mut con, "orders:0", "*", &[(b"numbered", b"0")]);
    for i in 3..6u64 {
        xadd(&mut con, "orders", "*", &[(b"plain", i.to_string().as_bytes())]);
    }
    wait_until!(
        "later entries archived",
        30,
        [daemon],
        archived_at_least(store, &[("orders", 0, 6)]).await
    );
    let archived = archived_entries(store, "orders", 0).await;
    let names: Vec<&[u8]> = archived.iter().map(|e| e.fields[0].0.as_ref()).collect();
    assert_eq!(
        names,
        vec![b"plain".as_slice(); 6],
        "entries of two streams mixed in one archive"
    );
    assert_eq!(daemon.terminate().await.code(), Some(0));
    let log = daemon.log();
    assert!(
        log.lines()
            .any(|l| l.contains("stream key skipped by discovery") && l.contains("stream=orders:0")),
        "the numbered key should be reported as skipped:\n{log}"
    );

    // A fresh process prefers numbered keys, but the archive names its stream: the numbered
    // key's worker hands the slot back, and the plain key goes on being archived.
    xadd(&mut con, "orders", "*", &[(b"plain", b"6")]);
    let mut daemon = setup.daemon("restarted");
    wait_until!(
        "restart archives orders",
        30,
        [daemon],
        archived_at_least(store, &[("orders", 0, 7)]).await
    );
    let archived = archived_entries(store, "orders", 0).await;
    assert!(archived.iter().all(|e| e.fields[0].0.as_ref() == b"plain"));
    assert_eq!(daemon.terminate().await.code(), Some(0));
    assert!(
        daemon.log().contains("belongs to another stream key"),
        "{}",
        daemon.log()
    );
}
