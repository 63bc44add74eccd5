//! Shared pieces of the engine tests: a hand-written mapper for `{ID, VERSION, UPDATED}`
//! records, and a simulated source with visibility times, a row cap and fault injection.
#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use sync_core::{
    Clock, ColumnDef, ColumnType, ConnectorError, FieldError, ManualClock, Mapper, Page,
    PageStream, Record, Row, Source, SourceCapabilities, TableSchema, Value, Window, WriteMode,
};

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap()
}

pub fn minutes(m: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(m)
}

/// Maps `{ID, VERSION, UPDATED}` to `(id BIGINT, version BIGINT, updated TIMESTAMP)`.
pub struct IdMapper {
    schema: TableSchema,
}

impl IdMapper {
    pub fn new(table: &str) -> Self {
        Self {
            schema: TableSchema {
                name: table.into(),
                columns: vec![
                    ColumnDef::new("id", ColumnType::BigInt).not_null(),
                    ColumnDef::new("version", ColumnType::BigInt),
                    ColumnDef::new("updated", ColumnType::Timestamp),
                ],
                primary_key: vec!["id".into()],
                cursor_column: Some("updated".into()),
                write_mode: WriteMode::Upsert,
            },
        }
    }
}

impl IdMapper {
    /// Changes the write mode.
    pub fn set_write_mode(&mut self, mode: WriteMode) {
        self.schema.write_mode = mode;
    }
}

impl Mapper for IdMapper {
    fn schema(&self) -> &TableSchema {
        &self.schema
    }

    fn map(&self, r: &Record) -> Result<Row, Vec<FieldError>> {
        let err = |f: &str, reason: &str| FieldError {
            column: f.to_lowercase(),
            field: f.into(),
            value: r.get(f).map(|v| v.to_string()),
            reason: reason.into(),
        };
        let id = r
            .get("ID")
            .and_then(|v| v.as_i64())
            .ok_or_else(|| vec![err("ID", "not an integer")])?;
        let version = r
            .get("VERSION")
            .and_then(|v| v.as_i64())
            .ok_or_else(|| vec![err("VERSION", "not an integer")])?;
        let updated = r
            .get("UPDATED")
            .and_then(|v| v.as_str())
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .ok_or_else(|| vec![err("UPDATED", "not an RFC 3339 timestamp")])?;
        Ok(vec![
            Value::BigInt(id),
            Value::BigInt(version),
            Value::Timestamp(updated.with_timezone(&Utc)),
        ])
    }
}

pub fn record(id: i64, version: i64, updated: DateTime<Utc>) -> Record {
    let mut r = Record::new();
    r.insert("ID".into(), id.into());
    r.insert("VERSION".into(), version.into());
    r.insert("UPDATED".into(), updated.to_rfc3339().into());
    r
}

#[derive(Debug, Clone)]
pub struct SimRow {
    pub id: i64,
    pub version: i64,
    pub cursor: DateTime<Utc>,
    pub visible_from: DateTime<Utc>,
}

/// A source holding the current version of each row (like a query over a live table):
/// rows become visible at `visible_from` (late commits), reads return `page_size` rows per
/// page, a window with more than `row_cap` rows is truncated, and faults can be injected.
#[derive(Clone)]
pub struct SimSource {
    pub rows: Arc<Mutex<Vec<SimRow>>>,
    pub clock: Arc<ManualClock>,
    pub row_cap: usize,
    pub page_size: usize,
    /// Errors returned by the next reads (one per read, after the first page).
    pub faults: Arc<Mutex<Vec<ConnectorError>>>,
    /// Every window read, in order.
    pub reads: Arc<Mutex<Vec<Window>>>,
    /// Simulated latency per page (tokio time).
    pub page_latency: std::time::Duration,
    /// A cap applied without saying so (like a PeopleSoft query profile), below `row_cap`.
    pub silent_cap: Option<usize>,
    /// What the source tells the engine.
    pub caps: SourceCapabilities,
    /// Rows are ordered by id (key) and `read_after` pages by key.
    pub key_paging: bool,
}

