//! Drawing a [`ConfusionPlot`]: one heatmap per method and imbalance ratio, the true class down
//! and the predicted class across, both in label order. Each row is normalized to sum to 1, so a
//! tail class with a handful of test images reads as plainly as a head class; one colour scale
//! (white to dark blue) serves every heatmap. Only non-empty cells are drawn, on the scale's
//! white, so a 1000-class matrix is at most as many rectangles as test images; a class without
//! test images is a grey row.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::draw::{LABEL_PX, Render, TICK_PX, TITLE_PX, draw_err, png_of, svg_of};
use super::ticks::count_label;
use super::{ConfusionPlot, Heatmap, PlotError, font};

/// A matrix is drawn 4 pixels per class, within these bounds (1 pixel per class at 1000).
const MATRIX_PX: (usize, usize) = (360, 1000);
/// Room around a matrix: tick labels and axis titles left and below, its caption above.
const LEFT: i32 = 140;
const TOP: i32 = 36;
const BOTTOM: i32 = 64;
const RIGHT: i32 = 24;
/// The figure's title above the heatmaps.
const TITLE_H: i32 = 44;
/// The colour scale's column on the right.
const SCALE_W: i32 = 150;
const BAR_W: i32 = 16;
/// Cells show their share (in %) up to this many classes.
const ANNOTATE_MAX: usize = 12;
/// A class without test images (its row has no share).
const NO_TEST: RGBColor = RGBColor(217, 217, 217);

/// matplotlib's `Blues` colour map at 0, 1/8, ..., 1.
const BLUES: [(u8, u8, u8); 9] = [
    (247, 251, 255),
    (222, 235, 247),
    (198, 219, 239),
    (158, 202, 225),
    (107, 174, 214),
    (66, 146, 198),
    (33, 113, 181),
    (8, 81, 156),
    (8, 48, 107),
];

/// The colour of a share in [0, 1] (clamped), interpolated linearly between the map's stops.
pub fn colour(share: f64) -> RGBColor {
    let s = if share.is_finite() {
        share.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let at = s * (BLUES.len() - 1) as f64;
    let i = (at.floor() as usize).min(BLUES.len() - 2);
    let t = at - i as f64;
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * t).round() as u8;
    let (a, b) = (BLUES[i], BLUES[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// The side of every matrix of `data`, in pixels: 4 per class of the largest, within
/// [`MATRIX_PX`].
fn side(data: &ConfusionPlot) -> i32 {
    let classes = data.rows.iter().flatten().map(|m| m.classes).max();
    let px = classes
        .unwrap_or(0)
        .saturating_mul(4)
        .clamp(MATRIX_PX.0, MATRIX_PX.1);
    i32::try_from(px).unwrap_or(i32::MAX)
}

/// The size of one heatmap with its labels.
fn panel(data: &ConfusionPlot) -> (i32, i32) {
    let side = side(data);
    (LEFT + side + RIGHT, TOP + side + BOTTOM)
}

/// Width and height of the whole picture: the heatmaps in rows and the scale, at least as wide
/// as the title (about 0.55 em per character).
pub fn size(data: &ConfusionPlot) -> (u32, u32) {
    let (pw, ph) = panel(data);
    let cols = data.rows.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let rows = data.rows.len().max(1);
    let title_chars = i32::try_from(data.title.chars().count()).unwrap_or(i32::MAX / 64);
    let title_w = title_chars.saturating_mul(TITLE_PX as i32 * 55 / 100) + 24;
    let cols = i32::try_from(cols).unwrap_or(i32::MAX);
    let rows = i32::try_from(rows).unwrap_or(i32::MAX);
    let w = pw.saturating_mul(cols).saturating_add(SCALE_W).max(title_w);
    let h = ph.saturating_mul(rows).saturating_add(TITLE_H);
    (u32::try_from(w).unwrap_or(1), u32::try_from(h).unwrap_or(1))
}

/// The heatmaps as an SVG document.
pub fn svg(data: &ConfusionPlot) -> Result<String, PlotError> {
    svg_of(data)
}

/// The heatmaps as a PNG image (8-bit RGB).
pub fn png(data: &ConfusionPlot) -> Result<Vec<u8>, PlotError> {
    png_of(data)
}

impl Render for ConfusionPlot {
    fn size(&self) -> (u32, u32) {
        size(self)
    }

    fn render<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError>
    where
        DB::ErrorType: 'static,
    {
        let drawable =
            |m: &Heatmap| m.classes > 0 && m.classes.checked_mul(m.classes) == Some(m.counts.len());
        if !self.rows.iter().flatten().any(drawable) {
            return Err(PlotError::Empty(format!(
                "`{}` has no confusion matrix",
                self.title
            )));
        }
        root.fill(&WHITE).map_err(draw_err)?;
        let title = (font::FAMILY, TITLE_PX)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Top));
        root.draw(&Text::new(self.title.as_str(), (12, 12), title))
            .map_err(draw_err)?;
        let side = side(self);
        let (pw, ph) = panel(self);
        let mut cols = 0;
        let mut grey = false;
        for (r, row) in self.rows.iter().enumerate() {
            for (c, map) in row.iter().enumerate().filter(|(_, m)| drawable(m)) {
                let at = (to_i32(c) * pw, TITLE_H + to_i32(r) * ph);
                grey |= draw_heatmap(root, at, side, map)?;
                cols = cols.max(c + 1);
            }
        }
        draw_scale(root, (to_i32(cols) * pw + 16, TITLE_H + TOP), side, grey)
    }
}

fn to_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX / 2)
}

