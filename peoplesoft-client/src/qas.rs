//! Query Access Services (QAS) REST: request building and response parsing.
//!
//! The wire format follows practitioner code and Oracle's operation docs (see the crate docs):
//! `ExecuteQuery.v1/{PUBLIC|PRIVATE}/{QUERY}/JSON/NONFILE?isconnectedquery=N&maxrows=N
//! &prompt_uniquepromptname=P1,P2&prompt_fieldvalue=v1,v2&json_resp=true`.
//! The `JSON` result type and the response shape are practitioner-observed, not documented
//! by Oracle.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};
use sync_core::Record;

use crate::config::QueryName;
use crate::error::{truncate_body, Error};

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

/// The rows of one `ExecuteQuery` answer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueryResult {
    /// `queryname` as reported (may be absent).
    pub query_name: Option<String>,
    /// `numrows` as reported (falls back to the number of rows).
    pub num_rows: u64,
    /// The rows, field name → value, without `attr:rownumber`. Field names are as sent
    /// (usually with a record-alias prefix such as `A.`). A JSON number with more than 15
    /// significant digits arrives as a string holding its exact digits (an `f64` would round
    /// it); shorter numbers stay JSON numbers.
    pub rows: Vec<Record>,
    /// True when `numrows` reached `maxrows`: rows may be missing.
    pub truncated: bool,
}

/// Classifies a non-JSON body: an `IBResponse` error document, an HTML page, or garbage.
pub(crate) fn non_json_error(status: u16, url: &str, body: &str) -> Option<Error> {
    let t = body.trim_start();
    if t.starts_with('<') {
        if body.contains("IBResponse") {
            return Some(parse_ib_response(status, url, body));
        }
        let mut end = t.len().min(512);
        while !t.is_char_boundary(end) {
            end -= 1;
        }
        let head = t[..end].to_ascii_lowercase();
        if head.contains("<html") || head.contains("<!doctype html") {
            return Some(Error::HtmlPage {
                status,
                url: url.to_string(),
                raw: truncate_body(body),
            });
        }
    }
    None
}

/// Extracts DefaultMessage / MessageSet / MessageID from `<IBResponse type="error">`.
pub(crate) fn parse_ib_response(status: u16, url: &str, body: &str) -> Error {
    let message = xml_text(body, "DefaultMessage")
        .filter(|m| !m.is_empty())
        .or_else(|| xml_text(body, "DefaultTitle"))
        .unwrap_or_else(|| "Integration Broker error (no DefaultMessage)".to_string());
    Error::IbResponse {
        status,
        url: url.to_string(),
        message,
        message_set: xml_text(body, "MessageSet").filter(|s| !s.is_empty()),
        message_id: xml_text(body, "MessageID").filter(|s| !s.is_empty()),
        raw: truncate_body(body),
    }
}

/// The text of the first `<tag>…</tag>` (CDATA unwrapped, basic entities decoded).
fn xml_text(body: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}");
    let start = body.find(&open)?;
    let after = &body[start + open.len()..];
    // `<tag>` or `<tag attr="…">`, not `<tagOther>`; `<tag/>` is empty.
    let first = after.chars().next()?;
    if first != '>' && !first.is_whitespace() && first != '/' {
        return None;
    }
    let gt = after.find('>')?;
    if after[..gt].ends_with('/') {
        return Some(String::new());
    }
    let content = &after[gt + 1..];
    let end = content.find(&format!("</{tag}>"))?;
    let mut text = content[..end].trim().to_string();
    if let Some(inner) = text
        .strip_prefix("<![CDATA[")
        .and_then(|r| r.strip_suffix("]]>"))
    {
        text = inner.to_string();
    } else {
        text = text
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&");
    }
    Some(text)
}

