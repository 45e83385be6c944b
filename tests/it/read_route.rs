//! The entries route against a real Redis and a local store: the archive and the hot window
//! read as one range, paged with `after` without a hole or a duplicate, byte for byte
//! (binary values, repeated names), and refusals naming the parameter.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use serde_json::Value;
use streamtier_archiver::settings::Retention;
use streamtier_archiver::{Mode, PartitionWorker};
use streamtier_schemas::{Entry, StreamId};
use tokio_util::sync::CancellationToken;

use crate::harness::api::{ApiSetup, InProcessApi};
use crate::harness::archiver::{partition, system_context, test_settings};
use crate::harness::redis::RedisServer;
use crate::harness::stream::{xadd, xrange_all};

fn bytes_of(v: &Value) -> Bytes {
    match v {
        Value::String(s) => Bytes::from(s.clone()),
        Value::Object(o) => Bytes::from(
            base64::engine::general_purpose::STANDARD
                .decode(o["base64"].as_str().expect("base64"))
                .expect("valid base64"),
        ),
        other => panic!("not a name or value: {other}"),
    }
}

/// The entries of a JSON-lines body.
fn parse(body: &[u8]) -> Vec<Entry> {
    body.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|line| {
            let v: Value = serde_json::from_slice(line).expect("a JSON line");
            assert!(v.get("error").is_none(), "{v}");
            let id: StreamId = v["id"].as_str().expect("id").parse().expect("an id");
            let fields = v["fields"]
                .as_array()
                .expect("fields")
                .iter()
                .map(|f| (bytes_of(&f[0]), bytes_of(&f[1])))
                .collect();
            Entry::new(id, fields)
        })
        .collect()
}

