//! Local SQLite destination (feature `sqlite`): [`SqliteSink`], so a whole pipeline runs on a
//! laptop with no credentials.
//!
//! # Tables
//!
//! [`Sink::prepare`] creates the table if it is missing (`CREATE TABLE IF NOT EXISTS`, with a
//! `PRIMARY KEY` on the key columns for upsert tables) and adds columns the table lacks
//! (`ALTER TABLE ... ADD COLUMN`; added columns are nullable, as SQLite cannot add a NOT NULL
//! column without a default). Columns the table has but the schema does not are left alone.
//! The primary key of an existing table is not changed.
//!
//! | Column type | SQLite | Stored as |
//! |---|---|---|
//! | `STRING` | `TEXT` | the text |
//! | `INT`, `BIGINT` | `INT`, `BIGINT` (INTEGER affinity) | the integer |
//! | `DECIMAL(p,s)` | `TEXT` | exact canonical text at the column's scale (`1234.50`) |
//! | `DOUBLE` | `REAL` | the float |
//! | `BOOLEAN` | `INTEGER` | `1` / `0` |
//! | `DATE` | `TEXT` | `YYYY-MM-DD` |
//! | `TIMESTAMP` | `TEXT` | RFC 3339 UTC with microseconds and `Z`: `2026-03-01T14:05:00.000000Z` (see [`timestamp_text`]) |
//!
//! Integer columns are declared `INT`/`BIGINT` rather than `INTEGER` (same affinity) because a
//! lone `INTEGER PRIMARY KEY` is SQLite's rowid alias, which would quietly replace a NULL key by
//! a generated number instead of rejecting it.
//!
//! Decimals are text because SQLite has no exact decimal type: its `NUMERIC`/`REAL` would store
//! money in binary floating point. SQL arithmetic on them needs a `CAST`, and
//! `CAST(x AS REAL)` is for display only (it rounds). Dates and timestamps are fixed-width
//! text, so comparing and sorting the text compares the instants.
//!
//! # Writes and durability
//!
//! [`Sink::write`] writes a batch in ONE transaction with a cached prepared statement: upsert
//! tables use `INSERT ... ON CONFLICT(keys) DO UPDATE SET ...` (writing the same batch twice
//! leaves the table as writing it once), append tables a plain `INSERT` (append tables have no
//! primary key; re-running a window appends again). The receipt carries a statement id
//! `sqlite:<table>:<n>` where `n` counts this sink's transactions.
//!
//! New keyed tables are created `WITHOUT ROWID` (clustered on the primary key; effective-dated
//! tables excepted); tables created by earlier versions keep their layout and work as before.
//!
//! The database runs in WAL mode with `synchronous=NORMAL`: when `write` returns, the
//! transaction is committed and survives a crash of the process; a power loss or OS crash can
//! lose the most recent transactions. Use [`SqliteSink::with_full_sync`] when that matters.
//!
//! # Effective-dated tables
//!
//! For a table with [`TableSchema::effective_dating`] and a batch with [`Batch::as_of`],
//! `write` recomputes the current flag of every entity in the batch **in the same
//! transaction**, with one `UPDATE … FROM (SELECT … ROW_NUMBER() OVER (PARTITION BY entity …))`
//! per up to 10 000 entities: rows written by earlier windows are re-flagged too, so a newer
//! effective date read in a later window leaves exactly one current row per entity.
//! [`Sink::refresh_current`] runs the same statement over the whole table (the engine's daily
//! sweep, which makes future-dated rows current on their date).
//!
//! SQLite calls block, so every call runs on Tokio's blocking pool
//! ([`tokio::task::spawn_blocking`]); the connection sits behind a mutex, so writes through one
//! sink are serialised.
//!
//! ```
//! use sync_core::sqlite::SqliteSink;
//! use sync_core::{ColumnDef, ColumnType, Sink, TableSchema, WriteMode};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let sink = SqliteSink::in_memory().unwrap();
//! let schema = TableSchema {
//!     name: "vendors".into(),
//!     columns: vec![
//!         ColumnDef::new("vendor_id", ColumnType::String).not_null(),
//!         ColumnDef::new("balance", ColumnType::Decimal { precision: 18, scale: 2 }),
//!     ],
//!     primary_key: vec!["vendor_id".into()],
//!     cursor_column: None,
//!     write_mode: WriteMode::Upsert,
//!     effective_dating: None,
//! };
//! sink.prepare(&schema).await.unwrap();
//! let n: i64 = sink.with_connection(|c| c.query_row("SELECT COUNT(*) FROM vendors", [], |r| r.get(0))).unwrap();
//! assert_eq!(n, 0);
//! # });
//! ```

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Timelike, Utc};
use rusqlite::types::Null;
use rusqlite::{Connection, ErrorCode, TransactionBehavior};

