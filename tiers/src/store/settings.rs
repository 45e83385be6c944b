//! Store settings as the user writes them, URL parsing, and [`connect`], which builds the client.

use std::path::PathBuf;
use std::time::Duration;

use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};

use super::{LocalStore, S3Store, Store};
use crate::error::{Error, Result};

/// Default value of `store.url`: a directory next to the working directory.
pub const DEFAULT_URL: &str = "./archive";
/// Region used when neither the settings nor the AWS chain name one (S3-compatible servers
/// usually ignore it).
pub const DEFAULT_REGION: &str = "us-east-1";
/// Attempts per S3 request, first one included, made by the SDK's standard retry strategy
/// (exponential backoff with jitter, for throttling, 5xx, timeouts and connection errors).
pub const S3_MAX_ATTEMPTS: u32 = 8;
/// First retry backoff of the SDK; it doubles per attempt up to [`S3_MAX_BACKOFF`].
pub const S3_INITIAL_BACKOFF: Duration = Duration::from_millis(200);
/// Longest retry backoff of the SDK.
pub const S3_MAX_BACKOFF: Duration = Duration::from_secs(20);
/// Time allowed to open a connection to S3.
pub const S3_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for one attempt of one S3 request, body included.
pub const S3_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

/// Where archived objects go (`[store]` in the configuration file).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// `s3://bucket/optional/prefix`, or a local directory: `./archive`, `relative/dir`,
    /// `/abs/dir` or `file:///abs/dir`. Default: [`DEFAULT_URL`].
    pub url: String,
    /// S3 endpoint of an S3-compatible server, e.g. `http://127.0.0.1:9000`; unset for AWS.
    pub endpoint: Option<String>,
    /// AWS region; unset means the AWS chain's (`AWS_REGION`, profile), else
    /// [`DEFAULT_REGION`].
    pub region: Option<String>,
    /// Addresses buckets as `endpoint/bucket` rather than `bucket.endpoint`; most
    /// S3-compatible servers need it. Default: false.
    pub force_path_style: bool,
    /// S3 only: the local directory objects are encoded into before they are uploaded
    /// (streamed from there, so object size never decides memory). Needs room for
    /// `archive.concurrency` objects. Unset: `streamtier-spool` under the system's temporary
    /// directory (`TMPDIR`, else `/tmp`). A local store always spools in its own directory.
    pub spool_dir: Option<PathBuf>,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            url: DEFAULT_URL.to_owned(),
            endpoint: None,
            region: None,
            force_path_style: false,
            spool_dir: None,
        }
    }
}

/// A parsed `store.url`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreUrl {
    /// A local directory (relative paths are relative to the working directory).
    Local(PathBuf),
    /// An S3 bucket and key prefix (empty, or without leading and trailing `/`).
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix.
        prefix: String,
    },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidSettings {
        key,
        reason: reason.into(),
    }
}

/// Checks an S3 bucket name: 3-63 characters of lowercase letters, digits, `.` and `-`,
/// starting and ending with a letter or digit, without `..`.
fn validate_bucket(bucket: &str) -> Result<()> {
    let reason = if !(3..=63).contains(&bucket.len()) {
        "bucket name must have 3 to 63 characters"
    } else if !bucket
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        "bucket name may only have lowercase letters, digits, `.` and `-`"
    } else if !bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !bucket.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        "bucket name must start and end with a letter or digit"
    } else if bucket.contains("..") {
        "bucket name must not contain `..`"
    } else {
        return Ok(());
    };
    Err(invalid("store.url", format!("{reason}, got `{bucket}`")))
}

impl StoreSettings {
    /// Parses [`StoreSettings::url`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSettings`] with key `store.url` for an empty URL, a scheme other than
    /// `s3` or `file`, `s3://` without a valid bucket, a prefix with empty segments, or a
    /// `file://` URL that is not absolute.
    pub fn parse_url(&self) -> Result<StoreUrl> {
        let url = self.url.trim();
        if url.is_empty() {
            return Err(invalid("store.url", "must not be empty"));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(invalid("store.url", "`s3://` URL has no bucket"));
            }
            validate_bucket(bucket)?;
            let prefix = prefix.trim_matches('/');
            if !prefix.is_empty() && prefix.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
                return Err(invalid(
                    "store.url",
                    format!("key prefix `{prefix}` has an empty, `.` or `..` segment"),
                ));
            }
            return Ok(StoreUrl::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
            });
        }
        if let Some(rest) = url.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(invalid(
                    "store.url",
                    "`file://` URL must hold an absolute path, as in `file:///var/lib/archive`",
                ));
            }
            return Ok(StoreUrl::Local(PathBuf::from(rest)));
        }
        if let Some((scheme, _)) = url.split_once("://") {
            return Err(invalid(
                "store.url",
                format!("unsupported scheme `{scheme}`, expected `s3://`, `file://` or a path"),
            ));
        }
        Ok(StoreUrl::Local(PathBuf::from(url)))
    }
}

