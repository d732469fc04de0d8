//! Each preset's deadline table for grants (SH-4), counted across the 2026 Spring Festival.

use super::*;
use crate::v1alpha1::GrantPhase;

fn conditional(preset: Preset) -> GrantOutcome {
    Case::new(preset, ShareType::Conditional).step(None, RECEIVED)
}

fn unconditional(preset: Preset) -> GrantOutcome {
    Case::new(preset, ShareType::Unconditional).step(None, RECEIVED)
}

/// The provider approves on Monday 2 March; the grant's status after that.
fn approved_on_monday(preset: Preset) -> GrantOutcome {
    let mut case = Case::new(preset, ShareType::Conditional);
    let first = case.step(None, RECEIVED);
    case.add(provider("yes", ReviewDecision::Approve, MONDAY));
    case.step(Some(&first.status), MONDAY)
}

#[test]
fn xinjiang_platform_checks_in_3_and_the_provider_replies_in_5_working_days_xj21() {
    let out = conditional(Preset::Xinjiang);
    let s = &out.status;
    assert_eq!(steps(s), [Step::ComplianceReview, Step::ProviderReply]);
    let check = deadline(s, Step::ComplianceReview, 1);
    assert_eq!(
        (
            &check.actor[..],
            check.due.clone(),
            check.completed.clone(),
            &check.articles[..]
        ),
        (
            "authority",
            Some(t(WD3)),
            Some(t(RECEIVED)),
            &["XJ21".to_owned()][..]
        )
    );
    let reply = deadline(s, Step::ProviderReply, 1);
    assert_eq!(
        (reply.started.clone(), reply.due.clone()),
        (t(RECEIVED), Some(t(WD5)))
    );
    assert_eq!(reply.completed, None);
    assert_eq!(s.phase, Some(GrantPhase::ProviderReview));
    assert_eq!(s.waiting_on.as_deref(), Some("provider/civil-affairs"));
    assert_eq!(s.due, Some(t(WD5)));
    assert_eq!(out.next_wakeup, Some(at(WD5)));
}

#[test]
fn xinjiang_provider_clock_starts_when_the_platform_forwards_the_request_xj21() {
    // The checks ran only on Tuesday 24 February (still within the 3 WD): the provider receives
    // the request then, and its 5 WD run Wed 25 … Mon 2 March (the make-up Saturday counts).
    let out =
        Case::new(Preset::Xinjiang, ShareType::Conditional).step(None, "2026-02-24T01:00:00Z");
    let check = deadline(&out.status, Step::ComplianceReview, 1);
    assert!(!check.breached);
    let reply = deadline(&out.status, Step::ProviderReply, 1);
    assert_eq!(reply.started, t("2026-02-24T01:00:00Z"));
    assert_eq!(reply.due, Some(t("2026-03-02T16:00:00Z")));
}

#[test]
fn xinjiang_platform_reviews_unconditional_requests_within_3_working_days_xj21() {
    let out = unconditional(Preset::Xinjiang);
    let d = deadline(&out.status, Step::UnconditionalProvision, 1);
    assert_eq!(
        (d.due.clone(), d.completed.clone()),
        (Some(t(WD3)), Some(t(RECEIVED)))
    );
    assert_eq!(out.status.phase, Some(GrantPhase::Active));
    assert_eq!(steps(&out.status), [Step::UnconditionalProvision]);
}

#[test]
fn xinjiang_sets_no_provision_deadline_after_approval_xj21() {
    let out = approved_on_monday(Preset::Xinjiang);
    assert_eq!(
        steps(&out.status),
        [Step::ComplianceReview, Step::ProviderReply]
    );
}

#[test]
fn inner_mongolia_provider_has_5_working_days_to_reply_nm23() {
    let out = conditional(Preset::InnerMongolia);
    // NM23 has no compliance review: the provider receives the request directly.
    assert_eq!(steps(&out.status), [Step::ProviderReply]);
    let reply = deadline(&out.status, Step::ProviderReply, 1);
    assert_eq!(
        (reply.due.clone(), &reply.articles[..]),
        (Some(t(WD5)), &["NM23".to_owned()][..])
    );
}

#[test]
fn inner_mongolia_provides_unconditional_data_directly_nm23() {
    let out = unconditional(Preset::InnerMongolia);
    let d = deadline(&out.status, Step::UnconditionalProvision, 1);
    assert_eq!(
        (d.due.clone(), &d.articles[..]),
        (None, &["NM23".to_owned()][..])
    );
    assert_eq!(out.status.phase, Some(GrantPhase::Active));
}

