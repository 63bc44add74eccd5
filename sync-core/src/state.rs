//! Checkpoint state: committed cursor intervals and the failed-window queue per
//! (pipeline, stream), and the stores that keep it.
//!
//! State advances only after the sink has confirmed every batch of a window (the engine's
//! rule); the stores here make that durable. The on-disk format is versioned
//! ([`STATE_FORMAT_VERSION`]); a state file that cannot be read is an error naming the file,
//! never a silent restart from zero.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::window::{Coverage, Window};

/// Version of the serialized [`PipelineState`] this build reads and writes.
pub const STATE_FORMAT_VERSION: u32 = 1;

/// A window that failed and waits to be retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FailedWindow {
    /// The window.
    pub window: Window,
    /// Attempts made so far.
    pub attempts: u32,
    /// The last error message.
    pub last_error: String,
    /// When it first failed.
    pub first_failed_at: DateTime<Utc>,
    /// When it last failed.
    pub last_failed_at: DateTime<Utc>,
}

impl FailedWindow {
    /// True once `attempts` reached `max_attempts`: reported loudly, kept in the queue, and
    /// retried only by an explicit replay.
    pub fn is_stuck(&self, max_attempts: u32) -> bool {
        self.attempts >= max_attempts
    }
}

/// A cycle in which a stream's windows were deferred without being attempted (for example a
/// blackout window with the `skip` action). Not a failure: no attempt is counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Skipped {
    /// Why (the source's message).
    pub reason: String,
    /// When the reason ends, when known (a blackout window's end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// When the windows were skipped.
    pub at: DateTime<Utc>,
}

/// The state of one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StreamState {
    /// Cursor intervals committed to the sink.
    #[serde(default)]
    pub committed: Coverage,
    /// Windows that failed, sorted by start.
    #[serde(default)]
    pub failed: Vec<FailedWindow>,
    /// When a window of this stream last committed.
    #[serde(default)]
    pub last_commit_at: Option<DateTime<Utc>>,
    /// What the engine learned about the source's unannounced row cap.
    #[serde(default, skip_serializing_if = "RowCapKnowledge::is_empty")]
    pub row_cap: RowCapKnowledge,
    /// Rows seen with a NULL cursor (unreachable by cursor windows), as last counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub null_cursor_rows: Option<NullCursorCount>,
    /// When reconciliation last ran with repairs (scheduled, or `verify --requeue`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reconciled_at: Option<DateTime<Utc>>,
    /// Target rows deleted (or marked deleted) by reconciliation so far.
    #[serde(default)]
    pub rows_deleted: u64,
    /// The last cycle's windows were deferred, not attempted (cleared by the next commit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<Skipped>,
    /// For effective-dated streams: the site-local date of the last successful sweep that
    /// recomputed every current flag (the engine sweeps once per local day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_swept_on: Option<chrono::NaiveDate>,
}

/// What is known about a source's row cap below the cap it asks for (see
/// [`SourceCapabilities::silent_row_cap`](crate::SourceCapabilities::silent_row_cap)).
///
/// Any page of `n` rows proves the cap is at least `n`, so a later page with fewer rows than
/// [`largest_page`](Self::largest_page) is complete. A page at or above it is ambiguous until a
/// split shows its halves hold more rows than it did, which proves a cap: [`detected`](Self::detected).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RowCapKnowledge {
    /// The most rows any page of this stream's source has returned.
    #[serde(default)]
    pub largest_page: u64,
    /// A cap proven by a split: pages of this many rows are cut.
    #[serde(default)]
    pub detected: Option<u64>,
}

impl RowCapKnowledge {
    /// True when nothing is known yet.
    pub fn is_empty(&self) -> bool {
        self.largest_page == 0 && self.detected.is_none()
    }

