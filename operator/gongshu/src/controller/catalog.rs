//! The `DataCatalog` controller: checks the catalog against its namespace's department label
//! and submits new and changed items for the authority's review (CAT-2). Namespace label
//! changes re-trigger the catalogs in that namespace, so labelling a namespace un-stalls them.

use std::sync::Arc;

use gongshu_api::{
    rules::catalog::{self as rules, CatalogContext},
    v1alpha1::{CommonStatus, DataCatalog, DataCatalogStatus, LABEL_DEPARTMENT},
};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client, ResourceExt,
    runtime::{Controller, controller::Action, reflector::ObjectRef, watcher},
};
use tracing::instrument;

use super::{ApplyError, Categorized, Context, Kind, SAFETY_REQUEUE, finish, watch_all};

impl Kind for DataCatalog {
    const CONTROLLER: &'static str = "datacatalog";

    fn api(client: Client, obj: &Self) -> Api<Self> {
        Api::namespaced(client, &obj.namespace().unwrap_or_default())
    }

    fn common(status: &DataCatalogStatus) -> &CommonStatus {
        &status.common
    }
}

/// A failed `DataCatalog` reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The catalog's namespace could not be read.
    #[error("cannot read namespace {namespace}: {source}")]
    Namespace {
        /// The namespace.
        namespace: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The status could not be written.
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

impl Categorized for Error {
    fn category(&self) -> &'static str {
        match self {
            Self::Namespace { .. } => "namespace_read",
            Self::Apply(e) => e.category(),
        }
    }
}

/// The controller, watching catalogs everywhere and the namespaces they live in.
pub fn controller(client: &Client) -> Controller<DataCatalog> {
    let catalogs = watch_all::<DataCatalog>(client);
    let store = catalogs.store();
    catalogs.watches(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default().any_semantic(),
        move |namespace: Namespace| {
            let name = namespace.name_any();
            store
                .state()
                .into_iter()
                .filter(|catalog| catalog.namespace().as_deref() == Some(name.as_str()))
                .map(|catalog| ObjectRef::from_obj(catalog.as_ref()))
                .collect::<Vec<_>>()
        },
    )
}

/// Reconciles one catalog.
#[instrument(skip_all, fields(kind = "DataCatalog", namespace = catalog.namespace().unwrap_or_default(), name = catalog.name_any()))]
pub async fn reconcile(catalog: Arc<DataCatalog>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(DataCatalog::CONTROLLER);
    let namespace = catalog.namespace().unwrap_or_default();
    let ns = Api::<Namespace>::all(ctx.client.clone())
        .get_opt(&namespace)
        .await
        .map_err(|source| Error::Namespace {
            namespace: namespace.clone(),
            source,
        })?;
    let department = ns
        .as_ref()
        .and_then(|ns| ns.labels().get(LABEL_DEPARTMENT).cloned());
    let problems = rules::validate(
        &catalog.spec,
        &CatalogContext {
            namespace: &namespace,
            department: department.as_deref(),
        },
    );
    let status = rules::status(
        &catalog.spec,
        catalog.status.as_ref(),
        catalog.metadata.generation,
        &problems,
        Timestamp::now(),
    );
    Ok(finish(&ctx, catalog.as_ref(), status, SAFETY_REQUEUE).await?)
}
