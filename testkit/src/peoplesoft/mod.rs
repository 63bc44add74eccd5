//! An in-process PeopleSoft Query Access Services (QAS) stand-in.
//!
//! [`PeopleSoftServer`] listens on `127.0.0.1` (a random port) on its own thread and Tokio
//! runtime, and serves a [`SharedDataset`] over the real QAS REST wire format:
//!
//! ```text
//! GET /PSIGW/RESTListeningConnector/{NODE}/ExecuteQuery.v1/{PUBLIC|PRIVATE}/{QUERY}/JSON/NONFILE
//!     ?isconnectedquery=N&maxrows=N
//!     &prompt_uniquepromptname=FROM_DTTM,TO_DTTM&prompt_fieldvalue=<from>,<to>&json_resp=true
//! → 200 {"status":"success","data":{"query":{"numrows":N,"queryname":"Q",
//!         "rows":[{"attr:rownumber":1,"A.FIELD":...},...]}}}
//!
//! GET /PSIGW/RESTListeningConnector/{NODE}/QueryPrompts.v1/{PUBLIC|PRIVATE}/{QUERY}
//!     ?isconnectedquery=N&json_resp=true
//! → 200 {"status":"success","data":{"queryprompts":{"queryname":"Q","numprompts":2,
//!         "prompts":[{"FieldName":"LASTUPDDTTM","HeadingText":"From Date/Time",
//!                     "FieldType":"Datetime","FormatText":"","FieldLength":26,
//!                     "FieldDecimal":0,"UniquePromptName":"FROM_DTTM"},...]}}}
//! ```
//!
//! **Rows.** A query (see [`ServerConfig::queries`]) returns the rows of its table whose cursor
//! satisfies `from <= cursor < to` (half-open), compared as site-local wall-clock time (see
//! [`crate::sitetime`]), ordered by cursor then key, with alias-prefixed field names. Prompt
//! values may be native `YYYY-MM-DD-HH.MM.SS.ffffff`, `YYYY-MM-DD`, or ISO (with or without
//! offset); zone-less values are site time. An empty or absent prompt leaves that side open.
//! Prompt names and values are matched by position and split on `,` after URL-decoding.
//!
//! **`maxrows`** is required. `N > 0` caps the rows; a response with `numrows == maxrows` may
//! be truncated (exactly as with real QAS, the client cannot tell "exactly N" from "more").
//! `0` (or negative) means "all rows". [`ServerConfig::profile_max_rows`] (the query security
//! profile's "Max Rows Fetched"; none by default) caps **every** result, also below an explicit
//! `maxrows`, without saying so — as a real site's query profile does.
//!
//! **Prompts per query** ([`ServerConfig::query_prompts`], [`QueryPrompts`]): a query can
//! name its window prompts as Query Manager does (`BIND1`, `BIND2`), declare them as date
//! prompts (values `YYYY-MM-DD`, rows compared by the local date of their cursor), use
//! `BETWEEN` (both bounds inclusive), require fixed prompts that filter a field (`SETID`),
//! and declare key-paging prompts (rows whose key is greater than the values, ordered by key).
//! Rows with a NULL cursor ([`Dataset::set_cursor_null`](crate::Dataset::set_cursor_null))
//! match no bounded window; they are returned only when both window prompts are empty.
//!
//! **Authentication.** `Authorization: Basic base64(OPRID:password)` with
//! [`ServerConfig::oprid`]/[`ServerConfig::password`] (defaults [`DEFAULT_OPRID`] /
//! [`DEFAULT_PASSWORD`]), or `Authorization: Bearer <token>` with
//! [`ServerConfig::bearer_token`] (default [`DEFAULT_BEARER_TOKEN`]). Anything else: `401`.
//!
//! **Errors**, checked in this order:
//! - path not under `/PSIGW/RESTListeningConnector/`: `404` HTML (latency applies to every
//!   request, injected faults to everything below this line);
//! - unknown node: **`200`** with an `<IBResponse type="error">` XML body, as a real gateway;
//! - bad credentials: `401`;
//! - method other than GET: `405`;
//! - unknown service operation or unknown query: `200` with IBResponse error XML;
//! - malformed request (bad owner, result type other than `JSON`, missing `maxrows`, unknown
//!   prompt name, unparsable prompt value, names/values count mismatch): `400` with IBResponse
//!   error XML naming the problem.
//!
//! **Faults** ([`Fault`], [`FaultRule`]) and **latency** are programmable at runtime, globally or
//! per query; [`Stats`] counts requests, the peak of concurrent requests, requests per query, and
//! logs every ExecuteQuery window.
//!
//! **Performance.** Each materialised row's JSON is rendered once and cached; a response is
//! built by concatenating the cached rows. Generated tables ([`JournalLines`]) are rendered by a
//! hand-written writer on a blocking thread.

mod http;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine as _;
use chrono::NaiveDateTime;
use sync_core::Window;

use crate::dataset::{
    JournalLines, KeyPart, SharedDataset, QUERY_CUSTOMERS, QUERY_JOB, QUERY_JOURNAL_LINES,
    QUERY_PAYCHECKS, QUERY_PO_LINES, QUERY_VENDORS, TABLE_CUSTOMERS, TABLE_JOB,
    TABLE_JOURNAL_LINES, TABLE_PAYCHECKS, TABLE_PO_LINES, TABLE_VENDORS,
};
use crate::sitetime;
use http::{Delivery, Request, Response};

