//! Checkpoint state and the audit log kept in Delta tables, next to the data, for
//! deployments that run on many machines.
//!
//! Both write with a keyed MERGE (idempotent, so a retried write is harmless) and create their
//! table on first use. They do **not** take a lease on the pipeline: two processes running the
//! same pipeline against one state table are not prevented from doing so.

use async_trait::async_trait;
use sync_core::audit::{AuditEntry, AuditLog};
use sync_core::state::{CheckpointStore, PipelineState, StreamState, STATE_FORMAT_VERSION};
use sync_core::{ColumnDef, ColumnType, Row, TableSchema, Value, WriteMode};
use tokio::sync::OnceCell;

use crate::client::DatabricksClient;
use crate::error::{Error, Result};
use crate::sql::{self, TableName};
use crate::statement::Statement;

/// Default table name of the checkpoint store.
pub const DEFAULT_STATE_TABLE: &str = "_ml_checkpoints";
/// Default table name of the audit log.
pub const DEFAULT_AUDIT_TABLE: &str = "_ml_audit";

async fn run_merge(
    client: &DatabricksClient,
    table: &TableName,
    schema: &TableSchema,
    row: Row,
) -> Result<()> {
    let limit = client.config().options().max_statement_bytes;
    for text in sql::merge_statements(table, schema, &[row], limit)? {
        client
            .execute(&Statement::new(text).idempotent(true))
            .await?;
    }
    Ok(())
}

fn default_table(client: &DatabricksClient, name: &str) -> Result<TableName> {
    let missing = |what: &str| {
        crate::config::ConfigError(format!(
            "the Databricks state tables need a default {what}: set it with ConfigBuilder::{what}"
        ))
    };
    let catalog = client
        .config()
        .catalog()
        .ok_or_else(|| missing("catalog"))?;
    let schema = client.config().schema().ok_or_else(|| missing("schema"))?;
    Ok(TableName::new(catalog, schema, name)?)
}

