//! The `ShareGrant` workflow (SH-4): `Submitted → ComplianceReview → ProviderReview → Approved →
//! Active`, ending `Denied`, `Expired` or `Revoked`, or `Suspended` until resumed.
//!
//! - **Checks** (`ComplianceReview`, run once per request): the item exists and the authority
//!   approved it (CAT-2); each requested field exists and is shareable (SH-5), except in
//!   `verify` mode, where fields are match keys whose values are never returned, so a
//!   non-shareable field may be named (SH-7); a `notShared` item only in `verify` mode (SH-7).
//!   A failed check denies the request, decided by `operator`, naming the rule.
//! - **Unconditional items** are then approved by the platform (SH-1); conditional and
//!   not-shared ones wait for the provider's `Review` on the preset's deadline (SH-4). A
//!   refusal gives reasons, and under XJ21, NM23 and YN29 a legal basis, or it is not applied.
//! - **Escalation**: once the provider's reply is overdue, the grant waits on the authority,
//!   whose own `Review` may then decide it (coordination; SUP-2, XJ21(3), PJ18).
//! - **Edits** after approval: narrowing (fewer fields, an earlier `validUntil`) applies at once;
//!   anything else — another field, mode, scenario or purpose (SH-3), a later `validUntil` — is a
//!   new request, checked and reviewed afresh with its clock counted from the edit, while the
//!   exchange keeps serving the terms approved before ([`served_terms`]). A refused change
//!   leaves those terms in force.
//! - **Ends**: `Expired` at `validUntil` (of the approved terms, if any: an extension must be
//!   approved in time), `Revoked` by a provider or authority `revoke`, `Denied`; the earliest
//!   wins when several happened since the last look. `Suspended` by the authority (SH-14) until
//!   it resumes the grant.
//! - `Approved` is never written: an approved grant is `Active` at once (the controller adds
//!   the endpoint), and `Submitted`/`ComplianceReview` only last until the checks run, which is
//!   the same evaluation unless the spec is invalid.

mod checks;
mod report;
mod request;
mod reviews;
#[cfg(test)]
mod tests;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::{RegulationFacts, ReviewFacts, catalog::is_item_approved, deadline};
use crate::{
    rules,
    v1alpha1::{
        ApprovedTerms, DataCatalog, Decision, GrantPhase, ShareGrantSpec, ShareGrantStatus,
        ShareType,
    },
};

pub use self::{
    checks::compliance_problems,
    report::{
        ACTIVE, AWAITING_PROVIDER, CHANGE_DENIED, CHANGE_PENDING, CHANGES_REQUESTED, SUSPENDED,
    },
};

/// `waitingOn` and `Decision.by` of what the operator does itself.
pub const OPERATOR: &str = "operator";

/// A catalog item as a grant's checks need it.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemFacts {
    /// The item's identifier.
    pub identifier: String,
    /// The provider's department code (its namespace's `gongshu.io/department` label).
    pub department: String,
    /// The provider's namespace: its Reviews decide as the provider.
    pub namespace: String,
    /// The `DataCatalog` that declares the item.
    pub catalog: String,
    /// The item's share type (CAT-8).
    pub share_type: ShareType,
    /// Whether the authority approved the item as it is declared now (CAT-2).
    pub approved: bool,
    /// The item's fields.
    pub fields: Vec<ItemField>,
}

/// A field of a catalog item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemField {
    /// The field's name.
    pub name: String,
    /// Whether a grant may return its values.
    pub shareable: bool,
}

impl ItemFacts {
    /// Item `identifier` of `catalog`, whose namespace belongs to `department`; `None` if the
    /// catalog does not declare it. The item counts as approved only if the catalog's status
    /// records an approval of exactly the declared version (same digest).
    pub fn from_catalog(catalog: &DataCatalog, department: &str, identifier: &str) -> Option<Self> {
        let item = catalog
            .spec
            .items
            .iter()
            .find(|i| i.identifier == identifier)?;
        let approved = catalog
            .status
            .as_ref()
            .is_some_and(|status| is_item_approved(&catalog.spec, status, identifier));
        Some(Self {
            identifier: identifier.to_owned(),
            department: department.to_owned(),
            namespace: catalog.namespace().unwrap_or_default(),
            catalog: catalog.name_any(),
            share_type: item.share_type,
            approved,
            fields: item
                .fields
                .iter()
                .map(|f| ItemField {
                    name: f.name.clone(),
                    shareable: f.shareable,
                })
                .collect(),
        })
    }
}

