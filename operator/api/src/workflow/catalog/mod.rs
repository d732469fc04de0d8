//! The review workflow of catalog items (CAT-2, CAT-9).
//!
//! Every new or changed item is a new *version*, `pending` until the authority decides it with
//! a `Review` (subject kind `CatalogItem`, name = the catalog, item = the identifier) made in
//! its own namespace. A Review names the catalog generation it decides: it applies to the
//! version that generation shows (the item's `submittedGeneration` or later); without a
//! generation, to the version under review when it was made. The latest applicable Review
//! decides, so the authority can change its mind about a version — unlike a grant, nothing
//! irreversible follows from an item's state, and grants already checked are not re-checked.
//!
//! - A first review has no deadline: no text sets one (CAT-2).
//! - An update of a published item is decided within the preset's `catalogUpdateReview` days
//!   from receipt (NM11, YN13: 5 WD; HB9: 10 WD). In XJ an update is only filed (报备) with the
//!   authority (XJ11) and approved at once; PJ has no update step, so an update waits for
//!   review like a first version.
//! - An item returned for changes is fixed within `catalogChangesFix` days (YN12: 10 WD); the
//!   step is done when the department changes the item.
//! - Approved conditional and not-shared items are re-evaluated (CAT-9: XJ19–20, NM22) a period
//!   after their last approval ([`RegulationFacts::reevaluation_days`], default
//!   [`DEFAULT_REEVALUATION_DAYS`](super::DEFAULT_REEVALUATION_DAYS)); the authority does it by
//!   approving the version again (or deciding otherwise).

mod item;
#[cfg(test)]
mod tests;

use jiff::Timestamp;

use super::{
    ACTION_DEADLINE, EVENT_DEADLINE_BREACHED, Event, NOT_NEEDED, OVERDUE, REEVALUATION_DUE,
    RegulationFacts, ReviewFacts, cap_ignored, chronological, deadline, ignored_review_events,
};
use crate::{
    rules::{
        self, Problem,
        catalog::{CatalogContext, item_digest},
        summarize,
    },
    status::{self, Outcome, condition, set_condition},
    v1alpha1::{DataCatalogSpec, DataCatalogStatus, IgnoredReview, ItemReview, ItemStatus},
};

/// Everything a catalog's workflow depends on.
#[derive(Clone, Copy, Debug)]
pub struct CatalogFacts<'a> {
    /// The catalog's namespace.
    pub namespace: &'a str,
    /// The catalog's name.
    pub name: &'a str,
    /// The namespace's `gongshu.io/department` label, if any.
    pub department: Option<&'a str>,
    /// The catalog's spec.
    pub spec: &'a DataCatalogSpec,
    /// Its `metadata.generation`.
    pub generation: i64,
    /// Its `metadata.creationTimestamp`: the receipt of its first items.
    pub created: Timestamp,
    /// The Reviews whose subject is an item of this catalog (others are skipped), in any order.
    pub reviews: &'a [ReviewFacts],
    /// The regulation in force.
    pub regulation: &'a RegulationFacts,
    /// The status as last written, if any.
    pub previous: Option<&'a DataCatalogStatus>,
    /// The time of evaluation.
    pub now: Timestamp,
}

/// What the controller writes, emits and waits for.
pub type CatalogOutcome = super::Evaluation<DataCatalogStatus>;

/// Evaluates the review workflow of every item of a catalog: the new status, when to look
/// again, and the events to emit. Pure and deterministic; evaluating the output again with the
/// same facts changes nothing.
pub fn evaluate(facts: &CatalogFacts<'_>) -> CatalogOutcome {
    let before = facts.previous.cloned().unwrap_or_default();
    let mut status = before.clone();
    let problems = rules::catalog::validate(
        facts.spec,
        &CatalogContext {
            namespace: facts.namespace,
            department: facts.department,
        },
    );
    let outcome = if problems.is_empty() {
        let (items, workflow) = facts
            .spec
            .items
            .iter()
            .map(|i| item::evaluate(i, &before, facts))
            .unzip();
        status.items = items;
        status.workflow = workflow;
        status.ignored_reviews = ignored(&status, facts);
        Outcome::Settled {
            ready: true,
            reason: status::ACCEPTED,
            message: summary(&status.items),
        }
    } else {
        // The items keep their states until the spec is fixed; only time moves on.
        for flow in &mut status.workflow {
            deadline::mark_breaches(&mut flow.deadlines, facts.now);
        }
        stalled(&problems)
    };
    status.item_count = Some(count(facts.spec.items.len()));
    status.approved_count = Some(count(
        status
            .items
            .iter()
            .filter(|i| i.review == ItemReview::Approved)
            .count(),
    ));
    let generation = Some(facts.generation);
    status::apply_outcome(&mut status.common, &outcome, generation, facts.now);
    let ledgers: Vec<&[_]> = status
        .workflow
        .iter()
        .map(|w| w.deadlines.as_slice())
        .collect();
    let breached = deadline::breach_condition(&ledgers, generation, facts.now);
    let overdue: Vec<&str> = status
        .workflow
        .iter()
        .filter(|w| w.reevaluation_overdue)
        .map(|w| w.identifier.as_str())
        .collect();
    let reevaluation = if overdue.is_empty() {
        condition(
            REEVALUATION_DUE,
            false,
            NOT_NEEDED,
            "",
            generation,
            facts.now,
        )
    } else {
        condition(
            REEVALUATION_DUE,
            true,
            OVERDUE,
            format!(
                "the authority's periodic re-evaluation is overdue for {} (CAT-9)",
                overdue.join(", ")
            ),
            generation,
            facts.now,
        )
    };
    set_condition(&mut status.common.conditions, breached);
    set_condition(&mut status.common.conditions, reevaluation);
    let events = events(&before, &status);
    let next_wakeup = next_wakeup(&status, facts.now);
    CatalogOutcome {
        status,
        next_wakeup,
        events,
    }
}

