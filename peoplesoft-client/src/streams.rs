//! Stream definitions: which query feeds a stream, how a window becomes prompt values, the
//! keys and cursor, effective dating, and the mapping to Databricks columns. One default per
//! domain, every part overridable.
//!
//! # The queries a site creates
//!
//! The defaults expect **public** PeopleSoft queries (Query Manager) named `MLC_…`, each with
//! two prompts on its cursor field, in this order:
//!
//! | Prompt (unique name) | Criterion in the query |
//! |---|---|
//! | `FROM_DTTM` | cursor field `>=` prompt |
//! | `TO_DTTM` | cursor field `<` prompt (half-open, the default), or `BETWEEN FROM_DTTM AND TO_DTTM` with [`RangeSemantics::InclusiveBetween`] |
//!
//! | Default | Query | Records | Cursor (prompt type) |
//! |---|---|---|---|
//! | [`StreamDefinition::vendors`] | `MLC_VENDORS` | VENDOR | LAST_ACTIVITY_DT (date) |
//! | [`StreamDefinition::customers`] | `MLC_CUSTOMERS` | CUSTOMER | CUST_STATUS_DT (date) |
//! | [`StreamDefinition::purchase_orders`] | `MLC_PO_HEADERS` | PO_HDR | LAST_DTTM_UPDATE (datetime) |
//! | [`StreamDefinition::purchase_order_lines`] | `MLC_PO_LINES` | PO_LINE (+PO_LINE_SHIP, PO_HDR for the cursor) | LAST_DTTM_UPDATE (datetime) |
//! | [`StreamDefinition::journal_headers`] | `MLC_JOURNALS` | JRNL_HEADER | DTTM_STAMP_SEC (datetime) |
//! | [`StreamDefinition::journal_lines`] | `MLC_JOURNAL_LINES` | JRNL_LN (+JRNL_HEADER for the cursor) | DTTM_STAMP_SEC (datetime) |
//! | [`StreamDefinition::employees`] | `MLC_JOB` | JOB (effective-dated) | LASTUPDDTTM (datetime) |
//! | [`StreamDefinition::paychecks`] | `MLC_PAYCHECKS` | PAY_CHECK | CHECK_DT (date) |
//!
//! Vendors and customers have no confirmed last-update column; their cursors only catch
//! activity the date records. For a complete picture take periodic full snapshots (one wide
//! window) and let the engine's upsert reconcile.

use chrono::{DateTime, Duration, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde_json::json;
use sync_core::mapping::{ColumnMapping, Mapping, MappingError, MappingMapper};
use sync_core::{EffectiveDated, Window};

use crate::config::QueryName;
use crate::error::ConfigError;
use crate::qas::{QueryOwner, DEFAULT_MAX_ROWS};
use crate::records::{self, RecordField};

/// How a window bound is written as a prompt value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PromptFormat {
    /// `YYYY-MM-DD` (date prompts). PeopleSoft stamps dates in the **site's calendar**, so a
    /// window's bounds are converted to the source time zone first; the start is rounded
    /// **down** to its local date and the end up, so every day the window touches is read
    /// (neighbouring windows overlap by a day; the keyed upsert absorbs the re-read).
    ///
    /// A date cursor cannot tell late rows of the same day apart, so the source asks the
    /// engine for a lookback of at least one day plus the zone's offset
    /// ([`StreamDefinition::min_lookback`]), and windows are never split below one day.
    Date,
    /// PeopleSoft's native datetime `YYYY-MM-DD-HH.MM.SS.ffffff` (microseconds), in the source
    /// time zone. The default for datetime cursors.
    #[default]
    NativeDateTime,
    /// ISO `YYYY-MM-DDTHH:MM:SS` (whole seconds, no offset), in the source time zone.
    IsoDateTime,
}

impl PromptFormat {
    /// The smallest step of the format: 1 day, 1 µs, or 1 s.
    pub fn unit(self) -> Duration {
        match self {
            PromptFormat::Date => Duration::days(1),
            PromptFormat::NativeDateTime => Duration::microseconds(1),
            PromptFormat::IsoDateTime => Duration::seconds(1),
        }
    }
}

/// How the query compares its cursor field with the two prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RangeSemantics {
    /// `FROM <= cursor < TO` (default): the window's bounds are sent as they are.
    #[default]
    HalfOpen,
    /// `cursor BETWEEN FROM AND TO` (both inclusive): `TO` is sent as the window end minus
    /// the format's smallest unit (1 day for dates, 1 µs for native datetimes, 1 s for ISO
    /// datetimes). With whole-second ISO prompts, a cursor stored with fractions of a second
    /// in the last second of a window is not matched: prefer the native format then.
    InclusiveBetween,
}

