//! Compaction: closed hours of small objects become one object each; the chain end is left to
//! the archiver; replays running at the same time, racing archivers, an interrupted compaction
//! and `kill -9` of `streamtier compact` never lose or duplicate an entry.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use streamtier_archiver::compact::{compact_partition, CompactOptions, CompactStats};
use streamtier_archiver::settings::Topic;
use streamtier_archiver::Source;
use streamtier_replayer::{Ids, JobState};
use streamtier_schemas::{layout, Entry, ObjectSpan, StreamId};
use tokio_util::sync::CancellationToken;

use crate::harness::archiver::{
    binary, keep_nothing, partition, system_context, test_settings, write_config,
};
use crate::harness::replay::{request, Fixture};
use crate::harness::s3::S3Sandbox;
use crate::harness::stream::{add_twice_named, archived_entries, object_keys, xrange_all};

const H: u64 = 3_600_000;
/// 2025-11-01T00:00:00Z
const T0: u64 = 1_761_955_200_000;

/// For each hour, `objects` small objects of `per_object` entries each (one `--flush` pass
/// each), entries with binary values and a repeated name; returns the entries.
async fn fill(f: &Fixture, hours: std::ops::Range<u64>, objects: u64, per_object: u64) -> Vec<Entry> {
    let mut con = f.redis.con();
    let mut out = Vec::new();
    for hour in hours {
        for k in 0..objects {
            for i in 0..per_object {
                let id = StreamId::new(T0 + hour * H + (k * per_object + i) * 1_000, i % 2);
                out.push(add_twice_named(
                    &mut con,
                    "orders:0",
                    id,
                    b"v",
                    &[0xff, (i % 256) as u8, 0],
                ));
            }
            f.archive(0, "orders:0", 0).await;
        }
    }
    out
}

async fn compact(f: &Fixture, opts: CompactOptions) -> CompactStats {
    let ctx = system_context(f.hot.clone(), f.store.clone(), &test_settings(), "compactor");
    compact_partition(
        &ctx,
        &partition("orders", 0, "orders:0", keep_nothing()),
        &opts,
        &CancellationToken::new(),
    )
    .await
    .expect("compact")
}

fn all() -> CompactOptions {
    CompactOptions::default()
}

