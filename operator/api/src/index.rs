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

/// Every declared item, by identifier; kept up to date one catalog at a time
/// ([`upsert`](Self::upsert), [`remove`](Self::remove)) so that a watch can maintain it
/// without rebuilding it for every question.
#[derive(Clone, Debug, Default)]
pub struct CatalogIndex {
    items: BTreeMap<String, Vec<ItemRef>>,
    /// The identifiers each catalog (`namespace`, `name`) declares, to undo its entries.
    by_catalog: BTreeMap<(String, String), Vec<String>>,
}

impl CatalogIndex {
    /// Indexes `catalogs`.
    pub fn build<'a>(catalogs: impl IntoIterator<Item = &'a DataCatalog>) -> Self {
        let mut index = Self::default();
        for catalog in catalogs {
            index.upsert(catalog);
        }
        index
    }

    /// Indexes `catalog` as it is now, replacing whatever it declared before.
    pub fn upsert(&mut self, catalog: &DataCatalog) {
        let namespace = catalog.namespace().unwrap_or_default();
        let name = catalog.name_any();
        self.remove(&namespace, &name);
        let reviews = catalog
            .status
            .as_ref()
            .map(|s| s.items.as_slice())
            .unwrap_or_default();
        let mut declared = Vec::with_capacity(catalog.spec.items.len());
        for item in &catalog.spec.items {
            let review = reviews
                .iter()
                .find(|s| s.identifier == item.identifier)
                .map(|s| s.review);
            self.items
                .entry(item.identifier.clone())
                .or_default()
                .push(ItemRef {
                    namespace: namespace.clone(),
                    catalog: name.clone(),
                    item: item.clone(),
                    review,
                });
            declared.push(item.identifier.clone());
        }
        self.by_catalog.insert((namespace, name), declared);
    }

    /// Forgets catalog `namespace/name`.
    pub fn remove(&mut self, namespace: &str, name: &str) {
        let Some(declared) = self
            .by_catalog
            .remove(&(namespace.to_owned(), name.to_owned()))
        else {
            return;
        };
        for identifier in declared {
            if let Some(refs) = self.items.get_mut(&identifier) {
                refs.retain(|r| !(r.namespace == namespace && r.catalog == name));
                if refs.is_empty() {
                    self.items.remove(&identifier);
                }
            }
        }
    }

    /// How many catalogs are indexed.
    pub fn catalogs(&self) -> usize {
        self.by_catalog.len()
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const PUBLIC_SECURITY: &str = include_str!("../../../examples/20-catalog-public-security.yaml");
    const MARKET: &str = include_str!("../../../examples/21-catalog-market-regulation.yaml");

    fn parse(yaml: &str) -> DataCatalog {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn identifiers(index: &CatalogIndex) -> Vec<(String, usize)> {
        index
            .items
            .iter()
            .map(|(id, refs)| (id.clone(), refs.len()))
            .collect()
    }

    #[test]
    fn an_edited_catalog_replaces_its_items_and_a_deleted_one_leaves_none() {
        let security = parse(PUBLIC_SECURITY);
        let market = parse(MARKET);
        let mut index = CatalogIndex::build([&security, &market]);
        let first = security.spec.items[0].identifier.clone();
        assert!(index.get(&first).is_some());

        let mut edited = security.clone();
        edited.spec.items.remove(0);
        index.upsert(&edited);
        assert!(index.get(&first).is_none(), "a dropped item is forgotten");
        assert_eq!(
            identifiers(&index),
            identifiers(&CatalogIndex::build([&edited, &market])),
            "incremental and rebuilt indexes agree"
        );

        index.remove(&market.namespace().unwrap_or_default(), &market.name_any());
        assert_eq!(
            identifiers(&index),
            identifiers(&CatalogIndex::build([&edited]))
        );
        assert_eq!(index.catalogs(), 1);
    }

    #[test]
    fn two_catalogs_declaring_one_item_stay_a_conflict_until_one_goes_cat_4() {
        let security = parse(PUBLIC_SECURITY);
        let mut copy = security.clone();
        copy.metadata.namespace = Some("elsewhere".into());
        let mut index = CatalogIndex::build([&security, &copy]);
        let id = &security.spec.items[0].identifier;
        assert_eq!(index.declarations(id).len(), 2);
        assert!(index.get(id).is_none());
        index.remove("elsewhere", &copy.name_any());
        assert_eq!(index.declarations(id).len(), 1);
    }
}
