//! streamtier's throughput benchmark: raw Redis limits, archive and replay end to end, narrow
//! replays, peak memory and archive size, measured side by side in one run.
//!
//! `cargo bench --bench throughput -- [--shape dense|sparse|trickle] [--entries N]
//! [--partitions P] [--redis-url URL] [--csv FILE] [--json PATH] [--skip-s3] [--s3-latency D] [--rounds R]
//! [--sim-hours H] [--sim-hour-ms MS] [--object-span 1h|1d] [--cluster [--pin]]`
//!
//! `--cluster` measures the dense shape's archive and replays against their raw limits on a
//! single server and then on a three-primary Redis Cluster of local servers (`cluster.rs`);
//! with `--pin`, every Redis server runs on CPU 0 and the benchmark and streamtier on CPU 1, so
//! that both deployments get the same hardware.
//! `--object-span` sets the topic's `object_span` for the dense and sparse shapes (`1h`).
//! `--s3-latency 30ms` makes every request to the in-process S3-protocol server wait that long
//! first, as a store across a network does (real S3: tens of milliseconds a request).
//! - `--shape dense` (default): N entries (2M) evenly over six hours in P partitions (8).
//! - `--shape sparse`: N entries (300k) over one year (2025) in P partitions (4), irregular:
//!   a few per partition-hour, quiet hours, seasonality, bursts (`shapes.rs`).
//!
//! Both run the same phases: raw limits, archive into a local directory, the Python peer
//! (`peer.py`, when `python3 -c 'import redis, pyarrow'` works), archive into the S3-protocol
//! server and a replay of that archive with new ids, replays of the local archive. Each archive phase also reports objects written, objects per
//! partition-hour holding entries, bytes per entry, Redis CPU per entry, Redis commands per
//! object (from `INFO commandstats`, `INFO` itself left out) and, for S3, requests per object
//! by kind (`LIST` is a GET of the bucket).
//!
//! - `--shape trickle`: the archiver daemon (`archive` without `--once`, poll interval 100 ms)
//!   while this process writes a few entries per partition per simulated hour, with explicit
//!   ids, walking H simulated hours (24) from 2025-06-01T00:00Z at MS wall-clock milliseconds
//!   per simulated hour (500); then one entry per partition far later, a wait until the archive
//!   stops changing, SIGTERM, and `archive --once --flush` (plain `--once` if the binary does
//!   not know `--flush`) for the rest (`trickle.rs`).
//!
//! - `--shape idle`: P partitions (2,000) with one old entry each and K archiver daemons
//!   (`--archivers K`, 3): Redis commands and CPU per second at rest, leases per archiver, and
//!   the time until a SIGKILLed archiver's partitions are held again (`idle.rs`).
//! - `--shape simulate`: the lease protocol of 10 daemons over 10,000 partitions (`--archivers`,
//!   `--partitions`) in simulated time, with a SIGKILL and a join (`simulate.rs`).
//! - `--shape flow`: a replay of N entries (1M) into a Redis with a 64 MB `maxmemory`, with and
//!   without flow control, while a producer writes: Redis' peak memory, refused writes (`flow.rs`).
//! - `--shape restore`: N entries (1M) in one stream with three consumer groups, archived,
//!   flushed from Redis and restored: time, memory, and whether the groups came back equal
//!   (`restore.rs`).
//!
//! CI: `--entries 50000 --json target/bench/ci.json` (about 10 s after the build). Also short:
//! `--shape trickle --sim-hours 6 --sim-hour-ms 200` (5 s) and `--shape sparse --entries 20000`
//! (about 3 minutes on the 2-core machine, nearly all of it the archiver writing, and this
//! process deleting, some 12k one-hour objects).

#[path = "../it/harness/redis.rs"]
#[allow(dead_code)]
mod redis_server;
#[path = "../it/harness/s3.rs"]
#[allow(dead_code)]
mod s3;

mod args;
mod cluster;
mod data;
mod flow;
mod idle;
mod peer;
mod resp;
mod restore;
mod rounds;
mod s3run;
mod shapes;
mod simulate;
mod stats;
mod trickle;
mod util;

use std::time::Instant;

use serde_json::json;

pub use args::Args;
use resp::Raw;
use rounds::{Pair, Rounds};
use shapes::Shape;
use stats::{local_objects, ArchiveStats, Commands};
use util::{clear_chains, dir_bytes, machine, memory_usage, redis_load, streamtier};

