//! DatabricksCheckpointStore and DatabricksAuditLog against wiremock.

mod common;

use std::collections::BTreeMap;

use chrono::TimeZone;
use common::*;
use databricks_client::{DatabricksAuditLog, DatabricksCheckpointStore, TableName};
use serde_json::json;
use sync_core::audit::{AuditEntry, AuditLog, Outcome};
use sync_core::state::{CheckpointStore, StreamState};
use sync_core::{Receipt, Window};
use wiremock::matchers::{body_partial_json, body_string_contains, method, path};
use wiremock::{Mock, MockServer};

fn t(h: u32) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc.with_ymd_and_hms(2024, 1, 1, h, 0, 0).unwrap()
}

async fn mount_ddl_and_uc(server: &MockServer, table: &str, columns: serde_json::Value) {
    for prefix in ["CREATE SCHEMA", "CREATE TABLE"] {
        Mock::given(method("POST"))
            .and(path(STATEMENTS))
            .and(body_string_contains(prefix))
            .respond_with(ok_json(state("st-ddl", "SUCCEEDED")))
            .mount(server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path(format!(
            "/api/2.1/unity-catalog/tables/main.ops.{table}"
        )))
        .respond_with(ok_json(json!({"name": table, "columns": columns})))
        .mount(server)
        .await;
}

fn merge_ok() -> wiremock::ResponseTemplate {
    ok_json(succeeded(
        "st-m",
        &[("num_affected_rows", "LONG")],
        json!([["1"]]),
    ))
}

#[tokio::test]
async fn checkpoint_store_saves_with_merge_and_loads_back() {
    let server = MockServer::start().await;
    mount_ddl_and_uc(
        &server,
        "_ml_checkpoints",
        json!([{"name": "pipeline", "type_text": "string"}, {"name": "stream", "type_text": "string"},
               {"name": "format_version", "type_text": "int"}, {"name": "state_json", "type_text": "string"},
               {"name": "updated_at", "type_text": "timestamp"}]),
    )
    .await;
    let mut stream_state = StreamState::default();
    stream_state.commit(Window::new(t(0), t(2)), t(3));
    stream_state.fail(Window::new(t(2), t(4)), "HTTP 503 'quoted' \\ error", t(5));
    let state_json = serde_json::to_string(&stream_state).unwrap();
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .and(body_string_contains(
            "SELECT `stream`, `format_version`, `state_json`",
        ))
        .and(body_partial_json(
            json!({"parameters": [{"name": "pipeline", "value": "nightly", "type": "STRING"}]}),
        ))
        .respond_with(ok_json(succeeded(
            "st-l",
            &[
                ("stream", "STRING"),
                ("format_version", "INT"),
                ("state_json", "STRING"),
            ],
            json!([["vendors", "1", state_json]]),
        )))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .and(body_string_contains(
            "MERGE INTO `main`.`ops`.`_ml_checkpoints`",
        ))
        .respond_with(merge_ok())
        .mount(&server)
        .await;
    mount_catch_all(&server).await;

    // The default table: `<catalog>.<schema>._ml_checkpoints` from the configuration.
    let c = client(
        pat_config(&server, "dapi-x")
            .catalog("main")
            .schema("ops")
            .build()
            .unwrap(),
    );
    let store = DatabricksCheckpointStore::new(c).unwrap();
    store
        .save_stream("nightly", "vendors", &stream_state)
        .await
        .unwrap();
    let loaded = store.load("nightly").await.unwrap();
    assert_eq!(loaded.streams.get("vendors"), Some(&stream_state));

    let texts = statement_texts(&server).await;
    assert_eq!(
        texts
            .iter()
            .filter(|s| s.starts_with("CREATE TABLE"))
            .count(),
        1,
        "prepared once"
    );
    let merge = texts.iter().find(|s| s.starts_with("MERGE")).unwrap();
    assert!(
        merge.contains("ON tgt.`pipeline` <=> src.`pipeline` AND tgt.`stream` <=> src.`stream`"),
        "{merge}"
    );
    // The error text with a quote and a backslash is escaped the Databricks way.
    assert!(merge.contains(r"HTTP 503 \'quoted\' \\\\ error"), "{merge}");
}

#[tokio::test]
async fn checkpoint_store_refuses_an_unknown_format_version() {
    let server = MockServer::start().await;
    mount_ddl_and_uc(
        &server,
        "_ml_checkpoints",
        json!([{"name": "pipeline", "type_text": "string"}, {"name": "stream", "type_text": "string"},
               {"name": "format_version", "type_text": "int"}, {"name": "state_json", "type_text": "string"},
               {"name": "updated_at", "type_text": "timestamp"}]),
    )
    .await;
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .and(body_string_contains("SELECT"))
        .respond_with(ok_json(succeeded(
            "st-l",
            &[
                ("stream", "STRING"),
                ("format_version", "INT"),
                ("state_json", "STRING"),
            ],
            json!([["vendors", "99", "{}"]]),
        )))
        .mount(&server)
        .await;
    let c = client(pat_config(&server, "dapi-x").build().unwrap());
    let store = DatabricksCheckpointStore::in_table(
        c,
        TableName::new("main", "ops", "_ml_checkpoints").unwrap(),
    );
    let err = store.load("nightly").await.unwrap_err().to_string();
    assert!(
        err.contains("main.ops._ml_checkpoints")
            && err.contains("stream `vendors`")
            && err.contains("99"),
        "{err}"
    );
}

#[tokio::test]
async fn default_tables_need_a_catalog_and_schema() {
    let server = MockServer::start().await;
    let c = client(
        pat_config(&server, "dapi-x")
            .catalog("main")
            .build()
            .unwrap(),
    );
    let err = DatabricksAuditLog::new(c).unwrap_err().to_string();
    assert!(err.contains("ConfigBuilder::schema"), "{err}");
}

#[tokio::test]
async fn audit_log_appends_with_merge_and_reads_entries_back() {
    let server = MockServer::start().await;
    let schema_cols: Vec<_> = [
        ("pipeline", "string"),
        ("run_id", "string"),
        ("stream", "string"),
        ("window_from", "timestamp"),
        ("window_to", "timestamp"),
        ("attempt", "int"),
        ("started_at", "timestamp"),
        ("finished_at", "timestamp"),
        ("rows_read", "bigint"),
        ("rows_written", "bigint"),
        ("rows_rejected", "bigint"),
        ("outcome", "string"),
        ("error", "string"),
        ("statement_ids", "string"),
        ("entry_json", "string"),
    ]
    .iter()
    .map(|(n, t)| json!({"name": n, "type_text": t}))
    .collect();
    mount_ddl_and_uc(&server, "_ml_audit", json!(schema_cols)).await;
    let mut entry = AuditEntry::new(
        "run-1",
        "nightly",
        "vendors",
        Window::new(t(0), t(2)),
        1,
        Outcome::Committed,
        t(3),
    );
    entry.finished_at = t(4);
    entry.rows_read = 10;
    entry.rows_written = 9;
    entry.rows_rejected = 1;
    entry.receipt = Receipt {
        statement_ids: vec!["st-1".into(), "st-2".into()],
        rows_written: 9,
        inserted: Some(9),
        updated: Some(0),
    };
    entry.annotations = BTreeMap::from([("job_run_id".to_string(), "9001".to_string())]);
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .and(body_string_contains("MERGE INTO `main`.`ops`.`_ml_audit`"))
        .respond_with(merge_ok())
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .and(body_string_contains("SELECT `entry_json`"))
        .and(body_partial_json(json!({"parameters": [{"name": "pipeline", "value": "nightly"}, {"name": "stream", "value": "vendors"}]})))
        .respond_with(ok_json(succeeded(
            "st-e",
            &[("entry_json", "STRING")],
            json!([[serde_json::to_string(&entry).unwrap()]]),
        )))
        .mount(&server)
        .await;
    mount_catch_all(&server).await;
    let c = client(pat_config(&server, "dapi-x").build().unwrap());
    let log = DatabricksAuditLog::in_table(c, TableName::new("main", "ops", "_ml_audit").unwrap());
    log.append(&entry).await.unwrap();
    assert_eq!(
        log.entries("nightly", Some("vendors")).await.unwrap(),
        vec![entry]
    );
    let texts = statement_texts(&server).await;
    let merge = texts.iter().find(|s| s.starts_with("MERGE")).unwrap();
    assert!(
        merge.contains("'committed'") && merge.contains("'st-1,st-2'"),
        "{merge}"
    );
    assert!(
        texts.last().unwrap().ends_with(
            "WHERE `pipeline` = :pipeline AND `stream` = :stream ORDER BY `started_at`, `attempt`"
        ),
        "{:?}",
        texts.last()
    );
}
