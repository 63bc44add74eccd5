//! Client behaviour against a wiremock PeopleSoft on 127.0.0.1.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use peoplesoft_client::{
    ClientAuthMethod, Credentials, Error, ExecuteQuery, Idempotency, LoadProtection, Method,
    OAuth2ClientCredentials, PeopleSoftClient, PingCheck, PingReport, QueryName, QueryOwner,
    ServiceOperation,
};
use secrecy::SecretString;
use serde_json::json;
use sync_core::FailureKind;
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

fn vendors_query() -> ExecuteQuery {
    ExecuteQuery::new(QueryName::new("MLC_VENDORS").unwrap()).max_rows(100)
}

const EXEC: &str =
    "/PSIGW/RESTListeningConnector/PSFT_EP/ExecuteQuery.v1/PUBLIC/MLC_VENDORS/JSON/NONFILE";

#[tokio::test]
async fn basic_auth_header_is_exact() {
    let server = MockServer::start().await;
    // base64("PS:s3cr3t-Pa55word")
    Mock::given(method("GET"))
        .and(path(EXEC))
        .and(header("Authorization", "Basic UFM6czNjcjN0LVBhNTV3b3Jk"))
        .respond_with(json_body("empty.json"))
        .expect(1)
        .mount(&server)
        .await;
    catch_all(&server).await;
    let r = client(&server)
        .execute_query(&vendors_query())
        .await
        .unwrap();
    assert!(r.rows.is_empty());
    assert!(!r.truncated);
}

#[tokio::test]
async fn static_bearer_header_is_exact() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(EXEC))
        .and(header("Authorization", "Bearer eyJ.static.token"))
        .respond_with(json_body("empty.json"))
        .expect(1)
        .mount(&server)
        .await;
    catch_all(&server).await;
    let c = client_with(
        &server,
        Credentials::bearer(SecretString::from("eyJ.static.token".to_string())),
        fast_protection(),
    );
    c.execute_query(&vendors_query()).await.unwrap();
}

#[tokio::test]
async fn oauth_token_is_fetched_sent_and_refreshed() {
    let server = MockServer::start().await;
    // Tokens that live 1 s: the safety margin scales with the lifetime (a quarter of it), so
    // the token serves the first request and is refreshed once it is past its margin.
    for (n, tok) in [(0, "tok-one"), (1, "tok-two")] {
        Mock::given(method("POST"))
            .and(path("/oauth2/v1/token"))
            // base64("mlc-client:client-secret-xyz")
            .and(header(
                "Authorization",
                "Basic bWxjLWNsaWVudDpjbGllbnQtc2VjcmV0LXh5eg==",
            ))
            .and(body_string_contains("grant_type=client_credentials"))
            .and(body_string_contains("scope=urn%3Aopc%3Aps%3Aread"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "access_token": tok, "token_type": "Bearer", "expires_in": "1"
            })))
            .up_to_n_times(1)
            .with_priority(1 + n)
            .expect(1)
            .mount(&server)
            .await;
    }
    for tok in ["tok-one", "tok-two"] {
        Mock::given(method("GET"))
            .and(path(EXEC))
            .and(header("Authorization", format!("Bearer {tok}").as_str()))
            .respond_with(json_body("empty.json"))
            .expect(1)
            .mount(&server)
            .await;
    }
    catch_all(&server).await;
    let oauth = OAuth2ClientCredentials::new(
        &format!("{}/oauth2/v1/token", server.uri()),
        "mlc-client",
        SecretString::from("client-secret-xyz".to_string()),
    )
    .unwrap()
    .scope("urn:opc:ps:read");
    let c = client_with(&server, Credentials::OAuth2(oauth), fast_protection());
    c.execute_query(&vendors_query()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    c.execute_query(&vendors_query()).await.unwrap();
}

#[tokio::test]
async fn oauth_client_secret_in_form_body_and_cached_token_reused() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("client_id=mlc-client"))
        .and(body_string_contains("client_secret=client-secret-xyz"))
        .and(body_string_contains("audience=https%3A%2F%2Ferp"))
        .and(|r: &Request| !r.headers.contains_key("authorization"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "tok-long", "token_type": "bearer", "expires_in": 3600
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(EXEC))
        .and(header("Authorization", "Bearer tok-long"))
        .respond_with(json_body("empty.json"))
        .expect(3)
        .mount(&server)
        .await;
    catch_all(&server).await;
    let oauth = OAuth2ClientCredentials::new(
        &format!("{}/token", server.uri()),
        "mlc-client",
        SecretString::from("client-secret-xyz".to_string()),
    )
    .unwrap()
    .audience("https://erp")
    .client_auth(ClientAuthMethod::FormBody);
    let c = client_with(&server, Credentials::OAuth2(oauth), fast_protection());
    for _ in 0..3 {
        c.execute_query(&vendors_query()).await.unwrap();
    }
}

