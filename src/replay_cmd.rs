//! `streamtier replay`: one replay from the terminal, through the same engine and checks as the
//! API, with a progress line and a final summary.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use streamtier_replayer::plan::{dry_run, plan_request, prepare};
use streamtier_replayer::{Ids, JobState, ReplayRequest};
use tokio_util::sync::CancellationToken;

use crate::{start, watch_signals, EXIT_CONFIG};
use streamtier_schemas::Report;

/// What `streamtier replay` and `streamtier restore` both take.
#[derive(Args, Debug)]
pub struct JobArgs {
    /// Configuration file (TOML); `STREAMTIER_SECTION__KEY` variables override it.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Topic to replay (or restore).
    #[arg(long)]
    topic: String,
    /// Partitions, e.g. `0,3` or `0-3`; all when absent.
    #[arg(long)]
    partitions: Option<String>,
    /// Entries per second.
    #[arg(long)]
    rate_limit: Option<u64>,
    /// Print the plan and write nothing.
    #[arg(long)]
    dry_run: bool,
}

impl JobArgs {
    /// The request these arguments start, or the exit code of a bad `--partitions`.
    fn request(self) -> Result<(Option<PathBuf>, ReplayRequest), ExitCode> {
        let partitions = match self.partitions.as_deref().map(parse_partitions).transpose() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: --partitions: {e}");
                return Err(ExitCode::from(EXIT_CONFIG));
            }
        };
        let request = ReplayRequest {
            topic: self.topic,
            partitions,
            rate_limit: self.rate_limit,
            dry_run: self.dry_run,
            ..ReplayRequest::default()
        };
        Ok((self.config, request))
    }
}

/// `streamtier replay` arguments.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    #[command(flatten)]
    job: JobArgs,
    /// Inclusive start: RFC 3339 time or entry id.
    #[arg(long)]
    from: Option<String>,
    /// Exclusive end: RFC 3339 time or entry id.
    #[arg(long)]
    to: Option<String>,
    /// Target key template with {topic}, {partition}, {stream}.
    #[arg(long)]
    target: Option<String>,
    /// `new` (fresh ids) or `original`.
    #[arg(long, default_value = "new")]
    ids: String,
    /// With `--ids new`: a field holding `<source stream>/<original id>`.
    #[arg(long)]
    origin_field: Option<String>,
    /// Only the entries this filter takes, e.g. `fields.customer = '42' and amount > 100`.
    #[arg(long)]
    filter: Option<String>,
    /// Wait while the target holds more entries its consumer groups have not been delivered
    /// (0: no bound); `replay.max_target_backlog` when absent.
    #[arg(long)]
    max_target_backlog: Option<u64>,
}

/// `streamtier restore`: a topic's partitions back into their own stream keys, with their
/// consumer groups and counters as the archive's group snapshots recorded them.
#[derive(Args, Debug)]
pub struct RestoreArgs {
    #[command(flatten)]
    job: JobArgs,
    /// Restore as of this RFC 3339 time or entry id (the latest group snapshot at or before
    /// it); the latest when absent.
    #[arg(long)]
    at: Option<String>,
    /// Target key template with {topic}, {partition}, {stream}; the topic's own stream keys
    /// (`{stream}`) when absent, which `replay.allowed_targets` must then list.
    #[arg(long)]
    target: Option<String>,
}

/// Runs one restore; the exit codes of [`replay`].
pub async fn restore(args: RestoreArgs) -> ExitCode {
    let (config, request) = match args.job.request() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let request = ReplayRequest {
        target: Some(args.target.unwrap_or_else(|| "{stream}".into())),
        ids: Ids::Original,
        restore_groups: true,
        at: args.at,
        ..request
    };
    run_request(config.as_deref(), request).await
}

