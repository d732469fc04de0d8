//! Helm, built from its Go module (`e2e/upstream/helm`) into the same cache as the control
//! plane's binaries, and what the chart suite (`e2e/tests/chart.rs`) does with it: render,
//! lint and install `charts/gongshu`, keep `deploy/rbac.yaml` the chart's rendering, and fetch
//! the Prometheus Operator's CRDs (`e2e/upstream/prometheus-operator`) so the chart's
//! monitoring objects meet their real schemas.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use crate::{
    Error,
    upstream::{cache_dir, go_build, go_mod_download},
};

/// The Helm release the suite builds (`e2e/upstream/helm/go.mod`).
pub const HELM_VERSION: &str = "v3.22.0";
/// The Kubernetes minor of Helm's client libraries (`k8s.io/client-go v0.37.0` in its
/// `go.sum`), which Helm's Makefile stamps into the binary as the default capabilities of
/// `helm template` and the version `helm lint` checks deprecations against.
const HELM_KUBERNETES_MINOR: &str = "37";

/// The Prometheus Operator release whose CRDs the suite installs
/// (`e2e/upstream/prometheus-operator/go.mod`).
pub const PROMETHEUS_OPERATOR_VERSION: &str = "v0.85.0";
/// The Prometheus Operator CRDs (by plural) the chart creates objects of.
pub const PROMETHEUS_OPERATOR_CRDS: [&str; 2] = ["servicemonitors", "prometheusrules"];

/// The namespace `deploy/rbac.yaml` is rendered for.
pub const RBAC_NAMESPACE: &str = "gongshu-system";
/// The chart's template that `deploy/rbac.yaml` renders.
pub const RBAC_TEMPLATE: &str = "templates/rbac.yaml";
/// The chart's template of the process runner's RBAC, which
/// `deploy/rbac-process-runner.yaml` renders with `backups.runner=process`.
pub const PROCESS_RUNNER_RBAC_TEMPLATE: &str = "templates/rbac-process-runner.yaml";

/// Where `helm` is, or will be once built.
pub fn helm_binary() -> PathBuf {
    cache_dir()
        .join("bin")
        .join(format!("helm-{HELM_VERSION}"))
        .join("helm")
}

