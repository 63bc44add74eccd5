//! Schedules (every N minutes, daily at a time, weekly on a day, in a named time zone) and a
//! runner that never overlaps cycles.
//!
//! ```
//! use sync_core::schedule::Schedule;
//! use chrono::{TimeZone, Utc};
//!
//! let s: Schedule = "daily 02:00 America/Chicago".parse().unwrap();
//! let after = Utc.with_ymd_and_hms(2026, 1, 10, 12, 0, 0).unwrap();
//! // 02:00 in Chicago (UTC-6 in January) is 08:00 UTC the next morning.
//! assert_eq!(s.next_after(after), Utc.with_ymd_and_hms(2026, 1, 11, 8, 0, 0).unwrap());
//!
//! let every: Schedule = "every 15m".parse().unwrap();
//! assert_eq!(every.to_string(), "every 15m");
//! ```

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::engine::StopHandle;

/// When cycles run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Every `every`, on a grid anchored at the Unix epoch (so `every 1h` runs on the hour).
    Interval {
        /// The period.
        every: Duration,
    },
    /// Every day at a local time.
    Daily {
        /// Local time of day.
        at: NaiveTime,
        /// Time zone of `at`.
        tz: Tz,
    },
    /// Every week on a day at a local time.
    Weekly {
        /// Day of the week.
        day: Weekday,
        /// Local time of day.
        at: NaiveTime,
        /// Time zone of `at`.
        tz: Tz,
    },
}

/// A schedule string that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid schedule `{input}`: {reason}; expected `every 15m` / `every 2h` / `every 1d`, `daily 02:00 America/Chicago` or `weekly sun 03:30 Europe/Berlin`")]
pub struct ScheduleError {
    /// The text given.
    pub input: String,
    /// What was wrong.
    pub reason: String,
}

impl Schedule {
    /// The first run time strictly after `t`.
    ///
    /// Local times that do not exist on a day (the spring-forward gap) run at the same wall
    /// time shifted forward by the gap (02:30 in a 02:00→03:00 gap runs at 03:30); ambiguous
    /// local times (the fall-back overlap) run at the first occurrence.
    pub fn next_after(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        match *self {
            Schedule::Interval { every } => {
                let period = every.num_milliseconds().max(1);
                let now = t.timestamp_millis();
                let next = (now.div_euclid(period) + 1) * period;
                DateTime::from_timestamp_millis(next).unwrap_or(t + every)
            }
            Schedule::Daily { at, tz } => {
                let local_day = t.with_timezone(&tz).date_naive();
                (0..3)
                    .map(|d| resolve(tz, local_day + Duration::days(d), at))
                    .find(|c| *c > t)
                    .unwrap_or(t + Duration::days(1))
            }
            Schedule::Weekly { day, at, tz } => {
                let local_day = t.with_timezone(&tz).date_naive();
                (0..15)
                    .map(|d| local_day + Duration::days(d))
                    .filter(|d| d.weekday() == day)
                    .map(|d| resolve(tz, d, at))
                    .find(|c| *c > t)
                    .unwrap_or(t + Duration::weeks(1))
            }
        }
    }
}

