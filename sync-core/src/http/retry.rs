use std::future::Future;
use std::time::{Duration, SystemTime};

use reqwest::{Response, StatusCode};
use tokio::time::Instant;

/// Whether repeating a request can change the outcome twice.
///
/// A non-idempotent request (for example a SQL `INSERT` POST) is retried only when the
/// server certainly did not act on it: HTTP 429, 503, or a failure to connect. A timeout or
/// a dropped connection after the request was sent is *not* retried, because the first
/// attempt may have run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Safe to repeat (GET, keyed MERGE, token POST).
    Idempotent,
    /// Must not run twice.
    NonIdempotent,
    /// Safe to repeat, but expensive for the server, which keeps working on it after the
    /// client gave up (a synchronous PeopleSoft `ExecuteQuery`): retried like
    /// [`Idempotent`](Self::Idempotent) on 5xx, 429 and connect errors, but **not** after a
    /// timeout, because an immediate retry would start a second copy of a query that is
    /// still running.
    IdempotentNoTimeoutRetry,
}

/// The one retry policy both clients use.
///
/// Delays grow exponentially from `initial_backoff` (×2 per retry, capped at `max_backoff`)
/// with "equal jitter" (half fixed, half random). A `Retry-After` header overrides the computed
/// delay. No retry starts once `total_budget` would be exceeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 disables retries).
    pub max_retries: u32,
    /// Delay before the first retry.
    pub initial_backoff: Duration,
    /// Upper bound of a computed delay.
    pub max_backoff: Duration,
    /// No retry is started after this much time since the first attempt.
    pub total_budget: Duration,
    /// Randomise delays (on by default; off makes delays exact for tests).
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            total_budget: Duration::from_secs(300),
            jitter: true,
        }
    }
}

/// A request that failed below HTTP (connect, timeout, dropped body), after any retries.
#[derive(Debug, thiserror::Error)]
#[error("{source} (after {retries} retries, {elapsed:?})")]
pub struct TransportError {
    /// Retries made before giving up.
    pub retries: u32,
    /// Time from the first attempt to giving up.
    pub elapsed: Duration,
    /// The last transport error (reqwest's; reached through `Error::source`, so reqwest
    /// stays out of this crate's public API).
    #[source]
    source: reqwest::Error,
}

impl TransportError {
    /// True when the request timed out.
    pub fn is_timeout(&self) -> bool {
        self.source.is_timeout()
    }

    /// True when no connection could be made.
    pub fn is_connect(&self) -> bool {
        self.source.is_connect()
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// Whether a response with this status is worth retrying.
    pub fn retry_status(status: StatusCode, idempotency: Idempotency) -> bool {
        match status.as_u16() {
            429 | 503 => true,
            408 | 500 | 502 | 504 => idempotency != Idempotency::NonIdempotent,
            _ => false,
        }
    }

    /// Whether a transport error is worth retrying.
    pub(crate) fn retry_transport(err: &reqwest::Error, idempotency: Idempotency) -> bool {
        if err.is_connect() {
            // Nothing reached the server.
            return true;
        }
        if err.is_timeout() {
            return idempotency == Idempotency::Idempotent;
        }
        idempotency != Idempotency::NonIdempotent && (err.is_request() || err.is_body())
    }

    /// The computed delay before retry number `retry` (0-based), without `Retry-After`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let base = self
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(retry.min(20)))
            .min(self.max_backoff);
        if self.jitter && !base.is_zero() {
            let half = base / 2;
            half + half.mul_f64(fastrand::f64())
        } else {
            base
        }
    }

    /// Sends a request, retrying per this policy.
    ///
    /// `attempt` builds and sends a fresh request each time it is called. The final response
    /// is returned whatever its status (callers parse error bodies); only transport failures
    /// become `Err`.
    pub async fn send<F, Fut>(
        &self,
        idempotency: Idempotency,
        mut attempt: F,
    ) -> Result<Response, TransportError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Response, reqwest::Error>>,
    {
        let started = Instant::now();
        let mut retries = 0u32;
        loop {
            let outcome = attempt().await;
            let (retry, retry_after, what) = match &outcome {
                Ok(resp) if resp.status().is_success() => (false, None, String::new()),
                Ok(resp) => (
                    Self::retry_status(resp.status(), idempotency),
                    resp.headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, SystemTime::now())),
                    format!("HTTP {}", resp.status()),
                ),
                Err(e) => (Self::retry_transport(e, idempotency), None, e.to_string()),
            };
            let delay = retry_after.unwrap_or_else(|| self.backoff(retries));
            let elapsed = started.elapsed();
            if !retry
                || retries >= self.max_retries
                || elapsed.saturating_add(delay) > self.total_budget
            {
                return outcome.map_err(|source| TransportError {
                    retries,
                    elapsed,
                    source,
                });
            }
            tracing::warn!(
                attempt = retries + 1,
                delay_ms = delay.as_millis() as u64,
                "request failed ({what}); retrying"
            );
            tokio::time::sleep(delay).await;
            retries += 1;
        }
    }
}

