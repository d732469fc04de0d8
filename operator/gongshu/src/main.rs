//! `gongshu`: one binary, several subcommands (see `gongshu --help`).

use std::process::ExitCode;

use clap::Parser;
use gongshu::{
    audit,
    cli::{Cli, Command, CrdArgs},
    crd, exchange, operator, telemetry,
};
use tracing::{error, info};

/// jemalloc instead of the system allocator: after a burst of work (a controller catching up
/// with thousands of objects) it gives freed memory back, where glibc kept the peak resident;
/// see the scale benchmark in the README.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    let result = match cli.command {
        Command::Crd(args) => crd_command(&args),
        Command::Backup(args) => {
            return match block_on(
                async move { Ok::<_, String>(gongshu::backup::cli::run(*args).await) },
            ) {
                Ok(0) => ExitCode::SUCCESS,
                Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
                Err(message) => {
                    eprintln!("error: {message}");
                    ExitCode::from(2)
                }
            };
        }
        Command::Operator(args) => block_on(async move {
            operator::run(args.config())
                .await
                .map_err(|e| e.to_string())
        }),
        Command::Exchange(args) => runtime(args.worker_threads).and_then(|runtime| {
            runtime.block_on(async move {
                exchange::run(args.config())
                    .await
                    .map_err(|e| e.to_string())
            })
        }),
        // Exit 2 on any error, as for a usage error: the report is all or nothing.
        Command::Report(args) => {
            return match block_on(async move {
                gongshu::report::run(&args).await.map_err(|e| {
                    tracing::debug!(category = e.category(), "report failed");
                    e.to_string()
                })
            }) {
                Ok(()) => ExitCode::SUCCESS,
                Err(message) => {
                    eprintln!("error: {message}");
                    ExitCode::from(2)
                }
            };
        }
        // Exit 1 when the chain is broken (the report says where), 2 when it cannot be read.
        Command::Audit(args) => {
            return match block_on(
                async move { audit::cli::run(&args).await.map_err(|e| e.to_string()) },
            ) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(message) => {
                    error!("{message}");
                    ExitCode::from(2)
                }
            };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            error!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `work` on a multi-threaded runtime.
fn block_on<T>(work: impl std::future::Future<Output = Result<T, String>>) -> Result<T, String> {
    runtime(0)?.block_on(work)
}

/// A multi-threaded runtime with `workers` threads (0: tokio's default, one per CPU).
fn runtime(workers: usize) -> Result<tokio::runtime::Runtime, String> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if workers > 0 {
        builder.worker_threads(workers);
    }
    builder
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

fn crd_command(args: &CrdArgs) -> Result<(), String> {
    let rendered = crd::render().map_err(|e| e.to_string())?;
    match &args.out_dir {
        None => {
            print!("{}", crd::to_stream(&rendered));
            Ok(())
        }
        Some(dir) => {
            let (written, removed) = crd::write_dir(dir, &rendered).map_err(|e| e.to_string())?;
            for path in removed {
                info!(path = %path.display(), "removed a stale generated CRD file");
            }
            info!(count = written.len(), dir = %dir.display(), "wrote CRDs");
            Ok(())
        }
    }
}
