//! Building a [`Pipeline`].

use std::path::Path;
use std::sync::Arc;

use chrono::Duration;

use super::config::{EngineOptions, StreamConfig};
use super::pipeline::Pipeline;
use super::progress::{Progress, ProgressFn, StreamHook};
use super::stop::StopHandle;
use super::TARGET;
use crate::audit::{AuditLog, JsonlAuditLog, JsonlRejectStore, RejectStore};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::sink::Sink;
use crate::state::{CheckpointStore, FileCheckpointStore};

/// Builds a [`Pipeline`].
pub struct PipelineBuilder {
    pub(super) name: String,
    pub(super) sink: Arc<dyn Sink>,
    pub(super) streams: Vec<StreamConfig>,
    pub(super) store: Option<Arc<dyn CheckpointStore>>,
    pub(super) audit: Option<Arc<dyn AuditLog>>,
    pub(super) rejects: Option<Arc<dyn RejectStore>>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) options: EngineOptions,
    pub(super) stop: StopHandle,
    pub(super) progress: Option<ProgressFn>,
    pub(super) hooks: Vec<Arc<dyn StreamHook>>,
    pub(super) worker: Option<String>,
    /// An error of a setter that can fail ([`state_dir`](Self::state_dir)), returned by
    /// [`build`](Self::build).
    pub(super) deferred_error: Option<Error>,
}

impl PipelineBuilder {
    /// Adds a hook run after each stream's successful cycle.
    pub fn after_stream(mut self, hook: Arc<dyn StreamHook>) -> Self {
        self.hooks.push(hook);
        self
    }

    /// Adds a stream.
    pub fn stream(mut self, s: StreamConfig) -> Self {
        self.streams.push(s);
        self
    }

