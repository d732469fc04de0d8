//! The automatic compliance checks of a request (SH-4 "platform compliance review"), run once
//! per request, and where the request goes after them.

use super::{GrantFacts, ItemFacts, OPERATOR, time};
use crate::{
    presets::Step,
    v1alpha1::{
        ApprovedTerms, Decision, ProviderRef, ShareGrantSpec, ShareGrantStatus, ShareMode,
        ShareType,
    },
    workflow::{deadline, step_deadline},
};

/// Why a request fails the checks, each message starting with its rule id; empty if it passes.
///
/// In `verify` mode the requested fields are match keys: the exchange answers match or no
/// match and never returns their values, so a field that is not shareable may be named (SH-7).
/// In every other mode each field must be shareable (SH-5).
pub fn compliance_problems(spec: &ShareGrantSpec, item: Option<&ItemFacts>) -> Vec<String> {
    let id = &spec.item;
    let Some(item) = item else {
        return vec![format!(
            "CAT-2: item {id} is in no catalog: request an item the authority has published"
        )];
    };
    let mut problems = Vec::new();
    if !item.approved {
        problems.push(format!(
            "CAT-2: item {id} of {}/{} is not approved by the authority: request it once it is published",
            item.namespace, item.catalog
        ));
    }
    let verify = spec.mode == ShareMode::Verify;
    if item.share_type == ShareType::NotShared && !verify {
        problems.push(format!("SH-7: item {id} is notShared: request mode verify"));
    }
    for name in &spec.fields {
        match item.fields.iter().find(|f| &f.name == name) {
            None => problems.push(format!(
                "SH-5: field {name} is not a field of item {id}: request only fields the catalog declares"
            )),
            Some(field) if !field.shareable && !verify => problems.push(format!(
                "SH-5: field {name} of item {id} is not shareable: remove it from spec.fields, or request mode verify to match on it (SH-7)"
            )),
            Some(_) => {}
        }
    }
    problems
}

/// Runs the checks of the current request at `now`: records the compliance step (completed at
/// once), then denies the request, approves it for an unconditional item (SH-1), or forwards
/// it to the provider with the preset's reply deadline (SH-4).
pub(super) fn run(status: &mut ShareGrantStatus, facts: &GrantFacts<'_>) {
    let Some(request) = status.request.as_mut() else {
        return;
    };
    let generation = request.generation;
    let received = request.received.0;
    let now = facts.now;
    request.checked = Some(time(now));
    let terms = request.terms.clone();

    let unconditional = facts
        .item
        .is_some_and(|i| i.share_type == ShareType::Unconditional);
    // SH-4 row 1 is one step for unconditional data (review and provision); row 2 is the
    // compliance review of conditional requests. Both count from receipt.
    let step = if unconditional {
        Step::UnconditionalProvision
    } else {
        Step::ComplianceReview
    };
    let ledger = &mut status.deadlines;
    if let Some(d) = step_deadline(facts.regulation, step, received) {
        deadline::open(ledger, d, generation);
        deadline::complete(ledger, step, generation, now, None);
    }
    if let Some(item) = facts.item {
        status.provider = Some(ProviderRef {
            department: item.department.clone(),
            namespace: item.namespace.clone(),
            catalog: item.catalog.clone(),
            share_type: item.share_type,
        });
    }
    let decision = |outcome: &str, reason: String| Decision {
        outcome: outcome.to_owned(),
        reason: Some(reason),
        by: OPERATOR.to_owned(),
        at: time(now),
        actor: Some(OPERATOR.to_owned()),
        generation: Some(generation),
        legal_basis: None,
    };

    let problems = compliance_problems(facts.spec, facts.item);
    if !problems.is_empty() {
        status.decision = Some(decision("deny", problems.join("; ")));
        return;
    }
    if unconditional {
        status.decision = Some(decision(
            "approve",
            "SH-1: unconditional data is provided by the platform".to_owned(),
        ));
        status.approved = Some(ApprovedTerms {
            generation,
            approved_at: time(now),
            by: OPERATOR.to_owned(),
            terms,
        });
        return;
    }
    // Where the authority reviews first, the provider receives the request when the authority
    // forwards it (XJ21(2): "将通过审查的申请转至公共数据提供部门"; HB15); elsewhere on receipt.
    let forwarded = deadline::entry(ledger, Step::ComplianceReview, generation).is_some();
    let trigger = if forwarded { now } else { received };
    if let Some(mut d) = step_deadline(facts.regulation, Step::ProviderReply, trigger) {
        if facts.spec.emergency {
            // XJ21: emergency data is reviewed promptly (及时), sooner than the number allows.
            let emergency = "emergency data: reply promptly (XJ21)";
            d.note = Some(match d.note {
                Some(note) => format!("{note}; {emergency}"),
                None => emergency.to_owned(),
            });
        }
        deadline::open(ledger, d, generation);
    }
}
