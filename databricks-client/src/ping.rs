//! Connection check: proves the credentials and the SQL warehouse, and says in plain words
//! what failed.

use std::fmt;

use reqwest::Method;
use serde::Deserialize;
use sync_core::http::Idempotency;

use crate::client::DatabricksClient;
use crate::config::Credentials;

/// Outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Passed, with a short detail.
    Ok(String),
    /// Failed, with the reason in plain words.
    Failed(String),
    /// Not checked, with the reason.
    Skipped(String),
}

impl Check {
    /// True for [`Check::Ok`].
    pub fn is_ok(&self) -> bool {
        matches!(self, Check::Ok(_))
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::Ok(d) => write!(f, "ok: {d}"),
            Check::Failed(d) => write!(f, "FAILED: {d}"),
            Check::Skipped(d) => write!(f, "skipped: {d}"),
        }
    }
}

/// What [`DatabricksClient::ping`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingReport {
    /// The workspace URL.
    pub host: String,
    /// Whether the credentials work (an OAuth token was issued, or an API call was accepted).
    pub credentials: Check,
    /// Whether the warehouse exists and can run statements.
    pub warehouse: Check,
}

impl PingReport {
    /// True when every check passed.
    pub fn is_ok(&self) -> bool {
        self.credentials.is_ok() && self.warehouse.is_ok()
    }
}

impl fmt::Display for PingReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Databricks workspace {}", self.host)?;
        writeln!(f, "  credentials: {}", self.credentials)?;
        write!(f, "  warehouse:   {}", self.warehouse)
    }
}

#[derive(Deserialize)]
struct Warehouse {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    state: Option<String>,
}

impl DatabricksClient {
    /// Checks the credentials (an OAuth token fetch) and the warehouse
    /// (`GET /api/2.0/sql/warehouses/{id}` and its state). Never fails: problems are in the
    /// report.
    pub async fn ping(&self) -> PingReport {
        let host = self
            .config()
            .host()
            .as_str()
            .trim_end_matches('/')
            .to_string();
        let mut credentials = match self.config().credentials() {
            Credentials::OAuthM2M { client_id, .. } => match self.auth().authorization().await {
                Ok(_) => Check::Ok(format!("OAuth token issued for client id {client_id}")),
                Err(e) => Check::Failed(format!(
                    "could not get an OAuth token for client id {client_id}: {}",
                    crate::Error::from(e)
                )),
            },
            _ => Check::Skipped("personal access token; proven by the warehouse call".into()),
        };
        let warehouse = match self.config().warehouse_id() {
            None => Check::Skipped("no warehouse id configured (DATABRICKS_WAREHOUSE_ID)".into()),
            Some(_) if matches!(credentials, Check::Failed(_)) => {
                Check::Skipped("credentials failed".into())
            }
            Some(id) => {
                let url = self.url(&format!("/api/2.0/sql/warehouses/{id}"));
                match self
                    .send_json::<Warehouse>(Method::GET, url, None, Idempotency::Idempotent)
                    .await
                {
                    Ok(w) => {
                        if matches!(credentials, Check::Skipped(_)) {
                            credentials = Check::Ok("personal access token accepted".into());
                        }
                        let name = w.name.unwrap_or_else(|| id.to_string());
                        match w.state.as_deref().unwrap_or("UNKNOWN") {
                            s @ ("RUNNING" | "STARTING" | "STOPPED" | "STOPPING") => {
                                Check::Ok(format!(
                                    "warehouse {name} ({id}) is {s}{}",
                                    if s == "RUNNING" {
                                        ""
                                    } else {
                                        "; it starts on the first statement"
                                    }
                                ))
                            }
                            s => Check::Failed(format!(
                                "warehouse {name} ({id}) is {s}; it cannot run statements"
                            )),
                        }
                    }
                    Err(e) => {
                        let status = e.status();
                        if status == Some(401) {
                            credentials = Check::Failed(format!(
                                "the workspace rejected the credentials: {e}"
                            ));
                        } else if matches!(credentials, Check::Skipped(_)) && status != Some(403) {
                            credentials =
                                Check::Skipped("not proven: the warehouse call failed".into());
                        }
                        match status {
                            Some(401) => Check::Skipped("credentials rejected".into()),
                            Some(403) => {
                                Check::Failed(format!("no permission to use warehouse {id}: {e}"))
                            }
                            Some(404) => Check::Failed(format!(
                                "warehouse {id} does not exist in this workspace: {e}"
                            )),
                            _ => Check::Failed(format!("could not read warehouse {id}: {e}")),
                        }
                    }
                }
            }
        };
        PingReport {
            host,
            credentials,
            warehouse,
        }
    }
}
