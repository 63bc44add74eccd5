//! The resumable incremental engine.
//!
//! A [`Pipeline`] moves streams from their [`Source`]s through their [`Mapper`]s into one
//! [`Sink`], window by window, under these rules (see DESIGN.md, "The incremental engine"):
//!
//! 1. **Windows.** Each cycle plans half-open windows `[from, to)`: first every window that
//!    failed before (oldest first), then the gaps between what is committed and
//!    `cycle start − settle_lag`, starting `lookback` before the high-water mark so
//!    late-committed rows are re-read. Windows are at most `max_window` wide; the end is capped
//!    at the cycle's start time.
//! 2. **Truncation is never silent.** A page that hit the source's row cap splits the window in
//!    two, down to `min_window`; past that the window fails with an error naming the stream,
//!    the window and the cap.
//! 3. **Idempotent writes.** Within a batch, rows with the same key are reduced to the one with
//!    the highest cursor. Streams without a natural key are keyed by a hash of the row.
//! 4. **Checkpoint after commit.** A window is committed to the [`CheckpointStore`] only after
//!    the sink confirmed every batch of it.
//! 5. **Failed windows are replayed** first next cycle; after `max_attempts` they are reported
//!    as stuck and stay queued for an explicit [`Pipeline::replay`].
//! 6. **Audit**: one [`AuditEntry`] per window attempt.
//! 7. **Rejects are kept** in the [`RejectStore`], per [`RejectPolicy`].
//! 8. **Lineage** columns on every row.
//! 9. **Bounded memory**: at most one page, one batch being built and `in_flight_batches`
//!    batches queued per stream. Reading the next page overlaps with writing the previous batch.
//! 10. **Graceful stop** through [`StopHandle`]: the in-flight window is abandoned without
//!     advancing the checkpoint.
//!
//! **Effective-dated streams** ([`TableSchema::effective_dating`]): every batch carries the
//! cycle's as-of date ([`Batch::as_of`], the cycle start's date in the declared zone) so the
//! sink re-flags the current row of each entity it touches, and once per local day, before the
//! windows, the engine has the sink recompute the whole table ([`Sink::refresh_current`]) so
//! future-dated rows become current on their date. The date of that sweep is kept in
//! [`StreamState::current_swept_on`]; a failed sweep is reported and retried next cycle. A sink
//! that does not [maintain current flags](Sink::maintains_current_flags) is refused by
//! [`PipelineBuilder::build`] for such streams.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use crate::audit::{AuditEntry, AuditLog, Outcome, RejectStore, RejectedRecord};
use crate::clock::{Clock, SystemClock};
use crate::error::{ConnectorError, Error, FailureKind, Result};
use crate::mapper::{FieldError, Mapper};
use crate::schema::TableSchema;
use crate::sink::{Batch, DeletePolicy, Receipt, Sink};
use crate::source::{Page, Source, SourceCapabilities};
use crate::state::{
    CheckpointStore, FailedWindow, NullCursorCount, PipelineState, RowCapKnowledge, StreamState,
};
use crate::value::{Record, Row, Value};
use crate::window::{Coverage, Window};

mod reconcile;
pub use reconcile::{StreamVerification, VerifyOptions, WindowCheck};

/// How a stream's cursor range is cut into windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowPolicy {
    /// Where the stream's history starts (the first cycle reads from here).
    pub start: DateTime<Utc>,
    /// How far before the high-water mark each cycle re-reads, for late-committed rows.
    #[serde(with = "duration_secs")]
    pub lookback: Duration,
    /// How far behind "now" the newest window ends, so rows still being committed settle.
    #[serde(with = "duration_secs")]
    pub settle_lag: Duration,
    /// Widest window read in one request.
    #[serde(with = "duration_secs")]
    pub max_window: Duration,
    /// Narrowest window truncation may split down to.
    #[serde(with = "duration_secs")]
    pub min_window: Duration,
}

impl WindowPolicy {
    /// Defaults: 1 h lookback, 5 min settle lag, 1-day windows, 1-minute minimum.
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Self {
            start,
            lookback: Duration::hours(1),
            settle_lag: Duration::minutes(5),
            max_window: Duration::days(1),
            min_window: Duration::minutes(1),
        }
    }
}

mod duration_secs {
    use chrono::Duration;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(d.num_seconds())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::seconds(i64::deserialize(d)?))
    }
}

/// What happens to a record that fails mapping or validation. Either way the record is kept
/// in the [`RejectStore`] with the reason per field, and counted in the audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectPolicy {
    /// Fail the window (the default: nothing goes missing from the target unnoticed). The
    /// window is retried next cycle; fix the mapping or the data, then replay.
    #[default]
    FailWindow,
    /// Keep the record aside and load the rest of the window.
    Quarantine,
}

/// What happens to two rows of one batch with the same key **and** the same cursor but
/// different values (a source that returns two versions of one row, e.g. a query that joins
/// to a child record without its full key). The engine cannot tell which is right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuplicatePolicy {
    /// Both rows go to the reject store with reason "ambiguous duplicate" and the key is not
    /// written; the window then follows the stream's [`RejectPolicy`] (default).
    #[default]
    Reject,
    /// Keep the row that came last and log a warning with the keys.
    KeepLast,
}

