//! Exact conversion of source values into typed [`Value`]s, and the [`FieldFormat`]
//! extension point through which a connector teaches the mapping its own value and field-name
//! habits.
//!
//! The functions here accept *standard* forms only (ISO 8601 / RFC 3339 datetimes, plain
//! decimals, `true`/`false`); [`StandardFormat`] is the [`FieldFormat`] built from them and the
//! one [`Mapping::compile`](crate::Mapping::compile) uses. A source with other habits (the
//! PeopleSoft client's native datetimes, `Y`/`N` flags and single-space blanks, for example)
//! implements [`FieldFormat`], usually by normalising its forms and delegating the rest here,
//! and is given to [`Mapping::compile_with`](crate::Mapping::compile_with).
//!
//! Every function here is on the mapping hot path: text is parsed by hand from bytes (no format
//! strings, no regular expressions) and nothing is allocated except the value returned (a
//! `STRING`'s text). Errors carry a plain-words reason naming the expected format, ready for
//! [`FieldError::reason`](crate::FieldError::reason).
//!
//! # What is accepted, per column type
//!
//! | Type | Accepted input |
//! |---|---|
//! | `STRING` | strings as they are; numbers in their JSON text form; `true`/`false` |
//! | `INT`, `BIGINT` | JSON integers; strings `[+-]digits`; a fraction only if it is all zeros (`12.00`) |
//! | `DECIMAL(p,s)` | JSON numbers and strings `[+-]digits[.digits][e[+-]digits]`, also `.5` and `5.` |
//! | `DOUBLE` | JSON numbers; strings Rust's `f64` parser accepts, finite only |
//! | `BOOLEAN` | JSON booleans; `true`/`false` (any case), `1`/`0` (string or number) |
//! | `DATE` | `YYYY-MM-DD`; any datetime form below, whose *written* date is taken |
//! | `TIMESTAMP` | the datetime forms below |
//!
//! Datetime forms (`f` = fraction digits):
//! - ISO 8601 `YYYY-MM-DDTHH:MM:SS[.fffffffff][Z|±hh:mm|±hhmm|±hh]`,
//! - space-separated `YYYY-MM-DD HH:MM:SS[.fffffffff][offset]`,
//! - a date alone `YYYY-MM-DD`, meaning midnight.
//!
//! Fractions finer than a microsecond are rejected unless the extra digits are zeros:
//! destinations store microseconds and values are never rounded silently.
//!
//! # Time zones and daylight saving
//!
//! A datetime with an explicit offset (`Z`, `+01:00`, `-0500`) is that instant; the source zone
//! is ignored. A zone-less datetime is a wall-clock time in the configured
//! [`SourceTimeZone`] and is stored as UTC. Wall-clock times that do not map to exactly one
//! instant are resolved deterministically:
//! - **nonexistent** (the spring-forward gap): shifted forward by the length of the gap, so
//!   `02:30` in a `02:00 → 03:00` gap becomes `03:30` local time;
//! - **ambiguous** (the fall-back overlap): the *earlier* instant, the first occurrence.
//!
//! For a `DATE` column a datetime's date is taken as written, with no zone conversion: a
//! DATE is a calendar date, not an instant, and some renderers add `T00:00:00`.
//!
//! # Empty text
//!
//! For every type except `STRING`, an empty string is NULL. Text is otherwise taken as written:
//! surrounding whitespace is an error here (a [`FieldFormat`] may trim it first). A `STRING`
//! keeps the text exactly unless the column has the
//! [`blank_as_null`](crate::mapping::Transform::BlankAsNull) transform.
//!
//! # Money is exact
//!
//! `DECIMAL` text is parsed digit by digit into an exact [`Decimal`]; a value with more fraction
//! digits than the scale is rejected (trailing zeros excepted), never rounded, and integer digits
//! beyond `p - s` are a precision overflow. JSON *numbers* reach this library as `f64` (serde_json
//! without `arbitrary_precision`), so they are converted through their shortest round-trip text
//! (`0.1` stays `0.1`, not `0.1000000000000000055…`); digits beyond `f64` precision (about 15–17
//! significant digits) are already lost in the JSON parser and cannot be recovered, which is why
//! sources should send amounts as strings. [`Decimal`] holds at most 28 significant digits; a
//! larger value is rejected with a reason rather than rounded.
//!
//! ```
//! use serde_json::json;
//! use sync_core::convert::{convert, SourceTimeZone};
//! use sync_core::{ColumnType, Value};
//!
//! let zone = SourceTimeZone::from_name("America/New_York").unwrap();
//! let ts = convert(&json!("2026-01-15T10:30:00"), ColumnType::Timestamp, &zone).unwrap();
//! assert_eq!(ts.to_string(), "2026-01-15T15:30:00.000000Z");
//!
//! let amount = ColumnType::Decimal { precision: 18, scale: 2 };
//! assert_eq!(convert(&json!("1234.5"), amount, &zone).unwrap().to_string(), "1234.50");
//! assert!(convert(&json!("1234.567"), amount, &zone).is_err()); // never rounded
//!
//! assert_eq!(convert(&json!("true"), ColumnType::Boolean, &zone).unwrap(), Value::Bool(true));
//! assert_eq!(convert(&json!(""), ColumnType::Date, &zone).unwrap(), Value::Null);
//! ```

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{
    DateTime, Datelike, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    TimeZone, Utc,
};
use chrono_tz::Tz;
use rust_decimal::Decimal;

use crate::value::{ColumnType, Value};

/// Why a source value could not be converted: a reason in plain words, naming the expected
/// format. Used as [`FieldError::reason`](crate::FieldError::reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertError {
    reason: Cow<'static, str>,
}

impl ConvertError {
    /// An error with the given reason.
    pub fn new(reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            reason: reason.into(),
        }
    }

    /// The reason, in plain words.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The reason as an owned string.
    pub fn into_reason(self) -> String {
        self.reason.into_owned()
    }
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for ConvertError {}

