//! `cargo run --release --example sync -- --config pipeline.toml <command>`
//!
//! The production entry point: a `pipeline.toml` (see `pipeline.example.toml`) describes the
//! PeopleSoft connection (secrets only by environment-variable reference), the destination
//! (Databricks from `DATABRICKS_*` / a profile, or a local SQLite file), the streams, the
//! schedule and where state and audit live.
//!
//! Commands:
//! - `check`                      ping PeopleSoft (host, node, credentials) and Databricks
//! - `run --once`                 one incremental cycle, then exit (for external schedulers)
//! - `run`                        cycles on the schedule until SIGINT/SIGTERM (graceful stop)
//! - `status`                     committed coverage, failed/stuck windows, last runs
//! - `replay`                     retry every failed window now (stuck ones included)
//! - `backfill --from T --to T [--stream NAME]...`   reload a cursor range
//! - `verify [--requeue] [--stream NAME]... [--from T --to T] [--sample N]`
//!   source vs target by key and row hash per window (missing, changed, deleted keys);
//!   `--requeue` re-queues windows to reload and applies confirmed deletes by each stream's
//!   policy
//! - `reset-auth`                 clear the credential latch after fixing the credentials
//!
//! Before `run`, `replay`, `backfill` and `verify` touch anything, one request proves that
//! PeopleSoft answers (host, TLS, node, credentials) and the destination is usable; a problem
//! is one line and a non-zero exit, with nothing created or recorded. A 401/403 latches the
//! credentials (recorded in the state directory, without the secret): later runs refuse to
//! send them again until they change or `reset-auth` clears the latch.
//!
//! Exit codes: 0 success, 1 a cycle or check had failures (or PeopleSoft / the destination is
//! not usable, or the credentials are latched), 2 bad configuration or usage.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ml_connector::build::{build_with, Built};
use ml_connector::{config, ops};
use peoplesoft_client::{PingCheck, QueryOwner};
use sync_core::audit::Outcome;
use sync_core::engine::{CycleReport, Progress, VerifyOptions};
use sync_core::schedule::Runner;
use sync_core::{SystemClock, Window};

