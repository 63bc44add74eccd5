//! The crate's error type and its mapping onto sync-core's [`FailureKind`].

use sync_core::{ConnectorError, FailureKind};

/// How many bytes of a response body an error keeps, so a user can see what the server said.
pub const RAW_BODY_LIMIT: usize = 2048;

/// A response body kept for diagnosis, cut to [`RAW_BODY_LIMIT`] bytes (on a character
/// boundary) with `…[truncated]` appended when it was longer.
pub fn truncate_body(body: &str) -> String {
    if body.len() <= RAW_BODY_LIMIT {
        return body.to_string();
    }
    let mut end = RAW_BODY_LIMIT;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[truncated, {} bytes in all]", &body[..end], body.len())
}

/// A configuration value that was rejected; names the field and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{field}` value `{value}`: {reason}")]
pub struct ConfigError {
    /// The setting, e.g. `host`, `port`, `node`.
    pub field: &'static str,
    /// The rejected value (never a secret).
    pub value: String,
    /// Why it was rejected.
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(
        field: &'static str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            field,
            value: value.into(),
            reason: reason.into(),
        }
    }
}

/// Everything that can go wrong talking to PeopleSoft.
///
/// No variant ever contains a password, client secret or token. Variants that carry a
/// response body keep at most [`RAW_BODY_LIMIT`] bytes of it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Invalid configuration (names the field and the value).
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// A prompt value that QAS cannot carry (for example one containing a comma).
    #[error("prompt `{prompt}` value `{value}` is not allowed: {reason}")]
    InvalidPrompt {
        /// The prompt's unique name.
        prompt: String,
        /// The rejected value.
        value: String,
        /// Why.
        reason: String,
    },

    /// PeopleSoft answered 401 or 403. The stream must stop: retrying can lock the account.
    #[error("PeopleSoft rejected the credentials (HTTP {status}) for {url}; not retrying, because repeated attempts may lock the PeopleSoft account (OPRID). Check the user, password or token, and the permission list / query access groups, before the next run")]
    AuthRejected {
        /// 401 or 403.
        status: u16,
        /// The request URL (no credentials are ever in URLs).
        url: String,
        /// The start of the response body.
        body: String,
    },

    /// Not sent: these credentials were rejected earlier (by this process, or by an earlier
    /// run, as recorded by the caller), and every further attempt could lock the OPRID.
    #[error("not sending to PeopleSoft: {rejection}; no further request is made with these credentials, because repeated failed logins lock the PeopleSoft account (OPRID). Fix the credentials (or the user's permission lists), then clear the latch with `reset-auth`")]
    AuthLatched {
        /// The first rejection.
        rejection: crate::latch::AuthRejection,
    },

    /// Not sent: a connection-level failure (DNS, refused connection, TLS) to this host
    /// happened earlier in this cycle, so the remaining requests to it wait for the next one.
    #[error("not sending to PeopleSoft host {host}: {reason} earlier in this cycle; the remaining windows wait for the next cycle")]
    HostUnreachable {
        /// host:port.
        host: String,
        /// The one-line reason (e.g. `cannot resolve host name`).
        reason: String,
    },

    /// The request timed out. A synchronous ExecuteQuery keeps running on PeopleSoft after
    /// the client gave up, so it is not retried at once: the window fails and is retried on
    /// the next cycle.
    #[error("request to {url} hit the timeout after {timeout:?} (setting `request_timeout`); the query may still be running on PeopleSoft, so it is not retried now: the window is retried on the next cycle (raise `request_timeout` or narrow `max_window` if this repeats)")]
    Timeout {
        /// The request URL.
        url: String,
        /// The configured request timeout.
        timeout: std::time::Duration,
    },

    /// An access token could not be obtained from the OAuth token endpoint (no request was
    /// sent to PeopleSoft).
    #[error("could not obtain an OAuth access token: {message}")]
    Token {
        /// What the token endpoint said (never the client secret).
        message: String,
        /// True for outages worth retrying later (connect errors, timeouts, 5xx, 429); false
        /// for refusals such as `invalid_client`.
        transient: bool,
    },

    /// The request did not get an HTTP answer (connect error, timeout), after retries.
    #[error("request to {url} failed: {source}")]
    Transport {
        /// The request URL.
        url: String,
        /// The transport error.
        #[source]
        source: sync_core::http::TransportError,
    },

    /// A non-success HTTP status other than 401/403, with the start of the body.
    #[error("HTTP {status} from {url}: {body}")]
    Http {
        /// The status code.
        status: u16,
        /// The request URL.
        url: String,
        /// The start of the response body.
        body: String,
    },

    /// An Integration Broker error document (`<IBResponse type="error">`), whatever the HTTP status.
    #[error("Integration Broker error from {url} (HTTP {status}, message set {message_set:?}, message {message_id:?}): {message}")]
    IbResponse {
        /// HTTP status it arrived with (often 200).
        status: u16,
        /// The request URL.
        url: String,
        /// `DefaultMessage`.
        message: String,
        /// `MessageSet`, if present.
        message_set: Option<String>,
        /// `MessageID`, if present.
        message_id: Option<String>,
        /// The start of the body.
        raw: String,
    },

    /// An HTML page (typically a gateway, sign-on or proxy error page) where JSON was expected.
    #[error("expected JSON from {url} but got an HTML page (HTTP {status}); a gateway, proxy or sign-on page answered instead of the REST service: {raw}")]
    HtmlPage {
        /// HTTP status it arrived with.
        status: u16,
        /// The request URL.
        url: String,
        /// The start of the body.
        raw: String,
    },

    /// A JSON body whose `status` is not `success`.
    #[error("query service at {url} answered status `{status}`: {raw}")]
    QueryStatus {
        /// The `status` value.
        status: String,
        /// The request URL.
        url: String,
        /// The start of the body.
        raw: String,
    },

    /// A body that is not valid JSON (for example cut off), or JSON of an unexpected shape.
    #[error("invalid response from {url}: {reason}; body: {raw}")]
    InvalidResponse {
        /// The request URL.
        url: String,
        /// What was wrong.
        reason: String,
        /// The start of the body.
        raw: String,
    },

    /// A request was not sent because a blackout window is in force and the configured
    /// action is to skip.
    #[error(
        "PeopleSoft host {host} is in blackout window `{window}` until {until}; request skipped"
    )]
    Blackout {
        /// host:port.
        host: String,
        /// The window's name.
        window: String,
        /// When the blackout ends (UTC).
        until: chrono::DateTime<chrono::Utc>,
    },
}