/// One stream of a pipeline.
#[derive(Clone)]
pub struct StreamConfig {
    /// Stream name (unique in the pipeline).
    pub name: String,
    /// Where records come from.
    pub source: Arc<dyn Source>,
    /// How records become rows.
    pub mapper: Arc<dyn Mapper>,
    /// How the cursor range is cut into windows.
    pub windows: WindowPolicy,
    /// Rows per batch handed to the sink (default 10 000).
    pub batch_size: usize,
    /// Attempts before a failed window is reported as stuck (default 5).
    pub max_attempts: u32,
    /// Reject policy (default [`RejectPolicy::FailWindow`]).
    pub on_reject: RejectPolicy,
    /// Ambiguous-duplicate policy (default [`DuplicatePolicy::Reject`]).
    pub on_duplicate: DuplicatePolicy,
    /// How rows deleted in the source are applied (default [`DeletePolicy::Soft`]).
    pub deletes: DeletePolicy,
    /// When `run_cycle` reconciles this stream (compare by key and hash, re-queue windows that
    /// differ, apply deletes); `None` (default): only on demand, with `verify`.
    pub reconcile: Option<crate::schedule::Schedule>,
}

impl std::fmt::Debug for StreamConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamConfig")
            .field("name", &self.name)
            .field("source", &self.source.identity())
            .field("table", &self.mapper.schema().name)
            .field("windows", &self.windows)
            .field("batch_size", &self.batch_size)
            .field("max_attempts", &self.max_attempts)
            .field("on_reject", &self.on_reject)
            .field("on_duplicate", &self.on_duplicate)
            .field("deletes", &self.deletes)
            .field("reconcile", &self.reconcile)
            .finish()
    }
}

impl StreamConfig {
    /// A stream with default batch size, attempts and reject policy.
    pub fn new(
        name: impl Into<String>,
        source: Arc<dyn Source>,
        mapper: Arc<dyn Mapper>,
        windows: WindowPolicy,
    ) -> Self {
        Self {
            name: name.into(),
            source,
            mapper,
            windows,
            batch_size: 10_000,
            max_attempts: 5,
            on_reject: RejectPolicy::FailWindow,
            on_duplicate: DuplicatePolicy::Reject,
            deletes: DeletePolicy::Soft,
            reconcile: None,
        }
    }

    /// Sets the batch size.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// Sets the attempts before a window is stuck.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Sets the reject policy.
    pub fn on_reject(mut self, p: RejectPolicy) -> Self {
        self.on_reject = p;
        self
    }

    /// Sets the ambiguous-duplicate policy.
    pub fn on_duplicate(mut self, p: DuplicatePolicy) -> Self {
        self.on_duplicate = p;
        self
    }

    /// Sets the delete policy.
    pub fn deletes(mut self, p: DeletePolicy) -> Self {
        self.deletes = p;
        self
    }

    /// Sets the reconciliation schedule.
    pub fn reconcile(mut self, schedule: Option<crate::schedule::Schedule>) -> Self {
        self.reconcile = schedule;
        self
    }
}

/// Signals a running pipeline to stop gracefully. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StopHandle(Arc<watch::Sender<bool>>);

impl Default for StopHandle {
    fn default() -> Self {
        Self(Arc::new(watch::channel(false).0))
    }
}

impl StopHandle {
    /// A handle that has not been triggered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the pipeline to stop: the window being read is abandoned (not checkpointed),
    /// windows already handed to the sink finish.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }

    /// True once [`stop`](Self::stop) was called.
    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once [`stop`](Self::stop) is called.
    pub async fn stopped(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// A progress notification, for printing progress while a cycle runs.
// `StreamFinished` carries the whole report; events are few (a handful per stream and cycle),
// so the size difference costs nothing worth a breaking change to a `Box`.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// A stream planned its windows.
    StreamStarted {
        /// Stream name.
        stream: String,
        /// Windows planned.
        windows: usize,
    },
    /// A window was committed.
    WindowCommitted {
        /// Stream name.
        stream: String,
        /// The window.
        window: Window,
        /// Records read.
        rows_read: u64,
        /// Rows written.
        rows_written: u64,
    },
    /// A window attempt failed.
    WindowFailed {
        /// Stream name.
        stream: String,
        /// The window.
        window: Window,
        /// The error.
        error: String,
    },
    /// A stream finished its cycle.
    StreamFinished(StreamReport),
}

/// Callback receiving [`Progress`] events.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// What a [`StreamHook`] is told about the stream's cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct HookContext {
    /// Pipeline name.
    pub pipeline: String,
    /// Stream name.
    pub stream: String,
    /// The run id.
    pub run_id: String,
    /// Target table.
    pub table: String,
    /// The span of the windows committed in this cycle.
    pub committed: Window,
    /// The stream's report so far.
    pub report: StreamReport,
}

/// Runs after a stream's cycle committed at least one window and had no failure (for example
/// to start a downstream job so dashboards refresh when fresh data lands). The returned
/// annotations are recorded in the audit as an entry with outcome
/// [`Outcome::Hook`]. A hook error is logged and reported on the
/// stream; committed data and checkpoints are not affected.
#[async_trait::async_trait]
pub trait StreamHook: Send + Sync {
    /// Runs the hook.
    async fn after_stream(
        &self,
        ctx: &HookContext,
    ) -> Result<std::collections::BTreeMap<String, String>, ConnectorError>;
}

/// Engine-wide options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineOptions {
    /// Streams run at once (default 4).
    pub max_concurrent_streams: usize,
    /// Batches queued between reader and writer per stream (default 2).
    pub in_flight_batches: usize,
    /// Stop a stream's cycle at its first failed window instead of going on (default false).
    pub stop_stream_on_failure: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            max_concurrent_streams: 4,
            in_flight_batches: 2,
            stop_stream_on_failure: false,
        }
    }
}

