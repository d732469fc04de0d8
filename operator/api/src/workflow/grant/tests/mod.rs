//! Tests of the grant workflow, on the real 2026 work calendar. A request received on Friday
//! 13 February 2026, the day before the Spring Festival's make-up Saturday, counts: Sat 14 (1),
//! the holiday 15–23, Tue 24 (2), Wed 25 (3), Thu 26 (4), Fri 27 (5), Sat 28 (6, make-up day),
//! Mon 2 March (7) … Thu 5 March (10). Each day ends at 24:00 Shanghai (16:00 UTC).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod deadlines;
mod edits;
mod idempotence;
mod reviews;
mod transitions;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{GrantFacts, GrantOutcome, ItemFacts, ItemField, evaluate};
use crate::{
    calendar::calendar_2026_cn,
    presets::{Preset, Step},
    status::{self, find},
    v1alpha1::{
        Commitment, DeadlineStatus, ReviewDecision, ReviewSpec, ServiceAccountName, ShareGrantSpec,
        ShareGrantStatus, ShareMode, ShareType, Subject, SubjectKind,
    },
    workflow::{Event, RegulationFacts, ReviewFacts},
};

pub const CONSUMER_NS: &str = "health";
pub const GRANT: &str = "vaccination-subsidy";
pub const PROVIDER_NS: &str = "civil-affairs";
pub const AUTHORITY_NS: &str = "gongshu-system";
pub const ITEM: &str = "population.residents";

/// Friday 13 February 2026, 10:00 in Shanghai: the request is received.
pub const RECEIVED: &str = "2026-02-13T02:00:00Z";
/// The end of the 2nd working day after RECEIVED (Tue 24 Feb, 24:00 Shanghai).
pub const WD2: &str = "2026-02-24T16:00:00Z";
/// The end of the 3rd working day after RECEIVED (Wed 25 Feb).
pub const WD3: &str = "2026-02-25T16:00:00Z";
/// The end of the 5th working day after RECEIVED (Fri 27 Feb).
pub const WD5: &str = "2026-02-27T16:00:00Z";
/// Monday 2 March 2026, 10:00 in Shanghai.
pub const MONDAY: &str = "2026-03-02T02:00:00Z";
/// The grant's requested end.
pub const VALID_UNTIL: &str = "2026-12-31T16:00:00Z";

pub fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

pub fn t(s: &str) -> Time {
    Time(at(s))
}

pub fn spec() -> ShareGrantSpec {
    ShareGrantSpec {
        item: ITEM.into(),
        scenario: "Verify the district of residence of vaccination subsidy applicants.".into(),
        purpose: "Decide eligibility for the district vaccination subsidy.".into(),
        commitment: Commitment {
            signed_by: "Li Wei, director".into(),
            signed_on: "2026-01-05".into(),
            document: "HEALTH-2026-014".into(),
        },
        fields: vec!["district".into()],
        mode: ShareMode::Api,
        valid_until: t(VALID_UNTIL),
        service_accounts: vec![ServiceAccountName("subsidy-checker".into())],
        table_target: None,
        emergency: false,
    }
}

pub fn item(share_type: ShareType) -> ItemFacts {
    let field = |name: &str, shareable| ItemField {
        name: name.into(),
        shareable,
    };
    ItemFacts {
        identifier: ITEM.into(),
        department: PROVIDER_NS.into(),
        namespace: PROVIDER_NS.into(),
        catalog: "catalog".into(),
        share_type,
        approved: true,
        fields: vec![
            field("district", true),
            field("birth_year", true),
            field("citizen_id", false),
        ],
    }
}

/// One grant and the world around it.
#[derive(Clone, Debug)]
pub struct Case {
    pub spec: ShareGrantSpec,
    pub generation: i64,
    pub created: Timestamp,
    pub item: Option<ItemFacts>,
    pub reviews: Vec<ReviewFacts>,
    pub regulation: RegulationFacts,
}

