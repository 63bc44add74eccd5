//! SQL Statement Execution API 2.0: execute, poll to a terminal state, cancel on deadline,
//! decode results (all values arrive as strings or null) into [`sync_core::Value`].

use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use reqwest::Method;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sync_core::http::Idempotency;
use sync_core::{ColumnType, Row, Value};
use tokio::time::Instant;

use crate::client::DatabricksClient;
use crate::error::{truncate, Error, Result};
use crate::sql::decimal_type_of;

/// Path of the statements endpoint.
pub const STATEMENTS_PATH: &str = "/api/2.0/sql/statements";

/// One named statement parameter (`:name` in the SQL text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Parameter {
    /// Name without the colon.
    pub name: String,
    /// The value as text; `None` is SQL NULL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The SQL type the value is cast to (e.g. `DECIMAL(10,2)`); `None` means STRING.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub sql_type: Option<String>,
}

impl Parameter {
    /// A parameter typed from a [`Value`] (decimals keep their exact text and scale;
    /// timestamps are sent as UTC with `Z`).
    pub fn from_value(name: impl Into<String>, value: &Value) -> Self {
        let (value, sql_type) = match value {
            Value::Null => (None, None),
            Value::String(s) => (Some(s.clone()), Some("STRING".to_string())),
            Value::Int(v) => (Some(v.to_string()), Some("INT".into())),
            Value::BigInt(v) => (Some(v.to_string()), Some("BIGINT".into())),
            Value::Decimal(d) => (Some(d.to_string()), Some(decimal_type_of(d).to_string())),
            Value::Double(v) => (
                Some(if v.is_nan() {
                    "NaN".into()
                } else if v.is_infinite() {
                    if *v > 0.0 { "Infinity" } else { "-Infinity" }.into()
                } else {
                    format!("{v:?}")
                }),
                Some("DOUBLE".into()),
            ),
            Value::Bool(b) => (Some(b.to_string()), Some("BOOLEAN".into())),
            Value::Date(d) => (Some(d.format("%Y-%m-%d").to_string()), Some("DATE".into())),
            Value::Timestamp(t) => (
                Some(t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()),
                Some("TIMESTAMP".into()),
            ),
        };
        Self {
            name: name.into(),
            value,
            sql_type,
        }
    }

    /// A parameter with explicit text and SQL type.
    pub fn typed(
        name: impl Into<String>,
        value: Option<String>,
        sql_type: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            value,
            sql_type: Some(sql_type.into()),
        }
    }
}

/// A statement to execute: SQL text, named parameters, and whether repeating it is safe.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    sql: String,
    parameters: Vec<Parameter>,
    idempotent: bool,
    catalog: Option<String>,
    schema: Option<String>,
    row_limit: Option<u64>,
}

impl Statement {
    /// A non-idempotent statement (the POST is retried only on 429/503/connect errors).
    pub fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            parameters: Vec::new(),
            idempotent: false,
            catalog: None,
            schema: None,
            row_limit: None,
        }
    }

    /// Adds a named parameter typed from a value.
    pub fn param(mut self, name: impl Into<String>, value: &Value) -> Self {
        self.parameters.push(Parameter::from_value(name, value));
        self
    }

    /// Adds a prepared parameter.
    pub fn parameter(mut self, p: Parameter) -> Self {
        self.parameters.push(p);
        self
    }

    /// Marks the statement safe to repeat (a SELECT, DDL with `IF NOT EXISTS`, a keyed
    /// MERGE): then timeouts and 5xx replies to the POST are retried too.
    pub fn idempotent(mut self, yes: bool) -> Self {
        self.idempotent = yes;
        self
    }

    /// Overrides the configured default catalog.
    pub fn catalog(mut self, catalog: impl Into<String>) -> Self {
        self.catalog = Some(catalog.into());
        self
    }

    /// Overrides the configured default schema.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// Caps the result rows; the result is then marked truncated.
    pub fn row_limit(mut self, rows: u64) -> Self {
        self.row_limit = Some(rows);
        self
    }

    /// The SQL text.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The parameters.
    pub fn parameters(&self) -> &[Parameter] {
        &self.parameters
    }

    /// Whether the statement is marked idempotent.
    pub fn is_idempotent(&self) -> bool {
        self.idempotent
    }
}

