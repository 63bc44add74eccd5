//! Engine behaviour: windows, truncation bisection, replay order, stuck windows, rejects,
//! lineage, stop, concurrency and pipelining.

mod common;

use std::sync::Arc;

use chrono::Duration;
use common::*;
use sync_core::audit::{AuditLog, MemoryAuditLog, MemoryRejectStore, Outcome, RejectStore};
use sync_core::engine::{EngineOptions, Pipeline, RejectPolicy, StreamConfig, WindowPolicy};
use sync_core::memory::MemorySink;
use sync_core::schema::{LINEAGE_RUN_ID, LINEAGE_SOURCE};
use sync_core::state::{CheckpointStore, MemoryCheckpointStore};
use sync_core::{ConnectorError, ManualClock, Value, Window};

struct Rig {
    clock: Arc<ManualClock>,
    source: SimSource,
    sink: MemorySink,
    store: MemoryCheckpointStore,
    audit: MemoryAuditLog,
    rejects: MemoryRejectStore,
}

impl Rig {
    fn new() -> Self {
        let clock = Arc::new(ManualClock::new(minutes(0)));
        Self {
            source: SimSource::new(clock.clone()),
            clock,
            sink: MemorySink::new(),
            store: MemoryCheckpointStore::new(),
            audit: MemoryAuditLog::new(),
            rejects: MemoryRejectStore::new(),
        }
    }

    fn policy(&self) -> WindowPolicy {
        WindowPolicy::starting_at(minutes(0))
            .lookback(Duration::minutes(30))
            .settle_lag(Duration::minutes(2))
            .max_window(Duration::minutes(60))
            .min_window(Duration::minutes(1))
    }

    fn stream(&self, policy: WindowPolicy) -> StreamConfig {
        StreamConfig::new(
            "rows",
            Arc::new(self.source.clone()),
            Arc::new(IdMapper::new("rows")),
            policy,
        )
        .batch_size(5)
    }

    fn pipeline(&self, stream: StreamConfig) -> Pipeline {
        Pipeline::builder("p", Arc::new(self.sink.clone()))
            .stream(stream)
            .checkpoints(Arc::new(self.store.clone()))
            .audit(Arc::new(self.audit.clone()))
            .rejects(Arc::new(self.rejects.clone()))
            .clock(self.clock.clone())
            .build()
            .unwrap()
    }
}

#[tokio::test]
async fn first_cycle_plans_max_width_windows_capped_at_cycle_start_minus_settle_lag() {
    let rig = Rig::new();
    rig.clock.set(minutes(150));
    let p = rig.pipeline(rig.stream(rig.policy()));
    let r = p.run_cycle().await.unwrap();
    assert!(r.is_clean(), "{r:?}");
    let reads = rig.source.reads.lock().unwrap().clone();
    assert_eq!(
        reads,
        vec![
            Window::new(minutes(0), minutes(60)),
            Window::new(minutes(60), minutes(120)),
            Window::new(minutes(120), minutes(148)),
        ]
    );
    // Next cycle starts `lookback` before the high-water mark.
    rig.source.reads.lock().unwrap().clear();
    rig.clock.set(minutes(200));
    p.run_cycle().await.unwrap();
    let reads = rig.source.reads.lock().unwrap().clone();
    assert_eq!(
        reads,
        vec![
            Window::new(minutes(118), minutes(178)),
            Window::new(minutes(178), minutes(198))
        ]
    );
}

#[tokio::test]
async fn rows_on_window_edges_are_read_exactly_once_and_late_rows_within_lookback_arrive() {
    let rig = Rig::new();
    // Rows exactly on the edges of the first cycle's windows.
    rig.source.upsert(1, 1, minutes(0), minutes(0));
    rig.source.upsert(2, 1, minutes(60), minutes(0));
    rig.source.upsert(3, 1, minutes(118), minutes(0));
    rig.clock.set(minutes(120));
    let p = rig.pipeline(rig.stream(rig.policy()));
    let r = p.run_cycle().await.unwrap();
    // The cycle ends at 120 - 2 (settle lag), exclusive: the row at 118 waits.
    assert_eq!(r.streams[0].rows_read, 2);
    assert_eq!(rig.sink.len("rows"), 2);
    // A late commit: cursor 20 minutes before the high-water mark, visible only now.
    rig.clock.set(minutes(125));
    rig.source.upsert(4, 1, minutes(98), minutes(125));
    let r = p.run_cycle().await.unwrap();
    assert_eq!(rig.sink.len("rows"), 4);
    // The lookback re-read row 2 only if it lies in it: [88, 123) holds rows 3 and 4.
    assert_eq!(r.streams[0].rows_read, 2);
}