    /// Folds `other` in (the larger page, the smaller detected cap).
    pub fn merge(&mut self, other: RowCapKnowledge) {
        self.largest_page = self.largest_page.max(other.largest_page);
        self.detected = match (self.detected, other.detected) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// Rows with a NULL cursor, as counted at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NullCursorCount {
    /// How many.
    pub rows: u64,
    /// When counted.
    pub counted_at: DateTime<Utc>,
}

impl StreamState {
    /// Records a committed window: extends the coverage and removes `window` from the failed
    /// queue (a queued window it covers in part shrinks to what is still owed).
    ///
    /// Only the committed window itself settles a failed one: a failed re-read of an already
    /// covered range (the lookback) stays queued until that range is read again, because it
    /// may hold late rows.
    pub fn commit(&mut self, window: Window, at: DateTime<Utc>) {
        self.committed.insert(window);
        let mut done = Coverage::new();
        done.insert(window);
        let mut rest = Vec::with_capacity(self.failed.len());
        for f in self.failed.drain(..) {
            for piece in done.gaps(f.window) {
                rest.push(FailedWindow {
                    window: piece,
                    ..f.clone()
                });
            }
        }
        self.failed = rest;
        self.last_commit_at = Some(at);
        self.skipped = None;
    }

    /// Records a failed attempt of `window`.
    ///
    /// If the window lies inside a queued failed window (a half of a split replay), that entry
    /// counts the attempt. Queued windows inside `window` are folded into it.
    pub fn fail(&mut self, window: Window, error: &str, at: DateTime<Utc>) -> &FailedWindow {
        if let Some(i) = self
            .failed
            .iter()
            .position(|f| f.window.from <= window.from && window.to <= f.window.to)
        {
            let f = &mut self.failed[i];
            f.attempts += 1;
            f.last_error = error.to_string();
            f.last_failed_at = at;
            return &self.failed[i];
        }
        let mut attempts = 0;
        let mut first = at;
        self.failed.retain(|f| {
            let inside = window.from <= f.window.from && f.window.to <= window.to;
            if inside {
                attempts = attempts.max(f.attempts);
                first = first.min(f.first_failed_at);
            }
            !inside
        });
        self.failed.push(FailedWindow {
            window,
            attempts: attempts + 1,
            last_error: error.to_string(),
            first_failed_at: first,
            last_failed_at: at,
        });
        self.failed.sort_by_key(|f| f.window);
        let i = self
            .failed
            .iter()
            .position(|f| f.window == window)
            .expect("just inserted");
        &self.failed[i]
    }
}

/// The state of every stream of one pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PipelineState {
    /// Format version ([`STATE_FORMAT_VERSION`]).
    pub version: u32,
    /// Pipeline name.
    pub pipeline: String,
    /// Stream name → state.
    #[serde(default)]
    pub streams: BTreeMap<String, StreamState>,
}

impl PipelineState {
    /// An empty state for `pipeline`.
    pub fn new(pipeline: &str) -> Self {
        Self {
            version: STATE_FORMAT_VERSION,
            pipeline: pipeline.to_string(),
            streams: BTreeMap::new(),
        }
    }

    /// Parses a serialized state, checking the version. `origin` names the file or table in
    /// error messages.
    pub fn from_json(bytes: &[u8], origin: &str) -> Result<Self> {
        #[derive(Deserialize)]
        struct VersionOnly {
            version: u32,
        }
        let v: VersionOnly = serde_json::from_slice(bytes).map_err(|e| {
            Error::State(format!(
                "{origin} is corrupt ({e}); refusing to start from zero. Restore it from a backup, \
                 or move it away deliberately to reload every stream from its start"
            ))
        })?;
        if v.version != STATE_FORMAT_VERSION {
            return Err(Error::State(format!(
                "{origin} has state format version {}, this build reads version {STATE_FORMAT_VERSION}",
                v.version
            )));
        }
        serde_json::from_slice(bytes).map_err(|e| {
            Error::State(format!(
                "{origin} is corrupt ({e}); refusing to start from zero. Restore it from a backup, \
                 or move it away deliberately to reload every stream from its start"
            ))
        })
    }
}

