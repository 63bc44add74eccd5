//! [`DatabricksClient`]: one authenticated, retrying, rate-limited HTTP path for every API.

use std::sync::Arc;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use serde::de::DeserializeOwned;
use sync_core::http::{AuthProvider, Idempotency, LimiterConfig, LimiterRegistry, RequestLimiter};
use url::Url;

use crate::auth::auth_provider;
use crate::config::{Config, ConfigError};
use crate::error::{truncate, ApiError, Error, Result};

/// What a request carries.
enum RequestBody<'a> {
    None,
    Json(&'a serde_json::Value),
    Octets(bytes::Bytes),
}

/// A typed Databricks workspace client. Cheap to clone (shared inside an `Arc`).
///
/// Every call goes through the same path: an `Authorization` header from the configured
/// credentials (a cached OAuth token or a PAT), the shared per-host request limiter, the
/// [`RetryPolicy`](sync_core::http::RetryPolicy) from the options (idempotency-aware), and
/// one forced token refresh plus one retry when the server answers 401.
#[derive(Clone)]
pub struct DatabricksClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    http: reqwest::Client,
    auth: Arc<dyn AuthProvider>,
    limiter: Arc<RequestLimiter>,
}

impl std::fmt::Debug for DatabricksClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabricksClient")
            .field("config", &self.inner.config)
            .field("auth", &self.inner.auth)
            .finish_non_exhaustive()
    }
}

impl DatabricksClient {
    /// A client with its own HTTP connection pool.
    pub fn new(config: Config) -> Result<Self> {
        let mut b = reqwest::Client::builder();
        if let Some(t) = config.options().http_timeout {
            b = b.timeout(t);
        }
        let http = b
            .build()
            .map_err(|e| ConfigError(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self::with_http_client(config, http))
    }

    /// A client over a caller-supplied `reqwest::Client` (shared pool, proxies, custom
    /// timeouts). The options' `http_timeout` is not applied to it.
    pub fn with_http_client(config: Config, http: reqwest::Client) -> Self {
        let auth = auth_provider(&config, http.clone());
        Self::with_auth(config, http, auth)
    }

    /// A client with a caller-supplied credential source (for example a token obtained
    /// elsewhere and refreshed by the caller).
    pub fn with_auth(config: Config, http: reqwest::Client, auth: Arc<dyn AuthProvider>) -> Self {
        let key = config.host().as_str().to_string();
        let limiter = LimiterRegistry::global().get(
            &key,
            LimiterConfig {
                max_concurrent: config.options().max_concurrent_requests,
                min_gap: std::time::Duration::ZERO,
            },
        );
        Self {
            inner: Arc::new(Inner {
                config,
                http,
                auth,
                limiter,
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The credential source (to prove credentials without calling an API, see `ping`).
    pub fn auth(&self) -> &Arc<dyn AuthProvider> {
        &self.inner.auth
    }

    /// A URL on the workspace for an absolute API path (a `?query` part is kept).
    pub fn url(&self, path: &str) -> Url {
        self.inner.config.url(path)
    }

    /// Sends one request and returns the body of a 2xx reply; any other status becomes
    /// [`Error::Api`] with the parsed error body.
    pub async fn send_raw(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
        idempotency: Idempotency,
    ) -> Result<Vec<u8>> {
        let body = match body {
            Some(b) => RequestBody::Json(b),
            None => RequestBody::None,
        };
        self.send_body(method, url, body, idempotency).await
    }

    /// Sends raw bytes as the request body with `Content-Type: application/octet-stream` (a
    /// Files API upload) and returns the body of a 2xx reply, like
    /// [`send_raw`](Self::send_raw). The bytes are shared, not copied, between retries.
    pub async fn send_bytes(
        &self,
        method: Method,
        url: Url,
        body: bytes::Bytes,
        idempotency: Idempotency,
    ) -> Result<Vec<u8>> {
        self.send_body(method, url, RequestBody::Octets(body), idempotency)
            .await
    }

    async fn send_body(
        &self,
        method: Method,
        url: Url,
        body: RequestBody<'_>,
        idempotency: Idempotency,
    ) -> Result<Vec<u8>> {
        let path = url.path().to_string();
        let mut refreshed = false;
        loop {
            let header = self.inner.auth.authorization().await?;
            let resp = self
                .inner
                .config
                .options()
                .retry
                .send(idempotency, || {
                    let mut req = self
                        .inner
                        .http
                        .request(method.clone(), url.clone())
                        .header(AUTHORIZATION, header.clone());
                    match &body {
                        RequestBody::None => {}
                        RequestBody::Json(b) => req = req.json(b),
                        RequestBody::Octets(b) => {
                            req = req
                                .header(CONTENT_TYPE, "application/octet-stream")
                                .body(b.clone());
                        }
                    }
                    let limiter = self.inner.limiter.clone();
                    async move {
                        let _permit = limiter.acquire().await;
                        req.send().await
                    }
                })
                .await
                .map_err(|source| Error::Transport {
                    method: method.to_string(),
                    path: path.clone(),
                    source,
                })?;
            let status = resp.status();
            if status.as_u16() == 401 && !refreshed && self.inner.auth.rejected(&header).await {
                tracing::debug!(path, "HTTP 401; refreshing the token and retrying once");
                refreshed = true;
                continue;
            }
            let bytes = resp.bytes().await.map_err(|e| Error::Decode {
                what: format!("reply to {method} {path}"),
                message: e.to_string(),
                raw: None,
            })?;
            if status.is_success() {
                return Ok(bytes.to_vec());
            }
            return Err(Error::Api {
                method: method.to_string(),
                path,
                error: Box::new(ApiError::parse(status, &bytes)),
            });
        }
    }

    /// [`send_raw`](Self::send_raw), decoding the reply as JSON (an empty body decodes as `{}`).
    pub async fn send_json<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
        idempotency: Idempotency,
    ) -> Result<T> {
        let what = format!("reply to {method} {}", url.path());
        let bytes = self.send_raw(method, url, body, idempotency).await?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(bytes).map_err(|e| Error::Decode {
            what,
            message: e.to_string(),
            raw: Some(truncate(&String::from_utf8_lossy(bytes), 512)),
        })
    }
}
