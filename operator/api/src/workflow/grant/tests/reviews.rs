//! Who decides, on which generation, and what a Review that is not applied says (SH-4, SH-14,
//! SUP-2).

use super::*;
use crate::v1alpha1::GrantPhase;

fn in_review(preset: Preset) -> (Case, GrantOutcome) {
    let case = Case::new(preset, ShareType::Conditional);
    let first = case.step(None, RECEIVED);
    (case, first)
}

fn ignored(out: &GrantOutcome) -> Vec<(&str, &str)> {
    out.status
        .ignored_reviews
        .iter()
        .map(|i| (i.review.as_str(), i.reason.as_str()))
        .collect()
}

#[test]
fn a_denial_without_legal_basis_is_not_applied_in_inner_mongolia_nm23() {
    let (mut case, first) = in_review(Preset::InnerMongolia);
    let mut no = provider("no", ReviewDecision::Deny, "2026-02-24T02:00:00Z");
    no.spec.legal_basis = None;
    case.add(no);
    let out = case.step(Some(&first.status), "2026-02-24T03:00:00Z");
    assert_eq!(out.status.phase, Some(GrantPhase::ProviderReview));
    let notes = ignored(&out);
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].0, "civil-affairs/no");
    assert!(
        notes[0]
            .1
            .starts_with("NM23: a refusal states its legal basis"),
        "{}",
        notes[0].1
    );
    assert_eq!(reasons(&out.events), ["ReviewIgnored"]);
    // A proper denial then decides.
    case.add(provider(
        "no-with-basis",
        ReviewDecision::Deny,
        "2026-02-25T02:00:00Z",
    ));
    let out = case.step(Some(&out.status), "2026-02-25T03:00:00Z");
    assert_eq!(out.status.phase, Some(GrantPhase::Denied));
    assert_eq!(
        out.status.decision.unwrap().by,
        "civil-affairs/no-with-basis"
    );
}

#[test]
fn xinjiang_and_yunnan_also_want_a_legal_basis_xj21_yn29() {
    for preset in [Preset::Xinjiang, Preset::Yunnan] {
        let (mut case, first) = in_review(preset);
        let mut no = provider("no", ReviewDecision::Deny, "2026-02-24T02:00:00Z");
        no.spec.legal_basis = Some("  ".into());
        case.add(no);
        let out = case.step(Some(&first.status), "2026-02-24T03:00:00Z");
        assert_eq!(
            out.status.phase,
            Some(GrantPhase::ProviderReview),
            "{preset}"
        );
    }
}

#[test]
fn hebei_and_panjin_want_reasons_only_hb15_pj18() {
    for preset in [Preset::Hebei, Preset::Panjin] {
        let (mut case, first) = in_review(preset);
        let mut no = provider("no", ReviewDecision::Deny, "2026-02-24T02:00:00Z");
        no.spec.legal_basis = None;
        case.add(no);
        let out = case.step(Some(&first.status), "2026-02-24T03:00:00Z");
        assert_eq!(out.status.phase, Some(GrantPhase::Denied), "{preset}");
    }
}

#[test]
fn a_request_for_changes_stops_the_providers_clock_and_waits_on_the_consumer() {
    let (mut case, first) = in_review(Preset::Hebei);
    case.add(provider(
        "narrower",
        ReviewDecision::RequestChanges,
        "2026-02-24T02:00:00Z",
    ));
    let out = case.step(Some(&first.status), "2026-02-24T03:00:00Z");
    let s = &out.status;
    assert_eq!(s.phase, Some(GrantPhase::ProviderReview));
    assert_eq!(
        (s.waiting_on.as_deref(), s.due.clone()),
        (Some("consumer"), None)
    );
    assert_eq!(ready(s), ("False", "ChangesRequested"));
    assert_eq!(
        deadline(s, Step::ProviderReply, 1).completed,
        Some(t("2026-02-24T02:00:00Z"))
    );
    assert_eq!(reasons(&out.events), ["Decided"]);
    // Nothing is due any more: past WD5 nothing breaches.
    let later = case.step(Some(s), MONDAY);
    assert!(!deadline(&later.status, Step::ProviderReply, 1).breached);
}