/// Whether record-alias prefixes (`A.VENDOR_ID`) are removed from field names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AliasPrefixes {
    /// Remove them (default); see [`strip_alias_prefixes`](crate::records::strip_alias_prefixes).
    #[default]
    Strip,
    /// Keep field names exactly as QAS sent them.
    Keep,
}

/// Which rows an effective-dated stream keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EffectiveDatedRows {
    /// Every row (history, current and future), each flagged (default).
    #[default]
    FullHistory,
    /// Only the current row per key **and** future-dated rows (flagged not current), so a
    /// future change is not lost. Rows loaded earlier stay in the target; the sink re-flags
    /// them (not current once a newer row arrives).
    CurrentAndFuture,
}

/// Effective-dating settings (EFFDT/EFFSEQ records such as JOB).
///
/// The current row per key is the one with the greatest EFFDT on or before the as-of date
/// (today in the source time zone), then the greatest EFFSEQ on that date.
///
/// Two steps keep the flag right:
/// 1. [`PeopleSoftSource`](crate::PeopleSoftSource) flags the rows of each page
///    ([`flag_current_rows`](crate::flag_current_rows)): a first approximation, computed
///    within one window's result only.
/// 2. The definition also declares the dating on its mapping
///    (`mapping.effective_dating`, a [`sync_core::EffectiveDated`] over the target columns,
///    kept in step by [`StreamDefinition::sync_mapping_effective_dating`]). The sink then
///    recomputes the flag for every key a batch touches, rows loaded by earlier windows
///    included, and the engine sweeps the whole table once per day in the source time zone,
///    so a future-dated row becomes current on its date. A newer EFFDT read in a later window
///    therefore leaves exactly one current row per key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveDating {
    /// The key without EFFDT/EFFSEQ, e.g. `EMPLID`, `EMPL_RCD`.
    pub key_fields: Vec<String>,
    /// `EFFDT`.
    pub effdt_field: String,
    /// `EFFSEQ`, if the record has one.
    pub effseq_field: Option<String>,
    /// The boolean field added to every row (default `IS_CURRENT`).
    pub current_flag_field: String,
    /// Which rows are kept.
    pub rows: EffectiveDatedRows,
}

impl EffectiveDating {
    /// EFFDT/EFFSEQ dating over `key_fields`, flag `IS_CURRENT`, full history.
    pub fn new(key_fields: &[&str]) -> Self {
        Self {
            key_fields: key_fields.iter().map(|s| s.to_string()).collect(),
            effdt_field: "EFFDT".into(),
            effseq_field: Some("EFFSEQ".into()),
            current_flag_field: "IS_CURRENT".into(),
            rows: EffectiveDatedRows::FullHistory,
        }
    }
}

/// Everything a [`PeopleSoftSource`](crate::PeopleSoftSource) needs to know about one stream.
///
/// All fields are public and every default can be changed field by field, or with the
/// builder-style methods.
///
/// ```
/// use peoplesoft_client::{PromptFormat, StreamDefinition};
///
/// let mut s = StreamDefinition::vendors()
///     .query("ZZ_VENDORS_EXTRACT").unwrap()
///     .time_zone("America/Chicago").unwrap()
///     .prompt_format(PromptFormat::Date)
///     .max_rows(20_000);
/// s.column("name1").unwrap().column = "vendor_name".into();
/// assert_eq!(s.mapping.table, "ps_vendors");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct StreamDefinition {
    /// A short stream name for messages (`vendors`).
    pub name: String,
    /// The query to run.
    pub query: QueryName,
    /// Public (default) or private query.
    pub owner: QueryOwner,
    /// Unique name of the window-start prompt (default `FROM_DTTM`).
    pub from_prompt: String,
    /// Unique name of the window-end prompt (default `TO_DTTM`).
    pub to_prompt: String,
    /// Further fixed prompts sent after the two window prompts, in order (e.g. `SETID`).
    pub fixed_prompts: Vec<(String, String)>,
    /// How window bounds are written.
    pub prompt_format: PromptFormat,
    /// How the query compares the cursor with the prompts.
    pub range: RangeSemantics,
    /// The time zone PeopleSoft stores local datetimes in (default UTC). Prefer
    /// [`time_zone`](Self::time_zone), which also sets the mapping's `source_time_zone`.
    pub source_time_zone: Tz,
    /// `maxrows` per request; a result of this many rows is reported as truncated so the
    /// engine splits the window. Must be > 0.
    pub max_rows: u32,
    /// Key fields (PeopleSoft names).
    pub key_fields: Vec<String>,
    /// Cursor field (PeopleSoft name).
    pub cursor_field: String,
    /// Alias-prefix handling.
    pub alias_prefixes: AliasPrefixes,
    /// Effective dating, for EFFDT records.
    pub effective_dating: Option<EffectiveDating>,
    /// The query profile's "Max Rows Fetched" for the OPRID, when the operator knows it.
    /// PeopleSoft applies it to every request, also below an explicit `maxrows`, without
    /// saying so. When set, requests ask for at most this many rows and a page of this size is
    /// treated as truncated; when unset, the engine detects such a cap (see
    /// `sync_core::SourceCapabilities::silent_row_cap`).
    pub profile_max_rows: Option<u32>,
    /// Query-profile caps below this many rows are assumed not to exist (default 100), so a
    /// short first page of rows tied on one cursor value is trusted instead of failing. **\[INF\]**
    /// An administrator can set "Max Rows Fetched" lower; then declare it with
    /// [`profile_max_rows`](Self::profile_max_rows) or lower this floor.
    pub profile_cap_floor: u32,
    /// Key-paging prompts, one per key field in [`key_fields`](Self::key_fields) order: the
    /// query returns rows whose key is greater than the prompts' values (an empty value means
    /// "from the first key"), **ordered by key**. With them, more rows on one cursor value
    /// than a page holds are paged by key instead of failing the window.
    pub key_prompts: Vec<String>,
    /// Count rows whose cursor is NULL in `verify` by running the query with both window
    /// prompts empty (the query's criteria must treat an empty prompt as "no bound"; this
    /// reads the whole result once).
    pub null_cursor_check: bool,
    /// The mapping to the target table (snake_case columns).
    pub mapping: Mapping,
}

