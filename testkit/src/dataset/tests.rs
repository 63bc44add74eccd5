use std::collections::{BTreeMap, HashSet};

use chrono::{Duration, NaiveDate};
use rust_decimal::Decimal;
use serde_json::Value;

use super::*;

fn ds() -> Dataset {
    Dataset::manufacturer(7, 1.0)
}

fn all_rows(d: &Dataset) -> impl Iterator<Item = &Row> {
    d.tables.values().flat_map(|t| t.rows.iter())
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let a = ds().to_json_lines();
    let b = ds().to_json_lines();
    assert_eq!(a, b);
    assert_ne!(a, Dataset::manufacturer(8, 1.0).to_json_lines());
    // Mutations are deterministic too.
    let at = Dataset::history_end() + Duration::hours(2);
    let (mut x, mut y) = (ds(), ds());
    assert_eq!(
        x.update_rows(TABLE_PO_LINES, 5, at),
        y.update_rows(TABLE_PO_LINES, 5, at)
    );
    assert_eq!(
        x.insert_rows(TABLE_JOB, 2, at),
        y.insert_rows(TABLE_JOB, 2, at)
    );
    assert_eq!(x.to_json_lines(), y.to_json_lines());
}

#[test]
fn sizes_scale() {
    let d = ds();
    let total = d.total_rows();
    assert!((3_000..8_000).contains(&total), "{total} rows");
    for t in TABLES {
        assert!(d.table(t).is_some_and(|t| !t.is_empty()), "{t}");
    }
    let small = Dataset::manufacturer(7, 0.01);
    for t in TABLES {
        assert!(small.table(t).is_some_and(|t| !t.is_empty()), "{t}");
    }
    // The awkward rows exist at any scale.
    assert!(has_text(
        &small,
        TABLE_VENDORS,
        "NAME1",
        "'; DROP TABLE x; --"
    ));
    assert!(has_text(
        &small,
        TABLE_PO_LINES,
        "MERCHANDISE_AMT",
        "12345678901234.56"
    ));
    assert!(has_text(
        &small,
        TABLE_JOURNAL_LINES,
        "MONETARY_AMOUNT",
        "-12345678901234.56"
    ));
    let long = super::gen::long_description();
    assert!(has_text(&small, TABLE_JOURNAL_LINES, "LINE_DESCR", &long));
    assert!(has_text(&small, TABLE_PO_LINES, "ITEM_DESCR", &long));
    assert!(small
        .table(TABLE_VENDORS)
        .unwrap()
        .rows()
        .iter()
        .any(|r| r.cursor_text() == "2025-11-02-01.30.00.000000"));
    assert!(small.total_rows() < 400, "{}", small.total_rows());
    let big = Dataset::manufacturer(7, 4.0).total_rows();
    assert!(big > 3 * total, "{big} vs {total}");
}

#[test]
fn keys_are_unique_and_rows_ordered_by_local_cursor_then_key() {
    let d = ds();
    for t in d.tables.values() {
        let mut seen = HashSet::new();
        for r in t.rows() {
            assert!(
                seen.insert(r.key()),
                "duplicate key {:?} in {}",
                r.key(),
                t.name()
            );
        }
        for w in t.rows().windows(2) {
            assert!(w[0].order() <= w[1].order(), "order in {}", t.name());
        }
    }
}

#[test]
fn cursors_are_in_history_and_rendered_local() {
    let d = ds();
    for r in all_rows(&d) {
        assert!(r.cursor() >= Dataset::history_start(), "{}", r.cursor());
        assert!(r.cursor() < Dataset::history_end(), "{}", r.cursor());
        assert_eq!(r.cursor_text(), crate::sitetime::native(r.cursor()));
        let cf = r.spec().cursor.clone();
        assert_eq!(r.get(&cf).and_then(Value::as_str), Some(r.cursor_text()));
        assert_eq!(r.cursor_text().len(), 26);
    }
}

