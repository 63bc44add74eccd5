//! Reconciliation by key and row hash: in-place changes found and repaired, deletes confirmed
//! and applied (soft and hard), moved rows not taken for deletes, and the scheduled run.

mod common;

use std::sync::Arc;

use chrono::Duration;
use common::*;
use sync_core::audit::{AuditLog, MemoryAuditLog, MemoryRejectStore, Outcome};
use sync_core::engine::{Pipeline, StreamConfig, VerifyOptions, WindowPolicy};
use sync_core::memory::MemorySink;
use sync_core::schedule::Schedule;
use sync_core::state::MemoryCheckpointStore;
use sync_core::{DeletePolicy, ManualClock, Value};

struct Rig {
    clock: Arc<ManualClock>,
    source: SimSource,
    sink: MemorySink,
    audit: MemoryAuditLog,
    store: MemoryCheckpointStore,
}

impl Rig {
    fn new() -> Self {
        let clock = Arc::new(ManualClock::new(minutes(0)));
        let mut source = SimSource::new(clock.clone());
        source.page_size = usize::MAX;
        for i in 0..40 {
            source.upsert(i, 1, minutes(i * 5), minutes(0));
        }
        clock.set(minutes(300));
        Self {
            clock,
            source,
            sink: MemorySink::new(),
            audit: MemoryAuditLog::new(),
            store: MemoryCheckpointStore::new(),
        }
    }

    fn pipeline(&self, deletes: DeletePolicy, reconcile: Option<Schedule>) -> Pipeline {
        let policy = WindowPolicy::starting_at(minutes(0))
            .lookback(Duration::minutes(30))
            .settle_lag(Duration::minutes(2))
            .max_window(Duration::minutes(60))
            .min_window(Duration::minutes(1));
        Pipeline::builder("p", Arc::new(self.sink.clone()))
            .stream(
                StreamConfig::new(
                    "rows",
                    Arc::new(self.source.clone()),
                    Arc::new(IdMapper::new("rows")),
                    policy,
                )
                .deletes(deletes)
                .reconcile(reconcile),
            )
            .checkpoints(Arc::new(self.store.clone()))
            .audit(Arc::new(self.audit.clone()))
            .rejects(Arc::new(MemoryRejectStore::new()))
            .clock(self.clock.clone())
            .build()
            .unwrap()
    }

    fn row(&self, id: i64) -> Option<Vec<Value>> {
        self.sink
            .rows("rows")
            .into_values()
            .find(|r| r[0] == Value::BigInt(id))
    }
}

#[tokio::test]
async fn an_in_place_change_is_found_by_hash_and_repaired_by_requeue() {
    let rig = Rig::new();
    let p = rig.pipeline(DeletePolicy::Soft, None);
    assert!(p.run_cycle().await.unwrap().is_clean());
    let clean = p.verify(false).await.unwrap();
    assert_eq!(clean[0].differing().count(), 0, "{clean:?}");

    // Row 7 changes in place: same cursor, new value (a correction without a timestamp bump).
    rig.source.upsert(7, 2, minutes(35), minutes(300));
    let v = p.verify(true).await.unwrap();
    let differing: Vec<_> = v[0].differing().collect();
    assert_eq!(differing.len(), 1);
    assert_eq!(differing[0].changed, 1);
    assert!(
        differing[0].examples[0].starts_with("changed: 7"),
        "{:?}",
        differing[0].examples
    );
    assert!(v[0].requeued);
    // Counts alone would have said nothing: same number of rows on both sides.
    assert_eq!(differing[0].source_rows, differing[0].target_rows);

    rig.clock.advance(Duration::minutes(10));
    assert!(p.run_cycle().await.unwrap().is_clean());
    assert_eq!(rig.row(7).unwrap()[1], Value::BigInt(2), "reloaded");
    assert_eq!(p.verify(false).await.unwrap()[0].differing().count(), 0);
}

#[tokio::test]
async fn deletes_are_confirmed_then_applied_soft_and_a_moved_row_is_not_deleted() {
    let rig = Rig::new();
    let p = rig.pipeline(DeletePolicy::Soft, None);
    assert!(p.run_cycle().await.unwrap().is_clean());

    rig.source.delete(3);
    // Row 4 moved: updated after the last cycle, its cursor now beyond the committed range.
    rig.source.upsert(4, 2, minutes(299), minutes(299));
    let report = p.verify(false).await.unwrap();
    assert_eq!(report[0].deletes_found, 1, "{report:?}");
    assert_eq!(report[0].moved, 1);
    assert_eq!(report[0].deletes_applied, 0, "report only");
    assert!(rig.row(3).unwrap()[7].is_null());

    let v = p
        .verify_with(&VerifyOptions::new().apply_deletes(true))
        .await
        .unwrap();
    assert_eq!(v[0].deletes_applied, 1);
    let row3 = rig.row(3).unwrap();
    assert!(matches!(row3[7], Value::Timestamp(_)), "soft: {row3:?}");
    assert!(rig.row(4).unwrap()[7].is_null(), "moved, not deleted");
    let status = p.status().await.unwrap();
    assert_eq!(status[0].rows_deleted, 1);
    let audit = rig.audit.entries("p", None).await.unwrap();
    assert!(audit.iter().any(|e| e.outcome == Outcome::Reconciled
        && e.annotations.get("deletes_applied").map(String::as_str) == Some("1")));

    // A soft-deleted row is not counted again; when the key reappears it is live again.
    assert_eq!(p.verify(false).await.unwrap()[0].deletes_found, 0);
    rig.source.upsert(3, 3, minutes(305), minutes(306));
    rig.clock.set(minutes(320));
    assert!(p.run_cycle().await.unwrap().is_clean());
    assert!(rig.row(3).unwrap()[7].is_null(), "back to live");
}

#[tokio::test]
async fn hard_deletes_remove_rows_and_a_sample_never_deletes() {
    let rig = Rig::new();
    let p = rig.pipeline(DeletePolicy::Hard, None);
    assert!(p.run_cycle().await.unwrap().is_clean());
    rig.source.delete(10);
    let sampled = p
        .verify_with(&VerifyOptions::new().apply_deletes(true).sample(Some(2)))
        .await
        .unwrap();
    assert!(!sampled[0].complete);
    assert_eq!(
        sampled[0].deletes_applied, 0,
        "a sample cannot confirm a delete"
    );
    assert_eq!(rig.sink.len("rows"), 40);
    let v = p
        .verify_with(&VerifyOptions::new().apply_deletes(true))
        .await
        .unwrap();
    assert_eq!(v[0].deletes_applied, 1);
    assert_eq!(rig.sink.len("rows"), 39);
    assert!(rig.row(10).is_none());
}

#[tokio::test]
async fn scheduled_reconciliation_runs_inside_the_cycle() {
    let rig = Rig::new();
    let p = rig.pipeline(DeletePolicy::Soft, Some("every 1h".parse().unwrap()));
    let r = p.run_cycle().await.unwrap();
    assert!(r.streams[0].reconciliation.is_some(), "first cycle: due");
    rig.source.delete(20);
    rig.clock.advance(Duration::minutes(10));
    let r = p.run_cycle().await.unwrap();
    assert!(r.streams[0].reconciliation.is_none(), "not due yet");
    rig.clock.advance(Duration::minutes(60));
    let r = p.run_cycle().await.unwrap();
    assert_eq!(r.streams[0].rows_deleted, 1);
    assert!(
        r.streams[0]
            .reconciliation
            .as_ref()
            .unwrap()
            .deletes_applied
            == 1
    );
}