/// A worker's claim on one stream of one pipeline, granted by
/// [`CheckpointStore::acquire_lease`].
///
/// Only the holder of the current lease may write the stream's state: every
/// [`save_stream`](CheckpointStore::save_stream) is fenced by [`version`](Self::version), which
/// grows each time the lease changes hands, so a worker whose lease was taken over (it paused
/// past the expiry, or its clock ran slow) has its writes refused with [`Error::LeaseLost`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Lease {
    /// Pipeline name.
    pub pipeline: String,
    /// Stream name.
    pub stream: String,
    /// The worker holding it.
    pub owner: String,
    /// The fencing token: grows with every grant of this (pipeline, stream) to a new holder.
    pub version: u64,
    /// When it lapses unless renewed (by the clock of the worker that took or renewed it).
    pub expires_at: DateTime<Utc>,
    /// When the holder gave it up at the end of its cycle of the stream (`None` while held,
    /// or when it lapsed without a release, e.g. the worker was killed). Set by
    /// [`CheckpointStore::current_lease`].
    pub released_at: Option<DateTime<Utc>>,
}

impl Lease {
    /// A lease as a store grants it.
    pub fn new(
        pipeline: impl Into<String>,
        stream: impl Into<String>,
        owner: impl Into<String>,
        version: u64,
        expires_at: DateTime<Utc>,
    ) -> Self {
        Self {
            pipeline: pipeline.into(),
            stream: stream.into(),
            owner: owner.into(),
            version,
            expires_at,
            released_at: None,
        }
    }

    /// The [`Error::LeaseLost`] for this lease, with `detail` saying what the store found.
    pub fn lost(&self, detail: impl Into<String>) -> Error {
        Error::LeaseLost {
            pipeline: self.pipeline.clone(),
            stream: self.stream.clone(),
            owner: self.owner.clone(),
            version: self.version,
            detail: detail.into(),
        }
    }
}

/// The answer to [`CheckpointStore::acquire_lease`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseGrant {
    /// The caller holds the stream until [`Lease::expires_at`] (renew before then).
    Granted(Lease),
    /// Another worker holds an unexpired lease on the stream.
    Held {
        /// The holder.
        owner: String,
        /// When its lease lapses unless renewed.
        until: DateTime<Utc>,
    },
}

/// Where checkpoint state lives.
///
/// Implementations must make [`save_stream`](CheckpointStore::save_stream) durable before
/// returning: the engine treats a returned `Ok` as "this window will not be loaded again".
///
/// **Leases.** The engine takes a [`Lease`] per (pipeline, stream) before it reads the stream's
/// state, renews it between windows, writes state only under it and releases it at the end of
/// the stream's cycle. A store shared by several processes (the Databricks one) grants a stream
/// to one owner at a time and refuses a write whose lease is no longer current. The default
/// methods suit a store used by one process at a time (the file store's OS lock, the memory
/// store): every request is granted, nothing is fenced.
#[async_trait]
pub trait CheckpointStore: Send + Sync {
    /// Loads the state of `pipeline` (empty if there is none yet). A store may take an
    /// exclusive lock on the pipeline here and fail with [`Error::Locked`].
    async fn load(&self, pipeline: &str) -> Result<PipelineState>;

    /// Loads the state of one stream (empty if there is none yet). The engine calls it after
    /// taking the stream's lease, so it sees what the previous holder wrote.
    async fn load_stream(&self, pipeline: &str, stream: &str) -> Result<StreamState> {
        Ok(self
            .load(pipeline)
            .await?
            .streams
            .remove(stream)
            .unwrap_or_default())
    }

    /// Durably replaces the state of the lease's stream, if `lease` is still the current one;
    /// otherwise fails with [`Error::LeaseLost`] and writes nothing.
    async fn save_stream(&self, lease: &Lease, state: &StreamState) -> Result<()>;

