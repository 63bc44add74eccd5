//! Several workers on one pipeline with its state in Databricks (`state.kind = "databricks"`):
//! the stream leases split the work so each window is extracted from PeopleSoft once, the
//! destination equals the source, and a killed worker's stream is taken over after its lease
//! expires. In process (two pipelines, the injected clock) and as two CLI processes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use crate::common::*;
use chrono::Duration;
use databricks_client::{DatabricksAuditLog, DatabricksCheckpointStore, DatabricksSink, TableName};
use ml_connector_testkit::databricks::DatabricksStandIn;
use ml_connector_testkit::dataset::{
    Dataset, SharedDataset, QUERY_VENDORS, TABLE_JOURNAL_LINES, TABLE_PO_LINES, TABLE_VENDORS,
};
use ml_connector_testkit::peoplesoft::{PeopleSoftServer, Stats, DEFAULT_OPRID, DEFAULT_PASSWORD};
use peoplesoft_client::PeopleSoftSource;
use sync_core::audit::MemoryRejectStore;
use sync_core::engine::{EngineOptions, Pipeline, StreamConfig, WindowPolicy};
use sync_core::state::{CheckpointStore, StreamState};
use sync_core::Window;

const TTL_MINUTES: i64 = 10;

/// One worker: its own Databricks client, sink and state store (as a separate process would
/// have), on the shared site and clock.
fn worker(site: &Site, standin: &DatabricksStandIn, name: &str) -> Pipeline {
    let client = databricks_client(standin);
    let policy = WindowPolicy::starting_at(Dataset::history_start()).max_window(Duration::days(92));
    let mut b = Pipeline::builder(
        "fleet",
        Arc::new(DatabricksSink::from_config_defaults(client.clone()).unwrap()),
    )
    .checkpoints(Arc::new(
        DatabricksCheckpointStore::new(client.clone()).unwrap(),
    ))
    .audit(Arc::new(DatabricksAuditLog::new(client).unwrap()))
    .rejects(Arc::new(MemoryRejectStore::new()))
    .clock(site.clock.clone())
    .worker(name)
    .options(
        EngineOptions::default()
            .max_concurrent_streams(2)
            .lease_ttl(Duration::minutes(TTL_MINUTES)),
    );
    for def in &site.streams {
        let mapper = Arc::new(def.mapper().unwrap());
        b = b.stream(
            StreamConfig::new(
                def.name.clone(),
                Arc::new(PeopleSoftSource::new(site.client.clone(), def.clone()).unwrap()),
                mapper,
                policy,
            )
            .batch_size(500),
        );
    }
    b.build().unwrap()
}

/// ExecuteQuery requests per (query, from, to) prompt values.
fn requests_per_window(stats: &Stats) -> BTreeMap<(String, String, String), usize> {
    let mut out = BTreeMap::new();
    for w in &stats.windows {
        *out.entry((
            w.query.clone(),
            w.from.clone().unwrap_or_default(),
            w.to.clone().unwrap_or_default(),
        ))
        .or_insert(0) += 1;
    }
    out
}

fn assert_each_window_once(stats: &Stats) {
    let per = requests_per_window(stats);
    let twice: Vec<_> = per.iter().filter(|(_, &n)| n > 1).collect();
    assert!(
        twice.is_empty(),
        "{} of {} windows were extracted more than once: {twice:?}",
        twice.len(),
        per.len()
    );
}

