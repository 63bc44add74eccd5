//! [`CirtStandIn`]: an in-process PeopleSoft **Component Interface REST** (CIRT) stand-in for
//! the write-back direction (Databricks → PeopleSoft), on `127.0.0.1`.
//!
//! It serves the vendor and customer masters of a [`SharedDataset`] (tables
//! [`TABLE_VENDORS`] and [`TABLE_CUSTOMERS`]) through the service operations PeopleTools
//! generates for a CI (`CIRT_<CI>_G_GET`, `_C_POST`, `_U_PUT`, `_UD_PUT`), with the URL
//! templates and the flat JSON payload that peoplesoft-client's
//! `CiTarget::cirt(ci, 1, keys)` with the default `PayloadShape` uses:
//!
//! ```text
//! GET  /PSIGW/RESTListeningConnector/{NODE}/CIRT_VNDR_ID_G_GET.v1/{SETID}/{VENDOR_ID}
//!      (or …_G_GET.v1?SETID=..&VENDOR_ID=..)
//!   → 200 {"SETID":"SHARE","VENDOR_ID":"0000000007","NAME1":"…",…,
//!          "LASTUPDDTTM":"2026-11-01-00.20.00.000000","LASTUPDOPRID":"VP1"}
//!   → not found: 200 <IBResponse type="error">…<DefaultMessage>No matching values were
//!     found. …</DefaultMessage>… (or 404, see [`CirtConfig::not_found_status`])
//! POST /PSIGW/RESTListeningConnector/{NODE}/CIRT_VNDR_ID_C_POST.v1   body {"SETID":..,"VENDOR_ID":..,"NAME1":..,…}
//! PUT  /PSIGW/RESTListeningConnector/{NODE}/CIRT_VNDR_ID_U_PUT.v1    (same body; `_UD_PUT` too)
//!   → 200 with the record as a Get returns it after the save
//!   → validation error: 200 <IBResponse type="error">…<DefaultMessage>…</DefaultMessage>…
//! ```
//!
//! **CIs.** Vendors are served as CI [`VENDOR_CI`] (`VNDR_ID`, the delivered vendor CI that
//! Oracle's vendor integration point uses; keys SETID, VENDOR_ID). For customers this stand-in
//! **chooses** [`CUSTOMER_CI`] (`CUST_GENERAL`, keys SETID, CUST_ID): the delivered customer
//! CI name varies by release and is not confirmed (see `peoplesoft-facts.md` §5). Both names,
//! the node and the version are settings of [`CirtConfig`].
//!
//! **Fields** are the record's fields in the dataset ([`TableSpec::fields`]) plus
//! `LASTUPDOPRID`. `LASTUPDDTTM` (the dataset's cursor) and `LASTUPDOPRID` are maintained by
//! "PeopleSoft": a Create or an Update that changes something sets `LASTUPDDTTM` to the
//! stand-in clock's time (strictly increasing, site-local native text
//! `YYYY-MM-DD-HH.MM.SS.ffffff`, zone [`SITE_TIME_ZONE_NAME`](crate::SITE_TIME_ZONE_NAME))
//! and `LASTUPDOPRID` to the caller's OPRID (the HTTP Basic user). Both are ignored in
//! request bodies, as are the cursor-date fields the dataset keeps in step
//! (`LAST_ACTIVITY_DT`, `CUST_STATUS_DT`). Because the records live in the shared dataset,
//! a [`PeopleSoftServer`](crate::PeopleSoftServer) serving the same dataset shows every
//! write-back (and every [`CirtStandIn::edit`]) to the forward sync, with its new cursor.
//! Seed records carry `LASTUPDOPRID` [`CirtConfig::seed_oprid`].
//!
//! **Values.** Character fields are stored as sent (a blank or `null` becomes PeopleSoft's
//! single space `" "`) and must fit the field length (in characters); numbers may be JSON
//! numbers or decimal strings and are stored in the table's wire form; dates are
//! `YYYY-MM-DD`; `Y`/`N` flags (`WTHD_SW`) only `Y` or `N`.
//!
//! **Validation** (errors answer HTTP **200** with an `<IBResponse type="error">` body, as
//! real gateways do; the message sets are illustrative):
//! - a value longer than its field (e.g. `NAME1` over 40 characters);
//! - a value outside the translate values: `VENDOR_STATUS` A/D/E/I/X, `VENDOR_CLASS` R/E/H,
//!   `CUST_STATUS` A/I/T, `WTHD_SW` Y/N ("Invalid value -- press the prompt button or
//!   hyperlink for a list of valid values (15,11)");
//! - `NAME1` blank ("Name 1 is required.");
//! - a field the CI does not have, a body that is not a JSON object, missing keys, a Create
//!   of an existing key, an Update of a missing one.
//!
//! **Other answers**: a path outside `/PSIGW/RESTListeningConnector/` → 404; an unknown
//! node or service operation (or a method that does not fit the operation) → 200 with an
//! IBResponse error; bad or missing Basic credentials → 401 (checked after the node, as the
//! gateway does). Every request is recorded ([`CirtStandIn::requests`]) with method, path,
//! OPRID, body and status, so a test can assert "no POST/PUT was sent".
//!
//! ```
//! use ml_connector_testkit::cirt::{CirtStandIn, CIRT_OPRID};
//! use ml_connector_testkit::Dataset;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let cirt = CirtStandIn::start(Dataset::manufacturer(42, 0.1)).await;
//! let v = cirt.vendor("0000000007").unwrap();
//! assert_eq!(v["LASTUPDOPRID"], "VP1");
//! // A PeopleSoft user changes the vendor's name online.
//! cirt.edit_vendor("0000000007", &[("NAME1", "Renamed Online Inc.".into())], "JSMITH")
//!     .unwrap();
//! assert_eq!(cirt.vendor("0000000007").unwrap()["LASTUPDOPRID"], "JSMITH");
//! assert!(cirt.get_url(cirt.vendor_ci(), &["SHARE", "0000000007"])
//!     .ends_with("/CIRT_VNDR_ID_G_GET.v1/SHARE/0000000007"));
//! assert_eq!(cirt.write_count(), 0);
//! # let _ = CIRT_OPRID;
//! # }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine as _;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{Map, Value as Json};
use sync_core::{Clock, SystemClock};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::dataset::{
    FieldType, JsonRepr, Row, SharedDataset, TableSpec, SETID, TABLE_CUSTOMERS, TABLE_VENDORS,
};
use crate::peoplesoft::{DEFAULT_NODE, REST_PATH};
use crate::sitetime;

