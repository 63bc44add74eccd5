//! Typed values, column types and rows: what a [`Mapper`](crate::Mapper) produces and a
//! [`Sink`](crate::Sink) writes.
//!
//! Money is [`rust_decimal::Decimal`], never `f64`. Timestamps are UTC.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub use crate::record::Record;

/// One typed row, aligned with [`TableSchema::columns`](crate::TableSchema::columns).
pub type Row = Vec<Value>;

/// A typed value of one of the supported [`ColumnType`]s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Value {
    /// SQL NULL.
    Null,
    /// `STRING`.
    String(String),
    /// `INT` (32-bit).
    Int(i32),
    /// `BIGINT` (64-bit).
    BigInt(i64),
    /// `DECIMAL(p,s)`: exact, never rounded through binary floating point.
    Decimal(Decimal),
    /// `DOUBLE`: only for values that really are measurements, never money.
    Double(f64),
    /// `BOOLEAN`.
    Bool(bool),
    /// `DATE`.
    Date(NaiveDate),
    /// `TIMESTAMP`, always UTC.
    Timestamp(DateTime<Utc>),
}

impl Value {
    /// True for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value as a cursor position, when it can be one (timestamps, and dates at midnight UTC).
    pub fn as_cursor(&self) -> Option<DateTime<Utc>> {
        match self {
            Value::Timestamp(t) => Some(*t),
            Value::Date(d) => Some(d.and_hms_opt(0, 0, 0)?.and_utc()),
            _ => None,
        }
    }

    /// Writes a canonical, type-tagged text form used for row hashing and comparisons.
    ///
    /// Two values are equal exactly when their canonical forms are equal (decimals are
    /// normalised, so `1.50` and `1.5` hash alike).
    pub fn write_canonical(&self, out: &mut String) {
        use std::fmt::Write as _;
        // The frequent key types are written without the formatting machinery.
        match self {
            Value::Null => out.push_str("N;"),
            Value::String(s) => {
                out.push('S');
                push_int(out, s.len() as i64);
                out.push(':');
                out.push_str(s);
                out.push(';');
            }
            Value::Int(v) => {
                out.push('I');
                push_int(out, i64::from(*v));
                out.push(';');
            }
            Value::BigInt(v) => {
                out.push('L');
                push_int(out, *v);
                out.push(';');
            }
            Value::Decimal(d) => {
                out.push('D');
                push_decimal(out, d.normalize());
                out.push(';');
            }
            Value::Double(v) => {
                let _ = write!(out, "F{};", v.to_bits());
            }
            Value::Bool(b) => out.push_str(if *b { "B1;" } else { "B0;" }),
            Value::Date(d) => {
                out.push('T');
                push_date(out, *d);
                out.push(';');
            }
            Value::Timestamp(t) => {
                out.push('Z');
                push_int(out, t.timestamp_micros());
                out.push(';');
            }
        }
    }
}

/// Appends `d` exactly as its `Display` writes it (`{d}`: all its scale's fraction digits,
/// no exponent), without the formatting machinery.
pub(crate) fn push_decimal(out: &mut String, d: Decimal) {
    let m = d.mantissa();
    if m == 0 && d.is_sign_negative() {
        // A negative zero: leave its spelling to `Display`.
        use std::fmt::Write as _;
        let _ = write!(out, "{d}");
        return;
    }
    let scale = d.scale() as usize;
    // 96-bit mantissa: at most 29 digits.
    let mut buf = [0u8; 40];
    let mut at = buf.len();
    let mut v = m.unsigned_abs();
    // Wide mantissas first (u128 division is slow), then the rest in u64.
    while v > u128::from(u64::MAX) {
        at -= 1;
        buf[at] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    let mut v = v as u64;
    loop {
        at -= 1;
        buf[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let digits = &buf[at..];
    if m < 0 {
        out.push('-');
    }
    if scale == 0 {
        digits.iter().for_each(|&b| out.push(char::from(b)));
    } else if digits.len() > scale {
        let (int, frac) = digits.split_at(digits.len() - scale);
        int.iter().for_each(|&b| out.push(char::from(b)));
        out.push('.');
        frac.iter().for_each(|&b| out.push(char::from(b)));
    } else {
        out.push_str("0.");
        (0..scale - digits.len()).for_each(|_| out.push('0'));
        digits.iter().for_each(|&b| out.push(char::from(b)));
    }
}

/// Appends `d` as its `Display` writes it (`YYYY-MM-DD`), without the formatting machinery
/// for years 0–9999.
pub(crate) fn push_date(out: &mut String, d: NaiveDate) {
    use chrono::Datelike as _;
    let y = d.year();
    if !(0..=9999).contains(&y) {
        use std::fmt::Write as _;
        let _ = write!(out, "{d}");
        return;
    }
    push_digits(out, y as u32, 4);
    out.push('-');
    push_digits(out, d.month(), 2);
    out.push('-');
    push_digits(out, d.day(), 2);
}

/// Appends the last `width` (at most 10) decimal digits of `v`, zero-padded.
pub(crate) fn push_digits(out: &mut String, v: u32, width: usize) {
    let mut buf = [b'0'; 10];
    let mut v = v;
    for i in (0..width).rev() {
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    for &b in &buf[..width] {
        out.push(char::from(b));
    }
}

/// Appends `v` in decimal, as `{v}` would.
fn push_int(out: &mut String, v: i64) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    let mut n = v.unsigned_abs();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        out.push('-');
    }
    for &b in &buf[at..] {
        out.push(char::from(b));
    }
}

impl fmt::Display for Value {
    /// A human-readable rendering (for messages and text destinations). Timestamps print as
    /// RFC 3339 with microseconds and `Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::String(s) => f.write_str(s),
            Value::Int(v) => write!(f, "{v}"),
            Value::BigInt(v) => write!(f, "{v}"),
            Value::Decimal(d) => write!(f, "{d}"),
            Value::Double(v) => write!(f, "{v}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Date(d) => write!(f, "{d}"),
            Value::Timestamp(t) => {
                write!(
                    f,
                    "{}",
                    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                )
            }
        }
    }
}

/// A destination column type (Databricks SQL names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// `STRING`.
    String,
    /// `BIGINT`.
    BigInt,
    /// `INT`.
    Int,
    /// `DECIMAL(precision, scale)`; precision 1..=38, scale ≤ precision.
    Decimal {
        /// Total number of digits.
        precision: u8,
        /// Digits after the decimal point.
        scale: u8,
    },
    /// `DOUBLE`.
    Double,
    /// `BOOLEAN`.
    Boolean,
    /// `DATE`.
    Date,
    /// `TIMESTAMP` (UTC instant).
    Timestamp,
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::String => f.write_str("STRING"),
            ColumnType::BigInt => f.write_str("BIGINT"),
            ColumnType::Int => f.write_str("INT"),
            ColumnType::Decimal { precision, scale } => write!(f, "DECIMAL({precision},{scale})"),
            ColumnType::Double => f.write_str("DOUBLE"),
            ColumnType::Boolean => f.write_str("BOOLEAN"),
            ColumnType::Date => f.write_str("DATE"),
            ColumnType::Timestamp => f.write_str("TIMESTAMP"),
        }
    }
}