    /// Takes the lease on (`pipeline`, `stream`) for `owner` until `now + ttl`, unless another
    /// owner holds an unexpired one ([`LeaseGrant::Held`]). A lease that expired, or one held by
    /// the same `owner` (a restarted worker), is taken over with a new
    /// [`version`](Lease::version), which fences out the previous holder.
    ///
    /// Default: always granted (version 0), for stores used by one process at a time.
    async fn acquire_lease(
        &self,
        pipeline: &str,
        stream: &str,
        owner: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<LeaseGrant> {
        Ok(LeaseGrant::Granted(Lease::new(
            pipeline,
            stream,
            owner,
            0,
            now + ttl,
        )))
    }

    /// Extends `lease` to `now + ttl`; fails with [`Error::LeaseLost`] when it is no longer
    /// the current lease (another worker took the stream over after it expired).
    ///
    /// Default: always extended.
    async fn renew_lease(
        &self,
        lease: &Lease,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<Lease> {
        let mut next = lease.clone();
        next.expires_at = now + ttl;
        Ok(next)
    }

    /// Gives `lease` up so another worker can take the stream at once. Releasing a lease that
    /// is no longer current does nothing.
    ///
    /// Default: nothing to do.
    async fn release_lease(&self, lease: &Lease, now: DateTime<Utc>) -> Result<()> {
        let _ = (lease, now);
        Ok(())
    }

    /// The lease last granted on `stream` (held while its
    /// [`expires_at`](Lease::expires_at) is ahead), for `status`; `None` when no worker has
    /// taken one.
    ///
    /// Default: `None` (a store without leases of its own, such as the file store, which
    /// locks the whole pipeline instead).
    async fn current_lease(&self, pipeline: &str, stream: &str) -> Result<Option<Lease>> {
        let _ = (pipeline, stream);
        Ok(None)
    }
}

/// The leases of a store that keeps them in memory (the memory store, tests).
#[derive(Debug, Default)]
struct LeaseTable {
    /// (pipeline, stream) → (owner, version, expires_at).
    leases: BTreeMap<(String, String), (String, u64, DateTime<Utc>)>,
    /// The leases given up by their holder (not lapsed), with when.
    released: BTreeMap<(String, String), DateTime<Utc>>,
}

impl LeaseTable {
    fn acquire(
        &mut self,
        pipeline: &str,
        stream: &str,
        owner: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> LeaseGrant {
        let key = (pipeline.to_string(), stream.to_string());
        let version = match self.leases.get(&key) {
            Some((holder, _, until)) if holder != owner && *until > now => {
                return LeaseGrant::Held {
                    owner: holder.clone(),
                    until: *until,
                }
            }
            Some((_, v, _)) => v + 1,
            None => 1,
        };
        self.released.remove(&key);
        self.leases
            .insert(key, (owner.to_string(), version, now + ttl));
        LeaseGrant::Granted(Lease::new(pipeline, stream, owner, version, now + ttl))
    }

    /// Checks that `lease` is current; with `until`, also extends it.
    fn check(&mut self, lease: &Lease, until: Option<DateTime<Utc>>) -> Result<()> {
        let key = (lease.pipeline.clone(), lease.stream.clone());
        match self.leases.get_mut(&key) {
            Some((holder, v, exp)) if *holder == lease.owner && *v == lease.version => {
                if let Some(u) = until {
                    *exp = u;
                }
                Ok(())
            }
            Some((holder, v, exp)) => Err(lease.lost(format!(
                "the stream is now leased by `{holder}` (version {v}) until {exp}"
            ))),
            None => Err(lease.lost("the store has no lease for the stream")),
        }
    }

    fn current(&self, pipeline: &str, stream: &str) -> Option<Lease> {
        self.leases
            .get(&(pipeline.to_string(), stream.to_string()))
            .map(|(owner, version, until)| {
                let mut lease = Lease::new(pipeline, stream, owner, *version, *until);
                lease.released_at = self
                    .released
                    .get(&(pipeline.to_string(), stream.to_string()))
                    .copied();
                lease
            })
    }

    fn release(&mut self, lease: &Lease, now: DateTime<Utc>) {
        // Expired at `now`: anyone may take it; the version still fences this holder.
        if self.check(lease, Some(now)).is_ok() {
            self.released
                .insert((lease.pipeline.clone(), lease.stream.clone()), now);
        }
    }
}

/// An in-memory store, for tests. It keeps real leases (shared by every clone), so several
/// pipelines on one store in one test behave like several workers on the Databricks store.
#[derive(Debug, Default, Clone)]
pub struct MemoryCheckpointStore {
    inner: Arc<Mutex<BTreeMap<String, PipelineState>>>,
    leases: Arc<Mutex<LeaseTable>>,
}

impl MemoryCheckpointStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl CheckpointStore for MemoryCheckpointStore {
    async fn load(&self, pipeline: &str) -> Result<PipelineState> {
        let map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Ok(map
            .get(pipeline)
            .cloned()
            .unwrap_or_else(|| PipelineState::new(pipeline)))
    }

    async fn save_stream(&self, lease: &Lease, state: &StreamState) -> Result<()> {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        // A store used without leases (tests that save directly) grants version 0 freely.
        let key = (lease.pipeline.clone(), lease.stream.clone());
        if lease.version != 0 || leases.leases.contains_key(&key) {
            leases.check(lease, None)?;
        }
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(lease.pipeline.clone())
            .or_insert_with(|| PipelineState::new(&lease.pipeline))
            .streams
            .insert(lease.stream.clone(), state.clone());
        Ok(())
    }

    async fn acquire_lease(
        &self,
        pipeline: &str,
        stream: &str,
        owner: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<LeaseGrant> {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        Ok(leases.acquire(pipeline, stream, owner, now, ttl))
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<Lease> {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        leases.check(lease, Some(now + ttl))?;
        let mut next = lease.clone();
        next.expires_at = now + ttl;
        Ok(next)
    }

    async fn release_lease(&self, lease: &Lease, now: DateTime<Utc>) -> Result<()> {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        leases.release(lease, now);
        Ok(())
    }

    async fn current_lease(&self, pipeline: &str, stream: &str) -> Result<Option<Lease>> {
        let leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        Ok(leases.current(pipeline, stream))
    }
}

/// A directory of state files, one `<pipeline>.state.json` per pipeline.
///
/// - Writes are atomic: a temp file is written and fsynced, renamed over the old file, and
///   the directory is fsynced.
/// - The first `load` of a pipeline takes an exclusive OS lock on `<pipeline>.lock`, held
///   until the store is dropped, so a second process (or a second store) on the same pipeline
///   gets [`Error::Locked`]. The OS releases the lock when a process dies, so a crash never
///   leaves a stale lock behind.
#[derive(Debug, Clone)]
pub struct FileCheckpointStore {
    inner: Arc<FileStoreInner>,
}

#[derive(Debug)]
struct FileStoreInner {
    dir: PathBuf,
    pipelines: Mutex<BTreeMap<String, (PipelineState, File)>>,
}

impl FileCheckpointStore {
    /// A store in `dir` (created if missing).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|source| Error::Io {
            path: dir.display().to_string(),
            source,
        })?;
        Ok(Self {
            inner: Arc::new(FileStoreInner {
                dir,
                pipelines: Mutex::new(BTreeMap::new()),
            }),
        })
    }

    /// The state file of `pipeline`.
    pub fn state_path(&self, pipeline: &str) -> PathBuf {
        self.inner.state_path(pipeline)
    }
}

impl FileStoreInner {
    fn state_path(&self, pipeline: &str) -> PathBuf {
        self.dir.join(format!("{}.state.json", file_stem(pipeline)))
    }

    fn lock_path(&self, pipeline: &str) -> PathBuf {
        self.dir.join(format!("{}.lock", file_stem(pipeline)))
    }

    fn load_locked(&self, pipeline: &str) -> Result<PipelineState> {
        let mut map = self.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((state, _)) = map.get(pipeline) {
            return Ok(state.clone());
        }
        let lock_path = self.lock_path(pipeline);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| Error::Io {
                path: lock_path.display().to_string(),
                source,
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    pipeline: pipeline.to_string(),
                    path: lock_path.display().to_string(),
                })
            }
            Err(fs::TryLockError::Error(source)) => {
                return Err(Error::Io {
                    path: lock_path.display().to_string(),
                    source,
                })
            }
        }
        let path = self.state_path(pipeline);
        let state = match fs::read(&path) {
            Ok(bytes) => {
                let state = PipelineState::from_json(&bytes, &path.display().to_string())?;
                if state.pipeline != pipeline {
                    return Err(Error::State(format!(
                        "{} belongs to pipeline `{}`, not `{pipeline}`",
                        path.display(),
                        state.pipeline
                    )));
                }
                state
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => PipelineState::new(pipeline),
            Err(source) => {
                return Err(Error::Io {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        map.insert(pipeline.to_string(), (state.clone(), lock));
        Ok(state)
    }

    fn save_locked(&self, pipeline: &str, stream: &str, stream_state: &StreamState) -> Result<()> {
        let mut map = self.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        let Some((state, _lock)) = map.get_mut(pipeline) else {
            return Err(Error::State(format!(
                "pipeline `{pipeline}` was not loaded (and locked) before saving"
            )));
        };
        let mut next = state.clone();
        next.streams
            .insert(stream.to_string(), stream_state.clone());
        let bytes = serde_json::to_vec_pretty(&next)
            .map_err(|e| Error::State(format!("cannot serialize state: {e}")))?;
        let path = self.state_path(pipeline);
        write_atomic(&path, &bytes)?;
        *state = next;
        Ok(())
    }
}

fn file_stem(pipeline: &str) -> String {
    pipeline
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes `bytes` to `path` with the shared atomic writer ([`crate::fs::write_atomic`]).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::fs::write_atomic(path, bytes).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })
}

#[async_trait]
impl CheckpointStore for FileCheckpointStore {
    async fn load(&self, pipeline: &str) -> Result<PipelineState> {
        let inner = self.inner.clone();
        let pipeline = pipeline.to_string();
        tokio::task::spawn_blocking(move || inner.load_locked(&pipeline))
            .await
            .map_err(|e| Error::State(format!("state loader stopped: {e}")))?
    }

    async fn load_stream(&self, pipeline: &str, stream: &str) -> Result<StreamState> {
        Ok(self
            .load(pipeline)
            .await?
            .streams
            .remove(stream)
            .unwrap_or_default())
    }

    /// Takes the pipeline's OS lock (as [`load`](CheckpointStore::load) does) and grants the
    /// lease: the lock keeps every other process out of the whole pipeline, so within this
    /// process the lease needs no fencing.
    async fn acquire_lease(
        &self,
        pipeline: &str,
        stream: &str,
        owner: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<LeaseGrant> {
        self.load(pipeline).await?;
        Ok(LeaseGrant::Granted(Lease::new(
            pipeline,
            stream,
            owner,
            0,
            now + ttl,
        )))
    }

    /// The OS lock taken by [`load`](CheckpointStore::load) keeps other processes out of the
    /// whole pipeline, so the lease is not checked.
    async fn save_stream(&self, lease: &Lease, state: &StreamState) -> Result<()> {
        let inner = self.inner.clone();
        let (pipeline, stream, state) =
            (lease.pipeline.clone(), lease.stream.clone(), state.clone());
        tokio::task::spawn_blocking(move || inner.save_locked(&pipeline, &stream, &state))
            .await
            .map_err(|e| Error::State(format!("state writer stopped: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn t(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::hours(h)
    }
    fn w(a: i64, b: i64) -> Window {
        Window::new(t(a), t(b))
    }

    #[test]
    fn failing_a_half_counts_against_the_queued_window() {
        let mut s = StreamState::default();
        assert_eq!(s.fail(w(0, 4), "boom", t(5)).attempts, 1);
        assert_eq!(s.fail(w(0, 2), "boom again", t(6)).attempts, 2);
        assert_eq!(s.failed.len(), 1);
        assert_eq!(s.failed[0].last_error, "boom again");
        s.commit(w(0, 2), t(7));
        assert_eq!(s.failed.len(), 1, "half committed, other half still owed");
        assert_eq!(s.failed[0].window, w(2, 4));
        assert_eq!(s.failed[0].attempts, 2);
        s.commit(w(2, 4), t(7));
        assert!(s.failed.is_empty());
    }

    #[test]
    fn a_failed_reread_of_covered_range_stays_queued_until_read() {
        let mut s = StreamState::default();
        s.commit(w(0, 10), t(10));
        // The lookback re-read of [8, 10) failed: it may hold late rows.
        s.fail(w(8, 10), "boom", t(11));
        s.commit(w(10, 12), t(12));
        assert_eq!(
            s.failed.len(),
            1,
            "committing another window must not settle it"
        );
        s.commit(w(8, 10), t(13));
        assert!(s.failed.is_empty());
    }

    #[test]
    fn failing_a_wider_window_folds_queued_ones() {
        let mut s = StreamState::default();
        s.fail(w(0, 1), "a", t(5));
        s.fail(w(0, 1), "a", t(5));
        s.fail(w(2, 3), "b", t(5));
        let f = s.fail(w(0, 4), "c", t(6)).clone();
        assert_eq!(f.attempts, 3);
        assert_eq!(s.failed.len(), 1);
    }

    #[tokio::test]
    async fn file_store_round_trips_and_is_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCheckpointStore::open(dir.path()).unwrap();
        let mut st = store.load("p").await.unwrap();
        assert!(st.streams.is_empty());
        let mut s = StreamState::default();
        s.commit(w(0, 3), t(4));
        let lease = Lease::new("p", "vendors", "test", 0, t(10));
        store.save_stream(&lease, &s).await.unwrap();
        drop(store);
        let store = FileCheckpointStore::open(dir.path()).unwrap();
        st = store.load("p").await.unwrap();
        assert_eq!(st.streams["vendors"], s);
        assert!(!dir.path().join("p.state.tmp").exists());
    }

    #[tokio::test]
    async fn second_store_on_same_pipeline_is_locked_out() {
        let dir = tempfile::tempdir().unwrap();
        let a = FileCheckpointStore::open(dir.path()).unwrap();
        a.load("payroll").await.unwrap();
        let b = FileCheckpointStore::open(dir.path()).unwrap();
        let err = b.load("payroll").await.unwrap_err();
        assert!(matches!(err, Error::Locked { .. }), "{err}");
        assert!(err.to_string().contains("payroll.lock"), "{err}");
        // Another pipeline in the same directory is fine.
        b.load("vendors").await.unwrap();
        // Dropping the holder releases the lock.
        drop(a);
        b.load("payroll").await.unwrap();
    }

    #[tokio::test]
    async fn corrupt_state_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("p.state.json"),
            b"{\"version\":1,\"pipeline\":\"p\",\"streams\":{\"x\":",
        )
        .unwrap();
        let store = FileCheckpointStore::open(dir.path()).unwrap();
        let err = store.load("p").await.unwrap_err().to_string();
        assert!(
            err.contains("p.state.json") && err.contains("corrupt"),
            "{err}"
        );

        fs::write(
            dir.path().join("q.state.json"),
            b"{\"version\":99,\"pipeline\":\"q\"}",
        )
        .unwrap();
        let err = store.load("q").await.unwrap_err().to_string();
        assert!(err.contains("version 99"), "{err}");
    }
}
