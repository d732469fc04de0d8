//! Working-day deadlines of workflow steps (SH-4, CAT-2) and the ledger of them a status
//! keeps: each step with when it started, was due, was done, and whether it was late (SUP-2).

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::{COMPLETED_LATE, DEADLINE_BREACHED, ON_TIME, OVERDUE, RegulationFacts};
use crate::{
    presets::{self, Actor, Preset, Step, StepRule},
    status::condition,
    v1alpha1::DeadlineStatus,
};

/// How many steps a ledger keeps; the oldest completed ones are dropped beyond it. Edits are
/// rare, so this only bounds a status that someone edits in a loop.
const MAX_ENTRIES: usize = 32;

/// The deadline of `step` under the regulation, started by `trigger`; `None` where the preset
/// has no such step and no override numbers it.
///
/// The due time is [`WorkCalendar::deadline`](crate::calendar::WorkCalendar::deadline) of the
/// step's working days. Steps the text sets no number for (`Direct`, `Unbounded`) get no due
/// time; neither does a step whose due time the calendar cannot compute, which the note says.
pub fn step_deadline(
    regulation: &RegulationFacts,
    step: Step,
    trigger: Timestamp,
) -> Option<DeadlineStatus> {
    let rule = presets::rule(regulation.preset, step);
    let overridden = regulation.is_overridden(step);
    if !rule.applies() && !overridden {
        return None;
    }
    let mut articles: Vec<String> = rule.articles().iter().map(|&a| a.to_owned()).collect();
    if articles.is_empty() {
        articles.extend(direct_article(regulation.preset, step).map(str::to_owned));
    }
    let mut note = match rule {
        StepRule::Direct if !overridden => Some("direct: no waiting".to_owned()),
        StepRule::Unbounded { .. } if !overridden => {
            Some("the text sets no number of working days".to_owned())
        }
        _ => None,
    };
    let due = match regulation.working_days(step) {
        Some(days) => {
            if overridden {
                note = Some(format!(
                    "{days} working days set by the Regulation's override"
                ));
            }
            match regulation.calendar.deadline(trigger, days) {
                Ok(due) => Some(Time(due)),
                Err(e) => {
                    note = Some(format!("the due time cannot be computed: {e}"));
                    None
                }
            }
        }
        None => None,
    };
    Some(DeadlineStatus {
        step,
        actor: actor_name(rule.actor().unwrap_or_else(|| default_actor(step))).to_owned(),
        started: Time(trigger),
        due,
        completed: None,
        breached: false,
        articles,
        generation: None,
        note,
    })
}

/// The article behind a step the preset makes direct (presets.rs comments them).
fn direct_article(preset: Preset, step: Step) -> Option<&'static str> {
    match (step, preset) {
        (Step::UnconditionalProvision, Preset::InnerMongolia) => Some("NM23"),
        (Step::UnconditionalProvision, Preset::Panjin) => Some("PJ17"),
        _ => None,
    }
}

/// Who acts on a step an override numbers although the preset has no such step.
fn default_actor(step: Step) -> Actor {
    match step {
        Step::CatalogChangesFix | Step::CatalogUpdate => Actor::Department,
        Step::ProviderReply
        | Step::ProvisionAfterApproval
        | Step::UncatalogedReply
        | Step::UncatalogedProvision
        | Step::ObjectionAnswer
        | Step::BackflowReply
        | Step::PublicCorrection => Actor::Provider,
        Step::CatalogUpdateReview
        | Step::UnconditionalProvision
        | Step::ComplianceReview
        | Step::ObjectionForward => Actor::Authority,
    }
}

/// The name of an actor in a status (`DeadlineStatus.actor`).
pub(crate) fn actor_name(actor: Actor) -> &'static str {
    match actor {
        Actor::Authority => "authority",
        Actor::Provider => "provider",
        Actor::Consumer => "consumer",
        Actor::Department => "department",
    }
}

/// The entry of `step` for `generation`.
pub(crate) fn entry(
    ledger: &[DeadlineStatus],
    step: Step,
    generation: i64,
) -> Option<&DeadlineStatus> {
    ledger
        .iter()
        .find(|d| d.step == step && d.generation == Some(generation))
}

/// Adds `deadline` for `generation` unless the ledger has that step for it already (a step
/// opens once; evaluating again must not restart its clock).
pub(crate) fn open(
    ledger: &mut Vec<DeadlineStatus>,
    mut deadline: DeadlineStatus,
    generation: i64,
) {
    if entry(ledger, deadline.step, generation).is_none() {
        deadline.generation = Some(generation);
        ledger.push(deadline);
    }
}

/// Records `step` of `generation` as done at `at`, if it is pending; `note` replaces the note.
pub(crate) fn complete(
    ledger: &mut [DeadlineStatus],
    step: Step,
    generation: i64,
    at: Timestamp,
    note: Option<String>,
) {
    if let Some(d) = ledger
        .iter_mut()
        .find(|d| d.step == step && d.generation == Some(generation) && d.completed.is_none())
    {
        d.completed = Some(Time(at));
        if note.is_some() {
            d.note = note;
        }
    }
}

/// Closes every pending step that `which` selects at `at`, noting why (an edit superseded it,
/// the object reached a final state).
pub(crate) fn close_pending(
    ledger: &mut [DeadlineStatus],
    which: impl Fn(&DeadlineStatus) -> bool,
    at: Timestamp,
    note: &str,
) {
    for d in ledger
        .iter_mut()
        .filter(|d| d.completed.is_none() && which(d))
    {
        d.completed = Some(Time(at));
        d.note = Some(note.to_owned());
    }
}

