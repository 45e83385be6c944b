//! Integration tests: one binary (linking is slow), real `redis-server` processes, a real
//! S3-protocol server in-process, and the real `streamtier` binary.

mod harness;

mod api_hostile;
mod api_http;
mod api_http_replays;
mod archive_balance;
mod archive_basics;
mod archive_cluster;
mod archive_daemon;
mod archive_damage;
mod archive_faults;
mod archive_listings;
mod archive_readers;
mod archive_shapes;
mod archive_spans;
mod cluster_routing;
mod compaction;
mod config_checks;
mod group_snapshots;
mod read_route;
mod replay_adoption;
mod replay_engine;
mod replay_filter;
mod replay_flow;
mod replay_kill;
mod replay_refusals;
mod replay_writes;
mod restore_discovered;
mod restore_dry_run;
mod restore_groups;
mod store_conformance;
mod store_spool;
