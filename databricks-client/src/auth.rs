//! OAuth machine-to-machine tokens from the workspace OIDC endpoint.
//!
//! The token endpoint is discovered at `/oidc/.well-known/oauth-authorization-server`
//! (`token_endpoint`), falling back to `/oidc/v1/token` when discovery answers 404. The
//! request itself (`grant_type=client_credentials&scope=all-apis` with the client id and
//! secret in HTTP Basic, as every official SDK does), its 429/503 retry honouring
//! `Retry-After`, and the parsing of token and error replies are sync-core's shared
//! [`ClientCredentialsFetcher`]; this module only adds discovery. Caching, early refresh and
//! single-flight are [`sync_core::http::TokenCache`]'s job.

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::SecretString;
use serde::Deserialize;
use sync_core::http::{
    redact_secret, AccessToken, AuthProvider, ClientCredentials, ClientCredentialsFetcher,
    Idempotency, OAuthError, RetryPolicy, StaticBearer, TokenCache, TokenFetcher,
};
use sync_core::BoxError;
use tokio::sync::OnceCell;
use url::Url;

use crate::config::{Config, Credentials};
use crate::error::{truncate, ApiError, Error};

/// Path of the workspace OAuth discovery document.
pub const DISCOVERY_PATH: &str = "/oidc/.well-known/oauth-authorization-server";
/// Token endpoint used when discovery answers 404.
pub const FALLBACK_TOKEN_PATH: &str = "/oidc/v1/token";
/// The scope requested.
pub const SCOPE: &str = "all-apis";

/// Fetches OAuth M2M tokens for a service principal. Wrap it in a
/// [`TokenCache`]; [`auth_provider`] does that for you.
pub struct OAuthM2M {
    http: reqwest::Client,
    host: Url,
    client_id: String,
    client_secret: SecretString,
    retry: RetryPolicy,
    fetcher: OnceCell<ClientCredentialsFetcher>,
}

impl std::fmt::Debug for OAuthM2M {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthM2M")
            .field("host", &self.host.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Discovery {
    token_endpoint: Option<String>,
}

impl OAuthM2M {
    /// A fetcher for `client_id` on the workspace at `host`.
    pub fn new(
        http: reqwest::Client,
        host: Url,
        client_id: impl Into<String>,
        client_secret: impl Into<SecretString>,
        retry: RetryPolicy,
    ) -> Self {
        Self {
            http,
            host,
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            retry,
            fetcher: OnceCell::new(),
        }
    }

    fn oauth_error(&self, endpoint: &Url, status: Option<u16>, message: String) -> Error {
        Error::OAuth {
            endpoint: endpoint.as_str().to_string(),
            status,
            message: self.redact(&message),
        }
    }

    /// Belt and braces: a server echoing the secret must not put it in our errors.
    fn redact(&self, text: &str) -> String {
        redact_secret(text, &self.client_secret)
    }

    /// The token endpoint, discovered once (a failed discovery is not cached).
    pub async fn token_endpoint(&self) -> Result<Url, Error> {
        Ok(self.fetcher().await?.credentials().token_url().clone())
    }

    /// The shared client-credentials fetcher for the discovered endpoint, built once.
    async fn fetcher(&self) -> Result<&ClientCredentialsFetcher, Error> {
        self.fetcher
            .get_or_try_init(|| async {
                let endpoint = self.discover().await?;
                let credentials = ClientCredentials::new(
                    endpoint,
                    self.client_id.clone(),
                    self.client_secret.clone(),
                )
                .scope(SCOPE);
                Ok(
                    ClientCredentialsFetcher::new(self.http.clone(), credentials)
                        .retry(self.retry.clone()),
                )
            })
            .await
    }

    async fn discover(&self) -> Result<Url, Error> {
        let mut url = self.host.clone();
        url.set_path(DISCOVERY_PATH);
        let resp = self
            .retry
            .send(Idempotency::Idempotent, || {
                self.http.get(url.clone()).send()
            })
            .await
            .map_err(|e| self.oauth_error(&url, None, e.to_string()))?;
        let status = resp.status();
        if status.as_u16() == 404 {
            let mut fallback = self.host.clone();
            fallback.set_path(FALLBACK_TOKEN_PATH);
            tracing::debug!("OAuth discovery answered 404; using {fallback}");
            return Ok(fallback);
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| self.oauth_error(&url, Some(status.as_u16()), e.to_string()))?;
        if !status.is_success() {
            let e = ApiError::parse(status, &body);
            return Err(self.oauth_error(&url, Some(status.as_u16()), e.to_string()));
        }
        let d: Discovery = serde_json::from_slice(&body).map_err(|e| {
            self.oauth_error(
                &url,
                Some(status.as_u16()),
                format!(
                    "discovery reply is not JSON ({e}): {}",
                    truncate(&String::from_utf8_lossy(&body), 200)
                ),
            )
        })?;
        let ep = d.token_endpoint.ok_or_else(|| {
            self.oauth_error(
                &url,
                Some(status.as_u16()),
                "discovery reply has no token_endpoint".into(),
            )
        })?;
        let ep_url = Url::parse(&ep).map_err(|e| {
            self.oauth_error(&url, Some(200), format!("token_endpoint {ep:?}: {e}"))
        })?;
        // The client secret goes to this URL: never downgrade to plain HTTP.
        if ep_url.scheme() != "https" && ep_url.scheme() != self.host.scheme() {
            return Err(self.oauth_error(
                &url,
                Some(200),
                format!("token_endpoint {ep:?} is not https; refusing to send credentials to it"),
            ));
        }
        Ok(ep_url)
    }

    /// Fetches one token (no caching).
    pub async fn fetch(&self) -> Result<AccessToken, Error> {
        self.fetcher().await?.fetch().await.map_err(oauth_error)
    }
}

/// The shared fetcher's error as this crate's [`Error::OAuth`] (already redacted).
fn oauth_error(e: OAuthError) -> Error {
    Error::OAuth {
        endpoint: e.endpoint,
        status: e.status,
        message: e.message,
    }
}

#[async_trait]
impl TokenFetcher for OAuthM2M {
    async fn fetch_token(&self) -> Result<AccessToken, BoxError> {
        self.fetch().await.map_err(|e| Box::new(e) as BoxError)
    }
}

/// The [`AuthProvider`] for a configuration: a cached OAuth M2M token, or a static PAT.
pub fn auth_provider(config: &Config, http: reqwest::Client) -> Arc<dyn AuthProvider> {
    match config.credentials() {
        Credentials::OAuthM2M {
            client_id,
            client_secret,
        } => Arc::new(TokenCache::new(Arc::new(OAuthM2M::new(
            http,
            config.host().clone(),
            client_id.clone(),
            client_secret.clone(),
            config.options().retry.clone(),
        )))),
        Credentials::Token(t) => Arc::new(StaticBearer::new(t.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_secret() {
        let f = OAuthM2M::new(
            reqwest::Client::new(),
            Url::parse("https://h.cloud.databricks.com").unwrap(),
            "cid",
            SecretString::from("s3cr3t-value".to_string()),
            RetryPolicy::none(),
        );
        let d = format!("{f:?}");
        assert!(d.contains("cid") && !d.contains("s3cr3t-value"), "{d}");
        assert_eq!(f.redact("echo s3cr3t-value"), "echo [REDACTED]");
    }
}