fn parse_partitions(text: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("`{part}` is not a partition or a range like 0-3");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                if a > b {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    Ok(out)
}

/// Runs one replay; exit 0 when it succeeded, 1 when it failed or was cancelled, 2 for a bad
/// configuration or request.
pub async fn replay(args: ReplayArgs) -> ExitCode {
    let ids = match args.ids.as_str() {
        "new" => Ids::New,
        "original" => Ids::Original,
        other => {
            eprintln!("error: --ids: `{other}` is neither `new` nor `original`");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let (config, request) = match args.job.request() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let request = ReplayRequest {
        from: args.from,
        to: args.to,
        target: args.target,
        ids,
        origin_field: args.origin_field,
        max_target_backlog: args.max_target_backlog,
        filter: args.filter,
        ..request
    };
    run_request(config.as_deref(), request).await
}

/// Plans, checks and runs `request` in this process; the exit codes of [`replay`].
async fn run_request(config: Option<&std::path::Path>, request: ReplayRequest) -> ExitCode {
    let (checked, hot, store) = match start(config).await {
        Ok(started) => started,
        Err(code) => return code,
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(watch_signals(shutdown.clone()));
    let replayer = streamtier_replayer::Replayer::new(
        hot.clone(),
        store.clone(),
        checked.replay.clone(),
        shutdown.clone(),
    );
    let rules = streamtier_replayer::plan::TargetRules {
        allowed: checked.settings.replay.allowed_targets.clone(),
    };
    let topics = match checked.catalog().topics(&hot, &store).await {
        Ok(topics) => topics,
        Err(e) => {
            eprintln!("error: {}", Report(&e));
            return ExitCode::FAILURE;
        }
    };
    let planned = plan_request(&hot, replayer.limits(), &rules, &topics, &request).await;
    let plan = match planned {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {}", Report(&e));
            return exit_for(&e);
        }
    };
    // Refusals (a target in use or ahead) are bad requests too; Redis failing is not.
    let plan = match prepare(&hot, &store, plan).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {}", Report(&e));
            return exit_for(&e);
        }
    };
    let planned = match dry_run(&hot, &store, &plan).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {}", Report(&e));
            return ExitCode::FAILURE;
        }
    };
    // A restore writes what its snapshot calls for, not every entry it reads.
    let total: u64 = planned
        .iter()
        .map(|p| p.restore_entries.unwrap_or(p.archived_entries + p.redis_entries))
        .sum();
    if request.dry_run {
        println!(
            "{:<10} {:<32} {:<32} {:>8} {:>12} {:>14} {:>12}",
            "partition", "source", "target", "objects", "archived", "bytes", "in redis"
        );
        for p in &planned {
            println!(
                "{:<10} {:<32} {:<32} {:>8} {:>12} {:>14} {:>12}",
                p.partition, p.stream, p.target, p.objects, p.archived_entries, p.bytes, p.redis_entries
            );
            if let Some(n) = p.restore_entries {
                let older = p.restore_pending_entries.unwrap_or(0);
                println!(
                    "{:<10} restore writes {n} entries ({older} of them older than the snapshot's window, pending in a group)",
                    ""
                );
            }
            if let Some(n) = p.matching_entries {
                println!(
                    "{:<10} {n} of them match the filter (counted by reading the range)",
                    ""
                );
            }
        }
        return ExitCode::SUCCESS;
    }
    let record = match replayer.create(&plan).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {}", Report(&e));
            return ExitCode::FAILURE;
        }
    };
    eprintln!("replay job {} started: about {total} entries", record.id);
    let started = Instant::now();
    let last_print = Arc::new(std::sync::Mutex::new(Instant::now()));
    let progress = move |r: &streamtier_replayer::JobRecord| {
        let Ok(mut last) = last_print.lock() else { return };
        if last.elapsed().as_millis() < 250 {
            return;
        }
        *last = Instant::now();
        let rate = r.entries_replayed as f64 / started.elapsed().as_secs_f64().max(1e-3);
        let pct = if total > 0 {
            100.0 * r.entries_replayed as f64 / total as f64
        } else {
            100.0
        };
        eprint!(
            "\r{:>12} / ~{total} entries ({pct:>5.1} %), {rate:>10.0} entries/s ",
            r.entries_replayed
        );
        let _ = std::io::stderr().flush();
    };
    let done = match replayer.run(record, progress).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("\nerror: {}", Report(&e));
            return ExitCode::FAILURE;
        }
    };
    let secs = started.elapsed().as_secs_f64();
    eprintln!();
    println!("job {}: {:?}", done.id, done.state);
    println!(
        "{:<10} {:<32} {:>12}  last source id",
        "partition", "target", "entries"
    );
    for p in &done.partitions {
        println!(
            "{:<10} {:<32} {:>12}  {}",
            p.partition,
            p.target,
            p.entries_replayed,
            p.last_source_id.as_deref().unwrap_or("-")
        );
        if let Some(r) = &p.restore {
            println!(
                "{:<10} groups restored: {}, pending entries restored: {}, missing: {}, not recorded: {}",
                "",
                r.groups_restored
                    .map_or_else(|| "-".to_string(), |n| n.to_string()),
                r.pending_restored,
                r.pending_missing,
                r.pending_not_recorded
            );
            if let Some(note) = &r.note {
                println!("{:<10} note: {note}", "");
            }
        }
    }
    println!(
        "{} entries in {secs:.2} s ({:.0} entries/s); {} objects, {} bytes read ({} of them footers)",
        done.entries_replayed,
        done.entries_replayed as f64 / secs.max(1e-3),
        done.objects_read,
        done.bytes_read,
        done.footer_bytes_read
    );
    match done.state {
        JobState::Succeeded => ExitCode::SUCCESS,
        JobState::Running | JobState::Queued | JobState::Paused => {
            println!("interrupted: run the same job again with `streamtier serve` to resume it");
            ExitCode::FAILURE
        }
        _ => {
            if let Some(e) = &done.error {
                eprintln!("error: {e}");
            }
            ExitCode::FAILURE
        }
    }
}

/// A request the configuration or the data cannot honour is a usage error (2); Redis or the
/// store failing is a failure (1).
fn exit_for(e: &streamtier_replayer::Error) -> ExitCode {
    if matches!(e, streamtier_replayer::Error::Tier { .. }) {
        ExitCode::FAILURE
    } else {
        ExitCode::from(EXIT_CONFIG)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_partitions;

    #[test]
    fn partition_lists_and_ranges() {
        assert_eq!(parse_partitions("0,3").unwrap(), vec![0, 3]);
        assert_eq!(parse_partitions("0-3").unwrap(), vec![0, 1, 2, 3]);
        assert!(parse_partitions("3-0").is_err());
        assert!(parse_partitions("x").is_err());
    }
}
