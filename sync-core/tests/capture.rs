//! Capture correctness under conditions real sources produce: a row cap the source does not
//! announce (below the one asked for), rows tied on one cursor value beyond a page, ambiguous
//! duplicates, streams without a key, and coarse cursors that need a longer lookback.

mod common;

use std::sync::Arc;

use chrono::Duration;
use common::*;
use sync_core::audit::{AuditLog, MemoryAuditLog, MemoryRejectStore, Outcome, RejectStore};
use sync_core::engine::{DuplicatePolicy, Pipeline, RejectPolicy, StreamConfig, WindowPolicy};
use sync_core::memory::MemorySink;
use sync_core::state::MemoryCheckpointStore;
use sync_core::{ManualClock, Mapper, SourceCapabilities, TableSchema, Value, Window, WriteMode};

struct Rig {
    clock: Arc<ManualClock>,
    sink: MemorySink,
    store: MemoryCheckpointStore,
    audit: MemoryAuditLog,
    rejects: MemoryRejectStore,
}

impl Rig {
    fn new() -> Self {
        Self {
            clock: Arc::new(ManualClock::new(minutes(0))),
            sink: MemorySink::new(),
            store: MemoryCheckpointStore::new(),
            audit: MemoryAuditLog::new(),
            rejects: MemoryRejectStore::new(),
        }
    }

    fn source(&self) -> SimSource {
        let mut s = SimSource::new(self.clock.clone());
        s.page_size = usize::MAX;
        s
    }

    fn policy(&self) -> WindowPolicy {
        WindowPolicy::starting_at(minutes(0))
            .lookback(Duration::minutes(30))
            .settle_lag(Duration::minutes(2))
            .max_window(Duration::minutes(240))
            .min_window(Duration::minutes(1))
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

    fn stream(&self, source: SimSource) -> StreamConfig {
        StreamConfig::new(
            "rows",
            Arc::new(source),
            Arc::new(IdMapper::new("rows")),
            self.policy(),
        )
    }
}

/// 100 rows, one a minute, asked for 50 per page, silently cut at 10.
fn capped_source(rig: &Rig) -> SimSource {
    let mut source = rig.source();
    source.row_cap = 50;
    source.silent_cap = Some(10);
    for i in 0..100 {
        source.upsert(i, 1, minutes(i), minutes(0));
    }
    source
}

#[tokio::test]
async fn trusting_short_pages_loses_rows_under_a_silent_cap() {
    // The control: a source that does not declare the silent cap loses rows (90 of 100 by
    // bisection alone; fewer once dense windows are cut by the measured density), with a
    // clean report. This is what the detection below exists for.
    let rig = Rig::new();
    rig.clock.set(minutes(300));
    let p = rig.pipeline(rig.stream(capped_source(&rig)));
    let r = p.run_cycle().await.unwrap();
    assert!(r.is_clean());
    assert!(rig.sink.len("rows") < 100, "{}", rig.sink.len("rows"));
}

#[tokio::test]
async fn a_silent_row_cap_below_maxrows_is_detected_and_every_row_loads() {
    let rig = Rig::new();
    rig.clock.set(minutes(300));
    let mut source = capped_source(&rig);
    source.caps = SourceCapabilities::silent_cap(50);
    let p = rig.pipeline(rig.stream(source.clone()));
    let r = p.run_cycle().await.unwrap();
    let s = &r.streams[0];
    assert!(s.is_clean(), "{s:?}");
    assert_eq!(rig.sink.len("rows"), 100, "every row arrives");
    assert_eq!(s.row_cap_detected, Some(10));
    let status = p.status().await.unwrap().remove(0);
    assert_eq!(
        status.row_cap.detected,
        Some(10),
        "the cap is kept in state"
    );
    let audit = rig.audit.entries("p", None).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.annotations.get("row_cap_detected").map(String::as_str) == Some("10")),
        "the audit names the detected cap"
    );
    assert!(audit.iter().any(|e| e.outcome == Outcome::Split
        && e.annotations["split_reason"].contains("possible unannounced row cap")));
    // Once the cap is known, the rest of the dense window is cut for the rows measured so far
    // before it is read (no further page of 10 needs to be thrown away in this cycle); the
    // next cycle below splits a page of 10 at once.

    // The next cycle starts from what state learned: a page of 10 rows is split at once, a
    // shorter page is trusted without probing.
    for i in 300..330 {
        source.upsert(i, 1, minutes(i), minutes(330));
    }
    rig.clock.set(minutes(400));
    let reads_before = source.reads.lock().unwrap().len();
    let r = p.run_cycle().await.unwrap();
    assert!(r.is_clean());
    assert_eq!(rig.sink.len("rows"), 130);
    assert_eq!(r.streams[0].row_cap_detected, None, "already known");
    let reads = source.reads.lock().unwrap()[reads_before..].to_vec();
    assert!(reads.len() < 16, "no re-probing: {} reads", reads.len());
}

