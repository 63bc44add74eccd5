//! Conversion of PeopleSoft-style source values into typed [`Value`](crate::Value)s.
