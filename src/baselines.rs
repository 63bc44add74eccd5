//! Write-back baselines in Databricks, shared by every worker of a pipeline.
//!
//! With `state.kind = "databricks"`, the checkpoints, leases and audit of a pipeline live in
//! the destination's schema so that several workers can run it; the write-back's baselines
//! (what the last sync saw of each PeopleSoft record) must be shared the same way. Otherwise a
//! worker that did not seed or write a record itself finds no baseline and reports every
//! differing record as a conflict.
//!
//! The table is `<catalog>.<schema>._ml_writeback_baselines`, keyed by (pipeline, stream,
//! key), one row per record with the baseline as JSON. It is created at the first write; a
//! read before that (a first `run --dry-run`) finds no baselines and creates nothing.
//!
//! Reads ask for the keys of a whole batch at once (`key IN (…)`, [`KEYS_PER_QUERY`] keys per
//! statement), so a batch costs a statement per thousand records, not one per record. Writes
//! are one keyed MERGE per batch (split only by the statement size limit), so a retried write
//! changes nothing.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use databricks_client::{sql, DatabricksClient, DatabricksSink, Statement, TableName};
use peoplesoft_client::writeback::{Baseline, BaselineStore, BaselineStoreError};
use sync_core::{Batch, ColumnDef, ColumnType, TableSchema, Value, Window, WriteMode};
use tokio::sync::OnceCell;

/// The table's name in the destination's catalog and schema.
pub const BASELINE_TABLE: &str = "_ml_writeback_baselines";

/// Keys looked up by one `SELECT … WHERE key IN (…)` (a few tens of KB of statement text).
pub const KEYS_PER_QUERY: usize = 1_000;

/// A [`BaselineStore`] in a Delta table (see the [module docs](self)).
#[derive(Debug)]
pub struct DatabricksBaselineStore {
    client: DatabricksClient,
    sink: DatabricksSink,
    table: TableName,
    pipeline: String,
    created: OnceCell<()>,
}

impl DatabricksBaselineStore {
    /// Baselines of `pipeline` in `<catalog>.<schema>._ml_writeback_baselines` of the client's
    /// default catalog and schema (an error names a missing one).
    pub fn new(client: DatabricksClient, pipeline: impl Into<String>) -> Result<Self, String> {
        let sink =
            DatabricksSink::from_config_defaults(client.clone()).map_err(|e| e.to_string())?;
        let table = sink
            .table_name(&Self::schema())
            .map_err(|e| e.to_string())?;
        Ok(Self {
            client,
            sink,
            table,
            pipeline: pipeline.into(),
            created: OnceCell::new(),
        })
    }

    /// The table.
    pub fn table(&self) -> &TableName {
        &self.table
    }

    fn schema() -> TableSchema {
        let s = |n: &str| ColumnDef::new(n, ColumnType::String).not_null();
        TableSchema {
            name: BASELINE_TABLE.to_string(),
            columns: vec![
                s("pipeline"),
                s("stream"),
                s("key"),
                s("baseline_json"),
                ColumnDef::new("recorded_at", ColumnType::Timestamp).not_null(),
            ],
            primary_key: ["pipeline", "stream", "key"].map(String::from).to_vec(),
            cursor_column: Some("recorded_at".into()),
            write_mode: WriteMode::Upsert,
            effective_dating: None,
        }
    }

    fn err(&self, what: &str, e: impl std::fmt::Display) -> BaselineStoreError {
        BaselineStoreError(format!(
            "Databricks table {} ({what}): {e}",
            self.table.full_name()
        ))
    }

    /// The baselines of `keys` of `stream` (empty while the table does not exist), with one
    /// query per [`KEYS_PER_QUERY`] keys.
    async fn load(
        &self,
        stream: &str,
        keys: &[String],
    ) -> Result<HashMap<String, Baseline>, BaselineStoreError> {
        if self.created.get().is_none() {
            match self.client.table(&self.table).await {
                Ok(Some(_)) => {}
                Ok(None) => return Ok(HashMap::new()),
                Err(e) => return Err(self.err("read", e)),
            }
        }
        let mut out = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(KEYS_PER_QUERY) {
            let mut text = sql::select_where_equal(
                &self.table,
                &["key", "baseline_json"],
                &["pipeline", "stream"],
                &[],
            );
            text.push_str(" AND `key` IN (");
            for (i, key) in chunk.iter().enumerate() {
                if i > 0 {
                    text.push_str(", ");
                }
                text.push_str(&sql::string_literal(key));
            }
            text.push(')');
            let statement = Statement::new(text)
                .param("pipeline", &Value::String(self.pipeline.clone()))
                .param("stream", &Value::String(stream.to_string()))
                .idempotent(true);
            let rows = async { self.client.execute(&statement).await?.collect_rows().await }
                .await
                .map_err(|e| self.err("read", e))?;
            self.decode(rows, &mut out)?;
        }
        Ok(out)
    }

    fn decode(
        &self,
        rows: Vec<sync_core::Row>,
        out: &mut HashMap<String, Baseline>,
    ) -> Result<(), BaselineStoreError> {
        for row in rows {
            let (Some(Value::String(key)), Some(Value::String(json))) = (row.first(), row.get(1))
            else {
                return Err(self.err("read", "a row without its key or baseline"));
            };
            let baseline: Baseline = serde_json::from_str(json)
                .map_err(|e| self.err("read", format!("key {key}: not a baseline: {e}")))?;
            out.insert(key.clone(), baseline);
        }
        Ok(())
    }
}

#[async_trait]
impl BaselineStore for DatabricksBaselineStore {
    async fn get(&self, stream: &str, key: &str) -> Result<Option<Baseline>, BaselineStoreError> {
        Ok(self.get_many(stream, &[key.to_string()]).await?.remove(key))
    }

    async fn get_many(
        &self,
        stream: &str,
        keys: &[String],
    ) -> Result<HashMap<String, Baseline>, BaselineStoreError> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let mut distinct = keys.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        self.load(stream, &distinct).await
    }

    async fn put_many(
        &self,
        stream: &str,
        entries: Vec<(String, Baseline)>,
    ) -> Result<(), BaselineStoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let schema = Self::schema();
        self.created
            .get_or_try_init(|| async {
                self.client
                    .ensure_table(&self.table, &schema)
                    .await
                    .map(|_| ())
            })
            .await
            .map_err(|e| self.err("create", e))?;
        // One row per key (the last entry wins), as a keyed MERGE needs.
        let latest: BTreeMap<String, Baseline> = entries.into_iter().collect();
        let mut rows = Vec::with_capacity(latest.len());
        for (key, baseline) in latest {
            let json = serde_json::to_string(&baseline).map_err(|e| self.err("write", e))?;
            rows.push(vec![
                Value::String(self.pipeline.clone()),
                Value::String(stream.to_string()),
                Value::String(key),
                Value::String(json),
                Value::Timestamp(baseline.recorded_at),
            ]);
        }
        let epoch = DateTime::<Utc>::UNIX_EPOCH;
        let batch = Batch {
            rows,
            // Not a window of data: the sink needs one only to name staged files, and this
            // sink never stages.
            window: Window::new(epoch, epoch + chrono::Duration::seconds(1)),
            run_id: "baselines".into(),
            stream: stream.to_string(),
            as_of: None,
        };
        self.sink
            .write_rows(&schema, &batch)
            .await
            .map(|_| ())
            .map_err(|e| self.err("write", e))
    }
}
