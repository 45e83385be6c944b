//! `--shape idle`: what the archiver daemon costs at rest, and how several of them share the
//! partitions. P partitions (2,000) each get one entry in a long-closed hour; K archiver daemons
//! (`--archivers`, 3) archive them, then nothing happens: the benchmark measures Redis commands,
//! Redis CPU and the archivers' CPU per second over 20 s, counts the leases each archiver holds,
//! kills one with SIGKILL and times until every partition it held is held again.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::resp::{encode_xadd, Raw};
use crate::stats::{local_objects, Commands};
use crate::Args;

/// How long the resting cost is measured.
const WINDOW: Duration = Duration::from_secs(20);

/// CPU seconds a process used so far (`utime` + `stime` of `/proc/<pid>/stat`, 100 Hz ticks).
fn process_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // Fields 14 and 15 of the line; the split starts at field 3.
    f.get(11).zip(f.get(12)).map_or(0.0, |(u, s)| (u + s) / 100.0)
}

/// Lease holders: owner id -> leases held.
fn leases(addr: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut con = redis::Client::open(format!("redis://{addr}"))
        .and_then(|c| c.get_connection())
        .expect("connect");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("streamtier:lease:*")
        .query(&mut con)
        .expect("KEYS");
    let mut by_owner = std::collections::BTreeMap::<String, Vec<String>>::new();
    for chunk in keys.chunks(1000) {
        let owners: Vec<Option<String>> = redis::cmd("MGET").arg(chunk).query(&mut con).expect("MGET");
        for (key, owner) in chunk.iter().zip(owners) {
            if let Some(owner) = owner {
                by_owner.entry(owner).or_default().push(key.clone());
            }
        }
    }
    by_owner
}

/// The process id inside an owner id (`host-PID-random`).
fn owner_pid(owner: &str) -> Option<u32> {
    owner.rsplit('-').nth(1)?.parse().ok()
}

fn spawn(config: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_streamtier"))
        .args(["archive", "--config", config])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the archiver")
}

pub fn run(a: &Args, url: &str, addr: &str, work: &Path) {
    let p = a.partitions;
    let k = a.archivers;
    // One entry per partition, in a long-closed hour (2025-01-01), written in one pipeline.
    let mut raw = Raw::connect(addr);
    let mut buf = Vec::new();
    for i in 0..p {
        let id = format!("{}-0", 1_735_689_600_000 + i);
        encode_xadd(
            &mut buf,
            &format!("bench:{i}"),
            &(id, vec![("v".into(), i.to_string())]),
        );
    }
    raw.duplex(p as usize, |out| {
        std::io::Write::write_all(out, &buf).expect("write")
    });
    let archive = work.join("archive");
    let config = work.join("idle.toml");
    std::fs::write(
        &config,
        format!(
            "[redis]\nurl = \"{url}\"\n[store]\nurl = \"{}\"\n[[topics]]\nname = \"bench\"\n\
             streams = \"bench:{{partition}}\"\npartitions = {p}\nretain_entries = 0\nretain_for = \"0s\"\n",
            archive.display()
        ),
    )
    .expect("config");
    let cfg = config.to_str().expect("utf-8 path");
    let started = Instant::now();
    let mut children: Vec<Child> = (0..k).map(|_| spawn(cfg)).collect();
    let deadline = started + Duration::from_secs(600);
    while (local_objects(&archive).len() as u64) < p {
        assert!(
            Instant::now() < deadline,
            "the archivers did not archive {p} partitions in 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let archived_secs = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(5));

    let before = Commands::snapshot(&mut raw);
    let redis_cpu = raw.cpu_seconds();
    let cpus: Vec<f64> = children.iter().map(|c| process_cpu(c.id())).collect();
    let t = Instant::now();
    std::thread::sleep(WINDOW);
    let secs = t.elapsed().as_secs_f64();
    let commands = Commands::snapshot(&mut raw).since(&before);
    let redis_cpu = raw.cpu_seconds() - redis_cpu;
    let archiver_cpu: f64 = children
        .iter()
        .zip(&cpus)
        .map(|(c, before)| process_cpu(c.id()) - before)
        .sum();
    let held = leases(addr);
    let shares: Vec<usize> = held.values().map(Vec::len).collect();

    println!("\nidle: {p} partitions, {k} archiver daemons (poll_interval 1s, lease_ttl 30s, defaults)");
    println!("- first archive of one entry per partition: {archived_secs:.1} s");
    println!(
        "- at rest, per second: {:.0} Redis commands ({:.2} per partition), Redis CPU {:.1} % of a core \
         ({:.1} us per partition), archivers' CPU {:.1} % of a core in all",
        commands.total() as f64 / secs,
        commands.total() as f64 / secs / p as f64,
        100.0 * redis_cpu / secs,
        1e6 * redis_cpu / secs / p as f64,
        100.0 * archiver_cpu / secs
    );
    println!("- commands: {}", commands.compact());
    println!("- leases held per archiver: {shares:?}");

    if k >= 2 {
        // SIGKILL the archiver holding the most leases; time until all of them are held again.
        let (victim_owner, victim_leases) = held
            .iter()
            .max_by_key(|(_, v)| v.len())
            .map(|(o, v)| (o.clone(), v.clone()))
            .expect("leases are held");
        let pid = owner_pid(&victim_owner).expect("pid in owner id");
        let idx = children
            .iter()
            .position(|c| c.id() == pid)
            .expect("the owner is one of ours");
        let mut victim = children.remove(idx);
        let killed = Instant::now();
        victim.kill().expect("kill -9");
        victim.wait().expect("reap");
        let taken_over = loop {
            let now = leases(addr);
            let orphaned = victim_leases
                .iter()
                .filter(|key| !now.iter().any(|(o, v)| *o != victim_owner && v.contains(key)))
                .count();
            if orphaned == 0 {
                break killed.elapsed().as_secs_f64();
            }
            assert!(
                killed.elapsed() < Duration::from_secs(300),
                "{orphaned} leases not taken over in 5 minutes"
            );
            std::thread::sleep(Duration::from_millis(250));
        };
        let shares: Vec<usize> = leases(addr).values().map(Vec::len).collect();
        println!(
            "- kill -9 of the archiver holding {} leases: all held again after {taken_over:.1} s; \
             leases held per archiver now: {shares:?}",
            victim_leases.len()
        );
    }
    for mut c in children {
        let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        let _ = c.wait();
    }
}
