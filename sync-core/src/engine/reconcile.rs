//! Reconciliation: source and target compared per window by key and row hash, rows deleted in
//! the source found and applied by the stream's [`DeletePolicy`].
//!
//! For each checked window the source is read again (completely: truncated or ambiguous pages
//! are split, ties paged by key, exactly as a load does) and every record is mapped; the target
//! gives the keys and stored [`ROW_HASH_COLUMN`](crate::schema::ROW_HASH_COLUMN) of its live
//! rows with the cursor in the window. Keys only in the source are **missing**, keys in both
//! with different hashes **changed**, keys only in the target **extra**. An extra key is a
//! **delete** only when the source has it nowhere: every committed window is read, plus the
//! range from the high-water mark to now, so a row that merely moved (updated, its cursor now
//! in a later window) is not deleted. Deletes are therefore confirmed only by a full check (no
//! `--sample`, no `--from/--to`).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use tracing::Instrument as _;

use super::config::StreamConfig;
use super::hash::{
    derived_column, legacy_row_hash_except, row_hash_except, row_hash_matches_except,
};
use super::pipeline::Pipeline;
use super::truncation::{classify, next_step, Step};
use super::TARGET;
use crate::audit::{AuditEntry, Outcome};
use crate::error::{ConnectorError, Error, Result};
use crate::sink::{DeletePolicy, KeyedHash, Receipt};
use crate::state::{NullCursorCount, StreamState};
use crate::value::{Record, Value};
use crate::window::Window;

/// How many keys of each kind a [`WindowCheck`] shows.
const EXAMPLES: usize = 5;

/// What [`Pipeline::verify_with`] checks and repairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// Queue windows with missing or changed rows as failed, so the next cycle (or
    /// [`Pipeline::replay`]) reloads them.
    pub requeue: bool,
    /// Apply confirmed deletes by each stream's [`DeletePolicy`].
    pub apply_deletes: bool,
    /// Only these streams (empty: all).
    pub streams: Vec<String>,
    /// Only committed windows overlapping this range.
    pub range: Option<Window>,
    /// At most this many windows per stream, chosen at random.
    pub sample: Option<usize>,
}

impl VerifyOptions {
    /// Report only: no requeue, no deletes, every stream and window.
    pub fn new() -> Self {
        Self::default()
    }

    /// Re-queue differing windows.
    pub fn requeue(mut self, yes: bool) -> Self {
        self.requeue = yes;
        self
    }

    /// Apply confirmed deletes.
    pub fn apply_deletes(mut self, yes: bool) -> Self {
        self.apply_deletes = yes;
        self
    }

    /// Only these streams.
    pub fn streams(mut self, names: Vec<String>) -> Self {
        self.streams = names;
        self
    }

    /// Only windows overlapping `range`.
    pub fn range(mut self, range: Option<Window>) -> Self {
        self.range = range;
        self
    }

    /// At most `n` random windows per stream.
    pub fn sample(mut self, n: Option<usize>) -> Self {
        self.sample = n;
        self
    }
}

/// One window of a reconciliation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WindowCheck {
    /// The window.
    pub window: Window,
    /// Source records with the cursor in the window (`None`: the source cannot be read).
    pub source_rows: Option<u64>,
    /// Live target rows with the cursor in the window (`None`: the sink cannot tell).
    pub target_rows: Option<u64>,
    /// Keys in the source, not in the target.
    #[serde(default)]
    pub missing: u64,
    /// Keys in both, with different row hashes (a value changed in place, or a stale row).
    #[serde(default)]
    pub changed: u64,
    /// Keys in the target that the source no longer has anywhere (deletes).
    #[serde(default)]
    pub deleted: u64,
    /// The first few keys of each kind, as `missing: …`, `changed: …`, `deleted: …`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<String>,
    /// False when only counts could be compared (the sink cannot list keys and hashes).
    #[serde(default)]
    pub by_hash: bool,
}

impl WindowCheck {
    /// True when source and target differ in this window.
    pub fn differs(&self) -> bool {
        if self.by_hash {
            self.missing + self.changed + self.deleted > 0
        } else {
            matches!((self.source_rows, self.target_rows), (Some(a), Some(b)) if a != b)
        }
    }

