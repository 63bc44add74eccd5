//! `DatabricksBaselineStore` against the Databricks stand-in: what one worker stores, another
//! reads; keys of any text; a batch's keys read with one statement per thousand.

use chrono::{TimeZone, Utc};
use ml_connector::baselines::{DatabricksBaselineStore, KEYS_PER_QUERY};
use ml_connector_testkit::databricks::DatabricksStandIn;
use peoplesoft_client::writeback::{Baseline, BaselineOrigin, BaselineStore};

use crate::common::databricks_client;

fn baseline(hash: &str) -> Baseline {
    Baseline {
        hash: hash.to_string(),
        stamp: Some("2026-11-30T08:00:00.000000Z".into()),
        origin: BaselineOrigin::Writeback,
        recorded_at: Utc.with_ymd_and_hms(2026, 12, 1, 9, 30, 0).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baselines_stored_by_one_worker_are_read_by_another() {
    let standin = DatabricksStandIn::start().await;
    let one = DatabricksBaselineStore::new(databricks_client(&standin), "finance").unwrap();
    let two = DatabricksBaselineStore::new(databricks_client(&standin), "finance").unwrap();
    let other_pipeline =
        DatabricksBaselineStore::new(databricks_client(&standin), "payroll").unwrap();

    // Nothing stored yet: no table, nothing created by reading.
    assert_eq!(two.get("vendor_master", "[\"x\"]").await.unwrap(), None);
    assert!(!standin
        .tables()
        .contains(&"main.finance._ml_writeback_baselines".to_string()));

    // Keys as the write-back spells them (JSON arrays), with quotes, backslashes and more.
    let keys: Vec<String> = (0..1_200)
        .map(|i| format!(r#"["SHARE","V{i:05}","it's \\ {i} é"]"#))
        .collect();
    let mut entries: Vec<(String, Baseline)> = keys
        .iter()
        .map(|k| (k.clone(), baseline(&format!("h-{k}"))))
        .collect();
    // A key twice in one call: the last entry wins.
    entries.push((keys[0].clone(), baseline("latest")));
    one.put_many("vendor_master", entries).await.unwrap();
    assert_eq!(
        standin.row_count("main.finance._ml_writeback_baselines"),
        Some(1_200)
    );

    let before = standin.statements().len();
    let mut asked = keys.clone();
    asked.push("[\"SHARE\",\"NONE\"]".into());
    let got = two.get_many("vendor_master", &asked).await.unwrap();
    let selects = standin.statements()[before..]
        .iter()
        .filter(|s| s.sql.starts_with("SELECT"))
        .count();
    assert_eq!(selects, asked.len().div_ceil(KEYS_PER_QUERY));
    assert_eq!(got.len(), 1_200);
    assert_eq!(got[&keys[0]], baseline("latest"));
    assert_eq!(got[&keys[1_199]], baseline(&format!("h-{}", keys[1_199])));

    // Per pipeline and per stream.
    assert!(other_pipeline
        .get_many("vendor_master", &keys)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(two.get("customer_master", &keys[1]).await.unwrap(), None);

    // A rewrite replaces (keyed MERGE), it does not add a row.
    two.put_many("vendor_master", vec![(keys[1].clone(), baseline("again"))])
        .await
        .unwrap();
    assert_eq!(
        one.get("vendor_master", &keys[1]).await.unwrap(),
        Some(baseline("again"))
    );
    assert_eq!(
        standin.row_count("main.finance._ml_writeback_baselines"),
        Some(1_200)
    );
}
