//! End to end into Databricks: PeopleSoft stand-in → real client and `PeopleSoftSource` →
//! engine → real `DatabricksSink` (OAuth M2M, Statement Execution, MERGE) → the Databricks
//! stand-in, which executes the statements against an in-memory catalog. Faults on the
//! Databricks side (429, 503, FAILED over HTTP 200, a dropped/timed-out request, a token that
//! expires mid-run) must end with the destination equal to the source and no duplicate keys.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use crate::common::*;
use chrono::Duration;
use databricks_client::DatabricksSink;
use ml_connector_testkit::databricks::{DatabricksStandIn, Fault, StandInValue};
use ml_connector_testkit::dataset::{TABLE_JOURNAL_LINES, TABLE_PO_LINES, TABLE_VENDORS};
use rust_decimal::Decimal;
use sync_core::Clock;

fn sink(standin: &DatabricksStandIn) -> Arc<DatabricksSink> {
    Arc::new(DatabricksSink::from_config_defaults(databricks_client(standin)).unwrap())
}

fn text(v: &StandInValue) -> Option<String> {
    match v {
        StandInValue::Null => None,
        other => Some(other.to_string()),
    }
}

/// Asserts a Databricks stand-in table equals the source table on keys and money fields.
fn assert_matches(
    standin: &DatabricksStandIn,
    site: &Site,
    ds_table: &str,
    table: &str,
    money: &[&str],
) {
    let full = format!("main.finance.{table}");
    let rows = standin
        .rows(&full)
        .unwrap_or_else(|| panic!("no table {full}: {:?}", standin.tables()));
    let keys: Vec<String> = site
        .dataset
        .read()
        .table(ds_table)
        .unwrap()
        .spec()
        .key
        .clone();
    let key_cols: Vec<String> = keys.iter().map(|k| k.to_ascii_lowercase()).collect();
    let key_refs: Vec<&str> = key_cols.iter().map(String::as_str).collect();
    assert_eq!(
        standin.duplicate_keys(&full, &key_refs).unwrap(),
        Vec::<Vec<StandInValue>>::new(),
        "{table}: duplicate keys"
    );
    let want = truth(&site.dataset, ds_table);
    assert_eq!(rows.len(), want.len(), "{table}: row count");
    for row in &rows {
        let key: Vec<String> = key_cols
            .iter()
            .map(|k| text(&row[k]).unwrap_or_default())
            .collect();
        let w = want
            .get(&key.join("|"))
            .unwrap_or_else(|| panic!("{table}: unexpected key {key:?}"));
        for f in money {
            let got: Option<Decimal> =
                text(&row[&f.to_ascii_lowercase()]).map(|s| s.parse().unwrap());
            let exp: Option<Decimal> = w[*f].as_deref().map(|s| s.trim().parse().unwrap());
            assert_eq!(
                got.map(|d| d.normalize()),
                exp.map(|d| d.normalize()),
                "{table} {key:?} {f}"
            );
        }
    }
}

