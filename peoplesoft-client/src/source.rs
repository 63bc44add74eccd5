//! [`PeopleSoftSource`]: one stream definition as a sync-core [`Source`].

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::NaiveDate;
use futures::{FutureExt, StreamExt};
use serde_json::Value;
use sync_core::{ConnectorError, Page, PageStream, Record, Source, SourceCapabilities, Window};

use crate::client::PeopleSoftClient;
use crate::error::Error;
use crate::qas::{ExecuteQuery, RowKeys};
use crate::records::strip_alias;
use crate::streams::{AliasPrefixes, EffectiveDatedRows, EffectiveDating, StreamDefinition};

/// Reads one stream from PeopleSoft through QAS.
///
/// Each window becomes one `ExecuteQuery` call with the window prompts (see
/// [`StreamDefinition::prompt_values`]); the answer is one [`Page`], truncated when it
/// reached `maxrows` (the engine then splits the window). Synchronous QAS has no paging, so a
/// window is never more than one request plus retries.
///
/// Errors carry the stream, window and query, and map to sync-core's
/// [`FailureKind`](sync_core::FailureKind): a 401/403 is `StopStream`, after exactly one
/// request.
#[derive(Debug, Clone)]
pub struct PeopleSoftSource {
    client: PeopleSoftClient,
    def: StreamDefinition,
}

impl PeopleSoftSource {
    /// A source for `def`, validated.
    pub fn new(client: PeopleSoftClient, def: StreamDefinition) -> Result<Self, Error> {
        def.validate()?;
        Ok(Self { client, def })
    }

    /// The stream definition.
    pub fn definition(&self) -> &StreamDefinition {
        &self.def
    }

    /// The client.
    pub fn client(&self) -> &PeopleSoftClient {
        &self.client
    }

    /// The request for `window`: the two window prompts, the fixed prompts, and the key
    /// prompts (empty: from the first key) when the stream pages by key.
    pub fn request_for(&self, window: &Window) -> ExecuteQuery {
        let (from, to) = self.def.prompt_values(window);
        self.request_with(from, to, None)
    }

    /// The request for the rows of `window` after `last` in key order.
    pub fn request_after(&self, window: &Window, last: &Record) -> ExecuteQuery {
        let (from, to) = self.def.prompt_values(window);
        self.request_with(from, to, Some(last))
    }

    fn request_with(&self, from: String, to: String, after: Option<&Record>) -> ExecuteQuery {
        let mut q = ExecuteQuery::new(self.def.query.clone())
            .owner(self.def.owner)
            .max_rows(self.def.requested_rows())
            .prompt(self.def.from_prompt.clone(), from)
            .prompt(self.def.to_prompt.clone(), to);
        q.prompts.extend(self.def.fixed_prompts.iter().cloned());
        for (prompt, key) in self.def.key_prompts.iter().zip(&self.def.key_fields) {
            let value = after
                .and_then(|r| field(r, key))
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                })
                .unwrap_or_default();
            q = q.prompt(prompt.clone(), value);
        }
        q
    }

    /// Runs `q`, field names per the alias-prefix setting; errors carry `context`.
    async fn execute(
        &self,
        q: &ExecuteQuery,
        context: &str,
    ) -> Result<crate::qas::QueryResult, ConnectorError> {
        let keys = match self.def.alias_prefixes {
            AliasPrefixes::Strip => RowKeys::StripAlias,
            AliasPrefixes::Keep => RowKeys::AsSent,
        };
        self.client
            .execute_query_keys(q, keys)
            .await
            .map_err(|e| e.into_connector_error(context))
    }

    async fn read_window(&self, window: Window) -> Result<Page, ConnectorError> {
        let q = self.request_for(&window);
        self.read_request(window, q).await
    }

    async fn read_request(&self, window: Window, q: ExecuteQuery) -> Result<Page, ConnectorError> {
        let context = format!(
            "stream `{}` window {} (query {})",
            self.def.name, window, self.def.query
        );
        let result = self.execute(&q, &context).await?;
        if result.truncated {
            tracing::info!(
                stream = %self.def.name,
                %window,
                max_rows = self.def.requested_rows(),
                "result reached maxrows; reporting truncation so the window is split"
            );
        }
        // Alias prefixes were stripped while parsing (`RowKeys::StripAlias`).
        let mut records: Vec<Record> = result.rows;
        if let Some(ed) = &self.def.effective_dating {
            let today = self
                .client
                .clock()
                .now()
                .with_timezone(&self.def.source_time_zone)
                .date_naive();
            records = flag_current_rows(records, ed, today).map_err(|m| {
                ConnectorError::permanent(format!("{context}: effective dating: {m}"))
            })?;
        }
        Ok(Page {
            records,
            truncated: result.truncated,
        })
    }
}