    /// True when reloading the window repairs it (rows missing or changed).
    fn needs_reload(&self) -> bool {
        if self.by_hash {
            self.missing + self.changed > 0
        } else {
            self.differs()
        }
    }
}

/// Reconciliation of one stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StreamVerification {
    /// Stream name.
    pub stream: String,
    /// Every window checked.
    pub windows: Vec<WindowCheck>,
    /// True when the windows needing a reload were queued for replay.
    pub requeued: bool,
    /// Source rows whose cursor is NULL, which no window reaches (`None`: the source does
    /// not count them). Also kept in state and shown by [`Pipeline::status`].
    #[serde(default)]
    pub null_cursor_rows: Option<u64>,
    /// Target keys found in another window of the source (moved by an update): not deletes.
    #[serde(default)]
    pub moved: u64,
    /// Deletes confirmed (target keys the source has nowhere).
    #[serde(default)]
    pub deletes_found: u64,
    /// Target rows deleted or marked deleted by this run (per the stream's policy).
    #[serde(default)]
    pub deletes_applied: u64,
    /// False when deletes could not be confirmed (a sample or a range was checked).
    #[serde(default)]
    pub complete: bool,
}

impl StreamVerification {
    /// Windows where source and target differ.
    pub fn differing(&self) -> impl Iterator<Item = &WindowCheck> {
        self.windows.iter().filter(|w| w.differs())
    }
}

/// One source row as reconciliation sees it.
struct SourceRow {
    canon: String,
    /// The mapped columns, to hash against the target's stored hash.
    row: Vec<Value>,
}

fn canonical(key: &[Value]) -> String {
    let mut s = String::new();
    for v in key {
        v.write_canonical(&mut s);
    }
    s
}

fn display(key: &[Value]) -> String {
    key.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("|")
}

impl Pipeline {
    /// Reconciles source and target by key and row hash per committed window (see the module
    /// docs of `engine::reconcile`), optionally re-queueing windows with missing or changed
    /// rows and applying confirmed deletes by each stream's [`DeletePolicy`]. NULL-cursor rows
    /// are counted where the source can ([`Source::count_null_cursors`](crate::Source::count_null_cursors)).
    pub async fn verify_with(&self, opts: &VerifyOptions) -> Result<Vec<StreamVerification>> {
        for s in &opts.streams {
            if !self.streams.iter().any(|c| &c.name == s) {
                return Err(Error::Config(format!("no stream named `{s}`")));
            }
        }
        self.store.load(&self.name).await?;
        let mut out = Vec::new();
        for cfg in &self.streams {
            if !opts.streams.is_empty() && !opts.streams.contains(&cfg.name) {
                continue;
            }
            let lease = self.take_lease(&cfg.name).await?.map_err(|reason| {
                Error::State(format!(
                    "{reason}: verify it once that worker is done (or after the lease expires)"
                ))
            })?;
            let run_id = super::run::make_run_id(self.clock.now());
            let span = tracing::info_span!(
                target: TARGET,
                "verify",
                run_id = %run_id,
                pipeline = %self.name,
                stream = %cfg.name
            );
            let result = async {
                let mut st = self.store.load_stream(&self.name, &cfg.name).await?;
                self.reconcile_stream(cfg, &mut st, &lease, opts, &run_id)
                    .await
            }
            .instrument(span)
            .await;
            self.release_lease(&lease).await;
            out.push(result?);
        }
        Ok(out)
    }

