//! A deterministic sample dataset of a mid-sized diversified manufacturer, **Northwind Forge**.
//!
//! Northwind Forge has a head office in Chicago (business unit `US001`, company `NWF`), plants in
//! Gary, Indiana (`US002`) and Dayton, Ohio (`US003`), and a Canadian forge in Hamilton, Ontario
//! (`CAN01`, company `NWC`, base currency CAD). Master data is shared under SETID `SHARE`.
//!
//! [`Dataset::manufacturer`] builds six tables (a few thousand rows at scale 1.0), each with the
//! PeopleSoft field names of its record and a change-tracking cursor:
//!
//! | table ([`TABLE_*`](TABLE_VENDORS)) | query ([`QUERY_*`](QUERY_VENDORS)) | key | cursor |
//! |---|---|---|---|
//! | `vendors` | `MLC_VENDORS` | SETID, VENDOR_ID | LASTUPDDTTM |
//! | `customers` | `MLC_CUSTOMERS` | SETID, CUST_ID | LASTUPDDTTM |
//! | `po_lines` | `MLC_PO_LINES` | BUSINESS_UNIT, PO_ID, LINE_NBR | LAST_DTTM_UPDATE |
//! | `journal_lines` | `MLC_JOURNAL_LINES` | BUSINESS_UNIT, JOURNAL_ID, JOURNAL_DATE, UNPOST_SEQ, JOURNAL_LINE, LEDGER | DTTM_STAMP_SEC |
//! | `job` | `MLC_JOB` | EMPLID, EMPL_RCD, EFFDT, EFFSEQ | LASTUPDDTTM |
//! | `paychecks` | `MLC_PAYCHECKS` | COMPANY, PAYGROUP, PAY_END_DT, OFF_CYCLE, PAGE_NUM, LINE_NUM, SEPCHK | LASTUPDDTTM |
//!
//! `vendors.LAST_ACTIVITY_DT` and `customers.CUST_STATUS_DT` always hold the local date of the
//! cursor ([`TableSpec::cursor_dates`]), and a paycheck's `LASTUPDDTTM` falls on its `CHECK_DT`
//! until the row is updated, so clients that poll those tables with date prompts on those
//! fields (peoplesoft-client's default stream definitions do) get consistent windows.
//!
//! Values are what QAS puts on the wire ([`serde_json::Value`]): characters as strings (a single
//! space `" "` means blank), dates as `YYYY-MM-DD`, datetimes as site-local native text
//! `YYYY-MM-DD-HH.MM.SS.ffffff` (zone [`SITE_TIME_ZONE`](crate::SITE_TIME_ZONE), America/Chicago).
//! Money is a JSON **string** in `po_lines`, `journal_lines` and `paychecks`, and a JSON
//! **number** (always exactly representable in binary, e.g. `1500.25`) in `customers`
//! (`CREDIT_LIMIT`) and `job` (`ANNUAL_RT`); see [`FieldSpec::json`].
//!
//! Awkward values are always present: `O'Brien & Sons Fasteners`, `Müller GmbH`,
//! `東京精機株式会社`, backslashes, double quotes, tabs, newlines, an emoji, `'; DROP TABLE x; --`,
//! blanks `" "`, a 3000-character description, amounts `12345678901234.56` and
//! `-12345678901234.56`, two rows in the ambiguous daylight-saving fall-back hour, rows sharing
//! one cursor value, and future-dated `job` rows.
//!
//! Every cursor lies in [`Dataset::history_start`]..[`Dataset::history_end`]
//! (2025-01-01 to 2026-11-01 site time). Rows keep their cursor as a UTC instant
//! ([`Row::cursor`]) and as the rendered local text ([`Row::cursor_text`]).
//!
//! [`TableSpec::mapping`] derives a sync-core [`Mapping`](sync_core::Mapping) for any table
//! (through `peoplesoft_client::values::mapping_from_field_metadata`), and every row of the
//! dataset maps through it with `PeopleSoftFormat`.
//!
//! For benchmarks, [`JournalLines`] generates any number of journal lines by index without
//! storing them, and [`Dataset::journal_benchmark`] mounts it as the `journal_lines` table.

