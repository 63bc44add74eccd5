//! `PeopleSoftSink` (write-back through CIRT) against a wiremock PeopleSoft on 127.0.0.1.

use std::sync::Arc;
use std::time::Duration;

use peoplesoft_client::writeback::{
    BaselineSeedingSink, BaselineStore, ChangeDetection, CiTarget, ConflictPolicy,
    JsonFileBaselineStore, MemoryBaselineStore, PeopleSoftSink, RecordAction, RecordOutcome,
    WriteReport,
};
use peoplesoft_client::{Connection, Credentials, LoadProtection, PeopleSoftClient, Scheme};
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde_json::{json, Value as Json};
use sync_core::http::{LimiterConfig, RequestLimiter, RetryPolicy};
use sync_core::memory::MemorySink;
use sync_core::{Batch, ColumnDef, ColumnType, FailureKind, Row, Sink, TableSchema, Value, Window};
use wiremock::matchers::{any, body_json, body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const BASE: &str = "/PSIGW/RESTListeningConnector/PSFT_EP";
const PASSWORD: &str = "wr1te-BACK-s3cret";
const STREAM: &str = "vendor_master";

fn fixture(name: &str) -> String {
    let p = format!(
        "{}/tests/fixtures/writeback/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn get_path(vendor: &str) -> String {
    format!("{BASE}/CIRT_VNDR_ID_G_GET.v1/SHARE/{vendor}")
}

fn post_path() -> String {
    format!("{BASE}/CIRT_VNDR_ID_C_POST.v1")
}

fn put_path() -> String {
    format!("{BASE}/CIRT_VNDR_ID_U_PUT.v1")
}

fn schema() -> TableSchema {
    TableSchema {
        name: "vendor_master".into(),
        columns: vec![
            ColumnDef::new("setid", ColumnType::String),
            ColumnDef::new("vendor_id", ColumnType::String),
            ColumnDef::new("name", ColumnType::String),
            ColumnDef::new("status", ColumnType::String),
            ColumnDef::new(
                "credit_limit",
                ColumnType::Decimal {
                    precision: 18,
                    scale: 2,
                },
            ),
            ColumnDef::new("since", ColumnType::Date),
            ColumnDef::new("last_modified_by", ColumnType::String),
        ],
        primary_key: vec!["setid".into(), "vendor_id".into()],
        cursor_column: None,
        write_mode: Default::default(),
        effective_dating: None,
    }
}

/// A vendor row; `limit` is exact decimal text.
fn row(vendor: &str, name: &str, limit: &str, modified_by: &str) -> Row {
    vec![
        Value::String("SHARE".into()),
        Value::String(vendor.into()),
        Value::String(name.into()),
        Value::String("A".into()),
        Value::Decimal(limit.parse::<Decimal>().unwrap()),
        Value::Date("2020-01-15".parse().unwrap()),
        Value::String(modified_by.into()),
    ]
}

fn batch(rows: Vec<Row>) -> Batch {
    Batch {
        rows,
        window: Window::new(
            "2026-01-01T00:00:00Z".parse().unwrap(),
            "2026-01-02T00:00:00Z".parse().unwrap(),
        ),
        run_id: "run-1".into(),
        stream: STREAM.into(),
        as_of: None,
    }
}

/// What PeopleSoft's Get returns for a vendor.
fn ps_record(vendor: &str, name: &str) -> Json {
    json!({
        "SETID": "SHARE", "VENDOR_ID": vendor, "NAME1": name, "VENDOR_STATUS": "A",
        "CREDIT_LIMIT": 1000.5, "SINCE_DT": "2020-01-15"
    })
}

/// The exact body the sink must send for a vendor.
fn ps_body(vendor: &str, name: &str) -> Json {
    json!({
        "SETID": "SHARE", "VENDOR_ID": vendor, "NAME1": name, "VENDOR_STATUS": "A",
        "CREDIT_LIMIT": "1000.50", "SINCE_DT": "2020-01-15"
    })
}

fn target() -> CiTarget {
    CiTarget::cirt(
        "VNDR_ID",
        1,
        &[("setid", "SETID"), ("vendor_id", "VENDOR_ID")],
    )
    .field("name", "NAME1")
    .field("status", "VENDOR_STATUS")
    .field("credit_limit", "CREDIT_LIMIT")
    .field("since", "SINCE_DT")
    .echo_oprid("last_modified_by", "MLC_SYNC")
}

fn connection(server: &MockServer) -> Connection {
    let addr = server.address();
    Connection::builder(addr.ip().to_string(), u32::from(addr.port()), "PSFT_EP")
        .scheme(Scheme::Http)
        .allow_http(true)
        .request_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// No HTTP-level retries, so every retry in these tests is the sink's own per-record retry.
fn protection() -> LoadProtection {
    LoadProtection {
        max_concurrent: 4,
        min_gap: Duration::ZERO,
        retry: RetryPolicy::none(),
        ..LoadProtection::default()
    }
}

fn credentials() -> Credentials {
    Credentials::basic("MLC_WRITER", SecretString::from(PASSWORD.to_string()))
}

/// A client with an isolated limiter: the sink's requests go through it.
fn client(server: &MockServer) -> PeopleSoftClient {
    PeopleSoftClient::builder(connection(server), credentials())
        .protection(protection())
        .limiter(Arc::new(RequestLimiter::new(LimiterConfig {
            max_concurrent: 4,
            min_gap: Duration::ZERO,
        })))
        .build()
        .unwrap()
}

fn sink_with(
    server: &MockServer,
    target: CiTarget,
    store: Arc<dyn BaselineStore>,
    dry_run: bool,
) -> PeopleSoftSink {
    PeopleSoftSink::builder(client(server))
        .target(STREAM, target)
        .baselines(store)
        .retry_delay(Duration::from_millis(1))
        .max_attempts(3)
        .dry_run(dry_run)
        .build()
        .unwrap()
}

/// Any request no other mock matched answers 404 and fails the test when dropped.
async fn no_other_requests(server: &MockServer) {
    Mock::given(any())
        .respond_with(ResponseTemplate::new(404).set_body_string("unexpected request"))
        .with_priority(u8::MAX)
        .expect(0)
        .named("unexpected request")
        .mount(server)
        .await;
}

fn ok_json(body: Json) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "application/json")
        .set_body_json(body)
}

async fn mock_get(server: &MockServer, vendor: &str, resp: ResponseTemplate, times: u64) {
    Mock::given(method("GET"))
        .and(path(get_path(vendor)))
        .respond_with(resp)
        .expect(times)
        .named(format!("GET {vendor}"))
        .mount(server)
        .await;
}

fn only(report: &WriteReport) -> &RecordOutcome {
    assert_eq!(report.records.len(), 1, "{report:#?}");
    &report.records[0]
}

#[tokio::test]
async fn creates_a_missing_record_with_exact_values_and_a_rerun_is_unchanged() {
    let server = MockServer::start().await;
    mock_get(&server, "V001", ResponseTemplate::new(404), 1).await;
    Mock::given(method("POST"))
        .and(path(post_path()))
        .and(body_json(ps_body("V001", "Acme Corp")))
        .respond_with(ok_json(json!({"SETID": "SHARE", "VENDOR_ID": "V001"})))
        .expect(1)
        .mount(&server)
        .await;
    no_other_requests(&server).await;
    let store = MemoryBaselineStore::new();
    let sink = sink_with(&server, target(), Arc::new(store.clone()), false);
    let b = batch(vec![row("V001", "Acme Corp", "1000.50", "jane")]);

    let receipt = sink.write(&schema(), &b).await.unwrap();
    assert_eq!(receipt.inserted, Some(1));
    assert_eq!(receipt.rows_written, 1);
    let report = sink.last_report().unwrap();
    let r = only(&report);
    assert_eq!(r.action, RecordAction::Created, "{r:#?}");
    assert_eq!(r.key["VENDOR_ID"], "V001");
    assert!(r
        .changes
        .iter()
        .any(|c| c.field == "CREDIT_LIMIT" && c.to.as_deref() == Some("1000.50")));
    assert_eq!(store.len(STREAM), 1);

    // Same batch again: the baseline says it is applied; no request at all.
    let receipt = sink.write(&schema(), &b).await.unwrap();
    assert_eq!(receipt.rows_written, 1);
    assert_eq!(receipt.inserted, Some(0));
    let report = sink.last_report().unwrap();
    assert_eq!(only(&report).action, RecordAction::Unchanged);
}

#[tokio::test]
async fn updates_a_record_peoplesoft_has_not_changed_since_the_baseline() {
    let server = MockServer::start().await;
    mock_get(&server, "V001", ok_json(ps_record("V001", "Acme Corp")), 1).await;
    Mock::given(method("PUT"))
        .and(path(put_path()))
        .and(body_json(ps_body("V001", "Acme Corporation")))
        .respond_with(ok_json(json!({"status": "success"})))
        .expect(1)
        .mount(&server)
        .await;
    no_other_requests(&server).await;
    let sink = sink_with(
        &server,
        target(),
        Arc::new(MemoryBaselineStore::new()),
        false,
    );
    // The forward sync loaded PeopleSoft's current content.
    let seeded = sink
        .seed_baselines(
            STREAM,
            &schema(),
            &[row("V001", "Acme Corp", "1000.5", "MLC_SYNC")],
        )
        .await
        .unwrap();
    assert_eq!(seeded, 1);

    let b = batch(vec![row("V001", "Acme Corporation", "1000.50", "jane")]);
    let receipt = sink.write(&schema(), &b).await.unwrap();
    assert_eq!(receipt.updated, Some(1));
    let report = sink.last_report().unwrap();
    let r = only(&report);
    assert_eq!(r.action, RecordAction::Updated, "{r:#?}");
    assert_eq!(r.changes.len(), 1, "{r:#?}");
    assert_eq!(r.changes[0].field, "NAME1");
    assert_eq!(r.changes[0].from.as_deref(), Some("Acme Corp"));
    assert_eq!(r.changes[0].to.as_deref(), Some("Acme Corporation"));
}

#[tokio::test]
async fn equal_values_in_peoplesoft_are_unchanged_and_not_written() {
    let server = MockServer::start().await;
    // Padded name, number 1000.5 for DECIMAL 1000.50: equal after normalisation.
    mock_get(
        &server,
        "V001",
        ResponseTemplate::new(200).set_body_string(fixture("vendor_v001.json")),
        1,
    )
    .await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    no_other_requests(&server).await;
    let store = MemoryBaselineStore::new();
    let sink = sink_with(&server, target(), Arc::new(store.clone()), false);
    let b = batch(vec![row("V001", "Acme Corp", "1000.50", "jane")]);
    let receipt = sink.write(&schema(), &b).await.unwrap();
    assert_eq!(receipt.rows_written, 1);
    assert_eq!(receipt.updated, Some(0));
    let report = sink.last_report().unwrap();
    let r = only(&report);
    assert_eq!(r.action, RecordAction::Unchanged, "{r:#?}");
    assert!(r.reason.contains("already"), "{}", r.reason);
    // What was seen is now the baseline: the next identical batch needs no Get.
    assert_eq!(store.len(STREAM), 1);
    sink.write(&schema(), &b).await.unwrap();
}

/// PeopleSoft changed the name since the forward sync saw "Acme Corp"; Databricks now
/// says "From Databricks".
async fn conflict_case(policy: ConflictPolicy, puts: u64) -> WriteReport {
    let server = MockServer::start().await;
    mock_get(
        &server,
        "V001",
        ok_json(ps_record("V001", "Changed in PeopleSoft")),
        1,
    )
    .await;
    Mock::given(method("PUT"))
        .and(path(put_path()))
        .and(body_json(ps_body("V001", "From Databricks")))
        .respond_with(ok_json(json!({})))
        .expect(puts)
        .mount(&server)
        .await;
    no_other_requests(&server).await;
    let sink = sink_with(
        &server,
        target().conflict_policy(policy),
        Arc::new(MemoryBaselineStore::new()),
        false,
    );
    sink.seed_baselines(
        STREAM,
        &schema(),
        &[row("V001", "Acme Corp", "1000.50", "MLC_SYNC")],
    )
    .await
    .unwrap();
    let b = batch(vec![row("V001", "From Databricks", "1000.50", "jane")]);
    sink.write(&schema(), &b).await.unwrap();
    sink.last_report().unwrap()
}

#[tokio::test]
async fn conflict_databricks_wins_overwrites() {
    let report = conflict_case(ConflictPolicy::DatabricksWins, 1).await;
    let r = only(&report);
    assert_eq!(r.action, RecordAction::Updated, "{r:#?}");
    assert!(r.reason.contains("DatabricksWins"), "{}", r.reason);
}

#[tokio::test]
async fn conflict_peoplesoft_wins_skips_and_reports() {
    let report = conflict_case(ConflictPolicy::PeopleSoftWins, 0).await;
    let r = only(&report);
    assert_eq!(r.action, RecordAction::Conflict, "{r:#?}");
    assert!(r.reason.contains("PeopleSoftWins"), "{}", r.reason);
    assert_eq!(r.changes[0].field, "NAME1");
    assert_eq!(r.changes[0].from.as_deref(), Some("Changed in PeopleSoft"));
    assert_eq!(r.changes[0].to.as_deref(), Some("From Databricks"));
    assert_eq!(report.receipt().rows_written, 0);
}

#[tokio::test]
async fn conflict_hold_for_review_holds() {
    let report = conflict_case(ConflictPolicy::HoldForReview, 0).await;
    let r = only(&report);
    assert_eq!(r.action, RecordAction::Held, "{r:#?}");
    assert!(r.reason.contains("held for review"), "{}", r.reason);
    assert_eq!(report.count(RecordAction::Held), 1);
    let ann = report.annotations(10);
    assert_eq!(ann["writeback.held"], "1");
    assert!(ann["writeback.records"].contains("Changed in PeopleSoft"));
}

#[tokio::test]
async fn existing_record_without_baseline_is_not_overwritten_by_default() {
    let server = MockServer::start().await;
    mock_get(&server, "V001", ok_json(ps_record("V001", "Acme Corp")), 1).await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    no_other_requests(&server).await;
    let sink = sink_with(
        &server,
        target(),
        Arc::new(MemoryBaselineStore::new()),
        false,
    );
    let b = batch(vec![row("V001", "Other", "1000.50", "jane")]);
    sink.write(&schema(), &b).await.unwrap();
    let r = only(&sink.last_report().unwrap()).clone();
    assert_eq!(r.action, RecordAction::Conflict);
    assert!(r.reason.contains("no baseline"), "{}", r.reason);
}

#[tokio::test]
async fn forward_then_reverse_cycle_does_not_echo() {
    let server = MockServer::start().await;
    // Any request at all fails this test.
    no_other_requests(&server).await;
    let writeback = sink_with(
        &server,
        target(),
        Arc::new(MemoryBaselineStore::new()),
        false,
    );
    // Forward direction: PeopleSoft rows land in Databricks through the seeding wrapper.
    let databricks = MemorySink::new();
    let forward = BaselineSeedingSink::new(
        Arc::new(databricks.clone()),
        writeback.clone(),
        "vendors",
        STREAM,
    );
    let mut forward_batch = batch(vec![
        row("V001", "Acme Corp", "1000.50", "PSADMIN"),
        row("V002", "Globex", "20.00", "PSADMIN"),
    ]);
    forward_batch.stream = "vendors".into();
    forward.prepare(&schema()).await.unwrap();
    forward.write(&schema(), &forward_batch).await.unwrap();
    assert_eq!(databricks.len("vendor_master"), 2);

    // Reverse direction reads the same content back (decimal scale differs: still equal),
    // plus a row whose last change was made by the integration itself.
    let reverse = batch(vec![
        row("V001", "Acme Corp", "1000.5", "analyst"),
        row("V002", "Globex", "20", "analyst"),
        row("V003", "Initech", "5.00", "mlc_sync "),
    ]);
    let receipt = writeback.write(&schema(), &reverse).await.unwrap();
    assert_eq!(receipt.rows_written, 3);
    let report = writeback.last_report().unwrap();
    assert_eq!(report.count(RecordAction::Unchanged), 3, "{report:#?}");
    assert!(report.records[0].reason.contains("forward sync"));
    assert!(report.records[2].reason.contains("echo"));
}

#[tokio::test]
async fn only_the_failed_record_is_retried() {
    let server = MockServer::start().await;
    let sink = sink_with(
        &server,
        target(),
        Arc::new(MemoryBaselineStore::new()),
        false,
    );
    let vendors = ["V001", "V002", "V003"];
    let seed: Vec<Row> = vendors
        .iter()
        .map(|v| row(v, "Old", "1000.50", "MLC_SYNC"))
        .collect();
    sink.seed_baselines(STREAM, &schema(), &seed).await.unwrap();
    for v in vendors {
        let gets = if v == "V002" { 2 } else { 1 };
        mock_get(&server, v, ok_json(ps_record(v, "Old")), gets).await;
    }
    Mock::given(method("PUT"))
        .and(path(put_path()))
        .and(body_partial_json(json!({"VENDOR_ID": "V002"})))
        .respond_with(ResponseTemplate::new(503).set_body_string("Service Unavailable"))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .named("PUT V002 503")
        .mount(&server)
        .await;
    for v in vendors {
        let puts = 1; // V002: one more after the 503 above
        Mock::given(method("PUT"))
            .and(path(put_path()))
            .and(body_partial_json(json!({"VENDOR_ID": v})))
            .respond_with(ok_json(json!({"status": "success"})))
            .expect(puts)
            .named(format!("PUT {v} ok"))
            .mount(&server)
            .await;
    }
    no_other_requests(&server).await;

    let rows = vendors
        .iter()
        .map(|v| row(v, "New", "1000.50", "jane"))
        .collect();
    let receipt = sink.write(&schema(), &batch(rows)).await.unwrap();
    assert_eq!(receipt.updated, Some(3));
    let report = sink.last_report().unwrap();
    let attempts: Vec<u32> = report.records.iter().map(|r| r.attempts).collect();
    assert_eq!(attempts, vec![1, 2, 1], "{report:#?}");
    assert!(report
        .records
        .iter()
        .all(|r| r.action == RecordAction::Updated));
}

#[tokio::test]
async fn persistent_transient_failure_fails_the_batch_and_a_rerun_skips_applied_records() {
    let server = MockServer::start().await;
    let sink = sink_with(
        &server,
        target(),
        Arc::new(MemoryBaselineStore::new()),
        false,
    );
    // Two new vendors; V002's Create keeps answering 502 for the whole first batch.
    mock_get(&server, "V001", ResponseTemplate::new(404), 1).await;
    mock_get(&server, "V002", ResponseTemplate::new(404), 4).await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"VENDOR_ID": "V001"})))
        .respond_with(ok_json(json!({})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"VENDOR_ID": "V002"})))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(3)
        .with_priority(1)
        .expect(3)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"VENDOR_ID": "V002"})))
        .respond_with(ok_json(json!({})))
        .expect(1)
        .mount(&server)
        .await;
    no_other_requests(&server).await;

    let b = batch(vec![
        row("V001", "Acme", "1.00", "jane"),
        row("V002", "Globex", "2.00", "jane"),
    ]);
    let err = sink.write(&schema(), &b).await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::Transient);
    assert!(err.message().contains("1 record(s) failed"), "{err}");
    let report = sink.last_report().unwrap();
    assert_eq!(report.records[0].action, RecordAction::Created);
    assert_eq!(report.records[1].action, RecordAction::Failed);
    assert_eq!(report.records[1].attempts, 3);

    // The engine replays the batch: V001 is skipped without a request, V002 is created.
    sink.write(&schema(), &b).await.unwrap();
    let report = sink.last_report().unwrap();
    assert_eq!(report.records[0].action, RecordAction::Unchanged);
    assert_eq!(report.records[1].action, RecordAction::Created);
}

