//! Helpers the phases share: running the `streamtier` binary, sizes, the machine, Redis odds.

use std::io::Write;
use std::process::Command;
use std::time::Instant;

/// What one run of the binary did.
pub struct Run {
    /// Wall-clock seconds.
    pub secs: f64,
    /// Peak resident memory, MiB (NaN when not reported).
    pub rss: f64,
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// CPU seconds the process used (user and system).
    pub cpu: f64,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the `streamtier` binary and answers what it did, failed or not.
pub fn streamtier_run(args: &[&str], env: &[(&str, String)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_streamtier"));
    cmd.args(args)
        .env("STREAMTIER_REPORT_PEAK_RSS", "1")
        .env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let start = Instant::now();
    let cpu = children_cpu_seconds();
    let out = cmd.output().expect("run streamtier");
    let secs = start.elapsed().as_secs_f64();
    let cpu = children_cpu_seconds() - cpu;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    Run {
        secs,
        rss: peak_rss(&stderr),
        code: out.status.code(),
        cpu,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    }
}

/// CPU seconds of the children this process has waited for (`cutime` + `cstime` of
/// `/proc/self/stat`, in the kernel's 100 Hz ticks); 0 where there is no `/proc`.
pub fn children_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<f64> = after_name
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    // Fields 16 and 17 of the line; the split starts at field 3.
    fields
        .get(13)
        .zip(fields.get(14))
        .map_or(0.0, |(u, s)| (u + s) / 100.0)
}

/// Runs the `streamtier` binary, which must succeed; answers (seconds, peak RSS in MiB, stdout).
pub fn streamtier(args: &[&str], env: &[(&str, String)]) -> (f64, f64, String) {
    let run = streamtier_run(args, env);
    assert!(
        run.code == Some(0),
        "streamtier {args:?} failed ({:?}):\n{}\n{}",
        run.code,
        run.stdout,
        run.stderr
    );
    (run.secs, run.rss, run.stdout)
}

/// The `peak_rss_kib=` line the binary prints with `STREAMTIER_REPORT_PEAK_RSS`, in MiB.
pub fn peak_rss(stderr: &str) -> f64 {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak_rss_kib="))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

pub fn dir_bytes(path: &std::path::Path) -> u64 {
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

pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map_or("?", |m| m.trim_start_matches([' ', '\t', ':']));
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cores} cores")
}

/// What a phase cost Redis: CPU per entry, and the share of the phase it was busy.
pub fn redis_load(cpu_secs: f64, secs: f64, n: u64) -> String {
    format!(
        "Redis {:.1} us/entry, busy {:.0} %",
        cpu_secs * 1e6 / n as f64,
        100.0 * cpu_secs / secs
    )
}

/// A writer that only counts bytes.
pub struct Counter(pub u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sends one raw command on a new connection and answers its integer reply (0 if none).
pub fn memory_usage(addr: &str, cmd: &[u8]) -> u64 {
    use std::io::BufRead;
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.write_all(cmd).expect("write");
    let mut line = String::new();
    std::io::BufReader::new(s).read_line(&mut line).expect("read");
    line.trim().trim_start_matches(':').parse().unwrap_or(0)
}

/// Deletes the archiver's cache of each partition's archive chain, so that the next archive
/// run starts from its (new or emptied) store.
pub fn clear_chains(addr: &str, partitions: u64) {
    for i in 0..partitions {
        let key = format!("streamtier:chain:{{bench:{i}}}");
        let cmd = format!("*2\r\n$3\r\nDEL\r\n${}\r\n{key}\r\n", key.len());
        memory_usage(addr, cmd.as_bytes());
    }
}

/// The benchmark's configuration file: topic `bench` over `bench:{partition}`, nothing trimmed
/// that the replays need, and `extra` TOML appended.
pub fn write_config(
    path: &std::path::Path,
    url: &str,
    store: &std::path::Path,
    p: u64,
    retain: u64,
    extra: &str,
) {
    std::fs::write(
        path,
        format!(
            "[redis]\nurl = \"{url}\"\n[store]\nurl = \"{}\"\n[replay]\nmax_rate = 1000000000\ndefault_rate = 1000000000\n\
             partition_concurrency = {p}\n[[topics]]\nname = \"bench\"\nstreams = \"bench:{{partition}}\"\npartitions = {p}\n\
             retain_entries = {retain}\nretain_for = \"1000d\"\n{extra}",
            store.display()
        ),
    )
    .expect("config");
}

/// Writes `n` entries into `key` with ids `t0 + i` and the fields `fields(i)`, pipelined in
/// chunks of 10,000.
pub fn load_stream(addr: &str, key: &str, t0: u64, n: u64, fields: impl Fn(u64) -> Vec<(String, String)>) {
    let mut raw = crate::resp::Raw::connect(addr);
    let mut buf = Vec::new();
    let mut queued = 0;
    for i in 0..n {
        crate::resp::encode_xadd(&mut buf, key, &(format!("{}-0", t0 + i), fields(i)));
        queued += 1;
        if queued == 10_000 || i + 1 == n {
            let data = std::mem::take(&mut buf);
            raw.duplex(queued, |out| {
                std::io::Write::write_all(out, &data).expect("write")
            });
            queued = 0;
        }
    }
}
