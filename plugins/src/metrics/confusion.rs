//! The confusion matrix (true class x predicted class) and the arg-max that turns logits into
//! predictions; top-1 and per-class accuracy are read off the matrix.

use serde::{Deserialize, Serialize};

use super::{MetricsError, Result};

/// The predicted class of each row of row-major `logits` (`rows x num_classes`): the index of the
/// largest value, the lowest index on ties (as `numpy.argmax`). NaN never wins over a number; a
/// row of NaN predicts class 0.
pub fn argmax(logits: &[f32], num_classes: usize) -> Result<Vec<u32>> {
    if num_classes == 0 {
        return Err(MetricsError::NoClasses);
    }
    if !logits.len().is_multiple_of(num_classes) {
        return Err(MetricsError::Length {
            what: "logits (a multiple of num_classes)",
            expected: logits.len().div_ceil(num_classes) * num_classes,
            got: logits.len(),
        });
    }
    Ok(logits
        .chunks_exact(num_classes)
        .map(|row| {
            let mut best = 0usize;
            for (j, &v) in row.iter().enumerate().skip(1) {
                if v > row[best] || (row[best].is_nan() && !v.is_nan()) {
                    best = j;
                }
            }
            best as u32
        })
        .collect())
}

/// Counts of (true class, predicted class) pairs, row-major: `counts[label * k + pred]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    num_classes: usize,
    counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// An all-zero `num_classes x num_classes` matrix.
    pub fn new(num_classes: usize) -> Self {
        Self {
            num_classes,
            counts: vec![0; num_classes * num_classes],
        }
    }

    /// The matrix of predictions `preds` against true `labels`.
    pub fn from_predictions(preds: &[u32], labels: &[u32], num_classes: usize) -> Result<Self> {
        let mut m = Self::new(num_classes);
        m.add(preds, labels)?;
        Ok(m)
    }

    /// Adds a batch of predictions (e.g. one evaluation batch at a time). Nothing is added when
    /// the batch is invalid.
    pub fn add(&mut self, preds: &[u32], labels: &[u32]) -> Result<()> {
        if preds.len() != labels.len() {
            return Err(MetricsError::Length {
                what: "predictions (one per label)",
                expected: labels.len(),
                got: preds.len(),
            });
        }
        let k = self.num_classes;
        for (what, values) in [("prediction", preds), ("label", labels)] {
            if let Some((index, &value)) =
                values.iter().enumerate().find(|(_, v)| **v as usize >= k)
            {
                return Err(MetricsError::ClassOutOfRange {
                    what,
                    index,
                    value,
                    num_classes: k,
                });
            }
        }
        for (&p, &l) in preds.iter().zip(labels) {
            self.counts[l as usize * k + p as usize] += 1;
        }
        Ok(())
    }

    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Row-major counts, `counts()[label * num_classes + pred]`.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// How many images of class `label` were predicted as `pred` (0 out of range).
    pub fn get(&self, label: usize, pred: usize) -> u64 {
        if label < self.num_classes && pred < self.num_classes {
            self.counts[label * self.num_classes + pred]
        } else {
            0
        }
    }

    /// Number of test images of class `label` (its row sum).
    pub fn support(&self, label: usize) -> u64 {
        (0..self.num_classes).map(|p| self.get(label, p)).sum()
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Fraction of all images predicted correctly (trace / total); `None` when empty.
    pub fn top1(&self) -> Option<f32> {
        let total = self.total();
        let correct: u64 = (0..self.num_classes).map(|j| self.get(j, j)).sum();
        (total > 0).then(|| (correct as f64 / total as f64) as f32)
    }

    /// Accuracy of each class (diagonal / row sum), `None` for a class without test images.
    pub fn per_class(&self) -> Vec<Option<f32>> {
        self.per_class_f64()
            .into_iter()
            .map(|a| a.map(|a| a as f32))
            .collect()
    }

    pub(super) fn per_class_f64(&self) -> Vec<Option<f64>> {
        (0..self.num_classes)
            .map(|j| {
                let n = self.support(j);
                (n > 0).then(|| self.get(j, j) as f64 / n as f64)
            })
            .collect()
    }
}
