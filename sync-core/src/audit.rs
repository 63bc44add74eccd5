//! The audit log (one entry per window attempt) and the reject store (rows that failed
//! mapping or validation, with the raw record and the reason per field).
//!
//! The audit answers two questions: what failed and can be replayed
//! ([`failed_windows`]), and was every window loaded completely ([`window_totals`], compared
//! against the target by the engine's `verify`).

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::mapper::FieldError;
use crate::sink::Receipt;
use crate::value::Record;
use crate::window::Window;

/// How a window attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// Every batch was confirmed by the sink and the checkpoint advanced.
    Committed,
    /// The attempt failed; the window is queued for replay.
    Failed,
    /// The source hit its row cap; the window was split in two and each half is read on its own.
    Split,
    /// A stop signal arrived; nothing was checkpointed for this window.
    Abandoned,
    /// Not a window attempt: a [`StreamHook`](crate::engine::StreamHook) ran after the stream
    /// committed windows (for example a downstream job was started); its facts are in
    /// `annotations`, the window spans what the cycle committed.
    Hook,
    /// Not a window attempt: reconciliation compared source and target over the window (the
    /// stream's checked range); counts of missing, changed and deleted rows are in
    /// `annotations`.
    Reconciled,
}

/// One window attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuditEntry {
    /// The run (one cycle of one pipeline).
    pub run_id: String,
    /// Pipeline name.
    pub pipeline: String,
    /// Stream name.
    pub stream: String,
    /// The window.
    pub window: Window,
    /// Attempt number of this window (1 for a first try).
    pub attempt: u32,
    /// When the attempt started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// Records read from the source.
    pub rows_read: u64,
    /// Rows the sink confirmed.
    pub rows_written: u64,
    /// Records rejected by mapping or validation.
    pub rows_rejected: u64,
    /// What the sink confirmed (statement ids, counts).
    #[serde(default)]
    pub receipt: Receipt,
    /// How it ended.
    pub outcome: Outcome,
    /// The error, for failed attempts (never contains secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Extra facts recorded by hooks (for example a downstream job's run id).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl AuditEntry {
    /// An entry for attempt `attempt` of `window` with `outcome`, started and finished at
    /// `at`, with zero counts, an empty receipt, no error and no annotations: set the other
    /// fields on the result.
    pub fn new(
        run_id: impl Into<String>,
        pipeline: impl Into<String>,
        stream: impl Into<String>,
        window: Window,
        attempt: u32,
        outcome: Outcome,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            run_id: run_id.into(),
            pipeline: pipeline.into(),
            stream: stream.into(),
            window,
            attempt,
            started_at: at,
            finished_at: at,
            rows_read: 0,
            rows_written: 0,
            rows_rejected: 0,
            receipt: Receipt::default(),
            outcome,
            error: None,
            annotations: BTreeMap::new(),
        }
    }
}

/// Where audit entries go.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends one entry durably.
    async fn append(&self, entry: &AuditEntry) -> Result<()>;

    /// Entries of `pipeline` (optionally one stream), oldest first.
    async fn entries(&self, pipeline: &str, stream: Option<&str>) -> Result<Vec<AuditEntry>>;
}

/// Windows whose latest attempt failed and that no later committed attempt covers: what can
/// be replayed, per stream.
pub fn failed_windows(entries: &[AuditEntry]) -> BTreeMap<String, Vec<AuditEntry>> {
    let mut out: BTreeMap<String, Vec<AuditEntry>> = BTreeMap::new();
    for e in entries.iter().filter(|e| e.outcome == Outcome::Failed) {
        let healed = entries.iter().any(|c| {
            c.stream == e.stream
                && c.outcome == Outcome::Committed
                && c.started_at >= e.started_at
                && c.window.from <= e.window.from
                && e.window.to <= c.window.to
        });
        let superseded = entries.iter().any(|l| {
            l.stream == e.stream
                && l.outcome == Outcome::Failed
                && l.window == e.window
                && l.started_at > e.started_at
        });
        if !healed && !superseded {
            out.entry(e.stream.clone()).or_default().push(e.clone());
        }
    }
    out
}

/// Per-window totals of the latest committed attempt of each window, per stream: the
/// source side of a completeness check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WindowTotals {
    /// The window.
    pub window: Window,
    /// Records read.
    pub rows_read: u64,
    /// Rows written.
    pub rows_written: u64,
    /// Records rejected.
    pub rows_rejected: u64,
}

/// Latest committed totals per (stream, window).
pub fn window_totals(entries: &[AuditEntry]) -> BTreeMap<String, Vec<WindowTotals>> {
    let mut latest: BTreeMap<(String, Window), &AuditEntry> = BTreeMap::new();
    for e in entries.iter().filter(|e| e.outcome == Outcome::Committed) {
        let k = (e.stream.clone(), e.window);
        match latest.get(&k) {
            Some(prev) if prev.started_at > e.started_at => {}
            _ => {
                latest.insert(k, e);
            }
        }
    }
    let mut out: BTreeMap<String, Vec<WindowTotals>> = BTreeMap::new();
    for ((stream, window), e) in latest {
        out.entry(stream).or_default().push(WindowTotals {
            window,
            rows_read: e.rows_read,
            rows_written: e.rows_written,
            rows_rejected: e.rows_rejected,
        });
    }
    out
}

