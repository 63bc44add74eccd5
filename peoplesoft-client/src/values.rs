//! PeopleSoft's value and field-name habits, for the sync-core mapping.
//!
//! PeopleSoft Query (QAS) writes values its own way, and [`PeopleSoftFormat`] teaches a
//! [`Mapping`] to read them (give it to [`Mapping::compile_with`]; [`StreamDefinition::mapper`]
//! does):
//! - native datetimes `YYYY-MM-DD-HH.MM.SS[.ffffff]` (0–6 fraction digits), next to the ISO
//!   8601 forms sync-core accepts; a DATE column takes a native datetime's written date;
//! - flags `Y`/`N` (also `y`/`n`), next to `true`/`false` and `1`/`0`;
//! - a single space for "blank": for every type except `STRING`, surrounding ASCII whitespace
//!   is ignored and empty or whitespace-only text is NULL (a `STRING` keeps `" "` unless the
//!   column has the `blank_as_null` transform);
//! - field names with a record-alias prefix (`A.VENDOR_ID`), which a mapping's source
//!   `VENDOR_ID` finds.
//!
//! Everything else (exact decimals that are never rounded, integers, doubles, time zones and
//! the daylight-saving gap/overlap rules) is sync-core's standard conversion
//! ([`sync_core::convert`]).
//!
//! [`FieldMeta`] and [`mapping_from_field_metadata`] derive a [`Mapping`] from QAS field
//! metadata.
//!
//! ```
//! use std::sync::Arc;
//! use serde_json::json;
//! use sync_core::convert::SourceTimeZone;
//! use sync_core::{ColumnType, Mapper, Mapping, Record, Value};
//! use peoplesoft_client::values::{convert, PeopleSoftFormat};
//!
//! let zone = SourceTimeZone::from_name("America/New_York").unwrap();
//! let ts = convert(&json!("2026-01-15-10.30.00.000000"), ColumnType::Timestamp, &zone).unwrap();
//! assert_eq!(ts.to_string(), "2026-01-15T15:30:00.000000Z");
//! assert_eq!(convert(&json!("Y"), ColumnType::Boolean, &zone).unwrap(), Value::Bool(true));
//! assert_eq!(convert(&json!(" "), ColumnType::Date, &zone).unwrap(), Value::Null);
//!
//! let mapping: Mapping = serde_json::from_value(json!({
//!     "table": "vendors", "primary_key": ["vendor_id"],
//!     "columns": [
//!         {"column": "vendor_id", "source": "VENDOR_ID", "type": "STRING", "nullable": false},
//!         {"column": "withhold", "source": "WTHD_SW", "type": "BOOLEAN"}
//!     ]
//! })).unwrap();
//! let mapper = mapping.compile_with(Arc::new(PeopleSoftFormat)).unwrap();
//! let record = Record::try_from(json!({"A.VENDOR_ID": "0000000042", "A.WTHD_SW": "N"})).unwrap();
//! let row = mapper.map(&record).unwrap();
//! assert_eq!(row[1], Value::Bool(false));
//! ```
//!
//! [`StreamDefinition::mapper`]: crate::StreamDefinition::mapper

use chrono::{DateTime, Utc};
use chrono::{NaiveDate, NaiveTime};
use serde::{Deserialize, Serialize};
use sync_core::convert::{convert_str, ConvertError, FieldFormat, ParsedDateTime, SourceTimeZone};
use sync_core::mapping::{ColumnMapping, Mapping};
use sync_core::{ColumnType, Value, WriteMode};

use crate::records::strip_alias;

const DATE_EXPECTED: &str =
    "expected a date YYYY-MM-DD (or a datetime, whose written date is used)";
const DATETIME_EXPECTED: &str = "expected a datetime YYYY-MM-DD-HH.MM.SS[.ffffff], \
     YYYY-MM-DDTHH:MM:SS[.ffffff][Z|+hh:mm|+hhmm], YYYY-MM-DD HH:MM:SS[.ffffff] or a date YYYY-MM-DD";
