//! Backup runs and drills as Kubernetes Jobs (`gongshu operator --backup-runner job`): the same
//! `gongshu backup run|verify` arguments the process runner uses, in a Pod Security
//! `restricted` pod of the policy's namespace running as the ServiceAccount `gongshu-backup`,
//! which the operator keeps there with a Role allowing exactly what the runner does.
//!
//! [`build`] holds the pure builders, [`track`] reads a policy's Jobs (running, failed, never
//! started), and [`apply`] talks to the apiserver. A Job is created if absent under a name
//! derived from the policy, the scheduled time and the attempt
//! (`gongshu_api::rules::backup::job::name`), so an operator that restarts finds the Job it
//! started instead of starting a second one; an unfinished Job counts as a run in progress.

pub mod apply;
pub mod build;
pub mod track;

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::{
    api::core::v1::ResourceRequirements, apimachinery::pkg::api::resource::Quantity,
};

/// The ServiceAccount, Role and RoleBinding of runners in each namespace with policies.
pub const SERVICE_ACCOUNT: &str = "gongshu-backup";
/// The runner's container in its pod.
pub const CONTAINER: &str = "runner";
/// `app.kubernetes.io/component` of runner Jobs and their RBAC, which the operator watches.
pub const COMPONENT: &str = "backup-runner";
/// The label holding the uid of a Job's policy (a name may be longer than a label value).
pub const LABEL_POLICY_UID: &str = "gongshu.io/backup-policy-uid";
/// The label saying whether a Job is a backup (`run`) or a drill (`verify`).
pub const LABEL_KIND: &str = "gongshu.io/backup";
/// The annotation holding the policy's name.
pub const ANNOTATION_POLICY: &str = "gongshu.io/backup-policy";
/// The annotation holding the scheduled time of the run.
pub const ANNOTATION_SCHEDULED: &str = "gongshu.io/scheduled";

/// A backup run or a restore drill.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum What {
    /// `gongshu backup run`.
    Run,
    /// `gongshu backup verify`.
    Verify,
}

impl What {
    /// The `gongshu backup` subcommand, also the value of [`LABEL_KIND`].
    pub fn subcommand(self) -> &'static str {
        match self {
            Self::Run => "run",
            Self::Verify => "verify",
        }
    }
}

/// How runner Jobs are made. [`JobConfig::new`] fills in the defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct JobConfig {
    /// The image holding `gongshu` on its `PATH` (normally the operator's own).
    pub image: String,
    /// `imagePullPolicy` of the runner (default `IfNotPresent`).
    pub pull_policy: String,
    /// Arguments after the ones that name the policy, the run and the pod's directories
    /// (`--s3-retry-seconds`, `--progress-seconds`, and any `--backup-job-arg`).
    pub args: Vec<String>,
    /// Extra environment of the runner (`--backup-job-env NAME=VALUE`), e.g. for a test whose
    /// S3 server or database is reached differently from a pod.
    pub env: Vec<(String, String)>,
    /// `activeDeadlineSeconds`: the longest a Job may run before Kubernetes stops it and
    /// marks it failed (`DeadlineExceeded`). Default six hours; a policy has no timeout of its
    /// own, and a run that reads nothing for ten minutes stops itself anyway.
    pub active_deadline_seconds: i64,
    /// `ttlSecondsAfterFinished`: how long a finished Job (and its pod's logs) stays for
    /// inspection. Default a day.
    pub ttl_seconds_after_finished: i32,
    /// How long a Job may go without a running pod (image not pulled, unschedulable, …)
    /// before the operator records the run as failed (`RunnerNotStarted`), deletes the Job
    /// and retries. The runner cannot report that itself: its pod never ran.
    pub start_timeout: Duration,
    /// The runner's requests and limits. A run's peak RSS is at most 200 MiB by design
    /// (4 MiB chunks, a bounded number in flight), so 256 MiB, requested and limited alike.
    pub resources: ResourceRequirements,
}

impl JobConfig {
    /// Jobs of `image` with the defaults above.
    pub fn new(image: impl Into<String>) -> Self {
        let quantities = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
                .collect::<BTreeMap<_, _>>()
        };
        Self {
            image: image.into(),
            pull_policy: "IfNotPresent".into(),
            args: Vec::new(),
            env: Vec::new(),
            active_deadline_seconds: 6 * 3600,
            ttl_seconds_after_finished: 86_400,
            start_timeout: Duration::from_secs(600),
            resources: ResourceRequirements {
                requests: Some(quantities(&[
                    ("cpu", "100m"),
                    ("memory", "256Mi"),
                    ("ephemeral-storage", "64Mi"),
                ])),
                limits: Some(quantities(&[
                    ("memory", "256Mi"),
                    ("ephemeral-storage", "128Mi"),
                ])),
                ..ResourceRequirements::default()
            },
        }
    }
}

/// Talking to the apiserver about runner Jobs failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Listing the policy's Jobs, or the namespace's policies or catalogs, failed.
    #[error("cannot list {what} in {namespace}: {source}")]
    List {
        /// What was listed.
        what: &'static str,
        /// The namespace.
        namespace: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// Applying the runner's ServiceAccount, Role or RoleBinding failed.
    #[error("cannot apply {kind} {namespace}/{SERVICE_ACCOUNT}: {source}")]
    Rbac {
        /// The kind.
        kind: &'static str,
        /// The namespace.
        namespace: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// Creating or deleting a Job failed.
    #[error("cannot {verb} Job {namespace}/{name}: {source}")]
    Job {
        /// `create` or `delete`.
        verb: &'static str,
        /// The namespace.
        namespace: String,
        /// The Job.
        name: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

impl JobError {
    /// A stable label for logs, metrics and Events: `forbidden` (RBAC), `invalid` (the
    /// apiserver rejected the object) or `api` (anything else, usually transient).
    pub fn category(&self) -> &'static str {
        let (Self::List { source, .. } | Self::Rbac { source, .. } | Self::Job { source, .. }) =
            self;
        match source {
            kube::Error::Api(status) if status.code == 403 => "forbidden",
            kube::Error::Api(status) if status.code == 422 => "invalid",
            _ => "api",
        }
    }
}
