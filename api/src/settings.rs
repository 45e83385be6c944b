//! The `[api]` settings.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ApiError;

/// Default listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default `api.max_connections`: well under the usual 1,024 file descriptors of a process, so
/// that the archiver beside the API keeps the rest.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// The most `api.max_connections` allows.
pub const MAX_CONNECTIONS: usize = 65_536;
/// Default `api.header_read_timeout`.
pub const DEFAULT_HEADER_READ_TIMEOUT: &str = "10s";
/// Default `api.body_read_timeout`.
pub const DEFAULT_BODY_READ_TIMEOUT: &str = "30s";
/// Default `api.idle_timeout`.
pub const DEFAULT_IDLE_TIMEOUT: &str = "60s";
/// The most `api.max_body_bytes` allows: bodies are read whole before they are parsed.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The `[api]` section.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSettings {
    /// Address to listen on.
    pub listen: String,
    /// Bearer token every `/v1` route requires (or `STREAMTIER_API__TOKEN`). Never logged.
    pub token: Option<String>,
    /// Listen on a non-loopback address without a token. Off by default: anyone who can reach
    /// the port could replay into your streams.
    pub allow_unauthenticated: bool,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Connections held at once; past it the oldest connection with no request in flight is
    /// closed to make room (and a new one refused only when all are busy).
    pub max_connections: usize,
    /// Time for a request's head to arrive whole, from the connection's start or the end of the
    /// previous response (half-sent requests are closed after it).
    pub header_read_timeout: String,
    /// Time for a request's body to arrive whole, once its head has (answered `408`).
    pub body_read_timeout: String,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: String,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            listen: DEFAULT_LISTEN.into(),
            token: None,
            allow_unauthenticated: false,
            max_body_bytes: 64 * 1024,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT.into(),
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT.into(),
            idle_timeout: DEFAULT_IDLE_TIMEOUT.into(),
        }
    }
}

impl std::fmt::Debug for ApiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiSettings")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("allow_unauthenticated", &self.allow_unauthenticated)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_connections", &self.max_connections)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

/// The checked `[api]` section.
#[derive(Clone)]
pub struct ApiConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The bearer token, if any.
    pub token: Option<String>,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Time for a request's body to arrive whole.
    pub body_read_timeout: Duration,
    /// The connection limits.
    pub conns: crate::serve::ConnLimits,
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

impl ApiSettings {
    /// Checks the section: the address parses; without a token, only loopback unless
    /// `allow_unauthenticated`.
    ///
    /// # Errors
    /// [`ApiError::Settings`] naming the key.
    pub fn check(&self) -> Result<ApiConfig, ApiError> {
        let listen: SocketAddr = self.listen.parse().map_err(|e| ApiError::Settings {
            key: "api.listen",
            reason: format!("`{}` is not an address like 127.0.0.1:8080: {e}", self.listen),
        })?;
        let token = self.token.clone().filter(|t| !t.is_empty());
        if let Some(t) = &token {
            if t.len() < 16 {
                return Err(ApiError::Settings {
                    key: "api.token",
                    reason: "use at least 16 characters".into(),
                });
            }
        }
        if token.is_none() && !listen.ip().is_loopback() && !self.allow_unauthenticated {
            return Err(ApiError::Settings {
                key: "api.listen",
                reason: format!(
                    "{listen} is reachable from other hosts but no api.token is set; set a token, or \
                     api.allow_unauthenticated = true if the network is trusted"
                ),
            });
        }
        if !(1024..=MAX_BODY_BYTES).contains(&self.max_body_bytes) {
            return Err(ApiError::Settings {
                key: "api.max_body_bytes",
                reason: format!("must be between 1024 and {MAX_BODY_BYTES}"),
            });
        }
        if !(1..=MAX_CONNECTIONS).contains(&self.max_connections) {
            return Err(ApiError::Settings {
                key: "api.max_connections",
                reason: format!("must be between 1 and {MAX_CONNECTIONS}"),
            });
        }
        Ok(ApiConfig {
            listen,
            token,
            max_body_bytes: self.max_body_bytes,
            body_read_timeout: timeout("api.body_read_timeout", &self.body_read_timeout)?,
            conns: crate::serve::ConnLimits {
                max_connections: self.max_connections,
                header_read_timeout: timeout("api.header_read_timeout", &self.header_read_timeout)?,
                idle_timeout: timeout("api.idle_timeout", &self.idle_timeout)?,
            },
        })
    }
}

/// A timeout setting: a human duration between one millisecond and a day.
fn timeout(key: &'static str, value: &str) -> Result<Duration, ApiError> {
    let d = humantime::parse_duration(value.trim()).map_err(|e| ApiError::Settings {
        key,
        reason: format!("`{value}` is not a duration like \"10s\": {e}"),
    })?;
    if d < Duration::from_millis(1) || d > Duration::from_secs(86_400) {
        return Err(ApiError::Settings {
            key,
            reason: format!("`{value}` must be between 1ms and 1d"),
        });
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_listen_needs_a_token_or_an_explicit_opt_in() {
        let mut s = ApiSettings {
            listen: "0.0.0.0:8080".into(),
            ..ApiSettings::default()
        };
        assert!(s.check().unwrap_err().to_string().contains("api.listen"));
        s.token = Some("0123456789abcdef-secret".into());
        s.check().unwrap();
        s.token = None;
        s.allow_unauthenticated = true;
        s.check().unwrap();
        assert!(ApiSettings::default().check().is_ok());
        let s = ApiSettings {
            listen: "nowhere".into(),
            ..ApiSettings::default()
        };
        assert!(s.check().is_err());
        let s = ApiSettings {
            token: Some("secret-token-value-123".into()),
            ..ApiSettings::default()
        };
        assert!(!format!("{s:?}").contains("secret"));
        for (key, s) in [
            (
                "api.max_connections",
                ApiSettings {
                    max_connections: 0,
                    ..ApiSettings::default()
                },
            ),
            (
                "api.max_body_bytes",
                ApiSettings {
                    max_body_bytes: usize::MAX,
                    ..ApiSettings::default()
                },
            ),
            (
                "api.idle_timeout",
                ApiSettings {
                    idle_timeout: "soon".into(),
                    ..ApiSettings::default()
                },
            ),
            (
                "api.header_read_timeout",
                ApiSettings {
                    header_read_timeout: "0s".into(),
                    ..ApiSettings::default()
                },
            ),
            (
                "api.body_read_timeout",
                ApiSettings {
                    body_read_timeout: "100y".into(),
                    ..ApiSettings::default()
                },
            ),
        ] {
            let err = s.check().unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn body_limit_is_bounded() {
        for bytes in [1023, MAX_BODY_BYTES + 1, usize::MAX] {
            let s = ApiSettings {
                max_body_bytes: bytes,
                ..ApiSettings::default()
            };
            let err = s.check().unwrap_err().to_string();
            assert!(err.contains("api.max_body_bytes"), "{err}");
        }
    }
}
