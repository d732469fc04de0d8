//! `gongshu backup run` and `gongshu backup verify`: one run or restore drill of a
//! `BackupPolicy`, reading the policy and its Secrets from the apiserver and reporting into its
//! status. The same code runs as a Job in a cluster and as a process the operator starts where
//! no node runs pods.
//!
//! The runner owns the status fields it reports (`running`, `lastBackup`, `lastFailure`,
//! `lastVerifiedRestore`, `lastFailedDrill`) and writes them with merge patches; the operator's
//! scheduling fields are never touched here.

use std::{
    path::{Component, Path, PathBuf},
    str::FromStr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use bytes::Bytes;
use gongshu_api::{
    rules::backup::retention::{self, Candidate},
    v1alpha1::{BackupPolicy, BackupSource, DataCatalog},
};
use jiff::{Timestamp, tz::TimeZone};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::events::{Event, EventType},
};
use serde_json::json;
use tracing::{info, warn};

use super::{
    manifest::{Layout, Manifest, VERIFIED, new_id},
    restore::{self, Identities, RestoreError, Targets},
    run::{self, Job, Progress, RunError, Source},
    store::{Destination, S3Settings, StoreError},
};
use crate::secret::{self, SecretError};

/// The Event reporter of runs.
pub const REPORTER: &str = "gongshu-backup";
/// Leftovers of an interrupted run younger than this are left alone by retention.
const LEFTOVER_GRACE: jiff::SignedDuration = jiff::SignedDuration::from_hours(1);

/// A run or drill failed before, around or after the backup itself.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The policy cannot be read.
    #[error("cannot read BackupPolicy {namespace}/{name}: {source}")]
    Policy {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// A Secret the policy names cannot be read.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The policy asks for something this runner cannot do.
    #[error("{0}")]
    Invalid(String),
    /// The backup failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The drill's restore failed.
    #[error(transparent)]
    Restore(#[from] RestoreError),
    /// A destination failed outside a run (listing, retention, markers).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The run read nothing for too long.
    #[error("no progress for {0:?}; the run was stopped")]
    Stalled(Duration),
    /// The status cannot be written.
    #[error("cannot write the status of {name}: {source}")]
    Status {
        /// The policy.
        name: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

impl RunnerError {
    /// A stable label for status, metrics and Events.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Policy { .. } | Self::Invalid(_) => "policy",
            Self::Secret(_) => "secret",
            Self::Run(e) => e.category(),
            Self::Restore(_) => "restore",
            Self::Store(_) => "destination",
            Self::Stalled(_) => "stalled",
            Self::Status { .. } => "status",
        }
    }
}

/// How this runner reaches sources and destinations.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where catalog items' file paths are (as the exchange's `--file-root`).
    pub file_root: PathBuf,
    /// Local destinations must be under this directory.
    pub local_root: PathBuf,
    /// The exchange's audit directory, for `auditLog` sources.
    pub audit_dir: Option<PathBuf>,
    /// How long one S3 request is retried before the run fails.
    pub s3_retry: Duration,
    /// Extra zstd threads.
    pub zstd_workers: u32,
    /// How often progress is written into the status.
    pub progress_every: Duration,
    /// A run that reads nothing for this long fails.
    pub stall_after: Duration,
}

