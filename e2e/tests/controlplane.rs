//! The harness itself: a fresh control plane comes up with TLS, RBAC and ServiceAccount
//! tokens, and stopping it leaves no process behind.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use gongshu_e2e::{
    controlplane::{ControlPlane, DEFAULT_READY_TIMEOUT},
    process::alive,
    upstream,
};
use k8s_openapi::api::{
    authentication::v1::{TokenRequest, TokenRequestSpec, TokenReview, TokenReviewSpec},
    authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec},
    core::v1::ServiceAccount,
};
use kube::{Api, api::PostParams};

#[tokio::test]
async fn a_fresh_control_plane_serves_rbac_and_service_account_tokens_then_stops_cleanly() {
    let bins = upstream::binaries();
    assert!(
        bins.kube_apiserver.exists(),
        "upstream binaries missing: run `cargo xtask upstream`"
    );
    let dir = std::env::temp_dir().join(format!(
        "gongshu-cp-{}",
        gongshu_e2e::harness::random_suffix()
    ));
    let plane = ControlPlane::start(&dir, &bins, DEFAULT_READY_TIMEOUT)
        .await
        .expect("control plane starts");
    let client = plane.client().await.expect("admin client");

    let version = client.apiserver_version().await.expect("version");
    assert_eq!(
        version.git_version,
        upstream::KUBERNETES_VERSION,
        "the apiserver reports the pinned release"
    );

    // A token for the exchange's audience is issued and reviewed (DESIGN.md: the exchange
    // authenticates callers with TokenReview).
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec!["gongshu-exchange".into()],
            ..Default::default()
        },
        ..Default::default()
    };
    let token = sas
        .create_subresource::<TokenRequest, TokenRequest>(
            "token",
            "default",
            &PostParams::default(),
            &request,
        )
        .await
        .expect("token request")
        .status
        .expect("token status")
        .token;
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: Some(token),
            audiences: Some(vec!["gongshu-exchange".into()]),
        },
        ..Default::default()
    };
    let reviewed = Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("token review");
    let status = reviewed.status.expect("review status");
    assert_eq!(
        status.authenticated,
        Some(true),
        "token authenticated: {status:?}"
    );
    assert_eq!(
        status.user.and_then(|u| u.username).as_deref(),
        Some("system:serviceaccount:default:default")
    );

    // RBAC is on: a ServiceAccount with no bindings may not list secrets.
    let sar = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some("system:serviceaccount:default:default".into()),
            resource_attributes: Some(ResourceAttributes {
                verb: Some("list".into()),
                resource: Some("secrets".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let decided = Api::<SubjectAccessReview>::all(client)
        .create(&PostParams::default(), &sar)
        .await
        .expect("access review");
    assert!(
        !decided.status.expect("sar status").allowed,
        "RBAC must deny an unbound ServiceAccount"
    );

    let pids = plane.pids();
    assert_eq!(
        pids.len(),
        3,
        "etcd, kube-apiserver and kube-controller-manager run"
    );
    drop(plane);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let left: Vec<i32> = pids.into_iter().filter(|p| alive(*p)).collect();
    assert!(
        left.is_empty(),
        "processes left behind after stop: {left:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_failing_apiserver_stops_etcd_too_and_reports_its_log() {
    let mut bins = upstream::binaries();
    // An "apiserver" that fails at once, as a misconfigured one would.
    let fake = std::env::temp_dir().join(format!(
        "gongshu-fake-apiserver-{}",
        gongshu_e2e::harness::random_suffix()
    ));
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'E0000 run.go:72] \"command failed\" err=\"simulated\"' >&2\nexit 3\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    bins.kube_apiserver = fake.clone();
    let dir = std::env::temp_dir().join(format!(
        "gongshu-cp-{}",
        gongshu_e2e::harness::random_suffix()
    ));

    let err = ControlPlane::start(&dir, &bins, Duration::from_secs(30))
        .await
        .expect_err("start must fail");
    let msg = err.to_string();
    assert!(
        msg.contains("kube-apiserver exited") && msg.contains("simulated"),
        "error names the process and its log: {msg}"
    );
    let etcd_left = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| alive(*pid))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .unwrap_or_default()
                .contains(&dir.display().to_string())
        })
        .count();
    assert_eq!(
        etcd_left, 0,
        "no process of the failed control plane may be left running"
    );
    let _ = std::fs::remove_file(&fake);
    let _ = std::fs::remove_dir_all(&dir);
}
