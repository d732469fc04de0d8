//! SH-4: the five presets' deadline tables on the real 2026 calendar, and what kubectl shows.

use super::*;

// SH-4: the five presets on the real calendar

/// One row of a preset's table (REQUIREMENTS.md SH-4): the step, its working days (`None`
/// where the text sets no number or the step is direct), who acts, and the article.
#[derive(Clone, Copy, Debug)]
struct Row {
    step: Step,
    days: Option<u32>,
    actor: &'static str,
    article: &'static str,
}

const fn row(step: Step, days: Option<u32>, actor: &'static str, article: &'static str) -> Row {
    Row {
        step,
        days,
        actor,
        article,
    }
}

/// The ledger of a conditional request once checked: the compliance review (XJ21, HB15, PJ18;
/// none in NM and YN) and the provider's reply (5 WD; PJ18 consultation, no number).
fn conditional_rows(preset: Preset) -> Vec<Row> {
    use Step::{ComplianceReview, ProviderReply};
    match preset {
        Preset::Xinjiang => vec![
            row(ComplianceReview, Some(3), "authority", "XJ21"),
            row(ProviderReply, Some(5), "provider", "XJ21"),
        ],
        Preset::InnerMongolia => vec![row(ProviderReply, Some(5), "provider", "NM23")],
        Preset::Yunnan => vec![row(ProviderReply, Some(5), "provider", "YN29")],
        Preset::Hebei => vec![
            row(ComplianceReview, Some(3), "authority", "HB15"),
            row(ProviderReply, Some(5), "provider", "HB15"),
        ],
        Preset::Panjin => vec![
            row(ComplianceReview, None, "authority", "PJ18"),
            row(ProviderReply, None, "provider", "PJ18"),
        ],
    }
}

/// Provision after the provider approved: 5 WD from the reply (NM23, YN29), 3 WD from the
/// authority's receipt of it (HB15); XJ and PJ set none.
fn provision_row(preset: Preset) -> Option<Row> {
    let step = Step::ProvisionAfterApproval;
    match preset {
        Preset::Xinjiang | Preset::Panjin => None,
        Preset::InnerMongolia => Some(row(step, Some(5), "provider", "NM23")),
        Preset::Yunnan => Some(row(step, Some(5), "provider", "YN29")),
        Preset::Hebei => Some(row(step, Some(3), "authority", "HB15")),
    }
}

/// Unconditional data: reviewed in 3 (XJ21), provided in 2 by the provider (YN29) or in 3 by
/// the authority (HB15), or directly (NM23, PJ17 self-service).
fn unconditional_row(preset: Preset) -> Row {
    let step = Step::UnconditionalProvision;
    match preset {
        Preset::Xinjiang => row(step, Some(3), "authority", "XJ21"),
        Preset::InnerMongolia => row(step, None, "authority", "NM23"),
        Preset::Yunnan => row(step, Some(2), "provider", "YN29"),
        Preset::Hebei => row(step, Some(3), "authority", "HB15"),
        Preset::Panjin => row(step, None, "authority", "PJ17"),
    }
}

/// Asserts the ledger holds exactly `rows`, each counted from its recorded start: the due time is exactly
/// the row's working days on the Regulation's calendar, and the entry is what `step_deadline`
/// computes for the preset (step, actor, start, due, articles).
fn assert_ledger(s: &ShareGrantStatus, rows: &[Row], facts: &RegulationFacts, preset: Preset) {
    assert_eq!(
        steps(s),
        rows.iter().map(|r| r.step).collect::<Vec<_>>(),
        "{preset}: {:#?}",
        s.deadlines
    );
    for (d, row) in s.deadlines.iter().zip(rows) {
        assert_counted(d, *row, facts, preset);
    }
}

/// One ledger entry against its row (see [`assert_ledger`]).
fn assert_counted(d: &DeadlineStatus, row: Row, facts: &RegulationFacts, preset: Preset) {
    let context = format!("{preset} {}: {d:#?}", row.step);
    assert_eq!(d.step, row.step, "{context}");
    assert_eq!(d.actor, row.actor, "{context}");
    assert_eq!(d.articles, [row.article.to_owned()], "{context}");
    let due = row.days.map(|n| {
        facts
            .calendar
            .deadline(d.started.0, n)
            .expect("the calendar counts the due time")
    });
    assert_eq!(d.due.as_ref().map(|t| t.0), due, "{context}");
    if let (Some(due), Some(n)) = (due, row.days) {
        // 24:00 Asia/Shanghai of the n-th working day after the start (Civil Code art. 201).
        let local = due.to_zoned(facts.calendar.time_zone().clone());
        assert_eq!(local.time(), jiff::civil::Time::midnight(), "{context}");
        assert_eq!(
            facts
                .calendar
                .working_days_between(d.started.0, due - SignedDuration::from_nanos(1)),
            i64::from(n),
            "{context}"
        );
    }
    let expected = step_deadline(facts, row.step, d.started.0)
        .unwrap_or_else(|| panic!("{preset} has a {} step", row.step));
    assert_eq!(
        (
            &expected.step,
            &expected.actor,
            &expected.started,
            &expected.due,
            &expected.articles
        ),
        (&d.step, &d.actor, &d.started, &d.due, &d.articles),
        "{context}"
    );
}

