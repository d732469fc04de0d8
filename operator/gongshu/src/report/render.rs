//! The report as text: aligned columns for a terminal, CSV for a spreadsheet (one row per
//! department and step, a stable header), JSON for programs.

use gongshu_api::sla_report::{DepartmentReport, Figures, Report};
use jiff::{Timestamp, tz::TimeZone};
use serde::Serialize;

/// The CSV header; a new column is only ever added at the end.
pub const CSV_HEADER: [&str; 16] = [
    "month",
    "department",
    "step",
    "requests_received",
    "items_submitted",
    "approved",
    "denied",
    "changes_requested",
    "automatic",
    "completed",
    "on_time",
    "late",
    "on_time_rate",
    "closed",
    "breaches",
    "open_overdue",
];

/// The `step` of a department's totals row in the CSV.
pub const ALL_STEPS: &str = "all";

/// Why a report could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// CSV encoding failed.
    #[error("CSV: {0}")]
    Csv(#[from] csv::Error),
    /// JSON encoding failed.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The CSV writer's buffer could not be taken back.
    #[error("CSV: {0}")]
    Buffer(String),
}

/// A report with where it came from.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Document<'a> {
    /// The report.
    #[serde(flatten)]
    pub report: &'a Report,
    /// Which Regulation gave the time zone and the authority's namespace.
    pub regulation: String,
    /// The selector the departments were chosen with, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<&'a str>,
    /// The time zone, to print local times.
    #[serde(skip)]
    pub time_zone: TimeZone,
}

impl Document<'_> {
    fn local(&self, t: Timestamp) -> String {
        self.time_zone
            .to_datetime(t)
            .strftime("%Y-%m-%d %H:%M")
            .to_string()
    }

    /// The header lines: the month and its bounds, the regulation, the articles.
    fn header(&self) -> Vec<String> {
        let r = self.report;
        let mut lines = vec![format!(
            "SLA report {} ({}: {} to {}){}",
            r.month,
            r.time_zone,
            self.local(r.from),
            self.local(r.until),
            if r.complete {
                String::new()
            } else {
                format!(
                    ", month in progress: figures to {}",
                    self.local(r.generated_at)
                )
            }
        )];
        lines.push(format!(
            "generated {}; {}",
            self.local(r.generated_at),
            self.regulation
        ));
        if let Some(selector) = self.namespace_selector {
            lines.push(format!("departments: namespaces matching {selector}"));
        }
        for b in &r.basis {
            lines.push(format!("{} ({}): {}.", b.rule, b.articles, b.text));
        }
        lines
    }
}

/// Aligned columns: the header, a summary row per department, then a row per department and
/// step.
pub fn table(doc: &Document<'_>) -> String {
    let mut out = String::new();
    for line in doc.header() {
        out.push_str(&line);
        out.push('\n');
    }
    out.push('\n');
    let mut summary = Table::new(&[
        ("DEPARTMENT", Align::Left),
        ("REQUESTS", Align::Right),
        ("ITEMS", Align::Right),
        ("DECISIONS", Align::Right),
        ("AUTOMATIC", Align::Right),
        ("ON TIME", Align::Right),
        ("LATE", Align::Right),
        ("RATE", Align::Right),
        ("BREACHES", Align::Right),
        ("OPEN OVERDUE", Align::Right),
    ]);
    for d in &doc.report.departments {
        let f = &d.totals;
        summary.row(vec![
            d.department.clone(),
            d.requests_received.to_string(),
            d.items_submitted.to_string(),
            d.decisions.by_review().to_string(),
            d.decisions.automatic.to_string(),
            f.on_time.to_string(),
            f.late.to_string(),
            percent(f.on_time_rate),
            f.breaches.to_string(),
            f.open_overdue.to_string(),
        ]);
    }
    summary.render(&mut out);
    let mut steps = Table::new(&[
        ("DEPARTMENT", Align::Left),
        ("STEP", Align::Left),
        ("ON TIME", Align::Right),
        ("LATE", Align::Right),
        ("RATE", Align::Right),
        ("CLOSED", Align::Right),
        ("BREACHES", Align::Right),
        ("OPEN OVERDUE", Align::Right),
    ]);
    for d in &doc.report.departments {
        for s in &d.steps {
            let f = &s.figures;
            steps.row(vec![
                d.department.clone(),
                s.step.to_string(),
                f.on_time.to_string(),
                f.late.to_string(),
                percent(f.on_time_rate),
                f.closed.to_string(),
                f.breaches.to_string(),
                f.open_overdue.to_string(),
            ]);
        }
    }
    out.push('\n');
    if steps.rows.is_empty() {
        out.push_str("No deadline steps to report.\n");
    } else {
        steps.render(&mut out);
    }
    out
}

/// One row per department (`step` = `all`: its requests, decisions and totals) and per step it
/// had to act on (the department-wide columns left empty).
pub fn csv(doc: &Document<'_>) -> Result<String, RenderError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_HEADER)?;
    let month = doc.report.month.to_string();
    for d in &doc.report.departments {
        w.write_record(csv_row(&month, d, ALL_STEPS, Some(d), &d.totals))?;
        for s in &d.steps {
            w.write_record(csv_row(&month, d, s.step.as_str(), None, &s.figures))?;
        }
    }
    let bytes = w
        .into_inner()
        .map_err(|e| RenderError::Buffer(e.to_string()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn csv_row(
    month: &str,
    d: &DepartmentReport,
    step: &str,
    department_wide: Option<&DepartmentReport>,
    f: &Figures,
) -> Vec<String> {
    let wide = |value: fn(&DepartmentReport) -> u32| {
        department_wide.map_or_else(String::new, |d| value(d).to_string())
    };
    vec![
        month.to_owned(),
        d.department.clone(),
        step.to_owned(),
        wide(|d| d.requests_received),
        wide(|d| d.items_submitted),
        wide(|d| d.decisions.approved),
        wide(|d| d.decisions.denied),
        wide(|d| d.decisions.changes_requested),
        wide(|d| d.decisions.automatic),
        f.completed().to_string(),
        f.on_time.to_string(),
        f.late.to_string(),
        f.on_time_rate
            .map_or_else(String::new, |r| format!("{r:.4}")),
        f.closed.to_string(),
        f.breaches.to_string(),
        f.open_overdue.to_string(),
    ]
}

/// The report as pretty-printed JSON, with a final newline.
pub fn json(doc: &Document<'_>) -> Result<String, RenderError> {
    let mut text = serde_json::to_string_pretty(doc)?;
    text.push('\n');
    Ok(text)
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Right,
}

/// Columns padded to their widest cell, two spaces apart.
struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(columns: &[(&'static str, Align)]) -> Self {
        Self {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self, out: &mut String) {
        let width = |i: usize| {
            self.rows
                .iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .chain([self.columns[i].0.chars().count()])
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.columns.len()).map(width).collect();
        let header: Vec<String> = self.columns.iter().map(|(h, _)| (*h).to_owned()).collect();
        for cells in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, (cell, (_, align))) in cells.iter().zip(&self.columns).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = widths[i].saturating_sub(cell.chars().count());
                match align {
                    Align::Left => {
                        line.push_str(cell);
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                    Align::Right => {
                        line.extend(std::iter::repeat_n(' ', pad));
                        line.push_str(cell);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests;
