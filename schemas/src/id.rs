//! Redis stream IDs (`<ms>-<seq>`), their text forms and their order.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Width of each zero-padded half of an object name: `u64::MAX` has 20 decimal digits.
const PADDED_WIDTH: usize = 20;

/// A Redis stream entry ID: milliseconds plus a sequence number.
///
/// The derived order (`ms` first, then `seq`) is the order of entries in a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    /// Milliseconds part (usually the Unix time in milliseconds when the entry was added).
    pub ms: u64,
    /// Sequence number within the millisecond.
    pub seq: u64,
}

impl StreamId {
    /// The smallest possible ID, `0-0`.
    pub const MIN: StreamId = StreamId::new(0, 0);
    /// The largest possible ID, `18446744073709551615-18446744073709551615`.
    pub const MAX: StreamId = StreamId::new(u64::MAX, u64::MAX);

    /// Creates an ID from its two parts.
    pub const fn new(ms: u64, seq: u64) -> Self {
        StreamId { ms, seq }
    }

    /// Returns the next possible ID (`seq + 1`, or `ms + 1` with `seq` 0), or `None` at [`StreamId::MAX`].
    pub fn successor(self) -> Option<StreamId> {
        match self.seq.checked_add(1) {
            Some(seq) => Some(StreamId::new(self.ms, seq)),
            None => self.ms.checked_add(1).map(|ms| StreamId::new(ms, 0)),
        }
    }

    /// Returns the previous possible ID, or `None` at [`StreamId::MIN`].
    pub fn predecessor(self) -> Option<StreamId> {
        match self.seq.checked_sub(1) {
            Some(seq) => Some(StreamId::new(self.ms, seq)),
            None => self.ms.checked_sub(1).map(|ms| StreamId::new(ms, u64::MAX)),
        }
    }

    /// Returns the zero-padded form used in object names, whose byte order equals ID order:
    /// `00000001763780645000-00000000000000000000`.
    pub fn object_name(&self) -> String {
        format!("{:020}-{:020}", self.ms, self.seq)
    }

    /// Parses the form produced by [`StreamId::object_name`]: exactly 20 digits, `-`, 20 digits.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidId`] for any other text, or when a half exceeds `u64::MAX`.
    pub fn parse_object_name(s: &str) -> Result<StreamId> {
        let invalid = || Error::InvalidId { input: s.into() };
        let bytes = s.as_bytes();
        if bytes.len() != 2 * PADDED_WIDTH + 1 || bytes[PADDED_WIDTH] != b'-' {
            return Err(invalid());
        }
        let ms = parse_digits(&bytes[..PADDED_WIDTH]).ok_or_else(invalid)?;
        let seq = parse_digits(&bytes[PADDED_WIDTH + 1..]).ok_or_else(invalid)?;
        Ok(StreamId::new(ms, seq))
    }

    /// Parses `<ms>-<seq>`, both halves plain decimal `u64` (no sign, no spaces), from bytes
    /// that need not be UTF-8 (an id inside a reply buffer); `None` for anything else.
    pub fn parse_ascii(text: &[u8]) -> Option<StreamId> {
        let dash = text.iter().position(|&b| b == b'-')?;
        Some(StreamId::new(
            parse_digits(&text[..dash])?,
            parse_digits(&text[dash + 1..])?,
        ))
    }
}

/// Parses a non-empty run of ASCII digits as a `u64` (no sign, no spaces, no overflow).
fn parse_digits(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        let v = d.wrapping_sub(b'0');
        (v <= 9).then_some(())?;
        n.checked_mul(10)?.checked_add(u64::from(v))
    })
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

impl FromStr for StreamId {
    type Err = Error;

    /// Parses `<ms>-<seq>`, both halves plain decimal `u64` (no sign, no spaces).
    fn from_str(s: &str) -> Result<Self> {
        StreamId::parse_ascii(s.as_bytes()).ok_or_else(|| Error::InvalidId { input: s.into() })
    }
}

