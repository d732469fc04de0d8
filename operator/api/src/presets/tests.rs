//! The deadline tables, cell by cell, against REQUIREMENTS.md (CAT-2, CAT-3, SH-4, SH-8, SH-11).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn within(
    working_days: u32,
    actor: Actor,
    trigger: Trigger,
    articles: &'static [&'static str],
) -> StepRule {
    StepRule::Within {
        working_days,
        extension: None,
        actor,
        trigger,
        articles,
    }
}

// SH-4, row 1: unconditional data.

#[test]
fn xinjiang_platform_reviews_unconditional_request_within_3_working_days_xj21() {
    assert_eq!(
        rule(Preset::Xinjiang, Step::UnconditionalProvision),
        within(3, Actor::Authority, Trigger::Receipt, &["XJ21"])
    );
}

#[test]
fn inner_mongolia_unconditional_sharing_is_direct_nm23() {
    assert_eq!(
        rule(Preset::InnerMongolia, Step::UnconditionalProvision),
        StepRule::Direct
    );
}

#[test]
fn yunnan_provider_shares_unconditional_data_within_2_working_days_yn29() {
    assert_eq!(
        rule(Preset::Yunnan, Step::UnconditionalProvision),
        within(2, Actor::Provider, Trigger::Receipt, &["YN29"])
    );
}

#[test]
fn hebei_authority_provides_unconditional_data_within_3_working_days_hb15() {
    assert_eq!(
        rule(Preset::Hebei, Step::UnconditionalProvision),
        within(3, Actor::Authority, Trigger::Receipt, &["HB15"])
    );
}

#[test]
fn panjin_unconditional_data_is_self_service_pj17() {
    assert_eq!(
        rule(Preset::Panjin, Step::UnconditionalProvision),
        StepRule::Direct
    );
}

// SH-4, row 2: compliance review.

#[test]
fn xinjiang_and_hebei_authority_reviews_conditional_request_within_3_working_days_xj21_hb15() {
    let xj = rule(Preset::Xinjiang, Step::ComplianceReview);
    let hb = rule(Preset::Hebei, Step::ComplianceReview);
    assert_eq!(xj, within(3, Actor::Authority, Trigger::Receipt, &["XJ21"]));
    assert_eq!(hb, within(3, Actor::Authority, Trigger::Receipt, &["HB15"]));
}

#[test]
fn inner_mongolia_and_yunnan_have_no_compliance_review_nm23_yn29() {
    assert_eq!(
        rule(Preset::InnerMongolia, Step::ComplianceReview),
        StepRule::NotApplicable
    );
    assert_eq!(
        rule(Preset::Yunnan, Step::ComplianceReview),
        StepRule::NotApplicable
    );
}

#[test]
fn panjin_authority_approves_conditional_request_without_a_deadline_pj18() {
    assert_eq!(
        rule(Preset::Panjin, Step::ComplianceReview),
        StepRule::Unbounded {
            actor: Actor::Authority,
            articles: &["PJ18"]
        }
    );
}

// SH-4, row 3: provider reply.

#[test]
fn provider_replies_to_conditional_request_within_5_working_days_xj21_nm23_yn29_hb15() {
    for (preset, article) in [
        (Preset::Xinjiang, "XJ21"),
        (Preset::InnerMongolia, "NM23"),
        (Preset::Yunnan, "YN29"),
        (Preset::Hebei, "HB15"),
    ] {
        let r = rule(preset, Step::ProviderReply);
        assert_eq!(r.working_days(), Some(5), "{preset}");
        assert_eq!(
            (r.actor(), r.trigger()),
            (Some(Actor::Provider), Some(Trigger::Receipt)),
            "{preset}"
        );
        assert_eq!(r.articles(), [article], "{preset}");
    }
}

#[test]
fn panjin_provider_reply_is_a_consultation_without_a_deadline_pj18() {
    assert_eq!(
        rule(Preset::Panjin, Step::ProviderReply),
        StepRule::Unbounded {
            actor: Actor::Provider,
            articles: &["PJ18"]
        }
    );
}

