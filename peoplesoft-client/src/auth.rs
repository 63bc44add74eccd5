//! Credentials: HTTP Basic (every PeopleTools version), a static bearer token, or OAuth2
//! client credentials (PeopleTools 8.58+), all turned into one sync-core
//! [`AuthProvider`].
//!
//! PeopleSoft is only the *resource server*; the token comes from the site's authorization
//! server (IDCS / OCI IAM, Azure AD, Okta, Ping…). Which claim maps the token to an OPRID
//! (subject or email) is configured on the PeopleSoft side.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sync_core::http::{
    AccessToken, AuthProvider, BasicAuth, Idempotency, RetryPolicy, StaticBearer, TokenCache,
    TokenFetcher,
};
use sync_core::BoxError;
use url::Url;

use crate::error::{truncate_body, ConfigError};

/// How the client authenticates to PeopleSoft.
///
/// `Debug` never shows a password, secret or token.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// HTTP Basic with a PeopleSoft user (OPRID) and password. Works on every PeopleTools
    /// version; the operation must use "Basic Authentication" request verification.
    Basic {
        /// The OPRID.
        oprid: String,
        /// The password.
        password: SecretString,
    },
    /// A bearer token obtained elsewhere (PeopleTools 8.58+, OAuth2 request verification).
    Bearer(SecretString),
    /// OAuth2 client credentials against a token endpoint, cached and refreshed through
    /// sync-core's [`TokenCache`].
    OAuth2(OAuth2ClientCredentials),
}

impl Credentials {
    /// HTTP Basic credentials.
    pub fn basic(oprid: impl Into<String>, password: SecretString) -> Self {
        Credentials::Basic {
            oprid: oprid.into(),
            password,
        }
    }

    /// A static bearer token.
    pub fn bearer(token: SecretString) -> Self {
        Credentials::Bearer(token)
    }

    /// Builds the header source. OAuth2 uses `http` for token requests.
    pub(crate) fn provider(
        &self,
        http: reqwest::Client,
        retry: RetryPolicy,
    ) -> Arc<dyn AuthProvider> {
        match self {
            Credentials::Basic { oprid, password } => {
                Arc::new(BasicAuth::new(oprid.clone(), password.clone()))
            }
            Credentials::Bearer(t) => Arc::new(StaticBearer::new(t.clone())),
            Credentials::OAuth2(cfg) => Arc::new(TokenCache::new(Arc::new(OAuth2Fetcher {
                config: cfg.clone(),
                http,
                retry,
            }))),
        }
    }
}

/// Where the OAuth2 client id and secret go in the token request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuthMethod {
    /// `Authorization: Basic base64(client_id:client_secret)` (`client_secret_basic`; the
    /// default, and what IDCS / OCI IAM expect).
    #[default]
    BasicHeader,
    /// `client_id` and `client_secret` in the form body (`client_secret_post`; common with
    /// Azure AD and Okta).
    FormBody,
}

/// OAuth2 client-credentials settings.
///
/// ```
/// use peoplesoft_client::{ClientAuthMethod, OAuth2ClientCredentials};
/// use secrecy::SecretString;
///
/// let oauth = OAuth2ClientCredentials::new(
///     "https://idcs-1234.identity.oraclecloud.com/oauth2/v1/token",
///     "client-id",
///     SecretString::from("client-secret".to_string()),
/// )
/// .unwrap()
/// .scope("https://erp.example.com:443/PSIGW/RESTListeningConnector/PSFT_EP/read")
/// .client_auth(ClientAuthMethod::BasicHeader);
/// assert!(!format!("{oauth:?}").contains("client-secret"));
/// ```
#[derive(Clone)]
pub struct OAuth2ClientCredentials {
    token_url: Url,
    client_id: String,
    client_secret: SecretString,
    scope: Option<String>,
    audience: Option<String>,
    client_auth: ClientAuthMethod,
    extra_params: Vec<(String, String)>,
}

impl std::fmt::Debug for OAuth2ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth2ClientCredentials")
            .field("token_url", &self.token_url.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &"[REDACTED]")
            .field("scope", &self.scope)
            .field("audience", &self.audience)
            .field("client_auth", &self.client_auth)
            .finish()
    }
}

impl OAuth2ClientCredentials {
    /// Settings for `token_url` (must be `https`, or `http` on a loopback address for tests).
    pub fn new(
        token_url: &str,
        client_id: impl Into<String>,
        client_secret: SecretString,
    ) -> Result<Self, ConfigError> {
        let url = Url::parse(token_url)
            .map_err(|e| ConfigError::new("token_url", token_url, e.to_string()))?;
        let loopback = matches!(
            url.host(),
            Some(url::Host::Ipv4(ip)) if ip.is_loopback()
        ) || matches!(url.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
            || url.host_str() == Some("localhost");
        if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
            return Err(ConfigError::new(
                "token_url",
                token_url,
                "must use https (http is accepted only for loopback test servers)",
            ));
        }
        let client_id = client_id.into();
        if client_id.is_empty() {
            return Err(ConfigError::new("client_id", "", "must not be empty"));
        }
        Ok(Self {
            token_url: url,
            client_id,
            client_secret,
            scope: None,
            audience: None,
            client_auth: ClientAuthMethod::default(),
            extra_params: Vec::new(),
        })
    }

