//! Filtered replays against a real Redis and a local store: what a filter takes equals what
//! DuckDB selects from the same archive with the same predicate (map fields and a typed
//! column), a dry run counts it, and the cursor moves over entries that do not match.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use streamtier_archiver::settings::Retention;
use streamtier_archiver::{Mode, PartitionWorker};
use streamtier_replayer::{Ids, JobState};
use streamtier_schemas::{ColumnType, TypedColumn};
use tokio_util::sync::CancellationToken;

use crate::harness::archiver::{partition, system_context, test_settings};
use crate::harness::replay::{request, Fixture};
use crate::harness::stream::{xadd, xrange_all};

const T0: u64 = 1_735_689_600_000; // 2025-01-01

/// Archives all of `orders:0` (nothing kept in Redis) with `amount` as a `float64` column.
async fn archive_with_amount(f: &Fixture, settings: &streamtier_archiver::settings::ArchiveSettings) -> u64 {
    let ctx = system_context(f.hot.clone(), f.store.clone(), settings, "t");
    let mut p = partition(
        "orders",
        0,
        "orders:0",
        Retention {
            retain_entries: 0,
            retain_for: Duration::ZERO,
            retain_max_entries: None,
        },
    );
    p.columns = Arc::new(vec![TypedColumn::new("amount", ColumnType::Float64)]);
    let stats = PartitionWorker::new(ctx, p)
        .pass(Mode::Flush, None, &CancellationToken::new())
        .await
        .expect("archive");
    stats.objects
}