#[tokio::test]
async fn truncation_bisects_down_to_min_window_then_fails_with_a_clear_error() {
    let rig = Rig::new();
    let mut source = rig.source.clone();
    source.row_cap = 4;
    for i in 0..12 {
        source.upsert(i, 1, minutes(i * 5), minutes(0));
    }
    // Five rows share one cursor value: no window can separate them.
    for i in 100..105 {
        source.upsert(i, 1, minutes(200), minutes(0));
    }
    rig.clock.set(minutes(300));
    let policy = rig.policy().max_window(Duration::minutes(240));
    let stream = StreamConfig::new(
        "rows",
        Arc::new(source.clone()),
        Arc::new(IdMapper::new("rows")),
        policy,
    );
    let p = rig.pipeline(stream);
    let r = p.run_cycle().await.unwrap();
    let s = &r.streams[0];
    assert!(s.windows_split > 0);
    assert_eq!(
        rig.sink.len("rows"),
        12,
        "all rows outside the dense minute arrive"
    );
    assert_eq!(s.windows_failed, 1);
    let failed = p.status().await.unwrap().remove(0).failed;
    assert_eq!(failed.len(), 1);
    let f = &failed[0];
    assert!(f.window.contains(minutes(200)) && f.window.width() < Duration::minutes(2));
    assert!(
        f.last_error.contains("4+ rows share cursor value")
            && f.last_error.contains("`rows`")
            && f.last_error.contains("raise max_rows above 4")
            && !f.last_error.contains("min_window"),
        "{}",
        f.last_error
    );
    // Every truncated attempt is in the audit as a split.
    let splits = rig
        .audit
        .all()
        .iter()
        .filter(|e| e.outcome == Outcome::Split)
        .count();
    assert_eq!(splits, s.windows_split);
}

#[tokio::test]
async fn failed_windows_are_replayed_first_oldest_first_then_stuck() {
    let rig = Rig::new();
    rig.clock.set(minutes(180));
    for i in 0..6 {
        rig.source.upsert(i, 1, minutes(i * 30), minutes(0));
    }
    let stream = rig.stream(rig.policy()).max_attempts(3);
    let p = rig.pipeline(stream);
    // The first two reads of the first cycle fail (the fault list is popped from the end).
    *rig.source.faults.lock().unwrap() = vec![
        ConnectorError::transient("PeopleSoft busy (second read)"),
        ConnectorError::transient("PeopleSoft busy (first read)"),
    ];
    let _ = p.run_cycle().await.unwrap();
    let st = p.status().await.unwrap().remove(0);
    assert_eq!(st.failed.len(), 2, "{st:?}");
    // Next cycle: failed windows first, oldest first, then the new range.
    rig.source.reads.lock().unwrap().clear();
    rig.clock.set(minutes(240));
    let r = p.run_cycle().await.unwrap();
    assert!(r.is_clean(), "{r:?}");
    let reads = rig.source.reads.lock().unwrap().clone();
    assert_eq!(&reads[..2], &[st.failed[0].window, st.failed[1].window]);
    assert!(reads[0].from < reads[1].from);
    assert_eq!(rig.sink.len("rows"), 6);
    let replays: Vec<_> = rig
        .audit
        .all()
        .into_iter()
        .filter(|e| e.attempt == 2)
        .collect();
    assert_eq!(replays.len(), 2);
}

#[tokio::test]
async fn a_window_failing_max_attempts_times_is_stuck_and_skipped_until_replay() {
    let rig = Rig::new();
    rig.clock.set(minutes(50));
    rig.source.upsert(1, 1, minutes(10), minutes(0));
    let p = rig.pipeline(rig.stream(rig.policy()).max_attempts(2));
    for _ in 0..2 {
        rig.sink
            .fail_next([ConnectorError::transient("warehouse down")]);
        p.run_cycle().await.unwrap();
    }
    let r = p.run_cycle().await.unwrap();
    assert_eq!(r.streams[0].stuck.len(), 1);
    assert_eq!(r.streams[0].stuck[0].attempts, 2);
    assert!(!r.is_clean());
    assert_eq!(
        rig.sink.len("rows"),
        0,
        "stuck window is not retried by normal cycles"
    );
    let st = p.status().await.unwrap().remove(0);
    assert_eq!(st.stuck.len(), 1);
    // An explicit replay retries it.
    let r = p.replay().await.unwrap();
    assert_eq!(r.streams[0].windows_committed, 1);
    assert_eq!(rig.sink.len("rows"), 1);
    assert!(p.status().await.unwrap()[0].failed.is_empty());
}

