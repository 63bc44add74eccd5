//! Shared support for examples and end-to-end tests.