#[tokio::test]
async fn prompts_are_percent_encoded_on_the_wire_and_commas_rejected_before_sending() {
    let server = MockServer::start().await;
    let want = "isconnectedquery=N&maxrows=100&prompt_uniquepromptname=FROM_DTTM,NAME,CITY\
                &prompt_fieldvalue=2026-01-01,A%20%26%20B%3DC,M%C3%BCnchen&json_resp=true";
    Mock::given(method("GET"))
        .and(path(EXEC))
        .and(move |r: &Request| r.url.query() == Some(want))
        .respond_with(json_body("empty.json"))
        .expect(1)
        .mount(&server)
        .await;
    catch_all(&server).await;
    let c = client(&server);
    let q = vendors_query()
        .prompt("FROM_DTTM", "2026-01-01")
        .prompt("NAME", "A & B=C")
        .prompt("CITY", "München");
    c.execute_query(&q).await.unwrap();

    let bad = vendors_query().prompt("NAME", "Smith, John");
    let e = c.execute_query(&bad).await.unwrap_err();
    assert!(matches!(e, Error::InvalidPrompt { .. }), "{e:?}");
    assert!(e.to_string().contains("comma"));
    // Only the one good request reached the server (expect(1) is verified on drop).
}

#[tokio::test]
async fn parses_real_shaped_rows_with_prefixes_numbers_strings_and_nulls() {
    let server = MockServer::start().await;
    Mock::given(path(EXEC))
        .respond_with(json_body("vendors.json"))
        .mount(&server)
        .await;
    let r = client(&server)
        .execute_query(&vendors_query())
        .await
        .unwrap();
    assert_eq!(r.num_rows, 3);
    assert_eq!(r.query_name.as_deref(), Some("MLC_VENDORS"));
    assert_eq!(r.rows.len(), 3);
    assert!(r.rows.iter().all(|row| !row.contains_key("attr:rownumber")));
    assert_eq!(r.rows[0]["A.VENDOR_ID"], "0000000001");
    assert_eq!(r.rows[1]["A.NAME2"], serde_json::Value::Null);
    assert_eq!(r.rows[1]["B.ZZ_SITE_RATING"], 4);
    assert_eq!(r.rows[2]["VENDOR_ID"], "0000000100");
    assert!(!r.truncated);
}

#[tokio::test]
async fn truncation_is_reported_when_numrows_reaches_maxrows() {
    let server = MockServer::start().await;
    Mock::given(path(EXEC))
        .respond_with(json_body("vendors.json"))
        .mount(&server)
        .await;
    let c = client(&server);
    let r = c.execute_query(&vendors_query().max_rows(3)).await.unwrap();
    assert!(r.truncated, "3 rows with maxrows=3 must be truncated");
    let r = c.execute_query(&vendors_query().max_rows(4)).await.unwrap();
    assert!(!r.truncated);
}

async fn error_for(body: ResponseTemplate) -> Error {
    let server = MockServer::start().await;
    Mock::given(path(EXEC))
        .respond_with(body)
        .expect(1)
        .mount(&server)
        .await;
    client(&server)
        .execute_query(&vendors_query())
        .await
        .unwrap_err()
}

