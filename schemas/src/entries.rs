//! A run of entries sharing one buffer ([`EntryBatch`]): how a read hands entries to the
//! object writer without a heap allocation per entry or a reference count per field.

use std::ops::Range;

use bytes::Bytes;

use crate::entry::{Entry, ENTRY_OVERHEAD};
use crate::id::StreamId;

/// Where one field's name and value lie in the batch's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    name: u32,
    name_len: u32,
    value: u32,
    value_len: u32,
}

/// Entries in ascending position whose names and values are ranges of one shared buffer
/// (typically the reply they were read from). Holds 16 bytes per field and 20 per entry
/// besides the buffer.
#[derive(Clone, Debug, Default)]
pub struct EntryBatch {
    data: Bytes,
    ids: Vec<StreamId>,
    /// Entry `i`'s fields are `spans[starts[i]..starts[i + 1]]`; `starts[0] == 0`.
    starts: Vec<u32>,
    spans: Vec<Span>,
}

/// The buffer of an [`EntryBatch`] is larger than 4 GiB, or a range lies outside it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("entry batch: field range {start}..{end} is outside a buffer of {len} bytes or above 4 GiB")]
pub struct SpanError {
    start: usize,
    end: usize,
    len: usize,
}

/// Builds an [`EntryBatch`] from ranges of a buffer that may still be arriving:
/// [`EntryBatchBuilder::entry`], then its fields, and [`EntryBatchBuilder::finish`] with the
/// whole buffer. A parser that runs out of bytes mid-entry goes back to a [`BuilderMark`].
#[derive(Debug)]
pub struct EntryBatchBuilder {
    batch: EntryBatch,
}

/// How far an [`EntryBatchBuilder`] had got (see [`EntryBatchBuilder::rollback`]).
#[derive(Clone, Copy, Debug)]
pub struct BuilderMark {
    ids: usize,
    starts: usize,
    spans: usize,
}

impl EntryBatchBuilder {
    /// An empty batch with room for `entries` entries.
    pub fn new(entries: usize) -> Self {
        let mut starts = Vec::with_capacity(entries + 1);
        starts.push(0);
        EntryBatchBuilder {
            batch: EntryBatch {
                data: Bytes::new(),
                ids: Vec::with_capacity(entries),
                starts,
                spans: Vec::with_capacity(entries * 8),
            },
        }
    }

    /// Starts the next entry; the fields added next belong to it.
    pub fn entry(&mut self, id: StreamId) {
        let b = &mut self.batch;
        if !b.ids.is_empty() {
            b.starts.push(b.spans.len() as u32);
        }
        b.ids.push(id);
    }

    /// Adds a field of the current entry; `name` and `value` are ranges of the buffer that
    /// [`EntryBatchBuilder::finish`] will be given.
    ///
    /// # Errors
    ///
    /// [`SpanError`] if a range ends past 4 GiB or before it starts.
    ///
    /// # Panics
    ///
    /// If no entry was started.
    pub fn field(&mut self, name: Range<usize>, value: Range<usize>) -> Result<(), SpanError> {
        assert!(!self.batch.ids.is_empty(), "a field needs an entry");
        let check = |r: &Range<usize>| {
            let ok = r.start <= r.end && u32::try_from(r.end).is_ok();
            ok.then_some(()).ok_or(SpanError {
                start: r.start,
                end: r.end,
                len: u32::MAX as usize,
            })
        };
        check(&name)?;
        check(&value)?;
        self.batch.spans.push(Span {
            name: name.start as u32,
            name_len: (name.end - name.start) as u32,
            value: value.start as u32,
            value_len: (value.end - value.start) as u32,
        });
        Ok(())
    }

    /// Entries started so far.
    pub fn len(&self) -> usize {
        self.batch.ids.len()
    }

    /// Whether no entry was started.
    pub fn is_empty(&self) -> bool {
        self.batch.ids.is_empty()
    }

    /// Where the builder is now.
    pub fn mark(&self) -> BuilderMark {
        let b = &self.batch;
        BuilderMark {
            ids: b.ids.len(),
            starts: b.starts.len(),
            spans: b.spans.len(),
        }
    }

