//! The checks and the transitions of a grant's phase (SH-1, SH-4, SH-5, SH-7, SH-14).

use super::*;
use crate::{
    v1alpha1::GrantPhase,
    workflow::{DEADLINE_BREACHED, ESCALATED, WAITING_ON_ESCALATED, grant::served_terms},
};

fn decided_by_operator(out: &GrantOutcome) -> (Option<GrantPhase>, &str, &str) {
    let d = out.status.decision.as_ref().unwrap();
    (out.status.phase, d.outcome.as_str(), d.by.as_str())
}

#[test]
fn a_grant_for_an_item_in_no_catalog_is_denied_cat_2() {
    let mut case = Case::new(Preset::Hebei, ShareType::Conditional);
    case.item = None;
    let out = case.step(None, RECEIVED);
    assert_eq!(
        decided_by_operator(&out),
        (Some(GrantPhase::Denied), "deny", "operator")
    );
    let reason = out
        .status
        .decision
        .as_ref()
        .unwrap()
        .reason
        .clone()
        .unwrap();
    assert!(
        reason.starts_with("CAT-2: item population.residents is in no catalog"),
        "{reason}"
    );
    assert_eq!(out.status.provider, None);
    assert_eq!(out.next_wakeup, None, "a final grant needs no wake-up");
    assert_eq!(reasons(&out.events), ["Denied"]);
    assert_eq!(ready(&out.status), ("False", "Denied"));
}

#[test]
fn a_grant_for_an_item_the_authority_has_not_approved_is_denied_cat_2() {
    let mut case = Case::new(Preset::Hebei, ShareType::Conditional);
    case.item.as_mut().unwrap().approved = false;
    let out = case.step(None, RECEIVED);
    let reason = out
        .status
        .decision
        .as_ref()
        .unwrap()
        .reason
        .clone()
        .unwrap();
    assert!(
        reason
            .contains("CAT-2: item population.residents of civil-affairs/catalog is not approved"),
        "{reason}"
    );
    // The compliance review step was done, at once.
    assert_eq!(
        deadline(&out.status, Step::ComplianceReview, 1).completed,
        Some(t(RECEIVED))
    );
}

#[test]
fn grant_for_not_shared_item_is_verify_only_sh_7() {
    let mut case = Case::new(Preset::InnerMongolia, ShareType::NotShared);
    case.spec.item = "population.identity-photos".into();
    case.item.as_mut().unwrap().identifier = "population.identity-photos".into();
    let out = case.step(None, RECEIVED);
    assert_eq!(out.status.phase, Some(GrantPhase::Denied));
    assert_eq!(
        out.status.decision.unwrap().reason.as_deref(),
        Some("SH-7: item population.identity-photos is notShared: request mode verify")
    );
}

#[test]
fn a_not_shared_item_in_verify_mode_goes_to_the_provider_sh_7() {
    let mut case = Case::new(Preset::InnerMongolia, ShareType::NotShared);
    case.spec.mode = ShareMode::Verify;
    case.spec.fields = vec!["citizen_id".into()];
    let out = case.step(None, RECEIVED);
    assert_eq!(out.status.phase, Some(GrantPhase::ProviderReview));
    assert_eq!(
        out.status.provider.as_ref().unwrap().share_type,
        ShareType::NotShared
    );
}

#[test]
fn a_field_the_item_does_not_declare_is_denied_sh_5() {
    let mut case = Case::new(Preset::Hebei, ShareType::Unconditional);
    case.spec.fields = vec!["district".into(), "income".into()];
    let out = case.step(None, RECEIVED);
    assert_eq!(
        out.status.decision.unwrap().reason.as_deref(),
        Some(
            "SH-5: field income is not a field of item population.residents: request only fields the catalog declares"
        )
    );
}

#[test]
fn a_field_that_is_not_shareable_is_denied_outside_verify_mode_sh_5() {
    let mut case = Case::new(Preset::Hebei, ShareType::Conditional);
    case.spec.fields = vec!["citizen_id".into()];
    let out = case.step(None, RECEIVED);
    let reason = out.status.decision.unwrap().reason.unwrap();
    assert!(
        reason.starts_with("SH-5: field citizen_id of item population.residents is not shareable"),
        "{reason}"
    );
}

#[test]
fn a_field_that_is_not_shareable_is_a_match_key_in_verify_mode_sh_7() {
    let mut case = Case::new(Preset::Hebei, ShareType::Unconditional);
    case.spec.fields = vec!["citizen_id".into()];
    case.spec.mode = ShareMode::Verify;
    let out = case.step(None, RECEIVED);
    assert_eq!(out.status.phase, Some(GrantPhase::Active));
}

