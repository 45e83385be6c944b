//! Optional typed columns: values parsed from the first field of the same name.
//!
//! A value that does not parse becomes null in the typed column; `fields` keeps it intact,
//! so typed columns never affect the round trip.

use std::fmt;
use std::str::FromStr;

use crate::civil::parse_rfc3339_ms;
use crate::entries::EntryRef;
use crate::error::{Error, Result};

/// Names of the fixed columns, which typed columns must not reuse.
pub const FIXED_COLUMNS: [&str; 5] = ["id", "ts", "seq", "fields", "raw_fields"];
/// Hive partition columns of the Athena table, which typed columns must not reuse either.
pub const PARTITION_COLUMNS: [&str; 4] = ["topic", "partition", "dt", "hour"];
/// Longest accepted typed column name in bytes (Athena's limit for column names).
pub const MAX_COLUMN_NAME_LEN: usize = 255;

/// The type of a typed column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// The UTF-8 text as is (Parquet `STRING`).
    String,
    /// A decimal `i64` (Parquet `INT64`).
    Int64,
    /// A Rust `f64` literal (Parquet `DOUBLE`).
    Float64,
    /// `true`/`false`/`1`/`0`, ASCII case-insensitive (Parquet `BOOLEAN`).
    Bool,
    /// Integer epoch milliseconds or RFC 3339 text (Parquet `TIMESTAMP(MILLIS, UTC)`).
    Timestamp,
}

impl ColumnType {
    /// Returns the lowercase name used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Int64 => "int64",
            ColumnType::Float64 => "float64",
            ColumnType::Bool => "bool",
            ColumnType::Timestamp => "timestamp",
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ColumnType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "string" => Ok(ColumnType::String),
            "int64" => Ok(ColumnType::Int64),
            "float64" => Ok(ColumnType::Float64),
            "bool" => Ok(ColumnType::Bool),
            "timestamp" => Ok(ColumnType::Timestamp),
            _ => Err(Error::UnknownColumnType { input: s.into() }),
        }
    }
}

/// A typed column: `kind` values parsed from the first field called `name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypedColumn {
    /// Column name, also the field name the value comes from.
    pub name: String,
    /// How the value is parsed.
    pub kind: ColumnType,
}

impl TypedColumn {
    /// Creates a typed column.
    pub fn new(name: impl Into<String>, kind: ColumnType) -> Self {
        TypedColumn {
            name: name.into(),
            kind,
        }
    }

    /// Returns the text this column reads from `entry`: the first field with exactly this
    /// name, if its value is valid UTF-8.
    pub fn source<'a>(&self, entry: &EntryRef<'a>) -> Option<&'a str> {
        std::str::from_utf8(entry.first_value(self.name.as_bytes())?).ok()
    }
}

/// A parsed typed value.
#[derive(Clone, Debug, PartialEq)]
pub enum TypedValue<'a> {
    /// See [`ColumnType::String`].
    String(&'a str),
    /// See [`ColumnType::Int64`].
    Int64(i64),
    /// See [`ColumnType::Float64`].
    Float64(f64),
    /// See [`ColumnType::Bool`].
    Bool(bool),
    /// Epoch milliseconds; see [`ColumnType::Timestamp`].
    Timestamp(i64),
}

/// Parses `text` as `kind`, or returns `None` when it does not parse.
pub fn parse_value(kind: ColumnType, text: &str) -> Option<TypedValue<'_>> {
    match kind {
        ColumnType::String => Some(TypedValue::String(text)),
        ColumnType::Int64 => text.parse().ok().map(TypedValue::Int64),
        ColumnType::Float64 => text.parse().ok().map(TypedValue::Float64),
        ColumnType::Bool => parse_bool(text).map(TypedValue::Bool),
        ColumnType::Timestamp => text
            .parse()
            .ok()
            .or_else(|| parse_rfc3339_ms(text))
            .map(TypedValue::Timestamp),
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("true") || text == "1" {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") || text == "0" {
        Some(false)
    } else {
        None
    }
}

