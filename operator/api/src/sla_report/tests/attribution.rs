//! Whom a figure counts for: consumer, provider, catalog department or authority, and which
//! departments a report lists (SUP-1, SUP-2).

use super::*;

#[test]
fn sup_1_requests_count_for_the_consumer_and_decisions_for_the_reviewer() {
    let request = |t: &str| {
        format!(
            "request: {{generation: 1, received: \"{t}\", fields: [district], mode: api, validUntil: \"2027-12-31T16:00:00Z\", scenarioDigest: \"sha256:00\"}}"
        )
    };
    let approved = |by: &str, t: &str| {
        format!(
            "approved: {{generation: 1, approvedAt: \"{t}\", by: {by}, fields: [district], mode: api, validUntil: \"2027-12-31T16:00:00Z\", scenarioDigest: \"sha256:00\"}}"
        )
    };
    let decision = |outcome: &str, by: &str, t: &str| {
        format!("decision: {{outcome: {outcome}, by: {by}, at: \"{t}\", reason: because}}")
    };
    let world = World {
        grants: vec![
            grant(
                "approved",
                &[
                    request("2026-11-02T02:00:00Z"),
                    approved("civil-affairs/yes", "2026-11-03T02:00:00Z"),
                    decision("approve", "civil-affairs/yes", "2026-11-03T02:00:00Z"),
                ]
                .join("\n"),
            ),
            // Returned for changes on the 3rd (the reply step completed then), denied on the 4th.
            grant(
                "denied",
                &[
                    request("2026-11-30T15:59:59Z"),
                    decision("deny", "civil-affairs/no", "2026-11-04T02:00:00Z"),
                    format!(
                        "deadlines: [{}]",
                        reply(
                            "2026-11-02T02:00:00Z",
                            "2026-11-09T16:00:00Z",
                            Some("2026-11-03T02:00:00Z")
                        )
                    ),
                ]
                .join("\n"),
            ),
            // Approved, then revoked: the approval still counts, the revocation decides no request.
            grant(
                "revoked",
                &[
                    request("2026-11-02T02:00:00Z"),
                    approved("civil-affairs/yes-too", "2026-11-05T02:00:00Z"),
                    decision("revoke", "civil-affairs/withdrawn", "2026-11-20T02:00:00Z"),
                ]
                .join("\n"),
            ),
            // Received and decided in October.
            grant(
                "in-october",
                &[
                    request("2026-10-31T15:00:00Z"),
                    approved("civil-affairs/old", "2026-10-31T15:30:00Z"),
                ]
                .join("\n"),
            ),
        ],
        ..World::default()
    };
    let report = world.report(november());
    assert_eq!(row(&report, CONSUMER).requests_received, 3);
    assert_eq!(row(&report, CONSUMER).decisions, Decisions::default());
    let decisions = row(&report, PROVIDER).decisions;
    assert_eq!(
        (
            decisions.approved,
            decisions.denied,
            decisions.changes_requested,
            decisions.by_review()
        ),
        (2, 1, 1, 4)
    );
    assert_eq!(row(&report, AUTHORITY).decisions, Decisions::default());
}

