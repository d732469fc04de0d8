//! The one channel (CH-1) against the real apiserver and the operator: in department namespaces
//! the webhook denies every kind that exposes workloads outside the exchange, with the rule and
//! the way out; an approved `ChannelExemption` admits what it covers until it ends, and then
//! the covered objects are reported or, with `enforce: true`, removed; audit mode admits with a
//! warning; the scan in the `default` Regulation's status finds what admission never saw.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use gongshu_api::v1alpha1::{
    ChannelExemption, ExemptionPhase, ExposedKind, LABEL_DEPARTMENT, Regulation,
};
use gongshu_e2e::{
    harness::{TestEnv, random_suffix},
    observe,
};
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(45);

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .canonicalize()
        .unwrap()
}

/// `kubectl <verb> -f -` of `yaml`: whether it succeeded, and its stderr (warnings, denials).
fn kubectl_stdin(env: &TestEnv, verb: &str, yaml: &str) -> (bool, String) {
    let mut child = env
        .kubectl()
        .args([verb, "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), stderr)
}

fn kubectl(env: &TestEnv, args: &[&str]) -> (bool, String) {
    let out: std::process::Output = env.kubectl().args(args).output().expect("kubectl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn apply_example(env: &TestEnv, file: &str) -> (bool, String) {
    let path = examples().join("channels").join(file);
    kubectl(env, &["apply", "-f", &path.display().to_string()])
}

/// Retries `attempt` until it succeeds or `WAIT` passes: the webhook judges by caches that see
/// a just-approved exemption a moment later.
async fn eventually(what: &str, mut attempt: impl FnMut() -> (bool, String)) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (ok, text) = attempt();
        if ok {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: still failing after {WAIT:?}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn assert_denied(what: &str, (ok, text): (bool, String), parts: &[&str]) {
    assert!(!ok, "{what} was admitted:\n{text}");
    assert!(
        text.contains("admission webhook \"channels.gongshu.io\" denied the request"),
        "{what}: not the channel webhook's denial:\n{text}"
    );
    for part in parts {
        assert!(
            text.contains(part),
            "{what}: {part:?} missing from:\n{text}"
        );
    }
}

/// The `default` Regulation exists (the examples' Hebei regulation if no suite made one yet).
async fn ensure_regulation(env: &TestEnv) -> Api<Regulation> {
    let api: Api<Regulation> = Api::all(env.client.clone());
    if api.get_opt("default").await.unwrap().is_none() {
        let text = std::fs::read_to_string(examples().join("10-regulation.yaml")).unwrap();
        let regulation: Regulation = serde_yaml::from_str(&text).unwrap();
        match api.create(&PostParams::default(), &regulation).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => panic!("cannot create the default Regulation: {e}"),
        }
    }
    api
}

/// Waits until the scan in the `default` Regulation's status lists (or no longer lists) the
/// violation `namespace/kind/name`.
async fn wait_scan(
    env: &TestEnv,
    namespace: &str,
    kind: ExposedKind,
    name: &str,
    listed: bool,
) -> Regulation {
    let api = ensure_regulation(env).await;
    let (ns, name) = (namespace.to_owned(), name.to_owned());
    env.wait_for(api, "default", WAIT, move |r: Option<&Regulation>| {
        let report = r
            .and_then(|r| r.status.as_ref())
            .and_then(|s| s.channels.as_ref());
        report.is_some_and(|report| {
            let found = report
                .objects
                .iter()
                .any(|v| v.namespace == ns && v.kind == kind && v.name == name);
            found == listed
        })
    })
    .await
    .unwrap()
}

async fn wait_phase(
    env: &TestEnv,
    namespace: &str,
    name: &str,
    phase: ExemptionPhase,
) -> ChannelExemption {
    let api: Api<ChannelExemption> = Api::namespaced(env.client.clone(), namespace);
    env.wait_for(api, name, WAIT, move |e: Option<&ChannelExemption>| {
        e.and_then(|e| e.status.as_ref()).and_then(|s| s.phase) == Some(phase)
    })
    .await
    .unwrap()
}

/// Waits until an Event with `reason` about `name` exists: Events are published after the
/// status they describe is written.
async fn wait_event(env: &TestEnv, namespace: &str, name: &str, reason: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let events = observe::events_of(&env.client, namespace, name)
            .await
            .unwrap();
        if events.contains_key(reason) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {reason} Event about {namespace}/{name}: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn node_port(namespace: &str, name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
         spec: {{type: NodePort, selector: {{app: {name}}}, ports: [{{port: 80}}]}}\n"
    )
}

fn exemption(
    namespace: &str,
    name: &str,
    service: &str,
    valid_until: &str,
    enforce: bool,
) -> String {
    format!(
        "apiVersion: gongshu.io/v1alpha1\nkind: ChannelExemption\n\
         metadata: {{name: {name}, namespace: {namespace}}}\n\
         spec:\n  covers: [{{kind: Service, name: {service}}}]\n\
         \x20 justification: a provincial system that cannot call the exchange yet\n\
         \x20 legalBasis: authority approval e2e-1\n\
         \x20 validUntil: \"{valid_until}\"\n  enforce: {enforce}\n"
    )
}

async fn authority_decides(env: &TestEnv, namespace: &str, name: &str, decision: &str) {
    let reason = if decision == "approve" {
        ""
    } else {
        "the separate channel is no longer justified"
    };
    env.review(
        TestEnv::AUTHORITY_NAMESPACE,
        &format!("{decision}-{name}-{}", random_suffix()),
        json!({"kind": "ChannelExemption", "namespace": namespace, "name": name}),
        decision,
        reason,
    )
    .await
    .unwrap();
}

/// The operator's admin address, when the suite runs under `cargo xtask test`.
fn admin_addr() -> Option<String> {
    let log = std::env::var_os("GONGSHU_E2E_OPERATOR_LOG")?;
    observe::admin_addr(Path::new(&log)).ok()
}

#[tokio::test]
async fn every_exposing_kind_is_denied_naming_ch_1_and_ordinary_objects_pass() {
    let env = TestEnv::connect().await.expect("control plane");
    let (ns, _) = env.department("channels-deny").await.unwrap();
    let parent = "parentRefs: [{name: public, namespace: infra}]";
    let denied = [
        ("NodePort", node_port(&ns, "np"), "Service np type NodePort"),
        (
            "LoadBalancer",
            format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: lb, namespace: {ns}}}\nspec: {{type: LoadBalancer, ports: [{{port: 443}}]}}\n"
            ),
            "Service lb type LoadBalancer",
        ),
        (
            "externalIPs",
            format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: ext, namespace: {ns}}}\nspec: {{externalIPs: [192.0.2.10], ports: [{{port: 443}}]}}\n"
            ),
            "Service ext externalIPs",
        ),
        (
            "Ingress",
            format!(
                "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: web, namespace: {ns}}}\nspec: {{defaultBackend: {{service: {{name: web, port: {{number: 80}}}}}}}}\n"
            ),
            "Ingress web an Ingress",
        ),
        (
            "HTTPRoute v1",
            format!(
                "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: http, namespace: {ns}}}\nspec: {{{parent}}}\n"
            ),
            "HTTPRoute http attached to Gateway infra/public",
        ),
        (
            "GRPCRoute v1",
            format!(
                "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {{name: grpc, namespace: {ns}}}\nspec: {{{parent}}}\n"
            ),
            "GRPCRoute grpc attached",
        ),
        (
            "TCPRoute v1alpha2",
            format!(
                "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\nmetadata: {{name: tcp, namespace: {ns}}}\nspec: {{{parent}, rules: [{{backendRefs: [{{name: db, port: 5432}}]}}]}}\n"
            ),
            "TCPRoute tcp attached",
        ),
        (
            "TLSRoute v1",
            format!(
                "apiVersion: gateway.networking.k8s.io/v1\nkind: TLSRoute\nmetadata: {{name: tls, namespace: {ns}}}\nspec: {{{parent}, hostnames: [data.example], rules: [{{backendRefs: [{{name: web, port: 443}}]}}]}}\n"
            ),
            "TLSRoute tls attached",
        ),
        (
            "UDPRoute v1alpha2",
            format!(
                "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: UDPRoute\nmetadata: {{name: udp, namespace: {ns}}}\nspec: {{{parent}, rules: [{{backendRefs: [{{name: dns, port: 53}}]}}]}}\n"
            ),
            "UDPRoute udp attached",
        ),
        (
            "ReferenceGrant",
            format!(
                "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {{name: from-infra, namespace: {ns}}}\nspec: {{from: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: infra}}], to: [{{group: \"\", kind: Service}}]}}\n"
            ),
            "ReferenceGrant from-infra lets routes in other namespaces reach Services here",
        ),
    ];
    for (what, yaml, how) in &denied {
        assert_denied(
            what,
            kubectl_stdin(&env, "create", yaml),
            &[
                how,
                "(CH-1)",
                "ShareGrant",
                &format!("file a ChannelExemption in {ns}"),
            ],
        );
    }
    let admitted = [
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: internal, namespace: {ns}}}\nspec: {{ports: [{{port: 80}}]}}\n"
        ),
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: detached, namespace: {ns}}}\nspec: {{hostnames: [data.example]}}\n"
        ),
        format!(
            "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {{name: certs, namespace: {ns}}}\nspec: {{from: [{{group: gateway.networking.k8s.io, kind: Gateway, namespace: infra}}], to: [{{group: \"\", kind: Secret}}]}}\n"
        ),
    ];
    for yaml in &admitted {
        let (ok, text) = kubectl_stdin(&env, "create", yaml);
        assert!(ok, "an object that exposes nothing was denied:\n{text}");
        assert!(!text.contains("Warning"), "no warning for it:\n{text}");
    }
    // Turning the internal Service into a NodePort is an exposure too.
    assert_denied(
        "update to NodePort",
        kubectl(
            &env,
            &[
                "patch",
                "service",
                "internal",
                "-n",
                &ns,
                "-p",
                r#"{"spec":{"type":"NodePort"}}"#,
            ],
        ),
        &["Service internal type NodePort"],
    );
    // Outside department namespaces the channel rules do not apply.
    let plain = env.namespace("channels-plain", &[]).await.unwrap();
    let (ok, text) = kubectl_stdin(&env, "create", &node_port(&plain, "np"));
    assert!(
        ok,
        "a NodePort outside department namespaces was denied:\n{text}"
    );

    if let Some(addr) = admin_addr() {
        let text = observe::scrape(&addr).await.unwrap();
        let denials =
            observe::metric_sum(&text, "gongshu_webhook_denials_total", &[("rule", "CH-1")])
                .unwrap_or(0.0);
        assert!(denials >= 11.0, "CH-1 denials counted: {denials}");
    }
}