#[tokio::test]
async fn dry_run_reports_diffs_and_writes_nothing() {
    let server = MockServer::start().await;
    mock_get(&server, "V001", ok_json(ps_record("V001", "Acme Corp")), 1).await;
    mock_get(&server, "V002", ResponseTemplate::new(404), 1).await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    no_other_requests(&server).await;
    let store = MemoryBaselineStore::new();
    let live = sink_with(&server, target(), Arc::new(store.clone()), false);
    live.seed_baselines(
        STREAM,
        &schema(),
        &[row("V001", "Acme Corp", "1000.50", "MLC_SYNC")],
    )
    .await
    .unwrap();
    let before = store.get(STREAM, r#"["SHARE","V001"]"#).await.unwrap();
    let dry = sink_with(&server, target(), Arc::new(store.clone()), true);
    assert!(dry.is_dry_run());

    let b = batch(vec![
        row("V001", "Acme Corporation", "1250.00", "jane"),
        row("V002", "Globex", "20.00", "jane"),
    ]);
    let receipt = dry.write(&schema(), &b).await.unwrap();
    assert_eq!(receipt.rows_written, 0);
    let report = dry.last_report().unwrap();
    assert!(report.dry_run);
    let v1 = report.record(&["SHARE", "V001"]).unwrap();
    assert_eq!(v1.action, RecordAction::Updated);
    assert!(v1.reason.starts_with("dry run"), "{}", v1.reason);
    let fields: Vec<(&str, Option<&str>, Option<&str>)> = v1
        .changes
        .iter()
        .map(|c| (c.field.as_str(), c.from.as_deref(), c.to.as_deref()))
        .collect();
    assert_eq!(
        fields,
        vec![
            ("NAME1", Some("Acme Corp"), Some("Acme Corporation")),
            ("CREDIT_LIMIT", Some("1000.5"), Some("1250.00")),
        ]
    );
    let v2 = report.record(&["SHARE", "V002"]).unwrap();
    assert_eq!(v2.action, RecordAction::Created);
    assert_eq!(v2.changes.len(), 6);
    // Baselines untouched.
    assert_eq!(store.len(STREAM), 1);
    assert_eq!(
        store.get(STREAM, r#"["SHARE","V001"]"#).await.unwrap(),
        before
    );
    // The report is JSON for audit annotations or a JSON-lines file.
    let lines = report.to_json_lines();
    assert_eq!(lines.lines().count(), 2);
    let first: Json = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(first["record"]["action"], "updated");
    assert_eq!(first["dry_run"], true);
}

#[tokio::test]
async fn validation_errors_become_rejected_records_with_the_peoplesoft_message() {
    let server = MockServer::start().await;
    let sink = sink_with(
        &server,
        target(),
        Arc::new(MemoryBaselineStore::new()),
        false,
    );
    // V001: Update answered HTTP 200 with an IBResponse error document.
    // V002: Create answered HTTP 400 with a JSON message.
    // V003: Update answered HTTP 200 with a JSON error status.
    sink.seed_baselines(
        STREAM,
        &schema(),
        &[
            row("V001", "Old", "1000.50", "MLC_SYNC"),
            row("V003", "Old", "1000.50", "MLC_SYNC"),
        ],
    )
    .await
    .unwrap();
    mock_get(&server, "V001", ok_json(ps_record("V001", "Old")), 1).await;
    mock_get(&server, "V002", ResponseTemplate::new(404), 1).await;
    mock_get(&server, "V003", ok_json(ps_record("V003", "Old")), 1).await;
    Mock::given(method("PUT"))
        .and(body_partial_json(json!({"VENDOR_ID": "V001"})))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/xml")
                .set_body_string(fixture("ib_error.xml")),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"VENDOR_ID": "V002"})))
        .respond_with(
            ResponseTemplate::new(400)
                .insert_header("content-type", "application/json")
                .set_body_string(fixture("validation_400.json")),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(body_partial_json(json!({"VENDOR_ID": "V003"})))
        .respond_with(ok_json(
            json!({"status": "error", "errorMessage": "Vendor is locked by another user"}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    no_other_requests(&server).await;

    let b = batch(vec![
        row("V001", "", "1000.50", "jane"),
        row("V002", "Globex", "20.00", "jane"),
        row("V003", "New", "1000.50", "jane"),
    ]);
    let receipt = sink.write(&schema(), &b).await.unwrap();
    assert_eq!(receipt.rows_written, 0);
    let report = sink.last_report().unwrap();
    assert_eq!(report.count(RecordAction::Rejected), 3, "{report:#?}");
    let msg = |v: &str| {
        report
            .record(&["SHARE", v])
            .unwrap()
            .peoplesoft_message
            .clone()
            .unwrap()
    };
    assert!(
        msg("V001").contains("Vendor Name is required"),
        "{}",
        msg("V001")
    );
    assert!(msg("V001").contains("14098"), "{}", msg("V001"));
    assert!(
        msg("V002").starts_with("Invalid value -- press the prompt button"),
        "{}",
        msg("V002")
    );
    assert_eq!(msg("V003"), "Vendor is locked by another user");
}

#[tokio::test]
async fn unauthorized_stops_the_stream_after_exactly_one_request() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(401).set_body_string("Unauthorized"))
        .expect(1)
        .mount(&server)
        .await;
    let sink = sink_with(
        &server,
        target(),
        Arc::new(MemoryBaselineStore::new()),
        false,
    );
    let b = batch(vec![
        row("V001", "Acme", "1.00", "jane"),
        row("V002", "Globex", "2.00", "jane"),
    ]);
    let err = sink.write(&schema(), &b).await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::StopStream);
    assert!(err.message().contains("401"), "{err}");
    let report = sink.last_report().unwrap();
    assert_eq!(
        report.stopped.as_ref().unwrap().kind,
        FailureKind::StopStream
    );
    assert!(report.records.is_empty());
    // Secrets appear nowhere.
    let basic = "TUxDX1dSSVRFUjp3cjF0ZS1CQUNLLXMzY3JldA"; // base64("MLC_WRITER:wr1te-BACK-s3cret")
    for text in [
        err.full_message(),
        format!("{err:?}"),
        format!("{sink:?}"),
        serde_json::to_string(&report).unwrap(),
    ] {
        assert!(!text.contains(PASSWORD), "{text}");
        assert!(!text.contains(basic), "{text}");
    }
}

