//! Reverse sync as a product: `[[writeback]]` streams in `pipeline.toml`, run by the
//! `ml-connector` binary against the stand-ins. One PeopleSoft host serves both directions
//! (the CIRT stand-in passes QAS requests to the QAS stand-in), so the forward streams and the
//! write-back share one client and one credential latch, as in production.

use std::path::{Path, PathBuf};
use std::process::Output;

use chrono::{DateTime, Duration, Utc};
use databricks_client::sql;
use ml_connector_testkit::cirt::{CirtConfig, CirtStandIn};
use ml_connector_testkit::databricks::{DatabricksStandIn, StandInValue};
use ml_connector_testkit::dataset::{Dataset, SharedDataset, TABLE_VENDORS};
use ml_connector_testkit::peoplesoft::{PeopleSoftServer, DEFAULT_OPRID, DEFAULT_PASSWORD};
use ml_connector_testkit::SITE_TIME_ZONE_NAME;
use sync_core::{ColumnType, Value};

use crate::common;

const GOVERNED: &str = "main.mdm.vendor_master";
const STEWARD: &str = "dana.steward@northwind.example";
const NEW_VENDOR: &str = "9000000001";

struct World {
    dataset: SharedDataset,
    qas: PeopleSoftServer,
    cirt: CirtStandIn,
    dbx: DatabricksStandIn,
    dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
}