#[test]
fn inner_mongolia_provider_shares_within_5_working_days_of_agreeing_nm23() {
    let out = approved_on_monday(Preset::InnerMongolia);
    let d = deadline(&out.status, Step::ProvisionAfterApproval, 1);
    // From Monday 2 March: Tue 3 … Mon 9 March.
    assert_eq!(
        (
            d.started.clone(),
            d.due.clone(),
            d.completed.clone(),
            &d.actor[..]
        ),
        (
            t(MONDAY),
            Some(t("2026-03-09T16:00:00Z")),
            Some(t(MONDAY)),
            "provider"
        )
    );
}

#[test]
fn yunnan_provider_provides_unconditional_data_within_2_working_days_yn29() {
    let out = unconditional(Preset::Yunnan);
    let d = deadline(&out.status, Step::UnconditionalProvision, 1);
    assert_eq!((d.due.clone(), &d.actor[..]), (Some(t(WD2)), "provider"));
}

#[test]
fn yunnan_provider_has_5_working_days_to_reply_and_5_to_provide_yn29() {
    let out = conditional(Preset::Yunnan);
    assert_eq!(steps(&out.status), [Step::ProviderReply]);
    assert_eq!(
        deadline(&out.status, Step::ProviderReply, 1).due,
        Some(t(WD5))
    );
    let out = approved_on_monday(Preset::Yunnan);
    let d = deadline(&out.status, Step::ProvisionAfterApproval, 1);
    assert_eq!(d.due, Some(t("2026-03-09T16:00:00Z")));
}

#[test]
fn hebei_authority_reviews_in_3_and_the_provider_has_5_working_days_to_reply_hb15() {
    let out = conditional(Preset::Hebei);
    assert_eq!(
        steps(&out.status),
        [Step::ComplianceReview, Step::ProviderReply]
    );
    assert_eq!(
        deadline(&out.status, Step::ComplianceReview, 1).due,
        Some(t(WD3))
    );
    let reply = deadline(&out.status, Step::ProviderReply, 1);
    assert_eq!(
        (reply.due.clone(), &reply.articles[..]),
        (Some(t(WD5)), &["HB15".to_owned()][..])
    );
}

#[test]
fn hebei_authority_provides_within_3_working_days_of_the_provider_reply_hb15() {
    let out = approved_on_monday(Preset::Hebei);
    let d = deadline(&out.status, Step::ProvisionAfterApproval, 1);
    // From Monday 2 March: Tue 3, Wed 4, Thu 5 March; the authority is liable (HB15).
    assert_eq!(
        (d.due.clone(), &d.actor[..]),
        (Some(t("2026-03-05T16:00:00Z")), "authority")
    );
}

#[test]
fn hebei_authority_provides_unconditional_data_within_3_working_days_hb15() {
    let out = unconditional(Preset::Hebei);
    let d = deadline(&out.status, Step::UnconditionalProvision, 1);
    assert_eq!((d.due.clone(), &d.actor[..]), (Some(t(WD3)), "authority"));
}

#[test]
fn panjin_provider_reply_has_no_number_so_nothing_is_due_pj18() {
    let out = conditional(Preset::Panjin);
    let check = deadline(&out.status, Step::ComplianceReview, 1);
    assert_eq!(
        (check.due.clone(), &check.articles[..]),
        (None, &["PJ18".to_owned()][..])
    );
    let reply = deadline(&out.status, Step::ProviderReply, 1);
    assert_eq!(reply.due, None);
    assert_eq!(out.status.due, None);
    assert_eq!(
        out.status.waiting_on.as_deref(),
        Some("provider/civil-affairs")
    );
    // Nothing can breach: the next change is the end of the licence.
    assert_eq!(out.next_wakeup, Some(at(VALID_UNTIL)));
}

#[test]
fn panjin_unconditional_data_is_self_service_pj17() {
    let out = unconditional(Preset::Panjin);
    let d = deadline(&out.status, Step::UnconditionalProvision, 1);
    assert_eq!(
        (d.due.clone(), &d.articles[..]),
        (None, &["PJ17".to_owned()][..])
    );
    assert_eq!(out.status.phase, Some(GrantPhase::Active));
}

#[test]
fn a_regulation_override_replaces_the_presets_days() {
    let mut case = Case::new(Preset::Hebei, ShareType::Conditional);
    case.regulation.overrides.push((Step::ProviderReply, 2));
    let out = case.step(None, RECEIVED);
    let reply = deadline(&out.status, Step::ProviderReply, 1);
    assert_eq!(reply.due, Some(t(WD2)));
    assert!(reply.note.as_deref().unwrap().contains("override"));
}

#[test]
fn emergency_requests_carry_a_note_to_reply_promptly_xj21() {
    let mut case = Case::new(Preset::Xinjiang, ShareType::Conditional);
    case.spec.emergency = true;
    let out = case.step(None, RECEIVED);
    let reply = deadline(&out.status, Step::ProviderReply, 1);
    assert!(reply.note.as_deref().unwrap().contains("promptly (XJ21)"));
}