    /// Reconciles one stream against `st` (saved when it changes).
    pub(super) async fn reconcile_stream(
        &self,
        cfg: &StreamConfig,
        st: &mut StreamState,
        lease: &super::lease::StreamLease,
        opts: &VerifyOptions,
        run_id: &str,
    ) -> Result<StreamVerification> {
        let started = self.clock.now();
        let wrap = |e: ConnectorError| Error::Connector {
            stream: cfg.name.clone(),
            source: e,
        };
        let own = cfg.mapper.schema();
        let mapped_width = own.columns.len();
        let skip = derived_column(own);
        let schema = own.with_lineage();
        let key_idx = schema
            .key_indexes()
            .map_err(|e| Error::Config(format!("stream `{}`: {e}", cfg.name)))?;
        let cursor = schema
            .cursor_column
            .as_deref()
            .and_then(|c| schema.index_of(c));
        let mut windows: Vec<Window> = Vec::new();
        for interval in st.committed.intervals() {
            let interval = match opts.range {
                Some(r) if r.to <= interval.from || interval.to <= r.from => continue,
                Some(r) => Window::new(r.from.max(interval.from), r.to.min(interval.to)),
                None => *interval,
            };
            windows.extend(interval.chunks(cfg.windows.max_window));
        }
        let complete = opts.range.is_none() && opts.sample.is_none_or(|n| n >= windows.len());
        if let Some(n) = opts.sample {
            fastrand::shuffle(&mut windows);
            windows.truncate(n);
            windows.sort();
        }
        let slack = cfg
            .source
            .capabilities()
            .min_lookback
            .unwrap_or_else(chrono::Duration::zero);

        let mut seen: HashSet<String> = HashSet::new();
        // Streams without a key are keyed by the row hash; rows loaded before 0.2 carry its
        // older form, recognised here so they are neither missing nor deleted.
        let hash_keyed = key_idx.iter().any(|&i| i >= mapped_width);
        let mut extras: Vec<(usize, KeyedHash)> = Vec::new();
        let mut checks = Vec::with_capacity(windows.len());
        for w in &windows {
            let target = self
                .sink
                .row_hashes(&schema, Some(*w))
                .await
                .map_err(wrap)?;
            let Some(target) = target else {
                // Counts only.
                let source_rows = cfg.source.count(*w).await.map_err(wrap)?;
                let target_rows = self.sink.count(&schema, *w).await.map_err(wrap)?;
                checks.push(WindowCheck {
                    window: *w,
                    source_rows,
                    target_rows,
                    missing: 0,
                    changed: 0,
                    deleted: 0,
                    examples: Vec::new(),
                    by_hash: false,
                });
                continue;
            };
            // The source over the window, widened by the source's coarseness (whole days of a
            // site's calendar), then cut to the rows whose cursor is in the window, as the
            // target is.
            let read = Window::new(w.from - slack, w.to + slack);
            let records = self.read_complete(cfg, st, read).await.map_err(wrap)?;
            let mut source: HashMap<String, SourceRow> = HashMap::with_capacity(records.len());
            let mut legacy_keys: HashMap<String, String> = HashMap::new();
            for r in records {
                let Ok(row) = cfg.mapper.map(&r) else {
                    // Rows that fail mapping are the reject store's business, not a difference.
                    continue;
                };
                let key: Vec<Value> = key_idx
                    .iter()
                    .map(|&i| {
                        if i < mapped_width {
                            row[i].clone()
                        } else {
                            Value::String(row_hash_except(&row, skip))
                        }
                    })
                    .collect();
                let canon = canonical(&key);
                seen.insert(canon.clone());
                if hash_keyed {
                    let legacy = Value::String(legacy_row_hash_except(&row, skip));
                    let key: Vec<Value> = key_idx
                        .iter()
                        .map(|&i| {
                            if i < mapped_width {
                                row[i].clone()
                            } else {
                                legacy.clone()
                            }
                        })
                        .collect();
                    let legacy_canon = canonical(&key);
                    seen.insert(legacy_canon.clone());
                    legacy_keys.insert(legacy_canon, canon.clone());
                }
                let inside = cursor
                    .filter(|&c| c < mapped_width)
                    .is_none_or(|c| row[c].as_cursor().is_some_and(|t| w.contains(t)));
                if inside {
                    source.insert(
                        canon.clone(),
                        SourceRow {
                            canon,
                            row: {
                                let mut row = row;
                                row.truncate(mapped_width);
                                row
                            },
                        },
                    );
                }
            }
            let mut check = WindowCheck {
                window: *w,
                source_rows: Some(source.len() as u64),
                target_rows: Some(target.len() as u64),
                missing: 0,
                changed: 0,
                deleted: 0,
                examples: Vec::new(),
                by_hash: true,
            };
            let mut in_target: HashSet<String> = HashSet::with_capacity(target.len());
            for t in target {
                let canon = canonical(&t.key);
                let canon = legacy_keys.get(&canon).cloned().unwrap_or(canon);
                match source.get(&canon) {
                    Some(s) => {
                        let same = t
                            .hash
                            .as_deref()
                            .is_some_and(|h| row_hash_matches_except(h, &s.row, skip));
                        if !same {
                            check.changed += 1;
                            if check.changed as usize <= EXAMPLES {
                                check.examples.push(format!("changed: {}", display(&t.key)));
                            }
                        }
                    }
                    None => extras.push((checks.len(), t)),
                }
                in_target.insert(canon);
            }
            let mut missing: Vec<&SourceRow> = source
                .values()
                .filter(|s| !in_target.contains(&s.canon))
                .collect();
            check.missing = missing.len() as u64;
            missing.truncate(EXAMPLES);
            for m in missing {
                check.examples.push(format!("missing: {}", m.canon));
            }
            checks.push(check);
        }

        // An extra key is a delete only if the source has it nowhere: also read what lies
        // after the committed coverage (rows moved there by an update).
        let mut moved = 0u64;
        let mut deletes: Vec<Vec<Value>> = Vec::new();
        if complete && !extras.is_empty() {
            if let Some(hwm) = st.committed.high_water_mark() {
                let now = self.clock.now();
                if hwm < now {
                    for r in self
                        .read_complete(cfg, st, Window::new(hwm, now))
                        .await
                        .map_err(wrap)?
                    {
                        if let Ok(row) = cfg.mapper.map(&r) {
                            let key: Vec<Value> = key_idx
                                .iter()
                                .filter(|&&i| i < mapped_width)
                                .map(|&i| row[i].clone())
                                .collect();
                            seen.insert(canonical(&key));
                        }
                    }
                }
            }
            for (at, t) in extras {
                if seen.contains(&canonical(&t.key)) {
                    moved += 1;
                    continue;
                }
                let check = &mut checks[at];
                check.deleted += 1;
                if check.deleted as usize <= EXAMPLES {
                    check.examples.push(format!("deleted: {}", display(&t.key)));
                }
                deletes.push(t.key);
            }
        } else {
            // Not confirmable: reported as moved-or-deleted only in the log.
            if !extras.is_empty() {
                tracing::info!(
                target: TARGET,
                                   stream = %cfg.name,
                                   "{} target key(s) not in their source window; a full verify (no --sample/--from/--to) tells deletes from moved rows",
                                   extras.len()
                               );
            }
        }

        let null_cursor_rows = cfg.source.count_null_cursors().await.map_err(wrap)?;
        let mut changed_state = false;
        if let Some(rows) = null_cursor_rows {
            if rows > 0 {
                tracing::warn!(
                target: TARGET,
                                   stream = %cfg.name,
                                   "{rows} source row(s) have a NULL cursor: no cursor window reaches them"
                               );
            }
            st.null_cursor_rows = Some(NullCursorCount {
                rows,
                counted_at: self.clock.now(),
            });
            changed_state = true;
        }

        let deletes_found = deletes.len() as u64;
        let mut deletes_applied = 0;
        if opts.apply_deletes && !deletes.is_empty() && cfg.deletes != DeletePolicy::Ignore {
            deletes_applied = self
                .sink
                .delete(&schema, &deletes, cfg.deletes, self.clock.now())
                .await
                .map_err(wrap)?;
            st.rows_deleted += deletes_applied;
            changed_state = true;
        }
        let reload: Vec<&WindowCheck> = checks.iter().filter(|c| c.needs_reload()).collect();
        let requeued = opts.requeue && !reload.is_empty();
        if requeued {
            let now = self.clock.now();
            for c in &reload {
                let msg = if c.by_hash {
                    format!(
                        "verify: {} row(s) missing and {} changed in the target ({})",
                        c.missing,
                        c.changed,
                        c.examples.join("; ")
                    )
                } else {
                    format!(
                        "verify: source has {} rows, target has {}",
                        c.source_rows.unwrap_or_default(),
                        c.target_rows.unwrap_or_default()
                    )
                };
                st.fail(c.window, &msg, now);
            }
            changed_state = true;
        }
        if opts.apply_deletes || opts.requeue {
            st.last_reconciled_at = Some(self.clock.now());
            changed_state = true;
        }
        if changed_state {
            lease.save(self, st).await?;
        }

        let (missing, changed, deleted) = checks.iter().fold((0, 0, 0), |a, c| {
            (a.0 + c.missing, a.1 + c.changed, a.2 + c.deleted)
        });
        if let (Some(first), Some(last)) = (windows.first(), windows.last()) {
            let mut entry = AuditEntry {
                run_id: run_id.to_string(),
                pipeline: self.name.clone(),
                stream: cfg.name.clone(),
                window: Window::new(first.from, last.to),
                attempt: 1,
                started_at: started,
                finished_at: self.clock.now(),
                rows_read: checks.iter().filter_map(|c| c.source_rows).sum(),
                rows_written: 0,
                rows_rejected: 0,
                receipt: Receipt::default(),
                outcome: Outcome::Reconciled,
                error: None,
                annotations: Default::default(),
            };
            for (k, v) in [
                ("windows", windows.len() as u64),
                ("missing", missing),
                ("changed", changed),
                ("deletes_found", deleted),
                ("deletes_applied", deletes_applied),
                ("moved", moved),
            ] {
                entry.annotations.insert(k.into(), v.to_string());
            }
            if let Err(e) = self.audit.append(&entry).await {
                tracing::error!(target: TARGET, stream = %cfg.name, "audit entry not written: {e}");
            }
        }
        Ok(StreamVerification {
            stream: cfg.name.clone(),
            windows: checks,
            requeued,
            null_cursor_rows,
            moved,
            deletes_found,
            deletes_applied,
            complete,
        })
    }

