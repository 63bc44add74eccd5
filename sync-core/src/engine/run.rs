//! One cycle: per stream, plan the windows, then run a reader and a writer half joined by a
//! bounded channel of [`Msg`]s (the reader–writer protocol).

use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt as _;
use tokio::sync::mpsc;
use tracing::Instrument as _;

use super::config::StreamConfig;
use super::hash::derived_column;
use super::lease::StreamLease;
use super::pipeline::Pipeline;
use super::plan::{plan_windows, Plan, Planned};
use super::progress::Progress;
use super::reconcile::{self, VerifyOptions};
use super::report::{CycleReport, StreamReport};
use super::TARGET;
use crate::error::{ConnectorError, Result};
use crate::schema::TableSchema;
use crate::sink::Receipt;
use crate::source::SourceCapabilities;
use crate::state::{RowCapKnowledge, StreamState};
use crate::value::Row;
use crate::window::Window;

pub(super) enum Msg {
    Begin {
        id: u64,
        planned: Planned,
        started: DateTime<Utc>,
        /// The window's span, entered by the writer for everything about this window.
        span: tracing::Span,
    },
    Rows {
        id: u64,
        rows: Vec<Row>,
    },
    End {
        id: u64,
        tally: Tally,
        cap_detected: Option<u64>,
    },
    Split {
        id: u64,
        read: u64,
        halves: (Window, Window),
        reason: String,
    },
    Fail {
        id: u64,
        tally: Tally,
        error: ConnectorError,
    },
    Abandon {
        id: u64,
        read: u64,
    },
}

pub(super) struct Open {
    pub(super) planned: Planned,
    pub(super) started: DateTime<Utc>,
    pub(super) receipt: Receipt,
    pub(super) error: Option<ConnectorError>,
    pub(super) span: tracing::Span,
}

/// Counts of one window attempt.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Tally {
    pub(super) read: u64,
    pub(super) rejected: u64,
    pub(super) null_cursors: u64,
    pub(super) duplicates: u64,
}

/// Everything one stream's cycle needs, shared by its reader and writer halves.
pub(super) struct StreamRun<'a> {
    pub(super) pipeline: &'a Pipeline,
    pub(super) cfg: &'a StreamConfig,
    pub(super) schema: TableSchema,
    pub(super) run_id: String,
    pub(super) loaded_at: DateTime<Utc>,
    pub(super) source_identity: String,
    pub(super) key_indexes: Vec<usize>,
    pub(super) cursor_index: Option<usize>,
    /// Effective-dated tables: the as-of date of this cycle's current flags.
    pub(super) as_of: Option<NaiveDate>,
    /// A mapped column the row hash leaves out (see [`derived_column`]).
    pub(super) hash_skip: Option<usize>,
    pub(super) halt: AtomicBool,
    pub(super) caps: SourceCapabilities,
    pub(super) knowledge: Mutex<RowCapKnowledge>,
    /// The stream's lease: every state write goes through it.
    pub(super) lease: &'a StreamLease,
}

impl Pipeline {
    /// Runs one cycle of the selected streams (`None` or empty: all) inside a `pipeline` span;
    /// each stream runs in its own `stream` span (see [`TARGET`]).
    pub(super) async fn run(&self, plan: Plan, only: Option<&[String]>) -> Result<CycleReport> {
        let started_at = self.clock.now();
        let run_id = make_run_id(started_at);
        let span = tracing::info_span!(
            target: TARGET,
            "pipeline",
            run_id = %run_id,
            pipeline = %self.name
        );
        self.run_streams(plan, only, started_at, run_id)
            .instrument(span)
            .await
    }

    async fn run_streams(
        &self,
        plan: Plan,
        only: Option<&[String]>,
        started_at: DateTime<Utc>,
        run_id: String,
    ) -> Result<CycleReport> {
        // A store with a pipeline-wide lock (the file store) takes it here, so a second
        // process fails the whole run; each stream's own state is read under its lease.
        self.store.load(&self.name).await?;
        let selected: Vec<&StreamConfig> = self
            .streams
            .iter()
            .filter(|s| only.is_none_or(|o| o.is_empty() || o.contains(&s.name)))
            .collect();
        let limit = self.options.max_concurrent_streams.max(1);
        let run_id_ref = &run_id;
        let mut reports: Vec<(usize, StreamReport)> =
            futures::stream::iter(selected.into_iter().enumerate())
                .map(|(i, cfg)| {
                    // Created while the pipeline span is current, so it is the parent.
                    let span = tracing::info_span!(target: TARGET, "stream", stream = %cfg.name);
                    async move {
                        let r = self.run_stream(cfg, plan, run_id_ref, started_at).await;
                        log_finished(&r);
                        if let Some(p) = &self.progress {
                            p(&Progress::StreamFinished(r.clone()));
                        }
                        (i, r)
                    }
                    .instrument(span)
                })
                .buffer_unordered(limit)
                .collect()
                .await;
        reports.sort_by_key(|(i, _)| *i);
        tracing::info!(target: TARGET, streams = reports.len(), "cycle finished");
        Ok(CycleReport {
            run_id,
            started_at,
            streams: reports.into_iter().map(|(_, r)| r).collect(),
        })
    }

