//! A backup and restore of path sources through a local destination (no server needed; the
//! PostgreSQL and S3 paths are covered by the e2e suite).

use std::{fs, sync::Arc};

use super::{
    manifest::{Layout, SourceKind, archive_object},
    restore::{self, Targets},
    run::{self, Job, Progress, Source},
    store::Destination,
};

fn job(destination: Destination, source: &std::path::Path) -> (Job, age::x25519::Identity) {
    let identity = age::x25519::Identity::generate();
    let job = Job {
        namespace: "dept-health".into(),
        policy: "nightly".into(),
        id: "20261123T010000Z-0001".into(),
        scheduled_for: None,
        sources: vec![
            Source::Path {
                name: "files".into(),
                path: source.to_path_buf(),
                audit: false,
            },
            Source::Path {
                name: "audit".into(),
                path: source.join("audit"),
                audit: true,
            },
        ],
        zstd_level: 3,
        zstd_workers: 0,
        recipients: vec![identity.to_public()],
        destinations: vec![destination],
    };
    (job, identity)
}

fn source_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("audit")).unwrap();
    fs::write(
        dir.path().join("licences.csv"),
        "id,holder\n1,a\n2,b\n".repeat(1000),
    )
    .unwrap();
    fs::write(dir.path().join("audit/000001.jsonl"), "{\"seq\":1}\n").unwrap();
    dir
}

#[tokio::test]
async fn a_backup_restores_byte_identical_and_is_listed_only_once_complete() {
    let source = source_tree();
    let store_dir = tempfile::tempdir().unwrap();
    let layout = Layout::new("", "dept-health", "nightly");
    let destination = Destination::local(store_dir.path(), layout).unwrap();
    let (job, identity) = job(destination.clone(), source.path());
    let progress = Progress::default();
    let manifest = run::backup(&job, &progress).await.unwrap();

    assert_eq!(manifest.sources.len(), 2);
    assert_eq!(manifest.sources[1].kind, SourceKind::AuditLog);
    assert!(manifest.has_audit());
    assert_eq!(
        progress.done.load(std::sync::atomic::Ordering::Relaxed),
        manifest.plain_bytes()
    );
    let listed = destination.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].manifest.as_ref(), Some(&manifest));
    assert!(!listed[0].verified);

    let target = tempfile::tempdir().unwrap();
    let identities: restore::Identities = Arc::new(vec![Box::new(identity)]);
    let targets = Targets {
        directory: Some(target.path().to_path_buf()),
        ..Targets::default()
    };
    let report = restore::restore(&destination, &manifest, &identities, &targets)
        .await
        .unwrap();
    assert_eq!(report.objects, 2);
    assert_eq!(report.files, 3, "two files in `files`, one in `audit`");
    assert_eq!(
        fs::read(target.path().join("files/licences.csv")).unwrap(),
        fs::read(source.path().join("licences.csv")).unwrap()
    );
    assert!(target.path().join("audit/000001.jsonl").exists());
}

#[tokio::test]
async fn a_run_that_fails_midway_leaves_no_listed_backup() {
    let source = source_tree();
    let store_dir = tempfile::tempdir().unwrap();
    let destination =
        Destination::local(store_dir.path(), Layout::new("", "dept-health", "nightly")).unwrap();
    let (mut job, _) = job(destination.clone(), source.path());
    job.sources.push(Source::Path {
        name: "gone".into(),
        path: source.path().join("no-such-dir"),
        audit: false,
    });
    let error = run::backup(&job, &Progress::default()).await.unwrap_err();
    assert!(error.to_string().contains("no-such-dir"), "{error}");
    let listed = destination.list().await.unwrap();
    assert_eq!(listed.len(), 1, "the leftovers are found…");
    assert_eq!(listed[0].manifest, None, "…but are not a backup");
}

#[tokio::test]
async fn a_tampered_object_fails_the_restore_and_names_it() {
    let source = source_tree();
    let store_dir = tempfile::tempdir().unwrap();
    let destination =
        Destination::local(store_dir.path(), Layout::new("", "dept-health", "nightly")).unwrap();
    let (job, identity) = job(destination.clone(), source.path());
    let manifest = run::backup(&job, &Progress::default()).await.unwrap();
    let stored = store_dir
        .path()
        .join("dept-health/nightly")
        .join(&job.id)
        .join(archive_object("files"));
    let mut bytes = fs::read(&stored).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&stored, bytes).unwrap();
    let identities: restore::Identities = Arc::new(vec![Box::new(identity)]);
    let targets = Targets {
        check_only: true,
        ..Targets::default()
    };
    let error = restore::restore(&destination, &manifest, &identities, &targets)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("files.tar.zst.age"), "{error}");
}

#[tokio::test]
async fn the_wrong_key_cannot_restore() {
    let source = source_tree();
    let store_dir = tempfile::tempdir().unwrap();
    let destination =
        Destination::local(store_dir.path(), Layout::new("", "dept-health", "nightly")).unwrap();
    let (job, _) = job(destination.clone(), source.path());
    let manifest = run::backup(&job, &Progress::default()).await.unwrap();
    let stranger: restore::Identities = Arc::new(vec![Box::new(age::x25519::Identity::generate())]);
    let targets = Targets {
        check_only: true,
        ..Targets::default()
    };
    let error = restore::restore(&destination, &manifest, &stranger, &targets)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("No matching keys"), "{error}");
}

fn s3_settings(ca_bundle: Option<String>) -> super::store::S3Settings {
    super::store::S3Settings {
        endpoint: "https://10.77.0.1:9000".into(),
        bucket: "offsite".into(),
        region: "us-east-1".into(),
        access_key_id: "k".into(),
        secret_access_key: "s".into(),
        retry_timeout: std::time::Duration::from_secs(1),
        ca_bundle,
    }
}

/// An S3 server with a private CA: the credentials Secret's `caBundle` is trusted (a Job's
/// pod cannot mount a CA file), and a bundle that is not PEM is a configuration error naming
/// the key, before anything is read.
#[test]
fn an_s3_ca_bundle_is_trusted_and_a_bad_one_refused() {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = params.self_signed(&key).unwrap().pem();
    let layout = || Layout::new("", "ns", "p");
    assert!(Destination::s3(&s3_settings(Some(ca.clone())), layout()).is_ok());
    assert!(Destination::s3(&s3_settings(None), layout()).is_ok());
    for bad in ["not a certificate", ""] {
        let err = Destination::s3(&s3_settings(Some(bad.into())), layout()).expect_err("refused");
        assert!(err.to_string().contains("caBundle"), "{err}");
    }
}
