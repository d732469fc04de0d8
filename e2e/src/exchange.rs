//! `gongshu exchange` as a local process, set up as its pod would be: its own
//! least-privilege ServiceAccount (`deploy/rbac.yaml`), a serving certificate the cluster CA
//! signed, an audit directory, and a checkpoint ConfigMap of its own.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use crate::{Error, controlplane::free_port, process::Process};

/// A running exchange.
#[derive(Debug)]
pub struct Exchange {
    /// The process.
    pub process: Process,
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    /// Its admin listener (`127.0.0.1:<port>`, plain HTTP: `/metrics`, `/healthz`, `/readyz`).
    pub admin: String,
    /// An HTTPS client trusting the exchange's CA.
    pub http: reqwest::Client,
    /// Its audit directory.
    pub audit_dir: PathBuf,
    /// Its checkpoint ConfigMap, in `gongshu-system`.
    pub checkpoint: String,
    /// The CA that signed its certificate (the cluster CA).
    pub ca_file: PathBuf,
    /// Its log.
    pub log: PathBuf,
}

impl Exchange {
    /// Starts `binary exchange` against the cluster whose state is in `cluster_dir`, with its
    /// audit log in `dir/audit` and checkpoint ConfigMap `checkpoint`, and waits until it is
    /// ready (its caches listed).
    pub async fn start(
        binary: &Path,
        cluster_dir: &Path,
        dir: &Path,
        checkpoint: &str,
    ) -> Result<Self, Error> {
        Self::start_with(binary, cluster_dir, dir, checkpoint, &[]).await
    }

    /// [`Exchange::start`] with `extra_env` (e.g. `GONGSHU_FILE_ROOT`).
    pub async fn start_with(
        binary: &Path,
        cluster_dir: &Path,
        dir: &Path,
        checkpoint: &str,
        extra_env: &[(&str, &Path)],
    ) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let (kubeconfig, pki, cert) = crate::operator::identity(
            cluster_dir,
            "gongshu-exchange",
            &dir.join("exchange.kubeconfig"),
            &dir.join("tls"),
            "gongshu-exchange",
        )
        .await?;
        let audit_dir = dir.join("audit");
        let log = dir.join("exchange.log");
        let port = free_port()?;
        let mut cmd = Command::new(binary);
        cmd.arg("exchange")
            .env("KUBECONFIG", &kubeconfig)
            .env("GONGSHU_EXCHANGE_ADDR", format!("127.0.0.1:{port}"))
            // A free port, which it logs (`admin server listening addr=…`).
            .env("GONGSHU_EXCHANGE_ADMIN_ADDR", "127.0.0.1:0")
            .env("GONGSHU_EXCHANGE_CERT_FILE", &cert.cert)
            .env("GONGSHU_EXCHANGE_KEY_FILE", &cert.key)
            .env("GONGSHU_AUDIT_DIR", &audit_dir)
            .env("GONGSHU_AUDIT_CHECKPOINT", checkpoint)
            .env("GONGSHU_USAGE_INTERVAL_SECONDS", "1")
            .env("POD_NAMESPACE", "gongshu-system")
            .env("RUST_LOG", "info,kube=warn");
        for (key, value) in extra_env {
            cmd.env(key, value);
        }
        let mut exchange = Self {
            process: Process::spawn("gongshu-exchange", &mut cmd, &log)?,
            url: format!("https://127.0.0.1:{port}"),
            admin: String::new(),
            http: client(&pki.ca_cert)?,
            audit_dir,
            checkpoint: checkpoint.to_owned(),
            ca_file: pki.ca_cert.clone(),
            log,
        };
        exchange.wait_ready(Duration::from_secs(30)).await?;
        // Logged before the data port listens, so it is there once that answers.
        exchange.admin = crate::observe::admin_addr(&exchange.log)?;
        Ok(exchange)
    }

    /// Polls `/readyz` until 200.
    async fn wait_ready(&mut self, timeout: Duration) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.process.check_alive()?;
            let ready = self.http.get(format!("{}/readyz", self.url)).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Error::Harness(format!(
                    "the exchange was not ready within {timeout:?}; log:\n{}",
                    self.process.log_tail(40)
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// An HTTPS client that trusts `ca_file` only.
pub fn client(ca_file: &Path) -> Result<reqwest::Client, Error> {
    let pem = std::fs::read(ca_file).map_err(|e| Error::io(ca_file, e))?;
    let ca = reqwest::Certificate::from_pem(&pem)
        .map_err(|e| Error::Harness(format!("CA {}: {e}", ca_file.display())))?;
    reqwest::Client::builder()
        .add_root_certificate(ca)
        .tls_built_in_root_certs(false)
        .build()
        .map_err(|e| Error::Harness(format!("cannot build an HTTPS client: {e}")))
}

impl Exchange {
    /// Leaves the exchange running past this handle (the demo), returning its pid.
    pub fn detach(self) -> i32 {
        let pid = self.process.pid();
        std::mem::forget(self);
        pid
    }
}

impl Drop for Exchange {
    /// Stops the process (SIGTERM, then SIGKILL after 5 s); a killed one is already gone.
    fn drop(&mut self) {
        crate::process::terminate(self.process.pid(), Duration::from_secs(5));
    }
}
