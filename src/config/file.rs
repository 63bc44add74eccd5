//! The raw shape of `pipeline.toml`, as serde reads it (values keep their positions so a
//! problem can name its line). [`super::check`] turns it into the typed [`super::Config`].

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PipelineFile {
    /// `[pipeline]`.
    pub(crate) pipeline: PipelineSection,
    /// `[state]`.
    #[serde(default)]
    pub(crate) state: StateSection,
    /// `[peoplesoft]`.
    pub(crate) peoplesoft: PeopleSoftSection,
    /// `[destination]`.
    pub(crate) destination: DestinationSection,
    /// `[defaults]` for every stream.
    #[serde(default)]
    pub(crate) defaults: StreamDefaults,
    /// `[[streams]]`.
    #[serde(default)]
    pub(crate) streams: Vec<StreamSection>,
    /// `[[writeback]]`: reverse streams, governed Databricks table → PeopleSoft CIRT.
    #[serde(default)]
    pub(crate) writeback: Vec<WritebackSection>,
}

/// `[[writeback]]`: one reverse stream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WritebackSection {
    /// Stream name (must differ from every `[[streams]]` name).
    pub(crate) name: Spanned<String>,
    /// The governed table, `catalog.schema.table`.
    pub(crate) table: Spanned<String>,
    /// Key columns → CI key fields, in the CI's key order.
    pub(crate) keys: Spanned<Vec<FieldSection>>,
    /// Governed columns → CI fields.
    pub(crate) fields: Spanned<Vec<FieldSection>>,
    /// The column holding when a row was last changed (TIMESTAMP): the read cursor and the
    /// "never older than PeopleSoft" check.
    pub(crate) modified_at_column: Spanned<String>,
    /// The column naming who last changed a row (echo suppression).
    #[serde(default)]
    pub(crate) modified_by_column: Option<Spanned<String>>,
    /// The integration's own identities in `modified_by_column` (a string or a list).
    #[serde(default)]
    pub(crate) integration_identity: Option<Spanned<toml::Value>>,
    /// `peoplesoft_wins` (default), `hold_for_review` or `databricks_wins`.
    #[serde(default)]
    pub(crate) conflict_policy: Option<Spanned<String>>,
    /// `governed_hash` (default) or `stamp`.
    #[serde(default)]
    pub(crate) change_detection: Option<Spanned<String>>,
    /// Where reading the governed table starts (RFC 3339; default: `defaults.start`).
    #[serde(default)]
    pub(crate) start: Option<Spanned<String>>,
    /// Re-read before the high-water mark (default: `defaults.lookback`, else 1h).
    #[serde(default)]
    pub(crate) lookback: Option<Spanned<String>>,
    /// Stay this far behind now (default: `defaults.settle_lag`, else 5m).
    #[serde(default)]
    pub(crate) settle_lag: Option<Spanned<String>>,
    /// Widest window (default: `defaults.max_window`, else 1d).
    #[serde(default)]
    pub(crate) max_window: Option<Spanned<String>>,
    /// Rows per batch (default 500).
    #[serde(default)]
    pub(crate) batch_size: Option<Spanned<i64>>,
    /// Attempts of a failed window before it is stuck (default: `defaults.max_attempts`, 5).
    #[serde(default)]
    pub(crate) max_attempts: Option<Spanned<i64>>,
    /// A forward stream whose loaded rows seed this write-back's baselines (its table must
    /// have the key and governed columns under the same names).
    #[serde(default)]
    pub(crate) seed_from: Option<Spanned<String>>,
    /// The PeopleSoft Component Interface REST service.
    pub(crate) ci: CiSection,
}

/// One `{ column = "...", ci_field = "...", type = "..." }` of `keys` or `fields`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FieldSection {
    /// Column of the governed table.
    pub(crate) column: String,
    /// Field of the Component Interface.
    pub(crate) ci_field: String,
    /// Databricks type of the column (default `STRING`).
    #[serde(default, rename = "type")]
    pub(crate) column_type: Option<String>,
}