// SH-4, row 4: provision after approval.

#[test]
fn inner_mongolia_provider_shares_within_5_working_days_of_its_reply_nm23() {
    assert_eq!(
        rule(Preset::InnerMongolia, Step::ProvisionAfterApproval),
        within(5, Actor::Provider, Trigger::Reply, &["NM23"])
    );
}

#[test]
fn yunnan_provider_shares_within_5_working_days_of_its_reply_yn29() {
    assert_eq!(
        rule(Preset::Yunnan, Step::ProvisionAfterApproval),
        within(5, Actor::Provider, Trigger::Reply, &["YN29"])
    );
}

#[test]
fn hebei_authority_provides_within_3_working_days_of_receiving_the_providers_reply_hb15() {
    assert_eq!(
        rule(Preset::Hebei, Step::ProvisionAfterApproval),
        within(3, Actor::Authority, Trigger::ProviderReply, &["HB15"])
    );
}

#[test]
fn xinjiang_and_panjin_set_no_provision_step_after_approval_xj21_pj18() {
    assert!(!rule(Preset::Xinjiang, Step::ProvisionAfterApproval).applies());
    assert!(!rule(Preset::Panjin, Step::ProvisionAfterApproval).applies());
}

// SH-4, row 5: items not yet in the catalog.

#[test]
fn inner_mongolia_source_replies_in_5_and_provides_in_7_working_days_from_the_reply_nm24() {
    assert_eq!(
        rule(Preset::InnerMongolia, Step::UncatalogedReply),
        within(5, Actor::Provider, Trigger::Receipt, &["NM24"])
    );
    assert_eq!(
        rule(Preset::InnerMongolia, Step::UncatalogedProvision),
        within(7, Actor::Provider, Trigger::Reply, &["NM24"])
    );
}

#[test]
fn xinjiang_and_yunnan_negotiate_uncatalogued_requests_without_a_deadline_xj21_yn28() {
    assert_eq!(
        rule(Preset::Xinjiang, Step::UncatalogedReply),
        StepRule::Unbounded {
            actor: Actor::Provider,
            articles: &["XJ21"]
        }
    );
    assert_eq!(
        rule(Preset::Yunnan, Step::UncatalogedReply),
        StepRule::Unbounded {
            actor: Actor::Authority,
            articles: &["YN28"]
        }
    );
    for preset in [
        Preset::Xinjiang,
        Preset::Yunnan,
        Preset::Hebei,
        Preset::Panjin,
    ] {
        assert!(
            !rule(preset, Step::UncatalogedProvision).applies(),
            "{preset}"
        );
    }
}

#[test]
fn hebei_and_panjin_have_no_uncatalogued_request_step() {
    assert!(!rule(Preset::Hebei, Step::UncatalogedReply).applies());
    assert!(!rule(Preset::Panjin, Step::UncatalogedReply).applies());
}

// CAT-2, CAT-3: catalogs.

#[test]
fn updated_catalog_is_decided_within_5_or_10_working_days_nm11_yn13_hb9() {
    let days = |p| rule(p, Step::CatalogUpdateReview).working_days();
    assert_eq!(days(Preset::InnerMongolia), Some(5));
    assert_eq!(days(Preset::Yunnan), Some(5));
    assert_eq!(days(Preset::Hebei), Some(10));
    assert_eq!(
        rule(Preset::Hebei, Step::CatalogUpdateReview).actor(),
        Some(Actor::Authority)
    );
}

#[test]
fn xinjiang_only_files_catalog_updates_so_there_is_no_review_xj11() {
    assert_eq!(
        rule(Preset::Xinjiang, Step::CatalogUpdateReview),
        StepRule::NotApplicable
    );
}

