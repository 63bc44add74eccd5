//! SQL text for Databricks: the **one** place that quotes identifiers, renders literals and
//! builds the statements the sink and source send.
//!
//! - Identifiers are backticked with inner backticks doubled (`` `a``b` ``). Catalog, schema
//!   and table names are checked against Unity Catalog's rules first.
//! - String literals escape the backslash first, then the quote as `\'`. `''` is **never**
//!   emitted: Databricks reads `'a''b'` as two adjacent literals, `ab`.
//! - Decimals are rendered exactly, as `CAST('12.50' AS DECIMAL(18,2))`; timestamps carry an
//!   explicit `+00:00` so the session time zone cannot shift them.
//! - Batches are split so each statement stays under a byte limit, and a MERGE never gets
//!   two source rows with the same key.

use std::collections::HashSet;
use std::fmt::{self, Write as _};

use rust_decimal::Decimal;
use sync_core::{ColumnDef, ColumnType, Row, TableSchema, Value};

/// Longest name Unity Catalog accepts for a catalog, schema or table.
pub const MAX_NAME_CHARS: usize = 255;

/// Why SQL text could not be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SqlError {
    /// A catalog, schema, table or column name Unity Catalog would reject.
    #[error("invalid {kind} name {name:?}: {reason}")]
    InvalidName {
        /// `catalog`, `schema`, `table`, `volume` or `column`.
        kind: &'static str,
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A row does not fit the schema.
    #[error("table {table}, row {row}: {reason}")]
    BadRow {
        /// The table.
        table: String,
        /// Zero-based row index in the batch.
        row: usize,
        /// What is wrong.
        reason: String,
    },
    /// Two rows of one batch have the same primary key.
    #[error("table {table}: rows {first} and {second} have the same primary key ({key}); a MERGE would fail, so the batch must be deduplicated first")]
    DuplicateKey {
        /// The table.
        table: String,
        /// The key values.
        key: String,
        /// Index of the first row with the key.
        first: usize,
        /// Index of the second.
        second: usize,
    },
    /// One row alone is larger than the statement size limit.
    #[error("table {table}, row {row}: one row needs {bytes} bytes of SQL, more than the statement limit of {limit} bytes")]
    RowTooLarge {
        /// The table.
        table: String,
        /// Zero-based row index.
        row: usize,
        /// Bytes the statement would need.
        bytes: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The schema cannot be used for this statement.
    #[error("table {table}: {reason}")]
    BadSchema {
        /// The table.
        table: String,
        /// What is wrong.
        reason: String,
    },
}

/// Checks a catalog, schema or table name against Unity Catalog's rules: not empty, at most
/// 255 characters, no `.`, space, `/`, ASCII control characters (0x00–0x1F) or DEL (0x7F).
pub fn validate_object_name(kind: &'static str, name: &str) -> Result<(), SqlError> {
    let bad = |reason: String| SqlError::InvalidName {
        kind,
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("it is empty".into()));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(bad(format!(
            "it is longer than {MAX_NAME_CHARS} characters"
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| matches!(c, '.' | ' ' | '/') || c.is_ascii_control())
    {
        return Err(bad(format!("it contains the forbidden character {c:?}")));
    }
    Ok(())
}

/// Checks a column name: not empty, at most 255 characters, no control characters. Columns may
/// contain spaces and dots (they are always backticked).
pub fn validate_column_name(name: &str) -> Result<(), SqlError> {
    let bad = |reason: &str| SqlError::InvalidName {
        kind: "column",
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() {
        return Err(bad("it is empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(bad("it is longer than 255 characters"));
    }
    if name.chars().any(|c| c.is_ascii_control()) {
        return Err(bad("it contains a control character"));
    }
    Ok(())
}

/// Quotes one identifier part: `` `name` `` with every inner backtick doubled. Does not
/// validate; use [`validate_object_name`] / [`validate_column_name`] first.
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    push_ident(&mut out, name);
    out
}

fn push_ident(out: &mut String, name: &str) {
    out.push('`');
    for c in name.chars() {
        if c == '`' {
            out.push('`');
        }
        out.push(c);
    }
    out.push('`');
}

/// A validated three-part table name `catalog.schema.table`.
///
/// `Display` prints the quoted form (`` `c`.`s`.`t` ``); [`full_name`](Self::full_name) the
/// plain form Unity Catalog's REST API uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableName {
    catalog: String,
    schema: String,
    table: String,
}

impl TableName {
    /// Validates each part against Unity Catalog's naming rules.
    pub fn new(
        catalog: impl Into<String>,
        schema: impl Into<String>,
        table: impl Into<String>,
    ) -> Result<Self, SqlError> {
        let (catalog, schema, table) = (catalog.into(), schema.into(), table.into());
        validate_object_name("catalog", &catalog)?;
        validate_object_name("schema", &schema)?;
        validate_object_name("table", &table)?;
        Ok(Self {
            catalog,
            schema,
            table,
        })
    }

    /// The catalog.
    pub fn catalog(&self) -> &str {
        &self.catalog
    }

    /// The schema.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The table.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// `catalog.schema.table` unquoted (valid because the parts contain no `.`).
    pub fn full_name(&self) -> String {
        format!("{}.{}.{}", self.catalog, self.schema, self.table)
    }

    /// `` `catalog`.`schema` `` quoted.
    pub fn quoted_schema(&self) -> String {
        format!(
            "{}.{}",
            quote_ident(&self.catalog),
            quote_ident(&self.schema)
        )
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}",
            quote_ident(&self.catalog),
            quote_ident(&self.schema),
            quote_ident(&self.table)
        )
    }
}

/// A validated three-part Unity Catalog volume name `catalog.schema.volume`.
///
/// `Display` prints the quoted form (`` `c`.`s`.`v` ``); [`path`](Self::path) the volume's
/// root in the Files API and SQL (`/Volumes/c/s/v`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VolumeName {
    catalog: String,
    schema: String,
    volume: String,
}

impl VolumeName {
    /// Validates each part against Unity Catalog's naming rules.
    pub fn new(
        catalog: impl Into<String>,
        schema: impl Into<String>,
        volume: impl Into<String>,
    ) -> Result<Self, SqlError> {
        let (catalog, schema, volume) = (catalog.into(), schema.into(), volume.into());
        validate_object_name("catalog", &catalog)?;
        validate_object_name("schema", &schema)?;
        validate_object_name("volume", &volume)?;
        Ok(Self {
            catalog,
            schema,
            volume,
        })
    }

    /// Parses `catalog.schema.volume`.
    pub fn parse(full_name: &str) -> Result<Self, SqlError> {
        match full_name.split('.').collect::<Vec<_>>().as_slice() {
            [c, s, v] => Self::new(*c, *s, *v),
            _ => Err(SqlError::InvalidName {
                kind: "volume",
                name: full_name.to_string(),
                reason: "expected three parts, catalog.schema.volume".into(),
            }),
        }
    }

    /// The catalog.
    pub fn catalog(&self) -> &str {
        &self.catalog
    }

    /// The schema.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The volume.
    pub fn volume(&self) -> &str {
        &self.volume
    }

    /// `catalog.schema.volume` unquoted.
    pub fn full_name(&self) -> String {
        format!("{}.{}.{}", self.catalog, self.schema, self.volume)
    }

    /// `/Volumes/catalog/schema/volume` (no trailing slash).
    pub fn path(&self) -> String {
        format!("/Volumes/{}/{}/{}", self.catalog, self.schema, self.volume)
    }
}

impl fmt::Display for VolumeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}",
            quote_ident(&self.catalog),
            quote_ident(&self.schema),
            quote_ident(&self.volume)
        )
    }
}