    /// Every source record of `window`, read the way a load reads it: pages that may be cut
    /// are split, ties paged by key; a page that cannot be proven complete is an error.
    async fn read_complete(
        &self,
        cfg: &StreamConfig,
        st: &mut StreamState,
        window: Window,
    ) -> std::result::Result<Vec<Record>, ConnectorError> {
        let caps = cfg.source.capabilities();
        let mut out = Vec::new();
        let mut todo = vec![window];
        while let Some(w) = todo.pop() {
            let mut pages = cfg.source.read(w);
            let mut local = Vec::new();
            let mut split = false;
            while let Some(page) = pages.next().await {
                let page = page?;
                let n = page.records.len() as u64;
                let verdict = classify(&caps, &mut st.row_cap, n, page.truncated);
                match next_step(cfg, &caps, &w, verdict, n) {
                    Step::Take => {}
                    Step::Split(_) => {
                        split = true;
                        break;
                    }
                    Step::TakeThenPageByKey(_) => {
                        let last = page.records.last().cloned().unwrap_or_default();
                        local.extend(page.records);
                        let source = &cfg.source;
                        pages = futures::stream::once(async move {
                            source.read_after(w, &last).await.and_then(|p| {
                                p.ok_or_else(|| {
                                    ConnectorError::permanent("key paging is not supported")
                                })
                            })
                        })
                        .boxed();
                        continue;
                    }
                    Step::Unreadable(_) => {
                        return Err(ConnectorError::permanent(format!(
                            "stream `{}`: verify cannot read window {w} completely: a page of {n} rows may be cut and the window cannot be split further (raise max_rows, set profile_max_rows, or declare key_prompts)",
                            cfg.name
                        )));
                    }
                }
                local.extend(page.records);
            }
            if split {
                let (a, b) = w.halves();
                todo.push(b);
                todo.push(a);
            } else {
                out.extend(local);
            }
        }
        Ok(out)
    }
}

/// When a reconcile schedule is due: its next time after the last reconciliation (or a day
/// before the cycle, the first time) has come.
pub(super) fn reconcile_due(
    schedule: &crate::schedule::Schedule,
    last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    let since = last.unwrap_or(now - chrono::Duration::days(1));
    schedule.next_after(since) <= now
}
