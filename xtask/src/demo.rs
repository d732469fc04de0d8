//! `cargo xtask demo`: the local control plane, the CRDs, the operator (a local process, as
//! no node runs pods here) and the examples, then what `kubectl get` shows of them.

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
        eprintln!("operator already running");
    } else {
        run(cargo().args(["build", "--quiet", "-p", "gongshu"]))?;
        let log = cluster_dir().join("logs").join("operator.log");
        let mut operator = gongshu_e2e::operator::start(
            &target_dir().join("debug").join("gongshu"),
            &cluster_dir(),
            &log,
            &[],
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
        process::write_pid_file(&pids, &[(operator.pid(), "gongshu-operator")])?;
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
    run(&mut kubectl(&["get", "regulations,datacatalogs", "-A"]))?;
    println!();
    println!("The demo is running. Use it with:");
    crate::print_env();
    println!("Stop it with: cargo xtask demo down");
    Ok(())
}

pub fn down() -> Result {
    process::stop_pid_file(&cluster_dir().join(OPERATOR_PIDS), Duration::from_secs(15))?;
    crate::cluster_down()
}
