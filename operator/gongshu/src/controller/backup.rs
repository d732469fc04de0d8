//! The `BackupPolicy` controller: checks the schedule, time zone, RPO, age recipients and the
//! off-site endpoint (SEC-1, SEC-2) and accepts the policy; running backups is not implemented
//! yet, and the status says so.

use std::sync::Arc;

use gongshu_api::{
    rules::backup as rules,
    v1alpha1::{BackupPolicy, BackupPolicyStatus, CommonStatus},
};
use jiff::Timestamp;
use kube::{
    Api, Client, ResourceExt,
    runtime::{Controller, controller::Action, watcher},
};
use tracing::instrument;

use super::{ApplyError, Categorized, Context, Kind, SAFETY_REQUEUE, finish};

impl Kind for BackupPolicy {
    const CONTROLLER: &'static str = "backuppolicy";

    fn api(client: Client, obj: &Self) -> Api<Self> {
        Api::namespaced(client, &obj.namespace().unwrap_or_default())
    }

    fn common(status: &BackupPolicyStatus) -> &CommonStatus {
        &status.common
    }
}

/// A failed `BackupPolicy` reconcile.
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

/// The controller, watching backup policies everywhere.
pub fn controller(client: &Client) -> Controller<BackupPolicy> {
    Controller::new(
        Api::<BackupPolicy>::all(client.clone()),
        watcher::Config::default().any_semantic(),
    )
}

/// Reconciles one backup policy.
#[instrument(skip_all, fields(kind = "BackupPolicy", namespace = policy.namespace().unwrap_or_default(), name = policy.name_any()))]
pub async fn reconcile(policy: Arc<BackupPolicy>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(BackupPolicy::CONTROLLER);
    let now = Timestamp::now();
    let problems = rules::validate(&policy.spec, now);
    let status = rules::status(
        policy.status.as_ref(),
        policy.metadata.generation,
        &problems,
        now,
    );
    Ok(finish(&ctx, policy.as_ref(), status, SAFETY_REQUEUE).await?)
}
