//! [`PeopleSoftClient`]: authenticated, load-protected requests to one PeopleSoft node.

use std::fmt;
use std::sync::{Arc, Mutex};

use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use sync_core::http::{AuthProvider, Idempotency, LimiterRegistry, RequestLimiter};
use sync_core::{Clock, SystemClock};
use url::Url;

use crate::auth::Credentials;
use crate::config::{Connection, QueryName};
use crate::error::{truncate_body, ConfigError, Error, Result};
use crate::latch::{AuthLatch, AuthRejection};
use crate::protection::{BlackoutAction, LoadProtection};
use crate::qas::{self, encode, ExecuteQuery, PromptInfo, QueryOwner, QueryResult};

/// The body as text: no copy when it is valid UTF-8 (it nearly always is); otherwise invalid
/// sequences become U+FFFD, as `reqwest`'s `text()` does.
fn utf8_text(body: impl Into<Vec<u8>>) -> String {
    String::from_utf8(body.into())
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// `ExecuteQuery` answers at least this large are parsed on Tokio's blocking pool.
const PARSE_OFF_THREAD_BYTES: usize = 256 * 1024;
/// A client for one PeopleSoft Integration Broker node.
///
/// Cheap to clone (shared inner state). Every request goes through the same path:
/// credential latch and unreachable-host checks (nothing is sent once either is set) →
/// blackout check → `Authorization` header → until PeopleSoft has accepted the credentials
/// once, one request at a time → per-host limiter (concurrency + gap, counted from the
/// previous answer) → send with sync-core's [`RetryPolicy`](sync_core::http::RetryPolicy)
/// (5xx, 429 and timeouts of idempotent requests; a timed-out `ExecuteQuery` is not
/// retried) → 401/403 become [`Error::AuthRejected`] after exactly one request and latch the
/// client and its clones ([`AuthLatch`]) → errors that arrive with HTTP 200 are detected. [`service_request`](Self::service_request)
/// takes the same path but returns every other status, and the body, unjudged.
#[derive(Clone)]
pub struct PeopleSoftClient {
    inner: Arc<Inner>,
    /// One attempt per request, no retries ([`ping`](Self::ping): a check is one request).
    one_shot: bool,
}

struct Inner {
    conn: Connection,
    http: reqwest::Client,
    auth: Arc<dyn AuthProvider>,
    limiter: Arc<RequestLimiter>,
    protection: LoadProtection,
    clock: Arc<dyn Clock>,
    latch: AuthLatch,
    on_latch: Option<LatchCallback>,
    /// A connection-level failure seen in this cycle (see [`PeopleSoftClient::begin_cycle`]).
    unreachable: Mutex<Option<(tokio::time::Instant, String)>>,
    /// True once PeopleSoft accepted the credentials (answered something other than 401/403).
    proven: std::sync::atomic::AtomicBool,
    /// Until then, one request at a time carries the credentials, whatever the concurrency
    /// limit: with wrong credentials exactly one login fails.
    probe: tokio::sync::Mutex<()>,
}

/// Called once when a client latches its credentials (to persist the latch).
pub type LatchCallback = Arc<dyn Fn(&AuthRejection) + Send + Sync>;

/// How long a connection-level failure keeps the host marked unreachable when nobody calls
/// [`PeopleSoftClient::begin_cycle`].
const UNREACHABLE_HOLD: std::time::Duration = std::time::Duration::from_secs(300);

/// Marks a response the client made up instead of sending (the latch closed, or the host
/// was found unreachable, while the request waited for its turn).
#[derive(Clone, Copy)]
struct NotSent;

impl fmt::Debug for PeopleSoftClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeopleSoftClient")
            .field("base_url", &self.inner.conn.base_url().as_str())
            .field("auth", &self.inner.auth)
            .field("protection", &self.inner.protection)
            .finish_non_exhaustive()
    }
}

