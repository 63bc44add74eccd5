//! Load protection for a shared, on-premise PeopleSoft: per-host concurrency and spacing,
//! timeouts, bounded retries, and blackout windows (for example during the payroll run).

use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use sync_core::http::{LimiterConfig, RetryPolicy};
use sync_core::Clock;

use crate::error::ConfigError;

/// Load-protection settings. On by default; the defaults are deliberately gentle.
///
/// The concurrency and gap limits are **per PeopleSoft host** (`host:port`), shared by every
/// client and stream in the process through
/// [`LimiterRegistry::global()`](sync_core::http::LimiterRegistry::global). The first client
/// created for a host fixes its limits; later clients with other limits get the existing
/// ones (and a warning is logged).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadProtection {
    /// Requests in flight at once per host (default 1).
    pub max_concurrent: usize,
    /// Minimum time between the starts of two requests to the host (default 250 ms).
    pub min_gap: Duration,
    /// Retries for 5xx, 429, 408 and timeouts of idempotent requests (QAS GETs). Default:
    /// 3 retries, 2 s doubling to at most 60 s, within 10 minutes. 401/403 are never retried.
    pub retry: RetryPolicy,
    /// Blackout windows during which no request is sent.
    pub blackouts: Vec<BlackoutWindow>,
    /// What to do when a request falls into a blackout window (default: wait).
    pub blackout_action: BlackoutAction,
}

impl Default for LoadProtection {
    fn default() -> Self {
        Self {
            max_concurrent: 1,
            min_gap: Duration::from_millis(250),
            retry: RetryPolicy {
                max_retries: 3,
                initial_backoff: Duration::from_secs(2),
                max_backoff: Duration::from_secs(60),
                total_budget: Duration::from_secs(600),
                jitter: true,
            },
            blackouts: Vec::new(),
            blackout_action: BlackoutAction::Wait,
        }
    }
}

impl LoadProtection {
    pub(crate) fn limiter_config(&self) -> LimiterConfig {
        LimiterConfig {
            max_concurrent: self.max_concurrent.max(1),
            min_gap: self.min_gap,
        }
    }

    /// Adds a blackout window.
    pub fn with_blackout(mut self, w: BlackoutWindow) -> Self {
        self.blackouts.push(w);
        self
    }

    /// If `now` is inside a blackout window: the window's name and when the blackout ends
    /// (following back-to-back windows to the end of the chain).
    pub fn blackout_at(&self, now: DateTime<Utc>) -> Option<(String, DateTime<Utc>)> {
        let mut t = now;
        let mut name = None;
        // Bounded: each step moves `t` forward to a window end.
        for _ in 0..64 {
            match self
                .blackouts
                .iter()
                .find_map(|w| w.end_if_inside(t).map(|e| (w, e)))
            {
                Some((w, end)) if end > t => {
                    name.get_or_insert_with(|| w.name.clone());
                    t = end;
                }
                _ => break,
            }
        }
        name.map(|n| (n, t))
    }

    /// How long to wait before a request may start at `clock.now()`, or `None` outside
    /// blackout windows.
    pub fn blackout_wait(&self, clock: &dyn Clock) -> Option<(String, DateTime<Utc>, Duration)> {
        let now = clock.now();
        self.blackout_at(now).map(|(n, until)| {
            let wait = (until - now).to_std().unwrap_or(Duration::ZERO);
            (n, until, wait)
        })
    }
}

/// What a request does when it falls into a blackout window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BlackoutAction {
    /// Wait (with tokio time) until the window ends, then send.
    #[default]
    Wait,
    /// Do not send: fail with [`Error::Blackout`](crate::Error::Blackout), a
    /// [`Deferred`](sync_core::FailureKind::Deferred) error: the engine skips the stream's
    /// cycle without recording a failure or an attempt, and tries again next cycle.
    Skip,
}

/// A recurring local-time window during which PeopleSoft must not be called, e.g. the
/// payroll run from 18:00 to 23:00 America/Chicago on weekdays.
///
/// `start..end` is half-open in the named IANA time zone; when `end <= start` the window
/// crosses midnight (22:00–02:00). `weekdays` (empty = every day) are the days on which the
/// window *starts*.
///
/// ```
/// use peoplesoft_client::BlackoutWindow;
/// use chrono::Weekday;
///
/// let payroll = BlackoutWindow::new("payroll", "18:00", "23:00", "America/Chicago")
///     .unwrap()
///     .on_weekdays([Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri]);
/// assert_eq!(payroll.name, "payroll");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlackoutWindow {
    /// A name for logs and errors.
    pub name: String,
    /// Local start time.
    pub start: NaiveTime,
    /// Local end time (exclusive); at or before `start` means the next day.
    pub end: NaiveTime,
    /// The time zone the times are in.
    pub time_zone: Tz,
    /// Days on which the window starts; empty means every day.
    pub weekdays: Vec<Weekday>,
}