mod gen;
mod journal;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde_json::Value;
use sync_core::{Record, Window};

use crate::sitetime;

pub use journal::JournalLines;

/// Name of the vendor table (record VENDOR).
pub const TABLE_VENDORS: &str = "vendors";
/// Name of the customer table (record CUSTOMER).
pub const TABLE_CUSTOMERS: &str = "customers";
/// Name of the purchase-order line table (PO_HDR + PO_LINE flattened).
pub const TABLE_PO_LINES: &str = "po_lines";
/// Name of the journal line table (JRNL_HEADER + JRNL_LN flattened).
pub const TABLE_JOURNAL_LINES: &str = "journal_lines";
/// Name of the job table (record JOB, effective-dated).
pub const TABLE_JOB: &str = "job";
/// Name of the paycheck table (record PAY_CHECK).
pub const TABLE_PAYCHECKS: &str = "paychecks";

/// QAS query serving [`TABLE_VENDORS`].
pub const QUERY_VENDORS: &str = "MLC_VENDORS";
/// QAS query serving [`TABLE_CUSTOMERS`].
pub const QUERY_CUSTOMERS: &str = "MLC_CUSTOMERS";
/// QAS query serving [`TABLE_PO_LINES`].
pub const QUERY_PO_LINES: &str = "MLC_PO_LINES";
/// QAS query serving [`TABLE_JOURNAL_LINES`].
pub const QUERY_JOURNAL_LINES: &str = "MLC_JOURNAL_LINES";
/// QAS query serving [`TABLE_JOB`].
pub const QUERY_JOB: &str = "MLC_JOB";
/// QAS query serving [`TABLE_PAYCHECKS`].
pub const QUERY_PAYCHECKS: &str = "MLC_PAYCHECKS";

/// The six sample tables in a fixed order.
pub const TABLES: [&str; 6] = [
    TABLE_VENDORS,
    TABLE_CUSTOMERS,
    TABLE_PO_LINES,
    TABLE_JOURNAL_LINES,
    TABLE_JOB,
    TABLE_PAYCHECKS,
];

/// The SETID of all master data.
pub const SETID: &str = "SHARE";

/// The business units: head office, two US plants, the Canadian plant.
pub const BUSINESS_UNITS: [&str; 4] = ["US001", "US002", "US003", "CAN01"];

/// PeopleSoft field types (the values QAS `FieldProperties` reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// `Character`.
    Character,
    /// `Long Character`.
    LongCharacter,
    /// `Number` (unsigned).
    Number,
    /// `Signed Number`.
    SignedNumber,
    /// `Date`, on the wire `YYYY-MM-DD`.
    Date,
    /// `Datetime`, on the wire `YYYY-MM-DD-HH.MM.SS.ffffff` (site-local).
    DateTime,
}

impl FieldType {
    /// The PeopleSoft display name (`"Signed Number"`, `"Datetime"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Character => "Character",
            FieldType::LongCharacter => "Long Character",
            FieldType::Number => "Number",
            FieldType::SignedNumber => "Signed Number",
            FieldType::Date => "Date",
            FieldType::DateTime => "Datetime",
        }
    }
}

/// How a field's values are encoded in QAS JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JsonRepr {
    /// A JSON string (characters, dates, datetimes, and money in most tables).
    String,
    /// A JSON number (integers; money only where every value is exactly representable).
    Number,
}

/// One field of a table: name, query alias, type and wire encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    /// The PeopleSoft field name, e.g. `VENDOR_ID`.
    pub name: String,
    /// The record alias in the query, e.g. `A`; the wire name is `A.VENDOR_ID`.
    pub alias: String,
    /// The PeopleSoft field type.
    pub field_type: FieldType,
    /// Field length (characters or total digits).
    pub length: u32,
    /// Decimal places (numbers only).
    pub decimals: u32,
    /// The JSON encoding of the values.
    pub json: JsonRepr,
}

