//! Tests of the catalog item workflow (CAT-2, CAT-9), on the real 2026 work calendar: updates
//! received on Friday 13 February 2026, before the Spring Festival (see the grant tests for the
//! count).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;
use crate::{
    calendar::calendar_2026_cn,
    presets::{Preset, Step},
    status::find,
    v1alpha1::{
        DataCatalog, DataCatalogSpec, DeadlineStatus, ItemWorkflow, ReviewDecision, ReviewSpec,
        Subject, SubjectKind,
    },
    workflow::{REEVALUATION_DUE, RegulationFacts, ReviewFacts, grant::ItemFacts},
};

const NS: &str = "civil-affairs";
const CATALOG: &str = "catalog";
const AUTHORITY_NS: &str = "gongshu-system";
const RESIDENTS: &str = "population.residents";
const BIRTHS: &str = "population.births";
const CREATED: &str = "2026-02-13T01:00:00Z";
const APPROVED: &str = "2026-02-13T02:00:00Z";
const EDITED: &str = "2026-02-13T03:00:00Z";

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn t(s: &str) -> Time {
    Time(at(s))
}

#[derive(Clone, Debug)]
struct Case {
    spec: DataCatalogSpec,
    generation: i64,
    reviews: Vec<ReviewFacts>,
    regulation: RegulationFacts,
}

impl Case {
    fn new(preset: Preset) -> Self {
        Self {
            spec: serde_yaml::from_str(include_str!("../../rules/fixtures/catalog.yaml")).unwrap(),
            generation: 1,
            reviews: Vec::new(),
            regulation: RegulationFacts::new(preset, calendar_2026_cn()),
        }
    }

    fn eval(&self, previous: Option<&DataCatalogStatus>, now: &str) -> CatalogOutcome {
        evaluate(&CatalogFacts {
            namespace: NS,
            name: CATALOG,
            department: Some(NS),
            spec: &self.spec,
            generation: self.generation,
            created: at(CREATED),
            reviews: &self.reviews,
            regulation: &self.regulation,
            previous,
            now: at(now),
        })
    }

    /// Evaluates, and checks that evaluating the result again (also after a JSON round trip
    /// through the apiserver) changes nothing.
    fn step(&self, previous: Option<&DataCatalogStatus>, now: &str) -> CatalogOutcome {
        let out = self.eval(previous, now);
        let stored: DataCatalogStatus =
            serde_json::from_value(serde_json::to_value(&out.status).unwrap()).unwrap();
        let again = self.eval(Some(&stored), now);
        assert_eq!(
            again.status, out.status,
            "a second evaluation at {now} changed the status"
        );
        assert_eq!(
            again.events,
            [],
            "a second evaluation at {now} emitted events"
        );
        out
    }

    fn add(&mut self, ns: &str, name: &str, item: &str, decision: ReviewDecision, created: &str) {
        self.reviews.push(ReviewFacts {
            namespace: ns.into(),
            name: name.into(),
            created: at(created),
            received: None,
            spec: ReviewSpec {
                subject: Subject {
                    kind: SubjectKind::CatalogItem,
                    namespace: NS.into(),
                    name: CATALOG.into(),
                    item: Some(item.into()),
                    generation: Some(self.generation),
                },
                decision,
                reason: if decision == ReviewDecision::Approve {
                    String::new()
                } else {
                    "state the legal basis of the restriction".into()
                },
                legal_basis: None,
            },
        });
    }

    fn authority(&mut self, name: &str, item: &str, decision: ReviewDecision, created: &str) {
        self.add(AUTHORITY_NS, name, item, decision, created);
    }

    /// Changes the residents item, as the department's edit would: generation + 1.
    fn edit_residents(&mut self, title: &str) {
        self.spec.items[0].title = title.into();
        self.generation += 1;
    }
}

fn item<'a>(status: &'a DataCatalogStatus, id: &str) -> (&'a ItemStatus, &'a ItemWorkflow) {
    let s = status.items.iter().find(|i| i.identifier == id).unwrap();
    let w = status.workflow.iter().find(|w| w.identifier == id).unwrap();
    (s, w)
}

fn entry(flow: &ItemWorkflow, step: Step) -> &DeadlineStatus {
    flow.deadlines
        .iter()
        .find(|d| d.step == step)
        .unwrap_or_else(|| panic!("no {step} in {:#?}", flow.deadlines))
}

fn reasons(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.reason).collect()
}

fn cond<'a>(status: &'a DataCatalogStatus, type_: &str) -> (&'a str, &'a str) {
    let c = find(&status.common.conditions, type_).unwrap();
    (c.status.as_str(), c.reason.as_str())
}

