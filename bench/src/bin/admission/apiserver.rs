//! Through the apiserver: server-side dry-run creates of one Service by concurrent clients into
//! a namespace no policy selects (the apiserver alone), a namespace where the apiserver's own
//! CEL `ValidatingAdmissionPolicy` does the simplest channel rule, and a department namespace
//! where the gongshu webhook judges. Two verdicts: the NodePort Service no exemption covers
//! (denied by the policy and by the webhook; the control admits it), and a LoadBalancer Service
//! every judge admits (the policy's rule is NodePort only; the webhook's exemption covers it),
//! so that all three do the same work after admission.

use std::{sync::Arc, time::Duration};

use gongshu_api::v1alpha1::LABEL_DEPARTMENT;
use gongshu_bench::{CpuMeter, Error, Report};
use gongshu_e2e::{cluster::OwnCluster, controlplane::client_for};
use k8s_openapi::api::{
    admissionregistration::v1::{ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding},
    core::v1::{Namespace, Service},
};
use kube::{Api, ResourceExt, api::PostParams};
use serde_json::json;

use super::{
    Args, Cast, Run, Stats,
    direct::{DENIED, EXEMPTED, dry_run, service},
    drive, fail,
};

/// The policy and its binding.
const POLICY: &str = "bench-one-channel";
/// The label that makes a namespace the policy's (and only the benchmark's).
const POLICY_LABEL: &str = "bench.gongshu.io/vap";
/// The simplest of the channel rules, in CEL.
const RULE: &str = "object.spec.type != 'NodePort'";
/// How long the apiserver may take to enforce a just-created policy.
const POLICY_WAIT: Duration = Duration::from_secs(30);

/// What a dry-run create must come back with.
#[derive(Clone, Copy, Debug)]
enum Expect {
    Admitted,
    /// Denied (CH-1) by the judge whose name the message carries.
    Denied(&'static str),
}

/// Where the creates go.
struct Target {
    label: &'static str,
    namespace: String,
}

/// The three judges on one verdict at one concurrency.
#[derive(Debug)]
pub struct Comparison {
    pub verdict: &'static str,
    pub clients: usize,
    pub control: Stats,
    pub vap: Stats,
    pub webhook: Stats,
}

impl Comparison {
    /// Added latency of `judge` over the control at quantile `p` (50 or 99), in ms.
    pub fn added(&self, judge: &Stats, p: u8) -> f64 {
        let pick = |s: &Stats| if p == 50 { s.p50 } else { s.p99 };
        (pick(judge).as_secs_f64() - pick(&self.control).as_secs_f64()) * 1e3
    }
}

/// Every run through the apiserver.
#[derive(Debug)]
pub struct Results {
    pub comparisons: Vec<Comparison>,
}

/// One client: its own connection to the apiserver.
struct Worker {
    api: Api<Service>,
    object: Service,
    expect: Expect,
}

async fn create(worker: Arc<Worker>) -> Result<(), String> {
    match (
        worker.api.create(&dry_run(), &worker.object).await,
        worker.expect,
    ) {
        (Ok(_), Expect::Admitted) => Ok(()),
        (Err(kube::Error::Api(e)), Expect::Denied(judge))
            if e.message.contains(judge) && e.message.contains("CH-1") =>
        {
            Ok(())
        }
        (Ok(s), Expect::Denied(_)) => Err(format!("admitted: {}", s.name_any())),
        (Err(e), _) => Err(e.to_string()),
    }
}

/// Creates the policy and its binding to namespaces labelled [`POLICY_LABEL`].
async fn policy(client: &kube::Client) -> Result<(), Error> {
    let policy: ValidatingAdmissionPolicy = serde_json::from_value(json!({
        "metadata": {"name": POLICY},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"], "resources": ["services"],
            }]},
            "validations": [{
                "expression": RULE,
                "message": "CH-1: a NodePort Service exposes department workloads outside the exchange (benchmark policy)",
            }],
        },
    }))
    .map_err(|e| fail("policy")(e.to_string()))?;
    let binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(json!({
        "metadata": {"name": POLICY},
        "spec": {
            "policyName": POLICY,
            "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {POLICY_LABEL: "enforce"}}},
        },
    }))
    .map_err(|e| fail("policy binding")(e.to_string()))?;
    let pp = PostParams::default();
    Api::<ValidatingAdmissionPolicy>::all(client.clone())
        .create(&pp, &policy)
        .await?;
    Api::<ValidatingAdmissionPolicyBinding>::all(client.clone())
        .create(&pp, &binding)
        .await?;
    Ok(())
}

