//! How well a classifier's confidence matches its accuracy, as the newer long-tailed papers
//! report it next to top-1 (MiSLAS, Zhong et al. CVPR 2021, after Guo et al. ICML 2017):
//! - expected calibration error over `M` equal-width confidence bins,
//!   `ECE = sum_b |B_b| / n * |acc(B_b) - conf(B_b)|`, where a prediction's confidence is its
//!   top softmax probability and bin `b` holds confidences in `(b / M, (b + 1) / M]` (the
//!   authors' `_ECELoss`, `gt(lower) * le(upper)`, with the edges as exact quotients `b / M`);
//! - the negative log-likelihood `mean_i -log softmax(z_i)[y_i]`;
//! - the bins themselves (count, accuracy, mean confidence): a reliability diagram's data.
//!
//! Softmax in double precision with the row maximum subtracted, so large logits cannot overflow.

use super::{MetricsError, Result};

/// The papers' number of bins.
pub const ECE_BINS: usize = 15;

/// One confidence bin of a reliability diagram.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReliabilityBin {
    /// Predictions whose confidence falls in the bin.
    pub count: usize,
    /// Their accuracy (0 for an empty bin).
    pub accuracy: f64,
    /// Their mean confidence (0 for an empty bin).
    pub confidence: f64,
}

/// The calibration of one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    pub ece: f64,
    pub nll: f64,
    pub bins: Vec<ReliabilityBin>,
}

/// Calibration of row-major `logits` (`labels.len() x classes`) against `labels`, with `bins`
/// bins; `None` for an empty set.
pub fn calibration(
    logits: &[f32],
    labels: &[u32],
    classes: usize,
    bins: usize,
) -> Result<Option<Calibration>> {
    if classes == 0 || bins == 0 {
        return Err(MetricsError::NoClasses);
    }
    if logits.len() != labels.len() * classes {
        return Err(MetricsError::Length {
            what: "logits (labels x classes)",
            expected: labels.len() * classes,
            got: logits.len(),
        });
    }
    if labels.is_empty() {
        return Ok(None);
    }
    let mut count = vec![0usize; bins];
    let mut correct = vec![0usize; bins];
    let mut conf_sum = vec![0f64; bins];
    let mut nll = 0f64;
    for (i, (row, &y)) in logits.chunks_exact(classes).zip(labels).enumerate() {
        let y = y as usize;
        if y >= classes {
            return Err(MetricsError::ClassOutOfRange {
                what: "label",
                index: i,
                value: y as u32,
                num_classes: classes,
            });
        }
        // The first maximum, as `argmax` picks it.
        let mut best = 0usize;
        for (j, &v) in row.iter().enumerate().skip(1) {
            if v > row[best] {
                best = j;
            }
        }
        let top = f64::from(row[best]);
        let sum: f64 = row.iter().map(|&v| (f64::from(v) - top).exp()).sum();
        let confidence = 1.0 / sum;
        nll += sum.ln() + top - f64::from(row[y]);
        // (b / M, (b + 1) / M] with the edges as exact quotients: the bin whose upper edge is
        // the first at or above the confidence (a guess from the product, then the edges decide).
        let edge = |b: usize| b as f64 / bins as f64;
        let mut b = ((confidence * bins as f64).ceil() as usize).clamp(1, bins) - 1;
        while b > 0 && confidence <= edge(b) {
            b -= 1;
        }
        while b + 1 < bins && confidence > edge(b + 1) {
            b += 1;
        }
        count[b] += 1;
        correct[b] += usize::from(best == y);
        conf_sum[b] += confidence;
    }
    let n = labels.len() as f64;
    let bins: Vec<ReliabilityBin> = (0..bins)
        .map(|b| match count[b] {
            0 => ReliabilityBin {
                count: 0,
                accuracy: 0.0,
                confidence: 0.0,
            },
            c => ReliabilityBin {
                count: c,
                accuracy: correct[b] as f64 / c as f64,
                confidence: conf_sum[b] / c as f64,
            },
        })
        .collect();
    let ece = bins
        .iter()
        .map(|b| b.count as f64 / n * (b.accuracy - b.confidence).abs())
        .sum();
    Ok(Some(Calibration {
        ece,
        nll: nll / n,
        bins,
    }))
}

/// The lowest accuracy over the classes that have test images (`None` when none has).
pub fn worst_class(per_class: &[Option<f64>]) -> Option<f64> {
    per_class.iter().flatten().copied().reduce(f64::min)
}