/// Builder for [`PeopleSoftClient`].
pub struct PeopleSoftClientBuilder {
    conn: Connection,
    credentials: Credentials,
    protection: LoadProtection,
    clock: Arc<dyn Clock>,
    limiter: Option<Arc<RequestLimiter>>,
    latch: Option<AuthLatch>,
    on_latch: Option<LatchCallback>,
}

impl fmt::Debug for PeopleSoftClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeopleSoftClientBuilder")
            .field("conn", &self.conn)
            .field("credentials", &self.credentials)
            .field("protection", &self.protection)
            .finish_non_exhaustive()
    }
}

impl PeopleSoftClientBuilder {
    /// Replaces the load protection (defaults: [`LoadProtection::default`]).
    pub fn protection(mut self, p: LoadProtection) -> Self {
        self.protection = p;
        self
    }

    /// Injects the wall clock used for blackout windows (default: [`SystemClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses this limiter instead of the process-wide one for the host (for isolated tests or
    /// deliberately separate budgets).
    pub fn limiter(mut self, limiter: Arc<RequestLimiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// Shares this credential latch (default: a latch of this client and its clones). Give
    /// every client that logs in with the same credentials the same latch — for example
    /// [`AuthLatch::process_wide`] — so one rejection stops them all: a forward pipeline's
    /// client and a write-back client built separately, say.
    pub fn auth_latch(mut self, latch: AuthLatch) -> Self {
        self.latch = Some(latch);
        self
    }

    /// Called once, by the client whose request was rejected, when the credentials latch
    /// (to persist the latch for the next run; see [`AuthRejection`]).
    pub fn on_auth_latched(mut self, callback: LatchCallback) -> Self {
        self.on_latch = Some(callback);
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<PeopleSoftClient> {
        let t = self.conn.timeouts();
        let http = reqwest::Client::builder()
            .connect_timeout(t.connect)
            .timeout(t.request)
            .user_agent(concat!(
                "ml-connector-peoplesoft/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| ConfigError::new("http_client", "", e.to_string()))?;
        let auth = self
            .credentials
            .provider(http.clone(), self.protection.retry.clone());
        let limiter = self.limiter.unwrap_or_else(|| {
            LimiterRegistry::global().get(&self.conn.host_port(), self.protection.limiter_config())
        });
        let latch = self.latch.unwrap_or_default();
        Ok(PeopleSoftClient {
            one_shot: false,
            inner: Arc::new(Inner {
                conn: self.conn,
                http,
                auth,
                limiter,
                protection: self.protection,
                clock: self.clock,
                latch,
                on_latch: self.on_latch,
                unreachable: Mutex::new(None),
                proven: std::sync::atomic::AtomicBool::new(false),
                probe: tokio::sync::Mutex::new(()),
            }),
        })
    }
}

/// A REST service operation exposed on the node, `{Operation}.v{N}` (for example a site's own
/// `MY_VENDOR_SYNC.v1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceOperation {
    alias: String,
}

impl ServiceOperation {
    /// `name` is the operation's REST alias (letters, digits, `_`, `-`), `version` ≥ 1.
    pub fn new(name: &str, version: u32) -> std::result::Result<Self, ConfigError> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(ConfigError::new(
                "operation",
                name,
                "must be non-empty letters, digits, `_` or `-`",
            ));
        }
        if version == 0 {
            return Err(ConfigError::new(
                "operation_version",
                "0",
                "must be at least 1",
            ));
        }
        Ok(Self {
            alias: format!("{name}.v{version}"),
        })
    }

    /// `Name.vN`.
    pub fn alias(&self) -> &str {
        &self.alias
    }
}

/// The answer to [`PeopleSoftClient::service_request`], whatever its HTTP status.
///
/// 401/403 never arrive here (they are [`Error::AuthRejected`]); every other status does,
/// unjudged. A 2xx status alone does not mean success: PeopleSoft also reports errors with
/// HTTP 200 (an `IBResponse` document, a JSON `status`, an HTML gateway page).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceResponse {
    /// The HTTP status code.
    pub status: u16,
    /// The URL that was called (credentials travel in a header, never in it).
    pub url: String,
    /// The `Content-Type` header, when present and valid text.
    pub content_type: Option<String>,
    /// The whole body as text.
    pub body: String,
}

