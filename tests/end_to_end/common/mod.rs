//! Shared set-up of the end-to-end tests: the PeopleSoft stand-in with the sample site, the
//! real client and source, the engine, and a check of the destination against source truth.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use databricks_client::{ClientOptions, Config, DatabricksClient};
use ml_connector_testkit::databricks::{DatabricksStandIn, StandInValue};
use ml_connector_testkit::dataset::{Dataset, SharedDataset, TABLE_JOB};
use ml_connector_testkit::peoplesoft::ServerConfig;
use peoplesoft_client::{LoadProtection, PeopleSoftSource, StreamDefinition};
use rust_decimal::Decimal;
use secrecy::SecretString;
use sync_core::audit::{JsonlAuditLog, JsonlRejectStore};
use sync_core::engine::{Pipeline, StreamConfig, WindowPolicy};
use sync_core::http::RetryPolicy;
use sync_core::state::FileCheckpointStore;
use sync_core::{Clock, Sink};

pub use ml_connector_testkit::site::{Site, StandInClient};

/// The stand-in with the sample dataset and a client with fast, test-sized protection
/// (retries without long waits, a short request timeout for hang tests).
pub fn site(scale: f64) -> Site {
    site_with(scale, ServerConfig::default())
}

/// [`site`] with a stand-in configured like a particular real site.
pub fn site_with(scale: f64, config: ServerConfig) -> Site {
    Site::start(7, scale, config, &test_client())
}

/// Test-sized protection: one quick retry, no gap, a 2 s request timeout.
pub fn test_client() -> StandInClient {
    StandInClient {
        protection: LoadProtection {
            min_gap: StdDuration::ZERO,
            retry: RetryPolicy {
                max_retries: 1,
                initial_backoff: StdDuration::from_millis(10),
                max_backoff: StdDuration::from_millis(50),
                total_budget: StdDuration::from_secs(10),
                jitter: false,
            },
            ..LoadProtection::default()
        },
        request_timeout: Some(StdDuration::from_secs(2)),
        ..StandInClient::default()
    }
}

pub fn pipeline(
    site: &Site,
    sink: Arc<dyn Sink>,
    state: &Path,
    edit: impl Fn(StreamDefinition) -> StreamDefinition,
) -> Pipeline {
    let policy = WindowPolicy::starting_at(Dataset::history_start()).max_window(Duration::days(92));
    pipeline_with(site, sink, state, policy, edit)
}

/// [`pipeline`] with another window policy.
pub fn pipeline_with(
    site: &Site,
    sink: Arc<dyn Sink>,
    state: &Path,
    policy: WindowPolicy,
    edit: impl Fn(StreamDefinition) -> StreamDefinition,
) -> Pipeline {
    pipeline_full(site, sink, state, policy, edit, |s| s)
}

/// [`pipeline_with`] that also edits each engine stream configuration.
pub fn pipeline_full(
    site: &Site,
    sink: Arc<dyn Sink>,
    state: &Path,
    policy: WindowPolicy,
    edit: impl Fn(StreamDefinition) -> StreamDefinition,
    stream: impl Fn(StreamConfig) -> StreamConfig,
) -> Pipeline {
    let mut b = Pipeline::builder("e2e", sink)
        .checkpoints(Arc::new(FileCheckpointStore::open(state).unwrap()))
        .audit(Arc::new(JsonlAuditLog::new(state.join("audit.jsonl"))))
        .rejects(Arc::new(JsonlRejectStore::new(state.join("rejects.jsonl"))))
        .clock(site.clock.clone());
    for def in &site.streams {
        let def = edit(def.clone());
        let mapper = Arc::new(def.mapper().unwrap());
        b = b.stream(stream(
            StreamConfig::new(
                def.name.clone(),
                Arc::new(PeopleSoftSource::new(site.client.clone(), def).unwrap()),
                mapper,
                policy,
            )
            .batch_size(500),
        ));
    }
    b.build().unwrap()
}

