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

/// True when both halves of `w` are at least the narrowest width worth reading.
pub(super) fn can_split(cfg: &StreamConfig, caps: &SourceCapabilities, w: &Window) -> bool {
    let floor = cfg
        .windows
        .min_window
        .max(caps.cursor_granularity.unwrap_or_else(Duration::zero));
    let (a, b) = w.halves();
    a.width() >= floor && b.width() >= floor
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
