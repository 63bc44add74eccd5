//! Building destinations from the environment (for the examples).

use std::sync::Arc;

use databricks_client::{ConfigBuilder, DatabricksClient, DatabricksSink};
use sync_core::Sink;

/// A boxed error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A `DatabricksSink` configured from `DATABRICKS_*` variables (or the profile they name),
/// with catalog and schema from `DATABRICKS_CATALOG` / `DATABRICKS_SCHEMA` (defaults `main`
/// and `ml_connector`). Returns a description (the host) and the sink.
pub async fn databricks_sink_from_env() -> Result<(String, Arc<dyn Sink>), BoxError> {
    let env = |k: &str| std::env::var(k).ok();
    let config = ConfigBuilder::from_lookup(env)?
        .catalog(env("DATABRICKS_CATALOG").unwrap_or_else(|| "main".into()))
        .schema(env("DATABRICKS_SCHEMA").unwrap_or_else(|| "ml_connector".into()))
        .build()?;
    let host = config.host().to_string();
    let client = DatabricksClient::new(config)?;
    let report = client.ping().await;
    if !report.is_ok() {
        return Err(format!("Databricks check failed: {report}").into());
    }
    let sink = DatabricksSink::from_config_defaults(client)?;
    Ok((host, Arc::new(sink)))
}