fn snake(field: &str) -> String {
    field.to_ascii_lowercase()
}

/// The default mapping of a record's fields: one column per field (lower-case name), keys not
/// nullable, blanks read as NULL for text, date and datetime fields.
fn mapping(table: &str, fields: &[RecordField], cursor: &str) -> Mapping {
    let keys = records::key_fields(fields);
    let columns: Vec<_> = fields
        .iter()
        .map(|f| {
            let (src, ty) = (f.name, f.column_type);
            let blank = ty == "STRING" || ty == "DATE" || ty == "TIMESTAMP";
            let mut c =
                json!({"column": snake(src), "source": src, "type": ty, "nullable": !f.key});
            if blank {
                c["transforms"] = json!(["blank_as_null"]);
            }
            c
        })
        .collect();
    let v = json!({
        "table": table,
        "columns": columns,
        "primary_key": keys.iter().map(|k| snake(k)).collect::<Vec<_>>(),
        "cursor_column": snake(cursor),
    });
    // Built through serde so that fields sync-core adds later (with serde defaults) keep working.
    serde_json::from_value(v).expect("default mappings are valid")
}

fn define(
    name: &str,
    query: &str,
    table: &str,
    cursor: &str,
    format: PromptFormat,
    fields: &[RecordField],
) -> StreamDefinition {
    StreamDefinition::custom(
        name,
        QueryName::new(query).expect("default query names are valid"),
        mapping(table, fields, cursor),
        records::key_fields(fields)
            .into_iter()
            .map(String::from)
            .collect(),
        cursor,
    )
    .prompt_format(format)
}

impl StreamDefinition {
    /// A stream over any query: `FROM_DTTM`/`TO_DTTM` prompts in PeopleSoft's native datetime
    /// form over a half-open range, site time UTC, no fixed or key prompts; set the public
    /// fields (or [`prompt_format`](Self::prompt_format), [`time_zone`](Self::time_zone)) for
    /// the site's query.
    pub fn custom(
        name: impl Into<String>,
        query: QueryName,
        mapping: Mapping,
        key_fields: Vec<String>,
        cursor_field: impl Into<String>,
    ) -> Self {
        StreamDefinition {
            name: name.into(),
            query,
            owner: QueryOwner::Public,
            from_prompt: "FROM_DTTM".into(),
            to_prompt: "TO_DTTM".into(),
            fixed_prompts: Vec::new(),
            prompt_format: PromptFormat::NativeDateTime,
            range: RangeSemantics::HalfOpen,
            source_time_zone: Tz::UTC,
            max_rows: DEFAULT_MAX_ROWS,
            key_fields,
            cursor_field: cursor_field.into(),
            alias_prefixes: AliasPrefixes::Strip,
            effective_dating: None,
            profile_max_rows: None,
            profile_cap_floor: 100,
            key_prompts: Vec::new(),
            null_cursor_check: false,
            mapping,
        }
    }

    /// Vendors: `MLC_VENDORS` over VENDOR, cursor LAST_ACTIVITY_DT (date prompts).
    pub fn vendors() -> Self {
        define(
            "vendors",
            "MLC_VENDORS",
            "ps_vendors",
            "LAST_ACTIVITY_DT",
            PromptFormat::Date,
            records::Vendor::FIELDS,
        )
    }

