//! Logs at TRACE level never contain a client secret or token.
//!
//! This test is alone in its binary on purpose: `tracing` caches each call site's interest
//! process-wide, and a call site first reached by another test's thread while this test
//! installs its thread-local subscriber can be cached as "never", dropping the very lines
//! this test must read.

mod common;

use common::*;
use databricks_client::Statement;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Captures every log line (TRACE, all crates) of an OAuth flow with a throttled token
/// endpoint and a 401 refresh, and checks no secret or token appears in them.
#[tokio::test(start_paused = true)]
async fn logs_never_contain_secrets_or_tokens() {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = MockServer::start().await;
    mount_oauth(
        &server,
        vec![
            ResponseTemplate::new(503).insert_header("Retry-After", "1"),
            token_reply("secret-token-one"),
            token_reply("secret-token-two"),
        ],
    )
    .await;
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .and(header("authorization", "Bearer secret-token-one"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    mount_select_ok(&server).await;
    let c = client(oauth_config(&server).build().unwrap());
    c.execute(&Statement::new("SELECT 1")).await.unwrap();
    tracing::info!(client = ?c, "done");
    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("retrying"), "the capture works: {logs}");
    for secret in [CLIENT_SECRET, "secret-token-one", "secret-token-two"] {
        assert!(!logs.contains(secret), "{secret} leaked:\n{logs}");
    }
    // The Basic header value either.
    use base64::Engine as _;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    assert!(!logs.contains(&basic));
}
