//! Truncation: what a page proves about its window, when a window can be split in two, and
//! how split windows prove a row cap the source does not announce.

use chrono::Duration;

use super::config::StreamConfig;
use crate::source::SourceCapabilities;
use crate::state::RowCapKnowledge;
use crate::window::Window;

/// What a page proves about its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Every row of the window is in the page.
    Complete,
    /// The page hit a known cap: rows may be missing.
    Truncated,
    /// The page may have been cut by a cap the source does not announce.
    Ambiguous,
}

/// A window split because its page was [`Verdict::Ambiguous`]: if its descendants together
/// return more rows than it did, the source capped it at `rows`.
#[derive(Debug)]
pub(super) struct Probe {
    pub(super) window: Window,
    pub(super) rows: u64,
    pub(super) sum: u64,
}

/// How far a page of `n` rows (with the source's own truncation flag) proves its window
/// complete, given what is known about the source's cap; records `n` as served afterwards.
pub(super) fn classify(
    caps: &SourceCapabilities,
    know: &mut RowCapKnowledge,
    n: u64,
    truncated: bool,
) -> Verdict {
    let verdict = if truncated {
        Verdict::Truncated
    } else if !caps.silent_row_cap {
        Verdict::Complete
    } else if let Some(k) = caps.declared_row_cap.or(know.detected) {
        if n >= k {
            Verdict::Truncated
        } else {
            Verdict::Complete
        }
    } else if n > 0
        && n >= caps.silent_cap_floor
        && n >= know.largest_page
        && caps.requested_row_cap.is_none_or(|r| know.largest_page < r)
    {
        // No page ever returned more rows than this one: it may have been cut by a cap the
        // source does not announce.
        Verdict::Ambiguous
    } else {
        Verdict::Complete
    };
    know.largest_page = know.largest_page.max(n);
    verdict
}

/// What to do with a page of a window, once [`classify`] judged it: the one bisection rule
/// shared by loads and `verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// The page is complete: take it.
    Take,
    /// The page may be cut: split the window in two halves and read each.
    Split(Verdict),
    /// The page may be cut and the window cannot be split: take it, then read on by key after
    /// its last record (the source pages by key).
    TakeThenPageByKey(Verdict),
    /// The page may be cut, the window cannot be split and the source cannot page by key:
    /// the window cannot be read completely.
    Unreadable(Verdict),
}

/// The [`Step`] for a page of `rows` records of window `w` judged `verdict`.
pub(super) fn next_step(
    cfg: &StreamConfig,
    caps: &SourceCapabilities,
    w: &Window,
    verdict: Verdict,
    rows: u64,
) -> Step {
    if verdict == Verdict::Complete {
        Step::Take
    } else if can_split(cfg, caps, w) {
        Step::Split(verdict)
    } else if caps.key_paging && rows > 0 {
        Step::TakeThenPageByKey(verdict)
    } else {
        Step::Unreadable(verdict)
    }
}

/// The narrowest window worth reading.
pub(super) fn narrowest(cfg: &StreamConfig, caps: &SourceCapabilities) -> Duration {
    cfg.windows
        .min_window
        .max(caps.cursor_granularity.unwrap_or_else(Duration::zero))
}

/// The row count at which a page is certainly cut: the declared or detected cap, else the
/// requested one.
pub(super) fn page_cap(caps: &SourceCapabilities, know: &RowCapKnowledge) -> Option<u64> {
    caps.declared_row_cap
        .or(know.detected)
        .or(caps.requested_row_cap)
}

/// True when both halves of `w` are at least the narrowest width worth reading.
pub(super) fn can_split(cfg: &StreamConfig, caps: &SourceCapabilities, w: &Window) -> bool {
    let floor = narrowest(cfg, caps);
    let (a, b) = w.halves();
    a.width() >= floor && b.width() >= floor
}

/// Rows and width of the complete windows read so far in one run: a measured density.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Density {
    rows: u64,
    micros: i64,
    /// The smallest page that was cut, for sources that flag truncation without naming a cap.
    cut_at: Option<u64>,
}

impl Density {
    /// Notes a page of `rows` rows that had to be split.
    pub(super) fn cut(&mut self, rows: u64) {
        if rows > 0 {
            self.cut_at = Some(self.cut_at.map_or(rows, |c| c.min(rows)));
        }
    }

    /// Counts a complete window of `rows` rows.
    pub(super) fn add(&mut self, w: &Window, rows: u64) {
        self.rows += rows;
        self.micros = self
            .micros
            .saturating_add(w.width().num_microseconds().unwrap_or(i64::MAX));
    }
}