/// Whether the step was (or is) late at `now`: done at or after its due time, or still pending
/// then.
fn is_late(d: &DeadlineStatus, now: Timestamp) -> bool {
    d.due
        .as_ref()
        .is_some_and(|due| d.completed.as_ref().map_or(now, |c| c.0) >= due.0)
}

/// Sets `breached` on every late step. A breach is never cleared (SUP-2: the lateness itself
/// is the violation), so a late reply does not undo it.
pub(crate) fn mark_breaches(ledger: &mut [DeadlineStatus], now: Timestamp) {
    for d in ledger.iter_mut() {
        d.breached |= is_late(d, now);
    }
}

/// Drops the oldest completed steps beyond [`MAX_ENTRIES`].
pub(crate) fn trim(ledger: &mut Vec<DeadlineStatus>) {
    while ledger.len() > MAX_ENTRIES {
        match ledger.iter().position(|d| d.completed.is_some()) {
            Some(i) => {
                ledger.remove(i);
            }
            None => break,
        }
    }
}

/// The steps breached in `after` that were not breached (or not there) in `before`.
pub(crate) fn new_breaches<'a>(
    before: &[DeadlineStatus],
    after: &'a [DeadlineStatus],
) -> Vec<&'a DeadlineStatus> {
    after
        .iter()
        .filter(|d| d.breached)
        .filter(|d| {
            !before
                .iter()
                .any(|b| b.step == d.step && b.generation == d.generation && b.breached)
        })
        .collect()
}

/// The earliest due time after `now` of a pending step: when to look again so that a breach
/// is recorded on time.
pub(crate) fn next_due(ledger: &[DeadlineStatus], now: Timestamp) -> Option<Timestamp> {
    ledger
        .iter()
        .filter(|d| d.completed.is_none())
        .filter_map(|d| d.due.as_ref().map(|t| t.0))
        .filter(|&due| due > now)
        .min()
}

/// One line about a breached step, for events and conditions.
pub(crate) fn describe_breach(d: &DeadlineStatus) -> String {
    let due = d.due.as_ref().map(|t| t.0.to_string()).unwrap_or_default();
    let articles = if d.articles.is_empty() {
        String::new()
    } else {
        format!(" ({})", d.articles.join(", "))
    };
    match &d.completed {
        Some(done) => format!(
            "{} by the {} was due {due}{articles} and was done late at {}",
            d.step, d.actor, done.0
        ),
        None => format!(
            "{} by the {} was due {due}{articles} and is overdue",
            d.step, d.actor
        ),
    }
}

/// The `DeadlineBreached` condition of a ledger (abnormal-true): `True` with reason `Overdue`
/// while a breached step is pending, `CompletedLate` once every breached step is done, else
/// `False` with reason `OnTime`.
pub(crate) fn breach_condition(
    ledgers: &[&[DeadlineStatus]],
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let breached: Vec<&DeadlineStatus> = ledgers
        .iter()
        .flat_map(|l| l.iter())
        .filter(|d| d.breached)
        .collect();
    if breached.is_empty() {
        return condition(
            DEADLINE_BREACHED,
            false,
            ON_TIME,
            "every deadline so far was met",
            generation,
            now,
        );
    }
    let reason = if breached.iter().any(|d| d.completed.is_none()) {
        OVERDUE
    } else {
        COMPLETED_LATE
    };
    let shown: Vec<String> = breached
        .iter()
        .rev()
        .take(3)
        .map(|d| describe_breach(d))
        .collect();
    let mut message = format!("{} (SUP-2)", shown.join("; "));
    if breached.len() > 3 {
        message.push_str(&format!("; and {} more", breached.len() - 3));
    }
    condition(DEADLINE_BREACHED, true, reason, message, generation, now)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::calendar::calendar_2026_cn;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_step_the_preset_lacks_has_no_deadline_unless_overridden() {
        let mut regulation = RegulationFacts::new(Preset::InnerMongolia, calendar_2026_cn());
        let trigger = at("2026-03-02T02:00:00Z");
        assert_eq!(
            step_deadline(&regulation, Step::ComplianceReview, trigger),
            None
        );
        regulation.overrides.push((Step::ComplianceReview, 2));
        let d = step_deadline(&regulation, Step::ComplianceReview, trigger).unwrap();
        // Monday 2 March + 2 working days = Wednesday 4 March, 24:00 Shanghai.
        assert_eq!(d.due, Some(Time(at("2026-03-04T16:00:00Z"))));
        assert_eq!(d.actor, "authority");
        assert!(d.note.unwrap().contains("override"));
    }

    #[test]
    fn direct_provision_has_no_due_time_and_cites_its_article_nm23_pj17() {
        for (preset, article) in [(Preset::InnerMongolia, "NM23"), (Preset::Panjin, "PJ17")] {
            let regulation = RegulationFacts::new(preset, calendar_2026_cn());
            let d = step_deadline(
                &regulation,
                Step::UnconditionalProvision,
                at("2026-03-02T02:00:00Z"),
            )
            .unwrap();
            assert_eq!((d.due, d.articles), (None, vec![article.to_owned()]));
        }
    }

    #[test]
    fn a_breach_stays_recorded_after_the_step_is_done() {
        let regulation = RegulationFacts::new(Preset::Hebei, calendar_2026_cn());
        let mut ledger = Vec::new();
        let d =
            step_deadline(&regulation, Step::ProviderReply, at("2026-03-02T02:00:00Z")).unwrap();
        let due = d.due.clone().unwrap().0;
        open(&mut ledger, d, 1);
        mark_breaches(&mut ledger, due);
        assert!(ledger[0].breached);
        complete(
            &mut ledger,
            Step::ProviderReply,
            1,
            at("2026-03-02T03:00:00Z"),
            None,
        );
        mark_breaches(&mut ledger, due);
        assert!(ledger[0].breached, "SUP-2: a breach is never cleared");
    }
}
