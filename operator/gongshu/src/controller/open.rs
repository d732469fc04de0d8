//! The `OpenDataset` controller: checks what can be checked in the object alone (OP-3, OP-4,
//! OP-6) and accepts it; publishing is not implemented yet, and the status says so.

use gongshu_api::v1alpha1::{CommonStatus, OpenDataset, OpenDatasetStatus};
use jiff::Timestamp;
use kube::{Api, Client, ResourceExt};

use super::{Kind, SpecOnly};

impl Kind for OpenDataset {
    const CONTROLLER: &'static str = "opendataset";

    fn api(client: Client, obj: &Self) -> Api<Self> {
        Api::namespaced(client, &obj.namespace().unwrap_or_default())
    }

    fn common(status: &OpenDatasetStatus) -> &CommonStatus {
        &status.common
    }
}

impl SpecOnly for OpenDataset {
    fn desired_status(&self, now: Timestamp) -> OpenDatasetStatus {
        use gongshu_api::rules::open as rules;
        let problems = rules::validate(&self.spec);
        rules::status(
            self.status.as_ref(),
            self.metadata.generation,
            &problems,
            now,
        )
    }
}
