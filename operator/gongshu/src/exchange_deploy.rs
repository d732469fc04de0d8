//! In a cluster the operator deploys `gongshu exchange` itself: [`ExchangeDeployment`] says how,
//! pure builders turn it into a StatefulSet, Service, NetworkPolicy and PodDisruptionBudget, and
//! [`keep_applied`] server-side-applies them while this replica leads (at the start of each
//! term, then every [`ExchangeDeployment::reapply_every`], which repairs drift). The
//! ServiceAccount `gongshu-exchange` and its RBAC come from `deploy/rbac.yaml`, not from here.
//! Where no node runs pods (the local demo, e2e) the same binary runs as a process instead.
//!
//! A StatefulSet, not a Deployment: the audit log is one hash chain per process, in a directory
//! of its own, with its segment heads checkpointed in a ConfigMap named after the process. A
//! StatefulSet gives every replica its own volume (a `volumeClaimTemplate`) and a stable name
//! (`gongshu-exchange-0`, …), so a restarted pod reopens its own chain and its own checkpoint
//! `gongshu-audit-gongshu-exchange-0`. Deployment pods share one claim (two writers, or a
//! ReadWriteOnce volume that pins every replica to one node) and get a new name on every
//! restart, which would orphan the checkpoint that proves the old segments were not edited.

use std::{collections::BTreeMap, time::Duration};

use crate::pod_security::{restricted_container, restricted_pod};
use k8s_openapi::{
    api::{
        apps::v1::{StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec},
        core::v1::{
            Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, HTTPGetAction,
            ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSpec,
            PodTemplateSpec, Probe, ResourceRequirements, SecretVolumeSource, Service, ServicePort,
            ServiceSpec, Volume, VolumeMount, VolumeResourceRequirements,
        },
        networking::v1::{
            NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
            NetworkPolicySpec,
        },
        policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec},
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};
use kube::{
    Api, Client, Resource,
    api::{Patch, PatchParams},
};
use serde::{Serialize, de::DeserializeOwned};
use tracing::{info, instrument, warn};

use crate::{controller::FIELD_MANAGER, shutdown::Shutdown};

/// The name of every object here, and of the ServiceAccount in `deploy/rbac.yaml`.
pub const NAME: &str = gongshu_api::rules::exchange::NAME;
/// The port the exchange listens on in its pod (HTTPS).
pub const CONTAINER_PORT: i32 = 8444;
/// The Service's port (HTTPS), so that the default `--exchange-url` needs no port.
pub const SERVICE_PORT: i32 = 443;
/// The admin port in the pod and on the Service (plain HTTP: `/metrics`, `/healthz`,
/// `/readyz`), named `metrics` for a `ServiceMonitor`.
pub const ADMIN_PORT: i32 = 8081;
/// The namespace Prometheus scrapes from by default (the kube-prometheus-stack convention).
pub const MONITORING_NAMESPACE: &str = "monitoring";
/// Where the serving certificate's Secret is mounted (`tls.crt`, `tls.key`).
const TLS_DIR: &str = "/etc/gongshu/tls";
/// Where each replica's audit volume is mounted.
const AUDIT_DIR: &str = "/var/lib/gongshu/audit";
/// The exchange's `--file-root`: file sources resolve under it, and nothing is mounted there by
/// default, so no file is served until an administrator mounts one.
const FILE_ROOT: &str = "/data";
/// How long after an error the next attempt comes, unless the period is shorter.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(30);

/// How the exchange is deployed. [`ExchangeDeployment::new`] fills in the defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct ExchangeDeployment {
    /// Namespace of every object (the operator's own).
    pub namespace: String,
    /// Container image holding the `gongshu` binary (the operator's own image).
    pub image: String,
    /// Replicas; each has its own audit volume. Default 2, so that the PodDisruptionBudget
    /// (minAvailable 1) lets a node drain proceed.
    pub replicas: i32,
    /// Secret of type `kubernetes.io/tls` with the serving certificate for
    /// `gongshu-exchange.<namespace>.svc` (default `gongshu-exchange-tls`); pods wait for it.
    pub tls_secret: String,
    /// Each replica's audit volume.
    pub audit_volume: AuditVolume,
    /// The container's requests and limits.
    pub resources: ResourceRequirements,
    /// How often the objects are applied again, repairing drift (default 10 minutes).
    pub reapply_every: Duration,
    /// The namespace whose pods the NetworkPolicy lets reach the admin port, to scrape
    /// `/metrics` (default `monitoring`).
    pub monitoring_namespace: String,
}

