//! The filing of a separate channel (`ChannelExemption`, CH-1): the data authority approves,
//! denies, returns or revokes it with Reviews in its own namespace; an approval covers the
//! generation it was made for until `validUntil`. When an approved filing ends (it expires or
//! is revoked) the covered objects that still exist are reported, or removed when the filing
//! says `enforce: true`.
//!
//! - A Review names the generation it decides, or decides the generation under review when it
//!   was made. An edit after approval puts the filing back to `Pending` until the new
//!   generation is approved; so does an edit after a request for changes.
//! - The latest applicable decision wins, except that `Denied` and `Revoked` are final: a
//!   refused or withdrawn channel is filed anew.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    ACTION_REVIEW, Evaluation, Event, ReviewFacts, cap_ignored, chronological,
    ignored_review_events,
};
use crate::{
    status::{self, Outcome},
    v1alpha1::{
        ChannelExemptionSpec, ChannelExemptionStatus, Decision, ExemptionPhase, ExemptionRequest,
        ExposedObject, IgnoredReview, ReviewDecision, SubjectKind,
    },
};

/// Event reason: the authority approved the filing.
pub const EVENT_APPROVED: &str = "ExemptionApproved";
/// Event reason: the filing ended (expired or revoked) or was refused.
pub const EVENT_ENDED: &str = "ExemptionEnded";
/// Event reason: covered objects outlived the filing (CH-1 violations now).
pub const EVENT_LEFT_OVER: &str = "ChannelLeftOver";
/// Event reason: the operator deleted covered objects after the filing ended (`enforce`).
pub const EVENT_REMOVED: &str = "ChannelRemoved";

/// What the exemption workflow reads.
#[derive(Clone, Debug)]
pub struct ExemptionFacts<'a> {
    /// The filing's namespace (a department's).
    pub namespace: &'a str,
    /// The filing's name.
    pub name: &'a str,
    /// Its spec.
    pub spec: &'a ChannelExemptionSpec,
    /// Its `metadata.generation`.
    pub generation: i64,
    /// Its `metadata.creationTimestamp`: when generation 1 was received.
    pub created: Timestamp,
    /// Every Review whose subject is this filing.
    pub reviews: &'a [ReviewFacts],
    /// The data authority's namespace: only its Reviews decide.
    pub authority_namespace: &'a str,
    /// The status as last written.
    pub previous: Option<&'a ChannelExemptionStatus>,
    /// The covered objects that exist now and expose workloads.
    pub exposed: &'a [ExposedObject],
    /// The time of evaluation.
    pub now: Timestamp,
}

/// The evaluation, and the covered objects to delete (an ended filing with `enforce`).
#[derive(Clone, Debug, PartialEq)]
pub struct ExemptionOutcome {
    /// Status, wake-up and Events.
    pub evaluation: Evaluation<ChannelExemptionStatus>,
    /// Objects the controller deletes before writing the status.
    pub remove: Vec<ExposedObject>,
}

/// Evaluates a filing.
pub fn evaluate(facts: &ExemptionFacts<'_>) -> ExemptionOutcome {
    let now = facts.now;
    let previous = facts.previous.cloned().unwrap_or_default();
    let mut next = previous.clone();
    next.request = Some(match &previous.request {
        Some(r) if r.generation == facts.generation => r.clone(),
        // An edit the operator sees now was received now (or earlier, while it was down: a
        // Review without a generation made in between then counts for the new generation).
        _ => ExemptionRequest {
            generation: facts.generation,
            received: Time(if facts.generation <= 1 {
                facts.created
            } else {
                now
            }),
        },
    });
    let (decided, ignored) = decide(facts, &next);
    next.ignored_reviews = ignored;
    cap_ignored(&mut next.ignored_reviews);
    let phase = match &decided {
        None => ExemptionPhase::Pending,
        Some(d) => d.phase,
    };
    next.decision = decided.as_ref().map(|d| d.decision.clone());
    next.approved_generation = decided
        .as_ref()
        .filter(|d| d.phase == ExemptionPhase::Approved)
        .and_then(|d| d.decision.generation);
    let phase = match phase {
        ExemptionPhase::Approved if next.approved_generation != Some(facts.generation) => {
            ExemptionPhase::Pending
        }
        ExemptionPhase::ChangesRequested
            if next.decision.as_ref().and_then(|d| d.generation) != Some(facts.generation) =>
        {
            ExemptionPhase::Pending
        }
        ExemptionPhase::Approved if now >= facts.spec.valid_until.0 => ExemptionPhase::Expired,
        phase => phase,
    };
    next.phase = Some(phase);

    let ended = matches!(phase, ExemptionPhase::Expired | ExemptionPhase::Revoked);
    let mut remove = Vec::new();
    if ended && facts.spec.enforce {
        remove = facts.exposed.to_vec();
        for object in &remove {
            if !next.removed.contains(object) {
                next.removed.push(object.clone());
            }
        }
        next.left_over.clear();
    } else if ended {
        next.left_over = facts.exposed.to_vec();
    } else {
        next.left_over.clear();
    }

    let generation = Some(facts.generation);
    let outcome = outcome(facts, &next, phase);
    status::apply_outcome(&mut next.common, &outcome, generation, now);
    let mut events = transition_events(&previous, &next, facts);
    events.extend(ignored_review_events(
        &previous.ignored_reviews,
        &next.ignored_reviews,
    ));
    ExemptionOutcome {
        evaluation: Evaluation {
            next_wakeup: (phase == ExemptionPhase::Approved).then_some(facts.spec.valid_until.0),
            status: next,
            events,
        },
        remove,
    }
}