/// Returns `helm`, building it with `go build` from the pinned module in
/// `<repo>/e2e/upstream/helm` when missing (about four minutes on two busy cores with an empty
/// Go build cache, once).
pub fn ensure_built(repo: &Path) -> Result<PathBuf, Error> {
    let bin = helm_binary();
    if !bin.exists() {
        let ldflags = format!(
            "-s -w -X helm.sh/helm/v3/internal/version.version={HELM_VERSION} \
             -X helm.sh/helm/v3/internal/version.gitTreeState=clean \
             -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 \
             -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor={HELM_KUBERNETES_MINOR} \
             -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 \
             -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor={HELM_KUBERNETES_MINOR}"
        );
        go_build(
            &repo.join("e2e/upstream/helm"),
            &ldflags,
            &bin,
            &["helm.sh/helm/v3/cmd/helm"],
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

/// The chart's directory.
pub fn chart_dir(repo: &Path) -> PathBuf {
    repo.join("charts/gongshu")
}

/// `helm` with its own configuration, cache and data directories (never the user's
/// repositories or plugins), optionally against a cluster.
#[derive(Clone, Debug)]
pub struct Helm {
    bin: PathBuf,
    home: PathBuf,
    kubeconfig: Option<PathBuf>,
}

impl Helm {
    /// Builds `helm` if needed; without a kubeconfig (render and lint only).
    pub fn new(repo: &Path) -> Result<Self, Error> {
        Ok(Self {
            bin: ensure_built(repo)?,
            home: std::env::temp_dir().join("gongshu-helm-home"),
            kubeconfig: None,
        })
    }

    /// The same, talking to the cluster of `kubeconfig`.
    pub fn with_kubeconfig(&self, kubeconfig: &Path) -> Self {
        Self {
            kubeconfig: Some(kubeconfig.to_path_buf()),
            ..self.clone()
        }
    }

    /// A `helm` command with this environment.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        for (var, dir) in [
            ("HELM_CONFIG_HOME", "config"),
            ("HELM_CACHE_HOME", "cache"),
            ("HELM_DATA_HOME", "data"),
            // The discovery cache client-go keeps otherwise in ~/.kube/cache.
            ("KUBECACHEDIR", "kube-cache"),
        ] {
            cmd.env(var, self.home.join(dir));
        }
        match &self.kubeconfig {
            Some(path) => cmd.env("KUBECONFIG", path),
            // No cluster: nothing the user's kubeconfig names is ever contacted.
            None => cmd.env("KUBECONFIG", self.home.join("no-cluster.kubeconfig")),
        };
        cmd
    }

    /// Runs `helm args` and returns what it wrote (whether it succeeded or not).
    pub fn output(&self, args: &[&str]) -> Result<Output, Error> {
        self.command()
            .args(args)
            .output()
            .map_err(|e| Error::Spawn {
                program: self.bin.display().to_string(),
                source: e,
            })
    }

    /// Runs `helm args`; its standard output, or an error with its standard error.
    pub fn run(&self, args: &[&str]) -> Result<String, Error> {
        let out = self.output(args)?;
        if !out.status.success() {
            return Err(Error::Harness(format!(
                "helm {} failed ({}):\n{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `helm template gongshu <chart> --namespace <namespace> <extra…>`: the manifests the
    /// chart renders.
    pub fn template(&self, repo: &Path, namespace: &str, extra: &[&str]) -> Result<String, Error> {
        let chart = chart_dir(repo);
        let chart = chart.to_string_lossy();
        let mut args = vec!["template", "gongshu", &chart, "--namespace", namespace];
        args.extend_from_slice(extra);
        self.run(&args)
    }
}

/// The documents of a multi-document YAML stream, empty ones left out.
pub fn documents(yaml: &str) -> Result<Vec<serde_yaml::Value>, Error> {
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let value = <serde_yaml::Value as serde::Deserialize>::deserialize(doc)
            .map_err(|e| Error::Harness(format!("rendered YAML does not parse: {e}")))?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// What `deploy/rbac.yaml` must hold: the operator's namespace, then the chart's RBAC
/// template rendered with the default values in it.
pub fn rendered_rbac(helm: &Helm, repo: &Path) -> Result<String, Error> {
    let rbac = helm.template(repo, RBAC_NAMESPACE, &["--show-only", RBAC_TEMPLATE])?;
    Ok(format!(
        "# Generated from charts/gongshu/{RBAC_TEMPLATE} (the source: edit that file) by\n\
         #   GONGSHU_BLESS=1 cargo xtask test -- --test chart\n\
         # The chart's RBAC with its default values in {RBAC_NAMESPACE}, for installing without\n\
         # Helm (the demo and the e2e suite run the operator under exactly these rights).\n\
         apiVersion: v1\n\
         kind: Namespace\n\
         metadata:\n  name: {RBAC_NAMESPACE}\n\
         {rbac}"
    ))
}

/// What `deploy/rbac-process-runner.yaml` must hold: the chart's process-runner RBAC
/// template rendered with `backups.runner=process` in the operator's namespace.
pub fn rendered_process_runner_rbac(helm: &Helm, repo: &Path) -> Result<String, Error> {
    let rbac = helm.template(
        repo,
        RBAC_NAMESPACE,
        &[
            "--show-only",
            PROCESS_RUNNER_RBAC_TEMPLATE,
            "--set",
            "backups.runner=process",
        ],
    )?;
    Ok(format!(
        "# Generated from charts/gongshu/{PROCESS_RUNNER_RBAC_TEMPLATE} (the source: edit that\n\
         # file) by\n\
         #   GONGSHU_BLESS=1 cargo xtask test -- --test chart\n\
         # The process runner's ServiceAccount gongshu-backup in {RBAC_NAMESPACE} (backups.runner=process),\n\
         # which the demo and the e2e suite give the `gongshu backup` processes the operator starts.\n\
         {rbac}"
    ))
}

/// The files of [`PROMETHEUS_OPERATOR_CRDS`] from the pinned Prometheus Operator module,
/// downloaded with `go mod download` into Go's module cache when missing (a 4 MiB zip;
/// offline once cached).
pub fn ensure_prometheus_operator_crds(repo: &Path) -> Result<Vec<PathBuf>, Error> {
    let dir = go_mod_download(
        &repo.join("e2e/upstream/prometheus-operator"),
        "github.com/prometheus-operator/prometheus-operator",
    )?;
    let files: Vec<PathBuf> = PROMETHEUS_OPERATOR_CRDS
        .iter()
        .map(|plural| {
            dir.join("example/prometheus-operator-crd")
                .join(format!("monitoring.coreos.com_{plural}.yaml"))
        })
        .collect();
    if let Some(missing) = files.iter().find(|f| !f.exists()) {
        return Err(Error::Harness(format!(
            "github.com/prometheus-operator/prometheus-operator {PROMETHEUS_OPERATOR_VERSION} has no {}",
            missing.display()
        )));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::pinned;

    #[test]
    fn version_constants_match_the_pinned_go_modules() {
        assert_eq!(pinned("helm", "helm.sh/helm/v3"), HELM_VERSION);
        assert_eq!(
            pinned(
                "prometheus-operator",
                "github.com/prometheus-operator/prometheus-operator"
            ),
            PROMETHEUS_OPERATOR_VERSION
        );
    }

    #[test]
    fn helms_kubernetes_minor_is_that_of_its_client_libraries() {
        let go_mod = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("upstream/helm/go.mod"),
        )
        .unwrap_or_default();
        assert!(
            go_mod.contains(&format!("k8s.io/client-go v0.{HELM_KUBERNETES_MINOR}.")),
            "e2e/upstream/helm/go.mod: k8s.io/client-go is not v0.{HELM_KUBERNETES_MINOR}.x"
        );
    }
}