/// Quotes JSON number literals with more than 15 significant digits, so they reach
/// [`rust_decimal`] as exact text instead of being rounded through `f64` by `serde_json`.
/// Shorter numbers round-trip exactly through `f64`'s shortest representation.
pub(crate) fn quote_long_numbers(body: &str) -> std::borrow::Cow<'_, str> {
    let b = body.as_bytes();
    let mut out: Option<String> = None;
    let mut last = 0;
    let mut i = 0;
    let mut in_str = false;
    while i < b.len() {
        let c = b[i];
        if in_str {
            match c {
                b'\\' => i += 1,
                b'"' => in_str = false,
                _ => {
                    i = skip_plain(b, i + 1);
                    continue;
                }
            }
            i += 1;
            continue;
        }
        if c == b'"' {
            in_str = true;
            i += 1;
            continue;
        }
        if c == b'-' || c.is_ascii_digit() {
            let start = i;
            while i < b.len() && matches!(b[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
                i += 1;
            }
            let lit = &body[start..i];
            let mantissa = lit.split(['e', 'E']).next().unwrap_or(lit);
            let digits = mantissa
                .bytes()
                .filter(u8::is_ascii_digit)
                .skip_while(|d| *d == b'0')
                .count();
            if digits > 15 {
                let o = out.get_or_insert_with(|| String::with_capacity(body.len() + 16));
                o.push_str(&body[last..start]);
                o.push('"');
                o.push_str(lit);
                o.push('"');
                last = i;
            }
            continue;
        }
        i += 1;
    }
    match out {
        Some(mut o) => {
            o.push_str(&body[last..]);
            std::borrow::Cow::Owned(o)
        }
        None => std::borrow::Cow::Borrowed(body),
    }
}

/// How the field names of `ExecuteQuery` rows are delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowKeys {
    /// As sent (`A.VENDOR_ID`).
    AsSent,
    /// Without record-alias prefixes, exactly as
    /// [`strip_alias_prefixes`](crate::records::strip_alias_prefixes) would give them.
    StripAlias,
}

/// The index of the first `"` or `\\` in `b` at or after `from` (`b.len()` when none), eight
/// bytes at a time.
fn skip_plain(b: &[u8], mut from: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    while let Some(chunk) = b.get(from..from + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let x = u64::from_le_bytes(w);
        let hit = has_zero(x ^ (ONES * u64::from(b'"'))) | has_zero(x ^ (ONES * u64::from(b'\\')));
        if hit != 0 {
            return from + (hit.trailing_zeros() / 8) as usize;
        }
        from += 8;
    }
    while from < b.len() && b[from] != b'"' && b[from] != b'\\' {
        from += 1;
    }
    from
}

/// Parses an HTTP-200 `ExecuteQuery` JSON body, delivering field names as `keys` says.
/// `max_rows` is the requested cap.
///
/// The usual answer (an object with a string `status`, `data.query` an object whose `rows` is
/// an array of flat objects) is parsed in one pass straight into the records, without a
/// JSON tree of the whole body; anything else takes the general path, which gives the same
/// result and the same errors.
pub(crate) fn parse_execute_query_keys(
    url: &str,
    body: &str,
    max_rows: u32,
    keys: RowKeys,
) -> Result<QueryResult, Error> {
    if let Some(e) = non_json_error(200, url, body) {
        return Err(e);
    }
    let text = quote_long_numbers(body);
    if let Ok(fast) = fast::parse(&text, keys) {
        if fast
            .status
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("success"))
        {
            let out = fast.rows;
            let num_rows = fast
                .num_rows
                .as_ref()
                .and_then(|n| {
                    n.as_u64()
                        .or_else(|| n.as_str().and_then(|s| s.trim().parse().ok()))
                })
                .unwrap_or(out.len() as u64);
            let query_name = fast
                .query_name
                .as_ref()
                .and_then(|q| q.as_str())
                .map(str::to_string);
            let truncated =
                max_rows > 0 && (num_rows >= u64::from(max_rows) || out.len() >= max_rows as usize);
            return Ok(QueryResult {
                query_name,
                num_rows,
                rows: out,
                truncated,
            });
        }
    }
    let mut result = parse_general(url, body, &text, max_rows)?;
    if keys == RowKeys::StripAlias {
        result.rows = result
            .rows
            .into_iter()
            .map(|r| crate::records::strip_alias_prefixes(&r))
            .collect();
    }
    Ok(result)
}

