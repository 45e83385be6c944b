//! Names of streamtier's own Redis keys, placed in the same cluster slot as their stream.

/// Prefix of every key streamtier writes to Redis.
pub const KEY_PREFIX: &str = "streamtier:";

/// Prefixes of keys that are never archived: streamtier's own and Runnel's internal keys.
const INTERNAL_PREFIXES: &[&str] = &[KEY_PREFIX, "__ctrl:", "__memb:", "__lock:", "__beat:", "__lead:"];

/// Answers whether `key` belongs to streamtier or to Runnel's bookkeeping.
pub fn is_internal_key(key: &str) -> bool {
    INTERNAL_PREFIXES.iter().any(|p| key.starts_with(p))
}

/// A key derived from `stream` that hashes to the same Redis Cluster slot, so that one script
/// may touch both.
fn companion_key(kind: &str, stream: &str) -> String {
    if has_hash_tag(stream) {
        format!("{KEY_PREFIX}{kind}:{stream}")
    } else {
        format!("{KEY_PREFIX}{kind}:{{{stream}}}")
    }
}

/// Redis Cluster hashes only the part between the first `{` and the next `}` when it is non-empty.
fn has_hash_tag(key: &str) -> bool {
    match key.find('{') {
        Some(open) => matches!(key[open + 1..].find('}'), Some(close) if close > 0),
        None => false,
    }
}

/// The hash that caches a stream's archive chain: `wm` (fence watermark) and `hint` (last key).
pub fn chain_key(stream: &str) -> String {
    companion_key("chain", stream)
}

/// The lease that gives one archiver a partition for a while.
pub fn lease_key(stream: &str) -> String {
    companion_key("lease", stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn companion_keys_share_the_streams_slot() {
        assert_eq!(chain_key("orders:0"), "streamtier:chain:{orders:0}");
        assert_eq!(chain_key("__strm:{app}.s.1"), "streamtier:chain:__strm:{app}.s.1");
        // An empty tag does not count: Redis hashes the whole key then.
        assert_eq!(lease_key("a{}b"), "streamtier:lease:{a{}b}");
    }

    #[test]
    fn internal_keys_are_recognised() {
        assert!(is_internal_key("streamtier:chain:{x}"));
        assert!(is_internal_key("__lock:app"));
        assert!(!is_internal_key("orders:1"));
        assert!(!is_internal_key("__strm:app.orders.0"));
    }
}
