//! The rules a controller checks before it acts on an object, one module per kind, and the
//! status each kind gets from them.
//!
//! Every function here is pure: it takes the spec and whatever the controller already fetched
//! (a namespace's label, the current time) and returns plain values. The CRD's CEL rules catch
//! what the apiserver can check in one object; these rules add what CEL cannot express (real
//! dates, cron syntax, checksums, time) and give each problem its field path and, where the law
//! sets the rule, its id from REQUIREMENTS.md.

pub mod backup;
pub mod catalog;
pub mod channel;
pub mod exchange;
pub mod grant;
pub mod isolation;
pub mod open;
pub mod regulation;
pub mod review;
pub(crate) mod syntax;

use std::fmt;

use crate::status::{self, Outcome};

/// One broken rule: where, what, and which requirement says so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Path of the offending field, e.g. `spec.items[2].sourceDepartment`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
    /// The REQUIREMENTS.md id of the rule (`CAT-4`), where the rule comes from the law.
    pub rule: Option<&'static str>,
}

impl Problem {
    /// A problem with `field` that no regulation names.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            rule: None,
        }
    }

    /// A problem with `field` that breaks requirement `rule` (`"SH-2"`).
    pub fn rule(rule: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            rule: Some(rule),
            ..Self::new(field, message)
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)?;
        if let Some(rule) = self.rule {
            write!(f, " ({rule})")?;
        }
        Ok(())
    }
}

/// How many problems a status message spells out before it only counts the rest.
const SHOWN_PROBLEMS: usize = 3;

/// One message for a condition: the first problems in full, then how many more there are.
pub fn summarize(problems: &[Problem]) -> String {
    let mut message = problems
        .iter()
        .take(SHOWN_PROBLEMS)
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    let hidden = problems.len().saturating_sub(SHOWN_PROBLEMS);
    if hidden > 0 {
        message.push_str(&format!("; and {hidden} more"));
    }
    message
}

/// Checks that `value` is not blank: the CRD schema counts characters, and a string of spaces
/// passes a minimum length.
pub(crate) fn require_text(
    problems: &mut Vec<Problem>,
    rule: Option<&'static str>,
    field: impl Into<String>,
    value: &str,
) {
    if value.trim().is_empty() {
        problems.push(Problem {
            rule,
            ..Problem::new(field, "must not be blank")
        });
    }
}

/// Reports each value that occurs more than once in `values`, at its second occurrence.
pub(crate) fn require_unique<'a>(
    problems: &mut Vec<Problem>,
    field: &str,
    values: impl IntoIterator<Item = &'a str>,
) {
    let mut seen = std::collections::BTreeSet::new();
    for (i, value) in values.into_iter().enumerate() {
        if !seen.insert(value) {
            problems.push(Problem::new(
                format!("{field}[{i}]"),
                format!("{value:?} is listed more than once"),
            ));
        }
    }
}

/// The outcome for a kind whose only possible blocker is its own spec: `Stalled` (reason
/// `InvalidSpec`, the problems as message) when there are problems, else `Ready=True` with
/// reason `Accepted` and `message`.
pub fn accepted_unless_invalid(problems: &[Problem], message: impl Into<String>) -> Outcome {
    if problems.is_empty() {
        Outcome::Settled {
            ready: true,
            reason: status::ACCEPTED,
            message: message.into(),
        }
    } else {
        Outcome::Stalled {
            reason: status::INVALID_SPEC,
            message: summarize(problems),
        }
    }
}

/// Helpers the rules' tests share.
#[cfg(test)]
pub(crate) mod test_support {
    #![allow(clippy::unwrap_used)]

    use jiff::Timestamp;

    use super::Problem;

    /// The instant the tests are run at: a Monday morning in Shanghai.
    pub fn now() -> Timestamp {
        "2026-03-02T08:00:00Z".parse().unwrap()
    }

    /// Each problem's field path and rule id, for compact assertions.
    pub fn fields(problems: &[Problem]) -> Vec<(&str, Option<&str>)> {
        problems
            .iter()
            .map(|p| (p.field.as_str(), p.rule))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_reads_as_field_message_and_rule() {
        let p = Problem::rule(
            "CAT-4",
            "spec.items[0].sourceDepartment",
            "is not a department code",
        );
        assert_eq!(
            p.to_string(),
            "spec.items[0].sourceDepartment: is not a department code (CAT-4)"
        );
        assert_eq!(Problem::new("spec.x", "bad").to_string(), "spec.x: bad");
    }

    #[test]
    fn a_summary_names_three_problems_and_counts_the_rest() {
        let problems: Vec<_> = (0..5)
            .map(|i| Problem::new(format!("spec.f{i}"), "bad"))
            .collect();
        assert_eq!(
            summarize(&problems),
            "spec.f0: bad; spec.f1: bad; spec.f2: bad; and 2 more"
        );
        assert_eq!(summarize(&problems[..1]), "spec.f0: bad");
    }

    #[test]
    fn blank_text_and_duplicates_are_reported_with_their_path() {
        let mut problems = Vec::new();
        require_text(&mut problems, Some("SH-2"), "spec.scenario", "   ");
        require_text(&mut problems, None, "spec.purpose", "fine");
        require_unique(&mut problems, "spec.fields", ["a", "b", "a"]);
        assert_eq!(
            problems,
            [
                Problem::rule("SH-2", "spec.scenario", "must not be blank"),
                Problem::new("spec.fields[2]", "\"a\" is listed more than once"),
            ]
        );
    }
}