/// The claim template of each replica's audit volume.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditVolume {
    /// Name of the claim template; the claims are `<name>-gongshu-exchange-<ordinal>`.
    pub name: String,
    /// Requested size (default `10Gi`).
    pub size: String,
    /// Storage class; the cluster's default class without it.
    pub storage_class: Option<String>,
}

impl ExchangeDeployment {
    /// The default deployment of `image` in `namespace`.
    pub fn new(namespace: impl Into<String>, image: impl Into<String>) -> Self {
        let quantities = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
                .collect::<BTreeMap<_, _>>()
        };
        Self {
            namespace: namespace.into(),
            image: image.into(),
            replicas: 2,
            tls_secret: format!("{NAME}-tls"),
            audit_volume: AuditVolume {
                name: "audit".into(),
                size: "10Gi".into(),
                storage_class: None,
            },
            resources: ResourceRequirements {
                requests: Some(quantities(&[("cpu", "100m"), ("memory", "128Mi")])),
                limits: Some(quantities(&[("memory", "512Mi")])),
                ..ResourceRequirements::default()
            },
            reapply_every: Duration::from_secs(600),
            monitoring_namespace: MONITORING_NAMESPACE.into(),
        }
    }

    /// The labels that select the exchange's pods, which the department namespaces'
    /// NetworkPolicies admit too (one definition in the api crate).
    pub fn selector_labels() -> BTreeMap<String, String> {
        gongshu_api::rules::exchange::pod_labels()
    }

    /// Metadata of each object: name, namespace and the selector labels.
    fn metadata(&self) -> ObjectMeta {
        let mut labels = Self::selector_labels();
        labels.insert(
            "app.kubernetes.io/managed-by".into(),
            "gongshu-operator".into(),
        );
        ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels),
            ..ObjectMeta::default()
        }
    }

    fn selector() -> LabelSelector {
        LabelSelector {
            match_labels: Some(Self::selector_labels()),
            ..LabelSelector::default()
        }
    }

    /// The exchange's StatefulSet (see the module documentation for why not a Deployment).
    pub fn stateful_set(&self) -> StatefulSet {
        let audit = &self.audit_volume;
        let claim = PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(audit.name.clone()),
                labels: Some(Self::selector_labels()),
                ..ObjectMeta::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                storage_class_name: audit.storage_class.clone(),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([(
                        "storage".to_owned(),
                        Quantity(audit.size.clone()),
                    )])),
                    ..VolumeResourceRequirements::default()
                }),
                ..PersistentVolumeClaimSpec::default()
            }),
            ..PersistentVolumeClaim::default()
        };
        StatefulSet {
            metadata: self.metadata(),
            spec: Some(StatefulSetSpec {
                replicas: Some(self.replicas),
                service_name: Some(NAME.into()),
                selector: Self::selector(),
                // Replicas are independent: no reason to start them one by one.
                pod_management_policy: Some("Parallel".into()),
                template: self.pod_template(),
                volume_claim_templates: Some(vec![claim]),
                // The audit log must outlive the StatefulSet (SH logs ≥ 3 years).
                persistent_volume_claim_retention_policy: Some(
                    StatefulSetPersistentVolumeClaimRetentionPolicy {
                        when_deleted: Some("Retain".into()),
                        when_scaled: Some("Retain".into()),
                    },
                ),
                ..StatefulSetSpec::default()
            }),
            status: None,
        }
    }

    fn pod_template(&self) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(Self::selector_labels()),
                ..ObjectMeta::default()
            }),
            spec: Some(PodSpec {
                service_account_name: Some(NAME.into()),
                // It reviews callers' tokens and watches grants with its own token.
                automount_service_account_token: Some(true),
                enable_service_links: Some(false),
                // fsGroup makes the audit volume and the certificate readable by the exchange.
                security_context: Some(restricted_pod()),
                containers: vec![self.container()],
                volumes: Some(vec![
                    Volume {
                        name: "tls".into(),
                        secret: Some(SecretVolumeSource {
                            secret_name: Some(self.tls_secret.clone()),
                            default_mode: Some(0o440),
                            ..SecretVolumeSource::default()
                        }),
                        ..Volume::default()
                    },
                    Volume {
                        name: "tmp".into(),
                        empty_dir: Some(EmptyDirVolumeSource {
                            size_limit: Some(Quantity("64Mi".into())),
                            ..EmptyDirVolumeSource::default()
                        }),
                        ..Volume::default()
                    },
                ]),
                ..PodSpec::default()
            }),
        }
    }

    fn container(&self) -> Container {
        let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
            name: name.into(),
            mount_path: path.into(),
            read_only: Some(read_only),
            ..VolumeMount::default()
        };
        Container {
            name: "exchange".into(),
            image: Some(self.image.clone()),
            image_pull_policy: Some("IfNotPresent".into()),
            command: Some(vec!["gongshu".into(), "exchange".into()]),
            env: Some(exchange_env()),
            ports: Some(vec![
                ContainerPort {
                    name: Some("https".into()),
                    container_port: CONTAINER_PORT,
                    protocol: Some("TCP".into()),
                    ..ContainerPort::default()
                },
                ContainerPort {
                    name: Some("metrics".into()),
                    container_port: ADMIN_PORT,
                    protocol: Some("TCP".into()),
                    ..ContainerPort::default()
                },
            ]),
            // On the admin listener, as the operator's: probes are not requests to the data
            // plane and do not count in its metrics.
            liveness_probe: Some(admin_probe("/healthz", 10, 3)),
            readiness_probe: Some(admin_probe("/readyz", 5, 2)),
            resources: Some(self.resources.clone()),
            security_context: Some(restricted_container()),
            volume_mounts: Some(vec![
                mount("tls", TLS_DIR, true),
                mount(&self.audit_volume.name, AUDIT_DIR, false),
                mount("tmp", "/tmp", false),
            ]),
            ..Container::default()
        }
    }

    /// The Service `gongshu-exchange`: port 443 to the pods' 8444, inside the cluster, and
    /// `metrics` (8081) for a `ServiceMonitor`, whose scrape job is then named
    /// `gongshu-exchange` as the alert rules expect (docs/metrics.md).
    pub fn service(&self) -> Service {
        Service {
            metadata: self.metadata(),
            spec: Some(ServiceSpec {
                type_: Some("ClusterIP".into()),
                selector: Some(Self::selector_labels()),
                ports: Some(vec![
                    ServicePort {
                        name: Some("https".into()),
                        port: SERVICE_PORT,
                        target_port: Some(IntOrString::Int(CONTAINER_PORT)),
                        protocol: Some("TCP".into()),
                        ..ServicePort::default()
                    },
                    ServicePort {
                        name: Some("metrics".into()),
                        port: ADMIN_PORT,
                        target_port: Some(IntOrString::Int(ADMIN_PORT)),
                        protocol: Some("TCP".into()),
                        ..ServicePort::default()
                    },
                ]),
                ..ServiceSpec::default()
            }),
            status: None,
        }
    }

    /// The NetworkPolicy of the exchange's pods: ingress on 8444 from any source and on the
    /// admin port 8081 from the monitoring namespace only; egress unrestricted.
    ///
    /// The data port's rule has no `from`: consumers live in every department namespace,
    /// open-data users come through whatever ingress path the cluster has, and the exchange
    /// authenticates every caller itself (TokenReview, API keys) — the policy's job is to close
    /// every other port. The admin port authenticates nobody, so only Prometheus's namespace
    /// reaches it (department codes and traffic are not for every pod to read); the kubelet's
    /// probes come from the node, which NetworkPolicies always admit.
    /// Egress is not restricted (only `Ingress` is in `policyTypes`): the exchange must reach
    /// the apiserver, whose address no pod selector matches and whose IP differs per cluster,
    /// and the departments' source databases, wherever they run.
    pub fn network_policy(&self) -> NetworkPolicy {
        NetworkPolicy {
            metadata: self.metadata(),
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(Self::selector()),
                policy_types: Some(vec!["Ingress".into()]),
                ingress: Some(vec![
                    NetworkPolicyIngressRule {
                        from: None,
                        ports: Some(vec![tcp(CONTAINER_PORT)]),
                    },
                    NetworkPolicyIngressRule {
                        from: Some(vec![NetworkPolicyPeer {
                            namespace_selector: Some(LabelSelector {
                                match_labels: Some(BTreeMap::from([(
                                    "kubernetes.io/metadata.name".to_owned(),
                                    self.monitoring_namespace.clone(),
                                )])),
                                ..LabelSelector::default()
                            }),
                            ..NetworkPolicyPeer::default()
                        }]),
                        ports: Some(vec![tcp(ADMIN_PORT)]),
                    },
                ]),
                ..NetworkPolicySpec::default()
            }),
        }
    }

    /// The PodDisruptionBudget: a voluntary disruption (a node drain) leaves at least one
    /// replica serving.
    pub fn pod_disruption_budget(&self) -> PodDisruptionBudget {
        PodDisruptionBudget {
            metadata: self.metadata(),
            spec: Some(PodDisruptionBudgetSpec {
                min_available: Some(IntOrString::Int(1)),
                selector: Some(Self::selector()),
                ..PodDisruptionBudgetSpec::default()
            }),
            status: None,
        }
    }
}

