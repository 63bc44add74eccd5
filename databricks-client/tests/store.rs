//! DatabricksCheckpointStore and DatabricksAuditLog against wiremock.

mod common;

use std::collections::BTreeMap;

use chrono::TimeZone;
use common::*;
use databricks_client::{DatabricksAuditLog, DatabricksCheckpointStore, TableName};
use serde_json::json;
use sync_core::audit::{AuditEntry, AuditLog, Outcome};
use sync_core::state::{CheckpointStore, Lease, StreamState};
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

fn uc_columns(cols: &[(&str, &str)]) -> serde_json::Value {
    json!(cols
        .iter()
        .map(|(n, t)| json!({"name": n, "type_text": t}))
        .collect::<Vec<_>>())
}

async fn mount_state_tables(server: &MockServer) {
    // No table of the old layout to migrate from.
    Mock::given(method("GET"))
        .and(path(
            "/api/2.1/unity-catalog/tables/main.ops._ml_checkpoints",
        ))
        .respond_with(wiremock::ResponseTemplate::new(404).set_body_json(
            json!({"error_code": "TABLE_DOES_NOT_EXIST", "message": "no such table"}),
        ))
        .mount(server)
        .await;
    mount_ddl_and_uc(
        server,
        "_ml_checkpoint_windows",
        uc_columns(&[
            ("pipeline", "string"),
            ("stream", "string"),
            ("kind", "string"),
            ("window_from", "timestamp"),
            ("window_to", "timestamp"),
            ("format_version", "int"),
            ("attempts", "int"),
            ("last_error", "string"),
            ("first_failed_at", "timestamp"),
            ("last_failed_at", "timestamp"),
            ("record_json", "string"),
            ("lease_version", "bigint"),
            ("written_by", "string"),
            ("updated_at", "timestamp"),
        ]),
    )
    .await;
    mount_ddl_and_uc(
        server,
        "_ml_leases",
        uc_columns(&[
            ("pipeline", "string"),
            ("stream", "string"),
            ("owner", "string"),
            ("version", "bigint"),
            ("expires_at", "timestamp"),
            ("updated_at", "timestamp"),
        ]),
    )
    .await;
}

fn affected(n: u64) -> wiremock::ResponseTemplate {
    ok_json(succeeded(
        "st-u",
        &[("num_affected_rows", "LONG")],
        json!([[n.to_string()]]),
    ))
}

async fn store_on(server: &MockServer) -> DatabricksCheckpointStore {
    // The default tables: `<catalog>.<schema>._ml_checkpoint_windows` and `._ml_leases`.
    let c = client(
        pat_config(server, "dapi-x")
            .catalog("main")
            .schema("ops")
            .build()
            .unwrap(),
    );
    DatabricksCheckpointStore::new(c).unwrap()
}

#[tokio::test]
async fn checkpoint_store_fences_on_the_lease_then_merges_one_row_per_window() {
    let server = MockServer::start().await;
    mount_state_tables(&server).await;
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .and(body_string_contains("UPDATE `main`.`ops`.`_ml_leases`"))
        .respond_with(affected(1))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .and(body_string_contains("SELECT `stream`, `kind`"))
        .respond_with(ok_json(succeeded(
            "st-l",
            &[
                ("stream", "STRING"),
                ("kind", "STRING"),
                ("format_version", "INT"),
                ("record_json", "STRING"),
            ],
            json!([]),
        )))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .and(body_string_contains(
            "MERGE INTO `main`.`ops`.`_ml_checkpoint_windows`",
        ))
        .respond_with(merge_ok())
        .mount(&server)
        .await;
    mount_catch_all(&server).await;

    let mut stream_state = StreamState::default();
    stream_state.commit(Window::new(t(0), t(2)), t(3));
    stream_state.fail(Window::new(t(2), t(4)), "HTTP 503 'quoted' \\ error", t(5));
    let store = store_on(&server).await;
    let lease = Lease::new("nightly", "vendors", "worker-1", 7, t(6));
    store.save_stream(&lease, &stream_state).await.unwrap();

    let texts = statement_texts(&server).await;
    assert_eq!(
        texts
            .iter()
            .filter(|s| s.starts_with("CREATE TABLE"))
            .count(),
        2,
        "both tables prepared once"
    );
    let fence = texts.iter().position(|s| s.starts_with("UPDATE")).unwrap();
    let merge = texts.iter().position(|s| s.starts_with("MERGE")).unwrap();
    assert!(fence < merge, "the fence runs before the write: {texts:#?}");
    assert!(
        texts[fence].ends_with(
            "WHERE `pipeline` = :pipeline AND `stream` = :stream AND `version` = :version AND `owner` = :owner"
        ),
        "{}",
        texts[fence]
    );
    let merge = &texts[merge];
    assert!(
        merge.contains(
            "ON tgt.`pipeline` <=> src.`pipeline` AND tgt.`stream` <=> src.`stream` AND tgt.`kind` <=> src.`kind` AND tgt.`window_from` <=> src.`window_from` AND tgt.`window_to` <=> src.`window_to`"
        ),
        "{merge}"
    );
    // One row per committed interval, per failed window, and the stream row.
    for kind in ["'committed'", "'failed'", "'stream'"] {
        assert!(merge.contains(kind), "{kind} in {merge}");
    }
    // The error text with a quote and a backslash is escaped the Databricks way.
    assert!(merge.contains(r"HTTP 503 \'quoted\' \\\\ error"), "{merge}");
}