impl ServiceResponse {
    /// True for a 2xx status (which PeopleSoft may still use for an error; see above).
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Which cheap request [`PeopleSoftClient::ping`] sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PingCheck {
    /// `QueryPrompts.v1/{owner}/{query}`: reads metadata only, no query runs.
    QueryPrompts(QueryOwner, QueryName),
    /// `ExecuteQuery` with `maxrows=1` and the given prompts.
    ExecuteQuery(ExecuteQuery),
}

/// What [`PeopleSoftClient::ping`] found. `Display` gives a one-line verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PingReport {
    /// Host reachable, node answered, credentials accepted.
    Ok {
        /// The URL that was called.
        url: String,
    },
    /// No HTTP answer (DNS, TCP, TLS, timeout).
    Unreachable {
        /// Details.
        detail: String,
    },
    /// The host answered but the node name or the service is wrong (IB error document,
    /// 404, gateway page, query error).
    NodeOrService {
        /// Details.
        detail: String,
    },
    /// 401/403, or no token could be obtained.
    CredentialsRejected {
        /// Details.
        detail: String,
    },
}

impl PingReport {
    /// True for [`PingReport::Ok`].
    pub fn is_ok(&self) -> bool {
        matches!(self, PingReport::Ok { .. })
    }
}

impl fmt::Display for PingReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PingReport::Ok { url } => write!(
                f,
                "ok: host reachable, node answered and credentials accepted ({url})"
            ),
            PingReport::Unreachable { detail } => write!(f, "cannot reach host: {detail}"),
            PingReport::NodeOrService { detail } => write!(f, "{detail}"),
            PingReport::CredentialsRejected { detail } => {
                write!(f, "credentials rejected: {detail}")
            }
        }
    }
}

impl PeopleSoftClient {
    /// Starts a builder with default load protection and the system clock.
    pub fn builder(conn: Connection, credentials: Credentials) -> PeopleSoftClientBuilder {
        PeopleSoftClientBuilder {
            conn,
            credentials,
            protection: LoadProtection::default(),
            clock: Arc::new(SystemClock),
            limiter: None,
            latch: None,
            on_latch: None,
        }
    }

    /// The credential latch: set after the first 401/403 (or token endpoint refusal), after
    /// which no request is sent with these credentials.
    pub fn auth_latch(&self) -> &AuthLatch {
        &self.inner.latch
    }

