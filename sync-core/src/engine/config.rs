//! What a stream and the engine are configured with: windows, reject, duplicate and delete
//! policies, engine-wide options.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::mapper::Mapper;
use crate::sink::DeletePolicy;
use crate::source::Source;

/// How a stream's cursor range is cut into windows.
///
/// Built with [`starting_at`](Self::starting_at) and the setters:
///
/// ```
/// # use chrono::{Duration, TimeZone, Utc};
/// # use sync_core::engine::WindowPolicy;
/// let policy = WindowPolicy::starting_at(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap())
///     .lookback(Duration::hours(2))
///     .max_window(Duration::hours(6));
/// assert_eq!(policy.settle_lag, Duration::minutes(5));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
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

    /// Sets where the stream's history starts.
    pub fn start(mut self, start: DateTime<Utc>) -> Self {
        self.start = start;
        self
    }

    /// Sets how far before the high-water mark each cycle re-reads.
    pub fn lookback(mut self, d: Duration) -> Self {
        self.lookback = d;
        self
    }

    /// Sets how far behind the cycle's start the newest window ends.
    pub fn settle_lag(mut self, d: Duration) -> Self {
        self.settle_lag = d;
        self
    }

    /// Sets the widest window read in one request.
    pub fn max_window(mut self, d: Duration) -> Self {
        self.max_window = d;
        self
    }

    /// Sets the narrowest window truncation may split down to.
    pub fn min_window(mut self, d: Duration) -> Self {
        self.min_window = d;
        self
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
/// in the [`RejectStore`](crate::audit::RejectStore) with the reason per field, and counted in the audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
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
#[non_exhaustive]
pub enum DuplicatePolicy {
    /// Both rows go to the reject store with reason "ambiguous duplicate" and the key is not
    /// written; the window then follows the stream's [`RejectPolicy`] (default).
    #[default]
    Reject,
    /// Keep the row that came last and log a warning with the keys.
    KeepLast,
}

/// One stream of a pipeline: built with [`new`](Self::new) and the setters.
#[derive(Clone)]
#[non_exhaustive]
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
    ///
    /// `source` and `mapper` are any [`Source`] and [`Mapper`]: values the stream owns, or
    /// `Arc`s (including `Arc<dyn Source>` / `Arc<dyn Mapper>`) shared with the caller.
    pub fn new(
        name: impl Into<String>,
        source: impl Source + 'static,
        mapper: impl Mapper + 'static,
        windows: WindowPolicy,
    ) -> Self {
        Self {
            name: name.into(),
            source: Arc::new(source),
            mapper: Arc::new(mapper),
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

/// Engine-wide options: [`default`](Self::default) and the setters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EngineOptions {
    /// Streams run at once (default 4).
    pub max_concurrent_streams: usize,
    /// Batches queued between reader and writer per stream (default 2).
    pub in_flight_batches: usize,
    /// Stop a stream's cycle at its first failed window instead of going on (default false).
    pub stop_stream_on_failure: bool,
    /// How long a stream's lease lasts unless renewed (default 5 minutes). The engine renews
    /// it once a third has passed, between windows and before state writes; it must exceed
    /// the longest gap between two of those (a slow page, a long batch) plus the clock skew
    /// between workers. A crashed worker's streams are taken over after this long.
    pub lease_ttl: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            max_concurrent_streams: 4,
            in_flight_batches: 2,
            stop_stream_on_failure: false,
            lease_ttl: super::lease::DEFAULT_LEASE_TTL,
        }
    }
}

impl EngineOptions {
    /// Sets how many streams run at once.
    pub fn max_concurrent_streams(mut self, n: usize) -> Self {
        self.max_concurrent_streams = n.max(1);
        self
    }

    /// Sets how many batches are queued between reader and writer per stream.
    pub fn in_flight_batches(mut self, n: usize) -> Self {
        self.in_flight_batches = n.max(1);
        self
    }

    /// Sets whether a stream's cycle stops at its first failed window.
    pub fn stop_stream_on_failure(mut self, yes: bool) -> Self {
        self.stop_stream_on_failure = yes;
        self
    }

    /// Sets how long a stream's lease lasts unless renewed ([`lease_ttl`](Self::lease_ttl)).
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }
}
