//! `gongshu report` against the real apiserver and operator: the built binary reads what the
//! operator recorded and reports, per department, the requests, decisions, on-time rate per
//! step, breaches and open overdue steps of the month (SUP-1: PJ34; SUP-2: XJ44(4), NM49,
//! NM51).
//!
//! - On the shared control plane (HB's deadlines, the fallback or the examples' Regulation),
//!   three requests: one approved, one denied, one waiting; the report is filtered to the
//!   test's departments with `--namespace-selector`, since other suites share the cluster.
//! - On a control plane of its own in drill mode (a working day lasts 2 s), the provider
//!   misses two replies; the authority decides one in its place: the provider is charged with
//!   both breaches and one open overdue reply, the authority with the decision.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{path::Path, time::Duration};

use gongshu_api::{
    presets::Step,
    sla_report::Month,
    v1alpha1::{GrantPhase, LABEL_DEPARTMENT, Regulation, ShareGrant},
};
use gongshu_e2e::{
    cluster::{OwnCluster, operator_binary},
    fixtures::{Sharing, provider_catalog},
    harness::TestEnv,
    observe,
};
use jiff::tz::TimeZone;
use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, ResourceExt, api::PostParams};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(90);

/// `gongshu report <args>` with `kubeconfig`: exit code, stdout, stderr.
async fn gongshu_report(kubeconfig: &Path, args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(operator_binary("debug").expect("gongshu built"))
        .arg("report")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("gongshu runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The JSON report of `month` for the departments `codes`.
async fn json_report(kubeconfig: &Path, month: &str, codes: &[&str]) -> Value {
    let selector = format!("{LABEL_DEPARTMENT} in ({})", codes.join(","));
    let (code, stdout, stderr) = gongshu_report(
        kubeconfig,
        &[
            "--month",
            month,
            "--format",
            "json",
            "--namespace-selector",
            &selector,
        ],
    )
    .await;
    assert_eq!(code, 0, "gongshu report failed: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// The month of the grant's creation in Shanghai, where the Regulations of these tests count.
fn month_of(grant: &ShareGrant) -> String {
    let created = grant.metadata.creation_timestamp.as_ref().unwrap().0;
    Month::of(created, &TimeZone::get("Asia/Shanghai").unwrap()).to_string()
}

fn row<'a>(report: &'a Value, department: &str) -> &'a Value {
    report["departments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["department"] == department)
        .unwrap_or_else(|| panic!("no row for {department}: {report:#}"))
}

fn step(row: &Value, step: Step) -> &Value {
    row["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == step.as_str())
        .unwrap_or_else(|| panic!("no {step} in {row:#}"))
}

/// `(onTime, late, breaches, openOverdue)` of a step or totals object.
fn counts(figures: &Value) -> (u64, u64, u64, u64) {
    let n = |k: &str| {
        figures[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in {figures:#}"))
    };
    (n("onTime"), n("late"), n("breaches"), n("openOverdue"))
}

/// `(approved, denied, changesRequested, automatic)`.
fn decisions(row: &Value) -> (u64, u64, u64, u64) {
    let d = &row["decisions"];
    let n = |k: &str| d[k].as_u64().unwrap();
    (
        n("approved"),
        n("denied"),
        n("changesRequested"),
        n("automatic"),
    )
}

async fn department_code(env: &TestEnv, namespace: &str) -> String {
    let ns = Api::<Namespace>::all(env.client.clone())
        .get(namespace)
        .await
        .unwrap();
    ns.labels()[LABEL_DEPARTMENT].clone()
}

async fn wait_grant(
    cast: &Sharing,
    name: &str,
    pred: impl Fn(&ShareGrant) -> bool + Send + 'static,
) -> ShareGrant {
    cast.env
        .wait_for(cast.grants(), name, WAIT, move |g: Option<&ShareGrant>| {
            g.is_some_and(&pred)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn request(cast: &Sharing, name: &str) -> ShareGrant {
    let g = cast.grant(name, "households", &["citizen_id", "name"], "api");
    cast.env
        .create_admitted(&cast.grants(), &g, Duration::from_secs(30))
        .await
        .expect("a grant of an approved item is admitted");
    cast.wait_phase(name, GrantPhase::ProviderReview, WAIT)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_report_counts_requests_decisions_and_steps_on_time_per_department_sup_1() {
    let cast = Sharing::new(true)
        .await
        .expect("provider with an approved catalog, and a consumer");
    let provider = cast.provider.clone();
    let consumer = department_code(&cast.env, &cast.consumer_ns).await;

    let decided = cast
        .activate(
            &cast.grant("decided", "households", &["citizen_id", "name"], "api"),
            WAIT,
        )
        .await
        .expect("the provider approves");
    request(&cast, "refused").await;
    cast.provider_decides("refused", "deny").await.unwrap();
    cast.wait_phase("refused", GrantPhase::Denied, WAIT)
        .await
        .unwrap();
    request(&cast, "waiting").await;

    let month = month_of(&decided);
    let kubeconfig = cast.env.kubeconfig().to_path_buf();
    let report = json_report(&kubeconfig, &month, &[&provider, &consumer]).await;
    assert_eq!(report["month"], month.as_str());
    assert_eq!(report["timeZone"], "Asia/Shanghai");
    let articles: Vec<&str> = report["basis"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["articles"].as_str().unwrap())
        .collect();
    assert_eq!(articles, ["PJ34", "XJ44(4), NM49, NM51"]);
    let listed: Vec<&str> = report["departments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["department"].as_str().unwrap())
        .collect();
    let mut expected = vec!["authority", provider.as_str(), consumer.as_str()];
    expected[1..].sort_unstable();
    assert_eq!(
        listed, expected,
        "the selected departments, the authority first"
    );

    // The consumer made three requests and decided nothing.
    let c = row(&report, &consumer);
    assert_eq!(c["requestsReceived"], 3, "{c:#}");
    assert_eq!(decisions(c), (0, 0, 0, 0));
    assert_eq!(c["steps"], json!([]));
    assert_eq!(c["namespaces"], json!([cast.consumer_ns]));

    // The provider replied twice, both on time (HB15: 5 WD); the third reply is not due yet.
    let p = row(&report, &provider);
    assert_eq!(decisions(p), (1, 1, 0, 0), "{p:#}");
    assert_eq!(p["itemsSubmitted"], 2, "its catalog's two items");
    let reply = step(p, Step::ProviderReply);
    assert_eq!(counts(reply), (2, 0, 0, 0), "{reply:#}");
    assert_eq!(reply["onTimeRate"], 1.0);
    assert_eq!(counts(&p["totals"]), (2, 0, 0, 0));

    // The authority approved the two catalog items (CAT-2), reviewed the three requests for
    // compliance and provided the approved one (HB15), all on time; only its work on these
    // departments' objects is counted.
    let a = row(&report, "authority");
    assert_eq!(decisions(a), (2, 0, 0, 0), "{a:#}");
    assert_eq!(
        counts(step(a, Step::ComplianceReview)),
        (3, 0, 0, 0),
        "{a:#}"
    );
    assert_eq!(counts(step(a, Step::ProvisionAfterApproval)), (1, 0, 0, 0));
    assert_eq!(a["totals"]["onTimeRate"], 1.0);

    // The same report as CSV in a file, and as a table on stdout.
    let dir = tempfile_dir();
    let csv_path = dir.join("report.csv");
    let selector = format!("{LABEL_DEPARTMENT} in ({provider},{consumer})");
    let (code, _, stderr) = gongshu_report(
        &kubeconfig,
        &[
            "--month",
            &month,
            "--format",
            "csv",
            "--out",
            csv_path.to_str().unwrap(),
            "--namespace-selector",
            &selector,
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "month,department,step,requests_received,items_submitted,approved,denied,changes_requested,automatic,completed,on_time,late,on_time_rate,closed,breaches,open_overdue"
        )
    );
    let provider_reply = format!("{month},{provider},providerReply,,,,,,,2,2,0,1.0000,0,0,0");
    assert!(
        csv.lines().any(|l| l == provider_reply),
        "{provider_reply} in\n{csv}"
    );
    let (code, table, stderr) = gongshu_report(
        &kubeconfig,
        &["--month", &month, "--namespace-selector", &selector],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    eprintln!("{table}");
    assert!(table.contains("SUP-2 (XJ44(4), NM49, NM51)"), "{table}");
    let provider_line = table
        .lines()
        .find(|l| l.starts_with(&format!("{provider} ")))
        .unwrap_or_else(|| panic!("no line for {provider} in\n{table}"));
    assert_eq!(
        provider_line.split_whitespace().collect::<Vec<_>>(),
        [
            provider.as_str(),
            "0",
            "2",
            "2",
            "0",
            "2",
            "0",
            "100.0%",
            "0",
            "0"
        ]
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_report_fails_with_exit_code_2_and_a_reason() {
    let env = TestEnv::connect().await.unwrap();
    let (code, stdout, stderr) = gongshu_report(
        env.kubeconfig(),
        &[
            "--month",
            "2026-11",
            "--namespace-selector",
            "gongshu.io/department=no-such-department",
        ],
    )
    .await;
    assert_eq!((code, stdout.as_str()), (2, ""));
    assert!(
        stderr.contains("no department namespace") && stderr.contains("no-such-department"),
        "{stderr}"
    );
    let (code, _, stderr) = gongshu_report(env.kubeconfig(), &["--month", "2999-01"]).await;
    assert_eq!(code, 2);
    assert!(stderr.contains("2999-01 has not begun yet"), "{stderr}");
    let (code, _, stderr) = gongshu_report(
        Path::new("/nonexistent/kubeconfig"),
        &["--month", "2026-11"],
    )
    .await;
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot connect to the cluster"), "{stderr}");
}

/// SUP-2 in drill mode, on a control plane of this test's own (the `default` Regulation is
/// cluster-wide).
#[tokio::test]
async fn a_missed_reply_is_the_providers_breach_and_the_coordinating_decision_the_authoritys_sup_2()
{
    let mut c = OwnCluster::start("report-drill")
        .await
        .expect("control plane starts");
    let drill: Regulation = serde_json::from_value(json!({
        "apiVersion": "gongshu.io/v1alpha1",
        "kind": "Regulation",
        "metadata": {"name": "default"},
        "spec": {
            "preset": "hebei",
            "validFrom": "2023-01-01",
            "authorityNamespace": TestEnv::AUTHORITY_NAMESPACE,
            "calendar": {"timeZone": "Asia/Shanghai", "workingDaySeconds": 2},
        },
    }))
    .unwrap();
    Api::<Regulation>::all(c.env.client.clone())
        .create(&PostParams::default(), &drill)
        .await
        .unwrap();
    let binary = operator_binary("debug").unwrap();
    let (_, log) = c
        .start_operator(&binary, "operator", &[])
        .await
        .expect("operator starts");
    observe::wait_log(&log, &["registered the admission webhook"], WAIT)
        .await
        .unwrap();

    let cast = Sharing::on(c.env.clone(), provider_catalog, true)
        .await
        .expect("provider with an approved catalog, and a consumer");
    let provider = cast.provider.clone();
    let consumer = department_code(&cast.env, &cast.consumer_ns).await;
    let first = request(&cast, "coordinated").await;
    request(&cast, "forgotten").await;
    // HB15: 5 drill working days (10 s) for the provider's reply, which never comes.
    let breached = |g: &ShareGrant| {
        g.status.as_ref().is_some_and(|s| {
            s.deadlines
                .iter()
                .any(|d| d.step == Step::ProviderReply && d.breached)
        })
    };
    wait_grant(&cast, "coordinated", breached).await;
    wait_grant(&cast, "forgotten", breached).await;
    // The authority coordinates one of them and approves it in the provider's place.
    c.env
        .review(
            TestEnv::AUTHORITY_NAMESPACE,
            "coordinate",
            json!({"kind": "ShareGrant", "namespace": cast.consumer_ns, "name": "coordinated"}),
            "approve",
            "",
        )
        .await
        .unwrap();
    cast.wait_phase("coordinated", GrantPhase::Active, WAIT)
        .await
        .unwrap();

    let month = month_of(&first);
    let report = json_report(c.env.kubeconfig(), &month, &[&provider, &consumer]).await;
    let p = row(&report, &provider);
    let reply = step(p, Step::ProviderReply);
    assert_eq!(
        counts(reply),
        (0, 1, 2, 1),
        "one reply done late (by the authority), both breached, one still open: {reply:#}"
    );
    assert_eq!(reply["onTimeRate"], 0.0);
    assert_eq!(decisions(p), (0, 0, 0, 0), "the provider decided nothing");
    let a = row(&report, "authority");
    assert_eq!(
        decisions(a),
        (3, 0, 0, 0),
        "two catalog items and the coordinated grant: {a:#}"
    );
    assert_eq!(counts(step(a, Step::ComplianceReview)), (2, 0, 0, 0));
    assert_eq!(
        counts(step(a, Step::ProvisionAfterApproval)),
        (1, 0, 0, 0),
        "HB15: the authority provides after its own decision"
    );
    assert_eq!(counts(&a["totals"]), (3, 0, 0, 0));
    assert_eq!(row(&report, &consumer)["requestsReceived"], 2);
    let (code, table, stderr) = report_table(c.env.kubeconfig(), &month).await;
    assert_eq!(code, 0, "{stderr}");
    eprintln!("{table}");
}

async fn report_table(kubeconfig: &Path, month: &str) -> (i32, String, String) {
    gongshu_report(kubeconfig, &["--month", month]).await
}

/// A fresh temporary directory.
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "gongshu-report-{}",
        gongshu_e2e::harness::random_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