/// Default Integration Broker node (the FSCM default local node name).
pub const DEFAULT_NODE: &str = "PSFT_EP";
/// Default OPRID accepted with HTTP Basic authentication.
pub const DEFAULT_OPRID: &str = "MLC_EXTRACT";
/// Default password accepted with HTTP Basic authentication.
pub const DEFAULT_PASSWORD: &str = "testkit-password";
/// Default bearer token accepted with `Authorization: Bearer`.
pub const DEFAULT_BEARER_TOKEN: &str = "testkit-bearer-token";
/// Unique prompt name of the inclusive lower cursor bound.
pub const PROMPT_FROM: &str = "FROM_DTTM";
/// Unique prompt name of the exclusive upper cursor bound.
pub const PROMPT_TO: &str = "TO_DTTM";
/// The path prefix of the REST listening connector.
pub const REST_PATH: &str = "/PSIGW/RESTListeningConnector";

/// The stand-in's configuration. Start from [`ServerConfig::default`] and change fields.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The node name in the URL ([`DEFAULT_NODE`]).
    pub node: String,
    /// Accepted OPRID ([`DEFAULT_OPRID`]).
    pub oprid: String,
    /// Accepted password ([`DEFAULT_PASSWORD`]).
    pub password: String,
    /// Accepted bearer token; `None` rejects every bearer token ([`DEFAULT_BEARER_TOKEN`]).
    pub bearer_token: Option<String>,
    /// Query name → table name. Defaults: `MLC_VENDORS` → `vendors`, `MLC_CUSTOMERS` →
    /// `customers`, `MLC_PO_LINES` → `po_lines`, `MLC_JOURNAL_LINES` → `journal_lines`,
    /// `MLC_JOB` → `job`, `MLC_PAYCHECKS` → `paychecks`.
    pub queries: BTreeMap<String, String>,
    /// Unique name of the lower-bound prompt ([`PROMPT_FROM`]).
    pub prompt_from: String,
    /// Unique name of the upper-bound prompt ([`PROMPT_TO`]).
    pub prompt_to: String,
    /// The query profile's row limit, applied to every result, also below `maxrows`, without
    /// saying so (none by default).
    pub profile_max_rows: Option<u64>,
    /// Prompt definitions per query; queries not listed use [`prompt_from`](Self::prompt_from)
    /// / [`prompt_to`](Self::prompt_to) as half-open datetime prompts.
    pub query_prompts: BTreeMap<String, QueryPrompts>,
    /// Latency added to every request (adjustable later with
    /// [`PeopleSoftServer::set_latency`]).
    pub latency: Duration,
    /// Worker threads of the server's own runtime (default 2).
    pub worker_threads: usize,
    /// How a request for another node name is answered: `false` (default) an `IBResponse`
    /// error document with HTTP 200, `true` the gateway's HTML 404 page (what a real
    /// PeopleSoft web server answers for a node the Integration Broker does not know).
    pub unknown_node_404: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let queries = [
            (QUERY_VENDORS, TABLE_VENDORS),
            (QUERY_CUSTOMERS, TABLE_CUSTOMERS),
            (QUERY_PO_LINES, TABLE_PO_LINES),
            (QUERY_JOURNAL_LINES, TABLE_JOURNAL_LINES),
            (QUERY_JOB, TABLE_JOB),
            (QUERY_PAYCHECKS, TABLE_PAYCHECKS),
        ]
        .into_iter()
        .map(|(q, t)| (q.to_string(), t.to_string()))
        .collect();
        ServerConfig {
            node: DEFAULT_NODE.into(),
            oprid: DEFAULT_OPRID.into(),
            password: DEFAULT_PASSWORD.into(),
            bearer_token: Some(DEFAULT_BEARER_TOKEN.into()),
            queries,
            prompt_from: PROMPT_FROM.into(),
            prompt_to: PROMPT_TO.into(),
            profile_max_rows: None,
            query_prompts: BTreeMap::new(),
            latency: Duration::ZERO,
            worker_threads: 2,
            unknown_node_404: false,
        }
    }
}

/// How one query declares its prompts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryPrompts {
    /// Unique name of the lower-bound prompt.
    pub from: String,
    /// Unique name of the upper-bound prompt.
    pub to: String,
    /// Date prompts: values must be `YYYY-MM-DD`; a row matches by its cursor's local date.
    pub date: bool,
    /// `cursor BETWEEN from AND to` (both inclusive) instead of `from <= cursor < to`.
    pub between: bool,
    /// Required fixed prompts: (prompt name, field); rows whose field equals the value.
    pub fixed: Vec<(String, String)>,
    /// Key-paging prompts, one per key field in key order: rows whose key is greater than
    /// the values (all empty: no bound), ordered by key.
    pub key: Vec<String>,
}

impl QueryPrompts {
    /// Half-open datetime prompts named `from` and `to`.
    pub fn new(from: impl Into<String>, to: impl Into<String>) -> QueryPrompts {
        QueryPrompts {
            from: from.into(),
            to: to.into(),
            date: false,
            between: false,
            fixed: Vec::new(),
            key: Vec::new(),
        }
    }

    /// Date prompts.
    pub fn date(mut self) -> QueryPrompts {
        self.date = true;
        self
    }

