//! What a suite needs to give a `BackupPolicy` somewhere to write: a real S3 server with a
//! bucket, an age identity, the Secrets in the policy's namespace, and the operator settings
//! under which faults are noticed and retried in seconds.

use std::path::PathBuf;

use gongshu_api::v1alpha1::BackupPolicy;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, api::PostParams};
use serde_json::{Value, json};

use crate::{
    Error,
    harness::{TestEnv, age_keygen, random_suffix},
    s3::S3Server,
};

/// The Secret with the S3 credentials that [`BackupTarget::policy`] names.
pub const S3_SECRET: &str = "offsite-s3";

/// The operator's environment for backup suites: a lost runner is noticed after 8 s, a failed
/// run retried after 3 s (doubling), S3 retried for 3 s, progress reported every second, and
/// local destinations allowed under the system's temporary directory, where the suites keep
/// theirs.
pub fn operator_env() -> Vec<(&'static str, String)> {
    vec![
        ("GONGSHU_BACKUP_LOST_AFTER_SECONDS", "8".into()),
        ("GONGSHU_BACKUP_RETRY_SECONDS", "3".into()),
        ("GONGSHU_BACKUP_S3_RETRY_SECONDS", "3".into()),
        ("GONGSHU_BACKUP_PROGRESS_SECONDS", "1".into()),
        (
            "GONGSHU_BACKUP_LOCAL_ROOT",
            std::env::temp_dir().to_string_lossy().into_owned(),
        ),
    ]
}