#[tokio::test]
async fn status_other_than_success_is_an_error_with_the_body() {
    let e = error_for(json_body("status_error.json")).await;
    match &e {
        Error::QueryStatus { status, raw, .. } => {
            assert_eq!(status, "fail");
            assert!(raw.contains("not authorized"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.failure_kind(), FailureKind::Permanent);
}

#[tokio::test]
async fn ib_response_xml_with_http_200_is_an_error() {
    let e = error_for(
        ResponseTemplate::new(200)
            .insert_header("content-type", "text/xml")
            .set_body_string(fixture("ib_error.xml")),
    )
    .await;
    match &e {
        Error::IbResponse {
            status,
            message,
            message_set,
            message_id,
            raw,
            ..
        } => {
            assert_eq!(*status, 200);
            assert!(message.contains("No service operation found"), "{message}");
            assert_eq!(message_set.as_deref(), Some("158"));
            assert_eq!(message_id.as_deref(), Some("10001"));
            assert!(raw.contains("IBResponse"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn html_gateway_page_is_an_error() {
    let e = error_for(
        ResponseTemplate::new(200)
            .insert_header("content-type", "text/html")
            .set_body_string(fixture("gateway.html")),
    )
    .await;
    assert!(
        matches!(&e, Error::HtmlPage { raw, .. } if raw.contains("Integration Gateway")),
        "{e:?}"
    );
    assert_eq!(e.failure_kind(), FailureKind::Transient);
}

#[tokio::test]
async fn cut_off_json_is_an_error_keeping_a_truncated_body() {
    let e = error_for(json_body("cutoff.json")).await;
    assert!(
        matches!(&e, Error::InvalidResponse { raw, .. } if raw.contains("\"A.VENDOR_ID\":\"00000")),
        "{e:?}"
    );

    let huge = format!(
        "{{\"status\":\"success\",\"data\":{{\"query\":{{\"rows\":[{}",
        "x".repeat(10_000)
    );
    let e = error_for(ResponseTemplate::new(200).set_body_string(huge)).await;
    match e {
        Error::InvalidResponse { raw, .. } => {
            assert!(raw.len() < 2200, "{}", raw.len());
            assert!(raw.contains("truncated"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn server_error_then_success_is_retried() {
    let server = MockServer::start().await;
    Mock::given(path(EXEC))
        .respond_with(ResponseTemplate::new(500).set_body_string("PSAPPSRV restarting"))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path(EXEC))
        .respond_with(json_body("vendors.json"))
        .with_priority(2)
        .expect(1)
        .mount(&server)
        .await;
    let r = client(&server)
        .execute_query(&vendors_query())
        .await
        .unwrap();
    assert_eq!(r.rows.len(), 3);
}

#[tokio::test]
async fn retry_with_a_single_slot_per_host_does_not_wait_for_itself() {
    let server = MockServer::start().await;
    Mock::given(path(EXEC))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(2)
        .with_priority(1)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(path(EXEC))
        .respond_with(json_body("empty.json"))
        .with_priority(2)
        .expect(1)
        .mount(&server)
        .await;
    let p = LoadProtection {
        max_concurrent: 1,
        min_gap: Duration::from_millis(5),
        ..fast_protection()
    };
    let c = client_with(&server, basic(), p);
    tokio::time::timeout(Duration::from_secs(5), c.execute_query(&vendors_query()))
        .await
        .expect("a retry must not wait for the slot its own first attempt holds")
        .unwrap();
}

#[tokio::test]
async fn persistent_server_errors_give_up_after_the_retry_budget() {
    let server = MockServer::start().await;
    Mock::given(path(EXEC))
        .respond_with(ResponseTemplate::new(503))
        .expect(3) // first attempt + 2 retries
        .mount(&server)
        .await;
    let e = client(&server)
        .execute_query(&vendors_query())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Http { status: 503, .. }), "{e:?}");
    assert_eq!(e.failure_kind(), FailureKind::Transient);
}

async fn rejected_after_one_request(status: u16, creds: Credentials, server: MockServer) {
    Mock::given(path(EXEC))
        .respond_with(ResponseTemplate::new(status).set_body_string("denied"))
        .expect(1)
        .mount(&server)
        .await;
    let c = client_with(&server, creds, fast_protection());
    let e = c.execute_query(&vendors_query()).await.unwrap_err();
    assert!(
        matches!(e, Error::AuthRejected { status: s, .. } if s == status),
        "{e:?}"
    );
    let ce = e.into_connector_error("stream `vendors` window [a, b)");
    assert_eq!(ce.kind(), FailureKind::StopStream);
    assert!(ce.message().contains("lock"), "{}", ce.message());
    assert!(!ce.full_message().contains(PASSWORD));
    server.verify().await;
}

#[tokio::test]
async fn http_401_stops_the_stream_after_exactly_one_request() {
    rejected_after_one_request(401, basic(), MockServer::start().await).await;
}

#[tokio::test]
async fn http_403_stops_the_stream_after_exactly_one_request() {
    rejected_after_one_request(403, basic(), MockServer::start().await).await;
}

#[tokio::test]
async fn oauth_401_is_not_retried_with_a_fresh_token_either() {
    let server = MockServer::start().await;
    Mock::given(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "tok", "expires_in": 3600
        })))
        .expect(1)
        .mount(&server)
        .await;
    let oauth = OAuth2ClientCredentials::new(
        &format!("{}/token", server.uri()),
        "id",
        SecretString::from("secret".to_string()),
    )
    .unwrap();
    rejected_after_one_request(401, Credentials::OAuth2(oauth), server).await;
}

#[tokio::test]
async fn secrets_never_appear_in_debug_or_errors() {
    let server = MockServer::start().await;
    Mock::given(path(EXEC))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    Mock::given(path("/token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"})))
        .mount(&server)
        .await;
    let c = client(&server);
    let dbg = format!("{c:?}");
    assert!(!dbg.contains(PASSWORD) && !dbg.contains("UFM6"), "{dbg}");
    let e = c.execute_query(&vendors_query()).await.unwrap_err();
    for text in [e.to_string(), format!("{e:?}")] {
        assert!(
            !text.contains(PASSWORD) && !text.contains("UFM6czNj"),
            "{text}"
        );
    }

    let oauth = OAuth2ClientCredentials::new(
        &format!("{}/token", server.uri()),
        "id",
        SecretString::from("oauth-client-secret".to_string()),
    )
    .unwrap();
    let c = client_with(&server, Credentials::OAuth2(oauth), fast_protection());
    assert!(!format!("{c:?}").contains("oauth-client-secret"));
    let e = c.execute_query(&vendors_query()).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Token {
                transient: false,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.failure_kind(), FailureKind::Permanent);
    for text in [e.to_string(), format!("{e:?}")] {
        assert!(text.contains("invalid_client"), "{text}");
        assert!(!text.contains("oauth-client-secret"), "{text}");
    }
}

/// Records when each request arrived; the response is delayed by `delay`.
struct Tracking {
    starts: Arc<Mutex<Vec<Instant>>>,
    delay: Duration,
}

impl Respond for Tracking {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        self.starts.lock().unwrap().push(Instant::now());
        json_body("empty.json").set_delay(self.delay)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_host_limiter_is_shared_and_never_exceeds_concurrency_or_gap() {
    let server = MockServer::start().await;
    let starts = Arc::new(Mutex::new(Vec::new()));
    let delay = Duration::from_millis(120);
    Mock::given(path(EXEC))
        .respond_with(Tracking {
            starts: starts.clone(),
            delay,
        })
        .expect(6)
        .mount(&server)
        .await;
    let protection = LoadProtection {
        max_concurrent: 2,
        min_gap: Duration::from_millis(60),
        ..fast_protection()
    };
    // Two clients, default (process-wide) limiter registry: one budget for the host.
    let a = PeopleSoftClient::builder(connection(&server), basic())
        .protection(protection.clone())
        .build()
        .unwrap();
    let b = PeopleSoftClient::builder(connection(&server), basic())
        .protection(protection)
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let c = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { c.execute_query(&vendors_query()).await.unwrap() })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let mut s = starts.lock().unwrap().clone();
    s.sort();
    assert_eq!(s.len(), 6);
    // A request holds its slot until its (delayed) answer is read, so at most two
    // [start, start + delay) intervals overlap at any start.
    for (i, t) in s.iter().enumerate() {
        let overlapping = s[..i].iter().filter(|p| **p + delay > *t).count() + 1;
        assert!(
            overlapping <= 2,
            "request {i} overlapped {overlapping} in flight"
        );
    }
    for pair in s.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(30),
            "starts only {gap:?} apart"
        );
    }
}

#[tokio::test]
async fn query_prompts_are_parsed() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{BASE}/QueryPrompts.v1/PUBLIC/MLC_VENDORS")))
        .and(|r: &Request| r.url.query() == Some("isconnectedquery=N&json_resp=true"))
        .respond_with(json_body("prompts.json"))
        .expect(1)
        .mount(&server)
        .await;
    catch_all(&server).await;
    let p = client(&server)
        .query_prompts(QueryOwner::Public, &QueryName::new("MLC_VENDORS").unwrap())
        .await
        .unwrap();
    let names: Vec<_> = p.iter().map(|p| p.unique_prompt_name.as_str()).collect();
    assert_eq!(names, ["FROM_DTTM", "TO_DTTM"]);
    assert_eq!(p[1].field_type, "Date");
    assert_eq!(p[1].field_length, Some(10));
}

#[tokio::test]
async fn generic_service_operations_get_and_post() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!(
            "{BASE}/ZZ_VENDOR_INFO.v2/vendor/SHARE/00%2F01"
        )))
        .and(|r: &Request| r.url.query() == Some("lang=ENG&q=a%20b"))
        .and(header("Authorization", "Basic UFM6czNjcjN0LVBhNTV3b3Jk"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(r#"{"VENDOR_ID": "00/01", "AMT": 12345678901234567.25}"#),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{BASE}/ZZ_VENDOR_SYNC.v1/vendors")))
        .and(header("content-type", "application/json"))
        .and(body_string_contains("\"NAME1\":\"Acme\""))
        .respond_with(ResponseTemplate::new(200).set_body_string(fixture("ib_error.xml")))
        .expect(1)
        .mount(&server)
        .await;
    catch_all(&server).await;
    let c = client(&server);
    let v = c
        .service_get(
            &ServiceOperation::new("ZZ_VENDOR_INFO", 2).unwrap(),
            &["vendor", "SHARE", "00/01"],
            &[("lang", "ENG"), ("q", "a b")],
        )
        .await
        .unwrap();
    assert_eq!(v["VENDOR_ID"], "00/01");
    // Long numbers are kept exact (as text) rather than rounded through f64.
    assert_eq!(v["AMT"], "12345678901234567.25");
    let e = c
        .service_post(
            &ServiceOperation::new("ZZ_VENDOR_SYNC", 1).unwrap(),
            &["vendors"],
            &json!({"NAME1": "Acme"}),
            Idempotency::NonIdempotent,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::IbResponse { .. }), "{e:?}");
    assert!(ServiceOperation::new("bad name", 1).is_err());
}

#[tokio::test]
async fn service_request_returns_other_statuses_with_body_and_content_type() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path(format!("{BASE}/CIRT_VNDR_ID_U_PUT.v1/SHARE/00%2F01")))
        .and(header("Authorization", "Basic UFM6czNjcjN0LVBhNTV3b3Jk"))
        .and(header("content-type", "application/json"))
        .and(body_string_contains("\"NAME1\":\"Acme\""))
        .respond_with(ResponseTemplate::new(422).set_body_raw(
            r#"{"message": "Vendor Name is required"}"#,
            "application/json",
        ))
        .expect(1) // a 4xx is not retried
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{BASE}/CIRT_VNDR_ID_G_GET.v1/SHARE/V2")))
        .respond_with(ResponseTemplate::new(500).set_body_string("PSAPPSRV down"))
        .expect(3) // the client's retry policy still applies: first attempt + 2 retries
        .mount(&server)
        .await;
    catch_all(&server).await;
    let c = client(&server);
    let r = c
        .service_request(
            Method::PUT,
            "CIRT_VNDR_ID_U_PUT.v1/SHARE/00%2F01",
            Some(&json!({"NAME1": "Acme"})),
            Idempotency::NonIdempotent,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 422);
    assert!(!r.is_success());
    assert_eq!(r.body, r#"{"message": "Vendor Name is required"}"#);
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert!(
        r.url
            .ends_with("/PSFT_EP/CIRT_VNDR_ID_U_PUT.v1/SHARE/00%2F01"),
        "{}",
        r.url
    );
    let r = c
        .service_request(
            Method::GET,
            "CIRT_VNDR_ID_G_GET.v1/SHARE/V2",
            None,
            Idempotency::Idempotent,
        )
        .await
        .unwrap();
    assert_eq!((r.status, r.body.as_str()), (500, "PSAPPSRV down"));
    assert_eq!(r.content_type.as_deref(), Some("text/plain"));
    server.verify().await;
}

