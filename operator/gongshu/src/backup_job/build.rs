//! Pure builders of what a Job runner needs: the Job of one run or drill, and in the policy's
//! namespace the ServiceAccount `gongshu-backup` with a Role and RoleBinding that allow exactly
//! what the runner does (SEC-1: only the runner reads the Secrets a policy names).

use std::collections::{BTreeMap, BTreeSet};

use crate::pod_security::{restricted_container, restricted_pod};
use gongshu_api::v1alpha1::BackupPolicy;
use jiff::Timestamp;
use k8s_openapi::{
    api::{
        batch::v1::{
            Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement,
            PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule,
        },
        core::v1::{
            Container, EmptyDirVolumeSource, EnvVar, PersistentVolumeClaimVolumeSource, PodSpec,
            PodTemplateSpec, ServiceAccount, Volume, VolumeMount,
        },
        rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject},
    },
    apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::ObjectMeta},
};
use kube::{Resource, ResourceExt};

use super::{
    ANNOTATION_POLICY, ANNOTATION_SCHEDULED, COMPONENT, CONTAINER, JobConfig, LABEL_KIND,
    LABEL_POLICY_UID, SERVICE_ACCOUNT, What,
};

/// Where the runner's scratch `emptyDir` is mounted (its root filesystem is read-only).
pub const TMP_DIR: &str = "/tmp";
/// The runner's `--file-root`: nothing is mounted there, so no node file is ever read.
pub const FILE_ROOT: &str = "/data";
/// The runner's `--local-root` when the policy has no local destination.
pub const LOCAL_ROOT: &str = "/var/backups/gongshu";

/// Labels of every object built here.
fn common_labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "gongshu".to_owned()),
        (
            "app.kubernetes.io/component".to_owned(),
            COMPONENT.to_owned(),
        ),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "gongshu-operator".to_owned(),
        ),
    ])
}

/// The labels of a policy's runner Jobs and pods: what the operator selects them by.
pub fn job_labels(policy: &BackupPolicy, what: What) -> BTreeMap<String, String> {
    let mut labels = common_labels();
    labels.insert(LABEL_POLICY_UID.into(), policy.uid().unwrap_or_default());
    labels.insert(LABEL_KIND.into(), what.subcommand().into());
    labels
}

/// The `gongshu` arguments of a run or drill: the very ones the process runner passes.
pub fn runner_args(
    policy: &BackupPolicy,
    what: What,
    scheduled: Timestamp,
    config: &JobConfig,
) -> Vec<String> {
    let local_root = policy
        .spec
        .destinations
        .local
        .as_ref()
        .map_or(LOCAL_ROOT, |l| l.path.as_str());
    let mut args: Vec<String> = [
        "backup",
        what.subcommand(),
        "--namespace",
        &policy.namespace().unwrap_or_default(),
        "--policy",
        &policy.name_any(),
        "--scheduled",
        &scheduled.to_string(),
        "--file-root",
        FILE_ROOT,
        "--local-root",
        local_root,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(config.args.iter().cloned());
    args
}

/// The Job of one run or drill of `policy` for `scheduled`, named `name`
/// (`gongshu_api::rules::backup::job::name`), owned by the policy so that deleting the policy
/// deletes its Jobs.
///
/// `backoffLimit: 0`: a failed pod fails the Job, and the operator's retry timing
/// (`--backup-retry-seconds`, doubling) decides the next attempt, as for a process; a pod
/// evicted or preempted (`DisruptionTarget`) is replaced without counting. Any non-zero exit
/// fails the Job through the pod failure policy, whose message names the exit code (137 for a
/// runner killed for memory).
pub fn job(
    policy: &BackupPolicy,
    what: What,
    scheduled: Timestamp,
    name: &str,
    config: &JobConfig,
) -> Job {
    let labels = job_labels(policy, what);
    let annotations = BTreeMap::from([
        (ANNOTATION_POLICY.to_owned(), policy.name_any()),
        (ANNOTATION_SCHEDULED.to_owned(), scheduled.to_string()),
    ]);
    Job {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: policy.namespace(),
            labels: Some(labels.clone()),
            annotations: Some(annotations),
            owner_references: policy.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(config.active_deadline_seconds),
            ttl_seconds_after_finished: Some(config.ttl_seconds_after_finished),
            pod_failure_policy: Some(pod_failure_policy()),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec(policy, what, scheduled, config)),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

fn pod_failure_policy() -> PodFailurePolicy {
    PodFailurePolicy {
        rules: vec![
            PodFailurePolicyRule {
                action: "Ignore".into(),
                on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                    type_: "DisruptionTarget".into(),
                    status: "True".into(),
                }]),
                ..PodFailurePolicyRule::default()
            },
            PodFailurePolicyRule {
                action: "FailJob".into(),
                on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                    container_name: Some(CONTAINER.into()),
                    operator: "NotIn".into(),
                    values: vec![0],
                }),
                ..PodFailurePolicyRule::default()
            },
        ],
    }
}

