//! `gongshu backup run|verify|restore|list`.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Subcommand, ValueEnum};
use jiff::Timestamp;

use super::{
    manifest::Layout,
    restore::{self, Targets},
    runner::{self, Config, RunnerError},
    store::{Destination, S3Settings},
};

/// `gongshu backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: BackupCommand,
}

/// The backup subcommands.
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Run one backup of a policy now (what the operator starts on schedule).
    Run(RunArgs),
    /// Run one restore drill of a policy: restore its newest off-site backup into a scratch
    /// target and compare it with the manifest.
    Verify(RunArgs),
    /// List a policy's backups in a destination.
    List(WhereArgs),
    /// Restore a backup into a PostgreSQL database and/or a directory.
    Restore(RestoreArgs),
}

/// Which policy, and how the runner reaches sources and destinations.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The policy's namespace.
    #[arg(long)]
    pub namespace: String,
    /// The policy's name.
    #[arg(long)]
    pub policy: String,
    /// The scheduled time this run is for (set by the operator).
    #[arg(long)]
    pub scheduled: Option<Timestamp>,
    /// Directory the paths of `path` sources and file catalog items are resolved under.
    #[arg(long, env = "GONGSHU_FILE_ROOT", default_value = "/")]
    pub file_root: PathBuf,
    /// The exchange's audit directory, for `auditLog` sources.
    #[arg(long, env = "GONGSHU_AUDIT_DIR")]
    pub audit_dir: Option<PathBuf>,
    /// Local destinations must be under this directory (a volume for backups).
    #[arg(
        long,
        env = "GONGSHU_BACKUP_LOCAL_ROOT",
        default_value = "/var/backups/gongshu"
    )]
    pub local_root: PathBuf,
    /// Seconds one S3 request is retried (with exponential backoff) before the run fails.
    #[arg(long, env = "GONGSHU_BACKUP_S3_RETRY_SECONDS", default_value_t = 180)]
    pub s3_retry_seconds: u64,
    /// Extra zstd compression threads.
    #[arg(long, env = "GONGSHU_BACKUP_ZSTD_WORKERS", default_value_t = 0)]
    pub zstd_workers: u32,
    /// Seconds between progress reports in the status.
    #[arg(long, env = "GONGSHU_BACKUP_PROGRESS_SECONDS", default_value_t = 2)]
    pub progress_seconds: u64,
    /// Seconds without a byte read after which the run fails as stuck.
    #[arg(long, env = "GONGSHU_BACKUP_STALL_SECONDS", default_value_t = 600)]
    pub stall_seconds: u64,
}

impl RunArgs {
    fn config(&self) -> Config {
        Config {
            file_root: self.file_root.clone(),
            local_root: self.local_root.clone(),
            audit_dir: self.audit_dir.clone(),
            s3_retry: Duration::from_secs(self.s3_retry_seconds),
            zstd_workers: self.zstd_workers,
            progress_every: Duration::from_secs(self.progress_seconds.max(1)),
            stall_after: Duration::from_secs(self.stall_seconds.max(1)),
        }
    }
}

/// A destination to read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum From {
    /// The off-site S3 bucket.
    #[default]
    Offsite,
    /// The local directory.
    Local,
}

