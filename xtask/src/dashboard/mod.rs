//! `cargo xtask dashboard render`: a static export of a Grafana dashboard, since no Grafana
//! runs here. Reads the dashboard JSON, resolves its variables, runs each panel's PromQL
//! against a Prometheus, draws the panels on the dashboard's grid into one self-contained
//! `index.html`, and, when `chromium` is on the PATH, screenshots it to `dashboard.png`.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{SystemTime, UNIX_EPOCH},
};

mod format;
mod model;
mod page;
mod prom;
mod svg;
mod table;

use model::{Dashboard, GridPos, Panel, TimeRange};
use page::Block;
use prom::Series;

use crate::{Result, repo};

#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// Prometheus' base URL: the dashboard's `${datasource}`.
    #[arg(long)]
    prometheus: String,
    /// Start of the time range, back from now (`-30m`, `now-6h`); the dashboard's own by default.
    #[arg(long, allow_hyphen_values = true)]
    from: Option<String>,
    /// The dashboard [default: deploy/grafana/gongshu-dashboard.json].
    #[arg(long)]
    dashboard: Option<PathBuf>,
    /// The directory for `index.html` and `dashboard.png`.
    #[arg(long, default_value = "target/dashboard")]
    out: PathBuf,
}

/// One query of a panel and the series it returned.
#[derive(Debug)]
pub struct Frame {
    pub ref_id: String,
    pub legend_format: String,
    pub expr: String,
    pub series: Vec<Series>,
}

pub async fn render(args: RenderArgs) -> Result {
    let path = args
        .dashboard
        .unwrap_or_else(|| repo().join("deploy/grafana/gongshu-dashboard.json"));
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let dashboard: Dashboard = serde_json::from_str(&text)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as f64;
    let from = args.from.as_deref().unwrap_or(&dashboard.time.from);
    let range = TimeRange::last(model::relative_seconds(from)?, now);
    let vars = model::variables(&dashboard.templating, &args.prometheus, &range);
    let zone = jiff::tz::TimeZone::system();
    let end = jiff::Timestamp::from_second(now as i64)?.to_zoned(zone.clone());
    let offset = f64::from(end.offset().seconds());
    let client = prom::Client::new(&args.prometheus);

    // Panels as read (or why not), then moved up into free space as Grafana's grid does.
    let mut panels: Vec<(Panel, Option<String>)> = dashboard
        .panels
        .iter()
        .map(
            |value| match serde_json::from_value::<Panel>(value.clone()) {
                Ok(panel) => (panel, None),
                Err(e) => {
                    // Unplaceable too: last, where compaction finds room.
                    let grid_pos =
                        serde_json::from_value(value["gridPos"].clone()).unwrap_or(GridPos {
                            y: 10_000,
                            ..GridPos::default()
                        });
                    let panel = Panel {
                        grid_pos,
                        ..Panel::default()
                    };
                    (panel, Some(format!("cannot read this panel: {e}")))
                }
            },
        )
        .collect();
    let grid: Vec<_> = panels.iter().map(|(p, _)| p.grid_pos).collect();
    for ((panel, _), compacted) in panels.iter_mut().zip(page::compact(&grid)) {
        panel.grid_pos = compacted;
    }
    let mut blocks = Vec::new();
    for (panel, error) in &panels {
        blocks.push(match error {
            Some(e) => panel_block(panel, |w, h| svg::message(e, w, h)),
            None => block(&client, panel, &vars, &range, offset).await?,
        });
    }

    let about = format!(
        "{} from {from} to {} · department: all · step {}s",
        args.prometheus,
        end.strftime("%Y-%m-%d %H:%M %Z"),
        range.step
    );
    let out = std::path::absolute(&args.out)?;
    std::fs::create_dir_all(&out)?;
    let index = out.join("index.html");
    std::fs::write(&index, page::html(&dashboard.title, &about, &blocks))?;
    eprintln!("wrote {}", index.display());
    screenshot(&out, page::height(&blocks))
}

