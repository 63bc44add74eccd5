//! Baselines: what the last sync saw of each PeopleSoft record, kept durably.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Who recorded a baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselineOrigin {
    /// The forward sync (PeopleSoft → Databricks) loaded this content.
    Forward,
    /// The write-back wrote this content to PeopleSoft.
    Writeback,
    /// The write-back read it from PeopleSoft and found it already equal.
    Observed,
}

impl std::fmt::Display for BaselineOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BaselineOrigin::Forward => "the forward sync",
            BaselineOrigin::Writeback => "an earlier write-back",
            BaselineOrigin::Observed => "an earlier read of PeopleSoft",
        })
    }
}

/// What the last sync saw of one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    /// Hash of the governed fields (stable across runs and platforms).
    pub hash: String,
    /// The last-update stamp, normalised to RFC 3339 UTC when it parses, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp: Option<String>,
    /// Who recorded it.
    pub origin: BaselineOrigin,
    /// When.
    pub recorded_at: DateTime<Utc>,
}

/// A baseline store failed; the message names the file.
#[derive(Debug, thiserror::Error)]
#[error("baseline store: {0}")]
pub struct BaselineStoreError(pub String);

/// Durable baselines per stream and record key.
///
/// Keys are the record's key values as a JSON array text (`["SHARE","V001"]`).
#[async_trait]
pub trait BaselineStore: Send + Sync + std::fmt::Debug {
    /// The baseline of one record, if any.
    async fn get(&self, stream: &str, key: &str) -> Result<Option<Baseline>, BaselineStoreError>;

    /// The baselines of several records (those that have one). The write-back asks for a
    /// whole batch at once before processing it, so a store in a database answers with one
    /// query. The default asks [`get`](Self::get) for each key.
    async fn get_many(
        &self,
        stream: &str,
        keys: &[String],
    ) -> Result<HashMap<String, Baseline>, BaselineStoreError> {
        let mut out = HashMap::with_capacity(keys.len());
        for key in keys {
            if let Some(b) = self.get(stream, key).await? {
                out.insert(key.clone(), b);
            }
        }
        Ok(out)
    }

    /// Stores several baselines durably (replacing existing ones for the same keys).
    async fn put_many(
        &self,
        stream: &str,
        entries: Vec<(String, Baseline)>,
    ) -> Result<(), BaselineStoreError>;
}

type Map = BTreeMap<String, BTreeMap<String, Baseline>>;

/// Baselines in memory (tests, or runs whose baselines are seeded every time).
#[derive(Debug, Default, Clone)]
pub struct MemoryBaselineStore {
    map: Arc<Mutex<Map>>,
}

impl MemoryBaselineStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of baselines kept for `stream`.
    pub fn len(&self, stream: &str) -> usize {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(stream)
            .map_or(0, BTreeMap::len)
    }

    /// True when no baseline is kept for `stream`.
    pub fn is_empty(&self, stream: &str) -> bool {
        self.len(stream) == 0
    }
}

#[async_trait]
impl BaselineStore for MemoryBaselineStore {
    async fn get(&self, stream: &str, key: &str) -> Result<Option<Baseline>, BaselineStoreError> {
        Ok(self
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(stream)
            .and_then(|m| m.get(key))
            .cloned())
    }

    async fn put_many(
        &self,
        stream: &str,
        entries: Vec<(String, Baseline)>,
    ) -> Result<(), BaselineStoreError> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(stream.to_string()).or_default().extend(entries);
        Ok(())
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct FileContent {
    version: u32,
    streams: Map,
}

/// Baselines in one JSON file, replaced atomically (temporary file, fsync, rename, fsync of
/// the directory) on every [`put_many`](BaselineStore::put_many). The whole map is held in
/// memory; a master-data set of a few hundred thousand records is a few tens of MiB.
///
/// One process should own a file (the engine's pipeline lock gives that); two processes
/// writing the same file would each keep their own view, and the last write wins.
#[derive(Debug, Clone)]
pub struct JsonFileBaselineStore {
    path: PathBuf,
    map: Arc<Mutex<Option<Map>>>,
    write: Arc<tokio::sync::Mutex<()>>,
}

impl JsonFileBaselineStore {
    /// A store at `path` (created on the first write, with its directory).
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            path: path.as_ref().to_path_buf(),
            map: Arc::new(Mutex::new(None)),
            write: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, what: impl std::fmt::Display) -> BaselineStoreError {
        BaselineStoreError(format!("{}: {what}", self.path.display()))
    }

    async fn loaded(&self) -> Result<(), BaselineStoreError> {
        if self.map.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
            return Ok(());
        }
        let path = self.path.clone();
        let read = tokio::task::spawn_blocking(move || std::fs::read(&path))
            .await
            .map_err(|e| self.err(e))?;
        let map = match read {
            Ok(bytes) => {
                serde_json::from_slice::<FileContent>(&bytes)
                    .map_err(|e| self.err(format!("not a baseline file: {e}")))?
                    .streams
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(e) => return Err(self.err(e)),
        };
        let mut slot = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(map);
        }
        Ok(())
    }
}

#[async_trait]
impl BaselineStore for JsonFileBaselineStore {
    async fn get(&self, stream: &str, key: &str) -> Result<Option<Baseline>, BaselineStoreError> {
        self.loaded().await?;
        Ok(self
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|m| m.get(stream))
            .and_then(|m| m.get(key))
            .cloned())
    }

    async fn put_many(
        &self,
        stream: &str,
        entries: Vec<(String, Baseline)>,
    ) -> Result<(), BaselineStoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.loaded().await?;
        // One writer at a time, so the file never goes back to an older map.
        let _w = self.write.lock().await;
        let bytes = {
            let mut slot = self.map.lock().unwrap_or_else(|e| e.into_inner());
            let map = slot.get_or_insert_with(Map::new);
            map.entry(stream.to_string()).or_default().extend(entries);
            serde_json::to_vec_pretty(&FileContent {
                version: 1,
                streams: map.clone(),
            })
            .map_err(|e| self.err(e))?
        };
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || sync_core::fs::write_atomic(&path, &bytes))
            .await
            .map_err(|e| self.err(e))?
            .map_err(|e| self.err(e))
    }
}
