//! Client configuration: from code ([`ConfigBuilder`]), from `DATABRICKS_*` environment
//! variables, or from a `~/.databrickscfg` profile, like the official SDKs.
//!
//! Precedence, highest first: values set in code, environment variables, the profile.
//! Credentials are taken as one group from the highest source that has any: a token from the
//! environment is not mixed with a client secret from the profile. Within one source, a
//! personal access token *and* OAuth client credentials is a conflict and an error, unless
//! `DATABRICKS_AUTH_TYPE` (or `auth_type` in the profile) is `pat` or `oauth-m2m`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use sync_core::http::RetryPolicy;
use url::Url;

/// Environment variable: workspace host.
pub const ENV_HOST: &str = "DATABRICKS_HOST";
/// Environment variable: OAuth client id of a service principal.
pub const ENV_CLIENT_ID: &str = "DATABRICKS_CLIENT_ID";
/// Environment variable: OAuth client secret.
pub const ENV_CLIENT_SECRET: &str = "DATABRICKS_CLIENT_SECRET";
/// Environment variable: personal access token.
pub const ENV_TOKEN: &str = "DATABRICKS_TOKEN";
/// Environment variable: SQL warehouse id.
pub const ENV_WAREHOUSE_ID: &str = "DATABRICKS_WAREHOUSE_ID";
/// Environment variable: profile name in the config file.
pub const ENV_CONFIG_PROFILE: &str = "DATABRICKS_CONFIG_PROFILE";
/// Environment variable: path of the config file (default `~/.databrickscfg`).
pub const ENV_CONFIG_FILE: &str = "DATABRICKS_CONFIG_FILE";
/// Environment variable: `pat` or `oauth-m2m`, choosing between credentials when both are set.
pub const ENV_AUTH_TYPE: &str = "DATABRICKS_AUTH_TYPE";

/// Largest statement the Statement Execution API accepts.
pub const MAX_STATEMENT_BYTES_LIMIT: usize = 16 * 1024 * 1024;

/// A configuration problem, naming the variable, key or setting concerned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Databricks configuration: {0}")]
pub struct ConfigError(pub String);

/// How the client authenticates.
#[derive(Clone)]
#[non_exhaustive]
pub enum Credentials {
    /// OAuth machine-to-machine (service principal client credentials).
    OAuthM2M {
        /// The client (application) id; not secret.
        client_id: String,
        /// The client secret.
        client_secret: SecretString,
    },
    /// A personal access token (or any static bearer token).
    Token(SecretString),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::OAuthM2M { client_id, .. } => f
                .debug_struct("OAuthM2M")
                .field("client_id", client_id)
                .field("client_secret", &"[REDACTED]")
                .finish(),
            Credentials::Token(_) => f.write_str("Token([REDACTED])"),
        }
    }
}

/// Timeouts, retries and limits. The defaults suit a nightly or hourly load.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Per-request HTTP timeout (`None`: no timeout). Default 60 s.
    pub http_timeout: Option<Duration>,
    /// Retry policy for every REST call (idempotency decides what is retried).
    pub retry: RetryPolicy,
    /// How long the statement POST waits for a result on the server (`0s` or 5–50 s). Default 10 s.
    pub wait_timeout: Duration,
    /// Overall deadline of one statement; past it the statement is cancelled. Default 30 min.
    pub statement_timeout: Duration,
    /// First delay between status polls. Default 500 ms.
    pub poll_initial: Duration,
    /// Largest delay between status polls. Default 10 s.
    pub poll_max: Duration,
    /// Largest generated statement in bytes (at most 16 MiB). Default 8 MiB.
    pub max_statement_bytes: usize,
    /// Requests in flight at once to this workspace. Default 16.
    pub max_concurrent_requests: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            http_timeout: Some(Duration::from_secs(60)),
            retry: RetryPolicy::default(),
            wait_timeout: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(30 * 60),
            poll_initial: Duration::from_millis(500),
            poll_max: Duration::from_secs(10),
            max_statement_bytes: 8 * 1024 * 1024,
            max_concurrent_requests: 16,
        }
    }
}

