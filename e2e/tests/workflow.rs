//! The review workflows against the real apiserver and the operator: the authority approves
//! catalog items with `Review`s (CAT-2), and a grant goes through the provider's review to
//! `Active`, `Denied`, `Expired`, `Revoked` or `Suspended` and back (SH-4, SH-5, SH-14), and an
//! active grant's edits narrow at once or go back to review (SH-5). Each test has its own department
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

    /// The authority's Review of grant `name` (names unique: the authority namespace is shared).
    async fn authority_decides(&self, name: &str, decision: &str, reason: &str) {
        self.env
            .review(
                TestEnv::AUTHORITY_NAMESPACE,
                &format!("{decision}-{name}-{}", random_suffix()),
                json!({"kind": "ShareGrant", "namespace": self.consumer_ns, "name": name}),
                decision,
                reason,
            )
            .await
            .expect("the authority decides any grant");
    }

    /// Merge-patches grant `name`'s spec with `patch` (through the webhook).
    async fn edit(&self, name: &str, patch: serde_json::Value) {
        use kube::api::{Patch, PatchParams};
        self.grants()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": patch })),
            )
            .await
            .expect("the edit is admitted");
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

#[tokio::test]
async fn the_authority_suspends_an_active_grant_and_resumes_it_sh_14() {
    let s = Setup::new(true).await;
    s.request("allowance", None).await;
    s.provider_decides("allowance", "approve", "").await;
    s.wait_phase("allowance", GrantPhase::Active).await;
    // The provider cannot suspend: only the competent body closes access (SH-14).
    s.provider_decides("allowance", "suspend", "Misuse reported.")
        .await;
    let provider_review = format!("{}/suspend-allowance", s.provider_ns);
    let ignored = s
        .env
        .wait_for(
            s.grants(),
            "allowance",
            WORKFLOW,
            move |g: Option<&ShareGrant>| {
                g.and_then(|g| g.status.as_ref()).is_some_and(|st| {
                    st.ignored_reviews
                        .iter()
                        .any(|r| r.review == provider_review)
                })
            },
        )
        .await
        .unwrap();
    assert_eq!(
        ignored.status.unwrap().phase,
        Some(GrantPhase::Active),
        "the provider's suspension is ignored, with the reason in status"
    );
    s.authority_decides(
        "allowance",
        "suspend",
        "Data used outside the stated scenario (SH-3); closed until corrected.",
    )
    .await;
    let suspended = s.wait_phase("allowance", GrantPhase::Suspended).await;
    let status = suspended.status.unwrap();
    assert!(status.endpoint.is_none(), "a suspended grant is not served");
    // At once, most likely within the suspension's second: creationTimestamp cannot order the
    // two, the time the operator saw each (status.receivedAt) does.
    s.authority_decides("allowance", "resume", "").await;
    let resumed = s.wait_phase("allowance", GrantPhase::Active).await;
    assert!(
        resumed.status.unwrap().endpoint.is_some(),
        "a resumed grant is served again"
    );
}

#[tokio::test]
async fn narrowing_an_active_grant_applies_at_once_and_widening_it_goes_back_to_review_sh_5() {
    let s = Setup::new(true).await;
    s.request("allowance", None).await;
    s.provider_decides("allowance", "approve", "").await;
    s.wait_phase("allowance", GrantPhase::Active).await;

    s.edit("allowance", json!({"fields": ["citizen_id"]})).await;
    let narrowed = s
        .env
        .wait_for(
            s.grants(),
            "allowance",
            WORKFLOW,
            |g: Option<&ShareGrant>| {
                g.and_then(|g| g.status.as_ref())
                    .and_then(|st| st.approved.as_ref())
                    .is_some_and(|a| a.terms.fields == ["citizen_id"])
            },
        )
        .await
        .unwrap();
    let status = narrowed.status.unwrap();
    assert_eq!(status.phase, Some(GrantPhase::Active), "no review needed");
    assert!(status.endpoint.is_some());

    s.edit("allowance", json!({"fields": ["citizen_id", "name"]}))
        .await;
    let widened = s.wait_phase("allowance", GrantPhase::ProviderReview).await;
    let status = widened.status.unwrap();
    let served = status.approved.as_ref().unwrap();
    assert_eq!(
        served.terms.fields,
        ["citizen_id"],
        "the approved, narrower terms stay in force meanwhile"
    );
    assert!(status.endpoint.is_some(), "and are still served");
    assert!(status.due.is_some(), "the provider has a new deadline");
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
