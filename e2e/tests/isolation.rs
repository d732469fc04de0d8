//! Network isolation of department namespaces (CH-1, CH-2) against the real apiserver and the
//! operator: a department namespace gets `gongshu-isolation` (its own pods and the exchange
//! only), a namespace that is not a department gets nothing, losing the label removes the
//! policy, and an approved `ChannelExemption` opens the pods behind the NodePort Service it
//! covers. No node runs pods here, so nothing enforces the policies: these tests check the
//! objects, exactly, not the traffic.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use gongshu_api::v1alpha1::{ChannelExemption, LABEL_DEPARTMENT, Regulation};
use gongshu_e2e::harness::{TestEnv, random_suffix};
use k8s_openapi::api::{
    core::v1::{Namespace, Service},
    networking::v1::NetworkPolicy,
};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use serde_json::{Value, json};

/// How long the operator may take to notice a change and apply or delete a policy.
const SETTLE: Duration = Duration::from_secs(30);

fn policies(env: &TestEnv, namespace: &str) -> Api<NetworkPolicy> {
    Api::namespaced(env.client.clone(), namespace)
}

/// Waits until NetworkPolicy `name` exists in `namespace`.
async fn present(env: &TestEnv, namespace: &str, name: &str) -> NetworkPolicy {
    env.wait_for(
        policies(env, namespace),
        name,
        SETTLE,
        |p: Option<&NetworkPolicy>| p.is_some(),
    )
    .await
    .unwrap_or_else(|e| panic!("NetworkPolicy {namespace}/{name}: {e}"))
}

/// Waits until NetworkPolicy `name` no longer exists in `namespace`.
async fn absent(env: &TestEnv, namespace: &str, name: &str) {
    let api = policies(env, namespace);
    let deadline = tokio::time::Instant::now() + SETTLE;
    while let Some(policy) = api.get_opt(name).await.expect("get NetworkPolicy") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "NetworkPolicy {namespace}/{name} still exists after {SETTLE:?}: {policy:#?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The egress CIDRs of the `default` Regulation, which every department may reach (CH-2); none
/// without one.
async fn egress_cidrs(env: &TestEnv) -> Vec<String> {
    Api::<Regulation>::all(env.client.clone())
        .get_opt("default")
        .await
        .expect("get Regulation")
        .map(|r| r.spec.channels.egress_cidrs)
        .unwrap_or_default()
}

fn labels(policy: &NetworkPolicy) -> Value {
    json!(policy.labels())
}

fn exchange_pods() -> Value {
    json!({
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": TestEnv::AUTHORITY_NAMESPACE}},
        "podSelector": {"matchLabels": {
            "app.kubernetes.io/name": "gongshu-exchange",
            "app.kubernetes.io/part-of": "gongshu",
        }},
    })
}

/// The spec of `gongshu-isolation`: ingress from the namespace's own pods and the exchange's;
/// egress to those, to every namespace that is not a department and to `cidrs`.
fn isolation_spec(cidrs: &[String]) -> Value {
    let mut to = vec![
        json!({"podSelector": {}}),
        exchange_pods(),
        json!({"namespaceSelector": {"matchExpressions": [
            {"key": LABEL_DEPARTMENT, "operator": "DoesNotExist"},
        ]}}),
    ];
    to.extend(cidrs.iter().map(|c| json!({"ipBlock": {"cidr": c}})));
    json!({
        "podSelector": {},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"podSelector": {}}, exchange_pods()]}],
        "egress": [{"to": to}],
    })
}

#[tokio::test]
async fn a_department_namespace_is_isolated_until_it_is_no_longer_a_department_ch_1() {
    let env = TestEnv::connect().await.expect("control plane");
    let (ns, _) = env.department("iso").await.expect("department namespace");

    let policy = present(&env, &ns, "gongshu-isolation").await;
    assert_eq!(
        labels(&policy),
        json!({"app.kubernetes.io/managed-by": "gongshu", "gongshu.io/policy": "isolation"})
    );
    let cidrs = egress_cidrs(&env).await;
    assert_eq!(json!(policy.spec), isolation_spec(&cidrs));

    // Edited by hand: the operator takes its policy back.
    policies(&env, &ns)
        .patch(
            "gongshu-isolation",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"ingress": [{}]}})),
        )
        .await
        .expect("edit the policy");
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let current = policies(&env, &ns).get("gongshu-isolation").await.unwrap();
        if json!(current.spec) == isolation_spec(&cidrs) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the edit was not reverted: {:#?}",
            current.spec
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    Api::<Namespace>::all(env.client.clone())
        .patch(
            &ns,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {LABEL_DEPARTMENT: null}}})),
        )
        .await
        .expect("remove the department label");
    absent(&env, &ns, "gongshu-isolation").await;
}