/// The exchange's environment: its flags (`cli::ExchangeArgs`) set for a pod. `POD_NAME` comes
/// first so that `$(POD_NAME)` expands in the checkpoint's name.
fn exchange_env() -> Vec<EnvVar> {
    let value = |name: &str, value: String| EnvVar {
        name: name.into(),
        value: Some(value),
        value_from: None,
    };
    let field = |name: &str, path: &str| EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                api_version: None,
            }),
            ..EnvVarSource::default()
        }),
    };
    vec![
        field("POD_NAME", "metadata.name"),
        field("POD_NAMESPACE", "metadata.namespace"),
        value("GONGSHU_LOG_FORMAT", "json".into()),
        value("GONGSHU_EXCHANGE_ADDR", format!("0.0.0.0:{CONTAINER_PORT}")),
        // Reachable by the kubelet's probes and Prometheus; the NetworkPolicy narrows it.
        value(
            "GONGSHU_EXCHANGE_ADMIN_ADDR",
            format!("0.0.0.0:{ADMIN_PORT}"),
        ),
        value("GONGSHU_EXCHANGE_CERT_FILE", format!("{TLS_DIR}/tls.crt")),
        value("GONGSHU_EXCHANGE_KEY_FILE", format!("{TLS_DIR}/tls.key")),
        value("GONGSHU_AUDIT_DIR", AUDIT_DIR.into()),
        // One checkpoint per audit chain, named after the (stable) pod.
        value(
            "GONGSHU_AUDIT_CHECKPOINT",
            "gongshu-audit-$(POD_NAME)".into(),
        ),
        value("GONGSHU_FILE_ROOT", FILE_ROOT.into()),
    ]
}

