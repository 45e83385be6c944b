//! `streamtier`: unlimited retention for Redis Streams. This binary parses the command line,
//! loads the configuration, builds the clients and runs the chosen subcommand.

mod compact_cmd;
mod config;
mod read_cmd;
mod replay_cmd;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use streamtier_archiver::{Context, Metrics, Mode, SystemClock};
use streamtier_schemas::Report;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Exit code for a configuration error.
const EXIT_CONFIG: u8 = 2;

#[derive(Parser, Debug)]
#[command(name = "streamtier", version, about = "Unlimited retention for Redis Streams")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Archive partition streams into Parquet objects, then trim them to their hot window.
    Archive {
        /// Configuration file (TOML); `STREAMTIER_SECTION__KEY` variables override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// One pass and exit (for cron): archive the closed hours and what retention needs of
        /// what is present now, trim, print a summary.
        #[arg(long)]
        once: bool,
        /// With `--once`: archive everything present now, the open hour included.
        #[arg(long, requires = "once")]
        flush: bool,
    },
    /// Serve the HTTP API (replays, topics, health, metrics); resumes unfinished replays.
    Serve {
        /// Configuration file (TOML); `STREAMTIER_SECTION__KEY` variables override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Run the archiver daemon and the HTTP API in one process (the everyday way).
    Run {
        /// Configuration file (TOML); `STREAMTIER_SECTION__KEY` variables override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Replay one range from the terminal, with progress and a summary.
    Replay(replay_cmd::ReplayArgs),
    /// Restore a topic after Redis lost it: entries with their original ids, then consumer
    /// groups, pending entries and stream counters from the archive's group snapshots.
    Restore(replay_cmd::RestoreArgs),
    /// Print a partition's entries (archive and Redis as one range) as JSON lines.
    Read(read_cmd::ReadArgs),
    /// Merge the small objects of closed hours (or days) into as few objects as the size
    /// limits allow; safe while archivers and replays run.
    Compact(compact_cmd::CompactArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match cli.command {
        Command::Archive { config, once, flush } => {
            let mode = match (once, flush) {
                (false, _) => None,
                (true, false) => Some(Mode::Once),
                (true, true) => Some(Mode::Flush),
            };
            runtime.block_on(archive(config, mode))
        }
        Command::Serve { config } => runtime.block_on(serve::serve(config, false)),
        Command::Run { config } => runtime.block_on(serve::serve(config, true)),
        Command::Replay(args) => runtime.block_on(replay_cmd::replay(args)),
        Command::Restore(args) => runtime.block_on(replay_cmd::restore(args)),
        Command::Read(args) => runtime.block_on(read_cmd::read(args)),
        Command::Compact(args) => runtime.block_on(compact_cmd::compact(args)),
    };
    if std::env::var_os("STREAMTIER_REPORT_PEAK_RSS").is_some() {
        // For the benchmark: the process's peak resident memory, as the kernel counted it.
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        if let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:")) {
            eprintln!(
                "peak_rss_kib={}",
                line.trim_start_matches("VmHWM:").trim().trim_end_matches(" kB")
            );
        }
    }
    code
}

/// Loads the configuration and builds the store and Redis clients, or prints why not: exit
/// code 2 for the configuration (a local store directory that cannot be created included), 1
/// when a client cannot be built. The store comes first: it only touches the local disk.
async fn start(
    config: Option<&std::path::Path>,
) -> Result<
    (
        config::Checked,
        streamtier_tiers::hot::Hot,
        streamtier_tiers::store::Store,
    ),
    ExitCode,
> {
    let checked = config::load(config).map_err(|e| {
        eprintln!("error: configuration: {e:#}");
        ExitCode::from(EXIT_CONFIG)
    })?;
    let failed = |e: streamtier_tiers::Error| {
        eprintln!("error: {}", Report(&e));
        ExitCode::FAILURE
    };
    let local = matches!(
        checked.settings.store.parse_url(),
        Ok(streamtier_tiers::store::StoreUrl::Local(_))
    );
    let store = streamtier_tiers::store::connect(&checked.settings.store)
        .await
        .map_err(|e| {
            if e.kind() == streamtier_tiers::ErrorKind::InvalidInput {
                eprintln!("error: configuration: {}", Report(&e));
                ExitCode::from(EXIT_CONFIG)
            } else if local {
                // A directory that cannot be created is the setting's fault on this machine.
                eprintln!("error: configuration: `store.url`: {}", Report(&e));
                ExitCode::from(EXIT_CONFIG)
            } else {
                failed(e)
            }
        })?;
    let hot = streamtier_tiers::hot::connect(&checked.settings.redis)
        .await
        .map_err(failed)?;
    Ok((checked, hot, store))
}

/// The replay engine and the API state over it, as the configuration describes them.
fn api_state(
    checked: &config::Checked,
    hot: streamtier_tiers::hot::Hot,
    store: streamtier_tiers::store::Store,
    shutdown: &CancellationToken,
    archiver: Option<Arc<Metrics>>,
) -> streamtier_api::AppState {
    streamtier_api::AppState {
        replayer: streamtier_replayer::Replayer::new(hot, store, checked.replay.clone(), shutdown.clone()),
        catalog: checked.catalog(),
        targets: streamtier_replayer::plan::TargetRules {
            allowed: checked.settings.replay.allowed_targets.clone(),
        },
        token: checked.api.token.clone(),
        archiver,
        summaries: Default::default(),
    }
}

fn owner_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    format!(
        "{}-{}-{:08x}",
        host.trim(),
        std::process::id(),
        rand::random::<u32>()
    )
}

