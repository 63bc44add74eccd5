//! Mapping throughput: a realistic 20-column journal line (amounts as strings, ISO 8601
//! datetimes) through [`MappingMapper::map`] with the standard format, and datetime parsing on
//! its own. With `--features sqlite`, also SQLite upsert throughput. (PeopleSoft's native
//! forms are benchmarked in `peoplesoft-client/benches/values.rs`.)
//!
//! `cargo bench -p sync-core --bench mapping` (add `--features sqlite` for the sink bench).

use divan::counter::ItemsCount;
use divan::{black_box, Bencher};
use serde_json::json;
use sync_core::convert::{parse_timestamp, SourceTimeZone};
use sync_core::mapping::{Mapping, MappingMapper};
use sync_core::{Mapper, Record};

fn main() {
    divan::main();
}

const RECORDS: usize = 1000;

fn journal_mapping() -> Mapping {
    serde_json::from_value(json!({
        "table": "jrnl_ln",
        "primary_key": ["business_unit", "journal_id", "journal_date", "unpost_seq", "journal_line", "ledger"],
        "cursor_column": "dttm_stamp_sec",
        "source_time_zone": "America/Chicago",
        "columns": [
            {"column": "business_unit", "source": "BUSINESS_UNIT", "type": "STRING", "nullable": false},
            {"column": "journal_id", "source": "JOURNAL_ID", "type": "STRING", "nullable": false},
            {"column": "journal_date", "source": "JOURNAL_DATE", "type": "DATE", "nullable": false},
            {"column": "unpost_seq", "source": "UNPOST_SEQ", "type": "INT", "nullable": false},
            {"column": "journal_line", "source": "JOURNAL_LINE", "type": "INT", "nullable": false},
            {"column": "ledger", "source": "LEDGER", "type": "STRING", "nullable": false},
            {"column": "account", "source": "ACCOUNT", "type": "STRING"},
            {"column": "deptid", "source": "DEPTID", "type": "STRING"},
            {"column": "product", "source": "PRODUCT", "type": "STRING"},
            {"column": "currency_cd", "source": "CURRENCY_CD", "type": "STRING"},
            {"column": "monetary_amount", "source": "MONETARY_AMOUNT", "type": "DECIMAL(26,3)"},
            {"column": "foreign_amount", "source": "FOREIGN_AMOUNT", "type": "DECIMAL(26,3)"},
            {"column": "rate_mult", "source": "RATE_MULT", "type": "DECIMAL(15,8)"},
            {"column": "statistic_amount", "source": "STATISTIC_AMOUNT", "type": "DECIMAL(15,2)"},
            {"column": "fiscal_year", "source": "FISCAL_YEAR", "type": "INT"},
            {"column": "accounting_period", "source": "ACCOUNTING_PERIOD", "type": "INT"},
            {"column": "line_descr", "source": "LINE_DESCR", "type": "STRING"},
            {"column": "iu_anchor_flg", "source": "IU_ANCHOR_FLG", "type": "BOOLEAN"},
            {"column": "process_instance", "source": "PROCESS_INSTANCE", "type": "BIGINT"},
            {"column": "dttm_stamp_sec", "source": "DTTM_STAMP_SEC", "type": "TIMESTAMP"}
        ]
    }))
    .expect("journal mapping")
}

fn journal_records() -> Vec<Record> {
    (0..RECORDS)
        .map(|i| {
            let day = 1 + (i % 28);
            let v = json!({
                "attr:rownumber": i + 1,
                "BUSINESS_UNIT": "US001",
                "JOURNAL_ID": format!("{:010}", 4000 + i / 20),
                "JOURNAL_DATE": format!("2026-03-{day:02}"),
                "UNPOST_SEQ": 0,
                "JOURNAL_LINE": (i % 20) + 1,
                "LEDGER": "ACTUALS",
                "ACCOUNT": format!("{}", 600000 + i % 977),
                "DEPTID": format!("{}", 10000 + i % 31),
                "PRODUCT": " ",
                "CURRENCY_CD": "USD",
                "MONETARY_AMOUNT": format!("{}.{:03}", (i * 7919) % 100000, i % 1000),
                "FOREIGN_AMOUNT": format!("-{}.{:02}", (i * 104729) % 1000000, i % 100),
                "RATE_MULT": "1.00000000",
                "STATISTIC_AMOUNT": "0",
                "FISCAL_YEAR": 2026,
                "ACCOUNTING_PERIOD": "3",
                "LINE_DESCR": format!("Accrual for PO {:08} line {}", 1000 + i, i % 7),
                "IU_ANCHOR_FLG": i % 3 == 0,
                "PROCESS_INSTANCE": 12_345_678 + i,
                "DTTM_STAMP_SEC": format!("2026-03-{day:02}T{:02}:{:02}:{:02}.{:06}", i % 24, i % 60, (i * 7) % 60, i * 37 % 1_000_000),
            });
            match v {
                serde_json::Value::Object(m) => m.into(),
                _ => unreachable!(),
            }
        })
        .collect()
}

fn mapper() -> MappingMapper {
    journal_mapping().compile().expect("compiles")
}

/// Maps 1000 distinct 20-column journal lines; the counter reports rows per second.
#[divan::bench]
fn map_journal_line_20_columns(bencher: Bencher<'_, '_>) {
    let mapper = mapper();
    let records = journal_records();
    for r in &records {
        mapper.map(r).expect("maps");
    }
    bencher.counter(ItemsCount::new(RECORDS)).bench_local(|| {
        for r in &records {
            black_box(mapper.map(black_box(r)).ok());
        }
    });
}

