//! `streamtier compact`: merges the small objects of closed hours (or days) and prints what it
//! did per partition.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use streamtier_archiver::compact::{compact_all, CompactOptions};
use streamtier_archiver::partition::Owners;

use crate::{archiver_start, EXIT_CONFIG};
use streamtier_schemas::Report;

/// Arguments of `streamtier compact`.
#[derive(Args, Debug)]
pub struct CompactArgs {
    /// Configuration file (TOML); `STREAMTIER_SECTION__KEY` variables override it.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Only this topic.
    #[arg(long)]
    topic: Option<String>,
    /// Only hours (or days) that end at or before this time (RFC 3339).
    #[arg(long)]
    before: Option<String>,
    /// Read the archive and report what would be merged; change nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Runs one compaction; exit 0 when every partition succeeded, 2 for a bad argument or
/// configuration, 1 otherwise.
pub async fn compact(args: CompactArgs) -> ExitCode {
    let before_ms = match args
        .before
        .as_deref()
        .map(|t| (t, streamtier_schemas::parse_rfc3339_ms(t)))
    {
        None => None,
        Some((_, Some(ms))) if ms >= 0 => Some(ms as u64),
        Some((t, _)) => {
            eprintln!("error: --before `{t}` is not an RFC 3339 time such as 2026-11-01T00:00:00Z");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let (checked, ctx, shutdown) = match archiver_start(args.config.as_deref()).await {
        Ok(started) => started,
        Err(code) => return code,
    };
    let partitions = match streamtier_archiver::run::partitions(&ctx, &checked.source(), &Owners::new()).await
    {
        Ok((partitions, _skipped)) => partitions,
        Err(e) => {
            eprintln!("error: {}", Report(&e));
            return ExitCode::FAILURE;
        }
    };
    let partitions: Vec<_> = match &args.topic {
        None => partitions,
        Some(topic) => {
            let chosen: Vec<_> = partitions.into_iter().filter(|p| &p.topic == topic).collect();
            if chosen.is_empty() {
                eprintln!("error: --topic `{topic}` is not a configured or discovered topic");
                return ExitCode::from(EXIT_CONFIG);
            }
            chosen
        }
    };
    let opts = CompactOptions {
        before_ms,
        dry_run: args.dry_run,
    };
    let reports = compact_all(&ctx, partitions, &opts, &shutdown).await;
    let verb = if args.dry_run { "would merge" } else { "merged" };
    println!(
        "{:<40} {:>8} {:>10} {:>10} {:>12} {:>14} {:>14}  status",
        "partition", "spans", verb, "into", "entries", "bytes before", "bytes after"
    );
    let mut failed = false;
    for r in &reports {
        let label = format!("{} ({})", r.partition.label(), r.partition.stream);
        match &r.result {
            Ok(s) => {
                let status = match s.leftovers {
                    0 => "ok".to_string(),
                    n => format!("ok ({n} left-over objects removed)"),
                };
                println!(
                    "{label:<40} {:>8} {:>10} {:>10} {:>12} {:>14} {:>14}  {status}",
                    s.spans, s.merged, s.written, s.entries, s.bytes_before, s.bytes_after
                );
            }
            Err(e) => {
                failed = true;
                println!("{label:<40} failed: {}", Report(e));
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