    /// `BETWEEN` (inclusive).
    pub fn between(mut self) -> QueryPrompts {
        self.between = true;
        self
    }

    /// A required fixed prompt filtering `field`.
    pub fn fixed(mut self, prompt: impl Into<String>, field: impl Into<String>) -> QueryPrompts {
        self.fixed.push((prompt.into(), field.into()));
        self
    }

    /// Key-paging prompts.
    pub fn key<S: Into<String>>(mut self, prompts: impl IntoIterator<Item = S>) -> QueryPrompts {
        self.key = prompts.into_iter().map(Into::into).collect();
        self
    }
}

/// Prompt values of one request, by role.
#[derive(Debug, Default)]
struct PromptValues {
    from: Option<String>,
    to: Option<String>,
    fixed: Vec<(String, String)>,
    key: Vec<String>,
}

/// A failure the server can be told to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 500 with a WebLogic-style HTML error page.
    InternalServerError,
    /// HTTP 502 with an HTML gateway page (a reverse proxy in front of PSIGW).
    BadGateway,
    /// Any status (e.g. 503, 429, 403) with a short text body and an optional `Retry-After`
    /// header in seconds.
    Status {
        /// HTTP status code.
        status: u16,
        /// `Retry-After` seconds.
        retry_after: Option<u64>,
    },
    /// HTTP **200** with an `<IBResponse type="error">` XML body.
    IbError,
    /// HTTP **200** with `{"status":"error","data":{"errorCode":..,"errorMessage":..}}`.
    JsonError,
    /// The normal response, after this delay (a slow query).
    Delay(Duration),
    /// No response at all: the connection stays silent for this long, then closes (set it past
    /// the client's timeout).
    Hang(Duration),
    /// The normal response's head (with its full `Content-Length`) and half its body, then the
    /// connection closes.
    CutOffBody,
    /// A complete HTTP 200 response whose JSON body is cut in half (`Content-Length` matches
    /// the shortened body).
    TruncatedJson,
}

/// When and where a [`Fault`] fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    /// The fault.
    pub fault: Fault,
    /// Only requests for this query (ExecuteQuery or QueryPrompts); `None`: every request.
    pub query: Option<String>,
    /// Matching requests to let through first.
    pub skip: u32,
    /// How many matching requests fail; `None`: all of them, until cleared.
    pub times: Option<u32>,
}

impl FaultRule {
    /// A rule failing the next matching request (any query) once.
    pub fn new(fault: Fault) -> FaultRule {
        FaultRule {
            fault,
            query: None,
            skip: 0,
            times: Some(1),
        }
    }

    /// Restricts the rule to one query.
    pub fn for_query(mut self, query: impl Into<String>) -> FaultRule {
        self.query = Some(query.into());
        self
    }

    /// Fails `n` matching requests.
    pub fn times(mut self, n: u32) -> FaultRule {
        self.times = Some(n);
        self
    }

    /// Fails every matching request until [`PeopleSoftServer::clear_faults`].
    pub fn always(mut self) -> FaultRule {
        self.times = None;
        self
    }

    /// Lets `n` matching requests through before failing.
    pub fn after(mut self, n: u32) -> FaultRule {
        self.skip = n;
        self
    }
}

/// One ExecuteQuery request as logged by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowRequest {
    /// The query name.
    pub query: String,
    /// The raw `FROM_DTTM` prompt value, if given.
    pub from: Option<String>,
    /// The raw `TO_DTTM` prompt value, if given.
    pub to: Option<String>,
    /// The lower bound as site-local time, when given and parsable.
    pub from_local: Option<NaiveDateTime>,
    /// The upper bound as site-local time, when given and parsable.
    pub to_local: Option<NaiveDateTime>,
    /// The `maxrows` parameter, if parsable.
    pub maxrows: Option<i64>,
    /// Rows returned in a complete success response; `None` for errors and faults.
    pub numrows: Option<u64>,
    /// The fault injected into this request, if any.
    pub fault: Option<Fault>,
}

impl WindowRequest {
    /// The requested window in UTC (both bounds given), converting site-local bounds with
    /// [`sitetime::local_to_utc`].
    pub fn window(&self) -> Option<Window> {
        let (f, t) = (self.from_local?, self.to_local?);
        let (f, t) = (sitetime::local_to_utc(f), sitetime::local_to_utc(t));
        (f < t).then(|| Window::new(f, t))
    }
}

/// A snapshot of the server's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Every HTTP request received.
    pub total_requests: u64,
    /// Requests being handled right now.
    pub in_flight: usize,
    /// The largest number of requests handled at the same time.
    pub max_concurrent: usize,
    /// Requests per query name (ExecuteQuery and QueryPrompts).
    pub per_query: BTreeMap<String, u64>,
    /// Every ExecuteQuery request, in arrival order of completion.
    pub windows: Vec<WindowRequest>,
    /// Requests rejected with 401.
    pub unauthorized: u64,
    /// Requests that got an injected fault.
    pub faults_injected: u64,
    /// When each request's head had arrived, in arrival order (to measure the gaps between
    /// request starts as the server sees them).
    pub arrivals: Vec<std::time::Instant>,
}

impl Stats {
    /// The gaps between consecutive request arrivals.
    pub fn arrival_gaps(&self) -> Vec<Duration> {
        let mut a = self.arrivals.clone();
        a.sort();
        a.windows(2).map(|w| w[1] - w[0]).collect()
    }

