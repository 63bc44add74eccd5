//! Mapping benchmark (placeholder until the mapper lands).
fn main() {}
