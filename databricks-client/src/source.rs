//! [`DatabricksSource`]: reads a Delta table by cursor window, for the reverse direction
//! (Databricks → PeopleSoft).

use async_trait::async_trait;
use futures::stream::{self, StreamExt, TryStreamExt};
use sync_core::{
    ColumnDef, ConnectorError, Page, PageStream, Record, Row, Source, TableSchema, Value, Window,
};

use crate::client::DatabricksClient;
use crate::error::{Error, Result};
use crate::sink::{cursor_column, window_parameters};
use crate::sql::{self, TableName};
use crate::statement::Statement;

/// A [`Source`] over one table with a cursor column:
/// `SELECT cols FROM t WHERE cursor >= :window_from AND cursor < :window_to ORDER BY cursor`.
///
/// Each result chunk becomes one [`Page`] of JSON records keyed by column name. Decimals are
/// JSON strings (exact), timestamps RFC 3339 UTC strings, dates `YYYY-MM-DD`.
#[derive(Debug, Clone)]
pub struct DatabricksSource {
    client: DatabricksClient,
    table: TableName,
    columns: Vec<ColumnDef>,
    cursor: ColumnDef,
    max_rows: Option<u64>,
}

impl DatabricksSource {
    /// A source reading `schema.columns` of `table`, windowed on `schema.cursor_column`
    /// (a TIMESTAMP or DATE column).
    pub fn new(client: DatabricksClient, table: TableName, schema: &TableSchema) -> Result<Self> {
        let cursor = cursor_column(schema)?.clone();
        Ok(Self {
            client,
            table,
            columns: schema.columns.clone(),
            cursor,
            max_rows: None,
        })
    }

    /// Caps the rows read per window; a capped result is reported as truncated so the engine
    /// splits the window. Use it to stay under the 25 MiB inline result limit.
    pub fn max_rows_per_window(mut self, rows: u64) -> Self {
        self.max_rows = Some(rows);
        self
    }

    fn statement(&self, window: Window) -> Statement {
        let mut st = window_parameters(
            Statement::new(sql::select_window(&self.table, &self.columns, &self.cursor)),
            &self.cursor,
            window,
        )
        .idempotent(true);
        if let Some(n) = self.max_rows {
            st = st.row_limit(n);
        }
        st
    }
}

/// Converts a typed value to JSON without losing precision: decimals become strings.
pub fn value_to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Null => J::Null,
        Value::String(s) => J::String(s.clone()),
        Value::Int(i) => J::from(*i),
        Value::BigInt(i) => J::from(*i),
        Value::Decimal(d) => J::String(d.to_string()),
        Value::Double(f) => serde_json::Number::from_f64(*f)
            .map(J::Number)
            .unwrap_or_else(|| J::String(f.to_string())),
        Value::Bool(b) => J::Bool(*b),
        Value::Date(d) => J::String(d.format("%Y-%m-%d").to_string()),
        Value::Timestamp(t) => J::String(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
    }
}

fn to_record(columns: &[ColumnDef], row: Row) -> Record {
    columns
        .iter()
        .zip(row)
        .map(|(c, v)| (c.name.clone(), value_to_json(&v)))
        .collect()
}

#[async_trait]
impl Source for DatabricksSource {
    fn identity(&self) -> String {
        format!(
            "databricks://{}/{}",
            self.client.config().host().host_str().unwrap_or(""),
            self.table.full_name()
        )
    }

    fn read(&self, window: Window) -> PageStream<'_> {
        let st = self.statement(window);
        let client = self.client.clone();
        let columns = self.columns.clone();
        stream::once(async move { client.execute(&st).await })
            .map_ok(move |result| {
                let truncated = result.truncated();
                let columns = columns.clone();
                result.chunks().map_ok(move |rows| Page {
                    records: rows.into_iter().map(|r| to_record(&columns, r)).collect(),
                    truncated,
                })
            })
            .try_flatten()
            .map_err(|e: Error| ConnectorError::from(e))
            .boxed()
    }

    async fn count(&self, window: Window) -> Result<Option<u64>, ConnectorError> {
        let st = window_parameters(
            Statement::new(sql::count_in_window(&self.table, &self.cursor)),
            &self.cursor,
            window,
        )
        .idempotent(true);
        let rows = self.client.execute(&st).await?.collect_rows().await?;
        match rows.first().and_then(|r| r.first()) {
            Some(Value::BigInt(n)) if *n >= 0 => Ok(Some(*n as u64)),
            Some(Value::Int(n)) if *n >= 0 => Ok(Some(*n as u64)),
            other => Err(ConnectorError::permanent(format!(
                "row count of {}: expected one non-negative integer, got {other:?}",
                self.table.full_name()
            ))),
        }
    }
}