/// Renders a string literal: `'…'` with `\` → `\\` first, then `'` → `\'`, NUL → `\u0000`.
/// Other characters, newlines included, stay raw (Databricks reads them verbatim).
pub fn string_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_string_literal(&mut out, s);
    out
}

fn push_string_literal(out: &mut String, s: &str) {
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            // `\0` followed by digits would read as an octal escape: spell NUL out.
            '\0' => out.push_str("\\u0000"),
            c => out.push(c),
        }
    }
    out.push('\'');
}

/// The `DECIMAL(p,s)` that holds `d` exactly.
pub fn decimal_type_of(d: &Decimal) -> ColumnType {
    let scale = d.scale();
    let digits = d.mantissa().unsigned_abs().to_string().len() as u32;
    let precision = digits.max(scale).clamp(1, 38);
    ColumnType::Decimal {
        precision: precision as u8,
        scale: scale.min(precision) as u8,
    }
}

/// Renders a value as a Databricks SQL literal. `column_type`, when given, types `NULL`
/// (`CAST(NULL AS …)`) and decimals (`CAST('…' AS DECIMAL(p,s))` with the column's p and s).
pub fn literal(value: &Value, column_type: Option<ColumnType>) -> String {
    let mut out = String::new();
    push_literal(&mut out, value, column_type);
    out
}

fn push_literal(out: &mut String, value: &Value, column_type: Option<ColumnType>) {
    match value {
        Value::Null => match column_type {
            Some(t) => {
                let _ = write!(out, "CAST(NULL AS {t})");
            }
            None => out.push_str("NULL"),
        },
        Value::String(s) => push_string_literal(out, s),
        Value::Int(v) => {
            let _ = write!(out, "{v}");
        }
        Value::BigInt(v) if *v == i64::MIN => {
            // `-9223372036854775808` parses as the negation of an out-of-range literal.
            let _ = write!(out, "CAST('{v}' AS BIGINT)");
        }
        Value::BigInt(v) => {
            let _ = write!(out, "{v}");
        }
        Value::Decimal(d) => {
            let t = match column_type {
                Some(t @ ColumnType::Decimal { .. }) => t,
                _ => decimal_type_of(d),
            };
            let _ = write!(out, "CAST('{d}' AS {t})");
        }
        Value::Double(v) => {
            let text = if v.is_nan() {
                "NaN".to_string()
            } else if v.is_infinite() {
                if *v > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
            } else {
                // Rust's shortest round-trip form; Java/Spark parse it to the same double.
                format!("{v:?}")
            };
            let _ = write!(out, "CAST('{text}' AS DOUBLE)");
        }
        Value::Bool(b) => out.push_str(if *b { "TRUE" } else { "FALSE" }),
        Value::Date(d) => {
            let _ = write!(out, "DATE'{}'", d.format("%Y-%m-%d"));
        }
        Value::Timestamp(t) => {
            let _ = write!(
                out,
                "TIMESTAMP'{}'",
                t.format("%Y-%m-%d %H:%M:%S%.6f+00:00")
            );
        }
    }
}

