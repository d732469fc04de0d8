//! The Reviews about a grant: who may decide what (the reviewer's namespace says who decided,
//! DESIGN.md "Tenancy"), which request a Review decides, and why one is not applied.
//!
//! - The provider approves, denies or requests changes; the authority does so in its place once
//!   the provider's reply is overdue, or at any time where the text sets no number for the
//!   reply (PJ18: the authority approves, or consults the provider) (SUP-2).
//! - A decision names the generation it decides; one naming an older generation than the
//!   request under review does not decide it. Without a generation it decides the request
//!   under review when it was made.
//! - The first approval or denial decides (a request for changes before it only stops the
//!   provider's clock); once decided, a request is not reopened by later Reviews.
//! - Either may revoke; only the authority suspends and resumes (SH-14).

use jiff::Timestamp;

use super::{Ending, GrantFacts, request, request::State, time};
use crate::{
    presets::Step,
    v1alpha1::{
        ApprovedTerms, Decision, GrantPhase, GrantRequest, IgnoredReview, ReviewDecision,
        ShareGrantStatus, SubjectKind,
    },
    workflow::{
        ReviewFacts, cap_ignored, chronological, deadline, refusal_article, requires_legal_basis,
        step_deadline,
    },
};

/// What a Review means for this grant.
enum Verdict {
    /// Not about this grant, or about an earlier request: nothing to say.
    Skip,
    /// About this grant but not applied, for this reason.
    Ignore(String),
    /// Applicable, decided by the provider (`true`) or the authority (`false`).
    Apply { provider: bool },
}

fn is_about(review: &ReviewFacts, facts: &GrantFacts<'_>) -> bool {
    let subject = &review.spec.subject;
    subject.kind == SubjectKind::ShareGrant
        && subject.namespace == facts.namespace
        && subject.name == facts.name
}

fn provider_namespace<'a>(
    status: &'a ShareGrantStatus,
    facts: &'a GrantFacts<'_>,
) -> Option<&'a str> {
    status
        .provider
        .as_ref()
        .map(|p| p.namespace.as_str())
        .or_else(|| facts.item.map(|i| i.namespace.as_str()))
}

/// Whether `review` decides `request`: it names the request's generation or a later one that
/// exists, or names none and was made while the request was under review.
fn targets(review: &ReviewFacts, request: &GrantRequest, current: i64) -> bool {
    match review.spec.subject.generation {
        Some(g) => g >= request.generation && g <= current,
        None => review.created >= request.received.0,
    }
}

/// When the authority may decide the current request in the provider's place: from the
/// provider's due time, or at once where the reply has no due time (PJ18); `None` if no
/// provider reply is pending for it.
fn coordination_from(status: &ShareGrantStatus, generation: i64) -> Option<Option<Timestamp>> {
    deadline::entry(&status.deadlines, Step::ProviderReply, generation)
        .map(|d| d.due.as_ref().map(|t| t.0))
}

fn verdict(review: &ReviewFacts, status: &ShareGrantStatus, facts: &GrantFacts<'_>) -> Verdict {
    use ReviewDecision::{Approve, Deny, RequestChanges, Resume, Revoke, Suspend};
    if !is_about(review, facts) {
        return Verdict::Skip;
    }
    if review.created < facts.created {
        return Verdict::Ignore(
            "made before this ShareGrant was created, about an earlier object of the same name: \
             create a new Review"
                .to_owned(),
        );
    }
    let regulation = facts.regulation;
    let authority = review.namespace == regulation.authority_namespace;
    let provider_ns = provider_namespace(status, facts);
    let provider = provider_ns == Some(review.namespace.as_str());
    if !authority && !provider {
        return Verdict::Ignore(format!(
            "namespace {} is neither the provider's ({}) nor the authority's ({}): only they decide on a grant (SH-4)",
            review.namespace,
            provider_ns.unwrap_or("unknown"),
            regulation.authority_namespace
        ));
    }
    let decision = review.spec.decision;
    if let Some(g) = review
        .spec
        .subject
        .generation
        .filter(|&g| g > facts.generation)
    {
        return Verdict::Ignore(format!(
            "names generation {g}, but the grant is at generation {}",
            facts.generation
        ));
    }
    if !matches!(decision, Approve | Resume) && !review.has_reason() {
        return Verdict::Ignore(format!(
            "{decision:?} without a reason: give the reasons in a new Review (SH-4)"
        ));
    }
    if decision == Deny && requires_legal_basis(regulation.preset) && !review.has_legal_basis() {
        return Verdict::Ignore(format!(
            "{}: a refusal states its legal basis: create a new Review with spec.legalBasis",
            refusal_article(regulation.preset)
        ));
    }
    match decision {
        Suspend | Resume if !authority => {
            Verdict::Ignore("only the authority suspends or resumes a grant (SH-14)".to_owned())
        }
        Suspend | Resume | Revoke => Verdict::Apply { provider },
        Approve | Deny | RequestChanges => decision_verdict(review, status, facts, provider),
    }
}

