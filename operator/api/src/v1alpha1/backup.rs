//! `BackupPolicy`: scheduled, encrypted, local and off-site backups (SEC-1: XJ34, NM35, PJ27).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CommonStatus, ITEM_IDENTIFIER, SecretKeyRef};

/// A schedule of encrypted backups of catalog items, PostgreSQL databases and the audit log,
/// to a local and an off-site S3 destination, with retention and restore drills (SEC-1).
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gongshu.io",
    version = "v1alpha1",
    kind = "BackupPolicy",
    namespaced,
    status = "BackupPolicyStatus",
    shortname = "bkp",
    category = "gongshu",
    doc = "Scheduled, encrypted, local and off-site backups with retention and verified restores (SEC-1).",
    printcolumn = r#"{"name":"Schedule","type":"string","jsonPath":".spec.schedule"}"#,
    printcolumn = r#"{"name":"Last-Backup","type":"date","jsonPath":".status.lastBackup.completedAt"}"#,
    printcolumn = r#"{"name":"Next","type":"string","jsonPath":".status.nextRun"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.encryption.recipients.size() > 0 || has(self.encryption.recipientsSecretRef)")
        .message("SEC-1: backups are encrypted; give at least one age recipient in encryption.recipients or encryption.recipientsSecretRef")
        .field_path(".encryption")
        .reason(Reason::FieldValueRequired),
)]
pub struct BackupPolicySpec {
    /// Cron schedule (five fields, e.g. `0 2 * * *`), in `timeZone`.
    #[schemars(length(min = 9, max = 128))]
    pub schedule: String,
    /// IANA time zone of the schedule.
    #[serde(default = "default_time_zone")]
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: String,
    /// A run missed by more than this many seconds (e.g. while the operator was down) is
    /// skipped and recorded, not started late.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub starting_deadline_seconds: Option<i64>,
    /// Random delay of up to this many seconds before each run, to spread load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub jitter_seconds: Option<i64>,
    /// Pause scheduling; running backups finish.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
    /// What to back up.
    #[schemars(length(min = 1, max = 64))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub sources: Vec<BackupSource>,
    /// Compression before encryption.
    #[serde(default)]
    pub compression: Compression,
    /// Encryption to `age` recipients; no private key is needed to back up.
    pub encryption: Encryption,
    /// Where backups go: a local path and an off-site S3 bucket (SEC-1, PJ27).
    pub destinations: Destinations,
    /// How many backups to keep.
    #[serde(default)]
    pub retention: Retention,
    /// Periodic restore drills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// Recovery point objective: the last good backup must never be older than this
    /// (`30m`, `26h`, `7d`).
    #[schemars(regex(pattern = "^[0-9]+(m|h|d)$"))]
    pub rpo: String,
}

fn default_time_zone() -> String {
    "Asia/Shanghai".to_owned()
}

/// One source of a backup. Exactly one of `catalogItem`, `postgres`, `path` or `auditLog`.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.catalogItem), has(self.postgres), has(self.path), has(self.auditLog)].filter(x, x).size() == 1")
    .message("a backup source sets exactly one of catalogItem, postgres, path or auditLog")
    .reason(Reason::FieldValueInvalid))]
pub struct BackupSource {
    /// Name of the source within the policy; names the objects written for it.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// A catalog item of this namespace, read from its declared source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), regex(pattern = ITEM_IDENTIFIER))]
    pub catalog_item: Option<String>,
    /// A PostgreSQL database, dumped from one consistent snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresBackupSource>,
    /// A file or directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub path: Option<String>,
    /// The exchange's audit segments (kept at least 1095 days; SH-13).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_log: Option<bool>,
}

/// A PostgreSQL database to back up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostgresBackupSource {
    /// Secret key holding a libpq connection URI.
    pub connection_secret_ref: SecretKeyRef,
    /// Tables to include (`schema.table`); all tables when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1024))]
    pub tables: Vec<String>,
}

/// Compression settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Compression {
    /// zstd level, 1 (fast) to 19 (small).
    #[serde(default = "default_level")]
    #[schemars(range(min = 1, max = 19))]
    pub level: i32,
}

impl Default for Compression {
    fn default() -> Self {
        Self {
            level: default_level(),
        }
    }
}

fn default_level() -> i32 {
    3
}

/// Encryption to `age` X25519 recipients.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Encryption {
    /// `age1…` public keys; any one of the matching private keys decrypts.
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub recipients: Vec<AgeRecipient>,
    /// A Secret key with more recipients, one per line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipients_secret_ref: Option<SecretKeyRef>,
}

/// An `age` X25519 public key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct AgeRecipient(#[schemars(regex(pattern = "^age1[02-9ac-hj-np-z]{58}$"))] pub String);

/// Backup destinations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Destinations {
    /// A local directory (a mounted volume).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalDestination>,
    /// The off-site S3 bucket (异地备份; SEC-1). Required.
    pub offsite: S3Destination,
}

/// A local backup directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalDestination {
    /// Absolute path of the directory.
    #[schemars(length(min = 1, max = 4096), regex(pattern = "^/"))]
    pub path: String,
    /// A PersistentVolumeClaim of this namespace that a Job runner mounts at `path` (the
    /// operator's `--backup-runner job`); required there, since a pod has no other durable
    /// directory. A process runner ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub claim_name: Option<String>,
}

