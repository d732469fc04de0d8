//! `DataCatalog`: the data a department holds and on what terms it shares and opens it
//! (REQUIREMENTS.md §1, CAT-1 … CAT-11).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CommonStatus, DEPARTMENT_CODE, ITEM_IDENTIFIER, SecretKeyRef};

/// A department's data catalog (数据目录): the items it holds, their fields, and the terms on
/// which each is shared and opened. Items are published only once the data authority approves
/// them with a `Review` (CAT-2).
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gongshu.io",
    version = "v1alpha1",
    kind = "DataCatalog",
    namespaced,
    status = "DataCatalogStatus",
    shortname = "dcat",
    category = "gongshu",
    doc = "A department's data catalog (数据目录): its data items and their share and open terms (CAT-1).",
    printcolumn = r#"{"name":"Items","type":"integer","jsonPath":".status.itemCount"}"#,
    printcolumn = r#"{"name":"Approved","type":"integer","jsonPath":".status.approvedCount"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct DataCatalogSpec {
    /// The catalog's items. Each identifier is unique within the catalog (and, checked at
    /// admission, across the cluster).
    #[schemars(length(min = 1, max = 128))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["identifier"]))]
    pub items: Vec<CatalogItem>,
}

/// One data item (数据资源) of a catalog.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.shareType == 'unconditional' || (has(self.legalBasis) && self.legalBasis.size() > 0)")
        .message("CAT-8: legalBasis is required when shareType is conditional or notShared; cite the law or regulation that restricts sharing")
        .field_path(".legalBasis")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("self.shareType != 'conditional' || (has(self.shareConditions) && self.shareConditions.size() > 0)")
        .message("CAT-8: shareConditions is required when shareType is conditional; state the conditions a consumer must meet")
        .field_path(".shareConditions")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("self.openType != 'conditional' || (has(self.openConditions) && self.openConditions.size() > 0)")
        .message("OP-1: openConditions is required when openType is conditional; state who may use the data, for what and how")
        .field_path(".openConditions")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("!has(self.source.postgres) || self.source.postgres.keyColumns.all(k, self.fields.exists(f, f.name == k))")
        .message("source.postgres.keyColumns must name fields declared in fields[]")
        .field_path(".source.postgres.keyColumns")
        .reason(Reason::FieldValueInvalid),
    validation = Rule::new("self.shareType == 'notShared' || self.fields.exists(f, f.shareable)")
        .message("SH-5: at least one field must be shareable; an item none of whose fields can be shared belongs to shareType notShared with verification (SH-7)")
        .field_path(".fields")
        .reason(Reason::FieldValueInvalid),
)]
pub struct CatalogItem {
    /// Identifier of the item, unique across the cluster (e.g. `population.residents`). Grants
    /// and open datasets refer to the item by it.
    #[schemars(length(min = 1, max = 128), regex(pattern = ITEM_IDENTIFIER))]
    pub identifier: String,
    /// Human-readable name of the data (数据名称).
    #[schemars(length(min = 1, max = 256))]
    pub title: String,
    /// What the data describes and how it is collected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub description: Option<String>,
    /// Code of the one department that legally collects this data and answers for its truth
    /// (数源部门; CAT-4, one data one source).
    #[schemars(length(min = 1, max = 63), regex(pattern = DEPARTMENT_CODE))]
    pub source_department: String,
    /// The library the item belongs to (CAT-10).
    pub tier: Tier,
    /// Classification and grading (分类分级; CAT-7).
    pub classification: Classification,
    /// How the data is shaped when it is delivered (CAT-1 data form/format).
    pub format: DataFormat,
    /// How often the source updates the data (CAT-1, SH-15).
    pub update_frequency: UpdateFrequency,
    /// Share type (共享类型; CAT-8): `unconditional`, `conditional` or `notShared`.
    pub share_type: ShareType,
    /// The conditions a consumer must meet; required for `conditional` (CAT-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub share_conditions: Option<String>,
    /// Who may receive the data (共享范围; CAT-1), e.g. "province-level departments".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub share_scope: Option<String>,
    /// The law, regulation or policy that restricts sharing; required for `conditional` and
    /// `notShared` (CAT-8: XJ19, NM21, YN27).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub legal_basis: Option<String>,
    /// Open type (开放类型; OP-1): `open`, `conditional` or `notOpen`.
    #[serde(default = "default_open_type")]
    pub open_type: OpenType,
    /// Conditions of conditional opening; required for `conditional` (OP-1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub open_conditions: Option<String>,
    /// The subject key the records are identified by (CAT-5), if they describe persons,
    /// organisations or places.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_key: Option<SubjectKey>,
    /// The item's fields (数据项). Field names are unique.
    #[schemars(length(min = 1, max = 128))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub fields: Vec<Field>,
    /// Where the exchange reads the data from. The operator never reads it itself.
    pub source: DataSource,
}

