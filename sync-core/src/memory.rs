//! In-memory [`Source`] and [`Sink`] for tests, examples and benchmarks.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::ConnectorError;
use crate::schema::{TableSchema, WriteMode};
use crate::sink::{Batch, DeletePolicy, KeyedHash, Receipt, Sink};
use crate::source::{Page, PageStream, Source};
use crate::value::{Record, Row, Value};
use crate::window::Window;

type CursorRecord = (DateTime<Utc>, Record);

/// Records held in memory, each with a cursor; reads return the records whose cursor is in
/// the window, in cursor order, `page_size` per page, and report truncation past `row_cap`.
#[derive(Debug, Clone)]
pub struct MemorySource {
    name: String,
    records: Arc<RwLock<Vec<CursorRecord>>>,
    page_size: usize,
    row_cap: Option<usize>,
}

impl MemorySource {
    /// An empty source called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            records: Arc::new(RwLock::new(Vec::new())),
            page_size: 1000,
            row_cap: None,
        }
    }

    /// Sets the page size.
    pub fn page_size(mut self, n: usize) -> Self {
        self.page_size = n.max(1);
        self
    }

    /// Caps a window's rows like a source with a `maxrows` limit: a read of a window with more
    /// rows returns only the first `cap`, flagged as truncated.
    pub fn row_cap(mut self, cap: usize) -> Self {
        self.row_cap = Some(cap);
        self
    }

    /// Adds a record with its cursor.
    pub fn push(&self, cursor: DateTime<Utc>, record: Record) {
        self.records
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push((cursor, record));
    }

    /// Removes every record for which `keep` is false.
    pub fn retain(&self, mut keep: impl FnMut(&DateTime<Utc>, &Record) -> bool) {
        self.records
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(c, r)| keep(c, r));
    }

    fn select(&self, window: Window) -> Vec<Record> {
        let records = self.records.read().unwrap_or_else(|e| e.into_inner());
        let mut hits: Vec<&CursorRecord> = records
            .iter()
            .filter(|(c, _)| window.contains(*c))
            .collect();
        hits.sort_by_key(|(c, _)| *c);
        hits.into_iter().map(|(_, r)| r.clone()).collect()
    }
}

#[async_trait]
impl Source for MemorySource {
    fn identity(&self) -> String {
        format!("memory://{}", self.name)
    }

    fn read(&self, window: Window) -> PageStream<'_> {
        let mut rows = self.select(window);
        let truncated = self.row_cap.is_some_and(|cap| rows.len() > cap);
        if let Some(cap) = self.row_cap {
            rows.truncate(cap);
        }
        let mut pages: Vec<Result<Page, ConnectorError>> = rows
            .chunks(self.page_size)
            .map(|c| {
                Ok(Page {
                    records: c.to_vec(),
                    truncated: false,
                })
            })
            .collect();
        if truncated {
            if let Some(Ok(last)) = pages.last_mut() {
                last.truncated = true;
            }
        }
        Box::pin(futures::stream::iter(pages))
    }

    async fn count(&self, window: Window) -> Result<Option<u64>, ConnectorError> {
        Ok(Some(self.select(window).len() as u64))
    }
}

#[derive(Debug, Default)]
struct Table {
    schema: Option<TableSchema>,
    rows: BTreeMap<String, Row>,
    appended: u64,
}

/// Tables held in memory, upserted by key; for tests and benchmarks.
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    tables: Arc<Mutex<HashMap<String, Table>>>,
    script: Arc<Mutex<std::collections::VecDeque<Option<ConnectorError>>>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next writes fail with these errors, one per write, in order.
    pub fn fail_next(&self, errors: impl IntoIterator<Item = ConnectorError>) {
        let mut script = self.script.lock().unwrap_or_else(|e| e.into_inner());
        script.clear();
        script.extend(errors.into_iter().map(Some));
    }

    /// Lets `n` writes succeed, then fails the next one with `error`.
    pub fn fail_after(&self, n: usize, error: ConnectorError) {
        let mut script = self.script.lock().unwrap_or_else(|e| e.into_inner());
        script.clear();
        script.extend(std::iter::repeat_with(|| None).take(n));
        script.push_back(Some(error));
    }

    /// The rows of `table`, keyed by the canonical form of their key.
    pub fn rows(&self, table: &str) -> BTreeMap<String, Row> {
        self.tables
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(table)
            .map(|t| t.rows.clone())
            .unwrap_or_default()
    }

    /// Number of rows in `table`.
    pub fn len(&self, table: &str) -> usize {
        self.tables
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(table)
            .map_or(0, |t| t.rows.len())
    }

    /// True when `table` has no rows.
    pub fn is_empty(&self, table: &str) -> bool {
        self.len(table) == 0
    }
}