/// The verdict on an approval, denial or request for changes by the provider (`provider`) or
/// the authority.
fn decision_verdict(
    review: &ReviewFacts,
    status: &ShareGrantStatus,
    facts: &GrantFacts<'_>,
    provider: bool,
) -> Verdict {
    let Some(request) = &status.request else {
        return Verdict::Skip;
    };
    let state = request::state(status);
    let pending = matches!(state, State::InReview | State::Returned);
    if !targets(review, request, facts.generation) {
        let stale = pending
            && review.spec.subject.generation.is_some()
            && review.created >= request.received.0;
        return if stale {
            Verdict::Ignore(format!(
                "names generation {}, but generation {} with other terms is under review since {}: review generation {}",
                review.spec.subject.generation.unwrap_or_default(),
                request.generation,
                request.received.0,
                request.generation
            ))
        } else {
            Verdict::Skip
        };
    }
    match state {
        State::Approved | State::Denied => already_decided(review, status, request.generation),
        State::None | State::Unchecked => Verdict::Skip,
        State::InReview | State::Returned if provider => Verdict::Apply { provider },
        State::InReview | State::Returned => match coordination_from(status, request.generation) {
            None => Verdict::Ignore(format!(
                "no provider reply is pending for generation {}: nothing for the authority to coordinate",
                request.generation
            )),
            Some(Some(from)) if review.created < from => Verdict::Ignore(format!(
                "the authority decides in the provider's place only once the provider's reply is overdue, from {from} (SUP-2): create the Review then"
            )),
            Some(_) => Verdict::Apply { provider },
        },
    }
}

/// A decision on a request that was decided before it: a note, unless it is the deciding
/// Review itself or came no later.
fn already_decided(review: &ReviewFacts, status: &ShareGrantStatus, generation: i64) -> Verdict {
    let decided = match (&status.approved, &status.decision) {
        (Some(a), _) if a.generation == generation => {
            Some((a.approved_at.0, a.by.as_str(), "approve"))
        }
        (_, Some(d)) => Some((d.at.0, d.by.as_str(), d.outcome.as_str())),
        _ => None,
    };
    match decided {
        Some((at, by, outcome)) if review.created > at && review.reference() != by => {
            Verdict::Ignore(format!(
                "generation {generation} was already decided ({outcome} by {by}): a Review does not reopen it; revoke to withdraw an approval, or edit the grant to request again"
            ))
        }
        _ => Verdict::Skip,
    }
}

fn decision_of(review: &ReviewFacts, provider: bool, generation: Option<i64>) -> Decision {
    review.decision(if provider { "provider" } else { "authority" }, generation)
}

/// Whether a Review made at `created` counts: made by now, and before the grant ended
/// (`cutoff`), if it did.
fn in_time(created: Timestamp, facts: &GrantFacts<'_>, cutoff: Option<Timestamp>) -> bool {
    created <= facts.now && cutoff.is_none_or(|end| created < end)
}