#[test]
fn an_edit_after_a_request_for_changes_is_a_new_request_with_its_own_deadline() {
    let mut case = Case::new(Preset::Hebei, ShareType::Conditional);
    case.spec.fields = vec!["district".into(), "birth_year".into()];
    let first = case.step(None, RECEIVED);
    case.add(provider(
        "narrower",
        ReviewDecision::RequestChanges,
        "2026-02-24T02:00:00Z",
    ));
    let returned = case.step(Some(&first.status), "2026-02-24T03:00:00Z");
    case.edit(|s| s.fields = vec!["district".into()]);
    let out = case.step(Some(&returned.status), MONDAY);
    let s = &out.status;
    assert_eq!(s.request.as_ref().unwrap().generation, 2);
    assert_eq!(s.waiting_on.as_deref(), Some("provider/civil-affairs"));
    // Received Monday 2 March: the authority checks at once and forwards; 5 WD to Mon 9 March.
    assert_eq!(deadline(s, Step::ComplianceReview, 2).started, t(MONDAY));
    assert_eq!(
        deadline(s, Step::ProviderReply, 2).due,
        Some(t("2026-03-09T16:00:00Z"))
    );
    assert_eq!(s.due, Some(t("2026-03-09T16:00:00Z")));
}

#[test]
fn a_review_from_another_department_is_ignored() {
    let (mut case, first) = in_review(Preset::Hebei);
    case.add(review(
        "education",
        "yes",
        ReviewDecision::Approve,
        "2026-02-24T02:00:00Z",
    ));
    let out = case.step(Some(&first.status), "2026-02-24T03:00:00Z");
    assert_eq!(out.status.phase, Some(GrantPhase::ProviderReview));
    let notes = ignored(&out);
    assert!(notes[0].1.starts_with("namespace education is neither the provider's (civil-affairs) nor the authority's (gongshu-system)"), "{notes:?}");
}

#[test]
fn a_review_about_another_grant_is_skipped_silently() {
    let (mut case, first) = in_review(Preset::Hebei);
    let mut other = provider("yes", ReviewDecision::Approve, "2026-02-24T02:00:00Z");
    other.spec.subject.name = "another-grant".into();
    case.add(other);
    let out = case.step(Some(&first.status), "2026-02-24T03:00:00Z");
    assert_eq!(out.status.phase, Some(GrantPhase::ProviderReview));
    assert_eq!(out.status.ignored_reviews, []);
}

#[test]
fn a_review_made_before_the_grant_existed_is_ignored() {
    let (mut case, first) = in_review(Preset::Hebei);
    case.add(provider(
        "old",
        ReviewDecision::Approve,
        "2026-01-05T02:00:00Z",
    ));
    let out = case.step(Some(&first.status), "2026-02-24T03:00:00Z");
    assert_eq!(out.status.phase, Some(GrantPhase::ProviderReview));
    assert!(
        ignored(&out)[0]
            .1
            .starts_with("made before this ShareGrant was created")
    );
}

#[test]
fn a_review_naming_a_generation_that_does_not_exist_is_ignored() {
    let (mut case, first) = in_review(Preset::Hebei);
    case.add(naming(
        provider("yes", ReviewDecision::Approve, "2026-02-24T02:00:00Z"),
        4,
    ));
    let out = case.step(Some(&first.status), "2026-02-24T03:00:00Z");
    assert_eq!(out.status.phase, Some(GrantPhase::ProviderReview));
    assert_eq!(
        ignored(&out)[0].1,
        "names generation 4, but the grant is at generation 1"
    );
}

#[test]
fn a_review_naming_an_older_generation_does_not_decide_the_pending_request() {
    let (mut case, first) = in_review(Preset::Hebei);
    case.edit(|s| s.fields = vec!["district".into(), "birth_year".into()]);
    let edited = case.step(Some(&first.status), "2026-02-13T03:00:00Z");
    assert_eq!(edited.status.request.as_ref().unwrap().generation, 2);
    case.add(naming(
        provider("yes-to-1", ReviewDecision::Approve, "2026-02-24T02:00:00Z"),
        1,
    ));
    let out = case.step(Some(&edited.status), "2026-02-24T03:00:00Z");
    assert_eq!(out.status.phase, Some(GrantPhase::ProviderReview));
    assert!(
        ignored(&out)[0]
            .1
            .starts_with("names generation 1, but generation 2 with other terms is under review")
    );
    case.add(naming(
        provider("yes-to-2", ReviewDecision::Approve, "2026-02-24T04:00:00Z"),
        2,
    ));
    let out = case.step(Some(&out.status), "2026-02-24T05:00:00Z");
    assert_eq!(out.status.phase, Some(GrantPhase::Active));
    assert_eq!(
        out.status.approved.unwrap().terms.fields,
        ["birth_year", "district"]
    );
}

#[test]
fn the_first_decision_counts_and_a_later_one_does_not_reopen_it() {
    let (mut case, first) = in_review(Preset::Hebei);
    case.add(provider(
        "yes",
        ReviewDecision::Approve,
        "2026-02-24T02:00:00Z",
    ));
    case.add(provider("no", ReviewDecision::Deny, "2026-02-25T02:00:00Z"));
    let out = case.step(Some(&first.status), "2026-02-25T03:00:00Z");
    assert_eq!(out.status.phase, Some(GrantPhase::Active));
    assert!(
        ignored(&out)[0]
            .1
            .starts_with("generation 1 was already decided (approve by civil-affairs/yes)")
    );
}