/// Error for a column type name that is not one of the supported types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported column type `{input}`: {reason} (expected STRING, BIGINT, INT, DECIMAL(p,s), DOUBLE, BOOLEAN, DATE or TIMESTAMP)")]
pub struct ColumnTypeError {
    /// The text that was given.
    pub input: String,
    /// Why it was rejected.
    pub reason: String,
}

impl FromStr for ColumnType {
    type Err = ColumnTypeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| ColumnTypeError {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let t = s.trim().to_ascii_uppercase();
        let simple = match t.as_str() {
            "STRING" => Some(ColumnType::String),
            "BIGINT" | "LONG" => Some(ColumnType::BigInt),
            "INT" | "INTEGER" => Some(ColumnType::Int),
            "DOUBLE" => Some(ColumnType::Double),
            "BOOLEAN" => Some(ColumnType::Boolean),
            "DATE" => Some(ColumnType::Date),
            "TIMESTAMP" => Some(ColumnType::Timestamp),
            "DECIMAL" => Some(ColumnType::Decimal {
                precision: 10,
                scale: 0,
            }),
            _ => None,
        };
        if let Some(simple) = simple {
            return Ok(simple);
        }
        let inner = t
            .strip_prefix("DECIMAL")
            .map(str::trim_start)
            .and_then(|r| r.strip_prefix('('))
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(|| err("unknown type"))?;
        let mut parts = inner.split(',').map(str::trim);
        let precision: u8 = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| err("precision is not a number"))?;
        let scale: u8 = match parts.next() {
            Some(p) => p.parse().map_err(|_| err("scale is not a number"))?,
            None => 0,
        };
        if parts.next().is_some() {
            return Err(err("too many arguments"));
        }
        if !(1..=38).contains(&precision) {
            return Err(err("precision must be between 1 and 38"));
        }
        if scale > precision {
            return Err(err("scale must not exceed precision"));
        }
        Ok(ColumnType::Decimal { precision, scale })
    }
}