    /// Forgets every entry and field added after `mark` was taken.
    pub fn rollback(&mut self, mark: BuilderMark) {
        let b = &mut self.batch;
        b.ids.truncate(mark.ids);
        b.starts.truncate(mark.starts);
        b.spans.truncate(mark.spans);
    }

    /// The finished batch over `data`, the buffer the ranges point into.
    ///
    /// # Errors
    ///
    /// [`SpanError`] if a range lies outside `data`.
    pub fn finish(mut self, data: Bytes) -> Result<EntryBatch, SpanError> {
        let len = data.len();
        for s in &self.batch.spans {
            for (start, n) in [(s.name, s.name_len), (s.value, s.value_len)] {
                let end = start as usize + n as usize;
                if end > len {
                    return Err(SpanError {
                        start: start as usize,
                        end,
                        len,
                    });
                }
            }
        }
        let b = &mut self.batch;
        if !b.ids.is_empty() {
            b.starts.push(b.spans.len() as u32);
        }
        b.data = data;
        Ok(self.batch)
    }
}

impl EntryBatch {
    /// Copies `entries` into one buffer.
    ///
    /// # Panics
    ///
    /// If the entries' names and values add up to more than 4 GiB (see
    /// [`EntryBatch::try_from_entries`]).
    pub fn from_entries(entries: &[Entry]) -> Self {
        Self::try_from_entries(entries).expect("entries of one batch over 4 GiB")
    }

    /// Copies `entries` into one buffer.
    ///
    /// # Errors
    ///
    /// [`SpanError`] if their names and values add up to more than 4 GiB.
    pub fn try_from_entries(entries: &[Entry]) -> Result<Self, SpanError> {
        let size: usize = entries.iter().map(|e| e.payload_len() - ENTRY_OVERHEAD).sum();
        let mut data = Vec::with_capacity(size);
        let mut ranges = Vec::with_capacity(entries.iter().map(|e| e.fields.len()).sum());
        for entry in entries {
            for (name, value) in &entry.fields {
                let n = data.len()..data.len() + name.len();
                data.extend_from_slice(name);
                let v = data.len()..data.len() + value.len();
                data.extend_from_slice(value);
                ranges.push((n, v));
            }
        }
        let mut builder = EntryBatchBuilder::new(entries.len());
        let mut ranges = ranges.into_iter();
        for entry in entries {
            builder.entry(entry.id);
            for (name, value) in ranges.by_ref().take(entry.fields.len()) {
                builder.field(name, value)?;
            }
        }
        builder.finish(Bytes::from(data))
    }

    /// The entries as [`Entry`] values whose fields slice the shared buffer.
    pub fn to_entries(&self) -> Vec<Entry> {
        self.iter().map(|e| e.to_entry(&self.data)).collect()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The entries' ids, in order.
    pub fn ids(&self) -> &[StreamId] {
        &self.ids
    }

    /// The first entry's id.
    pub fn first_id(&self) -> Option<StreamId> {
        self.ids.first().copied()
    }

    /// The last entry's id.
    pub fn last_id(&self) -> Option<StreamId> {
        self.ids.last().copied()
    }

    /// Entry `i`.
    ///
    /// # Panics
    ///
    /// If `i >= len()`.
    pub fn get(&self, i: usize) -> EntryRef<'_> {
        let spans = &self.spans[self.starts[i] as usize..self.starts[i + 1] as usize];
        EntryRef {
            id: self.ids[i],
            data: &self.data,
            spans,
        }
    }

    /// The entries in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = EntryRef<'_>> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// The entries of `range`, in order.
    ///
    /// # Panics
    ///
    /// If `range` is not within `0..len()`.
    pub fn range(&self, range: Range<usize>) -> impl ExactSizeIterator<Item = EntryRef<'_>> + '_ {
        assert!(range.end <= self.len(), "range past the batch");
        range.map(|i| self.get(i))
    }

