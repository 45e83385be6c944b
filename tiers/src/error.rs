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
            Error::Io { .. } | Error::S3 { .. } | Error::Redis { .. } => ErrorKind::Unavailable,
            Error::Protocol { .. } => ErrorKind::Internal,
            Error::Object { .. } => ErrorKind::Corrupt,
        }
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
}
