//! Which checksum blocks of an object a filter may take, from the page statistics of its
//! `float64` typed columns: a block whose pages cannot hold a match is not read at all.
//!
//! Only `float64` columns (and `ts`) prune: a filter's number literal reads a field exactly as a
//! `float64` typed column does (see the `filter` module), so their statistics bound what it
//! compares. A page without statistics, or a filter part that statistics cannot decide, keeps
//! the block.

use std::ops::Range;

use parquet::basic::Type as PhysicalType;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use streamtier_schemas::parquet::{Block, COL_TS};

use crate::filter::{Bounded, Filter};

/// The fixed columns, never typed ones.
const FIXED: [&str; 5] = ["id", "ts", "seq", "fields", "raw_fields"];

/// For each block (with its rows), whether `filter` may take an entry of it.
pub(crate) fn blocks_may_match(
    metadata: &ParquetMetaData,
    blocks: &[(Block, Range<u64>)],
    filter: &Filter,
) -> Vec<bool> {
    let columns: Vec<(String, usize)> = metadata
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .enumerate()
        .filter(|(_, c)| c.physical_type() == PhysicalType::DOUBLE && c.path().parts().len() == 1)
        .map(|(i, c)| (c.path().parts()[0].clone(), i))
        .filter(|(name, _)| !FIXED.contains(&name.as_str()))
        .collect();
    let ts = metadata
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.path().string() == COL_TS);
    blocks
        .iter()
        .map(|(_, rows)| {
            filter.may_match(&|what: Bounded<'_>| match what {
                Bounded::Ts => ts_bounds(metadata, ts?, rows.clone()),
                Bounded::Field(name) => {
                    let (_, col) = columns.iter().find(|(n, _)| n.as_bytes() == name)?;
                    bounds(metadata, *col, rows.clone())
                }
            })
        })
        .collect()
}

/// Like [`bounds`], for the `ts` column (epoch milliseconds).
fn ts_bounds(metadata: &ParquetMetaData, col: usize, rows: Range<u64>) -> Option<(f64, f64)> {
    page_bounds(metadata, col, rows, |index, p| match index {
        ColumnIndexMetaData::INT64(i) => Some((*i.min_value(p)? as f64, *i.max_value(p)? as f64)),
        _ => None,
    })
}

/// The smallest and largest value of `float64` column `col` over the pages holding `rows`;
/// `None` when a page has no statistics.
fn bounds(metadata: &ParquetMetaData, col: usize, rows: Range<u64>) -> Option<(f64, f64)> {
    page_bounds(metadata, col, rows, |index, p| match index {
        ColumnIndexMetaData::DOUBLE(i) => Some((*i.min_value(p)?, *i.max_value(p)?)),
        _ => None,
    })
}

/// The union of `page(index, p)` over the pages of column `col` that hold `rows`, skipping
/// pages of nulls only; `None` when a page has no page index or no statistics.
fn page_bounds(
    metadata: &ParquetMetaData,
    col: usize,
    rows: Range<u64>,
    page: impl Fn(&ColumnIndexMetaData, usize) -> Option<(f64, f64)>,
) -> Option<(f64, f64)> {
    let mut start = 0u64;
    let mut out: Option<(f64, f64)> = None;
    for (g, group) in metadata.row_groups().iter().enumerate() {
        let count = group.num_rows() as u64;
        let end = start + count;
        if end > rows.start && start < rows.end {
            let page_index = metadata.page_index_for_row_group(g);
            let (Some(index), Some(locs)) = (page_index.column_index(col), page_index.offset_index(col))
            else {
                return None;
            };
            let locs = locs.page_locations();
            for (p, loc) in locs.iter().enumerate() {
                let page_start = start + loc.first_row_index as u64;
                let page_end = start + locs.get(p + 1).map_or(count, |n| n.first_row_index as u64);
                if page_end <= rows.start || page_start >= rows.end || is_null_page(index, p) {
                    continue;
                }
                let (min, max) = page(index, p)?;
                out = Some(out.map_or((min, max), |(a, b)| (a.min(min), b.max(max))));
            }
        }
        start = end;
    }
    // Pages of nulls only: the block holds no number (`+inf..-inf` matches nothing).
    Some(out.unwrap_or((f64::INFINITY, f64::NEG_INFINITY)))
}

/// Whether page `p` holds only nulls.
fn is_null_page(index: &ColumnIndexMetaData, p: usize) -> bool {
    match index {
        ColumnIndexMetaData::DOUBLE(i) => i.is_null_page(p),
        ColumnIndexMetaData::INT64(i) => i.is_null_page(p),
        _ => false,
    }
}
