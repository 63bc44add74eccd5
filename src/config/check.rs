//! The semantic pass: every problem in the file at once, each with its line, and the typed
//! [`Config`] when there are none.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveTime, Utc};
use serde::Deserialize;
use sync_core::engine::RejectPolicy;
use sync_core::mapping::Mapping;
use sync_core::schedule::Schedule;
use toml::Spanned;

use super::file::{
    DestinationSection, PeopleSoftSection, PipelineFile, PipelineSection, StreamSection,
    WritebackSection,
};
use super::{
    parse_duration, Blackout, BulkSettings, CaptureSettings, Config, Destination, Domain,
    PeopleSoftAuth, PeopleSoftSettings, PipelineSettings, Problem, StateKind, StateSettings,
    StreamKind, StreamSettings, WritebackSettings,
};

struct Checker<'a> {
    text: &'a str,
    problems: Vec<Problem>,
    /// Start offsets of the values already reported: one value, one message (a bad value in
    /// `[defaults]` is inherited by every stream but reported once).
    reported: std::collections::BTreeSet<usize>,
    /// Byte range of the `[defaults]` table, to word its problems as its own.
    defaults: Option<std::ops::Range<usize>>,
}

/// Byte range of the top-level table `[name]` in `text` (to the next table header).
fn table_range(text: &str, name: &str) -> Option<std::ops::Range<usize>> {
    let header = format!("[{name}]");
    let mut offset = 0;
    let mut start = None;
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        if let Some(s) = start {
            if t.starts_with('[') {
                return Some(s..offset);
            }
        } else if t == header {
            start = Some(offset);
        }
        offset += line.len();
    }
    start.map(|s| s..text.len())
}

/// Spans of each stream's mapping columns, read again from the text (the mapping itself is
/// kept as a plain TOML value, which has no positions).
#[derive(Deserialize)]
struct ColumnSpans {
    #[serde(default)]
    streams: Vec<StreamColumnSpans>,
}

#[derive(Deserialize)]
struct StreamColumnSpans {
    mapping: Option<MappingColumnSpans>,
}

#[derive(Deserialize)]
struct MappingColumnSpans {
    #[serde(default)]
    columns: Vec<Spanned<toml::Value>>,
}

