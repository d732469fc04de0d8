//! `cargo xtask test`: every check and test, the end-to-end suite against a fresh control
//! plane with the operator running as a local process.

use std::{process::Command, time::{Duration, Instant}};

use gongshu_e2e::{controlplane::ControlPlane, harness::KUBECONFIG_ENV, process::Process, upstream};

use crate::{Result, cargo, repo, run, target_dir};

pub async fn run_all(lint: bool) -> Result {
    let started = Instant::now();
    if lint {
        run(cargo().args(["fmt", "--all", "--", "--check"]))?;
        run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    }
    // Build everything first so the operator binary exists and test compile time does not eat
    // into the control plane's life.
    run(cargo().args(["build", "--workspace", "--all-targets"]))?;
    let bins = upstream::ensure_built(&repo())?;

    let dir = target_dir().join("e2e").join("cluster");
    let plane = ControlPlane::start(&dir, &bins, gongshu_e2e::controlplane::DEFAULT_READY_TIMEOUT).await?;
    eprintln!("e2e control plane ready at {} ({:.1?} since start)", plane.server(), started.elapsed());
    let kubectl = |args: &[&str]| {
        let mut cmd = Command::new(&bins.kubectl);
        cmd.env("KUBECONFIG", plane.kubeconfig()).args(args);
        cmd
    };
    run(kubectl(&["apply", "--server-side", "-f", &repo().join("crds").display().to_string()]).arg("--field-manager=gongshu-xtask"))?;
    run(&mut kubectl(&["wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"]))?;

    let log = dir.join("logs").join("operator.log");
    let operator = Process::spawn(
        "gongshu-operator",
        Command::new(target_dir().join("debug").join("gongshu"))
            .arg("operator")
            .env("KUBECONFIG", plane.kubeconfig())
            .env("RUST_LOG", "info,gongshu=debug,kube=warn")
            .env("GONGSHU_ADMIN_ADDR", "127.0.0.1:0"),
        &log,
    )?;

    let tests = cargo()
        .args(["test", "--workspace", "--no-fail-fast"])
        .env(KUBECONFIG_ENV, plane.kubeconfig())
        .env("GONGSHU_E2E_OPERATOR_LOG", &log)
        .status();
    let graceful = operator.stop(Duration::from_secs(15));
    drop(plane);
    let tests = tests?;
    if !graceful {
        eprintln!("the operator did not shut down gracefully on SIGTERM; log: {}", log.display());
    }
    if !tests.success() {
        eprintln!("operator log: {}", log.display());
        return Err("tests failed".into());
    }
    if !graceful {
        return Err("operator did not exit 0 within 15 s of SIGTERM".into());
    }
    eprintln!("all checks passed in {:.0?}", started.elapsed());
    Ok(())
}
