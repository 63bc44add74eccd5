//! Proof that a user can write a new source and a new sink in under 100 lines: a source that
//! reads `id,amount,updated` CSV text and a sink that renders rows as lines. Everything
//! between the two markers below is what a user writes (the line count is checked).

use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use sync_core::audit::{MemoryAuditLog, MemoryRejectStore};
use sync_core::engine::{Pipeline, StreamConfig, WindowPolicy};
use sync_core::state::MemoryCheckpointStore;
use sync_core::{ColumnDef, ColumnType, FieldError, Mapper, Record, Row, TableSchema, Value};

// --- user code begins ---
use async_trait::async_trait;
use sync_core::{Batch, ConnectorError, Page, PageStream, Receipt, Sink, Source, Window};

/// A source over CSV text with a header line; the cursor is the `updated` column (RFC 3339).
struct CsvSource {
    text: String,
}

#[async_trait]
impl Source for CsvSource {
    fn identity(&self) -> String {
        "csv://inline".into()
    }

    fn read(&self, window: Window) -> PageStream<'_> {
        let mut lines = self.text.lines();
        let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
        let mut records = Vec::new();
        for line in lines {
            let record: Record = header
                .iter()
                .zip(line.split(','))
                .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
                .collect();
            let cursor = record["updated"]
                .as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok());
            match cursor {
                Some(c) if window.contains(c.with_timezone(&Utc)) => records.push(record),
                Some(_) => {}
                None => {
                    let e = ConnectorError::permanent(format!("bad cursor in line `{line}`"));
                    return Box::pin(futures::stream::once(async { Err(e) }));
                }
            }
        }
        Box::pin(futures::stream::once(async {
            Ok(Page {
                records,
                truncated: false,
            })
        }))
    }
}

/// A sink that keeps one text line per key (a real one would talk to a database).
#[derive(Default, Clone)]
struct LineSink {
    lines: Arc<Mutex<std::collections::BTreeMap<String, String>>>,
}

#[async_trait]
impl Sink for LineSink {
    async fn prepare(&self, _schema: &TableSchema) -> Result<(), ConnectorError> {
        Ok(())
    }

    async fn write(&self, schema: &TableSchema, batch: &Batch) -> Result<Receipt, ConnectorError> {
        let keys = schema.key_indexes().map_err(ConnectorError::permanent)?;
        let mut lines = self.lines.lock().unwrap();
        for row in &batch.rows {
            let key: Vec<String> = keys.iter().map(|&i| row[i].to_string()).collect();
            let text: Vec<String> = row.iter().map(ToString::to_string).collect();
            lines.insert(key.join("|"), text.join(","));
        }
        Ok(Receipt {
            rows_written: batch.rows.len() as u64,
            ..Receipt::default()
        })
    }
}
// --- user code ends ---

struct CsvMapper(TableSchema);

impl Mapper for CsvMapper {
    fn schema(&self) -> &TableSchema {
        &self.0
    }
    fn map(&self, r: &Record) -> Result<Row, Vec<FieldError>> {
        let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
        let updated = DateTime::parse_from_rfc3339(&s("updated"))
            .unwrap()
            .with_timezone(&Utc);
        Ok(vec![
            Value::BigInt(s("id").parse().unwrap()),
            Value::Decimal(s("amount").parse().unwrap()),
            Value::Timestamp(updated),
        ])
    }
}

#[tokio::test]
async fn a_user_written_source_and_sink_run_through_the_engine() {
    let me = include_str!("custom_connector.rs");
    let begin = me.find("// --- user code begins").unwrap();
    let end = me.find("// --- user code ends").unwrap();
    let lines = me[begin..end].lines().count();
    assert!(lines < 100, "user code is {lines} lines");

    let source = CsvSource {
        text: "id,amount,updated\n1,10.50,2026-01-01T01:00:00Z\n2,-3.25,2026-01-01T02:00:00Z\n1,11.00,2026-01-01T03:00:00Z\n".into(),
    };
    let schema = TableSchema {
        name: "payments".into(),
        columns: vec![
            ColumnDef::new("id", ColumnType::BigInt),
            ColumnDef::new(
                "amount",
                ColumnType::Decimal {
                    precision: 18,
                    scale: 2,
                },
            ),
            ColumnDef::new("updated", ColumnType::Timestamp),
        ],
        primary_key: vec!["id".into()],
        cursor_column: Some("updated".into()),
        write_mode: Default::default(),
        effective_dating: None,
    };
    let sink = LineSink::default();
    let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let pipeline = Pipeline::builder("csv", Arc::new(sink.clone()))
        .stream(StreamConfig::new(
            "payments",
            Arc::new(source),
            Arc::new(CsvMapper(schema)),
            WindowPolicy::starting_at(start),
        ))
        .checkpoints(Arc::new(MemoryCheckpointStore::new()))
        .audit(Arc::new(MemoryAuditLog::new()))
        .rejects(Arc::new(MemoryRejectStore::new()))
        .clock(Arc::new(sync_core::ManualClock::new(
            start + chrono::Duration::days(1),
        )))
        .build()
        .unwrap();
    let report = pipeline.run_cycle().await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    let lines = sink.lines.lock().unwrap().clone();
    assert_eq!(lines.len(), 2);
    assert!(
        lines["1"].starts_with("1,11.00,2026-01-01T03:00:00"),
        "{}",
        lines["1"]
    );
    assert!(lines["2"].starts_with("2,-3.25,"), "{}", lines["2"]);
}