#[async_trait]
impl Source for PeopleSoftSource {
    fn identity(&self) -> String {
        let c = self.client.connection();
        format!(
            "peoplesoft://{}/{}/{}",
            c.host_port(),
            c.node(),
            self.def.query
        )
    }

    fn read(&self, window: Window) -> PageStream<'_> {
        futures::stream::once(self.read_window(window).boxed()).boxed()
    }

    /// `maxrows` can be cut silently by the query profile; date prompts work in whole days of
    /// the site's calendar, with the lookback that needs; key prompts page ties.
    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities::silent_cap(u64::from(self.def.requested_rows()))
            .declared_cap(self.def.profile_max_rows.map(u64::from))
            .silent_cap_floor(u64::from(self.def.profile_cap_floor))
            .granularity(self.def.cursor_granularity())
            .min_lookback(self.def.min_lookback())
            .key_paging(!self.def.key_prompts.is_empty())
    }

    async fn read_after(
        &self,
        window: Window,
        last: &Record,
    ) -> Result<Option<Page>, ConnectorError> {
        if self.def.key_prompts.is_empty() {
            return Ok(None);
        }
        let q = self.request_after(&window, last);
        self.read_request(window, q).await.map(Some)
    }

    /// With [`StreamDefinition::null_cursor_check`]: runs the query with both window prompts
    /// empty and counts the rows whose cursor is NULL or blank.
    async fn count_null_cursors(&self) -> Result<Option<u64>, ConnectorError> {
        if !self.def.null_cursor_check {
            return Ok(None);
        }
        let context = format!(
            "stream `{}` NULL-cursor count (query {})",
            self.def.name, self.def.query
        );
        let q = self.request_with(String::new(), String::new(), None);
        let result = self.execute(&q, &context).await?;
        if result.truncated {
            return Err(ConnectorError::permanent(format!(
                "{context}: the unbounded query hit maxrows ({}); the NULL-cursor count would be incomplete (raise max_rows)",
                self.def.requested_rows()
            )));
        }
        let nulls = result
            .rows
            .iter()
            .filter(|r| match field(r, &self.def.cursor_field) {
                None | Some(Value::Null) => true,
                Some(Value::String(s)) => s.trim().is_empty(),
                _ => false,
            })
            .count();
        Ok(Some(nulls as u64))
    }

    /// QAS has no count operation: the window's query is run and its rows counted (a window
    /// that hits `maxrows` is split in halves and counted per half, down to one second). This
    /// costs one extract per window, under the same load protection as a sync.
    async fn count(&self, window: Window) -> Result<Option<u64>, ConnectorError> {
        let mut total = 0u64;
        let mut todo = vec![window];
        while let Some(w) = todo.pop() {
            let page = self.read_window(w).await?;
            if page.truncated {
                if w.width() <= chrono::Duration::seconds(1) {
                    return Err(ConnectorError::permanent(format!(
                        "stream `{}`: cannot count window {w}: it still hits max_rows ({}) at one second wide",
                        self.def.name, self.def.requested_rows()
                    )));
                }
                let (a, b) = w.halves();
                todo.push(b);
                todo.push(a);
            } else {
                total += page.records.len() as u64;
            }
        }
        Ok(Some(total))
    }
}

fn field<'a>(r: &'a Record, name: &str) -> Option<&'a Value> {
    r.get(name).or_else(|| {
        r.iter()
            .find(|(k, _)| strip_alias(k) == name)
            .map(|(_, v)| v)
    })
}

fn parse_effdt(v: Option<&Value>) -> Option<NaiveDate> {
    let s = v?.as_str()?.trim();
    NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok()
}

fn parse_effseq(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Null => Some(0),
        _ => None,
    }
}