const USAGE: &str = "usage: sync --config <pipeline.toml> <check | run [--once] | status | replay | backfill --from <RFC3339> --to <RFC3339> [--stream NAME]... | verify [--requeue] [--stream NAME]... [--from <RFC3339> --to <RFC3339>] [--sample N] | reset-auth>";

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = flag(&args, "--config") else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest: Vec<&str> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| *a != "--config" && (*i == 0 || args[i - 1] != "--config"))
        .map(|(_, a)| a.as_str())
        .collect();
    let Some(command) = rest.first().copied() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let config = match config::load(&PathBuf::from(path)) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(2);
        }
    };
    if command == "reset-auth" {
        return match ops::reset_auth(&config) {
            Ok(true) => {
                println!("credential latch cleared: the next run will log in to PeopleSoft again");
                ExitCode::SUCCESS
            }
            Ok(false) => {
                println!("no credential latch was set");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        };
    }
    if !["check", "run", "status", "replay", "backfill", "verify"].contains(&command) {
        eprintln!("error: unknown command `{command}`\n{USAGE}");
        return ExitCode::from(1);
    }
    let mut latched_before = false;
    if command == "status" {
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
    let opened = if command == "status" {
        ml_connector::build::peoplesoft_client(&config)
    } else {
        ops::open_peoplesoft(&config)
    };
    let peoplesoft = match opened {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(if e.is::<ml_connector::auth_latch::LatchError>() {
                1
            } else {
                2
            });
        }
    };
    // Fail fast, before any table is created or any state is written.
    if ["run", "replay", "backfill", "verify"].contains(&command) {
        if let Err(e) = ops::preflight(&config, &peoplesoft).await {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    }
    let built = match build_with(&config, peoplesoft, print_progress).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        "check" => check(&built).await,
        "run" if rest.contains(&"--once") => run_once(&built).await,
        "run" => run_scheduled(&built, &config).await,
        "status" => status(&built).await,
        "replay" => report(built.pipeline.replay().await),
        "backfill" => backfill(&built, &args).await,
        "verify" => verify(&built, &args, rest.contains(&"--requeue")).await,
        other => Err(format!("unknown command `{other}`\n{USAGE}").into()),
    };
    let latched = built.peoplesoft.auth_latch().get().cloned();
    if let Some(r) = &latched {
        eprintln!(
            "error: {r}; no further request is sent with these credentials (repeated failed logins lock the OPRID). Fix them, then run `reset-auth`."
        );
    }
    match result {
        Ok(true) if latched.is_none() && !latched_before => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

type CmdResult = Result<bool, Box<dyn std::error::Error + Send + Sync>>;

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// Every value given after `--stream`.
fn stream_args(args: &[String]) -> Vec<String> {
    args.iter()
        .enumerate()
        .filter(|(i, _)| *i > 0 && args[i - 1] == "--stream")
        .map(|(_, s)| s.clone())
        .collect()
}

fn print_progress(p: &Progress) {
    match p {
        Progress::WindowCommitted {
            stream,
            window,
            rows_read,
            rows_written,
        } => {
            println!("{stream}: committed {window} read={rows_read} written={rows_written}")
        }
        Progress::WindowFailed {
            stream,
            window,
            error,
        } => println!("{stream}: FAILED {window}: {error}"),
        _ => {}
    }
}

fn report(r: Result<CycleReport, sync_core::Error>) -> CmdResult {
    let r = r?;
    println!("run {} started {}", r.run_id, r.started_at.to_rfc3339());
    println!(
        "{:<24} {:>8} {:>8} {:>10} {:>10} {:>9} {:>9}",
        "stream", "windows", "failed", "read", "written", "rejected", "ms"
    );
    for s in &r.streams {
        println!(
            "{:<24} {:>8} {:>8} {:>10} {:>10} {:>9} {:>9}{}",
            s.stream,
            s.windows_committed,
            s.windows_failed,
            s.rows_read,
            s.rows_written,
            s.rows_rejected,
            s.elapsed_ms,
            s.error
                .as_deref()
                .map(|e| format!("  {e}"))
                .unwrap_or_default()
        );
        if let Some(why) = &s.skipped {
            println!("  skipped (not attempted, nothing recorded): {why}");
        }
        if let Some(cap) = s.row_cap_detected {
            println!("  row cap detected: PeopleSoft returns at most {cap} rows per page (query profile); pages of that size are now split");
        }
        if s.null_cursor_rows > 0 {
            println!("  {} row(s) read with a NULL cursor", s.null_cursor_rows);
        }
        if s.ambiguous_duplicates > 0 {
            println!(
                "  {} ambiguous duplicate(s) kept in the rejects",
                s.ambiguous_duplicates
            );
        }
        if s.rows_deleted > 0 {
            println!("  {} row(s) deleted by reconciliation", s.rows_deleted);
        }
        for w in &s.stuck {
            println!(
                "  STUCK {} after {} attempts: {}",
                w.window, w.attempts, w.last_error
            );
        }
    }
    Ok(r.is_clean())
}

async fn check(b: &Built) -> CmdResult {
    let mut ok = true;
    let query = b.definitions.first().map(|d| d.query.clone());
    if let Some(q) = query {
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
    if let Some(d) = &b.databricks {
        let r = d.ping().await;
        println!("Databricks: {r}");
        ok &= r.is_ok();
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

async fn run_once(b: &Built) -> CmdResult {
    let stop = b.stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        eprintln!(
            "stop requested: finishing the batch in flight, nothing uncommitted is checkpointed"
        );
        stop.stop();
    });
    report(b.pipeline.run_cycle().await)
}

async fn run_scheduled(b: &Built, config: &config::Config) -> CmdResult {
    let Some(schedule) = config.schedule else {
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
    runner
        .run(&b.stop, || async {
            if let Some(r) = b.peoplesoft.auth_latch().get() {
                eprintln!("not calling PeopleSoft any more: {r}; stopping the schedule (fix the credentials, then `reset-auth`)");
                clean.store(false, std::sync::atomic::Ordering::SeqCst);
                b.stop.stop();
                return;
            }
            b.peoplesoft.begin_cycle();
            let ok = match report(b.pipeline.run_cycle().await) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("cycle failed: {e}");
                    false
                }
            };
            clean.fetch_and(ok, std::sync::atomic::Ordering::SeqCst);
            if let Some(r) = b.peoplesoft.auth_latch().get() {
                eprintln!("not calling PeopleSoft any more: {r}; stopping the schedule (fix the credentials, then `reset-auth`)");
                b.stop.stop();
            }
        })
        .await;
    Ok(clean.into_inner())
}

async fn status(b: &Built) -> CmdResult {
    let streams = b.pipeline.status().await?;
    let entries = b.audit.entries(b.pipeline.name(), None).await?;
    for s in &streams {
        println!("{}", s.stream);
        match s.committed.as_slice() {
            [] => println!("  committed: nothing yet"),
            intervals => {
                for w in intervals {
                    println!("  committed: {w}");
                }
            }
        }
        if let Some(at) = s.last_commit_at {
            println!("  last commit: {}", at.to_rfc3339());
        }
        if let Some(cap) = s.row_cap.detected {
            println!("  row cap detected: {cap} rows per page (the query profile's Max Rows Fetched; set `profile_max_rows` to declare it)");
        }
        if let Some(n) = &s.null_cursor_rows {
            println!(
                "  NULL-cursor rows: {} (counted {})",
                n.rows,
                n.counted_at.to_rfc3339()
            );
        }
        if let Some(at) = s.last_reconciled_at {
            println!(
                "  last reconciled: {}; rows deleted so far: {}",
                at.to_rfc3339(),
                s.rows_deleted
            );
        }
        if let Some(sk) = &s.skipped {
            match sk.until {
                Some(until) => println!(
                    "  skipped: blackout until {} (at {}; not attempted, nothing counted)",
                    until.to_rfc3339(),
                    sk.at.to_rfc3339()
                ),
                None => println!("  skipped: {} (at {})", sk.reason, sk.at.to_rfc3339()),
            }
        }
        for f in &s.failed {
            let stuck = if s.stuck.contains(f) { " STUCK" } else { "" };
            println!(
                "  failed{stuck}: {} attempts={} last error: {}",
                f.window, f.attempts, f.last_error
            );
        }
        let last: Vec<_> = entries
            .iter()
            .filter(|e| e.stream == s.stream)
            .rev()
            .take(3)
            .collect();
        for e in last {
            println!(
                "  run {} {:?} {} read={} written={} rejected={}",
                e.run_id, e.outcome, e.window, e.rows_read, e.rows_written, e.rows_rejected
            );
        }
    }
    let failed = streams.iter().any(|s| !s.failed.is_empty())
        || entries
            .iter()
            .rev()
            .take(1)
            .any(|e| e.outcome == Outcome::Failed);
    Ok(!failed)
}

async fn backfill(b: &Built, args: &[String]) -> CmdResult {
    let parse = |name: &str| -> Result<DateTime<Utc>, String> {
        let v = flag(args, name).ok_or_else(|| format!("backfill needs {name} <RFC3339>"))?;
        DateTime::parse_from_rfc3339(v)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| format!("{name} `{v}`: {e}"))
    };
    let (from, to) = (parse("--from")?, parse("--to")?);
    if from >= to {
        return Err("--from must be before --to".into());
    }
    let streams = stream_args(args);
    report(b.pipeline.backfill(&streams, Window::new(from, to)).await)
}

async fn verify(b: &Built, args: &[String], requeue: bool) -> CmdResult {
    let time = |name: &str| -> Result<Option<DateTime<Utc>>, String> {
        flag(args, name)
            .map(|v| {
                DateTime::parse_from_rfc3339(v)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| format!("{name} `{v}`: {e}"))
            })
            .transpose()
    };
    let range = match (time("--from")?, time("--to")?) {
        (Some(f), Some(t)) if f < t => Some(Window::new(f, t)),
        (None, None) => None,
        _ => return Err("verify needs both --from and --to, --from before --to".into()),
    };
    let sample = flag(args, "--sample")
        .map(|n| {
            n.parse::<usize>()
                .map_err(|_| format!("--sample `{n}` is not a number"))
        })
        .transpose()?;
    let streams = stream_args(args);
    let opts = VerifyOptions::new()
        .requeue(requeue)
        .apply_deletes(requeue)
        .streams(streams)
        .range(range)
        .sample(sample);
    let mut clean = true;
    for v in b.pipeline.verify_with(&opts).await? {
        let differing: Vec<_> = v.differing().collect();
        let (missing, changed, deleted) = v.windows.iter().fold((0, 0, 0), |a, w| {
            (a.0 + w.missing, a.1 + w.changed, a.2 + w.deleted)
        });
        println!(
            "{}: {} window(s) checked, {} differ: {missing} missing, {changed} changed, {deleted} deleted in PeopleSoft, {} moved{}",
            v.stream,
            v.windows.len(),
            differing.len(),
            v.moved,
            if v.complete { "" } else { " (partial check: deletes not confirmed)" }
        );
        for w in &differing {
            println!(
                "  {} source={:?} target={:?} {}",
                w.window,
                w.source_rows,
                w.target_rows,
                w.examples.join("; ")
            );
        }
        if let Some(n) = v.null_cursor_rows {
            println!("  {n} source row(s) with a NULL cursor (no window reaches them)");
        }
        if v.requeued {
            println!("  re-queued window(s) for the next cycle");
        }
        if v.deletes_applied > 0 {
            println!("  applied {} delete(s)", v.deletes_applied);
        }
        clean &= differing.is_empty();
    }
    Ok(clean)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