/// Whether a value may be written to a column of this type.
pub(crate) fn fits(value: &Value, t: ColumnType) -> bool {
    matches!(
        (value, t),
        (Value::Null, _)
            | (Value::String(_), ColumnType::String)
            | (
                Value::Int(_),
                ColumnType::Int | ColumnType::BigInt | ColumnType::Decimal { .. }
            )
            | (
                Value::BigInt(_),
                ColumnType::BigInt | ColumnType::Decimal { .. }
            )
            | (Value::Decimal(_), ColumnType::Decimal { .. })
            | (Value::Double(_), ColumnType::Double)
            | (Value::Bool(_), ColumnType::Boolean)
            | (Value::Date(_), ColumnType::Date)
            | (Value::Timestamp(_), ColumnType::Timestamp)
    )
}

pub(crate) fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "NULL",
        Value::String(_) => "STRING",
        Value::Int(_) => "INT",
        Value::BigInt(_) => "BIGINT",
        Value::Decimal(_) => "DECIMAL",
        Value::Double(_) => "DOUBLE",
        Value::Bool(_) => "BOOLEAN",
        Value::Date(_) => "DATE",
        Value::Timestamp(_) => "TIMESTAMP",
    }
}

fn column_list(columns: &[ColumnDef]) -> String {
    let mut out = String::new();
    for (i, c) in columns.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_ident(&mut out, &c.name);
    }
    out
}

pub(crate) fn check_columns(table: &TableName, schema: &TableSchema) -> Result<(), SqlError> {
    if schema.columns.is_empty() {
        return Err(SqlError::BadSchema {
            table: table.full_name(),
            reason: "the schema has no columns".into(),
        });
    }
    let mut seen = HashSet::new();
    for c in &schema.columns {
        validate_column_name(&c.name)?;
        if !seen.insert(c.name.to_ascii_lowercase()) {
            return Err(SqlError::BadSchema {
                table: table.full_name(),
                reason: format!(
                    "column `{}` appears twice (names are case-insensitive)",
                    c.name
                ),
            });
        }
    }
    Ok(())
}

/// `CREATE SCHEMA IF NOT EXISTS `c`.`s``
pub fn create_schema(table: &TableName) -> String {
    format!("CREATE SCHEMA IF NOT EXISTS {}", table.quoted_schema())
}

/// `CREATE TABLE IF NOT EXISTS `c`.`s`.`t` (`id` BIGINT NOT NULL, …) USING DELTA`
pub fn create_table(table: &TableName, schema: &TableSchema) -> Result<String, SqlError> {
    check_columns(table, schema)?;
    let mut out = format!("CREATE TABLE IF NOT EXISTS {table} (");
    for (i, c) in schema.columns.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_ident(&mut out, &c.name);
        let _ = write!(out, " {}", c.column_type);
        if !c.nullable {
            out.push_str(" NOT NULL");
        }
    }
    out.push_str(") USING DELTA");
    Ok(out)
}

/// `ALTER TABLE `c`.`s`.`t` ADD COLUMNS (`x` STRING, …)`. Added columns are nullable: Delta
/// cannot add a NOT NULL column to a table that already has rows.
pub fn add_columns(table: &TableName, columns: &[ColumnDef]) -> Result<String, SqlError> {
    if columns.is_empty() {
        return Err(SqlError::BadSchema {
            table: table.full_name(),
            reason: "no columns to add".into(),
        });
    }
    let mut out = format!("ALTER TABLE {table} ADD COLUMNS (");
    for (i, c) in columns.iter().enumerate() {
        validate_column_name(&c.name)?;
        if i > 0 {
            out.push_str(", ");
        }
        push_ident(&mut out, &c.name);
        let _ = write!(out, " {}", c.column_type);
    }
    out.push(')');
    Ok(out)
}

/// Renders rows as `(…)` tuples, checking arity and types.
fn render_rows(
    table: &TableName,
    schema: &TableSchema,
    rows: &[Row],
) -> Result<Vec<String>, SqlError> {
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            if row.len() != schema.columns.len() {
                return Err(SqlError::BadRow {
                    table: table.full_name(),
                    row: i,
                    reason: format!(
                        "it has {} values but the schema has {} columns",
                        row.len(),
                        schema.columns.len()
                    ),
                });
            }
            let mut out = String::from("(");
            for (j, (v, c)) in row.iter().zip(&schema.columns).enumerate() {
                if !fits(v, c.column_type) {
                    return Err(SqlError::BadRow {
                        table: table.full_name(),
                        row: i,
                        reason: format!(
                            "column `{}` is {} but the value is {}",
                            c.name,
                            c.column_type,
                            value_kind(v)
                        ),
                    });
                }
                if v.is_null() && !c.nullable {
                    return Err(SqlError::BadRow {
                        table: table.full_name(),
                        row: i,
                        reason: format!("column `{}` is NOT NULL but the value is NULL", c.name),
                    });
                }
                if j > 0 {
                    out.push_str(", ");
                }
                push_literal(&mut out, v, Some(c.column_type));
            }
            out.push(')');
            Ok(out)
        })
        .collect()
}

