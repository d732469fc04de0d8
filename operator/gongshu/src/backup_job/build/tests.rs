//! The runner Job and its RBAC, built from the YAML fixture `fixtures/policy.yaml` (SEC-1).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::core::v1::Container;

use super::*;
use crate::pod_security::runtime_default;

fn policy() -> BackupPolicy {
    serde_yaml::from_str(include_str!("../fixtures/policy.yaml")).unwrap()
}

fn scheduled() -> Timestamp {
    "2026-11-22T18:00:00Z".parse().unwrap()
}

fn config() -> JobConfig {
    JobConfig {
        args: vec!["--s3-retry-seconds".into(), "180".into()],
        env: vec![("AWS_CA_BUNDLE".into(), "/etc/ssl/s3.pem".into())],
        ..JobConfig::new("registry.example/gongshu:test")
    }
}

fn build_job(what: What) -> Job {
    job(
        &policy(),
        what,
        scheduled(),
        "nightly-r202611221800-0",
        &config(),
    )
}

fn pod(job: &Job) -> PodSpec {
    job.spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .expect("a pod spec")
}

fn container(job: &Job) -> Container {
    pod(job).containers.remove(0)
}

#[test]
fn the_runner_pod_meets_pod_security_restricted() {
    let spec = pod(&build_job(What::Run));
    let sc = spec.security_context.as_ref().expect("pod securityContext");
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.run_as_user, Some(65532));
    assert_eq!(sc.seccomp_profile, Some(runtime_default()));
    assert_eq!(spec.containers.len(), 1);
    assert!(spec.init_containers.is_none());
    let c = &spec.containers[0];
    let sc = c
        .security_context
        .as_ref()
        .expect("container securityContext");
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.run_as_user, Some(65532));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.privileged, None);
    let caps = sc.capabilities.as_ref().expect("capabilities");
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_owned()][..]));
    assert_eq!(caps.add, None);
    for v in spec.volumes.iter().flatten() {
        assert!(v.host_path.is_none(), "no hostPath under restricted");
    }
    assert!(spec.host_network.is_none() && spec.host_pid.is_none());
    // A read-only root needs a writable scratch directory.
    let tmp = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == TMP_DIR)
        .expect("/tmp mounted");
    let volume = spec.volumes.iter().flatten().find(|v| v.name == tmp.name);
    assert!(volume.and_then(|v| v.empty_dir.as_ref()).is_some());
}

#[test]
fn the_runner_has_a_memory_limit_above_its_peak_and_requests_what_it_uses() {
    let resources = container(&build_job(What::Run))
        .resources
        .expect("resources");
    let memory = |m: Option<&BTreeMap<String, Quantity>>| m.and_then(|m| m.get("memory")).cloned();
    // Peak RSS is at most 200 MiB by design; requests = limits: no eviction before the limit.
    assert_eq!(
        memory(resources.limits.as_ref()),
        Some(Quantity("256Mi".into()))
    );
    assert_eq!(
        memory(resources.requests.as_ref()),
        Some(Quantity("256Mi".into()))
    );
    assert!(resources.requests.as_ref().unwrap().contains_key("cpu"));
}

#[test]
fn the_job_runs_the_process_runners_arguments_as_the_backup_account() {
    let c = container(&build_job(What::Run));
    assert_eq!(c.command, Some(vec!["gongshu".to_owned()]));
    assert_eq!(c.image.as_deref(), Some("registry.example/gongshu:test"));
    assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
    let args = c.args.expect("args");
    // As controller::backup's process runner: `backup run --namespace N --policy P --scheduled T`.
    assert_eq!(
        args[..8],
        [
            "backup",
            "run",
            "--namespace",
            "dept-public-security",
            "--policy",
            "nightly",
            "--scheduled",
            "2026-11-22T18:00:00Z"
        ]
    );
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .map(|i| args[i + 1].clone())
    };
    assert_eq!(value("--file-root").as_deref(), Some(FILE_ROOT));
    assert_eq!(
        value("--local-root").as_deref(),
        Some("/var/backups/nightly")
    );
    assert_eq!(value("--s3-retry-seconds").as_deref(), Some("180"));
    let env = c.env.expect("env");
    assert!(
        env.iter()
            .any(|e| e.name == "AWS_CA_BUNDLE" && e.value.as_deref() == Some("/etc/ssl/s3.pem"))
    );
    let spec = pod(&build_job(What::Run));
    assert_eq!(spec.service_account_name.as_deref(), Some(SERVICE_ACCOUNT));
    assert_eq!(spec.automount_service_account_token, Some(true));
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    let drill = container(&build_job(What::Verify)).args.expect("args");
    assert_eq!(drill[..2], ["backup", "verify"]);
}