fn has_text(d: &Dataset, table: &str, field: &str, want: &str) -> bool {
    d.table(table)
        .unwrap()
        .rows()
        .iter()
        .any(|r| r.get(field).and_then(Value::as_str) == Some(want))
}

#[test]
fn awkward_values_are_present() {
    let d = ds();
    for name in [
        "O'Brien & Sons Fasteners",
        "Müller GmbH",
        "東京精機株式会社",
        "Back\\slash Tooling \\ Dies",
        "\"Quoted\" Supply Co.",
        "'; DROP TABLE x; --",
        " ",
        "Bolt 🔩 Emporium",
    ] {
        assert!(has_text(&d, TABLE_VENDORS, "NAME1", name), "{name:?}");
    }
    assert!(has_text(
        &d,
        TABLE_PO_LINES,
        "MERCHANDISE_AMT",
        "12345678901234.56"
    ));
    assert!(has_text(
        &d,
        TABLE_JOURNAL_LINES,
        "MONETARY_AMOUNT",
        "12345678901234.56"
    ));
    assert!(has_text(
        &d,
        TABLE_JOURNAL_LINES,
        "MONETARY_AMOUNT",
        "-12345678901234.56"
    ));
    let long = super::gen::long_description();
    assert_eq!(long.chars().count(), 3000);
    assert!(has_text(&d, TABLE_PO_LINES, "ITEM_DESCR", &long));
    assert!(has_text(&d, TABLE_JOURNAL_LINES, "LINE_DESCR", &long));
    let descrs = d.table(TABLE_JOURNAL_LINES).unwrap().rows();
    assert!(descrs
        .iter()
        .any(|r| r.text("LINE_DESCR").unwrap().contains("\r\n")));
    // Money as JSON numbers: exactly representable values, including fractions.
    let limits: Vec<&Value> = d
        .table(TABLE_CUSTOMERS)
        .unwrap()
        .rows()
        .iter()
        .map(|r| r.get("CREDIT_LIMIT").unwrap())
        .collect();
    assert!(limits.iter().all(|v| v.is_number()));
    assert!(limits.iter().any(|v| v.as_f64() == Some(1500.25)));
    for r in d.table(TABLE_JOB).unwrap().rows() {
        let v = r.get("ANNUAL_RT").unwrap();
        let f = v.as_f64().unwrap();
        assert_eq!((f * 4.0).fract(), 0.0, "{v}");
        let dec: Decimal = v.to_string().parse().unwrap();
        assert_eq!(dec * Decimal::from(4), Decimal::from((f * 4.0) as i64));
    }
    // Money as strings elsewhere, always with two decimals.
    for r in d.table(TABLE_PAYCHECKS).unwrap().rows() {
        let s = r.text("GROSS_PAY").unwrap();
        assert!(r.get("GROSS_PAY").unwrap().is_string());
        assert_eq!(s.split('.').nth(1).map(str::len), Some(2), "{s}");
    }
}

#[test]
fn dst_fall_back_rows_share_local_text() {
    let d = ds();
    let rows: Vec<&Row> = d
        .table(TABLE_VENDORS)
        .unwrap()
        .rows()
        .iter()
        .filter(|r| r.cursor_text() == "2025-11-02-01.30.00.000000")
        .collect();
    assert_eq!(rows.len(), 2);
    assert_ne!(rows[0].cursor(), rows[1].cursor());
}

#[test]
fn shared_cursors_and_future_dated_job_rows() {
    let d = ds();
    let mut by_cursor: BTreeMap<&str, usize> = BTreeMap::new();
    for r in d.table(TABLE_VENDORS).unwrap().rows() {
        *by_cursor.entry(r.cursor_text()).or_default() += 1;
    }
    assert!(by_cursor.values().any(|&n| n >= 4));
    let end = crate::sitetime::to_local(Dataset::history_end()).date();
    let future = d
        .table(TABLE_JOB)
        .unwrap()
        .rows()
        .iter()
        .filter(|r| NaiveDate::parse_from_str(&r.text("EFFDT").unwrap(), "%Y-%m-%d").unwrap() > end)
        .count();
    assert!(future >= 5, "{future} future-dated rows");
    // Effective-dated history: several rows per employee.
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    for r in d.table(TABLE_JOB).unwrap().rows() {
        *per.entry(r.text("EMPLID").unwrap()).or_default() += 1;
    }
    assert!(per.values().any(|&n| n >= 3));
}