/// Builds the store the settings describe. For S3, the client uses the standard AWS
/// credential chain (environment, profile, web identity, IMDS), the region and endpoint from
/// the settings, the SDK's standard retries ([`S3_MAX_ATTEMPTS`] attempts with jittered
/// backoff) and timeouts ([`S3_CONNECT_TIMEOUT`], [`S3_ATTEMPT_TIMEOUT`]). Nothing is sent:
/// use [`Store::check`] to probe readiness.
///
/// # Errors
///
/// [`Error::InvalidSettings`] for a bad URL or endpoint; [`Error::Io`] if a local directory
/// cannot be created.
pub async fn connect(settings: &StoreSettings) -> Result<Store> {
    match settings.parse_url()? {
        StoreUrl::Local(path) => {
            let store = tokio::task::spawn_blocking(move || LocalStore::new(path))
                .await
                .map_err(|e| Error::Io {
                    op: "run blocking file task",
                    path: PathBuf::from(&settings.url),
                    source: std::io::Error::other(e),
                })??;
            Ok(Store::Local(store))
        }
        StoreUrl::S3 { bucket, prefix } => {
            let client = s3_client(settings).await?;
            let mut store = S3Store::new(client, bucket, prefix);
            if let Some(dir) = &settings.spool_dir {
                store = store.with_spool_dir(dir);
            }
            Ok(Store::S3(store))
        }
    }
}

async fn s3_client(settings: &StoreSettings) -> Result<aws_sdk_s3::Client> {
    if let Some(endpoint) = &settings.endpoint {
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(invalid(
                "store.endpoint",
                format!("expected an `http://` or `https://` URL, got `{endpoint}`"),
            ));
        }
    }
    let region = RegionProviderChain::first_try(settings.region.clone().map(Region::new))
        .or_default_provider()
        .or_else(Region::from_static(DEFAULT_REGION));
    let retry = RetryConfig::standard()
        .with_max_attempts(S3_MAX_ATTEMPTS)
        .with_initial_backoff(S3_INITIAL_BACKOFF)
        .with_max_backoff(S3_MAX_BACKOFF);
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(S3_CONNECT_TIMEOUT)
        .operation_attempt_timeout(S3_ATTEMPT_TIMEOUT)
        .build();
    let shared = aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .retry_config(retry)
        .timeout_config(timeouts)
        .load()
        .await;
    let mut config = aws_sdk_s3::config::Builder::from(&shared).force_path_style(settings.force_path_style);
    if let Some(endpoint) = &settings.endpoint {
        config = config.endpoint_url(endpoint);
    }
    Ok(aws_sdk_s3::Client::from_conf(config.build()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(url: &str) -> Result<StoreUrl> {
        StoreSettings {
            url: url.to_owned(),
            ..StoreSettings::default()
        }
        .parse_url()
    }

    #[test]
    fn defaults_to_a_local_directory() {
        assert_eq!(
            StoreSettings::default().parse_url().unwrap(),
            StoreUrl::Local(PathBuf::from("./archive"))
        );
    }

    #[test]
    fn settings_reject_unknown_fields() {
        let err = serde_json::from_str::<StoreSettings>(r#"{"url":"x","bucket":"y"}"#);
        assert!(err.is_err());
    }

    #[test]
    fn bucket_names_follow_s3_rules() {
        for ok in ["abc", "my-bucket.v2", "a1b"] {
            assert!(url(&format!("s3://{ok}")).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "Upper",
            "under_score",
            "-lead",
            "trail-",
            "a..b",
            &"a".repeat(64),
        ] {
            assert!(url(&format!("s3://{bad}/x")).is_err(), "{bad}");
        }
    }
}