fn iso_datetimes() -> Vec<String> {
    (0..RECORDS)
        .map(|i| {
            format!(
                "2026-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}",
                1 + i % 12,
                1 + i % 28,
                i % 24,
                i % 60,
                (i * 7) % 60,
                i * 37 % 1_000_000
            )
        })
        .collect()
}

/// Zone-less ISO `YYYY-MM-DDTHH:MM:SS.ffffff` in America/Chicago (day cache warm).
#[divan::bench]
fn parse_iso_datetime_chicago(bencher: Bencher<'_, '_>) {
    let zone = SourceTimeZone::from_name("America/Chicago").expect("zone");
    let texts = iso_datetimes();
    bencher.counter(ItemsCount::new(RECORDS)).bench_local(|| {
        for t in &texts {
            black_box(parse_timestamp(black_box(t), &zone).ok());
        }
    });
}

/// The same strings read as UTC (no zone lookup at all).
#[divan::bench]
fn parse_iso_datetime_utc(bencher: Bencher<'_, '_>) {
    let zone = SourceTimeZone::utc();
    let texts = iso_datetimes();
    bencher.counter(ItemsCount::new(RECORDS)).bench_local(|| {
        for t in &texts {
            black_box(parse_timestamp(black_box(t), &zone).ok());
        }
    });
}

/// SQLite upsert throughput (file database in WAL mode, `synchronous=NORMAL`), rows already
/// mapped: journal lines plus the three lineage columns, 10 000 rows per batch/transaction.
#[cfg(feature = "sqlite")]
mod sqlite_sink {
    use std::cell::Cell;

    use divan::counter::ItemsCount;
    use divan::Bencher;
    use sync_core::sqlite::SqliteSink;
    use sync_core::{Batch, Mapper, Row, Sink, Value, Window};

    const BATCH: usize = 10_000;

    fn rows(mapper: &sync_core::mapping::MappingMapper, first_line: i64) -> Vec<Row> {
        let records = super::journal_records();
        let loaded = chrono::Utc::now();
        (0..BATCH)
            .map(|i| {
                let mut row = mapper.map(&records[i % records.len()]).expect("maps");
                // Unique key per row: journal_line carries a running number.
                row[4] = Value::Int((first_line + i as i64) as i32);
                row.push(Value::String("run-bench".into()));
                row.push(Value::Timestamp(loaded));
                row.push(Value::String("psft:bench".into()));
                row
            })
            .collect()
    }

    fn setup() -> (
        tokio::runtime::Runtime,
        tempfile::TempDir,
        SqliteSink,
        sync_core::TableSchema,
        sync_core::mapping::MappingMapper,
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let sink = SqliteSink::open(dir.path().join("bench.db")).expect("open");
        let mapper = super::mapper();
        let schema = mapper.schema().with_lineage();
        rt.block_on(sink.prepare(&schema)).expect("prepare");
        (rt, dir, sink, schema, mapper)
    }

    fn batch(rows: Vec<Row>) -> Batch {
        let t = chrono::Utc::now();
        Batch {
            rows,
            window: Window::new(t - chrono::Duration::hours(1), t),
            run_id: "run-bench".into(),
            stream: "jrnl_ln".into(),
            as_of: None,
        }
    }

    /// New keys every batch: all inserts.
    #[divan::bench(sample_count = 10)]
    fn sqlite_insert_new_rows(bencher: Bencher<'_, '_>) {
        let (rt, _dir, sink, schema, mapper) = setup();
        let next = Cell::new(0i64);
        bencher
            .counter(ItemsCount::new(BATCH))
            .with_inputs(|| {
                let first = next.get();
                next.set(first + BATCH as i64);
                batch(rows(&mapper, first))
            })
            .bench_local_refs(|b| rt.block_on(sink.write(&schema, b)).expect("write"));
    }

    /// New keys every batch into an in-memory database: the CPU cost without file I/O.
    #[divan::bench(sample_count = 10)]
    fn sqlite_insert_new_rows_in_memory(bencher: Bencher<'_, '_>) {
        let (rt, _dir, _file_sink, schema, mapper) = setup();
        let sink = SqliteSink::in_memory().expect("open");
        rt.block_on(sink.prepare(&schema)).expect("prepare");
        let next = Cell::new(0i64);
        bencher
            .counter(ItemsCount::new(BATCH))
            .with_inputs(|| {
                let first = next.get();
                next.set(first + BATCH as i64);
                batch(rows(&mapper, first))
            })
            .bench_local_refs(|b| rt.block_on(sink.write(&schema, b)).expect("write"));
    }

    /// The same batch again: every row hits ON CONFLICT DO UPDATE.
    #[divan::bench(sample_count = 10)]
    fn sqlite_upsert_existing_rows(bencher: Bencher<'_, '_>) {
        let (rt, _dir, sink, schema, mapper) = setup();
        let b = batch(rows(&mapper, 0));
        rt.block_on(sink.write(&schema, &b)).expect("write");
        bencher
            .counter(ItemsCount::new(BATCH))
            .bench_local(|| rt.block_on(sink.write(&schema, &b)).expect("write"));
    }
}
