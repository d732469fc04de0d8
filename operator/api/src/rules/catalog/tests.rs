#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::rules::test_support::{fields, now};
use crate::status::{INVALID_SPEC, NOT_A_DEPARTMENT, READY, STALLED, find, is_true};

fn spec() -> DataCatalogSpec {
    serde_yaml::from_str(include_str!("../fixtures/catalog.yaml")).unwrap()
}

const DEPARTMENT: CatalogContext<'static> = CatalogContext {
    namespace: "civil-affairs",
    department: Some("civil-affairs"),
};

#[test]
fn the_fixture_catalog_in_a_department_namespace_is_valid() {
    assert_eq!(validate(&spec(), &DEPARTMENT), []);
}

#[test]
fn a_catalog_outside_a_department_namespace_names_the_missing_label() {
    let ctx = CatalogContext {
        namespace: "scratch",
        department: None,
    };
    let problems = validate(&spec(), &ctx);
    assert_eq!(fields(&problems), [("metadata.namespace", None)]);
    assert!(problems[0].message.contains("gongshu.io/department"));
    assert!(problems[0].message.contains("scratch"));
}

#[test]
fn a_department_label_that_is_not_a_code_is_a_problem() {
    let ctx = CatalogContext {
        namespace: "x",
        department: Some("Civil Affairs"),
    };
    assert_eq!(
        fields(&validate(&spec(), &ctx)),
        [("metadata.namespace", None)]
    );
}

#[test]
fn a_source_department_must_be_a_department_code_cat_4() {
    let mut spec = spec();
    spec.items[1].source_department = "Civil_Affairs".into();
    let problems = validate(&spec, &DEPARTMENT);
    assert_eq!(
        fields(&problems),
        [("spec.items[1].sourceDepartment", Some("CAT-4"))]
    );
}

#[test]
fn a_blank_legal_basis_does_not_pass_for_a_conditional_item_cat_8() {
    let mut spec = spec();
    spec.items[0].legal_basis = Some("   ".into());
    spec.items[0].share_conditions = None;
    assert_eq!(
        fields(&validate(&spec, &DEPARTMENT)),
        [
            ("spec.items[0].legalBasis", Some("CAT-8")),
            ("spec.items[0].shareConditions", Some("CAT-8"))
        ]
    );
}

#[test]
fn conditional_opening_states_its_conditions_op_1() {
    let mut spec = spec();
    spec.items[1].open_type = OpenType::Conditional;
    assert_eq!(
        fields(&validate(&spec, &DEPARTMENT)),
        [("spec.items[1].openConditions", Some("OP-1"))]
    );
}

#[test]
fn duplicate_identifiers_and_field_names_are_reported() {
    let mut spec = spec();
    spec.items[1].identifier = spec.items[0].identifier.clone();
    let field = spec.items[1].fields[0].clone();
    spec.items[1].fields.push(field);
    assert_eq!(
        fields(&validate(&spec, &DEPARTMENT)),
        [("spec.items[1]", None), ("spec.items[1].fields[2]", None)]
    );
}

#[test]
fn new_items_are_submitted_for_review_and_the_catalog_is_ready_cat_2() {
    let status = status(&spec(), None, Some(1), &[], now());
    assert_eq!(status.item_count, Some(2));
    assert_eq!(status.approved_count, Some(0));
    assert!(status.items.iter().all(|i| i.review == ItemReview::Pending));
    assert!(status.items.iter().all(|i| i.spec_digest.is_some()));
    let ready = find(&status.common.conditions, READY).unwrap();
    assert_eq!(ready.status, "True");
    assert_eq!(ready.reason, "Accepted");
    assert_eq!(
        ready.message,
        "2 items submitted for the authority's review (CAT-2)"
    );
    assert_eq!(status.common.observed_generation, Some(1));
}

#[test]
fn an_unchanged_approved_item_keeps_its_state() {
    let spec = spec();
    let mut previous = status(&spec, None, Some(1), &[], now());
    previous.items[0].review = ItemReview::Approved;
    let next = status(&spec, Some(&previous), Some(2), &[], now());
    assert_eq!(next.items[0].review, ItemReview::Approved);
    assert_eq!(next.approved_count, Some(1));
    assert_eq!(
        find(&next.common.conditions, READY).unwrap().message,
        "2 items: 1 approved, 1 pending the authority's review (CAT-2)"
    );
}

#[test]
fn a_changed_approved_item_goes_back_to_review_cat_2() {
    let mut spec = spec();
    let mut previous = status(&spec, None, Some(1), &[], now());
    previous.items[1].review = ItemReview::Approved;
    spec.items[1].share_type = ShareType::Conditional;
    spec.items[1].share_conditions = Some("only for statistics".into());
    spec.items[1].legal_basis = Some("Statistics Law".into());
    let next = status(&spec, Some(&previous), Some(2), &[], now());
    assert_eq!(next.items[1].review, ItemReview::Pending);
    assert_eq!(next.approved_count, Some(0));
    assert!(
        next.items[1]
            .message
            .as_deref()
            .unwrap()
            .contains("changed")
    );
}

#[test]
fn a_removed_item_leaves_the_status() {
    let mut spec = spec();
    let previous = status(&spec, None, Some(1), &[], now());
    spec.items.truncate(1);
    let next = status(&spec, Some(&previous), Some(2), &[], now());
    assert_eq!(next.items.len(), 1);
    assert_eq!(next.item_count, Some(1));
}

#[test]
fn an_invalid_catalog_stalls_naming_the_field_and_keeps_item_states() {
    let mut spec = spec();
    let mut previous = status(&spec, None, Some(1), &[], now());
    previous.items[0].review = ItemReview::Approved;
    spec.items[1].source_department = "X".into();
    let problems = validate(&spec, &DEPARTMENT);
    let next = status(&spec, Some(&previous), Some(2), &problems, now());
    assert!(is_true(&next.common.conditions, STALLED));
    let ready = find(&next.common.conditions, READY).unwrap();
    assert_eq!(ready.reason, INVALID_SPEC);
    assert!(
        ready
            .message
            .starts_with("spec.items[1].sourceDepartment: ")
    );
    assert!(ready.message.ends_with("(CAT-4)"));
    assert_eq!(next.items, previous.items);
}

#[test]
fn an_unlabelled_namespace_stalls_with_reason_not_a_department() {
    let ctx = CatalogContext {
        namespace: "scratch",
        department: None,
    };
    let problems = validate(&spec(), &ctx);
    let next = status(&spec(), None, Some(1), &problems, now());
    assert_eq!(
        find(&next.common.conditions, STALLED).unwrap().reason,
        NOT_A_DEPARTMENT
    );
    assert!(
        next.items.is_empty(),
        "nothing is submitted from a non-department"
    );
}

#[test]
fn the_digest_changes_with_the_item_and_only_with_it() {
    let spec = spec();
    assert_eq!(
        item_digest(&spec.items[0]),
        item_digest(&spec.items[0].clone())
    );
    assert_ne!(item_digest(&spec.items[0]), item_digest(&spec.items[1]));
    assert!(item_digest(&spec.items[0]).starts_with("sha256:"));
}