impl Serialize for ColumnType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ColumnType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_types_round_trip_through_text() {
        for t in [
            "STRING",
            "BIGINT",
            "INT",
            "DECIMAL(18,2)",
            "DECIMAL(38,0)",
            "DOUBLE",
            "BOOLEAN",
            "DATE",
            "TIMESTAMP",
        ] {
            let parsed: ColumnType = t.parse().unwrap();
            assert_eq!(parsed.to_string(), t);
        }
        assert_eq!(
            "decimal( 9 , 3 )".parse::<ColumnType>().unwrap(),
            ColumnType::Decimal {
                precision: 9,
                scale: 3
            }
        );
    }

    #[test]
    fn bad_column_types_are_rejected_with_the_input() {
        for bad in [
            "DECIMAL(39,2)",
            "DECIMAL(5,6)",
            "VARCHAR",
            "DECIMAL(a,b)",
            "DECIMAL(1,2,3)",
        ] {
            let err = bad.parse::<ColumnType>().unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn canonical_form_of_strings_and_integers_matches_formatting() {
        for v in [
            0i64,
            7,
            -7,
            10,
            123_456,
            i64::MAX,
            i64::MIN,
            i64::from(i32::MIN),
        ] {
            let mut s = String::new();
            Value::BigInt(v).write_canonical(&mut s);
            assert_eq!(s, format!("L{v};"));
            if let Ok(i) = i32::try_from(v) {
                let mut s = String::new();
                Value::Int(i).write_canonical(&mut s);
                assert_eq!(s, format!("I{i};"));
            }
        }
        for t in ["", "x", "Müller ; S3:", &"y".repeat(1234)] {
            let mut s = String::new();
            Value::String(t.to_string()).write_canonical(&mut s);
            assert_eq!(s, format!("S{}:{t};", t.len()));
        }
    }

    #[test]
    fn canonical_form_normalises_decimals() {
        let mut a = String::new();
        let mut b = String::new();
        Value::Decimal("1.50".parse().unwrap()).write_canonical(&mut a);
        Value::Decimal("1.5".parse().unwrap()).write_canonical(&mut b);
        assert_eq!(a, b);
        let mut c = String::new();
        Value::String("1.5".into()).write_canonical(&mut c);
        assert_ne!(a, c);
    }

    /// The canonical text is stored data (it feeds `_ml_row_hash`): the hand-written forms
    /// must equal what the formatting machinery gave before.
    #[test]
    fn canonical_forms_equal_the_formatted_ones() {
        let decimals = [
            "0",
            "-0",
            "0.00",
            "1.50",
            "-1.50",
            "100",
            "1000.000",
            "0.01",
            "-0.01",
            "0.000001",
            "12345678901234.56",
            "-12345678901234.56",
            "79228162514264337593543950335",
            "-79228162514264337593543950335",
            "0.0000000000000000000000000001",
            "7.000100",
        ];
        for t in decimals {
            let d: Decimal = t.parse().unwrap();
            let mut got = String::new();
            Value::Decimal(d).write_canonical(&mut got);
            assert_eq!(got, format!("D{};", d.normalize()), "{t}");
        }
        for (y, m, dd) in [
            (2026, 1, 5),
            (1, 2, 3),
            (999, 12, 31),
            (9999, 12, 31),
            (0, 1, 1),
        ] {
            let d = NaiveDate::from_ymd_opt(y, m, dd).unwrap();
            let mut got = String::new();
            Value::Date(d).write_canonical(&mut got);
            assert_eq!(got, format!("T{d};"));
        }
        for d in [
            NaiveDate::from_ymd_opt(-5, 1, 1),
            NaiveDate::from_ymd_opt(12345, 6, 7),
        ] {
            let d = d.unwrap();
            let mut got = String::new();
            Value::Date(d).write_canonical(&mut got);
            assert_eq!(got, format!("T{d};"));
        }
        for micros in [0i64, 1, -1, 1_767_225_600_000_000, i64::MIN / 2] {
            let t = DateTime::from_timestamp_micros(micros).unwrap();
            let mut got = String::new();
            Value::Timestamp(t).write_canonical(&mut got);
            assert_eq!(got, format!("Z{};", t.timestamp_micros()));
        }
    }

    #[test]
    fn decimal_text_equals_display() {
        for t in [
            "0",
            "-0",
            "-0.00",
            "0.00",
            "1.50",
            "-1.50",
            "0.010",
            "12345678901234.56",
        ] {
            let d: Decimal = t.parse().unwrap();
            let mut got = String::new();
            push_decimal(&mut got, d);
            assert_eq!(got, d.to_string(), "{t}");
        }
    }

    proptest::proptest! {
        #[test]
        fn decimal_text_equals_display_for_any(m in proptest::num::i64::ANY, scale in 0u32..=28) {
            let d = Decimal::new(m, scale);
            let mut got = String::new();
            push_decimal(&mut got, d);
            proptest::prop_assert_eq!(got, d.to_string());
        }

        #[test]
        fn decimal_text_equals_display_for_wide_mantissas(
            m in -79_228_162_514_264_337_593_543_950_335i128..=79_228_162_514_264_337_593_543_950_335,
            scale in 0u32..=28,
        ) {
            let d = Decimal::from_i128_with_scale(m, scale);
            let mut got = String::new();
            push_decimal(&mut got, d);
            proptest::prop_assert_eq!(got, d.to_string());
        }

        #[test]
        fn date_text_equals_display(days in -1_000_000i32..4_000_000) {
            let d = NaiveDate::from_num_days_from_ce_opt(days).unwrap();
            let mut got = String::new();
            push_date(&mut got, d);
            proptest::prop_assert_eq!(got, d.to_string());
        }

        #[test]
        fn canonical_decimals_equal_the_formatted_ones(m in proptest::num::i64::ANY, scale in 0u32..=28) {
            let d = Decimal::new(m, scale);
            let mut got = String::new();
            Value::Decimal(d).write_canonical(&mut got);
            proptest::prop_assert_eq!(got, format!("D{};", d.normalize()));
        }
    }
}
