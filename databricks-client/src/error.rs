//! The crate's error type, and the parser for Databricks REST error bodies.
//!
//! No variant ever holds a client secret, an access token or a personal access token: the
//! messages are built from server replies, URLs without credentials, and our own words.

use std::fmt;
use std::time::Duration;

use reqwest::StatusCode;
use sync_core::http::{TokenError, TransportError};
use sync_core::{ConnectorError, FailureKind};

use crate::config::ConfigError;
use crate::sql::SqlError;

/// Maximum characters of a raw response body kept in an error.
const RAW_BODY_LIMIT: usize = 512;

/// `Result` with this crate's [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to Databricks.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Missing, conflicting or invalid configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The OAuth token endpoint refused or failed (its error fields are in the message).
    #[error("OAuth token request to {endpoint} failed: {message}")]
    OAuth {
        /// The token or discovery endpoint (no credentials in it).
        endpoint: String,
        /// HTTP status, when there was a response.
        status: Option<u16>,
        /// What the server said (`error`, `error_description`, `errorCode`, `errorSummary`).
        message: String,
    },
    /// No access token could be obtained (wraps an [`Error::OAuth`] or transport error).
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The REST API answered with an error status.
    #[error("{method} {path} failed with HTTP {status}: {error}", status = .error.status)]
    Api {
        /// HTTP method.
        method: String,
        /// Request path (no query, no credentials).
        path: String,
        /// The parsed error body.
        error: Box<ApiError>,
    },
    /// The request failed below HTTP (connect, timeout, reset) after any retries.
    #[error("{method} {path}: {source}")]
    Transport {
        /// HTTP method.
        method: String,
        /// Request path.
        path: String,
        /// The transport failure.
        #[source]
        source: TransportError,
    },
    /// A SQL statement reached the `FAILED` state (reported over HTTP 200).
    #[error("statement {statement_id} failed: {}{message}{}",
        error_code.as_deref().map(|c| format!("[{c}] ")).unwrap_or_default(),
        sql_state.as_deref().map(|s| format!(" (SQLSTATE {s})")).unwrap_or_default())]
    StatementFailed {
        /// The statement id.
        statement_id: String,
        /// Databricks error code, e.g. `BAD_REQUEST`.
        error_code: Option<String>,
        /// The SQLSTATE, e.g. `42P01`.
        sql_state: Option<String>,
        /// The error message (often starting with an error class like `[TABLE_OR_VIEW_NOT_FOUND]`).
        message: String,
    },
    /// A statement ended `CANCELED` or `CLOSED` without a result.
    #[error("statement {statement_id} ended in state {state} without a result")]
    StatementCanceled {
        /// The statement id.
        statement_id: String,
        /// `CANCELED` or `CLOSED`.
        state: String,
    },
    /// A statement did not finish within the overall deadline; a cancel was sent.
    #[error("statement {statement_id} did not finish within {deadline:?}; it was cancelled")]
    StatementTimeout {
        /// The statement id.
        statement_id: String,
        /// The deadline that passed.
        deadline: Duration,
    },
    /// A reply could not be decoded.
    #[error("could not decode {what}: {message}{}", raw.as_deref().map(|r| format!(" (body: {r})")).unwrap_or_default())]
    Decode {
        /// What was being decoded.
        what: String,
        /// Why it failed.
        message: String,
        /// The start of the raw body, when useful.
        raw: Option<String>,
    },
    /// SQL text could not be generated (bad identifier, value/type mismatch, size limit).
    #[error(transparent)]
    Sql(#[from] SqlError),
    /// Bulk loading cannot stage files: the volume is missing, or a grant is (the message
    /// names the privilege to grant).
    #[error("bulk load staging in volume {volume}: {message}")]
    Staging {
        /// The volume, `catalog.schema.volume`.
        volume: String,
        /// What is wrong and what to grant or change.
        message: String,
    },
    /// The target table exists with a column type that differs from the schema.
    #[error(
        "table {table}: column `{column}` is {found} in Databricks but the schema says {expected}"
    )]
    SchemaMismatch {
        /// Table full name.
        table: String,
        /// Column name.
        column: String,
        /// The schema's type.
        expected: String,
        /// The table's type.
        found: String,
    },
}

