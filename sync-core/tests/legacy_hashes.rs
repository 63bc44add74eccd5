//! Targets loaded before the row hash became XXH3 keep verifying clean: `verify` accepts the
//! older form of `_ml_row_hash`.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{Duration, NaiveDate, TimeZone, Utc};
use sync_core::audit::{MemoryAuditLog, MemoryRejectStore};
use sync_core::engine::{Pipeline, StreamConfig, VerifyOptions, WindowPolicy};
use sync_core::memory::{MemorySink, MemorySource};
use sync_core::schema::ROW_HASH_COLUMN;
use sync_core::state::MemoryCheckpointStore;
use sync_core::{
    Batch, ConnectorError, DeletePolicy, KeyedHash, ManualClock, Mapping, Receipt, Sink,
    TableSchema, Value, Window,
};

/// The row hash as versions before XXH3 wrote it (two FNV-1a lanes over the canonical text).
fn old_hash(row: &[Value]) -> String {
    let mut text = String::new();
    for v in row {
        v.write_canonical(&mut text);
    }
    let (mut a, mut b) = (0xcbf2_9ce4_8422_2325u64, 0x6c62_272e_07bb_0142u64);
    for &byte in text.as_bytes() {
        a = (a ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        b = (b ^ u64::from(byte))
            .wrapping_mul(0x0000_0100_0000_01b3)
            .rotate_left(5);
    }
    format!("{a:016x}{b:016x}")
}

/// A memory sink that stores rows as the previous release did: with the old row hash.
#[derive(Clone, Default)]
struct OldRelease(MemorySink);

#[async_trait]
impl Sink for OldRelease {
    async fn prepare(&self, schema: &TableSchema) -> Result<(), ConnectorError> {
        self.0.prepare(schema).await
    }
    async fn write(&self, schema: &TableSchema, batch: &Batch) -> Result<Receipt, ConnectorError> {
        let at = schema.index_of(ROW_HASH_COLUMN).unwrap();
        let mut old = batch.clone();
        for row in &mut old.rows {
            row[at] = Value::String(old_hash(&row[..at]));
        }
        self.0.write(schema, &old).await
    }
    async fn row_hashes(
        &self,
        schema: &TableSchema,
        window: Option<Window>,
    ) -> Result<Option<Vec<KeyedHash>>, ConnectorError> {
        self.0.row_hashes(schema, window).await
    }
    async fn delete(
        &self,
        schema: &TableSchema,
        keys: &[Vec<Value>],
        policy: DeletePolicy,
        deleted_at: chrono::DateTime<Utc>,
    ) -> Result<u64, ConnectorError> {
        self.0.delete(schema, keys, policy, deleted_at).await
    }
    async fn refresh_current(
        &self,
        schema: &TableSchema,
        as_of: NaiveDate,
    ) -> Result<Receipt, ConnectorError> {
        self.0.refresh_current(schema, as_of).await
    }
}

async fn verify_after_old_load(keyed: bool) {
    let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let source = Arc::new(MemorySource::new("s"));
    for (i, id) in ["a", "b", "c"].iter().enumerate() {
        let at = start + Duration::hours(i as i64 + 1);
        let r = serde_json::json!({"ID": id, "NOTE": "n", "TS": at.to_rfc3339()});
        source.push(at, r.as_object().unwrap().clone().into());
    }
    let mut mapping = serde_json::json!({
        "table": "t", "cursor_column": "ts",
        "columns": [
            {"column": "id", "source": "ID", "type": "STRING", "nullable": false},
            {"column": "note", "source": "NOTE", "type": "STRING"},
            {"column": "ts", "source": "TS", "type": "TIMESTAMP"}
        ]
    });
    if keyed {
        mapping["primary_key"] = serde_json::json!(["id"]);
    } else {
        mapping["write_mode"] = serde_json::json!("append");
    }
    let mapping: Mapping = serde_json::from_value(mapping).unwrap();
    let policy = WindowPolicy::starting_at(start).lookback(Duration::zero());
    let sink = OldRelease::default();
    let pipeline = Pipeline::builder("p", sink.clone())
        .stream(StreamConfig::new(
            "s",
            source,
            mapping.compile().unwrap(),
            policy,
        ))
        .checkpoints(Arc::new(MemoryCheckpointStore::new()))
        .audit(Arc::new(MemoryAuditLog::new()))
        .rejects(Arc::new(MemoryRejectStore::new()))
        .clock(Arc::new(ManualClock::new(start + Duration::hours(12))))
        .build()
        .unwrap();
    assert!(pipeline.run_cycle().await.unwrap().is_clean());

    let v = pipeline
        .verify_with(&VerifyOptions::new().requeue(true).apply_deletes(true))
        .await
        .unwrap();
    let v = &v[0];
    assert_eq!(v.differing().count(), 0, "{v:?}");
    assert_eq!(v.deletes_found, 0, "{v:?}");
    assert_eq!(sink.0.len("t"), 3);
}

#[tokio::test(flavor = "current_thread")]
async fn rows_stored_with_the_old_hash_are_not_changed() {
    verify_after_old_load(true).await;
}

#[tokio::test(flavor = "current_thread")]
async fn rows_keyed_by_the_old_hash_are_neither_missing_nor_deleted() {
    verify_after_old_load(false).await;
}
