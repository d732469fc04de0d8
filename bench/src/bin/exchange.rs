//! The exchange gateway beside PostgreSQL itself (issue #5, item 8), in one run on one server:
//! keyed lookups through the exchange (audit on) against the same prepared query sent
//! directly; a bulk CSV download against `psql \copy`; and how soon a revoked grant stops
//! being served.
//!
//! Run with `cargo xtask bench exchange` (it builds the release binary first). The report is
//! printed and written to `bench/results/exchange-<date>.md`.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use clap::Parser;
use futures::{StreamExt, TryStreamExt, stream};
use gongshu_api::v1alpha1::{GrantPhase, ShareGrant};
use gongshu_bench::{CpuMeter, Error, Report, cpu_seconds, ms, percentile, proc_status_kib};
use gongshu_e2e::{
    cluster::{OwnCluster, operator_binary},
    exchange::Exchange,
    fixtures::{Sharing, provider_catalog},
    harness::{TestEnv, random_suffix},
    observe,
    postgres::{Postgres, bin_dir},
};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::{
    Api, ResourceExt,
    api::PostParams,
    runtime::{WatchStreamExt, watcher},
};
use serde_json::json;
use tokio::io::AsyncWriteExt;

/// How long a grant may take through the workflow to Active or Revoked.
const WORKFLOW: Duration = Duration::from_secs(60);
/// How long the exchange may keep serving a revoked grant before the run is declared stuck.
const CUTOFF_TIMEOUT: Duration = Duration::from_secs(30);
/// Unmeasured load before each measured lookup run (connections, caches, prepared statements).
const WARMUP: Duration = Duration::from_secs(2);
/// Padding of each row added for the download, so a gigabyte is about a million rows.
const PAD: usize = 1000;
/// Rows added per INSERT while growing the table.
const INSERT_BATCH: usize = 200_000;

#[derive(Parser, Debug)]
#[command(about = "The exchange gateway beside PostgreSQL: lookups, bulk download, revocation")]
struct Args {
    /// Rows in the households table the lookups pick random keys from.
    #[arg(long, default_value_t = 1_000_000)]
    rows: usize,
    /// Concurrent clients of the lookup runs (each one connection, sequential requests).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Worker threads of the exchange (`--worker-threads`; 0, its default: one per CPU).
    #[arg(long, default_value_t = 0)]
    exchange_threads: usize,
    /// Worker threads of the load generator, the same for the direct and the exchange clients
    /// (0: one per CPU).
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Talk to the exchange over HTTP/2 instead of HTTP/1.1 (lookups: one connection per
    /// client task either way; the download: one connection).
    #[arg(long)]
    http2: bool,
    /// Seconds of each measured lookup run.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Size of the CSV download in MiB (the table is grown with padded rows to reach it).
    #[arg(long, default_value_t = 1024)]
    download_mb: u64,
    /// Downloads of each kind (alternating, psql first); the best of each is compared.
    #[arg(long, default_value_t = 2)]
    download_runs: usize,
    /// Grants revoked while a client polls them.
    #[arg(long, default_value_t = 20)]
    revocations: usize,
    /// The gongshu build to run (`release` or `debug`).
    #[arg(long, default_value = "release")]
    profile: String,
    /// Run this program instead of the built gongshu binary (operator and exchange).
    #[arg(long)]
    operator_binary: Option<PathBuf>,
    /// Directory of the report.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    gongshu_bench::main("exchange", run(Args::parse()))
}

/// Any failure of a step that is not the harness's or the apiserver's, as text.
fn fail(what: &str) -> impl Fn(String) -> Error + '_ {
    move |e| Error::Stuck(format!("{what}: {e}"))
}

/// The cast of the run: departments, the provider's database, the exchange, a token.
struct Bench {
    sharing: Sharing,
    pg: Postgres,
    exchange: Exchange,
    token: String,
    dir: PathBuf,
}

