//! Half-open cursor windows `[from, to)` and sets of them.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// A half-open cursor window `[from, to)` in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Window {
    /// Inclusive start.
    pub from: DateTime<Utc>,
    /// Exclusive end.
    pub to: DateTime<Utc>,
}

impl Window {
    /// A window; `from` must be before `to`.
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>) -> Self {
        debug_assert!(from < to, "empty window {from}..{to}");
        Self { from, to }
    }

    /// Width of the window.
    pub fn width(&self) -> Duration {
        self.to - self.from
    }

    /// True when `t` is inside `[from, to)`.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.from <= t && t < self.to
    }

    /// Splits the window in two halves at its midpoint (rounded down to whole microseconds).
    pub fn halves(&self) -> (Window, Window) {
        let half = self.width() / 2;
        let micros = half.num_microseconds().unwrap_or(i64::MAX / 2);
        let mid = self.from + Duration::microseconds(micros.max(1));
        (Window::new(self.from, mid), Window::new(mid, self.to))
    }

    /// Cuts the window into consecutive pieces at most `max` wide.
    pub fn chunks(&self, max: Duration) -> Vec<Window> {
        let mut out = Vec::new();
        let mut from = self.from;
        while from < self.to {
            let to = if max > Duration::zero() {
                (from + max).min(self.to)
            } else {
                self.to
            };
            out.push(Window::new(from, to));
            from = to;
        }
        out
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}, {})",
            self.from
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            self.to.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        )
    }
}

/// A set of disjoint, sorted windows: the committed coverage of a stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Coverage(Vec<Window>);

impl Coverage {
    /// An empty coverage.
    pub fn new() -> Self {
        Self::default()
    }

    /// The covered intervals, sorted and disjoint (touching intervals are merged).
    pub fn intervals(&self) -> &[Window] {
        &self.0
    }

    /// True when nothing is covered.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The end of the last covered interval: the high-water mark.
    pub fn high_water_mark(&self) -> Option<DateTime<Utc>> {
        self.0.last().map(|w| w.to)
    }

    /// Adds a window, merging overlapping and touching intervals.
    pub fn insert(&mut self, w: Window) {
        let mut merged = w;
        let mut out = Vec::with_capacity(self.0.len() + 1);
        let mut placed = false;
        for cur in self.0.drain(..) {
            if cur.to < merged.from {
                out.push(cur);
            } else if merged.to < cur.from {
                if !placed {
                    out.push(merged);
                    placed = true;
                }
                out.push(cur);
            } else {
                merged = Window {
                    from: merged.from.min(cur.from),
                    to: merged.to.max(cur.to),
                };
            }
        }
        if !placed {
            out.push(merged);
        }
        self.0 = out;
    }

    /// True when `w` lies entirely inside one covered interval.
    pub fn covers(&self, w: &Window) -> bool {
        self.0.iter().any(|c| c.from <= w.from && w.to <= c.to)
    }

    /// The parts of `range` not covered, in order.
    pub fn gaps(&self, range: Window) -> Vec<Window> {
        let mut out = Vec::new();
        let mut at = range.from;
        for c in &self.0 {
            if c.to <= at {
                continue;
            }
            if c.from >= range.to {
                break;
            }
            if c.from > at {
                out.push(Window::new(at, c.from.min(range.to)));
            }
            at = at.max(c.to);
            if at >= range.to {
                break;
            }
        }
        if at < range.to {
            out.push(Window::new(at, range.to));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::hours(h)
    }
    fn w(a: i64, b: i64) -> Window {
        Window::new(t(a), t(b))
    }

    #[test]
    fn insert_merges_overlapping_and_touching() {
        let mut c = Coverage::new();
        c.insert(w(4, 6));
        c.insert(w(0, 2));
        assert_eq!(c.intervals(), &[w(0, 2), w(4, 6)]);
        c.insert(w(2, 3));
        assert_eq!(c.intervals(), &[w(0, 3), w(4, 6)]);
        c.insert(w(3, 4));
        assert_eq!(c.intervals(), &[w(0, 6)]);
        c.insert(w(8, 9));
        c.insert(w(1, 2));
        assert_eq!(c.intervals(), &[w(0, 6), w(8, 9)]);
        assert_eq!(c.high_water_mark(), Some(t(9)));
    }

    #[test]
    fn gaps_are_the_uncovered_parts() {
        let mut c = Coverage::new();
        c.insert(w(2, 4));
        c.insert(w(6, 7));
        assert_eq!(c.gaps(w(0, 10)), vec![w(0, 2), w(4, 6), w(7, 10)]);
        assert_eq!(c.gaps(w(3, 5)), vec![w(4, 5)]);
        assert_eq!(c.gaps(w(2, 4)), vec![]);
        assert!(c.covers(&w(2, 3)));
        assert!(!c.covers(&w(3, 5)));
    }

    #[test]
    fn chunks_and_halves() {
        assert_eq!(
            w(0, 5).chunks(Duration::hours(2)),
            vec![w(0, 2), w(2, 4), w(4, 5)]
        );
        assert_eq!(w(0, 4).halves(), (w(0, 2), w(2, 4)));
    }
}
