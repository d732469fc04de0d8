//! The manifest of a backup and where its objects live.
//!
//! A backup is a "directory" `<prefix>/<namespace>/<policy>/<id>/` in each destination: one
//! encrypted object per table or path source, then `manifest.json`, written **last**. A
//! backup without a manifest is an interrupted run and is never listed, restored or counted
//! as a backup; retention removes its leftovers.
//!
//! The manifest is plaintext on purpose: retention, listing and RPO checks need it without a
//! private key. It holds names, sizes, row counts, column types and checksums, never data.

use std::collections::BTreeMap;

use jiff::Timestamp;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

/// The manifest format this version writes and reads.
pub const FORMAT: &str = "gongshu.io/backup/v1";
/// The manifest's object name within a backup.
pub const MANIFEST: &str = "manifest.json";
/// The marker a successful restore drill writes next to the manifest.
pub const VERIFIED: &str = "verified.json";

/// A backup's manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The backup's id: its start time, `20261123T224500Z`, then a random suffix.
    pub id: String,
    /// The policy's namespace.
    pub namespace: String,
    /// The policy's name.
    pub policy: String,
    /// When the run started.
    pub started_at: Timestamp,
    /// When the last object was written.
    pub completed_at: Timestamp,
    /// The scheduled time this run was for, when the scheduler started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_for: Option<Timestamp>,
    /// `gongshu <version>` that wrote it.
    pub tool: String,
    /// The zstd level.
    pub zstd_level: i32,
    /// The `age` recipients every object is encrypted to.
    pub recipients: Vec<String>,
    /// What was backed up, in the policy's order.
    pub sources: Vec<SourceManifest>,
}

/// One source of a backup and its objects.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceManifest {
    /// The source's name in the policy.
    pub name: String,
    /// What it is.
    pub kind: SourceKind,
    /// Its objects.
    pub objects: Vec<ObjectManifest>,
}

/// The kind of a source, as restore needs to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SourceKind {
    /// PostgreSQL tables, one object each (`COPY` text format).
    Postgres,
    /// A file or directory, one tar archive.
    Path,
    /// The exchange's audit segments, one tar archive (kept ≥ 1095 days; SH-13).
    AuditLog,
}

/// One encrypted object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectManifest {
    /// The object's name within the backup (`<source>/<schema>.<table>.copy.zst.age`).
    pub name: String,
    /// Plaintext bytes.
    pub plain_bytes: u64,
    /// SHA-256 of the plaintext.
    pub plain_sha256: String,
    /// Bytes stored.
    pub cipher_bytes: u64,
    /// SHA-256 of the stored bytes.
    pub cipher_sha256: String,
    /// The table, for a PostgreSQL object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<TableManifest>,
    /// Regular files in the archive, for a path object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
}

/// A table as it was dumped: enough to recreate it and check the restore.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableManifest {
    /// Schema.
    pub schema: String,
    /// Table.
    pub name: String,
    /// Columns in order.
    pub columns: Vec<Column>,
    /// Primary key columns, if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primary_key: Vec<String>,
    /// Rows dumped.
    pub rows: u64,
}

/// A column and its type as PostgreSQL prints it (`format_type`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Column {
    /// Name.
    pub name: String,
    /// Type, e.g. `character varying(64)`, `numeric(10,2)`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `NOT NULL`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_null: bool,
}

impl Manifest {
    /// Total bytes stored.
    pub fn cipher_bytes(&self) -> u64 {
        self.objects().map(|o| o.cipher_bytes).sum()
    }

    /// Total plaintext bytes.
    pub fn plain_bytes(&self) -> u64 {
        self.objects().map(|o| o.plain_bytes).sum()
    }

    /// Every object of every source.
    pub fn objects(&self) -> impl Iterator<Item = &ObjectManifest> {
        self.sources.iter().flat_map(|s| s.objects.iter())
    }

    /// Whether the backup holds audit segments (retention keeps those ≥ 1095 days).
    pub fn has_audit(&self) -> bool {
        self.sources.iter().any(|s| s.kind == SourceKind::AuditLog)
    }

    /// Row counts by `schema.table`, what a restore is checked against.
    pub fn rows(&self) -> BTreeMap<String, u64> {
        self.objects()
            .filter_map(|o| o.table.as_ref())
            .map(|t| (format!("{}.{}", t.schema, t.name), t.rows))
            .collect()
    }
}

/// Where one policy's backups live within a destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    root: Path,
}

impl Layout {
    /// Backups of `namespace`/`policy` under `prefix` (which may be empty).
    pub fn new(prefix: &str, namespace: &str, policy: &str) -> Self {
        let mut root = Path::from(prefix.trim_matches('/'));
        for part in [namespace, policy] {
            root = root.child(part);
        }
        Self { root }
    }

    /// The directory of every backup.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of backup `id`.
    pub fn backup(&self, id: &str) -> Path {
        self.root.child(id)
    }

    /// Object `name` (which may contain `/`) of backup `id`.
    pub fn object(&self, id: &str, name: &str) -> Path {
        name.split('/')
            .fold(self.backup(id), |path, part| path.child(part))
    }
}

/// A new backup id for a run started at `now`: sortable by time, unique by a random suffix.
pub fn new_id(now: Timestamp) -> String {
    let suffix: u16 = rand::random();
    format!("{}-{suffix:04x}", now.strftime("%Y%m%dT%H%M%SZ"))
}

/// The object name of table `schema.table` of source `source`.
pub fn table_object(source: &str, schema: &str, table: &str) -> String {
    format!("{source}/{schema}.{table}.copy.zst.age")
}

/// The object name of the archive of path source `source`.
pub fn archive_object(source: &str) -> String {
    format!("{source}/{source}.tar.zst.age")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_live_under_prefix_namespace_policy_and_id() {
        let layout = Layout::new("/backups/", "dept-health", "nightly");
        assert_eq!(layout.root().as_ref(), "backups/dept-health/nightly");
        assert_eq!(
            layout
                .object(
                    "20261123T010000Z-00ff",
                    &table_object("db", "public", "people")
                )
                .as_ref(),
            "backups/dept-health/nightly/20261123T010000Z-00ff/db/public.people.copy.zst.age"
        );
        assert_eq!(
            Layout::new("", "ns", "p").backup("x").as_ref(),
            "ns/p/x",
            "no prefix"
        );
    }

    #[test]
    fn ids_sort_by_start_time() {
        let a = new_id("2026-11-23T01:00:00Z".parse().unwrap());
        let b = new_id("2026-11-23T01:00:01Z".parse().unwrap());
        assert!(a.starts_with("20261123T010000Z-"), "{a}");
        assert!(a < b);
    }
}
