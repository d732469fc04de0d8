//! `Regulation`: the work calendar must be real data (every date exists, lies in its year, and
//! make-up working days fall on weekends), and the deadline table in force is the preset's with
//! the overrides applied (SH-4). Only the `Regulation` named `default` is in force.

use jiff::{Timestamp, civil};

use super::{Problem, summarize, syntax::parse_date};
use crate::{
    calendar::{CalendarError, WorkCalendar},
    presets::{self, Actor, Preset, Step, StepRule},
    status::{self, Outcome},
    v1alpha1::{
        CalendarSpec, DeadlineOverride, EffectiveDeadline, RegulationSpec, RegulationStatus,
    },
};

/// The name of the one `Regulation` the operator uses.
pub const IN_FORCE_NAME: &str = "default";

/// Checks a regulation's spec and builds its work calendar; every problem otherwise.
pub fn check(spec: &RegulationSpec) -> Result<WorkCalendar, Vec<Problem>> {
    let mut problems = Vec::new();
    let valid_from = parse_date(&spec.valid_from)
        .map_err(|m| problems.push(Problem::new("spec.validFrom", m)))
        .ok();
    if let Some(until) = &spec.valid_until {
        match parse_date(until) {
            Err(m) => problems.push(Problem::new("spec.validUntil", m)),
            Ok(until) if valid_from.is_some_and(|from| until < from) => problems.push(
                Problem::new("spec.validUntil", "must not be before validFrom"),
            ),
            Ok(_) => {}
        }
    }
    let calendar = calendar(&spec.calendar);
    match calendar {
        Ok(calendar) if problems.is_empty() => Ok(calendar),
        Ok(_) => Err(problems),
        Err(mut calendar_problems) => {
            problems.append(&mut calendar_problems);
            Err(problems)
        }
    }
}

/// Converts a `Regulation`'s calendar into a [`WorkCalendar`], naming the year or date of every
/// problem.
pub fn calendar(spec: &CalendarSpec) -> Result<WorkCalendar, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut calendar = match WorkCalendar::for_time_zone(&spec.time_zone) {
        Ok(calendar) => calendar,
        Err(e) => {
            problems.push(Problem::new("spec.calendar.timeZone", e.to_string()));
            WorkCalendar::default()
        }
    };
    if let Some(close) = &spec.close_of_business {
        let field = "spec.calendar.closeOfBusiness";
        match close.parse::<civil::Time>() {
            Err(_) => problems.push(Problem::new(
                field,
                format!("{close:?} is not a time HH:MM"),
            )),
            Ok(time) => match calendar.clone().with_close_of_business(time) {
                Ok(with_close) => calendar = with_close,
                Err(e) => problems.push(Problem::new(field, e.to_string())),
            },
        }
    }
    if let Some(seconds) = spec.working_day_seconds {
        match calendar
            .clone()
            .with_drill_day(jiff::SignedDuration::from_secs(i64::from(seconds)))
        {
            Ok(drill) => calendar = drill,
            Err(e) => problems.push(Problem::new(
                "spec.calendar.workingDaySeconds",
                e.to_string(),
            )),
        }
    }
    for (i, year) in spec.years.iter().enumerate() {
        let path = format!("spec.calendar.years[{i}]");
        let Ok(number) = i16::try_from(year.year) else {
            problems.push(Problem::new(
                format!("{path}.year"),
                format!("{} is out of range", year.year),
            ));
            continue;
        };
        let mut dates = |list: &[crate::v1alpha1::Date], name: &str| -> Vec<civil::Date> {
            list.iter()
                .enumerate()
                .filter_map(|(j, d)| {
                    parse_date(&d.0)
                        .map_err(|m| problems.push(Problem::new(format!("{path}.{name}[{j}]"), m)))
                        .ok()
                })
                .collect()
        };
        let holidays = dates(&year.holidays, "holidays");
        let makeup = dates(&year.makeup_workdays, "makeupWorkdays");
        match calendar.clone().with_year(number, holidays, makeup) {
            Ok(with_year) => calendar = with_year,
            Err(e) => problems.push(Problem::new(locate(&path, year, &e), e.to_string())),
        }
    }
    if problems.is_empty() {
        Ok(calendar)
    } else {
        Err(problems)
    }
}

