//! # peoplesoft-client
//!
//! A typed client for Oracle PeopleSoft's Integration Broker REST listener, and
//! [`PeopleSoftSource`], the adapter that lets sync-core's incremental engine pull PeopleSoft
//! finance and HR data window by window.
//!
//! PeopleSoft is self-hosted and shared with the business, so this crate is careful by
//! default: one request at a time per host, a pause between requests, timeouts, bounded
//! retries, optional blackout windows, and **no retry at all on 401/403** (repeated failed
//! logins can lock the PeopleSoft account): the first rejection latches the client and every
//! clone of it ([`AuthLatch`]), so no stream sends those credentials again.
//!
//! ## How data is read
//!
//! Data comes from PeopleSoft Queries run through Query Access Services (QAS):
//!
//! ```text
//! GET https://{host}:{port}[/{prefix}]/PSIGW/RESTListeningConnector/{NODE}/
//!     ExecuteQuery.v1/PUBLIC/{QUERY}/JSON/NONFILE
//!     ?isconnectedquery=N&maxrows=50000
//!     &prompt_uniquepromptname=FROM_DTTM,TO_DTTM&prompt_fieldvalue=v1,v2&json_resp=true
//! ```
//!
//! Each sync window becomes the two date-range prompts; the answer's rows become one page. If
//! the answer has `maxrows` rows the page is reported as truncated and the engine splits the
//! window. Errors that PeopleSoft sends with HTTP 200 (an `IBResponse type="error"` XML
//! document, an HTML gateway page, a `status` other than `success`, a cut-off body) are typed
//! [`Error`]s that keep the first 2 KiB of the body.
//!
//! ## Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use peoplesoft_client::{
//!     Connection, Credentials, PeopleSoftClient, PeopleSoftSource, PingCheck, QueryName,
//!     QueryOwner, StreamDefinition,
//! };
//! use secrecy::SecretString;
//! use sync_core::{Source, Window};
//! use futures::TryStreamExt;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let conn = Connection::builder("erp.example.com", 443, "PSFT_EP").build()?;
//! let creds = Credentials::basic("MLC_READER", SecretString::from(std::env::var("PS_PASSWORD")?));
//! let client = PeopleSoftClient::builder(conn, creds).build()?;
//!
//! // Is the host reachable, the node right, and are the credentials accepted?
//! let report = client
//!     .ping(&PingCheck::QueryPrompts(QueryOwner::Public, QueryName::new("MLC_VENDORS")?))
//!     .await;
//! println!("{report}");
//!
//! // One stream, one window.
//! let vendors = StreamDefinition::vendors().time_zone("America/Chicago")?;
//! let source = PeopleSoftSource::new(client, vendors)?;
//! let window = Window::new("2026-01-01T00:00:00Z".parse()?, "2026-01-02T00:00:00Z".parse()?);
//! let pages: Vec<_> = source.read(window).try_collect().await?;
//! println!("{} rows, truncated: {}", pages[0].records.len(), pages[0].truncated);
//! # Ok(()) }
//! ```
//!
//! ## Main types
//!
//! - [`Connection`] (with [`NodeName`], [`Scheme`], [`Timeouts`]): where PeopleSoft is;
//!   every part validated, errors name the field.
//! - [`Credentials`] — HTTP Basic (OPRID + password, every PeopleTools version), a static
//!   bearer token, or [`OAuth2ClientCredentials`] (8.58+; IDCS / OCI IAM, Azure AD, Okta),
//!   the latter cached and refreshed through sync-core's `TokenCache`.
//! - [`PeopleSoftClient`] — [`execute_query`](PeopleSoftClient::execute_query),
//!   [`query_prompts`](PeopleSoftClient::query_prompts), generic
//!   [`service_get`](PeopleSoftClient::service_get) /
//!   [`service_post`](PeopleSoftClient::service_post) for a site's own REST services,
//!   [`service_request`](PeopleSoftClient::service_request) (any method, any status returned
//!   as a [`ServiceResponse`]), and [`ping`](PeopleSoftClient::ping).
//! - [`LoadProtection`] and [`BlackoutWindow`]: per-host limits and quiet hours.
//! - [`StreamDefinition`] — query, prompts, keys, cursor and Databricks mapping for one stream,
//!   with a default per domain; [`PeopleSoftSource`] runs it and
//!   [`StreamDefinition::mapper`] compiles its mapping.
//! - [`values`] — PeopleSoft's value formats (native datetimes, `Y`/`N`, single-space blanks,
//!   `A.` alias prefixes) as a sync-core `FieldFormat`, and mappings derived from field metadata.
//! - [`records`] — typed rows (`Vendor`, `Customer`, `PurchaseOrder`, `PurchaseOrderLine`,
//!   `JournalHeader`, `JournalLine`, `JobRow`, `Paycheck`).
//!
//! ## What is documented and what is inferred
//!
//! The URL shape, QAS operation names and the `IBResponse` error document are from Oracle's
//! documentation or consistent practitioner code. Several details are **inferences**, and
//! each is a setting rather than a hard-coded assumption:
//!
//! - the JSON result type `JSON` and the `{"status","data":{"query":{"rows"}}}` shape
//!   (observed, not documented);
//! - the format of date/datetime prompt values ([`PromptFormat`]) and whether the query
//!   compares half-open or with BETWEEN ([`RangeSemantics`]);
//! - the time zone PeopleSoft stores datetimes in
//!   ([`StreamDefinition::source_time_zone`]);
//! - that `maxrows=0` means "profile limit" (so `maxrows` must be > 0 here, default 50,000);
//! - that a prompt value cannot contain a comma (rejected, since QAS has no documented escape);
//! - OAuth2 details: scope, audience and how the client authenticates to the token
//!   endpoint ([`ClientAuthMethod`]);
//! - record field lists of the five domains (every non-key field is optional, unknown fields
//!   are kept) and the default query names, prompts and cursor fields.

#![warn(missing_docs, unreachable_pub)]

mod auth;
mod client;
mod config;
mod error;
mod latch;
mod protection;
pub mod qas;
pub mod records;
mod source;
pub mod streams;
pub mod values;
pub mod writeback;

pub use auth::{ClientAuthMethod, Credentials, OAuth2ClientCredentials};
pub use client::{
    LatchCallback, PeopleSoftClient, PeopleSoftClientBuilder, PingCheck, PingReport,
    ServiceOperation, ServiceResponse,
};
pub use config::{Connection, ConnectionBuilder, NodeName, QueryName, Scheme, Timeouts};
pub use error::{truncate_body, ConfigError, Error, Result, RAW_BODY_LIMIT};
pub use latch::{random_key, AuthLatch, AuthRejection, CredentialFingerprint};
pub use protection::{BlackoutAction, BlackoutWindow, LoadProtection};
pub use qas::{ExecuteQuery, PromptInfo, QueryOwner, QueryResult, DEFAULT_MAX_ROWS};
pub use source::{flag_current_rows, PeopleSoftSource};
pub use streams::{
    AliasPrefixes, EffectiveDatedRows, EffectiveDating, PromptFormat, RangeSemantics,
    StreamDefinition,
};
pub use writeback::PeopleSoftSink;

/// Re-exported so callers can name [`Idempotency`] for
/// [`PeopleSoftClient::service_post`] without depending on sync-core's module layout.
pub use sync_core::http::Idempotency;

/// Re-exported so callers can name the method of [`PeopleSoftClient::service_request`]
/// without depending on an HTTP crate themselves (the `http` crate's type, which reqwest uses).
pub use http::Method;

/// The README's example, compiled as a doctest so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
