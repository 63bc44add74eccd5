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
/// `acquire` waits for a free slot, then until `min_gap` has passed since the previous
/// request started **and** since it was answered (see [`LimiterPermit::answered`]; dropping
/// the permit counts as answered). The server cannot have seen a request later than its
/// answer, so counting the gap from the answer keeps it on the wire as the server sees it,
/// whatever the time spent opening a connection or scheduling tasks on either side. With
/// one slot per host (the default) that is always the case; with more, a request still
/// waiting for its answer when the gap has passed lets the next one start `min_gap` after
/// its own start. Uses tokio time, so a paused clock drives it in tests.
#[derive(Debug)]
pub struct RequestLimiter {
    config: LimiterConfig,
    slots: Arc<Semaphore>,
    /// Serialises starters, so the gap is computed by one waiter at a time.
    starting: Mutex<()>,
    last: Arc<StdMutex<LastStart>>,
}

/// The latest request start, and when it was answered.
#[derive(Debug, Default)]
struct LastStart {
    seq: u64,
    started: Option<Instant>,
    answered: Option<Instant>,
}

/// Held while a request is in flight; dropping it frees the slot (and marks the request
/// answered if [`answered`](Self::answered) was not called).
#[derive(Debug)]
pub struct LimiterPermit {
    _slot: OwnedSemaphorePermit,
    seq: u64,
    last: Option<Arc<StdMutex<LastStart>>>,
}

impl LimiterPermit {
    /// Notes that the request's answer (or its failure) arrived: the next request's gap
    /// counts from now at the latest. Call it as soon as the response head is in.
    pub fn answered(&self) {
        if let Some(last) = &self.last {
            let mut l = last.lock().unwrap_or_else(|e| e.into_inner());
            if l.seq == self.seq && l.answered.is_none() {
                l.answered = Some(Instant::now());
            }
        }
    }
}

impl Drop for LimiterPermit {
    fn drop(&mut self) {
        self.answered();
    }
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
            starting: Mutex::new(()),
            last: Arc::new(StdMutex::new(LastStart::default())),
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
        let gap = self.config.min_gap;
        if gap.is_zero() {
            return LimiterPermit {
                _slot: slot,
                seq: 0,
                last: None,
            };
        }
        let _turn = self.starting.lock().await;
        loop {
            let earliest = {
                let l = self.last.lock().unwrap_or_else(|e| e.into_inner());
                match (l.started, l.answered) {
                    (Some(s), Some(a)) => Some((s + gap).max(a + gap)),
                    (Some(s), None) => Some(s + gap),
                    _ => None,
                }
            };
            match earliest {
                // The previous request may be answered while we wait: look again.
                Some(at) if at > Instant::now() => tokio::time::sleep_until(at).await,
                _ => break,
            }
        }
        let mut l = self.last.lock().unwrap_or_else(|e| e.into_inner());
        l.seq += 1;
        l.started = Some(Instant::now());
        l.answered = None;
        LimiterPermit {
            _slot: slot,
            seq: l.seq,
            last: Some(self.last.clone()),
        }
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

    #[tokio::test(start_paused = true)]
    async fn the_gap_counts_from_the_previous_answer() {
        let limiter = RequestLimiter::new(LimiterConfig {
            max_concurrent: 1,
            min_gap: Duration::from_millis(100),
        });
        let t0 = Instant::now();
        let p = limiter.acquire().await;
        // The request takes 30 ms to be answered (a slow connect, say).
        tokio::time::sleep(Duration::from_millis(30)).await;
        p.answered();
        tokio::time::sleep(Duration::from_millis(5)).await;
        drop(p);
        let _q = limiter.acquire().await;
        assert_eq!(t0.elapsed(), Duration::from_millis(130));
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
