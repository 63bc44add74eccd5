//! PeopleSoft value parsing throughput: a realistic 20-column journal line (JRNL_LN as QAS
//! JSON, alias-prefixed keys, amounts as strings, native datetimes) through a mapper compiled
//! with [`PeopleSoftFormat`], and native datetime parsing on its own.
//!
//! `cargo bench -p peoplesoft-client --bench values`

use std::sync::Arc;

use divan::counter::ItemsCount;
use divan::{black_box, Bencher};
use peoplesoft_client::values::{parse_timestamp, PeopleSoftFormat};
use serde_json::json;
use sync_core::convert::SourceTimeZone;
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
                "A.BUSINESS_UNIT": "US001",
                "A.JOURNAL_ID": format!("{:010}", 4000 + i / 20),
                "A.JOURNAL_DATE": format!("2026-03-{day:02}"),
                "A.UNPOST_SEQ": 0,
                "A.JOURNAL_LINE": (i % 20) + 1,
                "A.LEDGER": "ACTUALS",
                "A.ACCOUNT": format!("{}", 600000 + i % 977),
                "A.DEPTID": format!("{}", 10000 + i % 31),
                "A.PRODUCT": " ",
                "A.CURRENCY_CD": "USD",
                "A.MONETARY_AMOUNT": format!("{}.{:03}", (i * 7919) % 100000, i % 1000),
                "A.FOREIGN_AMOUNT": format!("-{}.{:02}", (i * 104729) % 1000000, i % 100),
                "A.RATE_MULT": "1.00000000",
                "A.STATISTIC_AMOUNT": "0",
                "A.FISCAL_YEAR": 2026,
                "A.ACCOUNTING_PERIOD": "3",
                "A.LINE_DESCR": format!("Accrual for PO {:08} line {}", 1000 + i, i % 7),
                "A.IU_ANCHOR_FLG": if i % 3 == 0 { "Y" } else { "N" },
                "A.PROCESS_INSTANCE": 12_345_678 + i,
                "A.DTTM_STAMP_SEC": format!("2026-03-{day:02}-{:02}.{:02}.{:02}.{:06}", i % 24, i % 60, (i * 7) % 60, i * 37 % 1_000_000),
            });
            match v {
                serde_json::Value::Object(m) => m.into(),
                _ => unreachable!(),
            }
        })
        .collect()
}

fn mapper() -> MappingMapper {
    journal_mapping()
        .compile_with(Arc::new(PeopleSoftFormat))
        .expect("compiles")
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

fn native_datetimes() -> Vec<String> {
    (0..RECORDS)
        .map(|i| {
            format!(
                "2026-{:02}-{:02}-{:02}.{:02}.{:02}.{:06}",
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

/// Native `YYYY-MM-DD-HH.MM.SS.ffffff` in America/Chicago (day cache warm).
#[divan::bench]
fn parse_native_datetime_chicago(bencher: Bencher<'_, '_>) {
    let zone = SourceTimeZone::from_name("America/Chicago").expect("zone");
    let texts = native_datetimes();
    bencher.counter(ItemsCount::new(RECORDS)).bench_local(|| {
        for t in &texts {
            black_box(parse_timestamp(black_box(t), &zone).ok());
        }
    });
}

/// The same strings read as UTC (no zone lookup at all).
#[divan::bench]
fn parse_native_datetime_utc(bencher: Bencher<'_, '_>) {
    let zone = SourceTimeZone::utc();
    let texts = native_datetimes();
    bencher.counter(ItemsCount::new(RECORDS)).bench_local(|| {
        for t in &texts {
            black_box(parse_timestamp(black_box(t), &zone).ok());
        }
    });
}

/// For comparison: chrono's format parser plus `Tz::from_local_datetime` for every value.
#[divan::bench]
fn chrono_format_parser_and_tz_lookup(bencher: Bencher<'_, '_>) {
    use chrono::TimeZone;
    let tz: chrono_tz::Tz = "America/Chicago".parse().expect("zone");
    let texts = native_datetimes();
    bencher.counter(ItemsCount::new(RECORDS)).bench_local(|| {
        for t in &texts {
            let local =
                chrono::NaiveDateTime::parse_from_str(black_box(t), "%Y-%m-%d-%H.%M.%S%.f").ok();
            black_box(local.and_then(|l| tz.from_local_datetime(&l).earliest()));
        }
    });
}