/// The general (tree-based) parse of an `ExecuteQuery` body; `text` is `body` with long
/// numbers quoted.
fn parse_general(url: &str, body: &str, text: &str, max_rows: u32) -> Result<QueryResult, Error> {
    let invalid = |reason: String| Error::InvalidResponse {
        url: url.to_string(),
        reason,
        raw: truncate_body(body),
    };
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| invalid(format!("not valid JSON (cut off?): {e}")))?;
    let status = v.get("status").and_then(|s| s.as_str());
    match status {
        Some(s) if s.eq_ignore_ascii_case("success") => {}
        Some(s) => {
            return Err(Error::QueryStatus {
                status: s.to_string(),
                url: url.to_string(),
                raw: truncate_body(body),
            })
        }
        None => return Err(invalid("no `status` field".into())),
    }
    let query = v
        .get("data")
        .and_then(|d| d.get("query"))
        .ok_or_else(|| invalid("no `data.query` object".into()))?;
    let rows = match query.get("rows") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(a)) => a.clone(),
        // A single row has been seen serialised as an object by some XML→JSON paths.
        Some(serde_json::Value::Object(o)) => vec![serde_json::Value::Object(o.clone())],
        Some(other) => return Err(invalid(format!("`rows` is {other}, not an array"))),
    };
    let mut out = Vec::with_capacity(rows.len());
    for (i, row) in rows.into_iter().enumerate() {
        match row {
            serde_json::Value::Object(mut m) => {
                m.remove("attr:rownumber");
                out.push(m);
            }
            other => return Err(invalid(format!("row {i} is {other}, not an object"))),
        }
    }
    let num_rows = query
        .get("numrows")
        .and_then(|n| {
            n.as_u64()
                .or_else(|| n.as_str().and_then(|s| s.trim().parse().ok()))
        })
        .unwrap_or(out.len() as u64);
    let query_name = query
        .get("queryname")
        .and_then(|q| q.as_str())
        .map(str::to_string);
    let truncated =
        max_rows > 0 && (num_rows >= u64::from(max_rows) || out.len() >= max_rows as usize);
    Ok(QueryResult {
        query_name,
        num_rows,
        rows: out,
        truncated,
    })
}

/// The one-pass parse of the usual `ExecuteQuery` answer. Any deviation from the usual shape
/// (or a duplicate envelope key) is an error here, and the caller takes the general path.
mod fast {
    use std::fmt;

    use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use serde_json::Value;
    use sync_core::Record;

    use super::RowKeys;
    use crate::records::strip_alias;

    pub(super) struct Parsed {
        pub(super) status: Option<String>,
        pub(super) num_rows: Option<Value>,
        pub(super) query_name: Option<Value>,
        pub(super) rows: Vec<Record>,
    }