fn default_open_type() -> OpenType {
    OpenType::NotOpen
}

/// One field (数据项) of a catalog item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Field {
    /// Field name, as a grant lists it and as the exchange returns it.
    #[schemars(length(min = 1, max = 63), regex(pattern = "^[a-zA-Z_][a-zA-Z0-9_]*$"))]
    pub name: String,
    /// Value type.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// What the field means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// Sensitivity of the field's values (SEC-3).
    #[serde(default = "default_sensitivity")]
    pub sensitivity: Sensitivity,
    /// Whether a grant may include this field. Fields that are not shareable can still be
    /// used in `verify` mode (SH-7).
    #[serde(default = "default_true")]
    pub shareable: bool,
}

fn default_sensitivity() -> Sensitivity {
    Sensitivity::Internal
}

fn default_true() -> bool {
    true
}

/// Where the exchange reads an item's data. Exactly one of `postgres`, `file` or `http`.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.postgres), has(self.file), has(self.http)].filter(x, x).size() == 1")
    .message("source must set exactly one of postgres, file or http")
    .reason(Reason::FieldValueInvalid))]
pub struct DataSource {
    /// A PostgreSQL table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresSource>,
    /// A CSV or JSON file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileSource>,
    /// An upstream HTTP API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSource>,
}

/// A PostgreSQL table holding an item's records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostgresSource {
    /// Secret key holding a libpq connection URI (`postgresql://user:pass@host/db`).
    pub connection_secret_ref: SecretKeyRef,
    /// Schema of the table.
    #[serde(default = "default_schema")]
    #[schemars(length(min = 1, max = 63))]
    pub schema: String,
    /// Table name.
    #[schemars(length(min = 1, max = 63))]
    pub table: String,
    /// Columns that identify a record (keyed lookups and verification match on them).
    #[schemars(length(min = 1, max = 8))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub key_columns: Vec<String>,
}

fn default_schema() -> String {
    "public".to_owned()
}

/// A file holding an item's records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileSource {
    /// Path of the file as the exchange sees it (a mounted volume).
    #[schemars(length(min = 1, max = 4096))]
    pub path: String,
    /// File format.
    pub format: FileFormat,
}

/// An upstream HTTP API the exchange proxies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpSource {
    /// Base URL of the upstream API; must be `https://` except on loopback.
    #[schemars(length(min = 1, max = 2048), regex(pattern = "^https?://"))]
    pub url: String,
    /// Secret key holding a bearer token for the upstream, if it needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretKeyRef>,
}

/// Share type (CAT-8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ShareType {
    /// Shared with any public body on request (无条件共享).
    Unconditional,
    /// Shared when the stated conditions are met, after review (有条件共享).
    Conditional,
    /// Not shared; only verification is answered (不予共享; SH-7).
    NotShared,
}

/// Open type (OP-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OpenType {
    /// Opened to the public without conditions (无条件开放).
    Open,
    /// Opened on application and agreement (有条件开放).
    Conditional,
    /// Not opened (不予开放).
    NotOpen,
}

/// Library tier (CAT-10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Tier {
    /// Base library (基础库): population, legal entities, natural resources and geography,
    /// e-licences, macro-economy.
    Base,
    /// Theme library (主题库).
    Theme,
    /// Special library (专题库).
    Special,
    /// A department's own library.
    Department,
}

/// Classification and grading (CAT-7, SEC-3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Classification {
    /// Category under the regional classification scheme, e.g. `population/household`.
    #[schemars(length(min = 1, max = 256))]
    pub category: String,
    /// Grade under the data security grading (核心/重要/一般).
    pub grade: Grade,
}

