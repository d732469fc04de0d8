#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::rules::test_support::fields;

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
fn the_digest_changes_with_the_item_and_only_with_it() {
    let spec = spec();
    assert_eq!(
        item_digest(&spec.items[0]),
        item_digest(&spec.items[0].clone())
    );
    assert_ne!(item_digest(&spec.items[0]), item_digest(&spec.items[1]));
    assert!(item_digest(&spec.items[0]).starts_with("sha256:"));
}
