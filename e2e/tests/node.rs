//! The harness's node: on a fresh control plane, a real kubelet with containerd and runc runs
//! the locally built `gongshu` image in PSS-restricted pods: a Pod to completion (its log read
//! through the apiserver), a Job, a pod that reaches the apiserver with its in-cluster
//! configuration through the `kubernetes` Service (kube-proxy), a pod that reaches a server on
//! the host at the node's gateway address, and a Deployment's replicas. Stopping the node leaves nothing behind,
//! and a second node starts on the same machine.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{
    net::IpAddr,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use gongshu_e2e::{
    controlplane::{ControlPlane, DEFAULT_READY_TIMEOUT},
    harness::{TestEnv, random_suffix},
    node::{self, DEFAULT_NODE_TIMEOUT, Node, host},
    process::alive,
    upstream,
};
use k8s_openapi::api::{
    apps::v1::Deployment,
    batch::v1::Job,
    core::v1::{Pod, ServiceAccount},
};
use kube::{Api, Client, api::PostParams};

/// A PSS-restricted pod spec running `gongshu args` from `image`, with `env`.
fn pod_spec(image: &str, args: &[&str], env: &[(&str, String)]) -> serde_json::Value {
    let env: Vec<_> = env
        .iter()
        .map(|(k, v)| serde_json::json!({"name": k, "value": v}))
        .collect();
    serde_json::json!({
        "restartPolicy": "Never",
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [{
            "name": "gongshu",
            "image": image,
            "imagePullPolicy": "Never",
            "args": args,
            "env": env,
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "capabilities": {"drop": ["ALL"]},
            },
        }],
    })
}

async fn create_pod(client: &Client, ns: &str, name: &str, spec: serde_json::Value) {
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap();
    Api::<Pod>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pod)
        .await
        .unwrap_or_else(|e| panic!("create pod {name}: {e}"));
}