#[tokio::test]
async fn service_request_401_and_403_are_rejected_after_exactly_one_request() {
    for status in [401, 403] {
        let server = MockServer::start().await;
        Mock::given(wiremock::matchers::any())
            .respond_with(ResponseTemplate::new(status).set_body_string("denied"))
            .expect(1)
            .mount(&server)
            .await;
        let e = client(&server)
            .service_request(
                Method::GET,
                "CIRT_VNDR_ID_G_GET.v1/SHARE/V1",
                None,
                Idempotency::Idempotent,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(e, Error::AuthRejected { status: s, .. } if s == status),
            "{e:?}"
        );
        assert_eq!(e.failure_kind(), FailureKind::StopStream);
        assert!(!format!("{e:?}").contains(PASSWORD));
        server.verify().await;
    }
}

#[tokio::test]
async fn service_request_never_sends_credentials_outside_the_node() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let c = client(&server);
    let other_host = format!("http://{}/x", server.address());
    for rel in [
        other_host.as_str(),
        "//evil.example/x",
        "/PSIGW/RESTListeningConnector/OTHER_NODE/x",
        "\\evil.example/x",
        "../OTHER_NODE/CIRT_X.v1",
        "CIRT_X.v1/./V1",
        "CIRT_X.v1/%2e%2E/%2E./OTHER_NODE",
    ] {
        let e = c
            .service_request(Method::GET, rel, None, Idempotency::Idempotent)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{rel}: {e:?}");
    }
    server.verify().await;
}

