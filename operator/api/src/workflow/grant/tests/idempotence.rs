//! A restarted operator resumes from the status it wrote: evaluating again gives the same
//! status and no event twice, also after a round trip through the apiserver's JSON.

use super::*;
use crate::v1alpha1::GrantPhase;

/// The status as the apiserver stores and returns it.
fn round_trip(status: &ShareGrantStatus) -> ShareGrantStatus {
    serde_json::from_value(serde_json::to_value(status).unwrap()).unwrap()
}

/// A grant's life, evaluated at every instant by one operator, and by operators that restart
/// between every two instants (reading back the JSON status). Both must agree.
#[test]
fn a_restarted_operator_resumes_exactly_and_reports_nothing_twice() {
    let mut case = Case::new(Preset::Hebei, ShareType::Conditional);
    case.add(authority(
        "early",
        ReviewDecision::Approve,
        "2026-02-24T02:00:00Z",
    ));
    case.add(authority("coordinated", ReviewDecision::Approve, MONDAY));
    case.add(provider(
        "stop",
        ReviewDecision::Revoke,
        "2026-03-10T02:00:00Z",
    ));
    let times = [
        RECEIVED,
        "2026-02-24T03:00:00Z",
        WD5,
        "2026-02-28T00:00:00Z",
        MONDAY,
        "2026-03-05T00:00:00Z",
        "2026-03-10T02:00:00Z",
        "2026-03-11T00:00:00Z",
    ];
    let mut status: Option<ShareGrantStatus> = None;
    let mut all_events = Vec::new();
    for now in times {
        let out = case.step(status.as_ref(), now);
        all_events.extend(out.events.clone());
        let restarted = case.eval(Some(&round_trip(&out.status)), now);
        assert_eq!(restarted.status, out.status, "restart at {now}");
        assert_eq!(restarted.events, []);
        status = Some(round_trip(&out.status));
    }
    let status = status.unwrap();
    assert_eq!(status.phase, Some(GrantPhase::Revoked));
    assert_eq!(
        reasons(&all_events),
        [
            "ProviderReview",
            "ReviewIgnored",
            "DeadlineBreached",
            "Escalated",
            "Active",
            "Revoked"
        ]
    );
    // Each breach is counted once, however many times the operator looked.
    let breaches = all_events
        .iter()
        .filter(|e| e.reason == "DeadlineBreached")
        .count();
    assert_eq!(breaches, 1);
}

#[test]
fn evaluating_later_without_news_changes_nothing() {
    // Same facts, a later clock that passes no due time or end: nothing changes.
    for share_type in [
        ShareType::Unconditional,
        ShareType::Conditional,
        ShareType::NotShared,
    ] {
        let mut case = Case::new(Preset::Xinjiang, share_type);
        case.spec.mode = ShareMode::Verify;
        let first = case.step(None, RECEIVED);
        let later = case.eval(Some(&first.status), "2026-02-25T00:00:00Z");
        assert_eq!(later.status, first.status, "{share_type:?}");
        assert_eq!(later.events, []);
    }
}

#[test]
fn the_wake_up_is_the_next_due_time_then_the_end_of_the_licence() {
    let case = Case::new(Preset::Yunnan, ShareType::Conditional);
    let first = case.step(None, RECEIVED);
    assert_eq!(first.next_wakeup, Some(at(WD5)));
    let breached = case.step(Some(&first.status), WD5);
    assert_eq!(breached.next_wakeup, Some(at(VALID_UNTIL)));
}
