//! Bulk loads through the Databricks stand-in on 127.0.0.1: Parquet staged in a volume with
//! the Files API, one MERGE … read_files (upserts) or COPY INTO (appends), file deleted; faults
//! at every step leave no duplicate rows and no orphan file after the next run.
#![allow(missing_docs)]
#![cfg(feature = "bulk")]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::TimeZone;
use common::job_schema;
use databricks_client::bulk::{staged_file_name, BulkOptions};
use databricks_client::{ClientOptions, Config, DatabricksClient, DatabricksSink, VolumeName};
use ml_connector_testkit::databricks::{
    parquet_columns, DatabricksStandIn, Endpoint, Fault, SqlType, StandInConfig, StandInValue,
    StatementOutcome,
};
use secrecy::SecretString;
use sync_core::http::RetryPolicy;
use sync_core::{Batch, ColumnDef, ColumnType, Row, Sink, TableSchema, Value, Window, WriteMode};

const VOLUME: &str = "main.erp.staging";

fn options() -> ClientOptions {
    ClientOptions {
        http_timeout: Some(Duration::from_secs(30)),
        retry: RetryPolicy {
            max_retries: 2,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
            total_budget: Duration::from_secs(60),
            jitter: false,
        },
        poll_initial: Duration::from_millis(5),
        poll_max: Duration::from_millis(20),
        ..ClientOptions::default()
    }
}

/// A short HTTP timeout (statements are then polled: the POST does not wait), so a delayed
/// answer looks like a dropped connection.
fn impatient() -> ClientOptions {
    ClientOptions {
        http_timeout: Some(Duration::from_millis(1_000)),
        wait_timeout: Duration::ZERO,
        ..options()
    }
}

fn client(si: &DatabricksStandIn, options: ClientOptions) -> DatabricksClient {
    let config = Config::builder()
        .host(si.uri())
        .allow_insecure_http(true)
        .client_credentials(
            si.client_id(),
            SecretString::from(si.client_secret().to_string()),
        )
        .warehouse_id(si.warehouse_id())
        .catalog("main")
        .schema("erp")
        .options(options)
        .build()
        .unwrap();
    DatabricksClient::new(config).unwrap()
}

fn plain_sink(si: &DatabricksStandIn) -> DatabricksSink {
    DatabricksSink::from_config_defaults(client(si, options())).unwrap()
}

fn bulk_options() -> BulkOptions {
    BulkOptions::new(VolumeName::parse(VOLUME).unwrap())
}

fn bulk_sink_with(
    si: &DatabricksStandIn,
    opts: ClientOptions,
    bulk: BulkOptions,
) -> DatabricksSink {
    DatabricksSink::from_config_defaults(client(si, opts))
        .unwrap()
        .bulk(bulk)
        .unwrap()
}

fn bulk_sink(si: &DatabricksStandIn) -> DatabricksSink {
    bulk_sink_with(si, options(), bulk_options())
}

async fn standin() -> DatabricksStandIn {
    DatabricksStandIn::start_with(StandInConfig::new().volume(VOLUME)).await
}

fn schema(name: &str, mode: WriteMode) -> TableSchema {
    TableSchema {
        name: name.into(),
        columns: vec![
            ColumnDef::new("id", ColumnType::BigInt).not_null(),
            ColumnDef::new("name", ColumnType::String),
            ColumnDef::new(
                "amount",
                ColumnType::Decimal {
                    precision: 18,
                    scale: 2,
                },
            ),
            ColumnDef::new(
                "big",
                ColumnType::Decimal {
                    precision: 24,
                    scale: 4,
                },
            ),
            ColumnDef::new("qty", ColumnType::Int),
            ColumnDef::new("rate", ColumnType::Double),
            ColumnDef::new("active", ColumnType::Boolean),
            ColumnDef::new("d", ColumnType::Date),
            ColumnDef::new("ts", ColumnType::Timestamp),
        ],
        primary_key: if mode == WriteMode::Upsert {
            vec!["id".into()]
        } else {
            vec![]
        },
        cursor_column: Some("ts".into()),
        write_mode: mode,
        effective_dating: None,
    }
}

