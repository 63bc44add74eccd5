//! Effective-dated current rows across windows, with the SQLite sink: the sink re-flags every
//! entity a batch touches, and the engine's daily sweep makes future-dated rows current on
//! their date (in the site's time zone), once per local day.
#![cfg(feature = "sqlite")]

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use sync_core::audit::{MemoryAuditLog, MemoryRejectStore};
use sync_core::engine::{Pipeline, StreamConfig, WindowPolicy};
use sync_core::memory::{MemorySink, MemorySource};
use sync_core::state::{CheckpointStore, MemoryCheckpointStore};
use sync_core::{
    Batch, ConnectorError, ManualClock, Mapper, Mapping, Receipt, Record, Row, Sink, SqliteSink,
    TableSchema, Value, Window,
};

fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
}

/// JOB-like rows: one entity per EMPLID, dated by EFFDT/EFFSEQ, flagged in IS_CURRENT; the
/// site is in Chicago.
fn mapping() -> Mapping {
    serde_json::from_value(json!({
        "table": "job",
        "primary_key": ["emplid", "effdt", "effseq"],
        "cursor_column": "updated",
        "source_time_zone": "America/Chicago",
        "effective_dating": {
            "entity_key": ["emplid"],
            "date_column": "effdt",
            "sequence_column": "effseq",
            "current_column": "is_current"
        },
        "columns": [
            {"column": "emplid", "source": "EMPLID", "type": "STRING", "nullable": false},
            {"column": "effdt", "source": "EFFDT", "type": "DATE", "nullable": false},
            {"column": "effseq", "source": "EFFSEQ", "type": "INT", "nullable": false},
            {"column": "deptid", "source": "DEPTID", "type": "STRING"},
            {"column": "updated", "source": "UPDATED", "type": "TIMESTAMP"},
            {"column": "is_current", "source": "IS_CURRENT", "type": "BOOLEAN"}
        ]
    }))
    .unwrap()
}

/// A row as the source sends it; `current` is the source's own per-window flag.
fn job(emplid: &str, effdt: &str, effseq: i64, updated: DateTime<Utc>, current: bool) -> Record {
    json!({
        "EMPLID": emplid, "EFFDT": effdt, "EFFSEQ": effseq, "DEPTID": "D1",
        "UPDATED": updated.to_rfc3339(), "IS_CURRENT": current
    })
    .as_object()
    .unwrap()
    .clone()
    .into()
}

struct Rig {
    sink: Arc<SqliteSink>,
    source: MemorySource,
    clock: Arc<ManualClock>,
    store: MemoryCheckpointStore,
}

impl Rig {
    fn new(start: DateTime<Utc>) -> Self {
        Self {
            sink: Arc::new(SqliteSink::in_memory().unwrap()),
            source: MemorySource::new("job"),
            clock: Arc::new(ManualClock::new(start)),
            store: MemoryCheckpointStore::new(),
        }
    }

    fn push(&self, r: Record) {
        let cursor = DateTime::parse_from_rfc3339(r["UPDATED"].as_str().unwrap())
            .unwrap()
            .with_timezone(&Utc);
        self.source.push(cursor, r);
    }

    /// A fresh pipeline over the same sink, state and clock (as after a restart).
    fn pipeline(&self) -> Pipeline {
        let mut windows = WindowPolicy::starting_at(at(2026, 1, 1, 0, 0));
        windows.settle_lag = Duration::zero();
        windows.lookback = Duration::zero();
        windows.max_window = Duration::days(30);
        let stream = StreamConfig::new(
            "employees",
            Arc::new(self.source.clone()),
            Arc::new(mapping().compile().unwrap()),
            windows,
        );
        Pipeline::builder("p", self.sink.clone())
            .stream(stream)
            .checkpoints(Arc::new(self.store.clone()))
            .audit(Arc::new(MemoryAuditLog::new()))
            .rejects(Arc::new(MemoryRejectStore::new()))
            .clock(self.clock.clone())
            .build()
            .unwrap()
    }

