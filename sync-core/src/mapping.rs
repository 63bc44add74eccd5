//! Declarative mapping: source field → typed column, as serde data.
//!
//! A [`Mapping`] is plain data (TOML/JSON/YAML-friendly) describing the target table and, per
//! column, the source field, the type, nullability and simple transforms. Compile it into a
//! [`MappingMapper`] (the [`Mapper`] the engine runs) with [`Mapping::compile`] or
//! [`Mapping::compile_with`], which check the mapping once so mapping a record cannot fail for
//! configuration reasons.
//!
//! Values are converted by the mapper's [`FieldFormat`]: [`StandardFormat`] (what
//! [`Mapping::compile`] uses) accepts the standard forms of [`crate::convert`] (ISO 8601
//! datetimes, exact decimals, `true`/`false`); a connector plugs in its source's own habits
//! with [`Mapping::compile_with`]. Zone-less datetimes are read in `source_time_zone` and stored
//! as UTC.
//!
//! Finding a column's source field in a record, in order:
//! 1. the exact key (`VENDOR_ID`);
//! 2. a key the format's [`FieldFormat::field_name`] names the same as the source (with a
//!    format that strips record aliases, `A.VENDOR_ID`);
//! 3. the same two, ASCII case-insensitively (`vendor_id`, `a.Vendor_Id`).
//!
//! When steps 2–3 match more than one key (a join with `A.SETID` and `B.SETID`), the field is
//! reported as ambiguous rather than guessed: write the source as the record names it. The key
//! found is remembered per column, so later records cost one map lookup per column.
//!
//! A missing field is NULL. NULL (missing, JSON `null`, or empty for non-`STRING` types) in a
//! NOT NULL column, or in a primary-key column, is a field error. Every failing field of a
//! record is reported, not only the first.
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
//!         {"column": "setid", "source": "setid", "type": "STRING", "nullable": false},
//!         {"column": "vendor_id", "source": "vendor_id", "type": "STRING", "nullable": false},
//!         {"column": "name", "source": "name", "type": "STRING", "transforms": ["trim", "blank_as_null"]},
//!         {"column": "withhold", "source": "withhold", "type": "BOOLEAN"},
//!         {"column": "last_activity_dt", "source": "last_activity", "type": "DATE"}
//!     ]
//! })).unwrap();
//! assert_eq!(mapping.schema().columns.len(), 5);
//!
//! use sync_core::Mapper;
//! let mapper = mapping.compile().unwrap();
//! let record = serde_json::json!({
//!     "setid": "SHARE", "vendor_id": "0000000042", "name": " ",
//!     "withhold": false, "last_activity": "2026-03-01T10:15:00-06:00"
//! });
//! let row = mapper.map(&record.try_into().unwrap()).unwrap();
//! assert_eq!(row[2], sync_core::Value::Null); // trimmed blank name
//! assert_eq!(row[3], sync_core::Value::Bool(false));
//! ```

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use crate::convert::{ConvertError, FieldFormat, SourceTimeZone, StandardFormat};
use crate::mapper::{FieldError, Mapper};
use crate::record::{FieldNames, Record};
use crate::schema::{ColumnDef, EffectiveDated, TableSchema, WriteMode};
use crate::value::{ColumnType, Row, Value};

/// A declarative mapping from source records to one target table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// Effective dating of the target table (target column names); its as-of dates follow
    /// `source_time_zone` unless it names its own `time_zone`. See
    /// [`EffectiveDated`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_dating: Option<EffectiveDated>,
}

/// How one target column is filled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnMapping {
    /// Target column name.
    pub column: String,
    /// Source field name. Matches the record key exactly, or a key the mapper's
    /// [`FieldFormat::field_name`] gives the same name (a record-alias prefix `A.VENDOR_ID`
    /// with the PeopleSoft format), or either ASCII case-insensitively; a name that matches
    /// several keys that way is an error for that field (see the module docs).
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
    /// Treat an empty or whitespace-only string (some sources write a single space for
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
            effective_dating: self.effective_dating.clone().map(|mut ed| {
                if ed.time_zone.is_none() {
                    // An invalid zone name fails `compile`; here it falls back to UTC.
                    ed.time_zone = self
                        .source_time_zone
                        .as_deref()
                        .and_then(|z| z.trim().parse().ok());
                }
                ed
            }),
        }
    }

    /// A mapping that reads every column of `schema` from the source field of the same name,
    /// with no transforms: for sources whose records already carry the target's names and
    /// types (a `DatabricksSource` feeding the write-back, for example).
    pub fn identity(schema: &TableSchema) -> Mapping {
        Mapping {
            table: schema.name.clone(),
            columns: schema
                .columns
                .iter()
                .map(|c| ColumnMapping {
                    column: c.name.clone(),
                    source: c.name.clone(),
                    column_type: c.column_type,
                    nullable: c.nullable,
                    transforms: Vec::new(),
                })
                .collect(),
            primary_key: schema.primary_key.clone(),
            cursor_column: schema.cursor_column.clone(),
            write_mode: schema.write_mode,
            source_time_zone: None,
            effective_dating: schema.effective_dating.clone(),
        }
    }

    /// The mapping for `column`, if any (ASCII case-insensitive).
    pub fn column_mut(&mut self, column: &str) -> Option<&mut ColumnMapping> {
        self.columns
            .iter_mut()
            .find(|c| c.column.eq_ignore_ascii_case(column))
    }
}

