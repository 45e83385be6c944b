//! The crate's error type: what failed, with the offending input or key as context.

use crate::id::StreamId;

/// An error with its whole cause chain on one line (`outer: cause: root cause`), the way every
/// log line, job record and HTTP problem shows an error.
///
/// Error messages never repeat their cause (it is their `source()`), so printing an error
/// alone leaves the cause out and this is what people see.
#[derive(Clone, Copy)]
pub struct Report<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

impl std::fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Everything that can fail in this crate.
///
/// Variants carry the input that was rejected (an ID, a topic, a metadata key) and keep
/// the underlying cause as a `#[source]`. [`Error::kind`] gives a coarse category.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A stream ID or an object name that is not `<ms>-<seq>` (or its zero-padded form).
    #[error("invalid stream id `{input}`, expected `<ms>-<seq>` with two unsigned 64-bit decimals")]
    InvalidId {
        /// The rejected text.
        input: String,
    },
    /// A topic name that cannot be used as a path segment and Hive partition value.
    #[error("invalid topic name `{topic}`: {reason}")]
    InvalidTopic {
        /// The rejected topic name.
        topic: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// An `object_span` other than `1h` or `1d`.
    #[error("invalid object span `{value}`: expected `1h` or `1d`")]
    InvalidSpan {
        /// The rejected value.
        value: String,
    },
    /// A typed column definition that is not allowed.
    #[error("invalid typed column `{column}`: {reason}")]
    InvalidColumn {
        /// The rejected column name.
        column: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A column type name other than `string`, `int64`, `float64`, `bool`, `timestamp`.
    #[error(
        "unknown column type `{input}`, expected one of `string`, `int64`, `float64`, `bool`, `timestamp`"
    )]
    UnknownColumnType {
        /// The rejected type name.
        input: String,
    },
    /// Encoder options that cannot be used.
    #[error("invalid encode option `{option}`: {reason}")]
    InvalidOptions {
        /// The option name.
        option: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// Object metadata written by a newer (or unknown) version of the format.
    #[error("unknown object format version `{version}`")]
    UnknownFormatVersion {
        /// The version found in the metadata.
        version: String,
    },
    /// A required metadata key is absent.
    #[error("missing object metadata key `{key}`")]
    MissingMetadata {
        /// The missing key.
        key: &'static str,
    },
    /// A metadata key whose value does not parse or contradicts another key.
    #[error("bad object metadata value for `{key}`: `{value}`")]
    BadMetadata {
        /// The key.
        key: String,
        /// The rejected value.
        value: String,
    },
    /// Entries handed to the writer that are not in strictly ascending ID order.
    #[error("entries out of order: `{next}` does not follow `{previous}`")]
    OutOfOrder {
        /// The last ID written before.
        previous: StreamId,
        /// The offending ID.
        next: StreamId,
    },
    /// An entry too large to be encoded in one Arrow array (more than 2 GiB of names and values).
    #[error("entry `{id}` is too large to encode ({bytes} bytes)")]
    EntryTooLarge {
        /// The entry's ID.
        id: StreamId,
        /// Its payload size.
        bytes: usize,
    },
    /// Object metadata handed to [`ObjectWriter::finish`](crate::ObjectWriter::finish) that does
    /// not describe the entries written.
    #[error("object metadata `{field}` is `{meta}` but the written entries give `{data}`")]
    MetaMismatch {
        /// The metadata field that disagrees.
        field: &'static str,
        /// The value in the metadata.
        meta: String,
        /// The value derived from the written entries.
        data: String,
    },
    /// An object that parses as Parquet but breaks the streamtier format rules.
    #[error("corrupt object: {reason}")]
    Corrupt {
        /// What is wrong.
        reason: String,
    },
    /// Bytes that cannot be read as Parquet (truncated, bad footer, bad page).
    #[error("object is not readable parquet")]
    UnreadableParquet {
        /// The parquet reader's error.
        #[source]
        source: ::parquet::errors::ParquetError,
    },
    /// Row data that cannot be decoded to Arrow.
    #[error("object rows are not readable")]
    UnreadableRows {
        /// The arrow reader's error.
        #[source]
        source: arrow_schema::ArrowError,
    },
    /// The Parquet writer failed.
    #[error("parquet encoding failed")]
    Parquet {
        /// The parquet writer's error.
        #[source]
        source: ::parquet::errors::ParquetError,
    },
    /// Building Arrow arrays failed.
    #[error("arrow encoding failed")]
    Arrow {
        /// The arrow error.
        #[source]
        source: arrow_schema::ArrowError,
    },
    /// A gap record that is not valid JSON of the expected shape.
    #[error("invalid gap record json")]
    Json {
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

/// What a caller should do about an error: the one category every streamtier crate's errors
/// map to, and that the API turns into an HTTP status in one place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request, the data given or the settings are wrong: do not retry, report.
    InvalidInput,
    /// The thing asked for does not exist.
    NotFound,
    /// Someone else changed the same thing concurrently: re-read and decide.
    Conflict,
    /// A dependency (Redis, S3, the disk) failed or timed out: retry later.
    Unavailable,
    /// Stored data is damaged, inconsistent or not in this format: needs an operator.
    Corrupt,
    /// A bug or an unexpected state.
    Internal,
}

impl Error {
    /// Returns the coarse category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidId { .. }
            | Error::InvalidTopic { .. }
            | Error::InvalidSpan { .. }
            | Error::InvalidColumn { .. }
            | Error::UnknownColumnType { .. }
            | Error::InvalidOptions { .. }
            | Error::OutOfOrder { .. }
            | Error::EntryTooLarge { .. }
            | Error::MetaMismatch { .. } => ErrorKind::InvalidInput,
            Error::UnknownFormatVersion { .. }
            | Error::MissingMetadata { .. }
            | Error::BadMetadata { .. }
            | Error::Corrupt { .. }
            | Error::UnreadableParquet { .. }
            | Error::UnreadableRows { .. }
            | Error::Json { .. } => ErrorKind::Corrupt,
            Error::Parquet { .. } | Error::Arrow { .. } => ErrorKind::Internal,
        }
    }

    pub(crate) fn corrupt(reason: impl Into<String>) -> Self {
        Error::Corrupt {
            reason: reason.into(),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_with_backticked_identifiers() {
        let err = Error::InvalidTopic {
            topic: "a/b".into(),
            reason: "contains `/`",
        };
        assert_eq!(err.to_string(), "invalid topic name `a/b`: contains `/`");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let err = Error::MissingMetadata {
            key: "streamtier.topic",
        };
        assert_eq!(err.to_string(), "missing object metadata key `streamtier.topic`");
        assert_eq!(err.kind(), ErrorKind::Corrupt);
    }
}
