//! Column types and typed values of the stand-in, with Databricks literal, cast, store and
//! comparison rules.

use std::cmp::Ordering;
use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};

use super::engine::SqlFailure;

/// A column type the stand-in stores. Names follow Databricks SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SqlType {
    /// `STRING`.
    String,
    /// `INT` (32-bit).
    Int,
    /// `BIGINT` (64-bit; `LONG` in result manifests).
    BigInt,
    /// `DECIMAL(p,s)`, exact (values up to 28 significant digits, `rust_decimal`'s range).
    Decimal {
        /// Total digits, 1–38.
        precision: u8,
        /// Digits after the point.
        scale: u8,
    },
    /// `DOUBLE`.
    Double,
    /// `BOOLEAN`.
    Boolean,
    /// `DATE`.
    Date,
    /// `TIMESTAMP` (an instant; the session time zone is UTC).
    Timestamp,
    /// `TIMESTAMP_NTZ` (wall-clock time without a zone).
    TimestampNtz,
}

impl SqlType {
    /// Parses a type as written in SQL or a `parameters[].type` field (`bigint`,
    /// `DECIMAL(18, 2)`, `LONG`, `TIMESTAMP_NTZ`, …). `None` for types the stand-in does not
    /// store.
    pub fn parse(text: &str) -> Option<SqlType> {
        let t: String = text
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_uppercase();
        Some(match t.as_str() {
            "STRING" => SqlType::String,
            "INT" | "INTEGER" => SqlType::Int,
            "BIGINT" | "LONG" => SqlType::BigInt,
            "DOUBLE" => SqlType::Double,
            "BOOLEAN" => SqlType::Boolean,
            "DATE" => SqlType::Date,
            "TIMESTAMP" | "TIMESTAMP_LTZ" => SqlType::Timestamp,
            "TIMESTAMP_NTZ" => SqlType::TimestampNtz,
            "DECIMAL" | "DEC" | "NUMERIC" => SqlType::Decimal {
                precision: 10,
                scale: 0,
            },
            _ => {
                let inner = ["DECIMAL(", "DEC(", "NUMERIC("]
                    .iter()
                    .find_map(|p| t.strip_prefix(p))?
                    .strip_suffix(')')?;
                let mut parts = inner.split(',');
                let precision: u8 = parts.next()?.parse().ok()?;
                let scale: u8 = match parts.next() {
                    Some(s) => s.parse().ok()?,
                    None => 0,
                };
                if parts.next().is_some() || precision == 0 || precision > 38 || scale > precision {
                    return None;
                }
                SqlType::Decimal { precision, scale }
            }
        })
    }

    /// The `type_name` of a result manifest or Unity Catalog column (`LONG` for BIGINT).
    pub fn type_name(&self) -> &'static str {
        match self {
            SqlType::String => "STRING",
            SqlType::Int => "INT",
            SqlType::BigInt => "LONG",
            SqlType::Decimal { .. } => "DECIMAL",
            SqlType::Double => "DOUBLE",
            SqlType::Boolean => "BOOLEAN",
            SqlType::Date => "DATE",
            SqlType::Timestamp => "TIMESTAMP",
            SqlType::TimestampNtz => "TIMESTAMP_NTZ",
        }
    }

    /// The lower-case `type_text` (`bigint`, `decimal(18,2)`).
    pub fn type_text(&self) -> String {
        self.to_string().to_ascii_lowercase()
    }
}

impl fmt::Display for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlType::Decimal { precision, scale } => write!(f, "DECIMAL({precision},{scale})"),
            SqlType::BigInt => f.write_str("BIGINT"),
            other => f.write_str(other.type_name()),
        }
    }
}

/// A typed value held by the stand-in.
#[derive(Debug, Clone, PartialEq)]
pub enum StandInValue {
    /// SQL NULL.
    Null,
    /// `STRING`.
    String(String),
    /// `INT`.
    Int(i32),
    /// `BIGINT`.
    BigInt(i64),
    /// `DECIMAL`, stored at the column's scale.
    Decimal(Decimal),
    /// `DOUBLE`.
    Double(f64),
    /// `BOOLEAN`.
    Boolean(bool),
    /// `DATE`.
    Date(NaiveDate),
    /// `TIMESTAMP`.
    Timestamp(DateTime<Utc>),
    /// `TIMESTAMP_NTZ`.
    TimestampNtz(NaiveDateTime),
}

