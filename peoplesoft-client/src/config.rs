//! Where PeopleSoft is: scheme, host, port, Integration Broker node, optional reverse-proxy
//! prefix, and timeouts. Every part is validated and errors name the field.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;
use std::time::Duration;

use url::Url;

use crate::error::ConfigError;

/// An Integration Broker node name, the segment after `RESTListeningConnector/`
/// (for example `PSFT_EP`, `PSFT_HR`, or a site-specific name such as `HC92UAT`).
///
/// It is the environment's *default local node*; there is no fixed value. Allowed characters:
/// ASCII letters, digits, `_`, `-` and `.` (no `/`, no spaces), 1..=30 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeName(String);

impl NodeName {
    /// Validates a node name.
    pub fn new(name: impl Into<String>) -> Result<Self, ConfigError> {
        let name = name.into();
        validate_name("node", &name, 30)?;
        Ok(Self(name))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for NodeName {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// A PeopleSoft Query (PSQRYDEFN) name, e.g. `MLC_VENDORS`: ASCII letters, digits, `_`, `-`,
/// `.`, 1..=30 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueryName(String);

impl QueryName {
    /// Validates a query name.
    pub fn new(name: impl Into<String>) -> Result<Self, ConfigError> {
        let name = name.into();
        validate_name("query", &name, 30)?;
        Ok(Self(name))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for QueryName {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

fn validate_name(field: &'static str, name: &str, max: usize) -> Result<(), ConfigError> {
    if name.is_empty() {
        return Err(ConfigError::new(field, name, "must not be empty"));
    }
    if name.len() > max {
        return Err(ConfigError::new(
            field,
            name,
            format!("longer than {max} characters"),
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(ConfigError::new(
            field,
            name,
            format!("character {c:?} is not allowed (use letters, digits, `_`, `-`, `.`; no `/` or spaces)"),
        ));
    }
    if name == "." || name == ".." {
        return Err(ConfigError::new(field, name, "is not a name"));
    }
    Ok(())
}

/// URL scheme. HTTPS unless plain HTTP is explicitly allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheme {
    /// `https` (default).
    #[default]
    Https,
    /// `http`: only accepted when [`ConnectionBuilder::allow_http`] was set, because Basic
    /// credentials would cross the network in clear text.
    Http,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }
}

/// Timeouts for every request to PeopleSoft.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP + TLS connect timeout (default 10 s).
    pub connect: Duration,
    /// Whole-request timeout, from sending to the last body byte (default 120 s).
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(120),
        }
    }
}

/// A validated PeopleSoft Integration Broker REST endpoint.
///
/// Its [`base_url`](Connection::base_url) is
/// `{scheme}://{host}:{port}{prefix}/PSIGW/RESTListeningConnector/{node}/`.
///
/// ```
/// use peoplesoft_client::Connection;
///
/// let c = Connection::builder("erp.example.com", 8443, "PSFT_EP").build().unwrap();
/// assert_eq!(
///     c.base_url().as_str(),
///     "https://erp.example.com:8443/PSIGW/RESTListeningConnector/PSFT_EP/"
/// );
/// let v6 = Connection::builder("::1", 443, "PSFT_HR").build().unwrap();
/// assert_eq!(v6.host_port(), "[::1]:443");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    scheme: Scheme,
    host: String,
    port: u16,
    node: NodeName,
    path_prefix: String,
    timeouts: Timeouts,
    base_url: Url,
}

impl Connection {
    /// Starts a builder; nothing is validated until [`ConnectionBuilder::build`].
    pub fn builder(
        host: impl Into<String>,
        port: u32,
        node: impl Into<String>,
    ) -> ConnectionBuilder {
        ConnectionBuilder {
            scheme: Scheme::Https,
            allow_http: false,
            host: host.into(),
            port,
            node: node.into(),
            path_prefix: String::new(),
            timeouts: Timeouts::default(),
        }
    }

    /// `…/PSIGW/RESTListeningConnector/{node}/`, always ending in `/`. The scheme's default
    /// port (443 for https, 80 for http) is omitted, as URLs normalise it.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// The host as it appears in URLs (IPv6 in brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port`, the key for per-host load limits.
    pub fn host_port(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The node.
    pub fn node(&self) -> &NodeName {
        &self.node
    }

    /// The reverse-proxy path prefix (`""` or `/a/b`).
    pub fn path_prefix(&self) -> &str {
        &self.path_prefix
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The timeouts.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// A URL relative to the base (`ExecuteQuery.v1/PUBLIC/Q/JSON/NONFILE`). Path segments
    /// must already be percent-encoded.
    pub(crate) fn join(&self, relative: &str) -> Result<Url, ConfigError> {
        self.base_url
            .join(relative)
            .map_err(|e| ConfigError::new("path", relative, e.to_string()))
    }
}

/// Builder for [`Connection`].
#[derive(Debug, Clone)]
pub struct ConnectionBuilder {
    scheme: Scheme,
    allow_http: bool,
    host: String,
    port: u32,
    node: String,
    path_prefix: String,
    timeouts: Timeouts,
}

impl ConnectionBuilder {
    /// Sets the scheme (HTTPS by default). HTTP also needs [`allow_http`](Self::allow_http).
    pub fn scheme(mut self, scheme: Scheme) -> Self {
        self.scheme = scheme;
        self
    }

    /// Permits plain HTTP (test systems, or TLS terminated on the same host).
    pub fn allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// A path prefix for gateways behind a reverse proxy, e.g. `/erp` gives
    /// `https://host:8443/erp/PSIGW/RESTListeningConnector/NODE/`. It is inserted before
    /// `/PSIGW` and replaces nothing.
    pub fn path_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.path_prefix = prefix.into();
        self
    }

    /// Connect timeout (default 10 s).
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.timeouts.connect = t;
        self
    }

    /// Whole-request timeout (default 120 s).
    pub fn request_timeout(mut self, t: Duration) -> Self {
        self.timeouts.request = t;
        self
    }

    /// Validates every part and builds the connection.
    pub fn build(self) -> Result<Connection, ConfigError> {
        if self.scheme == Scheme::Http && !self.allow_http {
            return Err(ConfigError::new(
                "scheme",
                "http",
                "plain HTTP sends credentials in clear text; call allow_http(true) to permit it",
            ));
        }
        let host = validate_host(&self.host)?;
        if self.port == 0 || self.port > u32::from(u16::MAX) {
            return Err(ConfigError::new(
                "port",
                self.port.to_string(),
                "must be between 1 and 65535",
            ));
        }
        let port = self.port as u16;
        let node = NodeName::new(self.node)?;
        let prefix = validate_prefix(&self.path_prefix)?;
        if self.timeouts.connect.is_zero() {
            return Err(ConfigError::new(
                "connect_timeout",
                "0s",
                "must be greater than zero",
            ));
        }
        if self.timeouts.request.is_zero() {
            return Err(ConfigError::new(
                "request_timeout",
                "0s",
                "must be greater than zero",
            ));
        }
        let text = format!(
            "{}://{}:{}{}/PSIGW/RESTListeningConnector/{}/",
            self.scheme.as_str(),
            host,
            port,
            prefix,
            node
        );
        let base_url =
            Url::parse(&text).map_err(|e| ConfigError::new("host", &self.host, e.to_string()))?;
        Ok(Connection {
            scheme: self.scheme,
            host,
            port,
            node,
            path_prefix: prefix,
            timeouts: self.timeouts,
            base_url,
        })
    }
}

fn validate_host(raw: &str) -> Result<String, ConfigError> {
    let h = raw.trim();
    if h.is_empty() {
        return Err(ConfigError::new("host", raw, "must not be empty"));
    }
    if h.contains("://") {
        return Err(ConfigError::new(
            "host",
            raw,
            "give the host name only, without a scheme (set the scheme separately)",
        ));
    }
    if h.contains('/') || h.contains('?') || h.contains('#') {
        return Err(ConfigError::new(
            "host",
            raw,
            "give the host name only, without a path (use path_prefix for a reverse-proxy path)",
        ));
    }
    if h.contains('@') {
        return Err(ConfigError::new(
            "host",
            raw,
            "must not contain user information (`@`)",
        ));
    }
    // IPv6, bracketed or not.
    let bare = h
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(h);
    if bare.contains(':') {
        return match bare.parse::<Ipv6Addr>() {
            Ok(ip) => Ok(format!("[{ip}]")),
            Err(_) => Err(ConfigError::new(
                "host",
                raw,
                "contains `:` but is not an IPv6 address (give the port separately)",
            )),
        };
    }
    if let Some(c) = h
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(ConfigError::new(
            "host",
            raw,
            format!("character {c:?} is not allowed in a host name"),
        ));
    }
    // Let the URL parser have the final word (e.g. on labels).
    Url::parse(&format!("https://{h}/"))
        .map_err(|e| ConfigError::new("host", raw, e.to_string()))?;
    Ok(h.to_ascii_lowercase())
}

fn validate_prefix(raw: &str) -> Result<String, ConfigError> {
    let p = raw.trim().trim_end_matches('/');
    if p.is_empty() {
        return Ok(String::new());
    }
    let p = if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    };
    for seg in p.split('/').skip(1) {
        if seg.is_empty() || seg == "." || seg == ".." {
            return Err(ConfigError::new(
                "path_prefix",
                raw,
                "contains an empty, `.` or `..` segment",
            ));
        }
        if let Some(c) = seg
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '~')))
        {
            return Err(ConfigError::new(
                "path_prefix",
                raw,
                format!("character {c:?} is not allowed in a path prefix"),
            ));
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(host: &str, port: u32, node: &str, prefix: &str) -> String {
        Connection::builder(host, port, node)
            .path_prefix(prefix)
            .build()
            .unwrap()
            .base_url()
            .to_string()
    }

    #[test]
    fn builds_base_urls_for_many_combinations() {
        let cases = [
            (
                "erp.example.com",
                443,
                "PSFT_EP",
                "",
                "https://erp.example.com/PSIGW/RESTListeningConnector/PSFT_EP/",
            ),
            (
                "ERP.Example.COM",
                8443,
                "PSFT_HR",
                "",
                "https://erp.example.com:8443/PSIGW/RESTListeningConnector/PSFT_HR/",
            ),
            (
                "10.0.0.5",
                8000,
                "HC92UAT",
                "",
                "https://10.0.0.5:8000/PSIGW/RESTListeningConnector/HC92UAT/",
            ),
            (
                "::1",
                443,
                "PSFT_CS",
                "",
                "https://[::1]/PSIGW/RESTListeningConnector/PSFT_CS/",
            ),
            (
                "[2001:db8::10]",
                9443,
                "CAMPUS",
                "",
                "https://[2001:db8::10]:9443/PSIGW/RESTListeningConnector/CAMPUS/",
            ),
            (
                "proxy.example.com",
                443,
                "PSFT_EP",
                "/erp",
                "https://proxy.example.com/erp/PSIGW/RESTListeningConnector/PSFT_EP/",
            ),
            (
                "proxy.example.com",
                443,
                "PSFT_EP",
                "erp/prod/",
                "https://proxy.example.com/erp/prod/PSIGW/RESTListeningConnector/PSFT_EP/",
            ),
            (
                "h",
                1,
                "N",
                "",
                "https://h:1/PSIGW/RESTListeningConnector/N/",
            ),
            (
                "h",
                65535,
                "PSFT_SAPROD",
                "",
                "https://h:65535/PSIGW/RESTListeningConnector/PSFT_SAPROD/",
            ),
        ];
        for (host, port, node, prefix, want) in cases {
            assert_eq!(
                url(host, port, node, prefix),
                want,
                "{host} {port} {node} {prefix}"
            );
        }
    }

    #[test]
    fn validation_errors_name_the_field() {
        let field = |b: ConnectionBuilder| b.build().unwrap_err().field;
        assert_eq!(field(Connection::builder("h", 443, "")), "node");
        assert_eq!(field(Connection::builder("h", 443, "PSFT/EP")), "node");
        assert_eq!(field(Connection::builder("h", 443, "PSFT EP")), "node");
        assert_eq!(field(Connection::builder("https://h", 443, "N")), "host");
        assert_eq!(field(Connection::builder("h/psp", 443, "N")), "host");
        assert_eq!(field(Connection::builder("", 443, "N")), "host");
        assert_eq!(field(Connection::builder("h:8000", 443, "N")), "host");
        assert_eq!(field(Connection::builder("h", 0, "N")), "port");
        assert_eq!(field(Connection::builder("h", 70000, "N")), "port");
        assert_eq!(
            field(Connection::builder("h", 443, "N").path_prefix("/a/../b")),
            "path_prefix"
        );
        assert_eq!(
            field(Connection::builder("h", 443, "N").scheme(Scheme::Http)),
            "scheme"
        );
        assert_eq!(
            field(Connection::builder("h", 443, "N").request_timeout(Duration::ZERO)),
            "request_timeout"
        );
        let e = Connection::builder("h", 443, "PSFT EP")
            .build()
            .unwrap_err();
        assert!(
            e.to_string().contains("`node`") && e.to_string().contains("PSFT EP"),
            "{e}"
        );
    }

    #[test]
    fn http_only_when_allowed() {
        let c = Connection::builder("127.0.0.1", 8080, "N")
            .scheme(Scheme::Http)
            .allow_http(true)
            .build()
            .unwrap();
        assert_eq!(
            c.base_url().as_str(),
            "http://127.0.0.1:8080/PSIGW/RESTListeningConnector/N/"
        );
        assert_eq!(c.host_port(), "127.0.0.1:8080");
    }

    #[test]
    fn query_names_are_validated() {
        assert!(QueryName::new("MLC_VENDORS").is_ok());
        assert_eq!(QueryName::new("A B").unwrap_err().field, "query");
        assert_eq!(QueryName::new("..").unwrap_err().field, "query");
    }
}
