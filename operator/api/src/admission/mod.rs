//! The rules the admission webhook enforces: those that need other objects than the one being
//! admitted (the CRDs' CEL rules cover the rest). Pure: the webhook passes what its caches hold.
//! Every problem names the field, the rule id and what to do.

use crate::{
    index::CatalogIndex,
    rules::Problem,
    v1alpha1::{DataCatalogSpec, ReviewSpec, ShareGrantSpec, ShareMode, ShareType, SubjectKind},
};

/// What the webhook knows about the cluster when it judges one object.
#[derive(Debug)]
pub struct Cluster<'a> {
    /// Every declared catalog item.
    pub catalogs: &'a CatalogIndex,
    /// The data authority's namespace (from the `Regulation` in force).
    pub authority_namespace: &'a str,
}

/// The department a namespace belongs to (its `gongshu.io/department` label), if any.
pub type DepartmentOf<'a> = &'a dyn Fn(&str) -> Option<String>;

fn department_problem(namespace: &str, department_of: DepartmentOf<'_>) -> Option<Problem> {
    department_of(namespace).is_none().then(|| {
        Problem::new(
            "metadata.namespace",
            format!(
                "namespace {namespace} is not a department: label it gongshu.io/department=<code> \
                 (and gongshu.io/level) before it declares or requests data"
            ),
        )
    })
}

/// A `DataCatalog` in `namespace`/`name`: the namespace is a department, and no item is
/// declared by another catalog too (CAT-4: one data, one source).
pub fn catalog(
    namespace: &str,
    name: &str,
    spec: &DataCatalogSpec,
    cluster: &Cluster<'_>,
    department_of: DepartmentOf<'_>,
) -> Vec<Problem> {
    let mut problems: Vec<Problem> = department_problem(namespace, department_of)
        .into_iter()
        .collect();
    for (i, item) in spec.items.iter().enumerate() {
        let elsewhere = cluster
            .catalogs
            .declarations(&item.identifier)
            .iter()
            .find(|other| !(other.namespace == namespace && other.catalog == name));
        if let Some(other) = elsewhere {
            problems.push(Problem::rule(
                "CAT-4",
                format!("spec.items[{i}].identifier"),
                format!(
                    "item {} is already declared by catalog {} (source department {}): each data \
                     item has one source department; request it with a ShareGrant instead of \
                     declaring it again",
                    item.identifier,
                    other.catalog_key(),
                    other.item.source_department
                ),
            ));
        }
    }
    problems
}

/// A `ChannelExemption` in `namespace`: only a department files one (CH-1).
pub fn exemption(namespace: &str, department_of: DepartmentOf<'_>) -> Vec<Problem> {
    department_problem(namespace, department_of)
        .into_iter()
        .collect()
}

/// A `ShareGrant` in `namespace`: a department requests a published item, only fields the item
/// shares (SH-5), and a not-shared item only for verification (SH-7).
pub fn grant(
    namespace: &str,
    spec: &ShareGrantSpec,
    cluster: &Cluster<'_>,
    department_of: DepartmentOf<'_>,
) -> Vec<Problem> {
    let mut problems: Vec<Problem> = department_problem(namespace, department_of)
        .into_iter()
        .collect();
    let declarations = cluster.catalogs.declarations(&spec.item);
    let Some(found) = cluster.catalogs.get(&spec.item) else {
        problems.push(Problem::new(
            "spec.item",
            if declarations.is_empty() {
                format!("no catalog declares item {}; list items with `kubectl get datacatalogs -A`", spec.item)
            } else {
                format!("item {} is declared by {} catalogs; the authority must resolve the conflict first (CAT-4)", spec.item, declarations.len())
            },
        ));
        return problems;
    };
    if !found.is_approved() {
        problems.push(Problem::rule(
            "CAT-2",
            "spec.item",
            format!(
                "item {} is not yet published: the data authority has not approved it; request it once it is",
                spec.item
            ),
        ));
    }
    let item = &found.item;
    if item.share_type == ShareType::NotShared && spec.mode != ShareMode::Verify {
        problems.push(Problem::rule(
            "SH-7",
            "spec.mode",
            format!(
                "item {} is notShared: only verification is answered; set mode: verify",
                spec.item
            ),
        ));
    }
    for (i, name) in spec.fields.iter().enumerate() {
        match item.fields.iter().find(|f| &f.name == name) {
            None => {
                let known: Vec<&str> = item.fields.iter().map(|f| f.name.as_str()).collect();
                problems.push(Problem::rule(
                    "SH-5",
                    format!("spec.fields[{i}]"),
                    format!(
                        "item {} has no field {name}; its fields are {}",
                        spec.item,
                        known.join(", ")
                    ),
                ));
            }
            Some(field) if !field.shareable && spec.mode != ShareMode::Verify => {
                problems.push(Problem::rule(
                    "SH-5",
                    format!("spec.fields[{i}]"),
                    format!(
                        "field {name} of {} is not shareable: request only shareable fields, or \
                         use mode: verify to match against it without seeing it (SH-7)",
                        spec.item
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    problems
}

/// A `Review` created in `namespace`: it decides only within the reviewer's remit, so that
/// RBAC on one's own namespace proves who decided (DESIGN.md "Tenancy"). `grant_item` looks up
/// the item a `ShareGrant` requests.
pub fn review(
    namespace: &str,
    spec: &ReviewSpec,
    cluster: &Cluster<'_>,
    grant_item: &dyn Fn(&str, &str) -> Option<String>,
) -> Vec<Problem> {
    let authority = cluster.authority_namespace;
    let subject = &spec.subject;
    match subject.kind {
        SubjectKind::ShareGrant => {
            let Some(item) = grant_item(&subject.namespace, &subject.name) else {
                return vec![Problem::new(
                    "spec.subject",
                    format!(
                        "ShareGrant {}/{} does not exist",
                        subject.namespace, subject.name
                    ),
                )];
            };
            let provider = cluster.catalogs.get(&item).map(|i| i.namespace.clone());
            if namespace == authority || provider.as_deref() == Some(namespace) {
                return Vec::new();
            }
            vec![Problem::rule(
                "SH-4",
                "metadata.namespace",
                format!(
                    "a ShareGrant is decided by its provider ({}) or by the data authority ({authority}); \
                     create this Review in one of those namespaces",
                    provider.unwrap_or_else(|| "unknown".into())
                ),
            )]
        }
        SubjectKind::CatalogItem => {
            let mut problems = Vec::new();
            if namespace != authority {
                problems.push(Problem::rule(
                    "CAT-2",
                    "metadata.namespace",
                    format!("catalog items are reviewed by the data authority: create this Review in namespace {authority}"),
                ));
            }
            let item = subject.item.as_deref().unwrap_or_default();
            let declared = cluster
                .catalogs
                .declarations(item)
                .iter()
                .any(|d| d.namespace == subject.namespace && d.catalog == subject.name);
            if !declared {
                problems.push(Problem::new(
                    "spec.subject",
                    format!(
                        "catalog {}/{} declares no item {item}",
                        subject.namespace, subject.name
                    ),
                ));
            }
            problems
        }
        _ if namespace == authority => Vec::new(),
        kind => vec![Problem::new(
            "metadata.namespace",
            format!(
                "a {kind:?} is decided by the data authority: create this Review in namespace {authority}"
            ),
        )],
    }
}

/// The message of a denial: every problem, one per line, most important first.
pub fn denial_message(kind: &str, problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    format!("{kind} denied by gongshu: {}", lines.join("; "))
}

#[cfg(test)]
mod tests;