/// Checks each namespace answers as the run expects before anything is measured: the policy
/// is enforced in its namespace only, the webhook in the department only.
async fn preflight(
    client: &kube::Client,
    targets: &[Target; 3],
    verdicts: &[(&'static str, Service, [Expect; 3])],
    report: &mut Report,
) -> Result<(), Error> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let [control, vap, department] = targets;
    let labels = |ns: Namespace| ns.metadata.labels.unwrap_or_default();
    let (control_labels, vap_labels, department_labels) = (
        labels(namespaces.get(&control.namespace).await?),
        labels(namespaces.get(&vap.namespace).await?),
        labels(namespaces.get(&department.namespace).await?),
    );
    if control_labels.contains_key(POLICY_LABEL)
        || control_labels.contains_key(LABEL_DEPARTMENT)
        || vap_labels.contains_key(LABEL_DEPARTMENT)
        || department_labels.contains_key(POLICY_LABEL)
        || !department_labels.contains_key(LABEL_DEPARTMENT)
    {
        return Err(Error::Stuck(format!(
            "namespace labels overlap: control {control_labels:?}, policy {vap_labels:?}, department {department_labels:?}"
        )));
    }
    let deadline = std::time::Instant::now() + POLICY_WAIT;
    for (verdict, object, expects) in verdicts {
        for (target, expect) in targets.iter().zip(expects) {
            let api: Api<Service> = Api::namespaced(client.clone(), &target.namespace);
            let mut object = object.clone();
            object.metadata.namespace = Some(target.namespace.clone());
            let worker = Arc::new(Worker {
                api,
                object,
                expect: *expect,
            });
            // The policy is enforced a moment after it is created: retry until it is.
            let answer = loop {
                let answer = create(worker.clone()).await;
                if answer.is_ok() || std::time::Instant::now() > deadline {
                    break answer;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            answer.map_err(|e| {
                Error::Stuck(format!(
                    "{verdict} Service in {} ({}): expected {expect:?}, got: {e}",
                    target.namespace, target.label
                ))
            })?;
        }
    }
    // The message users see from each judge, once.
    let object = service(&vap.namespace, DENIED, "NodePort")?;
    for target in [vap, department] {
        let api: Api<Service> = Api::namespaced(client.clone(), &target.namespace);
        let mut object = object.clone();
        object.metadata.namespace = Some(target.namespace.clone());
        if let Err(kube::Error::Api(e)) = api.create(&dry_run(), &object).await {
            report.line(format!(
                "- {} denies (HTTP {}): {}",
                target.label, e.code, e.message
            ));
        }
    }
    Ok(())
}

/// Every verdict at every concurrency, in the three namespaces in turn.
pub async fn run(
    cluster: &OwnCluster,
    cast: &Cast,
    args: &Args,
    report: &mut Report,
) -> Result<Results, Error> {
    report.line("\n## Through the apiserver: the apiserver alone, its CEL policy, the webhook\n");
    let env = &cast.sharing.env;
    let vap_ns = env
        .namespace("bench-vap", &[(POLICY_LABEL, "enforce")])
        .await?;
    policy(&env.client).await?;
    let targets = [
        Target {
            label: "apiserver alone (control)",
            namespace: cast.control_ns.clone(),
        },
        Target {
            label: "ValidatingAdmissionPolicy (CEL)",
            namespace: vap_ns.clone(),
        },
        Target {
            label: "gongshu webhook",
            namespace: cast.sharing.consumer_ns.clone(),
        },
    ];
    let verdicts = [
        (
            "denied",
            service(&vap_ns, DENIED, "NodePort")?,
            [
                Expect::Admitted,
                Expect::Denied(POLICY),
                Expect::Denied("channels.gongshu.io"),
            ],
        ),
        (
            "admitted",
            service(&vap_ns, EXEMPTED, "LoadBalancer")?,
            [Expect::Admitted; 3],
        ),
    ];
    report.line(format!(
        "`ValidatingAdmissionPolicy` {POLICY} (admissionregistration.k8s.io/v1), `{RULE}`, bound with `validationActions: [Deny]` to namespaces labelled `{POLICY_LABEL}=enforce` (no department carries it; the policy's namespace is no department). Server-side dry-run creates (`dryRun=All`), each client its own kube client and connection:\n\n- **denied**: NodePort Service {DENIED}: the control admits it, the policy and the webhook deny it (CH-1), so those two skip the dry-run storage step the control does;\n- **admitted**: LoadBalancer Service {EXEMPTED}: the policy evaluates its rule and admits it, the webhook admits it under the approved ChannelExemption; all three do the same work after admission.\n"
    ));
    preflight(&env.client, &targets, &verdicts, report).await?;

    let quiet = super::Interference::start(cast.ours());
    let pids = cluster.control_plane_pids();
    let mut processes = vec![(
        "kube-apiserver".to_owned(),
        pids.get(1).copied().unwrap_or(0),
    )];
    processes.push(("etcd".to_owned(), pids.first().copied().unwrap_or(0)));
    processes.push(("operator".to_owned(), cast.operator_pid));
    processes.push(("clients".to_owned(), std::process::id() as i32));
    report.line("\n| verdict | clients | judged by | requests | req/s | p50 ms | p90 ms | p99 ms | max ms | CPU ms per request |");
    report.line("|---|---|---|---|---|---|---|---|---|---|");
    let warmup = Duration::from_secs(args.warmup_seconds);
    // Each run is cut into rounds taken in turn (control, policy, webhook, control, ...), so
    // that a burst of other work on the machine falls on all three alike.
    let rounds = args.api_rounds.max(1);
    let slice = Duration::from_secs_f64(args.api_seconds as f64 / rounds as f64);
    let mut comparisons = Vec::new();
    for &clients in &args.api_clients {
        for (verdict, object, expects) in &verdicts {
            let mut sets = Vec::new();
            for (target, expect) in targets.iter().zip(expects) {
                let mut workers = Vec::new();
                for _ in 0..clients {
                    let client = client_for(env.kubeconfig()).await?;
                    let mut object = object.clone();
                    object.metadata.namespace = Some(target.namespace.clone());
                    workers.push(Arc::new(Worker {
                        api: Api::namespaced(client, &target.namespace),
                        object,
                        expect: *expect,
                    }));
                }
                let what = format!("{verdict} creates in {} ({clients} clients)", target.label);
                drive(&workers, warmup, None, create).await?.check(&what)?;
                sets.push((what, workers, Run::default(), vec![0.0; processes.len()]));
            }
            for _ in 0..rounds {
                for (what, workers, all, cpu) in &mut sets {
                    let meter = CpuMeter::start(processes.clone());
                    let run = drive(workers, slice, None, create).await?;
                    run.check(what)?;
                    for (total, used) in cpu.iter_mut().zip(meter.seconds()) {
                        *total += used;
                    }
                    all.elapsed += run.elapsed;
                    all.latencies.extend(run.latencies);
                }
            }
            let mut stats = Vec::new();
            for ((_, _, all, cpu), target) in sets.iter_mut().zip(&targets) {
                let s = Stats::of(all);
                let per_request = processes
                    .iter()
                    .zip(cpu.iter())
                    .map(|((name, _), seconds)| {
                        format!("{name} {:.3}", seconds * 1e3 / s.requests.max(1) as f64)
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                report.line(format!(
                    "| {verdict} | {clients} | {} | {} | {per_request} |",
                    target.label,
                    s.cells()
                ));
                stats.push(s);
            }
            comparisons.push(Comparison {
                verdict,
                clients,
                control: stats[0],
                vap: stats[1],
                webhook: stats[2],
            });
        }
    }
    report.line(format!(
        "\nCPU per request: the processes' user + system time over the run ÷ requests answered; `clients` is this process (kube clients, {} tokio worker threads).",
        std::thread::available_parallelism().map_or(0, usize::from)
    ));
    report.line(format!("\n- {}", quiet.summary()));
    Ok(Results { comparisons })
}
