//! `cargo run --example reverse_sync`
//!
//! Vendor master data flowing **back** from Databricks into PeopleSoft, on one machine, with
//! no credentials and no network. Three in-process stand-ins play the remote systems:
//!
//! - the PeopleSoft **Query Access Services** stand-in (`PeopleSoftServer`) serves the sample
//!   manufacturer's vendors to the forward sync;
//! - the PeopleSoft **Component Interface REST** stand-in (`CirtStandIn`, CI `VNDR_ID`)
//!   answers the write-back's Get / Create / Update; it shares its records with the QAS
//!   stand-in, so what is written back shows up in the next forward sync;
//! - the **Databricks** stand-in (`DatabricksStandIn`) runs the SQL statements of the real
//!   `DatabricksClient` (OAuth M2M, Statement Execution API) against an in-memory catalog.
//!
//! The story:
//!
//! 1. **Forward sync.** The real engine loads the vendors from PeopleSoft into the governed
//!    Delta table `main.erp.ps_vendors` through the real `DatabricksSink`, wrapped in a
//!    `BaselineSeedingSink` that records what PeopleSoft looked like (the write-back
//!    baselines). Every forward row carries `modified_by = MLC_SYNC` (the integration's
//!    identity) and `modified_at` = PeopleSoft's LASTUPDDTTM.
//! 2. **A data steward** changes vendors in the governed table with MERGE statements
//!    through `DatabricksClient` (setting `modified_by` to the steward and bumping the
//!    `modified_at` cursor): a rename, a new city, a name too long for PeopleSoft, a row
//!    touched without a real change, and a new vendor.
//! 3. **Meanwhile a PeopleSoft user** renames one of the same vendors online.
//! 4. **Reverse sync, dry run.** `DatabricksSource` (windowed on `modified_at`) → engine →
//!    `PeopleSoftSink` in dry-run mode: it reads PeopleSoft and prints what would change;
//!    the CIRT stand-in proves no POST or PUT was sent.
//! 5. **Reverse sync for real**, conflict policy `PeopleSoftWins`: per-record outcomes
//!    (created / updated / unchanged / conflict / rejected, with PeopleSoft's message), the
//!    echo suppression (rows that came from the forward sync are not written back and cost
//!    no request), and what PeopleSoft holds now.
//! 6. **The loop closes.** The next forward sync brings PeopleSoft's state (the write-back
//!    and the online edit) into Databricks, marked `MLC_SYNC`; the next reverse cycle
//!    writes nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
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
use ml_connector_testkit::site::StandInClient;
use peoplesoft_client::writeback::{
    BaselineSeedingSink, CiTarget, ConflictPolicy, MemoryBaselineStore, PeopleSoftSink,
    RecordAction, RecordOutcome, WriteReport,
};
use peoplesoft_client::{PeopleSoftClient, PeopleSoftSource};
use secrecy::SecretString;
use serde_json::Value as Json;
use sync_core::audit::{MemoryAuditLog, MemoryRejectStore};
use sync_core::engine::{Pipeline, StreamConfig, WindowPolicy};
use sync_core::mapping::{ColumnMapping, Mapping, Transform};
use sync_core::state::MemoryCheckpointStore;
use sync_core::{Clock, ColumnDef, ColumnType, ManualClock, TableSchema, Value};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const STEWARD: &str = "dana.steward@northwind.example";
const PS_USER: &str = "JSMITH";
const WRITEBACK_STREAM: &str = "vendor_master";
const CATALOG: &str = "main";
const SCHEMA: &str = "erp";
const TABLE: &str = "ps_vendors";
const NEW_VENDOR: &str = "9000000001";

/// Governed columns of the table → fields of the vendor CI.
const GOVERNED: [(&str, &str); 4] = [
    ("name1", "NAME1"),
    ("vendor_status", "VENDOR_STATUS"),
    ("vendor_class", "VENDOR_CLASS"),
    ("city", "CITY"),
];

/// A steward's edit: vendor, column values, what it means in words.
type StewardEdit = (String, Vec<(&'static str, &'static str)>, String);

