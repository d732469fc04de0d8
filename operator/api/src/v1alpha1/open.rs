//! `OpenDataset`: a catalog item published to the public through the exchange's open-data API
//! (REQUIREMENTS.md §4, OP-*).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CommonStatus, ITEM_IDENTIFIER};

/// Publishes one of this department's catalog items to the public (数据开放), with a licence,
/// attribution, formats and rate limits.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gongshu.io",
    version = "v1alpha1",
    kind = "OpenDataset",
    namespaced,
    status = "OpenDatasetStatus",
    shortname = "ods",
    category = "gongshu",
    doc = "A catalog item published to the public through the open-data API (OP-2, OP-3).",
    printcolumn = r#"{"name":"Item","type":"string","jsonPath":".spec.item"}"#,
    printcolumn = r#"{"name":"Open","type":"string","jsonPath":".spec.openType"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.openType != 'conditional' || has(self.application)")
        .message("OP-4: application is required when openType is conditional; say what an applicant must state and sign")
        .field_path(".application")
        .reason(Reason::FieldValueRequired),
)]
pub struct OpenDatasetSpec {
    /// Identifier of an item of a `DataCatalog` in this namespace.
    #[schemars(length(min = 1, max = 128), regex(pattern = ITEM_IDENTIFIER))]
    pub item: String,
    /// How the public gets access (OP-1, OP-4).
    pub open_type: OpenAccess,
    /// Licence of the published data (SPDX identifier or the name of a regional licence).
    #[schemars(length(min = 1, max = 256))]
    pub license: String,
    /// The citation products built on the data must carry (OP-6: source and acquisition date).
    #[schemars(length(min = 1, max = 1024))]
    pub attribution: String,
    /// Fields published; all shareable fields of sensitivity `public` when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub fields: Vec<String>,
    /// Download formats (OP-3: machine-readable).
    #[schemars(length(min = 1, max = 3))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub formats: Vec<OpenFormat>,
    /// Rate limit per API key or client address.
    #[serde(default)]
    pub rate_limit: RateLimit,
    /// For conditional opening: what an application states and what the applicant signs (OP-4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<ApplicationTerms>,
}

/// Open access type (OP-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OpenAccess {
    /// Anyone may download (OP-4: directly).
    Unconditional,
    /// On approved application and signed agreement (OP-4).
    Conditional,
}

/// A download format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OpenFormat {
    /// CSV with a header row.
    Csv,
    /// JSON lines.
    Jsonl,
    /// JSON array.
    Json,
}

/// Request rate limit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// Sustained requests per minute.
    #[serde(default = "default_rpm")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub requests_per_minute: i32,
    /// Burst size above the sustained rate.
    #[serde(default = "default_burst")]
    #[schemars(range(min = 1, max = 100_000))]
    pub burst: i32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            requests_per_minute: default_rpm(),
            burst: default_burst(),
        }
    }
}

fn default_rpm() -> i32 {
    60
}

fn default_burst() -> i32 {
    20
}

/// Terms of conditional opening (OP-4, NM28, YN35).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationTerms {
    /// Who may apply (e.g. "research institutions").
    #[schemars(length(min = 1, max = 1024))]
    pub eligible: String,
    /// URL or reference of the use agreement the applicant signs.
    #[schemars(length(min = 1, max = 2048))]
    pub agreement: String,
}

/// Observed state of an open dataset.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenDatasetStatus {
    /// Generation and conditions (kstatus).
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Public URLs of the dataset's API and downloads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// DCAT identifier of the dataset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dcat_identifier: Option<String>,
    /// Downloads served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downloads: Option<i64>,
    /// Set while the dataset is suspended (OP-5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspension: Option<Suspension>,
}

/// Why and since when a dataset is suspended (OP-5).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Suspension {
    /// The complaint or risk that caused it.
    pub reason: String,
    /// Since when.
    pub since: Time,
}
