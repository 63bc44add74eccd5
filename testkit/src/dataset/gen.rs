//! Generation of the Northwind Forge tables.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use peoplesoft_client::records::{
    key_fields, Customer, JobRow, JournalLine, Paycheck, PurchaseOrderLine, Vendor,
};
use rust_decimal::Decimal;
use serde_json::Value;

use super::{
    Dataset, FieldSpec, FieldType, JsonRepr, Row, Table, TableSpec, BUSINESS_UNITS,
    QUERY_CUSTOMERS, QUERY_JOB, QUERY_JOURNAL_LINES, QUERY_PAYCHECKS, QUERY_PO_LINES,
    QUERY_VENDORS, SETID, TABLE_CUSTOMERS, TABLE_JOB, TABLE_JOURNAL_LINES, TABLE_PAYCHECKS,
    TABLE_PO_LINES, TABLE_VENDORS,
};
use crate::sitetime;

// ---------------------------------------------------------------------------------------------
// Specs

fn f(name: &str, field_type: FieldType, length: u32, decimals: u32, json: JsonRepr) -> FieldSpec {
    FieldSpec {
        name: name.to_string(),
        alias: "A".to_string(),
        field_type,
        length,
        decimals,
        json,
    }
}

fn ch(name: &str, len: u32) -> FieldSpec {
    f(name, FieldType::Character, len, 0, JsonRepr::String)
}
fn long(name: &str, len: u32) -> FieldSpec {
    f(name, FieldType::LongCharacter, len, 0, JsonRepr::String)
}
fn date(name: &str) -> FieldSpec {
    f(name, FieldType::Date, 10, 0, JsonRepr::String)
}
fn dttm(name: &str) -> FieldSpec {
    f(name, FieldType::DateTime, 26, 0, JsonRepr::String)
}
fn int(name: &str, len: u32) -> FieldSpec {
    f(name, FieldType::Number, len, 0, JsonRepr::Number)
}
fn money_str(name: &str, len: u32, dec: u32) -> FieldSpec {
    f(name, FieldType::SignedNumber, len, dec, JsonRepr::String)
}
fn money_num(name: &str, len: u32, dec: u32) -> FieldSpec {
    f(name, FieldType::SignedNumber, len, dec, JsonRepr::Number)
}

/// A table of the sample dataset. Its `key` comes from peoplesoft-client's record catalogue
/// (`records::<Record>::FIELDS`); the fields are the sample's own selection, with the lengths
/// and JSON forms the generator needs.
fn spec(
    name: &str,
    record: &str,
    query: &str,
    fields: Vec<FieldSpec>,
    key: &[&str],
    cursor: &str,
) -> TableSpec {
    TableSpec {
        name: name.into(),
        record: record.into(),
        query: query.into(),
        fields,
        key: key.iter().map(|s| s.to_string()).collect(),
        cursor: cursor.into(),
        cursor_dates: Vec::new(),
    }
}

pub(super) fn vendor_spec() -> TableSpec {
    let mut t = spec(
        TABLE_VENDORS,
        "VENDOR",
        QUERY_VENDORS,
        vec![
            ch("SETID", 5),
            ch("VENDOR_ID", 10),
            ch("NAME1", 40),
            ch("VENDOR_STATUS", 1),
            ch("VENDOR_CLASS", 1),
            ch("CITY", 30),
            ch("COUNTRY", 3),
            ch("WTHD_SW", 1),
            date("LAST_ACTIVITY_DT"),
            dttm("LASTUPDDTTM"),
        ],
        &key_fields(Vendor::FIELDS),
        "LASTUPDDTTM",
    );
    t.cursor_dates = vec!["LAST_ACTIVITY_DT".into()];
    t
}

pub(super) fn customer_spec() -> TableSpec {
    let mut t = spec(
        TABLE_CUSTOMERS,
        "CUSTOMER",
        QUERY_CUSTOMERS,
        vec![
            ch("SETID", 5),
            ch("CUST_ID", 15),
            ch("NAME1", 40),
            ch("CUST_STATUS", 1),
            date("CUST_STATUS_DT"),
            money_num("CREDIT_LIMIT", 16, 2),
            ch("CURRENCY_CD", 3),
            dttm("LASTUPDDTTM"),
        ],
        &key_fields(Customer::FIELDS),
        "LASTUPDDTTM",
    );
    t.cursor_dates = vec!["CUST_STATUS_DT".into()];
    t
}