impl StandInValue {
    /// True for NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, StandInValue::Null)
    }

    /// The value as a JSON_ARRAY cell: `None` for NULL, otherwise the text Databricks sends
    /// (decimals at their scale, timestamps as `2024-01-31T12:00:00.123Z`).
    pub fn to_cell(&self) -> Option<String> {
        Some(match self {
            StandInValue::Null => return None,
            StandInValue::String(s) => s.clone(),
            StandInValue::Int(v) => v.to_string(),
            StandInValue::BigInt(v) => v.to_string(),
            StandInValue::Decimal(d) => d.to_string(),
            StandInValue::Double(v) => format_double(*v),
            StandInValue::Boolean(b) => b.to_string(),
            StandInValue::Date(d) => d.format("%Y-%m-%d").to_string(),
            StandInValue::Timestamp(t) => t.format("%Y-%m-%dT%H:%M:%S%.fZ").to_string(),
            StandInValue::TimestampNtz(t) => t.format("%Y-%m-%dT%H:%M:%S%.f").to_string(),
        })
    }

    /// The type a literal of this value has (`None` for NULL).
    pub fn natural_type(&self) -> Option<SqlType> {
        Some(match self {
            StandInValue::Null => return None,
            StandInValue::String(_) => SqlType::String,
            StandInValue::Int(_) => SqlType::Int,
            StandInValue::BigInt(_) => SqlType::BigInt,
            StandInValue::Decimal(d) => decimal_type_of(d),
            StandInValue::Double(_) => SqlType::Double,
            StandInValue::Boolean(_) => SqlType::Boolean,
            StandInValue::Date(_) => SqlType::Date,
            StandInValue::Timestamp(_) => SqlType::Timestamp,
            StandInValue::TimestampNtz(_) => SqlType::TimestampNtz,
        })
    }
}

impl fmt::Display for StandInValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_cell() {
            Some(s) => f.write_str(&s),
            None => f.write_str("NULL"),
        }
    }
}

fn format_double(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        format!("{v:?}")
    }
}

/// The smallest `DECIMAL(p,s)` holding `d`.
pub(crate) fn decimal_type_of(d: &Decimal) -> SqlType {
    let scale = d.scale();
    let digits = d.mantissa().unsigned_abs().to_string().len() as u32;
    let precision = digits.max(scale).clamp(1, 38);
    SqlType::Decimal {
        precision: precision as u8,
        scale: scale.min(precision) as u8,
    }
}

