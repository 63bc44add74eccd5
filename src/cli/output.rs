//! What the commands print: cycle reports, status and verification results.

use sync_core::audit::Outcome;
use sync_core::engine::{CycleReport, StreamVerification};

use super::CmdResult;
use crate::build::Built;

/// Prints a cycle's report; `Ok(true)` when it is clean.
pub(super) fn report(r: Result<CycleReport, sync_core::Error>) -> CmdResult {
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

/// Prints committed coverage, failures, skips and the last runs per stream.
pub(super) async fn status(b: &Built) -> CmdResult {
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

/// Prints a verification; `Ok(true)` when nothing differs.
pub(super) fn verification(results: &[StreamVerification]) -> CmdResult {
    let mut clean = true;
    for v in results {
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