/// The ids DuckDB selects from the archive with `predicate`, in id order.
fn duckdb_ids(root: &std::path::Path, predicate: &str) -> Vec<String> {
    const SCRIPT: &str = r#"
import sys, duckdb
root, predicate = sys.argv[1], sys.argv[2]
rows = duckdb.sql(f"""
    SELECT id FROM read_parquet('{root}/topic=orders/partition=0/*/*/*.parquet', hive_partitioning = true)
    WHERE {predicate} ORDER BY ts, seq""").fetchall()
for (i,) in rows:
    print(i)
"#;
    let out = Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(root)
        .arg(predicate)
        .output()
        .expect("python3 with duckdb is needed (`pip install duckdb`, done by .ci/run)");
    assert!(
        out.status.success(),
        "duckdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_take_what_duckdb_selects_and_the_cursor_moves_past_the_rest() {
    let f = Fixture::new().await;
    let mut con = f.redis.con();
    let types = ["order", "refund", "chargeback"];
    for i in 0..2_000u64 {
        let id = format!("{}-0", T0 + i * 1_000);
        let customer = (i % 20).to_string();
        let amount = if i % 17 == 0 {
            "n/a".to_string()
        } else {
            format!("{}.5", (i * 37) % 300)
        };
        let mut fields: Vec<(&[u8], &[u8])> =
            vec![(b"customer", customer.as_bytes()), (b"amount", amount.as_bytes())];
        if i % 11 != 0 {
            fields.push((b"type", types[(i % 3) as usize].as_bytes()));
        }
        // A repeated name: the first one is the one that counts.
        fields.push((b"customer", b"shadow"));
        xadd(&mut con, "orders:0", &id, &fields);
    }
    let source = xrange_all(&mut con, "orders:0");
    archive_with_amount(&f, &test_settings()).await;
    assert!(
        xrange_all(&mut con, "orders:0").is_empty(),
        "all of it only in the archive"
    );

    let cases = [
        ("fields.type = 'refund'", "fields['type'] = 'refund'"),
        (
            "fields.type in ('refund', 'chargeback') and amount > 100",
            "fields['type'] IN ('refund', 'chargeback') AND amount > 100",
        ),
        (
            "not (fields.customer = '7') or amount <= 5",
            "NOT (fields['customer'] = '7') OR amount <= 5",
        ),
        ("fields.type != 'order'", "fields['type'] != 'order'"),
        (
            "ts >= '2025-01-01T00:20:00Z' and fields.customer in ('1', '2')",
            "ts >= TIMESTAMPTZ '2025-01-01 00:20:00+00' AND fields['customer'] IN ('1', '2')",
        ),
    ];
    let replayer = f.replayer(1_000_000);
    for (i, (filter, sql)) in cases.iter().enumerate() {
        let want = duckdb_ids(&f.root, sql);
        assert!(
            !want.is_empty() && want.len() < source.len(),
            "{sql}: {} rows",
            want.len()
        );
        let mut req = request(&format!("f{i}:{{partition}}"), Ids::Original);
        req.filter = Some(filter.to_string());
        let record = f.job(&replayer, req, 1).await.expect("job");
        let done = replayer.run(record, |_| {}).await.expect("run");
        assert_eq!(done.state, JobState::Succeeded, "{filter}: {:?}", done.error);
        let got: Vec<String> = xrange_all(&mut con, &format!("f{i}:0"))
            .iter()
            .map(|e| e.id.to_string())
            .collect();
        assert_eq!(got, want, "`{filter}` against `{sql}`");
        // The cursor ends at the range's last entry, past whatever did not match after the last
        // one that did.
        let (cursor, written) = f
            .hot
            .replay_cursor(&format!("f{i}:0"), &done.id)
            .await
            .expect("cursor");
        assert_eq!(cursor, Some(source.last().expect("entries").id), "`{filter}`");
        assert_eq!(written, want.len() as u64);
    }

    // A dry run counts what the filter takes.
    let plan = {
        let mut req = request("dry:{partition}", Ids::New);
        req.filter = Some(cases[1].0.to_string());
        let sources = [streamtier_replayer::plan::SourcePartition {
            partition: 0,
            stream: "orders:0".into(),
        }];
        streamtier_replayer::plan::build_plan(&req, streamtier_replayer::IdRange::ALL, 1000, &sources, |_| {
            Ok(())
        })
        .expect("plan")
    };
    let counted = streamtier_replayer::plan::dry_run(&f.hot, &f.store, &plan)
        .await
        .expect("dry run");
    assert_eq!(
        counted[0].matching_entries,
        Some(duckdb_ids(&f.root, cases[1].1).len() as u64)
    );

    // A filter that takes nothing still moves the cursor to the end of the range.
    let mut req = request("none:{partition}", Ids::New);
    req.filter = Some("fields.customer = 'nobody'".into());
    let record = f.job(&replayer, req, 1).await.expect("job");
    let done = replayer.run(record, |_| {}).await.expect("run");
    assert_eq!(done.state, JobState::Succeeded, "{:?}", done.error);
    let (cursor, written) = f.hot.replay_cursor("none:0", &done.id).await.expect("cursor");
    assert_eq!((cursor, written), (Some(source[source.len() - 1].id), 0));
    let exists: bool = redis::cmd("EXISTS")
        .arg("none:0")
        .query(&mut con)
        .expect("EXISTS");
    assert!(!exists, "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_whose_statistics_exclude_the_filter_are_not_read() {
    let f = Fixture::new().await;
    let mut con = f.redis.con();
    // Notes that do not compress: the object is larger than what is fetched whole.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..20_000u64 {
        let note: String = (0..200)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                char::from(b'a' + (seed % 26) as u8)
            })
            .collect();
        let id = format!("{}-0", T0 + i * 100);
        xadd(
            &mut con,
            "orders:0",
            &id,
            &[(b"amount", i.to_string().as_bytes()), (b"note", note.as_bytes())],
        );
    }
    let settings = streamtier_archiver::settings::ArchiveSettings {
        max_object_entries: 1_000_000,
        ..test_settings()
    };
    let objects = archive_with_amount(&f, &settings).await;
    assert_eq!(objects, 1, "one large object, read by ranges");
    let replayer = f.replayer(1_000_000);
    let mut bytes = Vec::new();
    for (i, filter) in [None, Some("amount >= 19000")].into_iter().enumerate() {
        let mut req = request(&format!("p{i}:{{partition}}"), Ids::Original);
        req.filter = filter.map(str::to_owned);
        let record = f.job(&replayer, req, 1).await.expect("job");
        let done = replayer.run(record, |_| {}).await.expect("run");
        assert_eq!(done.state, JobState::Succeeded, "{:?}", done.error);
        let want = if filter.is_some() { 1_000 } else { 20_000 };
        assert_eq!(done.entries_replayed, want);
        bytes.push(done.bytes_read);
    }
    // 20 blocks of 1,024 entries: the filter's two are read (and the footer).
    eprintln!("bytes read: {} with the filter, {} without", bytes[1], bytes[0]);
    assert!(
        bytes[1] * 4 < bytes[0],
        "bytes read: {} with the filter, {} without",
        bytes[1],
        bytes[0]
    );
}
