//! `cargo xtask demo`: the local control plane, the CRDs, the operator (a local process, as
//! no node runs pods here), the exchange with a PostgreSQL holding the examples' data, an S3
//! server for the example backups, and the examples, then what `kubectl get` shows of them.

use std::{process::Command, time::Duration};

use gongshu_e2e::{process, upstream};

use crate::{Result, cargo, cluster_dir, cluster_up, repo, run, target_dir};

const OPERATOR_PIDS: &str = "operator.pid";

pub async fn up() -> Result {
    let kubeconfig = cluster_up().await?;
    let bins = upstream::binaries();
    let kubectl = |args: &[&str]| {
        let mut cmd = Command::new(&bins.kubectl);
        cmd.env("KUBECONFIG", &kubeconfig).args(args);
        cmd
    };
    let repo = repo();
    gongshu_e2e::operator::install(&bins.kubectl, &kubeconfig, &repo)?;
    let pids = cluster_dir().join(OPERATOR_PIDS);
    if process::all_alive(&pids) {
        eprintln!("operator, exchange and PostgreSQL already running");
    } else {
        run(cargo().args(["build", "--quiet", "-p", "gongshu"]))?;
        let binary = target_dir().join("debug").join("gongshu");
        // The public security department's database, as the catalog's Secret names it.
        let pg = gongshu_e2e::postgres::Postgres::start(&cluster_dir().join("postgres")).await?;
        let population = std::fs::read_to_string(repo.join("examples/data/population.sql"))?;
        pg.psql("postgres", &population)?;
        run(kubectl(&["create", "namespace", "dept-public-security"])
            .stderr(std::process::Stdio::null()))
        .ok();
        let secret = format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: population-db, namespace: dept-public-security}}\nstringData: {{uri: \"{}\"}}\n",
            pg.url("postgres")
        );
        let secret_file = cluster_dir().join("population-db.yaml");
        std::fs::write(&secret_file, secret)?;
        run(kubectl(&["apply", "-f"]).arg(&secret_file))?;
        // The off-site S3 server of examples/40-backup.yaml, its credentials, and the drill's
        // identity (the demo key in examples/backup/).
        let s3 = gongshu_e2e::s3::S3Server::start_at(&cluster_dir().join("s3"), 9000, None)
            .await
            .map_err(|e| format!("cannot start the demo's S3 server on 127.0.0.1:9000: {e}"))?;
        s3.create_bucket("gongshu-offsite").await?;
        let identity = std::fs::read_to_string(repo.join("examples/backup/demo-identity.txt"))?;
        let backup_secrets = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Secret",
             "metadata": {"name": "offsite-s3", "namespace": "dept-public-security"},
             "stringData": {"accessKeyId": s3.access_key(), "secretAccessKey": s3.secret_key()}},
            {"apiVersion": "v1", "kind": "Secret",
             "metadata": {"name": "backup-drill", "namespace": "dept-public-security"},
             "stringData": {"identity": identity}},
        ]});
        let secret_file = cluster_dir().join("backup-secrets.json");
        std::fs::write(&secret_file, backup_secrets.to_string())?;
        run(kubectl(&["apply", "-f"]).arg(&secret_file))?;
        // The exchange, with file sources read from examples/ (`/data/x.csv` is
        // `examples/data/x.csv`).
        let exchange = gongshu_e2e::exchange::Exchange::start_with(
            &binary,
            &cluster_dir(),
            &cluster_dir().join("exchange"),
            "gongshu-audit-checkpoint",
            &[("GONGSHU_FILE_ROOT", &repo.join("examples"))],
        )
        .await?;
        let exchange_url = exchange.url.clone();
        eprintln!(
            "exchange listening at {exchange_url} (log: {})",
            exchange.log.display()
        );
        let log = cluster_dir().join("logs").join("operator.log");
        let mut operator = gongshu_e2e::operator::start(
            &binary,
            &cluster_dir(),
            &log,
            &[
                ("GONGSHU_EXCHANGE_URL", exchange_url.as_str()),
                // examples/40-backup.yaml keeps its local copy in /tmp/gongshu-demo-backups.
                ("GONGSHU_BACKUP_LOCAL_ROOT", "/tmp"),
                // Backup runners read `path` sources under examples/, as the exchange does.
                (
                    "GONGSHU_BACKUP_FILE_ROOT",
                    &repo.join("examples").to_string_lossy(),
                ),
            ],
        )
        .await?;
        std::thread::sleep(Duration::from_secs(1));
        operator.check_alive()?;
        run(&mut kubectl(&[
            "wait",
            "--for=create",
            "validatingwebhookconfiguration/gongshu",
            "--timeout=60s",
        ]))?;
        let mut running = vec![(operator.pid(), "gongshu-operator")];
        running.push((exchange.detach(), "gongshu-exchange"));
        if let Some(pid) = pg.detach() {
            running.push((pid, "postgres"));
        }
        if let Some(pid) = s3.detach() {
            running.push((pid, "versitygw"));
        }
        process::write_pid_file(&pids, &running)?;
        std::fs::write(cluster_dir().join("exchange.url"), &exchange_url)?;
        eprintln!("operator started (log: {})", log.display());
    }

    run(kubectl(&["apply", "-f"]).arg(repo.join("examples")))?;
    run(&mut kubectl(&[
        "wait",
        "--for=condition=Ready",
        "regulation/default",
        "--timeout=60s",
    ]))?;
    for ns in ["dept-public-security", "dept-market-regulation"] {
        run(&mut kubectl(&[
            "wait",
            "--for=condition=Ready",
            "datacatalog",
            "--all",
            "-n",
            ns,
            "--timeout=60s",
        ]))?;
    }
    println!();
    run(&mut kubectl(&[
        "get",
        "regulations,datacatalogs,backuppolicies",
        "-A",
    ]))?;
    println!();
    println!("The demo is running. Use it with:");
    crate::print_env();
    if let Ok(url) = std::fs::read_to_string(cluster_dir().join("exchange.url")) {
        println!(
            "The exchange serves active grants at {url} (CA: {}).",
            cluster_dir().join("pki").join("ca.crt").display()
        );
    }
    println!("Stop it with: cargo xtask demo down");
    Ok(())
}

pub fn down() -> Result {
    process::stop_pid_file(&cluster_dir().join(OPERATOR_PIDS), Duration::from_secs(15))?;
    crate::cluster_down()
}
