//! DatabricksSink, DatabricksSource, Unity Catalog listing, Jobs and ping against wiremock.

mod common;

use chrono::TimeZone;
use common::*;
use databricks_client::{ClientOptions, DatabricksSink, DatabricksSource, RunNow, TableName};
use futures::TryStreamExt;
use serde_json::{json, Value as J};
use sync_core::{
    Batch, ColumnDef, ColumnType, EffectiveDated, FailureKind, Receipt, Row, Sink, Source,
    TableSchema, Value, Window, WriteMode,
};
use wiremock::matchers::{body_partial_json, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TABLE_PATH: &str = "/api/2.1/unity-catalog/tables/main.erp.vendors";

fn schema() -> TableSchema {
    TableSchema {
        name: "vendors".into(),
        columns: vec![
            ColumnDef::new("id", ColumnType::BigInt).not_null(),
            ColumnDef::new("name", ColumnType::String),
            ColumnDef::new(
                "amt",
                ColumnType::Decimal {
                    precision: 18,
                    scale: 2,
                },
            ),
            ColumnDef::new("updated_at", ColumnType::Timestamp),
        ],
        primary_key: vec!["id".into()],
        cursor_column: Some("updated_at".into()),
        write_mode: WriteMode::Upsert,
        effective_dating: None,
    }
}

fn t(h: u32) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc.with_ymd_and_hms(2024, 1, 1, h, 0, 0).unwrap()
}

fn row(id: i64) -> Row {
    vec![
        Value::BigInt(id),
        Value::String(format!("vendor {id}")),
        Value::Decimal("10.25".parse().unwrap()),
        Value::Timestamp(t(1)),
    ]
}

fn batch(rows: Vec<Row>) -> Batch {
    Batch {
        rows,
        window: Window::new(t(0), t(2)),
        run_id: "run-1".into(),
        stream: "vendors".into(),
        as_of: None,
    }
}

async fn sink_with(server: &MockServer, opts: ClientOptions) -> DatabricksSink {
    let c = client(
        pat_config(server, "dapi-x")
            .options(opts)
            .catalog("main")
            .schema("erp")
            .build()
            .unwrap(),
    );
    DatabricksSink::from_config_defaults(c).unwrap()
}

fn ddl_ok() -> ResponseTemplate {
    ok_json(
        json!({"statement_id": "st-ddl", "status": {"state": "SUCCEEDED"},
                   "manifest": {"schema": {"columns": []}, "total_chunk_count": 0}, "result": {}}),
    )
}

fn merge_reply(id: &str, inserted: u64, updated: u64) -> ResponseTemplate {
    ok_json(succeeded(
        id,
        &[
            ("num_affected_rows", "LONG"),
            ("num_updated_rows", "LONG"),
            ("num_deleted_rows", "LONG"),
            ("num_inserted_rows", "LONG"),
        ],
        json!([[
            (inserted + updated).to_string(),
            updated.to_string(),
            "0",
            inserted.to_string()
        ]]),
    ))
}

#[tokio::test]
async fn prepare_creates_then_adds_missing_columns_in_a_separate_step() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .respond_with(ddl_ok())
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(TABLE_PATH))
        .respond_with(ok_json(json!({
            "name": "vendors", "catalog_name": "main", "schema_name": "erp", "full_name": "main.erp.vendors",
            "table_type": "MANAGED", "data_source_format": "DELTA",
            "columns": [
                {"name": "ID", "type_text": "bigint", "type_name": "LONG", "position": 0},
                {"name": "name", "type_text": "string", "type_name": "STRING", "position": 1}
            ]
        })))
        .mount(&server)
        .await;
    mount_catch_all(&server).await;
    let sink = sink_with(&server, options()).await;
    sink.prepare(&schema()).await.unwrap();
    assert_eq!(
        statement_texts(&server).await,
        [
            "CREATE SCHEMA IF NOT EXISTS `main`.`erp`",
            "CREATE TABLE IF NOT EXISTS `main`.`erp`.`vendors` (`id` BIGINT NOT NULL, `name` STRING, `amt` DECIMAL(18,2), `updated_at` TIMESTAMP) USING DELTA",
            "ALTER TABLE `main`.`erp`.`vendors` ADD COLUMNS (`amt` DECIMAL(18,2), `updated_at` TIMESTAMP)",
        ]
    );
}

#[tokio::test]
async fn prepare_refuses_a_column_of_another_type() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .respond_with(ddl_ok())
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(TABLE_PATH))
        .respond_with(ok_json(json!({"name": "vendors", "columns": [
            {"name": "id", "type_text": "bigint"}, {"name": "amt", "type_text": "string"}]})))
        .mount(&server)
        .await;
    let sink = sink_with(&server, options()).await;
    let err = sink.prepare(&schema()).await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::Permanent);
    assert_eq!(
        err.message(),
        "table main.erp.vendors: column `amt` is string in Databricks but the schema says DECIMAL(18,2)"
    );
    assert_eq!(
        statement_texts(&server).await.len(),
        2,
        "no ALTER after a mismatch"
    );
}

