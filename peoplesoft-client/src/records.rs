//! Typed records for the five domains: vendors, customers, purchase orders, journals,
//! employees (JOB) and paychecks.
//!
//! Field names follow the delivered PeopleSoft records (`VENDOR`, `CUSTOMER`, `PO_HDR`,
//! `PO_LINE`, `JRNL_HEADER`, `JRNL_LN`, `JOB`, `PAY_CHECK`) in SCREAMING_CASE. Field lists come
//! from data-dictionary mirrors, not from Oracle: **verify them on the target system**. That is
//! why every field except the keys is optional and every type keeps unknown fields in `extra`
//! (a site's customised query does not break deserialisation, and re-serialising keeps them).
//!
//! Values are read leniently, the way QAS sends them: amounts as JSON numbers **or** strings
//! into [`Decimal`] (never `f64`), integers as numbers or strings, dates as `YYYY-MM-DD`,
//! datetimes in PeopleSoft's native `YYYY-MM-DD-HH.MM.SS.ffffff` or ISO form, `Y`/`N` flags as
//! booleans, and blank strings (PeopleSoft writes `" "`) as `None`.
//!
//! Rows from QAS usually carry a record-alias prefix (`A.VENDOR_ID`); [`from_record`] strips
//! it before deserialising.
//!
//! ```
//! use peoplesoft_client::records::{from_record, Vendor};
//!
//! let row = serde_json::json!({"A.SETID": "SHARE", "A.VENDOR_ID": "0000000001",
//!     "A.NAME1": "Acme", "A.LAST_ACTIVITY_DT": "2026-01-15", "X.CUSTOM_FIELD": 7});
//! let v: Vendor = from_record(&row.try_into().unwrap()).unwrap();
//! assert_eq!(v.vendor_id, "0000000001");
//! assert_eq!(v.extra["CUSTOM_FIELD"], 7);
//! ```

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use rust_decimal::Decimal;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use std::str::FromStr;
use sync_core::Record;

/// A row that could not be turned into a typed record.
#[derive(Debug, thiserror::Error)]
#[error("cannot read a `{type_name}` from the row: {source}")]
pub struct RecordError {
    /// The Rust type that was wanted.
    pub type_name: &'static str,
    /// The serde error (names the field and the value).
    #[source]
    pub source: serde_json::Error,
}

/// Removes record-alias prefixes (`A.VENDOR_ID` → `VENDOR_ID`).
///
/// A prefix is the part before the first `.` when it is 1–8 ASCII letters/digits/underscores.
/// When two fields would collide after stripping (`A.EMPLID` and `B.EMPLID`), the first keeps
/// the bare name and later ones keep their prefixed name, so nothing is lost.
pub fn strip_alias_prefixes(record: &Record) -> Record {
    let mut out = Map::with_capacity(record.len());
    for (k, v) in record {
        let bare = strip_alias(k);
        if out.contains_key(bare) {
            out.insert(k.clone(), v.clone());
        } else {
            out.insert(bare.to_string(), v.clone());
        }
    }
    out.into()
}

/// The field name without its record-alias prefix.
pub fn strip_alias(name: &str) -> &str {
    match name.split_once('.') {
        Some((p, rest))
            if !p.is_empty()
                && p.len() <= 8
                && !rest.is_empty()
                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
        {
            rest
        }
        _ => name,
    }
}

/// Deserialises a typed record from a QAS row, after stripping alias prefixes.
pub fn from_record<T: DeserializeOwned>(record: &Record) -> Result<T, RecordError> {
    serde_json::from_value(Value::from(strip_alias_prefixes(record))).map_err(|source| {
        RecordError {
            type_name: std::any::type_name::<T>()
                .rsplit("::")
                .next()
                .unwrap_or("record"),
            source,
        }
    })
}

/// Parses a PeopleSoft datetime: native `YYYY-MM-DD-HH.MM.SS[.ffffff]`, ISO
/// `YYYY-MM-DDTHH:MM:SS[.f]` with or without an offset, or space-separated. An offset, when
/// present, is dropped: the local wall time as sent is kept (PeopleSoft stores local times).
pub fn parse_ps_datetime(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    for f in [
        "%Y-%m-%d-%H.%M.%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t);
        }
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Some(t.naive_local());
        }
    }
    if let Some(z) = s.strip_suffix('Z') {
        return NaiveDateTime::parse_from_str(z, "%Y-%m-%dT%H:%M:%S%.f").ok();
    }
    None
}

