use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex, OnceLock};
use std::time::Duration;

use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Limits for one remote host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimiterConfig {
    /// Requests in flight at once (at least 1).
    pub max_concurrent: usize,
    /// Minimum time between the starts of two requests.
    pub min_gap: Duration,
}

impl Default for LimiterConfig {
    /// One request at a time, no gap.
    fn default() -> Self {
        Self {
            max_concurrent: 1,
            min_gap: Duration::ZERO,
        }
    }
}

/// Caps concurrent requests and spaces request starts.
///
/// `acquire` waits for a free slot, then until `min_gap` has passed since the previous start.
/// Uses tokio time, so a paused clock drives it in tests.
#[derive(Debug)]
pub struct RequestLimiter {
    config: LimiterConfig,
    slots: Arc<Semaphore>,
    next_start: Mutex<Option<Instant>>,
}

/// Held while a request is in flight; dropping it frees the slot.
#[derive(Debug)]
pub struct LimiterPermit {
    _slot: OwnedSemaphorePermit,
}

impl RequestLimiter {
    /// A limiter with the given limits.
    pub fn new(config: LimiterConfig) -> Self {
        let max = config.max_concurrent.max(1);
        Self {
            config: LimiterConfig {
                max_concurrent: max,
                ..config
            },
            slots: Arc::new(Semaphore::new(max)),
            next_start: Mutex::new(None),
        }
    }

    /// The limits in force.
    pub fn config(&self) -> LimiterConfig {
        self.config
    }

    /// Waits for permission to start a request.
    pub async fn acquire(&self) -> LimiterPermit {
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("limiter semaphore is never closed");
        if !self.config.min_gap.is_zero() {
            let mut next = self.next_start.lock().await;
            if let Some(at) = *next {
                tokio::time::sleep_until(at).await;
            }
            *next = Some(Instant::now() + self.config.min_gap);
        }
        LimiterPermit { _slot: slot }
    }
}

/// Shares one [`RequestLimiter`] per remote host (or any key), so every stream and client
/// talking to the same PeopleSoft host stays within one budget.
#[derive(Debug, Default)]
pub struct LimiterRegistry {
    limiters: StdMutex<HashMap<String, Arc<RequestLimiter>>>,
}

impl LimiterRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide registry.
    pub fn global() -> &'static LimiterRegistry {
        static GLOBAL: OnceLock<LimiterRegistry> = OnceLock::new();
        GLOBAL.get_or_init(LimiterRegistry::new)
    }

    /// The limiter for `key`, created with `config` on first use. A later caller asking for
    /// different limits gets the existing limiter (the first configuration wins, and a
    /// warning is logged), because two budgets for one host would defeat the purpose.
    pub fn get(&self, key: &str, config: LimiterConfig) -> Arc<RequestLimiter> {
        let mut map = self.limiters.lock().unwrap_or_else(|e| e.into_inner());
        let limiter = map
            .entry(key.to_string())
            .or_insert_with(|| Arc::new(RequestLimiter::new(config)))
            .clone();
        if limiter.config().max_concurrent != config.max_concurrent.max(1)
            || limiter.config().min_gap != config.min_gap
        {
            tracing::warn!(
                host = key,
                "a request limiter for this host already exists with other limits; keeping {:?}",
                limiter.config()
            );
        }
        limiter
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(start_paused = true)]
    async fn never_exceeds_concurrency_and_gap() {
        let limiter = Arc::new(RequestLimiter::new(LimiterConfig {
            max_concurrent: 2,
            min_gap: Duration::from_millis(100),
        }));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let starts = Arc::new(StdMutex::new(Vec::new()));
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let (l, f, p, s) = (
                    limiter.clone(),
                    in_flight.clone(),
                    peak.clone(),
                    starts.clone(),
                );
                tokio::spawn(async move {
                    let _permit = l.acquire().await;
                    s.lock().unwrap().push(Instant::now());
                    let now = f.fetch_add(1, Ordering::SeqCst) + 1;
                    p.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(350)).await;
                    f.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        let mut s = starts.lock().unwrap().clone();
        s.sort();
        for pair in s.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_millis(100));
        }
    }

    #[test]
    fn registry_shares_one_limiter_per_key() {
        let r = LimiterRegistry::new();
        let a = r.get("erp:443", LimiterConfig::default());
        let b = r.get("erp:443", LimiterConfig::default());
        let c = r.get("other:443", LimiterConfig::default());
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
    }
}
