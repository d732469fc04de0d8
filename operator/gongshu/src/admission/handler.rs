//! `POST /validate`: an `AdmissionReview` in, a decision out. Deletions and updates that leave
//! the spec unchanged (status, labels, finalizers) are always admitted, so a
//! stale or strict rule can never block cleanup.

use std::sync::Arc;

use axum::{Json, Router, extract::State, routing::post};
use gongshu_api::{
    admission::{self, Cluster},
    rules::Problem,
    v1alpha1::{DataCatalog, Review, ShareGrant},
};
use kube::{
    ResourceExt,
    core::{
        DynamicObject,
        admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation},
    },
};
use serde::de::DeserializeOwned;
use tracing::{debug, info, warn};

use super::cache::Caches;

/// The webhook's routes.
pub fn router(caches: Arc<Caches>) -> Router {
    Router::new()
        .route("/validate", post(validate))
        .with_state(caches)
}

async fn validate(
    State(caches): State<Arc<Caches>>,
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(request) => request,
        Err(error) => {
            warn!(%error, "malformed AdmissionReview");
            return Json(AdmissionResponse::invalid(error.to_string()).into_review());
        }
    };
    let response = AdmissionResponse::from(&request);
    let kind = request.kind.kind.clone();
    let name = request.name.clone();
    let namespace = request.namespace.clone().unwrap_or_default();
    let response = match judge(&caches, &request) {
        Verdict::Admit => response,
        Verdict::NotReady => response.deny("gongshu admission is starting and its caches are not synced yet; retry in a few seconds"),
        Verdict::Deny(problems) => {
            let message = admission::denial_message(&kind, &problems);
            info!(%kind, %namespace, %name, %message, "denied");
            response.deny(message)
        }
    };
    debug!(%kind, %namespace, %name, allowed = response.allowed, "admission review");
    Json(response.into_review())
}

enum Verdict {
    Admit,
    NotReady,
    Deny(Vec<Problem>),
}

fn judge(caches: &Caches, request: &AdmissionRequest<DynamicObject>) -> Verdict {
    if !matches!(request.operation, Operation::Create | Operation::Update) {
        return Verdict::Admit;
    }
    if request.operation == Operation::Update && spec_unchanged(request) {
        return Verdict::Admit;
    }
    if !caches.is_synced() {
        return Verdict::NotReady;
    }
    let namespace = request.namespace.clone().unwrap_or_default();
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
        "DataCatalog" => typed::<DataCatalog>(request).map(|c| {
            admission::catalog(namespace, &c.name_any(), &c.spec, cluster, &department_of)
        }),
        "ShareGrant" => typed::<ShareGrant>(request)
            .map(|g| admission::grant(namespace, &g.spec, cluster, &department_of)),
        "Review" => typed::<Review>(request).map(|r| {
            let grant_item = |ns: &str, name: &str| caches.grant_item(ns, name);
            admission::review(namespace, &r.spec, cluster, &grant_item)
        }),
        _ => Ok(Vec::new()),
    };
    match problems {
        Ok(problems) if problems.is_empty() => Verdict::Admit,
        Ok(problems) => Verdict::Deny(problems),
        Err(message) => Verdict::Deny(vec![Problem::new("object", message)]),
    }
}

/// The admitted object as its Rust type.
fn typed<K: DeserializeOwned>(request: &AdmissionRequest<DynamicObject>) -> Result<K, String> {
    let object = request
        .object
        .as_ref()
        .ok_or("the request carries no object")?;
    let value = serde_json::to_value(object).map_err(|e| e.to_string())?;
    serde_json::from_value(value).map_err(|e| format!("cannot read the object: {e}"))
}

/// Whether an update leaves `spec` as it was (only metadata or status changed).
fn spec_unchanged(request: &AdmissionRequest<DynamicObject>) -> bool {
    match (&request.object, &request.old_object) {
        (Some(new), Some(old)) => new.data.get("spec") == old.data.get("spec"),
        _ => false,
    }
}