    /// Customers: `MLC_CUSTOMERS` over CUSTOMER, cursor CUST_STATUS_DT (date prompts).
    pub fn customers() -> Self {
        define(
            "customers",
            "MLC_CUSTOMERS",
            "ps_customers",
            "CUST_STATUS_DT",
            PromptFormat::Date,
            records::Customer::FIELDS,
        )
    }

    /// Purchase-order headers: `MLC_PO_HEADERS` over PO_HDR, cursor LAST_DTTM_UPDATE.
    pub fn purchase_orders() -> Self {
        define(
            "purchase_orders",
            "MLC_PO_HEADERS",
            "ps_purchase_orders",
            "LAST_DTTM_UPDATE",
            PromptFormat::NativeDateTime,
            records::PurchaseOrder::FIELDS,
        )
    }

    /// Purchase-order lines: `MLC_PO_LINES` over PO_LINE (joined to PO_LINE_SHIP for
    /// quantities and PO_HDR for the cursor), cursor LAST_DTTM_UPDATE.
    pub fn purchase_order_lines() -> Self {
        define(
            "purchase_order_lines",
            "MLC_PO_LINES",
            "ps_purchase_order_lines",
            "LAST_DTTM_UPDATE",
            PromptFormat::NativeDateTime,
            records::PurchaseOrderLine::FIELDS,
        )
    }

    /// Journal headers: `MLC_JOURNALS` over JRNL_HEADER, cursor DTTM_STAMP_SEC.
    pub fn journal_headers() -> Self {
        define(
            "journal_headers",
            "MLC_JOURNALS",
            "ps_journal_headers",
            "DTTM_STAMP_SEC",
            PromptFormat::NativeDateTime,
            records::JournalHeader::FIELDS,
        )
    }

    /// Journal lines: `MLC_JOURNAL_LINES` over JRNL_LN (joined to JRNL_HEADER for the
    /// cursor), cursor DTTM_STAMP_SEC.
    pub fn journal_lines() -> Self {
        define(
            "journal_lines",
            "MLC_JOURNAL_LINES",
            "ps_journal_lines",
            "DTTM_STAMP_SEC",
            PromptFormat::NativeDateTime,
            records::JournalLine::FIELDS,
        )
    }

    /// Employees' job history: `MLC_JOB` over JOB (effective-dated, full history with an
    /// `IS_CURRENT` flag), cursor LASTUPDDTTM.
    pub fn employees() -> Self {
        let d = define(
            "employees",
            "MLC_JOB",
            "ps_job",
            "LASTUPDDTTM",
            PromptFormat::NativeDateTime,
            records::JobRow::FIELDS,
        );
        d.effective_dating(Some(EffectiveDating::new(&["EMPLID", "EMPL_RCD"])))
    }

    /// Paychecks: `MLC_PAYCHECKS` over PAY_CHECK, cursor CHECK_DT (date prompts). No
    /// last-update column is confirmed: give the engine a look-back so reissued checks are
    /// re-read.
    pub fn paychecks() -> Self {
        define(
            "paychecks",
            "MLC_PAYCHECKS",
            "ps_paychecks",
            "CHECK_DT",
            PromptFormat::Date,
            records::Paycheck::FIELDS,
        )
    }

    /// Every default definition.
    pub fn all_defaults() -> Vec<Self> {
        vec![
            Self::vendors(),
            Self::customers(),
            Self::purchase_orders(),
            Self::purchase_order_lines(),
            Self::journal_headers(),
            Self::journal_lines(),
            Self::employees(),
            Self::paychecks(),
        ]
    }

    /// Uses another query.
    pub fn query(mut self, name: &str) -> Result<Self, ConfigError> {
        self.query = QueryName::new(name)?;
        Ok(self)
    }

    /// Sets the window prompt names (in the order the query declares them).
    pub fn prompts(mut self, from: impl Into<String>, to: impl Into<String>) -> Self {
        self.from_prompt = from.into();
        self.to_prompt = to.into();
        self
    }

    /// Appends a fixed prompt sent after the window prompts.
    pub fn fixed_prompt(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.fixed_prompts.push((name.into(), value.into()));
        self
    }

    /// Sets the source time zone (IANA name); also recorded in the mapping so zone-less
    /// datetimes are converted to UTC.
    pub fn time_zone(mut self, tz: &str) -> Result<Self, ConfigError> {
        self.source_time_zone = tz
            .parse()
            .map_err(|_| ConfigError::new("source_time_zone", tz, "not an IANA time zone name"))?;
        self.mapping.source_time_zone = Some(tz.to_string());
        Ok(self)
    }