    /// (emplid, effdt, is_current) of every row, in key order.
    fn flags(&self) -> Vec<(String, String, bool)> {
        self.sink.with_connection(|c| {
            let mut st = c
                .prepare("SELECT emplid, effdt, effseq, is_current FROM job ORDER BY 1, 2, 3")
                .unwrap();
            st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    format!("{}/{}", r.get::<_, String>(1)?, r.get::<_, i64>(2)?),
                    r.get::<_, i64>(3)? == 1,
                ))
            })
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
        })
    }

    fn current_rows_per_entity(&self) -> Vec<(String, usize)> {
        let mut out: Vec<(String, usize)> = Vec::new();
        for (emplid, _, current) in self.flags() {
            match out.last_mut() {
                Some((e, n)) if *e == emplid => *n += usize::from(current),
                _ => out.push((emplid, usize::from(current))),
            }
        }
        out
    }
}

fn row(emplid: &str, dated: &str, current: bool) -> (String, String, bool) {
    (emplid.to_string(), dated.to_string(), current)
}

#[tokio::test]
async fn a_newer_effdt_row_in_a_later_window_leaves_exactly_one_current_row_per_key() {
    let rig = Rig::new(at(2026, 2, 1, 12, 0));
    // Window 1: E1 hired 2026-01-01; E2 with two rows on one date (EFFSEQ 0 and 1).
    rig.push(job("E1", "2026-01-01", 0, at(2026, 1, 10, 8, 0), true));
    rig.push(job("E2", "2026-01-05", 0, at(2026, 1, 11, 8, 0), false));
    rig.push(job("E2", "2026-01-05", 1, at(2026, 1, 11, 9, 0), true));
    let r = rig.pipeline().run_cycle().await.unwrap();
    assert!(r.is_clean(), "{r:?}");
    assert_eq!(
        rig.flags(),
        vec![
            row("E1", "2026-01-01/0", true),
            row("E2", "2026-01-05/0", false),
            row("E2", "2026-01-05/1", true),
        ]
    );

    // A later window brings E1's transfer (effective 2026-02-01) and a second sequence on
    // E2's date. Each is flagged current by the source, which only saw its own window.
    rig.clock.set(at(2026, 2, 20, 12, 0));
    rig.push(job("E1", "2026-02-01", 0, at(2026, 2, 10, 8, 0), true));
    rig.push(job("E2", "2026-01-05", 2, at(2026, 2, 11, 8, 0), true));
    let r = rig.pipeline().run_cycle().await.unwrap();
    assert!(r.is_clean(), "{r:?}");
    assert_eq!(
        rig.flags(),
        vec![
            row("E1", "2026-01-01/0", false),
            row("E1", "2026-02-01/0", true),
            row("E2", "2026-01-05/0", false),
            row("E2", "2026-01-05/1", false),
            row("E2", "2026-01-05/2", true),
        ]
    );
    assert_eq!(
        rig.current_rows_per_entity(),
        vec![("E1".to_string(), 1), ("E2".to_string(), 1)]
    );

    // Re-running everything changes nothing (the recompute is idempotent).
    let all = Window::new(at(2026, 1, 1, 0, 0), at(2026, 2, 20, 12, 0));
    let r = rig.pipeline().backfill(&[], all).await.unwrap();
    assert!(r.is_clean(), "{r:?}");
    assert_eq!(
        rig.current_rows_per_entity(),
        vec![("E1".to_string(), 1), ("E2".to_string(), 1)]
    );
}

