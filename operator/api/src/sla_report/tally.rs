//! The counting behind [`compute`](super::compute): each grant's and catalog's status adds its
//! requests, decisions and deadline steps to the rows of the departments concerned.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use super::{
    AUTHORITY, CatalogRecord, Decisions, DepartmentReport, Figures, GrantRecord, ReportFacts,
    Scope, StepFigures,
};
use crate::{
    presets::Step,
    sla::department_of,
    v1alpha1::{DeadlineStatus, ItemReview, ShareGrantStatus},
    workflow::grant::OPERATOR,
};

/// Whether the workflow closed the step without its actor acting: an edit superseded it, or
/// the grant ended (`workflow::grant`, `workflow::catalog`), or the authority decided a returned
/// item without the changes. The notes are the workflow's; `tests/attribution.rs` runs the
/// workflow to keep this in step with them.
pub(super) fn closed_without_action(note: Option<&str>) -> bool {
    note.is_some_and(|n| {
        n.starts_with("superseded")
            || n.starts_with("closed:")
            || n == "decided without the changes"
    })
}

/// What a decision decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Approved,
    Denied,
    ChangesRequested,
}

/// The report being counted.
pub(super) struct Tally<'a> {
    facts: &'a ReportFacts<'a>,
    from: Timestamp,
    until: Timestamp,
    rows: BTreeMap<String, Row>,
}

#[derive(Default)]
struct Row {
    namespaces: BTreeSet<String>,
    requests_received: u32,
    items_submitted: u32,
    decisions: Decisions,
    steps: BTreeMap<Step, Figures>,
}

impl<'a> Tally<'a> {
    pub(super) fn new(facts: &'a ReportFacts<'a>, from: Timestamp, until: Timestamp) -> Self {
        let mut rows: BTreeMap<String, Row> = BTreeMap::new();
        rows.insert(AUTHORITY.to_owned(), Row::default());
        for (namespace, code) in facts.departments {
            if namespace != facts.authority_namespace && facts.listed(code) {
                let row = rows.entry(code.clone()).or_default();
                row.namespaces.insert(namespace.clone());
            }
        }
        Self {
            facts,
            from,
            until,
            rows,
        }
    }

    fn in_month(&self, t: Timestamp) -> bool {
        self.from <= t && t < self.until
    }

    /// The row of `department`, if the report lists it.
    fn row(&mut self, department: &str) -> Option<&mut Row> {
        if department != AUTHORITY && !self.facts.listed(department) {
            return None;
        }
        Some(self.rows.entry(department.to_owned()).or_default())
    }

    /// The department of `namespace`; the namespace itself, marked, if it has none.
    fn department_of(&self, namespace: &str) -> String {
        if namespace == self.facts.authority_namespace {
            return AUTHORITY.to_owned();
        }
        self.facts
            .departments
            .get(namespace)
            .cloned()
            .unwrap_or_else(|| format!("namespace/{namespace}"))
    }

    pub(super) fn grant(&mut self, grant: &GrantRecord) {
        let status = &grant.status;
        let consumer = self.department_of(&grant.namespace);
        let provider = status.provider.as_ref().map(|p| p.department.clone());
        if !self.facts.listed(&consumer)
            && !provider.as_deref().is_some_and(|p| self.facts.listed(p))
        {
            return;
        }
        let received = requests(status)
            .into_iter()
            .filter(|&t| self.in_month(t))
            .count();
        if let Some(row) = self.row(&consumer) {
            row.requests_received += u32::try_from(received).unwrap_or(u32::MAX);
        }
        for d in &status.deadlines {
            // The same attribution as the SLA metrics (`crate::sla`).
            let actor = department_of(&d.actor, &consumer, provider.as_deref());
            self.step(&actor, d);
        }
        self.grant_decisions(status);
    }

    /// The decisions a grant's status records: the approval in force and the last decision,
    /// and a return for changes that stopped the provider's clock before the current request
    /// was decided (its reply step is completed then, SH-4).
    fn grant_decisions(&mut self, status: &ShareGrantStatus) {
        let mut decided: Vec<Timestamp> = Vec::new();
        if let Some(a) = &status.approved {
            self.decision(&a.by, a.approved_at.0, Outcome::Approved);
            decided.push(a.approved_at.0);
        }
        if let Some(d) = &status.decision {
            let outcome = match d.outcome.as_str() {
                "deny" => Some(Outcome::Denied),
                "requestChanges" => Some(Outcome::ChangesRequested),
                // The approval is counted from the approved terms, which outlive a revocation.
                "approve" if status.approved.is_none() => Some(Outcome::Approved),
                _ => None,
            };
            if let Some(outcome) = outcome {
                self.decision(&d.by, d.at.0, outcome);
            }
            decided.push(d.at.0);
        }
        let current = status.request.as_ref().map(|r| r.generation);
        let returned = status.deadlines.iter().find(|d| {
            d.step == Step::ProviderReply
                && d.generation.is_some()
                && d.generation == current
                && !closed_without_action(d.note.as_deref())
                && d.completed
                    .as_ref()
                    .is_some_and(|c| !decided.contains(&c.0))
        });
        if let Some(d) = returned
            && let Some(done) = &d.completed
        {
            let by = if d.note.as_deref().is_some_and(|n| n.contains("authority")) {
                AUTHORITY.to_owned()
            } else {
                status
                    .provider
                    .as_ref()
                    .map_or_else(String::new, |p| format!("{}/", p.namespace))
            };
            self.decision(&by, done.0, Outcome::ChangesRequested);
        }
    }

