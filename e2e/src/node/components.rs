//! The node's Kubernetes components: the kubelet, kube-scheduler and kube-proxy, each with a
//! client certificate signed by the harness CA, and the `kubernetes` Service's endpoint that
//! kube-proxy routes pods to.

use std::{
    net::{IpAddr, Ipv4Addr},
    process::Command,
};

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::{Api, api::PostParams};

use super::{GATEWAY, Node, config};
use crate::{
    Error,
    controlplane::{ControlPlane, free_port, write_kubeconfig},
    pki,
    upstream::Binaries,
};

impl Node {
    pub(super) fn start_kubelet(
        &mut self,
        plane: &ControlPlane,
        bins: &Binaries,
    ) -> Result<(), Error> {
        let pki_dir = self.dir.join("pki");
        let p = plane.pki();
        let client = pki::sign(
            p,
            &pki_dir,
            "kubelet-client",
            &format!("system:node:{}", self.name),
            Some("system:nodes"),
            &[],
            &[],
        )?;
        let serving = pki::sign(
            p,
            &pki_dir,
            "kubelet-serving",
            &format!("system:node:{}", self.name),
            Some("system:nodes"),
            &[&self.name, "localhost"],
            &[IpAddr::V4(GATEWAY), IpAddr::V4(Ipv4Addr::LOCALHOST)],
        )?;
        let kubeconfig = write_kubeconfig(
            &self.dir.join("kubelet.kubeconfig"),
            plane.server(),
            &p.ca_cert,
            &client,
        )?;
        let pod_logs = self.dir.join("pod-logs");
        std::fs::create_dir_all(&pod_logs).map_err(|e| Error::io(&pod_logs, e))?;
        let yaml = config::kubelet_yaml(&config::KubeletSettings {
            address: GATEWAY,
            port: free_port()?,
            serving: &serving,
            ca: &p.ca_cert,
            cgroup_root: &self.cgroup_root,
            runtime_socket: &self.containerd.socket,
            pod_logs: &pod_logs,
        })?;
        let config_file = self.dir.join("kubelet.yaml");
        std::fs::write(&config_file, yaml).map_err(|e| Error::io(&config_file, e))?;
        let mut cmd = Command::new(&bins.kubelet);
        cmd.arg(format!("--config={}", config_file.display()))
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(format!("--root-dir={}", self.dir.join("kubelet").display()))
            .arg(format!("--cert-dir={}", pki_dir.display()))
            .arg(format!("--hostname-override={}", self.name))
            .arg(format!("--node-ip={GATEWAY}"))
            .arg("--v=1");
        self.spawn("kubelet", &mut cmd)
    }

    pub(super) fn start_scheduler(
        &mut self,
        plane: &ControlPlane,
        bins: &Binaries,
    ) -> Result<(), Error> {
        let p = plane.pki();
        let cert = pki::sign(
            p,
            &self.dir.join("pki"),
            "kube-scheduler",
            "system:kube-scheduler",
            None,
            &[],
            &[],
        )?;
        let kubeconfig = write_kubeconfig(
            &self.dir.join("kube-scheduler.kubeconfig"),
            plane.server(),
            &p.ca_cert,
            &cert,
        )?;
        let mut cmd = Command::new(&bins.kube_scheduler);
        cmd.arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(format!(
                "--authentication-kubeconfig={}",
                kubeconfig.display()
            ))
            .arg(format!(
                "--authorization-kubeconfig={}",
                kubeconfig.display()
            ))
            .arg("--leader-elect=false")
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--secure-port={}", free_port()?))
            .arg("--v=1");
        self.spawn("kube-scheduler", &mut cmd)
    }

    pub(super) fn start_kube_proxy(&mut self, plane: &ControlPlane) -> Result<(), Error> {
        let p = plane.pki();
        let cert = pki::sign(
            p,
            &self.dir.join("pki"),
            "kube-proxy",
            "system:kube-proxy",
            None,
            &[],
            &[],
        )?;
        let kubeconfig = write_kubeconfig(
            &self.dir.join("kube-proxy.kubeconfig"),
            plane.server(),
            &p.ca_cert,
            &cert,
        )?;
        let yaml = config::kube_proxy_yaml(&kubeconfig, &self.name, GATEWAY, free_port()?)?;
        std::fs::write(&self.kube_proxy_config, yaml)
            .map_err(|e| Error::io(&self.kube_proxy_config, e))?;
        let mut cmd = Command::new(&self.kube_proxy);
        cmd.arg(format!("--config={}", self.kube_proxy_config.display()))
            .arg("--v=1");
        self.spawn("kube-proxy", &mut cmd)
    }
}

/// The `kubernetes` Service's endpoint: the apiserver at the node's bridge address (the
/// control plane runs without an endpoint reconciler, its advertise address being loopback).
pub(super) async fn set_kubernetes_endpoint(plane: &ControlPlane) -> Result<(), Error> {
    let slices: Api<EndpointSlice> = Api::namespaced(plane.client().await?, "default");
    let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "kubernetes",
            "labels": {
                "kubernetes.io/service-name": "kubernetes",
                "endpointslice.kubernetes.io/managed-by": "gongshu-e2e.node",
            },
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [GATEWAY.to_string()], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": plane.port(), "protocol": "TCP"}],
    }))
    .map_err(|e| Error::Harness(e.to_string()))?;
    match slices.create(&PostParams::default(), &slice).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let mut existing = slices.get("kubernetes").await?;
            existing.endpoints = slice.endpoints;
            existing.ports = slice.ports;
            slices
                .replace("kubernetes", &PostParams::default(), &existing)
                .await?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
