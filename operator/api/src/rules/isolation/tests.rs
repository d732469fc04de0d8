//! Tests of the department namespaces' NetworkPolicies (CH-1, CH-2).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use jiff::Timestamp;
use k8s_openapi::api::{core::v1::Service, networking::v1::NetworkPolicy};
use serde::Deserialize;

use super::*;
use crate::v1alpha1::{ChannelExemption, ChannelPolicy, ExemptionPhase};

#[derive(Deserialize)]
struct Fixture {
    exemption: ChannelExemption,
    services: Vec<Service>,
}

fn fixture() -> Fixture {
    serde_yaml::from_str(include_str!("../fixtures/isolation.yaml")).unwrap()
}

fn now() -> Timestamp {
    "2026-05-01T00:00:00Z".parse().unwrap()
}

fn policy(yaml: &str) -> NetworkPolicy {
    serde_yaml::from_str(yaml).unwrap()
}

#[test]
fn a_department_accepts_only_its_own_pods_and_the_exchange_and_reaches_other_departments_only_through_it_ch_1()
 {
    let built = department_policy("dept-tax", "gongshu-system", &ChannelPolicy::default());
    let expected = policy(
        r"
metadata:
  name: gongshu-isolation
  namespace: dept-tax
  labels: {app.kubernetes.io/managed-by: gongshu, gongshu.io/policy: isolation}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
  ingress:
    - from:
        - podSelector: {}
        - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: gongshu-system}}
          podSelector:
            matchLabels: {app.kubernetes.io/name: gongshu-exchange, app.kubernetes.io/part-of: gongshu}
  egress:
    - to:
        - podSelector: {}
        - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: gongshu-system}}
          podSelector:
            matchLabels: {app.kubernetes.io/name: gongshu-exchange, app.kubernetes.io/part-of: gongshu}
        - namespaceSelector:
            matchExpressions: [{key: gongshu.io/department, operator: DoesNotExist}]
",
    );
    assert_eq!(built, expected);
    assert_eq!(Role::of(&built), Some(Role::Isolation));
}

#[test]
fn no_peer_of_a_department_policy_selects_another_department_namespace_ch_1() {
    let built = department_policy(
        "dept-tax",
        "gongshu-system",
        &ChannelPolicy {
            egress_cidrs: vec!["10.200.0.0/16".into()],
            ..ChannelPolicy::default()
        },
    );
    let spec = built.spec.unwrap();
    let peers = spec
        .ingress
        .iter()
        .flatten()
        .flat_map(|r| r.from.iter().flatten())
        .chain(
            spec.egress
                .iter()
                .flatten()
                .flat_map(|r| r.to.iter().flatten()),
        );
    for peer in peers {
        let Some(namespaces) = &peer.namespace_selector else {
            continue; // its own namespace, or an address block
        };
        let by_name = namespaces
            .match_labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/metadata.name"));
        let outside_departments =
            namespaces.match_expressions.iter().flatten().any(|e| {
                e.key == crate::v1alpha1::LABEL_DEPARTMENT && e.operator == "DoesNotExist"
            });
        assert!(
            (by_name == Some(&"gongshu-system".to_owned()) && peer.pod_selector.is_some())
                || outside_departments,
            "{peer:?} may select another department"
        );
    }
}

#[test]
fn the_egress_cidrs_of_the_regulation_become_ip_blocks_ch_2() {
    let built = department_policy(
        "dept-tax",
        "gongshu-system",
        &ChannelPolicy {
            egress_cidrs: vec!["10.200.0.0/16".into(), "2001:db8::/32".into()],
            ..ChannelPolicy::default()
        },
    );
    let blocks: Vec<String> = built.spec.unwrap().egress.unwrap()[0]
        .to
        .iter()
        .flatten()
        .filter_map(|p| p.ip_block.as_ref().map(|b| b.cidr.clone()))
        .collect();
    assert_eq!(blocks, ["10.200.0.0/16", "2001:db8::/32"]);
}

#[test]
fn egress_cidrs_the_apiserver_would_refuse_are_problems_and_left_out_ch_2() {
    let policy = ChannelPolicy {
        egress_cidrs: vec![
            "10.0.0.0/8".into(),
            "10.1.2.3/8".into(),
            "10.0.0.0".into(),
            "10.0.0.0/33".into(),
            "2001:DB8::/32".into(),
            "intranet/24".into(),
            "0.0.0.0/0".into(),
            "10.0.0.0/08".into(),
            "010.0.0.0/8".into(),
            "::ffff:10.0.0.0/104".into(),
            "2001:db8::1/32".into(),
        ],
        ..ChannelPolicy::default()
    };
    let problems = check(&policy);
    let fields: Vec<_> = problems
        .iter()
        .map(|p| (p.field.as_str(), p.rule))
        .collect();
    let at = |i: usize| (format!("spec.channels.egressCidrs[{i}]"), Some("CH-2"));
    let expected: Vec<_> = [1, 2, 3, 5, 7, 8, 9, 10].into_iter().map(at).collect();
    assert_eq!(
        fields,
        expected
            .iter()
            .map(|(f, r)| (f.as_str(), *r))
            .collect::<Vec<_>>()
    );
    assert!(
        problems[0].message.contains("write 10.0.0.0/8"),
        "{}",
        problems[0]
    );
    assert!(
        problems[7].message.contains("write 2001:db8::/32"),
        "{}",
        problems[7]
    );
    let blocks: Vec<String> = department_policy("d", "gongshu-system", &policy)
        .spec
        .unwrap()
        .egress
        .unwrap()[0]
        .to
        .iter()
        .flatten()
        .filter_map(|p| p.ip_block.as_ref().map(|b| b.cidr.clone()))
        .collect();
    assert_eq!(
        blocks,
        ["10.0.0.0/8", "2001:DB8::/32", "0.0.0.0/0"],
        "as written: the apiserver accepts any spelling of an IPv6 address"
    );
}

