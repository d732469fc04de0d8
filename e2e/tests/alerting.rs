//! The alert rules, live (issue #7): a real Prometheus scrapes the operator every second and
//! evaluates `deploy/prometheus/gongshu-rules.yaml` as shipped; a real Alertmanager notifies a
//! webhook receiver in the test (`gongshu_e2e::alerting`).
//!
//! - **SUP-2**: in drill mode a provider misses its reply deadline; `GongshuDeadlineBreached`
//!   for its department and `providerReply` reaches the receiver seconds after the due time,
//!   and resolves once the provider decides.
//! - **SEC-1**: a backup policy whose off-site S3 server is down breaches its one-minute RPO;
//!   `GongshuBackupRpoBreached` reaches the receiver, and resolves after the server is back and
//!   a run succeeds.
//!
//! Each test runs on a control plane of its own: the drill `Regulation` must not reach the
//! shared one, and the backup test's operator needs the short backup timings. They run one at
//! a time so that two control planes do not starve each other on a small machine.
//!
//! Tests never assert tight wall-clock times (the machine may be loaded by other work): each
//! delay is measured and printed, and asserted only against a generous bound.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{path::PathBuf, time::Duration};

use gongshu_api::{
    presets::Step,
    v1alpha1::{BackupPolicy, DeadlineStatus, GrantPhase, Regulation, ShareGrant},
};
use gongshu_e2e::{
    alerting::{AlertStack, Notification, Targets},
    backup::{self, BackupTarget},
    cluster::{OwnCluster, operator_binary},
    fixtures::{Sharing, provider_catalog},
    observe,
};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::events::v1::Event;
use kube::{
    Api,
    api::{ListParams, PostParams},
};
use serde_json::json;

/// One fresh control plane at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long to wait for the operator to act (the machine may be busy).
const WAIT: Duration = Duration::from_secs(90);
/// The bound on "the alert reached the receiver soon after the metric turned". Scrapes and
/// evaluations run every second and Alertmanager waits a second, so a few seconds are
/// expected; the bound is generous on purpose (see the module's doc).
const NOTIFIED_WITHIN: SignedDuration = SignedDuration::from_secs(30);
/// The length of a working day in the drill: the provider's 5 days (HB15) last 20 s.
const DRILL_DAY_SECONDS: i64 = 4;
/// How far back Prometheus's raw samples are read to find when a metric turned.
const HISTORY: &str = "15m";

/// A control plane with one operator, and Prometheus and Alertmanager watching it. Fields drop
/// in order: the servers stop before the operator and the control plane.
struct Live {
    alerts: AlertStack,
    cluster: OwnCluster,
    log: PathBuf,
}

impl Live {
    /// A control plane for `purpose` with `regulation` created before the operator starts
    /// (its first evaluation counts with it), the operator running with `env`, and Prometheus
    /// scraping it once it leads.
    async fn start(purpose: &str, regulation: Option<Regulation>, env: &[(&str, &str)]) -> Self {
        let mut cluster = OwnCluster::start(purpose)
            .await
            .expect("control plane starts");
        if let Some(regulation) = regulation {
            Api::<Regulation>::all(cluster.env.client.clone())
                .create(&PostParams::default(), &regulation)
                .await
                .expect("Regulation");
        }
        let binary = operator_binary("debug").expect("operator built (cargo build -p gongshu)");
        let (_, log) = cluster
            .start_operator(&binary, "operator", env)
            .await
            .expect("operator starts");
        observe::wait_log(&log, &["registered the admission webhook"], WAIT)
            .await
            .unwrap();
        let admin = observe::admin_addr(&log).unwrap();
        let alerts = AlertStack::start(&Targets {
            operator: vec![admin],
            exchange: vec![],
        })
        .await
        .expect("Prometheus and Alertmanager start");
        // The rules keep only the leader's series: nothing can fire before it leads.
        alerts
            .wait_query(r#"gongshu_leader{job="gongshu-operator"} == 1"#, WAIT)
            .await
            .unwrap();
        eprintln!(
            "Prometheus {} and Alertmanager {} watch the operator (log {})",
            alerts.prometheus_url(),
            alerts.alertmanager_url(),
            log.display()
        );
        Self {
            alerts,
            cluster,
            log,
        }
    }

    /// Waits for the alert `alertname` with `labels` in `status` at the receiver.
    async fn notified(
        &self,
        alertname: &str,
        status: &str,
        labels: &[(&str, &str)],
        timeout: Duration,
    ) -> Notification {
        let what = format!("{alertname} {status} {labels:?}");
        self.alerts
            .wait_notification(&what, timeout, |n| n.is(alertname, status, labels))
            .await
            .unwrap_or_else(|e| panic!("{e}\noperator log: {}", self.log.display()))
    }

    /// When Prometheus first saw `selector` turn to `value` (it must have).
    async fn turned_at(&self, selector: &str, value: f64) -> Timestamp {
        self.alerts
            .turned_at(selector, HISTORY, value)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("Prometheus never scraped {selector} at {value}"))
    }

