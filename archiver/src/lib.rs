//! The archiver: copies every partition stream into zstd Parquet objects in the store, and only
//! then trims the stream to its hot window.
//!
//! # Layout
//! - [`settings`]: `[archive]` and `[[topics]]`, checked into [`settings::ArchiveConfig`] and
//!   [`settings::Topic`].
//! - [`partition`]: configured topics expanded to stream keys, or discovered by `SCAN`.
//! - [`chain`]: where a partition's archive ends, read from the store; `commit`: how an object
//!   joins it (create-if-absent, placement check, adoption).
//! - [`offsets`]: exact gap accounting from `XINFO STREAM`.
//! - [`rotation`]: when an object closes (hour over, full, retention, `flush_after`, `--flush`).
//! - [`compact`]: merging the small objects of closed spans (`streamtier compact`).
//! - [`worker`]: the per-partition pipeline (`pending`: entries read ahead and how many an
//!   object takes); `trim`: trimming and gap records; [`run`](mod@run): `--once` and the daemon;
//!   [`watch`]: the daemon's quiet partitions, looked at in one pipelined round trip per node;
//!   [`balance`]: each daemon holds its share of the partition leases; [`snapshot`]: the
//!   consumer-group snapshots a restore reads.
//!
//! # Object shapes
//! One rule ([`rotation::close_reason`]) serves the daemon and `--once`: an object is written
//! when its span (the topic's `object_span`: an hour by default, or a UTC day) is over (a later entry exists, or the clock passed the hour's end plus
//! `close_grace` while, in the daemon, no entry was added for as long), when it is full, when more than `retention_slack` entries beyond the hot
//! window wait for it, or when `flush_after` (off by default) says its oldest entry is old
//! enough; `--once --flush` writes everything present. In steady state that is one object per
//! partition-hour whatever the traffic. A pass reads each entry from Redis once: what one
//! object leaves of a read starts the next. Per object it costs an encode, one create-if-absent
//! write and one listing to verify its place; the lease is renewed once a third of its time has
//! passed, and the trim script (which also records the chain hint) runs when the entries read
//! ahead run out, at least once a second while they last, and at pass end.
//!
//! # Several daemons
//! Daemons heartbeat into one set in Redis (a member for half a lease time) and each holds at
//! most its share, `ceil(partitions / daemons)`, of the partition leases ([`balance`]); one
//! over it gives leases up after their pass, one under it takes free ones and asks about taken
//! ones when they run out, so a stopped daemon's share moves within the lease time. A partition
//! with nothing left to archive waits in the [`watch`], which asks every node about all of them
//! in one pipelined round trip per `poll_interval`, and is read in full once per third of the
//! lease time. Test: `archive_balance::daemons_hold_even_shares_and_take_over_a_killed_ones_partitions`;
//! figures: the benchmark's `--shape idle` and `--shape simulate`.
//!
//! # Invariants
//! Each has a test under `tests/` that fails if it breaks.
//! 1. **Never trim what is not durably stored.** Trimming is one Lua script (`tiers/src/hot/lua/trim.lua`) that
//!    runs only up to the end of the chain, whose objects' create-if-absent writes succeeded
//!    (or which were adopted after reading their footers), with `XTRIM … MINID =` (never `MAXLEN`) to
//!    `min(after the archived watermark, retention window, consumer-group bound)`, and never
//!    removes more than `length - retain_entries`. Tests: `archive_faults::s3_faults_never_trim_before_the_upload_succeeded`,
//!    `archive_basics::trimming_keeps_retain_entries_and_retain_for`.
//! 2. **Consumer groups hold trimming back.** The bound is computed in the same script from each
//!    group's last-delivered id and lowest pending id; only `retain_max_entries` may trim past
//!    a stalled group (archived entries only), and such groups are reported as behind. Test:
//!    `archive_basics::consumer_groups_hold_trimming_back_until_delivered_and_acked`.
//! 3. **The chain is contiguous, ordered and free of duplicates.** Objects are named by their
//!    first entry id and created only if absent, so two archivers building on the same chain
//!    end collide on one key; the loser adopts the winner's object. The store is the source of
//!    truth (the Redis hint only shortens listings). A process that outlived its lease is fenced:
//!    the trim script records the committed watermark in Redis atomically with trimming, every
//!    read returns it atomically with the entries, and a reader behind it resyncs from the store
//!    before writing; after a write, the object must directly follow the chain end it was built
//!    on, or the writer removes it (`commit.rs`). Tests: `archive_faults::two_archivers_on_the_same_partitions_leave_no_duplicate_and_no_hole`,
//!    `archive_daemon::two_daemons_share_partitions_through_leases_and_hand_over_on_sigterm`,
//!    `store_conformance::concurrent_put_if_absent_creates_once`.
//! 4. **Gaps are recorded, never skipped.** Entries that vanished before they were archived are
//!    counted exactly from `entries-added`, `max-deleted-entry-id` and the first entry, written
//!    as a JSON record under `_gaps/`, logged and counted; archiving goes on. Tests:
//!    `archive_basics::producer_maxlen_leaves_a_gap_record_with_the_exact_count`,
//!    `archive_basics::xdel_and_entries_gone_before_first_seen_are_counted`.
//! 5. **A stream that went backwards is not trimmed.** If its last id is below the archive, or
//!    it has fewer entries ever added than the archive holds, the partition fails loudly and the
//!    trim script refuses to trim. Test:
//!    `archive_basics::a_recreated_or_regressed_stream_is_reported_and_never_trimmed`.
//! 6. **Bounded memory.** Reads are sized to `read_batch_bytes` and held as one reply buffer
//!    plus 16 bytes per field ([`streamtier_schemas::EntryBatch`]); objects are encoded batch by
//!    batch on the blocking pool into a spool file of the store, from which they are linked
//!    (local) or streamed (S3), one block of entries (1,024) converted to Arrow at a time.
//!    Memory per partition is one or two batches and one row group of about
//!    `row_group_bytes` (closed at the first block end past it), whatever the object or entry
//!    size; `max_object_entries` and `max_object_bytes` bound disk use. Measured, not tested:
//!    the benchmark's peak RSS (README, Performance); `archive_basics::large_and_binary_values_survive_on_s3`
//!    archives values larger than a read batch.
//! 7. **Compaction removes nothing that is not held elsewhere** ([`compact`]). A merged object
//!    is created before any object it replaces is removed; those go in key order, and only
//!    while a merged object listed beside them holds all their ids. Only closed spans behind
//!    the chain end are touched. Tests: `tests/it/compaction.rs` (a replay in both id modes and
//!    a racing archiver during compaction, an interrupted compaction, `kill -9` then a rerun).
//! 8. **Crash safety.** The steps of one object (encode, upload, verify, trim) are never raced
//!    against cancellation, and dropping an unfinished object is safe because trimming only
//!    follows a durable upload; a restart finds the chain end in the store and goes on. Test:
//!    `archive_faults::kill_9_at_random_moments_loses_and_duplicates_nothing`.
//! 9. **Group snapshots are from one instant** ([`snapshot`]). A stream's groups, their
//!    consumers and pending entries and its counters are read by one script, so a snapshot never
//!    mixes two moments; one is written at most once per `group_snapshot_interval`, only when
//!    something changed. Test:
//!    `group_snapshots::the_archiver_records_groups_pending_entries_and_counters`.

pub mod balance;
pub mod chain;
pub mod clock;
mod commit;
pub mod compact;
pub mod error;
pub mod metrics;
pub mod object;
pub mod offsets;
pub mod partition;
mod pending;
pub mod rotation;
pub mod run;
pub mod settings;
pub mod snapshot;
mod trim;
pub mod watch;
pub mod worker;

pub use clock::{Clock, SystemClock};
pub use error::{Error, Result};
pub use metrics::Metrics;
pub use run::{run, run_once, PartitionReport, Source};
pub use worker::{Context, Mode, PartitionWorker, PassStats};
