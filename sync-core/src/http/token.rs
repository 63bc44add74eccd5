use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{Mutex, RwLock};
use tokio::time::Instant;

use crate::error::BoxError;

/// A bearer token as issued by a token endpoint.
#[derive(Clone)]
pub struct AccessToken {
    /// The token itself.
    pub secret: SecretString,
    /// Lifetime from the moment it was issued; `None` means it does not expire.
    pub expires_in: Option<Duration>,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("secret", &"[REDACTED]")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// Fetches a new token from wherever tokens come from (an OAuth token endpoint, usually).
///
/// Implementations do one fetch per call (with their own HTTP retry for 429/503 through
/// [`RetryPolicy`](super::RetryPolicy)); caching and single-flight are [`TokenCache`]'s job.
#[async_trait]
pub trait TokenFetcher: Send + Sync {
    /// Fetches a fresh token. Error messages must not contain the client secret.
    async fn fetch_token(&self) -> Result<AccessToken, BoxError>;
}

/// When a cached token is refreshed.
///
/// A token becomes *stale* `min(ttl × stale_fraction, max_stale_window)` before it expires:
/// the next caller refreshes it while the others keep using it. It is *expired*
/// `min(expiry_margin, ttl / 4)` before its real expiry: then every caller waits for the one
/// refresh. Both points scale with the token's lifetime, so a short-lived token (say 20 s,
/// shorter than the 40 s margin) is still used for most of its life instead of being
/// fetched again before every call. The defaults follow the official Databricks SDKs (stale at
/// min(TTL/2, 20 min), hard refresh 40 s before expiry) for ordinary lifetimes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefreshPolicy {
    /// Fraction of the lifetime before expiry at which the token turns stale.
    pub stale_fraction: f64,
    /// Upper bound of the stale window.
    pub max_stale_window: Duration,
    /// Safety margin before the real expiry, at most a quarter of the lifetime.
    pub expiry_margin: Duration,
}

impl RefreshPolicy {
    /// For a token issued with lifetime `ttl`: how long after issue it turns stale (early
    /// refresh by one caller) and how long after issue it expires for the cache (every caller
    /// waits for a new one). `stale <= expired`, both scale with `ttl`, and `stale >= ttl / 2`
    /// whenever `stale_fraction <= 0.5`.
    pub fn refresh_points(&self, ttl: Duration) -> (Duration, Duration) {
        let margin = self.expiry_margin.min(ttl / 4);
        let hard = ttl.saturating_sub(margin);
        let stale_window = ttl
            .mul_f64(self.stale_fraction.clamp(0.0, 1.0))
            .min(self.max_stale_window);
        let stale = ttl.saturating_sub(stale_window).min(hard);
        (stale, hard)
    }
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            stale_fraction: 0.5,
            max_stale_window: Duration::from_secs(20 * 60),
            expiry_margin: Duration::from_secs(40),
        }
    }
}

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
#[error("could not obtain an access token: {source}")]
pub struct TokenError {
    /// The fetcher's error (never contains the secret).
    #[source]
    pub source: BoxError,
}

struct Cached {
    secret: SecretString,
    stale_at: Option<Instant>,
    expires_at: Option<Instant>,
}

/// A cached bearer token with single-flight refresh.
///
/// - Fresh token: returned at once, no lock contention beyond a read lock.
/// - Stale token: the first caller refreshes; callers that arrive meanwhile keep using the
///   still-valid token. A failed early refresh is logged and the valid token is used.
/// - Missing or expired token: exactly one caller fetches while the others wait, then all get
///   the new token. A failed fetch is returned as an error and **not cached**: the next call
///   tries again.
///
/// Times use `tokio::time::Instant`, so tests drive expiry with a paused clock.
pub struct TokenCache {
    fetcher: Arc<dyn TokenFetcher>,
    policy: RefreshPolicy,
    current: RwLock<Option<Cached>>,
    refresh: Mutex<()>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    /// A cache over `fetcher` with the default [`RefreshPolicy`].
    pub fn new(fetcher: Arc<dyn TokenFetcher>) -> Self {
        Self::with_policy(fetcher, RefreshPolicy::default())
    }

    /// A cache with an explicit refresh policy.
    pub fn with_policy(fetcher: Arc<dyn TokenFetcher>, policy: RefreshPolicy) -> Self {
        Self {
            fetcher,
            policy,
            current: RwLock::new(None),
            refresh: Mutex::new(()),
        }
    }

