//! The parts of a Grafana dashboard (schemaVersion 39) the renderer reads: panels, their field
//! configuration once overrides apply, template variables and the time range.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Dashboard {
    pub title: String,
    /// Read one by one, so that a panel the renderer cannot read spoils only its own box.
    pub panels: Vec<Value>,
    pub templating: Templating,
    pub time: TimeSetting,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Templating {
    pub list: Vec<Variable>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Variable {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub include_all: bool,
    pub all_value: Option<String>,
    pub current: Value,
    pub query: Value,
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct TimeSetting {
    pub from: String,
}

impl Default for TimeSetting {
    fn default() -> Self {
        Self {
            from: "now-6h".into(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Panel {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub description: String,
    pub grid_pos: GridPos,
    pub collapsed: bool,
    /// A collapsed row's panels.
    pub panels: Vec<Value>,
    pub targets: Vec<Target>,
    pub field_config: FieldConfigSource,
    pub options: Value,
    pub transformations: Vec<Transformation>,
}

/// A panel's place on the dashboard's 24-column grid (`h` in grid rows).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default)]
pub struct GridPos {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// Grafana's size for a new panel.
impl Default for GridPos {
    fn default() -> Self {
        Self {
            x: 0,
            y: 0,
            w: 12,
            h: 8,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Target {
    pub expr: String,
    pub legend_format: String,
    pub instant: bool,
    pub range: bool,
    pub format: String,
    pub ref_id: String,
    pub hide: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FieldConfigSource {
    pub defaults: Value,
    pub overrides: Vec<Override>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Override {
    pub matcher: Matcher,
    pub properties: Vec<Property>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Matcher {
    pub id: String,
    pub options: Value,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Property {
    pub id: String,
    pub value: Value,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Transformation {
    pub id: String,
    pub options: Value,
}

/// How one field (a series, a table column) is shown: the panel's defaults with the overrides
/// that match its display name applied in order, as Grafana does.
#[derive(Debug, Default, Clone)]
pub struct Field {
    pub unit: String,
    /// Ascending steps; the first (Grafana's `null`) is `-inf`.
    pub thresholds: Vec<(f64, String)>,
    pub fixed_color: Option<String>,
    /// `custom.cellOptions.type` of table columns: `color-text`, `color-background`, …
    pub cell: String,
    /// Value mappings: from..=to → text and color.
    pub mappings: Vec<(f64, f64, String, Option<String>)>,
    pub threshold_lines: bool,
    pub bars: bool,
    pub stacked: bool,
}

impl Panel {
    /// The field configuration of the field displayed as `name`.
    pub fn field(&self, name: &str) -> Field {
        let mut field = self.defaults();
        for rule in &self.field_config.overrides {
            let pattern = rule.matcher.options.as_str().unwrap_or_default();
            let matches = match rule.matcher.id.as_str() {
                "byName" => pattern == name,
                "byRegexp" => {
                    regex::Regex::new(&format!("^(?:{pattern})$")).is_ok_and(|re| re.is_match(name))
                }
                _ => false,
            };
            if matches {
                for property in &rule.properties {
                    field.apply(&property.id, &property.value);
                }
            }
        }
        field
    }

    /// The panel's field defaults, before overrides.
    pub fn defaults(&self) -> Field {
        let mut field = Field::default();
        let defaults = &self.field_config.defaults;
        for id in ["unit", "thresholds", "color", "mappings"] {
            field.apply(id, &defaults[id]);
        }
        if let Some(custom) = defaults["custom"].as_object() {
            for (key, value) in custom {
                field.apply(&format!("custom.{key}"), value);
            }
        }
        field
    }
}

impl Field {
    /// Applies one property, named as overrides name them; unknown ones change nothing.
    fn apply(&mut self, id: &str, value: &Value) {
        match id {
            "unit" => self.unit = value.as_str().unwrap_or_default().to_string(),
            "thresholds" => {
                self.thresholds = value["steps"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|step| {
                        let at = step["value"].as_f64().unwrap_or(f64::NEG_INFINITY);
                        (at, step["color"].as_str().unwrap_or("green").to_string())
                    })
                    .collect();
            }
            "color" => {
                self.fixed_color = (value["mode"] == "fixed")
                    .then(|| value["fixedColor"].as_str().map(String::from))
                    .flatten();
            }
            "mappings" => self.mappings = mappings(value),
            "custom.cellOptions" => {
                self.cell = value["type"].as_str().unwrap_or_default().to_string();
            }
            "custom.thresholdsStyle" => {
                self.threshold_lines = matches!(value["mode"].as_str(), Some("line" | "dashed"));
            }
            "custom.drawStyle" => self.bars = value == "bars",
            "custom.stacking" => self.stacked = value["mode"] == "normal",
            _ => {}
        }
    }

    /// The color of the threshold step `value` falls in.
    pub fn threshold_color(&self, value: f64) -> Option<&str> {
        self.thresholds
            .iter()
            .rev()
            .find(|(at, _)| value >= *at)
            .map(|(_, color)| color.as_str())
    }

    /// What a value mapping shows instead of `value`, and its color.
    pub fn mapped(&self, value: f64) -> Option<(&str, Option<&str>)> {
        self.mappings
            .iter()
            .find(|(from, to, _, _)| (*from..=*to).contains(&value))
            .map(|(_, _, text, color)| (text.as_str(), color.as_deref()))
    }
}

fn mappings(value: &Value) -> Vec<(f64, f64, String, Option<String>)> {
    let result = |r: &Value| {
        (
            r["text"].as_str().unwrap_or_default().to_string(),
            r["color"].as_str().map(String::from),
        )
    };
    let mut out = Vec::new();
    for mapping in value.as_array().into_iter().flatten() {
        let options = &mapping["options"];
        match mapping["type"].as_str() {
            Some("value") => {
                for (key, r) in options.as_object().into_iter().flatten() {
                    if let Ok(at) = key.parse::<f64>() {
                        let (text, color) = result(r);
                        out.push((at, at, text, color));
                    }
                }
            }
            Some("range") => {
                let from = options["from"].as_f64().unwrap_or(f64::NEG_INFINITY);
                let to = options["to"].as_f64().unwrap_or(f64::INFINITY);
                let (text, color) = result(&options["result"]);
                out.push((from, to, text, color));
            }
            _ => {}
        }
    }
    out
}

/// The time range and the step of range queries, in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeRange {
    pub start: f64,
    pub end: f64,
    pub step: f64,
}

/// The scrape interval Grafana's Prometheus data source assumes unless told (`timeInterval`):
/// the least step, and the base of `$__rate_interval`.
pub const SCRAPE_INTERVAL: f64 = 15.0;

impl TimeRange {
    /// The last `seconds` before `end`, with a step giving about 400 points (a panel's width in
    /// pixels, Grafana's `maxDataPoints`), never below the scrape interval.
    pub fn last(seconds: f64, end: f64) -> Self {
        let step = (seconds / 400.0).ceil().max(SCRAPE_INTERVAL);
        Self {
            start: end - seconds,
            end,
            step,
        }
    }
}

/// Seconds in a relative time such as `now-30m`, `-30m` or `30m` (units s, m, h, d, w).
pub fn relative_seconds(text: &str) -> Result<f64, String> {
    let bad = || format!("cannot read the time {text:?} (expected e.g. now-30m or -6h)");
    let rest = text
        .trim()
        .trim_start_matches("now")
        .trim_start_matches('-');
    let split = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = rest.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let unit = match unit {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        "w" => 604_800.0,
        _ => return Err(bad()),
    };
    Ok(number * unit)
}

/// The values of the dashboard's variables and Grafana's built-in ones for `range`:
/// a data source is `prometheus`, a variable that includes "All" is its all value (`.*`
/// unless set), others their current value.
pub fn variables(
    templating: &Templating,
    prometheus: &str,
    range: &TimeRange,
) -> BTreeMap<String, String> {
    let span = (range.end - range.start).round();
    let rate = (range.step + SCRAPE_INTERVAL).max(4.0 * SCRAPE_INTERVAL);
    let mut vars: BTreeMap<String, String> = [
        ("__range", format!("{span}s")),
        ("__range_s", format!("{span}")),
        ("__range_ms", format!("{}", span * 1000.0)),
        ("__interval", format!("{}s", range.step)),
        ("__interval_ms", format!("{}", range.step * 1000.0)),
        ("__rate_interval", format!("{rate}s")),
        ("__from", format!("{}", (range.start * 1000.0).round())),
        ("__to", format!("{}", (range.end * 1000.0).round())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for var in &templating.list {
        let current = var.current["value"].as_str().map(String::from);
        let value = match var.kind.as_str() {
            "datasource" => prometheus.to_string(),
            "constant" => var.query.as_str().unwrap_or_default().to_string(),
            _ if var.include_all || current.is_none() => {
                var.all_value.clone().unwrap_or_else(|| ".*".into())
            }
            _ => current.unwrap_or_default(),
        };
        vars.insert(var.name.clone(), value);
    }
    vars
}

/// Replaces `$name` and `${name}` (`${name:format}` too, format ignored) by their values;
/// anything else, such as a regex's `$`, stays.
pub fn substitute(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, len) = match after.strip_prefix('{') {
            Some(braced) => match braced.find('}') {
                Some(end) => (braced[..end].split(':').next().unwrap_or_default(), end + 2),
                None => ("", 0),
            },
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        match vars.get(name) {
            Some(value) if len > 0 => {
                out.push_str(value);
                rest = &after[len..];
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dashboard() -> Dashboard {
        serde_json::from_str(include_str!(
            "../../../deploy/grafana/gongshu-dashboard.json"
        ))
        .unwrap()
    }

    #[test]
    fn department_is_all_and_builtins_follow_the_range() {
        let range = TimeRange::last(1800.0, 1_000_000.0);
        let vars = variables(&dashboard().templating, "http://127.0.0.1:9091", &range);
        assert_eq!(vars["department"], ".*");
        assert_eq!(vars["datasource"], "http://127.0.0.1:9091");
        let expr =
            "sum(increase(x{department=~\"$department\"}[$__range])) / rate(y[$__rate_interval])";
        assert_eq!(
            substitute(expr, &vars),
            "sum(increase(x{department=~\".*\"}[1800s])) / rate(y[60s])"
        );
    }

    #[test]
    fn braces_formats_and_unknown_names_are_handled() {
        let vars = BTreeMap::from([("a".to_string(), "1".to_string())]);
        assert_eq!(substitute("${a}-${a:regex}-$a_b-$a", &vars), "1-1-$a_b-1");
        assert_eq!(substitute("x=~\"foo$\" ${b", &vars), "x=~\"foo$\" ${b");
    }

    #[test]
    fn overrides_by_name_change_unit_cells_and_thresholds() {
        let panel = dashboard()
            .panels
            .into_iter()
            .map(|p| serde_json::from_value::<Panel>(p).unwrap())
            .find(|p| p.title.starts_with("Policies"))
            .unwrap();
        assert_eq!(panel.field("RPO").unit, "s");
        let breached = panel.field("RPO breached");
        assert_eq!(
            (breached.unit.as_str(), breached.cell.as_str()),
            ("short", "color-background")
        );
        assert_eq!(breached.threshold_color(0.0), Some("green"));
        assert_eq!(breached.threshold_color(1.0), Some("red"));
    }

    #[test]
    fn value_mappings_and_relative_times() {
        let mut field = Field::default();
        field.apply(
            "mappings",
            &serde_json::json!([{"type": "value", "options": {"0": {"text": "BROKEN", "color": "red"}}}]),
        );
        assert_eq!(field.mapped(0.0), Some(("BROKEN", Some("red"))));
        assert_eq!(field.mapped(1.0), None);
        assert_eq!(relative_seconds("now-30m"), Ok(1800.0));
        assert_eq!(relative_seconds("-6h"), Ok(21_600.0));
        assert!(relative_seconds("yesterday").is_err());
    }
}
