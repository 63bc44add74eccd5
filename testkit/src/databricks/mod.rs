//! [`DatabricksStandIn`]: an in-process Databricks workspace on `127.0.0.1` for end-to-end
//! tests, examples and benchmarks.
//!
//! It answers the REST calls the ml-connector Databricks client makes, with the real wire
//! shapes:
//!
//! - **OAuth M2M**: `GET /oidc/.well-known/oauth-authorization-server` and
//!   `POST /oidc/v1/token` (form body, HTTP Basic client credentials, `expires_in` as a
//!   string, unique tokens that expire by the tokio clock, so `tokio::time::pause` works).
//!   A personal access token can be configured too.
//! - **SQL Statement Execution API 2.0**: `POST /api/2.0/sql/statements`, poll, cancel and
//!   result chunks. Statements run against an in-memory catalog (schemas, Delta-like tables
//!   with typed columns): `CREATE SCHEMA`, `CREATE TABLE … USING DELTA`,
//!   `ALTER TABLE … ADD COLUMNS`, keyed `MERGE`, `INSERT`, `DELETE`, `DROP`, `DESCRIBE` and
//!   simple `SELECT`s. SQL errors come back as `FAILED` over HTTP 200 with an error class
//!   and SQLSTATE; results are JSON_ARRAY (every non-null value a string) split into chunks.
//! - **Files API** on Unity Catalog volumes: `PUT` / `GET` / `HEAD` / `DELETE
//!   /api/2.0/fs/files/Volumes/…`, `GET` (paged listing) and `PUT /api/2.0/fs/directories/…`;
//!   404 `RESOURCE_DOES_NOT_EXIST` for a missing volume, 403 `PERMISSION_DENIED` when denied.
//!   SQL knows `CREATE VOLUME`, `read_files('<path>', format => 'parquet')` as a table source
//!   (it decodes the stored Parquet into typed values) and `COPY INTO … FILEFORMAT = PARQUET
//!   FILES = (…)`, which skips files the table already loaded.
//! - `GET /api/2.0/sql/warehouses/{id}`, `POST /api/2.1/jobs/run-now` (idempotency tokens),
//!   Unity Catalog `GET /api/2.1/unity-catalog/tables/{full_name}` and the paged table list.
//!
//! Faults ([`Fault`]) are programmed at run time per [`Endpoint`]; a fault on the statement
//! endpoint never runs the statement, except [`Fault::ApplyThenDelay`]. Everything the
//! server saw and holds can be inspected: the statement log, token fetches, table rows and
//! schemas, duplicate keys, job runs.
//!
//! SQL is parsed with `sqlparser` (Databricks dialect) after a token pass that decodes string
//! literals exactly as Databricks does (backslash escapes, adjacent literals concatenate;
//! see [`unescape_string_literal`]).
//!
//! ```
//! use ml_connector_testkit::databricks::{DatabricksStandIn, StandInValue};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let standin = DatabricksStandIn::start().await;
//! standin.execute_sql("CREATE SCHEMA IF NOT EXISTS main.sales").unwrap();
//! standin
//!     .execute_sql("CREATE TABLE main.sales.orders (id BIGINT NOT NULL, amt DECIMAL(10,2)) USING DELTA")
//!     .unwrap();
//! standin
//!     .execute_sql("INSERT INTO main.sales.orders VALUES (1, CAST('12.5' AS DECIMAL(10,2)))")
//!     .unwrap();
//! let rows = standin.rows("main.sales.orders").unwrap();
//! assert_eq!(rows[0]["amt"].to_cell().as_deref(), Some("12.50"));
//! assert_eq!(rows[0]["id"], StandInValue::BigInt(1));
//!
//! // Point a client at `standin.uri()` with these credentials.
//! let (_id, _secret) = (standin.client_id(), standin.client_secret());
//! assert!(standin.uri().starts_with("http://127.0.0.1:"));
//! # }
//! ```

mod engine;
mod server;
mod value;
mod volumes;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use wiremock::{Mock, MockServer};

