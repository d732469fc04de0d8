#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;
use crate::rules::test_support::fields;
use crate::{
    status::{READY, STALLED, find, is_true},
    v1alpha1::ServiceAccountName,
};

fn spec() -> ShareGrantSpec {
    serde_yaml::from_str(include_str!("../fixtures/grant.yaml")).unwrap()
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn now() -> Timestamp {
    at("2026-03-02T08:00:00Z")
}

#[test]
fn the_fixture_grant_is_valid() {
    assert_eq!(validate(&spec(), now()), []);
}

#[test]
fn a_blank_scenario_or_purpose_is_refused_sh_2() {
    let mut spec = spec();
    spec.scenario = " ".repeat(12);
    spec.purpose = "\t".repeat(10);
    assert_eq!(
        fields(&validate(&spec, now())),
        [
            ("spec.scenario", Some("SH-2")),
            ("spec.purpose", Some("SH-2"))
        ]
    );
}

#[test]
fn a_commitment_needs_a_real_past_date_sh_2() {
    let mut spec = spec();
    spec.commitment.signed_on = "2026-02-30".into();
    assert_eq!(
        fields(&validate(&spec, now())),
        [("spec.commitment.signedOn", Some("SH-2"))]
    );
    spec.commitment.signed_on = "2026-03-03".into();
    let problems = validate(&spec, now());
    assert!(problems[0].message.contains("future"), "{problems:?}");
}

#[test]
fn a_commitment_signed_today_in_china_is_not_in_the_future() {
    let mut spec = spec();
    spec.commitment.signed_on = "2026-03-03".into();
    // 2026-03-02T17:00Z is already 2026-03-03 01:00 in Asia/Shanghai.
    assert_eq!(validate(&spec, at("2026-03-02T17:00:00Z")), []);
}

#[test]
fn requested_fields_are_named_once_and_not_blank_sh_5() {
    let mut spec = spec();
    spec.fields = vec!["district".into(), " ".into(), "district".into()];
    assert_eq!(
        fields(&validate(&spec, now())),
        [("spec.fields[1]", Some("SH-5")), ("spec.fields[2]", None)]
    );
    spec.fields.clear();
    assert_eq!(
        fields(&validate(&spec, now())),
        [("spec.fields", Some("SH-5"))]
    );
}

#[test]
fn service_accounts_are_named_and_valid() {
    let mut spec = spec();
    spec.service_accounts = vec![ServiceAccountName("Bad_Name".into())];
    assert_eq!(
        fields(&validate(&spec, now())),
        [("spec.serviceAccounts[0]", None)]
    );
    spec.service_accounts.clear();
    assert_eq!(
        fields(&validate(&spec, now())),
        [("spec.serviceAccounts", Some("SH-5"))]
    );
}

#[test]
fn a_valid_grant_is_submitted_and_not_ready_while_review_is_not_implemented() {
    let status = status(&spec(), None, Some(1), &[], now());
    assert_eq!(status.phase, Some(GrantPhase::Submitted));
    let ready = find(&status.common.conditions, READY).unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "Submitted")
    );
    assert!(ready.message.contains("awaiting the review workflow"));
    assert!(!is_true(&status.common.conditions, STALLED));
}

#[test]
fn a_grant_past_valid_until_is_expired_sh_5() {
    let mut spec = spec();
    spec.valid_until = Time(at("2026-03-01T00:00:00Z"));
    assert!(is_expired(&spec, now()));
    let status = status(&spec, None, Some(1), &[], now());
    assert_eq!(status.phase, Some(GrantPhase::Expired));
    assert_eq!(
        find(&status.common.conditions, READY).unwrap().reason,
        "Expired"
    );
    assert!(!is_true(&status.common.conditions, STALLED));
}

#[test]
fn an_expired_grant_stays_expired_when_valid_until_is_moved() {
    let mut spec = spec();
    spec.valid_until = Time(at("2026-03-01T00:00:00Z"));
    let expired = status(&spec, None, Some(1), &[], now());
    spec.valid_until = Time(at("2027-03-01T00:00:00Z"));
    let next = status(&spec, Some(&expired), Some(2), &[], now());
    assert_eq!(next.phase, Some(GrantPhase::Expired));
    assert!(
        find(&next.common.conditions, READY)
            .unwrap()
            .message
            .contains("does not revive")
    );
}

#[test]
fn an_expired_grant_keeps_its_message_on_the_next_reconcile() {
    let mut spec = spec();
    spec.valid_until = Time(at("2026-03-01T00:00:00Z"));
    let first = status(&spec, None, Some(1), &[], now());
    let second = status(&spec, Some(&first), Some(1), &[], now());
    assert_eq!(first, second, "an unchanged expired grant causes no write");
}

#[test]
fn an_invalid_grant_stalls_naming_the_field() {
    let mut spec = spec();
    spec.purpose = " ".repeat(10);
    let problems = validate(&spec, now());
    let status = status(&spec, None, Some(1), &problems, now());
    assert_eq!(status.phase, None, "an invalid grant was never submitted");
    let stalled = find(&status.common.conditions, STALLED).unwrap();
    assert_eq!(stalled.status, "True");
    assert_eq!(stalled.message, "spec.purpose: must not be blank (SH-2)");
}
