//! A real S3 server for the backup suites and benchmarks: versitygw (built from its Go module,
//! `e2e/upstream/versitygw`) with its POSIX backend, on a free loopback port, in a directory of
//! its own. Buckets are directories of that backend; metadata goes to a sidecar directory so
//! the filesystem needs no extended attributes (the POSIX backend otherwise stores ETags,
//! checksums and ACLs as xattrs, which tmpfs and some overlay filesystems refuse).
//!
//! The command line is `versitygw --access <key> --secret <secret> --port 127.0.0.1:<port>
//! --quiet posix --sidecar <dir>/meta <dir>/buckets`, its output in `<dir>/s3.log`.
//! [`S3Server::start_on`] binds another address instead of loopback (the e2e node's gateway,
//! for pods to reach it; the host reaches it there too), and [`S3Server::start_tls_on`]
//! serves HTTPS there (`--cert`, `--key`) with a certificate the harness CA signed, as the
//! rules require of an off-site endpoint that is not on loopback (SEC-2).

use std::{
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use object_store::aws::{AmazonS3, AmazonS3Builder};

use crate::{Error, controlplane::free_port, process::Process};

/// The server's root access key.
const ACCESS_KEY: &str = "gongshu-e2e";
/// How long the server may take to answer after a start.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTPS server's certificate, key and CA (PEM files).
#[derive(Clone, Debug)]
pub struct Tls {
    /// The serving certificate and key.
    pub pair: crate::pki::CertPair,
    /// The CA certificate that signed it.
    pub ca: PathBuf,
}

/// A running versitygw; stopped when dropped.
#[derive(Debug)]
pub struct S3Server {
    process: Option<Process>,
    binary: PathBuf,
    dir: PathBuf,
    host: IpAddr,
    /// The serving certificate and the CA that signed it, when it serves HTTPS.
    tls: Option<Tls>,
    port: u16,
    secret: String,
    /// Whether the directory is ours to remove on drop ([`start`](S3Server::start)).
    temporary: bool,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(p) = self.process.take() {
            p.stop(Duration::from_secs(5));
        }
        if self.temporary {
            if std::thread::panicking() {
                // Keep the data and the log of a failed test to look at.
                eprintln!("S3 server data and log kept in {}", self.dir.display());
            } else {
                let _ = std::fs::remove_dir_all(&self.dir);
            }
        }
    }
}

