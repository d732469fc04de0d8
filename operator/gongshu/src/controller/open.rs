//! The `OpenDataset` controller: checks what can be checked in the object alone (OP-3, OP-4,
//! OP-6) and accepts it; publishing is not implemented yet, and the status says so.

use std::sync::Arc;

use gongshu_api::{
    rules::open as rules,
    v1alpha1::{CommonStatus, OpenDataset, OpenDatasetStatus},
};
use jiff::Timestamp;
use kube::{
    Api, Client, ResourceExt,
    runtime::{Controller, controller::Action, watcher},
};
use tracing::instrument;

use super::{ApplyError, Categorized, Context, Kind, SAFETY_REQUEUE, finish};

impl Kind for OpenDataset {
    const CONTROLLER: &'static str = "opendataset";

    fn api(client: Client, obj: &Self) -> Api<Self> {
        Api::namespaced(client, &obj.namespace().unwrap_or_default())
    }

    fn common(status: &OpenDatasetStatus) -> &CommonStatus {
        &status.common
    }
}

/// A failed `OpenDataset` reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The status could not be written.
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

impl Categorized for Error {
    fn category(&self) -> &'static str {
        match self {
            Self::Apply(e) => e.category(),
        }
    }
}

/// The controller, watching open datasets everywhere.
pub fn controller(client: &Client) -> Controller<OpenDataset> {
    Controller::new(
        Api::<OpenDataset>::all(client.clone()),
        watcher::Config::default().any_semantic(),
    )
}

/// Reconciles one open dataset.
#[instrument(skip_all, fields(kind = "OpenDataset", namespace = dataset.namespace().unwrap_or_default(), name = dataset.name_any()))]
pub async fn reconcile(dataset: Arc<OpenDataset>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(OpenDataset::CONTROLLER);
    let problems = rules::validate(&dataset.spec);
    let status = rules::status(
        dataset.status.as_ref(),
        dataset.metadata.generation,
        &problems,
        Timestamp::now(),
    );
    Ok(finish(&ctx, dataset.as_ref(), status, SAFETY_REQUEUE).await?)
}
