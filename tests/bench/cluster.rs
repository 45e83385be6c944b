//! `--cluster`: the same dense entries on a single server and on a three-primary Redis Cluster
//! of local servers, one after the other in one run, each measured against its own raw limits
//! (the raw reader and writer connect to the node that holds each stream). The question is
//! whether the cluster costs streamtier more than it costs a plain client: its ratios should be
//! at least 0.9x the single server's.

use std::path::Path;

use crate::redis_server::{RedisCluster, RedisServer};
use crate::resp::{self, Raw, Xadds};
use crate::rounds::{Pair, Rounds};
use crate::util::{streamtier_run, write_config};
use crate::Args;

/// Where each stream lives.
enum Deployment {
    Single(RedisServer),
    Cluster(RedisCluster),
}

impl Deployment {
    fn name(&self) -> &'static str {
        match self {
            Deployment::Single(_) => "single server",
            Deployment::Cluster(_) => "3-node cluster",
        }
    }

    fn url(&self) -> String {
        match self {
            Deployment::Single(s) => s.url(),
            Deployment::Cluster(c) => c.url(),
        }
    }

    fn addrs(&self) -> Vec<String> {
        let addr = |s: &RedisServer| s.url().trim_start_matches("redis://").to_string();
        match self {
            Deployment::Single(s) => vec![addr(s)],
            Deployment::Cluster(c) => c.nodes.iter().map(addr).collect(),
        }
    }

    /// The server holding `key`: on a cluster, the one that does not redirect a `TYPE` of it.
    fn addr_of(&self, key: &str) -> String {
        let addrs = self.addrs();
        if addrs.len() == 1 {
            return addrs[0].clone();
        }
        addrs
            .into_iter()
            .find(|a| {
                let mut con = redis::Client::open(format!("redis://{a}"))
                    .and_then(|c| c.get_connection())
                    .expect("connect to a node");
                redis::cmd("TYPE").arg(key).query::<String>(&mut con).is_ok()
            })
            .unwrap_or_else(|| panic!("no node serves `{key}`"))
    }

    fn pids(&self) -> Vec<u32> {
        match self {
            Deployment::Single(s) => vec![s.pid()],
            Deployment::Cluster(c) => c.nodes.iter().map(RedisServer::pid).collect(),
        }
    }

    /// Redis' CPU seconds so far, all nodes together.
    fn cpu_seconds(&self) -> f64 {
        self.addrs().iter().map(|a| Raw::connect(a).cpu_seconds()).sum()
    }

    fn del(&self, key: &str) {
        let deleted = Raw::connect(&self.addr_of(key)).integer(&["DEL", key]);
        assert!(deleted <= 1, "DEL {key}");
    }
}

/// The rounds of one deployment, with streamtier's CPU seconds in each.
struct Measured {
    name: &'static str,
    archive: (Rounds, Vec<f64>),
    replay_new: (Rounds, Vec<f64>),
    replay_original: (Rounds, Vec<f64>),
    entries: u64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[(v.len() - 1) / 2]
}

pub fn run(a: &Args, work: &Path) {
    let p = a.partitions;
    let crate::data::Loaded { mut xadds, .. } = crate::data::load(a);
    let n = xadds.len();
    let mut results = Vec::new();
    if a.pin {
        // Children started from now on (streamtier) inherit this process's CPU.
        taskset(&["-a", "-p", "-c", "1", &std::process::id().to_string()]);
    }
    for start in [
        || Deployment::Single(RedisServer::start()),
        || Deployment::Cluster(RedisCluster::start()),
    ] {
        let deployment = start();
        if a.pin {
            for pid in deployment.pids() {
                taskset(&["-p", "-c", "0", &pid.to_string()]);
            }
        }
        eprintln!("measuring on a {}", deployment.name());
        results.push(measure(
            a,
            &deployment,
            &mut xadds,
            &work.join(deployment.name().replace(' ', "-")),
        ));
        assert_eq!(results.last().map(|m| m.entries), Some(n));
    }
    let pinned = if a.pin {
        "; Redis on CPU 0, streamtier and the raw clients on CPU 1"
    } else {
        ""
    };
    println!(
        "\n{n} dense entries in {p} partitions, rounds: {}{pinned}; each ratio is streamtier's rate over \
         the raw client's on the same deployment (median round)\n",
        a.rounds
    );
    println!(
        "| phase | {} | {} | cluster / single |",
        results[0].name, results[1].name
    );
    println!("|---|---:|---:|---:|");
    let row = |label: &str, get: fn(&Measured) -> &(Rounds, Vec<f64>)| {
        let (s, c) = (get(&results[0]).0.median(), get(&results[1]).0.median());
        println!(
            "| {label} | {:.2}x ({:.0}k/s) | {:.2}x ({:.0}k/s) | {:.2} |",
            s.ratio(),
            n as f64 / s.secs / 1e3,
            c.ratio(),
            n as f64 / c.secs / 1e3,
            c.ratio() / s.ratio()
        );
    };
    row("archive --once (local) vs raw XRANGE", |m| &m.archive);
    row("replay, new ids vs raw XADD", |m| &m.replay_new);
    row("replay, original ids vs raw XADD", |m| &m.replay_original);
    println!(
        "\nSeconds in the median round: wall / Redis CPU during the phase, and wall / Redis CPU for the \
         raw client; streamtier's CPU seconds (median over rounds)"
    );
    for m in &results {
        for (label, r) in [
            ("archive", &m.archive),
            ("replay new", &m.replay_new),
            ("replay original", &m.replay_original),
        ] {
            let p = r.0.median();
            println!(
                "{}, {label}: {:.2} / {:.2} s; raw {:.2} / {:.2} s; streamtier CPU {:.2} s; ratios {:?}",
                m.name,
                p.secs,
                p.cpu,
                p.limit_secs,
                p.limit_cpu,
                median(r.1.clone()),
                r.0.ratios()
                    .iter()
                    .map(|x| (x * 100.0).round() / 100.0)
                    .collect::<Vec<_>>()
            );
        }
    }
}

