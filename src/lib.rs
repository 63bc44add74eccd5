//! # ml-connector
//!
//! The `ml-connector` command: incremental, resumable sync of Oracle PeopleSoft finance and HR
//! data into Databricks Delta tables (or a local SQLite file), described by one
//! `pipeline.toml`. Install it with `cargo install ml-connector` (or `cargo install --path .`
//! from a checkout) and run `ml-connector --help`.
//!
//! This library half holds what the command is made of, so the end-to-end tests can drive
//! the same code: [`config`] (the typed `pipeline.toml`), [`build`] (clients, sources, sink,
//! stores and the pipeline from a [`config::Config`]), [`ops`] (fail-fast checks and the
//! credential latch), and [`cli`] (the commands). To build a connector of your own, depend on
//! the three library crates instead: `sync-core`, `peoplesoft-client`, `databricks-client`.
//!
//! ```
//! let config = ml_connector::config::parse(
//!     r#"
//! [pipeline]
//! name = "finance"
//!
//! [peoplesoft]
//! host = "erp.example.com"
//! node = "PSFT_EP"
//! user = "ML_CONNECTOR"
//! password_env = "PEOPLESOFT_PASSWORD"
//!
//! [destination]
//! kind = "sqlite"
//! path = "warehouse.db"
//!
//! [[streams]]
//! name = "journal_lines"
//! domain = "journal_lines"
//! "#,
//! )
//! .expect("valid");
//! assert_eq!(config.pipeline.name, "finance");
//! assert_eq!(config.streams.len(), 1);
//! ```

pub mod auth_latch;
pub mod baselines;
pub mod build;
pub mod cli;
pub mod config;
pub mod ops;

/// The README's library example, compiled as a doctest so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
