//! The `pipeline.toml` file read by the `sync` example: connections (secrets only by
//! environment-variable reference), streams, schedule, and where state and audit live.
//!
//! Reading is two passes: TOML syntax and types first (one error with its line), then every
//! semantic problem at once, each with its line, so a user fixes the file in one go.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, NaiveTime, Utc};
use serde::Deserialize;
use sync_core::engine::RejectPolicy;
use sync_core::mapping::Mapping;
use sync_core::schedule::Schedule;
use toml::Spanned;

/// One problem in the file, with its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line number (0 when unknown).
    pub line: usize,
    /// What is wrong, naming the key.
    pub message: String,
}

/// Every problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    /// The file.
    pub path: PathBuf,
    /// The problems, in file order.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} has {} problem(s):",
            self.path.display(),
            self.problems.len()
        )?;
        for p in &self.problems {
            writeln!(f, "  {}:{}: {}", self.path.display(), p.line, p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    /// `[pipeline]`.
    pub pipeline: PipelineSection,
    /// `[state]`.
    #[serde(default)]
    pub state: StateSection,
    /// `[peoplesoft]`.
    pub peoplesoft: PeopleSoftSection,
    /// `[destination]`.
    pub destination: DestinationSection,
    /// `[defaults]` for every stream.
    #[serde(default)]
    pub defaults: StreamDefaults,
    /// `[[streams]]`.
    #[serde(default)]
    pub streams: Vec<StreamSection>,
}

/// `[pipeline]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSection {
    /// Pipeline name (state and audit are kept per name).
    pub name: Spanned<String>,
    /// Schedule for `run` (e.g. `daily 02:00 America/Chicago`).
    #[serde(default)]
    pub schedule: Option<Spanned<String>>,
    /// Streams run at once (default 2).
    #[serde(default)]
    pub max_concurrent_streams: Option<usize>,
    /// When `run` reconciles every stream (e.g. `daily 04:00 America/Chicago`); a stream's own
    /// `reconcile` or `snapshot` overrides it.
    #[serde(default)]
    pub reconcile: Option<Spanned<String>>,
}

/// `[state]`: where checkpoints, audit and rejects live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSection {
    /// `file` (default) or `databricks`.
    #[serde(default = "default_state_kind")]
    pub kind: Spanned<String>,
    /// Directory for the file store, the JSON-lines audit and rejects.
    #[serde(default = "default_state_dir")]
    pub dir: PathBuf,
}

fn default_state_kind() -> Spanned<String> {
    Spanned::new(0..0, "file".to_string())
}

fn default_state_dir() -> PathBuf {
    PathBuf::from(".ml-connector")
}

impl Default for StateSection {
    fn default() -> Self {
        Self {
            kind: default_state_kind(),
            dir: default_state_dir(),
        }
    }
}

/// `[peoplesoft]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeopleSoftSection {
    /// Host name (no scheme, no path).
    pub host: Spanned<String>,
    /// Port (default 443).
    #[serde(default)]
    pub port: Option<Spanned<i64>>,
    /// Integration Broker default local node.
    pub node: Spanned<String>,
    /// `https` (default) or `http` (needs `allow_http = true`).
    #[serde(default)]
    pub scheme: Option<Spanned<String>>,
    /// Allow plain http (local testing only).
    #[serde(default)]
    pub allow_http: bool,
    /// Reverse-proxy path prefix before `/PSIGW`.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Time zone PeopleSoft stores local datetimes in (IANA name, default UTC).
    #[serde(default)]
    pub time_zone: Option<Spanned<String>>,
    /// `basic` (default), `bearer` or `oauth2`.
    #[serde(default)]
    pub auth: Option<Spanned<String>>,
    /// OPRID for basic auth.
    #[serde(default)]
    pub user: Option<Spanned<String>>,
    /// Environment variable holding the password (basic).
    #[serde(default)]
    pub password_env: Option<Spanned<String>>,
    /// Environment variable holding a static bearer token (bearer).
    #[serde(default)]
    pub token_env: Option<Spanned<String>>,
    /// OAuth2 token endpoint (oauth2).
    #[serde(default)]
    pub token_url: Option<Spanned<String>>,
    /// OAuth2 client id (oauth2).
    #[serde(default)]
    pub client_id: Option<Spanned<String>>,
    /// Environment variable holding the OAuth2 client secret (oauth2).
    #[serde(default)]
    pub client_secret_env: Option<Spanned<String>>,
    /// OAuth2 scope.
    #[serde(default)]
    pub scope: Option<String>,
    /// OAuth2 audience.
    #[serde(default)]
    pub audience: Option<String>,
    /// Requests in flight at once to this host (default 1).
    #[serde(default)]
    pub max_concurrent_requests: Option<Spanned<i64>>,
    /// Minimum gap between request starts, e.g. `250ms`.
    #[serde(default)]
    pub min_gap: Option<Spanned<String>>,
    /// Request timeout, e.g. `120s`.
    #[serde(default)]
    pub request_timeout: Option<Spanned<String>>,
    /// Rows per request before the engine splits a window (maxrows).
    #[serde(default)]
    pub max_rows: Option<Spanned<i64>>,
    /// The OPRID's query profile "Max Rows Fetched", when known (every stream; a stream may
    /// override). Unset: the engine detects such a cap.
    #[serde(default)]
    pub profile_max_rows: Option<Spanned<i64>>,
    /// Blackout windows (no requests).
    #[serde(default)]
    pub blackout: Vec<BlackoutSection>,
}

/// `[[peoplesoft.blackout]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlackoutSection {
    /// Start, local `HH:MM`.
    pub from: Spanned<String>,
    /// End, local `HH:MM` (may be earlier than `from`: crosses midnight).
    pub to: Spanned<String>,
    /// IANA time zone (default: `peoplesoft.time_zone`).
    #[serde(default)]
    pub time_zone: Option<Spanned<String>>,
    /// Days it applies (`mon`..`sun`); all days when empty.
    #[serde(default)]
    pub days: Vec<Spanned<String>>,
    /// `wait` (default) or `skip`.
    #[serde(default)]
    pub action: Option<Spanned<String>>,
    /// A name for messages (e.g. `payroll run`).
    #[serde(default)]
    pub label: Option<String>,
}