/// The vendor component interface (the delivered Vendor Information CI).
pub const VENDOR_CI: &str = "VNDR_ID";
/// The customer component interface this stand-in serves (a choice; see the module docs).
pub const CUSTOMER_CI: &str = "CUST_GENERAL";
/// The default write-back OPRID accepted with HTTP Basic authentication. It is also the
/// integration identity the examples use for echo suppression.
pub const CIRT_OPRID: &str = "MLC_SYNC";
/// The default password of [`CIRT_OPRID`].
pub const CIRT_PASSWORD: &str = "testkit-cirt-password";
/// The `LASTUPDOPRID` of records nobody changed through the stand-in yet.
pub const SEED_OPRID: &str = "VP1";
/// The message a Get answers for a key that does not exist (the sink's default "not found"
/// substrings recognise it).
pub const NOT_FOUND_MESSAGE: &str = "No matching values were found.";
/// The field carrying the OPRID of the last change.
pub const LASTUPDOPRID: &str = "LASTUPDOPRID";

/// Settings of a [`CirtStandIn`]. Start from [`CirtConfig::default`] and change fields.
#[derive(Clone)]
pub struct CirtConfig {
    /// The node name in the URL ([`DEFAULT_NODE`]).
    pub node: String,
    /// Accepted OPRID → password pairs (default: [`CIRT_OPRID`] / [`CIRT_PASSWORD`]).
    pub users: BTreeMap<String, String>,
    /// The vendor CI name ([`VENDOR_CI`]).
    pub vendor_ci: String,
    /// The customer CI name ([`CUSTOMER_CI`]).
    pub customer_ci: String,
    /// The service operation version (`.v1`).
    pub version: u32,
    /// `LASTUPDOPRID` of untouched records ([`SEED_OPRID`]).
    pub seed_oprid: String,
    /// HTTP status of the Get "not found" answer: 200 (an IBResponse error carrying
    /// [`NOT_FOUND_MESSAGE`], the default) or 404 (the same body).
    pub not_found_status: u16,
    /// The clock that stamps `LASTUPDDTTM` (default: the system clock). Share the
    /// pipeline's `ManualClock` to keep stamps next to the engine's notion of "now".
    pub clock: Arc<dyn Clock>,
    /// A QAS stand-in ([`PeopleSoftServer::addr`](crate::PeopleSoftServer::addr)) that
    /// receives every request for a service operation other than `CIRT_*` (ExecuteQuery,
    /// QueryPrompts, …), unchanged, credentials included: one host then serves both
    /// directions as a real gateway does, so one client (one credential latch) reaches both.
    /// Passed-through requests are not recorded. Default: none (they get an IBResponse
    /// error).
    pub qas_upstream: Option<std::net::SocketAddr>,
}

impl Default for CirtConfig {
    fn default() -> Self {
        CirtConfig {
            node: DEFAULT_NODE.into(),
            users: [(CIRT_OPRID.to_string(), CIRT_PASSWORD.to_string())].into(),
            vendor_ci: VENDOR_CI.into(),
            customer_ci: CUSTOMER_CI.into(),
            version: 1,
            seed_oprid: SEED_OPRID.into(),
            not_found_status: 200,
            clock: Arc::new(SystemClock),
            qas_upstream: None,
        }
    }
}

impl fmt::Debug for CirtConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CirtConfig")
            .field("node", &self.node)
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field("vendor_ci", &self.vendor_ci)
            .field("customer_ci", &self.customer_ci)
            .field("version", &self.version)
            .field("seed_oprid", &self.seed_oprid)
            .field("not_found_status", &self.not_found_status)
            .field("qas_upstream", &self.qas_upstream)
            .finish_non_exhaustive()
    }
}

/// One request the stand-in received, in arrival order.
#[derive(Debug, Clone, PartialEq)]
pub struct CirtRequest {
    /// `GET`, `POST`, `PUT`, …
    pub method: String,
    /// The URL path (percent-encoded as received), e.g.
    /// `/PSIGW/RESTListeningConnector/PSFT_EP/CIRT_VNDR_ID_U_PUT.v1`.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// The Basic-authentication user, when a Basic header was sent (even a wrong one).
    pub oprid: Option<String>,
    /// The JSON body, when there was one and it parsed.
    pub body: Option<Json>,
    /// The HTTP status answered.
    pub status: u16,
    /// The IBResponse `DefaultMessage` answered, for error answers.
    pub error: Option<String>,
}

impl CirtRequest {
    /// True for POST and PUT (the requests that can change PeopleSoft).
    pub fn is_write(&self) -> bool {
        matches!(self.method.as_str(), "POST" | "PUT")
    }
}

/// The CIRT stand-in server. Dropping it stops the server. See the [module docs](self).
pub struct CirtStandIn {
    server: MockServer,
    shared: Arc<Shared>,
}

impl fmt::Debug for CirtStandIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CirtStandIn")
            .field("uri", &self.server.uri())
            .field("config", &self.shared.config)
            .finish()
    }
}

impl CirtStandIn {
    /// Starts a stand-in over `dataset` with [`CirtConfig::default`]. Pass the
    /// [`SharedDataset`] of a [`PeopleSoftServer`](crate::PeopleSoftServer) to serve the same
    /// records over QAS and CIRT. Must be called inside a tokio runtime.
    pub async fn start(dataset: impl Into<SharedDataset>) -> Self {
        Self::start_with(dataset, CirtConfig::default()).await
    }

    /// Starts a stand-in with `config`.
    pub async fn start_with(dataset: impl Into<SharedDataset>, config: CirtConfig) -> Self {
        let shared = Arc::new(Shared {
            dataset: dataset.into(),
            config,
            state: Mutex::new(State::default()),
        });
        let server = MockServer::builder()
            .disable_request_recording()
            .start()
            .await;
        Mock::given(wiremock::matchers::any())
            .respond_with(Handler(shared.clone()))
            .mount(&server)
            .await;
        CirtStandIn { server, shared }
    }

