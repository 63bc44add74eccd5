//! The conflict decision of the write-back, without I/O.
//!
//! [`decide`] is called with what is known about one record: the governed values' hash, the
//! baseline recorded at the last sync, PeopleSoft's current record (once read) and the target's
//! policies. It answers what to do; [`PeopleSoftSink`](super::PeopleSoftSink) does the reading
//! and writing around it. Called before the read ([`Current::NotRead`]) it either settles the
//! record from the baseline alone or asks for the read ([`Decision::Read`]).

use chrono::{DateTime, Utc};

use super::baseline::{Baseline, BaselineOrigin};
use super::config::{ChangeDetection, ConflictPolicy};
use super::payload::GovernedHash;
use super::report::FieldChange;

/// PeopleSoft's current record, as far as it is known.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Current {
    /// Not read yet.
    NotRead,
    /// Read: the record does not exist. `changes` are the fields a create would send.
    Missing {
        /// Key and governed fields of the create, from nothing.
        changes: Vec<FieldChange>,
    },
    /// Read: the record exists.
    Found {
        /// Hash of its governed fields (the same hash as the baseline's).
        hash: GovernedHash,
        /// Its last-update stamp, normalised like the baseline's, if the target has one.
        stamp: Option<String>,
        /// The governed fields whose PeopleSoft value differs from the desired one.
        changes: Vec<FieldChange>,
    },
}

/// Everything the decision depends on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Facts<'a> {
    /// Hash of the governed fields as the row wants them.
    pub(crate) desired_hash: &'a GovernedHash,
    /// The baseline recorded at the last sync of this key, if any.
    pub(crate) baseline: Option<&'a Baseline>,
    /// PeopleSoft's current record.
    pub(crate) current: Current,
    /// How a PeopleSoft change since the baseline is detected.
    pub(crate) detection: ChangeDetection,
    /// The CI field of the last-update stamp (named in reasons), if the target has one.
    pub(crate) stamp_field: Option<&'a str>,
    /// What to do when PeopleSoft changed since the baseline.
    pub(crate) policy: ConflictPolicy,
}

/// What to do with one record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decision {
    /// The baseline does not settle it: read PeopleSoft's current record, then decide again.
    Read,
    /// The row equals the baseline: nothing to read or write.
    SameAsBaseline {
        /// Who recorded the baseline.
        origin: BaselineOrigin,
        /// When.
        recorded_at: DateTime<Utc>,
    },
    /// PeopleSoft already has these values: nothing to write; record what was observed.
    AlreadyInPeopleSoft {
        /// The stamp read, for the observed baseline.
        stamp: Option<String>,
    },
    /// Create (the record is missing) or update it.
    Write {
        /// True: create; false: update.
        create: bool,
        /// The fields sent.
        changes: Vec<FieldChange>,
        /// PeopleSoft changed since the last sync and the policy overwrites it: why.
        overwrites: Option<String>,
    },
    /// PeopleSoft changed since the last sync and wins: skip the record.
    Conflict {
        /// What changed.
        why: String,
        /// The differences not written.
        changes: Vec<FieldChange>,
    },
    /// PeopleSoft changed since the last sync: hold the record for review.
    Held {
        /// What changed.
        why: String,
        /// The differences not written.
        changes: Vec<FieldChange>,
    },
}

/// Decides what to do with one record; see the [module docs](self).
pub(crate) fn decide(facts: Facts<'_>) -> Decision {
    let Facts {
        desired_hash,
        baseline,
        current,
        detection,
        stamp_field,
        policy,
    } = facts;
    let (create, changes, changed_in_peoplesoft) = match current {
        Current::NotRead => {
            return match baseline.filter(|b| desired_hash.matches(&b.hash)) {
                Some(b) => Decision::SameAsBaseline {
                    origin: b.origin,
                    recorded_at: b.recorded_at,
                },
                None => Decision::Read,
            };
        }
        Current::Missing { changes } => {
            let why = baseline.map(|_| {
                "the record is no longer in PeopleSoft (deleted or re-keyed there since the last sync)".to_string()
            });
            (true, changes, why)
        }
        Current::Found {
            hash,
            stamp,
            changes,
        } => {
            if changes.is_empty() {
                return Decision::AlreadyInPeopleSoft { stamp };
            }
            let why = match baseline {
                None => Some(
                    "no baseline for this key, so a PeopleSoft change since the last sync cannot be ruled out (seed baselines from the forward sync)"
                        .to_string(),
                ),
                Some(b) => changed_since(b, &hash, stamp.as_deref(), detection, stamp_field),
            };
            (false, changes, why)
        }
    };
    match (changed_in_peoplesoft, policy) {
        (None, _) => Decision::Write {
            create,
            changes,
            overwrites: None,
        },
        (Some(why), ConflictPolicy::DatabricksWins) => Decision::Write {
            create,
            changes,
            overwrites: Some(why),
        },
        (Some(why), ConflictPolicy::PeopleSoftWins) => Decision::Conflict { why, changes },
        (Some(why), ConflictPolicy::HoldForReview) => Decision::Held { why, changes },
    }
}

