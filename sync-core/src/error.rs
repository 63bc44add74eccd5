//! The error type that crosses the [`Source`](crate::Source) / [`Sink`](crate::Sink) boundary,
//! and the engine's own errors.

use std::fmt;

/// A boxed error from a connector's own error type.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// How the engine should react to a connector failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// Worth trying again later (network, 5xx, throttling, timeouts): the window fails, is
    /// queued, and is retried first on the next cycle.
    Transient,
    /// Will fail the same way until someone changes something (bad query, bad SQL, schema
    /// conflict). The window is queued like a transient one but the error says so.
    Permanent,
    /// Stop the whole stream now and do not touch the remote again this cycle. Used for
    /// 401/403 from PeopleSoft, where every further request could lock the account.
    StopStream,
    /// Not attempted: the source declined to send anything now (a blackout window with the
    /// `skip` action, credentials latched after a rejection, a host found unreachable
    /// earlier in the cycle). The stream's remaining windows wait for the next cycle; no
    /// failure and no attempt is recorded, and the reason (with
    /// [`ConnectorError::until`] when known) is reported and kept for `status`.
    Deferred,
}

/// An error reported by a [`Source`](crate::Source) or a [`Sink`](crate::Sink).
///
/// Its message must never contain a secret: connectors build it from their own errors, which
/// redact credentials.
#[derive(Debug, thiserror::Error)]
pub struct ConnectorError {
    kind: FailureKind,
    message: String,
    until: Option<chrono::DateTime<chrono::Utc>>,
    #[source]
    source: Option<BoxError>,
}

impl ConnectorError {
    /// A new error of the given kind.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            until: None,
            source: None,
        }
    }

    /// A [`FailureKind::Deferred`] error: nothing was attempted.
    pub fn deferred(message: impl Into<String>) -> Self {
        Self::new(FailureKind::Deferred, message)
    }

    /// Notes when the reason for deferring ends (for example a blackout window's end).
    pub fn deferred_until(mut self, until: chrono::DateTime<chrono::Utc>) -> Self {
        self.until = Some(until);
        self
    }

    /// When the reason for deferring ends, if known.
    pub fn until(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.until
    }

    /// A transient error.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(FailureKind::Transient, message)
    }

    /// A permanent error.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(FailureKind::Permanent, message)
    }

    /// An error that stops the stream for this cycle.
    pub fn stop_stream(message: impl Into<String>) -> Self {
        Self::new(FailureKind::StopStream, message)
    }

    /// Attaches the underlying error.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// How the engine treats this error.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// The message, without the source chain.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The message followed by every source in the chain, `: `-separated.
    pub fn full_message(&self) -> String {
        let mut out = self.message.clone();
        let mut cur: Option<&(dyn std::error::Error + 'static)> =
            self.source.as_deref().map(|e| e as _);
        while let Some(e) = cur {
            let s = e.to_string();
            if !out.contains(&s) {
                out.push_str(": ");
                out.push_str(&s);
            }
            cur = e.source();
        }
        out
    }
}

impl fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Errors of the engine and its stores.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Invalid configuration; the message names the setting.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The checkpoint state could not be read or written; the message names the file or table.
    #[error("checkpoint state: {0}")]
    State(String),
    /// Another process holds the pipeline's lock.
    #[error("pipeline `{pipeline}` is locked by another process (lock file {path}); stop that process first, or remove the lock file if it is certainly not running")]
    Locked {
        /// Pipeline name.
        pipeline: String,
        /// The lock file.
        path: String,
    },
    /// A worker's lease on a stream is no longer current (another worker took the stream over
    /// after it expired): its state write was refused, nothing was written.
    #[error("stream `{stream}` of pipeline `{pipeline}`: worker `{owner}` lost its lease (version {version}): {detail}. Its state write was refused and the stream stopped; the new holder carries on. If the worker was not paused or cut off, raise `state.lease_ttl` above the longest gap between two state writes of a window (slow pages, long batches) plus the clock skew between workers")]
    LeaseLost {
        /// Pipeline name.
        pipeline: String,
        /// Stream name.
        stream: String,
        /// The worker that lost the lease.
        owner: String,
        /// The version of the lost lease.
        version: u64,
        /// What the store found instead.
        detail: String,
    },
    /// The audit log or reject store could not be written or read.
    #[error("audit: {0}")]
    Audit(String),
    /// A connector failed outside any window (for example while preparing the target table).
    #[error("stream `{stream}`: {source}")]
    Connector {
        /// The stream.
        stream: String,
        /// The connector error.
        #[source]
        source: ConnectorError,
    },
    /// An I/O error with the path it concerns.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with the engine [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<crate::mapping::MappingError> for Error {
    fn from(e: crate::mapping::MappingError) -> Self {
        Error::Config(e.to_string())
    }
}
