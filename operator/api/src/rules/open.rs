//! `OpenDataset`: a licence and an attribution to cite (OP-6), machine-readable formats
//! (OP-3), and for conditional opening the terms an applicant signs (OP-4).
//!
//! Publishing through the exchange is not implemented yet: a valid dataset is accepted and its
//! status says that nothing is published.

use jiff::Timestamp;

use super::{Problem, accepted_unless_invalid, require_text, require_unique};
use crate::{
    status,
    v1alpha1::{OpenAccess, OpenDatasetSpec, OpenDatasetStatus},
};

/// Every problem of an open dataset's spec that can be seen without other objects.
pub fn validate(spec: &OpenDatasetSpec) -> Vec<Problem> {
    let mut problems = Vec::new();
    require_text(&mut problems, None, "spec.license", &spec.license);
    require_text(
        &mut problems,
        Some("OP-6"),
        "spec.attribution",
        &spec.attribution,
    );
    for (i, field) in spec.fields.iter().enumerate() {
        require_text(&mut problems, None, format!("spec.fields[{i}]"), field);
    }
    require_unique(
        &mut problems,
        "spec.fields",
        spec.fields.iter().map(String::as_str),
    );
    if spec.formats.is_empty() {
        problems.push(Problem::rule(
            "OP-3",
            "spec.formats",
            "name at least one machine-readable format",
        ));
    }
    let mut seen = Vec::new();
    for (i, format) in spec.formats.iter().enumerate() {
        if seen.contains(format) {
            problems.push(Problem::new(
                format!("spec.formats[{i}]"),
                format!("{format:?} is listed more than once"),
            ));
        }
        seen.push(*format);
    }
    match (spec.open_type, &spec.application) {
        (OpenAccess::Conditional, Some(terms)) => {
            require_text(
                &mut problems,
                Some("OP-4"),
                "spec.application.eligible",
                &terms.eligible,
            );
            require_text(
                &mut problems,
                Some("OP-4"),
                "spec.application.agreement",
                &terms.agreement,
            );
        }
        (OpenAccess::Conditional, None) => problems.push(Problem::rule(
            "OP-4",
            "spec.application",
            "conditional opening needs the terms an applicant states and signs",
        )),
        (OpenAccess::Unconditional, Some(_)) => problems.push(Problem::new(
            "spec.application",
            "is only used when openType is conditional; remove it or make the dataset conditional",
        )),
        (OpenAccess::Unconditional, None) => {}
    }
    problems
}

/// The status of an open dataset after a reconcile that found `problems`.
pub fn status(
    previous: Option<&OpenDatasetStatus>,
    generation: Option<i64>,
    problems: &[Problem],
    now: Timestamp,
) -> OpenDatasetStatus {
    let mut next = previous.cloned().unwrap_or_default();
    let outcome = accepted_unless_invalid(
        problems,
        "accepted; publishing through the open-data API is not implemented yet, so \
                      nothing is published",
    );
    status::apply_outcome(&mut next.common, &outcome, generation, now);
    next
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::rules::test_support::{fields, now};
    use crate::{
        status::{READY, STALLED, find, is_true},
        v1alpha1::{ApplicationTerms, OpenFormat},
    };

    fn spec() -> OpenDatasetSpec {
        serde_yaml::from_str(
            r#"
            item: population.births
            openType: unconditional
            license: CC-BY-4.0
            attribution: "Civil Affairs Department, births by district, retrieved <date>"
            formats: [csv, json]
            "#,
        )
        .unwrap()
    }

    #[test]
    fn the_fixture_dataset_is_valid_with_default_rate_limits() {
        let spec = spec();
        assert_eq!(spec.rate_limit.requests_per_minute, 60);
        assert_eq!(validate(&spec), []);
    }

    #[test]
    fn an_attribution_to_cite_is_required_op_6() {
        let mut spec = spec();
        spec.attribution = "  ".into();
        assert_eq!(
            fields(&validate(&spec)),
            [("spec.attribution", Some("OP-6"))]
        );
    }

    #[test]
    fn formats_are_named_once_op_3() {
        let mut spec = spec();
        spec.formats = vec![OpenFormat::Csv, OpenFormat::Csv];
        assert_eq!(fields(&validate(&spec)), [("spec.formats[1]", None)]);
        spec.formats.clear();
        assert_eq!(fields(&validate(&spec)), [("spec.formats", Some("OP-3"))]);
    }

    #[test]
    fn conditional_opening_needs_filled_in_terms_op_4() {
        let mut spec = spec();
        spec.open_type = OpenAccess::Conditional;
        assert_eq!(
            fields(&validate(&spec)),
            [("spec.application", Some("OP-4"))]
        );
        spec.application = Some(ApplicationTerms {
            eligible: "research institutions".into(),
            agreement: " ".into(),
        });
        assert_eq!(
            fields(&validate(&spec)),
            [("spec.application.agreement", Some("OP-4"))]
        );
    }

    #[test]
    fn terms_on_an_unconditional_dataset_are_refused() {
        let mut spec = spec();
        spec.application = Some(ApplicationTerms {
            eligible: "anyone".into(),
            agreement: "none".into(),
        });
        assert_eq!(fields(&validate(&spec)), [("spec.application", None)]);
    }

    #[test]
    fn a_valid_dataset_is_accepted_and_says_nothing_is_published() {
        let status = status(None, Some(4), &[], now());
        let ready = find(&status.common.conditions, READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "Accepted")
        );
        assert!(ready.message.contains("not implemented yet"));
        assert!(status.urls.is_empty());
    }

    #[test]
    fn an_invalid_dataset_stalls() {
        let mut spec = spec();
        spec.license = String::new();
        let status = status(None, Some(1), &validate(&spec), now());
        assert!(is_true(&status.common.conditions, STALLED));
        assert_eq!(
            find(&status.common.conditions, STALLED).unwrap().message,
            "spec.license: must not be blank"
        );
    }
}
