//! The command line: `gongshu [--log-format text|json]
//! <operator|exchange|audit|backup|crd|report>`, each flag with an environment variable
//! fallback for use in a pod spec.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{ArgAction, Args, Parser, Subcommand};

use crate::{
    admission, exchange, exchange_deploy::ExchangeDeployment, operator, telemetry::LogFormat,
};

/// gongshu (公数): public-data regulations as Kubernetes infrastructure.
#[derive(Debug, Parser)]
#[command(name = "gongshu", version, about, long_about = None)]
pub struct Cli {
    /// Log format: human-readable text, or one JSON object per line for log collectors.
    /// The filter comes from RUST_LOG (default `info,kube=warn,tokio_postgres=warn`).
    #[arg(
        long,
        global = true,
        env = "GONGSHU_LOG_FORMAT",
        value_enum,
        default_value_t
    )]
    pub log_format: LogFormat,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controllers (with leader election) and the admin server until SIGTERM.
    Operator(Box<OperatorArgs>),
    /// Serve active grants over HTTPS (the exchange gateway), auditing every access.
    Exchange(Box<ExchangeArgs>),
    /// Check the exchange's audit log (`gongshu audit verify --dir …`).
    Audit(crate::audit::cli::AuditArgs),
    /// Print every CRD as multi-document YAML, or write one file per CRD into a directory.
    Crd(CrdArgs),
    /// Run, verify, list and restore encrypted backups of a `BackupPolicy`.
    Backup(Box<crate::backup::cli::BackupArgs>),
    /// Print the monthly SLA report per department: requests, decisions, on-time rate per
    /// step, breaches and open overdue steps (SUP-1, SUP-2).
    Report(Box<crate::report::ReportArgs>),
}

/// `gongshu exchange`.
#[derive(Debug, Args)]
pub struct ExchangeArgs {
    /// HTTPS listen address.
    #[arg(long, env = "GONGSHU_EXCHANGE_ADDR", default_value = "127.0.0.1:8444")]
    pub addr: SocketAddr,
    /// Address of the admin server (plain HTTP: /metrics, /healthz, /readyz), apart from the
    /// HTTPS data port; port 0 picks a free port and logs it.
    #[arg(
        long,
        env = "GONGSHU_EXCHANGE_ADMIN_ADDR",
        default_value = "127.0.0.1:8081"
    )]
    pub admin_addr: SocketAddr,
    /// Threads serving requests; 0: one per CPU the process may use. Fewer threads hand
    /// requests between threads less often, which can pay where the exchange shares a few
    /// cores with its source database (see the README's exchange benchmark).
    #[arg(long, env = "GONGSHU_EXCHANGE_WORKER_THREADS", default_value_t = 0)]
    pub worker_threads: usize,
    /// Seconds between verifications of the audit chain against its checkpoint (SEC-2), the
    /// first at start; each reads and hashes the whole log on a blocking thread.
    #[arg(long, env = "GONGSHU_AUDIT_VERIFY_INTERVAL_SECONDS", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub audit_verify_interval_seconds: u64,
    /// PEM serving certificate.
    #[arg(long, env = "GONGSHU_EXCHANGE_CERT_FILE")]
    pub cert_file: PathBuf,
    /// PEM private key of the certificate.
    #[arg(long, env = "GONGSHU_EXCHANGE_KEY_FILE")]
    pub key_file: PathBuf,
    /// Directory of the audit log's segments (a persistent volume in a cluster).
    #[arg(long, env = "GONGSHU_AUDIT_DIR")]
    pub audit_dir: PathBuf,
    /// Namespace of the audit checkpoint ConfigMap (`gongshu-audit-checkpoint`), normally the
    /// exchange's own.
    #[arg(long, env = "POD_NAMESPACE", default_value = "gongshu-system")]
    pub namespace: String,
    /// Name of the audit checkpoint ConfigMap, in `--namespace`.
    #[arg(long, env = "GONGSHU_AUDIT_CHECKPOINT", default_value = crate::audit::CHECKPOINT_NAME)]
    pub checkpoint_name: String,
    /// Seconds between writes of grant usage to the grants' status.
    #[arg(long, env = "GONGSHU_USAGE_INTERVAL_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub usage_interval_seconds: u64,
    /// File holding the 32-byte key that seals page cursors; give every replica the same one.
    /// Without it each process draws its own, and cursors do not survive a restart.
    #[arg(long, env = "GONGSHU_CURSOR_KEY_FILE")]
    pub cursor_key_file: Option<PathBuf>,
    /// Directory the paths of file sources are resolved under: `/data/x.csv` is read from
    /// `<file-root>/data/x.csv`, and nothing outside the root is read.
    #[arg(long, env = "GONGSHU_FILE_ROOT", default_value = "/")]
    pub file_root: PathBuf,
    /// Longest a `table` grant's replica goes unrefreshed; by default it follows the item's
    /// update frequency (a minute for realTime, a day for daily, …).
    #[arg(long, env = "GONGSHU_TABLE_REFRESH_MAX_SECONDS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub table_refresh_max_seconds: Option<u64>,
    /// Serve only the grants matching this label selector (`team=north`), to split grants
    /// between exchanges; all grants by default.
    #[arg(long, env = "GONGSHU_GRANT_SELECTOR")]
    pub grant_selector: Option<String>,
}

