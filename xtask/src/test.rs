//! `cargo xtask test`: every check and test, the end-to-end suite against a fresh control
//! plane with the operator running as a local process.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use gongshu_e2e::{controlplane::ControlPlane, harness::KUBECONFIG_ENV, upstream};

use crate::{Result, cargo, repo, run, target_dir};

pub async fn run_all(lint: bool, cargo_args: &[String]) -> Result {
    let started = Instant::now();
    if lint {
        run(cargo().args(["fmt", "--all", "--", "--check"]))?;
        run(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))?;
    }
    // Build everything first so the operator binary exists and test compile time does not eat
    // into the control plane's life.
    run(cargo().args(["build", "--workspace", "--all-targets"]))?;
    let bins = upstream::ensure_built(&repo())?;

    let dir = target_dir().join("e2e").join("cluster");
    let plane = ControlPlane::start(
        &dir,
        &bins,
        gongshu_e2e::controlplane::DEFAULT_READY_TIMEOUT,
    )
    .await?;
    eprintln!(
        "e2e control plane ready at {} ({:.1?} since start)",
        plane.server(),
        started.elapsed()
    );
    let kubectl = |args: &[&str]| {
        let mut cmd = Command::new(&bins.kubectl);
        cmd.env("KUBECONFIG", plane.kubeconfig()).args(args);
        cmd
    };
    gongshu_e2e::operator::install(&bins.kubectl, plane.kubeconfig(), &repo())?;
    let log = dir.join("logs").join("operator.log");
    // Backup runs (e2e/tests/backup.rs): faults are noticed and retried in seconds, and the
    // suites' local destinations are temporary directories.
    let backup_env = gongshu_e2e::backup::operator_env();
    let mut env = vec![("RUST_LOG", "info,gongshu=debug,kube=warn")];
    env.extend(backup_env.iter().map(|(k, v)| (*k, v.as_str())));
    let operator = gongshu_e2e::operator::start(
        &target_dir().join("debug").join("gongshu"),
        &dir,
        &log,
        &env,
    )
    .await?;
    // The webhook must be registered before the suites create objects.
    run(&mut kubectl(&[
        "wait",
        "--for=create",
        "validatingwebhookconfiguration/gongshu",
        "--timeout=60s",
    ]))?;

    let tests = run_counted(
        cargo()
            .args(["test", "--workspace", "--no-fail-fast"])
            .args(cargo_args)
            .env(KUBECONFIG_ENV, plane.kubeconfig())
            .env("GONGSHU_E2E_OPERATOR_LOG", &log),
    );
    let graceful = operator.stop(Duration::from_secs(15));
    drop(plane);
    let (tests, passed, failed) = tests?;
    // One closing line for the whole suite: cargo's last summary is often a crate's empty
    // doc-test run, which says nothing about the rest.
    println!("tests: {passed} passed, {failed} failed");
    if !graceful {
        eprintln!(
            "the operator did not shut down gracefully on SIGTERM; log: {}",
            log.display()
        );
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

/// Runs `cargo test`, echoing its output, and adds up the passed and failed counts of every
/// `test result:` line.
fn run_counted(cmd: &mut Command) -> Result<(std::process::ExitStatus, u64, u64)> {
    use std::io::{BufRead, BufReader};
    let mut child = cmd.stdout(std::process::Stdio::piped()).spawn()?;
    let (mut passed, mut failed) = (0, 0);
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let line = line?;
            println!("{line}");
            if let Some((p, f)) = summary_counts(&line) {
                passed += p;
                failed += f;
            }
        }
    }
    Ok((child.wait()?, passed, failed))
}

/// `test result: ok. 4 passed; 1 failed; 0 ignored; ...` → `(4, 1)`.
fn summary_counts(line: &str) -> Option<(u64, u64)> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let count = |word: &str| {
        rest.split(';')
            .find_map(|part| {
                part.trim()
                    .trim_start_matches(|c: char| !c.is_ascii_digit())
                    .strip_suffix(word)
            })
            .and_then(|n| n.trim().parse::<u64>().ok())
    };
    Some((count("passed")?, count("failed")?))
}

#[cfg(test)]
mod tests {
    use super::summary_counts;

    #[test]
    fn summary_lines_are_counted() {
        assert_eq!(
            summary_counts(
                "test result: ok. 154 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.22s"
            ),
            Some((154, 0))
        );
        assert_eq!(
            summary_counts(
                "test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out"
            ),
            Some((3, 2))
        );
        assert_eq!(summary_counts("running 4 tests"), None);
    }
}
