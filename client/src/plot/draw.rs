//! Drawing a [`PlotData`]: the same picture as SVG text or PNG bytes. One panel per imbalance
//! ratio side by side, one line with markers per method (colour and marker kept per method
//! across panels), and one legend for all panels on the right, drawn by hand so it never
//! covers the data. No gRPC, no files: the callers write the result.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::ticks::{Labels, TickedAxis, count_axis_range, count_to_axis, linear_ticks, log_ticks};
use super::{PlotData, PlotError, XAxis, font};

/// Width and height of one panel, in pixels.
const PANEL: (u32, u32) = (620, 480);
/// Text sizes, in pixels.
pub(super) const TITLE_PX: u32 = 20;
pub(super) const LABEL_PX: u32 = 15;
pub(super) const TICK_PX: u32 = 14;
/// The most markers drawn on one line.
const MAX_MARKERS: usize = 16;

/// Ten colours that stay apart on white (Tableau 10).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The marker shapes; with ten colours, every (colour, marker) pair is distinct for 20 methods.
#[derive(Clone, Copy)]
enum Marker {
    Circle,
    Triangle,
    Square,
    Cross,
}

const MARKERS: [Marker; 4] = [
    Marker::Circle,
    Marker::Triangle,
    Marker::Square,
    Marker::Cross,
];

/// How the method at this position of the legend is drawn.
fn look(index: usize) -> (RGBColor, Marker) {
    (
        PALETTE[index % PALETTE.len()],
        MARKERS[index % MARKERS.len()],
    )
}

/// The methods of every panel in first-seen order, with the most runs any panel averaged.
fn legend_entries(data: &PlotData) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for s in data.panels.iter().flat_map(|p| &p.series) {
        match out.iter_mut().find(|(m, _)| *m == s.method) {
            Some(entry) => entry.1 = entry.1.max(s.runs),
            None => out.push((s.method.clone(), s.runs)),
        }
    }
    out
}

/// The legend's width: room for the longest label (about 0.6 em per character).
fn legend_width(entries: &[(String, usize)]) -> u32 {
    let longest = entries
        .iter()
        .map(|(m, n)| legend_label(m, *n).chars().count())
        .max()
        .unwrap_or(0);
    let chars = u32::try_from(longest).unwrap_or(u32::MAX);
    chars
        .saturating_mul(LABEL_PX * 6 / 10)
        .saturating_add(60)
        .clamp(140, 320)
}

fn legend_label(method: &str, runs: usize) -> String {
    format!("{method} ({runs})")
}

/// The size of the picture of `data`: one panel per imbalance ratio and the legend.
pub fn size(data: &PlotData) -> (u32, u32) {
    let panels = u32::try_from(data.panels.len().max(1)).unwrap_or(1);
    let width = PANEL
        .0
        .saturating_mul(panels)
        .saturating_add(legend_width(&legend_entries(data)));
    (width, PANEL.1)
}

/// A picture that draws itself on any plotters backend at the size it gives.
pub(super) trait Render {
    /// Width and height, in pixels.
    fn size(&self) -> (u32, u32);
    /// Draws the whole picture on `root`.
    fn render<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError>
    where
        DB::ErrorType: 'static;
}

impl Render for PlotData {
    fn size(&self) -> (u32, u32) {
        size(self)
    }

    fn render<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError>
    where
        DB::ErrorType: 'static,
    {
        render(root, self)
    }
}

/// The plot as an SVG document.
pub fn svg(data: &PlotData) -> Result<String, PlotError> {
    svg_of(data)
}

/// The plot as a PNG image (8-bit RGB).
pub fn png(data: &PlotData) -> Result<Vec<u8>, PlotError> {
    png_of(data)
}

/// `picture` as an SVG document.
pub(super) fn svg_of(picture: &impl Render) -> Result<String, PlotError> {
    font::ensure_registered()?;
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, picture.size()).into_drawing_area();
        picture.render(&root)?;
        root.present().map_err(draw_err)?;
    }
    Ok(text)
}

