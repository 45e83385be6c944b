//! What an archive run cost besides time: objects written, Redis commands (from
//! `INFO commandstats`), S3 requests by kind, bytes, all per object or per entry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use streamtier_schemas::layout::parse_object_key;

use crate::resp::Raw;
use crate::shapes::HOUR_MS;

/// Calls per command name, from `INFO commandstats` (`cmdstat_xinfo|stream:calls=3,…`).
#[derive(Clone, Debug, Default)]
pub struct Commands(pub BTreeMap<String, u64>);

impl Commands {
    /// The server's counts now.
    pub fn snapshot(raw: &mut Raw) -> Commands {
        let text = raw.text(&["INFO", "commandstats"]);
        Commands(
            text.lines()
                .filter_map(|l| {
                    let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
                    let calls = rest.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
                    Some((name.to_string(), calls.parse().ok()?))
                })
                .collect(),
        )
    }

    /// The calls made since `before`, without `INFO` (the benchmark's own probes).
    pub fn since(&self, before: &Commands) -> Commands {
        Commands(
            self.0
                .iter()
                .filter(|(name, _)| name.as_str() != "info")
                .map(|(name, n)| (name.clone(), n - before.0.get(name).copied().unwrap_or(0)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        )
    }

    /// These counts less `n` calls of `name` that someone else made (the trickle producer's
    /// XADDs).
    pub fn less(mut self, name: &str, n: u64) -> Commands {
        if let Some(calls) = self.0.get_mut(name) {
            *calls = calls.saturating_sub(n);
        }
        self.0.retain(|_, n| *n > 0);
        self
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// `xrange 120, evalsha 48, …`, most calls first.
    pub fn compact(&self) -> String {
        let mut by: Vec<_> = self.0.iter().collect();
        by.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        by.iter()
            .map(|(name, n)| format!("{name} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The object files under a local archive directory (temporary files and gap records left out).
pub fn local_objects(root: &Path) -> Vec<(PathBuf, u64)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, u64)>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                walk(root, &path, out);
            } else if let Ok(rel) = path.strip_prefix(root) {
                if rel.to_str().and_then(parse_object_key).is_some() {
                    out.push((path.clone(), meta.len()));
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out
}

/// The (partition, UTC hour) of an object key or path, if it is one.
pub fn object_cell(key: &str) -> Option<(u64, u64)> {
    let k = parse_object_key(key)?;
    Some((u64::from(k.partition), k.first_id.ms / HOUR_MS))
}

/// S3 requests by kind: `LIST` is a GET of the bucket itself, the rest go by method.
pub fn s3_requests(log: &[(String, String)], bucket: &str) -> BTreeMap<String, u64> {
    let mut by = BTreeMap::new();
    for (method, path) in log {
        let bucket_only = path.trim_matches('/') == bucket;
        let kind = match method.as_str() {
            "GET" if bucket_only => "LIST",
            other => other,
        };
        *by.entry(kind.to_string()).or_insert(0) += 1;
    }
    by
}

/// What one archive phase wrote and cost.
pub struct ArchiveStats {
    pub entries: u64,
    pub secs: f64,
    pub objects: u64,
    /// (partition, hour) cells that hold entries.
    pub cells: u64,
    pub bytes: u64,
    pub redis_cpu: f64,
    pub commands: Commands,
    /// S3 requests by kind, for the S3 phase.
    pub s3: Option<BTreeMap<String, u64>>,
}

impl ArchiveStats {
    fn per_object(&self, n: u64) -> f64 {
        n as f64 / self.objects.max(1) as f64
    }

    /// Table rows: objects and bytes, Redis commands, S3 requests.
    pub fn rows(&self, what: &str) -> Vec<(String, String, String)> {
        let mut rows = vec![
            (
                format!("  {what}: objects"),
                format!(
                    "{} objects, {:.2}/partition-hour",
                    self.objects,
                    self.objects as f64 / self.cells.max(1) as f64
                ),
                format!(
                    "{:.1} B/entry, {:.0} entries/object, {} partition-hours",
                    self.bytes as f64 / self.entries.max(1) as f64,
                    self.entries as f64 / self.objects.max(1) as f64,
                    self.cells
                ),
            ),
            (
                format!("  {what}: Redis"),
                format!(
                    "{:.1} cmds/object, {:.2} us/entry",
                    self.per_object(self.commands.total()),
                    self.redis_cpu * 1e6 / self.entries.max(1) as f64
                ),
                format!("{} calls: {}", self.commands.total(), self.commands.compact()),
            ),
        ];
        if let Some(s3) = &self.s3 {
            let per: Vec<String> = s3
                .iter()
                .map(|(k, n)| format!("{k} {:.2}", self.per_object(*n)))
                .collect();
            let total: u64 = s3.values().sum();
            rows.push((
                format!("  {what}: S3"),
                format!("{:.2} requests/object", self.per_object(total)),
                format!("per object: {}", per.join(", ")),
            ));
        }
        rows
    }

    pub fn json(&self) -> Value {
        let per_object = |m: &BTreeMap<String, u64>| -> BTreeMap<String, f64> {
            m.iter().map(|(k, n)| (k.clone(), self.per_object(*n))).collect()
        };
        json!({
            "entries": self.entries, "seconds": self.secs,
            "entries_per_s": self.entries as f64 / self.secs,
            "objects": self.objects, "partition_hours": self.cells,
            "objects_per_partition_hour": self.objects as f64 / self.cells.max(1) as f64,
            "bytes": self.bytes, "bytes_per_entry": self.bytes as f64 / self.entries.max(1) as f64,
            "redis_cpu_s": self.redis_cpu,
            "redis_cpu_us_per_entry": self.redis_cpu * 1e6 / self.entries.max(1) as f64,
            "redis_commands": {
                "total": self.commands.total(),
                "per_object": self.per_object(self.commands.total()),
                "by_command": self.commands.0,
                "by_command_per_object": per_object(&self.commands.0),
            },
            "s3_requests": self.s3.as_ref().map(|s3| json!({
                "total": s3.values().sum::<u64>(),
                "by_kind": s3,
                "by_kind_per_object": per_object(s3),
            })),
        })
    }
}