    /// `http://127.0.0.1:<port>` (no trailing slash).
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// `127.0.0.1`.
    pub fn host(&self) -> String {
        self.server.address().ip().to_string()
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.server.address().port()
    }

    /// The node name.
    pub fn node(&self) -> &str {
        &self.shared.config.node
    }

    /// The node's REST base URL, `http://127.0.0.1:<port>/PSIGW/RESTListeningConnector/<NODE>/`.
    pub fn base_url(&self) -> String {
        format!("{}{REST_PATH}/{}/", self.uri(), self.shared.config.node)
    }

    /// The configured vendor CI name.
    pub fn vendor_ci(&self) -> &str {
        &self.shared.config.vendor_ci
    }

    /// The configured customer CI name.
    pub fn customer_ci(&self) -> &str {
        &self.shared.config.customer_ci
    }

    /// The service operation version.
    pub fn version(&self) -> u32 {
        self.shared.config.version
    }

    /// The dataset the records live in (shared: changes are visible both ways).
    pub fn dataset(&self) -> SharedDataset {
        self.shared.dataset.clone()
    }

    /// The Get URL of a record (`key` values in key order), as the sink builds it.
    pub fn get_url(&self, ci: &str, key: &[&str]) -> String {
        let mut url = format!(
            "{}CIRT_{ci}_G_GET.v{}",
            self.base_url(),
            self.shared.config.version
        );
        for k in key {
            url.push('/');
            url.push_str(&encode_segment(k));
        }
        url
    }

    /// A record as a Get returns it (every CI field plus `LASTUPDOPRID`), or `None`.
    pub fn record(&self, ci: &str, key: &[&str]) -> Option<Map<String, Json>> {
        let table = self.shared.table_of(ci)?;
        let d = self.shared.dataset.read();
        let row = d.table(table)?.get(key)?;
        Some(self.shared.render(table, row))
    }

    /// A vendor of SETID `SHARE` as a Get returns it.
    pub fn vendor(&self, vendor_id: &str) -> Option<Map<String, Json>> {
        self.record(&self.shared.config.vendor_ci, &[SETID, vendor_id])
    }

    /// A customer of SETID `SHARE` as a Get returns it.
    pub fn customer(&self, cust_id: &str) -> Option<Map<String, Json>> {
        self.record(&self.shared.config.customer_ci, &[SETID, cust_id])
    }

    /// A PeopleSoft user changes a record online: the same validation as an Update, then
    /// `LASTUPDDTTM` is bumped and `LASTUPDOPRID` set to `oprid`. Returns the new
    /// `LASTUPDDTTM` text, or the PeopleSoft error message. Nothing is recorded as a request.
    pub fn edit(
        &self,
        ci: &str,
        key: &[&str],
        changes: &[(&str, Json)],
        oprid: &str,
    ) -> Result<String, String> {
        let table = self
            .shared
            .table_of(ci)
            .ok_or_else(|| format!("no component interface `{ci}`"))?;
        let mut body = Map::new();
        let spec = self.shared.spec(table).ok_or("no such table")?;
        for (k, v) in spec.key.iter().zip(key) {
            body.insert(k.clone(), Json::String((*v).to_string()));
        }
        for (f, v) in changes {
            body.insert((*f).to_string(), v.clone());
        }
        match self.shared.write(table, &body, oprid, Op::Update) {
            Ok(map) => Ok(map
                .get(&spec.cursor)
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_string()),
            Err(e) => Err(e.message),
        }
    }

    /// [`edit`](Self::edit) of a vendor of SETID `SHARE`.
    pub fn edit_vendor(
        &self,
        vendor_id: &str,
        changes: &[(&str, Json)],
        oprid: &str,
    ) -> Result<String, String> {
        let ci = self.shared.config.vendor_ci.clone();
        self.edit(&ci, &[SETID, vendor_id], changes, oprid)
    }

    /// [`edit`](Self::edit) of a customer of SETID `SHARE`.
    pub fn edit_customer(
        &self,
        cust_id: &str,
        changes: &[(&str, Json)],
        oprid: &str,
    ) -> Result<String, String> {
        let ci = self.shared.config.customer_ci.clone();
        self.edit(&ci, &[SETID, cust_id], changes, oprid)
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<CirtRequest> {
        self.shared.lock().requests.clone()
    }

    /// Requests received with `method` (`"GET"`, `"POST"`, `"PUT"`).
    pub fn count(&self, method: &str) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method))
            .count()
    }

    /// POST and PUT requests received (accepted or not).
    pub fn write_count(&self) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.is_write())
            .count()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// The next `times` Create/Update requests whose body has a key field equal to
    /// `key_value` answer **502** with a gateway HTML page (a transient failure). With
    /// `applied`, the write is saved first and only the answer is lost (a timed-out write
    /// that did reach PeopleSoft); otherwise nothing is saved.
    pub fn fail_write(&self, key_value: &str, times: u32, applied: bool) {
        self.shared.lock().write_faults.push(WriteFault {
            key_value: key_value.to_string(),
            remaining: times,
            applied,
        });
    }
}

/// A programmed failure of Create/Update requests for one key ([`CirtStandIn::fail_write`]).
#[derive(Debug, Clone)]
struct WriteFault {
    key_value: String,
    remaining: u32,
    applied: bool,
}

fn gateway_page() -> ResponseTemplate {
    ResponseTemplate::new(502).set_body_raw(
        b"<html><body><h1>502 Bad Gateway</h1>The proxy server received an invalid response.</body></html>".to_vec(),
        "text/html",
    )
}