    /// Starts a new cycle: forgets a connection-level failure (DNS, refused, TLS) seen in the
    /// previous one, so the host is tried again. Within a cycle such a failure stops every
    /// later request to the host at once ([`Error::HostUnreachable`]) instead of retrying
    /// window after window; without this call the mark expires after five minutes.
    pub fn begin_cycle(&self) {
        *self
            .inner
            .unreachable
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn unreachable_reason(&self) -> Option<String> {
        let mut g = self
            .inner
            .unreachable
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match &*g {
            Some((at, _)) if at.elapsed() >= UNREACHABLE_HOLD => {
                *g = None;
                None
            }
            Some((_, reason)) => Some(reason.clone()),
            None => None,
        }
    }

    fn latch_now(&self, status: u16, url: &str) {
        let r = AuthRejection::new(
            self.inner.conn.host_port(),
            status,
            url,
            self.inner.clock.now(),
        );
        if self.inner.latch.latch(r.clone()) {
            tracing::warn!(
                host = %r.host,
                "PeopleSoft credentials rejected: no further request with them ({r})"
            );
            if let Some(cb) = &self.inner.on_latch {
                cb(&r);
            }
        }
    }

    /// The connection.
    pub fn connection(&self) -> &Connection {
        &self.inner.conn
    }

    /// The load protection in force.
    pub fn protection(&self) -> &LoadProtection {
        &self.inner.protection
    }

    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Runs a query synchronously through QAS and returns its rows.
    pub async fn execute_query(&self, q: &ExecuteQuery) -> Result<QueryResult> {
        self.execute_query_keys(q, qas::RowKeys::AsSent).await
    }

    /// [`execute_query`](Self::execute_query), with the rows' field names delivered as `keys`
    /// says (stripping alias prefixes while parsing saves a copy of every row).
    pub(crate) async fn execute_query_keys(
        &self,
        q: &ExecuteQuery,
        keys: qas::RowKeys,
    ) -> Result<QueryResult> {
        let url = self.url(&q.relative_url()?)?;
        // A synchronous query that timed out keeps running on PeopleSoft: not retried at once.
        let body = self
            .request(
                Method::GET,
                url.clone(),
                None,
                Idempotency::IdempotentNoTimeoutRetry,
            )
            .await?;
        if body.len() < PARSE_OFF_THREAD_BYTES {
            return qas::parse_execute_query_keys(url.as_str(), &body, q.max_rows, keys);
        }
        // A large page takes milliseconds of CPU to parse: off the async thread, so the
        // engine keeps mapping and writing the previous page meanwhile.
        let (max_rows, shown) = (q.max_rows, url.to_string());
        tokio::task::spawn_blocking(move || {
            qas::parse_execute_query_keys(url.as_str(), &body, max_rows, keys)
        })
        .await
        .unwrap_or_else(|e| match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => Err(Error::InvalidResponse {
                url: shown,
                reason: format!("parsing the answer was cancelled: {e}"),
                raw: String::new(),
            }),
        })
    }

    /// Lists the prompts a query expects (`QueryPrompts.v1`).
    pub async fn query_prompts(
        &self,
        owner: QueryOwner,
        query: &QueryName,
    ) -> Result<Vec<PromptInfo>> {
        let url = self.url(&format!(
            "QueryPrompts.v1/{}/{}?isconnectedquery=N&json_resp=true",
            owner.as_str(),
            encode(query.as_str())
        ))?;
        let body = self
            .request(Method::GET, url.clone(), None, Idempotency::Idempotent)
            .await?;
        qas::parse_prompts(url.as_str(), &body)
    }

    /// GET `{Operation}.vN/{segment}/{segment}…?{params}` and parse the JSON answer. Each
    /// path segment (the filled-in URI template, one element per segment) and every parameter
    /// is percent-encoded, so a `/` inside a value stays inside its segment. Retried like QAS
    /// GETs. Errors that arrive with HTTP 200 (IBResponse, HTML) are detected as for QAS.
    pub async fn service_get(
        &self,
        op: &ServiceOperation,
        template: &[&str],
        params: &[(&str, &str)],
    ) -> Result<serde_json::Value> {
        let url = self.service_url(op, template, params)?;
        let body = self
            .request(Method::GET, url.clone(), None, Idempotency::Idempotent)
            .await?;
        parse_json(url.as_str(), &body)
    }

    /// POST a JSON body to `{Operation}.vN/{segment}/…`. `idempotency` decides whether a
    /// 5xx or timeout is retried (use [`Idempotency::NonIdempotent`] for creates: then only
    /// 429/503 and connect failures are retried).
    pub async fn service_post(
        &self,
        op: &ServiceOperation,
        template: &[&str],
        body: &serde_json::Value,
        idempotency: Idempotency,
    ) -> Result<serde_json::Value> {
        let url = self.service_url(op, template, &[])?;
        let text = self
            .request(Method::POST, url.clone(), Some(body), idempotency)
            .await?;
        parse_json(url.as_str(), &text)
    }