/// The outcome of one stream in one cycle.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamReport {
    /// Stream name.
    pub stream: String,
    /// Windows planned at the start of the cycle.
    pub windows_planned: usize,
    /// Windows committed (halves of split windows count on their own).
    pub windows_committed: usize,
    /// Window attempts that failed.
    pub windows_failed: usize,
    /// Windows split because of truncation.
    pub windows_split: usize,
    /// Failed windows past `max_attempts`, still queued.
    pub stuck: Vec<FailedWindow>,
    /// Records read.
    pub rows_read: u64,
    /// Rows written (as confirmed by the sink).
    pub rows_written: u64,
    /// Records rejected.
    pub rows_rejected: u64,
    /// Wall time of the stream's cycle, in milliseconds.
    pub elapsed_ms: u64,
    /// A stream-level error (prepare failed, credentials rejected, state not saved).
    pub error: Option<String>,
    /// True when a stop signal cut the cycle short.
    pub stopped: bool,
    /// A row cap below the requested one, proven this cycle (rows per page).
    #[serde(default)]
    pub row_cap_detected: Option<u64>,
    /// Rows read this cycle whose cursor is NULL (loaded, but unreachable by later windows).
    #[serde(default)]
    pub null_cursor_rows: u64,
    /// Rows set aside as ambiguous duplicates (same key and cursor, different values).
    #[serde(default)]
    pub ambiguous_duplicates: u64,
    /// Set when this cycle ran the stream's scheduled reconciliation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciliation: Option<StreamVerification>,
    /// Target rows deleted (or marked deleted) by this cycle's reconciliation.
    #[serde(default)]
    pub rows_deleted: u64,
    /// The stream's remaining windows were deferred without being attempted (blackout with
    /// `skip`, latched credentials, host unreachable earlier in the cycle): the reason. Not a
    /// failure: nothing is recorded against the windows.
    #[serde(default)]
    pub skipped: Option<String>,
    /// Effective-dated streams: the site-local date as of which this cycle's daily sweep
    /// recomputed every current flag (`None`: no sweep ran this cycle, as one already ran today).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_swept_on: Option<NaiveDate>,
}

impl StreamReport {
    /// True when every planned window committed and nothing is stuck.
    pub fn is_clean(&self) -> bool {
        self.windows_failed == 0 && self.stuck.is_empty() && self.error.is_none()
    }
}

/// The outcome of one cycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CycleReport {
    /// Run id written to lineage columns and audit entries.
    pub run_id: String,
    /// The cycle's start (windows are capped at it).
    pub started_at: DateTime<Utc>,
    /// Per stream, in configuration order.
    pub streams: Vec<StreamReport>,
}

impl CycleReport {
    /// True when every stream is clean.
    pub fn is_clean(&self) -> bool {
        self.streams.iter().all(StreamReport::is_clean)
    }
}

/// Committed coverage, failed and stuck windows of one stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamStatus {
    /// Stream name.
    pub stream: String,
    /// Committed intervals.
    pub committed: Vec<Window>,
    /// Failed windows waiting for replay (stuck ones included).
    pub failed: Vec<FailedWindow>,
    /// Failed windows past `max_attempts`.
    pub stuck: Vec<FailedWindow>,
    /// When a window last committed.
    pub last_commit_at: Option<DateTime<Utc>>,
    /// What the engine learned about the source's unannounced row cap.
    #[serde(default)]
    pub row_cap: RowCapKnowledge,
    /// NULL-cursor rows as last counted (by `verify`).
    #[serde(default)]
    pub null_cursor_rows: Option<NullCursorCount>,
    /// When reconciliation last ran with repairs.
    #[serde(default)]
    pub last_reconciled_at: Option<DateTime<Utc>>,
    /// Target rows deleted (or marked deleted) by reconciliation so far.
    #[serde(default)]
    pub rows_deleted: u64,
    /// The last cycle deferred the stream's windows (e.g. a blackout with `skip`), and why.
    pub skipped: Option<crate::state::Skipped>,
}

/// Which windows a cycle works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    Incremental,
    Replay,
    Range(Window),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Planned {
    window: Window,
    attempt: u32,
}

