//! The three renderings of one November 2026 report (the README's example).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gongshu_api::{
    presets::Step,
    sla_report::{BASIS, Decisions, DepartmentReport, Figures, Report, StepFigures},
};

use super::*;

/// `(onTime, late, closed, breaches, openOverdue)` with its rate.
fn f(on_time: u32, late: u32, closed: u32, breaches: u32, open_overdue: u32) -> Figures {
    let done = on_time + late;
    Figures {
        on_time,
        late,
        on_time_rate: (done > 0).then(|| f64::from(on_time) / f64::from(done)),
        closed,
        breaches,
        open_overdue,
    }
}

fn department(
    code: &str,
    requests: u32,
    items: u32,
    decisions: Decisions,
    steps: &[(Step, Figures)],
) -> DepartmentReport {
    let mut totals = (0, 0, 0, 0, 0);
    for (_, s) in steps {
        totals.0 += s.on_time;
        totals.1 += s.late;
        totals.2 += s.closed;
        totals.3 += s.breaches;
        totals.4 += s.open_overdue;
    }
    DepartmentReport {
        department: code.to_owned(),
        namespaces: if code == "authority" {
            vec![]
        } else {
            vec![code.to_owned()]
        },
        requests_received: requests,
        items_submitted: items,
        decisions,
        totals: f(totals.0, totals.1, totals.2, totals.3, totals.4),
        steps: steps
            .iter()
            .map(|&(step, figures)| StepFigures { step, figures })
            .collect(),
    }
}

fn november() -> Report {
    let at = |s: &str| s.parse::<Timestamp>().unwrap();
    let decided = |approved, denied, changes_requested, automatic| Decisions {
        approved,
        denied,
        changes_requested,
        automatic,
    };
    Report {
        month: "2026-11".parse().unwrap(),
        time_zone: "Asia/Shanghai".into(),
        from: at("2026-10-31T16:00:00Z"),
        until: at("2026-11-30T16:00:00Z"),
        generated_at: at("2026-12-02T02:00:00Z"),
        complete: true,
        basis: BASIS.to_vec(),
        departments: vec![
            department(
                "authority",
                0,
                0,
                decided(5, 0, 1, 3),
                &[
                    (Step::CatalogUpdateReview, f(1, 1, 0, 1, 0)),
                    (Step::UnconditionalProvision, f(3, 0, 0, 0, 0)),
                    (Step::ComplianceReview, f(9, 0, 0, 0, 0)),
                    (Step::ProvisionAfterApproval, f(6, 0, 0, 0, 0)),
                ],
            ),
            department("archives", 0, 0, Decisions::default(), &[]),
            department(
                "civil-affairs",
                0,
                2,
                decided(6, 1, 1, 0),
                &[(Step::ProviderReply, f(6, 2, 1, 3, 1))],
            ),
            department("health", 12, 0, Decisions::default(), &[]),
        ],
    }
}

fn doc(report: &Report) -> Document<'_> {
    Document {
        report,
        regulation: "Regulation default (hebei)".into(),
        namespace_selector: None,
        time_zone: TimeZone::get("Asia/Shanghai").unwrap(),
    }
}

#[test]
fn the_table_cites_sup_1_and_sup_2_and_aligns_its_columns() {
    let report = november();
    let expected = "\
SLA report 2026-11 (Asia/Shanghai: 2026-11-01 00:00 to 2026-12-01 00:00)
generated 2026-12-02 10:00; Regulation default (hebei)
SUP-1 (PJ34): statistics on the data each body provides, its timeliness and its use.
SUP-2 (XJ44(4), NM49, NM51): failing to handle sharing and opening applications in time is itself a violation.

DEPARTMENT     REQUESTS  ITEMS  DECISIONS  AUTOMATIC  ON TIME  LATE   RATE  BREACHES  OPEN OVERDUE
authority             0      0          6          3       19     1  95.0%         1             0
archives              0      0          0          0        0     0      -         0             0
civil-affairs         0      2          8          0        6     2  75.0%         3             1
health               12      0          0          0        0     0      -         0             0

DEPARTMENT     STEP                    ON TIME  LATE    RATE  CLOSED  BREACHES  OPEN OVERDUE
authority      catalogUpdateReview           1     1   50.0%       0         1             0
authority      unconditionalProvision        3     0  100.0%       0         0             0
authority      complianceReview              9     0  100.0%       0         0             0
authority      provisionAfterApproval        6     0  100.0%       0         0             0
civil-affairs  providerReply                 6     2   75.0%       1         3             1
";
    assert_eq!(table(&doc(&report)), expected);
}

#[test]
fn a_month_in_progress_and_a_selection_are_said_in_the_header() {
    let mut report = november();
    report.complete = false;
    report.departments.truncate(1);
    report.departments[0].steps.clear();
    let mut d = doc(&report);
    d.namespace_selector = Some("gongshu.io/level=city");
    let text = table(&d);
    assert!(
        text.starts_with(
            "SLA report 2026-11 (Asia/Shanghai: 2026-11-01 00:00 to 2026-12-01 00:00), month in progress: figures to 2026-12-02 10:00\n"
        ),
        "{text}"
    );
    assert!(text.contains("\ndepartments: namespaces matching gongshu.io/level=city\n"));
    assert!(text.ends_with("\nNo deadline steps to report.\n"), "{text}");
}

#[test]
fn the_csv_has_a_stable_header_and_a_row_per_department_and_step() {
    let report = november();
    let text = csv(&doc(&report)).unwrap();
    let mut reader = ::csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header, CSV_HEADER);
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    let keys: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r[1].as_str(), r[2].as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("authority", "all"),
            ("authority", "catalogUpdateReview"),
            ("authority", "unconditionalProvision"),
            ("authority", "complianceReview"),
            ("authority", "provisionAfterApproval"),
            ("archives", "all"),
            ("civil-affairs", "all"),
            ("civil-affairs", "providerReply"),
            ("health", "all"),
        ]
    );
    assert_eq!(
        rows[6],
        [
            "2026-11",
            "civil-affairs",
            "all",
            "0",
            "2",
            "6",
            "1",
            "1",
            "0",
            "8",
            "6",
            "2",
            "0.7500",
            "1",
            "3",
            "1"
        ]
    );
    assert_eq!(
        rows[7][3..9],
        ["", "", "", "", "", ""],
        "department-wide columns only on the all row"
    );
    assert_eq!(rows[5][12], "", "no rate without completed steps");
}

#[test]
fn the_json_is_the_report_with_its_regulation() {
    let report = november();
    let json: serde_json::Value = serde_json::from_str(&json(&doc(&report)).unwrap()).unwrap();
    assert_eq!(json["month"], "2026-11");
    assert_eq!(json["timeZone"], "Asia/Shanghai");
    assert_eq!(json["from"], "2026-10-31T16:00:00Z");
    assert_eq!(json["regulation"], "Regulation default (hebei)");
    assert_eq!(json["basis"][1]["articles"], "XJ44(4), NM49, NM51");
    assert!(json.get("namespaceSelector").is_none());
    let civil = &json["departments"][2];
    assert_eq!(civil["department"], "civil-affairs");
    assert_eq!(civil["decisions"]["changesRequested"], 1);
    assert_eq!(civil["totals"]["onTimeRate"], 0.75);
    assert_eq!(civil["steps"][0]["step"], "providerReply");
    assert_eq!(civil["steps"][0]["breaches"], 3);
    assert_eq!(
        json["departments"][1]["totals"]["onTimeRate"],
        serde_json::Value::Null
    );
}