pub(super) fn po_spec() -> TableSpec {
    spec(
        TABLE_PO_LINES,
        "PO_LINE",
        QUERY_PO_LINES,
        vec![
            ch("BUSINESS_UNIT", 5),
            ch("PO_ID", 10),
            int("LINE_NBR", 5),
            ch("VENDOR_ID", 10),
            date("PO_DT"),
            ch("PO_STATUS", 2),
            long("ITEM_DESCR", 3000),
            f("QTY_PO", FieldType::SignedNumber, 15, 4, JsonRepr::Number),
            money_str("PRICE_PO", 15, 5),
            money_str("MERCHANDISE_AMT", 26, 3),
            ch("CURRENCY_CD", 3),
            dttm("LAST_DTTM_UPDATE"),
        ],
        &key_fields(PurchaseOrderLine::FIELDS),
        "LAST_DTTM_UPDATE",
    )
}

pub(super) fn journal_spec() -> TableSpec {
    spec(
        TABLE_JOURNAL_LINES,
        "JRNL_LN",
        QUERY_JOURNAL_LINES,
        vec![
            ch("BUSINESS_UNIT", 5),
            ch("JOURNAL_ID", 10),
            date("JOURNAL_DATE"),
            int("UNPOST_SEQ", 3),
            int("JOURNAL_LINE", 9),
            ch("LEDGER", 10),
            ch("ACCOUNT", 10),
            ch("DEPTID", 10),
            money_str("MONETARY_AMOUNT", 26, 3),
            money_str("FOREIGN_AMOUNT", 26, 3),
            ch("CURRENCY_CD", 3),
            long("LINE_DESCR", 3000),
            ch("JRNL_HDR_STATUS", 1),
            dttm("DTTM_STAMP_SEC"),
        ],
        &key_fields(JournalLine::FIELDS),
        "DTTM_STAMP_SEC",
    )
}

pub(super) fn job_spec() -> TableSpec {
    spec(
        TABLE_JOB,
        "JOB",
        QUERY_JOB,
        vec![
            ch("EMPLID", 11),
            int("EMPL_RCD", 3),
            date("EFFDT"),
            int("EFFSEQ", 3),
            ch("DEPTID", 10),
            ch("JOBCODE", 6),
            ch("EMPL_STATUS", 1),
            ch("ACTION", 3),
            ch("COMPANY", 3),
            ch("PAYGROUP", 3),
            money_num("ANNUAL_RT", 18, 3),
            dttm("LASTUPDDTTM"),
        ],
        &key_fields(JobRow::FIELDS),
        "LASTUPDDTTM",
    )
}

pub(super) fn paycheck_spec() -> TableSpec {
    spec(
        TABLE_PAYCHECKS,
        "PAY_CHECK",
        QUERY_PAYCHECKS,
        vec![
            ch("COMPANY", 3),
            ch("PAYGROUP", 3),
            date("PAY_END_DT"),
            ch("OFF_CYCLE", 1),
            int("PAGE_NUM", 4),
            int("LINE_NUM", 2),
            int("SEPCHK", 2),
            ch("EMPLID", 11),
            date("CHECK_DT"),
            money_str("GROSS_PAY", 10, 2),
            money_str("NET_PAY", 10, 2),
            dttm("LASTUPDDTTM"),
        ],
        &key_fields(Paycheck::FIELDS),
        "LASTUPDDTTM",
    )
}

// ---------------------------------------------------------------------------------------------
// Value pools

/// Awkward vendor names, placed at the first vendor ids.
const AWKWARD_VENDOR_NAMES: &[&str] = &[
    "O'Brien & Sons Fasteners",
    "Müller GmbH",
    "東京精機株式会社",
    "Back\\slash Tooling \\ Dies",
    "\"Quoted\" Supply Co.",
    "'; DROP TABLE x; --",
    " ",
    "Société d'Équipement Lévis",
    "Bolt 🔩 Emporium",
    "Tab\tSeparated Ltd",
    "Comma, Colon: and Semi; Inc.",
];

const AWKWARD_CUSTOMER_NAMES: &[&str] = &[
    "D'Angelo Manufacturing",
    "Ωmega Systems ÅB",
    "Zürich Präzision AG",
    " ",
    "\"Best\" Rail Car Co.",
    "大阪重工",
    "Robert'); DROP TABLE customers;--",
];