fn text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Y/N flag keys are loaded as booleans (SQLite 1/0).
fn key_text(field: &str, v: String) -> String {
    match (field, v.as_str()) {
        ("OFF_CYCLE", "Y") => "1".into(),
        ("OFF_CYCLE", "N") => "0".into(),
        _ => v,
    }
}

/// Source truth of one table: key (joined) → field → text value.
pub fn truth(
    dataset: &SharedDataset,
    table: &str,
) -> BTreeMap<String, BTreeMap<String, Option<String>>> {
    let d = dataset.read();
    let t = d.table(table).unwrap();
    t.rows()
        .iter()
        .map(|r| {
            let fields = t
                .spec()
                .fields
                .iter()
                .map(|f| (f.name.clone(), r.get(&f.name).and_then(text)))
                .collect();
            let key: Vec<String> = t
                .spec()
                .key
                .iter()
                .zip(r.key())
                .map(|(f, v)| key_text(f, v))
                .collect();
            (key.join("|"), fields)
        })
        .collect()
}

/// Rows of a SQLite table: key (joined) → column → text (every column read as text).
pub fn sqlite_rows(
    db: &rusqlite::Connection,
    table: &str,
    keys: &[&str],
) -> BTreeMap<String, BTreeMap<String, Option<String>>> {
    let mut stmt = db.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
    let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
    let rows = stmt
        .query_map([], |r| {
            let mut m = BTreeMap::new();
            for (i, n) in names.iter().enumerate() {
                let v: rusqlite::types::Value = r.get(i)?;
                let t = match v {
                    rusqlite::types::Value::Null => None,
                    rusqlite::types::Value::Integer(i) => Some(i.to_string()),
                    rusqlite::types::Value::Real(f) => Some(f.to_string()),
                    rusqlite::types::Value::Text(s) => Some(s),
                    rusqlite::types::Value::Blob(_) => Some("<blob>".into()),
                };
                m.insert(n.clone(), t);
            }
            Ok(m)
        })
        .unwrap();
    let mut out = BTreeMap::new();
    for r in rows {
        let r = r.unwrap();
        let key: Vec<String> = keys
            .iter()
            .map(|k| r[&k.to_ascii_lowercase()].clone().unwrap_or_default())
            .collect();
        assert!(
            out.insert(key.join("|"), r).is_none(),
            "duplicate key in {table}"
        );
    }
    out
}

/// Asserts the SQLite table equals the source table: same keys, and the given text and money
/// fields exactly equal (money compared as exact decimals).
pub fn assert_table_matches(
    db: &rusqlite::Connection,
    dataset: &SharedDataset,
    ds_table: &str,
    sql_table: &str,
    text_fields: &[&str],
    money_fields: &[&str],
) {
    let spec_keys: Vec<String> = dataset.read().table(ds_table).unwrap().spec().key.clone();
    let keys: Vec<&str> = spec_keys.iter().map(String::as_str).collect();
    let want = truth(dataset, ds_table);
    let got = sqlite_rows(db, sql_table, &keys);
    let missing: Vec<_> = want
        .keys()
        .filter(|k| !got.contains_key(*k))
        .take(5)
        .collect();
    let extra: Vec<_> = got
        .keys()
        .filter(|k| !want.contains_key(*k))
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{sql_table}: missing {missing:?}, extra {extra:?}"
    );
    for (k, w) in &want {
        let g = &got[k];
        for f in text_fields {
            let col = f.to_ascii_lowercase();
            let want_v = w[*f].clone().filter(|s| !s.trim().is_empty());
            let got_v = g[&col].clone().filter(|s| !s.trim().is_empty());
            assert_eq!(got_v, want_v, "{sql_table} {k} {f}");
        }
        for f in money_fields {
            let col = f.to_ascii_lowercase();
            let want_v: Option<Decimal> = w[*f].as_deref().map(|s| s.trim().parse().unwrap());
            let got_v: Option<Decimal> = g[&col].as_deref().map(|s| s.parse().unwrap());
            assert_eq!(
                got_v.map(|d| d.normalize()),
                want_v.map(|d| d.normalize()),
                "{sql_table} {k} {f}"
            );
        }
    }
}

