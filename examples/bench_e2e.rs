//! End-to-end throughput benchmark:
//!
//! ```text
//! cargo run --release --example bench_e2e -- [--mode full|engine] [--rows N]
//!     [--source-latency-ms L] [--sink-latency-ms L] [--page-rows P] [--batch-size B]
//!     [--max-rows M] [--seed S] [--sqlite-cache-mib C]
//! ```
//!
//! Runs ONE configuration per process (peak RSS cannot be reset) and prints a readable block
//! plus one machine-readable line starting with `BENCH`.
//!
//! # Modes
//!
//! - `full` (default): the PeopleSoft stand-in (`Dataset::journal_benchmark`, N journal lines,
//!   served over HTTP by `PeopleSoftServer` on its own threads in this process) → the real
//!   `PeopleSoftSource` (HTTP + QAS JSON parsing + alias stripping) → the engine with the
//!   journal-lines `MappingMapper` → `SqliteSink` on a file in a temporary directory.
//! - `engine`: pages generated in memory BEFORE the clock starts (the records the
//!   `PeopleSoftSource` would deliver, alias prefixes already stripped) → engine +
//!   `MappingMapper` → a sink that only confirms. Runs on a `current_thread` Tokio runtime,
//!   so it measures engine + mapping on one core. Its peak RSS includes the pre-generated
//!   pages (printed separately as "RSS before run").
//!
//! # Pages, windows and batches
//!
//! Journals are one second apart with 10 lines each, so a cursor window of `P / 10` seconds
//! holds exactly `P` lines: the stream reads one request (one page) of `--page-rows` P rows
//! per window (default 2,000: measured faster and lighter than 10,000-row pages). `maxrows`
//! (`--max-rows`, default 2 P) stays above the page so the engine never bisects; memory stays
//! bounded by one page in parse, one batch being built and `in_flight_batches` (2) batches
//! queued. `--batch-size` defaults to P: one sink write per page.
//!
//! `full` mode opens SQLite with a page cache of `--sqlite-cache-mib` C MiB (default 8;
//! `SqliteSink`'s own default is 64, which is faster on large tables but puts the cache
//! alone above 50 MiB of RSS).
//!
//! # Latency injection
//!
//! `--source-latency-ms L` adds L ms to every source request (the stand-in's
//! `PeopleSoftServer::set_latency` in `full` mode; a sleep before each page in `engine`
//! mode). `--sink-latency-ms L` makes the timing sink adapter sleep L ms per batch before the
//! real write.
//!
//! # The numbers
//!
//! - `rows`: rows written, as confirmed by the sink (checked against N; in `full` mode the
//!   SQLite table is also counted after the clock stops).
//! - `wall`: time of `Pipeline::run_cycle` (table preparation included; server start, data
//!   generation and opening SQLite excluded).
//! - `rows/s`: rows ÷ wall.
//! - `peak RSS`: `VmHWM` of this process (stand-in server, HTTP bodies and SQLite cache
//!   included in `full` mode).
//! - `source wait`: sum over pages of the time from the engine asking the source for the
//!   next page to the page arriving (HTTP round trip, server rendering and client-side
//!   parsing in `full` mode), measured by a timing adapter around the `Source`.
//! - `sink write`: sum over batches of the time inside `Sink::write` (injected latency
//!   included), measured by a timing adapter around the `Sink`.
//! - `pipelining`: max(source wait, sink write) ÷ wall, as a percentage: 100 % means the
//!   slower side was busy the whole time (the other side fully overlapped); with equal
//!   source and sink latencies and no overlap at all it would be about 50 %.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use futures::StreamExt as _;
use ml_connector_testkit::dataset::{Dataset, JournalLines, SharedDataset, TABLE_JOURNAL_LINES};
use ml_connector_testkit::peoplesoft::PeopleSoftServer;
use ml_connector_testkit::sample::{fit_to_query, SITE_TIME_ZONE};
use ml_connector_testkit::site::StandInClient;
use peoplesoft_client::records::strip_alias_prefixes;
use peoplesoft_client::{PeopleSoftSource, StreamDefinition};
use sync_core::audit::{MemoryAuditLog, MemoryRejectStore};
use sync_core::engine::{Pipeline, StreamConfig, WindowPolicy};
use sync_core::sqlite::SqliteSink;
use sync_core::state::MemoryCheckpointStore;
use sync_core::{
    Batch, ConnectorError, ManualClock, Mapper, Page, PageStream, Receipt, Sink, Source,
    TableSchema, Window,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Full,
    Engine,
}

