//! One catalog item's review: its current version, the authority's Reviews of it, and its
//! deadlines (CAT-2, YN12) and re-evaluation (CAT-9).

use jiff::{Span, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::CatalogFacts;
use crate::{
    presets::{self, Preset, Step},
    rules::catalog::item_digest,
    v1alpha1::{
        CatalogItem, DataCatalogStatus, DeadlineStatus, ItemReview, ItemStatus, ItemWorkflow,
        ReviewDecision, ShareType, SubjectKind,
    },
    workflow::{ReviewFacts, chronological, deadline, step_deadline},
};

/// What a Review means for this catalog.
pub(super) enum Verdict {
    /// Not about an item of this catalog's current versions: nothing to say.
    Skip,
    /// About this catalog but not applied, for this reason.
    Ignore(String),
    /// Decides the item's current version.
    Apply,
}

fn is_about_catalog(review: &ReviewFacts, facts: &CatalogFacts<'_>) -> bool {
    let subject = &review.spec.subject;
    subject.kind == SubjectKind::CatalogItem
        && subject.namespace == facts.namespace
        && subject.name == facts.name
}

/// The verdict on `review` for the item version `flow` (`None`: the item is not in the spec).
pub(super) fn verdict(
    review: &ReviewFacts,
    flow: Option<&ItemWorkflow>,
    facts: &CatalogFacts<'_>,
) -> Verdict {
    use ReviewDecision::{Approve, Deny, RequestChanges, Revoke};
    if !is_about_catalog(review, facts) {
        return Verdict::Skip;
    }
    let item = review.spec.subject.item.as_deref().unwrap_or_default();
    let Some(flow) = flow else {
        return Verdict::Ignore(format!("item {item:?} is not in this catalog"));
    };
    if review.created < facts.created {
        return Verdict::Ignore(
            "made before this DataCatalog was created, about an earlier object of the same name: create a new Review"
                .to_owned(),
        );
    }
    if review.namespace != facts.regulation.authority_namespace {
        return Verdict::Ignore(format!(
            "namespace {} is not the authority's ({}): only the authority reviews catalog items (CAT-2)",
            review.namespace, facts.regulation.authority_namespace
        ));
    }
    let decision = review.spec.decision;
    if !matches!(decision, Approve | Deny | RequestChanges | Revoke) {
        return Verdict::Ignore(format!("{decision:?} does not apply to a catalog item"));
    }
    if decision != Approve && review.spec.reason.trim().is_empty() {
        return Verdict::Ignore(format!(
            "{decision:?} without a reason: give the reasons in a new Review"
        ));
    }
    match review.spec.subject.generation {
        Some(g) if g > facts.generation => Verdict::Ignore(format!(
            "names generation {g}, but the catalog is at generation {}",
            facts.generation
        )),
        Some(g) if g < flow.submitted_generation => {
            if review.created >= flow.submitted.0 {
                Verdict::Ignore(format!(
                    "names generation {g}, but item {item} changed in generation {}: review generation {}",
                    flow.submitted_generation, flow.submitted_generation
                ))
            } else {
                // A decision on an earlier version: history.
                Verdict::Skip
            }
        }
        Some(_) => Verdict::Apply,
        None if review.created >= flow.submitted.0 => Verdict::Apply,
        None => Verdict::Skip,
    }
}

/// The Reviews that decide the item version `flow`, oldest first.
fn decisive<'a>(
    identifier: &str,
    flow: &ItemWorkflow,
    facts: &'a CatalogFacts<'_>,
) -> Vec<&'a ReviewFacts> {
    chronological(facts.reviews)
        .into_iter()
        .filter(|r| r.spec.subject.item.as_deref() == Some(identifier))
        .filter(|r| r.created <= facts.now)
        .filter(|r| matches!(verdict(r, Some(flow), facts), Verdict::Apply))
        .collect()
}

