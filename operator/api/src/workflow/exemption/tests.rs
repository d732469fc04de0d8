//! Tests of the filing workflow (CH-1).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    EVENT_APPROVED, EVENT_ENDED, EVENT_LEFT_OVER, EVENT_REMOVED, ExemptionFacts, evaluate,
};
use crate::{
    status::{self, find},
    v1alpha1::{
        ChannelExemptionSpec, ChannelExemptionStatus, ExemptionPhase, ExposedKind, ExposedObject,
        ReviewDecision, ReviewSpec, Subject, SubjectKind,
    },
    workflow::ReviewFacts,
};

const NS: &str = "dept-weather";
const NAME: &str = "radar-feed";
const AUTHORITY: &str = "gongshu-system";
const CREATED: &str = "2026-03-02T01:00:00Z";
const UNTIL: &str = "2026-06-30T16:00:00Z";

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn service(name: &str) -> ExposedObject {
    ExposedObject {
        kind: ExposedKind::Service,
        name: name.into(),
    }
}

fn spec(enforce: bool) -> ChannelExemptionSpec {
    ChannelExemptionSpec {
        covers: vec![
            service("radar"),
            ExposedObject {
                kind: ExposedKind::Ingress,
                name: "radar".into(),
            },
        ],
        justification: "the national meteorological network pulls radar frames every minute".into(),
        legal_basis: "authority approval 2026-17".into(),
        valid_until: Time(at(UNTIL)),
        enforce,
    }
}

fn review(
    ns: &str,
    name: &str,
    created: &str,
    decision: ReviewDecision,
    generation: Option<i64>,
) -> ReviewFacts {
    ReviewFacts {
        namespace: ns.into(),
        name: name.into(),
        created: at(created),
        received: None,
        spec: ReviewSpec {
            subject: Subject {
                kind: SubjectKind::ChannelExemption,
                namespace: NS.into(),
                name: NAME.into(),
                item: None,
                generation,
            },
            decision,
            reason: if decision == ReviewDecision::Approve {
                String::new()
            } else {
                "the channel is no longer needed".into()
            },
            legal_basis: None,
        },
    }
}

struct Case {
    spec: ChannelExemptionSpec,
    generation: i64,
    reviews: Vec<ReviewFacts>,
    exposed: Vec<ExposedObject>,
}

impl Case {
    fn new() -> Self {
        Self {
            spec: spec(false),
            generation: 1,
            reviews: Vec::new(),
            exposed: vec![service("radar")],
        }
    }

    fn with(mut self, review: ReviewFacts) -> Self {
        self.reviews.push(review);
        self
    }

    fn run(&self, previous: Option<&ChannelExemptionStatus>, now: &str) -> super::ExemptionOutcome {
        evaluate(&ExemptionFacts {
            namespace: NS,
            name: NAME,
            spec: &self.spec,
            generation: self.generation,
            created: at(CREATED),
            reviews: &self.reviews,
            authority_namespace: AUTHORITY,
            previous,
            exposed: &self.exposed,
            now: at(now),
        })
    }
}

fn phase(status: &ChannelExemptionStatus) -> ExemptionPhase {
    status.phase.unwrap()
}

fn reasons(outcome: &super::ExemptionOutcome) -> Vec<&str> {
    outcome.evaluation.events.iter().map(|e| e.reason).collect()
}

#[test]
fn a_filing_waits_for_the_authority_and_admits_nothing_ch_1() {
    let out = Case::new().run(None, "2026-03-02T02:00:00Z");
    let status = &out.evaluation.status;
    assert_eq!(phase(status), ExemptionPhase::Pending);
    let ready = find(&status.common.conditions, status::READY).unwrap();
    assert_eq!(ready.status, "False");
    assert!(ready.message.contains("generation 1"), "{}", ready.message);
    assert!(ready.message.contains(AUTHORITY));
    assert_eq!(status.approved_generation, None);
    assert!(out.remove.is_empty());
}