/// Percent-encodes one path segment (unreserved characters stay).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Sends `req` to the QAS stand-in at `upstream` (HTTP/1.1, one connection per request) and
/// answers with its status, content type and body; a 502 page when it cannot be reached.
fn pass_through(upstream: std::net::SocketAddr, req: &Request) -> ResponseTemplate {
    use std::io::{Read, Write};
    let target = match req.url.query() {
        Some(q) => format!("{}?{q}", req.url.path()),
        None => req.url.path().to_string(),
    };
    let mut head = format!(
        "{} {target} HTTP/1.1\r\nHost: {upstream}\r\nConnection: close\r\nContent-Length: {}\r\n",
        req.method.as_str(),
        req.body.len()
    );
    for (name, value) in req.headers.iter() {
        let name = name.as_str();
        if ["authorization", "accept", "content-type"].contains(&name) {
            if let Ok(v) = value.to_str() {
                head.push_str(&format!("{name}: {v}\r\n"));
            }
        }
    }
    head.push_str("\r\n");
    let answer = (|| -> std::io::Result<Vec<u8>> {
        let mut stream = std::net::TcpStream::connect(upstream)?;
        stream.write_all(head.as_bytes())?;
        stream.write_all(&req.body)?;
        let mut out = Vec::new();
        stream.read_to_end(&mut out)?;
        Ok(out)
    })();
    let bad_gateway = |why: String| {
        ResponseTemplate::new(502).set_body_raw(
            format!("<html><body><h1>502 Bad Gateway</h1>{why}</body></html>").into_bytes(),
            "text/html",
        )
    };
    let raw = match answer {
        Ok(raw) => raw,
        Err(e) => return bad_gateway(e.to_string()),
    };
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return bad_gateway("no HTTP head from the QAS stand-in".into());
    };
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok())
        .unwrap_or(502);
    let mut content_type = "application/json".to_string();
    let mut template = ResponseTemplate::new(status);
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim(), v.trim());
            if k.eq_ignore_ascii_case("content-type") {
                content_type = v.to_string();
            } else if k.eq_ignore_ascii_case("www-authenticate")
                || k.eq_ignore_ascii_case("retry-after")
            {
                template = template.insert_header(k, v);
            }
        }
    }
    template.set_body_raw(body, content_type.as_str())
}

/// Percent-decodes (no `+` → space: this is a path or a query value encoded like one).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Default)]
struct State {
    requests: Vec<CirtRequest>,
    /// `LASTUPDOPRID` per (table, key) of records changed through the stand-in.
    oprids: HashMap<(String, Vec<String>), String>,
    /// The last stamp issued (stamps strictly increase).
    last_stamp: Option<DateTime<Utc>>,
    /// Programmed write failures.
    write_faults: Vec<WriteFault>,
}

struct Shared {
    dataset: SharedDataset,
    config: CirtConfig,
    state: Mutex<State>,
}

struct Handler(Arc<Shared>);

impl Respond for Handler {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.0.handle(request)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Get,
    Create,
    Update,
}

/// A PeopleSoft error: IBResponse message set, message id, text.
#[derive(Debug)]
struct PsError {
    set: u32,
    id: u32,
    message: String,
}

