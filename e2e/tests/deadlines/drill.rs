//! SUP-2 in drill mode: a provider misses its deadline, the grant escalates to the authority.

use super::*;

// SUP-2: drill mode

fn drill_regulation() -> Regulation {
    serde_json::from_value(json!({
        "apiVersion": "gongshu.io/v1alpha1",
        "kind": "Regulation",
        "metadata": {"name": "default"},
        "spec": {
            "preset": "hebei",
            "validFrom": "2023-01-01",
            "authorityNamespace": AUTHORITY_NAMESPACE,
            "calendar": {"timeZone": "Asia/Shanghai", "workingDaySeconds": DRILL_DAY_SECONDS},
        },
    }))
    .unwrap()
}

fn drill_days(n: i64) -> SignedDuration {
    SignedDuration::from_secs(n * DRILL_DAY_SECONDS)
}

#[tokio::test]
async fn a_provider_that_misses_its_deadline_is_escalated_to_the_authority_sup_2() {
    let _serial = SERIAL.lock().await;
    let mut c = cluster("deadlines-drill").await;
    // Drill mode is in force before the operator starts: its first evaluation counts with it.
    let regulations: Api<Regulation> = Api::all(c.env.client.clone());
    regulations
        .create(&PostParams::default(), &drill_regulation())
        .await
        .unwrap();
    start_operator(&mut c).await;
    let regulation = wait_regulation(&c, Preset::Hebei).await;
    let drill = assert_condition(
        &regulation.status.as_ref().unwrap().common.conditions,
        DRILL,
        "True",
        DRILL_MODE,
    );
    assert!(
        drill.message.contains(&format!("{DRILL_DAY_SECONDS}s")),
        "the Drill condition says how long a day lasts: {drill:#?}"
    );

    let cast = Sharing::on(c.env.clone(), provider_catalog, true)
        .await
        .expect("provider with an approved catalog, and a consumer");
    let (provider, consumer_ns) = (cast.provider.clone(), cast.consumer_ns.clone());
    let grants: Api<ShareGrant> = Api::namespaced(c.env.client.clone(), &consumer_ns);
    let g = cast.grant("allowance", "households", &["citizen_id", "name"], "api");
    create_admitted(&c, &grants, &g).await;

    // HB15: the authority's compliance review (3 WD, done at once by the checks), then the
    // provider's reply, 5 WD from when the authority forwards the request.
    let pending = wait_grant(
        &c,
        &grants,
        "allowance",
        phase_is(GrantPhase::ProviderReview),
    )
    .await;
    let created = creation(&pending);
    let s = status(&pending);
    assert_eq!(steps(s), [Step::ComplianceReview, Step::ProviderReply]);
    let check = entry(s, Step::ComplianceReview);
    assert_eq!(check.started, Time(created), "counted from receipt");
    assert_eq!(check.due, Some(Time(created + drill_days(3))));
    assert!(check.completed.is_some() && !check.breached, "{check:#?}");
    let reply = entry(s, Step::ProviderReply).clone();
    assert_eq!(
        (reply.actor.as_str(), &reply.articles[..]),
        ("provider", &["HB15".to_owned()][..])
    );
    assert_eq!(
        Some(&reply.started),
        check.completed.as_ref(),
        "HB15: the provider's clock starts when the authority forwards the request"
    );
    let due = reply
        .due
        .clone()
        .expect("the provider's reply has a due time")
        .0;
    assert_eq!(due, reply.started.0 + drill_days(5), "5 drill working days");
    assert!(reply.completed.is_none() && !reply.breached, "{reply:#?}");
    assert_eq!(s.due.as_ref().map(|t| t.0), Some(due));
    let waiting_on_provider = format!("provider/{provider}");
    assert_eq!(s.waiting_on.as_deref(), Some(waiting_on_provider.as_str()));
    let conditions = &s.common.conditions;
    assert_condition(conditions, DEADLINE_BREACHED, "False", ON_TIME);
    assert_condition(conditions, ESCALATED, "False", NOT_NEEDED);

    // Before the provider's due time the authority may not decide in its place (SUP-2).
    let early = review_grant(&c, AUTHORITY_NAMESPACE, "early", &consumer_ns, "allowance").await;
    assert!(
        creation(&early) < due,
        "precondition: the early Review ({}) was made before the provider's due time ({due}); the machine is too slow for this drill",
        creation(&early)
    );
    let early_ref = format!("{AUTHORITY_NAMESPACE}/early");
    let ignored = {
        let early_ref = early_ref.clone();
        wait_grant(&c, &grants, "allowance", move |s| {
            s.ignored_reviews.iter().any(|i| i.review == early_ref)
        })
        .await
    };
    let why = status(&ignored)
        .ignored_reviews
        .iter()
        .find(|i| i.review == early_ref)
        .unwrap();
    assert!(why.reason.contains("overdue"), "{why:#?}");
    assert_ne!(
        status(&ignored).phase,
        Some(GrantPhase::Active),
        "the early Review decides nothing"
    );

    // Nobody replies: after the due time the breach is recorded and the grant escalated.
    let overdue = wait_grant(&c, &grants, "allowance", |s| {
        s.deadlines
            .iter()
            .any(|d| d.step == Step::ProviderReply && d.breached)
    })
    .await;
    let s = status(&overdue);
    assert_eq!(s.phase, Some(GrantPhase::ProviderReview));
    let reply = entry(s, Step::ProviderReply);
    assert!(reply.breached && reply.completed.is_none(), "{reply:#?}");
    assert_eq!(
        reply.due.as_ref().map(|t| t.0),
        Some(due),
        "the due time stays"
    );
    assert!(
        !entry(s, Step::ComplianceReview).breached,
        "only the late step is breached: {:#?}",
        s.deadlines
    );
    let conditions = &s.common.conditions;
    let breached = assert_condition(conditions, DEADLINE_BREACHED, "True", OVERDUE);
    for part in ["providerReply", "HB15", "SUP-2"] {
        assert!(breached.message.contains(part), "{part}: {breached:#?}");
    }
    let recorded = breached.last_transition_time.0;
    assert!(
        recorded >= due,
        "the breach is recorded at {recorded}, not before the due time {due}"
    );
    assert!(
        recorded <= due + SignedDuration::from_secs(30),
        "the breach is recorded on time (due {due}, recorded {recorded}): the operator wakes up at the due time"
    );
    assert_condition(conditions, ESCALATED, "True", PROVIDER_OVERDUE);
    assert_condition(conditions, READY, "False", PROVIDER_OVERDUE);
    assert_eq!(s.waiting_on.as_deref(), Some(WAITING_ON_ESCALATED));
    assert_eq!(s.due.as_ref().map(|t| t.0), Some(due));

    // kubectl shows who the grant now waits on.
    let (_, cells) = kubectl_get_grants(&c, &consumer_ns, "allowance", &[]);
    assert_eq!(
        cells[3..6],
        ["ProviderReview", WAITING_ON_ESCALATED, &printed(&Time(due))]
    );

    let events = events_with(
        &c,
        &consumer_ns,
        "allowance",
        &["DeadlineBreached", "Escalated"],
    )
    .await;
    assert_eq!(events.get("DeadlineBreached"), Some(&1), "{events:?}");
    assert_eq!(events.get("Escalated"), Some(&1), "{events:?}");

    // The escalation lets the authority decide in the provider's place (SUP-2, coordination).
    let decided = review_grant(
        &c,
        AUTHORITY_NAMESPACE,
        "coordinate",
        &consumer_ns,
        "allowance",
    )
    .await;
    let decided_at = creation(&decided);
    let active = wait_grant(&c, &grants, "allowance", phase_is(GrantPhase::Active)).await;
    let s = status(&active);
    let decision = s.decision.as_ref().expect("a decision");
    assert_eq!(
        (decision.by.as_str(), decision.actor.as_deref()),
        (
            format!("{AUTHORITY_NAMESPACE}/coordinate").as_str(),
            Some("authority")
        )
    );
    assert!(s.endpoint.is_some(), "an active grant has an endpoint");
    assert_eq!(
        steps(s),
        [
            Step::ComplianceReview,
            Step::ProviderReply,
            Step::ProvisionAfterApproval
        ]
    );
    let reply = entry(s, Step::ProviderReply);
    assert_eq!(reply.completed, Some(Time(decided_at)));
    assert!(reply.breached, "SUP-2: a breach stays recorded: {reply:#?}");
    assert!(
        reply
            .note
            .as_deref()
            .is_some_and(|n| n.contains("authority")),
        "{reply:#?}"
    );
    // HB15: the authority provides within 3 WD of receiving the reply (here, its own).
    let provision = entry(s, Step::ProvisionAfterApproval);
    assert_eq!(
        (
            provision.actor.as_str(),
            &provision.articles[..],
            &provision.started,
            provision.due.as_ref().map(|t| t.0)
        ),
        (
            "authority",
            &["HB15".to_owned()][..],
            &Time(decided_at),
            Some(decided_at + drill_days(3))
        )
    );
    assert!(
        provision.completed.is_some() && !provision.breached,
        "{provision:#?}"
    );
    let conditions = &s.common.conditions;
    assert_condition(conditions, DEADLINE_BREACHED, "True", COMPLETED_LATE);
    assert_condition(conditions, ESCALATED, "False", NOT_NEEDED);
    assert_condition(conditions, READY, "True", ACTIVE);
    assert_eq!((s.waiting_on.as_deref(), s.due.as_ref()), (None, None));

    let events = events_with(&c, &consumer_ns, "allowance", &["Active"]).await;
    for reason in ["ProviderReview", "DeadlineBreached", "Escalated", "Active"] {
        assert_eq!(events.get(reason), Some(&1), "{reason}: {events:?}");
    }
    let regulation = regulations.get("default").await.unwrap();
    assert_condition(
        &regulation.status.as_ref().unwrap().common.conditions,
        DRILL,
        "True",
        DRILL_MODE,
    );
}
