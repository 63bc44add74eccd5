//! The [`Mapper`] trait: source record → typed row, or per-field errors.

use serde::{Deserialize, Serialize};

use crate::schema::TableSchema;
use crate::value::{Record, Row};

/// Why one field of a record could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// Target column.
    pub column: String,
    /// Source field name (as found in the record, alias prefix included).
    pub field: String,
    /// The offending value rendered as text (truncated to a few hundred characters), or
    /// `None` when the field was missing.
    pub value: Option<String>,
    /// What was wrong, in plain words.
    pub reason: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.value {
            Some(v) => write!(
                f,
                "column `{}` from field `{}` value {:?}: {}",
                self.column, self.field, v, self.reason
            ),
            None => write!(
                f,
                "column `{}` from field `{}`: {}",
                self.column, self.field, self.reason
            ),
        }
    }
}

/// Spare capacity a mapper should leave in each row for the columns the engine appends (row
/// hash and lineage), so appending them does not reallocate:
/// `Vec::with_capacity(schema.columns.len() + ROW_EXTRA_CAPACITY)`.
pub const ROW_EXTRA_CAPACITY: usize = 5;

/// Turns source records into typed rows for one table.
///
/// `map` is on the hot path (millions of rows); it is synchronous and should allocate little
/// beyond the row it returns (see [`ROW_EXTRA_CAPACITY`]).
pub trait Mapper: Send + Sync {
    /// The table the rows are for, without the engine's lineage columns.
    fn schema(&self) -> &TableSchema;

    /// Maps one record. On failure, returns every field that failed, not only the first.
    fn map(&self, record: &Record) -> Result<Row, Vec<FieldError>>;

    /// Maps one record the caller no longer needs, so values may be moved out of it instead
    /// of copied. The result must equal [`map`](Mapper::map)'s; on failure the record comes
    /// back unchanged with the errors. The default calls `map`.
    fn map_owned(&self, record: Record) -> Result<Row, (Record, Vec<FieldError>)> {
        self.map(&record).map_err(|errors| (record, errors))
    }
}

/// A shared mapper is a mapper.
impl<T: Mapper + ?Sized> Mapper for std::sync::Arc<T> {
    fn schema(&self) -> &TableSchema {
        (**self).schema()
    }

    fn map(&self, record: &Record) -> Result<Row, Vec<FieldError>> {
        (**self).map(record)
    }

    fn map_owned(&self, record: Record) -> Result<Row, (Record, Vec<FieldError>)> {
        (**self).map_owned(record)
    }
}
