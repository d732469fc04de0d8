//! The `Regulation` controller: builds the work calendar from the object (naming the year or
//! date of any error), publishes the deadline table in force with its overrides (SH-4), and
//! warns when the calendar lacks a year that deadlines are counted in. Only the `Regulation`
//! named `default` is in force.

use gongshu_api::v1alpha1::{CommonStatus, Regulation, RegulationStatus};
use jiff::Timestamp;
use kube::{Api, Client, ResourceExt};

use super::{Kind, SpecOnly};

impl Kind for Regulation {
    const CONTROLLER: &'static str = "regulation";

    fn api(client: Client, _: &Self) -> Api<Self> {
        Api::all(client)
    }

    fn common(status: &RegulationStatus) -> &CommonStatus {
        &status.common
    }
}

impl SpecOnly for Regulation {
    /// The safety requeue also re-checks calendar coverage when the year turns.
    fn desired_status(&self, now: Timestamp) -> RegulationStatus {
        use gongshu_api::rules::regulation as rules;
        let checked = rules::check(&self.spec);
        rules::status(
            &self.name_any(),
            &self.spec,
            self.status.as_ref(),
            self.metadata.generation,
            &checked,
            now,
        )
    }
}