    /// One stream's cycle under its lease: skipped (with the holder in the reason) when
    /// another worker holds it; the state is read only once the lease is taken.
    async fn run_stream(
        &self,
        cfg: &StreamConfig,
        plan: Plan,
        run_id: &str,
        cycle_start: DateTime<Utc>,
    ) -> StreamReport {
        let clock_started = Instant::now();
        let mut report = StreamReport {
            stream: cfg.name.clone(),
            ..StreamReport::default()
        };
        // Workers started together: a stream another worker finished after this cycle began
        // has had this cycle; running it again would re-read its lookback from PeopleSoft.
        if matches!(plan, Plan::Incremental) {
            if let Ok(Some(prev)) = self.store.current_lease(&self.name, &cfg.name).await {
                if let Some(at) = prev
                    .released_at
                    .filter(|at| prev.owner != self.worker && *at >= cycle_start)
                {
                    let reason = format!(
                        "stream {} already synced by worker {} at {} (after this cycle began)",
                        cfg.name,
                        prev.owner,
                        at.format("%Y-%m-%dT%H:%M:%SZ")
                    );
                    tracing::info!(target: TARGET, "skipped: {reason}");
                    report.skipped = Some(reason);
                    report.elapsed_ms = clock_started.elapsed().as_millis() as u64;
                    return report;
                }
            }
        }
        let lease = match self.take_lease(&cfg.name).await {
            Ok(Ok(lease)) => lease,
            Ok(Err(reason)) => {
                tracing::info!(target: TARGET, "skipped: {reason}");
                report.skipped = Some(reason);
                report.elapsed_ms = clock_started.elapsed().as_millis() as u64;
                return report;
            }
            Err(e) => {
                report.error = Some(format!("stream `{}`: lease not taken: {e}", cfg.name));
                tracing::error!(target: TARGET, "{}", report.error.as_deref().unwrap_or_default());
                report.elapsed_ms = clock_started.elapsed().as_millis() as u64;
                return report;
            }
        };
        match self.store.load_stream(&self.name, &cfg.name).await {
            Ok(st) => {
                self.run_leased(cfg, st, &lease, plan, run_id, cycle_start, &mut report)
                    .await
            }
            Err(e) => {
                report.error = Some(format!("stream `{}`: state not read: {e}", cfg.name));
                tracing::error!(target: TARGET, "{}", report.error.as_deref().unwrap_or_default());
            }
        }
        self.release_lease(&lease).await;
        report.elapsed_ms = clock_started.elapsed().as_millis() as u64;
        report
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_leased(
        &self,
        cfg: &StreamConfig,
        mut st: StreamState,
        lease: &StreamLease,
        plan: Plan,
        run_id: &str,
        cycle_start: DateTime<Utc>,
        report: &mut StreamReport,
    ) {
        let schema = cfg.mapper.schema().with_lineage();
        // `build` validated the key and cursor columns.
        let key_indexes = schema.key_indexes().unwrap_or_default();
        let cursor_index = schema
            .cursor_column
            .as_deref()
            .and_then(|c| schema.index_of(c));
        let as_of = schema
            .effective_dating
            .as_ref()
            .map(|ed| ed.as_of(cycle_start));

        let mut prepared = false;
        if let Some(as_of) = as_of {
            if st.current_swept_on != Some(as_of) {
                if let Err(e) = self.sink.prepare(&schema).await {
                    report.error = Some(format!(
                        "stream `{}`: preparing table `{}` failed: {}",
                        cfg.name,
                        schema.name,
                        e.full_message()
                    ));
                    tracing::error!(target: TARGET, "{}", report.error.as_deref().unwrap_or_default());
                    return;
                }
                prepared = true;
                self.sweep_current(cfg, &schema, as_of, &mut st, lease, report)
                    .await;
            }
        }

        let (planned, stuck) = plan_windows(&st, cfg, cycle_start, plan);
        for s in &stuck {
            tracing::error!(
            target: TARGET,
                           window = %s.window,
                           attempts = s.attempts,
                           "window is STUCK after {} attempts and needs attention (replay retries it): {}",
                           s.attempts,
                           s.last_error
                       );
        }
        report.stuck = stuck;
        report.windows_planned = planned.len();
        self.emit(Progress::StreamStarted {
            stream: cfg.name.clone(),
            windows: planned.len(),
        });
        if planned.is_empty() {
            self.scheduled_reconcile(cfg, &mut st, lease, plan, run_id, cycle_start, report)
                .await;
            return;
        }

        if !prepared {
            if let Err(e) = self.sink.prepare(&schema).await {
                report.error = Some(format!(
                    "stream `{}`: preparing table `{}` failed: {}",
                    cfg.name,
                    schema.name,
                    e.full_message()
                ));
                tracing::error!(target: TARGET, "{}", report.error.as_deref().unwrap_or_default());
                return;
            }
        }

        let run = StreamRun {
            pipeline: self,
            cfg,
            schema,
            run_id: run_id.to_string(),
            loaded_at: cycle_start,
            source_identity: cfg.source.identity(),
            key_indexes,
            cursor_index,
            as_of,
            hash_skip: derived_column(cfg.mapper.schema()),
            halt: AtomicBool::new(false),
            caps: cfg.source.capabilities(),
            knowledge: Mutex::new(st.row_cap),
            lease,
        };
        let (tx, rx) = mpsc::channel(self.options.in_flight_batches.max(1));
        let mut covered: Option<Window> = None;
        let ((), ()) = futures::join!(
            run.read(planned, tx),
            run.write(rx, &mut st, report, &mut covered)
        );
        report.stopped = self.stop.is_stopped();
        if let (Some(committed), true) = (covered, report.is_clean() && !report.stopped) {
            run.hooks(committed, report).await;
        }
        if !report.stopped && report.error.is_none() {
            self.scheduled_reconcile(cfg, &mut st, lease, plan, run_id, cycle_start, report)
                .await;
        }
    }

    /// Runs the stream's reconciliation when its schedule is due (incremental cycles only):
    /// re-queues windows that differ and applies confirmed deletes.
    #[allow(clippy::too_many_arguments)]
    async fn scheduled_reconcile(
        &self,
        cfg: &StreamConfig,
        st: &mut StreamState,
        lease: &StreamLease,
        plan: Plan,
        run_id: &str,
        cycle_start: DateTime<Utc>,
        report: &mut StreamReport,
    ) {
        let Some(schedule) = &cfg.reconcile else {
            return;
        };
        if plan != Plan::Incremental
            || !reconcile::reconcile_due(schedule, st.last_reconciled_at, cycle_start)
        {
            return;
        }
        let opts = VerifyOptions::new().requeue(true).apply_deletes(true);
        match self.reconcile_stream(cfg, st, lease, &opts, run_id).await {
            Ok(v) => {
                report.rows_deleted += v.deletes_applied;
                report.reconciliation = Some(v);
            }
            Err(e) => {
                let msg = format!(
                    "stream `{}`: scheduled reconciliation failed: {e}",
                    cfg.name
                );
                tracing::error!(target: TARGET, "{msg}");
                report.error.get_or_insert(msg);
            }
        }
    }

    /// The daily activation sweep of an effective-dated stream: recomputes every current flag
    /// as of `as_of` (so future-dated rows become current on their date) and records the date
    /// in the stream's state, so it runs once per site-local day, across restarts too. A failed
    /// sweep is reported and tried again next cycle; the windows still run.
    async fn sweep_current(
        &self,
        cfg: &StreamConfig,
        schema: &TableSchema,
        as_of: NaiveDate,
        st: &mut StreamState,
        lease: &StreamLease,
        report: &mut StreamReport,
    ) {
        match self.sink.refresh_current(schema, as_of).await {
            Ok(receipt) => {
                tracing::info!(
                target: TARGET,
                                   %as_of,
                                   statements = ?receipt.statement_ids,
                                   "current flags recomputed for the whole table (daily sweep)"
                               );
                let mut next = st.clone();
                next.current_swept_on = Some(as_of);
                match lease.save(self, &next).await {
                    Ok(()) => {
                        *st = next;
                        report.current_swept_on = Some(as_of);
                    }
                    // Harmless: the sweep is idempotent and simply runs again next cycle.
                    Err(e) => {
                        report.error = Some(format!(
                            "stream `{}`: current-flag sweep not recorded in state: {e}",
                            cfg.name
                        ));
                    }
                }
            }
            Err(e) => {
                report.error = Some(format!(
                    "stream `{}`: recomputing the current flags of table `{}` as of {as_of} failed (retried next cycle): {}",
                    cfg.name,
                    schema.name,
                    e.full_message()
                ));
                tracing::error!(target: TARGET, "{}", report.error.as_deref().unwrap_or_default());
            }
        }
    }
}

/// One line per stream and cycle, inside the stream's span.
fn log_finished(r: &StreamReport) {
    tracing::info!(
        target: TARGET,
        windows_committed = r.windows_committed,
        windows_failed = r.windows_failed,
        windows_split = r.windows_split,
        rows_read = r.rows_read,
        rows_written = r.rows_written,
        rows_rejected = r.rows_rejected,
        elapsed_ms = r.elapsed_ms,
        "stream finished"
    );
}

pub(super) fn make_run_id(at: DateTime<Utc>) -> String {
    format!(
        "{}-{:06x}",
        at.format("%Y%m%dT%H%M%SZ"),
        fastrand::u32(..0x100_0000)
    )
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, TimeZone, Utc};

    use super::make_run_id;

    fn t(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::hours(h)
    }

    #[test]
    fn run_ids_sort_by_time() {
        assert!(make_run_id(t(1)) < make_run_id(t(2)));
    }
}