    /// The `scope` parameter (IDCS: the primary audience followed by `read`, e.g.
    /// `https://host:port/PSIGW/RESTListeningConnector/NODE/read`; Azure: `api://…/.default`).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The `audience` parameter (Okta / Auth0 style servers).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Where the client id and secret go (default: HTTP Basic header).
    pub fn client_auth(mut self, method: ClientAuthMethod) -> Self {
        self.client_auth = method;
        self
    }

    /// Any further form parameter the authorization server requires (e.g. `resource`).
    pub fn extra_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra_params.push((name.into(), value.into()));
        self
    }

    /// The token endpoint.
    pub fn token_url(&self) -> &Url {
        &self.token_url
    }
}

/// A token-endpoint failure, typed so the client can tell a retryable outage from a refusal.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct TokenEndpointError {
    pub(crate) message: String,
    /// Connect errors, timeouts, 5xx, 429: worth trying again next cycle.
    pub(crate) transient: bool,
}

fn token_err(message: String, transient: bool) -> BoxError {
    Box::new(TokenEndpointError { message, transient })
}

struct OAuth2Fetcher {
    config: OAuth2ClientCredentials,
    http: reqwest::Client,
    retry: RetryPolicy,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

/// `expires_in` as a number or a numeric string (some servers send `"3600"`).
fn parse_expires_in(v: &serde_json::Value) -> Option<Duration> {
    match v {
        serde_json::Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .map(Duration::from_secs),
        serde_json::Value::String(s) => s.trim().parse::<u64>().ok().map(Duration::from_secs),
        _ => None,
    }
}

#[async_trait]
impl TokenFetcher for OAuth2Fetcher {
    async fn fetch_token(&self) -> Result<AccessToken, BoxError> {
        let c = &self.config;
        let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
        if let Some(s) = &c.scope {
            form.push(("scope", s));
        }
        if let Some(a) = &c.audience {
            form.push(("audience", a));
        }
        for (k, v) in &c.extra_params {
            form.push((k, v));
        }
        if c.client_auth == ClientAuthMethod::FormBody {
            form.push(("client_id", &c.client_id));
            form.push(("client_secret", c.client_secret.expose_secret()));
        }
        let resp = self
            .retry
            .send(Idempotency::Idempotent, || {
                let mut req = self
                    .http
                    .post(c.token_url.clone())
                    .header(reqwest::header::ACCEPT, "application/json")
                    .form(&form);
                if c.client_auth == ClientAuthMethod::BasicHeader {
                    req = req.basic_auth(&c.client_id, Some(c.client_secret.expose_secret()));
                }
                req.send()
            })
            .await
            .map_err(|e| token_err(format!("token endpoint {}: {e}", c.token_url), true))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| {
            token_err(
                format!("token endpoint {}: reading body: {e}", c.token_url),
                true,
            )
        })?;
        if !status.is_success() {
            // Token endpoints answer errors as `{"error":"invalid_client",...}`; they never
            // echo the secret, but cut the body anyway.
            let transient = status.is_server_error() || status.as_u16() == 429;
            return Err(token_err(
                format!(
                    "token endpoint {} answered HTTP {}: {}",
                    c.token_url,
                    status.as_u16(),
                    truncate_body(&body)
                ),
                transient,
            ));
        }
        let parsed: TokenResponse = serde_json::from_str(&body).map_err(|e| {
            token_err(
                format!(
                    "token endpoint {} sent an unreadable token response ({e})",
                    c.token_url
                ),
                false,
            )
        })?;
        if let Some(t) = &parsed.token_type {
            if !t.eq_ignore_ascii_case("bearer") {
                return Err(format!(
                    "token endpoint {} issued a `{t}` token, not a bearer token",
                    c.token_url
                )
                .into());
            }
        }
        Ok(AccessToken {
            secret: SecretString::from(parsed.access_token),
            expires_in: parsed.expires_in.as_ref().and_then(parse_expires_in),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_in_number_or_string() {
        assert_eq!(
            parse_expires_in(&serde_json::json!(3600)),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            parse_expires_in(&serde_json::json!("1800")),
            Some(Duration::from_secs(1800))
        );
        assert_eq!(parse_expires_in(&serde_json::json!(null)), None);
    }

    #[test]
    fn token_url_must_be_https_unless_loopback() {
        let s = || SecretString::from("x".to_string());
        assert!(OAuth2ClientCredentials::new("http://idp.example.com/token", "id", s()).is_err());
        assert!(OAuth2ClientCredentials::new("http://127.0.0.1:9/token", "id", s()).is_ok());
        assert_eq!(
            OAuth2ClientCredentials::new("https://idp/token", "", s())
                .unwrap_err()
                .field,
            "client_id"
        );
    }

    #[test]
    fn debug_redacts_every_secret() {
        let c = Credentials::basic("PS", SecretString::from("pw-hunter2".to_string()));
        assert!(!format!("{c:?}").contains("hunter2"));
        let b = Credentials::bearer(SecretString::from("tok-abc".to_string()));
        assert!(!format!("{b:?}").contains("tok-abc"));
        let o = Credentials::OAuth2(
            OAuth2ClientCredentials::new(
                "https://idp/token",
                "id",
                SecretString::from("sec-xyz".to_string()),
            )
            .unwrap(),
        );
        assert!(!format!("{o:?}").contains("sec-xyz"));
    }
}
