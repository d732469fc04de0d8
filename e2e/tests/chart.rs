//! The Helm chart `charts/gongshu` (issues 7 and 8): `helm lint --strict`, what it renders
//! with its default values, with the Prometheus Operator served and with cert-manager, that
//! its CRDs, alert rules and dashboard are the repository's own files, that
//! `deploy/rbac.yaml` is its RBAC rendered, the real apiserver's server-side dry run of every
//! rendering, and a `helm install` on a control plane of its own (no node: nothing runs, but
//! every object is admitted and the RBAC lets the operator do its work).
//!
//! Helm is built from its Go module (`e2e/upstream/helm`) on first use.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{
    collections::BTreeSet,
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use gongshu_e2e::{
    cluster::repo_root,
    controlplane::{ControlPlane, DEFAULT_READY_TIMEOUT},
    harness::{TestEnv, random_suffix},
    helm::{self, Helm},
    upstream,
};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::{Api, Client, api::PostParams};
use serde_yaml::Value;

const BLESS: &str = "GONGSHU_BLESS";
/// Every monitoring object is rendered when the cluster serves this group-version.
const MONITORING: [&str; 2] = ["--api-versions", "monitoring.coreos.com/v1"];
/// cert-manager for both serving certificates, with the chart's own CA.
const CERT_MANAGER: [&str; 4] = [
    "--set",
    "webhook.certManager.enabled=true",
    "--set",
    "exchange.certManager.enabled=true",
];

fn repo() -> PathBuf {
    repo_root().canonicalize().expect("repository root")
}

