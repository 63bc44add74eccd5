//! Declarative mapping: source field → typed column, as serde data.
//!
//! A [`Mapping`] is plain data (TOML/JSON/YAML-friendly) describing the target table and, per
//! column, the source field, the type, nullability and simple transforms. Compile it into a
//! [`MappingMapper`] (the [`Mapper`](crate::Mapper) the engine runs).
//!
//! ```
//! use sync_core::mapping::Mapping;
//!
//! let mapping: Mapping = serde_json::from_value(serde_json::json!({
//!     "table": "vendors",
//!     "primary_key": ["setid", "vendor_id"],
//!     "cursor_column": "last_activity_dt",
//!     "source_time_zone": "America/Chicago",
//!     "columns": [
//!         {"column": "setid", "source": "SETID", "type": "STRING", "nullable": false},
//!         {"column": "vendor_id", "source": "VENDOR_ID", "type": "STRING", "nullable": false},
//!         {"column": "name", "source": "NAME1", "type": "STRING", "transforms": ["trim", "blank_as_null"]},
//!         {"column": "withhold", "source": "WTHD_SW", "type": "BOOLEAN"},
//!         {"column": "last_activity_dt", "source": "LAST_ACTIVITY_DT", "type": "DATE"}
//!     ]
//! })).unwrap();
//! assert_eq!(mapping.schema().columns.len(), 5);
//! ```

use serde::{Deserialize, Serialize};

use crate::schema::{ColumnDef, TableSchema, WriteMode};
use crate::value::ColumnType;

/// A declarative mapping from source records to one target table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mapping {
    /// Target table name (the sink qualifies it).
    pub table: String,
    /// Column mappings, in target column order.
    pub columns: Vec<ColumnMapping>,
    /// Primary-key columns (target names). Empty: the engine keys rows by a row hash.
    #[serde(default)]
    pub primary_key: Vec<String>,
    /// The target column holding each row's cursor (last update time or date).
    #[serde(default)]
    pub cursor_column: Option<String>,
    /// Upsert (default) or append.
    #[serde(default)]
    pub write_mode: WriteMode,
    /// IANA time zone in which zone-less source datetimes are interpreted (for example
    /// `America/Chicago`); they are stored as UTC. Default: `UTC`.
    #[serde(default)]
    pub source_time_zone: Option<String>,
}

/// How one target column is filled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnMapping {
    /// Target column name.
    pub column: String,
    /// Source field name. Matches the record key exactly, or after a record-alias prefix
    /// (`VENDOR_ID` matches `A.VENDOR_ID`).
    pub source: String,
    /// Target type.
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    /// Whether NULL is allowed (default true). A NULL in a NOT NULL column is a field error.
    #[serde(default = "default_true")]
    pub nullable: bool,
    /// Transforms applied, in order, to the source value before conversion.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transforms: Vec<Transform>,
}

fn default_true() -> bool {
    true
}

/// A simple, data-described transform applied before type conversion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// Trim leading and trailing whitespace.
    Trim,
    /// Upper-case.
    Upper,
    /// Lower-case.
    Lower,
    /// Treat an empty or whitespace-only string (PeopleSoft writes a single space for
    /// "blank") as NULL.
    BlankAsNull,
    /// Use this text when the value is missing, NULL or blank.
    Default(String),
    /// Replace a value by another (translate codes, e.g. `A` → `Active`); unmatched values
    /// pass through.
    Map(std::collections::BTreeMap<String, String>),
}

impl Mapping {
    /// The target table schema (without the engine's lineage columns).
    pub fn schema(&self) -> TableSchema {
        TableSchema {
            name: self.table.clone(),
            columns: self
                .columns
                .iter()
                .map(|c| ColumnDef {
                    name: c.column.clone(),
                    column_type: c.column_type,
                    nullable: c.nullable,
                })
                .collect(),
            primary_key: self.primary_key.clone(),
            cursor_column: self.cursor_column.clone(),
            write_mode: self.write_mode,
        }
    }

    /// The mapping for `column`, if any (ASCII case-insensitive).
    pub fn column_mut(&mut self, column: &str) -> Option<&mut ColumnMapping> {
        self.columns
            .iter_mut()
            .find(|c| c.column.eq_ignore_ascii_case(column))
    }
}
