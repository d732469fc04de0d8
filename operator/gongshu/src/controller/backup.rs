//! The `BackupPolicy` controller: checks the policy (SEC-1, SEC-2), schedules runs and restore
//! drills (`gongshu_api::rules::backup::decide`), starts them, and reports the RPO.
//!
//! Runs are started as `gongshu backup run` processes where no node runs pods (the local
//! control plane of the demo and the e2e suite); the runner reports progress and results into
//! the status itself. The operator reads no backup data.

use std::{
    collections::HashMap,
    ffi::OsString,
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use gongshu_api::{
    rules::backup::decide::{self, Launch, Timing},
    v1alpha1::{BackupPolicy, BackupPolicyStatus, CommonStatus},
};
use jiff::Timestamp;
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams},
    runtime::controller::Action,
};
use serde_json::json;
use tracing::{info, instrument, warn};

use super::{ApplyError, Categorized, Context, FIELD_MANAGER, Kind, publish_events, requeue_at};

impl Kind for BackupPolicy {
    const CONTROLLER: &'static str = "backuppolicy";

    fn api(client: Client, obj: &Self) -> Api<Self> {
        Api::namespaced(client, &obj.namespace().unwrap_or_default())
    }

    fn common(status: &BackupPolicyStatus) -> &CommonStatus {
        &status.common
    }
}

/// How often a policy with a run in progress is looked at (to notice its end).
const WHILE_RUNNING: Duration = Duration::from_secs(5);

/// A reconcile of a policy failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing the status failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// A runner could not be started.
    #[error("cannot start {what} for {namespace}/{name}: {source}")]
    Launch {
        /// `backup` or `drill`.
        what: &'static str,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The spawn error.
        #[source]
        source: std::io::Error,
    },
}

impl Categorized for Error {
    fn category(&self) -> &'static str {
        match self {
            Self::Apply(e) => e.category(),
            Self::Launch { .. } => "launch",
        }
    }
}

/// How backup runs are started: as `gongshu backup run|verify` processes.
#[derive(Clone, Debug)]
pub struct LauncherConfig {
    /// The `gongshu` binary.
    pub program: PathBuf,
    /// Arguments after `backup run|verify --namespace N --policy P --scheduled T` (where
    /// sources and the audit log are, S3 retry time, …).
    pub args: Vec<OsString>,
    /// The kubeconfig runners use (their own ServiceAccount, which may read Secrets); the
    /// operator's environment otherwise.
    pub kubeconfig: Option<PathBuf>,
    /// The scheduler's timings.
    pub timing: Timing,
}

/// Starts runs and tracks the ones it started.
#[derive(Debug)]
pub struct Launcher {
    config: LauncherConfig,
    timing: Timing,
    children: Mutex<HashMap<(String, String, &'static str), tokio::process::Child>>,
}

impl Launcher {
    /// A launcher as `config` says.
    pub fn new(config: LauncherConfig) -> Self {
        Self {
            timing: config.timing,
            config,
            children: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a `what` (`run` or `verify`) this launcher started for the policy still runs.
    fn active(&self, namespace: &str, name: &str, what: &'static str) -> bool {
        let mut children = self.children.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (namespace.to_owned(), name.to_owned(), what);
        let alive = children
            .get_mut(&key)
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)));
        if !alive {
            children.remove(&key);
        }
        alive
    }

    fn launch(
        &self,
        namespace: &str,
        name: &str,
        what: &'static str,
        scheduled: Timestamp,
    ) -> std::io::Result<()> {
        let mut command = tokio::process::Command::new(&self.config.program);
        command
            .args(["backup", what, "--namespace", namespace, "--policy", name])
            .args(["--scheduled", &scheduled.to_string()])
            .args(&self.config.args)
            .stdin(Stdio::null());
        if let Some(kubeconfig) = &self.config.kubeconfig {
            command.env("KUBECONFIG", kubeconfig);
        }
        let child = command.spawn()?;
        info!(namespace, name, what, %scheduled, pid = child.id(), "started a backup runner");
        self.children
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((namespace.to_owned(), name.to_owned(), what), child);
        Ok(())
    }
}

