//! `ShareGrant`: a request states its scenario, purpose and signed commitment (SH-2), asks for
//! named fields only (SH-5) for named ServiceAccounts, and ends at `validUntil` (SH-5).
//!
//! The review workflow (SH-4) is not implemented yet: a valid grant is `Submitted` and says so.

use jiff::{Timestamp, tz::TimeZone};

use super::{
    Problem, require_text, require_unique, summarize,
    syntax::{is_dns_label, parse_date},
};
use crate::{
    calendar::DEFAULT_TIME_ZONE,
    status::{self, Outcome},
    v1alpha1::{GrantPhase, ShareGrantSpec, ShareGrantStatus},
};

/// Every problem of a grant's spec at `now`. An expired grant is not a problem: see
/// [`is_expired`].
pub fn validate(spec: &ShareGrantSpec, now: Timestamp) -> Vec<Problem> {
    let mut problems = Vec::new();
    require_text(&mut problems, Some("SH-2"), "spec.scenario", &spec.scenario);
    require_text(&mut problems, Some("SH-2"), "spec.purpose", &spec.purpose);
    let commitment = &spec.commitment;
    require_text(
        &mut problems,
        Some("SH-2"),
        "spec.commitment.signedBy",
        &commitment.signed_by,
    );
    require_text(
        &mut problems,
        Some("SH-2"),
        "spec.commitment.document",
        &commitment.document,
    );
    match parse_date(&commitment.signed_on) {
        Err(message) => problems.push(Problem::rule("SH-2", "spec.commitment.signedOn", message)),
        Ok(signed_on) => {
            // The regulations are Chinese; a commitment dated after today there is not signed.
            let tz = TimeZone::get(DEFAULT_TIME_ZONE).unwrap_or(TimeZone::UTC);
            let today = now.to_zoned(tz).date();
            if signed_on > today {
                problems.push(Problem::rule(
                    "SH-2",
                    "spec.commitment.signedOn",
                    format!("{signed_on} is in the future; give the date it was signed"),
                ));
            }
        }
    }
    if spec.fields.is_empty() {
        problems.push(Problem::rule(
            "SH-5",
            "spec.fields",
            "name the fields the scenario needs",
        ));
    }
    for (i, field) in spec.fields.iter().enumerate() {
        require_text(
            &mut problems,
            Some("SH-5"),
            format!("spec.fields[{i}]"),
            field,
        );
    }
    require_unique(
        &mut problems,
        "spec.fields",
        spec.fields.iter().map(String::as_str),
    );
    if spec.service_accounts.is_empty() {
        problems.push(Problem::rule(
            "SH-5",
            "spec.serviceAccounts",
            "name the ServiceAccounts that may use the grant",
        ));
    }
    for (i, account) in spec.service_accounts.iter().enumerate() {
        if !is_dns_label(&account.0) {
            problems.push(Problem::new(
                format!("spec.serviceAccounts[{i}]"),
                format!("{:?} is not a ServiceAccount name", account.0),
            ));
        }
    }
    require_unique(
        &mut problems,
        "spec.serviceAccounts",
        spec.service_accounts.iter().map(|a| a.0.as_str()),
    );
    problems
}

/// Whether the grant's licence has ended (SH-5: the end date the provider fixes).
pub fn is_expired(spec: &ShareGrantSpec, now: Timestamp) -> bool {
    spec.valid_until.0 <= now
}

/// Whether `phase` ends the workflow for good: only a new grant can follow it.
fn is_final(phase: GrantPhase) -> bool {
    matches!(
        phase,
        GrantPhase::Denied | GrantPhase::Expired | GrantPhase::Revoked
    )
}

/// The status of a grant after a reconcile that found `problems` at `now`.
pub fn status(
    spec: &ShareGrantSpec,
    previous: Option<&ShareGrantStatus>,
    generation: Option<i64>,
    problems: &[Problem],
    now: Timestamp,
) -> ShareGrantStatus {
    let mut next = previous.cloned().unwrap_or_default();
    let previous_phase = previous.and_then(|p| p.phase);
    let outcome = if let Some(phase) = previous_phase.filter(|p| is_final(*p)) {
        let message = match phase {
            GrantPhase::Expired if is_expired(spec, now) => expired_message(spec),
            GrantPhase::Expired => "expired; moving validUntil does not revive a grant: request \
                                    the data again with a new ShareGrant"
                .into(),
            _ => format!("{phase:?} is final; request the data again with a new ShareGrant"),
        };
        Outcome::Settled {
            ready: false,
            reason: final_reason(phase),
            message,
        }
    } else if is_expired(spec, now) {
        next.phase = Some(GrantPhase::Expired);
        next.waiting_on = None;
        next.due = None;
        Outcome::Settled {
            ready: false,
            reason: status::EXPIRED,
            message: expired_message(spec),
        }
    } else if !problems.is_empty() {
        Outcome::Stalled {
            reason: status::INVALID_SPEC,
            message: summarize(problems),
        }
    } else {
        next.phase = Some(GrantPhase::Submitted);
        Outcome::Settled {
            ready: false,
            reason: status::SUBMITTED,
            message: "submitted; awaiting the review workflow, which is not implemented yet (SH-4)"
                .into(),
        }
    };
    status::apply_outcome(&mut next.common, &outcome, generation, now);
    next
}

fn expired_message(spec: &ShareGrantSpec) -> String {
    format!(
        "expired at {} (validUntil, SH-5); request the data again with a new ShareGrant",
        spec.valid_until.0
    )
}

fn final_reason(phase: GrantPhase) -> &'static str {
    match phase {
        GrantPhase::Expired => status::EXPIRED,
        GrantPhase::Denied => status::DENIED,
        _ => status::REVOKED,
    }
}

#[cfg(test)]
mod tests;