#[test]
fn sup_1_departments_with_nothing_to_report_are_listed_with_their_namespaces() {
    let mut departments = departments();
    departments.insert("archives-annex".into(), IDLE.into());
    departments.insert(AUTHORITY_NS.into(), "data-bureau".into());
    let report = compute(&ReportFacts {
        month: november(),
        time_zone: &shanghai(),
        now: at(NOW),
        authority_namespace: AUTHORITY_NS,
        departments: &departments,
        scope: &Scope::All,
        grants: &[],
        catalogs: &[],
    })
    .unwrap();
    let listed: Vec<(&str, Vec<&str>)> = report
        .departments
        .iter()
        .map(|d| {
            (
                d.department.as_str(),
                d.namespaces.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (AUTHORITY, vec![]),
            (IDLE, vec!["archives", "archives-annex"]),
            (PROVIDER, vec![PROVIDER]),
            (CONSUMER, vec![CONSUMER]),
        ],
        "the authority first, then by code; the authority's namespace is not a department's"
    );
    let idle = row(&report, IDLE);
    assert_eq!(
        (idle.requests_received, idle.totals, idle.steps.len()),
        (0, Figures::default(), 0)
    );
}

#[test]
fn sup_1_catalog_deadlines_count_for_the_authority_and_fixes_for_the_department() {
    let status: DataCatalogStatus = serde_yaml::from_str(
        r#"
workflow:
  - identifier: population.residents
    submittedGeneration: 2
    submitted: "2026-11-05T02:00:00Z"
    decidedBy: gongshu-system/return
    decidedAt: "2026-11-20T02:00:00Z"
    deadlines:
      # HB9: an update is decided within 10 WD; the authority took 11.
      - {step: catalogUpdateReview, actor: authority, started: "2026-11-05T02:00:00Z",
         due: "2026-11-19T16:00:00Z", completed: "2026-11-20T02:00:00Z", breached: true, generation: 2}
      # YN12-style fix, due after the report.
      - {step: catalogChangesFix, actor: department, started: "2026-11-20T02:00:00Z",
         due: "2026-12-04T16:00:00Z", generation: 2}
  - identifier: population.births
    submittedGeneration: 3
    submitted: "2026-11-25T02:00:00Z"
    deadlines:
      - {step: catalogChangesFix, actor: department, started: "2026-11-10T02:00:00Z",
         due: "2026-11-24T16:00:00Z", completed: "2026-11-25T02:00:00Z",
         note: "done: the department resubmitted the item in generation 3", breached: true, generation: 2}
      - {step: catalogUpdateReview, actor: authority, started: "2026-11-01T02:00:00Z",
         due: "2026-11-13T16:00:00Z", completed: "2026-11-12T02:00:00Z",
         note: "superseded: the item changed in generation 2", generation: 1}
items:
  - {identifier: population.residents, review: changesRequested}
  - {identifier: population.births, review: pending}
"#,
    )
    .unwrap();
    let world = World {
        catalogs: vec![CatalogRecord {
            namespace: PROVIDER.into(),
            name: "catalog".into(),
            status,
        }],
        ..World::default()
    };
    let report = world.report(november());
    let authority = row(&report, AUTHORITY);
    assert_eq!(
        counts(figures(&report, AUTHORITY, Step::CatalogUpdateReview)),
        (0, 1, 1, 0)
    );
    assert_eq!(
        figures(&report, AUTHORITY, Step::CatalogUpdateReview).closed,
        1
    );
    assert_eq!(authority.decisions.changes_requested, 1);
    assert_eq!(
        counts(figures(&report, PROVIDER, Step::CatalogChangesFix)),
        (0, 1, 1, 0)
    );
    assert_eq!(row(&report, PROVIDER).items_submitted, 2);
}

#[test]
fn sup_2_the_provider_is_charged_with_its_missed_reply_when_the_authority_decides_in_its_place() {
    // HB15 on the 2026 calendar: received Monday 2 November, 10:00 Shanghai; the authority's
    // compliance review is done at once and forwards it; the provider's 5 WD end on Monday 9
    // November, 24:00. Nobody replies; on the 12th the authority decides in its place.
    let mut w = Workflow::new("allowance", "2026-11-02T02:00:00Z");
    w.eval("2026-11-02T02:00:00Z");
    let due = w.status.deadlines[1].due.clone().unwrap().0;
    assert_eq!(due, at("2026-11-09T16:00:00Z"));
    // Too early: the workflow sets it aside (SUP-2: only once the reply is overdue).
    w.review(
        AUTHORITY_NS,
        "too-early",
        ReviewDecision::Approve,
        "2026-11-05T02:00:00Z",
    );
    w.eval("2026-11-05T03:00:00Z");
    w.eval("2026-11-10T02:00:00Z");
    w.review(
        AUTHORITY_NS,
        "coordinate",
        ReviewDecision::Approve,
        "2026-11-12T02:00:00Z",
    );
    w.eval("2026-11-12T03:00:00Z");
    assert_eq!(w.status.phase, Some(crate::v1alpha1::GrantPhase::Active));

    // Another request nobody decides: overdue at the report.
    let mut forgotten = Workflow::new("forgotten", "2026-11-02T02:00:00Z");
    forgotten.eval("2026-11-02T02:00:00Z");
    forgotten.eval(NOW);

    let world = World {
        grants: vec![w.record(), forgotten.record()],
        ..World::default()
    };
    let report = world.report(november());
    let reply = figures(&report, PROVIDER, Step::ProviderReply);
    assert_eq!(
        (counts(reply), reply.on_time_rate),
        ((0, 1, 2, 1), Some(0.0)),
        "late once (decided by the authority), both replies breached, one still open"
    );
    assert_eq!(row(&report, PROVIDER).decisions, Decisions::default());
    let authority = row(&report, AUTHORITY);
    assert_eq!(
        (
            authority.decisions.approved,
            authority.decisions.by_review()
        ),
        (1, 1),
        "the coordinating Review, not the one set aside"
    );
    assert_eq!(
        counts(figures(&report, AUTHORITY, Step::ComplianceReview)),
        (2, 0, 0, 0)
    );
    assert_eq!(
        counts(figures(&report, AUTHORITY, Step::ProvisionAfterApproval)),
        (1, 0, 0, 0),
        "HB15: the authority provides after its own decision"
    );
    assert_eq!(row(&report, CONSUMER).requests_received, 2);
    assert_eq!(row(&report, CONSUMER).steps, []);
}

#[test]
fn steps_an_edit_superseded_or_the_grants_end_closed_are_neither_on_time_nor_late() {
    // The consumer changes its request on the 4th, before the provider replied: the first
    // reply is superseded, a new request is received; a third request shortens the licence,
    // which then runs out with the reply pending.
    let mut w = Workflow::new("allowance", "2026-11-02T02:00:00Z");
    w.eval("2026-11-02T02:00:00Z");
    w.generation = 2;
    w.spec.fields = vec!["district".into()];
    w.eval("2026-11-04T02:00:00Z");
    let superseded = &w.status.deadlines[1];
    assert!(
        superseded.completed.is_some() && closed_without_action(superseded.note.as_deref()),
        "the workflow's note for a superseded step is recognised: {superseded:#?}"
    );
    w.spec.valid_until = serde_yaml::from_str("\"2026-11-06T02:00:00Z\"").unwrap();
    w.generation = 3;
    w.eval("2026-11-04T03:00:00Z");
    w.eval("2026-11-06T03:00:00Z");
    assert_eq!(w.status.phase, Some(crate::v1alpha1::GrantPhase::Expired));
    let ended: Vec<_> = w
        .status
        .deadlines
        .iter()
        .filter(|d| d.step == Step::ProviderReply)
        .collect();
    assert!(
        ended
            .iter()
            .all(|d| closed_without_action(d.note.as_deref())),
        "the workflow's notes for closed steps are recognised: {ended:#?}"
    );
    assert_eq!(ended.len(), 3, "one reply per request");
    let world = World {
        grants: vec![w.record()],
        ..World::default()
    };
    let report = world.report(november());
    let reply = figures(&report, PROVIDER, Step::ProviderReply);
    assert_eq!(
        (counts(reply), reply.closed, reply.on_time_rate),
        ((0, 0, 0, 0), 3, None)
    );
    assert_eq!(
        counts(figures(&report, AUTHORITY, Step::ComplianceReview)),
        (3, 0, 0, 0)
    );
    assert_eq!(
        row(&report, CONSUMER).requests_received,
        3,
        "three requests, each with its steps"
    );
}

#[test]
fn the_platforms_automatic_decisions_count_for_the_authority_sh_1() {
    let mut w = Workflow::new("licences", "2026-11-02T02:00:00Z");
    w.item.share_type = ShareType::Unconditional;
    w.eval("2026-11-02T02:00:00Z");
    let world = World {
        grants: vec![w.record()],
        ..World::default()
    };
    let report = world.report(november());
    assert_eq!(row(&report, AUTHORITY).decisions.automatic, 1);
    assert_eq!(row(&report, AUTHORITY).decisions.by_review(), 0);
    assert_eq!(
        counts(figures(&report, AUTHORITY, Step::UnconditionalProvision)),
        (1, 0, 0, 0),
        "HB15: the authority provides unconditional data within 3 WD"
    );
    assert_eq!(row(&report, PROVIDER).steps, []);
}

#[test]
fn a_selection_lists_its_departments_and_the_authoritys_work_on_their_objects_only() {
    let other = GrantRecord {
        namespace: "transport".into(),
        ..replied(
            "elsewhere",
            "2026-11-02T02:00:00Z",
            "2026-11-09T16:00:00Z",
            None,
        )
    };
    let mut other = other;
    other.status.provider.as_mut().unwrap().department = "transport".into();
    other.status.deadlines.push(serde_yaml::from_str(
        "{step: complianceReview, actor: authority, started: \"2026-11-02T02:00:00Z\", due: \"2026-11-05T16:00:00Z\", completed: \"2026-11-02T02:00:00Z\", generation: 1}",
    ).unwrap());
    let mine = {
        let mut g = replied(
            "mine",
            "2026-11-02T02:00:00Z",
            "2026-11-09T16:00:00Z",
            Some("2026-11-03T02:00:00Z"),
        );
        g.status.deadlines.push(other.status.deadlines[1].clone());
        g
    };
    let world = World {
        grants: vec![mine, other],
        ..World::default()
    };
    let selected = Scope::Departments(BTreeSet::from([PROVIDER.to_owned()]));
    let report = world.report_on(november(), NOW, &selected).unwrap();
    let listed: Vec<&str> = report
        .departments
        .iter()
        .map(|d| d.department.as_str())
        .collect();
    assert_eq!(listed, [AUTHORITY, PROVIDER]);
    assert_eq!(
        counts(figures(&report, AUTHORITY, Step::ComplianceReview)),
        (1, 0, 0, 0),
        "only the review of the selected provider's grant"
    );
    assert_eq!(
        counts(figures(&report, PROVIDER, Step::ProviderReply)),
        (1, 0, 0, 0)
    );
    let all = world.report(november());
    assert_eq!(
        counts(figures(&all, AUTHORITY, Step::ComplianceReview)),
        (2, 0, 0, 0)
    );
    assert_eq!(
        counts(figures(&all, "transport", Step::ProviderReply)),
        (0, 0, 1, 1),
        "a department without a namespace still gets its row"
    );
}

#[test]
fn the_report_cites_its_articles_sup_1_pj34_and_sup_2_xj44_nm49_nm51() {
    let report = World::default().report(november());
    let cited: Vec<(&str, &str)> = report.basis.iter().map(|b| (b.rule, b.articles)).collect();
    assert_eq!(cited, [("SUP-1", "PJ34"), ("SUP-2", "XJ44(4), NM49, NM51")]);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["month"], "2026-11");
    assert_eq!(json["departments"][0]["department"], AUTHORITY);
    assert_eq!(
        json["departments"][0]["totals"]["onTimeRate"],
        serde_json::Value::Null
    );
}
