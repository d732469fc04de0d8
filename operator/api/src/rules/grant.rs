//! `ShareGrant`: a request states its scenario, purpose and signed commitment (SH-2), asks for
//! named fields only (SH-5) for named ServiceAccounts, and ends at `validUntil` (SH-5).
//!
//! The workflow that decides a grant is `crate::workflow::grant`; it runs these checks first.

use jiff::{Timestamp, tz::TimeZone};

use super::{
    Problem, require_text, require_unique,
    syntax::{is_dns_label, parse_date},
};
use crate::{calendar::DEFAULT_TIME_ZONE, v1alpha1::ShareGrantSpec};

/// Every problem of a grant's spec at `now`. An expired grant is not a problem: the workflow
/// ends it at `validUntil`.
pub fn validate(spec: &ShareGrantSpec, now: Timestamp) -> Vec<Problem> {
    let mut problems = Vec::new();
    require_text(&mut problems, Some("SH-2"), "spec.scenario", &spec.scenario);
    require_text(&mut problems, Some("SH-2"), "spec.purpose", &spec.purpose);
    let commitment = &spec.commitment;
    require_text(
        &mut problems,
        Some("SH-2"),
        "spec.commitment.signedBy",
        &commitment.signed_by,
    );
    require_text(
        &mut problems,
        Some("SH-2"),
        "spec.commitment.document",
        &commitment.document,
    );
    match parse_date(&commitment.signed_on) {
        Err(message) => problems.push(Problem::rule("SH-2", "spec.commitment.signedOn", message)),
        Ok(signed_on) => {
            // The regulations are Chinese; a commitment dated after today there is not signed.
            let tz = TimeZone::get(DEFAULT_TIME_ZONE).unwrap_or(TimeZone::UTC);
            let today = now.to_zoned(tz).date();
            if signed_on > today {
                problems.push(Problem::rule(
                    "SH-2",
                    "spec.commitment.signedOn",
                    format!("{signed_on} is in the future; give the date it was signed"),
                ));
            }
        }
    }
    if spec.fields.is_empty() {
        problems.push(Problem::rule(
            "SH-5",
            "spec.fields",
            "name the fields the scenario needs",
        ));
    }
    for (i, field) in spec.fields.iter().enumerate() {
        require_text(
            &mut problems,
            Some("SH-5"),
            format!("spec.fields[{i}]"),
            field,
        );
    }
    require_unique(
        &mut problems,
        "spec.fields",
        spec.fields.iter().map(String::as_str),
    );
    if spec.service_accounts.is_empty() {
        problems.push(Problem::rule(
            "SH-5",
            "spec.serviceAccounts",
            "name the ServiceAccounts that may use the grant",
        ));
    }
    for (i, account) in spec.service_accounts.iter().enumerate() {
        if !is_dns_label(&account.0) {
            problems.push(Problem::new(
                format!("spec.serviceAccounts[{i}]"),
                format!("{:?} is not a ServiceAccount name", account.0),
            ));
        }
    }
    require_unique(
        &mut problems,
        "spec.serviceAccounts",
        spec.service_accounts.iter().map(|a| a.0.as_str()),
    );
    problems
}

#[cfg(test)]
mod tests;