impl Case {
    pub fn new(preset: Preset, share_type: ShareType) -> Self {
        Self {
            spec: spec(),
            generation: 1,
            created: at(RECEIVED),
            item: Some(item(share_type)),
            reviews: Vec::new(),
            regulation: RegulationFacts::new(preset, calendar_2026_cn()),
        }
    }

    pub fn facts<'a>(
        &'a self,
        previous: Option<&'a ShareGrantStatus>,
        now: Timestamp,
    ) -> GrantFacts<'a> {
        GrantFacts {
            namespace: CONSUMER_NS,
            name: GRANT,
            spec: &self.spec,
            generation: self.generation,
            created: self.created,
            item: self.item.as_ref(),
            reviews: &self.reviews,
            regulation: &self.regulation,
            previous,
            now,
        }
    }

    pub fn eval(&self, previous: Option<&ShareGrantStatus>, now: &str) -> GrantOutcome {
        evaluate(&self.facts(previous, at(now)))
    }

    /// Evaluates at `now` from `previous`, and checks on the way that evaluating the result
    /// again changes nothing (restart idempotence).
    pub fn step(&self, previous: Option<&ShareGrantStatus>, now: &str) -> GrantOutcome {
        let out = self.eval(previous, now);
        let again = self.eval(Some(&out.status), now);
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

    pub fn add(&mut self, review: ReviewFacts) {
        self.reviews.push(review);
    }

    /// Edits the spec, as the apiserver would: the generation goes up by one.
    pub fn edit(&mut self, change: impl FnOnce(&mut ShareGrantSpec)) {
        change(&mut self.spec);
        self.generation += 1;
    }
}

/// A Review about the grant by namespace `ns`, made at `created`, with reasons and a legal
/// basis where the decision needs them.
pub fn review(ns: &str, name: &str, decision: ReviewDecision, created: &str) -> ReviewFacts {
    let needs_reason = !matches!(decision, ReviewDecision::Approve | ReviewDecision::Resume);
    ReviewFacts {
        namespace: ns.into(),
        name: name.into(),
        created: at(created),
        received: None,
        spec: ReviewSpec {
            subject: Subject {
                kind: SubjectKind::ShareGrant,
                namespace: CONSUMER_NS.into(),
                name: GRANT.into(),
                item: None,
                generation: None,
            },
            decision,
            reason: if needs_reason {
                "the scenario does not need residents' data".into()
            } else {
                String::new()
            },
            legal_basis: (decision == ReviewDecision::Deny)
                .then(|| "Personal Information Protection Law, art. 13".into()),
        },
    }
}

/// A Review by the provider.
pub fn provider(name: &str, decision: ReviewDecision, created: &str) -> ReviewFacts {
    review(PROVIDER_NS, name, decision, created)
}

/// A Review by the authority.
pub fn authority(name: &str, decision: ReviewDecision, created: &str) -> ReviewFacts {
    review(AUTHORITY_NS, name, decision, created)
}

/// The same Review, naming `generation`.
pub fn naming(mut review: ReviewFacts, generation: i64) -> ReviewFacts {
    review.spec.subject.generation = Some(generation);
    review
}

pub fn deadline(status: &ShareGrantStatus, step: Step, generation: i64) -> &DeadlineStatus {
    status
        .deadlines
        .iter()
        .find(|d| d.step == step && d.generation == Some(generation))
        .unwrap_or_else(|| {
            panic!(
                "no {step} for generation {generation} in {:#?}",
                status.deadlines
            )
        })
}

pub fn steps(status: &ShareGrantStatus) -> Vec<Step> {
    status.deadlines.iter().map(|d| d.step).collect()
}

pub fn reasons(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.reason).collect()
}

/// `(status, reason)` of the condition of `type_`.
pub fn cond<'a>(status: &'a ShareGrantStatus, type_: &str) -> (&'a str, &'a str) {
    let c =
        find(&status.common.conditions, type_).unwrap_or_else(|| panic!("no {type_} condition"));
    (c.status.as_str(), c.reason.as_str())
}

pub fn ready(status: &ShareGrantStatus) -> (&str, &str) {
    cond(status, status::READY)
}