impl serde::Serialize for StreamId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for StreamId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = StreamId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a stream id string `<ms>-<seq>`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<StreamId, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn displays_and_parses_ms_dash_seq() {
        let id = StreamId::new(1_763_780_645_000, 7);
        assert_eq!(id.to_string(), "1763780645000-7");
        assert_eq!("1763780645000-7".parse::<StreamId>().unwrap(), id);
        assert_eq!(
            StreamId::MAX.to_string().parse::<StreamId>().unwrap(),
            StreamId::MAX
        );
        assert_eq!("0-0".parse::<StreamId>().unwrap(), StreamId::MIN);
        // The same grammar over bytes that need not be UTF-8.
        assert_eq!(StreamId::parse_ascii(b"5-1"), Some(StreamId::new(5, 1)));
        assert_eq!(StreamId::parse_ascii(b"5-\xff"), None);
    }

    #[test]
    fn rejects_malformed_ids_and_names_the_input() {
        for bad in [
            "",
            "-",
            "1",
            "1-",
            "-1",
            "+1-2",
            "1-+2",
            " 1-2",
            "1-2 ",
            "1--2",
            "1-2-3",
            "a-1",
            "18446744073709551616-0",
            "1_0-0",
        ] {
            let err = bad.parse::<StreamId>().unwrap_err();
            assert!(
                matches!(&err, Error::InvalidId { input } if input == bad),
                "{bad}"
            );
            assert!(err.to_string().contains(&format!("`{bad}`")));
        }
    }

    #[test]
    fn object_name_is_zero_padded_and_strict() {
        let id = StreamId::new(1_763_780_645_000, 3);
        let name = id.object_name();
        assert_eq!(name, "00000001763780645000-00000000000000000003");
        assert_eq!(StreamId::parse_object_name(&name).unwrap(), id);
        assert_eq!(
            StreamId::parse_object_name(&StreamId::MAX.object_name()).unwrap(),
            StreamId::MAX
        );
        for bad in [
            "1763780645000-3",
            "0000000176378064500-00000000000000000003",
            "00000001763780645000_00000000000000000003",
            "99999999999999999999-00000000000000000000",
            "0000000176378064500a-00000000000000000003",
            "00000001763780645000-0000000000000000003+",
        ] {
            assert!(StreamId::parse_object_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn successor_and_predecessor_handle_edges() {
        assert_eq!(StreamId::new(5, 5).successor(), Some(StreamId::new(5, 6)));
        assert_eq!(StreamId::new(5, u64::MAX).successor(), Some(StreamId::new(6, 0)));
        assert_eq!(StreamId::MAX.successor(), None);
        assert_eq!(StreamId::new(5, 5).predecessor(), Some(StreamId::new(5, 4)));
        assert_eq!(
            StreamId::new(6, 0).predecessor(),
            Some(StreamId::new(5, u64::MAX))
        );
        assert_eq!(StreamId::MIN.predecessor(), None);
        assert_eq!(StreamId::default(), StreamId::MIN);
    }

    #[test]
    fn serde_uses_the_text_form() {
        let id = StreamId::new(12, 34);
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"12-34\"");
        assert_eq!(serde_json::from_str::<StreamId>("\"12-34\"").unwrap(), id);
        assert!(serde_json::from_str::<StreamId>("\"12:34\"").is_err());
        assert!(serde_json::from_str::<StreamId>("1234").is_err());
    }

    fn any_id() -> impl Strategy<Value = StreamId> {
        let part = prop_oneof![Just(0u64), Just(u64::MAX), 0u64..1000, any::<u64>()];
        (part.clone(), part).prop_map(|(ms, seq)| StreamId::new(ms, seq))
    }

    proptest! {
        #[test]
        fn text_forms_round_trip(id in any_id()) {
            prop_assert_eq!(id.to_string().parse::<StreamId>().unwrap(), id);
            prop_assert_eq!(StreamId::parse_object_name(&id.object_name()).unwrap(), id);
        }

        #[test]
        fn object_name_order_equals_id_order(a in any_id(), b in any_id()) {
            prop_assert_eq!(a.object_name().cmp(&b.object_name()), a.cmp(&b));
        }

        #[test]
        fn successor_inverts_predecessor(id in any_id()) {
            if let Some(next) = id.successor() {
                prop_assert!(next > id);
                prop_assert_eq!(next.predecessor(), Some(id));
            }
        }
    }
}
