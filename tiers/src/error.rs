//! Errors of the tier access layer, with a coarse [`ErrorKind`] that tells callers what to do.

use std::path::PathBuf;

/// Boxed cause of a failed remote call, kept whole so that callers can walk the source chain.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Failures of the hot tier (Redis) and the cold tier (object store).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting has a value that cannot work; `key` names it as the user writes it.
    #[error("invalid setting `{key}`: {reason}")]
    InvalidSettings {
        /// The setting, e.g. `store.url`.
        key: &'static str,
        /// Why the value was rejected.
        reason: String,
    },

    /// An object key (or listing prefix) is not a safe relative path.
    #[error("invalid object key `{key}`: {reason}")]
    InvalidKey {
        /// The key as given.
        key: String,
        /// Why the key was rejected.
        reason: String,
    },

    /// A byte range cannot be served from the object.
    #[error("byte range `{start}..{end}` cannot be read from object `{key}`")]
    InvalidRange {
        /// The object key, relative to the store.
        key: String,
        /// First requested byte.
        start: u64,
        /// One past the last requested byte.
        end: u64,
    },

    /// The object does not exist.
    #[error("object `{key}` not found")]
    NotFound {
        /// The object key, relative to the store.
        key: String,
    },

    /// A local file-system operation failed.
    #[error("failed to {op} `{}`", path.display())]
    Io {
        /// What was being done, e.g. `create directory`.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// An S3 request failed after the SDK's own retries.
    #[error("s3 `{op}` failed for `{key}`")]
    S3 {
        /// The S3 operation, e.g. `put_object`.
        op: &'static str,
        /// The full object key in the bucket (store prefix included), or the bucket for
        /// bucket-level calls.
        key: String,
        /// The SDK error; render it with `aws_sdk_s3::error::DisplayErrorContext` or by walking
        /// the source chain.
        #[source]
        source: BoxError,
    },

    /// A Redis command failed (after the client's reconnects).
    #[error("redis `{op}` failed for `{key}`")]
    Redis {
        /// The command or script, e.g. `trim`.
        op: &'static str,
        /// The key involved (empty for server-level commands).
        key: String,
        /// The client error.
        #[source]
        source: redis::RedisError,
    },

    /// An object or record in the store is unreadable or not in streamtier's format.
    #[error("object `{key}` is unreadable")]
    Object {
        /// The object key, relative to the store.
        key: String,
        /// What is wrong with it.
        #[source]
        source: streamtier_schemas::Error,
    },

    /// Redis answered something the protocol does not allow here.
    #[error("unexpected redis reply for `{key}`: {reason}")]
    Protocol {
        /// The key involved.
        key: String,
        /// What was wrong.
        reason: String,
    },
}

pub use streamtier_schemas::ErrorKind;

/// Which dependency an error came from, for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dependency {
    /// Redis.
    Redis,
    /// The object store (S3 or the local directory).
    Store,
}

impl Error {
    /// Which dependency failed, if this error is a dependency's failure.
    pub fn dependency(&self) -> Option<Dependency> {
        match self {
            Error::Redis { .. } | Error::Protocol { .. } => Some(Dependency::Redis),
            Error::S3 { .. } | Error::Io { .. } | Error::NotFound { .. } => Some(Dependency::Store),
            _ => None,
        }
    }

    /// Returns the coarse category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidSettings { .. } | Error::InvalidKey { .. } | Error::InvalidRange { .. } => {
                ErrorKind::InvalidInput
            }
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Redis { source, .. } => redis_kind(source),
            Error::Io { .. } | Error::S3 { .. } => ErrorKind::Unavailable,
            Error::Protocol { .. } => ErrorKind::Internal,
            Error::Object { .. } => ErrorKind::Corrupt,
        }
    }
}