    /// Requests for one query.
    pub fn requests_for(&self, query: &str) -> u64 {
        self.per_query.get(query).copied().unwrap_or(0)
    }

    /// The logged ExecuteQuery requests of one query.
    pub fn windows_for(&self, query: &str) -> Vec<&WindowRequest> {
        self.windows.iter().filter(|w| w.query == query).collect()
    }
}

#[derive(Debug, Default)]
struct Log {
    per_query: BTreeMap<String, u64>,
    windows: Vec<WindowRequest>,
    unauthorized: u64,
    faults_injected: u64,
    arrivals: Vec<std::time::Instant>,
}

struct State {
    config: ServerConfig,
    dataset: SharedDataset,
    faults: Mutex<Vec<FaultRule>>,
    latency_us: AtomicU64,
    total: AtomicU64,
    in_flight: AtomicUsize,
    max_concurrent: AtomicUsize,
    transaction: AtomicU64,
    log: Mutex<Log>,
    /// A password set after start ([`PeopleSoftServer::set_password`]).
    password: Mutex<Option<String>>,
}

/// The running QAS stand-in. Dropping it stops the server.
///
/// ```
/// use ml_connector_testkit::{Dataset, PeopleSoftServer, QUERY_VENDORS};
///
/// let server = PeopleSoftServer::start(Dataset::manufacturer(1, 0.1));
/// let url = server.execute_query_url(QUERY_VENDORS, "2025-01-01", "2025-02-01", 500);
/// assert!(url.starts_with("http://127.0.0.1:"));
/// assert!(url.contains("/PSIGW/RESTListeningConnector/PSFT_EP/ExecuteQuery.v1/PUBLIC/MLC_VENDORS/JSON/NONFILE?"));
/// ```
pub struct PeopleSoftServer {
    state: Arc<State>,
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for PeopleSoftServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeopleSoftServer")
            .field("addr", &self.addr)
            .field("node", &self.state.config.node)
            .finish_non_exhaustive()
    }
}

impl PeopleSoftServer {
    /// Starts a server with the default [`ServerConfig`]. Works from sync and async code (the
    /// server has its own thread and runtime).
    ///
    /// # Panics
    /// When no local port can be bound or the thread cannot start.
    pub fn start(dataset: impl Into<SharedDataset>) -> PeopleSoftServer {
        PeopleSoftServer::start_with(dataset, ServerConfig::default())
    }

    /// Starts a server with `config`.
    ///
    /// # Panics
    /// When no local port can be bound or the thread cannot start.
    pub fn start_with(dataset: impl Into<SharedDataset>, config: ServerConfig) -> PeopleSoftServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind 127.0.0.1 for the QAS stand-in");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("listener address");
        let workers = config.worker_threads.max(1);
        let state = Arc::new(State {
            latency_us: AtomicU64::new(config.latency.as_micros() as u64),
            config,
            dataset: dataset.into(),
            faults: Mutex::new(Vec::new()),
            total: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            max_concurrent: AtomicUsize::new(0),
            transaction: AtomicU64::new(0),
            log: Mutex::new(Log::default()),
            password: Mutex::new(None),
        });
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let st = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("qas-stand-in".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(workers)
                    .thread_name("qas-stand-in-worker")
                    .enable_all()
                    .build()
                    .expect("runtime for the QAS stand-in");
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!("QAS stand-in cannot listen: {e}");
                            return;
                        }
                    };
                    loop {
                        tokio::select! {
                            _ = &mut rx => break,
                            accepted = listener.accept() => {
                                if let Ok((stream, _)) = accepted {
                                    tokio::spawn(http::serve_connection(Arc::clone(&st), stream));
                                }
                            }
                        }
                    }
                });
                rt.shutdown_background();
            })
            .expect("spawn the QAS stand-in thread");
        PeopleSoftServer {
            state,
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1`.
    pub fn host(&self) -> String {
        self.addr.ip().to_string()
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:{port}` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The node name.
    pub fn node(&self) -> &str {
        &self.state.config.node
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.state.config
    }

    /// `http://127.0.0.1:{port}/PSIGW/RESTListeningConnector/{node}/` (with trailing slash).
    pub fn rest_base_url(&self) -> String {
        format!(
            "{}{}/{}/",
            self.base_url(),
            REST_PATH,
            self.state.config.node
        )
    }

    /// A full ExecuteQuery URL (owner `PUBLIC`) with the two cursor prompts. `from` and `to`
    /// go as given (use `""` for an open bound); they must not contain `,` `&` `#` or spaces.
    pub fn execute_query_url(&self, query: &str, from: &str, to: &str, maxrows: i64) -> String {
        format!(
            "{}ExecuteQuery.v1/PUBLIC/{query}/JSON/NONFILE?isconnectedquery=N&maxrows={maxrows}\
             &prompt_uniquepromptname={},{}&prompt_fieldvalue={from},{to}&json_resp=true",
            self.rest_base_url(),
            self.state.config.prompt_from,
            self.state.config.prompt_to,
        )
    }

    /// [`execute_query_url`](Self::execute_query_url) for a UTC window, rendered as native
    /// site-local text.
    pub fn execute_query_url_for(&self, query: &str, window: Window, maxrows: i64) -> String {
        self.execute_query_url(
            query,
            &sitetime::native(window.from),
            &sitetime::native(window.to),
            maxrows,
        )
    }

    /// The `Authorization` header value for the configured OPRID and password.
    pub fn basic_auth_header(&self) -> String {
        let c = &self.state.config;
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.oprid, c.password));
        format!("Basic {token}")
    }

    /// The dataset being served (mutations are visible to the next request).
    pub fn dataset(&self) -> SharedDataset {
        self.state.dataset.clone()
    }

    /// Adds a fault rule (rules are tried in insertion order; the first that fires wins).
    pub fn inject(&self, rule: FaultRule) {
        lock(&self.state.faults).push(rule);
    }

    /// Fails the next `n` requests (any query) with `fault`.
    pub fn fail_next(&self, n: u32, fault: Fault) {
        self.inject(FaultRule::new(fault).times(n));
    }

    /// Fails the next `n` requests for `query` with `fault`.
    pub fn fail_next_for(&self, query: &str, n: u32, fault: Fault) {
        self.inject(FaultRule::new(fault).for_query(query).times(n));
    }

    /// Removes all fault rules.
    pub fn clear_faults(&self) {
        lock(&self.state.faults).clear();
    }

    /// The fault rules still pending.
    pub fn pending_faults(&self) -> Vec<FaultRule> {
        lock(&self.state.faults).clone()
    }

    /// Sets the latency added to every request.
    pub fn set_latency(&self, latency: Duration) {
        self.state
            .latency_us
            .store(latency.as_micros() as u64, Ordering::SeqCst);
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let log = lock(&self.state.log);
        Stats {
            total_requests: self.state.total.load(Ordering::SeqCst),
            in_flight: self.state.in_flight.load(Ordering::SeqCst),
            max_concurrent: self.state.max_concurrent.load(Ordering::SeqCst),
            per_query: log.per_query.clone(),
            windows: log.windows.clone(),
            unauthorized: log.unauthorized,
            faults_injected: log.faults_injected,
            arrivals: log.arrivals.clone(),
        }
    }

    /// Changes the accepted password from now on (the operator rotated it).
    pub fn set_password(&self, password: impl Into<String>) {
        *lock(&self.state.password) = Some(password.into());
    }

    /// Resets every counter and the window log.
    pub fn reset_stats(&self) {
        let mut log = lock(&self.state.log);
        *log = Log::default();
        self.state.total.store(0, Ordering::SeqCst);
        self.state.max_concurrent.store(
            self.state.in_flight.load(Ordering::SeqCst),
            Ordering::SeqCst,
        );
    }
}