#[tokio::test]
async fn a_fence_that_matches_no_row_is_a_lost_lease_and_nothing_is_written() {
    let server = MockServer::start().await;
    mount_state_tables(&server).await;
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .and(body_string_contains("UPDATE `main`.`ops`.`_ml_leases`"))
        .respond_with(affected(0))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .and(body_string_contains(
            "SELECT `owner`, `version`, `expires_at`",
        ))
        .respond_with(ok_json(succeeded(
            "st-l",
            &[
                ("owner", "STRING"),
                ("version", "BIGINT"),
                ("expires_at", "TIMESTAMP"),
            ],
            json!([["worker-2", "8", "2024-01-01T09:00:00Z"]]),
        )))
        .mount(&server)
        .await;
    mount_catch_all(&server).await;

    let store = store_on(&server).await;
    let lease = Lease::new("nightly", "vendors", "worker-1", 7, t(6));
    let err = store
        .save_stream(&lease, &StreamState::default())
        .await
        .unwrap_err();
    assert!(matches!(err, sync_core::Error::LeaseLost { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("stream `vendors`")
            && msg.contains("worker `worker-1` lost its lease")
            && msg.contains("leased by `worker-2` (version 8)")
            && msg.contains("state.lease_ttl"),
        "{msg}"
    );
    let texts = statement_texts(&server).await;
    assert!(
        !texts
            .iter()
            .any(|s| s.starts_with("MERGE INTO `main`.`ops`.`_ml_checkpoint_windows`")),
        "{texts:#?}"
    );
}

#[tokio::test]
async fn checkpoint_store_refuses_an_unknown_layout_version() {
    let server = MockServer::start().await;
    mount_state_tables(&server).await;
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .and(body_string_contains("SELECT"))
        .respond_with(ok_json(succeeded(
            "st-l",
            &[
                ("stream", "STRING"),
                ("kind", "STRING"),
                ("format_version", "INT"),
                ("record_json", "STRING"),
            ],
            json!([["vendors", "committed", "99", "{}"]]),
        )))
        .mount(&server)
        .await;
    let c = client(pat_config(&server, "dapi-x").build().unwrap());
    let store = DatabricksCheckpointStore::with_tables(
        c,
        TableName::new("main", "ops", "_ml_checkpoint_windows").unwrap(),
        TableName::new("main", "ops", "_ml_leases").unwrap(),
    );
    let err = store.load("nightly").await.unwrap_err().to_string();
    assert!(
        err.contains("main.ops._ml_checkpoint_windows")
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
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .and(body_string_contains("ALTER TABLE"))
        .respond_with(ok_json(state("st-alter", "SUCCEEDED")))
        .mount(&server)
        .await;
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
        statements: 2,
        sql_bytes: 4_321,
        files_staged: 1,
        bytes_staged: 98_765,
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
    // What the sink sent is in columns too: `…, entry_json, 2, 4321, 1, 98765)`.
    assert!(merge.contains("}', 2, 4321, 1, 98765)"), "{merge}");
    // The table as first released (the columns above) lacks them: they are added, nullable.
    assert!(
        texts.iter().any(|s| s
            == "ALTER TABLE `main`.`ops`.`_ml_audit` ADD COLUMNS (`statements` BIGINT, `sql_bytes` BIGINT, `files_staged` BIGINT, `bytes_staged` BIGINT)"),
        "{texts:?}"
    );
    assert!(
        texts.last().unwrap().ends_with(
            "WHERE `pipeline` = :pipeline AND `stream` = :stream ORDER BY `started_at`, `attempt`"
        ),
        "{:?}",
        texts.last()
    );
}