/// Where class `i`'s cell starts along a matrix of `side` pixels and `classes` classes.
fn edge(i: usize, side: i32, classes: usize) -> i32 {
    let px = i as u64 * u64::try_from(side).unwrap_or(0) / classes.max(1) as u64;
    i32::try_from(px).unwrap_or(i32::MAX)
}

/// The classes labelled along an axis of `side` pixels: every 1st, 2nd, 5th, 10th, ... class
/// from class 0, the first step that puts labels at least `gap` pixels apart.
fn tick_classes(classes: usize, side: i32, gap: i32) -> Vec<usize> {
    let apart = |step: usize| edge(step, side, classes) >= gap;
    let step = [1, 2, 5, 10, 20, 50, 100, 200, 500]
        .into_iter()
        .find(|&s| apart(s))
        .unwrap_or(classes.max(1));
    (0..classes).step_by(step).collect()
}

/// About how wide `text` is at `px` pixels (0.6 em per character).
fn text_width(text: &str, px: u32) -> i32 {
    to_i32(text.chars().count()) * to_i32(px as usize) * 6 / 10
}

/// One heatmap with its caption, ticks and axis titles, its top-left corner at `at`; true when
/// it has a grey row (a class without test images).
fn draw_heatmap<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    at: (i32, i32),
    side: i32,
    map: &Heatmap,
) -> Result<bool, PlotError>
where
    DB::ErrorType: 'static,
{
    let k = map.classes;
    let (mx, my) = (at.0 + LEFT, at.1 + TOP);
    let text = |h: HPos, v: VPos, px: u32| {
        (font::FAMILY, px)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(h, v))
    };
    area.draw(&Text::new(
        map.title.as_str(),
        (mx + side / 2, at.1 + 10),
        text(HPos::Center, VPos::Top, LABEL_PX + 1),
    ))
    .map_err(draw_err)?;
    let mut grey = false;
    for t in 0..k {
        let (y0, y1) = (my + edge(t, side, k), my + edge(t + 1, side, k));
        let Some(shares) = map.shares(t) else {
            grey = true;
            area.draw(&Rectangle::new(
                [(mx, y0), (mx + side, y1)],
                NO_TEST.filled(),
            ))
            .map_err(draw_err)?;
            continue;
        };
        let row = &map.counts[t * k..(t + 1) * k];
        for (p, &share) in shares.iter().enumerate().filter(|&(p, _)| row[p] > 0) {
            let (x0, x1) = (mx + edge(p, side, k), mx + edge(p + 1, side, k));
            area.draw(&Rectangle::new(
                [(x0, y0), (x1, y1)],
                colour(share).filled(),
            ))
            .map_err(draw_err)?;
            if k <= ANNOTATE_MAX {
                let pct = (share * 100.0).round();
                let label = if pct < 1.0 {
                    "<1".to_string()
                } else {
                    format!("{pct}")
                };
                let ink = if share > 0.55 { WHITE } else { BLACK };
                let style = (font::FAMILY, TICK_PX - 2)
                    .into_font()
                    .color(&ink)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                area.draw(&Text::new(label, ((x0 + x1) / 2, (y0 + y1) / 2), style))
                    .map_err(draw_err)?;
            }
        }
    }
    area.draw(&Rectangle::new(
        [(mx, my), (mx + side, my + side)],
        BLACK.mix(0.5).stroke_width(1),
    ))
    .map_err(draw_err)?;

    let counts = (map.train_counts.len() == k).then_some(&map.train_counts);
    let mid = |c: usize| (edge(c, side, k) + edge(c + 1, side, k)) / 2;
    let mut widest = 0;
    for c in tick_classes(k, side, to_i32(TICK_PX as usize) + 6) {
        let y_label = match counts {
            Some(n) => format!("{c} ({})", count_label(n[c] as f64)),
            None => c.to_string(),
        };
        widest = widest.max(text_width(&y_label, TICK_PX));
        area.draw(&Text::new(
            y_label,
            (mx - 6, my + mid(c)),
            text(HPos::Right, VPos::Center, TICK_PX),
        ))
        .map_err(draw_err)?;
    }
    let x_gap = text_width(&k.saturating_sub(1).to_string(), TICK_PX) + 10;
    for c in tick_classes(k, side, x_gap) {
        area.draw(&Text::new(
            c.to_string(),
            (mx + mid(c), my + side + 6),
            text(HPos::Center, VPos::Top, TICK_PX),
        ))
        .map_err(draw_err)?;
    }
    area.draw(&Text::new(
        "predicted class",
        (mx + side / 2, my + side + 32),
        text(HPos::Center, VPos::Top, LABEL_PX),
    ))
    .map_err(draw_err)?;
    let y_title = if counts.is_some() {
        "true class (training images)"
    } else {
        "true class"
    };
    let rotated = (font::FAMILY, LABEL_PX)
        .into_font()
        .transform(FontTransform::Rotate270)
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Top));
    let title_x = (mx - 6 - widest - 12 - to_i32(LABEL_PX as usize)).max(at.0 + 4);
    area.draw(&Text::new(y_title, (title_x, my + side / 2), rotated))
        .map_err(draw_err)?;
    Ok(grey)
}