/// Checks a set of typed columns.
///
/// Names must be non-empty, at most 255 bytes, free of control characters, distinct from
/// each other and from the fixed columns (`id`, `ts`, `seq`, `fields`, `raw_fields`) and
/// the Athena partition columns (`topic`, `partition`, `dt`, `hour`). Comparisons ignore
/// ASCII case because Athena and Hive do.
///
/// # Errors
///
/// Returns [`Error::InvalidColumn`] naming the first offending column.
pub fn validate_columns(columns: &[TypedColumn]) -> Result<()> {
    for (i, column) in columns.iter().enumerate() {
        let name = column.name.as_str();
        let invalid = |reason: String| Error::InvalidColumn {
            column: name.into(),
            reason,
        };
        if name.is_empty() {
            return Err(invalid("name is empty".into()));
        }
        if name.len() > MAX_COLUMN_NAME_LEN {
            return Err(invalid(format!(
                "name is longer than {MAX_COLUMN_NAME_LEN} bytes"
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(invalid("name contains a control character".into()));
        }
        if let Some(fixed) = FIXED_COLUMNS.iter().find(|f| f.eq_ignore_ascii_case(name)) {
            return Err(invalid(format!("collides with fixed column `{fixed}`")));
        }
        if let Some(part) = PARTITION_COLUMNS.iter().find(|p| p.eq_ignore_ascii_case(name)) {
            return Err(invalid(format!("collides with partition column `{part}`")));
        }
        if columns[..i].iter().any(|c| c.name.eq_ignore_ascii_case(name)) {
            return Err(invalid("is defined twice".into()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Entry;
    use crate::id::StreamId;
    use bytes::Bytes;

    #[test]
    fn column_type_names_round_trip() {
        for kind in [
            ColumnType::String,
            ColumnType::Int64,
            ColumnType::Float64,
            ColumnType::Bool,
            ColumnType::Timestamp,
        ] {
            assert_eq!(kind.as_str().parse::<ColumnType>().unwrap(), kind);
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{kind}\""));
            assert_eq!(serde_json::from_str::<ColumnType>(&json).unwrap(), kind);
        }
        let err = "Int64".parse::<ColumnType>().unwrap_err();
        assert!(err.to_string().contains("`Int64`"));
        assert!(err.to_string().contains("`timestamp`"));
    }

    #[test]
    fn parses_values_by_the_documented_rules() {
        use ColumnType::*;
        assert_eq!(parse_value(Int64, "-42"), Some(TypedValue::Int64(-42)));
        assert_eq!(parse_value(Int64, "4.2"), None);
        assert_eq!(parse_value(Int64, " 1"), None);
        assert_eq!(parse_value(Float64, "4.5e1"), Some(TypedValue::Float64(45.0)));
        assert_eq!(parse_value(Float64, "x"), None);
        assert_eq!(parse_value(Bool, "TRUE"), Some(TypedValue::Bool(true)));
        assert_eq!(parse_value(Bool, "0"), Some(TypedValue::Bool(false)));
        assert_eq!(parse_value(Bool, "yes"), None);
        assert_eq!(
            parse_value(Timestamp, "1763780645000"),
            Some(TypedValue::Timestamp(1_763_780_645_000))
        );
        assert_eq!(
            parse_value(Timestamp, "2025-11-22T03:04:05.250Z"),
            Some(TypedValue::Timestamp(1_763_780_645_250))
        );
        assert_eq!(parse_value(Timestamp, "yesterday"), None);
        assert_eq!(parse_value(String, ""), Some(TypedValue::String("")));
    }

    #[test]
    fn source_is_the_first_utf8_field_with_the_exact_name() {
        let entry = Entry::new(
            StreamId::new(1, 0),
            vec![
                (Bytes::from_static(b"Amount"), Bytes::from_static(b"1")),
                (Bytes::from_static(b"amount"), Bytes::from_static(b"2")),
                (Bytes::from_static(b"amount"), Bytes::from_static(b"3")),
                (Bytes::from_static(b"bin"), Bytes::from_static(b"\xff")),
            ],
        );
        let batch = crate::EntryBatch::from_entries(&[entry]);
        let entry = batch.get(0);
        let amount = TypedColumn::new("amount", ColumnType::Int64);
        assert_eq!(amount.source(&entry), Some("2"));
        assert_eq!(TypedColumn::new("bin", ColumnType::String).source(&entry), None);
        assert_eq!(TypedColumn::new("x", ColumnType::String).source(&entry), None);
    }

    #[test]
    fn rejects_colliding_or_bad_column_names() {
        let col = |n: &str| TypedColumn::new(n, ColumnType::String);
        validate_columns(&[col("amount"), col("carrier"), col("__meta:x")]).unwrap();
        for (columns, bad) in [
            (vec![col("id")], "id"),
            (vec![col("a"), col("RAW_FIELDS")], "RAW_FIELDS"),
            (vec![col("dt")], "dt"),
            (vec![col("")], ""),
            (vec![col("a\n")], "a\n"),
            (vec![col("x"), col("X")], "X"),
        ] {
            let err = validate_columns(&columns).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidColumn { column, .. } if column == bad),
                "{bad}"
            );
        }
    }
}
