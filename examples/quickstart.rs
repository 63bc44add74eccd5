//! `cargo run --example quickstart`
//!
//! The whole path on one machine, with no credentials and no network: an in-process PeopleSoft
//! stand-in serves a sample manufacturer's data over the real Query Access Services wire
//! format; the real engine and the real `PeopleSoftSource` load it into a local SQLite file,
//! with the file checkpoint store and a JSON-lines audit. Then some source rows change
//! (including a late-committed one), an incremental cycle moves only the changes, and three
//! finance questions are answered from the local file.
//!
//! With `PEOPLESOFT_HOST` (plus `PEOPLESOFT_NODE`, `PEOPLESOFT_USER`, `PEOPLESOFT_PASSWORD`,
//! optional `PEOPLESOFT_PORT`, `PEOPLESOFT_TIME_ZONE`) the same example reads your PeopleSoft
//! instead; with `DATABRICKS_HOST` (and the usual `DATABRICKS_*` credentials,
//! `DATABRICKS_WAREHOUSE_ID`, optional `DATABRICKS_CATALOG` / `DATABRICKS_SCHEMA`) it loads
//! into your Databricks workspace. It says which systems it uses.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use databricks_client::{ConfigBuilder, DatabricksClient, DatabricksSink};
use ml_connector_testkit::dataset::{
    Dataset, SharedDataset, TABLE_JOB, TABLE_JOURNAL_LINES, TABLE_PO_LINES, TABLE_VENDORS,
};
use ml_connector_testkit::peoplesoft::PeopleSoftServer;
use ml_connector_testkit::sample::sample_streams;
use ml_connector_testkit::site::StandInClient;
use peoplesoft_client::{
    Connection, Credentials, LoadProtection, PeopleSoftClient, PeopleSoftSource, StreamDefinition,
};
use rust_decimal::Decimal;
use secrecy::SecretString;
use sync_core::audit::{JsonlAuditLog, JsonlRejectStore};
use sync_core::engine::{CycleReport, Pipeline, Progress, StreamConfig, WindowPolicy};
use sync_core::sqlite::SqliteSink;
use sync_core::state::FileCheckpointStore;
use sync_core::{Clock, ManualClock, Sink, SystemClock};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let out = PathBuf::from("target/quickstart");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;

    println!("ml-connector quickstart");
    println!("=======================\n");

    // --- Source: a real PeopleSoft, or the in-process stand-in. ---------------------------
    let real_ps = std::env::var("PEOPLESOFT_HOST").is_ok();
    let mut standin: Option<(PeopleSoftServer, SharedDataset)> = None;
    let mut manual: Option<Arc<ManualClock>> = None;
    let (client, streams, clock, start): (
        PeopleSoftClient,
        Vec<StreamDefinition>,
        Arc<dyn Clock>,
        DateTime<Utc>,
    ) = if real_ps {
        let env = |k: &str| {
            std::env::var(k).map_err(|_| format!("{k} is not set (needed with PEOPLESOFT_HOST)"))
        };
        let port: u32 = std::env::var("PEOPLESOFT_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(443);
        let conn =
            Connection::builder(env("PEOPLESOFT_HOST")?, port, env("PEOPLESOFT_NODE")?).build()?;
        let creds = Credentials::basic(
            env("PEOPLESOFT_USER")?,
            SecretString::from(env("PEOPLESOFT_PASSWORD")?),
        );
        let client = PeopleSoftClient::builder(conn.clone(), creds).build()?;
        let tz = std::env::var("PEOPLESOFT_TIME_ZONE").unwrap_or_else(|_| "UTC".into());
        let streams = StreamDefinition::all_defaults()
            .into_iter()
            .map(|d| d.time_zone(&tz))
            .collect::<Result<Vec<_>, _>>()?;
        println!(
            "Source:      your PeopleSoft at {} (node {}), delivered MLC_* queries, last 30 days",
            conn.host_port(),
            conn.node().as_str()
        );
        (
            client,
            streams,
            Arc::new(SystemClock),
            Utc::now() - Duration::days(30),
        )
    } else {
        let dataset = SharedDataset::new(Dataset::manufacturer(42, 1.0));
        let server = PeopleSoftServer::start(dataset.clone());
        // The stand-in runs in this process: a short gap between requests is enough. Against a
        // real PeopleSoft the defaults (one request at a time, 250 ms apart) apply.
        let client = StandInClient {
            protection: LoadProtection {
                min_gap: StdDuration::from_millis(5),
                ..LoadProtection::default()
            },
            ..StandInClient::default()
        }
        .for_server(&server)
        .build()?;
        let streams = sample_streams(&dataset.read());
        let rows: u64 = dataset.read().total_rows();
        println!("Source:      in-process PeopleSoft stand-in at {} (node {}), sample manufacturer \"Northwind Forge\", {rows} rows", server.base_url(), server.node());
        let clock = Arc::new(ManualClock::new(
            Dataset::history_end() + Duration::hours(1),
        ));
        manual = Some(clock.clone());
        standin = Some((server, dataset));
        (client, streams, clock, Dataset::history_start())
    };

    // --- Destination: Databricks, or a local SQLite file. ----------------------------------
    let db_path = out.join("northwind.db");
    let real_dbx = std::env::var("DATABRICKS_HOST").is_ok();
    let sqlite = if real_dbx {
        None
    } else {
        Some(Arc::new(SqliteSink::open(&db_path)?))
    };
    let sink: Arc<dyn Sink> = match &sqlite {
        Some(s) => {
            println!(
                "Destination: local SQLite file {} (exact decimals stored as text)",
                db_path.display()
            );
            s.clone()
        }
        None => {
            let sink = databricks_sink_from_env().await?;
            println!("Destination: your Databricks workspace ({})", sink.0);
            sink.1
        }
    };
    let state_dir = out.join("state");
    println!(
        "State:       {} (checkpoints, audit.jsonl, rejects.jsonl)\n",
        state_dir.display()
    );

    // --- The pipeline. ----------------------------------------------------------------------
    let policy = WindowPolicy::starting_at(start).max_window(Duration::days(92));
    let mut builder = Pipeline::builder("quickstart", sink)
        .checkpoints(Arc::new(FileCheckpointStore::open(&state_dir)?))
        .audit(Arc::new(JsonlAuditLog::new(state_dir.join("audit.jsonl"))))
        .rejects(Arc::new(JsonlRejectStore::new(
            state_dir.join("rejects.jsonl"),
        )))
        .clock(clock.clone())
        .on_progress(print_progress);
    for def in streams {
        let name = def.name.clone();
        let mapper = Arc::new(def.mapper()?);
        let source = Arc::new(PeopleSoftSource::new(client.clone(), def)?);
        builder = builder.stream(StreamConfig::new(name, source, mapper, policy).batch_size(2_000));
    }
    let pipeline = builder.build()?;

    println!("Cycle 1: full load");
    let t = Instant::now();
    let first = pipeline.run_cycle().await?;
    print_summary(&first, t.elapsed());

    if let Some((_, dataset)) = &standin {
        // Business goes on: some rows change, new ones arrive, and one transaction that started
        // before the last poll commits late, with a cursor 30 minutes before the cycle's end.
        let now = clock.now();
        let at = now + Duration::minutes(20);
        let last_cycle_end = now - policy.settle_lag;
        let (updated_vendors, updated_pos, new_lines, new_hires, late) = {
            let mut d = dataset.write();
            (
                d.update_rows(TABLE_VENDORS, 5, at).len(),
                d.update_rows(TABLE_PO_LINES, 3, at).len(),
                d.insert_rows(TABLE_JOURNAL_LINES, 4, at).len(),
                d.insert_rows(TABLE_JOB, 1, at).len(),
                d.insert_late_rows(
                    TABLE_JOURNAL_LINES,
                    2,
                    last_cycle_end - Duration::minutes(30),
                )
                .len(),
            )
        };
        println!("Meanwhile in PeopleSoft: {updated_vendors} vendors and {updated_pos} PO lines updated, {new_lines} journal lines and {new_hires} hire row added, {late} journal lines committed late (cursor 30 min before the last cycle's end)\n");
        if let Some(manual) = &manual {
            manual.advance(Duration::hours(1));
        }
        println!("Cycle 2: incremental (re-reads the 1 h lookback for late commits)");
        let t = Instant::now();
        let second = pipeline.run_cycle().await?;
        print_summary(&second, t.elapsed());
        let total_first: u64 = first.streams.iter().map(|s| s.rows_read).sum();
        let total_second: u64 = second.streams.iter().map(|s| s.rows_read).sum();
        println!(
            "Only the changes moved: cycle 2 read {total_second} rows (cycle 1 read {total_first}); the late-committed lines arrived through the lookback.\n"
        );
    }

    if let Some(s) = &sqlite {
        let as_of = clock.now().date_naive();
        // The largest amounts PeopleSoft holds, to check the file against (stand-in only).
        let source_largest = standin.as_ref().map(|(_, dataset)| {
            let d = dataset.read();
            [
                (TABLE_PO_LINES, "MERCHANDISE_AMT"),
                (TABLE_JOURNAL_LINES, "MONETARY_AMOUNT"),
            ]
            .map(|(table, field)| {
                d.table(table)
                    .map(|t| {
                        t.rows()
                            .iter()
                            .filter_map(|r| r.text(field)?.parse::<Decimal>().ok())
                            .max_by_key(|a| (a.abs(), *a))
                    })
                    .unwrap_or_default()
            })
        });
        s.with_connection(|db| finance_questions(db, as_of, source_largest))?;
    }
    println!(
        "Look around: sqlite3 {}   |   {}/audit.jsonl\n",
        db_path.display(),
        state_dir.display()
    );
    println!("Next, against your own systems (see README \"Point it at real systems\"):");
    println!("  cargo install --path .                        # the ml-connector command");
    println!(
        "  cp pipeline.example.toml pipeline.toml        # host, node, OPRID, catalog, schema"
    );
    println!("  ml-connector --config pipeline.toml check      # proves both systems answer");
    println!("  ml-connector --config pipeline.toml run --once # one incremental cycle");
    println!("  ml-connector --config pipeline.toml status     # coverage, failures, last runs");
    Ok(())
}