/// `[destination]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationSection {
    /// `databricks` or `sqlite`.
    pub kind: Spanned<String>,
    /// SQLite file (sqlite).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Catalog (databricks).
    #[serde(default)]
    pub catalog: Option<Spanned<String>>,
    /// Schema (databricks).
    #[serde(default)]
    pub schema: Option<Spanned<String>>,
    /// `~/.databrickscfg` profile; otherwise `DATABRICKS_*` environment variables.
    #[serde(default)]
    pub profile: Option<String>,
    /// Allow plain http for the workspace (local stand-ins only).
    #[serde(default)]
    pub allow_http: bool,
    /// Start this Databricks job after each stream's cycle that committed data (its run id is
    /// recorded in the audit).
    #[serde(default)]
    pub trigger_job_id: Option<i64>,
}

/// `[defaults]`: applied to every stream unless the stream overrides it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamDefaults {
    /// Where history starts, RFC 3339.
    #[serde(default)]
    pub start: Option<Spanned<String>>,
    /// Re-read before the high-water mark, e.g. `1h`.
    #[serde(default)]
    pub lookback: Option<Spanned<String>>,
    /// Stay this far behind now, e.g. `5m`.
    #[serde(default)]
    pub settle_lag: Option<Spanned<String>>,
    /// Widest window, e.g. `1d`.
    #[serde(default)]
    pub max_window: Option<Spanned<String>>,
    /// Narrowest window after splits, e.g. `1m`.
    #[serde(default)]
    pub min_window: Option<Spanned<String>>,
    /// Rows per batch.
    #[serde(default)]
    pub batch_size: Option<Spanned<i64>>,
    /// Attempts before a window is stuck.
    #[serde(default)]
    pub max_attempts: Option<Spanned<i64>>,
    /// `fail_window` (default) or `quarantine`.
    #[serde(default)]
    pub on_reject: Option<Spanned<String>>,
}

/// `[[streams]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSection {
    /// Stream name.
    pub name: Spanned<String>,
    /// A delivered domain default: vendors, customers, purchase_orders,
    /// purchase_order_lines, journal_headers, journal_lines, employees (job rows), paychecks.
    #[serde(default)]
    pub domain: Option<Spanned<String>>,
    /// Query name (overrides the domain's; required for custom streams).
    #[serde(default)]
    pub query: Option<Spanned<String>>,
    /// Target table (overrides the domain's).
    #[serde(default)]
    pub table: Option<String>,
    /// A full mapping for custom streams (a `sync_core::Mapping`).
    #[serde(default)]
    pub mapping: Option<Spanned<toml::Value>>,
    /// Key fields (PeopleSoft names) for custom streams.
    #[serde(default)]
    pub key: Vec<String>,
    /// Cursor field (PeopleSoft name) for custom streams.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Overrides `defaults.start`.
    #[serde(default)]
    pub start: Option<Spanned<String>>,
    /// Overrides `defaults.lookback`.
    #[serde(default)]
    pub lookback: Option<Spanned<String>>,
    /// Overrides `defaults.settle_lag`.
    #[serde(default)]
    pub settle_lag: Option<Spanned<String>>,
    /// Overrides `defaults.max_window`.
    #[serde(default)]
    pub max_window: Option<Spanned<String>>,
    /// Overrides `defaults.min_window`.
    #[serde(default)]
    pub min_window: Option<Spanned<String>>,
    /// Overrides `defaults.batch_size`.
    #[serde(default)]
    pub batch_size: Option<Spanned<i64>>,
    /// Overrides `defaults.max_attempts`.
    #[serde(default)]
    pub max_attempts: Option<Spanned<i64>>,
    /// Overrides `defaults.on_reject`.
    #[serde(default)]
    pub on_reject: Option<Spanned<String>>,
    /// Unique name of the window-start prompt (default `FROM_DTTM`; Query Manager: `BIND1`).
    #[serde(default)]
    pub from_prompt: Option<Spanned<String>>,
    /// Unique name of the window-end prompt (default `TO_DTTM`; Query Manager: `BIND2`).
    #[serde(default)]
    pub to_prompt: Option<Spanned<String>>,
    /// `date`, `datetime` (PeopleSoft native) or `iso`.
    #[serde(default)]
    pub prompt_format: Option<Spanned<String>>,
    /// `half_open` (`>=` and `<`, default) or `between_inclusive` (`BETWEEN`).
    #[serde(default)]
    pub range: Option<Spanned<String>>,
    /// Further prompts with fixed values, in the order given (`{ SETID = "SHARE" }`).
    #[serde(default)]
    pub fixed_prompts: Option<Spanned<OrderedPrompts>>,
    /// Key-paging prompts, one per key field in key order.
    #[serde(default)]
    pub key_prompts: Option<Spanned<Vec<String>>>,
    /// Overrides `peoplesoft.profile_max_rows` for this stream's query.
    #[serde(default)]
    pub profile_max_rows: Option<Spanned<i64>>,
    /// Query-profile caps below this many rows are assumed not to exist (default 100).
    #[serde(default)]
    pub profile_cap_floor: Option<Spanned<i64>>,
    /// `upsert` (default, needs a key) or `append` (no key: rows keyed by their hash).
    #[serde(default)]
    pub write_mode: Option<Spanned<String>>,
    /// `reject` (default) or `keep_last`: two rows with one key and one cursor but different
    /// values.
    #[serde(default)]
    pub on_duplicate: Option<Spanned<String>>,
    /// Count rows with a NULL cursor in `verify` (reads the whole query once).
    #[serde(default)]
    pub null_cursor_check: bool,
    /// `soft` (default: `_ml_deleted_at` is set), `hard` or `ignore`: rows deleted in
    /// PeopleSoft, as reconciliation finds them.
    #[serde(default)]
    pub deletes: Option<Spanned<String>>,
    /// When `run` reconciles this stream (overrides `pipeline.reconcile`).
    #[serde(default)]
    pub reconcile: Option<Spanned<String>>,
    /// For master data (vendors, customers): when `run` takes a full key-set snapshot of the
    /// stream (every committed window compared by key and hash), e.g. `daily 03:00`.
    #[serde(default)]
    pub snapshot: Option<Spanned<String>>,
}