/// The longest delay [`parse_retry_after`] returns: a server asking for more is capped here
/// (and the retry loop gives up at once when the delay would pass its `total_budget`).
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Parses a `Retry-After` value: delay seconds (`120`, also fractional `1.5`) or an HTTP-date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`, RFC 850 and asctime forms too), relative to `now`. A
/// date in the past gives zero; anything longer than [`MAX_RETRY_AFTER`] is capped to it.
///
/// Total: never panics or overflows, whatever the value (huge numbers, negative numbers,
/// `NaN`, garbage); a value it cannot read gives `None`, so the computed backoff applies.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        // Digits only: any length is a (possibly huge) number of seconds.
        return Some(match value.parse::<u64>() {
            Ok(secs) => Duration::from_secs(secs).min(MAX_RETRY_AFTER),
            Err(_) => MAX_RETRY_AFTER,
        });
    }
    if value
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'e' || b == b'E' || b == b'+')
    {
        let secs = value.parse::<f64>().ok()?;
        if !secs.is_finite() || secs < 0.0 {
            return None;
        }
        return Some(if secs >= MAX_RETRY_AFTER.as_secs_f64() {
            MAX_RETRY_AFTER
        } else {
            Duration::from_secs_f64(secs)
        });
    }
    let when = chrono::DateTime::parse_from_rfc2822(value)
        .map(|t| t.with_timezone(&chrono::Utc))
        .or_else(|_| {
            // RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37 1994`).
            let v = value.trim_end_matches(" GMT");
            chrono::NaiveDateTime::parse_from_str(v, "%A, %d-%b-%y %H:%M:%S")
                .or_else(|_| chrono::NaiveDateTime::parse_from_str(v, "%a %b %e %H:%M:%S %Y"))
                .map(|t| t.and_utc())
        })
        .ok()?;
    let now: chrono::DateTime<chrono::Utc> = now.into();
    let delta = when.signed_duration_since(now);
    Some(
        delta
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[test]
    fn retry_after_seconds_and_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_400); // 2015-10-21 07:26:40Z
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(80))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn retry_after_is_total() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_400);
        let cases: &[(&str, Option<Duration>)] = &[
            ("0", Some(Duration::ZERO)),
            ("1.5", Some(Duration::from_millis(1500))),
            (".25", Some(Duration::from_millis(250))),
            ("18446744073709551615", Some(MAX_RETRY_AFTER)),
            ("99999999999999999999999999999999", Some(MAX_RETRY_AFTER)),
            ("1e300", Some(MAX_RETRY_AFTER)),
            ("1e999", None),
            ("-5", None),
            ("NaN", None),
            ("inf", None),
            ("", None),
            ("  ", None),
            ("1.2.3", None),
            (
                "Wednesday, 21-Oct-15 07:28:00 GMT",
                Some(Duration::from_secs(80)),
            ),
            ("Wed Oct 21 07:28:00 2015", Some(Duration::from_secs(80))),
            ("Fri, 31 Dec 9999 23:59:59 GMT", Some(MAX_RETRY_AFTER)),
        ];
        for (v, want) in cases {
            assert_eq!(parse_retry_after(v, now), *want, "{v:?}");
        }
        // Extreme clocks do not overflow either.
        for t in [SystemTime::UNIX_EPOCH, now + Duration::from_secs(1 << 40)] {
            let _ = parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", t);
        }
    }

    proptest::proptest! {
        #[test]
        fn retry_after_never_panics(v in "\\PC{0,40}", secs in proptest::num::u64::ANY) {
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(secs % (1 << 40));
            if let Some(d) = parse_retry_after(&v, now) {
                proptest::prop_assert!(d <= MAX_RETRY_AFTER);
            }
            let _ = parse_retry_after(&secs.to_string(), now);
            let _ = parse_retry_after(&format!("{}.{}", secs, secs), now);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn huge_retry_after_gives_up_within_the_budget() {
        let (hits, f) = scripted(vec![(503, Some("18446744073709551615")), (200, None)]);
        let policy = RetryPolicy {
            jitter: false,
            ..RetryPolicy::default()
        };
        let started = Instant::now();
        let resp = policy.send(Idempotency::Idempotent, f).await.unwrap();
        assert_eq!(resp.status(), 503);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert_eq!(started.elapsed(), Duration::ZERO);
        // With an unlimited budget the wait is the capped day, not an overflow.
        let (hits, f) = scripted(vec![(503, Some("99999999999999999999999")), (200, None)]);
        let unlimited = RetryPolicy {
            total_budget: Duration::MAX,
            ..policy
        };
        let started = Instant::now();
        let resp = unlimited.send(Idempotency::Idempotent, f).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        assert_eq!(started.elapsed(), MAX_RETRY_AFTER);
    }

    #[tokio::test]
    async fn timeouts_of_expensive_reads_are_not_retried() {
        // A server that accepts the connection and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(100))
            .build()
            .unwrap();
        let policy = RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(1),
            jitter: false,
            ..RetryPolicy::default()
        };
        for (idem, want_calls) in [
            (Idempotency::IdempotentNoTimeoutRetry, 1),
            (Idempotency::Idempotent, 4),
        ] {
            let calls = AtomicU32::new(0);
            let err = policy
                .send(idem, || {
                    calls.fetch_add(1, Ordering::SeqCst);
                    client.get(format!("http://{addr}/")).send()
                })
                .await
                .unwrap_err();
            assert!(err.is_timeout(), "{err}");
            assert_eq!(calls.load(Ordering::SeqCst), want_calls, "{idem:?}");
        }
    }

    #[test]
    fn status_classes_depend_on_idempotency() {
        use Idempotency::*;
        for s in [429u16, 503] {
            let s = StatusCode::from_u16(s).unwrap();
            assert!(RetryPolicy::retry_status(s, NonIdempotent));
            assert!(RetryPolicy::retry_status(s, Idempotent));
        }
        for s in [500u16, 502, 504] {
            let s = StatusCode::from_u16(s).unwrap();
            assert!(!RetryPolicy::retry_status(s, NonIdempotent));
            assert!(RetryPolicy::retry_status(s, Idempotent));
        }
        for s in [400u16, 401, 403, 404, 409] {
            let s = StatusCode::from_u16(s).unwrap();
            assert!(!RetryPolicy::retry_status(s, Idempotent));
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            jitter: false,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(700),
            ..RetryPolicy::default()
        };
        let d: Vec<_> = (0..5).map(|i| p.backoff(i).as_millis()).collect();
        assert_eq!(d, vec![100, 200, 400, 700, 700]);
        let j = RetryPolicy { jitter: true, ..p };
        for _ in 0..100 {
            let b = j.backoff(2);
            assert!(b >= Duration::from_millis(200) && b <= Duration::from_millis(400));
        }
    }

    /// Answers from a script without any I/O, so the paused clock measures only our sleeps.
    fn scripted(
        script: Vec<(u16, Option<&'static str>)>,
    ) -> (
        Arc<AtomicU32>,
        impl FnMut() -> std::future::Ready<Result<Response, reqwest::Error>>,
    ) {
        let hits = Arc::new(AtomicU32::new(0));
        let h = hits.clone();
        let f = move || {
            let i = h.fetch_add(1, Ordering::SeqCst) as usize;
            let (status, retry_after) = script[i.min(script.len() - 1)];
            let mut b = http::Response::builder().status(status);
            if let Some(ra) = retry_after {
                b = b.header("Retry-After", ra);
            }
            std::future::ready(Ok(Response::from(b.body("").unwrap())))
        };
        (hits, f)
    }

    #[tokio::test(start_paused = true)]
    async fn honours_retry_after_with_paused_clock() {
        let (hits, f) = scripted(vec![(429, Some("7")), (200, None)]);
        let policy = RetryPolicy {
            jitter: false,
            ..RetryPolicy::default()
        };
        let started = Instant::now();
        let resp = policy.send(Idempotency::NonIdempotent, f).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        // The computed backoff would have been 0.5 s: the wait was Retry-After's 7 s.
        assert_eq!(started.elapsed(), Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn non_idempotent_500_is_not_retried_but_idempotent_is() {
        let policy = RetryPolicy::default();
        let (hits, f) = scripted(vec![(500, None), (200, None)]);
        let resp = policy.send(Idempotency::NonIdempotent, f).await.unwrap();
        assert_eq!(resp.status(), 500);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        let (hits, f) = scripted(vec![(500, None), (200, None)]);
        let resp = policy.send(Idempotency::Idempotent, f).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_retries_and_within_budget() {
        let policy = RetryPolicy {
            max_retries: 3,
            jitter: false,
            ..RetryPolicy::default()
        };
        let (hits, f) = scripted(vec![(503, None)]);
        let started = Instant::now();
        let resp = policy.send(Idempotency::Idempotent, f).await.unwrap();
        assert_eq!(resp.status(), 503);
        assert_eq!(hits.load(Ordering::SeqCst), 4);
        // 0.5 + 1 + 2 seconds of exponential backoff.
        assert_eq!(started.elapsed(), Duration::from_millis(3500));

        let tight = RetryPolicy {
            max_retries: 10,
            total_budget: Duration::from_millis(1600),
            jitter: false,
            ..RetryPolicy::default()
        };
        // Delays 0.5 s, 1 s, then 2 s would pass the 1.6 s budget: three attempts in all.
        let (hits, f) = scripted(vec![(503, None)]);
        tight.send(Idempotency::Idempotent, f).await.unwrap();
        assert_eq!(hits.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn connect_errors_are_retried_even_when_not_idempotent() {
        // A port nothing listens on: bind, note the port, drop the listener.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let client = reqwest::Client::new();
        let calls = AtomicU32::new(0);
        let policy = RetryPolicy {
            max_retries: 2,
            initial_backoff: Duration::from_millis(1),
            jitter: false,
            ..RetryPolicy::default()
        };
        let err = policy
            .send(Idempotency::NonIdempotent, || {
                calls.fetch_add(1, Ordering::SeqCst);
                client.post(format!("http://127.0.0.1:{port}/")).send()
            })
            .await
            .unwrap_err();
        assert!(err.is_connect());
        assert_eq!(err.retries, 2);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
