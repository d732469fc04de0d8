//! The operator's own `ValidatingWebhookConfiguration`, two webhooks, both `failurePolicy:
//! Fail`, `sideEffects: None`, with a short timeout:
//! - `validate.gongshu.io`: the gongshu kinds whose rules need other objects, in every
//!   namespace but the system ones;
//! - `channels.gongshu.io`: what can expose workloads outside the exchange (CH-1), in
//!   department namespaces only. A CEL match condition keeps ClusterIP Services away from the
//!   webhook, so an unavailable webhook never blocks ordinary Services.

use gongshu_api::v1alpha1::{ExposedKind, GATEWAY_GROUP, LABEL_DEPARTMENT};
use k8s_openapi::{
    ByteString,
    api::admissionregistration::v1::{
        MatchCondition, RuleWithOperations, ServiceReference, ValidatingWebhook,
        ValidatingWebhookConfiguration, WebhookClientConfig,
    },
    apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement},
};
use kube::{
    Api, Client,
    api::{ObjectMeta, Patch, PatchParams},
};

use super::{Target, WebhookError};
use crate::controller::FIELD_MANAGER;

/// Name of the configuration.
pub const WEBHOOK_CONFIGURATION: &str = "gongshu";
/// The kinds whose admission needs other objects (`gongshu_api::admission`).
const RESOURCES: &[&str] = &[
    "datacatalogs",
    "sharegrants",
    "reviews",
    "channelexemptions",
];
/// Namespaces whose objects never go through the webhook: a broken gongshu must not block the
/// cluster's own components.
const SYSTEM_NAMESPACES: &[&str] = &["kube-system", "kube-public", "kube-node-lease"];
/// Only Services that leave the cluster reach the channel webhook (CH-1).
const EXPOSING_SERVICES_ONLY: &str = "request.resource.resource != 'services' || \
    (has(object.spec.type) && object.spec.type in ['NodePort', 'LoadBalancer']) || \
    (has(object.spec.externalIPs) && size(object.spec.externalIPs) > 0)";

/// Applies the configuration pointing at `target`, trusting the PEM CAs in `ca_bundle`.
pub async fn register(
    client: &Client,
    target: &Target,
    ca_bundle: Vec<u8>,
) -> Result<(), WebhookError> {
    let (url, service) = match target {
        Target::Url(url) => (Some(url.clone()), None),
        Target::Service { namespace, name } => (
            None,
            Some(ServiceReference {
                namespace: namespace.clone(),
                name: name.clone(),
                path: Some("/validate".into()),
                port: Some(443),
            }),
        ),
    };
    let configuration = configuration(WebhookClientConfig {
        url,
        ca_bundle: Some(ByteString(ca_bundle)),
        service,
    });
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .patch(
            WEBHOOK_CONFIGURATION,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&configuration),
        )
        .await
        .map_err(WebhookError::Register)?;
    Ok(())
}

/// The CA bundle the apiserver verifies the webhook with now, if the configuration exists
/// (every webhook in it carries the same).
pub async fn published_bundle(client: &Client) -> Option<String> {
    let configuration = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .get_opt(WEBHOOK_CONFIGURATION)
        .await
        .ok()
        .flatten()?;
    let bundle = configuration
        .webhooks?
        .into_iter()
        .next()?
        .client_config
        .ca_bundle?;
    String::from_utf8(bundle.0).ok()
}

/// The configuration for a client config (URL locally, Service in a cluster).
fn configuration(client_config: WebhookClientConfig) -> ValidatingWebhookConfiguration {
    let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let create_update = || Some(strings(&["CREATE", "UPDATE"]));
    let webhook = |name: &str, rules, namespace_selector, match_conditions| ValidatingWebhook {
        name: name.into(),
        client_config: client_config.clone(),
        rules: Some(rules),
        failure_policy: Some("Fail".into()),
        side_effects: "None".into(),
        admission_review_versions: vec!["v1".into()],
        timeout_seconds: Some(5),
        match_policy: Some("Equivalent".into()),
        namespace_selector: Some(namespace_selector),
        object_selector: None,
        match_conditions,
    };
    let kinds = webhook(
        "validate.gongshu.io",
        vec![RuleWithOperations {
            api_groups: Some(vec![gongshu_api::v1alpha1::GROUP.into()]),
            api_versions: Some(vec![gongshu_api::v1alpha1::VERSION.into()]),
            operations: create_update(),
            resources: Some(strings(RESOURCES)),
            scope: Some("Namespaced".into()),
        }],
        selector("kubernetes.io/metadata.name", "NotIn", SYSTEM_NAMESPACES),
        None,
    );
    let channel_rule = |group: &str, version: &str, kinds: Vec<ExposedKind>| RuleWithOperations {
        api_groups: Some(vec![group.into()]),
        api_versions: Some(vec![version.into()]),
        operations: create_update(),
        resources: Some(kinds.iter().map(|k| k.plural().to_owned()).collect()),
        scope: Some("Namespaced".into()),
    };
    let gateway: Vec<ExposedKind> = ExposedKind::ALL
        .into_iter()
        .filter(|k| k.group() == GATEWAY_GROUP)
        .collect();
    let channels = webhook(
        "channels.gongshu.io",
        vec![
            channel_rule("", "v1", vec![ExposedKind::Service]),
            channel_rule("networking.k8s.io", "v1", vec![ExposedKind::Ingress]),
            // Every served version: TCPRoute is served as v1 and v1alpha2, for instance.
            channel_rule(GATEWAY_GROUP, "*", gateway),
        ],
        selector(LABEL_DEPARTMENT, "Exists", &[]),
        Some(vec![MatchCondition {
            name: "exposing-services-only".into(),
            expression: EXPOSING_SERVICES_ONLY.into(),
        }]),
    );
    ValidatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(WEBHOOK_CONFIGURATION.into()),
            ..Default::default()
        },
        webhooks: Some(vec![kinds, channels]),
    }
}

/// A namespace selector of one requirement.
fn selector(key: &str, operator: &str, values: &[&str]) -> LabelSelector {
    LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| (*v).to_owned()).collect()),
        }]),
        match_labels: None,
    }
}