/// Prompt name = value pairs in the order the file gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderedPrompts(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for OrderedPrompts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OrderedPrompts;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of prompt name = \"value\"")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, String>()? {
                    out.push((k, v));
                }
                Ok(OrderedPrompts(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// How one stream captures rows: prompts, caps, key paging, write mode, duplicates. `None`
/// keeps the domain default (or the library default for custom streams).
#[derive(Debug, Clone, Default)]
pub struct CaptureSettings {
    /// Window-start prompt name.
    pub from_prompt: Option<String>,
    /// Window-end prompt name.
    pub to_prompt: Option<String>,
    /// Prompt value format.
    pub prompt_format: Option<peoplesoft_client::PromptFormat>,
    /// Range semantics.
    pub range: Option<peoplesoft_client::RangeSemantics>,
    /// Fixed prompts, in order.
    pub fixed_prompts: Vec<(String, String)>,
    /// Key-paging prompts.
    pub key_prompts: Vec<String>,
    /// The query profile's row limit, if known.
    pub profile_max_rows: Option<u32>,
    /// Caps below this are assumed not to exist.
    pub profile_cap_floor: Option<u32>,
    /// Write mode.
    pub write_mode: sync_core::WriteMode,
    /// Ambiguous-duplicate policy.
    pub on_duplicate: sync_core::engine::DuplicatePolicy,
    /// Count NULL cursors in `verify`.
    pub null_cursor_check: bool,
    /// Delete policy.
    pub deletes: sync_core::DeletePolicy,
    /// Reconciliation schedule (stream `snapshot`, stream `reconcile` or `pipeline.reconcile`).
    pub reconcile: Option<Schedule>,
}

impl StreamSection {
    /// This stream's overrides of `[defaults]`.
    pub fn overrides(&self) -> StreamDefaults {
        StreamDefaults {
            start: self.start.clone(),
            lookback: self.lookback.clone(),
            settle_lag: self.settle_lag.clone(),
            max_window: self.max_window.clone(),
            min_window: self.min_window.clone(),
            batch_size: self.batch_size.clone(),
            max_attempts: self.max_attempts.clone(),
            on_reject: self.on_reject.clone(),
        }
    }
}

/// Stream settings after defaults are applied and values parsed.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// Stream name.
    pub name: String,
    /// Domain default, if any.
    pub domain: Option<String>,
    /// Query override.
    pub query: Option<String>,
    /// Table override.
    pub table: Option<String>,
    /// Custom mapping.
    pub mapping: Option<Mapping>,
    /// Custom key fields.
    pub key: Vec<String>,
    /// Custom cursor field.
    pub cursor: Option<String>,
    /// History start.
    pub start: DateTime<Utc>,
    /// Lookback.
    pub lookback: Duration,
    /// Settle lag.
    pub settle_lag: Duration,
    /// Max window.
    pub max_window: Duration,
    /// Min window.
    pub min_window: Duration,
    /// Batch size.
    pub batch_size: usize,
    /// Attempts before stuck.
    pub max_attempts: u32,
    /// Reject policy.
    pub on_reject: RejectPolicy,
    /// Prompts, caps, key paging, write mode and duplicates.
    pub capture: CaptureSettings,
}

/// A blackout window after parsing.
#[derive(Debug, Clone)]
pub struct Blackout {
    /// Start (local).
    pub from: NaiveTime,
    /// End (local).
    pub to: NaiveTime,
    /// Zone.
    pub time_zone: chrono_tz::Tz,
    /// Days (empty: all).
    pub days: Vec<chrono::Weekday>,
    /// Skip the cycle instead of waiting.
    pub skip: bool,
    /// Label.
    pub label: String,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The raw file (connection details are read from it by the builders).
    pub file: PipelineFile,
    /// Schedule, if given.
    pub schedule: Option<Schedule>,
    /// PeopleSoft time zone.
    pub time_zone: chrono_tz::Tz,
    /// Minimum request gap.
    pub min_gap: std::time::Duration,
    /// Request timeout.
    pub request_timeout: std::time::Duration,
    /// Blackouts.
    pub blackouts: Vec<Blackout>,
    /// Streams with defaults applied.
    pub streams: Vec<StreamSettings>,
}

/// The delivered domain names.
pub const DOMAINS: &[&str] = &[
    "vendors",
    "customers",
    "purchase_orders",
    "purchase_order_lines",
    "journal_headers",
    "journal_lines",
    "employees",
    "paychecks",
];

/// Parses a duration like `250ms`, `30s`, `5m`, `1h`, `2d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: i64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 250ms, 30s, 5m, 1h or 2d"))?;
    Ok(match unit.trim() {
        "ms" => Duration::milliseconds(n),
        "s" => Duration::seconds(n),
        "m" | "min" => Duration::minutes(n),
        "h" => Duration::hours(n),
        "d" => Duration::days(n),
        _ => return Err(format!("`{s}` has no unit (ms, s, m, h or d)")),
    })
}

struct Checker<'a> {
    text: &'a str,
    problems: Vec<Problem>,
    /// Start offsets of the values already reported: one value, one message (a bad value in
    /// `[defaults]` is inherited by every stream but reported once).
    reported: std::collections::BTreeSet<usize>,
    /// Byte range of the `[defaults]` table, to word its problems as its own.
    defaults: Option<std::ops::Range<usize>>,
}

/// Byte range of the top-level table `[name]` in `text` (to the next table header).
fn table_range(text: &str, name: &str) -> Option<std::ops::Range<usize>> {
    let header = format!("[{name}]");
    let mut offset = 0;
    let mut start = None;
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        if let Some(s) = start {
            if t.starts_with('[') {
                return Some(s..offset);
            }
        } else if t == header {
            start = Some(offset);
        }
        offset += line.len();
    }
    start.map(|s| s..text.len())
}

/// Spans of each stream's mapping columns, read again from the text (the mapping itself is
/// kept as a plain TOML value, which has no positions).
#[derive(Deserialize)]
struct ColumnSpans {
    #[serde(default)]
    streams: Vec<StreamColumnSpans>,
}

#[derive(Deserialize)]
struct StreamColumnSpans {
    mapping: Option<MappingColumnSpans>,
}

#[derive(Deserialize)]
struct MappingColumnSpans {
    #[serde(default)]
    columns: Vec<Spanned<toml::Value>>,
}

