//! The page: panels placed as Grafana places them on its grid (24 columns, 30 px rows, 8 px
//! gaps), rows as headings, in one self-contained HTML file (no script, no external file).

use std::fmt::Write;

use super::{format::escape, model::GridPos};

pub const WIDTH: f64 = 1600.0;
const COLUMNS: f64 = 24.0;
const ROW: f64 = 30.0;
const GAP: f64 = 8.0;
const PADDING: f64 = 16.0;
/// A panel's title bar and the padding around its body.
const TITLE: f64 = 32.0;
const INSET: f64 = 8.0;

/// A box on the page, in pixels from the grid's top left corner.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
}

/// Where `grid` lies on a grid `width` pixels wide.
pub fn place(grid: GridPos, width: f64) -> Rect {
    let column = (width + GAP) / COLUMNS;
    Rect {
        x: f64::from(grid.x) * column,
        y: f64::from(grid.y) * (ROW + GAP),
        width: (f64::from(grid.w.clamp(1, 24)) * column - GAP).max(0.0),
        height: (f64::from(grid.h.max(1)) * (ROW + GAP) - GAP).max(0.0),
    }
}

/// The positions after Grafana's vertical compaction (react-grid-layout's): in order of row
/// then column, each panel moves up while the space above is free, so a panel never sits below
/// a gap it fits in.
pub fn compact(grid: &[GridPos]) -> Vec<GridPos> {
    let overlaps = |a: &GridPos, b: &GridPos| {
        a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h.max(1) && b.y < a.y + a.h.max(1)
    };
    let mut order: Vec<usize> = (0..grid.len()).collect();
    order.sort_by_key(|&i| (grid[i].y, grid[i].x));
    let mut placed: Vec<GridPos> = Vec::new();
    let mut out = grid.to_vec();
    for i in order {
        let mut item = grid[i];
        while item.y > 0 {
            let up = GridPos {
                y: item.y - 1,
                ..item
            };
            if placed.iter().any(|p| overlaps(p, &up)) {
                break;
            }
            item = up;
        }
        while let Some(below) = placed.iter().find(|p| overlaps(p, &item)) {
            item.y = below.y + below.h.max(1);
        }
        placed.push(item);
        out[i] = item;
    }
    out
}

/// The grid's width on the page.
pub fn grid_width() -> f64 {
    WIDTH - 2.0 * PADDING
}

/// The size left for a panel's content inside `rect`.
pub fn body_size(rect: Rect) -> (f64, f64) {
    (
        (rect.width - 2.0 * INSET).max(10.0),
        (rect.height - TITLE - INSET).max(10.0),
    )
}

#[derive(Debug)]
pub enum Block {
    /// A row's title.
    Heading { rect: Rect, title: String },
    /// A panel: its title, description (the tooltip) and content (SVG or HTML).
    Panel {
        rect: Rect,
        title: String,
        description: String,
        body: String,
    },
}

impl Block {
    fn rect(&self) -> Rect {
        match self {
            Block::Heading { rect, .. } | Block::Panel { rect, .. } => *rect,
        }
    }
}

/// The page's height in pixels: what the screenshot's window must show.
pub fn height(blocks: &[Block]) -> f64 {
    let bottom = blocks
        .iter()
        .map(|b| b.rect().y + b.rect().height)
        .fold(0.0, f64::max);
    (bottom + HEADER + 2.0 * PADDING).ceil()
}

const HEADER: f64 = 56.0;

