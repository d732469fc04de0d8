#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::v1alpha1::{DataCatalog, DataCatalogStatus, ItemReview, ItemStatus};

const PUBLIC_SECURITY: &str = include_str!("../../../../examples/20-catalog-public-security.yaml");

/// The example catalog, with every item approved unless listed in `pending`.
fn catalog(pending: &[&str]) -> DataCatalog {
    let mut catalog: DataCatalog = serde_yaml::from_str(PUBLIC_SECURITY).unwrap();
    let items = catalog
        .spec
        .items
        .iter()
        .map(|i| ItemStatus {
            identifier: i.identifier.clone(),
            review: if pending.contains(&i.identifier.as_str()) {
                ItemReview::Pending
            } else {
                ItemReview::Approved
            },
            published_at: None,
            next_reevaluation: None,
            message: None,
            spec_digest: None,
        })
        .collect();
    catalog.status = Some(DataCatalogStatus {
        items,
        ..Default::default()
    });
    catalog
}

fn departments(ns: &str) -> Option<String> {
    ns.strip_prefix("dept-").map(str::to_owned)
}

fn grant(yaml: &str) -> ShareGrantSpec {
    let base = r#"
item: population.household-registration
scenario: Verifying applicants for minimum living allowance.
purpose: Check household composition of applicants.
commitment: {signedBy: Director, signedOn: "2026-11-20", document: MZ-2026-118}
validUntil: "2027-11-20T00:00:00Z"
serviceAccounts: [allowance-app]
fields: [name, household_address]
mode: api
"#;
    let mut value: serde_yaml::Value = serde_yaml::from_str(base).unwrap();
    let patch: serde_yaml::Mapping = serde_yaml::from_str(yaml).unwrap_or_default();
    for (k, v) in patch {
        value.as_mapping_mut().unwrap().insert(k, v);
    }
    serde_yaml::from_value(value).unwrap()
}

fn rules_of(problems: &[Problem]) -> Vec<(&str, Option<&str>)> {
    problems
        .iter()
        .map(|p| (p.field.as_str(), p.rule))
        .collect()
}

#[test]
fn a_second_declaration_of_an_item_by_another_catalog_is_denied_cat_4() {
    let existing = catalog(&[]);
    let index = CatalogIndex::build([&existing]);
    let cluster = Cluster {
        catalogs: &index,
        authority_namespace: "gongshu-system",
    };
    let problems = catalog_rules(&existing, "dept-civil-affairs", "copy", &cluster);
    assert_eq!(
        rules_of(&problems)[0],
        ("spec.items[0].identifier", Some("CAT-4"))
    );
    assert!(
        problems[0]
            .message
            .contains("dept-public-security/public-security"),
        "{}",
        problems[0]
    );
    // Re-applying the same catalog is not a conflict with itself.
    assert_eq!(
        catalog_rules(
            &existing,
            "dept-public-security",
            "public-security",
            &cluster
        ),
        []
    );
}

fn catalog_rules(c: &DataCatalog, ns: &str, name: &str, cluster: &Cluster<'_>) -> Vec<Problem> {
    super::catalog(ns, name, &c.spec, cluster, &departments)
}

#[test]
fn a_catalog_outside_a_department_namespace_is_denied() {
    let index = CatalogIndex::default();
    let cluster = Cluster {
        catalogs: &index,
        authority_namespace: "gongshu-system",
    };
    let problems = catalog_rules(&catalog(&[]), "default", "c", &cluster);
    assert_eq!(rules_of(&problems), [("metadata.namespace", None)]);
    assert!(problems[0].message.contains("gongshu.io/department"));
}

#[test]
fn a_grant_for_an_approved_item_and_shareable_fields_is_admitted() {
    let existing = catalog(&[]);
    let index = CatalogIndex::build([&existing]);
    let cluster = Cluster {
        catalogs: &index,
        authority_namespace: "gongshu-system",
    };
    assert_eq!(
        super::grant("dept-civil-affairs", &grant(""), &cluster, &departments),
        []
    );
}