    /// Sends `method` to `relative_url` with an optional JSON body and returns the answer
    /// **whatever its status**, for callers that judge status and body themselves (the
    /// [write-back sink](crate::writeback) classifies every record's answer this way).
    ///
    /// `relative_url` is relative to the node's base URL, with path and query already
    /// percent-encoded, e.g. `CIRT_VNDR_ID_G_GET.v1/SHARE/00%2F01`
    /// ([`service_get`](Self::service_get) and [`service_post`](Self::service_post) encode
    /// the segments for you and parse the JSON).
    ///
    /// The request takes the same path as every other call of this client: blackout check,
    /// `Authorization` header (one token cache), per-host limiter, and sync-core's
    /// [`RetryPolicy`](sync_core::http::RetryPolicy) under `idempotency` — so a 5xx, 429 or
    /// timeout may already have been retried, and the answer is the last attempt's. The
    /// body is not inspected: errors that PeopleSoft sends with HTTP 200 (an `IBResponse`
    /// document, a JSON `status`, an HTML gateway page) are the caller's to detect.
    ///
    /// # Errors
    ///
    /// - [`Error::AuthRejected`] for 401/403, after exactly one request (never retried:
    ///   repeated failed logins can lock the OPRID);
    /// - [`Error::Blackout`], [`Error::Token`], [`Error::Transport`] (no HTTP answer after
    ///   the retries), [`Error::InvalidResponse`] (unreadable body), as for every call;
    /// - [`Error::Config`] when `relative_url` would leave the node's base URL (absolute,
    ///   starting with `/`, or with a `.` / `..` segment): credentials only go to the node.
    pub async fn service_request(
        &self,
        method: Method,
        relative_url: &str,
        body: Option<&serde_json::Value>,
        idempotency: Idempotency,
    ) -> Result<ServiceResponse> {
        let url = self.node_url(relative_url)?;
        self.send(method, url, body, idempotency).await
    }

    /// Proves reachability, node name and credentials with **one** request (never retried),
    /// and says in one line which of them failed: the host (DNS, refused connection, TLS,
    /// timeout), the node (the gateway's 404 page or an IB "no node" error), or the
    /// credentials (which then latch, like any 401/403).
    pub async fn ping(&self, check: &PingCheck) -> PingReport {
        let once = PeopleSoftClient {
            inner: self.inner.clone(),
            one_shot: true,
        };
        let outcome = match check {
            PingCheck::QueryPrompts(owner, q) => once.query_prompts(*owner, q).await.map(|_| ()),
            PingCheck::ExecuteQuery(q) => {
                let q = q.clone().max_rows(1);
                once.execute_query(&q).await.map(|_| ())
            }
        };
        let url = self.inner.conn.base_url().to_string();
        let host = self.inner.conn.host_port();
        let node = self.inner.conn.node().as_str().to_string();
        match outcome {
            Ok(()) => PingReport::Ok { url },
            Err(Error::Transport { source, .. }) => PingReport::Unreachable {
                detail: match connection_problem(&source) {
                    Some(reason) => format!("{host}: {reason}"),
                    None => format!("{host}: {source}"),
                },
            },
            Err(Error::Timeout { timeout, .. }) => PingReport::Unreachable {
                detail: format!("{host}: no answer within {timeout:?} (setting `request_timeout`)"),
            },
            Err(e @ Error::HostUnreachable { .. }) => PingReport::Unreachable {
                detail: e.to_string(),
            },
            Err(
                e @ Error::Token {
                    transient: true, ..
                },
            ) => PingReport::Unreachable {
                detail: e.to_string(),
            },
            Err(
                e @ (Error::AuthRejected { .. }
                | Error::AuthLatched { .. }
                | Error::Token {
                    transient: false, ..
                }),
            ) => PingReport::CredentialsRejected {
                detail: e.to_string(),
            },
            Err(Error::Http { status: 404, .. } | Error::HtmlPage { status: 404, .. }) => {
                PingReport::NodeOrService {
                    detail: format!(
                        "node `{node}` is not known to the Integration Broker at {host} (the gateway answered HTTP 404 for {url}); check `node` (and `path_prefix`)"
                    ),
                }
            }
            Err(Error::IbResponse { message, .. })
                if ["no node found", "node not found", "unknown node"]
                    .iter()
                    .any(|m| message.to_ascii_lowercase().contains(m)) =>
            {
                PingReport::NodeOrService {
                    detail: format!(
                        "node `{node}` is not known to the Integration Broker at {host}: {message}"
                    ),
                }
            }
            Err(e) => PingReport::NodeOrService {
                detail: format!("node name not found / IB error: {e}"),
            },
        }
    }