fn print_progress(p: &Progress) {
    match p {
        Progress::StreamStarted { stream, windows } if *windows > 0 => {
            println!("  {stream:<22} {windows} window(s) planned")
        }
        Progress::WindowCommitted {
            stream,
            window,
            rows_read,
            ..
        } => {
            println!(
                "  {stream:<22} committed {} .. {}  {rows_read:>6} rows",
                window.from.format("%Y-%m-%d %H:%M"),
                window.to.format("%Y-%m-%d %H:%M")
            )
        }
        Progress::WindowFailed {
            stream,
            window,
            error,
        } => println!("  {stream:<22} FAILED {window}: {error}"),
        _ => {}
    }
}

fn print_summary(r: &CycleReport, elapsed: StdDuration) {
    println!(
        "\n  {:<22} {:>8} {:>10} {:>10} {:>10} {:>9}",
        "stream", "windows", "read", "written", "rejected", "time"
    );
    println!("  {}", "-".repeat(74));
    for s in &r.streams {
        println!(
            "  {:<22} {:>8} {:>10} {:>10} {:>10} {:>7}ms{}",
            s.stream,
            s.windows_committed,
            s.rows_read,
            s.rows_written,
            s.rows_rejected,
            s.elapsed_ms,
            if s.is_clean() {
                String::new()
            } else {
                format!(
                    "  ({} failed{})",
                    s.windows_failed,
                    s.error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                )
            }
        );
    }
    println!("  cycle {} in {:.2}s\n", r.run_id, elapsed.as_secs_f64());
}