const DATE_EXPECTED: &str =
    "expected a date YYYY-MM-DD (or a datetime, whose written date is used)";
const DATETIME_EXPECTED: &str =
    "expected a datetime YYYY-MM-DDTHH:MM:SS[.ffffff][Z|+hh:mm|+hhmm], \
     YYYY-MM-DD HH:MM:SS[.ffffff][offset] or a date YYYY-MM-DD";

/// The time zone in which zone-less source datetimes are wall-clock times.
///
/// Wraps a [`chrono_tz::Tz`] and remembers, per calendar day, the UTC offset of days without a
/// daylight-saving transition, so converting a datetime is usually a table lookup instead of a
/// search of the zone's transitions. The memory is a small lock-free table of atomics, shared
/// by all threads using the same `SourceTimeZone`; a clone starts with an empty one.
///
/// ```
/// use chrono::NaiveDate;
/// use sync_core::convert::SourceTimeZone;
///
/// let berlin = SourceTimeZone::from_name("Europe/Berlin").unwrap();
/// // 02:30 does not exist on 2026-03-29 (02:00 -> 03:00): it becomes 03:30 CEST.
/// let local = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap().and_hms_opt(2, 30, 0).unwrap();
/// assert_eq!(berlin.to_utc(local).to_rfc3339(), "2026-03-29T01:30:00+00:00");
/// ```
pub struct SourceTimeZone {
    tz: Tz,
    /// Direct-mapped cache: slot `day % N` holds `(day << 32) | (offset + 2^31)`, or
    /// `(day << 32) | TRANSITION_DAY` for a day with a transition; 0 = empty.
    days: Box<[AtomicU64]>,
}

const DAY_CACHE_SLOTS: usize = 512;
const OFFSET_BIAS: i64 = 1 << 31;
/// Low half of a slot for a day with a transition (never a biased real offset).
const TRANSITION_DAY: u64 = 1;

impl SourceTimeZone {
    /// A source zone.
    pub fn new(tz: Tz) -> Self {
        Self {
            tz,
            days: (0..DAY_CACHE_SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// UTC: zone-less datetimes are already UTC.
    pub fn utc() -> Self {
        Self::new(Tz::UTC)
    }

    /// A zone by IANA name (`America/Chicago`, `Europe/Berlin`, `UTC`).
    pub fn from_name(name: &str) -> Result<Self, ConvertError> {
        name.parse::<Tz>().map(Self::new).map_err(|_| {
            ConvertError::new(format!(
                "`{name}` is not an IANA time zone name (expected e.g. America/Chicago or UTC)"
            ))
        })
    }

    /// The zone.
    pub fn tz(&self) -> Tz {
        self.tz
    }

    /// The UTC instant of a wall-clock time in this zone. Nonexistent times (spring-forward
    /// gap) are shifted forward by the gap; ambiguous times (fall-back overlap) take the
    /// earlier instant.
    pub fn to_utc(&self, local: NaiveDateTime) -> DateTime<Utc> {
        let offset = self.offset_seconds(local);
        (local - chrono::Duration::seconds(offset)).and_utc()
    }

    /// The offset (seconds east of UTC) to subtract from `local` to get its UTC instant, with
    /// the gap/overlap rules applied.
    fn offset_seconds(&self, local: NaiveDateTime) -> i64 {
        if self.tz == Tz::UTC {
            return 0;
        }
        let day = local.date().num_days_from_ce();
        let slot = &self.days[(day as u32 as usize) % DAY_CACHE_SLOTS];
        let cached = slot.load(Ordering::Relaxed);
        if cached != 0 && (cached >> 32) as u32 == day as u32 {
            let low = cached & 0xFFFF_FFFF;
            if low == TRANSITION_DAY {
                return self.resolve_offset(local);
            }
            return low as i64 - OFFSET_BIAS;
        }
        let low = match self.whole_day_offset(local.date()) {
            Some(day_offset) => (day_offset + OFFSET_BIAS) as u64,
            None => TRANSITION_DAY,
        };
        slot.store(((day as u32 as u64) << 32) | low, Ordering::Relaxed);
        if low == TRANSITION_DAY {
            self.resolve_offset(local)
        } else {
            low as i64 - OFFSET_BIAS
        }
    }

    /// The single offset valid for every wall-clock time of `date`, when the day has no
    /// transition: checked at the start, middle and end of the day (zones change offset at
    /// most once a day).
    fn whole_day_offset(&self, date: NaiveDate) -> Option<i64> {
        let at = |h, m, s| match self
            .tz
            .offset_from_local_datetime(&date.and_hms_opt(h, m, s)?)
        {
            LocalResult::Single(o) => Some(o.fix().local_minus_utc() as i64),
            _ => None,
        };
        let first = at(0, 0, 0)?;
        (at(12, 0, 0)? == first && at(23, 59, 59)? == first).then_some(first)
    }

    fn resolve_offset(&self, local: NaiveDateTime) -> i64 {
        match self.tz.offset_from_local_datetime(&local) {
            LocalResult::Single(o) => o.fix().local_minus_utc() as i64,
            LocalResult::Ambiguous(a, b) => {
                // The earlier instant has the larger offset (local - offset is smaller).
                let (a, b) = (a.fix().local_minus_utc(), b.fix().local_minus_utc());
                a.max(b) as i64
            }
            LocalResult::None => {
                // In a gap: read the wall clock with the offset in force just before the gap.
                // The resulting instant is after the transition, where it reads `local + gap`.
                let before = self
                    .tz
                    .offset_from_utc_datetime(&(local - chrono::Duration::days(1)))
                    .fix()
                    .local_minus_utc();
                before as i64
            }
        }
    }
}

impl Clone for SourceTimeZone {
    fn clone(&self) -> Self {
        Self::new(self.tz)
    }
}

impl Default for SourceTimeZone {
    fn default() -> Self {
        Self::utc()
    }
}

impl fmt::Debug for SourceTimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SourceTimeZone")
            .field(&self.tz.name())
            .finish()
    }
}

impl PartialEq for SourceTimeZone {
    fn eq(&self, other: &Self) -> bool {
        self.tz == other.tz
    }
}

/// A datetime as written in the source: the wall-clock time and, when the text had one, its
/// explicit UTC offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedDateTime {
    /// The wall-clock date and time as written.
    pub local: NaiveDateTime,
    /// The explicit offset (`Z` is `+00:00`), or `None` for a zone-less value.
    pub offset: Option<FixedOffset>,
}

