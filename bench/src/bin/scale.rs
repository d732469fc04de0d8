//! The workflow at scale (issue #4, point 6): on a fresh local control plane, 1,000 department
//! namespaces with a catalog each and 10,000 `ShareGrant`s; how long the operator takes to bring
//! every grant to its steady phase from a cold start, its peak memory, and its reconciles at
//! rest, beside the raw apiserver's ceiling for the same status patches sent by a plain client
//! in the same run.
//!
//! Run with `cargo xtask bench scale` (it builds the release operator first). The report is
//! printed and written to `bench/results/scale-<date>.md`.

use std::{
    collections::HashMap,
    path::PathBuf,
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use clap::Parser;
use futures::{StreamExt, TryStreamExt, stream};
use gongshu_api::{
    v1alpha1::{
        DataCatalog, GrantPhase, ItemReview, LABEL_DEPARTMENT, LABEL_LEVEL, Regulation, ShareGrant,
    },
    workflow::{
        RegulationFacts,
        grant::{GrantFacts, ItemFacts, evaluate, served_terms},
    },
};
use gongshu_bench::{CpuMeter, Error, Report, ms, percentile, proc_status_kib, results_dir};
use gongshu_e2e::{
    cluster::{OwnCluster, operator_binary, repo_root},
    fixtures::{grant, mixed_catalog},
    harness::TestEnv,
    observe,
};
use jiff::Timestamp;
use k8s_openapi::api::{
    admissionregistration::v1::ValidatingWebhookConfiguration, core::v1::Namespace,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams},
    runtime::{
        WatchStreamExt,
        events::{Event, EventType, Recorder, Reporter},
        watcher,
    },
};
use tokio::sync::watch;

/// The label on the baseline's own grants, which the operator never sees.
const BASELINE_LABEL: &str = "gongshu.io/bench";
/// How long the operator may take to settle every grant before the run is declared stuck.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(45 * 60);

#[derive(Parser, Debug)]
#[command(about = "The ShareGrant workflow at scale, beside the raw apiserver")]
struct Args {
    /// Department namespaces, each with one catalog of two items.
    #[arg(long, default_value_t = 1000)]
    departments: usize,
    /// ShareGrants the operator settles (the baseline patches as many of its own).
    #[arg(long, default_value_t = 10_000)]
    grants: usize,
    /// Concurrency levels of the raw baseline sending status patches only; its ceiling is
    /// the best of them.
    #[arg(long, value_delimiter = ',', default_value = "8,32,128")]
    baseline_concurrency: Vec<usize>,
    /// Concurrency levels of the raw baseline sending, per grant, the status patch and the
    /// Event the operator sends.
    #[arg(long, value_delimiter = ',', default_value = "16,128")]
    baseline_event_concurrency: Vec<usize>,
    /// Concurrent requests while creating the objects.
    #[arg(long, default_value_t = 64)]
    setup_concurrency: usize,
    /// How long reconciles are counted once every grant is steady.
    #[arg(long, default_value_t = 60)]
    rest_seconds: u64,
    /// The operator build to run (`release` or `debug`).
    #[arg(long, default_value = "release")]
    profile: String,
    /// Directory of the report.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run this program instead of the built operator (a wrapper such as a profiler that
    /// executes the operator with the arguments it is given).
    #[arg(long)]
    operator_binary: Option<PathBuf>,
    /// Extra environment of the measured operator, `KEY=VALUE` (repeatable), e.g. to try
    /// another allocator setting.
    #[arg(long = "operator-env", value_parser = parse_env)]
    operator_env: Vec<(String, String)>,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

fn main() -> ExitCode {
    gongshu_bench::main("scale", run(Args::parse()))
}

/// One grant of the run: where it lives, what it asks for, and the phase it settles in.
#[derive(Clone, Debug)]
struct Planned {
    namespace: String,
    name: String,
    item: String,
    fields: &'static [&'static str],
    steady: GrantPhase,
}