fn column_spans(text: &str) -> Vec<Vec<Spanned<toml::Value>>> {
    toml::from_str::<ColumnSpans>(text)
        .map(|f| {
            f.streams
                .into_iter()
                .map(|s| s.mapping.map(|m| m.columns).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default()
}

/// The mapping of stream `name`, checked column by column so a problem points at the
/// offending column's line (falling back to the `[streams.mapping]` line).
fn check_mapping(
    c: &mut Checker<'_>,
    name: &str,
    m: &Spanned<toml::Value>,
    columns: &[Spanned<toml::Value>],
) -> Option<Mapping> {
    let label = |col: &Spanned<toml::Value>, i: usize| {
        col.get_ref()
            .get("column")
            .and_then(|v| v.as_str())
            .map(|n| format!("column `{n}`"))
            .unwrap_or_else(|| format!("column #{}", i + 1))
    };
    let mut bad_column = false;
    for (i, col) in columns.iter().enumerate() {
        if let Err(e) = col
            .get_ref()
            .clone()
            .try_into::<sync_core::mapping::ColumnMapping>()
        {
            let what = label(col, i);
            c.problem(
                col,
                format!("stream `{name}`: mapping {what}: {}", e.message().trim()),
            );
            bad_column = true;
        }
    }
    if bad_column {
        return None;
    }
    let parsed: Result<Mapping, _> = m.get_ref().clone().try_into();
    let message = match parsed {
        Ok(mapping) => match mapping.compile() {
            Ok(_) => return Some(mapping),
            Err(e) => e.to_string(),
        },
        Err(e) => e.message().trim().to_string(),
    };
    // Point at the column the message names, when it names one (the last of that name: for
    // a column mapped twice, the second mapping is the offending one).
    let named = message
        .split("column `")
        .nth(1)
        .and_then(|r| r.split('`').next());
    let numbered = message
        .split("column #")
        .nth(1)
        .and_then(|r| r.split(|ch: char| !ch.is_ascii_digit()).next())
        .and_then(|n| n.parse::<usize>().ok());
    let at = columns
        .iter()
        .enumerate()
        .rev()
        .find(|(i, col)| {
            named.is_some_and(|n| {
                col.get_ref()
                    .get("column")
                    .and_then(|v| v.as_str())
                    .is_some_and(|c| c.eq_ignore_ascii_case(n))
            }) || numbered == Some(i + 1)
        })
        .map(|(_, col)| col)
        .unwrap_or(m);
    c.problem(at, format!("stream `{name}`: mapping: {message}"));
    None
}

impl Checker<'_> {
    fn line_of(&self, offset: usize) -> usize {
        if offset == 0 && self.text.is_empty() {
            return 0;
        }
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    fn problem<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) {
        let span = at.span();
        let mut message = message.into();
        if !span.is_empty() {
            if !self.reported.insert(span.start) {
                return;
            }
            if self
                .defaults
                .as_ref()
                .is_some_and(|d| d.contains(&span.start))
            {
                // Inherited by every stream, but it is the `[defaults]` value that is wrong.
                if let Some(rest) = message
                    .strip_prefix("stream `")
                    .and_then(|r| r.split_once("`: "))
                    .map(|(_, rest)| rest.to_string())
                {
                    message = rest;
                }
                message = format!("[defaults] {message}");
            }
        }
        let line = self.line_of(span.start);
        self.problems.push(Problem { line, message });
    }

    fn duration(&mut self, v: &Option<Spanned<String>>, key: &str, default: Duration) -> Duration {
        match v {
            None => default,
            Some(s) => match parse_duration(s.get_ref()).map(Duration::from_std) {
                Ok(Ok(d)) => d,
                Ok(Err(_)) => {
                    self.problem(s, format!("`{key}` is too long"));
                    default
                }
                Err(e) => {
                    self.problem(s, format!("`{key}`: {e}"));
                    default
                }
            },
        }
    }

    fn zone(
        &mut self,
        v: &Option<Spanned<String>>,
        key: &str,
        default: chrono_tz::Tz,
    ) -> chrono_tz::Tz {
        match v {
            None => default,
            Some(s) => s.get_ref().parse().unwrap_or_else(|_| {
                self.problem(
                    s,
                    format!(
                        "`{key}`: unknown time zone `{}` (use an IANA name like America/Chicago)",
                        s.get_ref()
                    ),
                );
                default
            }),
        }
    }

    /// The name of the environment variable holding a secret.
    fn env_ref(
        &mut self,
        v: &Option<Spanned<String>>,
        key: &str,
        needed_for: &str,
    ) -> Option<String> {
        match v {
            None => {
                self.problems.push(Problem {
                    line: 0,
                    message: format!("`peoplesoft.{key}` is required for {needed_for}"),
                });
                None
            }
            Some(s)
                if s.get_ref().trim().is_empty() || s.get_ref().contains(char::is_whitespace) =>
            {
                self.problem(s, format!("`peoplesoft.{key}` must name an environment variable (secrets are never written in this file)"));
                None
            }
            Some(s) => Some(s.get_ref().clone()),
        }
    }
}

/// See [`super::parse`].
pub(super) fn parse(text: &str) -> Result<Config, Vec<Problem>> {
    let file: PipelineFile = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
            .unwrap_or(0);
        vec![Problem {
            line,
            message: e.message().trim().to_string(),
        }]
    })?;
    let mut c = Checker {
        text,
        problems: Vec::new(),
        reported: Default::default(),
        defaults: table_range(text, "defaults"),
    };
    let mapping_columns = column_spans(text);

    if file.pipeline.name.get_ref().trim().is_empty() {
        c.problem(&file.pipeline.name, "`pipeline.name` is empty");
    }
    let schedule =
        file.pipeline
            .schedule
            .as_ref()
            .and_then(|s| match s.get_ref().parse::<Schedule>() {
                Ok(v) => Some(v),
                Err(e) => {
                    c.problem(s, format!("`pipeline.schedule`: {e}"));
                    None
                }
            });
    let state_kind = match file.state.kind.get_ref().as_str() {
        "file" => StateKind::File,
        "databricks" => StateKind::Databricks,
        other => {
            c.problem(
                &file.state.kind,
                format!("`state.kind` must be `file` or `databricks`, not `{other}`"),
            );
            StateKind::File
        }
    };
    let lease_ttl = c.duration(
        &file.state.lease_ttl,
        "state.lease_ttl",
        Duration::minutes(5),
    );
    if let Some(v) = &file.state.lease_ttl {
        if lease_ttl < Duration::seconds(1) {
            c.problem(v, "`state.lease_ttl` must be at least 1s");
        }
    }
    let worker = file.state.worker.as_ref().and_then(|w| {
        let name = w.get_ref().trim();
        if name.is_empty() {
            c.problem(
                w,
                "`state.worker` is empty: remove it to use the host name and process id",
            );
            None
        } else {
            Some(name.to_string())
        }
    });

    // PeopleSoft connection.
    let ps = &file.peoplesoft;
    let host = ps.host.get_ref();
    if host.is_empty() || host.contains("://") || host.contains('/') {
        c.problem(
            &ps.host,
            format!("`peoplesoft.host` must be a bare host name (no scheme or path), not `{host}`"),
        );
    }
    let port = match &ps.port {
        None => 443,
        Some(p) => u16::try_from(*p.get_ref())
            .ok()
            .filter(|p| *p > 0)
            .unwrap_or_else(|| {
                c.problem(
                    p,
                    format!("`peoplesoft.port` must be 1-65535, not {}", p.get_ref()),
                );
                443
            }),
    };
    if ps.node.get_ref().trim().is_empty() || ps.node.get_ref().contains(['/', ' ']) {
        c.problem(&ps.node, format!("`peoplesoft.node` must be the Integration Broker node name (no spaces or `/`), not `{}`", ps.node.get_ref()));
    }
    let mut http = false;
    if let Some(s) = &ps.scheme {
        match s.get_ref().as_str() {
            "https" => {}
            "http" if ps.allow_http => http = true,
            "http" => c.problem(s, "`peoplesoft.scheme = \"http\"` sends credentials in clear text; set `allow_http = true` only for local testing"),
            other => c.problem(s, format!("`peoplesoft.scheme` must be `https` or `http`, not `{other}`")),
        }
    }
    let time_zone = c.zone(&ps.time_zone, "peoplesoft.time_zone", chrono_tz::Tz::UTC);
    let required = |c: &mut Checker<'_>, v: &Option<Spanned<String>>, message: &str| {
        if v.is_none() {
            c.problems.push(Problem {
                line: c.line_of(ps.host.span().start),
                message: message.to_string(),
            });
        }
        v.as_ref().map(|v| v.get_ref().clone())
    };
    let auth = match ps.auth.as_ref().map(|a| a.get_ref().as_str()) {
        None | Some("basic") => {
            let user = required(
                &mut c,
                &ps.user,
                "`peoplesoft.user` (the OPRID) is required for basic auth",
            );
            let password_env = c.env_ref(&ps.password_env, "password_env", "basic auth");
            user.zip(password_env)
                .map(|(user, password_env)| PeopleSoftAuth::Basic { user, password_env })
        }
        Some("bearer") => c
            .env_ref(&ps.token_env, "token_env", "bearer auth")
            .map(|token_env| PeopleSoftAuth::Bearer { token_env }),
        Some("oauth2") => {
            let message =
                "`peoplesoft.token_url` and `peoplesoft.client_id` are required for oauth2";
            let token_url = required(&mut c, &ps.token_url, message);
            let client_id = if token_url.is_some() {
                required(&mut c, &ps.client_id, message)
            } else {
                ps.client_id.as_ref().map(|v| v.get_ref().clone())
            };
            let secret = c.env_ref(&ps.client_secret_env, "client_secret_env", "oauth2");
            match (token_url, client_id, secret) {
                (Some(token_url), Some(client_id), Some(client_secret_env)) => {
                    Some(PeopleSoftAuth::OAuth2 {
                        token_url,
                        client_id,
                        client_secret_env,
                        scope: ps.scope.clone(),
                        audience: ps.audience.clone(),
                    })
                }
                _ => None,
            }
        }
        Some(other) => {
            let at = ps.auth.as_ref().expect("Some(other) came from it");
            c.problem(
                at,
                format!("`peoplesoft.auth` must be `basic`, `bearer` or `oauth2`, not `{other}`"),
            );
            None
        }
    };
    let max_concurrent_requests = match &ps.max_concurrent_requests {
        None => 1,
        Some(n) if (1..=16).contains(n.get_ref()) => *n.get_ref() as usize,
        Some(n) => {
            c.problem(n, "`peoplesoft.max_concurrent_requests` must be 1-16 (PeopleSoft is shared with the business)");
            1
        }
    };
    let max_rows = match &ps.max_rows {
        None => None,
        Some(n) => match u32::try_from(*n.get_ref()) {
            Ok(v) if v > 0 => Some(v),
            _ => {
                c.problem(
                    n,
                    "`peoplesoft.max_rows` must be positive (truncation is detected against it)",
                );
                None
            }
        },
    };
    let min_gap = c
        .duration(
            &ps.min_gap,
            "peoplesoft.min_gap",
            Duration::milliseconds(250),
        )
        .to_std()
        .unwrap_or_default();
    let request_timeout = c
        .duration(
            &ps.request_timeout,
            "peoplesoft.request_timeout",
            Duration::seconds(120),
        )
        .to_std()
        .unwrap_or_default();
    let write_attempts = match &ps.write_attempts {
        None => 3,
        Some(n) if (1..=10).contains(n.get_ref()) => *n.get_ref() as u32,
        Some(n) => {
            c.problem(n, "`peoplesoft.write_attempts` must be 1-10");
            3
        }
    };
    let write_retry_delay = c
        .duration(
            &ps.write_retry_delay,
            "peoplesoft.write_retry_delay",
            Duration::seconds(5),
        )
        .to_std()
        .unwrap_or_default();
    let mut blackouts = Vec::new();
    for b in &ps.blackout {
        let time = |v: &Spanned<String>, key: &str, c: &mut Checker<'_>| {
            NaiveTime::parse_from_str(v.get_ref(), "%H:%M")
                .map_err(|_| {
                    c.problem(
                        v,
                        format!(
                            "`peoplesoft.blackout.{key}` must be HH:MM, not `{}`",
                            v.get_ref()
                        ),
                    )
                })
                .ok()
        };
        let from = time(&b.from, "from", &mut c);
        let to = time(&b.to, "to", &mut c);
        let zone = c.zone(&b.time_zone, "peoplesoft.blackout.time_zone", time_zone);
        let mut days = Vec::new();
        for d in &b.days {
            match d.get_ref().parse::<chrono::Weekday>() {
                Ok(w) => days.push(w),
                Err(_) => c.problem(
                    d,
                    format!(
                        "`peoplesoft.blackout.days`: `{}` is not a day of the week",
                        d.get_ref()
                    ),
                ),
            }
        }
        let skip = match b.action.as_ref().map(|a| a.get_ref().as_str()) {
            None | Some("wait") => false,
            Some("skip") => true,
            Some(other) => {
                c.problem(
                    b.action.as_ref().expect("some"),
                    format!("`peoplesoft.blackout.action` must be `wait` or `skip`, not `{other}`"),
                );
                false
            }
        };
        if let (Some(from), Some(to)) = (from, to) {
            blackouts.push(Blackout {
                from,
                to,
                time_zone: zone,
                days,
                skip,
                label: b.label.clone().unwrap_or_else(|| "blackout".into()),
            });
        }
    }

    // Destination.
    let d = &file.destination;
    let destination = match d.kind.get_ref().as_str() {
        "sqlite" => {
            if d.trigger_job_id.is_some() {
                c.problem(
                    &d.kind,
                    "`destination.trigger_job_id` needs kind = \"databricks\"",
                );
            }
            for (set, key) in [
                (d.bulk.as_ref().map(|v| v.span()), "bulk"),
                (
                    d.bulk_threshold.as_ref().map(|v| v.span()),
                    "bulk_threshold",
                ),
                (d.volume.as_ref().map(|v| v.span()), "volume"),
                (d.create_volume.as_ref().map(|v| v.span()), "create_volume"),
            ] {
                if let Some(span) = set {
                    c.problem(
                        &Spanned::new(span, ()),
                        format!("`destination.{key}` needs kind = \"databricks\" (bulk loads stage files in a Unity Catalog volume)"),
                    );
                }
            }
            if d.path.is_none() {
                c.problem(
                    &d.kind,
                    "`destination.path` (the SQLite file) is required for kind = \"sqlite\"",
                );
            }
            d.path.clone().map(|path| Destination::Sqlite { path })
        }
        "databricks" => {
            for (v, key) in [(&d.catalog, "catalog"), (&d.schema, "schema")] {
                if v.is_none() {
                    c.problem(
                        &d.kind,
                        format!("`destination.{key}` is required for kind = \"databricks\""),
                    );
                }
            }
            let bulk = bulk_settings(&mut c, d);
            d.catalog
                .as_ref()
                .zip(d.schema.as_ref())
                .map(|(catalog, schema)| Destination::Databricks {
                    catalog: catalog.get_ref().clone(),
                    schema: schema.get_ref().clone(),
                    profile: d.profile.clone(),
                    allow_http: d.allow_http,
                    trigger_job_id: d.trigger_job_id,
                    bulk,
                })
        }
        other => {
            c.problem(
                &d.kind,
                format!("`destination.kind` must be `databricks` or `sqlite`, not `{other}`"),
            );
            None
        }
    };
    // A bulk-loading destination wants batches big enough for one file and one statement.
    let default_batch_size = match &destination {
        Some(Destination::Databricks { bulk: Some(_), .. }) => super::BULK_BATCH_SIZE,
        _ => super::DEFAULT_BATCH_SIZE,
    };
    if state_kind == StateKind::Databricks
        && !matches!(destination, Some(Destination::Databricks { .. }))
    {
        c.problem(
            &file.state.kind,
            "`state.kind = \"databricks\"` needs `destination.kind = \"databricks\"`",
        );
    }

    // Streams.
    if file.streams.is_empty() && file.writeback.is_empty() {
        c.problems.push(Problem {
            line: 0,
            message: "no `[[streams]]` or `[[writeback]]` defined".into(),
        });
    }
    let mut seen = BTreeMap::new();
    let mut streams = Vec::new();
    for (index, s) in file.streams.iter().enumerate() {
        let name = s.name.get_ref().clone();
        if seen.insert(name.clone(), ()).is_some() {
            c.problem(&s.name, format!("stream `{name}` is defined twice"));
        }
        let domain = s.domain.as_ref().and_then(|dm| {
            dm.get_ref()
                .parse::<Domain>()
                .map_err(|e| c.problem(dm, format!("stream `{name}`: {e}")))
                .ok()
        });
        if s.domain.is_none() {
            if s.query.is_none() {
                c.problem(
                    &s.name,
                    format!("stream `{name}`: give a `domain` or a `query` with a `mapping`"),
                );
            }
            if s.mapping.is_none() {
                c.problem(&s.name, format!("stream `{name}`: a custom stream (no `domain`) needs a `[streams.mapping]`"));
            }
            if s.cursor.is_none() {
                c.problem(&s.name, format!("stream `{name}`: a custom stream needs `cursor` (the PeopleSoft cursor field)"));
            }
        }
        let mapping = s.mapping.as_ref().and_then(|m| {
            let columns = mapping_columns.get(index).map(Vec::as_slice).unwrap_or(&[]);
            check_mapping(&mut c, &name, m, columns)
        });
        let pick = |o: &Option<Spanned<String>>, d: &Option<Spanned<String>>| {
            o.clone().or_else(|| d.clone())
        };
        let dflt = &file.defaults;
        let o = &s.overrides();
        let start = match pick(&o.start, &dflt.start) {
            None => DateTime::<Utc>::from_timestamp(0, 0).expect("epoch") + Duration::days(365 * 30),
            Some(v) => DateTime::parse_from_rfc3339(v.get_ref()).map(|t| t.with_timezone(&Utc)).unwrap_or_else(|_| {
                c.problem(&v, format!("stream `{name}`: `start` must be RFC 3339 like 2024-01-01T00:00:00Z, not `{}`", v.get_ref()));
                Utc::now()
            }),
        };
        let lookback = c.duration(
            &pick(&o.lookback, &dflt.lookback),
            "lookback",
            Duration::hours(1),
        );
        let settle_lag = c.duration(
            &pick(&o.settle_lag, &dflt.settle_lag),
            "settle_lag",
            Duration::minutes(5),
        );
        let max_window = c.duration(
            &pick(&o.max_window, &dflt.max_window),
            "max_window",
            Duration::days(1),
        );
        let min_window = c.duration(
            &pick(&o.min_window, &dflt.min_window),
            "min_window",
            Duration::minutes(1),
        );
        if min_window > max_window || min_window <= Duration::zero() {
            let at = pick(&o.min_window, &dflt.min_window).unwrap_or_else(|| s.name.clone());
            c.problem(&at, format!("stream `{name}`: `min_window` must be positive and not wider than `max_window`"));
        }
        let int =
            |o: &Option<Spanned<i64>>, d: &Option<Spanned<i64>>| o.clone().or_else(|| d.clone());
        let batch_size = match int(&o.batch_size, &dflt.batch_size) {
            None => default_batch_size,
            Some(v) if (1..=1_000_000).contains(v.get_ref()) => *v.get_ref() as usize,
            Some(v) => {
                c.problem(
                    &v,
                    format!("stream `{name}`: `batch_size` must be 1-1000000"),
                );
                default_batch_size
            }
        };
        let max_attempts = match int(&o.max_attempts, &dflt.max_attempts) {
            None => 5,
            Some(v) if (1..=1000).contains(v.get_ref()) => *v.get_ref() as u32,
            Some(v) => {
                c.problem(
                    &v,
                    format!("stream `{name}`: `max_attempts` must be 1-1000"),
                );
                5
            }
        };
        let on_reject = match pick(&o.on_reject, &dflt.on_reject) {
            None => RejectPolicy::FailWindow,
            Some(v) => match v.get_ref().as_str() {
                "fail_window" => RejectPolicy::FailWindow,
                "quarantine" => RejectPolicy::Quarantine,
                other => {
                    c.problem(&v, format!("stream `{name}`: `on_reject` must be `fail_window` or `quarantine`, not `{other}`"));
                    RejectPolicy::FailWindow
                }
            },
        };
        let capture = capture_settings(&mut c, s, &name, &file.peoplesoft, &file.pipeline);
        let query = s.query.as_ref().map(|q| q.get_ref().clone());
        let kind = match (domain, query, mapping, &s.cursor) {
            (Some(domain), query, _, _) => StreamKind::Domain { domain, query },
            (None, Some(query), Some(mapping), Some(cursor)) => StreamKind::Custom {
                query,
                mapping: Box::new(mapping),
                key: s.key.clone(),
                cursor: cursor.clone(),
            },
            // Reported above.
            _ => continue,
        };
        streams.push(StreamSettings {
            name,
            kind,
            table: s.table.clone(),
            start,
            lookback,
            settle_lag,
            max_window,
            min_window,
            batch_size,
            max_attempts,
            on_reject,
            capture,
        });
    }
    let writeback = file
        .writeback
        .iter()
        .filter_map(|w| {
            writeback_settings(&mut c, w, &file, destination.as_ref(), &streams, time_zone)
        })
        .collect();
    if !c.problems.is_empty() {
        let mut p = c.problems;
        p.sort_by_key(|p| p.line);
        return Err(p);
    }
    let (Some(auth), Some(destination)) = (auth, destination) else {
        // Every way to get here pushed a problem above; this only keeps it total.
        return Err(vec![Problem {
            line: 0,
            message: "`[peoplesoft]` authentication or `[destination]` is incomplete".into(),
        }]);
    };
    Ok(Config {
        pipeline: PipelineSettings {
            name: file.pipeline.name.get_ref().clone(),
            schedule,
            max_concurrent_streams: file.pipeline.max_concurrent_streams.unwrap_or(2).max(1),
        },
        state: StateSettings {
            kind: state_kind,
            dir: file.state.dir.clone(),
            worker,
            lease_ttl,
        },
        peoplesoft: PeopleSoftSettings {
            host: file.peoplesoft.host.get_ref().clone(),
            port,
            node: file.peoplesoft.node.get_ref().clone(),
            http,
            path_prefix: file.peoplesoft.path_prefix.clone(),
            time_zone,
            auth,
            max_concurrent_requests,
            min_gap,
            request_timeout,
            max_rows,
            blackouts,
            write_attempts,
            write_retry_delay,
        },
        destination,
        streams,
        writeback,
    })
}

