//! The commands of `ml-connector`: argument parsing ([`Cli`]) and what each command does
//! ([`run`]).
//!
//! Exit codes: [`EXIT_OK`] (0) success; [`EXIT_FAILURES`] (1) a cycle, check or verification
//! found failures, PeopleSoft or the destination is not usable, or the credentials are
//! latched; [`EXIT_USAGE`] (2) bad configuration or usage.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use sync_core::engine::VerifyOptions;
use sync_core::schedule::Runner;
use sync_core::{SystemClock, Window};

use crate::auth_latch::LatchError;
use crate::build::{build_with_options, Built};
use crate::{config, ops};

mod output;
mod progress;

pub use progress::ProgressOutput;

/// Success.
pub const EXIT_OK: u8 = 0;
/// A cycle, check or verification had failures, a system is not usable, or the PeopleSoft
/// credentials are latched after a rejected login.
pub const EXIT_FAILURES: u8 = 1;
/// Bad configuration or usage.
pub const EXIT_USAGE: u8 = 2;

const AFTER_HELP: &str = "\
Exit codes: 0 success, 1 failures (a window failed, a check or verification found a problem, \
PeopleSoft or the destination is not usable, or the credentials are latched), 2 bad \
configuration or usage.

Logs: RUST_LOG=warn,ml_connector=info shows the run -> stream -> window spans on stderr.";

/// Incremental, resumable sync of PeopleSoft finance and HR data into Databricks (or SQLite),
/// described by one `pipeline.toml`.
#[derive(Debug, Parser)]
#[command(name = "ml-connector", version, about, after_help = AFTER_HELP)]
#[non_exhaustive]
pub struct Cli {
    /// The pipeline file (see pipeline.example.toml).
    #[arg(
        short,
        long,
        global = true,
        env = "ML_CONNECTOR_CONFIG",
        default_value = "pipeline.toml",
        value_name = "FILE"
    )]
    pub config: PathBuf,
    /// Progress display: `auto` (a bar when stderr is a terminal, plain lines otherwise),
    /// `bar` or `plain`.
    #[arg(long, global = true, value_enum, default_value_t = ProgressOutput::Auto)]
    pub progress: ProgressOutput,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// A command.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum Command {
    /// Prove PeopleSoft answers (host, TLS, node, credentials, each stream's query) and the
    /// destination is usable; report the row caps learned so far. Writes nothing.
    Check,
    /// Run incremental cycles: on `pipeline.schedule` until SIGINT/SIGTERM, or once. Each
    /// cycle runs the forward streams, then the `[[writeback]]` streams.
    Run {
        /// One cycle, then exit (for cron, a container job or a Databricks job).
        #[arg(long)]
        once: bool,
        /// Preview the write-back: read each governed table and PeopleSoft's current records
        /// and print the plan (creates, updates, conflicts, rejections, skipped echoes). Sends
        /// no POST or PUT, runs no forward stream, keeps no checkpoint or baseline; one cycle.
        #[arg(long)]
        dry_run: bool,
    },
    /// Committed coverage, failed and stuck windows, skips, row caps and the last runs per
    /// stream. Sends nothing to PeopleSoft.
    Status,
    /// Retry every failed window now, stuck ones included.
    Replay,
    /// Reload a cursor range (the committed state is kept; rows are upserted again).
    Backfill {
        /// Start of the range (RFC 3339, e.g. 2026-01-01T00:00:00Z).
        #[arg(long, value_parser = parse_time, value_name = "RFC3339")]
        from: DateTime<Utc>,
        /// End of the range, exclusive (RFC 3339).
        #[arg(long, value_parser = parse_time, value_name = "RFC3339")]
        to: DateTime<Utc>,
        /// Only these streams (repeat the flag); all streams when absent.
        #[command(flatten)]
        streams: StreamFilter,
    },
    /// Compare source and target per window by key and row hash: missing, changed and
    /// deleted keys. Exits 1 on any difference.
    Verify {
        /// Re-queue the differing windows for the next cycle and apply confirmed deletes by
        /// each stream's `deletes` policy.
        #[arg(long)]
        requeue: bool,
        /// Only these streams (repeat the flag); all streams when absent.
        #[command(flatten)]
        streams: StreamFilter,
        /// Only windows from this time (RFC 3339; needs --to).
        #[arg(long, value_parser = parse_time, value_name = "RFC3339", requires = "to")]
        from: Option<DateTime<Utc>>,
        /// Only windows before this time (RFC 3339; needs --from).
        #[arg(long, value_parser = parse_time, value_name = "RFC3339", requires = "from")]
        to: Option<DateTime<Utc>>,
        /// Check at most N windows per stream, spread over the range.
        #[arg(long, value_name = "N")]
        sample: Option<usize>,
    },
    /// Clear the PeopleSoft credential latch after fixing the credentials (a rejected login
    /// latches them so no run sends them again and locks the OPRID).
    ResetAuth,
}