#[test]
fn unconditional_data_is_provided_at_once_sh_1() {
    let out = Case::new(Preset::Hebei, ShareType::Unconditional).step(None, RECEIVED);
    let s = &out.status;
    assert_eq!(
        decided_by_operator(&out),
        (Some(GrantPhase::Active), "approve", "operator")
    );
    let approved = s.approved.as_ref().unwrap();
    assert_eq!(
        (approved.generation, &approved.terms.fields[..]),
        (1, &["district".to_owned()][..])
    );
    assert_eq!(served_terms(s), Some(approved));
    assert_eq!((s.waiting_on.clone(), s.due.clone()), (None, None));
    assert_eq!(ready(s), ("True", "Active"));
    assert_eq!(reasons(&out.events), ["Active"]);
    assert_eq!(out.next_wakeup, Some(at(VALID_UNTIL)));
    assert_eq!(s.common.observed_generation, Some(1));
}

#[test]
fn the_providers_approval_makes_the_grant_active_with_the_approved_terms_sh_4() {
    let mut case = Case::new(Preset::Hebei, ShareType::Conditional);
    let first = case.step(None, RECEIVED);
    assert_eq!(ready(&first.status), ("False", "AwaitingProvider"));
    assert_eq!(reasons(&first.events), ["ProviderReview"]);
    case.add(provider(
        "yes",
        ReviewDecision::Approve,
        "2026-02-26T03:00:00Z",
    ));
    let out = case.step(Some(&first.status), "2026-02-26T03:00:10Z");
    let s = &out.status;
    assert_eq!(s.phase, Some(GrantPhase::Active));
    let decision = s.decision.as_ref().unwrap();
    assert_eq!(
        (
            decision.by.as_str(),
            decision.actor.as_deref(),
            decision.generation
        ),
        ("civil-affairs/yes", Some("provider"), Some(1))
    );
    let reply = deadline(s, Step::ProviderReply, 1);
    assert_eq!(
        (reply.completed.clone(), reply.breached),
        (Some(t("2026-02-26T03:00:00Z")), false)
    );
    assert_eq!(s.approved.as_ref().unwrap().by, "civil-affairs/yes");
    assert_eq!(reasons(&out.events), ["Active"]);
    assert_eq!(cond(s, DEADLINE_BREACHED), ("False", "OnTime"));
}

#[test]
fn a_denial_with_reasons_and_legal_basis_ends_the_grant_nm23() {
    let mut case = Case::new(Preset::InnerMongolia, ShareType::Conditional);
    let first = case.step(None, RECEIVED);
    case.add(provider("no", ReviewDecision::Deny, "2026-02-24T03:00:00Z"));
    let out = case.step(Some(&first.status), "2026-02-24T04:00:00Z");
    assert_eq!(out.status.phase, Some(GrantPhase::Denied));
    let decision = out.status.decision.clone().unwrap();
    assert_eq!(
        decision.legal_basis.as_deref(),
        Some("Personal Information Protection Law, art. 13")
    );
    assert_eq!(reasons(&out.events), ["Denied"]);
    assert_eq!(out.events[0].type_, crate::workflow::EventType::Warning);
    // Final stays final: a later approval changes nothing.
    case.add(provider(
        "changed-mind",
        ReviewDecision::Approve,
        "2026-02-25T03:00:00Z",
    ));
    let later = case.step(Some(&out.status), "2026-02-25T04:00:00Z");
    assert_eq!(later.status, out.status);
}

#[test]
fn a_providers_missed_deadline_escalates_to_the_authority_sup_2() {
    let case = Case::new(Preset::Hebei, ShareType::Conditional);
    let first = case.step(None, RECEIVED);
    assert_eq!(first.next_wakeup, Some(at(WD5)));
    let out = case.step(Some(&first.status), WD5);
    let s = &out.status;
    assert!(deadline(s, Step::ProviderReply, 1).breached);
    assert_eq!(s.waiting_on.as_deref(), Some(WAITING_ON_ESCALATED));
    assert_eq!(s.due, Some(t(WD5)), "the missed due time stays visible");
    assert_eq!(cond(s, DEADLINE_BREACHED), ("True", "Overdue"));
    assert_eq!(cond(s, ESCALATED), ("True", "ProviderOverdue"));
    assert_eq!(ready(s), ("False", "ProviderOverdue"));
    assert_eq!(reasons(&out.events), ["DeadlineBreached", "Escalated"]);
    assert_eq!(out.next_wakeup, Some(at(VALID_UNTIL)));
    // A second operator (or a restart) a minute later does not report it again.
    let again = case.eval(Some(s), "2026-02-27T16:01:00Z");
    assert_eq!(again.events, []);
}

