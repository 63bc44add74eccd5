//! One `ExecuteQuery` call: owner, query, row cap and prompts, as a relative URL.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};

use crate::config::QueryName;
use crate::error::Error;

/// Characters left as-is in query-string values: the RFC 3986 unreserved set. Everything else,
/// including space, `&`, `=`, `+`, `,` and all non-ASCII bytes, is percent-encoded.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub(crate) fn encode(v: &str) -> String {
    utf8_percent_encode(v, QUERY_VALUE).to_string()
}

/// Whether a query is public or owned by the calling user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum QueryOwner {
    /// `PUBLIC` (default).
    #[default]
    Public,
    /// `PRIVATE` (owned by the OPRID that calls).
    Private,
}

impl QueryOwner {
    /// `PUBLIC` or `PRIVATE`.
    pub fn as_str(self) -> &'static str {
        match self {
            QueryOwner::Public => "PUBLIC",
            QueryOwner::Private => "PRIVATE",
        }
    }
}

/// Default `maxrows` for [`ExecuteQuery`]: 50,000 (Oracle advises against larger in-memory
/// query results).
pub const DEFAULT_MAX_ROWS: u32 = 50_000;

/// One synchronous QAS `ExecuteQuery` call.
///
/// ```
/// use peoplesoft_client::{ExecuteQuery, QueryName};
///
/// let q = ExecuteQuery::new(QueryName::new("MLC_VENDORS").unwrap())
///     .max_rows(1000)
///     .prompt("FROM_DTTM", "2026-01-01")
///     .prompt("TO_DTTM", "2026-01-02");
/// assert_eq!(
///     q.relative_url().unwrap(),
///     "ExecuteQuery.v1/PUBLIC/MLC_VENDORS/JSON/NONFILE?isconnectedquery=N&maxrows=1000\
///      &prompt_uniquepromptname=FROM_DTTM,TO_DTTM&prompt_fieldvalue=2026-01-01,2026-01-02&json_resp=true"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecuteQuery {
    /// The query.
    pub query: QueryName,
    /// Public or private.
    pub owner: QueryOwner,
    /// `maxrows`; must be > 0 so truncation can be detected (QAS `0` means "profile limit").
    pub max_rows: u32,
    /// Prompts in order: (unique prompt name, value). An empty value skips an optional prompt.
    pub prompts: Vec<(String, String)>,
}

impl ExecuteQuery {
    /// A public query with [`DEFAULT_MAX_ROWS`] and no prompts.
    pub fn new(query: QueryName) -> Self {
        Self {
            query,
            owner: QueryOwner::Public,
            max_rows: DEFAULT_MAX_ROWS,
            prompts: Vec::new(),
        }
    }

    /// Sets the owner.
    pub fn owner(mut self, owner: QueryOwner) -> Self {
        self.owner = owner;
        self
    }

    /// Sets `maxrows`.
    pub fn max_rows(mut self, n: u32) -> Self {
        self.max_rows = n;
        self
    }

    /// Appends a prompt (order matters: QAS matches names and values by position).
    pub fn prompt(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.prompts.push((name.into(), value.into()));
        self
    }

    /// The URL relative to the node base, with every prompt name and value percent-encoded and
    /// the separating commas literal.
    ///
    /// Errors: `maxrows` of 0, an empty prompt name, or a prompt name or value containing a
    /// comma (QAS separates prompts by commas and documents no escape).
    pub fn relative_url(&self) -> Result<String, Error> {
        if self.max_rows == 0 {
            return Err(crate::error::ConfigError::new(
                "max_rows",
                "0",
                "must be greater than 0 so that a truncated result can be detected",
            )
            .into());
        }
        let mut url = format!(
            "ExecuteQuery.v1/{}/{}/JSON/NONFILE?isconnectedquery=N&maxrows={}",
            self.owner.as_str(),
            encode(self.query.as_str()),
            self.max_rows
        );
        if !self.prompts.is_empty() {
            let mut names = Vec::with_capacity(self.prompts.len());
            let mut values = Vec::with_capacity(self.prompts.len());
            for (name, value) in &self.prompts {
                check_prompt(name, value)?;
                names.push(encode(name));
                values.push(encode(value));
            }
            url.push_str("&prompt_uniquepromptname=");
            url.push_str(&names.join(","));
            url.push_str("&prompt_fieldvalue=");
            url.push_str(&values.join(","));
        }
        url.push_str("&json_resp=true");
        Ok(url)
    }
}

fn check_prompt(name: &str, value: &str) -> Result<(), Error> {
    let bad = |reason: &str| Error::InvalidPrompt {
        prompt: name.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    };
    if name.trim().is_empty() {
        return Err(bad("the prompt name is empty"));
    }
    if name.contains(',') {
        return Err(bad(
            "the prompt name contains a comma, which QAS uses to separate prompts",
        ));
    }
    if value.contains(',') {
        return Err(bad(
            "the value contains a comma; QAS separates prompt values by commas and has no documented escape, so the value would be split",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_values_are_percent_encoded() {
        let q = ExecuteQuery::new(QueryName::new("Q").unwrap())
            .max_rows(10)
            .prompt("P 1", "a b&c=d+e/f")
            .prompt("P2", "Zürich ü")
            .prompt("P3", "");
        let u = q.relative_url().unwrap();
        assert!(u.contains("prompt_uniquepromptname=P%201,P2,P3"), "{u}");
        assert!(
            u.contains(
                "prompt_fieldvalue=a%20b%26c%3Dd%2Be%2Ff,Z%C3%BCrich%20%C3%BC,&json_resp=true"
            ),
            "{u}"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_comma_free_value_survives_encoding(v in "[^,]{0,40}") {
            let q = ExecuteQuery::new(QueryName::new("Q").unwrap()).prompt("P", v.clone());
            let url = q.relative_url().unwrap();
            let sent = url
                .split("prompt_fieldvalue=")
                .nth(1)
                .and_then(|r| r.split('&').next())
                .unwrap();
            // Only unreserved characters and escapes reach the wire...
            proptest::prop_assert!(sent
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b)));
            // ...and the server decodes exactly the original value.
            let decoded = percent_encoding::percent_decode_str(sent).decode_utf8().unwrap();
            proptest::prop_assert_eq!(decoded, v);
        }
    }

    #[test]
    fn comma_in_a_value_is_rejected_with_a_clear_error() {
        let q = ExecuteQuery::new(QueryName::new("Q").unwrap()).prompt("NAME", "Smith, J");
        let e = q.relative_url().unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("NAME") && s.contains("Smith, J") && s.contains("comma"),
            "{s}"
        );
        let q = ExecuteQuery::new(QueryName::new("Q").unwrap()).max_rows(0);
        assert!(q
            .relative_url()
            .unwrap_err()
            .to_string()
            .contains("max_rows"));
    }
}