/// The item's version: kept while its digest is unchanged; a new or changed item is a new
/// version received now (at the catalog's creation on first sight). Steps pending on the old
/// version close: a fix is done by the change, a review is superseded by it.
fn version(
    item: &CatalogItem,
    digest: &str,
    before: &DataCatalogStatus,
    facts: &CatalogFacts<'_>,
) -> ItemWorkflow {
    let id = &item.identifier;
    let same = before
        .items
        .iter()
        .any(|s| &s.identifier == id && s.spec_digest.as_deref() == Some(digest));
    let old = before.workflow.iter().find(|w| &w.identifier == id);
    let submitted = if facts.previous.is_none() {
        facts.created
    } else {
        facts.now
    };
    match (same, old) {
        (true, Some(flow)) => flow.clone(),
        (true, None) => ItemWorkflow {
            // A status written before this workflow existed, when no Review was applied yet:
            // the Reviews made since the catalog's creation decide the version it recorded.
            submitted_generation: before
                .common
                .observed_generation
                .unwrap_or(facts.generation),
            ..fresh(id, facts.generation, facts.created, Vec::new())
        },
        (false, old) => {
            let generation = facts.generation;
            let mut deadlines = old.map(|f| f.deadlines.clone()).unwrap_or_default();
            deadline::close_pending(
                &mut deadlines,
                |d| d.step == Step::CatalogChangesFix,
                facts.now,
                &format!("done: the department resubmitted the item in generation {generation}"),
            );
            deadline::close_pending(
                &mut deadlines,
                |_| true,
                facts.now,
                &format!("superseded: the item changed in generation {generation}"),
            );
            fresh(id, generation, submitted, deadlines)
        }
    }
}

fn fresh(
    identifier: &str,
    generation: i64,
    submitted: Timestamp,
    deadlines: Vec<DeadlineStatus>,
) -> ItemWorkflow {
    ItemWorkflow {
        identifier: identifier.to_owned(),
        submitted_generation: generation,
        submitted: Time(submitted),
        waiting_on: None,
        due: None,
        decided_by: None,
        decided_at: None,
        deadlines,
        reevaluation_overdue: false,
    }
}

/// Whether an update under `preset` is only filed (报备) with the authority: XJ11, where the
/// preset has no update review and no override adds one.
fn filing_only(facts: &CatalogFacts<'_>) -> bool {
    let regulation = facts.regulation;
    regulation.preset == Preset::Xinjiang
        && !presets::rule(regulation.preset, Step::CatalogUpdateReview).applies()
        && !regulation.is_overridden(Step::CatalogUpdateReview)
}