/// The policy `namespace`/`name`.
pub async fn policy(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<BackupPolicy, RunnerError> {
    Api::<BackupPolicy>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .map_err(|source| RunnerError::Policy {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        })
}

/// The policy's destinations, local first.
pub async fn destinations(
    client: &Client,
    policy: &BackupPolicy,
    config: &Config,
) -> Result<Vec<Destination>, RunnerError> {
    let namespace = policy.namespace().unwrap_or_default();
    let name = policy.name_any();
    let spec = &policy.spec.destinations;
    let mut found = Vec::new();
    if let Some(local) = &spec.local {
        found.push(Destination::local(
            &confined(&config.local_root, &local.path)?,
            Layout::new("", &namespace, &name),
        )?);
    }
    let offsite = &spec.offsite;
    let read =
        |key: &'static str| secret::read(client, &namespace, &offsite.credentials_secret, key);
    let settings = S3Settings {
        endpoint: offsite.endpoint.clone(),
        bucket: offsite.bucket.clone(),
        region: offsite.region.clone(),
        access_key_id: read("accessKeyId").await?,
        secret_access_key: read("secretAccessKey").await?,
        retry_timeout: config.s3_retry,
        ca_bundle: secret::read_optional(
            client,
            &namespace,
            &offsite.credentials_secret,
            "caBundle",
        )
        .await?,
    };
    found.push(Destination::s3(
        &settings,
        Layout::new(offsite.prefix.as_deref().unwrap_or(""), &namespace, &name),
    )?);
    Ok(found)
}

/// `path` itself (absolute, no `..`) if it lies under `root`: where a policy's local
/// destination may be, so that a department cannot make the runner write elsewhere.
fn confined(root: &Path, path: &str) -> Result<PathBuf, RunnerError> {
    let candidate = Path::new(path);
    let plain = candidate
        .components()
        .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if !candidate.is_absolute() || !plain || !candidate.starts_with(root) {
        return Err(RunnerError::Invalid(format!(
            "spec.destinations.local.path {path} is not a directory under {} (the runner's \
             --local-root); ask the platform team where local backups may go",
            root.display()
        )));
    }
    Ok(candidate.to_path_buf())
}

/// `path` (absolute, no `..`) under `root`.
fn under(root: &Path, path: &str) -> Result<PathBuf, RunnerError> {
    let relative = Path::new(path.trim_start_matches('/'));
    if !path.starts_with('/')
        || relative
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(RunnerError::Invalid(format!(
            "path {path} must be absolute and must not contain `..`"
        )));
    }
    Ok(root.join(relative))
}

async fn source(
    client: &Client,
    namespace: &str,
    source: &BackupSource,
    config: &Config,
) -> Result<Source, RunnerError> {
    let name = source.name.clone();
    if let Some(pg) = &source.postgres {
        let uri = secret::read_ref(client, namespace, &pg.connection_secret_ref).await?;
        return Ok(Source::Postgres {
            name,
            uri,
            tables: pg.tables.clone(),
        });
    }
    if let Some(path) = &source.path {
        return Ok(Source::Path {
            name,
            path: under(&config.file_root, path)?,
            audit: false,
        });
    }
    if source.audit_log == Some(true) {
        let dir = config.audit_dir.clone().ok_or_else(|| {
            RunnerError::Invalid(format!(
                "source {name} backs up the audit log, but this runner has no --audit-dir"
            ))
        })?;
        return Ok(Source::Path {
            name,
            path: dir,
            audit: true,
        });
    }
    let Some(identifier) = &source.catalog_item else {
        return Err(RunnerError::Invalid(format!(
            "source {name} names nothing to back up"
        )));
    };
    let catalogs = Api::<DataCatalog>::namespaced(client.clone(), namespace)
        .list(&Default::default())
        .await
        .map_err(|e| {
            RunnerError::Invalid(format!("cannot list the catalogs of {namespace}: {e}"))
        })?;
    let item = catalogs
        .items
        .iter()
        .flat_map(|c| c.spec.items.iter())
        .find(|i| &i.identifier == identifier)
        .ok_or_else(|| {
            RunnerError::Invalid(format!(
                "source {name}: no catalog in {namespace} has the item {identifier}"
            ))
        })?;
    if let Some(pg) = &item.source.postgres {
        let uri = secret::read_ref(client, namespace, &pg.connection_secret_ref).await?;
        Ok(Source::Postgres {
            name,
            uri,
            tables: vec![format!("{}.{}", pg.schema, pg.table)],
        })
    } else if let Some(file) = &item.source.file {
        Ok(Source::Path {
            name,
            path: under(&config.file_root, &file.path)?,
            audit: false,
        })
    } else {
        Err(RunnerError::Invalid(format!(
            "source {name}: item {identifier} is an HTTP upstream, which is not backed up"
        )))
    }
}

