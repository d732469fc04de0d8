//! The monthly SLA report per department (`gongshu report`): what the authority's statistics
//! on sharing need (SUP-1: PJ34 counts the data each body provides, its timeliness and its use)
//! and where deadlines were missed, each miss being itself a violation (SUP-2: XJ44(4), NM49,
//! NM51).
//!
//! A pure function of plain facts: the statuses of grants and catalogs as the operator wrote
//! them, the department of each namespace, a month and its time zone, and the time of the
//! report.
//! Each figure of a month counts what happened in it, in the regulation's time zone:
//!
//! - **requests received**: the grant requests (a grant's first spec, or an edit that started a
//!   new request) received in the month, counted for the consumer;
//! - **decisions**: approvals, denials and returns for changes made in the month that the
//!   statuses record (a grant's approved terms and last decision, the return that stopped the
//!   provider's clock on the current request; a catalog item's decision), counted for the
//!   reviewer's department or the authority. Only applied decisions are in a status, so a
//!   `Review` the workflow set aside (made too early, by the wrong namespace, without reasons)
//!   is never counted. The platform's own decisions (unconditional approvals, SH-1; denials by
//!   failed checks) are `automatic`, counted for the authority whose platform it is;
//! - **steps completed**, on time or late: deadline steps (`status.deadlines[]` of grants, the
//!   per-item workflow of catalogs) with a due time that were completed in the month, counted
//!   for the department that had to act (`actor`: the provider, the consumer, the catalog's
//!   department, or the authority). A step the workflow closed without the actor acting (an
//!   edit superseded it, the grant ended) is `closed`, neither on time nor late;
//! - **breaches**: steps whose due time passed in the month undone (done late, or still
//!   pending), counted in the month they fell due, so that a step is a breach once;
//! - **open overdue**: steps pending past their due time at the time of the report;
//! - **items submitted**: catalog item versions the department submitted in the month.
//!
//! A step the provider missed stays the provider's breach when the authority then decides in
//! its place (coordination, SUP-2); the authority's Review counts as the authority's decision.
//!
//! A status keeps what the workflow needs, not a history: the decisions on a request that an
//! edit later replaced count only while the status still records them (the approved terms stay
//! until a new approval), several returns for changes of one request count once, and a ledger
//! keeps its last 32 steps.

mod month;
mod tally;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use jiff::{Timestamp, tz::TimeZone};
use kube::ResourceExt;
use serde::Serialize;

pub use self::month::{Month, MonthError};
/// The row of the data authority (its namespace is not a department), as in the metrics.
pub use crate::sla::AUTHORITY;
use crate::{
    presets::Step,
    v1alpha1::{DataCatalog, DataCatalogStatus, ShareGrant, ShareGrantStatus},
};

/// The articles a report rests on, for its header.
pub const BASIS: [Basis; 2] = [
    Basis {
        rule: "SUP-1",
        articles: "PJ34",
        text: "statistics on the data each body provides, its timeliness and its use",
    },
    Basis {
        rule: "SUP-2",
        articles: "XJ44(4), NM49, NM51",
        text: "failing to handle sharing and opening applications in time is itself a violation",
    },
];

/// An article a report rests on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Basis {
    /// The REQUIREMENTS.md rule id.
    pub rule: &'static str,
    /// The articles.
    pub articles: &'static str,
    /// What they ask.
    pub text: &'static str,
}

/// A grant as the report reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct GrantRecord {
    /// Its namespace: the consumer's.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its status.
    pub status: ShareGrantStatus,
}

impl GrantRecord {
    /// The record of a stored grant; `None` before the operator wrote a status.
    pub fn from_grant(grant: ShareGrant) -> Option<Self> {
        Some(Self {
            namespace: grant.namespace()?,
            name: grant.name_any(),
            status: grant.status?,
        })
    }
}

/// A catalog as the report reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct CatalogRecord {
    /// Its namespace: the department's.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its status.
    pub status: DataCatalogStatus,
}

impl CatalogRecord {
    /// The record of a stored catalog; `None` before the operator wrote a status.
    pub fn from_catalog(catalog: DataCatalog) -> Option<Self> {
        Some(Self {
            namespace: catalog.namespace()?,
            name: catalog.name_any(),
            status: catalog.status?,
        })
    }
}

/// Which departments a report lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every department: those with namespaces, and any other a figure is counted for.
    All,
    /// Only these department codes; the authority's row then counts only what it did on their
    /// grants and catalogs.
    Departments(BTreeSet<String>),
}

