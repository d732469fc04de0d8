//! The real local control plane and the end-to-end harness.
//!
//! - [`upstream`] builds etcd, kube-apiserver, kube-controller-manager, kubectl, and the
//!   node's kubelet, kube-scheduler and kube-proxy from their pinned Go modules, once, into a
//!   cache, and downloads the Gateway API CRDs.
//! - [`pki`] and [`controlplane`] start them on loopback with TLS, RBAC and ServiceAccount
//!   tokens, and stop them with nothing left behind.
//! - [`harness`] gives each integration test a client and a fresh namespace on the control
//!   plane that `cargo xtask test` started; [`cluster`] gives a test or a benchmark a control
//!   plane of its own with operators it starts; [`observe`] reads logs, metrics and Events.
//! - [`postgres`] starts a real PostgreSQL server on loopback for the data suites;
//!   [`exchange`] starts `gongshu exchange` against a control plane; [`s3`] a real S3 server,
//!   and [`backup`] what a `BackupPolicy` needs around it.
//! - [`alerting`] starts a real Prometheus and Alertmanager evaluating the repository's alert
//!   rules, with a webhook receiver in the test process.
//! - [`node`] starts a real node (containerd, runc, kubelet, kube-scheduler, kube-proxy) on a
//!   control plane started for nodes, with locally built images, so that pods really run.
//! - [`helm`] builds Helm from its Go module and renders, lints and installs the chart.

pub mod alerting;
pub mod backup;
pub mod cluster;
pub mod controlplane;
pub mod exchange;
pub mod fixtures;
pub mod harness;
pub mod helm;
pub mod node;
pub mod observe;
pub mod operator;
pub mod pki;
pub mod postgres;
pub mod process;
pub mod s3;
pub mod upstream;

use std::{path::Path, time::Duration};

/// Errors of the control plane and harness.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or socket operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A program could not be started.
    #[error("cannot start {program}: {source} (is it installed and on PATH?)")]
    Spawn {
        /// The program.
        program: String,
        /// The cause.
        source: std::io::Error,
    },
    /// `go build` failed.
    #[error("go build in {module} failed ({status}); see its output above")]
    Build {
        /// The module directory.
        module: std::path::PathBuf,
        /// Exit status.
        status: String,
    },
    /// `go mod download` failed.
    #[error("`{command}` in {dir} failed ({status}): {stderr}")]
    Download {
        /// The command line.
        command: String,
        /// The module directory it ran in.
        dir: std::path::PathBuf,
        /// Exit status.
        status: String,
        /// What go said.
        stderr: String,
    },
    /// Certificate generation failed.
    #[error("generating certificates: {0}")]
    Pki(#[from] rcgen::Error),
    /// A control-plane process exited while starting.
    #[error("{process} exited ({status}); last log lines:\n{log_tail}")]
    Exited {
        /// Which process.
        process: String,
        /// Its exit status.
        status: String,
        /// The end of its log.
        log_tail: String,
    },
    /// Something did not become ready in time.
    #[error("{what} not ready after {waited:.0?}; last log lines:\n{log_tail}")]
    Timeout {
        /// What was awaited.
        what: &'static str,
        /// How long.
        waited: Duration,
        /// The end of the relevant log.
        log_tail: String,
    },
    /// The kubeconfig could not be read or used.
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    /// An API call failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// The harness was used without a control plane.
    #[error("{0}")]
    Harness(String),
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
