//! The [`Sink`] trait: writes batches of typed rows idempotently.

use async_trait::async_trait;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::error::ConnectorError;
use crate::schema::TableSchema;
use crate::value::{Row, Value};
use crate::window::Window;

/// One live target row as reconciliation sees it: its key values and its
/// [`ROW_HASH_COLUMN`](crate::schema::ROW_HASH_COLUMN).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyedHash {
    /// The primary-key values, in key order, typed by the schema.
    pub key: Vec<Value>,
    /// The stored row hash (`None` for rows written before the column existed).
    pub hash: Option<String>,
}

/// How rows deleted in the source are applied to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeletePolicy {
    /// Set [`LINEAGE_DELETED_AT`](crate::schema::LINEAGE_DELETED_AT) (default); a later load
    /// of the key sets it back to NULL.
    #[default]
    Soft,
    /// Delete the rows.
    Hard,
    /// Leave the target as it is (deletes are still reported).
    Ignore,
}

/// A batch of rows for one table, already deduplicated by key.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Rows aligned with the schema passed to [`Sink::write`] (lineage columns included).
    pub rows: Vec<Row>,
    /// The window the rows were read for.
    pub window: Window,
    /// The run that produced the batch.
    pub run_id: String,
    /// The stream name.
    pub stream: String,
    /// For an [effective-dated](crate::EffectiveDated) table: the as-of date (today in the
    /// site's zone) at which the sink recomputes the current flag of every entity in the batch,
    /// in the same transaction or right after the rows (see
    /// [`Sink::maintains_current_flags`]). `None`: the flags are written as they come.
    pub as_of: Option<NaiveDate>,
}

/// What the sink confirms after a batch is durably written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Identifiers of the statements or transactions that wrote the batch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statement_ids: Vec<String>,
    /// Rows the sink accepted (inserted + updated + unchanged).
    pub rows_written: u64,
    /// Rows inserted, when the sink knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inserted: Option<u64>,
    /// Rows updated, when the sink knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<u64>,
    /// Data statements (or transactions) the sink sent for the batch, when it counts them.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub statements: u64,
    /// Bytes of statement text sent (a SQL sink's request volume), when it counts them.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sql_bytes: u64,
    /// Files staged for a bulk load (uploaded, loaded, then removed), when the sink stages.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub files_staged: u64,
    /// Bytes of the staged files.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bytes_staged: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Receipt {
    /// Adds another receipt's counts and ids to this one.
    pub fn absorb(&mut self, other: Receipt) {
        self.statement_ids.extend(other.statement_ids);
        self.rows_written += other.rows_written;
        self.inserted = add_opt(self.inserted, other.inserted);
        self.updated = add_opt(self.updated, other.updated);
        self.statements += other.statements;
        self.sql_bytes += other.sql_bytes;
        self.files_staged += other.files_staged;
        self.bytes_staged += other.bytes_staged;
    }
}

fn add_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    }
}

/// A destination for typed rows.
///
/// Contract the engine relies on:
/// - [`write`](Sink::write) is idempotent for [`WriteMode::Upsert`](crate::WriteMode::Upsert):
///   writing the same batch twice leaves the table as writing it once.
/// - `Ok(receipt)` means the rows are durably committed; the engine advances the checkpoint
///   only after that.
///
/// Effective-dated tables ([`TableSchema::effective_dating`]) need more: a sink that
/// [maintains current flags](Sink::maintains_current_flags) recomputes the current flag of the
/// entities of each batch that carries [`Batch::as_of`], and of the whole table in
/// [`refresh_current`](Sink::refresh_current). The engine refuses to build a pipeline that
/// writes an effective-dated table into a sink that does not, rather than let the flags go
/// stale across windows.
///
/// The trait is object-safe: pipelines hold `Arc<dyn Sink>`.
#[async_trait]
pub trait Sink: Send + Sync {
    /// Creates the target table if needed and adds missing columns. Called once per stream per
    /// cycle, before any write. `schema` includes the lineage columns.
    async fn prepare(&self, schema: &TableSchema) -> Result<(), ConnectorError>;

