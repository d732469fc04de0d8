#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::*;

const DAY: u64 = 86_400;
const VALIDITY: Duration = Duration::from_secs(90 * DAY);

fn at(days: i64) -> Timestamp {
    Timestamp::UNIX_EPOCH + SignedDuration::from_hours(24 * days)
}

/// Material made at day 0: CA for 270 days, certificate for 90, published.
fn fresh() -> Facts {
    Facts {
        ca: (at(0), at(270)),
        ca_rotated_at: at(0),
        cert: (at(0), at(90)),
        cert_from_current_ca: true,
        names_match: true,
        bundle: vec![at(270)],
        published: true,
    }
}

#[test]
fn without_material_everything_is_made() {
    assert_eq!(plan(None, VALIDITY, at(0)), Plan::Create);
}

#[test]
fn a_fresh_certificate_is_kept() {
    assert_eq!(plan(Some(&fresh()), VALIDITY, at(1)), Plan::Keep);
}

#[test]
fn the_serving_certificate_is_renewed_with_a_third_of_its_life_left() {
    assert_eq!(plan(Some(&fresh()), VALIDITY, at(59)), Plan::Keep);
    assert_eq!(plan(Some(&fresh()), VALIDITY, at(61)), Plan::RotateCert);
}

#[test]
fn a_certificate_missing_a_name_is_renewed() {
    let facts = Facts {
        names_match: false,
        ..fresh()
    };
    assert_eq!(plan(Some(&facts), VALIDITY, at(1)), Plan::RotateCert);
}

#[test]
fn the_ca_is_renewed_with_one_serving_lifetime_left() {
    // The serving certificate was renewed at day 150.
    let facts = Facts {
        cert: (at(150), at(240)),
        ..fresh()
    };
    assert_eq!(plan(Some(&facts), VALIDITY, at(179)), Plan::Keep);
    assert_eq!(plan(Some(&facts), VALIDITY, at(181)), Plan::RotateCa);
}

#[test]
fn the_certificate_moves_to_a_new_ca_only_after_the_bundle_is_published() {
    // Day 181: a new CA; the serving certificate (renewed at day 150) is still the old CA's.
    let rotated = Facts {
        ca: (at(181), at(451)),
        ca_rotated_at: at(181),
        cert: (at(150), at(240)),
        cert_from_current_ca: false,
        bundle: vec![at(451), at(270)],
        published: false,
        ..fresh()
    };
    assert_eq!(
        plan(Some(&rotated), VALIDITY, at(181)),
        Plan::Keep,
        "the apiserver does not trust the new CA yet"
    );
    let published = Facts {
        published: true,
        ..rotated.clone()
    };
    let just = at(181) + SignedDuration::from_secs(2);
    assert_eq!(plan(Some(&published), VALIDITY, just), Plan::Keep, "grace");
    let later = at(181) + SignedDuration::from_secs(60);
    assert_eq!(plan(Some(&published), VALIDITY, later), Plan::RotateCert);
}

#[test]
fn an_expired_certificate_is_replaced_even_before_publication() {
    let stuck = Facts {
        ca: (at(181), at(451)),
        ca_rotated_at: at(181),
        cert: (at(100), at(190)),
        cert_from_current_ca: false,
        published: false,
        ..fresh()
    };
    assert_eq!(plan(Some(&stuck), VALIDITY, at(191)), Plan::RotateCert);
}

#[test]
fn expired_cas_leave_the_bundle() {
    let facts = Facts {
        ca: (at(181), at(451)),
        ca_rotated_at: at(181),
        cert: (at(260), at(350)),
        bundle: vec![at(451), at(270)],
        ..fresh()
    };
    assert_eq!(plan(Some(&facts), VALIDITY, at(271)), Plan::Prune);
}

#[test]
fn an_expired_ca_starts_over() {
    assert_eq!(plan(Some(&fresh()), VALIDITY, at(271)), Plan::Create);
}

#[test]
fn generated_material_parses_back_and_verifies() {
    let now = Timestamp::now();
    let names = vec![
        "127.0.0.1".to_owned(),
        "gongshu-webhook.gongshu-system.svc".to_owned(),
    ];
    let (ca_cert, ca_key) = new_ca(now, VALIDITY).unwrap();
    let (cert, key) = new_cert(&ca_cert, &ca_key, &names, now, VALIDITY).unwrap();
    let material = Material {
        bundle: ca_cert.clone(),
        ca_cert: ca_cert.clone(),
        ca_key,
        cert,
        key,
        ca_rotated_at: now,
    };
    let facts = material.facts(&names, Some(&ca_cert)).unwrap();
    assert!(facts.cert_from_current_ca);
    assert!(facts.names_match, "SANs read back: IP and DNS");
    assert!(facts.published);
    assert_eq!(plan(Some(&facts), VALIDITY, now), Plan::Keep);
    let until = facts.cert.1.as_second() - now.as_second();
    assert!((until - (90 * DAY) as i64).abs() <= 1, "90 days: {until}");
    // Another CA did not sign it.
    let (other_ca, _) = new_ca(now, VALIDITY).unwrap();
    let foreign = Material {
        ca_cert: other_ca,
        ..material.clone()
    };
    assert!(!foreign.facts(&names, None).unwrap().cert_from_current_ca);
    // A round trip through the Secret's data keeps everything.
    let secret = Secret {
        data: Some(material.data()),
        ..Secret::default()
    };
    assert_eq!(Material::from_secret(&secret).unwrap(), material);
    // Re-encoding a bundle's certificates (as pruning does) gives the same PEM blocks.
    let blocks = pem_blocks(&material.bundle);
    assert_eq!(pem_blocks(&pem_of(&blocks[0])), blocks);
}