/// The pieces to read `w` in instead of reading it whole, when `w` lies in a window already
/// split for holding more rows than a page: at the density measured on this run's complete
/// windows it would hold more than 80 % of a page again, and reading it whole would only
/// throw a truncated page away and bisect. The pieces are sized for about 60 % of a page
/// (2 to 16 of them, none narrower than a window may be). `None`: read `w` as it is.
///
/// Only how the window is cut changes: every piece is still read and judged on its own.
pub(super) fn presplit(
    cap: Option<u64>,
    floor: Duration,
    w: &Window,
    seen: Density,
) -> Option<Vec<Window>> {
    let cap = cap.or(seen.cut_at).filter(|c| *c > 0)?;
    if seen.rows == 0 || seen.micros <= 0 {
        return None;
    }
    let width = w.width().num_microseconds()?;
    // An estimate of a row count, never a value that is loaded: floating point is fine here.
    let expected = seen.rows as f64 * width as f64 / seen.micros as f64;
    if expected <= 0.8 * cap as f64 {
        return None;
    }
    let floor = floor.num_microseconds().unwrap_or(i64::MAX).max(1);
    let wanted = (expected / (0.6 * cap as f64)).ceil().clamp(2.0, 16.0) as i64;
    let k = wanted.min(width / floor);
    if k < 2 {
        return None;
    }
    // Boundaries at i/k of the width: every piece is at least width/k (never under the floor).
    let at = |i: i64| {
        w.from + Duration::microseconds((i128::from(width) * i128::from(i) / i128::from(k)) as i64)
    };
    Some((0..k).map(|i| Window::new(at(i), at(i + 1))).collect())
}

/// Adds a finished window's rows (`None`: it failed) to every open probe containing it, and
/// closes the probes it finishes. Returns a cap proven by it.
pub(super) fn settle_probes(
    probes: &mut Vec<Probe>,
    window: Window,
    rows: Option<u64>,
) -> Option<u64> {
    let mut detected: Option<u64> = None;
    let inside = |p: &Probe| p.window.from <= window.from && window.to <= p.window.to;
    match rows {
        None => probes.retain(|p| !inside(p)),
        Some(n) => {
            for p in probes.iter_mut().filter(|p| inside(p)) {
                p.sum += n;
                if p.sum > p.rows {
                    detected = Some(detected.map_or(p.rows, |d| d.min(p.rows)));
                }
            }
            probes.retain(|p| !(inside(p) && (p.window.to == window.to || p.sum > p.rows)));
        }
    }
    detected
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn window(hours: i64) -> Window {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        Window::new(t0, t0 + Duration::hours(hours))
    }

    fn seen(rows: u64, hours: i64) -> Density {
        let mut d = Density::default();
        d.add(&window(hours), rows);
        d
    }

    #[test]
    fn a_dense_window_is_cut_for_about_sixty_percent_of_a_page() {
        // 1,000 rows an hour; 24 h hold 24,000 rows: pages of 10,000 -> 4 pieces of 6 h.
        let parts = presplit(Some(10_000), Duration::zero(), &window(24), seen(1_000, 1)).unwrap();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0].width(), Duration::hours(6));
        assert_eq!(parts.first().unwrap().from, window(24).from);
        assert_eq!(parts.last().unwrap().to, window(24).to);
        assert!(parts.windows(2).all(|p| p[0].to == p[1].from));
    }

    #[test]
    fn windows_that_fit_a_page_or_lack_a_measure_are_read_whole() {
        // 8,000 expected of 10,000: not above 80 %.
        assert!(presplit(Some(10_000), Duration::zero(), &window(8), seen(1_000, 1)).is_none());
        assert!(presplit(Some(10_000), Duration::zero(), &window(24), seen(0, 1)).is_none());
        assert!(presplit(None, Duration::zero(), &window(24), seen(1_000, 1)).is_none());
        // A source that only flags truncation: the smallest cut page stands for the cap.
        let mut measured = seen(1_000, 1);
        measured.cut(10_000);
        assert_eq!(
            presplit(None, Duration::zero(), &window(24), measured)
                .unwrap()
                .len(),
            4
        );
    }

    #[test]
    fn pieces_respect_the_narrowest_window_and_the_limit() {
        // 1,000,000 expected: capped at 16 pieces.
        let parts = presplit(
            Some(10_000),
            Duration::zero(),
            &window(1_000),
            seen(1_000, 1),
        );
        assert_eq!(parts.unwrap().len(), 16);
        // Pieces may not be narrower than 8 h: 24 h gives 3.
        let parts = presplit(
            Some(10_000),
            Duration::hours(8),
            &window(24),
            seen(10_000, 1),
        );
        assert_eq!(parts.unwrap().len(), 3);
        // Narrower than two floors: read whole (and bisected as usual if cut).
        assert!(presplit(
            Some(10_000),
            Duration::hours(13),
            &window(24),
            seen(10_000, 1)
        )
        .is_none());
    }
}