/// `Result` with this crate's [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// How the sync engine should react to this error.
    ///
    /// - 401/403 → [`FailureKind::StopStream`] (never retried: lockout risk).
    /// - a latched client, a blackout skip, a host found unreachable earlier in the cycle →
    ///   [`FailureKind::Deferred`]: nothing was sent, the window is not an attempt.
    /// - transport errors, 5xx, 429, gateway HTML pages, cut-off bodies, blackout skips →
    ///   [`FailureKind::Transient`].
    /// - token endpoint outages (connect errors, timeouts, 5xx, 429) → transient.
    /// - everything else (bad configuration, bad prompts, IB errors, query errors, token
    ///   endpoint refusals) → [`FailureKind::Permanent`].
    pub fn failure_kind(&self) -> FailureKind {
        match self {
            Error::AuthRejected { .. } => FailureKind::StopStream,
            Error::AuthLatched { .. } | Error::Blackout { .. } | Error::HostUnreachable { .. } => {
                FailureKind::Deferred
            }
            Error::Transport { .. } | Error::HtmlPage { .. } | Error::Timeout { .. } => {
                FailureKind::Transient
            }
            Error::Http { status, .. } if *status >= 500 || *status == 429 || *status == 408 => {
                FailureKind::Transient
            }
            Error::InvalidResponse { .. } => FailureKind::Transient,
            Error::Token {
                transient: true, ..
            } => FailureKind::Transient,
            _ => FailureKind::Permanent,
        }
    }

    /// Converts into the engine's error, prefixing `context` (stream and window) to the message.
    pub fn into_connector_error(self, context: &str) -> ConnectorError {
        let kind = self.failure_kind();
        let message = if context.is_empty() {
            self.to_string()
        } else {
            format!("{context}: {self}")
        };
        let until = match &self {
            Error::Blackout { until, .. } => Some(*until),
            _ => None,
        };
        let e = ConnectorError::new(kind, message);
        let e = match until {
            Some(t) => e.deferred_until(t),
            None => e,
        };
        e.with_source(self)
    }
}

impl From<Error> for ConnectorError {
    fn from(e: Error) -> Self {
        e.into_connector_error("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_char_boundaries() {
        let body = "é".repeat(RAW_BODY_LIMIT);
        let t = truncate_body(&body);
        assert!(t.len() < body.len());
        assert!(t.contains("truncated"));
        assert_eq!(truncate_body("short"), "short");
    }

    #[test]
    fn auth_rejection_stops_the_stream_and_mentions_lockout() {
        let e = Error::AuthRejected {
            status: 401,
            url: "https://h/x".into(),
            body: String::new(),
        };
        assert_eq!(e.failure_kind(), FailureKind::StopStream);
        let c = e.into_connector_error("stream `vendors` window [a, b)");
        assert_eq!(c.kind(), FailureKind::StopStream);
        assert!(c.message().contains("lock"));
        assert!(c.message().contains("vendors"));
    }
}
