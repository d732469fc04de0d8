//! The `Regulation` controller: builds the work calendar from the object (naming the year or
//! date of any error), publishes the deadline table in force with its overrides (SH-4), and
//! warns when the calendar lacks a year that deadlines are counted in. Only the `Regulation`
//! named `default` is in force.

use std::sync::Arc;

use gongshu_api::{
    rules::regulation as rules,
    v1alpha1::{CommonStatus, Regulation, RegulationStatus},
};
use jiff::Timestamp;
use kube::{
    Api, Client, ResourceExt,
    runtime::{Controller, controller::Action, watcher},
};
use tracing::instrument;

use super::{ApplyError, Categorized, Context, Kind, SAFETY_REQUEUE, finish};

impl Kind for Regulation {
    const CONTROLLER: &'static str = "regulation";

    fn api(client: Client, _: &Self) -> Api<Self> {
        Api::all(client)
    }

    fn common(status: &RegulationStatus) -> &CommonStatus {
        &status.common
    }
}

/// A failed `Regulation` reconcile.
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

/// The controller, watching every regulation.
pub fn controller(client: &Client) -> Controller<Regulation> {
    Controller::new(
        Api::<Regulation>::all(client.clone()),
        watcher::Config::default().any_semantic(),
    )
}

/// Reconciles one regulation. The safety requeue also re-checks calendar coverage when the
/// year turns.
#[instrument(skip_all, fields(kind = "Regulation", name = regulation.name_any()))]
pub async fn reconcile(regulation: Arc<Regulation>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(Regulation::CONTROLLER);
    let checked = rules::check(&regulation.spec);
    let status = rules::status(
        &regulation.name_any(),
        &regulation.spec,
        regulation.status.as_ref(),
        regulation.metadata.generation,
        &checked,
        Timestamp::now(),
    );
    Ok(finish(&ctx, regulation.as_ref(), status, SAFETY_REQUEUE).await?)
}
