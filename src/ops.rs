//! Operational safety around a run: the persisted credential latch, the fail-fast preflight,
//! `reset-auth`, and `check`'s per-query proof. Each command of the `sync` CLI calls these
//! before anything is built, so a wrong password, host or node costs one request and leaves
//! nothing behind.

use std::path::Path;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use futures::StreamExt;
use peoplesoft_client::{
    PeopleSoftClient, PeopleSoftSource, PingCheck, PingReport, QueryOwner, StreamDefinition,
};
use sync_core::{Source, Window};

use crate::auth_latch::LatchFile;
use crate::build::{
    databricks_client, peoplesoft_client_with, peoplesoft_connection, peoplesoft_credentials,
    stream_definition, BoxError,
};
use crate::config::{Config, Destination, StateKind};

/// The latch files of the pipeline's state directory.
pub fn latch_file(config: &Config) -> LatchFile {
    LatchFile::new(config.state.dir.clone())
}

/// The PeopleSoft client for a run, refusing to start while the same credentials are latched
/// from an earlier run; a rejection during this run is recorded for the next one.
pub fn open_peoplesoft(config: &Config) -> Result<PeopleSoftClient, BoxError> {
    let credentials = peoplesoft_credentials(config)?;
    let host = peoplesoft_connection(config)?.host_port();
    let latch = latch_file(config);
    latch.check(&host, &credentials)?;
    let recorded = credentials.clone();
    let on_latch = Arc::new(move |r: &peoplesoft_client::AuthRejection| {
        if let Err(e) = latch.record(&recorded, r) {
            tracing::error!("the credential latch could not be saved: {e}");
        }
    });
    peoplesoft_client_with(config, credentials, Some(on_latch))
}

/// `reset-auth`: removes the recorded latch; true when there was one.
pub fn reset_auth(config: &Config) -> Result<bool, BoxError> {
    Ok(latch_file(config).clear()?)
}

/// The cheap request the preflight and `check` send: the first stream's query prompts
/// (metadata only, no query runs).
fn first_query(config: &Config) -> Result<Option<PingCheck>, BoxError> {
    let Some(s) = config.streams.first() else {
        return Ok(None);
    };
    let def = stream_definition(config, s)?;
    Ok(Some(PingCheck::QueryPrompts(QueryOwner::Public, def.query)))
}

/// Checks, before any table is created or any state is written, that PeopleSoft answers
/// (one request: DNS, TCP/TLS, node, credentials) and that the destination is usable. The
/// error is one line naming the problem.
pub async fn preflight(config: &Config, peoplesoft: &PeopleSoftClient) -> Result<(), BoxError> {
    if let Err(peoplesoft_client::Error::Blackout { window, until, .. }) =
        peoplesoft.wait_for_blackout().await
    {
        // `skip` blackouts: nothing may be sent now, and the run skips every stream anyway.
        tracing::info!("PeopleSoft is in blackout window `{window}` until {until}: not checked");
        return destination_ready(config).await;
    }
    if let Some(check) = first_query(config)? {
        match peoplesoft.ping(&check).await {
            PingReport::Ok { .. } => {}
            other => return Err(format!("PeopleSoft: {other}").into()),
        }
    }
    destination_ready(config).await
}

async fn destination_ready(config: &Config) -> Result<(), BoxError> {
    match databricks_client(config)? {
        Some(client) => {
            let r = client.ping().await;
            if !r.is_ok() {
                return Err(format!("Databricks: {r}").into());
            }
        }
        None => {
            if let Destination::Sqlite { path } = &config.destination {
                // SQLite creates the file, not its directory.
                writable_place(path, "destination `path`", false)?;
            }
        }
    }
    if config.state.kind == StateKind::File {
        // The state directory is created with its parents.
        writable_place(&config.state.dir, "state `dir`", true)?;
    }
    Ok(())
}

/// `path` exists and is writable, or can be created (its parent exists and is writable, or
/// with `parents`, its first existing ancestor), without creating anything.
fn writable_place(path: &Path, what: &str, parents: bool) -> Result<(), BoxError> {
    let probe = if path.exists() {
        path.to_path_buf()
    } else {
        match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => {
                let mut p = p.to_path_buf();
                while parents && !p.exists() {
                    match p.parent() {
                        Some(q) if !q.as_os_str().is_empty() => p = q.to_path_buf(),
                        _ => break,
                    }
                }
                p
            }
            _ => std::path::PathBuf::from("."),
        }
    };
    match std::fs::metadata(&probe) {
        Ok(m) if m.permissions().readonly() => Err(format!(
            "{what} {}: {} is read-only",
            path.display(),
            probe.display()
        )
        .into()),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("{what} {}: {}: {e}", path.display(), probe.display()).into()),
    }
}

/// One line per configured stream for `check`: its query run over an empty, one-second
/// window long in the past, which proves the query exists, its prompts match and the user
/// may run it, without reading data. Returns `(stream, Ok(rows) | Err(message))`.
pub async fn check_queries(
    peoplesoft: &PeopleSoftClient,
    definitions: &[StreamDefinition],
) -> Vec<(String, Result<usize, String>)> {
    let from = Utc.with_ymd_and_hms(1901, 1, 1, 0, 0, 0).unwrap();
    let window = Window::new(from, from + chrono::Duration::seconds(1));
    let mut out = Vec::new();
    for def in definitions {
        let result = match PeopleSoftSource::new(peoplesoft.clone(), def.clone()) {
            Err(e) => Err(e.to_string()),
            Ok(source) => {
                let mut pages = source.read(window);
                let mut rows = 0usize;
                let mut err = None;
                while let Some(page) = pages.next().await {
                    match page {
                        Ok(p) => rows += p.records.len(),
                        Err(e) => {
                            err = Some(e.to_string());
                            break;
                        }
                    }
                }
                match err {
                    Some(e) => Err(e),
                    None => Ok(rows),
                }
            }
        };
        out.push((def.name.clone(), result));
    }
    out
}