/// The entries of an Arrow IPC stream of `id` and `fields` (list of struct name, value).
fn arrow_entries(body: &[u8]) -> Vec<Entry> {
    use arrow_array::{Array, BinaryArray, ListArray, StringArray, StructArray};
    let reader =
        arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(body), None).expect("an Arrow stream");
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.expect("a record batch");
        let ids = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("utf8 ids");
        let fields = batch
            .column(1)
            .as_any()
            .downcast_ref::<ListArray>()
            .expect("a list");
        for row in 0..batch.num_rows() {
            let pairs = fields.value(row);
            let pairs = pairs.as_any().downcast_ref::<StructArray>().expect("structs");
            let names = pairs
                .column(0)
                .as_any()
                .downcast_ref::<BinaryArray>()
                .expect("names");
            let values = pairs
                .column(1)
                .as_any()
                .downcast_ref::<BinaryArray>()
                .expect("values");
            let fields = (0..pairs.len())
                .map(|i| {
                    (
                        Bytes::copy_from_slice(names.value(i)),
                        Bytes::copy_from_slice(values.value(i)),
                    )
                })
                .collect();
            out.push(Entry::new(ids.value(row).parse().expect("an id"), fields));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_read_across_the_seam_and_page_without_holes() {
    let redis = RedisServer::start();
    let mut con = redis.con();
    for i in 0..3_000u64 {
        let bin = [0xff, (i % 251) as u8, 0];
        xadd(
            &mut con,
            "orders:0",
            &format!("{}-{}", 1_700_000_000_000 + i * 7, i % 3),
            &[(b"n", i.to_string().as_bytes()), (b"n", &bin), (b"", b"")],
        );
    }
    let all = xrange_all(&mut con, "orders:0");
    let api = InProcessApi::start(&redis, ApiSetup::default()).await;
    let ctx = system_context(redis.hot().await, api.store.clone(), &test_settings(), "t");
    let retention = Retention {
        retain_entries: 500,
        retain_for: Duration::ZERO,
        retain_max_entries: None,
    };
    PartitionWorker::new(ctx, partition("orders", 0, "orders:0", retention))
        .pass(Mode::Flush, None, &CancellationToken::new())
        .await
        .expect("archive");
    assert_eq!(
        xrange_all(&mut con, "orders:0").len(),
        500,
        "2,500 only in the archive"
    );

    let route = "/v1/topics/orders/partitions/0/entries";
    let r = api.get(&format!("{route}?limit=100000")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(
        parse(&r.body),
        all,
        "the archive and Redis as one range, byte for byte"
    );

    // Pages of 700, each after the last id of the one before.
    let mut paged: Vec<Entry> = Vec::new();
    let mut pages = 0;
    loop {
        let after = paged
            .last()
            .map(|e| format!("&after={}", e.id))
            .unwrap_or_default();
        let page = parse(&api.get(&format!("{route}?limit=700{after}")).await.body);
        pages += 1;
        if page.is_empty() {
            break;
        }
        paged.extend(page);
    }
    assert_eq!((pages, paged.len()), (6, all.len()));
    assert_eq!(paged, all, "no hole, no duplicate");

    // The same range as an Arrow IPC stream.
    let r = api
        .request_with(
            "GET",
            &format!("{route}?limit=100000"),
            &[("accept", "application/vnd.apache.arrow.stream")],
            b"",
        )
        .await;
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.apache.arrow.stream")
    );
    assert_eq!(arrow_entries(&r.body), all, "Arrow IPC, byte for byte");

    // A filter: the entries whose first `n` field is a multiple of 100, paged like the rest.
    let filtered = parse(
        &api.get(&format!(
            "{route}?limit=5&filter=fields.n%20in%20('0','100','200','300','400','500')"
        ))
        .await
        .body,
    );
    let want: Vec<Entry> = all
        .iter()
        .filter(|e| {
            ["0", "100", "200", "300", "400"].contains(&std::str::from_utf8(&e.fields[0].1).unwrap_or(""))
        })
        .cloned()
        .collect();
    assert_eq!(filtered, want, "a filtered page stops at the limit");
    let r = api.get(&format!("{route}?filter=fields.n%20%3D%3D%201")).await;
    assert_eq!(
        (r.status, r.json()["field"].clone()),
        (400, Value::from("filter"))
    );

    // A window: from inclusive, to exclusive, across the seam (2,500 is the first in Redis).
    let (from, to) = (all[2_400].id, all[2_600].id);
    let window = parse(
        &api.get(&format!("{route}?from={from}&to={to}&limit=1000"))
            .await
            .body,
    );
    assert_eq!(window, all[2_400..2_600]);
    // The default page is 1,000 entries.
    assert_eq!(parse(&api.get(route).await.body).len(), 1_000);

    for (query, status, field) in [
        ("?from=soon", 400, "from"),
        ("?from=1-0&after=1-0", 400, "after"),
        ("?limit=many", 400, "limit"),
        ("?form=1-0", 400, "form"),
        ("?from=5-0&to=5-0", 422, "to"),
    ] {
        let r = api.get(&format!("{route}{query}")).await;
        assert_eq!(r.status, status, "{query}: {}", r.text());
        assert_eq!(r.json()["field"], field, "{query}");
    }
    let r = api.get("/v1/topics/nope/partitions/0/entries").await;
    assert_eq!((r.status, r.json()["field"].clone()), (404, Value::from("topic")));
    let r = api.get("/v1/topics/orders/partitions/9/entries").await;
    assert_eq!(
        (r.status, r.json()["field"].clone()),
        (404, Value::from("partition"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamtier_read_prints_the_same_lines() {
    let f = crate::harness::replay::Fixture::new().await;
    let mut con = f.redis.con();
    for i in 0..300u64 {
        xadd(
            &mut con,
            "orders:0",
            &format!("{}-0", 1_700_000_000_000 + i),
            &[(b"v", &[0xfe, i as u8])],
        );
    }
    let all = xrange_all(&mut con, "orders:0");
    f.archive(0, "orders:0", 100).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let topics = "[[topics]]\nname = \"orders\"\nstreams = \"orders:{partition}\"\npartitions = 1\n";
    let config = crate::harness::archiver::write_config(
        dir.path(),
        &crate::harness::http::api_config(&f.redis, &f.root, 1, topics),
    );
    let read = |args: &[&str]| {
        std::process::Command::new(crate::harness::archiver::binary())
            .arg("read")
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .expect("streamtier read")
    };
    let after = all[149].id.to_string();
    let out = read(&[
        "--topic",
        "orders",
        "--partition",
        "0",
        "--after",
        &after,
        "--limit",
        "100",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        parse(&out.stdout),
        all[150..250],
        "across the seam (200 is the first in Redis)"
    );
    let out = read(&["--topic", "orders", "--partition", "0"]);
    assert_eq!(parse(&out.stdout), all, "everything without a limit");
    let out = read(&["--topic", "orders", "--partition", "9"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = read(&["--topic", "orders", "--partition", "0", "--from", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`from`"));
}
