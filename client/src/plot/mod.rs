//! Plots of an experiment for `cauda plot` and the HTML report: the per-class accuracy picture
//! every long-tailed paper shows, test accuracy against epoch, the reliability diagram
//! (accuracy against confidence) of the calibration the newer papers report, and the final
//! model's confusion matrix as a heatmap. Gathering (gRPC replies -> [`Picture`], in [`gather`])
//! is kept apart from drawing ([`PlotData`] -> SVG text or PNG bytes in [`draw`],
//! [`ConfusionPlot`] in [`heatmap`]) so the drawing is tested without a daemon.

pub mod collect;
pub mod draw;
mod font;
pub mod gather;
pub mod heatmap;
mod ticks;

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

/// One confusion matrix: the runs of one method at one imbalance ratio, their counts summed
/// over seeds (the matrix of all their test predictions).
#[derive(Debug, Clone, PartialEq)]
pub struct Heatmap {
    /// The method (and how many runs were summed) and the ratio, e.g. `ce (2), imbalance ratio 10`.
    pub title: String,
    /// The number of classes C, in label order.
    pub classes: usize,
    /// C x C counts, row-major: `counts[true_class * C + predicted_class]`.
    pub counts: Vec<u64>,
    /// Training images per class (of the first run); empty when the summary has none.
    pub train_counts: Vec<u64>,
}

impl Heatmap {
    /// Row `t` normalized to sum to 1: the share of class `t`'s test images predicted as each
    /// class; `None` for a class without test images (or out of range).
    pub fn shares(&self, t: usize) -> Option<Vec<f64>> {
        let k = self.classes;
        let row = self
            .counts
            .get(t.checked_mul(k)?..t.checked_add(1)?.checked_mul(k)?)?;
        let total: u64 = row.iter().sum();
        (total > 0).then(|| row.iter().map(|&n| n as f64 / total as f64).collect())
    }
}

/// The confusion-matrix picture: one row of heatmaps per imbalance ratio, one heatmap per method.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfusionPlot {
    /// The plot's caption (experiment and what is plotted).
    pub title: String,
    /// One row per imbalance ratio ("no imbalance" first, then ascending), methods in grid order.
    pub rows: Vec<Vec<Heatmap>>,
}

/// Any picture `cauda plot` draws.
#[derive(Debug, Clone, PartialEq)]
pub enum Picture {
    /// Lines: per-class accuracy, curves, the reliability diagram.
    Lines(PlotData),
    /// Confusion-matrix heatmaps.
    Confusion(ConfusionPlot),
}

impl Picture {
    /// The picture as an SVG document.
    pub fn svg(&self) -> Result<String, PlotError> {
        match self {
            Picture::Lines(data) => draw::svg(data),
            Picture::Confusion(data) => heatmap::svg(data),
        }
    }

    /// The picture as a PNG image.
    pub fn png(&self) -> Result<Vec<u8>, PlotError> {
        match self {
            Picture::Lines(data) => draw::png(data),
            Picture::Confusion(data) => heatmap::png(data),
        }
    }

    /// What it shows, in words: `1 panel(s), 3 line(s)` or `3 heatmap(s) of 10 classes`.
    pub fn describe(&self) -> String {
        match self {
            Picture::Lines(data) => {
                let lines: usize = data.panels.iter().map(|p| p.series.len()).sum();
                format!("{} panel(s), {lines} line(s)", data.panels.len())
            }
            Picture::Confusion(data) => {
                let maps: Vec<&Heatmap> = data.rows.iter().flatten().collect();
                let mut classes: Vec<usize> = maps.iter().map(|m| m.classes).collect();
                classes.sort_unstable();
                classes.dedup();
                let classes: Vec<String> = classes.iter().map(usize::to_string).collect();
                format!("{} heatmap(s) of {} classes", maps.len(), classes.join("/"))
            }
        }
    }
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