    /// When Prometheus last scraped `selector` at `value` (it must have).
    async fn last_at(&self, selector: &str, value: f64) -> Timestamp {
        self.alerts
            .last_at(selector, HISTORY, value)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("Prometheus never scraped {selector} at {value}"))
    }
}

/// Prints how long after `cause` (and after `scraped`, what Prometheus saw of the metric)
/// the receiver got `n`, and asserts it came after the cause and within [`NOTIFIED_WITHIN`].
fn assert_prompt(
    what: &str,
    cause: (&str, Timestamp),
    scraped: (&str, Timestamp),
    n: &Notification,
) -> SignedDuration {
    let secs = |from: Timestamp, to: Timestamp| to.duration_since(from).as_secs_f64();
    let delay = n.received.duration_since(cause.1);
    eprintln!(
        "{what}: {} at {}; metric {} at {} (+{:.1}s); notified at {} (+{:.1}s after {}, +{:.1}s after the scrape)",
        cause.0,
        cause.1,
        scraped.0,
        scraped.1,
        secs(cause.1, scraped.1),
        n.received,
        secs(cause.1, n.received),
        cause.0,
        secs(scraped.1, n.received),
    );
    assert!(
        delay >= SignedDuration::ZERO,
        "{what}: notified at {} before {} ({}): {n}",
        n.received,
        cause.0,
        cause.1
    );
    assert!(
        delay <= NOTIFIED_WITHIN,
        "{what}: notified {delay:#} after {} ({}), more than {NOTIFIED_WITHIN:#}: {n}",
        cause.0,
        cause.1
    );
    delay
}

// ---------------------------------------------------------------------------------------------
// SUP-2: a missed deadline

fn drill_regulation() -> Regulation {
    serde_json::from_value(json!({
        "apiVersion": "gongshu.io/v1alpha1",
        "kind": "Regulation",
        "metadata": {"name": "default"},
        "spec": {
            "preset": "hebei",
            "validFrom": "2023-01-01",
            "authorityNamespace": "gongshu-system",
            "calendar": {"timeZone": "Asia/Shanghai", "workingDaySeconds": DRILL_DAY_SECONDS},
        },
    }))
    .unwrap()
}

fn reply(g: &ShareGrant) -> DeadlineStatus {
    let s = g.status.as_ref().expect("a status");
    s.deadlines
        .iter()
        .find(|d| d.step == Step::ProviderReply)
        .cloned()
        .unwrap_or_else(|| panic!("no providerReply in the ledger: {:#?}", s.deadlines))
}

#[tokio::test]
async fn a_provider_reply_past_its_deadline_alerts_and_resolves_once_the_provider_decides_sup_2() {
    let _serial = SERIAL.lock().await;
    let live = Live::start("alerting-deadline", Some(drill_regulation()), &[]).await;
    let cast = Sharing::on(live.cluster.env.clone(), provider_catalog, true)
        .await
        .expect("provider with an approved catalog, and a consumer");
    let g = cast.grant("allowance", "households", &["citizen_id", "name"], "api");
    cast.env
        .create_admitted(&cast.grants(), &g, Duration::from_secs(30))
        .await
        .expect("grant created");
    let pending = cast
        .wait_phase("allowance", GrantPhase::ProviderReview, WAIT)
        .await
        .expect("the grant waits for the provider");
    let due = reply(&pending).due.expect("the reply has a due time").0;

    // The rule groups by the department that must act and the step.
    let labels = [
        ("department", cast.provider.as_str()),
        ("step", "providerReply"),
    ];
    let until_due = Duration::try_from(due.duration_since(Timestamp::now())).unwrap_or_default();
    let fired = live
        .notified(
            "GongshuDeadlineBreached",
            "firing",
            &labels,
            until_due + WAIT,
        )
        .await;
    let selector = format!(
        r#"gongshu_deadline_breached{{job="gongshu-operator",department="{}",step="providerReply"}}"#,
        cast.provider
    );
    let scraped = live.turned_at(&selector, 1.0).await;
    assert_prompt(
        "GongshuDeadlineBreached fired",
        ("the due time", due),
        ("turned to 1", scraped),
        &fired,
    );
    assert!(scraped >= due, "breached at {scraped}, due {due}");
    assert_eq!(fired.labels["severity"], "critical", "{fired:?}");
    let summary = &fired.annotations["summary"];
    assert!(
        summary.contains(&cast.provider) && summary.contains("providerReply"),
        "{summary}"
    );
    assert!(
        fired.annotations["runbook_url"].ends_with("docs/runbooks.md#gongshudeadlinebreached"),
        "{fired:?}"
    );
    // The reminder a working day ahead is a separate alert; report whether it came first.
    let reminder = live
        .alerts
        .receiver
        .find(|n| n.is("GongshuDeadlineWithinOneWorkingDay", "firing", &labels));
    eprintln!(
        "GongshuDeadlineWithinOneWorkingDay before the breach: {}",
        reminder.map_or("not notified".into(), |n| n.to_string())
    );

    // The provider replies, late: nothing it must act on is overdue any more.
    cast.provider_decides("allowance", "approve")
        .await
        .expect("the provider's Review");
    let active = cast
        .wait_phase("allowance", GrantPhase::Active, WAIT)
        .await
        .expect("a late approval still decides (SUP-2 records the breach)");
    let replied = reply(&active);
    assert!(replied.breached, "the breach stays recorded: {replied:#?}");
    let decided = replied.completed.expect("the reply is completed").0;
    let resolved = live
        .notified("GongshuDeadlineBreached", "resolved", &labels, WAIT)
        .await;
    // The series drops to 0 or is removed once nothing is pending: the last scrape at 1 is
    // at most a scrape interval before Prometheus saw it change.
    let last = live.last_at(&selector, 1.0).await;
    assert_prompt(
        "GongshuDeadlineBreached resolved",
        ("the provider's decision", decided),
        ("last scraped at 1", last),
        &resolved,
    );
    let firing = live
        .alerts
        .receiver
        .notifications()
        .into_iter()
        .filter(|n| n.is("GongshuDeadlineBreached", "firing", &labels))
        .count();
    assert_eq!(firing, 1, "one notification per breach, not repeated");
}

