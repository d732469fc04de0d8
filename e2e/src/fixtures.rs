//! Objects the suites create, each unique per test (item identifiers are cluster-unique).

use gongshu_api::v1alpha1::{DataCatalog, ShareGrant};

/// A provider catalog in `namespace` of `department`, declaring `<prefix>.households`
/// (conditional; `ethnicity` not shareable) and `<prefix>.photos` (notShared).
pub fn provider_catalog(namespace: &str, department: &str, prefix: &str) -> DataCatalog {
    let yaml = format!(
        r#"
apiVersion: gongshu.io/v1alpha1
kind: DataCatalog
metadata: {{name: catalog, namespace: {namespace}}}
spec:
  items:
    - identifier: {prefix}.households
      title: Household registration
      sourceDepartment: {department}
      tier: base
      classification: {{category: population/household, grade: important}}
      format: table
      updateFrequency: daily
      shareType: conditional
      shareConditions: For social assistance.
      legalBasis: Household Registration Regulations art. 3
      fields:
        - {{name: citizen_id, type: string, sensitivity: personal}}
        - {{name: name, type: string, sensitivity: personal}}
        - {{name: ethnicity, type: string, sensitivity: sensitive, shareable: false}}
      source:
        postgres: {{connectionSecretRef: {{name: db, key: uri}}, table: households, keyColumns: [citizen_id]}}
    - identifier: {prefix}.photos
      title: Identity photos
      sourceDepartment: {department}
      tier: base
      classification: {{category: population/identity, grade: core}}
      format: table
      updateFrequency: onChange
      shareType: notShared
      legalBasis: Resident Identity Card Law art. 6
      fields:
        - {{name: citizen_id, type: string, sensitivity: personal}}
        - {{name: photo_sha256, type: string, sensitivity: personal, shareable: false}}
      source:
        postgres: {{connectionSecretRef: {{name: db, key: uri}}, table: photos, keyColumns: [citizen_id]}}
"#
    );
    parse(&yaml)
}

/// A grant named `name` in `namespace` for `item`'s `fields` in `mode`.
pub fn grant(namespace: &str, name: &str, item: &str, fields: &[&str], mode: &str) -> ShareGrant {
    let yaml = format!(
        r#"
apiVersion: gongshu.io/v1alpha1
kind: ShareGrant
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  item: {item}
  scenario: Verifying applicants for minimum living allowance.
  purpose: Check household composition of applicants.
  commitment: {{signedBy: Director, signedOn: "2026-11-20", document: MZ-2026-118}}
  fields: [{fields}]
  mode: {mode}
  validUntil: "2030-01-01T00:00:00Z"
  serviceAccounts: [allowance-app]
"#,
        fields = fields.join(", ")
    );
    parse(&yaml)
}

fn parse<K: serde::de::DeserializeOwned>(yaml: &str) -> K {
    match serde_yaml::from_str(yaml) {
        Ok(k) => k,
        // A fixture that does not parse is a bug in this file, not in the code under test.
        Err(e) => panic!("fixture does not parse: {e}\n{yaml}"),
    }
}
