#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use peoplesoft_client::{Connection, Credentials, LoadProtection, PeopleSoftClient, Scheme};
use secrecy::SecretString;
use sync_core::http::{LimiterConfig, RequestLimiter, RetryPolicy};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const BASE: &str = "/PSIGW/RESTListeningConnector/PSFT_EP";
pub const PASSWORD: &str = "s3cr3t-Pa55word";

pub fn fixture(name: &str) -> String {
    let p = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

pub fn connection(server: &MockServer) -> Connection {
    let addr = server.address();
    Connection::builder(addr.ip().to_string(), u32::from(addr.port()), "PSFT_EP")
        .scheme(Scheme::Http)
        .allow_http(true)
        .request_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Fast, deterministic protection: no gap, 1 ms backoff without jitter, 2 retries.
pub fn fast_protection() -> LoadProtection {
    LoadProtection {
        max_concurrent: 4,
        min_gap: Duration::ZERO,
        retry: RetryPolicy {
            max_retries: 2,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
            total_budget: Duration::from_secs(10),
            jitter: false,
        },
        ..LoadProtection::default()
    }
}

pub fn basic() -> Credentials {
    Credentials::basic("PS", SecretString::from(PASSWORD.to_string()))
}

/// A client with its own limiter (tests run in parallel; they must not share budgets).
pub fn client_with(server: &MockServer, creds: Credentials, p: LoadProtection) -> PeopleSoftClient {
    let limiter = Arc::new(RequestLimiter::new(LimiterConfig {
        max_concurrent: p.max_concurrent,
        min_gap: p.min_gap,
    }));
    PeopleSoftClient::builder(connection(server), creds)
        .protection(p)
        .limiter(limiter)
        .build()
        .unwrap()
}

pub fn client(server: &MockServer) -> PeopleSoftClient {
    client_with(server, basic(), fast_protection())
}

/// Any request no other mock matched answers 404 (not retried), so it fails loudly.
pub async fn catch_all(server: &MockServer) {
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(404).set_body_string("unexpected request"))
        .with_priority(u8::MAX)
        .mount(server)
        .await;
}

pub fn json_body(name: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "application/json")
        .set_body_string(fixture(name))
}