/// The status fields the operator owns: everything but what the runner reports.
fn operator_fields(status: &BackupPolicyStatus) -> BackupPolicyStatus {
    BackupPolicyStatus {
        running: None,
        last_backup: None,
        last_failure: None,
        last_verified_restore: None,
        last_failed_drill: None,
        ..status.clone()
    }
}

/// Reconciles a policy: decide (pure), record a lost runner, apply the operator's status
/// fields, publish Events, start what is due.
#[instrument(skip_all, fields(controller = "backuppolicy", namespace = obj.namespace().unwrap_or_default(), name = obj.name_any()))]
pub async fn reconcile(obj: Arc<BackupPolicy>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(BackupPolicy::CONTROLLER);
    let now = Timestamp::now();
    let (namespace, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
    let launcher = ctx.backups.as_deref();
    let active = |what| launcher.is_some_and(|l| l.active(&namespace, &name, what));
    let (backup_active, drill_active) = (active("run"), active("verify"));
    let uid = obj.uid().unwrap_or_default();
    let decided = decide::decide(
        &obj.spec,
        obj.status.as_ref(),
        &decide::Context {
            uid: &uid,
            created: obj.creation_timestamp().map_or(now, |t| t.0),
            generation: obj.metadata.generation,
            backup_active,
            drill_active,
            timing: launcher.map_or_else(Timing::default, |l| l.timing),
        },
        now,
    );
    let api = BackupPolicy::api(ctx.client.clone(), &obj);
    let patch_status = |params: PatchParams, patch: Patch<serde_json::Value>| {
        let (api, name) = (api.clone(), name.clone());
        async move {
            api.patch_status(&name, &params, &patch)
                .await
                .map_err(|source| ApplyError::Patch {
                    kind: "BackupPolicy".into(),
                    name,
                    source,
                })
        }
    };
    if decided.lost {
        // The runner's fields, cleared and marked failed as the runner would have.
        let patch = json!({ "status": {
            "running": null,
            "lastFailure": decided.status.last_failure,
        }});
        patch_status(PatchParams::default(), Patch::Merge(patch)).await?;
    }
    let mine = operator_fields(&decided.status);
    if obj.status.as_ref().map(operator_fields) != Some(mine.clone()) {
        let patch = json!({
            "apiVersion": "gongshu.io/v1alpha1",
            "kind": "BackupPolicy",
            "status": mine,
        });
        patch_status(
            PatchParams::apply(FIELD_MANAGER).force(),
            Patch::Apply(patch),
        )
        .await?;
        ctx.metrics.status_written(BackupPolicy::CONTROLLER);
    }
    publish_events(&ctx, obj.as_ref(), &decided.events).await;
    let breached = gongshu_api::status::find(
        &decided.status.common.conditions,
        gongshu_api::status::READY,
    )
    .is_some_and(|c| c.reason == decide::RPO_BREACHED);
    let rpo = gongshu_api::rules::backup::rpo(&obj.spec);
    ctx.metrics
        .record_backup(&namespace, &name, &decided.status, breached, rpo);
    let mut running = decided.busy || drill_active;
    for launch in &decided.launch {
        let (what, scheduled) = match *launch {
            Launch::Backup { scheduled } => ("run", scheduled),
            Launch::Drill { scheduled } => ("verify", scheduled),
        };
        let Some(launcher) = launcher else {
            warn!(what, "no backup runner is configured; nothing started");
            continue;
        };
        launcher
            .launch(&namespace, &name, what, scheduled)
            .map_err(|source| Error::Launch {
                what,
                namespace: namespace.clone(),
                name: name.clone(),
                source,
            })?;
        running = true;
    }
    let requeue = requeue_at(decided.wake, now);
    Ok(Action::requeue(if running {
        requeue.min(WHILE_RUNNING)
    } else {
        requeue
    }))
}
