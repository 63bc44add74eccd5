//! Capture correctness through the wire, against a PeopleSoft stand-in that behaves like a real
//! site: a query profile that caps rows below `maxrows`, date cursors in the site's calendar,
//! the repeated daylight-saving hour, rows tied on one cursor value beyond a page, NULL
//! cursors, and a query whose prompts are Query Manager's `BIND1`/`BIND2`.

use std::path::Path;
use std::sync::Arc;

use crate::common::*;
use chrono::{Duration, TimeZone, Utc};
use ml_connector_testkit::dataset::{
    Dataset, SharedDataset, TABLE_CUSTOMERS, TABLE_JOURNAL_LINES, TABLE_PAYCHECKS, TABLE_VENDORS,
};
use ml_connector_testkit::peoplesoft::{
    PeopleSoftServer, QueryPrompts, ServerConfig, DEFAULT_OPRID, DEFAULT_PASSWORD, PROMPT_FROM,
    PROMPT_TO,
};
use ml_connector_testkit::{QUERY_VENDORS, SITE_TIME_ZONE};
use peoplesoft_client::{PromptFormat, StreamDefinition};
use sync_core::audit::{AuditLog, JsonlAuditLog};
use sync_core::engine::WindowPolicy;
use sync_core::sqlite::SqliteSink;
use sync_core::Clock;

fn sqlite(dir: &Path) -> Arc<SqliteSink> {
    Arc::new(SqliteSink::open(dir.join("dest.db")).unwrap())
}

