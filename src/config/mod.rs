//! `pipeline.toml`, the file the `ml-connector` command reads: connections (secrets only by
//! environment-variable reference), streams, schedule, and where state and audit live.
//!
//! Reading is two passes: TOML syntax and types first (one error with its line), then every
//! semantic problem at once, each with its line, so a user fixes the file in one go.

use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, NaiveTime, Utc};
use sync_core::engine::RejectPolicy;
use sync_core::mapping::Mapping;
use sync_core::schedule::Schedule;

mod check;
mod file;
#[cfg(test)]
mod tests;

/// One problem in the file, with its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Problem {
    /// 1-based line number (0 when unknown).
    pub line: usize,
    /// What is wrong, naming the key.
    pub message: String,
}

/// Every problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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
            // Line 0: the problem has no line (a missing key, an unreadable file).
            match p.line {
                0 => writeln!(f, "  {}: {}", self.path.display(), p.message)?,
                line => writeln!(f, "  {}:{line}: {}", self.path.display(), p.message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// How one stream captures rows: prompts, caps, key paging, write mode, duplicates. `None`
/// keeps the domain default (or the library default for custom streams).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
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

/// Stream settings after defaults are applied and values parsed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StreamSettings {
    /// Stream name.
    pub name: String,
    /// A delivered domain or a custom query.
    pub kind: StreamKind,
    /// Table override.
    pub table: Option<String>,
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
#[non_exhaustive]
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

/// A validated configuration: every value typed, every cross-field rule checked, so the
/// builders never check it again.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// `[pipeline]`.
    pub pipeline: PipelineSettings,
    /// `[state]`.
    pub state: StateSettings,
    /// `[peoplesoft]`.
    pub peoplesoft: PeopleSoftSettings,
    /// `[destination]`.
    pub destination: Destination,
    /// `[[streams]]`, with `[defaults]` applied, in file order.
    pub streams: Vec<StreamSettings>,
    /// `[[writeback]]`: reverse streams, in file order. They run after the forward streams
    /// in every cycle of `run`.
    pub writeback: Vec<WritebackSettings>,
}

/// One `[[writeback]]` stream after parsing: the governed table, the CIRT target and the
/// window settings of the read.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WritebackSettings {
    /// Stream name.
    pub name: String,
    /// The governed table.
    pub table: databricks_client::TableName,
    /// The columns read from it: keys, governed fields, who and when, with their types.
    pub columns: Vec<(String, sync_core::ColumnType)>,
    /// Key columns, in key order.
    pub key_columns: Vec<String>,
    /// The modification-time column (the read cursor).
    pub modified_at_column: String,
    /// The PeopleSoft target (CIRT service, field map, echo rule, conflict policy).
    pub target: peoplesoft_client::writeback::CiTarget,
    /// Key values `check` reads (CI field → value), when given.
    pub check_key: Vec<(String, String)>,
    /// The forward stream whose loaded rows seed the baselines (`seed_from`).
    pub seed_from: Option<String>,
    /// Where reading starts.
    pub start: DateTime<Utc>,
    /// Lookback.
    pub lookback: Duration,
    /// Settle lag.
    pub settle_lag: Duration,
    /// Max window.
    pub max_window: Duration,
    /// Rows per batch.
    pub batch_size: usize,
    /// Attempts before a window is stuck.
    pub max_attempts: u32,
}

impl Config {
    /// The `run` schedule, if the file gives one.
    pub fn schedule(&self) -> Option<Schedule> {
        self.pipeline.schedule
    }
}

/// `[pipeline]`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PipelineSettings {
    /// Pipeline name (state and audit are kept per name).
    pub name: String,
    /// Schedule for `run`.
    pub schedule: Option<Schedule>,
    /// Streams run at once.
    pub max_concurrent_streams: usize,
}

/// Where checkpoints, audit and rejects live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StateKind {
    /// Files in `state.dir` (one process at a time: the file is locked).
    File,
    /// Tables in the Databricks destination's schema.
    Databricks,
}

/// `[state]`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StateSettings {
    /// The store.
    pub kind: StateKind,
    /// Directory for the file store, the JSON-lines audit and rejects, and the credential
    /// latch.
    pub dir: PathBuf,
    /// This worker's name in stream leases (`state.worker`; the `ML_CONNECTOR_WORKER`
    /// environment variable overrides it; default: host name and process id).
    pub worker: Option<String>,
    /// How long a stream lease lasts unless renewed (`state.lease_ttl`, default 5 minutes).
    pub lease_ttl: chrono::Duration,
}

/// How the connector authenticates to PeopleSoft. Secrets are named by environment variable,
/// never written in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeopleSoftAuth {
    /// HTTP Basic with an OPRID.
    Basic {
        /// The OPRID.
        user: String,
        /// Environment variable holding the password.
        password_env: String,
    },
    /// A static bearer token.
    Bearer {
        /// Environment variable holding the token.
        token_env: String,
    },
    /// OAuth2 client credentials (PeopleTools 8.58+).
    OAuth2 {
        /// Token endpoint.
        token_url: String,
        /// Client id.
        client_id: String,
        /// Environment variable holding the client secret.
        client_secret_env: String,
        /// Scope.
        scope: Option<String>,
        /// Audience.
        audience: Option<String>,
    },
}

