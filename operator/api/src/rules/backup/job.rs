//! What a `BackupPolicy` needs from a runner that is a Kubernetes Job (SEC-1): the Job's name,
//! the Secrets the runner may read, and what a Job runner refuses.
//!
//! A Job's pod is Pod Security `restricted`, so it has no `hostPath`: it sees only the volumes
//! its spec names. A local destination therefore names a PersistentVolumeClaim of the policy's
//! namespace (`spec.destinations.local.claimName`), mounted at its `path`. `path` sources are
//! refused, not mounted: a file backup of a directory on some node, or in a claim another pod
//! writes, is rarely what a department means, and one more claim reference per source would be
//! API surface nobody asked for yet; PostgreSQL and catalog-item sources cover the data
//! departments declare. `auditLog` sources are refused too: the audit segments live in the
//! exchange's own ReadWriteOnce volumes in the operator's namespace, which a pod in a
//! department namespace cannot mount. Both still work with the process runner.

use std::collections::BTreeSet;

use jiff::{Timestamp, tz::TimeZone};
use sha2::{Digest, Sha256};

use crate::{rules::Problem, v1alpha1::BackupPolicySpec};

/// The longest Job name: the Job controller puts it in its pods' `job-name` label.
pub const MAX_NAME: usize = 63;

/// What a Job runner cannot do with `spec`, as problems of the fields concerned.
pub fn problems(spec: &BackupPolicySpec) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (i, source) in spec.sources.iter().enumerate() {
        if source.path.is_some() {
            problems.push(Problem::rule(
                "SEC-1",
                format!("spec.sources[{i}].path"),
                "the operator runs backups as Jobs (--backup-runner job), whose pods cannot \
                 read a node's files: back up the data from its PostgreSQL database or catalog \
                 item, or run this policy with the process runner",
            ));
        }
        if source.audit_log == Some(true) {
            problems.push(Problem::rule(
                "SEC-1",
                format!("spec.sources[{i}].auditLog"),
                "the operator runs backups as Jobs (--backup-runner job), whose pods cannot \
                 mount the exchange's audit volumes: back up the audit log with the process \
                 runner next to the exchange",
            ));
        }
    }
    if let Some(local) = &spec.destinations.local
        && local.claim_name.is_none()
    {
        problems.push(Problem::rule(
            "SEC-1",
            "spec.destinations.local.claimName",
            "the operator runs backups as Jobs (--backup-runner job): a local destination \
             names the PersistentVolumeClaim mounted at its path, or is left out (the \
             off-site copy is required either way)",
        ));
    }
    problems
}

/// The Secrets the policy itself names (source connections, S3 credentials, age recipients,
/// the drill's identity and scratch database); a catalog item's connection Secret comes from
/// its catalog.
pub fn secret_names(spec: &BackupPolicySpec) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    names.insert(spec.destinations.offsite.credentials_secret.clone());
    for source in &spec.sources {
        if let Some(pg) = &source.postgres {
            names.insert(pg.connection_secret_ref.name.clone());
        }
    }
    if let Some(r) = &spec.encryption.recipients_secret_ref {
        names.insert(r.name.clone());
    }
    if let Some(v) = &spec.verification {
        names.insert(v.identity_secret_ref.name.clone());
        if let Some(pg) = &v.postgres_secret_ref {
            names.insert(pg.name.clone());
        }
    }
    names
}

/// The catalog items the policy's sources name.
pub fn catalog_items(spec: &BackupPolicySpec) -> impl Iterator<Item = &str> {
    spec.sources
        .iter()
        .filter_map(|s| s.catalog_item.as_deref())
}