const NAME_PREFIX: &[&str] = &[
    "Acme",
    "Great Lakes",
    "Midwest",
    "Prairie",
    "Lakeshore",
    "Summit",
    "Ironwood",
    "Keystone",
    "Pioneer",
    "Northstar",
    "Cascade",
    "Riverbend",
    "Blue Ridge",
    "Granite",
    "Harbor",
    "Calumet",
    "Maumee",
    "Ontario",
    "Hoosier",
    "Buckeye",
];
const VENDOR_SUFFIX: &[&str] = &[
    "Steel Supply",
    "Industrial Gases",
    "Fasteners",
    "Tooling",
    "Logistics",
    "Bearings",
    "Castings",
    "Abrasives",
    "Hydraulics",
    "Electric",
    "Packaging",
    "Freight Lines",
    "Lubricants",
    "Safety Products",
    "Refractories",
    "Alloys",
];
const CUSTOMER_SUFFIX: &[&str] = &[
    "Motors",
    "Rail Car",
    "Agricultural Equipment",
    "Aerospace",
    "Energy",
    "Mining",
    "Heavy Equipment",
    "Marine",
    "Trucking",
    "Construction",
];
const LEGAL: &[&str] = &["Inc.", "LLC", "Co.", "Corp.", "Ltd."];

const CITIES: &[(&str, &str)] = &[
    ("Chicago", "USA"),
    ("Gary", "USA"),
    ("Dayton", "USA"),
    ("Cleveland", "USA"),
    ("Milwaukee", "USA"),
    ("Detroit", "USA"),
    ("Hamilton", "CAN"),
    ("Montréal", "CAN"),
    ("Monterrey", "MEX"),
    ("Stuttgart", "DEU"),
    ("Tokyo", "JPN"),
    ("Sheffield", "GBR"),
];

const ITEMS: &[&str] = &[
    "Hot-rolled steel coil, 0.25\" x 48\"",
    "Argon cylinder, 300 cu ft",
    "Hex bolt M12x80, grade 10.9 (box of 100)",
    "Carbide insert CNMG 432",
    "Forging die set, 2\u{00BD}\" shank",
    "Hydraulic hose assembly\nrush order — deliver to dock 4",
    "Bearing 6205-2RS",
    "Safety glasses, ANSI Z87.1",
    "Refractory brick, 9\" straight",
    "Freight: Gary → Hamilton",
    "C:\\Specs\\die-4711.pdf per drawing",
    " ",
    "Lubricant ISO VG 68, 55 gal drum",
    "Nickel alloy bar 625, Ø 50 mm",
];

const DESCRS: &[&str] = &[
    "Accrue utilities",
    "Reclass freight to COGS",
    "Month-end labor accrual",
    "Depreciation — plant equipment",
    "Intercompany US001/CAN01",
    "FX revaluation CAD\u{2192}USD",
    "Correcting entry per O'Brien's memo",
    "Scrap write-off\r\nsee ticket #4411",
    "Path C:\\GL\\uploads\\jan.csv",
    " ",
    "Müller GmbH invoice 2025-0042",
    "'; DROP TABLE x; --",
    "Inventory count adj. \"cycle 7\"",
    "東京精機 tooling rebate",
];

const ACCOUNTS: &[&str] = &[
    "100100", "120000", "140000", "150000", "200000", "210000", "400000", "500100", "510000",
    "600100", "610000", "620000",
];

/// (DEPTID, business unit index).
const DEPTS: &[(&str, usize)] = &[
    ("10000", 0),
    ("11000", 0),
    ("12000", 0),
    ("20100", 1),
    ("20200", 1),
    ("30100", 2),
    ("30200", 2),
    ("40100", 3),
    ("40200", 3),
];

/// (JOBCODE, base annual rate).
const JOBCODES: &[(&str, u32)] = &[
    ("100010", 145_000),
    ("110100", 72_000),
    ("120100", 64_000),
    ("200100", 58_000),
    ("200200", 54_000),
    ("300100", 61_000),
    ("400100", 128_000),
];

/// A deterministic 3000-character description with quotes, accents and a newline.
pub(crate) fn long_description() -> String {
    let unit = "Line 1: \"Spec\" per O'Brien — Ø 50 mm, Müller\\QA;\n";
    let mut s: String = unit.chars().cycle().take(2995).collect();
    s.push_str(" END.");
    debug_assert_eq!(s.chars().count(), 3000);
    s
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}
fn n(v: i64) -> Value {
    Value::from(v)
}
/// An exactly representable money number, in quarters of a unit.
fn quarters(q: i64) -> Value {
    if q % 4 == 0 {
        Value::from(q / 4)
    } else {
        Value::from(q as f64 / 4.0)
    }
}
fn dec(d: Decimal) -> Value {
    Value::String(d.to_string())
}
fn cents(c: i64) -> Decimal {
    Decimal::new(c, 2)
}
fn d(v: NaiveDate) -> Value {
    Value::String(sitetime::date_text(v))
}

fn pick<'a, T>(rng: &mut fastrand::Rng, xs: &'a [T]) -> &'a T {
    &xs[rng.usize(0..xs.len())]
}

fn local_date(t: DateTime<Utc>) -> NaiveDate {
    sitetime::to_local(t).date()
}

