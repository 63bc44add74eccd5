//! Property tests of the exact conversions in `sync_core::convert`.

use chrono::{NaiveDate, TimeZone, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;
use sync_core::convert::{parse_decimal, parse_timestamp, SourceTimeZone};

proptest! {
    /// Any decimal text with at most `scale` fraction digits parses to exactly that value.
    #[test]
    fn decimal_text_round_trips_exactly(mantissa in -999_999_999_999_999_999i64..999_999_999_999_999_999, digits in 0u32..=6) {
        let d = Decimal::new(mantissa, digits);
        let text = d.to_string();
        let parsed = parse_decimal(&text, 38, 6).unwrap();
        prop_assert_eq!(parsed, d);
        prop_assert_eq!(parsed.scale(), 6);
        // One digit less of scale than needed is refused, never rounded.
        if digits > 0 && mantissa % 10 != 0 {
            prop_assert!(parse_decimal(&text, 38, (digits - 1) as u8).is_err());
        }
    }

    /// JSON numbers convert through their shortest round-trip text: the decimal equals the
    /// text serde_json prints, not the binary expansion of the f64.
    #[test]
    fn json_numbers_keep_their_printed_digits(cents in -10_000_000i64..10_000_000) {
        let f = cents as f64 / 100.0;
        let json = serde_json::json!(f);
        let v = sync_core::convert::convert(&json, sync_core::ColumnType::Decimal { precision: 18, scale: 2 }, &SourceTimeZone::utc()).unwrap();
        prop_assert_eq!(v, sync_core::Value::Decimal(Decimal::new(cents, 2)));
    }

    /// ISO and space-separated forms of the same wall-clock time give the same instant,
    /// equal to chrono's own (earliest) interpretation wherever that time exists.
    #[test]
    fn datetime_forms_agree_with_chrono(days in 0i64..20_000, secs in 0u32..86_400, micros in 0u32..1_000_000) {
        let date = NaiveDate::from_ymd_opt(1990, 1, 1).unwrap() + chrono::Duration::days(days);
        let local = date.and_hms_micro_opt(secs / 3600, secs / 60 % 60, secs % 60, micros).unwrap();
        let zone = SourceTimeZone::from_name("Europe/Berlin").unwrap();
        let iso = local.format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
        let spaced = local.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
        let a = parse_timestamp(&iso, &zone).unwrap();
        prop_assert_eq!(a, parse_timestamp(&spaced, &zone).unwrap());
        if let Some(want) = chrono_tz::Europe::Berlin.from_local_datetime(&local).earliest() {
            prop_assert_eq!(a, want.with_timezone(&Utc));
        }
        let with_z = format!("{iso}Z");
        prop_assert_eq!(parse_timestamp(&with_z, &zone).unwrap(), local.and_utc());
    }
}