#[test]
fn journals_balance() {
    let d = ds();
    let mut sums: BTreeMap<(String, String, String), (Decimal, usize)> = BTreeMap::new();
    for r in d.table(TABLE_JOURNAL_LINES).unwrap().rows() {
        let k = (
            r.text("BUSINESS_UNIT").unwrap(),
            r.text("JOURNAL_ID").unwrap(),
            r.text("UNPOST_SEQ").unwrap(),
        );
        let a: Decimal = r.text("MONETARY_AMOUNT").unwrap().parse().unwrap();
        let e = sums.entry(k).or_default();
        e.0 += a;
        e.1 += 1;
    }
    assert!(sums.keys().any(|k| k.2 == "1"), "an unpost reversal exists");
    for (k, (sum, n)) in sums {
        if n >= 2 {
            assert_eq!(sum, Decimal::ZERO, "{k:?}");
        }
    }
}

#[test]
fn update_rows_bumps_cursor_and_changes_values() {
    let mut d = ds();
    let at = Dataset::history_end() + Duration::minutes(90);
    for t in TABLES {
        let before: BTreeMap<Vec<String>, String> = d
            .table(t)
            .unwrap()
            .rows()
            .iter()
            .map(|r| (r.key(), r.to_json(1)))
            .collect();
        let keys = d.update_rows(t, 4, at);
        assert_eq!(keys.len(), 4);
        let table = d.table(t).unwrap();
        for k in &keys {
            let kr: Vec<&str> = k.iter().map(String::as_str).collect();
            let r = table.get(&kr).unwrap();
            assert_eq!(r.cursor(), at);
            assert_ne!(before[k], r.to_json(1), "{t} row {k:?} unchanged");
        }
        // The updated rows are the last ones in wire order.
        let last: Vec<Vec<String>> = table.rows()[table.len() - 4..]
            .iter()
            .map(Row::key)
            .collect();
        for k in &keys {
            assert!(last.contains(k));
        }
        assert_eq!(table.len(), before.len());
    }
}

#[test]
fn insert_rows_and_late_rows() {
    let mut d = ds();
    let at = Dataset::history_end() + Duration::hours(5);
    for t in TABLES {
        let n0 = d.table(t).unwrap().len();
        let keys = d.insert_rows(t, 3, at);
        assert_eq!(keys.len(), 3);
        assert_eq!(d.table(t).unwrap().len(), n0 + 3, "{t}");
        for k in keys {
            let kr: Vec<&str> = k.iter().map(String::as_str).collect();
            assert_eq!(d.table(t).unwrap().get(&kr).unwrap().cursor(), at);
        }
    }
    let late_at = at - Duration::minutes(30);
    let keys = d.insert_late_rows(TABLE_JOURNAL_LINES, 2, late_at);
    let t = d.table(TABLE_JOURNAL_LINES).unwrap();
    let kr: Vec<&str> = keys[0].iter().map(String::as_str).collect();
    let r = t.get(&kr).unwrap();
    assert_eq!(r.cursor(), late_at);
    // Late rows sort before the rows inserted at `at`.
    let pos = t.rows().iter().position(|x| x.key() == keys[0]).unwrap();
    assert!(t.rows()[pos + 2..].iter().all(|x| x.cursor() == at));
}

