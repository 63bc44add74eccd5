//! The one OAuth2 client-credentials token fetcher (RFC 6749 §4.4) both clients use.
//!
//! [`ClientCredentialsFetcher`] POSTs `grant_type=client_credentials` (plus `scope`,
//! `audience` and any extra parameters) to a token endpoint, with the client id and secret in
//! an HTTP Basic header (the default) or in the form body. 429/503 (and transport failures)
//! are retried through [`RetryPolicy`] honouring `Retry-After`: a token request is safe to
//! repeat. It implements [`TokenFetcher`], so it goes straight into a
//! [`TokenCache`](super::TokenCache), which does the caching and single-flight refresh.
//!
//! Replies are parsed leniently where servers differ (`expires_in` as a number or a string
//! of digits) and strictly where it matters (`access_token` present, `token_type` bearer when
//! given). Error bodies are read for `error` / `error_description` (RFC 6749 §5.2) and
//! `errorCode` / `errorSummary` (Okta style); anything else is kept as a truncated raw body.
//! The client secret never appears in an [`OAuthError`] or in `Debug` output, even when a
//! misbehaving server echoes it back.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};

use super::retry::{Idempotency, RetryPolicy};
use super::token::{AccessToken, TokenFetcher};
use crate::error::BoxError;

/// Characters of an unrecognised error body kept in an [`OAuthError`].
const RAW_BODY_LIMIT: usize = 512;

/// Where the client id and secret go in the token request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuthMethod {
    /// `Authorization: Basic base64(client_id:client_secret)` (`client_secret_basic`; the
    /// default, what the Databricks SDKs and IDCS / OCI IAM use).
    #[default]
    BasicHeader,
    /// `client_id` and `client_secret` in the form body (`client_secret_post`; common with
    /// Azure AD and Okta).
    FormBody,
}

/// A failed token request. Never contains the client secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("OAuth token request to {endpoint} failed{}: {message}",
    status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
#[non_exhaustive]
pub struct OAuthError {
    /// The token endpoint (no credentials in it).
    pub endpoint: String,
    /// HTTP status, when there was a response.
    pub status: Option<u16>,
    /// The OAuth error code (`error` or `errorCode`), when the server sent one.
    pub error_code: Option<String>,
    /// What went wrong: `code: description` from the error body, a truncated raw body, or
    /// our own words (transport failure, unreadable reply).
    pub message: String,
    /// True when trying again later may succeed: transport failures, 408, 429 and 5xx.
    /// False for refusals such as `invalid_client` and for unusable replies.
    pub transient: bool,
}

impl OAuthError {
    /// Whether trying again later may succeed (see [`transient`](Self::transient)).
    pub fn is_transient(&self) -> bool {
        self.transient
    }
}

/// OAuth2 client-credentials settings: token endpoint, client id and secret, where the
/// credentials go, and the form parameters. `Debug` never shows the secret.
#[derive(Clone)]
pub struct ClientCredentials {
    token_url: Url,
    client_id: String,
    client_secret: SecretString,
    client_auth: ClientAuthMethod,
    scope: Option<String>,
    audience: Option<String>,
    extra_params: Vec<(String, String)>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("token_url", &self.token_url.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &"[REDACTED]")
            .field("client_auth", &self.client_auth)
            .field("scope", &self.scope)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl ClientCredentials {
    /// Settings for `client_id` at `token_url`, with Basic client authentication and no
    /// scope. The URL is used as given: callers decide which schemes they accept.
    pub fn new(
        token_url: Url,
        client_id: impl Into<String>,
        client_secret: impl Into<SecretString>,
    ) -> Self {
        Self {
            token_url,
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            client_auth: ClientAuthMethod::default(),
            scope: None,
            audience: None,
            extra_params: Vec::new(),
        }
    }

    /// Where the client id and secret go (default: HTTP Basic header).
    pub fn client_auth(mut self, method: ClientAuthMethod) -> Self {
        self.client_auth = method;
        self
    }

    /// The `scope` parameter.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The `audience` parameter (Okta / Auth0 style servers).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// A further form parameter (e.g. `resource`); sent in the order added.
    pub fn extra_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra_params.push((name.into(), value.into()));
        self
    }

    /// The token endpoint.
    pub fn token_url(&self) -> &Url {
        &self.token_url
    }

    /// The client id (not secret).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// `text` with the client secret replaced by `[REDACTED]`.
    pub fn redact(&self, text: &str) -> String {
        redact_secret(text, &self.client_secret)
    }
}

