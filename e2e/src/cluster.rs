//! A control plane of a test's or a benchmark's own, with the CRDs and the operator's RBAC
//! installed and operators started on it as local processes: for suites that need something
//! the shared control plane cannot give (a crash, two replicas, a drill-mode `Regulation`,
//! thousands of objects).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    Error,
    controlplane::{ControlPlane, DEFAULT_READY_TIMEOUT},
    harness::{TestEnv, random_suffix},
    operator,
    process::Process,
    upstream,
};

/// The log filter operators started here run with.
pub const LOG_FILTER: &str = "info,gongshu=debug,kube=warn";

/// The operator binary `cargo xtask test` (or `cargo build -p gongshu`) built, in `profile`
/// (`debug` or `release`) under `CARGO_TARGET_DIR` or the workspace's `target/`.
pub fn operator_binary(profile: &str) -> Result<PathBuf, Error> {
    let repo = repo_root();
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo.join("target"), PathBuf::from);
    let binary = target.join(profile).join("gongshu");
    if binary.exists() {
        Ok(binary)
    } else {
        Err(Error::Harness(format!(
            "operator binary {} is missing: run the suite with `cargo xtask test` (or `cargo build -p gongshu{}` first)",
            binary.display(),
            if profile == "release" {
                " --release"
            } else {
                ""
            },
        )))
    }
}

/// The workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A fresh control plane with the CRDs, the operator's namespace and RBAC installed. The
/// operators started on it are stopped (SIGTERM) before the control plane; its directory is
/// removed unless the thread is panicking (so a failed test leaves its logs).
pub struct OwnCluster {
    operators: Vec<Option<Process>>,
    plane: Option<ControlPlane>,
    dir: PathBuf,
    /// A connection to it, with the harness's helpers.
    pub env: TestEnv,
}

impl std::fmt::Debug for OwnCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnCluster")
            .field("dir", &self.dir)
            .finish()
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        while let Some(p) = self.operators.pop() {
            if let Some(p) = p {
                p.stop(Duration::from_secs(10));
            }
        }
        drop(self.plane.take());
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl OwnCluster {
    /// Starts a control plane in a temporary directory named after `purpose` and installs the
    /// CRDs and `deploy/rbac.yaml`.
    pub async fn start(purpose: &str) -> Result<Self, Error> {
        Self::start_inner(purpose, false).await
    }

    /// [`start`](Self::start) with a control plane ready for a node
    /// ([`ControlPlane::start_for_nodes`]): start one on [`plane`](Self::plane) with
    /// `crate::node::Node::start` (root, one node per machine) and drop it before this.
    pub async fn start_for_nodes(purpose: &str) -> Result<Self, Error> {
        Self::start_inner(purpose, true).await
    }

    async fn start_inner(purpose: &str, for_nodes: bool) -> Result<Self, Error> {
        let bins = upstream::binaries();
        if !bins.kube_apiserver.exists() {
            return Err(Error::Harness(
                "upstream binaries missing: run `cargo xtask upstream`".into(),
            ));
        }
        let dir = std::env::temp_dir().join(format!("gongshu-{purpose}-{}", random_suffix()));
        let plane = if for_nodes {
            ControlPlane::start_for_nodes(&dir, &bins, DEFAULT_READY_TIMEOUT).await?
        } else {
            ControlPlane::start(&dir, &bins, DEFAULT_READY_TIMEOUT).await?
        };
        operator::install(&bins.kubectl, plane.kubeconfig(), &repo_root())?;
        let env = TestEnv::new(plane.client().await?, plane.kubeconfig().to_path_buf());
        Ok(Self {
            operators: Vec::new(),
            dir: plane.dir().to_path_buf(),
            plane: Some(plane),
            env,
        })
    }

    /// The control plane (for a node: `Node::start(c.plane(), dir)`).
    pub fn plane(&self) -> &ControlPlane {
        match &self.plane {
            Some(plane) => plane,
            // Only `drop` takes it.
            None => unreachable!("the control plane is gone before its OwnCluster"),
        }
    }

    /// The directory holding the control plane's state and the logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The control plane's process ids (etcd, kube-apiserver, kube-controller-manager).
    pub fn control_plane_pids(&self) -> Vec<i32> {
        self.plane
            .as_ref()
            .map(ControlPlane::pids)
            .unwrap_or_default()
    }

    /// Starts `binary operator` logging to `logs/<name>.log` with [`LOG_FILTER`] and `env`;
    /// returns its index (for [`operator_pid`](Self::operator_pid) and
    /// [`stop_operator`](Self::stop_operator)) and its log.
    pub async fn start_operator(
        &mut self,
        binary: &Path,
        name: &str,
        env: &[(&str, &str)],
    ) -> Result<(usize, PathBuf), Error> {
        let log = self.dir.join("logs").join(format!("{name}.log"));
        let mut all = vec![("RUST_LOG", LOG_FILTER)];
        all.extend_from_slice(env);
        let p = operator::start(binary, &self.dir, &log, &all).await?;
        self.operators.push(Some(p));
        Ok((self.operators.len() - 1, log))
    }

    /// The pid of operator `index`, while it runs.
    pub fn operator_pid(&self, index: usize) -> Option<i32> {
        self.operators.get(index)?.as_ref().map(Process::pid)
    }

    /// Stops operator `index` (SIGTERM, then SIGKILL after `grace`); whether it exited within
    /// the grace period.
    pub fn stop_operator(&mut self, index: usize, grace: Duration) -> bool {
        self.operators
            .get_mut(index)
            .and_then(Option::take)
            .is_some_and(|p| p.stop(grace))
    }

    /// Forgets operator `index` without stopping it, for a test that kills it itself.
    pub fn forget_operator(&mut self, index: usize) -> Option<Process> {
        self.operators.get_mut(index).and_then(Option::take)
    }
}
