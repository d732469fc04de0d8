//! `DataCatalog`: the catalog must live in a department's namespace, each item names its one
//! source department (CAT-4) and states the basis of any restriction (CAT-8); every new or
//! changed item goes to the authority's review (CAT-2).

use sha2::{Digest, Sha256};

use super::{Problem, require_text, require_unique, syntax::is_dns_label};
use crate::v1alpha1::{CatalogItem, DataCatalogSpec, LABEL_DEPARTMENT, OpenType, ShareType};

/// Field path of problems with the catalog's namespace rather than its spec.
const NAMESPACE_FIELD: &str = "metadata.namespace";

/// What a catalog's rules need besides its spec.
#[derive(Clone, Copy, Debug)]
pub struct CatalogContext<'a> {
    /// The namespace the catalog lives in.
    pub namespace: &'a str,
    /// The value of the namespace's `gongshu.io/department` label, if it has one.
    pub department: Option<&'a str>,
}

/// Every problem of a catalog in its namespace.
pub fn validate(spec: &DataCatalogSpec, ctx: &CatalogContext<'_>) -> Vec<Problem> {
    let mut problems = Vec::new();
    match ctx.department {
        None => problems.push(Problem::new(
            NAMESPACE_FIELD,
            format!(
                "namespace {} is not a department: label it {LABEL_DEPARTMENT}=<department code>",
                ctx.namespace
            ),
        )),
        Some(code) if !is_dns_label(code) => problems.push(Problem::new(
            NAMESPACE_FIELD,
            format!(
                "namespace {} has label {LABEL_DEPARTMENT}={code:?}, which is not a department \
                 code (lower-case letters, digits and dashes)",
                ctx.namespace
            ),
        )),
        Some(_) => {}
    }
    require_unique(
        &mut problems,
        "spec.items",
        spec.items.iter().map(|i| i.identifier.as_str()),
    );
    for (i, item) in spec.items.iter().enumerate() {
        validate_item(&mut problems, &format!("spec.items[{i}]"), item);
    }
    problems
}

fn validate_item(problems: &mut Vec<Problem>, path: &str, item: &CatalogItem) {
    if !is_dns_label(&item.source_department) {
        problems.push(Problem::rule(
            "CAT-4",
            format!("{path}.sourceDepartment"),
            format!(
                "{:?} is not a department code (lower-case letters, digits and dashes, at most \
                 63): name the one department that collects this data",
                item.source_department
            ),
        ));
    }
    require_text(
        problems,
        Some("CAT-1"),
        format!("{path}.title"),
        &item.title,
    );
    require_text(
        problems,
        Some("CAT-7"),
        format!("{path}.classification.category"),
        &item.classification.category,
    );
    if item.share_type != ShareType::Unconditional {
        let basis = item.legal_basis.as_deref().unwrap_or_default();
        require_text(problems, Some("CAT-8"), format!("{path}.legalBasis"), basis);
    }
    if item.share_type == ShareType::Conditional {
        let conditions = item.share_conditions.as_deref().unwrap_or_default();
        require_text(
            problems,
            Some("CAT-8"),
            format!("{path}.shareConditions"),
            conditions,
        );
    }
    if item.open_type == OpenType::Conditional {
        let conditions = item.open_conditions.as_deref().unwrap_or_default();
        require_text(
            problems,
            Some("OP-1"),
            format!("{path}.openConditions"),
            conditions,
        );
    }
    require_unique(
        problems,
        &format!("{path}.fields"),
        item.fields.iter().map(|f| f.name.as_str()),
    );
}

/// `sha256:` digest of an item's JSON form: what the authority's review covers.
pub fn item_digest(item: &CatalogItem) -> String {
    // Serializing plain data structs with string keys cannot fail.
    let json = serde_json::to_vec(item).unwrap_or_default();
    let hash = Sha256::digest(&json);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests;
