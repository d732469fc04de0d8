//! What a policy's runner Jobs say (pure): whether a run or drill is still going (no overlap),
//! and which ended without their runner reporting (a Job that failed, or whose pod never
//! started), for `gongshu_api::rules::backup::decide` to record and retry.

use gongshu_api::rules::backup::decide::{Ended, RUNNER_NOT_STARTED};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;

use super::{LABEL_KIND, What};

/// Where one Job stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Not finished: a run in progress (pods pending, running or terminating).
    Running,
    /// Completed; the runner reported its result itself.
    Succeeded,
    /// Failed (`reason` and `message` from its `Failed` condition).
    Failed {
        /// `DeadlineExceeded`, `BackoffLimitExceeded`, `PodFailurePolicy`, …
        reason: String,
        /// The Job controller's message.
        message: String,
    },
    /// Unfinished, but no pod of it has been ready within the start timeout.
    NotStarted,
}

/// Whether `job` is a run or a drill, from its label.
pub fn what(job: &Job) -> Option<What> {
    match job.labels().get(LABEL_KIND).map(String::as_str) {
        Some("run") => Some(What::Run),
        Some("verify") => Some(What::Verify),
        _ => None,
    }
}

fn created(job: &Job) -> Option<Timestamp> {
    job.creation_timestamp().map(|t| t.0)
}

/// Where `job` stands at `now`; a Job whose pods were never ready for `start_timeout` after
/// its creation did not start.
pub fn state(job: &Job, now: Timestamp, start_timeout: SignedDuration) -> State {
    let status = job.status.as_ref();
    let condition = |type_: &str| {
        status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == type_ && c.status == "True"))
    };
    if condition("Complete").is_some() {
        return State::Succeeded;
    }
    if let Some(failed) = condition("Failed") {
        return State::Failed {
            reason: failed.reason.clone().unwrap_or_else(|| "Failed".into()),
            message: failed.message.clone().unwrap_or_default(),
        };
    }
    let ever_ran = status.is_some_and(|s| {
        s.ready.unwrap_or(0) > 0 || s.succeeded.unwrap_or(0) > 0 || s.failed.unwrap_or(0) > 0
    });
    let terminating =
        condition("FailureTarget").is_some() || condition("SuccessCriteriaMet").is_some();
    match created(job) {
        Some(at) if !ever_ran && !terminating && now >= at + start_timeout => State::NotStarted,
        _ => State::Running,
    }
}

/// What a policy's Jobs say at `now`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tracked {
    /// A backup Job is unfinished.
    pub backup_active: bool,
    /// A drill Job is unfinished.
    pub drill_active: bool,
    /// Jobs that failed or never started, for `decide`.
    pub ended: Vec<Ended>,
    /// Jobs that never started: deleted once their failure is recorded, so that their
    /// pending pods go and the retry is not blocked.
    pub stuck: Vec<String>,
}

/// Sorts `jobs` (one policy's) into what the scheduler needs.
pub fn track(jobs: &[Job], now: Timestamp, start_timeout: SignedDuration) -> Tracked {
    let mut tracked = Tracked::default();
    for job in jobs {
        let Some(what) = what(job) else { continue };
        let drill = what == What::Verify;
        let ended = |reason: &str, message: String| Ended {
            drill,
            name: job.name_any(),
            created: created(job).unwrap_or(now),
            reason: reason.to_owned(),
            message,
        };
        match state(job, now, start_timeout) {
            State::Running if drill => tracked.drill_active = true,
            State::Running => tracked.backup_active = true,
            State::Succeeded => {}
            State::Failed { reason, message } => tracked.ended.push(ended(&reason, message)),
            State::NotStarted => {
                tracked.ended.push(ended(
                    RUNNER_NOT_STARTED,
                    format!(
                        "its pod was not running {}s after the Job was created (image not \
                         pulled, unschedulable, a missing claim, …: see the pod's Events); \
                         the Job was deleted",
                        start_timeout.as_secs()
                    ),
                ));
                tracked.stuck.push(job.name_any());
            }
        }
    }
    tracked
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn job(yaml: &str) -> Job {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const TIMEOUT: SignedDuration = SignedDuration::from_secs(600);

    const PENDING: &str = "
metadata:
  name: nightly-r202611221800-0
  creationTimestamp: '2026-11-22T18:00:05Z'
  labels: {gongshu.io/backup: run}
status:
  active: 1
  ready: 0
";

    #[test]
    fn an_unfinished_job_is_a_run_in_progress_until_its_pod_fails_to_start_in_time() {
        let pending = job(PENDING);
        let t = track(
            std::slice::from_ref(&pending),
            ts("2026-11-22T18:05:00Z"),
            TIMEOUT,
        );
        assert!(t.backup_active && !t.drill_active && t.ended.is_empty());
        let t = track(&[pending], ts("2026-11-22T18:10:05Z"), TIMEOUT);
        assert!(!t.backup_active);
        assert_eq!(t.stuck, ["nightly-r202611221800-0"]);
        assert_eq!(t.ended[0].reason, RUNNER_NOT_STARTED);
        assert_eq!(t.ended[0].created, ts("2026-11-22T18:00:05Z"));
        assert!(!t.ended[0].drill);
    }

    #[test]
    fn a_job_whose_pod_ran_is_never_declared_not_started() {
        let running = job(&PENDING.replace("ready: 0", "ready: 1"));
        let t = track(&[running], ts("2026-11-23T18:00:00Z"), TIMEOUT);
        assert!(t.backup_active && t.stuck.is_empty());
    }

    #[test]
    fn a_failed_job_ends_with_its_conditions_reason_and_a_completed_one_is_done() {
        let failed = job(&format!(
            "{}  conditions:
  - {{type: FailureTarget, status: 'True', reason: DeadlineExceeded}}
  - {{type: Failed, status: 'True', reason: DeadlineExceeded, message: Job was active longer than specified deadline}}
",
            PENDING.replace("run}", "verify}")
        ));
        let t = track(&[failed], ts("2026-11-22T18:01:00Z"), TIMEOUT);
        assert!(!t.drill_active && !t.backup_active);
        assert_eq!(t.ended.len(), 1);
        assert!(t.ended[0].drill);
        assert_eq!(t.ended[0].reason, "DeadlineExceeded");
        assert!(t.ended[0].message.contains("deadline"));
        assert!(t.stuck.is_empty());
        let done = job(&format!(
            "{}  conditions:\n  - {{type: Complete, status: 'True'}}\n",
            PENDING
        ));
        assert_eq!(
            track(&[done], ts("2026-11-23T00:00:00Z"), TIMEOUT),
            Tracked::default()
        );
    }

    #[test]
    fn a_job_that_is_terminating_still_counts_as_running() {
        // FailureTarget is set before the pods are gone: no new run may start yet.
        let terminating = job(&format!(
            "{}  conditions:\n  - {{type: FailureTarget, status: 'True', reason: PodFailurePolicy}}\n",
            PENDING
        ));
        let t = track(&[terminating], ts("2026-11-23T00:00:00Z"), TIMEOUT);
        assert!(t.backup_active && t.ended.is_empty());
    }

    #[test]
    fn jobs_without_the_kind_label_are_not_runners() {
        let other = job(&PENDING.replace("gongshu.io/backup: run", "app: other"));
        assert_eq!(
            track(&[other], ts("2026-11-23T00:00:00Z"), TIMEOUT),
            Tracked::default()
        );
    }
}
