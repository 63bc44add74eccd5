//! Mapping whole records through a `MappingMapper` with the standard format. (PeopleSoft-shaped
//! records are tested in `peoplesoft-client/tests/mapping_records.rs`.)

use serde_json::json;
use sync_core::mapping::Mapping;
use sync_core::{Mapper, Record, Value};

fn record(v: serde_json::Value) -> Record {
    match v {
        serde_json::Value::Object(m) => m.into(),
        other => panic!("not an object: {other}"),
    }
}

#[test]
fn standard_record_maps_exactly() {
    let m: Mapping = serde_json::from_value(json!({
        "table": "journal_lines",
        "primary_key": ["journal_id"],
        "cursor_column": "updated",
        "source_time_zone": "America/New_York",
        "columns": [
            {"column": "journal_id", "source": "journal_id", "type": "STRING", "nullable": false},
            {"column": "amount", "source": "amount", "type": "DECIMAL(38,2)"},
            {"column": "posted", "source": "posted", "type": "BOOLEAN"},
            {"column": "posted_dt", "source": "posted_dt", "type": "DATE"},
            {"column": "updated", "source": "updated", "type": "TIMESTAMP"}
        ]
    }))
    .unwrap();
    let m = m.compile().unwrap();
    let row = m
        .map(&record(json!({
            "journal_id": "J1",
            "amount": "12345678901234567890.12",
            "posted": "true",
            "posted_dt": "",
            "updated": "2026-03-08T02:30:00"
        })))
        .unwrap();
    assert_eq!(row[1].to_string(), "12345678901234567890.12");
    assert_eq!(row[2], Value::Bool(true));
    assert_eq!(row[3], Value::Null, "empty DATE is NULL");
    // 02:30 does not exist in New York on 2026-03-08: 03:30 EDT = 07:30Z.
    assert_eq!(row[4].to_string(), "2026-03-08T07:30:00.000000Z");
    // Values only PeopleSoft writes are errors here, naming the standard forms.
    let errs = m
        .map(&record(json!({
            "journal_id": "J1", "posted": "Y", "updated": "2026-03-08-02.30.00.000000"
        })))
        .unwrap_err();
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(errs[0].reason.contains("true or false"), "{}", errs[0]);
    assert!(
        errs[1].reason.contains("YYYY-MM-DDTHH:MM:SS"),
        "{}",
        errs[1]
    );
}

#[test]
fn missing_not_null_field_is_an_error_but_missing_nullable_is_null() {
    let m: Mapping = serde_json::from_value(json!({
        "table": "t",
        "columns": [
            {"column": "a", "source": "A", "type": "STRING", "nullable": false},
            {"column": "b", "source": "B", "type": "STRING"}
        ]
    }))
    .unwrap();
    let m = m.compile().unwrap();
    let errs = m.map(&record(json!({"C": "x"}))).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].column, "a");
    assert!(errs[0].reason.contains("NOT NULL"));
    let row = m.map(&record(json!({"A": "x"}))).unwrap();
    assert_eq!(row, vec![Value::String("x".into()), Value::Null]);
    let errs = m.map(&record(json!({"A": null}))).unwrap_err();
    assert_eq!(errs[0].value.as_deref(), Some("null"));
}