#[tokio::test]
async fn write_upserts_with_merge_split_under_the_limit_and_returns_a_receipt() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .respond_with(Seq::new(vec![
            merge_reply("st-m1", 2, 1),
            merge_reply("st-m2", 1, 1),
        ]))
        .mount(&server)
        .await;
    mount_catch_all(&server).await;
    let opts = ClientOptions {
        max_statement_bytes: 800,
        ..options()
    };
    let sink = sink_with(&server, opts).await;
    let rows: Vec<Row> = (1..=5).map(row).collect();
    let receipt = sink.write(&schema(), &batch(rows)).await.unwrap();
    let texts = statement_texts(&server).await;
    assert_eq!(texts.len(), 2);
    assert_eq!(
        receipt,
        Receipt {
            statement_ids: vec!["st-m1".into(), "st-m2".into()],
            rows_written: 5,
            inserted: Some(3),
            updated: Some(2),
            statements: 2,
            sql_bytes: texts.iter().map(|t| t.len() as u64).sum(),
            ..Receipt::default()
        }
    );
    for s in &texts {
        assert!(
            s.starts_with("MERGE INTO `main`.`erp`.`vendors` AS tgt USING (SELECT * FROM VALUES ("),
            "{s}"
        );
        assert!(s.len() <= 800);
    }
}

#[tokio::test]
async fn effective_dated_batches_are_followed_by_one_current_flag_merge() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .respond_with(Seq::new(vec![
            merge_reply("st-rows", 3, 0),
            merge_reply("st-flags", 0, 1),
            merge_reply("st-sweep", 0, 2),
        ]))
        .mount(&server)
        .await;
    mount_catch_all(&server).await;
    let sink = sink_with(&server, options()).await;
    assert!(sink.maintains_current_flags());
    let mut s = schema();
    s.columns
        .push(ColumnDef::new("effdt", ColumnType::Date).not_null());
    s.columns
        .push(ColumnDef::new("is_current", ColumnType::Boolean));
    s.primary_key = vec!["id".into(), "effdt".into()];
    s.effective_dating = Some(EffectiveDated::new(["id"], "effdt", "is_current"));
    let dated = |id: i64, effdt: &str| {
        let mut r = row(id);
        r.push(Value::Date(effdt.parse().unwrap()));
        r.push(Value::Bool(true));
        r
    };
    let mut b = batch(vec![
        dated(1, "2026-01-01"),
        dated(1, "2026-02-01"),
        dated(2, "2026-01-01"),
    ]);
    b.as_of = Some("2026-03-01".parse().unwrap());
    let receipt = sink.write(&s, &b).await.unwrap();
    assert_eq!(receipt.statement_ids, vec!["st-rows", "st-flags"]);
    assert_eq!(receipt.rows_written, 3);
    assert_eq!(receipt.inserted, Some(3));

    let swept = sink
        .refresh_current(&s, "2026-03-02".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(swept.statement_ids, vec!["st-sweep"]);

    let texts = statement_texts(&server).await;
    assert_eq!(texts.len(), 3);
    assert!(texts[0]
        .starts_with("MERGE INTO `main`.`erp`.`vendors` AS tgt USING (SELECT * FROM VALUES"));
    assert!(
        texts[1].contains("ROW_NUMBER() OVER (PARTITION BY `id`, `effdt` <= DATE'2026-03-01' ORDER BY `effdt` DESC)")
            && texts[1].contains("WHERE `id` IN (1, 2)) AS ranked"),
        "{}",
        texts[1]
    );
    assert!(
        texts[2].contains("DATE'2026-03-02'") && !texts[2].contains(" IN ("),
        "{}",
        texts[2]
    );
}