/// Grant `i` of `count` departments: consumer `i mod n`, provider another department; even
/// grants ask for the conditional item (steady in ProviderReview, waiting on the provider),
/// odd ones for the unconditional item (steady in Active, SH-1).
fn plan(departments: &[String], i: usize, prefix: &str) -> Planned {
    let n = departments.len();
    let consumer = i % n;
    let provider = (consumer + 1 + (i / n) % (n - 1).max(1)) % n;
    let provider = &departments[provider];
    let (item, fields, steady) = if i.is_multiple_of(2) {
        (
            "households",
            &["citizen_id", "name"][..],
            GrantPhase::ProviderReview,
        )
    } else {
        ("licences", &["credit_code", "name"][..], GrantPhase::Active)
    };
    Planned {
        namespace: departments[consumer].clone(),
        name: format!("{prefix}-{i:05}"),
        item: format!("{provider}.{item}"),
        fields,
        steady,
    }
}

async fn run(args: Args) -> Result<(), Error> {
    let binary = match &args.operator_binary {
        Some(b) => b.clone(),
        None => operator_binary(&args.profile)?,
    };
    let mut report = Report::new(&format!(
        "Scale: {} departments, {} catalogs, {} ShareGrants",
        args.departments, args.departments, args.grants
    ));
    report.line(format!("- operator: {} build", args.profile));
    let mut cluster = OwnCluster::start("bench-scale").await?;
    let env = cluster.env.clone();
    let client = env.client.clone();

    gongshu_bench::apply_example_regulation(&env)?;
    let regulation_file = repo_root().join("examples/10-regulation.yaml");
    let regulation: Regulation = serde_yaml::from_str(
        &std::fs::read_to_string(&regulation_file).map_err(|source| Error::Io {
            path: regulation_file.display().to_string(),
            source,
        })?,
    )
    .map_err(|e| Error::Stuck(format!("{}: {e}", regulation_file.display())))?;

    // Setup, with the operator running: its webhook admits the catalogs and Reviews, and it
    // records the authority's approvals that grants need.
    report.line("\n## Setup (operator running, not measured against anything)\n");
    let (setup_operator, log) = cluster
        .start_operator(&binary, "operator-setup", &[])
        .await?;
    observe::wait_log(
        &log,
        &["registered the admission webhook"],
        Duration::from_secs(120),
    )
    .await?;
    observe::wait_log(&log, &["initial lists complete"], Duration::from_secs(120)).await?;

    let departments: Vec<String> = (0..args.departments)
        .map(|i| format!("dept-{i:04}"))
        .collect();
    timed(
        &mut report,
        format!("{} department namespaces created", departments.len()),
        create_departments(&client, &departments, args.setup_concurrency),
    )
    .await?;
    timed(
        &mut report,
        format!(
            "{} catalogs (2 items each) created through the webhook",
            departments.len()
        ),
        create_catalogs(&env, &departments, args.setup_concurrency),
    )
    .await?;
    let catalogs = timed(
        &mut report,
        format!(
            "{} authority Reviews created and every item approved by the operator",
            departments.len() * 2
        ),
        async {
            approve_catalogs(&env, &departments, args.setup_concurrency).await?;
            wait_approved(&client, departments.len()).await
        },
    )
    .await?;

    // From here on the operator is stopped and its webhook removed: the grants are created
    // as a backlog, and the baseline runs alone.
    if !cluster.stop_operator(setup_operator, Duration::from_secs(30)) {
        report.line("- warning: the setup operator did not exit 0 on SIGTERM");
    }
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .delete("gongshu", &DeleteParams::default())
        .await?;

    let operator_grants: Vec<Planned> = (0..args.grants)
        .map(|i| plan(&departments, i, "g"))
        .collect();
    let baseline_grants: Vec<Planned> = (0..args.grants)
        .map(|i| plan(&departments, i, "b"))
        .collect();
    let started = Instant::now();
    create_grants(&client, &operator_grants, false, args.setup_concurrency).await?;
    let created = started.elapsed();
    report.line(format!(
        "- {} ShareGrants created (no webhook, operator stopped) in {:.1} s: {:.0}/s",
        args.grants,
        created.as_secs_f64(),
        args.grants as f64 / created.as_secs_f64()
    ));
    let baseline_objects =
        create_grants(&client, &baseline_grants, true, args.setup_concurrency).await?;

    // The baseline: a plain client applies, to grants of its own, the status the operator
    // would write (computed by the same pure function), one server-side apply per grant.
    report.line("\n## Baseline: raw status patches from a plain client\n");
    let facts = RegulationFacts::from_spec(&regulation.spec)
        .map_err(|p| Error::Stuck(format!("the example Regulation is invalid: {p:?}")))?;
    let items = item_facts(&catalogs);
    let statuses: Vec<(ShareGrant, serde_json::Value)> = baseline_objects
        .into_iter()
        .zip(&baseline_grants)
        .map(|(g, p)| {
            let status = operator_status(&g, items.get(&p.item), &facts);
            (g, status)
        })
        .collect();
    let bytes: usize = statuses
        .iter()
        .map(|(_, s)| serde_json::to_vec(s).map_or(0, |v| v.len()))
        .sum();
    report.line(format!(
        "status documents: {} bytes on average (JSON)\n",
        bytes / statuses.len().max(1)
    ));
    report
        .line("| writes per grant | concurrency | grants | seconds | grants/s | p50 ms | p99 ms |");
    report.line("|---|---|---|---|---|---|---|");
    let runs: Vec<(usize, bool)> = args
        .baseline_concurrency
        .iter()
        .map(|&c| (c, false))
        .chain(args.baseline_event_concurrency.iter().map(|&c| (c, true)))
        .collect();
    let chunk = statuses.len().div_ceil(runs.len().max(1));
    let plane = control_plane(&cluster);
    let cpu = CpuMeter::start(
        plane
            .iter()
            .cloned()
            .chain([("this client".to_owned(), std::process::id() as i32)])
            .collect(),
    );
    let (mut ceiling, mut ceiling_with_events) = (0.0_f64, 0.0_f64);
    for ((level, with_event), part) in runs.iter().zip(statuses.chunks(chunk)) {
        let (elapsed, mut latencies) = patch_statuses(&client, part, *level, *with_event).await?;
        let rate = part.len() as f64 / elapsed.as_secs_f64();
        let best = if *with_event {
            &mut ceiling_with_events
        } else {
            &mut ceiling
        };
        *best = best.max(rate);
        report.line(format!(
            "| {} | {level} | {} | {:.1} | {rate:.0} | {} | {} |",
            if *with_event {
                "status + Event"
            } else {
                "status"
            },
            part.len(),
            elapsed.as_secs_f64(),
            ms(percentile(&mut latencies, 50.0)),
            ms(percentile(&mut latencies, 99.0)),
        ));
    }
    report.line(format!("\nCPU during the baseline: {}", cpu.summary()));
    report.line(format!(
        "\nceiling: **{ceiling:.0} status patches/s**; {ceiling_with_events:.0} grants/s when each also gets its Event"
    ));
    delete_baseline(&client, &departments).await?;

    // The operator, cold, against the backlog.
    report.line("\n## gongshu operator: cold start against the backlog\n");
    let (steady_tx, steady_rx) = watch::channel(0_usize);
    let expected: Arc<HashMap<String, GrantPhase>> = Arc::new(
        operator_grants
            .iter()
            .map(|p| (format!("{}/{}", p.namespace, p.name), p.steady))
            .collect(),
    );
    let counter = tokio::spawn(count_steady(client.clone(), expected, steady_tx));
    let env: Vec<(&str, &str)> = args
        .operator_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if !env.is_empty() {
        report.line(format!("- operator environment: {:?}", args.operator_env));
    }
    let started = Instant::now();
    let (bench_operator, log) = cluster
        .start_operator(&binary, "operator-bench", &env)
        .await?;
    let pid = cluster
        .operator_pid(bench_operator)
        .ok_or_else(|| Error::Stuck("the operator exited at once".into()))?;
    let cpu = CpuMeter::start(
        plane
            .iter()
            .cloned()
            .chain([("operator".to_owned(), pid)])
            .collect(),
    );
    let lists = wait_steady(steady_rx, args.grants, &log, started).await?;
    let cpu = cpu.summary();
    let settled = started.elapsed();
    counter.abort();
    let addr = observe::admin_addr(&log)?;
    let metrics = observe::scrape(&addr).await?;
    let writes = observe::metric_sum(
        &metrics,
        "gongshu_status_writes_total",
        &[("controller", "sharegrant")],
    )
    .unwrap_or(0.0);
    let errors =
        observe::metric_sum(&metrics, "gongshu_reconcile_errors_total", &[]).unwrap_or(0.0);
    let grant_reconciles = observe::metric_sum(
        &metrics,
        "gongshu_reconcile_total",
        &[("controller", "sharegrant")],
    )
    .unwrap_or(0.0);
    let write_rate = writes / settled.as_secs_f64();
    let grant_rate = args.grants as f64 / settled.as_secs_f64();
    report.line(format!(
        "- every grant steady {:.1} s after the process started (initial lists done at {:.1} s)",
        settled.as_secs_f64(),
        lists.map_or(f64::NAN, |d| d.as_secs_f64())
    ));
    report.line(format!(
        "- {writes:.0} ShareGrant status writes ({write_rate:.0}/s over the whole run), {grant_reconciles:.0} grant reconciles, {errors:.0} reconcile errors"
    ));
    report.line(format!("- grants settled: {grant_rate:.0}/s"));
    report.line(format!("- CPU until steady: {cpu}"));

    // At rest.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = observe::metric_sum(
        &observe::scrape(&addr).await?,
        "gongshu_reconcile_total",
        &[],
    )
    .unwrap_or(0.0);
    tokio::time::sleep(Duration::from_secs(args.rest_seconds)).await;
    let at_rest = observe::scrape(&addr).await?;
    let after = observe::metric_sum(&at_rest, "gongshu_reconcile_total", &[]).unwrap_or(0.0);
    let per_minute = (after - before) * 60.0 / args.rest_seconds as f64;
    let peak = proc_status_kib(pid, "VmHWM").unwrap_or(0) as f64 / 1024.0;
    let rss = proc_status_kib(pid, "VmRSS").unwrap_or(0) as f64 / 1024.0;
    report.line(format!(
        "- reconciles at rest: {per_minute:.1}/min over {} s (the 6 h safety resync of {} objects averages {:.0}/min in the long run)",
        args.rest_seconds,
        args.grants + 2 * departments.len() + 1,
        (args.grants + 2 * departments.len() + 1) as f64 / 360.0
    ));
    report.line(format!(
        "- memory: peak RSS {peak:.0} MiB, RSS at rest {rss:.0} MiB"
    ));

    let ratio = grant_rate / ceiling;
    let ratio_same_writes = grant_rate / ceiling_with_events;
    report.line("\n## Against the targets\n");
    report.line("| measure | gongshu | baseline / target | ratio |");
    report.line("|---|---|---|---|");
    report.line(format!(
        "| status patches/s (one per settled grant) | {grant_rate:.0} | raw apiserver ceiling {ceiling:.0} | **{:.0}%** (target ≥ 90%) |",
        ratio * 100.0
    ));
    report.line(format!(
        "| grants/s, the same writes (status patch + Event) | {grant_rate:.0} | raw apiserver {ceiling_with_events:.0} | **{:.0}%** |",
        ratio_same_writes * 100.0
    ));
    report.line(format!(
        "| peak RSS | {peak:.0} MiB | ≤ 150 MiB | {} |",
        if peak <= 150.0 { "met" } else { "missed" }
    ));
    report.line(format!(
        "| reconciles/min at rest | {per_minute:.1} | near 0 | {} |",
        if per_minute < 1.0 { "met" } else { "missed" }
    ));
    report.line(
        "\nBoth sides send one server-side-apply status patch per grant; the operator also \
         lists every object at start and publishes one Event per grant (its transition), which \
         the baseline does not.",
    );

    if !cluster.stop_operator(bench_operator, Duration::from_secs(30)) {
        report.line("\nwarning: the operator did not exit 0 on SIGTERM");
    }
    let path = report.write(&args.out.unwrap_or_else(results_dir), "scale")?;
    println!("\nwritten to {}", path.display());
    Ok(())
}

