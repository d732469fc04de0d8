//! The admission webhook against the real apiserver: rules that need other objects (CAT-2,
//! CAT-4, SH-4, SH-5, SH-7) deny with a message naming the field, the rule and what to do.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use gongshu_api::v1alpha1::{DataCatalog, Review, ShareGrant};
use gongshu_e2e::{
    fixtures::Sharing,
    fixtures::{grant, provider_catalog},
    harness::{TestEnv, random_suffix},
};
use kube::{Api, api::PostParams};

const CACHE_LAG: Duration = Duration::from_secs(15);

/// A provider department with an approved catalog, and a consumer department.
struct Setup {
    env: TestEnv,
    provider_ns: String,
    consumer_ns: String,
    prefix: String,
}

async fn setup() -> Setup {
    let Sharing {
        env,
        provider_ns,
        consumer_ns,
        prefix,
        ..
    } = Sharing::new(false)
        .await
        .expect("provider and consumer departments");
    Setup {
        env,
        provider_ns,
        consumer_ns,
        prefix,
    }
}

/// Creates `obj` expecting the webhook to deny it with a message containing every `expected`
/// text. An admission fails at once; a denial with other text is retried for [`CACHE_LAG`],
/// since the webhook's caches see just-written objects a moment later.
async fn expect_denial<K>(api: &Api<K>, obj: &K, expected: &[&str])
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let deadline = tokio::time::Instant::now() + CACHE_LAG;
    loop {
        let message = match api.create(&PostParams::default(), obj).await {
            Ok(_) => panic!("expected a denial, the object was admitted: {obj:?}"),
            Err(e) => e.to_string(),
        };
        let missing: Vec<&&str> = expected.iter().filter(|e| !message.contains(**e)).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "denial lacks {missing:?}: {message}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn assert_names(message: &str, expected: &[&str]) {
    for e in expected {
        assert!(message.contains(e), "denial lacks {e:?}: {message}");
    }
}

#[tokio::test]
async fn an_item_cannot_be_declared_by_a_second_department_cat_4() {
    let s = setup().await;
    let (other_ns, other) = s.env.department("copycat").await.unwrap();
    let catalogs: Api<DataCatalog> = Api::namespaced(s.env.client.clone(), &other_ns);
    let copy = provider_catalog(&other_ns, &other, &s.prefix);
    // The webhook sees the first catalog through its cache: retry while it may still admit.
    let deadline = tokio::time::Instant::now() + CACHE_LAG;
    let message = loop {
        match catalogs.create(&PostParams::default(), &copy).await {
            Err(e) => break e.to_string(),
            Ok(_) if tokio::time::Instant::now() < deadline => {
                catalogs
                    .delete("catalog", &Default::default())
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Ok(_) => panic!(
                "a second declaration of {}.households was admitted",
                s.prefix
            ),
        }
    };
    assert_names(
        &message,
        &[
            "spec.items[0].identifier",
            "CAT-4",
            &s.provider_ns,
            "ShareGrant",
        ],
    );
}

#[tokio::test]
async fn a_catalog_outside_a_department_namespace_is_denied() {
    let env = TestEnv::connect().await.expect("control plane");
    let ns = env.namespace("not-a-department", &[]).await.unwrap();
    let catalogs: Api<DataCatalog> = Api::namespaced(env.client.clone(), &ns);
    expect_denial(
        &catalogs,
        &provider_catalog(&ns, "nobody", &format!("e2e-{}", random_suffix())),
        &["metadata.namespace", "gongshu.io/department"],
    )
    .await;
}

#[tokio::test]
async fn a_grant_waits_for_the_item_to_be_published_cat_2() {
    let s = setup().await;
    let grants: Api<ShareGrant> = Api::namespaced(s.env.client.clone(), &s.consumer_ns);
    let item = format!("{}.households", s.prefix);
    expect_denial(
        &grants,
        &grant(&s.consumer_ns, "early", &item, &["name"], "api"),
        &["spec.item", "CAT-2", "not yet published"],
    )
    .await;
    expect_denial(
        &grants,
        &grant(&s.consumer_ns, "unknown", "no-such.item", &["name"], "api"),
        &["spec.item", "no catalog declares item no-such.item"],
    )
    .await;
}

#[tokio::test]
async fn a_grant_asks_only_for_shared_fields_and_verification_of_not_shared_items_sh_5_sh_7() {
    let s = setup().await;
    s.env
        .approve_items(&s.provider_ns, "catalog")
        .await
        .unwrap();
    let grants: Api<ShareGrant> = Api::namespaced(s.env.client.clone(), &s.consumer_ns);
    let households = format!("{}.households", s.prefix);
    let photos = format!("{}.photos", s.prefix);

    // Admitted once the webhook's cache holds the approval.
    let ok = grant(
        &s.consumer_ns,
        "allowance",
        &households,
        &["citizen_id", "name"],
        "api",
    );
    s.env
        .create_admitted(&grants, &ok, CACHE_LAG)
        .await
        .expect("a grant of shareable fields of a published item is admitted");

    expect_denial(
        &grants,
        &grant(
            &s.consumer_ns,
            "hidden",
            &households,
            &["name", "ethnicity"],
            "api",
        ),
        &["spec.fields[1]", "SH-5", "not shareable", "verify"],
    )
    .await;
    expect_denial(
        &grants,
        &grant(&s.consumer_ns, "typo", &households, &["nmae"], "api"),
        &[
            "spec.fields[0]",
            "no field nmae",
            "citizen_id, name, ethnicity",
        ],
    )
    .await;
    expect_denial(
        &grants,
        &grant(&s.consumer_ns, "photo", &photos, &["citizen_id"], "file"),
        &["spec.mode", "SH-7", "notShared", "verify"],
    )
    .await;
    let verify = grant(
        &s.consumer_ns,
        "verify",
        &photos,
        &["citizen_id", "photo_sha256"],
        "verify",
    );
    grants
        .create(&PostParams::default(), &verify)
        .await
        .expect("verification of a notShared item is admitted (SH-7)");
}

#[tokio::test]
async fn a_grant_is_decided_only_by_its_provider_or_the_authority_sh_4() {
    let s = setup().await;
    s.env
        .approve_items(&s.provider_ns, "catalog")
        .await
        .unwrap();
    let grants: Api<ShareGrant> = Api::namespaced(s.env.client.clone(), &s.consumer_ns);
    let item = format!("{}.households", s.prefix);
    s.env
        .create_admitted(
            &grants,
            &grant(&s.consumer_ns, "allowance", &item, &["name"], "api"),
            CACHE_LAG,
        )
        .await
        .unwrap();

    let review = |ns: &str| -> Review {
        serde_yaml::from_str(&format!(
            "{{apiVersion: gongshu.io/v1alpha1, kind: Review, metadata: {{name: decision, namespace: {ns}}}, \
             spec: {{subject: {{kind: ShareGrant, namespace: {}, name: allowance}}, decision: approve}}}}",
            s.consumer_ns
        ))
        .unwrap()
    };
    // The consumer cannot approve its own request.
    let own: Api<Review> = Api::namespaced(s.env.client.clone(), &s.consumer_ns);
    expect_denial(
        &own,
        &review(&s.consumer_ns),
        &["metadata.namespace", "SH-4", &s.provider_ns],
    )
    .await;
    // The provider can.
    let provider: Api<Review> = Api::namespaced(s.env.client.clone(), &s.provider_ns);
    s.env
        .create_admitted(&provider, &review(&s.provider_ns), CACHE_LAG)
        .await
        .expect("the provider decides its item's grants");
}
