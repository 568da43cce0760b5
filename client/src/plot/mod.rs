//! Plots of an experiment for `cauda plot` and the HTML report: the per-class accuracy picture
//! every long-tailed paper shows, test accuracy against epoch, and the reliability diagram
//! (accuracy against confidence) of the calibration the newer papers report. Gathering (gRPC replies ->
//! [`PlotData`], in [`gather`]) is kept apart from drawing ([`PlotData`] -> SVG text or PNG
//! bytes, in [`draw`]) so the drawing is tested without a daemon.

pub mod collect;
pub mod draw;
mod font;
pub mod gather;
mod ticks;

pub use draw::{png, svg};

/// How the x axis of a plot reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XAxis {
    /// A class's training-image count on a log scale, decreasing from left to right: the head
    /// classes are on the left, the tail classes on the right.
    ClassCountDescending,
    /// The epoch, numbered from 1 over the stages of a run.
    Epoch,
    /// A prediction's confidence in [0, 1] (drawn in %), with the diagonal of perfect
    /// calibration.
    Confidence,
}

/// One line of a plot: one method, averaged over its seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The method (legend text).
    pub method: String,
    /// How many runs (seeds) were averaged.
    pub runs: usize,
    /// (x, y) points in x order; y is an accuracy in [0, 1]. Points with a non-finite
    /// coordinate are skipped when drawn.
    pub points: Vec<(f64, f64)>,
}

/// One panel: the lines of one imbalance ratio.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// The panel's caption, e.g. `imbalance ratio 100`.
    pub title: String,
    /// Its lines, in the experiment's method order.
    pub series: Vec<Series>,
}

/// Everything a drawing needs, with no gRPC type in it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotData {
    /// The plot's caption (experiment and what is plotted).
    pub title: String,
    /// How the x axis reads.
    pub x_axis: XAxis,
    /// The y axis label.
    pub y_label: String,
    /// One panel per imbalance ratio, side by side.
    pub panels: Vec<Panel>,
}

/// Why a plot cannot be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Nothing to draw: no finished run, or no finite point.
    #[error("nothing to plot: {0}")]
    Empty(String),
    /// The embedded font could not be loaded (a broken build).
    #[error("the embedded font cannot be loaded")]
    Font,
    /// The drawing backend failed.
    #[error("drawing failed: {0}")]
    Draw(String),
    /// PNG encoding failed.
    #[error("PNG encoding failed: {0}")]
    Encode(String),
}

/// The output format of a plot, from a file name's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Scalable vector graphics (text).
    Svg,
    /// Portable network graphics (bytes).
    Png,
}

impl Format {
    /// The format a path's extension asks for (`.svg` or `.png`, any case); `None` otherwise.
    pub fn from_path(path: &std::path::Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "svg" => Some(Format::Svg),
            "png" => Some(Format::Png),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_format_comes_from_the_extension() {
        assert_eq!(Format::from_path(Path::new("a/x.svg")), Some(Format::Svg));
        assert_eq!(Format::from_path(Path::new("x.PNG")), Some(Format::Png));
        assert_eq!(Format::from_path(Path::new("x.pdf")), None);
        assert_eq!(Format::from_path(Path::new("x")), None);
    }
}
