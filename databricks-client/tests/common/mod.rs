//! Shared helpers for the wiremock tests.
#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use databricks_client::{ClientOptions, Config, ConfigBuilder, DatabricksClient};
use secrecy::SecretString;
use serde_json::{json, Value as J};
use sync_core::http::RetryPolicy;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const CLIENT_ID: &str = "sp-client-id";
pub const CLIENT_SECRET: &str = "sp-client-secret-XYZ";
pub const STATEMENTS: &str = "/api/2.0/sql/statements";
pub const TOKEN_PATH: &str = "/oidc/v1/token";
pub const DISCOVERY: &str = "/oidc/.well-known/oauth-authorization-server";

/// Replies from a script, repeating the last entry when the script runs out.
pub struct Seq(Mutex<VecDeque<ResponseTemplate>>, ResponseTemplate);

impl Seq {
    pub fn new(mut items: Vec<ResponseTemplate>) -> Self {
        let last = items.pop().expect("at least one response");
        Seq(Mutex::new(items.into()), last)
    }
}

impl Respond for Seq {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        self.0
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| self.1.clone())
    }
}

pub fn options() -> ClientOptions {
    ClientOptions {
        http_timeout: None,
        retry: RetryPolicy {
            jitter: false,
            ..RetryPolicy::default()
        },
        poll_initial: Duration::from_secs(1),
        poll_max: Duration::from_secs(4),
        statement_timeout: Duration::from_secs(600),
        ..ClientOptions::default()
    }
}

pub fn oauth_config(server: &MockServer) -> ConfigBuilder {
    Config::builder()
        .host(server.uri())
        .allow_insecure_http(true)
        .client_credentials(CLIENT_ID, SecretString::from(CLIENT_SECRET.to_string()))
        .warehouse_id("wh-1")
        .options(options())
}

pub fn pat_config(server: &MockServer, token: &str) -> ConfigBuilder {
    Config::builder()
        .host(server.uri())
        .allow_insecure_http(true)
        .token(SecretString::from(token.to_string()))
        .warehouse_id("wh-1")
        .options(options())
}

/// A client whose connection pool sets no idle timer, so a paused tokio clock is driven only
/// by the client's own sleeps.
pub fn client(config: Config) -> DatabricksClient {
    let http = reqwest::Client::builder()
        .pool_idle_timeout(None)
        .build()
        .unwrap();
    DatabricksClient::with_http_client(config, http)
}

pub fn token_reply(token: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "access_token": token, "token_type": "Bearer", "expires_in": 3600, "scope": "all-apis"
    }))
}

/// Discovery 404 (fallback) and a token endpoint answering `replies` in order.
pub async fn mount_oauth(server: &MockServer, replies: Vec<ResponseTemplate>) {
    Mock::given(method("GET"))
        .and(path(DISCOVERY))
        .respond_with(ResponseTemplate::new(404))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(Seq::new(replies))
        .mount(server)
        .await;
}

/// A catch-all that answers 418 so an unexpected request fails loudly (418 is never retried).
pub async fn mount_catch_all(server: &MockServer) {
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(418).set_body_string("UNEXPECTED_REQUEST: no stub"))
        .with_priority(u8::MAX)
        .mount(server)
        .await;
}

pub fn succeeded(id: &str, columns: &[(&str, &str)], rows: J) -> J {
    let cols: Vec<J> = columns
        .iter()
        .enumerate()
        .map(|(i, (n, t))| json!({"name": n, "position": i, "type_name": t, "type_text": t.to_lowercase()}))
        .collect();
    json!({
        "statement_id": id,
        "status": {"state": "SUCCEEDED"},
        "manifest": {"format": "JSON_ARRAY", "schema": {"column_count": cols.len(), "columns": cols},
                     "total_chunk_count": 1, "total_row_count": rows.as_array().map(|a| a.len()).unwrap_or(0), "truncated": false},
        "result": {"chunk_index": 0, "row_offset": 0, "data_array": rows}
    })
}

pub fn state(id: &str, state: &str) -> J {
    json!({"statement_id": id, "status": {"state": state}})
}

pub fn ok_json(body: J) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

pub async fn requests_to(server: &MockServer, method_name: &str, p: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == method_name && r.url.path() == p)
        .collect()
}

pub fn auth_header(r: &Request) -> String {
    r.headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// The `statement` texts POSTed, in order.
pub async fn statement_texts(server: &MockServer) -> Vec<String> {
    requests_to(server, "POST", STATEMENTS)
        .await
        .iter()
        .map(|r| {
            r.body_json::<J>().unwrap()["statement"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// Answers every statement with `SELECT 1`'s result.
pub async fn mount_select_ok(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .respond_with(ok_json(succeeded("s-1", &[("x", "INT")], json!([["1"]]))))
        .mount(server)
        .await;
}

/// JOB: entity (emplid, empl_rcd), dated by effdt/effseq, flagged in is_current.
pub fn job_schema() -> sync_core::TableSchema {
    use sync_core::{ColumnDef, ColumnType, EffectiveDated, TableSchema, WriteMode};
    TableSchema {
        name: "job".into(),
        columns: vec![
            ColumnDef::new("emplid", ColumnType::String).not_null(),
            ColumnDef::new("empl_rcd", ColumnType::Int).not_null(),
            ColumnDef::new("effdt", ColumnType::Date).not_null(),
            ColumnDef::new("effseq", ColumnType::Int).not_null(),
            ColumnDef::new("deptid", ColumnType::String),
            ColumnDef::new("is_current", ColumnType::Boolean),
        ],
        primary_key: vec![
            "emplid".into(),
            "empl_rcd".into(),
            "effdt".into(),
            "effseq".into(),
        ],
        cursor_column: None,
        write_mode: WriteMode::Upsert,
        effective_dating: Some(
            EffectiveDated::new(["emplid", "empl_rcd"], "effdt", "is_current").sequence("effseq"),
        ),
    }
}