    /// Counts a decision made at `at` by `by`: `<namespace>/<name>` of the Review, the
    /// provider's `<namespace>/`, [`AUTHORITY`], or `operator` for the platform's own.
    fn decision(&mut self, by: &str, at: Timestamp, outcome: Outcome) {
        if !self.in_month(at) {
            return;
        }
        let (department, automatic) = match by {
            OPERATOR => (AUTHORITY.to_owned(), true),
            AUTHORITY => (AUTHORITY.to_owned(), false),
            _ => match by.split_once('/') {
                Some((namespace, _)) if !namespace.is_empty() => {
                    (self.department_of(namespace), false)
                }
                _ => return,
            },
        };
        if let Some(row) = self.row(&department) {
            let d = &mut row.decisions;
            match (automatic, outcome) {
                (true, _) => d.automatic += 1,
                (false, Outcome::Approved) => d.approved += 1,
                (false, Outcome::Denied) => d.denied += 1,
                (false, Outcome::ChangesRequested) => d.changes_requested += 1,
            }
        }
    }

    pub(super) fn catalog(&mut self, catalog: &CatalogRecord) {
        let department = self.department_of(&catalog.namespace);
        if !self.facts.listed(&department) {
            return;
        }
        for flow in &catalog.status.workflow {
            if self.in_month(flow.submitted.0)
                && let Some(row) = self.row(&department)
            {
                row.items_submitted += 1;
            }
            let review = catalog
                .status
                .items
                .iter()
                .find(|i| i.identifier == flow.identifier)
                .map(|i| i.review);
            let outcome = match review {
                Some(ItemReview::Approved) => Some(Outcome::Approved),
                Some(ItemReview::ChangesRequested) => Some(Outcome::ChangesRequested),
                Some(ItemReview::Denied) => Some(Outcome::Denied),
                Some(ItemReview::Pending) | None => None,
            };
            if let (Some(by), Some(at), Some(outcome)) =
                (&flow.decided_by, &flow.decided_at, outcome)
            {
                self.decision(by, at.0, outcome);
            }
            for d in &flow.deadlines {
                let actor = department_of(&d.actor, &department, None);
                self.step(&actor, d);
            }
        }
    }

    /// Counts deadline step `d` for `department`.
    fn step(&mut self, department: &str, d: &DeadlineStatus) {
        let Some(due) = d.due.as_ref().map(|t| t.0) else {
            // No due time (direct, or no number in the text): nothing to be on time for.
            return;
        };
        let now = self.facts.now;
        let completed = d.completed.as_ref().map(|t| t.0);
        let late = d.breached || completed.unwrap_or(now) >= due;
        let mut f = Figures::default();
        if completed.is_some_and(|t| self.in_month(t)) {
            if closed_without_action(d.note.as_deref()) {
                f.closed = 1;
            } else if late {
                f.late = 1;
            } else {
                f.on_time = 1;
            }
        }
        if late && due <= now && self.in_month(due) {
            f.breaches = 1;
        }
        if completed.is_none() && due <= now {
            f.open_overdue = 1;
        }
        if !f.is_empty()
            && let Some(row) = self.row(department)
        {
            row.steps.entry(d.step).or_default().add(&f);
        }
    }

    pub(super) fn finish(self) -> Vec<DepartmentReport> {
        let mut out: Vec<DepartmentReport> = self
            .rows
            .into_iter()
            .map(|(department, row)| {
                let mut totals = Figures::default();
                let steps = row
                    .steps
                    .into_iter()
                    .map(|(step, figures)| {
                        totals.add(&figures);
                        StepFigures {
                            step,
                            figures: figures.rate(),
                        }
                    })
                    .collect();
                DepartmentReport {
                    department,
                    namespaces: row.namespaces.into_iter().collect(),
                    requests_received: row.requests_received,
                    items_submitted: row.items_submitted,
                    decisions: row.decisions,
                    totals: totals.rate(),
                    steps,
                }
            })
            .collect();
        // The authority first, then the departments by code.
        out.sort_by(|a, b| {
            (a.department != AUTHORITY, &a.department)
                .cmp(&(b.department != AUTHORITY, &b.department))
        });
        out
    }
}

impl ReportFacts<'_> {
    /// Whether the report lists `department`, and so counts what it takes part in: every
    /// department when all are listed, else the selected ones. The authority's row is always
    /// there, but in a selection counts only what it did on the selected departments' objects.
    fn listed(&self, department: &str) -> bool {
        match self.scope {
            Scope::All => true,
            Scope::Departments(codes) => codes.contains(department),
        }
    }
}

/// When each request of a grant was received: the request under review (or last decided), and
/// any earlier one an edit replaced whose steps the ledger still holds (the earliest start of
/// its steps is its receipt, SH-4).
fn requests(status: &ShareGrantStatus) -> Vec<Timestamp> {
    let mut received: BTreeMap<i64, Timestamp> = BTreeMap::new();
    for d in &status.deadlines {
        if let Some(g) = d.generation {
            let t = received.entry(g).or_insert(d.started.0);
            *t = (*t).min(d.started.0);
        }
    }
    if let Some(r) = &status.request {
        received.insert(r.generation, r.received.0);
    }
    received.into_values().collect()
}