#[test]
fn the_authoritys_approval_admits_until_valid_until_ch_1() {
    let case = Case::new().with(review(
        AUTHORITY,
        "ok",
        "2026-03-03T01:00:00Z",
        ReviewDecision::Approve,
        None,
    ));
    let out = case.run(None, "2026-03-03T02:00:00Z");
    let status = &out.evaluation.status;
    assert_eq!(phase(status), ExemptionPhase::Approved);
    assert_eq!(status.approved_generation, Some(1));
    assert_eq!(status.decision.as_ref().unwrap().by, "gongshu-system/ok");
    assert!(status::is_true(&status.common.conditions, status::READY));
    assert_eq!(
        out.evaluation.next_wakeup,
        Some(at(UNTIL)),
        "wakes at expiry"
    );
    assert_eq!(reasons(&out), [EVENT_APPROVED]);
    // Evaluating again changes nothing and publishes nothing.
    let again = case.run(Some(status), "2026-03-03T02:00:05Z");
    assert_eq!(again.evaluation.status, *status);
    assert!(again.evaluation.events.is_empty());
}

#[test]
fn a_department_cannot_approve_its_own_channel_ch_1() {
    let case = Case::new().with(review(
        NS,
        "self",
        "2026-03-03T01:00:00Z",
        ReviewDecision::Approve,
        None,
    ));
    let status = case.run(None, "2026-03-03T02:00:00Z").evaluation.status;
    assert_eq!(phase(&status), ExemptionPhase::Pending);
    assert_eq!(status.ignored_reviews.len(), 1);
    assert!(status.ignored_reviews[0].reason.contains("data authority"));
}

#[test]
fn an_edit_after_approval_needs_a_new_approval() {
    let mut case = Case::new().with(review(
        AUTHORITY,
        "ok",
        "2026-03-03T01:00:00Z",
        ReviewDecision::Approve,
        None,
    ));
    let approved = case.run(None, "2026-03-03T02:00:00Z").evaluation.status;
    case.generation = 2;
    let edited = case
        .run(Some(&approved), "2026-03-04T02:00:00Z")
        .evaluation
        .status;
    assert_eq!(phase(&edited), ExemptionPhase::Pending);
    assert_eq!(edited.approved_generation, Some(1));
    // A Review without a generation made after the edit approves the new generation.
    let case = case.with(review(
        AUTHORITY,
        "ok-2",
        "2026-03-04T03:00:00Z",
        ReviewDecision::Approve,
        None,
    ));
    let renewed = case
        .run(Some(&edited), "2026-03-04T04:00:00Z")
        .evaluation
        .status;
    assert_eq!(phase(&renewed), ExemptionPhase::Approved);
    assert_eq!(renewed.approved_generation, Some(2));
}

#[test]
fn a_review_naming_a_generation_that_does_not_exist_is_ignored() {
    let case = Case::new().with(review(
        AUTHORITY,
        "early",
        "2026-03-03T01:00:00Z",
        ReviewDecision::Approve,
        Some(3),
    ));
    let status = case.run(None, "2026-03-03T02:00:00Z").evaluation.status;
    assert_eq!(phase(&status), ExemptionPhase::Pending);
    assert!(
        status.ignored_reviews[0]
            .reason
            .contains("does not exist yet")
    );
}

#[test]
fn expiry_reports_the_covered_objects_that_still_expose_ch_1() {
    let case = Case::new().with(review(
        AUTHORITY,
        "ok",
        "2026-03-03T01:00:00Z",
        ReviewDecision::Approve,
        None,
    ));
    let approved = case.run(None, "2026-03-03T02:00:00Z").evaluation.status;
    let out = case.run(Some(&approved), "2026-07-01T00:00:00Z");
    let status = &out.evaluation.status;
    assert_eq!(phase(status), ExemptionPhase::Expired);
    assert_eq!(status.left_over, [service("radar")]);
    assert!(out.remove.is_empty(), "reported only without enforce");
    assert_eq!(reasons(&out), [EVENT_ENDED, EVENT_LEFT_OVER]);
    let ready = find(&status.common.conditions, status::READY).unwrap();
    assert!(ready.message.contains("Service radar"), "{}", ready.message);
    assert_eq!(out.evaluation.next_wakeup, None);
}

