//! Network isolation of department namespaces (CH-1, CH-2): the NetworkPolicies the operator
//! keeps in every department namespace, from the `Regulation`'s channel policy and the approved
//! filings. Pure: the controller passes what it fetched and applies what comes back.
//!
//! NetworkPolicies only ever add allowances: a pod that some policy selects is isolated and
//! accepts the union of what the policies selecting it allow. So [`department_policy`] closes
//! the namespace to everything but its own pods and the exchange, and each approved
//! `ChannelExemption` adds, with [`exemption_policies`], a hole for the pods behind the Services
//! it covers — and nothing else.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use jiff::Timestamp;
use k8s_openapi::{
    api::{
        core::v1::{Service, ServicePort},
        networking::v1::{
            IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule,
            NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
        },
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, LabelSelectorRequirement, ObjectMeta},
        util::intstr::IntOrString,
    },
};
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};

use super::{Problem, channel::Filing, exchange};
use crate::v1alpha1::{ChannelExemption, ChannelPolicy, ExposedKind, LABEL_DEPARTMENT};

/// The name of the isolating NetworkPolicy in every department namespace.
pub const ISOLATION_POLICY: &str = "gongshu-isolation";
/// The start of the name of every NetworkPolicy an exemption opens.
pub const EXEMPTION_PREFIX: &str = "gongshu-exemption-";
/// Label on every NetworkPolicy built here.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Its value.
pub const MANAGED_BY: &str = "gongshu";
/// Label saying what a NetworkPolicy built here is for: `isolation` or `exemption`.
pub const LABEL_POLICY: &str = "gongshu.io/policy";
/// A label selector matching every NetworkPolicy built here (and nobody else's).
pub const SELECTOR: &str = "app.kubernetes.io/managed-by=gongshu,gongshu.io/policy";
/// The label the apiserver puts on every namespace, with its name.
const NAMESPACE_NAME: &str = "kubernetes.io/metadata.name";
/// The longest object name (a DNS-1123 subdomain).
const MAX_NAME: usize = 253;

/// What a NetworkPolicy built here is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `gongshu-isolation`, one per department namespace.
    Isolation,
    /// A hole an approved exemption opens.
    Exemption,
}

impl Role {
    /// The [`LABEL_POLICY`] value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Isolation => "isolation",
            Self::Exemption => "exemption",
        }
    }

    /// The role of `policy`, if it is one built here.
    pub fn of(policy: &NetworkPolicy) -> Option<Self> {
        let labels = policy.labels();
        if labels.get(LABEL_MANAGED_BY).map(String::as_str) != Some(MANAGED_BY) {
            return None;
        }
        match labels.get(LABEL_POLICY).map(String::as_str) {
            Some("isolation") => Some(Self::Isolation),
            Some("exemption") => Some(Self::Exemption),
            _ => None,
        }
    }
}

/// Problems with the policy's `egressCidrs` (CH-2): each must be a CIDR the apiserver accepts
/// in a NetworkPolicy's ipBlock — no bits set past the prefix (`10.20.0.0/16`, not
/// `10.20.1.1/16`), no leading zeros, no IPv4-mapped IPv6 address. [`department_policy`] leaves
/// out the ones reported here: one bad entry must not keep every department unisolated.
pub fn check(policy: &ChannelPolicy) -> Vec<Problem> {
    policy
        .egress_cidrs
        .iter()
        .enumerate()
        .filter_map(|(i, cidr)| {
            cidr_problem(cidr).map(|message| {
                Problem::rule("CH-2", format!("spec.channels.egressCidrs[{i}]"), message)
            })
        })
        .collect()
}