impl PsError {
    fn new(set: u32, id: u32, message: impl Into<String>) -> Self {
        PsError {
            set,
            id,
            message: message.into(),
        }
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn ib_error(status: u16, e: &PsError) -> ResponseTemplate {
    let body = format!(
        "<?xml version=\"1.0\"?>\n<IBResponse type=\"error\">\n  <DefaultTitle>Integration Broker Response</DefaultTitle>\n  <StatusCode>20</StatusCode>\n  <MessageSet>{}</MessageSet>\n  <MessageID>{}</MessageID>\n  <DefaultMessage>{}</DefaultMessage>\n  <MessageParameters/>\n</IBResponse>\n",
        e.set,
        e.id,
        xml_escape(&e.message)
    );
    ResponseTemplate::new(status).set_body_raw(body.into_bytes(), "text/xml")
}

fn json_ok(map: Map<String, Json>) -> ResponseTemplate {
    let body = serde_json::to_vec(&Json::Object(map)).unwrap_or_default();
    ResponseTemplate::new(200).set_body_raw(body, "application/json")
}

/// Translate values of the fields this stand-in edits.
fn allowed_values(field: &str) -> Option<&'static [&'static str]> {
    Some(match field {
        "VENDOR_STATUS" => &["A", "D", "E", "I", "X"],
        "VENDOR_CLASS" => &["R", "E", "H"],
        "CUST_STATUS" => &["A", "I", "T"],
        "WTHD_SW" => &["Y", "N"],
        _ => return None,
    })
}

fn json_text(v: &Json) -> Option<String> {
    match v {
        Json::Null => None,
        Json::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn table_of(&self, ci: &str) -> Option<&'static str> {
        if ci.eq_ignore_ascii_case(&self.config.vendor_ci) {
            Some(TABLE_VENDORS)
        } else if ci.eq_ignore_ascii_case(&self.config.customer_ci) {
            Some(TABLE_CUSTOMERS)
        } else {
            None
        }
    }

    fn spec(&self, table: &str) -> Option<TableSpec> {
        self.dataset.read().table(table).map(|t| t.spec().clone())
    }

    fn oprid_of(&self, table: &str, key: Vec<String>) -> String {
        self.lock()
            .oprids
            .get(&(table.to_string(), key))
            .cloned()
            .unwrap_or_else(|| self.config.seed_oprid.clone())
    }

    /// A record as the Get answers it: every field of the row (bare names), then
    /// `LASTUPDOPRID`.
    fn render(&self, table: &str, row: &Row) -> Map<String, Json> {
        let mut m = Map::new();
        for (f, v) in row.spec().fields.iter().zip(row.values()) {
            m.insert(f.name.clone(), v.clone());
        }
        m.insert(
            LASTUPDOPRID.into(),
            Json::String(self.oprid_of(table, row.key())),
        );
        m
    }

    /// The next `LASTUPDDTTM`: the clock's time (to the microsecond), strictly after the
    /// last stamp issued and after `after`.
    fn next_stamp(&self, after: DateTime<Utc>) -> DateTime<Utc> {
        let now = self.config.clock.now();
        let now = now - Duration::nanoseconds(i64::from(now.timestamp_subsec_nanos() % 1_000));
        let mut st = self.lock();
        let mut t = now;
        for floor in [st.last_stamp, Some(after)].into_iter().flatten() {
            if t <= floor {
                t = floor + Duration::microseconds(1);
            }
        }
        st.last_stamp = Some(t);
        t
    }

    /// Checks and converts one incoming field value to the table's wire form.
    fn convert(&self, spec: &TableSpec, field: &str, v: &Json) -> Result<Json, PsError> {
        let f = spec.field(field).ok_or_else(|| {
            PsError::new(
                158,
                10002,
                format!("Field {field} is not part of the component interface."),
            )
        })?;
        let invalid = |what: &str| {
            PsError::new(
                15,
                11,
                format!(
                    "{field}: Invalid value -- press the prompt button or hyperlink for a list of valid values (15,11). Value: {what}"
                ),
            )
        };
        match f.field_type {
            FieldType::Character | FieldType::LongCharacter => {
                let text = match v {
                    Json::Null => String::new(),
                    Json::String(s) => s.clone(),
                    Json::Number(n) => n.to_string(),
                    other => return Err(invalid(&other.to_string())),
                };
                let n = text.chars().count();
                if f.field_type == FieldType::Character && f.length > 0 && n > f.length as usize {
                    return Err(PsError::new(
                        15,
                        12,
                        format!(
                            "{field}: the value is {n} characters long; the field allows {}.",
                            f.length
                        ),
                    ));
                }
                let trimmed = text.trim();
                if field == "NAME1" && trimmed.is_empty() {
                    return Err(PsError::new(15, 30, "Name 1 is required. (15,30)"));
                }
                if let Some(allowed) = allowed_values(field) {
                    if !allowed.contains(&trimmed) {
                        return Err(invalid(&text));
                    }
                }
                Ok(Json::String(if trimmed.is_empty() {
                    " ".into()
                } else {
                    text
                }))
            }
            FieldType::Number | FieldType::SignedNumber => {
                let text = match v {
                    Json::Null => return Ok(Json::Null),
                    Json::Number(n) => n.to_string(),
                    Json::String(s) => s.trim().to_string(),
                    other => return Err(invalid(&other.to_string())),
                };
                let digits = text.strip_prefix('-').unwrap_or(&text);
                let numeric = digits.chars().all(|c| c.is_ascii_digit() || c == '.')
                    && digits.matches('.').count() <= 1
                    && digits.chars().any(|c| c.is_ascii_digit());
                if !numeric || (f.field_type == FieldType::Number && text.starts_with('-')) {
                    return Err(invalid(&text));
                }
                // Trailing zeros carry no value (`2500.500` fits a field with 2 decimals).
                let decimals = text
                    .split_once('.')
                    .map_or(0, |(_, d)| d.trim_end_matches('0').len());
                if decimals > f.decimals as usize {
                    return Err(PsError::new(
                        15,
                        13,
                        format!(
                            "{field}: {text} has more than {} decimal places.",
                            f.decimals
                        ),
                    ));
                }
                Ok(match f.json {
                    JsonRepr::String => Json::String(text),
                    JsonRepr::Number => serde_json::from_str::<Json>(&text)
                        .ok()
                        .filter(Json::is_number)
                        .ok_or_else(|| invalid(&text))?,
                })
            }
            FieldType::Date => match v {
                Json::Null => Ok(Json::Null),
                Json::String(s) if s.trim().is_empty() => Ok(Json::Null),
                Json::String(s) => NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                    .map(|d| Json::String(sitetime::date_text(d)))
                    .map_err(|_| invalid(s)),
                other => Err(invalid(&other.to_string())),
            },
            // Datetimes are maintained by the system (LASTUPDDTTM); never reached.
            FieldType::DateTime => Ok(v.clone()),
        }
    }

    /// Applies a Create or an Update of `body` to `table` as `oprid`; returns the record as
    /// a Get would answer it afterwards.
    fn write(
        &self,
        table: &'static str,
        body: &Map<String, Json>,
        oprid: &str,
        op: Op,
    ) -> Result<Map<String, Json>, PsError> {
        let spec = self
            .spec(table)
            .ok_or_else(|| PsError::new(158, 10001, format!("no table `{table}`")))?;
        let mut key = Vec::with_capacity(spec.key.len());
        for k in &spec.key {
            let v = body
                .iter()
                .find(|(f, _)| f.eq_ignore_ascii_case(k))
                .and_then(|(_, v)| json_text(v))
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| PsError::new(15, 30, format!("{k} is required. (15,30)")))?;
            key.push(v);
        }
        // Fields to set, checked before anything changes (all or nothing, like a CI save).
        let mut values: Vec<(usize, Json)> = Vec::new();
        for (name, v) in body {
            let bare = name.rsplit('.').next().unwrap_or(name).to_ascii_uppercase();
            if spec.key.contains(&bare)
                || bare == spec.cursor
                || bare == LASTUPDOPRID
                || spec.cursor_dates.contains(&bare)
            {
                continue;
            }
            let converted = self.convert(&spec, &bare, v)?;
            let idx = spec.field_index(&bare).unwrap_or_default();
            values.push((idx, converted));
        }
        let key_refs: Vec<&str> = key.iter().map(String::as_str).collect();
        let key_text = spec
            .key
            .iter()
            .zip(&key)
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut d = self.dataset.write();
        let t = d
            .table_mut(table)
            .ok_or_else(|| PsError::new(158, 10001, format!("no table `{table}`")))?;
        let existing = t.get(&key_refs).cloned();
        match (op, existing) {
            (Op::Create, Some(_)) => Err(PsError::new(
                18040,
                5,
                format!("Duplicate key: a record with {key_text} already exists."),
            )),
            (Op::Update, None) | (Op::Get, None) => Err(PsError::new(
                18040,
                4,
                format!("{NOT_FOUND_MESSAGE} ({key_text})"),
            )),
            (Op::Create, None) => {
                let mut row_values: Vec<Json> = spec
                    .fields
                    .iter()
                    .map(|f| match f.field_type {
                        FieldType::Character | FieldType::LongCharacter => Json::String(" ".into()),
                        _ => Json::Null,
                    })
                    .collect();
                for (k, v) in spec.key.iter().zip(&key) {
                    if let Some(i) = spec.field_index(k) {
                        row_values[i] = Json::String(v.clone());
                    }
                }
                for (i, v) in values {
                    row_values[i] = v;
                }
                // A Create must name the vendor/customer (an Update may leave it alone).
                let blank = |v: &Json| v.as_str().is_some_and(|t| t.trim().is_empty());
                if spec
                    .field_index("NAME1")
                    .is_some_and(|i| blank(&row_values[i]))
                {
                    return Err(PsError::new(15, 30, "Name 1 is required. (15,30)"));
                }
                let stamp = self.next_stamp(DateTime::<Utc>::MIN_UTC);
                let row = Row::new(t.spec_arc(), row_values, stamp);
                t.insert([row]);
                drop(d);
                self.lock()
                    .oprids
                    .insert((table.to_string(), key.clone()), oprid.to_string());
                let d = self.dataset.read();
                let row = d
                    .table(table)
                    .and_then(|t| t.get(&key_refs))
                    .ok_or_else(|| PsError::new(158, 10001, "record vanished"))?;
                Ok(self.render(table, row))
            }
            (_, Some(row)) => {
                let changed: Vec<(usize, Json)> = values
                    .into_iter()
                    .filter(|(i, v)| row.values()[*i] != *v)
                    .collect();
                if !changed.is_empty() {
                    let stamp = self.next_stamp(row.cursor());
                    for (i, v) in changed {
                        let name = spec.fields[i].name.clone();
                        d.set_field(table, &key_refs, &name, v, stamp);
                    }
                    drop(d);
                    self.lock()
                        .oprids
                        .insert((table.to_string(), key.clone()), oprid.to_string());
                } else {
                    drop(d);
                }
                let d = self.dataset.read();
                let row = d
                    .table(table)
                    .and_then(|t| t.get(&key_refs))
                    .ok_or_else(|| PsError::new(158, 10001, "record vanished"))?;
                Ok(self.render(table, row))
            }
        }
    }

