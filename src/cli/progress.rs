//! Progress while a cycle, replay or backfill runs: one bar per stream (windows done of
//! planned, rows read) when stderr is a terminal, plain lines on stdout otherwise (logs,
//! cron mail, CI).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sync_core::engine::Progress as Event;

/// How progress is shown (`--progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[non_exhaustive]
pub enum ProgressOutput {
    /// Bars when stderr is a terminal, plain lines otherwise.
    Auto,
    /// Bars on stderr.
    Bar,
    /// One line per committed or failed window on stdout.
    Plain,
}

/// The progress display of one command.
pub(super) struct Progress {
    bars: Option<Arc<Bars>>,
}

struct Bars {
    multi: MultiProgress,
    style: ProgressStyle,
    streams: Mutex<HashMap<String, Stream>>,
}

struct Stream {
    bar: ProgressBar,
    rows: u64,
}

impl Progress {
    pub(super) fn new(mode: ProgressOutput) -> Self {
        let bars = match mode {
            ProgressOutput::Plain => false,
            ProgressOutput::Bar => true,
            ProgressOutput::Auto => std::io::stderr().is_terminal(),
        };
        Self {
            bars: bars.then(|| {
                Arc::new(Bars {
                    multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                    style: ProgressStyle::with_template(
                        "{prefix:>24} [{bar:30}] {pos}/{len} windows  {msg}  {elapsed}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                    streams: Mutex::new(HashMap::new()),
                })
            }),
        }
    }

    /// The engine's progress callback.
    pub(super) fn callback(&self) -> impl Fn(&Event) + Send + Sync + 'static {
        let bars = self.bars.clone();
        move |event| match &bars {
            Some(bars) => bars.on(event),
            None => plain(event),
        }
    }

    /// Clears the bars (the command prints its report after).
    pub(super) fn finish(&self) {
        if let Some(bars) = &self.bars {
            let streams = bars.streams.lock().unwrap_or_else(|p| p.into_inner());
            for s in streams.values() {
                s.bar.finish();
            }
            let _ = bars.multi.clear();
        }
    }
}

fn plain(event: &Event) {
    match event {
        Event::WindowCommitted {
            stream,
            window,
            rows_read,
            rows_written,
        } => println!("{stream}: committed {window} read={rows_read} written={rows_written}"),
        Event::WindowFailed {
            stream,
            window,
            error,
        } => println!("{stream}: FAILED {window}: {error}"),
        _ => {}
    }
}

impl Bars {
    fn on(&self, event: &Event) {
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            Event::StreamStarted { stream, windows } => {
                let bar = self
                    .multi
                    .add(ProgressBar::new(*windows as u64).with_style(self.style.clone()));
                bar.set_prefix(stream.clone());
                bar.set_message("0 rows");
                streams.insert(stream.clone(), Stream { bar, rows: 0 });
            }
            Event::WindowCommitted {
                stream, rows_read, ..
            } => {
                if let Some(s) = streams.get_mut(stream) {
                    s.rows += rows_read;
                    s.bar.inc(1);
                    s.bar.set_message(format!("{} rows", s.rows));
                }
            }
            Event::WindowFailed {
                stream,
                window,
                error,
            } => {
                let _ = self
                    .multi
                    .println(format!("{stream}: FAILED {window}: {error}"));
                if let Some(s) = streams.get_mut(stream) {
                    s.bar.inc(1);
                }
            }
            Event::StreamFinished(report) => {
                if let Some(s) = streams.get(&report.stream) {
                    s.bar.finish_with_message(format!("{} rows, done", s.rows));
                }
            }
            _ => {}
        }
    }
}
