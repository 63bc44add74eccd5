//! End-to-end throughput benchmark:
//!
//! ```text
//! cargo run --release --example bench_e2e -- [--mode full|engine|stages] [--rows N]
//!     [--source-latency-ms L] [--sink-latency-ms L] [--page-rows P] [--batch-size B]
//!     [--max-rows M] [--window-days D] [--seed S] [--sqlite-cache-mib C]
//! ```
//!
//! Runs ONE configuration per process (peak RSS cannot be reset) and prints a readable block
//! plus one machine-readable line starting with `BENCH`.
//!
//! # Modes
//!
//! - `full` (default): the PeopleSoft stand-in (`Dataset::journal_benchmark`, N journal lines,
//!   served over HTTP by `PeopleSoftServer` in a child process, this program started again
//!   with `--serve-standin`; `--server in-process` runs it on threads of this process
//!   instead, where its memory counts in the peak RSS) → the real
//!   `PeopleSoftSource` (HTTP + QAS JSON parsing + alias stripping) → the engine with the
//!   journal-lines `MappingMapper` → `SqliteSink` on a file in a temporary directory.
//! - `engine`: pages generated in memory BEFORE the clock starts (the records the
//!   `PeopleSoftSource` would deliver, alias prefixes already stripped) → engine +
//!   `MappingMapper` → a sink that only confirms. Runs on a `current_thread` Tokio runtime,
//!   so it measures engine + mapping on one core. Its peak RSS includes the pre-generated
//!   pages (printed separately as "RSS before run").
//! - `stages`: the real path of issue 12 and each of its stages alone, in one run. Defaults
//!   are the issue's: 200,000 journal lines, 30-day windows (`--window-days`), `maxrows`
//!   10,000 (`--max-rows`), batches of 10,000 (the engine's default; `--batch-size`);
//!   `--page-rows` is ignored. See "Stages mode" below.
//!
//! # Stages mode
//!
//! What `Dataset::journal_benchmark` offers differs from the issue's wording in two ways:
//! a journal line has 14 wire fields (mapped to the journal table's columns plus 5 lineage
//! columns; the first line of the output prints both counts), not 10 columns; and its journals
//! are one second apart (10 lines each), so 200k lines span about 5.6 hours. A 30-day window
//! therefore covers the whole history, its page reaches `maxrows`, and the engine bisects
//! (the real behaviour for a dense table) until a window is complete; the rest of the window
//! is then cut by the density measured so far before it is read. With the defaults, 5 of 40
//! requests reach 10,000 rows and are split, and 35 windows are kept, so 250k rows are served
//! for 200k kept (bisection alone needed 63 requests and served 510k). Every stage replays
//! exactly those requests.
//!
//! 1. Plan pass (untimed, not a stage): the engine over the real `PeopleSoftSource` with a
//!    confirming sink; a recording adapter notes every window read. A window is *kept* when the
//!    engine did not split it; kept windows must hold exactly N rows. The records generated in
//!    memory for the first kept window are checked equal to those the source delivers.
//! 2. `fetch only`: every request of the plan (split windows included) sent through the same
//!    `PeopleSoftClient` (`service_request` with the QAS URL of `PeopleSoftSource::request_for`:
//!    auth header, limiter, retry policy), the body read as text and dropped. This includes
//!    the stand-in's time to render the JSON, on the same two cores (in its own process).
//! 3. `fetch + parse`: every request of the plan through `PeopleSoftSource::read` (HTTP + QAS
//!    JSON parse + alias stripping), pages drained and dropped. `parse (derived)` is
//!    `fetch + parse` − `fetch only`.
//! 4. `map (in memory)`: for each kept window, its records are generated from the dataset
//!    before the clock starts, then mapped with the journal `MappingMapper` (`map_owned`) and
//!    completed as the engine does (row hash + lineage columns). No I/O. The QAS body parser is
//!    crate-private in `peoplesoft-client`, so this stage starts from parsed records, not from
//!    page bodies: parse cost is the derived line above.
//! 5. `sink only`: for each kept window, mapped rows are built before the clock starts and cut
//!    into batches as the engine cuts them (per window, at most `--batch-size` rows); the
//!    clock runs only inside `SqliteSink::prepare` and `SqliteSink::write` on a fresh file.
//!    The table is counted afterwards.
//! 6. `end to end`: exactly what `--mode full` runs, with the same windows and `maxrows`.
//!
//! Every stage's rows/s is N (rows kept) ÷ its seconds, so rates compare like with like even
//! though the fetch stages also transfer the split windows' rows. A stage's share is its time
//! ÷ (`fetch + parse` + `map` + `sink only`), the serial sum; `fetch only` and `parse
//! (derived)` split the `fetch + parse` share. Pipelining efficiency is the end-to-end rate ÷
//! the slowest of those three stages' rates (100 %: the pipeline is as fast as its slowest
//! stage). Peak RSS cannot be reset within a process: the table prints `VmHWM` (peak so far)
//! and `VmRSS` after each stage. Each isolated stage holds at most one window's records or
//! rows; the untimed plan pass (a whole engine run) already sets the first peak. The `BENCH`
//! line's `peak_rss_mib` is `VmHWM` after the end-to-end run: the peak of the whole process,
//! which here is the end-to-end run's own (it is the largest).
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
//! - `peak RSS`: `VmHWM` of this process (HTTP bodies and SQLite cache included in `full`
//!   mode; the stand-in server only with `--server in-process`).
//! - `source wait`: sum over pages of the time from the engine asking the source for the
//!   next page to the page arriving (HTTP round trip, server rendering and client-side
//!   parsing in `full` mode), measured by a timing adapter around the `Source`.
//! - `sink write`: sum over batches of the time inside `Sink::write` (injected latency
//!   included), measured by a timing adapter around the `Sink`.
//! - `pipelining`: max(source wait, sink write) ÷ wall, as a percentage: 100 % means the
//!   slower side was busy the whole time (the other side fully overlapped); with equal
//!   source and sink latencies and no overlap at all it would be about 50 %.