async fn recipients(
    client: &Client,
    policy: &BackupPolicy,
) -> Result<Vec<age::x25519::Recipient>, RunnerError> {
    let namespace = policy.namespace().unwrap_or_default();
    let encryption = &policy.spec.encryption;
    let mut texts: Vec<String> = encryption.recipients.iter().map(|r| r.0.clone()).collect();
    if let Some(secret) = &encryption.recipients_secret_ref {
        let more = secret::read_ref(client, &namespace, secret).await?;
        texts.extend(
            more.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    texts
        .iter()
        .map(|t| {
            age::x25519::Recipient::from_str(t)
                .map_err(|e| RunnerError::Invalid(format!("recipient {t}: {e}")))
        })
        .collect()
}

/// `age` identities in `text` (one `AGE-SECRET-KEY-1…` per line; `#` comments allowed).
pub fn identities(text: &str) -> Result<Identities, RunnerError> {
    let keys: Vec<Box<dyn age::Identity + Send + Sync>> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            age::x25519::Identity::from_str(l)
                .map(|i| Box::new(i) as Box<dyn age::Identity + Send + Sync>)
                .map_err(|_| RunnerError::Invalid("not an age X25519 identity".into()))
        })
        .collect::<Result<_, _>>()?;
    if keys.is_empty() {
        return Err(RunnerError::Invalid("no age identity given".into()));
    }
    Ok(Arc::new(keys))
}

async fn patch(
    client: &Client,
    policy: &BackupPolicy,
    status: serde_json::Value,
) -> Result<(), RunnerError> {
    let name = policy.name_any();
    Api::<BackupPolicy>::namespaced(client.clone(), &policy.namespace().unwrap_or_default())
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .map(drop)
        .map_err(|source| RunnerError::Status { name, source })
}

async fn event(
    client: &Client,
    policy: &BackupPolicy,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let publisher = crate::events::Publisher::new(
        client.clone(),
        REPORTER,
        &hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Backup".into(),
        secondary: None,
    };
    if let Err(error) = publisher.publish(&event, &policy.object_ref(&())).await {
        warn!(%error, reason, "cannot publish Event");
    }
}

/// The `BackupFailure` of `error` in backup `backup_id`, one more attempt than `previous`.
fn failure(
    previous: Option<&gongshu_api::v1alpha1::BackupFailure>,
    backup_id: &str,
    error: &RunnerError,
) -> serde_json::Value {
    json!({
        "backupId": backup_id, "at": Timestamp::now(), "category": error.category(),
        "message": error.to_string(), "attempts": previous.map_or(0, |f| f.attempts) + 1,
    })
}