/// `picture` as a PNG image (8-bit RGB).
pub(super) fn png_of(picture: &impl Render) -> Result<Vec<u8>, PlotError> {
    font::ensure_registered()?;
    let (w, h) = picture.size();
    let len = usize::try_from(u64::from(w) * u64::from(h) * 3)
        .map_err(|_| PlotError::Draw("picture too large".into()))?;
    let mut rgb = vec![0u8; len];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        picture.render(&root)?;
        root.present().map_err(draw_err)?;
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder
        .write_header()
        .map_err(|e| PlotError::Encode(e.to_string()))?;
    writer
        .write_image_data(&rgb)
        .map_err(|e| PlotError::Encode(e.to_string()))?;
    writer
        .finish()
        .map_err(|e| PlotError::Encode(e.to_string()))?;
    Ok(out)
}

pub(super) fn draw_err<E: std::error::Error + Send + Sync>(
    e: DrawingAreaErrorKind<E>,
) -> PlotError {
    PlotError::Draw(e.to_string())
}

fn has_points(data: &PlotData) -> bool {
    data.panels
        .iter()
        .flat_map(|p| &p.series)
        .flat_map(|s| &s.points)
        .any(|&(x, y)| usable(data.x_axis, x, y))
}

/// Whether a point can be drawn: finite, and a positive count on the log axis.
fn usable(axis: XAxis, x: f64, y: f64) -> bool {
    x.is_finite() && y.is_finite() && (axis != XAxis::ClassCountDescending || x > 0.0)
}

fn render<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    data: &PlotData,
) -> Result<(), PlotError>
where
    DB::ErrorType: 'static,
{
    if !has_points(data) {
        return Err(PlotError::Empty(format!(
            "`{}` has no finite point",
            data.title
        )));
    }
    root.fill(&WHITE).map_err(draw_err)?;
    let title_font = (font::FAMILY, TITLE_PX).into_font();
    let body = root.titled(&data.title, title_font).map_err(draw_err)?;
    let entries = legend_entries(data);
    let (w, _) = body.dim_in_pixel();
    let legend_w = legend_width(&entries);
    let (charts, legend) = body.split_horizontally(w.saturating_sub(legend_w));
    let columns = charts.split_evenly((1, data.panels.len().max(1)));
    for (panel, area) in data.panels.iter().zip(&columns) {
        draw_panel(area, data, panel, &entries)?;
    }
    draw_legend(&legend, &entries)?;
    Ok(())
}

