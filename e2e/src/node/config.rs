//! The configuration files of a node's processes: containerd's `config.toml`, the bridge CNI
//! network, the `KubeletConfiguration` and the `KubeProxyConfiguration`.

use std::{net::Ipv4Addr, path::Path};

use super::{BRIDGE, CNI_BIN_DIR, CNI_NETWORK, POD_SUBNET_PREFIX};
use crate::Error;

/// Where a node keeps containerd's state, under its directory.
#[derive(Clone, Debug)]
pub(crate) struct ContainerdPaths {
    pub config: std::path::PathBuf,
    pub socket: std::path::PathBuf,
    pub root: std::path::PathBuf,
    pub state: std::path::PathBuf,
    pub runc_root: std::path::PathBuf,
    pub cni_conf_dir: std::path::PathBuf,
}

impl ContainerdPaths {
    pub fn new(dir: &Path) -> Self {
        let c = dir.join("containerd");
        Self {
            config: c.join("config.toml"),
            socket: c.join("containerd.sock"),
            root: c.join("root"),
            state: c.join("state"),
            runc_root: c.join("runc"),
            cni_conf_dir: dir.join("cni/net.d"),
        }
    }
}

/// containerd 1.6's configuration (version 2): the CRI plugin with `snapshotter`, the locally
/// built `sandbox_image`, runc (cgroupfs, its state under the node's directory) and the CNI
/// plugins of Debian's `containernetworking-plugins`.
pub(crate) fn containerd_toml(
    p: &ContainerdPaths,
    snapshotter: &str,
    sandbox_image: &str,
) -> String {
    format!(
        r#"version = 2
root = "{root}"
state = "{state}"
# Snapshotters that cannot work here, and that would only log their failure.
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  # The kubelet asks for -998 for sandboxes (-997 for Guaranteed pods); lowering a score
  # needs CAP_SYS_RESOURCE, which a sandboxed root may lack (runc then fails with "failed to
  # update /proc/self/oom_score_adj: Permission denied"): no lower than containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "{snapshotter}"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{runc_root}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
    max_conf_num = 1
"#,
        root = p.root.display(),
        state = p.state.display(),
        socket = p.socket.display(),
        runc_root = p.runc_root.display(),
        cni_bin = CNI_BIN_DIR,
        cni_conf = p.cni_conf_dir.display(),
    )
}

/// The pod network: the `bridge` plugin on [`BRIDGE`] with the gateway (the node's address)
/// on the host, `host-local` addresses from the node's /24 kept under the node's directory,
/// and no masquerading (pods only talk to the host).
pub(crate) fn cni_conflist(gateway: Ipv4Addr, ipam_dir: &Path) -> String {
    let [a, b, c, _] = gateway.octets();
    serde_json::json!({
        "cniVersion": "0.4.0",
        "name": CNI_NETWORK,
        "plugins": [{
            "type": "bridge",
            "bridge": BRIDGE,
            "isGateway": true,
            "ipMasq": false,
            "hairpinMode": false,
            "ipam": {
                "type": "host-local",
                "ranges": [[{
                    "subnet": format!("{a}.{b}.{c}.0/{POD_SUBNET_PREFIX}"),
                    "gateway": gateway.to_string(),
                }]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": ipam_dir,
            },
        }],
    })
    .to_string()
}

/// Everything the kubelet is told in its configuration file.
#[derive(Debug)]
pub(crate) struct KubeletSettings<'a> {
    pub address: Ipv4Addr,
    pub port: u16,
    pub serving: &'a crate::pki::CertPair,
    pub ca: &'a Path,
    pub cgroup_root: &'a str,
    pub runtime_socket: &'a Path,
    pub pod_logs: &'a Path,
}

/// The `KubeletConfiguration`: cgroupfs on cgroup v1 (`failCgroupV1: false`), TLS serving
/// with the harness's certificate, webhook authentication and authorization (the apiserver's
/// client certificate is `system:masters`), eviction thresholds no disk here reaches, no image
/// garbage collection (the images are imported, not pulled back) and no read-only port.
pub(crate) fn kubelet_yaml(s: &KubeletSettings<'_>) -> Result<String, Error> {
    let doc = serde_json::json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": s.address.to_string(),
        "port": s.port,
        "readOnlyPort": 0,
        "healthzPort": 0,
        "tlsCertFile": s.serving.cert,
        "tlsPrivateKeyFile": s.serving.key,
        "authentication": {
            "anonymous": {"enabled": false},
            "webhook": {"enabled": true},
            "x509": {"clientCAFile": s.ca},
        },
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": s.cgroup_root,
        "failCgroupV1": false,
        "failSwapOn": false,
        "containerRuntimeEndpoint": format!("unix://{}", s.runtime_socket.display()),
        "podLogsDir": s.pod_logs,
        "evictionHard": {
            "memory.available": "1Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
            "imagefs.inodesFree": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": false,
        "resolvConf": "/etc/resolv.conf",
        "registerNode": true,
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
        "nodeStatusUpdateFrequency": "5s",
        "protectKernelDefaults": false,
        // Its own score: no lower than the harness's, for the reason in containerd_toml.
        "oomScoreAdj": 0,
        "kernelMemcgNotification": false,
        "localStorageCapacityIsolation": true,
    });
    serde_yaml::to_string(&doc).map_err(|e| Error::Harness(e.to_string()))
}

/// The `KubeProxyConfiguration`: iptables mode for the pod subnet, node ports only on the
/// node's address and no sysctl changed on the host (no `route_localnet`, conntrack left as it
/// is).
pub(crate) fn kube_proxy_yaml(
    kubeconfig: &Path,
    node: &str,
    gateway: Ipv4Addr,
    metrics_port: u16,
) -> Result<String, Error> {
    let [a, b, c, _] = gateway.octets();
    let doc = serde_json::json!({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": kubeconfig},
        "hostnameOverride": node,
        "mode": "iptables",
        "clusterCIDR": format!("{a}.{b}.{c}.0/{POD_SUBNET_PREFIX}"),
        "bindAddress": gateway.to_string(),
        "healthzBindAddress": "",
        "metricsBindAddress": format!("127.0.0.1:{metrics_port}"),
        "nodePortAddresses": [format!("{gateway}/32")],
        "iptables": {"localhostNodePorts": false, "masqueradeAll": false},
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
    });
    serde_yaml::to_string(&doc).map_err(|e| Error::Harness(e.to_string()))
}
