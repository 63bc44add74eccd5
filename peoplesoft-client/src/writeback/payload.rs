//! Rows → CI payloads, PeopleSoft answers → comparable values, and response classification.

use std::collections::BTreeMap;

use chrono_tz::Tz;
use serde_json::{Map, Value as Json};
use sync_core::convert::SourceTimeZone;
use sync_core::{ColumnType, Row, TableSchema, Value};

use super::config::{CiTarget, ErrorBodyRules, FieldMap};
use crate::client::ServiceResponse;
use crate::error::{truncate_body, Error};
use crate::qas;
use crate::values::{convert, parse_timestamp};

/// A column resolved against the batch schema.
pub(crate) struct Col<'a> {
    idx: usize,
    pub(crate) map: &'a FieldMap,
    ty: ColumnType,
}

/// A target resolved against one batch schema.
pub(crate) struct Compiled<'a> {
    pub(crate) target: &'a CiTarget,
    keys: Vec<Col<'a>>,
    pub(crate) fields: Vec<Col<'a>>,
    modified_by: Option<usize>,
    modified_at: Option<usize>,
    stamp_col: Option<usize>,
    tz: Tz,
    zone: SourceTimeZone,
}

/// One row, ready to compare and send.
pub(crate) struct Prepared {
    /// CI key field → text.
    pub(crate) key: BTreeMap<String, String>,
    /// Key values as a JSON array text: the baseline key.
    pub(crate) key_id: String,
    /// Key fields, in key order: (CI field, rendered JSON).
    key_json: Vec<(String, Json)>,
    /// Governed fields, in mapping order: (CI field, normalised value, rendered JSON).
    pub(crate) desired: Vec<(String, Value, Json)>,
    /// Hash of the governed fields.
    pub(crate) hash: GovernedHash,
}

fn column<'a>(schema: &TableSchema, map: &'a FieldMap, what: &str) -> Result<Col<'a>, String> {
    let idx = schema.index_of(&map.column).ok_or_else(|| {
        format!(
            "{what} column `{}` (CI field `{}`) is not a column of `{}`",
            map.column, map.ci_field, schema.name
        )
    })?;
    Ok(Col {
        idx,
        map,
        ty: schema.columns[idx].column_type,
    })
}

impl<'a> Compiled<'a> {
    pub(crate) fn new(target: &'a CiTarget, schema: &TableSchema) -> Result<Self, String> {
        Self::resolve(target, schema, false)
    }

    /// For rows of the forward sync (baseline seeding): only the key, governed and stamp
    /// columns are needed; the write-back's echo and modification-time columns are not read.
    pub(crate) fn for_seeding(target: &'a CiTarget, schema: &TableSchema) -> Result<Self, String> {
        Self::resolve(target, schema, true)
    }

    fn resolve(target: &'a CiTarget, schema: &TableSchema, seeding: bool) -> Result<Self, String> {
        let keys = target
            .keys
            .iter()
            .map(|m| column(schema, m, "key"))
            .collect::<Result<Vec<_>, _>>()?;
        let fields = target
            .fields
            .iter()
            .map(|m| column(schema, m, "governed"))
            .collect::<Result<Vec<_>, _>>()?;
        let find = |c: &Option<String>, what: &str| -> Result<Option<usize>, String> {
            match c {
                None => Ok(None),
                Some(name) => schema.index_of(name).map(Some).ok_or_else(|| {
                    format!(
                        "{what} column `{name}` is not a column of `{}`",
                        schema.name
                    )
                }),
            }
        };
        let (modified_by, modified_at) = if seeding {
            (None, None)
        } else {
            (
                find(&target.echo.modified_by_column, "echo.modified_by")?,
                find(&target.modified_at_column, "modified_at")?,
            )
        };
        let stamp_col = find(
            &target.stamp.as_ref().and_then(|s| s.column.clone()),
            "stamp",
        )?;
        let tz: Tz = target
            .time_zone
            .parse()
            .map_err(|_| format!("`{}` is not an IANA time zone name", target.time_zone))?;
        Ok(Self {
            target,
            keys,
            fields,
            modified_by,
            modified_at,
            stamp_col,
            tz,
            zone: SourceTimeZone::new(tz),
        })
    }