#[test]
fn two_reviews_in_the_same_second_are_taken_in_name_order() {
    let (mut case, first) = in_review(Preset::Hebei);
    case.add(provider(
        "b-no",
        ReviewDecision::Deny,
        "2026-02-24T02:00:00Z",
    ));
    case.add(provider(
        "a-yes",
        ReviewDecision::Approve,
        "2026-02-24T02:00:00Z",
    ));
    let out = case.step(Some(&first.status), "2026-02-24T03:00:00Z");
    assert_eq!(out.status.decision.unwrap().by, "civil-affairs/a-yes");
}

#[test]
fn the_authority_decides_only_once_the_provider_is_overdue_sup_2() {
    let (mut case, first) = in_review(Preset::Hebei);
    case.add(authority(
        "early",
        ReviewDecision::Approve,
        "2026-02-24T02:00:00Z",
    ));
    let out = case.step(Some(&first.status), "2026-02-24T03:00:00Z");
    assert_eq!(out.status.phase, Some(GrantPhase::ProviderReview));
    assert!(ignored(&out)[0].1.starts_with("the authority decides in the provider's place only once the provider's reply is overdue, from 2026-02-27T16:00:00Z"));
    let escalated = case.step(Some(&out.status), WD5);
    case.add(authority("coordinated", ReviewDecision::Approve, MONDAY));
    let out = case.step(Some(&escalated.status), MONDAY);
    let s = &out.status;
    assert_eq!(s.phase, Some(GrantPhase::Active));
    let decision = s.decision.as_ref().unwrap();
    assert_eq!(
        (decision.by.as_str(), decision.actor.as_deref()),
        ("gongshu-system/coordinated", Some("authority"))
    );
    let reply = deadline(s, Step::ProviderReply, 1);
    assert!(reply.breached);
    assert!(
        reply
            .note
            .as_deref()
            .unwrap()
            .contains("coordination, SUP-2")
    );
    assert_eq!(s.waiting_on, None);
}

#[test]
fn in_panjin_the_authority_may_decide_at_any_time_pj18() {
    let (mut case, first) = in_review(Preset::Panjin);
    case.add(authority(
        "conditions-met",
        ReviewDecision::Approve,
        "2026-02-16T02:00:00Z",
    ));
    let out = case.step(Some(&first.status), "2026-02-16T03:00:00Z");
    assert_eq!(out.status.phase, Some(GrantPhase::Active));
}

#[test]
fn only_the_authority_suspends_a_grant_sh_14() {
    let mut case = Case::new(Preset::Hebei, ShareType::Unconditional);
    let active = case.step(None, RECEIVED);
    case.add(provider("suspend", ReviewDecision::Suspend, MONDAY));
    let out = case.step(Some(&active.status), MONDAY);
    assert_eq!(out.status.phase, Some(GrantPhase::Active));
    assert_eq!(
        ignored(&out)[0].1,
        "only the authority suspends or resumes a grant (SH-14)"
    );
}

#[test]
fn a_revocation_by_another_department_is_ignored() {
    let mut case = Case::new(Preset::Hebei, ShareType::Unconditional);
    let active = case.step(None, RECEIVED);
    case.add(review("education", "stop", ReviewDecision::Revoke, MONDAY));
    let out = case.step(Some(&active.status), MONDAY);
    assert_eq!(out.status.phase, Some(GrantPhase::Active));
    assert_eq!(reasons(&out.events), ["ReviewIgnored"]);
}

#[test]
fn a_review_without_generation_decides_the_request_under_review_when_it_was_made() {
    let (mut case, first) = in_review(Preset::Hebei);
    case.edit(|s| s.fields = vec!["birth_year".into()]);
    let edited = case.step(Some(&first.status), "2026-02-16T02:00:00Z");
    // Made before the edit was received: about generation 1, which no longer is under review.
    case.add(provider(
        "before",
        ReviewDecision::Approve,
        "2026-02-16T01:00:00Z",
    ));
    let out = case.step(Some(&edited.status), "2026-02-16T03:00:00Z");
    assert_eq!(out.status.phase, Some(GrantPhase::ProviderReview));
    case.add(provider(
        "after",
        ReviewDecision::Approve,
        "2026-02-16T04:00:00Z",
    ));
    let out = case.step(Some(&out.status), "2026-02-16T05:00:00Z");
    assert_eq!(out.status.approved.unwrap().terms.fields, ["birth_year"]);
}