/// The 2026 calendar of `examples/10-regulation.yaml`, under `preset`.
fn real_regulation(preset: Preset) -> Regulation {
    let path = repo_root().join("examples/10-regulation.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut regulation: Regulation = serde_yaml::from_str(&text).unwrap();
    regulation.spec.preset = preset;
    regulation
}

/// Puts `preset` in force and waits until the operator's Regulation controller reports it.
async fn put_in_force(c: &OwnCluster, preset: Preset) -> (Regulation, RegulationFacts) {
    let api: Api<Regulation> = Api::all(c.env.client.clone());
    if api.get_opt("default").await.unwrap().is_none() {
        api.create(&PostParams::default(), &real_regulation(preset))
            .await
            .unwrap();
    } else {
        api.patch(
            "default",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"preset": preset}})),
        )
        .await
        .unwrap();
    }
    let regulation = wait_regulation(c, preset).await;
    let conditions = &regulation.status.as_ref().unwrap().common.conditions;
    assert_condition(conditions, DRILL, "False", kstatus::REAL_CALENDAR);
    let facts = RegulationFacts::from_spec(&regulation.spec).expect("a valid Regulation");
    (regulation, facts)
}

/// Requests `item` as `<base>-<n>` and waits until the checks ran. The operator reads the
/// Regulation from a cache that may see the new preset a moment after its status says so: a
/// grant checked under the previous preset (its ledger cites another regulation's articles) is
/// deleted and requested again, at most three times.
async fn request_under(
    c: &OwnCluster,
    grants: &Api<ShareGrant>,
    preset: Preset,
    namespace: &str,
    base: &str,
    item: &str,
    fields: &[&str],
) -> ShareGrant {
    let mut last = None;
    for attempt in 0..3 {
        let name = format!("{base}-{attempt}");
        create_admitted(c, grants, &grant(namespace, &name, item, fields, "api")).await;
        let checked = wait_grant(c, grants, &name, |s| {
            s.request.as_ref().is_some_and(|r| r.checked.is_some())
                && s.phase != Some(GrantPhase::Submitted)
        })
        .await;
        let ledger = &status(&checked).deadlines;
        if !ledger.is_empty()
            && ledger
                .iter()
                .flat_map(|d| &d.articles)
                .all(|a| a.starts_with(preset.code()))
        {
            return checked;
        }
        eprintln!("{name} was checked under another preset; requesting again: {ledger:#?}");
        grants
            .delete(&name, &DeleteParams::default())
            .await
            .unwrap();
        last = Some(checked);
    }
    panic!("{preset}: no grant was checked under the preset in force; last: {last:#?}")
}

