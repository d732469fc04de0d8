//! In a cluster the operator deploys the exchange: given `--exchange-image`, the leader
//! server-side-applies the StatefulSet, Service, NetworkPolicy and PodDisruptionBudget
//! `gongshu-exchange` in its namespace, under exactly the RBAC of `deploy/rbac.yaml`, and applies
//! them again on its period, which repairs a deleted object. The control plane has no node, so
//! no exchange pod ever runs: this checks the objects the apiserver accepted, not a serving
//! exchange (the other suites run the exchange as a process). The control plane is the test's
//! own, since the shared one already runs an operator without `--exchange-image`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use gongshu_e2e::{
    cluster::{OwnCluster, operator_binary},
    observe,
};
use k8s_openapi::{
    api::{
        apps::v1::StatefulSet, core::v1::Service, networking::v1::NetworkPolicy,
        policy::v1::PodDisruptionBudget,
    },
    apimachinery::pkg::util::intstr::IntOrString,
};
use kube::{Api, Resource, api::DeleteParams};
use serde::de::DeserializeOwned;

const NAMESPACE: &str = "gongshu-system";
const NAME: &str = "gongshu-exchange";
const IMAGE: &str = "registry.example/gongshu:test";
const WAIT: Duration = Duration::from_secs(60);

async fn exists<K>(c: &OwnCluster) -> K
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    let api = Api::<K>::namespaced(c.env.client.clone(), NAMESPACE);
    c.env
        .wait_for(api, NAME, WAIT, |o: Option<&K>| o.is_some())
        .await
        .expect("applied by the operator")
}

#[tokio::test]
async fn the_leader_deploys_the_exchange_and_repairs_a_deleted_service() {
    let mut c = OwnCluster::start("exchange-deploy")
        .await
        .expect("control plane starts");
    let binary = operator_binary("debug").expect("operator built");
    let (_, log) = c
        .start_operator(
            &binary,
            "operator",
            &[
                ("GONGSHU_EXCHANGE_IMAGE", IMAGE),
                ("GONGSHU_EXCHANGE_REAPPLY_SECONDS", "2"),
            ],
        )
        .await
        .expect("operator starts");

    let set: StatefulSet = exists(&c).await;
    let managers: Vec<_> = set
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|f| f.manager.as_deref())
        .collect();
    assert!(
        managers.contains(&"gongshu.io/operator"),
        "server-side applied by the operator: {managers:?}"
    );
    let spec = set.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some(NAME));
    let container = &pod.containers[0];
    assert_eq!(container.image.as_deref(), Some(IMAGE));
    let sc = container.security_context.as_ref().unwrap();
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(
        sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_owned()])
    );
    assert_eq!(
        sc.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
        Some("RuntimeDefault")
    );
    for (probe, path) in [
        (&container.liveness_probe, "/healthz"),
        (&container.readiness_probe, "/readyz"),
    ] {
        let get = probe.as_ref().and_then(|p| p.http_get.as_ref()).unwrap();
        assert_eq!(get.path.as_deref(), Some(path));
        // The admin listener, plain HTTP, not the data port.
        assert_eq!(get.scheme.as_deref(), Some("HTTP"));
        assert_eq!(get.port, IntOrString::Int(8081));
    }
    let ports = container.ports.as_ref().unwrap();
    assert_eq!(ports[0].container_port, 8444, "the container port");
    assert_eq!(ports[1].name.as_deref(), Some("metrics"));
    assert_eq!(ports[1].container_port, 8081, "the admin port");

    let service: Service = exists(&c).await;
    let ports = service.spec.as_ref().unwrap().ports.as_ref().unwrap();
    assert_eq!(ports[0].port, 443);
    assert_eq!(ports[0].target_port, Some(IntOrString::Int(8444)));
    assert_eq!(ports[1].name.as_deref(), Some("metrics"));
    assert_eq!(ports[1].port, 8081);
    let policy: NetworkPolicy = exists(&c).await;
    let ingress = policy.spec.unwrap().ingress.unwrap();
    assert_eq!(
        ingress[0].ports.as_ref().unwrap()[0].port,
        Some(IntOrString::Int(8444))
    );
    // Scraping the admin port: from the monitoring namespace only.
    assert_eq!(
        ingress[1].ports.as_ref().unwrap()[0].port,
        Some(IntOrString::Int(8081))
    );
    assert!(ingress[1].from.as_ref().is_some_and(|f| !f.is_empty()));
    let budget: PodDisruptionBudget = exists(&c).await;
    assert_eq!(
        budget.spec.unwrap().min_available,
        Some(IntOrString::Int(1))
    );

    // Drift: a deleted Service is back within the (shortened) period.
    let services = Api::<Service>::namespaced(c.env.client.clone(), NAMESPACE);
    let old_uid = service.metadata.uid.clone();
    services
        .delete(NAME, &DeleteParams::default())
        .await
        .unwrap();
    let recreated = c
        .env
        .wait_for(services, NAME, WAIT, |s: Option<&Service>| {
            s.is_some_and(|s| s.metadata.uid != old_uid)
        })
        .await
        .expect("the operator applies the Service again");
    assert_eq!(recreated.spec.unwrap().ports.unwrap()[0].port, 443);
    assert!(
        observe::find_line(&log, &["cannot deploy the exchange"]).is_none(),
        "every apply succeeded under deploy/rbac.yaml"
    );
}
