//! Engine overhead benchmark (placeholder until the engine lands).
fn main() {}