#[tokio::test]
async fn every_report_reaches_the_hook_as_json_lines() {
    let server = MockServer::start().await;
    no_other_requests(&server).await;
    let lines = Arc::new(std::sync::Mutex::new(String::new()));
    let sink_lines = lines.clone();
    let client = PeopleSoftClient::builder(connection(&server), credentials())
        .protection(protection())
        .build()
        .unwrap();
    let sink = PeopleSoftSink::builder(client)
        .target(STREAM, target())
        .on_report(move |r| sink_lines.lock().unwrap().push_str(&r.to_json_lines()))
        .build()
        .unwrap();
    let b = batch(vec![row("V001", "Acme", "1.00", "MLC_SYNC")]);
    sink.write(&schema(), &b).await.unwrap();
    let text = lines.lock().unwrap().clone();
    let v: Json = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["record"]["action"], "unchanged");
    assert_eq!(v["record"]["key"]["VENDOR_ID"], "V001");
    assert_eq!(v["run_id"], "run-1");
}

#[tokio::test]
async fn builder_debug_and_config_errors_hide_the_password() {
    let server = MockServer::start().await;
    let builder = PeopleSoftSink::builder(client(&server)).target(
        STREAM,
        target().templates(
            "CIRT_X_G_GET.v1/{NOPE}",
            "CIRT_X_C_POST.v1",
            "CIRT_X_U_PUT.v1",
        ),
    );
    assert!(!format!("{builder:?}").contains(PASSWORD));
    let err = builder.build().unwrap_err();
    assert!(err.to_string().contains("{NOPE}"), "{err}");
    assert!(!err.to_string().contains(PASSWORD));
}

