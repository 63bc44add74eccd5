//! Logs at TRACE level never contain a password, client secret or token.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use peoplesoft_client::{Credentials, ExecuteQuery, OAuth2ClientCredentials, QueryName};
use secrecy::SecretString;
use serde_json::json;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn trace_logs_contain_no_secrets() {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = MockServer::start().await;
    Mock::given(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "tok-SECRET-123", "expires_in": 3600
        })))
        .mount(&server)
        .await;
    let exec = format!("{BASE}/ExecuteQuery.v1/PUBLIC/MLC_VENDORS/JSON/NONFILE");
    Mock::given(path(exec.as_str()))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path(exec.as_str()))
        .respond_with(ResponseTemplate::new(401))
        .with_priority(2)
        .mount(&server)
        .await;
    let q = ExecuteQuery::new(QueryName::new("MLC_VENDORS").unwrap());

    // Basic: a retried 500, then a 401.
    let _ = client(&server).execute_query(&q).await;
    // OAuth: token fetch, then a 401.
    let oauth = OAuth2ClientCredentials::new(
        &format!("{}/token", server.uri()),
        "id",
        SecretString::from("client-SECRET-456".to_string()),
    )
    .unwrap();
    let c = client_with(&server, Credentials::OAuth2(oauth), fast_protection());
    let _ = c.execute_query(&q).await;

    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("PeopleSoft request"),
        "nothing was logged: {logs}"
    );
    assert!(
        logs.contains("retrying"),
        "the retry was not logged: {logs}"
    );
    for secret in [
        PASSWORD,
        "UFM6czNj",
        "tok-SECRET-123",
        "client-SECRET-456",
        "aWQ6Y2xpZW50",
    ] {
        assert!(
            !logs.contains(secret),
            "`{secret}` leaked into the logs:\n{logs}"
        );
    }
}
