//! What every benchmark program shares: the machine it ran on, latency percentiles, a process's
//! memory, and the results file in `bench/results/`.
//!
//! Benchmarks are programs, not tests: they never assert on time. Each runs gongshu and its
//! baseline in the same run, on the same machine, and prints the ratio.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    time::Duration,
};

/// A benchmark that could not run to the end.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The control plane or harness failed.
    #[error(transparent)]
    Harness(#[from] gongshu_e2e::Error),
    /// An API call failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// A results file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Something the benchmark waits for did not happen.
    #[error("{0}")]
    Stuck(String),
}

/// A benchmark program's `main`: runs `work` on a multi-threaded runtime and turns its error
/// into a message and a failing exit code.
pub fn main(
    name: &str,
    work: impl std::future::Future<Output = Result<(), Error>>,
) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name} benchmark failed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Applies `examples/10-regulation.yaml` (the Regulation every workflow needs) to the cluster
/// of `env`.
pub fn apply_example_regulation(env: &gongshu_e2e::harness::TestEnv) -> Result<(), Error> {
    let regulation = gongshu_e2e::cluster::repo_root().join("examples/10-regulation.yaml");
    let status = env
        .kubectl()
        .args(["apply", "-f"])
        .arg(&regulation)
        .status()
        .map_err(|e| Error::Stuck(format!("kubectl: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Stuck(
            "kubectl apply of the Regulation failed".into(),
        ))
    }
}

/// The machine a benchmark ran on, as one line: CPU model, cores, memory, kernel.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{model}, {cores} cores, {mem_gib:.1} GiB RAM, Linux {}",
        kernel.trim()
    )
}

/// A field of `/proc/<pid>/status` in kibibytes (`VmRSS`, `VmHWM`, ...).
pub fn proc_status_kib(pid: i32, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time (user + system) process `pid` has used, in seconds; `None` once it is gone.
/// `/proc/<pid>/stat` counts in USER_HZ, which Linux fixes at 100 for user space.
pub fn cpu_seconds(pid: i32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after its closing parenthesis are
    // numbered from 3.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// CPU seconds of several processes, to take differences of around a phase.
#[derive(Clone, Debug)]
pub struct CpuMeter {
    pids: Vec<(String, i32)>,
    start: Vec<f64>,
}

impl CpuMeter {
    /// Starts measuring `pids` (name, pid).
    pub fn start(pids: Vec<(String, i32)>) -> Self {
        let start = pids
            .iter()
            .map(|(_, p)| cpu_seconds(*p).unwrap_or(0.0))
            .collect();
        Self { pids, start }
    }

    /// `name 1.2 s, name 3.4 s` since the start.
    pub fn summary(&self) -> String {
        self.pids
            .iter()
            .zip(&self.start)
            .map(|((name, pid), start)| {
                let now = cpu_seconds(*pid).unwrap_or(*start);
                format!("{name} {:.1} s", now - start)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// CPU seconds each process used since the start, in the order given.
    pub fn seconds(&self) -> Vec<f64> {
        self.pids
            .iter()
            .zip(&self.start)
            .map(|((_, pid), start)| cpu_seconds(*pid).unwrap_or(*start) - start)
            .collect()
    }
}

/// The `p`-th percentile (0–100) of `samples` by nearest rank; zero when there are none.
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let rank = (p / 100.0 * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

/// Milliseconds with two decimals, for tables.
pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// A results report: a title, the machine and date, then sections of Markdown.
#[derive(Debug)]
pub struct Report {
    text: String,
}

impl Report {
    /// A report titled `title`, stamped with the machine and today's date.
    pub fn new(title: &str) -> Self {
        let mut text = String::new();
        let _ = writeln!(text, "# {title}\n");
        let _ = writeln!(
            text,
            "- date: {}",
            jiff::Zoned::now().strftime("%Y-%m-%d %H:%M %Z")
        );
        let _ = writeln!(text, "- machine: {}", machine());
        Self { text }
    }

    /// Appends a line (and prints it, so a long run shows progress).
    pub fn line(&mut self, line: impl AsRef<str>) {
        println!("{}", line.as_ref());
        let _ = writeln!(self.text, "{}", line.as_ref());
    }

    /// Writes the report to `<dir>/<name>-<YYYY-MM-DD>.md`; returns the path.
    pub fn write(&self, dir: &Path, name: &str) -> Result<PathBuf, Error> {
        let io = |path: &Path, source| Error::Io {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let file = dir.join(format!(
            "{name}-{}.md",
            jiff::Zoned::now().strftime("%Y-%m-%d")
        ));
        std::fs::write(&file, &self.text).map_err(|e| io(&file, e))?;
        Ok(file)
    }
}

/// `bench/results/` in the workspace.
pub fn results_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("results")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::percentile;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let mut s: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&mut s, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&mut s, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&mut s, 100.0), Duration::from_millis(100));
        assert_eq!(percentile(&mut [], 99.0), Duration::ZERO);
    }
}
