//! The review workflows of catalog items (CAT-2, CAT-9) and share grants (SH-4, SH-7, SH-14,
//! SUP-2), as pure functions of the facts a controller gathers.
//!
//! A controller fetches the object, the `Review`s about it, the `Regulation` in force and the
//! time, calls [`grant::evaluate`] or [`catalog::evaluate`], writes the returned status, emits
//! the returned [`Event`]s and requeues at the returned wake-up time. Reviews are immutable and
//! creation timestamps fixed, so the result is a function of those facts; the previous status
//! is read only for what cannot be recomputed — when an edit was seen, when the checks ran, the
//! approved terms, a decision already acted on, and `breached` flags, which stay set. Events
//! are the difference between the previous status and the new one, so evaluating again (after
//! a restart, or on a second replica's turn) gives the same status and no event twice.

pub mod catalog;
mod deadline;
pub mod exemption;
pub mod grant;

use std::cmp::Ordering;

use jiff::Timestamp;
use kube::ResourceExt;

pub use self::deadline::step_deadline;
use crate::{
    calendar::WorkCalendar,
    presets::{Preset, Step, effective_working_days},
    rules::{Problem, regulation},
    v1alpha1::{RegulationSpec, Review, ReviewSpec},
};

/// Condition type: a workflow step was not done by its due time (SUP-2) (abnormal-true).
pub const DEADLINE_BREACHED: &str = "DeadlineBreached";
/// Condition type: the provider missed its deadline and the authority coordinates (SUP-2)
/// (abnormal-true).
pub const ESCALATED: &str = "Escalated";
/// Condition type on a `DataCatalog`: an item's periodic re-evaluation is overdue (CAT-9)
/// (abnormal-true).
pub const REEVALUATION_DUE: &str = "ReevaluationDue";

/// Reason: a pending step is past its due time.
pub const OVERDUE: &str = "Overdue";
/// Reason: a step was done, but after its due time.
pub const COMPLETED_LATE: &str = "CompletedLate";
/// Reason: every step so far was done on time.
pub const ON_TIME: &str = "OnTime";
/// Reason: the provider's reply is overdue and the authority may decide (SUP-2).
pub const PROVIDER_OVERDUE: &str = "ProviderOverdue";
/// Reason (for `Escalated=False`, `ReevaluationDue=False`): nothing to escalate or re-evaluate.
pub const NOT_NEEDED: &str = "NotNeeded";

/// `waitingOn` of a grant whose provider missed its deadline (SUP-2).
pub const WAITING_ON_ESCALATED: &str = "authority (provider overdue)";

/// The re-evaluation period of conditional and not-shared items (CAT-9) when the `Regulation`
/// sets none: no text gives a number, and once a year matches the annual duties of SUP-4.
pub const DEFAULT_REEVALUATION_DAYS: u32 = 365;

/// The `Regulation` in force, as the workflows need it.
#[derive(Clone, Debug)]
pub struct RegulationFacts {
    /// The preset whose deadline table applies.
    pub preset: Preset,
    /// Per-step working days replacing the preset's (the last entry for a step wins).
    pub overrides: Vec<(Step, u32)>,
    /// The work calendar deadlines are counted on.
    pub calendar: WorkCalendar,
    /// The authority's namespace: its Reviews decide catalog items, suspend grants and
    /// coordinate overdue ones.
    pub authority_namespace: String,
    /// Calendar days from an item's approval to its re-evaluation (CAT-9).
    pub reevaluation_days: u32,
}

impl RegulationFacts {
    /// `preset` on `calendar`, without overrides, with the default authority namespace
    /// (`gongshu-system`) and re-evaluation period.
    pub fn new(preset: Preset, calendar: WorkCalendar) -> Self {
        Self {
            preset,
            overrides: Vec::new(),
            calendar,
            authority_namespace: "gongshu-system".to_owned(),
            reevaluation_days: DEFAULT_REEVALUATION_DAYS,
        }
    }

    /// The facts of a `Regulation`'s spec, or the problems that keep its calendar from being
    /// built (see [`regulation::check`]).
    pub fn from_spec(spec: &RegulationSpec) -> Result<Self, Vec<Problem>> {
        let calendar = regulation::check(spec)?;
        let overrides = spec
            .deadlines
            .iter()
            .map(|o| (o.step, u32::try_from(o.working_days).unwrap_or(0)))
            .collect();
        Ok(Self {
            overrides,
            authority_namespace: spec.authority_namespace.clone(),
            ..Self::new(spec.preset, calendar)
        })
    }

