//! `gongshu`: one binary, several subcommands (see `gongshu --help`).

use std::process::ExitCode;

use clap::Parser;
use gongshu::{
    cli::{Cli, Command, CrdArgs},
    crd, operator, telemetry,
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
        Command::Operator(args) => tokio::runtime::Runtime::new()
            .map_err(|e| format!("cannot start the async runtime: {e}"))
            .and_then(|runtime| {
                runtime
                    .block_on(operator::run(args.config()))
                    .map_err(|e| e.to_string())
            }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            error!("{message}");
            ExitCode::FAILURE
        }
    }
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
