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

use gongshu_api::v1alpha1::{DataCatalog, GrantPhase, ShareGrant};
use gongshu_e2e::{
    cluster::{OwnCluster, operator_binary},
    fixtures::{Sharing, provider_catalog},
    harness::random_suffix,
    observe::{self, find_line},
};
use k8s_openapi::api::{
    admissionregistration::v1::ValidatingWebhookConfiguration, coordination::v1::Lease,
};
use kube::{
    Api, Client, Resource,
    runtime::wait::{Condition, await_condition},
};
use serde::de::DeserializeOwned;
use serde_json::json;

/// One fresh control plane at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const AUTHORITY_NAMESPACE: &str = "gongshu-system";
const WAIT: Duration = Duration::from_secs(60);

/// A fresh control plane with the CRDs and RBAC installed.
async fn cluster() -> OwnCluster {
    OwnCluster::start("resilience")
        .await
        .expect("control plane starts")
}

/// Starts an operator (the debug build `cargo xtask test` made) logging to `logs/<name>.log`;
/// returns its index and log.
async fn operator(c: &mut OwnCluster, name: &str, env: &[(&str, &str)]) -> (usize, PathBuf) {
    let binary = operator_binary("debug").expect("operator built");
    c.start_operator(&binary, name, env)
        .await
        .expect("operator starts")
}

async fn create_admitted<K>(c: &OwnCluster, api: &Api<K>, obj: &K) -> K
where
    K: Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    c.env
        .create_admitted(api, obj, Duration::from_secs(30))
        .await
        .expect("created")
}

async fn department(c: &OwnCluster, code: &str) -> (String, String) {
    c.env.department(code).await.expect("department namespace")
}

async fn review(c: &OwnCluster, namespace: &str, subject: serde_json::Value, decision: &str) {
    let name = format!("{decision}-{}", random_suffix());
    c.env
        .review(namespace, &name, subject, decision, "")
        .await
        .expect("review created");
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

/// The `<Kind>.v1alpha1.gongshu.io/<name>.<namespace>` the controllers log objects as.
fn object_ref(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind}.v1alpha1.gongshu.io/{name}.{namespace}")
}

/// The `gongshu_leader` gauge from an operator's `/metrics`.
async fn leader_gauge(addr: &str) -> f64 {
    let body = observe::scrape(addr).await.expect("/metrics");
    observe::metric_sum(&body, "gongshu_leader", &[])
        .unwrap_or_else(|| panic!("no gongshu_leader in /metrics:\n{body}"))
}

async fn wait_log(log: &Path, needles: &[&str], timeout: Duration) -> String {
    observe::wait_log(log, needles, timeout).await.unwrap()
}

async fn events_of(client: &Client, namespace: &str, name: &str) -> BTreeMap<String, i32> {
    observe::events_of(client, namespace, name).await.unwrap()
}

fn admin_addr(log: &Path) -> String {
    observe::admin_addr(log).unwrap()
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
    let mut c = cluster().await;
    let lease = [("GONGSHU_LEASE_DURATION_SECONDS", "4")];
    let (first, log1) = operator(&mut c, "operator-1", &lease).await;
    wait_log(&log1, &["registered the admission webhook"], WAIT).await;

    let cast = Sharing::on(c.env.clone(), provider_catalog, true)
        .await
        .expect("provider with an approved catalog, and a consumer");
    let (provider_ns, consumer_ns) = (cast.provider_ns.clone(), cast.consumer_ns.clone());
    let grants: Api<ShareGrant> = Api::namespaced(c.env.client.clone(), &consumer_ns);
    let g = cast.grant("allowance", "households", &["citizen_id", "name"], "api");
    create_admitted(&c, &grants, &g).await;
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
        let events = events_of(&c.env.client, &consumer_ns, "allowance").await;
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
    let mut crashed = c.forget_operator(first).unwrap();
    crashed.child.kill().unwrap();
    crashed.child.wait().unwrap();

    let (_, log2) = operator(&mut c, "operator-2", &lease).await;
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
    let events_after = events_of(&c.env.client, &consumer_ns, "allowance").await;
    assert_eq!(
        events_after, events_before,
        "no Event is published again for a transition the crashed process already reported"
    );

    // The workflow goes on under the new process.
    review(
        &c,
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
        let events = events_of(&c.env.client, &consumer_ns, "allowance").await;
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
    let mut c = cluster().await;
    let lease = ("GONGSHU_LEASE_DURATION_SECONDS", "4");
    // Replica a starts first and takes the Lease; replica b starts second, so its webhook
    // registration is the one in force (the last one wins). Stopping the leader a therefore
    // leaves admission working; stopping b would leave the webhook pointing at a dead port and
    // admission failing closed until a replica registers again.
    let (a, log_a) = operator(&mut c, "replica-a", &[lease, ("POD_NAME", "replica-a")]).await;
    wait_log(&log_a, &["acquired the lease; leading"], WAIT).await;
    wait_log(&log_a, &["registered the admission webhook"], WAIT).await;
    let (_, log_b) = operator(&mut c, "replica-b", &[lease, ("POD_NAME", "replica-b")]).await;
    let registered = wait_log(&log_b, &["registered the admission webhook"], WAIT).await;
    let url_b = registered
        .split_once("url=")
        .map(|(_, rest)| rest.trim().to_owned())
        .expect("url= in the line");
    let webhooks: Api<ValidatingWebhookConfiguration> = Api::all(c.env.client.clone());
    let in_force = webhooks.get("gongshu").await.unwrap();
    let urls: Vec<_> = in_force
        .webhooks
        .iter()
        .flatten()
        .filter_map(|w| w.client_config.url.clone())
        .collect();
    assert_eq!(
        urls,
        vec![url_b.clone(), url_b],
        "the last replica to start registered both webhooks (gongshu kinds, channels)"
    );
    wait_log(&log_a, &["initial lists complete"], WAIT).await;

    assert_eq!(
        lease_holder(&c.env.client).await.as_deref(),
        Some("replica-a")
    );
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
    let (ns1, code1) = department(&c, "provider").await;
    let catalogs: Api<DataCatalog> = Api::namespaced(c.env.client.clone(), &ns1);
    create_admitted(
        &c,
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
    let leader = c.forget_operator(a).unwrap();
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
    assert_eq!(
        lease_holder(&c.env.client).await.as_deref(),
        Some("replica-b")
    );
    assert!(
        (leader_gauge(&addr_b).await - 1.0).abs() < f64::EPSILON,
        "b leads"
    );

    let (ns2, code2) = department(&c, "provider").await;
    let catalogs: Api<DataCatalog> = Api::namespaced(c.env.client.clone(), &ns2);
    create_admitted(
        &c,
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