pub use engine::{ColumnSpec, MergeDuplicates, SqlFailure};
pub use value::{unescape_string_literal, SqlType, StandInValue};
pub use volumes::parquet_columns;

use server::{Handler, Shared};

/// Default OAuth client id.
pub const DEFAULT_CLIENT_ID: &str = "standin-client-id";
/// Default OAuth client secret.
pub const DEFAULT_CLIENT_SECRET: &str = "standin-client-secret";
/// Default SQL warehouse id.
pub const DEFAULT_WAREHOUSE_ID: &str = "0123456789abcdef";
/// The statement size limit of the real service (16 MiB).
pub const MAX_STATEMENT_BYTES: usize = 16 * 1024 * 1024;
/// The parameter count limit of the real service.
pub const MAX_PARAMETERS: usize = 256;

/// Settings of a [`DatabricksStandIn`], built with chained setters.
#[derive(Clone)]
pub struct StandInConfig {
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(crate) pat: Option<String>,
    pub(crate) oauth_enabled: bool,
    pub(crate) token_ttl: Duration,
    pub(crate) expires_in_as_number: bool,
    pub(crate) warehouses: Vec<String>,
    pub(crate) catalogs: Vec<String>,
    pub(crate) default_catalog: String,
    pub(crate) default_schema: String,
    pub(crate) rows_per_chunk: usize,
    pub(crate) max_statement_bytes: usize,
    pub(crate) max_parameters: usize,
    pub(crate) merge_duplicates: MergeDuplicates,
    pub(crate) uc_page_size: usize,
    pub(crate) uc_empty_pages: bool,
    pub(crate) uc_visibility_lag: u32,
    pub(crate) jobs: Vec<i64>,
    pub(crate) log_sql_prefix: Option<usize>,
    pub(crate) volumes: Vec<String>,
    pub(crate) deny_create_volume: bool,
    pub(crate) deny_files: bool,
    pub(crate) files_page_size: usize,
}

impl Default for StandInConfig {
    fn default() -> Self {
        Self {
            client_id: DEFAULT_CLIENT_ID.into(),
            client_secret: DEFAULT_CLIENT_SECRET.into(),
            pat: None,
            oauth_enabled: true,
            token_ttl: Duration::from_secs(3600),
            expires_in_as_number: false,
            warehouses: vec![DEFAULT_WAREHOUSE_ID.into()],
            catalogs: vec!["main".into()],
            default_catalog: "main".into(),
            default_schema: "default".into(),
            rows_per_chunk: 10_000,
            max_statement_bytes: MAX_STATEMENT_BYTES,
            max_parameters: MAX_PARAMETERS,
            merge_duplicates: MergeDuplicates::FailAlways,
            uc_page_size: 50,
            uc_empty_pages: false,
            uc_visibility_lag: 0,
            jobs: Vec::new(),
            log_sql_prefix: None,
            volumes: Vec::new(),
            deny_create_volume: false,
            deny_files: false,
            files_page_size: 1000,
        }
    }
}

impl fmt::Debug for StandInConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandInConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("pat", &self.pat.as_ref().map(|_| "<redacted>"))
            .field("token_ttl", &self.token_ttl)
            .field("warehouses", &self.warehouses)
            .field("default_catalog", &self.default_catalog)
            .field("default_schema", &self.default_schema)
            .field("rows_per_chunk", &self.rows_per_chunk)
            .finish_non_exhaustive()
    }
}

impl StandInConfig {
    /// The defaults: client [`DEFAULT_CLIENT_ID`] / [`DEFAULT_CLIENT_SECRET`], no PAT,
    /// 1-hour tokens with `expires_in` as a string, warehouse [`DEFAULT_WAREHOUSE_ID`],
    /// catalog `main` (default schema `default`), 10 000 rows per result chunk, the real
    /// 16 MiB / 256-parameter limits, strict MERGE duplicate checks.
    pub fn new() -> Self {
        Self::default()
    }

