//! The `[replay]` settings as a person writes them, and their checked form.

use serde::{Deserialize, Serialize};

use crate::engine::ReplayLimits;
use crate::{Error, Result};

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
        if self.max_jobs == 0 {
            return Err(invalid("max_jobs", "must be at least 1"));
        }
        if self.partition_concurrency == 0 {
            return Err(invalid("partition_concurrency", "must be at least 1"));
        }
        if self.max_rate == 0 {
            return Err(invalid("max_rate", "must be at least 1"));
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
    }
}