fn column_spans(text: &str) -> Vec<Vec<Spanned<toml::Value>>> {
    toml::from_str::<ColumnSpans>(text)
        .map(|f| {
            f.streams
                .into_iter()
                .map(|s| s.mapping.map(|m| m.columns).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default()
}

/// The mapping of stream `name`, checked column by column so a problem points at the
/// offending column's line (falling back to the `[streams.mapping]` line).
fn check_mapping(
    c: &mut Checker<'_>,
    name: &str,
    m: &Spanned<toml::Value>,
    columns: &[Spanned<toml::Value>],
) -> Option<Mapping> {
    let label = |col: &Spanned<toml::Value>, i: usize| {
        col.get_ref()
            .get("column")
            .and_then(|v| v.as_str())
            .map(|n| format!("column `{n}`"))
            .unwrap_or_else(|| format!("column #{}", i + 1))
    };
    let mut bad_column = false;
    for (i, col) in columns.iter().enumerate() {
        if let Err(e) = col
            .get_ref()
            .clone()
            .try_into::<sync_core::mapping::ColumnMapping>()
        {
            let what = label(col, i);
            c.problem(
                col,
                format!("stream `{name}`: mapping {what}: {}", e.message().trim()),
            );
            bad_column = true;
        }
    }
    if bad_column {
        return None;
    }
    let parsed: Result<Mapping, _> = m.get_ref().clone().try_into();
    let message = match parsed {
        Ok(mapping) => match mapping.compile() {
            Ok(_) => return Some(mapping),
            Err(e) => e.to_string(),
        },
        Err(e) => e.message().trim().to_string(),
    };
    // Point at the column the message names, when it names one (the last of that name: for
    // a column mapped twice, the second mapping is the offending one).
    let named = message
        .split("column `")
        .nth(1)
        .and_then(|r| r.split('`').next());
    let numbered = message
        .split("column #")
        .nth(1)
        .and_then(|r| r.split(|ch: char| !ch.is_ascii_digit()).next())
        .and_then(|n| n.parse::<usize>().ok());
    let at = columns
        .iter()
        .enumerate()
        .rev()
        .find(|(i, col)| {
            named.is_some_and(|n| {
                col.get_ref()
                    .get("column")
                    .and_then(|v| v.as_str())
                    .is_some_and(|c| c.eq_ignore_ascii_case(n))
            }) || numbered == Some(i + 1)
        })
        .map(|(_, col)| col)
        .unwrap_or(m);
    c.problem(at, format!("stream `{name}`: mapping: {message}"));
    None
}

impl Checker<'_> {
    fn line_of(&self, offset: usize) -> usize {
        if offset == 0 && self.text.is_empty() {
            return 0;
        }
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    fn problem<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) {
        let span = at.span();
        let mut message = message.into();
        if !span.is_empty() {
            if !self.reported.insert(span.start) {
                return;
            }
            if self
                .defaults
                .as_ref()
                .is_some_and(|d| d.contains(&span.start))
            {
                // Inherited by every stream, but it is the `[defaults]` value that is wrong.
                if let Some(rest) = message
                    .strip_prefix("stream `")
                    .and_then(|r| r.split_once("`: "))
                    .map(|(_, rest)| rest.to_string())
                {
                    message = rest;
                }
                message = format!("[defaults] {message}");
            }
        }
        let line = self.line_of(span.start);
        self.problems.push(Problem { line, message });
    }

    fn duration(&mut self, v: &Option<Spanned<String>>, key: &str, default: Duration) -> Duration {
        match v {
            None => default,
            Some(s) => match parse_duration(s.get_ref()) {
                Ok(d) if d >= Duration::zero() => d,
                Ok(_) => {
                    self.problem(s, format!("`{key}` must not be negative"));
                    default
                }
                Err(e) => {
                    self.problem(s, format!("`{key}`: {e}"));
                    default
                }
            },
        }
    }

    fn zone(
        &mut self,
        v: &Option<Spanned<String>>,
        key: &str,
        default: chrono_tz::Tz,
    ) -> chrono_tz::Tz {
        match v {
            None => default,
            Some(s) => s.get_ref().parse().unwrap_or_else(|_| {
                self.problem(
                    s,
                    format!(
                        "`{key}`: unknown time zone `{}` (use an IANA name like America/Chicago)",
                        s.get_ref()
                    ),
                );
                default
            }),
        }
    }

    fn env_ref(&mut self, v: &Option<Spanned<String>>, key: &str, needed_for: &str) {
        match v {
            None => self.problems.push(Problem { line: 0, message: format!("`peoplesoft.{key}` is required for {needed_for}") }),
            Some(s) if s.get_ref().trim().is_empty() || s.get_ref().contains(char::is_whitespace) => {
                self.problem(s, format!("`peoplesoft.{key}` must name an environment variable (secrets are never written in this file)"))
            }
            Some(_) => {}
        }
    }
}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        path: path.to_path_buf(),
        problems: vec![Problem {
            line: 0,
            message: format!("cannot read the file: {e}"),
        }],
    })?;
    parse(&text).map_err(|problems| ConfigErrors {
        path: path.to_path_buf(),
        problems,
    })
}