    /// The working days `step` gets after overrides, if any.
    pub fn working_days(&self, step: Step) -> Option<u32> {
        effective_working_days(self.preset, step, &self.overrides)
    }

    /// Whether an override numbers `step`.
    pub fn is_overridden(&self, step: Step) -> bool {
        self.overrides.iter().any(|&(s, _)| s == step)
    }
}

/// Whether a refusal under `preset` must cite a legal basis besides its reasons: NM23 wants
/// "reasons and a legal basis (法律、法规依据)", XJ21 "reasons and a basis (依据)", YN29 a basis
/// (law, administrative regulation or central policy). HB15 asks for reasons only, PJ18 for
/// written reasons only.
pub fn requires_legal_basis(preset: Preset) -> bool {
    matches!(
        preset,
        Preset::Xinjiang | Preset::InnerMongolia | Preset::Yunnan
    )
}

/// The article that sets how a refusal under `preset` is given (SH-4).
pub fn refusal_article(preset: Preset) -> &'static str {
    match preset {
        Preset::Xinjiang => "XJ21",
        Preset::InnerMongolia => "NM23",
        Preset::Yunnan => "YN29",
        Preset::Hebei => "HB15",
        Preset::Panjin => "PJ18",
    }
}

/// A `Review`, as the workflows need it.
#[derive(Clone, Debug, PartialEq)]
pub struct ReviewFacts {
    /// The reviewer's namespace: who decided (DESIGN.md "Tenancy").
    pub namespace: String,
    /// The Review's name.
    pub name: String,
    /// Its `metadata.creationTimestamp`: when the decision was made (whole seconds).
    pub created: Timestamp,
    /// When the operator first saw it (`status.receivedAt`), if it has yet: orders decisions
    /// made within the same second.
    pub received: Option<Timestamp>,
    /// The decision.
    pub spec: ReviewSpec,
}

impl ReviewFacts {
    /// The facts of a stored `Review`; `None` for one without namespace or creation timestamp
    /// (not yet created).
    pub fn from_review(review: &Review) -> Option<Self> {
        Some(Self {
            namespace: review.namespace()?,
            name: review.name_any(),
            created: review.metadata.creation_timestamp.as_ref()?.0,
            received: review
                .status
                .as_ref()
                .and_then(|s| s.received_at.as_ref())
                .map(|t| t.0),
            spec: review.spec.clone(),
        })
    }

    /// `<namespace>/<name>`, as statuses name a Review.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The decision as the subject's status records it: made by `actor` (`provider`,
    /// `authority`), about `generation`.
    pub fn decision(&self, actor: &str, generation: Option<i64>) -> crate::v1alpha1::Decision {
        use crate::v1alpha1::ReviewDecision::{
            Approve, Deny, RequestChanges, Resume, Revoke, Suspend,
        };
        let non_blank = |s: &str| Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_owned);
        let outcome = match self.spec.decision {
            Approve => "approve",
            Deny => "deny",
            RequestChanges => "requestChanges",
            Revoke => "revoke",
            Suspend => "suspend",
            Resume => "resume",
        };
        crate::v1alpha1::Decision {
            outcome: outcome.to_owned(),
            reason: non_blank(&self.spec.reason),
            by: self.reference(),
            at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(self.created),
            actor: Some(actor.to_owned()),
            generation,
            legal_basis: self.spec.legal_basis.as_deref().and_then(non_blank),
        }
    }

    /// Whether the Review gives a non-blank reason.
    fn has_reason(&self) -> bool {
        !self.spec.reason.trim().is_empty()
    }

    /// Whether the Review gives a non-blank legal basis.
    fn has_legal_basis(&self) -> bool {
        self.spec
            .legal_basis
            .as_deref()
            .is_some_and(|b| !b.trim().is_empty())
    }
}

/// Reviews in the order they were made: creation time, then namespace and name, so that two
/// Reviews created in the same second are always taken in the same order.
fn chronological(reviews: &[ReviewFacts]) -> Vec<&ReviewFacts> {
    let mut sorted: Vec<&ReviewFacts> = reviews.iter().collect();
    sorted.sort_by(|a, b| by_time(a, b));
    sorted
}

