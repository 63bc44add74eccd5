//! HTTP side of the stand-in: routing, authentication, faults, statement life cycle and the
//! JSON shapes of the Databricks REST API.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value as Json};
use tokio::time::Instant;
use wiremock::{Request, Respond, ResponseTemplate};

use super::engine::{Catalog, Output, Session, SqlFailure};
use super::value::{cast, SqlType, StandInValue};
use super::volumes::{split_volume_path, StoredFile};
use super::{
    Endpoint, Fault, JobRunRecord, ParameterRecord, StandInConfig, StatementOutcome,
    StatementRecord, UploadRecord,
};

/// Reads `tokio::time::Instant::now()` on the runtime that started the stand-in, so a paused
/// test clock (`tokio::time::pause`) also drives token expiry (the HTTP server itself runs on
/// its own thread and runtime).
pub(crate) struct Clock {
    handle: Option<tokio::runtime::Handle>,
}

impl Clock {
    pub(crate) fn current() -> Self {
        Self {
            handle: tokio::runtime::Handle::try_current().ok(),
        }
    }

    pub(crate) fn now(&self) -> Instant {
        match &self.handle {
            Some(h) => {
                let _guard = h.enter();
                Instant::now()
            }
            None => Instant::now(),
        }
    }
}

enum Phase {
    /// Accepted (`PENDING` to the POST); `running` more polls answer `RUNNING`, the next one
    /// runs the statement and reports its terminal state.
    Queued {
        running: u32,
    },
    /// RUNNING until canceled.
    Hanging,
    Canceled,
    Done(Result<Arc<Stored>, SqlFailure>),
}

pub(crate) struct Stored {
    columns: Vec<(String, SqlType)>,
    cells: Vec<Vec<Option<String>>>,
    truncated: bool,
}

struct Live {
    log_index: usize,
    phase: Phase,
    sql: String,
    params: HashMap<String, StandInValue>,
    catalog: String,
    schema: String,
    row_limit: Option<u64>,
}

pub(crate) struct State {
    pub(crate) catalog: Catalog,
    tokens: HashMap<String, Instant>,
    token_serial: u64,
    pub(crate) tokens_issued: u64,
    pub(crate) statements: Vec<StatementRecord>,
    live: HashMap<String, Live>,
    statement_serial: u64,
    faults: VecDeque<(Endpoint, Fault, u32)>,
    pub(crate) latency: Option<Duration>,
    pub(crate) queued_next: u32,
    pub(crate) queued_running_polls: u32,
    pub(crate) hang_next: u32,
    pub(crate) warehouses: BTreeMap<String, String>,
    pub(crate) job_runs: Vec<JobRunRecord>,
    idempotency: HashMap<String, usize>,
    pub(crate) run_now_calls: u64,
    uc_hidden: HashMap<String, u32>,
    pub(crate) requests: BTreeMap<Endpoint, u64>,
    pub(crate) uploads: Vec<UploadRecord>,
    pub(crate) deny_files: bool,
}

pub(crate) struct Shared {
    pub(crate) config: StandInConfig,
    pub(crate) state: Mutex<State>,
    pub(crate) clock: Clock,
    pub(crate) base_url: Mutex<String>,
}

impl Shared {
    pub(crate) fn new(config: StandInConfig) -> Self {
        let mut catalog = Catalog::default();
        for c in &config.catalogs {
            catalog.ensure_catalog(c);
        }
        for v in &config.volumes {
            if let Some((c, s, v)) = super::split_table_name(v) {
                catalog.ensure_catalog(&c);
                if let Some(cat) = catalog.catalogs.get_mut(&c) {
                    cat.entry(s.clone()).or_default();
                }
                catalog.volumes.entry((c, s, v)).or_default();
            }
        }
        catalog.deny_create_volume = config.deny_create_volume;
        let warehouses = config
            .warehouses
            .iter()
            .map(|w| (w.clone(), "RUNNING".to_string()))
            .collect();
        Shared {
            state: Mutex::new(State {
                catalog,
                tokens: HashMap::new(),
                token_serial: 0,
                tokens_issued: 0,
                statements: Vec::new(),
                live: HashMap::new(),
                statement_serial: 0,
                faults: VecDeque::new(),
                latency: None,
                queued_next: 0,
                queued_running_polls: 1,
                hang_next: 0,
                warehouses,
                job_runs: Vec::new(),
                idempotency: HashMap::new(),
                run_now_calls: 0,
                uc_hidden: HashMap::new(),
                requests: BTreeMap::new(),
                uploads: Vec::new(),
                deny_files: config.deny_files,
            }),
            config,
            clock: Clock::current(),
            base_url: Mutex::new(String::new()),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn expire_tokens(&self) {
        let now = self.clock.now();
        for exp in self.lock().tokens.values_mut() {
            *exp = now;
        }
    }

    pub(crate) fn add_fault(&self, endpoint: Endpoint, fault: Fault, times: u32) {
        if times > 0 {
            self.lock().faults.push_back((endpoint, fault, times));
        }
    }

    pub(crate) fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Runs SQL directly (test setup), outside the HTTP API and the statement log.
    pub(crate) fn execute_direct(&self, sql: &str) -> Result<Output, SqlFailure> {
        let params = HashMap::new();
        let mut st = self.lock();
        let session = Session {
            catalog: &self.config.default_catalog,
            schema: &self.config.default_schema,
            params: &params,
            merge_duplicates: self.config.merge_duplicates,
            now_ms: chrono::Utc::now().timestamp_millis(),
        };
        st.catalog.execute(sql, &session)
    }
}

/// The wiremock responder that serves every request.
pub(crate) struct Handler(pub(crate) Arc<Shared>);

fn json_response(status: u16, body: Json) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body.to_string().into_bytes(), "application/json")
}