#[derive(Debug, Clone)]
struct Args {
    mode: Mode,
    rows: u64,
    source_latency: StdDuration,
    sink_latency: StdDuration,
    page_rows: u64,
    batch_size: usize,
    max_rows: u32,
    seed: u64,
    sqlite_cache_mib: u32,
}

const USAGE: &str = "usage: bench_e2e [--mode full|engine] [--rows N] [--source-latency-ms L] [--sink-latency-ms L] [--page-rows P] [--batch-size B] [--max-rows M] [--seed S] [--sqlite-cache-mib C]";

fn parse_args() -> Result<Args, String> {
    let mut mode = Mode::Full;
    let mut rows = 200_000u64;
    let mut source_ms = 0u64;
    let mut sink_ms = 0u64;
    let mut page_rows = 2_000u64;
    let mut batch_size: Option<usize> = None;
    let mut max_rows: Option<u32> = None;
    let mut seed = 42u64;
    let mut sqlite_cache_mib = 8u32;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.to_string());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let num = |v: &str| {
            v.replace('_', "")
                .parse::<u64>()
                .map_err(|_| format!("{flag}: `{v}` is not a whole number\n{USAGE}"))
        };
        match flag.as_str() {
            "--mode" => {
                mode = match value.as_str() {
                    "full" => Mode::Full,
                    "engine" => Mode::Engine,
                    other => {
                        return Err(format!("--mode: `{other}` is not full or engine\n{USAGE}"))
                    }
                }
            }
            "--rows" => rows = num(&value)?,
            "--source-latency-ms" => source_ms = num(&value)?,
            "--sink-latency-ms" => sink_ms = num(&value)?,
            "--page-rows" => page_rows = num(&value)?,
            "--batch-size" => batch_size = Some(num(&value)? as usize),
            "--max-rows" => {
                max_rows = Some(
                    u32::try_from(num(&value)?)
                        .map_err(|_| "--max-rows is too large".to_string())?,
                )
            }
            "--seed" => seed = num(&value)?,
            "--sqlite-cache-mib" => {
                sqlite_cache_mib = u32::try_from(num(&value)?)
                    .map_err(|_| "--sqlite-cache-mib is too large".to_string())?
            }
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    if rows == 0 {
        return Err("--rows must be positive".into());
    }
    // Whole journals (10 lines each) per page, so windows of page_rows/10 seconds hold exactly one page.
    let page_rows = (page_rows.max(10) / 10) * 10;
    Ok(Args {
        mode,
        rows,
        source_latency: StdDuration::from_millis(source_ms),
        sink_latency: StdDuration::from_millis(sink_ms),
        page_rows,
        batch_size: batch_size.unwrap_or(page_rows as usize).max(1),
        max_rows: max_rows.unwrap_or_else(|| u32::try_from(page_rows * 2).unwrap_or(u32::MAX)),
        seed,
        sqlite_cache_mib,
    })
}

/// Time and counts collected by the adapters.
#[derive(Debug, Default)]
struct Stats {
    source_ns: AtomicU64,
    pages: AtomicU64,
    records: AtomicU64,
    sink_ns: AtomicU64,
    batches: AtomicU64,
}

impl Stats {
    fn secs(v: &AtomicU64) -> f64 {
        v.load(Ordering::Relaxed) as f64 / 1e9
    }
}

/// Measures the time the engine waits for each page.
struct TimedSource {
    inner: Arc<dyn Source>,
    stats: Arc<Stats>,
}

#[async_trait]
impl Source for TimedSource {
    fn identity(&self) -> String {
        self.inner.identity()
    }