    fn get(&self, table: &str, key: &[String]) -> Option<Map<String, Json>> {
        let refs: Vec<&str> = key.iter().map(String::as_str).collect();
        let d = self.dataset.read();
        let row = d.table(table)?.get(&refs)?;
        Some(self.render(table, row))
    }

    fn handle(&self, req: &Request) -> ResponseTemplate {
        if let Some(upstream) = self.config.qas_upstream {
            let op = req
                .url
                .path()
                .strip_prefix(REST_PATH)
                .and_then(|r| r.split('/').filter(|s| !s.is_empty()).nth(1));
            if op.is_some_and(|op| !op.starts_with("CIRT_")) {
                return pass_through(upstream, req);
            }
        }
        let method = req.method.as_str().to_ascii_uppercase();
        let oprid_sent = basic_credentials(req);
        let body: Option<Json> = if req.body.is_empty() {
            None
        } else {
            serde_json::from_slice(&req.body).ok()
        };
        // A programmed write failure for a key in the body, if any.
        let fault = match (&body, method.as_str()) {
            (Some(Json::Object(fields)), "POST" | "PUT") => {
                let mut state = self.lock();
                let hit = state.write_faults.iter_mut().find(|f| {
                    f.remaining > 0
                        && fields
                            .values()
                            .any(|v| v.as_str() == Some(f.key_value.as_str()))
                });
                hit.map(|f| {
                    f.remaining -= 1;
                    f.applied
                })
            }
            _ => None,
        };
        let (status, error, resp) = match fault {
            Some(false) => (
                502,
                Some("programmed gateway failure".into()),
                gateway_page(),
            ),
            Some(true) => {
                let _saved = self.route(req, &method, oprid_sent.as_ref(), body.as_ref());
                (
                    502,
                    Some("programmed gateway failure after the save".into()),
                    gateway_page(),
                )
            }
            None => self.route(req, &method, oprid_sent.as_ref(), body.as_ref()),
        };
        self.lock().requests.push(CirtRequest {
            method,
            path: req.url.path().to_string(),
            query: req.url.query().map(str::to_string),
            oprid: oprid_sent.map(|(u, _)| u),
            body,
            status,
            error,
        });
        resp
    }

