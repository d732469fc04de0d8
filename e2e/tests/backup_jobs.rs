//! Backup runs as Kubernetes Jobs (`--backup-runner job`, SEC-1) against the real apiserver and
//! kube-controller-manager (whose Job controller creates the runner's pods and enforces
//! `activeDeadlineSeconds`), with the operator under exactly the RBAC of `deploy/rbac.yaml`:
//! the Job's spec; the namespace's `gongshu-backup` ServiceAccount, Role and RoleBinding, and
//! SubjectAccessReviews that the runner may read the Secrets its policy names and no other; the
//! ValidatingAdmissionPolicy that keeps the operator's Jobs to that account; no second Job
//! while one is unfinished (across an operator restart too); a Job that Kubernetes fails (its
//! pod never runs: this control plane has no node) recorded in the policy's status and as an
//! Event, then retried as a new Job; and a Job whose pod does not run within the start timeout
//! recorded as `RunnerNotStarted`, deleted and retried. The control plane is the test's own:
//! the shared one's operator runs processes.
//!
//! The operator's settings here: Jobs fail 90 s after they start (`activeDeadlineSeconds`),
//! failures are retried after 3 s, schedules run every minute.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{
    collections::BTreeSet,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use gongshu_api::v1alpha1::BackupPolicy;
use gongshu_e2e::{
    backup::{job_operator_env, secret},
    cluster::{OwnCluster, operator_binary},
    harness::until,
    observe,
};
use k8s_openapi::api::{
    batch::v1::Job,
    core::v1::ServiceAccount,
    rbac::v1::{Role, RoleBinding},
};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, PostParams},
};
use serde_json::json;

const IMAGE: &str = "registry.example/gongshu:test";
const DEADLINE_SECONDS: &str = "90";

fn policy(name: &str, sources: serde_json::Value, local: serde_json::Value) -> BackupPolicy {
    serde_json::from_value(json!({
        "apiVersion": "gongshu.io/v1alpha1",
        "kind": "BackupPolicy",
        "metadata": {"name": name},
        "spec": {
            "schedule": "* * * * *",
            "sources": sources,
            "encryption": {"recipients": ["age1sqdtl4dvwcthrcj5cyd00et6r8qu29zlmjdd236aykeuxzswc4xsxfasn5"]},
            "destinations": {
                "local": local,
                "offsite": {
                    "endpoint": "http://127.0.0.1:9000",
                    "bucket": "offsite",
                    "credentialsSecret": "offsite-s3",
                },
            },
            "rpo": "1h",
        }
    }))
    .unwrap()
}

/// Whether `user` (a ServiceAccount) may `verb` `resource` (`secrets`, `backuppolicies/status`)
/// named `name` in `namespace`.
async fn allowed(
    client: &Client,
    user: &str,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: &str,
    name: Option<&str>,
) -> bool {
    gongshu_e2e::harness::may(client, user, verb, group, resource, Some(namespace), name)
        .await
        .expect("access review")
}

fn finished(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        })
}

async fn jobs(api: &Api<Job>, uid: &str) -> Vec<Job> {
    api.list(&ListParams::default().labels(&format!("gongshu.io/backup-policy-uid={uid}")))
        .await
        .expect("list Jobs")
        .items
}

