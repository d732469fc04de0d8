//! The review workflows against the real apiserver and the operator: the authority approves
//! catalog items with `Review`s (CAT-2), and a grant goes through the provider's review to
//! `Active`, `Denied`, `Expired` or `Revoked` (SH-4, SH-5). Each test has its own department
//! namespaces and item identifiers; the authority is the default `gongshu-system`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use gongshu_api::v1alpha1::{DataCatalog, GrantPhase, ItemReview, ShareGrant};
use gongshu_e2e::{
    fixtures::Sharing,
    fixtures::grant,
    harness::{TestEnv, random_suffix},
};
use kube::Api;
use serde_json::json;

const CACHE_LAG: Duration = Duration::from_secs(15);
const WORKFLOW: Duration = Duration::from_secs(60);

/// A provider with a catalog (`<prefix>.households` conditional, `<prefix>.photos` notShared)
/// and a consumer department.
struct Setup {
    env: TestEnv,
    provider_ns: String,
    consumer_ns: String,
    prefix: String,
}

impl Setup {
    async fn new(approve: bool) -> Self {
        let Sharing {
            env,
            provider_ns,
            consumer_ns,
            prefix,
            ..
        } = Sharing::new(approve)
            .await
            .expect("provider and consumer departments");
        Self {
            env,
            provider_ns,
            consumer_ns,
            prefix,
        }
    }

    fn grants(&self) -> Api<ShareGrant> {
        Api::namespaced(self.env.client.clone(), &self.consumer_ns)
    }

    /// Requests `<prefix>.households` as `name`, valid until `valid_until`, and waits until
    /// the grant waits for its provider (a conditional item, SH-4).
    async fn request(&self, name: &str, valid_until: Option<String>) -> ShareGrant {
        let mut g = grant(
            &self.consumer_ns,
            name,
            &format!("{}.households", self.prefix),
            &["citizen_id", "name"],
            "api",
        );
        if let Some(until) = valid_until {
            g.spec.valid_until = serde_json::from_value(json!(until)).unwrap();
        }
        self.env
            .create_admitted(&self.grants(), &g, CACHE_LAG)
            .await
            .expect("a grant of shareable fields of an approved item is admitted");
        self.wait_phase(name, GrantPhase::ProviderReview).await
    }

    /// The provider's Review of grant `name`.
    async fn provider_decides(&self, name: &str, decision: &str, reason: &str) {
        self.env
            .review(
                &self.provider_ns,
                &format!("{decision}-{name}"),
                json!({"kind": "ShareGrant", "namespace": self.consumer_ns, "name": name}),
                decision,
                reason,
            )
            .await
            .expect("the provider decides its item's grants");
    }

