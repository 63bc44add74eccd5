//! Turns a validated [`Config`] into clients, sources, a sink, stores and a [`Pipeline`].

use std::sync::Arc;

use databricks_client::{ConfigBuilder, DatabricksClient, DatabricksSink};
use peoplesoft_client::{
    BlackoutAction, BlackoutWindow, Connection, Credentials, LatchCallback, LoadProtection,
    OAuth2ClientCredentials, PeopleSoftClient, PeopleSoftSource, QueryName, Scheme,
    StreamDefinition,
};
use secrecy::SecretString;
use sync_core::audit::{AuditLog, JsonlAuditLog, JsonlRejectStore};
use sync_core::engine::{
    EngineOptions, Pipeline, Progress, StopHandle, StreamConfig, WindowPolicy,
};
use sync_core::sqlite::SqliteSink;
use sync_core::state::{CheckpointStore, FileCheckpointStore};
use sync_core::Sink;

use crate::config::{Config, Destination, PeopleSoftAuth, StateKind, StreamKind, StreamSettings};

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
    /// The stream definitions, in configuration order.
    pub definitions: Vec<StreamDefinition>,
    /// The audit log.
    pub audit: Arc<dyn AuditLog>,
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
/// one request limiter, for every stream).
pub async fn build_with(
    config: &Config,
    peoplesoft: PeopleSoftClient,
    progress: impl Fn(&Progress) + Send + Sync + 'static,
) -> Result<Built, BoxError> {
    let databricks = databricks_client(config)?;
    let sink: Arc<dyn Sink> = match (&config.destination, &databricks) {
        (Destination::Sqlite { path }, _) => Arc::new(SqliteSink::open(path)?),
        (_, Some(client)) => Arc::new(DatabricksSink::from_config_defaults(client.clone())?),
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
    let mut builder = Pipeline::builder(config.pipeline.name.clone(), sink)
        .checkpoints(store)
        .audit(audit.clone())
        .rejects(Arc::new(JsonlRejectStore::new(dir.join("rejects.jsonl"))))
        .stop_handle(stop.clone())
        .on_progress(progress)
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
        definitions,
        audit,
    })
}
