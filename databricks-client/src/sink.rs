//! [`DatabricksSink`]: loads typed rows into Delta tables with keyed MERGE (or INSERT for
//! append-only streams) through the Statement Execution API.

use async_trait::async_trait;
use sync_core::{
    Batch, ColumnDef, ColumnType, ConnectorError, DeletePolicy, KeyedHash, Receipt, Sink,
    TableSchema, Value, Window, WriteMode,
};

use crate::client::DatabricksClient;
use crate::error::{Error, Result};
use crate::sql::{self, validate_object_name, SqlError, TableName};
use crate::statement::{Parameter, Statement};

/// A [`Sink`] writing into `catalog.schema.<TableSchema::name>` on a SQL warehouse.
///
/// - [`prepare`](Sink::prepare) creates the schema and managed Delta table if needed and adds
///   missing columns (a separate step before any data statement).
/// - [`write`](Sink::write) upserts by primary key with MERGE (idempotent: re-running a batch
///   changes nothing, so the statement POST may be retried), or INSERTs for
///   [`WriteMode::Append`] (not idempotent: retried only when the server certainly did not
///   run it). Batches are split to stay under the configured statement size.
/// - Lineage columns are ordinary columns of the schema it is given.
#[derive(Debug, Clone)]
pub struct DatabricksSink {
    client: DatabricksClient,
    catalog: String,
    schema: String,
}

impl DatabricksSink {
    /// A sink writing tables into `catalog.schema`.
    pub fn new(
        client: DatabricksClient,
        catalog: impl Into<String>,
        schema: impl Into<String>,
    ) -> Result<Self> {
        let (catalog, schema) = (catalog.into(), schema.into());
        validate_object_name("catalog", &catalog)?;
        validate_object_name("schema", &schema)?;
        Ok(Self {
            client,
            catalog,
            schema,
        })
    }

    /// A sink using the configured default catalog and schema.
    pub fn from_config_defaults(client: DatabricksClient) -> Result<Self> {
        let missing = |what: &str| {
            crate::config::ConfigError(format!(
                "the sink needs a default {what}: set it with ConfigBuilder::{what}"
            ))
        };
        let catalog = client
            .config()
            .catalog()
            .ok_or_else(|| missing("catalog"))?
            .to_string();
        let schema = client
            .config()
            .schema()
            .ok_or_else(|| missing("schema"))?
            .to_string();
        Self::new(client, catalog, schema)
    }

    /// The client.
    pub fn client(&self) -> &DatabricksClient {
        &self.client
    }

    /// The qualified name of the table for `schema`.
    pub fn table_name(&self, schema: &TableSchema) -> Result<TableName, SqlError> {
        TableName::new(&self.catalog, &self.schema, &schema.name)
    }

    /// Writes `rows` and returns the receipt (the logic behind [`Sink::write`]).
    pub async fn write_rows(&self, schema: &TableSchema, batch: &Batch) -> Result<Receipt> {
        let mut receipt = Receipt::default();
        if batch.rows.is_empty() {
            return Ok(receipt);
        }
        let table = self.table_name(schema)?;
        let limit = self.client.config().options().max_statement_bytes;
        let (statements, idempotent) = match schema.write_mode {
            WriteMode::Upsert => (
                sql::merge_statements(&table, schema, &batch.rows, limit)?,
                true,
            ),
            WriteMode::Append => (
                sql::insert_statements(&table, schema, &batch.rows, limit)?,
                false,
            ),
        };
        let (mut inserted, mut updated) = (None::<u64>, None::<u64>);
        for text in statements {
            let result = self
                .client
                .execute(&Statement::new(text).idempotent(idempotent))
                .await?;
            let counts = result.dml_counts();
            tracing::debug!(
                table = %table.full_name(),
                statement_id = result.statement_id(),
                ?counts,
                "batch statement done"
            );
            receipt
                .statement_ids
                .push(result.statement_id().to_string());
            if let Some(i) = counts.inserted {
                inserted = Some(inserted.unwrap_or(0) + i);
            }
            if let Some(u) = counts.updated {
                updated = Some(updated.unwrap_or(0) + u);
            }
        }
        receipt.rows_written = batch.rows.len() as u64;
        receipt.inserted = inserted;
        receipt.updated = updated;
        Ok(receipt)
    }

    /// Counts target rows with the cursor in `window` (the logic behind [`Sink::count`]).
    pub async fn count_rows(&self, schema: &TableSchema, window: Window) -> Result<u64> {
        let table = self.table_name(schema)?;
        let cursor = cursor_column(schema)?;
        let st = window_parameters(
            Statement::new(sql::count_in_window(&table, cursor)),
            cursor,
            window,
        )
        .idempotent(true);
        let rows = self.client.execute(&st).await?.collect_rows().await?;
        match rows.first().and_then(|r| r.first()) {
            Some(Value::BigInt(n)) if *n >= 0 => Ok(*n as u64),
            Some(Value::Int(n)) if *n >= 0 => Ok(*n as u64),
            other => Err(Error::Decode {
                what: format!("row count of {}", table.full_name()),
                message: format!("expected one non-negative integer, got {other:?}"),
                raw: None,
            }),
        }
    }
}