/// Fetches OAuth2 client-credentials tokens for one [`ClientCredentials`].
///
/// ```
/// use secrecy::SecretString;
/// use std::sync::Arc;
/// use sync_core::http::{
///     ClientAuthMethod, ClientCredentials, ClientCredentialsFetcher, RetryPolicy, TokenCache,
/// };
///
/// let credentials = ClientCredentials::new(
///     "https://idp.example.com/oauth2/v1/token".parse().unwrap(),
///     "client-id",
///     SecretString::from("client-secret".to_string()),
/// )
/// .scope("api://erp/.default")
/// .client_auth(ClientAuthMethod::FormBody);
/// let fetcher = ClientCredentialsFetcher::new(reqwest::Client::new(), credentials)
///     .retry(RetryPolicy::default());
/// assert!(!format!("{fetcher:?}").contains("client-secret"));
/// let cache = TokenCache::new(Arc::new(fetcher));
/// # let _ = cache;
/// ```
#[derive(Debug, Clone)]
pub struct ClientCredentialsFetcher {
    http: reqwest::Client,
    credentials: ClientCredentials,
    retry: RetryPolicy,
}

impl ClientCredentialsFetcher {
    /// A fetcher using `http`, with the default [`RetryPolicy`].
    pub fn new(http: reqwest::Client, credentials: ClientCredentials) -> Self {
        Self {
            http,
            credentials,
            retry: RetryPolicy::default(),
        }
    }

    /// The retry policy for 429/503 and transport failures.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The settings.
    pub fn credentials(&self) -> &ClientCredentials {
        &self.credentials
    }

    fn error(
        &self,
        status: Option<u16>,
        error_code: Option<String>,
        message: &str,
        transient: bool,
    ) -> OAuthError {
        let c = &self.credentials;
        OAuthError {
            endpoint: c.token_url.as_str().to_string(),
            status,
            error_code: error_code.map(|e| c.redact(&e)),
            message: c.redact(message),
            transient,
        }
    }

    /// Fetches one token (no caching).
    pub async fn fetch(&self) -> Result<AccessToken, OAuthError> {
        let c = &self.credentials;
        let secret = c.client_secret.expose_secret();
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
            form.push(("client_secret", secret));
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
                    req = req.basic_auth(&c.client_id, Some(secret));
                }
                req.send()
            })
            .await
            .map_err(|e| self.error(None, None, &e.to_string(), true))?;
        let status = resp.status();
        let status_code = Some(status.as_u16());
        let body = resp
            .bytes()
            .await
            .map_err(|e| self.error(status_code, None, &format!("reading the reply: {e}"), true))?;
        if !status.is_success() {
            let (error_code, message) = parse_error_body(status, &body);
            let transient = status.is_server_error()
                || matches!(
                    status,
                    StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT
                );
            return Err(self.error(status_code, error_code, &message, transient));
        }
        let reply: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            self.error(
                status_code,
                None,
                &format!(
                    "token reply is not JSON ({e}): {}",
                    truncate(&String::from_utf8_lossy(&body), RAW_BODY_LIMIT)
                ),
                false,
            )
        })?;
        let token = match reply.get("access_token") {
            Some(serde_json::Value::String(t)) if !t.is_empty() => t.clone(),
            _ => {
                let (error_code, detail) = parse_error_body(status, &body);
                return Err(self.error(
                    status_code,
                    error_code,
                    &format!("token reply has no access_token ({detail})"),
                    false,
                ));
            }
        };
        match reply.get("token_type") {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::String(t)) if t.eq_ignore_ascii_case("bearer") => {}
            Some(other) => {
                return Err(self.error(
                    status_code,
                    None,
                    &format!("the endpoint issued a {other} token, not a bearer token"),
                    false,
                ))
            }
        }
        let expires_in = match reply.get("expires_in") {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(parse_expires_in(v).ok_or_else(|| {
                self.error(
                    status_code,
                    None,
                    &format!("expires_in {v} is not a number of seconds"),
                    false,
                )
            })?),
        };
        Ok(AccessToken {
            secret: SecretString::from(token),
            expires_in,
        })
    }
}

#[async_trait]
impl TokenFetcher for ClientCredentialsFetcher {
    async fn fetch_token(&self) -> Result<AccessToken, BoxError> {
        self.fetch().await.map_err(|e| Box::new(e) as BoxError)
    }
}

/// `text` with every occurrence of `secret` replaced by `[REDACTED]`. Secrets shorter than
/// four characters are left alone (replacing them would garble the text, not protect it).
pub fn redact_secret(text: &str, secret: &SecretString) -> String {
    let secret = secret.expose_secret();
    if secret.len() >= 4 {
        text.replace(secret, "[REDACTED]")
    } else {
        text.to_string()
    }
}