/// Parses and validates configuration text; on failure returns every problem with its line.
pub fn parse(text: &str) -> Result<Config, Vec<Problem>> {
    let file: PipelineFile = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
            .unwrap_or(0);
        vec![Problem {
            line,
            message: e.message().trim().to_string(),
        }]
    })?;
    let mut c = Checker {
        text,
        problems: Vec::new(),
        reported: Default::default(),
        defaults: table_range(text, "defaults"),
    };
    let mapping_columns = column_spans(text);

    if file.pipeline.name.get_ref().trim().is_empty() {
        c.problem(&file.pipeline.name, "`pipeline.name` is empty");
    }
    let schedule =
        file.pipeline
            .schedule
            .as_ref()
            .and_then(|s| match s.get_ref().parse::<Schedule>() {
                Ok(v) => Some(v),
                Err(e) => {
                    c.problem(s, format!("`pipeline.schedule`: {e}"));
                    None
                }
            });
    if !matches!(file.state.kind.get_ref().as_str(), "file" | "databricks") {
        c.problem(
            &file.state.kind,
            format!(
                "`state.kind` must be `file` or `databricks`, not `{}`",
                file.state.kind.get_ref()
            ),
        );
    }

    // PeopleSoft connection.
    let ps = &file.peoplesoft;
    let host = ps.host.get_ref();
    if host.is_empty() || host.contains("://") || host.contains('/') {
        c.problem(
            &ps.host,
            format!("`peoplesoft.host` must be a bare host name (no scheme or path), not `{host}`"),
        );
    }
    if let Some(p) = &ps.port {
        if !(1..=65535).contains(p.get_ref()) {
            c.problem(
                p,
                format!("`peoplesoft.port` must be 1-65535, not {}", p.get_ref()),
            );
        }
    }
    if ps.node.get_ref().trim().is_empty() || ps.node.get_ref().contains(['/', ' ']) {
        c.problem(&ps.node, format!("`peoplesoft.node` must be the Integration Broker node name (no spaces or `/`), not `{}`", ps.node.get_ref()));
    }
    if let Some(s) = &ps.scheme {
        match s.get_ref().as_str() {
            "https" => {}
            "http" if ps.allow_http => {}
            "http" => c.problem(s, "`peoplesoft.scheme = \"http\"` sends credentials in clear text; set `allow_http = true` only for local testing"),
            other => c.problem(s, format!("`peoplesoft.scheme` must be `https` or `http`, not `{other}`")),
        }
    }
    let time_zone = c.zone(&ps.time_zone, "peoplesoft.time_zone", chrono_tz::Tz::UTC);
    let auth = ps
        .auth
        .as_ref()
        .map(|a| a.get_ref().as_str())
        .unwrap_or("basic");
    match auth {
        "basic" => {
            if ps.user.is_none() {
                c.problems.push(Problem {
                    line: c.line_of(ps.host.span().start),
                    message: "`peoplesoft.user` (the OPRID) is required for basic auth".into(),
                });
            }
            c.env_ref(&ps.password_env, "password_env", "basic auth");
        }
        "bearer" => c.env_ref(&ps.token_env, "token_env", "bearer auth"),
        "oauth2" => {
            if ps.token_url.is_none() || ps.client_id.is_none() {
                c.problems.push(Problem {
                    line: c.line_of(ps.host.span().start),
                    message:
                        "`peoplesoft.token_url` and `peoplesoft.client_id` are required for oauth2"
                            .into(),
                });
            }
            c.env_ref(&ps.client_secret_env, "client_secret_env", "oauth2");
        }
        other => {
            let at = ps.auth.as_ref().expect("non-default");
            c.problem(
                at,
                format!("`peoplesoft.auth` must be `basic`, `bearer` or `oauth2`, not `{other}`"),
            );
        }
    }
    if let Some(n) = &ps.max_concurrent_requests {
        if !(1..=16).contains(n.get_ref()) {
            c.problem(n, "`peoplesoft.max_concurrent_requests` must be 1-16 (PeopleSoft is shared with the business)");
        }
    }
    if let Some(n) = &ps.max_rows {
        if *n.get_ref() <= 0 {
            c.problem(
                n,
                "`peoplesoft.max_rows` must be positive (truncation is detected against it)",
            );
        }
    }
    let min_gap = c
        .duration(
            &ps.min_gap,
            "peoplesoft.min_gap",
            Duration::milliseconds(250),
        )
        .to_std()
        .unwrap_or_default();
    let request_timeout = c
        .duration(
            &ps.request_timeout,
            "peoplesoft.request_timeout",
            Duration::seconds(120),
        )
        .to_std()
        .unwrap_or_default();
    let mut blackouts = Vec::new();
    for b in &ps.blackout {
        let time = |v: &Spanned<String>, key: &str, c: &mut Checker<'_>| {
            NaiveTime::parse_from_str(v.get_ref(), "%H:%M")
                .map_err(|_| {
                    c.problem(
                        v,
                        format!(
                            "`peoplesoft.blackout.{key}` must be HH:MM, not `{}`",
                            v.get_ref()
                        ),
                    )
                })
                .ok()
        };
        let from = time(&b.from, "from", &mut c);
        let to = time(&b.to, "to", &mut c);
        let zone = c.zone(&b.time_zone, "peoplesoft.blackout.time_zone", time_zone);
        let mut days = Vec::new();
        for d in &b.days {
            match d.get_ref().parse::<chrono::Weekday>() {
                Ok(w) => days.push(w),
                Err(_) => c.problem(
                    d,
                    format!(
                        "`peoplesoft.blackout.days`: `{}` is not a day of the week",
                        d.get_ref()
                    ),
                ),
            }
        }
        let skip = match b.action.as_ref().map(|a| a.get_ref().as_str()) {
            None | Some("wait") => false,
            Some("skip") => true,
            Some(other) => {
                c.problem(
                    b.action.as_ref().expect("some"),
                    format!("`peoplesoft.blackout.action` must be `wait` or `skip`, not `{other}`"),
                );
                false
            }
        };
        if let (Some(from), Some(to)) = (from, to) {
            blackouts.push(Blackout {
                from,
                to,
                time_zone: zone,
                days,
                skip,
                label: b.label.clone().unwrap_or_else(|| "blackout".into()),
            });
        }
    }

    // Destination.
    let d = &file.destination;
    match d.kind.get_ref().as_str() {
        "sqlite" => {
            if d.trigger_job_id.is_some() {
                c.problem(
                    &d.kind,
                    "`destination.trigger_job_id` needs kind = \"databricks\"",
                );
            }
            if d.path.is_none() {
                c.problem(
                    &d.kind,
                    "`destination.path` (the SQLite file) is required for kind = \"sqlite\"",
                );
            }
        }
        "databricks" => {
            for (v, key) in [(&d.catalog, "catalog"), (&d.schema, "schema")] {
                if v.is_none() {
                    c.problem(
                        &d.kind,
                        format!("`destination.{key}` is required for kind = \"databricks\""),
                    );
                }
            }
        }
        other => c.problem(
            &d.kind,
            format!("`destination.kind` must be `databricks` or `sqlite`, not `{other}`"),
        ),
    }
    if file.state.kind.get_ref() == "databricks" && d.kind.get_ref() != "databricks" {
        c.problem(
            &file.state.kind,
            "`state.kind = \"databricks\"` needs `destination.kind = \"databricks\"`",
        );
    }

    // Streams.
    if file.streams.is_empty() {
        c.problems.push(Problem {
            line: 0,
            message: "no `[[streams]]` defined".into(),
        });
    }
    let mut seen = BTreeMap::new();
    let mut streams = Vec::new();
    for (index, s) in file.streams.iter().enumerate() {
        let name = s.name.get_ref().clone();
        if seen.insert(name.clone(), ()).is_some() {
            c.problem(&s.name, format!("stream `{name}` is defined twice"));
        }
        if let Some(dm) = &s.domain {
            if !DOMAINS.contains(&dm.get_ref().as_str()) {
                c.problem(
                    dm,
                    format!(
                        "stream `{name}`: unknown domain `{}` (one of {})",
                        dm.get_ref(),
                        DOMAINS.join(", ")
                    ),
                );
            }
        } else {
            if s.query.is_none() {
                c.problem(
                    &s.name,
                    format!("stream `{name}`: give a `domain` or a `query` with a `mapping`"),
                );
            }
            if s.mapping.is_none() {
                c.problem(&s.name, format!("stream `{name}`: a custom stream (no `domain`) needs a `[streams.mapping]`"));
            }
            if s.cursor.is_none() {
                c.problem(&s.name, format!("stream `{name}`: a custom stream needs `cursor` (the PeopleSoft cursor field)"));
            }
        }
        let mapping = s.mapping.as_ref().and_then(|m| {
            let columns = mapping_columns.get(index).map(Vec::as_slice).unwrap_or(&[]);
            check_mapping(&mut c, &name, m, columns)
        });
        let pick = |o: &Option<Spanned<String>>, d: &Option<Spanned<String>>| {
            o.clone().or_else(|| d.clone())
        };
        let dflt = &file.defaults;
        let o = &s.overrides();
        let start = match pick(&o.start, &dflt.start) {
            None => DateTime::<Utc>::from_timestamp(0, 0).expect("epoch") + Duration::days(365 * 30),
            Some(v) => DateTime::parse_from_rfc3339(v.get_ref()).map(|t| t.with_timezone(&Utc)).unwrap_or_else(|_| {
                c.problem(&v, format!("stream `{name}`: `start` must be RFC 3339 like 2024-01-01T00:00:00Z, not `{}`", v.get_ref()));
                Utc::now()
            }),
        };
        let lookback = c.duration(
            &pick(&o.lookback, &dflt.lookback),
            "lookback",
            Duration::hours(1),
        );
        let settle_lag = c.duration(
            &pick(&o.settle_lag, &dflt.settle_lag),
            "settle_lag",
            Duration::minutes(5),
        );
        let max_window = c.duration(
            &pick(&o.max_window, &dflt.max_window),
            "max_window",
            Duration::days(1),
        );
        let min_window = c.duration(
            &pick(&o.min_window, &dflt.min_window),
            "min_window",
            Duration::minutes(1),
        );
        if min_window > max_window || min_window <= Duration::zero() {
            let at = pick(&o.min_window, &dflt.min_window).unwrap_or_else(|| s.name.clone());
            c.problem(&at, format!("stream `{name}`: `min_window` must be positive and not wider than `max_window`"));
        }
        let int =
            |o: &Option<Spanned<i64>>, d: &Option<Spanned<i64>>| o.clone().or_else(|| d.clone());
        let batch_size = match int(&o.batch_size, &dflt.batch_size) {
            None => 5_000,
            Some(v) if (1..=1_000_000).contains(v.get_ref()) => *v.get_ref() as usize,
            Some(v) => {
                c.problem(
                    &v,
                    format!("stream `{name}`: `batch_size` must be 1-1000000"),
                );
                5_000
            }
        };
        let max_attempts = match int(&o.max_attempts, &dflt.max_attempts) {
            None => 5,
            Some(v) if (1..=1000).contains(v.get_ref()) => *v.get_ref() as u32,
            Some(v) => {
                c.problem(
                    &v,
                    format!("stream `{name}`: `max_attempts` must be 1-1000"),
                );
                5
            }
        };
        let on_reject = match pick(&o.on_reject, &dflt.on_reject) {
            None => RejectPolicy::FailWindow,
            Some(v) => match v.get_ref().as_str() {
                "fail_window" => RejectPolicy::FailWindow,
                "quarantine" => RejectPolicy::Quarantine,
                other => {
                    c.problem(&v, format!("stream `{name}`: `on_reject` must be `fail_window` or `quarantine`, not `{other}`"));
                    RejectPolicy::FailWindow
                }
            },
        };
        let capture = capture_settings(&mut c, s, &name, &file.peoplesoft, &file.pipeline);
        streams.push(StreamSettings {
            name,
            domain: s.domain.as_ref().map(|d| d.get_ref().clone()),
            query: s.query.as_ref().map(|q| q.get_ref().clone()),
            table: s.table.clone(),
            mapping,
            key: s.key.clone(),
            cursor: s.cursor.clone(),
            start,
            lookback,
            settle_lag,
            max_window,
            min_window,
            batch_size,
            max_attempts,
            on_reject,
            capture,
        });
    }
    if !c.problems.is_empty() {
        let mut p = c.problems;
        p.sort_by_key(|p| p.line);
        return Err(p);
    }
    Ok(Config {
        schedule,
        time_zone,
        min_gap,
        request_timeout,
        blackouts,
        streams,
        file,
    })
}

