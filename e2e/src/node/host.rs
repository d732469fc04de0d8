//! What a node changes on the host, and undoes when it stops: the bridge, the cgroups its pods
//! run in, the mounts under its directory, the pods' network namespaces and the processes
//! containerd started (shims and containers), none of which are children of the harness.

use std::{
    collections::BTreeSet,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

use super::{BRIDGE, POD_SUBNET_PREFIX};
use crate::{Error, process::alive};

/// Where pods' network namespaces are (containerd 1.6 puts them there, whatever its state
/// directory).
pub const NETNS_DIR: &str = "/run/netns";
/// The cgroup v1 hierarchies.
const CGROUP_V1: &str = "/sys/fs/cgroup";

/// Runs `program args`, failing with what it said.
pub fn run(program: &str, args: &[&str]) -> Result<String, Error> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| Error::Spawn {
            program: program.into(),
            source: e,
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Harness(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Creates [`BRIDGE`] with `gateway` on it, up, before the kubelet starts: the kubelet's node
/// address must exist on the host, and the CNI bridge plugin adopts an existing bridge.
pub(crate) fn create_bridge(gateway: Ipv4Addr) -> Result<(), Error> {
    delete_bridge();
    run("ip", &["link", "add", BRIDGE, "type", "bridge"])?;
    run(
        "ip",
        &[
            "addr",
            "add",
            &format!("{gateway}/{POD_SUBNET_PREFIX}"),
            "dev",
            BRIDGE,
        ],
    )?;
    run("ip", &["link", "set", BRIDGE, "up"])?;
    Ok(())
}

/// Deletes [`BRIDGE`] if it exists (with it go the pods' veth ends still attached).
pub(crate) fn delete_bridge() {
    let _ = run("ip", &["link", "del", BRIDGE]);
}

/// Whether [`BRIDGE`] exists.
pub fn bridge_exists() -> bool {
    Path::new("/sys/class/net").join(BRIDGE).exists()
}

/// The names in [`NETNS_DIR`].
pub fn netns_names() -> BTreeSet<String> {
    std::fs::read_dir(NETNS_DIR)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Removes the network namespaces in [`NETNS_DIR`] that were not there `before`, which only
/// the node's containerd made (one node runs at a time, see `super::LOCK`).
pub(crate) fn remove_new_netns(before: &BTreeSet<String>) {
    for name in netns_names().difference(before) {
        if !name.starts_with("cni-") {
            continue;
        }
        let path = Path::new(NETNS_DIR).join(name);
        let _ = run("umount", &["-l", &path.display().to_string()]);
        let _ = std::fs::remove_file(&path);
    }
}

/// Mount points at or under `dir`, deepest last (the order they were mounted in).
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect()
}

/// Unmounts everything at or under `dir`, newest first (lazily: a dying shim may still hold
/// one).
pub(crate) fn unmount_all(dir: &Path) {
    for _ in 0..3 {
        let mounts = mounts_under(dir);
        if mounts.is_empty() {
            return;
        }
        for m in mounts.iter().rev() {
            let _ = run("umount", &["-l", &m.display().to_string()]);
        }
    }
}

/// The cgroup v1 hierarchies mounted here (`cpu`, `memory`, …, `systemd`), and with
/// `unified` the cgroup2 one of a hybrid setup too (runc creates its containers' cgroups
/// there as well).
fn hierarchies(unified: bool) -> Vec<PathBuf> {
    std::fs::read_dir(CGROUP_V1)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.join("cgroup.procs").exists() && (unified || !p.ends_with("unified")))
                .collect()
        })
        .unwrap_or_default()
}

/// The cgroup the harness's memory is accounted to (`/process_api/<id>` under a sandbox
/// supervisor, `/` elsewhere): the node's pods go below it, so that they stay inside whatever
/// limit the machine's owner set.
pub(crate) fn own_memory_cgroup() -> String {
    std::fs::read_to_string("/proc/self/cgroup")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers
                .split(',')
                .any(|c| c == "memory")
                .then(|| path.to_owned())
        })
        .unwrap_or_else(|| "/".into())
}

/// Creates the cgroup `path` in every v1 hierarchy (the kubelet's `cgroupRoot` must exist in
/// all), copying `cpuset.cpus` and `cpuset.mems` down so tasks can join; returns the
/// directories it created, outermost first.
pub(crate) fn create_cgroup(path: &str) -> Result<Vec<PathBuf>, Error> {
    let mut created = Vec::new();
    for h in hierarchies(false) {
        let mut dir = h.clone();
        for part in path.trim_matches('/').split('/') {
            let parent = dir.clone();
            dir.push(part);
            if !dir.exists() {
                std::fs::create_dir(&dir).map_err(|e| Error::io(&dir, e))?;
                created.push(dir.clone());
            }
            for file in ["cpuset.cpus", "cpuset.mems"] {
                let own = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
                if dir.join(file).exists() && own.trim().is_empty() {
                    let value = std::fs::read_to_string(parent.join(file)).unwrap_or_default();
                    std::fs::write(dir.join(file), value.trim())
                        .map_err(|e| Error::io(&dir.join(file), e))?;
                }
            }
        }
    }
    Ok(created)
}

/// Every cgroup directory at or below `path` in every hierarchy, deepest first.
fn cgroup_tree(path: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.filter_map(Result::ok) {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path(), out);
                }
            }
        }
        out.push(dir.to_path_buf());
    }
    let mut out = Vec::new();
    for h in hierarchies(true) {
        let root = h.join(path.trim_matches('/'));
        if root.exists() {
            walk(&root, &mut out);
        }
    }
    out
}