/// `--stream NAME`, repeatable.
#[derive(Debug, Clone, Default, Args)]
#[non_exhaustive]
pub struct StreamFilter {
    /// A stream name from the pipeline file.
    #[arg(long = "stream", value_name = "NAME")]
    pub streams: Vec<String>,
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("`{s}` is not an RFC 3339 time like 2026-01-01T00:00:00Z ({e})"))
}

/// Sets up logging to stderr from `RUST_LOG` (default `warn`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

type CmdResult = Result<bool, Box<dyn std::error::Error + Send + Sync>>;

/// Runs one command to completion and returns the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    let config = match config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Command::ResetAuth = cli.command {
        return match ops::reset_auth(&config) {
            Ok(true) => {
                println!("credential latch cleared: the next run will log in to PeopleSoft again");
                ExitCode::from(EXIT_OK)
            }
            Ok(false) => {
                println!("no credential latch was set");
                ExitCode::from(EXIT_OK)
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(EXIT_FAILURES)
            }
        };
    }
    let status_only = matches!(cli.command, Command::Status);
    let mut latched_before = false;
    if status_only {
        if let Ok(Some(l)) = ops::latch_file(&config).load() {
            latched_before = true;
            println!(
                "PeopleSoft credentials LATCHED: {} was rejected ({}); fix them, then run `reset-auth`",
                l.principal, l.rejection
            );
        }
    }
    // Refuses at once while the same credentials are latched from an earlier run (`status`
    // sends nothing to PeopleSoft, so it only reports the latch).
    let opened = if status_only {
        crate::build::peoplesoft_client(&config)
    } else {
        ops::open_peoplesoft(&config)
    };
    let peoplesoft = match opened {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(if e.is::<LatchError>() {
                EXIT_FAILURES
            } else {
                EXIT_USAGE
            });
        }
    };
    // Fail fast, before any table is created or any state is written.
    if matches!(
        cli.command,
        Command::Run { .. } | Command::Replay | Command::Backfill { .. } | Command::Verify { .. }
    ) {
        if let Err(e) = ops::preflight(&config, &peoplesoft).await {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_FAILURES);
        }
    }
    let dry_run = matches!(cli.command, Command::Run { dry_run: true, .. });
    if dry_run && config.writeback.is_empty() {
        eprintln!("error: `run --dry-run` previews the write-back, and the file has no `[[writeback]]` stream");
        return ExitCode::from(EXIT_USAGE);
    }
    let progress = progress::Progress::new(cli.progress);
    let built = match build_with_options(&config, peoplesoft, dry_run, progress.callback()).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let result = match cli.command {
        Command::Check => check(&built).await,
        Command::Run { dry_run: true, .. } => writeback_cycle(&built).await,
        Command::Run { once: true, .. } => run_once(&built).await,
        Command::Run { once: false, .. } => run_scheduled(&built, &config).await,
        Command::Status => output::status(&built).await,
        Command::Replay => replay(&built).await,
        Command::Backfill { from, to, streams } => {
            if from >= to {
                Err("--from must be before --to".into())
            } else {
                output::report(
                    built
                        .pipeline
                        .backfill(&streams.streams, Window::new(from, to))
                        .await,
                )
            }
        }
        Command::Verify {
            requeue,
            streams,
            from,
            to,
            sample,
        } => verify(&built, requeue, streams, from.zip(to), sample).await,
        Command::ResetAuth => unreachable!("handled before any client is built"),
    };
    progress.finish();
    let latched = built.peoplesoft.auth_latch().get().cloned();
    if let Some(r) = &latched {
        eprintln!(
            "error: {r}; no further request is sent with these credentials (repeated failed logins lock the OPRID). Fix them, then run `reset-auth`."
        );
    }
    match result {
        Ok(true) if latched.is_none() && !latched_before => ExitCode::from(EXIT_OK),
        Ok(_) => ExitCode::from(EXIT_FAILURES),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_FAILURES)
        }
    }
}