    fn route(
        &self,
        req: &Request,
        method: &str,
        creds: Option<&(String, String)>,
        body: Option<&Json>,
    ) -> (u16, Option<String>, ResponseTemplate) {
        let fail = |status: u16, e: PsError| {
            let r = ib_error(status, &e);
            (status, Some(e.message), r)
        };
        let path = req.url.path();
        let Some(rest) = path
            .strip_prefix(REST_PATH)
            .and_then(|r| r.strip_prefix('/'))
        else {
            return (
                404,
                None,
                ResponseTemplate::new(404).set_body_raw(
                    b"<html><body><h1>404 Not Found</h1></body></html>".to_vec(),
                    "text/html",
                ),
            );
        };
        let mut segs = rest.split('/').filter(|s| !s.is_empty());
        let node = segs.next().unwrap_or_default();
        if node != self.config.node {
            return fail(
                200,
                PsError::new(
                    158,
                    10001,
                    format!("Unknown node {node}: no service operation found."),
                ),
            );
        }
        let authorised = creds.is_some_and(|(u, p)| {
            self.config
                .users
                .get(u)
                .is_some_and(|expected| expected == p)
        });
        if !authorised {
            return (
                401,
                None,
                ResponseTemplate::new(401)
                    .insert_header("www-authenticate", "Basic realm=\"PSIGW\"")
                    .set_body_raw(b"Unauthorized".to_vec(), "text/plain"),
            );
        }
        let oprid = creds.map(|(u, _)| u.clone()).unwrap_or_default();
        let alias = segs.next().unwrap_or_default();
        let no_operation = || {
            PsError::new(
                158,
                10001,
                format!(
                    "No service operation found for alias {alias} and method {method} on node {}.",
                    self.config.node
                ),
            )
        };
        let version = format!(".v{}", self.config.version);
        let parsed = alias
            .strip_prefix("CIRT_")
            .and_then(|a| a.strip_suffix(version.as_str()))
            .and_then(|a| {
                [
                    ("_G_GET", Op::Get, "GET"),
                    ("_C_POST", Op::Create, "POST"),
                    ("_UD_PUT", Op::Update, "PUT"),
                    ("_U_PUT", Op::Update, "PUT"),
                ]
                .into_iter()
                .find_map(|(suffix, op, m)| a.strip_suffix(suffix).map(|ci| (ci, op, m)))
            });
        let Some((ci, op, expected_method)) = parsed else {
            return fail(200, no_operation());
        };
        let Some(table) = self.table_of(ci) else {
            return fail(200, no_operation());
        };
        if expected_method != method {
            return fail(200, no_operation());
        }
        match op {
            Op::Get => {
                let Some(spec) = self.spec(table) else {
                    return fail(200, no_operation());
                };
                let mut key: Vec<String> = segs.map(decode).collect();
                if key.is_empty() {
                    let query: Vec<(String, String)> = req
                        .url
                        .query()
                        .unwrap_or_default()
                        .split('&')
                        .filter_map(|p| p.split_once('='))
                        .map(|(k, v)| (decode(k), decode(v)))
                        .collect();
                    key = spec
                        .key
                        .iter()
                        .filter_map(|k| {
                            query
                                .iter()
                                .find(|(q, _)| q.eq_ignore_ascii_case(k))
                                .map(|(_, v)| v.clone())
                        })
                        .collect();
                }
                if key.len() != spec.key.len() {
                    return fail(
                        200,
                        PsError::new(
                            15,
                            30,
                            format!("Get keys required: {}. (15,30)", spec.key.join(", ")),
                        ),
                    );
                }
                match self.get(table, &key) {
                    Some(m) => (200, None, json_ok(m)),
                    None => {
                        let key_text = spec
                            .key
                            .iter()
                            .zip(&key)
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(", ");
                        fail(
                            self.config.not_found_status,
                            PsError::new(18040, 4, format!("{NOT_FOUND_MESSAGE} ({key_text})")),
                        )
                    }
                }
            }
            Op::Create | Op::Update => {
                let Some(Json::Object(map)) = body else {
                    return fail(
                        200,
                        PsError::new(
                            158,
                            10003,
                            "The request body is not a JSON object of component interface fields.",
                        ),
                    );
                };
                match self.write(table, map, &oprid, op) {
                    Ok(m) => (200, None, json_ok(m)),
                    Err(e) => fail(200, e),
                }
            }
        }
    }
}