impl Drop for PeopleSoftServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Request handling

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn ib_error(status: u16, message_id: u32, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\"?>\n<IBResponse type=\"error\"><DefaultTitle>Integration Broker \
         Response</DefaultTitle><StatusCode>20</StatusCode><MessageSet>158</MessageSet>\
         <MessageID>{message_id}</MessageID><DefaultMessage>{}</DefaultMessage>\
         <MessageParameters/></IBResponse>",
        xml_escape(message)
    );
    Response::new(status, "text/xml; charset=UTF-8", body)
}

fn html(status: u16, title: &str, text: &str) -> Response {
    let body = format!(
        "<html><head><title>{title}</title></head><body><h1>{title}</h1><p>{}</p></body></html>",
        xml_escape(text)
    );
    Response::new(status, "text/html; charset=UTF-8", body)
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

struct Params(Vec<(String, String)>);

impl Params {
    fn parse(q: &str) -> Params {
        Params(
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned()))
                .collect(),
        )
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
}

enum Op {
    Execute,
    Prompts,
    Other(String),
}

impl State {
    async fn handle(&self, req: &Request, arrived: std::time::Instant) -> Response {
        self.total.fetch_add(1, Ordering::SeqCst);
        lock(&self.log).arrivals.push(arrived);
        let latency = self.latency_us.load(Ordering::SeqCst);
        if latency > 0 {
            tokio::time::sleep(Duration::from_micros(latency)).await;
        }
        let segments: Vec<String> = req
            .path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect();
        if segments.len() < 4 || segments[0] != "PSIGW" || segments[1] != "RESTListeningConnector" {
            return html(
                404,
                "404 Not Found",
                "Not a PeopleSoft REST listening connector URL",
            );
        }
        let node = &segments[2];
        let op = match segments[3].as_str() {
            "ExecuteQuery.v1" => Op::Execute,
            "QueryPrompts.v1" => Op::Prompts,
            other => Op::Other(other.to_string()),
        };
        let query = match op {
            Op::Execute | Op::Prompts => segments.get(5).cloned(),
            Op::Other(_) => None,
        };
        let params = Params::parse(&req.query);
        if let Some(q) = &query {
            *lock(&self.log).per_query.entry(q.clone()).or_default() += 1;
        }

        let fault = self.take_fault(query.as_deref());
        let mut entry = match (&op, &query) {
            (Op::Execute, Some(q)) => Some(self.window_entry(q, &params)),
            _ => None,
        };
        if let Some(fault) = &fault {
            lock(&self.log).faults_injected += 1;
            if let Some(e) = entry.as_mut() {
                e.fault = Some(fault.clone());
            }
        }
        let immediate = match &fault {
            Some(Fault::InternalServerError) => Some(html(
                500,
                "Error 500--Internal Server Error",
                "The server encountered an unexpected condition which prevented it from \
                 fulfilling the request.",
            )),
            Some(Fault::BadGateway) => {
                let body = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
                            <center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n\
                            </body>\r\n</html>\r\n";
                Some(Response::new(502, "text/html", body))
            }
            Some(Fault::Status {
                status,
                retry_after,
            }) => {
                let mut r = Response::new(
                    *status,
                    "text/plain; charset=UTF-8",
                    format!("injected HTTP {status}"),
                );
                if let Some(s) = retry_after {
                    r.headers.push(("Retry-After", s.to_string()));
                }
                Some(r)
            }
            Some(Fault::IbError) => Some(ib_error(
                200,
                10001,
                "Integration Gateway - External System Contact Error (injected): the application \
                 server did not respond.",
            )),
            Some(Fault::JsonError) => Some(Response::new(
                200,
                "application/json",
                "{\"status\":\"error\",\"data\":{\"errorCode\":\"QAS-500\",\"errorMessage\":\
                 \"Query execution failed (injected): ORA-01555: snapshot too old\"}}",
            )),
            Some(Fault::Hang(d)) => {
                let mut r = Response::new(200, "text/plain", "");
                r.delivery = Delivery::Hang(*d);
                Some(r)
            }
            _ => None,
        };
        if let Some(r) = immediate {
            if let Some(e) = entry {
                lock(&self.log).windows.push(e);
            }
            return self.finish(r);
        }
        if let Some(Fault::Delay(d)) = &fault {
            tokio::time::sleep(*d).await;
        }

        let mut resp = self
            .respond(req, node, &op, &segments, &params, entry.as_mut())
            .await;
        match &fault {
            Some(Fault::CutOffBody) => {
                resp.delivery = Delivery::CutOff;
                if let Some(e) = entry.as_mut() {
                    e.numrows = None;
                }
            }
            Some(Fault::TruncatedJson) => {
                let half = resp.body.len() / 2;
                resp.body.truncate(half);
                if let Some(e) = entry.as_mut() {
                    e.numrows = None;
                }
            }
            _ => {}
        }
        if let Some(e) = entry {
            lock(&self.log).windows.push(e);
        }
        self.finish(resp)
    }