/// Packs rendered tuples into statements `head + tuples.join(", ") + tail` of at most `limit`
/// bytes each.
fn pack(
    table: &TableName,
    head: &str,
    tail: &str,
    tuples: Vec<String>,
    limit: usize,
) -> Result<Vec<String>, SqlError> {
    let fixed = head.len() + tail.len();
    let mut out = Vec::new();
    let mut cur = String::new();
    for (i, t) in tuples.into_iter().enumerate() {
        let sep = if cur.is_empty() { 0 } else { 2 };
        if fixed + t.len() > limit {
            return Err(SqlError::RowTooLarge {
                table: table.full_name(),
                row: i,
                bytes: fixed + t.len(),
                limit,
            });
        }
        if fixed + cur.len() + sep + t.len() > limit {
            out.push(format!("{head}{cur}{tail}"));
            cur.clear();
        }
        if !cur.is_empty() {
            cur.push_str(", ");
        }
        cur.push_str(&t);
    }
    if !cur.is_empty() {
        out.push(format!("{head}{cur}{tail}"));
    }
    Ok(out)
}

/// Fails when two rows share a primary key (compared like Databricks does: decimals by value).
pub fn check_unique_keys(
    table: &TableName,
    schema: &TableSchema,
    rows: &[Row],
) -> Result<(), SqlError> {
    let keys = schema.key_indexes().map_err(|reason| SqlError::BadSchema {
        table: table.full_name(),
        reason,
    })?;
    let mut seen = std::collections::HashMap::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let mut canon = String::new();
        for &k in &keys {
            match row.get(k) {
                Some(v) => v.write_canonical(&mut canon),
                None => canon.push('?'),
            }
        }
        if let Some(first) = seen.insert(canon, i) {
            let key = keys
                .iter()
                .map(|&k| {
                    format!(
                        "{}={}",
                        schema.columns[k].name,
                        row.get(k).map(ToString::to_string).unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            return Err(SqlError::DuplicateKey {
                table: table.full_name(),
                key,
                first,
                second: i,
            });
        }
    }
    Ok(())
}

/// MERGE statements upserting `rows` by `schema.primary_key`, each at most `limit` bytes:
///
/// ```text
/// MERGE INTO `c`.`s`.`t` AS tgt USING (SELECT * FROM VALUES (…), (…) AS v(`id`, `x`)) AS src
/// ON tgt.`id` <=> src.`id` WHEN MATCHED THEN UPDATE SET tgt.`x` = src.`x`
/// WHEN NOT MATCHED THEN INSERT (`id`, `x`) VALUES (src.`id`, src.`x`)
/// ```
///
/// (one line in reality). The column list sits on the `VALUES` alias, never on `src`:
/// Databricks rejects column aliases on a MERGE source. Keys are compared with `<=>` so a
/// NULL key matches itself and re-running a batch never duplicates rows.
pub fn merge_statements(
    table: &TableName,
    schema: &TableSchema,
    rows: &[Row],
    limit: usize,
) -> Result<Vec<String>, SqlError> {
    check_columns(table, schema)?;
    if schema.primary_key.is_empty() {
        return Err(SqlError::BadSchema {
            table: table.full_name(),
            reason: "MERGE needs a primary key and the schema has none".into(),
        });
    }
    check_unique_keys(table, schema, rows)?;
    let keys = schema.key_indexes().map_err(|reason| SqlError::BadSchema {
        table: table.full_name(),
        reason,
    })?;
    let cols = column_list(&schema.columns);
    let head = format!("MERGE INTO {table} AS tgt USING (SELECT * FROM VALUES ");
    let tail = format!(
        " AS v({cols})) AS src{}",
        merge_clauses(schema, &keys, &cols)
    );
    let tuples = render_rows(table, schema, rows)?;
    pack(table, &head, &tail, tuples, limit)
}

/// What follows the source of every upsert MERGE (the VALUES form and the staged-file form
/// share it, so both have the same semantics): ` ON tgt.k <=> src.k … WHEN MATCHED THEN UPDATE
/// SET <every non-key column> WHEN NOT MATCHED THEN INSERT (<all>) VALUES (src.<all>)`.
fn merge_clauses(schema: &TableSchema, keys: &[usize], cols: &str) -> String {
    let mut tail = String::from(" ON ");
    for (i, &k) in keys.iter().enumerate() {
        if i > 0 {
            tail.push_str(" AND ");
        }
        let c = quote_ident(&schema.columns[k].name);
        let _ = write!(tail, "tgt.{c} <=> src.{c}");
    }
    let updates: Vec<String> = schema
        .columns
        .iter()
        .enumerate()
        .filter(|(i, _)| !keys.contains(i))
        .map(|(_, c)| {
            let q = quote_ident(&c.name);
            format!("tgt.{q} = src.{q}")
        })
        .collect();
    if !updates.is_empty() {
        let _ = write!(tail, " WHEN MATCHED THEN UPDATE SET {}", updates.join(", "));
    }
    let src_cols = schema
        .columns
        .iter()
        .map(|c| format!("src.{}", quote_ident(&c.name)))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = write!(
        tail,
        " WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({src_cols})"
    );
    tail
}

/// `CREATE VOLUME IF NOT EXISTS `c`.`s`.`v`` (a managed volume).
pub fn create_volume(volume: &VolumeName) -> String {
    format!("CREATE VOLUME IF NOT EXISTS {volume}")
}

/// One MERGE upserting every row of the staged Parquet file `path` (`/Volumes/…`) by
/// `schema.primary_key`, with exactly the semantics of [`merge_statements`]:
///
/// ```text
/// MERGE INTO `c`.`s`.`t` AS tgt USING (SELECT CAST(`id` AS BIGINT) AS `id`,
///   CAST(`x` AS DECIMAL(18,2)) AS `x` FROM read_files('/Volumes/c/s/v/_ml_staging/t/f.parquet',
///   format => 'parquet')) AS src
/// ON tgt.`id` <=> src.`id` WHEN MATCHED THEN UPDATE SET tgt.`x` = src.`x`
/// WHEN NOT MATCHED THEN INSERT (`id`, `x`) VALUES (src.`id`, src.`x`)
/// ```
///
/// (one line in reality). Each column is cast to the table's type, so what the file's
/// reader infers cannot change a value's type. Keyed, so it is idempotent like the VALUES form.
pub fn merge_from_file(
    table: &TableName,
    schema: &TableSchema,
    path: &str,
) -> Result<String, SqlError> {
    check_columns(table, schema)?;
    if schema.primary_key.is_empty() {
        return Err(SqlError::BadSchema {
            table: table.full_name(),
            reason: "MERGE needs a primary key and the schema has none".into(),
        });
    }
    let keys = schema.key_indexes().map_err(|reason| SqlError::BadSchema {
        table: table.full_name(),
        reason,
    })?;
    let cols = column_list(&schema.columns);
    let select = schema
        .columns
        .iter()
        .map(|c| {
            let q = quote_ident(&c.name);
            format!("CAST({q} AS {}) AS {q}", c.column_type)
        })
        .collect::<Vec<_>>()
        .join(", ");
    Ok(format!(
        "MERGE INTO {table} AS tgt USING (SELECT {select} FROM read_files({}, format => 'parquet')) AS src{}",
        string_literal(path),
        merge_clauses(schema, &keys, &cols)
    ))
}

/// `COPY INTO `c`.`s`.`t` FROM '/Volumes/…/dir/' FILEFORMAT = PARQUET FILES = ('name')`:
/// appends the rows of one staged file. The target is fully qualified (COPY INTO ignores the
/// session's catalog and schema). COPY INTO skips files it already loaded, so it may be
/// retried, unlike an `INSERT … SELECT FROM read_files`.
pub fn copy_into(table: &TableName, directory: &str, file_name: &str) -> String {
    let dir = if directory.ends_with('/') {
        directory.to_string()
    } else {
        format!("{directory}/")
    };
    format!(
        "COPY INTO {table} FROM {} FILEFORMAT = PARQUET FILES = ({})",
        string_literal(&dir),
        string_literal(file_name)
    )
}

/// MERGE statements applying source deletes to the rows with `keys` (key values in the
/// schema's primary-key order), each at most `limit` bytes. `soft_at`: set
/// `_ml_deleted_at` to this time where it is still NULL; `None`: delete the rows. Both forms are
/// idempotent.
pub fn delete_statements(
    table: &TableName,
    schema: &TableSchema,
    keys: &[Row],
    soft_at: Option<chrono::DateTime<chrono::Utc>>,
    limit: usize,
) -> Result<Vec<String>, SqlError> {
    let key_idx = schema.key_indexes().map_err(|reason| SqlError::BadSchema {
        table: table.full_name(),
        reason,
    })?;
    if key_idx.is_empty() {
        return Err(SqlError::BadSchema {
            table: table.full_name(),
            reason: "deletes need a primary key and the schema has none".into(),
        });
    }
    let key_schema = TableSchema {
        columns: key_idx.iter().map(|&i| schema.columns[i].clone()).collect(),
        primary_key: schema.primary_key.clone(),
        ..schema.clone()
    };
    let cols = column_list(&key_schema.columns);
    let head = format!("MERGE INTO {table} AS tgt USING (SELECT * FROM VALUES ");
    let mut tail = format!(" AS v({cols})) AS src ON ");
    for (i, c) in key_schema.columns.iter().enumerate() {
        if i > 0 {
            tail.push_str(" AND ");
        }
        let c = quote_ident(&c.name);
        let _ = write!(tail, "tgt.{c} <=> src.{c}");
    }
    match soft_at {
        Some(at) => {
            let d = quote_ident(sync_core::schema::LINEAGE_DELETED_AT);
            let _ = write!(
                tail,
                " WHEN MATCHED AND tgt.{d} IS NULL THEN UPDATE SET tgt.{d} = {}",
                literal(&Value::Timestamp(at), Some(ColumnType::Timestamp))
            );
        }
        None => tail.push_str(" WHEN MATCHED THEN DELETE"),
    }
    let tuples = render_rows(table, &key_schema, keys)?;
    pack(table, &head, &tail, tuples, limit)
}

/// `SELECT` of the key columns and the row hash of the live rows (`_ml_deleted_at IS NULL`),
/// optionally with the cursor in the window (`:window_from`, `:window_to`).
pub fn select_row_hashes(
    table: &TableName,
    schema: &TableSchema,
    cursor: Option<&ColumnDef>,
) -> Result<String, SqlError> {
    let key_idx = schema.key_indexes().map_err(|reason| SqlError::BadSchema {
        table: table.full_name(),
        reason,
    })?;
    let mut cols: Vec<ColumnDef> = key_idx.iter().map(|&i| schema.columns[i].clone()).collect();
    cols.push(ColumnDef::new(
        sync_core::schema::ROW_HASH_COLUMN,
        ColumnType::String,
    ));
    let mut sql = format!(
        "SELECT {} FROM {table} WHERE {} IS NULL",
        column_list(&cols),
        quote_ident(sync_core::schema::LINEAGE_DELETED_AT)
    );
    if let Some(c) = cursor {
        let _ = write!(sql, " AND {}", window_condition(c));
    }
    Ok(sql)
}

/// Statements recomputing the current flag of an [effective-dated](sync_core::EffectiveDated)
/// table as of `as_of`: for the entities of `rows` (deduplicated, packed so each statement stays
/// under `limit` bytes; usually one statement per batch), or for the whole table when `rows`
/// is `None` (the daily sweep). Each statement is
///
/// ```text
/// MERGE INTO `c`.`s`.`job` AS tgt USING (SELECT `emplid`, `effdt`, `effseq`,
///   (`_ml_rank` = 1 AND `effdt` <= DATE'2026-03-01') AS `_ml_current`
///   FROM (SELECT `emplid`, `effdt`, `effseq`, ROW_NUMBER() OVER (PARTITION BY `emplid`,
///     `effdt` <= DATE'2026-03-01' ORDER BY `effdt` DESC, `effseq` DESC) AS `_ml_rank`
///     FROM `c`.`s`.`job` WHERE `emplid` IN ('E1', 'E2')) AS ranked) AS src
/// ON tgt.`emplid` <=> src.`emplid` AND tgt.`effdt` <=> src.`effdt` AND tgt.`effseq` <=> src.`effseq`
/// WHEN MATCHED AND NOT (tgt.`is_current` <=> src.`_ml_current`)
///   THEN UPDATE SET tgt.`is_current` = src.`_ml_current`
/// ```
///
/// (one line in reality; a multi-column entity key filters each column by its own list,
/// `` `emplid` IN ('E1', …) AND `empl_rcd` IN (0, …) ``, which may also recompute a few
/// untouched entities: harmless). The current row of an entity is the
/// greatest effective date on or before `as_of`, then the greatest sequence, then the smallest
/// remaining key; rows dated after `as_of` rank in their own partition and are never current.
/// The source reads the target itself, one row per primary key, so the MERGE never sees
/// duplicate source keys; it only rewrites flags that change and is idempotent (safe to retry).
pub fn current_flags_statements(
    table: &TableName,
    schema: &TableSchema,
    as_of: chrono::NaiveDate,
    rows: Option<&[Row]>,
    limit: usize,
) -> Result<Vec<String>, SqlError> {
    check_columns(table, schema)?;
    let bad = |reason: String| SqlError::BadSchema {
        table: table.full_name(),
        reason,
    };
    let ed = schema
        .effective_dating
        .as_ref()
        .ok_or_else(|| bad("the table is not effective-dated".into()))?;
    ed.validate(schema).map_err(bad)?;
    let name_of = |c: &str| -> Result<&ColumnDef, SqlError> {
        schema
            .index_of(c)
            .map(|i| &schema.columns[i])
            .ok_or_else(|| bad(format!("`{c}` is not a column")))
    };
    let keys: Vec<&ColumnDef> = schema
        .primary_key
        .iter()
        .map(|k| name_of(k))
        .collect::<Result<_, _>>()?;
    let entity: Vec<&ColumnDef> = ed
        .entity_key
        .iter()
        .map(|k| name_of(k))
        .collect::<Result<_, _>>()?;
    let date = quote_ident(&name_of(&ed.date_column)?.name);
    let current = quote_ident(&name_of(&ed.current_column)?.name);
    let as_of = format!("DATE'{}'", as_of.format("%Y-%m-%d"));
    let key_list = keys
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let entity_list = entity
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let mut order = vec![format!("{date} DESC")];
    if let Some(seq) = &ed.sequence_column {
        order.push(format!("{} DESC", quote_ident(&name_of(seq)?.name)));
    }
    for k in &keys {
        let taken = k.name.eq_ignore_ascii_case(&ed.date_column)
            || ed
                .sequence_column
                .as_deref()
                .is_some_and(|s| k.name.eq_ignore_ascii_case(s))
            || entity.iter().any(|e| e.name.eq_ignore_ascii_case(&k.name));
        if !taken {
            order.push(quote_ident(&k.name));
        }
    }
    let head = format!(
        "MERGE INTO {table} AS tgt USING (SELECT {key_list}, (`_ml_rank` = 1 AND {date} <= {as_of}) AS `_ml_current` FROM (SELECT {key_list}, ROW_NUMBER() OVER (PARTITION BY {entity_list}, {date} <= {as_of} ORDER BY {}) AS `_ml_rank` FROM {table}",
        order.join(", ")
    );
    let mut tail = String::from(") AS ranked) AS src ON ");
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            tail.push_str(" AND ");
        }
        let c = quote_ident(&k.name);
        let _ = write!(tail, "tgt.{c} <=> src.{c}");
    }
    let _ = write!(
        tail,
        " WHEN MATCHED AND NOT (tgt.{current} <=> src.`_ml_current`) THEN UPDATE SET tgt.{current} = src.`_ml_current`"
    );
    let Some(rows) = rows else {
        return Ok(vec![format!("{head}{tail}")]);
    };
    // Per entity-key column, the distinct values of the batch, as literals: one `IN` list per
    // column, joined by AND. With several columns that selects every combination of the
    // values, a superset of the batch's entities: harmless, since the filter is on entity-key
    // columns only (each entity is in or out as a whole) and recomputing an untouched entity
    // changes nothing. Plain `IN` lists avoid tuple comparisons, whose struct typing differs
    // between engines.
    let idx: Vec<usize> = ed
        .entity_key
        .iter()
        .filter_map(|k| schema.index_of(k))
        .collect();
    let names: Vec<String> = idx
        .iter()
        .map(|&i| quote_ident(&schema.columns[i].name))
        .collect();
    let fixed = head.len()
        + tail.len()
        + " WHERE ".len()
        + names
            .iter()
            .map(|n| n.len() + " IN ()".len())
            .sum::<usize>()
        + " AND ".len() * (names.len() - 1);
    let render = |lists: &[Vec<String>]| {
        let conds: Vec<String> = names
            .iter()
            .zip(lists)
            .map(|(n, l)| format!("{n} IN ({})", l.join(", ")))
            .collect();
        format!("{head} WHERE {}{tail}", conds.join(" AND "))
    };
    let mut out = Vec::new();
    let mut seen_entities = HashSet::new();
    let mut lists: Vec<Vec<String>> = vec![Vec::new(); idx.len()];
    let mut seen: Vec<HashSet<String>> = vec![HashSet::new(); idx.len()];
    let mut size = fixed;
    for (r, row) in rows.iter().enumerate() {
        let mut canon = String::new();
        let mut lits = Vec::with_capacity(idx.len());
        for &i in &idx {
            let v = row.get(i).ok_or_else(|| SqlError::BadRow {
                table: table.full_name(),
                row: r,
                reason: format!(
                    "it has {} values but the schema has {} columns",
                    row.len(),
                    schema.columns.len()
                ),
            })?;
            v.write_canonical(&mut canon);
            canon.push('\u{1f}');
            lits.push(literal(v, Some(schema.columns[i].column_type)));
        }
        if !seen_entities.insert(canon) {
            continue;
        }
        let grows = |seen: &[HashSet<String>]| -> usize {
            lits.iter()
                .zip(seen)
                .filter(|(l, s)| !s.contains(*l))
                .map(|(l, _)| l.len() + 2)
                .sum()
        };
        let alone = fixed + lits.iter().map(|l| l.len() + 2).sum::<usize>();
        if alone > limit {
            return Err(SqlError::RowTooLarge {
                table: table.full_name(),
                row: r,
                bytes: alone,
                limit,
            });
        }
        if size + grows(&seen) > limit {
            out.push(render(&lists));
            lists.iter_mut().for_each(Vec::clear);
            seen.iter_mut().for_each(HashSet::clear);
            size = fixed;
        }
        size += grows(&seen);
        for (j, l) in lits.into_iter().enumerate() {
            if seen[j].insert(l.clone()) {
                lists[j].push(l);
            }
        }
    }
    if !lists[0].is_empty() {
        out.push(render(&lists));
    }
    Ok(out)
}