#[test]
fn a_breach_stays_recorded_after_the_late_reply_sup_2() {
    let mut case = Case::new(Preset::Yunnan, ShareType::Conditional);
    let first = case.step(None, RECEIVED);
    let overdue = case.step(Some(&first.status), MONDAY);
    case.add(provider(
        "late-yes",
        ReviewDecision::Approve,
        "2026-03-03T02:00:00Z",
    ));
    let out = case.step(Some(&overdue.status), "2026-03-03T02:00:05Z");
    let reply = deadline(&out.status, Step::ProviderReply, 1);
    assert!(reply.breached);
    assert_eq!(reply.completed, Some(t("2026-03-03T02:00:00Z")));
    assert_eq!(
        cond(&out.status, DEADLINE_BREACHED),
        ("True", "CompletedLate")
    );
    assert_eq!(cond(&out.status, ESCALATED), ("False", "NotNeeded"));
    assert_eq!(
        reasons(&out.events),
        ["Active"],
        "the breach was reported once, before"
    );
}

#[test]
fn a_reply_made_in_time_but_seen_late_is_not_a_breach() {
    // The operator was down over the due time; the provider had replied the day before.
    let mut case = Case::new(Preset::Yunnan, ShareType::Conditional);
    let first = case.step(None, RECEIVED);
    case.add(provider(
        "yes",
        ReviewDecision::Approve,
        "2026-02-26T02:00:00Z",
    ));
    let out = case.step(Some(&first.status), MONDAY);
    assert!(!deadline(&out.status, Step::ProviderReply, 1).breached);
    assert_eq!(reasons(&out.events), ["Active"]);
}

#[test]
fn the_grant_expires_at_valid_until_while_in_review_sh_5() {
    let mut case = Case::new(Preset::Panjin, ShareType::Conditional);
    case.spec.valid_until = t("2026-03-31T16:00:00Z");
    let first = case.step(None, RECEIVED);
    assert_eq!(first.next_wakeup, Some(at("2026-03-31T16:00:00Z")));
    let out = case.step(Some(&first.status), "2026-03-31T16:00:00Z");
    assert_eq!(out.status.phase, Some(GrantPhase::Expired));
    assert_eq!(ready(&out.status), ("False", "Expired"));
    let reply = deadline(&out.status, Step::ProviderReply, 1);
    assert_eq!(reply.completed, Some(t("2026-03-31T16:00:00Z")));
    assert!(reply.note.as_deref().unwrap().contains("Expired"));
    assert_eq!(out.status.waiting_on, None);
    assert_eq!(out.next_wakeup, None);
}

#[test]
fn an_expired_grant_stays_expired_when_valid_until_is_moved() {
    let mut case = Case::new(Preset::Hebei, ShareType::Unconditional);
    case.spec.valid_until = t("2026-03-31T16:00:00Z");
    let active = case.step(None, RECEIVED);
    let expired = case.step(Some(&active.status), "2026-04-01T00:00:00Z");
    assert_eq!(expired.status.phase, Some(GrantPhase::Expired));
    assert_eq!(reasons(&expired.events), ["Expired"]);
    case.edit(|s| s.valid_until = t(VALID_UNTIL));
    let out = case.step(Some(&expired.status), "2026-04-02T00:00:00Z");
    assert_eq!(out.status.phase, Some(GrantPhase::Expired));
    assert_eq!(served_terms(&out.status), None);
}

#[test]
fn the_provider_or_the_authority_revokes_an_active_grant() {
    for (who, by) in [
        (PROVIDER_NS, "civil-affairs/stop"),
        (AUTHORITY_NS, "gongshu-system/stop"),
    ] {
        let mut case = Case::new(Preset::Hebei, ShareType::Unconditional);
        let active = case.step(None, RECEIVED);
        case.add(review(who, "stop", ReviewDecision::Revoke, MONDAY));
        let out = case.step(Some(&active.status), MONDAY);
        assert_eq!(out.status.phase, Some(GrantPhase::Revoked));
        let decision = out.status.decision.as_ref().unwrap();
        assert_eq!(
            (decision.outcome.as_str(), decision.by.as_str()),
            ("revoke", by)
        );
        assert_eq!(served_terms(&out.status), None);
        assert_eq!(reasons(&out.events), ["Revoked"]);
    }
}

