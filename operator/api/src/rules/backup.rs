//! `BackupPolicy`: encrypted backups at regular intervals, local and off-site (SEC-1), sent over
//! secure transport (SEC-2).
//!
//! [`validate`] checks a spec; [`schedule`] says when runs are due, [`decide`] what the
//! operator does about it, and [`retention`] which backups to delete.

pub mod decide;
pub mod job;
pub mod retention;
pub mod schedule;

use croner::{
    Cron,
    parser::{CronParser, Seconds, Year},
};
use jiff::{SignedDuration, Timestamp, tz::TimeZone};

use super::{
    Problem, require_unique,
    syntax::{check_age_recipient, is_bucket_name, is_secure_or_loopback, parse_duration},
};
use crate::v1alpha1::BackupPolicySpec;

/// How many runs ahead the gap between backups is measured when it is compared to the RPO.
const RUNS_CHECKED: usize = 2000;
/// How far ahead the gap between backups is measured, at most.
const HORIZON: SignedDuration = SignedDuration::from_hours(24 * 400);

/// Parses a standard five-field cron expression (minute, hour, day of month, month, day of
/// week), as `schedule` and `verification.schedule` are documented.
/// The policy's recovery point objective, if `spec.rpo` parses.
pub fn rpo(spec: &BackupPolicySpec) -> Option<jiff::SignedDuration> {
    super::syntax::parse_duration(&spec.rpo).ok()
}

/// Parses a five-field cron expression.
pub fn parse_schedule(expression: &str) -> Result<Cron, String> {
    let fields = expression.split_whitespace().count();
    if fields != 5 {
        return Err(format!(
            "{expression:?} has {fields} fields; a schedule has five: minute hour \
             day-of-month month day-of-week (e.g. \"0 2 * * *\")"
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(expression)
        .map_err(|e| format!("{expression:?} is not a valid cron expression: {e}"))
}

/// Every problem of a backup policy's spec at `now` (which only anchors the comparison of the
/// schedule with the RPO).
pub fn validate(spec: &BackupPolicySpec, now: Timestamp) -> Vec<Problem> {
    let mut problems = Vec::new();
    let tz = match TimeZone::get(&spec.time_zone) {
        Ok(tz) => Some(tz),
        Err(_) => {
            problems.push(Problem::new(
                "spec.timeZone",
                format!(
                    "{:?} is not an IANA time zone (e.g. Asia/Shanghai)",
                    spec.time_zone
                ),
            ));
            None
        }
    };
    let schedule = parse_schedule(&spec.schedule)
        .map_err(|message| problems.push(Problem::rule("SEC-1", "spec.schedule", message)))
        .ok();
    if let Some(verification) = &spec.verification
        && let Err(message) = parse_schedule(&verification.schedule)
    {
        problems.push(Problem::new("spec.verification.schedule", message));
    }
    let rpo = parse_duration(&spec.rpo)
        .map_err(|message| problems.push(Problem::new("spec.rpo", message)))
        .ok();
    if let (Some(tz), Some(schedule), Some(_)) = (&tz, &schedule, &rpo)
        && largest_gap(schedule, tz.clone(), now).is_none()
    {
        problems.push(Problem::rule(
            "SEC-1",
            "spec.schedule",
            format!(
                "{:?} runs fewer than twice in the next 400 days, so no RPO can be kept; \
                 back up at least daily or weekly",
                spec.schedule
            ),
        ));
    }
    if let (Some(tz), Some(schedule), Some(rpo)) = (tz, schedule, rpo)
        && let Some(gap) = largest_gap(&schedule, tz, now)
        && gap > rpo
    {
        problems.push(Problem::rule(
            "SEC-1",
            "spec.rpo",
            format!(
                "the schedule {:?} leaves up to {} between backups, more than the RPO of {}; \
                 back up more often or raise the RPO",
                spec.schedule,
                human(gap),
                spec.rpo
            ),
        ));
    }
    let encryption = &spec.encryption;
    if encryption.recipients.is_empty() && encryption.recipients_secret_ref.is_none() {
        problems.push(Problem::rule(
            "SEC-1",
            "spec.encryption",
            "backups are encrypted: give at least one age recipient",
        ));
    }
    for (i, recipient) in encryption.recipients.iter().enumerate() {
        if let Err(message) = check_age_recipient(&recipient.0) {
            problems.push(Problem::rule(
                "SEC-1",
                format!("spec.encryption.recipients[{i}]"),
                message,
            ));
        }
    }
    require_unique(
        &mut problems,
        "spec.sources",
        spec.sources.iter().map(|s| s.name.as_str()),
    );
    let offsite = &spec.destinations.offsite;
    if !is_secure_or_loopback(&offsite.endpoint) {
        problems.push(Problem::rule(
            "SEC-2",
            "spec.destinations.offsite.endpoint",
            format!(
                "{:?} is plain HTTP to another host; off-site backups travel over https:// \
                 (http:// is allowed on loopback only)",
                offsite.endpoint
            ),
        ));
    }
    if !is_bucket_name(&offsite.bucket) {
        problems.push(Problem::new(
            "spec.destinations.offsite.bucket",
            format!(
                "{:?} is not an S3 bucket name (3-63 lower-case letters, digits, dots and dashes)",
                offsite.bucket
            ),
        ));
    }
    problems
}

/// The longest time between two consecutive runs of `schedule` within the next
/// [`RUNS_CHECKED`] runs or [`HORIZON`], whichever ends first; `None` if it runs less than
/// twice in that time.
fn largest_gap(schedule: &Cron, tz: TimeZone, now: Timestamp) -> Option<SignedDuration> {
    let start = now.to_zoned(tz);
    let end = now.checked_add(HORIZON).ok()?;
    let mut runs = schedule
        .iter_after(start)
        .take(RUNS_CHECKED)
        .map(|z| z.timestamp())
        .take_while(|t| *t <= end);
    let mut previous = runs.next()?;
    let mut largest: Option<SignedDuration> = None;
    for run in runs {
        let gap = run.duration_since(previous);
        largest = Some(largest.map_or(gap, |l| l.max(gap)));
        previous = run;
    }
    largest
}

/// `26h`, `7d`, `1d 6h`, `45m`: a gap in the units the RPO is written in.
pub(crate) fn human(d: SignedDuration) -> String {
    let minutes = d.as_secs() / 60;
    let (days, hours, mins) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    let parts: Vec<String> = [(days, "d"), (hours, "h"), (mins, "m")]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if parts.is_empty() {
        "0m".into()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests;
