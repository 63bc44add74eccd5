//! Per-record outcomes of one write-back batch.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sync_core::{FailureKind, Receipt};

/// What happened to one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordAction {
    /// Created in PeopleSoft (POST), or would be in a dry run.
    Created,
    /// Updated in PeopleSoft (PUT), or would be in a dry run.
    Updated,
    /// Nothing to write: echo of the forward sync, equal to the baseline, or PeopleSoft
    /// already has these values.
    Unchanged,
    /// PeopleSoft changed the record since the last sync and the policy keeps PeopleSoft's
    /// version (`PeopleSoftWins`): skipped.
    Conflict,
    /// PeopleSoft changed the record since the last sync and the policy is
    /// `HoldForReview`: skipped, waiting for a person.
    Held,
    /// PeopleSoft refused the record (validation error, with its message), or the row
    /// cannot be turned into a payload. Re-running will fail the same way.
    Rejected,
    /// A transient failure (5xx, timeout, gateway page) persisted through every attempt; the
    /// batch's `write` returns a transient error so the engine retries it.
    Failed,
}

impl RecordAction {
    /// Every action, in report order.
    pub const ALL: [RecordAction; 7] = [
        RecordAction::Created,
        RecordAction::Updated,
        RecordAction::Unchanged,
        RecordAction::Conflict,
        RecordAction::Held,
        RecordAction::Rejected,
        RecordAction::Failed,
    ];

    /// The snake_case name (`created`, `updated`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            RecordAction::Created => "created",
            RecordAction::Updated => "updated",
            RecordAction::Unchanged => "unchanged",
            RecordAction::Conflict => "conflict",
            RecordAction::Held => "held",
            RecordAction::Rejected => "rejected",
            RecordAction::Failed => "failed",
        }
    }
}

impl std::fmt::Display for RecordAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One field that differs between PeopleSoft and the incoming row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    /// The CI field.
    pub field: String,
    /// The current PeopleSoft value as text (`None`: the record does not exist yet or the
    /// field is absent from the Get response).
    pub from: Option<String>,
    /// The value that is (or would be) sent, as text (`None`: null).
    pub to: Option<String>,
}

/// The outcome of one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordOutcome {
    /// CI key field → value.
    pub key: BTreeMap<String, String>,
    /// What happened.
    pub action: RecordAction,
    /// Why, in words.
    pub reason: String,
    /// The PeopleSoft message, for `rejected` records answered by PeopleSoft (and the last
    /// error for `failed` ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peoplesoft_message: Option<String>,
    /// Field differences (created, updated, conflict, held, and their dry-run forms).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FieldChange>,
    /// How many times the record was processed in this batch (1 unless retried).
    pub attempts: u32,
    /// PeopleSoft's version of the record when it was read: its last-update stamp (RFC 3339
    /// UTC when it parses), if the target has one and the Get returned it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peoplesoft_version: Option<String>,
    /// The row's version: its modification time (RFC 3339 UTC), if the target names the
    /// column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_version: Option<String>,
}

/// Why a batch stopped before every record was processed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchStop {
    /// How the engine must react (`stop_stream` for 401/403).
    pub kind: FailureKind,
    /// The error message (never contains a secret).
    pub message: String,
}

/// Everything that happened to one batch. Serialises to JSON (one object; or one line per
/// record with [`WriteReport::to_json_lines`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteReport {
    /// The run that produced the batch.
    pub run_id: String,
    /// The stream.
    pub stream: String,
    /// The CI written to.
    pub ci: String,
    /// True when nothing was written (dry run): `created`/`updated` mean "would be".
    pub dry_run: bool,
    /// One outcome per processed record, in batch order.
    pub records: Vec<RecordOutcome>,
    /// Set when the batch was cut short (401/403, token or store failure, blackout skip);
    /// the records after the stop are not in `records`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<BatchStop>,
}

impl WriteReport {
    /// Number of records per action (every action present, zero included).
    pub fn counts(&self) -> BTreeMap<RecordAction, u64> {
        let mut out: BTreeMap<RecordAction, u64> =
            RecordAction::ALL.iter().map(|a| (*a, 0)).collect();
        for r in &self.records {
            *out.entry(r.action).or_default() += 1;
        }
        out
    }

    /// Number of records with `action`.
    pub fn count(&self, action: RecordAction) -> u64 {
        self.records.iter().filter(|r| r.action == action).count() as u64
    }

    /// The first outcome whose key values are exactly `key` (compared as a set of values,
    /// so their order does not matter).
    pub fn record(&self, key: &[&str]) -> Option<&RecordOutcome> {
        let mut want: Vec<&str> = key.to_vec();
        want.sort_unstable();
        self.records.iter().find(|r| {
            let mut have: Vec<&str> = r.key.values().map(String::as_str).collect();
            have.sort_unstable();
            have == want
        })
    }

    /// The engine receipt: `rows_written` = created + updated + unchanged (accepted),
    /// `inserted` = created, `updated` = updated. In a dry run everything is zero.
    pub fn receipt(&self) -> Receipt {
        if self.dry_run {
            return Receipt {
                rows_written: 0,
                inserted: Some(0),
                updated: Some(0),
                ..Receipt::default()
            };
        }
        let c = self.counts();
        Receipt {
            statement_ids: Vec::new(),
            rows_written: c[&RecordAction::Created]
                + c[&RecordAction::Updated]
                + c[&RecordAction::Unchanged],
            inserted: Some(c[&RecordAction::Created]),
            updated: Some(c[&RecordAction::Updated]),
            ..Receipt::default()
        }
    }

    /// Audit annotations: `writeback.<action>` counts, `writeback.dry_run`, and
    /// `writeback.records` with the per-record list as JSON (records that were written or
    /// unchanged are summarised by count only when there are more than `detail_limit`
    /// records, so an annotation stays small).
    pub fn annotations(&self, detail_limit: usize) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (a, n) in self.counts() {
            out.insert(format!("writeback.{a}"), n.to_string());
        }
        out.insert("writeback.dry_run".into(), self.dry_run.to_string());
        let detail: Vec<&RecordOutcome> = if self.records.len() <= detail_limit {
            self.records.iter().collect()
        } else {
            self.records
                .iter()
                .filter(|r| {
                    !matches!(
                        r.action,
                        RecordAction::Created | RecordAction::Updated | RecordAction::Unchanged
                    )
                })
                .take(detail_limit)
                .collect()
        };
        if let Ok(json) = serde_json::to_string(&detail) {
            out.insert("writeback.records".into(), json);
        }
        if let Some(stop) = &self.stopped {
            out.insert("writeback.stopped".into(), stop.message.clone());
        }
        out
    }

    /// One JSON object per record per line (with run, stream and dry-run flag), for a
    /// JSON-lines file.
    pub fn to_json_lines(&self) -> String {
        let mut out = String::new();
        for r in &self.records {
            let line = serde_json::json!({
                "run_id": self.run_id,
                "stream": self.stream,
                "ci": self.ci,
                "dry_run": self.dry_run,
                "record": r,
            });
            out.push_str(&line.to_string());
            out.push('\n');
        }
        out
    }
}
