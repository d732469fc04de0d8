//! `cargo xtask`: the one way to build, test and demo gongshu, used by the README, `.ci/run`
//! and developers alike.

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    time::Instant,
};

use clap::{Parser, Subcommand};
use gongshu_e2e::{controlplane, upstream};

mod demo;
mod test;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "gongshu's task runner")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build etcd, kube-apiserver, kube-controller-manager, kubectl and the S3 server
    /// (versitygw) from their Go modules, and download the Gateway API CRDs' module (once;
    /// cached).
    Upstream,
    /// The local control plane in `.gongshu/cluster`.
    Cluster {
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// Regenerate `crds/` from the Rust types.
    Crd,
    /// Bring up the control plane, the CRDs, the operator and the examples; `demo down` stops it.
    Demo {
        /// `up` (default) or `down`.
        #[arg(default_value = "up")]
        action: String,
    },
    /// Run every check and test: fmt, clippy, unit tests, and the end-to-end suite against a
    /// fresh control plane.
    Test {
        /// Skip fmt and clippy.
        #[arg(long)]
        no_lint: bool,
        /// Extra arguments for `cargo test` (e.g. `-- --test exchange` to run one suite while
        /// working on it); the README's command passes none.
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
    /// Run a benchmark program (release build) and record its report in `bench/results/`:
    /// `scale` (the workflow at 1,000 departments and 10,000 grants), `exchange`, `backup`,
    /// `admission` (the webhook under load, beside the apiserver's CEL policies).
    Bench {
        /// The benchmark.
        name: String,
        /// Arguments passed to it (see `cargo xtask bench <name> -- --help`).
        #[arg(last = true)]
        args: Vec<String>,
    },
}

#[derive(Subcommand)]
enum ClusterAction {
    /// Start it (detached) unless it is running.
    Up,
    /// Stop it.
    Down,
    /// Print shell exports for `kubectl`.
    Env,
}

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Cmd::Upstream => upstream::ensure_built(&repo())
                .and_then(|_| upstream::ensure_s3_built(&repo()))
                .and_then(|_| upstream::ensure_gateway_api(&repo()))
                .map(drop)
                .map_err(Into::into),
            Cmd::Cluster {
                action: ClusterAction::Up,
            } => cluster_up().await.map(drop),
            Cmd::Cluster {
                action: ClusterAction::Down,
            } => cluster_down(),
            Cmd::Cluster {
                action: ClusterAction::Env,
            } => {
                print_env();
                Ok(())
            }
            Cmd::Crd => crd(),
            Cmd::Demo { action } if action == "down" => demo::down(),
            Cmd::Demo { .. } => demo::up().await,
            Cmd::Test {
                no_lint,
                cargo_args,
            } => test::run_all(!no_lint, &cargo_args).await,
            Cmd::Bench { name, args } => bench(&name, &args),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The repository root (xtask lives one level below it).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// State of the demo control plane.
fn cluster_dir() -> PathBuf {
    repo().join(".gongshu").join("cluster")
}

/// Starts the demo control plane unless it runs, and installs the Gateway API CRDs on it (so
/// that suites run against it meet the route kinds); returns its admin kubeconfig.
async fn cluster_up() -> Result<PathBuf> {
    let bins = upstream::ensure_built(&repo())?;
    let dir = cluster_dir();
    let kubeconfig = dir.join("admin.kubeconfig");
    if controlplane::is_running(&dir) {
        eprintln!("control plane already running ({})", kubeconfig.display());
    } else {
        let started = Instant::now();
        let plane =
            controlplane::ControlPlane::start(&dir, &bins, controlplane::DEFAULT_READY_TIMEOUT)
                .await?;
        eprintln!(
            "control plane ready at {} in {:.1?}",
            plane.server(),
            started.elapsed()
        );
        plane.detach()?;
        print_env();
    }
    gongshu_e2e::operator::install_gateway_api(&bins.kubectl, &kubeconfig, &repo())?;
    Ok(kubeconfig)
}

fn cluster_down() -> Result {
    controlplane::stop_detached(&cluster_dir())?;
    eprintln!("control plane stopped");
    Ok(())
}

fn print_env() {
    let bins = upstream::binaries();
    println!(
        "export KUBECONFIG={}",
        cluster_dir().join("admin.kubeconfig").display()
    );
    println!("export PATH={}:$PATH", bins.kubernetes_dir().display());
}

fn crd() -> Result {
    run(cargo().args([
        "run",
        "--quiet",
        "-p",
        "gongshu",
        "--",
        "crd",
        "--out-dir",
        "crds",
    ]))
}

/// Builds the release operator and runs benchmark `name` with `args`.
fn bench(name: &str, args: &[String]) -> Result {
    upstream::ensure_built(&repo())?;
    run(cargo().args(["build", "--release", "-p", "gongshu", "-p", "gongshu-bench"]))?;
    run(Command::new(target_dir().join("release").join(name))
        .current_dir(repo())
        .args(args))
}

/// `cargo` in the repository root.
fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(repo());
    cmd
}

/// Cargo's target directory.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"))
}

/// Runs a command, failing with its command line if it fails.
fn run(cmd: &mut Command) -> Result {
    let status = cmd.status().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !status.success() {
        return Err(format!("{cmd:?} failed: {status}").into());
    }
    Ok(())
}
