//! Backups against the real apiserver, a real PostgreSQL and a real S3 server (versitygw): a
//! scheduled run of PostgreSQL tables and files to a local directory and an S3 bucket,
//! decrypted by the `age` command-line tool, restored, and checked by a restore drill; and
//! the faults: S3 down then back, a runner killed with SIGKILL mid-upload, a full local disk,
//! the wrong key, a missed RPO (SEC-1, SEC-2).
//!
//! The suite's operator starts runners as processes with short timings (see `cargo xtask
//! test`); schedules here run every minute, so each test waits up to a minute for its first
//! run.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use gongshu_api::v1alpha1::BackupPolicy;
use gongshu_e2e::{
    backup::{self, BackupTarget, ready},
    cluster::operator_binary,
    harness::{TestEnv, age_keygen},
    postgres::Postgres,
};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

/// The first run of an every-minute schedule, plus the run itself.
const FIRST_RUN: Duration = Duration::from_secs(150);
const ROWS: usize = 1000;

struct Setup {
    env: TestEnv,
    ns: String,
    pg: Postgres,
    /// The directory, the S3 server and bucket, the age identity.
    target: BackupTarget,
}

/// A new age identity file at `path` and its public key.
fn keygen(path: &Path) -> (PathBuf, String) {
    (path.to_path_buf(), age_keygen(path).expect("age-keygen"))
}

/// Writes `mib` MiB of bytes zstd cannot compress.
fn incompressible(path: &Path, mib: usize) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for chunk in block.chunks_mut(8) {
            // xorshift64*
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            chunk.copy_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        file.write_all(&block).unwrap();
    }
    file.flush().unwrap();
}

impl Setup {
    async fn new(name: &str) -> Self {
        let env = TestEnv::connect().await.expect("control plane");
        let target = BackupTarget::start(name)
            .await
            .expect("directory and S3 server");
        let pg = Postgres::start(&target.dir.join("pg"))
            .await
            .expect("postgres");
        pg.psql(
            "postgres",
            &format!(
                "create table residents (id bigint primary key, name varchar(64) not null, \
                 born date, note text); \
                 insert into residents select i, 'name-' || i, date '1950-01-01' + i, \
                 case when i % 7 = 0 then null else E'line\\nbreak ' || i end \
                 from generate_series(1, {ROWS}) i; \
                 create schema registry; create table registry.licences (code text primary key); \
                 insert into registry.licences values ('a'), ('b');"
            ),
        )
        .expect("tables");
        for db in ["restored", "scratch"] {
            pg.psql("postgres", &format!("create database {db}"))
                .expect("database");
        }
        let (ns, _) = env.department("backup").await.expect("department");
        target.install(&env, &ns).await.expect("S3 Secret");
        let setup = Self {
            env,
            ns,
            pg,
            target,
        };
        setup
            .secret("db", json!({"uri": setup.pg.url("postgres")}))
            .await;
        setup
            .secret("scratch", json!({"uri": setup.pg.url("scratch")}))
            .await;
        let identity = std::fs::read_to_string(&setup.target.identity).unwrap();
        setup.secret("drill", json!({ "identity": identity })).await;
        setup
    }

    async fn secret(&self, name: &str, data: Value) {
        backup::secret(&self.env, &self.ns, name, data)
            .await
            .expect("secret");
    }

    fn policies(&self) -> Api<BackupPolicy> {
        Api::namespaced(self.env.client.clone(), &self.ns)
    }

    fn local(&self) -> PathBuf {
        self.target.local()
    }

    /// The harness's every-minute policy, with a restore drill every minute.
    fn policy(&self, name: &str, rpo: &str, sources: Value) -> BackupPolicy {
        let mut policy = self.target.policy(name, rpo, sources);
        policy.spec.verification = Some(
            serde_json::from_value(json!({
                "schedule": "* * * * *",
                "identitySecretRef": {"name": "drill", "key": "identity"},
                "postgresSecretRef": {"name": "scratch", "key": "uri"},
            }))
            .unwrap(),
        );
        policy
    }