/// The phase a decision leads to, with the decision as the status records it.
struct Decided {
    phase: ExemptionPhase,
    decision: Decision,
}

/// The applicable decisions in order, the latest winning; `Denied` and `Revoked` final.
fn decide(
    facts: &ExemptionFacts<'_>,
    status: &ChannelExemptionStatus,
) -> (Option<Decided>, Vec<IgnoredReview>) {
    let mut decided: Option<Decided> = None;
    let mut ignored = Vec::new();
    let mut ignore = |review: &ReviewFacts, reason: String| {
        ignored.push(IgnoredReview {
            review: review.reference(),
            reason,
        });
    };
    for review in chronological(facts.reviews) {
        let subject = &review.spec.subject;
        if subject.kind != SubjectKind::ChannelExemption
            || subject.namespace != facts.namespace
            || subject.name != facts.name
        {
            continue;
        }
        if review.namespace != facts.authority_namespace {
            ignore(
                review,
                format!(
                    "a ChannelExemption is decided by the data authority: create the Review in namespace {} (CH-1)",
                    facts.authority_namespace
                ),
            );
            continue;
        }
        if let Some(final_) = decided
            .as_ref()
            .filter(|d| matches!(d.phase, ExemptionPhase::Denied | ExemptionPhase::Revoked))
        {
            ignore(
                review,
                format!(
                    "the filing is already {:?}; file a new ChannelExemption",
                    final_.phase
                ),
            );
            continue;
        }
        let Some(generation) = decided_generation(review, status, facts.generation) else {
            ignore(
                review,
                format!(
                    "it decides generation {:?}, which does not exist yet (current: {})",
                    subject.generation, facts.generation
                ),
            );
            continue;
        };
        let phase = match review.spec.decision {
            ReviewDecision::Approve => ExemptionPhase::Approved,
            ReviewDecision::Deny => ExemptionPhase::Denied,
            ReviewDecision::RequestChanges => ExemptionPhase::ChangesRequested,
            ReviewDecision::Revoke
                if decided
                    .as_ref()
                    .is_some_and(|d| d.phase == ExemptionPhase::Approved) =>
            {
                ExemptionPhase::Revoked
            }
            ReviewDecision::Revoke => {
                ignore(review, "nothing approved to revoke".into());
                continue;
            }
            other => {
                ignore(
                    review,
                    format!("{other:?} does not apply to a ChannelExemption"),
                );
                continue;
            }
        };
        decided = Some(Decided {
            phase,
            decision: review.decision("authority", Some(generation)),
        });
    }
    (decided, ignored)
}

/// The generation `review` decides: the one it names, if it exists; else the one under review
/// when it was made (an older one if it predates the current generation).
fn decided_generation(
    review: &ReviewFacts,
    status: &ChannelExemptionStatus,
    current: i64,
) -> Option<i64> {
    match review.spec.subject.generation {
        Some(g) if g > current => None,
        Some(g) => Some(g),
        None => {
            let since = status.request.as_ref().map(|r| r.received.0);
            Some(if since.is_some_and(|since| review.created < since) {
                current - 1
            } else {
                current
            })
        }
    }
}