fn random_instant(rng: &mut fastrand::Rng, whole_seconds: bool) -> DateTime<Utc> {
    let start = Dataset::history_start();
    let span = (Dataset::history_end() - start).num_seconds();
    let mut t = start + Duration::seconds(rng.i64(0..span));
    if !whole_seconds {
        t += Duration::microseconds(rng.i64(0..1_000_000));
    }
    t
}

/// `base * scale` rows, but at least `min` so the deliberate awkward rows always exist.
fn count(base: usize, scale: f64, min: usize) -> usize {
    let scale = if scale.is_finite() && scale > 0.0 {
        scale
    } else {
        0.0
    };
    ((base as f64 * scale).round() as usize).max(min)
}

#[derive(Debug, Clone)]
struct Employee {
    emplid: String,
    company: &'static str,
    paygroup: &'static str,
    dept: &'static str,
    jobcode: &'static str,
    rate_quarters: i64,
}

/// Counters and reference data, kept so that inserted rows continue the sequences.
#[derive(Debug, Clone)]
pub(super) struct GenState {
    rng: fastrand::Rng,
    next_vendor: u64,
    next_customer: u64,
    next_po: u64,
    next_journal: u64,
    next_emplid: u64,
    vendor_ids: Vec<String>,
    employees: Vec<Employee>,
    pay_pages: HashMap<(String, String, NaiveDate, &'static str), (i64, i64)>,
    long_descr: String,
}

impl GenState {
    fn vendor_values(&mut self, i: u64) -> Vec<Value> {
        let id = format!("{:010}", i);
        let rng = &mut self.rng;
        let name = if (i as usize) <= AWKWARD_VENDOR_NAMES.len() && i >= 1 {
            AWKWARD_VENDOR_NAMES[i as usize - 1].to_string()
        } else {
            format!(
                "{} {} {}",
                pick(rng, NAME_PREFIX),
                pick(rng, VENDOR_SUFFIX),
                pick(rng, LEGAL)
            )
        };
        let status = *pick(rng, &["A", "A", "A", "A", "A", "A", "I", "E", "D", "X"]);
        let class = *pick(rng, &["R", "R", "R", "R", "E", "H"]);
        let (city, country) = *pick(rng, CITIES);
        let city = if i.is_multiple_of(37) { " " } else { city };
        let wthd = if rng.u8(0..10) == 0 { "Y" } else { "N" };
        self.vendor_ids.push(id.clone());
        vec![
            s(SETID),
            s(&id),
            s(&name),
            s(status),
            s(class),
            s(city),
            s(country),
            s(wthd),
            Value::Null,
            Value::Null,
        ]
    }

    fn customer_values(&mut self, i: u64) -> Vec<Value> {
        let rng = &mut self.rng;
        let name = if i >= 1 && (i as usize) <= AWKWARD_CUSTOMER_NAMES.len() {
            AWKWARD_CUSTOMER_NAMES[i as usize - 1].to_string()
        } else {
            format!(
                "{} {} {}",
                pick(rng, NAME_PREFIX),
                pick(rng, CUSTOMER_SUFFIX),
                pick(rng, LEGAL)
            )
        };
        let status = *pick(rng, &["A", "A", "A", "A", "A", "I", "T"]);
        // Credit limits in quarters: all exactly representable as binary floating point.
        let limit = match i % 9 {
            0 => 6001,        // 1500.25
            1 => 399_999_999, // 99999999.75
            2 => 0,
            3 => 3_000_002,              // 750000.5
            _ => rng.i64(1..400) * 4000, // whole thousands
        };
        let currency = *pick(rng, &["USD", "USD", "USD", "CAD", "EUR", "JPY"]);
        vec![
            s(SETID),
            s(&format!("CUST{:05}", i)),
            s(&name),
            s(status),
            Value::Null,
            quarters(limit),
            s(currency),
            Value::Null,
        ]
    }

