//! The Prometheus rules, their promtool unit tests, the runbooks, the metrics contract and the
//! Grafana dashboard must agree (issue 7; SUP-2, SEC-1, SEC-2, SEC-4, CH-1). `promtool` comes
//! from Debian's `prometheus` package (`.ci/run` installs it); without it these tests fail.
//!
//! The Helm chart ships both files as they are (`charts/gongshu/files/` links to them): its
//! PrometheusRule holds the rules file's groups and its ConfigMap the dashboard JSON, checked
//! by `e2e/tests/chart.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::PathBuf,
    process::Command,
};

use serde_yaml::Value;

const RULES: &str = "deploy/prometheus/gongshu-rules.yaml";
const RULE_TESTS: &str = "deploy/prometheus/tests";
const DASHBOARD: &str = "deploy/grafana/gongshu-dashboard.json";
const RUNBOOKS: &str = "docs/runbooks.md";
const METRICS_DOC: &str = "docs/metrics.md";
/// Where every `runbook_url` points: the workspace's `repository`, then the runbooks file.
const RUNBOOK_URL: &str = "https://example.invalid/gongshu/blob/main/docs/runbooks.md#";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(relative: &str) -> String {
    fs::read_to_string(root().join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn yaml(relative: &str) -> Value {
    serde_yaml::from_str(&read(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// Runs promtool; panics with its output when it fails, and says how to install it when it
/// is missing, so that these tests never pass without it.
fn promtool(args: &[&str]) -> String {
    let output = match Command::new("promtool")
        .args(args)
        .current_dir(root())
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "promtool is not installed, so the alert rules cannot be checked: install Debian's \
             `prometheus` package (`apt-get install -y prometheus`, as .ci/run does)"
        ),
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "promtool {} failed ({}):\n{text}",
        args.join(" "),
        output.status
    );
    text
}

/// The promtool unit test files, sorted.
fn rule_test_files() -> Vec<String> {
    let mut files: Vec<String> = fs::read_dir(root().join(RULE_TESTS))
        .expect("deploy/prometheus/tests exists")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml"))
        .map(|name| format!("{RULE_TESTS}/{name}"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no promtool tests in {RULE_TESTS}");
    files
}

/// Every rule of the rules file (recording and alerting), in order.
fn rules(file: &Value) -> Vec<&Value> {
    file["groups"]
        .as_sequence()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_sequence().expect("rules").iter())
        .collect()
}

fn alerts(file: &Value) -> Vec<&Value> {
    rules(file)
        .into_iter()
        .filter(|r| r.get("alert").is_some())
        .collect()
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

#[test]
fn promtool_accepts_the_rules_file() {
    let out = promtool(&["check", "rules", RULES]);
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn promtool_unit_tests_pass() {
    let files = rule_test_files();
    let mut args = vec!["test", "rules"];
    args.extend(files.iter().map(String::as_str));
    promtool(&args);
}

#[test]
fn every_alert_has_a_promtool_test_where_it_fires_and_one_where_it_does_not() {
    let rules = yaml(RULES);
    let mut fired = BTreeSet::new();
    let mut silent = BTreeSet::new();
    for file in rule_test_files() {
        let tests = yaml(&file);
        for test in tests["tests"].as_sequence().expect("tests") {
            for case in test["alert_rule_test"].as_sequence().into_iter().flatten() {
                let name = text(case, "alertname").to_owned();
                match case["exp_alerts"].as_sequence() {
                    Some(expected) if !expected.is_empty() => fired.insert(name),
                    _ => silent.insert(name),
                };
            }
        }
    }
    let names: BTreeSet<&str> = alerts(&rules).iter().map(|a| text(a, "alert")).collect();
    let mut missing = Vec::new();
    for name in names {
        if !fired.contains(name) {
            missing.push(format!("{name}: no test case where it fires"));
        }
        if !silent.contains(name) {
            missing.push(format!("{name}: no test case where it stays silent"));
        }
    }
    assert!(
        missing.is_empty(),
        "in {RULE_TESTS}:\n{}",
        missing.join("\n")
    );
}

/// Whether `s` cites a rule id of REQUIREMENTS.md (`SUP-2`, `CH-1`, …).
fn cites_a_rule(s: &str) -> bool {
    let bytes = s.as_bytes();
    ["CAT-", "SH-", "CH-", "OP-", "SEC-", "SUP-"]
        .iter()
        .any(|prefix| {
            s.match_indices(prefix).any(|(at, _)| {
                let before_ok = at == 0 || !bytes[at - 1].is_ascii_alphanumeric();
                let digit = bytes.get(at + prefix.len()).is_some_and(u8::is_ascii_digit);
                before_ok && digit
            })
        })
}

/// GitHub's anchors of the `##` headings of a Markdown file.
fn anchors(markdown: &str) -> BTreeSet<String> {
    markdown
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|heading| {
            heading
                .trim()
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect()
        })
        .collect()
}

#[test]
fn every_alert_has_a_severity_cites_its_rule_and_links_its_runbook_section() {
    let rules = yaml(RULES);
    assert!(
        read("Cargo.toml").contains(&format!(
            "repository = \"{}\"",
            RUNBOOK_URL.trim_end_matches("/blob/main/docs/runbooks.md#")
        )),
        "runbook URLs must start with the workspace's repository URL"
    );
    let sections = anchors(&read(RUNBOOKS));
    let mut problems = Vec::new();
    for alert in alerts(&rules) {
        let name = text(alert, "alert");
        let severity = text(&alert["labels"], "severity");
        if !["critical", "warning", "info"].contains(&severity) {
            problems.push(format!(
                "{name}: severity {severity:?} is not critical, warning or info"
            ));
        }
        let annotations = &alert["annotations"];
        let (summary, description) = (
            text(annotations, "summary"),
            text(annotations, "description"),
        );
        if summary.is_empty() || description.is_empty() {
            problems.push(format!("{name}: needs a summary and a description"));
        }
        if !cites_a_rule(summary) && !cites_a_rule(description) {
            problems.push(format!(
                "{name}: the summary or description must cite a rule id (SUP-2, SEC-1, …)"
            ));
        }
        let url = text(annotations, "runbook_url");
        match url.strip_prefix(RUNBOOK_URL) {
            Some(anchor) if anchor == name.to_lowercase() && sections.contains(anchor) => {}
            Some(anchor) if anchor != name.to_lowercase() => problems.push(format!(
                "{name}: runbook_url should end in #{}",
                name.to_lowercase()
            )),
            Some(anchor) => problems.push(format!(
                "{name}: {RUNBOOKS} has no section \"## {name}\" (#{anchor})"
            )),
            None => problems.push(format!(
                "{name}: runbook_url {url:?} does not start with {RUNBOOK_URL}"
            )),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every panel of the dashboard, rows' nested panels included.
fn panels(dashboard: &serde_json::Value) -> Vec<&serde_json::Value> {
    let mut out = Vec::new();
    let mut stack: Vec<&serde_json::Value> =
        dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(panel) = stack.pop() {
        stack.extend(panel["panels"].as_array().into_iter().flatten());
        out.push(panel);
    }
    out
}

/// The PromQL of every target, with Grafana's variables replaced by values promtool accepts.
fn dashboard_queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    panels(dashboard)
        .into_iter()
        .flat_map(|p| {
            p["targets"].as_array().into_iter().flatten().map(move |t| {
                let expr = t["expr"].as_str().unwrap_or_default();
                let concrete = expr
                    .replace("$__rate_interval", "5m")
                    .replace("$__range", "1d")
                    .replace("$department", ".*");
                (p["title"].as_str().unwrap_or_default().to_owned(), concrete)
            })
        })
        .collect()
}

#[test]
fn the_dashboard_uses_the_datasource_variable_and_valid_promql() {
    let dashboard: serde_json::Value = serde_json::from_str(&read(DASHBOARD)).unwrap();
    assert!(
        dashboard["schemaVersion"].as_i64().unwrap() >= 39,
        "schemaVersion 39 or later"
    );
    let variables: BTreeMap<&str, &str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v["type"].as_str().unwrap()))
        .collect();
    assert_eq!(variables.get("datasource"), Some(&"datasource"));
    assert_eq!(variables.get("department"), Some(&"query"));

    let mut ids = BTreeSet::new();
    let mut problems = Vec::new();
    for panel in panels(&dashboard) {
        let title = panel["title"].as_str().unwrap_or_default();
        if !ids.insert(panel["id"].as_i64().unwrap()) {
            problems.push(format!("{title}: duplicate panel id"));
        }
        if panel["type"] == "row" {
            continue;
        }
        let mut sources = vec![&panel["datasource"]];
        sources.extend(
            panel["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| &t["datasource"]),
        );
        if sources.iter().any(|d| d["uid"] != "${datasource}") {
            problems.push(format!("{title}: every datasource must be ${{datasource}}"));
        }
    }
    assert!(problems.is_empty(), "{DASHBOARD}:\n{}", problems.join("\n"));

    // promtool parses PromQL only inside rules: check each query as a recording rule.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (title, expr)) in dashboard_queries(&dashboard).iter().enumerate() {
        rules.push_str(&format!(
            "      # {title}\n      - record: dashboard_query_{i}\n        expr: {}\n",
            serde_json::to_string(expr).unwrap()
        ));
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    fs::write(file.path(), rules).unwrap();
    promtool(&["check", "rules", &file.path().display().to_string()]);
}

/// The `gongshu_*` metric names in `text`, without histogram suffixes; names inside recording
/// rules' names (`level:gongshu_…:op`) are skipped.
fn metric_names(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    text.match_indices("gongshu_")
        .filter(|(at, _)| {
            *at == 0
                || !(bytes[at - 1].is_ascii_alphanumeric()
                    || bytes[at - 1] == b':'
                    || bytes[at - 1] == b'_')
        })
        .map(|(at, _)| {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s).map(str::to_owned))
                .unwrap_or(name)
        })
        .collect()
}

#[test]
fn every_metric_the_rules_and_the_dashboard_read_is_in_the_metrics_contract() {
    let doc = read(METRICS_DOC);
    let dashboard: serde_json::Value = serde_json::from_str(&read(DASHBOARD)).unwrap();
    let mut used: BTreeMap<String, &str> = BTreeMap::new();
    for rule in rules(&yaml(RULES)) {
        for name in metric_names(text(rule, "expr")) {
            used.entry(name).or_insert(RULES);
        }
    }
    for (_, expr) in dashboard_queries(&dashboard) {
        for name in metric_names(&expr) {
            used.entry(name).or_insert(DASHBOARD);
        }
    }
    assert!(
        used.contains_key("gongshu_leader"),
        "the extraction finds names: {used:?}"
    );
    let undocumented: Vec<String> = used
        .iter()
        .filter(|(name, _)| !doc.contains(&format!("| `{name}` |")))
        .map(|(name, file)| format!("{name} (used in {file})"))
        .collect();
    assert!(
        undocumented.is_empty(),
        "{METRICS_DOC} has no table row for:\n{}",
        undocumented.join("\n")
    );
}

#[test]
fn rule_ids_and_anchors_are_recognised() {
    assert!(cites_a_rule("overdue (SUP-2)"));
    assert!(cites_a_rule("CH-1: one channel"));
    assert!(!cites_a_rule("PUSH-1 CACHE-2 SH-x"));
    assert_eq!(
        anchors("# t\n## GongshuOperatorDown\n## A b, c\n"),
        BTreeSet::from(["gongshuoperatordown".to_owned(), "a-b-c".to_owned()])
    );
}
