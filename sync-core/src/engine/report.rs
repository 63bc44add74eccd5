//! What a cycle reports and what `status` shows.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::reconcile::StreamVerification;
use crate::sink::Receipt;
use crate::state::{FailedWindow, NullCursorCount, RowCapKnowledge};
use crate::window::Window;

/// The outcome of one stream in one cycle.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
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
    /// Data statements the sink reported for this cycle's windows ([`Receipt::statements`]).
    #[serde(default)]
    pub statements: u64,
    /// Bytes of statement text the sink reported ([`Receipt::sql_bytes`]).
    #[serde(default)]
    pub sql_bytes: u64,
    /// Files the sink staged for bulk loads ([`Receipt::files_staged`]).
    #[serde(default)]
    pub files_staged: u64,
    /// Bytes of those files ([`Receipt::bytes_staged`]).
    #[serde(default)]
    pub bytes_staged: u64,
}

impl StreamReport {
    /// Adds a sink receipt's rows and activity counters to the report.
    pub(crate) fn absorb_receipt(&mut self, receipt: &Receipt) {
        self.rows_written += receipt.rows_written;
        self.statements += receipt.statements;
        self.sql_bytes += receipt.sql_bytes;
        self.files_staged += receipt.files_staged;
        self.bytes_staged += receipt.bytes_staged;
    }

    /// True when every planned window committed and nothing is stuck.
    pub fn is_clean(&self) -> bool {
        self.windows_failed == 0 && self.stuck.is_empty() && self.error.is_none()
    }
}

/// The outcome of one cycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
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
#[non_exhaustive]
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
    /// The stream's lease as the store last granted it (several workers on one store): held
    /// by [`owner`](crate::state::Lease::owner) while `expires_at` is ahead. `None` for
    /// stores without leases.
    #[serde(skip)]
    pub lease: Option<crate::state::Lease>,
}
