//! `streamtier read`: a partition's entries, archived and in Redis, as JSON lines on stdout
//! (the same lines as the entries route), without writing anywhere.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use streamtier_replayer::filter::Filter;
use streamtier_replayer::read::read_range;
use streamtier_replayer::source::PartitionSource;
use streamtier_schemas::json::entry_json_line;
use streamtier_schemas::Report;

use crate::{start, EXIT_CONFIG};

/// `streamtier read` arguments.
#[derive(Args, Debug)]
pub struct ReadArgs {
    /// Configuration file (TOML); `STREAMTIER_SECTION__KEY` variables override it.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Topic to read.
    #[arg(long)]
    topic: String,
    /// Partition to read.
    #[arg(long)]
    partition: u32,
    /// Inclusive start: RFC 3339 time or entry id.
    #[arg(long)]
    from: Option<String>,
    /// Exclusive start (instead of `--from`): an entry id, or a time.
    #[arg(long)]
    after: Option<String>,
    /// Exclusive end: RFC 3339 time or entry id.
    #[arg(long)]
    to: Option<String>,
    /// Most entries; all of the range when absent.
    #[arg(long)]
    limit: Option<u64>,
    /// Only the entries this filter takes, e.g. `fields.customer = '42' and amount > 100`.
    #[arg(long)]
    filter: Option<String>,
}

/// Prints the range; exit 0 when it was read whole (or stdout closed early), 2 for a bad
/// argument or an unknown topic or partition, 1 when Redis or the store failed.
pub async fn read(args: ReadArgs) -> ExitCode {
    let range = match read_range(args.from.as_deref(), args.after.as_deref(), args.to.as_deref()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {}", Report(&e));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let filter = match args.filter.as_deref().map(Filter::parse).transpose() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {}", Report(&e));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let (checked, hot, store) = match start(args.config.as_deref()).await {
        Ok(started) => started,
        Err(code) => return code,
    };
    let parts = match checked.catalog().topic(&hot, &store, &args.topic).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}", Report(&e));
            return ExitCode::FAILURE;
        }
    };
    let Some(stream) = parts
        .and_then(|parts| parts.into_iter().find(|p| p.partition == args.partition))
        .map(|p| p.stream)
    else {
        eprintln!(
            "error: --topic/--partition: topic `{}` has no partition {}",
            args.topic, args.partition
        );
        return ExitCode::from(EXIT_CONFIG);
    };
    let mut source = PartitionSource::new(hot, store, &args.topic, args.partition, &stream, range, None)
        .skipping_for(filter.clone());
    let mut left = args.limit.unwrap_or(u64::MAX);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut line = Vec::new();
    while left > 0 {
        let batch = match source.next_batch().await {
            Ok(Some(b)) => b,
            Ok(None) => break,
            Err(e) => {
                let _ = out.flush();
                eprintln!("error: {}", Report(&e));
                return ExitCode::FAILURE;
            }
        };
        let taken = batch
            .iter()
            .filter(|e| filter.as_ref().is_none_or(|f| f.matches(e)));
        for e in taken.take(usize::try_from(left).unwrap_or(usize::MAX)) {
            line.clear();
            entry_json_line(e, &mut line);
            if out.write_all(&line).is_err() {
                // The reader went away (`| head`): what it wanted was written.
                return ExitCode::SUCCESS;
            }
            left -= 1;
        }
    }
    if out.flush().is_err() {
        return ExitCode::SUCCESS;
    }
    ExitCode::SUCCESS
}