/// Applies the Reviews made in time to the request under review: requests for changes stop the
/// provider's clock, the first approval or denial decides.
pub(super) fn decide(
    status: &mut ShareGrantStatus,
    facts: &GrantFacts<'_>,
    cutoff: Option<Timestamp>,
) {
    if !matches!(request::state(status), State::InReview | State::Returned) {
        return;
    }
    let Some(request) = status.request.clone() else {
        return;
    };
    let generation = request.generation;
    for review in chronological(facts.reviews) {
        if !in_time(review.created, facts, cutoff) {
            break;
        }
        let decision = review.spec.decision;
        if !matches!(
            decision,
            ReviewDecision::Approve | ReviewDecision::Deny | ReviewDecision::RequestChanges
        ) {
            continue;
        }
        let Verdict::Apply { provider } = verdict(review, status, facts) else {
            continue;
        };
        let note = (!provider).then(|| {
            "decided by the authority after the provider's deadline (coordination, SUP-2)"
                .to_owned()
        });
        deadline::complete(
            &mut status.deadlines,
            Step::ProviderReply,
            generation,
            review.created,
            note,
        );
        status.decision = Some(decision_of(review, provider, Some(generation)));
        match decision {
            ReviewDecision::Approve => {
                status.approved = Some(ApprovedTerms {
                    generation,
                    approved_at: time(review.created),
                    by: review.reference(),
                    terms: request.terms.clone(),
                });
                provision(status, facts, generation, review.created);
                return;
            }
            ReviewDecision::Deny => return,
            _ => {}
        }
    }
}

/// Records the provision after an approval (SH-4 row 4), done at once: the platform serves the
/// grant as soon as the operator sees the approval.
fn provision(
    status: &mut ShareGrantStatus,
    facts: &GrantFacts<'_>,
    generation: i64,
    approved: Timestamp,
) {
    let step = Step::ProvisionAfterApproval;
    if let Some(d) = step_deadline(facts.regulation, step, approved) {
        deadline::open(&mut status.deadlines, d, generation);
        deadline::complete(&mut status.deadlines, step, generation, facts.now, None);
    }
}

/// The first applicable revocation up to now, as an ending of the grant.
pub(super) fn revocation(status: &ShareGrantStatus, facts: &GrantFacts<'_>) -> Option<Ending> {
    chronological(facts.reviews)
        .into_iter()
        .filter(|r| r.spec.decision == ReviewDecision::Revoke && r.created <= facts.now)
        .find_map(|r| match verdict(r, status, facts) {
            Verdict::Apply { provider } => Some(Ending {
                at: r.created,
                phase: GrantPhase::Revoked,
                decision: Some(decision_of(r, provider, r.spec.subject.generation)),
            }),
            _ => None,
        })
}

/// The authority's suspension in force: its last applicable suspend or resume made in time, if
/// that was a suspension (SH-14).
pub(super) fn suspension(
    status: &ShareGrantStatus,
    facts: &GrantFacts<'_>,
    cutoff: Option<Timestamp>,
) -> Option<Decision> {
    let mut current = None;
    for review in chronological(facts.reviews) {
        if !in_time(review.created, facts, cutoff) {
            break;
        }
        let decision = review.spec.decision;
        if !matches!(decision, ReviewDecision::Suspend | ReviewDecision::Resume) {
            continue;
        }
        if let Verdict::Apply { provider } = verdict(review, status, facts) {
            current = (decision == ReviewDecision::Suspend)
                .then(|| decision_of(review, provider, review.spec.subject.generation));
        }
    }
    current
}

/// The Reviews about this grant that are not applied, with the reason, oldest first.
pub(super) fn ignored(status: &ShareGrantStatus, facts: &GrantFacts<'_>) -> Vec<IgnoredReview> {
    let mut ignored: Vec<IgnoredReview> = chronological(facts.reviews)
        .into_iter()
        .filter_map(|r| match verdict(r, status, facts) {
            Verdict::Ignore(reason) => Some(IgnoredReview {
                review: r.reference(),
                reason,
            }),
            _ => None,
        })
        .collect();
    cap_ignored(&mut ignored);
    ignored
}
