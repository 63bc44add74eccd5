//! Operational safety (issue 10) through the PeopleSoft stand-in, counted on the server side:
//! one failed login per process, blackouts that cost nothing, a connection-level failure that
//! stops the cycle instead of retrying every window, the request gap kept on the wire, and a
//! timed-out query that is not retried at once.

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use crate::common::StandInClient;
use crate::common::*;
use chrono::{Duration, Timelike};
use ml_connector_testkit::peoplesoft::{Fault, FaultRule, PeopleSoftServer, DEFAULT_OPRID};
use ml_connector_testkit::QUERY_VENDORS;
use peoplesoft_client::{
    AuthLatch, BlackoutAction, BlackoutWindow, Connection, Credentials, ExecuteQuery,
    LoadProtection, PeopleSoftClient, QueryName, Scheme,
};
use secrecy::SecretString;
use sync_core::audit::{AuditLog, JsonlAuditLog, Outcome};
use sync_core::http::RetryPolicy;
use sync_core::sqlite::SqliteSink;
use sync_core::{Batch, Clock, ColumnDef, ColumnType, Sink, TableSchema, Value, Window};

fn fast_protection() -> LoadProtection {
    LoadProtection {
        min_gap: StdDuration::ZERO,
        retry: RetryPolicy {
            max_retries: 2,
            initial_backoff: StdDuration::from_millis(10),
            max_backoff: StdDuration::from_millis(50),
            total_budget: StdDuration::from_secs(10),
            jitter: false,
        },
        ..LoadProtection::default()
    }
}

fn client_for(
    host: String,
    port: u16,
    node: &str,
    password: &str,
    protection: LoadProtection,
    timeout: StdDuration,
) -> peoplesoft_client::PeopleSoftClientBuilder {
    StandInClient {
        password: password.into(),
        protection,
        request_timeout: Some(timeout),
        ..StandInClient::default()
    }
    .builder(host, port, node)
}