#[test]
fn with_enforce_an_ended_filing_removes_what_it_covered_ch_1() {
    let mut case = Case::new().with(review(
        AUTHORITY,
        "ok",
        "2026-03-03T01:00:00Z",
        ReviewDecision::Approve,
        None,
    ));
    case.spec = spec(true);
    let approved = case.run(None, "2026-03-03T02:00:00Z").evaluation.status;
    assert!(
        case.run(Some(&approved), "2026-03-03T02:00:00Z")
            .remove
            .is_empty(),
        "nothing removed while approved"
    );
    let case = case.with(review(
        AUTHORITY,
        "withdraw",
        "2026-04-01T01:00:00Z",
        ReviewDecision::Revoke,
        None,
    ));
    let out = case.run(Some(&approved), "2026-04-01T02:00:00Z");
    assert_eq!(phase(&out.evaluation.status), ExemptionPhase::Revoked);
    assert_eq!(out.remove, [service("radar")]);
    assert_eq!(out.evaluation.status.removed, [service("radar")]);
    assert!(out.evaluation.status.left_over.is_empty());
    assert_eq!(reasons(&out), [EVENT_ENDED, EVENT_REMOVED]);
    // Once deleted there is nothing more to remove, and the record stays.
    let mut gone = case;
    gone.exposed.clear();
    let after = gone.run(Some(&out.evaluation.status), "2026-04-01T02:00:10Z");
    assert!(after.remove.is_empty());
    assert_eq!(after.evaluation.status.removed, [service("radar")]);
    assert!(after.evaluation.events.is_empty());
}

#[test]
fn denial_and_revocation_are_final() {
    let case = Case::new()
        .with(review(
            AUTHORITY,
            "no",
            "2026-03-03T01:00:00Z",
            ReviewDecision::Deny,
            None,
        ))
        .with(review(
            AUTHORITY,
            "yes",
            "2026-03-04T01:00:00Z",
            ReviewDecision::Approve,
            None,
        ));
    let status = case.run(None, "2026-03-04T02:00:00Z").evaluation.status;
    assert_eq!(phase(&status), ExemptionPhase::Denied);
    assert!(status.ignored_reviews[0].reason.contains("already Denied"));
}

#[test]
fn revoking_what_was_never_approved_is_ignored() {
    let case = Case::new().with(review(
        AUTHORITY,
        "r",
        "2026-03-03T01:00:00Z",
        ReviewDecision::Revoke,
        None,
    ));
    let status = case.run(None, "2026-03-03T02:00:00Z").evaluation.status;
    assert_eq!(phase(&status), ExemptionPhase::Pending);
    assert_eq!(
        status.ignored_reviews[0].reason,
        "nothing approved to revoke"
    );
}

#[test]
fn changes_requested_then_edited_is_pending_again() {
    let mut case = Case::new().with(review(
        AUTHORITY,
        "fix",
        "2026-03-03T01:00:00Z",
        ReviewDecision::RequestChanges,
        None,
    ));
    let returned = case.run(None, "2026-03-03T02:00:00Z").evaluation.status;
    assert_eq!(phase(&returned), ExemptionPhase::ChangesRequested);
    case.generation = 2;
    let edited = case
        .run(Some(&returned), "2026-03-04T02:00:00Z")
        .evaluation
        .status;
    assert_eq!(phase(&edited), ExemptionPhase::Pending);
}

#[test]
fn a_review_made_before_the_operator_first_saw_the_filing_still_decides_it() {
    // The operator was down: the filing and its approval both predate the first evaluation.
    let case = Case::new().with(review(
        AUTHORITY,
        "ok",
        "2026-03-02T01:30:00Z",
        ReviewDecision::Approve,
        None,
    ));
    let status = case.run(None, "2026-03-05T00:00:00Z").evaluation.status;
    assert_eq!(phase(&status), ExemptionPhase::Approved);
}