    fn read(&self, window: Window) -> PageStream<'_> {
        let pages = self.inner.read(window);
        let stats = &self.stats;
        futures::stream::unfold(pages, move |mut pages| async move {
            let t = Instant::now();
            let next = pages.next().await;
            stats
                .source_ns
                .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
            if let Some(Ok(page)) = &next {
                stats.pages.fetch_add(1, Ordering::Relaxed);
                stats
                    .records
                    .fetch_add(page.records.len() as u64, Ordering::Relaxed);
            }
            next.map(|item| (item, pages))
        })
        .boxed()
    }

    async fn count(&self, window: Window) -> Result<Option<u64>, ConnectorError> {
        self.inner.count(window).await
    }

    fn capabilities(&self) -> sync_core::SourceCapabilities {
        self.inner.capabilities()
    }

    async fn read_after(
        &self,
        window: Window,
        last: &sync_core::Record,
    ) -> Result<Option<sync_core::Page>, ConnectorError> {
        self.inner.read_after(window, last).await
    }
}

/// Measures the time inside each write, after sleeping the injected latency.
struct TimedSink {
    inner: Arc<dyn Sink>,
    latency: StdDuration,
    stats: Arc<Stats>,
}

#[async_trait]
impl Sink for TimedSink {
    async fn prepare(&self, schema: &TableSchema) -> Result<(), ConnectorError> {
        self.inner.prepare(schema).await
    }

    async fn write(&self, schema: &TableSchema, batch: &Batch) -> Result<Receipt, ConnectorError> {
        let t = Instant::now();
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let r = self.inner.write(schema, batch).await;
        self.stats
            .sink_ns
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        r
    }

    async fn count(
        &self,
        schema: &TableSchema,
        window: Window,
    ) -> Result<Option<u64>, ConnectorError> {
        self.inner.count(schema, window).await
    }

    fn maintains_current_flags(&self) -> bool {
        self.inner.maintains_current_flags()
    }

    async fn refresh_current(
        &self,
        schema: &TableSchema,
        as_of: chrono::NaiveDate,
    ) -> Result<Receipt, ConnectorError> {
        self.inner.refresh_current(schema, as_of).await
    }
}

/// `engine` mode's sink: confirms every batch, keeps nothing.
struct ConfirmSink;

#[async_trait]
impl Sink for ConfirmSink {
    async fn prepare(&self, _schema: &TableSchema) -> Result<(), ConnectorError> {
        Ok(())
    }

    async fn write(&self, _schema: &TableSchema, batch: &Batch) -> Result<Receipt, ConnectorError> {
        Ok(Receipt {
            rows_written: batch.rows.len() as u64,
            ..Receipt::default()
        })
    }
}

/// `engine` mode's source: hands out the pre-generated pages, one per window, in order.
struct MemoryPages {
    pages: Mutex<VecDeque<(Window, Page)>>,
    latency: StdDuration,
}

#[async_trait]
impl Source for MemoryPages {
    fn identity(&self) -> String {
        "memory://bench/journal_lines".into()
    }

    fn read(&self, window: Window) -> PageStream<'_> {
        let next = {
            let mut q = self.pages.lock().unwrap_or_else(|e| e.into_inner());
            match q.front() {
                Some((w, _)) if *w == window => q.pop_front().map(|(_, p)| p),
                _ => None,
            }
        };
        let latency = self.latency;
        futures::stream::once(async move {
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            Ok(next.unwrap_or_default())
        })
        .boxed()
    }
}

/// `(VmHWM, VmRSS)` of this process in KiB.
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The journal-lines stream definition fitted to the benchmark table.
fn journal_definition(lines: &JournalLines, max_rows: u32) -> StreamDefinition {
    fit_to_query(
        StreamDefinition::journal_lines(),
        lines.spec(),
        SITE_TIME_ZONE,
    )
    .max_rows(max_rows)
}

/// Window policy: from the first cursor, windows of `page_rows / 10` seconds, no lookback or
/// settle lag (one cycle over a closed history).
fn policy(start: DateTime<Utc>, page_rows: u64) -> WindowPolicy {
    WindowPolicy::starting_at(start)
        .lookback(Duration::zero())
        .settle_lag(Duration::zero())
        .max_window(Duration::seconds((page_rows / 10).max(1) as i64))
        .min_window(Duration::seconds(1))
}

struct Outcome {
    rows_written: u64,
    wall: StdDuration,
    windows: usize,
    clean: bool,
    error: Option<String>,
    rss_before_kib: u64,
    verified: Option<u64>,
}

