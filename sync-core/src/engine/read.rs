//! The reader half of a stream's cycle: reads windows page by page, splits truncated ones,
//! maps records into batches and hands them to the writer.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use chrono::Duration;
use futures::StreamExt as _;
use tokio::sync::mpsc;
use tracing::Instrument as _;

use super::batch::BatchBuilder;
use super::config::RejectPolicy;
use super::hash::row_hash_except;
use super::plan::Planned;
use super::run::{Msg, StreamRun, Tally};
use super::truncation::{
    classify, narrowest, next_step, page_cap, presplit, settle_probes, Density, Probe, Step,
    Verdict,
};
use super::TARGET;
use crate::audit::RejectedRecord;
use crate::error::{ConnectorError, FailureKind};
use crate::mapper::FieldError;
use crate::schema::TableSchema;
use crate::source::Page;
use crate::state::RowCapKnowledge;
use crate::value::{Record, Row, Value};
use crate::window::Window;

enum TakeError {
    Closed,
    Failed(ConnectorError),
}

impl StreamRun<'_> {
    pub(super) async fn read(&self, planned: Vec<Planned>, tx: mpsc::Sender<Msg>) {
        let cfg = self.cfg;
        let stop = &self.pipeline.stop;
        let mut queue: VecDeque<Planned> = planned.into();
        let mut probes: Vec<Probe> = Vec::new();
        let mut next_id = 0u64;
        // Windows split this run for holding more rows than a page, and the density of the
        // complete windows: the rest of a dense window is cut before it is read.
        let mut dense: Vec<Window> = Vec::new();
        let mut density = Density::default();
        while let Some(p) = queue.pop_front() {
            if stop.is_stopped() || self.halt.load(Ordering::SeqCst) {
                break;
            }
            if dense
                .iter()
                .any(|d| d.from <= p.window.from && p.window.to <= d.to)
            {
                let cap = page_cap(
                    &self.caps,
                    &self.knowledge.lock().unwrap_or_else(|e| e.into_inner()),
                );
                let floor = narrowest(cfg, &self.caps);
                if let Some(parts) = presplit(cap, floor, &p.window, density) {
                    tracing::debug!(
                        target: TARGET,
                        window = %p.window,
                        pieces = parts.len(),
                        "cut before reading: the rows measured so far predict more than a page"
                    );
                    for window in parts.into_iter().rev() {
                        queue.push_front(Planned {
                            window,
                            attempt: p.attempt,
                        });
                    }
                    continue;
                }
            }
            let id = next_id;
            next_id += 1;
            let started = self.pipeline.clock.now();
            let span = tracing::info_span!(
                target: TARGET,
                "window",
                window = %p.window,
                attempt = p.attempt
            );
            if tx
                .send(Msg::Begin {
                    id,
                    planned: p,
                    started,
                    span: span.clone(),
                })
                .await
                .is_err()
            {
                return;
            }
            // Everything about this window is logged inside its span (the writer enters the
            // same span for the window's batches, commit or failure).
            let keep_reading = async {
                let mut pages = cfg.source.read(p.window);
                let mut batch = BatchBuilder::new(self);
                let mut tally = Tally::default();
                enum End {
                    Complete,
                    Split { verdict: Verdict, rows: u64 },
                    Unsplittable { verdict: Verdict, page: Page },
                    Failed(ConnectorError),
                    Abandoned,
                }
                let end = loop {
                    let next = tokio::select! {
                        biased;
                        _ = stop.stopped() => break End::Abandoned,
                        next = pages.next() => next,
                    };
                    let page = match next {
                        None => break End::Complete,
                        Some(Err(e)) => break End::Failed(e),
                        Some(Ok(page)) => page,
                    };
                    let n = page.records.len() as u64;
                    let verdict = self.classify(n, page.truncated);
                    tally.read += n;
                    let resume_after = match next_step(cfg, &self.caps, &p.window, verdict, n) {
                        Step::Take => None,
                        Step::Split(verdict) => break End::Split { verdict, rows: n },
                        Step::Unreadable(verdict) => break End::Unsplittable { verdict, page },
                        // Rows tied within the narrowest window: page on by key after this page.
                        Step::TakeThenPageByKey(_) => page.records.last().cloned(),
                    };
                    if let Err(e) = self
                        .take_page(page, &p, &mut batch, id, &mut tally, &tx)
                        .await
                    {
                        match e {
                            TakeError::Closed => return false,
                            TakeError::Failed(e) => break End::Failed(e),
                        }
                    }
                    if let Some(last) = resume_after {
                        let source = &cfg.source;
                        let window = p.window;
                        let name = cfg.name.clone();
                        pages = futures::stream::once(async move {
                            match source.read_after(window, &last).await {
                                Ok(Some(page)) => Ok(page),
                                Ok(None) => Err(ConnectorError::permanent(format!(
                                    "stream `{name}` window {window}: the source declared key paging but cannot read after a key"
                                ))),
                                Err(e) => Err(e),
                            }
                        })
                        .boxed();
                    }
                };
                let msg = match end {
                    End::Complete => {
                        density.add(&p.window, tally.read);
                        let (rows, dups) = batch.take();
                        if !dups.is_empty() {
                            if let Err(e) = self.reject_duplicates(dups, &p, &mut tally).await {
                                settle_probes(&mut probes, p.window, None);
                                let msg = Msg::Fail {
                                    id,
                                    tally,
                                    error: e,
                                };
                                if tx.send(msg).await.is_err() {
                                    return false;
                                }
                                return true;
                            }
                        }
                        if !rows.is_empty() && tx.send(Msg::Rows { id, rows }).await.is_err() {
                            return false;
                        }
                        let detected = settle_probes(&mut probes, p.window, Some(tally.read));
                        if let Some(cap) = detected {
                            self.knowledge
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .merge(RowCapKnowledge {
                                    largest_page: cap,
                                    detected: Some(cap),
                                });
                            tracing::warn!(
 target: TARGET,
                                "detected a row cap of {cap} rows per page below the requested {} (a query profile's Max Rows Fetched): pages of {cap} rows are now split",
                                self.caps.requested_row_cap.unwrap_or_default()
                            );
                        }
                        Msg::End {
                            id,
                            tally,
                            cap_detected: detected,
                        }
                    }
                    End::Split { verdict, rows } => {
                        dense.push(p.window);
                        density.cut(rows);
                        let halves = p.window.halves();
                        queue.push_front(Planned {
                            window: halves.1,
                            attempt: p.attempt,
                        });
                        queue.push_front(Planned {
                            window: halves.0,
                            attempt: p.attempt,
                        });
                        if verdict == Verdict::Ambiguous {
                            probes.push(Probe {
                                window: p.window,
                                rows,
                                sum: 0,
                            });
                        }
                        Msg::Split {
                            id,
                            read: tally.read,
                            halves,
                            reason: self.split_reason(verdict, rows),
                        }
                    }
                    End::Unsplittable { verdict, page } => {
                        settle_probes(&mut probes, p.window, None);
                        Msg::Fail {
                            id,
                            tally,
                            error: ConnectorError::permanent(
                                self.unsplittable(&p.window, verdict, &page),
                            ),
                        }
                    }
                    End::Failed(error) => {
                        settle_probes(&mut probes, p.window, None);
                        if matches!(
                            error.kind(),
                            FailureKind::StopStream | FailureKind::Deferred
                        ) {
                            self.halt.store(true, Ordering::SeqCst);
                        }
                        if self.pipeline.options.stop_stream_on_failure {
                            self.halt.store(true, Ordering::SeqCst);
                        }
                        Msg::Fail { id, tally, error }
                    }
                    End::Abandoned => Msg::Abandon {
                        id,
                        read: tally.read,
                    },
                };
                if tx.send(msg).await.is_err() {
                    return false;
                }
                true
            }
            .instrument(span)
            .await;
            if !keep_reading {
                return;
            }
        }
    }

    /// Maps one page into the batch, sending full batches and storing rejects.
    async fn take_page(
        &self,
        page: Page,
        p: &Planned,
        batch: &mut BatchBuilder<'_>,
        id: u64,
        tally: &mut Tally,
        tx: &mpsc::Sender<Msg>,
    ) -> std::result::Result<(), TakeError> {
        let cfg = self.cfg;
        let mut rejects = Vec::new();
        let mut full = Vec::new();
        for record in page.records {
            match cfg.mapper.map_owned(record) {
                Ok(row) => {
                    if let Some(c) = self.cursor_index {
                        if row[c].is_null() {
                            tally.null_cursors += 1;
                        }
                    }
                    if let Some(rows) = batch.push(self.complete(row)) {
                        full.push(rows);
                    }
                }
                Err((record, errors)) => rejects.push(self.rejected(p, record, errors)),
            }
        }
        for (rows, dups) in full {
            if !dups.is_empty() {
                self.reject_duplicates(dups, p, tally)
                    .await
                    .map_err(TakeError::Failed)?;
            }
            if tx.send(Msg::Rows { id, rows }).await.is_err() {
                return Err(TakeError::Closed);
            }
        }
        if !rejects.is_empty() {
            self.store_rejects(rejects, p, tally, "failed mapping")
                .await
                .map_err(TakeError::Failed)?;
        }
        Ok(())
    }

    /// How far `n` rows (with the source's own truncation flag) prove the window complete.
    fn classify(&self, n: u64, truncated: bool) -> Verdict {
        let mut know = self.knowledge.lock().unwrap_or_else(|e| e.into_inner());
        classify(&self.caps, &mut know, n, truncated)
    }

    fn split_reason(&self, verdict: Verdict, rows: u64) -> String {
        let requested = self.caps.requested_row_cap;
        match verdict {
            Verdict::Ambiguous => format!(
                "possible unannounced row cap: {rows} rows (fewer than the requested {}) and no page has returned more; split to prove the window complete",
                requested.map_or_else(|| "cap".to_string(), |r| r.to_string())
            ),
            _ => match (self.caps.declared_row_cap.or(self.knowledge.lock().unwrap_or_else(|e| e.into_inner()).detected), requested) {
                (Some(k), Some(r)) if rows < r => format!("page of {rows} rows reached the row cap of {k} (query profile, below the requested maxrows {r})"),
                (_, Some(r)) => format!("page of {rows} rows reached the requested row cap of {r}"),
                _ => format!("page of {rows} rows was truncated by the source"),
            },
        }
    }

    /// The error for a truncated or unprovable page whose window cannot be split further.
    fn unsplittable(&self, window: &Window, verdict: Verdict, page: &Page) -> String {
        let cfg = self.cfg;
        let n = page.records.len();
        let mut cursors = std::collections::BTreeSet::new();
        if let Some(c) = self.cursor_index {
            for r in page.records.iter().take(100_000) {
                if let Ok(row) = cfg.mapper.map(r) {
                    cursors.insert(row[c].to_string());
                }
                if cursors.len() > 1 {
                    break;
                }
            }
        }
        let floor = cfg
            .windows
            .min_window
            .max(self.caps.cursor_granularity.unwrap_or_else(Duration::zero));
        if verdict == Verdict::Ambiguous {
            return format!(
                "stream `{}` window {window}: {n} rows came back (fewer than the requested {}), no page of this stream has returned more, and the window cannot be split below {}s to prove it complete: a query-profile row cap at {n} cannot be ruled out. Set `profile_max_rows` to the query profile's \"Max Rows Fetched\" (or raise that limit above `max_rows`), or declare key prompts (`key_prompts`)",
                cfg.name,
                self.caps.requested_row_cap.map_or_else(|| "cap".into(), |r| r.to_string()),
                floor.num_seconds()
            );
        }
        if cursors.len() == 1 {
            let x = cursors.into_iter().next().unwrap_or_default();
            return format!(
                "{n}+ rows share cursor value {x} in stream `{}` (window {window}); no window split can separate them: raise max_rows above {n} (and the query profile's Max Rows Fetched) or declare key prompts (`key_prompts`) so the rows are paged by key",
                cfg.name
            );
        }
        format!(
            "stream `{}` window {window}: the source still returned a full page ({n} rows, its row cap) in a window that cannot be split below {}s; raise max_rows (and the query profile's Max Rows Fetched) or declare key prompts (`key_prompts`)",
            cfg.name,
            floor.num_seconds()
        )
    }

    fn rejected(&self, p: &Planned, record: Record, errors: Vec<FieldError>) -> RejectedRecord {
        RejectedRecord {
            run_id: self.run_id.clone(),
            pipeline: self.pipeline.name.clone(),
            stream: self.cfg.name.clone(),
            window: p.window,
            rejected_at: self.pipeline.clock.now(),
            record,
            errors,
        }
    }

    /// Stores rejected records; under [`RejectPolicy::FailWindow`] the window then fails.
    async fn store_rejects(
        &self,
        rejects: Vec<RejectedRecord>,
        p: &Planned,
        tally: &mut Tally,
        what: &str,
    ) -> std::result::Result<(), ConnectorError> {
        let cfg = self.cfg;
        tally.rejected += rejects.len() as u64;
        let first = rejects[0]
            .errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        if let Err(e) = self.pipeline.rejects.put(&rejects).await {
            return Err(ConnectorError::transient(format!(
                "could not store {} rejected records: {e}",
                rejects.len()
            )));
        }
        if cfg.on_reject == RejectPolicy::FailWindow {
            return Err(ConnectorError::permanent(format!(
                "stream `{}` window {}: {} record(s) {what} (kept in the reject store); first: {first}",
                cfg.name,
                p.window,
                rejects.len()
            )));
        }
        tracing::warn!(
        target: TARGET,
                   "{} record(s) {what}, quarantined; first: {first}",
                   rejects.len()
               );
        Ok(())
    }

    /// Sends ambiguous duplicates to the reject store, each with its key.
    async fn reject_duplicates(
        &self,
        rows: Vec<Row>,
        p: &Planned,
        tally: &mut Tally,
    ) -> std::result::Result<(), ConnectorError> {
        tally.duplicates += rows.len() as u64;
        let key_cols: Vec<&str> = self
            .key_indexes
            .iter()
            .map(|&i| self.schema.columns[i].name.as_str())
            .collect();
        let rejects = rows
            .into_iter()
            .map(|row| {
                let key = self
                    .key_indexes
                    .iter()
                    .map(|&i| row[i].to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                let record: Record = self
                    .schema
                    .columns
                    .iter()
                    .zip(&row)
                    .filter(|(c, _)| !TableSchema::is_engine_column(&c.name))
                    .map(|(c, v)| {
                        let j = if v.is_null() {
                            serde_json::Value::Null
                        } else {
                            serde_json::Value::String(v.to_string())
                        };
                        (c.name.clone(), j)
                    })
                    .collect();
                let errors = vec![FieldError {
                    column: key_cols.join(", "),
                    field: key_cols.join(", "),
                    value: Some(key),
                    reason: "ambiguous duplicate: another row of this window has the same key and the same cursor but different values (set on_duplicate = \"keep_last\" to keep the last one)".into(),
                }];
                self.rejected(p, record, errors)
            })
            .collect();
        self.store_rejects(rejects, p, tally, "were ambiguous duplicates")
            .await
    }

    /// Appends the row hash and the lineage columns (deleted-at NULL: the row is live).
    fn complete(&self, mut row: Row) -> Row {
        row.reserve_exact(crate::mapper::ROW_EXTRA_CAPACITY);
        row.push(Value::String(row_hash_except(&row, self.hash_skip)));
        row.push(Value::String(self.run_id.clone()));
        row.push(Value::Timestamp(self.loaded_at));
        row.push(Value::String(self.source_identity.clone()));
        row.push(Value::Null);
        row
    }
}
