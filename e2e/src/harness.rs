//! What an integration test needs: a client for the control plane `cargo xtask test` started
//! (its admin kubeconfig is in `GONGSHU_E2E_KUBECONFIG`), fresh namespaces, `kubectl`, and
//! waiting for a condition.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client, Resource,
    api::{ObjectMeta, PostParams},
    runtime::wait::{Condition, await_condition},
};
use serde::de::DeserializeOwned;

use crate::{Error, controlplane::client_for};

/// Environment variable carrying the admin kubeconfig of the control plane under test.
pub const KUBECONFIG_ENV: &str = "GONGSHU_E2E_KUBECONFIG";
/// Label put on every namespace a test creates.
pub const E2E_LABEL: &str = "gongshu.io/e2e";

/// A connection to the control plane under test.
#[derive(Clone)]
pub struct TestEnv {
    /// Admin client.
    pub client: Client,
    kubeconfig: PathBuf,
}

impl std::fmt::Debug for TestEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestEnv")
            .field("kubeconfig", &self.kubeconfig)
            .finish()
    }
}

impl TestEnv {
    /// Connects to the control plane named by `GONGSHU_E2E_KUBECONFIG`. Fails with a message
    /// saying how to run the suite when it is unset: e2e tests never pass without a cluster.
    pub async fn connect() -> Result<Self, Error> {
        let Some(path) = std::env::var_os(KUBECONFIG_ENV) else {
            return Err(Error::Harness(format!(
                "{KUBECONFIG_ENV} is not set: run the end-to-end suite with `cargo xtask test` \
                 (or `cargo xtask cluster up` and export {KUBECONFIG_ENV}=.gongshu/cluster/admin.kubeconfig)"
            )));
        };
        let kubeconfig = PathBuf::from(path);
        Ok(Self {
            client: client_for(&kubeconfig).await?,
            kubeconfig,
        })
    }

    /// A connection through `client`, whose admin kubeconfig is `kubeconfig`.
    pub fn new(client: Client, kubeconfig: PathBuf) -> Self {
        Self { client, kubeconfig }
    }

    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Creates a namespace named `<prefix>-<random>` with the e2e label and `labels`.
    pub async fn namespace(&self, prefix: &str, labels: &[(&str, &str)]) -> Result<String, Error> {
        let name = format!("{prefix}-{}", random_suffix());
        let mut all: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        all.insert(E2E_LABEL.into(), "true".into());
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(all),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
        Ok(name)
    }

    /// Creates a department namespace (`gongshu.io/department=<code>`, level `city`), the code
    /// made unique so tests do not collide.
    pub async fn department(&self, code: &str) -> Result<(String, String), Error> {
        let code = format!("{code}-{}", random_suffix());
        let ns = self
            .namespace(
                &code,
                &[
                    (gongshu_api::v1alpha1::LABEL_DEPARTMENT, &code),
                    (gongshu_api::v1alpha1::LABEL_LEVEL, "city"),
                ],
            )
            .await?;
        Ok((ns, code))
    }

    /// `kubectl` (from the upstream build) with this control plane's kubeconfig.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(crate::upstream::binaries().kubectl);
        cmd.env("KUBECONFIG", &self.kubeconfig);
        cmd
    }

    /// Waits until `cond` holds for the named object, or fails after `timeout`.
    pub async fn wait_for<K>(
        &self,
        api: Api<K>,
        name: &str,
        timeout: Duration,
        cond: impl Condition<K>,
    ) -> Result<K, Error>
    where
        K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    {
        match tokio::time::timeout(timeout, await_condition(api.clone(), name, cond)).await {
            Ok(Ok(Some(obj))) => Ok(obj),
            Ok(Ok(None)) => Err(Error::Harness(format!("{name} was deleted while waiting"))),
            Ok(Err(e)) => Err(Error::Harness(format!("watching {name}: {e}"))),
            Err(_) => {
                let last = api.get_opt(name).await.ok().flatten();
                Err(Error::Harness(format!(
                    "{name}: condition not met after {timeout:?}; last seen: {last:#?}"
                )))
            }
        }
    }
}

impl TestEnv {
    /// The data authority's namespace: the `default` Regulation's, which all suites share.
    pub const AUTHORITY_NAMESPACE: &'static str = "gongshu-system";

