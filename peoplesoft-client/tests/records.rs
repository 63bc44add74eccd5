//! Typed records from sample payloads of every domain (tests/fixtures/*.json).

mod common;

use std::str::FromStr;

use chrono::NaiveDate;
use common::fixture;
use peoplesoft_client::records::{
    from_record, Customer, JobRow, JournalHeader, JournalLine, Paycheck, PurchaseOrder,
    PurchaseOrderLine, Vendor,
};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;

fn rows<T: DeserializeOwned + Serialize + PartialEq + Debug>(name: &str) -> Vec<T> {
    let v: serde_json::Value = serde_json::from_str(&fixture(name)).unwrap();
    let out: Vec<T> = v["data"]["query"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let mut r: sync_core::Record = r.as_object().unwrap().clone().into();
            r.remove("attr:rownumber");
            from_record(&r).unwrap_or_else(|e| panic!("{name}: {e}"))
        })
        .collect();
    // Every type round-trips through its own serialisation, extra fields included.
    for t in &out {
        let back: T = serde_json::from_value(serde_json::to_value(t).unwrap()).unwrap();
        assert_eq!(&back, t, "{name} round trip");
    }
    out
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

#[test]
fn vendors() {
    let v: Vec<Vendor> = rows("vendors.json");
    assert_eq!(v.len(), 3);
    assert_eq!(v[0].setid, "SHARE");
    assert_eq!(v[0].name2, None, "a single space is blank");
    assert_eq!(v[0].wthd_sw, Some(false));
    assert_eq!(v[1].name1.as_deref(), Some("Zürich Präzision AG"));
    assert_eq!(v[1].wthd_sw, Some(true));
    assert_eq!(v[1].extra["ZZ_SITE_RATING"], 4);
    assert_eq!(v[2].vendor_id, "0000000100");
    assert_eq!(v[2].last_activity_dt, Some(date("2026-01-15")));
}

#[test]
fn customers_keep_exact_money() {
    let c: Vec<Customer> = rows("customers.json");
    assert_eq!(c[0].cr_limit, Some(dec("250000.5")));
    assert_eq!(c[1].cr_limit, Some(dec("1000000000000000000.125")));
    assert_eq!(c[1].since_dt, None);
    assert_eq!(c[1].add_dt, Some(date("2024-02-29")));
}

#[test]
fn purchase_orders_and_lines() {
    let h: Vec<PurchaseOrder> = rows("po_headers.json");
    assert_eq!(h[0].po_id, "0000004711");
    assert_eq!(
        h[0].last_dttm_update.unwrap().to_string(),
        "2024-01-16 09:12:33"
    );
    let l: Vec<PurchaseOrderLine> = rows("po_lines.json");
    assert_eq!(l[0].line_nbr, 1);
    assert_eq!(l[1].line_nbr, 2, "line number sent as a string");
    assert_eq!(l[0].merchandise_amt, Some(dec("239.88")));
    assert_eq!(l[1].merchandise_amt, Some(dec("45.500")));
    assert_eq!(l[0].price_po, Some(dec("19.99000")));
    assert_eq!(l[1].inv_item_id, None);
    assert_eq!(
        l[1].last_dttm_update.unwrap().to_string(),
        "2024-01-16 09:12:33.500"
    );
}

#[test]
fn journals() {
    let h: Vec<JournalHeader> = rows("journal_headers.json");
    assert_eq!(h[0].unpost_seq, 0);
    assert_eq!(h[1].unpost_seq, 1);
    assert_eq!(h[1].fiscal_year, Some(2026));
    assert_eq!(h[0].journal_date, date("2026-01-31"));
    let l: Vec<JournalLine> = rows("journal_lines.json");
    let total: Decimal = l.iter().filter_map(|l| l.monetary_amount).sum();
    assert_eq!(
        total,
        Decimal::ZERO,
        "a balanced journal sums to exactly zero"
    );
    assert_eq!(l[1].monetary_amount, Some(dec("-1234.56")));
    assert_eq!(l[0].product, None);
}

#[test]
fn employees_job_rows() {
    let j: Vec<JobRow> = rows("job.json");
    assert_eq!(j.len(), 4);
    assert_eq!(j[2].effseq, 1);
    assert_eq!(j[1].std_hours, Some(dec("40.00")));
    assert_eq!(j[1].comprate, Some(dec("4791.666667")));
    assert_eq!(j[3].effdt, date("2026-07-01"));
    assert_eq!(
        j[0].is_current, None,
        "not flagged until a source computes it"
    );
}

#[test]
fn paychecks() {
    let p: Vec<Paycheck> = rows("paychecks.json");
    assert!(!p[0].off_cycle);
    assert_eq!(p[0].paycheck_nbr, Some(900123456));
    assert_eq!(
        p[0].net_pay.unwrap(),
        p[0].total_gross.unwrap() - p[0].total_taxes.unwrap() - p[0].total_deductions.unwrap()
    );
}
