//! Target table schemas, write modes and the lineage columns added to every row.

use serde::{Deserialize, Serialize};

use crate::value::ColumnType;

/// Name of the lineage column holding the run id that wrote the row.
pub const LINEAGE_RUN_ID: &str = "_ml_run_id";
/// Name of the lineage column holding the UTC time the row was loaded.
pub const LINEAGE_LOADED_AT: &str = "_ml_loaded_at";
/// Name of the lineage column identifying the source (system, host, query).
pub const LINEAGE_SOURCE: &str = "_ml_source";
/// Name of the key column added to streams without a natural key: a hash of the mapped row.
pub const ROW_HASH_COLUMN: &str = "_ml_row_hash";
/// Lineage column: when reconciliation found the row deleted in the source (soft delete);
/// NULL on live rows, and NULL again when the key reappears.
pub const LINEAGE_DELETED_AT: &str = "_ml_deleted_at";

/// One column of a target table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDef {
    /// Column name in the destination.
    pub name: String,
    /// Column type.
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    /// Whether NULL is allowed.
    #[serde(default = "default_true")]
    pub nullable: bool,
}

fn default_true() -> bool {
    true
}

impl ColumnDef {
    /// A nullable column.
    pub fn new(name: impl Into<String>, column_type: ColumnType) -> Self {
        Self {
            name: name.into(),
            column_type,
            nullable: true,
        }
    }

    /// The same column, NOT NULL.
    pub fn not_null(mut self) -> Self {
        self.nullable = false;
        self
    }
}

/// How a sink applies a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    /// Insert or update by primary key (MERGE). Re-running a window changes nothing.
    #[default]
    Upsert,
    /// Append rows as they come. Only idempotent when the sink deduplicates (for example by
    /// the row-hash key); use for immutable event streams.
    Append,
}

/// The shape of a destination table: columns, key, cursor, write mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSchema {
    /// Logical table name; the sink decides how to qualify it (catalog/schema, file, ...).
    pub name: String,
    /// Columns in row order.
    pub columns: Vec<ColumnDef>,
    /// Primary-key column names. Empty means "no natural key": the engine adds
    /// [`ROW_HASH_COLUMN`] and uses it as the key.
    #[serde(default)]
    pub primary_key: Vec<String>,
    /// The column holding the cursor (last-update time or date) of each row.
    #[serde(default)]
    pub cursor_column: Option<String>,
    /// Upsert (default) or append.
    #[serde(default)]
    pub write_mode: WriteMode,
}

impl TableSchema {
    /// Index of a column by name (ASCII case-insensitive, as Databricks matches names).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// Indexes of the primary-key columns, or an error naming the missing one.
    pub fn key_indexes(&self) -> Result<Vec<usize>, String> {
        self.primary_key
            .iter()
            .map(|k| {
                self.index_of(k).ok_or_else(|| {
                    format!(
                        "primary key column `{k}` is not a column of table `{}`",
                        self.name
                    )
                })
            })
            .collect()
    }

    /// The schema as written: the mapped columns, then [`ROW_HASH_COLUMN`] (a stable hash of
    /// the mapped values, which reconciliation compares with the source), then the lineage
    /// columns run id, loaded-at, source and [`LINEAGE_DELETED_AT`].
    ///
    /// Without a natural key the rows are keyed by their hash and written as upserts, so an
    /// append-only stream that re-reads rows (the lookback) never stores a row twice.
    pub fn with_lineage(&self) -> TableSchema {
        let mut out = self.clone();
        // Nullable unless it is the key: rows written by others (a data steward's insert)
        // have no hash, and reconciliation reports them as changed.
        let hash = ColumnDef::new(ROW_HASH_COLUMN, ColumnType::String);
        if out.primary_key.is_empty() {
            out.columns.push(hash.not_null());
            out.primary_key = vec![ROW_HASH_COLUMN.to_string()];
            out.write_mode = WriteMode::Upsert;
        } else {
            out.columns.push(hash);
        }
        out.columns
            .push(ColumnDef::new(LINEAGE_RUN_ID, ColumnType::String).not_null());
        out.columns
            .push(ColumnDef::new(LINEAGE_LOADED_AT, ColumnType::Timestamp).not_null());
        out.columns
            .push(ColumnDef::new(LINEAGE_SOURCE, ColumnType::String).not_null());
        out.columns
            .push(ColumnDef::new(LINEAGE_DELETED_AT, ColumnType::Timestamp));
        out
    }

    /// Index of [`ROW_HASH_COLUMN`] in a schema from [`with_lineage`](Self::with_lineage).
    pub fn row_hash_index(&self) -> Option<usize> {
        self.index_of(ROW_HASH_COLUMN)
    }

    /// True when `name` is one of the columns the engine adds.
    pub fn is_engine_column(name: &str) -> bool {
        [
            LINEAGE_RUN_ID,
            LINEAGE_LOADED_AT,
            LINEAGE_SOURCE,
            ROW_HASH_COLUMN,
            LINEAGE_DELETED_AT,
        ]
        .iter()
        .any(|c| c.eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lineage_adds_hash_key_only_without_natural_key() {
        let keyed = TableSchema {
            name: "t".into(),
            columns: vec![ColumnDef::new("id", ColumnType::BigInt)],
            primary_key: vec!["id".into()],
            cursor_column: None,
            write_mode: WriteMode::Upsert,
        };
        let l = keyed.with_lineage();
        assert_eq!(l.columns.len(), 6);
        assert_eq!(l.columns[1].name, ROW_HASH_COLUMN);
        assert_eq!(l.primary_key, vec!["id".to_string()]);

        let unkeyed = TableSchema {
            primary_key: vec![],
            ..keyed
        };
        let l = unkeyed.with_lineage();
        assert_eq!(l.columns.len(), 6);
        assert_eq!(l.primary_key, vec![ROW_HASH_COLUMN.to_string()]);
        assert_eq!(l.key_indexes().unwrap(), vec![1]);
    }
}
