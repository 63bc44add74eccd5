//! Crash safety of the whole product: the `ml-connector` command runs as a child process against the
//! PeopleSoft stand-in and a local SQLite destination, and is killed with SIGKILL at many
//! random moments (after a random number of committed windows, so mid-cycle, mid-window or
//! between a write and its checkpoint). A final run then completes, and the destination must
//! equal the source truth: no lost rows, no duplicate keys.

use crate::common;

use std::io::{BufRead, BufReader};

use std::process::Stdio;

use crate::common::assert_table_matches;
use ml_connector_testkit::dataset::{Dataset, SharedDataset};
use ml_connector_testkit::peoplesoft::{PeopleSoftServer, DEFAULT_OPRID, DEFAULT_PASSWORD};

fn config(server: &PeopleSoftServer, dir: &std::path::Path) -> String {
    format!(
        r#"
[pipeline]
name = "crash"

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
password_env = "MLC_CRASH_TEST_PASSWORD"
min_gap = "1ms"
request_timeout = "10s"

[destination]
kind = "sqlite"
path = "{db}"

[defaults]
start = "2025-01-01T00:00:00Z"
max_window = "5d"
batch_size = 40

[[streams]]
name = "purchase_order_lines"
domain = "purchase_order_lines"

[[streams]]
name = "journal_lines"
domain = "journal_lines"

[[streams]]
name = "employees"
domain = "employees"
"#,
        state = dir.join("state").display(),
        host = server.host(),
        port = server.port(),
        node = server.node(),
        user = DEFAULT_OPRID,
        db = dir.join("dest.db").display(),
    )
}

#[test]
fn killed_at_random_moments_the_destination_still_equals_the_source() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dataset = SharedDataset::new(Dataset::manufacturer(11, 1.0));
    let server = rt.block_on(async { PeopleSoftServer::start(dataset.clone()) });
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pipeline.toml");
    std::fs::write(&cfg, config(&server, dir.path())).unwrap();
    let run = || {
        common::sync_command(&cfg)
            .args(["run", "--once"])
            .env("MLC_CRASH_TEST_PASSWORD", DEFAULT_PASSWORD)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };

    let mut rng = fastrand::Rng::with_seed(20261127);
    let mut kills = 0;
    for _ in 0..12 {
        let mut child = run();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let kill_after = rng.usize(1..40);
        let mut committed = 0;
        let mut finished = true;
        for line in stdout.lines() {
            let line = line.unwrap();
            if line.contains(": committed ") {
                committed += 1;
                if committed >= kill_after {
                    child.kill().unwrap(); // SIGKILL: no destructor, no flush, no unlock
                    finished = false;
                    kills += 1;
                    break;
                }
            }
        }
        let status = child.wait().unwrap();
        if finished {
            // The run completed before the chosen moment: fine, but it must have succeeded.
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            assert!(status.success(), "run failed: {err}");
        }
    }
    assert!(kills >= 6, "the test killed the process only {kills} times");

    // A last, undisturbed run (the OS released the killed processes' locks).
    let out = run().wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let db = rusqlite::Connection::open(dir.path().join("dest.db")).unwrap();
    assert_table_matches(
        &db,
        &dataset,
        "po_lines",
        "ps_purchase_order_lines",
        &[],
        &["MERCHANDISE_AMT", "PRICE_PO"],
    );
    assert_table_matches(
        &db,
        &dataset,
        "journal_lines",
        "ps_journal_lines",
        &["LINE_DESCR"],
        &["MONETARY_AMOUNT"],
    );
    assert_table_matches(&db, &dataset, "job", "ps_job", &["DEPTID"], &["ANNUAL_RT"]);
    drop(server);
}