/// Why a [`Mapping`] cannot be compiled. The message names the column or setting at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MappingError {
    /// The table name is empty.
    #[error("mapping: `table` is empty")]
    EmptyTable,
    /// The mapping has no columns.
    #[error("mapping for table `{table}`: `columns` is empty")]
    NoColumns {
        /// The table.
        table: String,
    },
    /// A column's name or source is empty.
    #[error("mapping for table `{table}`: column #{index} has an empty {what}")]
    EmptyName {
        /// The table.
        table: String,
        /// Position of the column (1-based).
        index: usize,
        /// `column` or `source`.
        what: &'static str,
    },
    /// Two columns have the same name (ASCII case-insensitive, as Databricks compares names).
    #[error("mapping for table `{table}`: column `{column}` is mapped twice")]
    DuplicateColumn {
        /// The table.
        table: String,
        /// The duplicated column.
        column: String,
    },
    /// A column uses a name the engine reserves for its lineage or row-hash columns.
    #[error("mapping for table `{table}`: column `{column}` is reserved for the engine's lineage columns")]
    ReservedColumn {
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
    /// A `DECIMAL` scale this library cannot hold exactly.
    #[error("mapping for table `{table}`: column `{column}` is {column_type}; scales above 28 are not supported (exact decimals hold at most 28 fraction digits)")]
    UnsupportedScale {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// Its type.
        column_type: ColumnType,
    },
    /// A `primary_key` entry is not a mapped column.
    #[error("mapping for table `{table}`: primary_key column `{column}` is not one of the mapped columns")]
    UnknownKeyColumn {
        /// The table.
        table: String,
        /// The key column.
        column: String,
    },
    /// `cursor_column` is not a mapped column.
    #[error(
        "mapping for table `{table}`: cursor_column `{column}` is not one of the mapped columns"
    )]
    UnknownCursorColumn {
        /// The table.
        table: String,
        /// The cursor column.
        column: String,
    },
    /// `cursor_column` is not a DATE or TIMESTAMP column.
    #[error("mapping for table `{table}`: cursor_column `{column}` is {column_type}, but a cursor must be DATE or TIMESTAMP")]
    CursorColumnType {
        /// The table.
        table: String,
        /// The cursor column.
        column: String,
        /// Its type.
        column_type: ColumnType,
    },
    /// `source_time_zone` is not an IANA zone name.
    #[error("mapping for table `{table}`: source_time_zone `{name}` is not an IANA time zone name (expected e.g. America/Chicago or UTC)")]
    TimeZone {
        /// The table.
        table: String,
        /// The name given.
        name: String,
    },
    /// `effective_dating` does not fit the mapped columns.
    #[error("mapping for table `{table}`: {reason}")]
    EffectiveDating {
        /// The table.
        table: String,
        /// What is wrong (names the column).
        reason: String,
    },
}

impl Mapping {
    /// Checks the mapping and compiles it into the [`Mapper`] the engine runs.
    ///
    /// Rejects (naming the column or setting): an empty table name or column list, empty
    /// column or source names, duplicate column names (ASCII case-insensitive), the engine's
    /// reserved lineage column names, `DECIMAL` scales above 28, primary-key and cursor columns
    /// that are not mapped, a cursor column that is not `DATE` or `TIMESTAMP`, a
    /// `source_time_zone` that is not an IANA zone name, and `effective_dating` that does not
    /// fit the columns ([`EffectiveDated::validate`]).
    ///
    /// Values are converted with [`StandardFormat`]; use [`Self::compile_with`] for a source
    /// with its own value or field-name habits.
    pub fn compile(&self) -> Result<MappingMapper, MappingError> {
        self.compile_with(Arc::new(StandardFormat))
    }