/// An in-memory audit log, for tests.
#[derive(Debug, Default, Clone)]
pub struct MemoryAuditLog {
    entries: Arc<Mutex<Vec<AuditEntry>>>,
}

impl MemoryAuditLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every entry so far.
    pub fn all(&self) -> Vec<AuditEntry> {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[async_trait]
impl AuditLog for MemoryAuditLog {
    async fn append(&self, entry: &AuditEntry) -> Result<()> {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(entry.clone());
        Ok(())
    }

    async fn entries(&self, pipeline: &str, stream: Option<&str>) -> Result<Vec<AuditEntry>> {
        Ok(self
            .all()
            .into_iter()
            .filter(|e| e.pipeline == pipeline && stream.is_none_or(|s| s == e.stream))
            .collect())
    }
}

/// A JSON-lines file: one object per line, appended and fsynced.
#[derive(Debug, Clone)]
pub struct JsonlFile {
    path: PathBuf,
    lock: Arc<Mutex<()>>,
}

impl JsonlFile {
    /// A file at `path` (created on first append, with its parent directory).
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            path: path.as_ref().to_path_buf(),
            lock: Arc::new(Mutex::new(())),
        }
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn append_lines<T: Serialize + Sync>(&self, items: &[T]) -> Result<()> {
        let mut buf = Vec::new();
        for item in items {
            serde_json::to_writer(&mut buf, item)
                .map_err(|e| Error::Audit(format!("cannot serialize: {e}")))?;
            buf.push(b'\n');
        }
        let path = self.path.clone();
        let lock = self.lock.clone();
        tokio::task::spawn_blocking(move || {
            let _g = lock.lock().unwrap_or_else(|e| e.into_inner());
            let io = |source| Error::Io {
                path: path.display().to_string(),
                source,
            };
            if let Some(dir) = path.parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
            }
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io)?;
            f.write_all(&buf).map_err(io)?;
            f.sync_data().map_err(io)
        })
        .await
        .map_err(|e| Error::Audit(format!("audit writer stopped: {e}")))?
    }

    async fn read_all<T: serde::de::DeserializeOwned + Send + 'static>(&self) -> Result<Vec<T>> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let f = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(source) => {
                    return Err(Error::Io {
                        path: path.display().to_string(),
                        source,
                    })
                }
            };
            let mut out = Vec::new();
            for (n, line) in BufReader::new(f).lines().enumerate() {
                let line = line.map_err(|source| Error::Io {
                    path: path.display().to_string(),
                    source,
                })?;
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str(&line) {
                    Ok(v) => out.push(v),
                    // A crash can cut the last line short; everything before it is intact.
                    Err(e) if e.is_eof() => {
                        tracing::warn!("{}:{}: ignoring a cut-off last line", path.display(), n + 1)
                    }
                    Err(e) => {
                        return Err(Error::Audit(format!(
                            "{}:{}: not a valid entry: {e}",
                            path.display(),
                            n + 1
                        )))
                    }
                }
            }
            Ok(out)
        })
        .await
        .map_err(|e| Error::Audit(format!("audit reader stopped: {e}")))?
    }
}

/// The JSON-lines audit log.
#[derive(Debug, Clone)]
pub struct JsonlAuditLog(JsonlFile);

impl JsonlAuditLog {
    /// A log at `path`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self(JsonlFile::new(path))
    }
}

#[async_trait]
impl AuditLog for JsonlAuditLog {
    async fn append(&self, entry: &AuditEntry) -> Result<()> {
        self.0.append_lines(std::slice::from_ref(entry)).await
    }

    async fn entries(&self, pipeline: &str, stream: Option<&str>) -> Result<Vec<AuditEntry>> {
        let all: Vec<AuditEntry> = self.0.read_all().await?;
        Ok(all
            .into_iter()
            .filter(|e| e.pipeline == pipeline && stream.is_none_or(|s| s == e.stream))
            .collect())
    }
}

/// A record that failed mapping or validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RejectedRecord {
    /// The run.
    pub run_id: String,
    /// Pipeline name.
    pub pipeline: String,
    /// Stream name.
    pub stream: String,
    /// The window it was read in.
    pub window: Window,
    /// When it was rejected.
    pub rejected_at: DateTime<Utc>,
    /// The record exactly as the source returned it.
    pub record: Record,
    /// Every field that failed, with its reason.
    pub errors: Vec<FieldError>,
}

/// Where rejected records are kept.
#[async_trait]
pub trait RejectStore: Send + Sync {
    /// Stores rejected records durably.
    async fn put(&self, rejects: &[RejectedRecord]) -> Result<()>;

    /// Rejected records of `pipeline` (optionally one stream), oldest first.
    async fn list(&self, pipeline: &str, stream: Option<&str>) -> Result<Vec<RejectedRecord>>;
}