/// Statement state as reported by the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementState {
    /// Queued.
    Pending,
    /// Running.
    Running,
    /// Finished with a result.
    Succeeded,
    /// Failed; see the status error.
    Failed,
    /// Cancelled.
    Canceled,
    /// Closed (result no longer available).
    Closed,
    /// A state this client does not know (treated as still running).
    Other(String),
}

impl<'de> Deserialize<'de> for StatementState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "PENDING" => Self::Pending,
            "RUNNING" => Self::Running,
            "SUCCEEDED" => Self::Succeeded,
            "FAILED" => Self::Failed,
            "CANCELED" => Self::Canceled,
            "CLOSED" => Self::Closed,
            _ => Self::Other(s),
        })
    }
}

impl std::fmt::Display for StatementState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pending => "PENDING",
            Self::Running => "RUNNING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Canceled => "CANCELED",
            Self::Closed => "CLOSED",
            Self::Other(s) => s,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
struct ServiceError {
    #[serde(default)]
    error_code: Option<serde_json::Value>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Status {
    state: StatementState,
    #[serde(default)]
    error: Option<ServiceError>,
    #[serde(default)]
    sql_state: Option<String>,
}

/// One result column from the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ResultColumn {
    /// Column name.
    pub name: String,
    /// 0-based position.
    #[serde(default)]
    pub position: Option<u32>,
    /// Type name (`INT`, `LONG`, `DECIMAL`, `TIMESTAMP`, …).
    #[serde(default)]
    pub type_name: Option<String>,
    /// Full type text (`decimal(18,2)`).
    #[serde(default)]
    pub type_text: Option<String>,
    /// Decimal precision.
    #[serde(default)]
    pub type_precision: Option<u32>,
    /// Decimal scale.
    #[serde(default)]
    pub type_scale: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct ManifestSchema {
    #[serde(default)]
    columns: Vec<ResultColumn>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Manifest {
    #[serde(default)]
    schema: Option<ManifestSchema>,
    #[serde(default)]
    total_chunk_count: Option<u64>,
    #[serde(default)]
    total_row_count: Option<u64>,
    #[serde(default)]
    truncated: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct ResultData {
    #[serde(default)]
    data_array: Option<Vec<Vec<Option<String>>>>,
    #[serde(default)]
    next_chunk_internal_link: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct StatementResponse {
    statement_id: String,
    status: Status,
    #[serde(default)]
    manifest: Option<Manifest>,
    #[serde(default)]
    result: Option<ResultData>,
}

#[derive(Serialize)]
struct ExecuteRequest<'a> {
    statement: &'a str,
    warehouse_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    catalog: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    schema: Option<&'a str>,
    #[serde(skip_serializing_if = "<[Parameter]>::is_empty")]
    parameters: &'a [Parameter],
    wait_timeout: String,
    on_wait_timeout: &'static str,
    disposition: &'static str,
    format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    row_limit: Option<u64>,
}

/// DML counts reported by Delta for INSERT / MERGE / UPDATE / DELETE.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DmlCounts {
    /// `num_affected_rows`.
    pub affected: Option<u64>,
    /// `num_inserted_rows`.
    pub inserted: Option<u64>,
    /// `num_updated_rows`.
    pub updated: Option<u64>,
    /// `num_deleted_rows`.
    pub deleted: Option<u64>,
}

/// The type a result column decodes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultType {
    /// Decoded to [`Value::String`] (also CHAR, BINARY, complex and unknown types, as text).
    Text,
    /// `INT`, `SHORT`, `BYTE`.
    Int,
    /// `LONG` / `BIGINT`.
    BigInt,
    /// `DECIMAL`, exact.
    Decimal,
    /// `DOUBLE`, `FLOAT`.
    Double,
    /// `BOOLEAN`.
    Boolean,
    /// `DATE`.
    Date,
    /// `TIMESTAMP`, `TIMESTAMP_NTZ` (both read as UTC).
    Timestamp,
}

impl ResultType {
    /// The decode type for a manifest column.
    pub fn of(column: &ResultColumn) -> Self {
        let name = column
            .type_name
            .as_deref()
            .or(column.type_text.as_deref())
            .unwrap_or("STRING")
            .to_ascii_uppercase();
        let base = name.split('(').next().unwrap_or("").trim();
        match base {
            "INT" | "INTEGER" | "SHORT" | "SMALLINT" | "BYTE" | "TINYINT" => Self::Int,
            "LONG" | "BIGINT" => Self::BigInt,
            "DECIMAL" | "DEC" | "NUMERIC" => Self::Decimal,
            "DOUBLE" | "FLOAT" | "REAL" => Self::Double,
            "BOOLEAN" => Self::Boolean,
            "DATE" => Self::Date,
            "TIMESTAMP" | "TIMESTAMP_NTZ" | "TIMESTAMP_LTZ" => Self::Timestamp,
            _ => Self::Text,
        }
    }
}

/// Decodes one JSON_ARRAY cell (a string or null) of a column of type `t`.
pub fn decode_cell(t: ResultType, cell: Option<&str>) -> std::result::Result<Value, String> {
    let Some(s) = cell else {
        return Ok(Value::Null);
    };
    let bad = |what: &str| format!("{:?} is not a valid {what}", truncate(s, 100));
    Ok(match t {
        ResultType::Text => Value::String(s.to_string()),
        ResultType::Int => Value::Int(s.trim().parse().map_err(|_| bad("INT"))?),
        ResultType::BigInt => Value::BigInt(s.trim().parse().map_err(|_| bad("BIGINT"))?),
        ResultType::Decimal => Value::Decimal(
            Decimal::from_str(s.trim())
                .or_else(|_| Decimal::from_scientific(s.trim()))
                .map_err(|_| bad("DECIMAL"))?,
        ),
        ResultType::Double => Value::Double(s.trim().parse().map_err(|_| bad("DOUBLE"))?),
        ResultType::Boolean => match s.trim().to_ascii_lowercase().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(bad("BOOLEAN")),
        },
        ResultType::Date => {
            Value::Date(NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| bad("DATE"))?)
        }
        ResultType::Timestamp => {
            Value::Timestamp(parse_timestamp(s).ok_or_else(|| bad("TIMESTAMP"))?)
        }
    })
}

