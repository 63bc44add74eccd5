//! Bulk loads for [`DatabricksSink`](crate::DatabricksSink): a large batch is written as one
//! Parquet file, uploaded to a Unity Catalog volume with the Files API, loaded with **one**
//! statement, and deleted.
//!
//! - Upserts: `MERGE INTO t USING (SELECT <cols cast to the table types> FROM
//!   read_files('/Volumes/…/f.parquet', format => 'parquet')) AS src ON <key> …`, the same
//!   clauses as the VALUES MERGE ([`sql::merge_from_file`](crate::sql::merge_from_file)).
//! - Appends: `COPY INTO t FROM '/Volumes/…/dir/' FILEFORMAT = PARQUET FILES = ('f.parquet')`
//!   ([`sql::copy_into`](crate::sql::copy_into)); COPY INTO skips files it already loaded, so a
//!   retry never appends twice.
//!
//! The Parquet file has exact types: `DECIMAL(p,s)` as INT32/INT64/FIXED_LEN_BYTE_ARRAY with
//! the decimal logical type (never a float), TIMESTAMP as INT64 microseconds adjusted to UTC,
//! DATE as INT32 days, STRING as UTF-8, every column optional (NULLs by definition level).
//!
//! **Staging.** Files live in `/Volumes/<c>/<s>/<v>/_ml_staging/<table>/<stream>/`. A file's
//! name comes from the run id, the stream, the window and a digest of the batch (never random),
//! so a retried step rewrites the same file. The sink deletes its file after the load whether
//! the load succeeded or not (best effort), and at a stream's first write of each run (any
//! batch size) deletes whatever an earlier run left in that stream's directory. A stream is
//! written by one worker at a time (the engine's per-stream lease) and its batches one after
//! another, so that cleanup never meets a file in flight, even when several streams load the
//! same table.
//!
//! **Grants.** The sink's principal needs `READ VOLUME` and `WRITE VOLUME` on the volume, and,
//! when the sink creates it ([`BulkOptions::create_volume`]), `CREATE VOLUME` on the schema.

use std::fmt::Write as _;

use sync_core::Batch;

use crate::sql::VolumeName;

/// Batches with at least this many rows take the bulk path by default.
pub const DEFAULT_THRESHOLD: usize = 20_000;

/// The staging directory under a volume's root.
pub const STAGING_DIR: &str = "_ml_staging";

/// Compression of the staged Parquet pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BulkCompression {
    /// Snappy (default): fast, and what Spark writes by default.
    #[default]
    Snappy,
    /// No compression.
    Uncompressed,
}

/// How [`DatabricksSink`](crate::DatabricksSink) stages large batches; see the
/// [module docs](self).
///
/// ```
/// use databricks_client::bulk::{BulkCompression, BulkOptions};
/// use databricks_client::sql::VolumeName;
///
/// let options = BulkOptions::new(VolumeName::parse("main.erp.staging").unwrap())
///     .threshold(50_000)
///     .create_volume(true)
///     .compression(BulkCompression::Snappy);
/// assert_eq!(options.volume().path(), "/Volumes/main/erp/staging");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BulkOptions {
    volume: VolumeName,
    threshold: usize,
    create_volume: bool,
    compression: BulkCompression,
}

impl BulkOptions {
    /// Stage in `volume`; batches of [`DEFAULT_THRESHOLD`] rows or more take the bulk path;
    /// the volume must exist (see [`create_volume`](Self::create_volume)); Snappy pages.
    pub fn new(volume: VolumeName) -> Self {
        Self {
            volume,
            threshold: DEFAULT_THRESHOLD,
            create_volume: false,
            compression: BulkCompression::default(),
        }
    }

    /// Batches with at least `rows` rows take the bulk path (at least 1).
    pub fn threshold(mut self, rows: usize) -> Self {
        self.threshold = rows.max(1);
        self
    }

    /// When true, `prepare` runs `CREATE VOLUME IF NOT EXISTS` (needs `CREATE VOLUME` on the
    /// schema). Default false: the volume must exist.
    pub fn create_volume(mut self, yes: bool) -> Self {
        self.create_volume = yes;
        self
    }

    /// Page compression of the staged files.
    pub fn compression(mut self, compression: BulkCompression) -> Self {
        self.compression = compression;
        self
    }

    /// The volume.
    pub fn volume(&self) -> &VolumeName {
        &self.volume
    }

    /// Rows from which a batch takes the bulk path.
    pub fn threshold_rows(&self) -> usize {
        self.threshold
    }

    /// Whether `prepare` creates the volume.
    pub fn creates_volume(&self) -> bool {
        self.create_volume
    }

    /// The page compression.
    pub fn page_compression(&self) -> BulkCompression {
        self.compression
    }

