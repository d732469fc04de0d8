//! `ShareGrant`: a consumer department's request for another department's data, and, once
//! approved, its licence to use it through the exchange (REQUIREMENTS.md §2, SH-*).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    catalog::ShareType,
    common::{CommonStatus, DATE, DNS_LABEL, ITEM_IDENTIFIER, SecretKeyRef},
};
use crate::presets::Step;

/// A request to use another department's catalog item for a stated scenario (共享申请). It
/// lives in the consumer's namespace and runs the review workflow on working-day deadlines;
/// once `Active`, the exchange serves it to the listed ServiceAccounts.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gongshu.io",
    version = "v1alpha1",
    kind = "ShareGrant",
    namespaced,
    status = "ShareGrantStatus",
    shortname = "sg",
    category = "gongshu",
    doc = "A consumer department's request for a catalog item for one scenario, and its licence once approved (SH-2, SH-5).",
    printcolumn = r#"{"name":"Item","type":"string","jsonPath":".spec.item"}"#,
    printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".spec.mode"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Waiting-On","type":"string","jsonPath":".status.waitingOn"}"#,
    printcolumn = r#"{"name":"Due","type":"string","jsonPath":".status.due"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.item == oldSelf.item")
        .message("item is immutable: request another item with a new ShareGrant")
        .field_path(".item")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("self.mode != 'table' || has(self.tableTarget)")
        .message("SH-6: tableTarget is required when mode is table; name the Secret with your PostgreSQL connection URI")
        .field_path(".tableTarget")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("self.mode == 'table' || !has(self.tableTarget)")
        .message("tableTarget is only used when mode is table")
        .field_path(".tableTarget")
        .reason(Reason::FieldValueForbidden),
)]
pub struct ShareGrantSpec {
    /// Identifier of the provider's catalog item (`DataCatalog.spec.items[].identifier`).
    /// Immutable.
    #[schemars(length(min = 1, max = 128), regex(pattern = ITEM_IDENTIFIER))]
    pub item: String,
    /// The application scenario (应用场景) the data is requested for (SH-2). The data may be
    /// used for this scenario only (SH-3).
    #[schemars(length(min = 10, max = 2048))]
    pub scenario: String,
    /// What the consumer will do with the data (SH-2).
    #[schemars(length(min = 10, max = 2048))]
    pub purpose: String,
    /// The signed commitment of lawful and secure use (承诺; SH-2).
    pub commitment: Commitment,
    /// The fields requested: only those the scenario needs (最小授权; SH-5).
    #[schemars(length(min = 1, max = 128))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub fields: Vec<String>,
    /// How the data is delivered (SH-6, SH-7). Items whose share type is `notShared` are
    /// granted in `verify` mode only.
    pub mode: ShareMode,
    /// The end date of the licence (截止时间; SH-5). The grant expires at this instant.
    pub valid_until: Time,
    /// Names of ServiceAccounts in this namespace allowed to use the grant at the exchange.
    #[schemars(length(min = 1, max = 32))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub service_accounts: Vec<ServiceAccountName>,
    /// For `table` mode: the consumer's PostgreSQL the projected rows are replicated into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_target: Option<TableTarget>,
    /// Emergency data (earthquake, agricultural disaster) is reviewed promptly (XJ21).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub emergency: bool,
}

/// A ServiceAccount name (DNS-1123 label).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct ServiceAccountName(
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS_LABEL))] pub String,
);

/// The consumer's written commitment of lawful, secure use, within the scenario (SH-2, SH-3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Commitment {
    /// Name and office of the person who signed for the department.
    #[schemars(length(min = 1, max = 256))]
    pub signed_by: String,
    /// Date of signature, `YYYY-MM-DD`.
    #[schemars(regex(pattern = DATE))]
    pub signed_on: String,
    /// Reference of the signed document (file number or URL).
    #[schemars(length(min = 1, max = 512))]
    pub document: String,
}

/// The consumer's PostgreSQL for `table` mode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TableTarget {
    /// Secret key (in this namespace) holding a libpq connection URI.
    pub connection_secret_ref: SecretKeyRef,
    /// Table the rows are written to; created if missing.
    #[schemars(length(min = 1, max = 63))]
    pub table: String,
}

/// Delivery mode (SH-6, SH-7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ShareMode {
    /// Service interface: keyed lookups and filtered, paginated queries.
    Api,
    /// Bulk file download (CSV or JSON lines).
    File,
    /// Replication of the projected rows into the consumer's database.
    Table,
    /// Verification: match or no match, nothing revealed (核验; SH-7).
    Verify,
}

/// Where a grant stands in its workflow.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum GrantPhase {
    /// Received; automatic checks have not run yet.
    Submitted,
    /// The authority's compliance review (SH-4).
    ComplianceReview,
    /// Waiting for the provider's decision (SH-4).
    ProviderReview,
    /// Approved; the exchange is being configured.
    Approved,
    /// Served by the exchange.
    Active,
    /// Refused, with reasons (SH-4). Final.
    Denied,
    /// Past `validUntil`. Final.
    Expired,
    /// Withdrawn by the provider or the authority. Final.
    Revoked,
    /// Closed until the consumer corrects a violation (SH-14). Resumable.
    Suspended,
}

