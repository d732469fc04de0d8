//! Working-day deadlines of share grants against a real kube-apiserver and the operator (SH-4,
//! SUP-2).
//!
//! - **Drill mode**: with `spec.calendar.workingDaySeconds` a working day lasts seconds, so a
//!   provider can really miss its 5-working-day reply (HB15): the grant records the breach in
//!   its deadline ledger and conditions, is escalated to the authority, publishes each Event
//!   once, and the authority then decides in the provider's place, the breach staying on record.
//! - **Presets**: on the real 2026 work calendar, each of the five presets puts its own steps,
//!   actors, articles and due times in the ledger of a conditional and an unconditional grant,
//!   exactly as `step_deadline` counts them from the recorded start, and `kubectl get
//!   sharegrants` answers what waits on whom until when.
//!
//! The operator uses the cluster-scoped `Regulation` named `default`, which every suite of the
//! shared control plane relies on; so each test has a control plane of its own, and the tests
//! run one at a time so that two control planes do not starve each other.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{
    collections::BTreeMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use gongshu_api::{
    presets::{Preset, Step},
    status::{self as kstatus, DRILL, DRILL_MODE, READY},
    v1alpha1::{DeadlineStatus, GrantPhase, Regulation, Review, ShareGrant, ShareGrantStatus},
    workflow::{
        COMPLETED_LATE, DEADLINE_BREACHED, ESCALATED, NOT_NEEDED, ON_TIME, OVERDUE,
        PROVIDER_OVERDUE, RegulationFacts, WAITING_ON_ESCALATED, grant::ACTIVE, step_deadline,
    },
};
use gongshu_e2e::{
    cluster::{OwnCluster, operator_binary, repo_root},
    fixtures::{Sharing, grant, mixed_catalog, provider_catalog},
    observe,
};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

/// One fresh control plane at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const AUTHORITY_NAMESPACE: &str = "gongshu-system";
/// How long to wait for the operator to act (the machine may be busy).
const WAIT: Duration = Duration::from_secs(90);
/// The length of a working day in the drill (SUP-2 test).
const DRILL_DAY_SECONDS: i64 = 2;

// ---------------------------------------------------------------------------------------------
// Helpers

/// A fresh control plane; the `Regulation` named `default` is created by the test.
async fn cluster(purpose: &str) -> OwnCluster {
    OwnCluster::start(purpose)
        .await
        .expect("control plane starts")
}

/// Starts the operator (the debug build) and waits until its admission webhook is registered.
async fn start_operator(c: &mut OwnCluster) -> PathBuf {
    let binary = operator_binary("debug").expect("operator built (cargo build -p gongshu)");
    let (_, log) = c
        .start_operator(&binary, "operator", &[])
        .await
        .expect("operator starts");
    observe::wait_log(&log, &["registered the admission webhook"], WAIT)
        .await
        .unwrap();
    log
}

/// The admitted object, retrying while the webhook's caches lag.
async fn create_admitted<K>(c: &OwnCluster, api: &Api<K>, obj: &K) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    c.env
        .create_admitted(api, obj, Duration::from_secs(30))
        .await
        .expect("created")
}

/// A Review by `namespace` deciding grant `consumer_ns/grant_name`; returns it as stored (its
/// creation timestamp is when the decision was made).
async fn review_grant(
    c: &OwnCluster,
    namespace: &str,
    name: &str,
    consumer_ns: &str,
    grant_name: &str,
) -> Review {
    c.env
        .review(
            namespace,
            name,
            json!({"kind": "ShareGrant", "namespace": consumer_ns, "name": grant_name}),
            "approve",
            "",
        )
        .await
        .expect("review created")
}

fn creation(obj: &impl ResourceExt) -> Timestamp {
    obj.meta()
        .creation_timestamp
        .as_ref()
        .expect("stored objects have a creation timestamp")
        .0
}