/// Reads one stream's capture keys (see [`CaptureSettings`]).
fn capture_settings(
    c: &mut Checker<'_>,
    s: &StreamSection,
    name: &str,
    ps: &PeopleSoftSection,
    pipeline: &PipelineSection,
) -> CaptureSettings {
    use peoplesoft_client::{PromptFormat, RangeSemantics};
    use sync_core::engine::DuplicatePolicy;
    let mut out = CaptureSettings::default();
    let prompt_name = |c: &mut Checker<'_>, v: &Option<Spanned<String>>, key: &str| {
        let v = v.as_ref()?;
        let n = v.get_ref().trim();
        if n.is_empty() || n.contains(',') || n.contains(char::is_whitespace) {
            c.problem(v, format!("stream `{name}`: `{key}` must be a prompt's unique name (no spaces or commas), not `{}`", v.get_ref()));
            return None;
        }
        Some(n.to_string())
    };
    out.from_prompt = prompt_name(c, &s.from_prompt, "from_prompt");
    out.to_prompt = prompt_name(c, &s.to_prompt, "to_prompt");
    if let Some(v) = &s.prompt_format {
        out.prompt_format = match v.get_ref().as_str() {
            "date" => Some(PromptFormat::Date),
            "datetime" => Some(PromptFormat::NativeDateTime),
            "iso" => Some(PromptFormat::IsoDateTime),
            other => {
                c.problem(v, format!("stream `{name}`: `prompt_format` must be `date`, `datetime` or `iso`, not `{other}`"));
                None
            }
        };
    }
    if let Some(v) = &s.range {
        out.range = match v.get_ref().as_str() {
            "half_open" => Some(RangeSemantics::HalfOpen),
            "between_inclusive" => Some(RangeSemantics::InclusiveBetween),
            other => {
                c.problem(v, format!("stream `{name}`: `range` must be `half_open` or `between_inclusive`, not `{other}`"));
                None
            }
        };
    }
    if let Some(v) = &s.fixed_prompts {
        for (k, val) in &v.get_ref().0 {
            if k.trim().is_empty() || k.contains(',') || val.contains(',') {
                c.problem(v, format!("stream `{name}`: fixed prompt `{k} = \"{val}\"`: names must be non-empty and neither names nor values may contain a comma (QAS separates prompts by commas)"));
            }
        }
        out.fixed_prompts = v.get_ref().0.clone();
    }
    if let Some(v) = &s.key_prompts {
        if v.get_ref()
            .iter()
            .any(|k| k.trim().is_empty() || k.contains(','))
        {
            c.problem(
                v,
                format!("stream `{name}`: `key_prompts` must be prompt names without commas"),
            );
        }
        if s.domain.is_none() && !s.key.is_empty() && v.get_ref().len() != s.key.len() {
            c.problem(v, format!("stream `{name}`: `key_prompts` needs one prompt per `key` field ({} given, {} key fields)", v.get_ref().len(), s.key.len()));
        }
        out.key_prompts = v.get_ref().clone();
    }
    if let Some(v) = s.profile_max_rows.as_ref().or(ps.profile_max_rows.as_ref()) {
        match u32::try_from(*v.get_ref()) {
            Ok(n) if n > 0 => out.profile_max_rows = Some(n),
            _ => c.problem(v, format!("stream `{name}`: `profile_max_rows` must be a positive row count (the query profile's Max Rows Fetched), not {}", v.get_ref())),
        }
    }
    if let Some(v) = &s.profile_cap_floor {
        match u32::try_from(*v.get_ref()) {
            Ok(n) => out.profile_cap_floor = Some(n),
            _ => c.problem(
                v,
                format!(
                    "stream `{name}`: `profile_cap_floor` must be a row count, not {}",
                    v.get_ref()
                ),
            ),
        }
    }
    if let Some(v) = &s.write_mode {
        out.write_mode = match v.get_ref().as_str() {
            "upsert" => sync_core::WriteMode::Upsert,
            "append" => sync_core::WriteMode::Append,
            other => {
                c.problem(
                    v,
                    format!(
                        "stream `{name}`: `write_mode` must be `upsert` or `append`, not `{other}`"
                    ),
                );
                sync_core::WriteMode::Upsert
            }
        };
    }
    if s.domain.is_none()
        && s.key.is_empty()
        && out.write_mode != sync_core::WriteMode::Append
        && s.mapping.is_some()
    {
        c.problem(&s.name, format!("stream `{name}` has no `key`: without one every changed row is added again instead of updated. Give `key` (the PeopleSoft key fields, and `primary_key` in the mapping), or set `write_mode = \"append\"` for an immutable event stream"));
    }
    if let Some(v) = &s.on_duplicate {
        out.on_duplicate = match v.get_ref().as_str() {
            "reject" => DuplicatePolicy::Reject,
            "keep_last" => DuplicatePolicy::KeepLast,
            other => {
                c.problem(v, format!("stream `{name}`: `on_duplicate` must be `reject` or `keep_last`, not `{other}`"));
                DuplicatePolicy::Reject
            }
        };
    }
    out.null_cursor_check = s.null_cursor_check;
    if let Some(v) = &s.deletes {
        out.deletes = match v.get_ref().as_str() {
            "soft" => sync_core::DeletePolicy::Soft,
            "hard" => sync_core::DeletePolicy::Hard,
            "ignore" => sync_core::DeletePolicy::Ignore,
            other => {
                c.problem(v, format!("stream `{name}`: `deletes` must be `soft`, `hard` or `ignore`, not `{other}`"));
                sync_core::DeletePolicy::Soft
            }
        };
    }
    let schedule = s
        .snapshot
        .as_ref()
        .map(|v| ("snapshot", v))
        .or(s.reconcile.as_ref().map(|v| ("reconcile", v)))
        .or(pipeline
            .reconcile
            .as_ref()
            .map(|v| ("pipeline.reconcile", v)));
    if let Some((key, v)) = schedule {
        match v.get_ref().parse::<Schedule>() {
            Ok(sch) => out.reconcile = Some(sch),
            Err(e) => c.problem(v, format!("stream `{name}`: `{key}`: {e}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[pipeline]
name = "northwind"
schedule = "daily 02:00 America/Chicago"

[peoplesoft]
host = "erp.example.com"
port = 8443
node = "PSFT_EP"
time_zone = "America/Chicago"
user = "ML_CONNECTOR"
password_env = "PEOPLESOFT_PASSWORD"

[[peoplesoft.blackout]]
from = "18:00"
to = "23:00"
label = "payroll run"

[destination]
kind = "sqlite"
path = "warehouse.db"

[defaults]
start = "2024-01-01T00:00:00Z"
max_window = "7d"

[[streams]]
name = "vendors"
domain = "vendors"

[[streams]]
name = "journal_lines"
domain = "journal_lines"
max_window = "1d"
"#;

    #[test]
    fn a_good_file_parses_with_defaults_applied() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.streams.len(), 2);
        assert_eq!(c.streams[0].max_window, Duration::days(7));
        assert_eq!(c.streams[1].max_window, Duration::days(1));
        assert_eq!(c.blackouts.len(), 1);
        assert_eq!(c.time_zone, chrono_tz::America::Chicago);
    }

    #[test]
    fn capture_and_reconciliation_keys_are_read_in_order_and_checked() {
        let text = format!(
            "{GOOD}\n[[streams]]\nname = \"vouchers\"\nquery = \"ZZ_VOUCHERS\"\nkey = [\"VOUCHER_ID\"]\ncursor = \"LASTUPDDTTM\"\nfrom_prompt = \"BIND1\"\nto_prompt = \"BIND2\"\nprompt_format = \"date\"\nrange = \"between_inclusive\"\nfixed_prompts = {{ SETID = \"SHARE\", BU = \"US001\", AAA = \"x\" }}\nkey_prompts = [\"AFTER_VOUCHER\"]\nprofile_max_rows = 1000\non_duplicate = \"keep_last\"\ndeletes = \"hard\"\nsnapshot = \"daily 03:00\"\n[streams.mapping]\ntable = \"ps_vouchers\"\nprimary_key = [\"voucher_id\"]\ncursor_column = \"lastupddttm\"\ncolumns = [ {{ column = \"voucher_id\", source = \"VOUCHER_ID\", type = \"STRING\", nullable = false }}, {{ column = \"lastupddttm\", source = \"LASTUPDDTTM\", type = \"TIMESTAMP\" }} ]\n"
        );
        let c = parse(&text).unwrap_or_else(|p| panic!("{p:?}"));
        let v = &c.streams[2].capture;
        assert_eq!(v.from_prompt.as_deref(), Some("BIND1"));
        assert_eq!(v.prompt_format, Some(peoplesoft_client::PromptFormat::Date));
        assert_eq!(
            v.range,
            Some(peoplesoft_client::RangeSemantics::InclusiveBetween)
        );
        let names: Vec<&str> = v.fixed_prompts.iter().map(|p| p.0.as_str()).collect();
        assert_eq!(names, ["SETID", "BU", "AAA"], "in file order");
        assert_eq!(v.key_prompts, ["AFTER_VOUCHER"]);
        assert_eq!(v.profile_max_rows, Some(1000));
        assert_eq!(v.on_duplicate, sync_core::engine::DuplicatePolicy::KeepLast);
        assert_eq!(v.deletes, sync_core::DeletePolicy::Hard);
        assert!(v.reconcile.is_some());

        let bad = text
            .replace("prompt_format = \"date\"", "prompt_format = \"dates\"")
            .replace("deletes = \"hard\"", "deletes = \"purge\"")
            .replace("key = [\"VOUCHER_ID\"]\n", "");
        let problems = parse(&bad).unwrap_err();
        let line_of = |needle: &str| bad.lines().position(|l| l.contains(needle)).unwrap() + 1;
        assert!(problems
            .iter()
            .any(|p| p.line == line_of("prompt_format") && p.message.contains("`date`")));
        assert!(problems
            .iter()
            .any(|p| p.line == line_of("deletes =") && p.message.contains("purge")));
        assert!(problems
            .iter()
            .any(|p| p.message.contains("no `key`") && p.message.contains("write_mode")));
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let bad = GOOD
            .replace("port = 8443", "port = 70000")
            .replace(
                "time_zone = \"America/Chicago\"",
                "time_zone = \"Mars/Base\"",
            )
            .replace("max_window = \"1d\"", "max_window = \"1 fortnight\"")
            .replace("domain = \"vendors\"", "domain = \"vendorz\"");
        let problems = parse(&bad).unwrap_err();
        let text: Vec<String> = problems
            .iter()
            .map(|p| format!("{}: {}", p.line, p.message))
            .collect();
        assert_eq!(problems.len(), 4, "{text:#?}");
        let line = |needle: &str| bad.lines().position(|l| l.contains(needle)).unwrap() + 1;
        assert!(
            text.contains(&format!(
                "{}: `peoplesoft.port` must be 1-65535, not 70000",
                line("port = 70000")
            )),
            "{text:#?}"
        );
        assert!(
            text.iter()
                .any(|t| t.starts_with(&format!("{}: ", line("Mars/Base")))
                    && t.contains("Mars/Base")),
            "{text:#?}"
        );
        assert!(
            text.iter()
                .any(|t| t.starts_with(&format!("{}: ", line("1 fortnight")))
                    && t.contains("max_window")),
            "{text:#?}"
        );
        assert!(
            text.iter()
                .any(|t| t.starts_with(&format!("{}: ", line("vendorz")))
                    && t.contains("unknown domain")),
            "{text:#?}"
        );
    }

    #[test]
    fn syntax_and_unknown_keys_are_errors_with_lines() {
        let p = parse("[pipeline]\nname = \"x\"\n[peoplesoft]\nhots = \"a\"\n").unwrap_err();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].line, 4, "{p:?}");
        assert!(p[0].message.contains("hots"), "{p:?}");
    }

    #[test]
    fn the_documented_example_file_is_valid() {
        let text = include_str!("../pipeline.example.toml");
        let c = parse(text).unwrap_or_else(|p| panic!("{p:#?}"));
        assert_eq!(c.streams.len(), 6);
        assert_eq!(c.blackouts.len(), 1);
    }

    #[test]
    fn secrets_must_be_env_references() {
        let bad = GOOD.replace(
            "password_env = \"PEOPLESOFT_PASSWORD\"",
            "password_env = \"hunter2 is my password\"",
        );
        let p = parse(&bad).unwrap_err();
        assert!(p[0].message.contains("environment variable"), "{p:?}");
        assert!(
            !p[0].message.contains("hunter2"),
            "the value is not echoed: {p:?}"
        );
    }

    #[test]
    fn a_bad_default_is_reported_once_at_its_line() {
        let bad = GOOD.replace(
            "max_window = \"7d\"",
            "max_window = \"7d\"\nlookback = \"soon\"\nbatch_size = 0",
        ) + "\n[[streams]]\nname = \"customers\"\ndomain = \"customers\"\n";
        let problems = parse(&bad).unwrap_err();
        let line = |needle: &str| bad.lines().position(|l| l.contains(needle)).unwrap() + 1;
        let text: Vec<String> = problems
            .iter()
            .map(|p| format!("{}: {}", p.line, p.message))
            .collect();
        assert_eq!(problems.len(), 2, "{text:#?}");
        assert_eq!(problems[0].line, line("lookback = \"soon\""), "{text:#?}");
        assert!(
            problems[0].message.starts_with("[defaults] `lookback`"),
            "{text:#?}"
        );
        assert_eq!(problems[1].line, line("batch_size = 0"), "{text:#?}");
        assert!(
            problems[1].message.starts_with("[defaults] `batch_size`")
                && !problems[1].message.contains("stream `"),
            "{text:#?}"
        );
    }

    const CUSTOM: &str = r#"