    /// `/Volumes/c/s/v/_ml_staging/<table>/<stream>` (no trailing slash): one directory per
    /// stream, so streams loading the same table (in one process or on several workers)
    /// never clean up each other's files. The stream name is cut to ASCII letters, digits,
    /// `-` and `_` as in [`staged_file_name`].
    pub fn staging_dir(&self, table: &str, stream: &str) -> String {
        format!(
            "{}/{STAGING_DIR}/{table}/{}",
            self.volume.path(),
            file_part(stream, 64)
        )
    }
}

/// `s` cut to `max` characters, each one other than an ASCII letter, digit, `-` or `_`
/// replaced by `_`.
fn file_part(s: &str, max: usize) -> String {
    s.chars()
        .take(max)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The staged file's name for a batch: `<run>-<stream>-<from>-<to>-<digest>.parquet`, from the
/// run id, the stream, the window (microseconds since the epoch) and a 128-bit digest of the
/// rows. Deterministic, so a retried step writes (and COPY INTO recognises) the same file.
/// Characters other than ASCII letters, digits, `-` and `_` become `_`; long parts are cut.
pub fn staged_file_name(batch: &Batch) -> String {
    let clean = file_part;
    let mut canon = String::new();
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for row in &batch.rows {
        canon.clear();
        for v in row {
            v.write_canonical(&mut canon);
            canon.push('\u{1f}');
        }
        canon.push('\u{1e}');
        hasher.update(canon.as_bytes());
    }
    let digest = hasher.digest128();
    let mut name = format!(
        "{}-{}-{}-{}-",
        clean(&batch.run_id, 64),
        clean(&batch.stream, 64),
        batch.window.from.timestamp_micros(),
        batch.window.to.timestamp_micros()
    );
    let _ = write!(name, "{digest:032x}.parquet");
    name
}

#[cfg(feature = "bulk")]
pub(crate) mod parquet_file {
    //! The Parquet encoder (low-level column writers, no arrow).

    use std::sync::Arc;

    use parquet::basic::{Compression, LogicalType, Repetition, TimeUnit, Type as PhysicalType};
    use parquet::data_type::{
        BoolType, ByteArray, ByteArrayType, DoubleType, FixedLenByteArray, FixedLenByteArrayType,
        Int32Type, Int64Type,
    };
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::types::Type;
    use rust_decimal::{Decimal, RoundingStrategy};
    use sync_core::{ColumnType, Row, TableSchema, Value};

    use super::BulkCompression;
    use crate::sql::{self, SqlError, TableName};

    /// Why a value could not be staged.
    fn bad_value(table: &str, row: usize, column: &str, v: &Value, why: &str) -> SqlError {
        SqlError::BadRow {
            table: table.to_string(),
            row,
            reason: format!("column `{column}`: {why} ({v})"),
        }
    }

    /// Bytes of a FIXED_LEN_BYTE_ARRAY that hold every unscaled value of `precision` digits
    /// (two's complement, big-endian).
    pub(crate) fn decimal_bytes(precision: u8) -> usize {
        // The largest unscaled value is 10^p - 1; n bytes hold up to 2^(8n-1) - 1.
        let max = 10u128.pow(u32::from(precision.min(38))) - 1;
        (1..=16usize)
            .find(|&n| n == 16 || max < 1u128 << (8 * n - 1))
            .unwrap_or(16)
    }

    fn column_type(c: &sync_core::ColumnDef) -> Result<Type, parquet::errors::ParquetError> {
        let b = |t| Type::primitive_type_builder(&c.name, t).with_repetition(Repetition::OPTIONAL);
        match c.column_type {
            ColumnType::String => b(PhysicalType::BYTE_ARRAY)
                .with_logical_type(Some(LogicalType::String))
                .build(),
            ColumnType::Int => b(PhysicalType::INT32).build(),
            ColumnType::BigInt => b(PhysicalType::INT64).build(),
            ColumnType::Double => b(PhysicalType::DOUBLE).build(),
            ColumnType::Boolean => b(PhysicalType::BOOLEAN).build(),
            ColumnType::Date => b(PhysicalType::INT32)
                .with_logical_type(Some(LogicalType::Date))
                .build(),
            ColumnType::Timestamp => b(PhysicalType::INT64)
                .with_logical_type(Some(LogicalType::timestamp(true, TimeUnit::MICROS)))
                .build(),
            ColumnType::Decimal { precision, scale } => {
                let physical = match precision {
                    0..=9 => PhysicalType::INT32,
                    10..=18 => PhysicalType::INT64,
                    _ => PhysicalType::FIXED_LEN_BYTE_ARRAY,
                };
                let mut t = b(physical)
                    .with_logical_type(Some(LogicalType::decimal(
                        i32::from(scale),
                        i32::from(precision),
                    )))
                    .with_precision(i32::from(precision))
                    .with_scale(i32::from(scale));
                if physical == PhysicalType::FIXED_LEN_BYTE_ARRAY {
                    t = t.with_length(decimal_bytes(precision) as i32);
                }
                t.build()
            }
        }
    }

    /// The unscaled value of `d` at `scale`, rounded half away from zero like Databricks'
    /// `CAST(… AS DECIMAL(p,s))`; `None` when it needs more than `precision` digits.
    pub(crate) fn unscaled(d: Decimal, precision: u8, scale: u8) -> Option<i128> {
        let scale = u32::from(scale);
        let d = if d.scale() > scale {
            d.round_dp_with_strategy(scale, RoundingStrategy::MidpointAwayFromZero)
        } else {
            d
        };
        let mut m = d.mantissa();
        for _ in d.scale()..scale {
            m = m.checked_mul(10)?;
        }
        (m.unsigned_abs() < 10u128.pow(u32::from(precision.min(38)))).then_some(m)
    }

    /// Encodes `rows` (aligned with `schema.columns`) as one Parquet file, checking each value
    /// against its column's type and nullability the way the VALUES path does.
    pub(crate) fn encode(
        table: &TableName,
        schema: &TableSchema,
        rows: &[Row],
        compression: BulkCompression,
    ) -> Result<Vec<u8>, crate::Error> {
        sql::check_columns(table, schema)?;
        let name = table.full_name();
        let perr = |e: parquet::errors::ParquetError| crate::Error::Decode {
            what: format!("Parquet file for {name}"),
            message: e.to_string(),
            raw: None,
        };
        for (i, row) in rows.iter().enumerate() {
            if row.len() != schema.columns.len() {
                return Err(SqlError::BadRow {
                    table: name.clone(),
                    row: i,
                    reason: format!(
                        "it has {} values but the schema has {} columns",
                        row.len(),
                        schema.columns.len()
                    ),
                }
                .into());
            }
            for (v, c) in row.iter().zip(&schema.columns) {
                if !sql::fits(v, c.column_type) {
                    return Err(SqlError::BadRow {
                        table: name.clone(),
                        row: i,
                        reason: format!(
                            "column `{}` is {} but the value is {}",
                            c.name,
                            c.column_type,
                            sql::value_kind(v)
                        ),
                    }
                    .into());
                }
                if v.is_null() && !c.nullable {
                    return Err(SqlError::BadRow {
                        table: name.clone(),
                        row: i,
                        reason: format!("column `{}` is NOT NULL but the value is NULL", c.name),
                    }
                    .into());
                }
            }
        }
        let fields = schema
            .columns
            .iter()
            .map(|c| column_type(c).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()
            .map_err(perr)?;
        let root = Arc::new(
            Type::group_type_builder("schema")
                .with_fields(fields)
                .build()
                .map_err(perr)?,
        );
        let props = Arc::new(
            WriterProperties::builder()
                .set_compression(match compression {
                    BulkCompression::Snappy => Compression::SNAPPY,
                    BulkCompression::Uncompressed => Compression::UNCOMPRESSED,
                })
                .set_created_by("ml-connector databricks-client".into())
                .build(),
        );
        let mut buf = Vec::new();
        let mut writer = SerializedFileWriter::new(&mut buf, root, props).map_err(perr)?;
        let mut group = writer.next_row_group().map_err(perr)?;
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
        for (j, c) in schema.columns.iter().enumerate() {
            let mut col = group
                .next_column()
                .map_err(perr)?
                .ok_or_else(|| perr(parquet::errors::ParquetError::General("column".into())))?;
            let defs: Vec<i16> = rows.iter().map(|r| i16::from(!r[j].is_null())).collect();
            let present = || rows.iter().enumerate().filter(|(_, r)| !r[j].is_null());
            match c.column_type {
                ColumnType::String => {
                    let values: Vec<ByteArray> = present()
                        .map(|(_, r)| match &r[j] {
                            Value::String(s) => ByteArray::from(s.as_bytes().to_vec()),
                            _ => unreachable!("checked by fits"),
                        })
                        .collect();
                    col.typed::<ByteArrayType>()
                        .write_batch(&values, Some(&defs), None)
                        .map_err(perr)?;
                }
                ColumnType::Int => {
                    let values: Vec<i32> = present()
                        .map(|(_, r)| match &r[j] {
                            Value::Int(v) => *v,
                            _ => unreachable!("checked by fits"),
                        })
                        .collect();
                    col.typed::<Int32Type>()
                        .write_batch(&values, Some(&defs), None)
                        .map_err(perr)?;
                }
                ColumnType::BigInt => {
                    let values: Vec<i64> = present()
                        .map(|(_, r)| match &r[j] {
                            Value::Int(v) => i64::from(*v),
                            Value::BigInt(v) => *v,
                            _ => unreachable!("checked by fits"),
                        })
                        .collect();
                    col.typed::<Int64Type>()
                        .write_batch(&values, Some(&defs), None)
                        .map_err(perr)?;
                }
                ColumnType::Double => {
                    let values: Vec<f64> = present()
                        .map(|(_, r)| match &r[j] {
                            Value::Double(v) => *v,
                            _ => unreachable!("checked by fits"),
                        })
                        .collect();
                    col.typed::<DoubleType>()
                        .write_batch(&values, Some(&defs), None)
                        .map_err(perr)?;
                }
                ColumnType::Boolean => {
                    let values: Vec<bool> = present()
                        .map(|(_, r)| match &r[j] {
                            Value::Bool(v) => *v,
                            _ => unreachable!("checked by fits"),
                        })
                        .collect();
                    col.typed::<BoolType>()
                        .write_batch(&values, Some(&defs), None)
                        .map_err(perr)?;
                }
                ColumnType::Date => {
                    let values: Vec<i32> = present()
                        .map(|(i, r)| match &r[j] {
                            Value::Date(d) => {
                                i32::try_from((*d - epoch).num_days()).map_err(|_| {
                                    bad_value(&name, i, &c.name, &r[j], "date out of range")
                                })
                            }
                            _ => unreachable!("checked by fits"),
                        })
                        .collect::<Result<_, _>>()?;
                    col.typed::<Int32Type>()
                        .write_batch(&values, Some(&defs), None)
                        .map_err(perr)?;
                }
                ColumnType::Timestamp => {
                    let values: Vec<i64> = present()
                        .map(|(_, r)| match &r[j] {
                            Value::Timestamp(t) => t.timestamp_micros(),
                            _ => unreachable!("checked by fits"),
                        })
                        .collect();
                    col.typed::<Int64Type>()
                        .write_batch(&values, Some(&defs), None)
                        .map_err(perr)?;
                }
                ColumnType::Decimal { precision, scale } => {
                    let values: Vec<i128> = present()
                        .map(|(i, r)| {
                            let d = match &r[j] {
                                Value::Decimal(d) => *d,
                                Value::Int(v) => Decimal::from(*v),
                                Value::BigInt(v) => Decimal::from(*v),
                                _ => unreachable!("checked by fits"),
                            };
                            unscaled(d, precision, scale).ok_or_else(|| {
                                bad_value(
                                    &name,
                                    i,
                                    &c.name,
                                    &r[j],
                                    &format!("does not fit {}", c.column_type),
                                )
                            })
                        })
                        .collect::<Result<_, _>>()?;
                    match precision {
                        0..=9 => {
                            let v: Vec<i32> = values.iter().map(|&m| m as i32).collect();
                            col.typed::<Int32Type>()
                                .write_batch(&v, Some(&defs), None)
                                .map_err(perr)?;
                        }
                        10..=18 => {
                            let v: Vec<i64> = values.iter().map(|&m| m as i64).collect();
                            col.typed::<Int64Type>()
                                .write_batch(&v, Some(&defs), None)
                                .map_err(perr)?;
                        }
                        _ => {
                            let n = decimal_bytes(precision);
                            let v: Vec<FixedLenByteArray> = values
                                .iter()
                                .map(|&m| {
                                    FixedLenByteArray::from(m.to_be_bytes()[16 - n..].to_vec())
                                })
                                .collect();
                            col.typed::<FixedLenByteArrayType>()
                                .write_batch(&v, Some(&defs), None)
                                .map_err(perr)?;
                        }
                    }
                }
            }
            col.close().map_err(perr)?;
        }
        group.close().map_err(perr)?;
        writer.close().map_err(perr)?;
        Ok(buf)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn decimal_widths_and_unscaled_values() {
            assert_eq!(decimal_bytes(19), 9);
            assert_eq!(decimal_bytes(38), 16);
            assert_eq!(decimal_bytes(28), 12);
            assert_eq!(decimal_bytes(9), 4);
            assert_eq!(decimal_bytes(18), 8);
            assert_eq!(decimal_bytes(1), 1);
            let d = |s: &str| s.parse::<Decimal>().unwrap();
            assert_eq!(unscaled(d("12.5"), 18, 2), Some(1250));
            assert_eq!(unscaled(d("-0.01"), 18, 2), Some(-1));
            assert_eq!(unscaled(d("0.005"), 18, 2), Some(1));
            assert_eq!(unscaled(d("-0.005"), 18, 2), Some(-1));
            assert_eq!(
                unscaled(d("12345678901234.56"), 18, 2),
                Some(1234567890123456)
            );
            assert_eq!(unscaled(d("100"), 4, 2), None);
            assert_eq!(unscaled(d("99.99"), 4, 2), Some(9999));
        }
    }
}
