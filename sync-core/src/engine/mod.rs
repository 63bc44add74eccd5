//! The resumable incremental engine.
//!
//! A [`Pipeline`] moves streams from their [`Source`](crate::Source)s through their [`Mapper`](crate::Mapper)s into one
//! [`Sink`](crate::Sink), window by window, under these rules (see DESIGN.md, "The incremental engine"):
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
//! 4. **Checkpoint after commit.** A window is committed to the [`CheckpointStore`](crate::state::CheckpointStore) only after
//!    the sink confirmed every batch of it.
//! 5. **Failed windows are replayed** first next cycle; after `max_attempts` they are reported
//!    as stuck and stay queued for an explicit [`Pipeline::replay`].
//! 6. **Audit**: one [`AuditEntry`](crate::audit::AuditEntry) per window attempt.
//! 7. **Rejects are kept** in the [`RejectStore`](crate::audit::RejectStore), per [`RejectPolicy`].
//! 8. **Lineage** columns on every row.
//! 9. **Bounded memory**: at most one page, one batch being built and `in_flight_batches`
//!    batches queued per stream. Reading the next page overlaps with writing the previous batch.
//! 10. **Graceful stop** through [`StopHandle`]: the in-flight window is abandoned without
//!     advancing the checkpoint.
//!
//! **Leases.** Before reading a stream's state the engine takes the stream's
//! [`Lease`](crate::state::Lease) from the [`CheckpointStore`](crate::state::CheckpointStore)
//! for this worker ([`PipelineBuilder::worker`]); a stream another worker holds is skipped with
//! the reason in [`StreamReport::skipped`] (not a failure). The lease is renewed between
//! windows and before each state write, every write is fenced by it, and a lost lease stops
//! the stream loudly without writing state. It is released when the stream's cycle ends.
//!
//! **Effective-dated streams** ([`TableSchema::effective_dating`](crate::TableSchema::effective_dating)): every batch carries the
//! cycle's as-of date ([`Batch::as_of`](crate::Batch::as_of), the cycle start's date in the declared zone) so the
//! sink re-flags the current row of each entity it touches, and once per local day, before the
//! windows, the engine has the sink recompute the whole table ([`Sink::refresh_current`](crate::Sink::refresh_current)) so
//! future-dated rows become current on their date. The date of that sweep is kept in
//! [`StreamState::current_swept_on`](crate::state::StreamState::current_swept_on); a failed sweep is reported and retried next cycle. A sink
//! that does not [maintain current flags](crate::Sink::maintains_current_flags) is refused by
//! [`PipelineBuilder::build`] for such streams.
//!
//! ## Tracing
//!
//! A cycle runs in a `pipeline` span (fields `run_id`, `pipeline`), each stream in a `stream`
//! span (`stream`) inside it, and each window attempt in a `window` span (`window` as
//! `[from, to)`, `attempt`) inside that, so events carry their context without repeating it.
//! The spans and the engine's events use the target [`TARGET`] (`ml_connector::engine`), so
//! the filter `RUST_LOG=warn,ml_connector=info` shows the tree with the engine's progress
//! (one line per committed window and per finished stream) and only warnings from elsewhere.

mod batch;
mod builder;
mod config;
mod hash;
mod lease;
mod pipeline;
mod plan;
mod progress;
mod read;
mod reconcile;
mod report;
mod run;
mod stop;
mod truncation;
mod write;

pub use builder::PipelineBuilder;
pub use config::{DuplicatePolicy, EngineOptions, RejectPolicy, StreamConfig, WindowPolicy};
pub use hash::{row_hash, row_hash_matches};
pub use pipeline::Pipeline;
pub use progress::{HookContext, Progress, ProgressFn, StreamHook};
pub use reconcile::{StreamVerification, VerifyOptions, WindowCheck};
pub use report::{CycleReport, StreamReport, StreamStatus};
pub use stop::StopHandle;

/// The `tracing` target of the engine's spans and events: `ml_connector::engine`, so that
/// `RUST_LOG=ml_connector=info` (the CLI's crate) shows them, whatever crate runs the engine.
pub const TARGET: &str = "ml_connector::engine";