fn count(sink: &SqliteSink, table: &str) -> i64 {
    sink.with_connection(|db| {
        db.query_row(&format!("SELECT COUNT(*) FROM \"{table}\""), [], |r| {
            r.get(0)
        })
        .unwrap()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_profile_cap_below_maxrows_is_detected_and_every_row_loads() {
    let dir = tempfile::tempdir().unwrap();
    // The OPRID's profile fetches at most 40 rows; the client asks for 500.
    let site = site_with(
        1.0,
        ServerConfig {
            profile_max_rows: Some(40),
            ..ServerConfig::default()
        },
    );
    let sink = sqlite(dir.path());
    let state = dir.path().join("state");
    // Caps this small are below the default plausibility floor (100): lower it for the test.
    let p = pipeline(&site, sink.clone(), &state, |mut d| {
        d.profile_cap_floor = 10;
        d.max_rows(500)
    });
    let r = p.run_cycle().await.unwrap();
    assert!(r.is_clean(), "{r:#?}");
    sink.with_connection(|db| assert_all_match(db, &site.dataset));
    assert!(
        r.streams.iter().any(|s| s.row_cap_detected == Some(40)),
        "{:?}",
        r.streams
            .iter()
            .map(|s| (&s.stream, s.row_cap_detected))
            .collect::<Vec<_>>()
    );
    let audit = JsonlAuditLog::new(state.join("audit.jsonl"));
    let entries = audit.entries("e2e", None).await.unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e.annotations.get("row_cap_detected").map(String::as_str) == Some("40")),
        "the audit names the detected cap"
    );
    let status = p.status().await.unwrap();
    let journal = status.iter().find(|s| s.stream == "journal_lines").unwrap();
    assert_eq!(journal.row_cap.detected, Some(40), "kept in state");

    // New rows after the cap is known load too (six journals of ten lines: 60 > the cap).
    let now = site.clock.now();
    for i in 0..6 {
        site.dataset
            .write()
            .insert_rows(TABLE_JOURNAL_LINES, 10, now + Duration::minutes(1 + i));
    }
    site.clock.advance(Duration::minutes(30));
    let r = p.run_cycle().await.unwrap();
    assert!(r.is_clean(), "{r:#?}");
    sink.with_connection(|db| assert_all_match(db, &site.dataset));
}

/// The delivered date-cursor streams (vendors, customers, paychecks), as their defaults
/// define them: date prompts on the record's date field.
fn date_cursor(def: StreamDefinition) -> StreamDefinition {
    let cursor = match def.name.as_str() {
        "vendors" => "LAST_ACTIVITY_DT",
        "customers" => "CUST_STATUS_DT",
        "paychecks" => "CHECK_DT",
        _ => return def,
    };
    let mut def = def.prompt_format(PromptFormat::Date);
    def.cursor_field = cursor.into();
    def.mapping.cursor_column = Some(cursor.to_ascii_lowercase());
    def
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn date_cursor_streams_pick_up_a_change_at_20_00_local_on_the_next_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(1.0);
    let sink = sqlite(dir.path());
    let local = |d, h, m| {
        SITE_TIME_ZONE
            .with_ymd_and_hms(2026, 11, d, h, m, 0)
            .unwrap()
            .with_timezone(&Utc)
    };
    // 19:30 Chicago on 2 November (01:30 UTC on the 3rd): the first cycle.
    site.clock.set(local(2, 19, 30));
    let policy = WindowPolicy::starting_at(Dataset::history_start()).max_window(Duration::days(92));
    let p = pipeline_with(
        &site,
        sink.clone(),
        &dir.path().join("state"),
        policy,
        date_cursor,
    );
    assert!(p.run_cycle().await.unwrap().is_clean());
    // The lookback was raised for the date cursors (a day plus Chicago's offset).
    let vendors = p.streams().iter().find(|s| s.name == "vendors").unwrap();
    assert_eq!(vendors.windows.lookback, Duration::hours(30));

    // Changed at 20:00 Chicago, still the 2nd locally but the 3rd in UTC.
    {
        let mut d = site.dataset.write();
        for t in [TABLE_VENDORS, TABLE_CUSTOMERS, TABLE_PAYCHECKS] {
            assert_eq!(d.update_rows(t, 3, local(2, 20, 0)).len(), 3);
        }
    }
    site.clock.set(local(2, 21, 0));
    let r = p.run_cycle().await.unwrap();
    assert!(r.is_clean(), "{r:#?}");
    sink.with_connection(|db| {
        assert_table_matches(
            db,
            &site.dataset,
            "vendors",
            "ps_vendors",
            &["NAME1", "VENDOR_STATUS"],
            &[],
        );
        assert_table_matches(
            db,
            &site.dataset,
            "customers",
            "ps_customers",
            &["NAME1", "CUST_STATUS"],
            &["CREDIT_LIMIT"],
        );
        assert_table_matches(
            db,
            &site.dataset,
            "paychecks",
            "ps_paychecks",
            &["EMPLID"],
            &["GROSS_PAY", "NET_PAY"],
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_row_in_the_repeated_fall_back_hour_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(0.3);
    let sink = sqlite(dir.path());
    // 2026-11-01 in Chicago: 01:00-02:00 local happens twice; 07:15 UTC is 01:15 CST, the
    // second time round.
    site.clock
        .set(Utc.with_ymd_and_hms(2026, 11, 1, 7, 15, 0).unwrap());
    let policy = WindowPolicy::starting_at(Dataset::history_start()).max_window(Duration::days(92));
    let p = pipeline_with(
        &site,
        sink.clone(),
        &dir.path().join("state"),
        policy,
        |d| d,
    );
    assert!(p.run_cycle().await.unwrap().is_clean());
    // A transaction stamped 01:05 CST (07:05 UTC) commits after that cycle read its window.
    let stamped = Utc.with_ymd_and_hms(2026, 11, 1, 7, 5, 0).unwrap();
    let keys = site
        .dataset
        .write()
        .insert_late_rows(TABLE_JOURNAL_LINES, 2, stamped);
    site.clock
        .set(Utc.with_ymd_and_hms(2026, 11, 1, 7, 30, 0).unwrap());
    // Next cycle: lookback 1h before the high-water mark 07:10 UTC is 06:10 UTC = 01:10 CDT,
    // which is *after* the row's wall-clock stamp 01:05: only a prompt that starts at the
    // earliest wall time of the window finds it.
    let r = p.run_cycle().await.unwrap();
    assert!(r.is_clean(), "{r:#?}");
    sink.with_connection(|db| {
        assert_table_matches(
            db,
            &site.dataset,
            "journal_lines",
            "ps_journal_lines",
            &["LINE_DESCR", "ACCOUNT"],
            &["MONETARY_AMOUNT"],
        )
    });
    assert_eq!(keys.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_tied_on_one_cursor_beyond_a_page_fail_loudly_or_load_by_key() {
    let mut config = ServerConfig::default();
    config.query_prompts.insert(
        QUERY_VENDORS.into(),
        QueryPrompts::new(PROMPT_FROM, PROMPT_TO).key(["AFTER_SETID", "AFTER_VENDOR_ID"]),
    );
    let site = site_with(1.0, config);
    // A mass update: 30 vendors stamped with one and the same instant.
    let at = Dataset::history_end() - Duration::days(3);
    site.dataset.write().update_rows(TABLE_VENDORS, 30, at);
    let vendors_only = |d: StreamDefinition| {
        if d.name == "vendors" {
            d.max_rows(10)
        } else {
            d
        }
    };

    // Without key prompts the window fails, naming the tie and what to change.
    let dir = tempfile::tempdir().unwrap();
    let sink = sqlite(dir.path());
    let p = pipeline(&site, sink.clone(), &dir.path().join("state"), |d| {
        let mut d = vendors_only(d);
        d.key_prompts.clear();
        d
    });
    let r = p.run_cycle().await.unwrap();
    let v = r.streams.iter().find(|s| s.stream == "vendors").unwrap();
    assert_eq!(v.windows_failed, 1, "{v:?}");
    let status = p.status().await.unwrap();
    let err = &status
        .iter()
        .find(|s| s.stream == "vendors")
        .unwrap()
        .failed[0]
        .last_error;
    assert!(
        err.contains("10+ rows share cursor value")
            && err.contains("stream `vendors`")
            && err.contains("key_prompts")
            && !err.contains("min_window"),
        "{err}"
    );

    // With key prompts, the tie is paged by key and every vendor loads.
    let dir = tempfile::tempdir().unwrap();
    let sink = sqlite(dir.path());
    let p = pipeline(&site, sink.clone(), &dir.path().join("state"), |d| {
        let d = vendors_only(d);
        if d.name == "vendors" {
            d.key_prompts(["AFTER_SETID", "AFTER_VENDOR_ID"])
        } else {
            d
        }
    });
    let r = p.run_cycle().await.unwrap();
    assert!(r.is_clean(), "{r:#?}");
    sink.with_connection(|db| assert_all_match(db, &site.dataset));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_cursor_rows_are_counted_by_verify_and_shown_in_status() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(0.3);
    let keys: Vec<Vec<String>> = {
        let d = site.dataset.read();
        d.table(TABLE_VENDORS).unwrap().rows()[..2]
            .iter()
            .map(|r| r.key())
            .collect()
    };
    for k in &keys {
        let k: Vec<&str> = k.iter().map(String::as_str).collect();
        assert!(site.dataset.write().set_cursor_null(TABLE_VENDORS, &k));
    }
    let sink = sqlite(dir.path());
    let p = pipeline(&site, sink.clone(), &dir.path().join("state"), |mut d| {
        d.null_cursor_check = d.name == "vendors";
        d
    });
    assert!(p.run_cycle().await.unwrap().is_clean());
    let verification = p.verify(false).await.unwrap();
    let v = verification.iter().find(|v| v.stream == "vendors").unwrap();
    assert_eq!(v.null_cursor_rows, Some(2));
    let status = p.status().await.unwrap();
    let s = status.iter().find(|s| s.stream == "vendors").unwrap();
    assert_eq!(s.null_cursor_rows.map(|n| n.rows), Some(2));
    // Those two rows cannot be reached by cursor windows: the table lacks them, and the
    // count says so instead of hiding it.
    let total = site.dataset.read().table(TABLE_VENDORS).unwrap().len() as i64;
    assert_eq!(count(&sink, "ps_vendors"), total - 2);
}

/// The `sync` example (the installed program) with a configuration file.
fn sync(cfg: &Path, args: &[&str]) -> std::process::Output {
    sync_command(cfg)
        .args(args)
        .env("MLC_CAPTURE_TEST_PASSWORD", DEFAULT_PASSWORD)
        .output()
        .unwrap()
}

#[test]
fn a_query_with_bind1_bind2_date_prompts_syncs_from_configuration_alone() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    // The site's vendor query was written in Query Manager: BIND1/BIND2 date prompts with
    // BETWEEN, and a SETID prompt.
    let mut config = ServerConfig::default();
    config.query_prompts.insert(
        QUERY_VENDORS.into(),
        QueryPrompts::new("BIND1", "BIND2")
            .date()
            .between()
            .fixed("BIND3", "SETID"),
    );
    let dataset = SharedDataset::new(Dataset::manufacturer(7, 0.5));
    let server = rt.block_on(async { PeopleSoftServer::start_with(dataset.clone(), config) });
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pipeline.toml");
    let db = dir.path().join("dest.db");
    std::fs::write(
        &cfg,
        format!(
            r#"[pipeline]
name = "binds"
[state]
dir = "{state}"
[peoplesoft]
host = "{host}"
port = {port}
node = "{node}"
scheme = "http"
allow_http = true
time_zone = "America/Chicago"
user = "{user}"
password_env = "MLC_CAPTURE_TEST_PASSWORD"
min_gap = "0ms"
[destination]
kind = "sqlite"
path = "{db}"
[defaults]
start = "2025-01-01T00:00:00Z"
max_window = "92d"
[[streams]]
name = "vendors"
domain = "vendors"
from_prompt = "BIND1"
to_prompt = "BIND2"
prompt_format = "date"
range = "between_inclusive"
fixed_prompts = {{ BIND3 = "SHARE" }}
"#,
            state = dir.path().join("state").display(),
            host = server.host(),
            port = server.port(),
            node = server.node(),
            user = DEFAULT_OPRID,
            db = db.display(),
        ),
    )
    .unwrap();
    let out = sync(&cfg, &["run", "--once"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    let want = dataset
        .read()
        .table(TABLE_VENDORS)
        .unwrap()
        .rows()
        .iter()
        .filter(|r| r.text("SETID").as_deref() == Some("SHARE"))
        .count() as i64;
    assert!(want > 0);
    let sink = SqliteSink::open(&db).unwrap();
    assert_eq!(count(&sink, "ps_vendors"), want, "{text}");
    // Every request named the BIND prompts with date values.
    let stats = server.stats();
    let windows = stats.windows_for(QUERY_VENDORS);
    assert!(!windows.is_empty());
    assert!(windows
        .iter()
        .all(|w| w.from.as_deref().is_none_or(|f| f.len() == 10)));
}