#[test]
fn yunnan_department_fixes_a_returned_catalog_within_10_working_days_yn12() {
    assert_eq!(
        rule(Preset::Yunnan, Step::CatalogChangesFix),
        within(10, Actor::Department, Trigger::Receipt, &["YN12"])
    );
    for preset in [
        Preset::Xinjiang,
        Preset::InnerMongolia,
        Preset::Hebei,
        Preset::Panjin,
    ] {
        assert!(!rule(preset, Step::CatalogChangesFix).applies(), "{preset}");
    }
}

#[test]
fn catalog_is_updated_within_15_working_days_of_a_change_in_law_xj11_nm11_yn13() {
    for preset in [Preset::Xinjiang, Preset::InnerMongolia, Preset::Yunnan] {
        let r = rule(preset, Step::CatalogUpdate);
        assert_eq!(
            (r.working_days(), r.extension()),
            (Some(15), None),
            "{preset}"
        );
        assert_eq!(r.trigger(), Some(Trigger::LawChange), "{preset}");
    }
}

#[test]
fn hebei_catalog_update_takes_10_working_days_extendable_once_by_10_hb9() {
    assert_eq!(
        rule(Preset::Hebei, Step::CatalogUpdate),
        StepRule::Within {
            working_days: 10,
            extension: Some(10),
            actor: Actor::Department,
            trigger: Trigger::LawChange,
            articles: &["HB9"],
        }
    );
}

// SH-8: objections and corrections.

#[test]
fn hebei_objection_is_forwarded_in_3_and_answered_in_10_plus_10_working_days_hb16() {
    assert_eq!(
        rule(Preset::Hebei, Step::ObjectionForward),
        within(3, Actor::Authority, Trigger::Receipt, &["HB16"])
    );
    let answer = rule(Preset::Hebei, Step::ObjectionAnswer);
    assert_eq!(
        (answer.working_days(), answer.extension()),
        (Some(10), Some(10))
    );
    assert_eq!(answer.actor(), Some(Actor::Provider));
}

#[test]
fn panjin_authority_rechecks_in_5_and_provider_checks_in_3_working_days_pj20() {
    assert_eq!(
        rule(Preset::Panjin, Step::ObjectionForward),
        within(5, Actor::Authority, Trigger::Receipt, &["PJ20"])
    );
    assert_eq!(
        rule(Preset::Panjin, Step::ObjectionAnswer),
        within(3, Actor::Provider, Trigger::Receipt, &["PJ20"])
    );
}

#[test]
fn yunnan_public_correction_takes_5_working_days_or_10_if_complex_yn22_yn24() {
    let r = rule(Preset::Yunnan, Step::PublicCorrection);
    assert_eq!((r.working_days(), r.extension()), (Some(5), Some(5)));
    assert_eq!(r.articles(), ["YN22", "YN24"]);
}

#[test]
fn objections_without_a_number_are_unbounded_xj23_yn22() {
    assert_eq!(
        rule(Preset::Xinjiang, Step::ObjectionAnswer).articles(),
        ["XJ23"]
    );
    assert!(matches!(
        rule(Preset::Xinjiang, Step::ObjectionAnswer),
        StepRule::Unbounded { .. }
    ));
    assert!(matches!(
        rule(Preset::Yunnan, Step::ObjectionAnswer),
        StepRule::Unbounded { .. }
    ));
    assert!(!rule(Preset::InnerMongolia, Step::ObjectionAnswer).applies());
}

// SH-11: backflow.

#[test]
fn yunnan_upper_level_replies_to_a_backflow_request_within_5_working_days_yn18() {
    assert_eq!(
        rule(Preset::Yunnan, Step::BackflowReply),
        within(5, Actor::Provider, Trigger::Receipt, &["YN18"])
    );
}

