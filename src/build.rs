//! Turns a validated [`Config`] into clients, sources, a sink, stores and a [`Pipeline`].

use std::sync::Arc;

use databricks_client::{BulkOptions, ConfigBuilder, DatabricksClient, DatabricksSink, VolumeName};
use peoplesoft_client::{
    BlackoutAction, BlackoutWindow, Connection, Credentials, LatchCallback, LoadProtection,
    OAuth2ClientCredentials, PeopleSoftClient, PeopleSoftSource, QueryName, Scheme,
    StreamDefinition,
};
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::sync::Mutex;
use sync_core::audit::{AuditLog, JsonlAuditLog, JsonlRejectStore};
use sync_core::engine::{
    EngineOptions, Pipeline, Progress, StopHandle, StreamConfig, WindowPolicy,
};
use sync_core::sqlite::SqliteSink;
use sync_core::state::{CheckpointStore, FileCheckpointStore};

use databricks_client::DatabricksSource;
use peoplesoft_client::writeback::{
    BaselineSeedingSink, BaselineStore, JsonFileBaselineStore, PeopleSoftSink, WriteReport,
};
use sync_core::engine::{HookContext, StreamHook};
use sync_core::mapping::Mapping;
use sync_core::state::MemoryCheckpointStore;
use sync_core::{ColumnDef, Sink, TableSchema};

use crate::config::{
    Config, Destination, PeopleSoftAuth, StateKind, StreamKind, StreamSettings, WritebackSettings,
};

/// A boxed error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Everything the `sync` example runs.
pub struct Built {
    /// The pipeline.
    pub pipeline: Pipeline,
    /// Its stop handle (wire it to SIGINT/SIGTERM).
    pub stop: StopHandle,
    /// The PeopleSoft client (for `check`).
    pub peoplesoft: PeopleSoftClient,
    /// The Databricks client, when the destination or state is Databricks.
    pub databricks: Option<DatabricksClient>,
    /// The Databricks sink, when the destination is Databricks (for `check`'s volume probe).
    pub databricks_sink: Option<DatabricksSink>,
    /// The stream definitions, in configuration order.
    pub definitions: Vec<StreamDefinition>,
    /// The audit log.
    pub audit: Arc<dyn AuditLog>,
    /// The write-back streams (`[[writeback]]`), when the file has any.
    pub writeback: Option<Writeback>,
    /// The state directory (audit, results files, latch).
    pub state_dir: std::path::PathBuf,
}

/// The write-back streams of a pipeline file: their own [`Pipeline`] (named
/// `<pipeline>.writeback`, sharing the checkpoint store, audit log, stop handle and the one
/// PeopleSoft client), the [`PeopleSoftSink`] and the per-record reports of the run.
pub struct Writeback {
    /// The reverse pipeline: `DatabricksSource` per governed table → `PeopleSoftSink`.
    pub pipeline: Pipeline,
    /// The sink (for `check`'s Get probe).
    pub sink: PeopleSoftSink,
    /// Every batch report of this process, in order.
    pub reports: Arc<Mutex<Vec<WriteReport>>>,
    /// The settings, in file order.
    pub streams: Vec<WritebackSettings>,
    /// True: reads PeopleSoft, sends no POST/PUT, stores no baseline or checkpoint.
    pub dry_run: bool,
}

/// The JSON-lines file of `stream`'s per-record write-back results in `state_dir`.
pub fn writeback_results_file(state_dir: &std::path::Path, stream: &str) -> std::path::PathBuf {
    state_dir.join(format!("writeback-{stream}.jsonl"))
}

/// Annotates the audit with each write-back stream's per-record outcomes of the cycle.
struct WritebackAudit {
    reports: Arc<Mutex<Vec<WriteReport>>>,
}

#[async_trait::async_trait]
impl StreamHook for WritebackAudit {
    async fn after_stream(
        &self,
        ctx: &HookContext,
    ) -> Result<BTreeMap<String, String>, sync_core::ConnectorError> {
        let reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        let mut merged: Option<WriteReport> = None;
        for r in reports
            .iter()
            .filter(|r| r.run_id == ctx.run_id && r.stream == ctx.stream)
        {
            match &mut merged {
                None => merged = Some(r.clone()),
                Some(m) => m.records.extend(r.records.iter().cloned()),
            }
        }
        Ok(merged.map(|m| m.annotations(50)).unwrap_or_default())
    }
}

