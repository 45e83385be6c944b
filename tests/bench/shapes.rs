//! The shapes of data the benchmark archives: dense (six busy hours), sparse (a quiet year) and
//! trickle (a live producer walking through past hours, see `trickle.rs`).
//!
//! The sparse year: entries fall into (partition, UTC hour) cells drawn one by one from weights
//! with daily and weekly seasonality, per-partition volume, random quiet hours and a few bursts,
//! so that a cell holds about `entries / partitions / 8760` entries on average (8-9 for the
//! default 300k over 4 partitions) but many hold none and some hold dozens. Within a cell the
//! milliseconds are uniform; ids are `ms-seq` with `seq` counting same-millisecond entries.

use std::collections::HashSet;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::data::Generator;
use crate::resp::RawEntry;

/// Milliseconds in an hour.
pub const HOUR_MS: u64 = 3_600_000;
/// 2025-01-01T00:00:00Z: the sparse year starts here.
const YEAR_START: u64 = 1_735_689_600_000;
/// Hours of the sparse year (2025 is not a leap year).
const YEAR_HOURS: u64 = 365 * 24;

/// What the benchmark loads and measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Entries evenly over six hours: the throughput shape.
    Dense,
    /// Entries irregularly over one year: the small-objects shape.
    Sparse,
    /// The archiver daemon while a producer writes into past hours.
    Trickle,
    /// Many partitions with nothing new: what the daemon costs at rest (`idle.rs`).
    Idle,
    /// The lease protocol of many daemons in simulated time, no servers (`simulate.rs`).
    Simulate,
    /// A stream with three consumer groups archived, wiped and restored (`restore.rs`).
    Restore,
    /// A replay larger than Redis' maxmemory, with and without flow control (`flow.rs`).
    Flow,
}

impl Shape {
    /// Parses `dense`, `sparse` or `trickle`.
    pub fn parse(s: &str) -> Shape {
        match s {
            "dense" => Shape::Dense,
            "sparse" => Shape::Sparse,
            "trickle" => Shape::Trickle,
            "idle" => Shape::Idle,
            "simulate" => Shape::Simulate,
            "restore" => Shape::Restore,
            "flow" => Shape::Flow,
            other => panic!("--shape dense|sparse|trickle|idle|simulate|restore|flow, not `{other}`"),
        }
    }

    /// The name used in output.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Dense => "dense",
            Shape::Sparse => "sparse",
            Shape::Trickle => "trickle",
            Shape::Idle => "idle",
            Shape::Simulate => "simulate",
            Shape::Restore => "restore",
            Shape::Flow => "flow",
        }
    }

    /// Entries when `--entries` is not given.
    pub fn default_entries(self) -> u64 {
        match self {
            Shape::Dense => 2_000_000,
            Shape::Restore | Shape::Flow => 1_000_000,
            Shape::Sparse => 300_000,
            // The trickle producer decides.
            Shape::Trickle => 0,
            // One entry per partition.
            Shape::Idle | Shape::Simulate => 1,
        }
    }

    /// Partitions when `--partitions` is not given.
    pub fn default_partitions(self) -> u64 {
        match self {
            Shape::Sparse => 4,
            Shape::Dense | Shape::Trickle => 8,
            Shape::Idle => 2_000,
            Shape::Simulate => 10_000,
            Shape::Restore | Shape::Flow => 1,
        }
    }

    /// The narrow replay's range and its label: a minute of the dense hours, a day of the
    /// sparse year (a minute of it holds less than one entry).
    pub fn narrow(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Shape::Sparse => (
                "2025-07-01T00:00:00Z",
                "2025-07-02T00:00:00Z",
                "narrow replay (1 day)",
            ),
            Shape::Dense | Shape::Trickle | Shape::Idle | Shape::Simulate | Shape::Restore | Shape::Flow => (
                "2025-11-22T03:00:00Z",
                "2025-11-22T03:01:00Z",
                "narrow replay (1 min)",
            ),
        }
    }
}

