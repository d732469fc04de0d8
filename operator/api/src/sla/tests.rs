//! The SLA figures on the real 2026 calendar. Friday 13 February 2026 is followed by the
//! Spring Festival make-up Saturday 14 February (a working day), then the holiday 15–23.

#![allow(clippy::unwrap_used)]

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;
use crate::{
    calendar::calendar_2026_cn,
    v1alpha1::{ProviderRef, ShareType},
};

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn entry(
    step: Step,
    actor: &str,
    started: &str,
    due: Option<&str>,
    completed: Option<&str>,
) -> DeadlineStatus {
    DeadlineStatus {
        step,
        actor: actor.into(),
        started: Time(at(started)),
        due: due.map(|d| Time(at(d))),
        completed: completed.map(|c| Time(at(c))),
        breached: false,
        articles: vec!["HB15".into()],
        generation: Some(1),
        note: None,
    }
}

fn grant(deadlines: Vec<DeadlineStatus>) -> ShareGrantStatus {
    ShareGrantStatus {
        provider: Some(ProviderRef {
            department: "public-security".into(),
            namespace: "dept-public-security".into(),
            catalog: "public-security".into(),
            share_type: ShareType::Conditional,
        }),
        deadlines,
        ..ShareGrantStatus::default()
    }
}

#[test]
fn a_pending_provider_reply_waits_on_the_provider_and_a_done_step_on_nobody_sh_4() {
    let status = grant(vec![
        entry(
            Step::ComplianceReview,
            "authority",
            "2026-02-10T02:00:00Z",
            Some("2026-02-12T16:00:00Z"),
            Some("2026-02-11T02:00:00Z"),
        ),
        entry(
            Step::ProviderReply,
            "provider",
            "2026-02-11T02:00:00Z",
            Some("2026-02-25T16:00:00Z"),
            None,
        ),
    ]);
    let steps = grant_steps("civil-affairs", "dept-civil-affairs", "g", &status);
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].department, "public-security");
    assert_eq!(steps[0].step, Step::ProviderReply);
    assert_eq!(steps[0].subject, "ShareGrant/dept-civil-affairs/g");
}

#[test]
fn overdue_steps_count_as_breached_at_their_due_time_sup_2() {
    let due = "2026-02-25T16:00:00Z";
    let steps = grant_steps(
        "civil-affairs",
        "ns",
        "g",
        &grant(vec![entry(
            Step::ProviderReply,
            "provider",
            "2026-02-11T02:00:00Z",
            Some(due),
            None,
        )]),
    );
    let calendar = calendar_2026_cn();
    let before = gauges(
        &steps,
        [],
        &calendar,
        at(due) - SignedDuration::from_secs(1),
    );
    let key = ("public-security".to_owned(), Step::ProviderReply);
    assert_eq!(before.deadlines[&key].breached, 0);
    let after = gauges(&steps, [], &calendar, at(due));
    assert_eq!(
        after.deadlines[&key].breached, 1,
        "overdue from the due instant on"
    );
    assert_eq!(after.deadlines[&key].next_due, at(due));
}

#[test]
fn due_within_one_working_day_follows_the_calendar_not_24_hours_nm23() {
    // Friday 13 Feb 10:00 Shanghai. The next working day is the make-up Saturday 14th: a step
    // due at its end (Sat 24:00 = 16:00 UTC) is due within one working day; one due Tuesday
    // 24th (the first working day after the holiday) is not.
    let now = at("2026-02-13T02:00:00Z");
    let steps = vec![
        PendingStep {
            department: "a".into(),
            step: Step::ProviderReply,
            subject: "x".into(),
            started: now,
            due: Some(at("2026-02-14T16:00:00Z")),
        },
        PendingStep {
            department: "a".into(),
            step: Step::ProviderReply,
            subject: "y".into(),
            started: now,
            due: Some(at("2026-02-24T16:00:00Z")),
        },
    ];
    let g = gauges(&steps, [], &calendar_2026_cn(), now);
    let figures = &g.deadlines[&("a".to_owned(), Step::ProviderReply)];
    assert_eq!(figures.due_within_one_working_day, 1);
    assert_eq!(figures.breached, 0);
    assert_eq!(figures.next_due, at("2026-02-14T16:00:00Z"));
}

#[test]
fn queues_count_subjects_once_and_keep_the_oldest() {
    let step = |subject: &str, started: &str| PendingStep {
        department: AUTHORITY.into(),
        step: Step::ComplianceReview,
        subject: subject.into(),
        started: at(started),
        due: None,
    };
    let steps = vec![
        step("g1", "2026-03-02T00:00:00Z"),
        step("g1", "2026-03-01T00:00:00Z"),
        step("g2", "2026-03-03T00:00:00Z"),
    ];
    let g = gauges(&steps, [], &calendar_2026_cn(), at("2026-03-04T00:00:00Z"));
    assert_eq!(
        g.queues[AUTHORITY],
        Queue {
            depth: 2,
            oldest: at("2026-03-01T00:00:00Z")
        }
    );
    assert!(
        g.deadlines.is_empty(),
        "steps without a due time have no deadline figures"
    );
}

#[test]
fn grants_are_counted_by_consumer_department_and_phase() {
    let phases = [
        ("a".to_owned(), GrantPhase::Active),
        ("a".to_owned(), GrantPhase::Active),
        ("b".to_owned(), GrantPhase::ProviderReview),
    ];
    let g = gauges(&[], phases, &calendar_2026_cn(), at("2026-03-04T00:00:00Z"));
    assert_eq!(g.grants[&("a".to_owned(), GrantPhase::Active)], 2);
    assert_eq!(g.grants[&("b".to_owned(), GrantPhase::ProviderReview)], 1);
}

#[test]
fn a_breach_is_counted_once_when_first_recorded_sup_2() {
    let open = entry(
        Step::ProviderReply,
        "provider",
        "2026-02-11T02:00:00Z",
        Some("2026-02-25T16:00:00Z"),
        None,
    );
    let breached = DeadlineStatus {
        breached: true,
        ..open.clone()
    };
    assert_eq!(
        newly_breached(&[open], std::slice::from_ref(&breached)).count(),
        1
    );
    assert_eq!(
        newly_breached(
            std::slice::from_ref(&breached),
            std::slice::from_ref(&breached)
        )
        .count(),
        0
    );
}

#[test]
fn actors_map_to_departments() {
    assert_eq!(department_of("provider", "own", Some("prov")), "prov");
    assert_eq!(department_of("consumer", "own", Some("prov")), "own");
    assert_eq!(department_of("department", "own", None), "own");
    assert_eq!(department_of("authority", "own", None), AUTHORITY);
}