/// The residents item approved right after creation, then changed at EDITED (generation 2).
fn updated(preset: Preset) -> (Case, CatalogOutcome) {
    let mut case = Case::new(preset);
    case.authority("ok", RESIDENTS, ReviewDecision::Approve, APPROVED);
    let approved = case.step(None, APPROVED);
    assert_eq!(
        item(&approved.status, RESIDENTS).0.review,
        ItemReview::Approved
    );
    case.edit_residents("Registered residents by district");
    let out = case.step(Some(&approved.status), EDITED);
    (case, out)
}

#[test]
fn a_new_item_waits_for_the_authority_without_a_deadline_cat_2() {
    let out = Case::new(Preset::InnerMongolia).step(None, CREATED);
    let (status, flow) = item(&out.status, RESIDENTS);
    assert_eq!(status.review, ItemReview::Pending);
    assert_eq!(
        (flow.waiting_on.as_deref(), flow.due.clone()),
        (Some("authority"), None)
    );
    assert_eq!(
        (flow.submitted_generation, flow.submitted.clone()),
        (1, t(CREATED))
    );
    assert_eq!(flow.deadlines, []);
    assert_eq!(out.next_wakeup, None);
    assert_eq!(reasons(&out.events), ["ItemSubmitted", "ItemSubmitted"]);
    let ready = find(&out.status.common.conditions, status::READY).unwrap();
    assert_eq!(
        ready.message,
        "2 items: 2 pending the authority's review (CAT-2)"
    );
}

#[test]
fn the_authoritys_approval_publishes_the_item_cat_2() {
    let mut case = Case::new(Preset::Hebei);
    let first = case.step(None, CREATED);
    case.authority(
        "ok",
        RESIDENTS,
        ReviewDecision::Approve,
        "2026-02-16T02:00:00Z",
    );
    let out = case.step(Some(&first.status), "2026-02-16T02:00:05Z");
    let (status, flow) = item(&out.status, RESIDENTS);
    assert_eq!(status.review, ItemReview::Approved);
    assert_eq!(status.published_at, Some(t("2026-02-16T02:00:00Z")));
    assert_eq!(flow.decided_by.as_deref(), Some("gongshu-system/ok"));
    assert_eq!(flow.waiting_on, None);
    assert_eq!(out.status.approved_count, Some(1));
    assert_eq!(reasons(&out.events), ["ItemApproved"]);
    assert!(is_item_approved(&case.spec, &out.status, RESIDENTS));
    assert!(!is_item_approved(&case.spec, &out.status, BIRTHS));
}

#[test]
fn approved_conditional_items_are_reevaluated_after_a_year_cat_9() {
    let mut case = Case::new(Preset::Xinjiang);
    case.authority("ok", RESIDENTS, ReviewDecision::Approve, APPROVED);
    case.authority("ok-births", BIRTHS, ReviewDecision::Approve, APPROVED);
    let out = case.step(None, APPROVED);
    let residents = item(&out.status, RESIDENTS).0;
    assert_eq!(residents.next_reevaluation, Some(t("2027-02-13T02:00:00Z")));
    assert_eq!(
        item(&out.status, BIRTHS).0.next_reevaluation,
        None,
        "unconditional"
    );
    assert_eq!(out.next_wakeup, Some(at("2027-02-13T02:00:00Z")));
    assert_eq!(cond(&out.status, REEVALUATION_DUE), ("False", "NotNeeded"));

    let due = case.step(Some(&out.status), "2027-02-13T02:00:00Z");
    let (status, flow) = item(&due.status, RESIDENTS);
    assert!(flow.reevaluation_overdue);
    assert_eq!(flow.waiting_on.as_deref(), Some("authority"));
    assert_eq!(
        status.review,
        ItemReview::Approved,
        "still usable meanwhile"
    );
    assert_eq!(reasons(&due.events), ["ReevaluationDue"]);
    assert_eq!(cond(&due.status, REEVALUATION_DUE), ("True", "Overdue"));

    // The authority re-evaluates by approving the version again.
    case.authority(
        "still-conditional",
        RESIDENTS,
        ReviewDecision::Approve,
        "2027-02-15T02:00:00Z",
    );
    let out = case.step(Some(&due.status), "2027-02-15T02:00:00Z");
    let (status, flow) = item(&out.status, RESIDENTS);
    assert!(!flow.reevaluation_overdue);
    assert_eq!(status.next_reevaluation, Some(t("2028-02-15T02:00:00Z")));
    assert_eq!(status.published_at, Some(t(APPROVED)), "first publication");
}