#[tokio::test]
async fn checkpoint_does_not_advance_when_a_later_batch_of_the_window_fails() {
    let rig = Rig::new();
    rig.clock.set(minutes(50));
    for i in 0..12 {
        rig.source.upsert(i, 1, minutes(i), minutes(0));
    }
    let p = rig.pipeline(rig.stream(rig.policy()));
    let store = rig.store.clone();
    // Batch size 5: the first batch is written, the second fails.
    rig.sink.fail_after(1, ConnectorError::transient("boom"));
    let r = p.run_cycle().await.unwrap();
    assert_eq!(r.streams[0].windows_committed, 0);
    let st = store.load("p").await.unwrap();
    assert!(st.streams["rows"].committed.is_empty());
    assert_eq!(st.streams["rows"].failed.len(), 1);
    let r = p.run_cycle().await.unwrap();
    assert!(r.is_clean());
    assert_eq!(rig.sink.len("rows"), 12);
}

#[tokio::test]
async fn rejects_fail_the_window_or_are_quarantined_and_always_kept() {
    for policy in [RejectPolicy::FailWindow, RejectPolicy::Quarantine] {
        let rig = Rig::new();
        rig.clock.set(minutes(50));
        rig.source.upsert(1, 1, minutes(10), minutes(0));
        rig.source.upsert(2, 1, minutes(11), minutes(0));
        // A source record the mapper cannot read.
        struct Bad(SimSource);
        #[async_trait::async_trait]
        impl sync_core::Source for Bad {
            fn identity(&self) -> String {
                "bad".into()
            }
            fn read(&self, w: Window) -> sync_core::PageStream<'_> {
                use futures::StreamExt as _;
                Box::pin(self.0.read(w).map(|p| {
                    p.map(|mut p| {
                        if let Some(r) = p.records.first_mut() {
                            r.insert("VERSION".into(), "x".into());
                        }
                        p
                    })
                }))
            }
        }
        let stream = StreamConfig::new(
            "rows",
            Arc::new(Bad(rig.source.clone())),
            Arc::new(IdMapper::new("rows")),
            rig.policy(),
        )
        .on_reject(policy);
        let p = rig.pipeline(stream);
        let r = p.run_cycle().await.unwrap();
        let s = &r.streams[0];
        assert_eq!(s.rows_rejected, 1);
        let kept = rig.rejects.list("p", Some("rows")).await.unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].errors[0].field, "VERSION");
        assert_eq!(kept[0].record["VERSION"], "x");
        match policy {
            RejectPolicy::FailWindow => {
                assert_eq!(s.windows_failed, 1);
                assert_eq!(rig.sink.len("rows"), 0);
                let audit = rig.audit.entries("p", None).await.unwrap();
                let err = audit[0].error.as_deref().unwrap();
                assert!(err.contains("VERSION") && err.contains("`rows`"), "{err}");
            }
            RejectPolicy::Quarantine => {
                assert!(s.is_clean());
                assert_eq!(rig.sink.len("rows"), 1);
            }
            other => panic!("untested policy {other:?}"),
        }
    }
}