    fn url(&self, relative: &str) -> Result<Url> {
        Ok(self.inner.conn.join(relative)?)
    }

    /// [`url`](Self::url) for a caller-supplied relative URL: refuses anything that would
    /// resolve outside the node's base URL, since the `Authorization` header goes with it.
    fn node_url(&self, relative: &str) -> Result<Url> {
        let path = relative.split(['?', '#']).next().unwrap_or_default();
        let dot_segment = path.split(['/', '\\']).any(|s| {
            let s = s.to_ascii_lowercase().replace("%2e", ".");
            s == "." || s == ".."
        });
        let url = self.url(relative)?;
        let base = self.inner.conn.base_url().as_str();
        if dot_segment || relative.starts_with(['/', '\\']) || !url.as_str().starts_with(base) {
            return Err(ConfigError::new(
                "path",
                relative,
                "must stay under the node's base URL (relative, no `.` or `..` segments)",
            )
            .into());
        }
        Ok(url)
    }

    fn service_url(
        &self,
        op: &ServiceOperation,
        template: &[&str],
        params: &[(&str, &str)],
    ) -> Result<Url> {
        let mut rel = op.alias().to_string();
        for seg in template {
            if seg.is_empty() || *seg == "." || *seg == ".." {
                return Err(ConfigError::new(
                    "template",
                    template.join("/"),
                    "path segments must not be empty, `.` or `..`",
                )
                .into());
            }
            rel.push('/');
            rel.push_str(&encode(seg));
        }
        for (i, (k, v)) in params.iter().enumerate() {
            rel.push(if i == 0 { '?' } else { '&' });
            rel.push_str(&encode(k));
            rel.push('=');
            rel.push_str(&encode(v));
        }
        self.url(&rel)
    }

    /// Applies the blackout windows at the injected clock's "now": returns at once outside
    /// them; inside one, waits (tokio time) until the window chain ends, or fails with
    /// [`Error::Blackout`] when the action is [`BlackoutAction::Skip`]. Every request calls
    /// this first; a caller may also call it before starting a cycle.
    pub async fn wait_for_blackout(&self) -> Result<()> {
        let p = &self.inner.protection;
        if p.blackouts.is_empty() {
            return Ok(());
        }
        if let Some((window, until, wait)) = p.blackout_wait(self.inner.clock.as_ref()) {
            let host = self.inner.conn.host_port();
            match p.blackout_action {
                BlackoutAction::Skip => {
                    return Err(Error::Blackout {
                        host,
                        window,
                        until,
                    })
                }
                BlackoutAction::Wait => {
                    tracing::info!(host, window, %until, "PeopleSoft blackout window: waiting");
                    tokio::time::sleep(wait).await;
                }
            }
        }
        Ok(())
    }

    /// Sends one logical request (with retries) and returns the body of a 2xx answer; any
    /// other status is an error (an `IBResponse` body becomes [`Error::IbResponse`]).
    async fn request(
        &self,
        method: Method,
        url: Url,
        json: Option<&serde_json::Value>,
        idempotency: Idempotency,
    ) -> Result<String> {
        let resp = self.send(method, url, json, idempotency).await?;
        if !resp.is_success() {
            if resp.body.contains("IBResponse") {
                return Err(qas::parse_ib_response(resp.status, &resp.url, &resp.body));
            }
            return Err(Error::Http {
                status: resp.status,
                url: resp.url,
                body: truncate_body(&resp.body),
            });
        }
        Ok(resp.body)
    }