/// Three questions a finance team asks, answered from the local file. Amounts are summed as
/// exact decimals in Rust (SQLite would sum text through floating point).
fn finance_questions(
    db: &rusqlite::Connection,
    as_of: NaiveDate,
    source_largest: Option<[Option<Decimal>; 2]>,
) -> Result<(), BoxError> {
    println!("Finance questions (as of {as_of})\n");

    // The sample site carries deliberate precision probes (amounts of ±12,345,678,901,234.56 on
    // one PO line and some journal lines): they prove exactness, not business volume, so they
    // are shown here and left out of the business answers below.
    println!("0. Exact to the cent");
    let mut probes = 0;
    for (i, (table, column)) in [
        ("ps_purchase_order_lines", "merchandise_amt"),
        ("ps_journal_lines", "monetary_amount"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut stmt = db.prepare(&format!("SELECT {column} FROM {table}"))?;
        let mut largest: Option<Decimal> = None;
        for amount in stmt.query_map([], |r| r.get::<_, Option<String>>(0))? {
            let Some(text) = amount? else { continue };
            let amount: Decimal = text.parse()?;
            if is_probe(amount) {
                probes += 1;
            }
            if largest.is_none_or(|l| (amount.abs(), amount) > (l.abs(), l)) {
                largest = Some(amount);
            }
        }
        let Some(l) = largest else { continue };
        match source_largest.map(|s| s[i]) {
            Some(Some(source)) if source == l => println!(
                "   {table}.{column}: largest amount {l} equals PeopleSoft's {source} to the last digit"
            ),
            Some(source) => {
                return Err(format!(
                    "{table}.{column}: largest amount {l} differs from PeopleSoft's {source:?}"
                )
                .into())
            }
            None => println!("   {table}.{column}: largest amount {l} (exact decimal, no floating point)"),
        }
    }
    println!(
        "   ({probes} precision-probe rows of the sample site left out of the answers below)\n"
    );

    println!("1. Spend by vendor (PO merchandise amount, top 8)");
    let mut spend: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut stmt = db.prepare(
        "SELECT COALESCE(v.name1, p.vendor_id), p.merchandise_amt FROM ps_purchase_order_lines p \
         LEFT JOIN ps_vendors v ON v.vendor_id = p.vendor_id WHERE p.po_status <> 'X'",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, Option<String>>(0)?,
            r.get::<_, Option<String>>(1)?,
        ))
    })?;
    for row in rows {
        let (vendor, amount) = row?;
        let amount: Decimal = amount.as_deref().unwrap_or("0").parse()?;
        if is_probe(amount) {
            continue;
        }
        *spend
            .entry(vendor.unwrap_or_else(|| "(unknown)".into()))
            .or_default() += amount;
    }
    let mut top: Vec<_> = spend.into_iter().collect();
    top.sort_by_key(|e| std::cmp::Reverse(e.1));
    for (vendor, amount) in top.iter().take(8) {
        println!("   {:<42} {:>20}", truncate(vendor, 42), amount.round_dp(2));
    }

    println!("\n2. Open purchase orders by age (status I/A/D)");
    let mut buckets: BTreeMap<&str, (u64, Decimal)> = BTreeMap::new();
    let mut stmt = db.prepare(
        "SELECT business_unit, po_id, MIN(po_dt), merchandise_amt FROM ps_purchase_order_lines \
         WHERE po_status IN ('I','A','D') GROUP BY business_unit, po_id, line_nbr",
    )?;
    let mut per_po: BTreeMap<(String, String), (NaiveDate, Decimal)> = BTreeMap::new();
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, Option<String>>(3)?,
        ))
    })?;
    for row in rows {
        let (bu, po, dt, amt) = row?;
        let Some(dt) = dt.and_then(|d| d.parse::<NaiveDate>().ok()) else {
            continue;
        };
        let amt: Decimal = amt.as_deref().unwrap_or("0").parse()?;
        if is_probe(amt) {
            continue;
        }
        let e = per_po.entry((bu, po)).or_insert((dt, Decimal::ZERO));
        e.1 += amt;
    }
    for (dt, amt) in per_po.values() {
        let age = (as_of - *dt).num_days();
        let bucket = match age {
            ..=30 => "0-30 days",
            31..=60 => "31-60 days",
            61..=90 => "61-90 days",
            _ => "over 90 days",
        };
        let b = buckets.entry(bucket).or_default();
        b.0 += 1;
        b.1 += amt;
    }
    for bucket in ["0-30 days", "31-60 days", "61-90 days", "over 90 days"] {
        let (n, amt) = buckets.get(bucket).copied().unwrap_or_default();
        println!("   {bucket:<14} {n:>5} POs {:>22}", amt.round_dp(2));
    }

    println!("\n3. Headcount by department (current job row, active or on leave)");
    let mut stmt = db.prepare(
        "SELECT deptid, COUNT(DISTINCT emplid) FROM ps_job WHERE is_current = 1 AND empl_status IN ('A','L','P') \
         GROUP BY deptid ORDER BY 2 DESC, 1",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, Option<String>>(0)?, r.get::<_, i64>(1)?))
    })?;
    for row in rows {
        let (dept, n) = row?;
        println!("   {:<14} {n:>5}", dept.unwrap_or_default());
    }
    println!();
    Ok(())
}

