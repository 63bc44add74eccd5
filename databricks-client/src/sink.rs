//! [`DatabricksSink`]: loads typed rows into Delta tables with keyed MERGE (or INSERT for
//! append-only streams) through the Statement Execution API.

use async_trait::async_trait;
use sync_core::{
    Batch, ColumnDef, ColumnType, ConnectorError, DeletePolicy, KeyedHash, Receipt, Sink,
    TableSchema, Value, Window, WriteMode,
};

use crate::bulk::{BulkOptions, STAGING_DIR};
use crate::client::DatabricksClient;
use crate::error::{Error, Result};
use crate::sql::{self, validate_object_name, SqlError, TableName};
use crate::statement::{Parameter, Statement};

/// What [`DatabricksSink::check_staging`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StagingCheck {
    /// Bulk loads are off: there is nothing to check.
    Off,
    /// The volume is there, and a probe file was uploaded and deleted.
    Ready,
    /// The volume does not exist yet; the sink creates it at the first run (`create_volume`).
    WillBeCreated,
}

impl std::fmt::Display for StagingCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StagingCheck::Off => "bulk loads off",
            StagingCheck::Ready => "ok (listed, a probe file uploaded and deleted)",
            StagingCheck::WillBeCreated => {
                "missing; the first run creates it (needs CREATE VOLUME on the schema)"
            }
        })
    }
}