#[test]
fn backflow_elsewhere_is_prompt_without_a_number_xj21_nm19_hb22_pj15() {
    for (preset, article) in [
        (Preset::Xinjiang, "XJ21"),
        (Preset::InnerMongolia, "NM19"),
        (Preset::Hebei, "HB22"),
        (Preset::Panjin, "PJ15"),
    ] {
        let r = rule(preset, Step::BackflowReply);
        assert!(matches!(r, StepRule::Unbounded { .. }), "{preset}");
        assert_eq!(r.articles(), [article], "{preset}");
    }
}

// The table as a whole.

#[test]
fn every_cited_article_belongs_to_its_own_regulation() {
    for preset in Preset::all() {
        for step in Step::all() {
            for article in rule(preset, step).articles() {
                assert!(
                    article.starts_with(preset.code()),
                    "{preset}/{step}: {article}"
                );
            }
        }
    }
}

#[test]
fn every_numbered_or_unbounded_cell_cites_an_article_and_no_deadline_is_zero() {
    for preset in Preset::all() {
        for step in Step::all() {
            let r = rule(preset, step);
            if matches!(r, StepRule::Within { .. } | StepRule::Unbounded { .. }) {
                assert!(!r.articles().is_empty(), "{preset}/{step}");
            }
            assert_ne!(r.working_days(), Some(0), "{preset}/{step}");
        }
    }
}

#[test]
fn names_match_their_serde_form() {
    for preset in Preset::all() {
        assert_eq!(serde_json::to_value(preset).unwrap(), preset.as_str());
        assert_eq!(preset.to_string(), preset.as_str());
    }
    for step in Step::all() {
        assert_eq!(serde_json::to_value(step).unwrap(), step.as_str());
        assert_eq!(step.to_string(), step.as_str());
    }
    let codes: Vec<_> = Preset::all().iter().map(|p| p.code()).collect();
    assert_eq!(codes, ["XJ", "NM", "YN", "HB", "PJ"]);
}

/// Every string a JSON schema allows, wherever schemars put it (`enum` or `oneOf`/`const`).
fn schema_names(value: &serde_json::Value, out: &mut std::collections::BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("const", serde_json::Value::String(s)) => {
                        out.insert(s.clone());
                    }
                    ("enum", serde_json::Value::Array(items)) => {
                        out.extend(items.iter().filter_map(|i| i.as_str().map(str::to_owned)));
                    }
                    _ => schema_names(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| schema_names(v, out)),
        _ => {}
    }
}

#[test]
fn all_lists_every_variant_the_schema_knows() {
    let mut names = std::collections::BTreeSet::new();
    schema_names(
        &serde_json::to_value(schemars::schema_for!(Step)).unwrap(),
        &mut names,
    );
    let listed: std::collections::BTreeSet<_> =
        Step::all().iter().map(|s| s.as_str().to_owned()).collect();
    assert_eq!(listed, names);
    let mut names = std::collections::BTreeSet::new();
    schema_names(
        &serde_json::to_value(schemars::schema_for!(Preset)).unwrap(),
        &mut names,
    );
    let listed: std::collections::BTreeSet<_> = Preset::all()
        .iter()
        .map(|p| p.as_str().to_owned())
        .collect();
    assert_eq!(listed, names);
}

#[test]
fn a_regulation_override_replaces_the_presets_number() {
    let overrides = [
        (Step::ProviderReply, 3),
        (Step::PublicCorrection, 7),
        (Step::ProviderReply, 4),
    ];
    assert_eq!(
        effective_working_days(Preset::Hebei, Step::ProviderReply, &overrides),
        Some(4)
    );
    assert_eq!(
        effective_working_days(Preset::Hebei, Step::ComplianceReview, &overrides),
        Some(3)
    );
    // An override may number a step the text leaves open or lacks.
    assert_eq!(
        effective_working_days(Preset::Hebei, Step::PublicCorrection, &overrides),
        Some(7)
    );
    assert_eq!(
        effective_working_days(Preset::Panjin, Step::ComplianceReview, &[]),
        None
    );
    assert_eq!(
        effective_working_days(Preset::InnerMongolia, Step::UnconditionalProvision, &[]),
        None
    );
}