/// A validated client configuration. Build it with [`Config::builder`] or
/// [`Config::from_env`]. `Debug` never shows secrets.
#[derive(Debug, Clone)]
pub struct Config {
    host: Url,
    credentials: Credentials,
    warehouse_id: Option<String>,
    catalog: Option<String>,
    schema: Option<String>,
    options: ClientOptions,
}

impl Config {
    /// An empty builder.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    /// Configuration from the process environment and the config file it points to.
    pub fn from_env() -> Result<Config, ConfigError> {
        ConfigBuilder::from_lookup(|k| std::env::var(k).ok())?.build()
    }

    /// The workspace URL, normalised to `scheme://host[:port]` with no trailing slash.
    pub fn host(&self) -> &Url {
        &self.host
    }

    /// The credentials.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// The SQL warehouse id, if configured.
    pub fn warehouse_id(&self) -> Option<&str> {
        self.warehouse_id.as_deref()
    }

    /// The warehouse id, or an error naming how to set it.
    pub fn require_warehouse_id(&self) -> Result<&str, ConfigError> {
        self.warehouse_id.as_deref().ok_or_else(|| {
            ConfigError(format!(
                "no SQL warehouse id: set {ENV_WAREHOUSE_ID}, `warehouse_id` in the profile, or ConfigBuilder::warehouse_id"
            ))
        })
    }

    /// The default catalog for statements, if configured.
    pub fn catalog(&self) -> Option<&str> {
        self.catalog.as_deref()
    }

    /// The default schema for statements, if configured.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Timeouts, retries and limits.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// A URL on this workspace for an absolute `path` such as `/api/2.0/sql/statements`.
    pub fn url(&self, path: &str) -> Url {
        let mut u = self.host.clone();
        match path.split_once('?') {
            Some((p, q)) => {
                u.set_path(p);
                u.set_query(Some(q));
            }
            None => u.set_path(path),
        }
        u
    }
}

#[derive(Debug, Clone)]
struct Setting<T> {
    value: T,
    origin: String,
}

fn set<T>(value: T, origin: impl Into<String>) -> Option<Setting<T>> {
    Some(Setting {
        value,
        origin: origin.into(),
    })
}

#[derive(Debug, Clone, Default)]
struct CredentialParts {
    token: Option<Setting<SecretString>>,
    client_id: Option<Setting<String>>,
    client_secret: Option<Setting<SecretString>>,
}

impl CredentialParts {
    fn is_empty(&self) -> bool {
        self.token.is_none() && self.client_id.is_none() && self.client_secret.is_none()
    }
}

/// Builds a [`Config`]. Setters override values loaded from the environment or a profile.
#[derive(Debug, Clone, Default)]
pub struct ConfigBuilder {
    host: Option<Setting<String>>,
    credentials: Option<CredentialParts>,
    warehouse_id: Option<Setting<String>>,
    auth_type: Option<Setting<String>>,
    catalog: Option<String>,
    schema: Option<String>,
    allow_http: bool,
    options: ClientOptions,
}