#[tokio::test]
async fn a_namespace_that_is_not_a_department_gets_no_policy_until_it_becomes_one() {
    let env = TestEnv::connect().await.expect("control plane");
    let plain = env.namespace("plain", &[]).await.expect("namespace");
    // The operator has seen both namespaces once it has isolated the department created after.
    let (department, _) = env.department("iso").await.expect("department namespace");
    present(&env, &department, "gongshu-isolation").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let found = policies(&env, &plain)
        .list(&Default::default())
        .await
        .expect("list NetworkPolicies");
    assert!(found.items.is_empty(), "{:#?}", found.items);

    Api::<Namespace>::all(env.client.clone())
        .patch(
            &plain,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {LABEL_DEPARTMENT: format!("plain-{}", random_suffix())}}})),
        )
        .await
        .expect("label the namespace a department");
    let policy = present(&env, &plain, "gongshu-isolation").await;
    assert_eq!(
        json!(policy.spec),
        isolation_spec(&egress_cidrs(&env).await)
    );
}

#[tokio::test]
async fn an_approved_exemption_opens_the_pods_behind_the_node_port_service_it_covers_ch_1() {
    let env = TestEnv::connect().await.expect("control plane");
    let (ns, _) = env.department("iso").await.expect("department namespace");
    present(&env, &ns, "gongshu-isolation").await;

    let exemptions: Api<ChannelExemption> = Api::namespaced(env.client.clone(), &ns);
    let exemption: ChannelExemption = serde_json::from_value(json!({
        "apiVersion": "gongshu.io/v1alpha1",
        "kind": "ChannelExemption",
        "metadata": {"name": "portal", "namespace": ns},
        "spec": {
            "covers": [{"kind": "Service", "name": "portal"}],
            "justification": "The tax portal predates the exchange and cannot move before 2027.",
            "legalBasis": "Approval 2026-17 of the data authority (PJ5)",
            "validUntil": "2099-01-01T00:00:00Z",
        },
    }))
    .unwrap();
    let exemption = env
        .create_admitted(&exemptions, &exemption, SETTLE)
        .await
        .expect("the filing is admitted");
    // The authority approves it, as it would; and since the exemption controller may not be
    // running, the status says so too.
    env.review(
        TestEnv::AUTHORITY_NAMESPACE,
        &format!("approve-portal-{}", random_suffix()),
        json!({"kind": "ChannelExemption", "namespace": ns, "name": "portal"}),
        "approve",
        "",
    )
    .await
    .expect("the authority decides filings");
    exemptions
        .patch_status(
            "portal",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "phase": "Approved",
                "approvedGeneration": exemption.metadata.generation,
            }})),
        )
        .await
        .expect("approve in the status");

    let service: Service = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "portal", "namespace": ns},
        "spec": {
            "type": "NodePort",
            "selector": {"app": "portal"},
            "ports": [
                {"name": "https", "port": 443, "targetPort": 8443},
                {"name": "admin", "port": 9000, "targetPort": "admin"},
            ],
        },
    }))
    .unwrap();
    // Admission denies the NodePort Service until its cache sees the approved exemption.
    env.create_admitted(&Api::namespaced(env.client.clone(), &ns), &service, SETTLE)
        .await
        .expect("the covered NodePort Service is admitted");

    let name = "gongshu-exemption-portal.portal";
    let policy = present(&env, &ns, name).await;
    assert_eq!(
        labels(&policy),
        json!({"app.kubernetes.io/managed-by": "gongshu", "gongshu.io/policy": "exemption"})
    );
    assert_eq!(
        json!(policy.spec),
        json!({
            "podSelector": {"matchLabels": {"app": "portal"}},
            "policyTypes": ["Ingress"],
            "ingress": [{"ports": [
                {"port": 8443, "protocol": "TCP"},
                {"port": "admin", "protocol": "TCP"},
            ]}],
        })
    );
    let owner = &policy.owner_references()[0];
    assert_eq!(
        (
            owner.kind.as_str(),
            owner.name.as_str(),
            owner.uid.as_str(),
            owner.controller
        ),
        (
            "ChannelExemption",
            "portal",
            exemption.uid().unwrap().as_str(),
            Some(true)
        )
    );
    // The department stays isolated otherwise.
    present(&env, &ns, "gongshu-isolation").await;

    // Withdrawn filing, closed hole.
    exemptions
        .delete("portal", &Default::default())
        .await
        .expect("delete the exemption");
    absent(&env, &ns, name).await;
    present(&env, &ns, "gongshu-isolation").await;
}