impl FieldSpec {
    /// The query's unique field name, `alias.NAME` (the JSON key on the wire).
    pub fn unique_name(&self) -> String {
        format!("{}.{}", self.alias, self.name)
    }
}

/// The description of one table: its name, the PeopleSoft record, the serving query, fields,
/// key and cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// The table name, e.g. [`TABLE_VENDORS`].
    pub name: String,
    /// The main PeopleSoft record, e.g. `VENDOR`.
    pub record: String,
    /// The QAS query that serves it by default, e.g. [`QUERY_VENDORS`].
    pub query: String,
    /// The fields in query column order.
    pub fields: Vec<FieldSpec>,
    /// The primary key fields.
    pub key: Vec<String>,
    /// The cursor field (a `Datetime`).
    pub cursor: String,
    /// `Date` fields that always hold the site-local date of the cursor (kept in step by the
    /// mutation helpers): `LAST_ACTIVITY_DT` in vendors, `CUST_STATUS_DT` in customers. They
    /// let a client poll those tables by date prompts on these fields and get the same rows.
    pub cursor_dates: Vec<String>,
}

impl TableSpec {
    /// The position of a field (by PeopleSoft name, with or without alias prefix).
    pub fn field_index(&self, name: &str) -> Option<usize> {
        let bare = name.rsplit('.').next().unwrap_or(name);
        self.fields.iter().position(|f| f.name == bare)
    }

    /// The field spec of a field.
    pub fn field(&self, name: &str) -> Option<&FieldSpec> {
        self.field_index(name).map(|i| &self.fields[i])
    }

    /// The fields as QAS field metadata (alias-prefixed names, PeopleSoft types), the input of
    /// [`mapping_from_field_metadata`](peoplesoft_client::values::mapping_from_field_metadata).
    pub fn field_meta(&self) -> Vec<peoplesoft_client::values::FieldMeta> {
        self.fields
            .iter()
            .map(|f| peoplesoft_client::values::FieldMeta {
                name: f.unique_name(),
                field_type: f.field_type.as_str().to_string(),
                length: f.length,
                decimals: f.decimals,
            })
            .collect()
    }

    /// A sync-core mapping of this table to `target`: derived from [`field_meta`](Self::field_meta)
    /// (snake_case columns, sources `A.FIELD`), with the key as primary key, the cursor as
    /// cursor column, key columns not nullable, and source time zone
    /// [`SITE_TIME_ZONE_NAME`](crate::SITE_TIME_ZONE_NAME). Compile it with
    /// [`PeopleSoftFormat`](peoplesoft_client::values::PeopleSoftFormat): the rows carry
    /// PeopleSoft's native values.
    ///
    /// # Panics
    /// When sync-core rejects the derived mapping (a bug in the spec).
    pub fn mapping(&self, target: &str) -> sync_core::Mapping {
        let mut m =
            peoplesoft_client::values::mapping_from_field_metadata(target, &self.field_meta())
                .unwrap_or_else(|e| panic!("mapping for `{}`: {e}", self.name));
        let column_of = |m: &sync_core::Mapping, field: &str| {
            let src = format!("{}.{field}", self.field(field).map_or("A", |f| &f.alias));
            m.columns
                .iter()
                .find(|c| c.source == src)
                .map(|c| c.column.clone())
                .unwrap_or_else(|| panic!("mapping for `{}`: no column for {field}", self.name))
        };
        let key: Vec<String> = self.key.iter().map(|k| column_of(&m, k)).collect();
        for c in m.columns.iter_mut() {
            if key.contains(&c.column) {
                c.nullable = false;
            }
        }
        m.cursor_column = Some(column_of(&m, &self.cursor));
        m.primary_key = key;
        m.source_time_zone = Some(crate::SITE_TIME_ZONE_NAME.to_string());
        m
    }

    fn cursor_index(&self) -> usize {
        self.field_index(&self.cursor)
            .expect("cursor field is one of the fields")
    }

