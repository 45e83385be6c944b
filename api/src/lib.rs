//! The HTTP API: request, watch and cancel replays; each partition's hot window, archive and
//! lag; health, Prometheus metrics and OpenAPI.
//!
//! Not built yet. It will sit on top of the archiver's status and counters
//! (`streamtier_archiver::Metrics`) and the replayer's jobs.
