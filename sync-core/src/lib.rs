//! # sync-core
//!
//! The system-neutral half of ml-connector: the [`Source`], [`Sink`] and [`Mapper`] traits, a
//! resumable incremental engine, checkpoint state, audit, declarative mapping with exact value
//! conversion, schedules, and the small HTTP plumbing both clients share.
//!
//! Nothing here knows about PeopleSoft or Databricks.

#![warn(missing_docs, unreachable_pub)]

pub mod audit;
pub mod clock;
pub mod convert;
pub mod engine;
pub mod error;
pub mod http;
pub mod mapper;
pub mod mapping;
pub mod memory;
pub mod schedule;
pub mod schema;
pub mod sink;
pub mod source;
pub mod state;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod value;
pub mod window;

pub use clock::{Clock, ManualClock, SystemClock, TokioClock};
pub use error::{BoxError, ConnectorError, Error, FailureKind, Result};
pub use mapper::{FieldError, Mapper};
pub use mapping::Mapping;
pub use schema::{ColumnDef, TableSchema, WriteMode};
pub use sink::{Batch, Receipt, Sink};
pub use source::{Page, PageStream, Source};
pub use value::{ColumnType, Record, Row, Value};
pub use window::{Coverage, Window};