#[tokio::test]
async fn the_channel_examples_run_denied_filed_approved_admitted_audited_ch_1() {
    let env = TestEnv::connect().await.expect("control plane");
    let (ok, text) = kubectl(
        &env,
        &[
            "apply",
            "-f",
            &examples().join("00-namespaces.yaml").display().to_string(),
        ],
    );
    assert!(ok, "{text}");
    // Leftovers of an earlier run on the same cluster.
    for args in [
        [
            "delete",
            "service",
            "credit-portal",
            "-n",
            "dept-market-regulation",
            "--ignore-not-found",
        ],
        [
            "delete",
            "channelexemption",
            "credit-portal",
            "-n",
            "dept-market-regulation",
            "--ignore-not-found",
        ],
        [
            "delete",
            "review",
            "approve-credit-portal-channel",
            "-n",
            "gongshu-system",
            "--ignore-not-found",
        ],
    ] {
        let (ok, text) = kubectl(&env, &args);
        assert!(ok, "{text}");
    }

    assert_denied(
        "01-service.yaml before any filing",
        apply_example(&env, "01-service.yaml"),
        &[
            "Service credit-portal type NodePort",
            "(CH-1)",
            "ChannelExemption in dept-market-regulation",
        ],
    );
    let (ok, text) = apply_example(&env, "02-exemption.yaml");
    assert!(ok, "{text}");
    wait_phase(
        &env,
        "dept-market-regulation",
        "credit-portal",
        ExemptionPhase::Pending,
    )
    .await;
    assert_denied(
        "01-service.yaml while the filing is pending",
        apply_example(&env, "01-service.yaml"),
        &["ChannelExemption credit-portal covers it but is Pending"],
    );
    let (ok, text) = apply_example(&env, "03-authority-review.yaml");
    assert!(ok, "{text}");
    let approved = wait_phase(
        &env,
        "dept-market-regulation",
        "credit-portal",
        ExemptionPhase::Approved,
    )
    .await;
    assert_eq!(
        approved.status.unwrap().decision.unwrap().by,
        "gongshu-system/approve-credit-portal-channel"
    );
    let text = eventually("01-service.yaml once approved", || {
        apply_example(&env, "01-service.yaml")
    })
    .await;
    assert!(
        text.contains("Warning: admitted under ChannelExemption credit-portal (CH-1)"),
        "{text}"
    );

    let text = eventually("04-audit-mode.yaml", || {
        apply_example(&env, "04-audit-mode.yaml")
    })
    .await;
    assert!(
        text.contains(
            "Warning: gongshu audit mode (CH-1): Service statistics-dashboard type LoadBalancer"
        ),
        "{text}"
    );
    let regulation = wait_scan(
        &env,
        "dept-statistics",
        ExposedKind::Service,
        "statistics-dashboard",
        true,
    )
    .await;
    let status = regulation.status.unwrap();
    let report = status.channels.unwrap();
    assert!(
        !report.objects.iter().any(|v| v.name == "credit-portal"),
        "the exempted Service is not a violation: {report:?}"
    );
    assert!(report.exempted >= 1, "{report:?}");
    let condition = status
        .common
        .conditions
        .iter()
        .find(|c| c.type_ == "ChannelViolations")
        .unwrap();
    assert_eq!(condition.status, "True");
    assert!(
        condition
            .message
            .contains("dept-statistics/Service statistics-dashboard (type LoadBalancer)"),
        "{}",
        condition.message
    );
    wait_event(
        &env,
        "dept-statistics",
        "statistics-dashboard",
        "ParallelChannel",
    )
    .await;
    if let Some(addr) = admin_addr() {
        let text = observe::scrape(&addr).await.unwrap();
        let gauge = observe::metric_sum(
            &text,
            "gongshu_channel_violations",
            &[("department", "statistics"), ("kind", "Service")],
        );
        assert_eq!(
            gauge,
            Some(1.0),
            "gongshu_channel_violations for the audited Service"
        );
    }
    // Tidy the shared cluster: the audit namespace would stay a violation for later suites.
    let (ok, text) = kubectl(
        &env,
        &["delete", "namespace", "dept-statistics", "--wait=false"],
    );
    assert!(ok, "{text}");
}

