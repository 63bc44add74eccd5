//! The `sync` CLI's operational safety against the PeopleSoft stand-in (issue 10): a rejected
//! password costs one request per process and none in the next run, until `reset-auth` or new
//! credentials; a wrong node, a refused port or an unknown host is one clear line before
//! anything is created; `check` runs every configured query; `status` shows a skipped
//! blackout.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;

use chrono::{Duration, Timelike, Utc};
use ml_connector_testkit::dataset::{Dataset, SharedDataset};
use ml_connector_testkit::peoplesoft::{
    PeopleSoftServer, ServerConfig, DEFAULT_OPRID, DEFAULT_PASSWORD,
};

fn sync(cfg: &Path, password: &str, args: &[&str]) -> Output {
    common::sync_command(cfg)
        .args(args)
        .env("MLC_CLI_TEST_PASSWORD", password)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const SIX_STREAMS: &str = r#"
[[streams]]
name = "vendors"
domain = "vendors"
[[streams]]
name = "customers"
domain = "customers"
[[streams]]
name = "purchase_order_lines"
domain = "purchase_order_lines"
[[streams]]
name = "journal_lines"
domain = "journal_lines"
[[streams]]
name = "employees"
domain = "employees"
[[streams]]
name = "paychecks"
domain = "paychecks"
"#;

struct Setup {
    dir: tempfile::TempDir,
    cfg: PathBuf,
}

impl Setup {
    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    fn db(&self) -> PathBuf {
        self.dir.path().join("dest.db")
    }
}

fn setup(host: &str, port: u16, node: &str, extra_ps: &str, streams: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pipeline.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[pipeline]
name = "safety"
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
password_env = "MLC_CLI_TEST_PASSWORD"
min_gap = "0ms"
request_timeout = "5s"
{extra_ps}
[destination]
kind = "sqlite"
path = "{db}"
[defaults]
start = "2025-01-01T00:00:00Z"
max_window = "60d"
{streams}
"#,
            state = dir.path().join("state").display(),
            user = DEFAULT_OPRID,
            db = dir.path().join("dest.db").display(),
        ),
    )
    .unwrap();
    Setup { dir, cfg }
}

fn server() -> PeopleSoftServer {
    PeopleSoftServer::start(SharedDataset::new(Dataset::manufacturer(5, 0.2)))
}

