//! `--shape flow`: Redis' memory during a replay larger than Redis, with and without flow
//! control. N entries (1M, about 100 bytes of fields) are archived and trimmed away, Redis gets
//! a `maxmemory` below what the replay writes (64 MB, `noeviction`), and a producer writes into
//! its own stream every millisecond. The replay runs twice into a target nobody consumes:
//! without bounds (`max_redis_memory = "off"`), then with the default (`80%`) while a janitor
//! empties the target whenever the replay's job says `paused`. Measured: Redis' peak `used_memory`, the
//! producer's refused writes, and how each replay ended.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::util::{streamtier, streamtier_run, write_config};
use crate::Args;

const T0: u64 = 1_700_000_000_000;
const MAXMEMORY: u64 = 64 << 20;

fn connect(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .expect("connect")
}

fn used_memory(con: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("memory").query(con).expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Whether a replay job's record says `paused`.
fn job_paused(con: &mut redis::Connection) -> bool {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("streamtier:replay:job:*")
        .query(con)
        .unwrap_or_default();
    keys.iter().any(|k| {
        redis::cmd("GET")
            .arg(k)
            .query::<String>(con)
            .is_ok_and(|json| json.contains("\"state\":\"paused\""))
    })
}

/// What Redis and a producer saw while one replay ran.
struct Watched {
    peak: u64,
    refused: u64,
    written: u64,
    outcome: String,
    secs: f64,
}

/// Runs `streamtier replay` with `env`, a producer and a sampler (and, with `janitor`, a thread
/// that empties the target whenever the replay's job says `paused`).
fn watched_replay(url: &str, cfg: &str, env: &[(&str, String)], janitor: bool) -> Watched {
    let stop = Arc::new(AtomicBool::new(false));
    let (peak, refused, written) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let producer = {
        let (stop, peak, refused, written) = (stop.clone(), peak.clone(), refused.clone(), written.clone());
        let mut con = connect(url);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let r: redis::RedisResult<String> = redis::cmd("XADD")
                    .arg("live:0")
                    .arg("MAXLEN")
                    .arg(1000)
                    .arg("*")
                    .arg("k")
                    .arg("v")
                    .query(&mut con);
                if r.is_ok() {
                    written.fetch_add(1, Ordering::Relaxed);
                } else {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
                peak.fetch_max(used_memory(&mut con), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let cleaner = janitor.then(|| {
        let stop = stop.clone();
        let mut con = connect(url);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if job_paused(&mut con) {
                    let _: redis::RedisResult<u64> = redis::cmd("XTRIM")
                        .arg("copy:0")
                        .arg("MAXLEN")
                        .arg(0)
                        .query(&mut con);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    });
    let run = streamtier_run(
        &[
            "replay",
            "--topic",
            "bench",
            "--target",
            "copy:{partition}",
            "--config",
            cfg,
        ],
        env,
    );
    stop.store(true, Ordering::Relaxed);
    producer.join().expect("producer");
    if let Some(c) = cleaner {
        c.join().expect("janitor");
    }
    let outcome = match run.code {
        Some(0) => "succeeded".to_string(),
        _ => run
            .stderr
            .lines()
            .rev()
            .find(|l| l.starts_with("error"))
            .unwrap_or("failed")
            .chars()
            .take(140)
            .collect(),
    };
    Watched {
        peak: peak.load(Ordering::Relaxed),
        refused: refused.load(Ordering::Relaxed),
        written: written.load(Ordering::Relaxed),
        outcome,
        secs: run.secs,
    }
}

pub fn run(a: &Args, url: &str, addr: &str, work: &Path) {
    let n = a.entries;
    crate::util::load_stream(addr, "bench:0", T0, n, |i| {
        vec![
            ("user".to_string(), format!("user-{}", i % 10_007)),
            (
                "note".to_string(),
                format!("order {i} of the flow benchmark, padded to about 100 bytes."),
            ),
        ]
    });
    let store = work.join("archive");
    let config = work.join("flow.toml");
    write_config(&config, url, &store, 1, 0, "");
    let cfg = config.to_str().expect("utf-8 path");
    streamtier(&["archive", "--once", "--flush", "--config", cfg], &[]);
    let mut con = connect(url);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(MAXMEMORY)
        .query(&mut con)
        .expect("CONFIG");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .query(&mut con)
        .expect("CONFIG");
    let start = used_memory(&mut con);
    let rate = ("STREAMTIER_REPLAY__DEFAULT_RATE", "200000".to_string());
    let unbounded = watched_replay(
        url,
        cfg,
        &[
            rate.clone(),
            ("STREAMTIER_REPLAY__MAX_REDIS_MEMORY", "off".into()),
            ("STREAMTIER_REPLAY__MAX_TARGET_BACKLOG", "0".into()),
        ],
        false,
    );
    let _: () = redis::cmd("DEL")
        .arg("copy:0")
        .arg("live:0")
        .query(&mut con)
        .expect("DEL");
    let bounded = watched_replay(url, cfg, &[rate], true);
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "\nflow: replay of {n} entries into a Redis with maxmemory {:.0} MiB (noeviction; {:.1} MiB used at the start), a producer writing every ms",
        mib(MAXMEMORY),
        mib(start)
    );
    for (label, w) in [
        ("without bounds (max_redis_memory = off)", &unbounded),
        ("with flow control (80%, a janitor emptying the target)", &bounded),
    ] {
        println!(
            "- {label}: Redis peak {:.1} MiB; producer writes refused {} of {}; replay {} after {:.1} s",
            mib(w.peak),
            w.refused,
            w.refused + w.written,
            w.outcome,
            w.secs
        );
    }
}
