//! The writer half of a stream's cycle: writes batches to the sink, checkpoints a window after
//! the sink confirmed all of it, records failures, audit entries and hooks.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tracing::Instrument as _;

use super::plan::Planned;
use super::progress::{HookContext, Progress};
use super::report::StreamReport;
use super::run::{Msg, Open, StreamRun, Tally};
use super::TARGET;
use crate::audit::{AuditEntry, Outcome};
use crate::error::{ConnectorError, FailureKind};
use crate::sink::{Batch, Receipt};
use crate::state::StreamState;
use crate::window::Window;

impl StreamRun<'_> {
    pub(super) async fn hooks(&self, committed: Window, report: &mut StreamReport) {
        let p = self.pipeline;
        for hook in &p.hooks {
            let ctx = HookContext {
                pipeline: p.name.clone(),
                stream: self.cfg.name.clone(),
                run_id: self.run_id.clone(),
                table: self.schema.name.clone(),
                committed,
                report: report.clone(),
            };
            let started = p.clock.now();
            let planned = Planned {
                window: committed,
                attempt: 0,
            };
            let entry = match hook.after_stream(&ctx).await {
                Ok(annotations) => {
                    let mut e = self.entry(
                        &planned,
                        started,
                        0,
                        0,
                        Receipt::default(),
                        Outcome::Hook,
                        None,
                    );
                    e.annotations = annotations;
                    e
                }
                Err(err) => {
                    let msg = format!(
                        "hook after stream `{}` failed: {}",
                        self.cfg.name,
                        err.full_message()
                    );
                    tracing::error!(target: TARGET, "{msg}");
                    report.error = Some(msg.clone());
                    self.entry(
                        &planned,
                        started,
                        0,
                        0,
                        Receipt::default(),
                        Outcome::Hook,
                        Some(msg),
                    )
                }
            };
            self.append_audit(&entry, report).await;
        }
    }

    pub(super) async fn write(
        &self,
        mut rx: mpsc::Receiver<Msg>,
        st: &mut StreamState,
        report: &mut StreamReport,
        covered: &mut Option<Window>,
    ) {
        let p = self.pipeline;
        let cfg = self.cfg;
        let mut open: HashMap<u64, Open> = HashMap::new();
        let mut lease_ok = true;
        while let Some(msg) = rx.recv().await {
            // Renew between windows and batches (only once a third of the lease has passed);
            // a lost lease stops the stream before it reads more, and no state is written
            // under it (the save's fence refuses).
            if lease_ok {
                if let Err(e) = self.lease.renew_if_due(p).await {
                    lease_ok = false;
                    self.halt.store(true, Ordering::SeqCst);
                    let msg = format!("stream `{}` stopped: {e}", cfg.name);
                    tracing::error!(target: TARGET, "{msg}");
                    report.error.get_or_insert(msg);
                }
            }
            match msg {
                Msg::Begin {
                    id,
                    planned,
                    started,
                    span,
                } => {
                    open.insert(
                        id,
                        Open {
                            planned,
                            started,
                            receipt: Receipt::default(),
                            error: None,
                            span,
                        },
                    );
                }
                Msg::Rows { id, rows } => {
                    let Some(o) = open.get_mut(&id) else { continue };
                    if o.error.is_some() {
                        continue;
                    }
                    let batch = Batch {
                        rows,
                        window: o.planned.window,
                        run_id: self.run_id.clone(),
                        stream: cfg.name.clone(),
                        as_of: self.as_of,
                    };
                    let written = p
                        .sink
                        .write(&self.schema, &batch)
                        .instrument(o.span.clone())
                        .await;
                    match written {
                        Ok(r) => o.receipt.absorb(r),
                        Err(e) => {
                            if e.kind() == FailureKind::StopStream
                                || p.options.stop_stream_on_failure
                            {
                                self.halt.store(true, Ordering::SeqCst);
                            }
                            o.error = Some(e);
                        }
                    }
                }
                Msg::End {
                    id,
                    tally,
                    cap_detected,
                } => {
                    let Some(o) = open.remove(&id) else { continue };
                    let (read, rejected) = (tally.read, tally.rejected);
                    report.rows_read += read;
                    report.rows_rejected += rejected;
                    report.null_cursor_rows += tally.null_cursors;
                    report.ambiguous_duplicates += tally.duplicates;
                    if cap_detected.is_some() {
                        report.row_cap_detected = cap_detected;
                    }
                    let span = o.span.clone();
                    match o.error {
                        Some(e) => {
                            self.failed(
                                st, report, o.planned, o.started, read, rejected, o.receipt, e,
                            )
                            .instrument(span)
                            .await
                        }
                        None => {
                            let w = o.planned.window;
                            let committed = self
                                .committed(st, report, o, &tally, cap_detected)
                                .instrument(span)
                                .await;
                            if committed {
                                *covered = Some(match *covered {
                                    Some(s) => Window {
                                        from: s.from.min(w.from),
                                        to: s.to.max(w.to),
                                    },
                                    None => w,
                                });
                            }
                        }
                    }
                }
                Msg::Split {
                    id,
                    read,
                    halves,
                    reason,
                } => {
                    let Some(o) = open.remove(&id) else { continue };
                    report.windows_split += 1;
                    o.span.in_scope(|| {
                        tracing::info!(
                            target: TARGET,
                            "{reason}; splitting into {} and {}",
                            halves.0,
                            halves.1
                        )
                    });
                    let mut entry = self.entry(
                        &o.planned,
                        o.started,
                        read,
                        0,
                        o.receipt,
                        Outcome::Split,
                        None,
                    );
                    entry.annotations.insert("split_reason".into(), reason);
                    self.append_audit(&entry, report).instrument(o.span).await;
                }
                Msg::Fail { id, tally, error } => {
                    let Some(o) = open.remove(&id) else { continue };
                    let (read, rejected) = (tally.read, tally.rejected);
                    report.rows_read += read;
                    report.rows_rejected += rejected;
                    report.null_cursor_rows += tally.null_cursors;
                    report.ambiguous_duplicates += tally.duplicates;
                    self.failed(
                        st, report, o.planned, o.started, read, rejected, o.receipt, error,
                    )
                    .instrument(o.span)
                    .await;
                }
                Msg::Abandon { id, read } => {
                    let Some(o) = open.remove(&id) else { continue };
                    let entry = self.entry(
                        &o.planned,
                        o.started,
                        read,
                        0,
                        o.receipt,
                        Outcome::Abandoned,
                        Some("stopped before the window completed; nothing checkpointed".into()),
                    );
                    self.append_audit(&entry, report).instrument(o.span).await;
                }
            }
        }
    }

    /// Records a committed window; false when the checkpoint could not be saved.
    async fn committed(
        &self,
        st: &mut StreamState,
        report: &mut StreamReport,
        o: Open,
        tally: &Tally,
        cap_detected: Option<u64>,
    ) -> bool {
        let (read, rejected) = (tally.read, tally.rejected);
        let p = self.pipeline;
        let now = p.clock.now();
        let mut next = st.clone();
        next.commit(o.planned.window, now);
        next.row_cap
            .merge(*self.knowledge.lock().unwrap_or_else(|e| e.into_inner()));
        if let Err(e) = self.lease.save(p, &next).await {
            // The rows are in the sink but the checkpoint did not move: the window is read
            // again next cycle, which is harmless because writes are idempotent.
            if matches!(e, crate::Error::LeaseLost { .. }) {
                self.halt.store(true, Ordering::SeqCst);
            }
            let msg = format!("checkpoint not saved after a committed write: {e}");
            tracing::error!(target: TARGET, "{msg}");
            report.error = Some(msg.clone());
            report.windows_failed += 1;
            let entry = self.entry(
                &o.planned,
                o.started,
                read,
                rejected,
                o.receipt,
                Outcome::Failed,
                Some(msg),
            );
            self.append_audit(&entry, report).await;
            return false;
        }
        *st = next;
        report.windows_committed += 1;
        report.absorb_receipt(&o.receipt);
        tracing::info!(
            target: TARGET,
            rows_read = read,
            rows_written = o.receipt.rows_written,
            "window committed"
        );
        p.emit(Progress::WindowCommitted {
            stream: self.cfg.name.clone(),
            window: o.planned.window,
            rows_read: read,
            rows_written: o.receipt.rows_written,
        });
        let mut entry = self.entry(
            &o.planned,
            o.started,
            read,
            rejected,
            o.receipt,
            Outcome::Committed,
            None,
        );
        if let Some(cap) = cap_detected {
            entry
                .annotations
                .insert("row_cap_detected".into(), cap.to_string());
        }
        if tally.null_cursors > 0 {
            entry
                .annotations
                .insert("null_cursor_rows".into(), tally.null_cursors.to_string());
        }
        if tally.duplicates > 0 {
            entry
                .annotations
                .insert("ambiguous_duplicates".into(), tally.duplicates.to_string());
        }
        self.append_audit(&entry, report).await;
        true
    }

    #[allow(clippy::too_many_arguments)]
    async fn failed(
        &self,
        st: &mut StreamState,
        report: &mut StreamReport,
        planned: Planned,
        started: DateTime<Utc>,
        read: u64,
        rejected: u64,
        receipt: Receipt,
        error: ConnectorError,
    ) {
        let p = self.pipeline;
        let cfg = self.cfg;
        let message = error.full_message();
        if error.kind() == FailureKind::Deferred {
            return self.deferred(st, report, error).await;
        }
        report.windows_failed += 1;
        report.absorb_receipt(&receipt);
        if error.kind() == FailureKind::StopStream {
            report.error = Some(format!("stream `{}` stopped: {message}", cfg.name));
        }
        tracing::warn!(target: TARGET, "window failed: {message}");
        let mut next = st.clone();
        next.row_cap
            .merge(*self.knowledge.lock().unwrap_or_else(|e| e.into_inner()));
        let f = next.fail(planned.window, &message, p.clock.now()).clone();
        if f.is_stuck(cfg.max_attempts) {
            tracing::error!(
            target: TARGET,
                           "window is STUCK after {} attempts: {message}",
                           f.attempts
                       );
        }
        match self.lease.save(p, &next).await {
            Ok(()) => *st = next,
            Err(e) => {
                if matches!(e, crate::Error::LeaseLost { .. }) {
                    self.halt.store(true, Ordering::SeqCst);
                }
                report.error = Some(format!("failed window not recorded in state: {e}"));
            }
        }
        p.emit(Progress::WindowFailed {
            stream: cfg.name.clone(),
            window: planned.window,
            error: message.clone(),
        });
        let entry = self.entry(
            &planned,
            started,
            read,
            rejected,
            receipt,
            Outcome::Failed,
            Some(message),
        );
        self.append_audit(&entry, report).await;
    }

    /// A window the source declined to attempt: no failure, no attempt, no audit entry; the
    /// stream stops for this cycle and the reason is reported and kept for `status`.
    async fn deferred(
        &self,
        st: &mut StreamState,
        report: &mut StreamReport,
        error: ConnectorError,
    ) {
        // Rows a source read before deferring are not checkpointed: the window is planned
        // again (a gap, a queued failed window, or the next lookback).
        let p = self.pipeline;
        let message = error.message().to_string();
        tracing::info!(target: TARGET, "window deferred, not attempted: {message}");
        if report.skipped.is_none() {
            report.skipped = Some(message.clone());
        }
        let mut next = st.clone();
        next.skipped = Some(crate::state::Skipped {
            reason: message,
            until: error.until(),
            at: p.clock.now(),
        });
        if next != *st {
            match self.lease.save(p, &next).await {
                Ok(()) => *st = next,
                Err(e) => {
                    report.error = Some(format!("skipped cycle not recorded in state: {e}"));
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn entry(
        &self,
        planned: &Planned,
        started: DateTime<Utc>,
        read: u64,
        rejected: u64,
        receipt: Receipt,
        outcome: Outcome,
        error: Option<String>,
    ) -> AuditEntry {
        AuditEntry {
            run_id: self.run_id.clone(),
            pipeline: self.pipeline.name.clone(),
            stream: self.cfg.name.clone(),
            window: planned.window,
            attempt: planned.attempt,
            started_at: started,
            finished_at: self.pipeline.clock.now(),
            rows_read: read,
            rows_written: receipt.rows_written,
            rows_rejected: rejected,
            receipt,
            outcome,
            error,
            annotations: Default::default(),
        }
    }

    async fn append_audit(&self, entry: &AuditEntry, report: &mut StreamReport) {
        if let Err(e) = self.pipeline.audit.append(entry).await {
            tracing::error!(target: TARGET, stream = %self.cfg.name, "audit entry not written: {e}");
            report
                .error
                .get_or_insert_with(|| format!("audit entry not written: {e}"));
        }
    }
}