fn taskset(args: &[&str]) {
    let out = std::process::Command::new("taskset")
        .args(args)
        .output()
        .expect("taskset (util-linux) for --pin");
    assert!(
        out.status.success(),
        "taskset {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs streamtier with `args` (which must succeed) and records the round beside its raw
/// `limit` (seconds, Redis CPU seconds), with Redis' and streamtier's CPU.
fn phase(d: &Deployment, rounds: &mut (Rounds, Vec<f64>), limit: (f64, f64), args: &[&str]) {
    let cpu = d.cpu_seconds();
    let run = streamtier_run(args, &[]);
    assert_eq!(
        run.code,
        Some(0),
        "streamtier {args:?} failed:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    rounds.0.push(Pair {
        limit_secs: limit.0,
        limit_cpu: limit.1,
        secs: run.secs,
        cpu: d.cpu_seconds() - cpu,
        rss: run.rss,
    });
    rounds.1.push(run.cpu);
}

fn measure(a: &Args, d: &Deployment, xadds: &mut Xadds, work: &Path) -> Measured {
    let p = a.partitions as usize;
    let n = xadds.len();
    let node_of =
        |prefix: &str| -> Vec<String> { (0..p).map(|i| d.addr_of(&format!("{prefix}:{i}"))).collect() };
    xadds.rename("bench");
    let bench_nodes = node_of("bench");
    xadds.write_routed(|i| bench_nodes[i].clone());
    let archive_dir = work.join("archive");
    let config = work.join("bench.toml");
    std::fs::create_dir_all(work).expect("work dir");
    write_config(&config, &d.url(), &archive_dir, a.partitions, n, "");
    let cfg = config.to_str().expect("utf-8 path");
    let keys: Vec<(String, String)> = (0..p)
        .map(|i| (bench_nodes[i].clone(), format!("bench:{i}")))
        .collect();

    let mut archive = (Rounds::default(), Vec::new());
    for round in 0..a.rounds {
        if round > 0 {
            std::fs::remove_dir_all(&archive_dir).expect("clear the archive");
            for i in 0..p {
                d.del(&format!("streamtier:chain:{{bench:{i}}}"));
            }
        }
        let (cpu, start) = (d.cpu_seconds(), std::time::Instant::now());
        let (read, _) = resp::xrange_routed(&keys, 1000);
        let limit_secs = start.elapsed().as_secs_f64();
        let limit_cpu = d.cpu_seconds() - cpu;
        assert_eq!(read, n, "the raw reader saw every entry");
        phase(
            d,
            &mut archive,
            (limit_secs, limit_cpu),
            &["archive", "--once", "--config", cfg],
        );
    }

    xadds.rename("rawxa");
    let raw_nodes = node_of("rawxa");
    let replay = |ids: &str| {
        let mut rounds = (Rounds::default(), Vec::new());
        for round in 0..a.rounds {
            let cpu = d.cpu_seconds();
            let limit_secs = xadds.write_routed(|i| raw_nodes[i].clone());
            let limit_cpu = d.cpu_seconds() - cpu;
            for i in 0..p {
                d.del(&format!("rawxa:{i}"));
            }
            let target = format!("{ids}{round}:{{partition}}");
            let args = [
                "replay", "--config", cfg, "--topic", "bench", "--ids", ids, "--target", &target,
            ];
            phase(d, &mut rounds, (limit_secs, limit_cpu), &args);
            for i in 0..p {
                d.del(&format!("{ids}{round}:{i}"));
            }
        }
        rounds
    };
    let replay_new = replay("new");
    let replay_original = replay("original");
    Measured {
        name: d.name(),
        archive,
        replay_new,
        replay_original,
        entries: n,
    }
}