/// The most precise field path for a calendar error in year `path`.
fn locate(path: &str, year: &crate::v1alpha1::CalendarYear, e: &CalendarError) -> String {
    let date = match e {
        CalendarError::DateOutsideYear { date, .. }
        | CalendarError::MakeupDayNotWeekend { date, .. }
        | CalendarError::HolidayAndMakeupDay { date } => date.to_string(),
        CalendarError::DuplicateYear { .. } => return format!("{path}.year"),
        _ => return path.to_owned(),
    };
    let position = |list: &[crate::v1alpha1::Date]| list.iter().position(|d| d.0 == date);
    // A date listed both ways is reported where it is a make-up day; the holiday is the usual case.
    if let Some(j) = position(&year.makeup_workdays) {
        format!("{path}.makeupWorkdays[{j}]")
    } else if let Some(j) = position(&year.holidays) {
        format!("{path}.holidays[{j}]")
    } else {
        path.to_owned()
    }
}

fn actor_name(actor: Actor) -> &'static str {
    match actor {
        Actor::Authority => "authority",
        Actor::Provider => "provider",
        Actor::Consumer => "consumer",
        Actor::Department => "department",
    }
}

/// The deadline table in force: every step, with the preset's rule or its override.
pub fn effective_deadlines(
    preset: Preset,
    overrides: &[DeadlineOverride],
) -> Vec<EffectiveDeadline> {
    // The schema bounds overrides to 0..=365, so the conversion cannot fail for admitted objects.
    let pairs: Vec<(Step, u32)> = overrides
        .iter()
        .map(|o| (o.step, u32::try_from(o.working_days).unwrap_or(0)))
        .collect();
    Step::all()
        .into_iter()
        .map(|step| {
            let rule = presets::rule(preset, step);
            let actor = rule.actor().map(|a| actor_name(a).to_owned());
            let articles = rule.articles().iter().map(|a| (*a).to_owned()).collect();
            if pairs.iter().any(|(s, _)| *s == step) {
                return EffectiveDeadline {
                    step,
                    rule: "within".into(),
                    working_days: presets::effective_working_days(preset, step, &pairs).map(to_i32),
                    actor,
                    source: vec!["override".into()],
                };
            }
            let name = match rule {
                StepRule::NotApplicable => "notApplicable",
                StepRule::Direct => "direct",
                StepRule::Unbounded { .. } => "unbounded",
                StepRule::Within { .. } => "within",
            };
            EffectiveDeadline {
                step,
                rule: name.into(),
                working_days: rule.working_days().map(to_i32),
                actor,
                source: articles,
            }
        })
        .collect()
}

/// The years deadlines counted at `now` can fall in: this year, and from December on the next.
fn years_in_use(calendar: &WorkCalendar, now: Timestamp) -> Vec<i16> {
    let today = calendar.local_date(now);
    let mut years = vec![today.year()];
    if today.month() == 12 {
        years.push(today.year().saturating_add(1));
    }
    years
}

