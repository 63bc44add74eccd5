//! Parsing the `ExecuteQuery` JSON answer.

use sync_core::Record;

use super::ib_error::non_json_error;
use crate::error::{truncate_body, Error};

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
            if is_long_number(lit) {
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

/// True when the number literal `lit` has more than 15 significant digits (its mantissa,
/// leading zeros not counted): `f64` would not keep it exact.
pub(crate) fn is_long_number(lit: &str) -> bool {
    let mantissa = lit.split(['e', 'E']).next().unwrap_or(lit);
    mantissa
        .bytes()
        .filter(u8::is_ascii_digit)
        .skip_while(|d| *d == b'0')
        .count()
        > 15
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
    // The fast path sees each value's text and keeps long numbers exact itself; the general
    // path parses a copy with them quoted.
    if let Ok(fast) = fast::parse(body, keys) {
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
    let text = quote_long_numbers(body);
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
                out.push(Record::from(m));
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
    use sync_core::{FieldNames, Record};

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
                    "numrows" if num_rows.is_none() => {
                        num_rows = Some(map.next_value_seed(FieldValue)?)
                    }
                    "queryname" if query_name.is_none() => {
                        query_name = Some(map.next_value_seed(FieldValue)?)
                    }
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
            let mut layout: Option<RowLayout> = None;
            while let Some(record) = seq.next_element_seed(RowSeed {
                keys: self.keys,
                scratch: &mut scratch,
                layout: &mut layout,
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
        layout: &'s mut Option<RowLayout>,
    }

    /// How the fields of a row, in the order sent, land in a [`Record`]. Rows of one answer
    /// send the same keys in the same order, so the names are resolved (sorted, duplicates
    /// and alias collisions settled) once and shared by every record of the page.
    struct RowLayout {
        /// The keys as sent.
        sent: Vec<String>,
        names: FieldNames,
        /// Per key as sent: its position in `names`, or `None` when a later duplicate wins.
        slot: Vec<Option<usize>>,
    }

    impl RowLayout {
        fn new(fields: &[(Key<'_>, Value)], keys: RowKeys) -> Self {
            let sent: Vec<String> = fields.iter().map(|(k, _)| k.as_str().to_owned()).collect();
            // The one rule for names lives in `build_record`: run it on the keys with their
            // positions as values, and read where each position landed.
            let mut probe: Vec<(Key<'_>, Value)> = sent
                .iter()
                .enumerate()
                .map(|(i, k)| (Key::Owned(k.clone()), Value::from(i)))
                .collect();
            let record = build_record(&mut probe, keys);
            let mut slot = vec![None; sent.len()];
            for (p, v) in record.values().enumerate() {
                if let Some(i) = v.as_u64() {
                    slot[i as usize] = Some(p);
                }
            }
            Self {
                sent,
                names: record.names().clone(),
                slot,
            }
        }

        fn fits(&self, fields: &[(Key<'_>, Value)]) -> bool {
            self.sent.len() == fields.len()
                && self
                    .sent
                    .iter()
                    .zip(fields)
                    .all(|(a, (k, _))| a == k.as_str())
        }
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
                let value = map.next_value_seed(FieldValue)?;
                fields.push((key, value));
            }
            let layout = match self.layout {
                Some(l) if l.fits(fields) => l,
                other => other.insert(RowLayout::new(fields, self.keys)),
            };
            let mut values = vec![Value::Null; layout.names.len()];
            for ((_, v), slot) in fields.drain(..).zip(&layout.slot) {
                if let Some(p) = slot {
                    values[*p] = v;
                }
            }
            Ok(Record::from_parts(layout.names.clone(), values))
        }
    }

    /// One value, as `serde_json::Value` would give it after [`quote_long_numbers`]:
    /// read as its raw text (borrowed from the body), so a number literal with more than 15
    /// significant digits becomes its exact text, and a string without escapes is one copy.
    ///
    /// [`quote_long_numbers`]: super::quote_long_numbers
    struct FieldValue;

    impl<'de> DeserializeSeed<'de> for FieldValue {
        type Value = Value;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            let raw = <&'de serde_json::value::RawValue as serde::Deserialize>::deserialize(d)?;
            field_value(raw.get()).map_err(de::Error::custom)
        }
    }

    /// The value of the JSON text `raw` (one complete value, as the parser delimited it).
    fn field_value(raw: &str) -> Result<Value, serde_json::Error> {
        match raw.as_bytes().first() {
            Some(b'"') => {
                let inner = &raw[1..raw.len() - 1];
                if inner.contains('\\') {
                    serde_json::from_str::<String>(raw).map(Value::String)
                } else {
                    Ok(Value::String(inner.to_owned()))
                }
            }
            Some(b'-' | b'0'..=b'9') if super::is_long_number(raw) => {
                Ok(Value::String(raw.to_owned()))
            }
            Some(b'-' | b'0'..=b'9') => serde_json::from_str(raw),
            // null, true, false, or a nested object or array (long numbers inside quoted).
            _ => serde_json::from_str(&super::quote_long_numbers(raw)),
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

#[cfg(test)]
mod tests {
    use super::*;

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
            // Number spellings, long numbers nested in arrays and objects, escapes, and a
            // long `numrows`.
            r#"{"status":"success","data":{"query":{"numrows":12345678901234567,"rows":[
                {"A":0,"B":-0,"C":-0.0,"D":1E5,"E":1.5e-3,"F":123456789012345678,"G":"a\nb",
                 "H":[12345678901234567890,1],"I":{"x":-1234567890123456.7},"J":false,
                 "K":0.000000000000000000012345,"L":1234567890123456e-3}]}}}"#,
            r#"{"status":"success","data":{"query":{"numrows":0,"queryname":"Q","rows":null}}}"#,
            r#"{"status":"success","data":{"query":{"queryname":"Q"}}}"#,
            r#"{"status":"success","data":{"query":{"numrows":1,"rows":{"A.ID":"only"}}}}"#,
            r#"{"status":"success","status":"success","data":{"query":{"rows":[{"A.ID":"1"}]}}}"#,
            r#"{"status":"success","data":{"query":{"rows":[{"A.ID":"1"}],"rows":[]}}}"#,
        ];
        for (i, body) in bodies.into_iter().enumerate() {
            let text = quote_long_numbers(body);
            // The first five take the one-pass path (on the body as sent), the others the
            // general one.
            assert_eq!(fast::parse(body, RowKeys::AsSent).is_ok(), i < 5, "{body}");
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

    proptest::proptest! {
        /// Any number literal in a row: the one-pass parse (which reads each value's text)
        /// gives exactly what the general parse of the quoted body gives, or both fail.
        #[test]
        fn numbers_parse_as_the_general_path_does(
            lit in r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?"
        ) {
            let body = format!(
                r#"{{"status":"success","data":{{"query":{{"rows":[{{"A.X":{lit},"A.Y":[{lit}]}}]}}}}}}"#
            );
            let text = quote_long_numbers(&body);
            let general = parse_general("u", &body, &text, 0);
            let fast = parse_execute_query_keys("u", &body, 0, RowKeys::AsSent);
            match (fast, general) {
                (Ok(f), Ok(g)) => proptest::prop_assert_eq!(f, g),
                (Err(f), Err(g)) => proptest::prop_assert_eq!(f.to_string(), g.to_string()),
                (f, g) => proptest::prop_assert!(false, "{lit}: {f:?} vs {g:?}"),
            }
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
}