/// Decodes the text between the quotes of a string literal as Databricks does: backslash
/// escapes (`\'`, `\"`, `\\`, `\n`, `\t`, `\r`, `\b`, `\0`, `\Z`, `\uXXXX`, `\UXXXXXXXX`,
/// three-digit octal `\ddd`; `\%` and `\_` keep their backslash; `\<c>` is `<c>`), and a
/// doubled quote is the boundary of two adjacent literals, which concatenate (`'a''b'` is
/// `ab`).
pub fn unescape_string_literal(raw: &str, quote: char) -> String {
    let c: Vec<char> = raw.chars().collect();
    let mut out = String::with_capacity(raw.len());
    let mut pending_high: Option<u32> = None;
    let mut i = 0;
    let hex = |from: usize, n: usize| -> Option<u32> {
        if from + n > c.len() {
            return None;
        }
        let s: String = c[from..from + n].iter().collect();
        if s.chars().all(|h| h.is_ascii_hexdigit()) {
            u32::from_str_radix(&s, 16).ok()
        } else {
            None
        }
    };
    let flush_high = |out: &mut String, pending: &mut Option<u32>| {
        if pending.take().is_some() {
            out.push('\u{FFFD}');
        }
    };
    while i < c.len() {
        let ch = c[i];
        if ch == '\\' && i + 1 < c.len() {
            let n = c[i + 1];
            if n == 'u' {
                if let Some(u) = hex(i + 2, 4) {
                    i += 6;
                    if (0xD800..0xDC00).contains(&u) {
                        flush_high(&mut out, &mut pending_high);
                        pending_high = Some(u);
                    } else if (0xDC00..0xE000).contains(&u) {
                        match pending_high.take() {
                            Some(h) => out.push(
                                char::from_u32(0x10000 + ((h - 0xD800) << 10) + (u - 0xDC00))
                                    .unwrap_or('\u{FFFD}'),
                            ),
                            None => out.push('\u{FFFD}'),
                        }
                    } else {
                        flush_high(&mut out, &mut pending_high);
                        out.push(char::from_u32(u).unwrap_or('\u{FFFD}'));
                    }
                    continue;
                }
            }
            flush_high(&mut out, &mut pending_high);
            if n == 'U' {
                if let Some(u) = hex(i + 2, 8) {
                    out.push(char::from_u32(u).unwrap_or('\u{FFFD}'));
                    i += 10;
                    continue;
                }
            }
            if i + 3 < c.len()
                && ('0'..='3').contains(&n)
                && ('0'..='7').contains(&c[i + 2])
                && ('0'..='7').contains(&c[i + 3])
            {
                let v = (n as u32 - 48) * 64 + (c[i + 2] as u32 - 48) * 8 + (c[i + 3] as u32 - 48);
                out.push(char::from_u32(v).unwrap_or('\u{FFFD}'));
                i += 4;
                continue;
            }
            match n {
                '0' => out.push('\0'),
                'b' => out.push('\u{8}'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'Z' => out.push('\u{1A}'),
                '%' => out.push_str("\\%"),
                '_' => out.push_str("\\_"),
                other => out.push(other),
            }
            i += 2;
            continue;
        }
        flush_high(&mut out, &mut pending_high);
        if ch == quote && i + 1 < c.len() && c[i + 1] == quote {
            // `''` inside the token: the boundary of two adjacent literals.
            i += 2;
            continue;
        }
        out.push(ch);
        i += 1;
    }
    flush_high(&mut out, &mut pending_high);
    out
}

/// Escapes `value` so that [`unescape_string_literal`] returns it unchanged.
pub(crate) fn escape_canonical(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    for ch in value.chars() {
        if ch == '\\' || ch == '\'' {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// Parses a numeric literal token: `123` (INT, or BIGINT / DECIMAL when larger), `1.50`
/// (exact DECIMAL), `5E10` (DOUBLE), and the suffixes `L`, `S`, `Y`, `D`, `F`, `BD`.
pub(crate) fn parse_number(text: &str) -> Result<StandInValue, SqlFailure> {
    let bad = || {
        SqlFailure::new(
            "INVALID_NUMERIC_LITERAL",
            "22003",
            format!("The numeric literal {text} is not valid."),
        )
    };
    let up = text.to_ascii_uppercase();
    let (body, suffix) = if let Some(b) = up.strip_suffix("BD") {
        (b, "BD")
    } else if let Some(b) = up.strip_suffix(['L', 'S', 'Y', 'D', 'F']) {
        (b, &up[up.len() - 1..])
    } else {
        (up.as_str(), "")
    };
    if body.is_empty() {
        return Err(bad());
    }
    let exact = |b: &str| Decimal::from_str_exact(b).or_else(|_| Decimal::from_scientific(b));
    match suffix {
        "BD" => exact(body).map(StandInValue::Decimal).map_err(|_| bad()),
        "D" | "F" => body
            .parse::<f64>()
            .map(StandInValue::Double)
            .map_err(|_| bad()),
        "L" => body
            .parse::<i64>()
            .map(StandInValue::BigInt)
            .map_err(|_| bad()),
        "S" => body
            .parse::<i16>()
            .map(|v| StandInValue::Int(v.into()))
            .map_err(|_| bad()),
        "Y" => body
            .parse::<i8>()
            .map(|v| StandInValue::Int(v.into()))
            .map_err(|_| bad()),
        _ => {
            if body.contains('E') {
                body.parse::<f64>()
                    .map(StandInValue::Double)
                    .map_err(|_| bad())
            } else if body.contains('.') {
                exact(body).map(StandInValue::Decimal).map_err(|_| bad())
            } else if let Ok(v) = body.parse::<i32>() {
                Ok(StandInValue::Int(v))
            } else if let Ok(v) = body.parse::<i64>() {
                Ok(StandInValue::BigInt(v))
            } else {
                exact(body).map(StandInValue::Decimal).map_err(|_| bad())
            }
        }
    }
}

fn cast_invalid(v: &str, t: SqlType) -> SqlFailure {
    SqlFailure::new(
        "CAST_INVALID_INPUT",
        "22018",
        format!(
            "The value '{}' of the type \"STRING\" cannot be cast to \"{t}\" because it is malformed.",
            v.chars().take(100).collect::<String>()
        ),
    )
}

fn out_of_range(v: &str, t: SqlType) -> SqlFailure {
    SqlFailure::new(
        "NUMERIC_VALUE_OUT_OF_RANGE",
        "22003",
        format!("The value {v} cannot be represented as {t}."),
    )
}

/// Fits a decimal to `DECIMAL(p,s)`: rounds half-up to the scale, fails when the precision
/// is exceeded.
pub(crate) fn fit_decimal(d: Decimal, precision: u8, scale: u8) -> Result<Decimal, SqlFailure> {
    let t = SqlType::Decimal { precision, scale };
    let mut r = d.round_dp_with_strategy(scale as u32, RoundingStrategy::MidpointAwayFromZero);
    if r.scale() < scale as u32 {
        r.rescale(scale as u32);
        if r.scale() != scale as u32 {
            return Err(out_of_range(&d.to_string(), t));
        }
    }
    let int_digits = {
        let trunc = r.trunc().abs();
        if trunc.is_zero() {
            0
        } else {
            trunc.mantissa().to_string().len() as u32
        }
    };
    if int_digits > (precision - scale) as u32 {
        return Err(out_of_range(&d.to_string(), t));
    }
    Ok(r)
}

/// Parses a timestamp text: date, optional `T`/space time with fraction, optional `Z`,
/// `±hh:mm`, `±hhmm` or ` UTC`. Returns the wall time and the offset in seconds, if any.
pub(crate) fn parse_timestamp_text(s: &str) -> Option<(NaiveDateTime, Option<i32>)> {
    let s = s.trim();
    let (s, utc_word) = match s.strip_suffix(" UTC").or_else(|| s.strip_suffix("UTC")) {
        Some(r) => (r.trim_end(), true),
        None => (s, false),
    };
    if s.len() < 10 {
        return None;
    }
    let date = NaiveDate::parse_from_str(&s[..10], "%Y-%m-%d").ok()?;
    let rest = &s[10..];
    if rest.is_empty() {
        return Some((date.and_hms_opt(0, 0, 0)?, utc_word.then_some(0)));
    }
    let rest = rest.strip_prefix(['T', ' '])?;
    // Split off an offset.
    let (time, offset) = if let Some(t) = rest.strip_suffix('Z') {
        (t, Some(0))
    } else if let Some(pos) = rest.rfind(['+', '-']) {
        let (t, off) = rest.split_at(pos);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let digits: String = off[1..].chars().filter(|c| *c != ':').collect();
        if digits.len() != 4 && digits.len() != 2 {
            return None;
        }
        let h: i32 = digits[..2].parse().ok()?;
        let m: i32 = if digits.len() == 4 {
            digits[2..].parse().ok()?
        } else {
            0
        };
        (t, Some(sign * (h * 3600 + m * 60)))
    } else {
        (rest, utc_word.then_some(0))
    };
    let t = ["%H:%M:%S%.f", "%H:%M"]
        .iter()
        .find_map(|f| chrono::NaiveTime::parse_from_str(time, f).ok())?;
    Some((date.and_time(t), offset))
}

fn to_instant(wall: NaiveDateTime, offset: Option<i32>) -> DateTime<Utc> {
    let utc = wall - chrono::Duration::seconds(offset.unwrap_or(0) as i64);
    utc.and_utc()
}

/// `CAST(v AS t)` with ANSI semantics (malformed input and overflow fail).
pub(crate) fn cast(v: &StandInValue, t: SqlType) -> Result<StandInValue, SqlFailure> {
    use StandInValue as V;
    let mismatch = || {
        SqlFailure::new(
            "DATATYPE_MISMATCH.CAST_WITHOUT_SUGGESTION",
            "42K09",
            format!(
                "Cannot resolve \"CAST({} AS {t})\" due to data type mismatch: cannot cast \"{}\" to \"{t}\".",
                v,
                v.natural_type().map(|t| t.to_string()).unwrap_or_default()
            ),
        )
    };
    Ok(match (v, t) {
        (V::Null, _) => V::Null,
        (_, SqlType::String) => V::String(v.to_cell().unwrap_or_default()),
        (V::String(s), _) => {
            let s2 = s.trim();
            match t {
                SqlType::Int => V::Int(s2.parse().map_err(|_| cast_invalid(s, t))?),
                SqlType::BigInt => V::BigInt(s2.parse().map_err(|_| cast_invalid(s, t))?),
                SqlType::Decimal { precision, scale } => {
                    let d = Decimal::from_str_exact(s2)
                        .or_else(|_| Decimal::from_scientific(s2))
                        .map_err(|_| {
                            let digits = s2.trim_start_matches(['-', '+']);
                            if !digits.is_empty()
                                && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
                            {
                                // Valid SQL, but beyond rust_decimal's 28-29 digits.
                                SqlFailure::new(
                                    "NUMERIC_VALUE_OUT_OF_RANGE",
                                    "22003",
                                    format!("The value {s2} has more significant digits than the stand-in can hold exactly (about 28)."),
                                )
                            } else {
                                cast_invalid(s, t)
                            }
                        })?;
                    V::Decimal(fit_decimal(d, precision, scale)?)
                }
                SqlType::Double => V::Double(match s2.to_ascii_lowercase().as_str() {
                    "nan" => f64::NAN,
                    "infinity" | "inf" | "+infinity" | "+inf" => f64::INFINITY,
                    "-infinity" | "-inf" => f64::NEG_INFINITY,
                    _ => s2.parse().map_err(|_| cast_invalid(s, t))?,
                }),
                SqlType::Boolean => match s2.to_ascii_lowercase().as_str() {
                    "true" | "t" | "yes" | "y" | "1" => V::Boolean(true),
                    "false" | "f" | "no" | "n" | "0" => V::Boolean(false),
                    _ => return Err(cast_invalid(s, t)),
                },
                SqlType::Date => {
                    let (wall, _) = parse_timestamp_text(s2).ok_or_else(|| cast_invalid(s, t))?;
                    V::Date(wall.date())
                }
                SqlType::Timestamp => {
                    let (wall, off) = parse_timestamp_text(s2).ok_or_else(|| cast_invalid(s, t))?;
                    V::Timestamp(to_instant(wall, off))
                }
                SqlType::TimestampNtz => {
                    let (wall, _) = parse_timestamp_text(s2).ok_or_else(|| cast_invalid(s, t))?;
                    V::TimestampNtz(wall)
                }
                SqlType::String => unreachable!("handled above"),
            }
        }
        (V::Int(i), _) => {
            cast_exact(Decimal::from(*i), &i.to_string(), t).ok_or_else(mismatch)??
        }
        (V::BigInt(i), _) => {
            cast_exact(Decimal::from(*i), &i.to_string(), t).ok_or_else(mismatch)??
        }
        (V::Decimal(d), _) => cast_exact(*d, &d.to_string(), t).ok_or_else(mismatch)??,
        (V::Double(f), SqlType::Double) => V::Double(*f),
        (V::Double(f), SqlType::Int | SqlType::BigInt | SqlType::Decimal { .. }) => {
            let d = Decimal::try_from(*f).map_err(|_| out_of_range(&format_double(*f), t))?;
            cast_exact(d, &format_double(*f), t).ok_or_else(mismatch)??
        }
        (V::Boolean(b), SqlType::Boolean) => V::Boolean(*b),
        (V::Date(d), SqlType::Date) => V::Date(*d),
        (V::Date(d), SqlType::Timestamp) => V::Timestamp(d.and_hms_opt(0, 0, 0).unwrap().and_utc()),
        (V::Date(d), SqlType::TimestampNtz) => V::TimestampNtz(d.and_hms_opt(0, 0, 0).unwrap()),
        (V::Timestamp(ts), SqlType::Timestamp) => V::Timestamp(*ts),
        (V::Timestamp(ts), SqlType::Date) => V::Date(ts.date_naive()),
        (V::Timestamp(ts), SqlType::TimestampNtz) => V::TimestampNtz(ts.naive_utc()),
        (V::TimestampNtz(n), SqlType::TimestampNtz) => V::TimestampNtz(*n),
        (V::TimestampNtz(n), SqlType::Timestamp) => V::Timestamp(n.and_utc()),
        (V::TimestampNtz(n), SqlType::Date) => V::Date(n.date()),
        _ => return Err(mismatch()),
    })
}

/// Casts an exact number; `None` when the target is not numeric.
fn cast_exact(d: Decimal, text: &str, t: SqlType) -> Option<Result<StandInValue, SqlFailure>> {
    use rust_decimal::prelude::ToPrimitive;
    Some(match t {
        SqlType::Int => d
            .trunc()
            .to_i32()
            .map(StandInValue::Int)
            .ok_or_else(|| out_of_range(text, t)),
        SqlType::BigInt => d
            .trunc()
            .to_i64()
            .map(StandInValue::BigInt)
            .ok_or_else(|| out_of_range(text, t)),
        SqlType::Decimal { precision, scale } => {
            fit_decimal(d, precision, scale).map(StandInValue::Decimal)
        }
        SqlType::Double => Ok(StandInValue::Double(d.to_f64().unwrap_or(f64::NAN))),
        _ => return None,
    })
}

/// Converts a value for storage in a column of type `t` (Databricks' ANSI store assignment):
/// numbers widen or are checked for range, dates widen to timestamps, and nothing is parsed
/// from a STRING.
pub(crate) fn store(
    v: &StandInValue,
    t: SqlType,
    column: &str,
) -> Result<StandInValue, SqlFailure> {
    use StandInValue as V;
    let ok = match (v, t) {
        (V::Null, _) => true,
        (V::String(_), SqlType::String) => true,
        (V::String(_), _) | (_, SqlType::String) => false,
        (V::Boolean(_), SqlType::Boolean) => true,
        (V::Boolean(_), _) | (_, SqlType::Boolean) => false,
        (
            V::Int(_) | V::BigInt(_) | V::Decimal(_) | V::Double(_),
            SqlType::Int | SqlType::BigInt | SqlType::Decimal { .. } | SqlType::Double,
        ) => true,
        (
            V::Date(_) | V::Timestamp(_) | V::TimestampNtz(_),
            SqlType::Date | SqlType::Timestamp | SqlType::TimestampNtz,
        ) => true,
        _ => false,
    };
    if !ok {
        return Err(SqlFailure::new(
            "INCOMPATIBLE_DATA_FOR_TABLE.CANNOT_SAFELY_CAST",
            "KD000",
            format!(
                "Cannot write incompatible data for the table: Cannot safely cast `{column}` \"{}\" to \"{t}\".",
                v.natural_type().map(|t| t.to_string()).unwrap_or_default()
            ),
        ));
    }
    cast(v, t)
}

/// Compares two values with Databricks' implicit coercions; `None` when either is NULL.
pub(crate) fn compare(a: &StandInValue, b: &StandInValue) -> Result<Option<Ordering>, SqlFailure> {
    use StandInValue as V;
    if a.is_null() || b.is_null() {
        return Ok(None);
    }
    let exact = |v: &V| match v {
        V::Int(i) => Some(Decimal::from(*i)),
        V::BigInt(i) => Some(Decimal::from(*i)),
        V::Decimal(d) => Some(*d),
        _ => None,
    };
    let float = |v: &V| -> Option<f64> {
        use rust_decimal::prelude::ToPrimitive;
        match v {
            V::Double(f) => Some(*f),
            other => exact(other).and_then(|d| d.to_f64()),
        }
    };
    let time = |v: &V| match v {
        V::Date(d) => d.and_hms_opt(0, 0, 0),
        V::Timestamp(t) => Some(t.naive_utc()),
        V::TimestampNtz(n) => Some(*n),
        _ => None,
    };
    if let (Some(x), Some(y)) = (exact(a), exact(b)) {
        return Ok(Some(x.cmp(&y)));
    }
    if let (Some(x), Some(y)) = (float(a), float(b)) {
        return Ok(Some(x.total_cmp(&y)));
    }
    if let (Some(x), Some(y)) = (time(a), time(b)) {
        return Ok(Some(x.cmp(&y)));
    }
    match (a, b) {
        (V::String(x), V::String(y)) => Ok(Some(x.as_bytes().cmp(y.as_bytes()))),
        (V::Boolean(x), V::Boolean(y)) => Ok(Some(x.cmp(y))),
        (V::String(_), other) => compare(&cast(a, other.natural_type().unwrap())?, b),
        (other, V::String(_)) => compare(a, &cast(b, other.natural_type().unwrap())?),
        _ => Err(SqlFailure::new(
            "DATATYPE_MISMATCH.BINARY_OP_DIFF_TYPES",
            "42K09",
            format!(
                "Cannot compare {} with {}: the types differ.",
                a.natural_type().map(|t| t.to_string()).unwrap_or_default(),
                b.natural_type().map(|t| t.to_string()).unwrap_or_default()
            ),
        )),
    }
}

/// A hashable key part: values equal under [`compare`] map to equal parts when they have the
/// same column type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum KeyPart {
    Null,
    Str(String),
    Num(Decimal),
    Dbl(u64),
    Bool(bool),
    Time(NaiveDateTime),
}

pub(crate) fn key_part(v: &StandInValue) -> KeyPart {
    use StandInValue as V;
    match v {
        V::Null => KeyPart::Null,
        V::String(s) => KeyPart::Str(s.clone()),
        V::Int(i) => KeyPart::Num(Decimal::from(*i)),
        V::BigInt(i) => KeyPart::Num(Decimal::from(*i)),
        V::Decimal(d) => KeyPart::Num(d.normalize()),
        V::Double(f) => KeyPart::Dbl(if *f == 0.0 { 0 } else { f.to_bits() }),
        V::Boolean(b) => KeyPart::Bool(*b),
        V::Date(d) => KeyPart::Time(d.and_hms_opt(0, 0, 0).unwrap()),
        V::Timestamp(t) => KeyPart::Time(t.naive_utc()),
        V::TimestampNtz(n) => KeyPart::Time(*n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_literals_follow_databricks_escapes() {
        let u = |s: &str| unescape_string_literal(s, '\'');
        assert_eq!(u(r"O\'Brien \\ x"), r"O'Brien \ x");
        assert_eq!(u(r"a\nb\tc\rd\0e\Zf"), "a\nb\tc\rd\0e\u{1A}f");
        assert_eq!(u(r"\q\%\_"), r"q\%\_");
        assert_eq!(u(r"\u0000x\u00e9\U0001F44D"), "\0xé👍");
        assert_eq!(u(r"\uD83D\uDC4D"), "👍");
        assert_eq!(u(r"\101\0"), "A\0");
        assert_eq!(u("a''b"), "ab");
        assert_eq!(u(r"x\'''"), "x'");
        assert_eq!(u(r"\0''12"), "\u{0}12");
        for s in ["'; DROP TABLE x; --", "a\\b'c\"d\n\u{0}é", "\\u0041"] {
            assert_eq!(u(&escape_canonical(s)), s);
        }
    }

    #[test]
    fn numbers_and_types() {
        assert_eq!(
            parse_number("123BD").unwrap(),
            StandInValue::Decimal(Decimal::from(123))
        );
        assert_eq!(parse_number("1.5D").unwrap(), StandInValue::Double(1.5));
        assert_eq!(parse_number("5L").unwrap(), StandInValue::BigInt(5));
        assert_eq!(
            parse_number("5000000000").unwrap(),
            StandInValue::BigInt(5_000_000_000)
        );
        assert_eq!(
            parse_number("6.45").unwrap().natural_type(),
            SqlType::parse("decimal(3,2)")
        );
        assert_eq!(parse_number("5E10").unwrap(), StandInValue::Double(5e10));
        assert_eq!(
            SqlType::parse("DECIMAL(18, 2)").unwrap().type_text(),
            "decimal(18,2)"
        );
        assert_eq!(SqlType::parse("bigint").unwrap().type_name(), "LONG");
        assert!(SqlType::parse("ARRAY<INT>").is_none());
        let d = cast(
            &StandInValue::String("12.345".into()),
            SqlType::parse("DECIMAL(5,2)").unwrap(),
        )
        .unwrap();
        assert_eq!(d.to_cell().unwrap(), "12.35");
        let d = cast(
            &StandInValue::String("12.5".into()),
            SqlType::parse("DECIMAL(18,2)").unwrap(),
        )
        .unwrap();
        assert_eq!(d.to_cell().unwrap(), "12.50");
        assert!(cast(
            &StandInValue::String("1234".into()),
            SqlType::parse("DECIMAL(4,2)").unwrap()
        )
        .is_err());
        let t = cast(
            &StandInValue::String("2024-01-31 23:05:09.000123+01:00".into()),
            SqlType::Timestamp,
        )
        .unwrap();
        assert_eq!(t.to_cell().unwrap(), "2024-01-31T22:05:09.000123Z");
    }
}