impl ParsedDateTime {
    /// The UTC instant: with the explicit offset when there is one, else in `zone`.
    pub fn to_utc(&self, zone: &SourceTimeZone) -> DateTime<Utc> {
        match self.offset {
            Some(o) => {
                (self.local - chrono::Duration::seconds(o.local_minus_utc() as i64)).and_utc()
            }
            None => zone.to_utc(self.local),
        }
    }
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
#[inline]
fn date_prefix(b: &[u8]) -> Result<NaiveDate, bool> {
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(false);
    }
    let year = (|| Some(two_digits(b, 0)? * 100 + two_digits(b, 2)?))().ok_or(false)?;
    let month = two_digits(b, 5).ok_or(false)?;
    let day = two_digits(b, 8).ok_or(false)?;
    NaiveDate::from_ymd_opt(year as i32, month, day).ok_or(true)
}

/// Parses a date `YYYY-MM-DD` (exactly).
///
/// ```
/// use sync_core::convert::parse_date;
/// assert_eq!(parse_date("2024-02-29").unwrap().to_string(), "2024-02-29");
/// assert!(parse_date("2023-02-29").is_err());
/// ```
pub fn parse_date(s: &str) -> Result<NaiveDate, ConvertError> {
    let b = s.as_bytes();
    match date_prefix(b) {
        Ok(d) if b.len() == 10 => Ok(d),
        Err(true) => Err(ConvertError::new(
            "not a valid calendar date (expected YYYY-MM-DD)",
        )),
        _ => Err(ConvertError::new("expected a date YYYY-MM-DD")),
    }
}

/// Parses any accepted datetime form (see the [module docs](self)) without applying a zone.
///
/// ```
/// use sync_core::convert::parse_datetime;
/// let p = parse_datetime("2002-12-10T16:28:52.000001").unwrap();
/// assert_eq!(p.local.to_string(), "2002-12-10 16:28:52.000001");
/// assert!(p.offset.is_none());
/// let p = parse_datetime("2002-12-10T16:28:52-0500").unwrap();
/// assert_eq!(p.offset.unwrap().local_minus_utc(), -5 * 3600);
/// ```
pub fn parse_datetime(s: &str) -> Result<ParsedDateTime, ConvertError> {
    let b = s.as_bytes();
    let date = match date_prefix(b) {
        Ok(d) => d,
        Err(true) => return Err(ConvertError::new("not a valid calendar date")),
        Err(false) => return Err(ConvertError::new(DATETIME_EXPECTED)),
    };
    if b.len() == 10 {
        return Ok(ParsedDateTime {
            local: date.and_time(NaiveTime::MIN),
            offset: None,
        });
    }
    let bad = || ConvertError::new(DATETIME_EXPECTED);
    if !matches!(b[10], b'T' | b't' | b' ') {
        return Err(bad());
    }
    if b.len() < 19 || b[13] != b':' || b[16] != b':' {
        return Err(bad());
    }
    let hour = two_digits(b, 11).ok_or_else(bad)?;
    let minute = two_digits(b, 14).ok_or_else(bad)?;
    let second = two_digits(b, 17).ok_or_else(bad)?;
    let mut i = 19;
    let mut nanos = 0u32;
    if i < b.len() && (b[i] == b'.' || b[i] == b',') {
        i += 1;
        let start = i;
        while i < b.len() && i - start < 9 {
            match digit(b[i]) {
                Some(d) => {
                    nanos = nanos * 10 + d;
                    i += 1;
                }
                None => break,
            }
        }
        let n = i - start;
        if n == 0 {
            return Err(bad());
        }
        if i < b.len() && digit(b[i]).is_some() {
            return Err(ConvertError::new(
                "more than 9 fraction digits in the datetime",
            ));
        }
        nanos *= 10u32.pow((9 - n) as u32);
        if !nanos.is_multiple_of(1000) {
            return Err(ConvertError::new(
                "finer than microsecond precision; destinations keep microseconds and values are never rounded",
            ));
        }
    }
    let offset = if i == b.len() {
        None
    } else {
        let o = parse_offset(&b[i..]).ok_or_else(bad)?;
        i = b.len();
        Some(o)
    };
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
        offset,
    })
}

/// `Z`, `±hh`, `±hhmm`, `±hh:mm` (the whole of `b`).
fn parse_offset(b: &[u8]) -> Option<FixedOffset> {
    match b {
        [b'Z' | b'z'] => FixedOffset::east_opt(0),
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (h, m) = match rest.len() {
                2 => (two_digits(rest, 0)?, 0),
                4 => (two_digits(rest, 0)?, two_digits(rest, 2)?),
                5 if rest[2] == b':' => (two_digits(rest, 0)?, two_digits(rest, 3)?),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let secs = (h * 3600 + m * 60) as i32;
            FixedOffset::east_opt(if *sign == b'-' { -secs } else { secs })
        }
        _ => None,
    }
}

/// Parses a datetime (any accepted form) into a UTC instant; zone-less values are wall-clock
/// times in `zone`.
///
/// ```
/// use sync_core::convert::{parse_timestamp, SourceTimeZone};
/// let chicago = SourceTimeZone::from_name("America/Chicago").unwrap();
/// let t = parse_timestamp("2026-07-01 08:00:00", &chicago).unwrap();
/// assert_eq!(t.to_rfc3339(), "2026-07-01T13:00:00+00:00");
/// let t = parse_timestamp("2026-07-01T08:00:00Z", &chicago).unwrap();
/// assert_eq!(t.to_rfc3339(), "2026-07-01T08:00:00+00:00");
/// ```
pub fn parse_timestamp(s: &str, zone: &SourceTimeZone) -> Result<DateTime<Utc>, ConvertError> {
    parse_datetime(s).map(|p| p.to_utc(zone))
}