impl ConfigBuilder {
    /// Loads `DATABRICKS_*` settings through `lookup` (use `|k| std::env::var(k).ok()` for
    /// the real environment, or a map in tests), and the profile from the config file
    /// (`DATABRICKS_CONFIG_FILE`, or `$HOME/.databrickscfg`) selected by
    /// `DATABRICKS_CONFIG_PROFILE`, the file's `[__settings__] default_profile`, or `DEFAULT`.
    ///
    /// A missing default file is fine; a missing file or profile that was asked for by name is
    /// an error.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| {
            lookup(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut b = ConfigBuilder::default();

        // Profile first (lowest precedence), then the environment on top.
        let (path, explicit_file) = match get(ENV_CONFIG_FILE) {
            Some(p) => (Some(expand_home(&p, get("HOME").as_deref())), true),
            None => (
                get("HOME").map(|h| Path::new(&h).join(".databrickscfg")),
                false,
            ),
        };
        let profile_name = get(ENV_CONFIG_PROFILE);
        if let Some(path) = path {
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let file = parse_ini(&text);
                    let (name, origin) = match &profile_name {
                        Some(n) => (n.clone(), format!("{ENV_CONFIG_PROFILE}={n}")),
                        None => match file
                            .get("__settings__")
                            .and_then(|s| s.get("default_profile"))
                        {
                            Some(n) => (n.clone(), "[__settings__] default_profile".to_string()),
                            None => ("DEFAULT".to_string(), "default".to_string()),
                        },
                    };
                    match file.get(&name) {
                        Some(section) => b.apply_profile(&name, &path, section),
                        None if origin != "default" => {
                            return Err(ConfigError(format!(
                                "profile [{name}] (chosen by {origin}) is not in {}",
                                path.display()
                            )))
                        }
                        None => {}
                    }
                }
                Err(e) if explicit_file || profile_name.is_some() => {
                    return Err(ConfigError(format!(
                        "cannot read the config file {}{}: {e}",
                        path.display(),
                        if explicit_file {
                            format!(" (from {ENV_CONFIG_FILE})")
                        } else {
                            String::new()
                        }
                    )))
                }
                Err(_) => {}
            }
        } else if let Some(n) = profile_name {
            return Err(ConfigError(format!(
                "{ENV_CONFIG_PROFILE}={n} is set but there is no config file: set {ENV_CONFIG_FILE} or HOME"
            )));
        }

        if let Some(h) = get(ENV_HOST) {
            b.host = set(h, ENV_HOST);
        }
        if let Some(w) = get(ENV_WAREHOUSE_ID) {
            b.warehouse_id = set(w, ENV_WAREHOUSE_ID);
        }
        if let Some(a) = get(ENV_AUTH_TYPE) {
            b.auth_type = set(a, ENV_AUTH_TYPE);
        }
        let env_creds = CredentialParts {
            token: get(ENV_TOKEN).and_then(|t| set(SecretString::from(t), ENV_TOKEN)),
            client_id: get(ENV_CLIENT_ID).and_then(|t| set(t, ENV_CLIENT_ID)),
            client_secret: get(ENV_CLIENT_SECRET)
                .and_then(|t| set(SecretString::from(t), ENV_CLIENT_SECRET)),
        };
        if !env_creds.is_empty() {
            b.credentials = Some(env_creds);
        }
        Ok(b)
    }

    fn apply_profile(&mut self, name: &str, path: &Path, section: &BTreeMap<String, String>) {
        let origin = |key: &str| format!("`{key}` in profile [{name}] of {}", path.display());
        let get = |k: &str| section.get(k).filter(|v| !v.is_empty()).cloned();
        if let Some(h) = get("host") {
            self.host = set(h, origin("host"));
        }
        if let Some(w) = get("warehouse_id") {
            self.warehouse_id = set(w, origin("warehouse_id"));
        }
        if let Some(a) = get("auth_type") {
            self.auth_type = set(a, origin("auth_type"));
        }
        let creds = CredentialParts {
            token: get("token").and_then(|t| set(SecretString::from(t), origin("token"))),
            client_id: get("client_id").and_then(|t| set(t, origin("client_id"))),
            client_secret: get("client_secret")
                .and_then(|t| set(SecretString::from(t), origin("client_secret"))),
        };
        if !creds.is_empty() {
            self.credentials = Some(creds);
        }
    }

    /// The workspace host, with or without `https://` (e.g. `dbc-1234.cloud.databricks.com`).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = set(host.into(), "ConfigBuilder::host");
        self
    }

    /// OAuth M2M credentials of a service principal (replaces any other credentials).
    pub fn client_credentials(
        mut self,
        client_id: impl Into<String>,
        client_secret: impl Into<SecretString>,
    ) -> Self {
        self.credentials = Some(CredentialParts {
            token: None,
            client_id: set(client_id.into(), "ConfigBuilder::client_credentials"),
            client_secret: set(client_secret.into(), "ConfigBuilder::client_credentials"),
        });
        self.auth_type = None;
        self
    }

    /// A personal access token (replaces any other credentials).
    pub fn token(mut self, token: impl Into<SecretString>) -> Self {
        self.credentials = Some(CredentialParts {
            token: set(token.into(), "ConfigBuilder::token"),
            ..CredentialParts::default()
        });
        self.auth_type = None;
        self
    }

    /// The SQL warehouse that runs statements.
    pub fn warehouse_id(mut self, id: impl Into<String>) -> Self {
        self.warehouse_id = set(id.into(), "ConfigBuilder::warehouse_id");
        self
    }

    /// Default catalog for statements and for the sink's tables.
    pub fn catalog(mut self, catalog: impl Into<String>) -> Self {
        self.catalog = Some(catalog.into());
        self
    }

    /// Default schema for statements and for the sink's tables.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// Allows a plain `http://` host. Only for local testing against a fake server; never
    /// the default.
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// Replaces the timeouts, retries and limits.
    pub fn options(mut self, options: ClientOptions) -> Self {
        self.options = options;
        self
    }

    /// Validates and builds the configuration.
    pub fn build(self) -> Result<Config, ConfigError> {
        let host = self.host.ok_or_else(|| {
            ConfigError(format!(
                "no workspace host: set {ENV_HOST}, `host` in a ~/.databrickscfg profile, or ConfigBuilder::host"
            ))
        })?;
        let host = normalize_host(&host.value, self.allow_http)
            .map_err(|e| ConfigError(format!("{} ({}): {e}", host.value, host.origin)))?;
        let mut creds = self.credentials.unwrap_or_default();
        if let Some(a) = &self.auth_type {
            match a.value.as_str() {
                "pat" => {
                    creds.client_id = None;
                    creds.client_secret = None;
                }
                "oauth-m2m" => creds.token = None,
                other => {
                    return Err(ConfigError(format!(
                        "auth type `{other}` ({}) is not supported by this client; use `pat` or `oauth-m2m`",
                        a.origin
                    )))
                }
            }
        }
        let credentials = match (creds.token, creds.client_id, creds.client_secret) {
            (Some(t), None, None) => Credentials::Token(t.value),
            (None, Some(id), Some(secret)) => Credentials::OAuthM2M {
                client_id: id.value,
                client_secret: secret.value,
            },
            (Some(t), id, secret) => {
                let other = id.map(|s| s.origin).or(secret.map(|s| s.origin)).unwrap_or_default();
                return Err(ConfigError(format!(
                    "conflicting credentials: a personal access token ({}) and OAuth client credentials ({other}) are both set; keep one",
                    t.origin
                )));
            }
            (None, Some(id), None) => {
                return Err(ConfigError(format!(
                    "client id is set ({}) but the client secret is missing: set {ENV_CLIENT_SECRET} or `client_secret`",
                    id.origin
                )))
            }
            (None, None, Some(secret)) => {
                return Err(ConfigError(format!(
                    "client secret is set ({}) but the client id is missing: set {ENV_CLIENT_ID} or `client_id`",
                    secret.origin
                )))
            }
            (None, None, None) => {
                return Err(ConfigError(format!(
                    "no credentials: set {ENV_CLIENT_ID} and {ENV_CLIENT_SECRET} (OAuth M2M) or {ENV_TOKEN}, the same keys in a ~/.databrickscfg profile, or use ConfigBuilder::client_credentials"
                )))
            }
        };
        let o = &self.options;
        let wait = o.wait_timeout.as_secs();
        if !(wait == 0 || (5..=50).contains(&wait)) || o.wait_timeout.subsec_nanos() != 0 {
            return Err(ConfigError(format!(
                "options.wait_timeout is {:?}; it must be 0 s or whole seconds from 5 s to 50 s",
                o.wait_timeout
            )));
        }
        if let Some(t) = o.http_timeout {
            if t <= o.wait_timeout {
                return Err(ConfigError(format!(
                    "options.http_timeout ({t:?}) must be longer than options.wait_timeout ({:?}), or every statement POST times out",
                    o.wait_timeout
                )));
            }
        }
        if o.max_statement_bytes == 0 || o.max_statement_bytes > MAX_STATEMENT_BYTES_LIMIT {
            return Err(ConfigError(format!(
                "options.max_statement_bytes is {}; it must be between 1 and {MAX_STATEMENT_BYTES_LIMIT} (16 MiB)",
                o.max_statement_bytes
            )));
        }
        Ok(Config {
            host,
            credentials,
            warehouse_id: self.warehouse_id.map(|w| w.value),
            catalog: self.catalog,
            schema: self.schema,
            options: self.options,
        })
    }
}