    /// Maps a row; `Err` says why it cannot be sent (the record is rejected).
    pub(crate) fn prepare(
        &self,
        row: &Row,
    ) -> Result<Prepared, (BTreeMap<String, String>, String)> {
        let mut key = BTreeMap::new();
        let mut key_json = Vec::new();
        let mut key_texts = Vec::new();
        let mut missing = None;
        for k in &self.keys {
            let v = normalise(row.get(k.idx).cloned().unwrap_or(Value::Null));
            match display(&v, self.tz) {
                Some(text) => {
                    key.insert(k.map.ci_field.clone(), text.clone());
                    key_texts.push(text);
                    key_json.push((k.map.ci_field.clone(), render(&v, self.tz)));
                }
                None => missing = Some(k.map.column.clone()),
            }
        }
        if let Some(col) = missing {
            return Err((key, format!("key column `{col}` is empty")));
        }
        let desired: Vec<(String, Value, Json)> = self
            .fields
            .iter()
            .map(|f| {
                let v = normalise(row.get(f.idx).cloned().unwrap_or(Value::Null));
                let j = render(&v, self.tz);
                (f.map.ci_field.clone(), v, j)
            })
            .collect();
        let hash = governed_hash(desired.iter().map(|(f, v, _)| (f.as_str(), v)));
        Ok(Prepared {
            key,
            key_id: serde_json::to_string(&key_texts).unwrap_or_default(),
            key_json,
            desired,
            hash,
        })
    }

    /// The integration identity found in the row's modified-by column, if the row is an echo.
    pub(crate) fn echo_of(&self, row: &Row) -> Option<String> {
        let v = row.get(self.modified_by?)?;
        let who = match v {
            Value::String(s) => s.trim(),
            _ => return None,
        };
        self.target
            .echo
            .integration_oprids
            .iter()
            .find(|o| o.trim().eq_ignore_ascii_case(who))
            .cloned()
    }