fn cidr_problem(cidr: &str) -> Option<String> {
    let Some((address, prefix)) = cidr.split_once('/') else {
        return Some(format!("{cidr:?} is not a CIDR (address/prefix)"));
    };
    let Ok(ip) = address.parse::<IpAddr>() else {
        return Some(format!("{address:?} is not an IP address"));
    };
    if let IpAddr::V6(v6) = ip
        && v6.to_ipv4_mapped().is_some()
    {
        return Some(format!(
            "{address:?} is an IPv4-mapped IPv6 address: write the IPv4 CIDR"
        ));
    }
    let bits = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix.parse::<u32>() {
        Ok(p) if p <= bits && prefix == p.to_string() => p,
        _ => return Some(format!("{prefix:?} is not a prefix length of 0 to {bits}")),
    };
    let value = match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    };
    let width = if bits == 128 {
        u128::MAX
    } else {
        (1 << bits) - 1
    };
    let mask = if prefix == 0 {
        0
    } else {
        (u128::MAX << (bits - prefix)) & width
    };
    let network = value & mask;
    if network == value {
        return None;
    }
    let network = match ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(u32::try_from(network).unwrap_or_default())),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(network)),
    };
    Some(format!(
        "{cidr:?} has bits set past the prefix length: write {network}/{prefix}"
    ))
}

fn metadata(name: String, namespace: &str, role: Role) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.to_owned()),
        labels: Some(BTreeMap::from([
            (LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned()),
            (LABEL_POLICY.to_owned(), role.as_str().to_owned()),
        ])),
        ..ObjectMeta::default()
    }
}

fn match_labels(labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels),
        ..LabelSelector::default()
    }
}

/// The exchange's pods, in `exchange_namespace`.
fn exchange_peer(exchange_namespace: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(match_labels(BTreeMap::from([(
            NAMESPACE_NAME.to_owned(),
            exchange_namespace.to_owned(),
        )]))),
        pod_selector: Some(match_labels(exchange::pod_labels())),
        ip_block: None,
    }
}

/// Every pod of the policy's own namespace.
fn own_namespace_peer() -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: Some(LabelSelector::default()),
        ..NetworkPolicyPeer::default()
    }
}

/// `gongshu-isolation` in department namespace `namespace` (CH-1, CH-2), selecting all its
/// pods:
/// - ingress only from the namespace's own pods and the exchange's pods in
///   `exchange_namespace`;
/// - egress to the namespace's own pods, the exchange, every namespace that is not a
///   department (DNS in `kube-system`, shared infrastructure) and `policy.egressCidrs` (the
///   valid ones, see [`check`]); never directly to another department: other departments are
///   reached only through the exchange.
///
/// Addresses outside the cluster, the apiserver included, are reachable only through
/// `egressCidrs`: the apiserver's address differs per cluster and no selector matches it.
pub fn department_policy(
    namespace: &str,
    exchange_namespace: &str,
    policy: &ChannelPolicy,
) -> NetworkPolicy {
    let not_a_department = NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: LABEL_DEPARTMENT.to_owned(),
                operator: "DoesNotExist".to_owned(),
                values: None,
            }]),
            match_labels: None,
        }),
        ..NetworkPolicyPeer::default()
    };
    let cidrs = policy
        .egress_cidrs
        .iter()
        .filter(|cidr| cidr_problem(cidr).is_none())
        .map(|cidr| NetworkPolicyPeer {
            ip_block: Some(IPBlock {
                cidr: cidr.clone(),
                except: None,
            }),
            ..NetworkPolicyPeer::default()
        });
    let to = [
        own_namespace_peer(),
        exchange_peer(exchange_namespace),
        not_a_department,
    ]
    .into_iter()
    .chain(cidrs)
    .collect();
    NetworkPolicy {
        metadata: metadata(ISOLATION_POLICY.to_owned(), namespace, Role::Isolation),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![
                    own_namespace_peer(),
                    exchange_peer(exchange_namespace),
                ]),
                ports: None,
            }]),
            egress: Some(vec![NetworkPolicyEgressRule {
                to: Some(to),
                ports: None,
            }]),
        }),
    }
}

/// Until when `exemption` opens what it covers, if it does at `now`: approved for its current
/// generation (see [`Filing::of`]) and before its `validUntil`.
pub fn opens_until(exemption: &ChannelExemption, now: Timestamp) -> Option<Timestamp> {
    Filing::of(exemption)
        .admits_until
        .filter(|until| now < *until)
}