const NATIVE_EXPECTED: &str = "expected a datetime YYYY-MM-DD-HH.MM.SS[.ffffff]";
const FLAG_EXPECTED: &str = "expected a flag: Y or N, true or false, 1 or 0";

/// PeopleSoft's [`FieldFormat`]: native datetimes, `Y`/`N` flags, single-space blanks and
/// record-alias prefixes, on top of sync-core's standard conversion (see the
/// [module docs](self)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeopleSoftFormat;

impl FieldFormat for PeopleSoftFormat {
    fn convert(
        &self,
        value: &serde_json::Value,
        ty: ColumnType,
        zone: &SourceTimeZone,
    ) -> Result<Value, ConvertError> {
        match value {
            serde_json::Value::String(s) => self.convert_text(s, ty, zone),
            other => sync_core::convert::convert(other, ty, zone).map_err(|e| {
                if ty == ColumnType::Boolean {
                    ConvertError::new(FLAG_EXPECTED)
                } else {
                    e
                }
            }),
        }
    }

    fn convert_text(
        &self,
        text: &str,
        ty: ColumnType,
        zone: &SourceTimeZone,
    ) -> Result<Value, ConvertError> {
        if ty == ColumnType::String {
            return Ok(Value::String(text.to_owned()));
        }
        let t = text.trim_ascii();
        if t.is_empty() {
            return Ok(Value::Null);
        }
        match ty {
            ColumnType::Boolean => match t {
                "Y" | "y" => Ok(Value::Bool(true)),
                "N" | "n" => Ok(Value::Bool(false)),
                _ => convert_str(t, ty, zone).map_err(|_| ConvertError::new(FLAG_EXPECTED)),
            },
            ColumnType::Timestamp => parse_timestamp(t, zone).map(Value::Timestamp),
            ColumnType::Date if is_native(t.as_bytes()) => parse_native(t.as_bytes())
                .map(|p| Value::Date(p.local.date()))
                .map_err(|_| ConvertError::new(DATE_EXPECTED)),
            _ => convert_str(t, ty, zone),
        }
    }

    fn field_name<'k>(&self, key: &'k str) -> &'k str {
        strip_alias(key)
    }
}

/// Converts a JSON value from PeopleSoft to a value of type `ty`: [`PeopleSoftFormat`]'s
/// conversion, as a function.
pub fn convert(
    v: &serde_json::Value,
    ty: ColumnType,
    zone: &SourceTimeZone,
) -> Result<Value, ConvertError> {
    PeopleSoftFormat.convert(v, ty, zone)
}

/// Parses a PeopleSoft native datetime `YYYY-MM-DD-HH.MM.SS[.ffffff]` or any form
/// [`sync_core::convert::parse_datetime`] accepts, without applying a zone.
///
/// ```
/// use peoplesoft_client::values::parse_datetime;
/// let p = parse_datetime("2002-12-10-16.28.52.000001").unwrap();
/// assert_eq!(p.local.to_string(), "2002-12-10 16:28:52.000001");
/// assert!(p.offset.is_none());
/// let p = parse_datetime("2002-12-10T16:28:52-0500").unwrap();
/// assert_eq!(p.offset.unwrap().local_minus_utc(), -5 * 3600);
/// ```
pub fn parse_datetime(s: &str) -> Result<ParsedDateTime, ConvertError> {
    let b = s.as_bytes();
    if is_native(b) {
        return parse_native(b);
    }
    sync_core::convert::parse_datetime(s).map_err(|e| {
        // A text that is not shaped like any accepted form gets the full list of forms.
        if date_prefix(b) == Err(false) || (b.len() > 10 && !matches!(b[10], b'T' | b't' | b' ')) {
            ConvertError::new(DATETIME_EXPECTED)
        } else {
            e
        }
    })
}

