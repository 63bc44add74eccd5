//! Per-site configuration of one write-back target (one Component Interface).

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// What to do when PeopleSoft changed a record since the last sync saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    /// Overwrite the PeopleSoft change with the Databricks values (reported as `updated`,
    /// with the conflict named in the reason).
    DatabricksWins,
    /// Keep the PeopleSoft change: skip the record and report it as `conflict` (the default:
    /// the forward sync will bring the PeopleSoft values into Databricks).
    #[default]
    PeopleSoftWins,
    /// Write nothing and report the record as `held`, with the field differences, so a
    /// person can decide.
    HoldForReview,
}

/// How "PeopleSoft changed the record since the last sync" is detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeDetection {
    /// Compare a hash of the governed fields (the mapped, non-key fields) with the baseline.
    /// Changes to fields this target does not write are ignored. The default, because the
    /// vendor and customer records have no confirmed last-update stamp.
    #[default]
    GovernedHash,
    /// Compare the last-update stamp ([`CiTarget::stamp`]) with the baseline's; when either
    /// side has no stamp, fall back to the governed-field hash. Stricter: any PeopleSoft
    /// change, even to fields this target does not govern, counts.
    Stamp,
}

/// One row column ↔ one Component Interface field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldMap {
    /// Column of the incoming row (ASCII case-insensitive).
    pub column: String,
    /// Field name in the CI payload and in the Get response (exact, then case-insensitive).
    pub ci_field: String,
}

impl FieldMap {
    /// Maps `column` to `ci_field`.
    pub fn new(column: impl Into<String>, ci_field: impl Into<String>) -> Self {
        Self {
            column: column.into(),
            ci_field: ci_field.into(),
        }
    }
}

/// The last-update stamp used for [`ChangeDetection::Stamp`] and kept in baselines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StampField {
    /// The CI field in the Get (and, when present, write) response, e.g. `LASTUPDDTTM`.
    pub ci_field: String,
    /// The row column carrying the same stamp in forward-synced rows, used by
    /// [`PeopleSoftSink::seed_baselines`](super::PeopleSoftSink::seed_baselines).
    #[serde(default)]
    pub column: Option<String>,
}

/// Echo suppression: rows whose last change came from the forward sync are not written back.
///
/// A row is an echo when its `modified_by_column` holds one of `integration_oprids`
/// (compared trimmed and ASCII case-insensitively). Independently, a row whose governed
/// content hash equals the stored baseline (recorded by the forward sync or by an earlier
/// write-back) is always `unchanged` and costs no request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EchoRule {
    /// The row column naming who last changed the row (for example `last_modified_by`).
    #[serde(default)]
    pub modified_by_column: Option<String>,
    /// The integration's own identities (its OPRID, its Databricks service principal).
    #[serde(default)]
    pub integration_oprids: Vec<String>,
}

/// Where the CI fields sit in request and response JSON.
///
/// CIRT payload shapes are not documented by Oracle; read them from the target's WADL or
/// OpenAPI document and set these paths. Empty paths (the default) mean a flat object of
/// field names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadShape {
    /// Object keys wrapping the field object in Create/Update bodies, outermost first. For
    /// `["VNDR_ID"]` the body is `{"VNDR_ID": {"SETID": …, "VENDOR_ID": …, …}}`.
    #[serde(default)]
    pub request_envelope: Vec<String>,
    /// Path to the field object in Get responses (and write responses, for the stamp). An
    /// array on the way is entered at its first element.
    #[serde(default)]
    pub response_path: Vec<String>,
}

/// How an error that arrives as a JSON body (often with HTTP 200) is recognised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBodyRules {
    /// Top-level field holding a status (default `status`). A body with this field whose
    /// value is not one of `success_values` is an error.
    pub status_field: Option<String>,
    /// Status values meaning success (compared ASCII case-insensitively).
    pub success_values: Vec<String>,
    /// Fields searched (depth-first, up to 4 levels) for the PeopleSoft message.
    pub message_fields: Vec<String>,
}

impl Default for ErrorBodyRules {
    fn default() -> Self {
        Self {
            status_field: Some("status".into()),
            success_values: vec!["success".into(), "ok".into()],
            message_fields: vec![
                "message".into(),
                "errorMessage".into(),
                "error_message".into(),
                "DefaultMessage".into(),
                "detail".into(),
                "error".into(),
            ],
        }
    }
}

