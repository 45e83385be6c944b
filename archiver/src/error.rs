//! Errors of the archiver.

use streamtier_schemas::StreamId;
use streamtier_tiers::ErrorKind;

/// What can go wrong while archiving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is wrong; `key` names it as the user writes it (e.g. `topics[0].partitions`).
    #[error("invalid setting `{key}`: {reason}")]
    InvalidSettings {
        /// The setting.
        key: String,
        /// Why it was refused.
        reason: String,
    },
    /// Redis or the store failed.
    #[error("{partition}")]
    Tier {
        /// `topic/partition`.
        partition: String,
        /// The cause.
        #[source]
        source: streamtier_tiers::Error,
    },
    /// Encoding or decoding an object failed.
    #[error("{partition}: object `{key}`")]
    Format {
        /// `topic/partition`.
        partition: String,
        /// The object key.
        key: String,
        /// The cause.
        #[source]
        source: streamtier_schemas::Error,
    },
    /// The stream no longer matches what the archive holds (recreated, or a failover lost
    /// entries); nothing is trimmed until an operator looks.
    #[error("{partition}: stream `{stream}` {reason} (archive holds up to `{archived}`); not trimming")]
    StreamRegressed {
        /// `topic/partition`.
        partition: String,
        /// The stream key.
        stream: String,
        /// The archived watermark.
        archived: StreamId,
        /// What was seen.
        reason: String,
    },
    /// The chain in the store is behind the fence that archivers committed in Redis: objects
    /// were removed from the store behind streamtier's back.
    #[error(
        "{partition}: archive in the store ends at `{archived}` but archivers committed up to `{fence}`"
    )]
    ArchiveBehindFence {
        /// `topic/partition`.
        partition: String,
        /// What the store holds.
        archived: StreamId,
        /// What Redis says was committed.
        fence: StreamId,
    },
    /// The partition's archive in the store was written from another stream key (a discovered
    /// key took over a topic and partition, or a template changed); nothing is archived or
    /// trimmed until the configuration says which stream the partition is.
    #[error(
        "{partition}: the archive holds stream `{owner}`, not `{stream}`; not archiving `{stream}` there"
    )]
    ForeignChain {
        /// `topic/partition`.
        partition: String,
        /// The stream this worker was given.
        stream: String,
        /// The stream the archive's last object names.
        owner: String,
    },
    /// Compaction found objects it must not merge or remove: objects that overlap with no
    /// merged object holding them, or a merged object whose footer disagrees with its name.
    /// Nothing of the partition is changed.
    #[error("{partition}: not compacting: {reason}")]
    Compaction {
        /// `topic/partition`.
        partition: String,
        /// What was found, naming the objects.
        reason: String,
    },
    /// A blocking task panicked or was cancelled.
    #[error("{partition}: encoder task failed: {reason}")]
    Task {
        /// `topic/partition`.
        partition: String,
        /// The join error.
        reason: String,
    },
}

impl Error {
    /// The coarse category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidSettings { .. } => ErrorKind::InvalidInput,
            Error::Tier { source, .. } => source.kind(),
            Error::Format { .. } | Error::ArchiveBehindFence { .. } | Error::Compaction { .. } => {
                ErrorKind::Corrupt
            }
            Error::StreamRegressed { .. } | Error::ForeignChain { .. } => ErrorKind::Conflict,
            Error::Task { .. } => ErrorKind::Internal,
        }
    }
}

/// Result with the archiver's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use streamtier_schemas::Report;

    #[test]
    fn a_report_names_each_cause_once() {
        let e = Error::Tier {
            partition: "orders/3".into(),
            source: streamtier_tiers::Error::NotFound {
                key: "topic=orders/x.parquet".into(),
            },
        };
        assert_eq!(
            Report(&e).to_string(),
            "orders/3: object `topic=orders/x.parquet` not found"
        );
        let e = Error::Format {
            partition: "orders/3".into(),
            key: "k".into(),
            source: streamtier_schemas::Error::InvalidId { input: "x".into() },
        };
        let shown = Report(&e).to_string();
        assert_eq!(shown.matches("invalid stream id").count(), 1, "{shown}");
        assert!(
            shown.starts_with("orders/3: object `k`: invalid stream id `x`"),
            "{shown}"
        );
    }
}