/// `[writeback.ci]`: the CIRT service, as the site's WADL describes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CiSection {
    /// The Component Interface (service `CIRT_<name>`), e.g. `VNDR_ID`.
    pub(crate) name: Spanned<String>,
    /// Service operation version (default 1).
    #[serde(default)]
    pub(crate) version: Option<Spanned<i64>>,
    /// Get URL template (default `CIRT_<CI>_G_GET.v<N>/{KEY1}/{KEY2}…`, keys in `keys` order).
    #[serde(default)]
    pub(crate) get: Option<Spanned<String>>,
    /// Create URL template (default `CIRT_<CI>_C_POST.v<N>`).
    #[serde(default)]
    pub(crate) create: Option<Spanned<String>>,
    /// Update URL template (default `CIRT_<CI>_U_PUT.v<N>`; `_UD_PUT` works the same way).
    #[serde(default)]
    pub(crate) update: Option<Spanned<String>>,
    /// The last-update stamp field in Get responses, e.g. `LASTUPDDTTM`.
    #[serde(default)]
    pub(crate) stamp_field: Option<Spanned<String>>,
    /// Zone of PeopleSoft datetimes (default `peoplesoft.time_zone`).
    #[serde(default)]
    pub(crate) time_zone: Option<Spanned<String>>,
    /// Object keys wrapping the fields in Create/Update bodies, outermost first.
    #[serde(default)]
    pub(crate) request_envelope: Vec<String>,
    /// Path to the field object in Get responses.
    #[serde(default)]
    pub(crate) response_path: Vec<String>,
    /// Substrings of a Get error meaning "no such record" (besides HTTP 404).
    #[serde(default)]
    pub(crate) not_found_messages: Option<Vec<String>>,
    /// Key values `check` reads with a Get (`{ SETID = "SHARE", VENDOR_ID = "0000000001" }`);
    /// default: a key that does not exist, which must answer "not found".
    #[serde(default)]
    pub(crate) check_key: Option<Spanned<OrderedPrompts>>,
}

/// `[pipeline]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PipelineSection {
    /// Pipeline name (state and audit are kept per name).
    pub(crate) name: Spanned<String>,
    /// Schedule for `run` (e.g. `daily 02:00 America/Chicago`).
    #[serde(default)]
    pub(crate) schedule: Option<Spanned<String>>,
    /// Streams run at once (default 2).
    #[serde(default)]
    pub(crate) max_concurrent_streams: Option<usize>,
    /// When `run` reconciles every stream (e.g. `daily 04:00 America/Chicago`); a stream's own
    /// `reconcile` or `snapshot` overrides it.
    #[serde(default)]
    pub(crate) reconcile: Option<Spanned<String>>,
}

/// `[state]`: where checkpoints, audit and rejects live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StateSection {
    /// `file` (default) or `databricks`.
    #[serde(default = "default_state_kind")]
    pub(crate) kind: Spanned<String>,
    /// Directory for the file store, the JSON-lines audit and rejects.
    #[serde(default = "default_state_dir")]
    pub(crate) dir: PathBuf,
    /// This worker's name in stream leases (default: host name and process id).
    #[serde(default)]
    pub(crate) worker: Option<Spanned<String>>,
    /// How long a stream lease lasts unless renewed (default `5m`).
    #[serde(default)]
    pub(crate) lease_ttl: Option<Spanned<String>>,
}

fn default_state_kind() -> Spanned<String> {
    Spanned::new(0..0, "file".to_string())
}

fn default_state_dir() -> PathBuf {
    PathBuf::from(".ml-connector")
}

impl Default for StateSection {
    fn default() -> Self {
        Self {
            kind: default_state_kind(),
            dir: default_state_dir(),
            worker: None,
            lease_ttl: None,
        }
    }
}