/// A source's own value habits plug into the declarative mapping through `FieldFormat`: here
/// flags written `yes`/`no`, everything else in the standard forms.
#[derive(Debug)]
struct YesNoFlags;

impl sync_core::FieldFormat for YesNoFlags {
    fn convert_text(
        &self,
        text: &str,
        ty: ColumnType,
        zone: &sync_core::convert::SourceTimeZone,
    ) -> Result<Value, sync_core::convert::ConvertError> {
        match (ty, text) {
            (ColumnType::Boolean, "yes") => Ok(Value::Bool(true)),
            (ColumnType::Boolean, "no") => Ok(Value::Bool(false)),
            _ => sync_core::convert::convert_str(text, ty, zone),
        }
    }
}

#[tokio::test]
async fn a_custom_field_format_plugs_into_the_declarative_mapping() {
    let source = CsvSource {
        text: "id,amount,paid,updated\n1,10.50,yes,2026-01-01T01:00:00Z\n2,-3.25,no,2026-01-01T02:00:00+01:00\n3,0.125,no,2026-01-01T02:30:00Z\n".into(),
    };
    let mapping: sync_core::Mapping = serde_json::from_value(serde_json::json!({
        "table": "payments", "primary_key": ["id"], "cursor_column": "updated",
        "columns": [
            {"column": "id", "source": "id", "type": "BIGINT", "nullable": false},
            {"column": "amount", "source": "amount", "type": "DECIMAL(18,2)"},
            {"column": "paid", "source": "paid", "type": "BOOLEAN"},
            {"column": "updated", "source": "updated", "type": "TIMESTAMP"}
        ]
    }))
    .unwrap();
    // The standard format does not know `yes`.
    let standard = mapping.compile().unwrap();
    let yes: Record =
        serde_json::from_value(serde_json::json!({"id": "1", "paid": "yes"})).unwrap();
    assert!(standard.map(&yes).is_err());

    let sink = LineSink::default();
    let rejects = Arc::new(MemoryRejectStore::new());
    let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let pipeline = Pipeline::builder("csv", Arc::new(sink.clone()))
        .stream(
            StreamConfig::new(
                "payments",
                Arc::new(source),
                Arc::new(mapping.compile_with(Arc::new(YesNoFlags)).unwrap()),
                WindowPolicy::starting_at(start),
            )
            .on_reject(sync_core::engine::RejectPolicy::Quarantine),
        )
        .checkpoints(Arc::new(MemoryCheckpointStore::new()))
        .audit(Arc::new(MemoryAuditLog::new()))
        .rejects(rejects.clone())
        .clock(Arc::new(sync_core::ManualClock::new(
            start + chrono::Duration::days(1),
        )))
        .build()
        .unwrap();
    let report = pipeline.run_cycle().await.unwrap();
    let lines = sink.lines.lock().unwrap().clone();
    assert_eq!(lines.len(), 2, "{lines:?} {report:#?}");
    assert!(
        lines["1"].starts_with("1,10.50,true,2026-01-01T01:00:00"),
        "{}",
        lines["1"]
    );
    assert!(
        lines["2"].starts_with("2,-3.25,false,2026-01-01T01:00:00"),
        "{}",
        lines["2"]
    );
    // Money is never rounded: 0.125 in DECIMAL(18,2) is a reject, not 0.13.
    use sync_core::audit::RejectStore as _;
    let rejected = rejects.list("csv", None).await.unwrap();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(
        rejected[0].errors[0].reason.contains("never rounded"),
        "{rejected:?}"
    );
}
