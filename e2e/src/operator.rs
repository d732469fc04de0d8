//! `gongshu operator` as a local process, set up as its Deployment would be: its own
//! least-privilege ServiceAccount (`deploy/rbac.yaml`), and an admission webhook whose serving
//! certificate the cluster CA signed, registered at a loopback URL. [`install`] puts what it
//! needs on the cluster first, the Gateway API CRDs included.

use std::{
    ffi::{OsStr, OsString},
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
    upstream,
};

/// Installs what the operator needs on the cluster of `kubeconfig`, as the chart would: the
/// Gateway API CRDs whose routes the admission rules deny ([`install_gateway_api`]), the CRDs
/// from `<repo>/crds` (waiting until they are established), then `<repo>/deploy/rbac.yaml`
/// (the operator's namespace, ServiceAccount and least-privilege RBAC) and
/// `<repo>/deploy/rbac-process-runner.yaml` (the process runner's). Idempotent.
pub fn install(kubectl: &Path, kubeconfig: &Path, repo: &Path) -> Result<(), Error> {
    install_gateway_api(kubectl, kubeconfig, repo)?;
    let crds = repo.join("crds");
    let rbac = repo.join("deploy/rbac.yaml");
    run_kubectl(
        kubectl,
        kubeconfig,
        &[
            "apply".as_ref(),
            "--server-side".as_ref(),
            "--field-manager=gongshu-e2e".as_ref(),
            "-f".as_ref(),
            crds.as_os_str(),
        ],
    )?;
    run_kubectl(
        kubectl,
        kubeconfig,
        &[
            "wait",
            "--for=condition=Established",
            "crd",
            "--all",
            "--timeout=60s",
        ],
    )?;
    // The process runner's account too: the suites run backups both ways.
    let process_runner = repo.join("deploy/rbac-process-runner.yaml");
    run_kubectl(
        kubectl,
        kubeconfig,
        &[
            "apply".as_ref(),
            "-f".as_ref(),
            rbac.as_os_str(),
            "-f".as_ref(),
            process_runner.as_os_str(),
        ],
    )
}

/// Installs the experimental-channel Gateway API CRDs of [`upstream::GATEWAY_API_CRDS`] from
/// the pinned module ([`upstream::ensure_gateway_api`]) and waits until they are established,
/// so that the cluster serves every route kind a department might create. Server-side, because
/// these CRDs are too large for the last-applied annotation. Idempotent.
pub fn install_gateway_api(kubectl: &Path, kubeconfig: &Path, repo: &Path) -> Result<(), Error> {
    let crds = upstream::ensure_gateway_api(repo)?;
    let mut apply: Vec<OsString> = vec![
        "apply".into(),
        "--server-side".into(),
        "--field-manager=gongshu-e2e".into(),
    ];
    for file in upstream::gateway_api_crd_files(&crds) {
        apply.push("-f".into());
        apply.push(file.into());
    }
    run_kubectl(kubectl, kubeconfig, &apply)?;
    let mut wait: Vec<OsString> = vec!["wait".into(), "--for=condition=Established".into()];
    for plural in upstream::GATEWAY_API_CRDS {
        wait.push(format!("crd/{plural}.gateway.networking.k8s.io").into());
    }
    wait.push("--timeout=60s".into());
    run_kubectl(kubectl, kubeconfig, &wait)
}

/// Runs `kubectl args` against `kubeconfig`, failing with its stderr.
fn run_kubectl<S: AsRef<OsStr> + std::fmt::Debug>(
    kubectl: &Path,
    kubeconfig: &Path,
    args: &[S],
) -> Result<(), Error> {
    let out = Command::new(kubectl)
        .env("KUBECONFIG", kubeconfig)
        .args(args)
        .output()
        .map_err(|e| Error::Spawn {
            program: "kubectl".into(),
            source: e,
        })?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Harness(format!(
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    )))
}

/// The Secret in `gongshu-system` where operators started here keep their webhook
/// certificates.
pub const WEBHOOK_SECRET: &str = "gongshu-webhook-tls";

/// How long the ServiceAccount token of a process started here is valid.
const TOKEN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// What a gongshu process started here runs as, as in its pod: a kubeconfig (written to
/// `kubeconfig`) with a token of its ServiceAccount `service_account` in `gongshu-system`, and
/// a serving certificate for loopback named `common_name`, signed by the cluster CA and written
/// to `tls_dir`. Returns the kubeconfig, the cluster's PKI and the certificate.
pub(crate) async fn identity(
    cluster_dir: &Path,
    service_account: &str,
    kubeconfig: &Path,
    tls_dir: &Path,
    common_name: &str,
) -> Result<(std::path::PathBuf, pki::Pki, pki::CertPair), Error> {
    let kubeconfig = service_account_kubeconfig(
        &cluster_dir.join("admin.kubeconfig"),
        "gongshu-system",
        service_account,
        TOKEN_TTL,
        kubeconfig,
    )
    .await?;
    let pki = pki::load(&cluster_dir.join("pki"));
    let cert = pki::sign_serving(
        &pki,
        tls_dir,
        common_name,
        &["localhost"],
        &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
    )?;
    Ok((kubeconfig, pki, cert))
}

/// Starts `binary operator` against the cluster whose state is in `cluster_dir` (PKI, admin
/// kubeconfig), logging to `log`. `deploy/rbac.yaml` must be applied. The webhook serves with
/// certificates the operator makes and rotates itself (`--webhook-cert-secret`), as in a
/// cluster without cert-manager.
pub async fn start(
    binary: &Path,
    cluster_dir: &Path,
    log: &Path,
    extra_env: &[(&str, &str)],
) -> Result<Process, Error> {
    let kubeconfig = service_account_kubeconfig(
        &cluster_dir.join("admin.kubeconfig"),
        "gongshu-system",
        "gongshu-operator",
        TOKEN_TTL,
        &cluster_dir.join("operator.kubeconfig"),
    )
    .await?;
    // Backup runners the operator starts run as their own ServiceAccount, as Jobs would.
    let backup_kubeconfig = service_account_kubeconfig(
        &cluster_dir.join("admin.kubeconfig"),
        "gongshu-system",
        "gongshu-backup",
        TOKEN_TTL,
        &cluster_dir.join("backup.kubeconfig"),
    )
    .await?;
    let port = free_port()?;
    let mut cmd = Command::new(binary);
    cmd.arg("operator")
        .env("KUBECONFIG", &kubeconfig)
        .env("GONGSHU_BACKUP_KUBECONFIG", &backup_kubeconfig)
        .env("GONGSHU_ADMIN_ADDR", "127.0.0.1:0")
        .env("GONGSHU_WEBHOOK_ADDR", format!("127.0.0.1:{port}"))
        .env(
            "GONGSHU_WEBHOOK_URL",
            format!("https://127.0.0.1:{port}/validate"),
        )
        .env("GONGSHU_WEBHOOK_CERT_SECRET", WEBHOOK_SECRET);
    for (key, value) in extra_env {
        cmd.env(key, value);
    }
    Process::spawn("gongshu-operator", &mut cmd, log)
}
