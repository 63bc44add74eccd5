//! Stand-ins and sample data for ml-connector tests, examples and benchmarks.