/// The governed table's schema as the write-back reads it.
pub fn writeback_schema(w: &WritebackSettings) -> TableSchema {
    TableSchema {
        name: w.name.clone(),
        columns: w
            .columns
            .iter()
            .map(|(n, t)| {
                let c = ColumnDef::new(n.clone(), *t);
                if w.key_columns.contains(n) {
                    c.not_null()
                } else {
                    c
                }
            })
            .collect(),
        primary_key: w.key_columns.clone(),
        cursor_column: Some(w.modified_at_column.clone()),
        write_mode: Default::default(),
        effective_dating: None,
    }
}

/// Builds the write-back pipeline of `config` (`None` without `[[writeback]]`).
#[allow(clippy::too_many_arguments)]
fn writeback(
    config: &Config,
    peoplesoft: &PeopleSoftClient,
    databricks: Option<&DatabricksClient>,
    store: Arc<dyn CheckpointStore>,
    audit: Arc<dyn AuditLog>,
    stop: &StopHandle,
    dry_run: bool,
    progress: impl Fn(&Progress) + Send + Sync + 'static,
) -> Result<Option<Writeback>, BoxError> {
    if config.writeback.is_empty() {
        return Ok(None);
    }
    let Some(client) = databricks else {
        return Err("`[[writeback]]` needs a Databricks destination".into());
    };
    let dir = config.state.dir.clone();
    let reports: Arc<Mutex<Vec<WriteReport>>> = Arc::default();
    let collected = reports.clone();
    // With the state in Databricks, the baselines are shared by every worker too.
    let baselines: Arc<dyn BaselineStore> = match config.state.kind {
        StateKind::Databricks => Arc::new(crate::baselines::DatabricksBaselineStore::new(
            client.clone(),
            config.pipeline.name.clone(),
        )?),
        StateKind::File => Arc::new(JsonFileBaselineStore::new(
            dir.join("writeback-baselines.json"),
        )),
    };
    let mut sink = PeopleSoftSink::builder(peoplesoft.clone())
        .baselines(baselines)
        .dry_run(dry_run)
        .max_attempts(config.peoplesoft.write_attempts)
        .retry_delay(config.peoplesoft.write_retry_delay)
        .on_report(move |r| {
            collected
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(r.clone());
            if r.dry_run {
                return;
            }
            let path = writeback_results_file(&dir, &r.stream);
            let written = std::fs::create_dir_all(&dir).and_then(|()| {
                use std::io::Write;
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)?
                    .write_all(r.to_json_lines().as_bytes())
            });
            if let Err(e) = written {
                tracing::error!(
                    "write-back results of `{}` could not be appended to {}: {e}",
                    r.stream,
                    path.display()
                );
            }
        });
    for w in &config.writeback {
        sink = sink.target(w.name.clone(), w.target.clone());
    }
    let sink = sink.build()?;
    let store: Arc<dyn CheckpointStore> = if dry_run {
        // A dry run must not mark the previewed windows as done.
        Arc::new(MemoryCheckpointStore::new())
    } else {
        store
    };
    let mut builder = Pipeline::builder(
        format!("{}.writeback", config.pipeline.name),
        Arc::new(sink.clone()),
    )
    .checkpoints(store)
    .audit(audit)
    .rejects(Arc::new(JsonlRejectStore::new(
        config.state.dir.join("writeback-rejects.jsonl"),
    )))
    .stop_handle(stop.clone())
    .on_progress(progress)
    .after_stream(Arc::new(WritebackAudit {
        reports: reports.clone(),
    }));
    for w in &config.writeback {
        let schema = writeback_schema(w);
        let mapper = Mapping::identity(&schema).compile()?;
        let source = DatabricksSource::new(client.clone(), w.table.clone(), &schema)?;
        let policy = WindowPolicy::starting_at(w.start)
            .lookback(w.lookback)
            .settle_lag(w.settle_lag)
            .max_window(w.max_window)
            .min_window(chrono::Duration::minutes(1).min(w.max_window));
        builder = builder.stream(
            StreamConfig::new(w.name.clone(), Arc::new(source), Arc::new(mapper), policy)
                .batch_size(w.batch_size)
                .max_attempts(w.max_attempts),
        );
    }
    Ok(Some(Writeback {
        pipeline: builder.build()?,
        sink,
        reports,
        streams: config.writeback.clone(),
        dry_run,
    }))
}

