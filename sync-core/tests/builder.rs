//! The pipeline builder's conveniences: owned or shared connectors, and `state_dir`.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{Duration, TimeZone, Utc};
use sync_core::engine::{Pipeline, StreamConfig, WindowPolicy};
use sync_core::memory::{MemorySink, MemorySource};
use sync_core::{Batch, ConnectorError, ManualClock, Mapping, Receipt, Sink, TableSchema};

fn mapping() -> Mapping {
    serde_json::from_value(serde_json::json!({
        "table": "t", "primary_key": ["id"], "cursor_column": "ts",
        "columns": [
            {"column": "id", "source": "ID", "type": "STRING", "nullable": false},
            {"column": "note", "source": "NOTE", "type": "STRING"},
            {"column": "ts", "source": "TS", "type": "TIMESTAMP"}
        ]
    }))
    .unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn state_dir_keeps_checkpoints_audit_and_rejects_in_one_directory() {
    let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let source = MemorySource::new("s");
    let ok = serde_json::json!({"ID": "a", "NOTE": "n", "TS": (start + Duration::hours(1)).to_rfc3339()});
    let bad = serde_json::json!({"ID": null, "NOTE": "n", "TS": (start + Duration::hours(2)).to_rfc3339()});
    source.push(
        start + Duration::hours(1),
        ok.as_object().unwrap().clone().into(),
    );
    source.push(
        start + Duration::hours(2),
        bad.as_object().unwrap().clone().into(),
    );
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let sink = Arc::new(MemorySink::new());
    // Owned source and mapper, shared sink.
    let pipeline = Pipeline::builder("p", sink.clone())
        .stream(
            StreamConfig::new(
                "s",
                source,
                mapping().compile().unwrap(),
                WindowPolicy::starting_at(start),
            )
            .on_reject(sync_core::engine::RejectPolicy::Quarantine),
        )
        .state_dir(&state)
        .clock(Arc::new(ManualClock::new(start + Duration::hours(12))))
        .build()
        .unwrap();
    let report = pipeline.run_cycle().await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(sink.len("t"), 1);
    for file in ["p.state.json", "audit.jsonl", "rejects.jsonl"] {
        assert!(state.join(file).is_file(), "{file} missing");
    }
    let status = pipeline.status().await.unwrap();
    assert_eq!(status[0].committed.len(), 1);
}

#[test]
fn state_dir_errors_surface_at_build() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let err = Pipeline::builder("p", MemorySink::new())
        .state_dir(&file)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("not-a-dir"), "{err}");
}

/// A sink that overrides a defaulted method.
struct Flagging;

#[async_trait]
impl Sink for Flagging {
    async fn prepare(&self, _: &TableSchema) -> Result<(), ConnectorError> {
        Ok(())
    }
    async fn write(&self, _: &TableSchema, _: &Batch) -> Result<Receipt, ConnectorError> {
        Ok(Receipt::default())
    }
    fn maintains_current_flags(&self) -> bool {
        true
    }
}

#[test]
fn an_arc_forwards_every_method_including_overridden_defaults() {
    let shared: Arc<dyn Sink> = Arc::new(Flagging);
    assert!(shared.maintains_current_flags());
    let twice = Arc::new(shared);
    assert!(Sink::maintains_current_flags(&twice));
}
