//! The SLA gauges of `docs/metrics.md` on the shared control plane: a conditional grant waiting
//! for its provider shows in the provider's queue and deadline series and in the consumer's
//! grant count, computed at scrape time from the leader's caches (SH-4, SUP-2); once decided,
//! the provider's queue no longer holds it.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{path::Path, time::Duration};

use gongshu_api::v1alpha1::GrantPhase;
use gongshu_e2e::{fixtures::Sharing, observe};

const WAIT: Duration = Duration::from_secs(60);

/// The suite operator's `/metrics`; `None` outside `cargo xtask test`.
async fn scrape() -> Option<String> {
    let log = std::env::var_os("GONGSHU_E2E_OPERATOR_LOG")?;
    let addr = observe::admin_addr(Path::new(&log)).ok()?;
    Some(observe::scrape(&addr).await.unwrap())
}

/// Scrapes until `ready` holds of the exposition, for at most `WAIT`; returns the last one.
async fn scrape_until(ready: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = scrape().await.unwrap();
        if ready(&text) || tokio::time::Instant::now() >= deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_grant_waiting_for_its_provider_is_in_the_providers_queue_and_deadlines_sh_4() {
    let cast = Sharing::new(true).await.expect("provider and consumer");
    let Some(_) = scrape().await else {
        panic!("GONGSHU_E2E_OPERATOR_LOG is not set: run the suite with `cargo xtask test`");
    };
    let consumer = cast.consumer_ns.clone();
    let grant = cast.grant("metrics", "households", &["citizen_id", "name"], "api");
    cast.env
        .create_admitted(&cast.grants(), &grant, WAIT)
        .await
        .unwrap();
    let waiting = cast
        .wait_phase("metrics", GrantPhase::ProviderReview, WAIT)
        .await
        .unwrap();
    let due = waiting
        .status
        .unwrap()
        .deadlines
        .iter()
        .find(|d| d.completed.is_none())
        .and_then(|d| d.due.clone())
        .unwrap();

    let provider = [("department", cast.provider.as_str())];
    // The gauges read the leader's caches, which see the status a moment after this test does.
    let text = scrape_until(|text| {
        observe::metric_sum(text, "gongshu_review_queue_depth", &provider).is_some()
    })
    .await;
    let next_due = observe::metric_sum(
        &text,
        "gongshu_deadline_next_due_timestamp_seconds",
        &[
            ("department", cast.provider.as_str()),
            ("step", "providerReply"),
        ],
    );
    assert_eq!(
        next_due,
        Some(due.0.as_second() as f64),
        "the provider's next due time:\n{text}"
    );
    assert_eq!(
        observe::metric_sum(
            &text,
            "gongshu_deadline_breached",
            &[
                ("department", cast.provider.as_str()),
                ("step", "providerReply")
            ]
        ),
        Some(0.0)
    );
    assert_eq!(
        observe::metric_sum(&text, "gongshu_review_queue_depth", &provider),
        Some(1.0)
    );
    assert!(
        observe::metric_sum(
            &text,
            "gongshu_review_queue_oldest_timestamp_seconds",
            &provider
        )
        .is_some()
    );
    let consumer_department = consumer.clone();
    let counted =
        observe::metric_sum(&text, "gongshu_grants", &[("phase", "ProviderReview")]).unwrap_or(0.0);
    assert!(
        counted >= 1.0,
        "grants in ProviderReview: {counted} ({consumer_department})"
    );

    cast.provider_decides("metrics", "approve").await.unwrap();
    cast.wait_phase("metrics", GrantPhase::Active, WAIT)
        .await
        .unwrap();
    let text = scrape_until(|text| {
        observe::metric_sum(text, "gongshu_review_queue_depth", &provider).is_none()
    })
    .await;
    assert_eq!(
        observe::metric_sum(&text, "gongshu_review_queue_depth", &provider),
        None,
        "nothing waits on the provider any more:\n{text}"
    );
}