/// What the archiver's commands start from: the checked configuration, an archiver context
/// over fresh clients, and a shutdown token that SIGINT and SIGTERM cancel.
async fn archiver_start(
    config: Option<&std::path::Path>,
) -> Result<(config::Checked, Context, CancellationToken), ExitCode> {
    let (checked, hot, store) = start(config).await?;
    let ctx = Context {
        hot,
        store,
        config: Arc::new(checked.archive.clone()),
        clock: Arc::new(SystemClock),
        metrics: Arc::new(Metrics::default()),
        owner: owner_id(),
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(watch_signals(shutdown.clone()));
    Ok((checked, ctx, shutdown))
}

/// `once`: `None` for the daemon, else the mode of the single pass.
async fn archive(config: Option<PathBuf>, once: Option<Mode>) -> ExitCode {
    let (checked, ctx, shutdown) = match archiver_start(config.as_deref()).await {
        Ok(started) => started,
        Err(code) => return code,
    };
    let source = checked.source();
    if let Some(mode) = once {
        let reports = match streamtier_archiver::run_once(ctx, &source, mode, shutdown).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {}", Report(&e));
                return ExitCode::FAILURE;
            }
        };
        println!(
            "{:<40} {:>12} {:>8} {:>14} {:>12}  status",
            "partition", "entries", "objects", "bytes", "trimmed"
        );
        let mut failed = false;
        for r in &reports {
            let status = match &r.error {
                Some(e) => {
                    failed = true;
                    format!("failed: {e}")
                }
                None if r.stats.gaps > 0 => format!("ok ({} gaps recorded)", r.stats.gaps),
                None => "ok".to_string(),
            };
            println!(
                "{:<40} {:>12} {:>8} {:>14} {:>12}  {}",
                format!("{} ({})", r.partition.label(), r.partition.stream),
                r.stats.entries,
                r.stats.objects,
                r.stats.bytes,
                r.stats.trimmed,
                status
            );
        }
        if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    } else {
        info!(store = %ctx.store.describe(), "archiver running");
        match streamtier_archiver::run(ctx, source, shutdown).await {
            Ok(()) => {
                info!("archiver stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                error!("{}", Report(&e));
                ExitCode::FAILURE
            }
        }
    }
}

async fn watch_signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        warn!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    info!("shutting down: finishing the current objects");
    shutdown.cancel();
}