#[tokio::test]
async fn json_file_baselines_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/baselines.json");
    let server = MockServer::start().await;
    no_other_requests(&server).await;
    {
        let sink = sink_with(
            &server,
            target(),
            Arc::new(JsonFileBaselineStore::new(&path)),
            false,
        );
        let n = sink
            .seed_baselines(
                STREAM,
                &schema(),
                &[row("V001", "Acme Corp", "1000.50", "MLC_SYNC")],
            )
            .await
            .unwrap();
        assert_eq!(n, 1);
    }
    // No temporary file is left next to it.
    let names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["baselines.json".to_string()]);
    // A new process: the same content is recognised without any request.
    let sink = sink_with(
        &server,
        target(),
        Arc::new(JsonFileBaselineStore::new(&path)),
        false,
    );
    sink.write(
        &schema(),
        &batch(vec![row("V001", "Acme Corp", "1000.50", "jane")]),
    )
    .await
    .unwrap();
    assert_eq!(
        only(&sink.last_report().unwrap()).action,
        RecordAction::Unchanged
    );
}

fn schema_with_stamp() -> TableSchema {
    let mut s = schema();
    s.columns
        .push(ColumnDef::new("ps_updated_at", ColumnType::Timestamp));
    s
}

fn row_with_stamp(vendor: &str, name: &str, stamp: &str, modified_by: &str) -> Row {
    let mut r = row(vendor, name, "1000.50", modified_by);
    r.push(Value::Timestamp(stamp.parse().unwrap()));
    r
}

