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
    /// Marks every item of catalog `namespace/name` approved by writing its status as the
    /// admin, once the operator has recorded the items. This stands in for the authority's
    /// `Review` until the operator applies Reviews (issue #4); the operator keeps a review
    /// state while the item's spec digest is unchanged.
    pub async fn approve_items_directly(&self, namespace: &str, name: &str) -> Result<(), Error> {
        use gongshu_api::v1alpha1::{DataCatalog, ItemReview};
        use kube::api::{Patch, PatchParams};
        let api: Api<DataCatalog> = Api::namespaced(self.client.clone(), namespace);
        let recorded = |c: Option<&DataCatalog>| {
            c.and_then(|c| c.status.as_ref())
                .is_some_and(|s| !s.items.is_empty())
        };
        let catalog = self
            .wait_for(api.clone(), name, Duration::from_secs(60), recorded)
            .await?;
        let mut items = catalog.status.map(|s| s.items).unwrap_or_default();
        for item in &mut items {
            item.review = ItemReview::Approved;
        }
        let patch = serde_json::json!({"status": {"items": items}});
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
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
                Err(kube::Error::Api(e))
                    if e.code == 403 && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => return other.map_err(Error::Kube),
            }
        }
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