/// A row's heading, or a panel with what its queries returned.
async fn block(
    client: &prom::Client,
    panel: &Panel,
    vars: &std::collections::BTreeMap<String, String>,
    range: &TimeRange,
    offset: f64,
) -> Result<Block> {
    let rect = page::place(panel.grid_pos, page::grid_width());
    match panel.kind.as_str() {
        "row" => {
            let mut title = model::substitute(&panel.title, vars);
            if panel.collapsed {
                let n = panel.panels.len();
                let panels = if n == 1 { "panel" } else { "panels" };
                title.push_str(&format!(" (collapsed: {n} {panels})"));
            }
            return Ok(Block::Heading { rect, title });
        }
        "text" => {
            let content = panel.options["content"].as_str().unwrap_or_default();
            let body = format!("<pre>{}</pre>", format::escape(content));
            return Ok(panel_block(panel, |_, _| body.clone()));
        }
        _ => {}
    }
    // Graphs ask for a range; stats, tables and bars for the value now, unless told otherwise.
    let graph = matches!(panel.kind.as_str(), "timeseries" | "graph");
    let mut frames = Vec::new();
    for target in panel
        .targets
        .iter()
        .filter(|t| !t.hide && !t.expr.is_empty())
    {
        let expr = model::substitute(&target.expr, vars);
        let instant = target.instant || (!graph && !target.range);
        let answer = if instant {
            client.instant(&expr, range.end).await
        } else {
            client.range(&expr, range).await
        };
        let series = match answer {
            Ok(series) => series,
            Err(prom::Error::Unreachable(e)) => return Err(format!("Prometheus: {e}").into()),
            Err(prom::Error::Rejected(e)) => {
                let text = format!("query {}: {e}", target.ref_id);
                return Ok(panel_block(panel, |w, h| svg::message(&text, w, h)));
            }
        };
        frames.push(Frame {
            ref_id: target.ref_id.clone(),
            legend_format: target.legend_format.clone(),
            expr,
            series,
        });
    }
    Ok(panel_block(panel, |w, h| {
        draw(panel, &frames, range, offset, w, h)
    }))
}

fn panel_block(panel: &Panel, body: impl FnOnce(f64, f64) -> String) -> Block {
    let rect = page::place(panel.grid_pos, page::grid_width());
    let (width, height) = page::body_size(rect);
    Block::Panel {
        rect,
        title: panel.title.clone(),
        description: panel.description.clone(),
        body: body(width, height),
    }
}

/// A panel's content for its type; types without a drawing of their own get the graph when
/// their answer is a range, bars otherwise.
fn draw(
    panel: &Panel,
    frames: &[Frame],
    range: &TimeRange,
    offset: f64,
    width: f64,
    height: f64,
) -> String {
    if panel.targets.is_empty() {
        return svg::message("No queries", width, height);
    }
    if panel.kind == "table" {
        return table::html(panel, frames)
            .unwrap_or_else(|| svg::message("No data", width, height));
    }
    let shown = shown(panel, frames);
    if shown.iter().all(|s| s.points.is_empty()) {
        return svg::message("No data", width, height);
    }
    // Grafana's `lastNotNull`, the reduction the dashboard's stats and bars use.
    let last = || -> Vec<(String, f64, model::Field)> {
        shown
            .iter()
            .filter_map(|s| {
                let v = s.points.iter().rev().map(|p| p.1).find(|v| !v.is_nan())?;
                Some((s.name.clone(), v, s.field.clone()))
            })
            .collect()
    };
    let unfilled = panel.options["showUnfilled"].as_bool().unwrap_or(true);
    match panel.kind.as_str() {
        "timeseries" | "graph" => {
            svg::timeseries(&shown, &panel.defaults(), range, offset, width, height)
        }
        "stat" | "singlestat" | "gauge" => {
            let background = panel.options["colorMode"] == "background";
            svg::stat(&last(), background, width, height)
        }
        "bargauge" => svg::bargauge(&last(), unfilled, width, height),
        _ if shown.iter().any(|s| s.points.len() > 1) => {
            svg::timeseries(&shown, &panel.defaults(), range, offset, width, height)
        }
        _ => svg::bargauge(&last(), unfilled, width, height),
    }
}

/// Every series of the panel with its legend name, its field configuration and a color: the
/// field's fixed one or the next of the classic palette.
fn shown(panel: &Panel, frames: &[Frame]) -> Vec<svg::Shown> {
    let series = frames
        .iter()
        .flat_map(|f| f.series.iter().map(move |s| (f, s)));
    series
        .enumerate()
        .map(|(i, (frame, s))| {
            let name = prom::legend(&frame.legend_format, s, &frame.expr);
            let field = panel.field(&name);
            let color = match &field.fixed_color {
                Some(color) => format::color(color),
                None => format::PALETTE[i % format::PALETTE.len()].to_string(),
            };
            svg::Shown {
                name,
                color,
                field,
                points: s.points.clone(),
            }
        })
        .collect()
}

/// Screenshots `out/index.html` to `out/dashboard.png` with headless chromium, if installed,
/// in a window as tall as the page and in a profile of its own.
fn screenshot(out: &Path, height: f64) -> Result {
    let Some(chromium) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("chromium"))
        .find(|path| path.is_file())
    else {
        eprintln!("chromium is not on the PATH: no screenshot");
        return Ok(());
    };
    let profile = tempfile::tempdir()?;
    let png = out.join("dashboard.png");
    let _ = std::fs::remove_file(&png);
    let output = Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--window-size={},{height:.0}", page::WIDTH))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", out.join("index.html").display()))
        .output()?;
    if !output.status.success() || !png.is_file() {
        return Err(format!(
            "{} failed ({}): {}",
            chromium.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    eprintln!("wrote {}", png.display());
    Ok(())
}
