//! The upstream binaries of the local control plane and its node, built from their Go modules (pinned in
//! `e2e/upstream/*/go.mod`) into a cache that survives clones: `$GONGSHU_CACHE` or
//! `~/.cache/gongshu`; the Gateway API CRDs come from Go's module cache.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use crate::Error;

/// The Kubernetes release the control plane runs (`e2e/upstream/kubernetes/go.mod`).
pub const KUBERNETES_VERSION: &str = "v1.37.2";
/// The etcd release the control plane runs (`e2e/upstream/etcd/go.mod`).
pub const ETCD_VERSION: &str = "v3.7.3";

/// The versitygw release the S3 server runs (`e2e/upstream/versitygw/go.mod`).
pub const VERSITYGW_VERSION: &str = "v1.8.0";

/// The Gateway API release whose CRDs the control plane serves (`e2e/upstream/gateway-api/go.mod`).
pub const GATEWAY_API_VERSION: &str = "v1.6.3";

/// The Gateway API CRDs (by plural) the control plane serves: every route kind the admission
/// rules deny in department namespaces, and the kinds those routes refer to.
pub const GATEWAY_API_CRDS: [&str; 8] = [
    "gatewayclasses",
    "gateways",
    "httproutes",
    "grpcroutes",
    "tcproutes",
    "tlsroutes",
    "udproutes",
    "referencegrants",
];

/// Returns the experimental-channel CRD directory of the pinned Gateway API module
/// (`<repo>/e2e/upstream/gateway-api`), downloading the module with `go mod download` into
/// Go's module cache when missing (a 3 MiB zip; offline once cached). The experimental channel,
/// because only it serves every route kind, TCPRoute, TLSRoute and UDPRoute included.
pub fn ensure_gateway_api(repo: &Path) -> Result<PathBuf, Error> {
    let dir = go_mod_download(
        &repo.join("e2e/upstream/gateway-api"),
        "sigs.k8s.io/gateway-api",
    )?;
    let crds = dir.join("config/crd/experimental");
    for file in gateway_api_crd_files(&crds) {
        if !file.exists() {
            return Err(Error::Harness(format!(
                "sigs.k8s.io/gateway-api {GATEWAY_API_VERSION} has no {}",
                file.display()
            )));
        }
    }
    Ok(crds)
}

/// `go mod download` of the module `path` pinned in `module` (a directory with a `go.mod`)
/// into Go's module cache; returns the directory holding its files. Offline once cached.
pub(crate) fn go_mod_download(module: &Path, path: &str) -> Result<PathBuf, Error> {
    let args = ["mod", "download", "-json", path];
    let out = Command::new("go")
        .current_dir(module)
        .args(args)
        .output()
        .map_err(|e| Error::Spawn {
            program: "go".into(),
            source: e,
        })?;
    // `-json` reports the failure in `Error` on stdout; stderr may say more.
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let dir = json["Dir"].as_str().map(PathBuf::from);
    match dir {
        Some(dir) if out.status.success() => Ok(dir),
        _ => Err(Error::Download {
            command: format!("go {}", args.join(" ")),
            dir: module.to_path_buf(),
            status: out.status.to_string(),
            stderr: [
                json["Error"].as_str().unwrap_or_default(),
                String::from_utf8_lossy(&out.stderr).trim(),
            ]
            .into_iter()
            .filter(|said| !said.is_empty())
            .collect::<Vec<_>>()
            .join("\n"),
        }),
    }
}

/// The files of [`GATEWAY_API_CRDS`] in a CRD directory of the Gateway API module.
pub fn gateway_api_crd_files(crds: &Path) -> Vec<PathBuf> {
    GATEWAY_API_CRDS
        .iter()
        .map(|plural| crds.join(format!("gateway.networking.k8s.io_{plural}.yaml")))
        .collect()
}