fn main() {
    let a = args::args();
    if a.shape == Shape::Simulate {
        simulate::run(&a);
        return;
    }
    if a.cluster {
        let work = tempfile::tempdir().expect("tempdir");
        cluster::run(&a, work.path());
        return;
    }
    // Our own redis-server (killed on drop) unless one is given.
    let (_own, url) = match &a.redis_url {
        Some(url) => (None, url.clone()),
        None => {
            let own = redis_server::RedisServer::start();
            let url = own.url();
            (Some(own), url)
        }
    };
    let addr = url
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_string();
    // The streams, replay targets and bookkeeping keys it creates must not exist already.
    let keys = Raw::connect(&addr).integer(&["DBSIZE"]);
    assert!(
        keys == 0,
        "{url} holds {keys} keys: the benchmark loads fresh streams and replays into fresh \
         targets, so it needs an empty database (FLUSHDB there, or leave out --redis-url)"
    );
    let work = tempfile::tempdir().expect("tempdir");
    let began = Instant::now();
    // Progress on stderr: a long run says where it is.
    let phase = |what: &str| eprintln!("[{:7.1} s] {what}", began.elapsed().as_secs_f64());
    let p = a.partitions;
    if a.shape == Shape::Idle {
        idle::run(&a, &url, &addr, work.path());
        return;
    }
    if a.shape == Shape::Trickle {
        trickle::run(&a, &url, &addr, work.path());
        return;
    }
    if a.shape == Shape::Flow {
        flow::run(&a, &url, &addr, work.path());
        return;
    }
    if a.shape == Shape::Restore {
        restore::run(&a, &url, &addr, work.path());
        return;
    }

    // 1. Load. Entries are generated (or read) first and encoded as XADD commands in chunks,
    // with NDJSON+gzip and the payload size computed beside; the raw pipelined XADD writer (also
    // the raw write limit) then only writes. Only the encoded commands are kept in memory: they
    // are written again, into other streams, right before each replay.
    let data::Loaded {
        mut xadds,
        payload,
        ndjson_gz,
        cells,
    } = data::load(&a);
    let n = xadds.len();
    phase("generated");
    let (write_secs, write_cpu) = xadds.write(&addr);
    phase("loaded");
    let mut raw = Raw::connect(&addr);
    let mut redis_bytes = 0u64;
    for i in 0..p {
        let mut cmd = Vec::new();
        let key = format!("bench:{i}");
        for part in ["MEMORY", "USAGE", key.as_str(), "SAMPLES", "0"] {
            cmd.extend_from_slice(format!("${}\r\n{part}\r\n", part.len()).as_bytes());
        }
        let mut full = b"*5\r\n".to_vec();
        full.extend(cmd);
        redis_bytes += memory_usage(&addr, &full);
    }

    // 2+3. The raw XRANGE reader (COUNT 1000, one connection per partition, replies walked not
    // built) and right after it the archive end to end with the real binary into a local
    // directory, `rounds` times (the archive is cleared between rounds); then once into the
    // S3-protocol server.
    let keys: Vec<String> = (0..p).map(|i| format!("bench:{i}")).collect();
    let archive_dir = work.path().join("archive");
    let config = work.path().join("bench.toml");
    let span = format!("object_span = \"{}\"\n", a.object_span);
    util::write_config(&config, &url, &archive_dir, p, n, &span);
    let cfg = config.to_str().expect("utf-8 path");
    // Redis' CPU seconds around each phase say how busy it was, and what each entry cost it.
    let mut archives = Rounds::default();
    let mut read_bytes = 0;
    // Every round does the same work: the commands of the last one are reported.
    let mut local_commands = Commands::default();
    for round in 0..a.rounds {
        if round > 0 {
            std::fs::remove_dir_all(&archive_dir).expect("clear the archive");
            clear_chains(&addr, p);
        }
        let cpu = raw.cpu_seconds();
        let start = Instant::now();
        let (read_entries, bytes) = resp::xrange_all(&addr, &keys, 1000);
        let limit_secs = start.elapsed().as_secs_f64();
        let limit_cpu = raw.cpu_seconds() - cpu;
        assert_eq!(read_entries, n, "the raw reader saw every entry");
        read_bytes = bytes;
        let commands = Commands::snapshot(&mut raw);
        let cpu = raw.cpu_seconds();
        let (secs, rss, _) = streamtier(&["archive", "--once", "--config", cfg], &[]);
        let cpu = raw.cpu_seconds() - cpu;
        local_commands = Commands::snapshot(&mut raw).since(&commands);
        archives.push(Pair {
            limit_secs,
            limit_cpu,
            secs,
            cpu,
            rss,
        });
    }
    phase("archived into a local directory");
    let archive = archives.median();
    let (read_secs, read_cpu) = (archive.limit_secs, archive.limit_cpu);
    let (archive_secs, archive_cpu, archive_rss) = (archive.secs, archive.cpu, archives.peak_rss());
    let parquet = dir_bytes(&archive_dir);
    let objects = local_objects(&archive_dir);
    let local = ArchiveStats {
        entries: n,
        secs: archive_secs,
        objects: objects.len() as u64,
        cells,
        bytes: objects.iter().map(|(_, b)| b).sum(),
        redis_cpu: archive_cpu,
        commands: local_commands,
        s3: None,
    };
    // The Python peer reads the same streams (nothing was trimmed) right after.
    let peer = peer::run(&url, &addr, &keys, &work.path().join("peer"));
    phase("python peer");
    let s3_run = (!a.skip_s3).then(|| s3run::archive_to_s3(&addr, cfg, p, n, cells, a.s3_latency));
    let s3_secs = s3_run.as_ref().map(|r| r.stats.secs);
    let s3_cpu = s3_run.as_ref().map_or(0.0, |r| r.stats.redis_cpu);
    let s3_rss = s3_run.as_ref().map(|r| r.rss);
    let s3_replay_secs = s3_run.as_ref().map(|r| r.replay_secs);

    // 4. Replays of the whole archive into fresh streams, in both id modes. Right before each,
    // the raw writer writes the same entries again into other streams, which are then deleted:
    // the raw write limit in the state the replay meets (the loaded streams, earlier replays).
    xadds.rename("rawxa");
    let raw_write_now = |raw: &mut Raw| {
        let measured = xadds.write(&addr);
        for i in 0..p {
            let key = format!("rawxa:{i}");
            assert_eq!(raw.integer(&["DEL", &key]), 1, "DEL {key}");
        }
        measured
    };
    let replay = |ids: &str, name: &str, extra: &[&str]| {
        let target = format!("{name}:{{partition}}");
        let mut args = vec![
            "replay", "--config", cfg, "--topic", "bench", "--ids", ids, "--target", &target,
        ];
        args.extend_from_slice(extra);
        streamtier(&args, &[])
    };
    // With several rounds, each round's targets are deleted before the next round.
    let replay_rounds = |ids: &str, name: &str, raw: &mut Raw| {
        let mut rounds = Rounds::default();
        for round in 0..a.rounds {
            let (limit_secs, limit_cpu) = raw_write_now(raw);
            let cpu = raw.cpu_seconds();
            let target = if round == 0 {
                name.to_string()
            } else {
                format!("{name}{round}")
            };
            let (secs, rss, _) = replay(ids, &target, &[]);
            let cpu = raw.cpu_seconds() - cpu;
            rounds.push(Pair {
                limit_secs,
                limit_cpu,
                secs,
                cpu,
                rss,
            });
            if round + 1 < a.rounds {
                for i in 0..p {
                    assert_eq!(raw.integer(&["DEL", &format!("{target}:{i}")]), 1);
                }
            }
        }
        rounds
    };
    phase("archived into S3");
    let new_rounds = replay_rounds("new", "fresh", &mut raw);
    phase("replayed with new ids");
    let orig_rounds = replay_rounds("original", "restored", &mut raw);
    phase("replayed with original ids");
    let (new, orig) = (new_rounds.median(), orig_rounds.median());
    let (new_write_secs, new_write_cpu, new_secs, new_cpu) =
        (new.limit_secs, new.limit_cpu, new.secs, new.cpu);
    let (orig_write_secs, orig_write_cpu, orig_secs, orig_cpu) =
        (orig.limit_secs, orig.limit_cpu, orig.secs, orig.cpu);
    let (new_rss, orig_rss) = (new_rounds.peak_rss(), orig_rounds.peak_rss());
    drop(xadds);
    // 5. A narrow replay: one minute from the middle of the six hours (a day of the sparse year).
    let (from, to, narrow_label) = a.shape.narrow();
    let (_, _, out) = replay("new", "narrow", &["--from", from, "--to", to]);
    phase("narrow replay");
    let summary = out
        .lines()
        .find(|l| l.contains("bytes read"))
        .unwrap_or_default()
        .to_string();
    let words: Vec<&str> = summary.split_whitespace().collect();
    let narrow_entries: f64 = words.first().and_then(|w| w.parse().ok()).unwrap_or(0.0);
    let narrow_fetched: f64 = words
        .iter()
        .position(|w| *w == "bytes")
        .and_then(|i| words[i - 1].parse().ok())
        .unwrap_or(0.0);
    // "... N bytes read (F of them footers)"
    let narrow_footers: f64 = words
        .iter()
        .position(|w| *w == "footers)")
        .and_then(|i| words[i - 3].trim_start_matches('(').parse().ok())
        .unwrap_or(0.0);
    let narrow_occupied = narrow_entries * parquet as f64 / n as f64;

    let mb = payload as f64 / 1e6;
    let raw_read = n as f64 / read_secs;
    let raw_write = n as f64 / write_secs;
    // Each replay with the raw writer measured right before it, in the state it met.
    let replays = [
        ("replay, new ids", new, new_rounds.spread()),
        ("replay, original ids", orig, orig_rounds.spread()),
    ];
    let replay_rows = replays.into_iter().flat_map(|(what, r, spread)| {
        let (write_secs, write_cpu, secs, cpu) = (r.limit_secs, r.limit_cpu, r.secs, r.cpu);
        [
            (
                "raw XADD, same state",
                format!("{:.0} entries/s", n as f64 / write_secs),
                format!(
                    "right before the next replay; {}",
                    redis_load(write_cpu, write_secs, n)
                ),
            ),
            (
                what,
                format!("{:.0} entries/s", n as f64 / secs),
                format!(
                    "{:.2} x raw write just before{spread} (target >= 0.7), {:.2} x the load's; {}",
                    write_secs / secs,
                    n as f64 / secs / raw_write,
                    redis_load(cpu, secs, n)
                ),
            ),
        ]
    });
    let mut rows: Vec<(&str, String, String)> = vec![
        (
            "raw XADD (pipelined)",
            format!("{raw_write:.0} entries/s, {:.1} MB/s", mb / write_secs),
            redis_load(write_cpu, write_secs, n),
        ),
        (
            "raw XRANGE (pipelined)",
            format!(
                "{raw_read:.0} entries/s, {:.1} MB/s",
                read_bytes as f64 / 1e6 / read_secs
            ),
            redis_load(read_cpu, read_secs, n),
        ),
        (
            "archive, local dir",
            format!(
                "{:.0} entries/s, {:.1} MB/s",
                n as f64 / archive_secs,
                mb / archive_secs
            ),
            format!(
                "{:.2} x raw read just before{} (target >= 0.6); {}",
                n as f64 / archive_secs / raw_read,
                archives.spread(),
                redis_load(archive_cpu, archive_secs, n)
            ),
        ),
        (
            "archive, S3 protocol",
            s3_secs.map_or("skipped".into(), |s| {
                format!("{:.0} entries/s, {:.1} MB/s", n as f64 / s, mb / s)
            }),
            s3_secs.map_or(String::new(), |s| {
                format!(
                    "{:.2} x raw read; {}",
                    n as f64 / s / raw_read,
                    redis_load(s3_cpu, s, n)
                )
            }),
        ),
    ];
    rows.extend(replay_rows);
    // The S3 archive replayed with new ids, against the raw write measured before the local
    // replay with new ids.
    if let Some(secs) = s3_replay_secs {
        rows.push((
            "replay from S3, new ids",
            format!("{:.0} entries/s", n as f64 / secs),
            format!(
                "{:.2} x raw write before the local replay with new ids",
                new.limit_secs / secs
            ),
        ));
    }
    rows.extend([
        (
            narrow_label,
            format!("{narrow_entries:.0} entries, {narrow_fetched:.0} B fetched"),
            format!(
                "{:.1} x the bytes the range occupies, plus {narrow_footers:.0} B of footers (target <= 2)",
                (narrow_fetched - narrow_footers) / narrow_occupied.max(1.0)
            ),
        ),
        (
            "peak RSS archive",
            format!("{archive_rss:.0} MiB"),
            "target <= 256 MiB".into(),
        ),
        (
            "peak RSS archive, S3",
            s3_rss.map_or("skipped".into(), |rss| format!("{rss:.0} MiB")),
            "target <= 256 MiB".into(),
        ),
        (
            "peak RSS replay",
            format!("{:.0} MiB", new_rss.max(orig_rss)),
            "target <= 256 MiB".into(),
        ),
        (
            "Parquet size",
            format!("{:.1} B/entry", parquet as f64 / n as f64),
            format!(
                "{:.0} % of Redis memory (target <= 20 %)",
                100.0 * parquet as f64 / redis_bytes as f64
            ),
        ),
        (
            "Redis memory",
            format!("{:.1} B/entry", redis_bytes as f64 / n as f64),
            String::new(),
        ),
        (
            "NDJSON + gzip",
            format!("{:.1} B/entry", ndjson_gz as f64 / n as f64),
            String::new(),
        ),
    ]);
    // Each archive phase is followed by what it wrote and cost, the local one by the peer.
    let mut table: Vec<(String, String, String)> = Vec::new();
    for (what, figure, ratio) in rows {
        table.push((what.to_string(), figure, ratio));
        match what {
            "archive, local dir" => {
                table.extend(local.rows("local"));
                table.push(peer::row(peer.as_ref(), &local));
            }
            "archive, S3 protocol" => {
                if let Some(run) = &s3_run {
                    table.extend(run.stats.rows("S3"));
                }
            }
            _ => {}
        }
    }
    println!(
        "\nstreamtier benchmark, {} shape: {n} entries ({:.0} B payload each), {p} partitions, \
         {cells} partition-hours, object_span {}; {}",
        a.shape.name(),
        payload as f64 / n as f64,
        a.object_span,
        machine()
    );
    for (what, figure, ratio) in &table {
        println!("  {what:<24} {figure:<40} {ratio}");
    }
    let results = json!({
        "shape": a.shape.name(), "partition_hours": cells, "object_span": a.object_span,
        "archive_local": local.json(), "archive_s3": s3_run.as_ref().map(|r| r.stats.json()),
        "python_peer": peer.as_ref().map(|peer| {
            let mut j = peer.json();
            j["archive_local_to_peer_entries_per_s"] =
                json!(peer.secs / local.secs * local.entries as f64 / peer.entries.max(1) as f64);
            j["archive_local_to_peer_bytes_per_entry"] = json!(
                (local.bytes as f64 / local.entries as f64) / (peer.bytes as f64 / peer.entries.max(1) as f64)
            );
            j
        }),
        "entries": n, "partitions": p, "rounds": a.rounds,
        "archive_ratio_rounds": archives.ratios(), "replay_new_ratio_rounds": new_rounds.ratios(),
        "replay_original_ratio_rounds": orig_rounds.ratios(), "payload_bytes": payload, "machine": machine(),
        "raw_write_entries_per_s": raw_write, "raw_read_entries_per_s": raw_read,
        "raw_read_mb_per_s": read_bytes as f64 / 1e6 / read_secs,
        "archive_local_s": archive_secs, "archive_s3_s": s3_secs,
        "archive_ratio_to_raw_read": n as f64 / archive_secs / raw_read,
        "replay_new_s": new_secs, "replay_original_s": orig_secs, "replay_new_s3_s": s3_replay_secs,
        "raw_write_before_new_entries_per_s": n as f64 / new_write_secs,
        "raw_write_before_original_entries_per_s": n as f64 / orig_write_secs,
        "replay_new_ratio_to_raw_write": new_write_secs / new_secs,
        "replay_original_ratio_to_raw_write": orig_write_secs / orig_secs,
        "replay_new_ratio_to_load_raw_write": n as f64 / new_secs / raw_write,
        "replay_original_ratio_to_load_raw_write": n as f64 / orig_secs / raw_write,
        "redis_cpu_s": {
            "raw_write": write_cpu, "raw_read": read_cpu,
            "raw_write_before_new": new_write_cpu, "raw_write_before_original": orig_write_cpu, "archive_local": archive_cpu,
            "archive_s3": s3_secs.map(|_| s3_cpu), "replay_new": new_cpu, "replay_original": orig_cpu,
        },
        "narrow_entries": narrow_entries, "narrow_fetched_bytes": narrow_fetched, "narrow_footer_bytes": narrow_footers, "narrow_occupied_bytes": narrow_occupied,
        "peak_rss_archive_mib": archive_rss, "peak_rss_archive_s3_mib": s3_rss, "peak_rss_replay_mib": new_rss.max(orig_rss),
        "parquet_bytes": parquet, "redis_memory_bytes": redis_bytes, "ndjson_gzip_bytes": ndjson_gz,
    });
    if let Some(dir) = std::path::Path::new(&a.json).parent() {
        std::fs::create_dir_all(dir).expect("json dir");
    }
    std::fs::write(&a.json, serde_json::to_string_pretty(&results).expect("json")).expect("write json");
    println!("results: {}", a.json);
    // Thousands of small objects take a while to delete on a slow disk: say so.
    phase("removing the work directory");
    drop(work);
}
