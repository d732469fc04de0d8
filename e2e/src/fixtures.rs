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

/// A provider catalog in `namespace` of `department` declaring `<prefix>.households`
/// (conditional, as in [`provider_catalog`]) and `<prefix>.licences` (unconditional: shared
/// without the provider's review, SH-1, SH-4 first row).
pub fn mixed_catalog(namespace: &str, department: &str, prefix: &str) -> DataCatalog {
    let mut catalog = provider_catalog(namespace, department, prefix);
    catalog
        .spec
        .items
        .retain(|i| i.identifier == format!("{prefix}.households"));
    let yaml = format!(
        r#"
identifier: {prefix}.licences
title: Business licences
sourceDepartment: {department}
tier: base
classification: {{category: legal-entities/registration, grade: general}}
format: table
updateFrequency: daily
shareType: unconditional
fields:
  - {{name: credit_code, type: string, sensitivity: public}}
  - {{name: name, type: string, sensitivity: public}}
source:
  postgres: {{connectionSecretRef: {{name: db, key: uri}}, table: licences, keyColumns: [credit_code]}}
"#
    );
    catalog.spec.items.push(parse(&yaml));
    catalog
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

/// A provider department whose catalog is [`provider_catalog`] (item identifiers unique to the
/// test, under `prefix`) and a consumer department: the cast of most suites.
#[derive(Debug)]
pub struct Sharing {
    /// The connection.
    pub env: crate::harness::TestEnv,
    /// The provider's namespace (its catalog is named `catalog`).
    pub provider_ns: String,
    /// The provider's department code.
    pub provider: String,
    /// The consumer's namespace.
    pub consumer_ns: String,
    /// The prefix of the catalog's item identifiers.
    pub prefix: String,
}

impl Sharing {
    /// Creates both departments and the catalog (waiting out the webhook's cache lag); with
    /// `approve`, the authority approves every item with real Reviews first.
    pub async fn new(approve: bool) -> Result<Self, crate::Error> {
        let env = crate::harness::TestEnv::connect().await?;
        Self::on(env, provider_catalog, approve).await
    }

    /// A grant named `name` in the consumer's namespace for the provider's `<prefix>.<item>`.
    pub fn grant(&self, name: &str, item: &str, fields: &[&str], mode: &str) -> ShareGrant {
        grant(
            &self.consumer_ns,
            name,
            &format!("{}.{item}", self.prefix),
            fields,
            mode,
        )
    }

    /// The consumer's grants.
    pub fn grants(&self) -> kube::Api<ShareGrant> {
        kube::Api::namespaced(self.env.client.clone(), &self.consumer_ns)
    }

    /// Waits up to `timeout` until the consumer's grant `name` is in `phase`.
    pub async fn wait_phase(
        &self,
        name: &str,
        phase: gongshu_api::v1alpha1::GrantPhase,
        timeout: std::time::Duration,
    ) -> Result<ShareGrant, crate::Error> {
        self.env
            .wait_for(
                self.grants(),
                name,
                timeout,
                move |g: Option<&ShareGrant>| {
                    g.and_then(|g| g.status.as_ref())
                        .is_some_and(|s| s.phase == Some(phase))
                },
            )
            .await
    }

    /// The provider's Review of the consumer's grant `name` with `decision`.
    pub async fn provider_decides(&self, name: &str, decision: &str) -> Result<(), crate::Error> {
        self.env
            .review(
                &self.provider_ns,
                &format!("{decision}-{name}-{}", crate::harness::random_suffix()),
                serde_json::json!({"kind": "ShareGrant", "namespace": self.consumer_ns, "name": name}),
                decision,
                "Decided by the provider.",
            )
            .await
            .map(drop)
    }

    /// Creates `grant` (a conditional item's) in the consumer's namespace, has the provider
    /// approve it once it waits for the provider, and waits until it is Active, each step
    /// within `timeout`.
    pub async fn activate(
        &self,
        grant: &ShareGrant,
        timeout: std::time::Duration,
    ) -> Result<ShareGrant, crate::Error> {
        use gongshu_api::v1alpha1::GrantPhase;
        let name = grant.metadata.name.clone().unwrap_or_default();
        self.env
            .create_admitted(&self.grants(), grant, timeout)
            .await?;
        self.wait_phase(&name, GrantPhase::ProviderReview, timeout)
            .await?;
        self.provider_decides(&name, "approve").await?;
        self.wait_phase(&name, GrantPhase::Active, timeout).await
    }

    /// `kubectl create token <sa> -n <namespace> --audience <audience>`, as the README does.
    pub fn token(&self, namespace: &str, sa: &str, audience: &str) -> Result<String, crate::Error> {
        let out = self
            .env
            .kubectl()
            .args([
                "create",
                "token",
                sa,
                "-n",
                namespace,
                "--audience",
                audience,
            ])
            .output()
            .map_err(|source| crate::Error::Spawn {
                program: "kubectl".into(),
                source,
            })?;
        if !out.status.success() {
            return Err(crate::Error::Harness(format!(
                "kubectl create token {sa}: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// The same cast on `env`, the provider declaring `catalog(namespace, department, prefix)`
    /// (e.g. [`provider_catalog`] or [`mixed_catalog`]).
    pub async fn on(
        env: crate::harness::TestEnv,
        catalog: fn(&str, &str, &str) -> DataCatalog,
        approve: bool,
    ) -> Result<Self, crate::Error> {
        use kube::Api;
        let (provider_ns, provider) = env.department("provider").await?;
        let (consumer_ns, _) = env.department("consumer").await?;
        let prefix = format!("e2e-{}", crate::harness::random_suffix());
        let catalogs: Api<DataCatalog> = Api::namespaced(env.client.clone(), &provider_ns);
        let declared = catalog(&provider_ns, &provider, &prefix);
        env.create_admitted(&catalogs, &declared, std::time::Duration::from_secs(30))
            .await?;
        if approve {
            env.approve_items(&provider_ns, "catalog").await?;
        }
        Ok(Self {
            env,
            provider_ns,
            provider,
            consumer_ns,
            prefix,
        })
    }
}
