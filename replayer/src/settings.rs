//! The `[replay]` settings as a person writes them, and their checked form.

use serde::{Deserialize, Serialize};

use crate::engine::{MemoryBound, ReplayLimits};
use crate::{Error, Result};

/// The most `replay.max_jobs` allows: each running job holds its partitions' read-ahead.
pub const MAX_JOBS: usize = 64;
/// The most `replay.partition_concurrency` allows: each partition replayed at once holds its
/// read-ahead.
pub const MAX_PARTITION_CONCURRENCY: usize = 1024;
/// The most `replay.max_rate` allows, in entries per second: far above what one Redis takes,
/// so that it also serves as "unbounded".
pub const MAX_RATE: u64 = 1_000_000_000;

/// The `[replay]` section.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplaySettings {
    /// Jobs that run at once; the rest queue.
    pub max_jobs: usize,
    /// Partitions of one job replayed at once.
    pub partition_concurrency: usize,
    /// Entries per second for a job that does not set `rate_limit`.
    pub default_rate: u64,
    /// Most entries per second for one job, and for all jobs together.
    pub max_rate: u64,
    /// Glob patterns (`*`, `?`) of keys replays may write. Empty: any key except the source
    /// streams and streamtier's own keys; a source stream is writable only when listed here.
    pub allowed_targets: Vec<String>,
    /// A replay waits while its target holds more entries than this that its consumer groups
    /// have not been delivered (more entries in all, without groups); 0: no bound. A request
    /// may set its own.
    pub max_target_backlog: u64,
    /// A replay waits while Redis' memory would pass this: a size (`"2GiB"`), a share of
    /// `maxmemory` (`"80%"`; of the machine's memory when Redis has none) or `"off"`.
    pub max_redis_memory: String,
}

impl Default for ReplaySettings {
    fn default() -> Self {
        let limits = ReplayLimits::default();
        ReplaySettings {
            max_jobs: limits.max_jobs,
            partition_concurrency: limits.partition_concurrency,
            default_rate: limits.default_rate,
            max_rate: limits.max_rate,
            allowed_targets: Vec::new(),
            max_target_backlog: crate::engine::DEFAULT_MAX_TARGET_BACKLOG,
            max_redis_memory: format!("{}%", crate::engine::DEFAULT_MAX_REDIS_MEMORY_PERCENT),
        }
    }
}

impl ReplaySettings {
    /// Checks the section.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the key (`replay.max_jobs`, …).
    pub fn check(&self) -> Result<ReplayLimits> {
        let invalid = |field: &str, reason: &str| Error::Invalid {
            field: format!("replay.{field}"),
            reason: reason.into(),
        };
        if !(1..=MAX_JOBS).contains(&self.max_jobs) {
            return Err(invalid("max_jobs", &format!("must be between 1 and {MAX_JOBS}")));
        }
        if !(1..=MAX_PARTITION_CONCURRENCY).contains(&self.partition_concurrency) {
            return Err(invalid(
                "partition_concurrency",
                &format!("must be between 1 and {MAX_PARTITION_CONCURRENCY}"),
            ));
        }
        if !(1..=MAX_RATE).contains(&self.max_rate) {
            return Err(invalid("max_rate", &format!("must be between 1 and {MAX_RATE}")));
        }
        if self.default_rate == 0 || self.default_rate > self.max_rate {
            return Err(invalid("default_rate", "must be between 1 and replay.max_rate"));
        }
        for (i, pattern) in self.allowed_targets.iter().enumerate() {
            if pattern.is_empty() {
                return Err(Error::Invalid {
                    field: format!("replay.allowed_targets[{i}]"),
                    reason: "an empty pattern matches nothing".into(),
                });
            }
        }
        Ok(ReplayLimits {
            max_jobs: self.max_jobs,
            partition_concurrency: self.partition_concurrency,
            default_rate: self.default_rate,
            max_rate: self.max_rate,
            max_target_backlog: (self.max_target_backlog > 0).then_some(self.max_target_backlog),
            max_redis_memory: MemoryBound::parse("replay.max_redis_memory", &self.max_redis_memory)?,
            ..ReplayLimits::default()
        })
    }
}

/// Matches `text` against a glob with `*` (any run) and `?` (any one character).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("orders-replay:*", "orders-replay:3"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a?c*", "abcdef"));
        assert!(!glob_match("a?c", "abcd"));
        assert!(!glob_match("orders:*", "orders-replay:1"));
        assert!(glob_match("*:*:*", "a:b:c"));
    }

    #[test]
    fn bad_settings_name_their_key() {
        let s = ReplaySettings {
            default_rate: 10,
            max_rate: 5,
            ..ReplaySettings::default()
        };
        assert!(s.check().unwrap_err().to_string().contains("replay.default_rate"));
        assert!(ReplaySettings::default().check().is_ok());
        // Numbers that size memory or tasks are bounded (a huge `max_jobs` made the job
        // semaphore panic).
        let huge = [
            ReplaySettings {
                max_jobs: usize::MAX,
                ..ReplaySettings::default()
            },
            ReplaySettings {
                partition_concurrency: MAX_PARTITION_CONCURRENCY + 1,
                ..ReplaySettings::default()
            },
            ReplaySettings {
                max_rate: u64::MAX,
                ..ReplaySettings::default()
            },
        ];
        for (s, key) in huge.iter().zip(["max_jobs", "partition_concurrency", "max_rate"]) {
            let err = s.check().unwrap_err().to_string();
            assert!(
                err.contains(&format!("replay.{key}")) && err.contains("must be between 1 and"),
                "{err}"
            );
        }
        for bad in ["lots", "0%", "120%", "0", "-1GiB"] {
            let s = ReplaySettings {
                max_redis_memory: bad.into(),
                ..ReplaySettings::default()
            };
            let err = s.check().unwrap_err().to_string();
            assert!(
                err.contains("replay.max_redis_memory") && err.contains(bad),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn memory_bounds_are_sizes_shares_or_off() {
        let limits = ReplaySettings::default().check().unwrap();
        assert_eq!(limits.max_redis_memory, MemoryBound::Percent(80));
        assert_eq!(limits.max_target_backlog, Some(1_000_000));
        assert_eq!(
            MemoryBound::parse("f", "2GiB").unwrap(),
            MemoryBound::Bytes(2 << 30)
        );
        assert_eq!(MemoryBound::parse("f", "off").unwrap(), MemoryBound::Off);
        let p = streamtier_tiers::hot::Pressure {
            maxmemory: 1000,
            total_system_memory: 1_000_000,
            ..Default::default()
        };
        assert_eq!(MemoryBound::Percent(80).bytes(&p), Some(800));
        let no_max = streamtier_tiers::hot::Pressure { maxmemory: 0, ..p };
        assert_eq!(MemoryBound::Percent(80).bytes(&no_max), Some(800_000));
        assert_eq!(MemoryBound::Off.bytes(&p), None);
    }
}