/// The processes in the cgroup `path` or below it, in any hierarchy.
pub fn cgroup_pids(path: &str) -> BTreeSet<i32> {
    cgroup_tree(path)
        .iter()
        .flat_map(|d| {
            std::fs::read_to_string(d.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// SIGKILLs every process in the cgroup `path` (the pods' containers) until none is left or
/// `within` passed, then removes the cgroups below `path` and those in `created`.
pub(crate) fn kill_and_remove_cgroups(path: &str, created: &[PathBuf], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let pids = cgroup_pids(path);
        if pids.is_empty() || Instant::now() > deadline {
            break;
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for dir in cgroup_tree(path) {
        let _ = std::fs::remove_dir(&dir);
    }
    for dir in created.iter().rev() {
        let _ = std::fs::remove_dir(dir);
    }
}

/// Process ids whose command line contains every one of `needles`.
pub fn pids_matching(needles: &[&str]) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
                .filter(|pid| {
                    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                    needles.iter().all(|n| cmdline.contains(n))
                })
                .filter(|pid| alive(*pid))
                .collect()
        })
        .unwrap_or_default()
}

/// SIGKILLs `pids` and waits up to `within` for them to go.
pub(crate) fn kill_all(pids: &[i32], within: Duration) {
    for pid in pids {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    let deadline = Instant::now() + within;
    while pids.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Removes the kubelet's symlinks in `/var/log/containers` (a path it does not let one
/// configure) that point into `dir`.
pub(crate) fn remove_container_log_links(dir: &Path) {
    let Ok(entries) = std::fs::read_dir("/var/log/containers") else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        if std::fs::read_link(e.path()).is_ok_and(|target| target.starts_with(dir)) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Whether an overlay mount works in `dir` (containerd's `overlayfs` snapshotter needs it).
pub(crate) fn overlay_works(dir: &Path) -> bool {
    let base = dir.join("overlay-check");
    let [lower, upper, work, merged] = ["lower", "upper", "work", "merged"].map(|d| base.join(d));
    for d in [&lower, &upper, &work, &merged] {
        if std::fs::create_dir_all(d).is_err() {
            return false;
        }
    }
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    let merged_path = merged.display().to_string();
    let ok = run(
        "mount",
        &["-t", "overlay", "overlay", "-o", &options, &merged_path],
    )
    .is_ok();
    if ok {
        let _ = run("umount", &[&merged_path]);
    }
    let _ = std::fs::remove_dir_all(&base);
    ok
}

/// Removes the `KUBE-*` chains, and the rules jumping to them, from the filter, nat and mangle
/// tables (IPv4 and IPv6): kube-proxy's (after `kube-proxy --cleanup`) and the kubelet's own
/// (`KUBE-FIREWALL`, `KUBE-KUBELET-CANARY`, `KUBE-IPTABLES-HINT`), which no flag of its
/// removes.
pub(crate) fn remove_kube_chains() {
    for program in ["iptables", "ip6tables"] {
        for table in ["filter", "nat", "mangle"] {
            let Ok(rules) = run(program, &["-w", "-t", table, "-S"]) else {
                continue;
            };
            for rule in rules.lines() {
                let mut words = rule.split_whitespace();
                if words.next() != Some("-A") {
                    continue;
                }
                let chain = words.next().unwrap_or_default();
                if !chain.starts_with("KUBE-") && rule.contains(" -j KUBE-") {
                    // The rule as listed, minus its quotes (arguments are passed as they are).
                    let args: Vec<String> = shell_words(rule.trim_start_matches("-A "));
                    let mut all = vec!["-w", "-t", table, "-D"];
                    all.extend(args.iter().map(String::as_str));
                    let _ = run(program, &all);
                }
            }
            let chains: Vec<&str> = rules
                .lines()
                .filter_map(|l| l.strip_prefix("-N "))
                .filter(|c| c.starts_with("KUBE-"))
                .collect();
            for c in &chains {
                let _ = run(program, &["-w", "-t", table, "-F", c]);
            }
            for c in &chains {
                let _ = run(program, &["-w", "-t", table, "-X", c]);
            }
        }
    }
}

/// Splits an `iptables -S` line into arguments (double quotes group words).
fn shell_words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any || !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
                any = false;
            }
            c => word.push(c),
        }
    }
    if any || !word.is_empty() {
        out.push(word);
    }
    out
}

/// Host directories that the kubelet, containerd, its shims and libcni create whatever they
/// are configured with: the device-plugin socket directory, the shims' socket directory and
/// libcni's result cache.
pub(crate) const FIXED_DIRS: [&str; 4] = [
    "/var/lib/kubelet",
    "/run/containerd",
    "/var/lib/cni",
    "/var/log/containers",
];

/// Which of [`FIXED_DIRS`] exist now.
pub(crate) fn existing_fixed_dirs() -> BTreeSet<&'static str> {
    FIXED_DIRS
        .into_iter()
        .filter(|d| Path::new(d).exists())
        .collect()
}

/// Removes those of [`FIXED_DIRS`] that did not exist `before` the node started (one node
/// runs at a time, so only it can have made them).
pub(crate) fn remove_new_fixed_dirs(before: &BTreeSet<&'static str>) {
    for d in FIXED_DIRS {
        if !before.contains(d) {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::shell_words;

    #[test]
    fn iptables_rules_split_into_arguments() {
        assert_eq!(
            shell_words(
                r#"INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS"#
            ),
            [
                "INPUT",
                "-m",
                "comment",
                "--comment",
                "kubernetes health check service ports",
                "-j",
                "KUBE-NODEPORTS"
            ]
        );
        assert_eq!(
            shell_words(r#"X --comment "" -j Y"#),
            ["X", "--comment", "", "-j", "Y"]
        );
    }
}
