#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::{
    status::{CALENDAR_INCOMPLETE, READY, STALLED, find, is_true},
    v1alpha1::Date,
};

fn spec() -> RegulationSpec {
    serde_yaml::from_str(include_str!("../fixtures/regulation.yaml")).unwrap()
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn now() -> Timestamp {
    at("2026-03-02T08:00:00Z")
}

fn fields(problems: &[Problem]) -> Vec<&str> {
    problems.iter().map(|p| p.field.as_str()).collect()
}

fn problems(spec: &RegulationSpec) -> Vec<Problem> {
    check(spec).err().unwrap_or_default()
}

#[test]
fn the_fixture_regulation_builds_its_calendar() {
    let calendar = check(&spec()).unwrap();
    assert!(calendar.covers(2026));
    assert!(
        calendar.is_working_day(civil::date(2026, 10, 10)),
        "make-up Saturday"
    );
    assert!(
        !calendar.is_working_day(civil::date(2026, 10, 5)),
        "holiday Monday"
    );
}

#[test]
fn a_date_that_does_not_exist_is_named_by_its_path() {
    let mut spec = spec();
    spec.calendar.years[0]
        .holidays
        .push(Date("2026-02-30".into()));
    let problems = problems(&spec);
    assert_eq!(fields(&problems), ["spec.calendar.years[0].holidays[6]"]);
    assert!(problems[0].message.contains("2026-02-30"));
}

#[test]
fn a_date_outside_its_year_is_named_with_the_year() {
    let mut spec = spec();
    spec.calendar.years[0]
        .holidays
        .push(Date("2027-01-01".into()));
    let problems = problems(&spec);
    assert_eq!(fields(&problems), ["spec.calendar.years[0].holidays[6]"]);
    assert_eq!(problems[0].message, "2027-01-01 is listed under year 2026");
}

#[test]
fn a_make_up_working_day_on_a_weekday_is_named() {
    let mut spec = spec();
    spec.calendar.years[0]
        .makeup_workdays
        .push(Date("2026-10-09".into()));
    let problems = problems(&spec);
    assert_eq!(
        fields(&problems),
        ["spec.calendar.years[0].makeupWorkdays[2]"]
    );
    assert!(problems[0].message.contains("Friday"), "{problems:?}");
}

#[test]
fn a_year_listed_twice_is_named() {
    let mut spec = spec();
    let year = spec.calendar.years[0].clone();
    spec.calendar.years.push(year);
    assert_eq!(fields(&problems(&spec)), ["spec.calendar.years[1].year"]);
}

#[test]
fn an_unknown_time_zone_and_a_bad_close_of_business_are_both_reported() {
    let mut spec = spec();
    spec.calendar.time_zone = "Mars/Olympus".into();
    spec.calendar.close_of_business = Some("00:00".into());
    assert_eq!(
        fields(&problems(&spec)),
        ["spec.calendar.timeZone", "spec.calendar.closeOfBusiness"]
    );
}

#[test]
fn a_close_of_business_sets_the_end_of_the_working_day() {
    let mut spec = spec();
    spec.calendar.close_of_business = Some("17:30".into());
    let calendar = check(&spec).unwrap();
    assert_eq!(
        calendar.close_of_business(),
        Some(civil::time(17, 30, 0, 0))
    );
}

#[test]
fn valid_dates_must_exist_and_be_in_order() {
    let mut spec = spec();
    spec.valid_until = Some("2024-02-29".into());
    assert_eq!(fields(&problems(&spec)), ["spec.validUntil"]);
    spec.valid_from = "2023-02-29".into();
    assert_eq!(fields(&problems(&spec)), ["spec.validFrom"]);
}

#[test]
fn overrides_replace_the_preset_and_say_so_sh_4() {
    let table = effective_deadlines(Preset::Yunnan, &spec().deadlines);
    assert_eq!(table.len(), Step::all().len());
    let reply = table
        .iter()
        .find(|d| d.step == Step::ProviderReply)
        .unwrap();
    assert_eq!(
        (reply.rule.as_str(), reply.working_days),
        ("within", Some(3))
    );
    assert_eq!(reply.source, ["override"]);
    assert_eq!(reply.actor.as_deref(), Some("provider"));
    let provision = table
        .iter()
        .find(|d| d.step == Step::UnconditionalProvision)
        .unwrap();
    assert_eq!(
        (provision.rule.as_str(), provision.working_days),
        ("within", Some(2))
    );
    assert_eq!(provision.source, ["YN29"]);
    let review = table
        .iter()
        .find(|d| d.step == Step::ComplianceReview)
        .unwrap();
    assert_eq!(review.rule, "notApplicable");
}

#[test]
fn direct_and_unbounded_steps_keep_their_kind_sh_4() {
    let table = effective_deadlines(Preset::InnerMongolia, &[]);
    let unconditional = table
        .iter()
        .find(|d| d.step == Step::UnconditionalProvision)
        .unwrap();
    assert_eq!(
        (unconditional.rule.as_str(), unconditional.working_days),
        ("direct", None)
    );
    let table = effective_deadlines(Preset::Panjin, &[]);
    let reply = table
        .iter()
        .find(|d| d.step == Step::ProviderReply)
        .unwrap();
    assert_eq!(reply.rule, "unbounded");
    assert_eq!(reply.source, ["PJ18"]);
}

#[test]
fn the_default_regulation_is_in_force_and_lists_its_calendar_years() {
    let spec = spec();
    let status = status("default", &spec, None, Some(1), &check(&spec), now());
    let ready = find(&status.common.conditions, READY).unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Accepted")
    );
    assert_eq!(ready.message, "in force: yunnan deadlines with 1 override");
    assert_eq!(status.calendar_years, [2026]);
    assert!(!is_true(&status.common.conditions, CALENDAR_INCOMPLETE));
    assert_eq!(status.effective_deadlines.len(), Step::all().len());
}

