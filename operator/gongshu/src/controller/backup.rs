//! The `BackupPolicy` controller: checks the schedule, time zone, RPO, age recipients and the
//! off-site endpoint (SEC-1, SEC-2) and accepts the policy; running backups is not implemented
//! yet, and the status says so.

use gongshu_api::v1alpha1::{BackupPolicy, BackupPolicyStatus, CommonStatus};
use jiff::Timestamp;
use kube::{Api, Client, ResourceExt};

use super::{Kind, SpecOnly};

impl Kind for BackupPolicy {
    const CONTROLLER: &'static str = "backuppolicy";

    fn api(client: Client, obj: &Self) -> Api<Self> {
        Api::namespaced(client, &obj.namespace().unwrap_or_default())
    }

    fn common(status: &BackupPolicyStatus) -> &CommonStatus {
        &status.common
    }
}

impl SpecOnly for BackupPolicy {
    fn desired_status(&self, now: Timestamp) -> BackupPolicyStatus {
        use gongshu_api::rules::backup as rules;
        let problems = rules::validate(&self.spec, now);
        rules::status(
            self.status.as_ref(),
            self.metadata.generation,
            &problems,
            now,
        )
    }
}
