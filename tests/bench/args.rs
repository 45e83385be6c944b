//! The command line: which shape, how much of it, where to put the results.

use crate::shapes::Shape;

/// The benchmark's flags (see `main.rs`).
pub struct Args {
    pub shape: Shape,
    pub entries: u64,
    pub partitions: u64,
    pub redis_url: Option<String>,
    pub csv: Option<String>,
    pub json: String,
    pub skip_s3: bool,
    /// Time every request to the in-process S3-protocol server waits (`--s3-latency 30ms`).
    pub s3_latency: std::time::Duration,
    pub rounds: usize,
    /// Trickle: simulated hours, and wall-clock milliseconds per simulated hour.
    pub sim_hours: u64,
    pub sim_hour_ms: u64,
    /// The topic's `object_span` (`1h` or `1d`).
    pub object_span: String,
    /// Compare a single server with a three-node cluster (`cluster.rs`).
    pub cluster: bool,
    /// With `--cluster`: Redis on CPU 0, this process and streamtier on CPU 1.
    pub pin: bool,
    /// Idle and simulate: archiver daemons (3 and 10 when not given).
    pub archivers: usize,
}

/// A count of 1 or more, or a panic naming the flag.
fn at_least_one(value: &str, flag: &str) -> usize {
    value
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .unwrap_or_else(|| panic!("{flag} (1 or more), not `{value}`"))
}

/// Parses the command line; panics with a clear message on a bad flag.
pub fn args() -> Args {
    let mut a = Args {
        shape: Shape::Dense,
        entries: 0,
        partitions: 0,
        redis_url: None,
        csv: None,
        json: "target/bench/results.json".into(),
        skip_s3: false,
        s3_latency: std::time::Duration::ZERO,
        rounds: 1,
        sim_hours: 24,
        sim_hour_ms: 500,
        object_span: "1h".into(),
        cluster: false,
        pin: false,
        archivers: 0,
    };
    let mut it = std::env::args().skip(1).filter(|s| s != "--bench");
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--entries" => a.entries = value().parse().expect("--entries N"),
            "--partitions" => a.partitions = value().parse().expect("--partitions P"),
            "--redis-url" => a.redis_url = Some(value()),
            "--csv" => a.csv = Some(value()),
            "--json" => a.json = value(),
            "--skip-s3" => a.skip_s3 = true,
            "--s3-latency" => {
                let v = value();
                a.s3_latency = humantime::parse_duration(&v)
                    .unwrap_or_else(|e| panic!("--s3-latency DURATION (e.g. 30ms), not `{v}`: {e}"));
            }
            "--cluster" => a.cluster = true,
            "--pin" => a.pin = true,
            "--archivers" => a.archivers = at_least_one(&value(), "--archivers K"),
            "--shape" => a.shape = Shape::parse(&value()),
            "--sim-hours" => a.sim_hours = value().parse().expect("--sim-hours H"),
            "--sim-hour-ms" => a.sim_hour_ms = value().parse().expect("--sim-hour-ms MS"),
            "--object-span" => {
                a.object_span = value();
                assert!(
                    ["1h", "1d"].contains(&a.object_span.as_str()),
                    "--object-span 1h|1d"
                );
            }
            "--rounds" => a.rounds = at_least_one(&value(), "--rounds R"),
            other => panic!("unknown argument `{other}`"),
        }
    }
    // 0 stands for "not given": each shape has its own defaults.
    if a.entries == 0 {
        a.entries = a.shape.default_entries();
    }
    if a.partitions == 0 {
        a.partitions = a.shape.default_partitions();
    }
    if a.archivers == 0 {
        a.archivers = if a.shape == Shape::Simulate { 10 } else { 3 };
    }
    assert!(
        !a.cluster || (a.shape == Shape::Dense && a.redis_url.is_none()),
        "--cluster starts its own servers and runs the dense shape"
    );
    assert!(!a.pin || a.cluster, "--pin goes with --cluster");
    assert!(
        a.shape != Shape::Sparse || a.csv.is_none(),
        "--csv gives the entries: use it with --shape dense"
    );
    a
}