    /// Compiles [`mapping`](Self::mapping) with [`PeopleSoftFormat`], so native datetimes,
    /// `Y`/`N` flags, single-space blanks and alias-prefixed field names are read as
    /// PeopleSoft writes them: the mapper to run this stream with.
    ///
    /// [`PeopleSoftFormat`]: crate::values::PeopleSoftFormat
    pub fn mapper(&self) -> Result<MappingMapper, MappingError> {
        self.mapping
            .compile_with(std::sync::Arc::new(crate::values::PeopleSoftFormat))
    }

    /// Sets the prompt value format.
    pub fn prompt_format(mut self, f: PromptFormat) -> Self {
        self.prompt_format = f;
        self
    }

    /// Sets the range semantics.
    pub fn range(mut self, r: RangeSemantics) -> Self {
        self.range = r;
        self
    }

    /// Sets `maxrows`.
    pub fn max_rows(mut self, n: u32) -> Self {
        self.max_rows = n;
        self
    }

    /// Declares the query profile's row limit ([`profile_max_rows`](Self::profile_max_rows)).
    pub fn profile_max_rows(mut self, n: Option<u32>) -> Self {
        self.profile_max_rows = n;
        self
    }

    /// Sets the key-paging prompts ([`key_prompts`](Self::key_prompts)).
    pub fn key_prompts<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.key_prompts = names.into_iter().map(Into::into).collect();
        self
    }

    /// The `maxrows` sent: [`max_rows`](Self::max_rows), or the profile limit when lower.
    pub fn requested_rows(&self) -> u32 {
        self.profile_max_rows
            .map_or(self.max_rows, |p| p.min(self.max_rows))
    }

    /// Sets alias-prefix handling.
    pub fn alias_prefixes(mut self, a: AliasPrefixes) -> Self {
        self.alias_prefixes = a;
        self
    }

    /// Sets or removes effective dating, on the source and on the mapping
    /// ([`sync_mapping_effective_dating`](Self::sync_mapping_effective_dating)).
    pub fn effective_dating(mut self, e: Option<EffectiveDating>) -> Self {
        self.effective_dating = e;
        self.sync_mapping_effective_dating();
        self
    }

    /// Declares [`effective_dating`](Self::effective_dating) on the mapping as a
    /// [`sync_core::EffectiveDated`] over the target columns (each field translated to the
    /// column mapped from it, ASCII case-insensitively and ignoring a record-alias prefix;
    /// an unmapped field keeps its lower-case name, so compiling the mapping names it), or
    /// removes it. Call it after changing the columns or the effective-dating fields by hand.
    pub fn sync_mapping_effective_dating(&mut self) {
        let mapping = &self.mapping;
        let column = |field: &str| {
            mapping
                .columns
                .iter()
                .find(|c| {
                    let source = c.source.rsplit('.').next().unwrap_or(&c.source);
                    source.eq_ignore_ascii_case(field)
                })
                .map_or_else(|| snake(field), |c| c.column.clone())
        };
        self.mapping.effective_dating = self.effective_dating.as_ref().map(|ed| {
            let mut target = EffectiveDated::new(
                ed.key_fields.iter().map(|k| column(k)),
                column(&ed.effdt_field),
                column(&ed.current_flag_field),
            );
            if let Some(seq) = &ed.effseq_field {
                target = target.sequence(column(seq));
            }
            target
        });
    }

    /// Sets the target table name.
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.mapping.table = table.into();
        self
    }

    /// The mapping of target column `column` (case-insensitive), to change it in place.
    pub fn column(&mut self, column: &str) -> Option<&mut ColumnMapping> {
        self.mapping.column_mut(column)
    }

    /// Replaces the column with the same target name, or appends it.
    pub fn with_column(mut self, c: ColumnMapping) -> Self {
        match self.mapping.column_mut(&c.column) {
            Some(existing) => *existing = c,
            None => self.mapping.columns.push(c),
        }
        self
    }

    /// Removes a target column (no effect if absent).
    pub fn without_column(mut self, column: &str) -> Self {
        self.mapping
            .columns
            .retain(|c| !c.column.eq_ignore_ascii_case(column));
        self
    }

    /// Checks the definition: prompt names, `maxrows`, and fixed prompt values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_rows == 0 {
            return Err(ConfigError::new(
                "max_rows",
                "0",
                format!(
                    "stream `{}`: must be > 0 so truncation can be detected",
                    self.name
                ),
            ));
        }
        for (field, p) in [
            ("from_prompt", &self.from_prompt),
            ("to_prompt", &self.to_prompt),
        ] {
            if p.trim().is_empty() || p.contains(',') {
                return Err(ConfigError::new(
                    field,
                    p.as_str(),
                    "must be a non-empty prompt name without commas",
                ));
            }
        }
        if self.cursor_field.is_empty() {
            return Err(ConfigError::new("cursor_field", "", "must not be empty"));
        }
        if !self.key_prompts.is_empty() && self.key_prompts.len() != self.key_fields.len() {
            return Err(ConfigError::new(
                "key_prompts",
                self.key_prompts.join(","),
                format!(
                    "stream `{}`: give one key prompt per key field ({} key field(s): {})",
                    self.name,
                    self.key_fields.len(),
                    self.key_fields.join(", ")
                ),
            ));
        }
        if self.profile_max_rows == Some(0) {
            return Err(ConfigError::new(
                "profile_max_rows",
                "0",
                format!("stream `{}`: must be > 0", self.name),
            ));
        }
        let mut names: Vec<&str> = vec![&self.from_prompt, &self.to_prompt];
        names.extend(self.fixed_prompts.iter().map(|(n, _)| n.as_str()));
        names.extend(self.key_prompts.iter().map(String::as_str));
        for (i, n) in names.iter().enumerate() {
            if n.trim().is_empty() || n.contains(',') {
                return Err(ConfigError::new(
                    "key_prompts",
                    *n,
                    "must be a non-empty prompt name without commas",
                ));
            }
            if names[..i].contains(n) {
                return Err(ConfigError::new(
                    "prompts",
                    *n,
                    format!("stream `{}`: prompt `{n}` is given twice", self.name),
                ));
            }
        }
        for (name, value) in &self.fixed_prompts {
            if name.trim().is_empty() || name.contains(',') || value.contains(',') {
                return Err(ConfigError::new(
                    "fixed_prompts",
                    format!("{name}={value}"),
                    "prompt names must be non-empty and neither names nor values may contain a comma (QAS separates prompts by commas and has no documented escape)",
                ));
            }
        }
        Ok(())
    }

    /// The two prompt values for `window`, per [`prompt_format`](Self::prompt_format),
    /// [`range`](Self::range) and [`source_time_zone`](Self::source_time_zone).
    ///
    /// The start is rounded down and the end up to the format's unit, so a bound that falls
    /// between two representable values never loses rows (it can re-read a few, which the
    /// engine's keyed upsert absorbs).
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use peoplesoft_client::{PromptFormat, RangeSemantics, StreamDefinition};
    /// use sync_core::Window;
    ///
    /// let w = Window::new(
    ///     Utc.with_ymd_and_hms(2026, 7, 1, 5, 0, 0).unwrap(),
    ///     Utc.with_ymd_and_hms(2026, 7, 1, 6, 0, 0).unwrap(),
    /// );
    /// let s = StreamDefinition::purchase_orders().time_zone("America/Chicago").unwrap();
    /// assert_eq!(
    ///     s.prompt_values(&w),
    ///     ("2026-07-01-00.00.00.000000".to_string(), "2026-07-01-01.00.00.000000".to_string())
    /// );
    /// let s = s.range(RangeSemantics::InclusiveBetween).prompt_format(PromptFormat::IsoDateTime);
    /// assert_eq!(s.prompt_values(&w).1, "2026-07-01T00:59:59");
    /// ```
    pub fn prompt_values(&self, window: &Window) -> (String, String) {
        let inclusive = self.range == RangeSemantics::InclusiveBetween;
        let (lo, hi) = offset_range(&self.source_time_zone, window);
        // The earliest wall-clock time any instant of the window shows, and the latest: across
        // a fall-back transition the repeated hour is covered, not skipped.
        let from_local = window.from.naive_utc() + lo;
        let to_local = window.to.naive_utc() + hi;
        match self.prompt_format {
            PromptFormat::Date => {
                let from = from_local.date();
                let mut to = if to_local.time() == chrono::NaiveTime::MIN {
                    to_local.date()
                } else {
                    to_local.date().succ_opt().unwrap_or(to_local.date())
                };
                if inclusive {
                    to = to.pred_opt().unwrap_or(to);
                }
                (
                    from.format("%Y-%m-%d").to_string(),
                    to.format("%Y-%m-%d").to_string(),
                )
            }
            PromptFormat::NativeDateTime | PromptFormat::IsoDateTime => {
                let unit = self.prompt_format.unit();
                let from = floor_to(from_local, unit);
                let mut to = ceil_to(to_local, unit);
                if inclusive {
                    to -= unit;
                }
                let f = if self.prompt_format == PromptFormat::NativeDateTime {
                    "%Y-%m-%d-%H.%M.%S%.6f"
                } else {
                    "%Y-%m-%dT%H:%M:%S"
                };
                (from.format(f).to_string(), to.format(f).to_string())
            }
        }
    }

    /// The smallest lookback that keeps every late row reachable: for date prompts one day
    /// plus the zone's largest offset from UTC (a date in the site's calendar can start that
    /// long before its UTC midnight); `None` for datetime prompts.
    pub fn min_lookback(&self) -> Option<Duration> {
        if self.prompt_format != PromptFormat::Date {
            return None;
        }
        let tz = &self.source_time_zone;
        let year = Window::new(
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single()?,
            Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).single()?,
        );
        let (lo, hi) = offset_range(tz, &year);
        Some(Duration::days(1) + lo.abs().max(hi.abs()))
    }

    /// The smallest step a window can be split to usefully: one day for date prompts.
    pub fn cursor_granularity(&self) -> Option<Duration> {
        (self.prompt_format == PromptFormat::Date).then(|| Duration::days(1))
    }
}