/// The fully qualified, lower-case table of a forward stream (`None`: not in Databricks).
/// `destination.bulk`, `bulk_threshold`, `volume`, `create_volume` of a Databricks destination.
fn bulk_settings(c: &mut Checker<'_>, d: &DestinationSection) -> Option<BulkSettings> {
    let mode = d
        .bulk
        .as_ref()
        .map(|m| m.get_ref().as_str())
        .unwrap_or("auto");
    let on = match mode {
        "auto" => d.volume.is_some(),
        "on" => {
            if d.volume.is_none() {
                c.problem(
                    d.bulk.as_ref().expect("set"),
                    "`destination.bulk = \"on\"` needs `destination.volume` (the Unity Catalog volume to stage files in)",
                );
            }
            true
        }
        "off" => false,
        other => {
            c.problem(
                d.bulk.as_ref().expect("set"),
                format!("`destination.bulk` must be `auto`, `on` or `off`, not `{other}`"),
            );
            false
        }
    };
    let threshold = match &d.bulk_threshold {
        None => super::DEFAULT_BULK_THRESHOLD,
        Some(v) if (1..=10_000_000).contains(v.get_ref()) => *v.get_ref() as usize,
        Some(v) => {
            c.problem(v, "`destination.bulk_threshold` must be 1-10000000 rows");
            super::DEFAULT_BULK_THRESHOLD
        }
    };
    let volume = d.volume.as_ref().and_then(|v| {
        let parts: Vec<&str> = v.get_ref().split('.').collect();
        let full = match (parts.as_slice(), &d.catalog, &d.schema) {
            ([name], Some(cat), Some(sch)) => format!("{}.{}.{name}", cat.get_ref(), sch.get_ref()),
            ([_], _, _) => return None,
            ([_, _, _], _, _) => v.get_ref().clone(),
            _ => {
                c.problem(
                    v,
                    "`destination.volume` must be `catalog.schema.volume` or a volume name in the destination's catalog and schema",
                );
                return None;
            }
        };
        match databricks_client::VolumeName::parse(&full) {
            Ok(_) => Some(full),
            Err(e) => {
                c.problem(v, format!("`destination.volume`: {e}"));
                None
            }
        }
    });
    if !on {
        return None;
    }
    volume.map(|volume| BulkSettings {
        volume,
        threshold,
        create_volume: d.create_volume.as_ref().is_some_and(|v| *v.get_ref()),
    })
}