/// Waits until `pred` holds for the grant's status.
async fn wait_grant(
    c: &OwnCluster,
    grants: &Api<ShareGrant>,
    name: &str,
    pred: impl Fn(&ShareGrantStatus) -> bool + Send + 'static,
) -> ShareGrant {
    c.env
        .wait_for(grants.clone(), name, WAIT, move |g: Option<&ShareGrant>| {
            g.and_then(|g| g.status.as_ref()).is_some_and(&pred)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn phase_is(phase: GrantPhase) -> impl Fn(&ShareGrantStatus) -> bool + Send + 'static {
    move |s| s.phase == Some(phase)
}

fn status(g: &ShareGrant) -> &ShareGrantStatus {
    g.status.as_ref().expect("a status")
}

fn steps(s: &ShareGrantStatus) -> Vec<Step> {
    s.deadlines.iter().map(|d| d.step).collect()
}

fn entry(s: &ShareGrantStatus, step: Step) -> &DeadlineStatus {
    s.deadlines
        .iter()
        .find(|d| d.step == step)
        .unwrap_or_else(|| panic!("no {step} in the ledger: {:#?}", s.deadlines))
}

fn condition<'a>(conditions: &'a [Condition], type_: &str) -> &'a Condition {
    kstatus::find(conditions, type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {conditions:#?}"))
}

/// Asserts condition `type_` has `status` and `reason`; returns it.
fn assert_condition<'a>(
    conditions: &'a [Condition],
    type_: &str,
    status: &str,
    reason: &str,
) -> &'a Condition {
    let c = condition(conditions, type_);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        (status, reason),
        "{type_}: {c:#?}"
    );
    c
}

/// The Events about `name`, once every one of `reasons` has been published (or after 20 s).
async fn events_with(
    c: &OwnCluster,
    namespace: &str,
    name: &str,
    reasons: &[&str],
) -> BTreeMap<String, i32> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let events = observe::events_of(&c.env.client, namespace, name)
            .await
            .unwrap();
        if reasons.iter().all(|r| events.contains_key(*r)) || Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What `kubectl get sharegrants -n namespace [extra]` prints: the header's column names, and
/// the row of grant `name` cut at the header's column offsets (cells may be empty or hold
/// spaces), column by column.
fn kubectl_get_grants(
    c: &OwnCluster,
    namespace: &str,
    name: &str,
    extra: &[&str],
) -> (Vec<String>, Vec<String>) {
    let out = c
        .env
        .kubectl()
        .args(["get", "sharegrants", "-n", namespace])
        .args(extra)
        .output()
        .expect("kubectl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kubectl get sharegrants failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout.lines();
    let header_line = lines
        .next()
        .unwrap_or_else(|| panic!("no header in {stdout:?}"));
    let header: Vec<String> = header_line.split_whitespace().map(str::to_owned).collect();
    // Column names hold no spaces, so each starts after a run of spaces.
    let mut starts = Vec::new();
    let mut previous = ' ';
    for (i, ch) in header_line.char_indices() {
        if ch != ' ' && previous == ' ' {
            starts.push(i);
        }
        previous = ch;
    }
    let row = lines
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row for {name} in\n{stdout}"));
    let cells = starts
        .iter()
        .enumerate()
        .map(|(k, &start)| {
            let end = starts
                .get(k + 1)
                .copied()
                .unwrap_or(row.len())
                .min(row.len());
            row.get(start.min(end)..end)
                .unwrap_or_default()
                .trim()
                .to_owned()
        })
        .collect();
    (header, cells)
}

/// How a status prints a time (and `kubectl` shows a string column of one).
fn printed(t: &Time) -> String {
    serde_json::to_value(t)
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits until the `default` Regulation's status describes its current generation and it is
/// in force (Ready), with `preset`'s deadline table.
async fn wait_regulation(c: &OwnCluster, preset: Preset) -> Regulation {
    let api: Api<Regulation> = Api::all(c.env.client.clone());
    c.env
        .wait_for(api, "default", WAIT, move |r: Option<&Regulation>| {
            r.is_some_and(|r| {
                r.spec.preset == preset
                    && r.status.as_ref().is_some_and(|s| {
                        s.common.observed_generation == r.metadata.generation
                            && kstatus::is_true(&s.common.conditions, READY)
                    })
            })
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

mod drill;
mod presets;
