//! Write-back of master data (vendors, customers) from Databricks into PeopleSoft:
//! [`PeopleSoftSink`], a sync-core [`Sink`] that writes through Component Interface REST
//! (CIRT) services.
//!
//! For every row of a batch the sink decides, record by record:
//!
//! 1. **Echo suppression.** A row last modified by the integration itself (its
//!    [`EchoRule`] identity in the row's modified-by column) is `unchanged`, with no request.
//! 2. **Idempotence.** A row whose governed-field hash equals the stored [`Baseline`] (what
//!    the last sync, forward or reverse, saw) is `unchanged`, with no request. Re-running a
//!    batch therefore skips every record already applied.
//! 3. **Get** the current PeopleSoft record. Equal values → `unchanged`.
//! 4. **Never older than PeopleSoft.** With a [`modified_at`](CiTarget::modified_at) column,
//!    when PeopleSoft's current version (the Get's [stamp](CiTarget::stamp), or the time the
//!    baseline first saw the current content) is newer than the row's change, nothing is sent
//!    whatever the policy: `conflict` (`held` under `HoldForReview`), with both versions in
//!    [`RecordOutcome::peoplesoft_version`] / [`RecordOutcome::row_version`].
//! 5. **Conflict control.** If PeopleSoft changed the record since the baseline (governed
//!    hash, or the last-update stamp with [`ChangeDetection::Stamp`]), or there is no baseline
//!    for an existing record, the [`ConflictPolicy`] decides: `DatabricksWins` updates,
//!    `PeopleSoftWins` skips with a `conflict` outcome, `HoldForReview` skips with `held`.
//!    PeopleSoft changes are never overwritten unless the policy says so.
//! 6. **Create** (POST) when the record does not exist, **Update** (PUT) otherwise, and
//!    record the new baseline.
//!
//! Every record gets a [`RecordOutcome`] (created / updated / unchanged / conflict / held /
//! rejected / failed) with a reason and field diffs, collected in a [`WriteReport`]:
//! summarised in the engine [`Receipt`], available from [`PeopleSoftSink::last_report`] and
//! an [`on_report`](PeopleSoftSinkBuilder::on_report) hook, and serialisable to JSON (for
//! audit annotations, [`WriteReport::annotations`], or a JSON-lines file,
//! [`WriteReport::to_json_lines`]).
//!
//! ## Failures
//!
//! - 401/403 stop the batch at once after exactly one request:
//!   [`FailureKind::StopStream`], never retried
//!   (repeated failed logins can lock the OPRID).
//! - PeopleSoft validation errors become `rejected` records carrying PeopleSoft's message:
//!   `<IBResponse type="error">` bodies (with any HTTP status, 200 included), JSON bodies whose
//!   `status` is not a success value, and 4xx/500 answers with a message. The batch goes on.
//! - Transient failures (408, 429, 502–504, a 5xx without a message, gateway HTML pages,
//!   timeouts) are retried **per record**: after a round over the batch, only the failed
//!   records are processed again (starting again from the Get, so a Create that did reach
//!   PeopleSoft is not sent twice), up to [`max_attempts`](PeopleSoftSinkBuilder::max_attempts)
//!   rounds. Records still failing are `failed` and `write` returns a transient error; the
//!   engine replays the batch later and records already applied come back `unchanged`.
//!   Below that, every request goes through the [`PeopleSoftClient`] the sink was built
//!   with ([`service_request`](PeopleSoftClient::service_request)): the same credentials and
//!   token cache, per-host limiter, blackout windows and
//!   [`RetryPolicy`](sync_core::http::RetryPolicy) as the forward direction. Writes are sent
//!   as non-idempotent, so the HTTP layer repeats a POST/PUT only on 429/503 or a failed
//!   connect.
//!
//! Records are processed one at a time, in batch order: PeopleSoft is shared with the
//! business and the default per-host limit is one request in flight anyway.
//!
//! ## Dry run
//!
//! With [`dry_run(true)`](PeopleSoftSinkBuilder::dry_run) the sink still reads (Get) to
//! compute what would change, reports `created` / `updated` with field diffs, and sends no
//! POST or PUT and stores no baseline. Its receipt has zero rows written. Run a dry run with a
//! throwaway checkpoint store (for example sync-core's `MemoryCheckpointStore`), or the engine
//! will consider the previewed windows done.
//!
//! ## Baselines and the forward sync
//!
//! Baselines live in a [`BaselineStore`]: [`MemoryBaselineStore`] or
//! [`JsonFileBaselineStore`] (atomic replace). The forward sync seeds them with
//! [`PeopleSoftSink::seed_baselines`] (or by wrapping its sink in [`BaselineSeedingSink`]), so
//! content that came from PeopleSoft is not written back (no ping-pong) and existing records
//! have a known starting point. Without a baseline, an existing PeopleSoft record that
//! differs from the row is treated as a conflict (a PeopleSoft change cannot be ruled out),
//! unless the Get's stamp shows PeopleSoft's version predates the row's change. A seeded
//! baseline keeps the time its content was first seen (seeding the same content again does
//! not move it), so a PeopleSoft edit the forward sync brought in after a steward's change
//! never counts as the version that change was based on: set
//! [`modified_at`](CiTarget::modified_at), or a seeded baseline is trusted as before.
//! Baselines are flushed after each round of a batch; if a crash loses some, the next run
//! reads PeopleSoft, finds the values equal and records them again.
//!
//! ## What is inferred and configurable
//!
//! Oracle documents that "Create Component Interface-Based REST Services" generates a
//! service `CIRT_<CI>` with operations `_C_POST` (Create), `_G_GET` (Get), `_F_GET` (Find),
//! `_U_PUT` (Update) and `_UD_PUT` (UpdateData). Oracle does **not** document the JSON
//! payloads, and the delivered vendor/customer CI names vary by release and site. So every
//! one of these is a per-site setting of [`CiTarget`], read from the target's WADL/OpenAPI:
//!
//! - the CI name and the URL templates of Get, Create and Update, including operation
//!   versions and where keys go (path segments or query string):
//!   [`CiTarget::cirt`] only *guesses* `CIRT_<CI>_G_GET.v1/{K1}/{K2}`,
//!   `CIRT_<CI>_C_POST.v1`, `CIRT_<CI>_U_PUT.v1`;
//! - the key fields and the column → CI field map ([`FieldMap`]);
//! - the payload layout: an envelope around the fields in requests and the path to the
//!   fields in responses ([`PayloadShape`]); flat objects by default;
//! - how a JSON error body looks ([`ErrorBodyRules`]) and which Get messages mean "not found";
//! - the last-update stamp field (e.g. `LASTUPDDTTM`, not confirmed on VENDOR/CUSTOMER) and
//!   the PeopleSoft time zone.
//!
//! Values are rendered exactly: decimals as strings with their scale (`"1234.50"`), dates
//! `YYYY-MM-DD`, timestamps `YYYY-MM-DD-HH.MM.SS.ffffff` in the target's zone, booleans
//! `Y`/`N`, integers as JSON numbers, NULL as JSON `null`. When comparing, blank strings
//! (PeopleSoft's single space) equal NULL and decimals compare by value.
//!
//! ## Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use peoplesoft_client::writeback::{
//!     CiTarget, ConflictPolicy, JsonFileBaselineStore, PeopleSoftSink, RecordAction,
//! };
//! use peoplesoft_client::{Connection, Credentials, PeopleSoftClient};
//! use secrecy::SecretString;
//! use sync_core::{Batch, ColumnDef, ColumnType, Sink, TableSchema, Value, Window};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let conn = Connection::builder("erp.example.com", 443, "PSFT_EP").build()?;
//! let creds = Credentials::basic("MLC_WRITER", SecretString::from(std::env::var("PS_PASSWORD")?));
//! // Load protection, limiter and clock are the client's (share one client per node).
//! let client = PeopleSoftClient::builder(conn, creds).build()?;
//!
//! // Names below are this site's; check them against the CIRT service's WADL.
//! let vendors = CiTarget::cirt("VNDR_ID", 1, &[("setid", "SETID"), ("vendor_id", "VENDOR_ID")])
//!     .field("name", "NAME1")
//!     .field("status", "VENDOR_STATUS")
//!     .echo_oprid("last_modified_by", "MLC_SYNC")
//!     .conflict_policy(ConflictPolicy::HoldForReview);
//!
//! let sink = PeopleSoftSink::builder(client)
//!     .target("vendor_master", vendors)
//!     .baselines(Arc::new(JsonFileBaselineStore::new("state/vendor_baselines.json")))
//!     .build()?;
//!
//! let schema = TableSchema {
//!     name: "vendor_master".into(),
//!     columns: vec![
//!         ColumnDef::new("setid", ColumnType::String),
//!         ColumnDef::new("vendor_id", ColumnType::String),
//!         ColumnDef::new("name", ColumnType::String),
//!         ColumnDef::new("status", ColumnType::String),
//!         ColumnDef::new("last_modified_by", ColumnType::String),
//!     ],
//!     primary_key: vec!["setid".into(), "vendor_id".into()],
//!     cursor_column: None,
//!     write_mode: Default::default(),
//!     effective_dating: None,
//! };
//! let batch = Batch {
//!     rows: vec![vec![
//!         Value::String("SHARE".into()),
//!         Value::String("0000000042".into()),
//!         Value::String("Acme Corp".into()),
//!         Value::String("A".into()),
//!         Value::String("jane@example.com".into()),
//!     ]],
//!     window: Window::new("2026-01-01T00:00:00Z".parse()?, "2026-01-02T00:00:00Z".parse()?),
//!     run_id: "run-1".into(),
//!     stream: "vendor_master".into(),
//!     as_of: None,
//! };
//!
//! // Through the engine (`Arc<dyn Sink>`) or directly, with the per-record report:
//! let report = sink.write_report(&schema, &batch).await;
//! for r in report.records.iter().filter(|r| r.action == RecordAction::Held) {
//!     println!("held {:?}: {}", r.key, r.reason);
//! }
//! let receipt = sink.write(&schema, &batch).await?; // the second run is all `unchanged`
//! println!("{} rows accepted", receipt.rows_written);
//! # Ok(()) }
//! ```

