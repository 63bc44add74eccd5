//! One batch's rows, reduced to one row per key.

use std::collections::HashMap;

use xxhash_rust::xxh3::Xxh3DefaultBuilder;

use super::config::DuplicatePolicy;
use super::run::StreamRun;
use super::TARGET;
use crate::value::{Row, Value};

/// Collects rows of a batch, reducing rows with the same key to the one with the highest
/// cursor (a MERGE fails on duplicate source keys).
///
/// Keys are looked up by the 64-bit XXH3 hash of their canonical form, so a row costs no key
/// allocation; a hash hit is confirmed by comparing canonical forms, and the rare distinct keys
/// whose hash is already taken are kept by full key in `collided`.
pub(super) struct BatchBuilder<'a> {
    run: &'a StreamRun<'a>,
    rows: Vec<Row>,
    /// Per row: set aside as an ambiguous duplicate.
    ambiguous: Vec<bool>,
    /// Rows set aside as ambiguous duplicates since the last `take`.
    duplicates: Vec<Row>,
    by_hash: HashMap<u64, usize, BuildPassThrough>,
    collided: HashMap<String, usize, Xxh3DefaultBuilder>,
    key: String,
    other: String,
}

/// Hasher for keys that already are hashes.
#[derive(Default, Clone, Copy)]
struct BuildPassThrough;

struct PassThrough(u64);

impl std::hash::BuildHasher for BuildPassThrough {
    type Hasher = PassThrough;
    fn build_hasher(&self) -> PassThrough {
        PassThrough(0)
    }
}

impl std::hash::Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