async fn check(b: &Built) -> CmdResult {
    use peoplesoft_client::{PingCheck, QueryOwner};
    let mut ok = true;
    if let Some(q) = b.definitions.first().map(|d| d.query.clone()) {
        let r = b
            .peoplesoft
            .ping(&PingCheck::QueryPrompts(QueryOwner::Public, q))
            .await;
        println!("PeopleSoft: {r}");
        ok &= r.is_ok();
        if r.is_ok() {
            // Every configured query, over an empty window: proves access to each of them.
            for (stream, result) in ops::check_queries(&b.peoplesoft, &b.definitions).await {
                match result {
                    Ok(_) => println!("  stream {stream}: query ok"),
                    Err(e) => {
                        println!("  stream {stream}: FAILED: {e}");
                        ok = false;
                    }
                }
            }
        }
    }
    if let Some(w) = &b.writeback {
        // Each CIRT service answers a Get (a record given as `ci.check_key`, or a key no
        // record has, which must answer "not found"). Nothing is written.
        for s in &w.streams {
            let given = !s.check_key.is_empty();
            match w.sink.check_get(&s.name, &s.check_key).await {
                Ok(true) => println!("  write-back {}: CIRT {} Get ok (record found)", s.name, s.target.ci),
                Ok(false) if given => {
                    println!("  write-back {}: FAILED: CIRT {} Get answered \"not found\" for `ci.check_key`; check the service name, version and key order against the WADL", s.name, s.target.ci);
                    ok = false;
                }
                Ok(false) => println!("  write-back {}: CIRT {} Get ok (answers \"not found\" for a probe key; set `ci.check_key` to an existing record for a stronger check)", s.name, s.target.ci),
                Err(e) => {
                    println!("  write-back {}: FAILED: {e}", s.name);
                    ok = false;
                }
            }
        }
    }
    if let Some(d) = &b.databricks {
        let r = d.ping().await;
        println!("Databricks: {r}");
        ok &= r.is_ok();
        let staged = b
            .databricks_sink
            .as_ref()
            .and_then(|s| s.bulk_options().map(|o| (s, o.volume().full_name())));
        if let (true, Some((sink, volume))) = (r.is_ok(), staged) {
            // Bulk loads: the staging volume answers, and a probe file can be written.
            match sink.check_staging().await {
                Ok(found) => println!("  volume {volume}: {found}"),
                Err(e) => {
                    println!("  volume {volume}: FAILED: {e}");
                    ok = false;
                }
            }
        }
    }
    // What the engine learned about the query profile's row cap (kept in state).
    if let Ok(streams) = b.pipeline.status().await {
        for s in streams {
            match (s.row_cap.detected, s.row_cap.largest_page) {
                (Some(cap), _) => println!(
                    "  stream {}: row cap {cap} detected (query profile Max Rows Fetched)",
                    s.stream
                ),
                (None, n) if n > 0 => println!(
                    "  stream {}: no row cap below max_rows seen (largest page {n} rows)",
                    s.stream
                ),
                _ => {}
            }
        }
    }
    Ok(ok)
}

async fn replay(b: &Built) -> CmdResult {
    let forward = output::report(b.pipeline.replay().await)?;
    let Some(w) = &b.writeback else {
        return Ok(forward);
    };
    let back = output::report(w.pipeline.replay().await)?;
    Ok(forward & back & output::writeback_records(w, None))
}

async fn run_cycle_once(b: &Built) -> CmdResult {
    let forward = output::report(b.pipeline.run_cycle().await)?;
    Ok(forward & writeback_cycle(b).await?)
}

async fn run_once(b: &Built) -> CmdResult {
    let stop = b.stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        eprintln!(
            "stop requested: finishing the batch in flight, nothing uncommitted is checkpointed"
        );
        stop.stop();
    });
    run_cycle_once(b).await
}

