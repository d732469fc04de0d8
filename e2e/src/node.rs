//! A real node for a control plane started with [`ControlPlane::start_for_nodes`], so that
//! Pods, Jobs and Deployments really run: containerd (Debian's, with its own config, root,
//! state and socket under the node's directory) with runc and the bridge CNI plugin,
//! kube-scheduler, kube-proxy (iptables, so that pods reach the `kubernetes` Service) and a
//! kubelet registered as `system:node:<name>` with a certificate signed by the harness CA.
//!
//! Images are built locally and imported, never pulled ([`Node::import_gongshu_image`]); pods
//! reach the host at [`Node::gateway_ip`] (bind a server there to serve them).
//!
//! One node runs on a machine at a time (it owns the bridge [`BRIDGE`] and kube-proxy's
//! iptables chains); a second [`Node::start`] waits for the first to stop. [`Node::stop`] (or
//! dropping it) kills the kubelet, the pods' containers and shims and containerd, unmounts
//! what they mounted, removes the pods' network namespaces, the bridge, kube-proxy's rules and
//! the cgroups, so that the next node starts clean. Needs root and cgroup v1.
//!
//! ```ignore
//! let plane = ControlPlane::start_for_nodes(&dir.join("plane"), &upstream::binaries(),
//!     DEFAULT_READY_TIMEOUT).await?;
//! let node = Node::start(&plane, &dir.join("node")).await?;       // Ready, kube-proxy synced
//! let image = node.import_gongshu_image()?;     // "gongshu.local/gongshu:<digest prefix>"
//! let listener = TcpListener::bind((node.gateway_ip(), 0)).await?; // what pods can reach
//! // Pods: `image`, `imagePullPolicy: Never`; PSS `restricted` works (user 65532, seccomp
//! // RuntimeDefault, no capabilities). `kubectl logs`/`exec` go apiserver → kubelet over
//! // TLS, the kubelet's serving certificate checked against the harness CA.
//! ```
//!
//! Each Pod gets an address in 10.77.0.0/24 on [`BRIDGE`], the host's resolver (there is no
//! cluster DNS) and `KUBERNETES_SERVICE_HOST=10.96.0.1`, which kube-proxy sends to the
//! apiserver at the gateway. The node's processes log to `<dir>/logs/`; the kubelet's pod logs
//! are in `<dir>/pod-logs/`.

mod components;
mod config;
pub mod host;
pub mod image;