/// A configured pipeline: streams, one sink, state, audit and rejects.
pub struct Pipeline {
    name: String,
    streams: Vec<StreamConfig>,
    sink: Arc<dyn Sink>,
    store: Arc<dyn CheckpointStore>,
    audit: Arc<dyn AuditLog>,
    rejects: Arc<dyn RejectStore>,
    clock: Arc<dyn Clock>,
    options: EngineOptions,
    stop: StopHandle,
    progress: Option<ProgressFn>,
    hooks: Vec<Arc<dyn StreamHook>>,
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

/// Builds a [`Pipeline`].
pub struct PipelineBuilder {
    name: String,
    sink: Arc<dyn Sink>,
    streams: Vec<StreamConfig>,
    store: Option<Arc<dyn CheckpointStore>>,
    audit: Option<Arc<dyn AuditLog>>,
    rejects: Option<Arc<dyn RejectStore>>,
    clock: Arc<dyn Clock>,
    options: EngineOptions,
    stop: StopHandle,
    progress: Option<ProgressFn>,
    hooks: Vec<Arc<dyn StreamHook>>,
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
    /// [`min_lookback`](SourceCapabilities::min_lookback) is raised to it, with a warning.
    pub fn build(mut self) -> Result<Pipeline> {
        if self.name.trim().is_empty() {
            return Err(Error::Config("pipeline name is empty".into()));
        }
        let mut names = std::collections::HashSet::new();
        for s in &mut self.streams {
            if let Some(min) = s.source.capabilities().min_lookback {
                if s.windows.lookback < min {
                    tracing::warn!(
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
        })
    }
}

enum Msg {
    Begin {
        id: u64,
        planned: Planned,
        started: DateTime<Utc>,
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

struct Open {
    planned: Planned,
    started: DateTime<Utc>,
    receipt: Receipt,
    error: Option<ConnectorError>,
}

/// Counts of one window attempt.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    read: u64,
    rejected: u64,
    null_cursors: u64,
    duplicates: u64,
}

/// What a page proves about its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Every row of the window is in the page.
    Complete,
    /// The page hit a known cap: rows may be missing.
    Truncated,
    /// The page may have been cut by a cap the source does not announce.
    Ambiguous,
}

enum TakeError {
    Closed,
    Failed(ConnectorError),
}

/// A window split because its page was [`Verdict::Ambiguous`]: if its descendants together
/// return more rows than it did, the source capped it at `rows`.
#[derive(Debug)]
struct Probe {
    window: Window,
    rows: u64,
    sum: u64,
}

/// How far a page of `n` rows (with the source's own truncation flag) proves its window
/// complete, given what is known about the source's cap; records `n` as served afterwards.
fn classify(
    caps: &SourceCapabilities,
    know: &mut RowCapKnowledge,
    n: u64,
    truncated: bool,
) -> Verdict {
    let verdict = if truncated {
        Verdict::Truncated
    } else if !caps.silent_row_cap {
        Verdict::Complete
    } else if let Some(k) = caps.declared_row_cap.or(know.detected) {
        if n >= k {
            Verdict::Truncated
        } else {
            Verdict::Complete
        }
    } else if n > 0
        && n >= caps.silent_cap_floor
        && n >= know.largest_page
        && caps.requested_row_cap.is_none_or(|r| know.largest_page < r)
    {
        // No page ever returned more rows than this one: it may have been cut by a cap the
        // source does not announce.
        Verdict::Ambiguous
    } else {
        Verdict::Complete
    };
    know.largest_page = know.largest_page.max(n);
    verdict
}

/// True when both halves of `w` are at least the narrowest width worth reading.
fn can_split(cfg: &StreamConfig, caps: &SourceCapabilities, w: &Window) -> bool {
    let floor = cfg
        .windows
        .min_window
        .max(caps.cursor_granularity.unwrap_or_else(Duration::zero));
    let (a, b) = w.halves();
    a.width() >= floor && b.width() >= floor
}

/// The mapped column whose value the target derives on its own, left out of the row hash:
/// the current flag of an effective-dated table (the sink recomputes it across windows).
pub(crate) fn derived_column(schema: &TableSchema) -> Option<usize> {
    schema
        .effective_dating
        .as_ref()
        .and_then(|ed| schema.index_of(&ed.current_column))
}

/// Adds a finished window's rows (`None`: it failed) to every open probe containing it, and
/// closes the probes it finishes. Returns a cap proven by it.
fn settle_probes(probes: &mut Vec<Probe>, window: Window, rows: Option<u64>) -> Option<u64> {
    let mut detected: Option<u64> = None;
    let inside = |p: &Probe| p.window.from <= window.from && window.to <= p.window.to;
    match rows {
        None => probes.retain(|p| !inside(p)),
        Some(n) => {
            for p in probes.iter_mut().filter(|p| inside(p)) {
                p.sum += n;
                if p.sum > p.rows {
                    detected = Some(detected.map_or(p.rows, |d| d.min(p.rows)));
                }
            }
            probes.retain(|p| !(inside(p) && (p.window.to == window.to || p.sum > p.rows)));
        }
    }
    detected
}

/// Everything one stream's cycle needs, shared by its reader and writer halves.
struct StreamRun<'a> {
    pipeline: &'a Pipeline,
    cfg: &'a StreamConfig,
    schema: TableSchema,
    run_id: String,
    loaded_at: DateTime<Utc>,
    source_identity: String,
    key_indexes: Vec<usize>,
    cursor_index: Option<usize>,
    /// Effective-dated tables: the as-of date of this cycle's current flags.
    as_of: Option<NaiveDate>,
    /// A mapped column the row hash leaves out (see [`derived_column`]).
    hash_skip: Option<usize>,
    halt: AtomicBool,
    caps: SourceCapabilities,
    knowledge: Mutex<RowCapKnowledge>,
}

impl Pipeline {
    /// Starts building a pipeline named `name` writing into `sink`.
    pub fn builder(name: impl Into<String>, sink: Arc<dyn Sink>) -> PipelineBuilder {
        PipelineBuilder {
            name: name.into(),
            sink,
            streams: Vec::new(),
            store: None,
            audit: None,
            rejects: None,
            clock: Arc::new(SystemClock),
            options: EngineOptions::default(),
            stop: StopHandle::new(),
            progress: None,
            hooks: Vec::new(),
        }
    }