    fn key_indexes(&self) -> Vec<usize> {
        self.key
            .iter()
            .map(|k| self.field_index(k).expect("key field is one of the fields"))
            .collect()
    }
}

/// A key component, ordered numerically for numbers and lexically for text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum KeyPart {
    Int(i64),
    Text(String),
}

impl KeyPart {
    /// True when `key` sorts after the prompt values `after` (each read as the type of the
    /// key component it is compared with).
    pub(crate) fn after(key: &[KeyPart], after: &[String]) -> bool {
        for (k, a) in key.iter().zip(after) {
            let a = match k {
                KeyPart::Int(_) => match a.trim().parse::<i64>() {
                    Ok(n) => KeyPart::Int(n),
                    Err(_) => return false,
                },
                KeyPart::Text(_) => KeyPart::Text(a.clone()),
            };
            match k.cmp(&a) {
                std::cmp::Ordering::Equal => continue,
                o => return o == std::cmp::Ordering::Greater,
            }
        }
        false
    }
}

/// One row: its wire values, its cursor (UTC and rendered site-local text), and its cached JSON.
#[derive(Debug, Clone)]
pub struct Row {
    spec: Arc<TableSpec>,
    values: Vec<Value>,
    cursor: DateTime<Utc>,
    cursor_local: NaiveDateTime,
    cursor_text: String,
    sort_key: Vec<KeyPart>,
    cursor_null: bool,
    json: Arc<str>,
}

impl PartialEq for Row {
    fn eq(&self, other: &Self) -> bool {
        self.spec.name == other.spec.name && self.json == other.json
    }
}

impl Row {
    /// Builds a row; the cursor field's value is overwritten with the native text of `cursor`.
    ///
    /// # Panics
    /// When `values` does not have one value per field.
    pub fn new(spec: Arc<TableSpec>, values: Vec<Value>, cursor: DateTime<Utc>) -> Row {
        assert_eq!(
            values.len(),
            spec.fields.len(),
            "row of `{}` needs one value per field",
            spec.name
        );
        let mut row = Row {
            spec,
            values,
            cursor,
            cursor_local: NaiveDateTime::MIN,
            cursor_null: false,
            cursor_text: String::new(),
            sort_key: Vec::new(),
            json: Arc::from(""),
        };
        row.set_cursor(cursor);
        row
    }

    /// The table this row belongs to.
    pub fn spec(&self) -> &TableSpec {
        &self.spec
    }

