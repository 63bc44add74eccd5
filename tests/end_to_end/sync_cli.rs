//! The `sync` example's commands against the PeopleSoft stand-in and a SQLite destination:
//! check, run --once, status, backfill, verify, replay; and a bad configuration file.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use ml_connector_testkit::dataset::{Dataset, SharedDataset};
use ml_connector_testkit::peoplesoft::{PeopleSoftServer, DEFAULT_OPRID, DEFAULT_PASSWORD};

fn sync(cfg: &Path, args: &[&str]) -> Output {
    common::sync_command(cfg)
        .args(args)
        .env("MLC_CLI_TEST_PASSWORD", DEFAULT_PASSWORD)
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

#[test]
fn commands_work_end_to_end() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(async {
        PeopleSoftServer::start(SharedDataset::new(Dataset::manufacturer(5, 0.3)))
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pipeline.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[pipeline]
name = "cli"
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
[destination]
kind = "sqlite"
path = "{db}"
[defaults]
start = "2025-01-01T00:00:00Z"
max_window = "60d"
[[streams]]
name = "journal_lines"
domain = "journal_lines"
"#,
            state = dir.path().join("state").display(),
            host = server.host(),
            port = server.port(),
            node = server.node(),
            user = DEFAULT_OPRID,
            db = dir.path().join("dest.db").display(),
        ),
    )
    .unwrap();

    let out = sync(&cfg, &["check"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("PeopleSoft:"), "{}", text(&out));

    let out = sync(&cfg, &["run", "--once"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("journal_lines"), "{}", text(&out));

    let out = sync(&cfg, &["status"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("committed: [2025-01-01"),
        "{}",
        text(&out)
    );

    let out = sync(
        &cfg,
        &[
            "backfill",
            "--from",
            "2025-03-01T00:00:00Z",
            "--to",
            "2025-04-01T00:00:00Z",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));

    // Source (the query re-run per window) and target agree key by key and hash by hash.
    let out = sync(&cfg, &["verify"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(" 0 differ: 0 missing, 0 changed, 0 deleted"),
        "{}",
        text(&out)
    );
    // A row deleted in PeopleSoft: verify finds it, `--requeue` applies the (soft) delete.
    let key = server
        .dataset()
        .read()
        .table("journal_lines")
        .unwrap()
        .rows()[0]
        .key();
    let key: Vec<&str> = key.iter().map(String::as_str).collect();
    server
        .dataset()
        .write()
        .remove_row("journal_lines", &key)
        .unwrap();
    let out = sync(&cfg, &["verify", "--requeue"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(" 1 differ")
            && text(&out).contains("1 deleted in PeopleSoft")
            && text(&out).contains("applied 1 delete(s)"),
        "{}",
        text(&out)
    );
    let out = sync(
        &cfg,
        &["verify", "--stream", "journal_lines", "--sample", "3"],
    );
    assert!(
        out.status.success(),
        "deleted rows are no longer live: {}",
        text(&out)
    );
    assert!(text(&out).contains("3 window(s) checked"), "{}", text(&out));

    let out = sync(&cfg, &["replay"]);
    assert!(out.status.success(), "{}", text(&out));

    // An unknown command is a usage error.
    let out = sync(&cfg, &["frobnicate"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn run_on_a_schedule_stops_gracefully_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(async {
        PeopleSoftServer::start(SharedDataset::new(Dataset::manufacturer(5, 0.3)))
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pipeline.toml");
    std::fs::write(
        &cfg,
        format!(
            "[pipeline]\nname = \"sched\"\nschedule = \"every 1s\"\n[state]\ndir = \"{state}\"\n[peoplesoft]\nhost = \"{host}\"\nport = {port}\nnode = \"{node}\"\nscheme = \"http\"\nallow_http = true\nuser = \"{user}\"\npassword_env = \"MLC_CLI_TEST_PASSWORD\"\nmin_gap = \"0ms\"\n[destination]\nkind = \"sqlite\"\npath = \"{db}\"\n[defaults]\nstart = \"2025-01-01T00:00:00Z\"\nmax_window = \"90d\"\n[[streams]]\nname = \"journal_lines\"\ndomain = \"journal_lines\"\n",
            state = dir.path().join("state").display(),
            host = server.host(),
            port = server.port(),
            node = server.node(),
            user = DEFAULT_OPRID,
            db = dir.path().join("dest.db").display(),
        ),
    )
    .unwrap();
    let mut child = common::sync_command(&cfg)
        .arg("run")
        .env("MLC_CLI_TEST_PASSWORD", DEFAULT_PASSWORD)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut cycles = 0;
    for line in lines.by_ref() {
        if line.unwrap().starts_with("run ") {
            cycles += 1;
            if cycles == 2 {
                break;
            }
        }
    }
    assert_eq!(cycles, 2, "two scheduled cycles ran");
    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful stop exits 0: {status:?}");
}

#[test]
fn a_bad_file_lists_every_problem_with_its_line_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pipeline.toml");
    std::fs::write(
        &cfg,
        "[pipeline]\nname = \"x\"\n[peoplesoft]\nhost = \"https://erp/\"\nport = 0\nnode = \"PSFT EP\"\nuser = \"U\"\npassword_env = \"P\"\n[destination]\nkind = \"oracle\"\n[[streams]]\nname = \"a\"\ndomain = \"nope\"\n",
    )
    .unwrap();
    let out = sync(&cfg, &["run", "--once"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for line in [
        ":4: `peoplesoft.host`",
        ":5: `peoplesoft.port`",
        ":6: `peoplesoft.node`",
        ":10: `destination.kind`",
        ":13: stream `a`: unknown domain",
    ] {
        assert!(err.contains(line), "missing {line:?} in:\n{err}");
    }
    assert!(!err.contains("panicked"));
}

#[test]
fn every_command_has_help_and_usage_errors_exit_2() {
    let bin = env!("CARGO_BIN_EXE_ml-connector");
    let run = |args: &[&str]| Command::new(bin).args(args).output().unwrap();
    let top = run(&["--help"]);
    assert_eq!(top.status.code(), Some(0));
    let help = String::from_utf8_lossy(&top.stdout).to_string();
    for command in [
        "check",
        "run",
        "status",
        "replay",
        "backfill",
        "verify",
        "reset-auth",
    ] {
        assert!(
            help.contains(command),
            "{command} missing from --help:\n{help}"
        );
        let out = run(&[command, "--help"]);
        assert_eq!(out.status.code(), Some(0), "{command} --help");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            text.contains(&format!("ml-connector {command}")),
            "{command} --help:\n{text}"
        );
    }
    assert!(help.contains("Exit codes"), "{help}");
    let version = run(&["--version"]);
    assert_eq!(version.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("ml-connector "));
    // Usage errors: an unknown command, a missing required flag, a bad time.
    for args in [
        &["sync"][..],
        &["backfill", "--from", "2026-01-01T00:00:00Z"],
        &[
            "backfill",
            "--from",
            "yesterday",
            "--to",
            "2026-01-01T00:00:00Z",
        ],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    // A missing configuration file is a configuration problem, named with its path.
    let out = run(&["--config", "/nonexistent/pipeline.toml", "status"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        err.contains("/nonexistent/pipeline.toml: cannot read the file"),
        "{err}"
    );
}