/// Parses a timestamp tolerantly: `T` or space between date and time, optional fraction,
/// optional `Z` / `±hh:mm` / ` UTC` suffix. Without an offset the value is read as UTC.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    let s = s.strip_suffix(" UTC").unwrap_or(s);
    let mut t = s.to_string();
    if t.len() > 10 && t.as_bytes()[10] == b' ' {
        t.replace_range(10..11, "T");
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(&t) {
        return Some(dt.with_timezone(&Utc));
    }
    if let Ok(dt) = DateTime::parse_from_str(&t, "%Y-%m-%dT%H:%M:%S%.f%#z") {
        return Some(dt.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(&t, f) {
            return Some(n.and_utc());
        }
    }
    NaiveDate::parse_from_str(&t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|n| n.and_utc())
}

/// A finished (`SUCCEEDED`) statement and its result, decoded lazily chunk by chunk.
#[derive(Debug, Clone)]
pub struct StatementResult {
    client: DatabricksClient,
    statement_id: String,
    columns: Arc<Vec<ResultColumn>>,
    manifest: Manifest,
    first: Option<ResultData>,
}

impl StatementResult {
    /// The statement id.
    pub fn statement_id(&self) -> &str {
        &self.statement_id
    }

    /// The result columns.
    pub fn columns(&self) -> &[ResultColumn] {
        &self.columns
    }

    /// True when `row_limit` (or the server) cut the result.
    pub fn truncated(&self) -> bool {
        self.manifest.truncated.unwrap_or(false)
    }

    /// Total rows, when the server said.
    pub fn total_row_count(&self) -> Option<u64> {
        self.manifest.total_row_count
    }

    /// DML counts from the one-row result of INSERT / MERGE / UPDATE / DELETE.
    pub fn dml_counts(&self) -> DmlCounts {
        let row = self
            .first
            .as_ref()
            .and_then(|r| r.data_array.as_ref())
            .and_then(|d| d.first());
        let get = |name: &str| -> Option<u64> {
            let i = self.columns.iter().position(|c| c.name == name)?;
            row?.get(i)?.as_deref()?.trim().parse().ok()
        };
        DmlCounts {
            affected: get("num_affected_rows"),
            inserted: get("num_inserted_rows"),
            updated: get("num_updated_rows"),
            deleted: get("num_deleted_rows"),
        }
    }

    /// The rows, one chunk at a time, following `next_chunk_internal_link` until absent.
    pub fn chunks(self) -> BoxStream<'static, Result<Vec<Row>>> {
        let types: Arc<Vec<ResultType>> =
            Arc::new(self.columns.iter().map(ResultType::of).collect());
        let names = self.columns.clone();
        let first_link = match (&self.first, self.manifest.total_chunk_count) {
            (Some(r), _) if r.data_array.is_some() || r.next_chunk_internal_link.is_some() => None,
            (_, Some(n)) if n > 0 => Some(format!(
                "{STATEMENTS_PATH}/{}/result/chunks/0",
                self.statement_id
            )),
            _ => None,
        };
        enum Next {
            Data(ResultData),
            Link(String),
            Done,
        }
        let start = match (first_link, self.first) {
            (Some(link), _) => Next::Link(link),
            (None, Some(r)) => Next::Data(r),
            (None, None) => Next::Done,
        };
        let client = self.client;
        stream::try_unfold(start, move |next| {
            let client = client.clone();
            let types = types.clone();
            let names = names.clone();
            async move {
                let data = match next {
                    Next::Done => return Ok(None),
                    Next::Data(d) => d,
                    Next::Link(link) => {
                        client
                            .send_json::<ResultData>(
                                Method::GET,
                                client.url(&link),
                                None,
                                Idempotency::Idempotent,
                            )
                            .await?
                    }
                };
                let rows = decode_rows(&types, &names, data.data_array.unwrap_or_default())?;
                let next = match data.next_chunk_internal_link {
                    Some(l) if !l.is_empty() => Next::Link(l),
                    _ => Next::Done,
                };
                Ok(Some((rows, next)))
            }
        })
        .boxed()
    }

    /// The rows one by one.
    pub fn rows(self) -> BoxStream<'static, Result<Row>> {
        self.chunks()
            .map_ok(|rows| stream::iter(rows.into_iter().map(Ok)))
            .try_flatten()
            .boxed()
    }

    /// Every row in memory (for small results).
    pub async fn collect_rows(self) -> Result<Vec<Row>> {
        self.rows().try_collect().await
    }
}

