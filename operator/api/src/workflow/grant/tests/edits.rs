//! Edits after approval: narrowing applies at once, widening waits for review while the
//! approved terms stay in force (SH-3, SH-5).

use super::*;
use crate::{v1alpha1::GrantPhase, workflow::grant::served_terms};

/// A conditional grant for `district` and `birth_year`, approved by the provider on Tue 24 Feb.
fn active(preset: Preset) -> (Case, GrantOutcome) {
    let mut case = Case::new(preset, ShareType::Conditional);
    case.spec.fields = vec!["district".into(), "birth_year".into()];
    let first = case.step(None, RECEIVED);
    case.add(provider(
        "yes",
        ReviewDecision::Approve,
        "2026-02-24T02:00:00Z",
    ));
    let active = case.step(Some(&first.status), "2026-02-24T03:00:00Z");
    assert_eq!(active.status.phase, Some(GrantPhase::Active));
    (case, active)
}

#[test]
fn dropping_a_field_applies_at_once_sh_5() {
    let (mut case, active) = active(Preset::Hebei);
    case.edit(|s| s.fields = vec!["district".into()]);
    let out = case.step(Some(&active.status), MONDAY);
    let s = &out.status;
    assert_eq!(s.phase, Some(GrantPhase::Active));
    let approved = served_terms(s).unwrap();
    assert_eq!(
        (approved.generation, &approved.terms.fields[..]),
        (2, &["district".to_owned()][..])
    );
    assert_eq!(
        approved.by, "civil-affairs/yes",
        "still the provider's approval"
    );
    assert_eq!(
        steps(s),
        [
            Step::ComplianceReview,
            Step::ProviderReply,
            Step::ProvisionAfterApproval
        ]
    );
    assert_eq!(reasons(&out.events), ["Decided"]);
}

#[test]
fn an_earlier_end_applies_at_once_sh_5() {
    let (mut case, active) = active(Preset::Hebei);
    case.edit(|s| s.valid_until = t("2026-06-30T16:00:00Z"));
    let out = case.step(Some(&active.status), MONDAY);
    assert_eq!(out.status.phase, Some(GrantPhase::Active));
    assert_eq!(
        served_terms(&out.status).unwrap().terms.valid_until,
        t("2026-06-30T16:00:00Z")
    );
    assert_eq!(out.next_wakeup, Some(at("2026-06-30T16:00:00Z")));
}

#[test]
fn widening_goes_back_to_review_and_the_approved_terms_stay_in_force() {
    let (mut case, active) = active(Preset::Hebei);
    case.edit(|s| s.fields.push("citizen_id".into()));
    case.spec.mode = ShareMode::Verify;
    let out = case.step(Some(&active.status), MONDAY);
    let s = &out.status;
    assert_eq!(s.phase, Some(GrantPhase::ProviderReview));
    // A new request received on Monday 2 March: checked at once, the provider has 5 WD.
    assert_eq!(
        deadline(s, Step::ProviderReply, 2).due,
        Some(t("2026-03-09T16:00:00Z"))
    );
    assert_eq!(s.due, Some(t("2026-03-09T16:00:00Z")));
    let served = served_terms(s).unwrap();
    assert_eq!((served.generation, served.terms.mode), (1, ShareMode::Api));
    assert_eq!(ready(s), ("True", "ChangePending"));
    assert_eq!(reasons(&out.events), ["ProviderReview"]);
}

#[test]
fn approving_the_widening_serves_the_new_terms() {
    let (mut case, active) = active(Preset::Hebei);
    case.edit(|s| s.valid_until = t("2027-06-30T16:00:00Z"));
    let pending = case.step(Some(&active.status), MONDAY);
    case.add(naming(
        provider("extend", ReviewDecision::Approve, "2026-03-03T02:00:00Z"),
        2,
    ));
    let out = case.step(Some(&pending.status), "2026-03-03T03:00:00Z");
    let s = &out.status;
    assert_eq!(s.phase, Some(GrantPhase::Active));
    let served = served_terms(s).unwrap();
    assert_eq!(
        (served.generation, served.terms.valid_until.clone()),
        (2, t("2027-06-30T16:00:00Z"))
    );
    assert_eq!(
        deadline(s, Step::ProvisionAfterApproval, 2).started,
        t("2026-03-03T02:00:00Z")
    );
}