    /// OAuth client id and secret accepted by the token endpoint.
    pub fn client_credentials(mut self, id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.client_id = id.into();
        self.client_secret = secret.into();
        self
    }

    /// Also accept this personal access token as a bearer token.
    pub fn pat(mut self, token: impl Into<String>) -> Self {
        self.pat = Some(token.into());
        self
    }

    /// When false, discovery and the token endpoint answer 404 (a PAT-only workspace).
    pub fn oauth_enabled(mut self, yes: bool) -> Self {
        self.oauth_enabled = yes;
        self
    }

    /// Lifetime of issued tokens (whole seconds are reported in `expires_in`).
    pub fn token_ttl(mut self, ttl: Duration) -> Self {
        self.token_ttl = ttl;
        self
    }

    /// Send `expires_in` as a JSON number instead of the string Databricks sends.
    pub fn expires_in_as_number(mut self, yes: bool) -> Self {
        self.expires_in_as_number = yes;
        self
    }

    /// Adds a SQL warehouse id (state `RUNNING`).
    pub fn warehouse(mut self, id: impl Into<String>) -> Self {
        self.warehouses.push(id.into());
        self
    }

    /// Adds a catalog (with its `default` schema).
    pub fn catalog(mut self, name: impl Into<String>) -> Self {
        self.catalogs.push(name.into());
        self
    }

    /// Catalog and schema used when a request names neither.
    pub fn defaults(mut self, catalog: impl Into<String>, schema: impl Into<String>) -> Self {
        self.default_catalog = catalog.into();
        self.default_schema = schema.into();
        self.catalogs.push(self.default_catalog.clone());
        self
    }

    /// Rows per result chunk (at least 1).
    pub fn rows_per_chunk(mut self, rows: usize) -> Self {
        self.rows_per_chunk = rows.max(1);
        self
    }

    /// Statement size limit in bytes (the real one is [`MAX_STATEMENT_BYTES`]).
    pub fn max_statement_bytes(mut self, bytes: usize) -> Self {
        self.max_statement_bytes = bytes;
        self
    }

    /// Parameter count limit (the real one is [`MAX_PARAMETERS`]).
    pub fn max_parameters(mut self, n: usize) -> Self {
        self.max_parameters = n;
        self
    }

    /// How duplicate keys in a MERGE source are treated.
    pub fn merge_duplicates(mut self, policy: MergeDuplicates) -> Self {
        self.merge_duplicates = policy;
        self
    }

    /// Tables per page of the Unity Catalog list when the client sends `max_results=0`.
    pub fn uc_page_size(mut self, n: usize) -> Self {
        self.uc_page_size = n.max(1);
        self
    }

    /// When true, every page of the Unity Catalog table list is preceded by an empty page
    /// that still carries a `next_page_token` (the real API may do this).
    pub fn uc_empty_pages(mut self, yes: bool) -> Self {
        self.uc_empty_pages = yes;
        self
    }

    /// A newly created table answers 404 on its first `gets` Unity Catalog reads (tables
    /// take a moment to show up in Unity Catalog).
    pub fn uc_visibility_lag(mut self, gets: u32) -> Self {
        self.uc_visibility_lag = gets;
        self
    }

    /// Keeps only the first `bytes` bytes of each statement's text in the statement log
    /// (for benchmarks that send gigabytes of SQL). Default: the whole text.
    pub fn log_sql_prefix(mut self, bytes: usize) -> Self {
        self.log_sql_prefix = Some(bytes);
        self
    }

    /// Adds a Unity Catalog volume `catalog.schema.volume` (its catalog and schema are
    /// created too).
    pub fn volume(mut self, full_name: impl Into<String>) -> Self {
        self.volumes.push(full_name.into());
        self
    }

    /// When true, `CREATE VOLUME` fails with `INSUFFICIENT_PERMISSIONS` (no CREATE VOLUME
    /// grant on the schema).
    pub fn deny_create_volume(mut self, yes: bool) -> Self {
        self.deny_create_volume = yes;
        self
    }

