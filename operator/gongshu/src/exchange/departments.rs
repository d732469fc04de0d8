//! Department codes by namespace, from a metadata-only watch of the namespaces labelled
//! `gongshu.io/department`: the `department` label of the exchange's request metrics is the
//! code of the grant's namespace (the consumer), which the grant itself does not carry.

use std::{
    collections::HashMap,
    sync::{Arc, PoisonError, RwLock, atomic::AtomicUsize},
};

use gongshu_api::v1alpha1::LABEL_DEPARTMENT;
use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, Client, ResourceExt, core::PartialObjectMeta, runtime::watcher};

use crate::{
    cache::{self, Change},
    shutdown::Shutdown,
};

/// Namespace name → department code. Cloning shares the view.
#[derive(Clone, Debug, Default)]
pub struct Departments {
    view: Arc<RwLock<HashMap<String, Arc<str>>>>,
}

impl Departments {
    /// Keeps the view up to date until `stop`. Until the first list completes (or without the
    /// RBAC to list namespaces) every namespace is unknown; nothing else waits for it.
    pub fn watch(client: Client, stop: &Shutdown) -> Self {
        let departments = Self::default();
        // Metadata only: the labels are all it reads.
        let namespaces = Api::<PartialObjectMeta<Namespace>>::all(client);
        cache::feed(
            watcher(
                namespaces,
                watcher::Config::default().labels(LABEL_DEPARTMENT),
            ),
            // Not the exchange's readiness counter: metrics labels do not gate serving.
            &Arc::new(AtomicUsize::new(0)),
            stop,
            "exchange departments",
            cache::relisting(departments.view.clone(), apply),
        );
        departments
    }

    /// The department code of `namespace`, if it is a department.
    pub fn of(&self, namespace: &str) -> Option<Arc<str>> {
        self.view
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(namespace)
            .cloned()
    }
}

fn apply(view: &mut HashMap<String, Arc<str>>, change: Change<'_, PartialObjectMeta<Namespace>>) {
    match change {
        Change::Apply(namespace) => match namespace.labels().get(LABEL_DEPARTMENT) {
            Some(code) => {
                view.insert(namespace.name_any(), Arc::from(code.as_str()));
            }
            None => {
                view.remove(&namespace.name_any());
            }
        },
        Change::Delete(namespace) => {
            view.remove(&namespace.name_any());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use kube::api::{ObjectMeta, PartialObjectMetaExt};

    use super::*;

    fn namespace(name: &str, code: Option<&str>) -> PartialObjectMeta<Namespace> {
        ObjectMeta {
            name: Some(name.into()),
            labels: code.map(|c| [(LABEL_DEPARTMENT.to_owned(), c.to_owned())].into()),
            ..ObjectMeta::default()
        }
        .into_response_partial()
    }

    #[test]
    fn a_namespace_maps_to_its_department_label_until_it_loses_it() {
        let mut view = HashMap::new();
        apply(
            &mut view,
            Change::Apply(&namespace("dept-tax", Some("tax"))),
        );
        assert_eq!(view.get("dept-tax").map(|c| &**c), Some("tax"));
        apply(&mut view, Change::Apply(&namespace("dept-tax", None)));
        assert!(view.is_empty());
        apply(
            &mut view,
            Change::Apply(&namespace("dept-tax", Some("tax"))),
        );
        apply(
            &mut view,
            Change::Delete(&namespace("dept-tax", Some("tax"))),
        );
        assert!(view.is_empty());
    }
}
