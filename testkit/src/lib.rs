//! # ml-connector-testkit
//!
//! In-process stand-ins and a deterministic sample dataset shared by the ml-connector
//! end-to-end tests, the `quickstart` example and the benchmarks. Not published.
//!
//! - [`dataset`]: **Northwind Forge**, a mid-sized diversified manufacturer (head office and
//!   three plants, business units `US001`, `US002`, `US003`, `CAN01`, SETID `SHARE`) with six
//!   PeopleSoft tables: vendors, customers, PO lines, journal lines, job rows and paychecks,
//!   generated from a seed ([`Dataset::manufacturer`]), with mutation helpers (update, insert,
//!   late-committed rows) and an index-addressable generator of millions of journal lines
//!   ([`JournalLines`]).
//! - [`peoplesoft`]: [`PeopleSoftServer`], an HTTP server on `127.0.0.1` that serves the dataset
//!   over the PeopleSoft Query Access Services (QAS) REST URL grammar and JSON shape, with
//!   Basic/bearer authentication, IBResponse errors, fault injection, latency and counters.
//! - [`sitetime`]: the site time zone ([`SITE_TIME_ZONE`], America/Chicago), PeopleSoft's native
//!   datetime text and prompt-value parsing.
//!
//! ```
//! use chrono::Duration;
//! use ml_connector_testkit::{Dataset, PeopleSoftServer, QUERY_VENDORS, TABLE_VENDORS};
//!
//! // 1/10 of the default size; the same seed always gives the same bytes.
//! let server = PeopleSoftServer::start(Dataset::manufacturer(42, 0.1));
//! let url = server.execute_query_url(
//!     QUERY_VENDORS,
//!     "2025-01-01-00.00.00.000000",
//!     "2025-07-01-00.00.00.000000",
//!     1000,
//! );
//! assert!(url.contains("prompt_uniquepromptname=FROM_DTTM,TO_DTTM"));
//!
//! // Change the data between two sync cycles.
//! let now = Dataset::history_end() + Duration::hours(1);
//! let dataset = server.dataset();
//! let updated = dataset.write().update_rows(TABLE_VENDORS, 3, now);
//! let late = dataset
//!     .write()
//!     .insert_late_rows(TABLE_VENDORS, 1, now - Duration::minutes(30));
//! assert_eq!(updated.len(), 3);
//! assert_eq!(late.len(), 1);
//! ```

pub mod cirt;
pub mod databricks;
pub mod dataset;
pub mod peoplesoft;
pub mod sample;
pub mod site;
pub mod sitetime;

pub use dataset::{
    Dataset, FieldSpec, FieldType, JournalLines, JsonRepr, Row, SharedDataset, Table, TableSpec,
    BUSINESS_UNITS, QUERY_CUSTOMERS, QUERY_JOB, QUERY_JOURNAL_LINES, QUERY_PAYCHECKS,
    QUERY_PO_LINES, QUERY_VENDORS, SETID, TABLES, TABLE_CUSTOMERS, TABLE_JOB, TABLE_JOURNAL_LINES,
    TABLE_PAYCHECKS, TABLE_PO_LINES, TABLE_VENDORS,
};
pub use peoplesoft::{
    Fault, FaultRule, PeopleSoftServer, QueryPrompts, ServerConfig, Stats, WindowRequest,
    DEFAULT_BEARER_TOKEN, DEFAULT_NODE, DEFAULT_OPRID, DEFAULT_PASSWORD, PROMPT_FROM, PROMPT_TO,
    REST_PATH,
};
pub use sitetime::{SITE_TIME_ZONE, SITE_TIME_ZONE_NAME};
