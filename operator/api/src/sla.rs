//! The SLA figures the operator exports at each scrape (SH-4, SUP-2; `docs/metrics.md`): per
//! department and step, the next due time of the pending steps, how many are overdue now and
//! how many fall due by the end of the next working day (the reminder NM23 allows, 提醒督办);
//! grants by phase; and each department's queue of subjects waiting on it. Pure: the operator
//! passes the statuses its caches hold, the work calendar and the time.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::{
    calendar::WorkCalendar,
    presets::Step,
    v1alpha1::{DataCatalogStatus, DeadlineStatus, GrantPhase, ShareGrantStatus},
};

/// The `department` label of steps the data authority must act on.
pub const AUTHORITY: &str = "authority";

/// A step that waits on a department.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingStep {
    /// The department that must act (a department code, or [`AUTHORITY`]).
    pub department: String,
    /// The step.
    pub step: Step,
    /// The subject waiting (`<kind>/<namespace>/<name>[/<item>]`), counted once per queue.
    pub subject: String,
    /// When the step started.
    pub started: Timestamp,
    /// When it is due, where the regulation sets a number.
    pub due: Option<Timestamp>,
}

/// The department a deadline entry's actor names: the provider's, the consumer's (the grant's
/// namespace), the catalog's own department, or the authority.
pub fn department_of(actor: &str, own: &str, provider: Option<&str>) -> String {
    match actor {
        "provider" => provider.unwrap_or("unknown").to_owned(),
        "consumer" | "department" => own.to_owned(),
        _ => AUTHORITY.to_owned(),
    }
}

fn pending<'a>(
    entries: &'a [DeadlineStatus],
    own: &'a str,
    provider: Option<&'a str>,
    subject: String,
) -> impl Iterator<Item = PendingStep> + 'a {
    entries
        .iter()
        .filter(|d| d.completed.is_none())
        .map(move |d| PendingStep {
            department: department_of(&d.actor, own, provider),
            step: d.step,
            subject: subject.clone(),
            started: d.started.0,
            due: d.due.as_ref().map(|t| t.0),
        })
}

/// The pending steps of a grant in `namespace`/`name`, whose namespace belongs to `department`.
pub fn grant_steps(
    department: &str,
    namespace: &str,
    name: &str,
    status: &ShareGrantStatus,
) -> Vec<PendingStep> {
    let provider = status.provider.as_ref().map(|p| p.department.as_str());
    pending(
        &status.deadlines,
        department,
        provider,
        format!("ShareGrant/{namespace}/{name}"),
    )
    .collect()
}

/// The pending steps of a catalog's items, the catalog's namespace belonging to `department`.
pub fn catalog_steps(
    department: &str,
    namespace: &str,
    name: &str,
    status: &DataCatalogStatus,
) -> Vec<PendingStep> {
    status
        .workflow
        .iter()
        .flat_map(|item| {
            let subject = format!("DataCatalog/{namespace}/{name}/{}", item.identifier);
            pending(&item.deadlines, department, None, subject).collect::<Vec<_>>()
        })
        .collect()
}

/// The deadline figures of one department and step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadlineFigures {
    /// The earliest due time among the pending steps.
    pub next_due: Timestamp,
    /// How many are past their due time.
    pub breached: u32,
    /// How many are not overdue but due by the end of the next working day.
    pub due_within_one_working_day: u32,
}

/// A department's queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queue {
    /// Subjects waiting on it.
    pub depth: u32,
    /// When the step of the oldest one started.
    pub oldest: Timestamp,
}

/// Everything exported at one scrape.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Gauges {
    /// By (department, step), for steps with a due time.
    pub deadlines: BTreeMap<(String, Step), DeadlineFigures>,
    /// Grants by (consumer department, phase).
    pub grants: BTreeMap<(String, GrantPhase), u32>,
    /// Queues by department.
    pub queues: BTreeMap<String, Queue>,
}

/// The figures of `steps` and `phases` (one per grant: consumer department and phase) at `now`.
pub fn gauges(
    steps: &[PendingStep],
    phases: impl IntoIterator<Item = (String, GrantPhase)>,
    calendar: &WorkCalendar,
    now: Timestamp,
) -> Gauges {
    let soon = calendar.deadline(now, 1).unwrap_or(now);
    let mut out = Gauges::default();
    let mut subjects: BTreeMap<&str, BTreeMap<&str, Timestamp>> = BTreeMap::new();
    for s in steps {
        let oldest = subjects
            .entry(&s.department)
            .or_default()
            .entry(&s.subject)
            .or_insert(s.started);
        *oldest = (*oldest).min(s.started);
        let Some(due) = s.due else { continue };
        let figures = out
            .deadlines
            .entry((s.department.clone(), s.step))
            .or_insert(DeadlineFigures {
                next_due: due,
                breached: 0,
                due_within_one_working_day: 0,
            });
        figures.next_due = figures.next_due.min(due);
        if due <= now {
            figures.breached += 1;
        } else if due <= soon {
            figures.due_within_one_working_day += 1;
        }
    }
    for (department, waiting) in subjects {
        let oldest = waiting.values().min().copied().unwrap_or(now);
        out.queues.insert(
            department.to_owned(),
            Queue {
                depth: u32::try_from(waiting.len()).unwrap_or(u32::MAX),
                oldest,
            },
        );
    }
    for key in phases {
        *out.grants.entry(key).or_default() += 1;
    }
    out
}

/// The steps of `after` that are breached but were not in `before`: each is counted once in
/// `gongshu_deadline_breaches_total`, when the operator first records it.
pub fn newly_breached<'a>(
    before: &[DeadlineStatus],
    after: &'a [DeadlineStatus],
) -> impl Iterator<Item = &'a DeadlineStatus> {
    let was: Vec<(Step, Option<i64>, Timestamp)> = before
        .iter()
        .filter(|d| d.breached)
        .map(|d| (d.step, d.generation, d.started.0))
        .collect();
    after
        .iter()
        .filter(move |d| d.breached && !was.contains(&(d.step, d.generation, d.started.0)))
}

#[cfg(test)]
mod tests;
