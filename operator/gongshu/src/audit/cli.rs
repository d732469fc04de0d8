//! `gongshu audit …`: checking the audit chain from a terminal.

use std::path::PathBuf;

use super::{AuditError, CHECKPOINT_NAME, Checkpointer, Report, verify};

/// `gongshu audit`.
#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: AuditCommand,
}

/// The `audit` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum AuditCommand {
    /// Checks the audit chain end to end (and against its checkpoint); exit code 1 when
    /// anything was edited, deleted, reordered or truncated.
    Verify(VerifyArgs),
}

/// `gongshu audit verify`.
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// Directory of the audit segments.
    #[arg(long, env = "GONGSHU_AUDIT_DIR")]
    pub dir: PathBuf,
    /// Namespace of the checkpoint ConfigMap; without it only the files are checked.
    #[arg(long)]
    pub checkpoint_namespace: Option<String>,
    /// Name of the checkpoint ConfigMap.
    #[arg(long, default_value = CHECKPOINT_NAME)]
    pub checkpoint_name: String,
}

/// Runs the subcommand, printing its report; whether the chain is intact.
pub async fn run(args: &AuditArgs) -> Result<bool, AuditError> {
    match &args.command {
        AuditCommand::Verify(verify_args) => {
            let report = verify_command(verify_args).await?;
            print!("{report}");
            Ok(report.is_intact())
        }
    }
}

async fn verify_command(args: &VerifyArgs) -> Result<Report, AuditError> {
    let checkpoint = match &args.checkpoint_namespace {
        None => None,
        Some(namespace) => {
            let client =
                kube::Client::try_default()
                    .await
                    .map_err(|source| AuditError::Checkpoint {
                        namespace: namespace.clone(),
                        name: args.checkpoint_name.clone(),
                        source: Box::new(source),
                    })?;
            let checkpointer = Checkpointer::new(client, namespace.clone())
                .with_name(args.checkpoint_name.clone());
            let data = checkpointer.read().await?;
            Some(data.ok_or_else(|| AuditError::CheckpointMissing {
                namespace: namespace.clone(),
                name: args.checkpoint_name.clone(),
            })?)
        }
    };
    let dir = args.dir.clone();
    match tokio::task::spawn_blocking(move || verify(&dir, checkpoint.as_ref())).await {
        Ok(report) => report,
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use clap::Parser;

    use super::*;

    #[derive(clap::Parser, Debug)]
    struct Command {
        #[command(subcommand)]
        audit: Top,
    }

    #[derive(clap::Subcommand, Debug)]
    enum Top {
        Audit(AuditArgs),
    }

    #[test]
    fn verify_takes_a_directory_and_an_optional_checkpoint() {
        let Command {
            audit: Top::Audit(args),
        } = Command::try_parse_from(["gongshu", "audit", "verify", "--dir", "/tmp/a"]).unwrap();
        let AuditCommand::Verify(verify) = args.command;
        assert_eq!(verify.dir, PathBuf::from("/tmp/a"));
        assert_eq!(verify.checkpoint_namespace, None);
        assert_eq!(verify.checkpoint_name, CHECKPOINT_NAME);
    }

    #[tokio::test]
    async fn an_empty_directory_is_intact() {
        let dir = tempfile::tempdir().unwrap();
        let args = AuditArgs {
            command: AuditCommand::Verify(VerifyArgs {
                dir: dir.path().into(),
                checkpoint_namespace: None,
                checkpoint_name: CHECKPOINT_NAME.into(),
            }),
        };
        assert!(run(&args).await.unwrap());
    }
}