fn forward_table(s: &StreamSettings, destination: Option<&Destination>) -> Option<String> {
    let Some(Destination::Databricks {
        catalog, schema, ..
    }) = destination
    else {
        return None;
    };
    let table = match (&s.table, &s.kind) {
        (Some(t), _) => t.clone(),
        (None, StreamKind::Domain { domain, .. }) => domain.definition().mapping.table,
        (None, StreamKind::Custom { mapping, .. }) => mapping.table.clone(),
    };
    let full = match table.split('.').count() {
        1 => format!("{catalog}.{schema}.{table}"),
        2 => format!("{catalog}.{table}"),
        _ => table,
    };
    Some(full.replace('`', "").to_ascii_lowercase())
}

/// One `[[writeback]]` entry: every problem reported, the settings when there is none.
fn writeback_settings(
    c: &mut Checker<'_>,
    w: &WritebackSection,
    file: &PipelineFile,
    destination: Option<&Destination>,
    streams: &[StreamSettings],
    peoplesoft_zone: chrono_tz::Tz,
) -> Option<WritebackSettings> {
    use peoplesoft_client::writeback::{ChangeDetection, CiTarget, ConflictPolicy, FieldMap};
    let name = w.name.get_ref().clone();
    let before = c.problems.len();
    if name.trim().is_empty() {
        c.problem(&w.name, "`writeback.name` is empty");
    }
    if file.streams.iter().any(|s| s.name.get_ref() == &name)
        || file
            .writeback
            .iter()
            .filter(|o| o.name.get_ref() == &name)
            .count()
            > 1
    {
        c.problem(
            &w.name,
            format!("writeback `{name}`: the name is already used by another stream or write-back (state is kept per name)"),
        );
    }
    if !matches!(destination, Some(Destination::Databricks { .. })) {
        c.problem(
            &w.name,
            format!("writeback `{name}` reads a governed Databricks table: it needs `destination.kind = \"databricks\"`"),
        );
    }
    let parts: Vec<&str> = w.table.get_ref().split('.').collect();
    let table = match parts.as_slice() {
        [cat, sch, tab] => databricks_client::TableName::new(*cat, *sch, *tab)
            .map_err(|e| c.problem(&w.table, format!("writeback `{name}`: `table`: {e}")))
            .ok(),
        _ => {
            c.problem(
                &w.table,
                format!(
                    "writeback `{name}`: `table` must be `catalog.schema.table`, not `{}`",
                    w.table.get_ref()
                ),
            );
            None
        }
    };
    if let Some(t) = &table {
        let full = t.full_name().to_ascii_lowercase();
        for s in streams {
            if forward_table(s, destination).as_deref() == Some(full.as_str()) {
                c.problem(
                    &w.table,
                    format!(
                        "writeback `{name}`: `table` {} is also the table of forward stream `{}`. A forward MERGE would overwrite a steward's edit that was not written back yet, and PeopleSoft's own rows would look like governed changes. Keep the governed table separate (for example `main.mdm.{}`) and fill it from the forward table in Databricks",
                        t.full_name(),
                        s.name,
                        t.table()
                    ),
                );
            }
        }
    }
    // Columns and the CI field map.
    let mut columns: Vec<(String, sync_core::ColumnType)> = Vec::new();
    let mut maps = |c: &mut Checker<'_>,
                    list: &Spanned<Vec<super::file::FieldSection>>,
                    key: &str|
     -> Vec<FieldMap> {
        if list.get_ref().is_empty() {
            c.problem(
                list,
                format!("writeback `{name}`: `{key}` must map at least one column"),
            );
        }
        let mut out = Vec::new();
        for f in list.get_ref() {
            let ty = match &f.column_type {
                None => sync_core::ColumnType::String,
                Some(t) => match t.parse() {
                    Ok(t) => t,
                    Err(e) => {
                        c.problem(
                            list,
                            format!("writeback `{name}`: `{key}` column `{}`: {e}", f.column),
                        );
                        sync_core::ColumnType::String
                    }
                },
            };
            if columns
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(&f.column))
            {
                c.problem(
                    list,
                    format!("writeback `{name}`: column `{}` is mapped twice", f.column),
                );
            }
            columns.push((f.column.clone(), ty));
            out.push(FieldMap::new(f.column.clone(), f.ci_field.clone()));
        }
        out
    };
    let keys = maps(c, &w.keys, "keys");
    let fields = maps(c, &w.fields, "fields");
    let modified_at = w.modified_at_column.get_ref().clone();
    if columns
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case(&modified_at))
    {
        c.problem(
            &w.modified_at_column,
            format!(
                "writeback `{name}`: `modified_at_column` `{modified_at}` is also a mapped column"
            ),
        );
    }
    columns.push((modified_at.clone(), sync_core::ColumnType::Timestamp));
    let modified_by = w.modified_by_column.as_ref().map(|m| m.get_ref().clone());
    let identities: Vec<String> = match &w.integration_identity {
        None => Vec::new(),
        Some(v) => match v.get_ref() {
            toml::Value::String(s) => vec![s.clone()],
            toml::Value::Array(a) if a.iter().all(|x| x.is_str()) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => {
                c.problem(v, format!("writeback `{name}`: `integration_identity` must be a string or a list of strings"));
                Vec::new()
            }
        },
    };
    match (&modified_by, &w.integration_identity) {
        (Some(m), _) => columns.push((m.clone(), sync_core::ColumnType::String)),
        (None, Some(v)) if !identities.is_empty() => c.problem(
            v,
            format!("writeback `{name}`: `integration_identity` needs `modified_by_column` (the column that says who changed a row)"),
        ),
        (None, _) => {}
    }
    if modified_by.is_some() && identities.is_empty() {
        c.problem(
            w.modified_by_column.as_ref().unwrap_or(&w.name),
            format!("writeback `{name}`: `modified_by_column` needs `integration_identity` (the value the integration itself writes there), or echoes of the forward sync are written back"),
        );
    }
    let policy = match w
        .conflict_policy
        .as_ref()
        .map(|v| (v, v.get_ref().as_str()))
    {
        None => ConflictPolicy::PeopleSoftWins,
        Some((_, "peoplesoft_wins")) => ConflictPolicy::PeopleSoftWins,
        Some((_, "hold_for_review")) => ConflictPolicy::HoldForReview,
        Some((_, "databricks_wins")) => ConflictPolicy::DatabricksWins,
        Some((v, other)) => {
            c.problem(v, format!("writeback `{name}`: `conflict_policy` must be `peoplesoft_wins`, `hold_for_review` or `databricks_wins`, not `{other}`"));
            ConflictPolicy::PeopleSoftWins
        }
    };
    let detection = match w
        .change_detection
        .as_ref()
        .map(|v| (v, v.get_ref().as_str()))
    {
        None | Some((_, "governed_hash")) => ChangeDetection::GovernedHash,
        Some((_, "stamp")) => ChangeDetection::Stamp,
        Some((v, other)) => {
            c.problem(v, format!("writeback `{name}`: `change_detection` must be `governed_hash` or `stamp`, not `{other}`"));
            ChangeDetection::GovernedHash
        }
    };
    let ci = &w.ci;
    let version = match &ci.version {
        None => 1,
        Some(v) => u32::try_from(*v.get_ref())
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or_else(|| {
                c.problem(
                    v,
                    format!("writeback `{name}`: `ci.version` must be a positive number"),
                );
                1
            }),
    };
    if detection == ChangeDetection::Stamp && ci.stamp_field.is_none() {
        c.problem(
            w.change_detection.as_ref().unwrap_or(&w.name),
            format!("writeback `{name}`: `change_detection = \"stamp\"` needs `ci.stamp_field` (e.g. LASTUPDDTTM)"),
        );
    }
    let zone = c.zone(&ci.time_zone, "writeback.ci.time_zone", peoplesoft_zone);
    let key_pairs: Vec<(&str, &str)> = keys
        .iter()
        .map(|k| (k.column.as_str(), k.ci_field.as_str()))
        .collect();
    let mut target = CiTarget::cirt(ci.name.get_ref(), version, &key_pairs)
        .conflict_policy(policy)
        .change_detection(detection)
        .modified_at(modified_at.clone())
        .time_zone(zone.name());
    target.fields = fields;
    if let Some(m) = &modified_by {
        target.echo.modified_by_column = Some(m.clone());
        target.echo.integration_oprids = identities;
    }
    if let Some(f) = &ci.stamp_field {
        target = target.stamp(f.get_ref().clone(), None);
    }
    let pick = |v: &Option<Spanned<String>>, d: &str| {
        v.as_ref()
            .map(|v| v.get_ref().clone())
            .unwrap_or_else(|| d.to_string())
    };
    let (get, create, update) = (
        pick(&ci.get, &target.get),
        pick(&ci.create, &target.create),
        pick(&ci.update, &target.update),
    );
    target = target.templates(get, create, update);
    target.payload.request_envelope = ci.request_envelope.clone();
    target.payload.response_path = ci.response_path.clone();
    if let Some(m) = &ci.not_found_messages {
        target.not_found_messages = m.clone();
    }
    if c.problems.len() == before {
        if let Err(e) = target.validate() {
            let at = match e.to_string() {
                m if m.contains("writeback.get") => ci.get.as_ref().unwrap_or(&ci.name),
                m if m.contains("writeback.create") => ci.create.as_ref().unwrap_or(&ci.name),
                m if m.contains("writeback.update") => ci.update.as_ref().unwrap_or(&ci.name),
                _ => &ci.name,
            };
            c.problem(at, format!("writeback `{name}`: {e}"));
        }
    }
    let check_key = match &ci.check_key {
        None => Vec::new(),
        Some(k) => {
            let pairs = k.get_ref().0.clone();
            for (f, _) in &pairs {
                if !target.keys.iter().any(|m| m.ci_field == *f) {
                    c.problem(
                        k,
                        format!(
                            "writeback `{name}`: `ci.check_key` field `{f}` is not a key field"
                        ),
                    );
                }
            }
            pairs
        }
    };
    let seed_from = w.seed_from.as_ref().and_then(|v| {
        let forward = v.get_ref();
        let Some(s) = streams.iter().find(|s| &s.name == forward) else {
            c.problem(v, format!("writeback `{name}`: `seed_from` names no `[[streams]]` entry (`{forward}`)"));
            return None;
        };
        let mapped: Vec<String> = match &s.kind {
            StreamKind::Domain { domain, .. } => domain
                .definition()
                .mapping
                .columns
                .iter()
                .map(|m| m.column.clone())
                .collect(),
            StreamKind::Custom { mapping, .. } => {
                mapping.columns.iter().map(|m| m.column.clone()).collect()
            }
        };
        let missing: Vec<&str> = target
            .keys
            .iter()
            .chain(&target.fields)
            .map(|f| f.column.as_str())
            .filter(|col| !mapped.iter().any(|m| m.eq_ignore_ascii_case(col)))
            .collect();
        if !missing.is_empty() {
            c.problem(v, format!("writeback `{name}`: `seed_from` stream `{forward}` has no column(s) {} (its rows seed the baselines by the write-back's column names)", missing.join(", ")));
            return None;
        }
        Some(forward.clone())
    });
    let dflt = &file.defaults;
    let or =
        |o: &Option<Spanned<String>>, d: &Option<Spanned<String>>| o.clone().or_else(|| d.clone());
    let start = match or(&w.start, &dflt.start) {
        None => {
            c.problem(&w.name, format!("writeback `{name}` needs `start` (or `[defaults] start`): where reading the governed table by `modified_at_column` begins"));
            Utc::now()
        }
        Some(v) => DateTime::parse_from_rfc3339(v.get_ref())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|_| {
                c.problem(&v, format!("writeback `{name}`: `start` must be RFC 3339 like 2024-01-01T00:00:00Z, not `{}`", v.get_ref()));
                Utc::now()
            }),
    };
    let lookback = c.duration(
        &or(&w.lookback, &dflt.lookback),
        "lookback",
        Duration::hours(1),
    );
    let settle_lag = c.duration(
        &or(&w.settle_lag, &dflt.settle_lag),
        "settle_lag",
        Duration::minutes(5),
    );
    let max_window = c.duration(
        &or(&w.max_window, &dflt.max_window),
        "max_window",
        Duration::days(1),
    );
    let batch_size = match &w.batch_size {
        None => 500,
        Some(v) if (1..=100_000).contains(v.get_ref()) => *v.get_ref() as usize,
        Some(v) => {
            c.problem(
                v,
                format!("writeback `{name}`: `batch_size` must be 1-100000"),
            );
            500
        }
    };
    let max_attempts = match w.max_attempts.clone().or_else(|| dflt.max_attempts.clone()) {
        None => 5,
        Some(v) if (1..=1000).contains(v.get_ref()) => *v.get_ref() as u32,
        Some(v) => {
            c.problem(
                &v,
                format!("writeback `{name}`: `max_attempts` must be 1-1000"),
            );
            5
        }
    };
    if c.problems.len() > before {
        return None;
    }
    Some(WritebackSettings {
        name,
        table: table?,
        columns,
        key_columns: target.keys.iter().map(|k| k.column.clone()).collect(),
        modified_at_column: modified_at,
        target,
        check_key,
        seed_from,
        start,
        lookback,
        settle_lag,
        max_window,
        batch_size,
        max_attempts,
    })
}

