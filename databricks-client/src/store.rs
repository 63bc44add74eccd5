//! Checkpoint state and the audit log kept in Delta tables, next to the data, for
//! deployments that run on many machines.
//!
//! The checkpoint store keeps **one row per committed interval and per failed window** (plus
//! one row of stream-level facts), so workers writing different streams never overwrite each
//! other's records, and a **lease table** with one row per (pipeline, stream): owner, version,
//! expiry. Delta has no row locks, so leases are compare-and-set `UPDATE … WHERE version = v`
//! statements whose affected-row count is checked, and every state write is preceded by such a
//! fence in the same call. The audit log appends with a keyed MERGE (idempotent, so a retried
//! write is harmless). Tables are created on first use.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sync_core::audit::{AuditEntry, AuditLog};
use sync_core::state::{
    CheckpointStore, FailedWindow, Lease, LeaseGrant, PipelineState, StreamState,
};
use sync_core::{ColumnDef, ColumnType, Row, TableSchema, Value, Window, WriteMode};
use tokio::sync::OnceCell;

use crate::client::DatabricksClient;
use crate::error::{Error, Result};
use crate::sql::{self, TableName};
use crate::statement::Statement;

/// Default table name of the checkpoint store (one row per window record).
pub const DEFAULT_STATE_TABLE: &str = "_ml_checkpoint_windows";
/// Default table name of the stream leases (one row per pipeline and stream).
pub const DEFAULT_LEASE_TABLE: &str = "_ml_leases";
/// Default table name of the audit log.
pub const DEFAULT_AUDIT_TABLE: &str = "_ml_audit";
/// Layout version written in each checkpoint row (`format_version`). Version 1 was one JSON
/// row per stream in [`LEGACY_STATE_TABLE`].
pub const STATE_TABLE_LAYOUT: i32 = 2;
/// The table of layout version 1 (one JSON row per stream), read for streams that have no
/// rows in the new table yet (see [`DatabricksCheckpointStore::reading_legacy_table`]).
pub const LEGACY_STATE_TABLE: &str = "_ml_checkpoints";