/// The sample site's precision probes: amounts no manufacturer of this size books, there to
/// prove that 14 integer digits and 2 decimals survive the whole path.
fn is_probe(amount: Decimal) -> bool {
    amount.abs() >= Decimal::from(1_000_000_000_000_i64)
}

fn truncate(s: &str, n: usize) -> String {
    let t: String = s.chars().filter(|c| !c.is_control()).take(n).collect();
    t
}

/// A `DatabricksSink` configured from `DATABRICKS_*` variables (or the profile they name),
/// with catalog and schema from `DATABRICKS_CATALOG` / `DATABRICKS_SCHEMA` (defaults `main`
/// and `ml_connector`). Returns a description (the host) and the sink.
async fn databricks_sink_from_env(
) -> Result<(String, Arc<dyn Sink>), Box<dyn std::error::Error + Send + Sync>> {
    let env = |k: &str| std::env::var(k).ok();
    let config = ConfigBuilder::from_lookup(env)?
        .catalog(env("DATABRICKS_CATALOG").unwrap_or_else(|| "main".into()))
        .schema(env("DATABRICKS_SCHEMA").unwrap_or_else(|| "ml_connector".into()))
        .build()?;
    let host = config.host().to_string();
    let client = DatabricksClient::new(config)?;
    let report = client.ping().await;
    if !report.is_ok() {
        return Err(format!("Databricks check failed: {report}").into());
    }
    let sink = DatabricksSink::from_config_defaults(client)?;
    Ok((host, Arc::new(sink)))
}
