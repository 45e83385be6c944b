//! The `[api]` settings.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::ApiError;

/// Default listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The most `api.max_body_bytes` allows: a request body is held in memory.
pub const MAX_BODY_BYTES: usize = 16 << 20;

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
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            listen: DEFAULT_LISTEN.into(),
            token: None,
            allow_unauthenticated: false,
            max_body_bytes: 64 * 1024,
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
        Ok(ApiConfig {
            listen,
            token,
            max_body_bytes: self.max_body_bytes,
        })
    }
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
