//! Loading the configuration: defaults, then the TOML file, then `STREAMTIER_SECTION__KEY`
//! environment variables; checked once before anything is touched.

use std::path::Path;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use streamtier_api::{ApiConfig, ApiSettings};
use streamtier_archiver::settings::{
    check_topics, ArchiveConfig, ArchiveSettings, Retention, Topic, TopicSettings,
};
use streamtier_replayer::settings::ReplaySettings;
use streamtier_replayer::ReplayLimits;
use streamtier_tiers::hot::RedisSettings;
use streamtier_tiers::store::StoreSettings;

/// The whole configuration file.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `[redis]`
    #[serde(default)]
    pub redis: RedisSettings,
    /// `[store]`
    #[serde(default)]
    pub store: StoreSettings,
    /// `[archive]`
    #[serde(default)]
    pub archive: ArchiveSettings,
    /// `[[topics]]`; none means discovery.
    #[serde(default)]
    pub topics: Vec<TopicSettings>,
    /// `[api]`
    #[serde(default)]
    pub api: ApiSettings,
    /// `[replay]`
    #[serde(default)]
    pub replay: ReplaySettings,
}

/// The configuration after every check.
#[derive(Clone, Debug)]
pub struct Checked {
    /// The settings as loaded.
    pub settings: Settings,
    /// Checked `[archive]`.
    pub archive: ArchiveConfig,
    /// Checked topics (empty: discovery).
    pub topics: Vec<Topic>,
    /// Checked `[api]`.
    pub api: ApiConfig,
    /// Checked `[replay]`.
    pub replay: ReplayLimits,
}

/// Prefix of the environment variables that are settings.
const ENV_PREFIX: &str = "STREAMTIER_";
/// The sections of [`Settings`]: `STREAMTIER_<SECTION>__<KEY>` is a setting when `<SECTION>`
/// is one of these; other `STREAMTIER_*` variables (Kubernetes' service links
/// `STREAMTIER_PORT`, `STREAMTIER_SERVICE_HOST`, …) are not settings and are ignored.
const SECTIONS: &[&str] = &["redis", "store", "archive", "topics", "api", "replay"];
/// The largest configuration file read.
const MAX_FILE_BYTES: u64 = 4 << 20;
/// The deepest nesting of `[` and `{` in a variable's value. figment parses values
/// recursively, and a few thousand levels overflow the stack; the TOML parser stops at 80 by
/// itself.
const MAX_NESTING: usize = 32;

/// Loads and checks the configuration; the error names the key that is wrong.
pub fn load(path: Option<&Path>) -> anyhow::Result<Checked> {
    let mut figment = Figment::new();
    if let Some(path) = path {
        if !path.is_file() {
            anyhow::bail!("configuration file `{}` does not exist", path.display());
        }
        let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if len > MAX_FILE_BYTES {
            anyhow::bail!(
                "configuration file `{}` is larger than {} MiB ({len} bytes)",
                path.display(),
                MAX_FILE_BYTES >> 20
            );
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    check(figment.merge(env()?))
}

/// Loads and checks `text` as the configuration file (and the environment), as [`load`].
#[cfg(test)]
pub fn load_text(text: &str) -> anyhow::Result<Checked> {
    check(Figment::new().merge(Toml::string(text)).merge(env()?))
}

/// The environment variables that are settings, once their values are known to parse safely.
fn env() -> anyhow::Result<Env> {
    let env = Env::prefixed(ENV_PREFIX)
        .filter(|key| is_setting(key.as_str()))
        .split("__");
    for (key, value) in env.iter() {
        if nesting(&value) > MAX_NESTING {
            anyhow::bail!(
                "`{ENV_PREFIX}{}`: the value is nested too deeply (more than {MAX_NESTING} levels of `[` or `{{`)",
                key.as_str().replace('.', "__").to_ascii_uppercase()
            );
        }
    }
    Ok(env)
}

/// Whether a `STREAMTIER_` variable (`key` without the prefix) names a setting: a known
/// section, `__`, a key. A known section with an unknown key is a setting, and refused.
fn is_setting(key: &str) -> bool {
    key.split_once("__")
        .is_some_and(|(section, _)| SECTIONS.iter().any(|s| s.eq_ignore_ascii_case(section)))
}

/// The deepest nesting of `[` and `{` outside double-quoted strings (figment's value syntax).
fn nesting(value: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut quoted, mut escaped) = (false, false);
    for c in value.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '[' | '{' if !quoted => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ']' | '}' if !quoted => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// figment's message, led by the variable's name when the value came from the environment.
fn describe(e: &figment::Error) -> String {
    let from_env = e
        .metadata
        .as_ref()
        .is_some_and(|m| m.name.contains("environment variable"));
    if from_env && !e.path.is_empty() {
        let var = e.path.join("__").to_ascii_uppercase();
        format!("`{ENV_PREFIX}{var}`: {e}")
    } else {
        e.to_string()
    }
}

/// Extracts the settings and checks every section.
fn check(figment: Figment) -> anyhow::Result<Checked> {
    let settings: Settings = figment.extract().map_err(|e| {
        let msgs: Vec<String> = e.into_iter().map(|e| describe(&e)).collect();
        anyhow::anyhow!("{}", msgs.join("; "))
    })?;
    settings.redis.validate()?;
    settings.store.check()?;
    let archive = settings.archive.check()?;
    let topics = check_topics(&settings.topics)?;
    let api = settings.api.check()?;
    let replay = settings.replay.check()?;
    Ok(Checked {
        settings,
        archive,
        topics,
        api,
        replay,
    })
}

impl Checked {
    /// Where the API finds topics.
    pub fn catalog(&self) -> streamtier_api::Catalog {
        if self.topics.is_empty() {
            streamtier_api::Catalog::Discover(Retention::default())
        } else {
            streamtier_api::Catalog::Topics(self.topics.clone())
        }
    }

    /// Which partitions to archive: the configured topics, or discovery with default retention.
    pub fn source(&self) -> streamtier_archiver::Source {
        if self.topics.is_empty() {
            streamtier_archiver::Source::Discover(Retention::default())
        } else {
            streamtier_archiver::Source::Topics(self.topics.clone())
        }
    }
}

#[cfg(test)]
mod tests;