impl BlackoutWindow {
    /// A daily window from `start` to `end` (`HH:MM` or `HH:MM:SS`) in `time_zone` (IANA name).
    pub fn new(
        name: impl Into<String>,
        start: &str,
        end: &str,
        time_zone: &str,
    ) -> Result<Self, ConfigError> {
        let parse = |field: &'static str, s: &str| {
            NaiveTime::parse_from_str(s, "%H:%M")
                .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M:%S"))
                .map_err(|_| ConfigError::new(field, s, "expected HH:MM or HH:MM:SS"))
        };
        let tz: Tz = time_zone.parse().map_err(|_| {
            ConfigError::new(
                "blackout.time_zone",
                time_zone,
                "not an IANA time zone name",
            )
        })?;
        Ok(Self {
            name: name.into(),
            start: parse("blackout.start", start)?,
            end: parse("blackout.end", end)?,
            time_zone: tz,
            weekdays: Vec::new(),
        })
    }

    /// Restricts the window to the days on which it starts.
    pub fn on_weekdays(mut self, days: impl IntoIterator<Item = Weekday>) -> Self {
        self.weekdays = days.into_iter().collect();
        self
    }

    /// True when `t` is inside the window.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.end_if_inside(t).is_some()
    }

    /// When `t` is inside an occurrence of the window, that occurrence's end (UTC).
    fn end_if_inside(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.time_zone);
        let crosses = self.end <= self.start;
        // An occurrence starting today or (for windows crossing midnight) yesterday.
        let today = local.date_naive();
        let candidates = [Some(today), today.pred_opt()];
        for start_day in candidates.into_iter().flatten() {
            if !self.weekdays.is_empty() && !self.weekdays.contains(&start_day.weekday()) {
                continue;
            }
            let end_day = if crosses {
                start_day.succ_opt()?
            } else {
                start_day
            };
            let start = resolve(self.time_zone, start_day.and_time(self.start))?;
            let end = resolve(self.time_zone, end_day.and_time(self.end))?;
            if start <= t && t < end {
                return Some(end);
            }
        }
        None
    }
}

/// Local → UTC, taking the earlier instant on a DST overlap and skipping forward over a gap.
fn resolve(tz: Tz, local: chrono::NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        chrono::LocalResult::Ambiguous(a, _) => Some(a.with_timezone(&Utc)),
        chrono::LocalResult::None => tz
            .from_local_datetime(&(local + chrono::Duration::hours(1)))
            .earliest()
            .map(|t| t.with_timezone(&Utc)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_core::ManualClock;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn daily_window_in_a_named_zone() {
        // 18:00–23:00 Chicago = 00:00–05:00 UTC next day in winter (UTC-6).
        let w = BlackoutWindow::new("payroll", "18:00", "23:00", "America/Chicago").unwrap();
        assert!(!w.contains(utc("2026-01-14T23:59:59Z")));
        assert!(w.contains(utc("2026-01-15T00:00:00Z")));
        assert!(w.contains(utc("2026-01-15T04:59:59Z")));
        assert!(!w.contains(utc("2026-01-15T05:00:00Z")));
    }

    #[test]
    fn window_crossing_midnight_and_weekdays() {
        let w = BlackoutWindow::new("batch", "22:00", "02:00", "UTC")
            .unwrap()
            .on_weekdays([Weekday::Fri]);
        // Friday 2026-01-16.
        assert!(w.contains(utc("2026-01-16T22:30:00Z")));
        assert!(w.contains(utc("2026-01-17T01:59:00Z"))); // Saturday early, started Friday
        assert!(!w.contains(utc("2026-01-17T22:30:00Z"))); // Saturday evening
        assert!(!w.contains(utc("2026-01-16T01:00:00Z"))); // Friday early, started Thursday
    }

    #[test]
    fn back_to_back_windows_wait_until_the_last_ends() {
        let p = LoadProtection::default()
            .with_blackout(BlackoutWindow::new("a", "18:00", "20:00", "UTC").unwrap())
            .with_blackout(BlackoutWindow::new("b", "20:00", "21:30", "UTC").unwrap());
        let clock = ManualClock::new(utc("2026-03-02T19:00:00Z"));
        let (name, until, wait) = p.blackout_wait(&clock).unwrap();
        assert_eq!(name, "a");
        assert_eq!(until, utc("2026-03-02T21:30:00Z"));
        assert_eq!(wait, Duration::from_secs(9000));
        clock.set(utc("2026-03-02T21:30:00Z"));
        assert!(p.blackout_wait(&clock).is_none());
    }

    #[test]
    fn bad_time_zone_names_the_field() {
        let e = BlackoutWindow::new("x", "18:00", "23:00", "Mars/Olympus").unwrap_err();
        assert_eq!(e.field, "blackout.time_zone");
        let e = BlackoutWindow::new("x", "25:00", "23:00", "UTC").unwrap_err();
        assert_eq!(e.field, "blackout.start");
    }
}