/// Largest mantissa a [`Decimal`] holds (2^96 - 1).
const DECIMAL_MAX_MANTISSA: u128 = (1u128 << 96) - 1;

/// Parses exact decimal text for `DECIMAL(precision, scale)`; the result carries the column's
/// scale (`12.5` in `DECIMAL(18,2)` is `12.50`).
///
/// Accepts `[+-]digits[.digits][(e|E)[+-]digits]`, `.5` and `5.`; rejects thousands separators
/// and anything else. More fraction digits than `scale` (other than trailing zeros) and more
/// integer digits than `precision - scale` are errors: nothing is rounded.
///
/// ```
/// use sync_core::convert::parse_decimal;
/// assert_eq!(parse_decimal("12345678901234567890.12", 38, 2).unwrap().to_string(), "12345678901234567890.12");
/// assert_eq!(parse_decimal("1.5e3", 10, 2).unwrap().to_string(), "1500.00");
/// assert!(parse_decimal("1,234.50", 10, 2).is_err());
/// assert!(parse_decimal("0.125", 10, 2).is_err());
/// assert!(parse_decimal("123456789", 10, 2).is_err());
/// ```
pub fn parse_decimal(s: &str, precision: u8, scale: u8) -> Result<Decimal, ConvertError> {
    let b = s.as_bytes();
    let bad = || {
        ConvertError::new(
            "expected a decimal number like -1234.56, .5 or 1.5E3 (digits, one optional point, \
             optional exponent; no thousands separators)",
        )
    };
    let mut i = 0;
    let negative = match b.first() {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    // Significant digits without trailing zeros; zeros after the last nonzero digit are
    // counted in `pending_zeros` so a long run of trailing zeros never overflows.
    let mut mantissa: u128 = 0;
    let mut sig_digits: u32 = 0;
    let mut pending_zeros: i64 = 0;
    let mut frac_digits: i64 = 0;
    let mut any_digit = false;
    let mut in_frac = false;
    while i < b.len() {
        let c = b[i];
        if let Some(d) = digit(c) {
            any_digit = true;
            if in_frac {
                frac_digits += 1;
            }
            if d == 0 {
                if mantissa != 0 {
                    pending_zeros += 1;
                }
            } else {
                let grow = pending_zeros as u32 + 1;
                sig_digits += grow;
                if sig_digits > 38 {
                    return Err(too_many_digits());
                }
                mantissa = mantissa * 10u128.pow(grow) + d as u128;
                pending_zeros = 0;
            }
        } else if c == b'.' && !in_frac {
            in_frac = true;
        } else {
            break;
        }
        i += 1;
    }
    if !any_digit {
        return Err(bad());
    }
    let mut exponent: i64 = 0;
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        let exp_negative = match b.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        while i < b.len() {
            let d = digit(b[i]).ok_or_else(bad)?;
            exponent = (exponent * 10 + d as i64).min(100_000);
            i += 1;
        }
        if i == start {
            return Err(bad());
        }
        if exp_negative {
            exponent = -exponent;
        }
    }
    if i != b.len() {
        return Err(bad());
    }
    // value = mantissa * 10^exp10
    let exp10 = pending_zeros - frac_digits + exponent;
    decimal_from_parts(negative, mantissa, sig_digits, exp10, precision, scale)
}

/// `±mantissa × 10^exp10` checked against `DECIMAL(precision, scale)`; `sig_digits` is the
/// number of digits of `mantissa`.
fn decimal_from_parts(
    negative: bool,
    mantissa: u128,
    sig_digits: u32,
    exp10: i64,
    precision: u8,
    scale: u8,
) -> Result<Decimal, ConvertError> {
    let (p, s) = (precision as i64, scale as i64);
    if mantissa == 0 {
        return Ok(Decimal::new(0, (scale as u32).min(Decimal::MAX_SCALE)));
    }
    let frac_needed = (-exp10).max(0);
    if frac_needed > s {
        return Err(ConvertError::new(format!(
            "has {frac_needed} digits after the decimal point but DECIMAL({p},{s}) allows {s}; \
             values are never rounded"
        )));
    }
    let int_digits = (sig_digits as i64 + exp10).max(0);
    if int_digits > p - s {
        return Err(ConvertError::new(format!(
            "precision overflow: {int_digits} digits before the decimal point but DECIMAL({p},{s}) \
             allows at most {}",
            p - s
        )));
    }
    let sign = |m: u128| if negative { -(m as i128) } else { m as i128 };
    // At the column scale when it fits (nearly always), else at the smallest exact scale.
    let at_column_scale = mantissa.checked_mul(10u128.pow((exp10 + s) as u32));
    if let Some(m) = at_column_scale.filter(|m| *m <= DECIMAL_MAX_MANTISSA && s <= 28) {
        return Ok(Decimal::from_i128_with_scale(sign(m), s as u32));
    }
    let (m, sc) = if exp10 >= 0 {
        (mantissa.checked_mul(10u128.pow(exp10 as u32)), 0)
    } else {
        (Some(mantissa), (-exp10) as u32)
    };
    match m.filter(|m| *m <= DECIMAL_MAX_MANTISSA && sc <= 28) {
        Some(m) => Ok(Decimal::from_i128_with_scale(sign(m), sc)),
        None => Err(too_many_digits()),
    }
}

fn too_many_digits() -> ConvertError {
    ConvertError::new(
        "has more than 28 significant digits, the most this library holds exactly; \
         values are never rounded",
    )
}

