//! Model-based test of the engine: random source histories with updates, late commits and
//! cursor values on window edges; random source and sink failures; random process "crashes"
//! (the cycle future is dropped mid-window and a new pipeline restarts from the stored state).
//! Rows are also changed in place (no cursor bump) and deleted, which no window sees: after
//! the faults stop, a reconciliation (key and row-hash comparison, requeue, hard deletes) must
//! bring the sink to the truth. Some runs add what real sources do: a row cap applied silently below the one asked for
//! (learned by the engine), and mass updates that put more rows on one cursor value than a
//! page holds (paged by key).
//! After the faults stop and the cycles settle, the sink must equal the source truth exactly:
//! nothing lost, no duplicate keys, every row at its latest version.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Duration;
use common::*;
use proptest::prelude::*;
use sync_core::audit::{MemoryAuditLog, MemoryRejectStore};
use sync_core::engine::{Pipeline, StreamConfig, VerifyOptions, WindowPolicy};
use sync_core::memory::MemorySink;
use sync_core::state::MemoryCheckpointStore;
use sync_core::{
    Batch, Clock, ConnectorError, DeletePolicy, KeyedHash, ManualClock, Receipt, Sink,
    SourceCapabilities, TableSchema, Value, Window,
};
use tokio::sync::Notify;

/// A sink that "crashes" on a chosen write: it signals, then never returns, so the test drops
/// the whole cycle mid-flight like a killed process.
struct CrashSink {
    inner: MemorySink,
    countdown: AtomicI64,
    crashed: Arc<Notify>,
}

#[async_trait]
impl Sink for CrashSink {
    async fn prepare(&self, s: &TableSchema) -> Result<(), ConnectorError> {
        self.inner.prepare(s).await
    }
    async fn write(&self, s: &TableSchema, b: &Batch) -> Result<Receipt, ConnectorError> {
        if self.countdown.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.crashed.notify_one();
            futures::future::pending::<()>().await;
        }
        self.inner.write(s, b).await
    }
    async fn row_hashes(
        &self,
        s: &TableSchema,
        w: Option<Window>,
    ) -> Result<Option<Vec<KeyedHash>>, ConnectorError> {
        self.inner.row_hashes(s, w).await
    }
    async fn delete(
        &self,
        s: &TableSchema,
        keys: &[Vec<Value>],
        p: DeletePolicy,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, ConnectorError> {
        self.inner.delete(s, keys, p, at).await
    }
}

const LOOKBACK_MIN: i64 = 60;
const SETTLE_MIN: i64 = 2;
/// Late rows carry a cursor at most this far in the past when they become visible; it must
/// not exceed lookback + settle lag, which is the engine's documented late-row horizon.
const LATE_MAX_MIN: i64 = 55;