/// The colour scale: a bar from 0 % (bottom) to 100 % (top) of `side` pixels at `at`, its
/// ticks and title, and the grey of a class without test images when one is drawn.
fn draw_scale<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    at: (i32, i32),
    side: i32,
    grey: bool,
) -> Result<(), PlotError>
where
    DB::ErrorType: 'static,
{
    const STRIPES: usize = 100;
    let (x, y) = at;
    let stripe = |i: usize| y + edge(i, side, STRIPES);
    for i in 0..STRIPES {
        let share = 1.0 - (i as f64 + 0.5) / STRIPES as f64;
        area.draw(&Rectangle::new(
            [(x, stripe(i)), (x + BAR_W, stripe(i + 1))],
            colour(share).filled(),
        ))
        .map_err(draw_err)?;
    }
    area.draw(&Rectangle::new(
        [(x, y), (x + BAR_W, y + side)],
        BLACK.mix(0.5).stroke_width(1),
    ))
    .map_err(draw_err)?;
    let tick = (font::FAMILY, TICK_PX)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for pct in [0, 25, 50, 75, 100] {
        let ty = y + side - side * pct / 100;
        area.draw(&Text::new(
            pct.to_string(),
            (x + BAR_W + 6, ty),
            tick.clone(),
        ))
        .map_err(draw_err)?;
    }
    let rotated = (font::FAMILY, LABEL_PX)
        .into_font()
        .transform(FontTransform::Rotate270)
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Top));
    area.draw(&Text::new(
        "share of the true class's test images (%)",
        (x + BAR_W + 44, y + side / 2),
        rotated,
    ))
    .map_err(draw_err)?;
    if grey {
        let gy = y + side + 16;
        area.draw(&Rectangle::new(
            [(x, gy), (x + BAR_W, gy + 12)],
            NO_TEST.filled(),
        ))
        .map_err(draw_err)?;
        area.draw(&Text::new("no test image", (x + BAR_W + 6, gy + 6), tick))
            .map_err(draw_err)?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "heatmap_test.rs"]
mod tests;
