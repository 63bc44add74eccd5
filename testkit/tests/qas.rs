//! The QAS stand-in over real HTTP, with reqwest.

use std::time::{Duration, Instant};

use chrono::Duration as ChronoDuration;
use futures::StreamExt as _;
use ml_connector_testkit::sitetime::{self, native};
use ml_connector_testkit::{
    Dataset, Fault, FaultRule, PeopleSoftServer, QueryPrompts, Row, ServerConfig,
    DEFAULT_BEARER_TOKEN, DEFAULT_OPRID, DEFAULT_PASSWORD, QUERY_JOURNAL_LINES, QUERY_PO_LINES,
    QUERY_VENDORS, TABLE_JOURNAL_LINES, TABLE_PO_LINES, TABLE_VENDORS,
};
use serde_json::Value;
use sync_core::Window;

fn server() -> PeopleSoftServer {
    PeopleSoftServer::start(Dataset::manufacturer(11, 1.0))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn get(url: &str) -> reqwest::Response {
    client()
        .get(url)
        .basic_auth(DEFAULT_OPRID, Some(DEFAULT_PASSWORD))
        .send()
        .await
        .unwrap()
}

async fn get_json(url: &str) -> Value {
    let resp = get(url).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {}", &text[..text.len().min(500)]))
}

fn rows_of(v: &Value) -> &Vec<Value> {
    assert_eq!(v["status"], "success", "{v}");
    v["data"]["query"]["rows"].as_array().unwrap()
}

fn key_of(v: &Value, fields: &[&str]) -> Vec<String> {
    fields
        .iter()
        .map(|f| match &v[format!("A.{f}")] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

#[tokio::test]
async fn window_is_half_open_ordered_and_exact() {
    let server = server();
    let ds = server.dataset();
    let (from_row, to_row, expected): (Row, Row, Vec<Row>) = {
        let d = ds.read();
        let t = d.table(TABLE_PO_LINES).unwrap();
        let rows = t.rows();
        // Pick bounds that are row cursors, so both edges are exercised.
        let (a, b) = (rows[100].clone(), rows[400].clone());
        let exp = t
            .rows_between_local(Some(a.cursor_local()), Some(b.cursor_local()))
            .to_vec();
        (a, b, exp)
    };
    let url = server.execute_query_url(
        QUERY_PO_LINES,
        from_row.cursor_text(),
        to_row.cursor_text(),
        0,
    );
    let v = get_json(&url).await;
    let rows = rows_of(&v);
    assert_eq!(v["data"]["query"]["queryname"], QUERY_PO_LINES);
    assert_eq!(v["data"]["query"]["numrows"], rows.len());
    assert_eq!(rows.len(), expected.len());
    assert!(!expected.is_empty());
    for (i, (got, want)) in rows.iter().zip(&expected).enumerate() {
        assert_eq!(got["attr:rownumber"], i + 1);
        for (k, val) in want.to_record() {
            assert_eq!(&got[&k], &val, "row {i} field {k}");
        }
    }
    let keys: Vec<Vec<String>> = rows
        .iter()
        .map(|r| key_of(r, &["BUSINESS_UNIT", "PO_ID", "LINE_NBR"]))
        .collect();
    // `from` is inclusive, `to` exclusive.
    assert!(keys.contains(&from_row.key()));
    assert!(!keys.contains(&to_row.key()));
    let cursors: Vec<&str> = rows
        .iter()
        .map(|r| r["A.LAST_DTTM_UPDATE"].as_str().unwrap())
        .collect();
    assert!(cursors
        .iter()
        .all(|c| *c >= from_row.cursor_text() && *c < to_row.cursor_text()));
    assert!(cursors.windows(2).all(|w| w[0] <= w[1]));

    // The same window in other prompt forms: ISO UTC with Z, and ISO with offset.
    let w = Window::new(from_row.cursor(), to_row.cursor());
    let iso =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let v2 = get_json(&server.execute_query_url(QUERY_PO_LINES, &iso(w.from), &iso(w.to), 0)).await;
    assert_eq!(rows_of(&v2), rows);
    let v3 = get_json(&server.execute_query_url_for(QUERY_PO_LINES, w, 0)).await;
    assert_eq!(rows_of(&v3), rows);
    // Percent-encoded commas and an encoded `+hh:mm` offset (what reqwest's query builder sends).
    let local = w.from.with_timezone(&sitetime::SITE_TIME_ZONE).to_rfc3339();
    let resp = client()
        .get(format!(
            "{}ExecuteQuery.v1/public/{QUERY_PO_LINES}/JSON/NONFILE",
            server.rest_base_url()
        ))
        .bearer_auth(DEFAULT_BEARER_TOKEN)
        .query(&[
            ("isconnectedquery", "N"),
            ("maxrows", "0"),
            ("prompt_uniquepromptname", "FROM_DTTM,TO_DTTM"),
            ("prompt_fieldvalue", &format!("{local},{}", native(w.to))),
            ("json_resp", "true"),
        ])
        .send()
        .await
        .unwrap();
    let v4: Value = resp.json().await.unwrap();
    assert_eq!(rows_of(&v4), rows);

    let stats = server.stats();
    assert_eq!(stats.requests_for(QUERY_PO_LINES), 4);
    let logged = stats.windows_for(QUERY_PO_LINES);
    assert_eq!(logged.len(), 4);
    assert_eq!(logged[0].from.as_deref(), Some(from_row.cursor_text()));
    assert_eq!(logged[0].numrows, Some(expected.len() as u64));
    assert_eq!(logged[0].window(), Some(w));
    assert_eq!(logged[3].from_local, Some(from_row.cursor_local()));
}

#[tokio::test]
async fn dates_open_bounds_and_every_vendor_round_trips() {
    let server = server();
    // Whole table, awkward values included, exactly as the dataset has them.
    let v = get_json(&server.execute_query_url(QUERY_VENDORS, "", "", 0)).await;
    let rows = rows_of(&v);
    let t = server
        .dataset()
        .read()
        .table(TABLE_VENDORS)
        .unwrap()
        .clone();
    assert_eq!(rows.len(), t.len());
    for (got, want) in rows.iter().zip(t.rows()) {
        let mut got: sync_core::Record = got.as_object().unwrap().clone().into();
        got.remove("attr:rownumber");
        assert_eq!(got, want.to_record());
    }
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["A.NAME1"].as_str().unwrap())
        .collect();
    for n in [
        "O'Brien & Sons Fasteners",
        "Müller GmbH",
        "東京精機株式会社",
        "'; DROP TABLE x; --",
        " ",
    ] {
        assert!(names.contains(&n), "{n}");
    }
    // Date prompts are site-local midnights.
    let v = get_json(&server.execute_query_url(QUERY_VENDORS, "2025-03-01", "2025-04-01", 0)).await;
    let want = t.rows_between_local(
        sitetime::parse_prompt_datetime("2025-03-01"),
        sitetime::parse_prompt_datetime("2025-04-01"),
    );
    assert_eq!(rows_of(&v).len(), want.len());
    assert!(rows_of(&v)
        .iter()
        .all(|r| r["A.LASTUPDDTTM"].as_str().unwrap().starts_with("2025-03")));
}

#[tokio::test]
async fn maxrows_truncates_and_numrows_signals_it() {
    let server = server();
    let total = server.dataset().read().table(TABLE_VENDORS).unwrap().len();
    let v = get_json(&server.execute_query_url(QUERY_VENDORS, "", "", 25)).await;
    assert_eq!(v["data"]["query"]["numrows"], 25);
    let rows = rows_of(&v);
    assert_eq!(rows.len(), 25);
    // The first 25 in wire order.
    let d = server.dataset();
    let first: Vec<Vec<String>> = d.read().table(TABLE_VENDORS).unwrap().rows()[..25]
        .iter()
        .map(Row::key)
        .collect();
    let got: Vec<Vec<String>> = rows
        .iter()
        .map(|r| key_of(r, &["SETID", "VENDOR_ID"]))
        .collect();
    assert_eq!(got, first);
    // Larger than the table: everything, numrows < maxrows.
    let v = get_json(&server.execute_query_url(QUERY_VENDORS, "", "", 100_000)).await;
    assert_eq!(v["data"]["query"]["numrows"], total);

    // The query profile limit applies to maxrows=0.
    let limited = PeopleSoftServer::start_with(
        Dataset::manufacturer(11, 0.2),
        ServerConfig {
            profile_max_rows: Some(7),
            ..ServerConfig::default()
        },
    );
    let v = get_json(&limited.execute_query_url(QUERY_VENDORS, "", "", 0)).await;
    assert_eq!(v["data"]["query"]["numrows"], 7);
}

#[tokio::test]
async fn credentials_are_checked() {
    let server = server();
    let url = server.execute_query_url(QUERY_VENDORS, "", "", 5);
    let c = client();
    let wrong = c
        .get(&url)
        .basic_auth(DEFAULT_OPRID, Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let user = c
        .get(&url)
        .basic_auth("PS", Some(DEFAULT_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(user.status(), 401);
    let none = c.get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let bad_bearer = c.get(&url).bearer_auth("forged").send().await.unwrap();
    assert_eq!(bad_bearer.status(), 401);
    let bearer = c
        .get(&url)
        .bearer_auth(DEFAULT_BEARER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
    let header = c
        .get(&url)
        .header("Authorization", server.basic_auth_header())
        .send()
        .await
        .unwrap();
    assert_eq!(header.status(), 200);
    assert_eq!(server.stats().unauthorized, 4);
}

#[tokio::test]
async fn unknown_node_query_and_bad_requests_are_ib_errors() {
    let server = server();
    let url = server
        .execute_query_url(QUERY_VENDORS, "", "", 5)
        .replace("/PSFT_EP/", "/PSFT_HR/");
    let resp = get(&url).await;
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    assert!(body.contains("<IBResponse type=\"error\">"), "{body}");

    let resp = get(&server.execute_query_url("NO_SUCH_QUERY", "", "", 5)).await;
    assert_eq!(resp.status(), 200);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("IBResponse type=\"error\""));

    let resp = get(&server.execute_query_url(QUERY_VENDORS, "last tuesday", "", 5)).await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("last tuesday"));

    let no_max = server
        .execute_query_url(QUERY_VENDORS, "", "", 5)
        .replace("&maxrows=5", "");
    assert_eq!(get(&no_max).await.status(), 400);

    let xml = server
        .execute_query_url(QUERY_VENDORS, "", "", 5)
        .replace("/JSON/", "/XMLP/");
    assert_eq!(get(&xml).await.status(), 400);

    let not_psigw = format!("{}/index.html", server.base_url());
    assert_eq!(get(&not_psigw).await.status(), 404);
}

#[tokio::test]
async fn query_prompts_metadata() {
    let server = server();
    let url = format!(
        "{}QueryPrompts.v1/PUBLIC/{QUERY_JOURNAL_LINES}?isconnectedquery=N&json_resp=true",
        server.rest_base_url()
    );
    let v = get_json(&url).await;
    assert_eq!(v["status"], "success");
    let prompts = v["data"]["queryprompts"]["prompts"].as_array().unwrap();
    assert_eq!(prompts.len(), 2);
    assert_eq!(prompts[0]["UniquePromptName"], "FROM_DTTM");
    assert_eq!(prompts[1]["UniquePromptName"], "TO_DTTM");
    assert_eq!(prompts[0]["FieldName"], "DTTM_STAMP_SEC");
    assert_eq!(prompts[0]["FieldType"], "Datetime");
}

#[tokio::test]
async fn every_fault_form() {
    let server = server();
    let url = server.execute_query_url(QUERY_VENDORS, "", "", 10);

    server.fail_next(1, Fault::InternalServerError);
    assert_eq!(get(&url).await.status(), 500);

    server.fail_next(1, Fault::BadGateway);
    let r = get(&url).await;
    assert_eq!(r.status(), 502);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(r.text().await.unwrap().contains("<h1>502 Bad Gateway</h1>"));

    server.fail_next(
        1,
        Fault::Status {
            status: 503,
            retry_after: Some(7),
        },
    );
    let r = get(&url).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "7");

    server.fail_next(1, Fault::IbError);
    let r = get(&url).await;
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("<IBResponse type=\"error\">"));

    server.fail_next(1, Fault::JsonError);
    let v = get_json(&url).await;
    assert_eq!(v["status"], "error");

    server.fail_next(1, Fault::TruncatedJson);
    let r = get(&url).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.starts_with("{\"status\":\"success\""));
    assert!(serde_json::from_str::<Value>(&text).is_err());

    server.fail_next(1, Fault::CutOffBody);
    let r = get(&url).await;
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.is_err(), "the body must be cut off");

    // Faults are used up: the next request succeeds.
    assert_eq!(rows_of(&get_json(&url).await).len(), 10);

    let stats = server.stats();
    assert_eq!(stats.faults_injected, 7);
    let logged = stats.windows_for(QUERY_VENDORS);
    assert_eq!(logged.len(), 8);
    assert_eq!(logged[0].fault, Some(Fault::InternalServerError));
    assert!(logged[..7].iter().all(|w| w.numrows.is_none()));
    assert_eq!(logged[7].numrows, Some(10));
    assert!(server.pending_faults().is_empty());
}