fn decode_rows(
    types: &[ResultType],
    names: &[ResultColumn],
    data: Vec<Vec<Option<String>>>,
) -> Result<Vec<Row>> {
    data.into_iter()
        .map(|cells| {
            if cells.len() != types.len() {
                return Err(Error::Decode {
                    what: "a result row".into(),
                    message: format!("{} values for {} columns", cells.len(), types.len()),
                    raw: None,
                });
            }
            cells
                .iter()
                .zip(types)
                .zip(names)
                .map(|((c, t), col)| {
                    decode_cell(*t, c.as_deref()).map_err(|message| Error::Decode {
                        what: format!("column `{}`", col.name),
                        message,
                        raw: None,
                    })
                })
                .collect()
        })
        .collect()
}

impl DatabricksClient {
    /// Executes a statement on the configured warehouse and waits for a terminal state.
    ///
    /// The POST waits up to `wait_timeout` on the server; then the status is polled with
    /// growing delays. Past `statement_timeout` the statement is cancelled and
    /// [`Error::StatementTimeout`] returned. `FAILED` becomes [`Error::StatementFailed`] with
    /// the error code, SQLSTATE and message. If polling itself fails (after retries), a
    /// best-effort cancel is sent before the error is returned.
    pub async fn execute(&self, statement: &Statement) -> Result<StatementResult> {
        let opts = self.config().options();
        let deadline = Instant::now() + opts.statement_timeout;
        let warehouse_id = self.config().require_warehouse_id()?;
        let req = ExecuteRequest {
            statement: &statement.sql,
            warehouse_id,
            catalog: statement.catalog.as_deref().or(self.config().catalog()),
            schema: statement.schema.as_deref().or(self.config().schema()),
            parameters: &statement.parameters,
            wait_timeout: format!("{}s", opts.wait_timeout.as_secs()),
            on_wait_timeout: "CONTINUE",
            disposition: "INLINE",
            format: "JSON_ARRAY",
            row_limit: statement.row_limit,
        };
        let body = serde_json::to_value(&req).map_err(|e| Error::Decode {
            what: "statement request".into(),
            message: e.to_string(),
            raw: None,
        })?;
        let idempotency = if statement.idempotent {
            Idempotency::Idempotent
        } else {
            Idempotency::NonIdempotent
        };
        let mut resp: StatementResponse = self
            .send_json(
                Method::POST,
                self.url(STATEMENTS_PATH),
                Some(&body),
                idempotency,
            )
            .await?;
        let id = resp.statement_id.clone();
        tracing::debug!(statement_id = %id, state = %resp.status.state, "statement submitted");
        let mut delay = opts.poll_initial;
        loop {
            match resp.status.state {
                StatementState::Succeeded => {
                    let manifest = resp.manifest.unwrap_or_default();
                    return Ok(StatementResult {
                        client: self.clone(),
                        statement_id: id,
                        columns: Arc::new(
                            manifest
                                .schema
                                .as_ref()
                                .map(|s| s.columns.clone())
                                .unwrap_or_default(),
                        ),
                        manifest,
                        first: resp.result,
                    });
                }
                StatementState::Failed => {
                    let err = resp.status.error.unwrap_or(ServiceError {
                        error_code: None,
                        message: None,
                    });
                    return Err(Error::StatementFailed {
                        statement_id: id,
                        error_code: err.error_code.map(|c| match c {
                            serde_json::Value::String(s) => s,
                            other => other.to_string(),
                        }),
                        sql_state: resp.status.sql_state,
                        message: err.message.unwrap_or_else(|| "no message".into()),
                    });
                }
                StatementState::Canceled | StatementState::Closed => {
                    return Err(Error::StatementCanceled {
                        statement_id: id,
                        state: resp.status.state.to_string(),
                    })
                }
                StatementState::Pending | StatementState::Running | StatementState::Other(_) => {}
            }
            let now = Instant::now();
            if now >= deadline {
                if let Err(e) = self.cancel_statement(&id).await {
                    tracing::warn!(statement_id = %id, "cancel after deadline failed: {e}");
                }
                return Err(Error::StatementTimeout {
                    statement_id: id,
                    deadline: opts.statement_timeout,
                });
            }
            tokio::time::sleep(delay.min(deadline - now)).await;
            delay = (delay * 2).min(opts.poll_max);
            resp = match self
                .send_json(
                    Method::GET,
                    self.url(&format!("{STATEMENTS_PATH}/{id}")),
                    None,
                    Idempotency::Idempotent,
                )
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    // We stop watching: do not leave the statement running unobserved.
                    if let Err(c) = self.cancel_statement(&id).await {
                        tracing::warn!(statement_id = %id, "cancel after a failed poll failed: {c}");
                    }
                    return Err(e);
                }
            };
        }
    }

    /// Requests cancellation (`POST …/cancel`). Cancellation is best effort on the server.
    pub async fn cancel_statement(&self, statement_id: &str) -> Result<()> {
        self.send_raw(
            Method::POST,
            self.url(&format!("{STATEMENTS_PATH}/{statement_id}/cancel")),
            None,
            Idempotency::Idempotent,
        )
        .await
        .map(|_| ())
    }

    /// Executes a query and streams its rows (all chunks).
    pub async fn query(&self, statement: &Statement) -> Result<BoxStream<'static, Result<Row>>> {
        Ok(self.execute(statement).await?.rows())
    }
}

