//! GET/POST/PUT to CIRT operations with the forward direction's auth and load protection.
//!
//! The client's generic service calls have no PUT and turn every non-2xx answer into an
//! error before the body can be classified per record, so this module sends the requests
//! itself, through the same pieces the client uses: [`Credentials`]' auth provider, the
//! per-host [`RequestLimiter`], blackout windows and sync-core's
//! [`RetryPolicy`](sync_core::http::RetryPolicy). It should move into the client once the
//! client exposes a raw `service_request` (see the module docs).

use std::fmt;
use std::sync::{Arc, Mutex};

use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use sync_core::http::{AuthProvider, Idempotency, LimiterRegistry, RequestLimiter};
use sync_core::Clock;
use url::Url;

use crate::auth::Credentials;
use crate::config::Connection;
use crate::error::{truncate_body, ConfigError, Error};
use crate::protection::{BlackoutAction, LoadProtection};

/// An HTTP answer other than 401/403, for per-record classification.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub(crate) status: u16,
    pub(crate) url: String,
    pub(crate) body: String,
}

pub(crate) struct Transport {
    conn: Connection,
    http: reqwest::Client,
    auth: Arc<dyn AuthProvider>,
    limiter: Arc<RequestLimiter>,
    protection: LoadProtection,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("base_url", &self.conn.base_url().as_str())
            .field("auth", &self.auth)
            .field("protection", &self.protection)
            .finish_non_exhaustive()
    }
}

impl Transport {
    pub(crate) fn new(
        conn: Connection,
        credentials: &Credentials,
        protection: LoadProtection,
        limiter: Option<Arc<RequestLimiter>>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ConfigError> {
        let t = conn.timeouts();
        let http = reqwest::Client::builder()
            .connect_timeout(t.connect)
            .timeout(t.request)
            .user_agent(concat!(
                "ml-connector-peoplesoft-writeback/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| ConfigError::new("http_client", "", e.to_string()))?;
        let auth = credentials.provider(http.clone(), protection.retry.clone());
        // The same per-host budget as every forward-direction client for this host.
        let limiter = limiter.unwrap_or_else(|| {
            LimiterRegistry::global().get(&conn.host_port(), protection.limiter_config())
        });
        Ok(Self {
            conn,
            http,
            auth,
            limiter,
            protection,
            clock,
        })
    }

    pub(crate) fn join(&self, relative: &str) -> Result<Url, ConfigError> {
        self.conn.join(relative)
    }

    async fn wait_for_blackout(&self) -> Result<(), Error> {
        let p = &self.protection;
        if p.blackouts.is_empty() {
            return Ok(());
        }
        if let Some((window, until, wait)) = p.blackout_wait(self.clock.as_ref()) {
            let host = self.conn.host_port();
            match p.blackout_action {
                BlackoutAction::Skip => {
                    return Err(Error::Blackout {
                        host,
                        window,
                        until,
                    })
                }
                BlackoutAction::Wait => {
                    tracing::info!(host, window, %until, "PeopleSoft blackout window: waiting");
                    tokio::time::sleep(wait).await;
                }
            }
        }
        Ok(())
    }

    /// Sends one logical request (with the protection's retries) and returns the answer.
    /// `Err` for: blackout skip, token failure, transport failure after retries, and
    /// 401/403 ([`Error::AuthRejected`], after exactly one request).
    pub(crate) async fn send(
        &self,
        method: Method,
        url: Url,
        json: Option<&serde_json::Value>,
        idempotency: Idempotency,
    ) -> Result<RawResponse, Error> {
        self.wait_for_blackout().await?;
        let auth: HeaderValue = self.auth.authorization().await.map_err(|e| Error::Token {
            transient: e
                .source
                .downcast_ref::<crate::auth::TokenEndpointError>()
                .is_some_and(|t| t.transient),
            message: e.source.to_string(),
        })?;
        let held = Mutex::new(None);
        let outcome = self
            .protection
            .retry
            .send(idempotency, || {
                let mut req = self
                    .http
                    .request(method.clone(), url.clone())
                    .header(AUTHORIZATION, auth.clone())
                    .header(ACCEPT, "application/json");
                if let Some(body) = json {
                    req = req.header(CONTENT_TYPE, "application/json").json(body);
                }
                let held = &held;
                let limiter = &self.limiter;
                let url = &url;
                let method = &method;
                async move {
                    // Free the previous attempt's slot before queueing for a new one.
                    drop(held.lock().unwrap_or_else(|e| e.into_inner()).take());
                    let permit = limiter.acquire().await;
                    *held.lock().unwrap_or_else(|e| e.into_inner()) = Some(permit);
                    tracing::debug!(%url, %method, "PeopleSoft write-back request");
                    req.send().await
                }
            })
            .await;
        let resp = outcome.map_err(|source| Error::Transport {
            url: url.to_string(),
            source,
        })?;
        let status = resp.status().as_u16();
        let body = resp.text().await;
        drop(held);
        let body = body.map_err(|e| Error::InvalidResponse {
            url: url.to_string(),
            reason: format!("could not read the response body: {e}"),
            raw: String::new(),
        })?;
        if status == 401 || status == 403 {
            return Err(Error::AuthRejected {
                status,
                url: url.to_string(),
                body: truncate_body(&body),
            });
        }
        Ok(RawResponse {
            status,
            url: url.to_string(),
            body,
        })
    }
}
