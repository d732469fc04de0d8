//! The examples a newcomer applies: they agree with the code, pass server-side validation, and
//! the operator makes every one of them Ready (the demo's acceptance).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;

use gongshu_api::{
    calendar::{CN_2026_HOLIDAYS, CN_2026_MAKEUP_WORKDAYS},
    v1alpha1::Regulation,
};
use gongshu_e2e::harness::TestEnv;

fn examples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

#[test]
fn the_example_2026_calendar_is_the_state_council_schedule() {
    let text = std::fs::read_to_string(examples().join("10-regulation.yaml")).unwrap();
    let regulation: Regulation = serde_yaml::from_str(&text).unwrap();
    let year = regulation
        .spec
        .calendar
        .years
        .iter()
        .find(|y| y.year == 2026)
        .expect("2026 listed");
    let dates =
        |list: &[gongshu_api::v1alpha1::Date]| list.iter().map(|d| d.0.clone()).collect::<Vec<_>>();
    let expected =
        |list: &[jiff::civil::Date]| list.iter().map(|d| d.to_string()).collect::<Vec<_>>();
    assert_eq!(dates(&year.holidays), expected(CN_2026_HOLIDAYS));
    assert_eq!(
        dates(&year.makeup_workdays),
        expected(CN_2026_MAKEUP_WORKDAYS)
    );
}

#[tokio::test]
async fn the_examples_pass_server_side_validation_and_become_ready() {
    let env = TestEnv::connect().await.expect("control plane");
    let kubectl = |args: &[&str]| {
        let out = env.kubectl().args(args).output().expect("kubectl runs");
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dir = examples().display().to_string();
    // Namespaces first: a server-side dry run of a namespaced object needs its namespace.
    kubectl(&[
        "apply",
        "-f",
        &examples().join("00-namespaces.yaml").display().to_string(),
    ]);
    let dry = kubectl(&["apply", "--dry-run=server", "-f", &dir]);
    assert!(
        dry.contains("datacatalog.gongshu.io/public-security"),
        "dry run covered the catalogs:\n{dry}"
    );

    kubectl(&["apply", "-f", &dir]);
    kubectl(&[
        "wait",
        "--for=condition=Ready",
        "regulation/default",
        "--timeout=60s",
    ]);
    for ns in ["dept-public-security", "dept-market-regulation"] {
        kubectl(&[
            "wait",
            "--for=condition=Ready",
            "datacatalog",
            "--all",
            "-n",
            ns,
            "--timeout=60s",
        ]);
    }
    let items = kubectl(&[
        "get",
        "datacatalog",
        "public-security",
        "-n",
        "dept-public-security",
        "-o",
        "jsonpath={range .status.items[*]}{.identifier}={.review}{\"\\n\"}{end}",
    ]);
    for id in [
        "public-security.police-stations",
        "population.household-registration",
        "population.identity-photos",
    ] {
        assert!(
            items.contains(&format!("{id}=pending")),
            "{id} awaits the authority's review (CAT-2):\n{items}"
        );
    }
    // The backup policy is scheduled; it is then suspended, as this suite has no S3 server at
    // the demo's address (e2e/tests/backup.rs runs backups).
    kubectl(&[
        "wait",
        "--for=jsonpath={.status.nextRun}",
        "backuppolicy/nightly",
        "-n",
        "dept-public-security",
        "--timeout=60s",
    ]);
    kubectl(&[
        "patch",
        "backuppolicy/nightly",
        "-n",
        "dept-public-security",
        "--type=merge",
        "-p",
        r#"{"spec":{"suspend":true}}"#,
    ]);
}