/// The UTC instant of local `date at` in `tz`, with the documented gap/overlap rules.
fn resolve(tz: Tz, date: NaiveDate, at: NaiveTime) -> DateTime<Utc> {
    let local = date.and_time(at);
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        LocalResult::None => {
            // Find the gap's length from the offsets on both sides, then shift forward by it.
            let before = tz.offset_from_utc_datetime(&(local - Duration::hours(3)));
            let after = tz.offset_from_utc_datetime(&(local + Duration::hours(3)));
            use chrono::Offset as _;
            let gap = Duration::seconds(i64::from(
                after.fix().local_minus_utc() - before.fix().local_minus_utc(),
            ));
            let shifted = local + gap;
            tz.from_local_datetime(&shifted)
                .earliest()
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(|| {
                    Utc.from_utc_datetime(
                        &(local - Duration::seconds(i64::from(before.fix().local_minus_utc()))),
                    )
                })
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Interval { every } => {
                let s = every.num_seconds();
                if s % 86_400 == 0 {
                    write!(f, "every {}d", s / 86_400)
                } else if s % 3600 == 0 {
                    write!(f, "every {}h", s / 3600)
                } else if s % 60 == 0 {
                    write!(f, "every {}m", s / 60)
                } else {
                    write!(f, "every {s}s")
                }
            }
            Schedule::Daily { at, tz } => write!(f, "daily {} {tz}", at.format("%H:%M")),
            Schedule::Weekly { day, at, tz } => {
                write!(
                    f,
                    "weekly {} {} {tz}",
                    day.to_string().to_lowercase(),
                    at.format("%H:%M")
                )
            }
        }
    }
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| ScheduleError {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let parts: Vec<&str> = input.split_whitespace().collect();
        let time = |s: &str| {
            NaiveTime::parse_from_str(s, "%H:%M").map_err(|_| err("time of day must be HH:MM"))
        };
        let zone = |s: Option<&&str>| -> Result<Tz, ScheduleError> {
            match s {
                None => Ok(Tz::UTC),
                Some(z) => z
                    .parse::<Tz>()
                    .map_err(|_| err(&format!("unknown time zone `{z}` (use an IANA name)"))),
            }
        };
        match parts.first().map(|s| s.to_ascii_lowercase()).as_deref() {
            Some("every") if parts.len() == 2 => {
                let p = parts[1];
                let (num, unit) =
                    p.split_at(p.find(|c: char| !c.is_ascii_digit()).unwrap_or(p.len()));
                let n: i64 = num
                    .parse()
                    .map_err(|_| err("interval must be a whole number with a unit"))?;
                let every = match unit {
                    "s" => Duration::seconds(n),
                    "m" | "min" => Duration::minutes(n),
                    "h" => Duration::hours(n),
                    "d" => Duration::days(n),
                    _ => return Err(err("interval unit must be s, m, h or d")),
                };
                if every < Duration::seconds(1) {
                    return Err(err("interval must be at least one second"));
                }
                Ok(Schedule::Interval { every })
            }
            Some("daily") if (2..=3).contains(&parts.len()) => Ok(Schedule::Daily {
                at: time(parts[1])?,
                tz: zone(parts.get(2))?,
            }),
            Some("weekly") if (3..=4).contains(&parts.len()) => Ok(Schedule::Weekly {
                day: parts[1]
                    .parse::<Weekday>()
                    .map_err(|_| err("unknown day of the week"))?,
                at: time(parts[2])?,
                tz: zone(parts.get(3))?,
            }),
            _ => Err(err("unrecognised form")),
        }
    }
}

impl Serialize for Schedule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Runs cycles on a [`Schedule`] until stopped. A cycle is awaited before the next one is
/// planned, so cycles never overlap; a cycle that overruns its next slot makes the runner skip
/// to the first slot after it ends.
pub struct Runner {
    schedule: Schedule,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Runner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runner")
            .field("schedule", &self.schedule)
            .finish_non_exhaustive()
    }
}

impl Runner {
    /// A runner for `schedule`, reading time from `clock`.
    pub fn new(schedule: Schedule, clock: Arc<dyn Clock>) -> Self {
        Self { schedule, clock }
    }