/// The forward sync saw V001 with the fixture's governed values and `seen_stamp`; PeopleSoft
/// now reports LASTUPDDTTM 2026-01-10-09.30.00 Chicago time (15:30 UTC) and the same
/// governed values. Databricks renames the vendor.
async fn stamp_case(seen_stamp: &str, detection: ChangeDetection, puts: u64) -> RecordOutcome {
    let server = MockServer::start().await;
    mock_get(
        &server,
        "V001",
        ResponseTemplate::new(200).set_body_string(fixture("vendor_v001.json")),
        1,
    )
    .await;
    Mock::given(method("PUT"))
        .and(path(put_path()))
        .respond_with(ok_json(
            json!({"LASTUPDDTTM": "2026-01-11-08.00.00.000000"}),
        ))
        .expect(puts)
        .mount(&server)
        .await;
    no_other_requests(&server).await;
    let t = target()
        .stamp("LASTUPDDTTM", Some("ps_updated_at"))
        .change_detection(detection)
        .time_zone("America/Chicago");
    let store = MemoryBaselineStore::new();
    let sink = sink_with(&server, t, Arc::new(store.clone()), false);
    sink.seed_baselines(
        STREAM,
        &schema_with_stamp(),
        &[row_with_stamp("V001", "Acme Corp", seen_stamp, "MLC_SYNC")],
    )
    .await
    .unwrap();
    let b = batch(vec![row_with_stamp(
        "V001",
        "Acme Renamed",
        "2026-01-01T00:00:00Z",
        "jane",
    )]);
    sink.write(&schema_with_stamp(), &b).await.unwrap();
    let out = only(&sink.last_report().unwrap()).clone();
    if out.action == RecordAction::Updated {
        // The stamp PeopleSoft answered the write with becomes the new baseline stamp.
        let b = store
            .get(STREAM, r#"["SHARE","V001"]"#)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(b.stamp.as_deref(), Some("2026-01-11T14:00:00.000000Z"));
    }
    out
}

#[tokio::test]
async fn stamp_detection_sees_a_peoplesoft_change_outside_the_governed_fields() {
    // Same instant, written in another zone: no PeopleSoft change, so the update goes out.
    let r = stamp_case("2026-01-10T15:30:00Z", ChangeDetection::Stamp, 1).await;
    assert_eq!(r.action, RecordAction::Updated, "{r:#?}");
    // An older stamp: PeopleSoft changed the record (a field this target does not govern).
    let r = stamp_case("2026-01-09T15:30:00Z", ChangeDetection::Stamp, 0).await;
    assert_eq!(r.action, RecordAction::Conflict, "{r:#?}");
    assert!(r.reason.contains("LASTUPDDTTM changed"), "{}", r.reason);
    // The governed-field hash alone does not count that change.
    let r = stamp_case("2026-01-09T15:30:00Z", ChangeDetection::GovernedHash, 1).await;
    assert_eq!(r.action, RecordAction::Updated, "{r:#?}");
}

#[tokio::test]
async fn timestamps_are_sent_in_peoplesoft_format_in_the_site_zone() {
    let server = MockServer::start().await;
    mock_get(&server, "V001", ResponseTemplate::new(404), 1).await;
    Mock::given(method("POST"))
        .and(path(post_path()))
        .and(body_partial_json(json!({
            "EFF_DTTM": "2026-01-10-09.30.00.000000",
            "CREDIT_LIMIT": "1000.50",
            "SINCE_DT": "2020-01-15"
        })))
        .respond_with(ok_json(json!({})))
        .expect(1)
        .mount(&server)
        .await;
    no_other_requests(&server).await;
    let t = target()
        .field("ps_updated_at", "EFF_DTTM")
        .time_zone("America/Chicago");
    let sink = sink_with(&server, t, Arc::new(MemoryBaselineStore::new()), false);
    let b = batch(vec![row_with_stamp(
        "V001",
        "Acme Corp",
        "2026-01-10T15:30:00Z",
        "jane",
    )]);
    sink.write(&schema_with_stamp(), &b).await.unwrap();
    assert_eq!(
        only(&sink.last_report().unwrap()).action,
        RecordAction::Created
    );
}

#[tokio::test]
async fn server_errors_with_a_message_are_rejected_and_gateway_pages_are_retried() {
    let server = MockServer::start().await;
    let sink = sink_with(
        &server,
        target(),
        Arc::new(MemoryBaselineStore::new()),
        false,
    );
    sink.seed_baselines(
        STREAM,
        &schema(),
        &[row("V001", "Old", "1000.50", "MLC_SYNC")],
    )
    .await
    .unwrap();
    mock_get(&server, "V001", ok_json(ps_record("V001", "Old")), 1).await;
    // A 500 carrying PeopleSoft's message is a validation error: no retry.
    Mock::given(method("PUT"))
        .respond_with(
            ResponseTemplate::new(500)
                .insert_header("content-type", "text/xml")
                .set_body_string(fixture("ib_error.xml")),
        )
        .expect(1)
        .mount(&server)
        .await;
    // A gateway HTML page with HTTP 200 is transient: one Get per round, three rounds.
    mock_get(
        &server,
        "V002",
        ResponseTemplate::new(200)
            .insert_header("content-type", "text/html")
            .set_body_string("<html><body>Proxy Error</body></html>"),
        3,
    )
    .await;
    no_other_requests(&server).await;
    let b = batch(vec![
        row("V001", "New", "1000.50", "jane"),
        row("V002", "Globex", "2.00", "jane"),
    ]);
    let err = sink.write(&schema(), &b).await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::Transient);
    let report = sink.last_report().unwrap();
    let v1 = report.record(&["SHARE", "V001"]).unwrap();
    assert_eq!(v1.action, RecordAction::Rejected);
    assert_eq!(v1.attempts, 1);
    assert!(v1
        .peoplesoft_message
        .as_deref()
        .unwrap()
        .contains("Vendor Name is required"));
    let v2 = report.record(&["SHARE", "V002"]).unwrap();
    assert_eq!(v2.action, RecordAction::Failed);
    assert_eq!(v2.attempts, 3);
    assert!(v2.reason.contains("HTML"), "{}", v2.reason);
}