/// Why PeopleSoft's record counts as changed since the baseline `b`, if it does: by stamp when
/// the target detects by stamp and both sides have one, otherwise by the governed-field hash.
fn changed_since(
    b: &Baseline,
    current_hash: &GovernedHash,
    current_stamp: Option<&str>,
    detection: ChangeDetection,
    stamp_field: Option<&str>,
) -> Option<String> {
    if let (ChangeDetection::Stamp, Some(old), Some(new)) =
        (detection, b.stamp.as_deref(), current_stamp)
    {
        return (old != new).then(|| {
            format!(
                "{} changed from {old} to {new}",
                stamp_field.unwrap_or("stamp")
            )
        });
    }
    (!current_hash.matches(&b.hash)).then(|| {
        format!(
            "governed fields differ from what {} saw at {}",
            b.origin,
            b.recorded_at.to_rfc3339()
        )
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use sync_core::Value;

    use super::*;
    use crate::writeback::payload::governed_hash;

    /// The governed hash of one field holding `s`.
    fn h(s: &str) -> GovernedHash {
        let v = Value::String(s.into());
        governed_hash([("NAME1", &v)].into_iter())
    }

    fn change() -> Vec<FieldChange> {
        vec![FieldChange {
            field: "NAME1".into(),
            from: Some("Old".into()),
            to: Some("New".into()),
        }]
    }

    fn baseline(hash: &str, stamp: Option<&str>) -> Baseline {
        Baseline {
            hash: h(hash).value,
            stamp: stamp.map(Into::into),
            origin: BaselineOrigin::Forward,
            recorded_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        }
    }

    fn found(hash: &str, stamp: Option<&str>, changes: Vec<FieldChange>) -> Current {
        Current::Found {
            hash: h(hash),
            stamp: stamp.map(Into::into),
            changes,
        }
    }

    fn missing() -> Current {
        Current::Missing { changes: change() }
    }

    /// A compact description of a decision, for the table below.
    fn shape(d: &Decision) -> String {
        match d {
            Decision::Read => "read".into(),
            Decision::SameAsBaseline { .. } => "same-as-baseline".into(),
            Decision::AlreadyInPeopleSoft { stamp } => format!("already:{stamp:?}"),
            Decision::Write {
                create, overwrites, ..
            } => format!(
                "{}{}",
                if *create { "create" } else { "update" },
                if overwrites.is_some() {
                    "+overwrite"
                } else {
                    ""
                }
            ),
            Decision::Conflict { .. } => "conflict".into(),
            Decision::Held { .. } => "held".into(),
        }
    }

    /// What, baseline, PeopleSoft's record, detection, policy → the decision's shape.
    type Case<'a> = (
        &'a str,
        Option<&'a Baseline>,
        Current,
        ChangeDetection,
        ConflictPolicy,
        &'a str,
    );

    #[test]
    fn every_branch_of_the_decision() {
        use ChangeDetection::{GovernedHash as Hash, Stamp};
        use ConflictPolicy::{DatabricksWins as Dbx, HoldForReview as Hold, PeopleSoftWins as Ps};
        let b_same = baseline("want", None);
        let b_ps = baseline("ps", None);
        let b_old = baseline("old", Some("t1"));
        #[rustfmt::skip]
        let table: Vec<Case<'_>> = vec![
            // Before the read: the baseline settles it, or the record must be read.
            ("baseline equals the row", Some(&b_same), Current::NotRead, Hash, Ps, "same-as-baseline"),
            ("baseline differs", Some(&b_ps), Current::NotRead, Hash, Ps, "read"),
            ("no baseline", None, Current::NotRead, Hash, Ps, "read"),
            // Missing in PeopleSoft.
            ("new record", None, missing(), Hash, Ps, "create"),
            ("deleted in PeopleSoft, PeopleSoft wins", Some(&b_ps), missing(), Hash, Ps, "conflict"),
            ("deleted in PeopleSoft, held", Some(&b_ps), missing(), Hash, Hold, "held"),
            ("deleted in PeopleSoft, Databricks wins", Some(&b_ps), missing(), Hash, Dbx, "create+overwrite"),
            // Found, nothing to change.
            ("already equal", None, found("want", Some("t2"), vec![]), Hash, Ps, "already:Some(\"t2\")"),
            // Found, by governed hash.
            ("unchanged since baseline", Some(&b_ps), found("ps", None, change()), Hash, Ps, "update"),
            ("changed since baseline, PeopleSoft wins", Some(&b_old), found("ps", None, change()), Hash, Ps, "conflict"),
            ("changed since baseline, held", Some(&b_old), found("ps", None, change()), Hash, Hold, "held"),
            ("changed since baseline, Databricks wins", Some(&b_old), found("ps", None, change()), Hash, Dbx, "update+overwrite"),
            ("no baseline, PeopleSoft wins", None, found("ps", None, change()), Hash, Ps, "conflict"),
            ("no baseline, Databricks wins", None, found("ps", None, change()), Hash, Dbx, "update+overwrite"),
            // Found, by stamp.
            ("same stamp, hash differs", Some(&b_old), found("ps", Some("t1"), change()), Stamp, Ps, "update"),
            ("new stamp", Some(&b_old), found("old", Some("t2"), change()), Stamp, Ps, "conflict"),
            ("no stamp read: falls back to the hash (same)", Some(&b_old), found("old", None, change()), Stamp, Ps, "update"),
            ("no stamp read: falls back to the hash (differs)", Some(&b_old), found("ps", None, change()), Stamp, Ps, "conflict"),
            ("baseline without stamp: hash", Some(&b_ps), found("ps", Some("t9"), change()), Stamp, Ps, "update"),
        ];
        for (what, baseline, current, detection, policy, want) in table {
            let d = decide(Facts {
                desired_hash: &h("want"),
                baseline,
                current,
                detection,
                stamp_field: Some("LASTUPDDTTM"),
                policy,
            });
            assert_eq!(shape(&d), want, "{what}: {d:?}");
        }
    }

    #[test]
    fn reasons_name_what_changed() {
        let b = baseline("old", Some("t1"));
        let d = decide(Facts {
            desired_hash: &h("want"),
            baseline: Some(&b),
            current: found("old", Some("t2"), change()),
            detection: ChangeDetection::Stamp,
            stamp_field: Some("LASTUPDDTTM"),
            policy: ConflictPolicy::HoldForReview,
        });
        assert_eq!(
            d,
            Decision::Held {
                why: "LASTUPDDTTM changed from t1 to t2".into(),
                changes: change()
            }
        );
        let d = decide(Facts {
            desired_hash: &h("want"),
            baseline: Some(&b),
            current: missing(),
            detection: ChangeDetection::GovernedHash,
            stamp_field: None,
            policy: ConflictPolicy::PeopleSoftWins,
        });
        let Decision::Conflict { why, .. } = d else {
            panic!("{d:?}")
        };
        assert!(why.contains("no longer in PeopleSoft"), "{why}");
        let d = decide(Facts {
            desired_hash: &h("want"),
            baseline: None,
            current: found("ps", None, change()),
            detection: ChangeDetection::GovernedHash,
            stamp_field: None,
            policy: ConflictPolicy::PeopleSoftWins,
        });
        let Decision::Conflict { why, .. } = d else {
            panic!("{d:?}")
        };
        assert!(why.contains("no baseline"), "{why}");
        let b = baseline("old", None);
        let d = decide(Facts {
            desired_hash: &h("want"),
            baseline: Some(&b),
            current: found("ps", None, change()),
            detection: ChangeDetection::GovernedHash,
            stamp_field: None,
            policy: ConflictPolicy::DatabricksWins,
        });
        let Decision::Write { overwrites, .. } = d else {
            panic!("{d:?}")
        };
        assert!(overwrites
            .unwrap()
            .starts_with("governed fields differ from what the forward sync saw at 2026-01-01"),);
    }

    #[test]
    fn baselines_recorded_before_0_2_still_match() {
        let mut b = baseline("want", None);
        // What 0.1 recorded for NAME1 = "want" (two FNV-1a lanes over `S5:NAME1;S4:want;`).
        b.hash = "58518e12204a9934823604c0fbfa7932".into();
        let want = h("want");
        let facts = |current| Facts {
            desired_hash: &want,
            baseline: Some(&b),
            current,
            detection: ChangeDetection::GovernedHash,
            stamp_field: None,
            policy: ConflictPolicy::PeopleSoftWins,
        };
        assert!(matches!(
            decide(facts(Current::NotRead)),
            Decision::SameAsBaseline { .. }
        ));
        // PeopleSoft still holds what the old baseline saw: no conflict.
        assert!(matches!(
            decide(facts(found("want", None, change()))),
            Decision::Write {
                overwrites: None,
                ..
            }
        ));
        assert!(matches!(
            decide(facts(found("other", None, change()))),
            Decision::Conflict { .. }
        ));
    }
}
