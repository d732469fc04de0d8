//! Status conditions as kstatus defines them: `Ready`, `Reconciling` and `Stalled`, each with the
//! `observedGeneration` it describes, so that `kubectl wait --for=condition=Ready`, Argo CD and
//! Flux read gongshu objects like any other.
//!
//! Everything here is pure: the controllers compute a whole status from the object and what
//! they fetched, and only then write it.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::v1alpha1::CommonStatus;

/// Condition type: the object is in its desired state (normal-true).
pub const READY: &str = "Ready";
/// Condition type: the controller is working towards the desired state (abnormal-true).
pub const RECONCILING: &str = "Reconciling";
/// Condition type: the controller cannot make progress without a change by the user
/// (abnormal-true).
pub const STALLED: &str = "Stalled";
/// Condition type on a `Regulation`: the work calendar has no holiday data for a year deadlines
/// are being counted in, so only weekends count as rest days there (abnormal-true).
pub const CALENDAR_INCOMPLETE: &str = "CalendarIncomplete";
/// Condition type on a `Regulation`: drill mode, working days last seconds instead of days
/// (abnormal-true: deadlines are not the law's).
pub const DRILL: &str = "Drill";

/// Condition status `True`.
pub const TRUE: &str = "True";
/// Condition status `False`.
pub const FALSE: &str = "False";

/// Reason: the spec is valid and was taken in.
pub const ACCEPTED: &str = "Accepted";
/// Reason: a `ShareGrant` was received and waits for the review workflow.
pub const SUBMITTED: &str = "Submitted";
/// Reason: a `Review`'s decision is recorded but not applied yet.
pub const PENDING: &str = "Pending";
/// Reason: a `Regulation` other than `default`, which the operator does not use.
pub const NOT_IN_USE: &str = "NotInUse";
/// Reason: a `Regulation` outside its `validFrom`…`validUntil` window.
pub const NOT_IN_FORCE: &str = "NotInForce";
/// Reason: a `ShareGrant` past its `validUntil` (SH-5).
pub const EXPIRED: &str = "Expired";
/// Reason: a `ShareGrant` refused with reasons (SH-4).
pub const DENIED: &str = "Denied";
/// Reason: a `ShareGrant` withdrawn by the provider or the authority.
pub const REVOKED: &str = "Revoked";
/// Reason: the spec breaks a rule; the message names the field.
pub const INVALID_SPEC: &str = "InvalidSpec";
/// Reason: the object's namespace is not a department (no `gongshu.io/department` label).
pub const NOT_A_DEPARTMENT: &str = "NotADepartment";
/// Reason (for `Reconciling=False`, `Stalled=False`): nothing is left to do or to fix.
pub const RECONCILED: &str = "Reconciled";
/// Reason (for `CalendarIncomplete`): a year without holiday data.
pub const YEAR_NOT_COVERED: &str = "YearNotCovered";
/// Reason (for `CalendarIncomplete=False`): every year in use has holiday data.
pub const YEARS_COVERED: &str = "YearsCovered";
/// Reason (for `Drill`): a working day lasts `workingDaySeconds`.
pub const DRILL_MODE: &str = "DrillMode";
/// Reason (for `Drill=False`): deadlines are counted on the real calendar.
pub const REAL_CALENDAR: &str = "RealCalendar";
/// Event reason: an object left the `Stalled` state.
pub const RECOVERED: &str = "Recovered";

/// The end of one reconcile, from which the three kstatus conditions follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The controller did what it can: `Ready` is `ready`, `Reconciling` and `Stalled` are
    /// `False`.
    Settled {
        /// Whether the object is in its desired state.
        ready: bool,
        /// CamelCase reason for `Ready`.
        reason: &'static str,
        /// Human-readable message for `Ready`.
        message: String,
    },
    /// The controller cannot go on until the user changes something: `Ready=False`,
    /// `Stalled=True`, both with this reason and message.
    Stalled {
        /// CamelCase reason.
        reason: &'static str,
        /// What to fix, naming the field.
        message: String,
    },
}

impl Outcome {
    /// Whether the object waits for the user's next edit.
    pub fn is_stalled(&self) -> bool {
        matches!(self, Outcome::Stalled { .. })
    }
}