    /// When true, every Files API call answers 403 `PERMISSION_DENIED` (no READ VOLUME /
    /// WRITE VOLUME grant).
    pub fn deny_files(mut self, yes: bool) -> Self {
        self.deny_files = yes;
        self
    }

    /// Entries per page of a directory listing (default 1000; at least 1).
    pub fn files_page_size(mut self, n: usize) -> Self {
        self.files_page_size = n.max(1);
        self
    }

    /// Restricts `run-now` to these job ids (default: any job id exists).
    pub fn job(mut self, job_id: i64) -> Self {
        self.jobs.push(job_id);
        self
    }
}

/// An API endpoint, for targeting faults and counting requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// Any endpoint (faults only).
    Any,
    /// `GET /oidc/.well-known/oauth-authorization-server`.
    Discovery,
    /// `POST /oidc/v1/token`.
    Token,
    /// `POST /api/2.0/sql/statements`.
    ExecuteStatement,
    /// `GET /api/2.0/sql/statements/{id}`.
    GetStatement,
    /// `POST /api/2.0/sql/statements/{id}/cancel`.
    CancelStatement,
    /// `GET /api/2.0/sql/statements/{id}/result/chunks/{n}`.
    ResultChunk,
    /// `GET /api/2.0/sql/warehouses/{id}`.
    Warehouse,
    /// `POST /api/2.1/jobs/run-now`.
    RunNow,
    /// `GET /api/2.1/unity-catalog/tables/{full_name}` (and `/exists`).
    UcGetTable,
    /// `GET /api/2.1/unity-catalog/tables?catalog_name=&schema_name=`.
    UcListTables,
    /// `PUT /api/2.0/fs/files/Volumes/…` (upload).
    UploadFile,
    /// `GET /api/2.0/fs/files/Volumes/…` (download).
    DownloadFile,
    /// `HEAD /api/2.0/fs/files/Volumes/…`.
    HeadFile,
    /// `DELETE /api/2.0/fs/files/Volumes/…`.
    DeleteFile,
    /// `GET /api/2.0/fs/directories/Volumes/…` (list).
    ListDirectory,
    /// `PUT /api/2.0/fs/directories/Volumes/…` (create, like `mkdir -p`).
    CreateDirectory,
}

/// A fault answered instead of (or around) the normal response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// HTTP 429 with `Retry-After: <seconds>` (`REQUEST_LIMIT_EXCEEDED`; on the token
    /// endpoint the OAuth-style throttling body).
    RateLimited {
        /// Sent as whole seconds.
        retry_after: Duration,
    },
    /// HTTP 503 `TEMPORARILY_UNAVAILABLE`.
    Unavailable,
    /// HTTP 500 with an HTML body, as a gateway sends it.
    InternalErrorHtml,
    /// Any status with a standard `{error_code, message}` body.
    Status {
        /// HTTP status.
        status: u16,
        /// `error_code`.
        error_code: String,
        /// `message`.
        message: String,
    },
    /// On the statement endpoints: state `FAILED` over HTTP 200 with this error (the
    /// statement is not run). Elsewhere ignored.
    StatementFailed {
        /// `status.error.error_code`, e.g. `BAD_REQUEST`.
        error_code: String,
        /// `status.sql_state`.
        sql_state: String,
        /// `status.error.message`, e.g. `[DELTA_CONCURRENT_APPEND] … SQLSTATE: 2D521`.
        message: String,
    },
    /// The response (a 504) comes only after this delay, so the client's read timeout fires
    /// first, like a dropped connection. The request is not acted upon.
    Delay(Duration),
    /// Expires every issued token, then handles the request normally (a token expiring
    /// mid-run: API calls get 401 until a new token is fetched).
    ExpireTokens,
    /// Statement endpoint: runs the statement, then delays the normal response, so a client
    /// that times out and retries a non-idempotent statement applies it twice.
    ApplyThenDelay(Duration),
}

/// One statement parameter as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterRecord {
    /// Name.
    pub name: String,
    /// Value text; `None` for NULL.
    pub value: Option<String>,
    /// Declared type, if any.
    pub sql_type: Option<String>,
}

