//! Shared support for the examples and end-to-end tests of ml-connector (not published):
//! the `pipeline.toml` configuration used by the `sync` example.

pub mod config;