fn list(objects: &[ExposedObject]) -> String {
    let names: Vec<String> = objects
        .iter()
        .map(|o| format!("{} {}", o.kind.as_str(), o.name))
        .collect();
    names.join(", ")
}

/// `Ready` and its message for `phase`.
fn outcome(
    facts: &ExemptionFacts<'_>,
    status: &ChannelExemptionStatus,
    phase: ExemptionPhase,
) -> Outcome {
    let by = status
        .decision
        .as_ref()
        .map(|d| d.by.clone())
        .unwrap_or_default();
    let until = facts.spec.valid_until.0;
    let settled = |ready, reason, message: String| Outcome::Settled {
        ready,
        reason,
        message,
    };
    let ended_tail = if !status.left_over.is_empty() {
        format!(
            "; still exposing without an exemption (CH-1): {}",
            list(&status.left_over)
        )
    } else if !status.removed.is_empty() {
        format!("; removed: {}", list(&status.removed))
    } else {
        String::new()
    };
    match phase {
        ExemptionPhase::Pending => settled(
            false,
            status::PENDING,
            format!(
                "waiting for the data authority to approve generation {} with a Review in namespace {} (subject kind ChannelExemption)",
                facts.generation, facts.authority_namespace
            ),
        ),
        ExemptionPhase::Approved => settled(
            true,
            status::ACCEPTED,
            format!(
                "approved by {by} until {until}; admits {}",
                list(&facts.spec.covers)
            ),
        ),
        ExemptionPhase::ChangesRequested => settled(
            false,
            "ChangesRequested",
            format!("{by} requested changes; edit the spec and it is reviewed again"),
        ),
        ExemptionPhase::Denied => settled(false, status::DENIED, format!("denied by {by}")),
        ExemptionPhase::Revoked => settled(
            false,
            status::REVOKED,
            format!("revoked by {by}{ended_tail}"),
        ),
        ExemptionPhase::Expired => settled(
            false,
            status::EXPIRED,
            format!("expired at {until}{ended_tail}"),
        ),
    }
}

/// Events for a phase change and for objects newly left over or removed.
fn transition_events(
    before: &ChannelExemptionStatus,
    after: &ChannelExemptionStatus,
    facts: &ExemptionFacts<'_>,
) -> Vec<Event> {
    let mut events = Vec::new();
    if before.phase != after.phase {
        let by = after
            .decision
            .as_ref()
            .map(|d| d.by.as_str())
            .unwrap_or_default();
        match after.phase {
            Some(ExemptionPhase::Approved) => events.push(Event::normal(
                EVENT_APPROVED,
                ACTION_REVIEW,
                format!(
                    "approved by {by} until {}: {} admitted (CH-1)",
                    facts.spec.valid_until.0,
                    list(&facts.spec.covers)
                ),
            )),
            Some(
                phase
                @ (ExemptionPhase::Denied | ExemptionPhase::Revoked | ExemptionPhase::Expired),
            ) => {
                events.push(Event::warning(
                    EVENT_ENDED,
                    ACTION_REVIEW,
                    format!("{phase:?}; the covered objects are no longer admitted (CH-1)"),
                ));
            }
            _ => {}
        }
    }
    let new_left: Vec<ExposedObject> = after
        .left_over
        .iter()
        .filter(|o| !before.left_over.contains(o))
        .cloned()
        .collect();
    if !new_left.is_empty() {
        events.push(Event::warning(
            EVENT_LEFT_OVER,
            ACTION_REVIEW,
            format!(
                "still exposing workloads after the exemption ended, a violation of CH-1: {}; remove them, or file and approve a new exemption",
                list(&new_left)
            ),
        ));
    }
    let new_removed: Vec<ExposedObject> = after
        .removed
        .iter()
        .filter(|o| !before.removed.contains(o))
        .cloned()
        .collect();
    if !new_removed.is_empty() {
        events.push(Event::normal(
            EVENT_REMOVED,
            "Delete",
            format!(
                "deleted after the exemption ended (enforce: true): {}",
                list(&new_removed)
            ),
        ));
    }
    events
}

#[cfg(test)]
mod tests;