impl Error {
    /// The HTTP status when the error came from an HTTP reply.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { error, .. } => Some(error.status),
            Error::OAuth { status, .. } => *status,
            Error::Token(t) => t.source.downcast_ref::<Error>().and_then(Error::status),
            _ => None,
        }
    }

    /// True for a 404 reply.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// Whether trying the same operation later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Api { error, .. } => {
                matches!(error.status, 408 | 429 | 500 | 502 | 503 | 504)
                    || error.error_code.as_deref().is_some_and(transient_code)
            }
            Error::OAuth { status, .. } => {
                matches!(status, None | Some(408 | 429 | 500 | 502 | 503 | 504))
            }
            Error::Token(t) => match t.source.downcast_ref::<Error>() {
                Some(inner) => inner.is_transient(),
                None => true,
            },
            Error::Transport { .. } => true,
            Error::StatementFailed {
                error_code,
                message,
                ..
            } => {
                error_code.as_deref().is_some_and(transient_code)
                    || message.contains("DELTA_CONCURRENT")
                    || message.contains("ConcurrentAppendException")
            }
            Error::StatementCanceled { .. } | Error::StatementTimeout { .. } => true,
            _ => false,
        }
    }

    /// How the sync engine should treat this error.
    pub fn failure_kind(&self) -> FailureKind {
        if self.is_transient() {
            FailureKind::Transient
        } else {
            FailureKind::Permanent
        }
    }
}

fn transient_code(code: &str) -> bool {
    matches!(
        code,
        "TEMPORARILY_UNAVAILABLE"
            | "SERVICE_UNDER_MAINTENANCE"
            | "WORKSPACE_TEMPORARILY_UNAVAILABLE"
            | "DEADLINE_EXCEEDED"
            | "RESOURCE_EXHAUSTED"
            | "REQUEST_LIMIT_EXCEEDED"
            | "ABORTED"
            | "IO_ERROR"
    )
}

impl From<Error> for ConnectorError {
    fn from(e: Error) -> Self {
        ConnectorError::new(e.failure_kind(), e.to_string()).with_source(e)
    }
}

/// A Databricks REST error reply, parsed from whichever body shape the server sent.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code.
    pub status: u16,
    /// `error_code` (a string, or an integer rendered as text), SCIM `scimType`, or the `CODE`
    /// of a plain-text `CODE: message` body.
    pub error_code: Option<String>,
    /// The message, or the HTTP status text when the body said nothing.
    pub message: String,
    /// `details` entries (e.g. `ErrorInfo`, `RetryInfo`, `RequestInfo`), as sent.
    pub details: Vec<serde_json::Value>,
    /// The start of the raw body when it had none of the known shapes.
    pub raw_body: Option<String>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error_code {
            Some(code) => write!(f, "{code}: {}", self.message)?,
            None => f.write_str(&self.message)?,
        }
        if let Some(raw) = &self.raw_body {
            write!(f, " (body: {raw})")?;
        }
        Ok(())
    }
}

impl ApiError {
    /// Parses an error reply body. Never fails: unknown shapes keep a truncated raw body.
    pub fn parse(status: StatusCode, body: &[u8]) -> ApiError {
        let mut out = ApiError {
            status: status.as_u16(),
            error_code: None,
            message: status_text(status),
            details: Vec::new(),
            raw_body: None,
        };
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.is_empty() {
            return out;
        }
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text)
        {
            let s = |k: &str| map.get(k).and_then(json_text);
            let code = s("error_code")
                .or_else(|| s("scimType"))
                .or_else(|| s("errorCode"));
            let message = s("message")
                .or_else(|| s("detail"))
                .or_else(|| s("error_description"))
                .or_else(|| s("errorSummary"))
                .or_else(|| s("error"));
            if code.is_some() || message.is_some() {
                out.error_code =
                    code.or_else(|| s("error").filter(|_| s("error_description").is_some()));
                if let Some(m) = message {
                    out.message = m;
                }
                if let Some(serde_json::Value::Array(d)) = map.get("details") {
                    out.details = d.clone();
                }
                return out;
            }
            out.raw_body = Some(truncate(text, RAW_BODY_LIMIT));
            return out;
        }
        if text.starts_with('<') {
            let inner = between(text, "<pre>", "</pre>").unwrap_or(text);
            let stripped = strip_tags(inner);
            let stripped = stripped.split_whitespace().collect::<Vec<_>>().join(" ");
            if !stripped.is_empty() {
                out.message = truncate(&stripped, RAW_BODY_LIMIT);
            }
            return out;
        }
        if let Some((code, msg)) = text.split_once(": ") {
            if !code.is_empty()
                && code
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                out.error_code = Some(code.to_string());
                out.message = truncate(msg.trim(), RAW_BODY_LIMIT);
                return out;
            }
        }
        out.raw_body = Some(truncate(text, RAW_BODY_LIMIT));
        out
    }
}