/// Parses a datetime ([`parse_datetime`]) into a UTC instant; zone-less values are wall-clock
/// times in `zone`, with sync-core's daylight-saving rules (a gap shifts forward, an overlap
/// takes the earlier instant).
///
/// ```
/// use peoplesoft_client::values::parse_timestamp;
/// use sync_core::convert::SourceTimeZone;
/// let chicago = SourceTimeZone::from_name("America/Chicago").unwrap();
/// let t = parse_timestamp("2026-07-01-08.00.00.000000", &chicago).unwrap();
/// assert_eq!(t.to_rfc3339(), "2026-07-01T13:00:00+00:00");
/// ```
pub fn parse_timestamp(s: &str, zone: &SourceTimeZone) -> Result<DateTime<Utc>, ConvertError> {
    parse_datetime(s).map(|p| p.to_utc(zone))
}

/// True when `b` starts like a native datetime (`YYYY-MM-DD-`).
fn is_native(b: &[u8]) -> bool {
    b.len() > 10 && b[10] == b'-'
}

#[inline]
fn digit(b: u8) -> Option<u32> {
    let d = b.wrapping_sub(b'0');
    (d < 10).then_some(d as u32)
}

#[inline]
fn two_digits(b: &[u8], at: usize) -> Option<u32> {
    Some(digit(*b.get(at)?)? * 10 + digit(*b.get(at + 1)?)?)
}

/// Parses `YYYY-MM-DD` at the start of `b`; `Err(true)` when the shape is right but the date
/// does not exist.
fn date_prefix(b: &[u8]) -> Result<NaiveDate, bool> {
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(false);
    }
    let year = (|| Some(two_digits(b, 0)? * 100 + two_digits(b, 2)?))().ok_or(false)?;
    let month = two_digits(b, 5).ok_or(false)?;
    let day = two_digits(b, 8).ok_or(false)?;
    NaiveDate::from_ymd_opt(year as i32, month, day).ok_or(true)
}

/// `YYYY-MM-DD-HH.MM.SS[.ffffff]`, the whole of `b` (a trailing `.` alone is accepted, as
/// PeopleSoft sometimes writes it).
fn parse_native(b: &[u8]) -> Result<ParsedDateTime, ConvertError> {
    let bad = || ConvertError::new(NATIVE_EXPECTED);
    let date = match date_prefix(b) {
        Ok(d) => d,
        Err(true) => return Err(ConvertError::new("not a valid calendar date")),
        Err(false) => return Err(bad()),
    };
    if b.len() < 19 || b[10] != b'-' || b[13] != b'.' || b[16] != b'.' {
        return Err(bad());
    }
    let hour = two_digits(b, 11).ok_or_else(bad)?;
    let minute = two_digits(b, 14).ok_or_else(bad)?;
    let second = two_digits(b, 17).ok_or_else(bad)?;
    let mut i = 19;
    let mut nanos = 0u32;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && i - start < 6 {
            match digit(b[i]) {
                Some(d) => {
                    nanos = nanos * 10 + d;
                    i += 1;
                }
                None => break,
            }
        }
        if i < b.len() && digit(b[i]).is_some() {
            return Err(ConvertError::new(
                "more than 6 fraction digits (expected YYYY-MM-DD-HH.MM.SS[.ffffff])",
            ));
        }
        nanos *= 10u32.pow((9 - (i - start)) as u32);
    }
    if i != b.len() {
        return Err(bad());
    }
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)
        .filter(|_| second < 60)
        .ok_or_else(|| {
            ConvertError::new("not a valid time of day (hours 00-23, minutes and seconds 00-59)")
        })?;
    Ok(ParsedDateTime {
        local: date.and_time(time),
        offset: None,
    })
}

/// A QAS field type [`mapping_from_field_metadata`] cannot map.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}` has type `{field_type}`, which cannot be mapped (expected Character, Long Character, Number, Signed Number, Date, Time or Datetime)")]
pub struct UnsupportedFieldType {
    /// The field.
    pub field: String,
    /// Its type.
    pub field_type: String,
}

/// Metadata of one source field, as PeopleSoft describes it (QAS `FieldProperties`,
/// `QueryPrompts` or a query's field list): the input of [`mapping_from_field_metadata`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldMeta {
    /// Field name, possibly with a record-alias prefix (`A.VOUCHER_ID`).
    pub name: String,
    /// PeopleSoft field type: `Character`, `Long Character`, `Number`, `Signed Number`,
    /// `Date`, `Time` or `Datetime` (ASCII case-insensitive).
    pub field_type: String,
    /// Field length (for numbers, the total number of digits).
    #[serde(default)]
    pub length: u32,
    /// Decimal positions (numbers only).
    #[serde(default)]
    pub decimals: u32,
}