async fn run(args: Args) -> Result<(), Error> {
    let binary = match &args.operator_binary {
        Some(b) => b.clone(),
        None => operator_binary(&args.profile)?,
    };
    let mut report = Report::new("Exchange: the gateway beside PostgreSQL");
    report.line(format!(
        "- gongshu: {} build; {} rows, {} clients for {} s, {} MiB download ({} runs each), {} revocations",
        args.profile,
        args.rows,
        args.concurrency,
        args.seconds,
        args.download_mb,
        args.download_runs,
        args.revocations
    ));
    report.line(format!(
        "- arguments: `{}`",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    ));

    let mut cluster = OwnCluster::start("bench-exchange").await?;
    gongshu_bench::apply_example_regulation(&cluster.env)?;
    let (_operator, log) = cluster.start_operator(&binary, "operator", &[]).await?;
    observe::wait_log(
        &log,
        &["registered the admission webhook"],
        Duration::from_secs(120),
    )
    .await?;
    observe::wait_log(&log, &["initial lists complete"], Duration::from_secs(120)).await?;

    let dir = std::env::temp_dir().join(format!("gongshu-bench-exchange-{}", random_suffix()));
    let bench = setup(
        &cluster,
        &binary,
        &dir,
        args.rows,
        args.exchange_threads,
        &mut report,
    )
    .await?;
    let lookups = lookups(&bench, &args, &mut report).await?;
    let revocation = revocations(&bench, args.revocations, &mut report).await?;
    let download = download(&bench, &args, &mut report).await?;

    report.line("\n## Against the targets\n");
    report.line("| measure | exchange | baseline / target | verdict |");
    report.line("|---|---|---|---|");
    let met = |ok: bool| if ok { "met" } else { "missed" };
    report.line(format!(
        "| lookup throughput | {:.0} req/s | direct {:.0} req/s: **{:.0}%** (target ≥ 50%) | {} |",
        lookups.exchange_rate,
        lookups.direct_rate,
        lookups.ratio * 100.0,
        met(lookups.ratio >= 0.5)
    ));
    report.line(format!(
        "| p99 added latency | {} ms | ≤ 2 ms | {} |",
        ms(lookups.added_p99),
        met(lookups.added_p99 <= Duration::from_millis(2))
    ));
    report.line(format!(
        "| CSV download | {:.0} MB/s | psql \\copy {:.0} MB/s: **{:.0}%** (target ≥ 80%) | {} |",
        download.exchange_rate,
        download.psql_rate,
        download.ratio * 100.0,
        met(download.ratio >= 0.8)
    ));
    report.line(format!(
        "| revocation → refused, p99 (from the watch) | {} ms | ≤ 2,000 ms | {} |",
        ms(revocation),
        met(revocation <= Duration::from_secs(2))
    ));

    let path = report.write(
        &args.out.unwrap_or_else(gongshu_bench::results_dir),
        "exchange",
    )?;
    println!("\nwritten to {}", path.display());
    drop(bench);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// PostgreSQL with `rows` households, the departments and catalog, the connection Secret, the
/// consumer's ServiceAccount and the exchange.
async fn setup(
    cluster: &OwnCluster,
    binary: &Path,
    dir: &Path,
    rows: usize,
    exchange_threads: usize,
    report: &mut Report,
) -> Result<Bench, Error> {
    report.line("\n## Setup\n");
    let started = Instant::now();
    let pg = Postgres::start(&dir.join("pg")).await?;
    pg.psql(
        "postgres",
        &format!(
            "create table households (citizen_id text primary key, name text, ethnicity text); \
             insert into households select lpad(i::text, 18, '0'), 'name-' || i, 'e-' || i \
             from generate_series(1, {rows}) i; \
             create table photos (citizen_id text primary key, photo_sha256 text)"
        ),
    )?;
    pg.psql("postgres", "vacuum analyze households")?;
    report.line(format!(
        "- PostgreSQL started, {rows} households inserted in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    let env = TestEnv::new(
        cluster.env.client.clone(),
        cluster.env.kubeconfig().to_path_buf(),
    );
    let sharing = Sharing::on(env.clone(), provider_catalog, true).await?;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "stringData": {"uri": pg.url("postgres")},
    }))
    .map_err(|e| fail("secret")(e.to_string()))?;
    Api::<Secret>::namespaced(env.client.clone(), &sharing.provider_ns)
        .create(&PostParams::default(), &secret)
        .await?;
    let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "allowance-app"}}))
        .map_err(|e| fail("service account")(e.to_string()))?;
    Api::<ServiceAccount>::namespaced(env.client.clone(), &sharing.consumer_ns)
        .create(&PostParams::default(), &sa)
        .await?;
    let threads = exchange_threads.to_string();
    let exchange = Exchange::start_with(
        binary,
        cluster.dir(),
        &dir.join("exchange"),
        &format!("audit-bench-{}", random_suffix()),
        &[("GONGSHU_EXCHANGE_WORKER_THREADS", Path::new(&threads))],
    )
    .await?;
    let out = env
        .kubectl()
        .args([
            "create",
            "token",
            "allowance-app",
            "-n",
            &sharing.consumer_ns,
        ])
        .args(["--audience", "gongshu-exchange", "--duration", "24h"])
        .output()
        .map_err(|e| fail("kubectl create token")(e.to_string()))?;
    if !out.status.success() {
        return Err(fail("kubectl create token")(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    report.line(format!(
        "- departments, catalog, exchange (audit on, log {}) ready {:.1} s after the start",
        exchange.log.display(),
        started.elapsed().as_secs_f64()
    ));
    Ok(Bench {
        sharing,
        pg,
        exchange,
        token,
        dir: dir.to_path_buf(),
    })
}

impl Bench {
    fn env(&self) -> &TestEnv {
        &self.sharing.env
    }

    fn grants(&self) -> Api<ShareGrant> {
        Api::namespaced(self.env().client.clone(), &self.sharing.consumer_ns)
    }

    fn url(&self, grant: &str, rest: &str) -> String {
        format!(
            "{}/v1/grants/{}/{grant}{rest}",
            self.exchange.url, self.sharing.consumer_ns
        )
    }

    /// Requests `households` as grant `name` and has the provider approve it; waits until
    /// Active, then until the exchange serves `probe` (its cache lags the status).
    async fn active(
        &self,
        name: &str,
        fields: &[&str],
        mode: &str,
        probe: &str,
    ) -> Result<ShareGrant, Error> {
        let grant = self.sharing.grant(name, "households", fields, mode);
        let active = self.sharing.activate(&grant, WORKFLOW).await?;
        let url = self.url(name, probe);
        let deadline = Instant::now() + WORKFLOW;
        loop {
            let status = self
                .exchange
                .http
                .get(&url)
                .bearer_auth(&self.token)
                .send()
                .await;
            if status.is_ok_and(|r| r.status() == 200) {
                return Ok(active);
            }
            if Instant::now() > deadline {
                return Err(Error::Stuck(format!("the exchange does not serve {url}")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The provider's Review deciding grant `name`.
    async fn decide(&self, name: &str, decision: &str) -> Result<(), Error> {
        Ok(self.sharing.provider_decides(name, decision).await?)
    }
}

/// The fields the provider approved for `grant`, in the approved order.
fn approved_fields(grant: ShareGrant) -> Vec<String> {
    grant
        .status
        .and_then(|s| s.approved)
        .map(|a| a.terms.fields)
        .unwrap_or_default()
}

/// The key of household `i`, as the table holds it.
fn key(i: u64) -> String {
    format!("{i:018}")
}

/// A small, fast pseudo-random sequence (splitmix64), one per client.
struct Keys(u64, u64);

impl Keys {
    fn next(&mut self) -> String {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        key(1 + (z ^ (z >> 31)) % self.1)
    }
}

/// CPU seconds of PostgreSQL: the postmaster and its children (the backends).
fn postgres_cpu(postmaster: Option<i32>) -> f64 {
    let Some(pid) = postmaster else { return 0.0 };
    let children: f64 = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .is_some_and(|s| {
                    s.rsplit_once(')')
                        .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok())
                        == Some(pid)
                })
        })
        .filter_map(cpu_seconds)
        .sum();
    children + cpu_seconds(pid).unwrap_or(0.0)
}

/// One lookup run: requests, failures and every latency.
struct Run {
    elapsed: Duration,
    failures: usize,
    latencies: Vec<Duration>,
}

/// One task per client sending lookups until `length` has passed; `lookup` answers whether the
/// record came back.
async fn load<C, F, Fut>(
    on: &tokio::runtime::Handle,
    clients: &[Arc<C>],
    rows: u64,
    length: Duration,
    lookup: F,
) -> Result<Run, Error>
where
    C: Send + Sync + 'static,
    F: Fn(Arc<C>, String) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let started = Instant::now();
    let deadline = started + length;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let tasks: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(i, client)| {
            let (lookup, client) = (lookup.clone(), client.clone());
            on.spawn(async move {
                let mut keys = Keys(seed ^ (i as u64).wrapping_mul(0x2545_f491_4f6c_dd1d), rows);
                let (mut latencies, mut failures) = (Vec::new(), 0);
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    if lookup(client.clone(), keys.next()).await {
                        latencies.push(sent.elapsed());
                    } else {
                        failures += 1;
                    }
                }
                (latencies, failures)
            })
        })
        .collect();
    let mut run = Run {
        elapsed: Duration::ZERO,
        failures: 0,
        latencies: Vec::new(),
    };
    for task in tasks {
        let (latencies, failures) = task.await.map_err(|e| fail("client task")(e.to_string()))?;
        run.latencies.extend(latencies);
        run.failures += failures;
    }
    run.elapsed = started.elapsed();
    Ok(run)
}

/// An HTTPS client of its own for one client task: HTTP/1.1 on one keep-alive connection,
/// as a consumer's pod would hold, or (`http2`) HTTP/2.
fn one_connection(ca_file: &Path, http2: bool) -> Result<reqwest::Client, Error> {
    let pem = std::fs::read(ca_file).map_err(|e| fail("CA file")(e.to_string()))?;
    let ca = reqwest::Certificate::from_pem(&pem).map_err(|e| fail("CA")(e.to_string()))?;
    let builder = reqwest::Client::builder()
        .add_root_certificate(ca)
        .tls_built_in_root_certs(false)
        .pool_max_idle_per_host(1);
    let builder = if http2 {
        builder.http2_prior_knowledge()
    } else {
        builder.http1_only()
    };
    builder
        .build()
        .map_err(|e| fail("HTTPS client")(e.to_string()))
}

/// The numbers the verdicts need from the lookups.
struct Lookups {
    direct_rate: f64,
    exchange_rate: f64,
    ratio: f64,
    added_p99: Duration,
}

/// The exchange's prepared lookup for `fields` of `households` keyed by `citizen_id`, as it
/// builds it (`sql::Table::lookup`).
fn lookup_sql(fields: &[String]) -> String {
    let columns = fields
        .iter()
        .map(|f| format!("t.\"{f}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT row_to_json(r)::text FROM (SELECT {columns} FROM \"public\".\"households\" t \
         WHERE t.\"citizen_id\" = $1::text::\"pg_catalog\".\"text\" LIMIT 1) r"
    )
}

/// The lookup runs, their clients on a runtime of their own (`--client-threads`), so that
/// both paths get the same load generator.
async fn lookups(bench: &Bench, args: &Args, report: &mut Report) -> Result<Lookups, Error> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if args.client_threads > 0 {
        builder.worker_threads(args.client_threads);
    }
    let clients = builder
        .enable_all()
        .thread_name("load")
        .build()
        .map_err(|e| fail("client runtime")(e.to_string()))?;
    let other = (args.client_threads != 0)
        .then(|| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("load-per-cpu")
                .build()
        })
        .transpose()
        .map_err(|e| fail("client runtime")(e.to_string()))?;
    let result = lookups_on(
        clients.handle(),
        other.as_ref().map(|r| r.handle()),
        bench,
        args,
        report,
    )
    .await;
    clients.shutdown_background();
    if let Some(other) = other {
        other.shutdown_background();
    }
    result
}