/// Where the S3 server (`versitygw`) is, or will be once built.
pub fn versitygw() -> PathBuf {
    cache_dir()
        .join("bin")
        .join(format!("versitygw-{VERSITYGW_VERSION}"))
        .join("versitygw")
}

/// Returns the S3 server's binary, building it with `go build` from the pinned module in
/// `<repo>/e2e/upstream/versitygw` when missing (three to four minutes on two cores with an
/// empty Go build cache, once). Apart from [`ensure_built`], so that control-plane-only
/// suites do not wait for it.
pub fn ensure_s3_built(repo: &Path) -> Result<PathBuf, Error> {
    let bin = versitygw();
    if !bin.exists() {
        go_build(
            &repo.join("e2e/upstream/versitygw"),
            // `versitygw --version` reports this instead of "git".
            &format!("-s -w -X main.Version={VERSITYGW_VERSION}"),
            &bin,
            &["github.com/versity/versitygw/cmd/versitygw"],
        )?;
    }
    if !bin.exists() {
        return Err(Error::Harness(format!(
            "go build finished but {} does not exist",
            bin.display()
        )));
    }
    Ok(bin)
}

/// Paths of the built binaries.
#[derive(Clone, Debug)]
pub struct Binaries {
    /// `etcd`.
    pub etcd: PathBuf,
    /// `kube-apiserver`.
    pub kube_apiserver: PathBuf,
    /// `kube-controller-manager`.
    pub kube_controller_manager: PathBuf,
    /// `kubectl`.
    pub kubectl: PathBuf,
    /// `kubelet`, for a node ([`crate::node`]).
    pub kubelet: PathBuf,
    /// `kube-scheduler`, started with a node.
    pub kube_scheduler: PathBuf,
    /// `kube-proxy`, started with a node so that pods reach the `kubernetes` Service.
    pub kube_proxy: PathBuf,
}

impl Binaries {
    /// The binaries built from `k8s.io/kubernetes`, in one `go build`.
    fn kubernetes(&self) -> [&PathBuf; 6] {
        [
            &self.kube_apiserver,
            &self.kube_controller_manager,
            &self.kubectl,
            &self.kubelet,
            &self.kube_scheduler,
            &self.kube_proxy,
        ]
    }

    /// The directory holding the Kubernetes binaries (put it on `PATH` for `kubectl`).
    pub fn kubernetes_dir(&self) -> &Path {
        self.kubectl.parent().unwrap_or(Path::new("."))
    }
}

/// The build cache root: `$GONGSHU_CACHE`, else `$XDG_CACHE_HOME/gongshu`, else `~/.cache/gongshu`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GONGSHU_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("gongshu");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("gongshu")
}

/// Where the binaries are (or will be) once built.
pub fn binaries() -> Binaries {
    let k8s = cache_dir()
        .join("bin")
        .join(format!("k8s-{KUBERNETES_VERSION}"));
    let etcd = cache_dir().join("bin").join(format!("etcd-{ETCD_VERSION}"));
    Binaries {
        etcd: etcd.join("etcd"),
        kube_apiserver: k8s.join("kube-apiserver"),
        kube_controller_manager: k8s.join("kube-controller-manager"),
        kubectl: k8s.join("kubectl"),
        kubelet: k8s.join("kubelet"),
        kube_scheduler: k8s.join("kube-scheduler"),
        kube_proxy: k8s.join("kube-proxy"),
    }
}

