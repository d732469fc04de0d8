//! A real PostgreSQL server (Debian's `postgresql` package, which `.ci/run` installs) started in
//! a directory of its own on a loopback port, for the suites that need data: catalog sources,
//! the exchange's `table` mode, backups.
//!
//! `initdb` and `postgres` refuse to run as root; under root (containers, CI) the server runs as
//! the package's `postgres` user through `setpriv`, which execs it in place, so the process the
//! harness holds is the server itself.

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use crate::{
    Error,
    controlplane::free_port,
    process::{Process, tail},
};

/// The superuser the harness creates.
pub const SUPERUSER: &str = "gongshu";

/// A running PostgreSQL server, stopped (fast shutdown) on drop.
#[derive(Debug)]
pub struct Postgres {
    process: Option<Process>,
    port: u16,
    password: String,
    dir: PathBuf,
    /// The addresses it listens on besides loopback ([`Postgres::start_on`]).
    extra: Vec<Ipv4Addr>,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(p) = self.process.take() {
            p.stop(Duration::from_secs(20));
        }
    }
}

impl Postgres {
    /// Leaves the server running past this handle (the demo), returning its pid for whoever
    /// stops it later.
    pub fn detach(mut self) -> Option<i32> {
        self.process.take().map(|p| {
            let pid = p.pid();
            std::mem::forget(p);
            pid
        })
    }

    /// Initializes a cluster in `dir/data` (password authentication, loopback only) and starts
    /// it on a free port; waits until it accepts connections.
    pub async fn start(dir: &Path) -> Result<Self, Error> {
        Self::start_on(dir, &[]).await
    }

    /// [`start`](Self::start), listening on `addrs` too (say the e2e node's gateway,
    /// 10.77.0.1, for pods to reach it) and accepting password (SCRAM) logins from each
    /// address's `/24` (the node's pod subnet, 10.77.0.0/24), besides loopback. The addresses
    /// must exist on the host when it starts (a node's bridge is created by `Node::start`).
    pub async fn start_on(dir: &Path, addrs: &[Ipv4Addr]) -> Result<Self, Error> {
        let bin = bin_dir()?;
        let data = dir.join("data");
        let logs = dir.join("logs");
        for d in [dir, &logs] {
            std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
        }
        let password = crate::harness::random_suffix() + &crate::harness::random_suffix();
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, &password).map_err(|e| Error::io(&pwfile, e))?;
        let as_root = nix::unistd::Uid::effective().is_root();
        if as_root {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir)
                .status()
                .map_err(|source| Error::Spawn {
                    program: "chown".into(),
                    source,
                })?;
            if !status.success() {
                return Err(Error::Harness(format!("chown of {} failed", dir.display())));
            }
        }
        let initdb_log = logs.join("initdb.log");
        let mut initdb = server_command(&bin.join("initdb"), as_root);
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", SUPERUSER, "--auth=scram-sha-256", "--encoding=UTF8"])
            .arg(format!("--pwfile={}", pwfile.display()));
        let out = std::fs::File::create(&initdb_log).map_err(|e| Error::io(&initdb_log, e))?;
        let status = initdb
            .stdout(out.try_clone().map_err(|e| Error::io(&initdb_log, e))?)
            .stderr(out)
            .status()
            .map_err(|source| Error::Spawn {
                program: "initdb".into(),
                source,
            })?;
        if !status.success() {
            return Err(Error::Exited {
                process: "initdb".into(),
                status: status.to_string(),
                log_tail: tail(&initdb_log, 20),
            });
        }
        if !addrs.is_empty() {
            allow_subnets(&data.join("pg_hba.conf"), addrs)?;
        }
        let listen: Vec<String> = std::iter::once(Ipv4Addr::LOCALHOST)
            .chain(addrs.iter().copied())
            .map(|a| a.to_string())
            .collect();
        let port = free_port()?;
        let mut server = server_command(&bin.join("postgres"), as_root);
        server
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c"])
            .arg(format!("listen_addresses={}", listen.join(",")))
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.display()));
        let mut process = Process::spawn("postgres", &mut server, &logs.join("postgres.log"))?;
        let started = Instant::now();
        let timeout = Duration::from_secs(60);
        loop {
            process.check_alive()?;
            let ready = Command::new(bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                break;
            }
            if started.elapsed() > timeout {
                return Err(Error::Timeout {
                    what: "postgres",
                    waited: timeout,
                    log_tail: process.log_tail(20),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self {
            process: Some(process),
            port,
            password,
            dir: dir.to_path_buf(),
            extra: addrs.to_vec(),
        })
    }

    /// The port it listens on (loopback and the addresses of [`start_on`](Self::start_on)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser's connection URL for `database`.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// The superuser's connection URL for `database` at `addr`, one of the addresses of
    /// [`start_on`](Self::start_on) (what a pod connects to).
    pub fn url_at(&self, addr: Ipv4Addr, database: &str) -> String {
        debug_assert!(
            addr.is_loopback() || self.extra.contains(&addr),
            "postgres does not listen on {addr}"
        );
        format!(
            "postgres://{SUPERUSER}:{}@{addr}:{}/{database}",
            self.password, self.port
        )
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<i32> {
        self.process.as_ref().map(Process::pid)
    }

    /// Runs `sql` with `psql` against `database`; its standard output (unaligned, tuples only).
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, Error> {
        let bin = bin_dir()?;
        let out = Command::new(bin.join("psql"))
            .arg(self.url(database))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .map_err(|source| Error::Spawn {
                program: "psql".into(),
                source,
            })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(Error::Harness(format!(
                "psql in {}: {}",
                self.dir.display(),
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }
}

/// Appends to `pg_hba` a SCRAM password rule for the `/24` of each of `addrs`.
fn allow_subnets(pg_hba: &Path, addrs: &[Ipv4Addr]) -> Result<(), Error> {
    let mut text = std::fs::read_to_string(pg_hba).map_err(|e| Error::io(pg_hba, e))?;
    for addr in addrs {
        let [a, b, c, _] = addr.octets();
        text.push_str(&format!(
            "host    all             all             {a}.{b}.{c}.0/24            scram-sha-256\n"
        ));
    }
    std::fs::write(pg_hba, text).map_err(|e| Error::io(pg_hba, e))
}

/// `initdb` or `postgres`, as the `postgres` user when running as root.
fn server_command(program: &Path, as_root: bool) -> Command {
    if as_root {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ])
        .arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

/// The directory of the newest installed PostgreSQL's server programs
/// (`/usr/lib/postgresql/<major>/bin`).
pub fn bin_dir() -> Result<PathBuf, Error> {
    let root = Path::new("/usr/lib/postgresql");
    let newest = std::fs::read_dir(root)
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((major, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists())
        .max_by_key(|(major, _)| *major);
    newest.map(|(_, bin)| bin).ok_or_else(|| {
        Error::Harness(
            "no PostgreSQL server under /usr/lib/postgresql: install Debian's `postgresql` \
             package (`.ci/run` does)"
                .into(),
        )
    })
}