#[test]
fn the_local_destinations_claim_is_mounted_at_its_path() {
    let job = build_job(What::Run);
    let spec = pod(&job);
    let claim = spec
        .volumes
        .iter()
        .flatten()
        .find_map(|v| {
            v.persistent_volume_claim
                .as_ref()
                .map(|c| (v.name.clone(), c.clone()))
        })
        .expect("the claim is a volume");
    assert_eq!(claim.1.claim_name, "backups");
    let mount = container(&job)
        .volume_mounts
        .into_iter()
        .flatten()
        .find(|m| m.name == claim.0)
        .expect("mounted");
    assert_eq!(mount.mount_path, "/var/backups/nightly");
    assert_ne!(mount.read_only, Some(true));

    let mut without = policy();
    without.spec.destinations.local = None;
    let job = job_of(&without);
    assert!(
        pod(&job)
            .volumes
            .iter()
            .flatten()
            .all(|v| v.persistent_volume_claim.is_none())
    );
    let args = container(&job).args.expect("args");
    assert!(args.windows(2).any(|w| w == ["--local-root", LOCAL_ROOT]));
}

fn job_of(policy: &BackupPolicy) -> Job {
    job(policy, What::Run, scheduled(), "x", &config())
}

#[test]
fn the_job_is_owned_by_its_policy_and_labelled_for_the_operators_watch() {
    let job = build_job(What::Verify);
    let meta = &job.metadata;
    assert_eq!(meta.name.as_deref(), Some("nightly-r202611221800-0"));
    assert_eq!(meta.namespace.as_deref(), Some("dept-public-security"));
    let owners = meta.owner_references.as_ref().expect("owner");
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0].kind, "BackupPolicy");
    assert_eq!(owners[0].name, "nightly");
    assert_eq!(owners[0].uid, "6f1c2a9e-3b7d-4e5f-8a0b-1c2d3e4f5a6b");
    assert_eq!(owners[0].controller, Some(true));
    let labels = meta.labels.as_ref().expect("labels");
    assert_eq!(
        labels.get(LABEL_POLICY_UID).map(String::as_str),
        Some("6f1c2a9e-3b7d-4e5f-8a0b-1c2d3e4f5a6b")
    );
    assert_eq!(labels.get(LABEL_KIND).map(String::as_str), Some("verify"));
    assert_eq!(
        labels
            .get("app.kubernetes.io/component")
            .map(String::as_str),
        Some(COMPONENT)
    );
    let annotations = meta.annotations.as_ref().expect("annotations");
    assert_eq!(
        annotations.get(ANNOTATION_POLICY).map(String::as_str),
        Some("nightly")
    );
    assert_eq!(
        annotations.get(ANNOTATION_SCHEDULED).map(String::as_str),
        Some("2026-11-22T18:00:00Z")
    );
    // The pods carry the same labels (kubectl logs -l …).
    let pod_labels = job
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.labels);
    assert_eq!(pod_labels.as_ref(), Some(labels));
}

#[test]
fn a_failed_pod_fails_the_job_and_a_finished_job_is_kept_a_day() {
    let spec = build_job(What::Run).spec.expect("spec");
    // The operator's backoff retries, as for a process: no retry inside the Job.
    assert_eq!(spec.backoff_limit, Some(0));
    assert_eq!(spec.active_deadline_seconds, Some(6 * 3600));
    assert_eq!(spec.ttl_seconds_after_finished, Some(86_400));
    let rules = spec.pod_failure_policy.expect("podFailurePolicy").rules;
    assert_eq!(rules[0].action, "Ignore");
    assert_eq!(
        rules[0].on_pod_conditions.as_ref().unwrap()[0].type_,
        "DisruptionTarget"
    );
    assert_eq!(rules[1].action, "FailJob");
    let codes = rules[1].on_exit_codes.as_ref().unwrap();
    assert_eq!(codes.container_name.as_deref(), Some(CONTAINER));
    assert_eq!(
        (codes.operator.as_str(), &codes.values[..]),
        ("NotIn", &[0][..])
    );
}