fn helm() -> Helm {
    Helm::new(&repo()).expect("helm builds from e2e/upstream/helm")
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo().join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn render(namespace: &str, extra: &[&str]) -> Vec<Value> {
    let text = helm()
        .template(&repo(), namespace, extra)
        .expect("helm template");
    helm::documents(&text).expect("rendered YAML")
}

fn kind_name(doc: &Value) -> (String, String) {
    (
        doc["kind"].as_str().unwrap_or_default().to_owned(),
        doc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| kind_name(d) == (kind.to_owned(), name.to_owned()))
        .unwrap_or_else(|| {
            let all: Vec<_> = docs.iter().map(kind_name).collect();
            panic!("no {kind} {name} rendered; rendered: {all:?}")
        })
}

fn kinds(docs: &[Value]) -> BTreeSet<String> {
    docs.iter().map(|d| kind_name(d).0).collect()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// The operator container of the rendered Deployment.
fn operator_container(docs: &[Value]) -> &Value {
    &find(docs, "Deployment", "gongshu-operator")["spec"]["template"]["spec"]["containers"][0]
}

fn operator_args(docs: &[Value]) -> Vec<String> {
    strings(&operator_container(docs)["args"])
}

#[test]
fn helm_lint_strict_passes_with_every_switch() {
    let chart = helm::chart_dir(&repo());
    let chart = chart.to_string_lossy();
    let variants: [&[&str]; 4] = [
        &[],
        &CERT_MANAGER,
        &[
            "--set",
            "exchange.enabled=false",
            "--set",
            "rbac.tenantRoles=false",
            "--set",
            "operator.podDisruptionBudget.enabled=false",
            "--set",
            "grafanaDashboard.enabled=false",
        ],
        &[
            "--set",
            "image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "--set",
            "exchange.certManager.enabled=true",
            "--set",
            "exchange.certManager.issuerRef.name=corporate",
            "--set",
            "exchange.certManager.issuerRef.kind=ClusterIssuer",
        ],
    ];
    for extra in variants {
        let mut args = vec!["lint", "--strict", &chart];
        args.extend_from_slice(extra);
        let out = helm().run(&args).expect("helm lint --strict");
        assert!(out.contains("0 chart(s) failed"), "{extra:?}: {out}");
    }
}

#[test]
fn the_charts_version_and_app_version_are_the_workspace_version() {
    let chart: Value = serde_yaml::from_str(&read("charts/gongshu/Chart.yaml")).unwrap();
    assert_eq!(chart["apiVersion"], "v2");
    let workspace = env!("CARGO_PKG_VERSION");
    assert_eq!(chart["appVersion"].as_str(), Some(workspace), "appVersion");
    assert_eq!(chart["version"].as_str(), Some(workspace), "version");
}

/// The chart links to `crds/` and to the alert rules and dashboard in `deploy/` (one source
/// each); `helm package` must put the files themselves into the archive.
#[test]
fn the_packaged_chart_holds_the_generated_crds_rules_and_dashboard_byte_for_byte() {
    let dir = std::env::temp_dir().join(format!("gongshu-chart-package-{}", random_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    let chart = helm::chart_dir(&repo());
    helm()
        .run(&[
            "package",
            &chart.to_string_lossy(),
            "--destination",
            &dir.to_string_lossy(),
        ])
        .expect("helm package");
    let archive = dir.join(format!("gongshu-{}.tgz", env!("CARGO_PKG_VERSION")));
    let status = Command::new("tar")
        .args(["-x", "-z", "-m", "-f"])
        .arg(&archive)
        .arg("-C")
        .arg(&dir)
        .status()
        .expect("tar runs");
    assert!(status.success(), "tar xzf {}", archive.display());
    let packaged = dir.join("gongshu");

    let names = |d: &Path| -> BTreeSet<String> {
        std::fs::read_dir(d)
            .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    let crds = repo().join("crds");
    assert_eq!(names(&packaged.join("crds")), names(&crds), "CRD files");
    let mut pairs: Vec<(PathBuf, PathBuf)> = names(&crds)
        .into_iter()
        .map(|n| (packaged.join("crds").join(&n), crds.join(&n)))
        .collect();
    pairs.push((
        packaged.join("files/gongshu-rules.yaml"),
        repo().join("deploy/prometheus/gongshu-rules.yaml"),
    ));
    pairs.push((
        packaged.join("files/gongshu-dashboard.json"),
        repo().join("deploy/grafana/gongshu-dashboard.json"),
    ));
    for (inside, source) in pairs {
        let inside_bytes =
            std::fs::read(&inside).unwrap_or_else(|e| panic!("{}: {e}", inside.display()));
        assert!(
            inside_bytes == std::fs::read(&source).unwrap(),
            "{} differs from {}",
            inside.display(),
            source.display()
        );
        assert!(
            !std::fs::symlink_metadata(&inside)
                .unwrap()
                .file_type()
                .is_symlink(),
            "{} is packaged as a link",
            inside.display()
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `deploy/rbac.yaml` is generated from the chart's RBAC template (the one source), for
/// installing without Helm; `GONGSHU_BLESS=1` rewrites it. So is
/// `deploy/rbac-process-runner.yaml`, the process runner's (`backups.runner=process`).
#[test]
fn deploy_rbac_yaml_is_the_charts_rbac_rendered_with_default_values() {
    for (file, template, expected) in [
        (
            "deploy/rbac.yaml",
            helm::RBAC_TEMPLATE,
            helm::rendered_rbac(&helm(), &repo()).expect("render the RBAC"),
        ),
        (
            "deploy/rbac-process-runner.yaml",
            helm::PROCESS_RUNNER_RBAC_TEMPLATE,
            helm::rendered_process_runner_rbac(&helm(), &repo()).expect("render the RBAC"),
        ),
    ] {
        let path = repo().join(file);
        if std::env::var_os(BLESS).is_some_and(|v| v == "1") {
            std::fs::write(&path, &expected).unwrap();
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != expected {
            let line = committed
                .lines()
                .zip(expected.lines())
                .position(|(c, e)| c != e)
                .map_or_else(|| "at the end".to_owned(), |n| format!("at line {}", n + 1));
            panic!(
                "{file} is out of date with charts/gongshu/{template} (first difference {line}); \
                 run `GONGSHU_BLESS=1 cargo xtask test -- --test chart` and commit the result"
            );
        }
    }
}

/// Pod Security Standards `restricted` on every pod template the chart renders, in every
/// variant (DESIGN: PSS-restricted pods).
#[test]
fn every_pod_template_meets_pod_security_restricted() {
    for extra in [&[][..], &CERT_MANAGER[..], &MONITORING[..]] {
        let docs = render("gongshu-system", extra);
        let templates: Vec<&Value> = docs
            .iter()
            .filter(|d| {
                ["Deployment", "StatefulSet", "DaemonSet", "Job"]
                    .contains(&d["kind"].as_str().unwrap_or_default())
            })
            .map(|d| &d["spec"]["template"]["spec"])
            .collect();
        assert!(!templates.is_empty(), "{extra:?}: no workload rendered");
        for spec in templates {
            let pod = &spec["securityContext"];
            assert_eq!(pod["runAsNonRoot"], true, "{extra:?}: pod runAsNonRoot");
            assert_eq!(pod["seccompProfile"]["type"], "RuntimeDefault");
            assert!(spec.get("hostNetwork").is_none() && spec.get("hostPID").is_none());
            let containers = spec["containers"]
                .as_sequence()
                .into_iter()
                .chain(spec["initContainers"].as_sequence())
                .flatten();
            for c in containers {
                let name = c["name"].as_str().unwrap_or_default();
                let sc = &c["securityContext"];
                assert_eq!(sc["runAsNonRoot"], true, "{name}");
                assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
                assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}");
                assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"], "{name}");
                assert!(sc["capabilities"].get("add").is_none(), "{name}");
                assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{name}");
                assert!(sc.get("privileged").is_none(), "{name}");
            }
        }
    }
}

/// Two replicas (leader election; both serve the webhook), the operator's own rotating
/// certificates, registration at the webhook Service's in-cluster name, probes on the admin
/// port, and the Services the webhook and the alert rules need.
#[test]
fn the_operator_runs_two_webhook_serving_replicas_with_their_own_certificates() {
    let ns = "gongshu-system";
    let docs = render(ns, &[]);
    let deployment = find(&docs, "Deployment", "gongshu-operator");
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["serviceAccountName"],
        "gongshu-operator"
    );
    let args = operator_args(&docs);
    for expected in [
        "--admin-addr=0.0.0.0:8080",
        "--webhook-addr=0.0.0.0:8443",
        "--webhook-cert-secret=gongshu-webhook-tls",
        "--webhook-service=gongshu-system/gongshu-webhook",
        "--webhook-dns-names=gongshu-webhook.gongshu-system.svc.cluster.local,gongshu-webhook.gongshu-system",
        "--exchange-url=https://gongshu-exchange.gongshu-system.svc",
        "--exchange-image=gongshu:0.1.0",
        "--backup-runner=job",
        "--backup-image=gongshu:0.1.0",
        "--backup-job-deadline-seconds=21600",
        "--log-format=json",
    ] {
        assert!(
            args.iter().any(|a| a == expected),
            "{expected} missing: {args:?}"
        );
    }
    assert!(!args.iter().any(|a| a.starts_with("--webhook-cert-file")));
    let container = operator_container(&docs);
    assert_eq!(strings(&container["command"]), ["gongshu", "operator"]);
    let env: Vec<(String, String)> = container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["valueFrom"]["fieldRef"]["fieldPath"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    assert!(env.contains(&("POD_NAMESPACE".into(), "metadata.namespace".into())));
    assert!(env.contains(&("POD_NAME".into(), "metadata.name".into())));
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "admin");
    let ports: Vec<(String, u64)> = container["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["containerPort"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ports, [("admin".into(), 8080), ("webhook".into(), 8443)]);

    let selector = &deployment["spec"]["selector"]["matchLabels"];
    let webhook = find(&docs, "Service", "gongshu-webhook");
    assert_eq!(&webhook["spec"]["selector"], selector);
    assert_eq!(webhook["spec"]["ports"][0]["port"], 443);
    assert_eq!(webhook["spec"]["ports"][0]["targetPort"], "webhook");
    // The alert rules read up{job="gongshu-operator"}: a ServiceMonitor's job is the
    // Service's name (docs/metrics.md, "Conventions").
    let metrics = find(&docs, "Service", "gongshu-operator");
    assert_eq!(&metrics["spec"]["selector"], selector);
    assert_eq!(metrics["spec"]["ports"][0]["name"], "metrics");
    assert_eq!(metrics["spec"]["ports"][0]["targetPort"], "admin");
    let pdb = find(&docs, "PodDisruptionBudget", "gongshu-operator");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], selector);

    // The operator's Secret rights follow the certificate's source.
    find(&docs, "Role", "gongshu-operator-webhook-tls");
    for (kind, name) in [
        ("ServiceAccount", "gongshu-exchange"),
        ("Role", "gongshu-operator-exchange"),
    ] {
        find(&docs, kind, name);
    }
    assert!(!kinds(&docs).contains("Certificate"));
}

#[test]
fn cert_manager_gives_the_webhook_and_the_exchange_their_certificates() {
    let docs = render("gs", &CERT_MANAGER);
    let args = operator_args(&docs);
    for expected in [
        "--webhook-cert-file=/etc/gongshu/webhook-tls/tls.crt",
        "--webhook-key-file=/etc/gongshu/webhook-tls/tls.key",
        "--webhook-ca-file=/etc/gongshu/webhook-tls/ca.crt",
        "--webhook-service=gs/gongshu-webhook",
    ] {
        assert!(args.iter().any(|a| a == expected), "{expected}: {args:?}");
    }
    assert!(!args.iter().any(|a| a.starts_with("--webhook-cert-secret")));
    let spec = &find(&docs, "Deployment", "gongshu-operator")["spec"]["template"]["spec"];
    let volume = spec["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "webhook-tls")
        .expect("webhook-tls volume");
    assert_eq!(volume["secret"]["secretName"], "gongshu-webhook-cert");

    let webhook = find(&docs, "Certificate", "gongshu-webhook");
    assert_eq!(webhook["spec"]["secretName"], "gongshu-webhook-cert");
    assert_eq!(
        strings(&webhook["spec"]["dnsNames"]),
        [
            "gongshu-webhook.gs.svc",
            "gongshu-webhook.gs.svc.cluster.local"
        ]
    );
    assert_eq!(webhook["spec"]["issuerRef"]["name"], "gongshu-ca");
    let exchange = find(&docs, "Certificate", "gongshu-exchange");
    assert_eq!(exchange["spec"]["secretName"], "gongshu-exchange-tls");
    assert_eq!(
        find(&docs, "Certificate", "gongshu-ca")["spec"]["isCA"],
        true
    );
    find(&docs, "Issuer", "gongshu-ca");
    find(&docs, "Issuer", "gongshu-selfsigned");
    // No managed Secret: no right to create Secrets.
    assert!(
        !docs
            .iter()
            .any(|d| kind_name(d) == ("Role".into(), "gongshu-operator-webhook-tls".into())),
        "the operator keeps the right to create Secrets under cert-manager"
    );
}

/// ServiceMonitor and PrometheusRule only where `monitoring.coreos.com/v1` is served; the
/// rules are exactly the groups of `deploy/prometheus/gongshu-rules.yaml` and the dashboard
/// ConfigMap holds `deploy/grafana/gongshu-dashboard.json` byte for byte (issue 7).
#[test]
fn monitoring_objects_render_where_the_prometheus_operator_is_served() {
    let plain = render("gongshu-system", &[]);
    assert!(!kinds(&plain).contains("ServiceMonitor"));
    assert!(!kinds(&plain).contains("PrometheusRule"));

    let docs = render("gongshu-system", &MONITORING);
    let monitor = find(&docs, "ServiceMonitor", "gongshu-operator");
    let metrics = find(&docs, "Service", "gongshu-operator");
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_mapping()
        .unwrap();
    for (key, value) in selector {
        assert_eq!(&metrics["metadata"]["labels"][key], value, "{key:?}");
    }
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    assert_eq!(
        strings(&monitor["spec"]["namespaceSelector"]["matchNames"]),
        ["gongshu-system"]
    );

    let rule = find(&docs, "PrometheusRule", "gongshu");
    let source: Value =
        serde_yaml::from_str(&read("deploy/prometheus/gongshu-rules.yaml")).unwrap();
    assert!(
        source["groups"]
            .as_sequence()
            .is_some_and(|g| !g.is_empty())
    );
    assert_eq!(
        rule["spec"]["groups"], source["groups"],
        "the PrometheusRule's groups differ from deploy/prometheus/gongshu-rules.yaml"
    );

    let dashboard = find(&docs, "ConfigMap", "gongshu-dashboard");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(
        dashboard["data"]["gongshu-dashboard.json"].as_str(),
        Some(read("deploy/grafana/gongshu-dashboard.json").as_str()),
        "the ConfigMap does not hold the dashboard byte for byte"
    );

    let off = render(
        "gongshu-system",
        &[
            MONITORING[0],
            MONITORING[1],
            "--set",
            "serviceMonitor.enabled=false",
            "--set",
            "prometheusRule.enabled=false",
            "--set",
            "grafanaDashboard.namespace=grafana",
            "--set",
            "grafanaDashboard.labels.grafana_dashboard=gongshu",
        ],
    );
    assert!(!kinds(&off).contains("ServiceMonitor"));
    assert!(!kinds(&off).contains("PrometheusRule"));
    let moved = find(&off, "ConfigMap", "gongshu-dashboard");
    assert_eq!(moved["metadata"]["namespace"], "grafana");
    assert_eq!(moved["metadata"]["labels"]["grafana_dashboard"], "gongshu");
}

#[test]
fn the_values_schema_rejects_wrong_types_and_unknown_keys() {
    for (set, says) in [
        ("operator.replicas=two", "/operator/replicas"),
        ("operator.replicas=0", "/operator/replicas"),
        ("webhook.port=70000", "/webhook/port"),
        ("operator.logFormat=xml", "/operator/logFormat"),
        ("backups.runner=pod", "/backups/runner"),
        ("backups.deadlineSeconds=0", "/backups/deadlineSeconds"),
        ("serviceMonitor.enabled=maybe", "/serviceMonitor/enabled"),
        ("serviceMonitor.interval=often", "/serviceMonitor/interval"),
        ("operator.replica=2", "replica"),
        ("exchange.url=http://plain.example", "/exchange/url"),
    ] {
        let chart = helm::chart_dir(&repo());
        let out = helm()
            .output(&[
                "template",
                "gongshu",
                &chart.to_string_lossy(),
                "--set",
                set,
            ])
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "--set {set} was accepted");
        assert!(
            stderr.contains("values don't meet the specifications of the schema")
                && stderr.contains(says),
            "--set {set}: {stderr}"
        );
    }
}

/// A server-side apply of `manifests` with `--dry-run=server`: every object through the
/// apiserver's validation, defaulting and admission (PodSecurity included), nothing stored.
/// Forced, because the shared control plane already holds the CRDs and the operator's
/// cluster-wide RBAC under other managers. Returns stderr.
fn dry_run(env: &TestEnv, manifests: &str) -> String {
    let mut child = env
        .kubectl()
        .args([
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=gongshu-chart-test",
            "--dry-run=server",
            "-f",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(manifests.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "server-side dry run failed:\n{stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// The renderings (CRDs included) through the real apiserver, in a namespace enforcing Pod
/// Security `restricted`. cert-manager's kinds are left out (its CRDs are not installed);
/// the monitoring objects meet their real schemas in the install test below.
#[tokio::test]
async fn the_apiserver_admits_every_rendering_in_a_restricted_namespace() {
    let env = TestEnv::connect().await.expect("control plane");
    let ns = env
        .namespace(
            "chart",
            &[
                ("pod-security.kubernetes.io/enforce", "restricted"),
                ("pod-security.kubernetes.io/warn", "restricted"),
            ],
        )
        .await
        .unwrap();
    for extra in [&["--include-crds"][..], &CERT_MANAGER[..]] {
        let docs = render(&ns, extra);
        let admitted: Vec<String> = docs
            .iter()
            .filter(|d| {
                !d["apiVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("cert-manager.io/")
            })
            .map(|d| serde_yaml::to_string(d).unwrap())
            .collect();
        let stderr = dry_run(&env, &admitted.join("---\n"));
        assert!(
            !stderr.contains("PodSecurity"),
            "{extra:?}: the apiserver warns about Pod Security:\n{stderr}"
        );
    }
    // The control: the same Deployment without its container securityContext is warned about,
    // so the silence above is the apiserver's verdict, not a check that never ran.
    let docs = render(&ns, &[]);
    let mut insecure = find(&docs, "Deployment", "gongshu-operator").clone();
    insecure["spec"]["template"]["spec"]["containers"][0]
        .as_mapping_mut()
        .unwrap()
        .remove("securityContext");
    let stderr = dry_run(&env, &serde_yaml::to_string(&insecure).unwrap());
    assert!(
        stderr.contains("would violate PodSecurity \"restricted"),
        "no Pod Security warning for a container without securityContext:\n{stderr}"
    );
}

async fn allowed(
    client: &Client,
    user: &str,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
    name: Option<&str>,
) -> bool {
    let (resource, subresource) = resource
        .split_once('/')
        .map_or((resource, None), |(r, s)| (r, Some(s)));
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.into()),
            groups: Some(vec!["system:serviceaccounts".into()]),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                subresource: subresource.map(Into::into),
                namespace: namespace.map(Into::into),
                name: name.map(Into::into),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("access review")
        .status
        .expect("status")
        .allowed
}

fn kubectl(plane: &ControlPlane, args: &[&str]) -> String {
    let out = Command::new(upstream::binaries().kubectl)
        .env("KUBECONFIG", plane.kubeconfig())
        .args(args)
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `helm install` on a fresh control plane serving the Prometheus Operator's CRDs: the chart's
/// CRDs and every object are created, the monitoring ones because the cluster serves their
/// group (`.Capabilities`), and the installed RBAC lets the operator's and the exchange's
/// ServiceAccounts do what `e2e/tests/rbac.rs` requires of `deploy/rbac.yaml`, and no more.
/// Nothing runs (no node). `helm uninstall` removes it all but the CRDs.
#[tokio::test]
async fn helm_install_on_a_fresh_control_plane_gives_the_operator_its_rights() {
    let repo = repo();
    let helm = helm();
    let dir = std::env::temp_dir().join(format!("gongshu-chart-install-{}", random_suffix()));
    let plane = ControlPlane::start(&dir, &upstream::binaries(), DEFAULT_READY_TIMEOUT)
        .await
        .expect("control plane");
    let helm = helm.with_kubeconfig(plane.kubeconfig());
    for file in helm::ensure_prometheus_operator_crds(&repo).expect("Prometheus Operator CRDs") {
        kubectl(
            &plane,
            &["apply", "--server-side", "-f", &file.to_string_lossy()],
        );
    }
    for plural in helm::PROMETHEUS_OPERATOR_CRDS {
        kubectl(
            &plane,
            &[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                &format!("crd/{plural}.monitoring.coreos.com"),
            ],
        );
    }

    let ns = "gongshu-system";
    let chart = helm::chart_dir(&repo);
    helm.run(&[
        "install",
        "gongshu",
        &chart.to_string_lossy(),
        "--namespace",
        ns,
        "--create-namespace",
        "--timeout",
        "2m",
    ])
    .expect("helm install");

    let status = helm.run(&["status", "gongshu", "--namespace", ns]).unwrap();
    assert!(status.contains("STATUS: deployed"), "{status}");
    let names = kubectl(
        &plane,
        &[
            "get",
            "deployment,service,poddisruptionbudget,servicemonitor,prometheusrule,configmap,serviceaccount",
            "--namespace",
            ns,
            "-o",
            "name",
        ],
    );
    for expected in [
        "deployment.apps/gongshu-operator",
        "service/gongshu-webhook",
        "service/gongshu-operator",
        "poddisruptionbudget.policy/gongshu-operator",
        "servicemonitor.monitoring.coreos.com/gongshu-operator",
        "prometheusrule.monitoring.coreos.com/gongshu",
        "configmap/gongshu-dashboard",
        "serviceaccount/gongshu-operator",
        "serviceaccount/gongshu-exchange",
    ] {
        assert!(
            names.lines().any(|l| l == expected),
            "{expected} missing:\n{names}"
        );
    }
    let crds = kubectl(&plane, &["get", "crd", "-o", "name"]);
    for file in std::fs::read_dir(repo.join("crds")).unwrap() {
        let file = file.unwrap().file_name().to_string_lossy().into_owned();
        let name = file.trim_end_matches(".yaml");
        assert!(
            crds.lines()
                .any(|l| l == format!("customresourcedefinition.apiextensions.k8s.io/{name}")),
            "CRD {name} not installed:\n{crds}"
        );
        kubectl(
            &plane,
            &[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                &format!("crd/{name}"),
            ],
        );
    }

    let client = plane.client().await.unwrap();
    let operator = format!("system:serviceaccount:{ns}:gongshu-operator");
    let exchange = format!("system:serviceaccount:{ns}:gongshu-exchange");
    type Access<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, Option<&'a str>);
    // The operator's and the exchange's needs, as e2e/tests/rbac.rs lists them.
    let may: Vec<(&str, Access)> = vec![
        (
            &operator,
            ("watch", "gongshu.io", "datacatalogs", None, None),
        ),
        (
            &operator,
            (
                "patch",
                "gongshu.io",
                "sharegrants/status",
                Some("dept-a"),
                None,
            ),
        ),
        (
            &operator,
            ("patch", "gongshu.io", "regulations/status", None, None),
        ),
        (
            &operator,
            (
                "patch",
                "gongshu.io",
                "channelexemptions",
                Some("dept-a"),
                None,
            ),
        ),
        (&operator, ("list", "", "namespaces", None, None)),
        (
            &operator,
            ("create", "events.k8s.io", "events", Some("dept-a"), None),
        ),
        (
            &operator,
            ("create", "coordination.k8s.io", "leases", Some(ns), None),
        ),
        (
            &operator,
            (
                "update",
                "coordination.k8s.io",
                "leases",
                Some(ns),
                Some("gongshu-operator"),
            ),
        ),
        (
            &operator,
            (
                "create",
                "networking.k8s.io",
                "networkpolicies",
                Some("dept-a"),
                None,
            ),
        ),
        (&operator, ("delete", "", "services", Some("dept-a"), None)),
        (
            &operator,
            (
                "delete",
                "gateway.networking.k8s.io",
                "httproutes",
                Some("dept-a"),
                None,
            ),
        ),
        (&operator, ("create", "", "secrets", Some(ns), None)),
        (
            &operator,
            (
                "update",
                "",
                "secrets",
                Some(ns),
                Some("gongshu-webhook-tls"),
            ),
        ),
        (
            &operator,
            (
                "patch",
                "admissionregistration.k8s.io",
                "validatingwebhookconfigurations",
                None,
                Some("gongshu"),
            ),
        ),
        (
            &operator,
            (
                "patch",
                "apps",
                "statefulsets",
                Some(ns),
                Some("gongshu-exchange"),
            ),
        ),
        (
            &operator,
            (
                "create",
                "policy",
                "poddisruptionbudgets",
                Some(ns),
                Some("gongshu-exchange"),
            ),
        ),
        (
            &exchange,
            (
                "create",
                "authentication.k8s.io",
                "tokenreviews",
                None,
                None,
            ),
        ),
        (&exchange, ("get", "", "secrets", Some("dept-a"), None)),
        (&exchange, ("update", "", "configmaps", Some(ns), None)),
    ];
    let may_not: Vec<(&str, Access)> = vec![
        (&operator, ("get", "", "secrets", Some("dept-a"), None)),
        (&operator, ("get", "", "secrets", Some(ns), Some("other"))),
        (&operator, ("list", "", "configmaps", Some("dept-a"), None)),
        (&operator, ("create", "", "pods", Some("dept-a"), None)),
        (
            &operator,
            ("patch", "apps", "statefulsets", Some(ns), Some("other")),
        ),
        (
            &operator,
            ("create", "gongshu.io", "reviews", Some(ns), None),
        ),
        (
            &operator,
            ("patch", "gongshu.io", "sharegrants", Some("dept-a"), None),
        ),
        (&exchange, ("list", "", "secrets", None, None)),
        (
            &exchange,
            ("update", "", "configmaps", Some("dept-a"), None),
        ),
    ];
    let mut wrong = Vec::new();
    for (user, (verb, group, resource, namespace, name)) in &may {
        if !allowed(&client, user, verb, group, resource, *namespace, *name).await {
            wrong.push(format!(
                "denied but needed: {user} {verb} {group}/{resource} {namespace:?} {name:?}"
            ));
        }
    }
    for (user, (verb, group, resource, namespace, name)) in &may_not {
        if allowed(&client, user, verb, group, resource, *namespace, *name).await {
            wrong.push(format!(
                "allowed but not needed: {user} {verb} {group}/{resource} {namespace:?} {name:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    helm.run(&["uninstall", "gongshu", "--namespace", ns, "--timeout", "2m"])
        .expect("helm uninstall");
    let left = kubectl(
        &plane,
        &["get", "deployment,service,clusterrole", "-A", "-o", "name"],
    );
    assert!(
        !left.contains("gongshu"),
        "objects left after helm uninstall:\n{left}"
    );
    // Helm never deletes CRDs (nor, with them, anyone's objects).
    kubectl(&plane, &["get", "crd", "datacatalogs.gongshu.io"]);

    drop(plane);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = std::fs::remove_dir_all(&dir);
}
