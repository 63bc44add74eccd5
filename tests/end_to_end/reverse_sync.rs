//! Reverse sync end to end, with no network: the PeopleSoft QAS stand-in → forward pipeline
//! (`PeopleSoftSource` → engine → `BaselineSeedingSink(DatabricksSink)`) → the Databricks
//! stand-in; a data steward edits the governed table with MERGE statements; a PeopleSoft user
//! edits one of the same vendors online; then the reverse pipeline (`DatabricksSource` →
//! engine → `PeopleSoftSink`) writes back through the CIRT stand-in, which shares its dataset
//! with the QAS stand-in so the next forward cycle sees what was written.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use databricks_client::{
    sql, ClientOptions, Config, DatabricksClient, DatabricksSink, DatabricksSource, Statement,
    TableName,
};
use ml_connector_testkit::cirt::{CirtConfig, CirtStandIn, CIRT_OPRID, CIRT_PASSWORD, VENDOR_CI};
use ml_connector_testkit::databricks::{DatabricksStandIn, StandInValue};
use ml_connector_testkit::dataset::{Dataset, SharedDataset, TABLE_VENDORS};
use ml_connector_testkit::peoplesoft::{PeopleSoftServer, DEFAULT_OPRID, DEFAULT_PASSWORD};
use ml_connector_testkit::sample::sample_streams;
use peoplesoft_client::writeback::{
    BaselineSeedingSink, CiTarget, ConflictPolicy, MemoryBaselineStore, PeopleSoftSink,
    RecordAction, WriteReport,
};
use peoplesoft_client::{
    Connection, Credentials, LoadProtection, PeopleSoftClient, PeopleSoftSource, Scheme,
};
use secrecy::SecretString;
use sync_core::audit::{MemoryAuditLog, MemoryRejectStore};
use sync_core::engine::{Pipeline, StreamConfig, WindowPolicy};
use sync_core::http::RetryPolicy;
use sync_core::mapping::{ColumnMapping, Mapping, Transform};
use sync_core::state::MemoryCheckpointStore;
use sync_core::{Clock, ColumnDef, ColumnType, ManualClock, TableSchema, Value};

const STEWARD: &str = "dana.steward@northwind.example";
const WRITEBACK_STREAM: &str = "vendor_master";
const CATALOG: &str = "main";
const SCHEMA: &str = "erp";
const TABLE: &str = "ps_vendors";

/// Columns of the governed table the write-back reads (the forward table has more).
const GOVERNED: [(&str, &str); 4] = [
    ("name1", "NAME1"),
    ("vendor_status", "VENDOR_STATUS"),
    ("vendor_class", "VENDOR_CLASS"),
    ("city", "CITY"),
];

struct World {
    dataset: SharedDataset,
    _qas: PeopleSoftServer,
    cirt: CirtStandIn,
    dbx: DatabricksStandIn,
    dbx_client: DatabricksClient,
    ps_client: PeopleSoftClient,
    writer: PeopleSoftClient,
    clock: Arc<ManualClock>,
    baselines: MemoryBaselineStore,
    reports: Arc<Mutex<Vec<WriteReport>>>,
    forward: OnceLock<Pipeline>,
}

impl World {
    fn forward(&self) -> &Pipeline {
        self.forward.get_or_init(|| forward_pipeline(self))
    }
}

fn protection() -> LoadProtection {
    LoadProtection {
        min_gap: StdDuration::ZERO,
        retry: RetryPolicy {
            max_retries: 1,
            initial_backoff: StdDuration::from_millis(10),
            max_backoff: StdDuration::from_millis(50),
            total_budget: StdDuration::from_secs(10),
            jitter: false,
        },
        ..LoadProtection::default()
    }
}

fn ps_client(host: String, port: u16, node: &str, user: &str, password: &str) -> PeopleSoftClient {
    let conn = Connection::builder(host, u32::from(port), node)
        .scheme(Scheme::Http)
        .allow_http(true)
        .request_timeout(StdDuration::from_secs(5))
        .build()
        .unwrap();
    PeopleSoftClient::builder(
        conn,
        Credentials::basic(user, SecretString::from(password.to_string())),
    )
    .protection(protection())
    .build()
    .unwrap()
}