/// Lookups straight from PostgreSQL: one connection per client, the same prepared statement.
async fn direct(
    load_on: &tokio::runtime::Handle,
    bench: &Bench,
    args: &Args,
    sql: &str,
) -> Result<(Run, String), Error> {
    let rows = args.rows as u64;
    let length = Duration::from_secs(args.seconds);
    let postmaster = bench.pg.pid();
    let mut connections = Vec::new();
    for _ in 0..args.concurrency {
        let (client, connection) =
            tokio_postgres::connect(&bench.pg.url("postgres"), tokio_postgres::NoTls)
                .await
                .map_err(|e| fail("connect")(e.to_string()))?;
        load_on.spawn(connection);
        let statement = client
            .prepare(sql)
            .await
            .map_err(|e| fail("prepare")(e.to_string()))?;
        connections.push((client, statement));
    }
    let connections: Vec<_> = connections.into_iter().map(Arc::new).collect();
    let direct = |c: Arc<(tokio_postgres::Client, tokio_postgres::Statement)>, key: String| async move {
        c.0.query_opt(&c.1, &[&key])
            .await
            .is_ok_and(|r| r.is_some())
    };
    load(load_on, &connections, rows, WARMUP, direct).await?;
    let (pg_before, me_before) = (
        postgres_cpu(postmaster),
        cpu_seconds(std::process::id() as i32),
    );
    let run = load(load_on, &connections, rows, length, direct).await?;
    let direct_cpu = format!(
        "postgres {:.1} s, clients (this process) {:.1} s",
        postgres_cpu(postmaster) - pg_before,
        cpu_seconds(std::process::id() as i32).unwrap_or(0.0) - me_before.unwrap_or(0.0)
    );
    drop(connections);
    Ok((run, direct_cpu))
}

