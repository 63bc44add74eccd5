//! Progress events and after-stream hooks.

use std::sync::Arc;

use crate::error::ConnectorError;
use crate::window::Window;

use super::report::StreamReport;

/// A progress notification, for printing progress while a cycle runs.
// `StreamFinished` carries the whole report; events are few (a handful per stream and cycle),
// so the size difference costs nothing worth a breaking change to a `Box`.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
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
#[non_exhaustive]
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

impl HookContext {
    /// The context of a hook run after `stream` of `pipeline` committed `committed` into
    /// `table` (for calling a hook outside the engine, e.g. in tests); the report is empty
    /// but for the stream name.
    pub fn new(
        pipeline: impl Into<String>,
        stream: impl Into<String>,
        run_id: impl Into<String>,
        table: impl Into<String>,
        committed: Window,
    ) -> Self {
        let stream = stream.into();
        Self {
            pipeline: pipeline.into(),
            report: StreamReport {
                stream: stream.clone(),
                ..StreamReport::default()
            },
            stream,
            run_id: run_id.into(),
            table: table.into(),
            committed,
        }
    }
}

/// Runs after a stream's cycle committed at least one window and had no failure (for example
/// to start a downstream job so dashboards refresh when fresh data lands). The returned
/// annotations are recorded in the audit as an entry with outcome
/// [`Outcome::Hook`](crate::audit::Outcome::Hook). A hook error is logged and reported on the
/// stream; committed data and checkpoints are not affected.
#[async_trait::async_trait]
pub trait StreamHook: Send + Sync {
    /// Runs the hook.
    async fn after_stream(
        &self,
        ctx: &HookContext,
    ) -> Result<std::collections::BTreeMap<String, String>, ConnectorError>;
}
