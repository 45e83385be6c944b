//! Access to the two tiers that streamtier moves entries between.
//!
//! - [`hot`]: Redis streams, the hot tier. Atomic batch reads that also return the stream's
//!   bookkeeping (`XINFO STREAM`), the trim script that enforces the retention and consumer-group
//!   rules in one step, partition leases and key discovery.
//! - [`store`]: the object store, the cold tier. A local directory or S3, both with an atomic
//!   create-if-absent write, which is what keeps the archive chain free of duplicates.
//! - [`retry`]: the one backoff and cancellable pause every crate retries with.
//!
//! Against a single server, the two hot paths (the archive read transaction and the replay
//! write transaction) run on streamtier's own RESP connections: requests are encoded straight
//! into one buffer and replies are parsed in place, names and values staying slices of the
//! reply buffer. Everything else, and everything on a cluster, goes through the `redis` crate.
//! Both give the same atomicity; the replay write's argument is in the replayer's crate docs.
//!
//! Clients are built at the edge ([`hot::connect`], [`store::connect`]) and passed in; nothing
//! here reads the environment.

pub mod error;
pub mod hot;
pub mod retry;
pub mod store;

pub use error::{Dependency, Error, ErrorKind, Result};