/// Observed state of a grant.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShareGrantStatus {
    /// Generation and conditions (kstatus).
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Where the grant stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<GrantPhase>,
    /// Who must act next: `authority`, `provider/<department>`, `consumer` or `operator`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_on: Option<String>,
    /// Due time of the pending step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<Time>,
    /// The provider as resolved from the catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderRef>,
    /// Every workflow step with its deadline (SH-4, SUP-2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deadlines: Vec<DeadlineStatus>,
    /// The decision that ended review.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// URL of the grant's endpoint on the exchange, once active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Usage counts reported by the exchange (SH-12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// The request under review, or the last one decided: the generation whose terms are
    /// reviewed, when it was received and the terms themselves. An edit that changes the terms
    /// starts a new request; an edit that does not (e.g. `serviceAccounts`) keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<GrantRequest>,
    /// The terms last approved, which the exchange serves. An edit that widens access waits for
    /// review while these narrower terms stay in force; an edit that narrows them applies at
    /// once (SH-5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved: Option<ApprovedTerms>,
    /// The authority's suspension in force (SH-14), until it resumes the grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspension: Option<Decision>,
    /// Reviews about this grant that were not applied, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub ignored_reviews: Vec<IgnoredReview>,
}

/// The terms of a grant that a review decides on: what data, how, until when and what for
/// (SH-3, SH-5).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrantTerms {
    /// The fields, sorted.
    pub fields: Vec<String>,
    /// The delivery mode.
    pub mode: ShareMode,
    /// The end of the licence.
    pub valid_until: Time,
    /// `sha256:` digest of the scenario and purpose: a new scenario or purpose is a new use
    /// that needs review (SH-3).
    pub scenario_digest: String,
}

/// A request under review, or the last one decided.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrantRequest {
    /// The first `metadata.generation` with these terms. A `Review` naming this generation or a
    /// later one decides the request.
    pub generation: i64,
    /// When the request was received: the grant's creation, or when the operator saw the edit.
    /// Every deadline of the request counts from it (SH-4).
    pub received: Time,
    /// When the automatic compliance checks ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked: Option<Time>,
    /// The terms requested.
    #[serde(flatten)]
    pub terms: GrantTerms,
}

/// The terms in force, as last approved (or narrowed since).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovedTerms {
    /// The generation the terms were taken from.
    pub generation: i64,
    /// When they were approved.
    pub approved_at: Time,
    /// `<namespace>/<name>` of the approving `Review`, or `operator` for unconditional items.
    pub by: String,
    /// The terms.
    #[serde(flatten)]
    pub terms: GrantTerms,
}

/// A `Review` that was not applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IgnoredReview {
    /// `<namespace>/<name>` of the `Review`.
    pub review: String,
    /// Why it was not applied, and what to do instead.
    pub reason: String,
}

/// The provider of a grant's item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderRef {
    /// The provider's department code.
    pub department: String,
    /// The namespace of the provider's catalog.
    pub namespace: String,
    /// The `DataCatalog` that declares the item.
    pub catalog: String,
    /// The item's share type when the grant was checked.
    pub share_type: ShareType,
}

/// One step's deadline (SH-4, SUP-2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadlineStatus {
    /// The workflow step.
    pub step: Step,
    /// Who must act: `authority`, `provider` or `consumer`.
    pub actor: String,
    /// When the step's clock started (the triggering event).
    pub started: Time,
    /// When the step is due; absent where the regulation sets no number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<Time>,
    /// When the step was completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<Time>,
    /// Whether the step was (or is) overdue (SUP-2).
    #[serde(default)]
    pub breached: bool,
    /// The articles the deadline comes from, e.g. `HB15`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub articles: Vec<String>,
    /// The generation of the object the step belongs to (a grant's request, a catalog's item
    /// version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// How the step was counted or closed, e.g. an override, or superseded by an edit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A decision on a grant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// `approve`, `deny`, `requestChanges`, `revoke`, `suspend` or `resume`.
    pub outcome: String,
    /// The reasons given (required for refusals: NM23, XJ21, YN29, HB15, PJ18).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `<namespace>/<name>` of the `Review` that decided, or `operator` for automatic decisions.
    pub by: String,
    /// When the decision took effect.
    pub at: Time,
    /// Who decided: `provider`, `authority` (coordinating after the provider's deadline
    /// passed, SUP-2) or `operator`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The request generation decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// The legal basis given for a refusal (NM23, XJ21, YN29).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_basis: Option<String>,
}

/// Usage of a grant (SH-12).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Requests served.
    pub requests: i64,
    /// Rows returned.
    pub rows: i64,
    /// Last access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_access: Option<Time>,
}
