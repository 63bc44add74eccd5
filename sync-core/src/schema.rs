//! Target table schemas, write modes and the lineage columns added to every row.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
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
    /// Effective dating (EFFDT-style history tables): when set, the sink keeps
    /// [`EffectiveDated::current_column`] right across windows (see [`EffectiveDated`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_dating: Option<EffectiveDated>,
}

/// How a table is effective-dated: each entity (e.g. one employee job record) has several rows,
/// one per effective date (and sequence), and one boolean column flags the current row.
///
/// The **current row** of an entity is the one with the greatest effective date on or before
/// the as-of date, then the greatest sequence on that date (then the smallest remaining primary
/// key, so ties are decided the same way every time). Every other row of the entity, history
/// and future-dated rows, is not current. The as-of date is "today" in
/// [`time_zone`](Self::time_zone) (UTC when unset).
///
/// Sinks that [maintain current flags](crate::Sink::maintains_current_flags) recompute the flag
/// for every entity a batch touches (rows written in earlier windows included) and, once per
/// local day, for the whole table so future-dated rows become current on their date (the
/// engine's daily sweep).
///
/// ```
/// use sync_core::schema::EffectiveDated;
///
/// let ed = EffectiveDated::new(["emplid", "empl_rcd"], "effdt", "is_current")
///     .sequence("effseq")
///     .time_zone("America/Chicago".parse().unwrap());
/// let t = "2026-03-01T03:00:00Z".parse().unwrap();
/// assert_eq!(ed.as_of(t).to_string(), "2026-02-28"); // still the 28th in Chicago
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct EffectiveDated {
    /// The entity key: the primary key without the date and sequence (`emplid`, `empl_rcd`).
    /// Every column must be a primary-key column.
    pub entity_key: Vec<String>,
    /// The effective-date column (`DATE`, a primary-key column).
    pub date_column: String,
    /// The sequence column ordering rows of one entity on one date (`effseq`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence_column: Option<String>,
    /// The `BOOLEAN` column flagging the current row.
    pub current_column: String,
    /// The zone whose calendar decides "today" (the site's zone). `None`: UTC.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "tz_name")]
    pub time_zone: Option<Tz>,
}

impl EffectiveDated {
    /// Effective dating over `entity_key`, dated by `date_column`, flagged in `current_column`;
    /// no sequence column, as-of dates in UTC.
    pub fn new<S: Into<String>>(
        entity_key: impl IntoIterator<Item = S>,
        date_column: impl Into<String>,
        current_column: impl Into<String>,
    ) -> Self {
        Self {
            entity_key: entity_key.into_iter().map(Into::into).collect(),
            date_column: date_column.into(),
            sequence_column: None,
            current_column: current_column.into(),
            time_zone: None,
        }
    }

    /// Sets the sequence column.
    pub fn sequence(mut self, column: impl Into<String>) -> Self {
        self.sequence_column = Some(column.into());
        self
    }

    /// Sets the zone whose calendar decides the as-of date.
    pub fn time_zone(mut self, tz: Tz) -> Self {
        self.time_zone = Some(tz);
        self
    }

    /// The as-of date at `now`: the date in [`time_zone`](Self::time_zone) (UTC when unset).
    pub fn as_of(&self, now: DateTime<Utc>) -> NaiveDate {
        now.with_timezone(&self.time_zone.unwrap_or(Tz::UTC))
            .date_naive()
    }

