//! The one channel (CH-1, CH-2): `ChannelExemption`, a department's filing (报备) of a separate
//! channel that cannot be merged into the exchange, and the channel policy of a `Regulation`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    common::{CommonStatus, DNS_SUBDOMAIN},
    grant::{Decision, IgnoredReview},
};

/// Namespace label that sets how a department namespace's channel rules apply, overriding the
/// `Regulation`'s `spec.channels.mode`: `enforce` or `audit`.
pub const LABEL_CHANNEL_MODE: &str = "gongshu.io/channel-mode";

/// The filing (报备) of a separate channel that exposes department workloads outside the
/// exchange, with why it cannot be merged, its legal basis and an end date (CH-1). The data
/// authority approves it with a `Review`; while approved and unexpired, admission lets the
/// covered objects through.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gongshu.io",
    version = "v1alpha1",
    kind = "ChannelExemption",
    namespaced,
    status = "ChannelExemptionStatus",
    shortname = "chx",
    category = "gongshu",
    doc = "A department's filing of a separate channel that cannot go through the exchange (CH-1); admitted once the data authority approves it.",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Until","type":"string","jsonPath":".spec.validUntil"}"#,
    printcolumn = r#"{"name":"Enforce","type":"boolean","jsonPath":".spec.enforce","priority":1}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ChannelExemptionSpec {
    /// The objects in this namespace the filing covers: each Service (NodePort, LoadBalancer
    /// or externalIPs), Ingress, Gateway API route or ReferenceGrant of the separate channel.
    /// List a route's backend Service too, so that the network path to its pods is opened.
    #[schemars(length(min = 1, max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["kind", "name"]))]
    pub covers: Vec<ExposedObject>,
    /// Why the data cannot go through the exchange, the one channel (CH-1: a channel that
    /// cannot be merged is filed with the authority).
    #[schemars(length(min = 10, max = 4096))]
    pub justification: String,
    /// The legal basis of the separate channel: the approval, document or article it rests on
    /// (PJ5: building one needs the authority's approval).
    #[schemars(length(min = 1, max = 2048))]
    pub legal_basis: String,
    /// The end of the exemption. From this instant the covered objects are violations again.
    pub valid_until: Time,
    /// When the exemption ends (expiry or revocation), delete the covered objects instead of
    /// only reporting them.
    #[serde(default)]
    pub enforce: bool,
}

/// An object of a separate channel, by kind and name, in the exemption's namespace.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct ExposedObject {
    /// The object's kind.
    pub kind: ExposedKind,
    /// The object's name.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN))]
    pub name: String,
}

/// The kinds that can expose department workloads outside the exchange (CH-1).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum ExposedKind {
    /// A `Service` of type NodePort or LoadBalancer, or with externalIPs.
    Service,
    /// An `Ingress` (networking.k8s.io).
    Ingress,
    /// A Gateway API `HTTPRoute`.
    HTTPRoute,
    /// A Gateway API `GRPCRoute`.
    GRPCRoute,
    /// A Gateway API `TCPRoute`.
    TCPRoute,
    /// A Gateway API `TLSRoute`.
    TLSRoute,
    /// A Gateway API `UDPRoute`.
    UDPRoute,
    /// A Gateway API `ReferenceGrant` that lets routes in other namespaces reach Services here.
    ReferenceGrant,
}

impl ExposedKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 8] = [
        Self::Service,
        Self::Ingress,
        Self::HTTPRoute,
        Self::GRPCRoute,
        Self::TCPRoute,
        Self::TLSRoute,
        Self::UDPRoute,
        Self::ReferenceGrant,
    ];

    /// The Kubernetes kind name, e.g. `HTTPRoute`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Service => "Service",
            Self::Ingress => "Ingress",
            Self::HTTPRoute => "HTTPRoute",
            Self::GRPCRoute => "GRPCRoute",
            Self::TCPRoute => "TCPRoute",
            Self::TLSRoute => "TLSRoute",
            Self::UDPRoute => "UDPRoute",
            Self::ReferenceGrant => "ReferenceGrant",
        }
    }

    /// The kind named `kind`, if it is one of these.
    pub fn from_kind(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == kind)
    }

    /// The API group, `""` for the core group.
    pub fn group(self) -> &'static str {
        match self {
            Self::Service => "",
            Self::Ingress => "networking.k8s.io",
            _ => GATEWAY_GROUP,
        }
    }

    /// The resource (plural) name, e.g. `httproutes`.
    pub fn plural(self) -> &'static str {
        match self {
            Self::Service => "services",
            Self::Ingress => "ingresses",
            Self::HTTPRoute => "httproutes",
            Self::GRPCRoute => "grpcroutes",
            Self::TCPRoute => "tcproutes",
            Self::TLSRoute => "tlsroutes",
            Self::UDPRoute => "udproutes",
            Self::ReferenceGrant => "referencegrants",
        }
    }

    /// Whether this is a Gateway API route kind.
    pub fn is_route(self) -> bool {
        self.group() == GATEWAY_GROUP && self != Self::ReferenceGrant
    }
}

