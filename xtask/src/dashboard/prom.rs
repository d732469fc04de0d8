//! Prometheus' HTTP API: `/api/v1/query` and `/api/v1/query_range`, their answers as series,
//! and the legend a series gets from a target's `legendFormat`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::model::TimeRange;

/// One series of an answer; an instant vector's series has one point.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    /// (Unix seconds, value)
    pub points: Vec<(f64, f64)>,
}

#[derive(Debug)]
pub enum Error {
    /// No answer at all: the whole render stops.
    Unreachable(String),
    /// Prometheus refused the query (or answered nonsense): the panel says so.
    Rejected(String),
}

#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    pub fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_string(),
        }
    }

    pub async fn instant(&self, expr: &str, at: f64) -> Result<Vec<Series>, Error> {
        self.get("query", &[("query", expr.into()), ("time", at.to_string())])
            .await
    }

    pub async fn range(&self, expr: &str, range: &TimeRange) -> Result<Vec<Series>, Error> {
        let params = [
            ("query", expr.into()),
            ("start", range.start.to_string()),
            ("end", range.end.to_string()),
            ("step", range.step.to_string()),
        ];
        self.get("query_range", &params).await
    }

    async fn get(&self, endpoint: &str, params: &[(&str, String)]) -> Result<Vec<Series>, Error> {
        let url = format!("{}/api/v1/{endpoint}", self.base);
        let response = self
            .http
            .get(&url)
            .query(params)
            .send()
            .await
            .map_err(|e| Error::Unreachable(e.to_string()))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|e| Error::Rejected(format!("HTTP {status}, not a Prometheus answer: {e}")))?;
        parse(&body).map_err(Error::Rejected)
    }
}

/// The series of an API answer (`matrix`, `vector` or `scalar`), or its error.
pub fn parse(body: &Value) -> Result<Vec<Series>, String> {
    if body["status"] != "success" {
        return Err(body["error"].as_str().unwrap_or("no status").to_string());
    }
    let data = &body["data"];
    let result = data["result"].as_array();
    let labels = |metric: &Value| {
        metric
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect()
    };
    match data["resultType"].as_str() {
        Some("matrix") => Ok(result
            .into_iter()
            .flatten()
            .map(|s| Series {
                labels: labels(&s["metric"]),
                points: s["values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(point)
                    .collect(),
            })
            .collect()),
        Some("vector") => Ok(result
            .into_iter()
            .flatten()
            .map(|s| Series {
                labels: labels(&s["metric"]),
                points: point(&s["value"]).into_iter().collect(),
            })
            .collect()),
        Some("scalar") => Ok(vec![Series {
            labels: BTreeMap::new(),
            points: point(&data["result"]).into_iter().collect(),
        }]),
        other => Err(format!("unexpected result type {other:?}")),
    }
}

/// `[1700000000.5, "3.2"]`; Prometheus writes `NaN`, `+Inf` and `-Inf` as such.
fn point(pair: &Value) -> Option<(f64, f64)> {
    let at = pair[0].as_f64()?;
    let value = match pair[1].as_str()? {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        text => text.parse().ok()?,
    };
    Some((at, value))
}

/// A series' name in the legend: `legendFormat` with `{{label}}` replaced, or, for `__auto` and
/// no format, the metric and its labels as Grafana writes them (the query itself when the
/// series has no labels).
pub fn legend(format: &str, series: &Series, expr: &str) -> String {
    if format.is_empty() || format == "__auto" {
        let name = series.labels.get("__name__").cloned().unwrap_or_default();
        let labels: Vec<String> = series
            .labels
            .iter()
            .filter(|(k, _)| *k != "__name__")
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        return match (name.is_empty(), labels.is_empty()) {
            (true, true) => expr.to_string(),
            (_, true) => name,
            _ => format!("{name}{{{}}}", labels.join(", ")),
        };
    }
    let mut out = String::new();
    let mut rest = format;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find("}}") else {
            break;
        };
        let label = rest[open + 2..open + close].trim();
        out.push_str(series.labels.get(label).map_or("", String::as_str));
        rest = &rest[open + close + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn matrix_vector_and_errors_are_read() {
        let matrix = json!({"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"phase": "Active"}, "values": [[10, "1"], [25, "NaN"], [40, "+Inf"]]}]}});
        let series = parse(&matrix).unwrap();
        assert_eq!(series[0].labels["phase"], "Active");
        assert_eq!(series[0].points[0], (10.0, 1.0));
        assert!(series[0].points[1].1.is_nan());
        assert_eq!(series[0].points[2].1, f64::INFINITY);
        let vector = json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {}, "value": [10.5, "2"]}]}});
        assert_eq!(parse(&vector).unwrap()[0].points, vec![(10.5, 2.0)]);
        let error = json!({"status": "error", "errorType": "bad_data", "error": "parse error"});
        assert_eq!(parse(&error), Err("parse error".to_string()));
    }

    #[test]
    fn legends_fill_labels_or_name_the_series() {
        let series = Series {
            labels: BTreeMap::from([
                ("namespace".into(), "dept-a".into()),
                ("policy".into(), "nightly".into()),
            ]),
            points: vec![],
        };
        assert_eq!(
            legend("{{namespace}}/{{ policy }} {{missing}}", &series, "q"),
            "dept-a/nightly "
        );
        assert_eq!(
            legend("__auto", &series, "q"),
            "{namespace=\"dept-a\", policy=\"nightly\"}"
        );
        assert_eq!(legend("", &Series::default(), "vector(1)"), "vector(1)");
    }
}
