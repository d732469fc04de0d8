//! The operator survives what a Deployment does to it: a crash (SIGKILL) mid-workflow and a
//! restart that resumes from the status alone, and two replicas of which only the Lease holder
//! reconciles, a standby taking over when the leader stops. Each test has a control plane of its
//! own (the shared one already runs an operator, and two operators on it would fight); the tests
//! run one at a time so that two control planes do not starve each other.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use gongshu_api::v1alpha1::{DataCatalog, GrantPhase, ItemReview, Review, ShareGrant};
use gongshu_e2e::{
    controlplane::{ControlPlane, DEFAULT_READY_TIMEOUT},
    fixtures::{grant, provider_catalog},
    harness::{E2E_LABEL, random_suffix},
    operator,
    process::Process,
    upstream,
};
use k8s_openapi::api::{
    admissionregistration::v1::ValidatingWebhookConfiguration, coordination::v1::Lease,
    core::v1::Namespace, events::v1::Event as K8sEvent,
};
use kube::{
    Api, Client, Resource,
    api::{ListParams, ObjectMeta, PostParams},
    runtime::wait::{Condition, await_condition},
};
use serde::de::DeserializeOwned;
use serde_json::json;

/// One fresh control plane at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const AUTHORITY_NAMESPACE: &str = "gongshu-system";
const LOG_FILTER: &str = "info,gongshu=debug,kube=warn";
const WAIT: Duration = Duration::from_secs(60);

/// The operator binary `cargo xtask test` builds before the suites run.
fn operator_binary() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo.join("target"), PathBuf::from);
    let binary = target.join("debug").join("gongshu");
    assert!(
        binary.exists(),
        "operator binary {} is missing: run the suite with `cargo xtask test` (or `cargo build -p gongshu` first)",
        binary.display()
    );
    binary
}