#[test]
fn the_reevaluation_period_comes_from_the_regulation_facts_cat_9() {
    let mut case = Case::new(Preset::InnerMongolia);
    case.regulation.reevaluation_days = 180;
    case.authority("ok", RESIDENTS, ReviewDecision::Approve, APPROVED);
    let out = case.step(None, APPROVED);
    assert_eq!(
        item(&out.status, RESIDENTS).0.next_reevaluation,
        Some(t("2026-08-12T02:00:00Z"))
    );
}

#[test]
fn a_departments_review_of_its_own_item_is_ignored_cat_2() {
    let mut case = Case::new(Preset::Hebei);
    case.add(
        NS,
        "self-approval",
        RESIDENTS,
        ReviewDecision::Approve,
        APPROVED,
    );
    let out = case.step(None, APPROVED);
    assert_eq!(item(&out.status, RESIDENTS).0.review, ItemReview::Pending);
    let ignored = &out.status.ignored_reviews[0];
    assert_eq!(ignored.review, "civil-affairs/self-approval");
    assert!(
        ignored
            .reason
            .contains("only the authority reviews catalog items (CAT-2)")
    );
    assert!(reasons(&out.events).contains(&"ReviewIgnored"));
}

#[test]
fn inner_mongolia_decides_an_updated_item_within_5_working_days_nm11() {
    let (_, out) = updated(Preset::InnerMongolia);
    let (status, flow) = item(&out.status, RESIDENTS);
    assert_eq!(status.review, ItemReview::Pending);
    assert_eq!(flow.submitted_generation, 2);
    let d = entry(flow, Step::CatalogUpdateReview);
    assert_eq!(
        (d.started.clone(), d.due.clone()),
        (t(EDITED), Some(t("2026-02-27T16:00:00Z")))
    );
    assert_eq!(&d.articles[..], ["NM11"]);
    assert_eq!(flow.due, Some(t("2026-02-27T16:00:00Z")));
    assert_eq!(out.next_wakeup, Some(at("2026-02-27T16:00:00Z")));
    assert_eq!(reasons(&out.events), ["ItemSubmitted"]);
    // The earlier approval did not cover this version.
    assert_eq!(status.published_at, Some(t(APPROVED)));
}

#[test]
fn yunnan_decides_an_updated_item_within_5_working_days_yn13() {
    let (_, out) = updated(Preset::Yunnan);
    let d = entry(item(&out.status, RESIDENTS).1, Step::CatalogUpdateReview);
    assert_eq!(
        (d.due.clone(), &d.articles[..]),
        (Some(t("2026-02-27T16:00:00Z")), &["YN13".to_owned()][..])
    );
}

#[test]
fn hebei_decides_an_updated_item_within_10_working_days_hb9() {
    let (_, out) = updated(Preset::Hebei);
    let d = entry(item(&out.status, RESIDENTS).1, Step::CatalogUpdateReview);
    // Sat 14 Feb, Tue 24 … Fri 27, Sat 28 (make-up), Mon 2 … Thu 5 March.
    assert_eq!(
        (d.due.clone(), &d.articles[..]),
        (Some(t("2026-03-05T16:00:00Z")), &["HB9".to_owned()][..])
    );
}

#[test]
fn xinjiang_only_files_an_update_xj11() {
    let (_, out) = updated(Preset::Xinjiang);
    let (status, flow) = item(&out.status, RESIDENTS);
    assert_eq!(status.review, ItemReview::Approved);
    assert_eq!(
        status
            .message
            .as_deref()
            .map(|m| m.starts_with("filed (报备) with the authority, XJ11")),
        Some(true)
    );
    assert_eq!(flow.decided_by.as_deref(), Some("operator"));
    assert_eq!(flow.deadlines, []);
    // Filing is not a re-evaluation: the date of the last approval stays.
    assert_eq!(status.next_reevaluation, Some(t("2027-02-13T02:00:00Z")));
    assert_eq!(reasons(&out.events), ["ItemApproved"]);
}

#[test]
fn panjin_has_no_update_deadline_so_an_update_waits_for_review() {
    let (_, out) = updated(Preset::Panjin);
    let (status, flow) = item(&out.status, RESIDENTS);
    assert_eq!(status.review, ItemReview::Pending);
    assert_eq!((flow.deadlines.len(), flow.due.clone()), (0, None));
}