impl ExchangeArgs {
    /// The exchange's configuration.
    pub fn config(&self) -> exchange::Config {
        exchange::Config {
            addr: self.addr,
            admin_addr: self.admin_addr,
            audit_verify_every: Duration::from_secs(self.audit_verify_interval_seconds),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            audit_dir: self.audit_dir.clone(),
            checkpoint: Some((self.namespace.clone(), self.checkpoint_name.clone())),
            usage_interval: Duration::from_secs(self.usage_interval_seconds),
            cursor_key_file: self.cursor_key_file.clone(),
            file_root: self.file_root.clone(),
            table_refresh_ceiling: self.table_refresh_max_seconds.map(Duration::from_secs),
            grant_selector: self.grant_selector.clone(),
        }
    }
}

/// `gongshu operator`.
#[derive(Debug, Args)]
pub struct OperatorArgs {
    /// The operator's namespace; its leader Lease `gongshu-operator` lives here.
    #[arg(long, env = "POD_NAMESPACE", default_value = "gongshu-system")]
    pub namespace: String,
    /// Address of the admin server (/metrics, /healthz, /readyz); port 0 picks a free port
    /// and logs it.
    #[arg(long, env = "GONGSHU_ADMIN_ADDR", default_value = "127.0.0.1:8080")]
    pub admin_addr: SocketAddr,
    /// Identity in the Lease and in Events [default: <hostname>-<pid>].
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Campaign for the Lease before running the controllers; `false` runs them at once (one
    /// process per cluster only).
    #[arg(long, env = "GONGSHU_LEADER_ELECTION", default_value_t = true, action = ArgAction::Set)]
    pub leader_election: bool,
    /// Seconds a Lease stays valid after its last renewal; the renew deadline is two thirds of
    /// it, the retry period a seventh.
    #[arg(long, env = "GONGSHU_LEASE_DURATION_SECONDS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(2..=300))]
    pub lease_duration_seconds: u64,
    /// Address of the admission webhook (HTTPS); it serves only with a certificate
    /// (`--webhook-cert-file` or `--webhook-cert-secret`).
    #[arg(long, env = "GONGSHU_WEBHOOK_ADDR", default_value = "127.0.0.1:8443")]
    pub webhook_addr: SocketAddr,
    /// PEM serving certificate of the webhook (cert-manager, the chart), reloaded when the file
    /// changes; without it or `--webhook-cert-secret` the webhook is off.
    #[arg(
        long,
        env = "GONGSHU_WEBHOOK_CERT_FILE",
        requires = "webhook_key_file",
        conflicts_with = "webhook_cert_secret"
    )]
    pub webhook_cert_file: Option<PathBuf>,
    /// Secret in `--namespace` where the operator keeps its own webhook CA and serving
    /// certificate, rotating them before they expire (when no cert-manager provides one).
    #[arg(long, env = "GONGSHU_WEBHOOK_CERT_SECRET")]
    pub webhook_cert_secret: Option<String>,
    /// Lifetime of the managed serving certificate, renewed with a third left; the managed
    /// CA lives three times as long. Default 90 days.
    #[arg(long, env = "GONGSHU_WEBHOOK_CERT_VALIDITY_SECONDS", default_value_t = 90 * 86_400,
          value_parser = clap::value_parser!(u64).range(30..))]
    pub webhook_cert_validity_seconds: u64,
    /// Names the managed serving certificate carries besides the host of `--webhook-url`,
    /// e.g. the webhook Service's DNS name.
    #[arg(long, env = "GONGSHU_WEBHOOK_DNS_NAMES", value_delimiter = ',')]
    pub webhook_dns_names: Vec<String>,
    /// PEM private key of the webhook certificate.
    #[arg(long, env = "GONGSHU_WEBHOOK_KEY_FILE", requires = "webhook_cert_file")]
    pub webhook_key_file: Option<PathBuf>,
    /// URL the apiserver reaches the webhook at (`https://127.0.0.1:8443/validate`); with it
    /// the operator registers its ValidatingWebhookConfiguration.
    #[arg(long, env = "GONGSHU_WEBHOOK_URL", conflicts_with = "webhook_service")]
    pub webhook_url: Option<String>,
    /// Or the webhook's Service, `<namespace>/<name>` (port 443, path `/validate`): in a cluster,
    /// where the apiserver may not resolve `*.svc` names. The managed certificate then carries
    /// `<name>.<namespace>.svc`.
    #[arg(long, env = "GONGSHU_WEBHOOK_SERVICE", value_parser = parse_service)]
    pub webhook_service: Option<(String, String)>,
    /// PEM CA bundle that signed `--webhook-cert-file` (the configuration's caBundle).
    #[arg(long, env = "GONGSHU_WEBHOOK_CA_FILE")]
    pub webhook_ca_file: Option<PathBuf>,
    /// Base URL of the exchange: an active grant's endpoint is
    /// `<exchange-url>/v1/grants/<namespace>/<name>`.
    #[arg(long, env = "GONGSHU_EXCHANGE_URL", default_value = crate::controller::DEFAULT_EXCHANGE_URL)]
    pub exchange_url: String,
    /// Reconciles each controller runs at once. Each is a few API calls; more in flight only
    /// queues them in the apiserver and costs a connection apiece (the scale benchmark).
    #[arg(long, env = "GONGSHU_RECONCILE_CONCURRENCY", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub reconcile_concurrency: u16,
    /// Image of `gongshu exchange`; with it the leader deploys the exchange in `--namespace`
    /// (StatefulSet, Service, NetworkPolicy, PodDisruptionBudget) and keeps it deployed.
    #[arg(long, env = "GONGSHU_EXCHANGE_IMAGE")]
    pub exchange_image: Option<String>,
    /// Seconds between two applies of the exchange's objects (drift repair); for tests.
    #[arg(long, env = "GONGSHU_EXCHANGE_REAPPLY_SECONDS", default_value_t = 600, hide = true,
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub exchange_reapply_seconds: u64,
    /// How backup runs and drills start: `job` creates a Kubernetes Job per run in the
    /// policy's namespace (needs `--backup-image`); `process` runs `gongshu backup run|verify`
    /// next to the operator (where no node runs pods); `none` schedules without starting
    /// anything.
    #[arg(long, env = "GONGSHU_BACKUP_RUNNER", value_enum, default_value_t = BackupRunner::Process)]
    pub backup_runner: BackupRunner,
    /// Image of the runner Jobs, holding `gongshu` on its `PATH` (the operator's own image).
    #[arg(
        long,
        env = "GONGSHU_BACKUP_IMAGE",
        required_if_eq("backup_runner", "job")
    )]
    pub backup_image: Option<String>,
    /// `imagePullPolicy` of the runner Jobs.
    #[arg(long, env = "GONGSHU_BACKUP_IMAGE_PULL_POLICY", default_value = "IfNotPresent",
          value_parser = ["Always", "IfNotPresent", "Never"])]
    pub backup_image_pull_policy: String,
    /// `activeDeadlineSeconds` of the runner Jobs: Kubernetes stops a run that takes longer
    /// and the operator records it as failed (`DeadlineExceeded`).
    #[arg(long, env = "GONGSHU_BACKUP_JOB_DEADLINE_SECONDS", default_value_t = 6 * 3600,
          value_parser = clap::value_parser!(i64).range(1..))]
    pub backup_job_deadline_seconds: i64,
    /// `ttlSecondsAfterFinished` of the runner Jobs: how long a finished Job and its pod stay.
    #[arg(long, env = "GONGSHU_BACKUP_JOB_TTL_SECONDS", default_value_t = 86_400,
          value_parser = clap::value_parser!(i32).range(0..))]
    pub backup_job_ttl_seconds: i32,
    /// Seconds a runner Job may go without a running pod (image pull, scheduling) before the
    /// operator records the run as failed (`RunnerNotStarted`), deletes the Job and retries.
    #[arg(long, env = "GONGSHU_BACKUP_JOB_START_SECONDS", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub backup_job_start_seconds: u64,
    /// An extra argument of every runner Job's `gongshu backup run|verify` (repeat the flag).
    #[arg(
        long = "backup-job-arg",
        env = "GONGSHU_BACKUP_JOB_ARGS",
        value_delimiter = ' ',
        allow_hyphen_values = true
    )]
    pub backup_job_args: Vec<String>,
    /// `NAME=VALUE`: an extra environment variable of every runner Job (repeat the flag).
    #[arg(long = "backup-job-env", env = "GONGSHU_BACKUP_JOB_ENV", value_delimiter = ',',
          value_parser = parse_env)]
    pub backup_job_env: Vec<(String, String)>,
    /// Kubeconfig of the backup runners (the `gongshu-backup` ServiceAccount, which may read
    /// the Secrets policies name); the operator's own by default.
    #[arg(long, env = "GONGSHU_BACKUP_KUBECONFIG")]
    pub backup_kubeconfig: Option<PathBuf>,
    /// The runners' `--file-root` (where `path` sources and file items are).
    #[arg(long, env = "GONGSHU_BACKUP_FILE_ROOT", default_value = "/")]
    pub backup_file_root: PathBuf,
    /// The runners' `--local-root`: local destinations must be under it.
    #[arg(
        long,
        env = "GONGSHU_BACKUP_LOCAL_ROOT",
        default_value = "/var/backups/gongshu"
    )]
    pub backup_local_root: PathBuf,
    /// The runners' `--audit-dir` (the exchange's audit log, for `auditLog` sources).
    #[arg(long, env = "GONGSHU_BACKUP_AUDIT_DIR")]
    pub backup_audit_dir: Option<PathBuf>,
    /// The runners' S3 retry time; for tests.
    #[arg(
        long,
        env = "GONGSHU_BACKUP_S3_RETRY_SECONDS",
        default_value_t = 180,
        hide = true
    )]
    pub backup_s3_retry_seconds: u64,
    /// Seconds without a progress report after which a run is lost; for tests.
    #[arg(
        long,
        env = "GONGSHU_BACKUP_LOST_AFTER_SECONDS",
        default_value_t = 60,
        hide = true
    )]
    pub backup_lost_after_seconds: i64,
    /// Seconds before the first retry of a failed run (doubling, at most 30 minutes); for tests.
    #[arg(
        long,
        env = "GONGSHU_BACKUP_RETRY_SECONDS",
        default_value_t = 60,
        hide = true
    )]
    pub backup_retry_seconds: i64,
    /// Seconds between the runners' progress reports; for tests.
    #[arg(
        long,
        env = "GONGSHU_BACKUP_PROGRESS_SECONDS",
        default_value_t = 2,
        hide = true
    )]
    pub backup_progress_seconds: u64,
}

