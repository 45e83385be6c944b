//! streamtier's throughput benchmark: raw Redis limits, archive and replay end to end, narrow
//! replays, peak memory and archive size, measured side by side in one run.
//!
//! `cargo bench --bench throughput -- [--entries N] [--partitions P] [--redis-url URL]
//! [--csv FILE] [--json PATH] [--skip-s3] [--rounds R]`

#[path = "../it/harness/redis.rs"]
#[allow(dead_code)]
mod redis_server;
#[path = "../it/harness/s3.rs"]
#[allow(dead_code)]
mod s3;

mod data;
mod resp;
mod rounds;

use std::io::Write;
use std::process::Command;
use std::time::Instant;

use serde_json::json;

use data::Generator;
use resp::{Raw, Xadds};
use rounds::{Pair, Rounds};

struct Args {
    entries: u64,
    partitions: u64,
    redis_url: Option<String>,
    csv: Option<String>,
    json: String,
    skip_s3: bool,
    rounds: usize,
}

fn args() -> Args {
    let mut a = Args {
        entries: 2_000_000,
        partitions: 8,
        redis_url: None,
        csv: None,
        json: "target/bench/results.json".into(),
        skip_s3: false,
        rounds: 1,
    };
    let mut it = std::env::args().skip(1).filter(|s| s != "--bench");
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--entries" => a.entries = value().parse().expect("--entries N"),
            "--partitions" => a.partitions = value().parse().expect("--partitions P"),
            "--redis-url" => a.redis_url = Some(value()),
            "--csv" => a.csv = Some(value()),
            "--json" => a.json = value(),
            "--skip-s3" => a.skip_s3 = true,
            "--rounds" => {
                a.rounds = value()
                    .parse()
                    .ok()
                    .filter(|r| *r > 0)
                    .expect("--rounds R (1 or more)")
            }
            other => panic!("unknown argument `{other}`"),
        }
    }
    a
}

/// Runs the `streamtier` binary; answers (seconds, peak RSS in MiB, stdout).
fn streamtier(args: &[&str], env: &[(&str, String)]) -> (f64, f64, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_streamtier"));
    cmd.args(args)
        .env("STREAMTIER_REPORT_PEAK_RSS", "1")
        .env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let start = Instant::now();
    let out = cmd.output().expect("run streamtier");
    let secs = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "streamtier {args:?} failed:\n{stdout}\n{stderr}"
    );
    let rss = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak_rss_kib="))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0);
    (secs, rss, stdout)
}