/// Everything a report is computed from.
#[derive(Clone, Copy, Debug)]
pub struct ReportFacts<'a> {
    /// The month reported.
    pub month: Month,
    /// The regulation's time zone: months start at its midnights.
    pub time_zone: &'a TimeZone,
    /// The time of the report: what is pending then and past due is open overdue.
    pub now: Timestamp,
    /// The authority's namespace: decisions by its Reviews are the authority's.
    pub authority_namespace: &'a str,
    /// The department code of every department namespace (`gongshu.io/department`).
    pub departments: &'a BTreeMap<String, String>,
    /// Which departments to list.
    pub scope: &'a Scope,
    /// The grants.
    pub grants: &'a [GrantRecord],
    /// The catalogs.
    pub catalogs: &'a [CatalogRecord],
}

/// Why no report can be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// The month's bounds cannot be computed.
    #[error(transparent)]
    Month(#[from] MonthError),
    /// The month starts after the time of the report.
    #[error("{month} has not begun yet in {time_zone}: report on this month or an earlier one")]
    NotBegun {
        /// The month.
        month: Month,
        /// The time zone.
        time_zone: String,
    },
}

/// The report.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The month.
    pub month: Month,
    /// The time zone the month is bounded in.
    pub time_zone: String,
    /// The month's first instant.
    pub from: Timestamp,
    /// The first instant after the month.
    pub until: Timestamp,
    /// When the report was made.
    pub generated_at: Timestamp,
    /// Whether the month is over (otherwise the figures run to `generatedAt`).
    pub complete: bool,
    /// The articles the report rests on.
    pub basis: Vec<Basis>,
    /// One entry per department, the authority first, then by code.
    pub departments: Vec<DepartmentReport>,
}

/// One department's figures for the month.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DepartmentReport {
    /// The department code, or [`AUTHORITY`].
    pub department: String,
    /// Its namespaces.
    pub namespaces: Vec<String>,
    /// Grant requests it made (as consumer) that were received in the month.
    pub requests_received: u32,
    /// Catalog item versions it submitted in the month.
    pub items_submitted: u32,
    /// Decisions it made in the month.
    pub decisions: Decisions,
    /// Its deadline steps, all steps together.
    pub totals: Figures,
    /// Its deadline steps, per step with anything to count, in the steps' order.
    pub steps: Vec<StepFigures>,
}

/// Decisions made in a month.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decisions {
    /// Approvals by Review.
    pub approved: u32,
    /// Denials by Review.
    pub denied: u32,
    /// Returns for changes by Review.
    pub changes_requested: u32,
    /// The platform's own decisions (counted for the authority): unconditional approvals
    /// (SH-1) and denials by failed checks.
    pub automatic: u32,
}

impl Decisions {
    /// Decisions by Review (the automatic ones apart).
    pub fn by_review(&self) -> u32 {
        self.approved + self.denied + self.changes_requested
    }
}

/// How a department did on its deadline steps in a month.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    /// Steps completed in the month before their due time.
    pub on_time: u32,
    /// Steps completed in the month at or after their due time.
    pub late: u32,
    /// `onTime / (onTime + late)`; `None` when nothing was completed.
    pub on_time_rate: Option<f64>,
    /// Steps the workflow closed in the month without the actor acting (superseded by an
    /// edit, the grant ended).
    pub closed: u32,
    /// Steps whose due time passed in the month undone (SUP-2).
    pub breaches: u32,
    /// Steps pending past their due time at the time of the report (SUP-2).
    pub open_overdue: u32,
}

impl Figures {
    /// Steps completed in the month, on time or late.
    pub fn completed(&self) -> u32 {
        self.on_time + self.late
    }

    fn add(&mut self, other: &Figures) {
        self.on_time += other.on_time;
        self.late += other.late;
        self.closed += other.closed;
        self.breaches += other.breaches;
        self.open_overdue += other.open_overdue;
    }

    fn is_empty(&self) -> bool {
        self.completed() + self.closed + self.breaches + self.open_overdue == 0
    }

    fn rate(mut self) -> Self {
        let done = self.completed();
        self.on_time_rate = (done > 0).then(|| f64::from(self.on_time) / f64::from(done));
        self
    }
}

/// One step's figures.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepFigures {
    /// The step.
    pub step: Step,
    /// Its figures.
    #[serde(flatten)]
    pub figures: Figures,
}

/// The report for `facts.month`.
pub fn compute(facts: &ReportFacts<'_>) -> Result<Report, ReportError> {
    let tz = facts.time_zone;
    let (from, until) = facts.month.bounds(tz)?;
    let time_zone = tz
        .iana_name()
        .unwrap_or("the regulation's time zone")
        .to_owned();
    if from > facts.now {
        return Err(ReportError::NotBegun {
            month: facts.month,
            time_zone,
        });
    }
    let mut tally = tally::Tally::new(facts, from, until);
    for grant in facts.grants {
        tally.grant(grant);
    }
    for catalog in facts.catalogs {
        tally.catalog(catalog);
    }
    Ok(Report {
        month: facts.month,
        time_zone,
        from,
        until,
        generated_at: facts.now,
        complete: until <= facts.now,
        basis: BASIS.to_vec(),
        departments: tally.finish(),
    })
}