/// The cursor column of a schema, or an error naming the table.
pub(crate) fn cursor_column(schema: &TableSchema) -> Result<&ColumnDef, SqlError> {
    let bad = |reason: String| SqlError::BadSchema {
        table: schema.name.clone(),
        reason,
    };
    let name = schema
        .cursor_column
        .as_deref()
        .ok_or_else(|| bad("no cursor column is set".into()))?;
    let i = schema
        .index_of(name)
        .ok_or_else(|| bad(format!("cursor column `{name}` is not a column")))?;
    let c = &schema.columns[i];
    match c.column_type {
        ColumnType::Timestamp | ColumnType::Date => Ok(c),
        t => Err(bad(format!(
            "cursor column `{name}` is {t}; it must be TIMESTAMP or DATE"
        ))),
    }
}

/// Binds `:window_from` / `:window_to` for [`sql::window_condition`].
pub(crate) fn window_parameters(st: Statement, cursor: &ColumnDef, window: Window) -> Statement {
    match cursor.column_type {
        ColumnType::Date => {
            let ntz = |t: chrono::DateTime<chrono::Utc>| {
                Parameter::typed(
                    "",
                    Some(t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()),
                    "TIMESTAMP_NTZ",
                )
            };
            st.parameter(Parameter {
                name: "window_from".into(),
                ..ntz(window.from)
            })
            .parameter(Parameter {
                name: "window_to".into(),
                ..ntz(window.to)
            })
        }
        _ => st
            .param("window_from", &Value::Timestamp(window.from))
            .param("window_to", &Value::Timestamp(window.to)),
    }
}

#[async_trait]
impl Sink for DatabricksSink {
    async fn prepare(&self, schema: &TableSchema) -> Result<(), ConnectorError> {
        let table = self.table_name(schema).map_err(Error::from)?;
        self.client.ensure_table(&table, schema).await?;
        Ok(())
    }

    async fn write(&self, schema: &TableSchema, batch: &Batch) -> Result<Receipt, ConnectorError> {
        Ok(self.write_rows(schema, batch).await?)
    }

    async fn count(
        &self,
        schema: &TableSchema,
        window: Window,
    ) -> Result<Option<u64>, ConnectorError> {
        Ok(Some(self.count_rows(schema, window).await?))
    }

    async fn row_hashes(
        &self,
        schema: &TableSchema,
        window: Option<Window>,
    ) -> Result<Option<Vec<KeyedHash>>, ConnectorError> {
        Ok(Some(self.read_row_hashes(schema, window).await?))
    }

    async fn delete(
        &self,
        schema: &TableSchema,
        keys: &[Vec<Value>],
        policy: DeletePolicy,
        deleted_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, ConnectorError> {
        Ok(self.apply_deletes(schema, keys, policy, deleted_at).await?)
    }
}

impl DatabricksSink {
    /// Keys and row hashes of the live rows, optionally with the cursor in `window` (the logic
    /// behind [`Sink::row_hashes`]).
    pub async fn read_row_hashes(
        &self,
        schema: &TableSchema,
        window: Option<Window>,
    ) -> Result<Vec<KeyedHash>> {
        let table = self.table_name(schema)?;
        let keys = schema.primary_key.len();
        let mut st = match window {
            Some(w) => {
                let cursor = cursor_column(schema)?;
                window_parameters(
                    Statement::new(sql::select_row_hashes(&table, schema, Some(cursor))?),
                    cursor,
                    w,
                )
            }
            None => Statement::new(sql::select_row_hashes(&table, schema, None)?),
        };
        st = st.idempotent(true);
        let rows = self.client.execute(&st).await?.collect_rows().await?;
        Ok(rows
            .into_iter()
            .map(|mut r| {
                let hash = match r.pop() {
                    Some(Value::String(s)) => Some(s),
                    _ => None,
                };
                r.truncate(keys);
                KeyedHash { key: r, hash }
            })
            .collect())
    }

    /// Applies source deletes by policy (the logic behind [`Sink::delete`]): one idempotent
    /// MERGE per statement-size chunk of keys.
    pub async fn apply_deletes(
        &self,
        schema: &TableSchema,
        keys: &[Vec<Value>],
        policy: DeletePolicy,
        deleted_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64> {
        let soft_at = match policy {
            DeletePolicy::Ignore => return Ok(0),
            DeletePolicy::Soft => Some(deleted_at),
            DeletePolicy::Hard => None,
        };
        if keys.is_empty() {
            return Ok(0);
        }
        let table = self.table_name(schema)?;
        let limit = self.client.config().options().max_statement_bytes;
        let mut n = 0;
        for text in sql::delete_statements(&table, schema, keys, soft_at, limit)? {
            let result = self
                .client
                .execute(&Statement::new(text).idempotent(true))
                .await?;
            let c = result.dml_counts();
            n += c.updated.unwrap_or(0) + c.deleted.unwrap_or(0);
        }
        Ok(n)
    }
}