    /// The one request path of the crate: blackout check, `Authorization` header, per-host
    /// limiter permit per attempt, sync-core's retry policy, 401/403 →
    /// [`Error::AuthRejected`]. Every other status is returned as it came.
    async fn send(
        &self,
        method: Method,
        url: Url,
        json: Option<&serde_json::Value>,
        idempotency: Idempotency,
    ) -> Result<ServiceResponse> {
        if let Some(r) = self.inner.latch.get() {
            return Err(Error::AuthLatched {
                rejection: r.clone(),
            });
        }
        if let Some(reason) = self.unreachable_reason() {
            return Err(Error::HostUnreachable {
                host: self.inner.conn.host_port(),
                reason,
            });
        }
        self.wait_for_blackout().await?;
        let inner = &self.inner;
        let auth: HeaderValue = match inner.auth.authorization().await {
            Ok(h) => h,
            Err(e) => {
                let transient = e
                    .source
                    .downcast_ref::<crate::auth::TokenEndpointError>()
                    .is_some_and(|t| t.transient);
                if !transient {
                    // The token endpoint refused the client: a failed login as well.
                    self.latch_now(0, url.as_str());
                }
                return Err(Error::Token {
                    transient,
                    message: e.source.to_string(),
                });
            }
        };
        let held = Mutex::new(None);
        let mut attempts = 0u32;
        let mut probe = None;
        if !inner.proven.load(std::sync::atomic::Ordering::SeqCst) {
            let guard = inner.probe.lock().await;
            if let Some(r) = inner.latch.get() {
                return Err(Error::AuthLatched {
                    rejection: r.clone(),
                });
            }
            if !inner.proven.load(std::sync::atomic::Ordering::SeqCst) {
                probe = Some(guard);
            }
        }
        let no_retry = sync_core::http::RetryPolicy::none();
        let retry = if self.one_shot {
            &no_retry
        } else {
            &inner.protection.retry
        };
        let outcome = retry
            .send(idempotency, || {
                let mut req = inner
                    .http
                    .request(method.clone(), url.clone())
                    .header(AUTHORIZATION, auth.clone())
                    .header(ACCEPT, "application/json");
                if let Some(body) = json {
                    req = req.header(CONTENT_TYPE, "application/json").json(body);
                }
                let held = &held;
                let this = &self;
                let limiter = &inner.limiter;
                let url = &url;
                attempts += 1;
                let is_retry = attempts > 1;
                async move {
                    // Free the previous attempt's slot before queueing for a new one (with one
                    // slot per host, keeping it would wait forever).
                    drop(held.lock().unwrap_or_else(|e| e.into_inner()).take());
                    if is_retry {
                        // A retry never starts inside a blackout window: the logical request
                        // is already under way, so it waits for the window's end whatever
                        // the configured action.
                        if let Some((window, until, wait)) =
                            inner.protection.blackout_wait(inner.clock.as_ref())
                        {
                            tracing::info!(window, %until, "blackout window began during retries: waiting");
                            tokio::time::sleep(wait).await;
                        }
                    }
                    let permit = limiter.acquire().await;
                    *held.lock().unwrap_or_else(|e| e.into_inner()) = Some(permit);
                    // Another request may have been rejected, or found the host unreachable,
                    // while this one queued for its turn.
                    if inner.latch.is_latched() || this.unreachable_reason().is_some() {
                        return Ok(not_sent());
                    }
                    tracing::debug!(%url, "PeopleSoft request");
                    let sent = req.send().await;
                    // The server saw the request by now: the next one's gap counts from here.
                    if let Some(p) = held.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                        p.answered();
                    }
                    sent
                }
            })
            .await;
        let resp = match outcome {
            Ok(r) => r,
            Err(source) => {
                drop(held);
                if source.is_timeout() {
                    return Err(Error::Timeout {
                        url: url.to_string(),
                        timeout: inner.conn.timeouts().request,
                    });
                }
                if let Some(reason) = connection_problem(&source) {
                    let host = inner.conn.host_port();
                    tracing::warn!(
                        host,
                        "{reason}: no more requests to this host in this cycle"
                    );
                    *inner.unreachable.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some((tokio::time::Instant::now(), reason));
                }
                return Err(Error::Transport {
                    url: url.to_string(),
                    source,
                });
            }
        };
        if resp.extensions().get::<NotSent>().is_some() {
            drop(held);
            if let Some(reason) = self.unreachable_reason() {
                return Err(Error::HostUnreachable {
                    host: inner.conn.host_port(),
                    reason,
                });
            }
            let rejection = inner.latch.get().cloned().unwrap_or_else(|| {
                AuthRejection::new(inner.conn.host_port(), 401, url.as_str(), inner.clock.now())
            });
            return Err(Error::AuthLatched { rejection });
        }
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            // Latch before the slot is released, so no queued request goes out after this one.
            self.latch_now(status, url.as_str());
        } else {
            inner
                .proven
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        drop(probe);
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp.bytes().await.map(utf8_text);
        // The request is complete only once the body is read: release the slot now.
        drop(held);
        let body = body.map_err(|e| Error::InvalidResponse {
            url: url.to_string(),
            reason: format!("could not read the response body: {e}"),
            raw: String::new(),
        })?;
        if status == 401 || status == 403 {
            return Err(Error::AuthRejected {
                status,
                url: url.to_string(),
                body: truncate_body(&body),
            });
        }
        Ok(ServiceResponse {
            status,
            url: url.into(),
            content_type,
            body,
        })
    }
}

