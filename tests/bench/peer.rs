//! The Python peer (`peer.py`, redis-py + pyarrow): the script a user would write instead of
//! streamtier, run beside the local archive phase when its modules are installed.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::resp::Raw;
use crate::stats::ArchiveStats;
use crate::util::redis_load;

/// What the peer did.
pub struct Peer {
    pub entries: u64,
    /// Seconds the script measured itself (reading and writing, not starting Python).
    pub secs: f64,
    pub bytes: u64,
    pub redis_cpu: f64,
}

impl Peer {
    pub fn json(&self) -> Value {
        json!({
            "entries": self.entries, "seconds": self.secs, "bytes": self.bytes,
            "entries_per_s": self.entries as f64 / self.secs,
            "bytes_per_entry": self.bytes as f64 / self.entries.max(1) as f64,
            "redis_cpu_us_per_entry": self.redis_cpu * 1e6 / self.entries.max(1) as f64,
        })
    }
}

/// Runs the peer over `keys` into `out`, or answers `None` (and says so) when Python or its
/// modules are missing.
pub fn run(url: &str, addr: &str, keys: &[String], out: &Path) -> Option<Peer> {
    let usable = Command::new("python3")
        .args(["-c", "import redis, pyarrow"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !usable {
        println!("python peer: skipped (pip install redis pyarrow)");
        return None;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bench/peer.py");
    let mut raw = Raw::connect(addr);
    let cpu = raw.cpu_seconds();
    let output = Command::new("python3")
        .arg(script)
        .args(["--url", url, "--keys", &keys.join(","), "--out"])
        .arg(out)
        .output()
        .expect("run python3");
    let redis_cpu = raw.cpu_seconds() - cpu;
    assert!(
        output.status.success(),
        "python peer failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("python peer printed no JSON line:\n{stdout}"));
    let number = |k: &str| {
        line[k]
            .as_f64()
            .unwrap_or_else(|| panic!("peer JSON lacks `{k}`: {line}"))
    };
    Some(Peer {
        entries: number("entries") as u64,
        secs: number("seconds"),
        bytes: number("bytes") as u64,
        redis_cpu,
    })
}

/// The Python peer's row: its rate and size, and the archive's as a multiple of them.
pub fn row(peer: Option<&Peer>, local: &ArchiveStats) -> (String, String, String) {
    let what = "  python peer".to_string();
    let Some(peer) = peer else {
        return (what, "skipped".into(), "pip install redis pyarrow".into());
    };
    let (rate, size) = (
        peer.entries as f64 / peer.secs,
        peer.bytes as f64 / peer.entries.max(1) as f64,
    );
    let archive_rate = local.entries as f64 / local.secs;
    let archive_size = local.bytes as f64 / local.entries.max(1) as f64;
    (
        what,
        format!("{rate:.0} entries/s, {size:.1} B/entry"),
        format!(
            "archive/peer: {:.2} x entries/s, {:.2} x B/entry; {}",
            archive_rate / rate,
            archive_size / size,
            redis_load(peer.redis_cpu, peer.secs, peer.entries)
        ),
    )
}
