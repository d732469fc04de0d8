//! `POST /validate`: an `AdmissionReview` in, a decision out. Deletions and updates that leave
//! the spec unchanged (status, labels, finalizers) are always admitted, so a
//! stale or strict rule can never block cleanup.

use std::{sync::Arc, time::Instant};

use axum::{Json, Router, body::Bytes, extract::State, routing::post};
use gongshu_api::{
    admission::{self, Cluster},
    rules::{Problem, channel},
    v1alpha1::{ChannelExemptionSpec, DataCatalogSpec, ExposedKind, ReviewSpec, ShareGrantSpec},
};
use jiff::Timestamp;
use kube::{
    ResourceExt,
    core::{
        DynamicObject,
        admission::{
            AdmissionRequest, AdmissionResponse, AdmissionReview, ConvertAdmissionReviewError,
            Operation,
        },
    },
};
use serde::de::DeserializeOwned;
use tracing::{debug, info, warn};

use super::cache::Caches;
use crate::metrics::Metrics;

/// What the handler shares.
#[derive(Clone, Debug)]
pub struct Webhook {
    /// The webhook's view of the cluster.
    pub caches: Arc<Caches>,
    /// Review durations and denials.
    pub metrics: Metrics,
}

/// The webhook's routes.
pub fn router(webhook: Webhook) -> Router {
    Router::new()
        .route("/validate", post(validate))
        // Shared, not cloned per request as axum clones a state (`Metrics` is many Arcs).
        .with_state(Arc::new(webhook))
}

async fn validate(
    State(webhook): State<Arc<Webhook>>,
    body: Bytes,
) -> Json<AdmissionReview<DynamicObject>> {
    let started = Instant::now();
    let Webhook { caches, metrics } = &*webhook;
    // Parsed here rather than by axum's `Json`, which tracks the path of every field it reads
    // (for its error messages) at a cost on every review; and so the duration includes it.
    let review = serde_json::from_slice::<AdmissionReview<DynamicObject>>(&body)
        .map_err(|e| e.to_string())
        .and_then(|review| {
            review
                .try_into()
                .map_err(|e: ConvertAdmissionReviewError| e.to_string())
        });
    let request: AdmissionRequest<DynamicObject> = match review {
        Ok(request) => request,
        Err(error) => {
            warn!(%error, "malformed AdmissionReview");
            metrics.admission_review("other", "error", started.elapsed().as_secs_f64(), &[]);
            return Json(AdmissionResponse::invalid(error.to_string()).into_review());
        }
    };
    let response = AdmissionResponse::from(&request);
    let kind = request.kind.kind.clone();
    let name = request.name.clone();
    let namespace = request.namespace.clone().unwrap_or_default();
    let mut rules = Vec::new();
    let mut result = "allowed";
    let response = match judge(caches, &request) {
        Verdict::Admit(warnings) if warnings.is_empty() => response,
        Verdict::Admit(warnings) => {
            info!(%kind, %namespace, %name, warnings = warnings.join("; "), "admitted with warnings");
            let mut response = response;
            response.warnings = Some(warnings);
            response
        }
        Verdict::NotReady => {
            result = "error";
            response.deny("gongshu admission is starting and its caches are not synced yet; retry in a few seconds")
        }
        Verdict::Deny(problems) => {
            result = "denied";
            let message = admission::denial_message(&kind, &problems);
            info!(%kind, %namespace, %name, %message, "denied");
            rules = problems.iter().map(|p| p.rule).collect();
            response.deny(message)
        }
    };
    metrics.admission_review(&kind, result, started.elapsed().as_secs_f64(), &rules);
    debug!(%kind, %namespace, %name, allowed = response.allowed, "admission review");
    Json(response.into_review())
}

enum Verdict {
    /// Admitted, with warnings for the client (audit mode, exemptions).
    Admit(Vec<String>),
    NotReady,
    Deny(Vec<Problem>),
}

fn judge(caches: &Caches, request: &AdmissionRequest<DynamicObject>) -> Verdict {
    if !matches!(request.operation, Operation::Create | Operation::Update) {
        return Verdict::Admit(Vec::new());
    }
    if request.operation == Operation::Update && spec_unchanged(request) {
        return Verdict::Admit(Vec::new());
    }
    if !caches.is_synced() {
        return Verdict::NotReady;
    }
    let namespace = request.namespace.clone().unwrap_or_default();
    if let Some(kind) = exposed_kind(request) {
        return judge_channel(caches, request, kind, &namespace);
    }
    let authority = caches.authority_namespace();
    caches.with_catalogs(|index| {
        let cluster = Cluster {
            catalogs: index,
            authority_namespace: &authority,
        };
        judge_kind(caches, request, &namespace, &cluster)
    })
}

/// The rules of the request's kind against `cluster`.
fn judge_kind(
    caches: &Caches,
    request: &AdmissionRequest<DynamicObject>,
    namespace: &str,
    cluster: &Cluster<'_>,
) -> Verdict {
    let department_of = |ns: &str| caches.department_of(ns);
    let problems = match request.kind.kind.as_str() {
        "DataCatalog" => spec::<DataCatalogSpec>(request).map(|spec| {
            let object = request.object.as_ref();
            let name = object.map(ResourceExt::name_any).unwrap_or_default();
            admission::catalog(namespace, &name, &spec, cluster, &department_of)
        }),
        "ShareGrant" => spec::<ShareGrantSpec>(request)
            .map(|spec| admission::grant(namespace, &spec, cluster, &department_of)),
        "ChannelExemption" => spec::<ChannelExemptionSpec>(request)
            .map(|_| admission::exemption(namespace, &department_of)),
        "Review" => spec::<ReviewSpec>(request).map(|spec| {
            let grant_item = |ns: &str, name: &str| caches.grant_item(ns, name);
            admission::review(namespace, &spec, cluster, &grant_item)
        }),
        _ => Ok(Vec::new()),
    };
    match problems {
        Ok(problems) if problems.is_empty() => Verdict::Admit(Vec::new()),
        Ok(problems) => Verdict::Deny(problems),
        Err(message) => Verdict::Deny(vec![Problem::new("object", message)]),
    }
}