/// `expires_in` as a JSON number or a numeric string (some servers send `"3600"`); `None`
/// for anything else, negative or not finite.
pub(crate) fn parse_expires_in(v: &serde_json::Value) -> Option<Duration> {
    let secs = match v {
        serde_json::Value::Number(n) => n.as_f64()?,
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// The OAuth error code and a one-line message from an error reply body: `error` /
/// `errorCode` and `error_description` / `errorSummary` when present, else the status text,
/// with a truncated raw body when the body had none of the known fields.
fn parse_error_body(status: StatusCode, body: &[u8]) -> (Option<String>, String) {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let status_text = match status.canonical_reason() {
        Some(r) => format!("{} {r}", status.as_u16()),
        None => format!("HTTP {}", status.as_u16()),
    };
    if text.is_empty() {
        return (None, status_text);
    }
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text) {
        let field = |k: &str| match map.get(k) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let code = field("error").or_else(|| field("errorCode"));
        let description = field("error_description").or_else(|| field("errorSummary"));
        match (&code, description) {
            (Some(c), Some(d)) => return (code.clone(), format!("{c}: {d}")),
            (Some(c), None) => return (code.clone(), c.clone()),
            (None, Some(d)) => return (None, d),
            (None, None) => {}
        }
    }
    (
        None,
        format!("{status_text} (body: {})", truncate(text, RAW_BODY_LIMIT)),
    )
}

/// At most `max` characters, marking the cut.
fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokio::time::Instant;
    use wiremock::matchers::{basic_auth, body_string, header, method, path};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    const SECRET: &str = "s3cr3t-client-value";

    async fn server() -> MockServer {
        MockServer::builder()
            .listener(std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .start()
            .await
    }

    fn fetcher(server: &MockServer) -> ClientCredentialsFetcher {
        fetcher_with(credentials(server, |c| c))
    }

    fn credentials(
        server: &MockServer,
        f: impl FnOnce(ClientCredentials) -> ClientCredentials,
    ) -> ClientCredentials {
        f(ClientCredentials::new(
            format!("{}/token", server.uri()).parse().unwrap(),
            "cid",
            SecretString::from(SECRET.to_string()),
        ))
    }

    fn fetcher_with(c: ClientCredentials) -> ClientCredentialsFetcher {
        ClientCredentialsFetcher::new(reqwest::Client::new(), c).retry(RetryPolicy {
            jitter: false,
            ..RetryPolicy::default()
        })
    }

    fn ok(body: serde_json::Value) -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_json(body)
    }

    #[test]
    fn expires_in_number_or_string() {
        let d = |s| Some(Duration::from_secs(s));
        assert_eq!(parse_expires_in(&json!(3600)), d(3600));
        assert_eq!(parse_expires_in(&json!("1800")), d(1800));
        assert_eq!(parse_expires_in(&json!(" 60 ")), d(60));
        assert_eq!(parse_expires_in(&json!("soon")), None);
        assert_eq!(parse_expires_in(&json!(-1)), None);
        assert_eq!(parse_expires_in(&json!(null)), None);
    }

    #[test]
    fn error_bodies() {
        let p = |s: u16, b: &str| parse_error_body(StatusCode::from_u16(s).unwrap(), b.as_bytes());
        assert_eq!(
            p(
                401,
                r#"{"error":"invalid_client","error_description":"bad secret"}"#
            ),
            (
                Some("invalid_client".into()),
                "invalid_client: bad secret".into()
            )
        );
        assert_eq!(
            p(
                400,
                r#"{"errorCode":"E0000004","errorSummary":"Authentication failed"}"#
            ),
            (
                Some("E0000004".into()),
                "E0000004: Authentication failed".into()
            )
        );
        assert_eq!(
            p(400, r#"{"error":"invalid_scope"}"#),
            (Some("invalid_scope".into()), "invalid_scope".into())
        );
        assert_eq!(p(503, "  "), (None, "503 Service Unavailable".into()));
        let (code, msg) = p(
            502,
            &format!("<html>bad gateway {}</html>", "x".repeat(2000)),
        );
        assert_eq!(code, None);
        assert!(
            msg.starts_with("502 Bad Gateway (body: <html>bad gateway"),
            "{msg}"
        );
        assert!(msg.chars().count() < RAW_BODY_LIMIT + 40, "{msg}");
    }

    #[tokio::test]
    async fn basic_header_with_scope_and_numeric_expiry() {
        let server = server().await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(basic_auth("cid", SECRET))
            .and(header("content-type", "application/x-www-form-urlencoded"))
            .and(body_string("grant_type=client_credentials&scope=all-apis"))
            .respond_with(ok(json!({
                "access_token": "tok-1", "token_type": "Bearer", "expires_in": 3600
            })))
            .expect(1)
            .mount(&server)
            .await;
        let t = fetcher_with(credentials(&server, |c| c.scope("all-apis")))
            .fetch()
            .await
            .unwrap();
        assert_eq!(t.secret.expose_secret(), "tok-1");
        assert_eq!(t.expires_in, Some(Duration::from_secs(3600)));
    }

    #[tokio::test]
    async fn form_body_with_audience_extra_params_and_string_expiry() {
        let server = server().await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(|r: &Request| !r.headers.contains_key("authorization"))
            .and(body_string(format!(
                "grant_type=client_credentials&audience=https%3A%2F%2Ferp&resource=r1\
                 &client_id=cid&client_secret={SECRET}"
            )))
            .respond_with(ok(json!({"access_token": "tok-2", "expires_in": "1800"})))
            .expect(1)
            .mount(&server)
            .await;
        let t = fetcher_with(credentials(&server, |c| {
            c.client_auth(ClientAuthMethod::FormBody)
                .audience("https://erp")
                .extra_param("resource", "r1")
        }))
        .fetch()
        .await
        .unwrap();
        assert_eq!(t.secret.expose_secret(), "tok-2");
        assert_eq!(t.expires_in, Some(Duration::from_secs(1800)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_503_is_retried_after_retry_after() {
        let server = server().await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(ResponseTemplate::new(503).insert_header("Retry-After", "3"))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(ok(json!({"access_token": "tok-3"})))
            .mount(&server)
            .await;
        let started = Instant::now();
        let t = fetcher(&server).fetch().await.unwrap();
        assert_eq!(t.secret.expose_secret(), "tok-3");
        assert_eq!(t.expires_in, None);
        assert!(
            started.elapsed() >= Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(server.received_requests().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn refusal_is_permanent_and_never_shows_the_secret() {
        let server = server().await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(ResponseTemplate::new(401).set_body_json(json!({
                "error": "invalid_client",
                "error_description": format!("Client authentication failed for {SECRET}")
            })))
            .mount(&server)
            .await;
        let f = fetcher(&server);
        let e = f.fetch().await.unwrap_err();
        assert_eq!(e.status, Some(401));
        assert_eq!(e.error_code.as_deref(), Some("invalid_client"));
        assert!(!e.is_transient());
        let shown = format!("{e} | {e:?} | {f:?}");
        assert!(shown.contains("invalid_client: Client authentication failed for [REDACTED]"));
        assert!(!shown.contains(SECRET), "{shown}");
        // Through the TokenFetcher trait the error keeps its type.
        let boxed = f.fetch_token().await.unwrap_err();
        assert!(boxed.downcast_ref::<OAuthError>().is_some());
    }

    #[tokio::test]
    async fn unknown_error_body_is_kept_redacted_and_5xx_is_transient() {
        let server = server().await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(ResponseTemplate::new(500).set_body_string(format!("oops {SECRET}")))
            .mount(&server)
            .await;
        let e = fetcher(&server)
            .retry(RetryPolicy::none())
            .fetch()
            .await
            .unwrap_err();
        assert!(e.is_transient());
        assert_eq!(
            e.to_string(),
            format!(
                "OAuth token request to {}/token failed (HTTP 500): \
                 500 Internal Server Error (body: oops [REDACTED])",
                server.uri()
            )
        );
    }

    #[tokio::test]
    async fn unusable_replies_are_permanent_errors() {
        for (reply, expect) in [
            (
                json!({"access_token": "t", "token_type": "mac"}),
                "not a bearer token",
            ),
            (json!({"token_type": "Bearer"}), "has no access_token"),
            (
                json!({"access_token": "t", "expires_in": "soon"}),
                "not a number of seconds",
            ),
        ] {
            let server = server().await;
            Mock::given(method("POST"))
                .respond_with(ok(reply))
                .mount(&server)
                .await;
            let e = fetcher(&server).fetch().await.unwrap_err();
            assert!(e.to_string().contains(expect), "{e}");
            assert_eq!(e.status, Some(200));
            assert!(!e.is_transient());
        }
    }

    #[tokio::test]
    async fn connection_failure_is_transient() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let c = ClientCredentials::new(
            format!("http://127.0.0.1:{port}/token").parse().unwrap(),
            "cid",
            SecretString::from(SECRET.to_string()),
        );
        let e = ClientCredentialsFetcher::new(reqwest::Client::new(), c)
            .retry(RetryPolicy::none())
            .fetch()
            .await
            .unwrap_err();
        assert!(e.is_transient() && e.status.is_none(), "{e:?}");
        assert!(!format!("{e} {e:?}").contains(SECRET));
    }

    #[test]
    fn redaction() {
        let s = SecretString::from(SECRET.to_string());
        assert_eq!(
            redact_secret(&format!("a {SECRET} b"), &s),
            "a [REDACTED] b"
        );
        let short = SecretString::from("x".to_string());
        assert_eq!(redact_secret("x y", &short), "x y");
    }
}