/// Returns the binaries, building the missing ones with `go build` from the pinned modules in
/// `<repo>/e2e/upstream` (all six Kubernetes commands in one build when any is missing, so a
/// cache from before the node existed gains kubelet, kube-scheduler and kube-proxy). Prints how long a build took; a cached run builds nothing.
pub fn ensure_built(repo: &Path) -> Result<Binaries, Error> {
    let bins = binaries();
    let k8s_missing = bins.kubernetes().iter().any(|p| !p.exists());
    if k8s_missing {
        let minor = KUBERNETES_VERSION
            .trim_start_matches('v')
            .split('.')
            .nth(1)
            .unwrap_or("0");
        let ldflags = format!(
            "-s -w -X k8s.io/component-base/version.gitVersion={KUBERNETES_VERSION} \
             -X k8s.io/component-base/version.gitMajor=1 \
             -X k8s.io/component-base/version.gitMinor={minor} \
             -X k8s.io/component-base/version.gitTreeState=clean"
        );
        go_build(
            &repo.join("e2e/upstream/kubernetes"),
            &ldflags,
            bins.kubernetes_dir(),
            &[
                "k8s.io/kubernetes/cmd/kube-apiserver",
                "k8s.io/kubernetes/cmd/kube-controller-manager",
                "k8s.io/kubernetes/cmd/kubectl",
                "k8s.io/kubernetes/cmd/kubelet",
                "k8s.io/kubernetes/cmd/kube-scheduler",
                "k8s.io/kubernetes/cmd/kube-proxy",
            ],
        )?;
    }
    if !bins.etcd.exists() {
        go_build(
            &repo.join("e2e/upstream/etcd"),
            "-s -w",
            &bins.etcd,
            &["go.etcd.io/etcd/server/v3"],
        )?;
    }
    // A build that "succeeds" without producing a binary where we look is a harness bug: say
    // so here, not later as "cannot start".
    for path in std::iter::once(&bins.etcd).chain(bins.kubernetes()) {
        if !path.exists() {
            return Err(Error::Harness(format!(
                "go build finished but {} does not exist",
                path.display()
            )));
        }
    }
    Ok(bins)
}

/// `go build` of `packages` in `module`. `out` is the binary for one package (Go would name
/// `go.etcd.io/etcd/server/v3` after `server`), or the directory for several.
pub(crate) fn go_build(
    module: &Path,
    ldflags: &str,
    out: &Path,
    packages: &[&str],
) -> Result<(), Error> {
    let dir = if packages.len() == 1 {
        out.parent().unwrap_or(Path::new("."))
    } else {
        out
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    eprintln!(
        "building {} from Go modules into {} (first time only)",
        packages.join(", "),
        dir.display()
    );
    let started = Instant::now();
    let mut out_arg = out.as_os_str().to_owned();
    if packages.len() > 1 {
        // A trailing separator makes `go build -o` put one binary per package in the directory.
        out_arg.push("/");
    }
    let status = Command::new("go")
        .current_dir(module)
        .args(["build", "-trimpath", "-ldflags", ldflags, "-o"])
        .arg(&out_arg)
        .args(packages)
        .status()
        .map_err(|e| Error::Spawn {
            program: "go".into(),
            source: e,
        })?;
    if !status.success() {
        return Err(Error::Build {
            module: module.to_path_buf(),
            status: status.to_string(),
        });
    }
    eprintln!("built {} in {:.0?}", packages.join(", "), started.elapsed());
    Ok(())
}

/// The version `e2e/upstream/<module>/go.mod` requires of `requirement` (for the tests that
/// keep the version constants true).
#[cfg(test)]
pub(crate) fn pinned(module: &str, requirement: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("upstream")
        .join(module)
        .join("go.mod");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("require ")
                .and_then(|r| r.strip_prefix(requirement))
        })
        .map(|v| v.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_constants_match_the_pinned_go_modules() {
        assert_eq!(
            pinned("kubernetes", "k8s.io/kubernetes"),
            KUBERNETES_VERSION
        );
        assert_eq!(pinned("etcd", "go.etcd.io/etcd/server/v3"), ETCD_VERSION);
        assert_eq!(
            pinned("versitygw", "github.com/versity/versitygw"),
            VERSITYGW_VERSION
        );
        assert_eq!(
            pinned("gateway-api", "sigs.k8s.io/gateway-api"),
            GATEWAY_API_VERSION
        );
    }
}