/// How the operator starts backup runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackupRunner {
    /// A Kubernetes Job per run, in the policy's namespace, as its `gongshu-backup`
    /// ServiceAccount.
    Job,
    /// `gongshu backup run` processes next to the operator.
    Process,
    /// Nothing is started (policies are still checked and scheduled).
    None,
}

impl OperatorArgs {
    fn backups(&self) -> Option<crate::controller::backup::LauncherConfig> {
        let secs = jiff::SignedDuration::from_secs;
        let timing = gongshu_api::rules::backup::decide::Timing {
            lost_after: secs(self.backup_lost_after_seconds.max(1)),
            retry_base: secs(self.backup_retry_seconds.max(1)),
            retry_max: secs(1800),
        };
        let image = match (self.backup_runner, &self.backup_image) {
            (BackupRunner::None, _) | (BackupRunner::Job, None) => return None,
            (BackupRunner::Job, Some(image)) => image,
            (BackupRunner::Process, _) => return self.process_runner(timing),
        };
        let mut args = vec![
            "--s3-retry-seconds".to_owned(),
            self.backup_s3_retry_seconds.to_string(),
            "--progress-seconds".to_owned(),
            self.backup_progress_seconds.to_string(),
        ];
        args.extend(self.backup_job_args.iter().cloned());
        Some(crate::controller::backup::LauncherConfig {
            mode: crate::controller::backup::Mode::Job(crate::backup_job::JobConfig {
                pull_policy: self.backup_image_pull_policy.clone(),
                args,
                env: self.backup_job_env.clone(),
                active_deadline_seconds: self.backup_job_deadline_seconds,
                ttl_seconds_after_finished: self.backup_job_ttl_seconds,
                start_timeout: Duration::from_secs(self.backup_job_start_seconds),
                ..crate::backup_job::JobConfig::new(image)
            }),
            timing,
        })
    }