    fn finish(&self, mut r: Response) -> Response {
        let n = self.transaction.fetch_add(1, Ordering::SeqCst) + 1;
        r.headers
            .push(("transactionid", format!("7e57c0de-0000-4000-8000-{n:012x}")));
        r
    }

    fn take_fault(&self, query: Option<&str>) -> Option<Fault> {
        let mut rules = lock(&self.faults);
        let mut fired = None;
        for rule in rules.iter_mut() {
            let matches = match &rule.query {
                None => true,
                Some(q) => Some(q.as_str()) == query,
            };
            if !matches {
                continue;
            }
            if rule.skip > 0 {
                rule.skip -= 1;
                continue;
            }
            if let Some(t) = rule.times.as_mut() {
                if *t == 0 {
                    continue;
                }
                *t -= 1;
            }
            fired = Some(rule.fault.clone());
            break;
        }
        rules.retain(|r| r.times != Some(0));
        fired
    }

    fn window_entry(&self, query: &str, params: &Params) -> WindowRequest {
        let (from, to) = self
            .prompt_values(query, params)
            .map(|v| (v.from, v.to))
            .unwrap_or_default();
        WindowRequest {
            query: query.to_string(),
            from_local: from.as_deref().and_then(sitetime::parse_prompt_datetime),
            to_local: to.as_deref().and_then(sitetime::parse_prompt_datetime),
            from,
            to,
            maxrows: params.get("maxrows").and_then(|m| m.trim().parse().ok()),
            numrows: None,
            fault: None,
        }
    }

    /// How `query` declares its prompts.
    fn spec_of(&self, query: &str) -> QueryPrompts {
        self.config
            .query_prompts
            .get(query)
            .cloned()
            .unwrap_or_else(|| QueryPrompts::new(&self.config.prompt_from, &self.config.prompt_to))
    }

    /// The prompt values of a request by role (empty window values are `None`).
    fn prompt_values(&self, query: &str, params: &Params) -> Result<PromptValues, String> {
        let spec = self.spec_of(query);
        let names = params.get("prompt_uniquepromptname").unwrap_or("");
        let values = params.get("prompt_fieldvalue").unwrap_or("");
        let mut out = PromptValues {
            key: vec![String::new(); spec.key.len()],
            ..PromptValues::default()
        };
        let mut fixed_seen = vec![None; spec.fixed.len()];
        if !(names.is_empty() && values.is_empty()) {
            let names: Vec<&str> = names.split(',').collect();
            let values: Vec<&str> = values.split(',').collect();
            if names.len() != values.len() {
                return Err(format!(
                    "{} prompt names but {} prompt values",
                    names.len(),
                    values.len()
                ));
            }
            for (n, v) in names.iter().zip(values) {
                let window_value = (!v.trim().is_empty()).then(|| v.to_string());
                if *n == spec.from {
                    out.from = window_value;
                } else if *n == spec.to {
                    out.to = window_value;
                } else if let Some(i) = spec.fixed.iter().position(|(p, _)| p == n) {
                    fixed_seen[i] = Some(v.to_string());
                } else if let Some(i) = spec.key.iter().position(|p| p == n) {
                    out.key[i] = v.to_string();
                } else if !n.is_empty() {
                    return Err(format!("prompt `{n}` is not defined for this query"));
                }
            }
        }
        for ((prompt, field), seen) in spec.fixed.iter().zip(fixed_seen) {
            match seen {
                Some(v) => out.fixed.push((field.clone(), v)),
                None => return Err(format!("prompt `{prompt}` is required")),
            }
        }
        Ok(out)
    }

