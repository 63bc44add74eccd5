//! End to end into the local SQLite destination: the PeopleSoft stand-in serving the sample
//! site over the real QAS wire format, the real client and `PeopleSoftSource`, the engine, the
//! file checkpoint store and JSON-lines audit. The destination is compared with source truth.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use crate::common::*;
use chrono::Duration;
use ml_connector_testkit::dataset::{
    SharedDataset, TABLE_CUSTOMERS, TABLE_JOURNAL_LINES, TABLE_PO_LINES, TABLE_VENDORS,
};
use ml_connector_testkit::peoplesoft::{Fault, FaultRule};
use sync_core::audit::{AuditLog, JsonlAuditLog, Outcome};
use sync_core::sqlite::SqliteSink;
use sync_core::Clock;

fn sqlite(dir: &std::path::Path) -> Arc<SqliteSink> {
    Arc::new(SqliteSink::open(dir.join("dest.db")).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_load_then_incremental_cycles_match_source_truth() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(1.0);
    let sink = sqlite(dir.path());
    let p = pipeline(&site, sink.clone(), &dir.path().join("state"), |d| d);
    let r = p.run_cycle().await.unwrap();
    assert!(r.is_clean(), "{r:#?}");
    sink.with_connection(|db| assert_all_match(db, &site.dataset));

    // Updates, inserts and a late commit inside the lookback; then two more cycles.
    for round in 0..2 {
        let now = site.clock.now();
        {
            let mut d = site.dataset.write();
            d.update_rows(TABLE_VENDORS, 7, now + Duration::minutes(5));
            d.update_rows(TABLE_CUSTOMERS, 4, now + Duration::minutes(6));
            d.update_rows(TABLE_PO_LINES, 9, now + Duration::minutes(7));
            d.insert_rows(TABLE_JOURNAL_LINES, 6, now + Duration::minutes(8));
            d.insert_late_rows(TABLE_JOURNAL_LINES, 2, now - Duration::minutes(35));
        }
        site.clock.advance(Duration::minutes(30));
        let r = p.run_cycle().await.unwrap();
        assert!(r.is_clean(), "round {round}: {r:#?}");
        let read: u64 = r.streams.iter().map(|s| s.rows_read).sum();
        assert!(
            read < 200,
            "round {round}: only changes and the lookback move, read {read}"
        );
        sink.with_connection(|db| assert_all_match(db, &site.dataset));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncation_forces_bisection_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(1.0);
    let sink = sqlite(dir.path());
    // maxrows 60: most 92-day windows of the sample hit the cap and are split.
    let p = pipeline(&site, sink.clone(), &dir.path().join("state"), |d| {
        d.max_rows(60)
    });
    let r = p.run_cycle().await.unwrap();
    assert!(r.is_clean(), "{r:#?}");
    let splits: usize = r.streams.iter().map(|s| s.windows_split).sum();
    assert!(splits > 20, "windows were split ({splits})");
    sink.with_connection(|db| assert_all_match(db, &site.dataset));
    let audit = JsonlAuditLog::new(dir.path().join("state/audit.jsonl"));
    let entries = audit.entries("e2e", None).await.unwrap();
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.outcome == Outcome::Split)
            .count(),
        splits
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_peoplesoft_fault_form_fails_the_window_and_the_next_cycle_recovers() {
    let faults = [
        Fault::InternalServerError,
        Fault::BadGateway,
        Fault::IbError,
        Fault::JsonError,
        Fault::Hang(StdDuration::from_secs(5)),
        Fault::CutOffBody,
        Fault::TruncatedJson,
    ];
    for fault in faults {
        let dir = tempfile::tempdir().unwrap();
        let site = site(0.3);
        let sink = sqlite(dir.path());
        let p = pipeline(&site, sink.clone(), &dir.path().join("state"), |d| d);
        // The fault fires on every vendors request of the first cycle (retries included).
        site.server.inject(
            FaultRule::new(fault.clone())
                .for_query("MLC_VENDORS")
                .times(4),
        );
        let r = p.run_cycle().await.unwrap();
        let vendors = r.streams.iter().find(|s| s.stream == "vendors").unwrap();
        assert!(vendors.windows_failed >= 1, "{fault:?}: {vendors:#?}");
        let audit = JsonlAuditLog::new(dir.path().join("state/audit.jsonl"));
        let failed: Vec<_> = audit
            .entries("e2e", Some("vendors"))
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.outcome == Outcome::Failed)
            .collect();
        let err = failed[0].error.clone().unwrap();
        assert!(
            err.contains("vendors") || err.contains("MLC_VENDORS"),
            "{fault:?}: error names the stream or query: {err}"
        );
        // Other streams were not affected.
        assert!(
            r.streams
                .iter()
                .filter(|s| s.stream != "vendors")
                .all(|s| s.is_clean()),
            "{fault:?}: {r:#?}"
        );
        site.server.clear_faults();
        site.clock.advance(Duration::minutes(10));
        let r = p.run_cycle().await.unwrap();
        assert!(r.is_clean(), "{fault:?}: {r:#?}");
        sink.with_connection(|db| assert_all_match(db, &site.dataset));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_arrive_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(1.0);
    let sink = sqlite(dir.path());
    let p = pipeline(&site, sink.clone(), &dir.path().join("state"), |d| d);
    assert!(p.run_cycle().await.unwrap().is_clean());
    sink.with_connection(|db| {
        // The sample dataset carries quotes, backslashes, newlines, unicode, SQL text,
        // 3000-character descriptions and amounts beyond f64 precision.
        let count = |sql: &str| db.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        assert!(count("SELECT COUNT(*) FROM ps_vendors WHERE name1 LIKE '%''%'") > 0, "apostrophes");
        assert!(count("SELECT COUNT(*) FROM ps_journal_lines WHERE line_descr LIKE '%DROP TABLE%'") > 0, "SQL text");
        assert!(count("SELECT COUNT(*) FROM ps_purchase_order_lines WHERE length(item_descr) >= 3000") > 0, "3000 chars");
        assert!(count("SELECT COUNT(*) FROM ps_journal_lines WHERE instr(line_descr, char(10)) > 0") > 0, "newlines");
        assert!(count("SELECT COUNT(*) FROM ps_vendors WHERE name1 GLOB '*[^ -~]*'") > 0, "non-ASCII");
        assert!(count("SELECT COUNT(*) FROM ps_purchase_order_lines WHERE merchandise_amt = '12345678901234.560'") > 0, "exact big amount");
        assert_all_match(db, &site.dataset);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_peoplesoft_login_stops_the_stream_after_one_request() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(0.3);
    let sink = sqlite(dir.path());
    let p = pipeline(&site, sink, &dir.path().join("state"), |d| d);
    site.server.inject(
        FaultRule::new(Fault::Status {
            status: 401,
            retry_after: None,
        })
        .for_query("MLC_VENDORS")
        .always(),
    );
    site.server.reset_stats();
    let r = p.run_cycle().await.unwrap();
    let vendors = r.streams.iter().find(|s| s.stream == "vendors").unwrap();
    assert_eq!(
        site.server.stats().requests_for("MLC_VENDORS"),
        1,
        "no retry, no further window"
    );
    let err = vendors.error.clone().unwrap();
    assert!(err.to_lowercase().contains("lock"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peoplesoft_counts_are_exact_even_when_pages_are_truncated() {
    use ml_connector_testkit::dataset::Dataset;
    use peoplesoft_client::PeopleSoftSource;
    use sync_core::{Source, Window};
    let site = site(1.0);
    let def = site
        .streams
        .iter()
        .find(|d| d.name == "journal_lines")
        .unwrap()
        .clone()
        .max_rows(50);
    let source = PeopleSoftSource::new(site.client.clone(), def).unwrap();
    let window = Window::new(Dataset::history_start(), Dataset::history_end());
    let want = site
        .dataset
        .read()
        .table(TABLE_JOURNAL_LINES)
        .unwrap()
        .rows_in(window)
        .len() as u64;
    assert!(want > 50);
    assert_eq!(source.count(window).await.unwrap(), Some(want));
}

/// Asserts `ps_job.is_current` is exactly the source's current row per (EMPLID, EMPL_RCD) as
/// of `as_of`: one current row per employee record, none for records without a row yet.
fn assert_current_flags(
    db: &rusqlite::Connection,
    dataset: &SharedDataset,
    as_of: chrono::NaiveDate,
) {
    let want = current_in_source(dataset, as_of);
    let mut stmt = db
        .prepare("SELECT emplid, empl_rcd, effdt, effseq, is_current FROM ps_job")
        .unwrap();
    let rows: Vec<(String, i64, String, i64, Option<i64>)> = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!rows.is_empty());
    let mut current: BTreeMap<Entity, usize> = BTreeMap::new();
    for (emplid, rcd, effdt, effseq, flag) in rows {
        let entity = (emplid, rcd);
        let expect = want.get(&entity) == Some(&(effdt.clone(), effseq));
        assert_eq!(
            flag,
            Some(i64::from(expect)),
            "{entity:?} {effdt}/{effseq} as of {as_of}"
        );
        *current.entry(entity).or_default() += usize::from(expect);
    }
    for (entity, n) in &current {
        assert_eq!(*n, usize::from(want.contains_key(entity)), "{entity:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_keeps_one_current_row_per_employee_across_windows_and_activates_future_rows() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(1.0);
    let sink = sqlite(dir.path());
    let p = pipeline(&site, sink.clone(), &dir.path().join("state"), |d| d);
    let r = p.run_cycle().await.unwrap();
    assert!(r.is_clean(), "{r:#?}");
    // JOB rows are entered in any order across many windows; the flags are right anyway.
    let today = site_today(site.clock.as_ref());
    sink.with_connection(|db| assert_current_flags(db, &site.dataset, today));

    // A later cycle brings a newer JOB row (a transfer effective today) for an employee whose
    // current row was loaded earlier.
    let now = site.clock.now();
    let (emplid, rcd) = insert_newer_job_row(&site, today, now + Duration::minutes(5));
    site.clock.advance(Duration::minutes(30));
    let r = p.run_cycle().await.unwrap();
    assert!(r.is_clean(), "{r:#?}");
    sink.with_connection(|db| {
        assert_current_flags(db, &site.dataset, today);
        let (n, dept): (i64, String) = db
            .query_row(
                "SELECT COUNT(*), MAX(deptid) FROM ps_job WHERE emplid = ?1 AND empl_rcd = ?2 AND is_current = 1",
                rusqlite::params![emplid, rcd],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((n, dept.as_str()), (1, "XFR-NEW"));
    });

    // Future-dated rows (raises entered in advance) become current on their date in the
    // site's zone, through the daily sweep: no window reads them again.
    let first_future = first_future_effdt(&site.dataset, today);
    site.clock.set(ml_connector_testkit::sitetime::local_to_utc(
        first_future.and_hms_opt(0, 30, 0).unwrap(),
    ));
    let r = p.run_cycle().await.unwrap();
    assert!(r.is_clean(), "{r:#?}");
    let job = r.streams.iter().find(|s| s.stream == "employees").unwrap();
    assert_eq!(job.current_swept_on, Some(first_future));
    sink.with_connection(|db| assert_current_flags(db, &site.dataset, first_future));
}