/// (merged objects, plain objects) of orders/0.
async fn shape(f: &Fixture) -> (usize, usize) {
    let keys = object_keys(&f.store, "orders", 0).await;
    let merged = keys
        .iter()
        .filter(|k| layout::parse_object_key(k).expect("key").merged_last.is_some())
        .count();
    (merged, keys.len() - merged)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_hours_become_one_object_each_and_the_chain_end_is_left_alone() {
    let f = Fixture::new().await;
    let mut produced = fill(&f, 0..4, 5, 10).await;
    assert_eq!(shape(&f).await, (0, 20));

    let dry = compact(
        &f,
        CompactOptions {
            dry_run: true,
            ..all()
        },
    )
    .await;
    assert_eq!((dry.spans, dry.written, dry.merged, dry.entries), (3, 3, 15, 150));
    assert_eq!(shape(&f).await, (0, 20), "a dry run changes nothing");

    let first = compact(
        &f,
        CompactOptions {
            before_ms: Some(T0 + H),
            ..all()
        },
    )
    .await;
    assert_eq!(
        (first.written, first.merged),
        (1, 5),
        "only the hour that ends by --before"
    );
    let rest = compact(&f, all()).await;
    assert_eq!(
        (rest.spans, rest.written, rest.merged, rest.leftovers),
        (2, 2, 10, 0)
    );
    assert!(rest.bytes_after < rest.bytes_before, "{rest:?}");
    // Hour 3 holds the chain end: the archiver may still add to it.
    assert_eq!(shape(&f).await, (3, 5));
    for key in object_keys(&f.store, "orders", 0).await {
        let k = layout::parse_object_key(&key).expect("key");
        if let Some(last) = k.merged_last {
            let hour = (k.first_id.ms - T0) / H;
            assert_eq!(
                (k.first_id, last),
                (
                    produced[hour as usize * 50].id,
                    produced[hour as usize * 50 + 49].id
                )
            );
        }
    }
    assert_eq!(archived_entries(&f.store, "orders", 0).await, produced);
    assert_eq!(
        compact(&f, all()).await,
        CompactStats::default(),
        "nothing left to merge"
    );

    // The archiver goes on from the chain end; everything replays exactly once.
    produced.extend(fill(&f, 4..5, 2, 10).await);
    assert_eq!(archived_entries(&f.store, "orders", 0).await, produced);
    f.restore_partition_0(&produced).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_and_a_racing_archiver_see_every_entry_once_while_compaction_runs() {
    let s3 = S3Sandbox::start().await;
    for (ids, on_s3) in [(Ids::Original, false), (Ids::New, false), (Ids::Original, true)] {
        let f = if on_s3 {
            Fixture::on_s3(&s3).await
        } else {
            Fixture::new().await
        };
        let mut produced = fill(&f, 0..30, 4, 10).await;
        // 1,200 entries at 250/s: about 5 s, longer than compaction takes even on a loaded machine.
        let replayer = f.replayer(250);
        let record = f
            .job(&replayer, request("copy:{partition}", ids), 1)
            .await
            .expect("job");
        let run = {
            let replayer = replayer.clone();
            tokio::spawn(async move { replayer.run(record, |_| {}).await })
        };
        let mut con = f.redis.con();
        let deadline = Instant::now() + Duration::from_secs(20);
        while xrange_all(&mut con, "copy:0").is_empty() {
            assert!(Instant::now() < deadline, "the replay did not start");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // An archiver adds hours at the chain end while compaction merges the closed ones.
        let (stats, more) = tokio::join!(compact(&f, all()), fill(&f, 30..32, 2, 10));
        produced.extend(more);
        assert!(stats.written >= 29, "{ids:?} s3={on_s3}: {stats:?}");
        assert!(
            !run.is_finished(),
            "{ids:?} s3={on_s3}: the replay ended before compaction did"
        );
        let done = run.await.expect("replay task").expect("replay");
        assert_eq!(
            done.state,
            JobState::Succeeded,
            "{ids:?} s3={on_s3}: {:?}",
            done.error
        );

        let written = xrange_all(&mut con, "copy:0");
        assert!(
            written.len() >= 1200,
            "{ids:?} s3={on_s3}: {} entries",
            written.len()
        );
        let fields: Vec<_> = written.iter().map(|e| e.fields.clone()).collect();
        let want: Vec<_> = produced[..written.len()]
            .iter()
            .map(|e| e.fields.clone())
            .collect();
        assert_eq!(fields, want, "{ids:?} s3={on_s3}: duplicates, holes or disorder");
        if ids == Ids::Original {
            assert_eq!(written, produced[..written.len()]);
        }
        assert_eq!(
            archived_entries(&f.store, "orders", 0).await,
            produced,
            "{ids:?} s3={on_s3}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_compaction_is_replayed_once_and_cleaned_by_the_next_run() {
    let f = Fixture::new().await;
    let produced = fill(&f, 0..3, 4, 10).await;
    // Keep copies of hour 0's objects, compact, then put the last three back: the state a
    // crash leaves between writing the merged object and removing the last of its parts.
    let hour0: Vec<String> = object_keys(&f.store, "orders", 0)
        .await
        .into_iter()
        .take(4)
        .collect();
    let copies: Vec<Vec<u8>> = hour0
        .iter()
        .map(|k| std::fs::read(f.root.join(k)).expect("read"))
        .collect();
    assert_eq!(compact(&f, all()).await.written, 2);
    for (key, bytes) in hour0.iter().zip(&copies).skip(1) {
        std::fs::write(f.root.join(key), bytes).expect("restore a part");
    }
    assert_eq!(shape(&f).await, (2, 3 + 4));

    f.restore_partition_0(&produced).await;
    let mut con = f.redis.con();
    let replayer = f.replayer(1_000_000);
    let mut req = request("mid:{partition}", Ids::Original);
    req.from = Some("2025-11-01T00:00:15Z".into());
    let done = replayer
        .run(f.job(&replayer, req, 1).await.expect("job"), |_| {})
        .await
        .expect("run");
    assert_eq!(done.state, JobState::Succeeded, "{:?}", done.error);
    let from = StreamId::new(T0 + 15_000, 0);
    let want: Vec<Entry> = produced.iter().filter(|e| e.id >= from).cloned().collect();
    assert_eq!(
        xrange_all(&mut con, "mid:0"),
        want,
        "a replay starting inside the merged parts"
    );

    let again = compact(&f, all()).await;
    assert_eq!((again.leftovers, again.written), (3, 0));
    assert_eq!(shape(&f).await, (2, 4));
    assert_eq!(archived_entries(&f.store, "orders", 0).await, produced);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_compact_at_random_instants_then_a_rerun_leaves_every_entry_once() {
    let f = Fixture::new().await;
    let produced = fill(&f, 0..60, 3, 5).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!(
            "[redis]\nurl = \"{}\"\n[store]\nurl = \"{}\"\n[archive]\nmax_object_entries = 50\n\
             [[topics]]\nname = \"orders\"\nstreams = \"orders:{{partition}}\"\n",
            f.redis.url(),
            f.root.display()
        ),
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(14);
    let mut interrupted = 0;
    for round in 0..6 {
        let log = dir.path().join(format!("compact-{round}.log"));
        let mut child = std::process::Command::new(binary())
            .args(["compact", "--config"])
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("start compact");
        tokio::time::sleep(Duration::from_millis(rng.random_range(20..250))).await;
        if child.try_wait().expect("wait").is_none() {
            interrupted += 1;
        }
        let _ = child.kill();
        let status = child.wait().expect("wait");
        assert!(
            status.success() || status.code().is_none(),
            "round {round}: {status}: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    let out = std::process::Command::new(binary())
        .args(["compact", "--config"])
        .arg(&config)
        .output()
        .expect("compact");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(interrupted > 0, "no run was killed before it finished");
    // One object per closed hour, the chain end's hour untouched, every entry once.
    assert_eq!(shape(&f).await, (59, 3));
    assert_eq!(archived_entries(&f.store, "orders", 0).await, produced);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_compacts_closed_hours_when_compact_interval_is_set() {
    let f = Fixture::new().await;
    let produced = fill(&f, 0..3, 4, 10).await;
    let mut settings = test_settings();
    settings.compact_interval = Some("1s".into());
    let ctx = system_context(f.hot.clone(), f.store.clone(), &settings, "daemon");
    let topic = Topic {
        name: "orders".into(),
        streams: vec!["orders:0".into()],
        retention: keep_nothing(),
        columns: Vec::new(),
        span: ObjectSpan::Hour,
    };
    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn(streamtier_archiver::run(
        ctx,
        Source::Topics(vec![topic]),
        shutdown.clone(),
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    while shape(&f).await != (2, 4) {
        assert!(Instant::now() < deadline, "not compacted: {:?}", shape(&f).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    daemon.await.expect("daemon task").expect("daemon");
    assert_eq!(archived_entries(&f.store, "orders", 0).await, produced);
}

#[test]
fn bad_compact_arguments_exit_2_naming_the_argument() {
    let redis = crate::harness::redis::RedisServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!(
            "[redis]\nurl = \"{}\"\n[store]\nurl = \"{}\"\n[[topics]]\nname = \"orders\"\nstreams = \"orders:{{partition}}\"\n",
            redis.url(),
            dir.path().join("archive").display()
        ),
    );
    for (args, named) in [
        (&["--before", "yesterday"][..], "--before `yesterday`"),
        (&["--topic", "nope"][..], "--topic `nope`"),
    ] {
        let out = std::process::Command::new(binary())
            .args(["compact", "--config"])
            .arg(&config)
            .args(args)
            .output()
            .expect("compact");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
    // The store's directory may be created when the store is opened; nothing goes into it.
    let archive = dir.path().join("archive");
    let written: Vec<_> = walkdir_files(&archive);
    assert!(written.is_empty(), "{written:?}");
}

fn walkdir_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walkdir_files(&path));
        } else {
            out.push(path);
        }
    }
    out
}
