#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::rules::test_support::{fields, now};
use crate::v1alpha1::AgeRecipient;

fn spec() -> BackupPolicySpec {
    serde_yaml::from_str(include_str!("../fixtures/backup.yaml")).unwrap()
}

#[test]
fn the_fixture_policy_is_valid() {
    assert_eq!(validate(&spec(), now()), []);
}

#[test]
fn an_unknown_time_zone_is_named() {
    let mut spec = spec();
    spec.time_zone = "Asia/Beijing".into();
    let problems = validate(&spec, now());
    assert_eq!(fields(&problems), [("spec.timeZone", None)]);
    assert!(problems[0].message.contains("Asia/Beijing"));
}

#[test]
fn a_schedule_has_exactly_five_fields() {
    for bad in ["0 0 2 * * *", "0 2 * *", "@daily"] {
        let mut spec = spec();
        spec.schedule = bad.into();
        let problems = validate(&spec, now());
        assert_eq!(
            fields(&problems),
            [("spec.schedule", Some("SEC-1"))],
            "{bad}"
        );
        assert!(problems[0].message.contains("five"), "{bad}: {problems:?}");
    }
}

#[test]
fn a_schedule_with_bad_syntax_is_refused() {
    for bad in [
        "61 2 * * *",
        "0 25 * * *",
        "0 2 32 * *",
        "x 2 * * *",
        "0 2 * * 9",
    ] {
        let mut spec = spec();
        spec.schedule = bad.into();
        assert_eq!(
            fields(&validate(&spec, now())),
            [("spec.schedule", Some("SEC-1"))],
            "{bad}"
        );
    }
}

#[test]
fn common_schedules_parse() {
    for good in [
        "*/15 * * * *",
        "0 2 * * 1-5",
        "0 0 1 * *",
        "30 3 * * SUN",
        "0 2,14 * * *",
    ] {
        assert!(parse_schedule(good).is_ok(), "{good}");
    }
}

#[test]
fn a_bad_verification_schedule_is_named() {
    let mut spec = spec();
    spec.verification.as_mut().unwrap().schedule = "every sunday".into();
    assert_eq!(
        fields(&validate(&spec, now())),
        [("spec.verification.schedule", None)]
    );
}

#[test]
fn an_rpo_must_parse() {
    let mut spec = spec();
    spec.rpo = "1w".into();
    assert_eq!(fields(&validate(&spec, now())), [("spec.rpo", None)]);
}

#[test]
fn a_schedule_that_cannot_meet_the_rpo_is_refused_sec_1() {
    let mut spec = spec();
    spec.rpo = "12h".into();
    let problems = validate(&spec, now());
    assert_eq!(fields(&problems), [("spec.rpo", Some("SEC-1"))]);
    assert!(problems[0].message.contains("up to 1d"), "{problems:?}");
}

#[test]
fn a_weekday_schedule_needs_an_rpo_that_spans_the_weekend() {
    let mut spec = spec();
    spec.schedule = "0 2 * * 1-5".into();
    spec.rpo = "26h".into();
    let problems = validate(&spec, now());
    assert!(problems[0].message.contains("3d"), "{problems:?}");
    spec.rpo = "3d".into();
    assert_eq!(validate(&spec, now()), []);
}

#[test]
fn a_mistyped_age_recipient_is_refused_sec_1() {
    let mut spec = spec();
    spec.encryption.recipients.push(AgeRecipient(
        "age1sqdtl4dvwcthrcj5cyd00et6r8qu29zlmjdd236aykeuxzswc4xsxfasn6".into(),
    ));
    assert_eq!(
        fields(&validate(&spec, now())),
        [("spec.encryption.recipients[1]", Some("SEC-1"))]
    );
}

#[test]
fn backups_without_a_recipient_are_refused_sec_1() {
    let mut spec = spec();
    spec.encryption.recipients.clear();
    assert_eq!(
        fields(&validate(&spec, now())),
        [("spec.encryption", Some("SEC-1"))]
    );
}

#[test]
fn off_site_backups_use_https_except_on_loopback_sec_2() {
    let mut spec = spec();
    spec.destinations.offsite.endpoint = "http://s3.offsite.example.org".into();
    assert_eq!(
        fields(&validate(&spec, now())),
        [("spec.destinations.offsite.endpoint", Some("SEC-2"))]
    );
    spec.destinations.offsite.endpoint = "http://127.0.0.1:9000".into();
    assert_eq!(validate(&spec, now()), []);
}

#[test]
fn a_bucket_name_follows_the_s3_rules() {
    let mut spec = spec();
    spec.destinations.offsite.bucket = "Gongshu_Offsite".into();
    assert_eq!(
        fields(&validate(&spec, now())),
        [("spec.destinations.offsite.bucket", None)]
    );
}