/// The names of the Services `exemption` covers.
pub fn covered_services(exemption: &ChannelExemption) -> impl Iterator<Item = &str> {
    exemption
        .spec
        .covers
        .iter()
        .filter(|c| c.kind == ExposedKind::Service)
        .map(|c| c.name.as_str())
}

/// The name of the NetworkPolicy `exemption` opens for `service`:
/// `gongshu-exemption-<exemption>.<service>`. A Service name has no dot, so no two pairs share
/// a name; one longer than an object name may be is cut and ends in a hash of the whole.
pub fn exemption_policy_name(exemption: &str, service: &str) -> String {
    let name = format!("{EXEMPTION_PREFIX}{exemption}.{service}");
    if name.len() <= MAX_NAME {
        return name;
    }
    let digest: String = Sha256::digest(name.as_bytes())
        .iter()
        .take(5)
        .map(|b| format!("{b:02x}"))
        .collect();
    let kept: String = name.chars().take(MAX_NAME - digest.len() - 1).collect();
    format!("{}-{digest}", kept.trim_end_matches(['-', '.']))
}

/// The NetworkPolicies an approved, unexpired `exemption` (see [`opens_until`]) opens in its
/// namespace at `now` (CH-1): for each Service it covers that is among `services`, one opening
/// ingress from anywhere to the pods the Service selects, on the ports it sends traffic to
/// (each port's `targetPort`, by number or name, else its `port`). From anywhere: a NodePort,
/// LoadBalancer or externalIPs Service, or an Ingress controller in front of a ClusterIP one,
/// delivers traffic from addresses no selector can name.
///
/// A Service without a selector or without ports opens nothing: no pod to select, and a
/// NetworkPolicy rule without ports would open every port. Each policy is owned by the
/// exemption (`controller: true`), so deleting the exemption deletes it.
pub fn exemption_policies(
    exemption: &ChannelExemption,
    services: &[Service],
    now: Timestamp,
) -> Vec<NetworkPolicy> {
    let (Some(_), Some(owner), Some(namespace)) = (
        opens_until(exemption, now),
        exemption.controller_owner_ref(&()),
        exemption.namespace(),
    ) else {
        return Vec::new();
    };
    let exemption_name = exemption.name_any();
    covered_services(exemption)
        .filter_map(|name| {
            let service = services.iter().find(|s| s.name_any() == name)?;
            let spec = service.spec.as_ref()?;
            let selector = spec.selector.clone().filter(|s| !s.is_empty())?;
            let ports = pod_ports(spec.ports.as_deref().unwrap_or_default());
            if ports.is_empty() {
                return None;
            }
            let mut metadata = metadata(
                exemption_policy_name(&exemption_name, name),
                &namespace,
                Role::Exemption,
            );
            metadata.owner_references = Some(vec![owner.clone()]);
            Some(NetworkPolicy {
                metadata,
                spec: Some(NetworkPolicySpec {
                    pod_selector: Some(match_labels(selector)),
                    policy_types: Some(vec!["Ingress".to_owned()]),
                    ingress: Some(vec![NetworkPolicyIngressRule {
                        from: None,
                        ports: Some(ports),
                    }]),
                    egress: None,
                }),
            })
        })
        .collect()
}

/// The pod ports a Service's ports send traffic to, each once, in the Service's order.
fn pod_ports(ports: &[ServicePort]) -> Vec<NetworkPolicyPort> {
    let mut out: Vec<NetworkPolicyPort> = Vec::new();
    for port in ports {
        let candidate = NetworkPolicyPort {
            port: Some(
                port.target_port
                    .clone()
                    .unwrap_or(IntOrString::Int(port.port)),
            ),
            protocol: Some(port.protocol.clone().unwrap_or_else(|| "TCP".to_owned())),
            end_port: None,
        };
        if !out.contains(&candidate) {
            out.push(candidate);
        }
    }
    out
}

#[cfg(test)]
mod tests;