/// Every sample table checked against the source.
pub fn assert_all_match(db: &rusqlite::Connection, dataset: &SharedDataset) {
    assert_table_matches(
        db,
        dataset,
        "vendors",
        "ps_vendors",
        &["NAME1", "VENDOR_STATUS", "CITY"],
        &[],
    );
    assert_table_matches(
        db,
        dataset,
        "customers",
        "ps_customers",
        &["NAME1", "CUST_STATUS"],
        &["CREDIT_LIMIT"],
    );
    assert_table_matches(
        db,
        dataset,
        "po_lines",
        "ps_purchase_order_lines",
        &["PO_STATUS", "ITEM_DESCR", "VENDOR_ID"],
        &["MERCHANDISE_AMT", "PRICE_PO"],
    );
    assert_table_matches(
        db,
        dataset,
        "journal_lines",
        "ps_journal_lines",
        &["LINE_DESCR", "ACCOUNT"],
        &["MONETARY_AMOUNT", "FOREIGN_AMOUNT"],
    );
    assert_table_matches(
        db,
        dataset,
        "job",
        "ps_job",
        &["DEPTID", "EMPL_STATUS"],
        &["ANNUAL_RT"],
    );
    assert_table_matches(
        db,
        dataset,
        "paychecks",
        "ps_paychecks",
        &["EMPLID"],
        &["GROSS_PAY", "NET_PAY"],
    );
}

/// The `ml-connector` command with `--config cfg`, logging errors only and plain progress
/// lines; add arguments and environment, then run it.
pub fn sync_command(cfg: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_ml-connector"));
    c.arg("--config")
        .arg(cfg)
        .arg("--progress")
        .arg("plain")
        .env("RUST_LOG", "error");
    c
}

/// [`sync_command`] pointed at the Databricks stand-in: its host, service principal and
/// warehouse in the `DATABRICKS_*` variables (a token or profile of the developer's own
/// environment removed).
pub fn sync_command_for(cfg: &Path, standin: &DatabricksStandIn) -> std::process::Command {
    let mut c = sync_command(cfg);
    c.env("DATABRICKS_HOST", standin.uri())
        .env("DATABRICKS_CLIENT_ID", standin.client_id())
        .env("DATABRICKS_CLIENT_SECRET", standin.client_secret())
        .env("DATABRICKS_WAREHOUSE_ID", standin.warehouse_id())
        .env_remove("DATABRICKS_TOKEN")
        .env_remove("DATABRICKS_CONFIG_PROFILE");
    c
}

/// (EMPLID, EMPL_RCD): one employee record of JOB.
pub type Entity = (String, i64);

/// The (EFFDT, EFFSEQ) of each employee record's current JOB row in the source, as of `as_of`.
pub fn current_in_source(
    dataset: &SharedDataset,
    as_of: chrono::NaiveDate,
) -> BTreeMap<Entity, (String, i64)> {
    let d = dataset.read();
    let mut best: BTreeMap<Entity, (String, i64)> = BTreeMap::new();
    for r in d.table(TABLE_JOB).unwrap().rows() {
        let emplid = r.text("EMPLID").unwrap();
        let rcd = r.get("EMPL_RCD").and_then(|v| v.as_i64()).unwrap();
        let effdt = r.text("EFFDT").unwrap();
        let effseq = r.get("EFFSEQ").and_then(|v| v.as_i64()).unwrap();
        if effdt.parse::<chrono::NaiveDate>().unwrap() > as_of {
            continue;
        }
        let e = best.entry((emplid, rcd)).or_insert((effdt.clone(), effseq));
        if (effdt.as_str(), effseq) > (e.0.as_str(), e.1) {
            *e = (effdt, effseq);
        }
    }
    best
}

/// Today in the sample site's zone at `clock`'s time.
pub fn site_today(clock: &dyn Clock) -> chrono::NaiveDate {
    clock
        .now()
        .with_timezone(&ml_connector_testkit::sitetime::SITE_TIME_ZONE)
        .date_naive()
}

