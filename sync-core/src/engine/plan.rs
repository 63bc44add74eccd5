//! Window planning: which windows a cycle works on, and in which order.

use chrono::{DateTime, Utc};

use super::config::StreamConfig;
use crate::state::{FailedWindow, StreamState};
use crate::window::{Coverage, Window};

/// Which windows a cycle works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Plan {
    Incremental,
    Replay,
    Range(Window),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Planned {
    pub(super) window: Window,
    pub(super) attempt: u32,
}

pub(super) fn plan_windows(
    st: &StreamState,
    cfg: &StreamConfig,
    cycle_start: DateTime<Utc>,
    plan: Plan,
) -> (Vec<Planned>, Vec<FailedWindow>) {
    let policy = &cfg.windows;
    let mut planned = Vec::new();
    let mut stuck = Vec::new();
    let mut failed: Vec<&FailedWindow> = st.failed.iter().collect();
    failed.sort_by_key(|f| f.window);
    match plan {
        Plan::Range(range) => {
            let range = Window {
                from: range.from,
                to: range.to.min(cycle_start),
            };
            if range.from < range.to {
                planned.extend(
                    range
                        .chunks(policy.max_window)
                        .into_iter()
                        .map(|window| Planned { window, attempt: 1 }),
                );
            }
            return (planned, stuck);
        }
        Plan::Replay => {
            planned.extend(failed.iter().map(|f| Planned {
                window: f.window,
                attempt: f.attempts + 1,
            }));
            return (planned, stuck);
        }
        Plan::Incremental => {}
    }
    for f in &failed {
        if f.is_stuck(cfg.max_attempts) {
            stuck.push((*f).clone());
        } else {
            planned.push(Planned {
                window: f.window,
                attempt: f.attempts + 1,
            });
        }
    }
    let cap = cycle_start - policy.settle_lag;
    if cap <= policy.start {
        return (planned, stuck);
    }
    let resume = match st.committed.high_water_mark() {
        Some(h) => (h - policy.lookback).max(policy.start).min(cap),
        None => policy.start,
    };
    let mut ranges = Vec::new();
    if policy.start < resume {
        ranges.extend(st.committed.gaps(Window::new(policy.start, resume)));
    }
    if resume < cap {
        ranges.push(Window::new(resume, cap));
    }
    // Queued failed windows (stuck ones too) are not read again as part of a new range.
    let mut queued = Coverage::new();
    for f in &failed {
        queued.insert(f.window);
    }
    for r in ranges {
        for gap in queued.gaps(r) {
            planned.extend(
                gap.chunks(policy.max_window)
                    .into_iter()
                    .map(|window| Planned { window, attempt: 1 }),
            );
        }
    }
    (planned, stuck)
}