/// Parses integer text `[+-]digits`, allowing a fraction of zeros only (`12.00`).
fn parse_integer(s: &str) -> Result<i64, ConvertError> {
    let b = s.as_bytes();
    let bad =
        || ConvertError::new("expected a whole number like -42 (digits with an optional sign)");
    let (negative, mut i) = match b.first() {
        Some(b'-') => (true, 1),
        Some(b'+') => (false, 1),
        _ => (false, 0),
    };
    let start = i;
    let mut v: i128 = 0;
    while i < b.len() {
        match digit(b[i]) {
            Some(d) => {
                v = (v * 10 + d as i128).min(i128::from(u64::MAX) + 1);
                i += 1;
            }
            None => break,
        }
    }
    let mut any = i > start;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() {
            match b[i] {
                b'0' => {
                    any = true;
                    i += 1;
                }
                b'1'..=b'9' => {
                    return Err(ConvertError::new(
                        "has a fractional part; expected a whole number",
                    ))
                }
                _ => return Err(bad()),
            }
        }
    }
    if !any || i != b.len() {
        return Err(bad());
    }
    let v = if negative { -v } else { v };
    i64::try_from(v).map_err(|_| out_of_range(ColumnType::BigInt))
}

fn int_value(v: i64, ty: ColumnType) -> Result<Value, ConvertError> {
    match ty {
        ColumnType::Int => i32::try_from(v)
            .map(Value::Int)
            .map_err(|_| out_of_range(ty)),
        _ => Ok(Value::BigInt(v)),
    }
}

fn out_of_range(ty: ColumnType) -> ConvertError {
    ConvertError::new(if ty == ColumnType::Int {
        "out of range for INT (-2147483648 to 2147483647)"
    } else {
        "out of range for BIGINT (-9223372036854775808 to 9223372036854775807)"
    })
}

/// A `fmt::Write` into a fixed stack buffer (JSON numbers' text without allocating).
struct StackText {
    buf: [u8; 64],
    len: usize,
}

impl fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

fn with_number_text<R>(n: &serde_json::Number, f: impl FnOnce(&str) -> R) -> R {
    use fmt::Write as _;
    let mut t = StackText {
        buf: [0; 64],
        len: 0,
    };
    if write!(t, "{n}").is_ok() {
        // Only ASCII was written.
        if let Ok(s) = std::str::from_utf8(&t.buf[..t.len]) {
            return f(s);
        }
    }
    f(&n.to_string())
}

const FLAG_EXPECTED: &str = "expected a flag: true or false, 1 or 0";

fn parse_bool(s: &str) -> Result<bool, ConvertError> {
    match s {
        "1" => Ok(true),
        "0" => Ok(false),
        _ if s.eq_ignore_ascii_case("true") => Ok(true),
        _ if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(ConvertError::new(FLAG_EXPECTED)),
    }
}

/// Converts text (a JSON string, or text produced by a transform) to a value of type `ty`.
///
/// For every type except `STRING`, an empty text is [`Value::Null`]; other text is taken as
/// written (surrounding whitespace is an error).
pub fn convert_str(s: &str, ty: ColumnType, zone: &SourceTimeZone) -> Result<Value, ConvertError> {
    if ty == ColumnType::String {
        return Ok(Value::String(s.to_owned()));
    }
    let t = s;
    if t.is_empty() {
        return Ok(Value::Null);
    }
    match ty {
        ColumnType::String => unreachable!("handled above"),
        ColumnType::Int | ColumnType::BigInt => int_value(parse_integer(t)?, ty),
        ColumnType::Decimal { precision, scale } => {
            parse_decimal(t, precision, scale).map(Value::Decimal)
        }
        ColumnType::Double => match t.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Value::Double(v)),
            _ => Err(ConvertError::new(
                "expected a finite number like 1.5 or -2.5E3",
            )),
        },
        ColumnType::Boolean => parse_bool(t).map(Value::Bool),
        ColumnType::Date => {
            let b = t.as_bytes();
            match date_prefix(b) {
                Ok(d) if b.len() == 10 => Ok(Value::Date(d)),
                Err(true) => Err(ConvertError::new(
                    "not a valid calendar date (expected YYYY-MM-DD)",
                )),
                _ => parse_datetime(t)
                    .map(|p| Value::Date(p.local.date()))
                    .map_err(|_| ConvertError::new(DATE_EXPECTED)),
            }
        }
        ColumnType::Timestamp => parse_timestamp(t, zone).map(Value::Timestamp),
    }
}

/// Converts a JSON source value to a value of type `ty` (see the [module docs](self) for what
/// each type accepts). JSON `null` is [`Value::Null`] for every type.
pub fn convert(
    v: &serde_json::Value,
    ty: ColumnType,
    zone: &SourceTimeZone,
) -> Result<Value, ConvertError> {
    use serde_json::Value as J;
    match v {
        J::Null => Ok(Value::Null),
        J::String(s) => convert_str(s, ty, zone),
        J::Bool(b) => match ty {
            ColumnType::Boolean => Ok(Value::Bool(*b)),
            ColumnType::String => Ok(Value::String(if *b { "true" } else { "false" }.to_owned())),
            _ => Err(ConvertError::new(format!(
                "expected {}, got a boolean",
                expected(ty)
            ))),
        },
        J::Number(n) => convert_number(n, ty),
        J::Array(_) => Err(ConvertError::new(format!(
            "expected {}, got a JSON array",
            expected(ty)
        ))),
        J::Object(_) => Err(ConvertError::new(format!(
            "expected {}, got a JSON object",
            expected(ty)
        ))),
    }
}