/// Everything a grant's workflow depends on.
#[derive(Clone, Copy, Debug)]
pub struct GrantFacts<'a> {
    /// The grant's namespace (the consumer's).
    pub namespace: &'a str,
    /// The grant's name.
    pub name: &'a str,
    /// The grant's spec.
    pub spec: &'a ShareGrantSpec,
    /// Its `metadata.generation`.
    pub generation: i64,
    /// Its `metadata.creationTimestamp`: the receipt of the request, the trigger of its first
    /// deadline (SH-4).
    pub created: Timestamp,
    /// The item `spec.item` names, from whichever catalog declares it; `None` if none does.
    pub item: Option<&'a ItemFacts>,
    /// The Reviews whose subject is this grant (others are skipped), in any order.
    pub reviews: &'a [ReviewFacts],
    /// The regulation in force.
    pub regulation: &'a RegulationFacts,
    /// The status as last written, if any.
    pub previous: Option<&'a ShareGrantStatus>,
    /// The time of evaluation.
    pub now: Timestamp,
}

/// What the controller writes, emits and waits for.
pub type GrantOutcome = super::Evaluation<ShareGrantStatus>;

/// Whether `phase` ends the grant for good: only a new grant can follow it.
pub fn is_final(phase: GrantPhase) -> bool {
    matches!(
        phase,
        GrantPhase::Denied | GrantPhase::Expired | GrantPhase::Revoked
    )
}

/// The terms the exchange serves for a grant with this status: the approved terms, unless the
/// grant is suspended or ended. While a widening edit waits for review (`ProviderReview`), the
/// earlier approval stays in force.
pub fn served_terms(status: &ShareGrantStatus) -> Option<&ApprovedTerms> {
    match status.phase {
        Some(GrantPhase::Active | GrantPhase::Approved | GrantPhase::ProviderReview) => {
            status.approved.as_ref()
        }
        _ => None,
    }
}

/// Evaluates the workflow of one grant: the new status, when to look again, and the events to
/// emit. Pure and deterministic; evaluating the output again with the same facts changes
/// nothing.
pub fn evaluate(facts: &GrantFacts<'_>) -> GrantOutcome {
    let before = facts.previous.cloned().unwrap_or_default();
    let mut status = before.clone();
    let problems = if status.phase.is_some_and(is_final) {
        // Final stays final: neither edits nor later Reviews change an ended grant.
        Vec::new()
    } else {
        let problems = rules::grant::validate(facts.spec, facts.now);
        advance(&mut status, facts, problems.is_empty());
        problems
    };
    deadline::mark_breaches(&mut status.deadlines, facts.now);
    deadline::trim(&mut status.deadlines);
    report::settle(&mut status, facts, &problems);
    let events = report::events(&before, &status);
    let next_wakeup = report::next_wakeup(&status, facts);
    GrantOutcome {
        status,
        next_wakeup,
        events,
    }
}

/// An event that ends the grant, with when it happened.
struct Ending {
    at: Timestamp,
    phase: GrantPhase,
    decision: Option<Decision>,
}

/// Moves a non-final grant forward. With an invalid spec (`valid == false`) no edit is taken
/// in and nothing is decided; only revocation and expiry still end the grant.
fn advance(status: &mut ShareGrantStatus, facts: &GrantFacts<'_>, valid: bool) {
    if valid {
        request::take_in(status, facts);
    }
    let ending = [reviews::revocation(status, facts), expiry(status, facts)]
        .into_iter()
        .flatten()
        .min_by_key(|e| e.at);
    let cutoff = ending.as_ref().map(|e| e.at);
    if valid && ending.is_none() && request::state(status) == request::State::Unchecked {
        checks::run(status, facts);
    }
    if valid {
        reviews::decide(status, facts, cutoff);
    }
    // A denial counts only Reviews made before `cutoff`, so it is never later than `ending`.
    let ending = [ending, request::denial(status)]
        .into_iter()
        .flatten()
        .min_by_key(|e| e.at);
    match ending {
        Some(ending) => end(status, ending),
        None => status.suspension = reviews::suspension(status, facts, cutoff),
    }
    status.ignored_reviews = reviews::ignored(status, facts);
}

/// Expiry at the end of the licence: the approved terms' `validUntil` if there are any (an
/// extension must be approved before it), else the requested one (SH-5).
fn expiry(status: &ShareGrantStatus, facts: &GrantFacts<'_>) -> Option<Ending> {
    let end = licence_end(status, facts);
    (end <= facts.now).then_some(Ending {
        at: end,
        phase: GrantPhase::Expired,
        decision: None,
    })
}

/// The end of the licence: the requested `validUntil`, or the approved one if earlier.
fn licence_end(status: &ShareGrantStatus, facts: &GrantFacts<'_>) -> Timestamp {
    let requested = facts.spec.valid_until.0;
    status
        .approved
        .as_ref()
        .map_or(requested, |a| a.terms.valid_until.0.min(requested))
}

/// Ends the grant: its pending steps close at the ending's time (a step that was due before
/// then is breached), and nothing waits any more.
fn end(status: &mut ShareGrantStatus, ending: Ending) {
    let note = format!("closed: the grant was {:?}", ending.phase);
    deadline::close_pending(&mut status.deadlines, |_| true, ending.at, &note);
    if let Some(decision) = ending.decision {
        status.decision = Some(decision);
    }
    status.phase = Some(ending.phase);
    status.suspension = None;
}

fn time(t: Timestamp) -> Time {
    Time(t)
}