/// Normalises a host to `scheme://host[:port]`: adds `https://` when no scheme is given,
/// drops a trailing slash and any path, refuses `http://` unless `allow_http`.
pub fn normalize_host(raw: &str, allow_http: bool) -> Result<Url, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("the host is empty".into());
    }
    let with_scheme = if raw.contains("://") {
        raw.to_string()
    } else {
        format!("https://{raw}")
    };
    let url = Url::parse(&with_scheme).map_err(|e| format!("not a valid host: {e}"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => {
            return Err(
                "plain http:// is refused; use https:// (ConfigBuilder::allow_insecure_http is for local tests only)"
                    .into(),
            )
        }
        other => return Err(format!("unsupported scheme `{other}`; use https://")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("no host name".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials must not be part of the host URL".into());
    }
    let origin = url.origin().ascii_serialization();
    Url::parse(&origin).map_err(|e| format!("not a valid host: {e}"))
}

fn expand_home(path: &str, home: Option<&str>) -> PathBuf {
    match (path.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => Path::new(home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// Parses the INI dialect of `~/.databrickscfg`: `[section]` headers, `key = value` lines,
/// whole-line `#`/`;` comments, inline comments after whitespace, single or double quoted
/// values. Keys are lowercased.
pub fn parse_ini(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut section = "DEFAULT".to_string();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.split_once(']')) {
            section = name.0.trim().to_string();
            out.entry(section.clone()).or_default();
            continue;
        }
        let Some((key, value)) = line.split_once('=').or_else(|| line.split_once(':')) else {
            continue;
        };
        out.entry(section.clone())
            .or_default()
            .insert(key.trim().to_ascii_lowercase(), ini_value(value.trim()));
    }
    out
}

fn ini_value(v: &str) -> String {
    for q in ['"', '\''] {
        if let Some(rest) = v.strip_prefix(q) {
            if let Some(end) = rest.find(q) {
                return rest[..end].to_string();
            }
        }
    }
    let mut cut = v.len();
    for (i, c) in v.char_indices() {
        if (c == '#' || c == ';') && v[..i].ends_with([' ', '\t']) {
            cut = i;
            break;
        }
    }
    v[..cut].trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn cfg_file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    const PROFILE: &str = r#"
# a comment
; another
[DEFAULT]
host = https://dbc-default.cloud.databricks.com/
token = "dapi-default-secret"

[__settings__]
default_profile = sp-prod

[sp-prod]
host = adb-123.4.azuredatabricks.net   # inline comment
client_id = 'sp-client'
client_secret = "sp-secret ; with semicolon"
warehouse_id = wh-profile
"#;

    #[test]
    fn host_is_normalised_and_http_refused_by_default() {
        for raw in [
            "dbc-1.cloud.databricks.com",
            "https://dbc-1.cloud.databricks.com/",
            " https://dbc-1.cloud.databricks.com/some/path?o=1 ",
        ] {
            assert_eq!(
                normalize_host(raw, false).unwrap().as_str(),
                "https://dbc-1.cloud.databricks.com/"
            );
        }
        let err = normalize_host("http://127.0.0.1:8080", false).unwrap_err();
        assert!(err.contains("http://"), "{err}");
        assert_eq!(
            normalize_host("http://127.0.0.1:8080/", true)
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8080/"
        );
        assert!(normalize_host("ftp://x", true).is_err());
        let err = Config::builder()
            .host("http://localhost:1")
            .token(SecretString::from("t".to_string()))
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("ConfigBuilder::host"), "{err}");
    }

    #[test]
    fn profile_file_with_settings_default_and_comments() {
        let f = cfg_file(PROFILE);
        let path = f.path().to_str().unwrap();
        let c = ConfigBuilder::from_lookup(lookup(&[(ENV_CONFIG_FILE, path)]))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(c.host().as_str(), "https://adb-123.4.azuredatabricks.net/");
        assert_eq!(c.warehouse_id(), Some("wh-profile"));
        match c.credentials() {
            Credentials::OAuthM2M {
                client_id,
                client_secret,
            } => {
                assert_eq!(client_id, "sp-client");
                assert_eq!(client_secret.expose_secret(), "sp-secret ; with semicolon");
            }
            other => panic!("{other:?}"),
        }
        // An explicit profile wins over the settings default.
        let c = ConfigBuilder::from_lookup(lookup(&[
            (ENV_CONFIG_FILE, path),
            (ENV_CONFIG_PROFILE, "DEFAULT"),
        ]))
        .unwrap()
        .build()
        .unwrap();
        assert_eq!(
            c.host().as_str(),
            "https://dbc-default.cloud.databricks.com/"
        );
        assert!(
            matches!(c.credentials(), Credentials::Token(t) if t.expose_secret() == "dapi-default-secret")
        );
    }

    #[test]
    fn env_overrides_profile_and_code_overrides_env() {
        let f = cfg_file(PROFILE);
        let path = f.path().to_str().unwrap();
        let b = ConfigBuilder::from_lookup(lookup(&[
            (ENV_CONFIG_FILE, path),
            (ENV_HOST, "env-host.cloud.databricks.com"),
            (ENV_TOKEN, "dapi-env"),
            (ENV_WAREHOUSE_ID, "wh-env"),
        ]))
        .unwrap();
        let c = b.clone().build().unwrap();
        assert_eq!(c.host().as_str(), "https://env-host.cloud.databricks.com/");
        assert_eq!(c.warehouse_id(), Some("wh-env"));
        // The environment's token replaces the profile's client credentials as a group.
        assert!(
            matches!(c.credentials(), Credentials::Token(t) if t.expose_secret() == "dapi-env")
        );
        let c = b
            .host("code-host.cloud.databricks.com")
            .warehouse_id("wh-code")
            .build()
            .unwrap();
        assert_eq!(c.host().as_str(), "https://code-host.cloud.databricks.com/");
        assert_eq!(c.warehouse_id(), Some("wh-code"));
    }

    #[test]
    fn missing_and_conflicting_settings_name_the_keys() {
        let err = ConfigBuilder::from_lookup(lookup(&[(ENV_TOKEN, "x")]))
            .unwrap()
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains(ENV_HOST), "{err}");

        let err = ConfigBuilder::from_lookup(lookup(&[(ENV_HOST, "h.cloud.databricks.com")]))
            .unwrap()
            .build()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(ENV_CLIENT_ID) && err.contains(ENV_TOKEN),
            "{err}"
        );

        let err = ConfigBuilder::from_lookup(lookup(&[
            (ENV_HOST, "h.cloud.databricks.com"),
            (ENV_TOKEN, "dapi-secret-value"),
            (ENV_CLIENT_ID, "id"),
        ]))
        .unwrap()
        .build()
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("conflicting") && err.contains(ENV_TOKEN) && err.contains(ENV_CLIENT_ID),
            "{err}"
        );
        assert!(!err.contains("dapi-secret-value"));

        let err = ConfigBuilder::from_lookup(lookup(&[
            (ENV_HOST, "h.cloud.databricks.com"),
            (ENV_CLIENT_ID, "id"),
        ]))
        .unwrap()
        .build()
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(ENV_CLIENT_SECRET) && err.contains(ENV_CLIENT_ID),
            "{err}"
        );

        let f = cfg_file(PROFILE);
        let err = ConfigBuilder::from_lookup(lookup(&[
            (ENV_CONFIG_FILE, f.path().to_str().unwrap()),
            (ENV_CONFIG_PROFILE, "nope"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("[nope]") && err.contains(ENV_CONFIG_PROFILE),
            "{err}"
        );

        let err = ConfigBuilder::from_lookup(lookup(&[(ENV_CONFIG_FILE, "/nonexistent/cfg")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/nonexistent/cfg") && err.contains(ENV_CONFIG_FILE),
            "{err}"
        );

        // No HOME, no file: fine until build() reports the missing host.
        assert!(ConfigBuilder::from_lookup(lookup(&[])).is_ok());
        let err = Config::builder()
            .host("h.cloud.databricks.com")
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains("no credentials"), "{err}");
        let err = Config::builder()
            .host("h.cloud.databricks.com")
            .token(SecretString::from("t".to_string()))
            .build()
            .unwrap()
            .require_warehouse_id()
            .unwrap_err()
            .to_string();
        assert!(err.contains(ENV_WAREHOUSE_ID), "{err}");
    }

    #[test]
    fn auth_type_chooses_between_credentials() {
        let both = [
            (ENV_HOST, "h.cloud.databricks.com"),
            (ENV_TOKEN, "dapi-x"),
            (ENV_CLIENT_ID, "id"),
            (ENV_CLIENT_SECRET, "secret"),
        ];
        let with = |auth: &str| {
            let mut pairs = both.to_vec();
            pairs.push((ENV_AUTH_TYPE, auth));
            ConfigBuilder::from_lookup(lookup(&pairs)).unwrap().build()
        };
        assert!(matches!(
            with("pat").unwrap().credentials(),
            Credentials::Token(_)
        ));
        assert!(matches!(
            with("oauth-m2m").unwrap().credentials(),
            Credentials::OAuthM2M { .. }
        ));
        let err = with("azure-cli").unwrap_err().to_string();
        assert!(
            err.contains("azure-cli") && err.contains(ENV_AUTH_TYPE),
            "{err}"
        );
    }

    #[test]
    fn debug_of_config_redacts_secrets() {
        let c = Config::builder()
            .host("h.cloud.databricks.com")
            .client_credentials("client-1", SecretString::from("very-secret-1".to_string()))
            .build()
            .unwrap();
        let d = format!("{c:?}");
        assert!(
            d.contains("client-1") && !d.contains("very-secret-1"),
            "{d}"
        );
        let c = Config::builder()
            .host("h.cloud.databricks.com")
            .token(SecretString::from("dapi-very-secret-2".to_string()))
            .build()
            .unwrap();
        assert!(!format!("{c:?}").contains("dapi-very-secret-2"));
        let b = ConfigBuilder::from_lookup(lookup(&[(ENV_TOKEN, "dapi-very-secret-3")])).unwrap();
        assert!(!format!("{b:?}").contains("dapi-very-secret-3"));
    }

    #[test]
    fn option_limits_are_checked() {
        let base = || {
            Config::builder()
                .host("h.cloud.databricks.com")
                .token(SecretString::from("t".to_string()))
        };
        let err = base()
            .options(ClientOptions {
                wait_timeout: Duration::from_secs(3),
                ..ClientOptions::default()
            })
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("wait_timeout"), "{err}");
        let err = base()
            .options(ClientOptions {
                max_statement_bytes: 17 * 1024 * 1024,
                ..ClientOptions::default()
            })
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("max_statement_bytes"), "{err}");
        let err = base()
            .options(ClientOptions {
                http_timeout: Some(Duration::from_secs(10)),
                ..ClientOptions::default()
            })
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("http_timeout"), "{err}");
    }
}
