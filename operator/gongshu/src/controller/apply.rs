//! Writing a status with server-side apply, and the [`Applied`] typestate: a status the
//! apiserver holds, as opposed to one the operator computed.

use kube::{
    Client, ResourceExt,
    api::{Patch, PatchParams},
    core::object::HasStatus,
};

use super::{FIELD_MANAGER, Kind};

/// Writing a status failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The apiserver refused or did not answer the patch.
    #[error("cannot apply the status of {kind} {name}: {source}")]
    Patch {
        /// The object's kind.
        kind: String,
        /// The object's name.
        name: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The apiserver's answer had no status.
    #[error("the apiserver returned {kind} {name} without the status just applied")]
    Missing {
        /// The object's kind.
        kind: String,
        /// The object's name.
        name: String,
    },
}

impl super::Categorized for ApplyError {
    fn category(&self) -> &'static str {
        match self {
            Self::Patch { .. } => "status_apply",
            Self::Missing { .. } => "status_missing",
        }
    }
}

/// A status as the apiserver holds it. Only [`Applied::apply`] makes one, so Events and
/// decisions after a reconcile cannot use a status that was never written.
#[derive(Debug)]
pub struct Applied<S>(S);

impl<S> Applied<S> {
    /// The status.
    pub fn status(&self) -> &S {
        &self.0
    }
}

impl<S: Clone + PartialEq + serde::Serialize> Applied<S> {
    /// Applies `status` to `obj`'s status subresource (server-side apply, field manager
    /// [`FIELD_MANAGER`], forced), unless `obj` already carries exactly this status — then
    /// nothing is written, so an unchanged object causes no watch event.
    pub async fn apply<K>(client: &Client, obj: &K, status: S) -> Result<Self, ApplyError>
    where
        K: Kind + HasStatus<Status = S>,
    {
        if obj.status() == Some(&status) {
            return Ok(Self(status));
        }
        let name = obj.name_any();
        let patch = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status,
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let written = K::api(client.clone(), obj)
            .patch_status(&name, &params, &Patch::Apply(&patch))
            .await
            .map_err(|source| ApplyError::Patch {
                kind: K::kind(&()).into_owned(),
                name: name.clone(),
                source,
            })?;
        written
            .status()
            .cloned()
            .map(Self)
            .ok_or_else(|| ApplyError::Missing {
                kind: K::kind(&()).into_owned(),
                name,
            })
    }
}
