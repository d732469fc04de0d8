//! The `BackupPolicy` controller: checks the policy (SEC-1, SEC-2), schedules runs and restore
//! drills (`gongshu_api::rules::backup::decide`), starts them, and reports the RPO.
//!
//! Runs start as Kubernetes Jobs in a cluster (`--backup-runner job`, [`crate::backup_job`])
//! and as `gongshu backup run` processes where no node runs pods (the local control plane of
//! the demo and the e2e suite), with the same arguments; the runner reports progress and
//! results into the status itself. The operator reads no backup data. What a runner cannot
//! report (its Job failed or its pod never started) the operator records for it.

use std::{
    collections::HashMap,
    ffi::OsString,
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use gongshu_api::{
    rules::backup::{
        decide::{self, Launch, Timing},
        job,
    },
    v1alpha1::{BackupPolicy, BackupPolicyStatus, CommonStatus},
};
use jiff::{SignedDuration, Timestamp};
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams},
    runtime::controller::Action,
};
use serde_json::json;
use tracing::{info, instrument, warn};

use super::{ApplyError, Categorized, Context, FIELD_MANAGER, Kind, publish_events, requeue_at};
use crate::backup_job::{self, JobConfig, JobError, What, track::Tracked};

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
    /// Listing, creating or deleting runner Jobs, or keeping their RBAC, failed.
    #[error(transparent)]
    Job(#[from] JobError),
}

impl Categorized for Error {
    fn category(&self) -> &'static str {
        match self {
            Self::Apply(e) => e.category(),
            Self::Launch { .. } => "launch",
            Self::Job(e) => e.category(),
        }
    }
}

/// How runs are started.
#[derive(Clone, Debug)]
pub enum Mode {
    /// `gongshu backup run|verify` processes next to the operator.
    Process {
        /// The `gongshu` binary.
        program: PathBuf,
        /// Arguments after `backup run|verify --namespace N --policy P --scheduled T` (where
        /// sources and the audit log are, S3 retry time, …).
        args: Vec<OsString>,
        /// The kubeconfig runners use (their own ServiceAccount, which may read Secrets); the
        /// operator's environment otherwise.
        kubeconfig: Option<PathBuf>,
    },
    /// Jobs in the policies' namespaces.
    Job(JobConfig),
}

/// How backup runs are started, and the scheduler's timings.
#[derive(Clone, Debug)]
pub struct LauncherConfig {
    /// Processes or Jobs.
    pub mode: Mode,
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

