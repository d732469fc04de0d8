//! Backups run as Kubernetes Jobs on a real node (SEC-1), end to end: a control plane of the
//! test's own with a node (`gongshu_e2e::node`: kubelet, containerd, runc, kube-proxy), the
//! workspace's debug `gongshu` imported as the runner image (`imagePullPolicy: Never`), and the
//! operator started with `--backup-runner job` under the RBAC of `deploy/rbac.yaml`. A
//! department namespace enforcing Pod Security `restricted` has a policy backing up a
//! PostgreSQL database to an off-site S3 bucket (versitygw over HTTPS: an endpoint off
//! loopback must be `https://`, its certificate signed by the harness CA, which the credentials
//! Secret carries as `caBundle`); both servers listen on the node's gateway (10.77.0.1), where
//! pods reach the host. The scheduled run's Job completes on the
//! node, its runner (in-cluster configuration, the `gongshu-backup` ServiceAccount) writes
//! `lastBackup` itself, the objects are in the bucket and the `age` CLI decrypts them; the
//! pod ran restricted as uid 65532. The restore drill's Job restores into a scratch database
//! and records `lastVerifiedRestore`. A policy with wrong S3 credentials ends as a Failed Job,
//! its failure in the policy's status and an Event.
//!
//! Needs root and cgroup v1 (the node), one node per machine at a time (a lock), the upstream
//! binaries with kubelet, kube-scheduler and kube-proxy (`cargo xtask upstream`), Debian's
//! containerd, runc, CNI plugins, iptables, PostgreSQL and `age`, and the debug `gongshu`
//! binary (`cargo xtask test --no-lint -- --test backup_node` builds it). Schedules run every
//! minute, so the first run starts within a minute.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{
    net::IpAddr,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use gongshu_api::v1alpha1::BackupPolicy;
use gongshu_e2e::{
    backup::{BackupTarget, job_operator_env, secret},
    cluster::{OwnCluster, operator_binary},
    harness::until,
    node::Node,
    observe,
    postgres::Postgres,
    process::tail,
    upstream,
};
use k8s_openapi::api::{batch::v1::Job, core::v1::Pod};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

const ROWS: usize = 500;
/// The first run of an every-minute schedule, the Job's pod and the run itself.
const FIRST_RUN: Duration = Duration::from_secs(180);