    /// Sets the checkpoint store (required).
    pub fn checkpoints(mut self, store: Arc<dyn CheckpointStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Sets the audit log (required).
    pub fn audit(mut self, audit: Arc<dyn AuditLog>) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Keeps the pipeline's state in files in `dir` (created if missing): checkpoints
    /// ([`FileCheckpointStore`]: `<pipeline>.state.json`, locked against a second process),
    /// the audit log (`audit.jsonl`) and the reject store (`rejects.jsonl`). Sets all three at
    /// once, as the CLI lays them out; a later [`checkpoints`](Self::checkpoints),
    /// [`audit`](Self::audit) or [`rejects`](Self::rejects) replaces one of them. An error
    /// creating the directory is returned by [`build`](Self::build).
    pub fn state_dir(mut self, dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        match FileCheckpointStore::open(dir) {
            Ok(store) => {
                self.store = Some(Arc::new(store));
                self.audit = Some(Arc::new(JsonlAuditLog::new(dir.join("audit.jsonl"))));
                self.rejects = Some(Arc::new(JsonlRejectStore::new(dir.join("rejects.jsonl"))));
            }
            Err(e) => self.deferred_error = Some(e),
        }
        self
    }

    /// Sets the reject store (required).
    pub fn rejects(mut self, rejects: Arc<dyn RejectStore>) -> Self {
        self.rejects = Some(rejects);
        self
    }

    /// Replaces the wall clock (tests and simulations).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Names this worker in stream leases (default: host name and process id). Each process
    /// sharing a pipeline's state needs its own name; a restarted worker with the same name
    /// takes its streams back at once instead of waiting for the leases to expire.
    pub fn worker(mut self, id: impl Into<String>) -> Self {
        self.worker = Some(id.into());
        self
    }

    /// Sets engine options.
    pub fn options(mut self, options: EngineOptions) -> Self {
        self.options = options;
        self
    }

    /// Uses `stop` as the pipeline's stop signal.
    pub fn stop_handle(mut self, stop: StopHandle) -> Self {
        self.stop = stop;
        self
    }

    /// Receives progress events.
    pub fn on_progress(mut self, f: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    /// Validates and builds. Errors name the missing piece or the offending stream.
    ///
    /// Checks every stream: unique names, window widths, key and cursor columns, and that a
    /// stream without a primary key says it appends ([`WriteMode::Append`](crate::WriteMode)).
    /// A lookback shorter than the source's
    /// [`min_lookback`](crate::source::SourceCapabilities::min_lookback) is raised to it, with a warning.
    pub fn build(mut self) -> Result<Pipeline> {
        if let Some(e) = self.deferred_error.take() {
            return Err(e);
        }
        if self.name.trim().is_empty() {
            return Err(Error::Config("pipeline name is empty".into()));
        }
        let mut names = std::collections::HashSet::new();
        for s in &mut self.streams {
            if let Some(min) = s.source.capabilities().min_lookback {
                if s.windows.lookback < min {
                    tracing::warn!(
                    target: TARGET,
                                           stream = %s.name,
                                           "lookback {}s raised to {}s: the source's cursor is coarse (dates in the site's calendar), so a shorter lookback could skip rows changed late on the last day read; set `lookback` to at least this to silence this warning",
                                           s.windows.lookback.num_seconds(),
                                           min.num_seconds()
                                       );
                    s.windows.lookback = min;
                }
            }
            if !names.insert(s.name.clone()) {
                return Err(Error::Config(format!(
                    "stream `{}` is defined twice",
                    s.name
                )));
            }
            let w = &s.windows;
            if w.max_window <= Duration::zero() || w.min_window <= Duration::zero() {
                return Err(Error::Config(format!(
                    "stream `{}`: max_window and min_window must be positive",
                    s.name
                )));
            }
            if w.min_window > w.max_window {
                return Err(Error::Config(format!(
                    "stream `{}`: min_window is wider than max_window",
                    s.name
                )));
            }
            if w.lookback < Duration::zero() || w.settle_lag < Duration::zero() {
                return Err(Error::Config(format!(
                    "stream `{}`: lookback and settle_lag must not be negative",
                    s.name
                )));
            }
            let own = s.mapper.schema();
            if own.primary_key.is_empty() && own.write_mode != crate::WriteMode::Append {
                return Err(Error::Config(format!(
                    "stream `{}` has no primary key: without one every changed row would be added again instead of updated. Declare the key (`key` / `primary_key`), or set `write_mode = \"append\"` for an immutable event stream (rows are then keyed by a hash of their values, so re-read rows are not duplicated)",
                    s.name
                )));
            }
            if !own.primary_key.is_empty()
                && own.write_mode == crate::WriteMode::Append
                && s.windows.lookback > Duration::zero()
            {
                return Err(Error::Config(format!(
                    "stream `{}` appends rows by its key (write_mode = \"append\") and re-reads a lookback of {}s: every re-read row would be stored again. Use write_mode = \"upsert\" (the default) with the key, or append without a key (rows are then keyed by a hash of their values)",
                    s.name,
                    s.windows.lookback.num_seconds()
                )));
            }
            let schema = own.with_lineage();
            schema
                .key_indexes()
                .map_err(|e| Error::Config(format!("stream `{}`: {e}", s.name)))?;
            if let Some(ed) = &schema.effective_dating {
                ed.validate(&schema)
                    .map_err(|e| Error::Config(format!("stream `{}`: {e}", s.name)))?;
                // Per-window flags alone go stale: a newer row read in a later window would
                // leave the older row current too. Refuse rather than load wrong flags.
                if !self.sink.maintains_current_flags() {
                    return Err(Error::Config(format!(
                        "stream `{}` writes the effective-dated table `{}`, but the sink does not maintain current flags (`Sink::maintains_current_flags`), so `{}` would go stale across windows. Use a sink that does (SqliteSink, DatabricksSink), or remove `effective_dating` from the mapping to load the flags as the source computed them",
                        s.name, schema.name, ed.current_column
                    )));
                }
            }
            if let Some(c) = &schema.cursor_column {
                if schema.index_of(c).is_none() {
                    return Err(Error::Config(format!(
                        "stream `{}`: cursor column `{c}` is not a column of table `{}`",
                        s.name, schema.name
                    )));
                }
            }
        }
        if self.options.lease_ttl <= Duration::zero() {
            return Err(Error::Config(format!(
                "pipeline `{}`: lease_ttl must be positive",
                self.name
            )));
        }
        let missing = |what: &str| Error::Config(format!("pipeline `{}` has no {what}", self.name));
        Ok(Pipeline {
            store: self.store.ok_or_else(|| missing("checkpoint store"))?,
            audit: self.audit.ok_or_else(|| missing("audit log"))?,
            rejects: self.rejects.ok_or_else(|| missing("reject store"))?,
            name: self.name,
            streams: self.streams,
            sink: self.sink,
            clock: self.clock,
            options: self.options,
            stop: self.stop,
            progress: self.progress,
            hooks: self.hooks,
            worker: self
                .worker
                .filter(|w| !w.trim().is_empty())
                .unwrap_or_else(super::lease::default_worker_id),
        })
    }
}
