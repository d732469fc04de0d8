//! What a grant's status says about where it stands: phase, who it waits on and until when,
//! the kstatus conditions, the events since the previous status, and when to look again.

use jiff::Timestamp;

use super::{GrantFacts, OPERATOR, is_final, licence_end, request, request::State};
use crate::{
    presets::Step,
    rules::{Problem, summarize},
    status::{self, Outcome, condition, set_condition},
    v1alpha1::{GrantPhase, GrantTerms, ShareGrantStatus, ShareMode},
    workflow::{
        ACTION_DEADLINE, ESCALATED, EVENT_DEADLINE_BREACHED, EVENT_ESCALATED, Event, NOT_NEEDED,
        PROVIDER_OVERDUE, WAITING_ON_ESCALATED, deadline, ignored_review_events,
    },
};

/// Reason: the grant is served with its approved terms.
pub const ACTIVE: &str = "Active";
/// Reason: the approved terms are served while a widening edit waits for review.
pub const CHANGE_PENDING: &str = "ChangePending";
/// Reason: a widening edit was refused; the approved terms stay in force.
pub const CHANGE_DENIED: &str = "ChangeDenied";
/// Reason: waiting for the provider's decision (SH-4).
pub const AWAITING_PROVIDER: &str = "AwaitingProvider";
/// Reason: the provider returned the request for changes.
pub const CHANGES_REQUESTED: &str = "ChangesRequested";
/// Reason: the authority suspended the grant (SH-14).
pub const SUSPENDED: &str = "Suspended";

/// Sets phase, `waitingOn`, `due` and the conditions from the workflow's state.
pub(super) fn settle(status: &mut ShareGrantStatus, facts: &GrantFacts<'_>, problems: &[Problem]) {
    let generation = Some(facts.generation);
    let now = facts.now;
    let (phase, mut waiting_on, due, outcome) = standing(status);
    if phase == GrantPhase::Submitted && !problems.is_empty() {
        waiting_on = Some("consumer".to_owned());
    }
    status.phase = Some(phase);
    status.waiting_on = waiting_on;
    status.due = due.map(super::time);
    let outcome = if problems.is_empty() {
        outcome
    } else {
        Outcome::Stalled {
            reason: status::INVALID_SPEC,
            message: summarize(problems),
        }
    };
    status::apply_outcome(&mut status.common, &outcome, generation, now);
    let conditions = &mut status.common.conditions;
    set_condition(
        conditions,
        deadline::breach_condition(&[&status.deadlines], generation, now),
    );
    let escalated = status.waiting_on.as_deref() == Some(WAITING_ON_ESCALATED);
    set_condition(
        conditions,
        if escalated {
            condition(
                ESCALATED,
                true,
                PROVIDER_OVERDUE,
                "the provider's reply is overdue: the authority coordinates and may decide with its own Review (SUP-2)",
                generation,
                now,
            )
        } else {
            condition(ESCALATED, false, NOT_NEEDED, "", generation, now)
        },
    );
}

type Standing = (GrantPhase, Option<String>, Option<Timestamp>, Outcome);

fn settled(ready: bool, reason: &'static str, message: String) -> Outcome {
    Outcome::Settled {
        ready,
        reason,
        message,
    }
}

/// Phase, who acts next, until when, and the `Ready` outcome.
fn standing(status: &ShareGrantStatus) -> Standing {
    if let Some(phase) = status.phase.filter(|&p| is_final(p)) {
        return (phase, None, None, ended(status, phase));
    }
    if let Some(suspension) = &status.suspension {
        let message = format!(
            "suspended by {}: {} (SH-14); the authority resumes it with a Review deciding resume",
            suspension.by,
            suspension.reason.as_deref().unwrap_or_default()
        );
        return (
            GrantPhase::Suspended,
            Some("consumer".to_owned()),
            None,
            settled(false, SUSPENDED, message),
        );
    }
    let provider = status.provider.as_ref().map_or_else(
        || "provider".to_owned(),
        |p| format!("provider/{}", p.department),
    );
    let serving = status.approved.as_ref().map(|a| {
        format!(
            "serving generation {}'s approved terms ({})",
            a.generation,
            describe(&a.terms)
        )
    });
    let generation = status.request.as_ref().map_or(0, |r| r.generation);
    match request::state(status) {
        State::None | State::Unchecked => (
            GrantPhase::Submitted,
            Some(OPERATOR.to_owned()),
            None,
            settled(
                false,
                status::SUBMITTED,
                "submitted; the checks have not run".to_owned(),
            ),
        ),
        State::Approved => {
            let by = status.approved.as_ref().map_or("", |a| a.by.as_str());
            let message = format!("approved by {by}; {}", serving.unwrap_or_default());
            (
                GrantPhase::Active,
                None,
                None,
                settled(true, ACTIVE, message),
            )
        }
        State::Denied => {
            let reason = decision_reason(status);
            let message = format!(
                "the change in generation {generation} was denied: {reason}; {}: restore those terms, or request the data with a new ShareGrant",
                serving.unwrap_or_default()
            );
            (
                GrantPhase::Active,
                Some("consumer".to_owned()),
                None,
                settled(true, CHANGE_DENIED, message),
            )
        }
        State::Returned => {
            let reason = decision_reason(status);
            let message = format!(
                "generation {generation} returned for changes: {reason}; edit the grant to request again{}",
                serving.map(|s| format!("; {s}")).unwrap_or_default()
            );
            let ready = status.approved.is_some();
            (
                GrantPhase::ProviderReview,
                Some("consumer".to_owned()),
                None,
                settled(ready, CHANGES_REQUESTED, message),
            )
        }
        State::InReview => {
            let reply = deadline::entry(&status.deadlines, Step::ProviderReply, generation);
            let due = reply.and_then(|d| d.due.as_ref().map(|t| t.0));
            let overdue = reply.is_some_and(|d| d.breached && d.completed.is_none());
            let waiting_on = if overdue {
                WAITING_ON_ESCALATED.to_owned()
            } else {
                provider
            };
            let until = due.map(|d| format!(" (due {d})")).unwrap_or_default();
            let (ready, reason, message) = match serving {
                Some(serving) => (
                    true,
                    CHANGE_PENDING,
                    format!("{serving}; generation {generation} waits for {waiting_on}{until}"),
                ),
                None => (
                    false,
                    if overdue {
                        PROVIDER_OVERDUE
                    } else {
                        AWAITING_PROVIDER
                    },
                    format!("generation {generation} waits for {waiting_on}{until} (SH-4)"),
                ),
            };
            (
                GrantPhase::ProviderReview,
                Some(waiting_on),
                due,
                settled(ready, reason, message),
            )
        }
    }
}

