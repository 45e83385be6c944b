//! Repeated measurements of a phase against its raw limit, each pair taken back to back, and
//! the round with the median ratio as the one reported.
//!
//! On a shared or virtual machine one phase can run a fifth faster or slower than the same phase
//! a minute later. A ratio of two back-to-back measurements is steadier than either, and the
//! median of several such ratios steadier still.

/// One round: the raw limit measured right before the phase.
#[derive(Clone, Copy, Debug)]
pub struct Pair {
    /// Seconds the raw client took for the same entries.
    pub limit_secs: f64,
    /// Redis CPU seconds during the raw client's run.
    pub limit_cpu: f64,
    /// Seconds the phase took.
    pub secs: f64,
    /// Redis CPU seconds during the phase.
    pub cpu: f64,
    /// The phase's peak resident memory, MiB.
    pub rss: f64,
}

impl Pair {
    /// The phase's rate as a share of the raw limit's.
    pub fn ratio(&self) -> f64 {
        self.limit_secs / self.secs
    }
}

/// The rounds of one phase.
#[derive(Debug, Default)]
pub struct Rounds(Vec<Pair>);

impl Rounds {
    pub fn push(&mut self, pair: Pair) {
        self.0.push(pair);
    }

    /// The round whose ratio is the median (the lower middle one for an even count).
    pub fn median(&self) -> Pair {
        let mut sorted = self.0.clone();
        sorted.sort_by(|a, b| a.ratio().total_cmp(&b.ratio()));
        sorted[(sorted.len() - 1) / 2]
    }

    /// Every round's ratio, in the order measured.
    pub fn ratios(&self) -> Vec<f64> {
        self.0.iter().map(Pair::ratio).collect()
    }

    /// The highest peak memory of any round.
    pub fn peak_rss(&self) -> f64 {
        self.0.iter().map(|r| r.rss).fold(f64::NAN, f64::max)
    }

    /// `""` for one round, else the range of the ratios, for the table.
    pub fn spread(&self) -> String {
        if self.0.len() < 2 {
            return String::new();
        }
        let r = self.ratios();
        let lo = r.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = r.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!(" (median of {}: {lo:.2}-{hi:.2})", r.len())
    }
}