/// Derives a mapping from PeopleSoft field metadata: one nullable column per field, named in
/// snake_case after the record-alias prefix is stripped (`A.VOUCHER_ID` → `voucher_id`), with
/// the source set to the field name as given. Compile it with [`PeopleSoftFormat`].
///
/// Types: `Character`, `Long Character` and `Time` → `STRING` (Databricks has no time-of-day
/// type); `Number`/`Signed Number` with decimals → `DECIMAL(length, decimals)` (precision
/// capped at 38); without decimals → `INT` up to 9 digits, `BIGINT` up to 18, else
/// `DECIMAL(length, 0)`; `Date` → `DATE`; `Datetime` → `TIMESTAMP`. Other types (`Image`,
/// `File`, ...) are an error naming the field; leave such fields out.
///
/// When two fields have the same name under different aliases (`A.SETID`, `B.SETID`), the
/// first keeps the plain name and later ones get their alias as a prefix (`b_setid`). The
/// primary key, cursor column, time zone and transforms are left for the caller to set.
///
/// ```
/// use peoplesoft_client::values::{mapping_from_field_metadata, FieldMeta};
/// use sync_core::ColumnType;
///
/// let meta = |name: &str, t: &str, length, decimals| FieldMeta {
///     name: name.into(), field_type: t.into(), length, decimals,
/// };
/// let m = mapping_from_field_metadata("vouchers", &[
///     meta("A.VOUCHER_ID", "Character", 8, 0),
///     meta("A.GROSS_AMT", "Signed Number", 26, 3),
///     meta("A.INVOICE_DT", "Date", 10, 0),
/// ]).unwrap();
/// assert_eq!(m.columns[1].column, "gross_amt");
/// assert_eq!(m.columns[1].column_type, ColumnType::Decimal { precision: 26, scale: 3 });
/// ```
pub fn mapping_from_field_metadata(
    table: impl Into<String>,
    fields: &[FieldMeta],
) -> Result<Mapping, UnsupportedFieldType> {
    let mut columns: Vec<ColumnMapping> = Vec::with_capacity(fields.len());
    for f in fields {
        let column_type = field_column_type(f)?;
        let name = f.name.trim();
        let bare = strip_alias(name);
        let alias = (bare.len() < name.len()).then(|| &name[..name.len() - bare.len() - 1]);
        let mut column = snake_case(bare);
        let taken = |name: &str, cols: &[ColumnMapping]| {
            cols.iter().any(|c| c.column.eq_ignore_ascii_case(name))
        };
        if taken(&column, &columns) {
            if let Some(alias) = alias {
                column = format!("{}_{column}", snake_case(alias));
            }
            let base = column.clone();
            let mut n = 2;
            while taken(&column, &columns) {
                column = format!("{base}_{n}");
                n += 1;
            }
        }
        columns.push(ColumnMapping {
            column,
            source: name.to_string(),
            column_type,
            nullable: true,
            transforms: Vec::new(),
        });
    }
    Ok(Mapping {
        table: table.into(),
        columns,
        primary_key: Vec::new(),
        cursor_column: None,
        write_mode: WriteMode::Upsert,
        source_time_zone: None,
        effective_dating: None,
    })
}

fn field_column_type(f: &FieldMeta) -> Result<ColumnType, UnsupportedFieldType> {
    let t = f.field_type.trim();
    let is = |name: &str| t.eq_ignore_ascii_case(name);
    Ok(if is("Character") || is("Long Character") || is("Time") {
        ColumnType::String
    } else if is("Number") || is("Signed Number") {
        let decimals = f.decimals.min(38);
        let precision = f.length.max(decimals).clamp(1, 38);
        if decimals > 0 {
            ColumnType::Decimal {
                precision: precision as u8,
                scale: decimals as u8,
            }
        } else if f.length <= 9 {
            ColumnType::Int
        } else if f.length <= 18 {
            ColumnType::BigInt
        } else {
            ColumnType::Decimal {
                precision: precision as u8,
                scale: 0,
            }
        }
    } else if is("Date") {
        ColumnType::Date
    } else if is("Datetime") {
        ColumnType::Timestamp
    } else {
        return Err(UnsupportedFieldType {
            field: f.name.clone(),
            field_type: f.field_type.clone(),
        });
    })
}