/// The name of the Job of policy `policy`'s run (`drill == false`) or drill for `scheduled`,
/// attempt `attempt` (the failures recorded so far): `<policy>-r<yyyymmddhhmm>-<attempt>` in
/// UTC, or `-v…` for a drill. Deterministic, so an operator that restarts finds the Job it
/// created instead of starting another; a retry is a new attempt, hence a new name. A policy
/// name too long for the 63 characters is cut and followed by a hash of the whole name.
pub fn name(policy: &str, drill: bool, scheduled: Timestamp, attempt: i64) -> String {
    let at = scheduled.to_zoned(TimeZone::UTC).strftime("%Y%m%d%H%M");
    let suffix = format!("-{}{at}-{attempt}", if drill { 'v' } else { 'r' });
    if policy.len() + suffix.len() <= MAX_NAME {
        return format!("{policy}{suffix}");
    }
    let digest = Sha256::digest(policy.as_bytes());
    let hash: String = digest[..3].iter().map(|b| format!("{b:02x}")).collect();
    let keep = MAX_NAME - suffix.len() - hash.len() - 1;
    // Policy names are DNS labels (ASCII): cutting at a byte is cutting at a character. A
    // trailing '-' would make `--`, still valid, but readable only with effort.
    let head = policy[..keep.min(policy.len())].trim_end_matches('-');
    format!("{head}-{hash}{suffix}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn spec() -> BackupPolicySpec {
        serde_yaml::from_str(include_str!("../fixtures/backup.yaml")).unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn job_names_say_policy_kind_scheduled_minute_and_attempt() {
        let at = ts("2026-11-22T18:00:00Z");
        assert_eq!(name("nightly", false, at, 0), "nightly-r202611221800-0");
        assert_eq!(name("nightly", true, at, 2), "nightly-v202611221800-2");
        // A retry is another Job; the same attempt is the same Job (no duplicate on restart).
        assert_ne!(name("nightly", false, at, 0), name("nightly", false, at, 1));
        assert_eq!(name("nightly", false, at, 1), name("nightly", false, at, 1));
    }

    #[test]
    fn long_policy_names_are_cut_to_63_characters_and_stay_distinct() {
        let at = ts("2026-11-22T18:00:00Z");
        let a = format!("{}-a", "x".repeat(60));
        let b = format!("{}-b", "x".repeat(60));
        let (na, nb) = (name(&a, false, at, 10), name(&b, false, at, 10));
        assert_eq!(na.len(), MAX_NAME, "{na}");
        assert!(nb.len() <= MAX_NAME);
        assert_ne!(na, nb);
        assert!(na.ends_with("-r202611221800-10"), "{na}");
        let label = |s: &str| {
            s.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                && !s.starts_with('-')
                && !s.ends_with('-')
        };
        assert!(label(&na) && label(&nb), "{na} {nb}");
        let exact = "y".repeat(MAX_NAME - "-r202611221800-0".len());
        assert_eq!(name(&exact, false, at, 0).len(), MAX_NAME);
        assert!(name(&exact, false, at, 0).starts_with(&exact));
    }

    #[test]
    fn a_job_runner_refuses_path_and_audit_log_sources_and_unclaimed_local_destinations() {
        // SEC-1: refused with a reason instead of a Job that cannot read them.
        let mut spec = spec();
        spec.sources = serde_json::from_value(serde_json::json!([
            {"name": "db", "postgres": {"connectionSecretRef": {"name": "db", "key": "uri"}}},
            {"name": "files", "path": "/srv/files"},
            {"name": "audit", "auditLog": true},
        ]))
        .unwrap();
        spec.destinations.local = Some(crate::v1alpha1::LocalDestination {
            path: "/var/backups/gongshu".into(),
            claim_name: None,
        });
        let fields: Vec<_> = problems(&spec).into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "spec.sources[1].path",
                "spec.sources[2].auditLog",
                "spec.destinations.local.claimName"
            ]
        );
        spec.sources.truncate(1);
        spec.destinations.local = Some(crate::v1alpha1::LocalDestination {
            path: "/var/backups/gongshu".into(),
            claim_name: Some("backups".into()),
        });
        assert!(problems(&spec).is_empty());
    }

    #[test]
    fn the_runner_may_read_exactly_the_secrets_the_policy_names() {
        let mut spec = spec();
        spec.sources = serde_json::from_value(serde_json::json!([
            {"name": "db", "postgres": {"connectionSecretRef": {"name": "population-db", "key": "uri"}}},
            {"name": "item", "catalogItem": "ps-households"},
        ]))
        .unwrap();
        spec.encryption.recipients_secret_ref = Some(crate::v1alpha1::SecretKeyRef {
            name: "more-recipients".into(),
            key: "r".into(),
        });
        let names: Vec<_> = secret_names(&spec).into_iter().collect();
        let mut expected = vec![
            "more-recipients".to_owned(),
            "population-db".to_owned(),
            spec.destinations.offsite.credentials_secret.clone(),
        ];
        if let Some(v) = &spec.verification {
            expected.push(v.identity_secret_ref.name.clone());
            expected.extend(v.postgres_secret_ref.iter().map(|r| r.name.clone()));
        }
        expected.sort();
        expected.dedup();
        assert_eq!(names, expected);
        assert_eq!(catalog_items(&spec).collect::<Vec<_>>(), ["ps-households"]);
    }
}
