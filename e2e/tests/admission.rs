//! What the apiserver itself enforces from the generated CRDs: every invalid fixture in
//! `e2e/fixtures/invalid/` is rejected with a message naming the field and, where a rule comes
//! from the law, its rule id; immutable objects stay immutable; `kubectl explain` teaches.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;

use gongshu_api::v1alpha1::{Review, ShareGrant};
use gongshu_e2e::harness::TestEnv;
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};

fn fixtures() -> Vec<(String, String, Vec<String>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/invalid");
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures/invalid exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("readable fixture");
            let expects = text
                .lines()
                .filter_map(|l| l.strip_prefix("# expect: "))
                .map(str::to_owned)
                .collect();
            (
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                p.display().to_string(),
                expects,
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn every_invalid_fixture_is_rejected_with_a_message_naming_the_field() {
    let env = TestEnv::connect().await.expect("control plane");
    let (ns, _) = env.department("admission").await.expect("namespace");
    let fixtures = fixtures();
    assert!(
        fixtures.len() >= 10,
        "expected the invalid fixtures, found {}",
        fixtures.len()
    );
    let mut failures = Vec::new();
    for (name, path, expects) in &fixtures {
        assert!(!expects.is_empty(), "{name} has no `# expect:` line");
        let out = env
            .kubectl()
            .args(["create", "-n", &ns, "-f", path])
            .output()
            .expect("kubectl runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            failures.push(format!("{name}: was admitted, expected a rejection"));
            continue;
        }
        for expect in expects {
            if !stderr.contains(expect.as_str()) {
                failures.push(format!(
                    "{name}: rejection does not contain {expect:?}:\n{stderr}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[tokio::test]
async fn a_review_cannot_be_changed_after_creation() {
    let env = TestEnv::connect().await.expect("control plane");
    // The authority decides on open datasets; the webhook needs no other object for that.
    let ns = "gongshu-system";
    let name = format!("decision-{}", gongshu_e2e::harness::random_suffix());
    let reviews: Api<Review> = Api::namespaced(env.client.clone(), ns);
    let review: Review = serde_yaml::from_str(&format!(
        r#"
apiVersion: gongshu.io/v1alpha1
kind: Review
metadata: {{name: {name}, namespace: {ns}}}
spec:
  subject: {{kind: OpenDataset, namespace: dept-a, name: births}}
  decision: approve
"#
    ))
    .expect("valid review");
    reviews
        .create(&PostParams::default(), &review)
        .await
        .expect("a valid review is admitted");
    let change = serde_json::json!({"spec": {"decision": "deny", "reason": "changed my mind"}});
    let err = reviews
        .patch(&name, &PatchParams::default(), &Patch::Merge(&change))
        .await
        .expect_err("changing a review must be rejected");
    let msg = err.to_string();
    assert!(
        msg.contains("a Review is immutable once created"),
        "unexpected rejection: {msg}"
    );
}

#[tokio::test]
async fn a_grant_cannot_switch_to_another_item() {
    let env = TestEnv::connect().await.expect("control plane");
    let (provider_ns, provider) = env.department("provider").await.expect("namespace");
    let (ns, _) = env.department("grant-item").await.expect("namespace");
    let prefix = format!("e2e-{}", gongshu_e2e::harness::random_suffix());
    let catalogs: Api<gongshu_api::v1alpha1::DataCatalog> =
        Api::namespaced(env.client.clone(), &provider_ns);
    let lag = std::time::Duration::from_secs(15);
    env.create_admitted(
        &catalogs,
        &gongshu_e2e::fixtures::provider_catalog(&provider_ns, &provider, &prefix),
        lag,
    )
    .await
    .unwrap();
    env.approve_items(&provider_ns, "catalog").await.unwrap();
    let grants: Api<ShareGrant> = Api::namespaced(env.client.clone(), &ns);
    let item = format!("{prefix}.households");
    let grant = gongshu_e2e::fixtures::grant(&ns, "allowance", &item, &["name"], "api");
    env.create_admitted(&grants, &grant, lag)
        .await
        .expect("a valid grant is admitted");
    let change = serde_json::json!({"spec": {"item": format!("{prefix}.photos")}});
    let err = grants
        .patch("allowance", &PatchParams::default(), &Patch::Merge(&change))
        .await
        .expect_err("changing the item must be rejected");
    let msg = err.to_string();
    assert!(
        msg.contains("spec.item") && msg.contains("immutable"),
        "unexpected rejection: {msg}"
    );
}

#[tokio::test]
async fn kubectl_explain_documents_sharegrant_spec() {
    let env = TestEnv::connect().await.expect("control plane");
    let out = env
        .kubectl()
        .args(["explain", "sharegrant.spec"])
        .output()
        .expect("kubectl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kubectl explain failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "scenario",
        "application scenario",
        "serviceAccounts",
        "validUntil",
        "verify",
    ] {
        assert!(
            text.contains(expected),
            "kubectl explain sharegrant.spec lacks {expected:?}:\n{text}"
        );
    }
}