[[streams]]
name = "vouchers"
query = "ZZ_VOUCHERS"
key = ["BUSINESS_UNIT", "VOUCHER_ID"]
cursor = "LASTUPDDTTM"
[streams.mapping]
table = "ps_vouchers"
primary_key = ["business_unit", "voucher_id"]
cursor_column = "lastupddttm"
columns = [
  { column = "business_unit", source = "BUSINESS_UNIT", type = "STRING", nullable = false },
  { column = "voucher_id", source = "VOUCHER_ID", type = "STRING", nullable = false },
  { column = "gross_amt", source = "GROSS_AMT", type = "DECIMAL(26,3)" },
  { column = "lastupddttm", source = "LASTUPDDTTM", type = "TIMESTAMP" },
]
"#;

    #[test]
    fn a_custom_mapping_parses() {
        let c = parse(&format!("{GOOD}{CUSTOM}")).unwrap_or_else(|p| panic!("{p:#?}"));
        assert_eq!(c.streams[2].mapping.as_ref().unwrap().columns.len(), 4);
    }

    #[test]
    fn a_mapping_problem_points_at_the_columns_line() {
        for (from, to, needle) in [
            // A type error inside one column.
            (
                "type = \"DECIMAL(26,3)\"",
                "type = \"MONEY\"",
                "{ column = \"gross_amt\"",
            ),
            // A value of the wrong TOML type.
            (
                "nullable = false },\n  { column = \"gross",
                "nullable = \"no\" },\n  { column = \"gross",
                "{ column = \"voucher_id\"",
            ),
            // A problem found when the mapping is compiled: a column mapped twice.
            (
                "column = \"lastupddttm\", source",
                "column = \"gross_amt\", source",
                "LASTUPDDTTM\", type = \"TIMESTAMP",
            ),
        ] {
            let text = format!("{GOOD}{}", CUSTOM.replace(from, to));
            assert!(text.contains(to), "{to}");
            let problems = parse(&text).unwrap_err();
            let want = text.lines().position(|l| l.contains(needle)).unwrap() + 1;
            assert_eq!(problems.len(), 1, "{problems:#?}");
            assert_eq!(problems[0].line, want, "{to}: {problems:#?}");
            assert!(problems[0].message.contains("vouchers"), "{problems:#?}");
        }
    }
}