/// `(user, password)` of an `Authorization: Basic` header.
fn basic_credentials(req: &Request) -> Option<(String, String)> {
    let h = req.headers.get("authorization")?.to_str().ok()?;
    let (scheme, cred) = h.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(cred.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Dataset;
    use serde_json::json;

    fn client() -> reqwest::Client {
        reqwest::Client::new()
    }

    async fn standin() -> CirtStandIn {
        CirtStandIn::start(Dataset::manufacturer(42, 0.1)).await
    }

    fn op_url(c: &CirtStandIn, op: &str) -> String {
        format!("{}CIRT_VNDR_ID_{op}.v1", c.base_url())
    }

    #[tokio::test]
    async fn get_returns_the_flat_record_with_stamp_and_oprid() {
        let c = standin().await;
        let resp = client()
            .get(c.get_url(VENDOR_CI, &["SHARE", "0000000007"]))
            .basic_auth(CIRT_OPRID, Some(CIRT_PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let v: Json = resp.json().await.unwrap();
        assert_eq!(v["VENDOR_ID"], "0000000007");
        assert_eq!(v["SETID"], "SHARE");
        assert_eq!(v["LASTUPDOPRID"], SEED_OPRID);
        assert!(v["LASTUPDDTTM"].as_str().unwrap().len() == 26, "{v}");
        assert!(v.get("NAME1").is_some());
        // Query-string keys work too.
        let resp = client()
            .get(format!(
                "{}?SETID=SHARE&VENDOR_ID=0000000007",
                op_url(&c, "G_GET")
            ))
            .basic_auth(CIRT_OPRID, Some(CIRT_PASSWORD))
            .send()
            .await
            .unwrap();
        let w: Json = resp.json().await.unwrap();
        assert_eq!(v, w);
    }

    #[tokio::test]
    async fn missing_record_answers_the_not_found_ibresponse_over_200() {
        let c = standin().await;
        let resp = client()
            .get(c.get_url(VENDOR_CI, &["SHARE", "NOPE"]))
            .basic_auth(CIRT_OPRID, Some(CIRT_PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap();
        assert!(text.contains("<IBResponse type=\"error\">"), "{text}");
        assert!(text.contains(NOT_FOUND_MESSAGE), "{text}");
    }

    #[tokio::test]
    async fn bad_credentials_are_401_and_recorded() {
        let c = standin().await;
        let resp = client()
            .get(c.get_url(VENDOR_CI, &["SHARE", "0000000007"]))
            .basic_auth(CIRT_OPRID, Some("wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        let r = c.requests();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].status, 401);
        assert_eq!(r[0].oprid.as_deref(), Some(CIRT_OPRID));
    }

    #[tokio::test]
    async fn update_applies_bumps_the_stamp_and_sets_the_caller() {
        let c = standin().await;
        let before = c.vendor("0000000007").unwrap();
        let resp = client()
            .put(op_url(&c, "U_PUT"))
            .basic_auth(CIRT_OPRID, Some(CIRT_PASSWORD))
            .json(&json!({"SETID": "SHARE", "VENDOR_ID": "0000000007", "NAME1": "New Name LLC", "VENDOR_STATUS": "I"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let v: Json = resp.json().await.unwrap();
        assert_eq!(v["NAME1"], "New Name LLC");
        assert_eq!(v["LASTUPDOPRID"], CIRT_OPRID);
        let after = c.vendor("0000000007").unwrap();
        assert_eq!(after["VENDOR_STATUS"], "I");
        assert!(after["LASTUPDDTTM"].as_str() > before["LASTUPDDTTM"].as_str());
        // The QAS side sees it too (same dataset).
        let d = c.dataset();
        let d = d.read();
        let row = d
            .table(TABLE_VENDORS)
            .unwrap()
            .get(&["SHARE", "0000000007"])
            .unwrap();
        assert_eq!(row.text("NAME1").as_deref(), Some("New Name LLC"));
        assert_eq!(c.write_count(), 1);
    }

    #[tokio::test]
    async fn create_inserts_and_a_second_create_is_refused() {
        let c = standin().await;
        let body = json!({"SETID": "SHARE", "VENDOR_ID": "NEW0000001", "NAME1": "Fresh Vendor", "VENDOR_STATUS": "A", "WTHD_SW": "N"});
        let put = |b: Json| {
            client()
                .post(op_url(&c, "C_POST"))
                .basic_auth(CIRT_OPRID, Some(CIRT_PASSWORD))
                .json(&b)
                .send()
        };
        let v: Json = put(body.clone()).await.unwrap().json().await.unwrap();
        assert_eq!(v["VENDOR_ID"], "NEW0000001");
        assert_eq!(v["CITY"], " ");
        assert_eq!(c.vendor("NEW0000001").unwrap()["NAME1"], "Fresh Vendor");
        let text = put(body).await.unwrap().text().await.unwrap();
        assert!(text.contains("already exists"), "{text}");
    }

    #[tokio::test]
    async fn validation_errors_are_ibresponses_over_200_and_change_nothing() {
        let c = standin().await;
        let before = c.vendor("0000000007").unwrap();
        for (body, expect) in [
            (
                json!({"SETID": "SHARE", "VENDOR_ID": "0000000007", "NAME1": "x".repeat(41)}),
                "allows 40",
            ),
            (
                json!({"SETID": "SHARE", "VENDOR_ID": "0000000007", "VENDOR_STATUS": "Q"}),
                "Invalid value",
            ),
            (
                json!({"SETID": "SHARE", "VENDOR_ID": "0000000007", "NAME1": " "}),
                "Name 1 is required",
            ),
            (
                json!({"SETID": "SHARE", "VENDOR_ID": "0000000007", "NOPE": "1"}),
                "not part of the component interface",
            ),
            (
                json!({"SETID": "SHARE", "VENDOR_ID": "MISSING", "NAME1": "A"}),
                NOT_FOUND_MESSAGE,
            ),
        ] {
            let resp = client()
                .put(op_url(&c, "U_PUT"))
                .basic_auth(CIRT_OPRID, Some(CIRT_PASSWORD))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let text = resp.text().await.unwrap();
            assert!(text.contains("<IBResponse type=\"error\">"), "{text}");
            assert!(text.contains(expect), "{expect}: {text}");
        }
        assert_eq!(c.vendor("0000000007").unwrap(), before);
        assert!(c.requests().iter().all(|r| r.error.is_some()));
    }

    #[tokio::test]
    async fn customers_are_served_and_an_online_edit_is_recorded() {
        let c = standin().await;
        let cust = c.customer("CUST00001").unwrap();
        assert!(cust.get("CREDIT_LIMIT").is_some());
        let stamp = c
            .edit_customer("CUST00001", &[("CREDIT_LIMIT", json!("2500.50"))], "JSMITH")
            .unwrap();
        let after = c.customer("CUST00001").unwrap();
        assert_eq!(after["CREDIT_LIMIT"], json!(2500.5));
        assert_eq!(after["LASTUPDOPRID"], "JSMITH");
        assert_eq!(after["LASTUPDDTTM"], stamp);
        assert!(c
            .edit_customer("CUST00001", &[("CUST_STATUS", json!("Z"))], "JSMITH")
            .unwrap_err()
            .contains("Invalid value"));
        assert!(c.requests().is_empty());
    }

    #[tokio::test]
    async fn customers_are_updated_over_http_with_exact_decimal_text() {
        let c = standin().await;
        let url = format!("{}CIRT_{CUSTOMER_CI}_U_PUT.v1", c.base_url());
        let put = |limit: &str| {
            client()
                .put(url.clone())
                .basic_auth(CIRT_OPRID, Some(CIRT_PASSWORD))
                .json(&json!({"SETID": "SHARE", "CUST_ID": "CUST00002", "CREDIT_LIMIT": limit}))
                .send()
        };
        let v: Json = put("1250.500").await.unwrap().json().await.unwrap();
        assert_eq!(v["CREDIT_LIMIT"], json!(1250.5));
        assert_eq!(v["LASTUPDOPRID"], CIRT_OPRID);
        let text = put("1.005").await.unwrap().text().await.unwrap();
        assert!(text.contains("decimal places"), "{text}");
        let get: Json = client()
            .get(c.get_url(CUSTOMER_CI, &["SHARE", "CUST00002"]))
            .basic_auth(CIRT_OPRID, Some(CIRT_PASSWORD))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(get["CREDIT_LIMIT"], json!(1250.5));
    }

    #[tokio::test]
    async fn not_found_can_be_a_404_and_unknown_operations_are_ibresponses() {
        let c = CirtStandIn::start_with(
            Dataset::manufacturer(42, 0.1),
            CirtConfig {
                not_found_status: 404,
                ..CirtConfig::default()
            },
        )
        .await;
        let get = |url: String| {
            client()
                .get(url)
                .basic_auth(CIRT_OPRID, Some(CIRT_PASSWORD))
                .send()
        };
        let resp = get(c.get_url(VENDOR_CI, &["SHARE", "NOPE"])).await.unwrap();
        assert_eq!(resp.status(), 404);
        assert!(resp.text().await.unwrap().contains(NOT_FOUND_MESSAGE));
        for url in [
            format!("{}CIRT_NOPE_G_GET.v1/SHARE/X", c.base_url()),
            format!("{}CIRT_VNDR_ID_C_POST.v1", c.base_url()),
            c.get_url(VENDOR_CI, &["SHARE", "0000000007"])
                .replace("PSFT_EP", "PSFT_XX"),
        ] {
            let resp = get(url.clone()).await.unwrap();
            assert_eq!(resp.status(), 200, "{url}");
            let text = resp.text().await.unwrap();
            assert!(
                text.contains("<IBResponse type=\"error\">"),
                "{url}: {text}"
            );
        }
    }

    #[test]
    fn decoding_and_encoding_round_trip() {
        for s in ["SHARE", "a b/c%d", "Müller"] {
            assert_eq!(decode(&encode_segment(s)), s);
        }
    }
}