/// The milliseconds of an id `ms-seq`.
pub fn id_ms(id: &str) -> u64 {
    id.split('-')
        .next()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("entry id `{id}` is not `ms-seq`"))
}

/// The (partition, UTC hour) cells that hold entries.
#[derive(Debug, Default)]
pub struct Cells(HashSet<(u64, u64)>);

impl Cells {
    /// Notes an entry with `id` in `partition`.
    pub fn add(&mut self, partition: u64, id: &str) {
        self.0.insert((partition, id_ms(id) / HOUR_MS));
    }

    /// How many cells hold entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// The sparse year: `n` entries over `partitions` streams, one `Vec` per partition in id order.
pub fn sparse(n: u64, partitions: u64) -> Vec<Vec<RawEntry>> {
    let mut rng = StdRng::seed_from_u64(0x5a75e);
    let weights = year_weights(&mut rng, partitions);
    // Cumulative weights: each entry picks its cell by a binary search (a multinomial draw).
    let mut cumulative = Vec::with_capacity(weights.len());
    let mut total = 0.0;
    for w in &weights {
        total += w;
        cumulative.push(total);
    }
    let mut counts = vec![0u32; weights.len()];
    for _ in 0..n {
        let x = rng.random_range(0.0..total);
        let cell = cumulative.partition_point(|c| *c <= x).min(counts.len() - 1);
        counts[cell] += 1;
    }
    // Fields come from the dense shape's generator, in id order within each partition.
    let mut fields = Generator::new(n);
    let mut out: Vec<Vec<RawEntry>> = (0..partitions).map(|_| Vec::new()).collect();
    for (p, stream) in out.iter_mut().enumerate() {
        let mut last: Option<(u64, u64)> = None;
        for hour in 0..YEAR_HOURS {
            let count = counts[p * YEAR_HOURS as usize + hour as usize];
            let start = YEAR_START + hour * HOUR_MS;
            let mut ms: Vec<u64> = (0..count).map(|_| start + rng.random_range(0..HOUR_MS)).collect();
            ms.sort_unstable();
            for ms in ms {
                let seq = match last {
                    Some((prev, seq)) if prev == ms => seq + 1,
                    _ => 0,
                };
                last = Some((ms, seq));
                stream.push((format!("{ms}-{seq}"), fields.fields(ms)));
            }
        }
    }
    out
}

/// One weight per (partition, hour of the year), partition-major.
fn year_weights(rng: &mut StdRng, partitions: u64) -> Vec<f64> {
    let mut weights = Vec::with_capacity((partitions * YEAR_HOURS) as usize);
    for p in 0..partitions {
        // Some partitions carry more than others (keys are not hashed evenly in practice).
        let volume = 0.6 + 0.8 * ((p * 7 + 3) % 5) as f64 / 4.0;
        let mut burst_left = 0;
        for hour in 0..YEAR_HOURS {
            let hour_of_day = (hour % 24) as f64;
            // 2025-01-01 was a Wednesday: day 0 is weekday 2 (Monday = 0).
            let weekday = (hour / 24 + 2) % 7;
            // Quiet nights, a busy afternoon peaking around 15:00 UTC.
            let daily = 0.15
                + (std::f64::consts::PI * (hour_of_day - 3.0) / 24.0)
                    .sin()
                    .max(0.0)
                    .powi(2);
            let weekly = if weekday >= 5 { 0.45 } else { 1.0 };
            // Summer is a little quieter.
            let season = 1.0 - 0.2 * (std::f64::consts::PI * hour as f64 / YEAR_HOURS as f64).sin();
            let mut w = volume * daily * weekly * season * rng.random_range(0.5..1.5);
            if burst_left == 0 && rng.random_bool(0.004) {
                burst_left = rng.random_range(1..6);
            }
            if burst_left > 0 {
                burst_left -= 1;
                w *= rng.random_range(8.0..25.0);
            } else if rng.random_bool(0.08) {
                // Nothing at all this hour: an upstream outage or simply a quiet service.
                w = 0.0;
            }
            weights.push(w);
        }
    }
    weights
}
