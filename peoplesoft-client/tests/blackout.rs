//! Blackout windows with an injected wall clock and a paused tokio clock.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::*;
use peoplesoft_client::{
    BlackoutAction, BlackoutWindow, Error, ExecuteQuery, LoadProtection, PeopleSoftClient,
    QueryName,
};
use sync_core::{FailureKind, ManualClock};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn payroll(action: BlackoutAction) -> LoadProtection {
    LoadProtection {
        blackout_action: action,
        ..fast_protection()
    }
    // 18:00–23:00 New York = 23:00–04:00 UTC in winter.
    .with_blackout(BlackoutWindow::new("payroll", "18:00", "23:00", "America/New_York").unwrap())
}

fn client_at(server: &MockServer, p: LoadProtection, clock: Arc<ManualClock>) -> PeopleSoftClient {
    PeopleSoftClient::builder(connection(server), basic())
        .protection(p)
        .clock(clock)
        .build()
        .unwrap()
}

#[tokio::test]
async fn skip_action_sends_nothing_during_the_window_and_is_deferred() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(json_body("empty.json"))
        .expect(1)
        .mount(&server)
        .await;
    let clock = Arc::new(ManualClock::new(utc("2026-01-15T01:00:00Z"))); // 20:00 in New York
    let c = client_at(&server, payroll(BlackoutAction::Skip), clock.clone());
    let q = ExecuteQuery::new(QueryName::new("MLC_VENDORS").unwrap());
    let e = c.execute_query(&q).await.unwrap_err();
    match &e {
        Error::Blackout { window, until, .. } => {
            assert_eq!(window, "payroll");
            assert_eq!(*until, utc("2026-01-15T04:00:00Z"));
        }
        other => panic!("{other:?}"),
    }
    // Not an attempt: the engine neither records a failure nor counts an attempt.
    assert_eq!(e.failure_kind(), FailureKind::Deferred);
    let c_err = e.into_connector_error("stream `vendors`");
    assert_eq!(c_err.until(), Some(utc("2026-01-15T04:00:00Z")));
    // After the window the request goes out (the mock expects exactly one).
    clock.set(utc("2026-01-15T04:00:00Z"));
    c.execute_query(&q).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn wait_action_sleeps_until_the_window_ends_on_the_paused_clock() {
    // No request is sent here: only the gate is exercised, so paused time cannot trip an
    // HTTP timeout.
    let server = MockServer::start().await;
    let clock = Arc::new(ManualClock::new(utc("2026-01-15T02:30:00Z"))); // 21:30 in New York
    let c = client_at(&server, payroll(BlackoutAction::Wait), clock.clone());
    let started = tokio::time::Instant::now();
    c.wait_for_blackout().await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(90 * 60));

    clock.set(utc("2026-01-15T12:00:00Z")); // 07:00 in New York: no wait
    let started = tokio::time::Instant::now();
    c.wait_for_blackout().await.unwrap();
    assert_eq!(started.elapsed(), Duration::ZERO);
}

/// Answers 500 the first time and, at that moment, moves the wall clock to 50 ms before the
/// end of a blackout window; records arrival times.
struct FailOnceThenBlackout {
    clock: Arc<ManualClock>,
    hits: Arc<std::sync::Mutex<Vec<std::time::Instant>>>,
}

impl wiremock::Respond for FailOnceThenBlackout {
    fn respond(&self, _: &wiremock::Request) -> wiremock::ResponseTemplate {
        let mut hits = self.hits.lock().unwrap();
        hits.push(std::time::Instant::now());
        if hits.len() == 1 {
            self.clock.set(utc("2026-01-15T03:59:59.950Z")); // 22:59:59.95 in New York
            wiremock::ResponseTemplate::new(500)
        } else {
            json_body("empty.json")
        }
    }
}

#[tokio::test]
async fn a_retry_never_starts_inside_a_blackout_window() {
    let server = MockServer::start().await;
    let clock = Arc::new(ManualClock::new(utc("2026-01-15T12:00:00Z")));
    let hits = Arc::new(std::sync::Mutex::new(Vec::new()));
    Mock::given(any())
        .respond_with(FailOnceThenBlackout {
            clock: clock.clone(),
            hits: hits.clone(),
        })
        .expect(2)
        .mount(&server)
        .await;
    // Even with Skip, a retry already under way waits for the window to end.
    let c = client_at(&server, payroll(BlackoutAction::Skip), clock);
    c.execute_query(&ExecuteQuery::new(QueryName::new("MLC_VENDORS").unwrap()))
        .await
        .unwrap();
    let hits = hits.lock().unwrap();
    let gap = hits[1] - hits[0];
    assert!(
        gap >= Duration::from_millis(45),
        "retry started {gap:?} after the failure, inside the window"
    );
}