#[test]
fn set_field_and_remove() {
    let mut d = ds();
    let at = Dataset::history_end() + Duration::hours(1);
    let key = d.table(TABLE_VENDORS).unwrap().rows()[0].key();
    let kr: Vec<&str> = key.iter().map(String::as_str).collect();
    assert!(d.set_field(TABLE_VENDORS, &kr, "A.NAME1", Value::from("Renamed"), at));
    let r = d.table(TABLE_VENDORS).unwrap().get(&kr).unwrap();
    assert_eq!(r.text("NAME1").as_deref(), Some("Renamed"));
    assert_eq!(r.cursor(), at);
    assert!(r.to_json(3).contains("\"A.NAME1\":\"Renamed\""));
    assert!(!d.set_field(TABLE_VENDORS, &["SHARE", "nope"], "NAME1", Value::Null, at));
    assert!(d.remove_row(TABLE_VENDORS, &kr).is_some());
    assert!(d.table(TABLE_VENDORS).unwrap().get(&kr).is_none());
}

#[test]
fn record_has_alias_prefixed_names() {
    let d = ds();
    let r = &d.table(TABLE_PO_LINES).unwrap().rows()[0];
    let rec = r.to_record();
    assert_eq!(rec.len(), r.spec().fields.len());
    assert!(rec.keys().all(|k| k.starts_with("A.")));
    let parsed: serde_json::Map<String, Value> = serde_json::from_str(&r.to_json(9)).unwrap();
    assert_eq!(parsed["attr:rownumber"], Value::from(9));
    for (k, v) in &rec {
        assert_eq!(&parsed[k], v);
    }
}

#[test]
fn journal_generator_matches_rows_and_is_cheap() {
    let g = JournalLines::new(3, 1_005);
    assert_eq!(g.len(), 1_005);
    let mut fast = Vec::new();
    g.write_json(0..g.len(), 1, &mut fast);
    let fast: Vec<Value> = serde_json::from_slice(&[b"[", &fast[..], b"]"].concat()).unwrap();
    assert_eq!(fast.len(), 1_005);
    for (i, v) in fast.iter().enumerate() {
        let want: Value = serde_json::from_str(&g.row(i as u64).to_json(i as u64 + 1)).unwrap();
        assert_eq!(v, &want, "line {i}");
    }
    // Byte-identical, too.
    let mut one = Vec::new();
    g.write_json(40..41, 41, &mut one);
    assert_eq!(String::from_utf8(one).unwrap(), g.row(40).to_json(41));
    // Awkward values and balance.
    let rows: Vec<Row> = g.iter().collect();
    assert!(rows
        .iter()
        .any(|r| r.text("MONETARY_AMOUNT").as_deref() == Some("12345678901234.56")));
    assert!(rows
        .iter()
        .any(|r| r.text("LINE_DESCR").unwrap().chars().count() == 3000));
    let sum: Decimal = rows[..10]
        .iter()
        .map(|r| {
            r.text("MONETARY_AMOUNT")
                .unwrap()
                .parse::<Decimal>()
                .unwrap()
        })
        .sum();
    assert_eq!(sum, Decimal::ZERO);
    // Index order is wire order.
    for w in rows.windows(2) {
        assert!(w[0].order() < w[1].order());
    }
    // Ten million lines: nothing materialised.
    let big = JournalLines::new(3, 10_000_000);
    assert!(std::mem::size_of_val(&big) < 1024);
    let last = big.row(9_999_999);
    assert_eq!(last.text("JOURNAL_LINE").as_deref(), Some("10"));
    let (a, b) = big.cursor_range().unwrap();
    assert!(a < b);
}

#[test]
fn journal_generator_ranges_are_half_open() {
    let g = JournalLines::new(5, 2_000);
    let c = |i: u64| crate::sitetime::to_local(g.cursor(i));
    // [cursor(50), cursor(120)) = lines 50..120 (journals 5..12).
    assert_eq!(g.index_range_local(Some(c(50)), Some(c(120))), 50..120);
    assert_eq!(g.index_range_local(None, Some(c(10))), 0..10);
    assert_eq!(g.index_range_local(Some(c(1_990)), None), 1_990..2_000);
    assert_eq!(g.index_range_local(Some(c(100)), Some(c(100))), 100..100);
    assert_eq!(g.index_range(g.cursor(30), g.cursor(40)), 30..40);
    for i in [0u64, 37, 999, 1_999] {
        let r = g.row(i);
        assert_eq!(r.cursor(), g.cursor(i));
    }
}

