//! The I/O of the Job runner: list a policy's Jobs, keep the namespace's runner RBAC, create a
//! Job if absent, delete one that never started.

use gongshu_api::{
    rules::backup::job,
    v1alpha1::{BackupPolicy, DataCatalog},
};
use k8s_openapi::{NamespaceResourceScope, api::batch::v1::Job};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy},
};
use serde::{Serialize, de::DeserializeOwned};
use tracing::info;

use super::{JobError, LABEL_POLICY_UID, SERVICE_ACCOUNT, build};
use crate::controller::FIELD_MANAGER;

/// The runner Jobs of `policy` (by the uid label: a name may not fit a label value).
pub async fn list(client: &Client, policy: &BackupPolicy) -> Result<Vec<Job>, JobError> {
    let namespace = policy.namespace().unwrap_or_default();
    let selector = format!("{LABEL_POLICY_UID}={}", policy.uid().unwrap_or_default());
    Api::<Job>::namespaced(client.clone(), &namespace)
        .list(&ListParams::default().labels(&selector))
        .await
        .map(|l| l.items)
        .map_err(|source| JobError::List {
            what: "Jobs",
            namespace,
            source,
        })
}

/// The namespace's policies and what their runners read, with the connection Secrets of the
/// catalog items they back up looked up in the namespace's catalogs.
pub async fn needs(
    client: &Client,
    namespace: &str,
) -> Result<(Vec<BackupPolicy>, build::RunnerNeeds), JobError> {
    let list_err = |what| {
        move |source| JobError::List {
            what,
            namespace: namespace.to_owned(),
            source,
        }
    };
    let policies = Api::<BackupPolicy>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map_err(list_err("BackupPolicies"))?
        .items;
    let mut needs = build::RunnerNeeds::default();
    let mut items = Vec::new();
    for policy in &policies {
        needs.policies.insert(policy.name_any());
        needs.secrets.extend(job::secret_names(&policy.spec));
        items.extend(job::catalog_items(&policy.spec).map(str::to_owned));
    }
    if !items.is_empty() {
        needs.catalogs = true;
        let catalogs = Api::<DataCatalog>::namespaced(client.clone(), namespace)
            .list(&ListParams::default())
            .await
            .map_err(list_err("DataCatalogs"))?;
        let secrets = catalogs
            .items
            .iter()
            .flat_map(|c| c.spec.items.iter())
            .filter(|i| items.contains(&i.identifier))
            .filter_map(|i| i.source.postgres.as_ref())
            .map(|pg| pg.connection_secret_ref.name.clone());
        needs.secrets.extend(secrets);
    }
    Ok((policies, needs))
}

async fn apply<K>(client: &Client, namespace: &str, obj: &K) -> Result<(), JobError>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + k8s_openapi::Resource
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), namespace)
        .patch(
            SERVICE_ACCOUNT,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await
        .map(drop)
        .map_err(|source| JobError::Rbac {
            kind: <K as k8s_openapi::Resource>::KIND,
            namespace: namespace.to_owned(),
            source,
        })
}

/// Server-side-applies the ServiceAccount, Role and RoleBinding `gongshu-backup` of
/// `namespace` for its policies as they are now: before each Job, so a Secret a policy names
/// since its last run is readable by the next one.
pub async fn ensure_rbac(client: &Client, namespace: &str) -> Result<(), JobError> {
    let (policies, needs) = needs(client, namespace).await?;
    apply(
        client,
        namespace,
        &build::service_account(namespace, &policies),
    )
    .await?;
    apply(
        client,
        namespace,
        &build::role(namespace, &policies, &needs),
    )
    .await?;
    apply(
        client,
        namespace,
        &build::role_binding(namespace, &policies),
    )
    .await
}

/// Creates `job` unless a Job of its name exists; `true` when this call created it.
pub async fn create(client: &Client, job: &Job) -> Result<bool, JobError> {
    let namespace = job.namespace().unwrap_or_default();
    let name = job.name_any();
    match Api::<Job>::namespaced(client.clone(), &namespace)
        .create(&PostParams::default(), job)
        .await
    {
        Ok(_) => {
            info!(namespace, name, "created a backup runner Job");
            Ok(true)
        }
        // Created before (by this operator before a restart, or another leader): the same
        // run, which is not started twice.
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(source) => Err(JobError::Job {
            verb: "create",
            namespace,
            name,
            source,
        }),
    }
}

/// Deletes the Job `namespace`/`name` and its pods (in the background).
pub async fn delete(client: &Client, namespace: &str, name: &str) -> Result<(), JobError> {
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    match Api::<Job>::namespaced(client.clone(), namespace)
        .delete(name, &params)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(JobError::Job {
            verb: "delete",
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        }),
    }
}