/// The status of the `Regulation` called `name` after [`check`] returned `checked` at `now`.
pub fn status(
    name: &str,
    spec: &RegulationSpec,
    previous: Option<&RegulationStatus>,
    generation: Option<i64>,
    checked: &Result<WorkCalendar, Vec<Problem>>,
    now: Timestamp,
) -> RegulationStatus {
    let mut next = previous.cloned().unwrap_or_default();
    next.effective_deadlines = effective_deadlines(spec.preset, &spec.deadlines);
    let calendar = match checked {
        Err(problems) => {
            let outcome = Outcome::Stalled {
                reason: status::INVALID_SPEC,
                message: summarize(problems),
            };
            status::apply_outcome(&mut next.common, &outcome, generation, now);
            return next;
        }
        Ok(calendar) => calendar,
    };
    next.calendar_years = calendar.years().map(i32::from).collect();
    let missing: Vec<String> = years_in_use(calendar, now)
        .into_iter()
        .filter(|y| !calendar.covers(*y))
        .map(|y| y.to_string())
        .collect();
    let incomplete = if missing.is_empty() {
        status::condition(
            status::CALENDAR_INCOMPLETE,
            false,
            status::YEARS_COVERED,
            "the calendar has holiday data for every year deadlines are counted in",
            generation,
            now,
        )
    } else {
        let years = missing.join(" and ");
        status::condition(
            status::CALENDAR_INCOMPLETE,
            true,
            status::YEAR_NOT_COVERED,
            format!(
                "no holiday data for {years}: deadlines there count weekends only; add \
                 spec.calendar.years[] for {years} from the State Council's holiday notice"
            ),
            generation,
            now,
        )
    };
    status::set_condition(&mut next.common.conditions, incomplete);
    status::set_condition(
        &mut next.common.conditions,
        drill_condition(calendar, generation, now),
    );
    let mut outcome = in_force(name, spec, calendar.local_date(now), &missing);
    if let (Some(length), Outcome::Settled { message, .. }) = (calendar.drill_day(), &mut outcome) {
        message.push_str(&format!(
            "; DRILL MODE: a working day lasts {}s",
            length.as_secs()
        ));
    }
    status::apply_outcome(&mut next.common, &outcome, generation, now);
    next
}

/// The `Drill` condition: whether working days last seconds (drill mode) or real days.
fn drill_condition(
    calendar: &WorkCalendar,
    generation: Option<i64>,
    now: Timestamp,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    match calendar.drill_day() {
        Some(length) => status::condition(
            status::DRILL,
            true,
            status::DRILL_MODE,
            format!(
                "drill mode: a working day lasts {}s, so deadlines are not the law's; remove spec.calendar.workingDaySeconds for measures in force",
                length.as_secs()
            ),
            generation,
            now,
        ),
        None => status::condition(
            status::DRILL,
            false,
            status::REAL_CALENDAR,
            "deadlines are counted on the work calendar",
            generation,
            now,
        ),
    }
}

fn in_force(name: &str, spec: &RegulationSpec, today: civil::Date, missing: &[String]) -> Outcome {
    let not_ready = |reason, message| Outcome::Settled {
        ready: false,
        reason,
        message,
    };
    if name != IN_FORCE_NAME {
        return not_ready(
            status::NOT_IN_USE,
            format!(
                "only the Regulation named {IN_FORCE_NAME:?} is in force; this one is not used"
            ),
        );
    }
    // `check` succeeded, so both dates parse.
    let from = parse_date(&spec.valid_from).ok();
    let until = spec.valid_until.as_deref().and_then(|u| parse_date(u).ok());
    if let Some(from) = from.filter(|from| today < *from) {
        return not_ready(
            status::NOT_IN_FORCE,
            format!("not in force before {from} (validFrom)"),
        );
    }
    if let Some(until) = until.filter(|until| today > *until) {
        return not_ready(
            status::NOT_IN_FORCE,
            format!("not in force since {until} passed (validUntil); renew it or change the dates"),
        );
    }
    let overrides = match spec.deadlines.len() {
        0 => String::new(),
        1 => " with 1 override".into(),
        n => format!(" with {n} overrides"),
    };
    let mut message = format!("in force: {} deadlines{overrides}", spec.preset);
    if !missing.is_empty() {
        message.push_str(&format!("; no holiday data for {}", missing.join(" and ")));
    }
    Outcome::Settled {
        ready: true,
        reason: status::ACCEPTED,
        message,
    }
}

#[cfg(test)]
mod tests;

/// Working-day counts are small; saturate rather than wrap if one ever is not.
fn to_i32(days: u32) -> i32 {
    i32::try_from(days).unwrap_or(i32::MAX)
}