/// Runs one backup of `namespace`/`name` for the scheduled time `scheduled`, reporting
/// progress and the outcome in its status.
pub async fn run(
    client: &Client,
    namespace: &str,
    name: &str,
    scheduled: Option<Timestamp>,
    config: &Config,
) -> Result<Manifest, RunnerError> {
    let policy = policy(client, namespace, name).await?;
    let started = Timestamp::now();
    let id = new_id(started);
    let progress = Progress::default();
    let report = {
        let id = id.clone();
        move |done: u64, total: u64, rate: u64, now: Timestamp| {
            json!({ "running": {
                "id": id, "startedAt": started, "updatedAt": now,
                "bytesDone": done, "bytesTotal": (total > 0).then_some(total), "bytesPerSecond": rate,
            }})
        }
    };
    patch(client, &policy, report(0, 0, 0, started)).await?;
    info!(namespace, name, id, "backup started");
    let reporter = {
        let (client, policy, progress, every) = (
            client.clone(),
            policy.clone(),
            progress.clone(),
            config.progress_every,
        );
        let report = report.clone();
        let stall_after = config.stall_after;
        async move {
            let mut last = (0u64, std::time::Instant::now());
            let mut moved = std::time::Instant::now();
            loop {
                tokio::time::sleep(every).await;
                let done = progress.done.load(Ordering::Relaxed);
                if done != last.0 {
                    moved = std::time::Instant::now();
                } else if moved.elapsed() > stall_after {
                    // A run that reads nothing for this long is stuck (a hung source or
                    // destination): fail it, so it is retried, rather than report it forever.
                    return RunnerError::Stalled(stall_after);
                }
                let total = progress.total.load(Ordering::Relaxed);
                let secs = last.1.elapsed().as_secs_f64().max(0.001);
                let rate = ((done - last.0) as f64 / secs) as u64;
                last = (done, std::time::Instant::now());
                info!(
                    bytes_done = done,
                    bytes_total = total,
                    bytes_per_second = rate,
                    "backup progress"
                );
                if let Err(error) = patch(
                    &client,
                    &policy,
                    report(done, total, rate, Timestamp::now()),
                )
                .await
                {
                    warn!(%error, "cannot report progress");
                }
            }
        }
    };
    let work = async {
        let mut sources = Vec::with_capacity(policy.spec.sources.len());
        for s in &policy.spec.sources {
            sources.push(source(client, namespace, s, config).await?);
        }
        let job = Job {
            namespace: namespace.to_owned(),
            policy: name.to_owned(),
            id: id.clone(),
            scheduled_for: scheduled,
            sources,
            zstd_level: policy.spec.compression.level,
            zstd_workers: config.zstd_workers,
            recipients: recipients(client, &policy).await?,
            destinations: destinations(client, &policy, config).await?,
        };
        let manifest = run::backup(&job, &progress).await?;
        Ok::<_, RunnerError>((manifest, job.destinations))
    };
    let outcome = tokio::select! {
        outcome = work => outcome,
        stalled = reporter => Err(stalled),
    };
    match outcome {
        Ok((manifest, destinations)) => {
            let bytes = Bytes::from(serde_json::to_vec_pretty(&manifest).unwrap_or_default());
            let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
            let duration = manifest
                .completed_at
                .duration_since(manifest.started_at)
                .as_secs();
            patch(
                client,
                &policy,
                json!({
                    "running": null,
                    "lastFailure": null,
                    "lastBackup": {
                        "id": manifest.id, "startedAt": manifest.started_at,
                        "completedAt": manifest.completed_at,
                        "bytes": manifest.cipher_bytes(), "sourceBytes": manifest.plain_bytes(),
                        "durationSeconds": duration, "sha256": sha,
                    },
                }),
            )
            .await?;
            event(
                client,
                &policy,
                EventType::Normal,
                "BackupSucceeded",
                format!(
                    "backup {} complete: {} objects, {} bytes read, {} bytes stored in {}s",
                    manifest.id,
                    manifest.objects().count(),
                    manifest.plain_bytes(),
                    manifest.cipher_bytes(),
                    duration
                ),
            )
            .await;
            if let Err(error) = apply_retention(&policy, &destinations, &manifest.id).await {
                warn!(%error, "retention failed");
                event(
                    client,
                    &policy,
                    EventType::Warning,
                    "RetentionFailed",
                    error.to_string(),
                )
                .await;
            }
            Ok(manifest)
        }
        Err(error) => {
            let failure = failure(
                policy.status.as_ref().and_then(|s| s.last_failure.as_ref()),
                &id,
                &error,
            );
            warn!(%error, category = error.category(), "backup failed");
            patch(
                client,
                &policy,
                json!({ "running": null, "lastFailure": failure }),
            )
            .await?;
            event(
                client,
                &policy,
                EventType::Warning,
                "BackupFailed",
                format!("backup {id} failed ({}): {error}", error.category()),
            )
            .await;
            Err(error)
        }
    }
}

/// Deletes the backups the policy's retention does not keep, in every destination, and the
/// leftovers of interrupted runs older than an hour (never `current`).
pub async fn apply_retention(
    policy: &BackupPolicy,
    destinations: &[Destination],
    current: &str,
) -> Result<Vec<String>, RunnerError> {
    let tz = TimeZone::get(&policy.spec.time_zone).unwrap_or(TimeZone::UTC);
    let now = Timestamp::now();
    let mut deleted = Vec::new();
    for destination in destinations {
        let listed = destination.list().await?;
        let candidates: Vec<Candidate> = listed
            .iter()
            .filter_map(|l| {
                l.manifest.as_ref().map(|m| Candidate {
                    id: l.id.clone(),
                    completed: m.completed_at,
                    verified: l.verified,
                    audit: m.has_audit(),
                })
            })
            .collect();
        for decision in retention::plan(&candidates, &policy.spec.retention, &tz, now) {
            if !decision.keep {
                destination.delete(&decision.id).await?;
                info!(
                    destination = destination.name,
                    id = decision.id,
                    "retention deleted a backup"
                );
                deleted.push(format!("{}:{}", destination.name, decision.id));
            }
        }
        for leftover in listed
            .iter()
            .filter(|l| l.manifest.is_none() && l.id != current)
        {
            let started = leftover
                .id
                .get(..16)
                .and_then(|t| jiff::fmt::strtime::parse("%Y%m%dT%H%M%SZ", t).ok())
                .and_then(|t| t.to_datetime().ok())
                .and_then(|t| t.to_zoned(TimeZone::UTC).ok())
                .map(|z| z.timestamp());
            if started.is_some_and(|t| now.duration_since(t) > LEFTOVER_GRACE) {
                destination.delete(&leftover.id).await?;
                info!(
                    destination = destination.name,
                    id = leftover.id,
                    "removed an interrupted run's leftovers"
                );
            }
        }
    }
    Ok(deleted)
}