/// Where a policy's backups are: the policy in the cluster, or, without a cluster (disaster
/// recovery), a directory or an S3 bucket given here.
#[derive(Debug, Args)]
pub struct WhereArgs {
    /// The policy's namespace.
    #[arg(long)]
    pub namespace: String,
    /// The policy's name.
    #[arg(long)]
    pub policy: String,
    /// Which of the policy's destinations to read.
    #[arg(long, value_enum, default_value_t)]
    pub from: From,
    /// Read this local backup directory instead of asking the cluster.
    #[arg(long, conflicts_with_all = ["s3_endpoint"])]
    pub dir: Option<PathBuf>,
    /// Read this S3 endpoint instead of asking the cluster (credentials from
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`).
    #[arg(long, requires = "bucket")]
    pub s3_endpoint: Option<String>,
    /// The bucket, with `--s3-endpoint`.
    #[arg(long)]
    pub bucket: Option<String>,
    /// The key prefix, with `--s3-endpoint`.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// The region, with `--s3-endpoint`.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
}

impl WhereArgs {
    async fn destination(&self) -> Result<Destination, RunnerError> {
        let layout = |prefix: &str| Layout::new(prefix, &self.namespace, &self.policy);
        if let Some(dir) = &self.dir {
            return Ok(Destination::local(dir, layout(""))?);
        }
        if let Some(endpoint) = &self.s3_endpoint {
            let env = |k: &str| std::env::var(k).unwrap_or_default();
            let settings = S3Settings {
                endpoint: endpoint.clone(),
                bucket: self.bucket.clone().unwrap_or_default(),
                region: self.region.clone(),
                access_key_id: env("AWS_ACCESS_KEY_ID"),
                secret_access_key: env("AWS_SECRET_ACCESS_KEY"),
                retry_timeout: Duration::from_secs(60),
                ca_bundle: None,
            };
            return Ok(Destination::s3(&settings, layout(&self.prefix))?);
        }
        let client = kube::Client::try_default()
            .await
            .map_err(|e| RunnerError::Invalid(format!("cannot reach the cluster: {e}")))?;
        let policy = runner::policy(&client, &self.namespace, &self.policy).await?;
        let config = Config {
            file_root: PathBuf::from("/"),
            // At the terminal the user names the destination to read.
            local_root: PathBuf::from("/"),
            audit_dir: None,
            s3_retry: Duration::from_secs(60),
            zstd_workers: 0,
            progress_every: Duration::from_secs(2),
            stall_after: Duration::from_secs(600),
        };
        let wanted = match self.from {
            From::Offsite => "offsite",
            From::Local => "local",
        };
        runner::destinations(&client, &policy, &config)
            .await?
            .into_iter()
            .find(|d| d.name == wanted)
            .ok_or_else(|| RunnerError::Invalid(format!("the policy has no {wanted} destination")))
    }
}

/// `gongshu backup restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Where the backup is.
    #[command(flatten)]
    pub from: WhereArgs,
    /// The backup id, or `latest`.
    #[arg(long, default_value = "latest")]
    pub id: String,
    /// File with the `age` identity (`AGE-SECRET-KEY-1…`) of one of the recipients.
    #[arg(long)]
    pub identity_file: PathBuf,
    /// Load PostgreSQL sources into this database (a libpq URI).
    #[arg(long, env = "GONGSHU_RESTORE_POSTGRES")]
    pub postgres: Option<String>,
    /// Drop tables that exist in the target database before loading them.
    #[arg(long)]
    pub replace: bool,
    /// Unpack path and audit-log sources under `<directory>/<source>/`.
    #[arg(long)]
    pub directory: Option<PathBuf>,
    /// Only these sources (repeat the flag); all by default.
    #[arg(long = "source")]
    pub sources: Vec<String>,
    /// Check sources that have no target (download, decrypt, checksum, count rows) instead
    /// of refusing.
    #[arg(long)]
    pub check_only: bool,
}

/// Runs a `gongshu backup` command; the exit code: 0 done, 1 failed.
pub async fn run(args: BackupArgs) -> i32 {
    let outcome = match args.command {
        BackupCommand::Run(a) => match kube_client().await {
            Ok(client) => runner::run(&client, &a.namespace, &a.policy, a.scheduled, &a.config())
                .await
                .map(|m| {
                    println!(
                        "backup {} complete: {} bytes stored",
                        m.id,
                        m.cipher_bytes()
                    )
                }),
            Err(e) => Err(e),
        },
        BackupCommand::Verify(a) => match kube_client().await {
            Ok(client) => runner::verify(&client, &a.namespace, &a.policy, &a.config())
                .await
                .map(|r| println!("restore drill passed: {}", r.summary())),
            Err(e) => Err(e),
        },
        BackupCommand::List(a) => list(&a).await,
        BackupCommand::Restore(a) => restore(&a).await,
    };
    match outcome {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("error ({}): {error}", error.category());
            1
        }
    }
}

async fn kube_client() -> Result<kube::Client, RunnerError> {
    kube::Client::try_default()
        .await
        .map_err(|e| RunnerError::Invalid(format!("cannot reach the cluster: {e}")))
}

async fn list(args: &WhereArgs) -> Result<(), RunnerError> {
    let destination = args.destination().await?;
    println!("ID\tCOMPLETED\tSTORED-BYTES\tSOURCE-BYTES\tVERIFIED");
    for listed in destination.list().await? {
        match &listed.manifest {
            Some(m) => println!(
                "{}\t{}\t{}\t{}\t{}",
                listed.id,
                m.completed_at,
                m.cipher_bytes(),
                m.plain_bytes(),
                listed.verified
            ),
            None => println!("{}\t(incomplete: no manifest)\t-\t-\t-", listed.id),
        }
    }
    Ok(())
}

async fn restore(args: &RestoreArgs) -> Result<(), RunnerError> {
    let identities =
        runner::identities(&std::fs::read_to_string(&args.identity_file).map_err(|e| {
            RunnerError::Invalid(format!("{}: {e}", args.identity_file.display()))
        })?)?;
    let destination = args.from.destination().await?;
    let id = if args.id == "latest" {
        destination
            .list()
            .await?
            .into_iter()
            .rev()
            .find(|l| l.manifest.is_some())
            .map(|l| l.id)
            .ok_or_else(|| RunnerError::Invalid("no complete backup".into()))?
    } else {
        args.id.clone()
    };
    let manifest = restore::manifest(&destination, &id).await?;
    let targets = Targets {
        postgres: args.postgres.clone(),
        replace: args.replace,
        directory: args.directory.clone(),
        only: args.sources.clone(),
        check_only: args.check_only,
    };
    let report = restore::restore(&destination, &manifest, &identities, &targets).await?;
    println!("restored backup {id}: {}", report.summary());
    Ok(())
}
