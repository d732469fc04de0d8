//! `gongshu operator` as a local process, set up as its Deployment would be: its own
//! least-privilege ServiceAccount (`deploy/rbac.yaml`), and an admission webhook whose serving
//! certificate the cluster CA signed, registered at a loopback URL.

use std::{
    net::{IpAddr, Ipv4Addr},
    path::Path,
    process::Command,
    time::Duration,
};

use crate::{
    Error,
    controlplane::{free_port, service_account_kubeconfig},
    pki,
    process::Process,
};

/// How long the operator's ServiceAccount token is valid.
const TOKEN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Starts `binary operator` against the cluster whose state is in `cluster_dir` (PKI, admin
/// kubeconfig), logging to `log`. `deploy/rbac.yaml` must be applied.
pub async fn start(
    binary: &Path,
    cluster_dir: &Path,
    log: &Path,
    extra_env: &[(&str, &str)],
) -> Result<Process, Error> {
    let admin = cluster_dir.join("admin.kubeconfig");
    let kubeconfig = service_account_kubeconfig(
        &admin,
        "gongshu-system",
        "gongshu-operator",
        TOKEN_TTL,
        &cluster_dir.join("operator.kubeconfig"),
    )
    .await?;
    let pki = pki::load(&cluster_dir.join("pki"));
    let cert = pki::sign_serving(
        &pki,
        &cluster_dir.join("webhook"),
        "gongshu-webhook",
        &["localhost"],
        &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
    )?;
    let port = free_port()?;
    let mut cmd = Command::new(binary);
    cmd.arg("operator")
        .env("KUBECONFIG", &kubeconfig)
        .env("GONGSHU_ADMIN_ADDR", "127.0.0.1:0")
        .env("GONGSHU_WEBHOOK_ADDR", format!("127.0.0.1:{port}"))
        .env(
            "GONGSHU_WEBHOOK_URL",
            format!("https://127.0.0.1:{port}/validate"),
        )
        .env("GONGSHU_WEBHOOK_CERT_FILE", &cert.cert)
        .env("GONGSHU_WEBHOOK_KEY_FILE", &cert.key)
        .env("GONGSHU_WEBHOOK_CA_FILE", &pki.ca_cert);
    for (key, value) in extra_env {
        cmd.env(key, value);
    }
    Process::spawn("gongshu-operator", &mut cmd, log)
}
