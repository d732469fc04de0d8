//! The admission webhook under load (issue 8, deliverable 6), in one run on one machine:
//! `AdmissionReview`s POSTed straight to the webhook's HTTPS endpoint from a load generator on
//! loopback, for the channel rules (CH-1) and the gongshu-kind rules; then server-side dry-run
//! creates through the apiserver into a namespace with no policy, one with the apiserver's own
//! CEL `ValidatingAdmissionPolicy` doing the simplest channel rule, and a department namespace
//! judged by the webhook.
//!
//! Run with `cargo xtask bench admission` (it builds the release operator first). The report
//! is printed and written to `bench/results/admission-<date>.md`.

mod apiserver;
mod direct;

use std::{
    path::PathBuf,
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use clap::Parser;
use gongshu_api::v1alpha1::{ChannelExemption, ExemptionPhase, LABEL_DEPARTMENT};
use gongshu_bench::{Error, Report, ms, percentile};
use gongshu_e2e::{
    cluster::{OwnCluster, operator_binary},
    fixtures::{Sharing, provider_catalog},
    harness::{TestEnv, random_suffix},
    observe,
};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use serde_json::json;

/// How long a setup step (an approval, a cache catching up) may take.
const SETUP_WAIT: Duration = Duration::from_secs(60);
/// The operator's log filter: its default (`gongshu operator` without `RUST_LOG`), so that the
/// webhook logs what it logs in a cluster (each denial at info) and nothing more.
const OPERATOR_LOG: &str = "info,kube=warn,tokio_postgres=warn";

#[derive(Parser, Debug)]
#[command(about = "The admission webhook under load, beside the apiserver's own CEL policies")]
struct Args {
    /// Connections of the direct load on the webhook (one run each per case; each connection
    /// is one worker sending its next review when the answer arrives).
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    connections: Vec<usize>,
    /// Reviews per second offered by the paced direct run of each case (0: none), the
    /// per-core target's rate: its p99 is latency at a given load rather than when saturated.
    #[arg(long, default_value_t = 5000.0)]
    rate: f64,
    /// Connections of the paced run.
    #[arg(long, default_value_t = 8)]
    paced_connections: usize,
    /// Seconds of each measured direct run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Unmeasured seconds before each measured run (connections, TLS, caches).
    #[arg(long, default_value_t = 1)]
    warmup_seconds: u64,
    /// Concurrent clients of the dry-run creates through the apiserver (one run each per
    /// namespace and verdict).
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    api_clients: Vec<usize>,
    /// Seconds of each measured run through the apiserver (one per namespace, verdict and
    /// concurrency).
    #[arg(long, default_value_t = 6)]
    api_seconds: u64,
    /// Rounds each run through the apiserver is cut into, the three namespaces taking turns.
    #[arg(long, default_value_t = 3)]
    api_rounds: usize,
    /// Only the direct load (e.g. to compare a change of the handler).
    #[arg(long)]
    skip_apiserver: bool,
    /// The operator build to run (`release` or `debug`).
    #[arg(long, default_value = "release")]
    profile: String,
    /// Run this program instead of the built operator (a wrapper such as a profiler that
    /// executes the operator with the arguments it is given).
    #[arg(long)]
    operator_binary: Option<PathBuf>,
    /// Extra environment of the operator, `KEY=VALUE` (repeatable), e.g. `RUST_LOG=...`.
    #[arg(long = "operator-env", value_parser = parse_env)]
    operator_env: Vec<(String, String)>,
    /// Directory of the report.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

fn main() -> ExitCode {
    gongshu_bench::main("admission", run(Args::parse()))
}

/// Any failure of a step that is not the harness's or the apiserver's, as text.
fn fail(what: &str) -> impl Fn(String) -> Error + '_ {
    move |e| Error::Stuck(format!("{what}: {e}"))
}

/// The machine's load averages (1, 5, 15 minutes), as `/proc/loadavg` has them.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The cast: a provider department with an approved catalog, a consumer department with an
/// approved `ChannelExemption`, and the operator's pid and admin address.
struct Cast {
    sharing: Sharing,
    /// A namespace that is not a department and that no policy selects.
    control_ns: String,
    consumer_code: String,
    operator_pid: i32,
    /// etcd, kube-apiserver, kube-controller-manager.
    plane_pids: Vec<i32>,
    admin: String,
}

impl Cast {
    /// The benchmark's processes besides this one.
    fn ours(&self) -> Vec<i32> {
        let mut pids = self.plane_pids.clone();
        pids.push(self.operator_pid);
        pids
    }
}

async fn run(args: Args) -> Result<(), Error> {
    let binary = match &args.operator_binary {
        Some(b) => b.clone(),
        None => operator_binary(&args.profile)?,
    };
    let mut report = Report::new("Admission: the webhook under load, beside the apiserver's CEL");
    report.line(format!(
        "- operator: {} (`{}` build), RUST_LOG `{OPERATOR_LOG}` (its default)",
        binary.display(),
        args.profile
    ));
    report.line(format!(
        "- direct load: closed-loop runs at {} connections and a paced run at {:.0} reviews/s over {} connections, {} s each; through the apiserver: {} clients, {} s each in {} rounds taken in turn; {} s warm-up before every run",
        join(&args.connections),
        args.rate,
        args.paced_connections,
        args.seconds,
        join(&args.api_clients),
        args.api_seconds,
        args.api_rounds,
        args.warmup_seconds
    ));
    let given: Vec<String> = std::env::args().skip(1).collect();
    report.line(format!(
        "- command: `cargo xtask bench admission{}`",
        if given.is_empty() {
            String::new()
        } else {
            format!(" -- {}", given.join(" "))
        }
    ));
    report.line(format!(
        "- load average at the start (1, 5, 15 min): {}",
        load_average()
    ));

    let mut cluster = OwnCluster::start("bench-admission").await?;
    gongshu_bench::apply_example_regulation(&cluster.env)?;
    let mut operator_env: Vec<(&str, &str)> = vec![("RUST_LOG", OPERATOR_LOG)];
    operator_env.extend(
        args.operator_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let (operator, log) = cluster
        .start_operator(&binary, "operator", &operator_env)
        .await?;
    observe::wait_log(
        &log,
        &["registered the admission webhook"],
        Duration::from_secs(120),
    )
    .await?;
    observe::wait_log(&log, &["initial lists complete"], Duration::from_secs(120)).await?;
    let operator_pid = cluster
        .operator_pid(operator)
        .ok_or_else(|| Error::Stuck("the operator exited".into()))?;
    let admin = observe::admin_addr(&log)?;

    let started = Instant::now();
    let env = cluster.env.clone();
    let sharing = Sharing::on(env.clone(), provider_catalog, true).await?;
    let consumer_code = Api::<Namespace>::all(env.client.clone())
        .get(&sharing.consumer_ns)
        .await?
        .metadata
        .labels
        .and_then(|l| l.get(LABEL_DEPARTMENT).cloned())
        .ok_or_else(|| Error::Stuck("the consumer namespace has no department label".into()))?;
    exempt(&env, &sharing.consumer_ns, direct::EXEMPTED).await?;
    let control_ns = env.namespace("bench-control", &[]).await?;
    report.line(format!(
        "- setup: two departments, a catalog of two items approved by authority Reviews, a ChannelExemption for Service {} approved, in {:.1} s",
        direct::EXEMPTED,
        started.elapsed().as_secs_f64()
    ));
    let cast = Cast {
        sharing,
        control_ns,
        consumer_code,
        operator_pid,
        plane_pids: cluster.control_plane_pids(),
        admin,
    };

    let direct = direct::run(&cast, &args, &mut report).await?;
    let through = if args.skip_apiserver {
        None
    } else {
        Some(apiserver::run(&cluster, &cast, &args, &mut report).await?)
    };
    summary(&direct, through.as_ref(), &mut report);
    report.line(format!(
        "\n- load average at the end (1, 5, 15 min): {}",
        load_average()
    ));
    let path = report.write(
        &args.out.unwrap_or_else(gongshu_bench::results_dir),
        "admission",
    )?;
    println!("\nwritten to {}", path.display());
    Ok(())
}

/// Files a `ChannelExemption` covering Service `service` in department `namespace`, has the
/// authority approve it, and waits until it is Approved.
async fn exempt(env: &TestEnv, namespace: &str, service: &str) -> Result<(), Error> {
    let exemption: ChannelExemption = serde_json::from_value(json!({
        "apiVersion": "gongshu.io/v1alpha1",
        "kind": "ChannelExemption",
        "metadata": {"name": service, "namespace": namespace},
        "spec": {
            "covers": [{"kind": "Service", "name": service}],
            "justification": "The national credit system pulls this portal directly until its upgrade.",
            "legalBasis": "Provincial data authority approval 2026-031",
            "validUntil": "2099-01-01T00:00:00Z",
            "enforce": false,
        },
    }))
    .map_err(|e| fail("exemption")(e.to_string()))?;
    let api: Api<ChannelExemption> = Api::namespaced(env.client.clone(), namespace);
    env.create_admitted(&api, &exemption, SETUP_WAIT).await?;
    env.review(
        TestEnv::AUTHORITY_NAMESPACE,
        &format!("approve-{service}-{}", random_suffix()),
        json!({"kind": "ChannelExemption", "namespace": namespace, "name": service}),
        "approve",
        "",
    )
    .await?;
    env.wait_for(api, service, SETUP_WAIT, |e: Option<&ChannelExemption>| {
        e.and_then(|e| e.status.as_ref()).and_then(|s| s.phase) == Some(ExemptionPhase::Approved)
    })
    .await?;
    Ok(())
}

/// `1, 8, 32`.
fn join(levels: &[usize]) -> String {
    levels
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One measured run: the latency of every request answered as expected, and the others.
#[derive(Debug, Default)]
struct Run {
    elapsed: Duration,
    latencies: Vec<Duration>,
    unexpected: usize,
    first_unexpected: Option<String>,
}

impl Run {
    /// Fails loudly when any answer was not the verdict the case expects: correctness first.
    fn check(&self, what: &str) -> Result<(), Error> {
        match &self.first_unexpected {
            None => Ok(()),
            Some(first) => Err(Error::Stuck(format!(
                "{what}: {} of {} answers were not the expected verdict; the first: {first}",
                self.unexpected,
                self.unexpected + self.latencies.len()
            ))),
        }
    }
}

/// `workers` tasks, each sending its next request when the previous answer is in (closed
/// loop), or with `rate`, at that many requests per second in all, spread evenly over the
/// workers (open loop: a worker that falls behind sends at once until it is on time again),
/// until `length` has passed; `send` answers `Err(what came back)` for an unexpected verdict.
/// Latency is measured from the moment a request is sent.
async fn drive<W, F, Fut>(
    workers: &[Arc<W>],
    length: Duration,
    rate: Option<f64>,
    send: F,
) -> Result<Run, Error>
where
    W: Send + Sync + 'static,
    F: Fn(Arc<W>) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let started = Instant::now();
    let deadline = started + length;
    let interval = rate.map(|r| Duration::from_secs_f64(workers.len() as f64 / r));
    let tasks: Vec<_> = workers
        .iter()
        .enumerate()
        .map(|(i, worker)| {
            let (send, worker) = (send.clone(), worker.clone());
            // Workers start staggered across one interval, not all at once.
            let mut next = interval.map(|every| {
                tokio::time::Instant::from_std(started)
                    + every.mul_f64(i as f64 / workers.len() as f64)
            });
            tokio::spawn(async move {
                let mut run = Run::default();
                while Instant::now() < deadline {
                    if let (Some(at), Some(every)) = (next.as_mut(), interval) {
                        tokio::time::sleep_until(*at).await;
                        *at += every;
                        if Instant::now() >= deadline {
                            break;
                        }
                    }
                    let sent = Instant::now();
                    match send(worker.clone()).await {
                        Ok(()) => run.latencies.push(sent.elapsed()),
                        Err(what) => {
                            run.unexpected += 1;
                            run.first_unexpected.get_or_insert(what);
                        }
                    }
                }
                run
            })
        })
        .collect();
    let mut all = Run::default();
    for task in tasks {
        let run = task.await.map_err(|e| fail("load task")(e.to_string()))?;
        all.latencies.extend(run.latencies);
        all.unexpected += run.unexpected;
        if all.first_unexpected.is_none() {
            all.first_unexpected = run.first_unexpected;
        }
    }
    all.elapsed = started.elapsed();
    Ok(all)
}

/// CPU time the rest of the machine used while a section ran: everything `/proc/stat` counts
/// as busy minus this benchmark's own processes, so a report says how quiet the box was.
struct Interference {
    ours: Vec<i32>,
    started: Instant,
    busy: f64,
    own: f64,
}

impl Interference {
    /// Starts counting; `ours` are the benchmark's processes (this one is added).
    fn start(mut ours: Vec<i32>) -> Self {
        ours.push(std::process::id() as i32);
        let own = Self::own(&ours);
        Self {
            busy: Self::busy(),
            ours,
            started: Instant::now(),
            own,
        }
    }

    /// Busy CPU-seconds of the whole machine since boot (user, nice, system, irq, softirq,
    /// steal; USER_HZ is 100).
    fn busy() -> f64 {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let Some(cpu) = stat.lines().find(|l| l.starts_with("cpu ")) else {
            return 0.0;
        };
        let fields: Vec<f64> = cpu
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        [0, 1, 2, 5, 6, 7]
            .iter()
            .filter_map(|&i| fields.get(i))
            .sum::<f64>()
            / 100.0
    }

    fn own(pids: &[i32]) -> f64 {
        pids.iter()
            .filter_map(|&p| gongshu_bench::cpu_seconds(p))
            .sum()
    }

    /// `other processes used 0.4 CPU-s in 60 s (0.3% of 2 cores)`.
    fn summary(&self) -> String {
        let seconds = self.started.elapsed().as_secs_f64();
        let others = ((Self::busy() - self.busy) - (Self::own(&self.ours) - self.own)).max(0.0);
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        format!(
            "other processes on the machine used {others:.1} CPU-s during these {seconds:.0} s ({:.0}% of {cores} cores; machine-wide busy time minus this benchmark's processes, clamped at 0: the two are counted differently and agree within a few per cent); load average now {}",
            others / seconds / cores as f64 * 100.0,
            load_average()
        )
    }
}

/// Throughput and latency percentiles of a run.
#[derive(Clone, Copy, Debug)]
struct Stats {
    requests: usize,
    rate: f64,
    p50: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
}

impl Stats {
    fn of(run: &mut Run) -> Self {
        let l = &mut run.latencies;
        Self {
            requests: l.len(),
            rate: l.len() as f64 / run.elapsed.as_secs_f64(),
            p50: percentile(l, 50.0),
            p90: percentile(l, 90.0),
            p99: percentile(l, 99.0),
            max: percentile(l, 100.0),
        }
    }

    /// `| requests | req/s | p50 | p90 | p99 | max |` cells.
    fn cells(&self) -> String {
        format!(
            "{} | {:.0} | {} | {} | {} | {}",
            self.requests,
            self.rate,
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.max)
        )
    }
}

/// The verdicts against the targets.
fn summary(direct: &direct::Results, through: Option<&apiserver::Results>, report: &mut Report) {
    let met = |ok: bool| if ok { "met" } else { "**missed**" };
    report.line("\n## Against the targets\n");
    report.line("Targets (issue 8): p99 ≤ 2 ms and ≥ 5,000 reviews/s per core, for the channel rules and the gongshu-kind rules. Per core is reviews per CPU-second of the operator process (the load generator shares the two cores); p99 is judged at the paced rate, the closed-loop p99s show where the box saturates.\n");
    report.line("| case | p99 ms, paced (≤ 2) | p99 ms, closed loop by connections | reviews per webhook CPU-second, lowest (≥ 5,000) | best wall reviews/s |");
    report.line("|---|---|---|---|---|");
    let mut cases: Vec<&str> = direct.rows.iter().map(|r| r.case.as_str()).collect();
    cases.dedup();
    for case in cases {
        let rows: Vec<&direct::Row> = direct.rows.iter().filter(|r| r.case == case).collect();
        let paced = rows
            .iter()
            .find(|r| r.paced)
            .map_or("not run".to_owned(), |r| {
                format!(
                    "{} at {:.0}/s: {}",
                    ms(r.stats.p99),
                    r.stats.rate,
                    met(r.stats.p99 <= Duration::from_millis(2))
                )
            });
        let closed = rows
            .iter()
            .filter(|r| !r.paced)
            .map(|r| format!("{}: {}", r.load, ms(r.stats.p99)))
            .collect::<Vec<_>>()
            .join(", ");
        let lowest = rows
            .iter()
            .map(|r| r.per_cpu_second)
            .fold(f64::INFINITY, f64::min);
        let best = rows.iter().map(|r| r.stats.rate).fold(0.0, f64::max);
        report.line(format!(
            "| {case} | {paced} | {closed} | {lowest:.0}: {} | {best:.0} |",
            met(lowest >= 5000.0)
        ));
    }
    let Some(through) = through else { return };
    report.line("\nThrough the apiserver (server-side dry-run creates of one Service): p50 / p99 ms, and the added latency over the apiserver alone in brackets.\n");
    report.line("| verdict | clients | apiserver alone | ValidatingAdmissionPolicy | gongshu webhook | webhook ÷ VAP, p50 / p99 / throughput |");
    report.line("|---|---|---|---|---|---|");
    for c in &through.comparisons {
        let cell = |s: &Stats, added: bool| {
            let mut text = format!("{} / {}", ms(s.p50), ms(s.p99));
            if added {
                text.push_str(&format!(
                    " (+{:.2} / +{:.2})",
                    c.added(s, 50),
                    c.added(s, 99)
                ));
            }
            text.replace("+-", "−")
        };
        report.line(format!(
            "| {} | {} | {} | {} | {} | {:.2} / {:.2} / {:.2} |",
            c.verdict,
            c.clients,
            cell(&c.control, false),
            cell(&c.vap, true),
            cell(&c.webhook, true),
            c.webhook.p50.as_secs_f64() / c.vap.p50.as_secs_f64().max(1e-9),
            c.webhook.p99.as_secs_f64() / c.vap.p99.as_secs_f64().max(1e-9),
            c.webhook.rate / c.vap.rate.max(1e-9),
        ));
    }
}
