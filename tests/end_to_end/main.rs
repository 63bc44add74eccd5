//! The end-to-end tests: the real clients and engine, and the `ml-connector` command as a
//! child process, against the PeopleSoft and Databricks stand-ins on 127.0.0.1. One test
//! binary (modules below) so the workspace links one executable here instead of ten.

mod common;

mod baselines_store;
mod bulk_cli;
mod capture;
mod cli_safety;
mod crash;
mod e2e_databricks;
mod e2e_sqlite;
mod fleet;
mod operational_safety;
mod reconcile;
mod reverse_cli;
mod reverse_sync;
mod secrets;
mod sync_cli;