#[test]
fn a_denied_widening_leaves_the_approved_terms_in_force() {
    let (mut case, active) = active(Preset::Hebei);
    case.edit(|s| s.fields.push("income".into()));
    let out = case.step(Some(&active.status), MONDAY);
    // The checks refuse the unknown field; the earlier approval stands.
    let s = &out.status;
    assert_eq!(s.phase, Some(GrantPhase::Active));
    assert_eq!(s.waiting_on.as_deref(), Some("consumer"));
    assert_eq!(ready(s), ("True", "ChangeDenied"));
    assert_eq!(served_terms(s).unwrap().generation, 1);
    assert_eq!(s.decision.as_ref().unwrap().generation, Some(2));
    // Restoring the approved terms clears it.
    case.edit(|s| s.fields = vec!["district".into(), "birth_year".into()]);
    let out = case.step(Some(&out.status), "2026-03-02T03:00:00Z");
    assert_eq!(ready(&out.status), ("True", "Active"));
    assert_eq!(out.status.waiting_on, None);
}

#[test]
fn a_provider_denial_of_a_widening_keeps_the_grant_active() {
    let (mut case, active) = active(Preset::Hebei);
    case.edit(|s| s.valid_until = t("2027-06-30T16:00:00Z"));
    let pending = case.step(Some(&active.status), MONDAY);
    case.add(provider(
        "no-extension",
        ReviewDecision::Deny,
        "2026-03-03T02:00:00Z",
    ));
    let out = case.step(Some(&pending.status), "2026-03-03T03:00:00Z");
    assert_eq!(out.status.phase, Some(GrantPhase::Active));
    assert_eq!(ready(&out.status), ("True", "ChangeDenied"));
    assert_eq!(
        out.next_wakeup,
        Some(at(VALID_UNTIL)),
        "the approved end still applies"
    );
}

#[test]
fn a_new_scenario_is_a_new_use_that_needs_review_sh_3() {
    let (mut case, active) = active(Preset::Hebei);
    case.edit(|s| s.scenario = "Select households for a housing programme.".into());
    let out = case.step(Some(&active.status), MONDAY);
    assert_eq!(out.status.phase, Some(GrantPhase::ProviderReview));
}

#[test]
fn changing_the_service_accounts_needs_no_review() {
    let (mut case, active) = active(Preset::Hebei);
    case.edit(|s| {
        s.service_accounts
            .push(ServiceAccountName("batch-job".into()))
    });
    let out = case.step(Some(&active.status), MONDAY);
    assert_eq!(out.status.phase, Some(GrantPhase::Active));
    assert_eq!(out.status.request, active.status.request);
    assert_eq!(out.status.common.observed_generation, Some(2));
    assert_eq!(out.events, []);
}

#[test]
fn an_extension_not_approved_in_time_expires_with_the_approved_terms() {
    let (mut case, active) = active(Preset::Panjin);
    case.edit(|s| s.valid_until = t("2026-03-31T16:00:00Z"));
    let narrowed = case.step(Some(&active.status), MONDAY);
    case.edit(|s| s.valid_until = t("2026-12-31T16:00:00Z"));
    let pending = case.step(Some(&narrowed.status), "2026-03-10T02:00:00Z");
    assert_eq!(pending.status.phase, Some(GrantPhase::ProviderReview));
    assert_eq!(pending.next_wakeup, Some(at("2026-03-31T16:00:00Z")));
    let out = case.step(Some(&pending.status), "2026-03-31T16:00:00Z");
    assert_eq!(out.status.phase, Some(GrantPhase::Expired));
}

#[test]
fn a_breached_step_of_a_superseded_request_stays_breached() {
    let mut case = Case::new(Preset::Hebei, ShareType::Conditional);
    let first = case.step(None, RECEIVED);
    let overdue = case.step(Some(&first.status), MONDAY);
    case.edit(|s| s.fields = vec!["birth_year".into()]);
    let out = case.step(Some(&overdue.status), "2026-03-03T02:00:00Z");
    let old = deadline(&out.status, Step::ProviderReply, 1);
    assert!(old.breached);
    assert_eq!(old.note.as_deref(), Some("superseded by generation 2"));
    let new = deadline(&out.status, Step::ProviderReply, 2);
    assert!(!new.breached);
    assert_eq!(
        out.status.waiting_on.as_deref(),
        Some("provider/civil-affairs")
    );
}