fn secret_from_env(var: &str, key: &str) -> Result<SecretString, BoxError> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(SecretString::from(v)),
        _ => Err(
            format!("environment variable {var} (named by `peoplesoft.{key}`) is not set").into(),
        ),
    }
}

/// The credentials described by the `[peoplesoft]` section (secrets read from the
/// environment variables it names).
pub fn peoplesoft_credentials(config: &Config) -> Result<Credentials, BoxError> {
    Ok(match &config.peoplesoft.auth {
        PeopleSoftAuth::Bearer { token_env } => {
            Credentials::bearer(secret_from_env(token_env, "token_env")?)
        }
        PeopleSoftAuth::OAuth2 {
            token_url,
            client_id,
            client_secret_env,
            scope,
            audience,
        } => {
            let secret = secret_from_env(client_secret_env, "client_secret_env")?;
            let mut o = OAuth2ClientCredentials::new(token_url, client_id.clone(), secret)?;
            if let Some(s) = scope {
                o = o.scope(s.clone());
            }
            if let Some(a) = audience {
                o = o.audience(a.clone());
            }
            Credentials::OAuth2(o)
        }
        PeopleSoftAuth::Basic { user, password_env } => {
            Credentials::basic(user.clone(), secret_from_env(password_env, "password_env")?)
        }
    })
}

/// The connection described by the `[peoplesoft]` section.
pub fn peoplesoft_connection(config: &Config) -> Result<Connection, BoxError> {
    let ps = &config.peoplesoft;
    let mut conn = Connection::builder(ps.host.clone(), u32::from(ps.port), ps.node.clone())
        .allow_http(ps.http)
        .request_timeout(ps.request_timeout);
    if ps.http {
        conn = conn.scheme(Scheme::Http);
    }
    if let Some(prefix) = &ps.path_prefix {
        conn = conn.path_prefix(prefix.clone());
    }
    Ok(conn.build()?)
}

/// The PeopleSoft client described by the `[peoplesoft]` section.
pub fn peoplesoft_client(config: &Config) -> Result<PeopleSoftClient, BoxError> {
    peoplesoft_client_with(config, peoplesoft_credentials(config)?, None)
}

/// [`peoplesoft_client()`] with given credentials and an optional callback for when they
/// latch (see [`crate::ops::open_peoplesoft`], which persists the latch).
pub fn peoplesoft_client_with(
    config: &Config,
    credentials: Credentials,
    on_latch: Option<LatchCallback>,
) -> Result<PeopleSoftClient, BoxError> {
    let ps = &config.peoplesoft;
    let conn = peoplesoft_connection(config)?;
    let mut protection = LoadProtection {
        max_concurrent: ps.max_concurrent_requests,
        min_gap: ps.min_gap,
        ..LoadProtection::default()
    };
    for b in &ps.blackouts {
        let mut w = BlackoutWindow::new(
            b.label.clone(),
            &b.from.format("%H:%M").to_string(),
            &b.to.format("%H:%M").to_string(),
            b.time_zone.name(),
        )?;
        if !b.days.is_empty() {
            w = w.on_weekdays(b.days.clone());
        }
        protection = protection.with_blackout(w);
        if b.skip {
            protection.blackout_action = BlackoutAction::Skip;
        }
    }
    let mut builder = PeopleSoftClient::builder(conn, credentials).protection(protection);
    if let Some(cb) = on_latch {
        builder = builder.on_auth_latched(cb);
    }
    Ok(builder.build()?)
}

