//! The operator's own `ValidatingWebhookConfiguration`: which gongshu kinds go through the
//! webhook, with `failurePolicy: Fail`, `sideEffects: None` and a short timeout.

use k8s_openapi::{
    ByteString,
    api::admissionregistration::v1::{
        RuleWithOperations, ServiceReference, ValidatingWebhook, ValidatingWebhookConfiguration,
        WebhookClientConfig,
    },
};
use kube::{
    Api, Client,
    api::{ObjectMeta, Patch, PatchParams},
};

use super::{Registration, WebhookError};
use crate::controller::FIELD_MANAGER;

/// Name of the configuration.
pub const WEBHOOK_CONFIGURATION: &str = "gongshu";
/// The kinds whose admission needs other objects (`gongshu_api::admission`).
const RESOURCES: &[&str] = &["datacatalogs", "sharegrants", "reviews"];

/// Applies the configuration pointing at `registration.url`.
pub async fn register(client: &Client, registration: &Registration) -> Result<(), WebhookError> {
    let ca = std::fs::read(&registration.ca_file).map_err(|source| WebhookError::CaBundle {
        path: registration.ca_file.display().to_string(),
        source,
    })?;
    let configuration = configuration(WebhookClientConfig {
        url: Some(registration.url.clone()),
        ca_bundle: Some(ByteString(ca)),
        service: None::<ServiceReference>,
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

/// The configuration for a client config (URL locally, Service in a cluster).
fn configuration(client_config: WebhookClientConfig) -> ValidatingWebhookConfiguration {
    ValidatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(WEBHOOK_CONFIGURATION.into()),
            ..Default::default()
        },
        webhooks: Some(vec![ValidatingWebhook {
            name: "validate.gongshu.io".into(),
            client_config,
            rules: Some(vec![RuleWithOperations {
                api_groups: Some(vec![gongshu_api::v1alpha1::GROUP.into()]),
                api_versions: Some(vec![gongshu_api::v1alpha1::VERSION.into()]),
                operations: Some(vec!["CREATE".into(), "UPDATE".into()]),
                resources: Some(RESOURCES.iter().map(|r| (*r).to_owned()).collect()),
                scope: Some("Namespaced".into()),
            }]),
            failure_policy: Some("Fail".into()),
            side_effects: "None".into(),
            admission_review_versions: vec!["v1".into()],
            timeout_seconds: Some(5),
            match_policy: Some("Equivalent".into()),
            namespace_selector: None,
            object_selector: None,
            match_conditions: None,
        }]),
    }
}