    /// The pipeline name.
    pub fn name(&self) -> &str {
        &self.name
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
        Ok(self
            .streams
            .iter()
            .map(|cfg| {
                let st = state.streams.get(&cfg.name).cloned().unwrap_or_default();
                StreamStatus {
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
                }
            })
            .collect())
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

    async fn run(&self, plan: Plan, only: Option<&[String]>) -> Result<CycleReport> {
        let started_at = self.clock.now();
        let run_id = make_run_id(started_at);
        let state = self.store.load(&self.name).await?;
        let selected: Vec<&StreamConfig> = self
            .streams
            .iter()
            .filter(|s| only.is_none_or(|o| o.is_empty() || o.contains(&s.name)))
            .collect();
        let limit = self.options.max_concurrent_streams.max(1);
        let run_id_ref = &run_id;
        let state_ref = &state;
        let mut reports: Vec<(usize, StreamReport)> =
            futures::stream::iter(selected.into_iter().enumerate())
                .map(|(i, cfg)| async move {
                    let r = self
                        .run_stream(cfg, state_ref, plan, run_id_ref, started_at)
                        .await;
                    if let Some(p) = &self.progress {
                        p(&Progress::StreamFinished(r.clone()));
                    }
                    (i, r)
                })
                .buffer_unordered(limit)
                .collect()
                .await;
        reports.sort_by_key(|(i, _)| *i);
        Ok(CycleReport {
            run_id,
            started_at,
            streams: reports.into_iter().map(|(_, r)| r).collect(),
        })
    }

    async fn run_stream(
        &self,
        cfg: &StreamConfig,
        state: &PipelineState,
        plan: Plan,
        run_id: &str,
        cycle_start: DateTime<Utc>,
    ) -> StreamReport {
        let clock_started = Instant::now();
        let mut report = StreamReport {
            stream: cfg.name.clone(),
            ..StreamReport::default()
        };
        let mut st = state.streams.get(&cfg.name).cloned().unwrap_or_default();
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
                    tracing::error!("{}", report.error.as_deref().unwrap_or_default());
                    report.elapsed_ms = clock_started.elapsed().as_millis() as u64;
                    return report;
                }
                prepared = true;
                self.sweep_current(cfg, &schema, as_of, &mut st, &mut report)
                    .await;
            }
        }