/// The stream definition for one `[[streams]]` entry: a domain default with overrides, or a
/// custom query with its own mapping.
pub fn stream_definition(
    config: &Config,
    s: &StreamSettings,
) -> Result<StreamDefinition, BoxError> {
    let mut def = match &s.kind {
        StreamKind::Domain { domain, query } => {
            let mut d = domain.definition();
            if let Some(q) = query {
                d.query = QueryName::new(q.clone())?;
            }
            d
        }
        StreamKind::Custom {
            query,
            mapping,
            key,
            cursor,
        } => StreamDefinition::custom(
            s.name.clone(),
            QueryName::new(query.clone())?,
            (**mapping).clone(),
            key.clone(),
            cursor.clone(),
        ),
    };
    def.name = s.name.clone();
    if let Some(t) = &s.table {
        def.mapping.table = t.clone();
    }
    if let Some(n) = config.peoplesoft.max_rows {
        def.max_rows = n;
    }
    let cap = &s.capture;
    if let Some(p) = &cap.from_prompt {
        def.from_prompt = p.clone();
    }
    if let Some(p) = &cap.to_prompt {
        def.to_prompt = p.clone();
    }
    if let Some(f) = cap.prompt_format {
        def.prompt_format = f;
    }
    if let Some(r) = cap.range {
        def.range = r;
    }
    if !cap.fixed_prompts.is_empty() {
        def.fixed_prompts = cap.fixed_prompts.clone();
    }
    if !cap.key_prompts.is_empty() {
        def.key_prompts = cap.key_prompts.clone();
    }
    def.profile_max_rows = cap.profile_max_rows;
    if let Some(f) = cap.profile_cap_floor {
        def.profile_cap_floor = f;
    }
    def.null_cursor_check = cap.null_cursor_check;
    def.mapping.write_mode = cap.write_mode;
    Ok(def.time_zone(config.peoplesoft.time_zone.name())?)
}

/// The Databricks client, when the destination is Databricks.
pub fn databricks_client(config: &Config) -> Result<Option<DatabricksClient>, BoxError> {
    let Destination::Databricks {
        catalog,
        schema,
        profile,
        allow_http,
        ..
    } = &config.destination
    else {
        return Ok(None);
    };
    let env = |k: &str| std::env::var(k).ok();
    let profile = profile.clone();
    let lookup = move |k: &str| {
        if k == "DATABRICKS_CONFIG_PROFILE" {
            if let Some(p) = &profile {
                return Some(p.clone());
            }
        }
        env(k)
    };
    let cfg = ConfigBuilder::from_lookup(lookup)?
        .catalog(catalog.clone())
        .schema(schema.clone())
        .allow_insecure_http(*allow_http)
        .build()?;
    Ok(Some(DatabricksClient::new(cfg)?))
}

/// Builds the whole pipeline; `progress` receives the engine's progress events.
pub async fn build(
    config: &Config,
    progress: impl Fn(&Progress) + Send + Sync + 'static,
) -> Result<Built, BoxError> {
    build_with(config, peoplesoft_client(config)?, progress).await
}

/// [`build`] around an existing PeopleSoft client (one client, so one credential latch and
/// one request limiter, for every stream, forward and write-back).
pub async fn build_with(
    config: &Config,
    peoplesoft: PeopleSoftClient,
    progress: impl Fn(&Progress) + Send + Sync + 'static,
) -> Result<Built, BoxError> {
    build_with_options(config, peoplesoft, false, progress).await
}