    fn process_runner(
        &self,
        timing: gongshu_api::rules::backup::decide::Timing,
    ) -> Option<crate::controller::backup::LauncherConfig> {
        let mut args: Vec<std::ffi::OsString> = vec![
            "--file-root".into(),
            self.backup_file_root.clone().into(),
            "--local-root".into(),
            self.backup_local_root.clone().into(),
            "--s3-retry-seconds".into(),
            self.backup_s3_retry_seconds.to_string().into(),
            "--progress-seconds".into(),
            self.backup_progress_seconds.to_string().into(),
        ];
        if let Some(dir) = &self.backup_audit_dir {
            args.extend(["--audit-dir".into(), dir.clone().into()]);
        }
        Some(crate::controller::backup::LauncherConfig {
            mode: crate::controller::backup::Mode::Process {
                program: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("gongshu")),
                args,
                kubeconfig: self.backup_kubeconfig.clone(),
            },
            timing,
        })
    }
}

impl OperatorArgs {
    /// The webhook's configuration; `None` without a certificate source.
    fn webhook(&self) -> Option<admission::WebhookConfig> {
        let tls = match (
            &self.webhook_cert_file,
            &self.webhook_key_file,
            &self.webhook_cert_secret,
        ) {
            (Some(cert_file), Some(key_file), _) => admission::WebhookTls::Files {
                cert_file: cert_file.clone(),
                key_file: key_file.clone(),
                ca_file: self.webhook_ca_file.clone(),
            },
            (_, _, Some(secret)) => {
                let host = self
                    .webhook_url
                    .as_deref()
                    .and_then(|url| url.parse::<http::Uri>().ok())
                    .and_then(|uri| uri.host().map(|h| h.trim_matches(['[', ']']).to_owned()));
                let mut names: Vec<String> = host.into_iter().collect();
                if let Some((namespace, name)) = &self.webhook_service {
                    names.push(format!("{name}.{namespace}.svc"));
                }
                names.extend(self.webhook_dns_names.iter().cloned());
                names.dedup();
                admission::WebhookTls::Managed(admission::certs::ManagedTls {
                    namespace: self.namespace.clone(),
                    secret: secret.clone(),
                    names,
                    validity: Duration::from_secs(self.webhook_cert_validity_seconds),
                })
            }
            _ => return None,
        };
        Some(admission::WebhookConfig {
            addr: self.webhook_addr,
            tls,
            url: match (&self.webhook_url, &self.webhook_service) {
                (Some(url), _) => Some(admission::Target::Url(url.clone())),
                (None, Some((namespace, name))) => Some(admission::Target::Service {
                    namespace: namespace.clone(),
                    name: name.clone(),
                }),
                (None, None) => None,
            },
        })
    }