#[tokio::test]
async fn faults_per_query_with_skip_and_always() {
    let server = server();
    let vendors = server.execute_query_url(QUERY_VENDORS, "", "", 3);
    let po = server.execute_query_url(QUERY_PO_LINES, "", "", 3);
    server.inject(
        FaultRule::new(Fault::BadGateway)
            .for_query(QUERY_PO_LINES)
            .after(1)
            .times(2),
    );
    assert_eq!(get(&po).await.status(), 200);
    assert_eq!(get(&vendors).await.status(), 200);
    assert_eq!(get(&po).await.status(), 502);
    assert_eq!(get(&po).await.status(), 502);
    assert_eq!(get(&po).await.status(), 200);

    server.inject(
        FaultRule::new(Fault::InternalServerError)
            .for_query(QUERY_VENDORS)
            .always(),
    );
    for _ in 0..3 {
        assert_eq!(get(&vendors).await.status(), 500);
    }
    assert_eq!(get(&po).await.status(), 200);
    server.clear_faults();
    assert_eq!(get(&vendors).await.status(), 200);
}

#[tokio::test]
async fn delay_hang_and_latency() {
    let server = server();
    let url = server.execute_query_url(QUERY_VENDORS, "", "", 3);

    server.fail_next(1, Fault::Delay(Duration::from_millis(300)));
    let t = Instant::now();
    assert_eq!(get(&url).await.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(300));

    server.fail_next(1, Fault::Hang(Duration::from_secs(30)));
    let short = reqwest::Client::builder()
        .timeout(Duration::from_millis(400))
        .build()
        .unwrap();
    let t = Instant::now();
    let err = short
        .get(&url)
        .basic_auth(DEFAULT_OPRID, Some(DEFAULT_PASSWORD))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(t.elapsed() < Duration::from_secs(5));

    server.set_latency(Duration::from_millis(1_000));
    let t = Instant::now();
    assert_eq!(get(&url).await.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(1_000));
    server.set_latency(Duration::ZERO);
    let t = Instant::now();
    assert_eq!(get(&url).await.status(), 200);
    assert!(t.elapsed() < Duration::from_millis(1_000));
}