use crate::error::ConnectorError;
use crate::schema::{EffectiveDated, TableSchema, WriteMode, LINEAGE_DELETED_AT, ROW_HASH_COLUMN};
use crate::sink::{Batch, DeletePolicy, KeyedHash, Receipt, Sink};
use crate::value::{push_date, push_decimal, push_digits, ColumnType, Value};
use crate::window::Window;

/// A [`Sink`] writing to a local SQLite database file (or an in-memory database).
pub struct SqliteSink {
    conn: Arc<Mutex<Connection>>,
    location: String,
    transactions: AtomicU64,
}

impl std::fmt::Debug for SqliteSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteSink")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl SqliteSink {
    /// Opens (or creates) the database file at `path`, in WAL mode with `synchronous=NORMAL`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ConnectorError> {
        let path = path.as_ref();
        let location = path.display().to_string();
        let conn = Connection::open(path)
            .map_err(|e| sql_error(&format!("open SQLite database {location}"), e))?;
        Self::setup(conn, location)
    }

    /// A private in-memory database (gone when the sink is dropped); for tests and examples.
    pub fn in_memory() -> Result<Self, ConnectorError> {
        let conn = Connection::open_in_memory()
            .map_err(|e| sql_error("open in-memory SQLite database", e))?;
        Self::setup(conn, ":memory:".to_string())
    }

    fn setup(conn: Connection, location: String) -> Result<Self, ConnectorError> {
        let ctx = format!("configure SQLite database {location}");
        // Returns the mode; in-memory databases answer "memory", which is fine.
        conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))
            .map_err(|e| sql_error(&ctx, e))?;
        conn.execute_batch(
            "PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY;",
        )
        .map_err(|e| sql_error(&ctx, e))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| sql_error(&ctx, e))?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            location,
            transactions: AtomicU64::new(0),
        })
    }

    /// Switches to `synchronous=FULL`: a committed batch also survives power loss, at the cost
    /// of an fsync per transaction.
    pub fn with_full_sync(self) -> Result<Self, ConnectorError> {
        lock(&self.conn)
            .execute_batch("PRAGMA synchronous=FULL;")
            .map_err(|e| sql_error("set synchronous=FULL", e))?;
        Ok(self)
    }

    /// Sets SQLite's page cache to at most `mib` MiB (default 64 MiB). A smaller cache lowers
    /// the process's peak memory; upserts into large tables get somewhat slower, as more
    /// index pages are read back from the OS page cache.
    pub fn with_cache_mib(self, mib: u32) -> Result<Self, ConnectorError> {
        let kib = i64::from(mib.max(1)) * 1024;
        lock(&self.conn)
            .execute_batch(&format!("PRAGMA cache_size=-{kib};"))
            .map_err(|e| sql_error("set cache_size", e))?;
        Ok(self)
    }

    /// Where the database is: its path, or `:memory:`.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Runs `f` with the connection, for inspection and tests. Blocks the calling thread while
    /// waiting for the connection; do not call it from async code on a busy runtime.
    ///
    /// Needs the feature `unstable-rusqlite`: the argument is a `rusqlite` type, so this method
    /// is outside the crate's semver promise and follows rusqlite's version.
    #[cfg(feature = "unstable-rusqlite")]
    pub fn with_connection<R>(&self, f: impl FnOnce(&Connection) -> R) -> R {
        f(&lock(&self.conn))
    }

    async fn blocking<R: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&mut Connection) -> Result<R, ConnectorError> + Send + 'static,
    ) -> Result<R, ConnectorError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || f(&mut lock(&conn)))
            .await
            .map_err(|e| {
                ConnectorError::permanent(format!("SQLite {what} task failed")).with_source(e)
            })?
    }
}

/// A panic while the lock was held rolled its transaction back (the `Transaction` guard), so
/// the connection is still usable.
fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn sql_error(context: &str, e: rusqlite::Error) -> ConnectorError {
    let busy = matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    );
    let message = format!("{context}: {e}");
    let err = if busy {
        ConnectorError::transient(message)
    } else {
        ConnectorError::permanent(message)
    };
    err.with_source(e)
}

/// `name` as an SQLite identifier: double quotes, inner `"` doubled.
pub fn quote_identifier(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    push_identifier(&mut out, name);
    out
}

fn push_identifier(out: &mut String, name: &str) {
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
}

