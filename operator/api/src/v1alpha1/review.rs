//! `Review`: a decision, made by creating an object in one's own namespace, so that RBAC alone
//! proves who decided (DESIGN.md "Tenancy"). Immutable once created.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CommonStatus, ITEM_IDENTIFIER};

/// A decision on a subject: approve, deny, request changes, revoke, suspend or resume. The
/// reviewer's namespace says who decided; the spec cannot change after creation.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gongshu.io",
    version = "v1alpha1",
    kind = "Review",
    namespaced,
    status = "ReviewStatus",
    shortname = "rev",
    category = "gongshu",
    doc = "A decision on a catalog item, grant, application, exemption or objection; immutable once created.",
    validation = Rule::new("self.spec == oldSelf.spec")
        .message("a Review is immutable once created: create a new Review to change a decision")
        .field_path(".spec")
        .reason(Reason::FieldValueForbidden),
    printcolumn = r#"{"name":"Kind","type":"string","jsonPath":".spec.subject.kind"}"#,
    printcolumn = r#"{"name":"Subject","type":"string","jsonPath":".spec.subject.name"}"#,
    printcolumn = r#"{"name":"Decision","type":"string","jsonPath":".spec.decision"}"#,
    printcolumn = r#"{"name":"Applied","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.decision in ['approve', 'resume'] || self.reason.size() > 0")
        .message("a reason is required for deny, requestChanges, revoke and suspend (NM23, XJ21, YN29, HB15, PJ18)")
        .field_path(".reason")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("self.subject.kind != 'CatalogItem' || has(self.subject.item)")
        .message("subject.item is required when subject.kind is CatalogItem: name the item identifier")
        .field_path(".subject.item")
        .reason(Reason::FieldValueRequired),
)]
pub struct ReviewSpec {
    /// What is decided on.
    pub subject: Subject,
    /// The decision.
    pub decision: ReviewDecision,
    /// Reasons for the decision; required unless approving or resuming.
    #[serde(default)]
    #[schemars(length(max = 4096))]
    pub reason: String,
    /// The legal basis of a refusal, where the regulation asks for one (NM23, XJ21, YN29).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub legal_basis: Option<String>,
}

/// The object a review decides on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    /// Kind of the subject.
    pub kind: SubjectKind,
    /// Namespace of the subject.
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    /// Name of the subject (for a catalog item, the `DataCatalog`'s name).
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// For `CatalogItem`: the item's identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), regex(pattern = ITEM_IDENTIFIER))]
    pub item: Option<String>,
    /// The subject's `metadata.generation` the decision is about; a decision on an older
    /// generation does not apply to later changes that widen access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
}

/// Kinds of subject a review decides on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SubjectKind {
    /// An item of a `DataCatalog` (CAT-2).
    CatalogItem,
    /// A `ShareGrant` (SH-4).
    ShareGrant,
    /// An `OpenDataset` (OP-2).
    OpenDataset,
    /// A conditional open-data application (OP-4).
    OpenApplication,
    /// A `ChannelExemption` (CH-1).
    ChannelExemption,
    /// A data-quality objection (SH-8).
    Objection,
}

/// A review decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ReviewDecision {
    /// Approve the subject.
    Approve,
    /// Refuse it, with reasons.
    Deny,
    /// Return it for changes.
    RequestChanges,
    /// Withdraw an earlier approval.
    Revoke,
    /// Close access until corrected (SH-14).
    Suspend,
    /// Lift a suspension.
    Resume,
}

/// Observed state of a review: whether the decision was applied to its subject.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReviewStatus {
    /// Generation and conditions (kstatus). `Ready` means the decision was applied.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// When the decision was applied to its subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<Time>,
    /// When the operator first saw the Review, to the microsecond. `creationTimestamp` has whole
    /// seconds, so this orders decisions on one subject made within the same second (a
    /// suspension and its resumption, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at: Option<MicroTime>,
}
