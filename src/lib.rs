//! Shared support for the examples and end-to-end tests of ml-connector (not published):
//! the `pipeline.toml` configuration of the `sync` example and the sample site's stream
//! definitions.

pub mod auth_latch;
pub mod build;
pub mod config;
pub mod destinations;
pub mod ops;
pub mod sample;