fn main() -> Result<(), BoxError> {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    let stats = Arc::new(Stats::default());
    let outcome = match args.mode {
        Mode::Full => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(run_full(&args, stats.clone()))?,
        Mode::Engine => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(run_engine(&args, stats.clone()))?,
    };
    let (hwm, _) = memory_kib();
    report(&args, &stats, &outcome, hwm);
    if !outcome.clean
        || outcome.rows_written != args.rows
        || outcome.verified.is_some_and(|v| v != args.rows)
    {
        eprintln!("bench_e2e: the run was not clean or wrote the wrong number of rows");
        std::process::exit(1);
    }
    Ok(())
}

async fn run_full(args: &Args, stats: Arc<Stats>) -> Result<Outcome, BoxError> {
    let dataset = SharedDataset::new(Dataset::journal_benchmark(args.seed, args.rows));
    let lines = dataset
        .read()
        .generated(TABLE_JOURNAL_LINES)
        .ok_or("no generated journal_lines table")?
        .clone();
    let (start, last) = lines.cursor_range().ok_or("empty dataset")?;
    let server = PeopleSoftServer::start(dataset.clone());
    server.set_latency(args.source_latency);
    // In-process stand-in: no gap between requests (the engine reads one window at a time).
    let client = StandInClient::default().for_server(&server).build()?;
    let def = journal_definition(&lines, args.max_rows);
    let name = def.name.clone();
    let mapper = Arc::new(def.mapper()?);
    let source: Arc<dyn Source> = Arc::new(PeopleSoftSource::new(client, def)?);

    let dir = tempfile::tempdir()?;
    let db_path = dir.path().join("bench.db");
    let sqlite = Arc::new(SqliteSink::open(&db_path)?.with_cache_mib(args.sqlite_cache_mib)?);
    let table = mapper.schema().name.clone();

    let sink = Arc::new(TimedSink {
        inner: sqlite.clone(),
        latency: args.sink_latency,
        stats: stats.clone(),
    });
    let source = Arc::new(TimedSource {
        inner: source,
        stats: stats.clone(),
    });
    let clock = Arc::new(ManualClock::new(last + Duration::seconds(1)));
    let pipeline = Pipeline::builder("bench", sink)
        .checkpoints(Arc::new(MemoryCheckpointStore::new()))
        .audit(Arc::new(MemoryAuditLog::new()))
        .rejects(Arc::new(MemoryRejectStore::new()))
        .clock(clock)
        .stream(
            StreamConfig::new(name, source, mapper, policy(start, args.page_rows))
                .batch_size(args.batch_size),
        )
        .build()?;

    let (_, rss_before_kib) = memory_kib();
    let t = Instant::now();
    let report = pipeline.run_cycle().await?;
    let wall = t.elapsed();
    drop(server);
    let s = &report.streams[0];
    let verified: i64 = sqlite.with_connection(|c| {
        c.query_row(&format!("SELECT COUNT(*) FROM \"{table}\""), [], |r| {
            r.get(0)
        })
    })?;
    drop(sqlite);
    drop(dir);
    Ok(Outcome {
        rows_written: s.rows_written,
        wall,
        windows: s.windows_committed,
        clean: report.is_clean(),
        error: s.error.clone(),
        rss_before_kib,
        verified: Some(verified as u64),
    })
}