/// How a received statement ended (so far).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementOutcome {
    /// Not finished yet (queued or running).
    Pending,
    /// Succeeded with this many result rows (1 for DML counts, 0 for DDL).
    Succeeded {
        /// Result rows.
        rows: u64,
    },
    /// Reported as `FAILED` (by the engine or an injected fault).
    Failed {
        /// Error class, e.g. `PARSE_SYNTAX_ERROR`.
        error_class: String,
        /// SQLSTATE.
        sql_state: String,
        /// Message.
        message: String,
    },
    /// Canceled before it ran.
    Canceled,
    /// Refused with an HTTP error before it ran (size or parameter limit, bad warehouse).
    Rejected {
        /// HTTP status.
        status: u16,
        /// `error_code`.
        error_code: String,
    },
}

/// A statement the stand-in received, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementRecord {
    /// The id returned to the client.
    pub statement_id: String,
    /// SQL text.
    pub sql: String,
    /// Parameters.
    pub parameters: Vec<ParameterRecord>,
    /// `warehouse_id`.
    pub warehouse_id: Option<String>,
    /// `catalog`, when sent.
    pub catalog: Option<String>,
    /// `schema`, when sent.
    pub schema: Option<String>,
    /// Outcome.
    pub outcome: StatementOutcome,
}

/// A file uploaded through the Files API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRecord {
    /// Absolute path, `/Volumes/c/s/v/…`.
    pub path: String,
    /// `Content-Type` of the request.
    pub content_type: Option<String>,
    /// The bytes.
    pub data: Vec<u8>,
}

/// A job run started through `run-now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRunRecord {
    /// Run id.
    pub run_id: i64,
    /// Job id.
    pub job_id: i64,
    /// Run number within the job.
    pub number_in_job: i64,
    /// `job_parameters`.
    pub job_parameters: BTreeMap<String, String>,
    /// `idempotency_token`, when sent.
    pub idempotency_token: Option<String>,
    /// How many `run-now` requests returned this run (more than 1 for retried tokens).
    pub requests: u64,
}

/// The Databricks stand-in server. Dropping it stops the server.
pub struct DatabricksStandIn {
    server: MockServer,
    shared: Arc<Shared>,
}

impl fmt::Debug for DatabricksStandIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabricksStandIn")
            .field("uri", &self.server.uri())
            .field("config", &self.shared.config)
            .finish()
    }
}

pub(crate) fn split_table_name(name: &str) -> Option<(String, String, String)> {
    let parts: Vec<String> = name
        .split('.')
        .map(|p| p.trim_matches('`').to_ascii_lowercase())
        .collect();
    match parts.as_slice() {
        [c, s, t] => Some((c.clone(), s.clone(), t.clone())),
        _ => None,
    }
}

impl DatabricksStandIn {
    /// Starts a stand-in with [`StandInConfig::default`]. Must be called inside a tokio
    /// runtime; token expiry follows that runtime's clock.
    pub async fn start() -> Self {
        Self::start_with(StandInConfig::default()).await
    }

    /// Starts a stand-in with `config`.
    pub async fn start_with(config: StandInConfig) -> Self {
        let shared = Arc::new(Shared::new(config));
        let server = MockServer::builder()
            .disable_request_recording()
            .start()
            .await;
        *shared.base_url.lock().unwrap_or_else(|p| p.into_inner()) = server.uri();
        Mock::given(wiremock::matchers::any())
            .respond_with(Handler(shared.clone()))
            .mount(&server)
            .await;
        DatabricksStandIn { server, shared }
    }

    /// The workspace URL, `http://127.0.0.1:<port>` (no trailing slash).
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The token endpoint URL.
    pub fn token_endpoint(&self) -> String {
        format!("{}/oidc/v1/token", self.uri())
    }

    /// The accepted OAuth client id.
    pub fn client_id(&self) -> &str {
        &self.shared.config.client_id
    }

    /// The accepted OAuth client secret.
    pub fn client_secret(&self) -> &str {
        &self.shared.config.client_secret
    }