    /// The operator's configuration.
    pub fn config(&self) -> operator::Config {
        operator::Config {
            namespace: self.namespace.clone(),
            identity: self.identity.clone().unwrap_or_else(default_identity),
            admin_addr: self.admin_addr,
            leader_election: self.leader_election,
            lease_duration: Duration::from_secs(self.lease_duration_seconds),
            webhook: self.webhook(),
            exchange_url: self.exchange_url.clone(),
            reconcile_concurrency: self.reconcile_concurrency,
            exchange: self
                .exchange_image
                .as_ref()
                .map(|image| ExchangeDeployment {
                    reapply_every: Duration::from_secs(self.exchange_reapply_seconds),
                    ..ExchangeDeployment::new(&self.namespace, image)
                }),
            backups: self.backups(),
        }
    }
}

/// `<namespace>/<name>` of a Service.
fn parse_service(value: &str) -> Result<(String, String), String> {
    match value.split_once('/') {
        Some((namespace, name))
            if !namespace.is_empty() && !name.is_empty() && !name.contains('/') =>
        {
            Ok((namespace.to_owned(), name.to_owned()))
        }
        _ => Err(format!("{value:?} is not <namespace>/<name>")),
    }
}

/// `NAME=VALUE` of an environment variable.
fn parse_env(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((name, value)) if !name.is_empty() && !name.contains(char::is_whitespace) => {
            Ok((name.to_owned(), value.to_owned()))
        }
        _ => Err(format!("{value:?} is not NAME=VALUE")),
    }
}