/// The smallest and largest UTC offset of `tz` over `window` (ends included). Offsets change
/// at most twice a year in real zones, so sampling both ends and every 12 hours finds both.
fn offset_range(tz: &Tz, window: &Window) -> (Duration, Duration) {
    let offset = |t: DateTime<Utc>| {
        Duration::seconds(i64::from(
            tz.offset_from_utc_datetime(&t.naive_utc())
                .fix()
                .local_minus_utc(),
        ))
    };
    let (mut lo, mut hi) = (offset(window.from), offset(window.from));
    let step = std::cmp::max(Duration::hours(12), window.width() / 2000);
    let mut t = window.from;
    while t < window.to {
        let o = offset(t);
        lo = lo.min(o);
        hi = hi.max(o);
        t += step;
    }
    let o = offset(window.to);
    (lo.min(o), hi.max(o))
}

fn floor_to(t: NaiveDateTime, unit: Duration) -> NaiveDateTime {
    let sub = if unit == Duration::seconds(1) {
        t.nanosecond() as i64
    } else {
        (t.nanosecond() % 1000) as i64
    };
    t - Duration::nanoseconds(sub)
}

fn ceil_to(t: NaiveDateTime, unit: Duration) -> NaiveDateTime {
    let f = floor_to(t, unit);
    if f == t {
        t
    } else {
        f + unit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn w(a: DateTime<Utc>, b: DateTime<Utc>) -> Window {
        Window::new(a, b)
    }

    #[test]
    fn employees_declare_effective_dating_on_the_mapping_in_the_site_zone() {
        let d = StreamDefinition::employees()
            .time_zone("America/Chicago")
            .unwrap();
        d.mapper().unwrap();
        let ed = d.mapping.schema().effective_dating.expect("declared");
        assert_eq!(ed.entity_key, ["emplid", "empl_rcd"]);
        assert_eq!(ed.date_column, "effdt");
        assert_eq!(ed.sequence_column.as_deref(), Some("effseq"));
        assert_eq!(ed.current_column, "is_current");
        assert_eq!(ed.time_zone, Some(chrono_tz::America::Chicago));
        // Removing it from the source removes it from the mapping too.
        let plain = StreamDefinition::employees().effective_dating(None);
        assert!(plain.mapping.effective_dating.is_none());
        // Other domains are not effective-dated.
        assert!(StreamDefinition::vendors()
            .mapping
            .effective_dating
            .is_none());
    }

    #[test]
    fn every_default_is_valid_and_maps_keys_and_cursor() {
        for d in StreamDefinition::all_defaults() {
            d.validate().unwrap();
            let schema = d.mapping.schema();
            for k in &d.key_fields {
                assert!(schema.primary_key.contains(&snake(k)), "{} {k}", d.name);
                let c = d.mapping.columns.iter().find(|c| &c.source == k).unwrap();
                assert!(!c.nullable, "{} key {k} must be NOT NULL", d.name);
            }
            assert!(
                d.mapping.columns.iter().any(|c| c.source == d.cursor_field),
                "{}",
                d.name
            );
            assert_eq!(
                schema.cursor_column.as_deref(),
                Some(snake(&d.cursor_field).as_str())
            );
            assert!(d
                .mapping
                .columns
                .iter()
                .all(|c| c.column == c.column.to_ascii_lowercase()));
        }
    }

    #[test]
    fn date_prompts_half_open_and_inclusive() {
        let day = |d| Utc.with_ymd_and_hms(2026, 3, d, 0, 0, 0).unwrap();
        let s = StreamDefinition::vendors();
        assert_eq!(
            s.prompt_values(&w(day(1), day(3))),
            ("2026-03-01".into(), "2026-03-03".into())
        );
        let s = s.range(RangeSemantics::InclusiveBetween);
        assert_eq!(
            s.prompt_values(&w(day(1), day(3))),
            ("2026-03-01".into(), "2026-03-02".into())
        );
        // A window that does not start at midnight starts at its own day (rounded down).
        let s = StreamDefinition::vendors();
        let from = day(1) + Duration::hours(6);
        assert_eq!(s.prompt_values(&w(from, day(3))).0, "2026-03-01");
        // Dates are the site's calendar: 02:00 UTC on the 2nd is still the 1st in Chicago.
        let s = StreamDefinition::vendors()
            .time_zone("America/Chicago")
            .unwrap();
        let late = day(2) + Duration::hours(2);
        assert_eq!(
            s.prompt_values(&w(late, late + Duration::hours(1))),
            ("2026-03-01".into(), "2026-03-02".into())
        );
        assert_eq!(
            s.min_lookback(),
            Some(Duration::days(1) + Duration::hours(6))
        );
        assert_eq!(s.cursor_granularity(), Some(Duration::days(1)));
        assert_eq!(StreamDefinition::journal_lines().min_lookback(), None);
    }

    #[test]
    fn datetime_prompts_are_converted_to_the_source_zone() {
        let s = StreamDefinition::journal_headers()
            .time_zone("Europe/Berlin")
            .unwrap();
        let a = Utc.with_ymd_and_hms(2026, 1, 15, 23, 30, 0).unwrap();
        let b = a + Duration::microseconds(15_000_005);
        let (f, t) = s.prompt_values(&w(a, b));
        assert_eq!(f, "2026-01-16-00.30.00.000000");
        assert_eq!(t, "2026-01-16-00.30.15.000005");
        let s = s.range(RangeSemantics::InclusiveBetween);
        assert_eq!(s.prompt_values(&w(a, b)).1, "2026-01-16-00.30.15.000004");
        // Sub-microsecond ends round up, starts round down.
        let b2 = a + Duration::nanoseconds(1_500);
        let s = StreamDefinition::journal_headers();
        assert_eq!(s.prompt_values(&w(a, b2)).1, "2026-01-15-23.30.00.000002");
        let s = s.prompt_format(PromptFormat::IsoDateTime);
        assert_eq!(s.prompt_values(&w(a, b2)).1, "2026-01-15T23:30:01");
    }

    #[test]
    fn a_window_across_the_fall_back_hour_covers_the_repeated_hour() {
        // 2026-11-01 in Chicago: 01:00-02:00 local happens twice (06:00-07:00 and
        // 07:00-08:00 UTC). A window from 06:10 to 07:25 UTC touches wall times 01:10 CDT
        // through 01:25 CST: the earliest wall time any of its instants shows is 01:00 (CST,
        // just after the transition), so the prompt must start no later than that.
        let s = StreamDefinition::journal_lines()
            .time_zone("America/Chicago")
            .unwrap();
        let a = Utc.with_ymd_and_hms(2026, 11, 1, 6, 10, 0).unwrap();
        let b = Utc.with_ymd_and_hms(2026, 11, 1, 7, 25, 0).unwrap();
        let (f, t) = s.prompt_values(&w(a, b));
        assert!(f.as_str() <= "2026-11-01-01.00.00.000000", "{f}");
        assert!(t.as_str() >= "2026-11-01-01.25.00.000000", "{t}");
        // Away from transitions, bounds are exactly the local times.
        let a = Utc.with_ymd_and_hms(2026, 7, 1, 6, 10, 0).unwrap();
        assert_eq!(
            s.prompt_values(&w(a, a + Duration::hours(1))),
            (
                "2026-07-01-01.10.00.000000".to_string(),
                "2026-07-01-02.10.00.000000".to_string()
            )
        );
    }

    #[test]
    fn key_prompts_must_match_the_key_and_prompts_must_be_distinct() {
        let s = StreamDefinition::vendors().key_prompts(["AFTER_SETID"]);
        assert_eq!(s.validate().unwrap_err().field, "key_prompts");
        let s = StreamDefinition::vendors().key_prompts(["AFTER_SETID", "AFTER_VENDOR"]);
        s.validate().unwrap();
        let s = StreamDefinition::vendors().prompts("BIND1", "BIND1");
        assert!(s.validate().unwrap_err().to_string().contains("twice"));
        let s = StreamDefinition::vendors()
            .max_rows(5000)
            .profile_max_rows(Some(1000));
        assert_eq!(s.requested_rows(), 1000);
    }

    #[test]
    fn overrides_field_by_field() {
        let mut s = StreamDefinition::paychecks().table("payroll_checks");
        s.column("net_pay").unwrap().column_type = "DECIMAL(18,2)".parse().unwrap();
        let s = s.without_column("paycheck_option");
        assert_eq!(s.mapping.table, "payroll_checks");
        assert!(s
            .mapping
            .columns
            .iter()
            .all(|c| c.column != "paycheck_option"));
        assert_eq!(
            s.mapping
                .columns
                .iter()
                .find(|c| c.column == "net_pay")
                .unwrap()
                .column_type
                .to_string(),
            "DECIMAL(18,2)"
        );
        assert_eq!(
            StreamDefinition::vendors().query("A B").unwrap_err().field,
            "query"
        );
        assert_eq!(
            StreamDefinition::vendors()
                .time_zone("Nowhere/City")
                .unwrap_err()
                .field,
            "source_time_zone"
        );
    }
}