/// Everything the example runs against.
struct Site {
    dataset: SharedDataset,
    qas: PeopleSoftServer,
    cirt: CirtStandIn,
    dbx: DatabricksStandIn,
    dbx_client: DatabricksClient,
    writer: PeopleSoftClient,
    clock: Arc<ManualClock>,
    baselines: MemoryBaselineStore,
    reports: Arc<Mutex<Vec<WriteReport>>>,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    println!("ml-connector reverse sync: vendor master from Databricks back into PeopleSoft");
    println!("============================================================================\n");

    let dataset = SharedDataset::new(Dataset::manufacturer(42, 0.25));
    // One clock for the engine and PeopleSoft's LASTUPDDTTM stamps.
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
    let writer = ps_client(
        cirt.host(),
        cirt.port(),
        cirt.node(),
        CIRT_OPRID,
        CIRT_PASSWORD,
        clock.clone(),
    )?;
    let site = Site {
        dbx_client: dbx_client(&dbx)?,
        dataset,
        qas,
        cirt,
        dbx,
        writer,
        clock,
        baselines: MemoryBaselineStore::new(),
        reports: Arc::new(Mutex::new(Vec::new())),
    };
    println!("PeopleSoft QAS stand-in:   {}", site.qas.base_url());
    println!(
        "PeopleSoft CIRT stand-in:  {} (CI {VENDOR_CI}, writer OPRID {CIRT_OPRID})",
        site.cirt.base_url()
    );
    println!(
        "Databricks stand-in:       {} (warehouse {})\n",
        site.dbx.uri(),
        site.dbx.warehouse_id()
    );

    // --- 1. Forward sync ---------------------------------------------------------------------
    let forward = forward_pipeline(&site)?;
    let r = forward.run_cycle().await?;
    if !r.is_clean() {
        return Err(format!("forward sync failed: {r:?}").into());
    }
    println!("1. Forward sync: PeopleSoft vendors → Databricks {CATALOG}.{SCHEMA}.{TABLE}");
    println!(
        "   {} rows loaded through DatabricksSink (MERGE), {} write-back baselines seeded\n",
        site.dbx.row_count(&governed_table()).unwrap_or(0),
        site.baselines.len(WRITEBACK_STREAM)
    );

    // --- 2. The data steward ---------------------------------------------------------------
    let ids = pick_vendors(&site);
    let name_of = |id: &str| {
        site.cirt
            .vendor(id)
            .and_then(|v| v.get("NAME1").and_then(Json::as_str).map(str::to_string))
            .unwrap_or_default()
    };
    let long_name = "Northwind Forge Preferred Industrial Supply Co.";
    let at = site.clock.now();
    println!("2. A data steward ({STEWARD}) edits the governed table (MERGE statements):");
    let edits: Vec<StewardEdit> = vec![
        (
            ids[0].clone(),
            vec![("name1", "Steward Verified Supply Co.")],
            format!("renames {:?}", name_of(&ids[0])),
        ),
        (
            ids[1].clone(),
            vec![("city", "Toledo")],
            "moves it to Toledo".into(),
        ),
        (
            ids[2].clone(),
            vec![("name1", long_name)],
            format!("sets a {}-character name", long_name.chars().count()),
        ),
        (
            ids[3].clone(),
            vec![],
            "opens and saves it without a change".into(),
        ),
        (
            NEW_VENDOR.into(),
            vec![
                ("name1", "Lakeside Robotics LLC"),
                ("vendor_status", "A"),
                ("vendor_class", "R"),
                ("city", "Toledo"),
            ],
            "adds a new vendor, Lakeside Robotics LLC".into(),
        ),
    ];
    for (id, values, what) in &edits {
        steward_merge(&site, id, values, at).await?;
        println!("   vendor {id}: {what}");
    }

    // --- 3. Meanwhile in PeopleSoft -------------------------------------------------------
    let online_name = "Renamed Online by AP";
    site.cirt
        .edit_vendor(&ids[1], &[("NAME1", online_name.into())], PS_USER)
        .map_err(|e| format!("online edit: {e}"))?;
    println!(
        "\n3. Meanwhile in PeopleSoft, {PS_USER} renames vendor {} online to {online_name:?}\n",
        ids[1]
    );
    site.clock.advance(Duration::minutes(10));

