//! The `ShareGrant` controller: checks a request (SH-2, SH-5), marks it `Submitted`, expires it
//! at `validUntil`, and holds the `gongshu.io/cleanup` finalizer so that deleting a grant will
//! revoke its exchange endpoint once the exchange exists.

use std::{sync::Arc, time::Duration};

use gongshu_api::{
    rules::grant as rules,
    v1alpha1::{CommonStatus, ShareGrant, ShareGrantStatus},
};
use jiff::Timestamp;
use kube::{
    Api, Client, ResourceExt,
    runtime::{
        Controller,
        controller::Action,
        finalizer::{self, finalizer},
    },
};
use tracing::{info, instrument};

use super::{ApplyError, Categorized, Context, FINALIZER, Kind, SAFETY_REQUEUE, finish, watch_all};

impl Kind for ShareGrant {
    const CONTROLLER: &'static str = "sharegrant";

    fn api(client: Client, obj: &Self) -> Api<Self> {
        Api::namespaced(client, &obj.namespace().unwrap_or_default())
    }

    fn common(status: &ShareGrantStatus) -> &CommonStatus {
        &status.common
    }
}

/// A failed step of a `ShareGrant` reconcile.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The status could not be written.
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

impl Categorized for StepError {
    fn category(&self) -> &'static str {
        match self {
            Self::Apply(e) => e.category(),
        }
    }
}

/// A failed `ShareGrant` reconcile: a step, or the finalizer bookkeeping around it.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Error(#[from] Box<finalizer::Error<StepError>>);

impl Categorized for Error {
    fn category(&self) -> &'static str {
        match self.0.as_ref() {
            finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e.category(),
            finalizer::Error::AddFinalizer(_) => "finalizer_add",
            finalizer::Error::RemoveFinalizer(_) => "finalizer_remove",
            finalizer::Error::UnnamedObject | finalizer::Error::InvalidFinalizer => "finalizer",
        }
    }
}

/// The controller, watching grants everywhere.
pub fn controller(client: &Client) -> Controller<ShareGrant> {
    watch_all(client)
}

/// Reconciles one grant, through the finalizer.
#[instrument(skip_all, fields(kind = "ShareGrant", namespace = grant.namespace().unwrap_or_default(), name = grant.name_any()))]
pub async fn reconcile(grant: Arc<ShareGrant>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(ShareGrant::CONTROLLER);
    let api = ShareGrant::api(ctx.client.clone(), grant.as_ref());
    finalizer(&api, FINALIZER, grant, |event| async {
        match event {
            finalizer::Event::Apply(grant) => apply(&grant, &ctx).await,
            finalizer::Event::Cleanup(grant) => Ok(cleanup(&grant)),
        }
    })
    .await
    .map_err(|e| Error(Box::new(e)))
}

async fn apply(grant: &ShareGrant, ctx: &Context) -> Result<Action, StepError> {
    let now = Timestamp::now();
    let problems = rules::validate(&grant.spec, now);
    let status = rules::status(
        &grant.spec,
        grant.status.as_ref(),
        grant.metadata.generation,
        &problems,
        now,
    );
    // Come back when the grant expires, if that is before the safety timer.
    let until_expiry =
        Duration::try_from(grant.spec.valid_until.0.duration_since(now)).unwrap_or(Duration::ZERO);
    let requeue = if until_expiry.is_zero() {
        SAFETY_REQUEUE
    } else {
        until_expiry.min(SAFETY_REQUEUE) + Duration::from_secs(1)
    };
    Ok(finish(ctx, grant, status, requeue).await?)
}

fn cleanup(grant: &ShareGrant) -> Action {
    // The exchange does not exist yet, so there is no endpoint to revoke; once it does, this
    // revokes the grant's endpoint before the finalizer is removed.
    info!(
        item = %grant.spec.item,
        "grant deleted; no exchange endpoint to revoke yet (the exchange is not implemented)"
    );
    Action::await_change()
}
