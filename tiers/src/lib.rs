//! Access to the two tiers that streamtier moves entries between.
//!
//! - [`hot`]: Redis streams, the hot tier. Atomic batch reads that also return the stream's
//!   bookkeeping (`XINFO STREAM`), the trim script that enforces the retention and consumer-group
//!   rules in one step, partition leases and key discovery.
//! - [`store`]: the object store, the cold tier. A local directory or S3, both with an atomic
//!   create-if-absent write, which is what keeps the archive chain free of duplicates.
//! - [`archive`]: a partition's archive as every crate reads it: its objects in id order, the
//!   one footer reader, its gap records; and the topics and partitions the archive holds, found
//!   by delimited prefix listings ([`store::Store::list_prefixes`], in the conformance suite:
//!   `store_conformance::store_{local,s3}_lists_prefixes_one_level_down`).
//! - [`retry`]: the one backoff and cancellable pause every crate retries with.
//!
//! The data path (the archive read transaction, the trim, the replay write transaction, leases)
//! runs on streamtier's own RESP connections, routed by hash slot on a cluster: requests are
//! encoded straight into one buffer and replies are parsed in place, names and values staying
//! slices of the reply buffer. Key discovery and the API's reads go through the `redis` crate.
//!
//! Clients are built at the edge ([`hot::connect`], [`store::connect`]) and passed in; nothing
//! here reads the environment.

pub mod archive;
pub mod error;
pub mod hot;
pub mod retry;
pub mod store;

pub use error::{Dependency, Error, ErrorKind, Result};
