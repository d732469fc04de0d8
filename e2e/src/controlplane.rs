//! A real Kubernetes control plane on loopback: etcd, kube-apiserver (RBAC, ServiceAccount
//! tokens, TLS everywhere) and kube-controller-manager, started from the binaries in
//! [`crate::upstream`]. No node runs pods; gongshu runs its processes locally instead.
//!
//! A [`ControlPlane`] stops its processes when dropped, unless [`ControlPlane::detach`]ed for a
//! demo that outlives the command; [`stop_detached`] stops that one from its state directory.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use kube::{
    Api, Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
};

use crate::{
    Error,
    pki::{self, Pki, SERVICE_CLUSTER_IP},
    process::{self, Process},
    upstream::Binaries,
};

/// Name of the file listing a detached control plane's process ids.
const PIDS_FILE: &str = "pids";
/// How long a cold start may take on a loaded 2-core machine (DESIGN.md pitfalls).
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(120);
/// ServiceAccount token issuer.
pub const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// A running control plane.
#[derive(Debug)]
pub struct ControlPlane {
    dir: PathBuf,
    pki: Pki,
    kubeconfig: PathBuf,
    server: String,
    processes: Vec<Process>,
    detached: bool,
    port: u16,
    serves_nodes: bool,
}

impl ControlPlane {
    /// Generates PKI and starts etcd, kube-apiserver and kube-controller-manager with their
    /// state in `dir` (wiped first), then waits until `/readyz` is ok and the controller
    /// manager has created the `default` ServiceAccount. Fails, leaving nothing running, if a
    /// process exits or `timeout` passes.
    pub async fn start(dir: &Path, bins: &Binaries, timeout: Duration) -> Result<Self, Error> {
        Self::start_inner(dir, bins, timeout, false).await
    }

    /// [`start`](Self::start), and ready for a node ([`crate::node::Node`]): the apiserver
    /// authorizes kubelets with the `Node` authorizer (before RBAC) and the `NodeRestriction`
    /// admission plugin, reaches them with a client certificate of its own and checks their
    /// serving certificates against the harness CA, and listens on every address (not only
    /// loopback), so that pods reach it through the `kubernetes` Service, whose endpoint the
    /// node sets to its bridge address.
    pub async fn start_for_nodes(
        dir: &Path,
        bins: &Binaries,
        timeout: Duration,
    ) -> Result<Self, Error> {
        Self::start_inner(dir, bins, timeout, true).await
    }