fn dbx_client(dbx: &DatabricksStandIn) -> DatabricksClient {
    let options = ClientOptions {
        poll_initial: StdDuration::from_millis(10),
        poll_max: StdDuration::from_millis(50),
        ..ClientOptions::default()
    };
    let config = Config::builder()
        .host(dbx.uri())
        .client_credentials(
            dbx.client_id(),
            SecretString::from(dbx.client_secret().to_string()),
        )
        .warehouse_id(dbx.warehouse_id())
        .catalog(CATALOG)
        .schema(SCHEMA)
        .allow_insecure_http(true)
        .options(options)
        .build()
        .unwrap();
    DatabricksClient::new(config).unwrap()
}

/// The vendor write-back target: CI `VNDR_ID`, echo identity `MLC_SYNC` in `modified_by`.
fn target(policy: ConflictPolicy) -> CiTarget {
    GOVERNED
        .iter()
        .fold(
            CiTarget::cirt(
                VENDOR_CI,
                1,
                &[("setid", "SETID"), ("vendor_id", "VENDOR_ID")],
            ),
            |t, (col, field)| t.field(*col, *field),
        )
        .echo_oprid("modified_by", CIRT_OPRID)
        .conflict_policy(policy)
        .time_zone("America/Chicago")
}

fn writeback_sink(w: &World, dry_run: bool) -> PeopleSoftSink {
    let reports = w.reports.clone();
    PeopleSoftSink::builder(w.writer.clone())
        .target(WRITEBACK_STREAM, target(ConflictPolicy::PeopleSoftWins))
        .baselines(Arc::new(w.baselines.clone()))
        .dry_run(dry_run)
        .retry_delay(StdDuration::from_millis(10))
        .on_report(move |r| reports.lock().unwrap().push(r.clone()))
        .build()
        .unwrap()
}

/// The sample vendors stream plus two columns for the reverse direction: who changed the
/// row last (`MLC_SYNC` for every row the forward sync loads) and when (PeopleSoft's
/// LASTUPDDTTM; a steward's edit bumps it).
fn forward_mapping_columns() -> Vec<ColumnMapping> {
    vec![
        ColumnMapping {
            column: "modified_by".into(),
            source: "MLC_MODIFIED_BY".into(),
            column_type: ColumnType::String,
            nullable: true,
            transforms: vec![Transform::Default(CIRT_OPRID.into())],
        },
        ColumnMapping {
            column: "modified_at".into(),
            source: "LASTUPDDTTM".into(),
            column_type: ColumnType::Timestamp,
            nullable: true,
            transforms: Vec::new(),
        },
    ]
}

async fn world(scale: f64) -> World {
    let dataset = SharedDataset::new(Dataset::manufacturer(11, scale));
    let clock = Arc::new(ManualClock::new(
        Dataset::history_end() + Duration::hours(1),
    ));
    let qas = PeopleSoftServer::start(dataset.clone());
    let cirt = CirtStandIn::start_with(
        dataset.clone(),
        CirtConfig {
            clock: clock.clone(),
            ..CirtConfig::default()
        },
    )
    .await;
    let dbx = DatabricksStandIn::start().await;
    let dbx_client = dbx_client(&dbx);
    let ps = ps_client(
        qas.host(),
        qas.port(),
        qas.node(),
        DEFAULT_OPRID,
        DEFAULT_PASSWORD,
    );
    let writer = ps_client(
        cirt.host(),
        cirt.port(),
        cirt.node(),
        CIRT_OPRID,
        CIRT_PASSWORD,
    );
    World {
        dataset,
        _qas: qas,
        cirt,
        dbx,
        dbx_client,
        ps_client: ps,
        writer,
        clock,
        baselines: MemoryBaselineStore::new(),
        reports: Arc::new(Mutex::new(Vec::new())),
        forward: OnceLock::new(),
    }
}