#[tokio::test]
async fn a_key_repeated_in_one_batch_sees_its_own_earlier_write() {
    let server = MockServer::start().await;
    mock_get(&server, "V001", ResponseTemplate::new(404), 1).await;
    // After the create, the second row's Get shows the created values.
    Mock::given(method("POST"))
        .respond_with(ok_json(json!({})))
        .expect(1)
        .mount(&server)
        .await;
    no_other_requests(&server).await;
    let sink = sink_with(
        &server,
        target(),
        Arc::new(MemoryBaselineStore::new()),
        false,
    );
    let b = batch(vec![
        row("V001", "Acme", "1.00", "jane"),
        row("V001", "Acme", "1.00", "jane"),
    ]);
    sink.write(&schema(), &b).await.unwrap();
    let report = sink.last_report().unwrap();
    assert_eq!(report.records[0].action, RecordAction::Created);
    assert_eq!(report.records[1].action, RecordAction::Unchanged);
}

/// The forward sync saw PeopleSoft's current content of V001 (LASTUPDDTTM 2026-01-10 15:30
/// UTC) and seeded the baseline with it; the governed row renames the vendor and was changed
/// at `row_modified`. Returns the outcome and how many PUTs were sent.
async fn stale_case(row_modified: &str, policy: ConflictPolicy) -> (RecordOutcome, usize) {
    let server = MockServer::start().await;
    mock_get(
        &server,
        "V001",
        ResponseTemplate::new(200).set_body_string(fixture("vendor_v001.json")),
        1,
    )
    .await;
    Mock::given(method("PUT"))
        .and(path(put_path()))
        .respond_with(ok_json(json!({})))
        .mount(&server)
        .await;
    no_other_requests(&server).await;
    let t = target()
        .stamp("LASTUPDDTTM", Some("ps_updated_at"))
        .modified_at("ps_updated_at")
        .conflict_policy(policy)
        .time_zone("America/Chicago");
    let store = MemoryBaselineStore::new();
    let sink = sink_with(&server, t, Arc::new(store.clone()), false);
    sink.seed_baselines(
        STREAM,
        &schema_with_stamp(),
        &[row_with_stamp(
            "V001",
            "Acme Corp",
            "2026-01-10T15:30:00Z",
            "MLC_SYNC",
        )],
    )
    .await
    .unwrap();
    let b = batch(vec![row_with_stamp(
        "V001",
        "Acme Renamed",
        row_modified,
        "jane",
    )]);
    sink.write(&schema_with_stamp(), &b).await.unwrap();
    let puts = server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.method.as_str() == "PUT")
        .count();
    (only(&sink.last_report().unwrap()).clone(), puts)
}