impl SimSource {
    pub fn new(clock: Arc<ManualClock>) -> Self {
        Self {
            rows: Arc::default(),
            clock,
            row_cap: usize::MAX,
            page_size: 7,
            faults: Arc::default(),
            reads: Arc::default(),
            page_latency: std::time::Duration::ZERO,
            silent_cap: None,
            caps: SourceCapabilities::default(),
            key_paging: false,
        }
    }

    /// One page of `rows` (sorted), cut at the caps.
    fn page_of(&self, mut rows: Vec<SimRow>) -> Page {
        let truncated = rows.len() > self.row_cap;
        rows.truncate(self.row_cap.min(self.silent_cap.unwrap_or(usize::MAX)));
        Page {
            records: rows
                .iter()
                .map(|r| record(r.id, r.version, r.cursor))
                .collect(),
            truncated,
        }
    }

    /// Inserts or replaces the row `id`.
    pub fn upsert(
        &self,
        id: i64,
        version: i64,
        cursor: DateTime<Utc>,
        visible_from: DateTime<Utc>,
    ) {
        let mut rows = self.rows.lock().unwrap();
        rows.retain(|r| r.id != id || r.visible_from > visible_from);
        rows.push(SimRow {
            id,
            version,
            cursor,
            visible_from,
        });
    }

    /// Deletes row `id` (every version).
    pub fn delete(&self, id: i64) {
        self.rows.lock().unwrap().retain(|r| r.id != id);
    }

    /// The current visible version of every row.
    pub fn visible(&self) -> Vec<SimRow> {
        let now = self.clock.now();
        let rows = self.rows.lock().unwrap();
        let mut latest: std::collections::BTreeMap<i64, SimRow> = Default::default();
        for r in rows.iter().filter(|r| r.visible_from <= now) {
            match latest.get(&r.id) {
                Some(x) if x.visible_from > r.visible_from => {}
                _ => {
                    latest.insert(r.id, r.clone());
                }
            }
        }
        latest.into_values().collect()
    }
}

#[async_trait]
impl Source for SimSource {
    fn identity(&self) -> String {
        "sim://rows".into()
    }

    fn read(&self, window: Window) -> PageStream<'_> {
        self.reads.lock().unwrap().push(window);
        let mut rows: Vec<SimRow> = self
            .visible()
            .into_iter()
            .filter(|r| window.contains(r.cursor))
            .collect();
        if self.key_paging {
            rows.sort_by_key(|r| r.id);
        } else {
            rows.sort_by_key(|r| (r.cursor, r.id));
        }
        let truncated = rows.len() > self.row_cap;
        rows.truncate(self.row_cap.min(self.silent_cap.unwrap_or(usize::MAX)));
        let fault = self.faults.lock().unwrap().pop();
        let mut pages: Vec<Result<Page, ConnectorError>> = rows
            .chunks(self.page_size)
            .map(|c| {
                Ok(Page {
                    records: c
                        .iter()
                        .map(|r| record(r.id, r.version, r.cursor))
                        .collect(),
                    truncated: false,
                })
            })
            .collect();
        if pages.is_empty() {
            pages.push(Ok(Page::default()));
        }
        if truncated {
            if let Some(Ok(p)) = pages.last_mut() {
                p.truncated = true;
            }
        }
        if let Some(f) = fault {
            pages.truncate(1);
            pages.push(Err(f));
        }
        let latency = self.page_latency;
        Box::pin(futures::stream::iter(pages).then(move |p| async move {
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            p
        }))
    }

    fn capabilities(&self) -> SourceCapabilities {
        self.caps
    }

    async fn read_after(
        &self,
        window: Window,
        last: &Record,
    ) -> Result<Option<Page>, ConnectorError> {
        if !self.key_paging {
            return Ok(None);
        }
        self.reads.lock().unwrap().push(window);
        let after = last["ID"].as_i64().unwrap();
        let mut rows: Vec<SimRow> = self
            .visible()
            .into_iter()
            .filter(|r| window.contains(r.cursor) && r.id > after)
            .collect();
        rows.sort_by_key(|r| r.id);
        Ok(Some(self.page_of(rows)))
    }

    async fn count(&self, window: Window) -> Result<Option<u64>, ConnectorError> {
        Ok(Some(
            self.visible()
                .iter()
                .filter(|r| window.contains(r.cursor))
                .count() as u64,
        ))
    }
}

use futures::StreamExt as _;
