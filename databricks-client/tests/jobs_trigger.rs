//! The job trigger starts one run per stream per cycle after the engine committed data, with
//! an idempotency token derived from the run, and its run id lands in the audit.

mod common;

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use common::*;
use databricks_client::JobTrigger;
use sync_core::engine::{HookContext, StreamHook};
use sync_core::Window;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn starts_the_job_with_window_parameters_and_returns_the_run_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/2.1/jobs/run-now"))
        .and(header("authorization", "Bearer dapi-test"))
        .and(body_partial_json(serde_json::json!({
            "job_id": 77,
            "job_parameters": {"ml_stream": "journal_lines", "ml_table": "ps_journal_lines", "ml_window_from": "2026-01-01T00:00:00Z", "env": "prod"}
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"run_id": 9001, "number_in_job": 3})))
        .expect(1)
        .mount(&server)
        .await;
    mount_catch_all(&server).await;
    let client = client(pat_config(&server, "dapi-test").build().unwrap());
    let trigger = Arc::new(JobTrigger::new(client, 77).parameter("env", "prod"));
    let ctx = HookContext::new(
        "p",
        "journal_lines",
        "20260102T000000Z-abc123",
        "ps_journal_lines",
        Window::new(
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 1, 2, 0, 0, 0).unwrap(),
        ),
    );
    let notes = trigger.after_stream(&ctx).await.unwrap();
    assert_eq!(notes["databricks_job_run_id"], "9001");
    assert_eq!(notes["databricks_job_id"], "77");
    let body: serde_json::Value = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .find(|r| r.url.path() == "/api/2.1/jobs/run-now")
        .unwrap()
        .body_json()
        .unwrap();
    let token = body["idempotency_token"].as_str().unwrap();
    assert!(token.len() <= 64 && token.starts_with("mlc-"), "{token}");
}