#[async_trait]
impl Sink for MemorySink {
    async fn prepare(&self, schema: &TableSchema) -> Result<(), ConnectorError> {
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        tables.entry(schema.name.clone()).or_default().schema = Some(schema.clone());
        Ok(())
    }

    async fn write(&self, schema: &TableSchema, batch: &Batch) -> Result<Receipt, ConnectorError> {
        let scripted = self
            .script
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
            .flatten();
        if let Some(e) = scripted {
            return Err(e);
        }
        let keys = schema.key_indexes().map_err(ConnectorError::permanent)?;
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        let table = tables.get_mut(&schema.name).ok_or_else(|| {
            ConnectorError::permanent(format!("table `{}` was not prepared", schema.name))
        })?;
        let mut seen = std::collections::HashSet::new();
        let (mut inserted, mut updated) = (0, 0);
        for row in &batch.rows {
            if row.len() != schema.columns.len() {
                return Err(ConnectorError::permanent(format!(
                    "row has {} values, table `{}` has {} columns",
                    row.len(),
                    schema.name,
                    schema.columns.len()
                )));
            }
            let mut key = String::new();
            match schema.write_mode {
                WriteMode::Upsert => {
                    for &i in &keys {
                        row[i].write_canonical(&mut key);
                    }
                    // Like a Databricks MERGE: duplicate source keys are an error.
                    if !seen.insert(key.clone()) {
                        return Err(ConnectorError::permanent(format!(
                            "batch has duplicate key {key} for table `{}`",
                            schema.name
                        )));
                    }
                }
                WriteMode::Append => {
                    table.appended += 1;
                    key = format!("#{:020}", table.appended);
                }
            }
            if table.rows.insert(key, row.clone()).is_some() {
                updated += 1;
            } else {
                inserted += 1;
            }
        }
        Ok(Receipt {
            statement_ids: Vec::new(),
            rows_written: batch.rows.len() as u64,
            inserted: Some(inserted),
            updated: Some(updated),
            ..Receipt::default()
        })
    }

    async fn count(
        &self,
        schema: &TableSchema,
        window: Window,
    ) -> Result<Option<u64>, ConnectorError> {
        let Some(c) = schema
            .cursor_column
            .as_deref()
            .and_then(|c| schema.index_of(c))
        else {
            return Ok(None);
        };
        let tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        Ok(Some(tables.get(&schema.name).map_or(0, |t| {
            t.rows
                .values()
                .filter(|r| r[c].as_cursor().is_some_and(|x| window.contains(x)))
                .count() as u64
        })))
    }

    async fn row_hashes(
        &self,
        schema: &TableSchema,
        window: Option<Window>,
    ) -> Result<Option<Vec<KeyedHash>>, ConnectorError> {
        let keys = schema.key_indexes().map_err(ConnectorError::permanent)?;
        let cursor = schema
            .cursor_column
            .as_deref()
            .and_then(|c| schema.index_of(c));
        let hash = schema.row_hash_index();
        let deleted = schema.index_of(crate::schema::LINEAGE_DELETED_AT);
        let tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        let Some(t) = tables.get(&schema.name) else {
            return Ok(Some(Vec::new()));
        };
        Ok(Some(
            t.rows
                .values()
                .filter(|r| deleted.is_none_or(|d| r[d].is_null()))
                .filter(|r| match (window, cursor) {
                    (None, _) => true,
                    (Some(w), Some(c)) => r[c].as_cursor().is_some_and(|x| w.contains(x)),
                    (Some(_), None) => false,
                })
                .map(|r| KeyedHash {
                    key: keys.iter().map(|&i| r[i].clone()).collect(),
                    hash: hash.and_then(|h| match &r[h] {
                        Value::String(s) => Some(s.clone()),
                        _ => None,
                    }),
                })
                .collect(),
        ))
    }

    async fn delete(
        &self,
        schema: &TableSchema,
        keys: &[Vec<Value>],
        policy: DeletePolicy,
        deleted_at: DateTime<Utc>,
    ) -> Result<u64, ConnectorError> {
        let deleted = schema.index_of(crate::schema::LINEAGE_DELETED_AT);
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        let Some(t) = tables.get_mut(&schema.name) else {
            return Ok(0);
        };
        let mut n = 0;
        for key in keys {
            let mut k = String::new();
            for v in key {
                v.write_canonical(&mut k);
            }
            match policy {
                DeletePolicy::Ignore => {}
                DeletePolicy::Hard => n += u64::from(t.rows.remove(&k).is_some()),
                DeletePolicy::Soft => {
                    if let (Some(row), Some(d)) = (t.rows.get_mut(&k), deleted) {
                        if row[d].is_null() {
                            row[d] = Value::Timestamp(deleted_at);
                        }
                        n += 1;
                    }
                }
            }
        }
        Ok(n)
    }
}
