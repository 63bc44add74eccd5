//! Credentials: HTTP Basic (every PeopleTools version), a static bearer token, or OAuth2
//! client credentials (PeopleTools 8.58+), all turned into one sync-core
//! [`AuthProvider`].
//!
//! PeopleSoft is only the *resource server*; the token comes from the site's authorization
//! server (IDCS / OCI IAM, Azure AD, Okta, Ping…). Which claim maps the token to an OPRID
//! (subject or email) is configured on the PeopleSoft side.
//!
//! This module validates the OAuth2 settings (an `https` token URL unless it is a loopback
//! test server, a non-empty client id); the token request itself — client authentication,
//! 429/503 retry, token and error reply parsing, secret redaction — is sync-core's shared
//! [`ClientCredentialsFetcher`].

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use sync_core::http::{
    AuthProvider, BasicAuth, ClientCredentials, ClientCredentialsFetcher, RetryPolicy,
    StaticBearer, TokenCache,
};
use url::Url;

use crate::error::ConfigError;
use crate::latch::CredentialFingerprint;

pub use sync_core::http::ClientAuthMethod;

/// The error a failed OAuth2 token request leaves in a [`sync_core::http::TokenError`]; its
/// `transient` flag tells a retryable outage from a refusal.
pub(crate) type TokenEndpointError = sync_core::http::OAuthError;

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
    pub fn basic(oprid: impl Into<String>, password: impl Into<SecretString>) -> Self {
        Credentials::Basic {
            oprid: oprid.into(),
            password: password.into(),
        }
    }

    /// A static bearer token.
    pub fn bearer(token: impl Into<SecretString>) -> Self {
        Credentials::Bearer(token.into())
    }

    /// A keyed, one-way fingerprint of these credentials (kind, user or client id, token URL
    /// and the secret itself), HMAC-SHA256 under `key`. Equal credentials give equal
    /// fingerprints under one key; the fingerprint does not reveal the secret, and without
    /// `key` it cannot be used to test guesses. Store it, never the secret, to recognise
    /// credentials that were rejected before.
    pub fn fingerprint(&self, key: &[u8]) -> CredentialFingerprint {
        match self {
            Credentials::Basic { oprid, password } => CredentialFingerprint::compute(
                key,
                &[
                    b"basic",
                    oprid.as_bytes(),
                    password.expose_secret().as_bytes(),
                ],
            ),
            Credentials::Bearer(t) => {
                CredentialFingerprint::compute(key, &[b"bearer", t.expose_secret().as_bytes()])
            }
            Credentials::OAuth2(o) => CredentialFingerprint::compute(
                key,
                &[
                    b"oauth2",
                    o.0.token_url().as_str().as_bytes(),
                    o.0.client_id().as_bytes(),
                    o.1.expose_secret().as_bytes(),
                ],
            ),
        }
    }

    /// Who logs in, for messages: the OPRID, the OAuth client id, or `bearer token`. Never
    /// a secret.
    pub fn principal(&self) -> String {
        match self {
            Credentials::Basic { oprid, .. } => format!("OPRID `{oprid}`"),
            Credentials::Bearer(_) => "bearer token".to_string(),
            Credentials::OAuth2(o) => format!("OAuth client `{}`", o.0.client_id()),
        }
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
            Credentials::OAuth2(cfg) => {
                Arc::new(TokenCache::new(Arc::new(cfg.fetcher(http, retry))))
            }
        }
    }
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
pub struct OAuth2ClientCredentials(ClientCredentials, SecretString);

impl std::fmt::Debug for OAuth2ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The inner settings redact the secret.
        f.debug_tuple("OAuth2ClientCredentials")
            .field(&self.0)
            .finish()
    }
}

impl OAuth2ClientCredentials {
    /// Settings for `token_url` (must be `https`, or `http` on a loopback address for tests).
    pub fn new(
        token_url: &str,
        client_id: impl Into<String>,
        client_secret: impl Into<SecretString>,
    ) -> Result<Self, ConfigError> {
        let client_secret = client_secret.into();
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
        Ok(Self(
            ClientCredentials::new(url, client_id, client_secret.clone()),
            client_secret,
        ))
    }

    /// The `scope` parameter (IDCS: the primary audience followed by `read`, e.g.
    /// `https://host:port/PSIGW/RESTListeningConnector/NODE/read`; Azure: `api://…/.default`).
    pub fn scope(self, scope: impl Into<String>) -> Self {
        Self(self.0.scope(scope), self.1)
    }

    /// The `audience` parameter (Okta / Auth0 style servers).
    pub fn audience(self, audience: impl Into<String>) -> Self {
        Self(self.0.audience(audience), self.1)
    }

    /// Where the client id and secret go (default: HTTP Basic header).
    pub fn client_auth(self, method: ClientAuthMethod) -> Self {
        Self(self.0.client_auth(method), self.1)
    }

    /// Any further form parameter the authorization server requires (e.g. `resource`).
    pub fn extra_param(self, name: impl Into<String>, value: impl Into<String>) -> Self {
        Self(self.0.extra_param(name, value), self.1)
    }

    /// The token endpoint.
    pub fn token_url(&self) -> &Url {
        self.0.token_url()
    }

    /// The shared sync-core fetcher for these settings.
    fn fetcher(&self, http: reqwest::Client, retry: RetryPolicy) -> ClientCredentialsFetcher {
        ClientCredentialsFetcher::new(http, self.0.clone()).retry(retry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