/// `[peoplesoft]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PeopleSoftSection {
    /// Host name (no scheme, no path).
    pub(crate) host: Spanned<String>,
    /// Port (default 443).
    #[serde(default)]
    pub(crate) port: Option<Spanned<i64>>,
    /// Integration Broker default local node.
    pub(crate) node: Spanned<String>,
    /// `https` (default) or `http` (needs `allow_http = true`).
    #[serde(default)]
    pub(crate) scheme: Option<Spanned<String>>,
    /// Allow plain http (local testing only).
    #[serde(default)]
    pub(crate) allow_http: bool,
    /// Reverse-proxy path prefix before `/PSIGW`.
    #[serde(default)]
    pub(crate) path_prefix: Option<String>,
    /// Time zone PeopleSoft stores local datetimes in (IANA name, default UTC).
    #[serde(default)]
    pub(crate) time_zone: Option<Spanned<String>>,
    /// `basic` (default), `bearer` or `oauth2`.
    #[serde(default)]
    pub(crate) auth: Option<Spanned<String>>,
    /// OPRID for basic auth.
    #[serde(default)]
    pub(crate) user: Option<Spanned<String>>,
    /// Environment variable holding the password (basic).
    #[serde(default)]
    pub(crate) password_env: Option<Spanned<String>>,
    /// Environment variable holding a static bearer token (bearer).
    #[serde(default)]
    pub(crate) token_env: Option<Spanned<String>>,
    /// OAuth2 token endpoint (oauth2).
    #[serde(default)]
    pub(crate) token_url: Option<Spanned<String>>,
    /// OAuth2 client id (oauth2).
    #[serde(default)]
    pub(crate) client_id: Option<Spanned<String>>,
    /// Environment variable holding the OAuth2 client secret (oauth2).
    #[serde(default)]
    pub(crate) client_secret_env: Option<Spanned<String>>,
    /// OAuth2 scope.
    #[serde(default)]
    pub(crate) scope: Option<String>,
    /// OAuth2 audience.
    #[serde(default)]
    pub(crate) audience: Option<String>,
    /// Requests in flight at once to this host (default 1).
    #[serde(default)]
    pub(crate) max_concurrent_requests: Option<Spanned<i64>>,
    /// Minimum gap between request starts, e.g. `250ms`.
    #[serde(default)]
    pub(crate) min_gap: Option<Spanned<String>>,
    /// Request timeout, e.g. `120s`.
    #[serde(default)]
    pub(crate) request_timeout: Option<Spanned<String>>,
    /// Rows per request before the engine splits a window (maxrows).
    #[serde(default)]
    pub(crate) max_rows: Option<Spanned<i64>>,
    /// The OPRID's query profile "Max Rows Fetched", when known (every stream; a stream may
    /// override). Unset: the engine detects such a cap.
    #[serde(default)]
    pub(crate) profile_max_rows: Option<Spanned<i64>>,
    /// Rounds per write-back batch for records that fail transiently (default 3).
    #[serde(default)]
    pub(crate) write_attempts: Option<Spanned<i64>>,
    /// Pause before a write-back retry round, doubled per round (default `5s`).
    #[serde(default)]
    pub(crate) write_retry_delay: Option<Spanned<String>>,
    /// Blackout windows (no requests).
    #[serde(default)]
    pub(crate) blackout: Vec<BlackoutSection>,
}

/// `[[peoplesoft.blackout]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BlackoutSection {
    /// Start, local `HH:MM`.
    pub(crate) from: Spanned<String>,
    /// End, local `HH:MM` (may be earlier than `from`: crosses midnight).
    pub(crate) to: Spanned<String>,
    /// IANA time zone (default: `peoplesoft.time_zone`).
    #[serde(default)]
    pub(crate) time_zone: Option<Spanned<String>>,
    /// Days it applies (`mon`..`sun`); all days when empty.
    #[serde(default)]
    pub(crate) days: Vec<Spanned<String>>,
    /// `wait` (default) or `skip`.
    #[serde(default)]
    pub(crate) action: Option<Spanned<String>>,
    /// A name for messages (e.g. `payroll run`).
    #[serde(default)]
    pub(crate) label: Option<String>,
}