fn needs() -> RunnerNeeds {
    RunnerNeeds {
        policies: ["nightly".to_owned()].into(),
        secrets: ["offsite-s3".to_owned(), "population-db".to_owned()].into(),
        catalogs: true,
    }
}

fn rule<'a>(role: &'a Role, resource: &str) -> Option<&'a PolicyRule> {
    role.rules
        .iter()
        .flatten()
        .find(|r| r.resources.as_deref() == Some(&[resource.to_owned()][..]))
}

#[test]
fn the_role_allows_exactly_what_the_runner_does_with_named_secrets_only() {
    // SEC-1: the runner reads the Secrets its policies name, by name, and nothing else.
    let role = role("dept-public-security", &[policy()], &needs());
    let secrets = rule(&role, "secrets").expect("secrets rule");
    assert_eq!(secrets.verbs, ["get"]);
    assert_eq!(
        secrets.resource_names.as_deref(),
        Some(&["offsite-s3".to_owned(), "population-db".to_owned()][..])
    );
    let policies = rule(&role, "backuppolicies").expect("policies rule");
    assert_eq!(policies.verbs, ["get"]);
    assert_eq!(
        policies.resource_names.as_deref(),
        Some(&["nightly".to_owned()][..])
    );
    let status = rule(&role, "backuppolicies/status").expect("status rule");
    assert_eq!(status.verbs, ["get", "patch"]);
    assert_eq!(status.resource_names, policies.resource_names);
    let catalogs = rule(&role, "datacatalogs").expect("catalogs rule");
    assert_eq!(catalogs.verbs, ["list"]);
    let events = rule(&role, "events").expect("events rule");
    assert_eq!(
        events.api_groups.as_deref(),
        Some(&["events.k8s.io".to_owned()][..])
    );
    assert_eq!(role.rules.as_ref().map(Vec::len), Some(5));
    for r in role.rules.iter().flatten() {
        assert!(!r.verbs.iter().any(|v| v == "*"
            || v == "list" && r.resources.as_deref() == Some(&["secrets".to_owned()][..])));
    }
}

#[test]
fn a_role_never_has_an_empty_name_list_which_would_allow_every_name() {
    let role = role("ns", &[], &RunnerNeeds::default());
    assert!(rule(&role, "secrets").is_none());
    assert!(rule(&role, "backuppolicies").is_none());
    assert!(rule(&role, "datacatalogs").is_none());
    for r in role.rules.iter().flatten() {
        assert_ne!(r.resource_names.as_deref(), Some(&[][..]));
    }
}

#[test]
fn the_account_role_and_binding_are_shared_by_the_namespaces_policies() {
    let mut other = policy();
    other.metadata.name = Some("weekly".into());
    other.metadata.uid = Some("00000000-0000-0000-0000-000000000002".into());
    let owners = [policy(), other];
    let account = service_account("dept-public-security", &owners);
    let binding = role_binding("dept-public-security", &owners);
    let role = role("dept-public-security", &owners, &needs());
    for meta in [&account.metadata, &binding.metadata, &role.metadata] {
        assert_eq!(meta.name.as_deref(), Some(SERVICE_ACCOUNT));
        assert_eq!(meta.namespace.as_deref(), Some("dept-public-security"));
        let refs = meta.owner_references.as_ref().expect("owners");
        // Garbage-collected with the last policy; no controller: they are shared.
        assert_eq!(refs.len(), 2);
        assert!(refs.iter().all(|r| r.controller != Some(true)));
    }
    assert_eq!(binding.role_ref.kind, "Role");
    assert_eq!(binding.role_ref.name, SERVICE_ACCOUNT);
    let subjects = binding.subjects.expect("subjects");
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0].kind, "ServiceAccount");
    assert_eq!(subjects[0].name, SERVICE_ACCOUNT);
    assert_eq!(
        subjects[0].namespace.as_deref(),
        Some("dept-public-security")
    );
}