#[tokio::test]
async fn ping_says_which_part_failed() {
    let server = MockServer::start().await;
    let prompts_path = format!("{BASE}/QueryPrompts.v1/PUBLIC/MLC_VENDORS");
    Mock::given(path(prompts_path.as_str()))
        .and(header("Authorization", "Basic UFM6czNjcjN0LVBhNTV3b3Jk"))
        .respond_with(json_body("prompts.json"))
        .mount(&server)
        .await;
    Mock::given(path(prompts_path.as_str()))
        .respond_with(ResponseTemplate::new(401))
        .with_priority(10)
        .mount(&server)
        .await;
    Mock::given(path(format!("{BASE}/QueryPrompts.v1/PUBLIC/NOPE")))
        .respond_with(ResponseTemplate::new(200).set_body_string(fixture("ib_error.xml")))
        .mount(&server)
        .await;
    let check = |q: &str| PingCheck::QueryPrompts(QueryOwner::Public, QueryName::new(q).unwrap());

    let ok = client(&server).ping(&check("MLC_VENDORS")).await;
    assert!(ok.is_ok(), "{ok}");

    let wrong_pw = client_with(
        &server,
        Credentials::basic("PS", SecretString::from("wrong".to_string())),
        fast_protection(),
    );
    let r = wrong_pw.ping(&check("MLC_VENDORS")).await;
    assert!(matches!(r, PingReport::CredentialsRejected { .. }), "{r}");
    assert!(r.to_string().starts_with("credentials rejected"));

    let r = client(&server).ping(&check("NOPE")).await;
    assert!(matches!(r, PingReport::NodeOrService { .. }), "{r}");
    assert!(
        r.to_string().starts_with("node name not found / IB error"),
        "{r}"
    );

    // A port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let conn = peoplesoft_client::Connection::builder("127.0.0.1", u32::from(port), "PSFT_EP")
        .scheme(peoplesoft_client::Scheme::Http)
        .allow_http(true)
        .build()
        .unwrap();
    let p = LoadProtection {
        retry: sync_core::http::RetryPolicy::none(),
        ..fast_protection()
    };
    let dead = PeopleSoftClient::builder(conn, basic())
        .protection(p)
        .build()
        .unwrap();
    let r = dead.ping(&check("MLC_VENDORS")).await;
    assert!(matches!(r, PingReport::Unreachable { .. }), "{r}");
    assert!(r.to_string().starts_with("cannot reach host"));
}

