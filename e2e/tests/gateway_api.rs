//! The control plane serves the real Gateway API: the experimental-channel CRDs of the pinned
//! module are established, and every route kind the admission rules deny in department
//! namespaces (issue 8) can be created with a parentRef and read back where no rule applies.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use gongshu_e2e::{harness::TestEnv, upstream};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api,
    api::{DynamicObject, PostParams},
    core::GroupVersionKind,
    discovery,
};
use serde_json::json;

const GROUP: &str = "gateway.networking.k8s.io";

#[tokio::test]
async fn the_gateway_api_crds_are_the_pinned_experimental_release() {
    let env = TestEnv::connect().await.expect("control plane");
    let crds: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    for plural in upstream::GATEWAY_API_CRDS {
        let crd = crds
            .get(&format!("{plural}.{GROUP}"))
            .await
            .unwrap_or_else(|e| panic!("{plural}.{GROUP} is not installed: {e}"));
        let annotations = crd.metadata.annotations.unwrap_or_default();
        assert_eq!(
            annotations.get("gateway.networking.k8s.io/bundle-version"),
            Some(&upstream::GATEWAY_API_VERSION.to_owned()),
            "{plural}"
        );
        assert_eq!(
            annotations
                .get("gateway.networking.k8s.io/channel")
                .map(String::as_str),
            Some("experimental"),
            "{plural}"
        );
    }
}

#[tokio::test]
async fn every_route_kind_is_served_and_keeps_its_parent_ref() {
    let env = TestEnv::connect().await.expect("control plane");
    let ns = env.namespace("gateway-api", &[]).await.expect("namespace");
    let parent_refs = json!([{"group": GROUP, "kind": "Gateway", "name": "edge"}]);
    let rules = |port: u16| json!([{"backendRefs": [{"name": "backend", "port": port}]}]);
    let routes = [
        (
            "v1",
            "HTTPRoute",
            json!({"parentRefs": parent_refs, "rules": rules(80)}),
        ),
        (
            "v1",
            "GRPCRoute",
            json!({"parentRefs": parent_refs, "rules": rules(9000)}),
        ),
        (
            "v1alpha2",
            "TCPRoute",
            json!({"parentRefs": parent_refs, "rules": rules(5432)}),
        ),
        (
            "v1alpha2",
            "TLSRoute",
            json!({"parentRefs": parent_refs, "rules": rules(443)}),
        ),
        (
            "v1alpha2",
            "UDPRoute",
            json!({"parentRefs": parent_refs, "rules": rules(53)}),
        ),
    ];
    for (version, kind, spec) in routes {
        let (resource, _) =
            discovery::pinned_kind(&env.client, &GroupVersionKind::gvk(GROUP, version, kind))
                .await
                .unwrap_or_else(|e| panic!("{kind} is not served as {GROUP}/{version}: {e}"));
        let api: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), &ns, &resource);
        let name = kind.to_lowercase();
        let mut route = DynamicObject::new(&name, &resource).within(&ns);
        route.data = json!({ "spec": spec });
        api.create(&PostParams::default(), &route)
            .await
            .unwrap_or_else(|e| panic!("creating {kind} {GROUP}/{version}: {e}"));

        let read = api.get(&name).await.expect("the route reads back");
        assert_eq!(
            read.types.map(|t| t.api_version),
            Some(format!("{GROUP}/{version}")),
            "{kind}"
        );
        assert_eq!(read.data["spec"]["parentRefs"], parent_refs, "{kind}");
        assert_eq!(
            read.data["spec"]["rules"][0]["backendRefs"][0]["name"], "backend",
            "{kind}"
        );
    }
}
