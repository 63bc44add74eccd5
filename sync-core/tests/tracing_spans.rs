//! The engine's spans: `RUST_LOG=warn,ml_connector=info` shows each window's events inside
//! `pipeline{run_id, pipeline}:stream{stream}:window{window, attempt}`.

use std::io::Write;
use std::sync::{Arc, Mutex};

use chrono::{Duration, TimeZone, Utc};
use sync_core::audit::{MemoryAuditLog, MemoryRejectStore};
use sync_core::engine::{Pipeline, StreamConfig, WindowPolicy};
use sync_core::memory::{MemorySink, MemorySource};
use sync_core::state::MemoryCheckpointStore;
use sync_core::{ManualClock, Mapping};

/// A log destination shared with the test.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn window_events_carry_pipeline_stream_and_window() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn,ml_connector=info"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let source = MemorySource::new("journal");
    let record = serde_json::json!({"ID": "JE001", "DTTM": "2026-01-01T09:30:00Z"});
    source.push(
        start + Duration::hours(9),
        record.as_object().unwrap().clone().into(),
    );
    let mapping: Mapping = serde_json::from_value(serde_json::json!({
        "table": "journal", "primary_key": ["id"], "cursor_column": "updated_at",
        "columns": [
            {"column": "id", "source": "ID", "type": "STRING", "nullable": false},
            {"column": "updated_at", "source": "DTTM", "type": "TIMESTAMP"}
        ]
    }))
    .unwrap();
    let pipeline = Pipeline::builder("finance", MemorySink::new())
        .stream(StreamConfig::new(
            "journal",
            source,
            mapping.compile().unwrap(),
            WindowPolicy::starting_at(start),
        ))
        .checkpoints(Arc::new(MemoryCheckpointStore::new()))
        .audit(Arc::new(MemoryAuditLog::new()))
        .rejects(Arc::new(MemoryRejectStore::new()))
        .clock(Arc::new(ManualClock::new(start + Duration::hours(12))))
        .build()
        .unwrap();
    let report = pipeline.run_cycle().await.unwrap();
    assert!(report.is_clean());

    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let committed = logs
        .lines()
        .find(|l| l.contains("window committed"))
        .unwrap_or_else(|| panic!("no committed window in:\n{logs}"));
    let run_id = &report.run_id;
    assert!(
        committed.contains(&format!(
            "pipeline{{run_id={run_id} pipeline=finance}}:stream{{stream=journal}}:window{{window=[2026-01-01T00:00:00Z, 2026-01-01T11:55:00Z) attempt=1}}"
        )),
        "{committed}"
    );
    assert!(
        committed.contains("rows_read=1 rows_written=1"),
        "{committed}"
    );
    let finished = logs
        .lines()
        .find(|l| l.contains("stream finished"))
        .unwrap_or_else(|| panic!("no finished stream in:\n{logs}"));
    assert!(
        finished.contains("pipeline{") && finished.contains(":stream{stream=journal}: "),
        "{finished}"
    );
}
