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

/// Checks `store.endpoint`: an `http://` or `https://` URL (as `http::Uri` parses it) with a
/// host, an optional port from 1 to 65535 and no credentials.
fn check_endpoint(endpoint: &str) -> Result<()> {
    let bad = |why: &str| {
        invalid(
            "store.endpoint",
            format!("`{endpoint}` is not an `http://` or `https://` URL like `http://127.0.0.1:9000`: {why}"),
        )
    };
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(bad("the scheme is missing or not http(s)"));
    }
    let authority = uri.authority().ok_or_else(|| bad("the host is missing"))?;
    if authority.as_str().contains('@') {
        return Err(bad("credentials come from the AWS chain, not the URL"));
    }
    let host = authority.host();
    if host.is_empty() {
        return Err(bad("the host is missing"));
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad("the IPv6 address does not parse"));
        }
    }
    // `http::Uri` takes any text after the host's `:` as a port.
    if let Some(port) = authority.as_str()[host.len()..].strip_prefix(':') {
        if !matches!(port.parse::<u16>(), Ok(p) if p > 0) {
            return Err(bad("the port is not a number from 1 to 65535"));
        }
    }
    Ok(())
}

/// Checks that `path` is a directory or could become one: it is one, or its nearest existing
/// ancestor is. Looks only, creates nothing.
fn check_dir(key: &'static str, path: &std::path::Path) -> Result<()> {
    let mut at = Some(path);
    while let Some(p) = at {
        let p = if p.as_os_str().is_empty() {
            std::path::Path::new(".")
        } else {
            p
        };
        match std::fs::metadata(p) {
            Ok(meta) if meta.is_dir() => return Ok(()),
            Ok(_) if p == path => {
                return Err(invalid(
                    key,
                    format!("`{}` is a file, not a directory", path.display()),
                ))
            }
            Ok(_) => {
                return Err(invalid(
                    key,
                    format!(
                        "directory `{}` cannot be created: `{}` is a file, not a directory",
                        path.display(),
                        p.display()
                    ),
                ))
            }
            // Missing: look at the parent. Other errors (permissions) are left to the
            // store itself, which says what failed.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => at = p.parent(),
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => at = p.parent(),
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

impl StoreSettings {
    /// Checks every setting without connecting or creating anything: the URL parses, a local
    /// directory is one or can be created (no file is in the way), the endpoint is an
    /// `http(s)://` URL, the region and the spool directory are usable.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSettings`] naming the key (`store.url`, `store.endpoint`,
    /// `store.region`, `store.spool_dir`).
    pub fn check(&self) -> Result<StoreUrl> {
        let url = self.parse_url()?;
        if let StoreUrl::Local(path) = &url {
            check_dir("store.url", path)?;
        }
        if let Some(endpoint) = &self.endpoint {
            check_endpoint(endpoint)?;
        }
        if let Some(region) = &self.region {
            if region.is_empty()
                || !region
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            {
                return Err(invalid(
                    "store.region",
                    format!("`{region}` is not a region name like `us-east-1`"),
                ));
            }
        }
        if let (Some(dir), StoreUrl::S3 { .. }) = (&self.spool_dir, &url) {
            if dir.as_os_str().is_empty() {
                return Err(invalid("store.spool_dir", "must not be empty"));
            }
            check_dir("store.spool_dir", dir)?;
        }
        Ok(url)
    }

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
        check_endpoint(endpoint)?;
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

    fn check(settings: StoreSettings) -> String {
        match settings.check() {
            Ok(url) => format!("ok {url:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn check_refuses_files_in_the_way_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let local = |url: String| StoreSettings {
            url,
            ..StoreSettings::default()
        };
        let err = check(local(file.display().to_string()));
        assert!(
            err.contains("store.url") && err.contains("is a file, not a directory"),
            "{err}"
        );
        let err = check(local(format!("file://{}/sub/dir", file.display())));
        assert!(
            err.contains("store.url") && err.contains("cannot be created"),
            "{err}"
        );
        let fresh = dir.path().join("new/archive");
        assert!(check(local(fresh.display().to_string())).starts_with("ok"));
        assert!(!dir.path().join("new").exists(), "a check creates nothing");
        assert!(check(StoreSettings::default()).starts_with("ok"));
        let spool = StoreSettings {
            url: "s3://bucket".into(),
            spool_dir: Some(file.join("spool")),
            ..StoreSettings::default()
        };
        assert!(check(spool).contains("store.spool_dir"));
    }

    #[test]
    fn check_refuses_bad_endpoints_and_regions() {
        let s3 = |endpoint: &str| StoreSettings {
            url: "s3://bucket/p".into(),
            endpoint: Some(endpoint.into()),
            ..StoreSettings::default()
        };
        for ok in [
            "http://127.0.0.1:9000",
            "https://s3.example.com",
            "http://minio:9000/",
            "http://[::1]:9000",
        ] {
            assert!(check(s3(ok)).starts_with("ok"), "{ok}: {}", check(s3(ok)));
        }
        for bad in [
            "127.0.0.1:9000",
            "ftp://host",
            "http://",
            "http://:9000",
            "http://host:port",
            "http://host:99999",
            "http://ho st",
            "http://user:pw@host",
            "http://[::zz]:1",
        ] {
            let err = check(s3(bad));
            assert!(
                err.contains("store.endpoint") && err.contains(bad),
                "{bad}: {err}"
            );
        }
        let region = StoreSettings {
            region: Some("us east".into()),
            ..s3("http://127.0.0.1:9000")
        };
        assert!(check(region).contains("store.region"));
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