#[test]
fn another_regulation_is_not_in_use() {
    let spec = spec();
    let status = status("draft", &spec, None, Some(1), &check(&spec), now());
    let ready = find(&status.common.conditions, READY).unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "NotInUse")
    );
    assert!(!is_true(&status.common.conditions, STALLED));
}

#[test]
fn a_year_without_holiday_data_raises_calendar_incomplete() {
    let spec = spec();
    let in_2027 = at("2027-03-01T00:00:00Z");
    let status = status("default", &spec, None, Some(1), &check(&spec), in_2027);
    let incomplete = find(&status.common.conditions, CALENDAR_INCOMPLETE).unwrap();
    assert_eq!(
        (incomplete.status.as_str(), incomplete.reason.as_str()),
        ("True", "YearNotCovered")
    );
    assert!(incomplete.message.contains("2027"));
    assert!(
        find(&status.common.conditions, READY)
            .unwrap()
            .message
            .contains("no holiday data for 2027")
    );
}

#[test]
fn in_december_the_next_year_must_be_covered_too() {
    let spec = spec();
    let december = at("2026-12-01T00:00:00Z");
    let status = status("default", &spec, None, Some(1), &check(&spec), december);
    let incomplete = find(&status.common.conditions, CALENDAR_INCOMPLETE).unwrap();
    assert_eq!(incomplete.status, "True");
    assert!(incomplete.message.starts_with("no holiday data for 2027"));
}

#[test]
fn a_trial_measure_past_its_validity_is_not_in_force() {
    let mut spec = spec();
    spec.preset = Preset::Xinjiang;
    spec.valid_from = "2023-02-17".into();
    spec.valid_until = Some("2025-02-16".into());
    let status = status("default", &spec, None, Some(1), &check(&spec), now());
    let ready = find(&status.common.conditions, READY).unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "NotInForce")
    );
    assert!(ready.message.contains("2025-02-16"));
}

#[test]
fn an_invalid_calendar_stalls_naming_the_date() {
    let mut spec = spec();
    spec.calendar.years[0]
        .makeup_workdays
        .push(Date("2026-10-09".into()));
    let status = status("default", &spec, None, Some(1), &check(&spec), now());
    let stalled = find(&status.common.conditions, STALLED).unwrap();
    assert_eq!(stalled.status, "True");
    assert!(
        stalled
            .message
            .starts_with("spec.calendar.years[0].makeupWorkdays[2]: ")
    );
    assert!(stalled.message.contains("2026-10-09"));
}

#[test]
fn drill_mode_says_so_in_a_condition_and_in_ready() {
    let mut spec = spec();
    spec.calendar.working_day_seconds = Some(4);
    let checked = check(&spec);
    let calendar = checked.as_ref().unwrap();
    // SH-4's 5-working-day provider reply falls 20 s after its trigger, Saturday or not.
    let saturday = at("2026-03-07T03:00:00Z");
    assert_eq!(
        calendar.deadline(saturday, 5).unwrap(),
        at("2026-03-07T03:00:20Z")
    );
    let status = status("default", &spec, None, Some(1), &checked, now());
    let drill = find(&status.common.conditions, crate::status::DRILL).unwrap();
    assert_eq!(
        (drill.status.as_str(), drill.reason.as_str()),
        ("True", "DrillMode")
    );
    assert!(drill.message.contains("4s"), "{}", drill.message);
    assert!(!drill.message.contains("  "), "{}", drill.message);
    let ready = find(&status.common.conditions, READY).unwrap();
    assert!(
        ready
            .message
            .ends_with("DRILL MODE: a working day lasts 4s")
    );
}

#[test]
fn a_real_calendar_reports_drill_false() {
    let spec = spec();
    let status = status("default", &spec, None, Some(1), &check(&spec), now());
    assert!(!is_true(&status.common.conditions, crate::status::DRILL));
    assert!(find(&status.common.conditions, crate::status::DRILL).is_some());
}

#[test]
fn a_drill_day_longer_than_a_day_is_named_by_its_path() {
    let mut spec = spec();
    spec.calendar.working_day_seconds = Some(86_401);
    assert_eq!(
        fields(&problems(&spec)),
        ["spec.calendar.workingDaySeconds"]
    );
    spec.calendar.working_day_seconds = Some(0);
    assert_eq!(
        fields(&problems(&spec)),
        ["spec.calendar.workingDaySeconds"]
    );
}