/// A response that was never sent (see [`NotSent`]); 401 is never retried.
fn not_sent() -> reqwest::Response {
    let mut r = http::Response::new(String::new());
    *r.status_mut() = http::StatusCode::UNAUTHORIZED;
    r.extensions_mut().insert(NotSent);
    reqwest::Response::from(r)
}

/// One line naming a connection-level failure (no HTTP conversation was possible), or
/// `None` for other transport errors (timeouts, a dropped body).
pub(crate) fn connection_problem(e: &sync_core::http::TransportError) -> Option<String> {
    let mut chain = String::new();
    let mut refused = false;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            refused |= io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        chain.push_str(&err.to_string().to_ascii_lowercase());
        chain.push(' ');
        cur = err.source();
    }
    if chain.contains("dns error")
        || chain.contains("failed to lookup address")
        || chain.contains("name or service not known")
        || chain.contains("no such host")
        || chain.contains("nodename nor servname")
    {
        return Some("cannot resolve the host name (DNS)".into());
    }
    if refused || chain.contains("connection refused") {
        return Some("connection refused (nothing listens on that port)".into());
    }
    if chain.contains("certificate")
        || chain.contains("tls")
        || chain.contains("handshake")
        || chain.contains("invalid peer")
    {
        return Some("TLS handshake failed (certificate or protocol)".into());
    }
    if e.is_connect() {
        return Some("could not connect".into());
    }
    None
}

fn parse_json(url: &str, body: &str) -> Result<serde_json::Value> {
    if let Some(e) = qas::non_json_error(200, url, body) {
        return Err(e);
    }
    if body.trim().is_empty() {
        return Ok(serde_json::Value::Null);
    }
    let text = qas::quote_long_numbers(body);
    serde_json::from_str(&text).map_err(|e| Error::InvalidResponse {
        url: url.to_string(),
        reason: format!("not valid JSON (cut off?): {e}"),
        raw: truncate_body(body),
    })
}