#[tokio::test]
async fn duplicate_keys_never_reach_the_server() {
    let server = MockServer::start().await;
    mount_catch_all(&server).await;
    let sink = sink_with(&server, options()).await;
    let err = sink
        .write(&schema(), &batch(vec![row(1), row(2), row(1)]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::Permanent);
    assert!(
        err.message().contains("same primary key (id=1)"),
        "{}",
        err.message()
    );
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn append_inserts_and_is_not_retried_on_500_but_merge_is() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .respond_with(Seq::new(vec![
            ResponseTemplate::new(500),
            ok_json(succeeded(
                "st-i",
                &[("num_affected_rows", "LONG"), ("num_inserted_rows", "LONG")],
                json!([["1", "1"]]),
            )),
        ]))
        .mount(&server)
        .await;
    let sink = sink_with(&server, options()).await;
    let append = TableSchema {
        write_mode: WriteMode::Append,
        ..schema()
    };
    let err = sink.write(&append, &batch(vec![row(1)])).await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::Transient);
    let texts = statement_texts(&server).await;
    assert_eq!(texts.len(), 1);
    assert!(texts[0].starts_with("INSERT INTO `main`.`erp`.`vendors` (`id`, `name`, `amt`, `updated_at`) VALUES (1, 'vendor 1', "), "{}", texts[0]);
    let r = sink.write(&append, &batch(vec![row(1)])).await.unwrap();
    assert_eq!((r.rows_written, r.inserted), (1, Some(1)));

    // The same failure on an upsert is retried, because a keyed MERGE is idempotent.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .respond_with(Seq::new(vec![
            ResponseTemplate::new(500),
            merge_reply("st-m", 1, 0),
        ]))
        .mount(&server)
        .await;
    let sink = sink_with(&server, options()).await;
    sink.write(&schema(), &batch(vec![row(1)])).await.unwrap();
    assert_eq!(statement_texts(&server).await.len(), 2);
}

#[tokio::test]
async fn failed_sql_is_permanent_and_throttling_transient() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .respond_with(ok_json(
            json!({"statement_id": "st-x", "status": {"state": "FAILED", "sql_state": "42703",
            "error": {"error_code": "BAD_REQUEST", "message": "[UNRESOLVED_COLUMN] nope"}}}),
        ))
        .mount(&server)
        .await;
    let sink = sink_with(&server, options()).await;
    let err = sink
        .write(&schema(), &batch(vec![row(1)]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::Permanent);
    assert!(
        err.message().contains("SQLSTATE 42703"),
        "{}",
        err.message()
    );

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "0"))
        .mount(&server)
        .await;
    let sink = sink_with(&server, options()).await;
    let err = sink
        .write(&schema(), &batch(vec![row(1)]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::Transient);
}

#[tokio::test]
async fn count_uses_typed_window_parameters() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .and(body_partial_json(json!({"parameters": [
            {"name": "window_from", "value": "2024-01-01T00:00:00.000000Z", "type": "TIMESTAMP"},
            {"name": "window_to", "value": "2024-01-01T02:00:00.000000Z", "type": "TIMESTAMP"}]})))
        .respond_with(ok_json(succeeded(
            "st-c",
            &[("row_count", "LONG")],
            json!([["42"]]),
        )))
        .mount(&server)
        .await;
    mount_catch_all(&server).await;
    let sink = sink_with(&server, options()).await;
    let n = sink
        .count(&schema(), Window::new(t(0), t(2)))
        .await
        .unwrap();
    assert_eq!(n, Some(42));
    assert_eq!(
        statement_texts(&server).await,
        ["SELECT COUNT(*) AS `row_count` FROM `main`.`erp`.`vendors` WHERE `updated_at` >= :window_from AND `updated_at` < :window_to"]
    );
}

#[tokio::test]
async fn source_reads_chunks_as_pages_with_exact_decimals() {
    let server = MockServer::start().await;
    let cols = [
        ("id", "LONG"),
        ("name", "STRING"),
        ("amt", "DECIMAL"),
        ("updated_at", "TIMESTAMP"),
    ];
    let mut first = succeeded(
        "st-r",
        &cols,
        json!([["1", "a", "12345678901234567.89", "2024-01-01T01:00:00Z"]]),
    );
    first["manifest"]["total_chunk_count"] = json!(2);
    first["result"]["next_chunk_internal_link"] =
        json!(format!("{STATEMENTS}/st-r/result/chunks/1"));
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .and(body_partial_json(
            json!({"parameters": [{"name": "window_from"}, {"name": "window_to"}]}),
        ))
        .respond_with(ok_json(first))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{STATEMENTS}/st-r/result/chunks/1")))
        .respond_with(ok_json(
            json!({"chunk_index": 1, "data_array": [["2", null, "0.10", "2024-01-01 01:30:00"]]}),
        ))
        .mount(&server)
        .await;
    mount_catch_all(&server).await;
    let c = client(pat_config(&server, "dapi-x").build().unwrap());
    let source = DatabricksSource::new(
        c,
        TableName::new("main", "erp", "vendors").unwrap(),
        &schema(),
    )
    .unwrap();
    assert!(
        source
            .identity()
            .starts_with("databricks://127.0.0.1/main.erp.vendors"),
        "{}",
        source.identity()
    );
    let pages: Vec<_> = source
        .read(Window::new(t(0), t(2)))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(pages.len(), 2);
    let recs: Vec<J> = pages
        .iter()
        .flat_map(|p| p.records.iter().cloned().map(J::from))
        .collect();
    assert_eq!(
        recs,
        [
            json!({"id": 1, "name": "a", "amt": "12345678901234567.89", "updated_at": "2024-01-01T01:00:00.000000Z"}),
            json!({"id": 2, "name": null, "amt": "0.10", "updated_at": "2024-01-01T01:30:00.000000Z"}),
        ]
    );
    assert!(pages.iter().all(|p| !p.truncated));
    assert_eq!(
        statement_texts(&server).await,
        ["SELECT `id`, `name`, `amt`, `updated_at` FROM `main`.`erp`.`vendors` WHERE `updated_at` >= :window_from AND `updated_at` < :window_to ORDER BY `updated_at`"]
    );
}

