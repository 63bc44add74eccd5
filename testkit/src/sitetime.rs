//! The stand-in site's clock: its time zone, PeopleSoft's native datetime text form, and the
//! parsing of prompt values.
//!
//! PeopleSoft stores datetimes as zone-less local times of the database server. The sample
//! site (Northwind Forge's head office) runs in [`SITE_TIME_ZONE`] (`America/Chicago`), so every
//! datetime in the dataset and on the wire is Chicago wall-clock time, and every zone-less prompt
//! value is read as Chicago wall-clock time.
//!
//! **Daylight-saving fall-back.** In the hour the clock is set back (e.g. 2025-11-02 01:00–02:00
//! local) two different instants render to the same local text. Like a real PeopleSoft database,
//! the stand-in compares *local* wall-clock values, so a window that touches that hour returns the
//! rows of both instants. The sample dataset deliberately has rows in that hour.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// The time zone of the stand-in PeopleSoft site: `America/Chicago`.
pub const SITE_TIME_ZONE: Tz = chrono_tz::America::Chicago;

/// The IANA name of [`SITE_TIME_ZONE`].
pub const SITE_TIME_ZONE_NAME: &str = "America/Chicago";

/// The `chrono` format of PeopleSoft's native datetime text, `YYYY-MM-DD-HH.MM.SS.ffffff`.
pub const NATIVE_DATETIME_FORMAT: &str = "%Y-%m-%d-%H.%M.%S.%6f";

/// The site-local wall-clock time of a UTC instant.
pub fn to_local(t: DateTime<Utc>) -> NaiveDateTime {
    t.with_timezone(&SITE_TIME_ZONE).naive_local()
}

/// The UTC instant of a site-local wall-clock time.
///
/// An ambiguous time (fall-back hour) maps to the earlier instant; a time that does not exist
/// (spring-forward gap) maps to the instant one hour later on the wall clock.
pub fn local_to_utc(local: NaiveDateTime) -> DateTime<Utc> {
    match SITE_TIME_ZONE.from_local_datetime(&local).earliest() {
        Some(t) => t.with_timezone(&Utc),
        None => {
            let shifted = local + chrono::Duration::hours(1);
            SITE_TIME_ZONE
                .from_local_datetime(&shifted)
                .earliest()
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(|| shifted.and_utc())
        }
    }
}

/// Renders a UTC instant as PeopleSoft native site-local text, `2025-03-04-09.15.00.000000`.
pub fn native(t: DateTime<Utc>) -> String {
    native_local(to_local(t))
}

/// Renders a site-local wall-clock time as PeopleSoft native text.
pub fn native_local(local: NaiveDateTime) -> String {
    let mut s = String::with_capacity(26);
    push_native_local(&mut s, local);
    s
}

/// Appends the native text of `local` to `out` (fast path, no `fmt` machinery).
pub(crate) fn push_native_local(out: &mut String, local: NaiveDateTime) {
    let d = local.date();
    let t = local.time();
    let mut buf = [0u8; 26];
    let y = d.year().clamp(0, 9999) as u32;
    put(&mut buf[0..4], y);
    buf[4] = b'-';
    put(&mut buf[5..7], d.month());
    buf[7] = b'-';
    put(&mut buf[8..10], d.day());
    buf[10] = b'-';
    put(&mut buf[11..13], t.hour());
    buf[13] = b'.';
    put(&mut buf[14..16], t.minute());
    buf[16] = b'.';
    put(&mut buf[17..19], t.second());
    buf[19] = b'.';
    put(&mut buf[20..26], (t.nanosecond() % 1_000_000_000) / 1000);
    // Only ASCII digits and separators were written.
    out.push_str(std::str::from_utf8(&buf).unwrap_or_default());
}

