//! Small HTTP plumbing shared by every client: one retry policy, one cached bearer-token
//! provider, one request limiter, and one credential abstraction.
//!
//! Clients build on these rather than writing their own loops:
//! - [`RetryPolicy`] decides what is retried (idempotency-aware), waits with exponential
//!   backoff and jitter, honours `Retry-After` (seconds or HTTP-date), and stops at a total
//!   time budget.
//! - [`TokenCache`] caches a bearer token, refreshes it ahead of expiry with exactly one
//!   refresh in flight, and never caches an error.
//! - [`RequestLimiter`] caps concurrent requests and spaces request starts; a
//!   [`LimiterRegistry`] shares one limiter per remote host.
//! - [`ClientCredentialsFetcher`] is the one OAuth2 client-credentials token request
//!   (Basic or form-body client authentication, scope, audience, extra parameters, 429/503
//!   retry, token and error reply parsing, secret redaction); put it in a [`TokenCache`].
//! - [`AuthProvider`] turns Basic, static bearer and cached OAuth tokens into one
//!   `Authorization` header source.

mod auth;
mod limiter;
mod oauth;
mod retry;
mod token;

pub use auth::{AuthProvider, BasicAuth, StaticBearer};
pub use limiter::{LimiterConfig, LimiterPermit, LimiterRegistry, RequestLimiter};
pub use oauth::{
    redact_secret, ClientAuthMethod, ClientCredentials, ClientCredentialsFetcher, OAuthError,
};
pub use retry::{Idempotency, RetryPolicy, TransportError};
pub use token::{AccessToken, RefreshPolicy, TokenCache, TokenError, TokenFetcher};
