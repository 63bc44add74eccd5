//! Jobs API 2.1: start a downstream job after a load, safely retryable through an
//! `idempotency_token` derived from the pipeline run id.

use std::collections::BTreeMap;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use sync_core::http::Idempotency;

use crate::client::DatabricksClient;
use crate::error::Result;

/// Path of the run-now endpoint.
pub const RUN_NOW_PATH: &str = "/api/2.1/jobs/run-now";

/// A `run-now` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunNow {
    /// The job to start.
    pub job_id: i64,
    /// Job parameters (`job_parameters`), at most 10 000 bytes as JSON.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub job_parameters: BTreeMap<String, String>,
    /// At most 64 characters; a second request with the same token returns the first run.
    pub idempotency_token: String,
}

impl RunNow {
    /// A request whose idempotency token is derived from `run_id` (see [`idempotency_token`]).
    pub fn for_run(job_id: i64, run_id: &str) -> Self {
        Self {
            job_id,
            job_parameters: BTreeMap::new(),
            idempotency_token: idempotency_token(job_id, run_id),
        }
    }

    /// Adds a job parameter.
    pub fn parameter(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.job_parameters.insert(key.into(), value.into());
        self
    }
}

/// The started run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct JobRun {
    /// The run id (`GET /api/2.1/jobs/runs/get?run_id=`).
    pub run_id: i64,
    /// The run's number within the job, when reported.
    #[serde(default)]
    pub number_in_job: Option<i64>,
}

/// A deterministic token of at most 64 characters for `(job_id, run_id)`: a readable prefix
/// of the run id plus the 64-bit XXH3 hash of both (`{job_id}\0{run_id}`), so the same run
/// always maps to the same token and different runs or jobs do not collide in practice.
pub fn idempotency_token(job_id: i64, run_id: &str) -> String {
    let h = xxhash_rust::xxh3::xxh3_64(format!("{job_id}\0{run_id}").as_bytes());
    let prefix: String = run_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(40)
        .collect();
    format!("mlc-{prefix}-{h:016x}")
}

/// Starts a Databricks job after a stream's cycle committed data, so downstream transforms
/// and dashboards refresh when fresh data lands. Add it to a pipeline with
/// [`PipelineBuilder::after_stream`](sync_core::engine::PipelineBuilder::after_stream); the run
/// id is recorded in the audit (an entry with outcome `hook`, annotations
/// `databricks_job_id` and `databricks_job_run_id`).
///
/// One run per stream per cycle: the idempotency token is derived from the cycle's run id and
/// the stream name, so a retried request never starts a second run. The job receives the
/// parameters given here plus `ml_stream`, `ml_table`, `ml_run_id`, `ml_window_from` and
/// `ml_window_to` (RFC 3339).
#[derive(Debug, Clone)]
pub struct JobTrigger {
    client: DatabricksClient,
    job_id: i64,
    parameters: BTreeMap<String, String>,
}

impl JobTrigger {
    /// A trigger for `job_id`.
    pub fn new(client: DatabricksClient, job_id: i64) -> Self {
        Self {
            client,
            job_id,
            parameters: BTreeMap::new(),
        }
    }

    /// Adds a fixed job parameter.
    pub fn parameter(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.parameters.insert(key.into(), value.into());
        self
    }
}

#[async_trait::async_trait]
impl sync_core::engine::StreamHook for JobTrigger {
    async fn after_stream(
        &self,
        ctx: &sync_core::engine::HookContext,
    ) -> std::result::Result<BTreeMap<String, String>, sync_core::ConnectorError> {
        let mut request = RunNow::for_run(self.job_id, &format!("{}:{}", ctx.run_id, ctx.stream));
        request.job_parameters = self.parameters.clone();
        let secs = chrono::SecondsFormat::Secs;
        request = request
            .parameter("ml_stream", ctx.stream.clone())
            .parameter("ml_table", ctx.table.clone())
            .parameter("ml_run_id", ctx.run_id.clone())
            .parameter(
                "ml_window_from",
                ctx.committed.from.to_rfc3339_opts(secs, true),
            )
            .parameter("ml_window_to", ctx.committed.to.to_rfc3339_opts(secs, true));
        let run = self.client.run_job_now(&request).await?;
        Ok(BTreeMap::from([
            ("databricks_job_id".to_string(), self.job_id.to_string()),
            ("databricks_job_run_id".to_string(), run.run_id.to_string()),
        ]))
    }
}

impl DatabricksClient {
    /// Starts a job run (`POST /api/2.1/jobs/run-now`). Retried like an idempotent call,
    /// because the idempotency token makes a repeat return the same run.
    pub async fn run_job_now(&self, request: &RunNow) -> Result<JobRun> {
        let body = serde_json::to_value(request).map_err(|e| crate::Error::Decode {
            what: "run-now request".into(),
            message: e.to_string(),
            raw: None,
        })?;
        self.send_json(
            Method::POST,
            self.url(RUN_NOW_PATH),
            Some(&body),
            Idempotency::Idempotent,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stable_short_and_distinct() {
        let a = idempotency_token(7, "run-2026-11-27T18:00:00Z");
        assert_eq!(a, idempotency_token(7, "run-2026-11-27T18:00:00Z"));
        assert_ne!(a, idempotency_token(8, "run-2026-11-27T18:00:00Z"));
        assert_ne!(a, idempotency_token(7, "run-2026-11-27T18:00:01Z"));
        assert!(a.starts_with("mlc-run-2026-11-27T180000Z-"), "{a}");
        assert!(idempotency_token(1, &"x".repeat(500)).len() <= 64);
    }
}