/// The x axis: its range and ticks in axis units.
fn x_axis(data: &PlotData) -> TickedAxis {
    let xs = data
        .panels
        .iter()
        .flat_map(|p| &p.series)
        .flat_map(|s| &s.points)
        .filter(|&&(x, y)| usable(data.x_axis, x, y))
        .map(|&(x, _)| x);
    let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    });
    match data.x_axis {
        XAxis::ClassCountDescending => TickedAxis {
            range: count_axis_range(lo, hi),
            ticks: log_ticks(lo, hi).into_iter().map(count_to_axis).collect(),
            labels: Labels::Count,
        },
        XAxis::Confidence => TickedAxis {
            range: -3.0..103.0,
            ticks: vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0],
            labels: Labels::Integer,
        },
        XAxis::Epoch => {
            let hi = hi.max(lo + 1.0);
            let pad = (hi - lo) * 0.03;
            TickedAxis {
                range: (lo - pad)..(hi + pad),
                ticks: linear_ticks(lo, hi, 8, 1.0),
                labels: Labels::Integer,
            }
        }
    }
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    data: &PlotData,
    panel: &super::Panel,
    entries: &[(String, usize)],
) -> Result<(), PlotError>
where
    DB::ErrorType: 'static,
{
    let mut builder = ChartBuilder::on(area);
    builder
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(56);
    if data.panels.len() > 1 || !panel.title.is_empty() {
        builder.caption(&panel.title, (font::FAMILY, LABEL_PX + 1));
    }
    let mut chart = builder
        .build_cartesian_2d(
            x_axis(data),
            TickedAxis {
                range: -3.0..103.0,
                ticks: vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0],
                labels: Labels::Integer,
            },
        )
        .map_err(draw_err)?;
    let axis = data.x_axis;
    let x_desc = match axis {
        XAxis::ClassCountDescending => {
            "training images of the class (log scale; head classes left, tail right)"
        }
        XAxis::Epoch => "epoch",
        XAxis::Confidence => "confidence (%); the diagonal is perfect calibration",
    };
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(data.y_label.as_str())
        .axis_desc_style((font::FAMILY, LABEL_PX))
        .label_style((font::FAMILY, TICK_PX))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(TRANSPARENT)
        .draw()
        .map_err(draw_err)?;
    if axis == XAxis::Confidence {
        chart
            .draw_series(LineSeries::new(
                [(0.0, 0.0), (100.0, 100.0)],
                BLACK.mix(0.35).stroke_width(1),
            ))
            .map_err(draw_err)?;
    }
    for series in &panel.series {
        let index = entries
            .iter()
            .position(|(m, _)| *m == series.method)
            .unwrap_or(0);
        let (color, marker) = look(index);
        let points: Vec<(f64, f64)> = series
            .points
            .iter()
            .filter(|&&(x, y)| usable(axis, x, y))
            .map(|&(x, y)| {
                let x = match axis {
                    XAxis::ClassCountDescending => count_to_axis(x),
                    XAxis::Epoch => x,
                    XAxis::Confidence => x * 100.0,
                };
                (x, y * 100.0)
            })
            .collect();
        if points.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(draw_err)?;
        // At most about MAX_MARKERS markers per line, evenly spaced, so long curves stay
        // readable; the legend shows which marker is which line.
        let step = points.len().div_ceil(MAX_MARKERS).max(1);
        let plotting = chart.plotting_area();
        for &p in points.iter().step_by(step) {
            draw_marker(plotting, p, marker, color)?;
        }
    }
    Ok(())
}

/// One marker of `shape` at `at`, in the area's own coordinates.
fn draw_marker<DB, CT>(
    area: &DrawingArea<DB, CT>,
    at: CT::From,
    shape: Marker,
    color: RGBColor,
) -> Result<(), PlotError>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
    CT: CoordTranslate,
    CT::From: Clone,
{
    match shape {
        Marker::Circle => area.draw(&Circle::new(at, 4, color.filled())),
        Marker::Triangle => area.draw(&TriangleMarker::new(at, 5, color.filled())),
        Marker::Square => {
            area.draw(&(EmptyElement::at(at) + Rectangle::new([(-4, -4), (4, 4)], color.filled())))
        }
        Marker::Cross => area.draw(&Cross::new(at, 4, color.stroke_width(2))),
    }
    .map_err(draw_err)
}

/// The legend: a heading, then per method a line sample with its marker and `method (runs)`.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(String, usize)],
) -> Result<(), PlotError>
where
    DB::ErrorType: 'static,
{
    let text = |anchor_left: bool| {
        let pos = if anchor_left {
            Pos::new(HPos::Left, VPos::Center)
        } else {
            Pos::new(HPos::Left, VPos::Top)
        };
        (font::FAMILY, LABEL_PX).into_font().color(&BLACK).pos(pos)
    };
    let top = 28;
    area.draw(&Text::new("method (seeds)", (8, top), text(false)))
        .map_err(draw_err)?;
    let row = i32::try_from(LABEL_PX).unwrap_or(14) + 8;
    for (i, (method, runs)) in entries.iter().enumerate() {
        let y = top + 30 + row * i32::try_from(i).unwrap_or(i32::MAX / 64);
        let (color, marker) = look(i);
        area.draw(&Rectangle::new([(8, y - 1), (36, y + 1)], color.filled()))
            .map_err(draw_err)?;
        draw_marker(area, (22, y), marker, color)?;
        area.draw(&Text::new(legend_label(method, *runs), (44, y), text(true)))
            .map_err(draw_err)?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "draw_test.rs"]
mod tests;
