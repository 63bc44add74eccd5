//! Property tests of PeopleSoft's native datetime form in `peoplesoft_client::values`.

use chrono::{NaiveDate, TimeZone, Utc};
use peoplesoft_client::values::parse_timestamp;
use proptest::prelude::*;
use sync_core::convert::SourceTimeZone;

proptest! {
    /// Native, ISO and space-separated forms of the same wall-clock time give the same instant,
    /// equal to chrono's own (earliest) interpretation wherever that time exists.
    #[test]
    fn datetime_forms_agree_with_chrono(days in 0i64..20_000, secs in 0u32..86_400, micros in 0u32..1_000_000) {
        let date = NaiveDate::from_ymd_opt(1990, 1, 1).unwrap() + chrono::Duration::days(days);
        let local = date.and_hms_micro_opt(secs / 3600, secs / 60 % 60, secs % 60, micros).unwrap();
        let zone = SourceTimeZone::from_name("Europe/Berlin").unwrap();
        let native = local.format("%Y-%m-%d-%H.%M.%S.%6f").to_string();
        let iso = local.format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
        let spaced = local.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
        let a = parse_timestamp(&native, &zone).unwrap();
        prop_assert_eq!(a, parse_timestamp(&iso, &zone).unwrap());
        prop_assert_eq!(a, parse_timestamp(&spaced, &zone).unwrap());
        if let Some(want) = chrono_tz::Europe::Berlin.from_local_datetime(&local).earliest() {
            prop_assert_eq!(a, want.with_timezone(&Utc));
        }
        let with_z = format!("{iso}Z");
        prop_assert_eq!(parse_timestamp(&with_z, &zone).unwrap(), local.and_utc());
    }
}