/// Waits until pod `name` is Succeeded or Failed; returns the phase.
async fn wait_finished(client: &Client, ns: &str, name: &str, node: &Node) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let started = Instant::now();
    loop {
        let pod = pods.get(name).await.unwrap();
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        if phase == "Succeeded" || phase == "Failed" {
            return phase;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "pod {ns}/{name} still {phase:?} after 120 s: {:?}\nkubelet log: {}",
            pod.status,
            gongshu_e2e::process::tail(&node.dir().join("logs/kubelet.log"), 30)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `kubectl logs`: the apiserver reads the log from the kubelet (over TLS, the kubelet's
/// serving certificate checked against the harness CA).
fn kubectl_logs(plane: &ControlPlane, ns: &str, target: &str) -> String {
    let out = Command::new(upstream::binaries().kubectl)
        .env("KUBECONFIG", plane.kubeconfig())
        .args(["logs", "-n", ns, target])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl logs {target}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn wait_service_account(client: &Client, ns: &str) {
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let started = Instant::now();
    while sas.get_opt("default").await.unwrap().is_none() {
        assert!(started.elapsed() < Duration::from_secs(60), "no default SA");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What a stopped node must not leave: processes, mounts, the bridge, network namespaces,
/// cgroups.
fn assert_clean(node_dir: &Path, pids: &[i32], cgroup_root: &str, socket: &str) {
    let left: Vec<i32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    assert!(left.is_empty(), "node processes left: {left:?}");
    let shims = host::pids_matching(&["containerd-shim", socket]);
    assert!(shims.is_empty(), "shims left: {shims:?}");
    let mounts = host::mounts_under(node_dir);
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    assert!(!host::bridge_exists(), "bridge {} left", node::BRIDGE);
    let netns: Vec<String> = std::fs::read_dir(host::NETNS_DIR)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        netns.iter().all(|n| !n.starts_with("cni-")),
        "network namespaces left: {netns:?}"
    );
    let cgroup = Path::new("/sys/fs/cgroup/memory").join(cgroup_root.trim_start_matches('/'));
    assert!(!cgroup.exists(), "cgroup {} left", cgroup.display());
    for program in ["iptables", "ip6tables"] {
        for table in ["filter", "nat", "mangle"] {
            let rules = host::run(program, &["-w", "-t", table, "-S"]).unwrap_or_default();
            assert!(
                !rules.contains("KUBE-"),
                "{program} {table}: rules left:\n{rules}"
            );
        }
    }
}

#[tokio::test]
async fn a_node_runs_restricted_pods_and_jobs_of_the_gongshu_image_and_stops_clean() {
    let bins = upstream::binaries();
    assert!(
        bins.kubelet.exists(),
        "upstream binaries missing: run `cargo xtask upstream`"
    );
    let dir = std::env::temp_dir().join(format!("gongshu-node-{}", random_suffix()));
    let plane = ControlPlane::start_for_nodes(&dir.join("plane"), &bins, DEFAULT_READY_TIMEOUT)
        .await
        .expect("control plane starts");
    let t = Instant::now();
    let mut node = Node::start(&plane, &dir.join("node"))
        .await
        .expect("node starts and becomes Ready");
    eprintln!(
        "node Ready in {:.1?} (snapshotter {})",
        t.elapsed(),
        node.snapshotter()
    );
    let t = Instant::now();
    let image = node.import_gongshu_image().expect("gongshu image imported");
    eprintln!("{image} built and imported in {:.1?}", t.elapsed());

    let client = plane.client().await.unwrap();
    let env = TestEnv::new(client.clone(), plane.kubeconfig().to_path_buf());
    let ns = env
        .namespace(
            "node",
            &[
                ("pod-security.kubernetes.io/enforce", "restricted"),
                ("pod-security.kubernetes.io/enforce-version", "latest"),
            ],
        )
        .await
        .unwrap();
    wait_service_account(&client, &ns).await;

    // (a) A restricted Pod runs to completion; its log comes through the apiserver.
    let t = Instant::now();
    create_pod(
        &client,
        &ns,
        "version",
        pod_spec(&image, &["--version"], &[]),
    )
    .await;
    let phase = wait_finished(&client, &ns, "version", &node).await;
    assert_eq!(phase, "Succeeded");
    let log = kubectl_logs(&plane, &ns, "pod/version");
    assert!(
        log.starts_with("gongshu "),
        "gongshu --version printed {log:?}"
    );
    eprintln!(
        "(a) pod ran to completion in {:.1?}: {}",
        t.elapsed(),
        log.trim()
    );

    // (b) A Job completes.
    let t = Instant::now();
    let job: Job = serde_json::from_value(serde_json::json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "version"},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": pod_spec(&image, &["--version"], &[])},
        },
    }))
    .unwrap();
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    jobs.create(&PostParams::default(), &job).await.unwrap();
    loop {
        let status = jobs
            .get("version")
            .await
            .unwrap()
            .status
            .unwrap_or_default();
        let condition = |t: &str| {
            status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == t && c.status == "True")
        };
        if condition("Complete") {
            break;
        }
        assert!(!condition("Failed"), "job failed: {status:?}");
        assert!(t.elapsed() < Duration::from_secs(120), "job: {status:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(kubectl_logs(&plane, &ns, "job/version").starts_with("gongshu "));
    eprintln!("(b) job completed in {:.1?}", t.elapsed());

    // (c) In-cluster configuration reaches the apiserver through the `kubernetes` Service's
    // ClusterIP (kube-proxy): the token authenticates, and RBAC answers for the pod's
    // ServiceAccount, which may not read BackupPolicies.
    let t = Instant::now();
    let args = ["backup", "list", "--namespace", &ns, "--policy", "none"];
    create_pod(&client, &ns, "in-cluster", pod_spec(&image, &args, &[])).await;
    wait_finished(&client, &ns, "in-cluster", &node).await;
    let log = kubectl_logs(&plane, &ns, "pod/in-cluster");
    let user = format!("system:serviceaccount:{ns}:default");
    assert!(
        log.contains(&user) && log.contains("forbidden"),
        "the apiserver must have answered for {user}: {log}"
    );
    eprintln!(
        "(c) in-cluster call answered in {:.1?}: {}",
        t.elapsed(),
        log.trim()
    );

    // (d) A pod reaches a server on the host bound to the gateway address only.
    let t = Instant::now();
    let listener = tokio::net::TcpListener::bind((node.gateway_ip(), 0))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let host_env = [
        ("KUBERNETES_SERVICE_HOST", node.gateway_ip().to_string()),
        ("KUBERNETES_SERVICE_PORT", port.to_string()),
    ];
    create_pod(&client, &ns, "to-host", pod_spec(&image, &args, &host_env)).await;
    let (mut stream, peer) = tokio::time::timeout(Duration::from_secs(120), listener.accept())
        .await
        .expect("the pod connects to the host within 120 s")
        .unwrap();
    let mut first = [0u8; 1];
    tokio::io::AsyncReadExt::read_exact(&mut stream, &mut first)
        .await
        .unwrap();
    let IpAddr::V4(peer_ip) = peer.ip() else {
        panic!("{peer}")
    };
    assert_eq!(
        peer_ip.octets()[..3],
        node.gateway_ip().octets()[..3],
        "the connection comes from a pod address: {peer}"
    );
    assert_eq!(first[0], 0x16, "a TLS ClientHello");
    // While it waits for the server's answer, the container runs as the restricted profile
    // says: seccomp filter on (RuntimeDefault), no new privileges, no capabilities, uid 65532.
    let status = host::cgroup_pids(node.cgroup_root())
        .into_iter()
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains("backup")
        })
        .find_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .expect("the pod's gongshu process is in the node's cgroups");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(field("Seccomp:"), "2", "seccomp in filter mode:\n{status}");
    assert_eq!(field("NoNewPrivs:"), "1");
    assert_eq!(field("CapEff:"), "0000000000000000");
    assert_eq!(field("CapBnd:"), "0000000000000000");
    assert!(field("Uid:").starts_with("65532\t"), "{}", field("Uid:"));
    drop(stream);
    wait_finished(&client, &ns, "to-host", &node).await;
    eprintln!("(d) pod {peer} reached the host in {:.1?}", t.elapsed());

    // (e) A Deployment's replicas run and become available (the locally built pause image
    // runs until stopped; a ReplicaSet, not a test, owns the pods).
    let t = Instant::now();
    let mut spec = pod_spec(node::PAUSE_IMAGE, &[], &[]);
    spec["restartPolicy"] = "Always".into();
    spec["containers"][0]["name"] = "pause".into();
    spec["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("args");
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "idle"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "idle"}},
            "template": {"metadata": {"labels": {"app": "idle"}}, "spec": spec},
        },
    }))
    .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    loop {
        let status = deployments
            .get("idle")
            .await
            .unwrap()
            .status
            .unwrap_or_default();
        if status.available_replicas == Some(2) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "deployment: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("(e) deployment available in {:.1?}", t.elapsed());

    // Stopping leaves nothing behind (two pods still running); a second node starts on the
    // same machine.
    let pids = node.pids();
    let (node_dir, cgroup_root) = (node.dir().to_path_buf(), node.cgroup_root().to_owned());
    let socket = node.containerd_socket().display().to_string();
    let t = Instant::now();
    node.stop();
    eprintln!("node stopped in {:.1?}", t.elapsed());
    assert_clean(&node_dir, &pids, &cgroup_root, &socket);

    let t = Instant::now();
    let second = Node::start_named(
        &plane,
        &dir.join("node-2"),
        "gongshu-node-2",
        DEFAULT_NODE_TIMEOUT,
    )
    .await
    .expect("a second node starts");
    eprintln!("second node Ready in {:.1?}", t.elapsed());
    let image = second.import_gongshu_image().unwrap();
    let mut pod = pod_spec(&image, &["--version"], &[]);
    pod["nodeName"] = "gongshu-node-2".into();
    create_pod(&client, &ns, "second", pod).await;
    assert_eq!(
        wait_finished(&client, &ns, "second", &second).await,
        "Succeeded"
    );
    let pids = second.pids();
    let (node_dir, cgroup_root) = (second.dir().to_path_buf(), second.cgroup_root().to_owned());
    let socket = second.containerd_socket().display().to_string();
    drop(second);
    assert_clean(&node_dir, &pids, &cgroup_root, &socket);
    drop(plane);
    let _ = std::fs::remove_dir_all(&dir);
}