/// A value type that QAS may send in several JSON shapes.
trait Lenient: Sized {
    const WHAT: &'static str;
    fn from_json(v: &Value) -> Option<Self>;
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Lenient for Decimal {
    const WHAT: &'static str = "a decimal number (JSON number or string)";
    fn from_json(v: &Value) -> Option<Self> {
        // JSON numbers reach us as their shortest round-trip text; numbers longer than 15
        // significant digits were turned into strings before JSON parsing, so this is exact.
        let t = text(v)?;
        Decimal::from_str(&t)
            .or_else(|_| Decimal::from_scientific(&t))
            .ok()
    }
}

impl Lenient for i32 {
    const WHAT: &'static str = "an integer (JSON number or string)";
    fn from_json(v: &Value) -> Option<Self> {
        match v {
            Value::Number(n) => n.as_i64().and_then(|i| i32::try_from(i).ok()),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

impl Lenient for i64 {
    const WHAT: &'static str = "an integer (JSON number or string)";
    fn from_json(v: &Value) -> Option<Self> {
        match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

impl Lenient for NaiveDate {
    const WHAT: &'static str = "a date YYYY-MM-DD";
    fn from_json(v: &Value) -> Option<Self> {
        let s = v.as_str()?.trim();
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .or_else(|| parse_ps_datetime(s).map(|t| t.date()))
    }
}

impl Lenient for NaiveDateTime {
    const WHAT: &'static str = "a datetime (YYYY-MM-DD-HH.MM.SS.ffffff or ISO)";
    fn from_json(v: &Value) -> Option<Self> {
        parse_ps_datetime(v.as_str()?)
    }
}

impl Lenient for bool {
    const WHAT: &'static str = "a Y/N flag or boolean";
    fn from_json(v: &Value) -> Option<Self> {
        match v {
            Value::Bool(b) => Some(*b),
            Value::String(s) => match s.trim() {
                "Y" | "y" | "true" | "TRUE" | "1" => Some(true),
                "N" | "n" | "false" | "FALSE" | "0" => Some(false),
                _ => None,
            },
            Value::Number(n) => n.as_i64().map(|i| i != 0),
            _ => None,
        }
    }
}

fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

fn req<'de, D: Deserializer<'de>, T: Lenient>(d: D) -> Result<T, D::Error> {
    let v = Value::deserialize(d)?;
    T::from_json(&v).ok_or_else(|| D::Error::custom(format!("expected {}, got {v}", T::WHAT)))
}

fn opt<'de, D: Deserializer<'de>, T: Lenient>(d: D) -> Result<Option<T>, D::Error> {
    let v = Value::deserialize(d)?;
    if is_blank(&v) {
        return Ok(None);
    }
    T::from_json(&v)
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("expected {}, got {v}", T::WHAT)))
}

/// Optional trimmed string; blank → `None`.
fn opt_str<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Value::deserialize(d)?;
    if is_blank(&v) {
        return Ok(None);
    }
    text(&v)
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("expected a string, got {v}")))
}

/// Required key string (numbers accepted and turned into text; not trimmed of inner spaces).
fn key_str<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = Value::deserialize(d)?;
    text(&v).ok_or_else(|| D::Error::custom(format!("expected a string key, got {v}")))
}

/// One field of a delivered PeopleSoft record, as the typed records and the default stream
/// definitions ([`StreamDefinition`](crate::StreamDefinition)) use it: the one catalogue of
/// field names, keys and column types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordField {
    /// The PeopleSoft field name (`VENDOR_ID`).
    pub name: &'static str,
    /// The Databricks column type of the default mapping (`STRING`, `DECIMAL(26,3)`, …).
    pub column_type: &'static str,
    /// Part of the record's key.
    pub key: bool,
}

/// The key fields of a record's field list (`Vendor::FIELDS`), in key order.
///
/// ```
/// use peoplesoft_client::records::{key_fields, Vendor};
/// assert_eq!(key_fields(Vendor::FIELDS), ["SETID", "VENDOR_ID"]);
/// ```
pub fn key_fields(fields: &[RecordField]) -> Vec<&'static str> {
    fields.iter().filter(|f| f.key).map(|f| f.name).collect()
}