/// An S3 bucket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Destination {
    /// Endpoint URL of the S3 service.
    #[schemars(length(min = 1, max = 2048), regex(pattern = "^https?://"))]
    pub endpoint: String,
    /// Bucket name.
    #[schemars(length(min = 3, max = 63))]
    pub bucket: String,
    /// Key prefix for this policy's objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub prefix: Option<String>,
    /// Region name.
    #[serde(default = "default_region")]
    pub region: String,
    /// Secret with keys `accessKeyId` and `secretAccessKey`, and optionally `caBundle`: PEM
    /// certificates trusted for an `https://` endpoint besides the system roots (a private CA).
    #[schemars(length(min = 1, max = 253))]
    pub credentials_secret: String,
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

/// Retention, applied to each destination. A verified backup is never deleted if it is the
/// only one, and audit-log backups younger than 1095 days are never deleted (SH-13).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    /// Keep the newest N backups.
    #[serde(default = "default_keep_last")]
    #[schemars(range(min = 1, max = 10_000))]
    pub keep_last: i32,
    /// Keep the newest backup of each of the last N days.
    #[serde(default)]
    #[schemars(range(min = 0, max = 10_000))]
    pub keep_daily: i32,
    /// Keep the newest backup of each of the last N weeks.
    #[serde(default)]
    #[schemars(range(min = 0, max = 10_000))]
    pub keep_weekly: i32,
    /// Keep the newest backup of each of the last N months.
    #[serde(default)]
    #[schemars(range(min = 0, max = 10_000))]
    pub keep_monthly: i32,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            keep_last: default_keep_last(),
            keep_daily: 0,
            keep_weekly: 0,
            keep_monthly: 0,
        }
    }
}

fn default_keep_last() -> i32 {
    7
}

/// Restore drills: the newest backup is restored into a scratch target and compared with its
/// manifest (SHA-256 of every object, row counts of every table, file counts).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// Cron schedule of the drills, in the policy's `timeZone`.
    #[schemars(length(min = 9, max = 128))]
    pub schedule: String,
    /// A Secret key holding an `age` identity (`AGE-SECRET-KEY-1…`) of one of the recipients.
    /// Only drills read it; backups never need a private key.
    pub identity_secret_ref: SecretKeyRef,
    /// A Secret key holding the connection URI of a scratch PostgreSQL database the drill loads
    /// tables into (dropping them first). Without it, tables are decrypted, checksummed and
    /// their rows counted, but not loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_secret_ref: Option<SecretKeyRef>,
}

/// Observed state of a backup policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupPolicyStatus {
    /// Generation and conditions (kstatus).
    #[serde(flatten)]
    pub common: CommonStatus,
    /// The next scheduled run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run: Option<Time>,
    /// The scheduled time of the last run started or skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scheduled: Option<Time>,
    /// Scheduled runs not started (the operator was down past the starting deadline), in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed_runs: Option<i64>,
    /// The next restore drill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_drill: Option<Time>,
    /// The scheduled time of the last drill started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drill_scheduled: Option<Time>,
    /// The last complete backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<BackupRecord>,
    /// The last restore drill that succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verified_restore: Option<RestoreRecord>,
    /// Progress of the running backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<Progress>,
    /// The last backup run that failed, if no backup has succeeded since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<BackupFailure>,
    /// The last restore drill that failed, if none has succeeded since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failed_drill: Option<BackupFailure>,
}

/// A run or drill that failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupFailure {
    /// The backup the run wrote (or the drill restored).
    pub backup_id: String,
    /// When it failed.
    pub at: Time,
    /// A stable category: `postgres`, `source`, `destination`, `destination_config`,
    /// `secret`, `runner_lost`, `restore`.
    pub category: String,
    /// What failed, for humans.
    pub message: String,
    /// Consecutive failed attempts.
    pub attempts: i64,
}

/// A complete backup.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupRecord {
    /// Backup identifier.
    pub id: String,
    /// Start.
    pub started_at: Time,
    /// End.
    pub completed_at: Time,
    /// Bytes written (compressed and encrypted).
    pub bytes: i64,
    /// Bytes read from the sources.
    #[serde(default)]
    pub source_bytes: i64,
    /// Seconds from start to the manifest.
    #[serde(default)]
    pub duration_seconds: i64,
    /// sha256 of the manifest.
    pub sha256: String,
}

/// A restore drill.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreRecord {
    /// The backup restored.
    pub backup_id: String,
    /// When the drill finished.
    pub at: Time,
    /// What was compared (checksums, row counts).
    pub checked: String,
}

/// Progress of a running backup.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// Backup identifier.
    pub id: String,
    /// When the run started.
    pub started_at: Time,
    /// The runner's last report; a run whose report is older than a minute is lost (the
    /// runner was killed) and is retried.
    pub updated_at: Time,
    /// Bytes read so far.
    pub bytes_done: i64,
    /// Bytes to read, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_total: Option<i64>,
    /// Current rate in bytes per second.
    pub bytes_per_second: i64,
}