fn stalled(problems: &[Problem]) -> Outcome {
    let not_a_department = problems.iter().any(|p| p.field == "metadata.namespace");
    Outcome::Stalled {
        reason: if not_a_department {
            status::NOT_A_DEPARTMENT
        } else {
            status::INVALID_SPEC
        },
        message: summarize(problems),
    }
}

/// The Reviews about this catalog's items that are not applied, with the reason, oldest first.
fn ignored(status: &DataCatalogStatus, facts: &CatalogFacts<'_>) -> Vec<IgnoredReview> {
    let mut ignored: Vec<IgnoredReview> = chronological(facts.reviews)
        .into_iter()
        .filter_map(|r| {
            let id = r.spec.subject.item.as_deref().unwrap_or_default();
            let flow = status.workflow.iter().find(|w| w.identifier == id);
            match item::verdict(r, flow, facts) {
                item::Verdict::Ignore(reason) => Some(IgnoredReview {
                    review: r.reference(),
                    reason,
                }),
                _ => None,
            }
        })
        .collect();
    cap_ignored(&mut ignored);
    ignored
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// "3 items: 1 approved, 2 pending the authority's review (CAT-2)".
fn summary(items: &[ItemStatus]) -> String {
    let of = |state| items.iter().filter(|i| i.review == state).count();
    let total = items.len();
    let noun = if total == 1 { "item" } else { "items" };
    let parts: Vec<String> = [
        (of(ItemReview::Approved), "approved"),
        (of(ItemReview::Pending), "pending the authority's review"),
        (of(ItemReview::ChangesRequested), "returned for changes"),
        (of(ItemReview::Denied), "denied"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    format!("{total} {noun}: {} (CAT-2)", parts.join(", "))
}

fn item_reason(review: ItemReview) -> &'static str {
    match review {
        ItemReview::Pending => "ItemSubmitted",
        ItemReview::Approved => "ItemApproved",
        ItemReview::ChangesRequested => "ItemChangesRequested",
        ItemReview::Denied => "ItemDenied",
    }
}

/// The events for what changed from `before` to `after`.
fn events(before: &DataCatalogStatus, after: &DataCatalogStatus) -> Vec<Event> {
    let mut events = Vec::new();
    for (item, flow) in after.items.iter().zip(&after.workflow) {
        let id = &item.identifier;
        let old_item = before.items.iter().find(|s| &s.identifier == id);
        let old_flow = before.workflow.iter().find(|w| &w.identifier == id);
        let changed = old_item.is_none_or(|o| o.review != item.review)
            || old_flow.is_none_or(|o| o.submitted_generation != flow.submitted_generation);
        if changed {
            let note = format!("item {id}: {}", item.message.as_deref().unwrap_or_default());
            let reason = item_reason(item.review);
            events.push(if item.review == ItemReview::Denied {
                Event::warning(reason, "Review", note)
            } else {
                Event::normal(reason, "Review", note)
            });
        }
        let old_deadlines = old_flow.map(|o| o.deadlines.as_slice()).unwrap_or_default();
        for d in deadline::new_breaches(old_deadlines, &flow.deadlines) {
            events.push(Event::warning(
                EVENT_DEADLINE_BREACHED,
                ACTION_DEADLINE,
                format!("item {id}: {} (SUP-2)", deadline::describe_breach(d)),
            ));
        }
        if flow.reevaluation_overdue && !old_flow.is_some_and(|o| o.reevaluation_overdue) {
            let since = item
                .next_reevaluation
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default();
            events.push(Event::warning(
                REEVALUATION_DUE,
                ACTION_DEADLINE,
                format!(
                    "item {id}: the periodic re-evaluation of its share type was due {since} (CAT-9): the authority approves it again or decides otherwise"
                ),
            ));
        }
    }
    events.extend(ignored_review_events(
        &before.ignored_reviews,
        &after.ignored_reviews,
    ));
    events
}

/// The earliest future instant the catalog changes by itself: a due time or a re-evaluation.
fn next_wakeup(status: &DataCatalogStatus, now: Timestamp) -> Option<Timestamp> {
    let dues = status
        .workflow
        .iter()
        .filter_map(|w| deadline::next_due(&w.deadlines, now));
    let reevaluations = status
        .items
        .iter()
        .filter_map(|i| i.next_reevaluation.as_ref().map(|t| t.0))
        .filter(|&t| t > now);
    dues.chain(reevaluations).min()
}

/// Whether the catalog's status records an approval of `identifier` exactly as `spec`
/// declares it now (CAT-2: only approved items can be granted or opened).
pub fn is_item_approved(
    spec: &DataCatalogSpec,
    status: &DataCatalogStatus,
    identifier: &str,
) -> bool {
    let Some(item) = spec.items.iter().find(|i| i.identifier == identifier) else {
        return false;
    };
    let digest = item_digest(item);
    status.items.iter().any(|s| {
        s.identifier == identifier
            && s.review == ItemReview::Approved
            && s.spec_digest.as_deref() == Some(digest.as_str())
    })
}