fn put(slot: &mut [u8], mut v: u32) {
    for b in slot.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Renders a date as `YYYY-MM-DD`.
pub fn date_text(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// Parses a prompt value into site-local wall-clock time.
///
/// Accepted forms:
/// - native `YYYY-MM-DD-HH.MM.SS[.ffffff]` (site-local);
/// - a date `YYYY-MM-DD` (site-local midnight);
/// - ISO `YYYY-MM-DDTHH:MM[:SS[.f]]` or the same with a space instead of `T` (site-local);
/// - ISO with `Z` or an offset (`+hh:mm`, `+hhmm`), converted to site-local time. A `+` that
///   arrived as a space because the client did not percent-encode it is also accepted.
///
/// Returns `None` for anything else.
pub fn parse_prompt_datetime(value: &str) -> Option<NaiveDateTime> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        if v.len() == 10 {
            return Some(d.and_time(NaiveTime::MIN));
        }
    }
    for f in ["%Y-%m-%d-%H.%M.%S%.f", "%Y-%m-%d-%H.%M.%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(v, f) {
            return Some(t);
        }
    }
    if let Some(t) = parse_offset(v) {
        return Some(to_local(t));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(v, f) {
            return Some(t);
        }
    }
    // `+05:00` sent without percent-encoding arrives as ` 05:00`.
    if let Some(pos) = v.rfind(' ') {
        if pos > 10 {
            let fixed = format!("{}+{}", &v[..pos], &v[pos + 1..]);
            if let Some(t) = parse_offset(&fixed) {
                return Some(to_local(t));
            }
        }
    }
    None
}

fn parse_offset(v: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(v, f) {
            return Some(t.with_timezone(&Utc));
        }
    }
    if let Some(rest) = v.strip_suffix('Z') {
        for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
            if let Ok(t) = NaiveDateTime::parse_from_str(rest, f) {
                return Some(t.and_utc());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nd(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap()
    }

    #[test]
    fn native_rendering_is_local_with_micros() {
        let t = Utc.with_ymd_and_hms(2025, 7, 1, 17, 5, 9).unwrap()
            + chrono::Duration::microseconds(42);
        assert_eq!(native(t), "2025-07-01-12.05.09.000042");
        let w = Utc.with_ymd_and_hms(2025, 1, 15, 6, 0, 0).unwrap();
        assert_eq!(native(w), "2025-01-15-00.00.00.000000");
    }

    #[test]
    fn prompt_values_in_every_form() {
        let want = nd("2025-07-01 12:05:09.5");
        for v in [
            "2025-07-01-12.05.09.500000",
            "2025-07-01T12:05:09.5",
            "2025-07-01 12:05:09.500",
            "2025-07-01T17:05:09.5Z",
            "2025-07-01T19:05:09.5+02:00",
            "2025-07-01T19:05:09.5+0200",
            "2025-07-01T19:05:09.5 02:00",
        ] {
            assert_eq!(parse_prompt_datetime(v), Some(want), "{v}");
        }
        assert_eq!(
            parse_prompt_datetime("2025-07-01"),
            Some(nd("2025-07-01 00:00:00"))
        );
        assert_eq!(
            parse_prompt_datetime("2025-07-01-12.05.09"),
            Some(nd("2025-07-01 12:05:09"))
        );
        assert_eq!(
            parse_prompt_datetime("2025-07-01T12:05:09"),
            Some(nd("2025-07-01 12:05:09"))
        );
        assert_eq!(
            parse_prompt_datetime("2025-07-01 12:05"),
            Some(nd("2025-07-01 12:05:00"))
        );
        assert_eq!(parse_prompt_datetime("yesterday"), None);
        assert_eq!(parse_prompt_datetime("2025-13-01"), None);
        assert_eq!(parse_prompt_datetime(""), None);
    }

    #[test]
    fn dst_edges() {
        // Fall back: 01:30 local exists twice; the earlier instant is chosen.
        let amb = local_to_utc(nd("2025-11-02 01:30:00"));
        assert_eq!(amb, Utc.with_ymd_and_hms(2025, 11, 2, 6, 30, 0).unwrap());
        // Spring forward: 02:30 local does not exist.
        let gap = local_to_utc(nd("2025-03-09 02:30:00"));
        assert_eq!(gap, Utc.with_ymd_and_hms(2025, 3, 9, 8, 30, 0).unwrap());
    }
}
