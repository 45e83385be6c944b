//! Object metadata: what an object holds, stored in its Parquet footer and as S3 user metadata.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::error::{Error, Result};
use crate::id::StreamId;
use crate::layout::validate_topic_name;

/// Version of the object format written by this crate.
pub const FORMAT_VERSION: u32 = 1;

/// A metadata key in its footer form and its S3 user metadata form.
struct Key {
    footer: &'static str,
    s3: &'static str,
}

const FORMAT_VERSION_KEY: Key = key("streamtier.format_version", "format-version");
const TOPIC: Key = key("streamtier.topic", "topic");
const PARTITION: Key = key("streamtier.partition", "partition");
const STREAM: Key = key("streamtier.stream", "stream");
const FIRST_ID: Key = key("streamtier.first_id", "first-id");
const LAST_ID: Key = key("streamtier.last_id", "last-id");
const ENTRY_COUNT: Key = key("streamtier.entry_count", "entry-count");
const LAST_OFFSET: Key = key("streamtier.last_offset", "last-offset");
const ALL_KEYS: [&Key; 8] = [
    &FORMAT_VERSION_KEY,
    &TOPIC,
    &PARTITION,
    &STREAM,
    &FIRST_ID,
    &LAST_ID,
    &ENTRY_COUNT,
    &LAST_OFFSET,
];

const fn key(footer: &'static str, s3: &'static str) -> Key {
    Key { footer, s3 }
}

/// What one object holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: u32,
    /// The Redis stream key the entries came from (UTF-8 only).
    pub stream: String,
    /// ID of the first entry.
    pub first_id: StreamId,
    /// ID of the last entry.
    pub last_id: StreamId,
    /// Number of entries (at least 1).
    pub entry_count: u64,
    /// entries-added offset of the last entry (1-based count of all entries ever added to the
    /// stream up to and including `last_id`), when known
    pub last_offset: Option<u64>,
}

impl ObjectMeta {
    fn values(&self) -> Vec<(&'static Key, String)> {
        let mut values = vec![
            (&FORMAT_VERSION_KEY, FORMAT_VERSION.to_string()),
            (&TOPIC, self.topic.clone()),
            (&PARTITION, self.partition.to_string()),
            (&STREAM, self.stream.clone()),
            (&FIRST_ID, self.first_id.to_string()),
            (&LAST_ID, self.last_id.to_string()),
            (&ENTRY_COUNT, self.entry_count.to_string()),
        ];
        if let Some(offset) = self.last_offset {
            values.push((&LAST_OFFSET, offset.to_string()));
        }
        values
    }

    /// Returns the footer key-value metadata: `streamtier.format_version`, `streamtier.topic`,
    /// `streamtier.partition`, `streamtier.stream`, `streamtier.first_id`,
    /// `streamtier.last_id`, `streamtier.entry_count` and, when known,
    /// `streamtier.last_offset`, all as plain strings.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        self.values()
            .into_iter()
            .map(|(key, value)| (key.footer.to_owned(), value))
            .collect()
    }

    /// Reads footer key-value metadata written by [`ObjectMeta::to_pairs`]; other keys are
    /// ignored.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownFormatVersion`] for a version other than [`FORMAT_VERSION`],
    /// [`Error::MissingMetadata`] and [`Error::BadMetadata`] naming the key otherwise.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let map: HashMap<&str, &str> = pairs
            .into_iter()
            .filter(|(k, _)| k.starts_with("streamtier."))
            .collect();
        Self::parse(
            |key| Ok(map.get(key.footer).map(|v| (*v).to_owned())),
            |k| k.footer,
        )
    }

    /// Returns the same values as S3 user metadata: keys without the `streamtier.` prefix and
    /// with `_` replaced by `-` (`format-version`, `topic`, `partition`, `stream`, `first-id`,
    /// `last-id`, `entry-count`, `last-offset`); the client adds `x-amz-meta-`.
    ///
    /// Values are HTTP-header safe: bytes outside printable ASCII, and `%`, are
    /// percent-encoded (`%XX`), so ordinary names appear unchanged.
    pub fn to_s3_metadata(&self) -> Vec<(String, String)> {
        self.values()
            .into_iter()
            .map(|(key, value)| (key.s3.to_owned(), percent_encode(&value)))
            .collect()
    }

    /// Reads S3 user metadata written by [`ObjectMeta::to_s3_metadata`]. Keys are compared
    /// ASCII case-insensitively and may keep an `x-amz-meta-` prefix; other keys are ignored.
    ///
    /// # Errors
    ///
    /// As [`ObjectMeta::from_pairs`], naming the S3 key.
    pub fn from_s3_metadata<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut map: HashMap<&'static str, &str> = HashMap::new();
        for (k, v) in pairs {
            let lower = k.to_ascii_lowercase();
            let name = lower.strip_prefix("x-amz-meta-").unwrap_or(&lower);
            if let Some(key) = ALL_KEYS.iter().find(|key| key.s3 == name) {
                map.insert(key.s3, v);
            }
        }
        Self::parse(
            |key| {
                map.get(key.s3)
                    .map(|v| {
                        percent_decode(v).ok_or_else(|| Error::BadMetadata {
                            key: key.s3.into(),
                            value: (*v).into(),
                        })
                    })
                    .transpose()
            },
            |k| k.s3,
        )
    }

    /// Builds the metadata from a lookup (`Ok(None)` when a key is absent) and the key naming
    /// used in errors.
    fn parse(
        text: impl Fn(&Key) -> Result<Option<String>>,
        name: impl Fn(&Key) -> &'static str,
    ) -> Result<Self> {
        let required =
            |key: &Key| -> Result<String> { text(key)?.ok_or(Error::MissingMetadata { key: name(key) }) };
        let bad = |key: &Key, value: &str| Error::BadMetadata {
            key: name(key).into(),
            value: value.into(),
        };
        let number = |key: &Key, value: String| -> Result<u64> {
            match value.bytes().all(|b| b.is_ascii_digit()) {
                true => value.parse().map_err(|_| bad(key, &value)),
                false => Err(bad(key, &value)),
            }
        };

        let version = required(&FORMAT_VERSION_KEY)?;
        if version != FORMAT_VERSION.to_string() {
            return Err(Error::UnknownFormatVersion { version });
        }
        let topic = required(&TOPIC)?;
        validate_topic_name(&topic).map_err(|_| bad(&TOPIC, &topic))?;
        let partition = required(&PARTITION)?;
        let partition =
            u32::try_from(number(&PARTITION, partition.clone())?).map_err(|_| bad(&PARTITION, &partition))?;
        let stream = required(&STREAM)?;
        let id = |key: &Key| -> Result<StreamId> {
            let value = required(key)?;
            value.parse().map_err(|_| bad(key, &value))
        };
        let first_id = id(&FIRST_ID)?;
        let last_id = id(&LAST_ID)?;
        if last_id < first_id {
            return Err(bad(&LAST_ID, &last_id.to_string()));
        }
        let entry_count = number(&ENTRY_COUNT, required(&ENTRY_COUNT)?)?;
        if entry_count == 0 {
            return Err(bad(&ENTRY_COUNT, "0"));
        }
        let last_offset = text(&LAST_OFFSET)?.map(|v| number(&LAST_OFFSET, v)).transpose()?;
        Ok(ObjectMeta {
            topic,
            partition,
            stream,
            first_id,
            last_id,
            entry_count,
            last_offset,
        })
    }
}

fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ObjectMeta {
        ObjectMeta {
            topic: "__strm:app.orders".into(),
            partition: 3,
            stream: "__strm:app.orders:3 ü%\n".into(),
            first_id: StreamId::new(1_763_780_645_000, 0),
            last_id: StreamId::new(1_763_780_645_999, 4),
            entry_count: 17,
            last_offset: Some(12_345),
        }
    }

    fn borrowed(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    #[test]
    fn footer_pairs_round_trip() {
        let meta = sample();
        let pairs = meta.to_pairs();
        assert_eq!(pairs[0], ("streamtier.format_version".into(), "1".into()));
        assert!(pairs.contains(&("streamtier.first_id".into(), "1763780645000-0".into())));
        let mut with_other = borrowed(&pairs);
        with_other.push(("ARROW:schema", "xyz"));
        assert_eq!(ObjectMeta::from_pairs(with_other).unwrap(), meta);

        let meta = ObjectMeta {
            last_offset: None,
            ..sample()
        };
        let pairs = meta.to_pairs();
        assert!(!pairs.iter().any(|(k, _)| k == "streamtier.last_offset"));
        assert_eq!(ObjectMeta::from_pairs(borrowed(&pairs)).unwrap(), meta);
    }

    #[test]
    fn s3_metadata_round_trips_and_is_header_safe() {
        let meta = sample();
        let pairs = meta.to_s3_metadata();
        let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "format-version",
                "topic",
                "partition",
                "stream",
                "first-id",
                "last-id",
                "entry-count",
                "last-offset"
            ]
        );
        assert!(pairs.contains(&("topic".into(), "__strm:app.orders".into())));
        for (_, v) in &pairs {
            assert!(v.bytes().all(|b| (0x21..=0x7e).contains(&b)), "{v}");
        }
        assert_eq!(ObjectMeta::from_s3_metadata(borrowed(&pairs)).unwrap(), meta);
        let prefixed: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (format!("X-Amz-Meta-{k}"), v.clone()))
            .collect();
        assert_eq!(ObjectMeta::from_s3_metadata(borrowed(&prefixed)).unwrap(), meta);
    }

    #[test]
    fn reports_unknown_version_missing_and_bad_keys() {
        let pairs = sample().to_pairs();
        let replace = |key: &str, value: Option<&str>| -> Vec<(String, String)> {
            pairs
                .iter()
                .filter_map(|(k, v)| match (k == key, value) {
                    (true, Some(new)) => Some((k.clone(), new.to_owned())),
                    (true, None) => None,
                    (false, _) => Some((k.clone(), v.clone())),
                })
                .collect()
        };
        let err =
            ObjectMeta::from_pairs(borrowed(&replace("streamtier.format_version", Some("2")))).unwrap_err();
        assert!(matches!(err, Error::UnknownFormatVersion { version } if version == "2"));
        let err = ObjectMeta::from_pairs(borrowed(&replace("streamtier.stream", None))).unwrap_err();
        assert!(matches!(
            err,
            Error::MissingMetadata {
                key: "streamtier.stream"
            }
        ));
        for (key, value) in [
            ("streamtier.partition", "4294967296"),
            ("streamtier.partition", "+1"),
            ("streamtier.first_id", "1"),
            ("streamtier.last_id", "0-1"),
            ("streamtier.entry_count", "0"),
            ("streamtier.last_offset", "-1"),
            ("streamtier.topic", "a/b"),
        ] {
            let err = ObjectMeta::from_pairs(borrowed(&replace(key, Some(value)))).unwrap_err();
            assert!(
                matches!(&err, Error::BadMetadata { key: k, .. } if k == key),
                "{key}: {err}"
            );
        }
        let err = ObjectMeta::from_s3_metadata([("format-version", "1"), ("topic", "a%zz")]).unwrap_err();
        assert!(matches!(err, Error::BadMetadata { key, .. } if key == "topic"));
    }
}