#[tokio::test]
async fn objects_made_before_a_namespace_became_a_department_are_found_by_the_scan_ch_1() {
    let env = TestEnv::connect().await.expect("control plane");
    let ns = env.namespace("channels-before", &[]).await.unwrap();
    let (ok, text) = kubectl_stdin(&env, "create", &node_port(&ns, "legacy"));
    assert!(ok, "{text}");
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    let code = format!("legacy-{}", random_suffix());
    namespaces
        .patch(
            &ns,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {LABEL_DEPARTMENT: code}}})),
        )
        .await
        .unwrap();
    let services: Api<Service> = Api::namespaced(env.client.clone(), &ns);
    wait_scan(&env, &ns, ExposedKind::Service, "legacy", true).await;
    services
        .delete("legacy", &Default::default())
        .await
        .unwrap();
    wait_scan(&env, &ns, ExposedKind::Service, "legacy", false).await;
}

#[tokio::test]
async fn a_revoked_exemption_reports_what_it_covered_and_the_webhook_denies_it_again_ch_1() {
    let env = TestEnv::connect().await.expect("control plane");
    let (ns, _) = env.department("channels-revoke").await.unwrap();
    let (ok, text) = kubectl_stdin(
        &env,
        "create",
        &exemption(&ns, "feed", "feed", "2030-01-01T00:00:00Z", false),
    );
    assert!(ok, "{text}");
    authority_decides(&env, &ns, "feed", "approve").await;
    wait_phase(&env, &ns, "feed", ExemptionPhase::Approved).await;
    eventually("the covered Service", || {
        kubectl_stdin(&env, "create", &node_port(&ns, "feed"))
    })
    .await;
    // A Service the filing does not cover is still denied.
    assert_denied(
        "an uncovered Service",
        kubectl_stdin(&env, "create", &node_port(&ns, "other")),
        &["Service other type NodePort"],
    );

    authority_decides(&env, &ns, "feed", "revoke").await;
    let revoked = wait_phase(&env, &ns, "feed", ExemptionPhase::Revoked).await;
    let status = revoked.status.unwrap();
    assert_eq!(status.left_over.len(), 1, "{status:?}");
    assert_eq!(status.left_over[0].name, "feed");
    wait_event(&env, &ns, "feed", "ChannelLeftOver").await;
    wait_scan(&env, &ns, ExposedKind::Service, "feed", true).await;
    // Each attempt changes the spec (an unchanged spec is always admitted); the webhook's cache
    // may not have seen the revocation at the first.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut attempt = 0;
    let edit = loop {
        attempt += 1;
        let affinity = if attempt % 2 == 1 { "ClientIP" } else { "None" };
        let patch = format!(r#"{{"spec":{{"sessionAffinity":"{affinity}"}}}}"#);
        let edit = kubectl(&env, &["patch", "service", "feed", "-n", &ns, "-p", &patch]);
        if !edit.0 || tokio::time::Instant::now() >= deadline {
            break edit;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_denied(
        "editing the left-over Service",
        edit,
        &["ChannelExemption feed covers it but is Revoked"],
    );
}

#[tokio::test]
async fn with_enforce_an_expired_exemption_removes_what_it_covered_ch_1() {
    let env = TestEnv::connect().await.expect("control plane");
    let (ns, _) = env.department("channels-enforce").await.unwrap();
    let until = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(20);
    let (ok, text) = kubectl_stdin(
        &env,
        "create",
        &exemption(&ns, "drill", "drill", &until.to_string(), true),
    );
    assert!(ok, "{text}");
    authority_decides(&env, &ns, "drill", "approve").await;
    wait_phase(&env, &ns, "drill", ExemptionPhase::Approved).await;
    eventually("the covered Service", || {
        kubectl_stdin(&env, "create", &node_port(&ns, "drill"))
    })
    .await;
    let expired = wait_phase(&env, &ns, "drill", ExemptionPhase::Expired).await;
    let status = expired.status.unwrap();
    assert_eq!(status.removed.len(), 1, "{status:?}");
    assert!(status.left_over.is_empty());
    let services: Api<Service> = Api::namespaced(env.client.clone(), &ns);
    let deadline = tokio::time::Instant::now() + WAIT;
    while services.get_opt("drill").await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the covered Service was not deleted"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    wait_event(&env, &ns, "drill", "ChannelRemoved").await;
}

#[tokio::test]
async fn a_channel_exemption_is_filed_only_by_a_department() {
    let env = TestEnv::connect().await.expect("control plane");
    let plain = env.namespace("channels-nondept", &[]).await.unwrap();
    let (ok, text) = kubectl_stdin(
        &env,
        "create",
        &exemption(&plain, "x", "x", "2030-01-01T00:00:00Z", false),
    );
    assert!(!ok, "admitted:\n{text}");
    assert!(text.contains("is not a department"), "{text}");
}

#[tokio::test]
async fn the_webhook_configuration_keeps_system_namespaces_and_cluster_ip_services_out() {
    use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
    let env = TestEnv::connect().await.expect("control plane");
    let api: Api<ValidatingWebhookConfiguration> = Api::all(env.client.clone());
    let config = api.get("gongshu").await.unwrap();
    let webhooks = config.webhooks.unwrap();
    let by_name = |n: &str| webhooks.iter().find(|w| w.name == n).unwrap().clone();
    let kinds = by_name("validate.gongshu.io");
    let selector = serde_json::to_value(&kinds.namespace_selector).unwrap();
    assert_eq!(selector["matchExpressions"][0]["operator"], "NotIn");
    assert!(selector.to_string().contains("kube-system"));
    let channels = by_name("channels.gongshu.io");
    assert_eq!(channels.failure_policy.as_deref(), Some("Fail"));
    let selector = serde_json::to_value(&channels.namespace_selector).unwrap();
    assert_eq!(selector["matchExpressions"][0]["key"], LABEL_DEPARTMENT);
    assert_eq!(selector["matchExpressions"][0]["operator"], "Exists");
    assert_eq!(
        channels.match_conditions.unwrap()[0].name,
        "exposing-services-only"
    );
    // The exchange is exempt by construction: its namespace is not a department's.
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    if let Some(authority) = namespaces
        .get_opt(TestEnv::AUTHORITY_NAMESPACE)
        .await
        .unwrap()
    {
        assert!(
            !authority
                .metadata
                .labels
                .unwrap_or_default()
                .contains_key(LABEL_DEPARTMENT)
        );
    }
}

#[tokio::test]
async fn with_enforce_a_withdrawn_exemption_takes_what_it_covered_with_it_ch_1() {
    let env = TestEnv::connect().await.expect("control plane");
    let (ns, _) = env.department("channels-withdraw").await.unwrap();
    let (ok, text) = kubectl_stdin(
        &env,
        "create",
        &exemption(&ns, "mirror", "mirror", "2030-01-01T00:00:00Z", true),
    );
    assert!(ok, "{text}");
    authority_decides(&env, &ns, "mirror", "approve").await;
    let approved = wait_phase(&env, &ns, "mirror", ExemptionPhase::Approved).await;
    assert!(
        approved
            .metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"gongshu.io/channel-exemption".to_owned()),
        "a filing with enforce holds its deletion"
    );
    eventually("the covered Service", || {
        kubectl_stdin(&env, "create", &node_port(&ns, "mirror"))
    })
    .await;
    let (ok, text) = kubectl(
        &env,
        &[
            "delete",
            "channelexemption",
            "mirror",
            "-n",
            &ns,
            "--wait=true",
            "--timeout=45s",
        ],
    );
    assert!(ok, "the deletion completed:\n{text}");
    let services: Api<Service> = Api::namespaced(env.client.clone(), &ns);
    assert!(
        services.get_opt("mirror").await.unwrap().is_none(),
        "the covered Service went with the withdrawn exemption"
    );
}
