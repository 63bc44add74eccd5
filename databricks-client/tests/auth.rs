//! OAuth M2M, token caching and 401 handling against a wiremock workspace.

mod common;

use std::time::Duration;

use common::*;
use databricks_client::{Error, Statement};
use serde_json::json;
use tokio::time::Instant;
use wiremock::matchers::{basic_auth, body_string, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn token_is_fetched_once_for_64_concurrent_statements() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(DISCOVERY))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    // Only the exact SDK wire format gets a token.
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .and(basic_auth(CLIENT_ID, CLIENT_SECRET))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string("grant_type=client_credentials&scope=all-apis"))
        .respond_with(token_reply("tok-1").set_delay(Duration::from_millis(100)))
        .mount(&server)
        .await;
    mount_select_ok(&server).await;
    mount_catch_all(&server).await;
    let c = client(oauth_config(&server).build().unwrap());
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.execute(&Statement::new("SELECT 1")).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(requests_to(&server, "POST", TOKEN_PATH).await.len(), 1);
    let stmts = requests_to(&server, "POST", STATEMENTS).await;
    assert_eq!(stmts.len(), 64);
    assert!(stmts.iter().all(|r| auth_header(r) == "Bearer tok-1"));
}

#[tokio::test(start_paused = true)]
async fn token_is_refreshed_before_expiry() {
    let server = MockServer::start().await;
    mount_oauth(
        &server,
        vec![
            // `expires_in` as a string, as the CLI's fake server sends it.
            ResponseTemplate::new(200).set_body_json(
                json!({"access_token":"tok-1","expires_in":"3600","token_type":"Bearer"}),
            ),
            token_reply("tok-2"),
        ],
    )
    .await;
    mount_select_ok(&server).await;
    mount_catch_all(&server).await;
    let c = client(oauth_config(&server).build().unwrap());
    c.execute(&Statement::new("SELECT 1")).await.unwrap();
    tokio::time::advance(Duration::from_secs(39 * 60)).await;
    c.execute(&Statement::new("SELECT 1")).await.unwrap();
    // Stale at 60 - min(30, 20) = 40 minutes: refreshed well before the one-hour expiry.
    tokio::time::advance(Duration::from_secs(2 * 60)).await;
    c.execute(&Statement::new("SELECT 1")).await.unwrap();
    let auths: Vec<_> = requests_to(&server, "POST", STATEMENTS)
        .await
        .iter()
        .map(auth_header)
        .collect();
    assert_eq!(auths, ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]);
    assert_eq!(requests_to(&server, "POST", TOKEN_PATH).await.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn http_401_forces_one_refresh_and_one_retry() {
    let server = MockServer::start().await;
    mount_oauth(&server, vec![token_reply("tok-1"), token_reply("tok-2")]).await;
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .and(header("authorization", "Bearer tok-1"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"error_code":"UNAUTHENTICATED","message":"token revoked"})),
        )
        .mount(&server)
        .await;
    mount_select_ok(&server).await;
    mount_catch_all(&server).await;
    let c = client(oauth_config(&server).build().unwrap());
    c.execute(&Statement::new("SELECT 1")).await.unwrap();
    let auths: Vec<_> = requests_to(&server, "POST", STATEMENTS)
        .await
        .iter()
        .map(auth_header)
        .collect();
    assert_eq!(auths, ["Bearer tok-1", "Bearer tok-2"]);
    assert_eq!(requests_to(&server, "POST", TOKEN_PATH).await.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_second_401_is_returned_not_retried_again() {
    let server = MockServer::start().await;
    mount_oauth(
        &server,
        vec![
            token_reply("tok-1"),
            token_reply("tok-2"),
            token_reply("tok-3"),
        ],
    )
    .await;
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"error_code":"UNAUTHENTICATED","message":"no"})),
        )
        .mount(&server)
        .await;
    let c = client(oauth_config(&server).build().unwrap());
    let err = c.execute(&Statement::new("SELECT 1")).await.unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
    assert_eq!(requests_to(&server, "POST", STATEMENTS).await.len(), 2);
    assert_eq!(requests_to(&server, "POST", TOKEN_PATH).await.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_pat_is_never_retried_after_401() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(STATEMENTS))
        .respond_with(ResponseTemplate::new(401).set_body_string(""))
        .mount(&server)
        .await;
    let c = client(pat_config(&server, "dapi-secret-pat").build().unwrap());
    let err = c.execute(&Statement::new("SELECT 1")).await.unwrap_err();
    assert_eq!(requests_to(&server, "POST", STATEMENTS).await.len(), 1);
    assert_eq!(
        auth_header(&requests_to(&server, "POST", STATEMENTS).await[0]),
        "Bearer dapi-secret-pat"
    );
    let shown = format!("{err} {err:?} {c:?}");
    assert!(
        shown.contains("401") && !shown.contains("dapi-secret-pat"),
        "{shown}"
    );
}

