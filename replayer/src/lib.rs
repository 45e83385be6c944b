//! The replayer: replays archived ID or time ranges back into partition streams, in order and
//! exactly once, at a controlled rate.
//!
//! A job ([`job::JobRecord`], kept in Redis) names a topic's partitions, an id range and a
//! target template. For each partition a [`source::PartitionSource`] reads the range wherever it
//! lives (archived objects, then Redis) and the [`engine::Replayer`] writes it to the target in
//! batches, each batch together with the job's cursor in one Redis transaction.
//!
//! # Invariants
//!
//! Each invariant names the tests (under `tests/it/`) that fail if it breaks.
//!
//! 1. **Order.** Within a partition, entries reach the target in source-id order; the source's
//!    cursor only moves forward and every batch starts above it. Test:
//!    `replay_engine::original_ids_restore_an_identical_stream_across_the_seam`.
//! 2. **Exactly once.** A batch and the cursor that says it was written change together, and
//!    only if the cursor still holds what the writer expects (compare-and-set). The writer
//!    `WATCH`es the cursor, checks it, then sends `MULTI`, the `XADD`s and a commit script in
//!    one `EXEC`, which runs nothing if the cursor changed meanwhile (the same on a single server
//!    and on a cluster, where the cursor shares the target's slot). A crash before the transaction leaves
//!    neither; after it, both. A restarted job reads the cursor and goes on after it; a retry
//!    whose first attempt landed sees its own cursor and counts the batch once; a second runner
//!    of the same job finds the cursor moved and stops. Runners also take an expiring lease per
//!    job (several servers resume the same unfinished jobs), but exactly-once never depends on it.
//!    The transaction is `tiers/src/hot/raw/replay.rs`. Tests: `replay_writes::racing_writers_write_each_batch_once_on_a_single_server`
//!    (and `…_on_a_cluster`), `replay_kill::kill_9_of_serve_mid_replay_writes_every_entry_exactly_once`,
//!    `replay_engine::an_interrupted_job_resumes_and_writes_every_entry_once`,
//!    `cluster_routing::reads_trims_and_replays_follow_a_migrating_slot`.
//! 3. **Nothing half-written.** Everything that could fail (cursor, original id order, the
//!    target's type) is checked before the first `XADD`; inside the transaction an `XADD` can
//!    only fail if the target stopped being a stream, and then none is written and the commit
//!    leaves the cursor alone. Entries that cannot be written at all (no fields) are refused before
//!    anything is sent. A target that exists and is not a stream is refused by the plan (the
//!    dry run and restores too), and one that stops being a stream fails the job at once with
//!    the reason: Redis errors that never go away (`WRONGTYPE`, `NOAUTH`, `WRONGPASS`,
//!    `NOPERM`, `NOSCRIPT`) are not retried, unlike pressure (`OOM`, `BUSY`) and broken
//!    connections. Tests: `replay_writes::original_ids_refusals_write_nothing_and_wide_entries_pass`,
//!    `replay_refusals::a_target_that_is_not_a_stream_is_refused_naming_it_and_nothing_is_written`,
//!    `replay_refusals::a_target_that_stops_being_a_stream_fails_the_job_at_once_naming_it`,
//!    `replay_refusals::a_job_whose_redis_user_may_not_write_fails_at_once_naming_noperm`.
//! 4. **Seamless range.** Archive and Redis are joined at the cursor: Redis is read only after
//!    the archive is exhausted, and when Redis no longer holds the entry after the cursor, the
//!    archive is listed again for objects written meanwhile (see [`source`]). Compaction may
//!    replace objects under a running job: objects that end at or before the cursor are skipped
//!    (by their key's bound, or by their footer), entries at or before it are dropped, and an
//!    object that is gone when read makes the partition list again from its cursor. Tests:
//!    `replay_engine::entries_archived_and_trimmed_while_replaying_are_not_skipped`,
//!    `compaction::replays_and_a_racing_archiver_see_every_entry_once_while_compaction_runs`.
//! 5. **Proven bytes.** Every block of entries from an object is checked against the footer's
//!    block checksum before it is written anywhere; a damaged object, or one still missing
//!    after eight listings in a row, fails the job naming the object and the last entry
//!    written, and nothing after it is written. Test:
//!    `replay_engine::a_damaged_object_fails_the_job_naming_it_and_nothing_after_is_written`.
//! 6. **Bounded memory.** One job holds at most `partition_concurrency` partitions, each with
//!    one checksum block (at most 1,024 entries or 4 MiB plus one entry) or one Redis read, and
//!    less than one write batch carried over from the previous read, in memory; large objects
//!    are read by byte ranges, never whole (except objects written before block checksums
//!    existed). Objects of at most 256 KiB are fetched whole, up to 32 objects and 4 MiB ahead
//!    per partition ([`readahead`]), so that many small objects cost concurrent requests, not
//!    one round trip after another. Measured, not tested: the benchmark's peak RSS.
//! 7. **Paced.** Each batch takes tokens from its job's bucket and from the server-wide bucket
//!    before it is written; at most `max_jobs` jobs run, the rest queue. Test:
//!    `replay_engine::cancel_conflict_and_pacing`.
//! 8. **Faithful restore.** A restore ([`restore`]) is a replay with original ids whose
//!    partitions each read the range their group snapshot calls for; its groups, consumers,
//!    pending entries and counters are set by one script after the entries, together with a
//!    marker in the job's cursor hash, so they are set once however often the job resumes; a
//!    target holding entries or groups is refused before anything is written. Tests:
//!    `restore_groups::a_wiped_redis_gets_its_entries_groups_and_pending_entries_back`,
//!    `restore_groups::a_restore_at_a_time_brings_back_the_state_of_then`,
//!    `restore_groups::a_restore_killed_with_kill_9_resumes_exactly_once`,
//!    `restore_groups::an_archive_without_snapshots_restores_its_entries_and_says_so`.
//!    Its dry run counts what it writes (the window and the older pending entries), not what it
//!    reads. Test: `restore_dry_run::a_restore_dry_run_counts_the_snapshot_window_and_older_pending_entries`.
//!    Topics and partitions known only to the archive can be restored (the API's catalog adds
//!    them with the stream key their newest object records). Test:
//!    `restore_discovered::discovered_topics_are_found_in_the_archive_once_redis_lost_them`.
//! 9. **Filtered, still exactly once.** A [`filter`] leaves entries out after they are read and
//!    proven; what it leaves out is done too (a batch may move the cursor alone), and blocks are
//!    skipped only when their statistics show the filter takes nothing there (`prune.rs` is
//!    conservative: a block without statistics is read). Tests:
//!    `replay_filter::filters_take_what_duckdb_selects_and_the_cursor_moves_past_the_rest`,
//!    `replay_filter::blocks_whose_statistics_exclude_the_filter_are_not_read`.
//! 10. **Never overwhelms Redis.** Between batches, never inside one, a replay waits while its
//!     target's backlog or Redis' memory would pass its bounds, or an operator holds it
//!     (`engine/flow.rs`). Tests: `replay_flow::a_small_maxmemory_is_never_passed_and_producers_keep_writing`,
//!     `replay_flow::a_replay_waits_for_a_lagging_group_and_finishes_once_it_reads`,
//!     `replay_flow::an_operator_pauses_and_resumes_a_replay_over_http`.
//! 11. **No orphans.** A job whose runner died (a `streamtier replay` or a server killed) is
//!     adopted by a live server within a fifth of the lease time after its lease ran out, by
//!     one server of several: it takes the lease before it starts the job (`engine/adopt.rs`).
//!     Looking costs one `SMEMBERS` of the unfinished jobs a second, and a lease script per job
//!     another process runs. Tests: `replay_adoption::a_replay_command_killed_with_kill_9_is_finished_once_by_a_running_server`,
//!     `replay_adoption::the_job_of_a_server_killed_with_kill_9_is_finished_once_by_the_other`.

pub mod archive;
pub mod engine;
mod error;
pub mod filter;
pub mod job;
pub mod plan;
mod prune;
pub mod range;
pub mod rate;
pub mod read;
pub mod readahead;
pub mod restore;
pub mod settings;
pub mod source;

pub use engine::{MemoryBound, PauseReason, ReplayLimits, ReplayMetrics, Replayer};
pub use error::{Error, Result};
pub use job::{Ids, JobRecord, JobState, JobStore, ReplayRequest};
pub use plan::{JobPlan, PartitionPlan, SourcePartition};
pub use range::IdRange;