/// A [`Sink`] writing into `catalog.schema.<TableSchema::name>` on a SQL warehouse.
///
/// - [`prepare`](Sink::prepare) creates the schema and managed Delta table if needed and adds
///   missing columns (a separate step before any data statement).
/// - [`write`](Sink::write) upserts by primary key with MERGE (idempotent: re-running a batch
///   changes nothing, so the statement POST may be retried), or INSERTs for
///   [`WriteMode::Append`] (not idempotent: retried only when the server certainly did not
///   run it). Batches are split to stay under the configured statement size.
/// - Lineage columns are ordinary columns of the schema it is given.
/// - Effective-dated tables ([`TableSchema::effective_dating`]): after the rows of a batch with
///   [`Batch::as_of`], one more idempotent MERGE re-flags the current row of every entity in
///   the batch ([`sql::current_flags_statements`]; split only if the key list would pass the
///   statement size limit); [`refresh_current`](Sink::refresh_current) runs it for the whole
///   table. Its statement id is part of the receipt.
///
/// **Bulk loads** ([`bulk`](Self::bulk), cargo feature `bulk`): a batch of at least
/// [`BulkOptions::threshold`] rows is written as one Parquet file to a Unity Catalog volume,
/// loaded with **one** statement (`MERGE … USING (SELECT … FROM read_files(…))` for upserts,
/// `COPY INTO` for appends) and deleted; see [`crate::bulk`]. Smaller batches, and every batch
/// without bulk options, take the VALUES path above.
///
/// Each receipt counts the data statements sent, their SQL bytes, and the files and bytes
/// staged ([`Receipt::statements`], [`Receipt::sql_bytes`], [`Receipt::files_staged`],
/// [`Receipt::bytes_staged`]).
#[derive(Debug, Clone)]
pub struct DatabricksSink {
    client: DatabricksClient,
    catalog: String,
    schema: String,
    bulk: Option<BulkOptions>,
    /// Per (table, stream): the run whose first write cleaned the staging directory (shared
    /// by clones).
    cleaned: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<(String, String), String>>>,
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
            bulk: None,
            cleaned: Default::default(),
        })
    }

    /// Turns on bulk loads with `options` (see [`crate::bulk`]). Fails when the crate was
    /// built without its `bulk` feature, rather than quietly keep the VALUES path.
    pub fn bulk(mut self, options: BulkOptions) -> Result<Self> {
        if !cfg!(feature = "bulk") {
            return Err(crate::config::ConfigError(
                "bulk loads need databricks-client's cargo feature `bulk` (on by default); this build has it turned off".into(),
            )
            .into());
        }
        self.bulk = Some(options);
        Ok(self)
    }

    /// The bulk options, when bulk loads are on.
    pub fn bulk_options(&self) -> Option<&BulkOptions> {
        self.bulk.as_ref()
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
        if let Some(bulk) = &self.bulk {
            // Housekeeping only (staged names are deterministic, loads idempotent): a failure
            // is retried at the next write instead of failing this one.
            if let Err(e) = self.clean_staging_once(bulk, schema, batch).await {
                tracing::warn!(
                    table = %table.full_name(),
                    stream = %batch.stream,
                    "staged files of an earlier run not removed (tried again at the next write): {e}"
                );
            }
        }
        if let Some(bulk) = self
            .bulk
            .as_ref()
            .filter(|b| batch.rows.len() >= b.threshold_rows())
        {
            return self.write_staged(bulk, &table, schema, batch).await;
        }
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
            receipt.statements += 1;
            receipt.sql_bytes += text.len() as u64;
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
        self.current_flags_after_load(&table, schema, batch, &mut receipt)
            .await?;
        receipt.rows_written = batch.rows.len() as u64;
        receipt.inserted = inserted;
        receipt.updated = updated;
        Ok(receipt)
    }

    /// Effective-dated tables: re-flags the current rows of the batch's entities after the
    /// rows are in.
    async fn current_flags_after_load(
        &self,
        table: &TableName,
        schema: &TableSchema,
        batch: &Batch,
        receipt: &mut Receipt,
    ) -> Result<()> {
        if let (Some(_), Some(as_of)) = (&schema.effective_dating, batch.as_of) {
            let limit = self.client.config().options().max_statement_bytes;
            let statements =
                sql::current_flags_statements(table, schema, as_of, Some(&batch.rows), limit)?;
            receipt.statements += statements.len() as u64;
            receipt.sql_bytes += statements.iter().map(|s| s.len() as u64).sum::<u64>();
            receipt
                .statement_ids
                .extend(self.run_current_flags(table, statements).await?);
        }
        Ok(())
    }

    /// The bulk path: encode, upload, load with one statement, delete (whatever happened).
    #[cfg(feature = "bulk")]
    async fn write_staged(
        &self,
        bulk: &BulkOptions,
        table: &TableName,
        schema: &TableSchema,
        batch: &Batch,
    ) -> Result<Receipt> {
        if schema.write_mode == WriteMode::Upsert {
            // The engine deduplicates batches; a MERGE would fail on duplicates anyway.
            sql::check_unique_keys(table, schema, &batch.rows)?;
        }
        let data =
            crate::bulk::parquet_file::encode(table, schema, &batch.rows, bulk.page_compression())?;
        let dir = bulk.staging_dir(&schema.name, &batch.stream);
        let name = crate::bulk::staged_file_name(batch);
        let path = format!("{dir}/{name}");
        let bytes = data.len() as u64;
        let text = match schema.write_mode {
            WriteMode::Upsert => sql::merge_from_file(table, schema, &path)?,
            WriteMode::Append => sql::copy_into(table, &dir, &name),
        };
        let loaded = self.upload_and_load(bulk, &path, data, &text).await;
        // Best effort, whatever the load did: a file left behind is removed at the stream's
        // first write of the next run.
        if let Err(e) = self.client.delete_file(&path).await {
            tracing::warn!(
                file = %path,
                "staged file not deleted (the stream's next run removes it): {e}"
            );
        }
        let result = loaded?;
        let counts = result.dml_counts();
        tracing::debug!(
            table = %table.full_name(),
            statement_id = result.statement_id(),
            ?counts,
            file = %path,
            bytes,
            "bulk load done"
        );
        let mut receipt = Receipt {
            statement_ids: vec![result.statement_id().to_string()],
            statements: 1,
            sql_bytes: text.len() as u64,
            files_staged: 1,
            bytes_staged: bytes,
            inserted: counts.inserted,
            updated: counts.updated,
            ..Receipt::default()
        };
        self.current_flags_after_load(table, schema, batch, &mut receipt)
            .await?;
        receipt.rows_written = batch.rows.len() as u64;
        Ok(receipt)
    }

    #[cfg(feature = "bulk")]
    async fn upload_and_load(
        &self,
        bulk: &BulkOptions,
        path: &str,
        data: Vec<u8>,
        text: &str,
    ) -> Result<crate::statement::StatementResult> {
        self.client
            .upload_file(path, bytes::Bytes::from(data))
            .await
            .map_err(|e| staging_error(bulk, e))?;
        // Both load statements are idempotent: the MERGE is keyed, COPY INTO skips a file it
        // already loaded.
        self.client
            .execute(&Statement::new(text).idempotent(true))
            .await
    }

    #[cfg(not(feature = "bulk"))]
    async fn write_staged(
        &self,
        _bulk: &BulkOptions,
        _table: &TableName,
        _schema: &TableSchema,
        _batch: &Batch,
    ) -> Result<Receipt> {
        Err(crate::config::ConfigError(
            "bulk loads need databricks-client's cargo feature `bulk`".into(),
        )
        .into())
    }

    /// Bulk set-up at `prepare`: creates the volume when allowed and checks it is there
    /// (files left by an earlier run are removed at each stream's first write of a run).
    pub async fn prepare_staging(&self) -> Result<()> {
        let Some(bulk) = &self.bulk else {
            return Ok(());
        };
        let volume = bulk.volume();
        if bulk.creates_volume() {
            self.client
                .execute(&Statement::new(sql::create_volume(volume)).idempotent(true))
                .await
                .map_err(|e| match &e {
                    Error::StatementFailed { message, error_code, .. }
                        if is_permission(error_code.as_deref(), message) =>
                    {
                        Error::Staging {
                            volume: volume.full_name(),
                            message: format!(
                                "cannot create the volume ({message}); grant CREATE VOLUME on schema {}.{} (with USE CATALOG and USE SCHEMA), or create the volume and grant READ VOLUME and WRITE VOLUME on it",
                                volume.catalog(),
                                volume.schema()
                            ),
                        }
                    }
                    _ => e,
                })?;
        }
        match self.client.list_directory(&volume.path()).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(missing_volume(bulk)),
            Err(e) => Err(staging_error(bulk, e)),
        }
    }

    /// At a stream's first write of a run: deletes the files an earlier run of the stream
    /// left in its staging directory (a crash between upload and delete, a failed delete).
    async fn clean_staging_once(
        &self,
        bulk: &BulkOptions,
        schema: &TableSchema,
        batch: &Batch,
    ) -> Result<()> {
        let id = (schema.name.clone(), batch.stream.clone());
        let done = self
            .cleaned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .is_some_and(|run| *run == batch.run_id);
        if done {
            return Ok(());
        }
        let dir = bulk.staging_dir(&schema.name, &batch.stream);
        let entries = match self.client.list_directory(&dir).await {
            Ok(entries) => entries.unwrap_or_default(),
            Err(e) => return Err(staging_error(bulk, e)),
        };
        for entry in entries.iter().filter(|e| !e.is_directory) {
            tracing::info!(file = %entry.path, "deleting a staged file left by an earlier run");
            self.client
                .delete_file(&entry.path)
                .await
                .map_err(|e| staging_error(bulk, e))?;
        }
        self.cleaned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, batch.run_id.clone());
        Ok(())
    }

    /// Checks the staging volume without touching any table, for a `check` command: lists
    /// the volume, then uploads and deletes one small probe file in its `_ml_staging`
    /// directory, which proves READ VOLUME and WRITE VOLUME. A missing volume is
    /// [`StagingCheck::WillBeCreated`] when the sink may create it (the grant for that is
    /// only proven at the first run's `prepare`), else the error `prepare` would give.
    pub async fn check_staging(&self) -> Result<StagingCheck> {
        let Some(bulk) = &self.bulk else {
            return Ok(StagingCheck::Off);
        };
        let volume = bulk.volume();
        match self.client.list_directory(&volume.path()).await {
            Ok(Some(_)) => {}
            Ok(None) if bulk.creates_volume() => return Ok(StagingCheck::WillBeCreated),
            Ok(None) => return Err(missing_volume(bulk)),
            Err(e) => return Err(staging_error(bulk, e)),
        }
        let probe = format!("{}/{}/.ml-connector-check", volume.path(), STAGING_DIR);
        self.client
            .upload_file(&probe, bytes::Bytes::from_static(b"ml-connector check\n"))
            .await
            .map_err(|e| staging_error(bulk, e))?;
        self.client
            .delete_file(&probe)
            .await
            .map_err(|e| staging_error(bulk, e))?;
        Ok(StagingCheck::Ready)
    }

    /// Recomputes every current flag of an effective-dated table as of `as_of` (the logic
    /// behind [`Sink::refresh_current`]); returns the statement ids.
    pub async fn refresh_current_flags(
        &self,
        schema: &TableSchema,
        as_of: chrono::NaiveDate,
    ) -> Result<Vec<String>> {
        let table = self.table_name(schema)?;
        let limit = self.client.config().options().max_statement_bytes;
        let statements = sql::current_flags_statements(&table, schema, as_of, None, limit)?;
        self.run_current_flags(&table, statements).await
    }

    async fn run_current_flags(
        &self,
        table: &TableName,
        statements: Vec<String>,
    ) -> Result<Vec<String>> {
        let mut ids = Vec::with_capacity(statements.len());
        for text in statements {
            // A recompute from the table's own rows: idempotent, so retried like a MERGE.
            let result = self
                .client
                .execute(&Statement::new(text).idempotent(true))
                .await?;
            tracing::debug!(
                table = %table.full_name(),
                statement_id = result.statement_id(),
                counts = ?result.dml_counts(),
                "current flags recomputed"
            );
            ids.push(result.statement_id().to_string());
        }
        Ok(ids)
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

fn is_permission(code: Option<&str>, message: &str) -> bool {
    matches!(code, Some("PERMISSION_DENIED"))
        || message.contains("PERMISSION_DENIED")
        || message.contains("INSUFFICIENT_PERMISSIONS")
        || message.contains("does not have")
}

fn missing_volume(bulk: &BulkOptions) -> Error {
    let v = bulk.volume();
    Error::Staging {
        volume: v.full_name(),
        message: format!(
            "the volume does not exist; create it (CREATE VOLUME {v}) and grant READ VOLUME and WRITE VOLUME on it, or let the sink create it (create_volume) with CREATE VOLUME granted on schema {}.{}",
            v.catalog(),
            v.schema()
        ),
    }
}

/// A Files API 403/404 becomes an [`Error::Staging`] naming the grant; anything else (a 503
/// after retries, a transport error) stays as it is, transient.
fn staging_error(bulk: &BulkOptions, e: Error) -> Error {
    match e.status() {
        Some(403) => Error::Staging {
            volume: bulk.volume().full_name(),
            message: format!(
                "permission denied ({e}); grant READ VOLUME and WRITE VOLUME on volume {}",
                bulk.volume().full_name()
            ),
        },
        Some(404) => missing_volume(bulk),
        _ => e,
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
        self.prepare_staging().await?;
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

    fn maintains_current_flags(&self) -> bool {
        true
    }

    async fn refresh_current(
        &self,
        schema: &TableSchema,
        as_of: chrono::NaiveDate,
    ) -> Result<Receipt, ConnectorError> {
        Ok(Receipt {
            statement_ids: self.refresh_current_flags(schema, as_of).await?,
            ..Receipt::default()
        })
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
