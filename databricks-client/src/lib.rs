//! # databricks-client
//!
//! A typed Databricks workspace client, usable on its own, and the [`DatabricksSink`] /
//! [`DatabricksSource`] adapters that plug it into `sync-core`'s incremental engine.
//!
//! ## What it does
//!
//! - **Configuration** ([`Config`]) like the official SDKs: from code, from `DATABRICKS_*`
//!   environment variables, or from a `~/.databrickscfg` profile. Hosts are accepted with or
//!   without `https://`; plain `http://` is refused unless explicitly allowed for local tests.
//! - **Authentication**: OAuth machine-to-machine (service principal) against the workspace
//!   OIDC endpoint, cached and refreshed ahead of expiry with one refresh in flight, or a
//!   personal access token. A 401 forces one token refresh and one retry.
//! - **SQL** through the Statement Execution API ([`DatabricksClient::execute`]): named,
//!   typed parameters; polling to a terminal state with a deadline that cancels the
//!   statement; `FAILED` (which arrives as HTTP 200) as a typed [`Error::StatementFailed`];
//!   results decoded into [`sync_core::Value`] (decimals exact) across all chunks.
//! - **Unity Catalog**: table metadata, paged table listing, and
//!   [`DatabricksClient::ensure_table`] (create schema and managed Delta table, add missing
//!   columns).
//! - **SQL text** ([`sql`]): the one module that quotes identifiers and renders literals
//!   (backslash first, then `\'`; never `''`), and builds MERGE / INSERT statements split
//!   under a byte limit.
//! - **Files API and bulk loads** ([`files`], [`bulk`]): upload, list and delete files in
//!   Unity Catalog volumes; with [`DatabricksSink::bulk`], large batches are staged as one
//!   Parquet file and loaded with one `MERGE … read_files` or `COPY INTO` (cargo feature
//!   `bulk`, on by default).
//! - **Jobs**: [`DatabricksClient::run_job_now`] with an idempotency token derived from the
//!   run id, so it is safe to retry.
//! - **Connection check**: [`DatabricksClient::ping`] returns a [`PingReport`] saying in
//!   plain words whether the credentials and the warehouse work.
//!
//! Retries, token caching and request limiting come from [`sync_core::http`]; this crate
//! decides what is idempotent. A statement POST is retried only on 429/503/connect errors
//! unless the statement is marked idempotent (a keyed MERGE is); GETs are idempotent.
//!
//! Secrets stay [`secrecy::SecretString`] from configuration to the wire; no error, log line
//! or `Debug` output contains a client secret, token or PAT.
//!
//! ## Example
//!
//! ```no_run
//! use databricks_client::{Config, DatabricksClient, Statement};
//! use sync_core::Value;
//!
//! # async fn run() -> databricks_client::Result<()> {
//! // DATABRICKS_HOST, DATABRICKS_CLIENT_ID, DATABRICKS_CLIENT_SECRET, DATABRICKS_WAREHOUSE_ID
//! let config = Config::from_env()?;
//! let client = DatabricksClient::new(config)?;
//!
//! println!("{}", client.ping().await);
//!
//! let result = client
//!     .execute(
//!         &Statement::new("SELECT id, amount FROM main.finance.vouchers WHERE amount > :min")
//!             .param("min", &Value::Decimal("100.00".parse().unwrap()))
//!             .idempotent(true),
//!     )
//!     .await?;
//! for row in result.collect_rows().await? {
//!     println!("{row:?}");
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Loading rows with the sink:
//!
//! ```no_run
//! use databricks_client::{Config, DatabricksClient, DatabricksSink};
//! use secrecy::SecretString;
//! use sync_core::{Batch, ColumnDef, ColumnType, Sink, TableSchema, Value, Window, WriteMode};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::builder()
//!     .host("dbc-1234abcd-5678.cloud.databricks.com")
//!     .client_credentials("my-sp-client-id", SecretString::from("…".to_string()))
//!     .warehouse_id("abcdef0123456789")
//!     .catalog("main")
//!     .schema("erp")
//!     .build()?;
//! let sink = DatabricksSink::from_config_defaults(DatabricksClient::new(config)?)?;
//! let schema = TableSchema {
//!     name: "vendors".into(),
//!     columns: vec![
//!         ColumnDef::new("vendor_id", ColumnType::String).not_null(),
//!         ColumnDef::new("balance", ColumnType::Decimal { precision: 18, scale: 2 }),
//!         ColumnDef::new("updated_at", ColumnType::Timestamp),
//!     ],
//!     primary_key: vec!["vendor_id".into()],
//!     cursor_column: Some("updated_at".into()),
//!     write_mode: WriteMode::Upsert,
//!     effective_dating: None,
//! };
//! sink.prepare(&schema).await?;
//! let now = chrono::Utc::now();
//! let batch = Batch {
//!     rows: vec![vec![
//!         Value::String("V001".into()),
//!         Value::Decimal("1234.50".parse()?),
//!         Value::Timestamp(now),
//!     ]],
//!     window: Window::new(now - chrono::Duration::hours(1), now),
//!     run_id: "run-1".into(),
//!     stream: "vendors".into(),
//!     as_of: None,
//! };
//! let receipt = sink.write(&schema, &batch).await?;
//! println!("statements {:?}", receipt.statement_ids);
//! # Ok(())
//! # }
//! ```
//!
//! ## Main types
//!
//! - [`Config`], [`ConfigBuilder`], [`Credentials`], [`ClientOptions`]
//! - [`DatabricksClient`]: every API call
//! - [`Statement`], [`StatementResult`], [`DmlCounts`]
//! - [`TableName`], [`sql`] helpers
//! - [`DatabricksSink`], [`DatabricksSource`]
//! - [`DatabricksCheckpointStore`], [`DatabricksAuditLog`]: engine state and audit in Delta tables
//! - [`Error`] and [`Result`]

#![warn(missing_docs, unreachable_pub)]

pub mod auth;
pub mod bulk;
pub mod catalog;
pub mod client;
pub mod config;
pub mod error;
pub mod files;
pub mod jobs;
pub mod ping;
pub mod sink;
pub mod source;
pub mod sql;
pub mod statement;
pub mod store;

pub use bulk::{BulkCompression, BulkOptions};
pub use catalog::{ColumnInfo, EnsureReport, TableInfo};
pub use client::DatabricksClient;
pub use config::{ClientOptions, Config, ConfigBuilder, ConfigError, Credentials};
pub use error::{ApiError, Error, Result};
pub use files::DirectoryEntry;
pub use jobs::{JobRun, JobTrigger, RunNow};
pub use ping::{Check, PingReport};
pub use sink::{DatabricksSink, StagingCheck};
pub use source::DatabricksSource;
pub use sql::{SqlError, TableName, VolumeName};
pub use statement::{DmlCounts, Parameter, Statement, StatementResult, StatementState};
pub use store::{DatabricksAuditLog, DatabricksCheckpointStore};

/// Compiles the README example as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
