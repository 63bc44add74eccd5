//! What the commands print: cycle reports, status and verification results.

use sync_core::audit::Outcome;
use sync_core::engine::{CycleReport, StreamVerification};

use peoplesoft_client::writeback::{RecordAction, RecordOutcome};

use super::CmdResult;
use crate::build::{writeback_results_file, Built, Writeback};

/// `SETID=SHARE VENDOR_ID=0000000042`.
fn key_text(r: &RecordOutcome) -> String {
    r.key
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One line per record that needs a reader's eye (everything but `unchanged`), with both
/// versions and the field differences.
fn record_line(r: &RecordOutcome) {
    println!("  {:<9} {}: {}", r.action.as_str(), key_text(r), r.reason);
    if r.peoplesoft_version.is_some() || r.row_version.is_some() {
        println!(
            "            PeopleSoft version {}, row version {}",
            r.peoplesoft_version.as_deref().unwrap_or("unknown"),
            r.row_version.as_deref().unwrap_or("unknown")
        );
    }
    for c in &r.changes {
        println!(
            "            {}: {} -> {}",
            c.field,
            c.from
                .as_deref()
                .map_or("(none)".to_string(), |v| format!("{v:?}")),
            c.to.as_deref()
                .map_or("(null)".to_string(), |v| format!("{v:?}"))
        );
    }
    if let Some(m) = &r.peoplesoft_message {
        if r.action == RecordAction::Rejected || r.action == RecordAction::Failed {
            println!("            PeopleSoft said: {m}");
        }
    }
}

/// Prints the write-back's per-record outcomes of run `run_id` (every report of this
/// process when `None`): counts per action per stream, then every record that is not
/// `unchanged`. `true` when no record was rejected or failed.
pub(super) fn writeback_records(w: &Writeback, run_id: Option<&str>) -> bool {
    let reports = w.reports.lock().unwrap_or_else(|e| e.into_inner());
    let mut clean = true;
    for s in &w.streams {
        let records: Vec<&RecordOutcome> = reports
            .iter()
            .filter(|r| r.stream == s.name && run_id.is_none_or(|id| r.run_id == id))
            .flat_map(|r| r.records.iter())
            .collect();
        let count = |a: RecordAction| records.iter().filter(|r| r.action == a).count();
        let echoes = records
            .iter()
            .filter(|r| r.action == RecordAction::Unchanged && r.reason.starts_with("echo"))
            .count();
        println!(
            "write-back {} ({} -> CIRT {}){}",
            s.name,
            s.table.full_name(),
            s.target.ci,
            if w.dry_run {
                ": DRY RUN, plan only, nothing sent"
            } else {
                ""
            }
        );
        println!(
            "  created {}, updated {}, unchanged {} ({echoes} echo(es) skipped), conflict {}, held {}, rejected {}, failed {}",
            count(RecordAction::Created),
            count(RecordAction::Updated),
            count(RecordAction::Unchanged),
            count(RecordAction::Conflict),
            count(RecordAction::Held),
            count(RecordAction::Rejected),
            count(RecordAction::Failed),
        );
        for r in records
            .iter()
            .filter(|r| r.action != RecordAction::Unchanged)
        {
            record_line(r);
        }
        clean &= count(RecordAction::Rejected) == 0 && count(RecordAction::Failed) == 0;
    }
    clean
}

/// `status` for the write-back: committed coverage and failed windows of each stream, and
/// the per-record outcomes of its last run (from the results file in the state directory).
async fn writeback_status(w: &Writeback, state_dir: &std::path::Path) -> CmdResult {
    let streams = w.pipeline.status().await?;
    let mut clean = true;
    for s in &streams {
        let settings = w.streams.iter().find(|x| x.name == s.stream);
        println!(
            "{} (write-back{})",
            s.stream,
            settings
                .map(|x| format!(": {} -> CIRT {}", x.table.full_name(), x.target.ci))
                .unwrap_or_default()
        );
        match s.committed.as_slice() {
            [] => println!("  committed: nothing yet"),
            intervals => {
                for iv in intervals {
                    println!("  committed: {iv}");
                }
            }
        }
        for f in &s.failed {
            let stuck = if s.stuck.contains(f) { " STUCK" } else { "" };
            println!(
                "  failed{stuck}: {} attempts={} last error: {}",
                f.window, f.attempts, f.last_error
            );
            clean = false;
        }
        let path = writeback_results_file(state_dir, &s.stream);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                println!("  no write-back results yet");
                continue;
            }
            Err(e) => return Err(format!("{}: {e}", path.display()).into()),
        };
        let lines: Vec<(String, RecordOutcome)> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| {
                let run = v.get("run_id")?.as_str()?.to_string();
                let rec = serde_json::from_value(v.get("record")?.clone()).ok()?;
                Some((run, rec))
            })
            .collect();
        let Some(last) = lines.last().map(|(r, _)| r.clone()) else {
            println!("  no write-back results yet");
            continue;
        };
        let records: Vec<&RecordOutcome> = lines
            .iter()
            .filter(|(r, _)| *r == last)
            .map(|(_, rec)| rec)
            .collect();
        let mut counts = std::collections::BTreeMap::new();
        for r in &records {
            *counts.entry(r.action).or_insert(0usize) += 1;
        }
        println!(
            "  last run {last}: {}",
            RecordAction::ALL
                .iter()
                .map(|a| format!("{a} {}", counts.get(a).copied().unwrap_or(0)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for r in records
            .iter()
            .filter(|r| r.action != RecordAction::Unchanged)
        {
            record_line(r);
        }
    }
    Ok(clean)
}

/// What the sink reported sending for a stream (`sink: 2 statement(s), 1.2 MiB SQL, 1 file(s)
/// staged, 3.4 MiB`), or `None` when it reported nothing.
pub(super) fn sink_activity(s: &sync_core::engine::StreamReport) -> Option<String> {
    let mut parts = Vec::new();
    if s.statements > 0 || s.sql_bytes > 0 {
        parts.push(format!(
            "{} statement(s), {} of SQL",
            s.statements,
            human_bytes(s.sql_bytes)
        ));
    }
    if s.files_staged > 0 || s.bytes_staged > 0 {
        parts.push(format!(
            "{} file(s) staged, {}",
            s.files_staged,
            human_bytes(s.bytes_staged)
        ));
    }
    (!parts.is_empty()).then(|| format!("sink: {}", parts.join("; ")))
}

/// `512 B`, `12.3 KiB`, `4.0 MiB`, `1.2 GiB`.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Prints a cycle's report; `Ok(true)` when it is clean.
pub(super) fn report(r: Result<CycleReport, sync_core::Error>) -> CmdResult {
    let r = r?;
    println!("run {} started {}", r.run_id, r.started_at.to_rfc3339());
    println!(
        "{:<24} {:>8} {:>8} {:>10} {:>10} {:>9} {:>9} {:>10}",
        "stream", "windows", "failed", "read", "written", "rejected", "ms", "rows/s"
    );
    for s in &r.streams {
        println!(
            "{:<24} {:>8} {:>8} {:>10} {:>10} {:>9} {:>9} {:>10}{}",
            s.stream,
            s.windows_committed,
            s.windows_failed,
            s.rows_read,
            s.rows_written,
            s.rows_rejected,
            s.elapsed_ms,
            rows_per_second(s.rows_written, s.elapsed_ms),
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
        if let Some(line) = sink_activity(s) {
            println!("  {line}");
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
        if let Some(l) = &s.lease {
            if l.expires_at > chrono::Utc::now() {
                println!(
                    "  lease: held by worker {} until {} (version {})",
                    l.owner,
                    l.expires_at.to_rfc3339(),
                    l.version
                );
            } else {
                println!(
                    "  lease: free (last held by worker {}, lapsed {})",
                    l.owner,
                    l.expires_at.to_rfc3339()
                );
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
    let writeback_clean = match &b.writeback {
        Some(w) => writeback_status(w, &b.state_dir).await?,
        None => true,
    };
    Ok(!failed && writeback_clean)
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

/// Rows written per second of the stream's cycle, rounded (`-` when nothing was written).
fn rows_per_second(rows: u64, elapsed_ms: u64) -> String {
    if rows == 0 {
        return "-".into();
    }
    (rows.saturating_mul(1000) / elapsed_ms.max(1)).to_string()
}

#[cfg(test)]
mod tests {
    use super::{human_bytes, rows_per_second, sink_activity};

    #[test]
    fn sink_activity_is_shown_only_when_reported() {
        let mut s = sync_core::engine::StreamReport::default();
        assert_eq!(sink_activity(&s), None);
        s.statements = 2;
        s.sql_bytes = 2048;
        assert_eq!(
            sink_activity(&s).as_deref(),
            Some("sink: 2 statement(s), 2.0 KiB of SQL")
        );
        s.files_staged = 1;
        s.bytes_staged = 3 * 1024 * 1024 + 512 * 1024;
        assert_eq!(
            sink_activity(&s).as_deref(),
            Some("sink: 2 statement(s), 2.0 KiB of SQL; 1 file(s) staged, 3.5 MiB")
        );
        assert_eq!(human_bytes(512), "512 B");
    }

    #[test]
    fn rows_per_second_is_rounded_down_and_safe_on_zero() {
        assert_eq!(rows_per_second(0, 0), "-");
        assert_eq!(rows_per_second(5_000, 2_000), "2500");
        assert_eq!(rows_per_second(7, 0), "7000");
        assert_eq!(rows_per_second(u64::MAX, 1), u64::MAX.to_string());
    }
}