use std::collections::VecDeque;

// The allocator `ml-connector` is built with under `--features mimalloc`.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
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
    Stages,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Engine => "engine",
            Mode::Stages => "stages",
        }
    }
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
    /// The engine's widest window (`max_window`): `page_rows / 10` seconds in `full` and
    /// `engine` mode, `--window-days` (default 30) in `stages` mode.
    max_window: Duration,
    /// Where the PeopleSoft stand-in runs (`full` and `stages` modes).
    server: ServerPlace,
}

/// Where the PeopleSoft stand-in runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerPlace {
    /// A child process (this program with `--serve-standin`): the measured process holds only
    /// the connector, as against a real PeopleSoft, so its peak RSS is the connector's own.
    Process,
    /// Threads of this process: the stand-in's memory counts in the peak RSS.
    InProcess,
}

const USAGE: &str = "usage: bench_e2e [--mode full|engine|stages] [--rows N] [--source-latency-ms L] [--sink-latency-ms L] [--page-rows P] [--batch-size B] [--max-rows M] [--window-days D] [--seed S] [--sqlite-cache-mib C] [--server process|in-process]";

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
    let mut window_days: Option<u64> = None;
    let mut server = ServerPlace::Process;
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
                    "stages" => Mode::Stages,
                    other => {
                        return Err(format!(
                            "--mode: `{other}` is not full, engine or stages\n{USAGE}"
                        ))
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
            "--server" => {
                server = match value.as_str() {
                    "process" => ServerPlace::Process,
                    "in-process" => ServerPlace::InProcess,
                    other => {
                        return Err(format!(
                            "--server: `{other}` is not process or in-process\n{USAGE}"
                        ))
                    }
                }
            }
            "--window-days" => window_days = Some(num(&value)?.max(1)),
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
    if mode == Mode::Stages {
        // The issue's configuration: 30-day windows, maxrows 10,000, the engine's default
        // batch size (10,000); the engine bisects windows that reach maxrows.
        let max_rows = max_rows.unwrap_or(10_000);
        return Ok(Args {
            mode,
            rows,
            source_latency: StdDuration::from_millis(source_ms),
            sink_latency: StdDuration::from_millis(sink_ms),
            page_rows: u64::from(max_rows),
            batch_size: batch_size.unwrap_or(10_000).max(1),
            max_rows,
            seed,
            sqlite_cache_mib,
            max_window: Duration::days(window_days.unwrap_or(30) as i64),
            server,
        });
    }
    if window_days.is_some() {
        return Err(format!("--window-days is for --mode stages\n{USAGE}"));
    }
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
        max_window: Duration::seconds((page_rows / 10).max(1) as i64),
        server,
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

/// Window policy: from the first cursor, windows of at most `max_window`, no lookback or
/// settle lag (one cycle over a closed history).
fn policy(start: DateTime<Utc>, max_window: Duration) -> WindowPolicy {
    WindowPolicy::starting_at(start)
        .lookback(Duration::zero())
        .settle_lag(Duration::zero())
        .max_window(max_window)
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

/// The PeopleSoft stand-in serving the benchmark's journal lines, in a child process or in
/// this one.
enum StandIn {
    Child {
        child: std::process::Child,
        host: String,
        port: u16,
        node: String,
    },
    Local(PeopleSoftServer),
}

impl StandIn {
    fn start(args: &Args, dataset: &SharedDataset) -> Result<StandIn, BoxError> {
        if args.server == ServerPlace::InProcess {
            let server = PeopleSoftServer::start(dataset.clone());
            server.set_latency(args.source_latency);
            return Ok(StandIn::Local(server));
        }
        use std::io::BufRead as _;
        let mut child = std::process::Command::new(std::env::current_exe()?)
            .args([
                "--serve-standin".to_string(),
                args.seed.to_string(),
                args.rows.to_string(),
                args.source_latency.as_millis().to_string(),
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().ok_or("no stand-in stdout")?)
            .read_line(&mut line)?;
        let mut parts = line.split_whitespace();
        let (Some(host), Some(port), Some(node)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("the stand-in process said `{line}`").into());
        };
        Ok(StandIn::Child {
            host: host.to_string(),
            port: port.parse()?,
            node: node.to_string(),
            child,
        })
    }

    fn client(&self) -> peoplesoft_client::PeopleSoftClientBuilder {
        match self {
            StandIn::Child {
                host, port, node, ..
            } => StandInClient::default().builder(host.clone(), *port, node),
            StandIn::Local(server) => StandInClient::default().for_server(server),
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        if let StandIn::Child { child, .. } = self {
            // Closing its stdin ends the stand-in; wait so no process outlives the bench.
            drop(child.stdin.take());
            let _ = child.wait();
        }
    }
}

/// `--serve-standin SEED ROWS LATENCY_MS`: serves the journal lines until stdin closes.
fn serve_standin(args: &[String]) -> Result<(), BoxError> {
    let [seed, rows, latency_ms] = args else {
        return Err("--serve-standin SEED ROWS LATENCY_MS".into());
    };
    let dataset = SharedDataset::new(Dataset::journal_benchmark(seed.parse()?, rows.parse()?));
    let server = PeopleSoftServer::start(dataset);
    server.set_latency(StdDuration::from_millis(latency_ms.parse()?));
    println!("{} {} {}", server.host(), server.port(), server.node());
    use std::io::{Read as _, Write as _};
    std::io::stdout().flush()?;
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--serve-standin") {
        return serve_standin(&argv[2..]);
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    if args.mode == Mode::Stages {
        let ok = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(run_stages(&args))?;
        if !ok {
            eprintln!("bench_e2e: a stage was not clean or saw the wrong number of rows");
            std::process::exit(1);
        }
        return Ok(());
    }
    let stats = Arc::new(Stats::default());
    let outcome = match args.mode {
        Mode::Stages => unreachable!("handled above"),
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
    let server = StandIn::start(args, &dataset)?;
    // A local stand-in: no gap between requests (the engine reads one window at a time).
    let client = server.client().build()?;
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
            StreamConfig::new(name, source, mapper, policy(start, args.max_window))
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
    let pol = policy(start, args.max_window);
    let end = last + Duration::seconds(1);

    // Pre-generate every page: the records PeopleSoftSource would hand over (prefixes stripped).
    let mut pages = VecDeque::new();
    let mut i = 0u64;
    for window in Window::new(start, end).chunks(pol.max_window) {
        let range = lines.index_range(window.from, window.to);
        debug_assert_eq!(range.start, i);
        let records = shared_names(
            range
                .map(|k| strip_alias_prefixes(&lines.row(k).to_record()))
                .collect(),
        );
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
    let mode = args.mode.name();
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

// ----------------------------------------------------------------------------------------
// `stages` mode

/// One request the engine made in the plan pass.
#[derive(Debug, Clone)]
struct PlannedRequest {
    window: Window,
    rows: u64,
    truncated: bool,
}

/// The plan pass's source: the real `PeopleSoftSource`, recording every window read.
struct RecordingSource {
    inner: Arc<PeopleSoftSource>,
    log: Arc<Mutex<Vec<PlannedRequest>>>,
    after: Arc<AtomicU64>,
}

#[async_trait]
impl Source for RecordingSource {
    fn identity(&self) -> String {
        self.inner.identity()
    }

    fn read(&self, window: Window) -> PageStream<'_> {
        let log = self.log.clone();
        self.inner
            .read(window)
            .map(move |item| {
                if let Ok(page) = &item {
                    log.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(PlannedRequest {
                            window,
                            rows: page.records.len() as u64,
                            truncated: page.truncated,
                        });
                }
                item
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
        self.after.fetch_add(1, Ordering::Relaxed);
        self.inner.read_after(window, last).await
    }
}

/// One measured stage.
struct Stage {
    name: &'static str,
    rows: u64,
    secs: f64,
    /// `(VmHWM, VmRSS)` right after the stage.
    mem_kib: (u64, u64),
}

impl Stage {
    fn rate(&self) -> f64 {
        self.rows as f64 / self.secs.max(1e-9)
    }
}

/// What the engine appends to a mapped row (`StreamRun::complete`): the row hash and the
/// lineage columns, deleted-at NULL.
fn complete(
    mut row: sync_core::Row,
    run_id: &str,
    loaded_at: DateTime<Utc>,
    source: &str,
) -> sync_core::Row {
    let hash = sync_core::engine::row_hash(&row);
    row.push(sync_core::Value::String(hash));
    row.push(sync_core::Value::String(run_id.to_string()));
    row.push(sync_core::Value::Timestamp(loaded_at));
    row.push(sync_core::Value::String(source.to_string()));
    row.push(sync_core::Value::Null);
    row
}

/// The records `PeopleSoftSource` delivers for `window` (alias prefixes stripped), generated
/// from the dataset without I/O.
fn records_for(lines: &JournalLines, window: Window) -> Vec<sync_core::Record> {
    shared_names(
        lines
            .index_range(window.from, window.to)
            .map(|k| strip_alias_prefixes(&lines.row(k).to_record()))
            .collect(),
    )
}

/// The records with one shared set of field names, as `PeopleSoftSource` delivers a page.
fn shared_names(mut records: Vec<sync_core::Record>) -> Vec<sync_core::Record> {
    if let Some(names) = records.first().map(|r| r.names().clone()) {
        for r in &mut records {
            r.adopt_names(&names);
        }
    }
    records
}

/// Maps `records` and completes the rows as the engine does.
fn map_rows(
    mapper: &dyn Mapper,
    records: Vec<sync_core::Record>,
    run_id: &str,
    loaded_at: DateTime<Utc>,
    source: &str,
) -> Result<Vec<sync_core::Row>, BoxError> {
    let mut out = Vec::with_capacity(records.len());
    for record in records {
        let row = mapper
            .map_owned(record)
            .map_err(|(_, e)| format!("a record did not map ({} field errors)", e.len()))?;
        out.push(complete(row, run_id, loaded_at, source));
    }
    Ok(out)
}

async fn run_stages(args: &Args) -> Result<bool, BoxError> {
    let n = args.rows;
    let dataset = SharedDataset::new(Dataset::journal_benchmark(args.seed, n));
    let lines = dataset
        .read()
        .generated(TABLE_JOURNAL_LINES)
        .ok_or("no generated journal_lines table")?
        .clone();
    let (start, last) = lines.cursor_range().ok_or("empty dataset")?;
    let end = last + Duration::seconds(1);
    let server = StandIn::start(args, &dataset)?;
    let client = server.client().build()?;
    let def = journal_definition(&lines, args.max_rows);
    let name = def.name.clone();
    let mapper = def.mapper()?;
    let schema = mapper.schema().with_lineage();
    let ps = Arc::new(PeopleSoftSource::new(client.clone(), def.clone())?);
    let identity = ps.identity();
    let run_id = "bench-stages".to_string();
    let loaded_at = end;
    let mut ok = true;

    // 0. Plan pass (not a stage): the engine over the real source with a confirming sink,
    //    recording which windows it reads (it bisects windows whose page reaches maxrows).
    let log = Arc::new(Mutex::new(Vec::new()));
    let after = Arc::new(AtomicU64::new(0));
    let recording = Arc::new(RecordingSource {
        inner: ps.clone(),
        log: log.clone(),
        after: after.clone(),
    });
    let pipeline = Pipeline::builder("bench-plan", Arc::new(ConfirmSink))
        .checkpoints(Arc::new(MemoryCheckpointStore::new()))
        .audit(Arc::new(MemoryAuditLog::new()))
        .rejects(Arc::new(MemoryRejectStore::new()))
        .clock(Arc::new(ManualClock::new(end)))
        .stream(
            StreamConfig::new(
                name.clone(),
                recording,
                Arc::new(def.mapper()?),
                policy(start, args.max_window),
            )
            .batch_size(args.batch_size),
        )
        .build()?;
    let t = Instant::now();
    let plan_report = pipeline.run_cycle().await?;
    let plan_secs = t.elapsed().as_secs_f64();
    drop(pipeline);
    let plan: Vec<PlannedRequest> = log.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if !plan_report.is_clean() || plan_report.streams[0].rows_written != n {
        return Err(format!(
            "plan pass: not clean or wrong row count ({} rows, error {:?})",
            plan_report.streams[0].rows_written, plan_report.streams[0].error
        )
        .into());
    }
    if after.load(Ordering::Relaxed) > 0 {
        return Err("plan pass: the engine paged by key; stages mode does not replay that".into());
    }
    // A window is kept unless the engine split it (read a window inside it afterwards).
    let kept: Vec<Window> = plan
        .iter()
        .filter(|r| {
            !plan.iter().any(|o| {
                o.window != r.window && r.window.from <= o.window.from && o.window.to <= r.window.to
            })
        })
        .map(|r| r.window)
        .collect();
    let kept_rows: u64 = kept
        .iter()
        .map(|w| {
            let r = lines.index_range(w.from, w.to);
            r.end - r.start
        })
        .sum();
    let fetched_rows: u64 = plan.iter().map(|r| r.rows).sum();
    let truncated = plan.iter().filter(|r| r.truncated).count();
    if kept_rows != n {
        return Err(format!("plan pass: kept windows hold {kept_rows} rows, not {n}").into());
    }
    // The in-memory records are the ones the source delivers (checked on the first window).
    {
        let mut pages = ps.read(kept[0]);
        let mut served = Vec::new();
        while let Some(page) = pages.next().await {
            served.extend(page?.records);
        }
        if served != records_for(&lines, kept[0]) {
            return Err("the generated records differ from the ones the source delivers".into());
        }
    }
    let mut stages: Vec<Stage> = Vec::new();

    // 1. Fetch only: every request of the plan (split windows included), body read as text
    //    and dropped, through the same client (auth header, limiter, retry policy).
    let t = Instant::now();
    let mut bytes = 0u64;
    for r in &plan {
        let url = ps.request_for(&r.window).relative_url()?;
        let resp = client
            .service_request(
                peoplesoft_client::Method::GET,
                &url,
                None,
                peoplesoft_client::Idempotency::IdempotentNoTimeoutRetry,
            )
            .await?;
        if !resp.is_success() {
            return Err(format!("fetch only: HTTP {} for {}", resp.status, resp.url).into());
        }
        bytes += resp.body.len() as u64;
    }
    stages.push(Stage {
        name: "fetch only",
        rows: n,
        secs: t.elapsed().as_secs_f64(),
        mem_kib: memory_kib(),
    });

    // 2. Fetch + parse: the real source's pages (HTTP + QAS JSON parse + alias stripping),
    //    drained and dropped.
    let t = Instant::now();
    let mut parsed = 0u64;
    for r in &plan {
        let mut pages = ps.read(r.window);
        while let Some(page) = pages.next().await {
            parsed += page?.records.len() as u64;
        }
    }
    stages.push(Stage {
        name: "fetch + parse",
        rows: n,
        secs: t.elapsed().as_secs_f64(),
        mem_kib: memory_kib(),
    });
    if parsed != fetched_rows {
        eprintln!("fetch + parse: {parsed} records, the plan pass saw {fetched_rows}");
        ok = false;
    }
    drop(server);

    // 3. Map (in memory): each kept window's records, generated before its clock starts,
    //    mapped and completed (row hash + lineage) as the engine does.
    let mut secs = 0.0;
    let mut mapped = 0u64;
    for w in &kept {
        let records = records_for(&lines, *w);
        let t = Instant::now();
        let rows = map_rows(&mapper, records, &run_id, loaded_at, &identity)?;
        secs += t.elapsed().as_secs_f64();
        mapped += rows.len() as u64;
    }
    stages.push(Stage {
        name: "map (in memory)",
        rows: mapped,
        secs,
        mem_kib: memory_kib(),
    });
    if mapped != n {
        ok = false;
    }

    // 4. Sink only: batches built before their clock starts (as the engine cuts them: per
    //    kept window, at most --batch-size rows), written to a fresh SqliteSink.
    let dir = tempfile::tempdir()?;
    let sqlite =
        SqliteSink::open(dir.path().join("stages.db"))?.with_cache_mib(args.sqlite_cache_mib)?;
    let t = Instant::now();
    sqlite.prepare(&schema).await?;
    let mut secs = t.elapsed().as_secs_f64();
    let mut written = 0u64;
    for w in &kept {
        let mut rows = map_rows(
            &mapper,
            records_for(&lines, *w),
            &run_id,
            loaded_at,
            &identity,
        )?;
        while !rows.is_empty() {
            let rest = rows.split_off(rows.len().min(args.batch_size));
            let batch = Batch {
                rows,
                window: *w,
                run_id: run_id.clone(),
                stream: name.clone(),
                as_of: None,
            };
            let t = Instant::now();
            let receipt = sqlite.write(&schema, &batch).await?;
            secs += t.elapsed().as_secs_f64();
            written += receipt.rows_written;
            rows = rest;
        }
    }
    let table = schema.name.clone();
    let stored: i64 = sqlite.with_connection(|c| {
        c.query_row(&format!("SELECT COUNT(*) FROM \"{table}\""), [], |r| {
            r.get(0)
        })
    })?;
    stages.push(Stage {
        name: "sink only",
        rows: written,
        secs,
        mem_kib: memory_kib(),
    });
    drop(sqlite);
    drop(dir);
    if written != n || stored as u64 != n {
        eprintln!("sink only: {written} rows confirmed, {stored} stored, expected {n}");
        ok = false;
    }

    // 5. The whole pipeline, end to end (what `--mode full` runs), same windows and maxrows.
    let stats = Arc::new(Stats::default());
    let full = run_full(args, stats.clone()).await?;
    let full_stage = Stage {
        name: "end to end",
        rows: full.rows_written,
        secs: full.wall.as_secs_f64(),
        mem_kib: memory_kib(),
    };
    if !full.clean || full.rows_written != n || full.verified != Some(n) {
        eprintln!(
            "end to end: clean {}, {} rows written, {:?} stored, error {:?}",
            full.clean, full.rows_written, full.verified, full.error
        );
        ok = false;
    }

    // Report.
    let fetch = &stages[0];
    let fetch_parse = &stages[1];
    let map = &stages[2];
    let sink = &stages[3];
    let parse_secs = (fetch_parse.secs - fetch.secs).max(0.0);
    let total = fetch_parse.secs + map.secs + sink.secs;
    let share = |s: f64| 100.0 * s / total.max(1e-9);
    let chain = [fetch_parse, map, sink];
    let slowest = chain
        .iter()
        .copied()
        .min_by(|a, b| a.rate().total_cmp(&b.rate()))
        .unwrap_or(fetch_parse);
    let efficiency = 100.0 * full_stage.rate() / slowest.rate().max(1e-9);
    let serial_rate = n as f64 / total.max(1e-9);
    let wire_fields = lines.spec().fields.len();
    let columns = mapper.schema().columns.len();
    println!(
        "bench_e2e: mode stages, {n} journal lines ({wire_fields} wire fields -> {columns} mapped columns + 5 lineage), {}-day windows, maxrows {}, batches of {}",
        args.max_window.num_days(),
        args.max_rows,
        args.batch_size
    );
    println!(
        "  plan pass          {} requests ({truncated} reached maxrows and were split), {} kept windows, {fetched_rows} rows served ({} in split windows, re-read later), {:.1} MiB of JSON; {plan_secs:.3} s (untimed)",
        plan.len(),
        kept.len(),
        fetched_rows - n,
        bytes as f64 / 1048576.0
    );
    println!(
        "  {:<22} {:>9} {:>9} {:>11} {:>7}   {:>14} {:>12}",
        "stage", "rows", "seconds", "rows/s", "share", "VmHWM so far", "VmRSS"
    );
    let line = |name: &str, rows: u64, secs: f64, share: Option<f64>, mem: Option<(u64, u64)>| {
        println!(
            "  {:<22} {:>9} {:>9.3} {:>11.0} {:>7}   {:>14} {:>12}",
            name,
            rows,
            secs,
            rows as f64 / secs.max(1e-9),
            share.map(|s| format!("{s:.1} %")).unwrap_or_default(),
            mem.map(|m| format!("{:.1} MiB", mib(m.0)))
                .unwrap_or_default(),
            mem.map(|m| format!("{:.1} MiB", mib(m.1)))
                .unwrap_or_default(),
        )
    };
    line(
        fetch.name,
        n,
        fetch.secs,
        Some(share(fetch.secs)),
        Some(fetch.mem_kib),
    );
    line(
        "parse (derived)",
        n,
        parse_secs,
        Some(share(parse_secs)),
        None,
    );
    line(
        fetch_parse.name,
        n,
        fetch_parse.secs,
        Some(share(fetch_parse.secs)),
        Some(fetch_parse.mem_kib),
    );
    line(
        map.name,
        map.rows,
        map.secs,
        Some(share(map.secs)),
        Some(map.mem_kib),
    );
    line(
        sink.name,
        sink.rows,
        sink.secs,
        Some(share(sink.secs)),
        Some(sink.mem_kib),
    );
    line("sum of stages (serial)", n, total, Some(100.0), None);
    line(
        full_stage.name,
        full_stage.rows,
        full_stage.secs,
        None,
        Some(full_stage.mem_kib),
    );
    println!(
        "  slowest stage      {} ({:.0} rows/s); end to end runs at {efficiency:.1} % of it (pipelining efficiency); serial sum would give {serial_rate:.0} rows/s",
        slowest.name,
        slowest.rate()
    );
    println!(
        "  end to end detail  source wait {:.3} s over {} pages, sink write {:.3} s over {} batches, {} windows",
        Stats::secs(&stats.source_ns),
        stats.pages.load(Ordering::Relaxed),
        Stats::secs(&stats.sink_ns),
        stats.batches.load(Ordering::Relaxed),
        full.windows
    );
    println!(
        "BENCH mode=stages rows={n} requests={} split={truncated} kept_windows={} served_rows={fetched_rows} fetch_s={:.3} parse_s={parse_secs:.3} fetch_parse_s={:.3} map_s={:.3} sink_s={:.3} e2e_s={:.3} e2e_rows_per_s={:.0} slowest={} efficiency_pct={efficiency:.1} peak_rss_mib={:.1} max_rows={} window_days={} batch_size={} sqlite_cache_mib={} clean={ok}",
        plan.len(),
        kept.len(),
        fetch.secs,
        fetch_parse.secs,
        map.secs,
        sink.secs,
        full_stage.secs,
        full_stage.rate(),
        slowest.name.replace(' ', "_"),
        mib(full_stage.mem_kib.0),
        args.max_rows,
        args.max_window.num_days(),
        args.batch_size,
        args.sqlite_cache_mib,
    );
    Ok(ok)
}
