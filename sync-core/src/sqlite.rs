//! Local SQLite destination (feature `sqlite`).