/// Oldest first. Within one second (`creationTimestamp` has whole seconds) by when the operator
/// first saw each Review, one it has not seen yet being the newest; by name only when that
/// still ties.
fn by_time(a: &ReviewFacts, b: &ReviewFacts) -> Ordering {
    let key = |r: &ReviewFacts| r.received.unwrap_or(Timestamp::MAX);
    (a.created, key(a), &a.namespace, &a.name).cmp(&(b.created, key(b), &b.namespace, &b.name))
}

/// Whether an Event is routine or calls for attention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// A routine transition.
    Normal,
    /// Something someone should look at: a breach, an escalation, a refusal, an ignored Review.
    Warning,
}

/// What an evaluation gives the controller: the status to write, when to evaluate again, and
/// the Events for what changed since the previous status.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation<S> {
    /// The new status.
    pub status: S,
    /// When to evaluate again: the earliest future due time (or expiry, or re-evaluation
    /// date), so that breaches are recorded on time; `None` when nothing is pending.
    pub next_wakeup: Option<Timestamp>,
    /// Events for what changed since the previous status.
    pub events: Vec<Event>,
}

/// A Kubernetes Event to emit about the evaluated object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Normal or Warning.
    pub type_: EventType,
    /// CamelCase reason, e.g. `DeadlineBreached`.
    pub reason: &'static str,
    /// What the operator did, e.g. `Review`, `Check`, `Expire`.
    pub action: &'static str,
    /// Human-readable note.
    pub note: String,
}

impl Event {
    /// A Normal Event.
    pub fn normal(reason: &'static str, action: &'static str, note: impl Into<String>) -> Self {
        Self {
            type_: EventType::Normal,
            reason,
            action,
            note: note.into(),
        }
    }

    /// A Warning Event.
    pub fn warning(reason: &'static str, action: &'static str, note: impl Into<String>) -> Self {
        Self {
            type_: EventType::Warning,
            reason,
            action,
            note: note.into(),
        }
    }
}

/// Event reason: a deadline passed with its step undone (SUP-2).
pub const EVENT_DEADLINE_BREACHED: &str = "DeadlineBreached";
/// Event reason: a grant was escalated to the authority (SUP-2).
pub const EVENT_ESCALATED: &str = "Escalated";
/// Event reason: a Review was not applied; the note says why.
pub const EVENT_REVIEW_IGNORED: &str = "ReviewIgnored";
/// Event action: a deadline was checked against the clock.
pub const ACTION_DEADLINE: &str = "Deadline";
/// Event action: a Review was read.
pub const ACTION_REVIEW: &str = "Review";

/// The `<ns>/<name>` of the reviews newly ignored between two lists, as Warning events.
fn ignored_review_events(
    before: &[crate::v1alpha1::IgnoredReview],
    after: &[crate::v1alpha1::IgnoredReview],
) -> Vec<Event> {
    after
        .iter()
        .filter(|i| !before.contains(i))
        .map(|i| {
            Event::warning(
                EVENT_REVIEW_IGNORED,
                ACTION_REVIEW,
                format!("Review {} not applied: {}", i.review, i.reason),
            )
        })
        .collect()
}

/// How many ignored Reviews a status lists; the oldest are dropped beyond it.
const MAX_IGNORED_REVIEWS: usize = 16;

fn cap_ignored(ignored: &mut Vec<crate::v1alpha1::IgnoredReview>) {
    if ignored.len() > MAX_IGNORED_REVIEWS {
        let excess = ignored.len() - MAX_IGNORED_REVIEWS;
        ignored.drain(..excess);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_need_a_legal_basis_in_xinjiang_inner_mongolia_and_yunnan_xj21_nm23_yn29() {
        let needs: Vec<_> = Preset::all()
            .into_iter()
            .filter(|&p| requires_legal_basis(p))
            .map(refusal_article)
            .collect();
        assert_eq!(needs, ["XJ21", "NM23", "YN29"]);
        assert!(!requires_legal_basis(Preset::Hebei), "HB15: reasons only");
        assert!(
            !requires_legal_basis(Preset::Panjin),
            "PJ18: written reasons"
        );
    }
}