#[tokio::test]
async fn runs_are_jobs_of_the_backup_account_never_doubled_and_their_failures_are_retried() {
    let mut c = OwnCluster::start("backup-jobs")
        .await
        .expect("control plane starts");
    let binary = operator_binary("debug").expect("operator built");
    let env = job_operator_env(
        IMAGE,
        &[
            ("GONGSHU_BACKUP_JOB_DEADLINE_SECONDS", DEADLINE_SECONDS),
            ("GONGSHU_BACKUP_JOB_ARGS", "--stall-seconds 300"),
            (
                "GONGSHU_BACKUP_JOB_ENV",
                "AWS_CA_BUNDLE=/etc/gongshu/s3-ca.pem",
            ),
        ],
    );
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (first, log) = c
        .start_operator(&binary, "operator", &env)
        .await
        .expect("operator starts");
    let client = c.env.client.clone();
    let (ns, _) = c.env.department("jobs").await.expect("department");
    for (name, key) in [
        ("offsite-s3", "accessKeyId"),
        ("db", "uri"),
        ("unrelated", "x"),
    ] {
        secret(&c.env, &ns, name, json!({ key: "v" }))
            .await
            .unwrap();
    }
    let policies: Api<BackupPolicy> = Api::namespaced(client.clone(), &ns);
    let db =
        json!([{"name": "db", "postgres": {"connectionSecretRef": {"name": "db", "key": "uri"}}}]);
    // A path source cannot be read from a pod: refused with a reason, nothing started (SEC-1).
    // Created first, so the Role of the first run is owned by both policies.
    policies
        .create(
            &PostParams::default(),
            &policy(
                "files",
                json!([{"name": "files", "path": "/srv/files"}]),
                json!({"path": "/var/backups/files", "claimName": "backups"}),
            ),
        )
        .await
        .expect("second policy created");

    let created = policies
        .create(
            &PostParams::default(),
            &policy(
                "nightly",
                db,
                json!({"path": "/var/backups/nightly", "claimName": "backups"}),
            ),
        )
        .await
        .expect("policy created");
    let uid = created.uid().unwrap();
    // No two unfinished Jobs of the policy at any moment of the test (no overlap).
    let jobs_api: Api<Job> = Api::namespaced(client.clone(), &ns);
    let stop = Arc::new(AtomicBool::new(false));
    let overlap = tokio::spawn({
        let (api, uid, stop) = (jobs_api.clone(), uid.clone(), stop.clone());
        async move {
            let mut seen = BTreeSet::new();
            while !stop.load(Ordering::Relaxed) {
                let all = jobs(&api, &uid).await;
                let unfinished: Vec<_> = all
                    .iter()
                    .filter(|j| !finished(j))
                    .map(ResourceExt::name_any)
                    .collect();
                assert!(unfinished.len() <= 1, "overlapping runs: {unfinished:?}");
                seen.extend(all.iter().map(ResourceExt::name_any));
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            seen
        }
    });

    // The first scheduled run (the next minute): a Job with the expected spec.
    let job = until(
        Duration::from_secs(90),
        "the first Job",
        String::new,
        || async { jobs(&jobs_api, &uid).await.into_iter().next() },
    )
    .await;
    let first_name = job.name_any();
    assert!(
        first_name.starts_with("nightly-r") && first_name.ends_with("-0"),
        "{first_name}"
    );
    let owner = &job.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("BackupPolicy", uid.as_str())
    );
    assert_eq!(owner.controller, Some(true));
    let spec = job.spec.clone().unwrap();
    assert_eq!(spec.backoff_limit, Some(0));
    assert_eq!(spec.active_deadline_seconds, Some(90));
    assert_eq!(spec.ttl_seconds_after_finished, Some(86_400));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("gongshu-backup"));
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    let container = &pod.containers[0];
    assert_eq!(container.image.as_deref(), Some(IMAGE));
    let args = container.args.clone().unwrap();
    assert_eq!(
        args[..6],
        [
            "backup",
            "run",
            "--namespace",
            ns.as_str(),
            "--policy",
            "nightly"
        ]
    );
    assert!(
        args.windows(2).any(|w| w == ["--stall-seconds", "300"]),
        "{args:?}"
    );
    assert!(
        args.windows(2)
            .any(|w| w == ["--local-root", "/var/backups/nightly"])
    );
    assert!(
        container
            .env
            .iter()
            .flatten()
            .any(|e| e.name == "AWS_CA_BUNDLE")
    );
    let sc = container.security_context.as_ref().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.run_as_user, Some(65532));
    let claim = pod
        .volumes
        .iter()
        .flatten()
        .find_map(|v| v.persistent_volume_claim.as_ref());
    assert_eq!(claim.map(|c| c.claim_name.as_str()), Some("backups"));

    // The runner's account, Role and binding, and what they allow (SEC-1).
    let account: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    let roles: Api<Role> = Api::namespaced(client.clone(), &ns);
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), &ns);
    assert!(account.get_opt("gongshu-backup").await.unwrap().is_some());
    let role = roles
        .get("gongshu-backup")
        .await
        .expect("the runner's Role");
    let binding = bindings.get("gongshu-backup").await.expect("its binding");
    assert_eq!(binding.role_ref.name, "gongshu-backup");
    assert_eq!(role.owner_references().len(), 2, "owned by both policies");
    let runner = format!("system:serviceaccount:{ns}:gongshu-backup");
    let may = |verb: &'static str,
               group: &'static str,
               resource: &'static str,
               name: Option<&'static str>| {
        let (client, runner, ns) = (client.clone(), runner.clone(), ns.clone());
        async move { allowed(&client, &runner, verb, group, resource, &ns, name).await }
    };
    assert!(may("get", "", "secrets", Some("offsite-s3")).await);
    assert!(may("get", "", "secrets", Some("db")).await);
    assert!(
        !may("get", "", "secrets", Some("unrelated")).await,
        "a Secret no policy names"
    );
    assert!(
        !may("list", "", "secrets", None).await,
        "Secrets are never listed"
    );
    assert!(!may("get", "", "secrets", None).await);
    assert!(may("get", "gongshu.io", "backuppolicies", Some("nightly")).await);
    assert!(
        may(
            "patch",
            "gongshu.io",
            "backuppolicies/status",
            Some("nightly")
        )
        .await
    );
    assert!(
        !may("patch", "gongshu.io", "backuppolicies", Some("nightly")).await,
        "not the spec"
    );
    assert!(!may("get", "gongshu.io", "backuppolicies", Some("someone-else")).await);
    assert!(may("create", "events.k8s.io", "events", None).await);
    assert!(!may("create", "batch", "jobs", None).await);
    assert!(
        !allowed(
            &client,
            &runner,
            "get",
            "",
            "secrets",
            "gongshu-system",
            Some("offsite-s3")
        )
        .await,
        "another namespace's Secret"
    );

    // The apiserver's own policy (ValidatingAdmissionPolicy gongshu-operator-jobs): a Job the
    // operator's account creates runs as gongshu-backup, or is denied.
    let operator_user = "system:serviceaccount:gongshu-system:gongshu-operator";
    let as_operator = |account: &str| {
        let job = json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "probe", "namespace": ns,
                         "labels": {"app.kubernetes.io/component": "backup-runner"}},
            "spec": {"template": {"spec": {
                "serviceAccountName": account, "restartPolicy": "Never",
                "containers": [{"name": "x", "image": IMAGE}],
            }}},
        });
        let mut cmd = c.env.kubectl();
        cmd.args([
            "create",
            "--dry-run=server",
            "-f",
            "-",
            "--as",
            operator_user,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl runs");
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), job.to_string().as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let denied = as_operator("default");
    assert!(
        !denied.status.success(),
        "a Job as another account was admitted"
    );
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(stderr.contains("gongshu-operator-jobs"), "{stderr}");
    let admitted = as_operator("gongshu-backup");
    assert!(
        admitted.status.success(),
        "{}",
        String::from_utf8_lossy(&admitted.stderr)
    );

    // The refused policy stalls, saying why.
    let files = policies.get("files").await.unwrap();
    let condition = files
        .status
        .as_ref()
        .and_then(|s| s.common.conditions.iter().find(|c| c.type_ == "Stalled"))
        .cloned();
    let stalled = match condition {
        Some(c) => c,
        None => {
            until(
                Duration::from_secs(20),
                "the path policy stalls",
                String::new,
                || async {
                    policies
                        .get("files")
                        .await
                        .ok()?
                        .status?
                        .common
                        .conditions
                        .into_iter()
                        .find(|c| c.type_ == "Stalled" && c.status == "True")
                },
            )
            .await
        }
    };
    assert_eq!(stalled.status, "True");
    assert!(
        stalled.message.contains("spec.sources[0].path"),
        "{}",
        stalled.message
    );
    assert!(
        stalled.message.contains("--backup-runner job"),
        "{}",
        stalled.message
    );

    // An operator restart while the Job is unfinished: the next minute's run does not start
    // a second Job (an unfinished Job counts as running; the overlap watch asserts it).
    assert!(
        c.stop_operator(first, Duration::from_secs(15)),
        "graceful stop"
    );
    let (second, _) = c
        .start_operator(&binary, "operator-2", &env)
        .await
        .expect("operator restarts");
    let job_created = job.creation_timestamp().unwrap().0;
    let until_deadline = || {
        let now = jiff::Timestamp::now();
        let elapsed = now.duration_since(job_created).as_secs();
        Duration::from_secs(u64::try_from(80 - elapsed).unwrap_or(0))
    };
    tokio::time::sleep(until_deadline()).await;
    let live: Vec<_> = jobs(&jobs_api, &uid)
        .await
        .into_iter()
        .filter(|j| !finished(j))
        .map(|j| j.name_any())
        .collect();
    assert_eq!(
        live,
        std::slice::from_ref(&first_name),
        "one run, across a restart and a scheduled time"
    );

    // Kubernetes fails the Job at its deadline (its pod never ran): the failure is in the
    // status and an Event, and the run is retried as a new Job, attempt 1.
    let failure = until(
        Duration::from_secs(60),
        "the Job's failure in the status",
        String::new,
        || async { policies.get("nightly").await.ok()?.status?.last_failure },
    )
    .await;
    assert_eq!(failure.category, "DeadlineExceeded", "{failure:?}");
    assert_eq!(failure.backup_id, first_name);
    assert_eq!(failure.attempts, 1);
    let nightly = policies.get("nightly").await.unwrap();
    let ready = nightly
        .status
        .as_ref()
        .and_then(|s| s.common.conditions.iter().find(|c| c.type_ == "Ready"))
        .unwrap();
    assert_eq!(ready.status, "False");
    assert!(
        ready.message.contains("DeadlineExceeded"),
        "{}",
        ready.message
    );
    until(
        Duration::from_secs(20),
        "the RunnerFailed Event",
        String::new,
        || async {
            let events = observe::events_of(&client, &ns, "nightly").await.ok()?;
            events.contains_key("RunnerFailed").then_some(())
        },
    )
    .await;
    let retry = until(
        Duration::from_secs(30),
        "the retry Job",
        String::new,
        || async {
            jobs(&jobs_api, &uid)
                .await
                .into_iter()
                .find(|j| j.name_any() != first_name)
        },
    )
    .await;
    assert!(
        retry.name_any().ends_with("-1"),
        "attempt 1: {}",
        retry.name_any()
    );
    // The failed Job stays for inspection until its TTL.
    assert!(
        jobs(&jobs_api, &uid)
            .await
            .iter()
            .any(|j| j.name_any() == first_name && finished(j))
    );

    // A Job whose pod does not run within the start timeout (here no node ever runs it; in
    // a cluster an image that cannot be pulled, or no room): recorded as RunnerNotStarted,
    // deleted with its pending pod, and retried as the next attempt. An operator with a 5 s
    // start timeout takes over.
    assert!(
        c.stop_operator(second, Duration::from_secs(15)),
        "graceful stop"
    );
    let mut impatient = env.clone();
    impatient.push(("GONGSHU_BACKUP_JOB_START_SECONDS", "5"));
    c.start_operator(&binary, "operator-3", &impatient)
        .await
        .expect("operator restarts");
    let failure = until(
        Duration::from_secs(60),
        "RunnerNotStarted in the status",
        String::new,
        || async {
            policies
                .get("nightly")
                .await
                .ok()?
                .status?
                .last_failure
                .filter(|f| f.category == "RunnerNotStarted")
        },
    )
    .await;
    assert_eq!(failure.backup_id, retry.name_any());
    assert_eq!(failure.attempts, 2);
    assert!(
        failure.message.contains("was not running 5s after"),
        "{}",
        failure.message
    );
    until(
        Duration::from_secs(30),
        "the stuck Job deleted",
        String::new,
        || async {
            let names: Vec<_> = jobs(&jobs_api, &uid)
                .await
                .iter()
                .map(ResourceExt::name_any)
                .collect();
            (!names.contains(&retry.name_any())).then_some(())
        },
    )
    .await;
    until(
        Duration::from_secs(30),
        "the next attempt's Job",
        String::new,
        || async {
            jobs(&jobs_api, &uid)
                .await
                .into_iter()
                .find(|j| j.name_any().ends_with("-2"))
        },
    )
    .await;
    let events = observe::events_of(&client, &ns, "nightly").await.unwrap();
    assert!(
        events.get("RunnerFailed").copied().unwrap_or(0) >= 2,
        "{events:?}"
    );

    stop.store(true, Ordering::Relaxed);
    let seen = overlap.await.expect("no overlap");
    assert!(seen.len() >= 2, "{seen:?}");
    assert!(
        observe::find_line(&log, &["created a backup runner Job"]).is_some(),
        "the operator logged the Job"
    );
}