    /// The values in field order, exactly as they go on the wire.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The value of a field (PeopleSoft name, alias prefix optional).
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.spec.field_index(field).map(|i| &self.values[i])
    }

    /// The value of a field as text: strings as-is, numbers in their JSON form.
    pub fn text(&self, field: &str) -> Option<String> {
        self.get(field).map(value_text)
    }

    /// The cursor as a UTC instant.
    pub fn cursor(&self) -> DateTime<Utc> {
        self.cursor
    }

    /// The cursor as site-local wall-clock time (what the server compares prompts with).
    pub fn cursor_local(&self) -> NaiveDateTime {
        self.cursor_local
    }

    /// The cursor as rendered on the wire, e.g. `2025-03-04-09.15.00.000000`.
    pub fn cursor_text(&self) -> &str {
        &self.cursor_text
    }

    /// The primary key values as text, in key order (numbers in decimal).
    pub fn key(&self) -> Vec<String> {
        self.spec
            .key_indexes()
            .into_iter()
            .map(|i| value_text(&self.values[i]))
            .collect()
    }

    /// The row as a QAS record: alias-prefixed field names (`A.VENDOR_ID`) to wire values,
    /// without `attr:rownumber`.
    pub fn to_record(&self) -> Record {
        self.spec
            .fields
            .iter()
            .zip(&self.values)
            .map(|(f, v)| (f.unique_name(), v.clone()))
            .collect()
    }

    /// The row as a JSON object exactly as QAS sends it, with the given `attr:rownumber`.
    pub fn to_json(&self, rownumber: u64) -> String {
        let mut s = String::with_capacity(self.json.len() + 24);
        let _ = write!(s, "{{\"attr:rownumber\":{rownumber},");
        s.push_str(&self.json);
        s
    }

    /// The cached JSON of the fields: `"A.F1":v1,...,"A.Fn":vn}` (no opening brace, no row
    /// number), shared with the server.
    pub(crate) fn json_tail(&self) -> &Arc<str> {
        &self.json
    }

    /// Sets a field's value (the cursor field is ignored: use [`Row::set_cursor`]).
    fn set_value(&mut self, field: usize, value: Value) {
        if field != self.spec.cursor_index() {
            self.values[field] = value;
        }
        self.refresh();
    }

    /// True when the cursor field is NULL (see [`Dataset::set_cursor_null`]).
    pub fn cursor_is_null(&self) -> bool {
        self.cursor_null
    }

    /// The key components, in key order.
    pub(crate) fn sort_key(&self) -> &[KeyPart] {
        &self.sort_key
    }

    fn set_cursor(&mut self, cursor: DateTime<Utc>) {
        self.cursor = cursor;
        self.cursor_null = false;
        self.cursor_local = sitetime::to_local(cursor);
        self.cursor_text = sitetime::native_local(self.cursor_local);
        let ci = self.spec.cursor_index();
        self.values[ci] = Value::String(self.cursor_text.clone());
        let date = Value::String(sitetime::date_text(self.cursor_local.date()));
        for f in &self.spec.cursor_dates {
            if let Some(i) = self.spec.field_index(f) {
                self.values[i] = date.clone();
            }
        }
        self.refresh();
    }

    fn refresh(&mut self) {
        self.sort_key = self
            .spec
            .key_indexes()
            .into_iter()
            .map(|i| match &self.values[i] {
                Value::Number(n) => n
                    .as_i64()
                    .map(KeyPart::Int)
                    .unwrap_or_else(|| KeyPart::Text(n.to_string())),
                other => KeyPart::Text(value_text(other)),
            })
            .collect();
        let mut s = String::with_capacity(256);
        for (i, (f, v)) in self.spec.fields.iter().zip(&self.values).enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push('"');
            s.push_str(&f.alias);
            s.push('.');
            s.push_str(&f.name);
            s.push_str("\":");
            s.push_str(&serde_json::to_string(v).unwrap_or_else(|_| "null".into()));
        }
        s.push('}');
        self.json = Arc::from(s);
    }

    fn order(&self) -> (NaiveDateTime, &[KeyPart]) {
        (self.cursor_local, &self.sort_key)
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A materialised table: rows kept sorted by (site-local cursor, key), the order QAS returns.
#[derive(Debug, Clone)]
pub struct Table {
    spec: Arc<TableSpec>,
    rows: Vec<Row>,
}

impl Table {
    /// An empty table.
    pub fn new(spec: TableSpec) -> Table {
        Table {
            spec: Arc::new(spec),
            rows: Vec::new(),
        }
    }

    /// The table's description.
    pub fn spec(&self) -> &TableSpec {
        &self.spec
    }

    /// A shared handle on the description (to build rows with [`Row::new`]).
    pub fn spec_arc(&self) -> Arc<TableSpec> {
        Arc::clone(&self.spec)
    }

    /// The table name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// All rows, ordered by site-local cursor, then key.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// The row with this key (values as text, in key order; numbers in decimal).
    pub fn get(&self, key: &[&str]) -> Option<&Row> {
        self.position(key).map(|i| &self.rows[i])
    }

    /// Exactly the rows the QAS stand-in returns for site-local prompt bounds `from <= cursor <
    /// to` (a missing bound is open), in wire order.
    pub fn rows_between_local(
        &self,
        from: Option<NaiveDateTime>,
        to: Option<NaiveDateTime>,
    ) -> &[Row] {
        let lo = match from {
            Some(f) => self.rows.partition_point(|r| r.cursor_local < f),
            None => 0,
        };
        let hi = match to {
            Some(t) => self.rows.partition_point(|r| r.cursor_local < t),
            None => self.rows.len(),
        };
        if lo >= hi {
            &[]
        } else {
            &self.rows[lo..hi]
        }
    }

    /// The rows whose UTC cursor is in `window` (differs from what the server returns for the
    /// same window only around the daylight-saving fall-back hour; see [`crate::sitetime`]).
    pub fn rows_in(&self, window: Window) -> Vec<&Row> {
        self.rows
            .iter()
            .filter(|r| window.contains(r.cursor))
            .collect()
    }

    /// Appends rows and restores the order.
    pub fn insert(&mut self, rows: impl IntoIterator<Item = Row>) {
        self.rows.extend(rows);
        self.sort();
    }

    /// Removes the row with this key; returns it.
    pub fn remove(&mut self, key: &[&str]) -> Option<Row> {
        self.position(key).map(|i| self.rows.remove(i))
    }

    fn position(&self, key: &[&str]) -> Option<usize> {
        let idx = self.spec.key_indexes();
        if idx.len() != key.len() {
            return None;
        }
        self.rows.iter().position(|r| {
            idx.iter()
                .zip(key)
                .all(|(&i, k)| value_text(&r.values[i]) == *k)
        })
    }

    fn sort(&mut self) {
        self.rows.sort_by(|a, b| a.order().cmp(&b.order()));
    }
}

/// The sample data: materialised tables, optionally generated (virtual) tables, and the state
/// that makes mutations deterministic.
#[derive(Debug, Clone)]
pub struct Dataset {
    seed: u64,
    tables: BTreeMap<String, Table>,
    generated: BTreeMap<String, JournalLines>,
    gen: Option<gen::GenState>,
    rng: fastrand::Rng,
}

impl Dataset {
    /// An empty dataset (add tables with [`Dataset::add_table`]).
    pub fn empty() -> Dataset {
        Dataset {
            seed: 0,
            tables: BTreeMap::new(),
            generated: BTreeMap::new(),
            gen: None,
            rng: fastrand::Rng::with_seed(0),
        }
    }

    /// The Northwind Forge dataset: the six tables listed in the [module docs](self).
    ///
    /// The same `seed` and `scale` always give byte-identical data. `scale` multiplies the row
    /// counts (1.0 ≈ 200 vendors, 300 customers, 1,000 PO lines, 1,700 journal lines, 600 job rows
    /// and 1,000 paychecks, about 4,800 rows; 100.0 ≈ 480,000 rows, built in about 5 s in a
    /// release build). Small scales are raised to a minimum per table (about 250 rows in all)
    /// so that every deliberate awkward value exists at any scale.
    pub fn manufacturer(seed: u64, scale: f64) -> Dataset {
        let (tables, state) = gen::generate(seed, scale);
        Dataset {
            seed,
            tables: tables
                .into_iter()
                .map(|t| (t.name().to_string(), t))
                .collect(),
            generated: BTreeMap::new(),
            gen: Some(state),
            rng: fastrand::Rng::with_seed(seed ^ 0x6d75_7461_7465),
        }
    }

    /// A dataset holding only a generated `journal_lines` table of `lines` rows (see
    /// [`JournalLines::new`]), for benchmarks: nothing is materialised.
    pub fn journal_benchmark(seed: u64, lines: u64) -> Dataset {
        let mut d = Dataset::empty();
        d.seed = seed;
        d.add_generated(JournalLines::new(seed, lines));
        d
    }

    /// The seed the dataset was built from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The first instant of the generated history: 2025-01-01 00:00 site time
    /// (2025-01-01T06:00:00Z).
    pub fn history_start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 1, 6, 0, 0).unwrap()
    }

    /// The end (exclusive) of the generated history: 2026-11-01 00:00 site time
    /// (2026-11-01T05:00:00Z). Every generated cursor is before it.
    pub fn history_end() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 1, 5, 0, 0).unwrap()
    }

    /// A materialised table by name ([`TABLE_VENDORS`], …).
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.get(name)
    }

    /// A materialised table by name, mutable. Prefer the mutation helpers, which keep the
    /// order and the caches right.
    pub fn table_mut(&mut self, name: &str) -> Option<&mut Table> {
        self.tables.get_mut(name)
    }

    /// A generated table by name.
    pub fn generated(&self, name: &str) -> Option<&JournalLines> {
        self.generated.get(name)
    }

    /// The names of all tables, materialised and generated.
    pub fn table_names(&self) -> Vec<String> {
        self.tables
            .keys()
            .chain(self.generated.keys())
            .cloned()
            .collect()
    }

    /// The table served by default for a QAS query name (materialised tables only).
    pub fn table_for_query(&self, query: &str) -> Option<&Table> {
        self.tables.values().find(|t| t.spec.query == query)
    }

    /// Adds or replaces a materialised table.
    pub fn add_table(&mut self, table: Table) {
        self.generated.remove(table.name());
        self.tables.insert(table.name().to_string(), table);
    }

    /// Adds or replaces a generated table (named after its spec, `journal_lines`).
    pub fn add_generated(&mut self, lines: JournalLines) {
        let name = lines.spec().name.clone();
        self.tables.remove(&name);
        self.generated.insert(name, lines);
    }

    /// Total number of rows over all tables.
    pub fn total_rows(&self) -> u64 {
        self.tables.values().map(|t| t.len() as u64).sum::<u64>()
            + self.generated.values().map(|g| g.len()).sum::<u64>()
    }

    /// Every row of every materialised table as JSON lines (`{"table":..,"row":{..}}`), in a
    /// fixed order: the canonical bytes of the dataset, used to check determinism.
    pub fn to_json_lines(&self) -> String {
        let mut out = String::new();
        for t in self.tables.values() {
            for (i, r) in t.rows.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{{\"table\":\"{}\",\"row\":{}}}",
                    t.name(),
                    r.to_json(i as u64 + 1)
                );
            }
        }
        out
    }

    /// Updates `n` distinct rows of `table` (chosen deterministically) and bumps their cursor
    /// to `at`. The change is table-specific and visible in a descriptive or amount field
    /// (vendor/customer status or name, PO status, journal line description, job rate, net pay).
    /// Returns the keys of the updated rows. Fewer rows are updated when the table is smaller.
    ///
    /// # Panics
    /// When the table does not exist or is generated.
    pub fn update_rows(&mut self, table: &str, n: usize, at: DateTime<Utc>) -> Vec<Vec<String>> {
        let t = self
            .tables
            .get_mut(table)
            .unwrap_or_else(|| panic!("update_rows: no materialised table `{table}`"));
        let len = t.rows.len();
        let n = n.min(len);
        let mut picked: Vec<usize> = Vec::with_capacity(n);
        while picked.len() < n {
            let i = self.rng.usize(0..len);
            if !picked.contains(&i) {
                picked.push(i);
            }
        }
        let mut keys = Vec::with_capacity(n);
        for i in picked {
            let row = &mut t.rows[i];
            gen::touch(row, &mut self.rng);
            row.set_cursor(at);
            keys.push(row.key());
        }
        t.sort();
        keys
    }

    /// Sets one field of the row with `key` and bumps its cursor to `at`. Returns false when
    /// the table, row or field does not exist. The cursor field itself cannot be set this way.
    pub fn set_field(
        &mut self,
        table: &str,
        key: &[&str],
        field: &str,
        value: Value,
        at: DateTime<Utc>,
    ) -> bool {
        let Some(t) = self.tables.get_mut(table) else {
            return false;
        };
        let Some(fi) = t.spec.field_index(field) else {
            return false;
        };
        let Some(pos) = t.position(key) else {
            return false;
        };
        let row = &mut t.rows[pos];
        row.set_value(fi, value);
        row.set_cursor(at);
        t.sort();
        true
    }

    /// Sets one field of the row with `key` **without** touching its cursor: a change in place
    /// that cursor polling cannot see (a correction by SQL, a process that does not maintain
    /// the last-update column). Returns false when the table, row or field does not exist.
    pub fn set_field_in_place(
        &mut self,
        table: &str,
        key: &[&str],
        field: &str,
        value: Value,
    ) -> bool {
        let Some(t) = self.tables.get_mut(table) else {
            return false;
        };
        let Some(fi) = t.spec.field_index(field) else {
            return false;
        };
        let Some(pos) = t.position(key) else {
            return false;
        };
        t.rows[pos].set_value(fi, value);
        true
    }

    /// Inserts `n` new rows into `table` with cursor `at` (new vendors, customers, employees'
    /// hire rows, paychecks; for `po_lines` and `journal_lines` one new PO or journal with `n`
    /// lines, balanced when `n >= 2`). Returns their keys.
    ///
    /// # Panics
    /// When the table is not one of the six sample tables of a [`Dataset::manufacturer`].
    pub fn insert_rows(&mut self, table: &str, n: usize, at: DateTime<Utc>) -> Vec<Vec<String>> {
        let gen = self
            .gen
            .as_mut()
            .expect("insert_rows needs a Dataset::manufacturer dataset");
        let t = self
            .tables
            .get_mut(table)
            .unwrap_or_else(|| panic!("insert_rows: no materialised table `{table}`"));
        let rows = gen.new_rows(&t.spec, n, at);
        let keys = rows.iter().map(Row::key).collect();
        t.insert(rows);
        keys
    }

    /// Inserts `n` "late-committed" rows: their cursor is `cursor`, typically *before* the
    /// last sync (e.g. 30 minutes before it), as when a long PeopleSoft transaction commits
    /// after a poll already read that period. They are invisible until this call and visible
    /// from then on, so only a sync that re-reads with a look-back finds them.
    /// Returns their keys.
    pub fn insert_late_rows(
        &mut self,
        table: &str,
        n: usize,
        cursor: DateTime<Utc>,
    ) -> Vec<Vec<String>> {
        self.insert_rows(table, n, cursor)
    }

    /// Sets the cursor field of the row with `key` to NULL (and the date fields kept in step
    /// with it), as a row inserted by a process that does not maintain the last-update column.
    /// The row keeps its place in the table; the server returns it only to a request whose
    /// window prompts are both empty. Returns false when the table or row does not exist.
    pub fn set_cursor_null(&mut self, table: &str, key: &[&str]) -> bool {
        let Some(t) = self.tables.get_mut(table) else {
            return false;
        };
        let Some(pos) = t.position(key) else {
            return false;
        };
        let row = &mut t.rows[pos];
        let ci = row.spec.cursor_index();
        row.values[ci] = Value::Null;
        let dates: Vec<usize> = row
            .spec
            .cursor_dates
            .iter()
            .filter_map(|f| row.spec.field_index(f))
            .collect();
        for i in dates {
            row.values[i] = Value::Null;
        }
        row.cursor_null = true;
        row.refresh();
        true
    }

    /// Removes the row with `key` (PeopleSoft deletes are invisible to cursor polling).
    pub fn remove_row(&mut self, table: &str, key: &[&str]) -> Option<Row> {
        self.tables.get_mut(table)?.remove(key)
    }
}

/// A dataset shared between the server and a test, mutable while the server runs.
#[derive(Debug, Clone)]
pub struct SharedDataset(Arc<RwLock<Dataset>>);

impl SharedDataset {
    /// Wraps a dataset.
    pub fn new(dataset: Dataset) -> SharedDataset {
        SharedDataset(Arc::new(RwLock::new(dataset)))
    }

    /// Read access (poisoning is ignored).
    pub fn read(&self) -> RwLockReadGuard<'_, Dataset> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Write access (poisoning is ignored). Requests wait while the guard is held.
    pub fn write(&self) -> RwLockWriteGuard<'_, Dataset> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl From<Dataset> for SharedDataset {
    fn from(d: Dataset) -> Self {
        SharedDataset::new(d)
    }
}

#[cfg(test)]
mod tests;
