//! `ml-connector run --once` with a Databricks destination that bulk-loads: each large batch
//! is staged as a Parquet file in a Unity Catalog volume, loaded with one MERGE … read_files,
//! and deleted; the summary shows the statements, SQL bytes, files and bytes.

use crate::common::*;
use ml_connector_testkit::databricks::DatabricksStandIn;
use ml_connector_testkit::dataset::{Dataset, SharedDataset, TABLE_JOURNAL_LINES, TABLE_VENDORS};
use ml_connector_testkit::peoplesoft::{PeopleSoftServer, DEFAULT_OPRID, DEFAULT_PASSWORD};

#[test]
fn run_once_bulk_loads_through_a_volume_and_reports_files_and_bytes() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (server, standin, dataset) = rt.block_on(async {
        let dataset = SharedDataset::new(Dataset::manufacturer(5, 0.3));
        (
            PeopleSoftServer::start(dataset.clone()),
            DatabricksStandIn::start().await,
            dataset,
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pipeline.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[pipeline]
name = "bulk"
[state]
dir = "{state}"
[peoplesoft]
host = "{host}"
port = {port}
node = "{node}"
scheme = "http"
allow_http = true
time_zone = "America/Chicago"
user = "{user}"
password_env = "MLC_BULK_TEST_PASSWORD"
min_gap = "0ms"
[destination]
kind = "databricks"
catalog = "main"
schema = "finance"
allow_http = true
volume = "staging"
create_volume = true
bulk_threshold = 10
[defaults]
start = "2025-01-01T00:00:00Z"
max_window = "400d"
[[streams]]
name = "journal_lines"
domain = "journal_lines"
[[streams]]
name = "vendors"
domain = "vendors"
"#,
            state = dir.path().join("state").display(),
            host = server.host(),
            port = server.port(),
            node = server.node(),
            user = DEFAULT_OPRID,
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = sync_command_for(&cfg, &standin)
            .args(args)
            .env("MLC_BULK_TEST_PASSWORD", DEFAULT_PASSWORD)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };

    // `check` before the first run: the volume is missing and the run may create it.
    let (ok, text) = run(&["check"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("volume main.finance.staging: missing; the first run creates it"),
        "{text}"
    );
    assert!(
        !standin.has_volume("main.finance.staging"),
        "check created it"
    );

    let (ok, text) = run(&["run", "--once"]);
    assert!(ok, "{text}");

    // Every row loaded, once.
    assert_tables_equal_source(
        &standin,
        &dataset,
        &[
            (TABLE_JOURNAL_LINES, "ps_journal_lines"),
            (TABLE_VENDORS, "ps_vendors"),
        ],
    );

    // Staged through the volume (created by prepare), loaded with read_files, nothing left.
    assert!(standin.has_volume("main.finance.staging"));
    let uploads = standin.uploads();
    assert!(uploads.len() >= 2, "{} uploads", uploads.len());
    assert!(uploads.iter().all(|u| u
        .path
        .starts_with("/Volumes/main/finance/staging/_ml_staging/")));
    assert_eq!(standin.volume_files("main.finance.staging"), Some(vec![]));
    assert!(standin
        .statements()
        .iter()
        .any(|s| s.sql.starts_with("MERGE INTO") && s.sql.contains("read_files(")));

    // The summary shows what the sink sent.
    let staged: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("sink: "))
        .collect();
    assert_eq!(staged.len(), 2, "one sink line per stream:\n{text}");
    assert!(
        staged
            .iter()
            .all(|l| l.contains("statement(s)") && l.contains("file(s) staged")),
        "{text}"
    );

    // `check` after it: the volume answers and takes a probe file, which it removes.
    let uploads = standin.uploads().len();
    let (ok, text) = run(&["check"]);
    assert!(ok, "{text}");
    assert!(text.contains("volume main.finance.staging: ok"), "{text}");
    assert_eq!(standin.uploads().len(), uploads + 1);
    assert_eq!(standin.volume_files("main.finance.staging"), Some(vec![]));
}
