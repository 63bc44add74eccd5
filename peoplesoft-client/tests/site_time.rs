//! Windows are correct in the site's time zone: a model of a PeopleSoft site that stamps rows
//! with its local wall-clock time (or local date) and makes them visible only when their
//! transaction commits, read by an engine that plans cycles the way sync-core does (resume
//! `lookback` before the high-water mark, end `settle_lag` before the cycle, windows at most a
//! day), through the real `StreamDefinition::prompt_values`.
//!
//! Property: every row committed within the lookback of its stamp is read by a cycle that
//! starts after it committed — across zones, DST transitions (the repeated fall-back hour),
//! cycle intervals, commit delays, prompt formats and range semantics.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use peoplesoft_client::{PromptFormat, RangeSemantics, StreamDefinition};
use proptest::prelude::*;
use sync_core::Window;

/// A calendar day (year, month, day).
type Day = (i32, u32, u32);

const ZONES: &[(&str, [Day; 2])] = &[
    // Zone, and two days of 2026 with a DST transition (or any days for zones without).
    ("America/Chicago", [(2026, 3, 8), (2026, 11, 1)]),
    ("Europe/London", [(2026, 3, 29), (2026, 10, 25)]),
    ("Australia/Sydney", [(2026, 4, 5), (2026, 10, 4)]),
    ("Asia/Kolkata", [(2026, 3, 8), (2026, 11, 1)]),
    ("UTC", [(2026, 3, 8), (2026, 11, 1)]),
];

fn parse_prompt(s: &str, format: PromptFormat) -> NaiveDateTime {
    match format {
        PromptFormat::Date => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap(),
        PromptFormat::NativeDateTime => {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%d-%H.%M.%S%.6f").unwrap()
        }
        PromptFormat::IsoDateTime => NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").unwrap(),
    }
}

/// What the site stores for a row stamped at `at`: local wall-clock time, or local date.
fn stamp(tz: &Tz, at: DateTime<Utc>, format: PromptFormat) -> NaiveDateTime {
    let local = at.with_timezone(tz).naive_local();
    match format {
        PromptFormat::Date => local.date().and_hms_opt(0, 0, 0).unwrap(),
        // PeopleSoft keeps microseconds.
        _ => {
            local
                - Duration::nanoseconds(i64::from(local.and_utc().timestamp_subsec_nanos() % 1000))
        }
    }
}

fn matches(def: &StreamDefinition, w: &Window, local: NaiveDateTime) -> bool {
    let (f, t) = def.prompt_values(w);
    let (from, to) = (
        parse_prompt(&f, def.prompt_format),
        parse_prompt(&t, def.prompt_format),
    );
    match def.range {
        RangeSemantics::HalfOpen => from <= local && local < to,
        RangeSemantics::InclusiveBetween => from <= local && local <= to,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn every_row_committed_within_the_lookback_is_read_after_it_commits(
        zone in 0..ZONES.len(),
        which in 0..2usize,
        offset_min in -36 * 60i64..36 * 60,
        interval_min in prop::sample::select(vec![5i64, 15, 60, 360, 1440]),
        settle_min in prop::sample::select(vec![0i64, 5]),
        lookback_min in prop::sample::select(vec![30i64, 60, 120]),
        format in prop::sample::select(vec![PromptFormat::Date, PromptFormat::NativeDateTime, PromptFormat::IsoDateTime]),
        inclusive in any::<bool>(),
        rows in prop::collection::vec((0i64..3 * 24 * 3600 * 1_000_000, 0.0f64..1.0), 1..80),
    ) {
        let (name, days) = ZONES[zone];
        let tz: Tz = name.parse().unwrap();
        let (y, m, d) = days[which];
        let transition_day = Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap();
        // The sync starts a day and a half before the transition, give or take.
        let start = transition_day - Duration::hours(36) + Duration::minutes(offset_min);
        let def = StreamDefinition::journal_lines()
            .time_zone(name)
            .unwrap()
            .prompt_format(format)
            .range(if inclusive { RangeSemantics::InclusiveBetween } else { RangeSemantics::HalfOpen });
        let interval = Duration::minutes(interval_min);
        let settle = Duration::minutes(settle_min);
        let configured = Duration::minutes(lookback_min);
        // The engine raises the lookback to what the source asks for (date cursors).
        let lookback = def.min_lookback().map_or(configured, |m| m.max(configured));

        // Cycles every `interval` over four days; each reads [hwm - lookback, now - settle)
        // in windows of at most a day.
        let mut cycles: Vec<(DateTime<Utc>, Vec<Window>)> = Vec::new();
        let mut hwm: Option<DateTime<Utc>> = None;
        let mut now = start + interval;
        while now < start + Duration::days(4) {
            let cap = now - settle;
            let from = hwm.map_or(start, |h| (h - lookback).max(start));
            if from < cap {
                cycles.push((now, Window::new(from, cap).chunks(Duration::days(1))));
                hwm = Some(cap);
            }
            now += interval;
        }
        let last = cycles.last().map(|c| c.0).unwrap();

        for (at_us, delay_frac) in rows {
            let stamped = start + Duration::microseconds(at_us);
            // Committed within the lookback the operator configured.
            let delay = Duration::microseconds(
                (configured.num_microseconds().unwrap() as f64 * delay_frac) as i64,
            );
            let committed = stamped + delay;
            // Only rows whose every chance to be read lies within the simulated span.
            if committed + interval * 2 + settle + Duration::days(1) > last {
                continue;
            }
            let local = stamp(&tz, stamped, format);
            let read = cycles.iter().any(|(t, windows)| {
                *t >= committed && windows.iter().any(|w| matches(&def, w, local))
            });
            prop_assert!(
                read,
                "row stamped {stamped} ({local} local in {name}), committed {committed}, never read after commit \
                 (interval {interval_min}m, settle {settle_min}m, lookback {}m, {format:?}, inclusive {inclusive})",
                lookback.num_minutes()
            );
        }
    }
}
