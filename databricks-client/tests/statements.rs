//! Statement execution: polling, failures, retries, chunks, cancel.

mod common;

use std::time::Duration;

use chrono::TimeZone;
use common::*;
use databricks_client::{ClientOptions, Error, Statement};
use serde_json::{json, Value as J};
use sync_core::http::RetryPolicy;
use sync_core::Value;
use tokio::time::Instant;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn pat_server() -> (MockServer, databricks_client::DatabricksClient) {
    let server = MockServer::start().await;
    let c = client(pat_config(&server, "dapi-x").build().unwrap());
    (server, c)
}

#[tokio::test(start_paused = true)]
async fn polls_pending_running_succeeded_and_sends_parameters() {
    let (server, c) = pat_server().await;
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .respond_with(ok_json(state("st-1", "PENDING")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{STATEMENTS}/st-1")))
        .respond_with(Seq::new(vec![
            ok_json(state("st-1", "RUNNING")),
            ok_json(succeeded(
                "st-1",
                &[
                    ("id", "LONG"),
                    ("amt", "DECIMAL"),
                    ("ts", "TIMESTAMP"),
                    ("d", "DATE"),
                    ("ok", "BOOLEAN"),
                    ("s", "STRING"),
                ],
                json!([[
                    "42",
                    "12345678901234.10",
                    "2024-01-31T12:00:00.000Z",
                    "2024-01-31",
                    "true",
                    null
                ]]),
            )),
        ]))
        .mount(&server)
        .await;
    mount_catch_all(&server).await;
    let started = Instant::now();
    let st = Statement::new("SELECT * FROM t WHERE amt > :min AND d = :d")
        .param("min", &Value::Decimal("10.50".parse().unwrap()))
        .param(
            "d",
            &Value::Date(chrono::NaiveDate::from_ymd_opt(2024, 1, 31).unwrap()),
        );
    let res = c.execute(&st).await.unwrap();
    assert_eq!(res.statement_id(), "st-1");
    let rows = res.collect_rows().await.unwrap();
    assert_eq!(
        rows,
        vec![vec![
            Value::BigInt(42),
            Value::Decimal("12345678901234.10".parse().unwrap()),
            Value::Timestamp(chrono::Utc.with_ymd_and_hms(2024, 1, 31, 12, 0, 0).unwrap()),
            Value::Date(chrono::NaiveDate::from_ymd_opt(2024, 1, 31).unwrap()),
            Value::Bool(true),
            Value::Null,
        ]]
    );
    assert_eq!(
        requests_to(&server, "GET", &format!("{STATEMENTS}/st-1"))
            .await
            .len(),
        2
    );
    // Backoff 1 s then 2 s.
    assert!(started.elapsed() >= Duration::from_secs(3));
    let body: J = requests_to(&server, "POST", STATEMENTS).await[0]
        .body_json()
        .unwrap();
    assert_eq!(
        body,
        json!({
            "statement": "SELECT * FROM t WHERE amt > :min AND d = :d",
            "warehouse_id": "wh-1",
            "parameters": [
                {"name": "min", "value": "10.50", "type": "DECIMAL(4,2)"},
                {"name": "d", "value": "2024-01-31", "type": "DATE"}
            ],
            "wait_timeout": "10s",
            "on_wait_timeout": "CONTINUE",
            "disposition": "INLINE",
            "format": "JSON_ARRAY"
        })
    );
}

#[tokio::test]
async fn failed_over_http_200_is_a_typed_error() {
    let (server, c) = pat_server().await;
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .respond_with(ok_json(json!({
            "statement_id": "st-f",
            "status": {"state": "FAILED", "sql_state": "42P01",
                       "error": {"error_code": "BAD_REQUEST", "message": "[TABLE_OR_VIEW_NOT_FOUND] The table `x` cannot be found. SQLSTATE: 42P01"}}
        })))
        .mount(&server)
        .await;
    let err = c
        .execute(&Statement::new("SELECT * FROM x"))
        .await
        .unwrap_err();
    match &err {
        Error::StatementFailed {
            statement_id,
            error_code,
            sql_state,
            message,
        } => {
            assert_eq!(statement_id, "st-f");
            assert_eq!(error_code.as_deref(), Some("BAD_REQUEST"));
            assert_eq!(sql_state.as_deref(), Some("42P01"));
            assert!(message.starts_with("[TABLE_OR_VIEW_NOT_FOUND]"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.failure_kind(), sync_core::FailureKind::Permanent);
}

#[tokio::test(start_paused = true)]
async fn http_429_waits_for_retry_after() {
    let (server, c) = pat_server().await;
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .respond_with(Seq::new(vec![
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "7")
                .set_body_json(
                    json!({"error_code":"REQUEST_LIMIT_EXCEEDED","message":"slow down"}),
                ),
            ok_json(succeeded("st-2", &[("x", "INT")], json!([["1"]]))),
        ]))
        .mount(&server)
        .await;
    let started = Instant::now();
    c.execute(&Statement::new("INSERT INTO t VALUES (1)"))
        .await
        .unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(7) && waited < Duration::from_secs(8),
        "{waited:?}"
    );
    assert_eq!(requests_to(&server, "POST", STATEMENTS).await.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn http_503_is_retried_even_for_a_non_idempotent_post() {
    let (server, c) = pat_server().await;
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .respond_with(Seq::new(vec![
            ResponseTemplate::new(503),
            ok_json(succeeded("st-3", &[("x", "INT")], json!([["1"]]))),
        ]))
        .mount(&server)
        .await;
    c.execute(&Statement::new("INSERT INTO t VALUES (1)"))
        .await
        .unwrap();
    assert_eq!(requests_to(&server, "POST", STATEMENTS).await.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn http_500_is_retried_only_for_idempotent_statements() {
    let (server, c) = pat_server().await;
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .respond_with(Seq::new(vec![
            ResponseTemplate::new(500)
                .set_body_json(json!({"error_code":"INTERNAL_ERROR","message":"oops"})),
            ok_json(succeeded("st-4", &[("x", "INT")], json!([["1"]]))),
        ]))
        .mount(&server)
        .await;
    let err = c
        .execute(&Statement::new("INSERT INTO t VALUES (1)"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(500));
    assert!(err.to_string().contains("INTERNAL_ERROR: oops"), "{err}");
    assert_eq!(requests_to(&server, "POST", STATEMENTS).await.len(), 1);
    c.execute(&Statement::new("MERGE …").idempotent(true))
        .await
        .unwrap();
    assert_eq!(requests_to(&server, "POST", STATEMENTS).await.len(), 2);
}

/// Real time: the server holds the reply past the client's 300 ms timeout.
#[tokio::test]
async fn read_timeout_on_a_non_idempotent_post_is_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .respond_with(
            ok_json(succeeded("st-5", &[("x", "INT")], json!([["1"]])))
                .set_delay(Duration::from_secs(2)),
        )
        .mount(&server)
        .await;
    let opts = ClientOptions {
        http_timeout: Some(Duration::from_millis(300)),
        wait_timeout: Duration::ZERO,
        retry: RetryPolicy {
            initial_backoff: Duration::from_millis(10),
            jitter: false,
            ..RetryPolicy::default()
        },
        ..options()
    };
    let cfg = pat_config(&server, "dapi-x").options(opts).build().unwrap();
    let c = databricks_client::DatabricksClient::new(cfg).unwrap();
    let err = c
        .execute(&Statement::new("INSERT INTO t VALUES (1)"))
        .await
        .unwrap_err();
    match &err {
        Error::Transport { source, .. } => assert!(source.is_timeout(), "{err:?}"),
        other => panic!("{other:?}"),
    }
    assert!(err.is_transient());
    assert_eq!(requests_to(&server, "POST", STATEMENTS).await.len(), 1);
    // The same timeout on an idempotent statement is retried (4 retries by default).
    let _ = c
        .execute(&Statement::new("SELECT 1").idempotent(true))
        .await
        .unwrap_err();
    assert_eq!(requests_to(&server, "POST", STATEMENTS).await.len(), 1 + 5);
}

#[tokio::test]
async fn multi_chunk_results_are_streamed_in_order() {
    let (server, c) = pat_server().await;
    let mut first = succeeded(
        "st-6",
        &[("id", "INT"), ("name", "STRING")],
        json!([["1", "a"], ["2", "b"]]),
    );
    first["manifest"]["total_chunk_count"] = json!(3);
    first["result"]["next_chunk_internal_link"] =
        json!(format!("{STATEMENTS}/st-6/result/chunks/1?row_offset=2"));
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .respond_with(ok_json(first))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{STATEMENTS}/st-6/result/chunks/1")))
        .and(wiremock::matchers::query_param("row_offset", "2"))
        .respond_with(ok_json(json!({
            "chunk_index": 1, "row_offset": 2, "row_count": 1, "data_array": [["3", "c"]],
            "next_chunk_index": 2, "next_chunk_internal_link": format!("{STATEMENTS}/st-6/result/chunks/2")
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{STATEMENTS}/st-6/result/chunks/2")))
        .respond_with(ok_json(
            json!({"chunk_index": 2, "row_offset": 3, "data_array": [["4", null]]}),
        ))
        .mount(&server)
        .await;
    mount_catch_all(&server).await;
    let res = c
        .execute(&Statement::new("SELECT id, name FROM t"))
        .await
        .unwrap();
    use futures::TryStreamExt;
    let chunks: Vec<_> = res.chunks().try_collect().await.unwrap();
    assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), [2, 1, 1]);
    let ids: Vec<_> = chunks.concat().into_iter().map(|r| r[0].clone()).collect();
    assert_eq!(
        ids,
        [Value::Int(1), Value::Int(2), Value::Int(3), Value::Int(4)]
    );
    assert_eq!(chunks[2][0][1], Value::Null);
}

#[tokio::test]
async fn empty_results_and_dml_counts() {
    let (server, c) = pat_server().await;
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .respond_with(ok_json(json!({
            "statement_id": "st-ddl", "status": {"state": "SUCCEEDED"},
            "manifest": {"format": "JSON_ARRAY", "schema": {"column_count": 0, "columns": []}, "total_chunk_count": 0},
            "result": {}
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .respond_with(ok_json(succeeded(
            "st-merge",
            &[
                ("num_affected_rows", "LONG"),
                ("num_updated_rows", "LONG"),
                ("num_deleted_rows", "LONG"),
                ("num_inserted_rows", "LONG"),
            ],
            json!([["5", "2", "0", "3"]]),
        )))
        .mount(&server)
        .await;
    let res = c
        .execute(&Statement::new("CREATE SCHEMA IF NOT EXISTS x"))
        .await
        .unwrap();
    assert!(res.collect_rows().await.unwrap().is_empty());
    let res = c
        .execute(&Statement::new("MERGE …").idempotent(true))
        .await
        .unwrap();
    let counts = res.dml_counts();
    assert_eq!(
        (
            counts.affected,
            counts.inserted,
            counts.updated,
            counts.deleted
        ),
        (Some(5), Some(3), Some(2), Some(0))
    );
}

#[tokio::test(start_paused = true)]
async fn statement_is_cancelled_at_the_deadline() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .respond_with(ok_json(state("st-slow", "RUNNING")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{STATEMENTS}/st-slow")))
        .respond_with(ok_json(state("st-slow", "RUNNING")))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{STATEMENTS}/st-slow/cancel")))
        .respond_with(ResponseTemplate::new(200).set_body_string(""))
        .mount(&server)
        .await;
    mount_catch_all(&server).await;
    let opts = ClientOptions {
        statement_timeout: Duration::from_secs(60),
        ..options()
    };
    let c = client(pat_config(&server, "dapi-x").options(opts).build().unwrap());
    let started = Instant::now();
    let err = c
        .execute(&Statement::new("SELECT slow()"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::StatementTimeout { ref statement_id, .. } if statement_id == "st-slow"),
        "{err:?}"
    );
    assert!(started.elapsed() >= Duration::from_secs(60));
    assert!(
        started.elapsed() < Duration::from_secs(70),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        requests_to(&server, "POST", &format!("{STATEMENTS}/st-slow/cancel"))
            .await
            .len(),
        1
    );
    assert!(
        requests_to(&server, "GET", &format!("{STATEMENTS}/st-slow"))
            .await
            .len()
            >= 10
    );
}

#[tokio::test]
async fn canceled_state_is_an_error() {
    let (server, c) = pat_server().await;
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .respond_with(ok_json(state("st-c", "CANCELED")))
        .mount(&server)
        .await;
    let err = c.execute(&Statement::new("SELECT 1")).await.unwrap_err();
    assert!(
        matches!(err, Error::StatementCanceled { ref state, .. } if state == "CANCELED"),
        "{err:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_poll_cancels_the_statement() {
    let (server, c) = pat_server().await;
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .respond_with(ok_json(state("st-p", "RUNNING")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{STATEMENTS}/st-p")))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(json!({"error_code": "PERMISSION_DENIED", "message": "not yours"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{STATEMENTS}/st-p/cancel")))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    mount_catch_all(&server).await;
    let err = c.execute(&Statement::new("SELECT 1")).await.unwrap_err();
    assert_eq!(err.status(), Some(403));
    assert!(
        err.to_string().contains("PERMISSION_DENIED: not yours"),
        "{err}"
    );
    assert_eq!(
        requests_to(&server, "POST", &format!("{STATEMENTS}/st-p/cancel"))
            .await
            .len(),
        1
    );
}