fn api_error(status: u16, code: &str, message: impl Into<String>) -> ResponseTemplate {
    json_response(
        status,
        json!({"error_code": code, "message": message.into()}),
    )
}

fn failed_body(id: &str, f: &SqlFailure, error_code: &str) -> Json {
    json!({
        "statement_id": id,
        "status": {
            "state": "FAILED",
            "sql_state": f.sql_state,
            "error": {"error_code": error_code, "message": f.full_message()},
        }
    })
}

fn classify(method: &str, path: &str) -> Option<(Endpoint, Vec<String>)> {
    let segs: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let ep = match (method, s.as_slice()) {
        ("GET", ["oidc", ".well-known", "oauth-authorization-server"]) => Endpoint::Discovery,
        ("POST", ["oidc", "v1", "token"]) => Endpoint::Token,
        ("POST", ["api", "2.0", "sql", "statements"]) => Endpoint::ExecuteStatement,
        ("GET", ["api", "2.0", "sql", "statements", _]) => Endpoint::GetStatement,
        ("POST", ["api", "2.0", "sql", "statements", _, "cancel"]) => Endpoint::CancelStatement,
        ("GET", ["api", "2.0", "sql", "statements", _, "result", "chunks", _]) => {
            Endpoint::ResultChunk
        }
        ("GET", ["api", "2.0", "sql", "warehouses", _]) => Endpoint::Warehouse,
        ("POST", ["api", "2.1", "jobs", "run-now"]) => Endpoint::RunNow,
        ("GET", ["api", "2.1", "unity-catalog", "tables"]) => Endpoint::UcListTables,
        ("GET", ["api", "2.1", "unity-catalog", "tables", _])
        | ("GET", ["api", "2.1", "unity-catalog", "tables", _, "exists"]) => Endpoint::UcGetTable,
        ("PUT", ["api", "2.0", "fs", "files", ..]) => Endpoint::UploadFile,
        ("GET", ["api", "2.0", "fs", "files", ..]) => Endpoint::DownloadFile,
        ("HEAD", ["api", "2.0", "fs", "files", ..]) => Endpoint::HeadFile,
        ("DELETE", ["api", "2.0", "fs", "files", ..]) => Endpoint::DeleteFile,
        ("GET", ["api", "2.0", "fs", "directories", ..]) => Endpoint::ListDirectory,
        ("PUT", ["api", "2.0", "fs", "directories", ..]) => Endpoint::CreateDirectory,
        _ => return None,
    };
    Some((ep, segs))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Respond for Handler {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.0.handle(request)
    }
}