/// The kind, if the request is for one that can expose workloads (CH-1).
fn exposed_kind(request: &AdmissionRequest<DynamicObject>) -> Option<ExposedKind> {
    ExposedKind::from_kind(&request.kind.kind).filter(|k| k.group() == request.kind.group)
}

/// The channel rules (CH-1) for an object in a department namespace; other namespaces are
/// not the webhook's business (its namespaceSelector sends only departments, this is the
/// second line).
fn judge_channel(
    caches: &Caches,
    request: &AdmissionRequest<DynamicObject>,
    kind: ExposedKind,
    namespace: &str,
) -> Verdict {
    if caches.department_of(namespace).is_none() {
        return Verdict::Admit(Vec::new());
    }
    let Some(object) = request.object.as_ref() else {
        return Verdict::Admit(Vec::new());
    };
    let name = object.name_any();
    let exposure = object
        .data
        .get("spec")
        .and_then(|spec| channel::exposure(kind, &name, spec));
    let filings = caches.filings.in_namespace(namespace);
    let mode = caches.channel_mode(namespace);
    match channel::judge(
        namespace,
        exposure.as_ref(),
        &filings,
        mode,
        Timestamp::now(),
    ) {
        channel::Verdict::Admit => Verdict::Admit(Vec::new()),
        channel::Verdict::Exempted(filing) => Verdict::Admit(vec![format!(
            "admitted under ChannelExemption {filing} (CH-1): it exposes workloads outside the exchange until the exemption ends"
        )]),
        channel::Verdict::Warn(warning) => Verdict::Admit(vec![warning]),
        channel::Verdict::Deny(problem) => Verdict::Deny(vec![problem]),
    }
}

/// The admitted object's spec as its Rust type, read where it lies: the rules judge the spec
/// only, and copying the whole object into a `serde_json::Value` and out again was the largest
/// item in a catalog review's profile (the admission benchmark).
fn spec<S: DeserializeOwned>(request: &AdmissionRequest<DynamicObject>) -> Result<S, String> {
    let object = request
        .object
        .as_ref()
        .ok_or("the request carries no object")?;
    let spec = object
        .data
        .get("spec")
        .ok_or("cannot read the object: missing field `spec`")?;
    S::deserialize(spec).map_err(|e| format!("cannot read the object: {e}"))
}

/// Whether an update leaves `spec` as it was (only metadata or status changed).
fn spec_unchanged(request: &AdmissionRequest<DynamicObject>) -> bool {
    match (&request.object, &request.old_object) {
        (Some(new), Some(old)) => new.data.get("spec") == old.data.get("spec"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use gongshu_api::v1alpha1::{ShareGrant, ShareGrantSpec};
    use kube::core::{
        DynamicObject,
        admission::{AdmissionRequest, AdmissionReview},
    };
    use serde_json::{Value, json};

    use super::spec;

    fn create(object: Value) -> AdmissionRequest<DynamicObject> {
        let review: AdmissionReview<DynamicObject> = serde_json::from_value(json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "7",
                "kind": {"group": "gongshu.io", "version": "v1alpha1", "kind": "ShareGrant"},
                "resource": {"group": "gongshu.io", "version": "v1alpha1", "resource": "sharegrants"},
                "namespace": "health",
                "operation": "CREATE",
                "userInfo": {"username": "alice"},
                "object": object,
            },
        }))
        .unwrap();
        review.try_into().unwrap()
    }

    fn grant() -> Value {
        let spec = json!({
            "item": "population.residents",
            "scenario": "Verify the district of residence of applicants for subsidised vaccinations.",
            "purpose": "Decide eligibility for the district vaccination subsidy.",
            "commitment": {"signedBy": "Li Wei", "signedOn": "2026-02-27", "document": "HEALTH-2026-014"},
            "fields": ["citizen_id", "district"],
            "mode": "api",
            "validUntil": "2026-12-31T16:00:00Z",
            "serviceAccounts": ["subsidy-checker"],
        });
        json!({
            "apiVersion": "gongshu.io/v1alpha1",
            "kind": "ShareGrant",
            "metadata": {"name": "vaccination", "namespace": "health", "managedFields": [
                {"manager": "kubectl", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}},
            ]},
            "spec": spec,
        })
    }

    #[test]
    fn spec_read_in_place_is_the_typed_objects_spec() {
        let object = grant();
        let typed: ShareGrant = serde_json::from_value(object.clone()).unwrap();
        let read: ShareGrantSpec = spec(&create(object)).unwrap();
        assert_eq!(read, typed.spec);
    }

    #[test]
    fn object_without_a_readable_spec_is_an_error() {
        let mut object = grant();
        object.as_object_mut().unwrap().remove("spec");
        let missing = spec::<ShareGrantSpec>(&create(object)).unwrap_err();
        assert!(missing.contains("missing field `spec`"), "{missing}");

        let mut object = grant();
        object["spec"]["mode"] = json!("telepathy");
        let wrong = spec::<ShareGrantSpec>(&create(object)).unwrap_err();
        assert!(wrong.starts_with("cannot read the object: "), "{wrong}");
    }
}