    async fn wait_phase(&self, name: &str, phase: GrantPhase) -> ShareGrant {
        self.env
            .wait_for(
                self.grants(),
                name,
                WORKFLOW,
                move |g: Option<&ShareGrant>| {
                    g.and_then(|g| g.status.as_ref())
                        .is_some_and(|s| s.phase == Some(phase))
                },
            )
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn the_authoritys_review_approves_a_catalog_item_cat_2() {
    let s = Setup::new(false).await;
    let catalogs: Api<DataCatalog> = Api::namespaced(s.env.client.clone(), &s.provider_ns);
    let households = format!("{}.households", s.prefix);
    s.env
        .review(
            TestEnv::AUTHORITY_NAMESPACE,
            &format!("approve-{}", random_suffix()),
            json!({"kind": "CatalogItem", "namespace": s.provider_ns, "name": "catalog", "item": households}),
            "approve",
            "",
        )
        .await
        .expect("the authority reviews catalog items");
    let review_of = |c: &DataCatalog, id: &str| {
        c.status
            .as_ref()
            .and_then(|s| s.items.iter().find(|i| i.identifier == id))
            .map(|i| i.review)
    };
    let id = households.clone();
    let catalog = s
        .env
        .wait_for(
            catalogs,
            "catalog",
            WORKFLOW,
            move |c: Option<&DataCatalog>| {
                c.is_some_and(|c| review_of(c, &id) == Some(ItemReview::Approved))
            },
        )
        .await
        .unwrap();
    assert_eq!(
        review_of(&catalog, &format!("{}.photos", s.prefix)),
        Some(ItemReview::Pending),
        "an item without a Review stays pending (CAT-2)"
    );
}

#[tokio::test]
async fn the_providers_approval_makes_a_grant_active_with_an_endpoint_sh_4() {
    let s = Setup::new(true).await;
    let waiting = s.request("allowance", None).await;
    let status = waiting.status.unwrap();
    assert!(
        status
            .waiting_on
            .as_deref()
            .is_some_and(|w| w.starts_with("provider")),
        "the provider decides a conditional item's grant (SH-4): {status:?}"
    );
    assert!(status.due.is_some(), "the provider's deadline is in status");
    assert!(status.endpoint.is_none(), "no endpoint before approval");

    s.provider_decides("allowance", "approve", "").await;
    let active = s.wait_phase("allowance", GrantPhase::Active).await;
    let endpoint = active
        .status
        .unwrap()
        .endpoint
        .expect("an active grant has an endpoint");
    assert_eq!(
        endpoint,
        format!(
            "https://gongshu-exchange.gongshu-system.svc/v1/grants/{}/allowance",
            s.consumer_ns
        )
    );
}

#[tokio::test]
async fn a_providers_refusal_with_reasons_denies_the_grant_sh_4() {
    let s = Setup::new(true).await;
    s.request("allowance", None).await;
    s.provider_decides(
        "allowance",
        "deny",
        "The scenario does not need household addresses.",
    )
    .await;
    let denied = s.wait_phase("allowance", GrantPhase::Denied).await;
    let status = denied.status.unwrap();
    let decision = status.decision.expect("a denial records its decision");
    assert_eq!(
        decision.reason.as_deref(),
        Some("The scenario does not need household addresses.")
    );
    assert!(status.endpoint.is_none(), "a denied grant has no endpoint");
}

#[tokio::test]
async fn an_active_grant_expires_at_valid_until_sh_5() {
    let s = Setup::new(true).await;
    let until = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(20);
    s.request(
        "short",
        Some(until.round(jiff::Unit::Second).unwrap().to_string()),
    )
    .await;
    s.provider_decides("short", "approve", "").await;
    s.wait_phase("short", GrantPhase::Active).await;
    let expired = s.wait_phase("short", GrantPhase::Expired).await;
    assert!(
        expired.status.unwrap().endpoint.is_none(),
        "an expired grant has no endpoint"
    );
}

#[tokio::test]
async fn a_providers_revocation_ends_an_active_grant_sh_4() {
    let s = Setup::new(true).await;
    s.request("allowance", None).await;
    s.provider_decides("allowance", "approve", "").await;
    s.wait_phase("allowance", GrantPhase::Active).await;
    s.provider_decides("allowance", "revoke", "The allowance programme ended.")
        .await;
    let revoked = s.wait_phase("allowance", GrantPhase::Revoked).await;
    assert!(
        revoked.status.unwrap().endpoint.is_none(),
        "a revoked grant has no endpoint"
    );
}

#[test]
fn the_walkthrough_manifests_are_gongshu_objects() {
    use gongshu_api::v1alpha1::Review;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/walkthrough");
    let docs = |file: &str| -> Vec<serde_yaml::Value> {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        serde_yaml::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect()
    };
    for file in ["01-authority-reviews.yaml", "03-provider-reviews.yaml"] {
        for doc in docs(file) {
            let review: Review = serde_yaml::from_value(doc).unwrap();
            assert!(review.metadata.namespace.is_some(), "{file}: namespaced");
        }
    }
    let grants: Vec<ShareGrant> = docs("02-grants.yaml")
        .into_iter()
        .map(|d| serde_yaml::from_value(d).unwrap())
        .collect();
    assert_eq!(grants.len(), 4);
}