/// `[destination]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DestinationSection {
    /// `databricks` or `sqlite`.
    pub(crate) kind: Spanned<String>,
    /// SQLite file (sqlite).
    #[serde(default)]
    pub(crate) path: Option<PathBuf>,
    /// Catalog (databricks).
    #[serde(default)]
    pub(crate) catalog: Option<Spanned<String>>,
    /// Schema (databricks).
    #[serde(default)]
    pub(crate) schema: Option<Spanned<String>>,
    /// `~/.databrickscfg` profile; otherwise `DATABRICKS_*` environment variables.
    #[serde(default)]
    pub(crate) profile: Option<String>,
    /// Allow plain http for the workspace (local stand-ins only).
    #[serde(default)]
    pub(crate) allow_http: bool,
    /// Start this Databricks job after each stream's cycle that committed data (its run id is
    /// recorded in the audit).
    #[serde(default)]
    pub(crate) trigger_job_id: Option<i64>,
    /// Bulk loads (databricks): `auto` (default: on when `volume` is set), `on` or `off`.
    #[serde(default)]
    pub(crate) bulk: Option<Spanned<String>>,
    /// Rows from which a batch is staged as Parquet and bulk-loaded (default 20000).
    #[serde(default)]
    pub(crate) bulk_threshold: Option<Spanned<i64>>,
    /// The Unity Catalog volume for staging: `catalog.schema.volume`, or a volume name in the
    /// destination's catalog and schema.
    #[serde(default)]
    pub(crate) volume: Option<Spanned<String>>,
    /// Create the volume if it is missing (needs CREATE VOLUME on the schema).
    #[serde(default)]
    pub(crate) create_volume: Option<Spanned<bool>>,
}

/// `[defaults]`: applied to every stream unless the stream overrides it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StreamDefaults {
    /// Where history starts, RFC 3339.
    #[serde(default)]
    pub(crate) start: Option<Spanned<String>>,
    /// Re-read before the high-water mark, e.g. `1h`.
    #[serde(default)]
    pub(crate) lookback: Option<Spanned<String>>,
    /// Stay this far behind now, e.g. `5m`.
    #[serde(default)]
    pub(crate) settle_lag: Option<Spanned<String>>,
    /// Widest window, e.g. `1d`.
    #[serde(default)]
    pub(crate) max_window: Option<Spanned<String>>,
    /// Narrowest window after splits, e.g. `1m`.
    #[serde(default)]
    pub(crate) min_window: Option<Spanned<String>>,
    /// Rows per batch.
    #[serde(default)]
    pub(crate) batch_size: Option<Spanned<i64>>,
    /// Attempts before a window is stuck.
    #[serde(default)]
    pub(crate) max_attempts: Option<Spanned<i64>>,
    /// `fail_window` (default) or `quarantine`.
    #[serde(default)]
    pub(crate) on_reject: Option<Spanned<String>>,
}