#[tokio::test]
async fn the_rest_of_a_dense_window_is_cut_before_it_is_read() {
    // 960 rows, four a minute, in one 240-minute window; pages of 50 (announced truncation).
    // Bisection alone reads 31 truncated pages before its 32 complete ones; with the density
    // measured on the first complete window, the rest is cut before reading.
    let rig = Rig::new();
    rig.clock.set(minutes(300));
    let mut source = rig.source();
    source.row_cap = 50;
    for i in 0..960 {
        source.upsert(i, 1, minutes(0) + Duration::seconds(15 * i), minutes(0));
    }
    let p = rig.pipeline(rig.stream(source.clone()));
    let r = p.run_cycle().await.unwrap();
    assert!(r.is_clean(), "{r:?}");
    assert_eq!(rig.sink.len("rows"), 960, "every row arrives");
    let reads = source.reads.lock().unwrap().clone();
    let holds = |w: &Window| {
        (0..960i64)
            .filter(|i| w.contains(minutes(0) + Duration::seconds(15 * i)))
            .count()
    };
    let truncated = reads.iter().filter(|w| holds(w) > 50).count();
    assert!(
        truncated <= 6,
        "{truncated} truncated pages in {} reads",
        reads.len()
    );
    assert!(reads.len() <= 40, "{} reads", reads.len());
    // Every row was read in exactly one complete window.
    let complete: usize = reads.iter().map(holds).filter(|n| *n <= 50).sum();
    assert_eq!(complete, 960);
}

#[tokio::test]
async fn a_declared_profile_cap_is_used_without_probing() {
    let rig = Rig::new();
    rig.clock.set(minutes(300));
    let mut source = capped_source(&rig);
    source.caps = SourceCapabilities::silent_cap(50).declared_cap(Some(10));
    let p = rig.pipeline(rig.stream(source));
    let r = p.run_cycle().await.unwrap();
    assert!(r.is_clean());
    assert_eq!(rig.sink.len("rows"), 100);
    let audit = rig.audit.entries("p", None).await.unwrap();
    assert!(
        !audit
            .iter()
            .any(|e| e.outcome == Outcome::Split
                && e.annotations["split_reason"].contains("possible"))
    );
}

#[tokio::test]
async fn an_unprovable_page_in_the_narrowest_window_fails_naming_the_setting() {
    // The first page this stream ever sees holds 5 rows sharing one cursor value: it cannot be
    // split, and nothing proves it was not cut by a profile cap of 5.
    let rig = Rig::new();
    rig.clock.set(minutes(300));
    let mut source = rig.source();
    source.row_cap = 50;
    source.caps = SourceCapabilities::silent_cap(50);
    for i in 0..5 {
        source.upsert(i, 1, minutes(100), minutes(0));
    }
    let p = rig.pipeline(rig.stream(source.clone()));
    let r = p.run_cycle().await.unwrap();
    assert_eq!(r.streams[0].windows_failed, 1);
    let failed = p.status().await.unwrap().remove(0).failed;
    assert!(
        failed[0].last_error.contains("profile_max_rows")
            && failed[0].last_error.contains("`rows`"),
        "{}",
        failed[0].last_error
    );

    // Once the operator declares the profile's limit, the window loads.
    let rig2 = Rig::new();
    rig2.clock.set(minutes(300));
    source.caps = SourceCapabilities::silent_cap(50).declared_cap(Some(1000));
    let p = rig2.pipeline(rig2.stream(source));
    assert!(p.run_cycle().await.unwrap().is_clean());
    assert_eq!(rig2.sink.len("rows"), 5);
}

#[tokio::test]
async fn rows_tied_on_one_cursor_beyond_a_page_are_paged_by_key() {
    let rig = Rig::new();
    rig.clock.set(minutes(300));
    let mut source = rig.source();
    source.row_cap = 10;
    source.key_paging = true;
    source.caps = SourceCapabilities::default().key_paging(true);
    for i in 0..25 {
        source.upsert(i, 1, minutes(100), minutes(0));
    }
    for i in 100..110 {
        source.upsert(i, 1, minutes(i + 50), minutes(0));
    }
    let p = rig.pipeline(rig.stream(source));
    let r = p.run_cycle().await.unwrap();
    assert!(r.is_clean(), "{:?}", r.streams[0]);
    assert_eq!(rig.sink.len("rows"), 35);
}

/// A source returning the same key twice with the same cursor but different values.
struct TwoVersions;

#[async_trait::async_trait]
impl sync_core::Source for TwoVersions {
    fn identity(&self) -> String {
        "dup://x".into()
    }
    fn read(&self, _w: sync_core::Window) -> sync_core::PageStream<'_> {
        Box::pin(futures::stream::iter(vec![Ok(sync_core::Page {
            records: vec![
                record(7, 1, minutes(20)),
                record(8, 1, minutes(5)),
                record(7, 2, minutes(20)),
                record(8, 1, minutes(5)),
            ],
            truncated: false,
        })]))
    }
}