#[tokio::test(start_paused = true)]
async fn token_endpoint_503_is_retried_after_retry_after() {
    let server = MockServer::start().await;
    mount_oauth(
        &server,
        vec![
            ResponseTemplate::new(503).insert_header("Retry-After", "3"),
            token_reply("tok-1"),
        ],
    )
    .await;
    mount_select_ok(&server).await;
    mount_catch_all(&server).await;
    let c = client(oauth_config(&server).build().unwrap());
    let started = Instant::now();
    c.execute(&Statement::new("SELECT 1")).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(requests_to(&server, "POST", TOKEN_PATH).await.len(), 2);
}

#[tokio::test]
async fn discovery_names_the_token_endpoint() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(DISCOVERY))
        .respond_with(ok_json(json!({
            "authorization_endpoint": format!("{}/oidc/v1/authorize", server.uri()),
            "token_endpoint": format!("{}/custom/oidc/token", server.uri()),
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/custom/oidc/token"))
        .respond_with(token_reply("tok-d"))
        .mount(&server)
        .await;
    mount_select_ok(&server).await;
    mount_catch_all(&server).await;
    let c = client(oauth_config(&server).build().unwrap());
    c.execute(&Statement::new("SELECT 1")).await.unwrap();
    c.execute(&Statement::new("SELECT 1")).await.unwrap();
    assert_eq!(requests_to(&server, "GET", DISCOVERY).await.len(), 1);
    assert_eq!(
        requests_to(&server, "POST", "/custom/oidc/token")
            .await
            .len(),
        1
    );
    assert!(requests_to(&server, "POST", TOKEN_PATH).await.is_empty());
    let order: Vec<_> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.url.path().to_string())
        .collect();
    assert_eq!(order[..3], [DISCOVERY, "/custom/oidc/token", STATEMENTS]);
}

#[tokio::test]
async fn discovery_404_falls_back_to_the_standard_token_path() {
    let server = MockServer::start().await;
    mount_oauth(&server, vec![token_reply("tok-f")]).await;
    mount_select_ok(&server).await;
    mount_catch_all(&server).await;
    let c = client(oauth_config(&server).build().unwrap());
    c.execute(&Statement::new("SELECT 1")).await.unwrap();
    assert_eq!(requests_to(&server, "GET", DISCOVERY).await.len(), 1);
    assert_eq!(requests_to(&server, "POST", TOKEN_PATH).await.len(), 1);
    assert_eq!(
        auth_header(&requests_to(&server, "POST", STATEMENTS).await[0]),
        "Bearer tok-f"
    );
}

#[tokio::test]
async fn oauth_error_body_is_a_clear_error_without_the_secret() {
    let server = MockServer::start().await;
    mount_oauth(
        &server,
        vec![ResponseTemplate::new(401).set_body_json(json!({
            "error": "invalid_client",
            // A misbehaving server echoing the secret must not leak it through us.
            "error_description": format!("Client authentication failed for {CLIENT_SECRET}")
        }))],
    )
    .await;
    mount_catch_all(&server).await;
    let c = client(oauth_config(&server).build().unwrap());
    let err = c.execute(&Statement::new("SELECT 1")).await.unwrap_err();
    assert!(matches!(err, Error::Token(_)), "{err:?}");
    let shown = format!("{err} | {err:?} | {c:?}");
    assert!(shown.contains("invalid_client"), "{shown}");
    assert!(shown.contains("Client authentication failed"), "{shown}");
    assert!(!shown.contains(CLIENT_SECRET), "{shown}");
    assert_eq!(err.status(), Some(401));
    assert!(!err.is_transient());
    // No statement was sent without a token.
    assert!(requests_to(&server, "POST", STATEMENTS).await.is_empty());
}