impl Shared {
    fn handle(&self, req: &Request) -> ResponseTemplate {
        let method = req.method.as_str().to_ascii_uppercase();
        let Some((endpoint, segs)) = classify(&method, req.url.path()) else {
            return api_error(
                404,
                "ENDPOINT_NOT_FOUND",
                format!("No API found for '{method} {}'", req.url.path()),
            );
        };
        let fault = {
            let mut st = self.lock();
            *st.requests.entry(endpoint).or_insert(0) += 1;
            let pos = st
                .faults
                .iter()
                .position(|(e, _, _)| *e == endpoint || *e == Endpoint::Any);
            pos.map(|p| {
                let f = st.faults[p].1.clone();
                st.faults[p].2 -= 1;
                if st.faults[p].2 == 0 {
                    st.faults.remove(p);
                }
                f
            })
        };
        let mut apply_then_delay = None;
        if let Some(f) = fault {
            match f {
                Fault::RateLimited { retry_after } => {
                    let body = if endpoint == Endpoint::Token {
                        json!({"error": "invalid_request", "error_description": "Temporarily throttled, too many requests"})
                    } else {
                        json!({"error_code": "REQUEST_LIMIT_EXCEEDED", "message": "Too many requests. Please try again later."})
                    };
                    return json_response(429, body)
                        .insert_header("Retry-After", retry_after.as_secs().to_string().as_str());
                }
                Fault::Unavailable => {
                    return api_error(
                        503,
                        "TEMPORARILY_UNAVAILABLE",
                        "The service is temporarily unavailable. Please try again later.",
                    )
                }
                Fault::InternalErrorHtml => {
                    return ResponseTemplate::new(500).set_body_raw(
                        "<html><head><title>500 Internal Server Error</title></head><body><h1>Internal Server Error</h1><pre>upstream connect error or disconnect/reset before headers</pre></body></html>",
                        "text/html",
                    )
                }
                Fault::Status {
                    status,
                    error_code,
                    message,
                } => return api_error(status, &error_code, message),
                Fault::Delay(d) => {
                    return api_error(
                        504,
                        "DEADLINE_EXCEEDED",
                        "The request timed out before the service handled it.",
                    )
                    .set_delay(d)
                }
                Fault::ExpireTokens => self.expire_tokens(),
                Fault::StatementFailed {
                    error_code,
                    sql_state,
                    message,
                } => {
                    if matches!(endpoint, Endpoint::ExecuteStatement | Endpoint::GetStatement) {
                        if let Some(r) = self.authenticate(req) {
                            return r;
                        }
                        let id = if endpoint == Endpoint::GetStatement {
                            segs[4].clone()
                        } else {
                            self.new_statement_id()
                        };
                        if endpoint == Endpoint::ExecuteStatement {
                            let class = message
                                .strip_prefix('[')
                                .and_then(|m| m.split_once(']'))
                                .map(|(c, _)| c.to_string())
                                .unwrap_or_else(|| error_code.clone());
                            self.record_rejected(
                                req,
                                &id,
                                StatementOutcome::Failed {
                                    error_class: class,
                                    sql_state: sql_state.clone(),
                                    message: message.clone(),
                                },
                            );
                        }
                        return json_response(
                            200,
                            json!({
                                "statement_id": id,
                                "status": {
                                    "state": "FAILED",
                                    "sql_state": sql_state,
                                    "error": {"error_code": error_code, "message": message},
                                }
                            }),
                        );
                    }
                }
                Fault::ApplyThenDelay(d) => apply_then_delay = Some(d),
            }
        }
        let resp = match endpoint {
            Endpoint::Discovery => self.discovery(),
            Endpoint::Token => self.token(req),
            _ => match self.authenticate(req) {
                Some(r) => r,
                None => match endpoint {
                    Endpoint::ExecuteStatement => self.execute(req, apply_then_delay.is_some()),
                    Endpoint::GetStatement => self.poll(&segs[4]),
                    Endpoint::CancelStatement => self.cancel(&segs[4]),
                    Endpoint::ResultChunk => self.chunk(&segs[4], &segs[7]),
                    Endpoint::Warehouse => self.warehouse(&segs[4]),
                    Endpoint::RunNow => self.run_now(req),
                    Endpoint::UcGetTable => self.uc_table(&segs[4], segs.len() == 6),
                    Endpoint::UcListTables => self.uc_list(req),
                    Endpoint::UploadFile
                    | Endpoint::DownloadFile
                    | Endpoint::HeadFile
                    | Endpoint::DeleteFile
                    | Endpoint::ListDirectory
                    | Endpoint::CreateDirectory => self.files(endpoint, &segs, req),
                    _ => unreachable!("handled above"),
                },
            },
        };
        let latency = if endpoint == Endpoint::ExecuteStatement {
            self.lock().latency
        } else {
            None
        };
        match apply_then_delay.or(latency) {
            Some(d) => resp.set_delay(d),
            None => resp,
        }
    }