#[tokio::test]
async fn a_forward_baseline_never_makes_a_newer_peoplesoft_edit_look_accepted() {
    // The steward's change (12:00) predates PeopleSoft's edit (15:30) that the forward sync
    // brought in: never sent, whatever the policy, with both versions in the outcome.
    for policy in [
        ConflictPolicy::PeopleSoftWins,
        ConflictPolicy::DatabricksWins,
    ] {
        let (r, puts) = stale_case("2026-01-10T12:00:00Z", policy).await;
        assert_eq!(r.action, RecordAction::Conflict, "{policy:?}: {r:#?}");
        assert_eq!(puts, 0);
        assert!(
            r.reason.contains("newer than the row's change"),
            "{}",
            r.reason
        );
        assert_eq!(
            r.peoplesoft_version.as_deref(),
            Some("2026-01-10T15:30:00.000000Z")
        );
        assert_eq!(
            r.row_version.as_deref(),
            Some("2026-01-10T12:00:00.000000Z")
        );
        assert_eq!(r.changes[0].from.as_deref(), Some("Acme Corp "));
        assert_eq!(r.changes[0].to.as_deref(), Some("Acme Renamed"));
    }
    let (r, puts) = stale_case("2026-01-10T12:00:00Z", ConflictPolicy::HoldForReview).await;
    assert_eq!((r.action, puts), (RecordAction::Held, 0), "{r:#?}");
    // Changed after PeopleSoft's version: the row is the newer edit and goes out.
    let (r, puts) = stale_case("2026-01-10T16:00:00Z", ConflictPolicy::PeopleSoftWins).await;
    assert_eq!((r.action, puts), (RecordAction::Updated, 1), "{r:#?}");
}