    // --- 4. Dry run ---------------------------------------------------------------------------
    site.cirt.clear_requests();
    let dry = reverse_pipeline(&site, writeback_sink(&site, true)?)?;
    let r = dry.run_cycle().await?;
    println!(
        "4. Reverse sync, DRY RUN (DatabricksSource → engine → PeopleSoftSink, dry_run = true)"
    );
    print_outcomes(&take_reports(&site), true);
    println!(
        "   CIRT requests: {} GET, {} POST, {} PUT → nothing was written (rows written: {})\n",
        site.cirt.count("GET"),
        site.cirt.count("POST"),
        site.cirt.count("PUT"),
        r.streams.first().map_or(0, |s| s.rows_written)
    );
    assert_eq!(site.cirt.write_count(), 0, "a dry run must not write");

    // --- 5. For real ----------------------------------------------------------------------
    site.cirt.clear_requests();
    let reverse = reverse_pipeline(&site, writeback_sink(&site, false)?)?;
    let r = reverse.run_cycle().await?;
    println!("5. Reverse sync for real (conflict policy PeopleSoftWins)");
    let records = take_reports(&site);
    print_outcomes(&records, false);
    let echoes = records
        .iter()
        .filter(|r| r.action == RecordAction::Unchanged && r.reason.starts_with("echo"))
        .count();
    println!(
        "\n   Echo suppression: {echoes} of {} rows came from the forward sync (modified_by = {CIRT_OPRID}) and were not written back, without a single request.",
        records.len()
    );
    println!(
        "   CIRT requests: {} GET, {} POST, {} PUT (the PUTs: {})",
        site.cirt.count("GET"),
        site.cirt.count("POST"),
        site.cirt.count("PUT"),
        site.cirt
            .requests()
            .iter()
            .filter(|r| r.method == "PUT")
            .map(|r| format!(
                "{} → {}",
                r.body
                    .as_ref()
                    .and_then(|b| b["VENDOR_ID"].as_str())
                    .unwrap_or("?"),
                if r.error.is_some() {
                    "refused"
                } else {
                    "saved"
                }
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("   PeopleSoft now:");
    for id in [&ids[0], &ids[1], &ids[2], &NEW_VENDOR.to_string()] {
        if let Some(v) = site.cirt.vendor(id) {
            println!(
                "     {id}  NAME1 {:<36} CITY {:<12} LASTUPDOPRID {:<8} LASTUPDDTTM {}",
                format!("{:?}", v["NAME1"].as_str().unwrap_or_default()),
                v["CITY"].as_str().unwrap_or_default(),
                v["LASTUPDOPRID"].as_str().unwrap_or_default(),
                v["LASTUPDDTTM"].as_str().unwrap_or_default()
            );
        }
    }
    let summary = r.streams.first();
    println!(
        "   Engine: {} rows read, {} accepted by PeopleSoft (created + updated + unchanged)\n",
        summary.map_or(0, |s| s.rows_read),
        summary.map_or(0, |s| s.rows_written)
    );

    // --- 6. The loop closes ---------------------------------------------------------------
    site.clock.advance(Duration::minutes(20));
    let r = forward.run_cycle().await?;
    let ga = governed_row(&site, &ids[0]);
    let gb = governed_row(&site, &ids[1]);
    println!(
        "6. Forward sync again: {} changed vendors come back from PeopleSoft",
        r.streams.first().map_or(0, |s| s.rows_read)
    );
    println!(
        "   {}: name1 {} modified_by {}   (the write-back, now PeopleSoft's own content)",
        ids[0],
        cell(&ga, "name1"),
        cell(&ga, "modified_by")
    );
    println!(
        "   {}: name1 {} modified_by {}   (PeopleSoft won the conflict)",
        ids[1],
        cell(&gb, "name1"),
        cell(&gb, "modified_by")
    );
    // The steward shortens the rejected name; the next reverse cycle re-reads the recent
    // rows (its look-back) and writes only that fix.
    steward_merge(
        &site,
        &ids[2],
        &[("name1", "Preferred Industrial Supply")],
        site.clock.now(),
    )
    .await?;
    site.clock.advance(Duration::minutes(10));
    site.cirt.clear_requests();
    reverse.run_cycle().await?;
    let again = take_reports(&site);
    println!(
        "   The steward shortens vendor {}'s name; reverse sync again: {} rows re-read, {} POST/PUT sent ({}):",
        ids[2],
        again.len(),
        site.cirt.write_count(),
        summarise(&count(&again))
    );
    for r in again.iter().filter(|r| r.action != RecordAction::Unchanged) {
        println!(
            "     {} {}: {}",
            r.key.get("VENDOR_ID").map_or("?", String::as_str),
            r.action,
            r.reason
        );
    }
    println!();

    println!("Summary");
    println!("-------");
    let totals = count(&records);
    println!("  write-back run: {}", summarise(&totals));
    println!("  dry run wrote nothing; the conflicting PeopleSoft edit was kept; the rejected record carries PeopleSoft's message;");
    println!("  rows from the forward sync were recognised as echoes and never written back.");
    Ok(())
}

fn ps_client(
    host: String,
    port: u16,
    node: &str,
    user: &str,
    password: &str,
    clock: Arc<ManualClock>,
) -> Result<PeopleSoftClient, BoxError> {
    // In-process stand-ins: no gap between requests. Against a real PeopleSoft the defaults
    // (one request at a time, 250 ms apart) apply.
    Ok(StandInClient {
        user: user.into(),
        password: password.into(),
        ..StandInClient::default()
    }
    .builder(host, port, node)
    .clock(clock)
    .build()?)
}

fn dbx_client(dbx: &DatabricksStandIn) -> Result<DatabricksClient, BoxError> {
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
        .options(ClientOptions {
            poll_initial: StdDuration::from_millis(10),
            poll_max: StdDuration::from_millis(50),
            ..ClientOptions::default()
        })
        .build()?;
    Ok(DatabricksClient::new(config)?)
}

fn governed_table() -> String {
    format!("{CATALOG}.{SCHEMA}.{TABLE}")
}

/// The vendor CI target: keys SETID + VENDOR_ID, four governed fields, echo identity
/// `MLC_SYNC` in `modified_by`, PeopleSoft wins conflicts.
fn target() -> CiTarget {
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
        .conflict_policy(ConflictPolicy::PeopleSoftWins)
        .time_zone("America/Chicago")
}

fn writeback_sink(site: &Site, dry_run: bool) -> Result<PeopleSoftSink, BoxError> {
    let reports = site.reports.clone();
    Ok(PeopleSoftSink::builder(site.writer.clone())
        .target(WRITEBACK_STREAM, target())
        .baselines(Arc::new(site.baselines.clone()))
        .dry_run(dry_run)
        .retry_delay(StdDuration::from_millis(100))
        .on_report(move |r| {
            reports
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(r.clone())
        })
        .build()?)
}

/// Forward: the sample vendors stream (QAS) plus `modified_by` (always `MLC_SYNC`) and
/// `modified_at` (PeopleSoft's LASTUPDDTTM) → `DatabricksSink`, seeding baselines.
fn forward_pipeline(site: &Site) -> Result<Pipeline, BoxError> {
    let mut def = sample_streams(&site.dataset.read())
        .into_iter()
        .find(|d| d.name == "vendors")
        .ok_or("no vendors stream")?;
    def.mapping.columns.push(ColumnMapping {
        column: "modified_by".into(),
        source: "MLC_MODIFIED_BY".into(),
        column_type: ColumnType::String,
        nullable: true,
        transforms: vec![Transform::Default(CIRT_OPRID.into())],
    });
    def.mapping.columns.push(ColumnMapping {
        column: "modified_at".into(),
        source: "LASTUPDDTTM".into(),
        column_type: ColumnType::Timestamp,
        nullable: true,
        transforms: Vec::new(),
    });
    let mapper = Arc::new(def.mapper()?);
    let qas_client = ps_client(
        site.qas.host(),
        site.qas.port(),
        site.qas.node(),
        DEFAULT_OPRID,
        DEFAULT_PASSWORD,
        site.clock.clone(),
    )?;
    let source = Arc::new(PeopleSoftSource::new(qas_client, def)?);
    let databricks = DatabricksSink::new(site.dbx_client.clone(), CATALOG, SCHEMA)?;
    let sink = BaselineSeedingSink::new(
        Arc::new(databricks),
        writeback_sink(site, false)?,
        "vendors",
        WRITEBACK_STREAM,
    );
    let policy =
        WindowPolicy::starting_at(Dataset::history_start()).max_window(Duration::days(400));
    Ok(Pipeline::builder("forward", Arc::new(sink))
        .stream(StreamConfig::new("vendors", source, mapper, policy))
        .checkpoints(Arc::new(MemoryCheckpointStore::new()))
        .audit(Arc::new(MemoryAuditLog::new()))
        .rejects(Arc::new(MemoryRejectStore::new()))
        .clock(site.clock.clone())
        .build()?)
}

/// Reverse: the governed table windowed on `modified_at` → identity mapping →
/// `PeopleSoftSink`. Fresh in-memory checkpoints each time it is built (a dry run must not
/// mark windows as done for the real run).
fn reverse_pipeline(site: &Site, sink: PeopleSoftSink) -> Result<Pipeline, BoxError> {
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
    let schema = TableSchema {
        name: WRITEBACK_STREAM.into(),
        columns,
        primary_key: vec!["setid".into(), "vendor_id".into()],
        cursor_column: Some("modified_at".into()),
        write_mode: Default::default(),
        effective_dating: None,
    };
    let mapping = Mapping::identity(&schema);
    let source = DatabricksSource::new(
        site.dbx_client.clone(),
        TableName::new(CATALOG, SCHEMA, TABLE)?,
        &schema,
    )?;
    let policy =
        WindowPolicy::starting_at(Dataset::history_start()).max_window(Duration::days(400));
    Ok(Pipeline::builder("reverse", Arc::new(sink))
        .stream(StreamConfig::new(
            WRITEBACK_STREAM,
            Arc::new(source),
            Arc::new(mapping.compile()?),
            policy,
        ))
        .checkpoints(Arc::new(MemoryCheckpointStore::new()))
        .audit(Arc::new(MemoryAuditLog::new()))
        .rejects(Arc::new(MemoryRejectStore::new()))
        .clock(site.clock.clone())
        .build()?)
}

/// One steward change: a MERGE that sets `values` plus `modified_by` / `modified_at` on the
/// vendor's row, or inserts the row (with lineage columns naming the steward's tool).
async fn steward_merge(
    site: &Site,
    vendor_id: &str,
    values: &[(&str, &str)],
    at: DateTime<Utc>,
) -> Result<(), BoxError> {
    let table = TableName::new(CATALOG, SCHEMA, TABLE)?;
    let s = |v: &str| Value::String(v.to_string());
    let mut cols: Vec<(String, Value, ColumnType)> = vec![
        ("setid".into(), s("SHARE"), ColumnType::String),
        ("vendor_id".into(), s(vendor_id), ColumnType::String),
    ];
    for (c, v) in values {
        cols.push((c.to_string(), s(v), ColumnType::String));
    }
    cols.push(("modified_by".into(), s(STEWARD), ColumnType::String));
    cols.push((
        "modified_at".into(),
        Value::Timestamp(at),
        ColumnType::Timestamp,
    ));
    let updates: Vec<String> = cols[2..]
        .iter()
        .map(|(c, _, _)| format!("tgt.{0} = src.{0}", sql::quote_ident(c)))
        .collect();
    cols.push(("_ml_run_id".into(), s("steward"), ColumnType::String));
    cols.push((
        "_ml_loaded_at".into(),
        Value::Timestamp(at),
        ColumnType::Timestamp,
    ));
    cols.push(("_ml_source".into(), s("steward-ui"), ColumnType::String));
    let names: Vec<String> = cols.iter().map(|(n, _, _)| sql::quote_ident(n)).collect();
    let literals: Vec<String> = cols
        .iter()
        .map(|(_, v, t)| sql::literal(v, Some(*t)))
        .collect();
    let text = format!(
        "MERGE INTO {table} AS tgt USING (SELECT * FROM VALUES ({}) AS v({})) AS src \
         ON tgt.`setid` <=> src.`setid` AND tgt.`vendor_id` <=> src.`vendor_id` \
         WHEN MATCHED THEN UPDATE SET {} \
         WHEN NOT MATCHED THEN INSERT ({}) VALUES ({})",
        literals.join(", "),
        names.join(", "),
        updates.join(", "),
        names.join(", "),
        names
            .iter()
            .map(|n| format!("src.{n}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    site.dbx_client.execute(&Statement::new(text)).await?;
    Ok(())
}

/// Four ordinary vendors (plain names) for the story.
fn pick_vendors(site: &Site) -> Vec<String> {
    let d = site.dataset.read();
    let mut ids: Vec<String> = d
        .table(TABLE_VENDORS)
        .map(|t| {
            t.rows()
                .iter()
                .filter(|r| {
                    let name = r.text("NAME1").unwrap_or_default();
                    name.is_ascii()
                        && name.trim().len() > 3
                        && !name.contains(['\'', '"', '\\', '\t'])
                })
                .filter_map(|r| r.text("VENDOR_ID"))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids.truncate(4);
    ids
}

fn governed_row(site: &Site, vendor_id: &str) -> BTreeMap<String, StandInValue> {
    site.dbx
        .rows(&governed_table())
        .unwrap_or_default()
        .into_iter()
        .find(|r| r.get("vendor_id") == Some(&StandInValue::String(vendor_id.into())))
        .unwrap_or_default()
}

fn cell(row: &BTreeMap<String, StandInValue>, col: &str) -> String {
    row.get(col)
        .map_or_else(|| "?".into(), |v| format!("{:?}", v.to_string()))
}

fn take_reports(site: &Site) -> Vec<RecordOutcome> {
    std::mem::take(&mut *site.reports.lock().unwrap_or_else(|e| e.into_inner()))
        .into_iter()
        .flat_map(|r| r.records)
        .collect()
}

fn count(records: &[RecordOutcome]) -> BTreeMap<RecordAction, usize> {
    let mut out = BTreeMap::new();
    for r in records {
        *out.entry(r.action).or_insert(0) += 1;
    }
    out
}

fn summarise(counts: &BTreeMap<RecordAction, usize>) -> String {
    RecordAction::ALL
        .iter()
        .filter_map(|a| counts.get(a).map(|n| format!("{n} {a}")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Prints every record that is not a plain echo, with its reason and field changes, then the
/// counts.
fn print_outcomes(records: &[RecordOutcome], dry_run: bool) {
    for r in records {
        if r.action == RecordAction::Unchanged && r.reason.starts_with("echo") {
            continue;
        }
        let label = match (dry_run, r.action) {
            (true, RecordAction::Created) => "would create".to_string(),
            (true, RecordAction::Updated) => "would update".to_string(),
            (_, a) => a.to_string(),
        };
        println!(
            "   {:<10} {:<13} {}",
            r.key.get("VENDOR_ID").map_or("?", String::as_str),
            label,
            r.reason
        );
        for c in &r.changes {
            if c.field == "SETID" || c.field == "VENDOR_ID" {
                continue;
            }
            println!(
                "   {:<24} {:<14} {:?} → {:?}",
                "",
                c.field,
                c.from.as_deref().unwrap_or("(none)"),
                c.to.as_deref().unwrap_or("(null)")
            );
        }
        if let Some(m) = &r.peoplesoft_message {
            if r.action == RecordAction::Rejected {
                println!("   {:<24} PeopleSoft says: {m}", "");
            }
        }
    }
    let echoes = records
        .iter()
        .filter(|r| r.action == RecordAction::Unchanged && r.reason.starts_with("echo"))
        .count();
    println!(
        "   ({echoes} echo rows from the forward sync not listed)  totals: {}",
        summarise(&count(records))
    );
}
