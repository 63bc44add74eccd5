//! Engine overhead: memory source → trivial mapper → memory sink, one stream, one window.
//!
//! Run with `cargo bench -p sync-core --bench engine`. The number reported per iteration
//! covers planning, paging, mapping dispatch, batch dedup, lineage, the reader/writer
//! pipeline, checkpointing and audit for 100 000 rows.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use divan::counter::ItemsCount;
use sync_core::audit::{MemoryAuditLog, MemoryRejectStore};
use sync_core::engine::{Pipeline, StreamConfig, WindowPolicy};
use sync_core::memory::{MemorySink, MemorySource};
use sync_core::state::MemoryCheckpointStore;
use sync_core::{
    Batch, ColumnDef, ColumnType, ConnectorError, FieldError, ManualClock, Mapper, Page,
    PageStream, Receipt, Record, Row, Sink, Source, TableSchema, Value, Window,
};

fn main() {
    divan::main();
}

const ROWS: usize = 100_000;

struct Trivial(TableSchema, DateTime<Utc>);

impl Mapper for Trivial {
    fn schema(&self) -> &TableSchema {
        &self.0
    }
    fn map(&self, r: &Record) -> Result<Row, Vec<FieldError>> {
        let id = r["ID"].as_i64().unwrap_or_default();
        let mut row = Vec::with_capacity(2 + sync_core::mapper::ROW_EXTRA_CAPACITY);
        row.push(Value::BigInt(id));
        row.push(Value::Timestamp(self.1 + Duration::seconds(id)));
        Ok(row)
    }
}

fn source(start: DateTime<Utc>) -> MemorySource {
    let src = MemorySource::new("bench").page_size(5_000);
    for i in 0..ROWS as i64 {
        let mut r = Record::new();
        r.insert("ID".into(), i.into());
        src.push(start + Duration::seconds(i), r);
    }
    src
}

/// Generates pages of records on the fly (no shared store to clone from).
struct Generated {
    start: DateTime<Utc>,
}

#[async_trait::async_trait]
impl Source for Generated {
    fn identity(&self) -> String {
        "gen://bench".into()
    }
    fn read(&self, window: Window) -> PageStream<'_> {
        let first = (window.from - self.start).num_seconds().max(0);
        let last = (window.to - self.start).num_seconds().min(ROWS as i64);
        let pages = (first..last).step_by(5_000).map(move |p| {
            let records = (p..(p + 5_000).min(last))
                .map(|i| {
                    let mut r = Record::new();
                    r.insert("ID".into(), i.into());
                    r
                })
                .collect();
            Ok(Page {
                records,
                truncated: false,
            })
        });
        Box::pin(futures::stream::iter(pages))
    }
}

/// Confirms every batch without storing it.
struct Null;

#[async_trait::async_trait]
impl Sink for Null {
    async fn prepare(&self, _: &TableSchema) -> Result<(), ConnectorError> {
        Ok(())
    }
    async fn write(&self, _: &TableSchema, b: &Batch) -> Result<Receipt, ConnectorError> {
        Ok(Receipt {
            rows_written: b.rows.len() as u64,
            ..Receipt::default()
        })
    }
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

/// Runs one cycle of one stream from `source` into `sink` per iteration.
fn bench_cycle(bencher: divan::Bencher<'_, '_>, source: Arc<dyn Source>, sink: Arc<dyn Sink>) {
    let start = start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let schema = TableSchema {
        name: "t".into(),
        columns: vec![
            ColumnDef::new("id", ColumnType::BigInt),
            ColumnDef::new("updated", ColumnType::Timestamp),
        ],
        primary_key: vec!["id".into()],
        cursor_column: Some("updated".into()),
        write_mode: Default::default(),
        effective_dating: None,
    };
    bencher.counter(ItemsCount::new(ROWS)).bench_local(|| {
        let policy = WindowPolicy::starting_at(start).max_window(Duration::days(30));
        let mapper = Arc::new(Trivial(schema.clone(), start));
        let p = Pipeline::builder("bench", sink.clone())
            .stream(StreamConfig::new("s", source.clone(), mapper, policy).batch_size(5_000))
            .checkpoints(Arc::new(MemoryCheckpointStore::new()))
            .audit(Arc::new(MemoryAuditLog::new()))
            .rejects(Arc::new(MemoryRejectStore::new()))
            .clock(Arc::new(ManualClock::new(start + Duration::days(3))))
            .build()
            .unwrap();
        let r = rt.block_on(p.run_cycle()).unwrap();
        assert_eq!(r.streams[0].rows_written, ROWS as u64);
    });
}

/// Engine overhead alone: generated records, trivial mapper, a sink that only confirms.
#[divan::bench(sample_count = 10)]
fn engine_overhead_100k_rows(bencher: divan::Bencher<'_, '_>) {
    bench_cycle(
        bencher,
        Arc::new(Generated { start: start() }),
        Arc::new(Null),
    );
}

/// The in-memory test fixtures end to end (they clone records and keep rows in a BTreeMap).
#[divan::bench(sample_count = 10)]
fn memory_to_memory_100k_rows(bencher: divan::Bencher<'_, '_>) {
    bench_cycle(
        bencher,
        Arc::new(source(start())),
        Arc::new(MemorySink::new()),
    );
}