const STYLE: &str = "
* { box-sizing: border-box; }
body { margin: 0; background: #111217; color: #CCCCDC; font: 13px Inter, Helvetica, Arial, sans-serif; }
header { height: 56px; padding: 12px 16px 0; display: flex; gap: 24px; align-items: baseline; }
header h1 { font-size: 20px; font-weight: 500; margin: 0; color: #fff; }
header span { color: #8E8E8E; }
.grid { position: relative; margin: 0 16px 16px; }
.row { position: absolute; font-size: 16px; font-weight: 500; color: #fff; padding-top: 6px; }
.panel { position: absolute; background: #181B1F; border: 1px solid #2C3235; border-radius: 2px; overflow: hidden; }
.panel h2 { margin: 0; height: 32px; padding: 8px; font-size: 14px; font-weight: 500; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.body { position: absolute; left: 8px; top: 32px; right: 8px; bottom: 8px; overflow: hidden; }
table { width: 100%; border-collapse: collapse; }
th { text-align: left; color: #6E9FFF; font-weight: 500; padding: 4px 8px; border-bottom: 1px solid #2C3235; }
td { padding: 4px 8px; border-bottom: 1px solid #22252B; white-space: nowrap; }
td.num { text-align: right; }
pre { margin: 0; white-space: pre-wrap; }
";

/// The whole page: `title`, a line saying what was rendered (`about`), the blocks.
pub fn html(title: &str, about: &str, blocks: &[Block]) -> String {
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{0}</title><style>{STYLE}</style></head>\n<body><header><h1>{0}</h1><span>{1}</span></header>\n<div class=\"grid\" style=\"height:{2:.0}px\">\n",
        escape(title),
        escape(about),
        height(blocks) - HEADER - 2.0 * PADDING
    );
    for block in blocks {
        let r = block.rect();
        let position = format!(
            "left:{:.1}px;top:{:.1}px;width:{:.1}px;height:{:.1}px",
            r.x, r.y, r.width, r.height
        );
        match block {
            Block::Heading { title, .. } => {
                let _ = writeln!(
                    html,
                    "<div class=\"row\" style=\"{position}\">{}</div>",
                    escape(title)
                );
            }
            Block::Panel {
                title,
                description,
                body,
                ..
            } => {
                let _ = writeln!(
                    html,
                    "<div class=\"panel\" style=\"{position}\" title=\"{}\"><h2>{}</h2><div class=\"body\">{body}</div></div>",
                    escape(description),
                    escape(title)
                );
            }
        }
    }
    html.push_str("</div></body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_has_24_columns_of_30_px_rows_with_8_px_gaps() {
        // 24 columns across 1,552 px: 65 px each with its gap.
        let full = place(
            GridPos {
                x: 0,
                y: 0,
                w: 24,
                h: 1,
            },
            1552.0,
        );
        assert_eq!(
            full,
            Rect {
                x: 0.0,
                y: 0.0,
                width: 1552.0,
                height: 30.0
            }
        );
        let right_third = place(
            GridPos {
                x: 16,
                y: 11,
                w: 8,
                h: 5,
            },
            1552.0,
        );
        assert_eq!(
            right_third,
            Rect {
                x: 1040.0,
                y: 418.0,
                width: 512.0,
                height: 182.0
            }
        );
        assert_eq!(body_size(right_third), (496.0, 142.0));
    }

    #[test]
    fn panels_move_up_into_free_space_but_not_past_a_row() {
        let grid = |x, y, w, h| GridPos { x, y, w, h };
        let layout = [
            grid(0, 0, 24, 1),  // row
            grid(0, 1, 4, 5),   // stat
            grid(8, 1, 16, 10), // table
            grid(0, 11, 8, 5),  // under the stat: moves up to y 6
            grid(8, 11, 8, 5),  // under the table: stays
            grid(0, 16, 24, 1), // row: up to the lowest panel above it
            grid(0, 30, 12, 8), // up to under the row
        ];
        let ys: Vec<u32> = compact(&layout).iter().map(|g| g.y).collect();
        assert_eq!(ys, [0, 1, 1, 6, 11, 16, 17]);
    }

    #[test]
    fn the_page_is_as_tall_as_its_lowest_panel() {
        let rect = place(
            GridPos {
                x: 0,
                y: 82,
                w: 8,
                h: 7,
            },
            1552.0,
        );
        let blocks = [Block::Panel {
            rect,
            title: "Reconciles <per> second".into(),
            description: String::new(),
            body: "<svg></svg>".into(),
        }];
        assert_eq!(height(&blocks), (89.0 * 38.0 - 8.0 + 56.0 + 32.0));
        assert!(html("gongshu", "now", &blocks).contains("<h2>Reconciles &lt;per&gt; second</h2>"));
    }
}
