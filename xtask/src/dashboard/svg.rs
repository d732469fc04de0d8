//! Panels drawn as inline SVG: time series (lines or stacked bars, axes, threshold lines, a
//! legend), stat (big numbers), bar gauge (horizontal bars), and messages such as "No data".

use std::{collections::BTreeMap, fmt::Write};

use super::{
    format::{self, escape},
    model::{Field, TimeRange},
};

/// The text color of the page (Grafana's dark theme).
const TEXT: &str = "#CCCCDC";
const WEAK: &str = "#8E8E8E";
const GRID: &str = "#2F3237";
/// Average glyph width of 12 px sans-serif, for layouts made before a browser measures text.
const CHAR: f64 = 6.6;

/// A series ready to draw: its legend name, color and field configuration.
#[derive(Debug, Clone)]
pub struct Shown {
    pub name: String,
    pub color: String,
    pub field: Field,
    pub points: Vec<(f64, f64)>,
}

fn open(width: f64, height: f64) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="Inter, Helvetica, Arial, sans-serif" font-size="12">"#
    )
}

/// A centered message (`No data`, a query's error), wrapped at words to the width.
pub fn message(text: &str, width: f64, height: f64) -> String {
    let per_line = ((width - 16.0) / 7.5).max(8.0) as usize;
    let mut lines: Vec<String> = vec![String::new()];
    for word in text.split_whitespace() {
        let line = lines.last_mut().map_or(0, |l| l.chars().count());
        if line > 0 && line + 1 + word.chars().count() > per_line {
            lines.push(String::new());
        }
        if let Some(line) = lines.last_mut() {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines.truncate(((height - 8.0) / 18.0).max(1.0) as usize);
    let mut svg = open(width, height);
    let top = height / 2.0 - (lines.len() as f64 - 1.0) * 9.0 + 5.0;
    for (i, line) in lines.iter().enumerate() {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" fill="{WEAK}" text-anchor="middle" font-size="14">{}</text>"#,
            width / 2.0,
            top + i as f64 * 18.0,
            escape(line)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Lines (or stacked bars when the field says `bars`) over `range`; `field` is the panel's
/// defaults (unit, thresholds).
pub fn timeseries(
    series: &[Shown],
    field: &Field,
    range: &TimeRange,
    offset: f64,
    width: f64,
    height: f64,
) -> String {
    let legend = legend_lines(series, width, height);
    let legend_height = legend.len() as f64 * 18.0;
    // Each layer: points as (time, bottom, top); bars stack on the ones drawn before.
    let mut stacks: BTreeMap<i64, f64> = BTreeMap::new();
    let layers: Vec<Vec<(f64, f64, f64)>> = series
        .iter()
        .map(|s| {
            s.points
                .iter()
                .filter(|(_, v)| v.is_finite())
                .map(|&(t, v)| {
                    if s.field.bars && s.field.stacked {
                        let base = stacks.entry(t.round() as i64).or_default();
                        let bottom = *base;
                        *base += v;
                        (t, bottom, bottom + v)
                    } else {
                        (t, 0.0, v)
                    }
                })
                .collect()
        })
        .collect();
    let values = layers.iter().flatten().flat_map(|&(_, b, t)| [b, t]);
    // Thresholds count in the range when drawn, so the line one compares with is visible.
    let lines: Vec<(f64, String)> = field
        .thresholds
        .iter()
        .filter(|(at, _)| field.threshold_lines && at.is_finite())
        .cloned()
        .collect();
    let (mut lo, mut hi) = values
        .chain(lines.iter().map(|(at, _)| *at))
        .fold((0.0f64, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if hi <= lo {
        hi = lo + 1.0;
    }
    let plot_height = (height - legend_height - 26.0).max(20.0);
    let y_ticks = format::ticks(
        lo,
        hi,
        (plot_height / 40.0).clamp(2.0, 6.0) as usize,
        &field.unit,
    );
    lo = y_ticks.first().copied().unwrap_or(lo).min(lo);
    hi = y_ticks.last().copied().unwrap_or(hi).max(hi);
    let labels: Vec<String> = y_ticks
        .iter()
        .map(|v| format::value(*v, &field.unit))
        .collect();
    let left = labels.iter().map(|l| l.len()).max().unwrap_or(1) as f64 * CHAR + 10.0;
    let (top, right, bottom) = (6.0, width - 10.0, 6.0 + plot_height);
    let x = |t: f64| left + (t - range.start) / (range.end - range.start) * (right - left);
    let y = |v: f64| bottom - (v - lo) / (hi - lo) * (bottom - top);

    let mut svg = open(width, height);
    for (tick, label) in y_ticks.iter().zip(&labels) {
        let _ = write!(
            svg,
            r#"<line x1="{left:.1}" x2="{right:.1}" y1="{0:.1}" y2="{0:.1}" stroke="{GRID}"/><text x="{1:.1}" y="{2:.1}" fill="{WEAK}" text-anchor="end">{3}</text>"#,
            y(*tick),
            left - 6.0,
            y(*tick) + 4.0,
            escape(label)
        );
    }
    let span = range.end - range.start;
    let x_ticks = format::time_ticks(
        range.start,
        range.end,
        ((right - left) / 90.0) as usize,
        offset,
    );
    // A label must fit in the panel.
    for tick in x_ticks.into_iter().filter(|t| x(*t) + 18.0 <= width) {
        let _ = write!(
            svg,
            r#"<line x1="{0:.1}" x2="{0:.1}" y1="{top:.1}" y2="{bottom:.1}" stroke="{GRID}"/><text x="{0:.1}" y="{1:.1}" fill="{WEAK}" text-anchor="middle">{2}</text>"#,
            x(tick),
            bottom + 15.0,
            clock(tick, offset, span)
        );
    }
    for (at, color) in &lines {
        let _ = write!(
            svg,
            r#"<line x1="{left:.1}" x2="{right:.1}" y1="{0:.1}" y2="{0:.1}" stroke="{1}" stroke-dasharray="6 4"/>"#,
            y(*at),
            format::color(color)
        );
    }
    for (s, layer) in series.iter().zip(&layers) {
        if s.field.bars {
            let bar = ((x(range.start + range.step) - x(range.start)) * 0.8).max(1.0);
            for &(t, b, v) in layer {
                let _ = write!(
                    svg,
                    r#"<rect x="{:.1}" y="{:.1}" width="{bar:.1}" height="{:.1}" fill="{}" fill-opacity="0.6"/>"#,
                    x(t) - bar / 2.0,
                    y(v),
                    (y(b) - y(v)).max(0.0),
                    s.color
                );
            }
            continue;
        }
        // A gap longer than two steps (a target that was down) breaks the line.
        let mut segment: Vec<String> = Vec::new();
        let mut last = f64::NEG_INFINITY;
        for &(t, _, v) in layer.iter().chain([(f64::INFINITY, 0.0, 0.0)].iter()) {
            if t - last > 2.0 * range.step {
                match segment.len() {
                    0 => {}
                    1 => {
                        let (px, py) = segment[0].split_once(',').unwrap_or_default();
                        let _ = write!(
                            svg,
                            r#"<circle cx="{px}" cy="{py}" r="2" fill="{}"/>"#,
                            s.color
                        );
                    }
                    _ => {
                        let _ = write!(
                            svg,
                            r#"<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>"#,
                            s.color,
                            segment.join(" ")
                        );
                    }
                }
                segment.clear();
            }
            if t.is_finite() {
                segment.push(format!("{:.1},{:.1}", x(t), y(v)));
            }
            last = t;
        }
    }
    let mut line_y = bottom + 33.0;
    for line in legend {
        let mut item_x = left;
        for (s, text_width) in line {
            let _ = write!(
                svg,
                r#"<rect x="{item_x:.1}" y="{:.1}" width="14" height="4" rx="1" fill="{}"/><text x="{:.1}" y="{line_y:.1}" fill="{TEXT}">{}</text>"#,
                line_y - 6.0,
                s.color,
                item_x + 18.0,
                escape(&s.name)
            );
            item_x += text_width;
        }
        line_y += 18.0;
    }
    svg.push_str("</svg>");
    svg
}

/// The legend's items in lines that fit `width`, each item with its width; at most three
/// lines and a third of `height`, the last one ending with how many did not fit.
fn legend_lines(series: &[Shown], width: f64, height: f64) -> Vec<Vec<(Shown, f64)>> {
    let mut lines: Vec<Vec<(Shown, f64)>> = vec![];
    let mut used = f64::INFINITY;
    for s in series {
        let item = s.name.chars().count() as f64 * CHAR + 34.0;
        if used + item > width - 20.0 {
            lines.push(vec![]);
            used = 0.0;
        }
        used += item;
        if let Some(line) = lines.last_mut() {
            line.push((s.clone(), item));
        }
    }
    let max_lines = (height * 0.3 / 18.0).clamp(1.0, 3.0) as usize;
    if lines.len() > max_lines {
        let mut hidden: usize = lines[max_lines..].iter().map(Vec::len).sum();
        lines.truncate(max_lines);
        if let Some(last) = lines.last_mut() {
            // Room for the marker at the end of the last line.
            while last.len() > 1 && last.iter().map(|(_, w)| w).sum::<f64>() + 90.0 > width - 20.0 {
                last.pop();
                hidden += 1;
            }
            let more = Shown {
                name: format!("… and {hidden} more"),
                color: "transparent".into(),
                field: Field::default(),
                points: vec![],
            };
            last.push((more, 0.0));
        }
    }
    lines
}

/// A tick's label: the local clock time, with the date when the range spans days.
fn clock(at: f64, offset: f64, span: f64) -> String {
    let local = at + offset;
    let minutes = (local / 60.0).round() as i64;
    let (days, minute_of_day) = (minutes.div_euclid(1440), minutes.rem_euclid(1440));
    let time = format!("{:02}:{:02}", minute_of_day / 60, minute_of_day % 60);
    if span > 2.0 * 86_400.0 {
        let date = jiff::civil::date(1970, 1, 1).checked_add(jiff::Span::new().days(days));
        date.map_or(time.clone(), |d| format!("{} {time}", d.strftime("%m-%d")))
    } else {
        time
    }
}

/// What a stat or bar shows for `value`: mapped text or the number in the field's unit, and
/// its color (the mapping's, or the threshold step's).
fn display(value: f64, field: &Field) -> (String, String) {
    let threshold = field.threshold_color(value).unwrap_or("green");
    match field.mapped(value) {
        Some((text, color)) => (text.to_string(), format::color(color.unwrap_or(threshold))),
        None => (
            format::value(value, &field.unit),
            format::color(field.fixed_color.as_deref().unwrap_or(threshold)),
        ),
    }
}

/// Big numbers, side by side when the panel is wider than tall; `background` colors each
/// cell (Grafana's `colorMode: background`), otherwise the number.
pub fn stat(values: &[(String, f64, Field)], background: bool, width: f64, height: f64) -> String {
    let mut svg = open(width, height);
    let n = values.len().max(1) as f64;
    let across = width >= height;
    let (cell_w, cell_h) = if across {
        (width / n, height)
    } else {
        (width, height / n)
    };
    for (i, (name, value, field)) in values.iter().enumerate() {
        let (x0, y0) = if across {
            (i as f64 * cell_w, 0.0)
        } else {
            (0.0, i as f64 * cell_h)
        };
        let (text, color) = display(*value, field);
        let size = (cell_h * 0.45)
            .min((cell_w - 12.0) / (text.chars().count().max(1) as f64 * 0.62))
            .max(10.0);
        let fill = if background {
            let _ = write!(
                svg,
                r#"<rect x="{:.1}" y="{y0:.1}" width="{:.1}" height="{cell_h:.1}" rx="2" fill="{color}"/>"#,
                x0 + 1.0,
                cell_w - 2.0
            );
            "#FFFFFF".to_string()
        } else {
            color
        };
        let center = x0 + cell_w / 2.0;
        let mut baseline = y0 + cell_h / 2.0 + size * 0.35;
        if values.len() > 1 {
            let name_size = (cell_h * 0.14).clamp(10.0, 14.0);
            let _ = write!(
                svg,
                r#"<text x="{center:.1}" y="{:.1}" fill="{fill}" text-anchor="middle" font-size="{name_size:.0}">{}</text>"#,
                y0 + name_size + 6.0,
                escape(name)
            );
            baseline += name_size * 0.6;
        }
        let _ = write!(
            svg,
            r#"<text x="{center:.1}" y="{baseline:.1}" fill="{fill}" text-anchor="middle" font-size="{size:.0}" font-weight="500">{}</text>"#,
            escape(&text)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Horizontal bars from 0 to the largest value with the value at their right; each name above
/// its bar when a row has room for both, otherwise in a column at the left. An unfilled track
/// behind the bars when `unfilled`.
pub fn bargauge(
    values: &[(String, f64, Field)],
    unfilled: bool,
    width: f64,
    height: f64,
) -> String {
    let mut svg = open(width, height);
    let max = values
        .iter()
        .map(|(_, v, _)| *v)
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let max = if max > 0.0 { max } else { 1.0 };
    let longest = |texts: &mut dyn Iterator<Item = usize>| texts.max().unwrap_or(1) as f64;
    let row = (height / values.len().max(1) as f64).min(48.0);
    let above = row >= 34.0;
    let name_width = if above {
        0.0
    } else {
        (longest(&mut values.iter().map(|(n, _, _)| n.chars().count())) * CHAR + 10.0)
            .min(width * 0.4)
    };
    let texts: Vec<(String, String)> = values.iter().map(|(_, v, f)| display(*v, f)).collect();
    let value_size = (row * 0.6).clamp(9.0, 16.0);
    let value_width =
        longest(&mut texts.iter().map(|(t, _)| t.chars().count())) * value_size * 0.6 + 12.0;
    let bar_width = (width - name_width - value_width).max(10.0);
    for (i, ((name, value, _), (text, color))) in values.iter().zip(&texts).enumerate() {
        let y0 = i as f64 * row;
        let (bar_y, bar_h) = if above {
            (y0 + 16.0, (row - 20.0).clamp(4.0, 24.0))
        } else {
            (y0 + 2.0, (row - 4.0).max(2.0))
        };
        let name_y = if above {
            y0 + 12.0
        } else {
            bar_y + bar_h / 2.0 + 4.0
        };
        let _ = write!(
            svg,
            r#"<text x="0" y="{name_y:.1}" fill="{TEXT}">{}</text>"#,
            escape(name)
        );
        if unfilled {
            let _ = write!(
                svg,
                r##"<rect x="{name_width:.1}" y="{bar_y:.1}" width="{bar_width:.1}" height="{bar_h:.1}" fill="#25282D"/>"##
            );
        }
        let fill = (value.max(0.0) / max).min(1.0) * bar_width;
        let _ = write!(
            svg,
            r#"<rect x="{name_width:.1}" y="{bar_y:.1}" width="{fill:.1}" height="{bar_h:.1}" fill="{color}"/><text x="{:.1}" y="{:.1}" fill="{color}" font-size="{value_size:.0}">{}</text>"#,
            name_width + bar_width + 8.0,
            bar_y + bar_h / 2.0 + value_size * 0.35,
            escape(text)
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(name: &str, points: &[(f64, f64)]) -> Shown {
        Shown {
            name: name.into(),
            color: format::PALETTE[0].into(),
            field: Field::default(),
            points: points.to_vec(),
        }
    }

    const RANGE: TimeRange = TimeRange {
        start: 0.0,
        end: 600.0,
        step: 15.0,
    };

    #[test]
    fn a_series_with_a_gap_is_two_lines_with_axes_and_legend() {
        let field = Field {
            unit: "s".into(),
            ..Field::default()
        };
        let points = [
            (0.0, 1.0),
            (15.0, 2.0),
            (30.0, 3.0),
            (300.0, 4.0),
            (315.0, 5.0),
        ];
        let svg = timeseries(
            &[shown("dept-a", &points)],
            &field,
            &RANGE,
            0.0,
            400.0,
            200.0,
        );
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert!(svg.contains(">dept-a</text>"));
        assert!(svg.contains(">4 s</text>"), "y axis in seconds: {svg}");
        assert!(svg.contains(">00:05</text>"), "x axis in clock time: {svg}");
    }

    #[test]
    fn stacked_bars_start_where_the_previous_series_ends() {
        let bars = Field {
            bars: true,
            stacked: true,
            ..Field::default()
        };
        let series: Vec<Shown> = ["a", "b"]
            .iter()
            .map(|n| Shown {
                field: bars.clone(),
                ..shown(n, &[(300.0, 2.0)])
            })
            .collect();
        let svg = timeseries(&series, &bars, &RANGE, 0.0, 400.0, 200.0);
        assert_eq!(
            svg.matches("<rect x=").count(),
            4,
            "two bars and two legend marks"
        );
        assert!(
            svg.contains(">4</text>"),
            "the axis reaches the stacked sum: {svg}"
        );
    }

    #[test]
    fn thresholds_and_mappings_color_stats() {
        let field = Field {
            thresholds: vec![(f64::NEG_INFINITY, "green".into()), (1.0, "red".into())],
            ..Field::default()
        };
        let svg = stat(
            &[("overdue".into(), 2.0, field.clone())],
            true,
            200.0,
            100.0,
        );
        assert!(svg.contains(r##"fill="#F2495C""##), "{svg}");
        assert!(svg.contains(">2</text>"));
        let mapped = Field {
            mappings: vec![(0.0, 0.0, "BROKEN".into(), Some("red".into()))],
            ..field
        };
        assert!(stat(&[("a".into(), 0.0, mapped)], false, 200.0, 100.0).contains(">BROKEN<"));
    }

    #[test]
    fn bars_are_scaled_to_the_largest_value() {
        let values = [
            ("Active".to_string(), 4.0, Field::default()),
            ("Denied".to_string(), 1.0, Field::default()),
        ];
        let svg = bargauge(&values, true, 300.0, 120.0);
        assert!(
            svg.contains(r#"width="278.4""#),
            "the largest fills the track: {svg}"
        );
        assert!(svg.contains(r#"width="69.6""#), "a quarter of it: {svg}");
        // Eight bars in 120 px: names move to the left of their bars.
        let eight: Vec<_> = (0..8)
            .map(|i| (format!("p{i}"), 1.0, Field::default()))
            .collect();
        assert!(bargauge(&eight, true, 300.0, 120.0).contains(r#"<rect x="23.2""#));
    }

    #[test]
    fn long_messages_wrap_at_words() {
        let text = "query A: bad_data: 1:5: parse error: unclosed left parenthesis";
        let svg = message(text, 200.0, 100.0);
        assert_eq!(svg.matches("<text").count(), 3, "{svg}");
    }
}
