//! Axis arithmetic of the plots: the reversed log axis of class counts (head classes on the
//! left), round tick values for it and for the epoch axis, and [`TickedAxis`], the plotters
//! coordinate that puts ticks exactly there and labels them.

use std::ops::Range;

use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};

/// How a [`TickedAxis`] labels its ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Labels {
    /// Positions are [`count_to_axis`] values; labels are the counts.
    Count,
    /// Labels are the values, rounded to integers.
    Integer,
}

/// A linear axis over `range` with ticks at exactly `ticks` (in axis units).
#[derive(Debug, Clone)]
pub struct TickedAxis {
    /// The values shown, from left (or bottom) to right (or top).
    pub range: Range<f64>,
    /// Where the ticks and grid lines go.
    pub ticks: Vec<f64>,
    /// How they read.
    pub labels: Labels,
}

impl Ranged for TickedAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = self.range.end - self.range.start;
        let t = if span.abs() < f64::EPSILON {
            0.5
        } else {
            (value - self.range.start) / span
        };
        let pixels = f64::from(limit.1 - limit.0) * t;
        limit.0 + pixels.round().clamp(-1e6, 1e6) as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        self.ticks.clone()
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

impl ValueFormatter<f64> for TickedAxis {
    fn format(value: &f64) -> String {
        format!("{}", value.round())
    }

    fn format_ext(&self, value: &f64) -> String {
        match self.labels {
            Labels::Count => count_label(axis_to_count(*value)),
            Labels::Integer => Self::format(value),
        }
    }
}

/// Where a class count sits on the reversed log axis: `-log10(count)`, so larger counts are
/// further left.
pub fn count_to_axis(count: f64) -> f64 {
    -count.log10()
}

/// The class count at a position of the reversed log axis.
pub fn axis_to_count(u: f64) -> f64 {
    10f64.powf(-u)
}

/// The axis range that shows counts from `lo` to `hi` (both > 0) with a margin on each side.
pub fn count_axis_range(lo: f64, hi: f64) -> Range<f64> {
    let (a, b) = (count_to_axis(hi), count_to_axis(lo));
    let pad = ((b - a) * 0.04).max(0.05);
    (a - pad)..(b + pad)
}

/// Round counts for the ticks of a log axis from `lo` to `hi`, ascending: the powers of ten
/// in range, with 2x and 5x added (and then every digit) while there are fewer than four.
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || lo <= 0.0 || hi < lo {
        return Vec::new();
    }
    let first = lo.log10().floor() as i32;
    let last = hi.log10().ceil() as i32;
    let within = |v: f64| v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9);
    let pick = |mantissas: &[f64]| -> Vec<f64> {
        (first..=last)
            .flat_map(|e| mantissas.iter().map(move |m| m * 10f64.powi(e)))
            .filter(|&v| within(v))
            .collect()
    };
    let mut ticks = pick(&[1.0]);
    if ticks.len() < 4 {
        ticks = pick(&[1.0, 2.0, 5.0]);
    }
    if ticks.len() < 4 {
        ticks = pick(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    }
    if ticks.is_empty() {
        ticks.push(lo);
    }
    ticks
}

/// A count as a tick label: `5`, `200`, `5000`, `20k` from 20 000 on.
pub fn count_label(count: f64) -> String {
    let rounded = count.round();
    if rounded >= 20_000.0 {
        format!("{}k", (rounded / 1000.0).round())
    } else {
        format!("{rounded}")
    }
}

/// Ticks at a round step (1, 2 or 5 times a power of ten, at least `min_step`) from `lo` to
/// `hi`, at most about `max_ticks` of them.
pub fn linear_ticks(lo: f64, hi: f64, max_ticks: usize, min_step: f64) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi < lo || max_ticks == 0 {
        return Vec::new();
    }
    let raw = ((hi - lo) / max_ticks as f64).max(min_step).max(1e-9);
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * magnitude);
    let mut ticks = Vec::new();
    let mut v = (lo / step).ceil() * step;
    while v <= hi + step * 1e-9 && ticks.len() <= max_ticks * 2 {
        ticks.push(v);
        v += step;
    }
    ticks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ticks_cover_the_range_with_round_counts() {
        assert_eq!(
            log_ticks(2.0, 143.0),
            vec![2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
        );
        assert_eq!(
            log_ticks(5.0, 5000.0),
            vec![
                5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0
            ]
        );
        assert_eq!(
            log_ticks(1.0, 100_000.0),
            vec![1.0, 10.0, 100.0, 1e3, 1e4, 1e5]
        );
        assert_eq!(log_ticks(30.0, 60.0), vec![30.0, 40.0, 50.0, 60.0]);
        assert_eq!(log_ticks(7.0, 7.0), vec![7.0]);
        assert!(log_ticks(0.0, 10.0).is_empty());
        assert!(log_ticks(f64::NAN, 10.0).is_empty());
    }

    #[test]
    fn the_count_axis_is_reversed_and_round_trips() {
        let r = count_axis_range(2.0, 143.0);
        assert!(r.start < count_to_axis(143.0) && count_to_axis(2.0) < r.end);
        assert!(
            count_to_axis(143.0) < count_to_axis(2.0),
            "head on the left"
        );
        assert!((axis_to_count(count_to_axis(37.0)) - 37.0).abs() < 1e-9);
        let single = count_axis_range(10.0, 10.0);
        assert!(single.start < single.end);
    }

    #[test]
    fn labels_are_plain_counts() {
        assert_eq!(count_label(5.0), "5");
        assert_eq!(count_label(199.999), "200");
        assert_eq!(count_label(5000.0), "5000");
        assert_eq!(count_label(20_000.0), "20k");
    }

    #[test]
    fn a_ticked_axis_maps_linearly_and_labels_its_ticks() {
        let axis = TickedAxis {
            range: count_axis_range(2.0, 200.0),
            ticks: log_ticks(2.0, 200.0)
                .into_iter()
                .map(count_to_axis)
                .collect(),
            labels: Labels::Count,
        };
        let labels: Vec<String> = axis
            .key_points(10usize)
            .iter()
            .map(|t| axis.format_ext(t))
            .collect();
        assert_eq!(labels, ["2", "5", "10", "20", "50", "100", "200"]);
        let x = |c: f64| axis.map(&count_to_axis(c), (0, 1000));
        assert!(x(200.0) < x(20.0) && x(20.0) < x(2.0));
        assert!(
            (x(20.0) - 500).abs() <= 1,
            "log 20 is halfway between 2 and 200"
        );
        let epochs = TickedAxis {
            range: 0.0..10.0,
            ticks: vec![0.0, 5.0],
            labels: Labels::Integer,
        };
        assert_eq!(epochs.format_ext(&5.0), "5");
        assert_eq!(epochs.map(&10.0, (100, 200)), 200);
    }

    #[test]
    fn linear_ticks_step_roundly() {
        assert_eq!(linear_ticks(1.0, 3.0, 8, 1.0), vec![1.0, 2.0, 3.0]);
        assert_eq!(
            linear_ticks(1.0, 3.0, 8, 0.0),
            vec![1.0, 1.5, 2.0, 2.5, 3.0]
        );
        assert_eq!(
            linear_ticks(1.0, 60.0, 8, 1.0),
            vec![10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
        );
        assert_eq!(
            linear_ticks(0.0, 100.0, 5, 1.0),
            vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
        assert!(linear_ticks(5.0, 1.0, 8, 1.0).is_empty());
    }
}
