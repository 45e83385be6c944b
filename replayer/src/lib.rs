//! The replayer: replays archived ID or time ranges back into partition streams, in order and
//! exactly once, at a controlled rate.
//!
//! Not built yet. It will read the archive through the contract in `streamtier-schemas` (object
//! layout, Parquet schema, footer metadata) and the tiers in `streamtier-tiers`; nothing in the
//! archiver depends on it.