/// [`build_with`], with the write-back in dry-run mode when `writeback_dry_run` (reads
/// PeopleSoft, sends no POST/PUT, keeps no baseline and no checkpoint).
pub async fn build_with_options(
    config: &Config,
    peoplesoft: PeopleSoftClient,
    writeback_dry_run: bool,
    progress: impl Fn(&Progress) + Send + Sync + 'static,
) -> Result<Built, BoxError> {
    let progress = Arc::new(progress);
    let for_writeback = progress.clone();
    let databricks = databricks_client(config)?;
    let mut databricks_sink = None;
    let sink: Arc<dyn Sink> = match (&config.destination, &databricks) {
        (Destination::Sqlite { path }, _) => Arc::new(SqliteSink::open(path)?),
        (Destination::Databricks { bulk, .. }, Some(client)) => {
            let mut sink = DatabricksSink::from_config_defaults(client.clone())?;
            if let Some(b) = bulk {
                sink = sink.bulk(
                    BulkOptions::new(VolumeName::parse(&b.volume)?)
                        .threshold(b.threshold)
                        .create_volume(b.create_volume),
                )?;
            }
            databricks_sink = Some(sink.clone());
            Arc::new(sink)
        }
        (_, None) => return Err("the Databricks destination has no client".into()),
    };
    let dir = &config.state.dir;
    let (store, audit): (Arc<dyn CheckpointStore>, Arc<dyn AuditLog>) =
        match (config.state.kind, &databricks) {
            (StateKind::Databricks, Some(client)) => (
                Arc::new(databricks_client::DatabricksCheckpointStore::new(
                    client.clone(),
                )?),
                Arc::new(databricks_client::DatabricksAuditLog::new(client.clone())?),
            ),
            (StateKind::Databricks, None) => {
                return Err("`state.kind = \"databricks\"` needs a Databricks destination".into())
            }
            _ => (
                Arc::new(FileCheckpointStore::open(dir)?),
                Arc::new(JsonlAuditLog::new(dir.join("audit.jsonl"))),
            ),
        };
    let stop = StopHandle::new();
    let writeback = writeback(
        config,
        &peoplesoft,
        databricks.as_ref(),
        store.clone(),
        audit.clone(),
        &stop,
        writeback_dry_run,
        move |p: &Progress| for_writeback(p),
    )?;
    // The forward streams named by `seed_from` record the write-back's baselines.
    let mut sink = sink;
    if let Some(w) = &writeback {
        for s in w.streams.iter() {
            if let Some(forward) = &s.seed_from {
                sink = Arc::new(BaselineSeedingSink::new(
                    sink,
                    w.sink.clone(),
                    forward.clone(),
                    s.name.clone(),
                ));
            }
        }
    }
    let mut builder = Pipeline::builder(config.pipeline.name.clone(), sink)
        .checkpoints(store)
        .audit(audit.clone())
        .rejects(Arc::new(JsonlRejectStore::new(dir.join("rejects.jsonl"))))
        .stop_handle(stop.clone())
        .on_progress(move |p: &Progress| progress(p))
        .options(
            EngineOptions::default()
                .max_concurrent_streams(config.pipeline.max_concurrent_streams)
                .lease_ttl(config.state.lease_ttl),
        );
    let worker = std::env::var("ML_CONNECTOR_WORKER")
        .ok()
        .filter(|w| !w.trim().is_empty())
        .or_else(|| config.state.worker.clone());
    if let Some(worker) = worker {
        builder = builder.worker(worker);
    }
    if let (
        Destination::Databricks {
            trigger_job_id: Some(job_id),
            ..
        },
        Some(client),
    ) = (&config.destination, &databricks)
    {
        builder = builder.after_stream(Arc::new(databricks_client::JobTrigger::new(
            client.clone(),
            *job_id,
        )));
    }
    let mut definitions = Vec::new();
    for s in &config.streams {
        let def = stream_definition(config, s)?;
        let mapper = Arc::new(def.mapper()?);
        let source = Arc::new(PeopleSoftSource::new(peoplesoft.clone(), def.clone())?);
        let policy = WindowPolicy::starting_at(s.start)
            .lookback(s.lookback)
            .settle_lag(s.settle_lag)
            .max_window(s.max_window)
            .min_window(s.min_window);
        builder = builder.stream(
            StreamConfig::new(s.name.clone(), source, mapper, policy)
                .batch_size(s.batch_size)
                .max_attempts(s.max_attempts)
                .on_reject(s.on_reject)
                .on_duplicate(s.capture.on_duplicate)
                .deletes(s.capture.deletes)
                .reconcile(s.capture.reconcile),
        );
        definitions.push(def);
    }
    Ok(Built {
        pipeline: builder.build()?,
        stop,
        peoplesoft,
        databricks,
        databricks_sink,
        definitions,
        audit,
        writeback,
        state_dir: config.state.dir.clone(),
    })
}
