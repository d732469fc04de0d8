//! Tests of the monthly report, and their fixtures: November 2026 in Asia/Shanghai (00:00 on
//! 1 November is 16:00 UTC on 31 October), reported on 2 December. The health department asks
//! the civil affairs department for data; the archives department has nothing to report.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod attribution;
mod timing;

use std::collections::{BTreeMap, BTreeSet};

use jiff::{Timestamp, tz::TimeZone};

use super::{tally::closed_without_action, *};
use crate::{
    calendar::calendar_2026_cn,
    presets::Preset,
    v1alpha1::{ReviewDecision, ReviewSpec, ShareGrantSpec, ShareType, Subject, SubjectKind},
    workflow::{
        RegulationFacts, ReviewFacts,
        grant::{GrantFacts, ItemFacts, ItemField, evaluate},
    },
};

const AUTHORITY_NS: &str = "gongshu-system";
const CONSUMER: &str = "health";
const PROVIDER: &str = "civil-affairs";
const IDLE: &str = "archives";
/// The time of the report: Wednesday 2 December 2026, 10:00 Shanghai.
const NOW: &str = "2026-12-02T02:00:00Z";

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn shanghai() -> TimeZone {
    TimeZone::get("Asia/Shanghai").unwrap()
}

fn november() -> Month {
    "2026-11".parse().unwrap()
}

/// Each department in a namespace of its own name.
fn departments() -> BTreeMap<String, String> {
    [CONSUMER, PROVIDER, IDLE]
        .into_iter()
        .map(|d| (d.to_owned(), d.to_owned()))
        .collect()
}

/// The world a report is made from.
#[derive(Default)]
struct World {
    grants: Vec<GrantRecord>,
    catalogs: Vec<CatalogRecord>,
}

impl World {
    fn report_on(&self, month: Month, now: &str, scope: &Scope) -> Result<Report, ReportError> {
        compute(&ReportFacts {
            month,
            time_zone: &shanghai(),
            now: at(now),
            authority_namespace: AUTHORITY_NS,
            departments: &departments(),
            scope,
            grants: &self.grants,
            catalogs: &self.catalogs,
        })
    }

    fn report(&self, month: Month) -> Report {
        self.report_on(month, NOW, &Scope::All).unwrap()
    }
}

/// A grant of the consumer, for the provider's conditional item, whose status is `yaml` (the
/// provider is filled in).
fn grant(name: &str, yaml: &str) -> GrantRecord {
    let mut status: ShareGrantStatus = serde_yaml::from_str(yaml).unwrap();
    status.provider = serde_yaml::from_str(&format!(
        "{{department: {PROVIDER}, namespace: {PROVIDER}, catalog: catalog, shareType: conditional}}"
    ))
    .unwrap();
    GrantRecord {
        namespace: CONSUMER.into(),
        name: name.into(),
        status,
    }
}

fn row<'r>(report: &'r Report, department: &str) -> &'r DepartmentReport {
    report
        .departments
        .iter()
        .find(|d| d.department == department)
        .unwrap_or_else(|| panic!("no row for {department} in {report:#?}"))
}

fn figures(report: &Report, department: &str, step: Step) -> Figures {
    row(report, department)
        .steps
        .iter()
        .find(|s| s.step == step)
        .map(|s| s.figures)
        .unwrap_or_default()
}

/// `(onTime, late, breaches, openOverdue)`.
fn counts(f: Figures) -> (u32, u32, u32, u32) {
    (f.on_time, f.late, f.breaches, f.open_overdue)
}

/// The provider's reply, started, due and (maybe) completed at these times.
fn reply(started: &str, due: &str, completed: Option<&str>) -> String {
    let completed = completed.map_or(String::new(), |c| format!(", completed: \"{c}\""));
    format!(
        "{{step: providerReply, actor: provider, started: \"{started}\", due: \"{due}\"{completed}, generation: 1}}"
    )
}

fn replied(name: &str, started: &str, due: &str, completed: Option<&str>) -> GrantRecord {
    grant(
        name,
        &format!("deadlines: [{}]", reply(started, due, completed)),
    )
}

// ---------------------------------------------------------------------------------------------
// Fixtures

fn review(
    ns: &str,
    name: &str,
    decision: ReviewDecision,
    grant: &str,
    created: &str,
) -> ReviewFacts {
    ReviewFacts {
        namespace: ns.into(),
        name: name.into(),
        created: at(created),
        received: None,
        spec: ReviewSpec {
            subject: Subject {
                kind: SubjectKind::ShareGrant,
                namespace: CONSUMER.into(),
                name: grant.into(),
                item: None,
                generation: None,
            },
            decision,
            reason: "the scenario does not need it".into(),
            legal_basis: Some("Personal Information Protection Law, art. 13".into()),
        },
    }
}

/// One grant run through the real workflow (`workflow::grant::evaluate`) under HB on the 2026
/// calendar, so that the report reads statuses exactly as the operator writes them.
struct Workflow {
    name: &'static str,
    spec: ShareGrantSpec,
    generation: i64,
    created: Timestamp,
    item: ItemFacts,
    reviews: Vec<ReviewFacts>,
    regulation: RegulationFacts,
    status: ShareGrantStatus,
}

impl Workflow {
    fn new(name: &'static str, created: &str) -> Self {
        let field = |name: &str| ItemField {
            name: name.into(),
            shareable: true,
        };
        Self {
            name,
            spec: serde_yaml::from_str(include_str!("../../rules/fixtures/grant.yaml")).unwrap(),
            generation: 1,
            created: at(created),
            item: ItemFacts {
                identifier: "population.residents".into(),
                department: PROVIDER.into(),
                namespace: PROVIDER.into(),
                catalog: "catalog".into(),
                share_type: ShareType::Conditional,
                approved: true,
                fields: vec![field("citizen_id"), field("district")],
            },
            reviews: Vec::new(),
            regulation: RegulationFacts::new(Preset::Hebei, calendar_2026_cn()),
            status: ShareGrantStatus::default(),
        }
    }

    fn eval(&mut self, now: &str) {
        let out = evaluate(&GrantFacts {
            namespace: CONSUMER,
            name: self.name,
            spec: &self.spec,
            generation: self.generation,
            created: self.created,
            item: Some(&self.item),
            reviews: &self.reviews,
            regulation: &self.regulation,
            previous: Some(&self.status),
            now: at(now),
        });
        self.status = out.status;
    }

    fn review(&mut self, ns: &str, name: &str, decision: ReviewDecision, created: &str) {
        self.reviews
            .push(review(ns, name, decision, self.name, created));
    }

    fn record(&self) -> GrantRecord {
        GrantRecord {
            namespace: CONSUMER.into(),
            name: self.name.into(),
            status: self.status.clone(),
        }
    }
}