    /// Like [`Self::compile`], with `format` converting the source values and naming the
    /// record keys (see [`FieldFormat`]).
    pub fn compile_with(
        &self,
        format: Arc<dyn FieldFormat>,
    ) -> Result<MappingMapper, MappingError> {
        let table = || self.table.clone();
        if self.table.trim().is_empty() {
            return Err(MappingError::EmptyTable);
        }
        if self.columns.is_empty() {
            return Err(MappingError::NoColumns { table: table() });
        }
        for (i, c) in self.columns.iter().enumerate() {
            for (what, name) in [("column", &c.column), ("source", &c.source)] {
                if name.trim().is_empty() {
                    return Err(MappingError::EmptyName {
                        table: table(),
                        index: i + 1,
                        what,
                    });
                }
            }
            if self.columns[..i]
                .iter()
                .any(|p| p.column.eq_ignore_ascii_case(&c.column))
            {
                return Err(MappingError::DuplicateColumn {
                    table: table(),
                    column: c.column.clone(),
                });
            }
            if TableSchema::is_engine_column(&c.column) {
                return Err(MappingError::ReservedColumn {
                    table: table(),
                    column: c.column.clone(),
                });
            }
            if let ColumnType::Decimal { scale, .. } = c.column_type {
                if u32::from(scale) > rust_decimal::Decimal::MAX_SCALE {
                    return Err(MappingError::UnsupportedScale {
                        table: table(),
                        column: c.column.clone(),
                        column_type: c.column_type,
                    });
                }
            }
        }
        let find = |name: &str| {
            self.columns
                .iter()
                .find(|c| c.column.eq_ignore_ascii_case(name))
        };
        for k in &self.primary_key {
            if find(k).is_none() {
                return Err(MappingError::UnknownKeyColumn {
                    table: table(),
                    column: k.clone(),
                });
            }
        }
        if let Some(cursor) = &self.cursor_column {
            let c = find(cursor).ok_or_else(|| MappingError::UnknownCursorColumn {
                table: table(),
                column: cursor.clone(),
            })?;
            if !matches!(c.column_type, ColumnType::Date | ColumnType::Timestamp) {
                return Err(MappingError::CursorColumnType {
                    table: table(),
                    column: cursor.clone(),
                    column_type: c.column_type,
                });
            }
        }
        let zone = match &self.source_time_zone {
            None => SourceTimeZone::utc(),
            Some(name) => {
                SourceTimeZone::from_name(name.trim()).map_err(|_| MappingError::TimeZone {
                    table: table(),
                    name: name.clone(),
                })?
            }
        };
        if let Some(ed) = &self.effective_dating {
            ed.validate(&self.schema())
                .map_err(|reason| MappingError::EffectiveDating {
                    table: table(),
                    reason,
                })?;
        }
        let columns = self
            .columns
            .iter()
            .map(|c| CompiledColumn {
                in_key: self
                    .primary_key
                    .iter()
                    .any(|k| k.eq_ignore_ascii_case(&c.column)),
                required: !c.nullable,
                column: c.column.clone(),
                source: c.source.clone(),
                column_type: c.column_type,
                transforms: c.transforms.clone(),
                resolved: OnceLock::new(),
            })
            .collect();
        Ok(MappingMapper {
            schema: self.schema(),
            columns,
            zone,
            format,
            layout: OnceLock::new(),
        })
    }
}

/// A compiled [`Mapping`]: the [`Mapper`] the engine runs.
///
/// Cheap to share across threads (`Send + Sync`); mapping a record allocates only the row and
/// its `STRING` values (plus error details for a failing record).
#[derive(Debug)]
pub struct MappingMapper {
    schema: TableSchema,
    columns: Vec<CompiledColumn>,
    zone: SourceTimeZone,
    format: Arc<dyn FieldFormat>,
    /// The key layout of the first record, used while later records have the same keys.
    layout: OnceLock<Option<RecordLayout>>,
}

/// Where each record key goes, in the record's iteration order. Records of one query have the
/// same keys (usually one shared [`FieldNames`]), so after the first record a row is mapped in
/// a single pass over its values, instead of one lookup per column.
#[derive(Debug)]
struct RecordLayout {
    /// The record keys, in order (shared with the records of the same page).
    keys: FieldNames,
    /// Per record key: the column it fills, or `usize::MAX` for keys no column uses.
    column_of: Vec<usize>,
    /// Columns whose field is absent from this layout.
    absent: Vec<usize>,
    /// `(key position, column)` for further columns filled from an already used key.
    shared: Vec<(usize, usize)>,
}