/// `[peoplesoft]`: the connection, authentication and load protection.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PeopleSoftSettings {
    /// Host name.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Integration Broker node.
    pub node: String,
    /// Plain http (only with `allow_http = true`, for local testing).
    pub http: bool,
    /// Reverse-proxy path prefix before `/PSIGW`.
    pub path_prefix: Option<String>,
    /// Time zone PeopleSoft stores local datetimes in.
    pub time_zone: chrono_tz::Tz,
    /// Authentication.
    pub auth: PeopleSoftAuth,
    /// Requests in flight at once.
    pub max_concurrent_requests: usize,
    /// Minimum gap between request starts.
    pub min_gap: std::time::Duration,
    /// Request timeout.
    pub request_timeout: std::time::Duration,
    /// Rows per request (`maxrows`), when set.
    pub max_rows: Option<u32>,
    /// Blackouts.
    pub blackouts: Vec<Blackout>,
    /// Write-back: rounds per batch for records that fail transiently (each round starts
    /// again from the Get, so a write that reached PeopleSoft is not sent twice).
    pub write_attempts: u32,
    /// Write-back: pause before a retry round (doubled per round).
    pub write_retry_delay: std::time::Duration,
}

/// `[destination]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Destination {
    /// A local SQLite file.
    Sqlite {
        /// The file.
        path: PathBuf,
    },
    /// Delta tables in a Databricks workspace (connection from `DATABRICKS_*` or a profile).
    Databricks {
        /// Catalog.
        catalog: String,
        /// Schema.
        schema: String,
        /// `~/.databrickscfg` profile.
        profile: Option<String>,
        /// Allow plain http (local stand-ins only).
        allow_http: bool,
        /// Job started after each stream's cycle that committed data.
        trigger_job_id: Option<i64>,
        /// Bulk loads through a volume (`None`: every batch takes the VALUES path).
        bulk: Option<BulkSettings>,
    },
}

/// `[destination]` bulk settings of a Databricks destination: batches of at least `threshold`
/// rows are staged as a Parquet file in `volume` and loaded with one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BulkSettings {
    /// The volume, `catalog.schema.volume`.
    pub volume: String,
    /// Rows from which a batch takes the bulk path.
    pub threshold: usize,
    /// `prepare` runs `CREATE VOLUME IF NOT EXISTS` (needs CREATE VOLUME on the schema).
    pub create_volume: bool,
}

/// Default `bulk_threshold`.
pub const DEFAULT_BULK_THRESHOLD: usize = 20_000;

/// Default `batch_size` of a stream: 5 000 rows, or [`BULK_BATCH_SIZE`] when the destination
/// is Databricks with bulk loads on (so a batch is one staged file and one statement).
pub const DEFAULT_BATCH_SIZE: usize = 5_000;

/// Default `batch_size` with bulk loads on.
pub const BULK_BATCH_SIZE: usize = 100_000;

/// A delivered domain default (`domain = "..."` on a stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Domain {
    /// Vendor master.
    Vendors,
    /// Customer master.
    Customers,
    /// Purchase order headers.
    PurchaseOrders,
    /// Purchase order lines.
    PurchaseOrderLines,
    /// Journal headers.
    JournalHeaders,
    /// Journal lines.
    JournalLines,
    /// Job rows (effective-dated).
    Employees,
    /// Paycheck earnings.
    Paychecks,
}

impl Domain {
    /// Every domain, with its name in the file.
    pub const ALL: [(Domain, &'static str); 8] = [
        (Domain::Vendors, "vendors"),
        (Domain::Customers, "customers"),
        (Domain::PurchaseOrders, "purchase_orders"),
        (Domain::PurchaseOrderLines, "purchase_order_lines"),
        (Domain::JournalHeaders, "journal_headers"),
        (Domain::JournalLines, "journal_lines"),
        (Domain::Employees, "employees"),
        (Domain::Paychecks, "paychecks"),
    ];

    /// The name used in `pipeline.toml`.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(d, _)| *d == self)
            .map(|(_, n)| *n)
            .unwrap_or("?")
    }

    /// The delivered stream definition.
    pub fn definition(self) -> peoplesoft_client::StreamDefinition {
        use peoplesoft_client::StreamDefinition as D;
        match self {
            Domain::Vendors => D::vendors(),
            Domain::Customers => D::customers(),
            Domain::PurchaseOrders => D::purchase_orders(),
            Domain::PurchaseOrderLines => D::purchase_order_lines(),
            Domain::JournalHeaders => D::journal_headers(),
            Domain::JournalLines => D::journal_lines(),
            Domain::Employees => D::employees(),
            Domain::Paychecks => D::paychecks(),
        }
    }
}

impl std::str::FromStr for Domain {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .iter()
            .find(|(_, n)| *n == s)
            .map(|(d, _)| *d)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|(_, n)| *n).collect();
                format!("unknown domain `{s}` (one of {})", names.join(", "))
            })
    }
}

/// What a stream reads: a delivered domain (with overrides) or a custom query.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StreamKind {
    /// A delivered domain default.
    Domain {
        /// The domain.
        domain: Domain,
        /// Its query, when the site's differs from the delivered name.
        query: Option<String>,
    },
    /// A custom query with its own mapping.
    Custom {
        /// The query.
        query: String,
        /// The mapping.
        mapping: Box<Mapping>,
        /// Key fields (PeopleSoft names).
        key: Vec<String>,
        /// Cursor field (PeopleSoft name).
        cursor: String,
    },
}

/// Parses a duration like `250ms`, `30s`, `5m`, `1h`, `2d` or `1h 30m` (humantime syntax).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        format!(
            "`{}` is not a duration like 250ms, 30s, 5m, 1h or 2d ({e})",
            s.trim()
        )
    })
}

/// Parses and validates configuration text; on failure returns every problem with its line.
pub fn parse(text: &str) -> Result<Config, Vec<Problem>> {
    check::parse(text)
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