#[tokio::test]
async fn concurrency_is_measured() {
    let server = server();
    server.set_latency(Duration::from_millis(300));
    let url = server.execute_query_url(QUERY_VENDORS, "", "", 3);
    let c = client();
    let reqs = (0..6).map(|_| {
        c.get(&url)
            .basic_auth(DEFAULT_OPRID, Some(DEFAULT_PASSWORD))
            .send()
    });
    for r in futures::future::join_all(reqs).await {
        assert_eq!(r.unwrap().status(), 200);
    }
    let stats = server.stats();
    assert_eq!(stats.total_requests, 6);
    // All six overlap (allow a little slack for a loaded machine; a broken counter gives 1).
    assert!(
        (4..=6).contains(&stats.max_concurrent),
        "{}",
        stats.max_concurrent
    );
    // The server counts a request as finished after its last byte is written, which can be a
    // moment after the client has read the response: wait (bounded) for the counter to settle.
    let mut in_flight = stats.in_flight;
    for _ in 0..200 {
        if in_flight == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        in_flight = server.stats().in_flight;
    }
    assert_eq!(in_flight, 0);
    server.reset_stats();
    assert_eq!(server.stats().total_requests, 0);
    assert_eq!(server.stats().max_concurrent, 0);
}

#[tokio::test]
async fn late_rows_appear_only_after_insertion_and_updates_move_rows() {
    let server = server();
    let ds = server.dataset();
    let last_sync = Dataset::history_end() + ChronoDuration::hours(1);
    // Cycle 1 reads everything up to the last sync.
    let w1 = Window::new(Dataset::history_start(), last_sync);
    let first = get_json(&server.execute_query_url_for(QUERY_PO_LINES, w1, 0)).await;
    let n1 = rows_of(&first).len();
    assert_eq!(n1, ds.read().table(TABLE_PO_LINES).unwrap().len());

    // A transaction that started 30 minutes before the last sync commits now.
    let late =
        ds.write()
            .insert_late_rows(TABLE_PO_LINES, 2, last_sync - ChronoDuration::minutes(30));
    let now = last_sync + ChronoDuration::hours(1);
    let updated = ds.write().update_rows(TABLE_PO_LINES, 3, now);

    // Cycle 2 without look-back sees only the updated rows; with look-back also the late ones.
    let w2 = Window::new(last_sync, now + ChronoDuration::seconds(1));
    let v = get_json(&server.execute_query_url_for(QUERY_PO_LINES, w2, 0)).await;
    let keys: Vec<Vec<String>> = rows_of(&v)
        .iter()
        .map(|r| key_of(r, &["BUSINESS_UNIT", "PO_ID", "LINE_NBR"]))
        .collect();
    let mut want = updated.clone();
    want.sort();
    let mut got = keys.clone();
    got.sort();
    assert_eq!(got, want);
    let cursor = rows_of(&v)[0]["A.LAST_DTTM_UPDATE"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(cursor, native(now));

    let w2b = Window::new(
        last_sync - ChronoDuration::hours(1),
        now + ChronoDuration::seconds(1),
    );
    let v = get_json(&server.execute_query_url_for(QUERY_PO_LINES, w2b, 0)).await;
    let keys: Vec<Vec<String>> = rows_of(&v)
        .iter()
        .map(|r| key_of(r, &["BUSINESS_UNIT", "PO_ID", "LINE_NBR"]))
        .collect();
    for k in late.iter().chain(&updated) {
        assert!(keys.contains(k), "{k:?}");
    }
    assert_eq!(keys.len(), late.len() + updated.len());
    // The first window now holds the late rows but no longer the updated rows.
    let again = get_json(&server.execute_query_url_for(QUERY_PO_LINES, w1, 0)).await;
    assert_eq!(rows_of(&again).len(), n1 + late.len() - updated.len());
}

#[tokio::test]
async fn generated_journal_extract_is_fast_and_exact() {
    let lines = 200_000u64;
    let server = PeopleSoftServer::start(Dataset::journal_benchmark(9, lines));
    let gen = server
        .dataset()
        .read()
        .generated(TABLE_JOURNAL_LINES)
        .unwrap()
        .clone();
    let (first, last) = gen.cursor_range().unwrap();
    let end = last + ChronoDuration::seconds(1);
    // Pages of 50k rows by cursor windows: 4 windows of ~50k.
    let span = (end - first) / 4;
    let c = reqwest::Client::new();
    let t = Instant::now();
    let mut total = 0u64;
    let mut bytes = 0usize;
    let mut fetching = Duration::ZERO;
    for k in 0..4 {
        let from = first + span * k;
        let to = if k == 3 { end } else { first + span * (k + 1) };
        let url = server.execute_query_url_for(QUERY_JOURNAL_LINES, Window::new(from, to), 0);
        let fetch = Instant::now();
        let body = c
            .get(&url)
            .basic_auth(DEFAULT_OPRID, Some(DEFAULT_PASSWORD))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        fetching += fetch.elapsed();
        bytes += body.len();
        let v: Value = serde_json::from_slice(&body).unwrap();
        let rows = rows_of(&v);
        let range = gen.index_range(from, to);
        assert_eq!(rows.len() as u64, range.end - range.start);
        let probe = range.start + (range.end - range.start) / 2;
        let got = &rows[(probe - range.start) as usize];
        let mut got: sync_core::Record = got.as_object().unwrap().clone().into();
        got.remove("attr:rownumber");
        assert_eq!(got, gen.row(probe).to_record());
        total += rows.len() as u64;
    }
    let elapsed = t.elapsed();
    assert_eq!(total, lines);
    eprintln!(
        "served and parsed {total} generated journal lines ({} MB) in {elapsed:?} \
         (HTTP fetch {fetching:?})",
        bytes / 1_000_000
    );
    // Generous bound for a debug build on a shared machine; release is far faster.
    assert!(elapsed < Duration::from_secs(60), "{elapsed:?}");

    // maxrows caps generated tables too.
    let url = server.execute_query_url_for(QUERY_JOURNAL_LINES, Window::new(first, end), 1_000);
    let v = get_json(&url).await;
    assert_eq!(v["data"]["query"]["numrows"], 1_000);
}

#[tokio::test]
async fn thousands_of_requests() {
    let server = PeopleSoftServer::start(Dataset::manufacturer(11, 0.2));
    let url = server.execute_query_url(QUERY_VENDORS, "2025-01-01", "2025-06-01", 5);
    let c = client();
    let t = Instant::now();
    let futs = (0..2_000).map(|_| {
        let c = c.clone();
        let url = url.clone();
        async move {
            c.get(&url)
                .basic_auth(DEFAULT_OPRID, Some(DEFAULT_PASSWORD))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    // 64 at a time: keeps well under the usual 1024 file-descriptor limit.
    let statuses: Vec<_> = futures::stream::iter(futs)
        .buffer_unordered(64)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 200));
    assert_eq!(server.stats().total_requests, 2_000);
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
}

/// A raw ExecuteQuery URL with any prompts.
fn url_with(
    server: &PeopleSoftServer,
    query: &str,
    prompts: &[(&str, &str)],
    maxrows: i64,
) -> String {
    let names: Vec<&str> = prompts.iter().map(|p| p.0).collect();
    let values: Vec<String> = prompts.iter().map(|p| url_escape(p.1)).collect();
    format!(
        "{}ExecuteQuery.v1/PUBLIC/{query}/JSON/NONFILE?isconnectedquery=N&maxrows={maxrows}\
         &prompt_uniquepromptname={}&prompt_fieldvalue={}&json_resp=true",
        server.rest_base_url(),
        names.join(","),
        values.join(",")
    )
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn real_site_prompts_profile_cap_key_paging_and_null_cursors() {
    let mut config = ServerConfig {
        profile_max_rows: Some(25),
        ..ServerConfig::default()
    };
    config.query_prompts.insert(
        QUERY_VENDORS.into(),
        QueryPrompts::new("BIND1", "BIND2")
            .date()
            .between()
            .fixed("BIND3", "SETID")
            .key(["BIND4", "BIND5"]),
    );
    let server = PeopleSoftServer::start_with(Dataset::manufacturer(11, 1.0), config);
    let vendors: Vec<Row> = server
        .dataset()
        .read()
        .table(TABLE_VENDORS)
        .unwrap()
        .rows()
        .to_vec();
    let day = vendors[40].cursor_local().date();
    let d = day.format("%Y-%m-%d").to_string();
    let expected: Vec<&Row> = vendors
        .iter()
        .filter(|r| r.cursor_local().date() == day && r.text("SETID").as_deref() == Some("SHARE"))
        .collect();
    assert!(!expected.is_empty());

    // BETWEEN one date and itself: the whole local day, fixed prompt required.
    let prompts = [
        ("BIND1", d.as_str()),
        ("BIND2", d.as_str()),
        ("BIND3", "SHARE"),
        ("BIND4", ""),
        ("BIND5", ""),
    ];
    let v = get_json(&url_with(&server, QUERY_VENDORS, &prompts, 1000)).await;
    assert_eq!(rows_of(&v).len(), expected.len().min(25));
    let missing = get(&url_with(&server, QUERY_VENDORS, &prompts[..2], 1000)).await;
    assert_eq!(missing.status(), 400, "the fixed prompt is required");
    let datetime = [
        ("BIND1", "2025-03-01-00.00.00.000000"),
        ("BIND2", d.as_str()),
        ("BIND3", "SHARE"),
    ];
    assert_eq!(
        get(&url_with(&server, QUERY_VENDORS, &datetime, 1000))
            .await
            .status(),
        400,
        "date prompts take dates"
    );

    // The profile caps below maxrows, silently: numrows 25 < maxrows 1000.
    let all = [
        ("BIND1", "2025-01-01"),
        ("BIND2", "2026-12-31"),
        ("BIND3", "SHARE"),
        ("BIND4", ""),
        ("BIND5", ""),
    ];
    let v = get_json(&url_with(&server, QUERY_VENDORS, &all, 1000)).await;
    assert_eq!(v["data"]["query"]["numrows"], 25);
    // Key paging: ordered by key, each page after the last key of the one before.
    let mut seen = Vec::new();
    let mut after = (String::new(), String::new());
    for _page in 0..100 {
        let p = [
            ("BIND1", "2025-01-01"),
            ("BIND2", "2026-12-31"),
            ("BIND3", "SHARE"),
            ("BIND4", after.0.as_str()),
            ("BIND5", after.1.as_str()),
        ];
        let v = get_json(&url_with(&server, QUERY_VENDORS, &p, 1000)).await;
        let rows = rows_of(&v).clone();
        for r in &rows {
            seen.push(key_of(r, &["SETID", "VENDOR_ID"]));
        }
        if rows.len() < 25 {
            break;
        }
        let k = key_of(rows.last().unwrap(), &["SETID", "VENDOR_ID"]);
        after = (k[0].clone(), k[1].clone());
    }
    let mut want: Vec<Vec<String>> = vendors
        .iter()
        .filter(|r| r.text("SETID").as_deref() == Some("SHARE"))
        .map(Row::key)
        .collect();
    want.sort();
    assert_eq!(seen, want, "every SHARE vendor exactly once, in key order");

    // A NULL cursor matches no bounded window, only the unbounded query.
    let k = vendors[3].key();
    let key: Vec<&str> = k.iter().map(String::as_str).collect();
    assert!(server
        .dataset()
        .write()
        .set_cursor_null(TABLE_VENDORS, &key));
    let mut got = 0;
    let mut after = (String::new(), String::new());
    let mut nulls = 0;
    for _page in 0..100 {
        let p = [
            ("BIND1", ""),
            ("BIND2", ""),
            ("BIND3", "SHARE"),
            ("BIND4", after.0.as_str()),
            ("BIND5", after.1.as_str()),
        ];
        let v = get_json(&url_with(&server, QUERY_VENDORS, &p, 1000)).await;
        let rows = rows_of(&v).clone();
        got += rows.len();
        nulls += rows.iter().filter(|r| r["A.LASTUPDDTTM"].is_null()).count();
        if rows.len() < 25 {
            break;
        }
        let k = key_of(rows.last().unwrap(), &["SETID", "VENDOR_ID"]);
        after = (k[0].clone(), k[1].clone());
    }
    assert_eq!(got, want.len());
    assert_eq!(nulls, 1);
}