    /// A valid token, fetching or refreshing as needed.
    pub async fn token(&self) -> Result<SecretString, TokenError> {
        let now = Instant::now();
        {
            let cur = self.current.read().await;
            if let Some(c) = cur.as_ref() {
                if !is_past(c.stale_at, now) {
                    return Ok(c.secret.clone());
                }
                if !is_past(c.expires_at, now) {
                    // Stale but usable: one caller refreshes, the others use what we have.
                    let secret = c.secret.clone();
                    drop(cur);
                    if let Ok(_guard) = self.refresh.try_lock() {
                        // Another caller may have refreshed between our read and the lock.
                        if let Some(fresh) = self.fresh_token(Instant::now()).await {
                            return Ok(fresh);
                        }
                        match self.fetch_and_store().await {
                            Ok(s) => return Ok(s),
                            Err(e) => {
                                tracing::warn!(
                                    "early token refresh failed, using the current token: {e}"
                                );
                                return Ok(secret);
                            }
                        }
                    }
                    return Ok(secret);
                }
            }
        }
        let _guard = self.refresh.lock().await;
        // Someone may have refreshed while we waited.
        {
            let cur = self.current.read().await;
            if let Some(c) = cur.as_ref() {
                if !is_past(c.expires_at, Instant::now()) {
                    return Ok(c.secret.clone());
                }
            }
        }
        self.fetch_and_store().await
    }

    /// The cached token when it is neither stale nor expired at `now`.
    async fn fresh_token(&self, now: Instant) -> Option<SecretString> {
        let cur = self.current.read().await;
        cur.as_ref()
            .filter(|c| !is_past(c.stale_at, now))
            .map(|c| c.secret.clone())
    }

    /// Drops the cached token if it is still `rejected` (the server answered 401 to it), so
    /// the next [`token`](Self::token) call fetches a new one. If another caller already
    /// replaced it, nothing happens: one 401 storm causes one refresh.
    pub async fn invalidate(&self, rejected: &SecretString) {
        let mut cur = self.current.write().await;
        if cur
            .as_ref()
            .is_some_and(|c| c.secret.expose_secret() == rejected.expose_secret())
        {
            *cur = None;
        }
    }

    async fn fetch_and_store(&self) -> Result<SecretString, TokenError> {
        let fetched_at = Instant::now();
        let token = self
            .fetcher
            .fetch_token()
            .await
            .map_err(|source| TokenError { source })?;
        let (stale_at, expires_at) = match token.expires_in {
            Some(ttl) => {
                let (stale, hard) = self.policy.refresh_points(ttl);
                (Some(fetched_at + stale), Some(fetched_at + hard))
            }
            None => (None, None),
        };
        let secret = token.secret;
        *self.current.write().await = Some(Cached {
            secret: secret.clone(),
            stale_at,
            expires_at,
        });
        Ok(secret)
    }
}