#[test]
fn the_authority_suspends_and_resumes_a_grant_sh_14() {
    let mut case = Case::new(Preset::Yunnan, ShareType::Unconditional);
    let active = case.step(None, RECEIVED);
    case.add(authority("misuse", ReviewDecision::Suspend, MONDAY));
    let suspended = case.step(Some(&active.status), MONDAY);
    assert_eq!(suspended.status.phase, Some(GrantPhase::Suspended));
    assert_eq!(served_terms(&suspended.status), None);
    assert_eq!(suspended.status.waiting_on.as_deref(), Some("consumer"));
    assert_eq!(
        suspended.status.suspension.as_ref().unwrap().by,
        "gongshu-system/misuse"
    );
    assert_eq!(reasons(&suspended.events), ["Suspended"]);
    case.add(authority(
        "corrected",
        ReviewDecision::Resume,
        "2026-03-09T02:00:00Z",
    ));
    let resumed = case.step(Some(&suspended.status), "2026-03-09T02:00:00Z");
    assert_eq!(resumed.status.phase, Some(GrantPhase::Active));
    assert_eq!(resumed.status.suspension, None);
    assert_eq!(reasons(&resumed.events), ["Active"]);
    assert_eq!(
        resumed.status.approved, active.status.approved,
        "the approval survives"
    );
}

#[test]
fn a_resumption_in_the_same_second_as_the_suspension_comes_after_it_sh_14() {
    let mut case = Case::new(Preset::Yunnan, ShareType::Unconditional);
    let active = case.step(None, RECEIVED);
    // "resume" sorts before "suspend" by name; only the time the operator saw each tells.
    let mut suspend = authority("suspend-x", ReviewDecision::Suspend, MONDAY);
    suspend.received = Some(at(MONDAY) + jiff::SignedDuration::from_millis(200));
    case.add(suspend);
    let suspended = case.step(Some(&active.status), MONDAY);
    assert_eq!(suspended.status.phase, Some(GrantPhase::Suspended));
    // The resumption, made in the same second, not yet seen by its own controller.
    case.add(authority("resume-x", ReviewDecision::Resume, MONDAY));
    let resumed = case.step(Some(&suspended.status), MONDAY);
    assert_eq!(resumed.status.phase, Some(GrantPhase::Active));
    // Once seen (later than the suspension), the order holds.
    let seen = case.reviews.last_mut().unwrap();
    seen.received = Some(at(MONDAY) + jiff::SignedDuration::from_millis(700));
    let again = case.step(Some(&resumed.status), MONDAY);
    assert_eq!(again.status.phase, Some(GrantPhase::Active));
    assert_eq!(again.status, resumed.status, "nothing changes");
}

#[test]
fn the_earliest_ending_wins_when_several_happened_unseen() {
    // Revoked on Monday, expired on Tuesday, first seen on Wednesday: Revoked.
    let mut case = Case::new(Preset::Hebei, ShareType::Unconditional);
    case.spec.valid_until = t("2026-03-03T00:00:00Z");
    let active = case.step(None, RECEIVED);
    case.add(provider("stop", ReviewDecision::Revoke, MONDAY));
    let out = case.step(Some(&active.status), "2026-03-04T00:00:00Z");
    assert_eq!(out.status.phase, Some(GrantPhase::Revoked));
    // A denial made after the grant expired does not apply: Expired.
    let mut case = Case::new(Preset::Hebei, ShareType::Conditional);
    case.spec.valid_until = t("2026-02-20T00:00:00Z");
    let first = case.step(None, RECEIVED);
    case.add(provider("no", ReviewDecision::Deny, "2026-02-24T02:00:00Z"));
    let out = case.step(Some(&first.status), "2026-02-24T03:00:00Z");
    assert_eq!(out.status.phase, Some(GrantPhase::Expired));
}

#[test]
fn an_invalid_spec_stalls_without_entering_review() {
    let mut case = Case::new(Preset::Hebei, ShareType::Conditional);
    case.spec.scenario = " ".repeat(12);
    let out = case.step(None, RECEIVED);
    assert_eq!(cond(&out.status, status::STALLED), ("True", "InvalidSpec"));
    assert_eq!(out.status.phase, Some(GrantPhase::Submitted));
    assert_eq!(out.status.waiting_on.as_deref(), Some("consumer"));
    assert_eq!(out.status.deadlines, []);
    // Fixed, it enters review; the request is the generation that is valid, received now.
    case.edit(|s| s.scenario = spec().scenario);
    let out = case.step(Some(&out.status), "2026-02-13T03:00:00Z");
    assert_eq!(out.status.phase, Some(GrantPhase::ProviderReview));
    assert_eq!(cond(&out.status, status::STALLED), ("False", "Reconciled"));
    let request = out.status.request.as_ref().unwrap();
    assert_eq!(
        (request.generation, request.received.clone()),
        (2, t("2026-02-13T03:00:00Z"))
    );
}