fn dir_bytes(path: &std::path::Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
        let meta = entry.metadata().expect("metadata");
        total += if meta.is_dir() {
            dir_bytes(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map_or("?", |m| m.trim_start_matches([' ', '\t', ':']));
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cores} cores")
}

fn main() {
    let a = args();
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
    let p = a.partitions;
    let stream = |i: u64| format!("bench:{}", i % p);

    // 1. Load. Entries are generated (or read) first and encoded as XADD commands in chunks,
    // with NDJSON+gzip and the payload size computed beside; the raw pipelined XADD writer (also
    // the raw write limit) then only writes. Only the encoded commands are kept in memory: they
    // are written again, into other streams, right before each replay.
    let mut xadds = Xadds::default();
    let mut payload = 0u64;
    // Lines reach the encoder in large writes (it does work per write call), and only the
    // compressed size is kept.
    let gz = flate2::write::GzEncoder::new(Counter(0), flate2::Compression::default());
    let mut gz = std::io::BufWriter::with_capacity(1 << 20, gz);
    let mut add = |e: resp::RawEntry| {
        let i = xadds.len();
        let key = stream(i);
        payload += data::payload(&e);
        data::ndjson(&mut gz, &key, &e);
        xadds.push((i % p) as usize, &key, &e);
    };
    match &a.csv {
        Some(path) => data::read_csv(path, a.entries).into_iter().for_each(&mut add),
        None => {
            let mut g = Generator::new(a.entries);
            (0..a.entries).for_each(|i| add(g.entry(i)));
        }
    }
    let gz = gz.into_inner().unwrap_or_else(|_| panic!("flush gzip"));
    let ndjson_gz = gz.finish().expect("gzip").0;
    let n = xadds.len();
    let (write_secs, write_cpu) = xadds.write(&addr);
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
    std::fs::write(
        &config,
        format!(
            "[redis]\nurl = \"{url}\"\n[store]\nurl = \"{}\"\n[replay]\nmax_rate = 1000000000\ndefault_rate = 1000000000\n\
             partition_concurrency = {p}\n[[topics]]\nname = \"bench\"\nstreams = \"bench:{{partition}}\"\npartitions = {p}\n\
             retain_entries = {n}\nretain_for = \"1000d\"\n",
            archive_dir.display()
        ),
    )
    .expect("config");
    let cfg = config.to_str().expect("utf-8 path");
    // Redis' CPU seconds around each phase say how busy it was, and what each entry cost it.
    let mut archives = Rounds::default();
    let mut read_bytes = 0;
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
        let cpu = raw.cpu_seconds();
        let (secs, rss, _) = streamtier(&["archive", "--once", "--config", cfg], &[]);
        let cpu = raw.cpu_seconds() - cpu;
        archives.push(Pair {
            limit_secs,
            limit_cpu,
            secs,
            cpu,
            rss,
        });
    }
    let archive = archives.median();
    let (read_secs, read_cpu) = (archive.limit_secs, archive.limit_cpu);
    let (archive_secs, archive_cpu, archive_rss) = (archive.secs, archive.cpu, archives.peak_rss());
    let parquet = dir_bytes(&archive_dir);
    let cpu = raw.cpu_seconds();
    let s3_run = (!a.skip_s3).then(|| archive_to_s3(&addr, cfg, p));
    let s3_cpu = raw.cpu_seconds() - cpu;
    let s3_secs = s3_run.map(|(secs, _)| secs);
    let s3_rss = s3_run.map(|(_, rss)| rss);

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
    let new_rounds = replay_rounds("new", "fresh", &mut raw);
    let orig_rounds = replay_rounds("original", "restored", &mut raw);
    let (new, orig) = (new_rounds.median(), orig_rounds.median());
    let (new_write_secs, new_write_cpu, new_secs, new_cpu) =
        (new.limit_secs, new.limit_cpu, new.secs, new.cpu);
    let (orig_write_secs, orig_write_cpu, orig_secs, orig_cpu) =
        (orig.limit_secs, orig.limit_cpu, orig.secs, orig.cpu);
    let (new_rss, orig_rss) = (new_rounds.peak_rss(), orig_rounds.peak_rss());
    drop(xadds);
    // 5. A narrow replay: one minute from the middle of the six hours.
    let (from, to) = ("2025-11-22T03:00:00Z", "2025-11-22T03:01:00Z");
    let (_, _, out) = replay("new", "narrow", &["--from", from, "--to", to]);
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
    rows.extend([
        (
            "narrow replay (1 min)",
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
    println!(
        "\nstreamtier benchmark: {n} entries ({:.0} B payload each), {p} partitions; {}",
        payload as f64 / n as f64,
        machine()
    );
    for (what, figure, ratio) in &rows {
        println!("  {what:<24} {figure:<40} {ratio}");
    }
    let results = json!({
        "entries": n, "partitions": p, "rounds": a.rounds,
        "archive_ratio_rounds": archives.ratios(), "replay_new_ratio_rounds": new_rounds.ratios(),
        "replay_original_ratio_rounds": orig_rounds.ratios(), "payload_bytes": payload, "machine": machine(),
        "raw_write_entries_per_s": raw_write, "raw_read_entries_per_s": raw_read,
        "raw_read_mb_per_s": read_bytes as f64 / 1e6 / read_secs,
        "archive_local_s": archive_secs, "archive_s3_s": s3_secs,
        "archive_ratio_to_raw_read": n as f64 / archive_secs / raw_read,
        "replay_new_s": new_secs, "replay_original_s": orig_secs,
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
}

/// What a phase cost Redis: CPU per entry, and the share of the phase it was busy.
fn redis_load(cpu_secs: f64, secs: f64, n: u64) -> String {
    format!(
        "Redis {:.1} us/entry, busy {:.0} %",
        cpu_secs * 1e6 / n as f64,
        100.0 * cpu_secs / secs
    )
}

/// A writer that only counts bytes.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn memory_usage(addr: &str, cmd: &[u8]) -> u64 {
    use std::io::{BufRead, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.write_all(cmd).expect("write");
    let mut line = String::new();
    std::io::BufReader::new(s).read_line(&mut line).expect("read");
    line.trim().trim_start_matches(':').parse().unwrap_or(0)
}

/// Archives again into the in-process S3-protocol server (the chain cache in Redis is cleared
/// first: it belongs to the local archive); answers the seconds and the peak RSS in MiB.
fn archive_to_s3(addr: &str, config: &str, partitions: u64) -> (f64, f64) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let sandbox = rt.block_on(s3::S3Sandbox::start());
    clear_chains(addr, partitions);
    let env = vec![
        (
            "STREAMTIER_STORE__URL",
            format!("s3://{}/bench", sandbox.bucket()),
        ),
        ("STREAMTIER_STORE__ENDPOINT", sandbox.endpoint()),
        ("STREAMTIER_STORE__REGION", "us-east-1".to_string()),
        ("STREAMTIER_STORE__FORCE_PATH_STYLE", "true".to_string()),
        ("AWS_ACCESS_KEY_ID", sandbox.access_key().to_string()),
        ("AWS_SECRET_ACCESS_KEY", sandbox.secret_key().to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
    ];
    let (secs, rss, _) = streamtier(&["archive", "--once", "--config", config], &env);
    // The local archive's chain cache must come back for the replays that follow: clear it again.
    clear_chains(addr, partitions);
    drop(sandbox);
    (secs, rss)
}

/// Deletes the archiver's cache of each partition's archive chain, so that the next archive
/// run starts from its (new or emptied) store.
fn clear_chains(addr: &str, partitions: u64) {
    for i in 0..partitions {
        let key = format!("streamtier:chain:{{bench:{i}}}");
        let cmd = format!("*2\r\n$3\r\nDEL\r\n${}\r\n{key}\r\n", key.len());
        memory_usage(addr, cmd.as_bytes());
    }
}
