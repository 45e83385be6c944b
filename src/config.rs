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

/// Loads and checks the configuration; the error names the key that is wrong.
pub fn load(path: Option<&Path>) -> anyhow::Result<Checked> {
    let mut figment = Figment::new();
    if let Some(path) = path {
        if !path.is_file() {
            anyhow::bail!("configuration file `{}` does not exist", path.display());
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    // `STREAMTIER_REPORT_PEAK_RSS` is a switch for the benchmark, not a setting.
    figment = figment.merge(
        Env::prefixed("STREAMTIER_")
            .ignore(&["report_peak_rss"])
            .split("__"),
    );
    let settings: Settings = figment.extract().map_err(|e| {
        let msgs: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
        anyhow::anyhow!("{}", msgs.join("; "))
    })?;
    settings.redis.validate()?;
    settings.store.parse_url()?;
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