    /// The stamp carried by a forward-synced row, normalised.
    pub(crate) fn row_stamp(&self, row: &Row) -> Option<String> {
        match row.get(self.stamp_col?)? {
            Value::Null => None,
            Value::Timestamp(t) => Some(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            Value::String(s) => self.stamp_text(&Json::String(s.clone())),
            other => Some(other.to_string()),
        }
    }

    /// When the governed row was last changed (the `modified_at` column): a timestamp, or a
    /// text timestamp read in the target's zone. `None` without the column or a value.
    pub(crate) fn row_modified(&self, row: &Row) -> Option<chrono::DateTime<chrono::Utc>> {
        match row.get(self.modified_at?)? {
            Value::Timestamp(t) => Some(*t),
            Value::String(s) => parse_timestamp(s.trim(), &self.zone).ok(),
            _ => None,
        }
    }

    /// A stamp from a PeopleSoft answer, normalised to RFC 3339 UTC when it parses.
    pub(crate) fn stamp_text(&self, v: &Json) -> Option<String> {
        let text = match v {
            Json::Null => return None,
            Json::String(s) => s.trim().to_string(),
            other => other.to_string(),
        };
        if text.is_empty() {
            return None;
        }
        Some(match parse_timestamp(&text, &self.zone) {
            Ok(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            Err(_) => text,
        })
    }

    /// The stamp field of a PeopleSoft field object.
    pub(crate) fn stamp_of(&self, fields: &Map<String, Json>) -> Option<String> {
        let s = self.target.stamp.as_ref()?;
        lookup(fields, &s.ci_field).and_then(|v| self.stamp_text(v))
    }

    /// PeopleSoft's current governed values, converted to the columns' types.
    pub(crate) fn current(
        &self,
        fields: &Map<String, Json>,
    ) -> Vec<(String, Value, Option<String>)> {
        self.fields
            .iter()
            .map(|f| {
                let raw = lookup(fields, &f.map.ci_field)
                    .cloned()
                    .unwrap_or(Json::Null);
                let v = match convert(&raw, f.ty, &self.zone) {
                    Ok(v) => normalise(v),
                    // Not convertible: keep the text so it compares as different.
                    Err(_) => Value::String(json_text(&raw).unwrap_or_default()),
                };
                (f.map.ci_field.clone(), v, json_text(&raw))
            })
            .collect()
    }

    /// Fills a URL template's `{FIELD}` placeholders (percent-encoded).
    pub(crate) fn fill(&self, template: &str, rec: &Prepared) -> Result<String, String> {
        let mut out = String::with_capacity(template.len() + 32);
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or("unclosed `{` in template")?;
            let name = &after[..close];
            let value = rec
                .key_json
                .iter()
                .map(|(f, j)| (f, j))
                .chain(rec.desired.iter().map(|(f, _, j)| (f, j)))
                .find(|(f, _)| f.as_str() == name)
                .and_then(|(_, j)| json_text(j))
                .ok_or_else(|| format!("no value for URL placeholder `{{{name}}}`"))?;
            out.push_str(&qas::encode(&value));
            rest = &after[close + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// The Create/Update body: keys then governed fields, inside the configured envelope.
    pub(crate) fn body(&self, rec: &Prepared) -> Json {
        let mut obj = Map::new();
        for (f, j) in &rec.key_json {
            obj.insert(f.clone(), j.clone());
        }
        for (f, _, j) in &rec.desired {
            obj.insert(f.clone(), j.clone());
        }
        let mut body = Json::Object(obj);
        for name in self.target.payload.request_envelope.iter().rev() {
            let mut outer = Map::new();
            outer.insert(name.clone(), body);
            body = Json::Object(outer);
        }
        body
    }

    /// The key fields as changes (for creates).
    pub(crate) fn key_changes(&self, rec: &Prepared) -> Vec<super::FieldChange> {
        rec.key_json
            .iter()
            .map(|(f, j)| super::FieldChange {
                field: f.clone(),
                from: None,
                to: json_text(j),
            })
            .collect()
    }
}

/// Blank strings (PeopleSoft's single space, trailing padding) compare as NULL.
fn normalise(v: Value) -> Value {
    match v {
        Value::String(s) => {
            let t = s.trim_end();
            if t.is_empty() {
                Value::Null
            } else if t.len() == s.len() {
                Value::String(s)
            } else {
                Value::String(t.to_string())
            }
        }
        other => other,
    }
}

/// The value as it is sent: decimals as exact strings, dates `YYYY-MM-DD`, timestamps in
/// PeopleSoft's native `YYYY-MM-DD-HH.MM.SS.ffffff` in the target's zone, flags `Y`/`N`.
pub(crate) fn render(v: &Value, tz: Tz) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::String(s) => Json::String(s.clone()),
        Value::Int(i) => Json::from(*i),
        Value::BigInt(i) => Json::from(*i),
        Value::Decimal(d) => Json::String(d.to_string()),
        Value::Double(f) => serde_json::Number::from_f64(*f)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        Value::Bool(b) => Json::String(if *b { "Y" } else { "N" }.into()),
        Value::Date(d) => Json::String(d.format("%Y-%m-%d").to_string()),
        Value::Timestamp(t) => Json::String(
            t.with_timezone(&tz)
                .format("%Y-%m-%d-%H.%M.%S%.6f")
                .to_string(),
        ),
    }
}

fn display(v: &Value, tz: Tz) -> Option<String> {
    json_text(&render(v, tz))
}

/// A JSON scalar as text; `None` for null.
pub(crate) fn json_text(j: &Json) -> Option<String> {
    match j {
        Json::Null => None,
        Json::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Display text of a normalised value as it would be sent.
pub(crate) fn value_text(v: &Value, c: &Compiled<'_>) -> Option<String> {
    display(v, c.tz)
}

/// True when two normalised values are the same (decimals compare by value).
pub(crate) fn same(a: &Value, b: &Value) -> bool {
    let (mut x, mut y) = (String::new(), String::new());
    a.write_canonical(&mut x);
    b.write_canonical(&mut y);
    x == y
}

/// The hash of a record's governed fields, independent of mapping order: the stable
/// [`row_hash`](sync_core::engine::row_hash) of `[field₁, value₁, field₂, value₂, …]` sorted by
/// field name. Compared with stored baselines by [`matches`](Self::matches), which also accepts
/// the form baselines recorded before 0.2 hold.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GovernedHash {
    /// The hash as recorded in new baselines.
    pub(crate) value: String,
    flat: Vec<Value>,
}

impl GovernedHash {
    /// True when `stored` (a baseline's hash) is the hash of these fields.
    pub(crate) fn matches(&self, stored: &str) -> bool {
        stored == self.value || sync_core::engine::row_hash_matches(stored, &self.flat)
    }
}

/// The [`GovernedHash`] of `fields`.
pub(crate) fn governed_hash<'v>(
    fields: impl Iterator<Item = (&'v str, &'v Value)>,
) -> GovernedHash {
    let mut sorted: Vec<(&str, &Value)> = fields.collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut flat = Vec::with_capacity(sorted.len() * 2);
    for (f, v) in sorted {
        flat.push(Value::String(f.to_string()));
        flat.push(v.clone());
    }
    GovernedHash {
        value: sync_core::engine::row_hash(&flat),
        flat,
    }
}

/// A field by exact name, then ASCII case-insensitively.
fn lookup<'j>(fields: &'j Map<String, Json>, name: &str) -> Option<&'j Json> {
    fields.get(name).or_else(|| {
        fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// The field object at `path` (arrays entered at their first element).
pub(crate) fn locate<'j>(body: &'j Json, path: &[String]) -> Option<&'j Map<String, Json>> {
    let mut cur = body;
    for p in path {
        while let Json::Array(a) = cur {
            cur = a.first()?;
        }
        cur = cur.as_object()?.get(p)?;
    }
    while let Json::Array(a) = cur {
        cur = a.first()?;
    }
    cur.as_object()
}

/// How PeopleSoft answered one request.
#[derive(Debug)]
pub(crate) enum Answer {
    /// A success, with its JSON (`Null` for an empty body).
    Ok(Json),
    /// No such record (Get only).
    NotFound,
    /// PeopleSoft refused the request and said why.
    Rejected(String),
    /// Worth trying again (5xx without a message, 429, gateway pages, cut-off bodies).
    Transient(String),
}

/// The first string under one of `fields`, depth-first, up to 4 levels.
fn find_message(j: &Json, fields: &[String], depth: u8) -> Option<String> {
    if depth > 4 {
        return None;
    }
    match j {
        Json::Object(m) => {
            for f in fields {
                if let Some(v) = lookup(m, f) {
                    match v {
                        Json::String(s) if !s.trim().is_empty() => return Some(s.trim().into()),
                        Json::Object(_) | Json::Array(_) => {
                            if let Some(s) = find_message(v, fields, depth + 1) {
                                return Some(s);
                            }
                        }
                        _ => {}
                    }
                }
            }
            m.values().find_map(|v| match v {
                Json::Object(_) | Json::Array(_) => find_message(v, fields, depth + 1),
                _ => None,
            })
        }
        Json::Array(a) => a.iter().find_map(|v| find_message(v, fields, depth + 1)),
        _ => None,
    }
}

fn ib_message(e: &Error) -> Option<String> {
    match e {
        Error::IbResponse {
            message,
            message_set,
            message_id,
            ..
        } => Some(match (message_set, message_id) {
            (Some(s), Some(i)) => format!("{message} (message set {s}, message {i})"),
            _ => message.clone(),
        }),
        _ => None,
    }
}

/// Classifies an answer. `get` enables not-found detection.
pub(crate) fn classify(
    resp: &ServiceResponse,
    rules: &ErrorBodyRules,
    get: bool,
    not_found: &[String],
) -> Answer {
    let status = resp.status;
    let body = resp.body.as_str();
    let is_not_found = |m: &str| {
        get && not_found
            .iter()
            .any(|n| !n.is_empty() && m.to_ascii_lowercase().contains(&n.to_ascii_lowercase()))
    };
    let rejected_or_missing = |m: String| {
        if is_not_found(&m) {
            Answer::NotFound
        } else {
            Answer::Rejected(m)
        }
    };
    // What PeopleSoft said, if it said anything recognisable.
    let mut html = false;
    let mut message = None;
    let mut json = None;
    match qas::non_json_error(status, &resp.url, body) {
        Some(e @ Error::IbResponse { .. }) => message = ib_message(&e),
        Some(_) => html = true,
        None => {
            if !body.trim().is_empty() {
                match serde_json::from_str::<Json>(&qas::quote_long_numbers(body)) {
                    Ok(j) => {
                        let error_status = rules.status_field.as_ref().and_then(|f| {
                            let s = j.as_object()?.get(f)?;
                            let s = json_text(s)?;
                            (!rules
                                .success_values
                                .iter()
                                .any(|ok| ok.eq_ignore_ascii_case(s.trim())))
                            .then_some(s)
                        });
                        if let Some(s) = error_status {
                            message =
                                Some(find_message(&j, &rules.message_fields, 0).unwrap_or_else(
                                    || format!("status `{s}`: {}", truncate_body(body)),
                                ));
                        } else if !(200..300).contains(&status) {
                            message = find_message(&j, &rules.message_fields, 0);
                        }
                        json = Some(j);
                    }
                    Err(_) if (200..300).contains(&status) && get => {
                        return Answer::Transient(format!(
                            "HTTP {status} from {}: not valid JSON (cut off?): {}",
                            resp.url,
                            truncate_body(body)
                        ))
                    }
                    Err(_) => {}
                }
            }
        }
    }
    if (200..300).contains(&status) {
        if html {
            return Answer::Transient(format!(
                "HTTP {status} from {}: an HTML page answered instead of the REST service",
                resp.url
            ));
        }
        if let Some(m) = message {
            return rejected_or_missing(m);
        }
        return match json {
            Some(j) => Answer::Ok(j),
            // An empty or non-JSON success body (a plain notification) is still a success.
            None => Answer::Ok(Json::Null),
        };
    }
    if status == 404 && get {
        return Answer::NotFound;
    }
    let brief = || {
        if html {
            "an HTML error page".to_string()
        } else if body.trim().is_empty() {
            "empty body".to_string()
        } else {
            truncate_body(body.trim())
        }
    };
    if matches!(status, 408 | 429 | 502 | 503 | 504) {
        return Answer::Transient(format!("HTTP {status} from {}: {}", resp.url, brief()));
    }
    match message {
        Some(m) => rejected_or_missing(m),
        None if status >= 500 => {
            Answer::Transient(format!("HTTP {status} from {}: {}", resp.url, brief()))
        }
        None if html || json.is_some() => Answer::Rejected(format!("HTTP {status}: {}", brief())),
        // A plain-text 4xx body is PeopleSoft's (or a handler's) message.
        None if !body.trim().is_empty() => rejected_or_missing(truncate_body(body.trim())),
        None => Answer::Rejected(format!("HTTP {status} with an empty body")),
    }
}