/// The Databricks column type of a typed record's Rust field type.
trait ColumnTypeOf {
    const COLUMN_TYPE: &'static str;
}

impl ColumnTypeOf for String {
    const COLUMN_TYPE: &'static str = "STRING";
}
impl ColumnTypeOf for NaiveDate {
    const COLUMN_TYPE: &'static str = "DATE";
}
impl ColumnTypeOf for NaiveDateTime {
    const COLUMN_TYPE: &'static str = "TIMESTAMP";
}
impl ColumnTypeOf for bool {
    const COLUMN_TYPE: &'static str = "BOOLEAN";
}
impl ColumnTypeOf for i32 {
    const COLUMN_TYPE: &'static str = "INT";
}
impl ColumnTypeOf for i64 {
    const COLUMN_TYPE: &'static str = "BIGINT";
}
/// Amounts: PeopleSoft's monetary fields are `DECIMAL(26,3)`; other decimals say their own.
impl ColumnTypeOf for Decimal {
    const COLUMN_TYPE: &'static str = "DECIMAL(26,3)";
}

macro_rules! record {
    (@type $ty:ty, $column_type:literal) => {
        $column_type
    };
    (@type $ty:ty) => {
        <$ty as ColumnTypeOf>::COLUMN_TYPE
    };
    (
        $(#[$meta:meta])*
        $name:ident {
            keys { $( $(#[$kmeta:meta])* $kfield:ident : $kty:ty $(as $kcol:literal)? = $kname:literal via $kde:literal ),* $(,)? }
            fields { $( $(#[$fmeta:meta])* $field:ident : $fty:ty $(as $fcol:literal)? = $fname:literal via $fde:literal ),* $(,)? }
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct $name {
            $(
                $(#[$kmeta])*
                #[serde(rename = $kname, deserialize_with = $kde)]
                pub $kfield: $kty,
            )*
            $(
                $(#[$fmeta])*
                #[serde(rename = $fname, default, deserialize_with = $fde, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$fty>,
            )*
            /// Every other field of the row, kept as sent (site customisations, extra columns).
            #[serde(flatten)]
            pub extra: Map<String, Value>,
        }

        impl $name {
            /// The record's fields in query column order (keys first), with their column types.
            pub const FIELDS: &'static [RecordField] = &[
                $( RecordField { name: $kname, column_type: record!(@type $kty $(, $kcol)?), key: true }, )*
                $( RecordField { name: $fname, column_type: record!(@type $fty $(, $fcol)?), key: false }, )*
            ];
        }
    };
}

record! {
    /// A supplier, record `VENDOR` (keys SETID, VENDOR_ID). VENDOR has no confirmed
    /// last-update column: take full snapshots, or use LAST_ACTIVITY_DT.
    Vendor {
        keys {
            /// `SETID`.
            setid: String = "SETID" via "key_str",
            /// `VENDOR_ID`.
            vendor_id: String = "VENDOR_ID" via "key_str",
        }
        fields {
            /// `NAME1`.
            name1: String = "NAME1" via "opt_str",
            /// `NAME2`.
            name2: String = "NAME2" via "opt_str",
            /// `VENDOR_NAME_SHORT`.
            vendor_name_short: String = "VENDOR_NAME_SHORT" via "opt_str",
            /// `VENDOR_STATUS`: A=Approved, D=Denied, E=Unapproved, I=Inactive, X=To Be Archived.
            vendor_status: String = "VENDOR_STATUS" via "opt_str",
            /// `VENDOR_CLASS`.
            vendor_class: String = "VENDOR_CLASS" via "opt_str",
            /// `VENDOR_PERSISTENCE`.
            vendor_persistence: String = "VENDOR_PERSISTENCE" via "opt_str",
            /// `WTHD_SW` (withholding applies), a Y/N flag.
            wthd_sw: bool = "WTHD_SW" via "opt",
            /// `ENTERED_BY`.
            entered_by: String = "ENTERED_BY" via "opt_str",
            /// `ADD_DT`.
            add_dt: NaiveDate = "ADD_DT" via "opt",
            /// `LAST_ACTIVITY_DT`.
            last_activity_dt: NaiveDate = "LAST_ACTIVITY_DT" via "opt",
        }
    }
}

record! {
    /// A customer, record `CUSTOMER` (keys SETID, CUST_ID). No confirmed last-update column.
    Customer {
        keys {
            /// `SETID`.
            setid: String = "SETID" via "key_str",
            /// `CUST_ID`.
            cust_id: String = "CUST_ID" via "key_str",
        }
        fields {
            /// `NAME1`.
            name1: String = "NAME1" via "opt_str",
            /// `CUST_STATUS`: A=Active, I=Inactive, T=Temporary.
            cust_status: String = "CUST_STATUS" via "opt_str",
            /// `CUST_STATUS_DT`.
            cust_status_dt: NaiveDate = "CUST_STATUS_DT" via "opt",
            /// `SINCE_DT`.
            since_dt: NaiveDate = "SINCE_DT" via "opt",
            /// `ADD_DT`.
            add_dt: NaiveDate = "ADD_DT" via "opt",
            /// `CUSTOMER_TYPE`.
            customer_type: String = "CUSTOMER_TYPE" via "opt_str",
            /// `CR_LIMIT` (credit limit).
            cr_limit: Decimal = "CR_LIMIT" via "opt",
            /// `CURRENCY_CD`.
            currency_cd: String = "CURRENCY_CD" via "opt_str",
        }
    }
}

record! {
    /// A purchase-order header, record `PO_HDR` (keys BUSINESS_UNIT, PO_ID).
    PurchaseOrder {
        keys {
            /// `BUSINESS_UNIT`.
            business_unit: String = "BUSINESS_UNIT" via "key_str",
            /// `PO_ID`.
            po_id: String = "PO_ID" via "key_str",
        }
        fields {
            /// `PO_DT`.
            po_dt: NaiveDate = "PO_DT" via "opt",
            /// `PO_STATUS`.
            po_status: String = "PO_STATUS" via "opt_str",
            /// `VENDOR_SETID`.
            vendor_setid: String = "VENDOR_SETID" via "opt_str",
            /// `VENDOR_ID`.
            vendor_id: String = "VENDOR_ID" via "opt_str",
            /// `BUYER_ID`.
            buyer_id: String = "BUYER_ID" via "opt_str",
            /// `CURRENCY_CD`.
            currency_cd: String = "CURRENCY_CD" via "opt_str",
            /// `ENTERED_DT`.
            entered_dt: NaiveDate = "ENTERED_DT" via "opt",
            /// `APPROVAL_DT`.
            approval_dt: NaiveDate = "APPROVAL_DT" via "opt",
            /// `ACTIVITY_DATE`.
            activity_date: NaiveDate = "ACTIVITY_DATE" via "opt",
            /// `LAST_DTTM_UPDATE`: last-update datetime (local time of the PeopleSoft database).
            last_dttm_update: NaiveDateTime = "LAST_DTTM_UPDATE" via "opt",
            /// `OPRID_MODIFIED_BY`.
            oprid_modified_by: String = "OPRID_MODIFIED_BY" via "opt_str",
        }
    }
}

record! {
    /// A purchase-order line, record `PO_LINE` (keys BUSINESS_UNIT, PO_ID, LINE_NBR). The
    /// quantity and price fields come from a query that joins `PO_LINE_SHIP`.
    PurchaseOrderLine {
        keys {
            /// `BUSINESS_UNIT`.
            business_unit: String = "BUSINESS_UNIT" via "key_str",
            /// `PO_ID`.
            po_id: String = "PO_ID" via "key_str",
            /// `LINE_NBR`.
            line_nbr: i32 = "LINE_NBR" via "req",
        }
        fields {
            /// `INV_ITEM_ID`.
            inv_item_id: String = "INV_ITEM_ID" via "opt_str",
            /// `DESCR254_MIXED`.
            descr254_mixed: String = "DESCR254_MIXED" via "opt_str",
            /// `CATEGORY_ID`.
            category_id: String = "CATEGORY_ID" via "opt_str",
            /// `UNIT_OF_MEASURE`.
            unit_of_measure: String = "UNIT_OF_MEASURE" via "opt_str",
            /// `QTY_PO`.
            qty_po: Decimal as "DECIMAL(15,4)" = "QTY_PO" via "opt",
            /// `PRICE_PO`.
            price_po: Decimal as "DECIMAL(15,5)" = "PRICE_PO" via "opt",
            /// `MERCHANDISE_AMT`.
            merchandise_amt: Decimal = "MERCHANDISE_AMT" via "opt",
            /// `CANCEL_STATUS`.
            cancel_status: String = "CANCEL_STATUS" via "opt_str",
            /// `LAST_DTTM_UPDATE` of the header, repeated on each line by the query.
            last_dttm_update: NaiveDateTime = "LAST_DTTM_UPDATE" via "opt",
        }
    }
}

record! {
    /// A journal header, record `JRNL_HEADER` (keys BUSINESS_UNIT, JOURNAL_ID, JOURNAL_DATE,
    /// UNPOST_SEQ; UNPOST_SEQ is 0 when posted and 1 on the unpost reversal).
    JournalHeader {
        keys {
            /// `BUSINESS_UNIT`.
            business_unit: String = "BUSINESS_UNIT" via "key_str",
            /// `JOURNAL_ID`.
            journal_id: String = "JOURNAL_ID" via "key_str",
            /// `JOURNAL_DATE`.
            journal_date: NaiveDate = "JOURNAL_DATE" via "req",
            /// `UNPOST_SEQ`.
            unpost_seq: i32 = "UNPOST_SEQ" via "req",
        }
        fields {
            /// `LEDGER_GROUP`.
            ledger_group: String = "LEDGER_GROUP" via "opt_str",
            /// `SOURCE`.
            source: String = "SOURCE" via "opt_str",
            /// `DESCR`.
            descr: String = "DESCR" via "opt_str",
            /// `JRNL_HDR_STATUS` (D, E, I, M, N, P, T, U, V, X, Z).
            jrnl_hdr_status: String = "JRNL_HDR_STATUS" via "opt_str",
            /// `FISCAL_YEAR`.
            fiscal_year: i32 = "FISCAL_YEAR" via "opt",
            /// `ACCOUNTING_PERIOD`.
            accounting_period: i32 = "ACCOUNTING_PERIOD" via "opt",
            /// `POSTED_DATE`.
            posted_date: NaiveDate = "POSTED_DATE" via "opt",
            /// `OPRID`.
            oprid: String = "OPRID" via "opt_str",
            /// `DTTM_STAMP_SEC`: last update datetime.
            dttm_stamp_sec: NaiveDateTime = "DTTM_STAMP_SEC" via "opt",
        }
    }
}

record! {
    /// A journal line, record `JRNL_LN` (header keys + JOURNAL_LINE, LEDGER).
    JournalLine {
        keys {
            /// `BUSINESS_UNIT`.
            business_unit: String = "BUSINESS_UNIT" via "key_str",
            /// `JOURNAL_ID`.
            journal_id: String = "JOURNAL_ID" via "key_str",
            /// `JOURNAL_DATE`.
            journal_date: NaiveDate = "JOURNAL_DATE" via "req",
            /// `UNPOST_SEQ`.
            unpost_seq: i32 = "UNPOST_SEQ" via "req",
            /// `JOURNAL_LINE`.
            journal_line: i32 = "JOURNAL_LINE" via "req",
            /// `LEDGER`.
            ledger: String = "LEDGER" via "key_str",
        }
        fields {
            /// `ACCOUNT`.
            account: String = "ACCOUNT" via "opt_str",
            /// `DEPTID`.
            deptid: String = "DEPTID" via "opt_str",
            /// `PRODUCT`.
            product: String = "PRODUCT" via "opt_str",
            /// `MONETARY_AMOUNT` (base currency).
            monetary_amount: Decimal = "MONETARY_AMOUNT" via "opt",
            /// `FOREIGN_AMOUNT`.
            foreign_amount: Decimal = "FOREIGN_AMOUNT" via "opt",
            /// `FOREIGN_CURRENCY`.
            foreign_currency: String = "FOREIGN_CURRENCY" via "opt_str",
            /// `CURRENCY_CD`.
            currency_cd: String = "CURRENCY_CD" via "opt_str",
            /// `LINE_DESCR`.
            line_descr: String = "LINE_DESCR" via "opt_str",
            /// `DTTM_STAMP_SEC` of the header, repeated on each line by the query.
            dttm_stamp_sec: NaiveDateTime = "DTTM_STAMP_SEC" via "opt",
        }
    }
}

record! {
    /// An effective-dated job row, record `JOB` (keys EMPLID, EMPL_RCD, EFFDT, EFFSEQ). The
    /// current row per (EMPLID, EMPL_RCD) is the max EFFDT ≤ as-of date, then the max EFFSEQ;
    /// future-dated rows exist and are kept.
    JobRow {
        keys {
            /// `EMPLID`.
            emplid: String = "EMPLID" via "key_str",
            /// `EMPL_RCD`.
            empl_rcd: i32 = "EMPL_RCD" via "req",
            /// `EFFDT`.
            effdt: NaiveDate = "EFFDT" via "req",
            /// `EFFSEQ`.
            effseq: i32 = "EFFSEQ" via "req",
        }
        fields {
            /// `EMPL_STATUS`.
            empl_status: String = "EMPL_STATUS" via "opt_str",
            /// `ACTION`.
            action: String = "ACTION" via "opt_str",
            /// `ACTION_REASON`.
            action_reason: String = "ACTION_REASON" via "opt_str",
            /// `ACTION_DT`.
            action_dt: NaiveDate = "ACTION_DT" via "opt",
            /// `BUSINESS_UNIT`.
            business_unit: String = "BUSINESS_UNIT" via "opt_str",
            /// `COMPANY`.
            company: String = "COMPANY" via "opt_str",
            /// `PAYGROUP`.
            paygroup: String = "PAYGROUP" via "opt_str",
            /// `DEPTID`.
            deptid: String = "DEPTID" via "opt_str",
            /// `JOBCODE`.
            jobcode: String = "JOBCODE" via "opt_str",
            /// `POSITION_NBR`.
            position_nbr: String = "POSITION_NBR" via "opt_str",
            /// `LOCATION`.
            location: String = "LOCATION" via "opt_str",
            /// `FULL_PART_TIME`.
            full_part_time: String = "FULL_PART_TIME" via "opt_str",
            /// `REG_TEMP`.
            reg_temp: String = "REG_TEMP" via "opt_str",
            /// `STD_HOURS`.
            std_hours: Decimal as "DECIMAL(6,2)" = "STD_HOURS" via "opt",
            /// `COMPRATE`.
            comprate: Decimal as "DECIMAL(18,6)" = "COMPRATE" via "opt",
            /// `ANNUAL_RT`.
            annual_rt: Decimal as "DECIMAL(18,3)" = "ANNUAL_RT" via "opt",
            /// `CURRENCY_CD`.
            currency_cd: String = "CURRENCY_CD" via "opt_str",
            /// `LASTUPDDTTM`.
            lastupddttm: NaiveDateTime = "LASTUPDDTTM" via "opt",
            /// `IS_CURRENT`: added by [`PeopleSoftSource`](crate::PeopleSoftSource) for
            /// effective-dated streams (not a PeopleSoft field).
            is_current: bool = "IS_CURRENT" via "opt",
        }
    }
}

record! {
    /// A paycheck, record `PAY_CHECK` (keys COMPANY, PAYGROUP, PAY_END_DT, OFF_CYCLE,
    /// PAGE_NUM, LINE_NUM, SEPCHK). No confirmed last-update column: poll by CHECK_DT or
    /// PAY_END_DT with a look-back.
    Paycheck {
        keys {
            /// `COMPANY`.
            company: String = "COMPANY" via "key_str",
            /// `PAYGROUP`.
            paygroup: String = "PAYGROUP" via "key_str",
            /// `PAY_END_DT`.
            pay_end_dt: NaiveDate = "PAY_END_DT" via "req",
            /// `OFF_CYCLE` (Y/N).
            off_cycle: bool = "OFF_CYCLE" via "req",
            /// `PAGE_NUM`.
            page_num: i32 = "PAGE_NUM" via "req",
            /// `LINE_NUM`.
            line_num: i32 = "LINE_NUM" via "req",
            /// `SEPCHK`.
            sepchk: i32 = "SEPCHK" via "req",
        }
        fields {
            /// `EMPLID`.
            emplid: String = "EMPLID" via "opt_str",
            /// `EMPL_RCD`.
            empl_rcd: i32 = "EMPL_RCD" via "opt",
            /// `CHECK_DT`.
            check_dt: NaiveDate = "CHECK_DT" via "opt",
            /// `PAYCHECK_NBR`.
            paycheck_nbr: i64 = "PAYCHECK_NBR" via "opt",
            /// `PAYCHECK_STATUS`.
            paycheck_status: String = "PAYCHECK_STATUS" via "opt_str",
            /// `PAYCHECK_OPTION`.
            paycheck_option: String = "PAYCHECK_OPTION" via "opt_str",
            /// `TOTAL_GROSS`.
            total_gross: Decimal = "TOTAL_GROSS" via "opt",
            /// `TOTAL_TAXES`.
            total_taxes: Decimal = "TOTAL_TAXES" via "opt",
            /// `TOTAL_DEDUCTIONS`.
            total_deductions: Decimal = "TOTAL_DEDUCTIONS" via "opt",
            /// `NET_PAY`.
            net_pay: Decimal = "NET_PAY" via "opt",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(v: Value) -> Record {
        v.as_object().unwrap().clone().into()
    }

    #[test]
    fn alias_prefixes_are_stripped_without_losing_collisions() {
        let r = rec(json!({"A.EMPLID": "1", "B.EMPLID": "2", "DESCR": "x", "attr.x": 1, "A.": 3}));
        let s = strip_alias_prefixes(&r);
        assert_eq!(s["EMPLID"], "1");
        assert_eq!(s["B.EMPLID"], "2");
        assert_eq!(s["DESCR"], "x");
        assert_eq!(s["x"], 1);
        assert_eq!(s["A."], 3);
        assert_eq!(strip_alias("VERYLONGPREFIX.X"), "VERYLONGPREFIX.X");
    }

    #[test]
    fn amounts_accept_numbers_and_strings_exactly() {
        let l: JournalLine = from_record(&rec(json!({
            "BUSINESS_UNIT": "US001", "JOURNAL_ID": "0000012345", "JOURNAL_DATE": "2026-01-31",
            "UNPOST_SEQ": "0", "JOURNAL_LINE": 1, "LEDGER": "ACTUALS",
            "MONETARY_AMOUNT": 1234.56, "FOREIGN_AMOUNT": "-0.10", "ACCOUNT": " "
        })))
        .unwrap();
        assert_eq!(
            l.monetary_amount,
            Some(Decimal::from_str("1234.56").unwrap())
        );
        assert_eq!(l.foreign_amount, Some(Decimal::from_str("-0.10").unwrap()));
        assert_eq!(l.account, None);
        assert_eq!(l.unpost_seq, 0);
    }

    #[test]
    fn bad_value_error_names_the_field() {
        let e = from_record::<JobRow>(&rec(json!({
            "EMPLID": "K0G001", "EMPL_RCD": 0, "EFFDT": "31/01/2026", "EFFSEQ": 0
        })))
        .unwrap_err();
        let s = e.to_string();
        assert!(s.contains("JobRow") && s.contains("31/01/2026"), "{s}");
    }

    #[test]
    fn datetimes_in_native_and_iso_forms() {
        let want = NaiveDate::from_ymd_opt(2002, 12, 10)
            .unwrap()
            .and_hms_micro_opt(16, 28, 52, 123_000)
            .unwrap();
        for s in [
            "2002-12-10-16.28.52.123000",
            "2002-12-10T16:28:52.123",
            "2002-12-10 16:28:52.123",
            "2002-12-10T16:28:52.123-0600",
            "2002-12-10T16:28:52.123Z",
        ] {
            assert_eq!(parse_ps_datetime(s), Some(want), "{s}");
        }
        assert_eq!(parse_ps_datetime("yesterday"), None);
    }

    #[test]
    fn unknown_fields_round_trip() {
        let v: Vendor = from_record(&rec(json!({
            "SETID": "SHARE", "VENDOR_ID": "V1", "ZZ_SITE_FIELD": {"nested": [1, 2]}, "WTHD_SW": "N"
        })))
        .unwrap();
        assert_eq!(v.wthd_sw, Some(false));
        let back = serde_json::to_value(&v).unwrap();
        assert_eq!(back["ZZ_SITE_FIELD"], json!({"nested": [1, 2]}));
        let again: Vendor = serde_json::from_value(back).unwrap();
        assert_eq!(again, v);
    }
}