/// The SQLite column type used for a column type.
pub(crate) fn sqlite_type(t: ColumnType) -> &'static str {
    match t {
        ColumnType::String
        | ColumnType::Decimal { .. }
        | ColumnType::Date
        | ColumnType::Timestamp => "TEXT",
        // INTEGER affinity, but not spelled `INTEGER`: a single `INTEGER` primary key becomes
        // SQLite's rowid alias, which silently turns a NULL key into a generated number.
        ColumnType::BigInt => "BIGINT",
        ColumnType::Int => "INT",
        ColumnType::Boolean => "INTEGER",
        ColumnType::Double => "REAL",
    }
}

fn has_key(schema: &TableSchema) -> bool {
    schema.write_mode == WriteMode::Upsert && !schema.primary_key.is_empty()
}

fn is_key(schema: &TableSchema, column: &str) -> bool {
    schema
        .primary_key
        .iter()
        .any(|k| k.eq_ignore_ascii_case(column))
}

fn create_table_sql(schema: &TableSchema) -> String {
    let mut sql = String::from("CREATE TABLE IF NOT EXISTS ");
    push_identifier(&mut sql, &schema.name);
    sql.push_str(" (");
    for (i, c) in schema.columns.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        push_identifier(&mut sql, &c.name);
        sql.push(' ');
        sql.push_str(sqlite_type(c.column_type));
        if !c.nullable || (has_key(schema) && is_key(schema, &c.name)) {
            sql.push_str(" NOT NULL");
        }
    }
    if has_key(schema) {
        sql.push_str(", PRIMARY KEY (");
        push_list(&mut sql, &schema.primary_key);
        sql.push(')');
    }
    sql.push(')');
    // Keyed tables are clustered on their key: one B-tree instead of a rowid table plus a
    // key index, so an upsert touches half the pages. Effective-dated tables keep the rowid,
    // which their current-flag statement addresses rows by.
    if has_key(schema) && schema.effective_dating.is_none() {
        sql.push_str(" WITHOUT ROWID");
    }
    sql
}

fn push_list(sql: &mut String, names: &[String]) {
    for (i, k) in names.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        push_identifier(sql, k);
    }
}

/// The `INSERT` (an upsert for keyed tables) of one row.
fn insert_sql(schema: &TableSchema) -> String {
    let mut sql = String::from("INSERT INTO ");
    push_identifier(&mut sql, &schema.name);
    sql.push_str(" (");
    let names: Vec<String> = schema.columns.iter().map(|c| c.name.clone()).collect();
    push_list(&mut sql, &names);
    sql.push_str(") VALUES (");
    for i in 0..schema.columns.len() {
        if i > 0 {
            sql.push_str(", ");
        }
        let _ = write!(sql, "?{}", i + 1);
    }
    sql.push(')');
    if has_key(schema) {
        sql.push_str(" ON CONFLICT (");
        push_list(&mut sql, &schema.primary_key);
        sql.push_str(") DO ");
        let updates: Vec<&str> = schema
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .filter(|c| !is_key(schema, c))
            .collect();
        if updates.is_empty() {
            sql.push_str("NOTHING");
        } else {
            sql.push_str("UPDATE SET ");
            for (i, c) in updates.iter().enumerate() {
                if i > 0 {
                    sql.push_str(", ");
                }
                push_identifier(&mut sql, c);
                sql.push_str(" = excluded.");
                push_identifier(&mut sql, c);
            }
        }
    }
    sql
}

/// Most entities one current-flag `UPDATE` names (its bound parameters stay well below
/// SQLite's limit of 32 766).
const MAX_ENTITIES_PER_UPDATE: usize = 10_000;

/// The `UPDATE` recomputing the current flag of an effective-dated table. `?1` is the as-of
/// date; with `entities > 0` it covers only the entities bound as `?2…` (entity-key tuples,
/// in `ed.entity_key` order), otherwise every row.
fn current_flags_sql(schema: &TableSchema, ed: &EffectiveDated, entities: usize) -> String {
    let q = quote_identifier;
    let table = q(&schema.name);
    let date = q(&ed.date_column);
    let current = q(&ed.current_column);
    let entity: Vec<String> = ed.entity_key.iter().map(|k| q(k)).collect();
    let mut order = vec![format!("{date} DESC")];
    if let Some(seq) = &ed.sequence_column {
        order.push(format!("{} DESC", q(seq)));
    }
    // Ties on (date, sequence) are broken by the rest of the key, the same way every time.
    for k in &schema.primary_key {
        let taken = k.eq_ignore_ascii_case(&ed.date_column)
            || ed
                .sequence_column
                .as_deref()
                .is_some_and(|s| k.eq_ignore_ascii_case(s))
            || ed.entity_key.iter().any(|e| e.eq_ignore_ascii_case(k));
        if !taken {
            order.push(q(k));
        }
    }
    let mut sql = format!(
        "UPDATE {table} SET {current} = r.\"cur\" FROM (SELECT rowid AS \"rid\", ({date} <= ?1 AND ROW_NUMBER() OVER (PARTITION BY {}, {date} <= ?1 ORDER BY {}) = 1) AS \"cur\" FROM {table}",
        entity.join(", "),
        order.join(", ")
    );
    if entities > 0 {
        let _ = write!(sql, " WHERE ({}) IN (VALUES ", entity.join(", "));
        let width = entity.len();
        for e in 0..entities {
            if e > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for k in 0..width {
                if k > 0 {
                    sql.push_str(", ");
                }
                let _ = write!(sql, "?{}", 2 + e * width + k);
            }
            sql.push(')');
        }
        sql.push(')');
    }
    let _ = write!(
        sql,
        ") AS r WHERE {table}.rowid = r.\"rid\" AND {table}.{current} IS NOT r.\"cur\""
    );
    sql
}