fn tcp(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".into()),
        end_port: None,
    }
}

fn admin_probe(path: &str, period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(ADMIN_PORT),
            scheme: Some("HTTP".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        failure_threshold: Some(failure_threshold),
        timeout_seconds: Some(2),
        ..Probe::default()
    }
}

/// Applying one of the exchange's objects failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The apiserver refused or did not answer the server-side apply.
    #[error("cannot apply {kind} {namespace}/{name}: {source}")]
    Apply {
        /// The object's kind.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

impl DeployError {
    /// A stable label for logs and metrics: `forbidden` (RBAC), `invalid` (the apiserver
    /// rejected the object) or `api` (anything else, usually transient).
    pub fn category(&self) -> &'static str {
        match self {
            Self::Apply {
                source: kube::Error::Api(status),
                ..
            } if status.code == 403 => "forbidden",
            Self::Apply {
                source: kube::Error::Api(status),
                ..
            } if status.code == 422 => "invalid",
            Self::Apply { .. } => "api",
        }
    }
}

/// Server-side-applies `obj` (field manager [`FIELD_MANAGER`], forced: the operator owns
/// these objects, and forcing takes back fields someone else changed).
async fn apply<K>(client: &Client, obj: &K) -> Result<(), DeployError>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + k8s_openapi::Resource
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    let meta = obj.meta();
    let namespace = meta.namespace.clone().unwrap_or_default();
    let name = meta.name.clone().unwrap_or_default();
    Api::<K>::namespaced(client.clone(), &namespace)
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await
        .map(drop)
        .map_err(|source| DeployError::Apply {
            kind: <K as k8s_openapi::Resource>::KIND,
            namespace,
            name,
            source,
        })
}