fn ended(status: &ShareGrantStatus, phase: GrantPhase) -> Outcome {
    let decision = status.decision.as_ref();
    let reason_of = || decision.and_then(|d| d.reason.clone()).unwrap_or_default();
    let by = decision.map_or("", |d| d.by.as_str());
    let (reason, message) = match phase {
        GrantPhase::Denied => (status::DENIED, format!("denied by {by}: {}", reason_of())),
        GrantPhase::Revoked => (status::REVOKED, format!("revoked by {by}: {}", reason_of())),
        _ => (
            status::EXPIRED,
            "expired at the end of its licence (validUntil, SH-5)".to_owned(),
        ),
    };
    settled(
        false,
        reason,
        format!("{message}; request the data again with a new ShareGrant"),
    )
}

fn describe(terms: &GrantTerms) -> String {
    let mode = match terms.mode {
        ShareMode::Api => "api",
        ShareMode::File => "file",
        ShareMode::Table => "table",
        ShareMode::Verify => "verify",
    };
    format!(
        "fields {} in {mode} mode until {}",
        terms.fields.join(", "),
        terms.valid_until.0
    )
}

fn phase_reason(phase: GrantPhase) -> &'static str {
    match phase {
        GrantPhase::Submitted => "Submitted",
        GrantPhase::ComplianceReview => "ComplianceReview",
        GrantPhase::ProviderReview => "ProviderReview",
        GrantPhase::Approved => "Approved",
        GrantPhase::Active => "Active",
        GrantPhase::Denied => "Denied",
        GrantPhase::Expired => "Expired",
        GrantPhase::Revoked => "Revoked",
        GrantPhase::Suspended => "Suspended",
    }
}

fn ready_message(status: &ShareGrantStatus) -> String {
    status::find(&status.common.conditions, status::READY)
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// The events for what changed from `before` to `after`.
pub(super) fn events(before: &ShareGrantStatus, after: &ShareGrantStatus) -> Vec<Event> {
    let mut events = Vec::new();
    if let Some(phase) = after.phase.filter(|&p| before.phase != Some(p)) {
        let note = ready_message(after);
        let reason = phase_reason(phase);
        let warning = matches!(
            phase,
            GrantPhase::Denied | GrantPhase::Revoked | GrantPhase::Suspended
        );
        events.push(if warning {
            Event::warning(reason, "Transition", note)
        } else {
            Event::normal(reason, "Transition", note)
        });
    } else if after.decision != before.decision || after.approved != before.approved {
        // A decision or narrowing that leaves the phase as it was.
        events.push(Event::normal("Decided", "Review", ready_message(after)));
    }
    for d in deadline::new_breaches(&before.deadlines, &after.deadlines) {
        events.push(Event::warning(
            EVENT_DEADLINE_BREACHED,
            ACTION_DEADLINE,
            format!("{} (SUP-2)", deadline::describe_breach(d)),
        ));
    }
    let escalated = |s: &ShareGrantStatus| s.waiting_on.as_deref() == Some(WAITING_ON_ESCALATED);
    if escalated(after) && !escalated(before) {
        events.push(Event::warning(
            EVENT_ESCALATED,
            "Escalate",
            "the provider's reply is overdue: escalated to the authority, which may decide with its own Review (SUP-2)",
        ));
    }
    events.extend(ignored_review_events(
        &before.ignored_reviews,
        &after.ignored_reviews,
    ));
    events
}

/// The earliest future instant the grant changes by itself: a pending step's due time (for
/// its breach) or the end of its licence. `None` once it is final.
pub(super) fn next_wakeup(status: &ShareGrantStatus, facts: &GrantFacts<'_>) -> Option<Timestamp> {
    if status.phase.is_some_and(is_final) {
        return None;
    }
    let due = deadline::next_due(&status.deadlines, facts.now);
    let end = Some(licence_end(status, facts)).filter(|&end| end > facts.now);
    [due, end].into_iter().flatten().min()
}

/// The reasons of the decision recorded in `status`, or nothing.
fn decision_reason(status: &ShareGrantStatus) -> String {
    status
        .decision
        .as_ref()
        .and_then(|d| d.reason.clone())
        .unwrap_or_default()
}