/// Runs one restore drill of `namespace`/`name`: restores the newest off-site backup into a
/// scratch target, compares it with its manifest, marks it verified and reports in the status.
pub async fn verify(
    client: &Client,
    namespace: &str,
    name: &str,
    config: &Config,
) -> Result<restore::Report, RunnerError> {
    let policy = policy(client, namespace, name).await?;
    let mut backup_id = String::new();
    let outcome = async {
        let verification =
            policy.spec.verification.as_ref().ok_or_else(|| {
                RunnerError::Invalid("the policy has no spec.verification".into())
            })?;
        let identities = identities(
            &secret::read_ref(client, namespace, &verification.identity_secret_ref).await?,
        )?;
        let scratch = match &verification.postgres_secret_ref {
            Some(s) => Some(secret::read_ref(client, namespace, s).await?),
            None => None,
        };
        let destinations = destinations(client, &policy, config).await?;
        let offsite = destinations
            .iter()
            .find(|d| d.name == "offsite")
            .ok_or_else(|| RunnerError::Invalid("no off-site destination".into()))?;
        let newest = offsite
            .list()
            .await?
            .into_iter()
            .rev()
            .find_map(|l| l.manifest)
            .ok_or_else(|| RunnerError::Invalid("no complete backup to restore yet".into()))?;
        backup_id.clone_from(&newest.id);
        let scratch_dir = tempfile::tempdir()
            .map_err(|e| RunnerError::Invalid(format!("cannot create a scratch directory: {e}")))?;
        let targets = Targets {
            postgres: scratch,
            replace: true,
            directory: Some(scratch_dir.path().to_path_buf()),
            only: Vec::new(),
            check_only: true,
        };
        let report = restore::restore(offsite, &newest, &identities, &targets).await?;
        let marker = Bytes::from(
            serde_json::to_vec_pretty(
                &json!({ "at": Timestamp::now(), "checked": report.summary() }),
            )
            .unwrap_or_default(),
        );
        for d in &destinations {
            if d.manifest(&newest.id).await?.is_some() {
                d.put(&newest.id, VERIFIED, marker.clone()).await?;
            }
        }
        Ok::<_, RunnerError>(report)
    }
    .await;
    match outcome {
        Ok(report) => {
            patch(
                client,
                &policy,
                json!({
                    "lastFailedDrill": null,
                    "lastVerifiedRestore": {
                        "backupId": backup_id, "at": Timestamp::now(), "checked": report.summary(),
                    },
                }),
            )
            .await?;
            event(
                client,
                &policy,
                EventType::Normal,
                "DrillSucceeded",
                format!(
                    "backup {backup_id} restored into a scratch target: {}",
                    report.summary()
                ),
            )
            .await;
            Ok(report)
        }
        Err(error) => {
            let failure = failure(
                policy
                    .status
                    .as_ref()
                    .and_then(|s| s.last_failed_drill.as_ref()),
                &backup_id,
                &error,
            );
            patch(client, &policy, json!({ "lastFailedDrill": failure })).await?;
            event(
                client,
                &policy,
                EventType::Warning,
                "DrillFailed",
                format!(
                    "restore drill of backup {backup_id} failed ({}): {error}",
                    error.category()
                ),
            )
            .await;
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_destinations_stay_under_the_local_root() {
        let root = Path::new("/var/backups");
        assert_eq!(
            confined(root, "/var/backups/dept/nightly").unwrap(),
            Path::new("/var/backups/dept/nightly")
        );
        for outside in [
            "/etc",
            "/var/backups/../../etc",
            "var/backups/x",
            "/var/backupsx",
        ] {
            let error = confined(root, outside).unwrap_err().to_string();
            assert!(error.contains("--local-root"), "{outside}: {error}");
        }
    }
}
