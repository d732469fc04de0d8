//! Tests of the one-channel rules (CH-1).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use jiff::Timestamp;
use serde_json::json;

use super::*;
use crate::v1alpha1::{ChannelMode, ChannelPolicy, ExemptionPhase, ExposedKind, ExposedObject};

const NOW: &str = "2026-05-01T00:00:00Z";

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

fn filing(name: &str, kind: ExposedKind, object: &str, admits_until: Option<&str>) -> Filing {
    Filing {
        name: name.into(),
        covers: vec![ExposedObject {
            kind,
            name: object.into(),
        }],
        phase: Some(if admits_until.is_some() {
            ExemptionPhase::Approved
        } else {
            ExemptionPhase::Pending
        }),
        admits_until: admits_until.map(|t| t.parse().unwrap()),
    }
}

#[test]
fn services_exposed_outside_the_cluster_are_exposures_ch_1() {
    let service = |spec| exposure(ExposedKind::Service, "s", &spec);
    assert_eq!(
        service(json!({"type": "NodePort"})).unwrap().how,
        "type NodePort"
    );
    assert_eq!(
        service(json!({"type": "LoadBalancer"})).unwrap().field,
        "spec.type"
    );
    let external = service(json!({"type": "ClusterIP", "externalIPs": ["10.0.0.9"]})).unwrap();
    assert_eq!(external.field, "spec.externalIPs");
    assert_eq!(service(json!({"type": "ClusterIP"})), None);
    assert_eq!(service(json!({})), None, "ClusterIP is the default type");
    assert_eq!(service(json!({"externalIPs": []})), None);
    assert_eq!(
        service(json!({"type": "ExternalName", "externalName": "db.example"})),
        None,
        "outbound only"
    );
}

#[test]
fn every_ingress_is_an_exposure_ch_1() {
    assert!(exposure(ExposedKind::Ingress, "web", &json!({"rules": []})).is_some());
}

#[test]
fn routes_attached_to_a_gateway_are_exposures_ch_1() {
    for kind in [
        ExposedKind::HTTPRoute,
        ExposedKind::GRPCRoute,
        ExposedKind::TCPRoute,
        ExposedKind::TLSRoute,
        ExposedKind::UDPRoute,
    ] {
        let attached = json!({"parentRefs": [{"name": "public", "namespace": "infra"}]});
        let found = exposure(kind, "r", &attached).unwrap();
        assert_eq!(found.how, "attached to Gateway infra/public");
        assert_eq!(found.field, "spec.parentRefs");
        assert_eq!(
            exposure(kind, "r", &json!({"rules": []})),
            None,
            "{kind:?} attached to nothing routes nothing"
        );
    }
}

#[test]
fn a_reference_grant_opening_services_to_routes_elsewhere_is_an_exposure_ch_1() {
    let grant = |from_kind: &str, to_kind: &str| {
        exposure(
            ExposedKind::ReferenceGrant,
            "rg",
            &json!({
                "from": [{"group": "gateway.networking.k8s.io", "kind": from_kind, "namespace": "infra"}],
                "to": [{"group": "", "kind": to_kind}],
            }),
        )
    };
    assert!(grant("HTTPRoute", "Service").is_some());
    assert!(grant("TCPRoute", "Service").is_some());
    assert_eq!(
        grant("Gateway", "Secret"),
        None,
        "a Gateway reading a certificate exposes nothing"
    );
    assert_eq!(grant("HTTPRoute", "Secret"), None);
}

#[test]
fn the_namespace_label_overrides_the_regulations_mode() {
    let policy = ChannelPolicy::default();
    assert_eq!(
        mode(None, &policy),
        ChannelMode::Enforce,
        "enforce by default"
    );
    assert_eq!(mode(Some("audit"), &policy), ChannelMode::Audit);
    let audit = ChannelPolicy {
        mode: ChannelMode::Audit,
        ..ChannelPolicy::default()
    };
    assert_eq!(mode(Some("enforce"), &audit), ChannelMode::Enforce);
    assert_eq!(
        mode(Some("bogus"), &audit),
        ChannelMode::Audit,
        "an unknown value does not change the mode"
    );
}

fn node_port() -> Exposure {
    exposure(ExposedKind::Service, "radar", &json!({"type": "NodePort"})).unwrap()
}

