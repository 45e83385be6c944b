//! The benchmark's entries: a realistic generated event shape, or rows of a CSV file.

use std::io::Write;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::args::Args;
use crate::resp::{RawEntry, Xadds};
use crate::shapes::{Cells, Shape};
use crate::util::Counter;

/// 2025-11-22T00:00:00Z
const T0: u64 = 1_763_769_600_000;
/// Entries spread over six hours.
const SPAN_MS: u64 = 6 * 3600 * 1000;

/// Generates entry `i` of `n` (partition `i % partitions`): 7 to 9 fields, about 150-250 bytes,
/// ids spread over six hours.
pub struct Generator {
    rng: StdRng,
    n: u64,
}

impl Generator {
    /// A deterministic generator for `n` entries (`n` only spaces the ids of [`Generator::entry`]).
    pub fn new(n: u64) -> Self {
        Generator {
            rng: StdRng::seed_from_u64(0x5eed),
            n,
        }
    }

    /// Entry `i`.
    pub fn entry(&mut self, i: u64) -> RawEntry {
        let ms = T0 + i * SPAN_MS / self.n.max(1);
        (format!("{ms}-{}", i % 7), self.fields(ms))
    }

    /// The fields of a next event that happened at `ms` (the id is the caller's).
    pub fn fields(&mut self, ms: u64) -> Vec<(String, String)> {
        let r = &mut self.rng;
        let mut fields = vec![
            (
                "event".to_string(),
                ["order_created", "order_paid", "order_shipped"][r.random_range(0..3)].to_string(),
            ),
            ("user_id".to_string(), r.random_range(1..5_000_000u64).to_string()),
            (
                "amount".to_string(),
                format!("{:.2}", r.random_range(0.5..900.0f64)),
            ),
            (
                "country".to_string(),
                ["DE", "FR", "US", "GB", "JP", "BR", "IN"][r.random_range(0..7)].to_string(),
            ),
            (
                "carrier".to_string(),
                ["dhl", "ups", "fedex", "postnl"][r.random_range(0..4)].to_string(),
            ),
            (
                "created_at".to_string(),
                (ms - r.random_range(0..5000u64)).to_string(),
            ),
            (
                "payload".to_string(),
                format!(
                    "{{\"sku\":\"SKU-{:05}\",\"qty\":{},\"note\":\"{}\"}}",
                    r.random_range(0..99_999),
                    r.random_range(1..9),
                    "x".repeat(r.random_range(10..70))
                ),
            ),
        ];
        if r.random_bool(0.5) {
            fields.push(("session".to_string(), format!("{:016x}", r.random::<u64>())));
        }
        if r.random_bool(0.3) {
            fields.push(("coupon".to_string(), format!("SAVE{}", r.random_range(5..50))));
        }
        fields
    }
}

/// The loaded entries: XADD commands per stream, and what was computed beside.
pub struct Loaded {
    pub xadds: Xadds,
    /// Payload bytes (names and values).
    pub payload: u64,
    /// Bytes of the entries as NDJSON + gzip.
    pub ndjson_gz: u64,
    /// (partition, hour) cells that hold entries.
    pub cells: u64,
}

/// Generates (or reads) the entries of `a`'s shape and encodes them as XADD commands in chunks,
/// with NDJSON+gzip and the payload size computed beside.
pub fn load(a: &Args) -> Loaded {
    let p = a.partitions;
    let mut xadds = Xadds::default();
    let mut payload = 0u64;
    // Lines reach the encoder in large writes (it does work per write call), and only the
    // compressed size is kept.
    let gz = flate2::write::GzEncoder::new(Counter(0), flate2::Compression::default());
    let mut gz = std::io::BufWriter::with_capacity(1 << 20, gz);
    // The (partition, hour) cells that hold entries: what objects per partition-hour divide by.
    let mut cells = Cells::default();
    let mut add = |partition: u64, e: RawEntry| {
        let key = format!("bench:{partition}");
        payload += self::payload(&e);
        ndjson(&mut gz, &key, &e);
        cells.add(partition, &e.0);
        xadds.push(partition as usize, &key, &e);
    };
    match (&a.csv, a.shape) {
        (Some(path), _) => read_csv(path, a.entries)
            .into_iter()
            .enumerate()
            .for_each(|(i, e)| add(i as u64 % p, e)),
        (None, Shape::Sparse) => {
            for (i, stream) in crate::shapes::sparse(a.entries, p).into_iter().enumerate() {
                stream.into_iter().for_each(|e| add(i as u64, e));
            }
        }
        (None, _) => {
            let mut g = Generator::new(a.entries);
            (0..a.entries).for_each(|i| add(i % p, g.entry(i)));
        }
    }
    let cells = cells.len() as u64;
    let gz = gz.into_inner().unwrap_or_else(|_| panic!("flush gzip"));
    let ndjson_gz = gz.finish().expect("gzip").0;
    Loaded {
        xadds,
        payload,
        ndjson_gz,
        cells,
    }
}

/// Rows of a CSV file with a header line (no quoting): each row is an entry whose fields are the
/// columns; ids are assigned like the generator's.
pub fn read_csv(path: &str, limit: u64) -> Vec<RawEntry> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .expect("CSV header")
        .split(',')
        .map(str::to_string)
        .collect();
    let rows: Vec<&str> = lines.filter(|l| !l.is_empty()).take(limit as usize).collect();
    let n = rows.len() as u64;
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            let ms = T0 + i as u64 * SPAN_MS / n.max(1);
            let fields = header
                .iter()
                .cloned()
                .zip(row.split(',').map(str::to_string))
                .collect();
            (format!("{ms}-{}", i % 7), fields)
        })
        .collect()
}

/// Payload bytes of an entry (names and values).
pub fn payload(entry: &RawEntry) -> u64 {
    entry.1.iter().map(|(n, v)| (n.len() + v.len()) as u64).sum()
}

/// Appends an entry as one NDJSON line (with its id and stream) to a gzip encoder.
pub fn ndjson(out: &mut impl Write, stream: &str, entry: &RawEntry) {
    let fields: serde_json::Map<String, serde_json::Value> = entry
        .1
        .iter()
        .map(|(n, v)| (n.clone(), serde_json::Value::String(v.clone())))
        .collect();
    let line = serde_json::json!({"stream": stream, "id": entry.0, "fields": fields});
    serde_json::to_writer(&mut *out, &line).expect("ndjson");
    out.write_all(b"\n").expect("ndjson");
}
