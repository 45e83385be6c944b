//! Errors of the replayer.

use streamtier_schemas::StreamId;
use streamtier_tiers::ErrorKind;

/// What can go wrong while planning or running a replay.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request field is malformed (HTTP 400); `field` names it as the user wrote it.
    #[error("invalid `{field}`: {reason}")]
    Invalid {
        /// The request field.
        field: String,
        /// Why it was refused.
        reason: String,
    },
    /// A request field is well-formed but cannot be honoured (HTTP 422).
    #[error("unacceptable `{field}`: {reason}")]
    Unacceptable {
        /// The request field.
        field: String,
        /// Why it was refused.
        reason: String,
    },
    /// A topic, partition or job does not exist (HTTP 404).
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. ``topic `orders` ``.
        what: String,
    },
    /// A request field names a topic or partition that does not exist (HTTP 404).
    #[error("{what} not found")]
    Missing {
        /// The request field, e.g. `partitions[2]`.
        field: String,
        /// What was looked for, e.g. ``partition 7 of topic `orders` ``.
        what: String,
    },
    /// Writing with original ids would not keep the target ascending (HTTP 409).
    #[error("target `{target}` already holds `{target_last}`, not below the first id to replay `{first}`")]
    Conflict {
        /// The target stream.
        target: String,
        /// Its last id.
        target_last: StreamId,
        /// The first id the replay would write.
        first: StreamId,
    },
    /// A restore's target already holds entries or consumer groups (HTTP 409).
    #[error("target `{target}` is not empty ({entries} entries, {groups} groups): a restore writes only into an empty stream")]
    Occupied {
        /// The target stream.
        target: String,
        /// Its entries.
        entries: u64,
        /// Its consumer groups.
        groups: u64,
    },
    /// A target exists and is not a stream: nothing can be replayed into it (HTTP 409).
    #[error("target `{target}` is a {found}, not a stream")]
    NotAStream {
        /// The target key.
        target: String,
        /// Its type, as Redis' `TYPE` names it (`string`, `hash`, …).
        found: String,
    },
    /// An archived object is missing or damaged; the job stops there.
    #[error("object `{key}` of `{partition}` cannot be replayed (last entry written: {})", last_written.map_or_else(|| "none".to_string(), |id| id.to_string()))]
    BadObject {
        /// `topic/partition`.
        partition: String,
        /// The object key.
        key: String,
        /// The last source id written to the target before the failure.
        last_written: Option<StreamId>,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Redis or the store failed (after the clients' retries).
    #[error("{context}")]
    Tier {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: streamtier_tiers::Error,
    },
    /// Another runner moved this job's cursor: the job is being run elsewhere.
    #[error("job `{job}` is being run by another process (cursor of `{target}` moved)")]
    Preempted {
        /// The job.
        job: String,
        /// The target.
        target: String,
    },
    /// A stored job record cannot be read.
    #[error("job record `{job}` is unreadable: {reason}")]
    BadRecord {
        /// The job.
        job: String,
        /// Why.
        reason: String,
    },
}

impl Error {
    /// The coarse category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Invalid { .. } | Error::Unacceptable { .. } => ErrorKind::InvalidInput,
            Error::NotFound { .. } | Error::Missing { .. } => ErrorKind::NotFound,
            Error::Conflict { .. }
            | Error::Occupied { .. }
            | Error::NotAStream { .. }
            | Error::Preempted { .. } => ErrorKind::Conflict,
            Error::BadObject { .. } | Error::BadRecord { .. } => ErrorKind::Corrupt,
            Error::Tier { source, .. } => source.kind(),
        }
    }

    pub(crate) fn tier(context: impl Into<String>) -> impl FnOnce(streamtier_tiers::Error) -> Error {
        let context = context.into();
        move |source| Error::Tier { context, source }
    }
}

/// Result with the replayer's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