    /// Creates, in the authority's namespace, a `Review` named `name` deciding `subject` with
    /// `decision` and `reason` (retrying while the webhook's cache has not seen the subject).
    pub async fn review(
        &self,
        namespace: &str,
        name: &str,
        subject: serde_json::Value,
        decision: &str,
        reason: &str,
    ) -> Result<gongshu_api::v1alpha1::Review, Error> {
        let review: gongshu_api::v1alpha1::Review = serde_json::from_value(serde_json::json!({
            "apiVersion": "gongshu.io/v1alpha1",
            "kind": "Review",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "subject": subject,
                "decision": decision,
                "reason": reason,
                "legalBasis": "Regulations on Government Data Sharing art. 12",
            },
        }))
        .map_err(|e| Error::Harness(format!("review fixture: {e}")))?;
        let api = Api::namespaced(self.client.clone(), namespace);
        self.create_admitted(&api, &review, Duration::from_secs(30))
            .await
    }

    /// Has the data authority approve every item of catalog `namespace/name` with real
    /// `Review`s (CAT-2), and waits until the operator records every item approved.
    pub async fn approve_items(&self, namespace: &str, name: &str) -> Result<(), Error> {
        use gongshu_api::v1alpha1::{DataCatalog, ItemReview};
        let api: Api<DataCatalog> = Api::namespaced(self.client.clone(), namespace);
        let catalog = api.get(name).await?;
        for item in &catalog.spec.items {
            let review = format!("approve-{}", random_suffix());
            self.review(
                Self::AUTHORITY_NAMESPACE,
                &review,
                serde_json::json!({
                    "kind": "CatalogItem",
                    "namespace": namespace,
                    "name": name,
                    "item": item.identifier,
                }),
                "approve",
                "",
            )
            .await?;
        }
        let count = catalog.spec.items.len();
        let approved = move |c: Option<&DataCatalog>| {
            c.and_then(|c| c.status.as_ref()).is_some_and(|s| {
                s.items.len() == count && s.items.iter().all(|i| i.review == ItemReview::Approved)
            })
        };
        self.wait_for(api, name, Duration::from_secs(60), approved)
            .await?;
        Ok(())
    }

    /// Creates `obj`, retrying while the admission webhook denies it, for at most `timeout`:
    /// the webhook judges against caches that see a just-written object a moment later.
    pub async fn create_admitted<K>(
        &self,
        api: &Api<K>,
        obj: &K,
        timeout: Duration,
    ) -> Result<K, Error>
    where
        K: Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match api.create(&PostParams::default(), obj).await {
                // Webhook denials come back as 400 (kube's AdmissionResponse::deny) or 403; a
                // webhook that is still starting fails the call ("failed calling webhook").
                Err(kube::Error::Api(e))
                    if (e.message.contains("admission webhook")
                        || e.message.contains("failed calling webhook"))
                        && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => return other.map_err(Error::Kube),
            }
        }
    }
}

/// `age-keygen -o <path>` (Debian package `age`): writes a new identity to `path` and returns
/// its public key (`age1…`), the recipient backups are encrypted to.
pub fn age_keygen(path: &Path) -> Result<String, Error> {
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(path)
        .output()
        .map_err(|source| Error::Spawn {
            program: "age-keygen".into(),
            source,
        })?;
    let public = String::from_utf8_lossy(&out.stderr)
        .lines()
        .find_map(|l| l.strip_prefix("Public key: ").map(str::to_owned));
    match public {
        Some(key) if out.status.success() => Ok(key),
        _ => Err(Error::Harness(format!(
            "age-keygen -o {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        ))),
    }
}

/// Six random lower-case alphanumerics.
pub fn random_suffix() -> String {
    use rand::{Rng, distr::Alphanumeric};
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(6)
        .map(|c| char::from(c).to_ascii_lowercase())
        .collect()
}

/// Whether `user` may `verb` `resource` (`secrets`, or with a subresource
/// `backuppolicies/status`) of API `group`, named `name` if given, in `namespace` (cluster-wide
/// if `None`), as a SubjectAccessReview answers. A ServiceAccount user
/// (`system:serviceaccount:NS:NAME`) gets the groups the apiserver gives ServiceAccounts.
pub async fn may(
    client: &Client,
    user: &str,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Result<bool, Error> {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
    };
    let (resource, subresource) = resource
        .split_once('/')
        .map_or((resource, None), |(r, s)| (r, Some(s)));
    let groups = match user.strip_prefix("system:serviceaccount:") {
        Some(rest) => {
            let namespace = rest.split(':').next().unwrap_or_default();
            vec![
                "system:serviceaccounts".to_owned(),
                format!("system:serviceaccounts:{namespace}"),
            ]
        }
        None => Vec::new(),
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.into()),
            groups: Some(groups),
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
    let answered = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await?;
    Ok(answered.status.is_some_and(|s| s.allowed))
}

/// Polls `f` every half second until it returns something.
///
/// # Panics
/// After `timeout`, with `what` and `context()` (what the test saw last): it is a test's
/// assertion.
pub async fn until<T, F, Fut>(
    timeout: Duration,
    what: &str,
    context: impl Fn() -> String,
    mut f: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = std::time::Instant::now();
    loop {
        if let Some(t) = f().await {
            return t;
        }
        assert!(
            start.elapsed() < timeout,
            "{what}: not after {timeout:?}\n{}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