    fn authorized(&self, req: &Request) -> bool {
        let Some(h) = req.header("authorization") else {
            return false;
        };
        let (scheme, cred) = h.split_once(' ').unwrap_or((h, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(cred.trim()) else {
                return false;
            };
            let Ok(text) = String::from_utf8(raw) else {
                return false;
            };
            let password = lock(&self.password)
                .clone()
                .unwrap_or_else(|| self.config.password.clone());
            text.split_once(':')
                .is_some_and(|(u, p)| u == self.config.oprid && p == password)
        } else if scheme.eq_ignore_ascii_case("bearer") {
            self.config
                .bearer_token
                .as_deref()
                .is_some_and(|t| t == cred.trim())
        } else {
            false
        }
    }

    async fn respond(
        &self,
        req: &Request,
        node: &str,
        op: &Op,
        segments: &[String],
        params: &Params,
        entry: Option<&mut WindowRequest>,
    ) -> Response {
        if node != self.config.node && self.config.unknown_node_404 {
            return html(
                404,
                "Error 404--Not Found",
                "From RFC 2068 Hypertext Transfer Protocol -- HTTP/1.1: 10.4.5 404 Not Found. \
                 The server has not found anything matching the Request-URI.",
            );
        }
        if node != self.config.node {
            return ib_error(
                200,
                10001,
                &format!(
                    "Integration Gateway: No node found for {node}. Unable to find a routing \
                     corresponding to the incoming request message."
                ),
            );
        }
        if !self.authorized(req) {
            lock(&self.log).unauthorized += 1;
            let mut r = html(
                401,
                "401 Unauthorized",
                "Authentication failed for the requested resource.",
            );
            r.headers
                .push(("WWW-Authenticate", "Basic realm=\"PSIGW\"".into()));
            return r;
        }
        if req.method != "GET" {
            return html(
                405,
                "405 Method Not Allowed",
                "Only GET is served by the testkit",
            );
        }
        match op {
            Op::Other(name) => ib_error(
                200,
                10013,
                &format!("No service operation alias `{name}` is defined on node {node}."),
            ),
            Op::Prompts => {
                let (Some(owner), Some(query)) = (segments.get(4), segments.get(5)) else {
                    return ib_error(400, 10010, "QueryPrompts needs /{OwnerType}/{QueryName}");
                };
                if !owner.eq_ignore_ascii_case("PUBLIC") && !owner.eq_ignore_ascii_case("PRIVATE") {
                    return ib_error(400, 10010, &format!("Invalid owner type `{owner}`"));
                }
                self.prompts(query)
            }
            Op::Execute => self.execute(segments, params, entry).await,
        }
    }

    fn table_of(&self, query: &str) -> Option<&str> {
        self.config.queries.get(query).map(String::as_str)
    }

    fn prompts(&self, query: &str) -> Response {
        let Some(table) = self.table_of(query) else {
            return unknown_query(query);
        };
        let ds = self.dataset.read();
        let cursor = match (ds.table(table), ds.generated(table)) {
            (Some(t), _) => t.spec().cursor.clone(),
            (None, Some(g)) => g.spec().cursor.clone(),
            (None, None) => return unknown_query(query),
        };
        drop(ds);
        let spec = self.spec_of(query);
        let prompt = |heading: &str, name: &str| {
            serde_json::json!({
                "FieldName": cursor,
                "HeadingText": heading,
                "FieldType": if spec.date { "Date" } else { "Datetime" },
                "FormatText": "",
                "FieldLength": if spec.date { 10 } else { 26 },
                "FieldDecimal": 0,
                "UniquePromptName": name,
            })
        };
        let body = serde_json::json!({
            "status": "success",
            "data": {"queryprompts": {
                "queryname": query,
                "numprompts": 2,
                "prompts": [
                    prompt("From Date/Time", &spec.from),
                    prompt("To Date/Time", &spec.to),
                ],
            }}
        });
        Response::new(200, "application/json", body.to_string())
    }

    async fn execute(
        &self,
        segments: &[String],
        params: &Params,
        entry: Option<&mut WindowRequest>,
    ) -> Response {
        let (Some(owner), Some(query), Some(format)) =
            (segments.get(4), segments.get(5), segments.get(6))
        else {
            return ib_error(
                400,
                10010,
                "ExecuteQuery needs /{OwnerType}/{QueryName}/{OutResultType}/{OutResultFormat}",
            );
        };
        if !owner.eq_ignore_ascii_case("PUBLIC") && !owner.eq_ignore_ascii_case("PRIVATE") {
            return ib_error(400, 10010, &format!("Invalid owner type `{owner}`"));
        }
        if !format.eq_ignore_ascii_case("JSON") {
            return ib_error(
                400,
                10010,
                &format!("OutResultType `{format}` is not served by the testkit (use JSON)"),
            );
        }
        let Some(table) = self.table_of(query).map(str::to_string) else {
            return unknown_query(query);
        };
        let maxrows: i64 = match params.get("maxrows").map(|m| m.trim().parse()) {
            Some(Ok(m)) => m,
            Some(Err(_)) => return ib_error(400, 10010, "MaxRow is not a number"),
            None => return ib_error(400, 10010, "MaxRow is required"),
        };
        let spec = self.spec_of(query);
        let prompts = match self.prompt_values(query, params) {
            Ok(b) => b,
            Err(e) => return ib_error(400, 10010, &e),
        };
        let parse = |raw: &Option<String>| -> Result<Option<NaiveDateTime>, Response> {
            let bad = |v: &str, what: &str| {
                ib_error(
                    400,
                    10010,
                    &format!("Invalid prompt value `{v}`: not a {what}"),
                )
            };
            match raw {
                None => Ok(None),
                Some(v) if spec.date => chrono::NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d")
                    .ok()
                    .filter(|_| v.trim().len() == 10)
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(Some)
                    .ok_or_else(|| bad(v, "date (YYYY-MM-DD)")),
                Some(v) => sitetime::parse_prompt_datetime(v)
                    .map(Some)
                    .ok_or_else(|| bad(v, "date/time")),
            }
        };
        let from = match parse(&prompts.from) {
            Ok(v) => v,
            Err(r) => return r,
        };
        let mut to = match parse(&prompts.to) {
            Ok(v) => v,
            Err(r) => return r,
        };
        if spec.between {
            // Inclusive upper bound: the whole day for dates, the exact microsecond otherwise.
            let step = if spec.date {
                chrono::Duration::days(1)
            } else {
                chrono::Duration::microseconds(1)
            };
            to = to.map(|t| t + step);
        }
        let bounded = from.is_some() || to.is_some();
        let cap: Option<u64> = match (maxrows > 0, self.config.profile_max_rows) {
            (true, Some(p)) => Some((maxrows as u64).min(p)),
            (true, None) => Some(maxrows as u64),
            (false, p) => p,
        };

        let mut body: Vec<u8>;
        let numrows: u64;
        let head = |n: u64, capacity: usize| {
            let mut b = Vec::with_capacity(capacity + 128);
            b.extend_from_slice(b"{\"status\":\"success\",\"data\":{\"query\":{\"numrows\":");
            b.extend_from_slice(n.to_string().as_bytes());
            b.extend_from_slice(b",\"queryname\":");
            b.extend_from_slice(serde_json::to_string(query).unwrap_or_default().as_bytes());
            b.extend_from_slice(b",\"rows\":[");
            b
        };
        enum Source {
            Rows(Vec<Arc<str>>),
            Generated(JournalLines, std::ops::Range<u64>),
        }
        let source = {
            let ds = self.dataset.read();
            match (ds.table(&table), ds.generated(&table)) {
                (Some(t), _) => {
                    let key_after: Option<&[String]> = prompts
                        .key
                        .iter()
                        .any(|k| !k.trim().is_empty())
                        .then_some(prompts.key.as_slice());
                    let mut rows: Vec<&crate::dataset::Row> = t
                        .rows_between_local(from, to)
                        .iter()
                        .filter(|r| !(bounded && r.cursor_is_null()))
                        .filter(|r| {
                            prompts
                                .fixed
                                .iter()
                                .all(|(f, v)| r.text(f).as_deref() == Some(v.as_str()))
                        })
                        .filter(|r| key_after.is_none_or(|k| KeyPart::after(r.sort_key(), k)))
                        .collect();
                    if !spec.key.is_empty() {
                        rows.sort_by(|a, b| a.sort_key().cmp(b.sort_key()));
                    }
                    let n = cap.map_or(rows.len(), |c| rows.len().min(c as usize));
                    Source::Rows(
                        rows[..n]
                            .iter()
                            .map(|r| Arc::clone(r.json_tail()))
                            .collect(),
                    )
                }
                (None, Some(g)) => {
                    let mut r = g.index_range_local(from, to);
                    if let Some(c) = cap {
                        r.end = r.end.min(r.start + c);
                    }
                    Source::Generated(g.clone(), r)
                }
                (None, None) => return unknown_query(query),
            }
        };
        match source {
            Source::Rows(rows) => {
                numrows = rows.len() as u64;
                let size: usize = rows.iter().map(|r| r.len() + 24).sum();
                body = head(numrows, size);
                for (i, r) in rows.iter().enumerate() {
                    if i > 0 {
                        body.push(b',');
                    }
                    body.extend_from_slice(b"{\"attr:rownumber\":");
                    body.extend_from_slice((i + 1).to_string().as_bytes());
                    body.push(b',');
                    body.extend_from_slice(r.as_bytes());
                }
            }
            Source::Generated(g, range) => {
                numrows = range.end - range.start;
                body = head(numrows, numrows as usize * 420);
                body = tokio::task::spawn_blocking(move || {
                    g.write_json(range, 1, &mut body);
                    body
                })
                .await
                .unwrap_or_default();
            }
        }
        body.extend_from_slice(b"]}}}");
        if let Some(e) = entry {
            e.numrows = Some(numrows);
        }
        Response::new(200, "application/json; charset=UTF-8", body)
    }
}

fn unknown_query(query: &str) -> Response {
    ib_error(
        200,
        10001,
        &format!("Query {query} does not exist or you are not authorized to run it."),
    )
}