#[test]
fn a_rejected_password_costs_one_request_per_process_and_none_in_the_next_run() {
    let server = server();
    let s = setup(
        &server.host(),
        server.port(),
        server.node(),
        "",
        SIX_STREAMS,
    );
    let out = sync(&s.cfg, "wrong-password-1", &["run", "--once"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("rejected"), "{}", text(&out));
    assert_eq!(server.stats().total_requests, 1);
    assert_eq!(server.stats().unauthorized, 1);
    // Nothing was created: the check came first.
    assert!(!s.db().exists());
    let latch = std::fs::read_to_string(s.state().join("auth-latch.json")).unwrap();
    assert!(!latch.contains("wrong-password-1"), "{latch}");

    // The next run (a cron job 15 minutes later) refuses without a request.
    for cmd in [&["run", "--once"][..], &["check"][..], &["replay"][..]] {
        let out = sync(&s.cfg, "wrong-password-1", cmd);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(text(&out).contains("reset-auth"), "{}", text(&out));
    }
    assert_eq!(server.stats().total_requests, 1);
    let out = sync(&s.cfg, "wrong-password-1", &["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("LATCHED"), "{}", text(&out));
    assert!(text(&out).contains("reset-auth"), "{}", text(&out));
    assert!(
        text(&out).contains("committed: nothing yet"),
        "{}",
        text(&out)
    );
    assert_eq!(server.stats().total_requests, 1);

    // The operator clears it: the next run logs in again (still wrong: one more request).
    let out = sync(&s.cfg, "wrong-password-1", &["reset-auth"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("cleared"), "{}", text(&out));
    let out = sync(&s.cfg, "wrong-password-1", &["run", "--once"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(server.stats().total_requests, 2);

    // New credentials clear the latch by themselves, and the run goes ahead (whether every
    // window of the sample site completes is the capture tests' business).
    let out = sync(&s.cfg, DEFAULT_PASSWORD, &["run", "--once"]);
    assert!(!text(&out).contains("refusing"), "{}", text(&out));
    assert!(!s.state().join("auth-latch.json").exists());
    let stats = server.stats();
    assert_eq!(stats.unauthorized, 2);
    assert!(stats.total_requests > 10, "{}", text(&out));
    assert!(s.db().exists());
}

#[test]
fn an_unknown_node_is_one_line_and_nothing_is_created() {
    let server = PeopleSoftServer::start_with(
        Dataset::manufacturer(5, 0.1),
        ServerConfig {
            unknown_node_404: true,
            ..ServerConfig::default()
        },
    );
    let s = setup(&server.host(), server.port(), "WRONG_NODE", "", SIX_STREAMS);
    let out = sync(&s.cfg, DEFAULT_PASSWORD, &["run", "--once"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let want = format!(
        "node `WRONG_NODE` is not known to the Integration Broker at {}:{}",
        server.host(),
        server.port()
    );
    assert!(err.contains(&want), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(!err.contains("<html"), "{err}");
    assert_eq!(server.stats().total_requests, 1);
    assert!(!s.db().exists());
    assert!(!s.state().exists());
}

#[test]
fn a_refused_port_or_an_unknown_host_is_one_line_and_nothing_is_created() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let s = setup("127.0.0.1", port, "PSFT_EP", "", SIX_STREAMS);
    let started = std::time::Instant::now();
    let out = sync(&s.cfg, DEFAULT_PASSWORD, &["run", "--once"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains("connection refused"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(!s.db().exists() && !s.state().exists());

    let s = setup("mlc-no-such-host.invalid", 443, "PSFT_EP", "", SIX_STREAMS);
    let out = sync(
        &s.cfg,
        DEFAULT_PASSWORD,
        &[
            "backfill",
            "--from",
            "2025-01-01T00:00:00Z",
            "--to",
            "2025-02-01T00:00:00Z",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        err.contains("cannot resolve the host name") || err.contains("could not connect"),
        "{err}"
    );
    assert!(!s.db().exists() && !s.state().exists());
}

#[test]
fn check_runs_every_configured_query() {
    let server = server();
    let streams = format!(
        "{SIX_STREAMS}\n[[streams]]\nname = \"missing\"\ndomain = \"vendors\"\nquery = \"ZZ_NO_SUCH_QUERY\"\n"
    );
    let s = setup(&server.host(), server.port(), server.node(), "", &streams);
    let out = sync(&s.cfg, DEFAULT_PASSWORD, &["check"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    for name in [
        "vendors",
        "customers",
        "purchase_order_lines",
        "journal_lines",
        "employees",
        "paychecks",
    ] {
        assert!(t.contains(&format!("stream {name}: query ok")), "{t}");
    }
    assert!(t.contains("stream missing: FAILED"), "{t}");
    // One ExecuteQuery per stream, each over an empty window.
    let stats = server.stats();
    assert_eq!(stats.windows.len(), 7, "{t}");
    assert!(stats.windows.iter().all(|w| w.numrows.unwrap_or(0) == 0));
}

#[test]
fn a_skipped_blackout_shows_in_status_and_counts_nothing() {
    let server = server();
    let now = Utc::now();
    let (from, to) = (now - Duration::hours(1), now + Duration::hours(1));
    let blackout = format!(
        "[[peoplesoft.blackout]]\nfrom = \"{:02}:{:02}\"\nto = \"{:02}:{:02}\"\ntime_zone = \"UTC\"\naction = \"skip\"\nlabel = \"payroll\"\n",
        from.hour(),
        from.minute(),
        to.hour(),
        to.minute()
    );
    let s = setup(
        &server.host(),
        server.port(),
        server.node(),
        &blackout,
        SIX_STREAMS,
    );
    for _ in 0..3 {
        let out = sync(&s.cfg, DEFAULT_PASSWORD, &["run", "--once"]);
        assert!(out.status.success(), "{}", text(&out));
    }
    assert_eq!(server.stats().total_requests, 0);
    let out = sync(&s.cfg, DEFAULT_PASSWORD, &["status"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("skipped: blackout until"), "{t}");
    assert!(!t.contains("failed"), "{t}");
}

#[test]
fn the_scheduled_runner_stops_on_rejected_credentials() {
    let server = server();
    let s = setup(
        &server.host(),
        server.port(),
        server.node(),
        "",
        SIX_STREAMS,
    );
    let cfg = std::fs::read_to_string(&s.cfg).unwrap().replace(
        "name = \"safety\"",
        "name = \"safety\"\nschedule = \"every 1s\"",
    );
    std::fs::write(&s.cfg, cfg).unwrap();
    let started = std::time::Instant::now();
    let out = sync(&s.cfg, "wrong-password-2", &["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("rejected"), "{}", text(&out));
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert_eq!(server.stats().total_requests, 1);
}

#[test]
fn the_scheduled_runner_stops_calling_peoplesoft_when_the_password_is_rotated() {
    use std::io::{BufRead, BufReader};
    let server = server();
    let s = setup(
        &server.host(),
        server.port(),
        server.node(),
        "",
        "[[streams]]\nname = \"journal_lines\"\ndomain = \"journal_lines\"\n[[streams]]\nname = \"vendors\"\ndomain = \"vendors\"\n",
    );
    let cfg = std::fs::read_to_string(&s.cfg).unwrap().replace(
        "name = \"safety\"",
        "name = \"safety\"\nschedule = \"every 1s\"",
    );
    std::fs::write(&s.cfg, cfg).unwrap();
    let mut child = common::sync_command(&s.cfg)
        .arg("run")
        .env("MLC_CLI_TEST_PASSWORD", DEFAULT_PASSWORD)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Wait for the first cycle's report, then rotate the password on the server.
    for line in lines.by_ref() {
        if line.unwrap().starts_with("run ") {
            break;
        }
    }
    server.set_password("rotated-by-the-operator");
    let before = server.stats().total_requests;
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("not calling PeopleSoft any more"), "{err}");
    let stats = server.stats();
    assert_eq!(stats.unauthorized, 1, "{err}");
    assert_eq!(stats.total_requests, before + 1, "{err}");
    assert!(s.state().join("auth-latch.json").exists());
}