fn forward_pipeline(w: &World) -> Pipeline {
    let mut def = sample_streams(&w.dataset.read())
        .into_iter()
        .find(|d| d.name == "vendors")
        .unwrap();
    def.mapping.columns.extend(forward_mapping_columns());
    let mapper = Arc::new(def.mapper().unwrap());
    let source = Arc::new(PeopleSoftSource::new(w.ps_client.clone(), def).unwrap());
    let databricks = DatabricksSink::new(w.dbx_client.clone(), CATALOG, SCHEMA).unwrap();
    let sink = BaselineSeedingSink::new(
        Arc::new(databricks),
        writeback_sink(w, false),
        "vendors",
        WRITEBACK_STREAM,
    );
    let policy =
        WindowPolicy::starting_at(Dataset::history_start()).max_window(Duration::days(400));
    Pipeline::builder("forward", Arc::new(sink))
        .stream(StreamConfig::new("vendors", source, mapper, policy))
        .checkpoints(Arc::new(MemoryCheckpointStore::new()))
        .audit(Arc::new(MemoryAuditLog::new()))
        .rejects(Arc::new(MemoryRejectStore::new()))
        .clock(w.clock.clone())
        .build()
        .unwrap()
}

/// The governed table as the reverse direction reads it.
fn reverse_schema() -> TableSchema {
    let mut columns = vec![
        ColumnDef::new("setid", ColumnType::String).not_null(),
        ColumnDef::new("vendor_id", ColumnType::String).not_null(),
    ];
    columns.extend(
        GOVERNED
            .iter()
            .map(|(c, _)| ColumnDef::new(*c, ColumnType::String)),
    );
    columns.push(ColumnDef::new("modified_by", ColumnType::String));
    columns.push(ColumnDef::new("modified_at", ColumnType::Timestamp));
    TableSchema {
        name: WRITEBACK_STREAM.into(),
        columns,
        primary_key: vec!["setid".into(), "vendor_id".into()],
        cursor_column: Some("modified_at".into()),
        write_mode: Default::default(),
        effective_dating: None,
    }
}

/// A reverse pipeline with its own (fresh) checkpoints.
fn reverse_pipeline(w: &World, sink: PeopleSoftSink) -> Pipeline {
    let schema = reverse_schema();
    let mapping = Mapping::identity(&schema);
    let table = TableName::new(CATALOG, SCHEMA, TABLE).unwrap();
    let source = DatabricksSource::new(w.dbx_client.clone(), table, &schema).unwrap();
    let policy =
        WindowPolicy::starting_at(Dataset::history_start()).max_window(Duration::days(400));
    Pipeline::builder("reverse", Arc::new(sink))
        .stream(StreamConfig::new(
            WRITEBACK_STREAM,
            Arc::new(source),
            Arc::new(mapping.compile().unwrap()),
            policy,
        ))
        .checkpoints(Arc::new(MemoryCheckpointStore::new()))
        .audit(Arc::new(MemoryAuditLog::new()))
        .rejects(Arc::new(MemoryRejectStore::new()))
        .clock(w.clock.clone())
        .build()
        .unwrap()
}

