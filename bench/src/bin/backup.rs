//! Backups beside restic (issue #6, item 9), in one run on one machine: the same mixed dataset
//! (a PostgreSQL table and CSV files) backed up by `gongshu backup run` to a local directory
//! and an S3 server at once, and by restic to a local repository and to a repository on the
//! same S3 server; then restored by both from the local copy. Prints throughput, compression
//! and gongshu's peak memory.
//!
//! Run with `cargo xtask bench backup` (it builds the release binary first). The report is
//! printed and written to `bench/results/backup-<date>.md`.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
    time::{Duration, Instant},
};

use clap::Parser;
use gongshu_bench::{Error, Report, cpu_seconds, proc_status_kib};
use gongshu_e2e::{
    cluster::{OwnCluster, operator_binary},
    harness::{age_keygen, random_suffix},
    postgres::{Postgres, bin_dir},
    s3::S3Server,
};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, api::PostParams};
use serde_json::json;

const MIB: f64 = 1024.0 * 1024.0;

#[derive(Parser, Debug)]
#[command(about = "gongshu backups beside restic: the same dataset to the same disk and S3 server")]
struct Args {
    /// Approximate size of the PostgreSQL table, in MiB (as `COPY` text).
    #[arg(long, default_value_t = 600)]
    pg_mb: u64,
    /// Size of the CSV files, in MiB.
    #[arg(long, default_value_t = 424)]
    files_mb: u64,
    /// zstd worker threads of the gongshu run (restic compresses on every core).
    #[arg(long, default_value_t = 2)]
    zstd_workers: u32,
    /// The gongshu build to run (`release` or `debug`).
    #[arg(long, default_value = "release")]
    profile: String,
    /// Directory of the report.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    gongshu_bench::main("backup", run(Args::parse()))
}

/// A finished measured command.
struct Measured {
    seconds: f64,
    peak_rss_kib: Option<u64>,
    cpu: Option<f64>,
}

/// Runs `cmd` (stdout to `stdout` if given), sampling its peak RSS and CPU until it exits.
async fn measure(mut cmd: Command, what: &str) -> Result<Measured, Error> {
    let started = Instant::now();
    let mut child = cmd
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Error::Stuck(format!("{what}: {e}")))?;
    let pid = child.id() as i32;
    let (mut peak, mut cpu) = (None, None);
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| Error::Stuck(format!("{what}: {e}")))?
        {
            break status;
        }
        peak = proc_status_kib(pid, "VmHWM").or(peak);
        cpu = cpu_seconds(pid).or(cpu);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    if !status.success() {
        return Err(Error::Stuck(format!("{what} failed: {status}")));
    }
    Ok(Measured {
        seconds: started.elapsed().as_secs_f64(),
        peak_rss_kib: peak,
        cpu,
    })
}

/// `sh -c script` with `env`.
fn shell(script: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn du(path: &Path) -> u64 {
    fn walk(path: &Path) -> u64 {
        std::fs::read_dir(path)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| {
                let p = e.path();
                if p.is_dir() {
                    walk(&p)
                } else {
                    e.metadata().map(|m| m.len()).unwrap_or(0)
                }
            })
            .sum()
    }
    walk(path)
}

/// CSV files of about `mib` MiB: registry-like rows (ids, names, dates, codes, amounts).
fn write_csv(dir: &Path, mib: u64) -> Result<u64, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Stuck(e.to_string()))?;
    let target = mib * 1024 * 1024;
    let (mut written, mut file_no, mut row) = (0u64, 0, 0u64);
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    while written < target {
        let path = dir.join(format!("registry-{file_no:03}.csv"));
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(&path).map_err(|e| Error::Stuck(e.to_string()))?,
        );
        let mut size = 0u64;
        let header = "id,citizen_id,name,district,registered_on,licence,amount\n";
        out.write_all(header.as_bytes())
            .map_err(|e| Error::Stuck(e.to_string()))?;
        while size < 64 * 1024 * 1024 && written + size < target {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
            let line = format!(
                "{row},{:018},name-{},district-{},2026-{:02}-{:02},{:08X},{}.{:02}\n",
                r % 1_000_000_000_000_000_000,
                r % 100_000,
                r % 97,
                r % 12 + 1,
                r % 28 + 1,
                r as u32,
                r % 100_000,
                r % 100
            );
            out.write_all(line.as_bytes())
                .map_err(|e| Error::Stuck(e.to_string()))?;
            size += line.len() as u64;
            row += 1;
        }
        out.flush().map_err(|e| Error::Stuck(e.to_string()))?;
        written += size + header.len() as u64;
        file_no += 1;
    }
    Ok(written)
}