fn effective_dating(schema: &TableSchema) -> Result<&EffectiveDated, ConnectorError> {
    schema.effective_dating.as_ref().ok_or_else(|| {
        ConnectorError::permanent(format!(
            "SQLite table `{}` is not effective-dated: there are no current flags to recompute",
            schema.name
        ))
    })
}

fn date_text(d: NaiveDate) -> String {
    let mut s = String::with_capacity(10);
    push_date(&mut s, d);
    s
}

/// The distinct entity-key tuples of `encoded`, as cells.
fn entity_tuples(schema: &TableSchema, ed: &EffectiveDated, encoded: &EncodedRows) -> Vec<Cell> {
    let idx: Vec<usize> = ed
        .entity_key
        .iter()
        .filter_map(|k| schema.index_of(k))
        .collect();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for row in encoded.cells.chunks(encoded.width) {
        let mut canon = String::new();
        for &i in &idx {
            match row[i] {
                Cell::Null => canon.push('n'),
                Cell::Int(v) => {
                    let _ = write!(canon, "i{v}");
                }
                Cell::Real(v) => {
                    let _ = write!(canon, "r{}", v.to_bits());
                }
                Cell::Text(a, b) => {
                    let _ = write!(canon, "t{}", &encoded.text[a..b]);
                }
            }
            canon.push('\u{1f}');
        }
        if seen.insert(canon) {
            out.extend(idx.iter().map(|&i| row[i]));
        }
    }
    out
}

fn bind_cell(
    stmt: &mut rusqlite::Statement<'_>,
    at: usize,
    cell: Cell,
    text: &str,
) -> rusqlite::Result<()> {
    match cell {
        Cell::Null => stmt.raw_bind_parameter(at, Null),
        Cell::Int(v) => stmt.raw_bind_parameter(at, v),
        Cell::Real(v) => stmt.raw_bind_parameter(at, v),
        Cell::Text(a, b) => stmt.raw_bind_parameter(at, &text[a..b]),
    }
}

/// One bound value; text lives in [`EncodedRows::text`].
#[derive(Debug, Clone, Copy)]
enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(usize, usize),
}

impl Cell {
    /// The cell as an owned SQLite value (`text` is the batch's shared text buffer).
    #[allow(clippy::wrong_self_convention)] // also on main; not part of issue 10
    fn to_value(&self, text: &str) -> rusqlite::types::Value {
        match self {
            Cell::Null => rusqlite::types::Value::Null,
            Cell::Int(i) => rusqlite::types::Value::Integer(*i),
            Cell::Real(f) => rusqlite::types::Value::Real(*f),
            Cell::Text(a, b) => rusqlite::types::Value::Text(text[*a..*b].to_string()),
        }
    }
}

/// A batch rendered to SQLite values: owned (so it can move to the blocking pool) with one
/// text buffer for all strings instead of an allocation per value.
struct EncodedRows {
    width: usize,
    cells: Vec<Cell>,
    text: String,
}