#[test]
fn a_grant_names_only_fields_the_item_has_and_shares_sh_5() {
    let existing = catalog(&[]);
    let index = CatalogIndex::build([&existing]);
    let cluster = Cluster {
        catalogs: &index,
        authority_namespace: "gongshu-system",
    };
    let problems = super::grant(
        "dept-civil-affairs",
        &grant("fields: [name, religion, ethnicity]"),
        &cluster,
        &departments,
    );
    assert_eq!(
        rules_of(&problems),
        [
            ("spec.fields[1]", Some("SH-5")),
            ("spec.fields[2]", Some("SH-5"))
        ]
    );
    assert!(problems[0].message.contains("no field religion"));
    assert!(problems[1].message.contains("not shareable"));
    // In verify mode a non-shareable field can be matched against without being revealed.
    let verify = super::grant(
        "dept-civil-affairs",
        &grant("{fields: [citizen_id, ethnicity], mode: verify}"),
        &cluster,
        &departments,
    );
    assert_eq!(verify, []);
}

#[test]
fn a_not_shared_item_is_granted_for_verification_only_sh_7() {
    let existing = catalog(&[]);
    let index = CatalogIndex::build([&existing]);
    let cluster = Cluster {
        catalogs: &index,
        authority_namespace: "gongshu-system",
    };
    let spec = grant("{item: population.identity-photos, fields: [citizen_id], mode: api}");
    let problems = super::grant("dept-civil-affairs", &spec, &cluster, &departments);
    assert_eq!(rules_of(&problems), [("spec.mode", Some("SH-7"))]);
}

#[test]
fn an_unpublished_or_unknown_item_cannot_be_requested_cat_2() {
    let existing = catalog(&["population.household-registration"]);
    let index = CatalogIndex::build([&existing]);
    let cluster = Cluster {
        catalogs: &index,
        authority_namespace: "gongshu-system",
    };
    let problems = super::grant("dept-civil-affairs", &grant(""), &cluster, &departments);
    assert_eq!(rules_of(&problems), [("spec.item", Some("CAT-2"))]);
    let unknown = super::grant(
        "dept-civil-affairs",
        &grant("item: population.pets"),
        &cluster,
        &departments,
    );
    assert_eq!(rules_of(&unknown), [("spec.item", None)]);
}

#[test]
fn a_grant_is_decided_by_its_provider_or_the_authority_only() {
    let existing = catalog(&[]);
    let index = CatalogIndex::build([&existing]);
    let cluster = Cluster {
        catalogs: &index,
        authority_namespace: "gongshu-system",
    };
    let review: ReviewSpec = serde_yaml::from_str(
        "{subject: {kind: ShareGrant, namespace: dept-civil-affairs, name: allowance}, decision: approve}",
    )
    .unwrap();
    let items = |_: &str, name: &str| {
        (name == "allowance").then(|| "population.household-registration".to_owned())
    };
    assert_eq!(
        super::review("dept-public-security", &review, &cluster, &items),
        []
    );
    assert_eq!(
        super::review("gongshu-system", &review, &cluster, &items),
        []
    );
    let problems = super::review("dept-civil-affairs", &review, &cluster, &items);
    assert_eq!(rules_of(&problems), [("metadata.namespace", Some("SH-4"))]);
    assert!(problems[0].message.contains("dept-public-security"));
}

#[test]
fn catalog_items_are_reviewed_by_the_authority_only_cat_2() {
    let existing = catalog(&["population.household-registration"]);
    let index = CatalogIndex::build([&existing]);
    let cluster = Cluster {
        catalogs: &index,
        authority_namespace: "gongshu-system",
    };
    let review: ReviewSpec = serde_yaml::from_str(
        "{subject: {kind: CatalogItem, namespace: dept-public-security, name: public-security, item: population.household-registration}, decision: approve}",
    )
    .unwrap();
    let none = |_: &str, _: &str| None;
    assert_eq!(
        super::review("gongshu-system", &review, &cluster, &none),
        []
    );
    let problems = super::review("dept-public-security", &review, &cluster, &none);
    assert_eq!(rules_of(&problems), [("metadata.namespace", Some("CAT-2"))]);
}