fn sqlite(dir: &std::path::Path) -> Arc<SqliteSink> {
    Arc::new(SqliteSink::open(dir.join("dest.db")).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_streams_with_a_wrong_password_send_exactly_one_request() {
    let dir = tempfile::tempdir().unwrap();
    let mut site = site(0.3);
    // Four requests may be in flight at once, and four streams run at once: still one login.
    site.client = client_for(
        site.server.host(),
        site.server.port(),
        site.server.node(),
        "not-the-password",
        LoadProtection {
            max_concurrent: 4,
            ..fast_protection()
        },
        StdDuration::from_secs(5),
    )
    .limiter(Arc::new(sync_core::http::RequestLimiter::new(
        sync_core::http::LimiterConfig {
            max_concurrent: 4,
            min_gap: StdDuration::ZERO,
        },
    )))
    .clock(site.clock.clone())
    .build()
    .unwrap();
    assert_eq!(site.streams.len(), 6);
    let p = pipeline(&site, sqlite(dir.path()), &dir.path().join("state"), |d| d);
    let r = p.run_cycle().await.unwrap();
    let stats = site.server.stats();
    assert_eq!(stats.total_requests, 1, "{r:#?}");
    assert_eq!(stats.unauthorized, 1);
    assert!(!r.is_clean());
    let rejected: Vec<_> = r
        .streams
        .iter()
        .filter(|s| s.error.as_deref().is_some_and(|e| e.contains("rejected")))
        .collect();
    assert_eq!(rejected.len(), 1, "{r:#?}");
    for s in r.streams.iter().filter(|s| s.error.is_none()) {
        assert_eq!(s.windows_failed, 0, "{s:#?}");
        let why = s.skipped.as_deref().unwrap_or_default();
        assert!(why.contains("not sending to PeopleSoft"), "{s:#?}");
    }
    assert!(site.client.auth_latch().is_latched());

    // A second cycle of the same process: nothing reaches the server.
    let r = p.run_cycle().await.unwrap();
    assert_eq!(site.server.stats().total_requests, 1, "{r:#?}");
    // And nothing was counted against the windows that were never attempted.
    for s in p.status().await.unwrap() {
        assert!(s.failed.iter().all(|f| f.attempts <= 1), "{s:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_for_the_same_host_and_credentials_share_the_latch() {
    let site = site(0.1);
    let host = format!("{}:{}", site.server.host(), site.server.port());
    let creds = Credentials::basic(
        DEFAULT_OPRID,
        SecretString::from("another-wrong-password".to_string()),
    );
    let build = || {
        client_for(
            site.server.host(),
            site.server.port(),
            site.server.node(),
            "another-wrong-password",
            fast_protection(),
            StdDuration::from_secs(5),
        )
        .auth_latch(AuthLatch::process_wide(&host, &creds))
        .build()
        .unwrap()
    };
    let (forward, reverse) = (build(), build());
    let q = ExecuteQuery::new(QueryName::new(QUERY_VENDORS).unwrap());
    let e = forward.execute_query(&q).await.unwrap_err();
    assert!(
        matches!(e, peoplesoft_client::Error::AuthRejected { .. }),
        "{e}"
    );
    let e = reverse
        .service_request(
            peoplesoft_client::Method::GET,
            "CI_VENDOR.v1/SHARE/1",
            None,
            peoplesoft_client::Idempotency::Idempotent,
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("reset-auth"), "{e}");
    assert_eq!(site.server.stats().total_requests, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_and_reverse_pipelines_share_one_latch() {
    use ml_connector_testkit::cirt::{CirtStandIn, CIRT_OPRID};
    let site = site(0.1);
    let cirt = CirtStandIn::start(site.dataset.clone()).await;
    let latch = AuthLatch::new();
    let forward = client_for(
        site.server.host(),
        site.server.port(),
        site.server.node(),
        "wrong",
        fast_protection(),
        StdDuration::from_secs(5),
    )
    .auth_latch(latch.clone())
    .build()
    .unwrap();
    let conn = Connection::builder(cirt.host(), u32::from(cirt.port()), cirt.node())
        .scheme(Scheme::Http)
        .allow_http(true)
        .build()
        .unwrap();
    let writer = PeopleSoftClient::builder(
        conn,
        Credentials::basic(CIRT_OPRID, SecretString::from("wrong".to_string())),
    )
    .protection(fast_protection())
    .auth_latch(latch.clone())
    .build()
    .unwrap();
    // The forward pipeline is rejected once.
    let dir = tempfile::tempdir().unwrap();
    let mut fsite = site;
    fsite.client = forward;
    let p = pipeline(&fsite, sqlite(dir.path()), &dir.path().join("state"), |d| d);
    p.run_cycle().await.unwrap();
    assert_eq!(fsite.server.stats().total_requests, 1);
    assert!(latch.is_latched());
    // The write-back sink (the reverse pipeline's sink) sends nothing with the latched
    // credentials: the batch stops at once.
    let sink = peoplesoft_client::PeopleSoftSink::builder(writer.clone())
        .target(
            "vendors_writeback",
            peoplesoft_client::writeback::CiTarget::cirt(
                cirt.vendor_ci(),
                1,
                &[("setid", "SETID"), ("vendor_id", "VENDOR_ID")],
            )
            .field("name1", "NAME1"),
        )
        .build()
        .unwrap();
    let schema = TableSchema {
        name: "vendors_writeback".into(),
        columns: vec![
            ColumnDef::new("setid", ColumnType::String),
            ColumnDef::new("vendor_id", ColumnType::String),
            ColumnDef::new("name1", ColumnType::String),
        ],
        primary_key: vec!["setid".into(), "vendor_id".into()],
        cursor_column: None,
        write_mode: Default::default(),
        effective_dating: None,
    };
    let batch = Batch {
        rows: vec![vec![
            Value::String("SHARE".into()),
            Value::String("0000000001".into()),
            Value::String("Renamed".into()),
        ]],
        window: Window::new(
            "2026-01-01T00:00:00Z".parse().unwrap(),
            "2026-01-02T00:00:00Z".parse().unwrap(),
        ),
        run_id: "run-1".into(),
        as_of: None,
        stream: "vendors_writeback".into(),
    };
    let e = sink.write(&schema, &batch).await.unwrap_err();
    assert!(e.message().contains("reset-auth"), "{e}");
    assert_eq!(cirt.requests().len(), 0);
}

/// A UTC blackout covering `now` (from an hour before to two hours after).
fn blackout_around(now: chrono::DateTime<chrono::Utc>) -> BlackoutWindow {
    let from = now - Duration::hours(1);
    let to = now + Duration::hours(2);
    BlackoutWindow::new(
        "payroll",
        &format!("{:02}:{:02}", from.hour(), from.minute()),
        &format!("{:02}:{:02}", to.hour(), to.minute()),
        "UTC",
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipped_blackout_cycles_record_nothing_and_the_data_loads_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut site = site(0.3);
    let now = site.clock.now();
    let mut protection = fast_protection().with_blackout(blackout_around(now));
    protection.blackout_action = BlackoutAction::Skip;
    site.client = client_for(
        site.server.host(),
        site.server.port(),
        site.server.node(),
        ml_connector_testkit::peoplesoft::DEFAULT_PASSWORD,
        protection,
        StdDuration::from_secs(5),
    )
    .clock(site.clock.clone())
    .build()
    .unwrap();
    let sink = sqlite(dir.path());
    let state = dir.path().join("state");
    let p = pipeline(&site, sink.clone(), &state, |d| d);
    // More cycles than max_attempts (5), all inside the blackout.
    for _ in 0..7 {
        let r = p.run_cycle().await.unwrap();
        assert!(r.is_clean(), "{r:#?}");
        for s in &r.streams {
            assert_eq!(s.windows_failed, 0);
            assert!(s
                .skipped
                .as_deref()
                .unwrap_or_default()
                .contains("blackout"));
        }
        site.clock.advance(Duration::minutes(10));
    }
    assert_eq!(site.server.stats().total_requests, 0);
    let until = now.with_second(0).unwrap() + Duration::hours(2);
    for s in p.status().await.unwrap() {
        assert!(s.failed.is_empty() && s.stuck.is_empty(), "{s:#?}");
        let skipped = s.skipped.expect("skipped is recorded for status");
        assert_eq!(skipped.until, Some(until), "{}", skipped.reason);
    }
    let audit = JsonlAuditLog::new(state.join("audit.jsonl"));
    assert!(audit.entries("e2e", None).await.unwrap().is_empty());

    // After the blackout: everything loads, and the skip note is gone.
    site.clock.set(until + Duration::minutes(1));
    let r = p.run_cycle().await.unwrap();
    assert!(r.is_clean(), "{r:#?}");
    sink.with_connection(|db| assert_all_match(db, &site.dataset));
    for s in p.status().await.unwrap() {
        assert!(s.skipped.is_none(), "{s:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_stops_every_stream_for_the_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let mut site = site(0.1);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    site.client = client_for(
        "127.0.0.1".into(),
        port,
        site.server.node(),
        "x",
        fast_protection(),
        StdDuration::from_secs(5),
    )
    .clock(site.clock.clone())
    .build()
    .unwrap();
    let p = pipeline(&site, sqlite(dir.path()), &dir.path().join("state"), |d| d);
    let started = Instant::now();
    let r = p.run_cycle().await.unwrap();
    let failed: usize = r.streams.iter().map(|s| s.windows_failed).sum();
    assert_eq!(failed, 1, "one window attempted, the rest deferred: {r:#?}");
    let deferred = r
        .streams
        .iter()
        .filter(|s| {
            s.skipped
                .as_deref()
                .is_some_and(|e| e.contains("connection refused"))
        })
        .count();
    assert_eq!(deferred, 6, "{r:#?}");
    assert!(started.elapsed() < StdDuration::from_secs(5));
    // The next cycle tries again (once).
    site.client.begin_cycle();
    let r = p.run_cycle().await.unwrap();
    let failed: usize = r.streams.iter().map(|s| s.windows_failed).sum();
    assert_eq!(failed, 1, "{r:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_starts_keep_the_gap_on_the_wire() {
    let server = PeopleSoftServer::start(ml_connector_testkit::dataset::Dataset::manufacturer(
        3, 0.05,
    ));
    let gap = StdDuration::from_millis(120);
    let protection = LoadProtection {
        min_gap: gap,
        max_concurrent: 2,
        ..fast_protection()
    };
    let client = client_for(
        server.host(),
        server.port(),
        server.node(),
        ml_connector_testkit::peoplesoft::DEFAULT_PASSWORD,
        protection,
        StdDuration::from_secs(5),
    )
    .limiter(Arc::new(sync_core::http::RequestLimiter::new(
        sync_core::http::LimiterConfig {
            max_concurrent: 2,
            min_gap: gap,
        },
    )))
    .build()
    .unwrap();
    // Two 503s on the way, so retries are paced too; queued callers compete for the slots.
    server.inject(FaultRule::new(Fault::Status {
        status: 503,
        retry_after: None,
    }));
    server.inject(
        FaultRule::new(Fault::Status {
            status: 503,
            retry_after: None,
        })
        .after(4),
    );
    let q = ExecuteQuery::new(QueryName::new(QUERY_VENDORS).unwrap()).max_rows(5);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (c, q) = (client.clone(), q.clone());
            tokio::spawn(async move { c.execute_query(&q).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let stats = server.stats();
    assert_eq!(stats.total_requests, 10);
    let gaps = stats.arrival_gaps();
    // Exact, no tolerance: the server stamps an arrival before it answers, and the next
    // request starts `min_gap` after the answer at the earliest.
    let min = gaps.iter().min().copied().unwrap();
    assert!(min >= gap, "gaps between arrivals: {gaps:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_query_is_not_retried_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut site = site(0.1);
    site.client = client_for(
        site.server.host(),
        site.server.port(),
        site.server.node(),
        ml_connector_testkit::peoplesoft::DEFAULT_PASSWORD,
        fast_protection(),
        StdDuration::from_millis(400),
    )
    .clock(site.clock.clone())
    .build()
    .unwrap();
    site.streams.retain(|d| d.name == "vendors");
    let vendors_query = site.streams[0].query.as_str().to_string();
    site.server.inject(
        FaultRule::new(Fault::Hang(StdDuration::from_secs(2))).for_query(vendors_query.clone()),
    );
    let state = dir.path().join("state");
    let p = pipeline(&site, sqlite(dir.path()), &state, |d| d);
    let r = p.run_cycle().await.unwrap();
    assert_eq!(r.streams[0].windows_failed, 1, "{r:#?}");
    // One request for the hung window: not retried by the client.
    let stats = site.server.stats();
    let hung: Vec<_> = stats
        .windows_for(&vendors_query)
        .into_iter()
        .filter(|w| w.fault.is_some())
        .cloned()
        .collect();
    assert_eq!(hung.len(), 1);
    let same_window = stats
        .windows_for(&vendors_query)
        .into_iter()
        .filter(|w| w.from == hung[0].from && w.to == hung[0].to)
        .count();
    assert_eq!(same_window, 1, "the timed-out window was sent once");
    let audit = JsonlAuditLog::new(state.join("audit.jsonl"));
    let entries = audit.entries("e2e", None).await.unwrap();
    let failed: Vec<_> = entries
        .iter()
        .filter(|e| e.outcome == Outcome::Failed)
        .collect();
    assert_eq!(failed.len(), 1);
    let error = failed[0].error.as_deref().unwrap_or_default();
    assert!(
        error.contains("timeout") && error.contains("request_timeout"),
        "{error}"
    );
    // The next cycle retries the window (and succeeds).
    site.clock.advance(Duration::minutes(10));
    let r = p.run_cycle().await.unwrap();
    assert!(r.is_clean(), "{r:#?}");
}