#[tokio::test]
async fn every_row_carries_lineage_and_duplicate_keys_keep_the_highest_cursor() {
    let rig = Rig::new();
    rig.clock.set(minutes(50));
    // The same key twice in one window (a query joining history): highest cursor wins.
    struct Dup;
    #[async_trait::async_trait]
    impl sync_core::Source for Dup {
        fn identity(&self) -> String {
            "dup://x".into()
        }
        fn read(&self, _w: Window) -> sync_core::PageStream<'_> {
            Box::pin(futures::stream::iter(vec![Ok(sync_core::Page {
                records: vec![
                    record(7, 2, minutes(20)),
                    record(7, 1, minutes(10)),
                    record(8, 1, minutes(5)),
                ],
                truncated: false,
            })]))
        }
    }
    let stream = StreamConfig::new(
        "rows",
        Arc::new(Dup),
        Arc::new(IdMapper::new("rows")),
        rig.policy(),
    );
    let p = rig.pipeline(stream);
    let r = p.run_cycle().await.unwrap();
    let rows = rig.sink.rows("rows");
    assert_eq!(rows.len(), 2);
    let row7 = rows.values().find(|r| r[0] == Value::BigInt(7)).unwrap();
    assert_eq!(row7[1], Value::BigInt(2));
    // id, version, updated, row hash, run id, loaded at, source, deleted at
    assert_eq!(row7.len(), 8);
    assert_eq!(
        row7[3],
        Value::String(sync_core::engine::row_hash(&row7[..3]))
    );
    assert_eq!(row7[4], Value::String(r.run_id.clone()));
    assert_eq!(row7[5], Value::Timestamp(minutes(50)));
    assert_eq!(row7[6], Value::String("dup://x".into()));
    assert_eq!(row7[7], Value::Null);
    let schema = IdMapper::new("rows");
    let full = sync_core::Mapper::schema(&schema).with_lineage();
    assert_eq!(full.columns[4].name, LINEAGE_RUN_ID);
    assert_eq!(full.columns[6].name, LINEAGE_SOURCE);
}

#[tokio::test]
async fn stop_stream_error_halts_the_stream_after_one_request() {
    let rig = Rig::new();
    rig.clock.set(minutes(300));
    rig.source
        .faults
        .lock()
        .unwrap()
        .push(ConnectorError::stop_stream(
            "HTTP 401: credentials rejected; retrying may lock the account",
        ));
    let p = rig.pipeline(rig.stream(rig.policy()));
    let r = p.run_cycle().await.unwrap();
    assert_eq!(
        rig.source.reads.lock().unwrap().len(),
        1,
        "no further window was read"
    );
    assert!(r.streams[0]
        .error
        .as_deref()
        .unwrap()
        .contains("lock the account"));
}

#[tokio::test]
async fn a_deferred_window_stops_the_stream_without_counting_an_attempt() {
    let rig = Rig::new();
    rig.clock.set(minutes(300));
    rig.source.upsert(1, 1, minutes(10), minutes(0));
    let p = rig.pipeline(rig.stream(rig.policy()).max_attempts(2));
    // One failed attempt first, so a queued window exists.
    *rig.source.faults.lock().unwrap() = vec![ConnectorError::transient("busy")];
    p.run_cycle().await.unwrap();
    let before = p.status().await.unwrap().remove(0);
    assert_eq!(before.failed.len(), 1);
    // Then more cycles than max_attempts, each deferred at its first read.
    let until = minutes(600);
    for _ in 0..4 {
        rig.source.reads.lock().unwrap().clear();
        *rig.source.faults.lock().unwrap() =
            vec![ConnectorError::deferred("in blackout `payroll`").deferred_until(until)];
        let r = p.run_cycle().await.unwrap();
        assert!(r.is_clean(), "{r:?}");
        assert_eq!(r.streams[0].windows_failed, 0);
        assert_eq!(
            r.streams[0].skipped.as_deref(),
            Some("in blackout `payroll`")
        );
        assert_eq!(rig.source.reads.lock().unwrap().len(), 1, "stream stopped");
    }
    let st = p.status().await.unwrap().remove(0);
    assert_eq!(st.failed, before.failed, "attempts unchanged");
    assert!(st.stuck.is_empty());
    assert_eq!(st.skipped.as_ref().unwrap().until, Some(until));
    let audited = rig.audit.all().len();
    // After the blackout everything loads and the note is cleared.
    let r = p.run_cycle().await.unwrap();
    assert!(r.is_clean() && r.streams[0].skipped.is_none(), "{r:?}");
    let st = p.status().await.unwrap().remove(0);
    assert!(st.failed.is_empty() && st.skipped.is_none(), "{st:?}");
    assert!(rig.audit.all().len() > audited);
    assert_eq!(rig.sink.len("rows"), 1);
}