fn condition(job: &Job, type_: &str) -> Option<(String, String)> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
        .map(|c| {
            (
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
}

/// The policy's Jobs of `kind` (`run` or `verify`).
async fn jobs(api: &Api<Job>, uid: &str, kind: &str) -> Vec<Job> {
    api.list(&ListParams::default().labels(&format!(
        "gongshu.io/backup-policy-uid={uid},gongshu.io/backup={kind}"
    )))
    .await
    .expect("list Jobs")
    .items
}

/// The first of the policy's `kind` Jobs that finished: `Ok` if it completed, `Err` with its
/// Failed condition's reason and message otherwise.
async fn finished_job(api: &Api<Job>, uid: &str, kind: &str) -> Option<(Job, Result<(), String>)> {
    jobs(api, uid, kind).await.into_iter().find_map(|j| {
        if condition(&j, "Complete").is_some() {
            Some((j, Ok(())))
        } else {
            condition(&j, "Failed").map(|(r, m)| (j.clone(), Err(format!("{r}: {m}"))))
        }
    })
}

/// `kubectl logs` of `target` (through the apiserver and the kubelet).
fn kubectl_logs(kubeconfig: &Path, ns: &str, target: &str) -> String {
    let out = Command::new(upstream::binaries().kubectl)
        .env("KUBECONFIG", kubeconfig)
        .args(["logs", "-n", ns, target])
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `age -d -i key`, then zstd: the plaintext of a stored object.
fn age_decrypt(key: &Path, ciphertext: &[u8]) -> Vec<u8> {
    let mut child = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("age (Debian package)");
    let mut stdin = child.stdin.take().unwrap();
    let input = ciphertext.to_vec();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "age -d: {out:?}");
    zstd::decode_all(&out.stdout[..]).expect("zstd frame")
}

/// The runner pod of `job`, with its spec and status.
async fn pod_of(client: &Client, ns: &str, job: &Job) -> Pod {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let list = pods
        .list(&ListParams::default().labels(&format!("job-name={}", job.name_any())))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1, "one pod of {}", job.name_any());
    list.items.into_iter().next().unwrap()
}

fn policy(name: &str, target: &BackupTarget, credentials: &str, drill: bool) -> BackupPolicy {
    let mut spec = json!({
        "schedule": "* * * * *",
        "sources": [
            {"name": "db", "postgres": {"connectionSecretRef": {"name": "db", "key": "uri"}}},
        ],
        "encryption": {"recipients": [target.recipient]},
        "destinations": {
            "offsite": {
                "endpoint": target.s3.endpoint(),
                "bucket": target.bucket,
                "prefix": "gongshu",
                "credentialsSecret": credentials,
            },
        },
        "retention": {"keepLast": 3},
        "rpo": "2h",
    });
    if drill {
        spec["verification"] = json!({
            "schedule": "* * * * *",
            "identitySecretRef": {"name": "drill", "key": "identity"},
            "postgresSecretRef": {"name": "scratch", "key": "uri"},
        });
    }
    serde_json::from_value(json!({
        "apiVersion": "gongshu.io/v1alpha1",
        "kind": "BackupPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap()
}

#[tokio::test]
async fn a_backup_policy_runs_as_a_restricted_job_on_a_real_node_to_s3_and_its_drill_restores_sec_1()
 {
    let t0 = Instant::now();
    let mut c = OwnCluster::start_for_nodes("node-backup")
        .await
        .expect("control plane starts");
    let node = Node::start(c.plane(), &c.dir().join("node"))
        .await
        .expect("node starts and becomes Ready");
    let image = node.import_gongshu_image().expect("gongshu image imported");
    eprintln!("node Ready, {image} imported at {:.1?}", t0.elapsed());
    let gateway = node.gateway_ip();

    // PostgreSQL and S3 where pods reach the host (and loopback, for the harness).
    let target = BackupTarget::start_tls_on("on-node", IpAddr::V4(gateway), c.plane().pki())
        .await
        .expect("S3 server on the gateway");
    let pg = Postgres::start_on(&target.dir.join("pg"), &[gateway])
        .await
        .expect("postgres on the gateway");
    pg.psql(
        "postgres",
        &format!(
            "create table residents (id bigint primary key, name text not null, born date); \
             insert into residents select i, 'name-' || i, date '1950-01-01' + i \
             from generate_series(1, {ROWS}) i;"
        ),
    )
    .expect("tables");
    pg.psql("postgres", "create database scratch")
        .expect("database");

    let binary = operator_binary("debug").expect("operator built");
    let env = job_operator_env(
        &image,
        &[
            ("GONGSHU_BACKUP_IMAGE_PULL_POLICY", "Never"),
            ("GONGSHU_BACKUP_JOB_START_SECONDS", "120"),
        ],
    );
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (_, log) = c
        .start_operator(&binary, "operator", &env)
        .await
        .expect("operator starts");
    c.env
        .kubectl()
        .args([
            "wait",
            "--for=create",
            "validatingwebhookconfiguration/gongshu",
            "--timeout=60s",
        ])
        .status()
        .unwrap();

    // A department namespace that admits only Pod Security `restricted` pods.
    let code = format!("node-{}", gongshu_e2e::harness::random_suffix());
    let ns = c
        .env
        .namespace(
            &code,
            &[
                (gongshu_api::v1alpha1::LABEL_DEPARTMENT, &code),
                (gongshu_api::v1alpha1::LABEL_LEVEL, "city"),
                ("pod-security.kubernetes.io/enforce", "restricted"),
                ("pod-security.kubernetes.io/enforce-version", "latest"),
            ],
        )
        .await
        .expect("department");
    target.install(&c.env, &ns).await.expect("S3 Secret");
    let identity = std::fs::read_to_string(&target.identity).unwrap();
    for (name, data) in [
        ("db", json!({"uri": pg.url_at(gateway, "postgres")})),
        ("scratch", json!({"uri": pg.url_at(gateway, "scratch")})),
        ("drill", json!({ "identity": identity })),
        (
            "wrong-s3",
            json!({
                "accessKeyId": target.s3.access_key(),
                "secretAccessKey": "not-the-secret",
                "caBundle": target.s3.ca_pem().unwrap(),
            }),
        ),
    ] {
        secret(&c.env, &ns, name, data).await.expect("secret");
    }

    let client = c.env.client.clone();
    let policies: Api<BackupPolicy> = Api::namespaced(client.clone(), &ns);
    let jobs_api: Api<Job> = Api::namespaced(client.clone(), &ns);
    let created = policies
        .create(
            &PostParams::default(),
            &policy("nightly", &target, gongshu_e2e::backup::S3_SECRET, true),
        )
        .await
        .expect("policy");
    let uid = created.uid().unwrap();
    let kubeconfig = c.env.kubeconfig().to_path_buf();
    let (node_dir, operator_log) = (node.dir().to_path_buf(), log.clone());
    let context = || {
        format!(
            "operator log:\n{}\nkubelet log:\n{}",
            tail(&operator_log, 30),
            tail(&node_dir.join("logs/kubelet.log"), 20)
        )
    };

    // (a) The scheduled run is a Job that completes on the node.
    let t = Instant::now();
    let (job, outcome) = until(FIRST_RUN, "the run's Job finishes", &context, || {
        finished_job(&jobs_api, &uid, "run")
    })
    .await;
    let job_name = job.name_any();
    let pod = pod_of(&client, &ns, &job).await;
    let pod_log = kubectl_logs(&kubeconfig, &ns, &format!("pod/{}", pod.name_any()));
    assert_eq!(outcome, Ok(()), "Job {job_name}; runner log:\n{pod_log}");
    eprintln!(
        "(a) Job {job_name} completed {:.1?} after the policy",
        t.elapsed()
    );
    assert_eq!(
        pod.spec.as_ref().unwrap().node_name.as_deref(),
        Some(node.name())
    );

    // (b) Its runner wrote lastBackup itself, through the in-cluster configuration as the
    // namespace's gongshu-backup ServiceAccount.
    let nightly = until(
        Duration::from_secs(30),
        "lastBackup in the status",
        &context,
        || async {
            let p = policies.get("nightly").await.ok()?;
            p.status.as_ref()?.last_backup.as_ref()?;
            Some(p)
        },
    )
    .await;
    let backup = nightly.status.clone().unwrap().last_backup.unwrap();
    assert!(backup.bytes > 0 && backup.source_bytes > 0, "{backup:?}");
    // The runner (its JSON log read through the apiserver) started the backup that the
    // status names and reported without a refusal; the operator never writes lastBackup.
    assert!(
        pod_log.contains("backup started") && pod_log.contains(&backup.id),
        "runner log:\n{pod_log}"
    );
    assert!(
        !pod_log.contains("forbidden") && !pod_log.contains("cannot report progress"),
        "runner log:\n{pod_log}"
    );
    let sa = pod.spec.as_ref().unwrap().service_account_name.clone();
    assert_eq!(sa.as_deref(), Some("gongshu-backup"));

    // (c) The objects are in the bucket; the age CLI decrypts the table's.
    let store = target.s3.object_store(&target.bucket).unwrap();
    let prefix = object_store::path::Path::from(format!("gongshu/{ns}/nightly/{}", backup.id));
    let listed: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(
        object_store::ObjectStore::list(&store, Some(&prefix)),
    )
    .await
    .unwrap();
    let names: Vec<String> = listed.iter().map(|o| o.location.to_string()).collect();
    assert!(
        names.iter().any(|n| n.ends_with("manifest.json")),
        "{names:?}"
    );
    let table = listed
        .iter()
        .find(|o| {
            o.location
                .as_ref()
                .ends_with("public.residents.copy.zst.age")
        })
        .unwrap_or_else(|| panic!("the table's object: {names:?}"));
    let ciphertext = object_store::ObjectStore::get(&store, &table.location)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&ciphertext).contains("name-1"),
        "ciphertext"
    );
    let rows = age_decrypt(&target.identity, &ciphertext);
    assert_eq!(rows.iter().filter(|b| **b == b'\n').count(), ROWS);
    assert!(
        rows.starts_with(b"1\tname-1\t1950-01-02\n"),
        "{:?}",
        &rows[..40]
    );

    // (d) The pod was restricted: admitted by a namespace enforcing `restricted`, non-root
    // 65532, read-only root, no capabilities, no privilege escalation, RuntimeDefault seccomp;
    // it ran to exit 0.
    let spec = pod.spec.as_ref().unwrap();
    let psc = spec.security_context.as_ref().unwrap();
    assert_eq!(psc.run_as_user, Some(65532));
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(
        psc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
        Some("RuntimeDefault")
    );
    let container = &spec.containers[0];
    assert_eq!(container.image.as_deref(), Some(image.as_str()));
    assert_eq!(container.image_pull_policy.as_deref(), Some("Never"));
    let sc = container.security_context.as_ref().unwrap();
    assert_eq!(sc.run_as_user, Some(65532));
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_owned()])
    );
    let status = pod.status.as_ref().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Succeeded"));
    let terminated = status.container_statuses.as_ref().unwrap()[0]
        .state
        .as_ref()
        .and_then(|s| s.terminated.clone())
        .expect("terminated");
    assert_eq!(terminated.exit_code, 0, "{terminated:?}");

    // (e) The drill's Job restores the newest off-site backup into the scratch database and
    // records lastVerifiedRestore.
    let t = Instant::now();
    let (drill_job, outcome) = until(FIRST_RUN, "the drill's Job finishes", &context, || {
        finished_job(&jobs_api, &uid, "verify")
    })
    .await;
    let drill_pod = pod_of(&client, &ns, &drill_job).await;
    let drill_log = kubectl_logs(&kubeconfig, &ns, &format!("pod/{}", drill_pod.name_any()));
    assert_eq!(
        outcome,
        Ok(()),
        "drill Job {}; log:\n{drill_log}",
        drill_job.name_any()
    );
    let drilled = until(
        Duration::from_secs(30),
        "lastVerifiedRestore in the status",
        &context,
        || async {
            policies
                .get("nightly")
                .await
                .ok()?
                .status?
                .last_verified_restore
        },
    )
    .await;
    assert!(
        drilled.checked.contains(&format!("{ROWS} rows")),
        "{drilled:?}"
    );
    assert_eq!(
        pg.psql("scratch", "select count(*) from residents")
            .unwrap(),
        ROWS.to_string()
    );
    eprintln!(
        "(e) drill Job {} verified {} {:.1?} later",
        drill_job.name_any(),
        drilled.backup_id,
        t.elapsed()
    );
    policies
        .patch(
            "nightly",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": true}})),
        )
        .await
        .unwrap();

    // (f) Wrong S3 credentials: the runner records the failure itself and exits non-zero, the
    // Job fails (its pod failure policy), and an Event says why.
    let t = Instant::now();
    let wrong = policies
        .create(
            &PostParams::default(),
            &policy("wrong-credentials", &target, "wrong-s3", false),
        )
        .await
        .expect("policy");
    let wrong_uid = wrong.uid().unwrap();
    let (failed_job, outcome) = until(
        FIRST_RUN,
        "the failing run's Job finishes",
        &context,
        || finished_job(&jobs_api, &wrong_uid, "run"),
    )
    .await;
    let failed_pod = pod_of(&client, &ns, &failed_job).await;
    let failed_log = kubectl_logs(&kubeconfig, &ns, &format!("pod/{}", failed_pod.name_any()));
    let reason = outcome.expect_err("the Job fails");
    assert!(
        reason.starts_with("PodFailurePolicy"),
        "{reason}\n{failed_log}"
    );
    let failure = until(
        Duration::from_secs(30),
        "lastFailure in the status",
        &context,
        || async {
            policies
                .get("wrong-credentials")
                .await
                .ok()?
                .status?
                .last_failure
        },
    )
    .await;
    assert_eq!(failure.category, "destination", "{failure:?}\n{failed_log}");
    // The server refused the signature (TLS to it worked: the Secret's caBundle is trusted).
    assert!(failure.message.contains("403"), "{failure:?}");
    let events = until(
        Duration::from_secs(30),
        "the BackupFailed Event",
        &context,
        || async {
            let events = observe::events_of(&client, &ns, "wrong-credentials")
                .await
                .ok()?;
            events.contains_key("BackupFailed").then_some(events)
        },
    )
    .await;
    eprintln!("events of wrong-credentials: {events:?}");
    eprintln!(
        "(f) failing Job {} recorded {:.1?} after its policy: {}",
        failed_job.name_any(),
        t.elapsed(),
        failure.message
    );
    policies
        .patch(
            "wrong-credentials",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": true}})),
        )
        .await
        .unwrap();

    drop(node);
    drop(pg);
    drop(target);
    drop(c);
    eprintln!("done in {:.1?}", t0.elapsed());
}