/// `[[streams]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StreamSection {
    /// Stream name.
    pub(crate) name: Spanned<String>,
    /// A delivered domain default: vendors, customers, purchase_orders,
    /// purchase_order_lines, journal_headers, journal_lines, employees (job rows), paychecks.
    #[serde(default)]
    pub(crate) domain: Option<Spanned<String>>,
    /// Query name (overrides the domain's; required for custom streams).
    #[serde(default)]
    pub(crate) query: Option<Spanned<String>>,
    /// Target table (overrides the domain's).
    #[serde(default)]
    pub(crate) table: Option<String>,
    /// A full mapping for custom streams (a `sync_core::Mapping`).
    #[serde(default)]
    pub(crate) mapping: Option<Spanned<toml::Value>>,
    /// Key fields (PeopleSoft names) for custom streams.
    #[serde(default)]
    pub(crate) key: Vec<String>,
    /// Cursor field (PeopleSoft name) for custom streams.
    #[serde(default)]
    pub(crate) cursor: Option<String>,
    /// Overrides `defaults.start`.
    #[serde(default)]
    pub(crate) start: Option<Spanned<String>>,
    /// Overrides `defaults.lookback`.
    #[serde(default)]
    pub(crate) lookback: Option<Spanned<String>>,
    /// Overrides `defaults.settle_lag`.
    #[serde(default)]
    pub(crate) settle_lag: Option<Spanned<String>>,
    /// Overrides `defaults.max_window`.
    #[serde(default)]
    pub(crate) max_window: Option<Spanned<String>>,
    /// Overrides `defaults.min_window`.
    #[serde(default)]
    pub(crate) min_window: Option<Spanned<String>>,
    /// Overrides `defaults.batch_size`.
    #[serde(default)]
    pub(crate) batch_size: Option<Spanned<i64>>,
    /// Overrides `defaults.max_attempts`.
    #[serde(default)]
    pub(crate) max_attempts: Option<Spanned<i64>>,
    /// Overrides `defaults.on_reject`.
    #[serde(default)]
    pub(crate) on_reject: Option<Spanned<String>>,
    /// Unique name of the window-start prompt (default `FROM_DTTM`; Query Manager: `BIND1`).
    #[serde(default)]
    pub(crate) from_prompt: Option<Spanned<String>>,
    /// Unique name of the window-end prompt (default `TO_DTTM`; Query Manager: `BIND2`).
    #[serde(default)]
    pub(crate) to_prompt: Option<Spanned<String>>,
    /// `date`, `datetime` (PeopleSoft native) or `iso`.
    #[serde(default)]
    pub(crate) prompt_format: Option<Spanned<String>>,
    /// `half_open` (`>=` and `<`, default) or `between_inclusive` (`BETWEEN`).
    #[serde(default)]
    pub(crate) range: Option<Spanned<String>>,
    /// Further prompts with fixed values, in the order given (`{ SETID = "SHARE" }`).
    #[serde(default)]
    pub(crate) fixed_prompts: Option<Spanned<OrderedPrompts>>,
    /// Key-paging prompts, one per key field in key order.
    #[serde(default)]
    pub(crate) key_prompts: Option<Spanned<Vec<String>>>,
    /// Overrides `peoplesoft.profile_max_rows` for this stream's query.
    #[serde(default)]
    pub(crate) profile_max_rows: Option<Spanned<i64>>,
    /// Query-profile caps below this many rows are assumed not to exist (default 100).
    #[serde(default)]
    pub(crate) profile_cap_floor: Option<Spanned<i64>>,
    /// `upsert` (default, needs a key) or `append` (no key: rows keyed by their hash).
    #[serde(default)]
    pub(crate) write_mode: Option<Spanned<String>>,
    /// `reject` (default) or `keep_last`: two rows with one key and one cursor but different
    /// values.
    #[serde(default)]
    pub(crate) on_duplicate: Option<Spanned<String>>,
    /// Count rows with a NULL cursor in `verify` (reads the whole query once).
    #[serde(default)]
    pub(crate) null_cursor_check: bool,
    /// `soft` (default: `_ml_deleted_at` is set), `hard` or `ignore`: rows deleted in
    /// PeopleSoft, as reconciliation finds them.
    #[serde(default)]
    pub(crate) deletes: Option<Spanned<String>>,
    /// When `run` reconciles this stream (overrides `pipeline.reconcile`).
    #[serde(default)]
    pub(crate) reconcile: Option<Spanned<String>>,
    /// For master data (vendors, customers): when `run` takes a full key-set snapshot of the
    /// stream (every committed window compared by key and hash), e.g. `daily 03:00`.
    #[serde(default)]
    pub(crate) snapshot: Option<Spanned<String>>,
}

/// Prompt name = value pairs in the order the file gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OrderedPrompts(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for OrderedPrompts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OrderedPrompts;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of prompt name = \"value\"")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, String>()? {
                    out.push((k, v));
                }
                Ok(OrderedPrompts(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl StreamSection {
    /// This stream's overrides of `[defaults]`.
    pub(crate) fn overrides(&self) -> StreamDefaults {
        StreamDefaults {
            start: self.start.clone(),
            lookback: self.lookback.clone(),
            settle_lag: self.settle_lag.clone(),
            max_window: self.max_window.clone(),
            min_window: self.min_window.clone(),
            batch_size: self.batch_size.clone(),
            max_attempts: self.max_attempts.clone(),
            on_reject: self.on_reject.clone(),
        }
    }
}