#[tokio::test]
async fn table_listing_follows_tokens_through_empty_pages() {
    let server = MockServer::start().await;
    let base = "/api/2.1/unity-catalog/tables";
    Mock::given(method("GET"))
        .and(path(base))
        .and(query_param("catalog_name", "main"))
        .and(query_param("schema_name", "erp"))
        .and(query_param("max_results", "0"))
        .and(query_param_is_missing("page_token"))
        .respond_with(ok_json(
            json!({"tables": [{"name": "a"}], "next_page_token": "t1"}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(base))
        .and(query_param("page_token", "t1"))
        .respond_with(ok_json(json!({"tables": [], "next_page_token": "t2"})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(base))
        .and(query_param("page_token", "t2"))
        .respond_with(ok_json(json!({"tables": [{"name": "b"}, {"name": "c"}]})))
        .mount(&server)
        .await;
    mount_catch_all(&server).await;
    let c = client(pat_config(&server, "dapi-x").build().unwrap());
    let names: Vec<String> = c
        .list_tables("main", "erp")
        .map_ok(|t| t.name)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn run_now_sends_an_idempotency_token_and_is_retried() {
    let server = MockServer::start().await;
    let req = RunNow::for_run(77, "run-2026-11-27").parameter("table", "main.erp.vendors");
    Mock::given(method("POST"))
        .and(path("/api/2.1/jobs/run-now"))
        .and(body_partial_json(
            json!({"job_id": 77, "job_parameters": {"table": "main.erp.vendors"},
                                      "idempotency_token": req.idempotency_token}),
        ))
        .respond_with(Seq::new(vec![
            ResponseTemplate::new(504),
            ok_json(json!({"run_id": 9001, "number_in_job": 3})),
        ]))
        .mount(&server)
        .await;
    mount_catch_all(&server).await;
    let c = client(pat_config(&server, "dapi-x").build().unwrap());
    let run = c.run_job_now(&req).await.unwrap();
    assert_eq!(run.run_id, 9001);
    let hits = requests_to(&server, "POST", "/api/2.1/jobs/run-now").await;
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0].body, hits[1].body, "a retry repeats the same token");
}

#[tokio::test]
async fn ping_reports_what_works_and_what_does_not() {
    let server = MockServer::start().await;
    mount_oauth(&server, vec![token_reply("tok-1")]).await;
    Mock::given(method("GET"))
        .and(path("/api/2.0/sql/warehouses/wh-1"))
        .respond_with(ok_json(
            json!({"id": "wh-1", "name": "Loader", "state": "RUNNING"}),
        ))
        .mount(&server)
        .await;
    let c = client(oauth_config(&server).build().unwrap());
    let report = c.ping().await;
    assert!(report.is_ok(), "{report}");
    let text = report.to_string();
    assert!(
        text.contains("OAuth token issued for client id sp-client-id"),
        "{text}"
    );
    assert!(
        text.contains("warehouse Loader (wh-1) is RUNNING"),
        "{text}"
    );

    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/2.0/sql/warehouses/wh-1"))
        .respond_with(ResponseTemplate::new(404).set_body_json(
            json!({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "No warehouse"}),
        ))
        .mount(&server)
        .await;
    let c = client(pat_config(&server, "dapi-x").build().unwrap());
    let report = c.ping().await;
    assert!(!report.is_ok());
    assert!(
        report
            .to_string()
            .contains("FAILED: warehouse wh-1 does not exist in this workspace"),
        "{report}"
    );

    let server = MockServer::start().await;
    mount_oauth(
        &server,
        vec![ResponseTemplate::new(401)
            .set_body_json(json!({"error": "invalid_client", "error_description": "bad secret"}))],
    )
    .await;
    let c = client(oauth_config(&server).build().unwrap());
    let report = c.ping().await;
    let text = report.to_string();
    assert!(
        text.contains("credentials: FAILED") && text.contains("invalid_client"),
        "{text}"
    );
    assert!(
        text.contains("warehouse:   skipped: credentials failed"),
        "{text}"
    );
    assert!(!text.contains(CLIENT_SECRET));
}