#[tokio::test]
async fn ambiguous_duplicates_are_rejected_not_guessed() {
    for quarantine in [false, true] {
        let rig = Rig::new();
        rig.clock.set(minutes(50));
        let policy = if quarantine {
            RejectPolicy::Quarantine
        } else {
            RejectPolicy::FailWindow
        };
        let stream = StreamConfig::new(
            "rows",
            Arc::new(TwoVersions),
            Arc::new(IdMapper::new("rows")),
            rig.policy(),
        )
        .on_reject(policy);
        let p = rig.pipeline(stream);
        let r = p.run_cycle().await.unwrap();
        let s = &r.streams[0];
        assert_eq!(s.ambiguous_duplicates, 2);
        let kept = rig.rejects.list("p", Some("rows")).await.unwrap();
        assert_eq!(kept.len(), 2, "both versions are kept with the reason");
        assert!(kept[0].errors[0].reason.contains("ambiguous duplicate"));
        assert_eq!(kept[0].errors[0].value.as_deref(), Some("7"));
        let rows = rig.sink.rows("rows");
        if quarantine {
            assert!(s.is_clean());
            // Row 8 came twice with equal values: not ambiguous, loaded once.
            assert_eq!(rows.len(), 1);
            assert!(rows.values().all(|r| r[0] == Value::BigInt(8)));
        } else {
            assert_eq!(s.windows_failed, 1);
            let err = &p.status().await.unwrap()[0].failed[0].last_error;
            assert!(err.contains("ambiguous duplicates"), "{err}");
        }
    }

    // keep_last: the later version wins.
    let rig = Rig::new();
    rig.clock.set(minutes(50));
    let stream = StreamConfig::new(
        "rows",
        Arc::new(TwoVersions),
        Arc::new(IdMapper::new("rows")),
        rig.policy(),
    )
    .on_duplicate(DuplicatePolicy::KeepLast);
    let p = rig.pipeline(stream);
    assert!(p.run_cycle().await.unwrap().is_clean());
    let rows = rig.sink.rows("rows");
    let row7 = rows.values().find(|r| r[0] == Value::BigInt(7)).unwrap();
    assert_eq!(row7[1], Value::BigInt(2));
}

/// `IdMapper` without a primary key, in the given write mode.
struct Unkeyed {
    schema: TableSchema,
    inner: IdMapper,
}

impl Unkeyed {
    fn new(mode: WriteMode) -> Self {
        let inner = IdMapper::new("rows");
        let mut schema = inner.schema().clone();
        schema.primary_key.clear();
        schema.write_mode = mode;
        Self { schema, inner }
    }
}

impl Mapper for Unkeyed {
    fn schema(&self) -> &TableSchema {
        &self.schema
    }
    fn map(&self, r: &sync_core::Record) -> Result<sync_core::Row, Vec<sync_core::FieldError>> {
        self.inner.map(r)
    }
}

#[test]
fn a_stream_without_a_key_must_say_it_appends() {
    let rig = Rig::new();
    let stream = |mode| {
        StreamConfig::new(
            "events",
            Arc::new(rig.source()),
            Arc::new(Unkeyed::new(mode)),
            rig.policy(),
        )
    };
    let build = |s| {
        Pipeline::builder("p", Arc::new(rig.sink.clone()))
            .stream(s)
            .checkpoints(Arc::new(rig.store.clone()))
            .audit(Arc::new(rig.audit.clone()))
            .rejects(Arc::new(rig.rejects.clone()))
            .build()
    };
    let err = build(stream(WriteMode::Upsert)).unwrap_err().to_string();
    assert!(
        err.contains("`events` has no primary key") && err.contains("write_mode"),
        "{err}"
    );
    assert!(build(stream(WriteMode::Append)).is_ok());
    // Appending by a natural key while re-reading a lookback would store rows twice.
    let keyed_append = {
        let mut m = IdMapper::new("rows");
        m.set_write_mode(WriteMode::Append);
        StreamConfig::new("events", Arc::new(rig.source()), Arc::new(m), rig.policy())
    };
    let err = build(keyed_append).unwrap_err().to_string();
    assert!(err.contains("stored again"), "{err}");
}

#[test]
fn a_coarse_cursor_raises_the_lookback_to_what_the_source_needs() {
    let rig = Rig::new();
    let mut source = rig.source();
    source.caps = SourceCapabilities::default().min_lookback(Some(Duration::hours(30)));
    let p = rig.pipeline(rig.stream(source));
    assert_eq!(p.streams()[0].windows.lookback, Duration::hours(30));
}