mod baseline;
mod config;
mod decision;
mod payload;
mod report;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{Map, Value as Json};
use sync_core::http::Idempotency;
use sync_core::{Batch, ConnectorError, FailureKind, Receipt, Row, Sink, TableSchema, Window};

pub use baseline::{
    Baseline, BaselineOrigin, BaselineStore, BaselineStoreError, JsonFileBaselineStore,
    MemoryBaselineStore,
};
pub use config::{
    ChangeDetection, CiTarget, ConflictPolicy, EchoRule, ErrorBodyRules, FieldMap, PayloadShape,
    StampField,
};
pub use report::{BatchStop, FieldChange, RecordAction, RecordOutcome, WriteReport};

use crate::client::{PeopleSoftClient, ServiceResponse};
use crate::error::{ConfigError, Error};
use decision::{decide, Current, Decision, Facts};
use payload::{classify, locate, same, value_text, Answer, Compiled, Prepared};

/// A callback that receives every [`WriteReport`].
pub type ReportHook = Arc<dyn Fn(&WriteReport) + Send + Sync>;

/// Writes vendor/customer master changes into PeopleSoft through CIRT services, with
/// conflict control, echo suppression, per-record outcomes, partial retry and dry run.
/// See the [module documentation](self).
///
/// Cheap to clone. `Debug` never shows credentials.
#[derive(Clone)]
pub struct PeopleSoftSink {
    inner: Arc<Inner>,
}