    /// Checks the declaration against `schema`: every named column exists, the entity key and
    /// the date column are primary-key columns (so they are never NULL), the date column is a
    /// `DATE` and the current column a `BOOLEAN` outside the key. The error names the column.
    pub fn validate(&self, schema: &TableSchema) -> Result<(), String> {
        let table = &schema.name;
        let column = |name: &str| {
            schema
                .index_of(name)
                .map(|i| &schema.columns[i])
                .ok_or_else(|| {
                    format!("effective dating: `{name}` is not a column of table `{table}`")
                })
        };
        let in_key = |name: &str| {
            schema
                .primary_key
                .iter()
                .any(|k| k.eq_ignore_ascii_case(name))
        };
        if self.entity_key.is_empty() {
            return Err(format!(
                "effective dating of table `{table}`: `entity_key` is empty"
            ));
        }
        for k in &self.entity_key {
            column(k)?;
            if !in_key(k) {
                return Err(format!(
                    "effective dating of table `{table}`: entity key column `{k}` is not in the primary key"
                ));
            }
        }
        let date = column(&self.date_column)?;
        if date.column_type != ColumnType::Date || !in_key(&date.name) {
            return Err(format!(
                "effective dating of table `{table}`: date column `{}` must be a DATE column of the primary key",
                self.date_column
            ));
        }
        if let Some(seq) = &self.sequence_column {
            column(seq)?;
        }
        let current = column(&self.current_column)?;
        if current.column_type != ColumnType::Boolean || in_key(&current.name) {
            return Err(format!(
                "effective dating of table `{table}`: current column `{}` must be a BOOLEAN column outside the primary key",
                self.current_column
            ));
        }
        Ok(())
    }
}

/// Serializes a zone as its IANA name.
mod tz_name {
    use chrono_tz::Tz;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(tz: &Option<Tz>, s: S) -> Result<S::Ok, S::Error> {
        match tz {
            Some(tz) => s.serialize_str(tz.name()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Tz>, D::Error> {
        let name: Option<String> = Option::deserialize(d)?;
        name.map(|n| {
            n.parse::<Tz>().map_err(|_| {
                serde::de::Error::custom(format!(
                    "`{n}` is not an IANA time zone name (expected e.g. America/Chicago or UTC)"
                ))
            })
        })
        .transpose()
    }
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
            effective_dating: None,
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

    fn job() -> TableSchema {
        TableSchema {
            name: "job".into(),
            columns: vec![
                ColumnDef::new("emplid", ColumnType::String),
                ColumnDef::new("effdt", ColumnType::Date),
                ColumnDef::new("effseq", ColumnType::Int),
                ColumnDef::new("is_current", ColumnType::Boolean),
            ],
            primary_key: vec!["emplid".into(), "effdt".into(), "effseq".into()],
            cursor_column: None,
            write_mode: WriteMode::Upsert,
            effective_dating: Some(
                EffectiveDated::new(["emplid"], "effdt", "is_current").sequence("effseq"),
            ),
        }
    }

    #[test]
    fn effective_dating_is_validated_and_round_trips_through_serde() {
        let s = job();
        let ed = s.effective_dating.clone().unwrap();
        ed.validate(&s).unwrap();
        let bad = EffectiveDated::new(["emplid"], "is_current", "effdt");
        assert!(bad.validate(&s).unwrap_err().contains("date column"));
        let bad = EffectiveDated::new(["effseq", "nope"], "effdt", "is_current");
        assert!(bad.validate(&s).unwrap_err().contains("`nope`"));

        let json = serde_json::to_value(&s).unwrap();
        let back: TableSchema = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
        // Schemas serialized before effective dating existed still load.
        let old = serde_json::json!({"name": "t", "columns": [], "primary_key": []});
        let old: TableSchema = serde_json::from_value(old).unwrap();
        assert!(old.effective_dating.is_none());
        let zoned: EffectiveDated = serde_json::from_value(serde_json::json!({
            "entity_key": ["emplid"], "date_column": "effdt", "current_column": "is_current",
            "time_zone": "Europe/Berlin"
        }))
        .unwrap();
        assert_eq!(zoned.time_zone, Some(chrono_tz::Europe::Berlin));
        assert!(serde_json::from_value::<EffectiveDated>(serde_json::json!({
            "entity_key": ["emplid"], "date_column": "effdt", "current_column": "is_current",
            "time_zone": "Mars/Olympus"
        }))
        .is_err());
    }
}