    /// One PO with `lines` lines (PO 7 has the 12345678901234.56 line, PO 11 a return).
    fn po_rows(&mut self, spec: &Arc<TableSpec>, lines: usize, at: DateTime<Utc>) -> Vec<Row> {
        self.next_po += 1;
        let po = self.next_po;
        let rng = &mut self.rng;
        let bu_i = rng.usize(0..BUSINESS_UNITS.len());
        let bu = BUSINESS_UNITS[bu_i];
        let vendor = if self.vendor_ids.is_empty() {
            "0000000001".to_string()
        } else {
            self.vendor_ids[rng.usize(0..self.vendor_ids.len())].clone()
        };
        let po_dt = local_date(at) - Duration::days(rng.i64(0..5));
        let status = *pick(rng, &["I", "A", "A", "D", "D", "D", "C", "X"]);
        let currency = if bu == "CAN01" { "CAD" } else { "USD" };
        let mut out = Vec::with_capacity(lines);
        for line in 1..=lines as i64 {
            let (descr, qty_q, price): (String, i64, Decimal) = if po == 7 && line == 1 {
                // 1600 x 7716049313.27160 = 12345678901234.56 exactly; the price fits
                // PRICE_PO's DECIMAL(15,5).
                (
                    "Capital project: new 4,000-ton press line".into(),
                    6400,
                    Decimal::new(771_604_931_327_160, 5),
                )
            } else if po == 11 && line == 1 {
                (
                    "Return to vendor — damaged coil".into(),
                    -8,
                    Decimal::new(rng.i64(100_000..9_000_000), 5),
                )
            } else if po % 50 == 3 && line == 1 {
                (
                    self.long_descr.clone(),
                    4 * rng.i64(1..50),
                    Decimal::new(rng.i64(100..99_999_999), 5),
                )
            } else {
                let qty = match rng.u8(0..4) {
                    0 => 2 + 4 * rng.i64(1..20), // x.5
                    1 => 1,                      // 0.25
                    _ => 4 * rng.i64(1..500),
                };
                (
                    pick(rng, ITEMS).to_string(),
                    qty,
                    Decimal::new(rng.i64(100..99_999_999), 5),
                )
            };
            let qty = Decimal::new(qty_q * 25, 2);
            let mut amt = (qty * price).round_dp(2);
            amt.rescale(2);
            let vals = vec![
                s(bu),
                s(&format!("{:010}", po)),
                n(line),
                s(&vendor),
                d(po_dt),
                s(status),
                Value::String(descr),
                quarters(qty_q),
                dec(price),
                dec(amt),
                s(currency),
                Value::Null,
            ];
            out.push(Row::new(Arc::clone(spec), vals, at));
        }
        out
    }

    /// One journal with `lines` lines (balanced when `lines >= 2`).
    fn journal_rows(&mut self, spec: &Arc<TableSpec>, lines: usize, at: DateTime<Utc>) -> Vec<Row> {
        self.next_journal += 1;
        let j = self.next_journal;
        let rng = &mut self.rng;
        let bu_i = rng.usize(0..BUSINESS_UNITS.len());
        let bu = BUSINESS_UNITS[bu_i];
        let jdate = local_date(at) - Duration::days(rng.i64(0..3));
        let status = *pick(rng, &["P", "P", "P", "P", "P", "N", "V", "E"]);
        let currency = if bu == "CAN01" { "CAD" } else { "USD" };
        let depts: Vec<&str> = DEPTS
            .iter()
            .filter(|(_, b)| *b == bu_i)
            .map(|(dpt, _)| *dpt)
            .collect();
        let mut amounts: Vec<i64> = Vec::with_capacity(lines);
        if j == 5 && lines >= 2 {
            amounts.push(1_234_567_890_123_456);
            amounts.push(-1_234_567_890_123_456);
            amounts.extend(std::iter::repeat_n(0, lines - 2));
        } else {
            for _ in 0..lines.saturating_sub(1) {
                let mut c = rng.i64(1..50_000_000);
                if rng.bool() {
                    c = -c;
                }
                amounts.push(c);
            }
            if lines >= 2 {
                amounts.push(-amounts.iter().sum::<i64>());
            } else if lines == 1 {
                amounts.push(rng.i64(-5_000_000..5_000_000));
            }
        }
        let mut out = Vec::with_capacity(lines);
        for (k, amt) in amounts.into_iter().enumerate() {
            let line = k as i64 + 1;
            let descr = if j % 40 == 9 && line == 1 {
                self.long_descr.clone()
            } else {
                pick(rng, DESCRS).to_string()
            };
            let vals = vec![
                s(bu),
                s(&format!("{:010}", j)),
                d(jdate),
                n(0),
                n(line),
                s("ACTUALS"),
                s(pick::<&str>(rng, ACCOUNTS)),
                s(pick::<&str>(rng, &depts)),
                dec(cents(amt)),
                dec(cents(amt)),
                s(currency),
                Value::String(descr),
                s(status),
                Value::Null,
            ];
            out.push(Row::new(Arc::clone(spec), vals, at));
        }
        out
    }

    fn new_employee(&mut self) -> Employee {
        self.next_emplid += 1;
        let rng = &mut self.rng;
        let (dept, bu_i) = *pick(rng, DEPTS);
        let (jobcode, base) = *pick(rng, JOBCODES);
        let canadian = bu_i == 3;
        let company = if canadian { "NWC" } else { "NWF" };
        let paygroup = if canadian {
            "CSL"
        } else if base >= 70_000 {
            "SAL"
        } else {
            "HRL"
        };
        let rate_quarters = (base as i64 + rng.i64(-5000..5000)) * 4 + rng.i64(0..4) * 2;
        Employee {
            emplid: format!("NW{:06}", self.next_emplid),
            company,
            paygroup,
            dept,
            jobcode,
            rate_quarters,
        }
    }