/// Runs `step`, then reports `- <what> in <seconds> s`.
async fn timed<T>(
    report: &mut Report,
    what: String,
    step: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let started = Instant::now();
    let out = step.await?;
    report.line(format!(
        "- {what} in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(out)
}

/// The control plane's processes by name, for CPU accounting.
fn control_plane(cluster: &OwnCluster) -> Vec<(String, i32)> {
    cluster
        .control_plane_pids()
        .into_iter()
        .map(|pid| {
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map_or_else(|_| pid.to_string(), |c| c.trim().to_owned());
            (name, pid)
        })
        .collect()
}

/// Runs `task` for every item, `concurrency` at a time; the first error ends the run.
async fn each<I, F, Fut, E>(items: I, concurrency: usize, task: F) -> Result<(), Error>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    Error: From<E>,
{
    stream::iter(items)
        .map(task)
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

async fn create_departments(
    client: &Client,
    departments: &[String],
    concurrency: usize,
) -> Result<(), Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    each(departments, concurrency, |name| {
        let api = api.clone();
        async move {
            let ns = Namespace {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    labels: Some(
                        [(LABEL_DEPARTMENT, name.as_str()), (LABEL_LEVEL, "city")]
                            .into_iter()
                            .map(|(k, v)| (k.to_owned(), v.to_owned()))
                            .collect(),
                    ),
                    ..Default::default()
                },
                ..Default::default()
            };
            api.create(&PostParams::default(), &ns).await.map(drop)
        }
    })
    .await
}

async fn create_catalogs(
    env: &TestEnv,
    departments: &[String],
    concurrency: usize,
) -> Result<(), Error> {
    each(departments, concurrency, |ns| async move {
        let api: Api<DataCatalog> = Api::namespaced(env.client.clone(), ns);
        env.create_admitted(&api, &mixed_catalog(ns, ns, ns), Duration::from_secs(60))
            .await
            .map(drop)
    })
    .await
}

async fn approve_catalogs(
    env: &TestEnv,
    departments: &[String],
    concurrency: usize,
) -> Result<(), Error> {
    let items = departments
        .iter()
        .flat_map(|ns| ["households", "licences"].map(|item| (ns, item)));
    each(items, concurrency, |(ns, item)| async move {
            let subject = serde_json::json!({
                "kind": "CatalogItem", "namespace": ns, "name": "catalog", "item": format!("{ns}.{item}"),
            });
            env.review(
                TestEnv::AUTHORITY_NAMESPACE,
                &format!("approve-{ns}-{item}"),
                subject,
                "approve",
                "",
            )
            .await
            .map(drop)
        })
    .await
}

/// Waits until `count` catalogs have every item approved; returns them.
async fn wait_approved(client: &Client, count: usize) -> Result<Vec<DataCatalog>, Error> {
    let api: Api<DataCatalog> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let catalogs = api.list(&ListParams::default()).await?.items;
        let approved = catalogs
            .iter()
            .filter(|c| {
                c.status.as_ref().is_some_and(|s| {
                    s.items.len() == c.spec.items.len()
                        && s.items.iter().all(|i| i.review == ItemReview::Approved)
                })
            })
            .count();
        if approved == count {
            return Ok(catalogs);
        }
        if Instant::now() > deadline {
            return Err(Error::Stuck(format!(
                "only {approved} of {count} catalogs approved after 600 s"
            )));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Creates the planned grants (labelled as the baseline's with `baseline`); returns them as
/// created.
async fn create_grants(
    client: &Client,
    planned: &[Planned],
    baseline: bool,
    concurrency: usize,
) -> Result<Vec<ShareGrant>, Error> {
    let created = stream::iter(planned)
        .map(|p| {
            let api: Api<ShareGrant> = Api::namespaced(client.clone(), &p.namespace);
            let mut g = grant(&p.namespace, &p.name, &p.item, p.fields, "api");
            if baseline {
                g.metadata.labels =
                    Some([(BASELINE_LABEL.to_owned(), "baseline".to_owned())].into());
            }
            async move { api.create(&PostParams::default(), &g).await }
        })
        .buffered(concurrency)
        .try_collect()
        .await?;
    Ok(created)
}

/// The catalog items by identifier, as the operator sees them.
fn item_facts(catalogs: &[DataCatalog]) -> HashMap<String, ItemFacts> {
    catalogs
        .iter()
        .flat_map(|c| {
            let ns = c.namespace().unwrap_or_default();
            c.spec
                .items
                .iter()
                .filter_map(move |i| ItemFacts::from_catalog(c, &ns, &i.identifier))
        })
        .map(|f| (f.identifier.clone(), f))
        .collect()
}

/// The status the operator writes for `grant` on its first reconcile: the workflow's pure
/// evaluation, with the endpoint of an active grant, as a server-side-apply body.
fn operator_status(
    grant: &ShareGrant,
    item: Option<&ItemFacts>,
    regulation: &RegulationFacts,
) -> serde_json::Value {
    let namespace = grant.namespace().unwrap_or_default();
    let name = grant.name_any();
    let now = Timestamp::now();
    let mut outcome = evaluate(&GrantFacts {
        namespace: &namespace,
        name: &name,
        spec: &grant.spec,
        generation: grant.metadata.generation.unwrap_or(1),
        created: grant
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(now, |t| t.0),
        item,
        reviews: &[],
        regulation,
        previous: None,
        now,
    });
    outcome.status.endpoint = served_terms(&outcome.status).map(|_| {
        format!("https://gongshu-exchange.gongshu-system.svc/v1/grants/{namespace}/{name}")
    });
    serde_json::json!({
        "apiVersion": "gongshu.io/v1alpha1",
        "kind": "ShareGrant",
        "status": outcome.status,
    })
}

/// Applies each status with `concurrency` grants in flight, and with `with_event` publishes
/// the Event of its transition as the operator does (the same kube recorder); the elapsed time
/// and every grant's latency.
async fn patch_statuses(
    client: &Client,
    statuses: &[(ShareGrant, serde_json::Value)],
    concurrency: usize,
    with_event: bool,
) -> Result<(Duration, Vec<Duration>), Error> {
    let params = PatchParams::apply("bench-raw-client").force();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "bench-raw-client".into(),
            instance: None,
        },
    );
    let started = Instant::now();
    let latencies = stream::iter(statuses)
        .map(|(g, body)| {
            let api: Api<ShareGrant> =
                Api::namespaced(client.clone(), &g.namespace().unwrap_or_default());
            let params = params.clone();
            let name = g.name_any();
            let recorder = recorder.clone();
            async move {
                let sent = Instant::now();
                let written = api
                    .patch_status(&name, &params, &Patch::Apply(body))
                    .await?;
                if with_event {
                    let phase = written.status.and_then(|s| s.phase);
                    let event = Event {
                        type_: EventType::Normal,
                        reason: phase.map(|p| format!("{p:?}")).unwrap_or_default(),
                        note: Some("the grant entered its phase (baseline)".into()),
                        action: "Review".into(),
                        secondary: None,
                    };
                    recorder.publish(&event, &g.object_ref(&())).await?;
                }
                Ok::<_, kube::Error>(sent.elapsed())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    Ok((started.elapsed(), latencies))
}

async fn delete_baseline(client: &Client, departments: &[String]) -> Result<(), Error> {
    let selector = ListParams::default().labels(BASELINE_LABEL);
    each(departments, 16, |ns| {
        let api: Api<ShareGrant> = Api::namespaced(client.clone(), ns);
        let selector = selector.clone();
        async move {
            api.delete_collection(&DeleteParams::default(), &selector)
                .await
                .map(drop)
        }
    })
    .await
}

/// Watches every grant and publishes how many are in their expected steady phase.
async fn count_steady(
    client: Client,
    expected: Arc<HashMap<String, GrantPhase>>,
    steady: watch::Sender<usize>,
) {
    let mut phases: HashMap<String, bool> = HashMap::new();
    let stream = watcher(Api::<ShareGrant>::all(client), watcher::Config::default())
        .default_backoff()
        .applied_objects();
    futures::pin_mut!(stream);
    while let Some(Ok(g)) = stream.next().await {
        let key = format!("{}/{}", g.namespace().unwrap_or_default(), g.name_any());
        let Some(want) = expected.get(&key) else {
            continue;
        };
        let phase = g.status.as_ref().and_then(|s| s.phase);
        phases.insert(key, phase == Some(*want));
        let _ = steady.send(phases.values().filter(|s| **s).count());
    }
}

/// Waits until `total` grants are steady, printing progress; returns when the operator logged
/// its initial lists complete, relative to `started`.
async fn wait_steady(
    mut steady: watch::Receiver<usize>,
    total: usize,
    log: &std::path::Path,
    started: Instant,
) -> Result<Option<Duration>, Error> {
    let mut lists = None;
    let mut last_print = Instant::now();
    loop {
        if lists.is_none() && observe::find_line(log, &["initial lists complete"]).is_some() {
            lists = Some(started.elapsed());
        }
        let done = *steady.borrow_and_update();
        if done >= total {
            return Ok(lists);
        }
        if last_print.elapsed() > Duration::from_secs(5) {
            println!(
                "  {done}/{total} steady after {:.0} s",
                started.elapsed().as_secs_f64()
            );
            last_print = Instant::now();
        }
        if started.elapsed() > SETTLE_TIMEOUT {
            return Err(Error::Stuck(format!(
                "{done} of {total} grants steady after {SETTLE_TIMEOUT:?}; see {}",
                log.display()
            )));
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), steady.changed()).await;
    }
}