fn text_at(row: &Row, i: usize) -> Option<&str> {
    match row.get(i) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

/// A [`CheckpointStore`] in a Delta table: one row per (pipeline, stream) holding the
/// stream's state as versioned JSON.
#[derive(Debug)]
pub struct DatabricksCheckpointStore {
    client: DatabricksClient,
    table: TableName,
    prepared: OnceCell<()>,
}

impl DatabricksCheckpointStore {
    /// A store in `<default catalog>.<default schema>.{DEFAULT_STATE_TABLE}` of the client's
    /// configuration (created on first use); an error names the missing setting.
    pub fn new(client: DatabricksClient) -> Result<Self> {
        let table = default_table(&client, DEFAULT_STATE_TABLE)?;
        Ok(Self::in_table(client, table))
    }

    /// A store in `table` (created on first use).
    pub fn in_table(client: DatabricksClient, table: TableName) -> Self {
        Self {
            client,
            table,
            prepared: OnceCell::new(),
        }
    }

    /// The table's schema.
    pub fn table_schema(&self) -> TableSchema {
        TableSchema {
            name: self.table.table().to_string(),
            columns: vec![
                ColumnDef::new("pipeline", ColumnType::String).not_null(),
                ColumnDef::new("stream", ColumnType::String).not_null(),
                ColumnDef::new("format_version", ColumnType::Int).not_null(),
                ColumnDef::new("state_json", ColumnType::String).not_null(),
                ColumnDef::new("updated_at", ColumnType::Timestamp).not_null(),
            ],
            primary_key: vec!["pipeline".into(), "stream".into()],
            cursor_column: None,
            write_mode: WriteMode::Upsert,
            effective_dating: None,
        }
    }

    fn err(&self, what: &str, e: impl std::fmt::Display) -> sync_core::Error {
        sync_core::Error::State(format!(
            "Databricks table {} ({what}): {e}",
            self.table.full_name()
        ))
    }

    async fn prepare(&self) -> Result<()> {
        self.prepared
            .get_or_try_init(|| async {
                self.client
                    .ensure_table(&self.table, &self.table_schema())
                    .await
                    .map(|_| ())
            })
            .await
            .map(|_| ())
    }

    async fn load_rows(&self, pipeline: &str) -> Result<Vec<Row>> {
        self.prepare().await?;
        let st = Statement::new(sql::select_where_equal(
            &self.table,
            &["stream", "format_version", "state_json"],
            &["pipeline"],
            &["stream"],
        ))
        .param("pipeline", &Value::String(pipeline.to_string()))
        .idempotent(true);
        self.client.execute(&st).await?.collect_rows().await
    }
}

#[async_trait]
impl CheckpointStore for DatabricksCheckpointStore {
    async fn load(&self, pipeline: &str) -> sync_core::Result<PipelineState> {
        let rows = self
            .load_rows(pipeline)
            .await
            .map_err(|e| self.err("load", e))?;
        let mut state = PipelineState::new(pipeline);
        for row in rows {
            let stream =
                text_at(&row, 0).ok_or_else(|| self.err("load", "a row has no stream name"))?;
            let origin = format!(
                "Databricks table {} row (pipeline `{pipeline}`, stream `{stream}`)",
                self.table.full_name()
            );
            match row.get(1) {
                Some(Value::Int(v)) if *v as u32 == STATE_FORMAT_VERSION => {}
                other => {
                    return Err(sync_core::Error::State(format!(
                        "{origin} has state format version {other:?}, this build reads version {STATE_FORMAT_VERSION}"
                    )))
                }
            }
            let json = text_at(&row, 2).unwrap_or("");
            let s: StreamState = serde_json::from_str(json).map_err(|e| {
                sync_core::Error::State(format!(
                    "{origin} is corrupt ({e}); refusing to start from zero. Fix or delete that row deliberately"
                ))
            })?;
            state.streams.insert(stream.to_string(), s);
        }
        Ok(state)
    }

    async fn save_stream(
        &self,
        pipeline: &str,
        stream: &str,
        state: &StreamState,
    ) -> sync_core::Result<()> {
        let json = serde_json::to_string(state).map_err(|e| self.err("save", e))?;
        let row = vec![
            Value::String(pipeline.to_string()),
            Value::String(stream.to_string()),
            Value::Int(STATE_FORMAT_VERSION as i32),
            Value::String(json),
            Value::Timestamp(chrono::Utc::now()),
        ];
        async {
            self.prepare().await?;
            run_merge(&self.client, &self.table, &self.table_schema(), row).await
        }
        .await
        .map_err(|e: Error| self.err("save", e))
    }
}

/// An [`AuditLog`] in a Delta table: one row per window attempt, with the main facts as
/// columns for SQL analysis and the whole entry as JSON for a lossless read-back.
#[derive(Debug)]
pub struct DatabricksAuditLog {
    client: DatabricksClient,
    table: TableName,
    prepared: OnceCell<()>,
}

impl DatabricksAuditLog {
    /// An audit log in `<default catalog>.<default schema>.{DEFAULT_AUDIT_TABLE}` of the client's
    /// configuration (created on first use); an error names the missing setting.
    pub fn new(client: DatabricksClient) -> Result<Self> {
        let table = default_table(&client, DEFAULT_AUDIT_TABLE)?;
        Ok(Self::in_table(client, table))
    }

    /// An audit log in `table` (created on first use).
    pub fn in_table(client: DatabricksClient, table: TableName) -> Self {
        Self {
            client,
            table,
            prepared: OnceCell::new(),
        }
    }

    /// The table's schema. The key is (pipeline, run id, stream, window, attempt), so a
    /// retried append changes nothing.
    pub fn table_schema(&self) -> TableSchema {
        let s = |n: &str| ColumnDef::new(n, ColumnType::String).not_null();
        let ts = |n: &str| ColumnDef::new(n, ColumnType::Timestamp).not_null();
        let n = |n: &str| ColumnDef::new(n, ColumnType::BigInt).not_null();
        TableSchema {
            name: self.table.table().to_string(),
            columns: vec![
                s("pipeline"),
                s("run_id"),
                s("stream"),
                ts("window_from"),
                ts("window_to"),
                ColumnDef::new("attempt", ColumnType::Int).not_null(),
                ts("started_at"),
                ts("finished_at"),
                n("rows_read"),
                n("rows_written"),
                n("rows_rejected"),
                s("outcome"),
                ColumnDef::new("error", ColumnType::String),
                s("statement_ids"),
                s("entry_json"),
            ],
            primary_key: [
                "pipeline",
                "run_id",
                "stream",
                "window_from",
                "window_to",
                "attempt",
            ]
            .map(String::from)
            .to_vec(),
            cursor_column: Some("started_at".into()),
            write_mode: WriteMode::Upsert,
            effective_dating: None,
        }
    }

    fn err(&self, what: &str, e: impl std::fmt::Display) -> sync_core::Error {
        sync_core::Error::Audit(format!(
            "Databricks table {} ({what}): {e}",
            self.table.full_name()
        ))
    }

    async fn prepare(&self) -> Result<()> {
        self.prepared
            .get_or_try_init(|| async {
                self.client
                    .ensure_table(&self.table, &self.table_schema())
                    .await
                    .map(|_| ())
            })
            .await
            .map(|_| ())
    }

    fn row(entry: &AuditEntry) -> std::result::Result<Row, String> {
        let count = |n: u64| {
            i64::try_from(n)
                .map(Value::BigInt)
                .map_err(|e| e.to_string())
        };
        let outcome = serde_json::to_value(entry.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        Ok(vec![
            Value::String(entry.pipeline.clone()),
            Value::String(entry.run_id.clone()),
            Value::String(entry.stream.clone()),
            Value::Timestamp(entry.window.from),
            Value::Timestamp(entry.window.to),
            Value::Int(i32::try_from(entry.attempt).map_err(|e| e.to_string())?),
            Value::Timestamp(entry.started_at),
            Value::Timestamp(entry.finished_at),
            count(entry.rows_read)?,
            count(entry.rows_written)?,
            count(entry.rows_rejected)?,
            Value::String(outcome),
            entry
                .error
                .clone()
                .map(Value::String)
                .unwrap_or(Value::Null),
            Value::String(entry.receipt.statement_ids.join(",")),
            Value::String(serde_json::to_string(entry).map_err(|e| e.to_string())?),
        ])
    }
}

#[async_trait]
impl AuditLog for DatabricksAuditLog {
    async fn append(&self, entry: &AuditEntry) -> sync_core::Result<()> {
        let row = Self::row(entry).map_err(|e| self.err("append", e))?;
        async {
            self.prepare().await?;
            run_merge(&self.client, &self.table, &self.table_schema(), row).await
        }
        .await
        .map_err(|e: Error| self.err("append", e))
    }

    async fn entries(
        &self,
        pipeline: &str,
        stream: Option<&str>,
    ) -> sync_core::Result<Vec<AuditEntry>> {
        let filters: &[&str] = if stream.is_some() {
            &["pipeline", "stream"]
        } else {
            &["pipeline"]
        };
        let mut st = Statement::new(sql::select_where_equal(
            &self.table,
            &["entry_json"],
            filters,
            &["started_at", "attempt"],
        ))
        .param("pipeline", &Value::String(pipeline.to_string()))
        .idempotent(true);
        if let Some(s) = stream {
            st = st.param("stream", &Value::String(s.to_string()));
        }
        let rows = async {
            self.prepare().await?;
            self.client.execute(&st).await?.collect_rows().await
        }
        .await
        .map_err(|e: Error| self.err("read", e))?;
        rows.iter()
            .map(|r| {
                let json = text_at(r, 0).unwrap_or("");
                serde_json::from_str(json)
                    .map_err(|e| self.err("read", format!("an entry is not valid JSON: {e}")))
            })
            .collect()
    }
}