/// One write-back target: a Component Interface exposed as CIRT services, and how rows map
/// onto it.
///
/// Every name here is per site. [`CiTarget::cirt`] fills in the names PeopleTools generates
/// (`CIRT_<CI>_G_GET`, `_C_POST`, `_U_PUT`), which are **inferred** from Oracle's naming
/// conventions; check them (and the versions and URI templates) against the target's WADL.
///
/// URL templates are relative to the node's REST base URL
/// (`…/PSIGW/RESTListeningConnector/{NODE}/`) and may use `{CI_FIELD}` placeholders for any
/// key or mapped field, in the path or the query string, e.g.
/// `CIRT_VNDR_ID_G_GET.v1/{SETID}/{VENDOR_ID}` or `CIRT_VNDR_ID_G_GET.v1?SETID={SETID}`.
/// Values are percent-encoded, so a `/` in a key stays inside its segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CiTarget {
    /// The CI name, for messages (e.g. `VNDR_ID`).
    pub ci: String,
    /// URL template of the Get operation (GET).
    pub get: String,
    /// URL template of the Create operation (POST).
    pub create: String,
    /// URL template of the Update operation (PUT); `_UD_PUT` (UpdateData) works the same way.
    pub update: String,
    /// Key columns → CI key fields, in key order. Keys are always sent in write bodies.
    pub keys: Vec<FieldMap>,
    /// Governed columns → CI fields: what this target writes and compares.
    pub fields: Vec<FieldMap>,
    /// The last-update stamp, if the CI exposes one.
    #[serde(default)]
    pub stamp: Option<StampField>,
    /// How a PeopleSoft-side change is detected.
    #[serde(default)]
    pub change_detection: ChangeDetection,
    /// What to do on a conflict.
    #[serde(default)]
    pub conflict_policy: ConflictPolicy,
    /// The row column holding when the governed row was last changed (a timestamp, for
    /// example `modified_at`). With it, an update is never sent when PeopleSoft's current
    /// version is newer than the row's change: the record is a `conflict` (`held` under
    /// [`ConflictPolicy::HoldForReview`]) whatever the policy, because the row was based on an
    /// older version. PeopleSoft's version time is its last-update stamp from the Get
    /// ([`CiTarget::stamp`]), or else the time the baseline first saw the current content.
    #[serde(default)]
    pub modified_at_column: Option<String>,
    /// Echo suppression.
    #[serde(default)]
    pub echo: EchoRule,
    /// Request/response JSON layout.
    #[serde(default)]
    pub payload: PayloadShape,
    /// Recognising JSON error bodies.
    #[serde(default)]
    pub error_body: ErrorBodyRules,
    /// Substrings of a Get error message meaning "no such record" (besides HTTP 404).
    #[serde(default = "default_not_found")]
    pub not_found_messages: Vec<String>,
    /// IANA zone PeopleSoft datetimes are in: used to render timestamps
    /// (`YYYY-MM-DD-HH.MM.SS.ffffff`) and to read zone-less stamps. Default `UTC`.
    #[serde(default = "default_zone")]
    pub time_zone: String,
}

fn default_not_found() -> Vec<String> {
    vec![
        "No matching values".into(),
        "not found".into(),
        "does not exist".into(),
    ]
}

fn default_zone() -> String {
    "UTC".into()
}

impl CiTarget {
    /// A target with PeopleTools' generated CIRT names for `ci` at `version`:
    /// Get `CIRT_<CI>_G_GET.v<N>/{K1}/{K2}…`, Create `CIRT_<CI>_C_POST.v<N>`, Update
    /// `CIRT_<CI>_U_PUT.v<N>` (keys travel in the body). `keys` are `(column, ci_field)`.
    /// These names are inferred; override them with [`CiTarget::templates`].
    pub fn cirt(ci: &str, version: u32, keys: &[(&str, &str)]) -> Self {
        let key_path: String = keys.iter().map(|(_, f)| format!("/{{{f}}}")).collect();
        Self {
            ci: ci.to_string(),
            get: format!("CIRT_{ci}_G_GET.v{version}{key_path}"),
            create: format!("CIRT_{ci}_C_POST.v{version}"),
            update: format!("CIRT_{ci}_U_PUT.v{version}"),
            keys: keys.iter().map(|(c, f)| FieldMap::new(*c, *f)).collect(),
            fields: Vec::new(),
            stamp: None,
            change_detection: ChangeDetection::default(),
            conflict_policy: ConflictPolicy::default(),
            modified_at_column: None,
            echo: EchoRule::default(),
            payload: PayloadShape::default(),
            error_body: ErrorBodyRules::default(),
            not_found_messages: default_not_found(),
            time_zone: default_zone(),
        }
    }

