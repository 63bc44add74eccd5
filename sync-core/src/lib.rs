//! # sync-core
//!
//! The system-neutral half of ml-connector: the [`Source`], [`Sink`] and [`Mapper`] traits, a
//! resumable incremental engine, checkpoint state, audit, declarative mapping with exact value
//! conversion, schedules, and (feature `http`) the small HTTP plumbing both clients share.
//! Nothing here knows about PeopleSoft or Databricks: a connector plugs its source's value
//! formats into the mapping through [`FieldFormat`].
//!
//! ```
//! use std::sync::Arc;
//! use chrono::{Duration, TimeZone, Utc};
//! use sync_core::audit::{MemoryAuditLog, MemoryRejectStore};
//! use sync_core::engine::{Pipeline, StreamConfig, WindowPolicy};
//! use sync_core::memory::{MemorySink, MemorySource};
//! use sync_core::state::MemoryCheckpointStore;
//! use sync_core::{ManualClock, Mapping};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A source: records with a cursor (here in memory; PeopleSoftSource in practice).
//! let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
//! let source = MemorySource::new("journal");
//! let record = serde_json::json!({"journal_id": "JE001", "amount": "1234567.89", "updated": "2026-01-01T09:30:00Z"});
//! source.push(start + Duration::hours(9), record.try_into().unwrap());
//!
//! // A mapping is data: source field -> typed column. Money stays exact.
//! let mapping: Mapping = serde_json::from_value(serde_json::json!({
//!     "table": "journal_lines", "primary_key": ["journal_id"], "cursor_column": "updated_at",
//!     "columns": [
//!         {"column": "journal_id", "source": "journal_id", "type": "STRING", "nullable": false},
//!         {"column": "amount", "source": "amount", "type": "DECIMAL(18,2)"},
//!         {"column": "updated_at", "source": "updated", "type": "TIMESTAMP"}
//!     ]
//! }))?;
//!
//! // Sources, mappers and sinks are passed by value or as `Arc`s shared with the caller.
//! let sink = Arc::new(MemorySink::new()); // DatabricksSink or SqliteSink in practice
//! let pipeline = Pipeline::builder("finance", sink.clone())
//!     .stream(StreamConfig::new("journal", source, mapping.compile()?, WindowPolicy::starting_at(start)))
//!     .checkpoints(Arc::new(MemoryCheckpointStore::new()))
//!     .audit(Arc::new(MemoryAuditLog::new()))
//!     .rejects(Arc::new(MemoryRejectStore::new()))
//!     .clock(Arc::new(ManualClock::new(start + Duration::days(1))))
//!     .build()?;
//!
//! let report = pipeline.run_cycle().await?;
//! assert!(report.is_clean());
//! assert_eq!(sink.len("journal_lines"), 1);
//! # Ok(())
//! # }
//! ```
//!
//! ## Main pieces
//! - [`engine`]: [`Pipeline`](engine::Pipeline), windows, truncation bisection, checkpoint
//!   after commit, replay, stuck windows, graceful stop, `verify`, tracing spans
//!   (`RUST_LOG=warn,ml_connector=info`).
//! - [`state`]: committed intervals and failed-window queue; memory and file stores.
//! - [`fs`]: the one atomic file writer the stores share.
//! - [`audit`]: one entry per window attempt; reject store.
//! - [`mapping`] and [`convert`]: declarative mapping, standard value forms, exact decimals, and
//!   the [`FieldFormat`] extension point for a source's own value and field-name habits.
//! - [`schedule`]: interval / daily / weekly schedules in a named time zone, non-overlapping runner.
//! - `http` (feature `http`): retry policy, token cache, request limiter, auth providers and
//!   the OAuth client-credentials fetcher, shared by the HTTP connector crates.
//! - `sqlite` (feature `sqlite`): a local SQLite destination.

#![warn(missing_docs, unreachable_pub)]

pub mod audit;
pub mod clock;
pub mod convert;
pub mod engine;
pub mod error;
pub mod fs;
#[cfg(feature = "http")]
pub mod http;
pub mod mapper;
pub mod mapping;
pub mod memory;
pub mod record;
pub mod schedule;
pub mod schema;
pub mod sink;
pub mod source;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod state;
pub mod value;
pub mod window;

pub use clock::{Clock, ManualClock, SystemClock, TokioClock};
pub use convert::{FieldFormat, StandardFormat};
pub use error::{BoxError, ConnectorError, Error, FailureKind, Result};
pub use mapper::{FieldError, Mapper};
pub use mapping::{Mapping, MappingError, MappingMapper};
pub use record::{FieldNames, Record};
pub use schema::{ColumnDef, EffectiveDated, TableSchema, WriteMode};
pub use sink::{Batch, DeletePolicy, KeyedHash, Receipt, Sink};
pub use source::{Page, PageStream, Source, SourceCapabilities};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteSink;
pub use value::{ColumnType, Row, Value};
pub use window::{Coverage, Window};

/// The README's example, compiled as a doctest so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