fn row(i: i64, version: i64) -> Row {
    let dec = |s: &str| Value::Decimal(s.parse().unwrap());
    let amount = match i {
        1 => dec("12345678901234.56"),
        2 => dec("-0.01"),
        _ => dec(&format!("{}.{:02}", i * 3 + version, i % 100)),
    };
    let name = match i % 5 {
        0 => format!("O'Brien \\ \"q\" {i}"),
        1 => format!("Zürich – 東京 😀 {i}"),
        2 => format!("line\nbreak {i}"),
        _ => format!("vendor {i} v{version}"),
    };
    let ts = chrono::Utc
        .with_ymd_and_hms(2026, 3, 29, 0, 59, 59)
        .unwrap()
        + chrono::Duration::microseconds(i * 1_000_001 + version);
    let null = i % 7 == 0;
    let v = |x: Value| if null { Value::Null } else { x };
    vec![
        Value::BigInt(i),
        v(Value::String(name)),
        v(amount),
        v(dec(&format!("-{}{:04}.{:04}", i, version, i % 10_000))),
        v(Value::Int((i % 1000) as i32 - 500)),
        v(Value::Double(i as f64 / 8.0)),
        v(Value::Bool(i % 2 == 0)),
        v(Value::Date(
            chrono::NaiveDate::from_ymd_opt(2024, 2, 29).unwrap() + chrono::Duration::days(i % 900),
        )),
        v(Value::Timestamp(ts)),
    ]
}

fn batch(rows: Vec<Row>) -> Batch {
    let from = chrono::Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
    Batch {
        rows,
        window: Window::new(from, from + chrono::Duration::days(1)),
        run_id: "run-1".into(),
        stream: "vendors".into(),
        as_of: None,
    }
}

fn rows(n: i64, version: i64) -> Vec<Row> {
    (1..=n).map(|i| row(i, version)).collect()
}

/// The table's rows by id, without the table name.
fn content(si: &DatabricksStandIn, table: &str) -> BTreeMap<i64, BTreeMap<String, StandInValue>> {
    si.rows(&format!("main.erp.{table}"))
        .unwrap()
        .into_iter()
        .map(|r| {
            let id = match r["id"] {
                StandInValue::BigInt(id) => id,
                ref other => panic!("id {other:?}"),
            };
            (id, r)
        })
        .collect()
}

fn data_statements(si: &DatabricksStandIn, from: usize) -> Vec<String> {
    si.statements()[from..]
        .iter()
        .map(|s| s.sql.clone())
        .filter(|s| !s.starts_with("CREATE") && !s.starts_with("ALTER"))
        .collect()
}