struct Inner {
    client: PeopleSoftClient,
    targets: BTreeMap<String, CiTarget>,
    store: Arc<dyn BaselineStore>,
    dry_run: bool,
    max_attempts: u32,
    retry_delay: Duration,
    on_report: Option<ReportHook>,
    last_report: Mutex<Option<WriteReport>>,
}

impl fmt::Debug for PeopleSoftSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeopleSoftSink")
            .field("client", &self.inner.client)
            .field("targets", &self.inner.targets.keys().collect::<Vec<_>>())
            .field("store", &self.inner.store)
            .field("dry_run", &self.inner.dry_run)
            .field("max_attempts", &self.inner.max_attempts)
            .finish_non_exhaustive()
    }
}

/// Builder for [`PeopleSoftSink`].
pub struct PeopleSoftSinkBuilder {
    client: PeopleSoftClient,
    targets: BTreeMap<String, CiTarget>,
    store: Arc<dyn BaselineStore>,
    dry_run: bool,
    max_attempts: u32,
    retry_delay: Duration,
    on_report: Option<ReportHook>,
}

impl fmt::Debug for PeopleSoftSinkBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeopleSoftSinkBuilder")
            .field("client", &self.client)
            .field("targets", &self.targets.keys().collect::<Vec<_>>())
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

impl PeopleSoftSinkBuilder {
    /// Writes batches of `stream` (the [`Batch::stream`] name) to `target`. When only one
    /// target is configured it serves every stream.
    pub fn target(mut self, stream: impl Into<String>, target: CiTarget) -> Self {
        self.targets.insert(stream.into(), target);
        self
    }

    /// Where baselines are kept (default: a new [`MemoryBaselineStore`], which forgets them
    /// at exit; use [`JsonFileBaselineStore`] in production).
    pub fn baselines(mut self, store: Arc<dyn BaselineStore>) -> Self {
        self.store = store;
        self
    }

    /// Dry run: read and report, never POST/PUT, never store baselines (default false).
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Rounds per batch for records that fail transiently (default 3, at least 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Pause before each retry round (default 5 s, doubled per round).
    pub fn retry_delay(mut self, d: Duration) -> Self {
        self.retry_delay = d;
        self
    }

    /// Called with every batch's report (for audit annotations or a JSON-lines file).
    pub fn on_report(mut self, f: impl Fn(&WriteReport) + Send + Sync + 'static) -> Self {
        self.on_report = Some(Arc::new(f));
        self
    }

    /// Validates every target and builds the sink.
    pub fn build(self) -> Result<PeopleSoftSink, Error> {
        if self.targets.is_empty() {
            return Err(
                ConfigError::new("writeback.targets", "", "configure at least one target").into(),
            );
        }
        for t in self.targets.values() {
            t.validate()?;
        }
        Ok(PeopleSoftSink {
            inner: Arc::new(Inner {
                client: self.client,
                targets: self.targets,
                store: self.store,
                dry_run: self.dry_run,
                max_attempts: self.max_attempts,
                retry_delay: self.retry_delay,
                on_report: self.on_report,
                last_report: Mutex::new(None),
            }),
        })
    }
}

/// What processing one record led to.
enum Step {
    Done(RecordOutcome, Option<(String, Baseline)>),
    Transient(BTreeMap<String, String>, String),
    Stop(FailureKind, String),
}

fn outcome(
    key: &BTreeMap<String, String>,
    action: RecordAction,
    reason: impl Into<String>,
) -> RecordOutcome {
    RecordOutcome {
        key: key.clone(),
        action,
        reason: reason.into(),
        peoplesoft_message: None,
        changes: Vec::new(),
        attempts: 1,
        peoplesoft_version: None,
        row_version: None,
    }
}

/// Fills in the versions an outcome does not carry yet.
fn with_versions(step: Step, peoplesoft: Option<String>, row: Option<String>) -> Step {
    match step {
        Step::Done(mut o, b) => {
            if o.peoplesoft_version.is_none() {
                o.peoplesoft_version = peoplesoft;
            }
            if o.row_version.is_none() {
                o.row_version = row;
            }
            Step::Done(o, b)
        }
        other => other,
    }
}

/// What the decision needs to know about PeopleSoft's current record (`None`: missing): the
/// fields a create or update would change, and the record's governed hash and stamp.
fn current_of(
    c: &Compiled<'_>,
    rec: &Prepared,
    current_json: Option<&Map<String, Json>>,
) -> Current {
    match current_json {
        None => {
            let mut changes = c.key_changes(rec);
            changes.extend(rec.desired.iter().map(|(f, v, _)| FieldChange {
                field: f.clone(),
                from: None,
                to: value_text(v, c),
            }));
            Current::Missing { changes }
        }
        Some(fields) => {
            let current = c.current(fields);
            let changes = current
                .iter()
                .zip(&rec.desired)
                .filter(|((_, cur, _), (_, want, _))| !same(cur, want))
                .map(|((f, _, raw), (_, want, _))| FieldChange {
                    field: f.clone(),
                    from: raw.clone(),
                    to: value_text(want, c),
                })
                .collect();
            Current::Found {
                hash: payload::governed_hash(current.iter().map(|(f, v, _)| (f.as_str(), v))),
                stamp: c.stamp_of(fields),
                changes,
            }
        }
    }
}

impl PeopleSoftSink {
    /// Starts a builder that sends every request through `client`: its credentials (and
    /// token cache), load protection, per-host limiter and blackout windows apply, and its
    /// clock dates the baselines. Share one client per node between the forward sync and the
    /// write-back, so both draw on one token and one request budget.
    pub fn builder(client: PeopleSoftClient) -> PeopleSoftSinkBuilder {
        PeopleSoftSinkBuilder {
            client,
            targets: BTreeMap::new(),
            store: Arc::new(MemoryBaselineStore::new()),
            dry_run: false,
            max_attempts: 3,
            retry_delay: Duration::from_secs(5),
            on_report: None,
        }
    }