fn is_past(at: Option<Instant>, now: Instant) -> bool {
    at.is_some_and(|at| now >= at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Counting {
        calls: AtomicU32,
        fail_first: u32,
        ttl: Duration,
        delay: Duration,
    }

    #[async_trait]
    impl TokenFetcher for Counting {
        async fn fetch_token(&self) -> Result<AccessToken, BoxError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(self.delay).await;
            if n <= self.fail_first {
                return Err("token endpoint said 503".into());
            }
            Ok(AccessToken {
                secret: SecretString::from(format!("token-{n}")),
                expires_in: Some(self.ttl),
            })
        }
    }

    fn counting(fail_first: u32) -> Arc<Counting> {
        Arc::new(Counting {
            calls: AtomicU32::new(0),
            fail_first,
            ttl: Duration::from_secs(3600),
            delay: Duration::from_millis(50),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn sixty_four_concurrent_callers_cause_one_fetch() {
        let f = counting(0);
        let cache = Arc::new(TokenCache::new(f.clone()));
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let c = cache.clone();
                tokio::spawn(async move { c.token().await.unwrap().expose_secret().to_string() })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), "token-1");
        }
        assert_eq!(f.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn refreshes_before_expiry() {
        let f = counting(0);
        let cache = TokenCache::new(f.clone());
        assert_eq!(cache.token().await.unwrap().expose_secret(), "token-1");
        // 39 minutes in: still fresh (stale at 60 - min(30, 20) = 40 minutes).
        tokio::time::advance(Duration::from_secs(39 * 60)).await;
        assert_eq!(cache.token().await.unwrap().expose_secret(), "token-1");
        assert_eq!(f.calls.load(Ordering::SeqCst), 1);
        // 41 minutes in: stale, refreshed ahead of the one-hour expiry.
        tokio::time::advance(Duration::from_secs(2 * 60)).await;
        assert_eq!(cache.token().await.unwrap().expose_secret(), "token-2");
        assert_eq!(f.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_fetch_is_not_cached_and_is_retried() {
        let f = counting(1);
        let cache = TokenCache::new(f.clone());
        let err = cache.token().await.unwrap_err();
        assert!(err.to_string().contains("503"), "{err}");
        assert_eq!(cache.token().await.unwrap().expose_secret(), "token-2");
        assert_eq!(f.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn stale_token_survives_a_failed_early_refresh() {
        let f = Arc::new(Counting {
            calls: AtomicU32::new(0),
            fail_first: 0,
            ttl: Duration::from_secs(3600),
            delay: Duration::ZERO,
        });
        let cache = TokenCache::new(f.clone());
        cache.token().await.unwrap();
        tokio::time::advance(Duration::from_secs(59 * 60 + 30)).await;
        // Past the 40 s hard margin: must block and fetch.
        assert_eq!(cache.token().await.unwrap().expose_secret(), "token-2");
    }

    #[tokio::test(start_paused = true)]
    async fn invalidate_forces_exactly_one_refresh() {
        let f = counting(0);
        let cache = Arc::new(TokenCache::new(f.clone()));
        let t1 = cache.token().await.unwrap();
        // Several callers saw a 401 with the same token.
        for _ in 0..5 {
            cache.invalidate(&t1).await;
        }
        let t2 = cache.token().await.unwrap();
        assert_eq!(t2.expose_secret(), "token-2");
        cache.invalidate(&t1).await; // stale report about the old token: ignored
        assert_eq!(cache.token().await.unwrap().expose_secret(), "token-2");
        assert_eq!(f.calls.load(Ordering::SeqCst), 2);
    }

    /// 64 concurrent callers every 1/40 lifetime for ten lifetimes: at most one token request per
    /// half lifetime (plus the first), whatever the lifetime, and never an expired token.
    #[tokio::test(start_paused = true)]
    async fn short_and_long_lifetimes_cost_one_fetch_per_half_lifetime() {
        for secs in [10u64, 20, 60, 3600] {
            let ttl = Duration::from_secs(secs);
            let f = Arc::new(Counting {
                calls: AtomicU32::new(0),
                fail_first: 0,
                ttl,
                delay: Duration::from_millis(20),
            });
            let cache = Arc::new(TokenCache::new(f.clone()));
            let started = Instant::now();
            let tick = ttl / 40;
            for _ in 0..400 {
                let tasks: Vec<_> = (0..64)
                    .map(|_| {
                        let c = cache.clone();
                        tokio::spawn(async move { c.token().await.unwrap() })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
                tokio::time::advance(tick).await;
            }
            let elapsed = started.elapsed();
            let halves = (elapsed.as_secs_f64() / (ttl.as_secs_f64() / 2.0)).ceil() as u32;
            let calls = f.calls.load(Ordering::SeqCst);
            assert!(
                calls <= halves + 1,
                "lifetime {secs}s: {calls} token requests in {elapsed:?} (at most {} allowed)",
                halves + 1
            );
            // And the cache did refresh: a token is not used past its lifetime.
            assert!(
                calls as u64 >= elapsed.as_secs() / secs,
                "lifetime {secs}s: {calls}"
            );
        }
    }

    #[test]
    fn refresh_points_scale_with_the_lifetime() {
        let p = RefreshPolicy::default();
        let s = Duration::from_secs;
        assert_eq!(p.refresh_points(s(20)), (s(10), s(15)));
        assert_eq!(p.refresh_points(s(10)), (s(5), Duration::from_millis(7500)));
        assert_eq!(p.refresh_points(s(3600)), (s(2400), s(3560)));
        assert_eq!(
            p.refresh_points(Duration::ZERO),
            (Duration::ZERO, Duration::ZERO)
        );
    }

    #[test]
    fn debug_never_prints_the_token() {
        let t = AccessToken {
            secret: SecretString::from("super-secret-value".to_string()),
            expires_in: None,
        };
        assert!(!format!("{t:?}").contains("super-secret-value"));
    }
}