    /// The accepted personal access token, if configured.
    pub fn pat(&self) -> Option<&str> {
        self.shared.config.pat.as_deref()
    }

    /// The first configured warehouse id.
    pub fn warehouse_id(&self) -> &str {
        &self.shared.config.warehouses[0]
    }

    // ----- run-time controls -----

    /// Answers the next `times` statement executions (`POST /api/2.0/sql/statements`) with
    /// `fault`.
    pub fn inject(&self, fault: Fault, times: u32) {
        self.shared
            .add_fault(Endpoint::ExecuteStatement, fault, times);
    }

    /// Answers the next `times` requests to `endpoint` with `fault`. Faults are used in the
    /// order they were added.
    pub fn inject_at(&self, endpoint: Endpoint, fault: Fault, times: u32) {
        self.shared.add_fault(endpoint, fault, times);
    }

    /// Removes all pending faults.
    pub fn clear_faults(&self) {
        self.shared.clear_faults();
    }

    /// Expires every token issued so far.
    pub fn expire_all_tokens(&self) {
        self.shared.expire_tokens();
    }

    /// Delays every statement execution response by `latency` (after running it), for
    /// benchmarks; `None` removes it.
    pub fn set_statement_latency(&self, latency: Option<Duration>) {
        self.shared.lock().latency = latency;
    }

    /// The next `n` statements answer `PENDING` to the POST, then `RUNNING` on
    /// `running_polls` polls, then run and report their terminal state on the next poll.
    pub fn queue_next_statements(&self, n: u32, running_polls: u32) {
        let mut st = self.shared.lock();
        st.queued_next = n;
        st.queued_running_polls = running_polls;
    }

    /// The next `n` statements stay `RUNNING` until canceled (they never run).
    pub fn hang_next_statements(&self, n: u32) {
        self.shared.lock().hang_next = n;
    }

    /// Sets a warehouse's state (`RUNNING`, `STOPPED`, `STARTING`, `DELETED`, …), adding the
    /// warehouse if it is new.
    pub fn set_warehouse_state(&self, id: &str, state: &str) {
        self.shared
            .lock()
            .warehouses
            .insert(id.to_string(), state.to_string());
    }

    /// Runs one SQL statement directly (for setup), outside the HTTP API and the statement
    /// log. Returns the result rows (DML: the count row; DDL: none).
    pub fn execute_sql(&self, sql: &str) -> Result<Vec<Vec<StandInValue>>, SqlFailure> {
        self.shared.execute_direct(sql).map(|o| o.rows)
    }

    // ----- inspection -----

    /// Every statement received over HTTP, in order.
    pub fn statements(&self) -> Vec<StatementRecord> {
        self.shared.lock().statements.clone()
    }

    /// Tokens issued by the token endpoint.
    pub fn token_fetch_count(&self) -> u64 {
        self.shared.lock().tokens_issued
    }

    /// Requests received by `endpoint` (faulted ones included).
    pub fn request_count(&self, endpoint: Endpoint) -> u64 {
        let st = self.shared.lock();
        if endpoint == Endpoint::Any {
            st.requests.values().sum()
        } else {
            st.requests.get(&endpoint).copied().unwrap_or(0)
        }
    }

    /// Full names (`catalog.schema.table`) of every table.
    pub fn tables(&self) -> Vec<String> {
        let st = self.shared.lock();
        st.catalog
            .catalogs
            .values()
            .flat_map(|c| c.values())
            .flat_map(|s| s.values())
            .map(|t| t.full_name())
            .collect()
    }

    /// The rows of `catalog.schema.table` keyed by column name, in insertion order.
    pub fn rows(&self, table: &str) -> Option<Vec<BTreeMap<String, StandInValue>>> {
        let (c, s, t) = split_table_name(table)?;
        let st = self.shared.lock();
        let table = st.catalog.table(&c, &s, &t)?;
        Some(
            table
                .rows
                .iter()
                .map(|r| {
                    table
                        .columns
                        .iter()
                        .zip(r)
                        .map(|(c, v)| (c.name.clone(), v.clone()))
                        .collect()
                })
                .collect(),
        )
    }