/// Reads one stream's capture keys (see [`CaptureSettings`]).
fn capture_settings(
    c: &mut Checker<'_>,
    s: &StreamSection,
    name: &str,
    ps: &PeopleSoftSection,
    pipeline: &PipelineSection,
) -> CaptureSettings {
    use peoplesoft_client::{PromptFormat, RangeSemantics};
    use sync_core::engine::DuplicatePolicy;
    let mut out = CaptureSettings::default();
    let prompt_name = |c: &mut Checker<'_>, v: &Option<Spanned<String>>, key: &str| {
        let v = v.as_ref()?;
        let n = v.get_ref().trim();
        if n.is_empty() || n.contains(',') || n.contains(char::is_whitespace) {
            c.problem(v, format!("stream `{name}`: `{key}` must be a prompt's unique name (no spaces or commas), not `{}`", v.get_ref()));
            return None;
        }
        Some(n.to_string())
    };
    out.from_prompt = prompt_name(c, &s.from_prompt, "from_prompt");
    out.to_prompt = prompt_name(c, &s.to_prompt, "to_prompt");
    if let Some(v) = &s.prompt_format {
        out.prompt_format = match v.get_ref().as_str() {
            "date" => Some(PromptFormat::Date),
            "datetime" => Some(PromptFormat::NativeDateTime),
            "iso" => Some(PromptFormat::IsoDateTime),
            other => {
                c.problem(v, format!("stream `{name}`: `prompt_format` must be `date`, `datetime` or `iso`, not `{other}`"));
                None
            }
        };
    }
    if let Some(v) = &s.range {
        out.range = match v.get_ref().as_str() {
            "half_open" => Some(RangeSemantics::HalfOpen),
            "between_inclusive" => Some(RangeSemantics::InclusiveBetween),
            other => {
                c.problem(v, format!("stream `{name}`: `range` must be `half_open` or `between_inclusive`, not `{other}`"));
                None
            }
        };
    }
    if let Some(v) = &s.fixed_prompts {
        for (k, val) in &v.get_ref().0 {
            if k.trim().is_empty() || k.contains(',') || val.contains(',') {
                c.problem(v, format!("stream `{name}`: fixed prompt `{k} = \"{val}\"`: names must be non-empty and neither names nor values may contain a comma (QAS separates prompts by commas)"));
            }
        }
        out.fixed_prompts = v.get_ref().0.clone();
    }
    if let Some(v) = &s.key_prompts {
        if v.get_ref()
            .iter()
            .any(|k| k.trim().is_empty() || k.contains(','))
        {
            c.problem(
                v,
                format!("stream `{name}`: `key_prompts` must be prompt names without commas"),
            );
        }
        if s.domain.is_none() && !s.key.is_empty() && v.get_ref().len() != s.key.len() {
            c.problem(v, format!("stream `{name}`: `key_prompts` needs one prompt per `key` field ({} given, {} key fields)", v.get_ref().len(), s.key.len()));
        }
        out.key_prompts = v.get_ref().clone();
    }
    if let Some(v) = s.profile_max_rows.as_ref().or(ps.profile_max_rows.as_ref()) {
        match u32::try_from(*v.get_ref()) {
            Ok(n) if n > 0 => out.profile_max_rows = Some(n),
            _ => c.problem(v, format!("stream `{name}`: `profile_max_rows` must be a positive row count (the query profile's Max Rows Fetched), not {}", v.get_ref())),
        }
    }
    if let Some(v) = &s.profile_cap_floor {
        match u32::try_from(*v.get_ref()) {
            Ok(n) => out.profile_cap_floor = Some(n),
            _ => c.problem(
                v,
                format!(
                    "stream `{name}`: `profile_cap_floor` must be a row count, not {}",
                    v.get_ref()
                ),
            ),
        }
    }
    if let Some(v) = &s.write_mode {
        out.write_mode = match v.get_ref().as_str() {
            "upsert" => sync_core::WriteMode::Upsert,
            "append" => sync_core::WriteMode::Append,
            other => {
                c.problem(
                    v,
                    format!(
                        "stream `{name}`: `write_mode` must be `upsert` or `append`, not `{other}`"
                    ),
                );
                sync_core::WriteMode::Upsert
            }
        };
    }
    if s.domain.is_none()
        && s.key.is_empty()
        && out.write_mode != sync_core::WriteMode::Append
        && s.mapping.is_some()
    {
        c.problem(&s.name, format!("stream `{name}` has no `key`: without one every changed row is added again instead of updated. Give `key` (the PeopleSoft key fields, and `primary_key` in the mapping), or set `write_mode = \"append\"` for an immutable event stream"));
    }
    if let Some(v) = &s.on_duplicate {
        out.on_duplicate = match v.get_ref().as_str() {
            "reject" => DuplicatePolicy::Reject,
            "keep_last" => DuplicatePolicy::KeepLast,
            other => {
                c.problem(v, format!("stream `{name}`: `on_duplicate` must be `reject` or `keep_last`, not `{other}`"));
                DuplicatePolicy::Reject
            }
        };
    }
    out.null_cursor_check = s.null_cursor_check;
    if let Some(v) = &s.deletes {
        out.deletes = match v.get_ref().as_str() {
            "soft" => sync_core::DeletePolicy::Soft,
            "hard" => sync_core::DeletePolicy::Hard,
            "ignore" => sync_core::DeletePolicy::Ignore,
            other => {
                c.problem(v, format!("stream `{name}`: `deletes` must be `soft`, `hard` or `ignore`, not `{other}`"));
                sync_core::DeletePolicy::Soft
            }
        };
    }
    let schedule = s
        .snapshot
        .as_ref()
        .map(|v| ("snapshot", v))
        .or(s.reconcile.as_ref().map(|v| ("reconcile", v)))
        .or(pipeline
            .reconcile
            .as_ref()
            .map(|v| ("pipeline.reconcile", v)));
    if let Some((key, v)) = schedule {
        match v.get_ref().parse::<Schedule>() {
            Ok(sch) => out.reconcile = Some(sch),
            Err(e) => c.problem(v, format!("stream `{name}`: `{key}`: {e}")),
        }
    }
    out
}
