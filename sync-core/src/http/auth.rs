use async_trait::async_trait;
use base64::Engine as _;
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};

use super::token::{TokenCache, TokenError};

/// A source of `Authorization` header values: HTTP Basic, a static bearer token, or a cached
/// OAuth token are one abstraction, so a client has one code path for all three.
///
/// Header values are marked sensitive, so `reqwest` and `Debug` never print them.
#[async_trait]
pub trait AuthProvider: Send + Sync + std::fmt::Debug {
    /// The header value for the next request.
    async fn authorization(&self) -> Result<HeaderValue, TokenError>;

    /// Called after the server answered 401 to a request sent with `sent`. Returns true when
    /// a different credential is now available, so exactly one retry makes sense (a cached
    /// OAuth token that was refreshed). Static credentials return false: retrying them only
    /// risks locking the account.
    async fn rejected(&self, sent: &HeaderValue) -> bool {
        let _ = sent;
        false
    }
}

/// HTTP Basic credentials (user + password).
pub struct BasicAuth {
    username: String,
    password: SecretString,
}

impl BasicAuth {
    /// Basic credentials.
    pub fn new(username: impl Into<String>, password: impl Into<SecretString>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The user name (not secret).
    pub fn username(&self) -> &str {
        &self.username
    }
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("username", &self.username)
            .field("password", &"[REDACTED]")
            .finish()
    }
}

#[async_trait]
impl AuthProvider for BasicAuth {
    async fn authorization(&self) -> Result<HeaderValue, TokenError> {
        let raw = format!("{}:{}", self.username, self.password.expose_secret());
        sensitive(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw.as_bytes())
        ))
    }
}

/// A bearer token that never changes (a personal access token, or a token issued elsewhere).
pub struct StaticBearer(SecretString);

impl StaticBearer {
    /// Wraps a token.
    pub fn new(token: impl Into<SecretString>) -> Self {
        Self(token.into())
    }
}

impl std::fmt::Debug for StaticBearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaticBearer([REDACTED])")
    }
}

#[async_trait]
impl AuthProvider for StaticBearer {
    async fn authorization(&self) -> Result<HeaderValue, TokenError> {
        sensitive(&format!("Bearer {}", self.0.expose_secret()))
    }
}

#[async_trait]
impl AuthProvider for TokenCache {
    async fn authorization(&self) -> Result<HeaderValue, TokenError> {
        let token = self.token().await?;
        sensitive(&format!("Bearer {}", token.expose_secret()))
    }

    async fn rejected(&self, sent: &HeaderValue) -> bool {
        if let Some(token) = sent.to_str().ok().and_then(|s| s.strip_prefix("Bearer ")) {
            self.invalidate(&SecretString::from(token.to_string()))
                .await;
        }
        true
    }
}

fn sensitive(value: &str) -> Result<HeaderValue, TokenError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| TokenError {
        source: "credential contains characters that are not allowed in an HTTP header".into(),
    })?;
    v.set_sensitive(true);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn basic_header_is_sensitive_and_debug_redacts() {
        let auth = BasicAuth::new("PS", SecretString::from("hunter2".to_string()));
        let h = auth.authorization().await.unwrap();
        assert_eq!(h.to_str().unwrap(), "Basic UFM6aHVudGVyMg==");
        assert!(h.is_sensitive());
        assert!(!format!("{h:?}").contains("UFM6"));
        assert!(!format!("{auth:?}").contains("hunter2"));
        let b = StaticBearer::new(SecretString::from("dapi-secret".to_string()));
        assert!(!format!("{b:?}").contains("dapi-secret"));
        assert!(!b.rejected(&h).await);
    }
}