async fn simulate(seed: u64, steps: usize) -> Result<(), String> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let clock = Arc::new(ManualClock::new(minutes(0)));
    let mut source = SimSource::new(clock.clone());
    source.row_cap = 25;
    source.page_size = 1 + rng.usize(..9);
    // 0: announced cap only; 1: a silent cap below it, learned by the engine, ties paged by
    // key; 2: mass updates beyond a page on one cursor value, paged by key.
    let mode = rng.u8(..3);
    if mode >= 1 {
        source.key_paging = true;
        source.caps = SourceCapabilities::default().key_paging(true);
    }
    if mode == 1 {
        source.silent_cap = Some(10 + rng.usize(..15));
        source.caps = SourceCapabilities::silent_cap(25).key_paging(true);
        // One page per window, as PeopleSoft answers.
        source.page_size = usize::MAX;
    }
    let sink = MemorySink::new();
    let store = MemoryCheckpointStore::new();
    let audit = MemoryAuditLog::new();
    let rejects = MemoryRejectStore::new();
    let policy = WindowPolicy::starting_at(minutes(0))
        .lookback(Duration::minutes(LOOKBACK_MIN))
        .settle_lag(Duration::minutes(SETTLE_MIN))
        .max_window(Duration::minutes(30 + rng.i64(0..240)))
        .min_window(Duration::minutes(1));
    let batch_size = 1 + rng.usize(..12);
    let crashed = Arc::new(Notify::new());
    let build = |countdown: i64| {
        let crash_sink = CrashSink {
            inner: sink.clone(),
            countdown: AtomicI64::new(countdown),
            crashed: crashed.clone(),
        };
        let stream = StreamConfig::new(
            "rows",
            Arc::new(source.clone()),
            Arc::new(IdMapper::new("rows")),
            policy,
        )
        .batch_size(batch_size)
        .max_attempts(1000)
        .deletes(DeletePolicy::Hard);
        Pipeline::builder("model", Arc::new(crash_sink))
            .stream(stream)
            .checkpoints(Arc::new(store.clone()))
            .audit(Arc::new(audit.clone()))
            .rejects(Arc::new(rejects.clone()))
            .clock(clock.clone())
            .build()
            .unwrap()
    };

    let mut next_id = 0i64;
    let mut version = 1i64;
    for _ in 0..steps {
        // Advance whole minutes so cursors and window edges often coincide.
        clock.advance(Duration::minutes(1 + rng.i64(0..90)));
        let now = clock.now();
        // Rows before the stream's start are outside its history by definition.
        let ago = |m: i64| (now - Duration::minutes(m)).max(minutes(0));
        if mode == 2 && next_id > 0 && rng.u8(..4) == 0 {
            // A mass update: many rows stamped with one cursor value.
            let at = ago(rng.i64(0..=3));
            for _ in 0..26 + rng.usize(..40) {
                version += 1;
                if rng.bool() {
                    source.upsert(rng.i64(0..next_id), version, at, now);
                } else {
                    source.upsert(next_id, version, at, now);
                    next_id += 1;
                }
            }
        }
        for _ in 0..rng.usize(..10) {
            version += 1;
            match rng.u8(..10) {
                // New row, recent cursor.
                0..=4 => {
                    source.upsert(next_id, version, ago(rng.i64(0..=SETTLE_MIN + 3)), now);
                    next_id += 1;
                }
                // Update of an existing row.
                5..=6 if next_id > 0 => {
                    let id = rng.i64(0..next_id);
                    source.upsert(id, version, ago(rng.i64(0..=3)), now);
                }
                // Changed in place (the cursor stays), or deleted: invisible to windows.
                7 if next_id > 0 => {
                    let id = rng.i64(0..next_id);
                    let current = source.visible().into_iter().find(|r| r.id == id);
                    match current {
                        Some(r) if rng.bool() => source.upsert(id, version, r.cursor, now),
                        Some(_) => source.delete(id),
                        None => {}
                    }
                }
                // Late commit: cursor in the past, visible only from now on.
                _ => {
                    source.upsert(next_id, version, ago(rng.i64(0..=LATE_MAX_MIN)), now);
                    next_id += 1;
                }
            }
        }
        // Faults for this cycle.
        match rng.u8(..10) {
            0 | 1 => source
                .faults
                .lock()
                .unwrap()
                .push(ConnectorError::transient("injected source failure")),
            2 | 3 => sink.fail_after(
                rng.usize(..4),
                ConnectorError::transient("injected sink failure"),
            ),
            _ => {}
        }
        let crash_at = if rng.u8(..4) == 0 {
            1 + rng.i64(0..6)
        } else {
            i64::MAX
        };
        let pipeline = build(crash_at);
        tokio::select! {
            r = pipeline.run_cycle() => { r.map_err(|e| e.to_string())?; }
            _ = crashed.notified() => { /* the process died: drop everything */ }
        }
        drop(pipeline);
    }

    // Settle: no more changes or faults; time moves past the settle lag.
    source.faults.lock().unwrap().clear();
    sink.fail_next([]);
    clock.advance(Duration::minutes(SETTLE_MIN + 1));
    let pipeline = build(i64::MAX);
    for _ in 0..3 {
        let r = pipeline.run_cycle().await.map_err(|e| e.to_string())?;
        if !r.is_clean() {
            return Err(format!("settling cycle not clean: {r:?}"));
        }
    }
    // Reconcile: in-place changes re-queued, deletes applied; then reload.
    pipeline
        .verify_with(&VerifyOptions::new().requeue(true).apply_deletes(true))
        .await
        .map_err(|e| e.to_string())?;
    clock.advance(Duration::minutes(1));
    for _ in 0..2 {
        let r = pipeline.run_cycle().await.map_err(|e| e.to_string())?;
        if !r.is_clean() {
            return Err(format!("cycle after reconciliation not clean: {r:?}"));
        }
    }

    let truth: BTreeMap<i64, (i64, chrono::DateTime<chrono::Utc>)> = source
        .visible()
        .into_iter()
        .map(|r| (r.id, (r.version, r.cursor)))
        .collect();
    let got: BTreeMap<i64, (i64, chrono::DateTime<chrono::Utc>)> = sink
        .rows("rows")
        .into_values()
        .map(|r| match (&r[0], &r[1], &r[2]) {
            (Value::BigInt(id), Value::BigInt(v), Value::Timestamp(c)) => (*id, (*v, *c)),
            other => panic!("unexpected row {other:?}"),
        })
        .collect();
    if got.len() != sink.len("rows") {
        return Err("duplicate keys in the sink".into());
    }
    if truth != got {
        let missing: Vec<_> = truth.keys().filter(|k| !got.contains_key(k)).collect();
        let stale: Vec<_> = truth
            .iter()
            .filter(|(k, v)| got.get(k).is_some_and(|g| g != *v))
            .map(|(k, _)| k)
            .collect();
        let extra: Vec<_> = got.keys().filter(|k| !truth.contains_key(k)).collect();
        let detail: Vec<_> = source
            .rows
            .lock()
            .unwrap()
            .iter()
            .filter(|r| missing.contains(&&r.id) || stale.contains(&&r.id))
            .cloned()
            .collect();
        return Err(format!(
            "sink differs from source truth: missing {missing:?}, stale {stale:?}, extra {extra:?}; rows {detail:?}; reads {:?}; audit {:?}",
            source.reads.lock().unwrap(),
            audit.all().iter().map(|e| (e.window.to_string(), e.outcome, e.rows_read, e.error.clone())).collect::<Vec<_>>()
        ));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn sink_equals_source_truth_after_faults_and_crashes(seed in any::<u64>(), steps in 3usize..30) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let result = rt.block_on(simulate(seed, steps));
        prop_assert!(result.is_ok(), "seed {seed}, steps {steps}: {}", result.unwrap_err());
    }
}