async fn run_engine(args: &Args, stats: Arc<Stats>) -> Result<Outcome, BoxError> {
    let lines = JournalLines::new(args.seed, args.rows);
    let (start, last) = lines.cursor_range().ok_or("empty dataset")?;
    let def = journal_definition(&lines, args.max_rows);
    let name = def.name.clone();
    let mapper = Arc::new(def.mapper()?);
    let pol = policy(start, args.page_rows);
    let end = last + Duration::seconds(1);

    // Pre-generate every page: the records PeopleSoftSource would hand over (prefixes stripped).
    let mut pages = VecDeque::new();
    let mut i = 0u64;
    for window in Window::new(start, end).chunks(pol.max_window) {
        let range = lines.index_range(window.from, window.to);
        debug_assert_eq!(range.start, i);
        let records = range
            .map(|k| strip_alias_prefixes(&lines.row(k).to_record()))
            .collect::<Vec<_>>();
        i += records.len() as u64;
        pages.push_back((
            window,
            Page {
                records,
                truncated: false,
            },
        ));
    }
    let source = Arc::new(TimedSource {
        inner: Arc::new(MemoryPages {
            pages: Mutex::new(pages),
            latency: args.source_latency,
        }),
        stats: stats.clone(),
    });
    let sink = Arc::new(TimedSink {
        inner: Arc::new(ConfirmSink),
        latency: args.sink_latency,
        stats: stats.clone(),
    });
    let pipeline = Pipeline::builder("bench", sink)
        .checkpoints(Arc::new(MemoryCheckpointStore::new()))
        .audit(Arc::new(MemoryAuditLog::new()))
        .rejects(Arc::new(MemoryRejectStore::new()))
        .clock(Arc::new(ManualClock::new(end)))
        .stream(StreamConfig::new(name, source, mapper, pol).batch_size(args.batch_size))
        .build()?;

    let (_, rss_before_kib) = memory_kib();
    let t = Instant::now();
    let report = pipeline.run_cycle().await?;
    let wall = t.elapsed();
    let s = &report.streams[0];
    Ok(Outcome {
        rows_written: s.rows_written,
        wall,
        windows: s.windows_committed,
        clean: report.is_clean(),
        error: s.error.clone(),
        rss_before_kib,
        verified: None,
    })
}

fn report(args: &Args, stats: &Stats, o: &Outcome, hwm_kib: u64) {
    let wall = o.wall.as_secs_f64();
    let rows_per_s = o.rows_written as f64 / wall.max(1e-9);
    let source_s = Stats::secs(&stats.source_ns);
    let sink_s = Stats::secs(&stats.sink_ns);
    let pipelining = 100.0 * source_s.max(sink_s) / wall.max(1e-9);
    let mode = match args.mode {
        Mode::Full => "full",
        Mode::Engine => "engine",
    };
    println!(
        "bench_e2e: mode {mode}, {} rows, pages of {} rows (maxrows {}), batches of {}",
        args.rows, args.page_rows, args.max_rows, args.batch_size
    );
    println!(
        "  injected latency   source {} ms/page, sink {} ms/batch",
        args.source_latency.as_millis(),
        args.sink_latency.as_millis()
    );
    println!(
        "  rows written       {}{}",
        o.rows_written,
        o.verified
            .map(|v| format!(" (SQLite table holds {v})"))
            .unwrap_or_default()
    );
    println!("  windows            {}", o.windows);
    println!("  wall               {wall:.3} s");
    println!("  rows/s             {rows_per_s:.0}");
    println!(
        "  peak RSS           {:.1} MiB (RSS before run {:.1} MiB)",
        mib(hwm_kib),
        mib(o.rss_before_kib)
    );
    println!(
        "  source wait        {source_s:.3} s over {} pages ({} records)",
        stats.pages.load(Ordering::Relaxed),
        stats.records.load(Ordering::Relaxed)
    );
    println!(
        "  sink write         {sink_s:.3} s over {} batches",
        stats.batches.load(Ordering::Relaxed)
    );
    println!("  pipelining         {pipelining:.1} %");
    if let Some(e) = &o.error {
        println!("  error              {e}");
    }
    println!(
        "BENCH mode={mode} rows={} written={} wall_s={wall:.3} rows_per_s={rows_per_s:.0} peak_rss_mib={:.1} rss_before_mib={:.1} source_s={source_s:.3} sink_s={sink_s:.3} pipelining_pct={pipelining:.1} pages={} batches={} page_rows={} batch_size={} max_rows={} source_latency_ms={} sink_latency_ms={} sqlite_cache_mib={} clean={}",
        args.rows,
        o.rows_written,
        mib(hwm_kib),
        mib(o.rss_before_kib),
        stats.pages.load(Ordering::Relaxed),
        stats.batches.load(Ordering::Relaxed),
        args.page_rows,
        args.batch_size,
        args.max_rows,
        args.source_latency.as_millis(),
        args.sink_latency.as_millis(),
        args.sqlite_cache_mib,
        o.clean
    );
}
