//! Table panels as Grafana builds them from `format: table` answers: a row per series, a column
//! per label and one for the value (`Value`, or `Value #<refId>` when the panel has several
//! queries), then the `merge` and `organize` transformations and `sortBy`.

use std::{cmp::Ordering, collections::BTreeMap, fmt::Write};

use serde_json::Value;

use super::{
    Frame,
    format::{self, escape},
    model::Panel,
};

#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Text(String),
    Number(f64),
}

/// Columns in order, and rows keyed by column name.
#[derive(Debug, Default)]
struct Table {
    columns: Vec<String>,
    rows: Vec<BTreeMap<String, Cell>>,
}

impl Table {
    fn column(&mut self, name: &str) {
        if !self.columns.iter().any(|c| c == name) {
            self.columns.push(name.to_string());
        }
    }
}

fn build(frames: &[Frame]) -> Table {
    let mut table = Table::default();
    let several = frames.len() > 1;
    for frame in frames {
        let value = if several {
            format!("Value #{}", frame.ref_id)
        } else {
            "Value".to_string()
        };
        for series in &frame.series {
            let Some(&(at, v)) = series.points.last() else {
                continue;
            };
            table.column("Time");
            let mut row = BTreeMap::from([("Time".to_string(), Cell::Number(at))]);
            for (label, text) in &series.labels {
                table.column(label);
                row.insert(label.clone(), Cell::Text(text.clone()));
            }
            table.column(&value);
            // `merge`: a row whose labels equal an earlier row's joins it.
            let labels = |r: &BTreeMap<String, Cell>| -> Vec<(String, Cell)> {
                r.iter()
                    .filter(|(_, c)| matches!(c, Cell::Text(_)))
                    .map(|(k, c)| (k.clone(), c.clone()))
                    .collect()
            };
            let mine = labels(&row);
            row.insert(value.clone(), Cell::Number(v));
            match table.rows.iter_mut().find(|r| labels(r) == mine) {
                Some(existing) => existing.extend(row),
                None => table.rows.push(row),
            }
        }
    }
    table
}

/// `organize`: excluded columns dropped, renamed ones renamed, `indexByName` ordering.
fn organize(table: &mut Table, options: &Value) {
    let excluded = |c: &String| options["excludeByName"][c].as_bool().unwrap_or(false);
    table.columns.retain(|c| !excluded(c));
    let index = |c: &String| options["indexByName"][c].as_u64().unwrap_or(u64::MAX);
    table.columns.sort_by_key(index);
    for row in &mut table.rows {
        *row = std::mem::take(row)
            .into_iter()
            .map(|(k, c)| (rename(options, &k), c))
            .collect();
    }
    table.columns = table.columns.iter().map(|c| rename(options, c)).collect();
}

fn rename(options: &Value, column: &str) -> String {
    match options["renameByName"][column].as_str() {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => column.to_string(),
    }
}

fn compare(a: Option<&Cell>, b: Option<&Cell>) -> Ordering {
    match (a, b) {
        (Some(Cell::Number(a)), Some(Cell::Number(b))) => a.total_cmp(b),
        (Some(Cell::Text(a)), Some(Cell::Text(b))) => a.cmp(b),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}

/// The panel's table as HTML, or `None` when no query returned a row.
pub fn html(panel: &Panel, frames: &[Frame]) -> Option<String> {
    let mut table = build(frames);
    if table.rows.is_empty() {
        return None;
    }
    for t in &panel.transformations {
        if t.id == "organize" {
            organize(&mut table, &t.options);
        }
    }
    if let Some(sort) = panel.options["sortBy"].get(0) {
        let column = sort["displayName"].as_str().unwrap_or_default();
        table
            .rows
            .sort_by(|a, b| compare(a.get(column), b.get(column)));
        if sort["desc"].as_bool().unwrap_or(false) {
            table.rows.reverse();
        }
    }
    let mut html = String::from("<table><thead><tr>");
    for column in &table.columns {
        let _ = write!(html, "<th>{}</th>", escape(column));
    }
    html.push_str("</tr></thead><tbody>");
    let fields: Vec<_> = table.columns.iter().map(|c| panel.field(c)).collect();
    for row in &table.rows {
        html.push_str("<tr>");
        for (column, field) in table.columns.iter().zip(&fields) {
            match row.get(column) {
                Some(Cell::Text(text)) => {
                    let _ = write!(html, "<td>{}</td>", escape(text));
                }
                Some(Cell::Number(v)) if column == "Time" => {
                    let at = jiff::Timestamp::from_second(*v as i64).unwrap_or_default();
                    let _ = write!(html, "<td>{}</td>", at.strftime("%Y-%m-%d %H:%M:%S"));
                }
                Some(Cell::Number(v)) => {
                    let text = match field.mapped(*v) {
                        Some((text, _)) => escape(text),
                        None => format::value(*v, &field.unit),
                    };
                    let color = field.threshold_color(*v).map(format::color);
                    let style = match (field.cell.as_str(), color) {
                        ("color-text", Some(c)) => format!(" style=\"color:{c}\""),
                        ("color-background", Some(c)) => {
                            format!(" style=\"background:{c};color:#fff\"")
                        }
                        _ => String::new(),
                    };
                    let _ = write!(html, "<td class=\"num\"{style}>{text}</td>");
                }
                None => html.push_str("<td></td>"),
            }
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table>");
    Some(html)
}

#[cfg(test)]
mod tests {
    use super::{super::prom::Series, *};

    fn frame(ref_id: &str, rows: &[(&str, f64)]) -> Frame {
        Frame {
            ref_id: ref_id.into(),
            legend_format: "__auto".into(),
            expr: String::new(),
            series: rows
                .iter()
                .map(|(policy, v)| Series {
                    labels: BTreeMap::from([("policy".to_string(), policy.to_string())]),
                    points: vec![(100.0, *v)],
                })
                .collect(),
        }
    }

    #[test]
    fn queries_merge_into_one_row_per_label_set_renamed_and_colored() {
        let panel: Panel = serde_json::from_value(serde_json::json!({
            "type": "table",
            "fieldConfig": {"defaults": {"unit": "s"}, "overrides": [
                {"matcher": {"id": "byName", "options": "breached"}, "properties": [
                    {"id": "unit", "value": "short"},
                    {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                    {"id": "thresholds", "value": {"steps": [
                        {"color": "green", "value": null}, {"color": "red", "value": 1}]}}]}]},
            "options": {"sortBy": [{"displayName": "age", "desc": true}]},
            "transformations": [{"id": "organize", "options": {
                "excludeByName": {"Time": true},
                "renameByName": {"Value #A": "age", "Value #B": "breached"}}}]
        }))
        .unwrap();
        let frames = [
            frame("A", &[("daily", 90.0), ("hourly", 7200.0)]),
            frame("B", &[("hourly", 1.0), ("daily", 0.0)]),
        ];
        let html = html(&panel, &frames).unwrap();
        assert!(
            html.starts_with("<table><thead><tr><th>policy</th><th>age</th><th>breached</th>"),
            "{html}"
        );
        assert_eq!(
            html.matches("<tr>").count(),
            3,
            "header and two merged rows"
        );
        let hourly = html.find(">hourly<").unwrap();
        assert!(
            hourly < html.find(">daily<").unwrap(),
            "sorted by age, descending"
        );
        assert!(html.contains(">2 hour<"));
        assert!(
            html.contains("background:#F2495C;color:#fff\">1<"),
            "{html}"
        );
    }

    #[test]
    fn no_series_is_no_table() {
        assert_eq!(html(&Panel::default(), &[frame("A", &[])]), None);
    }
}
