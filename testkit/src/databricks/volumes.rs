//! Unity Catalog volumes of the stand-in: the files stored through the Files API, the Parquet
//! reader behind `read_files(…)` and `COPY INTO`, and the volume path rules.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use parquet::basic::{LogicalType, Type as PhysicalType};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use rust_decimal::Decimal;

use super::engine::{ColumnSpec, SqlFailure};
use super::value::{SqlType, StandInValue};

/// A stored file.
#[derive(Debug, Clone)]
pub(crate) struct StoredFile {
    pub(crate) data: Vec<u8>,
    pub(crate) modified_ms: i64,
}

/// One volume: files by path relative to the volume root (no leading `/`), and directories
/// created explicitly.
#[derive(Debug, Clone, Default)]
pub(crate) struct Volume {
    pub(crate) files: BTreeMap<String, StoredFile>,
    pub(crate) dirs: BTreeSet<String>,
}

impl Volume {
    /// True when `rel` (no leading or trailing `/`; empty for the root) is a directory.
    pub(crate) fn is_dir(&self, rel: &str) -> bool {
        if rel.is_empty() || self.dirs.contains(rel) {
            return true;
        }
        let prefix = format!("{rel}/");
        self.files.keys().any(|k| k.starts_with(&prefix))
            || self.dirs.iter().any(|d| d.starts_with(&prefix))
    }

    /// The direct children of directory `rel`: `(name, Some(size))` for files, `(name, None)`
    /// for directories, sorted by name.
    pub(crate) fn children(&self, rel: &str) -> Vec<(String, Option<(u64, i64)>)> {
        let prefix = if rel.is_empty() {
            String::new()
        } else {
            format!("{rel}/")
        };
        let mut out: BTreeMap<String, Option<(u64, i64)>> = BTreeMap::new();
        for (k, f) in &self.files {
            if let Some(rest) = k.strip_prefix(&prefix) {
                match rest.split_once('/') {
                    Some((dir, _)) => {
                        out.entry(dir.to_string()).or_insert(None);
                    }
                    None => {
                        out.insert(rest.to_string(), Some((f.data.len() as u64, f.modified_ms)));
                    }
                }
            }
        }
        for d in &self.dirs {
            if let Some(rest) = d.strip_prefix(&prefix) {
                let first = rest.split('/').next().unwrap_or(rest);
                if !first.is_empty() {
                    out.entry(first.to_string()).or_insert(None);
                }
            }
        }
        out.into_iter().collect()
    }
}

/// `(catalog, schema, volume, relative path)` of an absolute `/Volumes/c/s/v/…` path, names
/// lower-cased like Unity Catalog stores them; the relative path has no leading or trailing
/// `/`.
pub(crate) fn split_volume_path(path: &str) -> Option<(String, String, String, String)> {
    let rest = path.strip_prefix("/Volumes/")?;
    let mut parts = rest.splitn(4, '/');
    let c = parts.next().filter(|s| !s.is_empty())?.to_ascii_lowercase();
    let s = parts.next().filter(|s| !s.is_empty())?.to_ascii_lowercase();
    let v = parts.next().filter(|s| !s.is_empty())?.to_ascii_lowercase();
    let rel = parts.next().unwrap_or("").trim_matches('/').to_string();
    Some((c, s, v, rel))
}

/// The columns of a Parquet file as SQL types: `DECIMAL(p,s)` from the decimal logical type,
/// `DATE` from INT32 dates, `TIMESTAMP` from UTC-adjusted timestamps (`TIMESTAMP_NTZ`
/// otherwise), `STRING` from UTF-8 byte arrays.
pub fn parquet_columns(data: &[u8]) -> Result<Vec<ColumnSpec>, SqlFailure> {
    let reader = open(data)?;
    columns_of(&reader)
}

fn open(data: &[u8]) -> Result<SerializedFileReader<bytes::Bytes>, SqlFailure> {
    SerializedFileReader::new(bytes::Bytes::copy_from_slice(data)).map_err(|e| {
        SqlFailure::new(
            "CANNOT_READ_FILE_FOOTER",
            "KD001",
            format!("Could not read footer for file: {e}"),
        )
    })
}