/// The test must be able to fail: with late rows older than the engine's horizon, rows are
/// lost, and the model notices.
#[tokio::test]
async fn the_model_detects_rows_beyond_the_late_row_horizon() {
    let clock = Arc::new(ManualClock::new(minutes(0)));
    let source = SimSource::new(clock.clone());
    let sink = MemorySink::new();
    let policy = WindowPolicy::starting_at(minutes(0))
        .lookback(Duration::minutes(LOOKBACK_MIN))
        .settle_lag(Duration::minutes(SETTLE_MIN))
        .max_window(Duration::minutes(60))
        .min_window(Duration::minutes(1));
    let p = Pipeline::builder("m", Arc::new(sink.clone()))
        .stream(StreamConfig::new(
            "rows",
            Arc::new(source.clone()),
            Arc::new(IdMapper::new("rows")),
            policy,
        ))
        .checkpoints(Arc::new(MemoryCheckpointStore::new()))
        .audit(Arc::new(MemoryAuditLog::new()))
        .rejects(Arc::new(MemoryRejectStore::new()))
        .clock(clock.clone())
        .build()
        .unwrap();
    clock.set(minutes(600));
    p.run_cycle().await.unwrap();
    // Visible from 610 with a cursor 200 minutes older than the high-water mark (598).
    source.upsert(1, 1, minutes(398), minutes(610));
    clock.set(minutes(620));
    p.run_cycle().await.unwrap();
    assert_eq!(
        sink.len("rows"),
        0,
        "beyond lookback: not re-read (verify finds it)"
    );
    let v = p.verify(true).await.unwrap();
    assert_eq!(v[0].differing().count(), 1);
    p.run_cycle().await.unwrap();
    assert_eq!(sink.len("rows"), 1, "verify re-queued the window");
}