    /// Writes one batch and returns what was written.
    async fn write(&self, schema: &TableSchema, batch: &Batch) -> Result<Receipt, ConnectorError>;

    /// Counts target rows whose cursor column is in `window`, for completeness checks.
    /// `Ok(None)` means the sink cannot count.
    async fn count(
        &self,
        schema: &TableSchema,
        window: Window,
    ) -> Result<Option<u64>, ConnectorError> {
        let _ = (schema, window);
        Ok(None)
    }

    /// Keys and row hashes of the **live** target rows (not soft-deleted) whose cursor is in
    /// `window` (`None`: every row), for reconciliation. `Ok(None)` means the sink cannot.
    async fn row_hashes(
        &self,
        schema: &TableSchema,
        window: Option<Window>,
    ) -> Result<Option<Vec<KeyedHash>>, ConnectorError> {
        let _ = (schema, window);
        Ok(None)
    }

    /// Applies source deletes to the rows with these keys: [`DeletePolicy::Soft`] stamps
    /// `deleted_at`, [`DeletePolicy::Hard`] removes them. Returns the rows affected. Must be
    /// idempotent (the engine may retry it).
    async fn delete(
        &self,
        schema: &TableSchema,
        keys: &[Vec<Value>],
        policy: DeletePolicy,
        deleted_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, ConnectorError> {
        let _ = (schema, keys, policy, deleted_at);
        Err(ConnectorError::permanent(format!(
            "table `{}`: this destination cannot apply deletes; set `deletes = \"ignore\"` for the stream",
            schema.name
        )))
    }

    /// True when this sink keeps the current flag of
    /// [effective-dated](crate::EffectiveDated) tables right: [`write`](Sink::write) recomputes
    /// it for every entity of a batch with [`Batch::as_of`] set (rows already in the table
    /// included), and [`refresh_current`](Sink::refresh_current) for the whole table. Default
    /// `false`: the engine then rejects effective-dated streams for this sink.
    fn maintains_current_flags(&self) -> bool {
        false
    }

    /// Recomputes the current flag of every entity of the effective-dated table `schema` as of
    /// `as_of` (the engine's daily sweep, which makes future-dated rows current on their date).
    /// Must be idempotent. The default fails: sinks that return `true` from
    /// [`maintains_current_flags`](Sink::maintains_current_flags) override it.
    async fn refresh_current(
        &self,
        schema: &TableSchema,
        as_of: NaiveDate,
    ) -> Result<Receipt, ConnectorError> {
        let _ = as_of;
        Err(ConnectorError::permanent(format!(
            "this sink does not maintain the current flags of effective-dated table `{}`",
            schema.name
        )))
    }
}

/// A shared sink is a sink: a caller can keep the `Arc` to inspect the destination while the
/// pipeline writes to it.
#[async_trait]
impl<T: Sink + ?Sized> Sink for std::sync::Arc<T> {
    async fn prepare(&self, schema: &TableSchema) -> Result<(), ConnectorError> {
        (**self).prepare(schema).await
    }

    async fn write(&self, schema: &TableSchema, batch: &Batch) -> Result<Receipt, ConnectorError> {
        (**self).write(schema, batch).await
    }

    async fn count(
        &self,
        schema: &TableSchema,
        window: Window,
    ) -> Result<Option<u64>, ConnectorError> {
        (**self).count(schema, window).await
    }

    async fn row_hashes(
        &self,
        schema: &TableSchema,
        window: Option<Window>,
    ) -> Result<Option<Vec<KeyedHash>>, ConnectorError> {
        (**self).row_hashes(schema, window).await
    }

    async fn delete(
        &self,
        schema: &TableSchema,
        keys: &[Vec<Value>],
        policy: DeletePolicy,
        deleted_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, ConnectorError> {
        (**self).delete(schema, keys, policy, deleted_at).await
    }

    fn maintains_current_flags(&self) -> bool {
        (**self).maintains_current_flags()
    }

    async fn refresh_current(
        &self,
        schema: &TableSchema,
        as_of: NaiveDate,
    ) -> Result<Receipt, ConnectorError> {
        (**self).refresh_current(schema, as_of).await
    }
}