/// The Gateway API group.
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// Where a filing stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ExemptionPhase {
    /// Waiting for the data authority's Review (of this generation).
    Pending,
    /// Approved and not expired: the covered objects are admitted.
    Approved,
    /// Returned for changes; edit the spec and the filing is pending again.
    ChangesRequested,
    /// Refused by the authority. Final: file anew with a new ChannelExemption.
    Denied,
    /// Withdrawn by the authority. Final.
    Revoked,
    /// Past `validUntil`. Edit `validUntil` and have the new generation approved to renew.
    Expired,
}

/// Observed state of a filing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelExemptionStatus {
    /// Generation and conditions (kstatus). `Ready` is true while the exemption is approved
    /// and unexpired.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Where the filing stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ExemptionPhase>,
    /// The generation under review and when the operator first saw it: a Review that names no
    /// generation decides the one under review when the Review was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<ExemptionRequest>,
    /// The authority's last decision that was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// The `metadata.generation` the approval covers; an edit after approval needs a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_generation: Option<i64>,
    /// Covered objects that still existed when the exemption ended: violations of CH-1 now
    /// (removed by the operator when `enforce` is set).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_over: Vec<ExposedObject>,
    /// Covered objects the operator deleted when the exemption ended (`enforce`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<ExposedObject>,
    /// Reviews that were not applied, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored_reviews: Vec<IgnoredReview>,
}

/// The generation of a filing under review.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExemptionRequest {
    /// The `metadata.generation` under review.
    pub generation: i64,
    /// When the operator first saw it.
    pub received: Time,
}

/// How the channel rules apply (CH-1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ChannelMode {
    /// Admission denies objects that expose department workloads outside the exchange.
    #[default]
    Enforce,
    /// Admission admits them with a warning; the scan reports them in the `Regulation` status,
    /// as Events and as metrics.
    Audit,
}

impl ChannelMode {
    /// The mode a namespace label value names, if it names one.
    pub fn from_label(value: &str) -> Option<Self> {
        match value {
            "enforce" => Some(Self::Enforce),
            "audit" => Some(Self::Audit),
            _ => None,
        }
    }
}

/// The channel policy of a `Regulation` (CH-1, CH-2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelPolicy {
    /// `enforce` (deny at admission) or `audit` (admit, report). A department namespace's
    /// `gongshu.io/channel-mode` label overrides it.
    #[serde(default)]
    pub mode: ChannelMode,
    /// Maintain a NetworkPolicy in every department namespace so that it accepts traffic only
    /// from its own pods and the exchange, and reaches other departments only through the
    /// exchange (CH-1, CH-2).
    #[serde(default = "default_true")]
    pub network_isolation: bool,
    /// Address ranges (CIDR) outside the cluster that department pods may reach, e.g. the
    /// unified e-government network (CH-2). Other departments are never reachable directly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub egress_cidrs: Vec<String>,
}

impl Default for ChannelPolicy {
    fn default() -> Self {
        Self {
            mode: ChannelMode::default(),
            network_isolation: true,
            egress_cidrs: Vec::new(),
        }
    }
}

fn default_true() -> bool {
    true
}

/// What the channel scan found, in the `Regulation` status (CH-1).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelReport {
    /// Objects in department namespaces that expose workloads outside the exchange without an
    /// approved exemption.
    pub violations: i32,
    /// Objects admitted under an approved exemption.
    pub exempted: i32,
    /// The violations, sorted by namespace, kind and name; at most 100 are listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<ChannelViolation>,
}

/// One object that exposes department workloads outside the exchange.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelViolation {
    /// The department namespace.
    pub namespace: String,
    /// The object's kind.
    pub kind: ExposedKind,
    /// The object's name.
    pub name: String,
    /// How it exposes workloads, e.g. `type NodePort`.
    pub how: String,
}