/// One cycle of the write-back streams (after the forward ones), with the per-record plan or
/// results; `Ok(true)` when clean (conflicts and held records are reported, not failures;
/// rejected and failed records are).
async fn writeback_cycle(b: &Built) -> CmdResult {
    let Some(w) = &b.writeback else {
        return Ok(true);
    };
    if b.peoplesoft.auth_latch().get().is_some() {
        // The forward streams' credentials were rejected: the same account writes back.
        println!("write-back not run: the PeopleSoft credentials are latched");
        return Ok(false);
    }
    let report = w.pipeline.run_cycle().await;
    let run_id = report.as_ref().ok().map(|r| r.run_id.clone());
    let clean = output::report(report)?;
    Ok(clean & output::writeback_records(w, run_id.as_deref()))
}

async fn run_scheduled(b: &Built, config: &config::Config) -> CmdResult {
    let Some(schedule) = config.schedule() else {
        return Err("`pipeline.schedule` is not set; use `run --once` from an external scheduler, or add a schedule".into());
    };
    let stop = b.stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        eprintln!("stop requested: the running cycle stops after its batch in flight");
        stop.stop();
    });
    println!("running on schedule `{schedule}` until SIGINT/SIGTERM");
    let runner = Runner::new(schedule, Arc::new(SystemClock));
    let clean = std::sync::atomic::AtomicBool::new(true);
    let latched = |b: &Built| {
        b.peoplesoft.auth_latch().get().map(|r| {
            eprintln!("not calling PeopleSoft any more: {r}; stopping the schedule (fix the credentials, then `reset-auth`)");
            b.stop.stop();
        })
    };
    runner
        .run(&b.stop, || async {
            if latched(b).is_some() {
                clean.store(false, std::sync::atomic::Ordering::SeqCst);
                return;
            }
            b.peoplesoft.begin_cycle();
            let ok = match run_cycle_once(b).await {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("cycle failed: {e}");
                    false
                }
            };
            clean.fetch_and(ok, std::sync::atomic::Ordering::SeqCst);
            latched(b);
        })
        .await;
    Ok(clean.into_inner())
}

async fn verify(
    b: &Built,
    requeue: bool,
    streams: StreamFilter,
    range: Option<(DateTime<Utc>, DateTime<Utc>)>,
    sample: Option<usize>,
) -> CmdResult {
    let range = match range {
        Some((f, t)) if f >= t => return Err("verify needs --from before --to".into()),
        r => r.map(|(f, t)| Window::new(f, t)),
    };
    let opts = VerifyOptions::new()
        .requeue(requeue)
        .apply_deletes(requeue)
        .streams(streams.streams)
        .range(range)
        .sample(sample);
    output::verification(&b.pipeline.verify_with(&opts).await?)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn backfill_takes_times_and_repeated_streams() {
        let cli = Cli::try_parse_from([
            "ml-connector",
            "--config",
            "p.toml",
            "backfill",
            "--from",
            "2026-01-01T00:00:00Z",
            "--to",
            "2026-02-01T00:00:00+01:00",
            "--stream",
            "vendors",
            "--stream",
            "journal_lines",
        ])
        .unwrap();
        assert_eq!(cli.config, PathBuf::from("p.toml"));
        let Command::Backfill { from, to, streams } = cli.command else {
            panic!("{:?}", cli.command)
        };
        assert_eq!(from.to_rfc3339(), "2026-01-01T00:00:00+00:00");
        assert_eq!(to.to_rfc3339(), "2026-01-31T23:00:00+00:00");
        assert_eq!(streams.streams, ["vendors", "journal_lines"]);
    }

    #[test]
    fn usage_errors_name_the_problem() {
        let e = Cli::try_parse_from(["ml-connector", "backfill", "--from", "yesterday"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("`yesterday` is not an RFC 3339 time"), "{e}");
        let e = Cli::try_parse_from(["ml-connector", "verify", "--from", "2026-01-01T00:00:00Z"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--to"), "{e}");
        assert!(Cli::try_parse_from(["ml-connector", "sync"]).is_err());
    }
}