async fn lookups_on(
    load_on: &tokio::runtime::Handle,
    other: Option<&tokio::runtime::Handle>,
    bench: &Bench,
    args: &Args,
    report: &mut Report,
) -> Result<Lookups, Error> {
    report.line(format!(
        "\n## Keyed lookups: {} clients, random keys of {} rows, {} s each; load generator {} \
         thread(s), exchange {} worker thread(s) (0: one per CPU), HTTP/{}\n",
        args.concurrency,
        args.rows,
        args.seconds,
        args.client_threads,
        args.exchange_threads,
        if args.http2 { "2" } else { "1.1" }
    ));
    let active = bench
        .active(
            "lookups",
            &["citizen_id", "name"],
            "api",
            &format!("/records/{}", key(1)),
        )
        .await?;
    let fields = approved_fields(active);
    let sql = lookup_sql(&fields);
    let rows = args.rows as u64;
    let length = Duration::from_secs(args.seconds);
    let postmaster = bench.pg.pid();

    // Direct: on the load generator, and on one of one thread per CPU if that differs, so
    // the baseline is the better of the two.
    let mut direct_run = direct(load_on, bench, args, &sql).await?;
    let direct_other = match other {
        Some(on) => Some(direct(on, bench, args, &sql).await?),
        None => None,
    };

    // Through the exchange: one HTTPS client (a keep-alive connection per client task).
    let base = bench.url("lookups", "/records/");
    let through = |c: Arc<(reqwest::Client, String, String)>, key: String| async move {
        match c
            .0
            .get(format!("{}{key}", c.1))
            .bearer_auth(&c.2)
            .send()
            .await
        {
            Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
            Err(_) => false,
        }
    };
    let clients = (0..args.concurrency)
        .map(|_| {
            Ok(Arc::new((
                one_connection(&bench.exchange.ca_file, args.http2)?,
                base.clone(),
                bench.token.clone(),
            )))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    load(load_on, &clients, rows, WARMUP, through).await?;
    let exchange_pid = bench.exchange.process.pid();
    let pg_before = postgres_cpu(postmaster);
    let meter = CpuMeter::start(vec![
        ("exchange".to_owned(), exchange_pid),
        (
            "clients (this process)".to_owned(),
            std::process::id() as i32,
        ),
    ]);
    let mut exchange_run = load(load_on, &clients, rows, length, through).await?;
    let exchange_cpu = format!(
        "{}, postgres {:.1} s",
        meter.summary(),
        postgres_cpu(postmaster) - pg_before
    );

    report.line("| path | requests | failed | req/s | p50 ms | p99 ms | max ms | CPU |");
    report.line("|---|---|---|---|---|---|---|---|");
    let mut row = |name: &str, run: &mut Run, cpu: &str| {
        let rate = run.latencies.len() as f64 / run.elapsed.as_secs_f64();
        let p50 = percentile(&mut run.latencies, 50.0);
        let p99 = percentile(&mut run.latencies, 99.0);
        let max = percentile(&mut run.latencies, 100.0);
        report.line(format!(
            "| {name} | {} | {} | {rate:.0} | {} | {} | {} | {cpu} |",
            run.latencies.len(),
            run.failures,
            ms(p50),
            ms(p99),
            ms(max)
        ));
        (rate, p50, p99)
    };
    let (mut direct_rate, mut direct_p50, mut direct_p99) = row(
        &format!(
            "PostgreSQL direct (prepared), load generator {} thread(s)",
            args.client_threads
        ),
        &mut direct_run.0,
        &direct_run.1,
    );
    if let Some((mut run, cpu)) = direct_other {
        let (rate, p50, p99) = row(
            "PostgreSQL direct (prepared), load generator one thread per CPU",
            &mut run,
            &cpu,
        );
        // The baseline is the better direct run.
        if rate > direct_rate {
            (direct_rate, direct_p50, direct_p99) = (rate, p50, p99);
        }
    }
    let (exchange_rate, exchange_p50, exchange_p99) = row(
        "exchange (HTTPS, auth, audit)",
        &mut exchange_run,
        &exchange_cpu,
    );
    let ratio = exchange_rate / direct_rate;
    let added_p99 = exchange_p99.saturating_sub(direct_p99);
    report.line(format!(
        "\nagainst the better direct run: throughput ratio **{:.0}%**; added latency p50 {} ms, \
         p99 **{} ms**",
        ratio * 100.0,
        ms(exchange_p50.saturating_sub(direct_p50)),
        ms(added_p99)
    ));
    report.line(format!("\nthe statement both send: `{sql}`"));
    Ok(Lookups {
        direct_rate,
        exchange_rate,
        ratio,
        added_p99,
    })
}

/// The numbers the verdicts need from the downloads.
struct Download {
    psql_rate: f64,
    exchange_rate: f64,
    ratio: f64,
}

const MIB: f64 = 1024.0 * 1024.0;

async fn download(bench: &Bench, args: &Args, report: &mut Report) -> Result<Download, Error> {
    report.line(format!(
        "\n## Bulk download: about {} MiB of CSV\n",
        args.download_mb
    ));
    let started = Instant::now();
    let current: u64 = bench
        .pg
        .psql(
            "postgres",
            "select coalesce(sum(octet_length(citizen_id) + octet_length(name) + 2), 0) from households",
        )?
        .parse()
        .map_err(|e: std::num::ParseIntError| fail("table size")(e.to_string()))?;
    let target = args.download_mb * 1024 * 1024;
    let row_bytes = (18 + 1 + 5 + 8 + PAD + 1) as u64;
    let extra = target.saturating_sub(current).div_ceil(row_bytes) as usize;
    let first = args.rows + 1;
    for start in (first..first + extra).step_by(INSERT_BATCH) {
        let end = (start + INSERT_BATCH - 1).min(first + extra - 1);
        bench.pg.psql(
            "postgres",
            &format!(
                "insert into households select lpad(i::text, 18, '0'), 'bulk-' || i || repeat('x', {PAD}), null \
                 from generate_series({start}, {end}) i"
            ),
        )?;
    }
    bench.pg.psql("postgres", "vacuum analyze households")?;
    report.line(format!(
        "- {extra} rows of {PAD} bytes' padding added in {:.1} s ({} rows in all)",
        started.elapsed().as_secs_f64(),
        args.rows + extra
    ));
    let active = bench
        .active(
            "bulk",
            &["citizen_id", "name"],
            "file",
            "/download?format=csv",
        )
        .await?;
    let fields = approved_fields(active);
    let columns = fields
        .iter()
        .map(|f| format!("\"{f}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let files = bench.dir.join("downloads");
    std::fs::create_dir_all(&files).map_err(|source| Error::Io {
        path: files.display().to_string(),
        source,
    })?;
    let (psql_file, exchange_file) = (files.join("psql.csv"), files.join("exchange.csv"));
    let pid = bench.exchange.process.pid();
    let rss_before = proc_status_kib(pid, "VmRSS").unwrap_or(0);

    report.line("| run | via | bytes | seconds | MB/s | exchange peak RSS during |");
    report.line("|---|---|---|---|---|---|");
    let (mut best_psql, mut best_exchange) = (0.0_f64, 0.0_f64);
    let (mut psql_bytes, mut exchange_bytes, mut peak_rss) = (0, 0, 0);
    for run in 1..=args.download_runs {
        let started = Instant::now();
        let out = tokio::process::Command::new(bin_dir()?.join("psql"))
            .arg(bench.pg.url("postgres"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c"])
            .arg(format!(
                "\\copy (SELECT {columns} FROM households) TO '{}' WITH (FORMAT csv, HEADER true)",
                psql_file.display()
            ))
            .output()
            .await
            .map_err(|e| fail("psql")(e.to_string()))?;
        if !out.status.success() {
            return Err(fail("psql \\copy")(
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
        let elapsed = started.elapsed();
        psql_bytes = std::fs::metadata(&psql_file).map_or(0, |m| m.len());
        let rate = psql_bytes as f64 / MIB / elapsed.as_secs_f64();
        best_psql = best_psql.max(rate);
        report.line(format!(
            "| {run} | psql \\copy | {psql_bytes} | {:.2} | {rate:.0} | |",
            elapsed.as_secs_f64()
        ));

        let sampling = Arc::new(AtomicBool::new(true));
        let peak = Arc::new(AtomicU64::new(0));
        let sampler = tokio::spawn({
            let (sampling, peak) = (sampling.clone(), peak.clone());
            async move {
                while sampling.load(Ordering::Relaxed) {
                    peak.fetch_max(
                        proc_status_kib(pid, "VmRSS").unwrap_or(0),
                        Ordering::Relaxed,
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
        let started = Instant::now();
        let written = fetch_to(bench, args.http2, &exchange_file).await;
        let elapsed = started.elapsed();
        sampling.store(false, Ordering::Relaxed);
        let _ = sampler.await;
        exchange_bytes = written?;
        let run_peak = peak.load(Ordering::Relaxed);
        peak_rss = peak_rss.max(run_peak);
        let rate = exchange_bytes as f64 / MIB / elapsed.as_secs_f64();
        best_exchange = best_exchange.max(rate);
        report.line(format!(
            "| {run} | exchange | {exchange_bytes} | {:.2} | {rate:.0} | {:.0} MiB |",
            elapsed.as_secs_f64(),
            run_peak as f64 / 1024.0
        ));
    }
    let identical = same_bytes(&psql_file, &exchange_file);
    let ratio = best_exchange / best_psql;
    report.line(format!(
        "\nbest of each: exchange {best_exchange:.0} MB/s, psql {best_psql:.0} MB/s: **{:.0}%**",
        ratio * 100.0
    ));
    report.line(format!(
        "- sizes: psql {psql_bytes} bytes, exchange {exchange_bytes} bytes: {}; contents {}",
        if psql_bytes == exchange_bytes {
            "equal"
        } else {
            "DIFFERENT"
        },
        if identical {
            "byte-identical"
        } else {
            "differ (row order or content)"
        }
    ));
    report.line(format!(
        "- exchange RSS: {:.0} MiB before the downloads, peak sampled during them {:.0} MiB, VmHWM over its life {:.0} MiB",
        rss_before as f64 / 1024.0,
        peak_rss as f64 / 1024.0,
        proc_status_kib(pid, "VmHWM").unwrap_or(0) as f64 / 1024.0
    ));
    report.line("- MB/s here is MiB/s; both write the file to the same disk as the bytes arrive.");
    let _ = std::fs::remove_dir_all(&files);
    Ok(Download {
        psql_rate: best_psql,
        exchange_rate: best_exchange,
        ratio,
    })
}

/// `GET …/download?format=csv` streamed into `file` chunk by chunk; the bytes written.
async fn fetch_to(bench: &Bench, http2: bool, file: &Path) -> Result<u64, Error> {
    let response = one_connection(&bench.exchange.ca_file, http2)?
        .get(bench.url("bulk", "/download?format=csv"))
        .bearer_auth(&bench.token)
        .send()
        .await
        .map_err(|e| fail("download")(e.to_string()))?;
    if response.status() != 200 {
        return Err(fail("download")(format!("status {}", response.status())));
    }
    let io = |source| Error::Io {
        path: file.display().to_string(),
        source,
    };
    // Written in 1 MiB blocks, as psql's stdio buffers do: one hand-off to a blocking thread
    // per TLS record (16 KiB) would cost the client more than the download.
    let mut out = tokio::io::BufWriter::with_capacity(
        1 << 20,
        tokio::fs::File::create(file).await.map_err(io)?,
    );
    let mut body = response.bytes_stream();
    let mut written = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| fail("download body")(e.to_string()))?;
        out.write_all(&chunk).await.map_err(io)?;
        written += chunk.len() as u64;
    }
    out.flush().await.map_err(io)?;
    Ok(written)
}

/// Whether two files hold the same bytes.
fn same_bytes(a: &Path, b: &Path) -> bool {
    use std::io::Read;
    let (Ok(mut a), Ok(mut b)) = (std::fs::File::open(a), std::fs::File::open(b)) else {
        return false;
    };
    let (mut x, mut y) = (vec![0; 1 << 20], vec![0; 1 << 20]);
    loop {
        let (Ok(n), Ok(m)) = (read_full(&mut a, &mut x), read_full(&mut b, &mut y)) else {
            return false;
        };
        if n != m || x[..n] != y[..m] {
            return false;
        }
        if n == 0 {
            return true;
        }
    }

    fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            match f.read(&mut buf[n..])? {
                0 => break,
                k => n += k,
            }
        }
        Ok(n)
    }
}

/// Revokes `count` Active grants while a client polls each; returns the p99 from the watch's
/// Revoked to the first refusal.
async fn revocations(bench: &Bench, count: usize, report: &mut Report) -> Result<Duration, Error> {
    report.line(format!(
        "\n## Revocation: {count} grants, each polled while the provider revokes it\n"
    ));
    let names: Vec<String> = (0..count).map(|i| format!("revoke-{i:03}")).collect();
    let probe = format!("/records/{}", key(1));
    let started = Instant::now();
    stream::iter(&names)
        .map(|name| bench.active(name, &["citizen_id", "name"], "api", &probe))
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await?;
    report.line(format!(
        "- {count} grants Active and served in {:.1} s",
        started.elapsed().as_secs_f64()
    ));

    // The moment this process's watch first sees each grant Revoked.
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let watch = tokio::spawn({
        let (seen, api) = (seen.clone(), bench.grants());
        async move {
            let stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .applied_objects();
            futures::pin_mut!(stream);
            while let Some(Ok(g)) = stream.next().await {
                if g.status.as_ref().and_then(|s| s.phase) == Some(GrantPhase::Revoked)
                    && let Ok(mut seen) = seen.lock()
                {
                    seen.entry(g.name_any()).or_insert_with(Instant::now);
                }
            }
        }
    });

    let (mut from_watch, mut from_review) = (Vec::new(), Vec::new());
    let (mut early, mut statuses) = (0, HashMap::<u16, usize>::new());
    for name in &names {
        let url = bench.url(name, &probe);
        let poller = tokio::spawn({
            let (http, token) = (bench.exchange.http.clone(), bench.token.clone());
            async move {
                let deadline = Instant::now() + WORKFLOW + CUTOFF_TIMEOUT;
                while Instant::now() < deadline {
                    if let Ok(r) = http.get(&url).bearer_auth(&token).send().await {
                        let status = r.status().as_u16();
                        let at = Instant::now();
                        let _ = r.bytes().await;
                        if status != 200 {
                            return Some((at, status));
                        }
                    }
                }
                None
            }
        });
        let review = Instant::now();
        bench.decide(name, "revoke").await?;
        let Some((refused, status)) = poller.await.map_err(|e| fail("poller")(e.to_string()))?
        else {
            return Err(Error::Stuck(format!(
                "{name} still served after revocation"
            )));
        };
        *statuses.entry(status).or_default() += 1;
        let deadline = Instant::now() + WORKFLOW;
        let revoked = loop {
            if let Some(at) = seen.lock().ok().and_then(|s| s.get(name).copied()) {
                break at;
            }
            if Instant::now() > deadline {
                return Err(Error::Stuck(format!("the watch never saw {name} Revoked")));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        if refused < revoked {
            early += 1;
        }
        from_watch.push(refused.saturating_duration_since(revoked));
        from_review.push(refused.duration_since(review));
    }
    watch.abort();

    report.line("| from | to | p50 ms | p99 ms | max ms |");
    report.line("|---|---|---|---|---|");
    let p99 = percentile(&mut from_watch, 99.0);
    report.line(format!(
        "| status Revoked seen by a watch | first refusal | {} | {} | {} |",
        ms(percentile(&mut from_watch, 50.0)),
        ms(p99),
        ms(percentile(&mut from_watch, 100.0))
    ));
    report.line(format!(
        "| revoke Review sent | first refusal | {} | {} | {} |",
        ms(percentile(&mut from_review, 50.0)),
        ms(percentile(&mut from_review, 99.0)),
        ms(percentile(&mut from_review, 100.0))
    ));
    let mut statuses: Vec<_> = statuses.into_iter().collect();
    statuses.sort_unstable();
    report.line(format!(
        "\n- first refusals by status: {statuses:?}; {early} of {count} came before this process's watch saw Revoked (counted as 0 ms)"
    ));
    report.line(
        "- the second row includes the webhook, the operator's reconcile and status write, and the exchange's watch",
    );
    Ok(p99)
}