fn columns_of(reader: &SerializedFileReader<bytes::Bytes>) -> Result<Vec<ColumnSpec>, SqlFailure> {
    let descr = reader.metadata().file_metadata().schema_descr();
    descr
        .columns()
        .iter()
        .map(|c| {
            let logical = c.logical_type_ref();
            let t = match (c.physical_type(), logical) {
                (_, Some(LogicalType::Decimal(d))) => SqlType::Decimal {
                    precision: d.precision as u8,
                    scale: d.scale as u8,
                },
                (PhysicalType::INT32, Some(LogicalType::Date)) => SqlType::Date,
                (PhysicalType::INT64, Some(LogicalType::Timestamp(t))) => {
                    if t.is_adjusted_to_u_t_c {
                        SqlType::Timestamp
                    } else {
                        SqlType::TimestampNtz
                    }
                }
                (PhysicalType::INT32, _) => SqlType::Int,
                (PhysicalType::INT64, _) => SqlType::BigInt,
                (PhysicalType::DOUBLE | PhysicalType::FLOAT, _) => SqlType::Double,
                (PhysicalType::BOOLEAN, _) => SqlType::Boolean,
                (PhysicalType::BYTE_ARRAY, _) => SqlType::String,
                (p, l) => {
                    return Err(SqlFailure::new(
                        "PARQUET_TYPE_ILLEGAL",
                        "42846",
                        format!("Illegal Parquet type for column {}: {p:?} {l:?}", c.name()),
                    ))
                }
            };
            Ok(ColumnSpec {
                name: c.name().to_string(),
                sql_type: t,
                nullable: c.self_type().is_optional(),
            })
        })
        .collect()
}

/// Reads a whole Parquet file into typed rows.
pub(crate) fn read_parquet(
    data: &[u8],
) -> Result<(Vec<ColumnSpec>, Vec<Vec<StandInValue>>), SqlFailure> {
    let reader = open(data)?;
    let columns = columns_of(&reader)?;
    let bad = |m: String| SqlFailure::new("FAILED_READ_FILE", "KD001", m);
    let iter = reader
        .get_row_iter(None)
        .map_err(|e| bad(format!("Error while reading file: {e}")))?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid");
    let mut rows = Vec::new();
    for row in iter {
        let row = row.map_err(|e| bad(format!("Error while reading file: {e}")))?;
        let mut out = Vec::with_capacity(columns.len());
        for ((_, field), spec) in row.get_column_iter().zip(&columns) {
            let v = match (field, spec.sql_type) {
                (Field::Null, _) => StandInValue::Null,
                (Field::Bool(b), _) => StandInValue::Boolean(*b),
                (Field::Byte(v), _) => StandInValue::Int(i32::from(*v)),
                (Field::Short(v), _) => StandInValue::Int(i32::from(*v)),
                (Field::Int(v), _) => StandInValue::Int(*v),
                (Field::Long(v), _) => StandInValue::BigInt(*v),
                (Field::Float(v), _) => StandInValue::Double(f64::from(*v)),
                (Field::Double(v), _) => StandInValue::Double(*v),
                (Field::Str(s), _) => StandInValue::String(s.clone()),
                (Field::Date(d), _) => {
                    StandInValue::Date(epoch + chrono::Duration::days(i64::from(*d)))
                }
                (Field::TimestampMicros(us), t) => {
                    let ts = DateTime::<Utc>::from_timestamp_micros(*us)
                        .ok_or_else(|| bad(format!("timestamp {us} out of range")))?;
                    if t == SqlType::TimestampNtz {
                        StandInValue::TimestampNtz(ts.naive_utc())
                    } else {
                        StandInValue::Timestamp(ts)
                    }
                }
                (Field::TimestampMillis(ms), _) => StandInValue::Timestamp(
                    DateTime::<Utc>::from_timestamp_millis(*ms)
                        .ok_or_else(|| bad(format!("timestamp {ms} out of range")))?,
                ),
                (Field::Decimal(d), _) => {
                    let data = d.data();
                    if data.is_empty() || data.len() > 16 {
                        return Err(bad(format!("decimal of {} bytes", data.len())));
                    }
                    let fill = if data[0] & 0x80 != 0 { 0xff } else { 0 };
                    let mut be = [fill; 16];
                    be[16 - data.len()..].copy_from_slice(data);
                    let unscaled = i128::from_be_bytes(be);
                    StandInValue::Decimal(
                        Decimal::try_from_i128_with_scale(unscaled, d.scale() as u32)
                            .map_err(|e| bad(format!("decimal {unscaled}e-{}: {e}", d.scale())))?,
                    )
                }
                (other, _) => {
                    return Err(bad(format!(
                        "the stand-in cannot read the Parquet value {other:?}"
                    )))
                }
            };
            out.push(v);
        }
        rows.push(out);
    }
    Ok((columns, rows))
}
