//! `--shape restore`: what a faithful restore costs. One stream of N entries (1M, about 100
//! bytes of fields each) with three consumer groups (one caught up, one behind with 15,000
//! entries pending on two consumers, one stalled after 100 entries) is archived whole
//! (`archive --once --flush`), Redis is flushed, and `streamtier restore` brings the stream and
//! its groups back. Measured: the restore's time and peak RSS, Redis' memory for the source and
//! for the restored stream and its peak while restoring, and whether the groups came back equal;
//! also `streamtier read` of a tenth of the archive and of all of it (time, peak RSS).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::util::{streamtier, streamtier_run, write_config};
use crate::Args;

const T0: u64 = 1_700_000_000_000;

fn used_memory(con: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("memory").query(con).expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// `XINFO GROUPS` of `key`, without `lag`'s dependence on nothing but the counters.
fn groups(con: &mut redis::Connection, key: &str) -> redis::Value {
    redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(key)
        .query(con)
        .expect("XINFO GROUPS")
}

fn pending(con: &mut redis::Connection, key: &str, group: &str) -> redis::Value {
    redis::cmd("XPENDING")
        .arg(key)
        .arg(group)
        .arg("-")
        .arg("+")
        .arg(100_000)
        .query::<Vec<redis::Value>>(con)
        .map(|lines| {
            // id, consumer, (idle: left out), deliveries
            redis::Value::Array(
                lines
                    .into_iter()
                    .map(|l| match l {
                        redis::Value::Array(f) => {
                            redis::Value::Array(vec![f[0].clone(), f[1].clone(), f[3].clone()])
                        }
                        other => other,
                    })
                    .collect(),
            )
        })
        .expect("XPENDING")
}

fn read_group(con: &mut redis::Connection, group: &str, consumer: &str, n: usize) {
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(group)
        .arg(consumer)
        .arg("COUNT")
        .arg(n)
        .arg("STREAMS")
        .arg("bench:0")
        .arg(">")
        .query(con)
        .expect("XREADGROUP");
}

pub fn run(a: &Args, url: &str, addr: &str, work: &Path) {
    let n = a.entries;
    crate::util::load_stream(addr, "bench:0", T0, n, |i| {
        vec![
            ("user".to_string(), format!("user-{}", i % 10_007)),
            ("amount".to_string(), format!("{}.{:02}", i % 1000, i % 100)),
            (
                "note".to_string(),
                format!("order {i} of the restore benchmark, padded to about 100 B"),
            ),
        ]
    });
    let mut con = redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .expect("connect");
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("bench:0")
        .arg("caught")
        .arg("$")
        .arg("ENTRIESREAD")
        .arg(n)
        .query(&mut con)
        .expect("XGROUP");
    for (group, at) in [("behind", "0"), ("stalled", "0")] {
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg("bench:0")
            .arg(group)
            .arg(at)
            .query(&mut con)
            .expect("XGROUP");
    }
    read_group(&mut con, "behind", "c1", 10_000);
    read_group(&mut con, "behind", "c2", 5_000);
    read_group(&mut con, "stalled", "s", 100);
    let source_memory = used_memory(&mut con);
    let source_groups = groups(&mut con, "bench:0");
    let source_pending: Vec<_> = ["caught", "behind", "stalled"]
        .iter()
        .map(|g| pending(&mut con, "bench:0", g))
        .collect();

    let store = work.join("archive");
    let config = work.join("restore.toml");
    write_config(
        &config,
        url,
        &store,
        1,
        n,
        "[archive]\ngroup_snapshot_interval = \"1ms\"\ngroup_snapshot_max_pending = 100000\n",
    );
    let cfg = config.to_str().expect("utf-8 path");
    let (archive_secs, _, _) = streamtier(&["archive", "--once", "--flush", "--config", cfg], &[]);
    // Reading the archive without Redis writes: a tenth of it, then all of it.
    let tenth = (n / 10).to_string();
    let reads: Vec<(u64, crate::util::Run)> = [Some(tenth.as_str()), None]
        .into_iter()
        .map(|limit| {
            let mut args = vec!["read", "--topic", "bench", "--partition", "0", "--config", cfg];
            args.extend(limit.map(|l| ["--limit", l]).into_iter().flatten());
            let run = streamtier_run(&args, &[]);
            assert!(run.code == Some(0), "read failed: {}", run.stderr);
            (run.stdout.lines().count() as u64, run)
        })
        .collect();
    let _: () = redis::cmd("FLUSHALL").query(&mut con).expect("FLUSHALL");
    let empty_memory = used_memory(&mut con);

    // Redis' memory while the restore runs, sampled every 50 ms.
    let peak = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done, url) = (peak.clone(), done.clone(), url.to_string());
        std::thread::spawn(move || {
            let mut con = redis::Client::open(url.as_str())
                .and_then(|c| c.get_connection())
                .expect("connect");
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(used_memory(&mut con), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let restore = streamtier_run(
        &[
            "restore",
            "--topic",
            "bench",
            "--target",
            "restored:{partition}",
            "--config",
            cfg,
        ],
        &[],
    );
    done.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    assert!(
        restore.code == Some(0),
        "restore failed:\n{}\n{}",
        restore.stdout,
        restore.stderr
    );
    let restored_memory = used_memory(&mut con);
    let len: u64 = redis::cmd("XLEN")
        .arg("restored:0")
        .query(&mut con)
        .expect("XLEN");
    let same_groups = groups(&mut con, "restored:0") == source_groups;
    let same_pending = ["caught", "behind", "stalled"]
        .iter()
        .map(|g| pending(&mut con, "restored:0", g))
        .collect::<Vec<_>>()
        == source_pending;
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let pending_total: usize = source_pending
        .iter()
        .map(|p| match p {
            redis::Value::Array(lines) => lines.len(),
            _ => 0,
        })
        .sum();
    println!("\nrestore: {n} entries, 3 consumer groups ({pending_total} entries pending), one partition");
    println!("- archive --once --flush: {archive_secs:.1} s");
    for (lines, run) in &reads {
        println!(
            "- streamtier read of {lines} entries (JSON lines): {:.1} s ({:.0} entries/s), peak RSS {:.0} MiB",
            run.secs,
            *lines as f64 / run.secs,
            run.rss
        );
    }
    println!(
        "- restore: {:.1} s ({:.0} entries/s), peak RSS {:.0} MiB, CPU {:.1} s",
        restore.secs,
        len as f64 / restore.secs,
        restore.rss,
        restore.cpu
    );
    println!(
        "- Redis used_memory: source {:.0} MiB; empty {:.1} MiB; restored {:.0} MiB; peak while restoring {:.0} MiB",
        mib(source_memory),
        mib(empty_memory),
        mib(restored_memory),
        mib(peak.load(Ordering::Relaxed))
    );
    println!(
        "- restored {len} entries; XINFO GROUPS equal: {same_groups}; XPENDING (ids, consumers, deliveries) equal: {same_pending}"
    );
}