/// An in-memory reject store, for tests.
#[derive(Debug, Default, Clone)]
pub struct MemoryRejectStore {
    rejects: Arc<Mutex<Vec<RejectedRecord>>>,
}

impl MemoryRejectStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl RejectStore for MemoryRejectStore {
    async fn put(&self, rejects: &[RejectedRecord]) -> Result<()> {
        self.rejects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(rejects);
        Ok(())
    }

    async fn list(&self, pipeline: &str, stream: Option<&str>) -> Result<Vec<RejectedRecord>> {
        Ok(self
            .rejects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|r| r.pipeline == pipeline && stream.is_none_or(|s| s == r.stream))
            .cloned()
            .collect())
    }
}

/// The JSON-lines reject store (the default).
#[derive(Debug, Clone)]
pub struct JsonlRejectStore(JsonlFile);

impl JsonlRejectStore {
    /// A store at `path`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self(JsonlFile::new(path))
    }
}

#[async_trait]
impl RejectStore for JsonlRejectStore {
    async fn put(&self, rejects: &[RejectedRecord]) -> Result<()> {
        if rejects.is_empty() {
            return Ok(());
        }
        self.0.append_lines(rejects).await
    }

    async fn list(&self, pipeline: &str, stream: Option<&str>) -> Result<Vec<RejectedRecord>> {
        let all: Vec<RejectedRecord> = self.0.read_all().await?;
        Ok(all
            .into_iter()
            .filter(|r| r.pipeline == pipeline && stream.is_none_or(|s| s == r.stream))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn t(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::hours(h)
    }

    fn entry(stream: &str, a: i64, b: i64, at: i64, outcome: Outcome, rows: u64) -> AuditEntry {
        AuditEntry {
            run_id: format!("run-{at}"),
            pipeline: "p".into(),
            stream: stream.into(),
            window: Window::new(t(a), t(b)),
            attempt: 1,
            started_at: t(at),
            finished_at: t(at),
            rows_read: rows,
            rows_written: rows,
            rows_rejected: 0,
            receipt: Receipt::default(),
            outcome,
            error: (outcome == Outcome::Failed).then(|| "boom".to_string()),
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn failed_windows_excludes_healed_ones() {
        let entries = vec![
            entry("a", 0, 2, 10, Outcome::Failed, 0),
            entry("a", 2, 4, 10, Outcome::Failed, 0),
            entry("a", 0, 1, 11, Outcome::Committed, 5),
            entry("a", 0, 2, 12, Outcome::Committed, 5),
            entry("b", 0, 2, 10, Outcome::Committed, 5),
            entry("b", 0, 2, 11, Outcome::Failed, 0),
        ];
        let f = failed_windows(&entries);
        assert_eq!(f["a"].len(), 1);
        assert_eq!(f["a"][0].window, Window::new(t(2), t(4)));
        assert_eq!(f["b"].len(), 1, "a failure after a commit is still owed");
    }

    #[test]
    fn window_totals_take_the_latest_commit() {
        let entries = vec![
            entry("a", 0, 2, 10, Outcome::Committed, 5),
            entry("a", 0, 2, 12, Outcome::Committed, 7),
            entry("a", 2, 4, 12, Outcome::Failed, 0),
        ];
        let t = window_totals(&entries);
        assert_eq!(t["a"].len(), 1);
        assert_eq!(t["a"][0].rows_read, 7);
    }

    #[tokio::test]
    async fn jsonl_audit_round_trips_and_tolerates_a_cut_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit/audit.jsonl");
        let log = JsonlAuditLog::new(&path);
        log.append(&entry("a", 0, 2, 10, Outcome::Committed, 5))
            .await
            .unwrap();
        log.append(&entry("b", 0, 2, 10, Outcome::Failed, 0))
            .await
            .unwrap();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"run_id\":\"cut").unwrap();
        assert_eq!(log.entries("p", None).await.unwrap().len(), 2);
        assert_eq!(log.entries("p", Some("b")).await.unwrap().len(), 1);
        assert_eq!(log.entries("other", None).await.unwrap().len(), 0);
    }

    #[tokio::test]
    async fn jsonl_rejects_keep_the_raw_record_and_reasons() {
        let dir = tempfile::tempdir().unwrap();
        let store = JsonlRejectStore::new(dir.path().join("rejects.jsonl"));
        let mut record = Record::new();
        record.insert("A.AMOUNT".into(), serde_json::json!("12.345"));
        let r = RejectedRecord {
            run_id: "r".into(),
            pipeline: "p".into(),
            stream: "journal".into(),
            window: Window::new(t(0), t(1)),
            rejected_at: t(1),
            record,
            errors: vec![FieldError {
                column: "amount".into(),
                field: "A.AMOUNT".into(),
                value: Some("12.345".into()),
                reason: "3 decimal places do not fit DECIMAL(10,2)".into(),
            }],
        };
        store.put(std::slice::from_ref(&r)).await.unwrap();
        assert_eq!(store.list("p", Some("journal")).await.unwrap(), vec![r]);
    }
}
