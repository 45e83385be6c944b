//! The trickle shape: the archiver daemon while a producer walks through past hours.
//!
//! The daemon (`streamtier archive`, poll interval 100 ms, everything else default) runs as a
//! child process. This process writes a few entries per partition per simulated hour, with
//! explicit ids at random minutes, starting at 2025-06-01T00:00Z, one simulated hour every
//! `--sim-hour-ms` of wall clock, for `--sim-hours`; then one entry per partition a day after
//! the last hour, so that every produced hour is closed. Once the archive has not changed for
//! 3 s (60 s at most) the daemon gets SIGTERM, and `archive --once --flush` (plain `--once` if
//! the binary does not know `--flush`) archives the rest. Every entry must then be archived.
//!
//! Reported: objects the daemon wrote per produced partition-hour, Redis CPU per entry and
//! commands per object while the daemon ran (idle polling included), and its lag: from a
//! partition-hour's last write to the first sighting of its last object (a watcher thread
//! lists the archive every 20 ms).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use parquet::file::reader::{FileReader, SerializedFileReader};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::data::Generator;
use crate::resp::Raw;
use crate::shapes::HOUR_MS;
use crate::stats::{local_objects, object_cell, Commands};
use crate::util::{machine, peak_rss, streamtier_run, write_config};
use crate::Args;