    /// True in dry-run mode.
    pub fn is_dry_run(&self) -> bool {
        self.inner.dry_run
    }

    /// The report of the most recent batch.
    pub fn last_report(&self) -> Option<WriteReport> {
        self.inner
            .last_report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn target_for(&self, stream: &str) -> Option<&CiTarget> {
        let t = &self.inner.targets;
        t.get(stream)
            .or_else(|| (t.len() == 1).then(|| t.values().next()).flatten())
    }

    /// Reads one record of `stream`'s target with its Get operation, to prove the CIRT
    /// service answers (host, node, service name, version, permissions). `key` gives CI key
    /// field → value; missing key fields get a value no record has.
    ///
    /// `Ok(true)`: the record exists; `Ok(false)`: PeopleSoft answered "no such record".
    /// `Err` says what went wrong (a refusal, a gateway error, a 401/403, which latches the
    /// client like any other request). Nothing is written.
    pub async fn check_get(&self, stream: &str, key: &[(String, String)]) -> Result<bool, String> {
        let target = self
            .target_for(stream)
            .ok_or_else(|| format!("no write-back target for stream `{stream}`"))?;
        let mut url = String::new();
        let mut rest = target.get.as_str();
        while let Some(open) = rest.find('{') {
            url.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or("unclosed `{` in the Get template")?;
            let name = &after[..close];
            let value = key
                .iter()
                .find(|(f, _)| f == name)
                .map(|(_, v)| v.as_str())
                .unwrap_or("MLC-CHECK-NO-SUCH-KEY");
            url.push_str(&crate::qas::encode(value));
            rest = &after[close + 1..];
        }
        url.push_str(rest);
        let resp = self
            .inner
            .client
            .service_request(Method::GET, &url, None, Idempotency::Idempotent)
            .await
            .map_err(|e| e.to_string())?;
        match classify(&resp, &target.error_body, true, &target.not_found_messages) {
            Answer::Ok(j) if j.is_null() => Ok(false),
            Answer::Ok(_) => Ok(true),
            Answer::NotFound => Ok(false),
            Answer::Rejected(m) => Err(format!("PeopleSoft refused the Get {url}: {m}")),
            Answer::Transient(m) => Err(format!("the Get {url} failed: {m}")),
        }
    }

    /// Records baselines from rows the **forward** sync loaded (PeopleSoft → Databricks), so
    /// the same content is never written back and existing records have a known starting
    /// point. `rows` are aligned with `schema`, which must contain the target's key and
    /// governed columns (and the stamp column, if configured). Returns how many baselines were
    /// stored; rows with an empty key are skipped.
    pub async fn seed_baselines(
        &self,
        stream: &str,
        schema: &TableSchema,
        rows: &[Row],
    ) -> Result<usize, BaselineStoreError> {
        let target = self.target_for(stream).ok_or_else(|| {
            BaselineStoreError(format!("no write-back target for stream `{stream}`"))
        })?;
        let compiled = Compiled::for_seeding(target, schema).map_err(BaselineStoreError)?;
        let now = self.inner.client.clock().now();
        let entries: Vec<(String, Baseline)> = rows
            .iter()
            .filter_map(|row| {
                let rec = compiled.prepare(row).ok()?;
                Some((
                    rec.key_id,
                    Baseline {
                        hash: rec.hash.value,
                        stamp: compiled.row_stamp(row),
                        origin: BaselineOrigin::Forward,
                        recorded_at: now,
                    },
                ))
            })
            .collect();
        // A baseline says since when PeopleSoft has had this content: when the stored one
        // already has it, keep it (and its earlier time), so a later forward cycle does not
        // make old content look newer, nor newer content look accepted.
        let keys: Vec<String> = entries.iter().map(|(k, _)| k.clone()).collect();
        let stored = self.inner.store.get_many(stream, &keys).await?;
        let mut changed = Vec::with_capacity(entries.len());
        for (key, b) in entries {
            match stored.get(&key) {
                Some(old) if old.hash == b.hash && (b.stamp.is_none() || old.stamp == b.stamp) => {}
                _ => changed.push((key, b)),
            }
        }
        let n = changed.len();
        self.inner.store.put_many(stream, changed).await?;
        Ok(n)
    }

    /// Processes one batch and returns the per-record report (also kept as
    /// [`last_report`](Self::last_report) and passed to the report hook). [`Sink::write`]
    /// is this plus the mapping of the report onto a receipt or an error.
    pub async fn write_report(&self, schema: &TableSchema, batch: &Batch) -> WriteReport {
        let report = match self.target_for(&batch.stream) {
            Some(target) => self.run(target, schema, batch).await,
            None => WriteReport {
                run_id: batch.run_id.clone(),
                stream: batch.stream.clone(),
                ci: String::new(),
                dry_run: self.inner.dry_run,
                records: Vec::new(),
                stopped: Some(BatchStop {
                    kind: FailureKind::Permanent,
                    message: format!(
                        "no PeopleSoft write-back target is configured for stream `{}`",
                        batch.stream
                    ),
                }),
            },
        };
        if let Some(hook) = &self.inner.on_report {
            hook(&report);
        }
        *self
            .inner
            .last_report
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(report.clone());
        report
    }

    async fn run(&self, target: &CiTarget, schema: &TableSchema, batch: &Batch) -> WriteReport {
        let mut report = WriteReport {
            run_id: batch.run_id.clone(),
            stream: batch.stream.clone(),
            ci: target.ci.clone(),
            dry_run: self.inner.dry_run,
            records: Vec::new(),
            stopped: None,
        };
        let compiled = match Compiled::new(target, schema) {
            Ok(c) => c,
            Err(message) => {
                report.stopped = Some(BatchStop {
                    kind: FailureKind::Permanent,
                    message: format!("write-back target `{}`: {message}", target.ci),
                });
                return report;
            }
        };
        // The stored baselines of the whole batch in one call (a store in a database answers
        // with one query, not one per record).
        let keys: Vec<String> = batch
            .rows
            .iter()
            .filter_map(|row| compiled.prepare(row).ok().map(|rec| rec.key_id))
            .collect();
        let stored = match self.inner.store.get_many(&batch.stream, &keys).await {
            Ok(stored) => stored,
            Err(e) => {
                report.stopped = Some(BatchStop {
                    kind: FailureKind::Transient,
                    message: e.to_string(),
                });
                return report;
            }
        };
        let n = batch.rows.len();
        let mut outcomes: Vec<Option<RecordOutcome>> = vec![None; n];
        let mut attempts = vec![0u32; n];
        let mut fresh: HashMap<String, Baseline> = HashMap::new();
        let mut pending: Vec<(usize, BTreeMap<String, String>, String)> = (0..n)
            .map(|i| (i, BTreeMap::new(), String::new()))
            .collect();
        for round in 1..=self.inner.max_attempts {
            let mut again = Vec::new();
            let mut baselines: Vec<(String, Baseline)> = Vec::new();
            let mut stop = None;
            for (i, _, _) in pending {
                attempts[i] += 1;
                match self
                    .process(&compiled, &batch.rows[i], &fresh, &stored)
                    .await
                {
                    Step::Done(mut o, b) => {
                        o.attempts = attempts[i];
                        outcomes[i] = Some(o);
                        if let Some((k, b)) = b {
                            fresh.insert(k.clone(), b.clone());
                            baselines.push((k, b));
                        }
                    }
                    Step::Transient(key, message) => {
                        tracing::warn!(stream = %batch.stream, ?key, round, "write-back record failed: {message}");
                        again.push((i, key, message));
                    }
                    Step::Stop(kind, message) => {
                        stop = Some(BatchStop { kind, message });
                        break;
                    }
                }
            }
            if !self.inner.dry_run {
                if let Err(e) = self.inner.store.put_many(&batch.stream, baselines).await {
                    stop.get_or_insert(BatchStop {
                        kind: FailureKind::Transient,
                        message: e.to_string(),
                    });
                }
            }
            if stop.is_some() {
                // Records that failed transiently earlier in this round stay visible.
                for (i, key, message) in again {
                    let mut o = outcome(
                        &key,
                        RecordAction::Failed,
                        format!("not retried, the batch stopped: {message}"),
                    );
                    o.peoplesoft_message = Some(message);
                    o.attempts = attempts[i];
                    outcomes[i] = Some(o);
                }
                report.stopped = stop;
                report.records = outcomes.into_iter().flatten().collect();
                return report;
            }
            pending = again;
            if pending.is_empty() {
                break;
            }
            if round < self.inner.max_attempts {
                let delay = self
                    .inner
                    .retry_delay
                    .saturating_mul(2u32.saturating_pow(round - 1));
                tokio::time::sleep(delay).await;
            }
        }
        for (i, key, message) in pending {
            let mut o = outcome(
                &key,
                RecordAction::Failed,
                format!("still failing after {} attempts: {message}", attempts[i]),
            );
            o.peoplesoft_message = Some(message);
            o.attempts = attempts[i];
            outcomes[i] = Some(o);
        }
        report.records = outcomes.into_iter().flatten().collect();
        report
    }

    /// Turns a transport-level error into a step: 401/403, token and blackout failures
    /// stop the batch; everything else is a transient per-record failure.
    fn error_step(key: &BTreeMap<String, String>, e: Error) -> Step {
        match e {
            e @ Error::AuthRejected { .. } => Step::Stop(FailureKind::StopStream, e.to_string()),
            e @ (Error::Token { .. }
            | Error::Blackout { .. }
            | Error::Config(_)
            | Error::AuthLatched { .. }
            | Error::HostUnreachable { .. }) => Step::Stop(e.failure_kind(), e.to_string()),
            e => Step::Transient(key.clone(), e.to_string()),
        }
    }

    /// Sends one request for a record through the client. A URL that cannot be filled in or
    /// would leave the node rejects the record (`"{what} URL: …"`); other errors become steps
    /// as in [`error_step`](Self::error_step).
    async fn call(
        &self,
        key: &BTreeMap<String, String>,
        what: impl fmt::Display,
        relative_url: Result<String, String>,
        method: Method,
        body: Option<&Json>,
        idempotency: Idempotency,
    ) -> Result<ServiceResponse, Step> {
        let rejected = |why: String| {
            Step::Done(
                outcome(key, RecordAction::Rejected, format!("{what} URL: {why}")),
                None,
            )
        };
        let relative_url = relative_url.map_err(rejected)?;
        match self
            .inner
            .client
            .service_request(method, &relative_url, body, idempotency)
            .await
        {
            Ok(r) => Ok(r),
            Err(Error::Config(e)) => Err(rejected(e.to_string())),
            Err(e) => Err(Self::error_step(key, e)),
        }
    }

    /// Decides and applies one record. `fresh` holds baselines recorded earlier in this
    /// batch and not yet flushed (a key repeated in a batch sees its own earlier write).
    async fn process(
        &self,
        c: &Compiled<'_>,
        row: &Row,
        fresh: &HashMap<String, Baseline>,
        stored: &HashMap<String, Baseline>,
    ) -> Step {
        let t = c.target;
        let rec = match c.prepare(row) {
            Ok(r) => r,
            Err((key, why)) => {
                return Step::Done(
                    outcome(
                        &key,
                        RecordAction::Rejected,
                        format!("row cannot be sent: {why}"),
                    ),
                    None,
                )
            }
        };
        if let Some(who) = c.echo_of(row) {
            return Step::Done(
                outcome(
                    &rec.key,
                    RecordAction::Unchanged,
                    format!(
                        "echo: last modified by `{who}`, the integration itself; not written back"
                    ),
                ),
                None,
            );
        }
        let row_modified = c.row_modified(row);
        let row_version =
            row_modified.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
        // Written in this batch, else as stored when the batch began.
        let baseline = fresh
            .get(&rec.key_id)
            .or_else(|| stored.get(&rec.key_id))
            .cloned();
        let facts = |current| Facts {
            desired_hash: &rec.hash,
            baseline: baseline.as_ref(),
            current,
            detection: t.change_detection,
            stamp_field: t.stamp.as_ref().map(|s| s.ci_field.as_str()),
            policy: t.conflict_policy,
            row_modified,
        };
        if let Decision::SameAsBaseline {
            origin,
            recorded_at,
        } = decide(facts(Current::NotRead))
        {
            return Step::Done(
                outcome(
                    &rec.key,
                    RecordAction::Unchanged,
                    format!(
                        "content equals the baseline recorded by {origin} at {}; nothing to write",
                        recorded_at.to_rfc3339()
                    ),
                ),
                None,
            );
        }

        let current = match self.read_current(c, &rec).await {
            Ok(json) => current_of(c, &rec, json.as_ref()),
            Err(step) => return step,
        };

        let ps_version = match &current {
            Current::Found { stamp, .. } => stamp.clone(),
            _ => None,
        };
        let step = self
            .decide_and_write(c, &rec, facts(current), ps_version.clone())
            .await;
        with_versions(step, ps_version, row_version)
    }

    /// Applies the decision for a record whose PeopleSoft state was read.
    async fn decide_and_write(
        &self,
        c: &Compiled<'_>,
        rec: &Prepared,
        facts: Facts<'_>,
        ps_version: Option<String>,
    ) -> Step {
        let t = c.target;
        let now = self.inner.client.clock().now();
        let (create, changes, overwrites) = match decide(facts) {
            Decision::Read | Decision::SameAsBaseline { .. } => {
                unreachable!("`decide` settles these before the read")
            }
            Decision::AlreadyInPeopleSoft { stamp } => {
                let b = (!self.inner.dry_run).then(|| {
                    (
                        rec.key_id.clone(),
                        Baseline {
                            hash: rec.hash.value.clone(),
                            stamp,
                            origin: BaselineOrigin::Observed,
                            recorded_at: now,
                        },
                    )
                });
                return Step::Done(
                    outcome(
                        &rec.key,
                        RecordAction::Unchanged,
                        "PeopleSoft already has these values",
                    ),
                    b,
                );
            }
            Decision::Conflict { why, changes } => {
                let mut o = outcome(
                    &rec.key,
                    RecordAction::Conflict,
                    format!("PeopleSoft changed since the last sync ({why}); skipped because the policy is PeopleSoftWins"),
                );
                o.changes = changes;
                return Step::Done(o, None);
            }
            Decision::Held { why, changes } => {
                let mut o = outcome(
                    &rec.key,
                    RecordAction::Held,
                    format!("PeopleSoft changed since the last sync ({why}); held for review"),
                );
                o.changes = changes;
                return Step::Done(o, None);
            }
            Decision::Stale {
                why,
                changes,
                peoplesoft_version,
                hold,
            } => {
                let action = if hold {
                    RecordAction::Held
                } else {
                    RecordAction::Conflict
                };
                let mut o = outcome(
                    &rec.key,
                    action,
                    format!("not sent: {why}; a newer PeopleSoft edit is never overwritten"),
                );
                o.changes = changes;
                o.peoplesoft_version = ps_version.or_else(|| {
                    Some(peoplesoft_version.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
                });
                return Step::Done(o, None);
            }
            Decision::Write {
                create,
                changes,
                overwrites,
            } => (create, changes, overwrites),
        };
        let overwrite_note = overwrites.map_or_else(String::new, |why| {
            format!(
                "; PeopleSoft changed since the last sync ({why}), overwritten because the policy is DatabricksWins"
            )
        });

        let (action, template, method, verb) = if create {
            (RecordAction::Created, &t.create, Method::POST, "create")
        } else {
            (RecordAction::Updated, &t.update, Method::PUT, "update")
        };
        let n = changes.len();
        if self.inner.dry_run {
            let mut o = outcome(
                &rec.key,
                action,
                format!("dry run: would {verb} ({n} field(s)){overwrite_note}"),
            );
            o.changes = changes;
            return Step::Done(o, None);
        }
        self.write_record(
            c,
            rec,
            template,
            method,
            action,
            changes,
            overwrite_note,
            now,
        )
        .await
    }

    /// Reads PeopleSoft's current record for `rec` (`None`: it does not exist). A refusal, an
    /// unexpected response shape or a transport failure comes back as the record's step.
    async fn read_current(
        &self,
        c: &Compiled<'_>,
        rec: &Prepared,
    ) -> Result<Option<Map<String, Json>>, Step> {
        let t = c.target;
        let resp = self
            .call(
                &rec.key,
                "Get",
                c.fill(&t.get, rec),
                Method::GET,
                None,
                Idempotency::Idempotent,
            )
            .await?;
        let fields = match classify(&resp, &t.error_body, true, &t.not_found_messages) {
            Answer::Ok(j) if j.is_null() => None,
            Answer::Ok(j) => match locate(&j, &t.payload.response_path) {
                Some(m) if m.is_empty() => None,
                Some(m) => Some(m.clone()),
                None => {
                    let mut o = outcome(
                        &rec.key,
                        RecordAction::Rejected,
                        format!(
                            "the Get response has no field object at payload.response_path {:?}; check the site's CIRT response shape",
                            t.payload.response_path
                        ),
                    );
                    o.peoplesoft_message = Some(crate::error::truncate_body(&resp.body));
                    return Err(Step::Done(o, None));
                }
            },
            Answer::NotFound => None,
            Answer::Rejected(m) => {
                let mut o = outcome(
                    &rec.key,
                    RecordAction::Rejected,
                    format!("PeopleSoft refused the Get: {m}"),
                );
                o.peoplesoft_message = Some(m);
                return Err(Step::Done(o, None));
            }
            Answer::Transient(m) => return Err(Step::Transient(rec.key.clone(), m)),
        };
        Ok(fields)
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_record(
        &self,
        c: &Compiled<'_>,
        rec: &Prepared,
        template: &str,
        method: Method,
        action: RecordAction,
        changes: Vec<FieldChange>,
        note: String,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Step {
        let t = c.target;
        let body = c.body(rec);
        // Writes are not repeated blindly by the HTTP layer: a 500 may be a validation error,
        // and a timed-out POST may have created the record. The next round re-reads first.
        let resp = match self
            .call(
                &rec.key,
                action,
                c.fill(template, rec),
                method,
                Some(&body),
                Idempotency::NonIdempotent,
            )
            .await
        {
            Ok(r) => r,
            Err(step) => return step,
        };
        match classify(&resp, &t.error_body, false, &[]) {
            Answer::Ok(j) => {
                let stamp = locate(&j, &t.payload.response_path).and_then(|m| c.stamp_of(m));
                let n = changes.len();
                let verb = if action == RecordAction::Created {
                    "created"
                } else {
                    "updated"
                };
                let mut o = outcome(&rec.key, action, format!("{verb} ({n} field(s)){note}"));
                o.changes = changes;
                Step::Done(
                    o,
                    Some((
                        rec.key_id.clone(),
                        Baseline {
                            hash: rec.hash.value.clone(),
                            stamp,
                            origin: BaselineOrigin::Writeback,
                            recorded_at: now,
                        },
                    )),
                )
            }
            Answer::Rejected(m) => {
                let mut o = outcome(
                    &rec.key,
                    RecordAction::Rejected,
                    format!(
                        "PeopleSoft refused the {}: {m}",
                        if action == RecordAction::Created {
                            "Create"
                        } else {
                            "Update"
                        }
                    ),
                );
                o.peoplesoft_message = Some(m);
                o.changes = changes;
                Step::Done(o, None)
            }
            // Not produced for writes; kept total.
            Answer::NotFound => Step::Done(
                outcome(
                    &rec.key,
                    RecordAction::Rejected,
                    "PeopleSoft answered `not found` to the write",
                ),
                None,
            ),
            Answer::Transient(m) => Step::Transient(rec.key.clone(), m),
        }
    }
}

#[async_trait]
impl Sink for PeopleSoftSink {
    /// Checks that the schema has the columns of at least one configured target; nothing
    /// is created in PeopleSoft.
    async fn prepare(&self, schema: &TableSchema) -> Result<(), ConnectorError> {
        let mut first_error = None;
        for t in self.inner.targets.values() {
            match Compiled::new(t, schema) {
                Ok(_) => return Ok(()),
                Err(e) => {
                    first_error.get_or_insert(format!("write-back target `{}`: {e}", t.ci));
                }
            }
        }
        Err(ConnectorError::permanent(first_error.unwrap_or_default()))
    }

    /// Writes one batch (see the module docs). `Ok` when every record reached a final
    /// outcome (rejected, conflict and held records included: they are in the report);
    /// a transient error when some records still failed transiently, a stop-stream error on
    /// 401/403.
    async fn write(&self, schema: &TableSchema, batch: &Batch) -> Result<Receipt, ConnectorError> {
        let report = self.write_report(schema, batch).await;
        let counts = report.counts();
        let summary = RecordAction::ALL
            .iter()
            .map(|a| format!("{a} {}", counts[a]))
            .collect::<Vec<_>>()
            .join(", ");
        if let Some(stop) = &report.stopped {
            return Err(ConnectorError::new(
                stop.kind,
                format!(
                    "PeopleSoft write-back of stream `{}` stopped after {} record(s) ({summary}): {}",
                    report.stream,
                    report.records.len(),
                    stop.message
                ),
            ));
        }
        let failed = counts[&RecordAction::Failed];
        if failed > 0 {
            let first = report
                .records
                .iter()
                .find(|r| r.action == RecordAction::Failed)
                .map(|r| format!("{:?}: {}", r.key, r.reason))
                .unwrap_or_default();
            return Err(ConnectorError::transient(format!(
                "PeopleSoft write-back of stream `{}`: {failed} record(s) failed transiently ({summary}); first: {first}",
                report.stream
            )));
        }
        Ok(report.receipt())
    }

    async fn count(
        &self,
        _schema: &TableSchema,
        _window: Window,
    ) -> Result<Option<u64>, ConnectorError> {
        Ok(None)
    }
}

/// Wraps the forward direction's sink: after the inner sink confirms a batch of
/// `forward_stream`, records its rows as baselines of the write-back stream, so the
/// write-back recognises them as PeopleSoft's own content. Other streams pass through.
///
/// The forward table must contain the write-back target's key and governed columns under
/// the same names and types as the rows the write-back receives.
#[derive(Clone)]
pub struct BaselineSeedingSink {
    inner: Arc<dyn Sink>,
    writeback: PeopleSoftSink,
    forward_stream: String,
    writeback_stream: String,
}

impl fmt::Debug for BaselineSeedingSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BaselineSeedingSink")
            .field("writeback", &self.writeback)
            .field("forward_stream", &self.forward_stream)
            .field("writeback_stream", &self.writeback_stream)
            .finish_non_exhaustive()
    }
}

impl BaselineSeedingSink {
    /// Seeds `writeback_stream` baselines of `writeback` from batches of `forward_stream`
    /// written to `inner`.
    pub fn new(
        inner: Arc<dyn Sink>,
        writeback: PeopleSoftSink,
        forward_stream: impl Into<String>,
        writeback_stream: impl Into<String>,
    ) -> Self {
        Self {
            inner,
            writeback,
            forward_stream: forward_stream.into(),
            writeback_stream: writeback_stream.into(),
        }
    }
}

#[async_trait]
impl Sink for BaselineSeedingSink {
    async fn prepare(&self, schema: &TableSchema) -> Result<(), ConnectorError> {
        self.inner.prepare(schema).await
    }

    /// Writes through the inner sink, then seeds baselines (a store failure is a transient
    /// error, so the engine re-runs the idempotent batch).
    async fn write(&self, schema: &TableSchema, batch: &Batch) -> Result<Receipt, ConnectorError> {
        let receipt = self.inner.write(schema, batch).await?;
        if batch.stream == self.forward_stream {
            self.writeback
                .seed_baselines(&self.writeback_stream, schema, &batch.rows)
                .await
                .map_err(|e| ConnectorError::transient(e.to_string()))?;
        }
        Ok(receipt)
    }

    async fn count(
        &self,
        schema: &TableSchema,
        window: Window,
    ) -> Result<Option<u64>, ConnectorError> {
        self.inner.count(schema, window).await
    }
}
