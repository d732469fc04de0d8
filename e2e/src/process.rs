//! Local processes of the control plane and of gongshu itself: started with their output in
//! a log file, in a process group of their own, and stopped with SIGTERM then SIGKILL.
//! Detached processes are recorded in a pid file so that a later command can stop them.

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

use crate::Error;

/// A started process and its log.
#[derive(Debug)]
pub struct Process {
    /// Short name, used in pid files and messages.
    pub name: String,
    /// The child.
    pub child: Child,
    /// Its combined stdout and stderr.
    pub log: PathBuf,
}

impl Process {
    /// Starts `cmd` with stdout and stderr appended to `log`. The process gets a process group
    /// of its own: a terminal's Ctrl-C reaches the harness, which then stops its children in
    /// order, instead of killing them all at once mid-write.
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Result<Self, Error> {
        use std::os::unix::process::CommandExt;
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| Error::io(log, e))?;
        let err = out.try_clone().map_err(|e| Error::io(log, e))?;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd.spawn().map_err(|e| Error::Spawn {
            program: name.into(),
            source: e,
        })?;
        Ok(Self {
            name: name.into(),
            child,
            log: log.to_path_buf(),
        })
    }

    /// Process id.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Fails with the log tail if the process has exited.
    pub fn check_alive(&mut self) -> Result<(), Error> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(Error::Exited {
                process: self.name.clone(),
                status: status.to_string(),
                log_tail: tail(&self.log, 30),
            }),
            _ => Ok(()),
        }
    }

    /// SIGTERM, then SIGKILL after `grace`; returns whether it exited by itself in time
    /// (graceful shutdown) and with status 0.
    pub fn stop(mut self, grace: Duration) -> bool {
        let graceful = terminate(self.pid(), grace);
        let status = self.child.wait();
        graceful && status.map(|s| s.success()).unwrap_or(false)
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }
}

/// Records detached processes in `file`, one `<pid> <name>` per line, oldest first.
pub fn write_pid_file(file: &Path, processes: &[(i32, &str)]) -> Result<(), Error> {
    let text: String = processes
        .iter()
        .map(|(pid, name)| format!("{pid} {name}\n"))
        .collect();
    std::fs::write(file, text).map_err(|e| Error::io(file, e))
}

/// The processes recorded in `file` (empty if there is none).
pub fn read_pid_file(file: &Path) -> Vec<(i32, String)> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (pid, name) = l.split_once(' ')?;
            Some((pid.parse().ok()?, name.to_owned()))
        })
        .collect()
}

/// Whether every process recorded in `file` is alive (and there is at least one).
pub fn all_alive(file: &Path) -> bool {
    let pids = read_pid_file(file);
    !pids.is_empty() && pids.iter().all(|(pid, _)| alive(*pid))
}

/// Stops the processes recorded in `file`, newest first, and removes the file.
pub fn stop_pid_file(file: &Path, grace: Duration) -> Result<(), Error> {
    for (pid, _) in read_pid_file(file).iter().rev() {
        terminate(*pid, grace);
    }
    if file.exists() {
        std::fs::remove_file(file).map_err(|e| Error::io(file, e))?;
    }
    Ok(())
}

/// SIGTERM, wait up to `grace`, then SIGKILL, and wait until the process is gone. Returns
/// whether it exited within the grace period.
pub fn terminate(pid: i32, grace: Duration) -> bool {
    if kill(Pid::from_raw(pid), Signal::SIGTERM).is_err() {
        return true;
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    while alive(pid) {
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Alive and not a zombie (a zombie still accepts signal 0, so its state is read).
pub fn alive(pid: i32) -> bool {
    if kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state is the first field after the parenthesised command name.
    !matches!(
        stat.rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next()),
        Some('Z') | None
    )
}

/// The last `lines` lines of a file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
