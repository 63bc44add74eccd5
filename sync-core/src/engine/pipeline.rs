//! A configured [`Pipeline`] and what callers do with it.

use std::sync::Arc;

use super::builder::PipelineBuilder;
use super::config::{EngineOptions, StreamConfig};
use super::plan::Plan;
use super::progress::{Progress, ProgressFn, StreamHook};
use super::reconcile::{StreamVerification, VerifyOptions};
use super::report::{CycleReport, StreamStatus};
use super::stop::StopHandle;
use crate::audit::{AuditLog, RejectStore};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::sink::Sink;
use crate::state::CheckpointStore;
use crate::window::Window;

/// A configured pipeline: streams, one sink, state, audit and rejects.
pub struct Pipeline {
    pub(super) name: String,
    pub(super) streams: Vec<StreamConfig>,
    pub(super) sink: Arc<dyn Sink>,
    pub(super) store: Arc<dyn CheckpointStore>,
    pub(super) audit: Arc<dyn AuditLog>,
    pub(super) rejects: Arc<dyn RejectStore>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) options: EngineOptions,
    pub(super) stop: StopHandle,
    pub(super) progress: Option<ProgressFn>,
    pub(super) hooks: Vec<Arc<dyn StreamHook>>,
    pub(super) worker: String,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("name", &self.name)
            .field("streams", &self.streams)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// Starts building a pipeline named `name` writing into `sink`.
    ///
    /// `sink` is any [`Sink`]: a value the pipeline owns, or an `Arc` (including
    /// `Arc<dyn Sink>`) the caller keeps to look at the destination.
    pub fn builder(name: impl Into<String>, sink: impl Sink + 'static) -> PipelineBuilder {
        PipelineBuilder {
            name: name.into(),
            sink: Arc::new(sink),
            deferred_error: None,
            streams: Vec::new(),
            store: None,
            audit: None,
            rejects: None,
            clock: Arc::new(SystemClock),
            options: EngineOptions::default(),
            stop: StopHandle::new(),
            progress: None,
            hooks: Vec::new(),
            worker: None,
        }
    }

    /// The pipeline name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The worker id this pipeline takes stream leases under.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// The configured streams.
    pub fn streams(&self) -> &[StreamConfig] {
        &self.streams
    }

    /// The stop handle; call [`StopHandle::stop`] from a signal handler.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Runs one incremental cycle of every stream.
    pub async fn run_cycle(&self) -> Result<CycleReport> {
        self.run(Plan::Incremental, None).await
    }

    /// Retries every queued failed window now, stuck ones included.
    pub async fn replay(&self) -> Result<CycleReport> {
        self.run(Plan::Replay, None).await
    }

    /// Reloads `range` for the named streams (all when `streams` is empty), whatever is
    /// committed.
    pub async fn backfill(&self, streams: &[String], range: Window) -> Result<CycleReport> {
        for s in streams {
            if !self.streams.iter().any(|c| &c.name == s) {
                return Err(Error::Config(format!("no stream named `{s}`")));
            }
        }
        self.run(Plan::Range(range), Some(streams)).await
    }

    /// Committed coverage and failed windows of every stream.
    pub async fn status(&self) -> Result<Vec<StreamStatus>> {
        let state = self.store.load(&self.name).await?;
        let mut out = Vec::with_capacity(self.streams.len());
        for cfg in &self.streams {
            let st = state.streams.get(&cfg.name).cloned().unwrap_or_default();
            out.push(StreamStatus {
                stream: cfg.name.clone(),
                committed: st.committed.intervals().to_vec(),
                stuck: st
                    .failed
                    .iter()
                    .filter(|f| f.is_stuck(cfg.max_attempts))
                    .cloned()
                    .collect(),
                failed: st.failed,
                last_commit_at: st.last_commit_at,
                row_cap: st.row_cap,
                null_cursor_rows: st.null_cursor_rows,
                last_reconciled_at: st.last_reconciled_at,
                rows_deleted: st.rows_deleted,
                skipped: st.skipped,
                lease: self.store.current_lease(&self.name, &cfg.name).await?,
            });
        }
        Ok(out)
    }

    /// Reconciliation of every stream with default [`VerifyOptions`] and `requeue`: see
    /// [`verify_with`](Self::verify_with).
    pub async fn verify(&self, requeue: bool) -> Result<Vec<StreamVerification>> {
        self.verify_with(&VerifyOptions {
            requeue,
            ..VerifyOptions::default()
        })
        .await
    }

    pub(super) fn emit(&self, p: Progress) {
        if let Some(f) = &self.progress {
            f(&p);
        }
    }
}
