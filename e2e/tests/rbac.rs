//! The operator's RBAC (`deploy/rbac.yaml`) is least privilege: it may do what its controllers
//! do, and nothing that touches department data or workloads (SEC-2). The e2e suite also runs
//! the operator under exactly these rights, so a missing permission fails the other suites.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use gongshu_e2e::harness::TestEnv;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::{Api, api::PostParams};

const OPERATOR: &str = "system:serviceaccount:gongshu-system:gongshu-operator";
const EXCHANGE: &str = "system:serviceaccount:gongshu-system:gongshu-exchange";

async fn allowed(
    env: &TestEnv,
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
            groups: Some(vec![
                "system:serviceaccounts".into(),
                "system:serviceaccounts:gongshu-system".into(),
            ]),
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
    Api::<SubjectAccessReview>::all(env.client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("access review")
        .status
        .expect("status")
        .allowed
}

async fn apply_rbac(env: &TestEnv) {
    let rbac = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/rbac.yaml");
    let out = env
        .kubectl()
        .args(["apply", "-f"])
        .arg(&rbac)
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

type Access<'a> = (&'a str, &'a str, &'a str, Option<&'a str>);

/// Every `may` allowed and every `may_not` denied for `user`, else the list of mismatches.
async fn check(env: &TestEnv, user: &str, may: &[Access<'_>], may_not: &[Access<'_>]) {
    let mut wrong = Vec::new();
    for &(verb, group, resource, ns) in may {
        if !allowed(env, user, verb, group, resource, ns, None).await {
            wrong.push(format!(
                "denied but needed: {verb} {group}/{resource} in {ns:?}"
            ));
        }
    }
    for &(verb, group, resource, ns) in may_not {
        if allowed(env, user, verb, group, resource, ns, None).await {
            wrong.push(format!(
                "allowed but not needed: {verb} {group}/{resource} in {ns:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{user}:\n{}", wrong.join("\n"));
}

/// The exchange reads grants, catalogs, namespaces' labels and the Secrets catalogs name (get
/// only), reviews tokens, writes usage and its own audit checkpoint; it cannot list Secrets,
/// change grants or namespaces or touch workloads (SEC-2).
#[tokio::test]
async fn the_exchange_may_serve_grants_and_nothing_more() {
    let env = TestEnv::connect().await.expect("control plane");
    apply_rbac(&env).await;
    let may = [
        ("create", "authentication.k8s.io", "tokenreviews", None),
        ("watch", "gongshu.io", "sharegrants", None),
        ("watch", "gongshu.io", "datacatalogs", None),
        ("patch", "gongshu.io", "sharegrants/status", Some("dept-a")),
        ("patch", "gongshu.io", "sharegrants", Some("dept-a")),
        ("get", "", "secrets", Some("dept-a")),
        ("update", "", "configmaps", Some("gongshu-system")),
        // Department codes for its metrics' `department` label.
        ("watch", "", "namespaces", None),
    ];
    let may_not = [
        ("list", "", "secrets", None),
        ("patch", "", "namespaces", None),
        ("watch", "", "secrets", Some("dept-a")),
        ("update", "", "configmaps", Some("dept-a")),
        ("delete", "gongshu.io", "sharegrants", Some("dept-a")),
        ("patch", "gongshu.io", "datacatalogs/status", Some("dept-a")),
        ("create", "gongshu.io", "reviews", Some("dept-a")),
        ("create", "", "pods", Some("dept-a")),
        (
            "create",
            "coordination.k8s.io",
            "leases",
            Some("gongshu-system"),
        ),
    ];
    check(&env, EXCHANGE, &may, &may_not).await;
}

#[tokio::test]
async fn the_operator_may_do_what_its_controllers_do_and_nothing_more() {
    let env = TestEnv::connect().await.expect("control plane");
    apply_rbac(&env).await;

    let may = [
        ("watch", "gongshu.io", "datacatalogs", None),
        ("patch", "gongshu.io", "datacatalogs/status", Some("dept-a")),
        ("patch", "gongshu.io", "sharegrants/status", Some("dept-a")),
        ("patch", "gongshu.io", "regulations/status", None),
        ("list", "", "namespaces", None),
        ("create", "events.k8s.io", "events", Some("dept-a")),
        (
            "create",
            "coordination.k8s.io",
            "leases",
            Some("gongshu-system"),
        ),
    ];
    let may_not = [
        ("get", "", "secrets", Some("dept-a")),
        ("list", "", "secrets", None),
        ("list", "", "configmaps", Some("dept-a")),
        ("create", "", "pods", Some("dept-a")),
        ("create", "apps", "deployments", Some("dept-a")),
        ("create", "apps", "statefulsets", Some("dept-a")),
        // Unnamed: only the objects named gongshu-exchange.
        ("create", "apps", "statefulsets", Some("gongshu-system")),
        ("patch", "apps", "statefulsets", Some("gongshu-system")),
        ("delete", "apps", "statefulsets", Some("gongshu-system")),
        ("patch", "", "services", Some("gongshu-system")),
        ("patch", "gongshu.io", "datacatalogs", Some("dept-a")),
        ("patch", "gongshu.io", "sharegrants", Some("dept-a")),
        ("delete", "gongshu.io", "sharegrants", Some("dept-a")),
        ("create", "gongshu.io", "reviews", Some("gongshu-system")),
        ("create", "coordination.k8s.io", "leases", Some("dept-a")),
        ("patch", "", "namespaces", None),
    ];
    check(&env, OPERATOR, &may, &may_not).await;
}

/// With `--exchange-image` the operator server-side-applies the exchange's objects: it may get,
/// create and patch the objects named `gongshu-exchange` in its own namespace, and no other
/// object of those kinds, nowhere else, and it may not delete them. Not NetworkPolicies, which
/// it keeps in every department namespace (the next test), nor reading and deleting Services,
/// which it does everywhere for the exemptions that cover them (CH-1, `enforce: true`).
#[tokio::test]
async fn the_operator_may_deploy_the_exchange_in_its_namespace_only() {
    let env = TestEnv::connect().await.expect("control plane");
    apply_rbac(&env).await;
    let all: &[&str] = &["get", "create", "patch"];
    let kinds = [
        ("apps", "statefulsets", all),
        ("", "services", &["create", "patch"][..]),
        ("policy", "poddisruptionbudgets", all),
    ];
    let mut wrong = Vec::new();
    for (group, resource, verbs) in kinds {
        for &verb in verbs {
            let at =
                |ns, name| allowed(&env, OPERATOR, verb, group, resource, Some(ns), Some(name));
            if !at("gongshu-system", "gongshu-exchange").await {
                wrong.push(format!(
                    "denied but needed: {verb} {group}/{resource} gongshu-exchange"
                ));
            }
            if at("gongshu-system", "other").await {
                wrong.push(format!(
                    "allowed: {verb} {group}/{resource} other in gongshu-system"
                ));
            }
            if at("dept-a", "gongshu-exchange").await {
                wrong.push(format!("allowed: {verb} {group}/{resource} in dept-a"));
            }
        }
        let delete = allowed(
            &env,
            OPERATOR,
            "delete",
            group,
            resource,
            Some("gongshu-system"),
            Some("gongshu-exchange"),
        );
        if resource != "services" && delete.await {
            wrong.push(format!(
                "allowed: delete {group}/{resource} gongshu-exchange"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Backup runs as Jobs (SEC-1): the operator creates, watches and deletes Jobs in the
/// policies' namespaces, and keeps there only the ServiceAccount, Role and RoleBinding named
/// `gongshu-backup`; `escalate` and `bind` (needed to grant the runner the Secrets the operator
/// may not read) hold for that Role name alone, never for ClusterRoles or other Roles.
#[tokio::test]
async fn the_operator_may_run_backup_jobs_and_keep_only_the_backup_accounts_rbac() {
    let env = TestEnv::connect().await.expect("control plane");
    apply_rbac(&env).await;
    let rbac = "rbac.authorization.k8s.io";
    let may: &[(&str, &str, &str, Option<&str>)] = &[
        ("create", "batch", "jobs", None),
        ("watch", "batch", "jobs", None),
        ("delete", "batch", "jobs", None),
        ("create", "", "serviceaccounts", Some("gongshu-backup")),
        ("patch", "", "serviceaccounts", Some("gongshu-backup")),
        ("create", rbac, "roles", Some("gongshu-backup")),
        ("patch", rbac, "roles", Some("gongshu-backup")),
        ("escalate", rbac, "roles", Some("gongshu-backup")),
        ("bind", rbac, "roles", Some("gongshu-backup")),
        ("create", rbac, "rolebindings", Some("gongshu-backup")),
        ("patch", rbac, "rolebindings", Some("gongshu-backup")),
    ];
    let may_not: &[(&str, &str, &str, Option<&str>)] = &[
        ("patch", "batch", "jobs", None),
        ("create", "", "serviceaccounts", Some("other")),
        ("create", "", "serviceaccounts", None),
        ("delete", "", "serviceaccounts", Some("gongshu-backup")),
        (
            "create",
            "",
            "serviceaccounts/token",
            Some("gongshu-backup"),
        ),
        ("create", rbac, "roles", Some("admin")),
        ("escalate", rbac, "roles", Some("other")),
        ("bind", rbac, "roles", Some("other")),
        ("bind", rbac, "clusterroles", Some("cluster-admin")),
        ("escalate", rbac, "clusterroles", Some("gongshu-backup")),
        ("create", rbac, "rolebindings", Some("other")),
        ("delete", rbac, "roles", Some("gongshu-backup")),
        ("get", "", "secrets", Some("offsite-s3")),
    ];
    let mut wrong = Vec::new();
    for &(verb, group, resource, name) in may {
        if !allowed(&env, OPERATOR, verb, group, resource, Some("dept-a"), name).await {
            wrong.push(format!(
                "denied but needed: {verb} {group}/{resource} {name:?}"
            ));
        }
    }
    for &(verb, group, resource, name) in may_not {
        if allowed(&env, OPERATOR, verb, group, resource, Some("dept-a"), name).await {
            wrong.push(format!(
                "allowed but not needed: {verb} {group}/{resource} {name:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Network isolation (CH-1): the operator keeps NetworkPolicies in every department namespace
/// (server-side apply: create, then patch; delete when no longer wanted), watches them and the
/// exemptions cluster-wide, and reads the Services exemptions cover. It may not change
/// Services, nor replace or mass-delete policies.
#[tokio::test]
async fn the_operator_may_keep_network_policies_in_department_namespaces() {
    let env = TestEnv::connect().await.expect("control plane");
    apply_rbac(&env).await;
    let policies = "networkpolicies";
    let may = [
        ("watch", "networking.k8s.io", policies, None),
        ("get", "networking.k8s.io", policies, Some("dept-a")),
        ("create", "networking.k8s.io", policies, Some("dept-a")),
        ("patch", "networking.k8s.io", policies, Some("dept-b")),
        ("delete", "networking.k8s.io", policies, Some("dept-b")),
        ("watch", "", "services", None),
        ("get", "", "services", Some("dept-a")),
        ("watch", "gongshu.io", "channelexemptions", None),
        // A ChannelExemption that ends with `enforce: true` removes what it covered (CH-1).
        ("delete", "", "services", Some("dept-a")),
        ("delete", "networking.k8s.io", "ingresses", Some("dept-a")),
        (
            "delete",
            "gateway.networking.k8s.io",
            "httproutes",
            Some("dept-a"),
        ),
        // Its own webhook certificate, in its own namespace only.
        ("create", "", "secrets", Some("gongshu-system")),
    ];
    let may_not = [
        ("update", "networking.k8s.io", policies, Some("dept-a")),
        (
            "deletecollection",
            "networking.k8s.io",
            policies,
            Some("dept-a"),
        ),
        ("create", "", "services", Some("dept-a")),
        ("patch", "", "services", Some("dept-a")),
        ("create", "networking.k8s.io", "ingresses", Some("dept-a")),
        ("create", "", "secrets", Some("dept-a")),
        ("get", "", "endpoints", Some("dept-a")),
        ("list", "", "pods", Some("dept-a")),
    ];
    check(&env, OPERATOR, &may, &may_not).await;
}