#[test]
fn yunnan_department_fixes_a_returned_item_within_10_working_days_yn12() {
    let mut case = Case::new(Preset::Yunnan);
    case.authority("fix", RESIDENTS, ReviewDecision::RequestChanges, EDITED);
    let out = case.step(None, EDITED);
    let (status, flow) = item(&out.status, RESIDENTS);
    assert_eq!(status.review, ItemReview::ChangesRequested);
    assert_eq!(flow.waiting_on.as_deref(), Some("department"));
    let fix = entry(flow, Step::CatalogChangesFix);
    assert_eq!(
        (fix.due.clone(), &fix.actor[..]),
        (Some(t("2026-03-05T16:00:00Z")), "department")
    );
    assert_eq!(flow.due, fix.due);
    // The department resubmits on Monday 2 March: the fix is done on time.
    case.edit_residents("Registered residents, corrected");
    let out = case.step(Some(&out.status), "2026-03-02T02:00:00Z");
    let (status, flow) = item(&out.status, RESIDENTS);
    assert_eq!(status.review, ItemReview::Pending);
    let fix = entry(flow, Step::CatalogChangesFix);
    assert_eq!(
        (fix.completed.clone(), fix.breached),
        (Some(t("2026-03-02T02:00:00Z")), false)
    );
    assert!(
        fix.note
            .as_deref()
            .unwrap()
            .starts_with("done: the department resubmitted")
    );
    assert_eq!(flow.due, None, "a first review has no deadline (CAT-2)");
}

#[test]
fn only_yunnan_sets_a_deadline_to_fix_a_returned_item_yn12() {
    for preset in [
        Preset::Xinjiang,
        Preset::InnerMongolia,
        Preset::Hebei,
        Preset::Panjin,
    ] {
        let mut case = Case::new(preset);
        case.authority("fix", RESIDENTS, ReviewDecision::RequestChanges, EDITED);
        let out = case.step(None, EDITED);
        let (status, flow) = item(&out.status, RESIDENTS);
        assert_eq!(status.review, ItemReview::ChangesRequested, "{preset}");
        assert_eq!(
            (flow.deadlines.len(), flow.due.clone()),
            (0, None),
            "{preset}"
        );
    }
}

#[test]
fn a_missed_update_review_is_a_sticky_breach_sup_2() {
    let (mut case, out) = updated(Preset::InnerMongolia);
    let breached = case.step(Some(&out.status), "2026-02-27T16:00:00Z");
    let d = entry(
        item(&breached.status, RESIDENTS).1,
        Step::CatalogUpdateReview,
    );
    assert!(d.breached);
    assert_eq!(reasons(&breached.events), ["DeadlineBreached"]);
    assert_eq!(
        cond(&breached.status, crate::workflow::DEADLINE_BREACHED),
        ("True", "Overdue")
    );
    case.authority(
        "late-ok",
        RESIDENTS,
        ReviewDecision::Approve,
        "2026-03-02T02:00:00Z",
    );
    let out = case.step(Some(&breached.status), "2026-03-02T02:00:00Z");
    let d = entry(item(&out.status, RESIDENTS).1, Step::CatalogUpdateReview);
    assert!(
        d.breached,
        "SUP-2: a late decision does not undo the breach"
    );
    assert_eq!(d.completed, Some(t("2026-03-02T02:00:00Z")));
    assert_eq!(reasons(&out.events), ["ItemApproved"]);
    assert_eq!(
        cond(&out.status, crate::workflow::DEADLINE_BREACHED),
        ("True", "CompletedLate")
    );
}

#[test]
fn a_review_naming_the_old_generation_does_not_decide_the_changed_item() {
    let (mut case, out) = updated(Preset::Hebei);
    case.authority(
        "stale",
        RESIDENTS,
        ReviewDecision::Approve,
        "2026-02-16T02:00:00Z",
    );
    case.reviews.last_mut().unwrap().spec.subject.generation = Some(1);
    let out = case.step(Some(&out.status), "2026-02-16T02:00:00Z");
    assert_eq!(item(&out.status, RESIDENTS).0.review, ItemReview::Pending);
    assert!(
        out.status.ignored_reviews[0].reason.starts_with(
            "names generation 1, but item population.residents changed in generation 2"
        )
    );
    case.authority(
        "current",
        RESIDENTS,
        ReviewDecision::Approve,
        "2026-02-16T03:00:00Z",
    );
    let out = case.step(Some(&out.status), "2026-02-16T03:00:00Z");
    assert_eq!(item(&out.status, RESIDENTS).0.review, ItemReview::Approved);
}