/// Data security grade.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Grade {
    /// Core data (核心数据).
    Core,
    /// Important data (重要数据).
    Important,
    /// General data (一般数据).
    General,
}

/// How an item's data is shaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DataFormat {
    /// Structured records (a table).
    Table,
    /// Files or folders.
    File,
    /// A service interface.
    Api,
}

/// Update frequency (SH-15).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum UpdateFrequency {
    /// Updated as events happen.
    RealTime,
    /// Daily.
    Daily,
    /// Weekly.
    Weekly,
    /// Monthly.
    Monthly,
    /// Quarterly.
    Quarterly,
    /// Yearly.
    Yearly,
    /// Only when the underlying facts change.
    OnChange,
}

/// Value type of a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum FieldType {
    /// Text.
    String,
    /// Whole number.
    Integer,
    /// Decimal number.
    Decimal,
    /// True or false.
    Boolean,
    /// Calendar date.
    Date,
    /// Point in time.
    Timestamp,
    /// Nested JSON.
    Json,
}

/// Sensitivity of a field (SEC-3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Sensitivity {
    /// May be published.
    Public,
    /// For public bodies only.
    Internal,
    /// Sensitive; shared only under conditions.
    Sensitive,
    /// Personal information (个人信息).
    Personal,
}

/// The key records are identified by (CAT-5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SubjectKey {
    /// Citizen identity number (公民身份号码), for natural persons.
    CitizenId,
    /// Unified social credit code (统一社会信用代码), for organisations.
    CreditCode,
    /// Geographic coordinates, for city parts and IoT data (PJ16).
    Coordinates,
    /// Another unified code, for city parts and IoT data (PJ16).
    UnifiedCode,
}

/// File format of a file source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum FileFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// JSON lines, one object per line.
    Jsonl,
    /// One JSON array of objects.
    Json,
}

/// Observed state of a catalog.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataCatalogStatus {
    /// Generation and conditions (kstatus).
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Number of items in the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_count: Option<i32>,
    /// Number of items the authority has approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_count: Option<i32>,
    /// Per-item review state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["identifier"]))]
    pub items: Vec<ItemStatus>,
    /// Per-item review workflow: the version under review, who must act and by when, and the
    /// deadlines of updates and fixes (CAT-2, YN12) and re-evaluation (CAT-9).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["identifier"]))]
    pub workflow: Vec<ItemWorkflow>,
    /// Reviews about this catalog's items that were not applied, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub ignored_reviews: Vec<super::grant::IgnoredReview>,
}

/// The review workflow of one catalog item's current version (CAT-2, CAT-9).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ItemWorkflow {
    /// The item's identifier.
    pub identifier: String,
    /// The catalog `metadata.generation` in which this version of the item first appeared. A
    /// `Review` naming this generation or a later one decides it; one naming an earlier
    /// generation decided an earlier version.
    pub submitted_generation: i64,
    /// When the operator received this version: the catalog's creation, or when it saw the edit.
    pub submitted: Time,
    /// Who must act next: `authority` or `department`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_on: Option<String>,
    /// Due time of the pending step, where the regulation sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<Time>,
    /// `<namespace>/<name>` of the `Review` that decided this version, or `operator` for an
    /// update that is only filed (XJ11).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// When this version was decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<Time>,
    /// The item's deadlines: update review (CAT-2) and fixing a returned item (YN12).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deadlines: Vec<super::grant::DeadlineStatus>,
    /// Whether the periodic re-evaluation (CAT-9) is overdue.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reevaluation_overdue: bool,
}

/// Review state of one catalog item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ItemStatus {
    /// The item's identifier.
    pub identifier: String,
    /// Where the item stands in the authority's review (CAT-2).
    pub review: ItemReview,
    /// When the authority approved and published the item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<Time>,
    /// When the share type is next due for re-evaluation (CAT-9), for conditional and
    /// not-shared items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_reevaluation: Option<Time>,
    /// Why the item is in this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `sha256:` digest of the item as it was when it entered this state. An item whose spec
    /// changes goes back to review (CAT-2), so an approval never covers terms it did not see.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_digest: Option<String>,
}

/// Review state of a catalog item (CAT-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ItemReview {
    /// Submitted, waiting for the authority.
    Pending,
    /// Approved and published.
    Approved,
    /// Returned to the department for changes.
    ChangesRequested,
    /// Denied.
    Denied,
}