#[test]
#[should_panic(expected = "fall-back")]
fn journal_generator_refuses_a_fall_back_span() {
    let start = chrono::TimeZone::with_ymd_and_hms(&Utc, 2025, 10, 30, 0, 0, 0).unwrap();
    let _ = JournalLines::with_layout(1, 100, 10, start, Duration::days(10));
}

#[test]
#[ignore = "timing probe; run with --release --ignored --nocapture"]
fn journal_generator_render_speed() {
    let g = JournalLines::new(1, 1_000_000);
    let mut out = Vec::with_capacity(450_000_000);
    let t = std::time::Instant::now();
    g.write_json(0..g.len(), 1, &mut out);
    let e = t.elapsed();
    eprintln!(
        "rendered {} lines, {} MB in {e:?} ({:.0} lines/s)",
        g.len(),
        out.len() / 1_000_000,
        g.len() as f64 / e.as_secs_f64()
    );
}

#[test]
fn cents_text_matches_decimal() {
    for c in [
        0i64,
        1,
        -1,
        5,
        -5,
        99,
        100,
        -100,
        123_456,
        -1_234_567_890_123_456,
        i64::MAX / 7,
    ] {
        let mut s = String::new();
        super::journal::push_cents_for_test(&mut s, c);
        assert_eq!(s, Decimal::new(c, 2).to_string(), "{c}");
    }
}

#[test]
fn every_row_maps_through_sync_core() {
    use sync_core::Mapper as _;
    let d = ds();
    let g = JournalLines::new(2, 2_000);
    let mut tables: Vec<(Arc<TableSpec>, Vec<Row>)> = d
        .tables
        .values()
        .map(|t| (t.spec_arc(), t.rows().to_vec()))
        .collect();
    tables.push((Arc::new(g.spec().clone()), g.iter().collect()));
    for (spec, rows) in tables {
        let mapping = spec.mapping(&format!("nwf_{}", spec.name));
        assert_eq!(mapping.primary_key.len(), spec.key.len());
        let mapper = mapping
            .compile_with(Arc::new(peoplesoft_client::values::PeopleSoftFormat))
            .unwrap_or_else(|e| panic!("{}: {e}", spec.name));
        let schema = mapping.schema();
        let cursor_col = schema
            .columns
            .iter()
            .position(|c| Some(&c.name) == mapping.cursor_column.as_ref())
            .unwrap();
        for r in &rows {
            let row = mapper
                .map(&r.to_record())
                .unwrap_or_else(|e| panic!("{} {:?}: {e:?}", spec.name, r.key()));
            // Unambiguous local times convert back to the row's instant.
            if sitetime::local_to_utc(r.cursor_local()) == r.cursor() {
                assert_eq!(
                    row[cursor_col],
                    sync_core::Value::Timestamp(r.cursor()),
                    "{} {:?}",
                    spec.name,
                    r.key()
                );
            }
        }
    }
}

#[test]
fn cursor_date_fields_follow_the_cursor() {
    let mut d = ds();
    for (t, f) in [
        (TABLE_VENDORS, "LAST_ACTIVITY_DT"),
        (TABLE_CUSTOMERS, "CUST_STATUS_DT"),
    ] {
        for r in d.table(t).unwrap().rows() {
            assert_eq!(
                r.text(f).unwrap(),
                r.cursor_local().date().format("%Y-%m-%d").to_string()
            );
        }
        let at = Dataset::history_end() + Duration::days(3);
        let keys = d.update_rows(t, 2, at);
        let kr: Vec<&str> = keys[0].iter().map(String::as_str).collect();
        assert_eq!(
            d.table(t).unwrap().get(&kr).unwrap().text(f).as_deref(),
            Some("2026-11-03")
        );
    }
    // Paychecks are confirmed on their check date.
    for r in d.table(TABLE_PAYCHECKS).unwrap().rows() {
        assert_eq!(r.text("CHECK_DT").unwrap(), r.cursor_text()[..10]);
    }
}