/// The operator's environment for runs as Jobs (`--backup-runner job`) of `image`: a failed
/// run retried after 3 s (doubling), S3 retried for 3 s, progress every second, and `extra`
/// (e.g. `GONGSHU_BACKUP_JOB_DEADLINE_SECONDS`, `GONGSHU_BACKUP_JOB_START_SECONDS`,
/// `GONGSHU_BACKUP_IMAGE_PULL_POLICY=Never` for an image loaded into the node's containerd,
/// `GONGSHU_BACKUP_JOB_ENV`/`GONGSHU_BACKUP_JOB_ARGS` for where a pod reaches PostgreSQL and
/// S3). Runner Jobs are named `<policy>-r<yyyymmddhhmm>-<attempt>` (drills `-v…`), labelled
/// `gongshu.io/backup-policy-uid=<uid>` and `gongshu.io/backup=run|verify`, and run as
/// `gongshu-backup` in the policy's namespace.
pub fn job_operator_env(image: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("GONGSHU_BACKUP_RUNNER", "job"),
        ("GONGSHU_BACKUP_IMAGE", image),
        ("GONGSHU_BACKUP_LOST_AFTER_SECONDS", "8"),
        ("GONGSHU_BACKUP_RETRY_SECONDS", "3"),
        ("GONGSHU_BACKUP_S3_RETRY_SECONDS", "3"),
        ("GONGSHU_BACKUP_PROGRESS_SECONDS", "1"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    // A later entry for a variable replaces an earlier one.
    let mut seen = std::collections::HashSet::new();
    env.reverse();
    env.retain(|(k, _)| seen.insert(k.clone()));
    env.reverse();
    env
}

/// A directory of the test's own (sources, local destination, key) and an S3 server with a
/// bucket; the server is stopped and the directory removed when this is dropped (both kept
/// when the test fails).
#[derive(Debug)]
pub struct BackupTarget {
    /// The S3 server (stop and restart it for an outage).
    pub s3: S3Server,
    /// The bucket the policies write to.
    pub bucket: String,
    /// The test's directory.
    pub dir: PathBuf,
    /// The age identity file.
    pub identity: PathBuf,
    /// Its public key, the policies' recipient.
    pub recipient: String,
}

impl Drop for BackupTarget {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl BackupTarget {
    /// A directory `gongshu-backup-<name>-<random>` under the system's temporary directory
    /// with a `files/` directory holding one small file, a new age identity, and an S3 server
    /// with a fresh bucket.
    pub async fn start(name: &str) -> Result<Self, Error> {
        Self::start_with(name, S3Server::start()).await
    }

    /// [`start`](Self::start) with the S3 server bound to `host` (the e2e node's gateway, for
    /// runner pods to reach it) instead of loopback, serving HTTPS with a certificate of
    /// `pki`'s CA (an off-site endpoint off loopback must be `https://`, SEC-2).
    pub async fn start_tls_on(
        name: &str,
        host: std::net::IpAddr,
        pki: &crate::pki::Pki,
    ) -> Result<Self, Error> {
        Self::start_with(name, S3Server::start_tls_on(host, pki)).await
    }

    async fn start_with(
        name: &str,
        s3: impl std::future::Future<Output = Result<S3Server, Error>>,
    ) -> Result<Self, Error> {
        let dir = std::env::temp_dir().join(format!("gongshu-backup-{name}-{}", random_suffix()));
        let files = dir.join("files");
        std::fs::create_dir_all(&files).map_err(|e| Error::io(&files, e))?;
        let csv = files.join("licences.csv");
        std::fs::write(&csv, "code,holder\na,x\nb,y\n").map_err(|e| Error::io(&csv, e))?;
        let identity = dir.join("key.txt");
        let recipient = age_keygen(&identity)?;
        let s3 = s3.await?;
        let bucket = format!("offsite-{}", random_suffix());
        s3.create_bucket(&bucket).await?;
        Ok(Self {
            s3,
            bucket,
            dir,
            identity,
            recipient,
        })
    }

    /// The local destination of the policies.
    pub fn local(&self) -> PathBuf {
        self.dir.join("local")
    }

    /// The `files/` directory, as a `path` source.
    pub fn files_source(&self) -> Value {
        json!([{"name": "files", "path": self.dir.join("files").to_string_lossy()}])
    }

    /// Creates the Secret [`S3_SECRET`] with the server's credentials in `namespace` (and its
    /// CA as `caBundle` when it serves HTTPS).
    pub async fn install(&self, env: &TestEnv, namespace: &str) -> Result<(), Error> {
        let mut data =
            json!({"accessKeyId": self.s3.access_key(), "secretAccessKey": self.s3.secret_key()});
        if let Some(ca) = self.s3.ca_pem() {
            data["caBundle"] = ca.into();
        }
        secret(env, namespace, S3_SECRET, data).await
    }

    /// An every-minute policy `name` of `sources` with `rpo`, encrypted to the identity, to
    /// the local directory and the bucket, keeping two backups; no restore drill.
    pub fn policy(&self, name: &str, rpo: &str, sources: Value) -> BackupPolicy {
        let policy = json!({
            "apiVersion": "gongshu.io/v1alpha1",
            "kind": "BackupPolicy",
            "metadata": {"name": name},
            "spec": {
                "schedule": "* * * * *",
                "sources": sources,
                "encryption": {"recipients": [self.recipient]},
                "destinations": {
                    "local": {"path": self.local().to_string_lossy()},
                    "offsite": {
                        "endpoint": self.s3.endpoint(),
                        "bucket": self.bucket,
                        "prefix": "gongshu",
                        "credentialsSecret": S3_SECRET,
                    },
                },
                "retention": {"keepLast": 2},
                "rpo": rpo,
            }
        });
        match serde_json::from_value(policy) {
            Ok(p) => p,
            // A fixture that does not parse is a bug here, not in the code under test.
            Err(e) => panic!("backup policy fixture does not parse: {e}"),
        }
    }
}

/// Creates Secret `name` in `namespace` with `data` as its `stringData`.
pub async fn secret(env: &TestEnv, namespace: &str, name: &str, data: Value) -> Result<(), Error> {
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data}))
            .map_err(|e| Error::Harness(format!("secret {name}: {e}")))?;
    Api::<Secret>::namespaced(env.client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await?;
    Ok(())
}

/// `(status, reason, message)` of the policy's `Ready` condition (empty when it has none).
pub fn ready(policy: &BackupPolicy) -> (String, String, String) {
    policy
        .status
        .as_ref()
        .and_then(|s| s.common.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
        .unwrap_or_default()
}