    pub(super) fn parse(text: &str, keys: RowKeys) -> Result<Parsed, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        let parsed = Envelope { keys }.deserialize(&mut de)?;
        de.end()?;
        Ok(parsed)
    }

    fn unusual<E: de::Error>(what: &str) -> E {
        E::custom(format_args!("unusual ExecuteQuery answer: {what}"))
    }

    /// A field name, borrowed from the body when it has no escapes.
    enum Key<'de> {
        Borrowed(&'de str),
        Owned(String),
    }

    impl Key<'_> {
        fn as_str(&self) -> &str {
            match self {
                Key::Borrowed(s) => s,
                Key::Owned(s) => s,
            }
        }

        /// The name without its first `skip` bytes, as an owned string.
        fn into_string(self, skip: usize) -> String {
            match self {
                Key::Borrowed(s) => s[skip..].to_string(),
                Key::Owned(mut s) => {
                    s.drain(..skip);
                    s
                }
            }
        }
    }

    struct KeySeed;

    impl<'de> DeserializeSeed<'de> for KeySeed {
        type Value = Key<'de>;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Key<'de>, D::Error> {
            d.deserialize_str(self)
        }
    }

    impl<'de> Visitor<'de> for KeySeed {
        type Value = Key<'de>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a field name")
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
            Ok(Key::Borrowed(v))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
            Ok(Key::Owned(v.to_string()))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
            Ok(Key::Owned(v))
        }
    }

    /// `{"status": .., "data": {"query": {..}}}`
    struct Envelope {
        keys: RowKeys,
    }

    impl<'de> DeserializeSeed<'de> for Envelope {
        type Value = Parsed;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Parsed, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for Envelope {
        type Value = Parsed;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an ExecuteQuery answer")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed, A::Error> {
            let mut status: Option<String> = None;
            let mut query: Option<QueryPart> = None;
            let mut seen_status = false;
            while let Some(key) = map.next_key_seed(KeySeed)? {
                match key.as_str() {
                    "status" => {
                        if seen_status {
                            return Err(unusual("duplicate `status`"));
                        }
                        seen_status = true;
                        status = Some(map.next_value()?);
                    }
                    "data" => {
                        if query.is_some() {
                            return Err(unusual("duplicate `data`"));
                        }
                        query = Some(map.next_value_seed(Data { keys: self.keys })?);
                    }
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            let query = query.ok_or_else(|| unusual("no `data`"))?;
            Ok(Parsed {
                status,
                num_rows: query.num_rows,
                query_name: query.query_name,
                rows: query.rows,
            })
        }
    }

    struct QueryPart {
        num_rows: Option<Value>,
        query_name: Option<Value>,
        rows: Vec<Record>,
    }

    /// `{"query": {..}}`
    struct Data {
        keys: RowKeys,
    }

    impl<'de> DeserializeSeed<'de> for Data {
        type Value = QueryPart;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<QueryPart, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for Data {
        type Value = QueryPart;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("the `data` object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<QueryPart, A::Error> {
            let mut query = None;
            while let Some(key) = map.next_key_seed(KeySeed)? {
                if key.as_str() == "query" {
                    if query.is_some() {
                        return Err(unusual("duplicate `query`"));
                    }
                    query = Some(map.next_value_seed(Query { keys: self.keys })?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            query.ok_or_else(|| unusual("no `data.query`"))
        }
    }

    /// `{"numrows": N, "queryname": "Q", "rows": [..]}`
    struct Query {
        keys: RowKeys,
    }

    impl<'de> DeserializeSeed<'de> for Query {
        type Value = QueryPart;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<QueryPart, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for Query {
        type Value = QueryPart;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("the `data.query` object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<QueryPart, A::Error> {
            let (mut num_rows, mut query_name, mut rows) = (None, None, None);
            while let Some(key) = map.next_key_seed(KeySeed)? {
                match key.as_str() {
                    "numrows" if num_rows.is_none() => num_rows = Some(map.next_value()?),
                    "queryname" if query_name.is_none() => query_name = Some(map.next_value()?),
                    "rows" if rows.is_none() => {
                        rows = Some(map.next_value_seed(Rows { keys: self.keys })?)
                    }
                    "numrows" | "queryname" | "rows" => {
                        return Err(unusual("duplicate key in `data.query`"))
                    }
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(QueryPart {
                num_rows,
                query_name,
                rows: rows.unwrap_or_default(),
            })
        }
    }

    /// `[{..}, ..]` or `null`.
    struct Rows {
        keys: RowKeys,
    }

    impl<'de> DeserializeSeed<'de> for Rows {
        type Value = Vec<Record>;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Vec<Record>, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Rows {
        type Value = Vec<Record>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of rows")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Vec<Record>, E> {
            Ok(Vec::new())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Record>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(65_536));
            let mut scratch: Vec<(Key<'de>, Value)> = Vec::new();
            while let Some(record) = seq.next_element_seed(RowSeed {
                keys: self.keys,
                scratch: &mut scratch,
            })? {
                out.push(record);
            }
            Ok(out)
        }
    }

    /// One row. Field order, duplicates (the last one wins) and prefix collisions are
    /// resolved exactly as parsing into a map, removing `attr:rownumber` and then
    /// [`strip_alias_prefixes`](crate::records::strip_alias_prefixes) would.
    struct RowSeed<'s, 'de> {
        keys: RowKeys,
        scratch: &'s mut Vec<(Key<'de>, Value)>,
    }

    impl<'de> DeserializeSeed<'de> for RowSeed<'_, 'de> {
        type Value = Record;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Record, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for RowSeed<'_, 'de> {
        type Value = Record;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a row object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record, A::Error> {
            let fields = self.scratch;
            fields.clear();
            while let Some(key) = map.next_key_seed(KeySeed)? {
                if key.as_str() == "attr:rownumber" {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
                let value: Value = map.next_value()?;
                fields.push((key, value));
            }
            Ok(build_record(fields, self.keys))
        }
    }

    /// Length of the alias prefix of `name` including its `.` (0 when there is none).
    fn prefix_len(name: &str) -> usize {
        name.len() - strip_alias(name).len()
    }

    fn build_record(fields: &mut Vec<(Key<'_>, Value)>, keys: RowKeys) -> Record {
        // Map order (sorted by name); among equal names the last one wins.
        fields.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        let mut unique = 0;
        for i in 0..fields.len() {
            if unique > 0 && fields[unique - 1].0.as_str() == fields[i].0.as_str() {
                fields.swap(unique - 1, i);
            } else {
                fields.swap(unique, i);
                unique += 1;
            }
        }
        fields.truncate(unique);
        // `fields` is sorted and distinct: inserting in order builds the map without the
        // buffer and sort `collect` would spend.
        let mut out = Record::new();
        match keys {
            RowKeys::AsSent => {
                for (k, v) in fields.drain(..) {
                    out.insert(k.into_string(0), v);
                }
            }
            RowKeys::StripAlias => {
                // Without collisions, the stripped names keep the sorted order and stay
                // distinct; otherwise apply the first-comes-first rule field by field.
                let sorted_distinct = fields.windows(2).all(|w| {
                    let (a, b) = (w[0].0.as_str(), w[1].0.as_str());
                    strip_alias(a) < strip_alias(b)
                });
                for (k, v) in fields.drain(..) {
                    let skip = prefix_len(k.as_str());
                    let skip = if !sorted_distinct && out.contains_key(&k.as_str()[skip..]) {
                        0
                    } else {
                        skip
                    };
                    out.insert(k.into_string(skip), v);
                }
            }
        }
        out
    }
}

/// One prompt of a query, from `QueryPrompts.v1`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct PromptInfo {
    /// `UniquePromptName`: the name to send in `prompt_uniquepromptname`.
    pub unique_prompt_name: String,
    /// `FieldName`.
    pub field_name: String,
    /// `HeadingText`.
    pub heading_text: String,
    /// `FieldType` (e.g. Date, Datetime, Character, Number).
    pub field_type: String,
    /// `FormatText`.
    pub format_text: String,
    /// `FieldLength`.
    pub field_length: Option<u32>,
    /// `FieldDecimal`.
    pub field_decimal: Option<u32>,
}

/// Parses a `QueryPrompts.v1` JSON body tolerantly: any object anywhere in the document that
/// has a `UniquePromptName` or `FieldName` key (any case, with or without an `attr:` prefix)
/// is one prompt. Values may be strings or numbers.
pub(crate) fn parse_prompts(url: &str, body: &str) -> Result<Vec<PromptInfo>, Error> {
    if let Some(e) = non_json_error(200, url, body) {
        return Err(e);
    }
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| Error::InvalidResponse {
        url: url.to_string(),
        reason: format!("not valid JSON (cut off?): {e}"),
        raw: truncate_body(body),
    })?;
    if let Some(s) = v.get("status").and_then(|s| s.as_str()) {
        if !s.eq_ignore_ascii_case("success") {
            return Err(Error::QueryStatus {
                status: s.to_string(),
                url: url.to_string(),
                raw: truncate_body(body),
            });
        }
    }
    let mut out = Vec::new();
    collect_prompts(&v, &mut out);
    Ok(out)
}

fn collect_prompts(v: &serde_json::Value, out: &mut Vec<PromptInfo>) {
    match v {
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_prompts(x, out)),
        serde_json::Value::Object(m) => {
            let get = |k: &str| {
                m.iter()
                    .find(|(key, _)| {
                        let key = key.rsplit(':').next().unwrap_or(key);
                        key.eq_ignore_ascii_case(k)
                    })
                    .map(|(_, v)| v)
            };
            let text = |k: &str| match get(k) {
                Some(serde_json::Value::String(s)) => s.trim().to_string(),
                Some(serde_json::Value::Number(n)) => n.to_string(),
                _ => String::new(),
            };
            let num = |k: &str| {
                let t = text(k);
                t.parse::<u32>().ok()
            };
            if get("UniquePromptName").is_some() || get("FieldName").is_some() {
                out.push(PromptInfo {
                    unique_prompt_name: text("UniquePromptName"),
                    field_name: text("FieldName"),
                    heading_text: text("HeadingText"),
                    field_type: text("FieldType"),
                    format_text: text("FormatText"),
                    field_length: num("FieldLength"),
                    field_decimal: num("FieldDecimal"),
                });
            } else {
                m.values().for_each(|x| collect_prompts(x, out));
            }
        }
        _ => {}
    }
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

    #[test]
    fn long_numbers_are_kept_exact() {
        let body = r#"{"a":12345678901234567.891,"b":"9999999999999999999","c":1.5,"d":[-0.0000000000000001234]}"#;
        let q = quote_long_numbers(body);
        assert_eq!(
            q,
            r#"{"a":"12345678901234567.891","b":"9999999999999999999","c":1.5,"d":[-0.0000000000000001234]}"#
        );
        assert!(matches!(
            quote_long_numbers("{\"x\":1}"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    /// The one-pass parse gives exactly what the general parse (and stripping prefixes after
    /// it) gives, for usual and awkward rows alike.
    #[test]
    fn one_pass_parse_matches_the_general_parse() {
        let bodies = [
            r#"{"status":"success","data":{"query":{"numrows":3,"queryname":"Q","rows":[
                {"attr:rownumber":1,"A.ID":"1","A.AMT":12345678901234567.891,"A.N":1.5,"B.X":null},
                {"attr:rownumber":2,"A.ID":"2","A.AMT":"7","A.N":[1,{"k":"v"}],"B.X":true},
                {"attr:rownumber":3,"A.ID":"3","A.AMT":"7","A.N":-2,"B.X":"\u00fc\"q\""}]}}}"#,
            // Collisions after stripping, an unprefixed twin, duplicates (the last one wins),
            // escaped names and a long prefix that is not an alias.
            r#"{"data":{"query":{"rows":[{"A.EMPLID":"a","B.EMPLID":"b","EMPLID":"c",
                "X.DUP":1,"X.DUP":2,"A\u002eESC":"e","VERYLONGPREFIX.F":"f","attr:rownumber":9}],
                "numrows":"1","queryname":"Q"}},"status":"SUCCESS","extra":[1,2]}"#,
            r#"{"status":"success","data":{"query":{"numrows":0,"queryname":"Q","rows":null}}}"#,
            r#"{"status":"success","data":{"query":{"queryname":"Q"}}}"#,
            r#"{"status":"success","data":{"query":{"numrows":1,"rows":{"A.ID":"only"}}}}"#,
            r#"{"status":"success","status":"success","data":{"query":{"rows":[{"A.ID":"1"}]}}}"#,
            r#"{"status":"success","data":{"query":{"rows":[{"A.ID":"1"}],"rows":[]}}}"#,
        ];
        for (i, body) in bodies.into_iter().enumerate() {
            let text = quote_long_numbers(body);
            // The first four take the one-pass path, the others the general one.
            assert_eq!(fast::parse(&text, RowKeys::AsSent).is_ok(), i < 4, "{body}");
            let general = parse_general("u", body, &text, 2).unwrap();
            let asis = parse_execute_query_keys("u", body, 2, RowKeys::AsSent).unwrap();
            assert_eq!(asis, general, "{body}");
            let stripped = parse_execute_query_keys("u", body, 2, RowKeys::StripAlias).unwrap();
            let want: Vec<Record> = general
                .rows
                .iter()
                .map(crate::records::strip_alias_prefixes)
                .collect();
            assert_eq!(stripped.rows, want, "{body}");
            assert_eq!(stripped.num_rows, general.num_rows);
            assert_eq!(stripped.truncated, general.truncated);
        }
    }

    #[test]
    fn unusual_answers_keep_their_errors() {
        for body in [
            r#"{"status":"fail","data":{"query":{"rows":[]}}}"#,
            r#"{"data":{"query":{"rows":[]}}}"#,
            r#"{"status":"success","data":{}}"#,
            r#"{"status":"success","data":{"query":{"rows":5}}}"#,
            r#"{"status":"success","data":{"query":{"rows":[{"A":1},7]}}}"#,
            r#"{"status":"success","data":{"query":{"rows":[]}}"#,
            r#"[1]"#,
        ] {
            let text = quote_long_numbers(body);
            let general = parse_general("u", body, &text, 2).unwrap_err().to_string();
            for keys in [RowKeys::AsSent, RowKeys::StripAlias] {
                let e = parse_execute_query_keys("u", body, 2, keys).unwrap_err();
                assert_eq!(e.to_string(), general, "{body}");
            }
        }
    }

    /// The per-byte scan `quote_long_numbers` used before strings were skipped eight bytes
    /// at a time.
    fn quote_long_numbers_reference(body: &str) -> String {
        let b = body.as_bytes();
        let mut out = String::new();
        let (mut last, mut i, mut in_str) = (0, 0, false);
        while i < b.len() {
            let c = b[i];
            if in_str {
                match c {
                    b'\\' => i += 1,
                    b'"' => in_str = false,
                    _ => {}
                }
                i += 1;
                continue;
            }
            if c == b'"' {
                in_str = true;
                i += 1;
                continue;
            }
            if c == b'-' || c.is_ascii_digit() {
                let start = i;
                while i < b.len() && matches!(b[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                {
                    i += 1;
                }
                let lit = &body[start..i];
                let mantissa = lit.split(['e', 'E']).next().unwrap_or(lit);
                let digits = mantissa
                    .bytes()
                    .filter(u8::is_ascii_digit)
                    .skip_while(|d| *d == b'0')
                    .count();
                if digits > 15 {
                    out.push_str(&body[last..start]);
                    out.push('"');
                    out.push_str(lit);
                    out.push('"');
                    last = i;
                }
                continue;
            }
            i += 1;
        }
        out.push_str(&body[last..]);
        out
    }

    proptest::proptest! {
        #[test]
        fn quoting_long_numbers_matches_the_per_byte_scan(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    "[0-9]{1,22}(\\.[0-9]{0,6})?",
                    "\"([a-zé\"0-9 ]|\\\\[\"\\\\n]){0,30}\"",
                    "[,:\\[\\]{} ]",
                ],
                0..30,
            )
        ) {
            let body = parts.concat();
            proptest::prop_assert_eq!(quote_long_numbers(&body).into_owned(), quote_long_numbers_reference(&body));
        }
    }

    #[test]
    fn html_detection_is_safe_on_multibyte_text() {
        let body = format!("<{}<html>", "é".repeat(400));
        assert!(non_json_error(200, "u", &body).is_none());
        let body = format!("<!DOCTYPE html><p>{}</p>", "ü".repeat(600));
        assert!(matches!(
            non_json_error(200, "u", &body),
            Some(Error::HtmlPage { .. })
        ));
    }

    #[test]
    fn ib_response_fields_are_extracted() {
        let body = r#"<?xml version="1.0"?><IBResponse type="error"><DefaultTitle>Integration Broker Response</DefaultTitle><StatusCode>20</StatusCode><MessageSet>158</MessageSet><MessageID>10001</MessageID><DefaultMessage><![CDATA[Unknown node PSFT_XX]]></DefaultMessage><MessageParameters/></IBResponse>"#;
        match parse_ib_response(200, "u", body) {
            Error::IbResponse {
                message,
                message_set,
                message_id,
                ..
            } => {
                assert_eq!(message, "Unknown node PSFT_XX");
                assert_eq!(message_set.as_deref(), Some("158"));
                assert_eq!(message_id.as_deref(), Some("10001"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn prompts_parse_in_any_case() {
        let body = r#"{"status":"success","data":{"queryprompts":{"prompt":[
            {"fieldname":"LASTUPDDTTM","headingtext":"From","fieldtype":"Datetime","formattext":"","fieldlength":26,"fielddecimal":0,"uniquepromptname":"FROM_DTTM"},
            {"FieldName":"LASTUPDDTTM","HeadingText":"To","FieldType":"Datetime","UniquePromptName":"TO_DTTM","FieldLength":"26"}]}}}"#;
        let p = parse_prompts("u", body).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].unique_prompt_name, "FROM_DTTM");
        assert_eq!(p[0].field_length, Some(26));
        assert_eq!(p[1].unique_prompt_name, "TO_DTTM");
        assert_eq!(p[1].field_length, Some(26));
        assert_eq!(p[1].heading_text, "To");
    }
}