impl S3Server {
    /// Builds versitygw if needed and starts it in a fresh directory under the system's
    /// temporary directory (removed on drop, kept when a test panics); waits until it answers.
    pub async fn start() -> Result<Self, Error> {
        Self::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST)).await
    }

    /// [`start`](Self::start), bound to `host` (one address, e.g. the e2e node's gateway
    /// 10.77.0.1, which must exist) instead of loopback; [`endpoint`](Self::endpoint) names it.
    pub async fn start_on(host: IpAddr) -> Result<Self, Error> {
        let dir =
            std::env::temp_dir().join(format!("gongshu-s3-{}", crate::harness::random_suffix()));
        let mut server = Self::new(&dir, host, free_port()?, None)?;
        server.temporary = true;
        server.restart().await?;
        Ok(server)
    }

    /// [`start_on`](Self::start_on), serving HTTPS with a certificate for `host` that the CA
    /// of `pki` signs (written to the server's directory): [`endpoint`](Self::endpoint) is
    /// `https://…`, [`ca_pem`](Self::ca_pem) the CA a client must trust.
    pub async fn start_tls_on(host: IpAddr, pki: &crate::pki::Pki) -> Result<Self, Error> {
        let dir =
            std::env::temp_dir().join(format!("gongshu-s3-{}", crate::harness::random_suffix()));
        let mut server = Self::new(&dir, host, free_port()?, None)?;
        server.temporary = true;
        let pair = crate::pki::sign_serving(pki, &dir.join("tls"), "gongshu-e2e-s3", &[], &[host])?;
        server.tls = Some(Tls {
            pair,
            ca: pki.ca_cert.clone(),
        });
        server.restart().await?;
        Ok(server)
    }

    /// The PEM of the CA that signed its certificate, when it serves HTTPS.
    pub fn ca_pem(&self) -> Option<String> {
        self.tls
            .as_ref()
            .and_then(|t| std::fs::read_to_string(&t.ca).ok())
    }

    /// Starts it with its data in `dir` (`dir/buckets`, `dir/meta`, `dir/s3.log`).
    pub async fn start_in(dir: &Path) -> Result<Self, Error> {
        Self::start_at(dir, free_port()?, None).await
    }

    /// Starts it in `dir` on loopback `port`, with `secret` as the root secret key (random
    /// when `None`).
    pub async fn start_at(dir: &Path, port: u16, secret: Option<&str>) -> Result<Self, Error> {
        let mut server = Self::new(dir, IpAddr::V4(Ipv4Addr::LOCALHOST), port, secret)?;
        server.restart().await?;
        Ok(server)
    }

    /// A server of `dir` on `host:port`, not started yet.
    fn new(dir: &Path, host: IpAddr, port: u16, secret: Option<&str>) -> Result<Self, Error> {
        let binary = crate::upstream::ensure_s3_built(&crate::cluster::repo_root())?;
        for d in [dir.join("buckets"), dir.join("meta")] {
            std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
        }
        Ok(Self {
            process: None,
            binary,
            dir: dir.to_path_buf(),
            host,
            tls: None,
            port,
            secret: secret.map_or_else(
                || crate::harness::random_suffix() + &crate::harness::random_suffix(),
                str::to_owned,
            ),
            temporary: false,
        })
    }

    /// Leaves the server running past this handle (the demo), returning its pid.
    pub fn detach(mut self) -> Option<i32> {
        self.process.take().map(|p| {
            let pid = p.pid();
            std::mem::forget(p);
            pid
        })
    }

    /// `http://127.0.0.1:<port>` (or the address of [`start_on`](Self::start_on); `https://`
    /// from [`start_tls_on`](Self::start_tls_on)).
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!(
            "{scheme}://{}",
            std::net::SocketAddr::new(self.host, self.port)
        )
    }

    /// The root access key id.
    pub fn access_key(&self) -> &str {
        ACCESS_KEY
    }

    /// The root secret key.
    pub fn secret_key(&self) -> &str {
        &self.secret
    }

    /// The region it answers for.
    pub fn region(&self) -> &str {
        "us-east-1"
    }

    /// The directory holding the buckets (one directory each).
    pub fn buckets_dir(&self) -> PathBuf {
        self.dir.join("buckets")
    }

    /// Creates bucket `name` (a directory of the POSIX backend).
    pub async fn create_bucket(&self, name: &str) -> Result<(), Error> {
        let path = self.buckets_dir().join(name);
        std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))
    }

    /// Stops the server (an outage); its data and port are kept for [`restart`](Self::restart).
    pub async fn stop(&mut self) -> Result<(), Error> {
        if let Some(p) = self.process.take() {
            p.stop(Duration::from_secs(5));
        }
        Ok(())
    }

    /// Starts the server on its port and data (again); waits until it answers.
    pub async fn restart(&mut self) -> Result<(), Error> {
        self.stop().await?;
        let mut cmd = Command::new(&self.binary);
        cmd.args(["--access", ACCESS_KEY, "--secret", &self.secret])
            .args([
                "--port",
                &std::net::SocketAddr::new(self.host, self.port).to_string(),
                "--quiet",
            ]);
        if let Some(tls) = &self.tls {
            cmd.arg("--cert")
                .arg(&tls.pair.cert)
                .arg("--key")
                .arg(&tls.pair.key);
        }
        cmd.arg("posix")
            .arg("--sidecar")
            .arg(self.dir.join("meta"))
            .arg(self.buckets_dir());
        let mut process = Process::spawn("versitygw", &mut cmd, &self.dir.join("s3.log"))?;
        let started = Instant::now();
        loop {
            process.check_alive()?;
            if tokio::net::TcpStream::connect((self.host, self.port))
                .await
                .is_ok()
            {
                break;
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(Error::Timeout {
                    what: "versitygw",
                    waited: READY_TIMEOUT,
                    log_tail: process.log_tail(20),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.process = Some(process);
        Ok(())
    }

    /// An `object_store` client of `bucket`, with SHA-256 checksums as the backups send them.
    pub fn object_store(&self, bucket: &str) -> Result<AmazonS3, Error> {
        self.object_store_builder(bucket)
            .build()
            .map_err(|e| Error::Harness(format!("S3 client: {e}")))
    }

    /// The builder behind [`object_store`](Self::object_store), for a test that needs other
    /// settings (say, fewer retries while the server is down).
    pub fn object_store_builder(&self, bucket: &str) -> AmazonS3Builder {
        let mut options = object_store::ClientOptions::new();
        if let Some(pem) = self.ca_pem()
            && let Ok(ca) = object_store::Certificate::from_pem(pem.as_bytes())
        {
            options = options.with_root_certificate(ca);
        }
        AmazonS3Builder::new()
            .with_client_options(options)
            .with_endpoint(self.endpoint())
            .with_bucket_name(bucket)
            .with_region(self.region())
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(&self.secret)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .with_checksum_algorithm(object_store::aws::Checksum::SHA256)
    }
}