    async fn start_inner(
        dir: &Path,
        bins: &Binaries,
        timeout: Duration,
        serves_nodes: bool,
    ) -> Result<Self, Error> {
        if dir.exists() {
            stop_detached(dir)?;
            std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        std::fs::create_dir_all(dir.join("logs")).map_err(|e| Error::io(dir, e))?;
        let dir = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
        let pki = pki::generate(&dir.join("pki"))?;
        let [etcd_client, etcd_peer, apiserver_port] = free_ports()?;
        let server = format!("https://127.0.0.1:{apiserver_port}");
        let kubeconfig = write_kubeconfig(
            &dir.join("admin.kubeconfig"),
            &server,
            &pki.ca_cert,
            &pki.admin,
        )?;
        let kcm_kubeconfig = write_kubeconfig(
            &dir.join("controller-manager.kubeconfig"),
            &server,
            &pki.ca_cert,
            &pki.controller_manager,
        )?;

        let etcd_url = format!("https://127.0.0.1:{etcd_client}");
        let peer_url = format!("https://127.0.0.1:{etcd_peer}");
        let etcd = etcd_args(&dir, &pki, &etcd_url, &peer_url);
        let mut apiserver = apiserver_args(&dir, &pki, &etcd_url, apiserver_port);
        if serves_nodes {
            node_args(&pki, &mut apiserver);
        }
        let kcm = controller_manager_args(&pki, &kcm_kubeconfig);

        let mut plane = Self {
            dir,
            pki,
            kubeconfig,
            server,
            processes: Vec::new(),
            detached: false,
            port: apiserver_port,
            serves_nodes,
        };
        let started = Instant::now();
        plane.spawn("etcd", &bins.etcd, &etcd)?;
        plane.spawn("kube-apiserver", &bins.kube_apiserver, &apiserver)?;
        plane.wait_ready(started, timeout).await?;
        plane.spawn(
            "kube-controller-manager",
            &bins.kube_controller_manager,
            &kcm,
        )?;
        plane.wait_controller_manager(started, timeout).await?;
        Ok(plane)
    }

    /// The admin kubeconfig (`system:masters`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The apiserver URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The apiserver's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether it was started with [`start_for_nodes`](Self::start_for_nodes).
    pub fn serves_nodes(&self) -> bool {
        self.serves_nodes
    }

    /// The generated PKI (e.g. to sign a webhook's serving certificate).
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// Process ids of the running processes, oldest first.
    pub fn pids(&self) -> Vec<i32> {
        self.processes.iter().map(Process::pid).collect()
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A client with admin rights.
    pub async fn client(&self) -> Result<Client, Error> {
        client_for(&self.kubeconfig).await
    }

    /// Leaves the processes running after `self` is dropped, recording their ids in the state
    /// directory for [`stop_detached`].
    pub fn detach(mut self) -> Result<(), Error> {
        let pids: Vec<(i32, &str)> = self
            .processes
            .iter()
            .map(|p| (p.pid(), p.name.as_str()))
            .collect();
        process::write_pid_file(&self.dir.join(PIDS_FILE), &pids)?;
        self.detached = true;
        Ok(())
    }

    /// Stops every process (SIGTERM, then SIGKILL after 10 s), newest first.
    pub fn stop(&mut self) {
        while let Some(p) = self.processes.pop() {
            p.stop(Duration::from_secs(10));
        }
    }

    fn spawn(&mut self, name: &str, program: &Path, args: &[String]) -> Result<(), Error> {
        let log = self.dir.join("logs").join(format!("{name}.log"));
        self.processes.push(Process::spawn(
            name,
            Command::new(program).args(args),
            &log,
        )?);
        Ok(())
    }

    fn check_alive(&mut self) -> Result<(), Error> {
        self.processes.iter_mut().try_for_each(Process::check_alive)
    }

    async fn wait_ready(&mut self, started: Instant, timeout: Duration) -> Result<(), Error> {
        let client = self.client().await?;
        loop {
            self.check_alive()?;
            let req = http::Request::get("/readyz")
                .body(Vec::new())
                .map_err(|e| Error::Harness(e.to_string()))?;
            if let Ok(body) = client.request_text(req).await
                && body.trim() == "ok"
            {
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(Error::Timeout {
                    what: "kube-apiserver /readyz",
                    waited: started.elapsed(),
                    log_tail: self.log_tail("kube-apiserver"),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn wait_controller_manager(
        &mut self,
        started: Instant,
        timeout: Duration,
    ) -> Result<(), Error> {
        let client = self.client().await?;
        let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> =
            Api::namespaced(client, "default");
        loop {
            self.check_alive()?;
            if let Ok(Some(_)) = sas.get_opt("default").await {
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(Error::Timeout {
                    what: "kube-controller-manager (the default ServiceAccount)",
                    waited: started.elapsed(),
                    log_tail: self.log_tail("kube-controller-manager"),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn log_tail(&self, name: &str) -> String {
        self.processes
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.log_tail(30))
            .unwrap_or_default()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if !self.detached {
            self.stop();
        }
    }
}

fn etcd_args(dir: &Path, p: &Pki, client_url: &str, peer_url: &str) -> Vec<String> {
    vec![
        "--name=gongshu".into(),
        format!("--data-dir={}", dir.join("etcd").display()),
        format!("--listen-client-urls={client_url}"),
        format!("--advertise-client-urls={client_url}"),
        format!("--listen-peer-urls={peer_url}"),
        format!("--initial-advertise-peer-urls={peer_url}"),
        format!("--initial-cluster=gongshu={peer_url}"),
        format!("--cert-file={}", p.etcd.cert.display()),
        format!("--key-file={}", p.etcd.key.display()),
        format!("--trusted-ca-file={}", p.ca_cert.display()),
        "--client-cert-auth".into(),
        format!("--peer-cert-file={}", p.etcd.cert.display()),
        format!("--peer-key-file={}", p.etcd.key.display()),
        format!("--peer-trusted-ca-file={}", p.ca_cert.display()),
        "--peer-client-cert-auth".into(),
        "--log-level=warn".into(),
    ]
}

fn apiserver_args(dir: &Path, p: &Pki, etcd_url: &str, port: u16) -> Vec<String> {
    vec![
        // Without a default route the apiserver cannot pick an advertise address itself.
        "--advertise-address=127.0.0.1".into(),
        // ...and a loopback address cannot back the `kubernetes` Service's endpoints.
        "--endpoint-reconciler-type=none".into(),
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={port}"),
        format!("--etcd-servers={etcd_url}"),
        format!("--etcd-cafile={}", p.ca_cert.display()),
        format!("--etcd-certfile={}", p.apiserver_etcd_client.cert.display()),
        format!("--etcd-keyfile={}", p.apiserver_etcd_client.key.display()),
        format!("--tls-cert-file={}", p.apiserver.cert.display()),
        format!("--tls-private-key-file={}", p.apiserver.key.display()),
        format!("--client-ca-file={}", p.ca_cert.display()),
        // TokenRequest and TokenReview need all three.
        format!("--service-account-issuer={SERVICE_ACCOUNT_ISSUER}"),
        format!(
            "--service-account-key-file={}",
            dir.join("pki/sa.pub").display()
        ),
        format!(
            "--service-account-signing-key-file={}",
            p.service_account_key.display()
        ),
        format!("--service-cluster-ip-range={SERVICE_CLUSTER_IP}/16"),
        "--authorization-mode=RBAC".into(),
        "--allow-privileged=false".into(),
        "--profiling=false".into(),
        format!("--cert-dir={}", dir.join("pki").display()),
        "--v=1".into(),
    ]
}

/// What [`ControlPlane::start_for_nodes`] changes in the apiserver's arguments.
fn node_args(p: &Pki, args: &mut Vec<String>) {
    for arg in args.iter_mut() {
        if arg.starts_with("--bind-address=") {
            // Pods reach it at the node's bridge address (the `kubernetes` Service's endpoint).
            *arg = "--bind-address=0.0.0.0".into();
        } else if arg.starts_with("--authorization-mode=") {
            *arg = "--authorization-mode=Node,RBAC".into();
        }
    }
    args.extend([
        "--enable-admission-plugins=NodeRestriction".into(),
        format!("--kubelet-certificate-authority={}", p.ca_cert.display()),
        format!(
            "--kubelet-client-certificate={}",
            p.apiserver_kubelet_client.cert.display()
        ),
        format!(
            "--kubelet-client-key={}",
            p.apiserver_kubelet_client.key.display()
        ),
        // The node's name does not resolve; its InternalIP is its bridge address.
        "--kubelet-preferred-address-types=InternalIP".into(),
    ]);
}

fn controller_manager_args(p: &Pki, kubeconfig: &Path) -> Vec<String> {
    vec![
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--authentication-kubeconfig={}", kubeconfig.display()),
        format!("--authorization-kubeconfig={}", kubeconfig.display()),
        "--leader-elect=false".into(),
        "--bind-address=127.0.0.1".into(),
        // No serving port: nothing scrapes it, and an unused listener is one more to secure.
        "--secure-port=0".into(),
        "--use-service-account-credentials=true".into(),
        format!(
            "--service-account-private-key-file={}",
            p.service_account_key.display()
        ),
        format!("--root-ca-file={}", p.ca_cert.display()),
        format!("--cluster-signing-cert-file={}", p.ca_cert.display()),
        format!("--cluster-signing-key-file={}", p.ca_key.display()),
        "--v=1".into(),
    ]
}

/// Whether a detached control plane recorded in `dir` is still running.
pub fn is_running(dir: &Path) -> bool {
    process::all_alive(&dir.join(PIDS_FILE))
}

/// Stops a detached control plane recorded in `dir`, newest process first. Does nothing if
/// none is recorded.
pub fn stop_detached(dir: &Path) -> Result<(), Error> {
    process::stop_pid_file(&dir.join(PIDS_FILE), Duration::from_secs(10))
}

/// Writes to `out` a kubeconfig for the cluster of the admin kubeconfig `admin` that
/// authenticates as the ServiceAccount `namespace/name` with a token valid for `ttl`: how a
/// local process gets exactly the rights its RBAC grants, as its pod would.
pub async fn service_account_kubeconfig(
    admin: &Path,
    namespace: &str,
    name: &str,
    ttl: Duration,
    out: &Path,
) -> Result<PathBuf, Error> {
    use k8s_openapi::api::{
        authentication::v1::{TokenRequest, TokenRequestSpec},
        core::v1::ServiceAccount,
    };
    let kc = Kubeconfig::read_from(admin).map_err(|e| Error::Kubeconfig(e.to_string()))?;
    let cluster = kc
        .clusters
        .first()
        .and_then(|c| c.cluster.clone())
        .ok_or_else(|| Error::Kubeconfig(format!("{} names no cluster", admin.display())))?;
    let request = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: Some(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
            ..Default::default()
        },
        ..Default::default()
    };
    let sas: Api<ServiceAccount> = Api::namespaced(client_for(admin).await?, namespace);
    let issued: TokenRequest = sas
        .create_subresource("token", name, &kube::api::PostParams::default(), &request)
        .await?;
    let token = issued.status.map(|s| s.token).unwrap_or_default();
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "gongshu-local", "cluster": {
            "server": cluster.server,
            "certificate-authority": cluster.certificate_authority,
        }}],
        "users": [{"name": format!("{namespace}/{name}"), "user": {"token": token}}],
        "contexts": [{"name": "gongshu-local", "context": {"cluster": "gongshu-local", "user": format!("{namespace}/{name}")}}],
        "current-context": "gongshu-local",
    });
    let yaml = serde_yaml::to_string(&doc).map_err(|e| Error::Kubeconfig(e.to_string()))?;
    write_private(out, &yaml)?;
    Ok(out.to_path_buf())
}

/// Writes a file only its owner can read (it holds a credential).
fn write_private(path: &Path, contents: &str) -> Result<(), Error> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    file.write_all(contents.as_bytes())
        .map_err(|e| Error::io(path, e))
}

/// A client for the cluster described by `kubeconfig`.
pub async fn client_for(kubeconfig: &Path) -> Result<Client, Error> {
    let kc = Kubeconfig::read_from(kubeconfig).map_err(|e| Error::Kubeconfig(e.to_string()))?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| Error::Kubeconfig(e.to_string()))?;
    Client::try_from(config).map_err(Error::Kube)
}

/// A free TCP port on 127.0.0.1 (for a local process the apiserver must reach).
pub fn free_port() -> Result<u16, Error> {
    free_ports::<1>().map(|[port]| port)
}

fn free_ports<const N: usize>() -> Result<[u16; N], Error> {
    // Hold all listeners until every port is chosen so the kernel hands out distinct ones.
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .map_err(|e| Error::io(Path::new("127.0.0.1:0"), e))?;
    let mut ports = [0u16; N];
    for (port, l) in ports.iter_mut().zip(&listeners) {
        *port = l
            .local_addr()
            .map_err(|e| Error::io(Path::new("127.0.0.1:0"), e))?
            .port();
    }
    Ok(ports)
}

/// Writes a kubeconfig for `server` that trusts `ca` and authenticates with `user`'s client
/// certificate.
pub(crate) fn write_kubeconfig(
    path: &Path,
    server: &str,
    ca: &Path,
    user: &pki::CertPair,
) -> Result<PathBuf, Error> {
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "gongshu-local", "cluster": {"server": server, "certificate-authority": ca}}],
        "users": [{"name": "admin", "user": {"client-certificate": user.cert, "client-key": user.key}}],
        "contexts": [{"name": "gongshu-local", "context": {"cluster": "gongshu-local", "user": "admin"}}],
        "current-context": "gongshu-local",
    });
    let yaml = serde_yaml::to_string(&doc).map_err(|e| Error::Kubeconfig(e.to_string()))?;
    std::fs::write(path, yaml).map_err(|e| Error::io(path, e))?;
    Ok(path.to_path_buf())
}