    fn discovery(&self) -> ResponseTemplate {
        if !self.config.oauth_enabled {
            return api_error(404, "NOT_FOUND", "OAuth is not enabled for this workspace.");
        }
        let base = self
            .base_url
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        json_response(
            200,
            json!({
                "authorization_endpoint": format!("{base}/oidc/v1/authorize"),
                "token_endpoint": format!("{base}/oidc/v1/token"),
                "issuer": format!("{base}/oidc"),
                "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token"],
                "scopes_supported": ["all-apis", "sql", "offline_access", "openid", "profile", "email"],
            }),
        )
    }

    fn token(&self, req: &Request) -> ResponseTemplate {
        let oauth_err = |status: u16, error: &str, desc: &str| {
            json_response(status, json!({"error": error, "error_description": desc}))
        };
        if !self.config.oauth_enabled {
            return oauth_err(404, "not_found", "OAuth is not enabled for this workspace");
        }
        let ct = req
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ct
            .to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
        {
            return oauth_err(
                400,
                "invalid_request",
                "Content-Type must be application/x-www-form-urlencoded",
            );
        }
        let form: HashMap<String, String> = url::form_urlencoded::parse(&req.body)
            .into_owned()
            .collect();
        // Credentials first, as an OAuth server does.
        let creds = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("basic").then_some(rest.trim())
            })
            .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .and_then(|raw| String::from_utf8(raw).ok());
        let ok = creds
            .as_deref()
            .and_then(|c| c.split_once(':'))
            .is_some_and(|(id, secret)| {
                id == self.config.client_id && secret == self.config.client_secret
            });
        if !ok {
            return oauth_err(401, "invalid_client", "Client authentication failed");
        }
        if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
            return oauth_err(
                400,
                "unsupported_grant_type",
                "grant_type must be client_credentials",
            );
        }
        let Some(scope) = form.get("scope").filter(|s| !s.trim().is_empty()) else {
            return oauth_err(400, "invalid_scope", "scope is required");
        };
        let now = self.clock.now();
        let mut st = self.lock();
        st.token_serial += 1;
        st.tokens_issued += 1;
        let token = format!("dbsi-{:06}-{:016x}", st.token_serial, fastrand::u64(..));
        st.tokens.insert(token.clone(), now + self.config.token_ttl);
        let ttl = self.config.token_ttl.as_secs();
        let expires_in = if self.config.expires_in_as_number {
            json!(ttl)
        } else {
            json!(ttl.to_string())
        };
        json_response(
            200,
            json!({"access_token": token, "expires_in": expires_in, "token_type": "Bearer", "scope": scope}),
        )
    }

    /// `None` when the bearer token is valid, else the 401 response.
    fn authenticate(&self, req: &Request) -> Option<ResponseTemplate> {
        let unauth = |m: &str| Some(api_error(401, "UNAUTHENTICATED", m));
        let Some(h) = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
        else {
            return unauth("Credential was not sent or was of an unsupported type for this API.");
        };
        let Some((scheme, token)) = h.split_once(' ') else {
            return unauth("Malformed Authorization header.");
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            return unauth("Credential was not sent or was of an unsupported type for this API.");
        }
        let token = token.trim();
        if self.config.pat.as_deref() == Some(token) {
            return None;
        }
        let now = self.clock.now();
        match self.lock().tokens.get(token) {
            Some(exp) if *exp > now => None,
            Some(_) => unauth("Token is expired."),
            None => unauth("Invalid access token."),
        }
    }

    fn new_statement_id(&self) -> String {
        let mut st = self.lock();
        st.statement_serial += 1;
        format!(
            "01f0{:04x}-{:04x}-{:04x}-{:04x}-{:012x}",
            (st.statement_serial >> 48) as u16,
            fastrand::u16(..),
            fastrand::u16(..),
            fastrand::u16(..),
            st.statement_serial & 0xffff_ffff_ffff
        )
    }

    fn record_rejected(&self, req: &Request, id: &str, outcome: StatementOutcome) {
        let body: Json = serde_json::from_slice(&req.body).unwrap_or(Json::Null);
        let rec = StatementRecord {
            statement_id: id.to_string(),
            sql: self.logged_sql(body["statement"].as_str().unwrap_or_default()),
            parameters: parse_param_records(&body),
            warehouse_id: body["warehouse_id"].as_str().map(str::to_string),
            catalog: body["catalog"].as_str().map(str::to_string),
            schema: body["schema"].as_str().map(str::to_string),
            outcome,
        };
        self.lock().statements.push(rec);
    }

    /// `run_now`: run the statement before answering even when the client asked not to wait
    /// ([`Fault::ApplyThenDelay`]).
    fn execute(&self, req: &Request, run_now: bool) -> ResponseTemplate {
        let body: Json = match serde_json::from_slice(&req.body) {
            Ok(b @ Json::Object(_)) => b,
            _ => {
                return api_error(
                    400,
                    "MALFORMED_REQUEST",
                    "Request body is not a JSON object.",
                )
            }
        };
        let Some(sql) = body["statement"].as_str() else {
            return api_error(400, "INVALID_PARAMETER_VALUE", "statement is required");
        };
        let reject = |status: u16, code: &str, msg: String| {
            let id = self.new_statement_id();
            self.record_rejected(
                req,
                &id,
                StatementOutcome::Rejected {
                    status,
                    error_code: code.to_string(),
                },
            );
            api_error(status, code, msg)
        };
        let Some(warehouse) = body["warehouse_id"].as_str() else {
            return reject(
                400,
                "INVALID_PARAMETER_VALUE",
                "warehouse_id is required".into(),
            );
        };
        if !self.lock().warehouses.contains_key(warehouse) {
            return reject(
                404,
                "RESOURCE_DOES_NOT_EXIST",
                format!("Warehouse {warehouse} does not exist."),
            );
        }
        if sql.len() > self.config.max_statement_bytes {
            return reject(
                400,
                "BAD_REQUEST",
                format!(
                    "The statement is {} bytes; the limit is {} bytes.",
                    sql.len(),
                    self.config.max_statement_bytes
                ),
            );
        }
        let raw_params = body["parameters"].as_array().cloned().unwrap_or_default();
        if raw_params.len() > self.config.max_parameters {
            return reject(
                400,
                "BAD_REQUEST",
                format!(
                    "Parameterized query has too many parameters: {} parameters were given but the limit is {}.",
                    raw_params.len(),
                    self.config.max_parameters
                ),
            );
        }
        let id = self.new_statement_id();
        // Decode parameters with cast semantics.
        let mut params = HashMap::new();
        let mut param_error = None;
        for p in &raw_params {
            let name = p["name"].as_str().unwrap_or_default().to_string();
            let type_text = p["type"].as_str().unwrap_or("STRING");
            let value = match &p["value"] {
                Json::Null => StandInValue::Null,
                Json::String(s) => StandInValue::String(s.clone()),
                other => StandInValue::String(other.to_string()),
            };
            let typed = match SqlType::parse(type_text) {
                Some(t) => cast(&value, t),
                None => Err(SqlFailure::new(
                    "UNSUPPORTED_DATATYPE",
                    "0A000",
                    format!("Unsupported parameter type \"{type_text}\"."),
                )),
            };
            match typed {
                Ok(v) => {
                    params.insert(name, v);
                }
                Err(e) => {
                    param_error.get_or_insert(e);
                }
            }
        }
        let catalog = body["catalog"]
            .as_str()
            .unwrap_or(&self.config.default_catalog)
            .to_string();
        let schema = body["schema"]
            .as_str()
            .unwrap_or(&self.config.default_schema)
            .to_string();
        let row_limit = body["row_limit"].as_u64();
        let wait_zero = matches!(body["wait_timeout"].as_str(), Some("0s" | "0"));
        let mut st = self.lock();
        let log_index = st.statements.len();
        st.statements.push(StatementRecord {
            statement_id: id.clone(),
            sql: self.logged_sql(sql),
            parameters: parse_param_records(&body),
            warehouse_id: Some(warehouse.to_string()),
            catalog: body["catalog"].as_str().map(str::to_string),
            schema: body["schema"].as_str().map(str::to_string),
            outcome: StatementOutcome::Pending,
        });
        // Synchronous statements run now; queued and hanging ones answer first.
        let (phase, first_state) = if st.hang_next > 0 {
            st.hang_next -= 1;
            (Phase::Hanging, Some("RUNNING"))
        } else if st.queued_next > 0 {
            st.queued_next -= 1;
            let running = st.queued_running_polls;
            (Phase::Queued { running }, Some("PENDING"))
        } else if wait_zero && !run_now {
            (Phase::Queued { running: 0 }, Some("PENDING"))
        } else {
            (Phase::Queued { running: 0 }, None)
        };
        let mut live = Live {
            log_index,
            phase,
            sql: sql.to_string(),
            params,
            catalog,
            schema,
            row_limit,
        };
        let resp = if let Some(e) = param_error {
            // Bad parameter values fail at once, whatever the wait.
            st.statements[log_index].outcome = outcome_of(&Err(e.clone()));
            live.phase = Phase::Done(Err(e));
            self.terminal_response(&id, &live.phase)
        } else if let Some(state) = first_state {
            json_response(200, json!({"statement_id": id, "status": {"state": state}}))
        } else {
            self.complete(&mut st, &mut live);
            self.terminal_response(&id, &live.phase)
        };
        st.live.insert(id, live);
        resp
    }

    /// The statement text as kept in the log (a prefix when
    /// [`StandInConfig::log_sql_prefix`] is set).
    fn logged_sql(&self, sql: &str) -> String {
        match self.config.log_sql_prefix {
            Some(n) if sql.len() > n => {
                let mut end = n;
                while !sql.is_char_boundary(end) {
                    end -= 1;
                }
                sql[..end].to_string()
            }
            _ => sql.to_string(),
        }
    }

    /// Executes a live statement and stores the outcome.
    fn complete(&self, st: &mut State, live: &mut Live) {
        let session = Session {
            catalog: &live.catalog,
            schema: &live.schema,
            params: &live.params,
            merge_duplicates: self.config.merge_duplicates,
            now_ms: chrono::Utc::now().timestamp_millis(),
        };
        let result = st.catalog.execute(&live.sql, &session).map(|out| {
            for t in &out.created {
                if self.config.uc_visibility_lag > 0 {
                    st.uc_hidden
                        .insert(t.clone(), self.config.uc_visibility_lag);
                }
            }
            let mut cells: Vec<Vec<Option<String>>> = out
                .rows
                .iter()
                .map(|r| r.iter().map(StandInValue::to_cell).collect())
                .collect();
            let mut truncated = false;
            if let Some(limit) = live.row_limit {
                if cells.len() as u64 > limit {
                    cells.truncate(limit as usize);
                    truncated = true;
                }
            }
            Arc::new(Stored {
                columns: out.columns,
                cells,
                truncated,
            })
        });
        st.statements[live.log_index].outcome = outcome_of(&result);
        live.phase = Phase::Done(result);
        live.sql = String::new();
        live.params = HashMap::new();
    }

    fn terminal_response(&self, id: &str, phase: &Phase) -> ResponseTemplate {
        match phase {
            Phase::Done(Ok(stored)) => json_response(200, self.success_body(id, stored)),
            Phase::Done(Err(f)) => json_response(200, failed_body(id, f, "BAD_REQUEST")),
            Phase::Canceled => json_response(
                200,
                json!({"statement_id": id, "status": {"state": "CANCELED"}}),
            ),
            Phase::Hanging | Phase::Queued { .. } => json_response(
                200,
                json!({"statement_id": id, "status": {"state": "RUNNING"}}),
            ),
        }
    }

    fn chunk_bounds(&self, stored: &Stored) -> Vec<(usize, usize)> {
        let per = self.config.rows_per_chunk.max(1);
        let n = stored.cells.len();
        (0..n.div_ceil(per))
            .map(|i| (i * per, ((i + 1) * per).min(n)))
            .collect()
    }

    fn chunk_json(&self, id: &str, stored: &Stored, index: usize) -> Json {
        let bounds = self.chunk_bounds(stored);
        let (from, to) = bounds[index];
        let mut r = json!({
            "chunk_index": index,
            "row_offset": from,
            "row_count": to - from,
            "data_array": stored.cells[from..to],
        });
        if index + 1 < bounds.len() {
            r["next_chunk_index"] = json!(index + 1);
            r["next_chunk_internal_link"] = json!(format!(
                "/api/2.0/sql/statements/{id}/result/chunks/{}",
                index + 1
            ));
        }
        r
    }

    fn success_body(&self, id: &str, stored: &Stored) -> Json {
        let columns: Vec<Json> = stored
            .columns
            .iter()
            .enumerate()
            .map(|(i, (name, t))| {
                let mut c = json!({
                    "name": name,
                    "position": i,
                    "type_name": t.type_name(),
                    "type_text": t.type_text().to_ascii_uppercase(),
                });
                if let SqlType::Decimal { precision, scale } = t {
                    c["type_precision"] = json!(precision);
                    c["type_scale"] = json!(scale);
                }
                c
            })
            .collect();
        let bounds = self.chunk_bounds(stored);
        let chunks: Vec<Json> = bounds
            .iter()
            .enumerate()
            .map(|(i, (from, to))| json!({"chunk_index": i, "row_offset": from, "row_count": to - from}))
            .collect();
        let result = if bounds.is_empty() {
            json!({})
        } else {
            self.chunk_json(id, stored, 0)
        };
        json!({
            "statement_id": id,
            "status": {"state": "SUCCEEDED"},
            "manifest": {
                "format": "JSON_ARRAY",
                "schema": {"column_count": columns.len(), "columns": columns},
                "total_chunk_count": bounds.len(),
                "chunks": chunks,
                "total_row_count": stored.cells.len(),
                "truncated": stored.truncated,
            },
            "result": result,
        })
    }

    fn poll(&self, id: &str) -> ResponseTemplate {
        let mut st = self.lock();
        let Some(mut live) = st.live.remove(id) else {
            return api_error(
                404,
                "RESOURCE_DOES_NOT_EXIST",
                format!("Statement {id} does not exist."),
            );
        };
        let resp = match &mut live.phase {
            Phase::Queued { running } => {
                if *running > 0 {
                    *running -= 1;
                    json_response(
                        200,
                        json!({"statement_id": id, "status": {"state": "RUNNING"}}),
                    )
                } else {
                    self.complete(&mut st, &mut live);
                    self.terminal_response(id, &live.phase)
                }
            }
            other => self.terminal_response(id, other),
        };
        st.live.insert(id.to_string(), live);
        resp
    }

    fn cancel(&self, id: &str) -> ResponseTemplate {
        let mut st = self.lock();
        let Some(live) = st.live.get_mut(id) else {
            return api_error(
                404,
                "RESOURCE_DOES_NOT_EXIST",
                format!("Statement {id} does not exist."),
            );
        };
        if matches!(live.phase, Phase::Hanging | Phase::Queued { .. }) {
            live.phase = Phase::Canceled;
            let i = live.log_index;
            st.statements[i].outcome = StatementOutcome::Canceled;
        }
        json_response(200, json!({}))
    }

    fn chunk(&self, id: &str, index: &str) -> ResponseTemplate {
        let st = self.lock();
        let Some(live) = st.live.get(id) else {
            return api_error(
                404,
                "RESOURCE_DOES_NOT_EXIST",
                format!("Statement {id} does not exist."),
            );
        };
        let Phase::Done(Ok(stored)) = &live.phase else {
            return api_error(
                400,
                "INVALID_STATE",
                format!("Statement {id} has no result."),
            );
        };
        let stored = stored.clone();
        drop(st);
        match index.parse::<usize>() {
            Ok(i) if i < self.chunk_bounds(&stored).len() => {
                json_response(200, self.chunk_json(id, &stored, i))
            }
            _ => api_error(
                400,
                "INVALID_PARAMETER_VALUE",
                format!("Chunk index {index} is out of range."),
            ),
        }
    }

    fn warehouse(&self, id: &str) -> ResponseTemplate {
        match self.lock().warehouses.get(id) {
            Some(state) => json_response(
                200,
                json!({"id": id, "name": format!("stand-in warehouse {id}"), "state": state, "cluster_size": "2X-Small", "warehouse_type": "PRO", "enable_serverless_compute": true}),
            ),
            None => api_error(
                404,
                "RESOURCE_DOES_NOT_EXIST",
                format!("Warehouse {id} does not exist."),
            ),
        }
    }

    fn run_now(&self, req: &Request) -> ResponseTemplate {
        let body: Json = match serde_json::from_slice(&req.body) {
            Ok(b @ Json::Object(_)) => b,
            _ => {
                return api_error(
                    400,
                    "MALFORMED_REQUEST",
                    "Request body is not a JSON object.",
                )
            }
        };
        let mut st = self.lock();
        st.run_now_calls += 1;
        let Some(job_id) = body["job_id"].as_i64() else {
            return api_error(400, "INVALID_PARAMETER_VALUE", "job_id is required");
        };
        if !self.config.jobs.is_empty() && !self.config.jobs.contains(&job_id) {
            return api_error(
                400,
                "INVALID_PARAMETER_VALUE",
                format!("Job {job_id} does not exist."),
            );
        }
        let token = body["idempotency_token"].as_str().map(str::to_string);
        if token.as_ref().is_some_and(|t| t.chars().count() > 64) {
            return api_error(
                400,
                "INVALID_PARAMETER_VALUE",
                "idempotency_token must be at most 64 characters",
            );
        }
        let params_json = body.get("job_parameters").cloned().unwrap_or(json!({}));
        if params_json.to_string().len() > 10_000 {
            return api_error(
                400,
                "INVALID_PARAMETER_VALUE",
                "job_parameters exceed 10000 bytes",
            );
        }
        if let Some(t) = &token {
            if let Some(&i) = st.idempotency.get(&format!("{job_id}/{t}")) {
                st.job_runs[i].requests += 1;
                let r = &st.job_runs[i];
                return json_response(
                    200,
                    json!({"run_id": r.run_id, "number_in_job": r.number_in_job}),
                );
            }
        }
        let number_in_job = st.job_runs.iter().filter(|r| r.job_id == job_id).count() as i64 + 1;
        let run_id = 1_000_000 + st.job_runs.len() as i64 + 1;
        let job_parameters = params_json
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string()),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if let Some(t) = &token {
            let i = st.job_runs.len();
            st.idempotency.insert(format!("{job_id}/{t}"), i);
        }
        st.job_runs.push(JobRunRecord {
            run_id,
            job_id,
            number_in_job,
            job_parameters,
            idempotency_token: token,
            requests: 1,
        });
        json_response(
            200,
            json!({"run_id": run_id, "number_in_job": number_in_job}),
        )
    }

    /// The Files API on volumes.
    fn files(&self, endpoint: Endpoint, segs: &[String], req: &Request) -> ResponseTemplate {
        let path = format!("/{}", segs[4..].join("/"));
        let mut st = self.lock();
        if st.deny_files {
            return api_error(
                403,
                "PERMISSION_DENIED",
                format!("User does not have READ VOLUME and WRITE VOLUME on the volume of {path}."),
            );
        }
        let Some((c, s, v, rel)) = split_volume_path(&path) else {
            return api_error(
                400,
                "INVALID_PARAMETER_VALUE",
                format!(
                    "Invalid path {path}: it must start with /Volumes/<catalog>/<schema>/<volume>."
                ),
            );
        };
        let now_ms = chrono::Utc::now().timestamp_millis();
        let root = format!("/Volumes/{c}/{s}/{v}");
        let Some(vol) = st
            .catalog
            .volumes
            .get_mut(&(c.clone(), s.clone(), v.clone()))
        else {
            return api_error(
                404,
                "RESOURCE_DOES_NOT_EXIST",
                format!("Volume '{c}.{s}.{v}' does not exist."),
            );
        };
        let not_found = || {
            api_error(
                404,
                "NOT_FOUND",
                format!("The file or directory {path} does not exist."),
            )
        };
        match endpoint {
            Endpoint::UploadFile => {
                if rel.is_empty() || vol.is_dir(&rel) {
                    return api_error(
                        400,
                        "INVALID_PARAMETER_VALUE",
                        format!("{path} is a directory."),
                    );
                }
                let q: HashMap<String, String> = req.url.query_pairs().into_owned().collect();
                let overwrite = q.get("overwrite").is_none_or(|v| v == "true");
                if !overwrite && vol.files.contains_key(&rel) {
                    return api_error(
                        409,
                        "ALREADY_EXISTS",
                        format!("The file {path} already exists."),
                    );
                }
                vol.files.insert(
                    rel,
                    StoredFile {
                        data: req.body.clone(),
                        modified_ms: now_ms,
                    },
                );
                let content_type = req
                    .headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                st.uploads.push(UploadRecord {
                    path,
                    content_type,
                    data: req.body.clone(),
                });
                ResponseTemplate::new(204)
            }
            Endpoint::DownloadFile => match vol.files.get(&rel) {
                Some(f) => ResponseTemplate::new(200)
                    .set_body_raw(f.data.clone(), "application/octet-stream"),
                None => not_found(),
            },
            Endpoint::HeadFile => match vol.files.get(&rel) {
                Some(f) => ResponseTemplate::new(200)
                    .insert_header("content-length", f.data.len().to_string().as_str())
                    .insert_header("content-type", "application/octet-stream"),
                None => ResponseTemplate::new(404),
            },
            Endpoint::DeleteFile => match vol.files.remove(&rel) {
                Some(_) => ResponseTemplate::new(204),
                None => not_found(),
            },
            Endpoint::CreateDirectory => {
                if !rel.is_empty() {
                    vol.dirs.insert(rel);
                }
                ResponseTemplate::new(204)
            }
            Endpoint::ListDirectory => {
                if !vol.is_dir(&rel) {
                    return not_found();
                }
                let q: HashMap<String, String> = req.url.query_pairs().into_owned().collect();
                let page = q
                    .get("page_size")
                    .and_then(|p| p.parse::<usize>().ok())
                    .filter(|&p| p > 0)
                    .unwrap_or(self.config.files_page_size)
                    .min(self.config.files_page_size);
                let offset: usize = match q.get("page_token") {
                    None => 0,
                    Some(t) => match t.strip_prefix('f').and_then(|o| o.parse().ok()) {
                        Some(o) => o,
                        None => {
                            return api_error(400, "INVALID_PARAMETER_VALUE", "Invalid page_token")
                        }
                    },
                };
                let base = if rel.is_empty() {
                    root
                } else {
                    format!("{root}/{rel}")
                };
                let children = vol.children(&rel);
                let contents: Vec<Json> = children
                    .iter()
                    .skip(offset)
                    .take(page)
                    .map(|(name, meta)| match meta {
                        Some((size, modified)) => json!({
                            "path": format!("{base}/{name}"),
                            "is_directory": false,
                            "file_size": size,
                            "last_modified": modified,
                            "name": name,
                        }),
                        None => json!({
                            "path": format!("{base}/{name}/"),
                            "is_directory": true,
                            "name": name,
                        }),
                    })
                    .collect();
                let mut body = json!({"contents": contents});
                if offset + page < children.len() {
                    body["next_page_token"] = json!(format!("f{}", offset + page));
                }
                json_response(200, body)
            }
            _ => unreachable!("files endpoints only"),
        }
    }

    fn table_info(&self, t: &super::engine::Table) -> Json {
        let columns: Vec<Json> = t
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut j = json!({
                    "name": c.name,
                    "type_text": c.sql_type.type_text(),
                    "type_name": c.sql_type.type_name(),
                    "type_json": json!({"name": c.name, "type": c.sql_type.type_text(), "nullable": c.nullable, "metadata": {}}).to_string(),
                    "position": i,
                    "nullable": c.nullable,
                });
                if let SqlType::Decimal { precision, scale } = c.sql_type {
                    j["type_precision"] = json!(precision);
                    j["type_scale"] = json!(scale);
                }
                j
            })
            .collect();
        json!({
            "name": t.name,
            "catalog_name": t.catalog,
            "schema_name": t.schema,
            "full_name": t.full_name(),
            "table_type": "MANAGED",
            "data_source_format": "DELTA",
            "columns": columns,
            "storage_location": format!("s3://stand-in-metastore/tables/{}", t.table_id),
            "owner": "stand-in@example.invalid",
            "table_id": t.table_id,
            "created_at": t.created_at_ms,
            "updated_at": t.updated_at_ms,
            "properties": {"delta.minReaderVersion": "1", "delta.minWriterVersion": "2"},
        })
    }

    fn uc_table(&self, full_name: &str, exists_only: bool) -> ResponseTemplate {
        let lower = full_name.to_ascii_lowercase();
        let mut st = self.lock();
        let parts: Vec<&str> = lower.split('.').collect();
        let found = match parts.as_slice() {
            [c, s, t] => st.catalog.table(c, s, t).is_some(),
            _ => false,
        };
        let hidden = match st.uc_hidden.get_mut(&lower) {
            Some(n) if *n > 0 && found => {
                *n -= 1;
                true
            }
            _ => false,
        };
        if exists_only {
            return json_response(200, json!({"table_exists": found && !hidden}));
        }
        if !found || hidden {
            return api_error(
                404,
                "TABLE_DOES_NOT_EXIST",
                format!("Table '{full_name}' does not exist."),
            );
        }
        let t = st
            .catalog
            .table(parts[0], parts[1], parts[2])
            .expect("found");
        json_response(200, self.table_info(t))
    }

    fn uc_list(&self, req: &Request) -> ResponseTemplate {
        let q: HashMap<String, String> = req.url.query_pairs().into_owned().collect();
        let (Some(c), Some(s)) = (q.get("catalog_name"), q.get("schema_name")) else {
            return api_error(
                400,
                "INVALID_PARAMETER_VALUE",
                "catalog_name and schema_name are required",
            );
        };
        let (c, s) = (c.to_ascii_lowercase(), s.to_ascii_lowercase());
        let st = self.lock();
        let Some(schema) = st.catalog.catalogs.get(&c).and_then(|x| x.get(&s)) else {
            return api_error(
                404,
                "SCHEMA_DOES_NOT_EXIST",
                format!("Schema '{c}.{s}' does not exist."),
            );
        };
        let max = q
            .get("max_results")
            .and_then(|m| m.parse::<usize>().ok())
            .filter(|&m| m > 0)
            .unwrap_or(self.config.uc_page_size)
            .max(1);
        let token = q.get("page_token").map(String::as_str).unwrap_or("");
        let omit_columns = q.get("omit_columns").is_some_and(|v| v == "true");
        let empty_page =
            |next: String| json_response(200, json!({"tables": [], "next_page_token": next}));
        let offset: usize = if token.is_empty() {
            if self.config.uc_empty_pages {
                return empty_page("p0".into());
            }
            0
        } else if let Some(o) = token.strip_prefix('e') {
            return empty_page(format!("p{o}"));
        } else if let Some(o) = token.strip_prefix('p').and_then(|o| o.parse().ok()) {
            o
        } else {
            return api_error(400, "INVALID_PARAMETER_VALUE", "Invalid page_token");
        };
        let all: Vec<&super::engine::Table> = schema.values().collect();
        let page: Vec<Json> = all
            .iter()
            .skip(offset)
            .take(max)
            .map(|t| {
                let mut j = self.table_info(t);
                if omit_columns {
                    j.as_object_mut().map(|o| o.remove("columns"));
                }
                j
            })
            .collect();
        let next = offset.saturating_add(max);
        let mut body = json!({"tables": page});
        if next < all.len() {
            let prefix = if self.config.uc_empty_pages { 'e' } else { 'p' };
            body["next_page_token"] = json!(format!("{prefix}{next}"));
        }
        json_response(200, body)
    }
}

fn parse_param_records(body: &Json) -> Vec<ParameterRecord> {
    body["parameters"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| ParameterRecord {
                    name: p["name"].as_str().unwrap_or_default().to_string(),
                    value: p["value"].as_str().map(str::to_string),
                    sql_type: p["type"].as_str().map(str::to_string),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn outcome_of(r: &Result<Arc<Stored>, SqlFailure>) -> StatementOutcome {
    match r {
        Ok(s) => StatementOutcome::Succeeded {
            rows: s.cells.len() as u64,
        },
        Err(f) => StatementOutcome::Failed {
            error_class: f.error_class.clone(),
            sql_state: f.sql_state.clone(),
            message: f.message.clone(),
        },
    }
}