#[tokio::test]
async fn execute_query_ping_uses_one_row() {
    let server = MockServer::start().await;
    Mock::given(path(EXEC))
        .and(|r: &Request| r.url.query().is_some_and(|q| q.contains("maxrows=1&")))
        .respond_with(json_body("empty.json"))
        .expect(1)
        .mount(&server)
        .await;
    catch_all(&server).await;
    let r = client(&server)
        .ping(&PingCheck::ExecuteQuery(vendors_query()))
        .await;
    assert!(r.is_ok(), "{r}");
}

#[tokio::test]
async fn long_json_numbers_reach_typed_records_exactly() {
    let server = MockServer::start().await;
    let body = r#"{"status":"success","data":{"query":{"numrows":1,"queryname":"MLC_CUSTOMERS","rows":[
        {"attr:rownumber":1,"A.SETID":"SHARE","A.CUST_ID":"C1","A.CR_LIMIT":1000000000000000000.125,"A.NAME1":"Big"}]}}}"#;
    Mock::given(path(format!(
        "{BASE}/ExecuteQuery.v1/PUBLIC/MLC_CUSTOMERS/JSON/NONFILE"
    )))
    .respond_with(ResponseTemplate::new(200).set_body_string(body))
    .expect(1)
    .mount(&server)
    .await;
    let r = client(&server)
        .execute_query(&ExecuteQuery::new(QueryName::new("MLC_CUSTOMERS").unwrap()))
        .await
        .unwrap();
    let c: peoplesoft_client::records::Customer =
        peoplesoft_client::records::from_record(&r.rows[0]).unwrap();
    assert_eq!(
        c.cr_limit.unwrap().to_string(),
        "1000000000000000000.125",
        "an f64 would have rounded this to 1000000000000000000"
    );
}
