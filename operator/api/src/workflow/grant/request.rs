//! The request a grant's workflow decides: its terms, and what an edit does to it. Narrowing
//! the approved terms applies at once (SH-5: least privilege can only get stricter); any other
//! change of terms is a new request with its own clock.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

use super::{Ending, GrantFacts, time};
use crate::{
    v1alpha1::{GrantPhase, GrantRequest, GrantTerms, ShareGrantSpec, ShareGrantStatus},
    workflow::deadline,
};

/// The terms of a spec that a review decides on (SH-3, SH-5).
pub(super) fn terms_of(spec: &ShareGrantSpec) -> GrantTerms {
    let fields: BTreeSet<&str> = spec.fields.iter().map(String::as_str).collect();
    GrantTerms {
        fields: fields.into_iter().map(str::to_owned).collect(),
        mode: spec.mode,
        valid_until: spec.valid_until.clone(),
        scenario_digest: scenario_digest(spec),
    }
}

/// `sha256:` digest of the scenario and purpose, so that a new use is seen without storing
/// the texts twice (SH-3).
fn scenario_digest(spec: &ShareGrantSpec) -> String {
    let mut hash = Sha256::new();
    hash.update(spec.scenario.as_bytes());
    hash.update([0]);
    hash.update(spec.purpose.as_bytes());
    let hex: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Whether `narrow` asks for no more than `wide`: a subset of the fields, the same mode and use,
/// and no later end.
pub(super) fn within(narrow: &GrantTerms, wide: &GrantTerms) -> bool {
    narrow.mode == wide.mode
        && narrow.scenario_digest == wide.scenario_digest
        && narrow.valid_until.0 <= wide.valid_until.0
        && narrow.fields.iter().all(|f| wide.fields.contains(f))
}

/// Takes the spec in: the first request at creation, and after an edit either the narrowed
/// approved terms or a new request received now.
pub(super) fn take_in(status: &mut ShareGrantStatus, facts: &GrantFacts<'_>) {
    let terms = terms_of(facts.spec);
    let Some(request) = &status.request else {
        // The request is received when the grant is created, unless an earlier spec was
        // refused as invalid (a status exists) and this one is an edit: received now.
        let received = if facts.previous.is_none() || facts.generation == 1 {
            facts.created
        } else {
            facts.now
        };
        status.request = Some(GrantRequest {
            generation: facts.generation,
            received: time(received),
            checked: None,
            terms,
        });
        return;
    };
    if facts.generation <= request.generation || request.terms == terms {
        // No edit, or one that leaves the reviewed terms alone (e.g. serviceAccounts).
        return;
    }
    let generation = facts.generation;
    let narrowed = status
        .approved
        .as_mut()
        .filter(|approved| within(&terms, &approved.terms));
    let (checked, note) = match narrowed {
        Some(approved) => {
            approved.terms = terms.clone();
            approved.generation = generation;
            (
                Some(time(facts.now)),
                format!("superseded by generation {generation}, which narrows the approved terms"),
            )
        }
        None => (None, format!("superseded by generation {generation}")),
    };
    deadline::close_pending(
        &mut status.deadlines,
        |d| d.generation.is_some_and(|g| g < generation),
        facts.now,
        &note,
    );
    status.request = Some(GrantRequest {
        generation,
        received: time(facts.now),
        checked,
        terms,
    });
}

/// Where the current request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum State {
    /// No request yet (an invalid first spec).
    None,
    /// Received; the checks have not run.
    Unchecked,
    /// Checked and waiting for a decision.
    InReview,
    /// Returned to the consumer for changes; a later approval or denial still decides it.
    Returned,
    /// Approved: its terms are the approved ones.
    Approved,
    /// Denied.
    Denied,
}

pub(super) fn state(status: &ShareGrantStatus) -> State {
    let Some(request) = &status.request else {
        return State::None;
    };
    if status
        .approved
        .as_ref()
        .is_some_and(|a| a.generation == request.generation)
    {
        return State::Approved;
    }
    let decided = status
        .decision
        .as_ref()
        .filter(|d| d.generation == Some(request.generation));
    match decided.map(|d| d.outcome.as_str()) {
        Some("deny") => State::Denied,
        _ if request.checked.is_none() => State::Unchecked,
        Some("requestChanges") => State::Returned,
        _ => State::InReview,
    }
}

/// The end of a grant whose request was denied with nothing approved before; a denied change
/// of an approved grant leaves the approval in force.
pub(super) fn denial(status: &ShareGrantStatus) -> Option<Ending> {
    if state(status) != State::Denied || status.approved.is_some() {
        return None;
    }
    status.decision.as_ref().map(|d| Ending {
        at: d.at.0,
        phase: GrantPhase::Denied,
        decision: None,
    })
}