/// Adds the current-row flag to every row and, for
/// [`EffectiveDatedRows::CurrentAndFuture`], drops history rows. Computed within this set of
/// rows only: a first approximation that the sink's recompute over the whole target, per
/// batch and in the daily sweep, makes right across windows (see [`EffectiveDating`]).
pub fn flag_current_rows(
    mut rows: Vec<Record>,
    ed: &EffectiveDating,
    as_of: NaiveDate,
) -> Result<Vec<Record>, String> {
    // Per key: index of the best row so far and its (effdt, effseq).
    let mut best: HashMap<String, (usize, NaiveDate, i64)> = HashMap::new();
    let mut dated = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        let effdt = parse_effdt(field(r, &ed.effdt_field)).ok_or_else(|| {
            format!(
                "row {i}: `{}` is missing or not a YYYY-MM-DD date ({:?})",
                ed.effdt_field,
                field(r, &ed.effdt_field)
            )
        })?;
        let effseq = match &ed.effseq_field {
            Some(f) => parse_effseq(field(r, f))
                .ok_or_else(|| format!("row {i}: `{f}` is missing or not an integer"))?,
            None => 0,
        };
        let key = ed
            .key_fields
            .iter()
            .map(|k| field(r, k).map(|v| v.to_string()).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\u{1f}");
        dated.push(effdt);
        if effdt <= as_of {
            let e = best.entry(key).or_insert((i, effdt, effseq));
            if (effdt, effseq) > (e.1, e.2) {
                *e = (i, effdt, effseq);
            }
        }
    }
    let mut current = vec![false; rows.len()];
    for (i, _, _) in best.values() {
        current[*i] = true;
    }
    for (r, c) in rows.iter_mut().zip(&current) {
        r.insert(ed.current_flag_field.clone(), Value::Bool(*c));
    }
    if ed.rows == EffectiveDatedRows::CurrentAndFuture {
        let keep: Vec<bool> = current
            .iter()
            .zip(&dated)
            .map(|(c, d)| *c || *d > as_of)
            .collect();
        let mut k = keep.into_iter();
        rows.retain(|_| k.next().unwrap_or(true));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows(v: Value) -> Vec<Record> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_object().unwrap().clone().into())
            .collect()
    }

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn current_row_is_max_effdt_then_max_effseq_and_future_rows_are_kept() {
        let input = rows(json!([
            {"A.EMPLID": "E1", "A.EMPL_RCD": 0, "A.EFFDT": "2025-01-01", "A.EFFSEQ": 0},
            {"A.EMPLID": "E1", "A.EMPL_RCD": 0, "A.EFFDT": "2026-02-01", "A.EFFSEQ": 0},
            {"A.EMPLID": "E1", "A.EMPL_RCD": 0, "A.EFFDT": "2026-02-01", "A.EFFSEQ": "1"},
            {"A.EMPLID": "E1", "A.EMPL_RCD": 0, "A.EFFDT": "2026-09-01", "A.EFFSEQ": 0},
            {"A.EMPLID": "E1", "A.EMPL_RCD": 1, "A.EFFDT": "2024-05-05", "A.EFFSEQ": 0},
            {"A.EMPLID": "E2", "A.EMPL_RCD": 0, "A.EFFDT": "2027-01-01", "A.EFFSEQ": 0}
        ]));
        let ed = EffectiveDating::new(&["EMPLID", "EMPL_RCD"]);
        let out = flag_current_rows(input.clone(), &ed, d("2026-03-01")).unwrap();
        let flags: Vec<bool> = out
            .iter()
            .map(|r| r["IS_CURRENT"].as_bool().unwrap())
            .collect();
        assert_eq!(flags, vec![false, false, true, false, true, false]);

        let ed = EffectiveDating {
            rows: EffectiveDatedRows::CurrentAndFuture,
            ..ed
        };
        let out = flag_current_rows(input, &ed, d("2026-03-01")).unwrap();
        let kept: Vec<(&str, bool)> = out
            .iter()
            .map(|r| {
                (
                    r["A.EFFDT"].as_str().unwrap(),
                    r["IS_CURRENT"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            kept,
            vec![
                ("2026-02-01", true),
                ("2026-09-01", false),
                ("2024-05-05", true),
                ("2027-01-01", false)
            ]
        );
    }

    #[test]
    fn missing_effdt_is_an_error_naming_the_field() {
        let input = rows(json!([{"EMPLID": "E1", "EFFSEQ": 0}]));
        let e = flag_current_rows(input, &EffectiveDating::new(&["EMPLID"]), d("2026-01-01"))
            .unwrap_err();
        assert!(e.contains("EFFDT"), "{e}");
    }
}