/// Maps a sync-core column type to the decode type (for tests and callers that know the
/// schema in advance).
pub fn result_type_for(t: ColumnType) -> ResultType {
    match t {
        ColumnType::String => ResultType::Text,
        ColumnType::BigInt => ResultType::BigInt,
        ColumnType::Int => ResultType::Int,
        ColumnType::Decimal { .. } => ResultType::Decimal,
        ColumnType::Double => ResultType::Double,
        ColumnType::Boolean => ResultType::Boolean,
        ColumnType::Date => ResultType::Date,
        ColumnType::Timestamp => ResultType::Timestamp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamps_are_parsed_tolerantly() {
        let want = Utc.with_ymd_and_hms(2024, 1, 31, 12, 0, 0).unwrap()
            + chrono::Duration::milliseconds(123);
        for s in [
            "2024-01-31T12:00:00.123Z",
            "2024-01-31 12:00:00.123",
            "2024-01-31T12:00:00.123",
            "2024-01-31T12:00:00.123+00:00",
            "2024-01-31T13:00:00.123+01:00",
            "2024-01-31 12:00:00.123 UTC",
        ] {
            assert_eq!(parse_timestamp(s), Some(want), "{s}");
        }
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn cells_decode_by_type() {
        assert_eq!(
            decode_cell(ResultType::Decimal, Some("12345678901234567890.12")).unwrap(),
            Value::Decimal("12345678901234567890.12".parse().unwrap())
        );
        assert_eq!(
            decode_cell(ResultType::BigInt, Some("-7")).unwrap(),
            Value::BigInt(-7)
        );
        assert_eq!(decode_cell(ResultType::Int, None).unwrap(), Value::Null);
        assert_eq!(
            decode_cell(ResultType::Boolean, Some("true")).unwrap(),
            Value::Bool(true)
        );
        assert!(decode_cell(ResultType::Int, Some("x1"))
            .unwrap_err()
            .contains("INT"));
        let col = |t: &str| ResultColumn {
            name: "c".into(),
            position: Some(0),
            type_name: Some(t.into()),
            type_text: None,
            type_precision: None,
            type_scale: None,
        };
        assert_eq!(ResultType::of(&col("LONG")), ResultType::BigInt);
        assert_eq!(ResultType::of(&col("SHORT")), ResultType::Int);
        assert_eq!(ResultType::of(&col("TIMESTAMP_NTZ")), ResultType::Timestamp);
        assert_eq!(ResultType::of(&col("VARIANT")), ResultType::Text);
    }

    #[test]
    fn parameters_are_typed_from_values() {
        let p = Parameter::from_value("amt", &Value::Decimal("12.50".parse().unwrap()));
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            serde_json::json!({"name":"amt","value":"12.50","type":"DECIMAL(4,2)"})
        );
        let p = Parameter::from_value("n", &Value::Null);
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            serde_json::json!({"name":"n"})
        );
        let ts = Utc.with_ymd_and_hms(2024, 1, 31, 12, 0, 0).unwrap();
        let p = Parameter::from_value("t", &Value::Timestamp(ts));
        assert_eq!(p.value.as_deref(), Some("2024-01-31T12:00:00.000000Z"));
    }
}