#[test]
fn enforce_mode_denies_an_unfiled_exposure_naming_the_rule_and_the_way_out_ch_1() {
    let Verdict::Deny(problem) = judge(
        "dept-weather",
        Some(&node_port()),
        &[],
        ChannelMode::Enforce,
        now(),
    ) else {
        panic!("not denied");
    };
    assert_eq!(problem.rule, Some("CH-1"));
    assert_eq!(problem.field, "spec.type");
    for part in [
        "Service radar type NodePort",
        "ShareGrant",
        "ChannelExemption in dept-weather",
        "{kind: Service, name: radar}",
        "Review",
    ] {
        assert!(
            problem.message.contains(part),
            "{part:?} missing from {}",
            problem.message
        );
    }
}

#[test]
fn an_approved_unexpired_filing_admits_what_it_covers_ch_1() {
    let filings = [filing(
        "radar-feed",
        ExposedKind::Service,
        "radar",
        Some("2026-06-30T16:00:00Z"),
    )];
    assert_eq!(
        judge(
            "dept-weather",
            Some(&node_port()),
            &filings,
            ChannelMode::Enforce,
            now()
        ),
        Verdict::Exempted("radar-feed".into())
    );
    // Another object of the same kind is not covered.
    let other = exposure(
        ExposedKind::Service,
        "other",
        &json!({"type": "LoadBalancer"}),
    )
    .unwrap();
    assert!(matches!(
        judge(
            "dept-weather",
            Some(&other),
            &filings,
            ChannelMode::Enforce,
            now()
        ),
        Verdict::Deny(_)
    ));
    // Nor is an Ingress of the same name.
    let ingress = exposure(ExposedKind::Ingress, "radar", &json!({})).unwrap();
    assert!(matches!(
        judge(
            "dept-weather",
            Some(&ingress),
            &filings,
            ChannelMode::Enforce,
            now()
        ),
        Verdict::Deny(_)
    ));
}

#[test]
fn a_pending_or_expired_filing_admits_nothing_and_the_message_says_why_ch_1() {
    let pending = [filing("radar-feed", ExposedKind::Service, "radar", None)];
    let Verdict::Deny(p) = judge(
        "dept-weather",
        Some(&node_port()),
        &pending,
        ChannelMode::Enforce,
        now(),
    ) else {
        panic!("admitted while pending");
    };
    assert!(
        p.message
            .contains("ChannelExemption radar-feed covers it but is Pending"),
        "{}",
        p.message
    );
    let expired = [filing(
        "radar-feed",
        ExposedKind::Service,
        "radar",
        Some("2026-04-30T16:00:00Z"),
    )];
    let Verdict::Deny(p) = judge(
        "dept-weather",
        Some(&node_port()),
        &expired,
        ChannelMode::Enforce,
        now(),
    ) else {
        panic!("admitted after expiry");
    };
    assert!(p.message.contains("past its validUntil"), "{}", p.message);
}

#[test]
fn audit_mode_admits_with_a_warning_ch_1() {
    let Verdict::Warn(warning) = judge(
        "dept-weather",
        Some(&node_port()),
        &[],
        ChannelMode::Audit,
        now(),
    ) else {
        panic!("not a warning");
    };
    assert!(
        warning.starts_with("gongshu audit mode (CH-1)"),
        "{warning}"
    );
}

#[test]
fn objects_that_expose_nothing_are_admitted_in_every_mode() {
    assert_eq!(
        judge("ns", None, &[], ChannelMode::Enforce, now()),
        Verdict::Admit
    );
}

#[test]
fn the_report_counts_every_violation_and_lists_them_sorted_and_capped_ch_1() {
    let exposures: Vec<Exposure> = (0..120)
        .map(|i| {
            exposure(
                ExposedKind::Service,
                &format!("s{i:03}"),
                &json!({"type": "NodePort"}),
            )
            .unwrap()
        })
        .collect();
    let filings = [filing(
        "f",
        ExposedKind::Service,
        "s000",
        Some("2026-06-30T16:00:00Z"),
    )];
    let scanned = report(
        [NamespaceScan {
            namespace: "dept-b",
            exposures: exposures.iter().collect(),
            filings: &filings,
        }],
        now(),
    );
    assert_eq!(
        scanned.counts[&("dept-b".to_owned(), ExposedKind::Service)],
        119,
        "counts cover every violation"
    );
    let report = scanned.report;
    assert_eq!(report.violations, 119);
    assert_eq!(report.exempted, 1);
    assert_eq!(report.objects.len(), MAX_LISTED);
    assert_eq!(
        report.objects[0].name, "s001",
        "sorted, exempted s000 not listed"
    );
    let text = summary(&report);
    assert!(text.starts_with("119 objects"), "{text}");
    assert!(text.ends_with("and 114 more"), "{text}");
}

#[test]
fn a_clean_report_says_so() {
    let report = report(std::iter::empty(), now()).report;
    assert_eq!(report.violations, 0);
    assert!(summary(&report).starts_with("no object"));
}
