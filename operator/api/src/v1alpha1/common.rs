//! Types shared by several kinds: references, status conventions (kstatus) and label keys.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Namespace label naming the department a namespace belongs to (its department code).
pub const LABEL_DEPARTMENT: &str = "gongshu.io/department";
/// Namespace label with the department's administrative level.
pub const LABEL_LEVEL: &str = "gongshu.io/level";
/// Namespace label with the parent department's code.
pub const LABEL_PARENT: &str = "gongshu.io/parent";

/// A key of a Secret in the same namespace as the object that refers to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret, in the referring object's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// The administrative level of a department (REQUIREMENTS.md "Roles": province → city → county).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Level {
    /// Province or autonomous region (省、自治区).
    Province,
    /// Prefecture or city (盟市、州市).
    City,
    /// County or district (旗县、县区).
    County,
}

/// The status fields every gongshu kind carries, as kstatus defines them, so that
/// `kubectl wait --for=condition=Ready`, Argo CD and Flux health checks work.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommonStatus {
    /// The `metadata.generation` this status describes. The status is stale while it is
    /// lower than the object's generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling` and `Stalled`, plus kind-specific conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// A DNS-1123 label, as Kubernetes names of namespaces and ServiceAccounts must be.
pub(crate) const DNS_LABEL: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// A DNS-1123 subdomain, as most Kubernetes object names must be.
pub(crate) const DNS_SUBDOMAIN: &str =
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A department code: lower-case letters, digits and dashes (it is also a label value).
pub(crate) const DEPARTMENT_CODE: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// A catalog item identifier: cluster-unique, a DNS-1123 subdomain so it can name objects.
pub(crate) const ITEM_IDENTIFIER: &str = "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$";
/// An ISO date `YYYY-MM-DD`.
pub(crate) const DATE: &str = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$";