#[tokio::test]
async fn graceful_stop_abandons_the_window_without_checkpointing() {
    let rig = Rig::new();
    rig.clock.set(minutes(100));
    for i in 0..20 {
        rig.source.upsert(i, 1, minutes(i), minutes(0));
    }
    let p = rig.pipeline(rig.stream(rig.policy()));
    p.stop_handle().stop();
    let r = p.run_cycle().await.unwrap();
    assert!(r.streams[0].stopped);
    assert_eq!(r.streams[0].windows_committed, 0);
    assert!(rig
        .store
        .load("p")
        .await
        .unwrap()
        .streams
        .get("rows")
        .is_none_or(|s| s.committed.is_empty()));
}

#[tokio::test(start_paused = true)]
async fn reading_overlaps_writing() {
    // 10 pages of 5 rows, 100 ms per page; the sink takes 100 ms per batch of 5.
    let rig = Rig::new();
    rig.clock.set(minutes(100));
    let mut source = rig.source.clone();
    source.page_size = 5;
    source.page_latency = std::time::Duration::from_millis(100);
    for i in 0..50 {
        source.upsert(i, 1, minutes(i), minutes(0));
    }
    struct Slow(MemorySink);
    #[async_trait::async_trait]
    impl sync_core::Sink for Slow {
        async fn prepare(&self, s: &sync_core::TableSchema) -> Result<(), ConnectorError> {
            self.0.prepare(s).await
        }
        async fn write(
            &self,
            s: &sync_core::TableSchema,
            b: &sync_core::Batch,
        ) -> Result<sync_core::Receipt, ConnectorError> {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            self.0.write(s, b).await
        }
    }
    let policy = rig.policy().max_window(Duration::days(1));
    let stream = StreamConfig::new(
        "rows",
        Arc::new(source),
        Arc::new(IdMapper::new("rows")),
        policy,
    )
    .batch_size(5);
    let p = Pipeline::builder("p", Arc::new(Slow(rig.sink.clone())))
        .stream(stream)
        .checkpoints(Arc::new(rig.store.clone()))
        .audit(Arc::new(rig.audit.clone()))
        .rejects(Arc::new(rig.rejects.clone()))
        .clock(rig.clock.clone())
        .options(EngineOptions::default().in_flight_batches(2))
        .build()
        .unwrap();
    let started = tokio::time::Instant::now();
    p.run_cycle().await.unwrap();
    let wall = started.elapsed();
    assert_eq!(rig.sink.len("rows"), 50);
    // Serial would be 2.0 s; overlapped is about 1.1 s.
    assert!(wall <= std::time::Duration::from_millis(1200), "{wall:?}");
}

#[tokio::test(start_paused = true)]
async fn streams_run_concurrently_under_the_limit() {
    let rig = Rig::new();
    rig.clock.set(minutes(100));
    let mut source = rig.source.clone();
    source.page_latency = std::time::Duration::from_millis(500);
    source.upsert(1, 1, minutes(1), minutes(0));
    let policy = rig.policy().max_window(Duration::days(1));
    let mut b = Pipeline::builder("p", Arc::new(rig.sink.clone()))
        .checkpoints(Arc::new(rig.store.clone()))
        .audit(Arc::new(rig.audit.clone()))
        .rejects(Arc::new(rig.rejects.clone()))
        .clock(rig.clock.clone())
        .options(EngineOptions::default().max_concurrent_streams(2));
    for i in 0..4 {
        b = b.stream(StreamConfig::new(
            format!("s{i}"),
            Arc::new(source.clone()),
            Arc::new(IdMapper::new(&format!("t{i}"))),
            policy,
        ));
    }
    let p = b.build().unwrap();
    let started = tokio::time::Instant::now();
    let r = p.run_cycle().await.unwrap();
    assert!(r.is_clean());
    // Four streams of one 0.5 s page, two at a time: 1.0 s (serial 2.0 s, unlimited 0.5 s).
    assert_eq!(started.elapsed(), std::time::Duration::from_millis(1000));
}