fn no_files_left(si: &DatabricksStandIn) {
    assert_eq!(si.volume_files(VOLUME), Some(vec![]), "orphan staged files");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_upsert_batch_is_staged_loaded_with_one_merge_and_equals_the_values_path() {
    let si = standin().await;
    let n = 50_000;
    let plain = plain_sink(&si);
    let bulk = bulk_sink(&si);
    let values_schema = schema("vendors_values", WriteMode::Upsert);
    let bulk_schema = schema("vendors", WriteMode::Upsert);
    plain.prepare(&values_schema).await.unwrap();
    bulk.prepare(&bulk_schema).await.unwrap();

    let b = batch(rows(n, 0));
    let before = si.statements().len();
    let receipt = bulk.write(&bulk_schema, &b).await.unwrap();
    let sent = data_statements(&si, before);
    assert_eq!(sent.len(), 1, "one data statement for {n} rows");
    let text = &sent[0];
    assert!(
        text.starts_with(
            "MERGE INTO `main`.`erp`.`vendors` AS tgt USING (SELECT CAST(`id` AS BIGINT) AS `id`"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            " FROM read_files('/Volumes/main/erp/staging/_ml_staging/vendors/vendors/run-1-vendors-"
        ),
        "{text}"
    );
    assert!(text.len() < 2_000, "the data is not in the SQL");

    // Uploaded as Parquet with exact types, then deleted.
    let uploads = si.uploads();
    assert_eq!(uploads.len(), 1);
    let up = &uploads[0];
    assert_eq!(
        up.path,
        format!(
            "/Volumes/main/erp/staging/_ml_staging/vendors/vendors/{}",
            staged_file_name(&b)
        )
    );
    assert_eq!(up.content_type.as_deref(), Some("application/octet-stream"));
    let types: Vec<(String, SqlType)> = parquet_columns(&up.data)
        .unwrap()
        .into_iter()
        .map(|c| (c.name, c.sql_type))
        .collect();
    assert_eq!(
        types,
        vec![
            ("id".to_string(), SqlType::BigInt),
            ("name".into(), SqlType::String),
            (
                "amount".into(),
                SqlType::Decimal {
                    precision: 18,
                    scale: 2
                }
            ),
            (
                "big".into(),
                SqlType::Decimal {
                    precision: 24,
                    scale: 4
                }
            ),
            ("qty".into(), SqlType::Int),
            ("rate".into(), SqlType::Double),
            ("active".into(), SqlType::Boolean),
            ("d".into(), SqlType::Date),
            ("ts".into(), SqlType::Timestamp),
        ]
    );
    no_files_left(&si);
    assert_eq!(si.request_count(Endpoint::DeleteFile), 1);

    // The receipt counts what was sent.
    assert_eq!(receipt.statements, 1);
    assert_eq!(receipt.sql_bytes, text.len() as u64);
    assert_eq!(receipt.files_staged, 1);
    assert_eq!(receipt.bytes_staged, up.data.len() as u64);
    assert_eq!(receipt.rows_written, n as u64);
    assert_eq!(receipt.inserted, Some(n as u64));
    assert_eq!(receipt.statement_ids.len(), 1);

    // Same content as the VALUES path, exact decimals, UTC timestamps, dates, NULLs, text.
    let values_receipt = plain.write(&values_schema, &b).await.unwrap();
    assert!(values_receipt.statements >= 1);
    assert_eq!(values_receipt.files_staged, 0);
    let (bulk_rows, values_rows) = (content(&si, "vendors"), content(&si, "vendors_values"));
    assert_eq!(bulk_rows.len(), n as usize);
    assert_eq!(bulk_rows, values_rows);
    let cell = |id: i64, c: &str| bulk_rows[&id][c].to_cell();
    assert_eq!(cell(1, "amount").as_deref(), Some("12345678901234.56"));
    assert_eq!(cell(2, "amount").as_deref(), Some("-0.01"));
    assert_eq!(cell(7, "amount"), None);
    assert_eq!(cell(3, "big").as_deref(), Some("-30000.0003"));
    assert_eq!(
        cell(1, "ts").as_deref(),
        Some("2026-03-29T01:00:00.000001Z")
    );
    assert_eq!(cell(1, "d").as_deref(), Some("2024-03-01"));
    assert_eq!(cell(5, "name").as_deref(), Some("O'Brien \\ \"q\" 5"));
    assert_eq!(cell(1, "name").as_deref(), Some("Zürich – 東京 😀 1"));

    // Rerunning the batch (and a changed one) never duplicates: the MERGE is keyed.
    bulk.write(&bulk_schema, &b).await.unwrap();
    let changed = batch(rows(n, 1));
    let r = bulk.write(&bulk_schema, &changed).await.unwrap();
    assert_eq!(r.updated, Some(n as u64));
    assert_eq!(si.duplicate_keys("main.erp.vendors", &["id"]), Some(vec![]));
    assert_eq!(si.row_count("main.erp.vendors"), Some(n as usize));
    assert_eq!(
        content(&si, "vendors")[&3]["name"].to_cell().as_deref(),
        Some("vendor 3 v1")
    );
    no_files_left(&si);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_batches_and_sinks_without_bulk_use_the_values_path() {
    let si = standin().await;
    let s = schema("vendors", WriteMode::Upsert);
    let bulk = bulk_sink_with(&si, options(), bulk_options().threshold(1_000));
    bulk.prepare(&s).await.unwrap();
    let before = si.statements().len();
    let r = bulk.write(&s, &batch(rows(999, 0))).await.unwrap();
    let sent = data_statements(&si, before);
    assert!(
        sent.iter().all(|t| t.contains("SELECT * FROM VALUES")),
        "{sent:?}"
    );
    assert_eq!(r.files_staged, 0);
    assert_eq!(r.statements, sent.len() as u64);
    assert_eq!(
        r.sql_bytes,
        sent.iter().map(|t| t.len() as u64).sum::<u64>()
    );
    assert!(si.uploads().is_empty());

    // Bulk off (no bulk options): even a batch above the default threshold.
    let plain = plain_sink(&si);
    let r = plain.write(&s, &batch(rows(21_000, 1))).await.unwrap();
    assert_eq!(r.files_staged, 0);
    assert!(si.uploads().is_empty());
    assert_eq!(si.row_count("main.erp.vendors"), Some(21_000));
    assert_eq!(si.request_count(Endpoint::UploadFile), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_load_with_copy_into_which_skips_a_file_already_loaded() {
    let si = standin().await;
    let s = schema("events", WriteMode::Append);
    let sink = bulk_sink(&si);
    sink.prepare(&s).await.unwrap();
    let b = batch(rows(25_000, 0));
    let before = si.statements().len();
    let r = sink.write(&s, &b).await.unwrap();
    let sent = data_statements(&si, before);
    assert_eq!(
        sent,
        vec![format!(
            "COPY INTO `main`.`erp`.`events` FROM '/Volumes/main/erp/staging/_ml_staging/events/vendors/' FILEFORMAT = PARQUET FILES = ('{}')",
            staged_file_name(&b)
        )]
    );
    assert_eq!((r.statements, r.files_staged), (1, 1));
    assert_eq!(si.row_count("main.erp.events"), Some(25_000));
    no_files_left(&si);

    // The same batch again (a retried step): same file name, COPY INTO skips it.
    sink.write(&s, &b).await.unwrap();
    assert_eq!(si.row_count("main.erp.events"), Some(25_000));
    assert_eq!(si.copy_history().len(), 1);
    no_files_left(&si);

    // A COPY INTO applied but answered too late is retried by the client: still no duplicate.
    let impatient = impatient();
    let sink = bulk_sink_with(&si, impatient, bulk_options().threshold(1_000));
    let b2 = Batch {
        run_id: "run-2".into(),
        ..batch(rows(2_000, 5))
    };
    si.inject(Fault::ApplyThenDelay(Duration::from_secs(3)), 1);
    sink.write(&s, &b2).await.unwrap();
    assert_eq!(si.row_count("main.erp.events"), Some(27_000));
    let copies = si
        .statements()
        .iter()
        .filter(|st| st.sql.starts_with("COPY INTO"))
        .count();
    assert_eq!(copies, 4, "two loads, a retry and the skipped rerun");
    no_files_left(&si);
}

/// Each fault fails the write; the rerun of the same batch leaves the table right (no
/// duplicate keys, every row) and the volume empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_at_each_step_leave_no_duplicates_and_no_orphans_after_the_next_run() {
    let impatient = impatient();
    let faults: Vec<(&str, Endpoint, Fault, u32)> = vec![
        ("upload 503", Endpoint::UploadFile, Fault::Unavailable, 100),
        (
            "load FAILED",
            Endpoint::ExecuteStatement,
            Fault::StatementFailed {
                error_code: "INTERNAL_ERROR".into(),
                sql_state: "XX000".into(),
                message: "[INTERNAL_ERROR] injected".into(),
            },
            1,
        ),
        (
            "connection dropped during the load (applied)",
            Endpoint::ExecuteStatement,
            Fault::ApplyThenDelay(Duration::from_secs(3)),
            100,
        ),
        (
            "connection dropped during the load (not applied)",
            Endpoint::ExecuteStatement,
            Fault::Delay(Duration::from_secs(3)),
            100,
        ),
        (
            "upload timed out",
            Endpoint::UploadFile,
            Fault::Delay(Duration::from_secs(3)),
            100,
        ),
    ];
    for (what, endpoint, fault, times) in faults {
        let si = standin().await;
        let s = schema("vendors", WriteMode::Upsert);
        let sink = bulk_sink_with(&si, impatient.clone(), bulk_options().threshold(1_000));
        sink.prepare(&s).await.unwrap();
        let b = batch(rows(2_000, 0));
        si.inject_at(endpoint, fault, times);
        let err = sink.write(&s, &b).await;
        assert!(err.is_err(), "{what}: the write must fail");
        si.clear_faults();
        // The next run: its first write of the stream cleans the stream's staging directory,
        // then loads the same rows.
        sink.prepare(&s).await.unwrap();
        let b = Batch {
            run_id: "run-2".into(),
            ..b
        };
        sink.write(&s, &b).await.unwrap();
        assert_eq!(si.row_count("main.erp.vendors"), Some(2_000), "{what}");
        assert_eq!(
            si.duplicate_keys("main.erp.vendors", &["id"]),
            Some(vec![]),
            "{what}"
        );
        no_files_left(&si);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passing_upload_503_is_retried_by_the_client() {
    let si = standin().await;
    let s = schema("vendors", WriteMode::Upsert);
    let sink = bulk_sink_with(&si, options(), bulk_options().threshold(100));
    sink.prepare(&s).await.unwrap();
    si.inject_at(Endpoint::UploadFile, Fault::Unavailable, 2);
    let r = sink.write(&s, &batch(rows(500, 0))).await.unwrap();
    assert_eq!(r.files_staged, 1);
    assert_eq!(si.request_count(Endpoint::UploadFile), 3);
    assert_eq!(si.row_count("main.erp.vendors"), Some(500));
    no_files_left(&si);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_left_behind_is_removed_by_the_streams_next_run_and_no_one_elses_is() {
    let si = standin().await;
    let s = schema("vendors", WriteMode::Upsert);
    let sink = bulk_sink(&si);
    sink.prepare(&s).await.unwrap();
    // The delete after the load fails (the process could as well have died there).
    si.inject_at(Endpoint::DeleteFile, Fault::Unavailable, 100);
    sink.write(&s, &batch(rows(20_000, 0))).await.unwrap();
    si.clear_faults();
    let left = si.volume_files(VOLUME).unwrap();
    assert_eq!(left.len(), 1);
    assert!(
        left[0]
            .0
            .starts_with("/Volumes/main/erp/staging/_ml_staging/vendors/vendors/run-1-vendors-"),
        "{left:?}"
    );
    // Files of another table, and of another stream loading the same table (in flight on
    // another worker, say), are not touched.
    let data = si.uploads()[0].data.clone();
    let other_table = "/Volumes/main/erp/staging/_ml_staging/other/vendors/x.parquet";
    let other_stream = "/Volumes/main/erp/staging/_ml_staging/vendors/vendors_eu/y.parquet";
    for p in [other_table, other_stream] {
        sink.client()
            .upload_file(p, data.clone().into())
            .await
            .unwrap();
    }
    // The next run of the stream: a small batch (no bulk load) still cleans first.
    sink.prepare(&s).await.unwrap();
    let next = Batch {
        run_id: "run-2".into(),
        ..batch(rows(10, 1))
    };
    sink.write(&s, &next).await.unwrap();
    let left: Vec<String> = si
        .volume_files(VOLUME)
        .unwrap()
        .into_iter()
        .map(|f| f.0)
        .collect();
    assert_eq!(
        left,
        vec![other_table.to_string(), other_stream.to_string()]
    );
    assert_eq!(si.row_count("main.erp.vendors"), Some(20_000));
    // Once per run: the next batch of the same run lists nothing.
    let lists = si.request_count(Endpoint::ListDirectory);
    sink.write(&s, &next).await.unwrap();
    assert_eq!(si.request_count(Endpoint::ListDirectory), lists);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_cleanup_does_not_fail_the_write_and_is_tried_again() {
    let si = standin().await;
    let s = schema("vendors", WriteMode::Upsert);
    let sink = bulk_sink(&si);
    sink.prepare(&s).await.unwrap();
    let leftover = "/Volumes/main/erp/staging/_ml_staging/vendors/vendors/old.parquet";
    sink.client()
        .upload_file(leftover, vec![1u8].into())
        .await
        .unwrap();
    // The listing fails past the client's retries: the (VALUES) write still succeeds.
    si.inject_at(Endpoint::ListDirectory, Fault::Unavailable, 100);
    sink.write(&s, &batch(rows(10, 0))).await.unwrap();
    assert_eq!(si.row_count("main.erp.vendors"), Some(10));
    assert_eq!(si.volume_files(VOLUME).unwrap().len(), 1);
    // The next write of the run cleans.
    si.clear_faults();
    sink.write(&s, &batch(rows(10, 1))).await.unwrap();
    no_files_left(&si);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staging_listing_follows_pages() {
    let si =
        DatabricksStandIn::start_with(StandInConfig::new().volume(VOLUME).files_page_size(2)).await;
    let sink = bulk_sink(&si);
    let s = schema("vendors", WriteMode::Upsert);
    let dir = "/Volumes/main/erp/staging/_ml_staging/vendors/vendors";
    for i in 0..5 {
        sink.client()
            .upload_file(&format!("{dir}/left-{i}.parquet"), vec![1u8, 2, 3].into())
            .await
            .unwrap();
    }
    let listed = sink.client().list_directory(dir).await.unwrap().unwrap();
    assert_eq!(listed.len(), 5);
    assert!(listed
        .iter()
        .all(|e| !e.is_directory && e.file_size == Some(3)));
    sink.prepare(&s).await.unwrap();
    sink.write(&s, &batch(rows(10, 0))).await.unwrap();
    no_files_left(&si);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_volume_or_grant_is_a_clear_error() {
    let s = schema("vendors", WriteMode::Upsert);

    // No volume, not allowed to create it.
    let si = DatabricksStandIn::start_with(StandInConfig::new().defaults("main", "erp")).await;
    let err = bulk_sink(&si).prepare(&s).await.unwrap_err().to_string();
    assert!(err.contains("volume main.erp.staging"), "{err}");
    assert!(err.contains("does not exist"), "{err}");
    assert!(err.contains("READ VOLUME and WRITE VOLUME"), "{err}");
    assert!(err.contains("CREATE VOLUME"), "{err}");

    // Allowed to create it: prepare does.
    let sink = bulk_sink_with(&si, options(), bulk_options().create_volume(true));
    sink.prepare(&s).await.unwrap();
    assert!(si.has_volume(VOLUME));
    assert!(si
        .statements()
        .iter()
        .any(|st| st.sql == "CREATE VOLUME IF NOT EXISTS `main`.`erp`.`staging`"));
    sink.write(&s, &batch(rows(20_000, 0))).await.unwrap();
    assert_eq!(si.row_count("main.erp.vendors"), Some(20_000));

    // Creating it without the grant.
    let si = DatabricksStandIn::start_with(
        StandInConfig::new()
            .defaults("main", "erp")
            .deny_create_volume(true),
    )
    .await;
    let sink = bulk_sink_with(&si, options(), bulk_options().create_volume(true));
    let err = sink.prepare(&s).await.unwrap_err().to_string();
    assert!(
        err.contains("grant CREATE VOLUME on schema main.erp"),
        "{err}"
    );
    assert!(matches!(
        si.statements().last().unwrap().outcome,
        StatementOutcome::Failed { .. }
    ));

    // The volume exists but the principal may not read or write it.
    let si =
        DatabricksStandIn::start_with(StandInConfig::new().volume(VOLUME).deny_files(true)).await;
    let err = bulk_sink(&si).prepare(&s).await.unwrap_err().to_string();
    assert!(
        err.contains("grant READ VOLUME and WRITE VOLUME on volume main.erp.staging"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_staging_proves_read_and_write_without_touching_tables() {
    use databricks_client::StagingCheck;
    let forbidden = || Fault::Status {
        status: 403,
        error_code: "PERMISSION_DENIED".into(),
        message: "User does not have WRITE VOLUME on Volume 'main.erp.staging'.".into(),
    };

    // Ready: listed, one probe uploaded and deleted, nothing left, no statement sent.
    let si = standin().await;
    assert_eq!(
        bulk_sink(&si).check_staging().await.unwrap(),
        StagingCheck::Ready
    );
    assert_eq!(si.request_count(Endpoint::UploadFile), 1);
    assert_eq!(si.request_count(Endpoint::DeleteFile), 1);
    assert!(si.statements().is_empty(), "{:?}", si.statements());
    no_files_left(&si);

    // Off: no request at all.
    assert_eq!(
        plain_sink(&si).check_staging().await.unwrap(),
        StagingCheck::Off
    );
    assert_eq!(si.request_count(Endpoint::ListDirectory), 1);

    // Readable but not writable: the upload's 403 names the grant.
    si.inject_at(Endpoint::UploadFile, forbidden(), 1);
    let err = bulk_sink(&si)
        .check_staging()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("grant READ VOLUME and WRITE VOLUME on volume main.erp.staging"),
        "{err}"
    );
    no_files_left(&si);

    // Missing volume: an error without `create_volume`, a notice with it; nothing created.
    let si = DatabricksStandIn::start_with(StandInConfig::new().defaults("main", "erp")).await;
    let err = bulk_sink(&si)
        .check_staging()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not exist"), "{err}");
    let creating = bulk_sink_with(&si, options(), bulk_options().create_volume(true));
    assert_eq!(
        creating.check_staging().await.unwrap(),
        StagingCheck::WillBeCreated
    );
    assert!(!si.has_volume(VOLUME));
    assert!(si.statements().is_empty());
    assert_eq!(si.request_count(Endpoint::UploadFile), 0);
}

#[test]
fn staged_file_names_are_deterministic() {
    let a = batch(rows(3, 0));
    assert_eq!(staged_file_name(&a), staged_file_name(&batch(rows(3, 0))));
    assert_ne!(staged_file_name(&a), staged_file_name(&batch(rows(3, 1))));
    let odd = Batch {
        run_id: "run 1/ü:x".into(),
        ..batch(rows(3, 0))
    };
    let name = staged_file_name(&odd);
    assert!(name.starts_with("run_1___x-vendors-"), "{name}");
    assert!(name.ends_with(".parquet"));
    assert!(name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
}

/// Effective-dated tables: the current flags are recomputed after the bulk load, as on the
/// VALUES path (one more idempotent MERGE, counted in the receipt).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn effective_dated_tables_are_reflagged_after_the_bulk_load() {
    let si = standin().await;
    let s = job_schema();
    let sink = bulk_sink_with(&si, options(), bulk_options().threshold(5));
    sink.prepare(&s).await.unwrap();
    let date = |d: &str| Value::Date(d.parse().unwrap());
    // Two employees, each with a past, a current and a future row; all flagged false.
    let mut rows = Vec::new();
    for e in ["E1", "E2"] {
        for (effdt, seq) in [
            ("2025-01-01", 0),
            ("2026-01-01", 0),
            ("2026-01-01", 1),
            ("2027-01-01", 0),
        ] {
            rows.push(vec![
                Value::String(e.into()),
                Value::Int(0),
                date(effdt),
                Value::Int(seq),
                Value::Null, // deptid
                Value::Bool(false),
            ]);
        }
    }
    let b = Batch {
        as_of: Some("2026-06-01".parse().unwrap()),
        ..batch(rows)
    };
    let before = si.statements().len();
    let r = sink.write(&s, &b).await.unwrap();
    let sent = data_statements(&si, before);
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent[0].contains("read_files("));
    assert!(sent[1].contains("`_ml_current`"));
    assert_eq!((r.statements, r.files_staged), (2, 1));
    assert_eq!(r.statement_ids.len(), 2);
    let current: Vec<(String, String, i32)> = si
        .rows("main.erp.job")
        .unwrap()
        .into_iter()
        .filter(|r| r["is_current"] == StandInValue::Boolean(true))
        .map(|r| {
            let s = |k: &str| r[k].to_cell().unwrap();
            (s("emplid"), s("effdt"), s("effseq").parse().unwrap())
        })
        .collect();
    assert_eq!(
        current,
        vec![
            ("E1".to_string(), "2026-01-01".to_string(), 1),
            ("E2".to_string(), "2026-01-01".to_string(), 1)
        ]
    );
    no_files_left(&si);
}