// ---------------------------------------------------------------------------------------------
// SEC-1: a backup target down

/// When the operator published the policy's `RpoBreached` Event.
async fn rpo_breached_at(live: &Live, namespace: &str, policy: &str) -> Timestamp {
    let events: Api<Event> = Api::namespaced(live.cluster.env.client.clone(), namespace);
    events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|e| {
            e.reason.as_deref() == Some("RpoBreached")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(policy)
        })
        .filter_map(|e| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .min()
        .expect("an RpoBreached Event about the policy")
}

#[tokio::test]
async fn an_unreachable_offsite_target_fires_the_rpo_alert_and_a_good_run_resolves_it_sec_1() {
    let _serial = SERIAL.lock().await;
    let env = backup::operator_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let live = Live::start("alerting-backup", None, &env).await;
    let mut target = BackupTarget::start("alerting").await.expect("S3 server");
    let (ns, _) = live
        .cluster
        .env
        .department("backup")
        .await
        .expect("department");
    target
        .install(&live.cluster.env, &ns)
        .await
        .expect("S3 Secret");
    target.s3.stop().await.expect("stop S3");
    let policies: Api<BackupPolicy> = Api::namespaced(live.cluster.env.client.clone(), &ns);
    let name = "offsite-down";
    policies
        .create(
            &PostParams::default(),
            &target.policy(name, "1m", target.files_source()),
        )
        .await
        .expect("policy");

    // No backup for a minute: the RPO of one minute is breached (the first run fails on S3).
    let labels = [("namespace", ns.as_str()), ("policy", name)];
    let fired = live
        .notified(
            "GongshuBackupRpoBreached",
            "firing",
            &labels,
            Duration::from_secs(180),
        )
        .await;
    let policy = policies.get(name).await.unwrap();
    let (status, reason, _) = backup::ready(&policy);
    assert_eq!((status.as_str(), reason.as_str()), ("False", "RpoBreached"));
    let failure = policy.status.unwrap().last_failure.expect("a failed run");
    assert_eq!(failure.category, "destination", "{failure:?}");
    let breached = rpo_breached_at(&live, &ns, name).await;
    let selector = format!(
        r#"gongshu_backup_rpo_breached{{job="gongshu-operator",namespace="{ns}",policy="{name}"}}"#
    );
    let scraped = live.turned_at(&selector, 1.0).await;
    assert_prompt(
        "GongshuBackupRpoBreached fired",
        ("the RpoBreached Event", breached),
        ("turned to 1", scraped),
        &fired,
    );
    assert_eq!(fired.labels["severity"], "critical", "{fired:?}");
    assert!(
        fired.annotations["summary"].contains(&format!("{ns}/{name}")),
        "{fired:?}"
    );

    // The server is back: the next retry stores a backup and the alert resolves.
    target.s3.restart().await.expect("restart S3");
    let resolved = live
        .notified(
            "GongshuBackupRpoBreached",
            "resolved",
            &labels,
            Duration::from_secs(180),
        )
        .await;
    let policy = policies.get(name).await.unwrap();
    let (status, reason, _) = backup::ready(&policy);
    assert_eq!((status.as_str(), reason.as_str()), ("True", "BackedUp"));
    let backed_up = policy
        .status
        .unwrap()
        .last_backup
        .expect("a backup")
        .completed_at
        .0;
    let last = live.last_at(&selector, 1.0).await;
    assert_prompt(
        "GongshuBackupRpoBreached resolved",
        ("the backup's completion", backed_up),
        ("last scraped at 1", last),
        &resolved,
    );
}