#[tokio::test]
async fn a_future_dated_row_becomes_current_on_its_date_in_the_site_zone_once_per_day() {
    // 2026-03-05 in Chicago.
    let rig = Rig::new(at(2026, 3, 5, 18, 0));
    rig.push(job("E1", "2026-01-01", 0, at(2026, 1, 10, 8, 0), true));
    // Entered in advance: a promotion effective 2026-03-10.
    rig.push(job("E1", "2026-03-10", 0, at(2026, 3, 2, 8, 0), false));
    let r = rig.pipeline().run_cycle().await.unwrap();
    assert!(r.is_clean(), "{r:?}");
    assert_eq!(
        r.streams[0].current_swept_on,
        Some("2026-03-05".parse().unwrap())
    );
    let before = vec![
        row("E1", "2026-01-01/0", true),
        row("E1", "2026-03-10/0", false),
    ];
    assert_eq!(rig.flags(), before);

    // 2026-03-10 04:30 UTC is still 2026-03-09 in Chicago (CDT, UTC-5): not yet.
    rig.clock.set(at(2026, 3, 10, 4, 30));
    let r = rig.pipeline().run_cycle().await.unwrap();
    assert!(r.is_clean(), "{r:?}");
    assert_eq!(
        r.streams[0].current_swept_on,
        Some("2026-03-09".parse().unwrap())
    );
    assert_eq!(rig.flags(), before);

    // Half past midnight in Chicago on the 10th: the sweep activates the promotion, although
    // no window read either row again.
    rig.clock.set(at(2026, 3, 10, 5, 30));
    let r = rig.pipeline().run_cycle().await.unwrap();
    assert!(r.is_clean(), "{r:?}");
    assert_eq!(
        r.streams[0].current_swept_on,
        Some("2026-03-10".parse().unwrap())
    );
    assert_eq!(
        rig.flags(),
        vec![
            row("E1", "2026-01-01/0", false),
            row("E1", "2026-03-10/0", true),
        ]
    );
    let state = rig.store.load("p").await.unwrap();
    assert_eq!(
        state.streams["employees"].current_swept_on,
        Some("2026-03-10".parse().unwrap())
    );

    // Later the same local day (a fresh pipeline, as after a restart): no second sweep.
    rig.clock.set(at(2026, 3, 11, 4, 0));
    let r = rig.pipeline().run_cycle().await.unwrap();
    assert!(r.is_clean(), "{r:?}");
    assert_eq!(r.streams[0].current_swept_on, None);
}

#[tokio::test]
async fn an_effective_dated_stream_needs_a_sink_that_maintains_current_flags() {
    let sink = MemorySink::new();
    assert!(!sink.maintains_current_flags());
    let stream = StreamConfig::new(
        "employees",
        Arc::new(MemorySource::new("job")),
        Arc::new(mapping().compile().unwrap()),
        WindowPolicy::starting_at(at(2026, 1, 1, 0, 0)),
    );
    let e = Pipeline::builder("p", Arc::new(sink))
        .stream(stream)
        .checkpoints(Arc::new(MemoryCheckpointStore::new()))
        .audit(Arc::new(MemoryAuditLog::new()))
        .rejects(Arc::new(MemoryRejectStore::new()))
        .build()
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("does not maintain current flags"), "{msg}");
    assert!(msg.contains("effective_dating"), "{msg}");
}

#[test]
fn effective_dating_that_does_not_fit_the_columns_fails_compile() {
    let mut m = mapping();
    m.effective_dating.as_mut().unwrap().current_column = "deptid".into();
    let e = m.compile().unwrap_err().to_string();
    assert!(
        e.contains("current column `deptid` must be a BOOLEAN"),
        "{e}"
    );
}

/// A SQLite sink whose next `refresh_current` fails (a warehouse hiccup during the sweep).
struct FlakySweep {
    inner: SqliteSink,
    fail_next: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Sink for FlakySweep {
    async fn prepare(&self, schema: &TableSchema) -> Result<(), ConnectorError> {
        self.inner.prepare(schema).await
    }

    async fn write(&self, schema: &TableSchema, batch: &Batch) -> Result<Receipt, ConnectorError> {
        self.inner.write(schema, batch).await
    }

    fn maintains_current_flags(&self) -> bool {
        true
    }

    async fn refresh_current(
        &self,
        schema: &TableSchema,
        as_of: chrono::NaiveDate,
    ) -> Result<Receipt, ConnectorError> {
        if self
            .fail_next
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(ConnectorError::transient("warehouse unavailable"));
        }
        self.inner.refresh_current(schema, as_of).await
    }
}