fn pod_spec(
    policy: &BackupPolicy,
    what: What,
    scheduled: Timestamp,
    config: &JobConfig,
) -> PodSpec {
    let mut volumes = vec![Volume {
        name: "tmp".into(),
        empty_dir: Some(EmptyDirVolumeSource {
            size_limit: Some(Quantity("64Mi".into())),
            ..EmptyDirVolumeSource::default()
        }),
        ..Volume::default()
    }];
    let mut mounts = vec![VolumeMount {
        name: "tmp".into(),
        mount_path: TMP_DIR.into(),
        ..VolumeMount::default()
    }];
    // The local destination's claim, at its path (gongshu_api::rules::backup::job refuses a
    // local destination without one).
    if let Some(local) = &policy.spec.destinations.local
        && let Some(claim) = &local.claim_name
    {
        volumes.push(Volume {
            name: "local".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.clone(),
                read_only: Some(false),
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: "local".into(),
            mount_path: local.path.clone(),
            ..VolumeMount::default()
        });
    }
    let mut env = vec![EnvVar {
        name: "GONGSHU_LOG_FORMAT".into(),
        value: Some("json".into()),
        ..EnvVar::default()
    }];
    env.extend(config.env.iter().map(|(name, value)| EnvVar {
        name: name.clone(),
        value: Some(value.clone()),
        ..EnvVar::default()
    }));
    PodSpec {
        restart_policy: Some("Never".into()),
        service_account_name: Some(SERVICE_ACCOUNT.into()),
        // It reads the policy and its Secrets and reports with this token.
        automount_service_account_token: Some(true),
        enable_service_links: Some(false),
        // fsGroup makes the local destination's claim writable by the runner.
        security_context: Some(restricted_pod()),
        containers: vec![Container {
            name: CONTAINER.into(),
            image: Some(config.image.clone()),
            image_pull_policy: Some(config.pull_policy.clone()),
            command: Some(vec!["gongshu".into()]),
            args: Some(runner_args(policy, what, scheduled, config)),
            env: Some(env),
            resources: Some(config.resources.clone()),
            security_context: Some(restricted_container()),
            volume_mounts: Some(mounts),
            ..Container::default()
        }],
        volumes: Some(volumes),
        ..PodSpec::default()
    }
}

/// What the runners of one namespace's policies read: the policies, the Secrets they (and
/// the catalog items they back up) name, and whether catalogs must be listed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunnerNeeds {
    /// The policies' names.
    pub policies: BTreeSet<String>,
    /// The Secrets' names.
    pub secrets: BTreeSet<String>,
    /// Some policy backs up a catalog item (the runner lists the namespace's catalogs).
    pub catalogs: bool,
}

/// Metadata of the namespace's runner objects, all named [`SERVICE_ACCOUNT`] and owned by
/// every policy of the namespace (none a controller), so the last policy's deletion removes
/// them.
fn shared_metadata(namespace: &str, owners: &[BackupPolicy]) -> ObjectMeta {
    let owners: Vec<_> = owners.iter().filter_map(|p| p.owner_ref(&())).collect();
    ObjectMeta {
        name: Some(SERVICE_ACCOUNT.into()),
        namespace: Some(namespace.into()),
        labels: Some(common_labels()),
        owner_references: (!owners.is_empty()).then_some(owners),
        ..ObjectMeta::default()
    }
}

/// The ServiceAccount `gongshu-backup` of `namespace`.
pub fn service_account(namespace: &str, owners: &[BackupPolicy]) -> ServiceAccount {
    ServiceAccount {
        metadata: shared_metadata(namespace, owners),
        ..ServiceAccount::default()
    }
}

/// The Role `gongshu-backup` of `namespace`: get the policies by name and patch their status,
/// get the Secrets by name (never list), list catalogs only if an item is backed up, and
/// publish Events. A rule with an empty `resourceNames` would allow every name, so a list that
/// would be empty leaves its rule out.
pub fn role(namespace: &str, owners: &[BackupPolicy], needs: &RunnerNeeds) -> Role {
    let rule = |group: &str, resource: &str, verbs: &[&str], names: Option<&BTreeSet<String>>| {
        PolicyRule {
            api_groups: Some(vec![group.into()]),
            resources: Some(vec![resource.into()]),
            resource_names: names.map(|n| n.iter().cloned().collect()),
            verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
            ..PolicyRule::default()
        }
    };
    let group = BackupPolicy::group(&()).into_owned();
    let mut rules = Vec::new();
    if !needs.policies.is_empty() {
        rules.push(rule(
            &group,
            "backuppolicies",
            &["get"],
            Some(&needs.policies),
        ));
        rules.push(rule(
            &group,
            "backuppolicies/status",
            &["get", "patch"],
            Some(&needs.policies),
        ));
    }
    if !needs.secrets.is_empty() {
        rules.push(rule("", "secrets", &["get"], Some(&needs.secrets)));
    }
    if needs.catalogs {
        rules.push(rule(&group, "datacatalogs", &["list"], None));
    }
    rules.push(rule("events.k8s.io", "events", &["create", "patch"], None));
    Role {
        metadata: shared_metadata(namespace, owners),
        rules: Some(rules),
    }
}

/// The RoleBinding `gongshu-backup` of the Role to the ServiceAccount, both of `namespace`.
pub fn role_binding(namespace: &str, owners: &[BackupPolicy]) -> RoleBinding {
    RoleBinding {
        metadata: shared_metadata(namespace, owners),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: SERVICE_ACCOUNT.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: SERVICE_ACCOUNT.into(),
            namespace: Some(namespace.into()),
            ..Subject::default()
        }]),
    }
}

#[cfg(test)]
mod tests;