fn snake_case(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;
    use sync_core::Mapper;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn ts(s: &str, zone: &str) -> DateTime<Utc> {
        let zone = SourceTimeZone::from_name(zone).unwrap();
        parse_timestamp(s, &zone).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn every_peoplesoft_datetime_form_parses_to_the_same_instant() {
        let want = utc("2002-12-10T16:28:52.123456Z");
        for s in [
            "2002-12-10-16.28.52.123456",
            "2002-12-10T16:28:52.123456",
            "2002-12-10 16:28:52.123456",
            "2002-12-10T16:28:52.123456Z",
            "2002-12-10T16:28:52.123456z",
            "2002-12-10T16:28:52.123456000",
            "2002-12-10T16:28:52,123456",
            "2002-12-10T17:28:52.123456+01:00",
            "2002-12-10T17:28:52.123456+0100",
            "2002-12-10T17:28:52.123456+01",
            "2002-12-10T11:28:52.123456-05:00",
            "2002-12-10 11:28:52.123456-0500",
        ] {
            assert_eq!(ts(s, "UTC"), want, "{s}");
        }
        let whole = utc("2002-12-10T16:28:52Z");
        for s in [
            "2002-12-10-16.28.52",
            "2002-12-10-16.28.52.",
            "2002-12-10-16.28.52.000000",
            "2002-12-10-16.28.52.0",
            "2002-12-10T16:28:52",
            "2002-12-10 16:28:52",
        ] {
            assert_eq!(ts(s, "UTC"), whole, "{s}");
        }
        assert_eq!(
            ts("2002-12-10-16.28.52.5", "UTC"),
            utc("2002-12-10T16:28:52.5Z")
        );
        assert_eq!(ts("2002-12-10", "UTC"), utc("2002-12-10T00:00:00Z"));
        assert_eq!(
            ts("2002-12-10", "America/New_York"),
            utc("2002-12-10T05:00:00Z")
        );
    }

    #[test]
    fn malformed_datetimes_are_rejected_with_the_expected_format() {
        for s in [
            "",
            "2002-12-10-16.28",
            "2002-12-10-16:28:52",
            "2002-12-10T16.28.52",
            "2002-12-10-16.28.52.1234567",
            "2002-12-10T16:28:52.",
            "2002-12-10T16:28:52.123456789",
            "2002-12-10T16:28:52+25:00",
            "2002-12-10T16:28:52 +01:00",
            "2002-12-10-16.28.52Z",
            "2002-12-10T24:00:00",
            "2002-12-10T23:59:60",
            "2002-13-10T00:00:00",
            "2002-02-30",
            "10/12/2002",
            "2002-12-10x",
        ] {
            let err = parse_timestamp(s, &SourceTimeZone::utc()).unwrap_err();
            assert!(!err.reason().is_empty(), "{s}");
        }
        let err = parse_timestamp("2002/12/10", &SourceTimeZone::utc()).unwrap_err();
        assert!(err.reason().contains("YYYY-MM-DD-HH.MM.SS"), "{err}");
    }

    #[test]
    fn zone_less_values_are_wall_clock_in_the_source_zone() {
        assert_eq!(
            ts("2026-01-15-10.00.00", "America/New_York"),
            utc("2026-01-15T15:00:00Z")
        );
        assert_eq!(
            ts("2026-07-15-10.00.00", "America/New_York"),
            utc("2026-07-15T14:00:00Z")
        );
        assert_eq!(
            ts("2026-07-15T10:00:00Z", "America/New_York"),
            utc("2026-07-15T10:00:00Z")
        );
        assert_eq!(
            ts("2026-07-15T10:00:00+02:00", "America/New_York"),
            utc("2026-07-15T08:00:00Z")
        );
    }

    #[test]
    fn dst_gap_shifts_forward_and_overlap_takes_the_earlier_instant() {
        // New York 2026: 03-08 02:00 EST -> 03:00 EDT; 11-01 02:00 EDT -> 01:00 EST.
        assert_eq!(
            ts("2026-03-08-02.30.00", "America/New_York"),
            utc("2026-03-08T07:30:00Z")
        );
        assert_eq!(
            ts("2026-03-08-03.30.00", "America/New_York"),
            utc("2026-03-08T07:30:00Z")
        );
        assert_eq!(
            ts("2026-03-08-01.59.59", "America/New_York"),
            utc("2026-03-08T06:59:59Z")
        );
        assert_eq!(
            ts("2026-11-01-01.30.00", "America/New_York"),
            utc("2026-11-01T05:30:00Z")
        );
        assert_eq!(
            ts("2026-11-01-02.00.00", "America/New_York"),
            utc("2026-11-01T07:00:00Z")
        );
        assert_eq!(
            ts("2026-11-01-00.59.59", "America/New_York"),
            utc("2026-11-01T04:59:59Z")
        );
        // Berlin 2026: 03-29 02:00 CET -> 03:00 CEST; 10-25 03:00 CEST -> 02:00 CET.
        assert_eq!(
            ts("2026-03-29-02.30.00", "Europe/Berlin"),
            utc("2026-03-29T01:30:00Z")
        );
        assert_eq!(
            ts("2026-03-29-02.00.00", "Europe/Berlin"),
            utc("2026-03-29T01:00:00Z")
        );
        assert_eq!(
            ts("2026-10-25-02.30.00", "Europe/Berlin"),
            utc("2026-10-25T00:30:00Z")
        );
        assert_eq!(
            ts("2026-10-25-03.00.00", "Europe/Berlin"),
            utc("2026-10-25T02:00:00Z")
        );
    }

    #[test]
    fn dst_rules_hold_when_the_day_is_already_cached() {
        let zone = SourceTimeZone::from_name("America/New_York").unwrap();
        for _ in 0..3 {
            let t = |s| parse_timestamp(s, &zone).unwrap();
            assert_eq!(t("2026-03-08-02.30.00"), utc("2026-03-08T07:30:00Z"));
            assert_eq!(t("2026-03-08-12.00.00"), utc("2026-03-08T16:00:00Z"));
            assert_eq!(t("2026-11-01-01.30.00"), utc("2026-11-01T05:30:00Z"));
            assert_eq!(t("2026-11-01-12.00.00"), utc("2026-11-01T17:00:00Z"));
            assert_eq!(t("2026-11-02-01.30.00"), utc("2026-11-02T06:30:00Z"));
        }
    }

    #[test]
    fn dates_accept_datetimes_and_take_the_written_date() {
        let z = SourceTimeZone::from_name("America/New_York").unwrap();
        let d = |s: &str| convert(&json!(s), ColumnType::Date, &z);
        let want = Value::Date(NaiveDate::from_ymd_opt(2024, 1, 15).unwrap());
        for s in [
            "2024-01-15",
            " 2024-01-15 ",
            "2024-01-15T00:00:00",
            "2024-01-15T23:30:00-05:00",
            "2024-01-15-23.59.59.999999",
        ] {
            assert_eq!(d(s).unwrap(), want, "{s}");
        }
        assert!(d("2024-02-30").unwrap_err().reason().contains("calendar"));
        assert!(d("15.01.2024").unwrap_err().reason().contains("YYYY-MM-DD"));
        assert_eq!(d(" ").unwrap(), Value::Null);
    }

    /// Numbers are sync-core's standard conversion (exactness, precision, scale and range are
    /// tested there); the PeopleSoft format adds only its blank, a single space, as NULL.
    #[test]
    fn numbers_are_the_standard_conversion_plus_the_single_space_blank() {
        let z = SourceTimeZone::utc();
        let dec = ColumnType::Decimal {
            precision: 18,
            scale: 2,
        };
        for (value, ty) in [
            (json!("1234.5"), dec),
            (json!("12345678901234.56"), dec),
            (json!(0.1), dec),
            (json!("-42"), ColumnType::Int),
            (json!("9223372036854775807"), ColumnType::BigInt),
        ] {
            assert_eq!(
                convert(&value, ty, &z).unwrap(),
                sync_core::convert::convert(&value, ty, &z).unwrap(),
                "{value}"
            );
        }
        for (value, ty) in [
            (json!("1.005"), dec),
            (json!("12345678901234567.5"), dec),
            (json!("1.5"), ColumnType::Int),
            (json!("2147483648"), ColumnType::Int),
        ] {
            let ours = convert(&value, ty, &z).unwrap_err().reason().to_string();
            let standard = sync_core::convert::convert(&value, ty, &z)
                .unwrap_err()
                .reason()
                .to_string();
            assert_eq!(ours, standard, "{value}");
        }
        for ty in [dec, ColumnType::Int, ColumnType::BigInt] {
            assert_eq!(convert(&json!(" "), ty, &z).unwrap(), Value::Null);
            assert!(sync_core::convert::convert(&json!(" "), ty, &z).is_err());
        }
    }

    #[test]
    fn flags_doubles_and_strings() {
        let z = SourceTimeZone::utc();
        let b = |v: serde_json::Value| convert(&v, ColumnType::Boolean, &z);
        for (v, want) in [
            (json!("Y"), true),
            (json!("y"), true),
            (json!("N"), false),
            (json!("n"), false),
            (json!("true"), true),
            (json!("FALSE"), false),
            (json!("1"), true),
            (json!("0"), false),
            (json!(1), true),
            (json!(0), false),
            (json!(true), true),
            (json!(false), false),
        ] {
            assert_eq!(b(v.clone()).unwrap(), Value::Bool(want), "{v}");
        }
        for bad in [json!("X"), json!("yes"), json!(2), json!(0.5)] {
            assert!(
                b(bad.clone()).unwrap_err().reason().contains("Y or N"),
                "{bad}"
            );
        }
        assert_eq!(b(json!(" ")).unwrap(), Value::Null);
        assert_eq!(b(json!(null)).unwrap(), Value::Null);

        let d = |v: serde_json::Value| convert(&v, ColumnType::Double, &z);
        assert_eq!(d(json!(1.5)).unwrap(), Value::Double(1.5));
        assert_eq!(d(json!("-2.5E3")).unwrap(), Value::Double(-2500.0));
        assert!(d(json!("inf")).is_err());
        assert!(d(json!("NaN")).is_err());
        assert!(d(json!("1,5")).is_err());

        let s = |v: serde_json::Value| convert(&v, ColumnType::String, &z);
        assert_eq!(s(json!(" ")).unwrap(), Value::String(" ".into()));
        assert_eq!(s(json!(12.5)).unwrap(), Value::String("12.5".into()));
        assert_eq!(s(json!(7)).unwrap(), Value::String("7".into()));
        assert_eq!(s(json!(true)).unwrap(), Value::String("true".into()));
        assert!(s(json!({"a": 1})).unwrap_err().reason().contains("object"));
    }

    #[test]
    fn the_standard_format_rejects_what_only_peoplesoft_writes() {
        // The forms this module adds are not sync-core's: without PeopleSoftFormat they fail.
        let z = SourceTimeZone::utc();
        for (v, ty) in [
            (json!("2002-12-10-16.28.52.000000"), ColumnType::Timestamp),
            (json!("Y"), ColumnType::Boolean),
            (
                json!(" "),
                ColumnType::Decimal {
                    precision: 5,
                    scale: 2,
                },
            ),
        ] {
            assert!(sync_core::convert::convert(&v, ty, &z).is_err(), "{v}");
            assert!(convert(&v, ty, &z).is_ok(), "{v}");
        }
    }

    #[test]
    fn alias_prefixed_keys_are_found_by_their_bare_name() {
        let m: Mapping = serde_json::from_value(json!({
            "table": "t",
            "columns": [
                {"column": "setid", "source": "SETID", "type": "STRING"},
                {"column": "b_setid", "source": "B.SETID", "type": "STRING"},
                {"column": "vendor_id", "source": "vendor_id", "type": "STRING"}
            ]
        }))
        .unwrap();
        let mapper = m.compile_with(Arc::new(PeopleSoftFormat)).unwrap();
        let rec = json!({"A.SETID": "SHARE", "A.VENDOR_ID": "V1"});
        let row = mapper
            .map(&rec.as_object().unwrap().clone().into())
            .unwrap();
        assert_eq!(row[0], Value::String("SHARE".into()));
        assert_eq!(row[2], Value::String("V1".into()));
        // With two aliases the bare name is ambiguous (for a mapper that has not resolved
        // the field yet); the aliased source is not.
        let mapper = m.compile_with(Arc::new(PeopleSoftFormat)).unwrap();
        let rec = json!({"A.SETID": "SHARE", "B.SETID": "US001"});
        let errs = mapper
            .map(&rec.as_object().unwrap().clone().into())
            .unwrap_err();
        assert_eq!(errs.len(), 1);
        assert!(errs[0].reason.contains("`A.SETID`") && errs[0].reason.contains("`B.SETID`"));
    }

    #[test]
    fn field_metadata_becomes_typed_snake_case_columns() {
        let meta = |name: &str, t: &str, length, decimals| FieldMeta {
            name: name.into(),
            field_type: t.into(),
            length,
            decimals,
        };
        let m = mapping_from_field_metadata(
            "vendors",
            &[
                meta("A.SETID", "Character", 5, 0),
                meta("A.VENDOR_ID", "Character", 10, 0),
                meta("B.SETID", "Character", 5, 0),
                meta("A.DESCR254", "Long Character", 254, 0),
                meta("A.VNDR_CNT", "Number", 5, 0),
                meta("A.PROCESS_INSTANCE", "Number", 10, 0),
                meta("A.BIG", "Number", 31, 0),
                meta("A.GROSS_AMT", "Signed Number", 26, 3),
                meta("A.RATE", "Number", 50, 8),
                meta("A.LAST_ACTIVITY_DT", "Date", 10, 0),
                meta("A.LASTUPDDTTM", "DateTime", 26, 0),
                meta("A.START_TM", "Time", 15, 0),
                meta("ADDR#", "Character", 5, 0),
            ],
        )
        .unwrap();
        let got: Vec<(String, String, String)> = m
            .columns
            .iter()
            .map(|c| {
                (
                    c.column.clone(),
                    c.source.clone(),
                    c.column_type.to_string(),
                )
            })
            .collect();
        let want = [
            ("setid", "A.SETID", "STRING"),
            ("vendor_id", "A.VENDOR_ID", "STRING"),
            ("b_setid", "B.SETID", "STRING"),
            ("descr254", "A.DESCR254", "STRING"),
            ("vndr_cnt", "A.VNDR_CNT", "INT"),
            ("process_instance", "A.PROCESS_INSTANCE", "BIGINT"),
            ("big", "A.BIG", "DECIMAL(31,0)"),
            ("gross_amt", "A.GROSS_AMT", "DECIMAL(26,3)"),
            ("rate", "A.RATE", "DECIMAL(38,8)"),
            ("last_activity_dt", "A.LAST_ACTIVITY_DT", "DATE"),
            ("lastupddttm", "A.LASTUPDDTTM", "TIMESTAMP"),
            ("start_tm", "A.START_TM", "STRING"),
            ("addr_", "ADDR#", "STRING"),
        ];
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert_eq!((g.0.as_str(), g.1.as_str(), g.2.as_str()), w);
        }
        m.compile_with(Arc::new(PeopleSoftFormat)).unwrap();

        let err = mapping_from_field_metadata("t", &[meta("A.PHOTO", "Image", 0, 0)]).unwrap_err();
        assert!(
            err.to_string().contains("field `A.PHOTO` has type `Image`"),
            "{err}"
        );
    }
}
