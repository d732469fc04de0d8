//! The catalog index: every declared item by identifier, built from the `DataCatalog`s a
//! controller or the admission webhook has in its cache. Items are cluster-unique (CAT-4), so
//! an identifier with two declarations is itself a finding.

use std::collections::BTreeMap;

use kube::ResourceExt;

use crate::v1alpha1::{CatalogItem, DataCatalog, ItemReview};

/// Where an item is declared, and whether the authority approved it.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemRef {
    /// Namespace of the catalog (the provider's namespace).
    pub namespace: String,
    /// Name of the `DataCatalog`.
    pub catalog: String,
    /// The item as declared.
    pub item: CatalogItem,
    /// The authority's review state of the item, if the operator recorded one.
    pub review: Option<ItemReview>,
}

impl ItemRef {
    /// `namespace/catalog`, for messages.
    pub fn catalog_key(&self) -> String {
        format!("{}/{}", self.namespace, self.catalog)
    }

    /// Whether the authority approved the item as it is declared now (CAT-2).
    pub fn is_approved(&self) -> bool {
        self.review == Some(ItemReview::Approved)
    }
}

/// Every declared item, by identifier.
#[derive(Clone, Debug, Default)]
pub struct CatalogIndex {
    items: BTreeMap<String, Vec<ItemRef>>,
}

impl CatalogIndex {
    /// Indexes `catalogs`.
    pub fn build<'a>(catalogs: impl IntoIterator<Item = &'a DataCatalog>) -> Self {
        let mut items: BTreeMap<String, Vec<ItemRef>> = BTreeMap::new();
        for catalog in catalogs {
            let namespace = catalog.namespace().unwrap_or_default();
            let reviews = catalog
                .status
                .as_ref()
                .map(|s| s.items.as_slice())
                .unwrap_or_default();
            for item in &catalog.spec.items {
                let review = reviews
                    .iter()
                    .find(|s| s.identifier == item.identifier)
                    .map(|s| s.review);
                items
                    .entry(item.identifier.clone())
                    .or_default()
                    .push(ItemRef {
                        namespace: namespace.clone(),
                        catalog: catalog.name_any(),
                        item: item.clone(),
                        review,
                    });
            }
        }
        Self { items }
    }

    /// Every declaration of `identifier` (more than one is a CAT-4 conflict).
    pub fn declarations(&self, identifier: &str) -> &[ItemRef] {
        self.items
            .get(identifier)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The one declaration of `identifier`, if there is exactly one.
    pub fn get(&self, identifier: &str) -> Option<&ItemRef> {
        match self.declarations(identifier) {
            [one] => Some(one),
            _ => None,
        }
    }
}