fn convert_number(n: &serde_json::Number, ty: ColumnType) -> Result<Value, ConvertError> {
    match ty {
        ColumnType::String => Ok(Value::String(n.to_string())),
        ColumnType::Int | ColumnType::BigInt => {
            if let Some(i) = n.as_i64() {
                return int_value(i, ty);
            }
            if n.is_u64() {
                return Err(out_of_range(ty));
            }
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() != 0.0 {
                return Err(ConvertError::new(
                    "has a fractional part; expected a whole number",
                ));
            }
            // Integral floats are exact up to 2^53; beyond that the JSON parser already lost digits.
            if f.abs() > 9_007_199_254_740_992.0 {
                return Err(ConvertError::new(
                    "too large to be exact as a JSON number with a fraction or exponent; send it as a string",
                ));
            }
            int_value(f as i64, ty)
        }
        ColumnType::Decimal { precision, scale } => {
            if let Some(i) = n.as_i64() {
                let m = i.unsigned_abs() as u128;
                let digits = m.checked_ilog10().map_or(1, |d| d + 1);
                return decimal_from_parts(i < 0, m, digits, 0, precision, scale)
                    .map(Value::Decimal);
            }
            with_number_text(n, |t| parse_decimal(t, precision, scale)).map(Value::Decimal)
        }
        ColumnType::Double => n
            .as_f64()
            .filter(|f| f.is_finite())
            .map(Value::Double)
            .ok_or_else(|| ConvertError::new("expected a finite number")),
        ColumnType::Boolean => match (n.as_u64(), n.as_f64()) {
            (Some(1), _) => Ok(Value::Bool(true)),
            (Some(0), _) => Ok(Value::Bool(false)),
            _ => Err(ConvertError::new(FLAG_EXPECTED)),
        },
        ColumnType::Date | ColumnType::Timestamp => Err(ConvertError::new(format!(
            "expected {}, got a number",
            expected(ty)
        ))),
    }
}

fn expected(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::String => "text",
        ColumnType::BigInt | ColumnType::Int => "a whole number",
        ColumnType::Decimal { .. } => "a decimal number",
        ColumnType::Double => "a number",
        ColumnType::Boolean => "a flag (true/false, 1/0)",
        ColumnType::Date => "a date YYYY-MM-DD",
        ColumnType::Timestamp => "an ISO 8601 datetime",
    }
}

/// How a source writes its field names and values: the mapping's extension point for value
/// parsing.
///
/// A [`MappingMapper`](crate::MappingMapper) asks its format to convert every source value to
/// its column's type and, when a column's source field is not a record key as written, to say
/// which name each record key stands for. [`StandardFormat`] (the default) accepts the
/// standard forms of the [module docs](self) and takes keys as written. A connector whose
/// source has other habits implements this trait, normally by normalising its own forms and
/// delegating the rest to [`convert`] and [`convert_str`], and passes it to
/// [`Mapping::compile_with`](crate::Mapping::compile_with).
///
/// An implementation must be deterministic (the same input gives the same output) and must
/// keep money exact: never route a `DECIMAL` through `f64`, and reject rather than round.
///
/// ```
/// use std::sync::Arc;
/// use sync_core::convert::{convert_str, ConvertError, FieldFormat, SourceTimeZone};
/// use sync_core::{ColumnType, Mapper, Mapping, Value};
///
/// /// A source that writes flags as `yes`/`no`.
/// #[derive(Debug)]
/// struct YesNo;
///
/// impl FieldFormat for YesNo {
///     fn convert_text(&self, text: &str, ty: ColumnType, zone: &SourceTimeZone) -> Result<Value, ConvertError> {
///         match (ty, text) {
///             (ColumnType::Boolean, "yes") => Ok(Value::Bool(true)),
///             (ColumnType::Boolean, "no") => Ok(Value::Bool(false)),
///             _ => convert_str(text, ty, zone),
///         }
///     }
/// }
///
/// let mapping: Mapping = serde_json::from_value(serde_json::json!({
///     "table": "t", "columns": [{"column": "active", "source": "ACTIVE", "type": "BOOLEAN"}]
/// })).unwrap();
/// let mapper = mapping.compile_with(Arc::new(YesNo)).unwrap();
/// let row = mapper.map(&serde_json::json!({"ACTIVE": "yes"}).try_into().unwrap()).unwrap();
/// assert_eq!(row[0], Value::Bool(true));
/// ```
pub trait FieldFormat: Send + Sync + fmt::Debug {
    /// Converts a JSON source value to a value of type `ty`; JSON `null` must be
    /// [`Value::Null`]. The default sends strings to [`Self::convert_text`] and everything
    /// else to [`convert`].
    fn convert(
        &self,
        value: &serde_json::Value,
        ty: ColumnType,
        zone: &SourceTimeZone,
    ) -> Result<Value, ConvertError> {
        match value {
            serde_json::Value::String(s) => self.convert_text(s, ty, zone),
            other => convert(other, ty, zone),
        }
    }

    /// Converts text (a JSON string, or text produced by a transform) to a value of type
    /// `ty`. The default is [`convert_str`].
    fn convert_text(
        &self,
        text: &str,
        ty: ColumnType,
        zone: &SourceTimeZone,
    ) -> Result<Value, ConvertError> {
        convert_str(text, ty, zone)
    }

    /// The field name a record key stands for, when a source decorates its names (a record
    /// alias `A.VENDOR_ID` for `VENDOR_ID`, for example). Used only when a column's source is
    /// not a record key as written; both the key and the column's source go through it. The
    /// default is the key itself.
    fn field_name<'k>(&self, key: &'k str) -> &'k str {
        key
    }
}

/// The standard [`FieldFormat`]: the forms of the [module docs](self), keys as written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StandardFormat;