#[tokio::test]
async fn each_preset_counts_its_own_working_day_deadlines_and_kubectl_shows_who_is_waiting_until_when_sh_4()
 {
    let _serial = SERIAL.lock().await;
    let mut c = cluster("deadlines-presets").await;
    start_operator(&mut c).await;

    let Sharing {
        provider_ns,
        provider,
        consumer_ns,
        prefix,
        ..
    } = Sharing::on(c.env.clone(), mixed_catalog, true)
        .await
        .expect("provider with an approved catalog, and a consumer");
    let grants: Api<ShareGrant> = Api::namespaced(c.env.client.clone(), &consumer_ns);
    let conditional_item = format!("{prefix}.households");
    let unconditional_item = format!("{prefix}.licences");
    let waiting_on_provider = format!("provider/{provider}");

    for preset in Preset::all() {
        let (_, facts) = put_in_force(&c, preset).await;

        // A conditional item waits for its provider, on the preset's clock.
        let pending = request_under(
            &c,
            &grants,
            preset,
            &consumer_ns,
            &format!("cond-{preset}"),
            &conditional_item,
            &["citizen_id", "name"],
        )
        .await;
        let name = pending.name_any();
        let received = creation(&pending);
        let s = status(&pending);
        assert_eq!(
            s.phase,
            Some(GrantPhase::ProviderReview),
            "{preset}: {s:#?}"
        );
        assert_ledger(s, &conditional_rows(preset), &facts, preset);
        let review = s
            .deadlines
            .iter()
            .find(|d| d.step == Step::ComplianceReview);
        if let Some(review) = review {
            assert_eq!(
                review.started,
                Time(received),
                "{preset}: counted from receipt"
            );
            assert!(
                review.completed.is_some() && !review.breached,
                "{preset}: the checks are the compliance review: {review:#?}"
            );
        }
        let reply = entry(s, Step::ProviderReply);
        // Where the authority reviews first, the provider receives the request when it is
        // forwarded (XJ21, HB15, PJ18); elsewhere on receipt (NM23, YN29).
        let provider_receives = review.map_or(Time(received), |r| r.completed.clone().unwrap());
        assert_eq!(reply.started, provider_receives, "{preset}: {reply:#?}");
        assert!(
            reply.completed.is_none() && !reply.breached,
            "{preset}: {reply:#?}"
        );
        assert_eq!(s.due, reply.due, "{preset}: status.due is the provider's");
        assert_eq!(s.waiting_on.as_deref(), Some(waiting_on_provider.as_str()));
        assert_condition(&s.common.conditions, DEADLINE_BREACHED, "False", ON_TIME);

        // What waits on whom, until when: kubectl's columns (the requirement).
        let (header, cells) = kubectl_get_grants(&c, &consumer_ns, &name, &[]);
        assert_eq!(
            header,
            ["NAME", "ITEM", "MODE", "PHASE", "WAITING-ON", "DUE", "AGE"],
            "{cells:?}"
        );
        // PJ18 sets no number: nothing is due, and the column is empty.
        let due_cell = s.due.as_ref().map_or_else(String::new, printed);
        assert_eq!(
            cells[..6],
            [
                name.as_str(),
                conditional_item.as_str(),
                "api",
                "ProviderReview",
                waiting_on_provider.as_str(),
                due_cell.as_str()
            ],
            "{preset}"
        );
        let (wide, _) = kubectl_get_grants(&c, &consumer_ns, &name, &["-o", "wide"]);
        assert!(wide.iter().any(|h| h == "READY"), "{wide:?}");

        // An unconditional item goes straight on: reviewed or provided by the platform, or
        // directly (NM23, PJ17).
        let open = request_under(
            &c,
            &grants,
            preset,
            &consumer_ns,
            &format!("open-{preset}"),
            &unconditional_item,
            &["credit_code", "name"],
        )
        .await;
        let s = status(&open);
        assert_eq!(s.phase, Some(GrantPhase::Active), "{preset}: {s:#?}");
        assert_eq!(steps(s), [Step::UnconditionalProvision], "{preset}");
        let provision = entry(s, Step::UnconditionalProvision);
        let row = unconditional_row(preset);
        assert_counted(provision, row, &facts, preset);
        assert_eq!(
            provision.started,
            Time(creation(&open)),
            "{preset}: from receipt"
        );
        assert!(
            provision.completed.is_some() && !provision.breached,
            "{preset}: {provision:#?}"
        );
        if row.days.is_none() {
            assert_eq!(
                provision.note.as_deref(),
                Some("direct: no waiting"),
                "{preset}"
            );
        }
        assert_eq!(
            s.decision.as_ref().map(|d| d.by.as_str()),
            Some("operator"),
            "{preset}: SH-1, approved by the platform"
        );
        assert_eq!((s.waiting_on.as_deref(), s.due.as_ref()), (None, None));
        let (_, cells) = kubectl_get_grants(&c, &consumer_ns, &open.name_any(), &[]);
        assert_eq!(cells[3..6], ["Active", "", ""], "{preset}");

        // The provider approves: provision after approval is counted from its reply.
        let approval = review_grant(
            &c,
            &provider_ns,
            &format!("approve-{name}"),
            &consumer_ns,
            &name,
        )
        .await;
        let replied = creation(&approval);
        let active = wait_grant(&c, &grants, &name, phase_is(GrantPhase::Active)).await;
        let s = status(&active);
        let mut rows = conditional_rows(preset);
        rows.extend(provision_row(preset));
        assert_eq!(
            steps(s),
            rows.iter().map(|r| r.step).collect::<Vec<_>>(),
            "{preset}: {:#?}",
            s.deadlines
        );
        for (d, row) in s.deadlines.iter().zip(&rows) {
            assert_counted(d, *row, &facts, preset);
            assert!(
                d.completed.is_some() && !d.breached,
                "{preset}: every step done on time: {d:#?}"
            );
        }
        assert_eq!(
            entry(s, Step::ProviderReply).completed,
            Some(Time(replied)),
            "{preset}"
        );
        if provision_row(preset).is_some() {
            assert_eq!(
                entry(s, Step::ProvisionAfterApproval).started,
                Time(replied),
                "{preset}: counted from the provider's reply"
            );
        }
        assert_condition(&s.common.conditions, DEADLINE_BREACHED, "False", ON_TIME);
    }
}