    /// Waits for each slot and runs `cycle`, until `stop` is triggered (a running cycle is
    /// not interrupted here: pass the same handle to the pipeline so it stops gracefully).
    /// Returns the number of cycles run.
    pub async fn run<F, Fut>(&self, stop: &StopHandle, mut cycle: F) -> u64
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut runs = 0;
        while !stop.is_stopped() {
            let now = self.clock.now();
            let next = self.schedule.next_after(now);
            let wait = (next - now).to_std().unwrap_or_default();
            tracing::info!(next = %next, "next cycle scheduled ({})", self.schedule);
            tokio::select! {
                _ = stop.stopped() => break,
                _ = tokio::time::sleep(wait) => {}
            }
            cycle().await;
            runs += 1;
        }
        runs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::TokioClock;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn parses_and_prints() {
        for s in [
            "every 15m",
            "every 2h",
            "every 1d",
            "every 30s",
            "daily 02:00 America/Chicago",
            "weekly sun 03:30 Europe/Berlin",
        ] {
            assert_eq!(s.parse::<Schedule>().unwrap().to_string(), s);
        }
        for bad in [
            "every",
            "every 5x",
            "daily 25:00",
            "weekly funday 01:00",
            "daily 02:00 Mars/Olympus",
            "hourly",
        ] {
            let e = bad.parse::<Schedule>().unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn interval_runs_on_an_epoch_grid() {
        let s: Schedule = "every 15m".parse().unwrap();
        assert_eq!(
            s.next_after(utc(2026, 1, 1, 10, 7)),
            utc(2026, 1, 1, 10, 15)
        );
        assert_eq!(
            s.next_after(utc(2026, 1, 1, 10, 15)),
            utc(2026, 1, 1, 10, 30)
        );
    }

    #[test]
    fn daily_follows_the_zone_across_dst() {
        let s: Schedule = "daily 02:30 America/New_York".parse().unwrap();
        // Winter: UTC-5.
        assert_eq!(s.next_after(utc(2026, 1, 5, 12, 0)), utc(2026, 1, 6, 7, 30));
        // 2026-03-08 02:30 does not exist (02:00 → 03:00): runs at 03:30 EDT = 07:30 UTC.
        assert_eq!(s.next_after(utc(2026, 3, 7, 12, 0)), utc(2026, 3, 8, 7, 30));
        // Summer: UTC-4.
        assert_eq!(
            s.next_after(utc(2026, 3, 9, 12, 0)),
            utc(2026, 3, 10, 6, 30)
        );
        // 2026-11-01 01:30 happens twice: the first (EDT, UTC-4) wins.
        let s: Schedule = "daily 01:30 America/New_York".parse().unwrap();
        assert_eq!(
            s.next_after(utc(2026, 10, 31, 12, 0)),
            utc(2026, 11, 1, 5, 30)
        );
    }

    #[test]
    fn weekly_picks_the_next_matching_day() {
        let s: Schedule = "weekly sun 03:30 Europe/Berlin".parse().unwrap();
        // 2026-01-07 is a Wednesday; next Sunday 2026-01-11 03:30 CET = 02:30 UTC.
        assert_eq!(s.next_after(utc(2026, 1, 7, 0, 0)), utc(2026, 1, 11, 2, 30));
        assert_eq!(
            s.next_after(utc(2026, 1, 11, 2, 30)),
            utc(2026, 1, 18, 2, 30)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn runner_never_overlaps_and_stops() {
        let clock = Arc::new(TokioClock::starting_at(utc(2026, 1, 1, 0, 0)));
        let runner = Runner::new("every 10m".parse().unwrap(), clock.clone());
        let stop = StopHandle::new();
        let running = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let starts = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (r, st, s2, c) = (running.clone(), starts.clone(), stop.clone(), clock.clone());
        let runs = runner
            .run(&stop, move || {
                let (r, st, s2, c) = (r.clone(), st.clone(), s2.clone(), c.clone());
                async move {
                    assert!(
                        !r.swap(true, std::sync::atomic::Ordering::SeqCst),
                        "overlap"
                    );
                    st.lock().unwrap().push(c.now());
                    // A 25-minute cycle overruns two slots.
                    tokio::time::sleep(std::time::Duration::from_secs(25 * 60)).await;
                    r.store(false, std::sync::atomic::Ordering::SeqCst);
                    if st.lock().unwrap().len() == 3 {
                        s2.stop();
                    }
                }
            })
            .await;
        assert_eq!(runs, 3);
        let starts = starts.lock().unwrap().clone();
        assert_eq!(
            starts,
            vec![
                utc(2026, 1, 1, 0, 10),
                utc(2026, 1, 1, 0, 40),
                utc(2026, 1, 1, 1, 10)
            ]
        );
    }
}