    /// The number of rows of a table.
    pub fn row_count(&self, table: &str) -> Option<usize> {
        let (c, s, t) = split_table_name(table)?;
        self.shared
            .lock()
            .catalog
            .table(&c, &s, &t)
            .map(|t| t.rows.len())
    }

    /// Key values that occur in more than one row of `table` (compared by value, case of
    /// column names ignored). Empty when the keys are unique; `None` for an unknown table or
    /// column.
    pub fn duplicate_keys(
        &self,
        table: &str,
        key_columns: &[&str],
    ) -> Option<Vec<Vec<StandInValue>>> {
        let (c, s, t) = split_table_name(table)?;
        let st = self.shared.lock();
        let table = st.catalog.table(&c, &s, &t)?;
        let idx: Vec<usize> = key_columns
            .iter()
            .map(|k| {
                table
                    .columns
                    .iter()
                    .position(|c| c.name.eq_ignore_ascii_case(k))
            })
            .collect::<Option<_>>()?;
        let mut seen: HashMap<Vec<value::KeyPart>, (usize, Vec<StandInValue>)> = HashMap::new();
        for row in &table.rows {
            let k = idx.iter().map(|&i| value::key_part(&row[i])).collect();
            seen.entry(k)
                .or_insert_with(|| (0, idx.iter().map(|&i| row[i].clone()).collect()))
                .0 += 1;
        }
        let mut dups: Vec<Vec<StandInValue>> = seen
            .into_values()
            .filter(|(n, _)| *n > 1)
            .map(|(_, k)| k)
            .collect();
        dups.sort_by_key(|k| format!("{k:?}"));
        Some(dups)
    }

    /// The current columns of a table.
    pub fn table_schema(&self, table: &str) -> Option<Vec<ColumnSpec>> {
        let (c, s, t) = split_table_name(table)?;
        self.shared
            .lock()
            .catalog
            .table(&c, &s, &t)
            .map(|t| t.columns.clone())
    }

    /// Every file in volume `catalog.schema.volume` as `(absolute path, size in bytes)`,
    /// sorted by path; `None` when the volume does not exist.
    pub fn volume_files(&self, volume: &str) -> Option<Vec<(String, usize)>> {
        let (c, s, v) = split_table_name(volume)?;
        let st = self.shared.lock();
        let vol = st.catalog.volumes.get(&(c.clone(), s.clone(), v.clone()))?;
        Some(
            vol.files
                .iter()
                .map(|(k, f)| (format!("/Volumes/{c}/{s}/{v}/{k}"), f.data.len()))
                .collect(),
        )
    }

    /// Whether volume `catalog.schema.volume` exists.
    pub fn has_volume(&self, volume: &str) -> bool {
        split_table_name(volume)
            .is_some_and(|k| self.shared.lock().catalog.volumes.contains_key(&k))
    }

    /// Every successful upload (`PUT /api/2.0/fs/files/…`), in order, with its bytes (kept
    /// after the file is deleted, so a test can inspect what was staged).
    pub fn uploads(&self) -> Vec<UploadRecord> {
        self.shared.lock().uploads.clone()
    }

    /// Files loaded by `COPY INTO`, as `(table full name, file path)`, sorted.
    pub fn copy_history(&self) -> Vec<(String, String)> {
        let mut v: Vec<_> = self
            .shared
            .lock()
            .catalog
            .copy_history
            .iter()
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// Turns the 403 answer of every Files API call on or off at run time.
    pub fn set_deny_files(&self, yes: bool) {
        self.shared.lock().deny_files = yes;
    }

    /// Job runs started through `run-now`, in order.
    pub fn job_runs(&self) -> Vec<JobRunRecord> {
        self.shared.lock().job_runs.clone()
    }

    /// `run-now` requests received (retries with the same token included).
    pub fn run_now_count(&self) -> u64 {
        self.shared.lock().run_now_calls
    }
}
