//! The `Review` controller: checks a decision (reasons for refusals, an exact subject) and
//! records it; applying decisions to their subjects is not implemented yet, and the status says
//! so.

use std::sync::Arc;

use gongshu_api::{
    rules::review as rules,
    v1alpha1::{CommonStatus, Review, ReviewStatus},
};
use jiff::Timestamp;
use kube::{
    Api, Client, ResourceExt,
    runtime::{Controller, controller::Action, watcher},
};
use tracing::instrument;

use super::{ApplyError, Categorized, Context, Kind, SAFETY_REQUEUE, finish};

impl Kind for Review {
    const CONTROLLER: &'static str = "review";

    fn api(client: Client, obj: &Self) -> Api<Self> {
        Api::namespaced(client, &obj.namespace().unwrap_or_default())
    }

    fn common(status: &ReviewStatus) -> &CommonStatus {
        &status.common
    }
}

/// A failed `Review` reconcile.
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

/// The controller, watching reviews everywhere.
pub fn controller(client: &Client) -> Controller<Review> {
    Controller::new(
        Api::<Review>::all(client.clone()),
        watcher::Config::default().any_semantic(),
    )
}

/// Reconciles one review.
#[instrument(skip_all, fields(kind = "Review", namespace = review.namespace().unwrap_or_default(), name = review.name_any()))]
pub async fn reconcile(review: Arc<Review>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(Review::CONTROLLER);
    let problems = rules::validate(&review.spec);
    let status = rules::status(
        review.status.as_ref(),
        review.metadata.generation,
        &problems,
        Timestamp::now(),
    );
    Ok(finish(&ctx, review.as_ref(), status, SAFETY_REQUEUE).await?)
}