#[test]
fn an_approved_exemption_opens_the_pods_of_each_covered_service_on_their_target_ports_ch_1() {
    let Fixture {
        exemption,
        services,
    } = fixture();
    let built = exemption_policies(&exemption, &services, now());
    let owner = r"
  ownerReferences:
    - apiVersion: gongshu.io/v1alpha1
      kind: ChannelExemption
      name: tax-portal
      uid: 6f1c2a9e-0d4b-4c55-9b1e-3c2f0a7d8e41
      controller: true";
    let expected = [
        policy(&format!(
            r"
metadata:
  name: gongshu-exemption-tax-portal.portal
  namespace: dept-tax
  labels: {{app.kubernetes.io/managed-by: gongshu, gongshu.io/policy: exemption}}{owner}
spec:
  podSelector: {{matchLabels: {{app: portal}}}}
  policyTypes: [Ingress]
  ingress:
    - ports:
        - {{port: https, protocol: TCP}}
        - {{port: 8080, protocol: TCP}}
"
        )),
        policy(&format!(
            r"
metadata:
  name: gongshu-exemption-tax-portal.portal-api
  namespace: dept-tax
  labels: {{app.kubernetes.io/managed-by: gongshu, gongshu.io/policy: exemption}}{owner}
spec:
  podSelector: {{matchLabels: {{app: portal, tier: api}}}}
  policyTypes: [Ingress]
  ingress:
    - ports:
        - {{port: 9000, protocol: TCP}}
        - {{port: 53, protocol: UDP}}
"
        )),
    ];
    assert_eq!(built, expected, "legacy has no selector: nothing to open");
    assert!(built.iter().all(|p| Role::of(p) == Some(Role::Exemption)));
}

#[test]
fn an_exemption_that_is_not_approved_for_its_generation_or_has_expired_opens_nothing_ch_1() {
    let Fixture {
        exemption,
        services,
    } = fixture();
    let opens = |e: &ChannelExemption, at: Timestamp| exemption_policies(e, &services, at).len();
    assert_eq!(opens(&exemption, now()), 2);
    assert_eq!(
        opens_until(&exemption, now()),
        Some("2026-12-31T16:00:00Z".parse().unwrap())
    );

    let expired: Timestamp = "2026-12-31T16:00:00Z".parse().unwrap();
    assert_eq!(opens(&exemption, expired), 0, "validUntil has passed");
    assert_eq!(opens_until(&exemption, expired), None);

    let mut edited = exemption.clone();
    edited.metadata.generation = Some(3);
    assert_eq!(opens(&edited, now()), 0, "the approval was of generation 2");

    for phase in [
        ExemptionPhase::Pending,
        ExemptionPhase::ChangesRequested,
        ExemptionPhase::Denied,
        ExemptionPhase::Revoked,
        ExemptionPhase::Expired,
    ] {
        let mut other = exemption.clone();
        other.status.as_mut().unwrap().phase = Some(phase);
        assert_eq!(opens(&other, now()), 0, "{phase:?}");
    }
    let mut unfiled = exemption;
    unfiled.status = None;
    assert_eq!(opens(&unfiled, now()), 0);
}

#[test]
fn a_covered_service_that_does_not_exist_or_has_no_ports_opens_nothing() {
    let Fixture {
        exemption,
        mut services,
    } = fixture();
    services.retain(|s| s.metadata.name.as_deref() != Some("portal-api"));
    services[0].spec.as_mut().unwrap().ports = Some(vec![]);
    assert_eq!(exemption_policies(&exemption, &services, now()), []);
    assert_eq!(
        covered_services(&exemption).collect::<Vec<_>>(),
        ["portal", "portal-api", "legacy"]
    );
}

#[test]
fn exemption_policy_names_are_unique_per_exemption_and_service_and_fit_an_object_name() {
    assert_eq!(
        exemption_policy_name("tax-portal", "web"),
        "gongshu-exemption-tax-portal.web"
    );
    assert_ne!(
        exemption_policy_name("a-b", "c"),
        exemption_policy_name("a", "b-c")
    );
    let long = "x".repeat(253);
    let (one, two) = (
        exemption_policy_name(&long, "web"),
        exemption_policy_name(&long, "api"),
    );
    assert_eq!(one.len(), 253);
    assert!(one.starts_with("gongshu-exemption-xxx"));
    assert_ne!(one, two);
    let dotted = exemption_policy_name(&format!("{}.{}", "y".repeat(223), "z".repeat(20)), "s");
    assert!(dotted.len() <= 253);
    assert!(!dotted.contains(".-"), "{dotted}");
}

#[test]
fn only_policies_labelled_by_gongshu_have_a_role() {
    let mut built = department_policy("dept-tax", "gongshu-system", &ChannelPolicy::default());
    assert_eq!(Role::of(&built), Some(Role::Isolation));
    built
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert(LABEL_MANAGED_BY.into(), "helm".into());
    assert_eq!(Role::of(&built), None);
    assert_eq!(Role::of(&NetworkPolicy::default()), None);
}
