//! `Review`: a decision gives its reasons unless it approves or resumes (NM23, XJ21, YN29,
//! HB15, PJ18), names its subject exactly, and only decides what the subject's workflow knows.
//!
//! A valid review is recorded; the subject's workflow (`crate::workflow`) applies it, and lists
//! it in the subject's `status.ignoredReviews`, with the reason, when it cannot.

use jiff::Timestamp;

use super::{Problem, require_text, summarize, syntax::is_dns_label};
use crate::{
    status::{self, Outcome},
    v1alpha1::{ReviewDecision, ReviewSpec, ReviewStatus, SubjectKind},
};

/// Whether `decision` means anything for a subject of `kind`: suspension exists for grants
/// (SH-14) and open datasets (OP-5) only, and an objection's answer cannot be revoked.
pub fn applies_to(decision: ReviewDecision, kind: SubjectKind) -> bool {
    use ReviewDecision::{Resume, Revoke, Suspend};
    use SubjectKind::{Objection, OpenDataset, ShareGrant};
    match decision {
        Suspend | Resume => matches!(kind, ShareGrant | OpenDataset),
        Revoke => kind != Objection,
        _ => true,
    }
}

/// Every problem of a review's spec.
pub fn validate(spec: &ReviewSpec) -> Vec<Problem> {
    let mut problems = Vec::new();
    let needs_reason = !matches!(
        spec.decision,
        ReviewDecision::Approve | ReviewDecision::Resume
    );
    if needs_reason {
        require_text(&mut problems, Some("SH-4"), "spec.reason", &spec.reason);
    }
    let subject = &spec.subject;
    if !is_dns_label(&subject.namespace) {
        problems.push(Problem::new(
            "spec.subject.namespace",
            format!("{:?} is not a namespace name", subject.namespace),
        ));
    }
    match (subject.kind, &subject.item) {
        (SubjectKind::CatalogItem, None) => problems.push(Problem::rule(
            "CAT-2",
            "spec.subject.item",
            "name the identifier of the catalog item decided on",
        )),
        (SubjectKind::CatalogItem, Some(_)) | (_, None) => {}
        (kind, Some(_)) => problems.push(Problem::new(
            "spec.subject.item",
            format!("is only used when subject.kind is CatalogItem, not {kind:?}"),
        )),
    }
    if subject.generation.is_some_and(|g| g < 1) {
        problems.push(Problem::new(
            "spec.subject.generation",
            "a metadata.generation starts at 1",
        ));
    }
    if !applies_to(spec.decision, subject.kind) {
        problems.push(Problem::new(
            "spec.decision",
            format!("{:?} does not apply to a {:?}", spec.decision, subject.kind),
        ));
    }
    problems
}

/// The status of a review after a reconcile that found `problems`.
pub fn status(
    previous: Option<&ReviewStatus>,
    generation: Option<i64>,
    problems: &[Problem],
    now: Timestamp,
) -> ReviewStatus {
    let mut next = previous.cloned().unwrap_or_default();
    // Set once: the order of decisions made within one second rests on it.
    next.received_at
        .get_or_insert(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
            now,
        ));
    let outcome = if problems.is_empty() {
        Outcome::Settled {
            ready: true,
            reason: status::ACCEPTED,
            message:
                "decision recorded; the subject's status shows its effect, and lists it under \
                      ignoredReviews with the reason if it cannot apply"
                    .into(),
        }
    } else {
        Outcome::Stalled {
            reason: status::INVALID_SPEC,
            message: format!(
                "{}; a Review is immutable: delete it and create a corrected one",
                summarize(problems)
            ),
        }
    };
    status::apply_outcome(&mut next.common, &outcome, generation, now);
    next
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::rules::test_support::{fields, now};
    use crate::status::{READY, STALLED, find, is_true};

    fn spec(yaml: &str) -> ReviewSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn approval() -> ReviewSpec {
        spec(
            r#"
            subject: {kind: CatalogItem, namespace: civil-affairs, name: catalog, item: population.births, generation: 3}
            decision: approve
            "#,
        )
    }

    #[test]
    fn the_time_a_review_was_first_seen_is_kept() {
        let first = status(None, Some(1), &[], now());
        let seen = first
            .received_at
            .clone()
            .expect("set on the first reconcile");
        let later = now() + jiff::SignedDuration::from_secs(5);
        let again = status(Some(&first), Some(1), &[], later);
        assert_eq!(again.received_at, Some(seen), "never moved");
        assert_eq!(
            again, first,
            "an unchanged Review's status is not rewritten"
        );
    }

    #[test]
    fn an_approval_needs_no_reason() {
        assert_eq!(validate(&approval()), []);
    }

    #[test]
    fn a_denial_gives_its_reasons_sh_4() {
        let mut review = approval();
        review.decision = ReviewDecision::Deny;
        review.reason = "  ".into();
        assert_eq!(fields(&validate(&review)), [("spec.reason", Some("SH-4"))]);
        review.reason = "the item is under revision".into();
        assert_eq!(validate(&review), []);
    }

    #[test]
    fn a_catalog_item_review_names_the_item_cat_2() {
        let mut review = approval();
        review.subject.item = None;
        assert_eq!(
            fields(&validate(&review)),
            [("spec.subject.item", Some("CAT-2"))]
        );
    }

    #[test]
    fn an_item_on_a_grant_review_is_refused() {
        let review = spec(
            r#"
            subject: {kind: ShareGrant, namespace: health, name: vaccination, item: population.residents}
            decision: approve
            "#,
        );
        assert_eq!(fields(&validate(&review)), [("spec.subject.item", None)]);
    }

    #[test]
    fn suspension_applies_to_grants_and_open_datasets_only_sh_14_op_5() {
        assert!(applies_to(ReviewDecision::Suspend, SubjectKind::ShareGrant));
        assert!(applies_to(ReviewDecision::Resume, SubjectKind::OpenDataset));
        assert!(!applies_to(
            ReviewDecision::Suspend,
            SubjectKind::CatalogItem
        ));
        assert!(!applies_to(ReviewDecision::Revoke, SubjectKind::Objection));
        let mut review = approval();
        review.decision = ReviewDecision::Suspend;
        review.reason = "misuse".into();
        assert_eq!(fields(&validate(&review)), [("spec.decision", None)]);
    }

    #[test]
    fn a_generation_below_one_is_refused() {
        let mut review = approval();
        review.subject.generation = Some(0);
        assert_eq!(
            fields(&validate(&review)),
            [("spec.subject.generation", None)]
        );
    }

    #[test]
    fn a_valid_review_is_recorded_and_points_at_its_subject() {
        let status = status(None, Some(1), &[], now());
        let ready = find(&status.common.conditions, READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "Accepted")
        );
        assert!(ready.message.contains("ignoredReviews"));
        assert!(!is_true(&status.common.conditions, STALLED));
    }

    #[test]
    fn an_invalid_review_stalls_and_says_to_recreate_it() {
        let mut review = approval();
        review.subject.namespace = "Bad".into();
        let status = status(None, Some(1), &validate(&review), now());
        let stalled = find(&status.common.conditions, STALLED).unwrap();
        assert_eq!(stalled.status, "True");
        assert!(stalled.message.starts_with("spec.subject.namespace: "));
        assert!(stalled.message.contains("immutable"));
    }
}