/// `<hostname>-<pid>`: unique among processes on one machine and readable in `kubectl get lease`.
pub fn default_identity() -> String {
    let host = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "gongshu".into());
    format!("{host}-{}", std::process::id())
}

/// `gongshu crd`.
#[derive(Debug, Args)]
pub struct CrdArgs {
    /// Write `<plural>.<group>.yaml` per CRD into this directory (and remove generated files
    /// no type produces any more) instead of printing to stdout.
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_webhook_service_is_namespace_slash_name() {
        assert_eq!(
            super::parse_service("gongshu-system/gongshu-webhook"),
            Ok(("gongshu-system".to_owned(), "gongshu-webhook".to_owned()))
        );
        for bad in ["gongshu-webhook", "/x", "x/", "a/b/c"] {
            assert!(super::parse_service(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn operator_defaults_are_loopback_and_leader_election() {
        let cli = Cli::try_parse_from(["gongshu", "operator"]).unwrap();
        let Command::Operator(args) = cli.command else {
            panic!("not the operator command");
        };
        let config = args.config();
        assert!(config.leader_election);
        assert!(config.admin_addr.ip().is_loopback());
        assert_eq!(config.lease_duration, Duration::from_secs(15));
        assert!(
            config
                .identity
                .ends_with(&format!("-{}", std::process::id()))
        );
    }

    #[test]
    fn leader_election_can_be_switched_off_and_the_log_format_set() {
        let cli = Cli::try_parse_from([
            "gongshu",
            "operator",
            "--leader-election=false",
            "--log-format",
            "json",
            "--identity",
            "pod-0",
        ])
        .unwrap();
        assert_eq!(cli.log_format, LogFormat::Json);
        let Command::Operator(args) = cli.command else {
            panic!("not the operator command");
        };
        assert!(!args.leader_election);
        assert_eq!(args.config().identity, "pod-0");
    }

    #[test]
    fn the_exchange_admin_server_is_loopback_and_apart_from_the_data_port() {
        let cli = Cli::try_parse_from([
            "gongshu",
            "exchange",
            "--cert-file",
            "c",
            "--key-file",
            "k",
            "--audit-dir",
            "a",
        ])
        .unwrap();
        let Command::Exchange(args) = cli.command else {
            panic!("not the exchange command");
        };
        let config = args.config();
        assert!(config.admin_addr.ip().is_loopback());
        assert_eq!(config.admin_addr.port(), 8081);
        assert_ne!(config.admin_addr, config.addr);
        assert_eq!(config.audit_verify_every, Duration::from_secs(600));
    }

    #[test]
    fn job_runners_need_an_image_and_get_the_job_settings() {
        assert!(Cli::try_parse_from(["gongshu", "operator", "--backup-runner", "job"]).is_err());
        let cli = Cli::try_parse_from([
            "gongshu",
            "operator",
            "--backup-runner",
            "job",
            "--backup-image",
            "registry.example/gongshu:1",
            "--backup-job-deadline-seconds",
            "90",
            "--backup-job-arg=--stall-seconds",
            "--backup-job-arg=300",
            "--backup-job-env",
            "AWS_CA_BUNDLE=/ca.pem",
        ])
        .unwrap();
        let Command::Operator(args) = cli.command else {
            panic!("not the operator command");
        };
        let config = args.config().backups.unwrap();
        let crate::controller::backup::Mode::Job(job) = config.mode else {
            panic!("not the Job runner");
        };
        assert_eq!(job.image, "registry.example/gongshu:1");
        assert_eq!(job.pull_policy, "IfNotPresent");
        assert_eq!(job.active_deadline_seconds, 90);
        assert_eq!(job.start_timeout, Duration::from_secs(600));
        assert!(
            job.args
                .ends_with(&["--stall-seconds".to_owned(), "300".to_owned()])
        );
        assert!(
            job.args
                .windows(2)
                .any(|w| w == ["--progress-seconds", "2"])
        );
        assert_eq!(
            job.env,
            [("AWS_CA_BUNDLE".to_owned(), "/ca.pem".to_owned())]
        );
        assert!(super::parse_env("NOEQUALS").is_err());
    }

    #[test]
    fn the_operator_deploys_the_exchange_only_when_given_its_image() {
        let parse = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).unwrap();
            let Command::Operator(args) = cli.command else {
                panic!("not the operator command");
            };
            args.config().exchange
        };
        assert_eq!(parse(&["gongshu", "operator"]), None);
        let exchange = parse(&[
            "gongshu",
            "operator",
            "--namespace",
            "ops",
            "--exchange-image",
            "registry.example/gongshu:1",
        ])
        .unwrap();
        assert_eq!(exchange.image, "registry.example/gongshu:1");
        assert_eq!(exchange.namespace, "ops");
        assert_eq!(exchange.reapply_every, Duration::from_secs(600));
    }
}