    fn job_row(
        spec: &Arc<TableSpec>,
        e: &Employee,
        effdt: NaiveDate,
        effseq: i64,
        status: &str,
        action: &str,
        at: DateTime<Utc>,
    ) -> Row {
        let vals = vec![
            s(&e.emplid),
            n(0),
            d(effdt),
            n(effseq),
            s(e.dept),
            s(e.jobcode),
            s(status),
            s(action),
            s(e.company),
            s(e.paygroup),
            quarters(e.rate_quarters),
            Value::Null,
        ];
        Row::new(Arc::clone(spec), vals, at)
    }

    /// One employee's effective-dated history, ending in [`Dataset::history_end`] or later
    /// (future-dated rows) when `future`.
    fn job_history(&mut self, spec: &Arc<TableSpec>, rows: usize, future: bool) -> Vec<Row> {
        let mut e = self.new_employee();
        let start = Dataset::history_start();
        let end = Dataset::history_end();
        let mut out = Vec::new();
        // Hire date anywhere in 2016..2026; cursor = entry time within the history.
        let mut effdt =
            NaiveDate::from_ymd_opt(2016, 1, 4).unwrap() + Duration::days(self.rng.i64(0..3500));
        let mut effseq = 0;
        for k in 0..rows {
            let action = if k == 0 {
                "HIR"
            } else {
                let a = *pick(
                    &mut self.rng,
                    &["PAY", "PAY", "DTA", "XFR", "PRO", "LOA", "TER"],
                );
                match a {
                    "PAY" | "PRO" => e.rate_quarters += 4 * self.rng.i64(500..6000),
                    "XFR" => {
                        let (dept, _) = *pick(&mut self.rng, DEPTS);
                        e.dept = dept;
                    }
                    _ => {}
                }
                a
            };
            let status = match action {
                "LOA" => "L",
                "TER" => "T",
                _ => "A",
            };
            let same_day = k > 0 && self.rng.u8(0..8) == 0;
            effseq = if same_day { effseq + 1 } else { 0 };
            if !same_day && k > 0 {
                effdt += Duration::days(self.rng.i64(30..400));
            }
            let mut entered = random_instant(&mut self.rng, true);
            let eff_instant = sitetime::local_to_utc(effdt.and_hms_opt(8, 0, 0).unwrap());
            if eff_instant > start && eff_instant < end {
                entered = entered.min(eff_instant).max(start);
            }
            out.push(Self::job_row(
                spec, &e, effdt, effseq, status, action, entered,
            ));
            if action == "TER" {
                break;
            }
        }
        if future {
            // A raise or transfer entered now, effective after the history ends.
            let eff = sitetime::to_local(end).date() + Duration::days(self.rng.i64(10..150));
            e.rate_quarters += 4 * 2500;
            let entered = end - Duration::days(self.rng.i64(1..60));
            out.push(Self::job_row(spec, &e, eff, 0, "A", "PAY", entered));
        }
        self.employees.push(e);
        out
    }

    fn paycheck_row(
        &mut self,
        spec: &Arc<TableSpec>,
        e: &Employee,
        pay_end: NaiveDate,
        off_cycle: &'static str,
        at: DateTime<Utc>,
    ) -> Row {
        let key = (
            e.company.to_string(),
            e.paygroup.to_string(),
            pay_end,
            off_cycle,
        );
        let slot = self.pay_pages.entry(key).or_insert((1, 0));
        slot.1 += 1;
        if slot.1 > 40 {
            slot.0 += 1;
            slot.1 = 1;
        }
        let (page, line) = *slot;
        let gross_c = (e.rate_quarters * 25) / 26 + self.rng.i64(-5_000..20_000);
        let net_c = gross_c * 72 / 100 - self.rng.i64(0..2_000);
        let sepchk = if off_cycle == "Y" { 1 } else { 0 };
        let vals = vec![
            s(e.company),
            s(e.paygroup),
            d(pay_end),
            s(off_cycle),
            n(page),
            n(line),
            n(sepchk),
            s(&e.emplid),
            d(pay_end + Duration::days(5)),
            dec(cents(gross_c)),
            dec(cents(net_c)),
            Value::Null,
        ];
        Row::new(Arc::clone(spec), vals, at)
    }