    /// Replaces the three URL templates.
    pub fn templates(
        mut self,
        get: impl Into<String>,
        create: impl Into<String>,
        update: impl Into<String>,
    ) -> Self {
        self.get = get.into();
        self.create = create.into();
        self.update = update.into();
        self
    }

    /// Adds a governed field.
    pub fn field(mut self, column: impl Into<String>, ci_field: impl Into<String>) -> Self {
        self.fields.push(FieldMap::new(column, ci_field));
        self
    }

    /// Sets the conflict policy.
    pub fn conflict_policy(mut self, policy: ConflictPolicy) -> Self {
        self.conflict_policy = policy;
        self
    }

    /// Sets the last-update stamp field (and the forward-row column carrying it).
    pub fn stamp(mut self, ci_field: impl Into<String>, column: Option<&str>) -> Self {
        self.stamp = Some(StampField {
            ci_field: ci_field.into(),
            column: column.map(str::to_string),
        });
        self
    }

    /// Sets the row column holding when the governed row was last changed (see
    /// [`CiTarget::modified_at_column`]): enables the never-older-than-PeopleSoft check.
    pub fn modified_at(mut self, column: impl Into<String>) -> Self {
        self.modified_at_column = Some(column.into());
        self
    }

    /// Sets how PeopleSoft-side changes are detected.
    pub fn change_detection(mut self, d: ChangeDetection) -> Self {
        self.change_detection = d;
        self
    }

    /// Declares the integration's own identity in `modified_by_column` (echo suppression).
    pub fn echo_oprid(mut self, modified_by_column: &str, oprid: &str) -> Self {
        self.echo.modified_by_column = Some(modified_by_column.to_string());
        self.echo.integration_oprids.push(oprid.to_string());
        self
    }

    /// Sets the request/response JSON layout.
    pub fn payload(mut self, shape: PayloadShape) -> Self {
        self.payload = shape;
        self
    }

    /// Sets the PeopleSoft time zone (IANA name).
    pub fn time_zone(mut self, tz: impl Into<String>) -> Self {
        self.time_zone = tz.into();
        self
    }

    /// Checks names, templates and placeholders; errors name the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.keys.is_empty() {
            return Err(ConfigError::new(
                "writeback.keys",
                &self.ci,
                "at least one key field is required",
            ));
        }
        if self.fields.is_empty() {
            return Err(ConfigError::new(
                "writeback.fields",
                &self.ci,
                "at least one governed field is required",
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for f in self.keys.iter().chain(&self.fields) {
            if f.column.is_empty() || f.ci_field.is_empty() {
                return Err(ConfigError::new(
                    "writeback.fields",
                    format!("{} -> {}", f.column, f.ci_field),
                    "column and CI field names must not be empty",
                ));
            }
            if !seen.insert(f.ci_field.as_str()) {
                return Err(ConfigError::new(
                    "writeback.fields",
                    &f.ci_field,
                    "CI field is mapped twice",
                ));
            }
        }
        for (name, t) in [
            ("writeback.get", &self.get),
            ("writeback.create", &self.create),
            ("writeback.update", &self.update),
        ] {
            for p in placeholders(t).map_err(|r| ConfigError::new(name, t, r))? {
                if !seen.contains(p) {
                    return Err(ConfigError::new(
                        name,
                        t,
                        format!("placeholder `{{{p}}}` is not a key or mapped CI field"),
                    ));
                }
            }
            if t.is_empty() || t.starts_with('/') || t.contains("://") || t.contains("..") {
                return Err(ConfigError::new(
                    name,
                    t,
                    "must be a non-empty path relative to the node's REST base URL",
                ));
            }
        }
        if self.time_zone.parse::<chrono_tz::Tz>().is_err() {
            return Err(ConfigError::new(
                "writeback.time_zone",
                &self.time_zone,
                "not an IANA time zone name",
            ));
        }
        Ok(())
    }
}

/// The `{NAME}` placeholders of a template, or why it is malformed.
pub(crate) fn placeholders(template: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return Err("unbalanced `}`".into());
        }
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or("unclosed `{`")?;
        let name = &after[..close];
        if name.is_empty() || name.contains('{') {
            return Err("empty or nested placeholder".into());
        }
        out.push(name);
        rest = &after[close + 1..];
    }
    Ok(out)
}