/// A steward's change in the governed table: one MERGE setting `values` (and who/when) on
/// the vendor's row, inserting the row when it does not exist.
async fn steward_merge(w: &World, vendor_id: &str, values: &[(&str, &str)], at: DateTime<Utc>) {
    let table = TableName::new(CATALOG, SCHEMA, TABLE).unwrap();
    let mut cols: Vec<(String, Value, ColumnType)> = vec![
        (
            "setid".into(),
            Value::String("SHARE".into()),
            ColumnType::String,
        ),
        (
            "vendor_id".into(),
            Value::String(vendor_id.into()),
            ColumnType::String,
        ),
    ];
    for (c, v) in values {
        cols.push((
            c.to_string(),
            Value::String(v.to_string()),
            ColumnType::String,
        ));
    }
    cols.push((
        "modified_by".into(),
        Value::String(STEWARD.into()),
        ColumnType::String,
    ));
    cols.push((
        "modified_at".into(),
        Value::Timestamp(at),
        ColumnType::Timestamp,
    ));
    let updates: Vec<String> = cols[2..]
        .iter()
        .map(|(c, _, _)| format!("tgt.{0} = src.{0}", sql::quote_ident(c)))
        .collect();
    let mut insert = cols.clone();
    insert.push((
        "_ml_run_id".into(),
        Value::String("steward".into()),
        ColumnType::String,
    ));
    insert.push((
        "_ml_loaded_at".into(),
        Value::Timestamp(at),
        ColumnType::Timestamp,
    ));
    insert.push((
        "_ml_source".into(),
        Value::String("steward-ui".into()),
        ColumnType::String,
    ));
    let names = |c: &[(String, Value, ColumnType)]| {
        c.iter()
            .map(|(n, _, _)| sql::quote_ident(n))
            .collect::<Vec<_>>()
    };
    let text = format!(
        "MERGE INTO {table} AS tgt USING (SELECT * FROM VALUES ({values}) AS v({cols})) AS src \
         ON tgt.`setid` <=> src.`setid` AND tgt.`vendor_id` <=> src.`vendor_id` \
         WHEN MATCHED THEN UPDATE SET {updates} \
         WHEN NOT MATCHED THEN INSERT ({ins_cols}) VALUES ({ins_vals})",
        values = insert
            .iter()
            .map(|(_, v, t)| sql::literal(v, Some(*t)))
            .collect::<Vec<_>>()
            .join(", "),
        cols = names(&insert).join(", "),
        updates = updates.join(", "),
        ins_cols = names(&insert).join(", "),
        ins_vals = names(&insert)
            .iter()
            .map(|n| format!("src.{n}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    w.dbx_client
        .execute(&Statement::new(text))
        .await
        .expect("steward MERGE");
}

fn governed_row(w: &World, vendor_id: &str) -> std::collections::BTreeMap<String, StandInValue> {
    w.dbx
        .rows(&format!("{CATALOG}.{SCHEMA}.{TABLE}"))
        .unwrap()
        .into_iter()
        .find(|r| r["vendor_id"] == StandInValue::String(vendor_id.into()))
        .unwrap_or_else(|| panic!("no governed row for {vendor_id}"))
}

/// Four ordinary vendors (plain ASCII names, valid status) for the scenario.
fn pick_vendors(w: &World) -> Vec<String> {
    let d = w.dataset.read();
    let t = d.table(TABLE_VENDORS).unwrap();
    let mut ids: Vec<String> = t
        .rows()
        .iter()
        .filter(|r| {
            let name = r.text("NAME1").unwrap_or_default();
            name.is_ascii() && name.trim().len() > 3 && !name.contains(['\'', '"', '\\', '\t'])
        })
        .map(|r| r.text("VENDOR_ID").unwrap())
        .collect();
    ids.sort();
    ids.truncate(4);
    assert_eq!(ids.len(), 4);
    ids
}

fn all_records(w: &World) -> Vec<peoplesoft_client::writeback::RecordOutcome> {
    w.reports
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| r.records.clone())
        .collect()
}

fn outcome<'a>(
    records: &'a [peoplesoft_client::writeback::RecordOutcome],
    vendor: &str,
) -> &'a peoplesoft_client::writeback::RecordOutcome {
    records
        .iter()
        .find(|r| r.key["VENDOR_ID"] == vendor)
        .unwrap_or_else(|| panic!("no outcome for {vendor}: {records:#?}"))
}

const NEW_VENDOR: &str = "9000000001";
const LONG_NAME: &str = "Northwind Forge Preferred Industrial Supply Co.";