    /// New rows for the mutation helpers.
    pub(super) fn new_rows(
        &mut self,
        spec: &Arc<TableSpec>,
        n_rows: usize,
        at: DateTime<Utc>,
    ) -> Vec<Row> {
        let mut out = Vec::new();
        match spec.name.as_str() {
            TABLE_VENDORS => {
                for _ in 0..n_rows {
                    self.next_vendor += 1;
                    let v = self.vendor_values(self.next_vendor);
                    out.push(Row::new(Arc::clone(spec), v, at));
                }
            }
            TABLE_CUSTOMERS => {
                for _ in 0..n_rows {
                    self.next_customer += 1;
                    let v = self.customer_values(self.next_customer);
                    out.push(Row::new(Arc::clone(spec), v, at));
                }
            }
            TABLE_PO_LINES => out = self.po_rows(spec, n_rows, at),
            TABLE_JOURNAL_LINES => out = self.journal_rows(spec, n_rows, at),
            TABLE_JOB => {
                for _ in 0..n_rows {
                    let e = self.new_employee();
                    let effdt = local_date(at);
                    out.push(Self::job_row(spec, &e, effdt, 0, "A", "HIR", at));
                    self.employees.push(e);
                }
            }
            TABLE_PAYCHECKS => {
                // Off-cycle checks dated today (CHECK_DT = PAY_END_DT + 5 days).
                let pay_end = local_date(at) - Duration::days(5);
                for k in 0..n_rows {
                    let e = if self.employees.is_empty() {
                        self.new_employee()
                    } else {
                        self.employees[k % self.employees.len()].clone()
                    };
                    let r = self.paycheck_row(spec, &e, pay_end, "Y", at);
                    out.push(r);
                }
            }
            other => panic!("insert_rows: `{other}` is not a sample table"),
        }
        out
    }
}

/// A visible, table-specific change for [`Dataset::update_rows`].
pub(super) fn touch(row: &mut Row, rng: &mut fastrand::Rng) {
    let spec = Arc::clone(&row.spec);
    let set = |row: &mut Row, field: &str, v: Value| {
        if let Some(i) = spec.field_index(field) {
            row.set_value(i, v);
        }
    };
    let text = |row: &Row, field: &str| row.text(field).unwrap_or_default();
    match spec.name.as_str() {
        TABLE_VENDORS => {
            let next = if text(row, "VENDOR_STATUS") == "A" {
                "I"
            } else {
                "A"
            };
            set(row, "VENDOR_STATUS", s(next));
        }
        TABLE_CUSTOMERS => {
            let name = format!("{} (rev)", text(row, "NAME1").trim_end());
            set(row, "NAME1", Value::String(name));
        }
        TABLE_PO_LINES => {
            let next = match text(row, "PO_STATUS").as_str() {
                "I" => "A",
                "A" => "D",
                "D" => "C",
                _ => "X",
            };
            set(row, "PO_STATUS", s(next));
        }
        TABLE_JOURNAL_LINES => {
            let d = format!("Corrected: {}", pick(rng, DESCRS));
            set(row, "LINE_DESCR", Value::String(d));
        }
        TABLE_JOB => {
            let rate = row
                .get("ANNUAL_RT")
                .and_then(Value::as_f64)
                .unwrap_or(50_000.0);
            // Quarter steps keep the value exactly representable.
            let q = (rate * 4.0).round() as i64 + 4 * rng.i64(100..2000);
            set(row, "ANNUAL_RT", quarters(q));
        }
        TABLE_PAYCHECKS => {
            let net: Decimal = text(row, "NET_PAY").parse().unwrap_or_default();
            let mut v = net + cents(rng.i64(1..10_000));
            v.rescale(2);
            set(row, "NET_PAY", dec(v));
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// The whole dataset

pub(super) fn generate(seed: u64, scale: f64) -> (Vec<Table>, GenState) {
    let mut st = GenState {
        rng: fastrand::Rng::with_seed(seed),
        next_vendor: 0,
        next_customer: 0,
        next_po: 0,
        next_journal: 0,
        next_emplid: 0,
        vendor_ids: Vec::new(),
        employees: Vec::new(),
        pay_pages: HashMap::new(),
        long_descr: long_description(),
    };

    // DST fall-back hour: 01:30 local happens at 06:30Z (CDT) and again at 07:30Z (CST).
    let dst_a = Utc.with_ymd_and_hms(2025, 11, 2, 6, 30, 0).unwrap();
    let dst_b = Utc.with_ymd_and_hms(2025, 11, 2, 7, 30, 0).unwrap();
    // A mass update: several rows share one cursor value.
    let shared = Utc.with_ymd_and_hms(2025, 6, 30, 22, 0, 0).unwrap();

    // Vendors.
    let mut vendors = Table::new(vendor_spec());
    let vspec = vendors.spec_arc();
    let n_vendors = count(200, scale, 20);
    let mut rows = Vec::with_capacity(n_vendors);
    for _ in 0..n_vendors {
        st.next_vendor += 1;
        let i = st.next_vendor;
        let v = st.vendor_values(i);
        let at = match i {
            12 => dst_a,
            13 => dst_b,
            14..=17 => shared,
            _ => random_instant(&mut st.rng, true),
        };
        rows.push(Row::new(Arc::clone(&vspec), v, at));
    }
    vendors.insert(rows);

    // Customers.
    let mut customers = Table::new(customer_spec());
    let cspec = customers.spec_arc();
    let n_customers = count(300, scale, 12);
    let mut rows = Vec::with_capacity(n_customers);
    for _ in 0..n_customers {
        st.next_customer += 1;
        let i = st.next_customer;
        let v = st.customer_values(i);
        let at = if (8..=10).contains(&i) {
            shared
        } else {
            random_instant(&mut st.rng, true)
        };
        rows.push(Row::new(Arc::clone(&cspec), v, at));
    }
    customers.insert(rows);

    // PO lines: POs of 1..=6 lines, about 3.5 lines each.
    let mut po = Table::new(po_spec());
    let pspec = po.spec_arc();
    let target = count(1000, scale, 60);
    let mut rows = Vec::with_capacity(target + 6);
    while rows.len() < target {
        let lines = st.rng.usize(1..=6).min(target - rows.len()).max(1);
        let at = random_instant(&mut st.rng, false);
        rows.extend(st.po_rows(&pspec, lines, at));
    }
    po.insert(rows);

    // Journal lines: journals of 2..=12 lines.
    let mut jl = Table::new(journal_spec());
    let jspec = jl.spec_arc();
    let target = count(1700, scale, 120);
    let mut rows = Vec::with_capacity(target + 12);
    while rows.len() < target {
        let lines = st.rng.usize(2..=12).min(target - rows.len()).max(1);
        let at = match st.next_journal + 1 {
            3 => dst_a,
            4 => dst_b,
            _ => random_instant(&mut st.rng, false),
        };
        rows.extend(st.journal_rows(&jspec, lines, at));
    }
    // One unposted journal: the reversal (UNPOST_SEQ 1) of journal 1, with negated amounts.
    let reversal_at = Dataset::history_end() - Duration::days(3);
    let reversal: Vec<Row> = rows
        .iter()
        .filter(|r| r.text("JOURNAL_ID").as_deref() == Some("0000000001"))
        .map(|r| {
            let mut vals = r.values().to_vec();
            vals[3] = n(1);
            for i in [8, 9] {
                let a: Decimal = r.values()[i]
                    .as_str()
                    .unwrap_or("0")
                    .parse()
                    .unwrap_or_default();
                vals[i] = dec(-a);
            }
            vals[12] = s("U");
            Row::new(Arc::clone(&jspec), vals, reversal_at)
        })
        .collect();
    rows.extend(reversal);
    jl.insert(rows);

    // Job: employees with 1..=5 rows, some future-dated.
    let mut job = Table::new(job_spec());
    let jbspec = job.spec_arc();
    let target = count(600, scale, 30);
    let mut rows = Vec::with_capacity(target + 6);
    let mut k = 0usize;
    while rows.len() < target {
        let n_rows = st.rng.usize(1..=5).min(target - rows.len()).max(1);
        let future = k % 15 == 4;
        rows.extend(st.job_history(&jbspec, n_rows, future));
        k += 1;
    }
    job.insert(rows);

    // Paychecks: biweekly periods across the history, employees in rotation. A check is
    // confirmed on its CHECK_DT (LASTUPDDTTM falls on that date until a row is updated).
    let mut pay = Table::new(paycheck_spec());
    let pyspec = pay.spec_arc();
    let target = count(1000, scale, 10);
    let first_end = NaiveDate::from_ymd_opt(2025, 1, 10).unwrap();
    let periods = 45usize;
    let emps = st.employees.clone();
    let mut rows = Vec::with_capacity(target);
    for i in 0..target {
        let p = i * periods / target;
        let pay_end = first_end + Duration::weeks(2 * p as i64);
        let e = &emps[(i * 7) % emps.len()];
        let off = if i % 97 == 50 { "Y" } else { "N" };
        let confirm =
            sitetime::local_to_utc((pay_end + Duration::days(5)).and_hms_opt(9, 0, 0).unwrap())
                + Duration::seconds(st.rng.i64(0..3600));
        let at = confirm.min(Dataset::history_end() - Duration::seconds(1));
        rows.push(st.paycheck_row(&pyspec, e, pay_end, off, at));
    }
    pay.insert(rows);

    (vec![vendors, customers, po, jl, job, pay], st)
}
