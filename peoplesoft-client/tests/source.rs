//! PeopleSoftSource against a wiremock PeopleSoft: windows become prompts, pages, truncation,
//! effective dating, identity, and StopStream on 401.

mod common;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use common::*;
use futures::TryStreamExt;
use peoplesoft_client::{PeopleSoftClient, PeopleSoftSource, RangeSemantics, StreamDefinition};
use sync_core::{FailureKind, ManualClock, Page, Source, Window};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn read(
    source: &PeopleSoftSource,
    w: Window,
) -> Result<Vec<Page>, sync_core::ConnectorError> {
    source.read(w).try_collect().await
}

#[tokio::test]
async fn window_becomes_local_datetime_prompts_and_rows_lose_their_prefix() {
    let server = MockServer::start().await;
    let want = "isconnectedquery=N&maxrows=500&prompt_uniquepromptname=FROM_DTTM,TO_DTTM,BU\
                &prompt_fieldvalue=2026-01-31-18.00.00.000000,2026-01-31-23.59.59.999999,US001&json_resp=true";
    Mock::given(path(format!(
        "{BASE}/ExecuteQuery.v1/PUBLIC/MLC_JOURNALS/JSON/NONFILE"
    )))
    .and(move |r: &Request| r.url.query() == Some(want))
    .respond_with(json_body("journal_headers.json"))
    .expect(1)
    .mount(&server)
    .await;
    catch_all(&server).await;
    let def = StreamDefinition::journal_headers()
        .time_zone("America/Chicago")
        .unwrap()
        .range(RangeSemantics::InclusiveBetween)
        .max_rows(500)
        .fixed_prompt("BU", "US001");
    let source = PeopleSoftSource::new(client(&server), def).unwrap();
    assert_eq!(
        source.identity(),
        format!("peoplesoft://{}/PSFT_EP/MLC_JOURNALS", server.address())
    );
    let pages = read(
        &source,
        Window::new(utc("2026-02-01T00:00:00Z"), utc("2026-02-01T06:00:00Z")),
    )
    .await
    .unwrap();
    assert_eq!(pages.len(), 1);
    assert!(!pages[0].truncated);
    let r = &pages[0].records;
    assert_eq!(r.len(), 2);
    assert_eq!(r[0]["JOURNAL_ID"], "0000012345");
    assert!(r[0].keys().all(|k| !k.contains('.')), "{:?}", r[0].keys());
}

#[tokio::test]
async fn truncated_page_is_reported_to_the_engine() {
    let server = MockServer::start().await;
    Mock::given(path(format!(
        "{BASE}/ExecuteQuery.v1/PUBLIC/MLC_VENDORS/JSON/NONFILE"
    )))
    .respond_with(json_body("vendors.json"))
    .mount(&server)
    .await;
    let source =
        PeopleSoftSource::new(client(&server), StreamDefinition::vendors().max_rows(3)).unwrap();
    let pages = read(
        &source,
        Window::new(utc("2026-01-15T00:00:00Z"), utc("2026-01-16T00:00:00Z")),
    )
    .await
    .unwrap();
    assert!(pages[0].truncated);
}

#[tokio::test]
async fn job_history_is_kept_and_the_current_row_flagged() {
    let server = MockServer::start().await;
    Mock::given(path(format!(
        "{BASE}/ExecuteQuery.v1/PUBLIC/MLC_JOB/JSON/NONFILE"
    )))
    .respond_with(json_body("job.json"))
    .mount(&server)
    .await;
    let clock = Arc::new(ManualClock::new(utc("2026-03-01T12:00:00Z")));
    let c = PeopleSoftClient::builder(connection(&server), basic())
        .protection(fast_protection())
        .clock(clock)
        .build()
        .unwrap();
    let source = PeopleSoftSource::new(c, StreamDefinition::employees()).unwrap();
    let pages = read(
        &source,
        Window::new(utc("2024-01-01T00:00:00Z"), utc("2026-03-01T00:00:00Z")),
    )
    .await
    .unwrap();
    let flags: Vec<(String, i64, bool)> = pages[0]
        .records
        .iter()
        .map(|r| {
            (
                r["EFFDT"].as_str().unwrap().to_string(),
                r["EFFSEQ"].as_i64().unwrap(),
                r["IS_CURRENT"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        flags,
        vec![
            ("2024-07-20".into(), 0, false),
            ("2026-01-01".into(), 0, false),
            ("2026-01-01".into(), 1, true),
            ("2026-07-01".into(), 0, false), // future-dated: kept, not current
        ]
    );
}

#[tokio::test]
async fn unauthorized_stops_the_stream_with_context() {
    let server = MockServer::start().await;
    Mock::given(path(format!(
        "{BASE}/ExecuteQuery.v1/PUBLIC/MLC_VENDORS/JSON/NONFILE"
    )))
    .respond_with(ResponseTemplate::new(401))
    .expect(1)
    .mount(&server)
    .await;
    let source = PeopleSoftSource::new(client(&server), StreamDefinition::vendors()).unwrap();
    let e = read(
        &source,
        Window::new(utc("2026-01-15T00:00:00Z"), utc("2026-01-16T00:00:00Z")),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), FailureKind::StopStream);
    let m = e.message();
    assert!(
        m.contains("vendors") && m.contains("2026-01-15") && m.contains("MLC_VENDORS"),
        "{m}"
    );
    assert!(!e.full_message().contains(PASSWORD));
}

#[tokio::test]
async fn max_rows_zero_is_rejected_when_the_source_is_built() {
    let server = MockServer::start().await;
    let e = PeopleSoftSource::new(client(&server), StreamDefinition::vendors().max_rows(0))
        .unwrap_err();
    assert!(e.to_string().contains("max_rows"), "{e}");
}
