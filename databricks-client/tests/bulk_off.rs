//! Without the `bulk` feature, asking for bulk loads is an error, not a silent VALUES path.
#![allow(missing_docs)]
#![cfg(not(feature = "bulk"))]

use databricks_client::bulk::BulkOptions;
use databricks_client::{Config, DatabricksClient, DatabricksSink, VolumeName};
use secrecy::SecretString;

#[test]
fn bulk_options_need_the_bulk_feature() {
    let config = Config::builder()
        .host("https://dbc-1.cloud.databricks.com")
        .token(SecretString::from("t".to_string()))
        .warehouse_id("w")
        .catalog("main")
        .schema("erp")
        .build()
        .unwrap();
    let sink =
        DatabricksSink::from_config_defaults(DatabricksClient::new(config).unwrap()).unwrap();
    let err = sink
        .bulk(BulkOptions::new(
            VolumeName::parse("main.erp.staging").unwrap(),
        ))
        .unwrap_err()
        .to_string();
    assert!(err.contains("cargo feature `bulk`"), "{err}");
}
