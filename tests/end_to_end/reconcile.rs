//! Reconciliation through the wire: verify by key and row hash against the PeopleSoft
//! stand-in, into SQLite. Deletes (soft and hard), a moved row that is not a delete, an
//! in-place change found and repaired by requeue + run, and rows cut by a row cap that an
//! earlier configuration trusted, found by verify.

use std::path::Path;
use std::sync::Arc;

use crate::common::*;
use chrono::Duration;
use ml_connector_testkit::dataset::{Dataset, TABLE_JOURNAL_LINES, TABLE_VENDORS};
use ml_connector_testkit::peoplesoft::ServerConfig;
use serde_json::Value as Json;
use sync_core::engine::{VerifyOptions, WindowPolicy};
use sync_core::sqlite::SqliteSink;
use sync_core::{Clock, DeletePolicy};

fn sqlite(dir: &Path) -> Arc<SqliteSink> {
    Arc::new(SqliteSink::open(dir.join("dest.db")).unwrap())
}

fn policy() -> WindowPolicy {
    WindowPolicy::starting_at(Dataset::history_start()).max_window(Duration::days(92))
}

fn deleted_at(sink: &SqliteSink, table: &str, key_col: &str, key: &str) -> Option<String> {
    sink.with_connection(|db| {
        db.query_row(
            &format!("SELECT _ml_deleted_at FROM \"{table}\" WHERE \"{key_col}\" = ?1"),
            [key],
            |r| r.get(0),
        )
        .unwrap()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_soft_and_hard_a_moved_row_and_an_in_place_change() {
    for hard in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let site = site(0.5);
        let sink = sqlite(dir.path());
        let deletes = if hard {
            DeletePolicy::Hard
        } else {
            DeletePolicy::Soft
        };
        let p = pipeline_full(
            &site,
            sink.clone(),
            &dir.path().join("state"),
            policy(),
            |d| d,
            |s| s.deletes(deletes),
        );
        assert!(p.run_cycle().await.unwrap().is_clean());

        let (gone, moved, fixed) = {
            let d = site.dataset.read();
            let v = d.table(TABLE_VENDORS).unwrap().rows();
            (v[5].key(), v[6].key(), v[7].key())
        };
        fn k(k: &[String]) -> Vec<&str> {
            k.iter().map(String::as_str).collect()
        }
        let now = site.clock.now();
        {
            let mut d = site.dataset.write();
            assert!(d.remove_row(TABLE_VENDORS, &k(&gone)).is_some());
            // Moved: updated after the last cycle, its cursor now beyond the committed range.
            assert!(d.set_field(
                TABLE_VENDORS,
                &k(&moved),
                "NAME1",
                Json::String("Moved Ltd".into()),
                now
            ));
            // Changed in place: no cursor bump, so no window will ever re-read it by itself.
            assert!(d.set_field_in_place(
                TABLE_VENDORS,
                &k(&fixed),
                "NAME1",
                Json::String("Corrected Inc".into())
            ));
        }
        site.clock.advance(Duration::minutes(1));

        let report = p
            .verify_with(&VerifyOptions::new().streams(vec!["vendors".into()]))
            .await
            .unwrap();
        let v = &report[0];
        assert!(v.complete);
        assert_eq!(v.deletes_found, 1, "{v:#?}");
        assert_eq!(v.moved, 1, "a moved row is not a delete");
        let differing: Vec<_> = v.differing().collect();
        assert!(
            differing
                .iter()
                .any(|w| w.changed == 1 && w.examples.iter().any(|e| e.contains(&fixed[1]))),
            "{differing:#?}"
        );

        // Repair: requeue the changed window, apply the delete, run.
        let v = p
            .verify_with(&VerifyOptions::new().requeue(true).apply_deletes(true))
            .await
            .unwrap();
        let vendors = v.iter().find(|v| v.stream == "vendors").unwrap();
        assert_eq!(vendors.deletes_applied, 1);
        assert!(vendors.requeued);
        site.clock.advance(Duration::minutes(10));
        assert!(p.run_cycle().await.unwrap().is_clean());
        if hard {
            sink.with_connection(|db| assert_all_match(db, &site.dataset));
        } else {
            assert!(deleted_at(&sink, "ps_vendors", "vendor_id", &gone[1]).is_some());
            assert!(deleted_at(&sink, "ps_vendors", "vendor_id", &moved[1]).is_none());
        }
        let name: String = sink.with_connection(|db| {
            db.query_row(
                "SELECT name1 FROM ps_vendors WHERE vendor_id = ?1",
                [&fixed[1]],
                |r| r.get(0),
            )
            .unwrap()
        });
        assert_eq!(name, "Corrected Inc", "the in-place change was reloaded");
        let after = p.verify(false).await.unwrap();
        let vendors = after.iter().find(|v| v.stream == "vendors").unwrap();
        assert_eq!(vendors.differing().count(), 0, "{vendors:#?}");
        let status = p.status().await.unwrap();
        assert_eq!(
            status
                .iter()
                .find(|s| s.stream == "vendors")
                .unwrap()
                .rows_deleted,
            1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_cut_by_a_trusted_wrong_row_cap_are_found_by_verify_and_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let site = site_with(
        1.0,
        ServerConfig {
            profile_max_rows: Some(40),
            ..ServerConfig::default()
        },
    );
    let sink = sqlite(dir.path());
    let state = dir.path().join("state");
    // An operator declared the profile's limit wrongly (1000): short pages are trusted.
    let wrong = pipeline(&site, sink.clone(), &state, |d| {
        d.max_rows(5000).profile_max_rows(Some(1000))
    });
    assert!(wrong.run_cycle().await.unwrap().is_clean());
    let loaded: i64 = sink.with_connection(|db| {
        db.query_row("SELECT COUNT(*) FROM ps_journal_lines", [], |r| r.get(0))
            .unwrap()
    });
    let truth = site
        .dataset
        .read()
        .table(TABLE_JOURNAL_LINES)
        .unwrap()
        .len() as i64;
    assert!(
        loaded < truth,
        "rows were lost silently: {loaded} of {truth}"
    );
    drop(wrong);

    // With the declaration removed, verify reads every window completely (the cap is
    // detected) and finds what is missing; requeue + run repairs it.
    let p = pipeline(&site, sink.clone(), &state, |mut d| {
        d.profile_cap_floor = 10;
        d.max_rows(5000)
    });
    let v = p.verify(true).await.unwrap();
    let journal = v.iter().find(|v| v.stream == "journal_lines").unwrap();
    let missing: u64 = journal.windows.iter().map(|w| w.missing).sum();
    assert_eq!(missing as i64, truth - loaded, "{journal:#?}");
    assert!(journal.requeued);
    site.clock.advance(Duration::minutes(10));
    assert!(p.run_cycle().await.unwrap().is_clean());
    sink.with_connection(|db| assert_all_match(db, &site.dataset));
}