        let (planned, stuck) = plan_windows(&st, cfg, cycle_start, plan);
        for s in &stuck {
            tracing::error!(
                stream = %cfg.name,
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
            self.scheduled_reconcile(cfg, &mut st, plan, run_id, cycle_start, &mut report)
                .await;
            report.elapsed_ms = clock_started.elapsed().as_millis() as u64;
            return report;
        }

        if !prepared {
            if let Err(e) = self.sink.prepare(&schema).await {
                report.error = Some(format!(
                    "stream `{}`: preparing table `{}` failed: {}",
                    cfg.name,
                    schema.name,
                    e.full_message()
                ));
                tracing::error!("{}", report.error.as_deref().unwrap_or_default());
                report.elapsed_ms = clock_started.elapsed().as_millis() as u64;
                return report;
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
        };
        let (tx, rx) = mpsc::channel(self.options.in_flight_batches.max(1));
        let mut span: Option<Window> = None;
        let ((), ()) = futures::join!(
            run.read(planned, tx),
            run.write(rx, &mut st, &mut report, &mut span)
        );
        report.stopped = self.stop.is_stopped();
        if let (Some(committed), true) = (span, report.is_clean() && !report.stopped) {
            run.hooks(committed, &mut report).await;
        }
        if !report.stopped && report.error.is_none() {
            self.scheduled_reconcile(cfg, &mut st, plan, run_id, cycle_start, &mut report)
                .await;
        }
        report.elapsed_ms = clock_started.elapsed().as_millis() as u64;
        report
    }

    /// Runs the stream's reconciliation when its schedule is due (incremental cycles only):
    /// re-queues windows that differ and applies confirmed deletes.
    async fn scheduled_reconcile(
        &self,
        cfg: &StreamConfig,
        st: &mut StreamState,
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
        match self.reconcile_stream(cfg, st, &opts, run_id).await {
            Ok(v) => {
                report.rows_deleted += v.deletes_applied;
                report.reconciliation = Some(v);
            }
            Err(e) => {
                let msg = format!(
                    "stream `{}`: scheduled reconciliation failed: {e}",
                    cfg.name
                );
                tracing::error!("{msg}");
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
        report: &mut StreamReport,
    ) {
        match self.sink.refresh_current(schema, as_of).await {
            Ok(receipt) => {
                tracing::info!(
                    stream = %cfg.name,
                    %as_of,
                    statements = ?receipt.statement_ids,
                    "current flags recomputed for the whole table (daily sweep)"
                );
                let mut next = st.clone();
                next.current_swept_on = Some(as_of);
                match self.store.save_stream(&self.name, &cfg.name, &next).await {
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
                tracing::error!("{}", report.error.as_deref().unwrap_or_default());
            }
        }
    }

    fn emit(&self, p: Progress) {
        if let Some(f) = &self.progress {
            f(&p);
        }
    }
}

impl StreamRun<'_> {
    async fn read(&self, planned: Vec<Planned>, tx: mpsc::Sender<Msg>) {
        let cfg = self.cfg;
        let stop = &self.pipeline.stop;
        let mut queue: VecDeque<Planned> = planned.into();
        let mut probes: Vec<Probe> = Vec::new();
        let mut next_id = 0u64;
        while let Some(p) = queue.pop_front() {
            if stop.is_stopped() || self.halt.load(Ordering::SeqCst) {
                break;
            }
            let id = next_id;
            next_id += 1;
            let started = self.pipeline.clock.now();
            if tx
                .send(Msg::Begin {
                    id,
                    planned: p,
                    started,
                })
                .await
                .is_err()
            {
                return;
            }
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
                let mut resume_after = None;
                if verdict != Verdict::Complete {
                    if self.can_split(&p.window) {
                        break End::Split { verdict, rows: n };
                    }
                    if !self.caps.key_paging || n == 0 {
                        break End::Unsplittable { verdict, page };
                    }
                    // Rows tied within the narrowest window: page on by key after this page.
                    resume_after = page.records.last().cloned();
                }
                if let Err(e) = self
                    .take_page(page, &p, &mut batch, id, &mut tally, &tx)
                    .await
                {
                    match e {
                        TakeError::Closed => return,
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
                                return;
                            }
                            continue;
                        }
                    }
                    if !rows.is_empty() && tx.send(Msg::Rows { id, rows }).await.is_err() {
                        return;
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
                            stream = %cfg.name,
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

    fn can_split(&self, w: &Window) -> bool {
        can_split(self.cfg, &self.caps, w)
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
            stream = %cfg.name,
            window = %p.window,
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

    async fn hooks(&self, committed: Window, report: &mut StreamReport) {
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
                    tracing::error!("{msg}");
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

    async fn write(
        &self,
        mut rx: mpsc::Receiver<Msg>,
        st: &mut StreamState,
        report: &mut StreamReport,
        span: &mut Option<Window>,
    ) {
        let p = self.pipeline;
        let cfg = self.cfg;
        let mut open: HashMap<u64, Open> = HashMap::new();
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Begin {
                    id,
                    planned,
                    started,
                } => {
                    open.insert(
                        id,
                        Open {
                            planned,
                            started,
                            receipt: Receipt::default(),
                            error: None,
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
                    match p.sink.write(&self.schema, &batch).await {
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
                    match o.error {
                        Some(e) => {
                            self.failed(
                                st, report, o.planned, o.started, read, rejected, o.receipt, e,
                            )
                            .await
                        }
                        None => {
                            let w = o.planned.window;
                            if self.committed(st, report, o, &tally, cap_detected).await {
                                *span = Some(match *span {
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
                    tracing::info!(
                        stream = %cfg.name,
                        window = %o.planned.window,
                        "{reason}; splitting into {} and {}",
                        halves.0,
                        halves.1
                    );
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
                    self.append_audit(&entry, report).await;
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
                    self.append_audit(&entry, report).await;
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
        if let Err(e) = p.store.save_stream(&p.name, &self.cfg.name, &next).await {
            // The rows are in the sink but the checkpoint did not move: the window is read
            // again next cycle, which is harmless because writes are idempotent.
            let msg = format!("checkpoint not saved after a committed write: {e}");
            tracing::error!(stream = %self.cfg.name, window = %o.planned.window, "{msg}");
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
        report.rows_written += o.receipt.rows_written;
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
            return self.deferred(st, report, planned, error).await;
        }
        report.windows_failed += 1;
        report.rows_written += receipt.rows_written;
        if error.kind() == FailureKind::StopStream {
            report.error = Some(format!("stream `{}` stopped: {message}", cfg.name));
        }
        tracing::warn!(stream = %cfg.name, window = %planned.window, attempt = planned.attempt, "window failed: {message}");
        let mut next = st.clone();
        next.row_cap
            .merge(*self.knowledge.lock().unwrap_or_else(|e| e.into_inner()));
        let f = next.fail(planned.window, &message, p.clock.now()).clone();
        if f.is_stuck(cfg.max_attempts) {
            tracing::error!(
                stream = %cfg.name,
                window = %f.window,
                "window is STUCK after {} attempts: {message}",
                f.attempts
            );
        }
        match p.store.save_stream(&p.name, &cfg.name, &next).await {
            Ok(()) => *st = next,
            Err(e) => {
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
        planned: Planned,
        error: ConnectorError,
    ) {
        // Rows a source read before deferring are not checkpointed: the window is planned
        // again (a gap, a queued failed window, or the next lookback).
        let p = self.pipeline;
        let message = error.message().to_string();
        tracing::info!(stream = %self.cfg.name, window = %planned.window, "window deferred, not attempted: {message}");
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
            match p.store.save_stream(&p.name, &self.cfg.name, &next).await {
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
            tracing::error!(stream = %self.cfg.name, "audit entry not written: {e}");
            report
                .error
                .get_or_insert_with(|| format!("audit entry not written: {e}"));
        }
    }
}

/// Collects rows of a batch, reducing rows with the same key to the one with the highest
/// cursor (a MERGE fails on duplicate source keys).
///
/// Keys are looked up by the 64-bit FNV-1a hash of their canonical form, so a row costs no key
/// allocation; a hash hit is confirmed by comparing canonical forms, and the rare distinct keys
/// whose hash is already taken are kept by full key in `collided`.
struct BatchBuilder<'a> {
    run: &'a StreamRun<'a>,
    rows: Vec<Row>,
    /// Per row: set aside as an ambiguous duplicate.
    ambiguous: Vec<bool>,
    /// Rows set aside as ambiguous duplicates since the last `take`.
    duplicates: Vec<Row>,
    by_hash: HashMap<u64, usize, BuildPassThrough>,
    collided: HashMap<String, usize, BuildFnv>,
    key: String,
    other: String,
}

/// Hasher for keys that already are hashes.
#[derive(Default, Clone, Copy)]
struct BuildPassThrough;

struct PassThrough(u64);

impl std::hash::BuildHasher for BuildPassThrough {
    type Hasher = PassThrough;
    fn build_hasher(&self) -> PassThrough {
        PassThrough(0)
    }
}

impl std::hash::Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

#[cfg(test)]
thread_local! {
    /// Makes every key hash alike, to exercise the collision path.
    static COLLIDE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn fnv64(bytes: &[u8]) -> u64 {
    #[cfg(test)]
    if COLLIDE.with(std::cell::Cell::get) {
        return 7;
    }
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// FNV-1a for the per-batch key map: keys are short and not attacker-chosen in a way that
/// matters (a collision only costs a comparison), so SipHash's cost buys nothing here.
#[derive(Default, Clone, Copy)]
struct BuildFnv;

struct Fnv(u64);

impl std::hash::BuildHasher for BuildFnv {
    type Hasher = Fnv;
    fn build_hasher(&self) -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

impl<'a> BatchBuilder<'a> {
    fn new(run: &'a StreamRun<'a>) -> Self {
        Self {
            run,
            rows: Vec::with_capacity(run.cfg.batch_size.min(65_536)),
            ambiguous: Vec::new(),
            duplicates: Vec::new(),
            by_hash: HashMap::with_capacity_and_hasher(
                run.cfg.batch_size.min(65_536),
                BuildPassThrough,
            ),
            collided: HashMap::with_hasher(BuildFnv),
            key: String::new(),
            other: String::new(),
        }
    }

    /// The index of the row with the key in `self.key`, if there is one; otherwise records
    /// that the key will be at `self.rows.len()`.
    fn find_or_reserve(&mut self) -> Option<usize> {
        let hash = fnv64(self.key.as_bytes());
        let Some(&at) = self.by_hash.get(&hash) else {
            self.by_hash.insert(hash, self.rows.len());
            return None;
        };
        self.other.clear();
        for &i in &self.run.key_indexes {
            self.rows[at][i].write_canonical(&mut self.other);
        }
        if self.other == self.key {
            return Some(at);
        }
        if let Some(&at) = self.collided.get(self.key.as_str()) {
            return Some(at);
        }
        self.collided.insert(self.key.clone(), self.rows.len());
        None
    }

    /// Adds a row; returns a full batch (and the ambiguous duplicates set aside from it)
    /// when `batch_size` is reached.
    fn push(&mut self, row: Row) -> Option<(Vec<Row>, Vec<Row>)> {
        self.key.clear();
        for &i in &self.run.key_indexes {
            row[i].write_canonical(&mut self.key);
        }
        match self.find_or_reserve() {
            Some(at) => {
                let order = match self.run.cursor_index {
                    Some(c) => cursor_cmp(&row[c], &self.rows[at][c]),
                    None => std::cmp::Ordering::Equal,
                };
                match order {
                    std::cmp::Ordering::Greater => {
                        self.rows[at] = row;
                        if let Some(a) = self.ambiguous.get_mut(at) {
                            *a = false;
                        }
                    }
                    std::cmp::Ordering::Less => {}
                    std::cmp::Ordering::Equal => {
                        if row != self.rows[at] && self.run.cursor_index.is_some() {
                            self.ambiguous_duplicate(at, row);
                        } else {
                            self.rows[at] = row;
                        }
                    }
                }
            }
            None => self.rows.push(row),
        }
        (self.rows.len() >= self.run.cfg.batch_size).then(|| self.take())
    }

    /// Same key, same cursor, different values: by policy, keep the last or set both aside.
    fn ambiguous_duplicate(&mut self, at: usize, row: Row) {
        let run = self.run;
        if run.cfg.on_duplicate == DuplicatePolicy::KeepLast {
            tracing::warn!(
                stream = %run.cfg.name,
                key = %self.key,
                "two rows with the same key and cursor but different values; keeping the last (on_duplicate = keep_last)"
            );
            self.rows[at] = row;
            return;
        }
        if self.ambiguous.len() < self.rows.len() {
            self.ambiguous.resize(self.rows.len(), false);
        }
        if !self.ambiguous[at] {
            self.ambiguous[at] = true;
            self.duplicates.push(self.rows[at].clone());
        }
        self.duplicates.push(row);
    }

    fn take(&mut self) -> (Vec<Row>, Vec<Row>) {
        self.by_hash.clear();
        self.collided.clear();
        let cap = self.rows.capacity();
        let mut rows = std::mem::replace(&mut self.rows, Vec::with_capacity(cap));
        if self.ambiguous.iter().any(|a| *a) {
            let mut flags = std::mem::take(&mut self.ambiguous).into_iter();
            rows.retain(|_| !flags.next().unwrap_or(false));
        }
        self.ambiguous.clear();
        (rows, std::mem::take(&mut self.duplicates))
    }
}

fn cursor_cmp(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a.as_cursor(), b.as_cursor()) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Greater,
        (None, Some(_)) => std::cmp::Ordering::Less,
        (None, None) => std::cmp::Ordering::Equal,
    }
}

/// A stable 128-bit hash (two FNV-1a lanes) of a row's canonical form, as 32 hex digits.
/// Stable across runs, platforms and Rust versions, unlike `std`'s hasher.
pub fn row_hash(row: &[Value]) -> String {
    row_hash_except(row, None)
}

/// [`row_hash`] without the column at `skip`: a value the target derives on its own (the
/// current flag of an effective-dated table) must not make a row look changed.
pub(crate) fn row_hash_except(row: &[Value], skip: Option<usize>) -> String {
    let mut text = String::with_capacity(row.len() * 16);
    for (i, v) in row.iter().enumerate() {
        if Some(i) == skip {
            continue;
        }
        v.write_canonical(&mut text);
    }
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x6c62_272e_07bb_0142;
    for &byte in text.as_bytes() {
        a = (a ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        b = (b ^ u64::from(byte))
            .wrapping_mul(0x0000_0100_0000_01b3)
            .rotate_left(5);
    }
    format!("{a:016x}{b:016x}")
}

fn make_run_id(at: DateTime<Utc>) -> String {
    format!(
        "{}-{:06x}",
        at.format("%Y%m%dT%H%M%SZ"),
        fastrand::u32(..0x100_0000)
    )
}

fn plan_windows(
    st: &StreamState,
    cfg: &StreamConfig,
    cycle_start: DateTime<Utc>,
    plan: Plan,
) -> (Vec<Planned>, Vec<FailedWindow>) {
    let policy = &cfg.windows;
    let mut planned = Vec::new();
    let mut stuck = Vec::new();
    let mut failed: Vec<&FailedWindow> = st.failed.iter().collect();
    failed.sort_by_key(|f| f.window);
    match plan {
        Plan::Range(range) => {
            let range = Window {
                from: range.from,
                to: range.to.min(cycle_start),
            };
            if range.from < range.to {
                planned.extend(
                    range
                        .chunks(policy.max_window)
                        .into_iter()
                        .map(|window| Planned { window, attempt: 1 }),
                );
            }
            return (planned, stuck);
        }
        Plan::Replay => {
            planned.extend(failed.iter().map(|f| Planned {
                window: f.window,
                attempt: f.attempts + 1,
            }));
            return (planned, stuck);
        }
        Plan::Incremental => {}
    }
    for f in &failed {
        if f.is_stuck(cfg.max_attempts) {
            stuck.push((*f).clone());
        } else {
            planned.push(Planned {
                window: f.window,
                attempt: f.attempts + 1,
            });
        }
    }
    let cap = cycle_start - policy.settle_lag;
    if cap <= policy.start {
        return (planned, stuck);
    }
    let resume = match st.committed.high_water_mark() {
        Some(h) => (h - policy.lookback).max(policy.start).min(cap),
        None => policy.start,
    };
    let mut ranges = Vec::new();
    if policy.start < resume {
        ranges.extend(st.committed.gaps(Window::new(policy.start, resume)));
    }
    if resume < cap {
        ranges.push(Window::new(resume, cap));
    }
    // Queued failed windows (stuck ones too) are not read again as part of a new range.
    let mut queued = Coverage::new();
    for f in &failed {
        queued.insert(f.window);
    }
    for r in ranges {
        for gap in queued.gaps(r) {
            planned.extend(
                gap.chunks(policy.max_window)
                    .into_iter()
                    .map(|window| Planned { window, attempt: 1 }),
            );
        }
    }
    (planned, stuck)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::hours(h)
    }

    #[test]
    fn row_hash_is_stable_and_sensitive() {
        let a = vec![Value::String("x".into()), Value::BigInt(1)];
        let b = vec![Value::String("x".into()), Value::BigInt(2)];
        assert_eq!(row_hash(&a), row_hash(&a.clone()));
        assert_ne!(row_hash(&a), row_hash(&b));
        assert_eq!(row_hash(&a).len(), 32);
        // Pinned: the hash is part of the stored data and must never change.
        assert_eq!(
            row_hash(&[]),
            "cbf29ce484222325".to_string() + "6c62272e07bb0142"
        );
    }

    /// Keeps every batch as the engine handed it over.
    #[derive(Default)]
    struct Capture(std::sync::Mutex<Vec<Vec<Row>>>);

    #[async_trait::async_trait]
    impl Sink for Capture {
        async fn prepare(&self, _: &TableSchema) -> std::result::Result<(), ConnectorError> {
            Ok(())
        }
        async fn write(
            &self,
            _: &TableSchema,
            batch: &Batch,
        ) -> std::result::Result<Receipt, ConnectorError> {
            self.0.lock().unwrap().push(batch.rows.clone());
            Ok(Receipt {
                rows_written: batch.rows.len() as u64,
                ..Receipt::default()
            })
        }
    }

    async fn dedup_batch() -> Vec<(String, String)> {
        use crate::memory::MemorySource;
        let source = MemorySource::new("s");
        for (key, minute, note) in [
            ("a", 1, "a1"),
            ("b", 5, "b5"),
            ("a", 3, "a3"),
            ("c", 2, "c2"),
            ("b", 4, "b4"),
            ("a", 2, "a2"),
        ] {
            let at = t(0) + Duration::minutes(minute);
            let record = serde_json::json!({"ID": key, "NOTE": note, "TS": at.to_rfc3339()});
            source.push(at, record.as_object().unwrap().clone());
        }
        let mapping: crate::Mapping = serde_json::from_value(serde_json::json!({
            "table": "t", "primary_key": ["id"], "cursor_column": "ts",
            "columns": [
                {"column": "id", "source": "ID", "type": "STRING", "nullable": false},
                {"column": "note", "source": "NOTE", "type": "STRING"},
                {"column": "ts", "source": "TS", "type": "TIMESTAMP"}
            ]
        }))
        .unwrap();
        let sink = Arc::new(Capture::default());
        let pipeline = Pipeline::builder("p", sink.clone())
            .stream(StreamConfig::new(
                "s",
                Arc::new(source),
                Arc::new(mapping.compile().unwrap()),
                WindowPolicy::starting_at(t(0)),
            ))
            .checkpoints(Arc::new(crate::state::MemoryCheckpointStore::new()))
            .audit(Arc::new(crate::audit::MemoryAuditLog::new()))
            .rejects(Arc::new(crate::audit::MemoryRejectStore::new()))
            .clock(Arc::new(crate::ManualClock::new(t(2))))
            .build()
            .unwrap();
        assert!(pipeline.run_cycle().await.unwrap().is_clean());
        let batches = sink.0.lock().unwrap().clone();
        batches
            .into_iter()
            .flatten()
            .map(|r| (r[0].to_string(), r[1].to_string()))
            .collect()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn duplicate_keys_keep_the_newest_row_even_when_hashes_collide() {
        // The source hands rows over in cursor order: a1 a2 c2 a3 b4 b5.
        let want: Vec<(String, String)> = [("a", "a3"), ("c", "c2"), ("b", "b5")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(dedup_batch().await, want);
        COLLIDE.with(|c| c.set(true));
        let collided = dedup_batch().await;
        COLLIDE.with(|c| c.set(false));
        assert_eq!(collided, want);
    }

    #[test]
    fn run_ids_sort_by_time() {
        assert!(make_run_id(t(1)) < make_run_id(t(2)));
    }
}