#[tokio::test]
async fn a_failed_sweep_is_reported_and_retried_next_cycle_while_windows_still_load() {
    let rig = Rig::new(at(2026, 3, 5, 18, 0));
    let sink = Arc::new(FlakySweep {
        inner: SqliteSink::in_memory().unwrap(),
        fail_next: std::sync::atomic::AtomicBool::new(true),
    });
    rig.push(job("E1", "2026-01-01", 0, at(2026, 1, 10, 8, 0), true));
    let build = || {
        let mut windows = WindowPolicy::starting_at(at(2026, 1, 1, 0, 0));
        windows.settle_lag = Duration::zero();
        windows.lookback = Duration::zero();
        windows.max_window = Duration::days(30);
        Pipeline::builder("p", sink.clone())
            .stream(StreamConfig::new(
                "employees",
                Arc::new(rig.source.clone()),
                Arc::new(mapping().compile().unwrap()),
                windows,
            ))
            .checkpoints(Arc::new(rig.store.clone()))
            .audit(Arc::new(MemoryAuditLog::new()))
            .rejects(Arc::new(MemoryRejectStore::new()))
            .clock(rig.clock.clone())
            .build()
            .unwrap()
    };
    let r = build().run_cycle().await.unwrap();
    let s = &r.streams[0];
    assert!(
        s.error
            .as_deref()
            .unwrap()
            .contains("warehouse unavailable"),
        "{s:?}"
    );
    assert_eq!(s.current_swept_on, None);
    assert!(s.windows_committed > 0, "windows still load: {s:?}");
    let state = rig.store.load("p").await.unwrap();
    assert_eq!(state.streams["employees"].current_swept_on, None);

    let r = build().run_cycle().await.unwrap();
    assert!(r.is_clean(), "{r:?}");
    assert_eq!(
        r.streams[0].current_swept_on,
        Some("2026-03-05".parse().unwrap())
    );
}

#[tokio::test]
async fn a_batch_with_more_entities_than_one_update_holds_is_reflagged_in_chunks() {
    let sink = SqliteSink::in_memory().unwrap();
    let schema = mapping().compile().unwrap().schema().with_lineage();
    sink.prepare(&schema).await.unwrap();
    let n = 25_000;
    let row = |i: usize, effdt: &str, current: bool| -> Row {
        let mut r = vec![
            Value::String(format!("E{i:06}")),
            Value::Date(effdt.parse().unwrap()),
            Value::Int(0),
            Value::Null,
            Value::Timestamp(at(2026, 1, 10, 8, 0)),
            Value::Bool(current),
        ];
        r.extend([
            Value::String(format!("hash-{i}")),
            Value::String("run".into()),
            Value::Timestamp(at(2026, 1, 10, 8, 0)),
            Value::String("test".into()),
            Value::Null,
        ]);
        r
    };
    let batch = |rows: Vec<Row>| Batch {
        rows,
        window: Window::new(at(2026, 1, 1, 0, 0), at(2026, 2, 1, 0, 0)),
        run_id: "run".into(),
        stream: "employees".into(),
        as_of: Some("2026-03-01".parse().unwrap()),
    };
    sink.write(
        &schema,
        &batch((0..n).map(|i| row(i, "2026-01-01", true)).collect()),
    )
    .await
    .unwrap();
    sink.write(
        &schema,
        &batch((0..n).map(|i| row(i, "2026-02-01", true)).collect()),
    )
    .await
    .unwrap();
    let (rows, current, old_current): (i64, i64, i64) = sink.with_connection(|c| {
        c.query_row(
            "SELECT COUNT(*), SUM(is_current), SUM(CASE WHEN effdt = '2026-01-01' THEN is_current ELSE 0 END) FROM job",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
    });
    assert_eq!((rows, current, old_current), (2 * n as i64, n as i64, 0));
}
