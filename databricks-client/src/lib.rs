//! databricks-client