    fn db_and_files(&self) -> Value {
        json!([
            {"name": "db", "postgres": {"connectionSecretRef": {"name": "db", "key": "uri"}}},
            {"name": "files", "path": self.target.dir.join("files").to_string_lossy()},
        ])
    }

    /// Stops scheduling `name` (the suite's operator outlives the test's servers).
    async fn suspend(&self, name: &str) {
        self.policies()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"suspend": true}})),
            )
            .await
            .unwrap();
    }

    async fn create(&self, policy: BackupPolicy) -> String {
        let name = policy.metadata.name.clone().unwrap();
        self.policies()
            .create(&PostParams::default(), &policy)
            .await
            .expect("policy");
        name
    }

    async fn wait(
        &self,
        name: &str,
        timeout: Duration,
        what: &str,
        cond: impl Fn(&BackupPolicy) -> bool + Send + 'static,
    ) -> BackupPolicy {
        self.env
            .wait_for(
                self.policies(),
                name,
                timeout,
                move |p: Option<&BackupPolicy>| p.is_some_and(&cond),
            )
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    /// Waits for the first failed run of `name`.
    async fn failure(&self, name: &str) -> BackupPolicy {
        self.wait(name, FIRST_RUN, "a failed run", |p| {
            p.status
                .as_ref()
                .and_then(|s| s.last_failure.as_ref())
                .is_some()
        })
        .await
    }

    /// `gongshu backup <args>` as the cluster admin; exit code, stdout and stderr.
    fn gongshu(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(operator_binary("debug").unwrap())
            .arg("backup")
            .args(args)
            .env("KUBECONFIG", self.env.kubeconfig())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The manifests under the local destination.
    fn local_manifests(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, found);
                } else if path.file_name().is_some_and(|n| n == "manifest.json") {
                    found.push(path);
                }
            }
        }
        let mut found = Vec::new();
        walk(&self.local(), &mut found);
        found
    }
}

/// `age -d -i key <file>`, then zstd: the plaintext of a stored object.
fn age_decrypt(key: &Path, object: &Path) -> Vec<u8> {
    let out = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(key)
        .arg(object)
        .output()
        .expect("age (Debian package)");
    assert!(out.status.success(), "age -d {}: {out:?}", object.display());
    zstd::decode_all(&out.stdout[..]).expect("zstd frame")
}