/// INSERT statements appending `rows`, each at most `limit` bytes:
/// `INSERT INTO `c`.`s`.`t` (`id`, `x`) VALUES (…), (…)`.
pub fn insert_statements(
    table: &TableName,
    schema: &TableSchema,
    rows: &[Row],
    limit: usize,
) -> Result<Vec<String>, SqlError> {
    check_columns(table, schema)?;
    let head = format!(
        "INSERT INTO {table} ({}) VALUES ",
        column_list(&schema.columns)
    );
    let tuples = render_rows(table, schema, rows)?;
    pack(table, &head, "", tuples, limit)
}

/// The condition `cursor >= :from AND cursor < :to` for a cursor column of type `cursor_type`.
///
/// A DATE cursor is compared as `CAST(d AS TIMESTAMP_NTZ)` against NTZ parameters holding UTC
/// wall time, so the session time zone cannot move the window edges.
pub fn window_condition(cursor: &ColumnDef) -> String {
    let c = quote_ident(&cursor.name);
    match cursor.column_type {
        ColumnType::Date => format!(
            "CAST({c} AS TIMESTAMP_NTZ) >= :window_from AND CAST({c} AS TIMESTAMP_NTZ) < :window_to"
        ),
        _ => format!("{c} >= :window_from AND {c} < :window_to"),
    }
}