fn mbps(bytes: u64, seconds: f64) -> String {
    format!("{:.0}", bytes as f64 / MIB / seconds.max(0.001))
}

fn rss(m: &Measured) -> String {
    m.peak_rss_kib
        .map_or_else(|| "?".into(), |k| format!("{} MiB", k / 1024))
}

async fn run(args: Args) -> Result<(), Error> {
    let binary = operator_binary(&args.profile)?;
    let mut report = Report::new("Backups: gongshu beside restic");
    report.line(format!(
        "- gongshu: {} build, zstd level 3 with {} worker thread(s); restic {}, repository v2 (zstd, `--compression auto`)",
        args.profile,
        args.zstd_workers,
        String::from_utf8_lossy(&Command::new("restic").arg("version").output().map_err(|e| Error::Stuck(format!("restic (Debian package): {e}")))?.stdout).trim()
    ));
    report.line(format!(
        "- dataset: a PostgreSQL table of about {} MiB and {} MiB of CSV files",
        args.pg_mb, args.files_mb
    ));

    let dir = std::env::temp_dir().join(format!("gongshu-bench-backup-{}", random_suffix()));
    let cluster = OwnCluster::start("bench-backup").await?;
    let pg = Postgres::start(&dir.join("pg")).await?;
    let s3 = S3Server::start_in(&dir.join("s3")).await?;
    let started = Instant::now();
    // Rows of about 150 bytes as COPY text.
    let rows = args.pg_mb * 1024 * 1024 / 150;
    pg.psql(
        "postgres",
        &format!(
            "create table residents (id bigint primary key, citizen_id text, name text, \
             district text, born date, address text, note text); \
             insert into residents select i, lpad((i::bigint * 7919 % 1000000000000)::text, 18, '0'), \
             'name-' || (i % 50000), 'district-' || (i % 97), date '1940-01-01' + (i % 30000), \
             md5(i::text), case when i % 3 = 0 then null else 'note ' || md5((i * 3)::text) end \
             from generate_series(1, {rows}) i"
        ),
    )?;
    pg.psql("postgres", "create database restored_gongshu")?;
    pg.psql("postgres", "create database restored_restic")?;
    let files = dir.join("data/files");
    let files_bytes = write_csv(&files, args.files_mb)?;
    report.line(format!(
        "- setup: {rows} rows and {} MiB of CSV in {:.0} s",
        files_bytes / 1024 / 1024,
        started.elapsed().as_secs_f64()
    ));

    // The policy the gongshu run reads.
    let env = &cluster.env;
    let (ns, _) = env.department("bench").await?;
    for (bucket, _) in [("gongshu", ()), ("restic", ())] {
        s3.create_bucket(bucket).await?;
    }
    let identity_file = dir.join("key.txt");
    let recipient = age_keygen(&identity_file)?;
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &ns);
    for (name, data) in [
        ("db", json!({"uri": pg.url("postgres")})),
        (
            "s3",
            json!({"accessKeyId": s3.access_key(), "secretAccessKey": s3.secret_key()}),
        ),
    ] {
        let secret: Secret =
            serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data}))
                .map_err(|e| Error::Stuck(e.to_string()))?;
        secrets.create(&PostParams::default(), &secret).await?;
    }
    let local = dir.join("local");
    let policy = json!({
        "apiVersion": "gongshu.io/v1alpha1", "kind": "BackupPolicy",
        "metadata": {"name": "bench", "namespace": ns},
        "spec": {
            "schedule": "0 2 * * *", "rpo": "26h",
            "sources": [
                {"name": "db", "postgres": {"connectionSecretRef": {"name": "db", "key": "uri"}}},
                {"name": "files", "path": files.to_string_lossy()},
            ],
            "encryption": {"recipients": [recipient]},
            "destinations": {
                "local": {"path": local.to_string_lossy()},
                "offsite": {"endpoint": s3.endpoint(), "bucket": "gongshu", "credentialsSecret": "s3"},
            },
        }
    });
    let api: Api<gongshu_api::v1alpha1::BackupPolicy> = Api::namespaced(env.client.clone(), &ns);
    api.create(
        &PostParams::default(),
        &serde_json::from_value(policy).map_err(|e| Error::Stuck(e.to_string()))?,
    )
    .await?;

    // restic's repositories and environment.
    let password = "bench-password";
    let restic_local = dir.join("restic-local");
    let restic_s3 = format!("s3:{}/restic", s3.endpoint());
    let restic_env = |repo: &str| {
        vec![
            ("RESTIC_REPOSITORY".to_owned(), repo.to_owned()),
            ("RESTIC_PASSWORD".to_owned(), password.to_owned()),
            ("AWS_ACCESS_KEY_ID".to_owned(), s3.access_key().to_owned()),
            (
                "AWS_SECRET_ACCESS_KEY".to_owned(),
                s3.secret_key().to_owned(),
            ),
            (
                "RESTIC_CACHE_DIR".to_owned(),
                dir.join("restic-cache").to_string_lossy().into_owned(),
            ),
        ]
    };
    let restic_local_repo = restic_local.to_string_lossy().into_owned();
    for repo in [&restic_local_repo, &restic_s3] {
        let env = restic_env(repo);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        measure(
            shell("restic init --repository-version 2 -q", &env),
            "restic init",
        )
        .await?;
    }
    let pg_dump = bin_dir()?.join("pg_dump");
    let psql = bin_dir()?.join("psql");

    report.line("\n## Backup: the dataset to a local directory and the S3 server\n");
    report.line("| tool | what | seconds | source MiB/s | stored MiB | ratio | peak RSS | CPU s |");
    report.line("|---|---|---|---|---|---|---|---|");
    let mut gongshu = Command::new(&binary);
    gongshu
        .args(["backup", "run", "--namespace", &ns, "--policy", "bench"])
        .args(["--zstd-workers", &args.zstd_workers.to_string()])
        .arg("--local-root")
        .arg(std::env::temp_dir())
        .env("KUBECONFIG", env.kubeconfig())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    let g = measure(gongshu, "gongshu backup run").await?;
    let status = api.get("bench").await?.status.unwrap_or_default();
    let last = status
        .last_backup
        .ok_or_else(|| Error::Stuck("the gongshu run recorded no backup".into()))?;
    let source = u64::try_from(last.source_bytes).unwrap_or(0);
    let stored_local = du(&local);
    report.line(format!(
        "| gongshu | one run, local + S3 at once | {:.1} | {} | {:.0} (each) | {:.2} | {} | {:.1} |",
        g.seconds,
        mbps(source, g.seconds),
        stored_local as f64 / MIB,
        source as f64 / stored_local.max(1) as f64,
        rss(&g),
        g.cpu.unwrap_or(0.0)
    ));
    let mut restic_total = 0.0;
    let mut restic_stored = Vec::new();
    for (label, repo) in [("local", &restic_local_repo), ("S3", &restic_s3)] {
        let env = restic_env(repo);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let dump = measure(
            shell(
                &format!(
                    "{} '{}' | restic backup -q --stdin --stdin-filename db.sql",
                    pg_dump.display(),
                    pg.url("postgres")
                ),
                &env,
            ),
            "pg_dump | restic",
        )
        .await?;
        let files_run = measure(
            shell(&format!("restic backup -q '{}'", files.display()), &env),
            "restic backup",
        )
        .await?;
        let seconds = dump.seconds + files_run.seconds;
        restic_total += seconds;
        let stored = if label == "local" {
            du(&restic_local)
        } else {
            du(&s3.buckets_dir().join("restic"))
        };
        restic_stored.push(stored);
        report.line(format!(
            "| restic | pg_dump \\| restic --stdin, then the files, to {label} | {:.1} | {} | {:.0} | {:.2} | – | – |",
            seconds,
            mbps(source, seconds),
            stored as f64 / MIB,
            source as f64 / stored.max(1) as f64,
        ));
    }
    report.line(format!(
        "\nto both destinations: gongshu {:.1} s ({} MiB/s), restic {:.1} s ({} MiB/s): **{:.0}%** of restic's time",
        g.seconds,
        mbps(source, g.seconds),
        restic_total,
        mbps(source, restic_total),
        g.seconds / restic_total * 100.0
    ));

    report.line("\n## Restore from the local copy\n");
    report.line("| tool | into | seconds | MiB/s | peak RSS |");
    report.line("|---|---|---|---|---|");
    let mut restore = Command::new(&binary);
    restore
        .args(["backup", "restore", "--namespace", &ns, "--policy", "bench"])
        .arg("--dir")
        .arg(&local)
        .arg("--identity-file")
        .arg(&identity_file)
        .args(["--postgres", &pg.url("restored_gongshu")])
        .arg("--directory")
        .arg(dir.join("restored-gongshu"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    let gr = measure(restore, "gongshu backup restore").await?;
    report.line(format!(
        "| gongshu | PostgreSQL (COPY) + directory | {:.1} | {} | {} |",
        gr.seconds,
        mbps(source, gr.seconds),
        rss(&gr)
    ));
    let env_local = restic_env(&restic_local_repo);
    let env_local: Vec<(&str, &str)> = env_local
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let rr_files = measure(
        shell(
            &format!(
                "restic restore latest --path '{}' --target '{}' -q",
                files.display(),
                dir.join("restored-restic").display()
            ),
            &env_local,
        ),
        "restic restore",
    )
    .await?;
    let rr_db = measure(
        shell(
            &format!(
                "restic dump --path /db.sql latest /db.sql | {} -q -X '{}' > /dev/null",
                psql.display(),
                pg.url("restored_restic")
            ),
            &env_local,
        ),
        "restic dump | psql",
    )
    .await?;
    let rr = rr_files.seconds + rr_db.seconds;
    report.line(format!(
        "| restic | restic dump \\| psql + restic restore | {:.1} | {} | – |",
        rr,
        mbps(source, rr),
    ));
    let counts = |db: &str| {
        pg.psql(db, "select count(*) from residents")
            .unwrap_or_default()
    };
    report.line(format!(
        "\nrows restored: gongshu {}, restic {}, source {}; restore time gongshu/restic **{:.0}%**",
        counts("restored_gongshu"),
        counts("restored_restic"),
        counts("postgres"),
        gr.seconds / rr * 100.0
    ));

    report.line("\n## Against the targets\n");
    report.line("| measure | gongshu | restic | target | verdict |");
    report.line("|---|---|---|---|---|");
    let verdict = |ok: bool| if ok { "met" } else { "missed" };
    report.line(format!(
        "| backup throughput (both destinations) | {} MiB/s | {} MiB/s | ≥ restic | {} |",
        mbps(source, g.seconds),
        mbps(source, restic_total),
        verdict(g.seconds <= restic_total)
    ));
    let restic_ratio = source as f64 / restic_stored.first().copied().unwrap_or(1).max(1) as f64;
    let gongshu_ratio = source as f64 / stored_local.max(1) as f64;
    report.line(format!(
        "| compression ratio | {gongshu_ratio:.2} | {restic_ratio:.2} | comparable | {} |",
        verdict(gongshu_ratio >= restic_ratio * 0.8)
    ));
    report.line(format!(
        "| restore throughput | {} MiB/s | {} MiB/s | ≥ restic | {} |",
        mbps(source, gr.seconds),
        mbps(source, rr),
        verdict(gr.seconds <= rr)
    ));
    let peak = g.peak_rss_kib.max(gr.peak_rss_kib).unwrap_or(0) / 1024;
    report.line(format!(
        "| peak RSS (backup, restore) | {peak} MiB | | ≤ 200 MiB | {} |",
        verdict(peak <= 200)
    ));
    report.line(
        "\nMiB/s counts the source bytes (COPY text of the table plus the files) over wall time. \
         gongshu writes both destinations in one pass; restic needs one run per repository. \
         restic's ratio is its local repository's size; its deduplication finds little in this \
         data. restic runs under `sh -c` (piped from pg_dump), so its memory and CPU are not \
         sampled (–); gongshu's are its own process's.",
    );
    let out = args.out.unwrap_or_else(gongshu_bench::results_dir);
    let file = report.write(&out, "backup")?;
    println!("\nreport written to {}", file.display());
    drop(cluster);
    Ok(())
}