#[tokio::test]
async fn a_scheduled_backup_is_encrypted_to_both_destinations_restores_and_passes_the_drill_sec_1()
{
    let s = Setup::new("happy").await;
    let name = s.create(s.policy("nightly", "2h", s.db_and_files())).await;
    let policy = s
        .wait(&name, FIRST_RUN, "first backup", |p| {
            p.status.as_ref().is_some_and(|s| s.last_backup.is_some())
        })
        .await;
    let status = policy.status.clone().unwrap();
    let backup = status.last_backup.clone().unwrap();
    assert!(backup.bytes > 0 && backup.source_bytes > 0, "{backup:?}");
    assert!(status.next_run.is_some());
    assert!(status.last_failure.is_none());

    // The local copy, decrypted by the age CLI (SEC-1: only the private key opens it).
    let base = s.local().join(&s.ns).join(&name).join(&backup.id);
    let residents = age_decrypt(
        &s.target.identity,
        &base.join("db/public.residents.copy.zst.age"),
    );
    assert_eq!(
        residents.iter().filter(|b| **b == b'\n').count(),
        ROWS,
        "one COPY line per row"
    );
    assert!(residents.starts_with(b"1\tname-1\t1950-01-02\tline\\nbreak 1\n"));
    let archive = age_decrypt(&s.target.identity, &base.join("files/files.tar.zst.age"));
    assert!(
        archive.windows(18).any(|w| w == b"code,holder\na,x\nb,"),
        "the CSV is in the archive"
    );
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(base.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["recipients"][0], s.target.recipient.as_str());
    assert!(
        !String::from_utf8_lossy(
            &std::fs::read(base.join("db/public.residents.copy.zst.age")).unwrap()
        )
        .contains("name-1"),
        "stored objects are ciphertext"
    );

    // The off-site copy has the same objects.
    let store = s.target.s3.object_store(&s.target.bucket).unwrap();
    let listed: Vec<_> =
        futures::TryStreamExt::try_collect::<Vec<_>>(object_store::ObjectStore::list(
            &store,
            Some(&object_store::path::Path::from(format!(
                "gongshu/{}/{name}/{}",
                s.ns, backup.id
            ))),
        ))
        .await
        .unwrap();
    assert_eq!(
        listed.len(),
        4,
        "two tables, one archive, the manifest: {listed:?}"
    );

    // Restore from S3 into another database and directory.
    let (code, out, err) = s.gongshu(&[
        "restore",
        "--namespace",
        &s.ns,
        "--policy",
        &name,
        "--identity-file",
        &s.target.identity.to_string_lossy(),
        "--postgres",
        &s.pg.url("restored"),
        "--directory",
        &s.target.dir.join("restored").to_string_lossy(),
    ]);
    assert_eq!(code, 0, "restore: {out}{err}");
    assert_eq!(
        s.pg.psql(
            "restored",
            "select count(*), count(note), max(name) from residents"
        )
        .unwrap(),
        s.pg.psql(
            "postgres",
            "select count(*), count(note), max(name) from residents"
        )
        .unwrap()
    );
    assert_eq!(
        s.pg.psql(
            "restored",
            "select string_agg(code, ',') from registry.licences"
        )
        .unwrap(),
        "a,b"
    );
    assert_eq!(
        std::fs::read(s.target.dir.join("restored/files/licences.csv")).unwrap(),
        std::fs::read(s.target.dir.join("files/licences.csv")).unwrap()
    );

    // The wrong key restores nothing and says why.
    let stranger = keygen(&s.target.dir.join("stranger.txt"));
    let (code, _, err) = s.gongshu(&[
        "restore",
        "--namespace",
        &s.ns,
        "--policy",
        &name,
        "--identity-file",
        &stranger.0.to_string_lossy(),
        "--check-only",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("No matching keys"), "{err}");

    // The scheduled drill restores into the scratch database and records it.
    let drilled = s
        .wait(&name, FIRST_RUN, "restore drill", |p| {
            p.status
                .as_ref()
                .is_some_and(|s| s.last_verified_restore.is_some())
        })
        .await;
    let drill = drilled.status.unwrap().last_verified_restore.unwrap();
    assert!(
        drill.checked.contains(&format!("{} rows", ROWS + 2)),
        "{drill:?}"
    );
    assert_eq!(
        s.pg.psql("scratch", "select count(*) from residents")
            .unwrap(),
        ROWS.to_string()
    );
    let (code, out, _) = s.gongshu(&[
        "list",
        "--namespace",
        &s.ns,
        "--policy",
        &name,
        "--dir",
        &s.local().to_string_lossy(),
    ]);
    assert_eq!(code, 0);
    assert!(out.contains(&drill.backup_id), "{out}");
    s.suspend(&name).await;
}

#[tokio::test]
async fn an_unreachable_s3_fails_the_run_cleanly_breaches_the_rpo_and_the_retry_succeeds_sec_1() {
    let mut s = Setup::new("s3down").await;
    s.target.s3.stop().await.expect("stop S3");
    let name = s
        .create(s.policy("offsite-down", "1m", s.db_and_files()))
        .await;
    let failed = s.failure(&name).await;
    let failure = failed.status.clone().unwrap().last_failure.unwrap();
    assert_eq!(failure.category, "destination", "{failure:?}");
    assert!(
        s.local_manifests().is_empty(),
        "nothing half-written is a backup"
    );
    // A minute without a backup breaches the RPO of one minute.
    let breached = s
        .wait(&name, Duration::from_secs(90), "RPO breach", |p| {
            ready(p).1 == "RpoBreached"
        })
        .await;
    assert!(
        ready(&breached).2.contains("SEC-1"),
        "{:?}",
        ready(&breached)
    );

    s.target.s3.restart().await.expect("restart S3");
    let recovered = s
        .wait(&name, FIRST_RUN, "a successful retry", |p| {
            p.status
                .as_ref()
                .is_some_and(|s| s.last_backup.is_some() && s.last_failure.is_none())
                && ready(p).0 == "True"
        })
        .await;
    s.suspend(&name).await;
    assert_eq!(ready(&recovered).1, "BackedUp", "{:?}", ready(&recovered));
    assert!(!s.local_manifests().is_empty());
}

#[tokio::test]
async fn a_runner_killed_mid_upload_is_reported_lost_and_its_run_retried_sec_1() {
    let s = Setup::new("kill9").await;
    incompressible(&s.target.dir.join("files/big.bin"), 16);
    let sources = s.target.files_source();
    let mut policy = s.policy("big", "2h", sources);
    // zstd's slowest level keeps the run going long enough to be caught mid-upload.
    policy.spec.compression.level = 19;
    let name = s.create(policy).await;
    let running = s
        .wait(&name, FIRST_RUN, "a run in progress", |p| {
            p.status
                .as_ref()
                .and_then(|s| s.running.as_ref())
                .is_some_and(|r| r.bytes_done > 0)
        })
        .await;
    let killed_id = running.status.unwrap().running.unwrap().id;
    let pattern = format!("backup run --namespace {} --policy {name}", s.ns);
    let out = Command::new("pkill")
        .args(["-KILL", "-f", &pattern])
        .output()
        .unwrap();
    assert!(out.status.success(), "no runner to kill: {out:?}");

    let lost = s
        .wait(&name, Duration::from_secs(60), "the lost runner", |p| {
            p.status
                .as_ref()
                .and_then(|s| s.last_failure.as_ref())
                .is_some_and(|f| f.category == "RunnerLost")
        })
        .await;
    let failure = lost.status.unwrap().last_failure.unwrap();
    assert_eq!(failure.backup_id, killed_id);
    let done = s
        .wait(&name, Duration::from_secs(180), "the retried run", |p| {
            p.status.as_ref().is_some_and(|s| s.last_backup.is_some())
        })
        .await;
    s.suspend(&name).await;
    let backup = done.status.unwrap().last_backup.unwrap();
    assert_ne!(backup.id, killed_id);
    let manifests = s.local_manifests();
    assert_eq!(manifests.len(), 1, "{manifests:?}");
    assert!(manifests[0].to_string_lossy().contains(&backup.id));
    assert!(
        !s.local()
            .join(&s.ns)
            .join(&name)
            .join(&killed_id)
            .join("manifest.json")
            .exists(),
        "the killed run is not a backup"
    );
}

#[tokio::test]
async fn a_full_local_disk_fails_the_run_and_leaves_nothing_listed_sec_1() {
    let s = Setup::new("full").await;
    std::fs::create_dir_all(s.local()).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(s.local())
        .status()
        .expect("mount");
    assert!(mounted.success(), "mounting a 4 MiB tmpfs needs root");
    let _mounted = Mounted(s.local());
    incompressible(&s.target.dir.join("files/big.bin"), 16);
    let sources = s.target.files_source();
    let name = s.create(s.policy("full-disk", "2h", sources)).await;
    let failed = s.failure(&name).await;
    let failure = failed.status.unwrap().last_failure.unwrap();
    assert_eq!(failure.category, "destination", "{failure:?}");
    assert!(
        failure.message.to_lowercase().contains("no space"),
        "{failure:?}"
    );
    assert!(s.local_manifests().is_empty());
    let store = s.target.s3.object_store(&s.target.bucket).unwrap();
    let offsite: Vec<_> =
        futures::TryStreamExt::try_collect::<Vec<_>>(object_store::ObjectStore::list(&store, None))
            .await
            .unwrap();
    assert!(
        offsite
            .iter()
            .all(|o| !o.location.as_ref().ends_with("manifest.json")),
        "no backup off-site either: {offsite:?}"
    );
    s.suspend(&name).await;
}

/// Unmounts the tmpfs when the test ends, however it ends.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