/// `SELECT COUNT(*) AS `row_count` FROM t WHERE <window condition>`.
pub fn count_in_window(table: &TableName, cursor: &ColumnDef) -> String {
    format!(
        "SELECT COUNT(*) AS `row_count` FROM {table} WHERE {}",
        window_condition(cursor)
    )
}

/// `SELECT `a`, `b` FROM t WHERE <window condition> ORDER BY cursor`.
pub fn select_window(table: &TableName, columns: &[ColumnDef], cursor: &ColumnDef) -> String {
    format!(
        "SELECT {} FROM {table} WHERE {} ORDER BY {}",
        column_list(columns),
        window_condition(cursor),
        quote_ident(&cursor.name)
    )
}

/// `SELECT `a`, `b` FROM t WHERE `x` = :x AND … ORDER BY `o`, …`: each filter is a column
/// compared for equality with the named parameter of the same name.
pub fn select_where_equal(
    table: &TableName,
    columns: &[&str],
    filters: &[&str],
    order_by: &[&str],
) -> String {
    let list = |names: &[&str]| {
        names
            .iter()
            .map(|n| quote_ident(n))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = format!("SELECT {} FROM {table}", list(columns));
    for (i, f) in filters.iter().enumerate() {
        out.push_str(if i == 0 { " WHERE " } else { " AND " });
        let _ = write!(out, "{} = :{f}", quote_ident(f));
    }
    if !order_by.is_empty() {
        let _ = write!(out, " ORDER BY {}", list(order_by));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_follow_unity_catalog_rules() {
        for bad in ["", "a.b", "a b", "a/b", "a\u{0}b", "a\nb", "a\u{7f}b"] {
            assert!(validate_object_name("table", bad).is_err(), "{bad:?}");
        }
        assert!(validate_object_name("table", &"x".repeat(256)).is_err());
        assert!(validate_object_name("table", &"x".repeat(255)).is_ok());
        assert!(validate_object_name("table", "Vendors_2024-é`q").is_ok());
        let err = TableName::new("main", "bad schema", "t").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid schema name \"bad schema\": it contains the forbidden character ' '"
        );
    }

    #[test]
    fn identifiers_double_inner_backticks() {
        assert_eq!(quote_ident("a`b"), "`a``b`");
        assert_eq!(quote_ident("``"), "``````");
        let t = TableName::new("main", "s`x", "t").unwrap();
        assert_eq!(t.to_string(), "`main`.`s``x`.`t`");
        assert_eq!(t.full_name(), "main.s`x.t");
    }

    #[test]
    fn literals_per_type() {
        use chrono::TimeZone;
        assert_eq!(string_literal(r"O'Brien \ x"), r"'O\'Brien \\ x'");
        assert_eq!(string_literal("a\0b"), r"'a\u0000b'");
        assert_eq!(string_literal("''"), r"'\'\''");
        let d: Decimal = "12.50".parse().unwrap();
        assert_eq!(
            literal(&Value::Decimal(d), None),
            "CAST('12.50' AS DECIMAL(4,2))"
        );
        assert_eq!(
            literal(
                &Value::Decimal(d),
                Some(ColumnType::Decimal {
                    precision: 18,
                    scale: 2
                })
            ),
            "CAST('12.50' AS DECIMAL(18,2))"
        );
        let small: Decimal = "-0.0001".parse().unwrap();
        assert_eq!(
            literal(&Value::Decimal(small), None),
            "CAST('-0.0001' AS DECIMAL(4,4))"
        );
        assert_eq!(
            literal(&Value::Null, Some(ColumnType::Date)),
            "CAST(NULL AS DATE)"
        );
        assert_eq!(literal(&Value::Null, None), "NULL");
        assert_eq!(
            literal(&Value::BigInt(i64::MIN), None),
            "CAST('-9223372036854775808' AS BIGINT)"
        );
        assert_eq!(literal(&Value::Int(-5), None), "-5");
        assert_eq!(literal(&Value::Double(0.1), None), "CAST('0.1' AS DOUBLE)");
        assert_eq!(
            literal(&Value::Double(f64::NEG_INFINITY), None),
            "CAST('-Infinity' AS DOUBLE)"
        );
        assert_eq!(literal(&Value::Bool(true), None), "TRUE");
        let date = chrono::NaiveDate::from_ymd_opt(2024, 1, 31).unwrap();
        assert_eq!(literal(&Value::Date(date), None), "DATE'2024-01-31'");
        let ts = chrono::Utc.with_ymd_and_hms(2024, 1, 31, 23, 5, 9).unwrap()
            + chrono::Duration::microseconds(123);
        assert_eq!(
            literal(&Value::Timestamp(ts), None),
            "TIMESTAMP'2024-01-31 23:05:09.000123+00:00'"
        );
    }

    #[test]
    fn decimal_type_holds_the_value() {
        let t = |s: &str| decimal_type_of(&s.parse().unwrap()).to_string();
        assert_eq!(t("0"), "DECIMAL(1,0)");
        assert_eq!(t("123456.789"), "DECIMAL(9,3)");
        assert_eq!(t("-79228162514264337593543950335"), "DECIMAL(29,0)");
    }
}
