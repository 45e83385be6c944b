//! The archive reads back with the tools people query it with: DuckDB and pyarrow, hourly and
//! daily topics side by side, with the globs the README gives.

use std::process::Command;
use std::sync::Arc;

use streamtier_archiver::{Mode, PartitionWorker};
use streamtier_schemas::{ColumnType, TypedColumn};
use streamtier_tiers::store::{LocalStore, Store};
use tokio_util::sync::CancellationToken;

use crate::harness::archiver::partition;
use crate::harness::archiver::{keep_nothing, system_context, test_settings};
use crate::harness::redis::RedisServer;
use crate::harness::stream::xadd;

const CHECK: &str = r#"
import sys, duckdb, pyarrow.parquet as pq, pyarrow.dataset as ds
root = sys.argv[1]
con = duckdb.connect()
rows = con.execute(f"""
    SELECT count(*), count(DISTINCT partition || '/' || id), min(fields['carrier']), sum(amount),
           typeof(min(ts)), min(topic), count(DISTINCT partition), count(raw_fields)
    FROM read_parquet('{root}/topic=q/*/*/*/*.parquet', hive_partitioning = true)
""").fetchone()
print("duckdb", *rows, sep="|")
daily = con.execute(f"""
    SELECT count(*), min(topic), count(DISTINCT dt)
    FROM read_parquet('{root}/topic=d/*/*/*.parquet', hive_partitioning = true)
""").fetchone()
print("daily", *daily, sep="|")
both = con.execute(f"""
    SELECT topic, count(*), count(hour) FROM (
      SELECT * FROM read_parquet('{root}/*/*/*/*/*.parquet', hive_partitioning = true)
      UNION ALL BY NAME
      SELECT * FROM read_parquet('{root}/*/*/*/*.parquet', hive_partitioning = true))
    GROUP BY topic ORDER BY topic
""").fetchall()
print("both", *both, sep="|")
table = ds.dataset(root + "/topic=q", format="parquet", partitioning="hive").to_table()
print("pyarrow", table.num_rows, str(table.schema.field("ts").type), str(table.schema.field("amount").type), sep="|")
"#;

#[tokio::test]
async fn archive_is_readable_by_duckdb_and_pyarrow() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::Local(LocalStore::new(dir.path()).expect("store"));
    let mut con = redis.con();
    for i in 0..40u64 {
        let p = i % 2;
        let amount = format!("{}.5", i);
        let fields: Vec<(&[u8], &[u8])> = if i == 7 {
            // Not representable in `fields`: repeated name and binary bytes.
            vec![
                (b"carrier", b"acme"),
                (b"carrier", b"\xff"),
                (b"amount", amount.as_bytes()),
            ]
        } else {
            vec![(b"carrier", b"acme"), (b"amount", amount.as_bytes())]
        };
        xadd(&mut con, &format!("q:{p}"), "*", &fields);
    }
    let columns = Arc::new(vec![TypedColumn {
        name: "amount".into(),
        kind: ColumnType::Float64,
    }]);
    for p in 0..2u32 {
        let ctx = system_context(redis.hot().await, store.clone(), &test_settings(), "t");
        let mut part = partition("q", p, &format!("q:{p}"), keep_nothing());
        part.columns = columns.clone();
        PartitionWorker::new(ctx, part)
            .pass(Mode::Flush, None, &CancellationToken::new())
            .await
            .expect("pass");
    }
    // A daily topic: twelve entries over three days, one object per day.
    const DAY: u64 = 86_400_000;
    for i in 0..12u64 {
        let id = format!("{}-0", 1_740_787_200_000 + (i / 4) * DAY + (i % 4) * 3_600_000);
        xadd(&mut con, "d:0", &id, &[(b"n", i.to_string().as_bytes())]);
    }
    let ctx = system_context(redis.hot().await, store.clone(), &test_settings(), "t");
    let mut daily = partition("d", 0, "d:0", keep_nothing());
    daily.span = streamtier_schemas::ObjectSpan::Day;
    PartitionWorker::new(ctx, daily)
        .pass(Mode::Flush, None, &CancellationToken::new())
        .await
        .expect("pass");
    let out = Command::new("python3")
        .arg("-c")
        .arg(CHECK)
        .arg(dir.path())
        .output()
        .expect(
            "python3 with duckdb and pyarrow is needed (`pip install duckdb pyarrow pytz`, done by .ci/run)",
        );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "reader script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sum: f64 = (0..40).map(|i| i as f64 + 0.5).sum();
    let expected_duckdb = format!("duckdb|40|40|acme|{sum:.1}|TIMESTAMP WITH TIME ZONE|q|2|1");
    assert!(
        stdout.lines().any(|l| l == expected_duckdb),
        "got:\n{stdout}\nwanted: {expected_duckdb}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l == "pyarrow|40|timestamp[ms, tz=UTC]|double"),
        "got:\n{stdout}"
    );
    assert!(stdout.lines().any(|l| l == "daily|12|d|3"), "got:\n{stdout}");
    assert!(
        stdout.lines().any(|l| l == "both|('d', 12, 0)|('q', 40, 40)"),
        "got:\n{stdout}"
    );
}