/// A fresh control plane with the CRDs, the operator's namespace and RBAC installed, and the
/// operators started on it, which are stopped (SIGTERM) before the control plane.
struct Cluster {
    operators: Vec<Process>,
    plane: Option<ControlPlane>,
    dir: PathBuf,
    client: Client,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        while let Some(p) = self.operators.pop() {
            p.stop(Duration::from_secs(10));
        }
        drop(self.plane.take());
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Cluster {
    async fn start() -> Self {
        let bins = upstream::binaries();
        assert!(
            bins.kube_apiserver.exists(),
            "upstream binaries missing: run `cargo xtask upstream`"
        );
        let dir = std::env::temp_dir().join(format!("gongshu-resilience-{}", random_suffix()));
        let plane = ControlPlane::start(&dir, &bins, DEFAULT_READY_TIMEOUT)
            .await
            .expect("control plane starts");
        let client = plane.client().await.expect("admin client");
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        gongshu_e2e::operator::install(&upstream::binaries().kubectl, plane.kubeconfig(), &repo)
            .expect("CRDs and operator RBAC install");
        let dir = plane.dir().to_path_buf();
        Self {
            operators: Vec::new(),
            plane: Some(plane),
            dir,
            client,
        }
    }

    /// Starts an operator logging to `logs/<name>.log`; returns its index and log.
    async fn operator(&mut self, name: &str, env: &[(&str, &str)]) -> (usize, PathBuf) {
        let log = self.dir.join("logs").join(format!("{name}.log"));
        let mut all = vec![("RUST_LOG", LOG_FILTER)];
        all.extend_from_slice(env);
        let p = operator::start(&operator_binary(), &self.dir, &log, &all)
            .await
            .expect("operator starts");
        self.operators.push(p);
        (self.operators.len() - 1, log)
    }

    /// A department namespace `<code>-<random>` (level `city`); returns (namespace, code).
    async fn department(&self, code: &str) -> (String, String) {
        let name = format!("{code}-{}", random_suffix());
        let labels: BTreeMap<String, String> = [
            (gongshu_api::v1alpha1::LABEL_DEPARTMENT, name.as_str()),
            (gongshu_api::v1alpha1::LABEL_LEVEL, "city"),
            (E2E_LABEL, "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(labels),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
        (name.clone(), name)
    }

    /// Creates `obj`, retrying while the webhook denies it (caches not synced yet) or cannot
    /// be called (a replica that registered it is still starting).
    async fn create_admitted<K>(&self, api: &Api<K>, obj: &K) -> K
    where
        K: Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
    {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match api.create(&PostParams::default(), obj).await {
                Err(kube::Error::Api(e))
                    if (e.message.contains("admission webhook")
                        || e.message.contains("failed calling webhook"))
                        && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => return other.expect("created"),
            }
        }
    }

    async fn review(&self, namespace: &str, subject: serde_json::Value, decision: &str) {
        let review: Review = serde_json::from_value(json!({
            "apiVersion": "gongshu.io/v1alpha1",
            "kind": "Review",
            "metadata": {"name": format!("{decision}-{}", random_suffix()), "namespace": namespace},
            "spec": {
                "subject": subject,
                "decision": decision,
                "reason": "",
                "legalBasis": "Regulations on Government Data Sharing art. 12",
            },
        }))
        .unwrap();
        self.create_admitted(&Api::namespaced(self.client.clone(), namespace), &review)
            .await;
    }

    /// A provider department with an approved catalog (`<prefix>.households` conditional);
    /// returns (provider namespace, prefix).
    async fn approved_catalog(&self) -> (String, String) {
        let (ns, code) = self.department("provider").await;
        let prefix = format!("rs-{}", random_suffix());
        let catalogs: Api<DataCatalog> = Api::namespaced(self.client.clone(), &ns);
        let catalog = provider_catalog(&ns, &code, &prefix);
        self.create_admitted(&catalogs, &catalog).await;
        for item in &catalog.spec.items {
            self.review(
                AUTHORITY_NAMESPACE,
                json!({"kind": "CatalogItem", "namespace": ns, "name": "catalog", "item": item.identifier}),
                "approve",
            )
            .await;
        }
        let count = catalog.spec.items.len();
        wait_for(catalogs, "catalog", move |c: Option<&DataCatalog>| {
            c.and_then(|c| c.status.as_ref()).is_some_and(|s| {
                s.items.len() == count && s.items.iter().all(|i| i.review == ItemReview::Approved)
            })
        })
        .await;
        (ns, prefix)
    }
}

async fn wait_for<K>(api: Api<K>, name: &str, cond: impl Condition<K>) -> K
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    match tokio::time::timeout(WAIT, await_condition(api.clone(), name, cond)).await {
        Ok(Ok(Some(obj))) => obj,
        Ok(other) => panic!("waiting for {name}: {other:?}"),
        Err(_) => panic!(
            "{name}: condition not met after {WAIT:?}; last seen: {:#?}",
            api.get_opt(name).await
        ),
    }
}

fn phase_is(phase: GrantPhase) -> impl Condition<ShareGrant> {
    move |g: Option<&ShareGrant>| {
        g.and_then(|g| g.status.as_ref())
            .is_some_and(|s| s.phase == Some(phase))
    }
}

fn read_log(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// Waits until a line of `log` contains every one of `needles`; returns that line.
async fn wait_log(log: &Path, needles: &[&str], timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(line) = find_line(log, needles) {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "no line with {needles:?} in {} after {timeout:?}; last lines:\n{}",
            log.display(),
            gongshu_e2e::process::tail(log, 30)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn find_line(log: &Path, needles: &[&str]) -> Option<String> {
    read_log(log)
        .lines()
        .find(|l| needles.iter().all(|n| l.contains(n)))
        .map(str::to_owned)
}

/// The `<Kind>.v1alpha1.gongshu.io/<name>.<namespace>` the controllers log objects as.
fn object_ref(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind}.v1alpha1.gongshu.io/{name}.{namespace}")
}

/// Events about `name` in `namespace` by reason, counting each occurrence of a series.
async fn events_of(client: &Client, namespace: &str, name: &str) -> BTreeMap<String, i32> {
    let events: Api<K8sEvent> = Api::namespaced(client.clone(), namespace);
    let mut counts = BTreeMap::new();
    for e in events.list(&ListParams::default()).await.unwrap() {
        if e.regarding.as_ref().and_then(|r| r.name.as_deref()) != Some(name) {
            continue;
        }
        let n = e.series.as_ref().map_or(1, |s| s.count);
        *counts.entry(e.reason.unwrap_or_default()).or_insert(0) += n;
    }
    counts
}

/// The admin address an operator logged.
fn admin_addr(log: &Path) -> String {
    let line = find_line(log, &["admin server listening"]).expect("admin address logged");
    line.split_once("addr=")
        .map(|(_, rest)| {
            rest.split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .expect("addr= in the line")
}

/// The `gongshu_leader` gauge from an operator's `/metrics`.
async fn leader_gauge(addr: &str) -> f64 {
    use std::io::{Read, Write};
    let addr = addr.to_owned();
    let body = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut body = String::new();
        stream.read_to_string(&mut body).unwrap();
        body
    })
    .await
    .unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix("gongshu_leader "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no gongshu_leader in /metrics:\n{body}"))
}

async fn lease_holder(client: &Client) -> Option<String> {
    Api::<Lease>::namespaced(client.clone(), AUTHORITY_NAMESPACE)
        .get_opt("gongshu-operator")
        .await
        .unwrap()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

#[tokio::test]
async fn an_operator_restart_mid_workflow_resumes_from_status_without_double_counting() {
    let _serial = SERIAL.lock().await;
    let mut c = Cluster::start().await;
    let lease = [("GONGSHU_LEASE_DURATION_SECONDS", "4")];
    let (first, log1) = c.operator("operator-1", &lease).await;
    wait_log(&log1, &["registered the admission webhook"], WAIT).await;

    let (provider_ns, prefix) = c.approved_catalog().await;
    let (consumer_ns, _) = c.department("consumer").await;
    let grants: Api<ShareGrant> = Api::namespaced(c.client.clone(), &consumer_ns);
    let g = grant(
        &consumer_ns,
        "allowance",
        &format!("{prefix}.households"),
        &["citizen_id", "name"],
        "api",
    );
    c.create_admitted(&grants, &g).await;
    let before = wait_for(
        grants.clone(),
        "allowance",
        phase_is(GrantPhase::ProviderReview),
    )
    .await;
    let status = before.status.clone().unwrap();
    assert!(status.due.is_some(), "the provider's due time is in status");
    assert!(
        !status.deadlines.is_empty(),
        "the pending step has a deadline"
    );
    // The transition's Event is published after the status is written.
    let deadline = Instant::now() + Duration::from_secs(10);
    let events_before = loop {
        let events = events_of(&c.client, &consumer_ns, "allowance").await;
        if events.contains_key("ProviderReview") || Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        events_before.get("ProviderReview"),
        Some(&1),
        "one Event for entering ProviderReview: {events_before:?}"
    );

    // A crash: no graceful shutdown, no Lease release.
    let mut crashed = c.operators.remove(first);
    crashed.child.kill().unwrap();
    crashed.child.wait().unwrap();

    let (_, log2) = c.operator("operator-2", &lease).await;
    // The new process waits for the crashed one's Lease to expire, then reconciles the grant.
    wait_log(&log2, &["acquired the lease; leading"], WAIT).await;
    let grant_ref = object_ref("ShareGrant", &consumer_ns, "allowance");
    wait_log(&log2, &["reconciled", &grant_ref], WAIT).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let after = grants.get("allowance").await.unwrap();
    let resumed = after.status.clone().unwrap();
    assert_eq!(resumed.phase, Some(GrantPhase::ProviderReview));
    assert_eq!(resumed.due, status.due, "the same due time");
    assert_eq!(
        resumed.deadlines, status.deadlines,
        "the same deadlines (started, due), none duplicated"
    );
    assert_eq!(resumed.request, status.request, "the same request");
    assert_eq!(resumed, status, "the restart leaves the status as it was");
    assert_eq!(
        after.metadata.resource_version, before.metadata.resource_version,
        "the restart writes nothing"
    );
    let events_after = events_of(&c.client, &consumer_ns, "allowance").await;
    assert_eq!(
        events_after, events_before,
        "no Event is published again for a transition the crashed process already reported"
    );

    // The workflow goes on under the new process.
    c.review(
        &provider_ns,
        json!({"kind": "ShareGrant", "namespace": consumer_ns, "name": "allowance"}),
        "approve",
    )
    .await;
    let active = wait_for(grants.clone(), "allowance", phase_is(GrantPhase::Active)).await;
    let active = active.status.unwrap();
    assert!(active.endpoint.is_some(), "an active grant has an endpoint");
    let steps: Vec<_> = active.deadlines.iter().map(|d| d.step).collect();
    let mut unique = steps.clone();
    unique.dedup();
    assert_eq!(
        steps, unique,
        "no step counted twice: {:?}",
        active.deadlines
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let events_final = loop {
        let events = events_of(&c.client, &consumer_ns, "allowance").await;
        if events.contains_key("Active") || Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(events_final.get("Active"), Some(&1), "{events_final:?}");
    assert_eq!(
        events_final.get("ProviderReview"),
        Some(&1),
        "{events_final:?}"
    );
    assert_eq!(
        events_final.get("DeadlineBreached"),
        None,
        "{events_final:?}"
    );
}

#[tokio::test]
async fn only_the_leader_writes_and_a_standby_takes_over() {
    let _serial = SERIAL.lock().await;
    let mut c = Cluster::start().await;
    let lease = ("GONGSHU_LEASE_DURATION_SECONDS", "4");
    // Replica a starts first and takes the Lease; replica b starts second, so its webhook
    // registration is the one in force (the last one wins). Stopping the leader a therefore
    // leaves admission working; stopping b would leave the webhook pointing at a dead port and
    // admission failing closed until a replica registers again.
    let (a, log_a) = c
        .operator("replica-a", &[lease, ("POD_NAME", "replica-a")])
        .await;
    wait_log(&log_a, &["acquired the lease; leading"], WAIT).await;
    wait_log(&log_a, &["registered the admission webhook"], WAIT).await;
    let (_, log_b) = c
        .operator("replica-b", &[lease, ("POD_NAME", "replica-b")])
        .await;
    let registered = wait_log(&log_b, &["registered the admission webhook"], WAIT).await;
    let url_b = registered
        .split_once("url=")
        .map(|(_, rest)| rest.trim().to_owned())
        .expect("url= in the line");
    let webhooks: Api<ValidatingWebhookConfiguration> = Api::all(c.client.clone());
    let in_force = webhooks.get("gongshu").await.unwrap();
    let urls: Vec<_> = in_force
        .webhooks
        .iter()
        .flatten()
        .filter_map(|w| w.client_config.url.clone())
        .collect();
    assert_eq!(
        urls,
        vec![url_b],
        "the last replica to start registered the webhook"
    );
    wait_log(&log_a, &["initial lists complete"], WAIT).await;

    assert_eq!(lease_holder(&c.client).await.as_deref(), Some("replica-a"));
    let (addr_a, addr_b) = (admin_addr(&log_a), admin_addr(&log_b));
    assert!(
        (leader_gauge(&addr_a).await - 1.0).abs() < f64::EPSILON,
        "a leads"
    );
    assert!(
        leader_gauge(&addr_b).await.abs() < f64::EPSILON,
        "b stands by"
    );

    // A new object is reconciled by the leader only.
    let (ns1, code1) = c.department("provider").await;
    let catalogs: Api<DataCatalog> = Api::namespaced(c.client.clone(), &ns1);
    c.create_admitted(
        &catalogs,
        &provider_catalog(&ns1, &code1, &format!("la-{}", random_suffix())),
    )
    .await;
    let written = wait_for(catalogs, "catalog", |c: Option<&DataCatalog>| {
        c.and_then(|c| c.status.as_ref())
            .is_some_and(|s| !s.items.is_empty())
    })
    .await;
    assert!(
        written.metadata.managed_fields.iter().flatten().any(|m| {
            m.manager.as_deref() == Some("gongshu.io/operator")
                && m.subresource.as_deref() == Some("status")
        }),
        "the status is written by the operator's field manager: {:?}",
        written.metadata.managed_fields
    );
    let ref1 = object_ref("DataCatalog", &ns1, "catalog");
    wait_log(&log_a, &["reconciled", &ref1], WAIT).await;
    assert_eq!(
        find_line(&log_b, &["reconciled"]),
        None,
        "the standby reconciles nothing"
    );

    // A graceful stop releases the Lease; the standby takes over well before it would expire.
    let leader = c.operators.remove(a);
    let stopped = Instant::now();
    assert!(
        leader.stop(Duration::from_secs(15)),
        "the leader exits 0 on SIGTERM"
    );
    assert!(
        find_line(&log_a, &["released the lease"]).is_some(),
        "the leader released the Lease"
    );
    wait_log(
        &log_b,
        &["acquired the lease; leading"],
        Duration::from_secs(10),
    )
    .await;
    let took_over = stopped.elapsed();
    assert!(
        took_over < Duration::from_secs(10),
        "took over in {took_over:?}"
    );
    assert_eq!(lease_holder(&c.client).await.as_deref(), Some("replica-b"));
    assert!(
        (leader_gauge(&addr_b).await - 1.0).abs() < f64::EPSILON,
        "b leads"
    );

    let (ns2, code2) = c.department("provider").await;
    let catalogs: Api<DataCatalog> = Api::namespaced(c.client.clone(), &ns2);
    c.create_admitted(
        &catalogs,
        &provider_catalog(&ns2, &code2, &format!("lb-{}", random_suffix())),
    )
    .await;
    wait_for(catalogs, "catalog", |c: Option<&DataCatalog>| {
        c.and_then(|c| c.status.as_ref())
            .is_some_and(|s| !s.items.is_empty())
    })
    .await;
    wait_log(
        &log_b,
        &["reconciled", &object_ref("DataCatalog", &ns2, "catalog")],
        WAIT,
    )
    .await;
}