use std::{
    collections::BTreeSet,
    fs::File,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Node as NodeObject;
use kube::Api;

use crate::{Error, controlplane::ControlPlane, process::Process, upstream};

/// The bridge the pods' veths are attached to.
pub const BRIDGE: &str = "gongshu0";
/// The bridge's address on the host: the pods' gateway and the node's InternalIP.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// The pod subnet's prefix length (`10.77.0.0/24`).
pub const POD_SUBNET_PREFIX: u8 = 24;
/// The CNI network's name.
pub const CNI_NETWORK: &str = "gongshu-e2e";
/// Where Debian's `containernetworking-plugins` puts the plugins.
pub const CNI_BIN_DIR: &str = "/usr/lib/cni";
/// The locally built sandbox image containerd runs in every pod.
pub const PAUSE_IMAGE: &str = "gongshu.local/pause:3.10";
/// How long a node may take to become Ready on a loaded 2-core machine.
pub const DEFAULT_NODE_TIMEOUT: Duration = Duration::from_secs(120);
/// The lock that keeps a second node off the machine while one runs.
const LOCK: &str = "/run/lock/gongshu-e2e-node.lock";

/// A running node.
#[derive(Debug)]
pub struct Node {
    name: String,
    dir: PathBuf,
    containerd: config::ContainerdPaths,
    snapshotter: &'static str,
    cgroup_root: String,
    created_cgroups: Vec<PathBuf>,
    netns_before: BTreeSet<String>,
    fixed_dirs_before: BTreeSet<&'static str>,
    processes: Vec<Process>,
    kube_proxy: PathBuf,
    kube_proxy_config: PathBuf,
    stopped: bool,
    lock: Option<File>,
}

impl Node {
    /// Starts a node named `gongshu-node` with its state in `dir` (wiped first) for `plane`,
    /// and waits until the Node is Ready and kube-proxy serves the `kubernetes` Service.
    pub async fn start(plane: &ControlPlane, dir: &Path) -> Result<Self, Error> {
        Self::start_named(plane, dir, "gongshu-node", DEFAULT_NODE_TIMEOUT).await
    }

    /// [`start`](Self::start) with a node name and a timeout.
    pub async fn start_named(
        plane: &ControlPlane,
        dir: &Path,
        name: &str,
        timeout: Duration,
    ) -> Result<Self, Error> {
        if !plane.serves_nodes() {
            return Err(Error::Harness(
                "the control plane was not started with ControlPlane::start_for_nodes".into(),
            ));
        }
        if !nix::unistd::geteuid().is_root() {
            return Err(Error::Harness(
                "a node needs root (bridge, mounts, cgroups, iptables)".into(),
            ));
        }
        if !Path::new("/sys/fs/cgroup/memory/cgroup.procs").exists() {
            return Err(Error::Harness(
                "a node needs cgroup v1 hierarchies under /sys/fs/cgroup (the only setup it was \
                 built and tested on)"
                    .into(),
            ));
        }
        let bins = upstream::binaries();
        for b in [&bins.kubelet, &bins.kube_scheduler, &bins.kube_proxy] {
            if !b.exists() {
                return Err(Error::Harness(format!(
                    "{} missing: run `cargo xtask upstream`",
                    b.display()
                )));
            }
        }
        let started = Instant::now();
        let lock = take_lock(timeout).await?;
        // What a node whose harness was killed may have left that would confuse this one (its
        // bridge goes in `create_bridge`).
        host::remove_kube_chains();
        if dir.exists() {
            host::unmount_all(dir);
            std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        std::fs::create_dir_all(dir.join("logs")).map_err(|e| Error::io(dir, e))?;
        let dir = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
        let containerd = config::ContainerdPaths::new(&dir);
        let snapshotter = if host::overlay_works(&dir) {
            "overlayfs"
        } else {
            eprintln!(
                "node: overlay mounts fail in {}; containerd uses the native snapshotter (slower, full copies)",
                dir.display()
            );
            "native"
        };
        let cgroup_root = format!(
            "{}/gongshu-{name}",
            host::own_memory_cgroup().trim_end_matches('/')
        );
        let mut node = Self {
            name: name.to_owned(),
            containerd,
            snapshotter,
            created_cgroups: Vec::new(),
            cgroup_root,
            netns_before: host::netns_names(),
            fixed_dirs_before: host::existing_fixed_dirs(),
            processes: Vec::new(),
            kube_proxy: bins.kube_proxy.clone(),
            kube_proxy_config: dir.join("kube-proxy.yaml"),
            dir,
            stopped: false,
            lock: Some(lock),
        };
        // Whatever fails from here on, dropping `node` undoes what was done.
        node.created_cgroups = host::create_cgroup(&node.cgroup_root)?;
        host::create_bridge(GATEWAY)?;
        node.start_containerd(started, timeout).await?;
        node.import_image_archive(&node.pause_archive()?)?;
        node.start_kubelet(plane, &bins)?;
        node.start_scheduler(plane, &bins)?;
        node.wait_ready(plane, started, timeout).await?;
        components::set_kubernetes_endpoint(plane).await?;
        node.start_kube_proxy(plane)?;
        node.wait_kube_proxy(started, timeout).await?;
        // Both read their configuration leniently: a misspelt field would be ignored.
        for process in ["kubelet", "kube-proxy"] {
            node.config_accepted(process)?;
        }
        Ok(node)
    }

    /// The Node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host's address on the pods' bridge: bind a server here (and to nothing wider) for
    /// pods to reach it, as backup pods reach PostgreSQL and the S3 server.
    pub fn gateway_ip(&self) -> Ipv4Addr {
        GATEWAY
    }

    /// The state directory (logs in `logs/`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// containerd's socket (for `ctr -a`).
    pub fn containerd_socket(&self) -> &Path {
        &self.containerd.socket
    }

    /// The snapshotter containerd uses (`overlayfs`, or `native` where overlay fails).
    pub fn snapshotter(&self) -> &str {
        self.snapshotter
    }

    /// The cgroup (in every v1 hierarchy) the pods run under.
    pub fn cgroup_root(&self) -> &str {
        &self.cgroup_root
    }

    /// Pids of the node's own processes (containerd, kubelet, kube-scheduler, kube-proxy).
    pub fn pids(&self) -> Vec<i32> {
        self.processes.iter().map(Process::pid).collect()
    }

    /// Builds the `gongshu` image from the workspace's debug `gongshu` binary (what
    /// `cargo xtask test` builds) and imports it; returns its reference
    /// (`gongshu.local/gongshu:<layer digest prefix>`). Use it with `imagePullPolicy: Never`
    /// or `IfNotPresent`: nothing can be pulled.
    pub fn import_gongshu_image(&self) -> Result<String, Error> {
        self.import_gongshu_image_of(&crate::cluster::operator_binary("debug")?)
    }

    /// [`import_gongshu_image`](Self::import_gongshu_image) for another `gongshu` binary
    /// (e.g. the release build).
    pub fn import_gongshu_image_of(&self, binary: &Path) -> Result<String, Error> {
        let layer = image::gongshu_layer(binary)?;
        let config = image::ImageConfig {
            entrypoint: &["/usr/local/bin/gongshu"],
            user: "65532:65532",
        };
        let archive = self.dir.join("images/gongshu.tar");
        std::fs::create_dir_all(self.dir.join("images"))
            .map_err(|e| Error::io(&self.dir.join("images"), e))?;
        // The tag names the build, so that a pod of another build never runs a cached one.
        let reference = image::write_archive(
            &archive,
            |hex| format!("gongshu.local/gongshu:{}", &hex[..12]),
            &layer,
            &config,
        )?;
        self.import_image_archive(&archive)?;
        let _ = std::fs::remove_file(&archive);
        Ok(reference)
    }

    /// Imports a `docker save` or OCI archive into the node's containerd (`k8s.io` namespace,
    /// where the kubelet looks).
    pub fn import_image_archive(&self, archive: &Path) -> Result<(), Error> {
        self.ctr(&[
            "images",
            "import",
            "--snapshotter",
            self.snapshotter,
            &archive.display().to_string(),
        ])
        .map(|_| ())
    }

    /// Runs `ctr -a <socket> -n k8s.io args`.
    pub fn ctr(&self, args: &[&str]) -> Result<String, Error> {
        let socket = self.containerd.socket.display().to_string();
        let mut all = vec!["-a", &socket, "-n", "k8s.io"];
        all.extend_from_slice(args);
        host::run("ctr", &all)
    }

    fn pause_archive(&self) -> Result<PathBuf, Error> {
        let pause = image::ensure_pause(&crate::cluster::repo_root())?;
        let (layer, config) = image::pause_image(&pause);
        let archive = self.dir.join("images/pause.tar");
        std::fs::create_dir_all(self.dir.join("images"))
            .map_err(|e| Error::io(&self.dir.join("images"), e))?;
        image::write_archive(&archive, |_| PAUSE_IMAGE.into(), &layer, &config)?;
        Ok(archive)
    }

    fn spawn(&mut self, name: &str, cmd: &mut Command) -> Result<(), Error> {
        let log = self.dir.join("logs").join(format!("{name}.log"));
        self.processes.push(Process::spawn(name, cmd, &log)?);
        Ok(())
    }

    async fn start_containerd(&mut self, started: Instant, timeout: Duration) -> Result<(), Error> {
        let c = &self.containerd;
        for d in [&c.root, &c.state, &c.runc_root, &c.cni_conf_dir] {
            std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
        }
        let conflist = config::cni_conflist(GATEWAY, &self.dir.join("cni/ipam"));
        let conf = c.cni_conf_dir.join("10-gongshu.conflist");
        std::fs::write(&conf, conflist).map_err(|e| Error::io(&conf, e))?;
        let toml = config::containerd_toml(c, self.snapshotter, PAUSE_IMAGE);
        std::fs::write(&c.config, toml).map_err(|e| Error::io(&c.config, e))?;
        let config_arg = c.config.clone();
        self.spawn(
            "containerd",
            Command::new("containerd").arg("--config").arg(config_arg),
        )?;
        loop {
            self.check_alive()?;
            if self.containerd.socket.exists() && self.ctr(&["version"]).is_ok() {
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(self.timeout("containerd's socket", started, "containerd"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_ready(
        &mut self,
        plane: &ControlPlane,
        started: Instant,
        timeout: Duration,
    ) -> Result<(), Error> {
        let nodes: Api<NodeObject> = Api::all(plane.client().await?);
        loop {
            self.check_alive()?;
            if let Ok(Some(n)) = nodes.get_opt(&self.name).await
                && n.status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            {
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(self.timeout("the Node's Ready condition", started, "kubelet"));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Waits until kube-proxy has written the `kubernetes` Service's rules.
    async fn wait_kube_proxy(&mut self, started: Instant, timeout: Duration) -> Result<(), Error> {
        loop {
            self.check_alive()?;
            let rules = host::run("iptables", &["-w", "-t", "nat", "-S", "KUBE-SERVICES"])
                .unwrap_or_default();
            if rules.contains("default/kubernetes:https") {
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(self.timeout(
                    "kube-proxy's rules for the kubernetes Service",
                    started,
                    "kube-proxy",
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Fails if `process` logged an unknown field of its configuration file.
    fn config_accepted(&self, process: &str) -> Result<(), Error> {
        let log = self.dir.join("logs").join(format!("{process}.log"));
        let text = std::fs::read_to_string(&log).map_err(|e| Error::io(&log, e))?;
        match text.lines().find(|l| l.contains("unknown field")) {
            Some(line) => Err(Error::Harness(format!(
                "{process} ignored part of its configuration: {line}"
            ))),
            None => Ok(()),
        }
    }

    fn check_alive(&mut self) -> Result<(), Error> {
        self.processes.iter_mut().try_for_each(Process::check_alive)
    }

    fn timeout(&self, what: &'static str, started: Instant, process: &str) -> Error {
        Error::Timeout {
            what,
            waited: started.elapsed(),
            log_tail: self
                .processes
                .iter()
                .find(|p| p.name == process)
                .map(|p| p.log_tail(30))
                .unwrap_or_default(),
        }
    }

    /// Stops everything and undoes what the node changed on the host (see the module docs).
    /// Idempotent; dropping the node calls it.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        // The kubelet first, so that nothing restarts the containers killed next.
        while let Some(p) = self.processes.pop() {
            if p.name == "containerd" {
                self.processes.push(p);
                break;
            }
            p.stop(Duration::from_secs(10));
        }
        host::kill_and_remove_cgroups(&self.cgroup_root, &[], Duration::from_secs(10));
        let socket = self.containerd.socket.display().to_string();
        let shims = host::pids_matching(&["containerd-shim", &socket]);
        host::kill_all(&shims, Duration::from_secs(5));
        while let Some(p) = self.processes.pop() {
            p.stop(Duration::from_secs(10));
        }
        // Anything containerd or its shims started in the meantime.
        host::kill_all(
            &host::pids_matching(&["containerd-shim", &socket]),
            Duration::from_secs(5),
        );
        let _ = Command::new(&self.kube_proxy)
            .arg("--cleanup")
            .arg(format!("--config={}", self.kube_proxy_config.display()))
            .output();
        host::remove_kube_chains();
        host::unmount_all(&self.dir);
        host::remove_new_netns(&self.netns_before);
        host::delete_bridge();
        host::kill_and_remove_cgroups(
            &self.cgroup_root,
            &self.created_cgroups,
            Duration::from_secs(5),
        );
        host::remove_container_log_links(&self.dir);
        remove_cni_cache();
        host::remove_new_fixed_dirs(&self.fixed_dirs_before);
        // The next node may start now.
        drop(self.lock.take());
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits up to `timeout` for the machine's node lock (another test's node may be running).
async fn take_lock(timeout: Duration) -> Result<File, Error> {
    let path = Path::new(LOCK);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < timeout => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Harness(format!(
                    "another node holds {LOCK} after {timeout:?}: one node runs on a machine at a time"
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(path, e)),
        }
    }
}

/// libcni's result cache of the node's network (`/var/lib/cni/results`, not configurable
/// through containerd 1.6).
fn remove_cni_cache() {
    let Ok(entries) = std::fs::read_dir("/var/lib/cni/results") else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        if e.file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(&format!("{CNI_NETWORK}-")))
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