fn json_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(r) => format!("{} {r}", status.as_u16()),
        None => format!("HTTP {}", status.as_u16()),
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let s = text.find(start)? + start.len();
    let e = text[s..].find(end)? + s;
    Some(&text[s..e])
}

fn strip_tags(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// Truncates to at most `max` characters, marking the cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(status: u16, body: &str) -> ApiError {
        ApiError::parse(StatusCode::from_u16(status).unwrap(), body.as_bytes())
    }

    #[test]
    fn standard_body_with_details() {
        let e = parse(
            404,
            r#"{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"Table x not found","details":[{"@type":"type.googleapis.com/google.rpc.RequestInfo","request_id":"r1"}]}"#,
        );
        assert_eq!(e.error_code.as_deref(), Some("RESOURCE_DOES_NOT_EXIST"));
        assert_eq!(e.message, "Table x not found");
        assert_eq!(e.details.len(), 1);
        assert_eq!(e.to_string(), "RESOURCE_DOES_NOT_EXIST: Table x not found");
    }

    #[test]
    fn integer_code_legacy_scim_text_html_empty_and_unknown() {
        let e = parse(500, r#"{"error_code":500,"message":"boom"}"#);
        assert_eq!(e.error_code.as_deref(), Some("500"));
        let e = parse(400, r#"{"error":"Cluster not found"}"#);
        assert_eq!(
            (e.error_code, e.message.as_str()),
            (None, "Cluster not found")
        );
        let e = parse(
            409,
            r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"detail":"User exists","status":"409","scimType":"uniqueness"}"#,
        );
        assert_eq!(e.error_code.as_deref(), Some("uniqueness"));
        assert_eq!(e.message, "User exists");
        let e = parse(400, "INVALID_PARAMETER_VALUE: warehouse id is malformed");
        assert_eq!(e.error_code.as_deref(), Some("INVALID_PARAMETER_VALUE"));
        assert_eq!(e.message, "warehouse id is malformed");
        let e = parse(
            502,
            "<html><body><h1>Bad gateway</h1><pre>upstream connect error</pre></body></html>",
        );
        assert_eq!(e.message, "upstream connect error");
        let e = parse(503, "");
        assert_eq!(e.message, "503 Service Unavailable");
        let long = "x".repeat(2000);
        let e = parse(500, &format!("something odd {long}"));
        assert_eq!(e.message, "500 Internal Server Error");
        let raw = e.raw_body.unwrap();
        assert!(raw.starts_with("something odd") && raw.chars().count() == RAW_BODY_LIMIT + 1);
    }

    #[test]
    fn oauth_error_fields() {
        let e = parse(
            401,
            r#"{"error":"invalid_client","error_description":"Client authentication failed"}"#,
        );
        assert_eq!(e.error_code.as_deref(), Some("invalid_client"));
        assert_eq!(e.message, "Client authentication failed");
        let e = parse(
            400,
            r#"{"errorCode":"E0000004","errorSummary":"Authentication failed"}"#,
        );
        assert_eq!(e.to_string(), "E0000004: Authentication failed");
    }

    #[test]
    fn transient_classes() {
        let api = |status: u16, code: Option<&str>| Error::Api {
            method: "GET".into(),
            path: "/x".into(),
            error: Box::new(ApiError {
                status,
                error_code: code.map(str::to_string),
                message: "m".into(),
                details: vec![],
                raw_body: None,
            }),
        };
        assert!(api(429, None).is_transient());
        assert!(api(503, None).is_transient());
        assert!(api(400, Some("REQUEST_LIMIT_EXCEEDED")).is_transient());
        assert!(!api(400, Some("BAD_REQUEST")).is_transient());
        assert!(!api(403, None).is_transient());
        let failed = Error::StatementFailed {
            statement_id: "s".into(),
            error_code: Some("BAD_REQUEST".into()),
            sql_state: Some("42P01".into()),
            message: "[TABLE_OR_VIEW_NOT_FOUND] t".into(),
        };
        assert_eq!(failed.failure_kind(), FailureKind::Permanent);
        assert_eq!(
            failed.to_string(),
            "statement s failed: [BAD_REQUEST] [TABLE_OR_VIEW_NOT_FOUND] t (SQLSTATE 42P01)"
        );
        let c: ConnectorError = failed.into();
        assert_eq!(c.kind(), FailureKind::Permanent);
    }
}