#[test]
fn the_latest_review_of_a_version_decides_it() {
    let mut case = Case::new(Preset::Hebei);
    case.authority("ok", RESIDENTS, ReviewDecision::Approve, APPROVED);
    let approved = case.step(None, APPROVED);
    case.authority("withdrawn", RESIDENTS, ReviewDecision::Revoke, EDITED);
    let out = case.step(Some(&approved.status), EDITED);
    let (status, _) = item(&out.status, RESIDENTS);
    assert_eq!(status.review, ItemReview::Denied);
    assert!(
        status
            .message
            .as_deref()
            .unwrap()
            .starts_with("approval withdrawn by gongshu-system/withdrawn")
    );
    assert_eq!(status.next_reevaluation, None);
    assert_eq!(reasons(&out.events), ["ItemDenied"]);
}

#[test]
fn an_invalid_catalog_stalls_and_keeps_its_items() {
    let mut case = Case::new(Preset::Hebei);
    case.authority("ok", RESIDENTS, ReviewDecision::Approve, APPROVED);
    let approved = case.step(None, APPROVED);
    case.spec.items[0].source_department = "Civil Affairs".into();
    case.generation += 1;
    let out = case.step(Some(&approved.status), EDITED);
    assert_eq!(cond(&out.status, status::STALLED), ("True", "InvalidSpec"));
    assert_eq!(out.status.items, approved.status.items);
}

#[test]
fn a_grant_sees_an_item_as_approved_only_in_the_version_the_authority_approved_cat_2() {
    let mut case = Case::new(Preset::Hebei);
    case.authority("ok", RESIDENTS, ReviewDecision::Approve, APPROVED);
    let out = case.step(None, APPROVED);
    let mut catalog = DataCatalog::new(CATALOG, case.spec.clone());
    catalog.metadata.namespace = Some(NS.into());
    catalog.status = Some(out.status);
    let facts = ItemFacts::from_catalog(&catalog, "civil-affairs", RESIDENTS).unwrap();
    assert!(facts.approved);
    assert_eq!(
        (facts.namespace.as_str(), facts.catalog.as_str()),
        (NS, CATALOG)
    );
    assert!(
        !ItemFacts::from_catalog(&catalog, "civil-affairs", BIRTHS)
            .unwrap()
            .approved
    );
    assert_eq!(
        ItemFacts::from_catalog(&catalog, "civil-affairs", "nope"),
        None
    );
    catalog.spec.items[0].title = "changed, not yet reviewed".into();
    assert!(
        !ItemFacts::from_catalog(&catalog, "civil-affairs", RESIDENTS)
            .unwrap()
            .approved
    );
}

#[test]
fn an_item_approved_without_the_requested_changes_closes_the_fix_step_yn12() {
    let mut case = Case::new(Preset::Yunnan);
    case.authority("fix", RESIDENTS, ReviewDecision::RequestChanges, EDITED);
    let returned = case.step(None, EDITED);
    case.authority(
        "fine-after-all",
        RESIDENTS,
        ReviewDecision::Approve,
        "2026-02-16T02:00:00Z",
    );
    let out = case.step(Some(&returned.status), "2026-02-16T02:00:00Z");
    let (status, flow) = item(&out.status, RESIDENTS);
    assert_eq!(status.review, ItemReview::Approved);
    let fix = entry(flow, Step::CatalogChangesFix);
    assert_eq!(fix.completed, Some(t("2026-02-16T02:00:00Z")));
    assert_eq!(fix.note.as_deref(), Some("decided without the changes"));
    assert_eq!(
        out.next_wakeup,
        status.next_reevaluation.as_ref().map(|t| t.0)
    );
}

#[test]
fn the_authority_may_still_decide_a_filed_update_xj11() {
    let (mut case, filed) = updated(Preset::Xinjiang);
    case.authority(
        "not-like-this",
        RESIDENTS,
        ReviewDecision::Deny,
        "2026-02-16T02:00:00Z",
    );
    let out = case.step(Some(&filed.status), "2026-02-16T02:00:00Z");
    assert_eq!(item(&out.status, RESIDENTS).0.review, ItemReview::Denied);
}

#[test]
fn a_review_of_an_item_the_catalog_does_not_declare_is_ignored() {
    let mut case = Case::new(Preset::Hebei);
    case.authority(
        "ghost",
        "population.ghosts",
        ReviewDecision::Approve,
        APPROVED,
    );
    let out = case.step(None, APPROVED);
    assert_eq!(
        out.status.ignored_reviews[0].reason,
        "item \"population.ghosts\" is not in this catalog"
    );
}