/// Forward cycle, steward edits (A renamed, B moved city, C name too long, D only touched,
/// a new vendor), a PeopleSoft user edits B online; the clock moves past the settle lag.
async fn scenario(w: &World) -> Vec<String> {
    let r = w.forward().run_cycle().await.unwrap();
    assert!(r.is_clean(), "{r:#?}");
    let vendors = w.dataset.read().table(TABLE_VENDORS).unwrap().len();
    assert_eq!(
        w.dbx.row_count(&format!("{CATALOG}.{SCHEMA}.{TABLE}")),
        Some(vendors)
    );
    assert_eq!(w.baselines.len(WRITEBACK_STREAM), vendors);
    let ids = pick_vendors(w);
    let at = w.clock.now();
    steward_merge(w, &ids[0], &[("name1", "Steward Verified Supply Co.")], at).await;
    steward_merge(w, &ids[1], &[("city", "Toledo")], at).await;
    steward_merge(w, &ids[2], &[("name1", LONG_NAME)], at).await;
    steward_merge(w, &ids[3], &[], at).await;
    steward_merge(
        w,
        NEW_VENDOR,
        &[
            ("name1", "Lakeside Robotics LLC"),
            ("vendor_status", "A"),
            ("vendor_class", "R"),
            ("city", "Toledo"),
        ],
        at,
    )
    .await;
    w.cirt
        .edit_vendor(
            &ids[1],
            &[("NAME1", "Renamed Online by AP".into())],
            "JSMITH",
        )
        .unwrap();
    w.clock.advance(Duration::minutes(10));
    w.cirt.clear_requests();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_and_reverse_cycles_write_back_only_steward_changes() {
    let w = world(0.25).await;
    let ids = scenario(&w).await;
    let (a, b, c, d) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    let b_before = w.cirt.vendor(b).unwrap();
    let d_before = w.cirt.vendor(d).unwrap();

    // PeopleSoft's vendors before the write-back (the steward's new vendor is not one yet).
    let vendors = w.dataset.read().table(TABLE_VENDORS).unwrap().len();

    let reverse = reverse_pipeline(&w, writeback_sink(&w, false));
    let r = reverse.run_cycle().await.unwrap();
    assert!(r.is_clean(), "{r:#?}");
    let records = all_records(&w);
    assert_eq!(
        records.len(),
        vendors + 1,
        "every governed row was considered"
    );

    // A: steward change applied through Update.
    let ra = outcome(&records, a);
    assert_eq!(ra.action, RecordAction::Updated, "{ra:#?}");
    let va = w.cirt.vendor(a).unwrap();
    assert_eq!(va["NAME1"], "Steward Verified Supply Co.");
    assert_eq!(va["LASTUPDOPRID"], CIRT_OPRID);
    // B: PeopleSoft changed it since the forward sync: PeopleSoftWins keeps it.
    let rb = outcome(&records, b);
    assert_eq!(rb.action, RecordAction::Conflict, "{rb:#?}");
    assert_eq!(w.cirt.vendor(b).unwrap(), b_before);
    assert_eq!(b_before["NAME1"], "Renamed Online by AP");
    // C: PeopleSoft's validation error (IBResponse over HTTP 200) → rejected with its message.
    let rc = outcome(&records, c);
    assert_eq!(rc.action, RecordAction::Rejected, "{rc:#?}");
    let msg = rc.peoplesoft_message.as_deref().unwrap();
    assert!(msg.contains("NAME1") && msg.contains("allows 40"), "{msg}");
    assert_ne!(w.cirt.vendor(c).unwrap()["NAME1"], LONG_NAME);
    // D: touched by the steward but equal to the baseline: no request at all.
    let rd = outcome(&records, d);
    assert_eq!(rd.action, RecordAction::Unchanged, "{rd:#?}");
    assert!(rd.reason.contains("baseline"), "{}", rd.reason);
    assert_eq!(w.cirt.vendor(d).unwrap(), d_before);
    // The new vendor is created.
    assert_eq!(outcome(&records, NEW_VENDOR).action, RecordAction::Created);
    assert_eq!(w.cirt.vendor(NEW_VENDOR).unwrap()["CITY"], "Toledo");
    // Echo suppression: every other row came from the forward sync and cost nothing.
    let echoes = records
        .iter()
        .filter(|r| r.action == RecordAction::Unchanged && r.reason.starts_with("echo"))
        .count();
    assert_eq!(echoes, vendors - 4);
    let requests = w.cirt.requests();
    let touched: BTreeSet<String> = requests
        .iter()
        .filter_map(|r| {
            r.body
                .as_ref()
                .and_then(|b| b["VENDOR_ID"].as_str().map(str::to_string))
                .or_else(|| r.path.rsplit('/').next().map(str::to_string))
        })
        .collect();
    let expected: BTreeSet<String> = [a, b, c, &NEW_VENDOR.to_string()]
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(touched, expected, "{requests:#?}");
    let puts: BTreeSet<String> = requests
        .iter()
        .filter(|r| r.method == "PUT")
        .map(|r| {
            r.body.as_ref().unwrap()["VENDOR_ID"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        puts,
        [a.clone(), c.clone()].into(),
        "no PUT for unchanged rows"
    );
    assert_eq!(w.cirt.count("POST"), 1);

    // Forward cycle 2 brings PeopleSoft's state (the write-back, the online edit) back.
    w.clock.advance(Duration::minutes(20));
    let r = w.forward().run_cycle().await.unwrap();
    assert!(r.is_clean(), "{r:#?}");
    let ga = governed_row(&w, a);
    assert_eq!(
        ga["name1"],
        StandInValue::String("Steward Verified Supply Co.".into())
    );
    assert_eq!(ga["modified_by"], StandInValue::String(CIRT_OPRID.into()));
    assert_eq!(
        governed_row(&w, b)["name1"],
        StandInValue::String("Renamed Online by AP".into())
    );
    // The steward fixes C; the reverse cycle 2 writes only that: everything else is an echo
    // or equals its baseline.
    steward_merge(
        &w,
        c,
        &[("name1", "Preferred Industrial Supply")],
        w.clock.now(),
    )
    .await;
    w.clock.advance(Duration::minutes(10));
    w.cirt.clear_requests();
    w.reports.lock().unwrap().clear();
    let r = reverse.run_cycle().await.unwrap();
    assert!(r.is_clean(), "{r:#?}");
    let records = all_records(&w);
    assert_eq!(outcome(&records, c).action, RecordAction::Updated);
    let writes: Vec<_> = w
        .cirt
        .requests()
        .into_iter()
        .filter(|r| r.is_write())
        .collect();
    assert_eq!(writes.len(), 1, "{writes:#?}");
    assert_eq!(writes[0].body.as_ref().unwrap()["VENDOR_ID"], c.as_str());
    assert!(records
        .iter()
        .filter(|r| r.key["VENDOR_ID"] != *c)
        .all(|r| r.action == RecordAction::Unchanged));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_reports_what_would_change_and_sends_no_post_or_put() {
    let w = world(0.2).await;
    let ids = scenario(&w).await;
    let before: Vec<_> = ids.iter().map(|v| w.cirt.vendor(v).unwrap()).collect();
    let baselines_before = w.baselines.len(WRITEBACK_STREAM);

    let dry = reverse_pipeline(&w, writeback_sink(&w, true));
    let r = dry.run_cycle().await.unwrap();
    assert!(r.is_clean(), "{r:#?}");
    assert_eq!(w.cirt.count("POST"), 0);
    assert_eq!(w.cirt.count("PUT"), 0);
    assert_eq!(w.cirt.write_count(), 0);
    assert!(w.cirt.count("GET") >= 3, "the dry run still reads");
    let records = all_records(&w);
    assert!(w.reports.lock().unwrap().iter().all(|r| r.dry_run));
    let ra = outcome(&records, &ids[0]);
    assert_eq!(ra.action, RecordAction::Updated);
    assert!(ra.reason.starts_with("dry run"), "{}", ra.reason);
    assert_eq!(
        ra.changes[0].to.as_deref(),
        Some("Steward Verified Supply Co.")
    );
    assert_eq!(outcome(&records, &ids[1]).action, RecordAction::Conflict);
    assert_eq!(outcome(&records, NEW_VENDOR).action, RecordAction::Created);
    // Nothing changed in PeopleSoft, no baseline was stored.
    let after: Vec<_> = ids.iter().map(|v| w.cirt.vendor(v).unwrap()).collect();
    assert_eq!(before, after);
    assert!(w.cirt.vendor(NEW_VENDOR).is_none());
    assert_eq!(w.baselines.len(WRITEBACK_STREAM), baselines_before);
    assert_eq!(r.streams[0].rows_written, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_stops_the_reverse_stream_after_one_request() {
    let mut w = world(0.2).await;
    scenario(&w).await;
    w.writer = ps_client(
        w.cirt.host(),
        w.cirt.port(),
        w.cirt.node(),
        CIRT_OPRID,
        "not-the-password",
    );
    let reverse = reverse_pipeline(&w, writeback_sink(&w, false));
    let r = reverse.run_cycle().await.unwrap();
    assert!(!r.is_clean(), "{r:#?}");
    let err = r.streams[0].error.clone().unwrap_or_default();
    assert!(err.contains("401"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");
    // Exactly one request: repeated failed logins could lock the OPRID.
    let requests = w.cirt.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(requests[0].status, 401);
    assert_eq!(w.cirt.write_count(), 0);
}
