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
pub(crate) fn companion_key(kind: &str, stream: &str) -> String {
    if has_hash_tag(stream) {
        // The prefix has no braces, so the stream's own tag decides the slot.
        format!("{KEY_PREFIX}{kind}:{stream}")
    } else if !stream.is_empty() && !stream.contains('}') {
        // The whole stream key becomes the tag: the same bytes, the same slot.
        format!("{KEY_PREFIX}{kind}:{{{stream}}}")
    } else {
        // A key like `a{}b` hashes whole but cannot be a tag (it holds `}`): use a short tag
        // that lands in the same slot instead.
        format!(
            "{KEY_PREFIX}{kind}:{{{}}}{stream}",
            tag_for_slot(slot(stream.as_bytes()))
        )
    }
}

/// Redis Cluster hashes only the part between the first `{` and the next `}` when it is non-empty.
fn has_hash_tag(key: &str) -> bool {
    match key.find('{') {
        Some(open) => matches!(key[open + 1..].find('}'), Some(close) if close > 0),
        None => false,
    }
}

/// The cluster slot of a key (CRC-16/XMODEM of its hash tag or of the whole key, mod 16384).
pub(crate) fn slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|b| *b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter()
                .position(|b| *b == b'}')
                .filter(|close| *close > 0)
                .map(|close| &rest[..close])
        })
        .unwrap_or(key);
    crc16(hashed) % 16_384
}

fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for b in bytes {
        crc ^= u16::from(*b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The first of `0`, `1`, … (in hex) that hashes to `slot`; every slot has one below 2^20.
fn tag_for_slot(slot_wanted: u16) -> String {
    (0u32..)
        .map(|n| format!("{n:x}"))
        .find(|tag| slot(tag.as_bytes()) == slot_wanted)
        .unwrap_or_default()
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
        for stream in [
            "orders:0",
            "__strm:{app}.s.1",
            "a{}b",
            "a}b",
            "{}",
            "x{",
            "}{",
            "{a}{b}",
            "",
        ] {
            for key in [chain_key(stream), lease_key(stream)] {
                assert_eq!(slot(key.as_bytes()), slot(stream.as_bytes()), "{key} vs {stream}");
            }
        }
    }

    #[test]
    fn slots_match_redis() {
        // Values from `CLUSTER KEYSLOT`.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_eq!(slot(b"123456789"), 0x31C3);
    }

    #[test]
    fn internal_keys_are_recognised() {
        assert!(is_internal_key("streamtier:chain:{x}"));
        assert!(is_internal_key("__lock:app"));
        assert!(!is_internal_key("orders:1"));
        assert!(!is_internal_key("__strm:app.orders.0"));
    }
}