const UNUSED: usize = usize::MAX;

#[derive(Debug)]
struct CompiledColumn {
    column: String,
    source: String,
    column_type: ColumnType,
    required: bool,
    in_key: bool,
    transforms: Vec<Transform>,
    /// The record key found by alias or case-insensitive matching, remembered after the first
    /// record; when a later record lacks it, the field is looked up afresh for that record.
    resolved: OnceLock<Box<str>>,
}

enum Lookup<'r> {
    Found(&'r str, &'r serde_json::Value),
    Missing,
    Ambiguous(String),
}

/// A value between transforms.
enum Work<'a> {
    Missing,
    Null,
    Json(&'a serde_json::Value),
    Text(Cow<'a, str>),
}

/// Longest value text kept in a [`FieldError`].
const ERROR_VALUE_CHARS: usize = 200;

impl MappingMapper {
    /// The zone in which zone-less datetimes are read.
    pub fn source_time_zone(&self) -> &SourceTimeZone {
        &self.zone
    }

    /// The format converting source values and naming record keys.
    pub fn format(&self) -> &dyn FieldFormat {
        &*self.format
    }

    fn lookup<'r>(&self, col: &CompiledColumn, record: &'r Record) -> Lookup<'r> {
        if let Some(key) = col.resolved.get() {
            if let Some((k, v)) = record.get_key_value(key) {
                return Lookup::Found(k, v);
            }
        }
        if let Some((k, v)) = record.get_key_value(col.source.as_str()) {
            return Lookup::Found(k, v);
        }
        self.search(col, record)
    }

    #[cold]
    fn search<'r>(&self, col: &CompiledColumn, record: &'r Record) -> Lookup<'r> {
        let name = |k: &'r str| self.format.field_name(k);
        let want = self.format.field_name(&col.source);
        let by_alias: Vec<(&String, &serde_json::Value)> =
            record.iter().filter(|(k, _)| name(k) == want).collect();
        let candidates = if by_alias.is_empty() {
            record
                .iter()
                .filter(|(k, _)| {
                    k.eq_ignore_ascii_case(&col.source) || name(k).eq_ignore_ascii_case(want)
                })
                .collect()
        } else {
            by_alias
        };
        match candidates.as_slice() {
            [] => Lookup::Missing,
            [(k, v)] => {
                let _ = col.resolved.set(k.as_str().into());
                Lookup::Found(k, v)
            }
            many => Lookup::Ambiguous(format!(
                "ambiguous: the record has {}; name one of them as the source",
                many.iter()
                    .map(|(k, _)| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    fn map_column(&self, col: &CompiledColumn, record: &Record) -> Result<Value, FieldError> {
        match self.lookup(col, record) {
            Lookup::Found(k, v) => self.convert_column(col, k, Some(v)),
            Lookup::Missing => self.convert_column(col, &col.source, None),
            Lookup::Ambiguous(reason) => Err(field_error(col, &col.source, None, reason)),
        }
    }

    /// Builds the layout from a record in which every column's field was found unambiguously
    /// (or is absent).
    fn build_layout(&self, record: &Record) -> Option<RecordLayout> {
        let keys = record.names().clone();
        let mut column_of = vec![UNUSED; keys.len()];
        let mut absent = Vec::new();
        let mut shared = Vec::new();
        for (ci, col) in self.columns.iter().enumerate() {
            match self.lookup(col, record) {
                Lookup::Found(k, _) => {
                    let pos = keys.position(k)?;
                    if column_of[pos] == UNUSED {
                        column_of[pos] = ci;
                    } else {
                        shared.push((pos, ci));
                    }
                }
                Lookup::Missing => absent.push(ci),
                Lookup::Ambiguous(_) => return None,
            }
        }
        Some(RecordLayout {
            keys,
            column_of,
            absent,
            shared,
        })
    }

    /// True when the column's value is the source string as it is, so an owned record's
    /// string can be moved into the row instead of copied.
    fn movable(col: &CompiledColumn, raw: &serde_json::Value) -> bool {
        col.column_type == ColumnType::String
            && col.transforms.is_empty()
            && matches!(raw, serde_json::Value::String(_))
    }

    /// Maps a record with the layout; `None` when the record's keys differ from it. With
    /// `defer`, [movable](Self::movable) columns are left `Null` for [`Self::take_deferred`]
    /// (their conversion cannot fail: a string is a valid `STRING`, blank or not).
    fn map_with_layout(
        &self,
        layout: &RecordLayout,
        record: &Record,
        defer: bool,
    ) -> Option<Result<Row, Vec<FieldError>>> {
        // Records of one page share their names: usually one pointer comparison.
        if !record.names().same(&layout.keys) && *record.names() != layout.keys {
            return None;
        }
        // Room for the engine's lineage columns, so appending them does not reallocate.
        let mut row = Vec::with_capacity(self.columns.len() + crate::mapper::ROW_EXTRA_CAPACITY);
        row.resize(self.columns.len(), Value::Null);
        let mut errors: Vec<(usize, FieldError)> = Vec::new();
        for ((k, v), &ci) in record.iter().zip(&layout.column_of) {
            if ci == UNUSED || (defer && Self::movable(&self.columns[ci], v)) {
                continue;
            }
            match self.convert_column(&self.columns[ci], k, Some(v)) {
                Ok(value) => row[ci] = value,
                Err(e) => errors.push((ci, e)),
            }
        }
        for &(pos, ci) in &layout.shared {
            if let Some((k, v)) = record.iter().nth(pos) {
                match self.convert_column(&self.columns[ci], k, Some(v)) {
                    Ok(value) => row[ci] = value,
                    Err(e) => errors.push((ci, e)),
                }
            }
        }
        for &ci in &layout.absent {
            let col = &self.columns[ci];
            match self.convert_column(col, &col.source, None) {
                Ok(value) => row[ci] = value,
                Err(e) => errors.push((ci, e)),
            }
        }
        Some(if errors.is_empty() {
            Ok(row)
        } else {
            errors.sort_by_key(|(ci, _)| *ci);
            Err(errors.into_iter().map(|(_, e)| e).collect())
        })
    }

    /// Moves the strings of the columns [`map_with_layout`](Self::map_with_layout) deferred
    /// from `record` into `row`.
    fn take_deferred(&self, layout: &RecordLayout, record: &mut Record, row: &mut Row) {
        for (v, &ci) in record.values_mut().zip(&layout.column_of) {
            if ci == UNUSED || !Self::movable(&self.columns[ci], v) {
                continue;
            }
            if let serde_json::Value::String(s) = v {
                row[ci] = Value::String(std::mem::take(s));
            }
        }
    }

    fn map_by_lookup(&self, record: &Record) -> Result<Row, Vec<FieldError>> {
        let mut row = Vec::with_capacity(self.columns.len() + crate::mapper::ROW_EXTRA_CAPACITY);
        let mut errors = Vec::new();
        for col in &self.columns {
            match self.map_column(col, record) {
                Ok(v) => row.push(v),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(row)
        } else {
            Err(errors)
        }
    }

    fn convert_column(
        &self,
        col: &CompiledColumn,
        field: &str,
        raw: Option<&serde_json::Value>,
    ) -> Result<Value, FieldError> {
        let converted = if col.transforms.is_empty() {
            match raw {
                Some(v) => self.format.convert(v, col.column_type, &self.zone),
                None => Ok(Value::Null),
            }
        } else {
            let mut work = match raw {
                Some(v) => Work::from_json(v),
                None => Work::Missing,
            };
            for t in &col.transforms {
                work = work.apply(t);
            }
            match work {
                Work::Missing | Work::Null => Ok(Value::Null),
                Work::Json(v) => self.format.convert(v, col.column_type, &self.zone),
                Work::Text(t) => self.format.convert_text(&t, col.column_type, &self.zone),
            }
        };
        match converted {
            Ok(Value::Null) if col.required || col.in_key => {
                let reason = match (raw, col.in_key) {
                    (None, true) => {
                        "missing from the record, but the column is part of the primary key"
                    }
                    (None, false) => "missing from the record, but the column is NOT NULL",
                    (Some(_), true) => "NULL or blank, but the column is part of the primary key",
                    (Some(_), false) => "NULL or blank, but the column is NOT NULL",
                };
                Err(field_error(col, field, raw, reason.to_string()))
            }
            Ok(v) => Ok(v),
            Err(e) => Err(field_error(col, field, raw, ConvertError::into_reason(e))),
        }
    }
}

fn field_error(
    col: &CompiledColumn,
    field: &str,
    raw: Option<&serde_json::Value>,
    reason: String,
) -> FieldError {
    FieldError {
        column: col.column.clone(),
        field: field.to_string(),
        value: raw.map(value_text),
        reason,
    }
}

/// The value as text for an error message: strings as they are, other JSON as JSON, cut at
/// [`ERROR_VALUE_CHARS`] characters.
fn value_text(v: &serde_json::Value) -> String {
    let text = match v {
        serde_json::Value::String(s) => Cow::Borrowed(s.as_str()),
        other => Cow::Owned(other.to_string()),
    };
    match text.char_indices().nth(ERROR_VALUE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.into_owned(),
    }
}

impl<'a> Work<'a> {
    fn from_json(v: &'a serde_json::Value) -> Self {
        match v {
            serde_json::Value::Null => Work::Null,
            serde_json::Value::String(s) => Work::Text(Cow::Borrowed(s)),
            other => Work::Json(other),
        }
    }

    fn is_blank(&self) -> bool {
        match self {
            Work::Missing | Work::Null => true,
            Work::Text(t) => t.trim().is_empty(),
            Work::Json(_) => false,
        }
    }

    fn apply(self, t: &'a Transform) -> Self {
        match (t, self) {
            (Transform::Trim, Work::Text(Cow::Borrowed(s))) => Work::Text(Cow::Borrowed(s.trim())),
            (Transform::Trim, Work::Text(Cow::Owned(s))) => {
                Work::Text(Cow::Owned(s.trim().to_string()))
            }
            (Transform::Upper, Work::Text(s)) if s.chars().any(char::is_lowercase) => {
                Work::Text(Cow::Owned(s.to_uppercase()))
            }
            (Transform::Lower, Work::Text(s)) if s.chars().any(char::is_uppercase) => {
                Work::Text(Cow::Owned(s.to_lowercase()))
            }
            (Transform::BlankAsNull, w) if w.is_blank() => Work::Null,
            (Transform::Default(d), w) if w.is_blank() => Work::Text(Cow::Borrowed(d)),
            (Transform::Map(m), Work::Text(s)) => match m.get(s.as_ref()) {
                Some(to) => Work::Text(Cow::Borrowed(to)),
                None => Work::Text(s),
            },
            (Transform::Map(m), Work::Json(v)) => {
                let key = match v {
                    serde_json::Value::Number(n) => n.to_string(),
                    serde_json::Value::Bool(b) => b.to_string(),
                    _ => return Work::Json(v),
                };
                match m.get(&key) {
                    Some(to) => Work::Text(Cow::Borrowed(to)),
                    None => Work::Json(v),
                }
            }
            (_, w) => w,
        }
    }
}

impl Mapper for MappingMapper {
    fn schema(&self) -> &TableSchema {
        &self.schema
    }

    fn map(&self, record: &Record) -> Result<Row, Vec<FieldError>> {
        let layout = self.layout.get_or_init(|| self.build_layout(record));
        if let Some(layout) = layout {
            if let Some(result) = self.map_with_layout(layout, record, false) {
                return result;
            }
        }
        self.map_by_lookup(record)
    }

    fn map_owned(&self, mut record: Record) -> Result<Row, (Record, Vec<FieldError>)> {
        let layout = self.layout.get_or_init(|| self.build_layout(&record));
        if let Some(layout) = layout {
            match self.map_with_layout(layout, &record, true) {
                Some(Ok(mut row)) => {
                    self.take_deferred(layout, &mut record, &mut row);
                    return Ok(row);
                }
                Some(Err(errors)) => return Err((record, errors)),
                None => {}
            }
        }
        self.map_by_lookup(&record).map_err(|e| (record, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mapping(v: serde_json::Value) -> Mapping {
        serde_json::from_value(v).unwrap()
    }

    /// A format whose record keys may carry a `X.` alias prefix, as some query tools write
    /// them (the PeopleSoft client has the real one).
    #[derive(Debug)]
    struct Dotted;

    impl FieldFormat for Dotted {
        fn field_name<'k>(&self, key: &'k str) -> &'k str {
            match key.split_once('.') {
                Some((alias, rest)) if !alias.is_empty() && !rest.is_empty() => rest,
                _ => key,
            }
        }
    }

    fn dotted(v: serde_json::Value) -> MappingMapper {
        mapping(v).compile_with(Arc::new(Dotted)).unwrap()
    }

    fn base() -> serde_json::Value {
        json!({
            "table": "t",
            "primary_key": ["id"],
            "cursor_column": "updated",
            "source_time_zone": "Europe/Berlin",
            "columns": [
                {"column": "id", "source": "ID", "type": "BIGINT", "nullable": false},
                {"column": "updated", "source": "LASTUPDDTTM", "type": "TIMESTAMP"},
                {"column": "amount", "source": "AMT", "type": "DECIMAL(10,2)"}
            ]
        })
    }

    fn compile_err(edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut v = base();
        edit(&mut v);
        mapping(v).compile().unwrap_err().to_string()
    }

    #[test]
    fn compile_accepts_a_valid_mapping() {
        let m = mapping(base()).compile().unwrap();
        assert_eq!(m.schema().columns.len(), 3);
        assert_eq!(m.source_time_zone().tz(), chrono_tz::Europe::Berlin);
    }

    #[test]
    fn compile_rejects_bad_mappings_naming_the_setting() {
        let e = compile_err(|v| v["columns"][2]["column"] = json!("ID"));
        assert!(e.contains("column `ID` is mapped twice"), "{e}");
        let e = compile_err(|v| v["primary_key"] = json!(["id", "nope"]));
        assert!(e.contains("primary_key column `nope`"), "{e}");
        let e = compile_err(|v| v["cursor_column"] = json!("missing"));
        assert!(
            e.contains("cursor_column `missing` is not one of the mapped columns"),
            "{e}"
        );
        let e = compile_err(|v| v["cursor_column"] = json!("amount"));
        assert!(
            e.contains("cursor_column `amount` is DECIMAL(10,2)")
                && e.contains("DATE or TIMESTAMP"),
            "{e}"
        );
        let e = compile_err(|v| v["source_time_zone"] = json!("CST6CDT-ish"));
        assert!(e.contains("source_time_zone `CST6CDT-ish`"), "{e}");
        let e = compile_err(|v| v["columns"][2]["type"] = json!("DECIMAL(38,30)"));
        assert!(
            e.contains("column `amount`") && e.contains("scales above 28"),
            "{e}"
        );
        let e = compile_err(|v| v["columns"][2]["column"] = json!("_ml_run_id"));
        assert!(e.contains("reserved"), "{e}");
        let e = compile_err(|v| v["columns"][2]["source"] = json!(" "));
        assert!(e.contains("column #3 has an empty source"), "{e}");
        let e = compile_err(|v| v["columns"] = json!([]));
        assert!(e.contains("`columns` is empty"), "{e}");
        let e = compile_err(|v| v["table"] = json!(""));
        assert!(e.contains("`table` is empty"), "{e}");
        // A DATE cursor is fine.
        let mut v = base();
        v["columns"][1]["type"] = json!("DATE");
        mapping(v).compile().unwrap();
    }

    #[test]
    fn transforms_run_in_order_before_conversion() {
        let m = mapping(json!({
            "table": "t",
            "columns": [
                {"column": "a", "source": "A", "type": "STRING", "transforms": ["trim", "upper"]},
                {"column": "b", "source": "B", "type": "STRING", "transforms": ["blank_as_null"]},
                {"column": "c", "source": "C", "type": "STRING"},
                {"column": "d", "source": "D", "type": "STRING", "transforms": [{"default": "n/a"}]},
                {"column": "e", "source": "E", "type": "STRING", "transforms": [{"map": {"A": "Active", "I": "Inactive"}}]},
                {"column": "f", "source": "F", "type": "DECIMAL(5,2)", "transforms": [{"default": "0"}]},
                {"column": "g", "source": "G", "type": "STRING", "transforms": ["lower", {"map": {"1": "one"}}]},
                {"column": "h", "source": "H", "type": "STRING", "transforms": [{"map": {"1": "one"}}]}
            ]
        }))
        .compile()
        .unwrap();
        let rec =
            json!({"A": "  ap01 ", "B": " ", "C": " ", "E": "I", "F": " ", "G": "ABC", "H": 1});
        let row = m.map(&rec.as_object().unwrap().clone().into()).unwrap();
        let s = |x: &str| Value::String(x.into());
        assert_eq!(
            row,
            vec![
                s("AP01"),
                Value::Null,
                s(" "),
                s("n/a"),
                s("Inactive"),
                Value::Decimal("0.00".parse().unwrap()),
                s("abc"),
                s("one"),
            ]
        );
    }

    #[test]
    fn ambiguous_alias_matches_are_reported_not_guessed() {
        let m = dotted(json!({
            "table": "t",
            "columns": [
                {"column": "setid", "source": "SETID", "type": "STRING"},
                {"column": "b_setid", "source": "B.SETID", "type": "STRING"}
            ]
        }));
        let rec = json!({"A.SETID": "SHARE", "B.SETID": "US001"});
        let errs = m.map(&rec.as_object().unwrap().clone().into()).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].column, "setid");
        assert!(
            errs[0].reason.contains("`A.SETID`") && errs[0].reason.contains("`B.SETID`"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn one_field_can_fill_several_columns() {
        let m = dotted(json!({
            "table": "t",
            "columns": [
                {"column": "raw", "source": "STATUS", "type": "STRING"},
                {"column": "label", "source": "STATUS", "type": "STRING", "transforms": [{"map": {"A": "Active"}}]},
                {"column": "n", "source": "N", "type": "INT", "nullable": false}
            ]
        }));
        for _ in 0..2 {
            let row = m
                .map(
                    &json!({"A.STATUS": "A", "A.N": 1})
                        .as_object()
                        .unwrap()
                        .clone()
                        .into(),
                )
                .unwrap();
            assert_eq!(
                row,
                vec![
                    Value::String("A".into()),
                    Value::String("Active".into()),
                    Value::Int(1)
                ]
            );
        }
        let errs = m
            .map(
                &json!({"A.STATUS": "A", "A.N": "x"})
                    .as_object()
                    .unwrap()
                    .clone()
                    .into(),
            )
            .unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].column, "n");
    }

    #[test]
    fn mapping_an_owned_record_gives_what_mapping_a_borrowed_one_gives() {
        let m = dotted(json!({
            "table": "t",
            "primary_key": ["id"],
            "columns": [
                {"column": "id", "source": "ID", "type": "STRING", "nullable": false},
                {"column": "raw", "source": "STATUS", "type": "STRING"},
                {"column": "label", "source": "STATUS", "type": "STRING", "transforms": [{"map": {"A": "Active"}}]},
                {"column": "trimmed", "source": "NAME", "type": "STRING", "transforms": ["trim"]},
                {"column": "copy", "source": "NAME", "type": "STRING"},
                {"column": "num_text", "source": "NUM", "type": "STRING"},
                {"column": "n", "source": "N", "type": "INT", "nullable": false},
                {"column": "gone", "source": "GONE", "type": "STRING"}
            ]
        }));
        let records = [
            json!({"A.ID": "1", "A.STATUS": "A", "A.NAME": " Ann ", "A.NUM": 7, "A.N": 1}),
            json!({"A.ID": " ", "A.STATUS": null, "A.NAME": "", "A.NUM": "x", "A.N": "2"}),
            json!({"A.ID": "3", "A.STATUS": "B", "A.NAME": "Bo", "A.NUM": 1.5, "A.N": "x"}),
            json!({"A.ID": null, "A.STATUS": "B", "A.NAME": "Bo", "A.NUM": 1, "A.N": 3}),
            json!({"B.ID": "4", "B.STATUS": "A", "B.NAME": "Cy", "B.N": 4, "EXTRA": "e"}),
        ];
        for r in records {
            let r: Record = r.as_object().unwrap().clone().into();
            let borrowed = m.map(&r);
            match m.map_owned(r.clone()) {
                Ok(row) => assert_eq!(Ok(row), borrowed, "{r:?}"),
                Err((back, errors)) => {
                    assert_eq!(back, r);
                    assert_eq!(Err(errors), borrowed, "{r:?}");
                }
            }
        }
    }

    #[test]
    fn the_standard_format_takes_keys_as_written() {
        let m = mapping(json!({
            "table": "t",
            "columns": [{"column": "setid", "source": "SETID", "type": "STRING"}]
        }))
        .compile()
        .unwrap();
        let row = m
            .map(
                &json!({"A.SETID": "SHARE"})
                    .as_object()
                    .unwrap()
                    .clone()
                    .into(),
            )
            .unwrap();
        assert_eq!(row, vec![Value::Null]);
        let row = m
            .map(
                &json!({"setid": "SHARE"})
                    .as_object()
                    .unwrap()
                    .clone()
                    .into(),
            )
            .unwrap();
        assert_eq!(row, vec![Value::String("SHARE".into())]);
    }

    #[test]
    fn error_values_are_truncated() {
        let long = "x".repeat(1000);
        let t = value_text(&json!(long));
        assert_eq!(t.chars().count(), ERROR_VALUE_CHARS + 1);
        assert!(t.ends_with('…'));
        assert_eq!(value_text(&json!(12.5)), "12.5");
    }
}