    /// The Job settings, when runs are Jobs.
    pub fn jobs(&self) -> Option<&JobConfig> {
        match &self.config.mode {
            Mode::Job(config) => Some(config),
            Mode::Process { .. } => None,
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

    fn spawn(
        &self,
        namespace: &str,
        name: &str,
        what: &'static str,
        scheduled: Timestamp,
    ) -> std::io::Result<()> {
        let Mode::Process {
            program,
            args,
            kubeconfig,
        } = &self.config.mode
        else {
            return Ok(());
        };
        let mut command = tokio::process::Command::new(program);
        command
            .args(["backup", what, "--namespace", namespace, "--policy", name])
            .args(["--scheduled", &scheduled.to_string()])
            .args(args)
            .stdin(Stdio::null());
        if let Some(kubeconfig) = kubeconfig {
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

/// The merge patch of the runner's fields the operator changed for a runner that could not
/// report (lost, or its Job failed): only those, so a report the runner writes meanwhile is
/// not overwritten with what the operator read before it.
fn runner_patch(
    before: Option<&BackupPolicyStatus>,
    after: &BackupPolicyStatus,
) -> serde_json::Value {
    let mut status = serde_json::Map::new();
    let before = before.cloned().unwrap_or_default();
    if before.running != after.running {
        status.insert("running".into(), json!(after.running));
    }
    if before.last_failure != after.last_failure {
        status.insert("lastFailure".into(), json!(after.last_failure));
    }
    if before.last_failed_drill != after.last_failed_drill {
        status.insert("lastFailedDrill".into(), json!(after.last_failed_drill));
    }
    json!({ "status": status })
}

/// What the policy's Jobs say (Job runner), or which processes this operator started are
/// alive (process runner).
async fn tracked(
    ctx: &Context,
    obj: &BackupPolicy,
    launcher: Option<&Launcher>,
    now: Timestamp,
) -> Result<Tracked, Error> {
    let Some(launcher) = launcher else {
        return Ok(Tracked::default());
    };
    if let Some(jobs) = launcher.jobs() {
        let list = backup_job::apply::list(&ctx.client, obj).await?;
        let timeout = SignedDuration::try_from(jobs.start_timeout).unwrap_or(SignedDuration::MAX);
        return Ok(backup_job::track::track(&list, now, timeout));
    }
    let (namespace, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
    Ok(Tracked {
        backup_active: launcher.active(&namespace, &name, "run"),
        drill_active: launcher.active(&namespace, &name, "verify"),
        ..Tracked::default()
    })
}

/// Starts `what` for `scheduled`: a Job (RBAC first) or a process.
async fn start(
    ctx: &Context,
    obj: &BackupPolicy,
    launcher: &Launcher,
    what: What,
    scheduled: Timestamp,
    attempt: i64,
) -> Result<(), Error> {
    let (namespace, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
    let Some(jobs) = launcher.jobs() else {
        return launcher
            .spawn(&namespace, &name, what.subcommand(), scheduled)
            .map_err(|source| Error::Launch {
                what: what.subcommand(),
                namespace,
                name,
                source,
            });
    };
    backup_job::apply::ensure_rbac(&ctx.client, &namespace).await?;
    let job_name = job::name(&name, what == What::Verify, scheduled, attempt);
    let job = backup_job::build::job(obj, what, scheduled, &job_name, jobs);
    backup_job::apply::create(&ctx.client, &job).await?;
    Ok(())
}

/// Reconciles a policy: track its runners, decide (pure), record runners that could not
/// report, apply the operator's status fields, publish Events, start what is due.
#[instrument(skip_all, fields(controller = "backuppolicy", namespace = obj.namespace().unwrap_or_default(), name = obj.name_any()))]
pub async fn reconcile(obj: Arc<BackupPolicy>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(BackupPolicy::CONTROLLER);
    let now = Timestamp::now();
    let (namespace, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
    let launcher = ctx.backups.as_deref();
    let tracked = tracked(&ctx, &obj, launcher, now).await?;
    let refused = match launcher.and_then(Launcher::jobs) {
        Some(_) => job::problems(&obj.spec),
        None => Vec::new(),
    };
    let uid = obj.uid().unwrap_or_default();
    let decided = decide::decide(
        &obj.spec,
        obj.status.as_ref(),
        &decide::Context {
            uid: &uid,
            created: obj.creation_timestamp().map_or(now, |t| t.0),
            generation: obj.metadata.generation,
            backup_active: tracked.backup_active,
            drill_active: tracked.drill_active,
            timing: launcher.map_or_else(Timing::default, |l| l.timing),
            ended: &tracked.ended,
            refused: &refused,
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
        // The runner's fields, as the runner would have written them.
        let patch = runner_patch(obj.status.as_ref(), &decided.status);
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
    // Only once their failure is in the status: deleting first could lose it.
    for stuck in &tracked.stuck {
        warn!(
            job = stuck,
            "deleting a backup runner Job whose pod never started"
        );
        backup_job::apply::delete(&ctx.client, &namespace, stuck).await?;
    }
    let breached = gongshu_api::status::find(
        &decided.status.common.conditions,
        gongshu_api::status::READY,
    )
    .is_some_and(|c| c.reason == decide::RPO_BREACHED);
    let rpo = gongshu_api::rules::backup::rpo(&obj.spec);
    ctx.metrics
        .record_backup(&namespace, &name, &decided.status, breached, rpo);
    let mut running = decided.busy || tracked.drill_active;
    for launch in &decided.launch {
        let (what, scheduled) = match *launch {
            Launch::Backup { scheduled } => (What::Run, scheduled),
            Launch::Drill { scheduled } => (What::Verify, scheduled),
        };
        let Some(launcher) = launcher else {
            warn!(
                what = what.subcommand(),
                "no backup runner is configured; nothing started"
            );
            continue;
        };
        // A retry is the next attempt of the same scheduled time: a Job of its own.
        let attempt = match what {
            What::Run => decided
                .status
                .last_failure
                .as_ref()
                .map_or(0, |f| f.attempts),
            What::Verify => 0,
        };
        if let Err(e) = start(&ctx, &obj, launcher, what, scheduled, attempt).await {
            // The schedule moved on in the status already: record the failure so the run is
            // retried with the usual backoff instead of skipped.
            let (field, previous) = match what {
                What::Run => ("lastFailure", decided.status.last_failure.as_ref()),
                What::Verify => ("lastFailedDrill", decided.status.last_failed_drill.as_ref()),
            };
            let message = format!("the runner could not be started: {e}");
            let failure = json!({
                "backupId": job::name(&name, what == What::Verify, scheduled, attempt),
                "at": now, "category": e.category(), "message": message,
                "attempts": previous.map_or(0, |f| f.attempts) + 1,
            });
            let patch = json!({ "status": { field: failure } });
            patch_status(PatchParams::default(), Patch::Merge(patch)).await?;
            let action = if what == What::Run { "Backup" } else { "Drill" };
            let event =
                gongshu_api::workflow::Event::warning(decide::RUNNER_FAILED, action, message);
            publish_events(&ctx, obj.as_ref(), &[event]).await;
            return Err(e);
        }
        running = true;
    }
    let requeue = requeue_at(decided.wake, now);
    Ok(Action::requeue(if running {
        requeue.min(WHILE_RUNNING)
    } else {
        requeue
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use gongshu_api::v1alpha1::{BackupFailure, Progress};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    #[test]
    fn the_operator_writes_only_the_runner_fields_it_changed() {
        let at = Time("2026-11-22T18:00:00Z".parse().unwrap());
        let running = Progress {
            id: "r".into(),
            started_at: at.clone(),
            updated_at: at.clone(),
            bytes_done: 1,
            bytes_total: None,
            bytes_per_second: 0,
        };
        let failure = BackupFailure {
            backup_id: "nightly-v202611221800-0".into(),
            at,
            category: "DeadlineExceeded".into(),
            message: "m".into(),
            attempts: 1,
        };
        // A drill Job failed while a backup runs: its progress must not be written back (a
        // stale copy could undo the runner's own report).
        let before = BackupPolicyStatus {
            running: Some(running),
            ..BackupPolicyStatus::default()
        };
        let after = BackupPolicyStatus {
            last_failed_drill: Some(failure),
            ..before.clone()
        };
        let patch = runner_patch(Some(&before), &after);
        let status = patch["status"].as_object().unwrap();
        assert_eq!(status.keys().collect::<Vec<_>>(), ["lastFailedDrill"]);
        // A killed backup's progress is cleared explicitly (null in a merge patch).
        let cleared = runner_patch(Some(&before), &BackupPolicyStatus::default());
        assert_eq!(cleared["status"]["running"], serde_json::Value::Null);
        assert!(
            cleared["status"]
                .as_object()
                .unwrap()
                .contains_key("running")
        );
    }
}