fn assert_all(standin: &DatabricksStandIn, site: &Site) {
    assert_matches(standin, site, TABLE_VENDORS, "ps_vendors", &[]);
    assert_matches(
        standin,
        site,
        TABLE_PO_LINES,
        "ps_purchase_order_lines",
        &["MERCHANDISE_AMT", "PRICE_PO"],
    );
    assert_matches(
        standin,
        site,
        TABLE_JOURNAL_LINES,
        "ps_journal_lines",
        &["MONETARY_AMOUNT", "FOREIGN_AMOUNT"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_and_incremental_loads_into_databricks_match_the_source() {
    let standin = DatabricksStandIn::start().await;
    let site = site(0.5);
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(&site, sink(&standin), dir.path(), |d| d);
    let r = p.run_cycle().await.unwrap();
    assert!(r.is_clean(), "{r:#?}");
    assert_all(&standin, &site);
    let now = site.clock.now();
    {
        let mut d = site.dataset.write();
        d.update_rows(TABLE_VENDORS, 5, now + Duration::minutes(1));
        d.update_rows(TABLE_PO_LINES, 5, now + Duration::minutes(1));
        d.insert_rows(TABLE_JOURNAL_LINES, 4, now + Duration::minutes(2));
        d.insert_late_rows(TABLE_JOURNAL_LINES, 2, now - Duration::minutes(40));
    }
    site.clock.advance(Duration::minutes(20));
    let r = p.run_cycle().await.unwrap();
    assert!(r.is_clean(), "{r:#?}");
    assert_all(&standin, &site);
    // Every statement that reached the stand-in was a single statement (no `;` chaining).
    assert!(!standin.statements().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databricks_faults_end_with_the_destination_equal_to_the_source() {
    let faults = [
        Fault::RateLimited {
            retry_after: StdDuration::from_secs(1),
        },
        Fault::Unavailable,
        Fault::InternalErrorHtml,
        Fault::StatementFailed {
            error_code: "INTERNAL_ERROR".into(),
            sql_state: "XX000".into(),
            message: "[INTERNAL_ERROR] injected".into(),
        },
        Fault::Delay(StdDuration::from_secs(8)),
    ];
    for fault in faults {
        let standin = DatabricksStandIn::start().await;
        let site = site(0.3);
        let dir = tempfile::tempdir().unwrap();
        let p = pipeline(&site, sink(&standin), dir.path(), |d| d);
        assert!(p.run_cycle().await.unwrap().is_clean());
        {
            let now = site.clock.now();
            let mut d = site.dataset.write();
            d.update_rows(TABLE_PO_LINES, 8, now + Duration::minutes(1));
            d.insert_rows(TABLE_JOURNAL_LINES, 6, now + Duration::minutes(1));
        }
        site.clock.advance(Duration::minutes(20));
        standin.inject(fault.clone(), 2);
        let _ = p.run_cycle().await.unwrap(); // may fail some windows, or retry through
        site.clock.advance(Duration::minutes(20));
        let r = p.run_cycle().await.unwrap();
        assert!(r.is_clean(), "{fault:?}: {r:#?}");
        assert_all(&standin, &site);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_expires_mid_run_is_refreshed_once_and_the_run_completes() {
    let standin = DatabricksStandIn::start().await;
    let site = site(0.3);
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(&site, sink(&standin), dir.path(), |d| d);
    assert!(p.run_cycle().await.unwrap().is_clean());
    let fetches = standin.token_fetch_count();
    {
        let now = site.clock.now();
        site.dataset
            .write()
            .insert_rows(TABLE_JOURNAL_LINES, 6, now + Duration::minutes(1));
    }
    site.clock.advance(Duration::minutes(20));
    standin.inject(Fault::ExpireTokens, 1);
    let r = p.run_cycle().await.unwrap();
    assert!(r.is_clean(), "{r:#?}");
    assert_eq!(
        standin.token_fetch_count(),
        fetches + 1,
        "one refresh after the 401"
    );
    assert_all(&standin, &site);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_into_databricks_finds_changes_and_applies_deletes() {
    use sync_core::engine::VerifyOptions;
    use sync_core::DeletePolicy;
    let standin = DatabricksStandIn::start().await;
    let site = site(0.3);
    let dir = tempfile::tempdir().unwrap();
    let policy = sync_core::engine::WindowPolicy::starting_at(
        ml_connector_testkit::dataset::Dataset::history_start(),
    )
    .max_window(Duration::days(92));
    let p = pipeline_full(
        &site,
        sink(&standin),
        dir.path(),
        policy,
        |d| d,
        |s| {
            if s.name == "vendors" {
                s.deletes(DeletePolicy::Hard)
            } else {
                s
            }
        },
    );
    assert!(p.run_cycle().await.unwrap().is_clean());
    let (gone, fixed) = {
        let d = site.dataset.read();
        let v = d.table(TABLE_VENDORS).unwrap().rows();
        (v[2].key(), v[3].key())
    };
    {
        let mut d = site.dataset.write();
        let k: Vec<&str> = gone.iter().map(String::as_str).collect();
        assert!(d.remove_row(TABLE_VENDORS, &k).is_some());
        let k: Vec<&str> = fixed.iter().map(String::as_str).collect();
        assert!(d.set_field_in_place(
            TABLE_VENDORS,
            &k,
            "NAME1",
            serde_json::Value::String("Corrected GmbH".into())
        ));
    }
    let v = p
        .verify_with(
            &VerifyOptions::new()
                .streams(vec!["vendors".into()])
                .requeue(true)
                .apply_deletes(true),
        )
        .await
        .unwrap();
    assert_eq!(v[0].deletes_applied, 1, "{:#?}", v[0]);
    assert_eq!(v[0].windows.iter().map(|w| w.changed).sum::<u64>(), 1);
    site.clock.advance(Duration::minutes(10));
    assert!(p.run_cycle().await.unwrap().is_clean());
    assert_all(&standin, &site);
    // Every stream agrees key by key and hash by hash, including JOB, whose current flag
    // the sink maintains across windows (it is left out of the row hash).
    let again = p.verify(false).await.unwrap();
    assert!(
        again.iter().all(|s| s.differing().count() == 0),
        "{again:#?}"
    );
}

/// Asserts `ps_job.is_current` in the stand-in is exactly the source's current row per
/// (EMPLID, EMPL_RCD) as of `as_of`.
fn assert_current_flags(standin: &DatabricksStandIn, site: &Site, as_of: chrono::NaiveDate) {
    let want = current_in_source(&site.dataset, as_of);
    let rows = standin.rows("main.finance.ps_job").expect("ps_job");
    assert!(!rows.is_empty());
    let mut current: std::collections::BTreeMap<Entity, usize> = Default::default();
    for row in &rows {
        let entity: Entity = (
            text(&row["emplid"]).unwrap(),
            text(&row["empl_rcd"]).unwrap().parse().unwrap(),
        );
        let dated = (
            text(&row["effdt"]).unwrap(),
            text(&row["effseq"]).unwrap().parse::<i64>().unwrap(),
        );
        let expect = want.get(&entity) == Some(&dated);
        assert_eq!(
            row["is_current"],
            StandInValue::Boolean(expect),
            "{entity:?} {dated:?} as of {as_of}"
        );
        *current.entry(entity).or_default() += usize::from(expect);
    }
    for (entity, n) in &current {
        assert_eq!(*n, usize::from(want.contains_key(entity)), "{entity:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_current_flags_in_databricks_are_right_across_windows_and_days() {
    let standin = DatabricksStandIn::start().await;
    let site = site(0.5);
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(&site, sink(&standin), dir.path(), |d| d);
    let r = p.run_cycle().await.unwrap();
    assert!(r.is_clean(), "{r:#?}");
    let today = site_today(site.clock.as_ref());
    assert_current_flags(&standin, &site, today);
    // One current-flag MERGE follows each batch MERGE into ps_job, plus the day's sweep.
    let job_statements = |standin: &DatabricksStandIn| {
        let all = standin.statements();
        let rows = all
            .iter()
            .filter(|s| {
                s.sql.starts_with(
                    "MERGE INTO `main`.`finance`.`ps_job` AS tgt USING (SELECT * FROM VALUES",
                )
            })
            .count();
        let flags = all.iter().filter(|s| s.sql.contains("`_ml_rank`")).count();
        (rows, flags)
    };
    let (rows, flags) = job_statements(&standin);
    assert!(rows > 1, "several batches: {rows}");
    assert_eq!(flags, rows + 1);

    // A newer row for a loaded employee, in a later cycle.
    let now = site.clock.now();
    let entity = insert_newer_job_row(&site, today, now + Duration::minutes(1));
    site.clock.advance(Duration::minutes(20));
    let r = p.run_cycle().await.unwrap();
    assert!(r.is_clean(), "{r:#?}");
    assert_current_flags(&standin, &site, today);
    let current: Vec<_> = standin
        .rows("main.finance.ps_job")
        .unwrap()
        .into_iter()
        .filter(|r| {
            text(&r["emplid"]).as_deref() == Some(entity.0.as_str())
                && r["is_current"] == StandInValue::Boolean(true)
        })
        .collect();
    assert_eq!(current.len(), 1);
    assert_eq!(text(&current[0]["deptid"]).as_deref(), Some("XFR-NEW"));

    // The first future-dated row becomes current on its date (site zone), by the sweep.
    let first_future = first_future_effdt(&site.dataset, today);
    site.clock.set(ml_connector_testkit::sitetime::local_to_utc(
        first_future.and_hms_opt(0, 30, 0).unwrap(),
    ));
    let r = p.run_cycle().await.unwrap();
    assert!(r.is_clean(), "{r:#?}");
    assert_current_flags(&standin, &site, first_future);
}
