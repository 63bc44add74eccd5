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
use ml_connector::sample::sample_streams;
use ml_connector_testkit::dataset::{
    Dataset, SharedDataset, TABLE_JOB, TABLE_JOURNAL_LINES, TABLE_PO_LINES, TABLE_VENDORS,
};
use ml_connector_testkit::peoplesoft::{PeopleSoftServer, DEFAULT_OPRID, DEFAULT_PASSWORD};
use peoplesoft_client::{
    Connection, Credentials, LoadProtection, PeopleSoftClient, PeopleSoftSource, Scheme,
    StreamDefinition,
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
        let conn = Connection::builder(server.host(), u32::from(server.port()), server.node())
            .scheme(Scheme::Http)
            .allow_http(true)
            .build()?;
        let creds = Credentials::basic(
            DEFAULT_OPRID,
            SecretString::from(DEFAULT_PASSWORD.to_string()),
        );
        // The stand-in runs in this process: a short gap between requests is enough. Against a
        // real PeopleSoft the defaults (one request at a time, 250 ms apart) apply.
        let protection = LoadProtection {
            min_gap: StdDuration::from_millis(5),
            ..LoadProtection::default()
        };
        let client = PeopleSoftClient::builder(conn, creds)
            .protection(protection)
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
            let sink = ml_connector::destinations::databricks_sink_from_env().await?;
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
        let mapper = Arc::new(def.mapping.compile()?);
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
        s.with_connection(|db| finance_questions(db, as_of))?;
    }
    println!(
        "Look around: sqlite3 {}   |   {}/audit.jsonl",
        db_path.display(),
        state_dir.display()
    );
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
fn finance_questions(db: &rusqlite::Connection, as_of: NaiveDate) -> Result<(), BoxError> {
    println!("Finance questions (as of {as_of})\n");

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

fn truncate(s: &str, n: usize) -> String {
    let t: String = s.chars().filter(|c| !c.is_control()).take(n).collect();
    t
}