/// What a Redis failure means for the caller. Most go away by themselves (a broken connection,
/// a failover, `OOM` or `BUSY` while Redis is under pressure, `LOADING`): retry. Some never do,
/// however often the same command is sent: a key holding another type (`WRONGTYPE`), credentials
/// or permissions Redis refuses (`NOAUTH`, `WRONGPASS`, `NOPERM`), a script Redis cannot run
/// even from its body (`NOSCRIPT` after the body was sent).
fn redis_kind(e: &redis::RedisError) -> ErrorKind {
    if e.kind() == redis::ErrorKind::AuthenticationFailed {
        return ErrorKind::Internal;
    }
    // The generic client keeps the server's code; the direct connections keep the server's
    // whole message as the detail (their code then says only `ERR`).
    let detail_code = e.detail().and_then(|d| d.split(' ').next());
    match [e.code(), detail_code] {
        codes if codes.contains(&Some("WRONGTYPE")) => ErrorKind::Conflict,
        codes
            if ["NOAUTH", "WRONGPASS", "NOPERM", "NOSCRIPT"]
                .iter()
                .any(|c| codes.contains(&Some(*c))) =>
        {
            ErrorKind::Internal
        }
        _ => ErrorKind::Unavailable,
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_and_name_the_key() {
        let err = Error::NotFound {
            key: "topic=a/x.parquet".into(),
        };
        assert_eq!(err.to_string(), "object `topic=a/x.parquet` not found");
        assert_eq!(err.kind(), ErrorKind::NotFound);

        let err = Error::Io {
            op: "read",
            path: PathBuf::from("/tmp/x"),
            source: std::io::Error::other("boom"),
        };
        assert_eq!(err.to_string(), "failed to read `/tmp/x`");
        assert!(std::error::Error::source(&err).is_some());
    }

    fn redis(source: redis::RedisError) -> Error {
        Error::Redis {
            op: "replay batch",
            key: "copy:0".into(),
            source,
        }
    }

    /// As the direct connections report a server's error (see `hot/raw/mod.rs`).
    fn direct(kind: redis::ServerErrorKind, message: &str) -> Error {
        redis(
            (
                redis::ErrorKind::Server(kind),
                "server error",
                message.to_string(),
            )
                .into(),
        )
    }

    /// As the generic client reports a server's error.
    fn generic(reply: &str) -> Error {
        let value = redis::parse_redis_value(reply.as_bytes()).expect("reply");
        redis(value.extract_error().expect_err("an error reply"))
    }

    #[test]
    fn only_failures_that_may_go_away_are_unavailable() {
        use redis::ServerErrorKind::{NoPerm, NoScript, ResponseError};
        let permanent = [
            (
                direct(
                    ResponseError,
                    "WRONGTYPE replay target `copy:0` is a string, not a stream",
                ),
                ErrorKind::Conflict,
            ),
            (
                generic("-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
                ErrorKind::Conflict,
            ),
            (
                direct(ResponseError, "NOAUTH Authentication required."),
                ErrorKind::Internal,
            ),
            (
                direct(ResponseError, "WRONGPASS invalid username-password pair"),
                ErrorKind::Internal,
            ),
            (
                generic("-WRONGPASS invalid username-password pair\r\n"),
                ErrorKind::Internal,
            ),
            (
                direct(
                    NoPerm,
                    "NOPERM this user has no permissions to run the 'xadd' command",
                ),
                ErrorKind::Internal,
            ),
            (generic("-NOPERM no permissions\r\n"), ErrorKind::Internal),
            (
                direct(NoScript, "NOSCRIPT No matching script."),
                ErrorKind::Internal,
            ),
        ];
        for (err, kind) in permanent {
            assert_eq!(err.kind(), kind, "{err:?}");
        }
        let transient = [
            direct(
                ResponseError,
                "OOM command not allowed when used memory > 'maxmemory'.",
            ),
            generic("-OOM command not allowed\r\n"),
            generic("-BUSY Redis is busy running a script\r\n"),
            generic("-LOADING Redis is loading the dataset in memory\r\n"),
            direct(
                ResponseError,
                "TRYAGAIN the replay cursor of `copy:0` kept changing during 16 attempts",
            ),
            redis(std::io::Error::from(std::io::ErrorKind::ConnectionReset).into()),
        ];
        for err in transient {
            assert_eq!(err.kind(), ErrorKind::Unavailable, "{err:?}");
        }
    }
}
