//! The one channel (CH-1): which objects in a department namespace expose its workloads outside
//! the exchange, which filings (`ChannelExemption`) cover them, and what admission and the
//! cluster scan make of that. Pure: the webhook and the scan pass what their caches hold.
//!
//! The exchange itself is exempt by construction: it runs in the authority's namespace, which
//! is not a department namespace, so none of these rules ever sees it.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::Value;

use super::Problem;
use crate::v1alpha1::{
    ChannelExemption, ChannelMode, ChannelPolicy, ChannelReport, ChannelViolation, ExemptionPhase,
    ExposedKind, ExposedObject, GATEWAY_GROUP,
};

/// The articles that make the exchange the one channel (CH-1).
pub const ARTICLES: &str = "XJ18, XJ28, NM8, YN9, HB23";
/// How many violations a `Regulation` status lists; the count covers all.
pub const MAX_LISTED: usize = 100;

/// How one object exposes department workloads outside the exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exposure {
    /// The object's kind.
    pub kind: ExposedKind,
    /// The object's name.
    pub name: String,
    /// How, e.g. `type NodePort` or `attached to Gateway infra/public`.
    pub how: String,
    /// The field that makes it an exposure, e.g. `spec.type`.
    pub field: &'static str,
}

/// How `kind` object `name` with `spec` (its JSON) exposes workloads, if it does:
/// - a Service of type NodePort or LoadBalancer, or with externalIPs;
/// - any Ingress;
/// - a Gateway API route attached to a Gateway (with a parentRef); one attached to nothing
///   routes no traffic;
/// - a ReferenceGrant that lets routes in other namespaces use Services here as backends.
pub fn exposure(kind: ExposedKind, name: &str, spec: &Value) -> Option<Exposure> {
    let found = |how: String, field| {
        Some(Exposure {
            kind,
            name: name.to_owned(),
            how,
            field,
        })
    };
    match kind {
        ExposedKind::Service => {
            let type_ = spec
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP");
            if matches!(type_, "NodePort" | "LoadBalancer") {
                return found(format!("type {type_}"), "spec.type");
            }
            let external = spec
                .get("externalIPs")
                .and_then(Value::as_array)
                .is_some_and(|ips| !ips.is_empty());
            external
                .then(|| found("externalIPs".into(), "spec.externalIPs"))
                .flatten()
        }
        ExposedKind::Ingress => found("an Ingress".into(), "spec"),
        ExposedKind::ReferenceGrant => {
            let routes_from_elsewhere = array(spec, "from").iter().any(|from| {
                str_of(from, "group") == GATEWAY_GROUP
                    && ExposedKind::from_kind(str_of(from, "kind"))
                        .is_some_and(ExposedKind::is_route)
            });
            let to_services = array(spec, "to")
                .iter()
                .any(|to| str_of(to, "group").is_empty() && str_of(to, "kind") == "Service");
            (routes_from_elsewhere && to_services)
                .then(|| {
                    found(
                        "lets routes in other namespaces reach Services here".into(),
                        "spec.to",
                    )
                })
                .flatten()
        }
        route => {
            debug_assert!(route.is_route());
            let parents = array(spec, "parentRefs");
            let first = parents.first()?;
            let namespace = first.get("namespace").and_then(Value::as_str);
            let parent = match namespace {
                Some(ns) => format!("{ns}/{}", str_of(first, "name")),
                None => str_of(first, "name").to_owned(),
            };
            let parent_kind = first
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("Gateway");
            found(
                format!("attached to {parent_kind} {parent}"),
                "spec.parentRefs",
            )
        }
    }
}

fn array<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The mode in force in a department namespace: its `gongshu.io/channel-mode` label, else the
/// policy's.
pub fn mode(label: Option<&str>, policy: &ChannelPolicy) -> ChannelMode {
    label
        .and_then(ChannelMode::from_label)
        .unwrap_or(policy.mode)
}

/// A filing as the channel rules need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filing {
    /// The `ChannelExemption`'s name.
    pub name: String,
    /// What it covers.
    pub covers: Vec<ExposedObject>,
    /// Where it stands, for messages.
    pub phase: Option<ExemptionPhase>,
    /// Until when it admits what it covers: set only while approved for its current
    /// generation.
    pub admits_until: Option<Timestamp>,
}

impl Filing {
    /// The filing of a stored `ChannelExemption`, as its status says.
    pub fn of(exemption: &ChannelExemption) -> Self {
        let status = exemption.status.as_ref();
        let phase = status.and_then(|s| s.phase);
        let current = status.and_then(|s| s.approved_generation) == exemption.metadata.generation;
        let admits_until = (phase == Some(ExemptionPhase::Approved) && current)
            .then_some(exemption.spec.valid_until.0);
        Self {
            name: kube::ResourceExt::name_any(exemption),
            covers: exemption.spec.covers.clone(),
            phase,
            admits_until,
        }
    }

    fn covers(&self, kind: ExposedKind, name: &str) -> bool {
        self.covers.iter().any(|c| c.kind == kind && c.name == name)
    }

    fn admits(&self, now: Timestamp) -> bool {
        self.admits_until.is_some_and(|until| now < until)
    }
}