/// (dataset table, target table) of the sample streams checked row by row.
const TABLES: [(&str, &str); 3] = [
    (TABLE_VENDORS, "ps_vendors"),
    (TABLE_PO_LINES, "ps_purchase_order_lines"),
    (TABLE_JOURNAL_LINES, "ps_journal_lines"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_one_pipeline_and_extract_each_window_once() {
    let standin = DatabricksStandIn::start().await;
    let site = site(0.5);
    let (a, b) = (
        worker(&site, &standin, "worker-a"),
        worker(&site, &standin, "worker-b"),
    );
    let (ra, rb) = tokio::join!(a.run_cycle(), b.run_cycle());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert!(ra.is_clean() && rb.is_clean(), "{ra:#?}\n{rb:#?}");
    let mut worked = (0, 0);
    for (sa, sb) in ra.streams.iter().zip(&rb.streams) {
        assert!(
            sa.windows_committed == 0 || sb.windows_committed == 0,
            "stream {} loaded by both workers: {sa:#?}\n{sb:#?}",
            sa.stream
        );
        worked.0 += usize::from(sa.windows_committed > 0);
        worked.1 += usize::from(sb.windows_committed > 0);
        for s in [sa, sb] {
            if let Some(reason) = &s.skipped {
                assert!(
                    reason.starts_with(&format!("stream {} leased by worker worker-", s.stream))
                        || reason.starts_with(&format!(
                            "stream {} already synced by worker worker-",
                            s.stream
                        )),
                    "{reason}"
                );
            }
        }
    }
    assert!(worked.0 + worked.1 >= site.streams.len(), "{worked:?}");
    assert_each_window_once(&site.server.stats());
    assert_tables_equal_source(&standin, &site.dataset, &TABLES);

    // The state is one consistent picture: every stream committed up to the cycle, nothing
    // failed, whichever worker loaded it.
    let store = DatabricksCheckpointStore::new(databricks_client(&standin)).unwrap();
    let state = store.load("fleet").await.unwrap();
    for def in &site.streams {
        let st = &state.streams[&def.name];
        assert_eq!(st.committed.intervals().len(), 1, "{}: {st:?}", def.name);
        assert!(st.failed.is_empty(), "{}: {st:?}", def.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_is_taken_over_after_its_lease_expires_with_nothing_lost_or_duplicated() {
    let standin = DatabricksStandIn::start().await;
    let site = site(0.5);
    site.server
        .set_latency(std::time::Duration::from_millis(20));
    let a = worker(&site, &standin, "worker-a");
    let (run, kill) = futures::future::abortable(a.run_cycle());
    // Kill worker A once it has extracted a few windows (mid-stream, mid-window).
    let killer = async {
        while site.server.stats().windows.len() < 3 {
            tokio::time::sleep(StdDuration::from_millis(5)).await;
        }
        kill.abort();
    };
    let (outcome, ()) = tokio::join!(run, killer);
    assert!(outcome.is_err(), "worker A was killed");
    drop(a);
    site.server.set_latency(std::time::Duration::ZERO);
    let extracted_by_a = site.server.stats().windows.len();

    // Worker B, before the expiry: A's streams are skipped with the holder named.
    let b = worker(&site, &standin, "worker-b");
    let r = b.run_cycle().await.unwrap();
    let skipped: Vec<&String> = r
        .streams
        .iter()
        .filter_map(|s| s.skipped.as_ref())
        .collect();
    assert!(!skipped.is_empty(), "{r:#?}");
    for reason in &skipped {
        assert!(
            reason.contains("leased by worker worker-a until")
                || reason.contains("already synced by worker worker-a at"),
            "{reason}"
        );
    }

    // After the expiry (the injected clock), B takes over and finishes.
    site.clock.advance(Duration::minutes(TTL_MINUTES + 1));
    let r = b.run_cycle().await.unwrap();
    assert!(r.is_clean(), "{r:#?}");
    assert!(r.streams.iter().all(|s| s.skipped.is_none()), "{r:#?}");
    assert_tables_equal_source(&standin, &site.dataset, &TABLES);
    // At most the windows A had in flight when it died are extracted again.
    let per = requests_per_window(&site.server.stats());
    let again: usize = per.values().map(|n| n - 1).sum();
    assert!(
        again <= extracted_by_a.min(4),
        "{again} repeated extractions: {per:?}"
    );
    let store = DatabricksCheckpointStore::new(databricks_client(&standin)).unwrap();
    let state = store.load("fleet").await.unwrap();
    for def in &site.streams {
        let st = &state.streams[&def.name];
        assert!(st.failed.is_empty(), "{}: {st:?}", def.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_in_the_old_databricks_layout_is_carried_over_on_upgrade() {
    let standin = DatabricksStandIn::start().await;
    let site = site(0.5);
    let vendors = site
        .streams
        .iter()
        .find(|d| d.query.as_str() == QUERY_VENDORS)
        .unwrap()
        .name
        .clone();
    // What an older release left in `_ml_checkpoints`: vendors committed for 92 days.
    let start = Dataset::history_start();
    let upto = start + Duration::days(92);
    let mut old = StreamState::default();
    old.commit(Window::new(start, upto), upto);
    let json = serde_json::to_string(&old).unwrap();
    for sql in [
        "CREATE SCHEMA IF NOT EXISTS main.finance".to_string(),
        "CREATE TABLE main.finance._ml_checkpoints (pipeline STRING NOT NULL, stream STRING NOT NULL, format_version INT NOT NULL, state_json STRING NOT NULL, updated_at TIMESTAMP NOT NULL)".to_string(),
        format!(
            "INSERT INTO main.finance._ml_checkpoints VALUES ('fleet', '{vendors}', 1, {}, TIMESTAMP'2026-01-01 00:00:00')",
            databricks_client::sql::string_literal(&json)
        ),
    ] {
        standin.execute_sql(&sql).unwrap();
    }

    let r = worker(&site, &standin, "worker-a")
        .run_cycle()
        .await
        .unwrap();
    assert!(r.is_clean(), "{r:#?}");
    // Nothing inside the old coverage was extracted again (beyond the lookback at its end).
    let stats = site.server.stats();
    assert!(!stats.windows_for(QUERY_VENDORS).is_empty());
    for w in stats.windows_for(QUERY_VENDORS) {
        let w = w.window().unwrap();
        assert!(w.to > upto - Duration::days(2), "{w} re-read");
    }
    // The new layout now holds the carried-over coverage (read without the old table).
    let client = databricks_client(&standin);
    let store = DatabricksCheckpointStore::with_tables(
        client,
        TableName::new("main", "finance", "_ml_checkpoint_windows").unwrap(),
        TableName::new("main", "finance", "_ml_leases").unwrap(),
    );
    let st = store.load_stream("fleet", &vendors).await.unwrap();
    assert_eq!(st.committed.intervals()[0].from, start, "{st:?}");
    assert_eq!(st.committed.intervals().len(), 1, "{st:?}");
}

/// A CLI pipeline `fleet` of three streams with `state.kind = "databricks"`, against the two
/// stand-ins; returns the config path (inside `dir`).
fn fleet_config(dir: &std::path::Path, server: &PeopleSoftServer) -> std::path::PathBuf {
    let cfg = dir.join("pipeline.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[pipeline]
name = "fleet"
max_concurrent_streams = 1
[state]
kind = "databricks"
dir = "{state}"
lease_ttl = "2m"
[peoplesoft]
host = "{host}"
port = {port}
node = "{node}"
scheme = "http"
allow_http = true
time_zone = "America/Chicago"
user = "{user}"
password_env = "MLC_FLEET_TEST_PASSWORD"
min_gap = "0ms"
[destination]
kind = "databricks"
catalog = "main"
schema = "finance"
allow_http = true
[defaults]
start = "2025-01-01T00:00:00Z"
max_window = "60d"
[[streams]]
name = "journal_lines"
domain = "journal_lines"
[[streams]]
name = "vendors"
domain = "vendors"
[[streams]]
name = "purchase_order_lines"
domain = "purchase_order_lines"
"#,
            state = dir.join("state").display(),
            host = server.host(),
            port = server.port(),
            node = server.node(),
            user = DEFAULT_OPRID,
        ),
    )
    .unwrap();
    cfg
}

/// `ml-connector run --once` as worker `worker` against the stand-ins.
fn spawn_worker(
    cfg: &std::path::Path,
    standin: &DatabricksStandIn,
    worker: &str,
) -> std::process::Child {
    sync_command_for(cfg, standin)
        .args(["run", "--once"])
        .env("MLC_FLEET_TEST_PASSWORD", DEFAULT_PASSWORD)
        .env("ML_CONNECTOR_WORKER", worker)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn start_standins() -> (
    tokio::runtime::Runtime,
    PeopleSoftServer,
    DatabricksStandIn,
    SharedDataset,
) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (server, standin, dataset) = rt.block_on(async {
        let dataset = SharedDataset::new(Dataset::manufacturer(5, 0.3));
        (
            PeopleSoftServer::start(dataset.clone()),
            DatabricksStandIn::start().await,
            dataset,
        )
    });
    (rt, server, standin, dataset)
}

/// Two `ml-connector run --once` processes started together on one pipeline with
/// `state.kind = "databricks"`.
#[test]
fn two_cli_processes_split_the_streams_and_extract_each_window_once() {
    let (_rt, server, standin, dataset) = start_standins();
    let dir = tempfile::tempdir().unwrap();
    let cfg = fleet_config(dir.path(), &server);
    let (a, b) = (
        spawn_worker(&cfg, &standin, "cli-a"),
        spawn_worker(&cfg, &standin, "cli-b"),
    );
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", output_text(&a));
    assert!(b.status.success(), "{}", output_text(&b));
    assert_each_window_once(&server.stats());
    let both = format!("{}\n{}", output_text(&a), output_text(&b));
    assert!(
        both.contains("leased by worker cli-"),
        "one worker saw the other's lease:\n{both}"
    );
    assert_tables_equal_source(&standin, &dataset, &TABLES);
}

/// A worker process killed (SIGKILL) mid-window keeps its streams leased: another worker
/// skips them, naming it; the killed worker restarted under its name takes them back at once
/// (no waiting for the expiry) and finishes, with nothing lost or duplicated.
#[test]
fn a_killed_cli_worker_keeps_its_lease_and_takes_it_back_when_restarted() {
    let (_rt, server, standin, dataset) = start_standins();
    let dir = tempfile::tempdir().unwrap();
    let cfg = fleet_config(dir.path(), &server);
    server.set_latency(StdDuration::from_millis(100));
    let mut a = spawn_worker(&cfg, &standin, "cli-a");
    // Wait (bounded) until worker A is extracting, then kill it mid-window.
    let deadline = std::time::Instant::now() + StdDuration::from_secs(60);
    while server.stats().windows.len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "worker A never started"
        );
        std::thread::sleep(StdDuration::from_millis(10));
    }
    a.kill().unwrap(); // SIGKILL: no release, no flush
    a.wait().unwrap();
    server.set_latency(StdDuration::ZERO);
    let extracted_by_a = server.stats().windows.len();

    let b = spawn_worker(&cfg, &standin, "cli-b")
        .wait_with_output()
        .unwrap();
    assert!(
        b.status.success(),
        "a skip is not a failure: {}",
        output_text(&b)
    );
    assert!(
        output_text(&b).contains("leased by worker cli-a until"),
        "{}",
        output_text(&b)
    );
    // `status` shows who holds the streams (it sends nothing to PeopleSoft).
    let status = sync_command_for(&cfg, &standin)
        .arg("status")
        .env("MLC_FLEET_TEST_PASSWORD", DEFAULT_PASSWORD)
        .output()
        .unwrap();
    assert!(
        output_text(&status).contains("lease: held by worker cli-a until"),
        "{}",
        output_text(&status)
    );

    let a = spawn_worker(&cfg, &standin, "cli-a")
        .wait_with_output()
        .unwrap();
    assert!(a.status.success(), "{}", output_text(&a));
    assert_tables_equal_source(&standin, &dataset, &TABLES);
    let per = requests_per_window(&server.stats());
    let again: usize = per.values().map(|n| n - 1).sum();
    assert!(
        again <= extracted_by_a.min(2),
        "only the window(s) in flight at the kill are extracted again ({again}): {per:?}"
    );
}
