//! The `Review` controller: checks a decision (reasons for refusals, an exact subject) and
//! records it; applying decisions to their subjects is not implemented yet, and the status says
//! so.

use gongshu_api::v1alpha1::{CommonStatus, Review, ReviewStatus};
use jiff::Timestamp;
use kube::{Api, Client, ResourceExt};

use super::{Kind, SpecOnly};

impl Kind for Review {
    const CONTROLLER: &'static str = "review";

    fn api(client: Client, obj: &Self) -> Api<Self> {
        Api::namespaced(client, &obj.namespace().unwrap_or_default())
    }

    fn common(status: &ReviewStatus) -> &CommonStatus {
        &status.common
    }
}

impl SpecOnly for Review {
    fn desired_status(&self, now: Timestamp) -> ReviewStatus {
        use gongshu_api::rules::review as rules;
        let problems = rules::validate(&self.spec);
        rules::status(
            self.status.as_ref(),
            self.metadata.generation,
            &problems,
            now,
        )
    }
}