/// A condition of `type_` with `status` `True` or `False`, stamped with `generation` and `now`.
pub fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if status { TRUE } else { FALSE }.to_owned(),
        reason: reason.to_owned(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: Time(now),
    }
}

/// Puts `new` into `conditions`, replacing the condition of the same type. The old
/// `lastTransitionTime` is kept when the status does not change, as kstatus and the API
/// conventions require; the other fields are taken from `new`.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status {
                new.last_transition_time = old.last_transition_time.clone();
            }
            *old = new;
        }
        None => conditions.push(new),
    }
}

/// The condition of `type_`, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of `type_` is present with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == TRUE)
}

/// Writes `outcome` into `common`: `observedGeneration` and the `Ready`, `Reconciling` and
/// `Stalled` conditions. Other conditions are left as they are.
pub fn apply_outcome(
    common: &mut CommonStatus,
    outcome: &Outcome,
    generation: Option<i64>,
    now: Timestamp,
) {
    common.observed_generation = generation;
    let conditions = &mut common.conditions;
    let reconciled = |type_| condition(type_, false, RECONCILED, "", generation, now);
    match outcome {
        Outcome::Settled {
            ready,
            reason,
            message,
        } => {
            set_condition(
                conditions,
                condition(READY, *ready, reason, message.as_str(), generation, now),
            );
            set_condition(conditions, reconciled(RECONCILING));
            set_condition(conditions, reconciled(STALLED));
        }
        Outcome::Stalled { reason, message } => {
            set_condition(
                conditions,
                condition(READY, false, reason, message.as_str(), generation, now),
            );
            set_condition(conditions, reconciled(RECONCILING));
            set_condition(
                conditions,
                condition(STALLED, true, reason, message.as_str(), generation, now),
            );
        }
    }
}

/// A change of the `Stalled` condition between two statuses, worth an Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StalledTransition {
    /// The object became stalled, or stalled for another reason or message.
    Entered {
        /// The `Stalled` condition's reason.
        reason: String,
        /// The `Stalled` condition's message.
        message: String,
    },
    /// The object was stalled and is not any more.
    Left,
}