impl World {
    fn new(cirt_password: &str) -> World {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let dataset = SharedDataset::new(Dataset::manufacturer(23, 0.2));
        let qas = PeopleSoftServer::start(dataset.clone());
        let (cirt, dbx) = rt.block_on(async {
            let cirt = CirtStandIn::start_with(
                dataset.clone(),
                CirtConfig {
                    users: [(DEFAULT_OPRID.to_string(), cirt_password.to_string())].into(),
                    qas_upstream: Some(qas.addr()),
                    ..CirtConfig::default()
                },
            )
            .await;
            (cirt, DatabricksStandIn::start().await)
        });
        dbx.execute_sql("CREATE SCHEMA IF NOT EXISTS main.mdm")
            .unwrap();
        dbx.execute_sql(&format!(
            "CREATE TABLE {GOVERNED} (setid STRING NOT NULL, vendor_id STRING NOT NULL, \
             name1 STRING, city STRING, vendor_status STRING, modified_by STRING, \
             modified_at TIMESTAMP) USING DELTA"
        ))
        .unwrap();
        World {
            dataset,
            qas,
            cirt,
            dbx,
            dir: tempfile::tempdir().unwrap(),
            rt,
        }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The pipeline file: the vendors forward stream into `main.erp`, and the vendor master
    /// write-back from the separate governed table.
    fn config(&self, writeback_table: &str) -> PathBuf {
        let cfg = self.dir.path().join("pipeline.toml");
        std::fs::write(
            &cfg,
            format!(
                r#"
[pipeline]
name = "reverse"
[state]
dir = "{state}"
[peoplesoft]
host = "{host}"
port = {port}
node = "{node}"
scheme = "http"
allow_http = true
time_zone = "{zone}"
user = "{user}"
password_env = "MLC_REVERSE_PASSWORD"
min_gap = "0ms"
[destination]
kind = "databricks"
catalog = "main"
schema = "erp"
allow_http = true
[defaults]
start = "2025-01-01T00:00:00Z"
max_window = "400d"

[[streams]]
name = "vendors"
domain = "vendors"

[[writeback]]
name = "vendor_master"
table = "{writeback_table}"
keys = [
  {{ column = "setid", ci_field = "SETID" }},
  {{ column = "vendor_id", ci_field = "VENDOR_ID" }},
]
fields = [
  {{ column = "name1", ci_field = "NAME1" }},
  {{ column = "city", ci_field = "CITY" }},
]
modified_at_column = "modified_at"
modified_by_column = "modified_by"
integration_identity = "{user}"
conflict_policy = "peoplesoft_wins"
settle_lag = "0s"
[writeback.ci]
name = "VNDR_ID"
stamp_field = "LASTUPDDTTM"
"#,
                state = self.state().display(),
                host = self.cirt.host(),
                port = self.cirt.port(),
                node = self.cirt.node(),
                zone = SITE_TIME_ZONE_NAME,
                user = DEFAULT_OPRID,
            ),
        )
        .unwrap();
        cfg
    }

    fn run(&self, cfg: &Path, args: &[&str]) -> Output {
        common::sync_command_for(cfg, &self.dbx)
            .args(args)
            .env("MLC_REVERSE_PASSWORD", DEFAULT_PASSWORD)
            .output()
            .unwrap()
    }

    /// A row of the governed table, as a steward tool or a Databricks job writes it.
    fn governed(&self, vendor: &str, name1: &str, city: &str, by: &str, at: DateTime<Utc>) {
        self.governed_with_status(vendor, name1, city, "A", by, at)
    }

    fn governed_with_status(
        &self,
        vendor: &str,
        name1: &str,
        city: &str,
        status: &str,
        by: &str,
        at: DateTime<Utc>,
    ) {
        let lit = |s: &str| sql::literal(&Value::String(s.into()), Some(ColumnType::String));
        self.dbx
            .execute_sql(&format!(
                "INSERT INTO {GOVERNED} VALUES ({}, {}, {}, {}, {}, {}, {})",
                lit("SHARE"),
                lit(vendor),
                lit(name1),
                lit(city),
                lit(status),
                lit(by),
                sql::literal(&Value::Timestamp(at), Some(ColumnType::Timestamp)),
            ))
            .unwrap();
    }

    fn governed_name(&self, vendor: &str) -> StandInValue {
        self.dbx
            .rows(GOVERNED)
            .unwrap()
            .into_iter()
            .find(|r| r["vendor_id"] == StandInValue::String(vendor.into()))
            .unwrap()["name1"]
            .clone()
    }

    fn vendors(&self, n: usize) -> Vec<String> {
        let d = self.dataset.read();
        let mut ids: Vec<String> = d
            .table(TABLE_VENDORS)
            .unwrap()
            .rows()
            .iter()
            .filter(|r| r.text("SETID").as_deref() == Some("SHARE"))
            .map(|r| r.text("VENDOR_ID").unwrap())
            .collect();
        ids.sort();
        ids.truncate(n);
        assert_eq!(ids.len(), n);
        ids
    }

    fn name(&self, vendor: &str) -> String {
        self.cirt.vendor(vendor).unwrap()["NAME1"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn write_back_from_pipeline_toml_check_dry_run_run_rerun_and_status() {
    let w = World::new(DEFAULT_PASSWORD);
    let ids = w.vendors(5);
    let (a, b, c, echo) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    let echo_before = w.name(echo);
    let steward_at = Utc::now() - Duration::minutes(10);
    // A: the steward renamed it; PeopleSoft's version is older (the dataset's history).
    w.governed(
        a,
        "Steward Verified Supply Co.",
        "Toledo",
        STEWARD,
        steward_at,
    );
    // B: the steward renamed it, then a PeopleSoft user changed it online (timeline 1).
    w.governed(b, "Steward Name For B", "Dayton", STEWARD, steward_at);
    // C: the steward's edit is followed by a forward cycle (timeline 2): `run` runs the
    // forward stream first, into its own table, and the governed row survives.
    w.governed(c, "Steward Name For C", "Akron", STEWARD, steward_at);
    // An echo: last written by the integration itself, never written back.
    w.governed(
        echo,
        "Echo Value Never Sent",
        "Nowhere",
        DEFAULT_OPRID,
        steward_at,
    );
    // A vendor that exists only in the governed table.
    w.governed(
        NEW_VENDOR,
        "Lakeside Robotics LLC",
        "Toledo",
        STEWARD,
        steward_at,
    );
    w.cirt
        .edit_vendor(b, &[("NAME1", "Renamed Online by AP".into())], "JSMITH")
        .unwrap();
    let cfg = w.config(GOVERNED);

    // `check`: the CIRT service answers a Get; nothing is written.
    let out = w.run(&cfg, &["check"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("write-back vendor_master: CIRT VNDR_ID Get ok"),
        "{}",
        text(&out)
    );
    assert_eq!(w.cirt.write_count(), 0);

    // `run --dry-run`: the plan, no POST or PUT, no forward stream.
    w.cirt.clear_requests();
    let out = w.run(&cfg, &["run", "--dry-run"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert_eq!(w.cirt.count("POST"), 0, "{t}");
    assert_eq!(w.cirt.count("PUT"), 0, "{t}");
    assert!(
        w.cirt.count("GET") >= 4,
        "the dry run reads PeopleSoft: {t}"
    );
    assert!(t.contains("DRY RUN"), "{t}");
    assert!(
        t.contains("created 1, updated 2, unchanged 1 (1 echo(es) skipped), conflict 1"),
        "{t}"
    );
    assert!(t.contains("dry run: would update"), "{t}");
    assert!(
        w.dbx.rows("main.erp.ps_vendors").is_none(),
        "no forward run"
    );
    assert!(w.cirt.vendor(NEW_VENDOR).is_none());

    // `run --once`: the forward stream, then the write-back.
    w.cirt.clear_requests();
    let out = w.run(&cfg, &["run", "--once"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert_eq!(w.cirt.count("POST"), 1, "{t}");
    assert_eq!(w.cirt.count("PUT"), 2, "{t}");
    assert_eq!(w.name(a), "Steward Verified Supply Co.");
    assert_eq!(w.name(c), "Steward Name For C");
    assert_eq!(
        w.cirt.vendor(NEW_VENDOR).unwrap()["CITY"].as_str(),
        Some("Toledo")
    );
    // Timeline 1: PeopleSoft's newer edit is not overwritten; both versions are reported.
    assert_eq!(w.name(b), "Renamed Online by AP");
    assert!(
        t.contains(&format!(
            "conflict  SETID=SHARE VENDOR_ID={b}: not sent: PeopleSoft's version (LASTUPDDTTM"
        )),
        "{t}"
    );
    assert!(t.contains("PeopleSoft version 20"), "{t}");
    assert!(
        t.contains("\"Renamed Online by AP\" -> \"Steward Name For B\""),
        "{t}"
    );
    // Timeline 2: the forward cycle loaded its own table, the steward's row is intact.
    assert!(w.dbx.row_count("main.erp.ps_vendors").unwrap() > 0);
    assert_eq!(
        w.governed_name(c),
        StandInValue::String("Steward Name For C".into())
    );
    // The echo was never sent.
    assert_eq!(w.name(echo), echo_before);

    // A rerun sends nothing: applied rows equal their baselines, the conflict stays one.
    w.cirt.clear_requests();
    let out = w.run(&cfg, &["run", "--once"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert_eq!(w.cirt.write_count(), 0, "{t}");
    assert_eq!(w.name(b), "Renamed Online by AP");

    // `status` and the audit show the per-record outcomes.
    let out = w.run(&cfg, &["status"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("vendor_master (write-back: main.mdm.vendor_master -> CIRT VNDR_ID)"),
        "{t}"
    );
    assert!(t.contains("conflict  SETID=SHARE"), "{t}");
    let audit = std::fs::read_to_string(w.state().join("audit.jsonl")).unwrap();
    assert!(audit.contains("writeback.conflict"), "{audit}");
    let results = std::fs::read_to_string(w.state().join("writeback-vendor_master.jsonl")).unwrap();
    let conflict = results
        .lines()
        .find(|l| l.contains(&format!("\"VENDOR_ID\":\"{b}\"")) && l.contains("\"conflict\""))
        .unwrap_or_else(|| panic!("{results}"));
    assert!(
        conflict.contains("peoplesoft_version") && conflict.contains("row_version"),
        "{conflict}"
    );
    drop(w.rt);
}

#[test]
fn a_governed_table_that_is_a_forward_table_is_rejected() {
    let w = World::new(DEFAULT_PASSWORD);
    let cfg = w.config("main.erp.ps_vendors");
    let out = w.run(&cfg, &["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("pipeline.toml:31: writeback `vendor_master`: `table` main.erp.ps_vendors is also the table of forward stream `vendors`"),
        "{t}"
    );
    assert_eq!(w.cirt.requests().len(), 0);
}

#[test]
fn a_401_on_write_back_latches_the_account_for_the_forward_streams_too() {
    // QAS accepts the password, the CIRT service does not (e.g. the OPRID lacks it there).
    let w = World::new("another-password");
    let ids = w.vendors(1);
    w.governed(
        &ids[0],
        "Steward Name",
        "Toledo",
        STEWARD,
        Utc::now() - Duration::minutes(10),
    );
    let cfg = w.config(GOVERNED);
    let out = w.run(&cfg, &["run", "--once"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("401"), "{t}");
    assert!(!t.contains(DEFAULT_PASSWORD), "{t}");
    // Exactly one write-back request, never retried, nothing written.
    let requests = w.cirt.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(requests[0].status, 401);
    assert_eq!(w.cirt.write_count(), 0);
    // The next run refuses before any request, forward streams included.
    let qas_before = w.qas.stats().total_requests;
    let out = w.run(&cfg, &["run", "--once"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("reset-auth"), "{t}");
    assert_eq!(w.qas.stats().total_requests, qas_before);
    assert_eq!(w.cirt.requests().len(), 1);
    drop(w.rt);
}

impl World {
    /// The pipeline file without a stamp field: the vendors forward stream seeds the
    /// baselines instead (and VENDOR_STATUS is governed in place of CITY).
    fn seeding_config_text(&self) -> String {
        std::fs::read_to_string(self.config(GOVERNED))
            .unwrap()
            .replace("stamp_field = \"LASTUPDDTTM\"\n", "")
            .replace(
                "{ column = \"city\", ci_field = \"CITY\" }",
                "{ column = \"vendor_status\", ci_field = \"VENDOR_STATUS\" }",
            )
            .replace("[writeback.ci]", "seed_from = \"vendors\"\n[writeback.ci]")
    }

    /// After the forward sync: the steward renames `a` and `b`; then PeopleSoft renames `b`.
    fn steward_renames_both_then_peoplesoft_renames(&self, a: &str, b: &str) {
        let status = |v: &str| {
            self.cirt.vendor(v).unwrap()["VENDOR_STATUS"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let at = Utc::now();
        self.governed_with_status(a, "Steward Name For A", "-", &status(a), STEWARD, at);
        self.governed_with_status(b, "Steward Name For B", "-", &status(b), STEWARD, at);
        std::thread::sleep(std::time::Duration::from_millis(20));
        self.cirt
            .edit_vendor(b, &[("NAME1", "Renamed Online by AP".into())], "JSMITH")
            .unwrap();
        self.cirt.clear_requests();
    }

    /// `a` was written (one PUT); `b`, renamed in PeopleSoft since, is a conflict.
    fn assert_a_written_b_conflict(&self, out: &Output, a: &str, b: &str) {
        let t = text_of(out);
        assert!(out.status.success(), "{t}");
        assert_eq!(self.name(a), "Steward Name For A", "{t}");
        assert_eq!(self.name(b), "Renamed Online by AP", "{t}");
        assert_eq!(self.cirt.count("PUT"), 1, "{t}");
        assert!(
            t.contains(&format!("conflict  SETID=SHARE VENDOR_ID={b}")),
            "{t}"
        );
    }
}

#[test]
fn without_a_stamp_the_forward_stream_seeds_baselines_and_a_newer_edit_still_wins() {
    let w = World::new(DEFAULT_PASSWORD);
    let ids = w.vendors(2);
    let (a, b) = (&ids[0], &ids[1]);
    let cfg = w.dir.path().join("pipeline.toml");
    std::fs::write(&cfg, w.seeding_config_text()).unwrap();

    let out = w.run(&cfg, &["run", "--once"]);
    assert!(out.status.success(), "{}", text_of(&out));
    let baselines = std::fs::read_to_string(w.state().join("writeback-baselines.json")).unwrap();
    assert!(baselines.contains(a.as_str()), "{baselines}");

    w.steward_renames_both_then_peoplesoft_renames(a, b);
    let out = w.run(&cfg, &["run", "--once"]);
    w.assert_a_written_b_conflict(&out, a, b);
    drop(w.rt);
}

/// With `state.kind = "databricks"`, the baselines the forward stream seeds on one worker are
/// what the write-back on another worker compares against (with file baselines, the second
/// worker would hold none and report A as a conflict instead of writing it).
#[test]
fn baselines_in_databricks_are_shared_by_workers() {
    let w = World::new(DEFAULT_PASSWORD);
    let ids = w.vendors(2);
    let (a, b) = (&ids[0], &ids[1]);
    let state = w.state().display().to_string();
    let text = w
        .seeding_config_text()
        .replace("[state]\n", "[state]\nkind = \"databricks\"\n");
    let worker = |n: u32| {
        let cfg = w.dir.path().join(format!("worker-{n}.toml"));
        std::fs::write(&cfg, text.replace(&state, &format!("{state}-{n}"))).unwrap();
        cfg
    };
    let (one, two) = (worker(1), worker(2));

    // A dry run before anything was stored: no baselines, and no table created for them.
    let out = w.run(&two, &["run", "--dry-run"]);
    assert!(out.status.success(), "{}", text_of(&out));
    assert!(
        !w.dbx
            .tables()
            .contains(&"main.erp._ml_writeback_baselines".to_string()),
        "{:?}",
        w.dbx.tables()
    );

    // Worker 1: the forward sync seeds the baselines, in Databricks, not in its state dir.
    let out = w.run(&one, &["run", "--once"]);
    assert!(out.status.success(), "{}", text_of(&out));
    assert!(!w
        .dir
        .path()
        .join("state-1")
        .join("writeback-baselines.json")
        .exists());
    let seeded = w
        .dbx
        .row_count("main.erp._ml_writeback_baselines")
        .unwrap_or(0);
    assert!(seeded >= 2, "{seeded} baselines seeded");

    // Worker 2 (its own state dir, the shared Databricks state): A is written, B is a
    // conflict, exactly as on worker 1.
    w.steward_renames_both_then_peoplesoft_renames(a, b);
    let out = w.run(&two, &["run", "--once"]);
    w.assert_a_written_b_conflict(&out, a, b);

    // A's write is a baseline now: worker 1 sees it and sends nothing more.
    w.cirt.clear_requests();
    let out = w.run(&one, &["run", "--once"]);
    assert!(out.status.success(), "{}", text_of(&out));
    assert_eq!(w.cirt.count("PUT"), 0, "{}", text_of(&out));
    drop(w.rt);
}

fn text_of(o: &Output) -> String {
    text(o)
}

#[test]
fn a_failed_record_is_retried_next_cycle_and_a_lost_answer_is_not_sent_twice() {
    let w = World::new(DEFAULT_PASSWORD);
    let ids = w.vendors(3);
    let (a, b, c) = (&ids[0], &ids[1], &ids[2]);
    let at = Utc::now() - Duration::minutes(10);
    w.governed(a, "Steward Name For A", "Toledo", STEWARD, at);
    w.governed(b, "Steward Name For B", "Toledo", STEWARD, at);
    w.governed(c, "Steward Name For C", "Toledo", STEWARD, at);
    let cfg = w.config(GOVERNED);
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "min_gap = \"0ms\"",
        "min_gap = \"0ms\"\nwrite_attempts = 2\nwrite_retry_delay = \"10ms\"",
    );
    std::fs::write(&cfg, text).unwrap();
    // B: the gateway fails both rounds and nothing is saved. C: the update is saved but its
    // answer is lost (a timed-out write that reached PeopleSoft).
    w.cirt.fail_write(b, 2, false);
    w.cirt.fail_write(c, 1, true);
    let out = w.run(&cfg, &["run", "--once"]);
    let t = text_of(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed record fails the cycle: {t}"
    );
    assert!(
        t.contains(&format!("failed    SETID=SHARE VENDOR_ID={b}")),
        "{t}"
    );
    assert_eq!(w.name(a), "Steward Name For A");
    assert_ne!(w.name(b), "Steward Name For B");
    // C was re-read before any second write: PeopleSoft already had it, one PUT only.
    assert_eq!(w.name(c), "Steward Name For C");
    let puts_for = |v: &str| {
        w.cirt
            .requests()
            .iter()
            .filter(|r| {
                r.method == "PUT" && r.body.as_ref().unwrap()["VENDOR_ID"].as_str() == Some(v)
            })
            .count()
    };
    assert_eq!(puts_for(c), 1, "{t}");
    assert_eq!(puts_for(b), 2, "{t}");

    // The next cycle replays the failed window: only B is written, A and C are not resent.
    w.cirt.clear_requests();
    let out = w.run(&cfg, &["run", "--once"]);
    let t = text_of(&out);
    assert!(out.status.success(), "{t}");
    assert_eq!(w.name(b), "Steward Name For B");
    assert_eq!(w.cirt.write_count(), 1, "{t}");
    assert_eq!(puts_for(b), 1, "{t}");
    drop(w.rt);
}