/// Adds a JOB row effective `effdt` (EFFSEQ 7, DEPTID `XFR-NEW`) for the first employee record
/// that has a current row, last updated at `at`; returns that record.
pub fn insert_newer_job_row(
    site: &Site,
    effdt: chrono::NaiveDate,
    at: chrono::DateTime<chrono::Utc>,
) -> Entity {
    let (emplid, rcd) = current_in_source(&site.dataset, effdt)
        .into_keys()
        .next()
        .unwrap();
    let mut d = site.dataset.write();
    let t = d.table_mut(TABLE_JOB).unwrap();
    let base = t
        .rows()
        .iter()
        .find(|r| r.text("EMPLID").as_deref() == Some(emplid.as_str()))
        .unwrap()
        .clone();
    let spec = t.spec_arc();
    let mut values = base.values().to_vec();
    let mut set = |f: &str, v: serde_json::Value| values[spec.field_index(f).unwrap()] = v;
    set(
        "EFFDT",
        serde_json::json!(effdt.format("%Y-%m-%d").to_string()),
    );
    set("EFFSEQ", serde_json::json!(7));
    set("DEPTID", serde_json::json!("XFR-NEW"));
    set("ACTION", serde_json::json!("XFR"));
    t.insert([ml_connector_testkit::dataset::Row::new(
        spec.clone(),
        values,
        at,
    )]);
    (emplid, rcd)
}

/// The earliest JOB effective date after `today` (the sample site enters raises in advance).
pub fn first_future_effdt(dataset: &SharedDataset, today: chrono::NaiveDate) -> chrono::NaiveDate {
    let d = dataset.read();
    d.table(TABLE_JOB)
        .unwrap()
        .rows()
        .iter()
        .filter_map(|r| r.text("EFFDT")?.parse::<chrono::NaiveDate>().ok())
        .filter(|d| *d > today)
        .min()
        .expect("the sample site has future-dated JOB rows")
}

/// A Databricks client for the stand-in (catalog `main`, schema `finance`), with test-sized
/// polling and retries.
pub fn databricks_client(standin: &DatabricksStandIn) -> DatabricksClient {
    let options = ClientOptions {
        http_timeout: Some(StdDuration::from_secs(6)),
        wait_timeout: StdDuration::from_secs(5),
        poll_initial: StdDuration::from_millis(10),
        poll_max: StdDuration::from_millis(50),
        retry: RetryPolicy {
            max_retries: 3,
            initial_backoff: StdDuration::from_millis(10),
            max_backoff: StdDuration::from_millis(100),
            total_budget: StdDuration::from_secs(30),
            jitter: false,
        },
        ..ClientOptions::default()
    };
    let config = Config::builder()
        .host(standin.uri())
        .client_credentials(
            standin.client_id(),
            SecretString::from(standin.client_secret().to_string()),
        )
        .warehouse_id(standin.warehouse_id())
        .catalog("main")
        .schema("finance")
        .allow_insecure_http(true)
        .options(options)
        .build()
        .unwrap();
    DatabricksClient::new(config).unwrap()
}

/// Every Databricks target table `main.finance.<table>` of `(dataset table, target table)` has
/// the source's row count and no duplicate keys.
pub fn assert_tables_equal_source(
    standin: &DatabricksStandIn,
    dataset: &SharedDataset,
    tables: &[(&str, &str)],
) {
    for (ds_table, table) in tables {
        let full = format!("main.finance.{table}");
        let rows = standin
            .rows(&full)
            .unwrap_or_else(|| panic!("no table {full}: {:?}", standin.tables()));
        let keys: Vec<String> = dataset
            .read()
            .table(ds_table)
            .unwrap()
            .spec()
            .key
            .iter()
            .map(|k| k.to_ascii_lowercase())
            .collect();
        let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        assert_eq!(
            standin.duplicate_keys(&full, &key_refs).unwrap(),
            Vec::<Vec<StandInValue>>::new(),
            "{table}: duplicate keys"
        );
        assert_eq!(
            rows.len(),
            truth(dataset, ds_table).len(),
            "{table}: row count"
        );
    }
}