/// The approved, unexpired filing among `filings` that covers `kind` `name`, if any.
pub fn covering<'a>(
    filings: &'a [Filing],
    kind: ExposedKind,
    name: &str,
    now: Timestamp,
) -> Option<&'a Filing> {
    filings
        .iter()
        .find(|f| f.covers(kind, name) && f.admits(now))
}

/// What admission does with one object in a department namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It exposes nothing.
    Admit,
    /// It exposes workloads under the approved filing named here.
    Exempted(String),
    /// Audit mode: admitted, with this warning for the client.
    Warn(String),
    /// Enforce mode: denied.
    Deny(Problem),
}

/// The verdict on `exposure` (from [`exposure`]) in `namespace`, whose filings are `filings`.
pub fn judge(
    namespace: &str,
    exposure: Option<&Exposure>,
    filings: &[Filing],
    mode: ChannelMode,
    now: Timestamp,
) -> Verdict {
    let Some(exposure) = exposure else {
        return Verdict::Admit;
    };
    let (kind, name) = (exposure.kind, exposure.name.as_str());
    if let Some(filing) = covering(filings, kind, name, now) {
        return Verdict::Exempted(filing.name.clone());
    }
    let mut message = format!(
        "{} {name} {}: it exposes department workloads outside the exchange, the one channel for \
         sharing and opening data ({ARTICLES}). Share through a ShareGrant, or file a \
         ChannelExemption in {namespace} covering {{kind: {}, name: {name}}} and have the data \
         authority approve it with a Review (kubectl explain channelexemption.spec)",
        kind.as_str(),
        exposure.how,
        kind.as_str(),
    );
    if let Some(filing) = filings.iter().find(|f| f.covers(kind, name)) {
        let state = match filing.phase {
            Some(ExemptionPhase::Approved) if filing.admits_until.is_none() => {
                "approved for an earlier version of its spec".to_owned()
            }
            Some(ExemptionPhase::Approved) => "approved but past its validUntil".to_owned(),
            Some(phase) => format!("{phase:?}"),
            None => "not yet reviewed".to_owned(),
        };
        message.push_str(&format!(
            "; ChannelExemption {} covers it but is {state}",
            filing.name
        ));
    }
    match mode {
        ChannelMode::Enforce => Verdict::Deny(Problem::rule("CH-1", exposure.field, message)),
        // Clients show warnings on one line and the apiserver may cut them past 256
        // characters: the short form, with where to read more.
        ChannelMode::Audit => Verdict::Warn(format!(
            "gongshu audit mode (CH-1): {} {name} {} exposes workloads outside the exchange; file a ChannelExemption (kubectl explain channelexemption)",
            kind.as_str(),
            exposure.how
        )),
    }
}

/// One department namespace as the scan sees it.
#[derive(Clone, Debug)]
pub struct NamespaceScan<'a> {
    /// The namespace.
    pub namespace: &'a str,
    /// The exposures of its objects.
    pub exposures: Vec<&'a Exposure>,
    /// Its filings.
    pub filings: &'a [Filing],
}

/// What the scan found: the report for the `Regulation` status, and every violation counted
/// by namespace and kind (the report lists at most [`MAX_LISTED`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scanned {
    /// The report.
    pub report: ChannelReport,
    /// Violations by namespace and kind.
    pub counts: BTreeMap<(String, ExposedKind), i64>,
}

/// The scan over every department namespace (CH-1).
pub fn report<'a>(
    namespaces: impl IntoIterator<Item = NamespaceScan<'a>>,
    now: Timestamp,
) -> Scanned {
    let mut violations: Vec<ChannelViolation> = Vec::new();
    let mut exempted = 0;
    let mut counts = BTreeMap::new();
    for scan in namespaces {
        for exposure in scan.exposures {
            if covering(scan.filings, exposure.kind, &exposure.name, now).is_some() {
                exempted += 1;
            } else {
                *counts
                    .entry((scan.namespace.to_owned(), exposure.kind))
                    .or_default() += 1;
                violations.push(ChannelViolation {
                    namespace: scan.namespace.to_owned(),
                    kind: exposure.kind,
                    name: exposure.name.clone(),
                    how: exposure.how.clone(),
                });
            }
        }
    }
    violations.sort();
    let count = violations.len();
    violations.truncate(MAX_LISTED);
    Scanned {
        report: ChannelReport {
            violations: i32::try_from(count).unwrap_or(i32::MAX),
            exempted,
            objects: violations,
        },
        counts,
    }
}

/// A one-line summary of a report for the `Regulation`'s condition message.
pub fn summary(report: &ChannelReport) -> String {
    if report.violations == 0 {
        return format!(
            "no object in a department namespace exposes workloads outside the exchange ({} under approved exemptions)",
            report.exempted
        );
    }
    let first: Vec<String> = report
        .objects
        .iter()
        .take(5)
        .map(|v| format!("{}/{} {} ({})", v.namespace, v.kind.as_str(), v.name, v.how))
        .collect();
    let more = usize::try_from(report.violations)
        .unwrap_or(0)
        .saturating_sub(first.len());
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!(
        "{} objects in department namespaces expose workloads outside the exchange without an approved ChannelExemption (CH-1): {}{tail}",
        report.violations,
        first.join(", ")
    )
}

#[cfg(test)]
mod tests;