/// Applies every object of `config` once, in the order a reader would create them; stops at
/// the first failure (the next round tries them all again).
pub async fn apply_all(client: &Client, config: &ExchangeDeployment) -> Result<(), DeployError> {
    apply(client, &config.service()).await?;
    apply(client, &config.network_policy()).await?;
    apply(client, &config.pod_disruption_budget()).await?;
    apply(client, &config.stateful_set()).await
}

/// Keeps the exchange deployed until `stop` fires: applies at once, then every
/// [`ExchangeDeployment::reapply_every`]; after a failure (logged) it tries again sooner.
#[instrument(skip_all, fields(namespace = %config.namespace, image = %config.image))]
pub async fn keep_applied(client: Client, config: ExchangeDeployment, stop: Shutdown) {
    loop {
        let next = match apply_all(&client, &config).await {
            Ok(()) => {
                info!(
                    replicas = config.replicas,
                    "applied the exchange's StatefulSet, Service, NetworkPolicy and PodDisruptionBudget"
                );
                config.reapply_every
            }
            Err(e) => {
                let retry = config.reapply_every.min(RETRY_AFTER_ERROR);
                warn!(error = %e, category = e.category(), retry_in = ?retry, "cannot deploy the exchange");
                retry
            }
        };
        tokio::select! {
            () = tokio::time::sleep(next) => {}
            () = stop.clone().wait() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::pod_security::runtime_default;

    fn config() -> ExchangeDeployment {
        ExchangeDeployment::new("gongshu-system", "registry.example/gongshu:test")
    }

    fn pod_spec(config: &ExchangeDeployment) -> PodSpec {
        config
            .stateful_set()
            .spec
            .and_then(|s| s.template.spec)
            .expect("a pod spec")
    }

    /// The text of `pub struct <name> { … }` in `source`.
    fn struct_body<'a>(source: &'a str, name: &str) -> &'a str {
        let start = source
            .find(&format!("pub struct {name} {{"))
            .unwrap_or_else(|| panic!("no struct {name} in cli.rs"));
        let len = source[start..].find("\n}").expect("the struct ends");
        &source[start..start + len]
    }

    #[test]
    fn every_container_meets_pod_security_restricted() {
        let spec = pod_spec(&config());
        let pod = spec.security_context.as_ref().expect("pod securityContext");
        assert_eq!(pod.run_as_non_root, Some(true));
        assert_eq!(pod.seccomp_profile, Some(runtime_default()));
        let containers = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten());
        for c in containers {
            let sc = c
                .security_context
                .as_ref()
                .expect("container securityContext");
            assert_eq!(sc.run_as_non_root, Some(true), "{}", c.name);
            assert_eq!(sc.run_as_user, Some(65532), "{}", c.name);
            assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
            assert_eq!(sc.read_only_root_filesystem, Some(true), "{}", c.name);
            assert_eq!(sc.privileged, None, "{}", c.name);
            let caps = sc.capabilities.as_ref().expect("capabilities");
            assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_owned()][..]));
            assert_eq!(caps.add, None, "{}", c.name);
            assert_eq!(
                sc.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
                Some("RuntimeDefault"),
                "{}",
                c.name
            );
        }
        assert_eq!(spec.automount_service_account_token, Some(true));
        assert_eq!(spec.service_account_name.as_deref(), Some(NAME));
        for v in spec.volumes.iter().flatten() {
            assert!(v.host_path.is_none(), "no hostPath under restricted");
        }
    }

    #[test]
    fn the_pod_environment_names_only_flags_the_exchange_reads() {
        let cli = include_str!("cli.rs");
        let flags = format!(
            "{}\n{}",
            struct_body(cli, "ExchangeArgs"),
            // The global --log-format.
            struct_body(cli, "Cli"),
        );
        let spec = pod_spec(&config());
        let env = spec.containers[0].env.as_ref().expect("env");
        // POD_NAME is there only to be expanded into the checkpoint's name.
        for var in env.iter().filter(|v| v.name != "POD_NAME") {
            assert!(
                flags.contains(&format!("env = \"{}\"", var.name)),
                "{} is not a flag of `gongshu exchange` (cli.rs ExchangeArgs)",
                var.name
            );
        }
        let value = |name: &str| {
            env.iter()
                .find(|v| v.name == name)
                .unwrap_or_else(|| panic!("{name} is set"))
                .clone()
        };
        assert_eq!(
            value("GONGSHU_EXCHANGE_ADDR").value.as_deref(),
            Some("0.0.0.0:8444")
        );
        assert_eq!(value("GONGSHU_FILE_ROOT").value.as_deref(), Some("/data"));
        let pod_name = env.iter().position(|v| v.name == "POD_NAME");
        let checkpoint = env
            .iter()
            .position(|v| v.name == "GONGSHU_AUDIT_CHECKPOINT");
        assert!(
            pod_name < checkpoint,
            "$(POD_NAME) expands only if defined before"
        );
        assert_eq!(
            value("GONGSHU_AUDIT_CHECKPOINT").value.as_deref(),
            Some("gongshu-audit-$(POD_NAME)")
        );
        for (name, path) in [
            ("POD_NAME", "metadata.name"),
            ("POD_NAMESPACE", "metadata.namespace"),
        ] {
            let field = value(name).value_from.and_then(|f| f.field_ref);
            assert_eq!(field.map(|f| f.field_path).as_deref(), Some(path));
        }
    }

    #[test]
    fn the_certificate_and_the_audit_volume_are_mounted_where_the_env_points() {
        let config = config();
        let set = config.stateful_set();
        let spec = set.spec.as_ref().expect("spec");
        let container = &pod_spec(&config).containers[0];
        let env = |name: &str| {
            container
                .env
                .iter()
                .flatten()
                .find(|v| v.name == name)
                .and_then(|v| v.value.clone())
                .expect("set")
        };
        let mount_of = |volume: &str| {
            container
                .volume_mounts
                .iter()
                .flatten()
                .find(|m| m.name == volume)
                .map(|m| m.mount_path.clone())
                .expect("mounted")
        };
        assert!(env("GONGSHU_EXCHANGE_CERT_FILE").starts_with(&mount_of("tls")));
        assert!(env("GONGSHU_EXCHANGE_KEY_FILE").starts_with(&mount_of("tls")));
        assert_eq!(env("GONGSHU_AUDIT_DIR"), mount_of("audit"));
        let claim = &spec.volume_claim_templates.as_ref().expect("claims")[0];
        assert_eq!(claim.metadata.name.as_deref(), Some("audit"));
        let size = claim
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"));
        assert_eq!(size, Some(&Quantity("10Gi".into())));
        assert_eq!(spec.replicas, Some(2));
    }

    #[test]
    fn probes_ask_the_admin_listener_which_the_pod_binds_on_every_address() {
        let container = &pod_spec(&config()).containers[0];
        for (probe, path) in [
            (&container.liveness_probe, "/healthz"),
            (&container.readiness_probe, "/readyz"),
        ] {
            let get = probe
                .as_ref()
                .and_then(|p| p.http_get.as_ref())
                .expect("httpGet");
            assert_eq!(get.path.as_deref(), Some(path));
            assert_eq!(get.scheme.as_deref(), Some("HTTP"));
            assert_eq!(get.port, IntOrString::Int(ADMIN_PORT));
        }
        let metrics = container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some("metrics"))
            .expect("a metrics port");
        assert_eq!(metrics.container_port, ADMIN_PORT);
        let admin_addr = container
            .env
            .iter()
            .flatten()
            .find(|v| v.name == "GONGSHU_EXCHANGE_ADMIN_ADDR")
            .and_then(|v| v.value.clone());
        assert_eq!(admin_addr.as_deref(), Some("0.0.0.0:8081"));
    }

    #[test]
    fn the_service_targets_the_exchange_pods_on_their_port() {
        let config = config();
        let spec = config.service().spec.expect("spec");
        let template = config.stateful_set().spec.expect("spec").template;
        let pod_labels = template.metadata.and_then(|m| m.labels).expect("labels");
        let selector = spec.selector.expect("selector");
        assert!(!selector.is_empty());
        assert!(selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)));
        let ports = spec.ports.expect("ports");
        assert_eq!(ports[0].port, 443);
        assert_eq!(ports[0].target_port, Some(IntOrString::Int(8444)));
        // The ServiceMonitor's port (docs/metrics.md: the chart's Services have `metrics`).
        assert_eq!(ports[1].name.as_deref(), Some("metrics"));
        assert_eq!(ports[1].target_port, Some(IntOrString::Int(ADMIN_PORT)));
        let container_ports = template.spec.expect("pod").containers[0]
            .ports
            .clone()
            .expect("ports");
        assert_eq!(container_ports[0].container_port, 8444);
        assert_eq!(container_ports[1].container_port, ADMIN_PORT);
    }

    #[test]
    fn the_network_policy_and_the_budget_select_the_exchange_pods() {
        let config = config();
        let pod_labels = config
            .stateful_set()
            .spec
            .and_then(|s| s.template.metadata)
            .and_then(|m| m.labels)
            .expect("labels");
        let selects_pods = |selector: &LabelSelector| {
            let labels = selector.match_labels.as_ref().expect("matchLabels");
            !labels.is_empty()
                && selector.match_expressions.is_none()
                && labels.iter().all(|(k, v)| pod_labels.get(k) == Some(v))
        };
        let policy = config.network_policy().spec.expect("spec");
        assert!(selects_pods(
            policy.pod_selector.as_ref().expect("podSelector")
        ));
        assert_eq!(policy.policy_types, Some(vec!["Ingress".to_owned()]));
        let ingress = policy.ingress.expect("ingress");
        assert_eq!(ingress.len(), 2);
        // The data port from anywhere: the exchange authenticates every caller itself.
        assert_eq!(ingress[0].from, None);
        let ports = ingress[0].ports.as_ref().expect("ports");
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].port, Some(IntOrString::Int(8444)));
        // The admin port only from the monitoring namespace: it authenticates nobody.
        let scrape = &ingress[1];
        assert_eq!(
            scrape.ports.as_ref().expect("ports")[0].port,
            Some(IntOrString::Int(ADMIN_PORT))
        );
        let peers = scrape.from.as_ref().expect("from");
        assert_eq!(peers.len(), 1);
        assert!(peers[0].pod_selector.is_none() && peers[0].ip_block.is_none());
        let namespaces = peers[0].namespace_selector.as_ref().expect("namespaces");
        assert_eq!(
            namespaces.match_labels,
            Some(BTreeMap::from([(
                "kubernetes.io/metadata.name".to_owned(),
                "monitoring".to_owned()
            )]))
        );
        let budget = config.pod_disruption_budget().spec.expect("spec");
        assert!(selects_pods(budget.selector.as_ref().expect("selector")));
        assert_eq!(budget.min_available, Some(IntOrString::Int(1)));
        let set = config.stateful_set().spec.expect("spec");
        assert!(selects_pods(&set.selector));
    }

    #[test]
    fn every_object_is_named_and_placed_in_the_configured_namespace() {
        let config = ExchangeDeployment::new("elsewhere", "img");
        let metas = [
            config.stateful_set().metadata,
            config.service().metadata,
            config.network_policy().metadata,
            config.pod_disruption_budget().metadata,
        ];
        for meta in metas {
            assert_eq!(meta.name.as_deref(), Some(NAME));
            assert_eq!(meta.namespace.as_deref(), Some("elsewhere"));
        }
    }
}
