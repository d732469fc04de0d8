//! The webhook's own certificates (`--webhook-cert-secret`) on a control plane of the test's
//! own: with a 30-second serving certificate (a 90-second CA) the operator renews the
//! certificate several times and the CA once while admission keeps answering without one TLS
//! failure, and two replicas share one Secret.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{collections::BTreeSet, time::Duration};

use gongshu_e2e::{
    cluster::{OwnCluster, operator_binary},
    observe,
    operator::WEBHOOK_SECRET,
};
use k8s_openapi::api::{
    admissionregistration::v1::ValidatingWebhookConfiguration, core::v1::Secret,
};
use kube::{
    Api,
    api::{DynamicObject, PostParams},
    core::{ApiResource, GroupVersionKind},
};

const WAIT: Duration = Duration::from_secs(60);
/// Long enough for the CA (three serving lifetimes of 30 s) to reach its renewal (with one
/// lifetime left, at 60 s) and for the serving certificate to move to the new CA.
const WATCH_FOR: Duration = Duration::from_secs(100);

fn text(secret: &Secret, key: &str) -> String {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn managed_certificates_rotate_while_admission_keeps_answering() {
    let mut c = OwnCluster::start("webhook-certs")
        .await
        .expect("control plane");
    let binary = operator_binary("debug").unwrap();
    let env = [
        ("GONGSHU_WEBHOOK_CERT_VALIDITY_SECONDS", "30"),
        ("GONGSHU_LEASE_DURATION_SECONDS", "4"),
    ];
    let (_, log_a) = c.start_operator(&binary, "operator-a", &env).await.unwrap();
    observe::wait_log(&log_a, &["registered the admission webhook"], WAIT)
        .await
        .unwrap();
    let (_, log_b) = c.start_operator(&binary, "operator-b", &env).await.unwrap();
    observe::wait_log(&log_b, &["registered the admission webhook"], WAIT)
        .await
        .unwrap();
    let (ns, _) = c.env.department("certs").await.unwrap();

    // A NodePort Service, dry-run: the channel webhook must answer (deny, CH-1) every time.
    let gvk = GroupVersionKind::gvk("", "v1", "Service");
    let services: Api<DynamicObject> = Api::namespaced_with(
        c.env.client.clone(),
        &ns,
        &ApiResource::from_gvk_with_plural(&gvk, "services"),
    );
    let probe: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "probe"},
        "spec": {"type": "NodePort", "ports": [{"port": 80}]},
    }))
    .unwrap();
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let secrets: Api<Secret> = Api::namespaced(c.env.client.clone(), "gongshu-system");
    let configurations: Api<ValidatingWebhookConfiguration> = Api::all(c.env.client.clone());
    let (mut certs, mut cas) = (BTreeSet::new(), BTreeSet::new());
    let (mut answered, mut failures) = (0, Vec::new());
    let started = tokio::time::Instant::now();
    while started.elapsed() < WATCH_FOR {
        match services.create(&dry, &probe).await {
            Err(kube::Error::Api(e))
                if e.message
                    .contains("channels.gongshu.io\" denied the request") =>
            {
                answered += 1;
            }
            other => failures.push(format!("{:?}: {other:?}", started.elapsed())),
        }
        let secret = secrets.get(WEBHOOK_SECRET).await.unwrap();
        certs.insert(text(&secret, "tls.crt"));
        let ca = text(&secret, "ca.crt");
        cas.insert(ca.clone());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        failures.is_empty(),
        "admission failed {} times of {}: {failures:#?}",
        failures.len(),
        answered + failures.len()
    );
    assert!(answered > 100, "probed {answered} times");
    assert!(
        certs.len() >= 3,
        "the serving certificate was renewed: {} seen",
        certs.len()
    );
    assert!(cas.len() >= 2, "the CA was renewed: {} seen", cas.len());
    // The apiserver trusts the current CA; both replicas serve what the Secret holds.
    let secret = secrets.get(WEBHOOK_SECRET).await.unwrap();
    let bundle = configurations
        .get("gongshu")
        .await
        .unwrap()
        .webhooks
        .unwrap()[0]
        .client_config
        .ca_bundle
        .clone()
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .unwrap_or_default();
    assert!(
        bundle.contains(text(&secret, "ca.crt").trim()),
        "the published bundle has the current CA"
    );
    for log in [&log_a, &log_b] {
        let text = std::fs::read_to_string(log).unwrap();
        assert!(
            text.contains("serving the renewed webhook certificate"),
            "{} reloaded:\n{}",
            log.display(),
            gongshu_e2e::process::tail(log, 20)
        );
    }
}