/// How `Stalled` changed from `before` to `after`; `None` when it did not.
pub fn stalled_transition(before: &[Condition], after: &[Condition]) -> Option<StalledTransition> {
    let stalled = |conditions: &[Condition]| {
        find(conditions, STALLED)
            .filter(|c| c.status == TRUE)
            .map(|c| (c.reason.clone(), c.message.clone()))
    };
    match (stalled(before), stalled(after)) {
        (old, Some((reason, message)))
            if old.as_ref() != Some(&(reason.clone(), message.clone())) =>
        {
            Some(StalledTransition::Entered { reason, message })
        }
        (Some(_), None) => Some(StalledTransition::Left),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn set_condition_keeps_last_transition_time_when_status_is_unchanged() {
        let mut conditions = vec![condition(
            READY,
            true,
            ACCEPTED,
            "one",
            Some(1),
            at("2026-01-05T00:00:00Z"),
        )];
        set_condition(
            &mut conditions,
            condition(
                READY,
                true,
                ACCEPTED,
                "two",
                Some(2),
                at("2026-01-06T00:00:00Z"),
            ),
        );
        assert_eq!(conditions.len(), 1);
        assert_eq!(
            conditions[0].last_transition_time,
            Time(at("2026-01-05T00:00:00Z"))
        );
        assert_eq!(conditions[0].message, "two");
        assert_eq!(conditions[0].observed_generation, Some(2));
    }

    #[test]
    fn set_condition_moves_last_transition_time_when_status_flips() {
        let mut conditions = vec![condition(
            READY,
            true,
            ACCEPTED,
            "",
            Some(1),
            at("2026-01-05T00:00:00Z"),
        )];
        set_condition(
            &mut conditions,
            condition(
                READY,
                false,
                INVALID_SPEC,
                "bad",
                Some(2),
                at("2026-01-06T00:00:00Z"),
            ),
        );
        assert_eq!(
            conditions[0].last_transition_time,
            Time(at("2026-01-06T00:00:00Z"))
        );
        assert_eq!(conditions[0].status, FALSE);
    }

    #[test]
    fn set_condition_appends_a_new_type_and_leaves_others_alone() {
        let mut conditions = vec![condition(
            READY,
            true,
            ACCEPTED,
            "",
            None,
            at("2026-01-05T00:00:00Z"),
        )];
        set_condition(
            &mut conditions,
            condition(
                STALLED,
                false,
                RECONCILED,
                "",
                None,
                at("2026-01-06T00:00:00Z"),
            ),
        );
        let types: Vec<_> = conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, [READY, STALLED]);
    }

    #[test]
    fn stalled_outcome_sets_ready_false_and_stalled_true_with_the_same_message() {
        let mut common = CommonStatus::default();
        let outcome = Outcome::Stalled {
            reason: INVALID_SPEC,
            message: "spec.schedule: bad".into(),
        };
        apply_outcome(&mut common, &outcome, Some(3), at("2026-01-05T00:00:00Z"));
        assert_eq!(common.observed_generation, Some(3));
        let ready = find(&common.conditions, READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            (FALSE, INVALID_SPEC)
        );
        assert!(is_true(&common.conditions, STALLED));
        assert!(!is_true(&common.conditions, RECONCILING));
        assert!(
            common
                .conditions
                .iter()
                .all(|c| c.observed_generation == Some(3))
        );
        assert_eq!(
            find(&common.conditions, STALLED).unwrap().message,
            "spec.schedule: bad"
        );
    }

    #[test]
    fn settled_outcome_clears_stalled_and_reconciling() {
        let mut common = CommonStatus::default();
        let stalled = Outcome::Stalled {
            reason: INVALID_SPEC,
            message: "x".into(),
        };
        apply_outcome(&mut common, &stalled, Some(1), at("2026-01-05T00:00:00Z"));
        let settled = Outcome::Settled {
            ready: true,
            reason: ACCEPTED,
            message: "ok".into(),
        };
        apply_outcome(&mut common, &settled, Some(2), at("2026-01-06T00:00:00Z"));
        assert!(is_true(&common.conditions, READY));
        assert!(!is_true(&common.conditions, STALLED));
        assert_eq!(
            find(&common.conditions, STALLED)
                .unwrap()
                .last_transition_time,
            Time(at("2026-01-06T00:00:00Z"))
        );
        assert_eq!(
            find(&common.conditions, RECONCILING)
                .unwrap()
                .last_transition_time,
            Time(at("2026-01-05T00:00:00Z")),
            "Reconciling stayed False, so its transition time stays"
        );
    }

    #[test]
    fn reapplying_the_same_outcome_yields_an_identical_status() {
        let outcome = Outcome::Settled {
            ready: true,
            reason: ACCEPTED,
            message: "ok".into(),
        };
        let mut first = CommonStatus::default();
        apply_outcome(&mut first, &outcome, Some(1), at("2026-01-05T00:00:00Z"));
        let mut second = first.clone();
        apply_outcome(&mut second, &outcome, Some(1), at("2026-02-01T00:00:00Z"));
        assert_eq!(first, second, "an unchanged status must not cause a write");
    }

    #[test]
    fn entering_and_leaving_stalled_are_transitions_but_staying_is_not() {
        let now = at("2026-01-05T00:00:00Z");
        let ok = vec![condition(STALLED, false, RECONCILED, "", None, now)];
        let bad = vec![condition(STALLED, true, INVALID_SPEC, "a", None, now)];
        let worse = vec![condition(STALLED, true, INVALID_SPEC, "b", None, now)];
        assert_eq!(
            stalled_transition(&ok, &bad),
            Some(StalledTransition::Entered {
                reason: INVALID_SPEC.into(),
                message: "a".into()
            })
        );
        assert_eq!(
            stalled_transition(&[], &bad).map(|t| matches!(t, StalledTransition::Entered { .. })),
            Some(true)
        );
        assert_eq!(stalled_transition(&bad, &bad), None);
        assert!(matches!(
            stalled_transition(&bad, &worse),
            Some(StalledTransition::Entered { .. })
        ));
        assert_eq!(stalled_transition(&bad, &ok), Some(StalledTransition::Left));
        assert_eq!(stalled_transition(&ok, &ok), None);
        assert_eq!(stalled_transition(&[], &ok), None);
    }
}