    /// The entries of `range` as a batch of their own over the same buffer: copies their
    /// 20 + 16 bytes per field of bookkeeping, never the names and values.
    ///
    /// # Panics
    ///
    /// If `range` is not within `0..len()`.
    pub fn slice(&self, range: Range<usize>) -> EntryBatch {
        assert!(
            range.start <= range.end && range.end <= self.len(),
            "slice past the batch"
        );
        if range.is_empty() {
            return EntryBatch::default();
        }
        let (from, to) = (self.starts[range.start] as usize, self.starts[range.end] as usize);
        let base = self.starts[range.start];
        EntryBatch {
            data: self.data.clone(),
            ids: self.ids[range.clone()].to_vec(),
            starts: self.starts[range.start..=range.end]
                .iter()
                .map(|s| s - base)
                .collect(),
            spans: self.spans[from..to].to_vec(),
        }
    }

    /// Keeps the first `len` entries (the buffer is kept whole).
    pub fn truncate(&mut self, len: usize) {
        if len < self.len() {
            self.ids.truncate(len);
            self.starts.truncate(len + 1);
            self.spans.truncate(self.starts[len] as usize);
        }
    }
}

/// One entry of an [`EntryBatch`].
#[derive(Clone, Copy, Debug)]
pub struct EntryRef<'a> {
    /// The entry's ID.
    pub id: StreamId,
    data: &'a [u8],
    spans: &'a [Span],
}

impl<'a> EntryRef<'a> {
    /// Number of fields.
    pub fn field_count(&self) -> usize {
        self.spans.len()
    }

    /// The (name, value) pairs in order.
    pub fn fields(&self) -> impl ExactSizeIterator<Item = (&'a [u8], &'a [u8])> + 'a {
        let data = self.data;
        self.spans.iter().map(move |s| {
            (
                &data[s.name as usize..(s.name + s.name_len) as usize],
                &data[s.value as usize..(s.value + s.value_len) as usize],
            )
        })
    }

    /// The fields as text when every name and value is UTF-8: fills `out` (in order) and
    /// answers `true`; `false` as soon as one is not.
    ///
    /// The bytes the fields span are validated in one pass, not field by field: in a reply
    /// the fields lie together, separated by ASCII headers. A field is then text exactly when
    /// it starts and ends on character boundaries of that text.
    pub fn text_fields(&self, out: &mut Vec<(&'a str, &'a str)>) -> bool {
        out.clear();
        let lo = self.spans.iter().map(|s| s.name.min(s.value)).min().unwrap_or(0) as usize;
        let hi = self
            .spans
            .iter()
            .map(|s| (s.name + s.name_len).max(s.value + s.value_len))
            .max()
            .unwrap_or(0) as usize;
        // Fields spread over a larger buffer are checked one by one.
        let together = hi - lo <= 2 * self.payload_len() + 64;
        let whole = if together {
            std::str::from_utf8(&self.data[lo..hi]).ok()
        } else {
            None
        };
        match whole {
            Some(whole) => {
                let text = |at: u32, len: u32| whole.get(at as usize - lo..(at + len) as usize - lo);
                for s in self.spans {
                    match (text(s.name, s.name_len), text(s.value, s.value_len)) {
                        (Some(name), Some(value)) => out.push((name, value)),
                        _ => return false,
                    }
                }
            }
            None => {
                for (name, value) in self.fields() {
                    match (std::str::from_utf8(name), std::str::from_utf8(value)) {
                        (Ok(name), Ok(value)) => out.push((name, value)),
                        _ => return false,
                    }
                }
            }
        }
        true
    }

    /// As [`Entry::payload_len`].
    pub fn payload_len(&self) -> usize {
        self.spans
            .iter()
            .map(|s| s.name_len as usize + s.value_len as usize)
            .sum::<usize>()
            + ENTRY_OVERHEAD
    }

    /// As [`Entry::first_value`].
    pub fn first_value(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.fields().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    fn to_entry(self, data: &Bytes) -> Entry {
        let fields = self
            .spans
            .iter()
            .map(|s| {
                (
                    data.slice(s.name as usize..(s.name + s.name_len) as usize),
                    data.slice(s.value as usize..(s.value + s.value_len) as usize),
                )
            })
            .collect();
        Entry::new(self.id, fields)
    }
}

#[cfg(test)]
mod tests;