#[tokio::test]
async fn verify_compares_counts_and_requeues_differences() {
    let rig = Rig::new();
    rig.clock.set(minutes(100));
    for i in 0..16 {
        rig.source.upsert(i, 1, minutes(i * 5), minutes(0));
    }
    let p = rig.pipeline(rig.stream(rig.policy()));
    p.run_cycle().await.unwrap();
    let v = p.verify(false).await.unwrap();
    assert_eq!(v[0].windows.len(), 2, "{v:?}");
    assert_eq!(v[0].differing().count(), 0);
    // A row appears in the source inside an already committed window, outside the lookback.
    rig.source.upsert(99, 1, minutes(3), minutes(100));
    let v = p.verify(true).await.unwrap();
    let diff: Vec<_> = v[0].differing().cloned().collect();
    assert_eq!(diff.len(), 1);
    assert_eq!(diff[0].window, Window::new(minutes(0), minutes(60)));
    assert_eq!(diff[0].source_rows, Some(13));
    assert_eq!(diff[0].target_rows, Some(12));
    p.run_cycle().await.unwrap();
    assert_eq!(rig.sink.len("rows"), 17);
    assert_eq!(p.verify(false).await.unwrap()[0].differing().count(), 0);
}

#[tokio::test]
async fn backfill_reloads_a_range_whatever_is_committed() {
    let rig = Rig::new();
    rig.clock.set(minutes(100));
    rig.source.upsert(1, 1, minutes(10), minutes(0));
    let p = rig.pipeline(rig.stream(rig.policy()));
    p.run_cycle().await.unwrap();
    rig.source.reads.lock().unwrap().clear();
    let r = p
        .backfill(&[], Window::new(minutes(0), minutes(30)))
        .await
        .unwrap();
    assert_eq!(r.streams[0].windows_committed, 1);
    assert_eq!(
        rig.source.reads.lock().unwrap().clone(),
        vec![Window::new(minutes(0), minutes(30))]
    );
    assert!(p
        .backfill(&["nope".into()], Window::new(minutes(0), minutes(1)))
        .await
        .is_err());
}

#[test]
fn build_rejects_bad_configuration_with_names() {
    let rig = Rig::new();
    let bad = rig.policy().min_window(Duration::hours(2));
    let err = Pipeline::builder("p", Arc::new(rig.sink.clone()))
        .stream(rig.stream(bad))
        .checkpoints(Arc::new(rig.store.clone()))
        .audit(Arc::new(rig.audit.clone()))
        .rejects(Arc::new(rig.rejects.clone()))
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("`rows`") && err.to_string().contains("min_window"),
        "{err}"
    );
    let err = Pipeline::builder("p", Arc::new(rig.sink.clone()))
        .stream(rig.stream(rig.policy()))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("checkpoint store"), "{err}");
}

#[tokio::test]
async fn hooks_run_after_a_clean_stream_and_are_audited() {
    use std::collections::BTreeMap;
    use sync_core::engine::{HookContext, StreamHook};
    struct Trigger(std::sync::Mutex<Vec<HookContext>>);
    #[async_trait::async_trait]
    impl StreamHook for Trigger {
        async fn after_stream(
            &self,
            ctx: &HookContext,
        ) -> Result<BTreeMap<String, String>, ConnectorError> {
            self.0.lock().unwrap().push(ctx.clone());
            Ok(BTreeMap::from([(
                "job_run_id".to_string(),
                "4242".to_string(),
            )]))
        }
    }
    let rig = Rig::new();
    rig.clock.set(minutes(150));
    rig.source.upsert(1, 1, minutes(10), minutes(0));
    let trigger = Arc::new(Trigger(Default::default()));
    let p = Pipeline::builder("p", Arc::new(rig.sink.clone()))
        .stream(rig.stream(rig.policy()))
        .checkpoints(Arc::new(rig.store.clone()))
        .audit(Arc::new(rig.audit.clone()))
        .rejects(Arc::new(rig.rejects.clone()))
        .clock(rig.clock.clone())
        .after_stream(trigger.clone())
        .build()
        .unwrap();
    p.run_cycle().await.unwrap();
    let calls = trigger.0.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].committed, Window::new(minutes(0), minutes(148)));
    let hook_entries: Vec<_> = rig
        .audit
        .all()
        .into_iter()
        .filter(|e| e.outcome == Outcome::Hook)
        .collect();
    assert_eq!(hook_entries.len(), 1);
    assert_eq!(hook_entries[0].annotations["job_run_id"], "4242");
    // A cycle with a failed window does not trigger downstream work.
    rig.clock.set(minutes(200));
    rig.sink.fail_next([ConnectorError::transient("down")]);
    rig.source.upsert(2, 1, minutes(160), minutes(0));
    p.run_cycle().await.unwrap();
    assert_eq!(trigger.0.lock().unwrap().len(), 1);
}