impl FieldFormat for StandardFormat {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn ts(s: &str, zone: &str) -> DateTime<Utc> {
        let zone = SourceTimeZone::from_name(zone).unwrap();
        parse_timestamp(s, &zone).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn every_standard_datetime_form_parses_to_the_same_instant() {
        let want = utc("2002-12-10T16:28:52.123456Z");
        for s in [
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
            "2002-12-10T16:28:52.000000",
            "2002-12-10T16:28:52.0",
            "2002-12-10T16:28:52",
            "2002-12-10 16:28:52",
        ] {
            assert_eq!(ts(s, "UTC"), whole, "{s}");
        }
        assert_eq!(
            ts("2002-12-10T16:28:52.5", "UTC"),
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
            "2002-12-10-16.28.52",
            "2002-12-10-16.28.52.000000",
            "2002-12-10-16:28:52",
            " 2002-12-10T16:28:52",
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
        assert!(err.reason().contains("YYYY-MM-DDTHH:MM:SS"), "{err}");
    }

    #[test]
    fn zone_less_values_are_wall_clock_in_the_source_zone() {
        assert_eq!(
            ts("2026-01-15T10:00:00", "America/New_York"),
            utc("2026-01-15T15:00:00Z")
        );
        assert_eq!(
            ts("2026-07-15T10:00:00", "America/New_York"),
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
            ts("2026-03-08T02:30:00", "America/New_York"),
            utc("2026-03-08T07:30:00Z")
        );
        assert_eq!(
            ts("2026-03-08T03:30:00", "America/New_York"),
            utc("2026-03-08T07:30:00Z")
        );
        assert_eq!(
            ts("2026-03-08T01:59:59", "America/New_York"),
            utc("2026-03-08T06:59:59Z")
        );
        assert_eq!(
            ts("2026-11-01T01:30:00", "America/New_York"),
            utc("2026-11-01T05:30:00Z")
        );
        assert_eq!(
            ts("2026-11-01T02:00:00", "America/New_York"),
            utc("2026-11-01T07:00:00Z")
        );
        assert_eq!(
            ts("2026-11-01T00:59:59", "America/New_York"),
            utc("2026-11-01T04:59:59Z")
        );
        // Berlin 2026: 03-29 02:00 CET -> 03:00 CEST; 10-25 03:00 CEST -> 02:00 CET.
        assert_eq!(
            ts("2026-03-29T02:30:00", "Europe/Berlin"),
            utc("2026-03-29T01:30:00Z")
        );
        assert_eq!(
            ts("2026-03-29T02:00:00", "Europe/Berlin"),
            utc("2026-03-29T01:00:00Z")
        );
        assert_eq!(
            ts("2026-10-25T02:30:00", "Europe/Berlin"),
            utc("2026-10-25T00:30:00Z")
        );
        assert_eq!(
            ts("2026-10-25T03:00:00", "Europe/Berlin"),
            utc("2026-10-25T02:00:00Z")
        );
    }

    #[test]
    fn dst_rules_hold_when_the_day_is_already_cached() {
        let zone = SourceTimeZone::from_name("America/New_York").unwrap();
        for _ in 0..3 {
            let t = |s| parse_timestamp(s, &zone).unwrap();
            assert_eq!(t("2026-03-08T02:30:00"), utc("2026-03-08T07:30:00Z"));
            assert_eq!(t("2026-03-08T12:00:00"), utc("2026-03-08T16:00:00Z"));
            assert_eq!(t("2026-11-01T01:30:00"), utc("2026-11-01T05:30:00Z"));
            assert_eq!(t("2026-11-01T12:00:00"), utc("2026-11-01T17:00:00Z"));
            assert_eq!(t("2026-11-02T01:30:00"), utc("2026-11-02T06:30:00Z"));
        }
    }

    #[test]
    fn the_day_cache_gives_the_same_answers_as_the_zone() {
        let zone = SourceTimeZone::from_name("America/New_York").unwrap();
        let start = NaiveDate::from_ymd_opt(2025, 12, 1)
            .unwrap()
            .and_hms_opt(0, 17, 0)
            .unwrap();
        for round in 0..2 {
            for h in (0..24 * 500).step_by(7) {
                let local = start + chrono::Duration::hours(h);
                let want = match zone.tz().from_local_datetime(&local) {
                    LocalResult::Single(t) => t.with_timezone(&Utc),
                    LocalResult::Ambiguous(a, b) => a.min(b).with_timezone(&Utc),
                    LocalResult::None => continue,
                };
                assert_eq!(zone.to_utc(local), want, "{local} round {round}");
            }
        }
    }

    #[test]
    fn dates_accept_datetimes_and_take_the_written_date() {
        let z = SourceTimeZone::from_name("America/New_York").unwrap();
        let d = |s: &str| convert(&json!(s), ColumnType::Date, &z);
        let want = Value::Date(NaiveDate::from_ymd_opt(2024, 1, 15).unwrap());
        for s in [
            "2024-01-15",
            "2024-01-15T00:00:00",
            "2024-01-15T23:30:00-05:00",
            "2024-01-15 23:59:59.999999",
        ] {
            assert_eq!(d(s).unwrap(), want, "{s}");
        }
        assert!(d("2024-02-30").unwrap_err().reason().contains("calendar"));
        assert!(d("15.01.2024").unwrap_err().reason().contains("YYYY-MM-DD"));
        assert!(d(" 2024-01-15").is_err());
        assert!(d("2024-01-15-23.59.59.999999").is_err());
        assert_eq!(d("").unwrap(), Value::Null);
    }

    #[test]
    fn decimals_are_exact_and_never_rounded() {
        let dec = |v: serde_json::Value, p, s| {
            convert(
                &v,
                ColumnType::Decimal {
                    precision: p,
                    scale: s,
                },
                &SourceTimeZone::utc(),
            )
        };
        let text = |v: serde_json::Value, p, s| dec(v, p, s).unwrap().to_string();
        assert_eq!(
            text(json!("12345678901234567890.12"), 38, 2),
            "12345678901234567890.12"
        );
        assert_eq!(text(json!(0.1), 10, 2), "0.10");
        assert_eq!(text(json!(0.1), 38, 20), "0.10000000000000000000");
        assert_eq!(text(json!(1234.5), 18, 2), "1234.50");
        assert_eq!(text(json!(-42), 18, 2), "-42.00");
        assert_eq!(text(json!(1e20), 38, 2), "100000000000000000000.00");
        assert_eq!(text(json!("+.5"), 5, 2), "0.50");
        assert_eq!(text(json!("-5."), 5, 2), "-5.00");
        assert_eq!(text(json!("1.2500000"), 5, 2), "1.25");
        assert_eq!(text(json!("1.5E3"), 10, 2), "1500.00");
        assert_eq!(text(json!("125e-2"), 10, 2), "1.25");
        assert_eq!(text(json!("-0.00"), 10, 2), "0.00");
        assert_eq!(text(json!("000123.40"), 5, 2), "123.40");
        assert!(dec(json!(" 7 "), 5, 2).is_err());
        // 38 digits do not fit in 96 bits at scale 10, but the value itself does.
        assert_eq!(
            text(json!("123456789012345678901.5"), 38, 10),
            "123456789012345678901.5"
        );

        let reason = |v: serde_json::Value, p, s| dec(v, p, s).unwrap_err().into_reason();
        let r = reason(json!("0.125"), 10, 2);
        assert!(
            r.contains("3 digits after the decimal point") && r.contains("DECIMAL(10,2)"),
            "{r}"
        );
        let r = reason(json!(0.125), 10, 2);
        assert!(r.contains("never rounded"), "{r}");
        let r = reason(json!("123456789.00"), 10, 2);
        assert!(
            r.contains("precision overflow")
                && r.contains("DECIMAL(10,2)")
                && r.contains("at most 8"),
            "{r}"
        );
        let r = reason(json!(123456789), 10, 2);
        assert!(r.contains("precision overflow"), "{r}");
        let r = reason(json!("1e9"), 10, 2);
        assert!(r.contains("precision overflow"), "{r}");
        for bad in [
            "1,234.50", "1 234", "12a", "", "-", ".", "1e", "1e+", "0x10", "1_000", "NaN", "1..2",
            "--1",
        ] {
            if bad.is_empty() {
                continue;
            }
            assert!(dec(json!(bad), 18, 2).is_err(), "{bad}");
        }
        let r = reason(json!("12345678901234567890123456789.5"), 38, 1);
        assert!(r.contains("28 significant digits"), "{r}");
        assert_eq!(dec(json!(""), 18, 2).unwrap(), Value::Null);
        assert!(dec(json!(" "), 18, 2).is_err());
    }

    #[test]
    fn integers_reject_fractions_and_out_of_range() {
        let z = SourceTimeZone::utc();
        let int = |v: serde_json::Value| convert(&v, ColumnType::Int, &z);
        let big = |v: serde_json::Value| convert(&v, ColumnType::BigInt, &z);
        assert_eq!(int(json!(42)).unwrap(), Value::Int(42));
        assert_eq!(int(json!("-42")).unwrap(), Value::Int(-42));
        assert_eq!(int(json!("+7.00")).unwrap(), Value::Int(7));
        assert_eq!(int(json!(7.0)).unwrap(), Value::Int(7));
        assert_eq!(
            big(json!("9223372036854775807")).unwrap(),
            Value::BigInt(i64::MAX)
        );
        assert_eq!(
            big(json!(-9223372036854775808i64)).unwrap(),
            Value::BigInt(i64::MIN)
        );
        assert!(int(json!(2147483648i64))
            .unwrap_err()
            .reason()
            .contains("out of range for INT"));
        assert!(int(json!("2147483648"))
            .unwrap_err()
            .reason()
            .contains("out of range for INT"));
        assert!(big(json!("9223372036854775808"))
            .unwrap_err()
            .reason()
            .contains("out of range for BIGINT"));
        assert!(big(json!(u64::MAX))
            .unwrap_err()
            .reason()
            .contains("out of range for BIGINT"));
        assert!(big(json!("99999999999999999999999999999"))
            .unwrap_err()
            .reason()
            .contains("out of range"));
        assert!(int(json!(1.5)).unwrap_err().reason().contains("fractional"));
        assert!(int(json!("1.5"))
            .unwrap_err()
            .reason()
            .contains("fractional"));
        assert!(big(json!(1e300)).is_err());
        assert!(int(json!("1e3")).is_err());
        assert!(int(json!("12 34")).is_err());
        assert_eq!(int(json!("")).unwrap(), Value::Null);
        assert!(int(json!(" ")).is_err());
    }

    #[test]
    fn flags_doubles_and_strings() {
        let z = SourceTimeZone::utc();
        let b = |v: serde_json::Value| convert(&v, ColumnType::Boolean, &z);
        for (v, want) in [
            (json!("true"), true),
            (json!("True"), true),
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
        for bad in [
            json!("X"),
            json!("Y"),
            json!("N"),
            json!("yes"),
            json!(2),
            json!(0.5),
        ] {
            assert!(
                b(bad.clone())
                    .unwrap_err()
                    .reason()
                    .contains("true or false"),
                "{bad}"
            );
        }
        assert_eq!(b(json!("")).unwrap(), Value::Null);
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
    fn the_standard_format_delegates_to_the_standard_conversion() {
        let z = SourceTimeZone::utc();
        let f = StandardFormat;
        assert_eq!(f.field_name("A.X"), "A.X");
        assert_eq!(
            f.convert(&json!("2026-01-01T00:00:00Z"), ColumnType::Timestamp, &z)
                .unwrap(),
            Value::Timestamp(utc("2026-01-01T00:00:00Z"))
        );
        assert_eq!(
            f.convert(&json!(1), ColumnType::Boolean, &z).unwrap(),
            Value::Bool(true)
        );
        assert_eq!(
            f.convert_text(
                "1.50",
                ColumnType::Decimal {
                    precision: 5,
                    scale: 2
                },
                &z
            )
            .unwrap()
            .to_string(),
            "1.50"
        );
    }

    #[test]
    fn unknown_zone_names_are_rejected() {
        let err = SourceTimeZone::from_name("Mars/Olympus").unwrap_err();
        assert!(err.reason().contains("Mars/Olympus") && err.reason().contains("IANA"));
    }
}
