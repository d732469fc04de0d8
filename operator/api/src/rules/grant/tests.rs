#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::rules::test_support::fields;
use crate::v1alpha1::ServiceAccountName;

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