async fn run_merge(
    client: &DatabricksClient,
    table: &TableName,
    schema: &TableSchema,
    rows: Vec<Row>,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let limit = client.config().options().max_statement_bytes;
    for text in sql::merge_statements(table, schema, &rows, limit)? {
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

fn int_at(row: &Row, i: usize) -> Option<i64> {
    match row.get(i) {
        Some(Value::Int(v)) => Some(i64::from(*v)),
        Some(Value::BigInt(v)) => Some(*v),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
}

fn time_at(row: &Row, i: usize) -> Option<DateTime<Utc>> {
    match row.get(i) {
        Some(Value::Timestamp(t)) => Some(*t),
        _ => None,
    }
}

/// The `window_from`/`window_to` of the stream-level row (not a window).
fn epoch() -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH
}

const KIND_COMMITTED: &str = "committed";
const KIND_FAILED: &str = "failed";
const KIND_STREAM: &str = "stream";

/// The records of one stream's state as table rows, keyed by (kind, from, to), with the
/// exact JSON of each record (timestamps in the key columns are rounded to microseconds).
fn records_of(state: &StreamState) -> std::result::Result<BTreeMap<RecordKey, Record>, String> {
    let mut out = BTreeMap::new();
    for w in state.committed.intervals() {
        out.insert(
            (KIND_COMMITTED.to_string(), w.from, w.to),
            Record {
                failed: None,
                json: serde_json::to_string(w).map_err(|e| e.to_string())?,
            },
        );
    }
    for f in &state.failed {
        out.insert(
            (KIND_FAILED.to_string(), f.window.from, f.window.to),
            Record {
                failed: Some(f.clone()),
                json: serde_json::to_string(f).map_err(|e| e.to_string())?,
            },
        );
    }
    let mut rest = state.clone();
    rest.committed = Default::default();
    rest.failed.clear();
    out.insert(
        (KIND_STREAM.to_string(), epoch(), epoch()),
        Record {
            failed: None,
            json: serde_json::to_string(&rest).map_err(|e| e.to_string())?,
        },
    );
    Ok(out)
}

/// (kind, window_from, window_to): the stream row has the epoch for both.
type RecordKey = (String, DateTime<Utc>, DateTime<Utc>);

#[derive(Debug, Clone, PartialEq)]
struct Record {
    failed: Option<FailedWindow>,
    json: String,
}

/// A [`CheckpointStore`] in Delta tables, shared by several workers through per-stream
/// leases.
///
/// **Checkpoint table** (default `_ml_checkpoint_windows`), key (`pipeline`, `stream`,
/// `kind`, `window_from`, `window_to`): `kind` is `committed` (one committed interval),
/// `failed` (a failed window with `attempts`, `last_error`, `first_failed_at`,
/// `last_failed_at`) or `stream` (stream-level facts, window columns at the epoch);
/// `record_json` holds the exact record, `lease_version` and `written_by` say which lease
/// wrote it. A save writes only the records that changed (MERGE), then removes the ones that
/// are gone (merged into a wider interval, or replayed), so a crash in between leaves a
/// superset that reads back the same coverage.
///
/// **Lease table** (default `_ml_leases`, or `<checkpoint table>_leases` with
/// [`in_table`](Self::in_table)), key (`pipeline`, `stream`): `owner`, `version`,
/// `expires_at`. Taking, renewing, releasing and fencing are `UPDATE … WHERE pipeline = …
/// AND stream = … AND version = v [AND owner = o]`; zero affected rows means someone else
/// moved the lease first.
#[derive(Debug)]
pub struct DatabricksCheckpointStore {
    client: DatabricksClient,
    table: TableName,
    leases: TableName,
    prepared: OnceCell<()>,
    /// What this store last read or wrote per (pipeline, stream): the base a save diffs
    /// against. Dropped on any failed write so the next save reads the table again.
    known: Mutex<HashMap<(String, String), StreamState>>,
    /// The layout-1 table to migrate from, and whether it exists (looked up once).
    legacy: Option<TableName>,
    legacy_exists: OnceCell<bool>,
}

impl DatabricksCheckpointStore {
    /// A store in `<default catalog>.<default schema>.{DEFAULT_STATE_TABLE}` and
    /// `{DEFAULT_LEASE_TABLE}` of the client's configuration (created on first use); an error
    /// names the missing setting.
    ///
    /// A stream with no rows yet is read from the layout-1 table
    /// `<catalog>.<schema>.{LEGACY_STATE_TABLE}` when that exists, so an upgrade carries the
    /// committed coverage over; the first save of the stream writes it in the new layout.
    pub fn new(client: DatabricksClient) -> Result<Self> {
        let table = default_table(&client, DEFAULT_STATE_TABLE)?;
        let leases = default_table(&client, DEFAULT_LEASE_TABLE)?;
        let legacy = default_table(&client, LEGACY_STATE_TABLE)?;
        Ok(Self::with_tables(client, table, leases).reading_legacy_table(legacy))
    }

    /// Reads streams that have no rows yet from `table`, a layout-1 state table (one row per
    /// stream: `pipeline`, `stream`, `format_version` = 1, `state_json`), if it exists. It is
    /// never written; drop it once every stream has been saved in the new layout.
    pub fn reading_legacy_table(mut self, table: TableName) -> Self {
        self.legacy = Some(table);
        self
    }

    /// A store in `table`, with its leases in `<table>_leases` of the same schema (both
    /// created on first use).
    pub fn in_table(client: DatabricksClient, table: TableName) -> Result<Self> {
        let leases = TableName::new(
            table.catalog(),
            table.schema(),
            format!("{}_leases", table.table()),
        )?;
        Ok(Self::with_tables(client, table, leases))
    }

    /// A store in `table` with its leases in `leases` (both created on first use).
    pub fn with_tables(client: DatabricksClient, table: TableName, leases: TableName) -> Self {
        Self {
            client,
            table,
            leases,
            prepared: OnceCell::new(),
            known: Mutex::new(HashMap::new()),
            legacy: None,
            legacy_exists: OnceCell::new(),
        }
    }

    /// Streams of `pipeline` (or just `stream`) in the layout-1 table, when there is one.
    async fn legacy_streams(
        &self,
        pipeline: &str,
        stream: Option<&str>,
    ) -> sync_core::Result<BTreeMap<String, StreamState>> {
        let Some(legacy) = &self.legacy else {
            return Ok(BTreeMap::new());
        };
        let err = |e: &dyn std::fmt::Display| {
            sync_core::Error::State(format!(
                "Databricks table {} (reading the old state layout): {e}",
                legacy.full_name()
            ))
        };
        let exists = self
            .legacy_exists
            .get_or_try_init(|| async { self.client.table(legacy).await.map(|t| t.is_some()) })
            .await
            .map_err(|e| err(&e))?;
        if !*exists {
            return Ok(BTreeMap::new());
        }
        let filters: &[&str] = if stream.is_some() {
            &["pipeline", "stream"]
        } else {
            &["pipeline"]
        };
        let mut st = Statement::new(sql::select_where_equal(
            legacy,
            &["stream", "format_version", "state_json"],
            filters,
            &["stream"],
        ))
        .param("pipeline", &Value::String(pipeline.to_string()))
        .idempotent(true);
        if let Some(s) = stream {
            st = st.param("stream", &Value::String(s.to_string()));
        }
        let rows = async { self.client.execute(&st).await?.collect_rows().await }
            .await
            .map_err(|e: Error| err(&e))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let name = text_at(&row, 0).unwrap_or("").to_string();
            if int_at(&row, 1) != Some(1) {
                return Err(err(&format!(
                    "stream `{name}` has state format version {:?}, expected 1",
                    row.get(1)
                )));
            }
            let state: StreamState =
                serde_json::from_str(text_at(&row, 2).unwrap_or("")).map_err(|e| {
                    err(&format!(
                        "stream `{name}` is corrupt ({e}); refusing to start from zero"
                    ))
                })?;
            out.insert(name, state);
        }
        Ok(out)
    }

    /// The checkpoint table's schema.
    pub fn table_schema(&self) -> TableSchema {
        let s = |n: &str| ColumnDef::new(n, ColumnType::String).not_null();
        let ts = |n: &str| ColumnDef::new(n, ColumnType::Timestamp).not_null();
        TableSchema {
            name: self.table.table().to_string(),
            columns: vec![
                s("pipeline"),
                s("stream"),
                s("kind"),
                ts("window_from"),
                ts("window_to"),
                ColumnDef::new("format_version", ColumnType::Int).not_null(),
                ColumnDef::new("attempts", ColumnType::Int),
                ColumnDef::new("last_error", ColumnType::String),
                ColumnDef::new("first_failed_at", ColumnType::Timestamp),
                ColumnDef::new("last_failed_at", ColumnType::Timestamp),
                s("record_json"),
                ColumnDef::new("lease_version", ColumnType::BigInt).not_null(),
                s("written_by"),
                ts("updated_at"),
            ],
            primary_key: ["pipeline", "stream", "kind", "window_from", "window_to"]
                .map(String::from)
                .to_vec(),
            cursor_column: None,
            write_mode: WriteMode::Upsert,
            effective_dating: None,
        }
    }

    /// The lease table's schema.
    pub fn lease_schema(&self) -> TableSchema {
        let s = |n: &str| ColumnDef::new(n, ColumnType::String).not_null();
        let ts = |n: &str| ColumnDef::new(n, ColumnType::Timestamp).not_null();
        TableSchema {
            name: self.leases.table().to_string(),
            columns: vec![
                s("pipeline"),
                s("stream"),
                s("owner"),
                ColumnDef::new("version", ColumnType::BigInt).not_null(),
                ts("expires_at"),
                ts("updated_at"),
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

    fn lease_err(&self, what: &str, e: impl std::fmt::Display) -> sync_core::Error {
        sync_core::Error::State(format!(
            "Databricks lease table {} ({what}): {e}",
            self.leases.full_name()
        ))
    }

    async fn prepare(&self) -> Result<()> {
        self.prepared
            .get_or_try_init(|| async {
                self.client
                    .ensure_table(&self.table, &self.table_schema())
                    .await?;
                self.client
                    .ensure_table(&self.leases, &self.lease_schema())
                    .await
                    .map(|_| ())
            })
            .await
            .map(|_| ())
    }

    async fn load_rows(&self, pipeline: &str, stream: Option<&str>) -> Result<Vec<Row>> {
        self.prepare().await?;
        let filters: &[&str] = if stream.is_some() {
            &["pipeline", "stream"]
        } else {
            &["pipeline"]
        };
        let mut st = Statement::new(sql::select_where_equal(
            &self.table,
            &["stream", "kind", "format_version", "record_json"],
            filters,
            &["stream", "kind", "window_from", "window_to"],
        ))
        .param("pipeline", &Value::String(pipeline.to_string()))
        .idempotent(true);
        if let Some(s) = stream {
            st = st.param("stream", &Value::String(s.to_string()));
        }
        self.client.execute(&st).await?.collect_rows().await
    }

    /// Folds checkpoint rows into per-stream state.
    fn fold(
        &self,
        pipeline: &str,
        rows: &[Row],
    ) -> sync_core::Result<BTreeMap<String, StreamState>> {
        let mut out: BTreeMap<String, StreamState> = BTreeMap::new();
        let mut committed: BTreeMap<String, Vec<Window>> = BTreeMap::new();
        let mut failed: BTreeMap<String, Vec<FailedWindow>> = BTreeMap::new();
        for row in rows {
            let stream = text_at(row, 0).ok_or_else(|| self.err("load", "a row has no stream"))?;
            let kind = text_at(row, 1).unwrap_or("");
            let origin = format!(
                "Databricks table {} row (pipeline `{pipeline}`, stream `{stream}`, kind `{kind}`)",
                self.table.full_name()
            );
            if int_at(row, 2) != Some(i64::from(STATE_TABLE_LAYOUT)) {
                return Err(sync_core::Error::State(format!(
                    "{origin} has layout version {:?}, this build reads version {STATE_TABLE_LAYOUT}",
                    row.get(2)
                )));
            }
            let json = text_at(row, 3).unwrap_or("");
            let corrupt = |e: serde_json::Error| {
                sync_core::Error::State(format!(
                    "{origin} is corrupt ({e}); refusing to start from zero. Fix or delete that row deliberately"
                ))
            };
            match kind {
                KIND_COMMITTED => committed
                    .entry(stream.to_string())
                    .or_default()
                    .push(serde_json::from_str(json).map_err(corrupt)?),
                KIND_FAILED => failed
                    .entry(stream.to_string())
                    .or_default()
                    .push(serde_json::from_str(json).map_err(corrupt)?),
                KIND_STREAM => {
                    let base: StreamState = serde_json::from_str(json).map_err(corrupt)?;
                    let e = out.entry(stream.to_string()).or_default();
                    let (c, f) = (
                        std::mem::take(&mut e.committed),
                        std::mem::take(&mut e.failed),
                    );
                    *e = base;
                    e.committed = c;
                    e.failed = f;
                }
                other => {
                    return Err(sync_core::Error::State(format!(
                        "{origin} has an unknown kind `{other}`"
                    )))
                }
            }
        }
        for (stream, ws) in committed {
            let e = out.entry(stream).or_default();
            for w in ws {
                e.committed.insert(w);
            }
        }
        for (stream, mut fs) in failed {
            fs.sort_by_key(|f| f.window);
            out.entry(stream).or_default().failed = fs;
        }
        Ok(out)
    }

    fn remember(&self, pipeline: &str, stream: &str, state: Option<StreamState>) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let key = (pipeline.to_string(), stream.to_string());
        match state {
            Some(s) => known.insert(key, s),
            None => known.remove(&key),
        };
    }

    /// The lease row of (pipeline, stream): owner, version, expiry.
    async fn read_lease(
        &self,
        pipeline: &str,
        stream: &str,
    ) -> Result<Option<(String, u64, DateTime<Utc>)>> {
        Ok(self
            .read_lease_row(pipeline, stream)
            .await?
            .map(|(owner, version, until, _)| (owner, version, until)))
    }

    /// The lease row: owner, version, expiry and last update (a release sets both times to
    /// the release instant; a holder's renewals keep the update before the expiry).
    async fn read_lease_row(
        &self,
        pipeline: &str,
        stream: &str,
    ) -> Result<Option<(String, u64, DateTime<Utc>, DateTime<Utc>)>> {
        let st = Statement::new(sql::select_where_equal(
            &self.leases,
            &["owner", "version", "expires_at", "updated_at"],
            &["pipeline", "stream"],
            &["version"],
        ))
        .param("pipeline", &Value::String(pipeline.to_string()))
        .param("stream", &Value::String(stream.to_string()))
        .idempotent(true);
        let rows = self.client.execute(&st).await?.collect_rows().await?;
        // Two seeds racing can leave two identical rows; every later UPDATE moves both alike.
        Ok(rows.last().map(|r| {
            (
                text_at(r, 0).unwrap_or("").to_string(),
                int_at(r, 1).unwrap_or(0).max(0) as u64,
                time_at(r, 2).unwrap_or_else(epoch),
                time_at(r, 3).unwrap_or_else(epoch),
            )
        }))
    }

    /// Inserts the free lease row of (pipeline, stream) if there is none (never touches an
    /// existing one).
    async fn seed_lease(&self, pipeline: &str, stream: &str, now: DateTime<Utc>) -> Result<()> {
        let t = &self.leases;
        let text = format!(
            "MERGE INTO {t} AS tgt USING (SELECT * FROM VALUES (:pipeline, :stream) AS v(`pipeline`, `stream`)) AS src \
             ON tgt.`pipeline` = src.`pipeline` AND tgt.`stream` = src.`stream` \
             WHEN NOT MATCHED THEN INSERT (`pipeline`, `stream`, `owner`, `version`, `expires_at`, `updated_at`) \
             VALUES (src.`pipeline`, src.`stream`, '', 0, :epoch, :now)"
        );
        let st = Statement::new(text)
            .param("pipeline", &Value::String(pipeline.to_string()))
            .param("stream", &Value::String(stream.to_string()))
            .param("epoch", &Value::Timestamp(epoch()))
            .param("now", &Value::Timestamp(now))
            .idempotent(true);
        self.client.execute(&st).await?;
        Ok(())
    }

    /// `UPDATE <leases> SET <set> WHERE pipeline = :pipeline AND stream = :stream AND version =
    /// :version [AND owner = :owner]`; the affected-row count.
    async fn update_lease(
        &self,
        set: &str,
        pipeline: &str,
        stream: &str,
        version: u64,
        owner: Option<&str>,
        params: &[(&str, Value)],
    ) -> Result<u64> {
        let mut text = format!(
            "UPDATE {} SET {set} WHERE `pipeline` = :pipeline AND `stream` = :stream AND `version` = :version",
            self.leases
        );
        if owner.is_some() {
            text.push_str(" AND `owner` = :owner");
        }
        let mut st = Statement::new(text)
            .param("pipeline", &Value::String(pipeline.to_string()))
            .param("stream", &Value::String(stream.to_string()))
            .param("version", &Value::BigInt(version as i64))
            // A compare-and-set is safe to retry: a second run matches nothing.
            .idempotent(true);
        if let Some(o) = owner {
            st = st.param("owner", &Value::String(o.to_string()));
        }
        for (n, v) in params {
            st = st.param(*n, v);
        }
        let result = self.client.execute(&st).await?;
        Ok(result.dml_counts().affected.unwrap_or(0))
    }

    /// Checks that `lease` is current (the fence before a state write).
    async fn fence(&self, lease: &Lease) -> sync_core::Result<()> {
        let n = self
            .update_lease(
                "`updated_at` = :now",
                &lease.pipeline,
                &lease.stream,
                lease.version,
                Some(&lease.owner),
                &[("now", Value::Timestamp(Utc::now()))],
            )
            .await
            .map_err(|e| self.lease_err("fence", e))?;
        if n == 0 {
            return Err(self.lost(lease).await);
        }
        Ok(())
    }

    /// The [`sync_core::Error::LeaseLost`] for `lease`, naming the current holder.
    async fn lost(&self, lease: &Lease) -> sync_core::Error {
        let detail = match self.read_lease(&lease.pipeline, &lease.stream).await {
            Ok(Some((owner, v, until))) => format!(
                "table {} says the stream is leased by `{owner}` (version {v}) until {until}",
                self.leases.full_name()
            ),
            Ok(None) => format!(
                "table {} has no lease for the stream",
                self.leases.full_name()
            ),
            Err(e) => format!("the lease moved (and reading it back failed: {e})"),
        };
        lease.lost(detail)
    }

    async fn write_diff(
        &self,
        lease: &Lease,
        before: &StreamState,
        after: &StreamState,
    ) -> sync_core::Result<()> {
        let old = records_of(before).map_err(|e| self.err("save", e))?;
        let new = records_of(after).map_err(|e| self.err("save", e))?;
        let now = Utc::now();
        let base = |(kind, from, to): &RecordKey| -> Vec<Value> {
            vec![
                Value::String(lease.pipeline.clone()),
                Value::String(lease.stream.clone()),
                Value::String(kind.clone()),
                Value::Timestamp(*from),
                Value::Timestamp(*to),
            ]
        };
        let mut upserts = Vec::new();
        for (key, rec) in &new {
            if old.get(key) == Some(rec) {
                continue;
            }
            let f = rec.failed.as_ref();
            let mut row = base(key);
            row.extend([
                Value::Int(STATE_TABLE_LAYOUT),
                f.map(|f| Value::Int(i32::try_from(f.attempts).unwrap_or(i32::MAX)))
                    .unwrap_or(Value::Null),
                f.map(|f| Value::String(f.last_error.clone()))
                    .unwrap_or(Value::Null),
                f.map(|f| Value::Timestamp(f.first_failed_at))
                    .unwrap_or(Value::Null),
                f.map(|f| Value::Timestamp(f.last_failed_at))
                    .unwrap_or(Value::Null),
                Value::String(rec.json.clone()),
                Value::BigInt(lease.version as i64),
                Value::String(lease.owner.clone()),
                Value::Timestamp(now),
            ]);
            upserts.push(row);
        }
        let gone: Vec<Row> = old
            .keys()
            .filter(|k| !new.contains_key(*k))
            .map(base)
            .collect();
        let schema = self.table_schema();
        async {
            // Add first, then remove: a crash in between leaves a superset.
            run_merge(&self.client, &self.table, &schema, upserts).await?;
            if !gone.is_empty() {
                let limit = self.client.config().options().max_statement_bytes;
                for text in sql::delete_statements(&self.table, &schema, &gone, None, limit)? {
                    self.client
                        .execute(&Statement::new(text).idempotent(true))
                        .await?;
                }
            }
            Ok(())
        }
        .await
        .map_err(|e: Error| self.err("save", e))
    }
}

#[async_trait]
impl CheckpointStore for DatabricksCheckpointStore {
    async fn load(&self, pipeline: &str) -> sync_core::Result<PipelineState> {
        let rows = self
            .load_rows(pipeline, None)
            .await
            .map_err(|e| self.err("load", e))?;
        let mut state = PipelineState::new(pipeline);
        state.streams = self.fold(pipeline, &rows)?;
        for (stream, st) in self.legacy_streams(pipeline, None).await? {
            state.streams.entry(stream).or_insert(st);
        }
        Ok(state)
    }

    async fn load_stream(&self, pipeline: &str, stream: &str) -> sync_core::Result<StreamState> {
        let rows = self
            .load_rows(pipeline, Some(stream))
            .await
            .map_err(|e| self.err("load", e))?;
        let st = self
            .fold(pipeline, &rows)?
            .remove(stream)
            .unwrap_or_default();
        // The table holds nothing of this stream: the first save writes all of it.
        self.remember(pipeline, stream, Some(st.clone()));
        if rows.is_empty() {
            if let Some(old) = self
                .legacy_streams(pipeline, Some(stream))
                .await?
                .remove(stream)
            {
                tracing::info!(
                    pipeline,
                    stream,
                    "state read from the old layout; its next save writes the new one"
                );
                return Ok(old);
            }
        }
        Ok(st)
    }

    /// Fences on the lease (`UPDATE … WHERE version = v AND owner = o`, one affected row
    /// expected), then writes the records that changed since this store last read or wrote
    /// the stream.
    async fn save_stream(&self, lease: &Lease, state: &StreamState) -> sync_core::Result<()> {
        self.prepare().await.map_err(|e| self.err("save", e))?;
        self.fence(lease).await?;
        let key = (lease.pipeline.clone(), lease.stream.clone());
        let known = self
            .known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        let before = match known {
            Some(s) => s,
            None => self.load_stream(&lease.pipeline, &lease.stream).await?,
        };
        match self.write_diff(lease, &before, state).await {
            Ok(()) => {
                self.remember(&lease.pipeline, &lease.stream, Some(state.clone()));
                Ok(())
            }
            Err(e) => {
                self.remember(&lease.pipeline, &lease.stream, None);
                Err(e)
            }
        }
    }

    async fn acquire_lease(
        &self,
        pipeline: &str,
        stream: &str,
        owner: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> sync_core::Result<LeaseGrant> {
        let wrap = |e: Error| self.lease_err("acquire", e);
        self.prepare().await.map_err(wrap)?;
        // A few rounds: a lost compare-and-set means another worker moved the lease first.
        for _ in 0..3 {
            let current = match self.read_lease(pipeline, stream).await.map_err(wrap)? {
                Some(c) => c,
                None => {
                    self.seed_lease(pipeline, stream, now).await.map_err(wrap)?;
                    continue;
                }
            };
            let (holder, version, until) = current;
            if holder != owner && !holder.is_empty() && until > now {
                return Ok(LeaseGrant::Held {
                    owner: holder,
                    until,
                });
            }
            let next = version + 1;
            let expires = now + ttl;
            let taken = self
                .update_lease(
                    "`owner` = :new_owner, `version` = :new_version, `expires_at` = :expires, `updated_at` = :now",
                    pipeline,
                    stream,
                    version,
                    None,
                    &[
                        ("new_owner", Value::String(owner.to_string())),
                        ("new_version", Value::BigInt(next as i64)),
                        ("expires", Value::Timestamp(expires)),
                        ("now", Value::Timestamp(now)),
                    ],
                )
                .await;
            match taken {
                Ok(n) if n > 0 => {
                    return Ok(LeaseGrant::Granted(Lease::new(
                        pipeline, stream, owner, next, expires,
                    )))
                }
                Ok(_) => continue,
                // Delta reports a concurrent update of the same row as a conflict: re-read.
                Err(e) => {
                    tracing::info!(
                        pipeline,
                        stream,
                        "lease update conflicted, reading it again: {e}"
                    );
                    continue;
                }
            }
        }
        match self.read_lease(pipeline, stream).await.map_err(wrap)? {
            Some((holder, _, until)) if holder != owner && until > now => Ok(LeaseGrant::Held {
                owner: holder,
                until,
            }),
            _ => Err(self.lease_err(
                "acquire",
                format!("the lease of stream `{stream}` kept moving; try again"),
            )),
        }
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> sync_core::Result<Lease> {
        let expires = now + ttl;
        let n = self
            .update_lease(
                "`expires_at` = :expires, `updated_at` = :now",
                &lease.pipeline,
                &lease.stream,
                lease.version,
                Some(&lease.owner),
                &[
                    ("expires", Value::Timestamp(expires)),
                    ("now", Value::Timestamp(now)),
                ],
            )
            .await
            .map_err(|e| self.lease_err("renew", e))?;
        if n == 0 {
            return Err(self.lost(lease).await);
        }
        let mut next = lease.clone();
        next.expires_at = expires;
        Ok(next)
    }

    async fn release_lease(&self, lease: &Lease, now: DateTime<Utc>) -> sync_core::Result<()> {
        self.update_lease(
            "`expires_at` = :now, `updated_at` = :now",
            &lease.pipeline,
            &lease.stream,
            lease.version,
            Some(&lease.owner),
            &[("now", Value::Timestamp(now))],
        )
        .await
        .map(|_| ())
        .map_err(|e| self.lease_err("release", e))
    }

    async fn current_lease(
        &self,
        pipeline: &str,
        stream: &str,
    ) -> sync_core::Result<Option<Lease>> {
        let wrap = |e: Error| self.lease_err("read", e);
        self.prepare().await.map_err(wrap)?;
        Ok(self
            .read_lease_row(pipeline, stream)
            .await
            .map_err(wrap)?
            // The seeded row of a stream no worker has taken yet has no owner.
            .filter(|(owner, _, _, _)| !owner.is_empty())
            .map(|(owner, version, until, updated)| {
                let mut lease = Lease::new(pipeline, stream, owner, version, until);
                lease.released_at = (updated >= until).then_some(until);
                lease
            }))
    }
}

/// An [`AuditLog`] in a Delta table: one row per window attempt, with the main facts as
/// columns for SQL analysis (rows read, written and rejected, the outcome and error, the
/// statement ids, and what the sink sent: `statements`, `sql_bytes`, `files_staged`,
/// `bytes_staged`) and the whole entry as JSON for a lossless read-back.
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
                // Added after the first release: nullable, so an existing table gains them
                // with `ADD COLUMNS` (its older rows read NULL).
                ColumnDef::new("statements", ColumnType::BigInt),
                ColumnDef::new("sql_bytes", ColumnType::BigInt),
                ColumnDef::new("files_staged", ColumnType::BigInt),
                ColumnDef::new("bytes_staged", ColumnType::BigInt),
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
            count(entry.receipt.statements)?,
            count(entry.receipt.sql_bytes)?,
            count(entry.receipt.files_staged)?,
            count(entry.receipt.bytes_staged)?,
        ])
    }
}

#[async_trait]
impl AuditLog for DatabricksAuditLog {
    async fn append(&self, entry: &AuditEntry) -> sync_core::Result<()> {
        let row = Self::row(entry).map_err(|e| self.err("append", e))?;
        async {
            self.prepare().await?;
            run_merge(&self.client, &self.table, &self.table_schema(), vec![row]).await
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