/// 2025-06-01T00:00:00Z: the first simulated hour.
const SIM_START: u64 = 1_748_736_000_000;
/// Most entries per partition per simulated hour (uniform from 0).
const MAX_PER_HOUR: u64 = 6;
/// The archive counts as settled once unchanged this long.
const SETTLED: Duration = Duration::from_secs(3);
/// Longest wait for the archive to settle.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs the trickle shape against the Redis at `url` (`addr`), prints its table, writes JSON.
pub fn run(a: &Args, url: &str, addr: &str, work: &Path) {
    let p = a.partitions;
    let archive = work.join("archive");
    let config = work.join("trickle.toml");
    write_config(
        &config,
        url,
        &archive,
        p,
        1_000_000,
        "[archive]\npoll_interval = \"100ms\"\n",
    );
    let cfg = config.to_str().expect("utf-8 path");
    let mut raw = Raw::connect(addr);
    let seen: Mutex<HashMap<PathBuf, Instant>> = Mutex::default();
    let stop = AtomicBool::new(false);

    let log_path = work.join("daemon.log");
    let commands = Commands::snapshot(&mut raw);
    let cpu = raw.cpu_seconds();
    let started = Instant::now();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_streamtier"))
        .args(["archive", "--config", cfg])
        .env("STREAMTIER_REPORT_PEAK_RSS", "1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).expect("daemon log"))
        .spawn()
        .expect("start the archiver daemon");
    let (produced, settled_after) = std::thread::scope(|scope| {
        scope.spawn(|| watch(&archive, &seen, &stop));
        let produced = produce(&mut raw, a);
        let settled_after = settle(&archive, produced.end);
        stop.store(true, Ordering::Relaxed);
        (produced, settled_after)
    });
    let status = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM the daemon");
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = daemon.try_wait().expect("wait for the daemon") {
            break exit;
        }
        if Instant::now() > deadline {
            let _ = daemon.kill();
            panic!("the daemon did not stop within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let daemon_secs = started.elapsed().as_secs_f64();
    let daemon_cpu = raw.cpu_seconds() - cpu;
    let daemon_commands = Commands::snapshot(&mut raw)
        .since(&commands)
        .less("xadd", produced.entries);
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(
        exit.success(),
        "the daemon exited with {exit} after SIGTERM:\n{log}"
    );
    let daemon_rss = peak_rss(&log);
    let daemon_objects = local_objects(&archive);

    // The rest: `--flush` closes what the daemon left open, if this binary knows it.
    let commands = Commands::snapshot(&mut raw);
    let mut flag = "--once --flush";
    let mut flush = streamtier_run(&["archive", "--once", "--flush", "--config", cfg], &[]);
    if flush.code == Some(2) && flush.stderr.contains("--flush") {
        flag = "--once";
        flush = streamtier_run(&["archive", "--once", "--config", cfg], &[]);
    }
    assert!(
        flush.code == Some(0),
        "archive {flag} failed:\n{}\n{}",
        flush.stdout,
        flush.stderr
    );
    let flush_commands = Commands::snapshot(&mut raw).since(&commands);
    let all = local_objects(&archive);
    let archived: u64 = all.iter().map(|(path, _)| rows(path)).sum();
    assert_eq!(
        archived, produced.entries,
        "after the daemon and `archive {flag}`, the archive holds every produced entry"
    );

    // Objects per produced partition-hour (the closing hour left out), and the lag of each.
    let in_cells = daemon_objects
        .iter()
        .filter(|(path, _)| cell(path).is_some_and(|c| produced.last_write.contains_key(&c)))
        .count();
    let seen = seen.into_inner().expect("watcher lock");
    let mut last_seen: HashMap<(u64, u64), Instant> = HashMap::new();
    for (path, at) in &seen {
        if let Some(c) = cell(path) {
            let e = last_seen.entry(c).or_insert(*at);
            *e = (*e).max(*at);
        }
    }
    let mut lags: Vec<f64> = produced
        .last_write
        .iter()
        .filter_map(|(c, written)| Some(last_seen.get(c)?.duration_since(*written).as_secs_f64()))
        .collect();
    lags.sort_by(f64::total_cmp);
    let unarchived = produced.last_write.len() - lags.len();
    let quantile = |q: f64| {
        lags.get(((lags.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let cells = produced.last_write.len();
    let per_cell = in_cells as f64 / cells.max(1) as f64;
    let n = produced.entries;
    let per_object = |calls: u64, objects: usize| calls as f64 / objects.max(1) as f64;
    let flush_objects = all.len() - daemon_objects.len();

    let rows = [
        (
            "trickle producer",
            format!("{n} entries, {cells} partition-hours"),
            format!(
                "{} simulated hours at {} ms each, {p} partitions, {p} closing entries; {:.1} s",
                a.sim_hours, a.sim_hour_ms, produced.secs
            ),
        ),
        (
            "daemon: objects",
            format!("{in_cells} objects, {per_cell:.2}/partition-hour"),
            format!(
                "{} in all (closing hour included); then {flush_objects} by archive {flag}",
                daemon_objects.len()
            ),
        ),
        (
            "daemon: Redis",
            format!(
                "{:.1} cmds/object, {:.1} us/entry",
                per_object(daemon_commands.total(), daemon_objects.len()),
                daemon_cpu * 1e6 / n as f64
            ),
            format!(
                "over {daemon_secs:.1} s, idle polls included; {} calls: {}",
                daemon_commands.total(),
                daemon_commands.compact()
            ),
        ),
        (
            "daemon: lag",
            format!(
                "median {:.2} s, p90 {:.2} s, max {:.2} s",
                quantile(0.5),
                quantile(0.9),
                quantile(1.0)
            ),
            format!(
                "last write of a partition-hour -> its last object; {unarchived} partition-hours \
                 left to the flush; settled {settled_after:.1} s after the closing writes"
            ),
        ),
        (
            "archive --once (rest)",
            format!("{flush_objects} objects, {:.2} s", flush.secs),
            format!(
                "`{flag}`; {} calls: {}",
                flush_commands.total(),
                flush_commands.compact()
            ),
        ),
        (
            "peak RSS daemon",
            format!("{daemon_rss:.0} MiB"),
            "target <= 256 MiB".into(),
        ),
    ];
    println!(
        "\nstreamtier benchmark, trickle shape: {n} entries, {p} partitions; {}",
        machine()
    );
    for (what, figure, note) in &rows {
        println!("  {what:<24} {figure:<40} {note}");
    }
    let by_object = |c: &Commands, objects: usize| -> BTreeMap<String, f64> {
        c.0.iter()
            .map(|(k, v)| (k.clone(), per_object(*v, objects)))
            .collect()
    };
    let results = json!({
        "shape": "trickle", "entries": n, "partitions": p, "machine": machine(),
        "sim_hours": a.sim_hours, "sim_hour_ms": a.sim_hour_ms, "partition_hours": cells,
        "producer_s": produced.secs,
        "daemon": {
            "seconds": daemon_secs, "objects": daemon_objects.len(),
            "objects_in_produced_hours": in_cells, "objects_per_partition_hour": per_cell,
            "redis_cpu_s": daemon_cpu, "redis_cpu_us_per_entry": daemon_cpu * 1e6 / n as f64,
            "redis_commands": {
                "total": daemon_commands.total(),
                "per_object": per_object(daemon_commands.total(), daemon_objects.len()),
                "by_command": daemon_commands.0,
                "by_command_per_object": by_object(&daemon_commands, daemon_objects.len()),
            },
            "lag_s": {"median": quantile(0.5), "p90": quantile(0.9), "max": quantile(1.0)},
            "partition_hours_left_to_flush": unarchived,
            "settled_after_last_write_s": settled_after, "peak_rss_mib": daemon_rss,
        },
        "rest": {
            "command": format!("archive {flag}"), "seconds": flush.secs, "objects": flush_objects,
            "redis_commands": {"total": flush_commands.total(), "by_command": flush_commands.0},
        },
        "archived_entries": archived,
    });
    if let Some(dir) = Path::new(&a.json).parent() {
        std::fs::create_dir_all(dir).expect("json dir");
    }
    std::fs::write(&a.json, serde_json::to_string_pretty(&results).expect("json")).expect("write json");
    println!("results: {}", a.json);
}

fn cell(path: &Path) -> Option<(u64, u64)> {
    object_cell(path.to_str()?)
}

/// Rows in a Parquet file, from its footer.
fn rows(path: &Path) -> u64 {
    let file = std::fs::File::open(path).expect("open an archived object");
    let reader =
        SerializedFileReader::new(file).unwrap_or_else(|e| panic!("{} is not Parquet: {e}", path.display()));
    reader.metadata().file_metadata().num_rows() as u64
}

/// Notes when each object first appears, until `stop`.
fn watch(archive: &Path, seen: &Mutex<HashMap<PathBuf, Instant>>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let objects = local_objects(archive);
        let mut seen = seen.lock().expect("watcher lock");
        for (path, _) in objects {
            seen.entry(path).or_insert(now);
        }
        drop(seen);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What the producer wrote.
struct Produced {
    /// Entries, closing ones included.
    entries: u64,
    /// When each produced (partition, hour) got its last entry (closing hour left out).
    last_write: HashMap<(u64, u64), Instant>,
    /// Seconds of producing.
    secs: f64,
    /// When the closing entries were written.
    end: Instant,
}

/// Writes the simulated hours, then the closing entries.
fn produce(raw: &mut Raw, a: &Args) -> Produced {
    let p = a.partitions;
    let mut rng = StdRng::seed_from_u64(0x7c1e);
    let mut fields = Generator::new(0);
    let mut last: Vec<Option<(u64, u64)>> = vec![None; p as usize];
    let mut last_write = HashMap::new();
    let mut entries = 0;
    let start = Instant::now();
    let wall = |sim_ms: u64| {
        start + Duration::from_secs_f64(sim_ms as f64 / HOUR_MS as f64 * a.sim_hour_ms as f64 / 1e3)
    };
    let mut xadd = |raw: &mut Raw, partition: u64, ms: u64| {
        let seq = match last[partition as usize] {
            Some((prev, seq)) if prev == ms => seq + 1,
            _ => 0,
        };
        last[partition as usize] = Some((ms, seq));
        let (key, id) = (format!("bench:{partition}"), format!("{ms}-{seq}"));
        let fields = fields.fields(ms);
        let mut parts = vec!["XADD", key.as_str(), id.as_str()];
        for (n, v) in &fields {
            parts.extend([n.as_str(), v.as_str()]);
        }
        assert_eq!(raw.text(&parts), id, "XADD {key} {id}");
    };
    for hour in 0..a.sim_hours {
        let mut events: Vec<(u64, u64)> = (0..p)
            .flat_map(|partition| {
                let k = rng.random_range(0..=MAX_PER_HOUR);
                (0..k)
                    .map(|_| (hour * HOUR_MS + rng.random_range(0..HOUR_MS), partition))
                    .collect::<Vec<_>>()
            })
            .collect();
        events.sort_unstable();
        for (offset, partition) in events {
            sleep_until(wall(offset));
            let ms = SIM_START + offset;
            xadd(raw, partition, ms);
            last_write.insert((partition, ms / HOUR_MS), Instant::now());
            entries += 1;
        }
    }
    sleep_until(wall(a.sim_hours * HOUR_MS));
    let closing = SIM_START + (a.sim_hours + 24) * HOUR_MS;
    for partition in 0..p {
        xadd(raw, partition, closing);
        entries += 1;
    }
    Produced {
        entries,
        last_write,
        secs: start.elapsed().as_secs_f64(),
        end: Instant::now(),
    }
}

fn sleep_until(at: Instant) {
    if let Some(wait) = at.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
}

/// Waits until the archive has not changed for [`SETTLED`]; answers the seconds from `end` to
/// its last change.
fn settle(archive: &Path, end: Instant) -> f64 {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut objects: HashSet<PathBuf> = HashSet::new();
    let mut changed = Instant::now();
    loop {
        let now: HashSet<PathBuf> = local_objects(archive).into_iter().map(|(p, _)| p).collect();
        if now != objects {
            objects = now;
            changed = Instant::now();
        } else if changed.elapsed() >= SETTLED {
            return changed.saturating_duration_since(end).as_secs_f64();
        }
        if Instant::now() > deadline {
            println!("warning: the archive still changed {SETTLE_TIMEOUT:?} after the closing writes");
            return changed.saturating_duration_since(end).as_secs_f64();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
