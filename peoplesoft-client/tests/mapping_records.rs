//! Mapping whole PeopleSoft-shaped records (alias-prefixed keys, native datetimes, `Y`/`N`
//! flags, single-space blanks) through a `MappingMapper` compiled with `PeopleSoftFormat`.

use std::sync::Arc;

use peoplesoft_client::values::PeopleSoftFormat;
use serde_json::json;
use sync_core::mapping::{Mapping, MappingMapper};
use sync_core::{Mapper, Record, Value};

fn record(v: serde_json::Value) -> Record {
    match v {
        serde_json::Value::Object(m) => m.into(),
        other => panic!("not an object: {other}"),
    }
}

fn journal_mapper() -> MappingMapper {
    let m: Mapping = serde_json::from_value(json!({
        "table": "jrnl_ln",
        "primary_key": ["business_unit", "journal_id", "journal_line"],
        "cursor_column": "dttm_stamp_sec",
        "source_time_zone": "America/New_York",
        "columns": [
            {"column": "business_unit", "source": "BUSINESS_UNIT", "type": "STRING", "nullable": false},
            {"column": "journal_id", "source": "JOURNAL_ID", "type": "STRING", "nullable": false},
            {"column": "journal_line", "source": "JOURNAL_LINE", "type": "INT", "nullable": false},
            {"column": "journal_date", "source": "JOURNAL_DATE", "type": "DATE", "nullable": false},
            {"column": "monetary_amount", "source": "MONETARY_AMOUNT", "type": "DECIMAL(38,2)"},
            {"column": "product", "source": "PRODUCT", "type": "STRING"},
            {"column": "posted", "source": "POSTED_FLG", "type": "BOOLEAN"},
            {"column": "posted_dt", "source": "POSTED_DATE", "type": "DATE"},
            {"column": "dttm_stamp_sec", "source": "DTTM_STAMP_SEC", "type": "TIMESTAMP"}
        ]
    }))
    .unwrap();
    m.compile_with(Arc::new(PeopleSoftFormat)).unwrap()
}

fn good_line() -> serde_json::Value {
    json!({
        "attr:rownumber": 1,
        "A.BUSINESS_UNIT": "US001",
        "A.JOURNAL_ID": "0000004711",
        "A.JOURNAL_LINE": 3,
        "A.JOURNAL_DATE": "2026-03-08",
        "A.MONETARY_AMOUNT": "12345678901234567890.12",
        "A.PRODUCT": " ",
        "A.POSTED_FLG": "Y",
        "A.POSTED_DATE": " ",
        "A.DTTM_STAMP_SEC": "2026-03-08-02.30.00.000000"
    })
}

#[test]
fn alias_prefixed_record_maps_exactly() {
    let m = journal_mapper();
    let row = m.map(&record(good_line())).unwrap();
    assert_eq!(row[0], Value::String("US001".into()));
    assert_eq!(row[2], Value::Int(3));
    assert_eq!(row[4].to_string(), "12345678901234567890.12");
    assert_eq!(
        row[5],
        Value::String(" ".into()),
        "STRING keeps the single-space blank"
    );
    assert_eq!(row[6], Value::Bool(true));
    assert_eq!(row[7], Value::Null, "blank DATE is NULL");
    // 02:30 does not exist in New York on 2026-03-08: 03:30 EDT = 07:30Z.
    assert_eq!(row[8].to_string(), "2026-03-08T07:30:00.000000Z");
}

#[test]
fn later_records_with_other_key_shapes_still_map() {
    let m = journal_mapper();
    m.map(&record(good_line())).unwrap();
    // No alias, lower case, a missing nullable field, an extra field: the remembered layout
    // does not fit, and the record is mapped by lookup.
    let other = json!({
        "business_unit": "US002",
        "JOURNAL_ID": "J2",
        "B.JOURNAL_LINE": "4",
        "JOURNAL_DATE": "2026-03-09T00:00:00",
        "MONETARY_AMOUNT": 0.1,
        "DTTM_STAMP_SEC": "2026-03-09T12:00:00Z",
        "EXTRA": "ignored"
    });
    let row = m.map(&record(other)).unwrap();
    assert_eq!(row[0], Value::String("US002".into()));
    assert_eq!(row[2], Value::Int(4));
    assert_eq!(row[3].to_string(), "2026-03-09");
    assert_eq!(row[4].to_string(), "0.10");
    assert_eq!(row[5], Value::Null);
    assert_eq!(row[8].to_string(), "2026-03-09T12:00:00.000000Z");
    // And the first shape still maps after that.
    let row = m.map(&record(good_line())).unwrap();
    assert_eq!(row[0], Value::String("US001".into()));
}

#[test]
fn every_field_error_of_a_record_is_reported() {
    let m = journal_mapper();
    m.map(&record(good_line())).unwrap();
    let mut bad = good_line();
    let o = bad.as_object_mut().unwrap();
    o.remove("A.JOURNAL_ID");
    o.insert("A.JOURNAL_LINE".into(), json!("3.5"));
    o.insert("A.MONETARY_AMOUNT".into(), json!("1.005"));
    o.insert("A.POSTED_FLG".into(), json!("X"));
    o.insert("A.DTTM_STAMP_SEC".into(), json!("08/03/2026 02:30"));
    o.insert("A.JOURNAL_DATE".into(), json!(" "));
    let errs = m.map(&record(bad)).unwrap_err();
    let cols: Vec<&str> = errs.iter().map(|e| e.column.as_str()).collect();
    assert_eq!(
        cols,
        [
            "journal_id",
            "journal_line",
            "journal_date",
            "monetary_amount",
            "posted",
            "dttm_stamp_sec"
        ],
        "{errs:#?}"
    );
    let by = |c: &str| errs.iter().find(|e| e.column == c).unwrap();
    assert_eq!(by("journal_id").value, None);
    assert_eq!(by("journal_id").field, "JOURNAL_ID");
    assert!(
        by("journal_id").reason.contains("missing")
            && by("journal_id").reason.contains("primary key")
    );
    assert_eq!(by("journal_line").field, "A.JOURNAL_LINE");
    assert_eq!(by("journal_line").value.as_deref(), Some("3.5"));
    assert!(by("journal_line").reason.contains("fractional"));
    assert!(by("journal_date").reason.contains("NOT NULL"));
    assert!(by("monetary_amount").reason.contains("DECIMAL(38,2)"));
    assert!(by("posted").reason.contains("Y or N"));
    assert!(by("dttm_stamp_sec").reason.contains("YYYY-MM-DD-HH.MM.SS"));
}

#[test]
fn mapper_is_shared_across_threads() {
    let m = std::sync::Arc::new(journal_mapper());
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let m = m.clone();
            std::thread::spawn(move || {
                for j in 0..500 {
                    let mut r = good_line();
                    r["A.JOURNAL_LINE"] = json!(i * 1000 + j);
                    let row = m.map(&record(r)).unwrap();
                    assert_eq!(row[2], Value::Int(i * 1000 + j));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}