/// The review state and workflow of one item.
pub(super) fn evaluate(
    item: &CatalogItem,
    before: &DataCatalogStatus,
    facts: &CatalogFacts<'_>,
) -> (ItemStatus, ItemWorkflow) {
    let id = item.identifier.as_str();
    let digest = item_digest(item);
    let old = before.items.iter().find(|s| s.identifier == id);
    let mut flow = version(item, &digest, before, facts);
    let published = old.and_then(|s| s.published_at.clone());
    // An update is a version received after the item was first published (CAT-2).
    let update = published.as_ref().is_some_and(|p| p.0 < flow.submitted.0);
    let generation = flow.submitted_generation;
    let submitted = flow.submitted.0;

    if update && let Some(d) = step_deadline(facts.regulation, Step::CatalogUpdateReview, submitted)
    {
        deadline::open(&mut flow.deadlines, d, generation);
    }
    let reviews = decisive(id, &flow, facts);
    if let Some(first) = reviews.first() {
        deadline::complete(
            &mut flow.deadlines,
            Step::CatalogUpdateReview,
            generation,
            first.created,
            None,
        );
    }
    // YN12: a returned item is fixed within its days of receiving the comments (the first
    // request for changes of this version).
    let first_return = reviews
        .iter()
        .find(|r| r.spec.decision == ReviewDecision::RequestChanges);
    if let Some(r) = first_return
        && let Some(d) = step_deadline(facts.regulation, Step::CatalogChangesFix, r.created)
    {
        deadline::open(&mut flow.deadlines, d, generation);
    }
    let latest = reviews.last();

    let (review, decided_by, decided_at, message) = match latest {
        Some(r) => {
            let review = match r.spec.decision {
                ReviewDecision::Approve => ItemReview::Approved,
                ReviewDecision::RequestChanges => ItemReview::ChangesRequested,
                _ => ItemReview::Denied,
            };
            let reason = r.spec.reason.trim();
            let message = match review {
                ItemReview::Approved => format!("approved by {} (CAT-2)", r.reference()),
                ItemReview::ChangesRequested => {
                    format!("returned for changes by {}: {reason}", r.reference())
                }
                _ if r.spec.decision == ReviewDecision::Revoke => {
                    format!("approval withdrawn by {}: {reason}", r.reference())
                }
                _ => format!("denied by {}: {reason}", r.reference()),
            };
            (review, Some(r.reference()), Some(r.created), message)
        }
        None if update && filing_only(facts) => (
            ItemReview::Approved,
            Some(super::super::grant::OPERATOR.to_owned()),
            Some(submitted),
            "filed (报备) with the authority, XJ11: updates are not reviewed".to_owned(),
        ),
        None if update => (
            ItemReview::Pending,
            None,
            None,
            "changed since its approval: submitted again for the authority's review (CAT-2)"
                .to_owned(),
        ),
        None => (
            ItemReview::Pending,
            None,
            None,
            "submitted for the authority's review (CAT-2); no text sets a deadline for a first review"
                .to_owned(),
        ),
    };
    if review != ItemReview::ChangesRequested
        && let Some(at) = decided_at
    {
        deadline::complete(
            &mut flow.deadlines,
            Step::CatalogChangesFix,
            generation,
            at,
            Some("decided without the changes".to_owned()),
        );
    }
    deadline::mark_breaches(&mut flow.deadlines, facts.now);
    deadline::trim(&mut flow.deadlines);

    let next_reevaluation = reevaluation(item, review, decided_at, latest.is_none(), old, facts);
    flow.reevaluation_overdue = next_reevaluation.is_some_and(|t| t <= facts.now);
    let pending_step = match review {
        ItemReview::Pending => Some(Step::CatalogUpdateReview),
        ItemReview::ChangesRequested => Some(Step::CatalogChangesFix),
        _ => None,
    };
    flow.due = pending_step
        .and_then(|s| deadline::entry(&flow.deadlines, s, generation))
        .filter(|d| d.completed.is_none())
        .and_then(|d| d.due.clone());
    flow.waiting_on = match review {
        ItemReview::Pending => Some("authority".to_owned()),
        ItemReview::ChangesRequested => Some("department".to_owned()),
        ItemReview::Approved if flow.reevaluation_overdue => Some("authority".to_owned()),
        _ => None,
    };
    flow.decided_by = decided_by;
    flow.decided_at = decided_at.map(Time);

    let mut message = message;
    if let Some(due) = &flow.due {
        message.push_str(&format!("; due {}", due.0));
    }
    if let Some(next) = next_reevaluation {
        let what = if flow.reevaluation_overdue {
            "re-evaluation overdue since"
        } else {
            "next re-evaluation"
        };
        message.push_str(&format!("; {what} {next} (CAT-9)"));
    }
    let published_at = published.or_else(|| {
        (review == ItemReview::Approved)
            .then_some(decided_at)
            .flatten()
            .map(Time)
    });
    let status = ItemStatus {
        identifier: id.to_owned(),
        review,
        published_at,
        next_reevaluation: next_reevaluation.map(Time),
        message: Some(message),
        spec_digest: Some(digest),
    };
    (status, flow)
}

/// When an approved conditional or not-shared item is re-evaluated (CAT-9: XJ19–20, NM22):
/// the regulation's period after the authority's last approval. An update that was only filed
/// keeps the date of the approval before it.
fn reevaluation(
    item: &CatalogItem,
    review: ItemReview,
    decided_at: Option<Timestamp>,
    filed: bool,
    old: Option<&ItemStatus>,
    facts: &CatalogFacts<'_>,
) -> Option<Timestamp> {
    if review != ItemReview::Approved || item.share_type == ShareType::Unconditional {
        return None;
    }
    let kept = old.and_then(|s| s.next_reevaluation.as_ref()).map(|t| t.0);
    if filed && kept.is_some() {
        return kept;
    }
    let tz = facts.regulation.calendar.time_zone().clone();
    let days = Span::new()
        .try_days(i64::from(facts.regulation.reevaluation_days))
        .ok()?;
    decided_at?
        .to_zoned(tz)
        .checked_add(days)
        .ok()
        .map(|z| z.timestamp())
}