fn encode(schema: &TableSchema, batch: &Batch) -> Result<EncodedRows, ConnectorError> {
    let width = schema.columns.len();
    let mut cells = Vec::with_capacity(width * batch.rows.len());
    let mut text = String::new();
    for (r, row) in batch.rows.iter().enumerate() {
        if row.len() != width {
            return Err(ConnectorError::permanent(format!(
                "SQLite table `{}`: row {} has {} values but the schema has {} columns",
                schema.name,
                r + 1,
                row.len(),
                width
            )));
        }
        for (value, col) in row.iter().zip(&schema.columns) {
            let start = text.len();
            let cell = match value {
                Value::Null => Cell::Null,
                Value::Int(v) => Cell::Int(i64::from(*v)),
                Value::BigInt(v) => Cell::Int(*v),
                Value::Bool(b) => Cell::Int(i64::from(*b)),
                Value::Double(v) => Cell::Real(*v),
                Value::String(s) => {
                    text.push_str(s);
                    Cell::Text(start, text.len())
                }
                Value::Decimal(d) => {
                    let mut d = *d;
                    if let ColumnType::Decimal { scale, .. } = col.column_type {
                        // Only ever adds zeros: a value with more fraction digits than the
                        // column keeps them (nothing is rounded here).
                        if d.scale() < u32::from(scale) {
                            d.rescale(u32::from(scale));
                        }
                    }
                    push_decimal(&mut text, d);
                    Cell::Text(start, text.len())
                }
                Value::Date(d) => {
                    push_date(&mut text, *d);
                    Cell::Text(start, text.len())
                }
                Value::Timestamp(t) => {
                    push_timestamp(&mut text, *t);
                    Cell::Text(start, text.len())
                }
            };
            cells.push(cell);
        }
    }
    Ok(EncodedRows { width, cells, text })
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` (fixed width, so text order is time order).
fn push_timestamp(out: &mut String, t: DateTime<Utc>) {
    // The UTC fields directly (`DateTime`'s accessors add the zero offset each time).
    let t = t.naive_utc();
    push_date(out, t.date());
    out.push('T');
    push_digits(out, t.hour(), 2);
    out.push(':');
    push_digits(out, t.minute(), 2);
    out.push(':');
    push_digits(out, t.second(), 2);
    out.push('.');
    push_digits(out, (t.nanosecond() % 1_000_000_000) / 1000, 6);
    out.push('Z');
}

/// The canonical text of `t` as stored in a `TIMESTAMP` column: fixed-width RFC 3339 UTC with
/// exactly six fraction digits and `Z` (anything finer than a microsecond is cut off; values
/// from [`crate::convert`] never have it).
pub fn timestamp_text(t: DateTime<Utc>) -> String {
    let mut s = String::with_capacity(27);
    push_timestamp(&mut s, t);
    s
}

fn existing_columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info(?1)")?;
    let names = stmt
        .query_map([table], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(names)
}

#[async_trait]
impl Sink for SqliteSink {
    async fn prepare(&self, schema: &TableSchema) -> Result<(), ConnectorError> {
        let schema = schema.clone();
        self.blocking("prepare", move |conn| {
            let ctx = format!("prepare SQLite table `{}`", schema.name);
            let err = |e| sql_error(&ctx, e);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(err)?;
            tx.execute_batch(&create_table_sql(&schema)).map_err(err)?;
            let have = existing_columns(&tx, &schema.name).map_err(err)?;
            for c in &schema.columns {
                if have.iter().any(|h| h.eq_ignore_ascii_case(&c.name)) {
                    continue;
                }
                let mut sql = String::from("ALTER TABLE ");
                push_identifier(&mut sql, &schema.name);
                sql.push_str(" ADD COLUMN ");
                push_identifier(&mut sql, &c.name);
                sql.push(' ');
                sql.push_str(sqlite_type(c.column_type));
                tx.execute_batch(&sql).map_err(err)?;
            }
            tx.commit().map_err(err)
        })
        .await
    }

    async fn write(&self, schema: &TableSchema, batch: &Batch) -> Result<Receipt, ConnectorError> {
        let rows = batch.rows.len() as u64;
        if rows == 0 {
            return Ok(Receipt::default());
        }
        let txn = self.transactions.fetch_add(1, Ordering::Relaxed) + 1;
        let statement_id = format!("sqlite:{}:{txn}", schema.name);
        let sql = insert_sql(schema);
        let encoded = encode(schema, batch)?;
        let table = schema.name.clone();
        // Effective-dated: the entities of the batch and the statement re-flagging them.
        let refresh = match (&schema.effective_dating, batch.as_of) {
            (Some(ed), Some(as_of)) => {
                let tuples = entity_tuples(schema, ed, &encoded);
                let width = ed.entity_key.len();
                let statements: Vec<(String, std::ops::Range<usize>)> = (0..tuples.len() / width)
                    .step_by(MAX_ENTITIES_PER_UPDATE)
                    .map(|first| {
                        let n = (tuples.len() / width - first).min(MAX_ENTITIES_PER_UPDATE);
                        (
                            current_flags_sql(schema, ed, n),
                            first * width..(first + n) * width,
                        )
                    })
                    .collect();
                Some((date_text(as_of), tuples, statements))
            }
            _ => None,
        };
        self.blocking("write", move |conn| {
            let ctx = format!("write to SQLite table `{table}`");
            let err = |e| sql_error(&ctx, e);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(err)?;
            {
                // One cached statement, bound and stepped per row (multi-row VALUES lists
                // measured slower for upserts).
                let mut stmt = tx.prepare_cached(&sql).map_err(err)?;
                for row in encoded.cells.chunks(encoded.width) {
                    for (i, cell) in row.iter().enumerate() {
                        bind_cell(&mut stmt, i + 1, *cell, &encoded.text).map_err(err)?;
                    }
                    stmt.raw_execute().map_err(err)?;
                }
            }
            if let Some((as_of, tuples, statements)) = &refresh {
                for (sql, range) in statements {
                    let mut stmt = tx.prepare(sql).map_err(err)?;
                    stmt.raw_bind_parameter(1, as_of.as_str()).map_err(err)?;
                    for (i, cell) in tuples[range.clone()].iter().enumerate() {
                        bind_cell(&mut stmt, i + 2, *cell, &encoded.text).map_err(err)?;
                    }
                    stmt.raw_execute().map_err(err)?;
                }
            }
            tx.commit().map_err(err)
        })
        .await?;
        Ok(Receipt {
            statement_ids: vec![statement_id],
            rows_written: rows,
            inserted: None,
            updated: None,
            ..Receipt::default()
        })
    }

    /// True: see the module docs, "Effective-dated tables".
    fn maintains_current_flags(&self) -> bool {
        true
    }

    async fn refresh_current(
        &self,
        schema: &TableSchema,
        as_of: NaiveDate,
    ) -> Result<Receipt, ConnectorError> {
        let sql = current_flags_sql(schema, effective_dating(schema)?, 0);
        let txn = self.transactions.fetch_add(1, Ordering::Relaxed) + 1;
        let statement_id = format!("sqlite:{}:{txn}", schema.name);
        let table = schema.name.clone();
        let as_of = date_text(as_of);
        let changed = self
            .blocking("refresh_current", move |conn| {
                let ctx = format!("recompute current flags of SQLite table `{table}`");
                let err = |e| sql_error(&ctx, e);
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(err)?;
                let n = tx.execute(&sql, [&as_of]).map_err(err)?;
                tx.commit().map_err(err)?;
                Ok(n as u64)
            })
            .await?;
        Ok(Receipt {
            statement_ids: vec![statement_id],
            rows_written: 0,
            inserted: None,
            updated: Some(changed),
            ..Receipt::default()
        })
    }

    async fn count(
        &self,
        schema: &TableSchema,
        window: Window,
    ) -> Result<Option<u64>, ConnectorError> {
        let Some(cursor) = schema.cursor_column.clone() else {
            return Ok(None);
        };
        let cursor_type = schema
            .columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(&cursor))
            .map(|c| c.column_type);
        let (from, to) = match cursor_type {
            Some(ColumnType::Timestamp) => (timestamp_text(window.from), timestamp_text(window.to)),
            // A date d is at cursor position d 00:00 UTC: it is in [from, to) when
            // first_date_at_or_after(from) <= d < first_date_at_or_after(to).
            Some(ColumnType::Date) => (date_from(window.from), date_from(window.to)),
            _ => return Ok(None),
        };
        let mut sql = String::from("SELECT COUNT(*) FROM ");
        push_identifier(&mut sql, &schema.name);
        sql.push_str(" WHERE ");
        push_identifier(&mut sql, &cursor);
        sql.push_str(" >= ?1 AND ");
        push_identifier(&mut sql, &cursor);
        sql.push_str(" < ?2");
        let table = schema.name.clone();
        self.blocking("count", move |conn| {
            let n: i64 = conn
                .query_row(&sql, [&from, &to], |r| r.get(0))
                .map_err(|e| sql_error(&format!("count rows of SQLite table `{table}`"), e))?;
            Ok(Some(n as u64))
        })
        .await
    }

    async fn row_hashes(
        &self,
        schema: &TableSchema,
        window: Option<Window>,
    ) -> Result<Option<Vec<KeyedHash>>, ConnectorError> {
        let key_cols: Vec<(String, ColumnType)> = schema
            .key_indexes()
            .map_err(ConnectorError::permanent)?
            .into_iter()
            .map(|i| {
                (
                    schema.columns[i].name.clone(),
                    schema.columns[i].column_type,
                )
            })
            .collect();
        let mut sql = String::from("SELECT ");
        for (name, _) in &key_cols {
            push_identifier(&mut sql, name);
            sql.push_str(", ");
        }
        push_identifier(&mut sql, ROW_HASH_COLUMN);
        sql.push_str(" FROM ");
        push_identifier(&mut sql, &schema.name);
        sql.push_str(" WHERE ");
        push_identifier(&mut sql, LINEAGE_DELETED_AT);
        sql.push_str(" IS NULL");
        let mut params: Vec<String> = Vec::new();
        if let Some(w) = window {
            let Some((cond, p)) = Self::window_condition(schema, w) else {
                return Ok(None);
            };
            sql.push_str(" AND ");
            sql.push_str(&cond);
            params.extend(p);
        }
        let table = schema.name.clone();
        self.blocking("read row hashes", move |conn| {
            let what = format!("read keys and row hashes of SQLite table `{table}`");
            let mut stmt = conn.prepare(&sql).map_err(|e| sql_error(&what, e))?;
            let mut rows = stmt
                .query(rusqlite::params_from_iter(params.iter()))
                .map_err(|e| sql_error(&what, e))?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(|e| sql_error(&what, e))? {
                let mut key = Vec::with_capacity(key_cols.len());
                for (i, (name, t)) in key_cols.iter().enumerate() {
                    let v = r.get_ref(i).map_err(|e| sql_error(&what, e))?;
                    key.push(decode_cell(v, *t).map_err(|e| {
                        ConnectorError::permanent(format!("{what}: column `{name}`: {e}"))
                    })?);
                }
                let hash: Option<String> =
                    r.get(key_cols.len()).map_err(|e| sql_error(&what, e))?;
                out.push(KeyedHash { key, hash });
            }
            Ok(Some(out))
        })
        .await
    }

    async fn delete(
        &self,
        schema: &TableSchema,
        keys: &[Vec<Value>],
        policy: DeletePolicy,
        deleted_at: DateTime<Utc>,
    ) -> Result<u64, ConnectorError> {
        if policy == DeletePolicy::Ignore || keys.is_empty() {
            return Ok(0);
        }
        let key_cols: Vec<String> = schema.primary_key.clone();
        let mut sql = match policy {
            DeletePolicy::Hard => {
                let mut s = String::from("DELETE FROM ");
                push_identifier(&mut s, &schema.name);
                s
            }
            _ => {
                let mut s = String::from("UPDATE ");
                push_identifier(&mut s, &schema.name);
                s.push_str(" SET ");
                push_identifier(&mut s, LINEAGE_DELETED_AT);
                s.push_str(" = COALESCE(");
                push_identifier(&mut s, LINEAGE_DELETED_AT);
                s.push_str(", ?1)");
                s
            }
        };
        sql.push_str(" WHERE ");
        let first = if policy == DeletePolicy::Hard { 1 } else { 2 };
        for (i, k) in key_cols.iter().enumerate() {
            if i > 0 {
                sql.push_str(" AND ");
            }
            push_identifier(&mut sql, k);
            let _ = write!(sql, " = ?{}", first + i);
        }
        // Keys are encoded exactly as rows are written, so they compare equal.
        let mut key_schema = schema.clone();
        key_schema.columns = schema
            .key_indexes()
            .map_err(ConnectorError::permanent)?
            .into_iter()
            .map(|i| schema.columns[i].clone())
            .collect();
        let encoded = encode(
            &key_schema,
            &Batch {
                rows: keys.to_vec(),
                window: Window {
                    from: deleted_at,
                    to: deleted_at,
                },
                run_id: String::new(),
                stream: String::new(),
                as_of: None,
            },
        )?;
        let stamp = timestamp_text(deleted_at);
        let table = schema.name.clone();
        self.blocking("apply deletes", move |conn| {
            let what = format!("apply deletes to SQLite table `{table}`");
            let tx = conn.transaction().map_err(|e| sql_error(&what, e))?;
            let mut n = 0u64;
            {
                let mut stmt = tx.prepare(&sql).map_err(|e| sql_error(&what, e))?;
                for row in encoded.cells.chunks(encoded.width.max(1)) {
                    let mut values: Vec<rusqlite::types::Value> = Vec::new();
                    if first == 2 {
                        values.push(rusqlite::types::Value::Text(stamp.clone()));
                    }
                    values.extend(row.iter().map(|c| c.to_value(&encoded.text)));
                    n += stmt
                        .execute(rusqlite::params_from_iter(values))
                        .map_err(|e| sql_error(&what, e))? as u64;
                }
            }
            tx.commit().map_err(|e| sql_error(&what, e))?;
            Ok(n)
        })
        .await
    }
}

impl SqliteSink {
    /// The cursor condition and its two parameters for `window`, or `None` when the table has
    /// no usable cursor column.
    fn window_condition(schema: &TableSchema, window: Window) -> Option<(String, [String; 2])> {
        let cursor = schema.cursor_column.clone()?;
        let cursor_type = schema
            .columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(&cursor))
            .map(|c| c.column_type)?;
        let params = match cursor_type {
            ColumnType::Timestamp => [timestamp_text(window.from), timestamp_text(window.to)],
            ColumnType::Date => [date_from(window.from), date_from(window.to)],
            _ => return None,
        };
        let mut sql = String::new();
        push_identifier(&mut sql, &cursor);
        sql.push_str(" >= ?1 AND ");
        push_identifier(&mut sql, &cursor);
        sql.push_str(" < ?2");
        Some((sql, params))
    }
}

/// A stored cell as the typed value it was written from.
fn decode_cell(v: rusqlite::types::ValueRef<'_>, t: ColumnType) -> Result<Value, String> {
    use rusqlite::types::ValueRef as V;
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|e| e.to_string());
    Ok(match (v, t) {
        (V::Null, _) => Value::Null,
        (V::Integer(i), ColumnType::Int) => {
            Value::Int(i32::try_from(i).map_err(|e| e.to_string())?)
        }
        (V::Integer(i), ColumnType::BigInt) => Value::BigInt(i),
        (V::Integer(i), ColumnType::Boolean) => Value::Bool(i != 0),
        (V::Integer(i), ColumnType::String) => Value::String(i.to_string()),
        (V::Real(f), ColumnType::Double) => Value::Double(f),
        (V::Text(b), ColumnType::String) => Value::String(text(b)?),
        (V::Text(b), ColumnType::Decimal { .. }) => Value::Decimal(
            text(b)?
                .parse()
                .map_err(|e: rust_decimal::Error| e.to_string())?,
        ),
        (V::Text(b), ColumnType::Date) => Value::Date(
            chrono::NaiveDate::parse_from_str(&text(b)?, "%Y-%m-%d").map_err(|e| e.to_string())?,
        ),
        (V::Text(b), ColumnType::Timestamp) => {
            let s = text(b)?;
            let t = chrono::NaiveDateTime::parse_from_str(&s, "%Y-%m-%d %H:%M:%S%.f")
                .or_else(|_| chrono::NaiveDateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S%.fZ"))
                .map_err(|e| format!("`{s}`: {e}"))?;
            Value::Timestamp(t.and_utc())
        }
        (other, t) => return Err(format!("{other:?} stored in a {t} column")),
    })
}

/// Text of the first date whose midnight (UTC) is at or after `t`.
fn date_from(t: DateTime<Utc>) -> String {
    let date = t.date_naive();
    let date = if t.time() == chrono::NaiveTime::MIN {
        date
    } else {
        date.succ_opt().unwrap_or(date)
    };
    let mut s = String::with_capacity(10);
    push_date(&mut s, date);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_size_is_set_in_mib() {
        let sink = SqliteSink::in_memory().unwrap();
        let get = |s: &SqliteSink| {
            s.with_connection(|c| c.query_row("PRAGMA cache_size", [], |r| r.get::<_, i64>(0)))
                .unwrap()
        };
        assert_eq!(get(&sink), -65536);
        let sink = sink.with_cache_mib(8).unwrap();
        assert_eq!(get(&sink), -8192);
    }

    fn formatted(t: DateTime<Utc>) -> String {
        format!("{}T{}Z", t.date_naive(), t.format("%H:%M:%S%.6f"))
    }

    #[test]
    fn timestamp_text_is_fixed_width_and_equals_the_formatted_one() {
        for micros in [
            0i64,
            1,
            -1,
            999_999,
            1_767_225_599_999_999,
            253_402_300_799_999_999, // 9999-12-31T23:59:59.999999
            253_402_300_800_000_000, // year 10000: the date as `Display` writes it
            -62_167_219_200_000_001, // just before year 0
        ] {
            let t = DateTime::from_timestamp_micros(micros).unwrap();
            assert_eq!(timestamp_text(t), formatted(t), "{micros}");
        }
        let t = DateTime::from_timestamp_micros(1_767_225_600_123_456).unwrap();
        assert_eq!(timestamp_text(t), "2026-01-01T00:00:00.123456Z");
        assert_eq!(timestamp_text(t).len(), 27);
    }

    proptest::proptest! {
        #[test]
        fn timestamp_text_equals_the_formatted_one_for_any(
            micros in -62_167_219_200_000_000i64..253_402_300_800_000_000
        ) {
            let t = DateTime::from_timestamp_micros(micros).unwrap();
            proptest::prop_assert_eq!(timestamp_text(t), formatted(t));
        }
    }
}