#[cfg(test)]
thread_local! {
    /// Makes every key hash alike, to exercise the collision path.
    static COLLIDE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// XXH3-64 of a key's canonical form: keys are short and not attacker-chosen in a way that
/// matters (a collision only costs a comparison), so SipHash's cost buys nothing here.
fn key_hash(bytes: &[u8]) -> u64 {
    #[cfg(test)]
    if COLLIDE.with(std::cell::Cell::get) {
        return 7;
    }
    xxhash_rust::xxh3::xxh3_64(bytes)
}

impl<'a> BatchBuilder<'a> {
    pub(super) fn new(run: &'a StreamRun<'a>) -> Self {
        Self {
            run,
            rows: Vec::with_capacity(run.cfg.batch_size.min(65_536)),
            ambiguous: Vec::new(),
            duplicates: Vec::new(),
            by_hash: HashMap::with_capacity_and_hasher(
                run.cfg.batch_size.min(65_536),
                BuildPassThrough,
            ),
            collided: HashMap::with_hasher(Xxh3DefaultBuilder),
            key: String::new(),
            other: String::new(),
        }
    }

    /// The index of the row with the key in `self.key`, if there is one; otherwise records
    /// that the key will be at `self.rows.len()`.
    fn find_or_reserve(&mut self) -> Option<usize> {
        let hash = key_hash(self.key.as_bytes());
        let Some(&at) = self.by_hash.get(&hash) else {
            self.by_hash.insert(hash, self.rows.len());
            return None;
        };
        self.other.clear();
        for &i in &self.run.key_indexes {
            self.rows[at][i].write_canonical(&mut self.other);
        }
        if self.other == self.key {
            return Some(at);
        }
        if let Some(&at) = self.collided.get(self.key.as_str()) {
            return Some(at);
        }
        self.collided.insert(self.key.clone(), self.rows.len());
        None
    }

    /// Adds a row; returns a full batch (and the ambiguous duplicates set aside from it)
    /// when `batch_size` is reached.
    pub(super) fn push(&mut self, row: Row) -> Option<(Vec<Row>, Vec<Row>)> {
        self.key.clear();
        for &i in &self.run.key_indexes {
            row[i].write_canonical(&mut self.key);
        }
        match self.find_or_reserve() {
            Some(at) => {
                let order = match self.run.cursor_index {
                    Some(c) => cursor_cmp(&row[c], &self.rows[at][c]),
                    None => std::cmp::Ordering::Equal,
                };
                match order {
                    std::cmp::Ordering::Greater => {
                        self.rows[at] = row;
                        if let Some(a) = self.ambiguous.get_mut(at) {
                            *a = false;
                        }
                    }
                    std::cmp::Ordering::Less => {}
                    std::cmp::Ordering::Equal => {
                        if row != self.rows[at] && self.run.cursor_index.is_some() {
                            self.ambiguous_duplicate(at, row);
                        } else {
                            self.rows[at] = row;
                        }
                    }
                }
            }
            None => self.rows.push(row),
        }
        (self.rows.len() >= self.run.cfg.batch_size).then(|| self.take())
    }

    /// Same key, same cursor, different values: by policy, keep the last or set both aside.
    fn ambiguous_duplicate(&mut self, at: usize, row: Row) {
        let run = self.run;
        if run.cfg.on_duplicate == DuplicatePolicy::KeepLast {
            tracing::warn!(
            target: TARGET,
                           key = %self.key,
                           "two rows with the same key and cursor but different values; keeping the last (on_duplicate = keep_last)"
                       );
            self.rows[at] = row;
            return;
        }
        if self.ambiguous.len() < self.rows.len() {
            self.ambiguous.resize(self.rows.len(), false);
        }
        if !self.ambiguous[at] {
            self.ambiguous[at] = true;
            self.duplicates.push(self.rows[at].clone());
        }
        self.duplicates.push(row);
    }

    pub(super) fn take(&mut self) -> (Vec<Row>, Vec<Row>) {
        self.by_hash.clear();
        self.collided.clear();
        let cap = self.rows.capacity();
        let mut rows = std::mem::replace(&mut self.rows, Vec::with_capacity(cap));
        if self.ambiguous.iter().any(|a| *a) {
            let mut flags = std::mem::take(&mut self.ambiguous).into_iter();
            rows.retain(|_| !flags.next().unwrap_or(false));
        }
        self.ambiguous.clear();
        (rows, std::mem::take(&mut self.duplicates))
    }
}

fn cursor_cmp(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a.as_cursor(), b.as_cursor()) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Greater,
        (None, Some(_)) => std::cmp::Ordering::Less,
        (None, None) => std::cmp::Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{DateTime, Duration, TimeZone, Utc};

    use super::COLLIDE;
    use crate::engine::{Pipeline, StreamConfig, WindowPolicy};
    use crate::error::ConnectorError;
    use crate::schema::TableSchema;
    use crate::sink::{Batch, Receipt, Sink};
    use crate::value::Row;

    fn t(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::hours(h)
    }

    /// Keeps every batch as the engine handed it over.
    #[derive(Default)]
    struct Capture(std::sync::Mutex<Vec<Vec<Row>>>);

    #[async_trait::async_trait]
    impl Sink for Capture {
        async fn prepare(&self, _: &TableSchema) -> std::result::Result<(), ConnectorError> {
            Ok(())
        }
        async fn write(
            &self,
            _: &TableSchema,
            batch: &Batch,
        ) -> std::result::Result<Receipt, ConnectorError> {
            self.0.lock().unwrap().push(batch.rows.clone());
            Ok(Receipt {
                rows_written: batch.rows.len() as u64,
                ..Receipt::default()
            })
        }
    }

    async fn dedup_batch() -> Vec<(String, String)> {
        use crate::memory::MemorySource;
        let source = MemorySource::new("s");
        for (key, minute, note) in [
            ("a", 1, "a1"),
            ("b", 5, "b5"),
            ("a", 3, "a3"),
            ("c", 2, "c2"),
            ("b", 4, "b4"),
            ("a", 2, "a2"),
        ] {
            let at = t(0) + Duration::minutes(minute);
            let record = serde_json::json!({"ID": key, "NOTE": note, "TS": at.to_rfc3339()});
            source.push(at, record.as_object().unwrap().clone().into());
        }
        let mapping: crate::Mapping = serde_json::from_value(serde_json::json!({
            "table": "t", "primary_key": ["id"], "cursor_column": "ts",
            "columns": [
                {"column": "id", "source": "ID", "type": "STRING", "nullable": false},
                {"column": "note", "source": "NOTE", "type": "STRING"},
                {"column": "ts", "source": "TS", "type": "TIMESTAMP"}
            ]
        }))
        .unwrap();
        let sink = Arc::new(Capture::default());
        let pipeline = Pipeline::builder("p", sink.clone())
            .stream(StreamConfig::new(
                "s",
                Arc::new(source),
                Arc::new(mapping.compile().unwrap()),
                WindowPolicy::starting_at(t(0)),
            ))
            .checkpoints(Arc::new(crate::state::MemoryCheckpointStore::new()))
            .audit(Arc::new(crate::audit::MemoryAuditLog::new()))
            .rejects(Arc::new(crate::audit::MemoryRejectStore::new()))
            .clock(Arc::new(crate::ManualClock::new(t(2))))
            .build()
            .unwrap();
        assert!(pipeline.run_cycle().await.unwrap().is_clean());
        let batches = sink.0.lock().unwrap().clone();
        batches
            .into_iter()
            .flatten()
            .map(|r| (r[0].to_string(), r[1].to_string()))
            .collect()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn duplicate_keys_keep_the_newest_row_even_when_hashes_collide() {
        // The source hands rows over in cursor order: a1 a2 c2 a3 b4 b5.
        let want: Vec<(String, String)> = [("a", "a3"), ("c", "c2"), ("b", "b5")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(dedup_batch().await, want);
        COLLIDE.with(|c| c.set(true));
        let collided = dedup_batch().await;
        COLLIDE.with(|c| c.set(false));
        assert_eq!(collided, want);
    }
}
